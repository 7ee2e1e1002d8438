/* common/buf.c - byte buffers with a hard cap, allocated on demand.
 *
 * A proxy connection's buffers come and go with each request (an idle
 * connection holds none), so a thread that asks (buf_cache_thread_start:
 * the proxy's workers) keeps freed blocks of the common sizes (4 to 64 KiB,
 * which glibc's own per-thread cache does not cover) for its next buffers:
 * at most 2048 of each size and 16 MiB in all, given back when the thread
 * ends. Sized for an HTTP/2 worker with hundreds of streams in flight, each
 * holding several 4 KiB blocks: with 256 a burst of answers overflowed the
 * cache and every request paid glibc's malloc and free. What a burst left
 * goes back once the cache has not been drawn on for a while
 * (buf_cache_trim), down to the bound an idle worker always had: 256 of
 * each size and 4 MiB in all. Not in sanitized builds: there a freed buffer
 * must be freed, so a late use is caught (a unit test may define BUF_CACHE
 * to 1 to test the cache itself). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "idle.h"

#ifndef BUF_CACHE
#if defined(__SANITIZE_ADDRESS__)
#define BUF_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define BUF_CACHE 0
#endif
#endif
#endif
#ifndef BUF_CACHE
#define BUF_CACHE 1
#endif

#define CACHE_CLASSES 5                       /* BUF_MIN_SIZE << 0..4: 4, 8, 16, 32, 64 KiB */
#define CACHE_DEPTH 2048                      /* blocks kept per size */
#define CACHE_BYTES (16u * 1024u * 1024u)     /* ... and in all */
#define CACHE_IDLE_DEPTH 256                  /* once idle (buf_cache_trim): per size */
#define CACHE_IDLE_BYTES (4u * 1024u * 1024u) /* ... and in all */

struct buf_cache {
	void *blocks[CACHE_CLASSES][CACHE_DEPTH];
	unsigned n[CACHE_CLASSES];
	size_t bytes;
	struct idle_watch idle; /* uses: blocks taken from the cache */
};

#if BUF_CACHE
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static __thread struct buf_cache *cache; /* NULL: this thread keeps no blocks */

static void cache_drop(void *p)
{
	struct buf_cache *c = p;
	for (int k = 0; k < CACHE_CLASSES; k++)
		while (c->n[k] > 0)
			free(c->blocks[k][--c->n[k]]);
	free(c);
	cache = NULL;
}

static void cache_key_make(void)
{
	if (pthread_key_create(&cache_key, cache_drop) != 0)
		cache_key = (pthread_key_t)-1;
}

int buf_cache_thread_start(void)
{
	if (cache)
		return 0;
	pthread_once(&cache_once, cache_key_make);
	if (cache_key == (pthread_key_t)-1)
		return WEIR_ENOMEM;
	struct buf_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return WEIR_ENOMEM;
	if (pthread_setspecific(cache_key, c) != 0) {
		free(c);
		return WEIR_ENOMEM;
	}
	cache = c;
	return 0;
}

static struct buf_cache *cache_get(void)
{
	return cache;
}

void buf_cache_trim(uint64_t now_ms)
{
	struct buf_cache *c = cache;
	if (!c)
		return;
	if (!idle_for(&c->idle, now_ms, BUF_CACHE_IDLE_MS))
		return;
	for (int k = 0; k < CACHE_CLASSES; k++)
		while (c->n[k] > CACHE_IDLE_DEPTH) {
			free(c->blocks[k][--c->n[k]]);
			c->bytes -= (size_t)BUF_MIN_SIZE << k;
		}
	/* the largest blocks go first: they are the rarest need */
	for (int k = CACHE_CLASSES - 1; k >= 0 && c->bytes > CACHE_IDLE_BYTES; k--)
		while (c->n[k] > 0 && c->bytes > CACHE_IDLE_BYTES) {
			free(c->blocks[k][--c->n[k]]);
			c->bytes -= (size_t)BUF_MIN_SIZE << k;
		}
}
#else
int buf_cache_thread_start(void)
{
	return 0;
}

void buf_cache_trim(uint64_t now_ms)
{
}

static struct buf_cache *cache_get(void)
{
	return NULL;
}
#endif

/* The size class of size, or -1. */
static int size_class(size_t size)
{
	for (int k = 0; k < CACHE_CLASSES; k++)
		if (size == (size_t)BUF_MIN_SIZE << k)
			return k;
	return -1;
}

static void block_free(void *p, size_t size)
{
	struct buf_cache *c;
	int k = size_class(size);
	if (p && k >= 0 && (c = cache_get()) && c->n[k] < CACHE_DEPTH &&
	    c->bytes + size <= CACHE_BYTES) {
		c->blocks[k][c->n[k]++] = p;
		c->bytes += size;
		return;
	}
	free(p);
}

static void *block_take(size_t size)
{
	struct buf_cache *c;
	int k = size_class(size);
	if (k >= 0 && (c = cache_get()) && c->n[k] > 0) {
		c->bytes -= size;
		c->idle.uses++;
		return c->blocks[k][--c->n[k]];
	}
	return NULL;
}

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->start = b->end = b->size = 0;
	b->max = max;
	b->pinned = false;
}

void buf_free(struct buf *b)
{
	block_free(b->data, b->size);
	b->data = NULL;
	b->start = b->end = b->size = 0;
	b->pinned = false;
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
	/* a size up to the largest class goes up to its class (within the cap),
	 * so that freed blocks fit the next buffers */
	for (int k = 0; k < CACHE_CLASSES; k++) {
		size_t cs = (size_t)BUF_MIN_SIZE << k;
		if (size <= cs) {
			if (cs <= b->max)
				size = cs;
			break;
		}
	}
	char *p = block_take(size);
	if (p) {
		if (b->data) {
			memcpy(p, b->data, b->end);
			block_free(b->data, b->size);
		}
	} else if (!(p = realloc(b->data, size))) {
		return WEIR_ENOMEM;
	}
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

int buf_append_slow(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0; /* an empty buffer has no data pointer to add 0 to */
	if (buf_room(b, 0, n) < n)
		return WEIR_ETOOBIG;
	memcpy(b->data + b->end, p, n);
	b->end += n;
	return 0;
}

size_t buf_dec_u64(char out[BUF_DEC_MAX], uint64_t v)
{
	char tmp[BUF_DEC_MAX - 1];
	size_t i = sizeof(tmp);
	do
		tmp[--i] = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	size_t n = sizeof(tmp) - i;
	memcpy(out, tmp + i, n);
	out[n] = '\0';
	return n;
}
