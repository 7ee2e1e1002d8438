/* tests/unit/controller/annotations_test.c - typed annotation parsers and
 * the resolution of one Ingress's annotations (prefixes, snippets, unknown
 * keys, bad values). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "controller/annotations.h"
#include "error.h"
#include "route_validate.h"

static void durations(void)
{
	uint32_t ms = 7;
	char err[128];
	CHECK_INT(annotations_parse_duration_ms("60", &ms, err, sizeof(err)), 0);
	CHECK_INT(ms, 60000);
	CHECK_INT(annotations_parse_duration_ms("60s", &ms, err, sizeof(err)), 0);
	CHECK_INT(ms, 60000);
	CHECK_INT(annotations_parse_duration_ms("1500ms", &ms, err, sizeof(err)), 0);
	CHECK_INT(ms, 1500);
	CHECK_INT(annotations_parse_duration_ms("5m", &ms, err, sizeof(err)), 0);
	CHECK_INT(ms, 300000);
	CHECK_INT(annotations_parse_duration_ms("2h", &ms, err, sizeof(err)), 0);
	CHECK_INT(ms, 7200000);
	CHECK_INT(annotations_parse_duration_ms("0", &ms, err, sizeof(err)), 0);
	CHECK_INT(ms, 0);
	ms = 42;
	const char *bad[] = {"", "s", "-1", "1.5s", "10x", "1d", " 5", "5 s", "2000000h", "60S"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK_INT(annotations_parse_duration_ms(bad[i], &ms, err, sizeof(err)),
		          WEIR_EINVAL);
		CHECK(err[0] != '\0');
	}
	CHECK_INT(ms, 42); /* untouched on failure */
}

static void sizes(void)
{
	int64_t v = 5;
	CHECK_INT(annotations_parse_size("0", &v, NULL, 0), 0);
	CHECK_INT(v, 0);
	CHECK_INT(annotations_parse_size("1024", &v, NULL, 0), 0);
	CHECK_INT(v, 1024);
	CHECK_INT(annotations_parse_size("8k", &v, NULL, 0), 0);
	CHECK_INT(v, 8192);
	CHECK_INT(annotations_parse_size("512K", &v, NULL, 0), 0);
	CHECK_INT(v, 524288);
	CHECK_INT(annotations_parse_size("1m", &v, NULL, 0), 0);
	CHECK_INT(v, 1048576);
	CHECK_INT(annotations_parse_size("2G", &v, NULL, 0), 0);
	CHECK_INT(v, 2147483648LL);
	v = 9;
	const char *bad[] = {"", "m", "1.5m", "1mb", "-1", "lots", "1t", "99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(annotations_parse_size(bad[i], &v, NULL, 0), WEIR_EINVAL);
	CHECK_INT(v, 9);
}

static void bools_and_ints(void)
{
	bool b = false;
	CHECK_INT(annotations_parse_bool("true", &b, NULL, 0), 0);
	CHECK(b);
	CHECK_INT(annotations_parse_bool("false", &b, NULL, 0), 0);
	CHECK(!b);
	const char *bad[] = {"True", "TRUE", "1", "yes", "", "false "};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(annotations_parse_bool(bad[i], &b, NULL, 0), WEIR_EINVAL);
	uint64_t u = 0;
	CHECK_INT(annotations_parse_uint("100", 100, &u, NULL, 0), 0);
	CHECK_INT(u, 100);
	CHECK_INT(annotations_parse_uint("101", 100, &u, NULL, 0), WEIR_EINVAL);
	CHECK_INT(annotations_parse_uint("-1", 100, &u, NULL, 0), WEIR_EINVAL);
	CHECK_INT(annotations_parse_uint("", 100, &u, NULL, 0), WEIR_EINVAL);
	CHECK_INT(annotations_parse_uint("1e2", 100, &u, NULL, 0), WEIR_EINVAL);
}

static void headers(void)
{
	struct route_header *h = NULL;
	size_t n = 0;
	CHECK_INT(annotations_parse_headers("X-A: 1\n\n  X-B:two words \nX-C:", &h, &n, NULL, 0),
	          0);
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK_STR(h[0].name, "X-A");
		CHECK_STR(h[0].value, "1");
		CHECK_STR(h[1].name, "X-B");
		CHECK_STR(h[1].value, "two words");
		CHECK_STR(h[2].name, "X-C");
		CHECK_STR(h[2].value, "");
	}
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
	const char *bad[] = {"X Y: z",    "NoColon",    ": empty name",
	                     "X-A: a\rb", "X-A: a\001", "X(A): b"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h = NULL;
		n = 0;
		CHECK_INT(annotations_parse_headers(bad[i], &h, &n, NULL, 0), WEIR_EINVAL);
	}
}

