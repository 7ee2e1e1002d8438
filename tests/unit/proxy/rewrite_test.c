/* tests/unit/proxy/rewrite_test.c - snippet rewrites at request time: the
 * first matching rule, captures and variables, nginx's query rules, the
 * absolute target of a break, and the per-thread regex cache past its
 * size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "common/route_table.h"
#include "proxy/rewrite.h"
#include "request_fixture.h"

static struct http_client client(void)
{
	struct http_client c;
	memset(&c, 0, sizeof(c));
	strcpy(c.ip, "192.0.2.7");
	return c;
}

/* Apply one rule to a GET of target; returns the result ("" when none
 * matched) in a static buffer. */
static const char *one(const char *regex, const char *repl, enum route_rewrite_flag flag,
                       const char *target)
{
	static char out[512];
	char raw[512];
	struct http_request req;
	struct http_client c = client();
	snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: Ex.Test:81\r\n\r\n", target);
	fixture_parse_request(raw, &req);
	struct route_rewrite rw = {(char *)regex, (char *)repl, flag};
	struct route_policy pol;
	memset(&pol, 0, sizeof(pol));
	pol.nrewrites = 1;
	pol.rewrites = &rw;
	size_t len = 0;
	int which = -2;
	CHECK_INT(rewrite_apply(&pol, &req, &c, out, sizeof(out), &len, &which), 0);
	if (which < 0)
		return "";
	CHECK_INT(strlen(out), len);
	return out;
}

static void test_rules(void)
{
	CHECK_STR(one("^/a/(.*)$", "/b/$1", ROUTE_REWRITE_BREAK, "/a/x/y?q=1"), "/b/x/y?q=1");
	CHECK_STR(one("^/a/(.*)$", "/b/$1", ROUTE_REWRITE_BREAK, "/c/x"), "");
	/* a break result is made absolute */
	CHECK_STR(one("^/a/(.*)$", "$1", ROUTE_REWRITE_BREAK, "/a/x"), "/x");
	CHECK_STR(one("^/a/(.*)$", "$1", ROUTE_REWRITE_REDIRECT, "/a/x"), "x");
	/* a capture that did not take part, and one past the groups: empty */
	CHECK_STR(one("^/(a)|(b)$", "/$2-$1-$9", ROUTE_REWRITE_BREAK, "/a"), "/-a-");
	/* query: kept; joined after '&'; dropped by a trailing '?' */
	CHECK_STR(one("^/p$", "/n?x=1", ROUTE_REWRITE_BREAK, "/p?y=2"), "/n?x=1&y=2");
	CHECK_STR(one("^/p$", "/n?x=1", ROUTE_REWRITE_BREAK, "/p"), "/n?x=1");
	CHECK_STR(one("^/p$", "/n?", ROUTE_REWRITE_PERMANENT, "/p?y=2"), "/n");
	CHECK_STR(one("^/p$", "/n", ROUTE_REWRITE_REDIRECT, "/p?y=2"), "/n?y=2");
	/* variables */
	CHECK_STR(one("^", "https://$host$request_uri", ROUTE_REWRITE_REDIRECT, "/p?y=2"),
	          "https://ex.test/p?y=2?y=2");
	CHECK_STR(one("^", "https://${host}/z?", ROUTE_REWRITE_REDIRECT, "/p?y=2"),
	          "https://ex.test/z");
	/* case-sensitive unless the regex says otherwise */
	CHECK_STR(one("^/UP$", "/u", ROUTE_REWRITE_BREAK, "/up"), "");
	CHECK_STR(one("(?i)^/UP$", "/u", ROUTE_REWRITE_BREAK, "/up"), "/u");
}

static void test_order_and_cache(void)
{
	char raw[] = "GET /k/70 HTTP/1.1\r\nHost: h\r\n\r\n";
	struct http_request req;
	struct http_client c = client();
	fixture_parse_request(raw, &req);
	/* more rules than the cache holds, several rounds: the first that
	 * matches wins every time */
	enum { N = 100 };
	struct route_rewrite rws[N];
	char *re[N], *rp[N];
	for (int i = 0; i < N; i++) {
		re[i] = malloc(32);
		rp[i] = malloc(32);
		snprintf(re[i], 32, "^/k/%d$", i < 80 ? i : 70);
		snprintf(rp[i], 32, "/hit/%d", i);
		rws[i] = (struct route_rewrite){re[i], rp[i], ROUTE_REWRITE_BREAK};
	}
	struct route_policy pol;
	memset(&pol, 0, sizeof(pol));
	pol.nrewrites = N;
	pol.rewrites = rws;
	char out[64];
	for (int round = 0; round < 3; round++) {
		size_t len;
		int which = -2;
		CHECK_INT(rewrite_apply(&pol, &req, &c, out, sizeof(out), &len, &which), 0);
		CHECK_INT(which, 70);
		CHECK_STR(out, "/hit/70");
	}
	/* too small a buffer */
	size_t len;
	int which;
	CHECK_INT(rewrite_apply(&pol, &req, &c, out, 4, &len, &which), WEIR_ETOOBIG);
	for (int i = 0; i < N; i++) {
		free(re[i]);
		free(rp[i]);
	}
}

int main(void)
{
	test_rules();
	test_order_and_cache();
	return check_finish("rewrite_test");
}
