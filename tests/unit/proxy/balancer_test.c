/* tests/unit/proxy/balancer_test.c - endpoint choice over real tables
 * (route_table_parse + table_new): round robin, weights, draining, cookie
 * affinity, upstream-hash-by consistency, canary, ewma, and round robin and
 * ewma state across table generations. Includes balancer.c to
 * reach the key expansion. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check.h"
#include "proxy/balancer.c"
#include "request_fixture.h"

static struct table *make_table(const char *json)
{
	struct route_table *rt = NULL;
	struct table *t = NULL;
	char err[256];
	int rc = route_table_parse(json, strlen(json), &rt, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "parse: %s\n", err);
		CHECK_INT(rc, 0);
		return NULL;
	}
	rc = table_new(rt, &t, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "table_new: %s\n", err);
	CHECK_INT(rc, 0);
	return t;
}

/* A table with backend 0 = eps0 and backend 1 = eps1 (JSON endpoint arrays). */
static struct table *table2(const char *eps0, const char *eps1)
{
	char json[16384];
	snprintf(json, sizeof(json),
	         "{\"version\":1,\"default_backend\":0,\"backends\":["
	         "{\"name\":\"ns/main:80\",\"endpoints\":[%s]},"
	         "{\"name\":\"ns/canary:80\",\"endpoints\":[%s]}]}",
	         eps0, eps1);
	return make_table(json);
}

static void parse_request(const char *raw, struct http_request *req)
{
	fixture_parse_request(raw, req);
}

static void client_init(struct http_client *c, const char *ip)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
}

static struct http_request req;
static struct http_client cl;
static struct balancer_pick pick;

static int choose(struct table *t, const struct route *r, const char *raw)
{
	parse_request(raw, &req);
	int rc = balancer_choose(t, r, &req, &cl, &pick);
	return rc;
}

static const char *const plain_get = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";

/* Reference FNV-1a 64, written out separately from the implementation. */
static uint64_t ref_fnv(const char *s)
{
	uint64_t h = 14695981039346656037ULL;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return h;
}

static void test_endpoint_id(void)
{
	struct route_endpoint ep = {.address = "10.0.0.5", .port = 8080, .weight = 1};
	char id[17], want[17];
	balancer_endpoint_id(&ep, id);
	snprintf(want, sizeof(want), "%016llx", (unsigned long long)ref_fnv("10.0.0.5:8080"));
	CHECK_STR(id, want);
	CHECK_INT(strlen(id), 16);
	/* the canonical address: every spelling of one IPv6 address agrees */
	struct route_endpoint a = {.address = "2001:db8:0:0::0001", .port = 80};
	struct route_endpoint b = {.address = "2001:DB8::1", .port = 80};
	char ia[17], ib[17];
	balancer_endpoint_id(&a, ia);
	balancer_endpoint_id(&b, ib);
	CHECK_STR(ia, ib);
	snprintf(want, sizeof(want), "%016llx", (unsigned long long)ref_fnv("2001:db8::1:80"));
	CHECK_STR(ia, want);
	/* weight and draining are not part of the identity; the port is */
	struct route_endpoint c = {
	    .address = "10.0.0.5", .port = 8080, .weight = 9, .draining = true};
	balancer_endpoint_id(&c, ia);
	CHECK_STR(ia, id);
	c.port = 8081;
	balancer_endpoint_id(&c, ia);
	CHECK(strcmp(ia, id) != 0);
}

static void test_round_robin(void)
{
	struct table *t = table2("{\"address\":\"10.0.0.1\",\"port\":80},"
	                         "{\"address\":\"10.0.0.2\",\"port\":80},"
	                         "{\"address\":\"10.0.0.3\",\"port\":80}",
	                         "{\"address\":\"10.0.1.1\",\"port\":80,\"weight\":3},"
	                         "{\"address\":\"10.0.1.2\",\"port\":80,\"weight\":1},"
	                         "{\"address\":\"10.0.1.3\",\"port\":80,\"draining\":true}");
	if (!t)
		return;
	client_init(&cl, "192.0.2.1");
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	r.backend = 0;
	r.canary.backend = -1;
	int hits[3] = {0};
	for (int i = 0; i < 300; i++) {
		CHECK_INT(choose(t, &r, plain_get), 0);
		CHECK_INT(pick.backend, 0);
		CHECK(pick.endpoint >= 0 && pick.endpoint < 3);
		CHECK_STR(pick.set_cookie, "");
		if (pick.endpoint >= 0 && pick.endpoint < 3)
			hits[pick.endpoint]++;
	}
	CHECK_INT(hits[0], 100);
	CHECK_INT(hits[1], 100);
	CHECK_INT(hits[2], 100);

	/* weights 3:1, the draining endpoint never chosen */
	r.backend = 1;
	memset(hits, 0, sizeof(hits));
	for (int i = 0; i < 400; i++) {
		CHECK_INT(choose(t, &r, plain_get), 0);
		CHECK_INT(pick.backend, 1);
		if (pick.endpoint >= 0 && pick.endpoint < 3)
			hits[pick.endpoint]++;
	}
	CHECK_INT(hits[0], 300);
	CHECK_INT(hits[1], 100);
	CHECK_INT(hits[2], 0);

	/* the default backend when no route matched; no backend at all */
	CHECK_INT(choose(t, NULL, plain_get), 0);
	CHECK_INT(pick.backend, 0);
	CHECK(pick.endpoint >= 0);
	r.backend = -1;
	CHECK_INT(choose(t, &r, plain_get), WEIR_ENOENT);
	CHECK_INT(pick.endpoint, -1);
	r.backend = 7;
	CHECK_INT(choose(t, &r, plain_get), WEIR_ENOENT);
	table_unref(t);

	/* nothing available: endpoint -1 */
	t = table2("", "{\"address\":\"10.0.1.3\",\"port\":80,\"draining\":true}");
	if (!t)
		return;
	r.backend = 0;
	CHECK_INT(choose(t, &r, plain_get), 0);
	CHECK_INT(pick.backend, 0);
	CHECK_INT(pick.endpoint, -1);
	r.backend = 1;
	r.policy->hash_by = "$remote_addr";
	CHECK_INT(choose(t, &r, plain_get), 0);
	CHECK_INT(pick.endpoint, -1);
	r.policy->hash_by = NULL;
	r.policy->affinity = ROUTE_AFFINITY_COOKIE;
	CHECK_INT(choose(t, &r, plain_get), 0);
	CHECK_INT(pick.endpoint, -1);
	CHECK_STR(pick.set_cookie, "");
	table_unref(t);
	t = make_table("{\"version\":1,\"default_backend\":-1}");
	CHECK_INT(choose(t, NULL, plain_get), WEIR_ENOENT);
	table_unref(t);
}

