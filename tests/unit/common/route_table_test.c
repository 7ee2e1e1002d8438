/* The route table contract: defaults, the strict reader (every refusal names
 * the JSON path), the stable writer (byte-identical round trip), CIDRs. */
#include <json-c/json.h>

#include "check.h"
#include "common/error.h"
#include "common/route_table.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdlib.h>

static void test_defaults(void)
{
	struct route_table *t = route_table_new();
	CHECK(t != NULL);
	CHECK_INT(t->version, 1);
	CHECK_INT(t->settings.max_header_bytes, 32768);
	CHECK_INT(t->settings.header_timeout_ms, 10000);
	CHECK_INT(t->settings.keepalive_timeout_ms, 75000);
	CHECK_INT(t->settings.upstream_keepalive, 32);
	CHECK_INT(t->settings.max_connections, 16384);
	CHECK_INT(t->settings.drain_window_ms, 30000);
	/* ingress-nginx's defaults */
	CHECK(!t->settings.use_forwarded_headers && !t->settings.compute_full_forwarded_for &&
	      !t->settings.use_proxy_protocol);
	CHECK_STR(t->settings.forwarded_for_header, "X-Forwarded-For");
	CHECK_INT(t->settings.nproxy_real_ip_cidr, 0);
	CHECK(t->settings.hsts && t->settings.hsts_include_subdomains && !t->settings.hsts_preload);
	CHECK_INT(t->settings.hsts_max_age, 31536000);
	CHECK_INT(t->default_cert, -1);
	CHECK_INT(t->default_backend, -1);
	route_table_free(t);
	route_table_free(NULL);

	struct route_policy p;
	route_policy_init(&p);
	CHECK_INT(p.connect_timeout_ms, 5000);
	CHECK_INT(p.read_timeout_ms, 60000);
	CHECK_INT(p.send_timeout_ms, 60000);
	CHECK_INT(p.next_upstream, ROUTE_NEXT_ERROR | ROUTE_NEXT_TIMEOUT);
	CHECK_INT(p.next_upstream_tries, 3);
	CHECK_INT(p.next_upstream_timeout_ms, 0);
	CHECK_INT(p.body_limit, 1048576);
	CHECK_STR(p.cookie.name, "INGRESSCOOKIE");
	CHECK_INT(p.cookie.max_age_s, -1);
	CHECK_INT(p.cookie.expires_s, -1);
	CHECK(p.cookie.path == NULL && p.cookie.samesite == NULL);
	CHECK(!p.cors.enabled);
	CHECK_STR(p.cors.allow_origin, "*");
	CHECK_STR(p.cors.allow_methods, "GET, PUT, POST, DELETE, PATCH, OPTIONS");
	CHECK_STR(p.cors.allow_headers, "DNT,Keep-Alive,User-Agent,X-Requested-With,"
	                                "If-Modified-Since,Cache-Control,Content-Type,Range,"
	                                "Authorization");
	CHECK(p.cors.allow_credentials);
	CHECK_INT(p.cors.max_age_s, 1728000);
	CHECK_INT(p.ws_idle_timeout_ms, 3600000);
	CHECK_INT(p.drain_window_ms, 30000);
	CHECK_INT(p.backend_protocol, ROUTE_PROTO_HTTP);
	CHECK_INT(p.balance, ROUTE_BALANCE_ROUND_ROBIN);
	CHECK_INT(p.affinity, ROUTE_AFFINITY_NONE);
	route_policy_cleanup(&p);
}

static struct route_table *parse_ok(const char *json)
{
	struct route_table *t = NULL;
	char err[256] = "";
	int rc = route_table_parse(json, strlen(json), &t, err, sizeof(err));
	CHECK_INT(rc, 0);
	if (rc != 0)
		fprintf(stderr, "  unexpected error: %s\n", err);
	return t;
}

static void test_minimal(void)
{
	const char *json = "{\"version\":1,\"generation\":7,"
	                   "\"backends\":[{\"name\":\"default/web:80\",\"endpoints\":"
	                   "[{\"address\":\"127.0.0.1\",\"port\":8081}]}],"
	                   "\"hosts\":[{\"name\":\"a.example.com\",\"routes\":"
	                   "[{\"path\":\"/\",\"match\":\"prefix\",\"backend\":0}]}]}";
	struct route_table *t = parse_ok(json);
	if (!t)
		return;
	CHECK_INT(t->generation, 7);
	CHECK_INT(t->nhosts, 1);
	CHECK_STR(t->hosts[0].name, "a.example.com");
	CHECK_INT(t->hosts[0].cert, -1);
	CHECK_INT(t->hosts[0].nroutes, 1);
	const struct route *r = &t->hosts[0].routes[0];
	CHECK_STR(r->path, "/");
	CHECK_INT(r->match, ROUTE_MATCH_PREFIX);
	CHECK_INT(r->backend, 0);
	CHECK_STR(r->source, "");
	CHECK_INT(r->canary.backend, -1);
	CHECK_INT(r->policy->read_timeout_ms, 60000);
	CHECK_STR(r->policy->cookie.name, "INGRESSCOOKIE");
	CHECK_INT(t->backends[0].endpoints[0].port, 8081);
	CHECK_INT(t->backends[0].endpoints[0].weight, 1);
	CHECK(!t->backends[0].endpoints[0].draining);
	CHECK_INT(t->settings.max_header_bytes, 32768);
	CHECK_INT(t->default_backend, -1);
	route_table_free(t);

	/* The smallest valid table. */
	t = parse_ok("{\"version\": 1}\n");
	if (t) {
		CHECK_INT(t->nhosts, 0);
		CHECK_INT(t->generation, 0);
	}
	route_table_free(t);
}

struct refusal {
	const char *json;
	int rc;
	const char *err;
};

