/* tests/unit/proxy/admin_test.c - the admin port over real loopback sockets:
 * status lines, bodies and headers of /healthz, /readyz (before and after a
 * table is published), /metrics, 404, 405, HEAD, oversized and slow requests,
 * port-in-use, stop and restart on the same port. */
#include "check.h"

#include "proxy/admin.h"
#include "proxy/metrics.h"
#include "proxy/table.h"
#include "error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RESP_MAX (4 * 1024 * 1024)

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A loopback TCP port nobody listens on right now. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int port = -1;
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static int connect_port(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

struct response {
	char *raw; /* everything received, NUL-terminated */
	size_t len;
	int status;  /* from the status line, 0 if none */
	bool closed; /* the server closed the connection (EOF) before the deadline */
	const char *body;
	size_t body_len;
};

/* Read until EOF or the deadline; the server must close after each response. */
static void read_response(int fd, struct response *r, double seconds)
{
	r->raw = calloc(1, RESP_MAX + 1);
	r->len = 0;
	r->closed = false;
	double deadline = now_s() + seconds;
	while (r->raw && r->len < RESP_MAX) {
		int left = (int)((deadline - now_s()) * 1000);
		if (left <= 0)
			break;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, left) <= 0)
			break;
		ssize_t n = recv(fd, r->raw + r->len, RESP_MAX - r->len, 0);
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			r->closed = true;
			break;
		}
		if (n < 0)
			break;
		r->len += (size_t)n;
	}
	r->status = 0;
	r->body = NULL;
	r->body_len = 0;
	if (!r->raw)
		return;
	if (strncmp(r->raw, "HTTP/1.", 7) == 0 && r->len > 12)
		r->status = atoi(r->raw + 9);
	char *eoh = strstr(r->raw, "\r\n\r\n");
	if (eoh) {
		r->body = eoh + 4;
		r->body_len = r->len - (size_t)(r->body - r->raw);
	}
}

