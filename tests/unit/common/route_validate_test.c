/* common/route_validate: each rule with values it takes and values it
 * refuses, the reasons (value quoted, escaped), UTF-8 edge cases, and the
 * certificate check the proxy loads certificates with. */
#include "check.h"
#include "common/error.h"
#include "common/route_validate.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "test_cert.h"

typedef int (*rule_cb)(const char *s, char *err, size_t errlen);

static void takes(rule_cb fn, const char *const *good, size_t n)
{
	char err[256];
	for (size_t i = 0; i < n; i++) {
		err[0] = '\0';
		int rc = fn(good[i], err, sizeof(err));
		if (rc != 0)
			fprintf(stderr, "refused %s: %s\n", good[i], err);
		CHECK_INT(rc, 0);
	}
}

static void refuses(rule_cb fn, const char *const *bad, size_t n)
{
	char err[256];
	for (size_t i = 0; i < n; i++) {
		err[0] = '\0';
		int rc = fn(bad[i], err, sizeof(err));
		if (rc != WEIR_EINVAL)
			fprintf(stderr, "took %s\n", bad[i]);
		CHECK_INT(rc, WEIR_EINVAL);
		CHECK(err[0] != '\0');
		/* the reason is one clean line whatever the value held */
		for (const char *p = err; *p; p++)
			CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
		CHECK(route_validate_utf8(err, strlen(err)));
	}
}

#define N(a) (sizeof(a) / sizeof(a[0]))

static int host_any(const char *s, char *err, size_t errlen)
{
	return route_validate_host(s, 0, err, errlen);
}

static int host_exact(const char *s, char *err, size_t errlen)
{
	return route_validate_host(s, ROUTE_HOST_EXACT, err, errlen);
}

static int path_prefix(const char *s, char *err, size_t errlen)
{
	return route_validate_path(s, ROUTE_MATCH_PREFIX, false, err, errlen);
}

static int path_regex(const char *s, char *err, size_t errlen)
{
	return route_validate_path(s, ROUTE_MATCH_REGEX, false, err, errlen);
}

static void test_hosts(void)
{
	char long_label[80], long_name[300], err[256];
	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".com");
	memset(long_name, 0, sizeof(long_name));
	for (size_t i = 0; i < 254; i++)
		long_name[i] = i % 10 == 9 ? '.' : 'a';
	static const char *const good[] = {
	    "", "a.b", "www.example.com", "*.example.com", "x", "my_svc-1.internal", "*.x"};
	static const char *const bad[] = {"typo..example.com",
	                                  ".a.b",
	                                  "a.b.",
	                                  "A.b",
	                                  "a b",
	                                  "a:80",
	                                  "*",
	                                  "*.",
	                                  "a.*.b",
	                                  "**.a",
	                                  "a\nb",
	                                  "\xc3\xa9.com",
	                                  "a/b"};
	takes(host_any, good, N(good));
	refuses(host_any, bad, N(bad));
	CHECK_INT(route_validate_host(long_label, 0, NULL, 0), WEIR_EINVAL);
	CHECK_INT(route_validate_host(long_label + 1, 0, NULL, 0), 0);
	CHECK_INT(route_validate_host(long_name, 0, NULL, 0), WEIR_EINVAL);
	long_name[253] = '\0';
	CHECK_INT(route_validate_host(long_name, 0, NULL, 0), 0);
	static const char *const exact_bad[] = {"", "*.example.com"};
	refuses(host_exact, exact_bad, N(exact_bad));
	CHECK_INT(host_exact("a.example.com", err, sizeof(err)), 0);
	route_validate_host("typo..example.com", 0, err, sizeof(err));
	CHECK_STR(err, "\"typo..example.com\" has an empty label");
}

