/* tests/unit/proxy/error_page_test.c - the error backend request of
 * custom-http-errors, checked byte for byte. */
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "proxy/error_page.h"
#include "request_fixture.h"

static struct http_client client(bool trusted)
{
	struct http_client c;
	memset(&c, 0, sizeof(c));
	strcpy(c.ip, "192.0.2.7");
	strcpy(c.request_id, "0123456789abcdef0123456789abcdef");
	c.forwarded_trusted = trusted;
	return c;
}

static void test_full_head(void)
{
	struct http_request req;
	fixture_parse_request("POST /shop/cart?id=3 HTTP/1.1\r\nHost: shop.example:8080\r\n"
	                      "Accept: text/html\r\nConnection: keep-alive, X-Drop\r\n"
	                      "Content-Length: 4\r\nX-Code: 1\r\nX-Request-ID: theirs\r\n"
	                      "Cookie: a=b\r\nUpgrade: websocket\r\nx-drop: 1\r\n\r\n",
	                      &req);
	req.host = "shop.example:8080";
	req.host_len = strlen(req.host);
	req.content_length = 4;
	struct http_client c = client(false);
	struct error_page_req r = {.req = &req,
	                           .client = &c,
	                           .source = "shop/web",
	                           .backend_name = "shop/web-svc:http (cluster IP)",
	                           .fallback_host = "10.0.0.1:80",
	                           .code = 503};
	char buf[2048];
	int n = error_page_build_head(&r, buf, sizeof(buf));
	CHECK(n > 0);
	buf[n > 0 ? n : 0] = '\0';
	CHECK_STR(buf, "POST / HTTP/1.1\r\n"
	               "Host: shop.example:8080\r\n"
	               "Accept: text/html\r\n"
	               "Cookie: a=b\r\n"
	               "X-Code: 503\r\n"
	               "X-Format: text/html\r\n"
	               "X-Original-URI: /shop/cart?id=3\r\n"
	               "X-Namespace: shop\r\n"
	               "X-Ingress-Name: web\r\n"
	               "X-Service-Name: web-svc\r\n"
	               "X-Service-Port: http\r\n"
	               "X-Request-ID: 0123456789abcdef0123456789abcdef\r\n"
	               "X-Forwarded-For: 192.0.2.7\r\n"
	               "Content-Length: 0\r\n"
	               "\r\n");
	/* a trusted hop's X-Request-ID is kept */
	c = client(true);
	n = error_page_build_head(&r, buf, sizeof(buf));
	CHECK(n > 0);
	buf[n > 0 ? n : 0] = '\0';
	CHECK(strstr(buf, "X-Request-ID: theirs\r\n") != NULL);
}

static void test_minimal_head(void)
{
	/* no Host, no Accept, no route source or backend: those lines are left out */
	struct http_request req;
	fixture_parse_request("GET / HTTP/1.0\r\n\r\n", &req);
	struct http_client c = client(false);
	struct error_page_req r = {
	    .req = &req, .client = &c, .fallback_host = "10.0.0.1:80", .code = 404};
	char buf[512];
	int n = error_page_build_head(&r, buf, sizeof(buf));
	CHECK(n > 0);
	buf[n > 0 ? n : 0] = '\0';
	CHECK_STR(buf, "GET / HTTP/1.1\r\nHost: 10.0.0.1:80\r\nX-Code: 404\r\n"
	               "X-Original-URI: /\r\n"
	               "X-Request-ID: 0123456789abcdef0123456789abcdef\r\n"
	               "X-Forwarded-For: 192.0.2.7\r\n\r\n");
	/* every shorter room is too small */
	for (size_t cap = 0; cap < (size_t)n; cap++)
		CHECK_INT(error_page_build_head(&r, buf, cap), WEIR_ETOOBIG);
}

int main(void)
{
	test_full_head();
	test_minimal_head();
	return check_finish("error_page_test");
}