static const struct refusal refusals[] = {
    {"", WEIR_EPARSE, "json: unexpected end of document (line 1)"},
    {"{\"version\":1,}", WEIR_EPARSE, NULL},
    {"{\"version\":1} x", WEIR_EPARSE, "json: unexpected character at line 1"},
    {"[1]", WEIR_EINVAL, "top level must be an object, not an array"},
    {"{}", WEIR_EVERSION, "version: required key missing"},
    {"{\"version\":2}", WEIR_EVERSION,
     "version: version 2 is a sharded index: load it with its shards directory"},
    {"{\"version\":3}", WEIR_EVERSION, "version: unsupported version 3 (want 1)"},
    {"{\"version\":\"1\"}", WEIR_EVERSION, "version: must be the integer 1"},
    {"{\"version\":1,\"colour\":3}", WEIR_EINVAL, "colour: unknown key"},
    {"{\"version\":1,\"settings\":{\"ssl_protocols\":\"TLSv1.2 SSLv3\"}}", WEIR_EINVAL,
     "settings.ssl_protocols: \"TLSv1.2 SSLv3\": a word is not TLSv1, TLSv1.1, TLSv1.2 or "
     "TLSv1.3"},
    {"{\"version\":1,\"settings\":{\"ssl_ciphers\":\"NOPE\"}}", WEIR_EINVAL,
     "settings.ssl_ciphers: \"NOPE\": OpenSSL knows no cipher of this list"},
    {"{\"version\":1,\"settings\":{\"ssl_ciphers\":\"A B\"}}", WEIR_EINVAL, NULL},
    {"{\"version\":1,\"settings\":{\"block_user_agents\":[\"ok\",\"~*(\"]}}", WEIR_EINVAL, NULL},
    {"{\"version\":1,\"settings\":{\"block_referers\":[\"\"]}}", WEIR_EINVAL,
     "settings.block_referers[0]: empty pattern"},
    {"{\"version\":1,\"settings\":{\"block_cidrs\":[\"10.0.0.0/33\"]}}", WEIR_EINVAL, NULL},
    {"{\"version\":1,\"hosts\":[{\"name\":\"a\",\"ssl_ciphers\":\"NOPE\"}]}", WEIR_EINVAL,
     "hosts[0].ssl_ciphers: \"NOPE\": OpenSSL knows no cipher of this list"},
    {"{\"version\":1,\"generation\":-1}", WEIR_EINVAL,
     "generation: -1 out of range 0..9223372036854775807"},
    {"{\"version\":1,\"settings\":{\"max_header_bytes\":\"big\"}}", WEIR_EINVAL,
     "settings.max_header_bytes: must be an integer, not a string"},
    {"{\"version\":1,\"settings\":{\"gzip_level\":0}}", WEIR_EINVAL,
     "settings.gzip_level: 0 is not between 1 and 9"},
    {"{\"version\":1,\"settings\":{\"http2_max_field_size\":65537}}", WEIR_EINVAL,
     "settings.http2_max_field_size: 65537 is above 65536"},
    {"{\"version\":1,\"settings\":{\"http2_max_header_size\":1048577}}", WEIR_EINVAL,
     "settings.http2_max_header_size: 1048577 is above 1048576"},
    {"{\"version\":1,\"settings\":{\"gzip_types\":\"text/plain  text/css\"}}", WEIR_EINVAL,
     "settings.gzip_types: \"text/plain  text/css\" is not \"*\" or lowercase media types "
     "(type/subtype) separated by single spaces"},
    {"{\"version\":1,\"settings\":{\"gzip_types\":\"Text/Plain\"}}", WEIR_EINVAL, NULL},
    {"{\"version\":1,\"settings\":{\"gzip_types\":\"text/\"}}", WEIR_EINVAL, NULL},
    {"{\"version\":1,\"settings\":{\"upstream_head_max\":100}}", WEIR_EINVAL,
     "settings.upstream_head_max: 100 is not between 1024 and 1048576"},
    {"{\"version\":1,\"settings\":{\"brotli_level\":12}}", WEIR_EINVAL,
     "settings.brotli_level: 12 is not between 0 and 11"},
    {"{\"version\":1,\"settings\":{\"brotli_types\":\" text/css\"}}", WEIR_EINVAL, NULL},
    {"{\"version\":1,\"hosts\":[{\"name\":\"\",\"routes\":[{\"path\":\"/\",\"match\":"
     "\"prefix\",\"policy\":{\"next_upstream\":[\"error\",\"http_418\"]}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.next_upstream[1]: unknown condition \"http_418\""},
    {"{\"version\":1,\"hosts\":[{\"name\":\"\",\"routes\":[{\"path\":\"/\",\"match\":"
     "\"prefix\",\"policy\":{\"next_upstream\":[\"error\",\"error\"]}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.next_upstream[1]: \"error\" given twice"},
    {"{\"version\":1,\"hosts\":[{\"name\":\"\",\"routes\":[{\"path\":\"/\",\"match\":"
     "\"prefix\",\"policy\":{\"next_upstream\":\"error\"}}]}]}",
     WEIR_EINVAL, NULL},
    {"{\"version\":1,\"settings\":{\"header_timeout_ms\":1.5}}", WEIR_EINVAL,
     "settings.header_timeout_ms: must be an integer, not a number with a fraction"},
    {"{\"version\":1,\"settings\":{\"drain_window_ms\":4294967296}}", WEIR_EINVAL,
     "settings.drain_window_ms: 4294967296 out of range 0..4294967295"},
    {"{\"version\":1,\"settings\":{\"trusted_proxies\":[\"10.0.0.0/33\"]}}", WEIR_EINVAL,
     "settings.trusted_proxies[0]: bad CIDR \"10.0.0.0/33\""},
    {"{\"version\":1,\"settings\":{\"trusted_proxies\":[\"fe80::/200\"]}}", WEIR_EINVAL,
     "settings.trusted_proxies[0]: bad CIDR \"fe80::/200\""},
    {"{\"version\":1,\"settings\":{\"trusted_proxies\":[\"example.com\"]}}", WEIR_EINVAL,
     "settings.trusted_proxies[0]: bad CIDR \"example.com\""},
    {"{\"version\":1,\"settings\":{\"proxy_real_ip_cidr\":[\"1.2.3.4/40\"]}}", WEIR_EINVAL,
     "settings.proxy_real_ip_cidr[0]: bad CIDR \"1.2.3.4/40\""},
    {"{\"version\":1,\"settings\":{\"forwarded_for_header\":\"X Bad\"}}", WEIR_EINVAL,
     "settings.forwarded_for_header: \"X Bad\" is not an HTTP token"},
    {"{\"version\":1,\"settings\":{\"hsts\":\"yes\"}}", WEIR_EINVAL,
     "settings.hsts: must be a boolean, not a string"},
    {"{\"version\":1,\"settings\":{\"hsts_max_age\":-1}}", WEIR_EINVAL,
     "settings.hsts_max_age: -1 out of range 0..4294967295"},
    {"{\"version\":1,\"settings\":{\"use_proxy_protocol\":1}}", WEIR_EINVAL,
     "settings.use_proxy_protocol: must be a boolean, not an integer"},
    {"{\"version\":1,\"hosts\":{}}", WEIR_EINVAL, "hosts: must be an array, not an object"},
    {"{\"version\":1,\"hosts\":[{\"name\":\"A.example.com\"}]}", WEIR_EINVAL,
     "hosts[0].name: \"A.example.com\" must be lowercase"},
    {"{\"version\":1,\"hosts\":[{\"name\":\"a.com:80\"}]}", WEIR_EINVAL,
     "hosts[0].name: \"a.com:80\" is not a valid host name"},
    {"{\"version\":1,\"hosts\":[{\"name\":\"a..com\"}]}", WEIR_EINVAL,
     "hosts[0].name: \"a..com\" has an empty label"},
    {"{\"version\":1,\"hosts\":[{\"name\":\"a.b\"},{\"name\":\"c\"},{\"name\":\"a.b\"}]}",
     WEIR_EINVAL, "hosts[2].name: duplicate host \"a.b\""},
    {"{\"version\":1,\"hosts\":[{\"cert\":0}]}", WEIR_EINVAL,
     "hosts[0].cert: index 0 out of range"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"match\":\"exact\"}]}]}", WEIR_EINVAL,
     "hosts[0].routes[0].path: required key missing"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\"}]}]}", WEIR_EINVAL,
     "hosts[0].routes[0].match: required key missing"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"Prefix\"}]}]}",
     WEIR_EINVAL,
     "hosts[0].routes[0].match: unknown value \"Prefix\" (want \"exact\", \"prefix\", "
     "\"regex\")"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"x\",\"match\":\"exact\"}]}]}", WEIR_EINVAL,
     "hosts[0].routes[0].path: \"x\" must start with '/'"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"backend\":9}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].backend: index 9 out of range"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/a\\r\\nb\",\"match\":\"prefix\"}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].path: \"/a\\r\\nb\" contains CR or LF"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/a\\u0000b\",\"match\":\"prefix\"}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].path: contains a NUL character"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"upstream_head_max\":1023}}]}]}",
     WEIR_EINVAL,
     "hosts[0].routes[0].policy.upstream_head_max: 1023 is not between 1024 and 1048576"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"upstream_head_max\":1048577}}]}]}",
     WEIR_EINVAL, NULL},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"request_headers\":[{\"name\":\"X Bad\",\"value\":\"v\"}]}}]}]}",
     WEIR_EINVAL,
     "hosts[0].routes[0].policy.request_headers[0].name: \"X Bad\" is not an HTTP token"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"response_headers\":[{\"name\":\"X-A\",\"value\":\"v\\nInjected: 1\"}]}}]}]}",
     WEIR_EINVAL,
     "hosts[0].routes[0].policy.response_headers[0].value: \"v\\nInjected: 1\" "
     "contains CR or LF"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"redirect_code\":301,\"redirect_url\":\"https://x/\\r\\n\"}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.redirect_url: \"https://x/\\r\\n\" contains CR or LF"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"redirect_code\":304,\"redirect_url\":\"https://x/\"}}]}]}",
     WEIR_EINVAL,
     "hosts[0].routes[0].policy.redirect_code: 304 is not 0, 300, 301, 302, 303, 307 or 308"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"request_headers\":[{\"name\":\"X\",\"value\":\"$uri\",\"expand\":true}]}}]}]}",
     WEIR_EINVAL,
     "hosts[0].routes[0].policy.request_headers[0].value: variable \"$uri\" is not one weir "
     "expands"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"response_headers\":[{\"name\":\"X\",\"value\":\"5$\",\"expand\":true}]}}]}]}",
     WEIR_EINVAL,
     "hosts[0].routes[0].policy.response_headers[0].value: \"5$\": '$' names no variable"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"ext_auth\":{\"url\":\"http://a/\",\"proxy_set_headers\":"
     "[{\"name\":\"X\",\"value\":\"v\",\"expand\":false}]}}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.ext_auth.proxy_set_headers[0].expand: unknown key"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"return_code\":301}}]}]}",
     WEIR_EINVAL,
     "hosts[0].routes[0].policy.return_code: 301 is not 0 or 200..599 (redirect codes excluded)"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"return_body\":\"x\"}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.return_body: set without return_code"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"return_code\":204,\"return_body\":\"x\"}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.return_body: a 204 answer has no body"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"return_code\":200,\"return_body\":\"a\\u0001\"}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.return_body: \"a\\x01\" contains a control character"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"return_code\":403,\"redirect_code\":301,\"redirect_url\":\"/x\"}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.return_code: set together with redirect_code"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"add_headers\":[{\"name\":\"X-A\",\"value\":\"a\\nB: c\"}]}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.add_headers[0].value: \"a\\nB: c\" contains CR or LF"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"add_headers\":[{\"name\":\"X-A\",\"value\":\"a\",\"when\":1}]}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.add_headers[0].when: unknown key"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"hide_headers\":[\"Server\",\"\"]}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.hide_headers[1]: \"\" is not an HTTP token"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"mirror\":{\"url\":\"http://m/$remote_addr\"}}}]}]}",
     WEIR_EINVAL,
     "hosts[0].routes[0].policy.mirror.url: \"http://m/$remote_addr\" is not an http(s) URL "
     "with only $request_uri, $uri, $args, $host (none in its host)"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"mirror\":{\"host\":\"shadow\"}}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.mirror.host: is set without mirror.url or empty"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"mirror\":{\"url\":\"http://m/\",\"body\":true}}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.mirror.body: unknown key"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"ext_auth\":{\"url\":\"ftp://10.0.0.1/\"}}}]}]}",
     WEIR_EINVAL,
     "hosts[0].routes[0].policy.ext_auth.url: \"ftp://10.0.0.1/\" is not an http(s) URL"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"ext_auth\":{\"url\":\"http://10.0.0.1/\",\"keepalive\":\"x\"}}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.ext_auth.keepalive: unknown key"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"ext_auth\":{\"cache_key\":\"$request_body\"}}}]}]}",
     WEIR_EINVAL,
     "hosts[0].routes[0].policy.ext_auth.cache_key: \"$request_body\" is not a cache key template"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"ext_auth\":{\"cache_duration\":\"200 5x\"}}}]}]}",
     WEIR_EINVAL,
     "hosts[0].routes[0].policy.ext_auth.cache_duration: \"200 5x\" is not a list of [codes] time"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"ext_auth\":{\"signin\":\"https://a/?u=$remote_user\"}}}]}]}",
     WEIR_EINVAL,
     "hosts[0].routes[0].policy.ext_auth.signin: \"https://a/?u=$remote_user\" is not an http(s) "
     "URL with known variables"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"ext_auth\":{\"response_headers\":[\"X-A\",\"X B\"]}}}]}]}",
     WEIR_EINVAL,
     "hosts[0].routes[0].policy.ext_auth.response_headers[1]: \"X B\" is not an HTTP token"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"backend_protocol\":\"https\"}}]}]}",
     WEIR_EINVAL,
     "hosts[0].routes[0].policy.backend_protocol: unknown value \"https\" (want \"HTTP\", "
     "\"HTTPS\", \"FCGI\", \"GRPC\", \"GRPCS\", \"AUTO_HTTP\")"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"cookie\":{\"samesite\":\"lax\"}}}]}]}",
     WEIR_EINVAL,
     "hosts[0].routes[0].policy.cookie.samesite: unknown value \"lax\" (want \"None\", "
     "\"Lax\" or \"Strict\")"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"deny\":[\"1.2.3.4/\"]}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.deny[0]: bad CIDR \"1.2.3.4/\""},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/"
     "\",\"match\":\"prefix\",\"policy\":{\"cookie\":{\"path\":\"/; Domain=evil\"}}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.cookie.path: \"/; Domain=evil\" contains ';'"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"ssl_redirect\":1}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.ssl_redirect: must be a boolean, not an integer"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"canary\":{\"weight\":101}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].canary.weight: 101 out of range 0..100"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"canary\":{\"weight\":300,\"weight_total\":200}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].canary.weight: 300 out of range 0..200"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"canary\":{\"weight_total\":0}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].canary.weight_total: 0 out of range 1..4294967295"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"canary\":{\"affinity_behavior\":\"sticky-ish\"}}]}]}",
     WEIR_EINVAL, NULL},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"policy\":{\"proxy_redirect_from\":\"http://a/\"}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].policy.proxy_redirect_to: required with its pair"},
    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
     "\"canary\":{\"backend\":0}}]}]}",
     WEIR_EINVAL, "hosts[0].routes[0].canary.backend: index 0 out of range"},
    {"{\"version\":1,\"backends\":[{\"endpoints\":[{\"address\":\"10.0.0.1\",\"port\":0}]}]}",
     WEIR_EINVAL, "backends[0].endpoints[0].port: 0 out of range 1..65535"},
    {"{\"version\":1,\"backends\":[{\"endpoints\":[{\"address\":\"10.0.0.1\",\"port\":65536}]}]}",
     WEIR_EINVAL, "backends[0].endpoints[0].port: 65536 out of range 1..65535"},
    {"{\"version\":1,\"backends\":[{\"endpoints\":[{\"address\":\"web\",\"port\":80}]}]}",
     WEIR_EINVAL, "backends[0].endpoints[0].address: \"web\" is not an IP address"},
    {"{\"version\":1,\"backends\":[{\"endpoints\":[{\"address\":\"::1\"}]}]}", WEIR_EINVAL,
     "backends[0].endpoints[0].port: required key missing"},
    {"{\"version\":1,\"backends\":[{\"endpoints\":[{\"address\":\"::1\",\"port\":1,"
     "\"weight\":0}]}]}",
     WEIR_EINVAL, "backends[0].endpoints[0].weight: 0 out of range 1..4294967295"},
    {"{\"version\":1,\"backends\":[{\"name\":\"a\"},{\"name\":\"a\"}]}", WEIR_EINVAL,
     "backends[1].name: duplicate backend name \"a\""},
    {"{\"version\":1,\"backends\":[{\"external_name\":\"db.example.com\"}]}", WEIR_EINVAL,
     "backends[0].external_port: must be 1..65535 with external_name"},
    {"{\"version\":1,\"backends\":[{\"external_port\":80}]}", WEIR_EINVAL,
     "backends[0].external_port: set without external_name"},
    {"{\"version\":1,\"backends\":[{\"external_name\":\"10.0.0.1\",\"external_port\":80}]}",
     WEIR_EINVAL,
     "backends[0].external_name: \"10.0.0.1\" is an IP address: list it as an endpoint"},
    {"{\"version\":1,\"backends\":[{\"external_name\":\"db.example.com\",\"external_port\":80,"
     "\"endpoints\":[{\"address\":\"10.0.0.1\",\"port\":80}]}]}",
     WEIR_EINVAL, "backends[0].endpoints: must be empty with external_name"},
    {"{\"version\":1,\"backends\":[{\"external_name\":\"a b\",\"external_port\":80}]}", WEIR_EINVAL,
     "backends[0].external_name: \"a b\" is not a DNS name"},
    {"{\"version\":1,\"backends\":[{\"external_name\":\"db.example.com\",\"external_port\":65536}]"
     "}",
     WEIR_EINVAL, "backends[0].external_port: 65536 out of range 0..65535"},
    {"{\"version\":1,\"backends\":[3]}", WEIR_EINVAL,
     "backends[0]: must be an object, not an integer"},
    {"{\"version\":1,\"certs\":[{\"name\":\"x\",\"cert_pem\":\"c\"}]}", WEIR_EINVAL,
     "certs[0].key_pem: required key missing"},
    {"{\"version\":1,\"default_backend\":0}", WEIR_EINVAL, "default_backend: index 0 out of range"},
    {"{\"version\":1,\"default_cert\":-2}", WEIR_EINVAL, "default_cert: index -2 out of range"},
    {"{\"version\":1,\"backends\":[{}],\"passthrough\":[{\"host\":\"a.b\",\"backend\":-1}]}",
     WEIR_EINVAL, "passthrough[0].backend: index -1 out of range"},
    {"{\"version\":1,\"backends\":[{}],\"passthrough\":[{\"host\":\"a.b\",\"backend\":0},"
     "{\"host\":\"a.b\",\"backend\":0}]}",
     WEIR_EINVAL, "passthrough[1].host: duplicate host \"a.b\""},
};

