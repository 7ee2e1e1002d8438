/* tests/unit/proxy/policy_test.c - every pre-upstream check, their order, and
 * the per-IP limits under a controlled clock. Includes policy.c to replace
 * its clock. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "check.h"
#include "proxy/policy.c"
#include "request_fixture.h"

/* The fixture, plus the upgrade flag the policy checks look at. */
static void parse_request(const char *raw, struct http_request *req)
{
	fixture_parse_request(raw, req);
	for (size_t i = 0; i < req->nheaders; i++)
		if (http_name_is(&req->headers[i], "Upgrade"))
			req->upgrade_websocket = true;
}

static void client_init(struct http_client *c, const char *ip, bool tls)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	c->local_port = 8080;
	c->tls = tls;
}

static struct route_cidr cidr(const char *s)
{
	struct route_cidr c;
	memset(&c, 0, sizeof(c));
	CHECK_INT(route_cidr_parse(s, &c), 0);
	return c;
}

static struct policy_result res;
static struct http_request req;

static int run(const struct route *r, const char *raw, const struct http_client *c)
{
	parse_request(raw, &req);
	CHECK_INT(policy_check(r, &req, c, &res), 0);
	return res.status;
}

static void test_access_lists(void)
{
	struct http_client c4, c6, other;
	client_init(&c4, "10.1.2.3", false);
	client_init(&c6, "2001:db8::5", false);
	client_init(&other, "192.168.0.1", false);
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	struct route_cidr allow[] = {cidr("10.0.0.0/8"), cidr("2001:db8::/32")};
	struct route_cidr deny[] = {cidr("10.1.2.3")};
	r.policy->allow = allow;
	r.policy->nallow = 2;
	const char *get = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
	CHECK_INT(run(&r, get, &c4), 0);
	CHECK_INT(run(&r, get, &c6), 0);
	CHECK_INT(run(&r, get, &other), 403);
	CHECK(res.body != NULL);
	r.policy->deny = deny;
	r.policy->ndeny = 1;
	CHECK_INT(run(&r, get, &c4), 403); /* deny wins over allow */
	CHECK_INT(run(&r, get, &c6), 0);
	r.policy->nallow = 0;
	CHECK_INT(run(&r, get, &other), 0);
	CHECK_INT(run(&r, get, &c4), 403);
	/* sockaddr takes precedence over the text, IPv4-mapped matches IPv4 lists */
	struct http_client mapped;
	client_init(&mapped, "not-an-ip", false);
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&mapped.addr;
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:10.1.2.3", &sin6->sin6_addr);
	CHECK_INT(run(&r, get, &mapped), 403);
	struct http_client bad;
	client_init(&bad, "garbage", false);
	CHECK_INT(run(&r, get, &bad), 403);
}

