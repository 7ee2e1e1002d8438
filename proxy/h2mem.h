/* proxy/h2mem.h - nghttp2's allocations for one worker's sessions, served
 * from free lists of small blocks the worker keeps. nghttp2 allocates and
 * frees several small objects per stream (the stream, its queued frames,
 * copies of header fields); with hundreds of streams in flight per worker
 * they overflow glibc's per-thread cache (7 blocks a size) and each one goes
 * through the shared heap's bins. Every call runs in the worker's thread.
 * Not in sanitized builds: there every block is malloc's own, so a late use
 * is caught. */
#ifndef WEIR_PROXY_H2MEM_H
#define WEIR_PROXY_H2MEM_H

#include <stdbool.h>
#include <stddef.h>

#include <nghttp2/nghttp2.h>

#define H2MEM_CLASSES 7 /* blocks of 32 << 0..6 bytes (32 B to 2 KiB) */

/* Caller storage (one worker's). Zero it, then h2_mem_init. */
struct h2_mem {
	void *free[H2MEM_CLASSES]; /* kept blocks, each holding the next one's address */
	size_t n[H2MEM_CLASSES];
	size_t bytes;  /* kept in all */
	bool released; /* cleaned up: frees go to free() */
};

/* Fill ng with allocation functions that use m; m is borrowed by every
 * session made with ng until the session is deleted. */
void h2_mem_init(struct h2_mem *m, nghttp2_mem *ng);

/* Free the kept blocks; later frees (none are due once the worker's
 * sessions are deleted) go to free(). */
void h2_mem_cleanup(struct h2_mem *m);

#endif