static void cidrs_and_hash(void)
{
	struct route_cidr *c = NULL;
	size_t n = 0;
	CHECK_INT(annotations_parse_cidrs("10.0.0.0/8, 192.168.1.7,2001:db8::/32", &c, &n, NULL, 0),
	          0);
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK_INT(c[0].family, 4);
		CHECK_INT(c[0].prefix_len, 8);
		CHECK_INT(c[1].prefix_len, 32);
		CHECK_INT(c[2].family, 6);
	}
	free(c);
	const char *bad[] = {"10.0.0.0/33", "10.0.0", "example.com", "10.0.0.0/8,::1/129"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(annotations_parse_cidrs(bad[i], &c, &n, NULL, 0), WEIR_EINVAL);

	CHECK_INT(route_validate_hash_by("$remote_addr", NULL, 0), 0);
	CHECK_INT(route_validate_hash_by("$request_uri", NULL, 0), 0);
	CHECK_INT(route_validate_hash_by("$arg_room-$http_x_user$cookie_sid$host", NULL, 0), 0);
	CHECK_INT(route_validate_hash_by("", NULL, 0), WEIR_EINVAL);
	CHECK_INT(route_validate_hash_by("$upstream_addr", NULL, 0), WEIR_EINVAL);
	CHECK_INT(route_validate_hash_by("$arg_", NULL, 0), WEIR_EINVAL);
}

static json_object *ann(const char *json)
{
	json_object *o = json_tokener_parse(json);
	CHECK(o != NULL);
	return o;
}

static const struct annotation_issue *issue(const struct annotation_issues *is, const char *key)
{
	for (size_t i = 0; i < is->n; i++)
		if (strcmp(is->items[i].key, key) == 0)
			return &is->items[i];
	return NULL;
}