static void test_redirects(void)
{
	struct http_client plain, tls;
	client_init(&plain, "10.0.0.1", false);
	client_init(&tls, "10.0.0.1", true);
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/app";

	r.policy->redirect_code = 301;
	r.policy->redirect_url = "https://new.example.com/x";
	CHECK_INT(run(&r, "GET /app/y HTTP/1.1\r\nHost: h\r\n\r\n", &plain), 301);
	CHECK_STR(res.location, "https://new.example.com/x");
	r.policy->redirect_code = 0;

	r.policy->ssl_redirect = true;
	CHECK_INT(run(&r, "GET /app/ HTTP/1.1\r\nHost: a.example.com:8080\r\n\r\n", &plain), 308);
	CHECK_STR(res.location, "https://a.example.com/app");
	CHECK_INT(run(&r, "GET /app/?x=1/ HTTP/1.1\r\nHost: a.example.com\r\n\r\n", &plain), 308);
	CHECK_STR(res.location, "https://a.example.com/app/?x=1/");
	CHECK_INT(run(&r, "GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n", &plain), 308);
	CHECK_STR(res.location, "https://a.example.com/");
	CHECK_INT(run(&r, "GET /a%20b HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", &plain), 308);
	CHECK_STR(res.location, "https://[::1]/a%20b");
	r.policy->preserve_trailing_slash = true;
	CHECK_INT(run(&r, "GET /app/ HTTP/1.1\r\nHost: a.example.com\r\n\r\n", &plain), 308);
	CHECK_STR(res.location, "https://a.example.com/app/");
	CHECK_INT(run(&r, "GET /app/ HTTP/1.0\r\n\r\n", &plain), 400);
	CHECK_INT(run(&r, "GET /app/ HTTP/1.1\r\nHost: a\"b\r\n\r\n", &plain), 400);
	CHECK_INT(run(&r, "GET /app/ HTTP/1.1\r\nHost: a.example.com\r\n\r\n", &tls), 0);
	CHECK_STR(res.location, "");

	/* redirect_code beats ssl_redirect */
	r.policy->redirect_code = 302;
	CHECK_INT(run(&r, "GET /app HTTP/1.1\r\nHost: h\r\n\r\n", &plain), 302);
	CHECK_STR(res.location, "https://new.example.com/x");
	r.policy->redirect_code = 0;

	/* app_root: only "/", after ssl_redirect */
	r.policy->app_root = "/dashboard";
	CHECK_INT(run(&r, "GET / HTTP/1.1\r\nHost: h.example\r\n\r\n", &plain), 308);
	CHECK_INT(run(&r, "GET /?a=1 HTTP/1.1\r\nHost: h.example:8443\r\n\r\n", &tls), 302);
	CHECK_STR(res.location, "https://h.example:8443/dashboard");
	CHECK_INT(run(&r, "GET /x HTTP/1.1\r\nHost: h.example\r\n\r\n", &tls), 0);
	r.policy->ssl_redirect = false;
	CHECK_INT(run(&r, "GET / HTTP/1.1\r\nHost: h.example\r\n\r\n", &plain), 302);
	CHECK_STR(res.location, "http://h.example/dashboard");
	CHECK_INT(run(&r, "GET / HTTP/1.0\r\n\r\n", &plain), 302);
	CHECK_STR(res.location, "/dashboard");
	r.policy->app_root = NULL;

	/* use-port-in-redirects: the HTTPS listen port in the ssl-redirect */
	plain.https_port = 8443;
	plain.local_port = 8080;
	r.policy->ssl_redirect = true;
	CHECK_INT(run(&r, "GET /app/x HTTP/1.1\r\nHost: a.example.com:80\r\n\r\n", &plain), 308);
	CHECK_STR(res.location, "https://a.example.com/app/x");
	r.policy->port_in_redirects = true;
	CHECK_INT(run(&r, "GET /app/x HTTP/1.1\r\nHost: a.example.com:80\r\n\r\n", &plain), 308);
	CHECK_STR(res.location, "https://a.example.com:8443/app/x");
	r.policy->ssl_redirect = false;
	r.policy->port_in_redirects = false;
}

static void test_www_redirect(void)
{
	struct http_client plain, tls;
	client_init(&plain, "10.0.0.1", false);
	client_init(&tls, "10.0.0.1", true);
	plain.local_port = 8080;
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	r.policy->redirect_code = 308;
	r.policy->redirect_host = "example.com";
	CHECK_INT(run(&r, "GET /a/?b=1 HTTP/1.1\r\nHost: www.example.com\r\n\r\n", &plain), 308);
	CHECK_STR(res.location, "http://example.com/a/?b=1");
	CHECK_INT(run(&r, "GET /a HTTP/1.1\r\nHost: www.example.com:9000\r\n\r\n", &tls), 308);
	CHECK_STR(res.location, "https://example.com:9000/a");
	CHECK_INT(run(&r, "GET /a HTTP/1.0\r\n\r\n", &plain), 308);
	CHECK_STR(res.location, "http://example.com/a");
	/* ssl_redirect does not come first: same scheme */
	r.policy->ssl_redirect = true;
	CHECK_INT(run(&r, "GET /a HTTP/1.1\r\nHost: www.example.com\r\n\r\n", &plain), 308);
	CHECK_STR(res.location, "http://example.com/a");
	/* use-port-in-redirects: the port it arrived on, not the one named */
	r.policy->port_in_redirects = true;
	CHECK_INT(run(&r, "GET /a HTTP/1.1\r\nHost: www.example.com:9000\r\n\r\n", &plain), 308);
	CHECK_STR(res.location, "http://example.com:8080/a");
}

