/* proxy/chan.h - an in-memory byte stream between two parties on one
 * worker's loop: an HTTP/2 stream (side CHAN_A) and the HTTP/1.1 data path
 * connection that serves it (side CHAN_B). It does what a pair of AF_UNIX
 * sockets did, without a system call: bytes one side writes wait in a
 * bounded buffer until the other reads them, and each side hears of what
 * changed (bytes to read, room to write, the other side gone) through its
 * loop_io callback, with epoll's event bits, always from a deferred callback
 * (never from inside the other side's call). */
#ifndef WEIR_PROXY_CHAN_H
#define WEIR_PROXY_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "loop.h"

enum { CHAN_A = 0, CHAN_B = 1 };

struct chan; /* opaque */

/* A channel whose buffers hold at most cap bytes each way. NULL when out of
 * memory. Both sides hold it until each calls chan_close. */
struct chan *chan_new(struct loop *l, size_t cap);

/* Tell io (its cb, with EPOLLIN/EPOLLOUT/EPOLLRDHUP/EPOLLHUP bits) when
 * side's readiness changes; NULL: tell nobody. io is borrowed until replaced.
 * A side just watched is told EPOLLIN|EPOLLOUT (with EPOLLRDHUP|EPOLLHUP
 * when the other side is gone), as epoll does on registration. */
void chan_watch(struct chan *ch, int side, struct loop_io *io);

/* Read what the other side wrote. Returns bytes (> 0), 0 once the other
 * side closed and every byte it wrote was read, or WEIR_EAGAIN. */
ssize_t chan_read(struct chan *ch, int side, void *buf, size_t len);

/* Write to the other side. Returns bytes taken (> 0, fewer than len when
 * the buffer fills), WEIR_EAGAIN when it is full, or WEIR_EIO when the
 * other side closed (as EPIPE). */
ssize_t chan_write(struct chan *ch, int side, const void *buf, size_t len);

/* Bytes waiting for side to read. */
size_t chan_pending(const struct chan *ch, int side);

/* The other side closed. */
bool chan_peer_closed(const struct chan *ch, int side);

/* side lets go (no callback reaches it after this); the channel is freed,
 * after the current batch, once both sides did. */
void chan_close(struct chan *ch, int side);

#endif
