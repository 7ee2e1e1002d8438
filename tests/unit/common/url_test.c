/* tests/unit/common/url_test.c - auth-url splitting: what is accepted, the
 * slices it yields, and what is refused. */
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "common/url.h"

static void check_slice(const char *s, size_t n, const char *want)
{
	CHECK(strlen(want) == n && strncmp(s, want, n) == 0);
	if (strlen(want) != n || strncmp(s, want, n) != 0)
		fprintf(stderr, "  got \"%.*s\", want \"%s\"\n", (int)n, s, want);
}

static void accepted(void)
{
	struct url u;
	CHECK_INT(url_parse("http://10.0.0.7:4180/oauth2/auth?x=1", &u), 0);
	CHECK(!u.https);
	check_slice(u.authority, u.authority_len, "10.0.0.7:4180");
	check_slice(u.host, u.host_len, "10.0.0.7");
	CHECK_INT(u.port, 4180);
	check_slice(u.target, u.target_len, "/oauth2/auth?x=1");

	CHECK_INT(url_parse("https://auth.example.com", &u), 0);
	CHECK(u.https);
	CHECK_INT(u.port, 443);
	check_slice(u.host, u.host_len, "auth.example.com");
	check_slice(u.target, u.target_len, "/");

	CHECK_INT(url_parse("http://[::1]:8080/a", &u), 0);
	check_slice(u.authority, u.authority_len, "[::1]:8080");
	check_slice(u.host, u.host_len, "::1");
	CHECK_INT(u.port, 8080);
	CHECK(url_host_is_ip(u.host, u.host_len));

	CHECK_INT(url_parse("http://[2001:db8::5]/", &u), 0);
	CHECK_INT(u.port, 80);
	check_slice(u.host, u.host_len, "2001:db8::5");
}

static void refused(void)
{
	static const char *const bad[] = {
	    "ftp://a/b",
	    "http://",
	    "http:///x",
	    "http://u:p@a/x",
	    "http://a/x#frag",
	    "http://a:0/",
	    "http://a:65536/",
	    "http://a:/x",
	    "http://a b/",
	    "http://$host/auth",
	    "http://a/$request",
	    "http://[::1/",
	    "http://[10.0.0.1]/",
	    "http://a?x=1",
	    "http://[::1]x/",
	    "/relative",
	    "http://a%2f/",
	    "http://a/\x7f",
	    "",
	};
	struct url u;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = url_parse(bad[i], &u);
		CHECK_INT(rc, WEIR_EINVAL);
		if (rc != WEIR_EINVAL)
			fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
	}
}

static void ip_literals(void)
{
	CHECK(url_host_is_ip("127.0.0.1", 9));
	CHECK(url_host_is_ip("::1", 3));
	CHECK(!url_host_is_ip("localhost", 9));
	CHECK(!url_host_is_ip("auth.ns.svc.cluster.local", 25));
	CHECK(!url_host_is_ip("", 0));
	CHECK(!url_host_is_ip("10.0.0.1x", 9));
}

static void signin_values(void)
{
	CHECK_INT(url_check_signin("https://login.test/start"), 0);
	CHECK_INT(url_check_signin("https://$host/oauth2/start?rd=$escaped_request_uri"), 0);
	CHECK_INT(url_check_signin("http://$best_http_host/s?u=$scheme://$http_host$request_uri"),
	          0);
	CHECK_INT(url_check_signin("https://a/$pass_access_scheme"), 0);
	CHECK_INT(url_check_signin("$scheme://$host/oauth2/start"), 0);
	CHECK_INT(url_check_signin("$host/oauth2/start"), WEIR_EINVAL);
	CHECK_INT(url_check_signin("https://a/?u=$remote_user"), WEIR_EINVAL);
	CHECK_INT(url_check_signin("https://a/$"), WEIR_EINVAL);
	CHECK_INT(url_check_signin("https://a/$hostname"), WEIR_EINVAL);
	CHECK_INT(url_check_signin("/relative"), WEIR_EINVAL);
	CHECK_INT(url_check_signin("https://a/ b"), WEIR_EINVAL);
}

