/* common/buf.h - a byte buffer with a hard size cap fixed at creation (as
 * curl's dynbuf): it holds no memory until bytes need room, grows by doubling
 * up to the cap, and its owner gives the memory back (buf_free) while it is
 * empty, so an idle connection costs only this struct. Bytes live in
 * data[start, end). */
#ifndef WEIR_COMMON_BUF_H
#define WEIR_COMMON_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BUF_MIN_SIZE 4096u /* first allocation, unless the cap is smaller */

/* Caller storage. */
struct buf {
	char *data; /* NULL while nothing is allocated */
	size_t start, end;
	size_t size; /* bytes allocated */
	size_t max;  /* hard cap on size, set by buf_init */
	bool pinned; /* the memory must not move: no growth (compaction still moves
	              * bytes above the floor the caller names) */
};

/* Prepare b, empty, with a hard cap of max bytes. Allocates nothing. */
void buf_init(struct buf *b, size_t max);

/* Give the memory back; the contents are dropped, the cap and an empty
 * buffer remain (b can be used again). */
void buf_free(struct buf *b);

/* Bytes held. Inline: the data path asks this many times a request. */
static inline size_t buf_len(const struct buf *b)
{
	return b->end - b->start;
}

/* Drop the first n bytes (n <= buf_len); an emptied buffer restarts at 0. */
void buf_consume(struct buf *b, size_t n);

/* Move the bytes down to offset floor (nothing below floor is touched). */
void buf_compact(struct buf *b, size_t floor);

/* Room after end, trying for at least want bytes: an empty buffer restarts
 * at floor; when the room is short the bytes move down to floor, then
 * (unless pinned) the memory grows, at least doubling, never past the cap.
 * Growing moves data, so no pointer into it survives this call unless b is
 * pinned. Returns the room, which is less than want when the cap is reached
 * or memory is short (0 with data NULL when nothing could be allocated). */
size_t buf_room(struct buf *b, size_t floor, size_t want);

/* buf_append when the bytes do not simply go after the others. */
int buf_append_slow(struct buf *b, const void *p, size_t n);

/* Append n bytes (growing as needed). Returns 0, or WEIR_ETOOBIG when they do
 * not fit under the cap (or memory is short); b is then unchanged. Inline
 * for the common case (an HTTP/2 request head is made of dozens of
 * appends): bytes held and room for n after them. */
static inline int buf_append(struct buf *b, const void *p, size_t n)
{
	if (b->start != b->end && b->size - b->end >= n) {
		memcpy(b->data + b->end, p, n);
		b->end += n;
		return 0;
	}
	return buf_append_slow(b, p, n);
}

/* Let the calling thread keep freed blocks of 4 to 64 KiB (up to 16 MiB in
 * all) for its next buffers, given back when it ends: for threads
 * whose buffers come and go with each request (the proxy's workers). A
 * no-op in sanitized builds. Returns 0 or WEIR_ENOMEM (no cache then). */
int buf_cache_thread_start(void);

/* How long the calling thread's cache must go without being drawn on
 * before buf_cache_trim gives back what it holds over the idle bound. */
#define BUF_CACHE_IDLE_MS 5000u

/* Call from the thread's periodic timer, now_ms its monotonic clock: once
 * no block has been taken from the cache for BUF_CACHE_IDLE_MS, the blocks
 * over 256 of a size and 4 MiB in all are freed, so an idle thread keeps no
 * more than that whatever burst came before. A no-op without a cache. */
void buf_cache_trim(uint64_t now_ms);

/* v in decimal into out, NUL-terminated; returns the digit count (1..20).
 * For text made on every request, where snprintf's format parse costs. */
#define BUF_DEC_MAX 21
size_t buf_dec_u64(char out[BUF_DEC_MAX], uint64_t v);

#endif