static const char *const five =
    "{\"address\":\"10.0.0.1\",\"port\":8080},{\"address\":\"10.0.0.2\",\"port\":8080},"
    "{\"address\":\"10.0.0.3\",\"port\":8080},{\"address\":\"10.0.0.4\",\"port\":8080},"
    "{\"address\":\"10.0.0.5\",\"port\":8080}";

static void test_affinity(void)
{
	struct table *t = table2(five, "");
	/* the same endpoints in another "replica", built separately */
	struct table *t2 = table2(five, "");
	/* 10.0.0.3 gone, 10.0.0.4 draining */
	struct table *t3 = table2("{\"address\":\"10.0.0.1\",\"port\":8080},"
	                          "{\"address\":\"10.0.0.2\",\"port\":8080},"
	                          "{\"address\":\"10.0.0.4\",\"port\":8080,\"draining\":true},"
	                          "{\"address\":\"10.0.0.5\",\"port\":8080}",
	                          "");
	if (!t || !t2 || !t3)
		goto out;
	client_init(&cl, "192.0.2.1");
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/app";
	r.match = ROUTE_MATCH_PREFIX;
	r.backend = 0;
	r.canary.backend = -1;
	r.policy->affinity = ROUTE_AFFINITY_COOKIE;
	r.policy->cookie.name = "SESS";
	r.policy->cookie.max_age_s = -1;
	r.policy->cookie.expires_s = -1;

	CHECK_INT(choose(t, &r, plain_get), 0);
	int first = pick.endpoint;
	CHECK(first >= 0);
	char id[17];
	balancer_endpoint_id(&table_routes(t)->backends[0].endpoints[first], id);
	char want[256];
	snprintf(want, sizeof(want), "SESS=%s; Path=/app; HttpOnly", id);
	CHECK_STR(pick.set_cookie, want);

	/* the cookie pins the endpoint in every replica, without re-setting it */
	char raw[512];
	snprintf(raw, sizeof(raw), "GET /app HTTP/1.1\r\nCookie: a=b; SESS=%s; z=1\r\n\r\n", id);
	for (int i = 0; i < 20; i++) {
		CHECK_INT(choose(i % 2 ? t : t2, &r, raw), 0);
		CHECK_INT(pick.endpoint, first);
		CHECK_STR(pick.set_cookie, "");
	}
	/* new clients spread over all endpoints */
	int hits[5] = {0};
	for (int i = 0; i < 50; i++) {
		CHECK_INT(choose(t, &r, plain_get), 0);
		if (pick.endpoint >= 0 && pick.endpoint < 5)
			hits[pick.endpoint]++;
	}
	for (int i = 0; i < 5; i++)
		CHECK_INT(hits[i], 10);

	/* endpoint of the cookie gone: balanced re-picks and re-sets */
	struct route_endpoint gone = {.address = "10.0.0.3", .port = 8080};
	struct route_endpoint draining = {.address = "10.0.0.4", .port = 8080};
	char gone_id[17], drain_id[17];
	balancer_endpoint_id(&gone, gone_id);
	balancer_endpoint_id(&draining, drain_id);
	snprintf(raw, sizeof(raw), "GET /app HTTP/1.1\r\nCookie: SESS=%s\r\n\r\n", gone_id);
	int rehits[4] = {0};
	for (int i = 0; i < 30; i++) {
		CHECK_INT(choose(t3, &r, raw), 0);
		CHECK(pick.endpoint >= 0 && pick.endpoint != 2);
		if (pick.endpoint >= 0 && pick.endpoint < 4) {
			rehits[pick.endpoint]++;
			balancer_endpoint_id(
			    &table_routes(t3)->backends[0].endpoints[pick.endpoint], id);
			snprintf(want, sizeof(want), "SESS=%s; Path=/app; HttpOnly", id);
			CHECK_STR(pick.set_cookie, want);
		}
	}
	CHECK_INT(rehits[0], 10);
	CHECK_INT(rehits[1], 10);
	CHECK_INT(rehits[3], 10);
	/* draining endpoint: balanced moves away */
	snprintf(raw, sizeof(raw), "GET /app HTTP/1.1\r\nCookie: SESS=%s\r\n\r\n", drain_id);
	CHECK_INT(choose(t3, &r, raw), 0);
	CHECK(pick.endpoint != 2 && pick.endpoint >= 0);
	CHECK(pick.set_cookie[0] != '\0');
	/* persistent: stays while listed (draining included), re-picks when gone */
	r.policy->affinity_mode = ROUTE_AFFINITY_PERSISTENT;
	CHECK_INT(choose(t3, &r, raw), 0);
	CHECK_INT(pick.endpoint, 2);
	CHECK_STR(pick.set_cookie, "");
	snprintf(raw, sizeof(raw), "GET /app HTTP/1.1\r\nCookie: SESS=%s\r\n\r\n", gone_id);
	CHECK_INT(choose(t3, &r, raw), 0);
	CHECK(pick.endpoint >= 0 && pick.endpoint != 2);
	CHECK(pick.set_cookie[0] != '\0');
	/* junk cookie values: a fresh pick */
	CHECK_INT(choose(t, &r, "GET / HTTP/1.1\r\nCookie: SESS=zz\r\n\r\n"), 0);
	CHECK(pick.set_cookie[0] != '\0');

	/* attributes */
	r.policy->cookie.max_age_s = 3600;
	r.policy->cookie.expires_s = 7200;
	r.policy->cookie.secure = true;
	r.policy->cookie.samesite = "Lax";
	CHECK_INT(choose(t, &r, plain_get), 0);
	CHECK(strstr(pick.set_cookie, "; Path=/app; Max-Age=3600; Expires=") != NULL);
	CHECK(strstr(pick.set_cookie, " GMT; Secure; SameSite=Lax; HttpOnly") != NULL);
	const char *exp = strstr(pick.set_cookie, "Expires=");
	if (exp) {
		/* "Wdy, DD Mon YYYY HH:MM:SS GMT" */
		exp += 8;
		CHECK(exp[3] == ',' && exp[4] == ' ' && exp[7] == ' ' && exp[11] == ' ' &&
		      exp[16] == ' ' && exp[19] == ':' && exp[22] == ':' && exp[25] == ' ');
		time_t now = time(NULL) + 7200;
		struct tm tm;
		gmtime_r(&now, &tm);
		char year[8];
		snprintf(year, sizeof(year), "%04d", tm.tm_year + 1900);
		CHECK(strncmp(exp + 12, year, 4) == 0);
	}
	r.policy->cookie.path = "/custom";
	CHECK_INT(choose(t, &r, plain_get), 0);
	CHECK(strstr(pick.set_cookie, "; Path=/custom;") != NULL);
	r.policy->cookie.path = NULL;
	r.path = "/user/[^/]+/api";
	r.match = ROUTE_MATCH_REGEX;
	r.policy->cookie.name = NULL;
	CHECK_INT(choose(t, &r, plain_get), 0);
	CHECK(strncmp(pick.set_cookie, "INGRESSCOOKIE=", 14) == 0);
	CHECK(strstr(pick.set_cookie, "; Path=/;") != NULL);
out:
	table_unref(t);
	table_unref(t2);
	table_unref(t3);
}

