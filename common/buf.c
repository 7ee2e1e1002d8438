/* common/buf.c - byte buffers with a hard cap, allocated on demand. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->start = b->end = b->size = 0;
	b->max = max;
	b->pinned = false;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->start = b->end = b->size = 0;
	b->pinned = false;
}

size_t buf_len(const struct buf *b)
{
	return b->end - b->start;
}

void buf_consume(struct buf *b, size_t n)
{
	b->start += n;
	if (b->start >= b->end)
		b->start = b->end = 0;
}

void buf_compact(struct buf *b, size_t floor)
{
	if (b->start <= floor)
		return;
	size_t n = b->end - b->start;
	memmove(b->data + floor, b->data + b->start, n);
	b->start = floor;
	b->end = floor + n;
}

/* Grow to at least need bytes (capped). Returns 0 or WEIR_ENOMEM. */
static int grow(struct buf *b, size_t need)
{
	size_t size = b->size ? b->size * 2 : BUF_MIN_SIZE;
	if (size < need)
		size = need;
	if (size > b->max)
		size = b->max;
	if (size <= b->size)
		return 0;
	char *p = realloc(b->data, size);
	if (!p)
		return WEIR_ENOMEM;
	b->data = p;
	b->size = size;
	return 0;
}

size_t buf_room(struct buf *b, size_t floor, size_t want)
{
	if (b->start == b->end)
		b->start = b->end = floor <= b->size ? floor : 0;
	if (b->size - b->end >= want)
		return b->size - b->end;
	buf_compact(b, floor);
	if (b->size - b->end < want && !b->pinned)
		grow(b, b->end + want);
	return b->size - b->end;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_room(b, 0, n) < n)
		return WEIR_ETOOBIG;
	memcpy(b->data + b->end, p, n);
	b->end += n;
	return 0;
}
