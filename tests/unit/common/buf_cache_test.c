/* tests/unit/common/buf_cache_test.c - a thread's cache of freed buffer
 * blocks: a burst fills it up to 2048 blocks a size and 16 MiB, the next
 * buffers take from it, and once it has gone BUF_CACHE_IDLE_MS without being
 * drawn on buf_cache_trim gives back all over 256 a size and 4 MiB.
 * Sanitized builds keep no cache, so this test turns it on and includes
 * buf.c itself. */
#define BUF_CACHE 1
#include "check.h"
#include "common/buf.c"

#define KIB 1024u
#define MIB (1024u * 1024u)

static size_t held(int k)
{
	return cache->n[k];
}

/* Make n buffers of size bytes each (a size class), then free them all: the
 * cache keeps what its bounds allow. */
static void burst(struct buf *bufs, size_t n, size_t size)
{
	for (size_t i = 0; i < n; i++) {
		buf_init(&bufs[i], size);
		CHECK(buf_room(&bufs[i], 0, size) == size);
	}
	for (size_t i = 0; i < n; i++)
		buf_free(&bufs[i]);
}

static void test_burst_then_idle(void)
{
	static struct buf bufs[4096];
	CHECK_INT(buf_cache_thread_start(), 0);
	CHECK(cache != NULL);

	/* 3000 blocks of 4 KiB: 2048 kept (8 MiB), the rest freed */
	burst(bufs, 3000, 4 * KIB);
	CHECK_INT(held(0), CACHE_DEPTH);
	CHECK_INT(cache->bytes, 8 * MIB);
	/* 200 of 64 KiB: 12.5 MiB more would pass 16 MiB, so 128 fit */
	burst(bufs, 200, 64 * KIB);
	CHECK_INT(held(4), 128);
	CHECK_INT(cache->bytes, 16 * MIB);

	/* the next buffers come from the cache */
	struct buf b;
	buf_init(&b, 4 * KIB);
	void *top = cache->blocks[0][held(0) - 1];
	CHECK(buf_room(&b, 0, 100) == 4 * KIB);
	CHECK(b.data == top);
	CHECK_INT(held(0), CACHE_DEPTH - 1);

	/* that was a draw: nothing goes back until BUF_CACHE_IDLE_MS after the
	 * trim that saw it */
	buf_cache_trim(1000);
	CHECK_INT(cache->bytes, 16 * MIB - 4 * KIB);
	buf_cache_trim(1000 + BUF_CACHE_IDLE_MS - 1);
	CHECK_INT(cache->bytes, 16 * MIB - 4 * KIB);

	/* a draw in between restarts the wait */
	buf_free(&b);
	CHECK(buf_room(&b, 0, 100) == 4 * KIB);
	buf_cache_trim(1000 + BUF_CACHE_IDLE_MS);
	CHECK_INT(cache->bytes, 16 * MIB - 4 * KIB);
	buf_cache_trim(1000 + 2 * BUF_CACHE_IDLE_MS - 1);
	CHECK_INT(cache->bytes, 16 * MIB - 4 * KIB);

	/* idle long enough: down to 256 a size and 4 MiB in all, the largest
	 * blocks first */
	buf_cache_trim(1000 + 2 * BUF_CACHE_IDLE_MS);
	CHECK(cache->bytes <= CACHE_IDLE_BYTES);
	for (int k = 0; k < CACHE_CLASSES; k++)
		CHECK(held(k) <= CACHE_IDLE_DEPTH);
	CHECK_INT(held(0), CACHE_IDLE_DEPTH);                      /* 1 MiB */
	CHECK_INT(held(4), (CACHE_IDLE_BYTES - MIB) / (64 * KIB)); /* 3 MiB */
	CHECK_INT(cache->bytes, CACHE_IDLE_BYTES);
	size_t sum = 0;
	for (int k = 0; k < CACHE_CLASSES; k++)
		sum += held(k) * ((size_t)BUF_MIN_SIZE << k);
	CHECK_INT(sum, cache->bytes);

	/* and within the bound a trim keeps everything */
	buf_cache_trim(1000 + 3 * BUF_CACHE_IDLE_MS);
	CHECK_INT(cache->bytes, CACHE_IDLE_BYTES);

	/* the cache still serves */
	buf_free(&b);
	CHECK_INT(held(0), CACHE_IDLE_DEPTH + 1);
	CHECK(buf_room(&b, 0, 100) == 4 * KIB);
	CHECK_INT(held(0), CACHE_IDLE_DEPTH);
	buf_free(&b);

	cache_drop(cache);
	CHECK(cache == NULL);
	buf_cache_trim(1000 + 4 * BUF_CACHE_IDLE_MS); /* no cache: nothing to do */
}

int main(void)
{
	test_burst_then_idle();
	return check_finish("buf_cache_test");
}