static void test_hash_by(void)
{
	char eps[4096] = "", eps9[4096] = "";
	for (int i = 0; i < 10; i++) {
		char one[128];
		snprintf(one, sizeof(one), "%s{\"address\":\"10.0.0.1\",\"port\":%d}", i ? "," : "",
		         8001 + i);
		strcat(eps, one);
		if (i != 3) {
			snprintf(one, sizeof(one), "%s{\"address\":\"10.0.0.1\",\"port\":%d}",
			         eps9[0] ? "," : "", 8001 + i);
			strcat(eps9, one);
		}
	}
	struct table *t = table2(eps, "");
	struct table *t9 = table2(eps9, "");
	if (!t || !t9)
		goto out;
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	r.backend = 0;
	r.canary.backend = -1;
	r.policy->hash_by = "$remote_addr";
	enum { KEYS = 10000 };
	static int port_of[KEYS];
	int per[10] = {0};
	for (int k = 0; k < KEYS; k++) {
		char ip[64];
		snprintf(ip, sizeof(ip), "100.%d.%d.%d", k / 65536, (k / 256) % 256, k % 256);
		client_init(&cl, ip);
		CHECK_INT(choose(t, &r, plain_get), 0);
		port_of[k] = table_routes(t)->backends[0].endpoints[pick.endpoint].port;
		per[pick.endpoint]++;
		/* stable: the same key, the same answer */
		CHECK_INT(choose(t, &r, plain_get), 0);
		CHECK_INT(table_routes(t)->backends[0].endpoints[pick.endpoint].port, port_of[k]);
	}
	for (int i = 0; i < 10; i++)
		CHECK(per[i] > 700 && per[i] < 1300);
	/* remove 8004: only its keys move */
	int moved = 0, wrong = 0;
	for (int k = 0; k < KEYS; k++) {
		char ip[64];
		snprintf(ip, sizeof(ip), "100.%d.%d.%d", k / 65536, (k / 256) % 256, k % 256);
		client_init(&cl, ip);
		CHECK_INT(choose(t9, &r, plain_get), 0);
		int port = table_routes(t9)->backends[0].endpoints[pick.endpoint].port;
		if (port != port_of[k]) {
			moved++;
			if (port_of[k] != 8004)
				wrong++;
		}
		CHECK(port != 8004);
	}
	CHECK_INT(moved, per[3]);
	CHECK_INT(wrong, 0);
	table_unref(t9);
	t9 = NULL;

	/* weights: 3:1:1:1:1 */
	table_unref(t);
	t = table2("{\"address\":\"10.0.0.1\",\"port\":1,\"weight\":3},"
	           "{\"address\":\"10.0.0.1\",\"port\":2},{\"address\":\"10.0.0.1\",\"port\":3},"
	           "{\"address\":\"10.0.0.1\",\"port\":4},{\"address\":\"10.0.0.1\",\"port\":5}",
	           "");
	if (!t)
		goto out;
	int w[5] = {0};
	for (int k = 0; k < KEYS; k++) {
		char ip[64];
		snprintf(ip, sizeof(ip), "100.%d.%d.%d", k / 65536, (k / 256) % 256, k % 256);
		client_init(&cl, ip);
		CHECK_INT(choose(t, &r, plain_get), 0);
		w[pick.endpoint]++;
	}
	CHECK(w[0] > 3800 && w[0] < 4800); /* 3/7 = 4286 */
	for (int i = 1; i < 5; i++)
		CHECK(w[i] > 1100 && w[i] < 1800); /* 1/7 = 1429 */
out:
	table_unref(t);
	table_unref(t9);
}

static const char *expand(const char *tmpl, const char *raw, const char *ip)
{
	static struct keybuf k;
	parse_request(raw, &req);
	client_init(&cl, ip);
	expand_key(&k, tmpl, &req, &cl);
	k.b[k.n < sizeof(k.b) ? k.n : sizeof(k.b) - 1] = '\0';
	return k.b;
}

