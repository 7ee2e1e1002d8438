/* tests/unit/proxy/chan_test.c - the in-memory channel between an HTTP/2
 * stream and the data path: bytes arrive in order and bounded, each side
 * hears of bytes, room and the other side's close only from deferred
 * callbacks, a closed side hears nothing more, and the channel is freed once
 * both sides let go (the sanitized build checks that no byte leaks). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "check.h"
#include "error.h"
#include "proxy/chan.h"
#include "proxy/loop.h"

static struct loop *L;

struct watcher {
	struct loop_io io;
	int calls;
	uint32_t events; /* ORed over the calls */
};

static void on_io(struct loop_io *io, uint32_t events)
{
	struct watcher *w = io->data;
	w->calls++;
	w->events |= events;
}

static void watcher_init(struct watcher *w)
{
	memset(w, 0, sizeof(*w));
	w->io.fd = -1;
	w->io.cb = on_io;
	w->io.data = w;
}

static void test_bytes_and_events(void)
{
	struct chan *ch = chan_new(L, 8);
	struct watcher a, b;
	watcher_init(&a);
	watcher_init(&b);
	chan_watch(ch, CHAN_A, &a.io);
	chan_watch(ch, CHAN_B, &b.io);
	CHECK_INT(a.calls, 0); /* nothing from inside a call */
	loop_run_deferred(L);
	CHECK_INT(a.calls, 1);
	CHECK(a.events & EPOLLIN && a.events & EPOLLOUT && !(a.events & EPOLLRDHUP));
	CHECK_INT(b.calls, 1);
	a.calls = b.calls = 0;
	a.events = b.events = 0;

	char buf[32];
	CHECK_INT(chan_read(ch, CHAN_B, buf, sizeof(buf)), WEIR_EAGAIN);
	/* the cap bounds what waits: 8 of 11 bytes are taken, then none */
	CHECK_INT(chan_write(ch, CHAN_A, "hello world", 11), 8);
	CHECK_INT(chan_write(ch, CHAN_A, "rld", 3), WEIR_EAGAIN);
	CHECK_INT(chan_pending(ch, CHAN_B), 8);
	CHECK_INT(chan_pending(ch, CHAN_A), 0);
	loop_run_deferred(L);
	CHECK_INT(b.calls, 1); /* told once for two writes */
	CHECK(b.events == EPOLLIN);
	CHECK_INT(a.calls, 0);
	CHECK_INT(chan_read(ch, CHAN_B, buf, 5), 5);
	CHECK(memcmp(buf, "hello", 5) == 0);
	/* room came back: the writer that found the buffer full hears it */
	loop_run_deferred(L);
	CHECK_INT(a.calls, 1);
	CHECK(a.events == EPOLLOUT);
	CHECK_INT(chan_write(ch, CHAN_A, "rld", 3), 3);
	CHECK_INT(chan_read(ch, CHAN_B, buf, sizeof(buf)), 6);
	CHECK(memcmp(buf, " world", 6) == 0);
	CHECK_INT(chan_read(ch, CHAN_B, buf, sizeof(buf)), WEIR_EAGAIN);

	/* the other way */
	CHECK_INT(chan_write(ch, CHAN_B, "HTTP", 4), 4);
	CHECK_INT(chan_read(ch, CHAN_A, buf, sizeof(buf)), 4);
	CHECK(memcmp(buf, "HTTP", 4) == 0);

	/* B closes with bytes unread by A: A reads them, then the end */
	CHECK_INT(chan_write(ch, CHAN_B, "bye", 3), 3);
	loop_run_deferred(L);
	a.calls = b.calls = 0;
	a.events = b.events = 0;
	chan_close(ch, CHAN_B);
	CHECK(chan_peer_closed(ch, CHAN_A));
	CHECK_INT(chan_write(ch, CHAN_A, "x", 1), WEIR_EIO);
	loop_run_deferred(L);
	CHECK_INT(b.calls, 0); /* a closed side hears nothing */
	CHECK_INT(a.calls, 1);
	CHECK(a.events & EPOLLRDHUP && a.events & EPOLLHUP && a.events & EPOLLIN);
	CHECK_INT(chan_read(ch, CHAN_A, buf, sizeof(buf)), 3);
	CHECK(memcmp(buf, "bye", 3) == 0);
	CHECK_INT(chan_read(ch, CHAN_A, buf, sizeof(buf)), 0);
	chan_close(ch, CHAN_A);
	loop_run_deferred(L); /* freed here: ASan/LSan see a leak or a late use */
}

