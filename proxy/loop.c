/* proxy/loop.c - epoll + timer heap + deferred callbacks for one worker. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "loop.h"

#define LOOP_MAX_EVENTS 256
#define DEFER_ROUNDS 8 /* rounds of deferred callbacks per batch */

struct loop {
	int epfd;
	int wakefd;
	struct loop_io wake_io;
	loop_wake_cb wake_cb;
	void *wake_data;
	bool stop;
	uint64_t now;
	struct loop_timer **heap;
	size_t nheap, capheap;
	struct loop_defer *defer_head, *defer_tail; /* FIFO */
	struct loop_defer *later_head, *later_tail; /* FIFO: for the next batch */
	uint64_t batch;                             /* batches begun */
};

static uint64_t clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t loop_now(const struct loop *l)
{
	return l->now;
}

uint64_t loop_batch(const struct loop *l)
{
	return l->batch;
}

void loop_update(struct loop *l)
{
	l->now = clock_ms();
}

static void wake_read(struct loop_io *io, uint32_t events)
{
	struct loop *l = io->data;
	uint64_t v;
	while (read(l->wakefd, &v, sizeof(v)) > 0)
		;
	if (l->wake_cb)
		l->wake_cb(l->wake_data);
}

int loop_new(loop_wake_cb wake_cb, void *wake_data, struct loop **out)
{
	int rc = WEIR_ENOMEM;
	struct loop *l = calloc(1, sizeof(*l));
	if (!l)
		goto out;
	l->epfd = -1;
	l->wakefd = -1;
	rc = WEIR_EIO;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		goto out_free;
	l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->wakefd < 0)
		goto out_free;
	l->wake_cb = wake_cb;
	l->wake_data = wake_data;
	l->wake_io.fd = l->wakefd;
	l->wake_io.cb = wake_read;
	l->wake_io.data = l;
	if (loop_io_add(l, &l->wake_io, EPOLLIN) != 0)
		goto out_free;
	l->now = clock_ms();
	*out = l;
	return 0;
out_free:
	loop_free(l);
out:
	return rc;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->wakefd >= 0)
		close(l->wakefd);
	free(l->heap);
	free(l);
}

void loop_stop(struct loop *l)
{
	l->stop = true;
}

void loop_wake(struct loop *l)
{
	uint64_t one = 1;
	ssize_t n = write(l->wakefd, &one, sizeof(one));
	(void)n;
}

int loop_io_add(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = io};
	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev) == 0 ? 0 : WEIR_EIO;
}

int loop_io_mod(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = io};
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) == 0 ? 0 : WEIR_EIO;
}

void loop_io_del(struct loop *l, struct loop_io *io)
{
	if (io->fd >= 0)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

/* ---- timer heap ---- */

void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *data)
{
	t->deadline = 0;
	t->index = SIZE_MAX;
	t->cb = cb;
	t->data = data;
}

bool loop_timer_armed(const struct loop_timer *t)
{
	return t->index != SIZE_MAX;
}

size_t loop_timer_count(const struct loop *l)
{
	return l->nheap;
}

static void heap_swap(struct loop *l, size_t a, size_t b)
{
	struct loop_timer *t = l->heap[a];
	l->heap[a] = l->heap[b];
	l->heap[b] = t;
	l->heap[a]->index = a;
	l->heap[b]->index = b;
}

static void heap_up(struct loop *l, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (l->heap[p]->deadline <= l->heap[i]->deadline)
			break;
		heap_swap(l, p, i);
		i = p;
	}
}

static void heap_down(struct loop *l, size_t i)
{
	for (;;) {
		size_t a = 2 * i + 1, b = a + 1, m = i;
		if (a < l->nheap && l->heap[a]->deadline < l->heap[m]->deadline)
			m = a;
		if (b < l->nheap && l->heap[b]->deadline < l->heap[m]->deadline)
			m = b;
		if (m == i)
			break;
		heap_swap(l, i, m);
		i = m;
	}
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	size_t i = t->index;
	if (i == SIZE_MAX)
		return;
	t->index = SIZE_MAX;
	l->nheap--;
	if (i == l->nheap)
		return;
	l->heap[i] = l->heap[l->nheap];
	l->heap[i]->index = i;
	heap_up(l, i);
	heap_down(l, l->heap[i]->index);
}