static void test_key_expansion(void)
{
	const char *raw = "GET /p/a?User=bob&x=&flag&z=9 HTTP/1.1\r\n"
	                  "Host: API.Example.COM:8443\r\n"
	                  "X-Tenant-Id: acme\r\n"
	                  "Cookie: sid=abc123; other=1\r\n"
	                  "Cookie: late=\"q\"\r\n\r\n";
	CHECK_STR(expand("$remote_addr", raw, "192.0.2.9"), "192.0.2.9");
	CHECK_STR(expand("$host", raw, "x"), "api.example.com");
	CHECK_STR(expand("$request_uri", raw, "x"), "/p/a?User=bob&x=&flag&z=9");
	CHECK_STR(expand("$uri", raw, "x"), "/p/a");
	CHECK_STR(expand("$arg_user", raw, "x"), "bob");
	CHECK_STR(expand("$arg_z|$arg_x|$arg_flag|$arg_none", raw, "x"), "9|||");
	CHECK_STR(expand("$http_x_tenant_id", raw, "x"), "acme");
	CHECK_STR(expand("$cookie_sid-$cookie_late", raw, "x"), "abc123-q");
	CHECK_STR(expand("t:${http_x_tenant_id}:${arg_user}$remote_addr!", raw, "10.0.0.1"),
	          "t:acme:bob10.0.0.1!");
	CHECK_STR(expand("$unknown_var$", raw, "x"), "$");
	CHECK_STR(expand("plain", raw, "x"), "plain");
	/* different keys pick endpoints independently of the client when the
	 * template ignores it */
	struct table *t = table2(five, "");
	if (!t)
		return;
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	r.backend = 0;
	r.canary.backend = -1;
	r.policy->hash_by = "$arg_user";
	parse_request("GET /?user=alice HTTP/1.1\r\n\r\n", &req);
	client_init(&cl, "10.0.0.1");
	CHECK_INT(balancer_choose(t, &r, &req, &cl, &pick), 0);
	int first = pick.endpoint;
	client_init(&cl, "10.9.9.9");
	CHECK_INT(balancer_choose(t, &r, &req, &cl, &pick), 0);
	CHECK_INT(pick.endpoint, first);
	table_unref(t);
}

static void test_canary(void)
{
	struct table *t = table2(five, "{\"address\":\"10.0.9.1\",\"port\":80}");
	if (!t)
		return;
	client_init(&cl, "192.0.2.1");
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	r.backend = 0;
	r.canary.backend = 1;
	r.canary.by_header = "X-Canary";
	r.canary.by_cookie = "canary";
	CHECK_INT(choose(t, &r, "GET / HTTP/1.1\r\nx-canary: always\r\n\r\n"), 0);
	CHECK_INT(pick.backend, 1);
	CHECK_INT(pick.endpoint, 0);
	CHECK_INT(choose(t, &r, "GET / HTTP/1.1\r\nX-Canary: never\r\n\r\n"), 0);
	CHECK_INT(pick.backend, 0);
	CHECK_INT(choose(t, &r, "GET / HTTP/1.1\r\nCookie: canary=always\r\n\r\n"), 0);
	CHECK_INT(pick.backend, 1);
	CHECK_INT(choose(t, &r, "GET / HTTP/1.1\r\nCookie: canary=never\r\n\r\n"), 0);
	CHECK_INT(pick.backend, 0);
	CHECK_INT(choose(t, &r, plain_get), 0);
	CHECK_INT(pick.backend, 0);
	/* header beats cookie; "never" beats weight */
	r.canary.weight = 100;
	CHECK_INT(
	    choose(t, &r, "GET / HTTP/1.1\r\nX-Canary: never\r\nCookie: canary=always\r\n\r\n"), 0);
	CHECK_INT(pick.backend, 0);
	CHECK_INT(choose(t, &r, "GET / HTTP/1.1\r\nCookie: canary=never\r\n\r\n"), 0);
	CHECK_INT(pick.backend, 0);
	CHECK_INT(choose(t, &r, "GET / HTTP/1.1\r\nX-Canary: maybe\r\n\r\n"), 0);
	CHECK_INT(pick.backend, 1);
	r.canary.weight = 0;
	CHECK_INT(choose(t, &r, "GET / HTTP/1.1\r\nX-Canary: maybe\r\n\r\n"), 0);
	CHECK_INT(pick.backend, 0);
	/* by_header_value: that value only; others fall through */
	r.canary.by_header_value = "v2";
	CHECK_INT(choose(t, &r, "GET / HTTP/1.1\r\nX-Canary: v2\r\n\r\n"), 0);
	CHECK_INT(pick.backend, 1);
	CHECK_INT(choose(t, &r, "GET / HTTP/1.1\r\nX-Canary: always\r\n\r\n"), 0);
	CHECK_INT(pick.backend, 0);
	CHECK_INT(choose(t, &r, "GET / HTTP/1.1\r\nX-Canary: v3\r\nCookie: canary=always\r\n\r\n"),
	          0);
	CHECK_INT(pick.backend, 1);
	/* weight: a random share */
	r.canary.by_header = NULL;
	r.canary.by_cookie = NULL;
	r.canary.weight = 30;
	int canary = 0;
	for (int i = 0; i < 10000; i++) {
		CHECK_INT(choose(t, &r, plain_get), 0);
		canary += pick.backend == 1;
	}
	CHECK(canary > 2700 && canary < 3300);
	r.canary.weight = 100;
	canary = 0;
	for (int i = 0; i < 1000; i++) {
		CHECK_INT(choose(t, &r, plain_get), 0);
		canary += pick.backend == 1;
	}
	CHECK_INT(canary, 1000);
	/* a canary backend out of range is ignored */
	r.canary.backend = 9;
	CHECK_INT(choose(t, &r, plain_get), 0);
	CHECK_INT(pick.backend, 0);
	table_unref(t);
}

/* A table whose host "" has one route "/" on backend 0 with canary backend 1,
 * the route's policy and canary objects given as JSON. */
static struct table *canary_table(const char *eps0, const char *eps1, const char *policy,
                                  const char *canary)
{
	char json[16384];
	snprintf(json, sizeof(json),
	         "{\"version\":1,\"hosts\":[{\"name\":\"\",\"routes\":[{\"path\":\"/\","
	         "\"match\":\"prefix\",\"backend\":0,\"policy\":%s,\"canary\":%s}]}],"
	         "\"backends\":[{\"name\":\"ns/main:80\",\"endpoints\":[%s]},"
	         "{\"name\":\"ns/canary:80\",\"endpoints\":[%s]}]}",
	         policy, canary, eps0, eps1);
	return make_table(json);
}