/* A notification queued for a side that closes before it runs is dropped;
 * the free comes after it. */
static void test_close_with_pending_notify(void)
{
	struct chan *ch = chan_new(L, 64);
	struct watcher a, b;
	watcher_init(&a);
	watcher_init(&b);
	chan_watch(ch, CHAN_A, &a.io);
	chan_watch(ch, CHAN_B, &b.io);
	CHECK_INT(chan_write(ch, CHAN_A, "GET / HTTP/1.1\r\n\r\n", 18), 18);
	chan_close(ch, CHAN_B);
	chan_close(ch, CHAN_A);
	loop_run_deferred(L);
	CHECK_INT(a.calls, 0);
	CHECK_INT(b.calls, 0);
}

/* A side that stops watching (a kept connection between streams) is told
 * nothing, and watched again it is told where things stand. */
static void test_unwatched(void)
{
	struct chan *ch = chan_new(L, 64);
	struct watcher a, b;
	watcher_init(&a);
	watcher_init(&b);
	chan_watch(ch, CHAN_B, &b.io);
	chan_watch(ch, CHAN_A, NULL);
	CHECK_INT(chan_write(ch, CHAN_B, "x", 1), 1);
	chan_close(ch, CHAN_B);
	loop_run_deferred(L);
	CHECK_INT(a.calls, 0);
	chan_watch(ch, CHAN_A, &a.io);
	loop_run_deferred(L);
	CHECK_INT(a.calls, 1);
	CHECK(a.events & EPOLLRDHUP);
	CHECK_INT(chan_pending(ch, CHAN_A), 1);
	chan_close(ch, CHAN_A);
	loop_run_deferred(L);
}

/* Many bytes through a small buffer arrive whole and in order. */
static void test_stream_through(void)
{
	enum { TOTAL = 1 << 20 };
	unsigned char *src = malloc(TOTAL), *dst = malloc(TOTAL);
	CHECK(src && dst);
	if (!src || !dst) {
		free(src);
		free(dst);
		return;
	}
	uint32_t r = 1;
	for (size_t i = 0; i < TOTAL; i++) {
		r = r * 1664525u + 1013904223u;
		src[i] = (unsigned char)(r >> 24);
	}
	struct chan *ch = chan_new(L, 4096);
	size_t sent = 0, got = 0;
	int rounds = 0;
	while (got < TOTAL && rounds++ < 100000) {
		size_t want = (size_t)(r = r * 1664525u + 1013904223u) % 9000 + 1;
		if (sent < TOTAL) {
			ssize_t n = chan_write(ch, CHAN_A, src + sent,
			                       want < TOTAL - sent ? want : TOTAL - sent);
			CHECK(n > 0 || n == WEIR_EAGAIN);
			if (n > 0)
				sent += (size_t)n;
		}
		CHECK(chan_pending(ch, CHAN_B) <= 4096);
		ssize_t n = chan_read(ch, CHAN_B, dst + got, (r >> 8) % 7000 + 1);
		CHECK(n > 0 || n == WEIR_EAGAIN);
		if (n > 0)
			got += (size_t)n;
		loop_run_deferred(L);
	}
	CHECK_INT(got, TOTAL);
	CHECK(memcmp(src, dst, TOTAL) == 0);
	chan_close(ch, CHAN_A);
	CHECK_INT(chan_read(ch, CHAN_B, dst, 16), 0);
	chan_close(ch, CHAN_B);
	loop_run_deferred(L);
	free(src);
	free(dst);
}

int main(void)
{
	CHECK_INT(loop_new(NULL, NULL, &L), 0);
	if (!L)
		return check_finish("chan_test");
	test_bytes_and_events();
	test_close_with_pending_notify();
	test_unwatched();
	test_stream_through();
	loop_free(L);
	return check_finish("chan_test");
}