static void test_paths(void)
{
	char err[256];
	static const char *const good[] = {"/", "/a", "/a b", "/%2F", "/caf\xc3\xa9"};
	static const char *const bad[] = {"",       "a",     "/a\nb",     "/a\rb",        "/a\tb",
	                                  "/a\x7f", "/\xff", "/\xc0\xaf", "/\xed\xa0\x80"};
	takes(path_prefix, good, N(good));
	refuses(path_prefix, bad, N(bad));
	static const char *const rgood[] = {"^/a/(.*)", "relative", "/user/([^/]+)$"};
	static const char *const rbad[] = {"/a(b", "/[a-", "/a\nb", "*"};
	takes(path_regex, rgood, N(rgood));
	refuses(path_regex, rbad, N(rbad));
	/* the proxy compiles regexes itself: skipping leaves only the text rules */
	CHECK_INT(route_validate_path("/a(b", ROUTE_MATCH_REGEX, true, NULL, 0), 0);
	CHECK_INT(route_validate_path("/a\nb", ROUTE_MATCH_REGEX, true, NULL, 0), WEIR_EINVAL);
	route_validate_path("/a(b", ROUTE_MATCH_REGEX, false, err, sizeof(err));
	CHECK_STR(err, "bad regex: missing closing parenthesis at offset 4");
	route_validate_path("/a\nb", ROUTE_MATCH_PREFIX, false, err, sizeof(err));
	CHECK_STR(err, "\"/a\\nb\" contains CR or LF");
	pcre2_code *re = route_regex_compile("/A(.*)", NULL, 0);
	CHECK(re != NULL);
	if (re) {
		pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
		/* caseless and anchored, as the proxy matches */
		CHECK(pcre2_match(re, (PCRE2_SPTR) "/a/x", 4, 0, 0, md, NULL) > 0);
		CHECK(pcre2_match(re, (PCRE2_SPTR) "/x/a", 4, 0, 0, md, NULL) < 0);
		pcre2_match_data_free(md);
		pcre2_code_free(re);
	}
}

static void test_strings(void)
{
	char err[256];
	static const char *const tok_good[] = {"X-Test", "INGRESSCOOKIE", "a!#$%&'*+-.^_`|~9"};
	static const char *const tok_bad[] = {"",     "X Test",   "a;b", "a:b",
	                                      "a\"b", "\xc3\xa9", "a\nb"};
	takes(route_validate_token, tok_good, N(tok_good));
	refuses(route_validate_token, tok_bad, N(tok_bad));

	static const char *const val_good[] = {"", "two words", "a\tb", "caf\xc3\xa9", "a;b"};
	static const char *const val_bad[] = {"a\r\nSet-Cookie: x=1", "a\x01", "a\x7f", "\xff"};
	takes(route_validate_header_value, val_good, N(val_good));
	refuses(route_validate_header_value, val_bad, N(val_bad));

	static const char *const cp_good[] = {"/", "/app", ""};
	static const char *const cp_bad[] = {"/app;HttpOnly", "/a\tb", "/a\nb"};
	takes(route_validate_cookie_path, cp_good, N(cp_good));
	refuses(route_validate_cookie_path, cp_bad, N(cp_bad));
	route_validate_cookie_path("/app;HttpOnly", err, sizeof(err));
	CHECK_STR(err, "\"/app;HttpOnly\" contains ';'");

	static const char *const ss_good[] = {"None", "Lax", "Strict"};
	static const char *const ss_bad[] = {"lax", "", "Lax;"};
	takes(route_validate_samesite, ss_good, N(ss_good));
	refuses(route_validate_samesite, ss_bad, N(ss_bad));

	static const char *const url_good[] = {"https://example.com/x?y=1", "http://a", "/p"};
	static const char *const url_bad[] = {"", "javascript:x", "https://a b", "/a\r\n",
	                                      "ftp://x"};
	takes(route_validate_url, url_good, N(url_good));
	refuses(route_validate_url, url_bad, N(url_bad));

	static const char *const root_good[] = {"/app", "/"};
	static const char *const root_bad[] = {"app", "/a b", "https://x/"};
	takes(route_validate_app_root, root_good, N(root_good));
	refuses(route_validate_app_root, root_bad, N(root_bad));

	static const char *const rw_good[] = {"/$1", "/x?y=$2", "$1"};
	static const char *const rw_bad[] = {"", "/a b", "/a\x01"};
	takes(route_validate_rewrite_target, rw_good, N(rw_good));
	refuses(route_validate_rewrite_target, rw_bad, N(rw_bad));

	static const char *const vh_good[] = {"internal.example", "a:8080", "[::1]:80"};
	static const char *const vh_bad[] = {"", "a b", "a/b", "a\r\n"};
	takes(route_validate_vhost, vh_good, N(vh_good));
	refuses(route_validate_vhost, vh_bad, N(vh_bad));

	static const char *const hb_good[] = {
	    "$remote_addr",           "$arg_room-$http_x_user$cookie_sid",
	    "room:$request_uri$host", "$binary_remote_addr",
	    "${uri}?$args",           "$scheme$server_name$request_method"};
	static const char *const hb_bad[] = {
	    "", "$upstream_addr", "$arg_", "$remote_addr\n", "${host", "$"};
	takes(route_validate_hash_by, hb_good, N(hb_good));
	refuses(route_validate_hash_by, hb_bad, N(hb_bad));
}