static void resolve(void)
{
	/* weir.dev/ wins over the nginx key, even when the nginx value is bad;
	 * keys of other prefixes are not ours. */
	json_object *o =
	    ann("{\"nginx.ingress.kubernetes.io/proxy-read-timeout\":\"forever\","
	        "\"weir.dev/proxy-read-timeout\":\"90\","
	        "\"nginx.ingress.kubernetes.io/proxy-body-size\":\"8m\","
	        "\"nginx.ingress.kubernetes.io/permanent-redirect\":\"https://x.example/\","
	        "\"example.com/other\":\"x\"}");
	struct annotations a;
	struct annotation_issues is = {0};
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK_INT(is.n, 0);
	CHECK_INT(a.policy.read_timeout_ms, 90000);
	CHECK(a.read_timeout_set);
	CHECK(!a.ws_idle_set);
	CHECK_INT(a.policy.body_limit, 8388608);
	CHECK_INT(a.policy.redirect_code, 301);
	CHECK_STR(a.policy.redirect_url, "https://x.example/");
	CHECK(a.ssl_redirect); /* default true */
	CHECK_INT(a.policy.drain_window_ms, 30000);

	/* deep copy: equal values, independent storage */
	struct route_policy copy;
	CHECK_INT(annotations_policy_copy(&copy, &a.policy), 0);
	CHECK_STR(copy.redirect_url, a.policy.redirect_url);
	CHECK(copy.redirect_url != a.policy.redirect_url);
	CHECK_STR(copy.cookie.name, "INGRESSCOOKIE");
	route_policy_cleanup(&copy);
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);

	/* snippet not translated: fatal; unknown: not fatal; bad value: fatal
	 * naming the key */
	o = ann("{\"nginx.ingress.kubernetes.io/server-snippet\":\"x\","
	        "\"weir.dev/frobnicate\":\"1\","
	        "\"nginx.ingress.kubernetes.io/limit-rps\":\"many\","
	        "\"weir.dev/drain-window\":\"45s\"}");
	CHECK_INT(annotations_parse(o, 20000, &a, &is), 0);
	CHECK_INT(is.n, 3);
	const struct annotation_issue *s = issue(&is, "nginx.ingress.kubernetes.io/server-snippet");
	CHECK(s && s->fatal && strcmp(s->reason, "SnippetNotTranslated") == 0);
	CHECK(s && strstr(s->message, "directive \"x\" has no ending ';'"));
	const struct annotation_issue *u = issue(&is, "weir.dev/frobnicate");
	CHECK(u && !u->fatal && strcmp(u->reason, "UnknownAnnotation") == 0);
	const struct annotation_issue *b = issue(&is, "nginx.ingress.kubernetes.io/limit-rps");
	CHECK(b && b->fatal && strstr(b->message, "many") != NULL);
	CHECK_INT(a.policy.drain_window_ms, 45000);
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);

	/* NULL annotations: defaults, drain-window from the caller */
	CHECK_INT(annotations_parse(NULL, 1234, &a, &is), 0);
	CHECK_INT(is.n, 0);
	CHECK_INT(a.policy.drain_window_ms, 1234);
	CHECK_INT(a.policy.ws_idle_timeout_ms, 3600000);
	CHECK_INT(a.canary_rule.backend, -1);
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);

	/* canary and affinity families */
	o = ann("{\"nginx.ingress.kubernetes.io/canary\":\"true\","
	        "\"nginx.ingress.kubernetes.io/canary-weight\":\"30\","
	        "\"nginx.ingress.kubernetes.io/canary-by-header\":\"X-Canary\","
	        "\"nginx.ingress.kubernetes.io/affinity\":\"cookie\","
	        "\"nginx.ingress.kubernetes.io/session-cookie-samesite\":\"strict\","
	        "\"weir.dev/server-alias\":\"A.example.com, b.example.com\"}");
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK_INT(is.n, 0);
	CHECK(a.canary);
	CHECK_INT(a.canary_rule.weight, 30);
	CHECK_STR(a.canary_rule.by_header, "X-Canary");
	CHECK_INT(a.policy.affinity, ROUTE_AFFINITY_COOKIE);
	CHECK_STR(a.policy.cookie.samesite, "Strict");
	CHECK_INT(a.nserver_alias, 2);
	if (a.nserver_alias == 2)
		CHECK_STR(a.server_alias[0], "a.example.com");
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);

	/* bad values of several families, each fatal */
	const char *bad[] = {
	    "{\"weir.dev/canary-weight\":\"101\"}",
	    "{\"weir.dev/affinity\":\"ip\"}",
	    "{\"weir.dev/load-balance\":\"random\"}",
	    "{\"weir.dev/backend-protocol\":\"THRIFT\"}",
	    "{\"weir.dev/session-cookie-samesite\":\"Sometimes\"}",
	    "{\"weir.dev/permanent-redirect-code\":\"200\"}",
	    "{\"weir.dev/whitelist-source-range\":\"10.0.0.0/40\"}",
	    "{\"weir.dev/request-headers\":\"Bad Name: x\"}",
	    "{\"weir.dev/hide-headers\":\"X(1)\"}",
	    "{\"weir.dev/server-alias\":\"bad host!\"}",
	    "{\"weir.dev/default-backend\":\"Not_A_Service\"}",
	    "{\"weir.dev/use-regex\":\"yes\"}",
	    "{\"weir.dev/websocket-idle-timeout\":\"1 hour\"}",
	    "{\"weir.dev/app-root\":\"app\"}",
	    "{\"weir.dev/auth-url\":\"ftp://10.0.0.1/\"}",
	    "{\"weir.dev/auth-url\":\"http://$hostname/oauth2/auth\"}",
	    "{\"weir.dev/auth-url\":\"http://10.0.0.1/\",\"weir.dev/auth-method\":\"get\"}",
	    "{\"weir.dev/auth-url\":\"http://10.0.0.1/\",\"weir.dev/auth-signin\":"
	    "\"https://$host/oauth2/start?u=$remote_user\"}",
	    "{\"weir.dev/auth-url\":\"http://10.0.0.1/\","
	    "\"weir.dev/auth-signin-redirect-param\":\"r d\"}",
	    "{\"weir.dev/auth-url\":\"http://10.0.0.1/\","
	    "\"weir.dev/auth-response-headers\":\"X-A, X:B\"}",
	    "{\"weir.dev/auth-url\":\"http://10.0.0.1/\","
	    "\"weir.dev/auth-always-set-cookie\":\"yes\"}",
	    "{\"weir.dev/auth-url\":\"http://10.0.0.1/\","
	    "\"weir.dev/auth-cache-key\":\"$request_body\"}",
	    "{\"weir.dev/auth-url\":\"http://10.0.0.1/\","
	    "\"weir.dev/auth-cache-duration\":\"200 202 5 minutes\"}",
	    "{\"weir.dev/auth-url\":\"http://10.0.0.1/\","
	    "\"weir.dev/auth-proxy-set-headers\":\"ns/Headers_CM\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = ann(bad[i]);
		CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
		CHECK_INT(is.n, 1);
		if (is.n != 1 || !is.items[0].fatal)
			fprintf(stderr, "  case %s not refused\n", bad[i]);
		CHECK(is.n == 1 && is.items[0].fatal);
		annotations_cleanup(&a);
		annotation_issues_cleanup(&is);
		json_object_put(o);
	}
	/* auth-keepalive only tunes connection reuse: reported, not fatal. */
	o = ann("{\"weir.dev/auth-url\":\"http://10.0.0.1/\","
	        "\"weir.dev/auth-keepalive\":\"10\"}");
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK_INT(is.n, 1);
	if (is.n == 1) {
		CHECK(!is.items[0].fatal);
		CHECK_STR(is.items[0].reason, "UnknownAnnotation");
	}
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);
}

