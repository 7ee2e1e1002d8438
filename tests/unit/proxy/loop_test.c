/* tests/unit/proxy/loop_test.c - timers fire in deadline order, cancel and
 * re-arm work, deferred callbacks run in order after the batch, yielded
 * ones in the next batch after its events, fd events and the cross-thread
 * wake reach their callbacks. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "proxy/loop.h"

#define NTIMERS 500

static int fired[NTIMERS + 16];
static int nfired;
static struct loop *L;

static void record(struct loop_timer *t)
{
	fired[nfired++] = (int)(intptr_t)t->data;
}

static void test_order_and_cancel(void)
{
	static struct loop_timer ts[NTIMERS];
	uint64_t delays[NTIMERS];
	unsigned r = 7;
	nfired = 0;
	for (int i = 0; i < NTIMERS; i++) {
		r = r * 1103515245u + 12345u;
		delays[i] = (r >> 16) % 1000;
		loop_timer_init(&ts[i], record, (void *)(intptr_t)i);
		CHECK_INT(loop_timer_set(L, &ts[i], delays[i]), 0);
	}
	CHECK_INT(loop_timer_count(L), NTIMERS);
	/* cancel every third timer, re-arm every fifth to a later time */
	bool cancelled[NTIMERS];
	for (int i = 0; i < NTIMERS; i++) {
		cancelled[i] = i % 3 == 0;
		if (cancelled[i]) {
			loop_timer_cancel(L, &ts[i]);
			CHECK(!loop_timer_armed(&ts[i]));
		} else if (i % 5 == 0) {
			delays[i] += 1000;
			loop_timer_set(L, &ts[i], delays[i]);
		}
	}
	loop_timer_cancel(L, &ts[0]); /* twice is a no-op */
	/* let them come due (at most 2 s) */
	uint64_t start = loop_now(L);
	while (loop_timer_count(L) > 0 && loop_now(L) - start < 5000) {
		struct timespec ts_sleep = {0, 5 * 1000 * 1000};
		nanosleep(&ts_sleep, NULL);
		loop_update(L);
		loop_run_timers(L);
	}
	int expected = 0;
	for (int i = 0; i < NTIMERS; i++)
		expected += !cancelled[i];
	CHECK_INT(nfired, expected);
	/* in deadline order, and no cancelled one */
	for (int i = 0; i < nfired; i++) {
		CHECK(!cancelled[fired[i]]);
		if (i > 0)
			CHECK(ts[fired[i - 1]].deadline <= ts[fired[i]].deadline);
	}
	CHECK_INT(loop_timer_count(L), 0);
}

static int defer_order[8];
static int ndefer;

static void defer_cb(struct loop_defer *d)
{
	defer_order[ndefer++] = (int)(intptr_t)d->data;
}

static struct loop_defer d1, d2, d3;

static void stop_cb(struct loop_timer *t)
{
	/* queue deferred work from inside the loop, then stop */
	loop_defer(L, &d1, defer_cb, (void *)1);
	loop_defer(L, &d2, defer_cb, (void *)2);
	loop_defer(L, &d1, defer_cb, (void *)1); /* already queued: once */
	loop_defer(L, &d3, defer_cb, (void *)3);
	loop_stop(L);
}

static int io_hits;
static char io_byte;

static void io_cb(struct loop_io *io, uint32_t events)
{
	if (events & EPOLLIN) {
		io_hits++;
		if (read(io->fd, &io_byte, 1) != 1)
			io_byte = 0;
	}
}

static int wakes;
static void wake_cb(void *data)
{
	wakes++;
	loop_stop(L);
}

static void *waker(void *arg)
{
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
	loop_wake(arg);
	return NULL;
}