static void test_utf8_and_quote(void)
{
	char buf[128];
	CHECK(route_validate_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 15));
	CHECK(!route_validate_utf8("\xc3", 1));             /* cut short */
	CHECK(!route_validate_utf8("\xc0\xaf", 2));         /* overlong */
	CHECK(!route_validate_utf8("\xe0\x80\xaf", 3));     /* overlong */
	CHECK(!route_validate_utf8("\xed\xa0\x80", 3));     /* surrogate */
	CHECK(!route_validate_utf8("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
	CHECK(!route_validate_utf8("\xff", 1));
	route_validate_quote("a\"b\\c\n\x01\xff\xc3\xa9", buf, sizeof(buf));
	CHECK_STR(buf, "\"a\\\"b\\\\c\\n\\x01\\xff\xc3\xa9\"");
	char long_in[200];
	memset(long_in, 'x', sizeof(long_in) - 1);
	long_in[sizeof(long_in) - 1] = '\0';
	route_validate_quote(long_in, buf, sizeof(buf));
	CHECK(strlen(buf) == 1 + 64 + 3 + 1);
	route_validate_quote("abcdef", buf, 8); /* cut to fit, still quoted */
	CHECK(buf[0] == '"' && buf[strlen(buf) - 1] == '"' && strlen(buf) < 8);
}

static void test_policy_and_route(void)
{
	char field[128], err[256];
	struct route r;
	memset(&r, 0, sizeof(r));
	r.policy = route_policy_new();
	CHECK(r.policy != NULL);
	r.path = strdup("/");
	r.match = ROUTE_MATCH_PREFIX;
	r.canary.backend = -1;
	r.canary.weight_total = 100;
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)), 0);
	r.canary.weight_total = 0;
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "canary.weight_total");
	r.canary.weight_total = 100;
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)), 0);

	/* proxy-redirect and proxy-cookie rewrites come in pairs, without
	 * spaces; cookie attributes hold no ';' */
	r.policy->proxy_redirect_from = strdup("http://a/");
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "policy.proxy_redirect_to");
	r.policy->proxy_redirect_to = strdup("/x y");
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "policy.proxy_redirect_to");
	free(r.policy->proxy_redirect_to);
	r.policy->proxy_redirect_to = strdup("/");
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)), 0);
	r.policy->proxy_cookie_domain_to = strdup("b.example");
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "policy.proxy_cookie_domain_from");
	r.policy->proxy_cookie_domain_from = strdup("a;b");
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "policy.proxy_cookie_domain_from");
	free(r.policy->proxy_cookie_domain_from);
	r.policy->proxy_cookie_domain_from = strdup("a.example");
	r.policy->proxy_cookie_path_from = strdup("/one/");
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "policy.proxy_cookie_path_to");
	r.policy->proxy_cookie_path_to = strdup("/");
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)), 0);
	r.policy->cookie.domain = strdup("");
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "policy.cookie.domain");
	free(r.policy->cookie.domain);
	r.policy->cookie.domain = strdup(".example.com");
	r.policy->hash_by_subset_size = 0;
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "policy.hash_by_subset_size");
	r.policy->hash_by_subset_size = 3;
	r.canary.by_header_pattern = strdup("^(a|b");
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "canary.by_header_pattern");
	free(r.canary.by_header_pattern);
	r.canary.by_header_pattern = strdup("^(a|b)$");
	r.canary.weight_total = 1000;
	r.canary.weight = 1000;
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)), 0);
	r.canary.weight = 0;
	r.canary.weight_total = 100;
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)), 0);

	r.policy->cookie.path = strdup("/app;HttpOnly");
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "policy.cookie.path");
	free(r.policy->cookie.path);
	r.policy->cookie.path = NULL;

	r.policy->nrequest_headers = 1;
	r.policy->request_headers = calloc(1, sizeof(struct route_header));
	r.policy->request_headers[0].name = strdup("X-A");
	r.policy->request_headers[0].value = strdup("a\nb");
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "policy.request_headers[0].value");
	free(r.policy->request_headers[0].value);
	r.policy->request_headers[0].value = strdup("ok");

	r.policy->redirect_code = 304;
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "policy.redirect_code");
	r.policy->redirect_code = 303; /* return 303 URL (configuration-snippet) */
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "policy.redirect_url");
	r.policy->redirect_code = 301;
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "policy.redirect_url");
	r.policy->redirect_url = strdup("https://example.com/");
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)), 0);

	r.canary.by_header = strdup("X Canary");
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "canary.by_header");
	free(r.canary.by_header);
	r.canary.by_header = NULL;
	r.canary.weight = 101;
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "canary.weight");
	r.canary.weight = 100;

	r.source = strdup("default/a\nb");
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "source");
	free(r.source);
	r.source = NULL;

	free(r.path);
	r.path = strdup("relative");
	CHECK_INT(route_validate_route(&r, false, field, sizeof(field), err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(field, "path");
	free(r.path);
	free(r.canary.by_header_pattern);
	route_policy_unref(r.policy);
}

/* auth-proxy-set-headers: one header at a time, then the list in a policy
 * (duplicates, the byte cap, the field named on failure). */
static void test_auth_set_headers(void)
{
	static const char *const good[][2] = {
	    {"X-Tenant", "team-a"},      {"Authorization", "Bearer abc.def"},
	    {"x_custom", "a b\tc"},      {"Cookie", "k=v; k2=v2"},
	    {"X-Forwarded-User", "svc"}, {"X-Note", "caf\xc3\xa9"}};
	static const char *const bad[][2] = {
	    {"X Tenant", "a"},        /* not a token */
	    {"", "a"},                /* empty name */
	    {"X-Tenant:", "a"},       /* ':' is no tchar */
	    {"X-A", "a\r\nX-B: b"},   /* header injection */
	    {"X-A", "a\nb"},          /* LF */
	    {"X-A", ""},              /* empty value */
	    {"X-A", "$remote_addr"},  /* nginx variable */
	    {"X-A", "price: 5$"},     /* any '$' */
	    {"X-A", "\xff"},          /* not UTF-8 */
	    {"Host", "auth.example"}, /* the proxy sets Host */
	    {"connection", "keep-alive"},
	    {"Transfer-Encoding", "chunked"},
	    {"Content-Length", "0"},
	    {"UPGRADE", "websocket"},
	    {"TE", "trailers"},
	    {"X-Forwarded-For", "1.2.3.4"}, /* set from the request at hand */
	    {"x-real-ip", "1.2.3.4"},
	    {"X-Original-URL", "https://a/"},
	    {"X-Request-ID", "1"},
	    {"X-Auth-Request-Redirect", "/"}};
	char err[256];
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err[0] = '\0';
		int rc = route_validate_auth_set_header(good[i][0], good[i][1], err, sizeof(err));
		if (rc)
			fprintf(stderr, "refused %s: %s\n", good[i][0], err);
		CHECK_INT(rc, 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		int rc = route_validate_auth_set_header(bad[i][0], bad[i][1], err, sizeof(err));
		if (rc != WEIR_EINVAL)
			fprintf(stderr, "took %s: %s\n", bad[i][0], bad[i][1]);
		CHECK_INT(rc, WEIR_EINVAL);
		CHECK(err[0] != '\0');
		CHECK(strchr(err, '\n') == NULL && strchr(err, '\r') == NULL);
	}
	CHECK_INT(route_validate_auth_set_header("X-A", "$x", err, sizeof(err)), WEIR_EINVAL);
	CHECK(strstr(err, "not expanded") != NULL);
	CHECK_INT(route_validate_auth_set_header("Host", "x", err, sizeof(err)), WEIR_EINVAL);
	CHECK(strstr(err, "\"Host\"") != NULL);

	char field[128];
	struct route_policy p;
	route_policy_init(&p);
	struct route_ext_auth *a = &p.ext_auth;
	a->url = strdup("http://127.0.0.1:9/auth");
	a->proxy_set_headers = calloc(3, sizeof(*a->proxy_set_headers));
	a->nproxy_set_headers = 2;
	a->proxy_set_headers[0].name = strdup("X-A");
	a->proxy_set_headers[0].value = strdup("1");
	a->proxy_set_headers[1].name = strdup("X-B");
	a->proxy_set_headers[1].value = strdup("2");
	CHECK_INT(route_validate_policy(&p, field, sizeof(field), err, sizeof(err)), 0);
	a->proxy_set_headers[2].name = strdup("x-a");
	a->proxy_set_headers[2].value = strdup("3");
	a->nproxy_set_headers = 3;
	CHECK_INT(route_validate_policy(&p, field, sizeof(field), err, sizeof(err)), WEIR_EINVAL);
	CHECK_STR(field, "ext_auth.proxy_set_headers[2].name");
	free(a->proxy_set_headers[2].name);
	a->proxy_set_headers[2].name = strdup("X-C");
	free(a->proxy_set_headers[2].value);
	a->proxy_set_headers[2].value = strdup("a\r\nb");
	CHECK_INT(route_validate_policy(&p, field, sizeof(field), err, sizeof(err)), WEIR_EINVAL);
	CHECK_STR(field, "ext_auth.proxy_set_headers[2]");
	/* the byte cap: the last header tips it over */
	free(a->proxy_set_headers[2].value);
	a->proxy_set_headers[2].value = malloc(ROUTE_AUTH_SET_HEADERS_MAX_BYTES);
	memset(a->proxy_set_headers[2].value, 'v', ROUTE_AUTH_SET_HEADERS_MAX_BYTES - 1);
	a->proxy_set_headers[2].value[ROUTE_AUTH_SET_HEADERS_MAX_BYTES - 1] = '\0';
	CHECK_INT(route_validate_policy(&p, field, sizeof(field), err, sizeof(err)), WEIR_EINVAL);
	CHECK_STR(field, "ext_auth.proxy_set_headers[2]");
	CHECK(strstr(err, "bytes") != NULL);
	a->proxy_set_headers[2].value[ROUTE_AUTH_SET_HEADERS_MAX_BYTES - 40] = '\0';
	CHECK_INT(route_validate_policy(&p, field, sizeof(field), err, sizeof(err)), 0);
	route_policy_cleanup(&p);
}

static char *fresh_key_pem(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL, *out = NULL;
	if (k && b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1) {
		long n = BIO_get_mem_data(b, &data);
		out = strndup(data, (size_t)n);
	}
	BIO_free(b);
	EVP_PKEY_free(k);
	return out;
}

static void test_cert(void)
{
	char field[32], err[400];
	SSL_CTX *ctx = NULL;
	CHECK_INT(route_validate_cert("ns/tls", CERT_PEM, KEY_PEM, &ctx, field, sizeof(field), err,
	                              sizeof(err)),
	          0);
	CHECK(ctx != NULL);
	SSL_CTX_free(ctx);
	CHECK_INT(route_validate_cert("ns/tls", CERT_PEM, KEY_PEM, NULL, NULL, 0, NULL, 0), 0);

	CHECK_INT(route_validate_cert(
	              "ns/tls", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
	              KEY_PEM, NULL, field, sizeof(field), err, sizeof(err)),
	          WEIR_ETLS);
	CHECK_STR(field, "cert_pem");
	CHECK(strncmp(err, "bad certificate (ns/tls): ", 26) == 0);

	char *other = fresh_key_pem();
	CHECK(other != NULL);
	if (other) {
		CHECK_INT(route_validate_cert("ns/tls", CERT_PEM, other, NULL, field, sizeof(field),
		                              err, sizeof(err)),
		          WEIR_ETLS);
		CHECK_STR(field, "key_pem");
		CHECK_STR(err, "private key does not match the certificate (ns/tls)");
	}
	free(other);

	CHECK_INT(route_validate_cert("ns/tls", CERT_PEM, "nope", NULL, field, sizeof(field), err,
	                              sizeof(err)),
	          WEIR_ETLS);
	CHECK_STR(field, "key_pem");
	CHECK_INT(route_validate_cert("ns/tls", "\xff", KEY_PEM, NULL, field, sizeof(field), err,
	                              sizeof(err)),
	          WEIR_ETLS);
	CHECK_STR(field, "cert_pem");
}

static void test_external(void)
{
	char field[32], err[256];
	static const char *const good[] = {"db.example.com", "db.example.com.", "localhost",
	                                   "my_svc-1.internal"};
	for (size_t i = 0; i < N(good); i++) {
		err[0] = '\0';
		CHECK_INT(route_validate_external(good[i], 5432, 0, field, sizeof(field), err,
		                                  sizeof(err)),
		          0);
	}
	CHECK_INT(route_validate_external(NULL, 0, 3, field, sizeof(field), err, sizeof(err)), 0);
	static const struct {
		const char *name;
		unsigned port;
		size_t nendpoints;
		const char *field, *err;
	} bad[] = {
	    {NULL, 80, 0, "external_port", "set without external_name"},
	    {"db.example.com", 0, 0, "external_port", "must be 1..65535 with external_name"},
	    {"db.example.com", 70000, 0, "external_port", "must be 1..65535 with external_name"},
	    {"db.example.com", 80, 1, "endpoints", "must be empty with external_name"},
	    {"", 80, 0, "external_name", "\"\" is not a DNS name"},
	    {".", 80, 0, "external_name", "\".\" is not a DNS name"},
	    {"DB.example.com", 80, 0, "external_name", "\"DB.example.com\" is not a DNS name"},
	    {"*.example.com", 80, 0, "external_name", "\"*.example.com\" is not a DNS name"},
	    {"a..b", 80, 0, "external_name", "\"a..b\" is not a DNS name"},
	    {"db.example.com..", 80, 0, "external_name", "\"db.example.com..\" is not a DNS name"},
	    {"a\nb", 80, 0, "external_name", "\"a\\nb\" is not a DNS name"},
	    {"192.0.2.1", 80, 0, "external_name",
	     "\"192.0.2.1\" is an IP address: list it as an endpoint"},
	    {"2001:db8::1", 80, 0, "external_name",
	     "\"2001:db8::1\" is an IP address: list it as an endpoint"},
	};
	for (size_t i = 0; i < N(bad); i++) {
		field[0] = err[0] = '\0';
		CHECK_INT(route_validate_external(bad[i].name, bad[i].port, bad[i].nendpoints,
		                                  field, sizeof(field), err, sizeof(err)),
		          WEIR_EINVAL);
		CHECK_STR(field, bad[i].field);
		CHECK_STR(err, bad[i].err);
	}
}

int main(void)
{
	test_hosts();
	test_paths();
	test_strings();
	test_utf8_and_quote();
	test_policy_and_route();
	test_auth_set_headers();
	test_cert();
	test_external();
	return check_finish("route_validate_test");
}