static void request(int port, const char *raw, struct response *r)
{
	memset(r, 0, sizeof(*r));
	int fd = connect_port(port);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	size_t off = 0, len = strlen(raw);
	while (off < len) {
		ssize_t n = send(fd, raw + off, len - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	read_response(fd, r, 10);
	close(fd);
}

/* Case-insensitive search for a header line "name: value" in the head. */
static bool has_header(const struct response *r, const char *line)
{
	if (!r->raw || !r->body)
		return false;
	size_t n = strlen(line);
	for (const char *p = r->raw; p + n <= r->body; p++) {
		if ((p == r->raw || p[-1] == '\n') && strncasecmp(p, line, n) == 0 && p[n] == '\r')
			return true;
	}
	return false;
}

static long content_length(const struct response *r)
{
	if (!r->raw || !r->body)
		return -1;
	for (const char *p = r->raw; p < r->body; p++) {
		if (p > r->raw && p[-1] == '\n' && strncasecmp(p, "content-length:", 15) == 0)
			return atol(p + 15);
	}
	return -1;
}

static void check_simple(int port, const char *raw, int status, const char *body)
{
	struct response r;
	request(port, raw, &r);
	if (r.status != status)
		fprintf(stderr, "request %.40s... got:\n%s\n", raw, r.raw ? r.raw : "(none)");
	CHECK_INT(r.status, status);
	CHECK(r.closed);
	if (body) {
		CHECK(r.body != NULL);
		if (r.body)
			CHECK_STR(r.body, body);
		CHECK_INT(content_length(&r), strlen(body));
	}
	free(r.raw);
}

static void test_port_in_use(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	CHECK(fd >= 0);
	CHECK_INT(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CHECK_INT(listen(fd, 4), 0);
	CHECK_INT(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	int rc = admin_start("127.0.0.1", ntohs(sa.sin_port));
	CHECK(rc < 0);
	if (rc == 0)
		admin_stop();
	close(fd);
	CHECK_INT(admin_start("127.0.0.1", 0), WEIR_EINVAL);
	CHECK_INT(admin_start("127.0.0.1", 70000), WEIR_EINVAL);
}

static void test_paths(int port)
{
	check_simple(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ok\n");
	check_simple(port, "GET /healthz HTTP/1.0\r\n\r\n", 200, "ok\n");
	check_simple(port, "GET /healthz?verbose=1 HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ok\n");
	check_simple(port, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 503,
	             "no route table loaded\n");
	check_simple(port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, NULL);
	check_simple(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 404, NULL);
	check_simple(port, "GET /healthzz HTTP/1.1\r\nHost: x\r\n\r\n", 404, NULL);

	struct response r;
	request(port, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", &r);
	CHECK_INT(r.status, 405);
	CHECK(has_header(&r, "allow: GET, HEAD"));
	CHECK(r.closed);
	free(r.raw);
	check_simple(port, "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405, NULL);
	check_simple(port, "PUT /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405,
	             NULL);

	/* HEAD: same status and Content-Length, no body. */
	request(port, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	CHECK_INT(r.status, 200);
	CHECK_INT(content_length(&r), 3);
	CHECK(r.body != NULL && r.body_len == 0);
	CHECK(r.closed);
	free(r.raw);
	request(port, "HEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	CHECK_INT(r.status, 503);
	CHECK(r.body != NULL && r.body_len == 0);
	free(r.raw);
}

static void test_metrics(int port)
{
	metrics_request("admin.example", "/ws", 101, METRICS_HTTP11, 0.002);
	metrics_reload(false, 0);
	/* Enough series that the body is far bigger than one write chunk. */
	char host[64];
	for (int i = 0; i < 3000; i++) {
		snprintf(host, sizeof(host), "bulk-%04d.admin.example", i);
		metrics_request(host, "/some/longer/path/for/size", 200, METRICS_HTTP11, -1);
	}
	char *expect = NULL;
	size_t expect_len = 0;
	CHECK_INT(metrics_render(&expect, &expect_len), 0);

	struct response r;
	request(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	CHECK_INT(r.status, 200);
	CHECK(r.closed);
	CHECK(has_header(&r, "content-type: text/plain; version=0.0.4"));
	CHECK(r.body != NULL);
	if (r.body && expect) {
		CHECK(expect_len > 200000);
		CHECK_INT(r.body_len, expect_len);
		CHECK_INT(content_length(&r), expect_len);
		/* Nothing was recorded in between, so the scrape equals a local render. */
		CHECK(r.body_len == expect_len && memcmp(r.body, expect, expect_len) == 0);
		CHECK(strstr(r.body,
		             "weir_proxy_requests_total{host=\"admin.example\",path=\"/ws\","
		             "code=\"101\",protocol=\"HTTP/1.1\"} 1\n") != NULL);
		CHECK(strstr(r.body, "weir_proxy_reloads_total{result=\"failed\"} 1\n") != NULL);
		CHECK(strstr(r.body, "# TYPE weir_proxy_upstream_latency_seconds histogram\n") !=
		      NULL);
	}
	free(r.raw);
	free(expect);

	request(port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	CHECK_INT(r.status, 200);
	CHECK(content_length(&r) > 200000);
	CHECK(r.body != NULL && r.body_len == 0);
	free(r.raw);
}

static void test_oversized(int port)
{
	size_t pad = 9000;
	char *raw = malloc(pad + 128);
	CHECK(raw != NULL);
	if (!raw)
		return;
	int n = snprintf(raw, 128, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ");
	memset(raw + n, 'a', pad);
	strcpy(raw + n + pad, "\r\n\r\n");
	struct response r;
	request(port, raw, &r);
	/* Refused: an error status or a closed connection, never the 200. */
	CHECK(r.status != 200);
	CHECK(r.status == 0 || r.status == 431 || r.status == 400 || r.status == 413);
	CHECK(r.closed);
	free(r.raw);
	free(raw);
	/* The server is still fine afterwards. */
	check_simple(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ok\n");
}

/* Things lws would otherwise turn into something else (raw socket, WebSocket,
 * HTTP/2) are refused, and the server keeps answering afterwards. */
static void test_hostile(int port)
{
	static const char *const reqs[] = {
	    "CONNECT /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
	    "GET /healthz HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
	    "GET /healthz HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, "
	    "HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
	    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	    "hello\r\n\r\n",
	    "\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
	};
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		struct response r;
		request(port, reqs[i], &r);
		if (r.status == 101 || r.status == 200)
			fprintf(stderr, "hostile request %zu got:\n%s\n", i, r.raw);
		CHECK(r.status != 101 && r.status != 200);
		CHECK(r.closed);
		free(r.raw);
		check_simple(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ok\n");
	}
}

static void test_slow_client(int port)
{
	/* One client sends half a request line and stalls; it must not block others,
	 * and the server must drop it after its timeout. */
	int slow = connect_port(port);
	CHECK(slow >= 0);
	if (slow < 0)
		return;
	CHECK(send(slow, "GET /hea", 8, MSG_NOSIGNAL) == 8);
	double t0 = now_s();
	check_simple(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ok\n");
	CHECK(now_s() - t0 < 2);
	struct response r;
	read_response(slow, &r, 20);
	double waited = now_s() - t0;
	CHECK(r.closed);
	CHECK(r.status != 200);
	CHECK(waited < 20);
	fprintf(stderr, "slow client dropped after %.1fs\n", waited);
	free(r.raw);
	close(slow);
}

static void test_ready_after_publish(int port)
{
	struct route_table *rt = route_table_new();
	CHECK(rt != NULL);
	if (!rt)
		return;
	struct table *t = NULL;
	char err[256] = "";
	int rc = table_new(rt, &t, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "table_new: %s\n", err);
	CHECK_INT(rc, 0);
	if (rc != 0)
		return;
	table_publish(t);
	CHECK(table_ready());
	check_simple(port, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ready\n");
}

int main(void)
{
	test_port_in_use();

	int port = free_port();
	CHECK(port > 0);
	CHECK_INT(admin_start("127.0.0.1", port), 0);
	CHECK_INT(admin_start("127.0.0.1", port), WEIR_EINVAL); /* one per process */

	test_paths(port);
	test_metrics(port);
	test_oversized(port);
	test_hostile(port);
	test_slow_client(port);
	test_ready_after_publish(port);

	admin_stop();
	admin_stop(); /* a no-op */
	int fd = connect_port(port);
	CHECK(fd < 0); /* nobody listens any more */
	if (fd >= 0)
		close(fd);

	/* Restart on the same port right away: connections the server closed sit in
	 * TIME_WAIT, so this only works with SO_REUSEADDR. */
	CHECK_INT(admin_start("127.0.0.1", port), 0);
	check_simple(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ok\n");
	check_simple(port, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ready\n");
	admin_stop();
	return check_finish("admin_test");
}
