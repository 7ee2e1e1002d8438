/* tests/unit/proxy/headers_test.c - upstream request heads, client response
 * heads and local answers, checked byte for byte. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check.h"
#include "common/error.h"
#include "proxy/headers.h"
#include "request_fixture.h"

/* Split a raw head ("GET / HTTP/1.1\r\nA: b\r\n\r\n", held by the caller)
 * into an http_request, the way the data path hands it over. */
static void parse_request(const char *raw, struct http_request *req)
{
	fixture_parse_request(raw, req);
}

static void parse_response(const char *raw, struct http_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	resp->content_length = -1;
	resp->status = atoi(raw + 9);
	const char *eol = strstr(raw, "\r\n");
	resp->reason = raw + 13;
	resp->reason_len = (size_t)(eol - resp->reason);
	const char *p = eol + 2;
	while (strncmp(p, "\r\n", 2) != 0 && resp->nheaders < HTTP_MAX_HEADERS) {
		const char *colon = strchr(p, ':');
		const char *end = strstr(p, "\r\n");
		struct http_header *h = &resp->headers[resp->nheaders++];
		h->name = p;
		h->name_len = (size_t)(colon - p);
		const char *v = colon + 1;
		while (*v == ' ')
			v++;
		h->value = v;
		h->value_len = (size_t)(end - v);
		p = end + 2;
	}
}

static void client_init(struct http_client *c, const char *ip, bool tls)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	c->port = 40000;
	c->local_port = tls ? 8443 : 8080;
	c->tls = tls;
	snprintf(c->request_id, sizeof(c->request_id), "0123456789abcdef0123456789abcdef");
}

static char out[16384];