/* auth-url and friends (forward authentication): values, the copy, and
 * the keys that mean nothing without auth-url. */
static void forward_auth(void)
{
	json_object *o =
	    ann("{\"nginx.ingress.kubernetes.io/auth-url\":\"http://10.96.0.20:4180/oauth2/auth\","
	        "\"nginx.ingress.kubernetes.io/auth-method\":\"POST\","
	        "\"nginx.ingress.kubernetes.io/auth-signin\":"
	        "\"https://$host/oauth2/start?rd=$escaped_request_uri\","
	        "\"nginx.ingress.kubernetes.io/auth-signin-redirect-param\":\"return_to\","
	        "\"nginx.ingress.kubernetes.io/auth-response-headers\":\"X-User, X-Email\","
	        "\"nginx.ingress.kubernetes.io/auth-request-redirect\":\"https://a.test/\","
	        "\"weir.dev/auth-always-set-cookie\":\"true\","
	        "\"weir.dev/auth-cache-key\":\"$remote_user$http_authorization$cookie_s\","
	        "\"weir.dev/auth-cache-duration\":\"200 202 10m, 401 30s\"}");
	struct annotations a;
	struct annotation_issues is = {0};
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK_INT(is.n, 0);
	const struct route_ext_auth *au = &a.policy.ext_auth;
	CHECK_STR(au->url, "http://10.96.0.20:4180/oauth2/auth");
	CHECK_STR(au->method, "POST");
	CHECK_STR(au->signin, "https://$host/oauth2/start?rd=$escaped_request_uri");
	CHECK_STR(au->signin_redirect_param, "return_to");
	CHECK_STR(au->request_redirect, "https://a.test/");
	CHECK(au->always_set_cookie);
	CHECK_STR(au->cache_key, "$remote_user$http_authorization$cookie_s");
	CHECK_STR(au->cache_duration, "200 202 10m, 401 30s");
	CHECK_INT(au->nresponse_headers, 2);
	if (au->nresponse_headers == 2)
		CHECK_STR(au->response_headers[1], "X-Email");
	struct route_policy copy;
	CHECK_INT(annotations_policy_copy(&copy, &a.policy), 0);
	CHECK_STR(copy.ext_auth.url, au->url);
	CHECK(copy.ext_auth.url != au->url);
	CHECK_INT(copy.ext_auth.nresponse_headers, 2);
	CHECK(copy.ext_auth.always_set_cookie);
	route_policy_cleanup(&copy);
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);

	/* auth-* keys without auth-url ask for nothing (ingress-nginx ignores
	 * them): not dropped, and nothing of them reaches the table. */
	o = ann("{\"nginx.ingress.kubernetes.io/auth-signin\":\"https://login.test/\","
	        "\"nginx.ingress.kubernetes.io/auth-method\":\"POST\"}");
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK_INT(is.n, 0);
	CHECK(a.policy.ext_auth.url == NULL && a.policy.ext_auth.signin == NULL &&
	      a.policy.ext_auth.method == NULL);
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);

	/* A Service DNS name: looked up by the proxy. */
	o = ann("{\"weir.dev/auth-url\":\"https://oauth2-proxy.auth.svc.cluster.local:4180/x\"}");
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK_INT(is.n, 0);
	CHECK_STR(a.policy.ext_auth.url, "https://oauth2-proxy.auth.svc.cluster.local:4180/x");
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);
}