static const struct route *first_route(const struct table *t)
{
	return &table_routes(t)->hosts[0].routes[0];
}

/* canary-by-header-pattern (not anchored, case-sensitive; "always" is no
 * longer special once a pattern is set) and canary-weight-total. */
static void test_canary_pattern_total(void)
{
	struct table *t = canary_table(five, "{\"address\":\"10.0.9.1\",\"port\":80}", "{}",
	                               "{\"backend\":1,\"by_header\":\"X-Canary\","
	                               "\"by_header_pattern\":\"v[23]$\",\"weight_total\":1000}");
	if (!t)
		return;
	const struct route *r = first_route(t);
	client_init(&cl, "192.0.2.1");
	CHECK_INT(choose(t, r, "GET / HTTP/1.1\r\nX-Canary: v2\r\n\r\n"), 0);
	CHECK_INT(pick.backend, 1);
	CHECK_INT(choose(t, r, "GET / HTTP/1.1\r\nX-Canary: build-v3\r\n\r\n"), 0);
	CHECK_INT(pick.backend, 1);
	CHECK_INT(choose(t, r, "GET / HTTP/1.1\r\nX-Canary: V2\r\n\r\n"), 0);
	CHECK_INT(pick.backend, 0);
	CHECK_INT(choose(t, r, "GET / HTTP/1.1\r\nX-Canary: always\r\n\r\n"), 0);
	CHECK_INT(pick.backend, 0);
	CHECK_INT(choose(t, r, plain_get), 0);
	CHECK_INT(pick.backend, 0);
	/* 250 out of 1000 */
	((struct route *)r)->canary.weight = 250;
	int canary = 0;
	for (int i = 0; i < 20000; i++) {
		CHECK_INT(choose(t, r, plain_get), 0);
		canary += pick.backend == 1;
	}
	CHECK(canary > 4600 && canary < 5400);
	((struct route *)r)->canary.weight = 1000;
	canary = 0;
	for (int i = 0; i < 1000; i++) {
		CHECK_INT(choose(t, r, plain_get), 0);
		canary += pick.backend == 1;
	}
	CHECK_INT(canary, 1000);
	/* a route of another table has no compiled pattern: no match */
	struct route copy = *r;
	copy.canary.weight = 0;
	CHECK_INT(choose(t, &copy, "GET / HTTP/1.1\r\nX-Canary: v2\r\n\r\n"), 0);
	CHECK_INT(pick.backend, 0);
	table_unref(t);
}

/* affinity-canary-behavior with cookie affinity: a cookie naming a main
 * endpoint keeps the request on main whatever the canary rules; sticky: one
 * naming a canary endpoint keeps it on the canary, and canary picks set the
 * cookie; legacy: canary picks set none and a canary cookie is not
 * followed. */
static void test_canary_affinity(void)
{
	const char *can =
	    "{\"address\":\"10.0.9.1\",\"port\":80},{\"address\":\"10.0.9.2\",\"port\":80}";
	struct table *st = canary_table(five, can, "{\"affinity\":\"cookie\"}",
	                                "{\"backend\":1,\"by_header\":\"X-Canary\"}");
	struct table *lg = canary_table(five, can, "{\"affinity\":\"cookie\"}",
	                                "{\"backend\":1,\"by_header\":\"X-Canary\","
	                                "\"affinity_behavior\":\"legacy\"}");
	if (!st || !lg)
		goto out;
	client_init(&cl, "192.0.2.1");
	char mid[17], cid[17], raw[512];
	balancer_endpoint_id(&table_routes(st)->backends[0].endpoints[2], mid);
	balancer_endpoint_id(&table_routes(st)->backends[1].endpoints[1], cid);

	for (int legacy = 0; legacy < 2; legacy++) {
		struct table *t = legacy ? lg : st;
		const struct route *r = first_route(t);
		snprintf(raw, sizeof(raw),
		         "GET / HTTP/1.1\r\nX-Canary: always\r\nCookie: INGRESSCOOKIE=%s\r\n\r\n",
		         mid);
		CHECK_INT(choose(t, r, raw), 0);
		CHECK_INT(pick.backend, 0);
		CHECK_INT(pick.endpoint, 2);
		CHECK_STR(pick.set_cookie, "");
		snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nCookie: INGRESSCOOKIE=%s\r\n\r\n",
		         cid);
		CHECK_INT(choose(t, r, raw), 0);
		CHECK_INT(pick.backend, legacy ? 0 : 1);
		if (!legacy) {
			CHECK_INT(pick.endpoint, 1);
			CHECK_STR(pick.set_cookie, "");
		}
		CHECK_INT(choose(t, r, "GET / HTTP/1.1\r\nX-Canary: always\r\n\r\n"), 0);
		CHECK_INT(pick.backend, 1);
		CHECK(pick.endpoint >= 0);
		if (legacy)
			CHECK_STR(pick.set_cookie, "");
		else
			CHECK(strncmp(pick.set_cookie, "INGRESSCOOKIE=", 14) == 0);
	}
out:
	table_unref(st);
	table_unref(lg);
}

