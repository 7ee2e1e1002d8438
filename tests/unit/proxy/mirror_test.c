/* tests/unit/proxy/mirror_test.c - the mirror request head byte for byte
 * (no sockets): method and target, Host, the headers kept and dropped, the
 * body length. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "proxy/mirror.h"
#include "request_fixture.h"

static void head_with_body(void)
{
	const char *raw = "POST /a/b?x=1 HTTP/1.1\r\nHost: shop.test\r\nX-Custom: kept\r\n"
	                  "Connection: keep-alive, X-Hop\r\nX-Hop: gone\r\nKeep-Alive: 5\r\n"
	                  "Content-Length: 4\r\nExpect: 100-continue\r\nTE: trailers\r\n"
	                  "Content-Type: text/plain\r\n\r\n";
	struct http_request req;
	struct route_mirror m = {0};
	char buf[1024];
	fixture_parse_request(raw, &req);
	int n = mirror_build_head(&m, "http://10.0.0.9:8080/copy/a/b?x=1", &req, true, 4, buf,
	                          sizeof(buf));
	CHECK(n > 0);
	if (n > 0) {
		buf[n] = '\0';
		CHECK_STR(buf, "POST /copy/a/b?x=1 HTTP/1.1\r\nHost: 10.0.0.9\r\nX-Custom: kept\r\n"
		               "Content-Type: text/plain\r\nContent-Length: 4\r\n"
		               "Connection: close\r\n\r\n");
	}
}

static void head_without_body(void)
{
	const char *raw = "GET /p HTTP/1.1\r\nHost: shop.test\r\nAccept: */*\r\n\r\n";
	struct http_request req;
	struct route_mirror m = {.host = "shadow.test"};
	char buf[256];
	fixture_parse_request(raw, &req);
	int n = mirror_build_head(&m, "https://m.test", &req, false, 0, buf, sizeof(buf));
	CHECK(n > 0);
	if (n > 0) {
		buf[n] = '\0';
		CHECK_STR(buf, "GET / HTTP/1.1\r\nHost: shadow.test\r\nAccept: */*\r\n"
		               "Connection: close\r\n\r\n");
	}
	m.host = NULL;
	n = mirror_build_head(&m, "http://[::1]:81/q", &req, false, 0, buf, sizeof(buf));
	CHECK(n > 0);
	if (n > 0) {
		buf[n] = '\0';
		CHECK_STR(buf, "GET /q HTTP/1.1\r\nHost: [::1]\r\nAccept: */*\r\n"
		               "Connection: close\r\n\r\n");
	}
	CHECK_INT(mirror_build_head(&m, "http://m/", &req, false, 0, buf, 40), WEIR_ETOOBIG);
	CHECK_INT(mirror_build_head(&m, "ftp://m/", &req, false, 0, buf, sizeof(buf)), WEIR_EINVAL);
}

int main(void)
{
	head_with_body();
	head_without_body();
	return check_finish("mirror_test");
}