/* auth-*: values, prefixes, the half-configured cases, and the deep copy of
 * the users compile adds. */
static void auth(void)
{
	json_object *o =
	    ann("{\"nginx.ingress.kubernetes.io/auth-type\":\"basic\","
	        "\"nginx.ingress.kubernetes.io/auth-secret\":\"ignored\","
	        "\"weir.dev/auth-secret\":\"default/htpasswd\","
	        "\"nginx.ingress.kubernetes.io/auth-secret-type\":\"auth-map\","
	        "\"nginx.ingress.kubernetes.io/auth-realm\":\"Staff only - a.b/c:d\"}");
	struct annotations a;
	struct annotation_issues is = {0};
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK_INT(is.n, 0);
	CHECK_INT(a.policy.auth.type, ROUTE_AUTH_BASIC);
	CHECK_STR(a.auth_secret, "default/htpasswd");
	CHECK_STR(a.auth_secret_key, "weir.dev/auth-secret");
	CHECK_STR(a.auth_type_key, "nginx.ingress.kubernetes.io/auth-type");
	CHECK(a.auth_map);
	CHECK_STR(a.policy.auth.realm, "Staff only - a.b/c:d");
	/* what compile does with the Secret, then a route's copy */
	static struct route_auth_user users[] = {{"alice", "h.w.pfYUgbGFQ"},
	                                         {"bob", "cc5nPb5Kc5TJM"}};
	a.policy.auth.users = calloc(2, sizeof(*users));
	a.policy.auth.nusers = 2;
	for (size_t i = 0; a.policy.auth.users && i < 2; i++) {
		a.policy.auth.users[i].name = strdup(users[i].name);
		a.policy.auth.users[i].hash = strdup(users[i].hash);
	}
	struct route_policy copy;
	CHECK_INT(annotations_policy_copy(&copy, &a.policy), 0);
	CHECK_INT(copy.auth.nusers, 2);
	CHECK(copy.auth.users != a.policy.auth.users);
	CHECK_STR(copy.auth.users[1].hash, "cc5nPb5Kc5TJM");
	CHECK(copy.auth.realm != a.policy.auth.realm);
	CHECK_STR(copy.auth.realm, "Staff only - a.b/c:d");
	route_policy_cleanup(&copy);
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);

	static const struct {
		const char *json;
		const char *key;
	} bad[] = {
	    {"{\"nginx.ingress.kubernetes.io/auth-type\":\"digest\","
	     "\"nginx.ingress.kubernetes.io/auth-secret\":\"s\"}",
	     "nginx.ingress.kubernetes.io/auth-type"},
	    {"{\"nginx.ingress.kubernetes.io/auth-type\":\"Basic\","
	     "\"nginx.ingress.kubernetes.io/auth-secret\":\"s\"}",
	     "nginx.ingress.kubernetes.io/auth-type"},
	    {"{\"weir.dev/auth-type\":\"basic\"}", "weir.dev/auth-type"},
	    {"{\"weir.dev/auth-secret\":\"s\"}", "weir.dev/auth-secret"},
	    {"{\"nginx.ingress.kubernetes.io/auth-secret-type\":\"auth-map\"}",
	     "nginx.ingress.kubernetes.io/auth-secret-type"},
	    {"{\"nginx.ingress.kubernetes.io/auth-type\":\"basic\","
	     "\"nginx.ingress.kubernetes.io/auth-secret\":\"a/b/c\"}",
	     "nginx.ingress.kubernetes.io/auth-secret"},
	    {"{\"nginx.ingress.kubernetes.io/auth-type\":\"basic\","
	     "\"nginx.ingress.kubernetes.io/auth-secret\":\"s\","
	     "\"nginx.ingress.kubernetes.io/auth-realm\":\"a\\\\b\"}",
	     "nginx.ingress.kubernetes.io/auth-realm"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct annotations b;
		struct annotation_issues bis = {0};
		json_object *bo = ann(bad[i].json);
		CHECK_INT(annotations_parse(bo, 30000, &b, &bis), 0);
		CHECK_INT(bis.n, 1);
		const struct annotation_issue *it = issue(&bis, bad[i].key);
		CHECK(it && it->fatal);
		if (!it || bis.n != 1)
			fprintf(stderr, "  auth case %zu\n", i);
		annotations_cleanup(&b);
		annotation_issues_cleanup(&bis);
		json_object_put(bo);
	}
}

