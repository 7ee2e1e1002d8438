/* tests/unit/common/buf_test.c - the capped buffer: no memory until bytes need
 * room, growth by doubling up to the hard cap and never past it, a pinned
 * buffer that does not move, compaction above a floor, and memory given back
 * while keeping the cap. */
#include "check.h"
#include "common/buf.h"
#include "common/error.h"

#include <string.h>

static void test_lazy_and_capped(void)
{
	struct buf b;
	buf_init(&b, 10000);
	CHECK(b.data == NULL);
	CHECK_INT(b.size, 0);
	CHECK_INT(buf_len(&b), 0);
	/* the first room is BUF_MIN_SIZE, then it doubles */
	CHECK_INT(buf_room(&b, 0, 100), BUF_MIN_SIZE);
	CHECK(b.data != NULL);
	char chunk[1000];
	memset(chunk, 'a', sizeof(chunk));
	for (int i = 0; i < 5; i++)
		CHECK_INT(buf_append(&b, chunk, sizeof(chunk)), 0);
	CHECK_INT(b.size, 2 * BUF_MIN_SIZE);
	CHECK_INT(buf_len(&b), 5000);
	/* up to the cap exactly, and not one byte more */
	for (int i = 0; i < 5; i++)
		CHECK_INT(buf_append(&b, chunk, sizeof(chunk)), 0);
	CHECK_INT(b.size, 10000);
	CHECK_INT(buf_len(&b), 10000);
	CHECK_INT(buf_append(&b, "x", 1), WEIR_ETOOBIG);
	CHECK_INT(buf_len(&b), 10000);
	CHECK_INT(buf_room(&b, 0, 4096), 0);
	/* consumed bytes make room again by compaction, not growth */
	b.start += 3000;
	CHECK_INT(buf_room(&b, 0, 2000), 3000);
	CHECK_INT(b.start, 0);
	CHECK_INT(b.size, 10000);
	CHECK(b.data[0] == 'a' && b.data[6999] == 'a');
	/* freed: no memory, same cap, usable again */
	buf_free(&b);
	CHECK(b.data == NULL);
	CHECK_INT(b.max, 10000);
	CHECK_INT(buf_len(&b), 0);
	CHECK_INT(buf_append(&b, "hello", 5), 0);
	CHECK_INT(memcmp(b.data, "hello", 5), 0);
	buf_free(&b);
}

static void test_small_cap(void)
{
	struct buf b;
	buf_init(&b, 100);
	CHECK_INT(buf_room(&b, 0, 1), 100); /* never above the cap */
	CHECK_INT(buf_room(&b, 0, 1000), 100);
	buf_free(&b);
}

static void test_pinned_and_floor(void)
{
	struct buf b;
	buf_init(&b, 65536);
	CHECK_INT(buf_append(&b, "HEAD", 4), 0);
	CHECK_INT(buf_append(&b, "body", 4), 0);
	b.start = 4; /* the head stays below floor 4 */
	b.pinned = true;
	char *before = b.data;
	size_t size = b.size;
	/* pinned: short room is not grown */
	CHECK_INT(buf_room(&b, 4, 2 * BUF_MIN_SIZE), size - 8);
	CHECK(b.data == before);
	/* compaction moves only what is above the floor */
	b.start = 6;
	CHECK_INT(buf_room(&b, 4, BUF_MIN_SIZE), size - 6);
	CHECK_INT(memcmp(b.data, "HEADdy", 6), 0);
	/* empty: restarts at the floor */
	b.start = b.end;
	CHECK_INT(buf_room(&b, 4, 1), size - 4);
	CHECK_INT(b.start, 4);
	/* unpinned: grows, keeping the bytes */
	b.pinned = false;
	CHECK_INT(buf_room(&b, 4, 3 * BUF_MIN_SIZE) >= 3 * BUF_MIN_SIZE, 1);
	CHECK_INT(memcmp(b.data, "HEAD", 4), 0);
	buf_free(&b);
	CHECK(!b.pinned);
}

static void test_dec(void)
{
	char out[BUF_DEC_MAX];
	CHECK_INT(buf_dec_u64(out, 0), 1);
	CHECK_STR(out, "0");
	CHECK_INT(buf_dec_u64(out, 65535), 5);
	CHECK_STR(out, "65535");
	CHECK_INT(buf_dec_u64(out, UINT64_MAX), 20);
	CHECK_STR(out, "18446744073709551615");
}

int main(void)
{
	test_lazy_and_capped();
	test_small_cap();
	test_pinned_and_floor();
	test_dec();
	return check_finish("buf_test");
}