static void test_refusals(void)
{
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		const struct refusal *r = &refusals[i];
		struct route_table *t = NULL;
		char err[256] = "";
		int rc = route_table_parse(r->json, strlen(r->json), &t, err, sizeof(err));
		CHECK_INT(rc, r->rc);
		CHECK(t == NULL);
		if (r->err)
			CHECK_STR(err, r->err);
		else
			CHECK(err[0] != '\0');
		if (rc != r->rc || (r->err && strcmp(err, r->err) != 0))
			fprintf(stderr, "  case %zu: %s\n", i, r->json);
	}
	/* The size cap is checked before anything is read. */
	struct route_table *t = NULL;
	char err[128];
	CHECK_INT(route_table_parse("{}", (size_t)ROUTE_TABLE_MAX_BYTES + 1, &t, err, sizeof(err)),
	          WEIR_ETOOBIG);
	CHECK(t == NULL);
}

/* A table with every kind of field set away from its default. */
static const char rich[] =
    "{\"version\":1,\"generation\":12345678901,"
    "\"settings\":{\"trusted_proxies\":[\"10.0.0.0/8\",\"2001:db8::/32\",\"192.168.1.7\"],"
    "\"max_header_bytes\":16384,\"header_timeout_ms\":5000,\"keepalive_timeout_ms\":1000,"
    "\"upstream_keepalive\":4,\"drain_window_ms\":2000,\"use_forwarded_headers\":true,"
    "\"compute_full_forwarded_for\":true,\"use_proxy_protocol\":true,"
    "\"forwarded_for_header\":\"CF-Connecting-IP\",\"proxy_real_ip_cidr\":[\"10.0.0.0/8\"],"
    "\"hsts\":false,\"hsts_max_age\":600,\"hsts_include_subdomains\":false,"
    "\"hsts_preload\":true,\"max_connections\":100,\"ssl_protocols\":\"TLSv1.3\","
    "\"ssl_ciphers\":\"ECDHE-RSA-AES256-GCM-SHA384\",\"block_cidrs\":[\"192.0.2.0/24\"],"
    "\"block_user_agents\":[\"BadBot\",\"~*crawl\"],\"block_referers\":[\"~spam\"],"
    "\"use_gzip\":true,\"gzip_level\":6,"
    "\"max_header_line\":8192,\"upstream_head_max\":2048,\"enable_brotli\":true,\"brotli_level\":0,"
    "\"brotli_min_length\":5,\"brotli_types\":\"text/css image/svg+xml\","
    "\"gzip_min_length\":0,\"gzip_types\":\"*\",\"server_tokens\":true,"
    "\"allow_backend_server_header\":true,\"http2_max_field_size\":16384,"
    "\"http2_max_header_size\":65536},"
    "\"backends\":[{\"name\":\"default/web:80\",\"endpoints\":["
    "{\"address\":\"10.0.0.5\",\"port\":8080,\"weight\":3,\"draining\":true},"
    "{\"address\":\"fd00::5\",\"port\":8081}]},{\"name\":\"default/canary:80\","
    "\"external_name\":\"canary.example.com.\",\"external_port\":8443}],"
    "\"certs\":[{\"name\":\"default/tls\",\"cert_pem\":\"-----BEGIN CERTIFICATE-----\\nAAA\\n"
    "-----END CERTIFICATE-----\\n\",\"key_pem\":\"-----BEGIN PRIVATE KEY-----\\nBBB\\n\"}],"
    "\"hosts\":[{\"name\":\"\",\"routes\":[{\"path\":\"/\",\"match\":\"prefix\",\"backend\":0}]},"
    "{\"name\":\"*.example.com\",\"cert\":0,\"ssl_ciphers\":\"ECDHE-ECDSA-AES128-GCM-SHA256\","
    "\"routes\":["
    "{\"path\":\"/user/([^/]+)/api\",\"match\":\"regex\",\"backend\":0,\"source\":\"ns/jh\","
    "\"policy\":{\"connect_timeout_ms\":1,\"read_timeout_ms\":2,\"send_timeout_ms\":3,"
    "\"next_upstream\":[\"error\",\"http_503\",\"non_idempotent\"],"
    "\"next_upstream_tries\":0,\"next_upstream_timeout_ms\":5000,"
    "\"body_limit\":0,\"upstream_head_max\":16384,\"backend_protocol\":\"HTTPS\","
    "\"ssl_redirect\":true,"
    "\"preserve_trailing_slash\":true,\"upstream_vhost\":\"internal\","
    "\"x_forwarded_prefix\":\"/jh\",\"rewrite_target\":\"/$1\",\"redirect_code\":308,"
    "\"redirect_url\":\"https://elsewhere/\",\"app_root\":\"/app\",\"affinity\":\"cookie\","
    "\"affinity_mode\":\"persistent\",\"cookie\":{\"name\":\"route\",\"path\":\"/u\","
    "\"max_age_s\":60,\"expires_s\":120,\"secure\":true,\"samesite\":\"Strict\","
    "\"domain\":\".example.com\",\"conditional_samesite_none\":true,"
    "\"change_on_failure\":true},"
    "\"hash_by\":\"$remote_addr\",\"hash_by_subset\":true,\"hash_by_subset_size\":4,\"balance\":"
    "\"ewma\",\"allow\":[\"127.0.0.0/8\"],"
    "\"deny\":[\"::1\"],\"limit_connections\":5,\"limit_rps\":10,\"cors\":{\"enabled\":true,"
    "\"allow_origin\":\"https://a\",\"allow_methods\":\"GET\",\"allow_headers\":\"X-A\","
    "\"expose_headers\":\"X-B\",\"allow_credentials\":false,\"max_age_s\":5},"
    "\"ws_idle_timeout_ms\":45000,\"ws_max_lifetime_ms\":600000,\"ws_ping_interval_ms\":20000,"
    "\"drain_window_ms\":1000,\"request_base\":true,\"origin_rewrite\":true,"
    "\"request_headers\":[{\"name\":\"X-Req\",\"value\":\"1\"},"
    "{\"name\":\"X-Tpl\",\"value\":\"${scheme}://$host$request_uri $http_x_a\",\"expand\":true}],"
    "\"response_headers\":[{\"name\":\"X-Resp\",\"value\":\"caf\\u00e9 \\\"q\\\" \\\\ /\"}],"
    "\"add_headers\":[{\"name\":\"X-Add\",\"value\":\"a $host\",\"expand\":true},"
    "{\"name\":\"X-Add-Always\",\"value\":\"b\",\"always\":true}],"
    "\"hide_headers\":[\"Server\",\"X-Powered-By\"],"
    "\"ext_auth\":{\"url\":\"https://10.0.0.9:4180/oauth2/auth?a=1\",\"method\":\"POST\","
    "\"signin\":\"https://login/start\",\"signin_redirect_param\":\"return_to\","
    "\"request_redirect\":\"/home\",\"always_set_cookie\":true,"
    "\"response_headers\":[\"X-Auth-User\",\"X-Auth-Email\"],"
    "\"cache_key\":\"$remote_user$http_authorization\",\"cache_duration\":\"200 1m\"},"
    "\"proxy_redirect_from\":\"http://in/\",\"proxy_redirect_to\":\"/out/\","
    "\"proxy_cookie_domain_from\":\"in\",\"proxy_cookie_domain_to\":\"out.example\","
    "\"proxy_cookie_path_from\":\"/in/\",\"proxy_cookie_path_to\":\"/\","
    "\"mirror\":{\"url\":\"http://10.0.0.8:81/m$request_uri\",\"host\":\"shadow\","
    "\"request_body\":false}},"
    "\"canary\":{\"backend\":1,\"by_header\":\"X-Canary\",\"by_header_value\":\"yes\","
    "\"by_cookie\":\"canary\",\"weight\":25,\"by_header_pattern\":\"^v[0-9]+$\","
    "\"weight_total\":400,\"affinity_behavior\":\"legacy\"}},"
    "{\"path\":\"/exact\",\"match\":\"exact\"},"
    "{\"path\":\"/ret\",\"match\":\"exact\","
    "\"policy\":{\"return_code\":403,\"return_body\":\"no\\r\\nway\\n\"}}]}],"
    "\"default_cert\":0,\"default_backend\":0,"
    "\"passthrough\":[{\"host\":\"gocd.example.com\",\"backend\":1,"
    "\"allow\":[\"10.0.0.0/8\"],\"deny\":[\"10.1.0.0/16\",\"::1\"]}]}";