/* session-cookie-domain and -conditional-samesite-none on the cookie. */
static void test_cookie_domain_samesite(void)
{
	struct table *t = table2("{\"address\":\"10.0.0.1\",\"port\":8080}", "");
	if (!t)
		return;
	client_init(&cl, "192.0.2.1");
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	r.match = ROUTE_MATCH_PREFIX;
	r.backend = 0;
	r.canary.backend = -1;
	r.policy->affinity = ROUTE_AFFINITY_COOKIE;
	r.policy->cookie.name = "S";
	r.policy->cookie.max_age_s = -1;
	r.policy->cookie.expires_s = -1;
	r.policy->cookie.domain = ".example.com";
	r.policy->cookie.samesite = "None";
	r.policy->cookie.secure = true;
	char id[17], want[256];
	balancer_endpoint_id(&table_routes(t)->backends[0].endpoints[0], id);
	const char *chrome51 = "GET / HTTP/1.1\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) "
	                       "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.103 "
	                       "Safari/537.36\r\n\r\n";
	snprintf(want, sizeof(want),
	         "S=%s; Path=/; Domain=.example.com; Secure; SameSite=None; HttpOnly", id);
	CHECK_INT(choose(t, &r, chrome51), 0);
	CHECK_STR(pick.set_cookie, want);
	r.policy->cookie.conditional_samesite_none = true;
	CHECK_INT(choose(t, &r, plain_get), 0);
	CHECK_STR(pick.set_cookie, want);
	CHECK_INT(choose(t, &r, chrome51), 0);
	snprintf(want, sizeof(want), "S=%s; Path=/; Domain=.example.com; Secure; HttpOnly", id);
	CHECK_STR(pick.set_cookie, want);
	/* only None is conditional */
	r.policy->cookie.samesite = "Lax";
	CHECK_INT(choose(t, &r, chrome51), 0);
	snprintf(want, sizeof(want),
	         "S=%s; Path=/; Domain=.example.com; Secure; SameSite=Lax; HttpOnly", id);
	CHECK_STR(pick.set_cookie, want);
	table_unref(t);
}

static void test_samesite_none_ok(void)
{
	static const struct {
		const char *ua;
		bool ok;
	} cases[] = {
	    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
	     "Chrome/120.0.0.0 Safari/537.36",
	     true},
	    {"Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/49.0.2623.112 Safari/537.36",
	     false},
	    {"Mozilla/5.0 (X11) AppleWebKit/537.36 Chrome/66.0.3359.181 Safari/537.36", false},
	    {"Mozilla/5.0 (iPhone; CPU iPhone OS 12_4 like Mac OS X) AppleWebKit/605.1.15", false},
	    {"Mozilla/5.0 (iPad; CPU OS 12_1 like Mac OS X) AppleWebKit/605.1.15", false},
	    {"Mozilla/5.0 (iPhone; CPU iPhone OS 13_1 like Mac OS X) AppleWebKit/605.1.15", true},
	    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 (KHTML, like "
	     "Gecko) Version/12.1.2 Safari/605.1.15",
	     false},
	    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/537.36 (KHTML, like "
	     "Gecko) Chrome/90.0.4430.93 Safari/537.36",
	     true},
	    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Version/14.0 "
	     "Safari/605.1.15",
	     true},
	    {"curl/8.5.0", true},
	    {"", true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_INT(balancer_samesite_none_ok(cases[i].ua, strlen(cases[i].ua)), cases[i].ok);
	CHECK_INT(balancer_samesite_none_ok(NULL, 0), true);
}

/* upstream-hash-by-subset: one key always lands in one subset of size
 * endpoints (spread over all of them), and keys spread over the subsets. */
static void test_hash_subset(void)
{
	const char *seven =
	    "{\"address\":\"10.0.3.1\",\"port\":80},{\"address\":\"10.0.3.2\",\"port\":80},"
	    "{\"address\":\"10.0.3.3\",\"port\":80},{\"address\":\"10.0.3.4\",\"port\":80},"
	    "{\"address\":\"10.0.3.5\",\"port\":80},{\"address\":\"10.0.3.6\",\"port\":80},"
	    "{\"address\":\"10.0.3.7\",\"port\":80}";
	struct table *t = table2(seven, "");
	if (!t)
		return;
	const struct route_backend *be = &table_routes(t)->backends[0];
	/* subsets of 3: {0,1,2} {3,4,5} {6,0,1} */
	int subset_hits[3] = {0};
	for (uint64_t key = 1; key <= 300; key++) {
		uint64_t kh = mix64(key * 0x9e3779b97f4a7c15ULL);
		int seen[7] = {0};
		for (int i = 0; i < 60; i++) {
			int e = balancer_subset_pick(be, kh, 3);
			CHECK(e >= 0 && e < 7);
			if (e >= 0 && e < 7)
				seen[e]++;
		}
		int set = seen[3] || seen[4] || seen[5] ? 1 : seen[6] ? 2 : 0;
		static const int members[3][3] = {{0, 1, 2}, {3, 4, 5}, {6, 0, 1}};
		int in = 0;
		for (int m = 0; m < 3; m++)
			in += seen[members[set][m]];
		CHECK_INT(in, 60);
		/* 60 draws of 3: each member shows up (miss chance ~1e-10) */
		for (int m = 0; m < 3; m++)
			CHECK(seen[members[set][m]] > 0);
		subset_hits[set]++;
	}
	for (int s = 0; s < 3; s++)
		CHECK(subset_hits[s] > 60);
	/* size 1 is plain hashing to one endpoint; a size above the count is one subset */
	uint64_t kh = mix64(42);
	int one = balancer_subset_pick(be, kh, 1);
	for (int i = 0; i < 20; i++)
		CHECK_INT(balancer_subset_pick(be, kh, 1), one);
	int all[7] = {0};
	for (int i = 0; i < 700; i++) {
		int e = balancer_subset_pick(be, kh, 10);
		if (e >= 0 && e < 7)
			all[e]++;
	}
	for (int e = 0; e < 7; e++)
		CHECK(all[e] > 0);
	table_unref(t);

	/* draining endpoints: never picked; a subset with only draining ones
	 * falls back to the plain hash over the others */
	t = table2("{\"address\":\"10.0.3.1\",\"port\":80,\"draining\":true},"
	           "{\"address\":\"10.0.3.2\",\"port\":80,\"draining\":true},"
	           "{\"address\":\"10.0.3.3\",\"port\":80},"
	           "{\"address\":\"10.0.3.4\",\"port\":80}",
	           "");
	if (!t)
		return;
	be = &table_routes(t)->backends[0];
	for (uint64_t key = 1; key <= 200; key++) {
		uint64_t h = mix64(key * 0x9e3779b97f4a7c15ULL);
		int a2 = balancer_subset_pick(be, h, 2), b2 = balancer_subset_pick(be, h, 2);
		CHECK(a2 == 2 || a2 == 3);
		/* subset {0,1} is all draining: the rendezvous pick, the same every time */
		if (pick_subset(be, h, 2) == -2)
			CHECK_INT(a2, b2);
		int a3 = balancer_subset_pick(be, h, 3);
		CHECK(a3 == 2 || a3 == 3);
	}
	table_unref(t);
}