static void test_cors_and_body(void)
{
	struct http_client c;
	client_init(&c, "10.0.0.1", false);
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	r.policy->cors.enabled = true;
	r.policy->cors.allow_origin = "*";
	r.policy->cors.allow_methods = "GET, POST";
	r.policy->cors.allow_headers = "X-A,Authorization";
	r.policy->cors.allow_credentials = true;
	r.policy->cors.max_age_s = 600;
	r.policy->body_limit = 100;
	const char *pre = "OPTIONS /x HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example\r\n"
	                  "Access-Control-Request-Method: PUT\r\nContent-Length: 500\r\n\r\n";
	CHECK_INT(run(&r, pre, &c), 204);
	CHECK_STR(res.extra_headers, "Access-Control-Allow-Origin: *\r\n"
	                             "Access-Control-Allow-Credentials: true\r\n"
	                             "Access-Control-Allow-Methods: GET, POST\r\n"
	                             "Access-Control-Allow-Headers: X-A,Authorization\r\n"
	                             "Access-Control-Max-Age: 600\r\n");
	r.policy->cors.allow_origin = "https://other.example, https://APP.example";
	CHECK_INT(run(&r, pre, &c), 204);
	CHECK(strstr(res.extra_headers,
	             "Access-Control-Allow-Origin: https://app.example\r\nVary: Origin\r\n") ==
	      res.extra_headers);
	r.policy->cors.allow_origin = "https://other.example";
	/* origin not allowed: not answered here, so the body limit applies next */
	CHECK_INT(run(&r, pre, &c), 413);
	CHECK_STR(res.extra_headers, "");
	/* not a preflight: no Access-Control-Request-Method */
	r.policy->cors.allow_origin = "*";
	CHECK_INT(run(&r, "OPTIONS /x HTTP/1.1\r\nOrigin: https://a\r\n\r\n", &c), 0);
	r.policy->cors.enabled = false;
	CHECK_INT(run(&r, pre, &c), 413);

	/* normal responses: the Origin is echoed when listed, "*" always answers,
	 * nothing for an unlisted or missing Origin or with CORS off */
	const char *val;
	size_t vlen;
	r.policy->cors.enabled = true;
	r.policy->cors.allow_origin = "https://other.example, https://APP.example";
	parse_request("GET /x HTTP/1.1\r\nOrigin:  https://app.example \r\n\r\n", &req);
	CHECK(policy_cors_allow_origin(&r, &req, &val, &vlen));
	CHECK_INT((int)vlen, 19);
	CHECK(strncmp(val, "https://app.example", vlen) == 0);
	parse_request("GET /x HTTP/1.1\r\nOrigin: https://evil.example\r\n\r\n", &req);
	CHECK(!policy_cors_allow_origin(&r, &req, &val, &vlen));
	parse_request("GET /x HTTP/1.1\r\nHost: h\r\n\r\n", &req);
	CHECK(!policy_cors_allow_origin(&r, &req, &val, &vlen));
	r.policy->cors.allow_origin = "*";
	CHECK(policy_cors_allow_origin(&r, &req, &val, &vlen));
	CHECK(vlen == 1 && val[0] == '*');
	r.policy->cors.enabled = false;
	CHECK(!policy_cors_allow_origin(&r, &req, &val, &vlen));
	CHECK(!policy_cors_allow_origin(NULL, &req, &val, &vlen));

	CHECK_INT(run(&r, "POST /x HTTP/1.1\r\nContent-Length: 100\r\n\r\n", &c), 0);
	CHECK_INT(run(&r, "POST /x HTTP/1.1\r\nContent-Length: 101\r\n\r\n", &c), 413);
	r.policy->body_limit = 0;
	CHECK_INT(run(&r, "POST /x HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", &c), 0);
}