int loop_timer_set(struct loop *l, struct loop_timer *t, uint64_t delay_ms)
{
	loop_timer_cancel(l, t);
	if (l->nheap == l->capheap) {
		size_t cap = l->capheap ? l->capheap * 2 : 64;
		struct loop_timer **h = realloc(l->heap, cap * sizeof(*h));
		if (!h)
			return WEIR_ENOMEM;
		l->heap = h;
		l->capheap = cap;
	}
	t->deadline = l->now + delay_ms;
	t->index = l->nheap;
	l->heap[l->nheap++] = t;
	heap_up(l, t->index);
	return 0;
}

void loop_run_timers(struct loop *l)
{
	/* Bounded by the number of timers armed now: a callback that re-arms
	 * for "now" runs in the next round. */
	size_t budget = l->nheap;
	while (l->nheap > 0 && budget-- > 0) {
		struct loop_timer *t = l->heap[0];
		if (t->deadline > l->now)
			break;
		loop_timer_cancel(l, t);
		t->cb(t);
	}
}

/* Append d to the FIFO *head..*tail unless it waits in a queue already. */
static void enqueue(struct loop_defer **head, struct loop_defer **tail, struct loop_defer *d,
                    loop_defer_cb cb, void *data)
{
	if (d->queued)
		return;
	d->queued = true;
	d->cb = cb;
	d->data = data;
	d->next = NULL;
	if (*tail)
		(*tail)->next = d;
	else
		*head = d;
	*tail = d;
}

void loop_defer(struct loop *l, struct loop_defer *d, loop_defer_cb cb, void *data)
{
	enqueue(&l->defer_head, &l->defer_tail, d, cb, data);
}

void loop_yield(struct loop *l, struct loop_defer *d, loop_defer_cb cb, void *data)
{
	enqueue(&l->later_head, &l->later_tail, d, cb, data);
}

/* What loop_yield queued joins the callbacks of the batch now starting. */
static void take_later(struct loop *l)
{
	if (!l->later_head)
		return;
	if (l->defer_tail)
		l->defer_tail->next = l->later_head;
	else
		l->defer_head = l->later_head;
	l->defer_tail = l->later_tail;
	l->later_head = l->later_tail = NULL;
}

/* Run the callbacks queued so far, in order (a free queued after a resume
 * runs after it); ones they queue wait for the next round. */
static void run_deferred(struct loop *l)
{
	struct loop_defer *d = l->defer_head;
	l->defer_head = l->defer_tail = NULL;
	while (d) {
		struct loop_defer *next = d->next;
		d->queued = false;
		d->cb(d);
		d = next;
	}
}

/* Callbacks queued by callbacks run in the same batch too, up to a few
 * rounds (a chan's notifications hop between its two sides); more wait for
 * the next batch, polled without blocking, so none can starve the fds. */
static void run_deferred_rounds(struct loop *l)
{
	for (int i = 0; i < DEFER_ROUNDS && l->defer_head; i++)
		run_deferred(l);
}

void loop_run_deferred(struct loop *l)
{
	for (take_later(l); l->defer_head; take_later(l))
		run_deferred(l);
}

int loop_run(struct loop *l)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];
	l->stop = false;
	while (!l->stop) {
		int timeout = -1;
		l->now = clock_ms();
		if (l->nheap > 0) {
			uint64_t d = l->heap[0]->deadline;
			timeout = d <= l->now ? 0 : (int)(d - l->now);
		}
		if (l->defer_head || l->later_head)
			timeout = 0;
		int n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return WEIR_EIO;
		}
		l->now = clock_ms();
		l->batch++;
		take_later(l);
		for (int i = 0; i < n; i++) {
			struct loop_io *io = evs[i].data.ptr;
			io->cb(io, evs[i].events);
		}
		run_deferred_rounds(l);
		loop_run_timers(l);
		run_deferred_rounds(l);
	}
	return 0;
}