static int build_req(const char *raw, const struct http_client *c, const struct headers_ctx *ctx,
                     int64_t body_length)
{
	static struct http_request req;
	parse_request(raw, &req);
	int n = headers_build_request(&req, c, ctx, body_length, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	return n;
}

#define STARTS(s, lit) (strncmp((s), (lit), strlen(lit)) == 0)

static int count(const char *hay, const char *needle)
{
	int k = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		k++;
	return k;
}

static void test_passthrough_order(void)
{
	struct http_client c;
	client_init(&c, "10.0.0.9", false);
	struct headers_ctx ctx = {.upstream_host = "10.1.0.5:8080"};
	int n = build_req("POST /api/v1?q=a%20b HTTP/1.1\r\n"
	                  "Host: app.example.com\r\n"
	                  "x-CUSTOM-thing:   spaced  value  \r\n"
	                  "Cookie: a=1\r\n"
	                  "Accept: */*\r\n"
	                  "Cookie: b=2\r\n"
	                  "X-Weird: \x01\x7f\xc3\xa9\r\n"
	                  "Content-Length: 3\r\n"
	                  "\r\n",
	                  &c, &ctx, 3);
	CHECK(n > 0);
	CHECK_INT(strlen(out), n);
	const char *want = "POST /api/v1?q=a%20b HTTP/1.1\r\n"
	                   "Host: app.example.com\r\n"
	                   "x-CUSTOM-thing: spaced  value  \r\n"
	                   "Cookie: a=1\r\n"
	                   "Accept: */*\r\n"
	                   "Cookie: b=2\r\n"
	                   "X-Weird: \x01\x7f\xc3\xa9\r\n";
	CHECK(strncmp(out, want, strlen(want)) == 0);
	CHECK_INT(count(out, "Content-Length: 3\r\n"), 1);
	CHECK_INT(count(out, "Content-Length"), 1);
	CHECK(strstr(out, "\r\n\r\n") == out + n - 4);
	CHECK(strstr(out, "X-Forwarded-For: 10.0.0.9\r\n") != NULL);
	CHECK(strstr(out, "X-Forwarded-Proto: http\r\n") != NULL);
	CHECK(strstr(out, "X-Forwarded-Host: app.example.com\r\n") != NULL);
	CHECK(strstr(out, "X-Forwarded-Port: 8080\r\n") != NULL);
	CHECK(strstr(out, "X-Real-IP: 10.0.0.9\r\n") != NULL);
	CHECK(strstr(out, "X-Request-ID: 0123456789abcdef0123456789abcdef\r\n") != NULL);
	/* HTTP/1.0 in, HTTP/1.1 out, Host added from the endpoint */
	n = build_req("GET / HTTP/1.0\r\nA: b\r\n\r\n", &c, &ctx, -1);
	CHECK(STARTS(out, "GET / HTTP/1.1\r\nA: b\r\n"));
	CHECK(strstr(out, "Host: 10.1.0.5:8080\r\n") != NULL);
	CHECK(strstr(out, "Content-Length") == NULL);
	CHECK(strstr(out, "Transfer-Encoding") == NULL);
}

static void test_hop_by_hop(void)
{
	struct http_client c;
	client_init(&c, "10.0.0.9", false);
	struct headers_ctx ctx = {0};
	int n = build_req("POST /x HTTP/1.1\r\n"
	                  "Host: h\r\n"
	                  "Connection: keep-alive, X-Private ,x-other\r\n"
	                  "Keep-Alive: timeout=5\r\n"
	                  "Proxy-Connection: keep-alive\r\n"
	                  "TE: trailers\r\n"
	                  "Trailer: X-Sum\r\n"
	                  "Transfer-Encoding: chunked\r\n"
	                  "Upgrade: h2c\r\n"
	                  "X-Private: secret\r\n"
	                  "X-Other: 1\r\n"
	                  "X-Kept: yes\r\n"
	                  "Connection: X-Second\r\n"
	                  "X-Second: 2\r\n"
	                  "\r\n",
	                  &c, &ctx, -2);
	CHECK(n > 0);
	CHECK(STARTS(out, "POST /x HTTP/1.1\r\nHost: h\r\nX-Kept: yes\r\nX-Forwarded-For:"));
	CHECK(strcasestr(out, "keep-alive") == NULL);
	CHECK(strstr(out, "Proxy-Connection") == NULL);
	CHECK(strstr(out, "TE:") == NULL);
	CHECK(strstr(out, "Trailer") == NULL);
	CHECK(strstr(out, "Upgrade") == NULL);
	CHECK(strstr(out, "Connection") == NULL);
	CHECK(strstr(out, "X-Private") == NULL);
	CHECK(strstr(out, "X-Other") == NULL);
	CHECK(strstr(out, "X-Second") == NULL);
	CHECK_INT(count(out, "Transfer-Encoding"), 1);
	CHECK(strstr(out, "Transfer-Encoding: chunked\r\n\r\n") != NULL);
	/* Host survives even when a Connection header names it */
	build_req("GET / HTTP/1.1\r\nHost: h\r\nConnection: Host\r\n\r\n", &c, &ctx, -1);
	CHECK(strstr(out, "\r\nHost: h\r\n") != NULL);
	/* a second Host never reaches the upstream */
	build_req("GET / HTTP/1.1\r\nHost: h\r\nHost: evil\r\n\r\n", &c, &ctx, -1);
	CHECK(strstr(out, "\r\nHost: evil") == NULL);
	CHECK_INT(count(out, "\nHost:"), 1);
}

static void test_forwarded_trust(void)
{
	struct http_client c;
	client_init(&c, "192.0.2.7", true);
	/* as realip_resolve leaves it for a trusted hop 192.0.2.7 whose chain ends
	 * with the client 198.51.100.3 */
	snprintf(c.hop_ip, sizeof(c.hop_ip), "192.0.2.7");
	snprintf(c.ip, sizeof(c.ip), "198.51.100.3");
	c.forwarded_chain = true;
	struct headers_ctx ctx = {.peer_trusted = true};
	const char *raw = "GET / HTTP/1.1\r\n"
	                  "Host: pub.example.com:8443\r\n"
	                  "X-Forwarded-For: 203.0.113.1\r\n"
	                  "X-Forwarded-Proto: http\r\n"
	                  "X-Forwarded-For: 198.51.100.2, 198.51.100.3\r\n"
	                  "X-Forwarded-Host: outer.example.com\r\n"
	                  "X-Forwarded-Port: 443\r\n"
	                  "X-Real-IP: 203.0.113.1\r\n"
	                  "X-Request-ID: upstream-id-1\r\n"
	                  "X-Forwarded-Prefix: /p\r\n"
	                  "\r\n";
	build_req(raw, &c, &ctx, -1);
	CHECK(strstr(out, "X-Forwarded-For: 203.0.113.1, 198.51.100.2, 198.51.100.3, "
	                  "192.0.2.7\r\n") != NULL);
	CHECK_INT(count(out, "X-Forwarded-For"), 1);
	CHECK_INT(count(out, "X-Forwarded-Proto"), 1);
	CHECK(strstr(out, "X-Forwarded-Proto: http\r\n") != NULL);
	CHECK(strstr(out, "X-Forwarded-Host: outer.example.com\r\n") != NULL);
	CHECK_INT(count(out, "X-Forwarded-Host"), 1);
	CHECK(strstr(out, "X-Forwarded-Port: 443\r\n") != NULL);
	CHECK_INT(count(out, "X-Forwarded-Port"), 1);
	/* X-Real-IP is never passed on: it is the real client */
	CHECK(strstr(out, "X-Real-IP: 198.51.100.3\r\n") != NULL);
	CHECK_INT(count(out, "X-Real-IP"), 1);
	CHECK(strstr(out, "X-Request-ID: upstream-id-1\r\n") != NULL);
	CHECK_INT(count(out, "X-Request-ID"), 1);
	CHECK(strstr(out, "X-Forwarded-Prefix: /p\r\n") != NULL);

	ctx.peer_trusted = false;
	c.forwarded_chain = false;
	snprintf(c.ip, sizeof(c.ip), "192.0.2.7");
	build_req(raw, &c, &ctx, -1);
	CHECK(strstr(out, "X-Forwarded-For: 192.0.2.7\r\n") != NULL);
	CHECK_INT(count(out, "X-Forwarded-For"), 1);
	CHECK(strstr(out, "X-Forwarded-Proto: https\r\n") != NULL);
	CHECK_INT(count(out, "X-Forwarded-Proto"), 1);
	CHECK(strstr(out, "X-Forwarded-Host: pub.example.com:8443\r\n") != NULL);
	CHECK_INT(count(out, "X-Forwarded-Host"), 1);
	CHECK(strstr(out, "X-Forwarded-Port: 8443\r\n") != NULL);
	CHECK_INT(count(out, "X-Forwarded-Port"), 1);
	CHECK(strstr(out, "X-Real-IP: 192.0.2.7\r\n") != NULL);
	CHECK_INT(count(out, "X-Real-IP"), 1);
	CHECK(strstr(out, "X-Request-ID: 0123456789abcdef0123456789abcdef\r\n") != NULL);
	CHECK_INT(count(out, "X-Request-ID"), 1);
	CHECK(strstr(out, "X-Forwarded-Prefix") == NULL);
	CHECK(strstr(out, "203.0.113.1") == NULL);
	CHECK(strstr(out, "upstream-id-1") == NULL);

	/* trusted peer without any X-Forwarded-*: set from the connection */
	ctx.peer_trusted = true;
	build_req("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &c, &ctx, -1);
	CHECK(strstr(out, "X-Forwarded-For: 192.0.2.7\r\n") != NULL);
	CHECK(strstr(out, "X-Forwarded-Proto: https\r\n") != NULL);
}

static void test_vhost_rewrite(void)
{
	struct http_client c;
	client_init(&c, "10.0.0.9", false);
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/foo(/|$)(.*)";
	r.match = ROUTE_MATCH_REGEX;
	r.policy->rewrite_target = "/$2";
	r.policy->upstream_vhost = "internal.svc";
	/* "/foo/bar/baz": $0 = whole, $1 = "/", $2 = "bar/baz" */
	struct table_match m = {.route = &r, .ncaptures = 3};
	m.cap_off[0] = 0;
	m.cap_len[0] = 12;
	m.cap_off[1] = 4;
	m.cap_len[1] = 1;
	m.cap_off[2] = 5;
	m.cap_len[2] = 7;
	struct headers_ctx ctx = {.route = &r, .match = &m};
	build_req("GET /foo/bar/baz?x=1&y HTTP/1.1\r\nA: 1\r\nHost: public.example\r\nB: 2\r\n\r\n",
	          &c, &ctx, -1);
	CHECK(STARTS(out, "GET /bar/baz?x=1&y HTTP/1.1\r\nA: 1\r\nHost: internal.svc\r\nB: 2\r\n"));
	CHECK_INT(count(out, "\nHost:"), 1);
	CHECK(strstr(out, "X-Forwarded-Host: public.example\r\n") != NULL);

	/* captures first, missing ones empty, '?' in the template joins with '&' */
	r.policy->rewrite_target = "$2/$1$7?from=$0";
	build_req("GET /foo/bar/baz?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", &c, &ctx, -1);
	CHECK(STARTS(out, "GET /bar/baz//?from=/foo/bar/baz&x=1 HTTP/1.1\r\n"));

	/* "/foo" alone: $2 empty -> "/" */
	m.cap_len[0] = 4;
	m.cap_len[1] = 0;
	m.cap_off[2] = 4;
	m.cap_len[2] = 0;
	r.policy->rewrite_target = "/$2";
	build_req("GET /foo HTTP/1.1\r\nHost: h\r\n\r\n", &c, &ctx, -1);
	CHECK(STARTS(out, "GET / HTTP/1.1\r\n"));
}

static void test_request_base_prefix_origin(void)
{
	struct http_client c;
	client_init(&c, "10.0.0.9", true);
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/convos/";
	r.match = ROUTE_MATCH_PREFIX;
	r.policy->request_base = true;
	r.policy->x_forwarded_prefix = "/convos";
	struct headers_ctx ctx = {.route = &r, .upstream_host = "10.1.0.5:3000"};
	build_req("GET /convos/events HTTP/1.1\r\nHost: chat.example.com\r\n"
	          "X-Request-Base: http://evil\r\nX-Forwarded-Prefix: /evil\r\n\r\n",
	          &c, &ctx, -1);
	CHECK(strstr(out, "X-Request-Base: https://chat.example.com/convos\r\n") != NULL);
	CHECK_INT(count(out, "X-Request-Base"), 1);
	CHECK(strstr(out, "X-Forwarded-Prefix: /convos\r\n") != NULL);
	CHECK_INT(count(out, "X-Forwarded-Prefix"), 1);

	r.path = "/";
	build_req("GET / HTTP/1.1\r\nHost: chat.example.com\r\n\r\n", &c, &ctx, -1);
	CHECK(strstr(out, "X-Request-Base: https://chat.example.com\r\n") != NULL);

	r.path = "/user/[^/]+/api/kernels";
	r.match = ROUTE_MATCH_REGEX;
	build_req("GET /user/bob/api/kernels HTTP/1.1\r\nHost: hub\r\n\r\n", &c, &ctx, -1);
	CHECK(strstr(out, "X-Request-Base: https://hub/user\r\n") != NULL);

	/* a trusted peer's proto/host define the public base */
	ctx.peer_trusted = true;
	r.path = "/app";
	r.match = ROUTE_MATCH_EXACT;
	build_req("GET /app HTTP/1.1\r\nHost: inner\r\nX-Forwarded-Proto: https, http\r\n"
	          "X-Forwarded-Host: www.example.com\r\n\r\n",
	          &c, &ctx, -1);
	CHECK(strstr(out, "X-Request-Base: https://www.example.com/app\r\n") != NULL);
	ctx.peer_trusted = false;

	/* origin-rewrite: Origin and Referer point at the host the upstream sees */
	struct route_policy o_policy = {0};
	struct route o = {.policy = &o_policy};
	o.path = "/";
	o.policy->origin_rewrite = true;
	ctx.route = &o;
	build_req("GET /api/kernels HTTP/1.1\r\nHost: hub.example.com\r\n"
	          "Origin: https://hub.example.com\r\n"
	          "Referer: https://hub.example.com/user/bob/tree?x=1\r\n\r\n",
	          &c, &ctx, -1);
	CHECK(strstr(out, "\r\nOrigin: http://hub.example.com\r\n") != NULL);
	CHECK(strstr(out, "\r\nReferer: http://hub.example.com/user/bob/tree?x=1\r\n") != NULL);
	o.policy->upstream_vhost = "localhost:8888";
	o.policy->backend_protocol = ROUTE_PROTO_HTTPS;
	build_req("GET /api/kernels HTTP/1.1\r\nHost: hub.example.com\r\n"
	          "Origin: https://hub.example.com\r\n"
	          "Referer: https://hub.example.com\r\nReferer-Policy: x\r\n\r\n",
	          &c, &ctx, -1);
	CHECK(strstr(out, "\r\nOrigin: https://localhost:8888\r\n") != NULL);
	CHECK(strstr(out, "\r\nReferer: https://localhost:8888\r\n") != NULL);
	CHECK(strstr(out, "\r\nHost: localhost:8888\r\n") != NULL);
	CHECK(strstr(out, "\r\nReferer-Policy: x\r\n") != NULL);
	/* not set: untouched */
	o.policy->origin_rewrite = false;
	build_req("GET / HTTP/1.1\r\nOrigin: https://a.example\r\n\r\n", &c, &ctx, -1);
	CHECK(strstr(out, "\r\nOrigin: https://a.example\r\n") != NULL);
}

static void test_request_headers_and_websocket(void)
{
	struct http_client c;
	client_init(&c, "10.0.0.9", false);
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/ws";
	struct route_header set[] = {{"X-App", "weir", false},
	                             {"x-forwarded-proto", "https", false},
	                             {"Connection", "bogus", false}};
	r.policy->request_headers = set;
	r.policy->nrequest_headers = 3;
	struct headers_ctx ctx = {.route = &r};
	struct http_request req;
	const char *raw = "GET /ws HTTP/1.1\r\n"
	                  "Host: h\r\n"
	                  "Connection: Upgrade\r\n"
	                  "Upgrade: websocket\r\n"
	                  "X-App: client\r\n"
	                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	                  "Sec-WebSocket-Version: 13\r\n"
	                  "Sec-WebSocket-Protocol: chat, superchat\r\n"
	                  "\r\n";
	parse_request(raw, &req);
	req.upgrade_websocket = true;
	int n = headers_build_request(&req, &c, &ctx, -1, out, sizeof(out) - 1);
	CHECK(n > 0);
	out[n > 0 ? n : 0] = '\0';
	CHECK(strncmp(out,
	              "GET /ws HTTP/1.1\r\nHost: h\r\n"
	              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	              "Sec-WebSocket-Version: 13\r\n"
	              "Sec-WebSocket-Protocol: chat, superchat\r\n",
	              strlen("GET /ws HTTP/1.1\r\nHost: h\r\n"
	                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	                     "Sec-WebSocket-Version: 13\r\n"
	                     "Sec-WebSocket-Protocol: chat, superchat\r\n")) == 0);
	CHECK(strstr(out, "X-App: weir\r\n") != NULL);
	CHECK(strstr(out, "client") == NULL);
	CHECK_INT(count(out, "X-App"), 1);
	CHECK(strstr(out, "x-forwarded-proto: https\r\n") != NULL);
	CHECK_INT(count(out, "X-Forwarded-Proto"), 0);
	CHECK(strstr(out, "bogus") == NULL);
	CHECK(strstr(out, "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n") ==
	      out + n - strlen("Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"));
	CHECK_INT(count(out, "Connection"), 1);
	CHECK(strstr(out, "Content-Length") == NULL);
}

static void test_hsts(void)
{
	struct route_table *t = route_table_new();
	struct route_settings *st = &t->settings;
	char v[64];
	CHECK_INT(headers_hsts_value(st, v, sizeof(v)), 35);
	CHECK_STR(v, "max-age=31536000; includeSubDomains");
	st->hsts_max_age = 600;
	st->hsts_include_subdomains = false;
	st->hsts_preload = true;
	CHECK(headers_hsts_value(st, v, sizeof(v)) > 0);
	CHECK_STR(v, "max-age=600; preload");
	st->hsts = false;
	CHECK_INT(headers_hsts_value(st, v, sizeof(v)), 0);
	CHECK_INT(headers_hsts_value(NULL, v, sizeof(v)), 0);
	route_table_free(t);

	/* ours replaces the upstream's */
	struct http_response resp;
	parse_response("HTTP/1.1 200 OK\r\n"
	               "strict-transport-security: max-age=5\r\n"
	               "X-A: 1\r\n"
	               "\r\n",
	               &resp);
	struct headers_resp_extra x = {.hsts = "max-age=600; preload"};
	int n = headers_build_response(&resp, NULL, &x, 0, true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 200 OK\r\n"
	               "X-A: 1\r\n"
	               "Strict-Transport-Security: max-age=600; preload\r\n"
	               "Content-Length: 0\r\n"
	               "\r\n");
	/* without it (plain HTTP, or hsts off) the upstream's passes */
	n = headers_build_response(&resp, NULL, NULL, 0, true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK(strstr(out, "\r\nstrict-transport-security: max-age=5\r\n") != NULL);
	CHECK_INT(count(out, "ransport-Security"), 0);
	/* a route's response-headers entry wins over the global value */
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	struct route_header set[] = {{"Strict-Transport-Security", "max-age=1", false}};
	r.policy->response_headers = set;
	r.policy->nresponse_headers = 1;
	n = headers_build_response(&resp, &r, &x, 0, true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK(strstr(out, "\r\nStrict-Transport-Security: max-age=1\r\n") != NULL);
	CHECK_INT(count(out, "ransport-Security"), 1);
}

/* server-tokens and allow-backend-server-header: the upstream's Server is
 * dropped or passed; weir's is added when none passed, unless the route
 * hides or sets Server. */
static void test_server(void)
{
	struct http_response resp;
	parse_response("HTTP/1.1 200 OK\r\n"
	               "server: app/1.2\r\n"
	               "X-A: 1\r\n"
	               "\r\n",
	               &resp);
	/* server-tokens false (default): no Server at all */
	struct headers_resp_extra x = {.hide_server = true};
	int n = headers_build_response(&resp, NULL, &x, 0, true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 200 OK\r\n"
	               "X-A: 1\r\n"
	               "Content-Length: 0\r\n"
	               "\r\n");
	/* server-tokens true: weir's replaces the upstream's */
	x.server = "weir/9.9";
	n = headers_build_response(&resp, NULL, &x, 0, true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 200 OK\r\n"
	               "X-A: 1\r\n"
	               "Server: weir/9.9\r\n"
	               "Content-Length: 0\r\n"
	               "\r\n");
	/* allow-backend-server-header: the upstream's passes, ours is not added */
	x.hide_server = false;
	n = headers_build_response(&resp, NULL, &x, 0, true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK(strstr(out, "\r\nserver: app/1.2\r\n") != NULL);
	CHECK_INT(count(out, "erver:"), 1);
	/* ... and ours when the upstream sent none */
	struct http_response bare;
	parse_response("HTTP/1.1 204 No Content\r\n\r\n", &bare);
	n = headers_build_response(&bare, NULL, &x, 0, true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK(strstr(out, "\r\nServer: weir/9.9\r\n") != NULL);
	/* a route that hides Server (more_clear_headers) gets none; one that
	 * sets it (more_set_headers) gets its own */
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	char *hide[] = {"server"};
	r.policy->hide_headers = hide;
	r.policy->nhide_headers = 1;
	n = headers_build_response(&resp, &r, &x, 0, true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_INT(count(out, "erver:"), 0);
	r.policy->nhide_headers = 0;
	struct route_header set[] = {{"Server", "mine", false}};
	r.policy->response_headers = set;
	r.policy->nresponse_headers = 1;
	x.hide_server = true;
	n = headers_build_response(&resp, &r, &x, 0, true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK(strstr(out, "\r\nServer: mine\r\n") != NULL);
	CHECK_INT(count(out, "erver:"), 1);
}

/* use-gzip: Content-Encoding and Vary added, Accept-Ranges dropped, the
 * ETag weakened (nginx's gzip filter); Vary not repeated. */
static void test_gzip(void)
{
	char out[2048];
	struct http_response resp;
	parse_response("HTTP/1.1 200 OK\r\n"
	               "Content-Type: text/plain\r\n"
	               "Content-Length: 5000\r\n"
	               "ETag: \"v1\"\r\n"
	               "Accept-Ranges: bytes\r\n"
	               "Vary: Origin\r\n"
	               "\r\n",
	               &resp);
	resp.content_length = 5000;
	struct headers_resp_extra x = {.encoding = "gzip", .vary_accept_encoding = true};
	int n =
	    headers_build_response(&resp, NULL, &x, -2, HEADERS_CONN_KEEP, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 200 OK\r\n"
	               "Content-Type: text/plain\r\n"
	               "ETag: W/\"v1\"\r\n"
	               "Vary: Origin\r\n"
	               "Content-Encoding: gzip\r\n"
	               "Vary: Accept-Encoding\r\n"
	               "Transfer-Encoding: chunked\r\n"
	               "\r\n");
	/* a weak ETag stays, one that is not a quoted string goes; an upstream
	 * Vary naming Accept-Encoding (any case, in a list) is enough */
	parse_response("HTTP/1.1 200 OK\r\n"
	               "etag: W/\"v2\"\r\n"
	               "ETag: bare\r\n"
	               "vary: origin, accept-encoding\r\n"
	               "\r\n",
	               &resp);
	n = headers_build_response(&resp, NULL, &x, -2, HEADERS_CONN_KEEP, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 200 OK\r\n"
	               "etag: W/\"v2\"\r\n"
	               "vary: origin, accept-encoding\r\n"
	               "Content-Encoding: gzip\r\n"
	               "Transfer-Encoding: chunked\r\n"
	               "\r\n");
	/* Vary only (the client did not accept gzip): the rest as is */
	parse_response("HTTP/1.1 200 OK\r\n"
	               "ETag: \"v1\"\r\n"
	               "Accept-Ranges: bytes\r\n"
	               "Vary: *\r\n"
	               "\r\n",
	               &resp);
	struct headers_resp_extra v = {.vary_accept_encoding = true};
	n = headers_build_response(&resp, NULL, &v, 10, HEADERS_CONN_KEEP, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 200 OK\r\n"
	               "ETag: \"v1\"\r\n"
	               "Accept-Ranges: bytes\r\n"
	               "Vary: *\r\n"
	               "Content-Length: 10\r\n"
	               "\r\n");
	parse_response("HTTP/1.1 200 OK\r\n"
	               "\r\n",
	               &resp);
	n = headers_build_response(&resp, NULL, &v, 10, HEADERS_CONN_KEEP, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 200 OK\r\n"
	               "Vary: Accept-Encoding\r\n"
	               "Content-Length: 10\r\n"
	               "\r\n");
}

static void test_response(void)
{
	struct http_response resp;
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	char *hide[] = {"X-Powered-By", "server"};
	struct route_header set[] = {{"Cache-Control", "no-store", false},
	                             {"X-Frame-Options", "DENY", false}};
	r.policy->hide_headers = hide;
	r.policy->nhide_headers = 2;
	r.policy->response_headers = set;
	r.policy->nresponse_headers = 2;
	parse_response("HTTP/1.1 200 Fine Thanks\r\n"
	               "Set-Cookie: a=1; Path=/\r\n"
	               "X-Powered-By: php\r\n"
	               "Server: nginx\r\n"
	               "Set-Cookie: b=2\r\n"
	               "cache-control: public\r\n"
	               "Connection: keep-alive, X-Hop\r\n"
	               "X-Hop: 1\r\n"
	               "Keep-Alive: timeout=5\r\n"
	               "Content-Length: 10\r\n"
	               "X-Unknown: \xff z\r\n"
	               "Set-Cookie: c=3\r\n"
	               "\r\n",
	               &resp);
	struct headers_resp_extra x = {.set_cookie = "INGRESSCOOKIE=00112233445566778899; Path=/"};
	int n = headers_build_response(&resp, &r, &x, 10, true, out, sizeof(out) - 1);
	CHECK(n > 0);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 200 Fine Thanks\r\n"
	               "Set-Cookie: a=1; Path=/\r\n"
	               "Set-Cookie: b=2\r\n"
	               "X-Unknown: \xff z\r\n"
	               "Set-Cookie: c=3\r\n"
	               "Cache-Control: no-store\r\n"
	               "X-Frame-Options: DENY\r\n"
	               "Set-Cookie: INGRESSCOOKIE=00112233445566778899; Path=/\r\n"
	               "Content-Length: 10\r\n"
	               "\r\n");

	/* chunked, close, CORS replacing the upstream's, no route */
	r.policy->nhide_headers = 0;
	r.policy->nresponse_headers = 0;
	r.policy->cors.enabled = true;
	r.policy->cors.allow_origin = "https://app.example";
	r.policy->cors.allow_credentials = true;
	r.policy->cors.expose_headers = "X-Total";
	parse_response("HTTP/1.1 404 \r\nAccess-Control-Allow-Origin: *\r\n"
	               "Transfer-Encoding: chunked\r\n\r\n",
	               &resp);
	x = (struct headers_resp_extra){.allow_origin = "https://app.example",
	                                .allow_origin_len = 19};
	n = headers_build_response(&resp, &r, &x, -2, false, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 404 Not Found\r\n"
	               "Access-Control-Allow-Origin: https://app.example\r\n"
	               "Vary: Origin\r\n"
	               "Access-Control-Allow-Credentials: true\r\n"
	               "Access-Control-Expose-Headers: X-Total\r\n"
	               "Transfer-Encoding: chunked\r\n"
	               "Connection: close\r\n"
	               "\r\n");
	/* "*": no Vary; an origin not allowed: the upstream's CORS headers are
	 * still dropped and none are added */
	x = (struct headers_resp_extra){.allow_origin = "*", .allow_origin_len = 1};
	n = headers_build_response(&resp, &r, &x, -2, false, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 404 Not Found\r\n"
	               "Access-Control-Allow-Origin: *\r\n"
	               "Access-Control-Allow-Credentials: true\r\n"
	               "Access-Control-Expose-Headers: X-Total\r\n"
	               "Transfer-Encoding: chunked\r\n"
	               "Connection: close\r\n"
	               "\r\n");
	n = headers_build_response(&resp, &r, NULL, -2, false, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 404 Not Found\r\n"
	               "Transfer-Encoding: chunked\r\n"
	               "Connection: close\r\n"
	               "\r\n");
	n = headers_build_response(&resp, NULL, NULL, -1, false, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 404 Not Found\r\n"
	               "Access-Control-Allow-Origin: *\r\n"
	               "Connection: close\r\n"
	               "\r\n");
	/* lengths in decimal, from 0 to the largest a body can announce */
	n = headers_build_response(&resp, NULL, NULL, INT64_MAX, true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK(strstr(out, "\r\nContent-Length: 9223372036854775807\r\n") != NULL);
	n = headers_build_response(&resp, NULL, NULL, 1234567890, true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK(strstr(out, "\r\nContent-Length: 1234567890\r\n") != NULL);
	/* an HTTP/1.0 client that asked to keep the connection is told it stays */
	n = headers_build_response(&resp, NULL, NULL, 0, HEADERS_CONN_KEEP_10, out,
	                           sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 404 Not Found\r\n"
	               "Access-Control-Allow-Origin: *\r\n"
	               "Content-Length: 0\r\n"
	               "Connection: keep-alive\r\n"
	               "\r\n");

	/* 101 */
	parse_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	               "Connection: upgrade\r\n"
	               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
	               &resp);
	n = headers_build_response(&resp, NULL, NULL, -1, false, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 101 Switching Protocols\r\n"
	               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
	               "Connection: Upgrade\r\nUpgrade: websocket\r\n"
	               "\r\n");

	/* 204 gets no framing; 304 keeps the upstream's Content-Length */
	parse_response("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", &resp);
	n = headers_build_response(&resp, NULL, NULL, 0, true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 204 No Content\r\n\r\n");
	parse_response("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 99\r\n\r\n",
	               &resp);
	n = headers_build_response(&resp, NULL, NULL, 0, true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 99\r\n\r\n");
}

static void test_local(void)
{
	int n = headers_build_local(404, NULL, "Not Found\n", true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 404 Not Found\r\n"
	               "Content-Type: text/plain; charset=utf-8\r\n"
	               "Content-Length: 10\r\n"
	               "\r\n"
	               "Not Found\n");
	n = headers_build_local(404, NULL, "Not Found\n", HEADERS_CONN_KEEP_10, out,
	                        sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK(strstr(out, "\r\nConnection: keep-alive\r\n\r\nNot Found\n") != NULL);
	/* a status outside 100..999 is never written as is */
	n = headers_build_local(1000, NULL, NULL, true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK(strncmp(out, "HTTP/1.1 500 ", 13) == 0);
	n = headers_build_local(204, NULL, NULL, true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 204 No Content\r\n\r\n");
	n = headers_build_local(308, "Location: https://a/b\r\n", NULL, false, out,
	                        sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 308 Permanent Redirect\r\n"
	               "Content-Type: text/plain; charset=utf-8\r\n"
	               "Content-Length: 0\r\n"
	               "Location: https://a/b\r\n"
	               "Connection: close\r\n"
	               "\r\n");
	n = headers_build_local(204, "Access-Control-Allow-Origin: *\r\n", "ignored", true, out,
	                        sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK_STR(out, "HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: *\r\n\r\n");
	static const int codes[] = {101, 200, 204, 301, 302, 307, 308, 400, 403, 404,
	                            405, 408, 413, 414, 429, 431, 500, 502, 503, 504};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		CHECK(strcmp(headers_reason(codes[i]), "Unknown") != 0);
	CHECK_STR(headers_reason(431), "Request Header Fields Too Large");
	CHECK_STR(headers_reason(503), "Service Unavailable");
}

static void test_too_big(void)
{
	struct http_client c;
	client_init(&c, "10.0.0.9", false);
	struct headers_ctx ctx = {0};
	struct http_request req;
	parse_request("GET /some/path HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n", &req);
	char big[4096], tiny[16];
	int n = headers_build_request(&req, &c, &ctx, 0, big, sizeof(big));
	CHECK(n > 0);
	/* exactly enough fits, one byte less does not, and nothing is written past cap */
	char exact[4096];
	memset(exact, 'Z', sizeof(exact));
	CHECK_INT(headers_build_request(&req, &c, &ctx, 0, exact, (size_t)n), n);
	CHECK(memcmp(exact, big, (size_t)n) == 0);
	CHECK(exact[n] == 'Z');
	memset(exact, 'Z', sizeof(exact));
	CHECK_INT(headers_build_request(&req, &c, &ctx, 0, exact, (size_t)n - 1), WEIR_ETOOBIG);
	CHECK(exact[n - 1] == 'Z');
	CHECK_INT(headers_build_request(&req, &c, &ctx, 0, tiny, sizeof(tiny)), WEIR_ETOOBIG);
	CHECK_INT(headers_build_request(&req, &c, &ctx, 0, tiny, 0), WEIR_ETOOBIG);

	struct http_response resp;
	parse_response("HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\n\r\n", &resp);
	CHECK_INT(headers_build_response(&resp, NULL, NULL, 0, true, tiny, sizeof(tiny)),
	          WEIR_ETOOBIG);
	CHECK_INT(headers_build_local(502, NULL, "Bad Gateway\n", true, tiny, sizeof(tiny)),
	          WEIR_ETOOBIG);

	/* rewrite that outgrows the buffer */
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	r.policy->rewrite_target = "$0$0$0$0$0$0$0$0$0$0$0$0";
	struct table_match m = {.ncaptures = 1, .cap_len = {10}};
	ctx.route = &r;
	ctx.match = &m;
	parse_request("GET /some/path HTTP/1.1\r\n\r\n", &req);
	char small[100];
	CHECK_INT(headers_build_request(&req, &c, &ctx, 0, small, sizeof(small)), WEIR_ETOOBIG);
}

/* add_headers (nginx add_header): appended after the upstream's headers
 * (a same-named one stays), only on nginx's statuses unless always. */
static void test_add_headers(void)
{
	struct http_response resp;
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	struct route_add_header add[] = {{"Cache-Control", "no-store", false, false},
	                                 {"X-Always", "yes", true, false}};
	r.policy->add_headers = add;
	r.policy->nadd_headers = 2;
	static const int on[] = {200, 201, 204, 206, 301, 302, 303, 304, 307, 308};
	static const int off[] = {202, 203, 300, 305, 400, 401, 403, 404, 418, 500, 502, 503};
	char raw[128];
	for (size_t i = 0; i < sizeof(on) / sizeof(on[0]) + sizeof(off) / sizeof(off[0]); i++) {
		bool want = i < sizeof(on) / sizeof(on[0]);
		int status = want ? on[i] : off[i - sizeof(on) / sizeof(on[0])];
		snprintf(raw, sizeof(raw), "HTTP/1.1 %d X\r\nCache-Control: public\r\n\r\n",
		         status);
		parse_response(raw, &resp);
		int n = headers_build_response(&resp, &r, NULL, 0, true, out, sizeof(out) - 1);
		out[n > 0 ? n : 0] = '\0';
		CHECK(strstr(out, "\r\nCache-Control: public\r\n") != NULL);
		CHECK((strstr(out, "\r\nCache-Control: no-store\r\n") != NULL) == want);
		CHECK(strstr(out, "\r\nX-Always: yes\r\n") != NULL);
		if ((strstr(out, "no-store") != NULL) != want)
			fprintf(stderr, "  status %d\n", status);
	}
	/* the route's own lines for a local answer: response_headers, then
	 * add_headers by status */
	struct route_header set[] = {{"X-Set", "s", false}};
	r.policy->response_headers = set;
	r.policy->nresponse_headers = 1;
	char lines[256];
	CHECK_INT(headers_route_lines(&r, 403, NULL, NULL, lines, sizeof(lines)), 25);
	CHECK_STR(lines, "X-Set: s\r\nX-Always: yes\r\n");
	headers_route_lines(&r, 301, NULL, NULL, lines, sizeof(lines));
	CHECK_STR(lines, "X-Set: s\r\nCache-Control: no-store\r\nX-Always: yes\r\n");
	CHECK_INT(headers_route_lines(&r, 301, NULL, NULL, lines, 10), WEIR_ETOOBIG);
	CHECK_INT(headers_route_lines(NULL, 200, NULL, NULL, lines, sizeof(lines)), 0);
	CHECK_STR(lines, "");
}

/* Values marked expand: the variables of route_var_lookup, filled from the
 * request and client; unmarked values keep '$' as text. */
static void test_expand(void)
{
	struct http_client c;
	client_init(&c, "192.0.2.7", true);
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	struct route_header set[] = {
	    {"X-Host", "$host", true},
	    {"X-Url", "${scheme}://$host$request_uri", true},
	    {"X-Who", "$remote_addr/$request_id", true},
	    {"X-Ua", "[$http_user_agent][$http_x_multi][$http_absent]", true},
	    {"X-Lit", "$host stays", false},
	};
	r.policy->request_headers = set;
	r.policy->nrequest_headers = 5;
	struct headers_ctx ctx = {.route = &r};
	const char *raw = "GET /a/b?c=d HTTP/1.1\r\nHost: WWW.Example.COM:8443\r\n"
	                  "User-Agent: curl/8\r\nX-Multi: 1\r\nx-multi: 2\r\n"
	                  "X-Request-ID: from-client\r\n\r\n";
	int n = build_req(raw, &c, &ctx, -1);
	CHECK(n > 0);
	CHECK(strstr(out, "\r\nX-Host: www.example.com\r\n") != NULL);
	CHECK(strstr(out, "\r\nX-Url: https://www.example.com/a/b?c=d\r\n") != NULL);
	CHECK(strstr(out, "\r\nX-Who: 192.0.2.7/0123456789abcdef0123456789abcdef\r\n") != NULL);
	CHECK(strstr(out, "\r\nX-Ua: [curl/8][1, 2][]\r\n") != NULL);
	CHECK(strstr(out, "\r\nX-Lit: $host stays\r\n") != NULL);

	/* $req_id: a trusted peer's X-Request-ID, else weir's own */
	struct http_request req;
	parse_request(raw, &req);
	char v[128];
	CHECK_INT(headers_expand_value("$req_id", true, &req, &c, v, sizeof(v)), 32);
	CHECK_STR(v, "0123456789abcdef0123456789abcdef");
	c.forwarded_trusted = true;
	headers_expand_value("id=$req_id", true, &req, &c, v, sizeof(v));
	CHECK_STR(v, "id=from-client");
	headers_expand_value("[$host]", true, NULL, NULL, v, sizeof(v));
	CHECK_STR(v, "[]");
	CHECK_INT(headers_expand_value("$request_uri", true, &req, &c, v, 5), WEIR_ETOOBIG);
	/* IPv6 literal Host: the port goes, the brackets stay */
	parse_request("GET / HTTP/1.1\r\nHost: [2001:DB8::1]:80\r\n\r\n", &req);
	headers_expand_value("$host", true, &req, &c, v, sizeof(v));
	CHECK_STR(v, "[2001:db8::1]");

	/* response side: extra->req and extra->client */
	struct http_response resp;
	parse_response("HTTP/1.1 404 Nope\r\n\r\n", &resp);
	parse_request(raw, &req);
	struct route_header rs[] = {{"X-Req", "$request_id", true}};
	struct route_add_header add[] = {{"X-Path", "$request_uri", true, true}};
	struct route_policy r2_policy = {0};
	struct route r2 = {.policy = &r2_policy};
	r2.path = "/";
	r2.policy->response_headers = rs;
	r2.policy->nresponse_headers = 1;
	r2.policy->add_headers = add;
	r2.policy->nadd_headers = 1;
	struct headers_resp_extra x = {.req = &req, .client = &c};
	n = headers_build_response(&resp, &r2, &x, 0, true, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECK(strstr(out, "\r\nX-Req: 0123456789abcdef0123456789abcdef\r\n") != NULL);
	CHECK(strstr(out, "\r\nX-Path: /a/b?c=d\r\n") != NULL);
}

int main(void)
{
	test_add_headers();
	test_expand();
	test_passthrough_order();
	test_hop_by_hop();
	test_forwarded_trust();
	test_vhost_rewrite();
	test_request_base_prefix_origin();
	test_request_headers_and_websocket();
	test_response();
	test_hsts();
	test_server();
	test_gzip();
	test_local();
	test_too_big();
	return check_finish("headers_test");
}