static void test_run_defer_io_wake(void)
{
	struct loop_timer t;
	loop_timer_init(&t, stop_cb, NULL);
	CHECK_INT(loop_timer_set(L, &t, 10), 0);
	ndefer = 0;
	CHECK_INT(loop_run(L), 0);
	CHECK_INT(ndefer, 3);
	CHECK_INT(defer_order[0], 1);
	CHECK_INT(defer_order[1], 2);
	CHECK_INT(defer_order[2], 3);

	int p[2];
	CHECK_INT(pipe(p), 0);
	struct loop_io io = {.fd = p[0], .cb = io_cb, .data = NULL};
	CHECK_INT(loop_io_add(L, &io, EPOLLIN), 0);
	CHECK_INT(write(p[1], "x", 1), 1);
	loop_timer_init(&t, stop_cb, NULL);
	loop_timer_set(L, &t, 50);
	CHECK_INT(loop_run(L), 0);
	CHECK_INT(io_hits, 1);
	CHECK_INT(io_byte, 'x');
	loop_io_del(L, &io);
	close(p[0]);
	close(p[1]);

	pthread_t th;
	CHECK_INT(pthread_create(&th, NULL, waker, L), 0);
	struct loop_timer guard;
	loop_timer_init(&guard, stop_cb, NULL);
	loop_timer_set(L, &guard, 5000); /* bound the test if the wake is lost */
	CHECK_INT(loop_run(L), 0);
	pthread_join(th, NULL);
	CHECK_INT(wakes, 1);
	CHECK(loop_timer_armed(&guard));
	loop_timer_cancel(L, &guard);
}

/* loop_yield: the callback runs in the next batch, after that batch's fd
 * events, once however often it is queued; one that yields again runs one
 * batch later each time (never twice in a batch); loop_run_deferred runs
 * what is left. */
static struct {
	char what;
	uint64_t batch;
} ylog[16];
static int nylog;
static struct loop_defer y1, y2, yd;
static int ypipe[2];
static int yield_again;

static void ylog_add(char what)
{
	ylog[nylog].what = what;
	ylog[nylog++].batch = loop_batch(L);
}

static void y_cb(struct loop_defer *d)
{
	ylog_add((char)(intptr_t)d->data);
	if (d == &y1 && yield_again-- > 0)
		loop_yield(L, &y1, y_cb, (void *)'y');
	else if (d == &y1)
		loop_stop(L);
}

static void y_io(struct loop_io *io, uint32_t events)
{
	char c;
	if ((events & EPOLLIN) && read(io->fd, &c, 1) == 1)
		ylog_add('i');
}

static void y_start(struct loop_timer *t)
{
	(void)t;
	ylog_add('t');
	loop_yield(L, &y1, y_cb, (void *)'y');
	loop_yield(L, &y1, y_cb, (void *)'y'); /* queued: once */
	loop_defer(L, &y1, y_cb, (void *)'y'); /* queued to the next batch: stays there */
	loop_defer(L, &yd, y_cb, (void *)'d');
	if (write(ypipe[1], "x", 1) != 1)
		ylog_add('!');
}

static void test_yield(void)
{
	CHECK_INT(pipe(ypipe), 0);
	struct loop_io io = {.fd = ypipe[0], .cb = y_io, .data = NULL};
	CHECK_INT(loop_io_add(L, &io, EPOLLIN), 0);
	struct loop_timer t;
	loop_timer_init(&t, y_start, NULL);
	CHECK_INT(loop_timer_set(L, &t, 1), 0);
	yield_again = 2;
	nylog = 0;
	CHECK_INT(loop_run(L), 0);
	/* t d (batch N), i y (N+1), y (N+2), y (N+3) */
	CHECK_INT(nylog, 6);
	if (nylog == 6) {
		const char *want = "tdiyyy";
		for (int i = 0; i < 6; i++)
			CHECK_INT(ylog[i].what, want[i]);
		CHECK(ylog[1].batch == ylog[0].batch);
		CHECK(ylog[2].batch == ylog[0].batch + 1);
		CHECK(ylog[3].batch == ylog[0].batch + 1);
		CHECK(ylog[4].batch == ylog[0].batch + 2);
		CHECK(ylog[5].batch == ylog[0].batch + 3);
	}
	/* left over when the loop stops: loop_run_deferred runs it */
	nylog = 0;
	loop_yield(L, &y2, y_cb, (void *)'z');
	loop_run_deferred(L);
	CHECK_INT(nylog, 1);
	CHECK_INT(ylog[0].what, 'z');
	loop_io_del(L, &io);
	close(ypipe[0]);
	close(ypipe[1]);
}

int main(void)
{
	CHECK_INT(loop_new(wake_cb, NULL, &L), 0);
	if (!L)
		return check_finish("loop_test");
	test_order_and_cancel();
	test_run_defer_io_wake();
	test_yield();
	loop_free(L);
	return check_finish("loop_test");
}
