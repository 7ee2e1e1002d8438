/* Unit test: controller telemetry - Prometheus rendering and the /healthz, /metrics server
 * over loopback. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "controller/telemetry.h"

/* Send req to 127.0.0.1:port and read the whole answer (server closes). Bounded by 3 s. */
static char *http_exchange(int port, const char *req, size_t reqlen)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	static char buf[65536];
	size_t len = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto fail;
	for (size_t off = 0; off < reqlen;) {
		ssize_t n = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);

		if (n <= 0)
			break; /* the server may refuse mid-way; read its answer */
		off += (size_t)n;
	}
	for (int i = 0; i < 30 && len < sizeof(buf) - 1; i++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
fail:
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void test_render(void)
{
	char *text = NULL;

	telemetry_watch_restart("Ingress");
	telemetry_watch_restart("Ingress");
	telemetry_watch_restart("ingress"); /* same series as "Ingress" */
	telemetry_relist("Service");
	telemetry_objects("Ingress", 42);
	telemetry_objects("Ingress", 7);   /* a gauge: last value wins */
	telemetry_compile_seconds(0.0005); /* <= 0.001 */
	telemetry_compile_seconds(0.003);  /* <= 0.005 */
	telemetry_compile_seconds(20);     /* only +Inf */
	telemetry_compile_seconds(-1);     /* ignored */
	telemetry_published(17);
	CHECK_INT(telemetry_render(&text), 0);
	CHECK(text != NULL);
	if (!text)
		return;
	CHECK(strstr(text, "weir_controller_watch_restarts_total{kind=\"Ingress\"} 3\n"));
	CHECK(strstr(text, "weir_controller_watch_restarts_total{kind=\"Service\"} 0\n"));
	CHECK(strstr(text, "weir_controller_relists_total{kind=\"Service\"} 1\n"));
	CHECK(!strstr(text, "kind=\"ingress\""));
	CHECK(strstr(text, "weir_controller_objects{kind=\"Ingress\"} 7\n"));
	CHECK(!strstr(text, "weir_controller_objects{kind=\"Service\"}"));
	CHECK(strstr(text, "# TYPE weir_controller_compile_seconds histogram\n"));
	CHECK(strstr(text, "weir_controller_compile_seconds_bucket{le=\"0.001\"} 1\n"));
	CHECK(strstr(text, "weir_controller_compile_seconds_bucket{le=\"0.0025\"} 1\n"));
	CHECK(strstr(text, "weir_controller_compile_seconds_bucket{le=\"0.005\"} 2\n"));
	CHECK(strstr(text, "weir_controller_compile_seconds_bucket{le=\"10\"} 2\n"));
	CHECK(strstr(text, "weir_controller_compile_seconds_bucket{le=\"+Inf\"} 3\n"));
	CHECK(strstr(text, "weir_controller_compile_seconds_count 3\n"));
	CHECK(strstr(text, "weir_controller_compile_seconds_sum 20.0035\n"));
	CHECK(strstr(text, "weir_controller_published_generation 17\n"));
	free(text);

	/* Label values are escaped. */
	telemetry_relist("we\"ird");
	CHECK_INT(telemetry_render(&text), 0);
	CHECK(text && strstr(text, "weir_controller_relists_total{kind=\"we\\\"ird\"} 1\n"));
	free(text);
}

static void test_server(void)
{
	char big[10000];
	const char *r;
	int port;

	CHECK_INT(telemetry_port(), -1);
	CHECK_INT(telemetry_start("127.0.0.1", 0), 0);
	port = telemetry_port();
	CHECK(port > 0);
	CHECK(telemetry_start("127.0.0.1", 0) != 0); /* one server per process */

	r = http_exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 34);
	CHECK(r && strncmp(r, "HTTP/1.1 200 ", 13) == 0);
	CHECK(r && strstr(r, "\r\n\r\nok"));

	r = http_exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 34);
	CHECK(r && strncmp(r, "HTTP/1.1 200 ", 13) == 0);
	CHECK(r && strstr(r, "Content-Type: text/plain; version=0.0.4"));
	CHECK(r && strstr(r, "\nweir_controller_published_generation 17\n"));

	r = http_exchange(port, "GET /nope HTTP/1.1\r\n\r\n", 22);
	CHECK(r && strncmp(r, "HTTP/1.1 404 ", 13) == 0);

	r = http_exchange(port, "POST /healthz HTTP/1.1\r\n\r\n", 26);
	CHECK(r && strncmp(r, "HTTP/1.1 405 ", 13) == 0);

	/* A request head over 8 KiB is refused. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /healthz HTTP/1.1\r\nX: ", 26);
	r = http_exchange(port, big, sizeof(big));
	CHECK(r && strncmp(r, "HTTP/1.1 431 ", 13) == 0);

	/* Garbage request line. */
	r = http_exchange(port, "\r\n\r\n", 4);
	CHECK(r && strncmp(r, "HTTP/1.1 400 ", 13) == 0);

	telemetry_stop();
	CHECK_INT(telemetry_port(), -1);
	/* Restartable after stop. */
	CHECK_INT(telemetry_start("127.0.0.1", 0), 0);
	port = telemetry_port();
	r = http_exchange(port, "GET /healthz HTTP/1.0\r\n\r\n", 25);
	CHECK(r && strstr(r, " 200 "));
	telemetry_stop();
}

int main(void)
{
	test_render();
	test_server();
	return check_finish("telemetry_test");
}