/* load-balance ewma: an endpoint with a high average loses every draw it is
 * in, an unknown one wins until it has an average, draining ones never get
 * picked, and one whose failures were fed loses to the healthy ones. */
static void test_ewma(void)
{
	struct table *t = table2("{\"address\":\"10.0.2.1\",\"port\":80},"
	                         "{\"address\":\"10.0.2.2\",\"port\":80},"
	                         "{\"address\":\"10.0.2.3\",\"port\":80}",
	                         "{\"address\":\"10.0.3.1\",\"port\":80},"
	                         "{\"address\":\"10.0.3.2\",\"port\":80,\"draining\":true}");
	if (!t)
		return;
	const struct route_backend *be = &table_routes(t)->backends[0];
	client_init(&cl, "192.0.2.1");
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	r.backend = 0;
	r.canary.backend = -1;
	r.policy->balance = ROUTE_BALANCE_EWMA;

	balancer_observe(&be->endpoints[0], 400);
	balancer_observe(&be->endpoints[1], 5);
	balancer_observe(&be->endpoints[2], 6);
	int hits[3] = {0};
	for (int i = 0; i < 600; i++) {
		CHECK_INT(choose(t, &r, plain_get), 0);
		CHECK(pick.endpoint >= 0 && pick.endpoint < 3);
		if (pick.endpoint >= 0 && pick.endpoint < 3)
			hits[pick.endpoint]++;
	}
	/* endpoint 0 is in two of the three pairs and loses both; 1 beats 2 */
	CHECK_INT(hits[0], 0);
	CHECK(hits[1] > hits[2]);
	CHECK(hits[2] > 100); /* wins the (0, 2) pair: about a third */

	/* a failure fed at the connect timeout: 1 now loses to 2 */
	balancer_observe(&be->endpoints[1], 5000);
	memset(hits, 0, sizeof(hits));
	for (int i = 0; i < 300; i++)
		if (choose(t, &r, plain_get) == 0 && pick.endpoint >= 0 && pick.endpoint < 3)
			hits[pick.endpoint]++;
	CHECK(hits[2] > hits[1]);

	/* backend 1: the only live endpoint, never the draining one, and not
	 * yet observed (an unknown endpoint is tried) */
	r.backend = 1;
	for (int i = 0; i < 50; i++) {
		CHECK_INT(choose(t, &r, plain_get), 0);
		CHECK_INT(pick.endpoint, 0);
	}
	CHECK(ewma_score(&table_routes(t)->backends[1].endpoints[0], mono_ms()) == 0);
	table_unref(t);
}

/* Round robin across reloads: three stable endpoints and a fourth that
 * comes and goes with every generation, a few requests per generation and
 * each old table still held while the next one serves (as a long request
 * would). The stable three get equal shares (at most one apart), the fourth
 * gets its share while listed, and the state lives as long as some table has
 * the backend: a backend of another name, or the same name after every
 * table holding it is gone, starts afresh. */
static void test_round_robin_across_reloads(void)
{
	static const char *const stable = "{\"address\":\"10.0.4.1\",\"port\":80},"
	                                  "{\"address\":\"10.0.4.2\",\"port\":80},"
	                                  "{\"address\":\"10.0.4.3\",\"port\":80}";
	char four[512];
	snprintf(four, sizeof(four), "%s,{\"address\":\"10.0.4.4\",\"port\":80}", stable);
	client_init(&cl, "192.0.2.1");
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	r.backend = 0;
	r.canary.backend = -1;
	int hits[4] = {0}, picks_with_four = 0;
	struct table *old = NULL;
	for (int gen = 0; gen < 200; gen++) {
		bool with_four = gen % 2;
		struct table *t = table2(with_four ? four : stable, "");
		if (!t)
			break;
		table_unref(old); /* the generation before last goes */
		/* 1, 2 or 3 requests: never a whole turn of the rotation */
		for (int i = 0; i < 1 + gen % 3; i++) {
			CHECK_INT(choose(t, &r, plain_get), 0);
			const struct route_endpoint *ep =
			    &table_routes(t)->backends[0].endpoints[pick.endpoint];
			int k = ep->address[7] - '1';
			if (k >= 0 && k < 4)
				hits[k]++;
			picks_with_four += with_four;
		}
		old = t;
	}
	CHECK(hits[0] > 0);
	CHECK(abs(hits[0] - hits[1]) <= 1);
	CHECK(abs(hits[0] - hits[2]) <= 1);
	CHECK(abs(hits[1] - hits[2]) <= 1);
	/* the fourth: at least its quarter of the picks made while it was
	 * listed, at most that plus the turn it takes when it (re)joins (it
	 * starts due, in each of the 100 generations that list it) */
	CHECK(hits[3] * 4 >= picks_with_four);
	CHECK(hits[3] <= picks_with_four / 4 + 100);

	/* Another backend name: its own rotation, from its first endpoint. */
	char json[4096];
	snprintf(json, sizeof(json),
	         "{\"version\":1,\"default_backend\":0,\"backends\":["
	         "{\"name\":\"ns/other:80\",\"endpoints\":[%s]}]}",
	         stable);
	struct table *other = make_table(json);
	if (other) {
		CHECK_INT(choose(other, &r, plain_get), 0);
		CHECK_INT(pick.endpoint, 0);
		CHECK_INT(choose(other, &r, plain_get), 0);
		CHECK_INT(pick.endpoint, 1);
	}
	table_unref(other);
	table_unref(old);
	CHECK_INT(table_cache_count(TABLE_CACHE_BALANCER), 0);
	/* Every table with ns/main:80 is gone: a new one starts afresh. */
	struct table *t = table2(stable, "");
	if (t) {
		CHECK_INT(choose(t, &r, plain_get), 0);
		CHECK_INT(pick.endpoint, 0);
	}
	table_unref(t);
}

