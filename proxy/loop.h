/* proxy/loop.h - one worker's event loop: epoll (edge-triggered by the
 * caller's choice), a min-heap of timers with millisecond resolution, a
 * cross-thread wake-up, and deferred callbacks run after each batch of events
 * (so an object closed by one event is freed only once no other event of the
 * same batch can still point at it). No allocation per event; the timer heap
 * grows only when more timers are armed at once than ever before. */
#ifndef WEIR_PROXY_LOOP_H
#define WEIR_PROXY_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop; /* opaque */
struct loop_io;
struct loop_timer;
struct loop_defer;

typedef void (*loop_io_cb)(struct loop_io *io, uint32_t events);
typedef void (*loop_timer_cb)(struct loop_timer *t);
typedef void (*loop_defer_cb)(struct loop_defer *d);
typedef void (*loop_wake_cb)(void *data);

/* Caller storage: a file descriptor watched by a loop. */
struct loop_io {
	int fd;
	loop_io_cb cb;
	void *data;
};

/* Caller storage: a one-shot timer. index is SIZE_MAX while not armed. */
struct loop_timer {
	uint64_t deadline; /* loop_now() value when it fires */
	size_t index;
	loop_timer_cb cb;
	void *data;
};

/* Caller storage: a callback to run after the current batch of events. */
struct loop_defer {
	struct loop_defer *next;
	loop_defer_cb cb;
	void *data;
	bool queued;
};

/* Create a loop. wake_cb (may be NULL) runs in the loop thread after
 * loop_wake. Returns 0 and *out (caller frees with loop_free) or WEIR_E*. */
int loop_new(loop_wake_cb wake_cb, void *wake_data, struct loop **out);
/* Free a loop (NULL is fine); watched fds are not closed. */
void loop_free(struct loop *l);

/* Run until loop_stop. Returns 0, or WEIR_EIO when epoll fails. */
int loop_run(struct loop *l);
/* Make loop_run return after the current batch; loop thread only. */
void loop_stop(struct loop *l);
/* Wake the loop from any thread; wake_cb runs in the loop thread. */
void loop_wake(struct loop *l);

/* Monotonic milliseconds, refreshed once per batch (and by loop_update). */
uint64_t loop_now(const struct loop *l);
void loop_update(struct loop *l);

/* Watch io->fd for events (EPOLLIN, EPOLLOUT, EPOLLET...). io is borrowed
 * until loop_io_del. Returns 0 or WEIR_EIO. */
int loop_io_add(struct loop *l, struct loop_io *io, uint32_t events);
int loop_io_mod(struct loop *l, struct loop_io *io, uint32_t events);
void loop_io_del(struct loop *l, struct loop_io *io);

/* Prepare a timer (not armed). */
void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *data);
/* Arm (or re-arm) t to fire delay_ms from now. t is borrowed until it fires
 * or is cancelled. Returns 0, or WEIR_ENOMEM when the heap cannot grow (the
 * timer is then not armed). */
int loop_timer_set(struct loop *l, struct loop_timer *t, uint64_t delay_ms);
/* Disarm; a no-op on a timer that is not armed. */
void loop_timer_cancel(struct loop *l, struct loop_timer *t);
bool loop_timer_armed(const struct loop_timer *t);
/* Number of armed timers. */
size_t loop_timer_count(const struct loop *l);
/* Run every timer whose deadline is at or before now; used by loop_run and
 * by tests. */
void loop_run_timers(struct loop *l);

/* Queue d->cb to run after the current batch of events (once, even when
 * queued twice). Callbacks run in the order queued, so an object's free
 * queued after a pending callback on it runs after that callback. d is
 * borrowed until its callback runs. */
void loop_defer(struct loop *l, struct loop_defer *d, loop_defer_cb cb, void *data);
/* Queue d->cb to run in the next batch, after that batch's events: work cut
 * short to let the other fds be polled (a client sending faster than its
 * turn) goes on there. Once, even when queued twice, by this or by
 * loop_defer: d waits in one queue at a time (d->queued). */
void loop_yield(struct loop *l, struct loop_defer *d, loop_defer_cb cb, void *data);
/* Which batch of events is being handled (counts up): work that yielded in
 * this batch knows not to go on in it. */
uint64_t loop_batch(const struct loop *l);
/* Run the queued callbacks (and those they queue) now: after loop_run
 * returned, so that frees queued by the last closes are done. */
void loop_run_deferred(struct loop *l);

#endif