static void test_round_trip(void)
{
	struct route_table *t = parse_ok(rich);
	if (!t)
		return;
	CHECK_INT(t->generation, 12345678901LL);
	CHECK_INT(t->settings.max_connections, 100);
	const struct route *r = &t->hosts[1].routes[0];
	CHECK_INT(r->match, ROUTE_MATCH_REGEX);
	CHECK_INT(r->policy->backend_protocol, ROUTE_PROTO_HTTPS);
	CHECK_INT(r->policy->affinity_mode, ROUTE_AFFINITY_PERSISTENT);
	CHECK_STR(r->policy->cookie.samesite, "Strict");
	CHECK_INT(r->policy->nallow, 1);
	CHECK_INT(r->policy->deny[0].prefix_len, 128);
	CHECK_STR(r->policy->response_headers[0].value, "caf\xc3\xa9 \"q\" \\ /");
	CHECK_INT(r->canary.weight, 25);
	CHECK_INT(r->canary.weight_total, 400);
	CHECK_STR(r->canary.by_header_pattern, "^v[0-9]+$");
	CHECK_INT(r->canary.affinity_behavior, ROUTE_CANARY_LEGACY);
	CHECK_STR(r->policy->cookie.domain, ".example.com");
	CHECK(r->policy->cookie.conditional_samesite_none && r->policy->cookie.change_on_failure);
	CHECK(r->policy->hash_by_subset);
	CHECK_INT(r->policy->hash_by_subset_size, 4);
	CHECK_STR(r->policy->proxy_redirect_from, "http://in/");
	CHECK_STR(r->policy->proxy_cookie_path_to, "/");
	CHECK_INT(t->hosts[0].routes[0].canary.weight_total, 100);
	CHECK_INT(t->hosts[0].routes[0].policy->hash_by_subset_size, 3);
	CHECK_INT(r->policy->nadd_headers, 2);
	CHECK(r->policy->add_headers[0].expand && !r->policy->add_headers[1].expand);
	CHECK(!r->policy->request_headers[0].expand && r->policy->request_headers[1].expand);
	CHECK_STR(r->policy->add_headers[0].name, "X-Add");
	CHECK(!r->policy->add_headers[0].always && r->policy->add_headers[1].always);
	CHECK_INT(t->hosts[1].routes[2].policy->return_code, 403);
	CHECK_STR(t->hosts[1].routes[2].policy->return_body, "no\r\nway\n");
	CHECK_INT(r->policy->return_code, 0);
	CHECK_STR(r->policy->ext_auth.url, "https://10.0.0.9:4180/oauth2/auth?a=1");
	CHECK_INT(r->policy->ext_auth.nresponse_headers, 2);
	CHECK_STR(r->policy->ext_auth.response_headers[1], "X-Auth-Email");
	CHECK(r->policy->ext_auth.always_set_cookie);
	CHECK(t->hosts[0].routes[0].policy->ext_auth.url == NULL);
	CHECK_STR(r->policy->mirror.url, "http://10.0.0.8:81/m$request_uri");
	CHECK_STR(r->policy->mirror.host, "shadow");
	CHECK(r->policy->mirror.no_request_body);
	CHECK(t->hosts[0].routes[0].policy->mirror.url == NULL &&
	      !t->hosts[0].routes[0].policy->mirror.no_request_body);
	CHECK_STR(t->certs[0].key_pem, "-----BEGIN PRIVATE KEY-----\nBBB\n");
	CHECK_INT(t->settings.ntrusted_proxies, 3);
	CHECK_INT(t->settings.trusted_proxies[2].prefix_len, 32);
	CHECK(t->settings.use_forwarded_headers && t->settings.compute_full_forwarded_for &&
	      t->settings.use_proxy_protocol);
	CHECK_STR(t->settings.forwarded_for_header, "CF-Connecting-IP");
	CHECK_INT(t->settings.nproxy_real_ip_cidr, 1);
	CHECK(!t->settings.hsts && !t->settings.hsts_include_subdomains &&
	      t->settings.hsts_preload);
	CHECK_INT(t->settings.hsts_max_age, 600);
	CHECK_INT(t->passthrough[0].nallow, 1);
	CHECK_INT(t->passthrough[0].ndeny, 2);
	CHECK_INT(t->passthrough[0].deny[1].prefix_len, 128);
	CHECK_STR(t->settings.ssl_protocols, "TLSv1.3");
	CHECK_STR(t->settings.ssl_ciphers, "ECDHE-RSA-AES256-GCM-SHA384");
	CHECK_INT(t->settings.nblock_cidrs, 1);
	CHECK_INT(t->settings.nblock_user_agents, 2);
	CHECK_STR(t->settings.block_user_agents[1], "~*crawl");
	CHECK_INT(t->settings.nblock_referers, 1);
	CHECK_STR(t->hosts[1].ssl_ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256");
	CHECK(t->hosts[0].ssl_ciphers == NULL);
	CHECK(t->settings.use_gzip);
	CHECK_INT(t->settings.gzip_level, 6);
	CHECK_INT(t->settings.max_header_line, 8192);
	CHECK_INT(t->settings.upstream_head_max, 2048);
	CHECK(t->settings.enable_brotli);
	CHECK_INT(t->settings.brotli_level, 0);
	CHECK_INT(t->settings.brotli_min_length, 5);
	CHECK_STR(t->settings.brotli_types, "text/css image/svg+xml");
	CHECK_INT(t->settings.gzip_min_length, 0);
	CHECK_STR(t->settings.gzip_types, "*");
	CHECK(t->settings.server_tokens && t->settings.allow_backend_server_header);
	CHECK_INT(t->settings.http2_max_field_size, 16384);
	CHECK_INT(t->settings.http2_max_header_size, 65536);
	CHECK_INT(t->hosts[1].routes[0].policy->upstream_head_max, 16384);
	CHECK_INT(t->hosts[0].routes[0].policy->upstream_head_max, 4096);
	CHECK_STR(t->backends[1].external_name, "canary.example.com.");
	CHECK_INT(t->backends[1].external_port, 8443);
	CHECK(t->backends[0].external_name == NULL && t->backends[0].external_port == 0);

	char *a = NULL, *b = NULL, *c = NULL;
	size_t alen = 0, blen = 0, clen = 0;
	CHECK_INT(route_table_serialize(t, &a, &alen), 0);
	CHECK(a && strlen(a) == alen);
	struct route_table *t2 = a ? parse_ok(a) : NULL;
	if (t2) {
		CHECK_INT(route_table_serialize(t2, &b, &blen), 0);
		CHECK_INT(alen, blen);
		CHECK(b && strcmp(a, b) == 0);
		struct route_table *t3 = parse_ok(b);
		if (t3) {
			CHECK_INT(route_table_serialize(t3, &c, &clen), 0);
			CHECK(c && strcmp(b, c) == 0);
		}
		route_table_free(t3);
		CHECK_STR(t2->hosts[1].routes[0].policy->rewrite_target, "/$1");
		CHECK_INT(t2->hosts[1].routes[0].policy->next_upstream,
		          ROUTE_NEXT_ERROR | ROUTE_NEXT_HTTP_503 | ROUTE_NEXT_NON_IDEMPOTENT);
		CHECK_INT(t2->hosts[1].routes[0].policy->next_upstream_tries, 0);
		CHECK_INT(t2->generation, 12345678901LL);
	}
	/* Members equal to their defaults are left out, the rest all written:
	 * the rich route sets every policy and canary member to a non-default
	 * value, so its serialized policy and canary equal the input's exactly,
	 * while the all-default route "/exact" gets neither object. */
	if (a) {
		json_object *in = json_tokener_parse(rich), *outj = json_tokener_parse(a);
		json_object *ri = NULL, *ro = NULL, *x = NULL;
		CHECK(in && outj);
		if (in && outj) {
			ri = json_object_array_get_idx(
			    json_object_object_get(
			        json_object_array_get_idx(json_object_object_get(in, "hosts"), 1),
			        "routes"),
			    0);
			json_object *routes = json_object_object_get(
			    json_object_array_get_idx(json_object_object_get(outj, "hosts"), 1),
			    "routes");
			ro = json_object_array_get_idx(routes, 0);
			/* the bare address comes back in CIDR form */
			json_object *deny =
			    json_object_object_get(json_object_object_get(ro, "policy"), "deny");
			CHECK_STR(json_object_get_string(json_object_array_get_idx(deny, 0)),
			          "::1/128");
			json_object_object_del(json_object_object_get(ri, "policy"), "deny");
			json_object_object_del(json_object_object_get(ro, "policy"), "deny");
			CHECK(json_object_equal(json_object_object_get(ri, "policy"),
			                        json_object_object_get(ro, "policy")));
			CHECK(json_object_equal(json_object_object_get(ri, "canary"),
			                        json_object_object_get(ro, "canary")));
			json_object *plain = json_object_array_get_idx(routes, 1);
			CHECK(plain && !json_object_object_get_ex(plain, "policy", &x) &&
			      !json_object_object_get_ex(plain, "canary", &x));
		}
		json_object_put(in);
		json_object_put(outj);
		CHECK(strstr(a, "\"upstream_vhost\"") != NULL);
		CHECK(strstr(a, "\"ws_idle_timeout_ms\":3600000") == NULL);
		CHECK(a[alen - 1] == '\n');
	}
	free(a);
	free(b);
	free(c);
	route_table_free(t2);
	route_table_free(t);

	/* A table built in memory (the controller's way) round-trips too. */
	struct route_table *m = route_table_new();
	char *x = NULL, *y = NULL;
	size_t xl, yl;
	CHECK_INT(route_table_serialize(m, &x, &xl), 0);
	struct route_table *m2 = x ? parse_ok(x) : NULL;
	if (m2) {
		CHECK_INT(route_table_serialize(m2, &y, &yl), 0);
		CHECK(y && strcmp(x, y) == 0);
	}
	free(x);
	free(y);
	route_table_free(m2);
	route_table_free(m);
}

static bool contains(const char *net, const char *ip)
{
	struct route_cidr c;
	uint8_t a[16];
	if (route_cidr_parse(net, &c) != 0)
		return false;
	if (inet_pton(AF_INET, ip, a) == 1)
		return route_cidr_contains(&c, 4, a);
	if (inet_pton(AF_INET6, ip, a) == 1)
		return route_cidr_contains(&c, 6, a);
	return false;
}

static void test_cidr(void)
{
	struct route_cidr c;
	char buf[64];
	CHECK_INT(route_cidr_parse("10.1.2.3/8", &c), 0);
	CHECK_INT(c.family, 4);
	CHECK_INT(c.prefix_len, 8);
	route_cidr_format(&c, buf, sizeof(buf));
	CHECK_STR(buf, "10.0.0.0/8");
	CHECK_INT(route_cidr_parse("2001:db8::1", &c), 0);
	route_cidr_format(&c, buf, sizeof(buf));
	CHECK_STR(buf, "2001:db8::1/128");
	CHECK_INT(route_cidr_parse("0.0.0.0/0", &c), 0);
	CHECK_INT(route_cidr_parse("1.2.3.4/33", &c), WEIR_EINVAL);
	CHECK_INT(route_cidr_parse("1.2.3/24", &c), WEIR_EINVAL);
	CHECK_INT(route_cidr_parse("1.2.3.4/-1", &c), WEIR_EINVAL);
	CHECK_INT(route_cidr_parse("1.2.3.4/ 8", &c), WEIR_EINVAL);
	CHECK_INT(route_cidr_parse("::/129", &c), WEIR_EINVAL);
	CHECK_INT(route_cidr_parse("", &c), WEIR_EINVAL);

	CHECK(contains("10.0.0.0/8", "10.255.1.2"));
	CHECK(!contains("10.0.0.0/8", "11.0.0.1"));
	CHECK(contains("192.168.1.0/25", "192.168.1.127"));
	CHECK(!contains("192.168.1.0/25", "192.168.1.128"));
	CHECK(contains("0.0.0.0/0", "8.8.8.8"));
	CHECK(contains("127.0.0.1", "127.0.0.1"));
	CHECK(!contains("127.0.0.1", "127.0.0.2"));
	CHECK(contains("2001:db8::/32", "2001:db8:1::5"));
	CHECK(!contains("2001:db8::/32", "2001:db9::5"));
	CHECK(contains("fe80::/10", "febf::1"));
	CHECK(!contains("fe80::/10", "fec0::1"));
	CHECK(contains("::1", "::1"));
	/* IPv4-mapped IPv6 peers match IPv4 networks, and IPv4 peers match a
	 * mapped IPv6 network. */
	CHECK(contains("10.0.0.0/8", "::ffff:10.9.8.7"));
	CHECK(!contains("10.0.0.0/8", "::ffff:11.9.8.7"));
	CHECK(!contains("10.0.0.0/8", "::10.9.8.7"));
	CHECK(contains("::ffff:10.0.0.0/104", "10.1.1.1"));
	CHECK(!contains("2001:db8::/32", "10.1.1.1"));
	CHECK(!contains("10.0.0.0/8", "2001:db8::1"));
}

/* ------------------------------------------------------------ fixtures */

/* Whole file into a malloc'd NUL-terminated buffer, or NULL. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = malloc(1 << 20);
	size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	if (buf)
		buf[n] = '\0';
	*len = n;
	return buf;
}

/* tests/fixtures/tables: every good-*.json parses and round-trips byte for
 * byte; every bad-*.json (but bad-proxy-*, refused only by the proxy) is
 * refused with an error line starting with the text of its .err file. */
static void test_fixtures(void)
{
	const char *dir = "tests/fixtures/tables";
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	if (!d)
		return;
	int ngood = 0, nbad = 0;
	for (struct dirent *e; (e = readdir(d));) {
		size_t nl = strlen(e->d_name);
		if (nl < 6 || strcmp(e->d_name + nl - 5, ".json") != 0)
			continue;
		bool good = strncmp(e->d_name, "good-", 5) == 0;
		if (!good && (strncmp(e->d_name, "bad-", 4) != 0 ||
		              strncmp(e->d_name, "bad-proxy-", 10) == 0))
			continue;
		char path[512], err[512] = "";
		size_t len, elen;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		char *json = slurp(path, &len);
		CHECK(json != NULL);
		if (!json)
			continue;
		struct route_table *t = NULL;
		int rc = route_table_parse(json, len, &t, err, sizeof(err));
		if (good) {
			ngood++;
			CHECK_INT(rc, 0);
			if (rc != 0)
				fprintf(stderr, "  %s: %s\n", e->d_name, err);
			char *a = NULL, *b = NULL;
			size_t al, bl;
			struct route_table *t2 = NULL;
			if (t && route_table_serialize(t, &a, &al) == 0 &&
			    route_table_parse(a, al, &t2, err, sizeof(err)) == 0 &&
			    route_table_serialize(t2, &b, &bl) == 0)
				CHECK(al == bl && memcmp(a, b, al) == 0);
			else
				CHECK(!"round trip");
			free(a);
			free(b);
			route_table_free(t2);
		} else {
			nbad++;
			CHECK(rc != 0);
			snprintf(path + strlen(path) - 5, 6, ".err");
			char *want = slurp(path, &elen);
			CHECK(want != NULL);
			if (want) {
				want[strcspn(want, "\n")] = '\0';
				CHECK(strncmp(err, want, strlen(want)) == 0);
				if (strncmp(err, want, strlen(want)) != 0)
					fprintf(stderr, "  %s: got \"%s\", want \"%s\"\n",
					        e->d_name, err, want);
			}
			free(want);
		}
		route_table_free(t);
		free(json);
	}
	closedir(d);
	CHECK(ngood >= 2);
	CHECK(nbad >= 10);
}

/* policy.auth: read, defaults, refusals, and the writer's round trip. */
static void test_auth(void)
{
	static const char json[] =
	    "{\"version\":1,\"hosts\":[{\"name\":\"a\",\"routes\":[{\"path\":\"/\","
	    "\"match\":\"prefix\",\"policy\":{\"limit_rps\":1,\"auth\":{\"type\":\"basic\","
	    "\"realm\":\"Authentication Required - foo\",\"users\":["
	    "{\"name\":\"alice\",\"hash\":\"$apr1$7Y9EPK6s$.OpmsreXWRiQLkvTNuLjA0\"},"
	    "{\"name\":\"bob\",\"hash\":\"{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg=\"}]},"
	    "\"cors\":{\"enabled\":true}}},{\"path\":\"/open\",\"match\":\"exact\"}]}]}";
	struct route_table *t = parse_ok(json);
	if (!t)
		return;
	const struct route_auth *a = &t->hosts[0].routes[0].policy->auth;
	CHECK_INT(a->type, ROUTE_AUTH_BASIC);
	CHECK_STR(a->realm, "Authentication Required - foo");
	CHECK_INT(a->nusers, 2);
	CHECK_STR(a->users[1].name, "bob");
	CHECK_STR(a->users[0].hash, "$apr1$7Y9EPK6s$.OpmsreXWRiQLkvTNuLjA0");
	const struct route_auth *open = &t->hosts[0].routes[1].policy->auth;
	CHECK_INT(open->type, ROUTE_AUTH_NONE);
	CHECK(open->realm == NULL);
	CHECK_INT(open->nusers, 0);
	char *out = NULL, *again = NULL;
	size_t len = 0, len2 = 0;
	CHECK_INT(route_table_serialize(t, &out, &len), 0);
	/* in document order, between limit_rps and cors; nothing for /open */
	CHECK(out &&
	      strstr(out, "\"limit_rps\":1,\"auth\":{\"type\":\"basic\",\"realm\":"
	                  "\"Authentication Required - foo\",\"users\":[{\"name\":\"alice\","));
	CHECK(out && strstr(out, "\"path\":\"/open\",\"match\":\"exact\",\"backend\":-1,"
	                         "\"source\":\"\"}"));
	struct route_table *t2 = out ? parse_ok(out) : NULL;
	if (t2) {
		CHECK_INT(route_table_serialize(t2, &again, &len2), 0);
		CHECK_INT(len2, len);
		CHECK(again && strcmp(out, again) == 0);
	}
	free(out);
	free(again);
	route_table_free(t2);
	route_table_free(t);

	static const struct {
		const char *policy;
		const char *err;
	} bad[] = {
	    {"{\"auth\":{\"type\":\"digest\"}}",
	     "hosts[0].routes[0].policy.auth.type: unknown value \"digest\" (want \"none\", "
	     "\"basic\")"},
	    {"{\"auth\":{\"type\":\"basic\",\"users\":[{\"name\":\"a\",\"hash\":\"secret\"}]}}",
	     "hosts[0].routes[0].policy.auth.users[0].hash: password hash format weir cannot "
	     "check (it checks bcrypt $2y$/$2a$/$2b$, apr1, {SHA}, and crypt DES, $1$, $5$, $6$)"},
	    {"{\"auth\":{\"users\":[{\"name\":\"a\",\"hash\":"
	     "\"$2y$13$V3xn4kR7s6R0tvL0ko6DOuIlV08jNmoWXavDrHv/LBwiFmDe5RaMm\"}]}}",
	     "hosts[0].routes[0].policy.auth.users[0].hash: bcrypt cost above 12 (each check would "
	     "stall a proxy worker)"},
	    {"{\"auth\":{\"users\":[{\"name\":\"a:b\",\"hash\":\"h.w.pfYUgbGFQ\"}]}}",
	     "hosts[0].routes[0].policy.auth.users[0].name: empty or holds ':'"},
	    {"{\"auth\":{\"users\":[{\"name\":\"\",\"hash\":\"h.w.pfYUgbGFQ\"}]}}",
	     "hosts[0].routes[0].policy.auth.users[0].name: empty or holds ':'"},
	    {"{\"auth\":{\"users\":[{\"name\":\"a\"}]}}",
	     "hosts[0].routes[0].policy.auth.users[0].hash: required key missing"},
	    {"{\"auth\":{\"realm\":\"a\\\"b\"}}",
	     "hosts[0].routes[0].policy.auth.realm: contains '\"' or a backslash"},
	    {"{\"auth\":{\"realm\":\"a\\nb\"}}",
	     "hosts[0].routes[0].policy.auth.realm: \"a\\nb\" contains CR or LF"},
	    {"{\"auth\":{\"tpye\":\"basic\"}}", "hosts[0].routes[0].policy.auth.tpye: unknown key"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char doc[512], err[256] = "";
		struct route_table *bt = NULL;
		snprintf(doc, sizeof(doc),
		         "{\"version\":1,\"hosts\":[{\"name\":\"a\",\"routes\":[{\"path\":\"/\","
		         "\"match\":\"prefix\",\"policy\":%s}]}]}",
		         bad[i].policy);
		CHECK_INT(route_table_parse(doc, strlen(doc), &bt, err, sizeof(err)), WEIR_EINVAL);
		CHECK(bt == NULL);
		CHECK_STR(err, bad[i].err);
	}
}

/* hosts[].client_auth and cas[]: read, defaults, refusals, round trip. */
static void test_client_auth(void)
{
	static const char json[] =
	    "{\"version\":1,\"cas\":[{\"name\":\"ns/ca\",\"ca_pem\":\"-----BEGIN CERTIFICATE-----"
	    "\\nx\\n-----END CERTIFICATE-----\\n\"}],\"hosts\":[{\"name\":\"a\",\"client_auth\":{"
	    "\"ca\":0,\"verify\":\"optional_no_ca\",\"verify_depth\":3,\"error_page\":"
	    "\"https://e.example/x\",\"pass_certificate\":true,\"match_cn\":\"CN=a.*\"},"
	    "\"routes\":[]},{\"name\":\"b\",\"client_auth\":{\"ca\":0}},{\"name\":\"c\"}]}";
	struct route_table *t = parse_ok(json);
	if (!t)
		return;
	CHECK_INT(t->ncas, 1);
	CHECK_STR(t->cas[0].name, "ns/ca");
	CHECK(t->cas[0].crl_pem == NULL);
	const struct route_client_auth *a = &t->hosts[0].client_auth;
	CHECK_INT(a->ca, 0);
	CHECK_INT(a->verify, ROUTE_VERIFY_OPTIONAL_NO_CA);
	CHECK_INT(a->verify_depth, 3);
	CHECK_STR(a->error_page, "https://e.example/x");
	CHECK(a->pass_certificate);
	CHECK_STR(a->match_cn, "CN=a.*");
	/* defaults: verify on, depth 1; no client_auth: ca -1 */
	CHECK_INT(t->hosts[1].client_auth.verify, ROUTE_VERIFY_ON);
	CHECK_INT(t->hosts[1].client_auth.verify_depth, 1);
	CHECK(t->hosts[1].client_auth.error_page == NULL &&
	      !t->hosts[1].client_auth.pass_certificate);
	CHECK_INT(t->hosts[2].client_auth.ca, -1);
	char *out = NULL, *again = NULL;
	size_t len = 0, len2 = 0;
	CHECK_INT(route_table_serialize(t, &out, &len), 0);
	CHECK(out &&
	      strstr(out, "\"client_auth\":{\"ca\":0,\"verify\":\"on\",\"verify_depth\":1}"));
	CHECK(out && strstr(out, "\"cas\"") && strstr(out, "\"name\":\"ns/ca\",\"ca_pem\":"));
	struct route_table *t2 = out ? parse_ok(out) : NULL;
	if (t2) {
		CHECK_INT(route_table_serialize(t2, &again, &len2), 0);
		CHECK_INT(len2, len);
		CHECK(again && strcmp(out, again) == 0);
	}
	free(out);
	free(again);
	route_table_free(t2);
	route_table_free(t);

	static const struct {
		const char *client_auth;
		const char *err;
	} bad[] = {
	    {"{\"ca\":1}", "hosts[0].client_auth.ca: index 1 out of range"},
	    {"{\"ca\":0,\"verify\":\"maybe\"}",
	     "hosts[0].client_auth.verify: unknown value \"maybe\" (want \"off\", \"on\", "
	     "\"optional\", \"optional_no_ca\")"},
	    {"{\"ca\":0,\"verify_depth\":0}",
	     "hosts[0].client_auth.verify_depth: 0 out of range 1..100"},
	    {"{\"ca\":0,\"match_cn\":\"alice\"}",
	     "hosts[0].client_auth.match_cn: does not start with \"CN=\""},
	    {"{\"ca\":0,\"error_page\":\"no url\"}", NULL},
	    {"{\"ca\":0,\"pass\":true}", "hosts[0].client_auth.pass: unknown key"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char doc[512], err[256] = "";
		struct route_table *bt = NULL;
		snprintf(doc, sizeof(doc),
		         "{\"version\":1,\"cas\":[{\"ca_pem\":\"x\"}],\"hosts\":[{\"name\":\"a\","
		         "\"client_auth\":%s}]}",
		         bad[i].client_auth);
		CHECK_INT(route_table_parse(doc, strlen(doc), &bt, err, sizeof(err)), WEIR_EINVAL);
		CHECK(bt == NULL);
		if (bad[i].err)
			CHECK_STR(err, bad[i].err);
		else
			CHECK(strncmp(err, "hosts[0].client_auth.error_page: ", 33) == 0);
	}
	char err[256] = "";
	struct route_table *bt = NULL;
	static const char nopem[] = "{\"version\":1,\"cas\":[{\"name\":\"x\"}]}";
	CHECK_INT(route_table_parse(nopem, strlen(nopem), &bt, err, sizeof(err)), WEIR_EINVAL);
	CHECK_STR(err, "cas[0].ca_pem: required key missing");
}

static void test_backend_tls(void)
{
	static const char json[] =
	    "{\"version\":1,\"backend_tls\":[{\"name\":\"ns/ca\",\"verify\":true,"
	    "\"verify_depth\":2,\"protocols\":\"TLSv1.3\",\"ciphers\":\"HIGH:!aNULL\","
	    "\"ca_pem\":\"-----BEGIN CERTIFICATE-----\\nAAA\\n-----END CERTIFICATE-----\\n\"},"
	    "{}],"
	    "\"hosts\":[{\"name\":\"a\",\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
	    "\"policy\":{\"backend_protocol\":\"HTTPS\",\"backend_tls\":{\"profile\":0,"
	    "\"name\":\"backend.internal\",\"server_name\":true}}},"
	    "{\"path\":\"/plain\",\"match\":\"exact\"}]}]}";
	struct route_table *t = parse_ok(json);
	if (!t)
		return;
	CHECK_INT(t->nbackend_tls, 2);
	const struct route_backend_tls_profile *b = &t->backend_tls[0];
	CHECK_STR(b->name, "ns/ca");
	CHECK(b->verify);
	CHECK_INT(b->verify_depth, 2);
	CHECK_STR(b->protocols, "TLSv1.3");
	CHECK_STR(b->ciphers, "HIGH:!aNULL");
	CHECK(b->cert_pem == NULL && b->key_pem == NULL);
	/* an empty entry takes the defaults */
	CHECK_STR(t->backend_tls[1].name, "");
	CHECK(!t->backend_tls[1].verify);
	CHECK_INT(t->backend_tls[1].verify_depth, 1);
	CHECK(t->backend_tls[1].protocols == NULL && t->backend_tls[1].ca_pem == NULL);
	const struct route_backend_tls *bt = &t->hosts[0].routes[0].policy->backend_tls;
	CHECK_INT(t->hosts[0].routes[0].backend_tls, 0);
	CHECK_STR(bt->name, "backend.internal");
	CHECK(bt->server_name);
	const struct route_backend_tls *plain = &t->hosts[0].routes[1].policy->backend_tls;
	CHECK_INT(t->hosts[0].routes[1].backend_tls, -1);
	CHECK(plain->name == NULL && !plain->server_name);

	char *out = NULL, *again = NULL;
	size_t len = 0, len2 = 0;
	CHECK_INT(route_table_serialize(t, &out, &len), 0);
	CHECK(out && strstr(out, "\"backend_tls\":{\"profile\":0,\"name\":\"backend.internal\","
	                         "\"server_name\":true}"));
	CHECK(out && strstr(out, "{\"name\":\"\"}"));
	struct route_table *t2 = out ? parse_ok(out) : NULL;
	if (t2) {
		CHECK_INT(route_table_serialize(t2, &again, &len2), 0);
		CHECK(again && strcmp(out, again) == 0);
	}
	free(out);
	free(again);
	route_table_free(t2);
	route_table_free(t);

	/* A table without profiles writes no backend_tls key at all. */
	t = parse_ok("{\"version\":1}");
	if (t) {
		CHECK_INT(route_table_serialize(t, &out, &len), 0);
		CHECK(out && !strstr(out, "backend_tls"));
		free(out);
		route_table_free(t);
	}

	static const struct {
		const char *doc;
		const char *err;
	} bad[] = {
	    {"{\"version\":1,\"backend_tls\":[{\"verify\":true}]}",
	     "backend_tls[0].ca_pem: required when verify is true"},
	    {"{\"version\":1,\"backend_tls\":[{\"cert_pem\":\"x\"}]}",
	     "backend_tls[0].key_pem: cert_pem and key_pem come together"},
	    {"{\"version\":1,\"backend_tls\":[{\"verify_depth\":101}]}",
	     "backend_tls[0].verify_depth: 101 is above 100"},
	    {"{\"version\":1,\"backend_tls\":[{\"protocols\":\"TLSv1.2 SSLv3\"}]}",
	     "backend_tls[0].protocols: \"TLSv1.2 SSLv3\": a word is not TLSv1, TLSv1.1, TLSv1.2 "
	     "or TLSv1.3"},
	    {"{\"version\":1,\"backend_tls\":[{\"protocols\":\" \"}]}",
	     "backend_tls[0].protocols: names no protocol"},
	    {"{\"version\":1,\"backend_tls\":[{\"ciphers\":\"HIGH;x\"}]}",
	     "backend_tls[0].ciphers: \"HIGH;x\": empty or holds a character other than letters, "
	     "digits and +:_-!"},
	    {"{\"version\":1,\"backend_tls\":[{\"verfy\":true}]}",
	     "backend_tls[0].verfy: unknown key"},
	    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
	     "\"policy\":{\"backend_tls\":{\"profile\":0}}}]}]}",
	     "hosts[0].routes[0].policy.backend_tls.profile: index 0 out of range"},
	    {"{\"version\":1,\"hosts\":[{\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
	     "\"policy\":{\"backend_tls\":{\"name\":\"*.a.b\"}}}]}]}",
	     "hosts[0].routes[0].policy.backend_tls.name: \"*.a.b\" must be an exact host name, "
	     "not a wildcard"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";
		struct route_table *bt2 = NULL;
		CHECK_INT(route_table_parse(bad[i].doc, strlen(bad[i].doc), &bt2, err, sizeof(err)),
		          WEIR_EINVAL);
		CHECK(bt2 == NULL);
		CHECK_STR(err, bad[i].err);
	}
}

/* A version 2 index: its id arrays are read by a scanner, the rest by the
 * parser; what the scanner does not take is read (and refused) by the
 * parser alone, with the same errors. */
#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static int parse_index(const char *text, struct route_table **t, struct route_index **ix, char *err,
                       size_t errlen)
{
	*t = NULL;
	*ix = NULL;
	return route_table_parse_any(text, strlen(text), t, ix, err, errlen);
}

static void check_index_ab(const char *text)
{
	struct route_table *t;
	struct route_index *ix;
	char err[256] = "";
	int rc = parse_index(text, &t, &ix, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "index: %s\n", err);
	CHECK_INT(rc, 0);
	if (rc != 0)
		return;
	CHECK(ix != NULL);
	CHECK_INT(t->version, 2);
	CHECK_INT(t->generation, 7);
	CHECK_INT(ix->nhosts, 2);
	CHECK(ix->nhosts == 2 && strcmp(ix->hosts[0], ID_A) == 0 &&
	      strcmp(ix->hosts[1], ID_B) == 0);
	CHECK_INT(ix->nbackends, 2);
	CHECK(ix->nbackends == 2 && strcmp(ix->backends[0], ID_B) == 0 &&
	      ix->backends[1][0] == '\0');
	CHECK_INT(t->nbackends, 2);
	CHECK_INT(ix->ncerts, 1);
	CHECK_INT(t->ncerts, 1);
	CHECK_INT(t->default_backend, 0);
	CHECK_INT(t->settings.max_header_bytes, 1000);
	route_index_free(ix);
	route_table_free(t);
}

static int parse_listed(const char *text, struct route_table **t, struct route_index **ix,
                        char *err, size_t errlen);

/* Refused with want in the message (lists: parsed with the stub reader of
 * test_index_lists). */
static void check_refused(const char *text, bool lists, const char *want)
{
	struct route_table *t;
	struct route_index *ix;
	char err[256] = "";
	int rc = lists ? parse_listed(text, &t, &ix, err, sizeof(err))
	               : parse_index(text, &t, &ix, err, sizeof(err));
	CHECK(rc != 0);
	if (!strstr(err, want))
		fprintf(stderr, "index: got \"%s\", want \"%s\"\n", err, want);
	CHECK(strstr(err, want) != NULL);
	CHECK(t == NULL && ix == NULL);
}

static void check_index_refused(const char *text, const char *want)
{
	check_refused(text, false, want);
}

static void check_listed_refused(const char *text, const char *want)
{
	check_refused(text, true, want);
}

static void test_index(void)
{
	/* as the publisher writes it: one id a line */
	check_index_ab("{\n\"version\": 2,\n\"generation\": 7,\n"
	               "\"settings\": {\"max_header_bytes\": 1000},\n"
	               "\"hosts\": [\n  \"" ID_A "\",\n  \"" ID_B "\"\n],\n"
	               "\"backends\": [\n  \"" ID_B "\",\n  \"\"\n],\n"
	               "\"certs\": [\n  \"" ID_A "\"\n],\n"
	               "\"default_backend\": 0\n}\n");
	/* on one line, the version last, a string holding "hosts" elsewhere */
	check_index_ab("{\"settings\":{\"max_header_bytes\":1000,\"trusted_proxies\":[]},"
	               "\"certs\":[\"" ID_A "\"],\"backends\":[\"" ID_B "\",\"\"],"
	               "\"hosts\":[\"" ID_A "\" , \"" ID_B "\"],\"generation\":7,"
	               "\"default_backend\":0,\"passthrough\":[],\"version\":2}");
	/* an escaped key: the parser reads it all, to the same result */
	check_index_ab(
	    "{\"version\": 2, \"generation\": 7, \"settings\": {\"max_header_bytes\": 1000},"
	    "\"ho\\u0073ts\": [\"" ID_A "\", \"" ID_B "\"],"
	    "\"backends\": [\"" ID_B "\", \"\"], \"certs\": [\"" ID_A "\"],"
	    "\"default_backend\": 0}");
	/* what the scanner does not take, the parser refuses with its path */
	check_index_refused("{\"version\": 2, \"hosts\": [\"" ID_A "\", \"" ID_A "B\"]}",
	                    "hosts[1]: not a shard id");
	check_index_refused("{\"version\": 2, \"hosts\": [\"\"]}", "hosts[0]: not a shard id");
	check_index_refused("{\"version\": 2, \"certs\": [\"" ID_A "\", 5]}",
	                    "certs[1]: must be a shard id string");
	check_index_refused("{\"version\": 2, \"hosts\": [\"" ID_A "\",]}", "json:");
	check_index_refused("{\"version\": 2, \"backends\": [\"\"], \"default_backend\": 0}",
	                    "default_backend");
	check_index_refused("{\"version\": 2, \"certs\": [\"" ID_A "\"], \"default_cert\": 1}",
	                    "default_cert");
	/* ids in a version 1 table are not hosts */
	check_index_refused("{\"version\": 1, \"hosts\": [\"" ID_A "\"]}", "hosts[0]");
	check_index_refused("{\"version\": 3, \"hosts\": [\"" ID_A "\"]}", "unsupported version 3");
	/* an error after the arrays is reported on its line of the file */
	check_index_refused("{\n\"version\": 2,\n\"hosts\": [\n\"" ID_A "\",\n\"" ID_B "\"\n],\n"
	                    "\"passthrough\": [,]\n}\n",
	                    "line 7");
}

/* Id lists: a stub reader serves list shards by id ("L1".."L4" padded to
 * an id), as text or as ids. */
#define ID_L1 "1111111111111111111111111111111111111111111111111111111111111111"
#define ID_L2 "2222222222222222222222222222222222222222222222222222222222222222"
#define ID_L3 "3333333333333333333333333333333333333333333333333333333333333333"
#define ID_L4 "4444444444444444444444444444444444444444444444444444444444444444"

static int stub_reads;

static int stub_list(void *arg, int kind, const char *id, char **text, size_t *len,
                     char *const **ids, size_t *n, char *err, size_t errlen)
{
	static char *borrowed[] = {ID_B, ""};
	const char *body = NULL;
	stub_reads++;
	(void)arg;
	if (strcmp(id, ID_L1) == 0)
		body = "[\n  \"" ID_A "\",\n  \"" ID_B "\"\n]\n";
	else if (strcmp(id, ID_L2) == 0 && kind == 1) {
		*ids = borrowed;
		*n = 2;
		return 0;
	} else if (strcmp(id, ID_L3) == 0)
		body = "[\"" ID_A "\", \"\"]";
	else if (strcmp(id, ID_L4) == 0)
		body = "[]";
	if (!body) {
		snprintf(err, errlen, "shards/%s.json: No such file or directory", id);
		return WEIR_EIO;
	}
	*text = strdup(body);
	*len = strlen(body);
	return 0;
}

static int parse_listed(const char *text, struct route_table **t, struct route_index **ix,
                        char *err, size_t errlen)
{
	struct route_list_reader r = {stub_list, NULL};
	*t = NULL;
	*ix = NULL;
	return route_table_parse_index(text, strlen(text), &r, t, ix, err, errlen);
}

static void test_index_lists(void)
{
	struct route_table *t;
	struct route_index *ix;
	char err[256] = "";
	/* hosts and backends through lists (text, then borrowed ids), certs
	 * inline: the same as check_index_ab's index */
	const char *listed = "{\n\"version\": 2,\n\"generation\": 7,\n"
	                     "\"settings\": {\"max_header_bytes\": 1000},\n"
	                     "\"host_lists\": [\n  \"" ID_L1 "\"\n],\n"
	                     "\"backend_lists\": [\n  \"" ID_L2 "\"\n],\n"
	                     "\"certs\": [\n  \"" ID_A "\"\n],\n"
	                     "\"default_backend\": 0\n}\n";
	stub_reads = 0;
	int rc = parse_listed(listed, &t, &ix, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "index: %s\n", err);
	CHECK_INT(rc, 0);
	CHECK_INT(stub_reads, 2);
	if (rc == 0) {
		CHECK(ix->nhosts == 2 && strcmp(ix->hosts[0], ID_A) == 0 &&
		      strcmp(ix->hosts[1], ID_B) == 0);
		CHECK(ix->nbackends == 2 && strcmp(ix->backends[0], ID_B) == 0 &&
		      ix->backends[1][0] == '\0');
		CHECK_INT(t->nbackends, 2);
		CHECK_INT(ix->ncerts, 1);
		CHECK_INT(ix->nlists[0], 1);
		CHECK_INT(ix->nlists[1], 1);
		CHECK_INT(ix->nlists[2], 0);
		CHECK(ix->nlists[0] == 1 && strcmp(ix->lists[0][0].id, ID_L1) == 0 &&
		      ix->lists[0][0].start == 0 && ix->lists[0][0].n == 2);
		/* written back the same way */
		char *out = NULL;
		size_t len = 0;
		CHECK_INT(route_index_serialize(t, ix, &out, &len), 0);
		CHECK(out && strstr(out, "\"host_lists\": [\n    \"" ID_L1 "\"\n  ]") != NULL);
		CHECK(out && strstr(out, "\"hosts\"") == NULL);
		free(out);
		route_index_free(ix);
		route_table_free(t);
	}
	/* two lists of one kind follow each other; holes where allowed */
	rc = parse_listed("{\"version\": 2, \"backend_lists\": [\"" ID_L1 "\", \"" ID_L3 "\"]}", &t,
	                  &ix, err, sizeof(err));
	CHECK_INT(rc, 0);
	if (rc == 0) {
		CHECK_INT(ix->nbackends, 4);
		CHECK(ix->nbackends == 4 && strcmp(ix->backends[2], ID_A) == 0 &&
		      ix->backends[3][0] == '\0');
		CHECK(ix->nlists[1] == 2 && ix->lists[1][1].start == 2 && ix->lists[1][1].n == 2);
		route_index_free(ix);
		route_table_free(t);
	}
	/* a list's hole is a hole of the index: refused where one is */
	check_listed_refused("{\"version\": 2, \"backend_lists\": [\"" ID_L3 "\"], "
	                     "\"default_backend\": 1}",
	                     "default_backend");
	check_listed_refused("{\"version\": 2, \"host_lists\": [\"" ID_L3 "\"]}",
	                     "host_lists[0]: shards/" ID_L3 ".json: not a non-empty array");
	check_listed_refused("{\"version\": 2, \"cert_lists\": [\"" ID_L4 "\"]}",
	                     "cert_lists[0]: shards/" ID_L4 ".json: not a non-empty array");
	check_listed_refused("{\"version\": 2, \"host_lists\": [\"" ID_A "\"]}",
	                     "host_lists[0]: shards/" ID_A ".json: No such file");
	check_listed_refused("{\"version\": 2, \"hosts\": [\"" ID_A "\"], "
	                     "\"host_lists\": [\"" ID_L1 "\"]}",
	                     "host_lists: given with a non-empty \"hosts\"");
	check_listed_refused("{\"version\": 2, \"host_lists\": [\"L1\"]}",
	                     "host_lists: must be an array of shard ids");
	check_listed_refused("{\"version\": 1, \"host_lists\": [\"" ID_L1 "\"]}",
	                     "host_lists: only an index");
	/* without a reader */
	check_index_refused("{\"version\": 2, \"host_lists\": [\"" ID_L1 "\"]}",
	                    "host_lists: an index naming id lists is read with its shards");
	/* the list text as the publisher writes it parses back */
	char *ids[] = {ID_A, "", ID_B}, *text = NULL;
	size_t len = 0;
	CHECK_INT(route_id_list_serialize(ids, 3, &text, &len), 0);
	CHECK_STR(text, "[\n  \"" ID_A "\",\n  \"\",\n  \"" ID_B "\"\n]\n");
	CHECK_INT(len, strlen(text));
	free(text);
}

/* Shard ids are the SHA-256 of the bytes, in lowercase hex (FIPS 180-2
 * test vectors), from threads at once too. */
static void *shard_ids(void *arg)
{
	char id[ROUTE_SHARD_ID_LEN + 1];
	for (int i = 0; i < 1000; i++) {
		route_shard_id("abc", 3, id);
		if (strcmp(id,
		           "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") != 0)
			*(int *)arg = 1;
	}
	return NULL;
}

static void test_shard_id(void)
{
	char id[ROUTE_SHARD_ID_LEN + 1];
	route_shard_id("", 0, id);
	CHECK_STR(id, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	int bad[4] = {0};
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		CHECK_INT(pthread_create(&t[i], NULL, shard_ids, &bad[i]), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(bad[i], 0);
	}
}

int main(void)
{
	test_shard_id();
	test_defaults();
	test_minimal();
	test_refusals();
	test_round_trip();
	test_auth();
	test_client_auth();
	test_backend_tls();
	test_cidr();
	test_fixtures();
	test_index();
	test_index_lists();
	return check_finish("route_table_test");
}