/* auth-tls-*: values, defaults, weir.dev/ precedence, the half-configured
 * case, and every refused value naming its key. */
static void auth_tls(void)
{
	struct annotations a;
	struct annotation_issues is = {0};
	json_object *o =
	    ann("{\"nginx.ingress.kubernetes.io/auth-tls-secret\":\"default/ca\","
	        "\"nginx.ingress.kubernetes.io/auth-tls-verify-client\":\"on\","
	        "\"weir.dev/auth-tls-verify-client\":\"optional\","
	        "\"nginx.ingress.kubernetes.io/auth-tls-verify-depth\":\"0\","
	        "\"nginx.ingress.kubernetes.io/auth-tls-error-page\":\"http://e.example/err\","
	        "\"nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream\":\"true\","
	        "\"nginx.ingress.kubernetes.io/auth-tls-match-cn\":\"CN=(a|b)\"}");
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK_INT(is.n, 0);
	CHECK_STR(a.tls_secret, "default/ca");
	CHECK_STR(a.tls_secret_key, "nginx.ingress.kubernetes.io/auth-tls-secret");
	CHECK_INT(a.tls_auth.ca, -1); /* compile reads the Secret */
	CHECK_INT(a.tls_auth.verify, ROUTE_VERIFY_OPTIONAL);
	CHECK_INT(a.tls_auth.verify_depth, 1); /* 0 is ingress-nginx's default */
	CHECK_STR(a.tls_auth.error_page, "http://e.example/err");
	CHECK(a.tls_auth.pass_certificate);
	CHECK_STR(a.tls_auth.match_cn, "CN=(a|b)");
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);

	/* only the secret: verify on, depth 1; verify-client off alone is no
	 * request for protection */
	o = ann("{\"nginx.ingress.kubernetes.io/auth-tls-secret\":\"ca\"}");
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK_INT(is.n, 0);
	CHECK_INT(a.tls_auth.verify, ROUTE_VERIFY_ON);
	CHECK_INT(a.tls_auth.verify_depth, 1);
	CHECK(!a.tls_auth.pass_certificate && !a.tls_auth.match_cn && !a.tls_auth.error_page);
	annotations_cleanup(&a);
	json_object_put(o);
	o = ann("{\"nginx.ingress.kubernetes.io/auth-tls-verify-client\":\"off\"}");
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK_INT(is.n, 0);
	CHECK(a.tls_secret == NULL);
	annotations_cleanup(&a);
	json_object_put(o);

	static const struct {
		const char *json;
		const char *key;
	} bad[] = {
	    {"{\"weir.dev/auth-tls-match-cn\":\"CN=a\"}", "weir.dev/auth-tls-match-cn"},
	    {"{\"weir.dev/auth-tls-pass-certificate-to-upstream\":\"false\"}",
	     "weir.dev/auth-tls-pass-certificate-to-upstream"},
	    {"{\"weir.dev/auth-tls-secret\":\"a/b/c\"}", "weir.dev/auth-tls-secret"},
	    {"{\"weir.dev/auth-tls-secret\":\"ca\",\"weir.dev/auth-tls-verify-client\":\"ON\"}",
	     "weir.dev/auth-tls-verify-client"},
	    {"{\"weir.dev/auth-tls-secret\":\"ca\",\"weir.dev/auth-tls-verify-depth\":\"101\"}",
	     "weir.dev/auth-tls-verify-depth"},
	    {"{\"weir.dev/auth-tls-secret\":\"ca\",\"weir.dev/auth-tls-match-cn\":\"O=x\"}",
	     "weir.dev/auth-tls-match-cn"},
	    {"{\"weir.dev/auth-tls-secret\":\"ca\",\"weir.dev/auth-tls-match-cn\":\"CN=[\"}",
	     "weir.dev/auth-tls-match-cn"},
	    {"{\"weir.dev/auth-tls-secret\":\"ca\",\"weir.dev/auth-tls-error-page\":\"@named\"}",
	     "weir.dev/auth-tls-error-page"},
	    {"{\"weir.dev/auth-tls-secret\":\"ca\",\"weir.dev/auth-tls-error-page\":\"/local\"}",
	     "weir.dev/auth-tls-error-page"},
	    {"{\"weir.dev/auth-tls-secret\":\"ca\","
	     "\"weir.dev/auth-tls-pass-certificate-to-upstream\":\"yes\"}",
	     "weir.dev/auth-tls-pass-certificate-to-upstream"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct annotations b;
		struct annotation_issues bis = {0};
		json_object *bo = ann(bad[i].json);
		CHECK_INT(annotations_parse(bo, 30000, &b, &bis), 0);
		CHECK_INT(bis.n, 1);
		const struct annotation_issue *it = issue(&bis, bad[i].key);
		CHECK(it && it->fatal);
		if (!it || bis.n != 1)
			fprintf(stderr, "  auth-tls case %zu\n", i);
		annotations_cleanup(&b);
		annotation_issues_cleanup(&bis);
		json_object_put(bo);
	}
}

