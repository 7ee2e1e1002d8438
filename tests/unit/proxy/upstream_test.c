/* tests/unit/proxy/upstream_test.c - the idle pool over real loopback
 * sockets: a release keeps at most max_idle connections per key and closes the
 * rest, a get reuses the most recently released one of its own key only, a
 * peer's close takes an idle connection out, and a drained key starts again
 * empty. ASan checks that the pool frees what it holds. */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "common/route_table.h"
#include "proxy/loop.h"
#include "proxy/upstream.h"

#define N 5

static struct loop *L;
static struct upstream_pool *P;

static void on_event(struct upstream *u, uint32_t events)
{
	(void)u;
	(void)events;
}

static void stop_loop(struct loop_timer *t)
{
	loop_stop(t->data);
}

/* Run the loop for ms: events, deferred frees and timers. */
static void spin(uint64_t ms)
{
	struct loop_timer t;
	loop_timer_init(&t, stop_loop, L);
	loop_timer_set(L, &t, ms);
	loop_run(L);
}

static int listen_any(uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t al = sizeof(a);
	CHECK(fd >= 0);
	CHECK_INT(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_INT(listen(fd, 64), 0);
	getsockname(fd, (struct sockaddr *)&a, &al);
	*port = ntohs(a.sin_port);
	return fd;
}

/* A connection from the pool to ep, with its accepted server end in *peer. */
static struct upstream *get(struct route_endpoint *ep, int lfd, int *peer, bool *reused)
{
	struct upstream *u = NULL;
	int err = -1;
	CHECK_INT(upstream_get(P, ep, false, on_event, NULL, &u, &err), 0);
	CHECK_INT(err, 0);
	*reused = u && u->reused;
	if (u && !u->reused) {
		*peer = accept(lfd, NULL, NULL);
		CHECK(*peer >= 0);
		u->connected = true; /* the owner sets it on the connect's EPOLLOUT */
		u->can_read = false; /* and has read the response to its end */
	}
	return u;
}

/* 1: the peer end sees the connection closed, 0: still open. */
static int closed(int peer)
{
	char c;
	ssize_t n = recv(peer, &c, 1, MSG_DONTWAIT);
	return n == 0 ? 1 : (n < 0 && errno == EAGAIN) ? 0 : -1;
}

static void test_pool(void)
{
	char addr[] = "127.0.0.1";
	uint16_t port1, port2;
	int l1 = listen_any(&port1), l2 = listen_any(&port2);
	struct route_endpoint ep1 = {.address = addr, .port = port1, .weight = 1};
	struct route_endpoint ep2 = {.address = addr, .port = port2, .weight = 1};
	struct upstream *u[N];
	int peer[N];
	bool reused;
	for (int i = 0; i < N; i++) {
		u[i] = get(&ep1, l1, &peer[i], &reused);
		CHECK(!reused);
	}
	/* max_idle 3: the first three wait, the last two are closed */
	for (int i = 0; i < N; i++)
		upstream_release(u[i], true, 3);
	spin(20);
	for (int i = 0; i < N; i++)
		CHECK_INT(closed(peer[i]), i < 3 ? 0 : 1);

	/* another key (port) does not take them */
	int p2;
	struct upstream *v = get(&ep2, l2, &p2, &reused);
	CHECK(!reused);
	upstream_release(v, true, 3);

	/* the most recent first */
	int none = -1;
	struct upstream *g = get(&ep1, l1, &none, &reused);
	CHECK(reused);
	CHECK(g == u[2]);
	/* max_idle is per key: ep2's idle one does not count against ep1's two */
	upstream_release(g, true, 3);
	spin(20);
	CHECK_INT(closed(peer[2]), 0);

	/* a peer that closes takes its idle connection out */
	close(peer[1]);
	peer[1] = -1;
	spin(50);
	g = get(&ep1, l1, &none, &reused);
	CHECK(reused && g == u[2]);
	struct upstream *h = get(&ep1, l1, &none, &reused);
	CHECK(reused && h == u[0]);
	/* ep1's pool is empty now: a new connection */
	int p3;
	struct upstream *fresh = get(&ep1, l1, &p3, &reused);
	CHECK(!reused);
	CHECK_INT(none, -1);
	/* and the key starts again: three released, all kept */
	upstream_release(fresh, true, 3);
	upstream_release(h, true, 3);
	upstream_release(g, true, 3);
	spin(20);
	CHECK_INT(closed(p3), 0);
	CHECK_INT(closed(peer[0]), 0);
	CHECK_INT(closed(peer[2]), 0);
	g = get(&ep1, l1, &none, &reused);
	CHECK(reused && g == u[2]);
	upstream_release(g, false, 3); /* not reusable: closed */
	spin(20);
	CHECK_INT(closed(peer[2]), 1);

	/* the pool frees what is left idle (two of ep1, one of ep2) */
	upstream_pool_free(P);
	P = NULL;
	spin(20);
	CHECK_INT(closed(p3), 1);
	CHECK_INT(closed(peer[0]), 1);
	CHECK_INT(closed(p2), 1);
	for (int i = 0; i < N; i++)
		if (peer[i] >= 0)
			close(peer[i]);
	close(p2);
	close(p3);
	close(l1);
	close(l2);
}

int main(void)
{
	CHECK_INT(loop_new(NULL, NULL, &L), 0);
	CHECK_INT(upstream_pool_new(L, &P), 0);
	test_pool();
	loop_free(L);
	return check_finish("upstream_test");
}