static void mirror_values(void)
{
	const struct url_mirror_vars v = {"/p/q?x=1", 8, "/p/q", 4, "x=1", 3, "shop.test", 9};
	char buf[64];
	CHECK_INT(url_expand_mirror("https://test.env.com/$request_uri", &v, buf, sizeof(buf)), 29);
	CHECK(strcmp(buf, "https://test.env.com//p/q?x=1") == 0);
	CHECK_INT(url_expand_mirror("http://m$uri?a=$args&h=$host", &v, buf, sizeof(buf)), 30);
	CHECK(strcmp(buf, "http://m/p/q?a=x=1&h=shop.test") == 0);
	CHECK_INT(url_expand_mirror("http://m/$hostname", &v, buf, sizeof(buf)), WEIR_EINVAL);
	CHECK_INT(url_expand_mirror("http://m/$", &v, buf, sizeof(buf)), WEIR_EINVAL);
	CHECK_INT(url_expand_mirror("http://m$request_uri", &v, buf, 16), WEIR_ETOOBIG);
	CHECK_INT(url_expand_mirror("http://m$request_uri", &v, buf, 17), 16);
	CHECK_INT(url_check_mirror("https://test.env.com/$request_uri"), 0);
	CHECK_INT(url_check_mirror("http://10.0.0.1:8080$uri?$args"), 0);
	CHECK_INT(url_check_mirror("http://m/h/$host$request_uri"), 0);
	CHECK_INT(url_check_mirror("http://$host.mirror$request_uri"), WEIR_EINVAL);
	CHECK_INT(url_check_mirror("http://m:$args/"), WEIR_EINVAL);
	CHECK_INT(url_check_mirror("http://m.test$request_uri"), 0);
	CHECK_INT(url_check_mirror("http://m$host/"), WEIR_EINVAL);
	CHECK_INT(url_check_mirror("http://m/$remote_addr"), WEIR_EINVAL);
	CHECK_INT(url_check_mirror("ftp://m/"), WEIR_EINVAL);
	CHECK_INT(url_check_mirror("/relative$request_uri"), WEIR_EINVAL);
}

static void cache_values(void)
{
	uint32_t ms = 7;
	CHECK_INT(url_check_cache_key("$remote_user$http_authorization"), 0);
	CHECK_INT(url_check_cache_key("k:$cookie_session|$arg_t|$host$uri$scheme$remote_addr"), 0);
	CHECK_INT(url_check_cache_key("$request_body"), WEIR_EINVAL);
	CHECK_INT(url_check_cache_key("$http_"), WEIR_EINVAL);
	CHECK_INT(url_check_cache_key(""), WEIR_EINVAL);
	CHECK_INT(url_cache_valid_ms("200 202 401 5m", 202, &ms), 0);
	CHECK_INT(ms, 300000);
	CHECK_INT(url_cache_valid_ms("200 202 401 5m", 403, &ms), 0);
	CHECK_INT(ms, 0);
	CHECK_INT(url_cache_valid_ms("200 10m, 401 30s, any 1s", 401, &ms), 0);
	CHECK_INT(ms, 30000);
	CHECK_INT(url_cache_valid_ms("200 10m, 401 30s, any 1s", 500, &ms), 0);
	CHECK_INT(ms, 1000);
	CHECK_INT(url_cache_valid_ms("5m", 302, &ms), 0); /* no code: 200 301 302 */
	CHECK_INT(ms, 300000);
	CHECK_INT(url_cache_valid_ms("5m", 401, &ms), 0);
	CHECK_INT(ms, 0);
	CHECK_INT(url_cache_valid_ms("200 500ms", 200, &ms), 0);
	CHECK_INT(ms, 500);
	CHECK_INT(url_cache_valid_ms("200 90", 200, &ms), 0);
	CHECK_INT(ms, 90000);
	CHECK_INT(url_cache_valid_ms("200", 301, &ms), 0); /* a bare time: 200 s */
	CHECK_INT(ms, 200000);
	const char *bad[] = {"", "200 5x", "20 5m", "600 5m", "200 5m,", "200 99999999d"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = url_cache_valid_ms(bad[i], 200, &ms);
		CHECK_INT(rc, WEIR_EINVAL);
		if (rc != WEIR_EINVAL)
			fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
	}
}

int main(void)
{
	mirror_values();
	cache_values();
	signin_values();
	accepted();
	refused();
	ip_literals();
	return check_finish("url_test");
}