/* annotations_key_support says what annotations_parse does with a key. */
static void key_support(void)
{
	const char *d = "unset";
	size_t n = 0;
	for (const char *k; (k = annotations_handled_key(n)); n++) {
		enum annotation_support s = annotations_key_support(k, NULL);
		CHECK(s == ANNOTATION_ACTS || s == ANNOTATION_TRANSLATED);
	}
	CHECK(n > 50);
	CHECK(annotations_key_support("proxy-read-timeout", &d) == ANNOTATION_ACTS);
	CHECK(d == NULL);
	CHECK(annotations_key_support("whitelist-source-range", &d) == ANNOTATION_TRANSLATED);
	CHECK_STR(d, "allowlist-source-range");
	/* the three translated snippets act on a subset, named in detail */
	CHECK(annotations_key_support("configuration-snippet", &d) == ANNOTATION_ACTS);
	CHECK(d != NULL && strstr(d, "add_header") != NULL);
	CHECK(annotations_key_support("server-snippet", NULL) == ANNOTATION_ACTS);
	CHECK(annotations_key_support("auth-snippet", &d) == ANNOTATION_ACTS);
	CHECK(d != NULL && strstr(d, "proxy_set_header") != NULL);
	CHECK(annotations_key_support("stream-snippet", NULL) == ANNOTATION_REFUSED);
	CHECK(annotations_key_support("modsecurity-snippet", NULL) == ANNOTATION_REFUSED);
	CHECK(annotations_key_support("enable-modsecurity", &d) == ANNOTATION_FAIL_CLOSED);
	CHECK_STR(d, "false");
	CHECK(annotations_key_support("modsecurity-transaction-id", &d) == ANNOTATION_FAIL_CLOSED);
	CHECK(d == NULL);
	CHECK(annotations_key_support("proxy-buffers-number", &d) == ANNOTATION_INAPPLICABLE);
	CHECK(d != NULL);
	CHECK(annotations_key_support("proxy-buffering", &d) == ANNOTATION_ACTS);
	CHECK(annotations_key_support("proxy-request-buffering", &d) == ANNOTATION_ACTS);
	CHECK(annotations_key_support("proxy-next-upstream-no-such", &d) == ANNOTATION_IGNORED);
	CHECK(d == NULL);
	CHECK(annotations_key_support("", NULL) == ANNOTATION_IGNORED);
}

/* Snippets folded into the policy: precedence over the same-named
 * annotations, server/configuration inheritance, conflicts, and a snippet
 * refused half-way keeping nothing. */