static void test_websocket(void)
{
	struct http_client c;
	client_init(&c, "10.0.0.1", false);
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/ws";
	const char *ok = "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
	                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	                 "Sec-WebSocket-Version: 13\r\n\r\n";
	CHECK_INT(run(&r, ok, &c), 0);
	CHECK_INT(run(NULL, ok, &c), 0);
	CHECK_INT(run(&r,
	              "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
	              &c),
	          400);
	CHECK_INT(run(NULL,
	              "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Key: short\r\n"
	              "Sec-WebSocket-Version: 13\r\n\r\n",
	              &c),
	          400);
	CHECK_INT(run(&r,
	              "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n"
	              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	              "Sec-WebSocket-Version: 8\r\n\r\n",
	              &c),
	          400);
	CHECK_STR(res.extra_headers, "Sec-WebSocket-Version: 13\r\n");
	CHECK_INT(run(&r,
	              "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n"
	              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
	              &c),
	          400);
	/* body limit is checked before the handshake */
	r.policy->body_limit = 10;
	CHECK_INT(
	    run(&r, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nContent-Length: 11\r\n\r\n", &c),
	    413);
	/* a plain request to the same route passes */
	CHECK_INT(run(&r, "GET /ws HTTP/1.1\r\nHost: h\r\n\r\n", &c), 0);
}

static void test_order(void)
{
	/* every check armed: each one wins over all that come after it */
	struct http_client c;
	client_init(&c, "10.9.9.9", false);
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	struct route_cidr deny[] = {cidr("10.9.0.0/16")};
	r.policy->deny = deny;
	r.policy->ndeny = 1;
	r.policy->redirect_code = 307;
	r.policy->redirect_url = "https://elsewhere/";
	r.policy->ssl_redirect = true;
	r.policy->app_root = "/root";
	r.policy->cors.enabled = true;
	r.policy->cors.allow_origin = "*";
	r.policy->body_limit = 1;
	const char *raw = "OPTIONS / HTTP/1.1\r\nHost: h\r\nOrigin: https://o\r\n"
	                  "Access-Control-Request-Method: GET\r\nContent-Length: 5\r\n"
	                  "Upgrade: websocket\r\n\r\n";
	const int want[] = {403, 307, 308, 302, 204, 413, 400, 0};
	for (int step = 0; step < 8; step++) {
		CHECK_INT(run(&r, raw, &c), want[step]);
		switch (step) {
		case 0:
			r.policy->ndeny = 0;
			break;
		case 1:
			r.policy->redirect_code = 0;
			break;
		case 2:
			r.policy->ssl_redirect = false;
			break;
		case 3:
			r.policy->app_root = NULL;
			break;
		case 4:
			r.policy->cors.enabled = false;
			break;
		case 5:
			r.policy->body_limit = 0;
			break;
		case 6:
			req.upgrade_websocket = false;
			raw = "OPTIONS / HTTP/1.1\r\n\r\n";
			break;
		}
	}
}

/* ---- limits with a controlled clock ---- */

static int64_t fake_ns;
static int64_t fake_now(void)
{
	return fake_ns;
}

static void test_rps(void)
{
	limit_now = fake_now;
	fake_ns = 1000000000LL;
	struct http_client a, b;
	client_init(&a, "10.0.0.1", false);
	client_init(&b, "10.0.0.2", false);
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/rps";
	r.source = "ns/ing";
	/* limit_rpm 3, burst 2: 6 at once, then one per 20 s; an allowlisted
	 * client is not counted */
	struct route_policy m_policy = {0};
	struct route m = {.policy = &m_policy};
	m.path = "/rpm";
	m.source = "ns/ing";
	m.policy->limit_rpm = 3;
	m.policy->limit_burst = 2;
	struct route_cidr exempt;
	CHECK_INT(route_cidr_parse("10.0.0.2/32", &exempt), 0);
	m.policy->limit_allow = &exempt;
	m.policy->nlimit_allow = 1;
	int got = 0;
	for (int i = 0; i < 10; i++)
		if (policy_limit_enter(&m, &a, 503, 503) == 0) {
			got++;
			policy_limit_leave(&m, &a);
		}
	CHECK_INT(got, 6);
	for (int i = 0; i < 10; i++)
		CHECK_INT(policy_limit_enter(&m, &b, 503, 503), 0);
	fake_ns += 19LL * 1000000000LL;
	CHECK_INT(policy_limit_enter(&m, &a, 503, 503), 503);
	fake_ns += 1LL * 1000000000LL;
	CHECK_INT(policy_limit_enter(&m, &a, 503, 503), 0);
	policy_limit_leave(&m, &a);
	CHECK_INT(policy_limit_enter(&m, &a, 503, 503), 503);

	r.policy->limit_rps = 2; /* burst 10 */
	int passed = 0;
	for (int i = 0; i < 15; i++) {
		int rc = policy_limit_enter(&r, &a, 503, 503);
		CHECK(rc == 0 || rc == 503);
		if (rc == 0) {
			passed++;
			policy_limit_leave(&r, &a);
		}
	}
	CHECK_INT(passed, 10);
	/* another client and another route have their own buckets */
	CHECK_INT(policy_limit_enter(&r, &b, 503, 503), 0);
	policy_limit_leave(&r, &b);
	struct route r2 = r;
	r2.path = "/other";
	CHECK_INT(policy_limit_enter(&r2, &a, 503, 503), 0);
	policy_limit_leave(&r2, &a);
	/* half a second at 2 rps: one more request */
	fake_ns += 500000000LL;
	CHECK_INT(policy_limit_enter(&r, &a, 503, 503), 0);
	policy_limit_leave(&r, &a);
	/* limit-req-status-code answers the rate limit */
	CHECK_INT(policy_limit_enter(&r, &a, 429, 503), 429);
	/* a long idle time refills to the burst, never beyond */
	fake_ns += 3600LL * 1000000000LL;
	passed = 0;
	for (int i = 0; i < 15; i++)
		if (policy_limit_enter(&r, &a, 503, 503) == 0) {
			passed++;
			policy_limit_leave(&r, &a);
		}
	CHECK_INT(passed, 10);
	/* no limit configured: always 0, route NULL too */
	struct route_policy free_route_policy = {0};
	struct route free_route = {.policy = &free_route_policy};
	free_route.path = "/";
	for (int i = 0; i < 100; i++)
		CHECK_INT(policy_limit_enter(&free_route, &a, 503, 503), 0);
	CHECK_INT(policy_limit_enter(NULL, &a, 503, 503), 0);
}

static void test_connections(void)
{
	limit_now = fake_now;
	struct http_client a, b;
	client_init(&a, "10.0.1.1", false);
	client_init(&b, "10.0.1.2", false);
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/conn";
	r.source = "ns/ing";
	r.policy->limit_connections = 2;
	CHECK_INT(policy_limit_enter(&r, &a, 503, 503), 0);
	CHECK_INT(policy_limit_enter(&r, &a, 503, 503), 0);
	/* limit-conn-status-code answers the connection limit, not the rate's */
	CHECK_INT(policy_limit_enter(&r, &a, 429, 507), 507);
	CHECK_INT(policy_limit_enter(&r, &a, 503, 503), 503);
	CHECK_INT(policy_limit_enter(&r, &b, 503, 503), 0);
	policy_limit_leave(&r, &a);
	CHECK_INT(policy_limit_enter(&r, &a, 503, 503), 0);
	CHECK_INT(policy_limit_enter(&r, &a, 503, 503), 503);

	/* bounded memory: churn through many clients; entries holding open
	 * connections are never evicted, so a's count survives */
	char ip[64];
	struct http_client x;
	for (int i = 0; i < 3 * LIMIT_SLOTS; i++) {
		snprintf(ip, sizeof(ip), "172.16.%d.%d", i / 250, i % 250);
		client_init(&x, ip, false);
		fake_ns += 1000;
		CHECK(policy_limit_enter(&r, &x, 503, 503) == 0);
		policy_limit_leave(&r, &x);
	}
	CHECK_INT(policy_limit_enter(&r, &a, 503, 503), 503);
	policy_limit_leave(&r, &a);
	policy_limit_leave(&r, &a);
	CHECK_INT(policy_limit_enter(&r, &a, 503, 503), 0);
	CHECK_INT(policy_limit_enter(&r, &a, 503, 503), 0);
	policy_limit_leave(&r, &a);
	policy_limit_leave(&r, &a);
	policy_limit_leave(&r, &b);
	/* an extra leave does not go below zero */
	policy_limit_leave(&r, &a);
	CHECK_INT(policy_limit_enter(&r, &a, 503, 503), 0);
	CHECK_INT(policy_limit_enter(&r, &a, 503, 503), 0);
	CHECK_INT(policy_limit_enter(&r, &a, 503, 503), 503);
	policy_limit_leave(&r, &a);
	policy_limit_leave(&r, &a);
}

/* A tunnel outlives its route's table: it keeps only policy_limit_slot and
 * gives the count back with policy_limit_leave_slot, from a copy of the route
 * (the original may be freed by then). */
static void test_connection_slot(void)
{
	limit_now = fake_now;
	struct http_client a;
	client_init(&a, "10.0.2.1", false);
	struct route *r = calloc(1, sizeof(*r));
	CHECK(r != NULL);
	if (!r)
		return;
	r->policy = calloc(1, sizeof(*r->policy));
	CHECK(r->policy != NULL);
	if (!r->policy)
		return;
	r->path = strdup("/slot");
	r->source = strdup("ns/slot");
	r->policy->limit_connections = 1;
	CHECK_INT(policy_limit_enter(r, &a, 503, 503), 0);
	uint64_t slot = policy_limit_slot(r, &a);
	CHECK(slot != 0);
	free(r->path);
	free(r->source);
	free(r->policy);
	free(r);
	struct route_policy again_policy = {0};
	struct route again = {.policy = &again_policy};
	again.path = "/slot";
	again.source = "ns/slot";
	again.policy->limit_connections = 1;
	CHECK_INT(policy_limit_enter(&again, &a, 503, 503), 503);
	policy_limit_leave_slot(slot);
	CHECK_INT(policy_limit_enter(&again, &a, 503, 503), 0);
	CHECK(policy_limit_slot(&again, &a) == slot);
	policy_limit_leave(&again, &a);
	/* no limit, no route: slot 0, and leaving slot 0 changes nothing */
	struct route_policy plain_policy = {0};
	struct route plain = {.policy = &plain_policy};
	plain.path = "/slot";
	plain.source = "ns/slot";
	CHECK(policy_limit_slot(&plain, &a) == 0);
	CHECK(policy_limit_slot(NULL, &a) == 0);
	policy_limit_leave_slot(0);
	CHECK_INT(policy_limit_enter(&again, &a, 503, 503), 0);
	CHECK_INT(policy_limit_enter(&again, &a, 503, 503), 503);
	policy_limit_leave(&again, &a);
}

/* Lines written to stderr by fn() (the log goes there). */
static int count_log_lines(void (*fn)(void *), void *arg)
{
	fflush(stderr);
	FILE *tmp = tmpfile();
	int saved = dup(2);
	if (!tmp || saved < 0)
		return -1;
	dup2(fileno(tmp), 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	int lines = 0, ch;
	rewind(tmp);
	while ((ch = fgetc(tmp)) != EOF)
		lines += ch == '\n';
	fclose(tmp);
	return lines;
}

#define FULL_CLIENTS (2 * LIMIT_SLOTS)

struct full_run {
	struct route r;
	struct route_policy r_policy;
	struct http_client clients[FULL_CLIENTS];
	bool admitted[FULL_CLIENTS];
	int nadmitted, nrefused, first_refused;
};

/* Every client opens one connection and keeps it, more clients than slots. */
static void fill_table(void *p)
{
	struct full_run *f = p;
	char ip[64];
	f->first_refused = -1;
	for (int i = 0; i < FULL_CLIENTS; i++) {
		snprintf(ip, sizeof(ip), "10.9.%d.%d", i / 250, i % 250);
		client_init(&f->clients[i], ip, false);
		fake_ns += 1000;
		int rc = policy_limit_enter(&f->r, &f->clients[i], 503, 503);
		CHECK(rc == 0 || rc == 503);
		f->admitted[i] = rc == 0;
		if (rc == 0) {
			f->nadmitted++;
		} else {
			f->nrefused++;
			if (f->first_refused < 0)
				f->first_refused = i;
		}
	}
}

static void refuse_once_more(void *p)
{
	struct full_run *f = p;
	CHECK_INT(policy_limit_enter(&f->r, &f->clients[f->first_refused], 503, 503), 503);
}

/* A table whose probe windows hold only open connections refuses new clients
 * instead of letting them through unlimited, keeps every count it has, logs
 * one line for thousands of refusals, and admits again once entries free. */
static void test_full_table(void)
{
	limit_now = fake_now;
	fake_ns = 5000000000LL;
	struct full_run *f = calloc(1, sizeof(*f));
	if (!f)
		return;
	f->r.policy = &f->r_policy;
	f->r.path = "/full";
	f->r.source = "ns/full";
	f->r.policy->limit_connections = 1;
	CHECK_INT(count_log_lines(fill_table, f), 1);
	CHECK(f->nadmitted <= LIMIT_SLOTS);
	CHECK(f->nadmitted > LIMIT_SLOTS / 2);
	CHECK(f->nrefused >= FULL_CLIENTS - LIMIT_SLOTS);
	if (f->first_refused < 0)
		goto out;
	/* admitted clients were not evicted: their second connection is over
	 * the limit */
	for (int i = 0; i < FULL_CLIENTS; i++)
		if (f->admitted[i])
			CHECK_INT(policy_limit_enter(&f->r, &f->clients[i], 503, 503), 503);
	/* within the report interval: no new line; after it: one */
	CHECK_INT(count_log_lines(refuse_once_more, f), 0);
	fake_ns += LIMIT_WARN_NS;
	CHECK_INT(count_log_lines(refuse_once_more, f), 1);
	/* the connections close: the refused client gets a slot */
	for (int i = 0; i < FULL_CLIENTS; i++)
		if (f->admitted[i])
			policy_limit_leave(&f->r, &f->clients[i]);
	CHECK_INT(policy_limit_enter(&f->r, &f->clients[f->first_refused], 503, 503), 0);
	CHECK_INT(policy_limit_enter(&f->r, &f->clients[f->first_refused], 503, 503), 503);
	policy_limit_leave(&f->r, &f->clients[f->first_refused]);
out:
	free(f);
}

struct worker_arg {
	const struct route *r;
	const struct http_client *c;
	int refused;
};

static void *worker(void *p)
{
	struct worker_arg *w = p;
	for (int i = 0; i < 20000; i++) {
		if (policy_limit_enter(w->r, w->c, 503, 503) == 0)
			policy_limit_leave(w->r, w->c);
		else
			w->refused++;
	}
	return NULL;
}

static void test_threads(void)
{
	limit_now = mono_ns;
	struct http_client a;
	client_init(&a, "10.0.2.1", false);
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/threads";
	r.policy->limit_connections = 4;
	pthread_t th[4];
	struct worker_arg args[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (struct worker_arg){&r, &a, 0};
		pthread_create(&th[i], NULL, worker, &args[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	/* four threads never hold more than four: nothing refused, count back to 0 */
	CHECK_INT(args[0].refused + args[1].refused + args[2].refused + args[3].refused, 0);
	for (int i = 0; i < 4; i++)
		CHECK_INT(policy_limit_enter(&r, &a, 503, 503), 0);
	CHECK_INT(policy_limit_enter(&r, &a, 503, 503), 503);
	for (int i = 0; i < 4; i++)
		policy_limit_leave(&r, &a);
}

int main(void)
{
	test_access_lists();
	test_redirects();
	test_www_redirect();
	test_cors_and_body();
	test_websocket();
	test_order();
	test_rps();
	test_connections();
	test_connection_slot();
	test_full_table();
	test_threads();
	return check_finish("policy_test");
}
