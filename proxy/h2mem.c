/* proxy/h2mem.c - free lists of small blocks for nghttp2 (see h2mem.h).
 * Each block has a 16-byte prefix naming its class (H2MEM_CLASSES for one
 * bigger than the largest class, which goes to malloc and back to free), so
 * that free and realloc, which nghttp2 calls without a size, find it; the
 * prefix keeps the 16-byte alignment malloc gives. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h2mem.h"
#include "spare.h" /* SPARE_KEEP: 0 in sanitized builds */

#define PREFIX 16u
#define MIN_BLOCK 32u
#define KEEP_PER_CLASS 4096u
#define KEEP_BYTES (4u * 1024u * 1024u)

static size_t class_size(unsigned k)
{
	return (size_t)MIN_BLOCK << k;
}

/* The smallest class that holds size bytes, or H2MEM_CLASSES. */
static unsigned class_of(size_t size)
{
	unsigned k = 0;
	while (k < H2MEM_CLASSES && class_size(k) < size)
		k++;
	return k;
}

static unsigned *prefix_of(void *p)
{
	return (unsigned *)((char *)p - PREFIX);
}

static void *mem_malloc(size_t size, void *ud)
{
	struct h2_mem *m = ud;
	unsigned k = class_of(size);
	if (SPARE_KEEP && k < H2MEM_CLASSES && m->free[k]) {
		void *p = m->free[k];
		m->free[k] = *(void **)p;
		m->n[k]--;
		m->bytes -= class_size(k);
		return p;
	}
	size_t need = k < H2MEM_CLASSES ? class_size(k) : size;
	if (need > SIZE_MAX - PREFIX)
		return NULL;
	char *raw = malloc(PREFIX + need);
	if (!raw)
		return NULL;
	*(unsigned *)raw = k;
	return raw + PREFIX;
}

static void mem_free(void *p, void *ud)
{
	struct h2_mem *m = ud;
	if (!p)
		return;
	unsigned k = *prefix_of(p);
	if (SPARE_KEEP && k < H2MEM_CLASSES && !m->released && m->n[k] < KEEP_PER_CLASS &&
	    m->bytes + class_size(k) <= KEEP_BYTES) {
		*(void **)p = m->free[k];
		m->free[k] = p;
		m->n[k]++;
		m->bytes += class_size(k);
		return;
	}
	free(prefix_of(p));
}

static void *mem_calloc(size_t nmemb, size_t size, void *ud)
{
	if (size && nmemb > SIZE_MAX / size)
		return NULL;
	void *p = mem_malloc(nmemb * size, ud);
	if (p)
		memset(p, 0, nmemb * size);
	return p;
}

static void *mem_realloc(void *p, size_t size, void *ud)
{
	if (!p)
		return mem_malloc(size, ud);
	unsigned k = *prefix_of(p);
	if (k < H2MEM_CLASSES && size <= class_size(k))
		return p;
	if (k == H2MEM_CLASSES && class_of(size) == H2MEM_CLASSES) {
		if (size > SIZE_MAX - PREFIX)
			return NULL;
		char *raw = realloc(prefix_of(p), PREFIX + size);
		return raw ? raw + PREFIX : NULL;
	}
	/* across classes: a new block; the old one holds at most its class
	 * size, or (a big one shrinking into a class) more than size */
	void *q = mem_malloc(size, ud);
	if (!q)
		return NULL;
	size_t old = k < H2MEM_CLASSES ? class_size(k) : size;
	memcpy(q, p, old < size ? old : size);
	mem_free(p, ud);
	return q;
}

/* Sanitized builds (SPARE_KEEP 0): malloc's own blocks of the exact size,
 * as nghttp2 allocates without us, so that AddressSanitizer sees every
 * overrun and its quarantine grows no faster than before (a block of a
 * class is up to twice the size asked for). Sizes past PTRDIFF_MAX are
 * refused here: the sanitizer would abort on them. */
static void *plain_malloc(size_t size, void *ud)
{
	(void)ud;
	return size > PTRDIFF_MAX ? NULL : malloc(size);
}

static void plain_free(void *p, void *ud)
{
	(void)ud;
	free(p);
}

static void *plain_calloc(size_t nmemb, size_t size, void *ud)
{
	(void)ud;
	if (size && nmemb > PTRDIFF_MAX / size)
		return NULL;
	return calloc(nmemb, size);
}

static void *plain_realloc(void *p, size_t size, void *ud)
{
	(void)ud;
	return size > PTRDIFF_MAX ? NULL : realloc(p, size ? size : 1); /* 0 would free p */
}

void h2_mem_init(struct h2_mem *m, nghttp2_mem *ng)
{
	m->released = false;
	ng->mem_user_data = m;
	if (!SPARE_KEEP) {
		ng->malloc = plain_malloc;
		ng->free = plain_free;
		ng->calloc = plain_calloc;
		ng->realloc = plain_realloc;
		return;
	}
	ng->malloc = mem_malloc;
	ng->free = mem_free;
	ng->calloc = mem_calloc;
	ng->realloc = mem_realloc;
}

void h2_mem_cleanup(struct h2_mem *m)
{
	for (unsigned k = 0; k < H2MEM_CLASSES; k++) {
		while (m->free[k]) {
			void *p = m->free[k];
			m->free[k] = *(void **)p;
			free(prefix_of(p));
		}
		m->n[k] = 0;
	}
	m->bytes = 0;
	m->released = true;
}