static void snippets(void)
{
	struct annotations a;
	struct annotation_issues is = {0};
	json_object *o =
	    ann("{\"nginx.ingress.kubernetes.io/configuration-snippet\":"
	        "\"proxy_set_header X-Env snip; more_set_headers 'X-Resp: snip'; "
	        "more_clear_headers X-Snip; add_header X-Loc l;\","
	        "\"nginx.ingress.kubernetes.io/server-snippet\":\"add_header X-Srv s;\","
	        "\"weir.dev/request-headers\":\"X-Env: ann\\nX-Keep: k\","
	        "\"weir.dev/response-headers\":\"X-Resp: ann\","
	        "\"weir.dev/hide-headers\":\"X-Ann\"}");
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK_INT(is.n, 0);
	CHECK_INT(a.policy.nrequest_headers, 2);
	if (a.policy.nrequest_headers == 2) {
		CHECK_STR(a.policy.request_headers[0].name, "X-Env");
		CHECK_STR(a.policy.request_headers[0].value, "snip");
		CHECK_STR(a.policy.request_headers[1].value, "k");
	}
	CHECK(a.policy.nresponse_headers == 1 &&
	      strcmp(a.policy.response_headers[0].value, "snip") == 0);
	CHECK_INT(a.policy.nhide_headers, 2);
	/* the location's add_header replaces the server's (nginx inheritance) */
	CHECK(a.policy.nadd_headers == 1 && strcmp(a.policy.add_headers[0].name, "X-Loc") == 0);
	CHECK(a.snippet_key[SNIPPET_CONFIGURATION] && a.snippet_key[SNIPPET_SERVER] &&
	      !a.snippet_key[SNIPPET_AUTH]);
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);

	/* without a location add_header, the server's applies */
	o = ann("{\"nginx.ingress.kubernetes.io/server-snippet\":\"add_header X-Srv s always;\"}");
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK(a.policy.nadd_headers == 1 && a.policy.add_headers[0].always);
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);

	/* refused half-way: the Ingress drops, nothing of the snippet is kept,
	 * and the server-snippet's conflict check does not see a half */
	o = ann("{\"nginx.ingress.kubernetes.io/configuration-snippet\":"
	        "\"more_set_headers 'X-A: 1'; lua_code_cache off;\","
	        "\"nginx.ingress.kubernetes.io/server-snippet\":\"more_set_headers 'X-B: 2';\"}");
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK_INT(is.n, 1);
	const struct annotation_issue *i =
	    issue(&is, "nginx.ingress.kubernetes.io/configuration-snippet");
	CHECK(i && i->fatal && strstr(i->message, "\"lua_code_cache\" is not translated"));
	CHECK(a.policy.nresponse_headers == 1 &&
	      strcmp(a.policy.response_headers[0].name, "X-B") == 0);
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);

	/* return with permanent-redirect: refused; return alone: set */
	o = ann("{\"nginx.ingress.kubernetes.io/configuration-snippet\":\"return 410;\","
	        "\"nginx.ingress.kubernetes.io/permanent-redirect\":\"https://a.example/\"}");
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	i = issue(&is, "nginx.ingress.kubernetes.io/configuration-snippet");
	CHECK(i && i->fatal && strstr(i->message, "permanent-redirect"));
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);
	o = ann("{\"weir.dev/configuration-snippet\":\"return 410 gone;\"}");
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK(is.n == 0 && a.policy.return_code == 410 &&
	      strcmp(a.policy.return_body, "gone") == 0);
	/* the copy keeps the new fields */
	struct route_policy copy;
	CHECK_INT(annotations_policy_copy(&copy, &a.policy), 0);
	CHECK(copy.return_code == 410 && copy.return_body != a.policy.return_body &&
	      strcmp(copy.return_body, "gone") == 0);
	route_policy_cleanup(&copy);
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);

	/* auth-snippet: into ext_auth with auth-url, a warning without */
	o = ann("{\"nginx.ingress.kubernetes.io/auth-snippet\":\"proxy_set_header X-T t;\","
	        "\"nginx.ingress.kubernetes.io/auth-url\":\"http://auth.example/check\"}");
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK(is.n == 0 && a.policy.ext_auth.nproxy_set_headers == 1);
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);
	o = ann("{\"nginx.ingress.kubernetes.io/auth-snippet\":\"proxy_set_header X-T t;\"}");
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK(is.n == 1 && !is.items[0].fatal && a.policy.ext_auth.nproxy_set_headers == 0);
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);

	/* a NUL inside the value is refused, not cut */
	o = json_object_new_object();
	json_object_object_add(o, "nginx.ingress.kubernetes.io/configuration-snippet",
	                       json_object_new_string_len("add_header X a;\0lua x;", 23));
	CHECK_INT(annotations_parse(o, 30000, &a, &is), 0);
	CHECK(is.n == 1 && is.items[0].fatal && strstr(is.items[0].message, "NUL"));
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(o);
}

int main(void)
{
	snippets();
	key_support();
	forward_auth();
	durations();
	sizes();
	bools_and_ints();
	headers();
	cidrs_and_hash();
	resolve();
	auth();
	auth_tls();
	return check_finish("annotations_test");
}