/* Smooth weights (3:1 interleaved, not three in a row) and an endpoint
 * that returns after being away joins the rotation at its place instead of
 * catching up on the turns it missed. */
static void test_round_robin_weights_and_return(void)
{
	struct table *t = table2("{\"address\":\"10.0.5.1\",\"port\":80,\"weight\":3},"
	                         "{\"address\":\"10.0.5.2\",\"port\":80}",
	                         "");
	if (!t)
		return;
	client_init(&cl, "192.0.2.1");
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	r.backend = 0;
	r.canary.backend = -1;
	char seq[16] = {0};
	for (int i = 0; i < 8; i++) {
		CHECK_INT(choose(t, &r, plain_get), 0);
		seq[i] = (char)('a' + pick.endpoint);
	}
	/* a's pass moves by 1/3 a turn, b's by a whole one: b comes second */
	CHECK_STR(seq, "abaaabaa");

	/* b away for 30 requests (a table without it), then back: it does not
	 * get 30 requests in a row, it takes its turn. */
	struct table *t2 = table2("{\"address\":\"10.0.5.1\",\"port\":80,\"weight\":3}", "");
	for (int i = 0; t2 && i < 30; i++) {
		CHECK_INT(choose(t2, &r, plain_get), 0);
		CHECK_INT(pick.endpoint, 0);
	}
	int b = 0;
	for (int i = 0; i < 8; i++)
		if (choose(t, &r, plain_get) == 0)
			b += pick.endpoint == 1;
	CHECK_INT(b, 2);
	table_unref(t2);
	table_unref(t);
}

/* load-balance ewma keeps its averages per endpoint address, not per
 * table: a reload does not forget that an endpoint is slow. */
static void test_ewma_across_reloads(void)
{
	static const char *const eps = "{\"address\":\"10.0.6.1\",\"port\":80},"
	                               "{\"address\":\"10.0.6.2\",\"port\":80}";
	struct table *t = table2(eps, "");
	if (!t)
		return;
	balancer_observe(&table_routes(t)->backends[0].endpoints[0], 900);
	balancer_observe(&table_routes(t)->backends[0].endpoints[1], 3);
	table_unref(t);
	t = table2(eps, "");
	if (!t)
		return;
	client_init(&cl, "192.0.2.1");
	struct route_policy r_policy = {0};
	struct route r = {.policy = &r_policy};
	r.path = "/";
	r.backend = 0;
	r.canary.backend = -1;
	r.policy->balance = ROUTE_BALANCE_EWMA;
	int slow = 0;
	for (int i = 0; i < 100; i++)
		if (choose(t, &r, plain_get) == 0)
			slow += pick.endpoint == 0;
	CHECK_INT(slow, 0);
	table_unref(t);
}

/* Round robin from several threads at once (the workers of one proxy
 * share a backend's rotation): every pick is counted and the shares stay
 * even. */
struct rr_thread {
	struct table *t;
	int hits[3];
};

static void *rr_worker(void *arg)
{
	struct rr_thread *w = arg;
	for (int i = 0; i < 3000; i++) {
		int e = balancer_round_robin(w->t, 0);
		if (e >= 0 && e < 3)
			w->hits[e]++;
	}
	return NULL;
}

static void test_round_robin_threads(void)
{
	struct table *t = table2("{\"address\":\"10.0.7.1\",\"port\":80},"
	                         "{\"address\":\"10.0.7.2\",\"port\":80},"
	                         "{\"address\":\"10.0.7.3\",\"port\":80}",
	                         "");
	if (!t)
		return;
	struct rr_thread w[4] = {{.t = t}, {.t = t}, {.t = t}, {.t = t}};
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, rr_worker, &w[i]);
	int hits[3] = {0};
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		for (int k = 0; k < 3; k++)
			hits[k] += w[i].hits[k];
	}
	CHECK_INT(hits[0] + hits[1] + hits[2], 12000);
	for (int k = 0; k < 3; k++)
		CHECK(abs(hits[k] - 4000) <= 4);
	table_unref(t);
}

/* proxy-next-upstream: each retry takes an endpoint not tried yet, never a
 * draining one, and -1 once every endpoint was tried. */
static void test_retry_pick(void)
{
	struct table *t = table2("{\"address\":\"10.0.3.1\",\"port\":80},"
	                         "{\"address\":\"10.0.3.2\",\"port\":80,\"draining\":true},"
	                         "{\"address\":\"10.0.3.3\",\"port\":80,\"weight\":5},"
	                         "{\"address\":\"10.0.3.4\",\"port\":80}",
	                         "");
	if (!t)
		return;
	for (int round = 0; round < 20; round++) {
		uint64_t tried[BALANCER_TRIED_MAX / 64] = {0};
		int seen = 0;
		for (int k = 0; k < 3; k++) {
			int e = balancer_retry_pick(t, 0, tried);
			CHECK(e == 0 || e == 2 || e == 3);
			if (e < 0)
				break;
			CHECK(!((tried[0] >> e) & 1));
			tried[0] |= 1ull << e;
			seen++;
		}
		CHECK_INT(seen, 3);
		CHECK_INT(balancer_retry_pick(t, 0, tried), -1);
	}
	uint64_t none[BALANCER_TRIED_MAX / 64] = {0};
	none[0] = 1ull << 0 | 1ull << 3;
	CHECK_INT(balancer_retry_pick(t, 0, none), 2);
	CHECK_INT(balancer_retry_pick(t, 7, none), -1);
	table_unref(t);
}

int main(void)
{
	test_endpoint_id();
	test_round_robin();
	test_affinity();
	test_hash_by();
	test_key_expansion();
	test_canary();
	test_canary_pattern_total();
	test_canary_affinity();
	test_cookie_domain_samesite();
	test_samesite_none_ok();
	test_hash_subset();
	test_ewma();
	test_round_robin_across_reloads();
	test_round_robin_weights_and_return();
	test_ewma_across_reloads();
	test_round_robin_threads();
	test_retry_pick();
	return check_finish("balancer_test");
}
