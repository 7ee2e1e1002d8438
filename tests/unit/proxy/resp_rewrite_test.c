/* tests/unit/proxy/resp_rewrite_test.c - Location/Refresh (proxy-redirect)
 * and Set-Cookie (proxy-cookie-domain/-path) rewrites, as nginx's
 * proxy_redirect and proxy_cookie_* do them. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "proxy/resp_rewrite.h"

static char got[1024];

/* The rewritten value, or "=" when it stays as it is. */
static const char *redir(const struct route_policy *p, bool refresh, const char *v)
{
	struct resp_piece pc[RESP_REWRITE_MAX_PIECES];
	int n = resp_rewrite_redirect(p, refresh, v, strlen(v), pc);
	size_t o = 0;
	if (n == 0)
		return "=";
	for (int i = 0; i < n; i++) {
		memcpy(got + o, pc[i].p, pc[i].n);
		o += pc[i].n;
	}
	got[o] = '\0';
	return got;
}

static const char *cookie(const struct route_policy *p, const char *v)
{
	struct resp_piece pc[RESP_REWRITE_MAX_PIECES];
	int n = resp_rewrite_cookie(p, v, strlen(v), pc);
	size_t o = 0;
	if (n == 0)
		return "=";
	for (int i = 0; i < n; i++) {
		memcpy(got + o, pc[i].p, pc[i].n);
		o += pc[i].n;
	}
	got[o] = '\0';
	return got;
}

static void test_redirect(void)
{
	struct route_policy p;
	memset(&p, 0, sizeof(p));
	CHECK_STR(redir(&p, false, "http://backend:8080/x"), "=");
	CHECK_STR(redir(NULL, false, "http://backend:8080/x"), "=");
	p.proxy_redirect_from = "http://backend:8080/";
	p.proxy_redirect_to = "https://www.example.com/app/";
	CHECK_STR(redir(&p, false, "http://backend:8080/login?next=/a"),
	          "https://www.example.com/app/login?next=/a");
	CHECK_STR(redir(&p, false, "http://backend:8080/"), "https://www.example.com/app/");
	/* prefix only, case-sensitive */
	CHECK_STR(redir(&p, false, "http://backend:8080"), "=");
	CHECK_STR(redir(&p, false, "HTTP://backend:8080/x"), "=");
	CHECK_STR(redir(&p, false, "/relative"), "=");
	CHECK_STR(redir(&p, false, "x http://backend:8080/"), "=");
	/* Refresh: the part after url= */
	CHECK_STR(redir(&p, true, "5; url=http://backend:8080/next"),
	          "5; url=https://www.example.com/app/next");
	CHECK_STR(redir(&p, true, "0;URL=http://backend:8080/"),
	          "0;URL=https://www.example.com/app/");
	CHECK_STR(redir(&p, true, "5"), "=");
	CHECK_STR(redir(&p, true, "5; url=http://other/"), "=");
	/* a path prefix to "/" */
	p.proxy_redirect_from = "/internal/";
	p.proxy_redirect_to = "/";
	CHECK_STR(redir(&p, false, "/internal/a/b"), "/a/b");
}

static void test_cookie(void)
{
	struct route_policy p;
	memset(&p, 0, sizeof(p));
	CHECK_STR(cookie(&p, "a=1; Domain=localhost; Path=/two/x"), "=");
	CHECK_STR(cookie(NULL, "a=1; Domain=localhost"), "=");
	p.proxy_cookie_domain_from = "localhost";
	p.proxy_cookie_domain_to = "example.org";
	CHECK_STR(cookie(&p, "a=1; Domain=localhost; Path=/"), "a=1; Domain=example.org; Path=/");
	/* whole value, any case, a leading dot kept */
	CHECK_STR(cookie(&p, "a=1; domain=.LocalHost"), "a=1; domain=.example.org");
	CHECK_STR(cookie(&p, "a=1;Domain = localhost ;HttpOnly"),
	          "a=1;Domain = example.org ;HttpOnly");
	CHECK_STR(cookie(&p, "a=1; Domain=localhost.net"), "=");
	CHECK_STR(cookie(&p, "a=1; Domain=sub.localhost"), "=");
	/* the cookie's own name=value is not an attribute */
	CHECK_STR(cookie(&p, "domain=localhost; Path=/"), "=");
	CHECK_STR(cookie(&p, "a=1"), "=");
	/* a leading dot in from is ignored */
	p.proxy_cookie_domain_from = ".localhost";
	CHECK_STR(cookie(&p, "a=1; Domain=localhost"), "a=1; Domain=example.org");
	/* path: prefix, case-sensitive; both attributes in either order */
	p.proxy_cookie_path_from = "/two/";
	p.proxy_cookie_path_to = "/";
	CHECK_STR(cookie(&p, "a=1; Path=/two/some/uri/"), "a=1; Path=/some/uri/");
	CHECK_STR(cookie(&p, "a=1; Path=/Two/x"), "=");
	CHECK_STR(cookie(&p, "a=1; Path=/two"), "=");
	CHECK_STR(cookie(&p, "a=1; Path=/two/x; Domain=localhost; Secure"),
	          "a=1; Path=/x; Domain=example.org; Secure");
	CHECK_STR(cookie(&p, "a=1; Domain=localhost; Path=/two/x"),
	          "a=1; Domain=example.org; Path=/x");
	CHECK_STR(cookie(&p, "a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Path=/two/"),
	          "a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Path=/");
	/* only the first Path attribute */
	CHECK_STR(cookie(&p, "a=1; Path=/x; Path=/two/"), "=");
}

int main(void)
{
	test_redirect();
	test_cookie();
	return check_finish("resp_rewrite_test");
}
