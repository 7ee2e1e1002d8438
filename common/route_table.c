/* common/route_table.c - the route table in memory, its JSON reader (strict,
 * with errors naming the JSON path) and its stable JSON writer. */
#include "route_table.h"
#include "auth_hash.h"
#include "error.h"
#include "log_format.h"
#include "route_validate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_COOKIE_NAME "INGRESSCOOKIE"
#define DEFAULT_FORWARDED_FOR_HEADER "X-Forwarded-For"
#define DEFAULT_HSTS_MAX_AGE 31536000u
#define DEFAULT_CORS_ORIGIN "*"
#define DEFAULT_CORS_METHODS "GET, PUT, POST, DELETE, PATCH, OPTIONS"
#define DEFAULT_CORS_HEADERS                                                                       \
	"DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type," \
	"Range,Authorization"

/* Longest JSON path an error names; deeper paths are truncated (never
 * happens with the fixed nesting of the format). */
#define PATH_MAX_LEN 256

/* ---------------------------------------------------------------- memory */

struct route_table *route_table_new(void)
{
	struct route_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->version = ROUTE_TABLE_VERSION;
	t->settings.max_header_bytes = 32768;
	t->settings.upstream_head_max = 4096;
	t->settings.header_timeout_ms = 10000;
	t->settings.keepalive_timeout_ms = 75000;
	t->settings.upstream_keepalive = 32;
	t->settings.drain_window_ms = 30000;
	t->settings.max_connections = 16384;
	t->settings.forwarded_for_header = strdup(DEFAULT_FORWARDED_FOR_HEADER);
	t->settings.hsts = true;
	t->settings.access_log = true;
	t->settings.hsts_max_age = DEFAULT_HSTS_MAX_AGE;
	t->settings.hsts_include_subdomains = true;
	t->settings.gzip_level = 1;
	t->settings.limit_req_status = 503;
	t->settings.limit_conn_status = 503;
	t->settings.use_http2 = true;
	t->settings.http2_max_concurrent_streams = 128;
	t->settings.gzip_min_length = 256;
	t->settings.gzip_types = strdup(ROUTE_GZIP_TYPES_DEFAULT);
	t->settings.brotli_level = 4;
	t->settings.brotli_min_length = 20;
	t->settings.brotli_types = strdup(ROUTE_BROTLI_TYPES_DEFAULT);
	if (!t->settings.forwarded_for_header || !t->settings.gzip_types ||
	    !t->settings.brotli_types) {
		free(t->settings.forwarded_for_header);
		free(t->settings.gzip_types);
		free(t->settings.brotli_types);
		free(t);
		return NULL;
	}
	t->default_cert = -1;
	t->default_backend = -1;
	return t;
}

void route_client_auth_init(struct route_client_auth *a)
{
	memset(a, 0, sizeof(*a));
	a->ca = -1;
	a->verify = ROUTE_VERIFY_ON;
	a->verify_depth = 1;
}

void route_client_auth_cleanup(struct route_client_auth *a)
{
	free(a->error_page);
	free(a->match_cn);
	route_client_auth_init(a);
}

void route_policy_init(struct route_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->connect_timeout_ms = 5000;
	p->read_timeout_ms = 60000;
	p->send_timeout_ms = 60000;
	p->next_upstream = ROUTE_NEXT_DEFAULT;
	p->next_upstream_tries = 3;
	p->body_limit = 1048576;
	p->upstream_head_max = 4096;
	p->backend_protocol = ROUTE_PROTO_HTTP;
	p->affinity = ROUTE_AFFINITY_NONE;
	p->affinity_mode = ROUTE_AFFINITY_BALANCED;
	p->cookie.name = strdup(DEFAULT_COOKIE_NAME);
	p->cookie.max_age_s = -1;
	p->cookie.expires_s = -1;
	p->balance = ROUTE_BALANCE_ROUND_ROBIN;
	p->hash_by_subset_size = 3;
	p->cors.allow_origin = strdup(DEFAULT_CORS_ORIGIN);
	p->cors.allow_methods = strdup(DEFAULT_CORS_METHODS);
	p->cors.allow_headers = strdup(DEFAULT_CORS_HEADERS);
	p->cors.allow_credentials = true;
	p->cors.max_age_s = 1728000;
	p->ws_idle_timeout_ms = 3600000;
	p->drain_window_ms = 30000;
	p->limit_burst = 5;
	p->access_log = true;
}

struct route_policy *route_policy_new(void)
{
	struct route_policy *p = malloc(sizeof(*p));
	if (!p)
		return NULL;
	route_policy_init(p);
	if (!p->cookie.name || !p->cors.allow_origin || !p->cors.allow_methods ||
	    !p->cors.allow_headers) {
		route_policy_cleanup(p);
		free(p);
		return NULL;
	}
	p->refs = 1;
	return p;
}

/* Atomic: a proxy's tables may be released on another thread than the one
 * that loaded them, and tables share policies. */
struct route_policy *route_policy_ref(struct route_policy *p)
{
	__atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
	return p;
}

void route_policy_unref(struct route_policy *p)
{
	if (!p || __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	route_policy_cleanup(p);
	free(p);
}

bool route_custom_error_has(const struct route_policy *p, int code)
{
	if (code < ROUTE_CUSTOM_ERROR_MIN || code > ROUTE_CUSTOM_ERROR_MAX)
		return false;
	unsigned bit = (unsigned)(code - ROUTE_CUSTOM_ERROR_MIN);
	return (p->custom_errors[bit / 64] >> (bit % 64)) & 1u;
}

void route_custom_error_set(struct route_policy *p, int code)
{
	if (code < ROUTE_CUSTOM_ERROR_MIN || code > ROUTE_CUSTOM_ERROR_MAX)
		return;
	unsigned bit = (unsigned)(code - ROUTE_CUSTOM_ERROR_MIN);
	p->custom_errors[bit / 64] |= 1ull << (bit % 64);
}

bool route_custom_errors_any(const struct route_policy *p)
{
	for (int i = 0; i < ROUTE_CUSTOM_ERROR_WORDS; i++)
		if (p->custom_errors[i])
			return true;
	return false;
}

static void headers_free(struct route_header *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

static bool var_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

size_t route_template_var(const char *s, const char **name, size_t *name_len)
{
	size_t n = 0;
	if (s[0] != '$')
		return 0;
	if (s[1] == '{') {
		while (var_char(s[2 + n]))
			n++;
		if (n == 0 || s[2 + n] != '}')
			return 0;
		*name = s + 2;
		*name_len = n;
		return n + 3;
	}
	while (var_char(s[1 + n]))
		n++;
	if (n == 0)
		return 0;
	*name = s + 1;
	*name_len = n;
	return n + 1;
}

enum route_var route_var_lookup(const char *name, size_t len)
{
	static const struct {
		const char *name;
		enum route_var var;
	} vars[] = {
	    {"host", ROUTE_VAR_HOST},
	    {"scheme", ROUTE_VAR_SCHEME},
	    {"request_uri", ROUTE_VAR_REQUEST_URI},
	    {"remote_addr", ROUTE_VAR_REMOTE_ADDR},
	    {"request_id", ROUTE_VAR_REQUEST_ID},
	    {"req_id", ROUTE_VAR_REQ_ID},
	};
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if (strlen(vars[i].name) == len && memcmp(vars[i].name, name, len) == 0)
			return vars[i].var;
	if (len > 5 && memcmp(name, "http_", 5) == 0)
		return ROUTE_VAR_HTTP;
	return ROUTE_VAR_NONE;
}

enum route_fastcgi_var route_fastcgi_var_lookup(const char *name, size_t len)
{
	static const struct {
		const char *name;
		enum route_fastcgi_var var;
	} vars[] = {
	    {"uri", ROUTE_FCGI_VAR_URI},
	    {"document_uri", ROUTE_FCGI_VAR_URI},
	    {"fastcgi_script_name", ROUTE_FCGI_VAR_SCRIPT_NAME},
	    {"fastcgi_path_info", ROUTE_FCGI_VAR_PATH_INFO},
	    {"args", ROUTE_FCGI_VAR_ARGS},
	    {"query_string", ROUTE_FCGI_VAR_ARGS},
	    {"is_args", ROUTE_FCGI_VAR_IS_ARGS},
	    {"request_method", ROUTE_FCGI_VAR_METHOD},
	    {"content_type", ROUTE_FCGI_VAR_CONTENT_TYPE},
	    {"content_length", ROUTE_FCGI_VAR_CONTENT_LENGTH},
	    {"server_name", ROUTE_FCGI_VAR_SERVER_NAME},
	    {"server_port", ROUTE_FCGI_VAR_SERVER_PORT},
	    {"server_addr", ROUTE_FCGI_VAR_SERVER_ADDR},
	    {"server_protocol", ROUTE_FCGI_VAR_SERVER_PROTOCOL},
	    {"remote_port", ROUTE_FCGI_VAR_REMOTE_PORT},
	    {"https", ROUTE_FCGI_VAR_HTTPS},
	    {"document_root", ROUTE_FCGI_VAR_DOCUMENT_ROOT},
	    {"realpath_root", ROUTE_FCGI_VAR_DOCUMENT_ROOT},
	};
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if (strlen(vars[i].name) == len && memcmp(vars[i].name, name, len) == 0)
			return vars[i].var;
	return ROUTE_FCGI_VAR_NONE;
}

void route_policy_cleanup(struct route_policy *p)
{
	if (!p)
		return;
	free(p->upstream_vhost);
	free(p->x_forwarded_prefix);
	free(p->rewrite_target);
	free(p->redirect_url);
	free(p->app_root);
	free(p->redirect_host);
	free(p->cookie.name);
	free(p->cookie.path);
	free(p->cookie.samesite);
	free(p->cookie.domain);
	free(p->hash_by);
	free(p->proxy_redirect_from);
	free(p->proxy_redirect_to);
	free(p->proxy_cookie_domain_from);
	free(p->proxy_cookie_domain_to);
	free(p->proxy_cookie_path_from);
	free(p->proxy_cookie_path_to);
	free(p->allow);
	free(p->deny);
	free(p->limit_allow);
	free(p->cors.allow_origin);
	free(p->cors.allow_methods);
	free(p->cors.allow_headers);
	free(p->cors.expose_headers);
	headers_free(p->request_headers, p->nrequest_headers);
	headers_free(p->response_headers, p->nresponse_headers);
	for (size_t i = 0; i < p->nadd_headers; i++) {
		free(p->add_headers[i].name);
		free(p->add_headers[i].value);
	}
	free(p->add_headers);
	free(p->return_body);
	for (size_t i = 0; i < p->nhide_headers; i++)
		free(p->hide_headers[i]);
	free(p->hide_headers);
	free(p->auth.realm);
	for (size_t i = 0; i < p->auth.nusers; i++) {
		free(p->auth.users[i].name);
		free(p->auth.users[i].hash);
	}
	free(p->auth.users);
	route_ext_auth_cleanup(&p->ext_auth);
	free(p->backend_tls.name);
	free(p->mirror.url);
	free(p->mirror.host);
	free(p->fastcgi.index);
	headers_free(p->fastcgi.params, p->fastcgi.nparams);
	for (size_t i = 0; i < p->nrewrites; i++) {
		free(p->rewrites[i].regex);
		free(p->rewrites[i].replacement);
	}
	free(p->rewrites);
	memset(p, 0, sizeof(*p));
}

void route_ext_auth_cleanup(struct route_ext_auth *a)
{
	free(a->cache_key);
	free(a->cache_duration);
	free(a->url);
	free(a->method);
	free(a->signin);
	free(a->signin_redirect_param);
	free(a->request_redirect);
	for (size_t i = 0; i < a->nresponse_headers; i++)
		free(a->response_headers[i]);
	free(a->response_headers);
	headers_free(a->proxy_set_headers, a->nproxy_set_headers);
	memset(a, 0, sizeof(*a));
}

void route_backend_tls_profile_cleanup(struct route_backend_tls_profile *b)
{
	free(b->name);
	free(b->protocols);
	free(b->ciphers);
	free(b->ca_pem);
	free(b->cert_pem);
	free(b->key_pem);
	memset(b, 0, sizeof(*b));
}

static void route_cleanup(struct route *r)
{
	free(r->path);
	free(r->source);
	route_policy_unref(r->policy);
	free(r->canary.by_header);
	free(r->canary.by_header_value);
	free(r->canary.by_header_pattern);
	free(r->canary.by_cookie);
}

void route_host_cleanup(struct route_host *h)
{
	for (size_t j = 0; j < h->nroutes; j++)
		route_cleanup(&h->routes[j]);
	free(h->routes);
	free(h->name);
	free(h->ssl_ciphers);
	route_client_auth_cleanup(&h->client_auth);
	memset(h, 0, sizeof(*h));
	h->cert = -1;
	route_client_auth_init(&h->client_auth);
}

void route_backend_cleanup(struct route_backend *b)
{
	for (size_t j = 0; j < b->nendpoints; j++)
		free(b->endpoints[j].address);
	free(b->endpoints);
	free(b->external_name);
	free(b->name);
	memset(b, 0, sizeof(*b));
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

bool route_backend_equal(const struct route_backend *a, const struct route_backend *b)
{
	if (!same_str(a->name, b->name) || !same_str(a->external_name, b->external_name) ||
	    a->external_port != b->external_port || a->nendpoints != b->nendpoints)
		return false;
	for (size_t i = 0; i < a->nendpoints; i++) {
		const struct route_endpoint *x = &a->endpoints[i], *y = &b->endpoints[i];
		if (x->port != y->port || x->weight != y->weight || x->draining != y->draining ||
		    !same_str(x->address, y->address))
			return false;
	}
	return true;
}

void route_cert_cleanup(struct route_cert *c)
{
	free(c->name);
	free(c->cert_pem);
	free(c->key_pem);
	memset(c, 0, sizeof(*c));
}

void route_table_free(struct route_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nhosts; i++)
		route_host_cleanup(&t->hosts[i]);
	free(t->hosts);
	for (size_t i = 0; i < t->nbackends; i++)
		route_backend_cleanup(&t->backends[i]);
	free(t->backends);
	for (size_t i = 0; i < t->ncerts; i++)
		route_cert_cleanup(&t->certs[i]);
	free(t->certs);
	for (size_t i = 0; i < t->ncas; i++) {
		free(t->cas[i].name);
		free(t->cas[i].ca_pem);
		free(t->cas[i].crl_pem);
	}
	free(t->cas);
	for (size_t i = 0; i < t->npassthrough; i++) {
		free(t->passthrough[i].host);
		free(t->passthrough[i].allow);
		free(t->passthrough[i].deny);
	}
	free(t->passthrough);
	for (size_t i = 0; i < t->nbackend_tls; i++)
		route_backend_tls_profile_cleanup(&t->backend_tls[i]);
	free(t->backend_tls);
	free(t->settings.trusted_proxies);
	free(t->settings.forwarded_for_header);
	free(t->settings.gzip_types);
	free(t->settings.brotli_types);
	free(t->settings.proxy_real_ip_cidr);
	free(t->settings.ssl_protocols);
	free(t->settings.ssl_ciphers);
	free(t->settings.block_cidrs);
	for (size_t i = 0; i < t->settings.nblock_user_agents; i++)
		free(t->settings.block_user_agents[i]);
	free(t->settings.block_user_agents);
	for (size_t i = 0; i < t->settings.nblock_referers; i++)
		free(t->settings.block_referers[i]);
	free(t->settings.block_referers);
	free(t->settings.access_log_format);
	for (size_t i = 0; i < t->settings.naccess_log_skip; i++)
		free(t->settings.access_log_skip[i]);
	free(t->settings.access_log_skip);
	free(t);
}

/* ------------------------------------------------------------------ CIDR */

int route_cidr_parse(const char *s, struct route_cidr *out)
{
	char buf[64];
	size_t len = strlen(s);
	if (len == 0 || len >= sizeof(buf))
		return WEIR_EINVAL;
	memcpy(buf, s, len + 1);
	struct route_cidr c;
	memset(&c, 0, sizeof(c));
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (strchr(buf, ':')) {
		if (inet_pton(AF_INET6, buf, c.addr) != 1)
			return WEIR_EINVAL;
		c.family = 6;
		c.prefix_len = 128;
	} else {
		if (inet_pton(AF_INET, buf, c.addr) != 1)
			return WEIR_EINVAL;
		c.family = 4;
		c.prefix_len = 32;
	}
	if (slash) {
		const char *p = slash + 1;
		unsigned v = 0;
		size_t nd = 0;
		for (; *p; p++, nd++) {
			if (*p < '0' || *p > '9' || nd >= 3)
				return WEIR_EINVAL;
			v = v * 10 + (unsigned)(*p - '0');
		}
		if (nd == 0 || v > c.prefix_len)
			return WEIR_EINVAL;
		c.prefix_len = (uint8_t)v;
	}
	/* Keep only the network bits so equal networks compare and print alike. */
	size_t total = c.family == 4 ? 4 : 16;
	for (size_t i = 0; i < total; i++) {
		unsigned bits = i * 8 >= c.prefix_len ? 0 : c.prefix_len - i * 8;
		if (bits < 8)
			c.addr[i] &= (uint8_t)(0xff00u >> bits);
	}
	*out = c;
	return 0;
}

void route_cidr_format(const struct route_cidr *cidr, char *buf, size_t buflen)
{
	char addr[INET6_ADDRSTRLEN];
	if (!inet_ntop(cidr->family == 4 ? AF_INET : AF_INET6, cidr->addr, addr, sizeof(addr)))
		snprintf(addr, sizeof(addr), "?");
	snprintf(buf, buflen, "%s/%u", addr, (unsigned)cidr->prefix_len);
}

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;
	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff00u >> rest);
	return (a[whole] & mask) == (b[whole] & mask);
}

bool route_cidr_contains(const struct route_cidr *cidr, int family, const uint8_t *addr)
{
	if (cidr->family == 4) {
		if (family == 4)
			return prefix_equal(cidr->addr, addr, cidr->prefix_len);
		if (family == 6 && memcmp(addr, v4mapped_prefix, 12) == 0)
			return prefix_equal(cidr->addr, addr + 12, cidr->prefix_len);
		return false;
	}
	if (cidr->family == 6) {
		if (family == 6)
			return prefix_equal(cidr->addr, addr, cidr->prefix_len);
		if (family == 4) {
			uint8_t mapped[16];
			memcpy(mapped, v4mapped_prefix, 12);
			memcpy(mapped + 12, addr, 4);
			return prefix_equal(cidr->addr, mapped, cidr->prefix_len);
		}
	}
	return false;
}

/* ---------------------------------------------------------------- reader */

struct parser {
	char *err;
	size_t errlen;
	size_t nbackend_tls; /* profiles read so far: the range of policy.backend_tls.profile */
	size_t nbackends;    /* the range of policy.error_backend */
};

static int fail(struct parser *p, int rc, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct parser *p, int rc, const char *path, const char *fmt, ...)
{
	if (p->err && p->errlen) {
		char msg[512];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		if (path && *path)
			snprintf(p->err, p->errlen, "%s: %s", path, msg);
		else
			snprintf(p->err, p->errlen, "%s", msg);
	}
	return rc;
}

static int oom(struct parser *p, const char *path)
{
	return fail(p, WEIR_ENOMEM, path, "out of memory");
}

/* Append src to the path in buf (capacity PATH_MAX_LEN), truncating. */
static void path_append(char *buf, size_t *len, const char *src)
{
	size_t n = strlen(src);
	if (n > PATH_MAX_LEN - 1 - *len)
		n = PATH_MAX_LEN - 1 - *len;
	memcpy(buf + *len, src, n);
	*len += n;
	buf[*len] = '\0';
}

static void path_key(char *buf, const char *parent, const char *key)
{
	size_t len = 0;
	buf[0] = '\0';
	if (parent && *parent) {
		path_append(buf, &len, parent);
		path_append(buf, &len, ".");
	}
	path_append(buf, &len, key);
}

static void path_index(char *buf, const char *parent, size_t i)
{
	char num[32];
	size_t len = 0;
	snprintf(num, sizeof(num), "[%zu]", i);
	buf[0] = '\0';
	path_append(buf, &len, parent);
	path_append(buf, &len, num);
}

static const char *type_name(json_type t)
{
	switch (t) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
		return "a number with a fraction";
	case json_type_int:
		return "an integer";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "unknown";
}

/* Refuse any key of obj not in the NULL-terminated list: a misspelt key in
 * a hand-written table must not silently fall back to a default. */
static int check_keys(struct parser *p, json_object *obj, const char *path,
                      const char *const *known)
{
	json_object_object_foreach(obj, key, val)
	{
		(void)val;
		bool ok = false;
		for (const char *const *k = known; *k; k++) {
			if (strcmp(*k, key) == 0) {
				ok = true;
				break;
			}
		}
		if (!ok) {
			char kp[PATH_MAX_LEN];
			path_key(kp, path, key);
			return fail(p, WEIR_EINVAL, kp, "unknown key");
		}
	}
	return 0;
}

/* The member key of obj with the expected type, or NULL when absent. */
static int member(struct parser *p, json_object *obj, const char *path, const char *key,
                  json_type want, bool null_ok, json_object **out, bool *present)
{
	json_object *v = NULL;
	*present = json_object_object_get_ex(obj, key, &v);
	*out = v;
	if (!*present)
		return 0;
	json_type t = json_object_get_type(v);
	if (t == want || (null_ok && t == json_type_null))
		return 0;
	char kp[PATH_MAX_LEN];
	path_key(kp, path, key);
	return fail(p, WEIR_EINVAL, kp, "must be %s, not %s", type_name(want), type_name(t));
}

static int opt_bool(struct parser *p, json_object *obj, const char *path, const char *key,
                    bool *out)
{
	json_object *v;
	bool present;
	int rc = member(p, obj, path, key, json_type_boolean, false, &v, &present);
	if (rc == 0 && present)
		*out = json_object_get_boolean(v);
	return rc;
}

static int opt_int(struct parser *p, json_object *obj, const char *path, const char *key,
                   int64_t min, int64_t max, int64_t *out, bool *present_out)
{
	json_object *v;
	bool present;
	int rc = member(p, obj, path, key, json_type_int, false, &v, &present);
	if (present_out)
		*present_out = present;
	if (rc != 0 || !present)
		return rc;
	int64_t x = json_object_get_int64(v);
	if (x < min || x > max || (x == INT64_MAX && json_object_get_uint64(v) > INT64_MAX)) {
		char kp[PATH_MAX_LEN];
		path_key(kp, path, key);
		return fail(p, WEIR_EINVAL, kp, "%s out of range %lld..%lld",
		            json_object_get_string(v), (long long)min, (long long)max);
	}
	*out = x;
	return 0;
}

static int opt_u32(struct parser *p, json_object *obj, const char *path, const char *key,
                   uint32_t *out)
{
	int64_t x = *out;
	int rc = opt_int(p, obj, path, key, 0, UINT32_MAX, &x, NULL);
	if (rc == 0)
		*out = (uint32_t)x;
	return rc;
}

/* An index into an array of n elements; -1 allowed when allow_none. */
static int opt_index(struct parser *p, json_object *obj, const char *path, const char *key,
                     size_t n, bool allow_none, int *out)
{
	int64_t x = *out;
	bool present;
	int rc = opt_int(p, obj, path, key, INT64_MIN, INT64_MAX, &x, &present);
	if (rc != 0 || !present)
		return rc;
	if (x < (allow_none ? -1 : 0) || x >= (int64_t)n) {
		char kp[PATH_MAX_LEN];
		path_key(kp, path, key);
		return fail(p, WEIR_EINVAL, kp, "index %lld out of range", (long long)x);
	}
	*out = (int)x;
	return 0;
}

enum str_flags {
	STR_NULLABLE = 1,  /* JSON null -> NULL */
	STR_DEFAULTED = 2, /* JSON null -> keep the default already in *out */
	STR_MULTILINE = 4, /* CR and LF allowed (PEM) */
};

/* Check one string value; kp names it in errors. What a value may hold
 * beyond this (tokens, paths, host names...) is route_validate.h's
 * business, checked once the object holding it is read. */
static int check_str(struct parser *p, json_object *v, const char *kp, int flags)
{
	const char *s = json_object_get_string(v);
	size_t len = (size_t)json_object_get_string_len(v);
	char why[256];
	if (strlen(s) != len)
		return fail(p, WEIR_EINVAL, kp, "contains a NUL character");
	if (!(flags & STR_MULTILINE) && route_validate_text(s, why, sizeof(why)) != 0)
		return fail(p, WEIR_EINVAL, kp, "%s", why);
	return 0;
}

static int opt_str(struct parser *p, json_object *obj, const char *path, const char *key, int flags,
                   char **out)
{
	json_object *v;
	bool present;
	int rc = member(p, obj, path, key, json_type_string,
	                (flags & (STR_NULLABLE | STR_DEFAULTED)) != 0, &v, &present);
	if (rc != 0 || !present)
		return rc;
	if (json_object_get_type(v) == json_type_null) {
		if (flags & STR_NULLABLE) {
			free(*out);
			*out = NULL;
		}
		return 0;
	}
	char kp[PATH_MAX_LEN];
	path_key(kp, path, key);
	rc = check_str(p, v, kp, flags);
	if (rc != 0)
		return rc;
	char *s = strdup(json_object_get_string(v));
	if (!s)
		return oom(p, kp);
	free(*out);
	*out = s;
	return 0;
}

/* A required string: absent is an error. */
static int req_str(struct parser *p, json_object *obj, const char *path, const char *key, int flags,
                   char **out)
{
	if (!json_object_object_get_ex(obj, key, NULL)) {
		char kp[PATH_MAX_LEN];
		path_key(kp, path, key);
		return fail(p, WEIR_EINVAL, kp, "required key missing");
	}
	return opt_str(p, obj, path, key, flags, out);
}

/* A string default that is not NULL: strdup it into *out. */
static int str_default(struct parser *p, const char *path, const char *def, char **out)
{
	*out = strdup(def);
	return *out ? 0 : oom(p, path);
}

static int opt_enum(struct parser *p, json_object *obj, const char *path, const char *key,
                    const char *const *names, int *out)
{
	json_object *v;
	bool present;
	int rc = member(p, obj, path, key, json_type_string, false, &v, &present);
	if (rc != 0 || !present)
		return rc;
	const char *s = json_object_get_string(v);
	for (int i = 0; names[i]; i++) {
		if (strcmp(names[i], s) == 0) {
			*out = i;
			return 0;
		}
	}
	char kp[PATH_MAX_LEN];
	path_key(kp, path, key);
	char list[256] = "";
	for (int i = 0; names[i]; i++) {
		size_t l = strlen(list);
		snprintf(list + l, sizeof(list) - l, "%s\"%s\"", i ? ", " : "", names[i]);
	}
	return fail(p, WEIR_EINVAL, kp, "unknown value \"%.64s\" (want %s)", s, list);
}

/* An optional array member; *n is 0 when absent. */
static int opt_array(struct parser *p, json_object *obj, const char *path, const char *key,
                     json_object **arr, size_t *n)
{
	bool present;
	int rc = member(p, obj, path, key, json_type_array, false, arr, &present);
	if (rc != 0)
		return rc;
	*n = present ? json_object_array_length(*arr) : 0;
	return 0;
}

/* An optional object member; *o is NULL when absent. */
static int opt_object(struct parser *p, json_object *obj, const char *path, const char *key,
                      json_object **o)
{
	bool present;
	int rc = member(p, obj, path, key, json_type_object, false, o, &present);
	if (!present)
		*o = NULL;
	return rc;
}

/* Array element i must be an object. */
static int elem_object(struct parser *p, json_object *arr, size_t i, const char *ep,
                       json_object **out)
{
	*out = json_object_array_get_idx(arr, i);
	json_type t = json_object_get_type(*out);
	if (t != json_type_object)
		return fail(p, WEIR_EINVAL, ep, "must be an object, not %s", type_name(t));
	return 0;
}

static int parse_cidrs(struct parser *p, json_object *obj, const char *path, const char *key,
                       struct route_cidr **out, size_t *nout)
{
	json_object *arr;
	size_t n;
	char kp[PATH_MAX_LEN], ep[PATH_MAX_LEN];
	int rc = opt_array(p, obj, path, key, &arr, &n);
	if (rc != 0 || n == 0)
		return rc;
	path_key(kp, path, key);
	struct route_cidr *c = calloc(n, sizeof(*c));
	if (!c)
		return oom(p, kp);
	free(*out);
	*out = c;
	*nout = n;
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		path_index(ep, kp, i);
		if (json_object_get_type(v) != json_type_string)
			return fail(p, WEIR_EINVAL, ep, "must be a string, not %s",
			            type_name(json_object_get_type(v)));
		const char *s = json_object_get_string(v);
		if ((rc = check_str(p, v, ep, 0)) != 0)
			return rc;
		if (route_cidr_parse(s, &c[i]) != 0)
			return fail(p, WEIR_EINVAL, ep, "bad CIDR \"%.64s\"", s);
	}
	return 0;
}

static const char *const header_keys[] = {"name", "value", NULL};
static const char *const template_header_keys[] = {"name", "value", "expand", NULL};

/* An array of {"name","value"} (with "expand" when templates) into *out. */
static int parse_headers(struct parser *p, json_object *obj, const char *path, const char *key,
                         bool templates, struct route_header **out, size_t *nout)
{
	json_object *arr, *h;
	size_t n;
	char kp[PATH_MAX_LEN], ep[PATH_MAX_LEN];
	int rc = opt_array(p, obj, path, key, &arr, &n);
	if (rc != 0 || n == 0)
		return rc;
	path_key(kp, path, key);
	struct route_header *hs = calloc(n, sizeof(*hs));
	if (!hs)
		return oom(p, kp);
	*out = hs;
	*nout = n;
	for (size_t i = 0; i < n; i++) {
		path_index(ep, kp, i);
		if ((rc = elem_object(p, arr, i, ep, &h)) != 0 ||
		    (rc = check_keys(p, h, ep, templates ? template_header_keys : header_keys)) !=
		        0 ||
		    (rc = req_str(p, h, ep, "name", 0, &hs[i].name)) != 0 ||
		    (rc = req_str(p, h, ep, "value", 0, &hs[i].value)) != 0 ||
		    (templates && (rc = opt_bool(p, h, ep, "expand", &hs[i].expand)) != 0))
			return rc;
	}
	return 0;
}

static const char *const add_header_keys[] = {"name", "value", "always", "expand", NULL};

static int parse_add_headers(struct parser *p, json_object *obj, const char *path,
                             struct route_add_header **out, size_t *nout)
{
	json_object *arr, *h;
	size_t n;
	char kp[PATH_MAX_LEN], ep[PATH_MAX_LEN];
	int rc = opt_array(p, obj, path, "add_headers", &arr, &n);
	if (rc != 0 || n == 0)
		return rc;
	path_key(kp, path, "add_headers");
	struct route_add_header *hs = calloc(n, sizeof(*hs));
	if (!hs)
		return oom(p, kp);
	*out = hs;
	*nout = n;
	for (size_t i = 0; i < n; i++) {
		path_index(ep, kp, i);
		if ((rc = elem_object(p, arr, i, ep, &h)) != 0 ||
		    (rc = check_keys(p, h, ep, add_header_keys)) != 0 ||
		    (rc = req_str(p, h, ep, "name", 0, &hs[i].name)) != 0 ||
		    (rc = req_str(p, h, ep, "value", 0, &hs[i].value)) != 0 ||
		    (rc = opt_bool(p, h, ep, "always", &hs[i].always)) != 0 ||
		    (rc = opt_bool(p, h, ep, "expand", &hs[i].expand)) != 0)
			return rc;
	}
	return 0;
}

static const char *const ext_auth_keys[] = {"url",
                                            "method",
                                            "signin",
                                            "signin_redirect_param",
                                            "request_redirect",
                                            "always_set_cookie",
                                            "response_headers",
                                            "cache_key",
                                            "cache_duration",
                                            "proxy_set_headers",
                                            NULL};

/* An array of header names into *out / *nout (route_validate_policy checks
 * that each is a token). */
static int parse_names(struct parser *p, json_object *obj, const char *path, const char *key,
                       char ***out, size_t *nout)
{
	json_object *arr;
	size_t n;
	char kp[PATH_MAX_LEN], ep[PATH_MAX_LEN];
	int rc = opt_array(p, obj, path, key, &arr, &n);
	if (rc != 0 || n == 0)
		return rc;
	path_key(kp, path, key);
	char **names = calloc(n, sizeof(char *));
	if (!names)
		return oom(p, kp);
	*out = names;
	*nout = n;
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		path_index(ep, kp, i);
		if (json_object_get_type(v) != json_type_string)
			return fail(p, WEIR_EINVAL, ep, "must be a string, not %s",
			            type_name(json_object_get_type(v)));
		if ((rc = check_str(p, v, ep, 0)) != 0)
			return rc;
		names[i] = strdup(json_object_get_string(v));
		if (!names[i])
			return oom(p, ep);
	}
	return 0;
}

/* policy.ext_auth: its structure; the values are route_validate_policy's. */
static int parse_ext_auth(struct parser *p, json_object *obj, const char *path,
                          struct route_ext_auth *a)
{
	int rc;
	if ((rc = check_keys(p, obj, path, ext_auth_keys)) != 0 ||
	    (rc = opt_str(p, obj, path, "url", STR_NULLABLE, &a->url)) != 0 ||
	    (rc = opt_str(p, obj, path, "method", STR_NULLABLE, &a->method)) != 0 ||
	    (rc = opt_str(p, obj, path, "signin", STR_NULLABLE, &a->signin)) != 0 ||
	    (rc = opt_str(p, obj, path, "signin_redirect_param", STR_NULLABLE,
	                  &a->signin_redirect_param)) != 0 ||
	    (rc = opt_str(p, obj, path, "request_redirect", STR_NULLABLE, &a->request_redirect)) !=
	        0 ||
	    (rc = opt_bool(p, obj, path, "always_set_cookie", &a->always_set_cookie)) != 0 ||
	    (rc = parse_names(p, obj, path, "response_headers", &a->response_headers,
	                      &a->nresponse_headers)) != 0 ||
	    (rc = opt_str(p, obj, path, "cache_key", STR_NULLABLE, &a->cache_key)) != 0 ||
	    (rc = opt_str(p, obj, path, "cache_duration", STR_NULLABLE, &a->cache_duration)) != 0 ||
	    (rc = parse_headers(p, obj, path, "proxy_set_headers", false, &a->proxy_set_headers,
	                        &a->nproxy_set_headers)) != 0)
		return rc;
	return 0;
}

static const char *const cookie_keys[] = {"name",
                                          "path",
                                          "max_age_s",
                                          "expires_s",
                                          "secure",
                                          "samesite",
                                          "domain",
                                          "conditional_samesite_none",
                                          "change_on_failure",
                                          NULL};

static const char *const cors_keys[] = {
    "enabled",        "allow_origin",      "allow_methods", "allow_headers",
    "expose_headers", "allow_credentials", "max_age_s",     NULL};
static const char *const policy_keys[] = {"connect_timeout_ms",
                                          "read_timeout_ms",
                                          "send_timeout_ms",
                                          "next_upstream",
                                          "next_upstream_tries",
                                          "next_upstream_timeout_ms",
                                          "body_limit",
                                          "upstream_head_max",
                                          "backend_protocol",
                                          "ssl_redirect",
                                          "preserve_trailing_slash",
                                          "port_in_redirects",
                                          "upstream_vhost",
                                          "x_forwarded_prefix",
                                          "rewrite_target",
                                          "redirect_code",
                                          "redirect_url",
                                          "redirect_host",
                                          "return_code",
                                          "return_body",
                                          "app_root",
                                          "custom_errors",
                                          "error_backend",
                                          "affinity",
                                          "affinity_mode",
                                          "cookie",
                                          "hash_by",
                                          "hash_by_subset",
                                          "hash_by_subset_size",
                                          "balance",
                                          "allow",
                                          "deny",
                                          "limit_connections",
                                          "limit_rps",
                                          "limit_rpm",
                                          "limit_burst",
                                          "limit_allow",
                                          "satisfy_any",
                                          "auth",
                                          "cors",
                                          "ws_idle_timeout_ms",
                                          "ws_max_lifetime_ms",
                                          "ws_ping_interval_ms",
                                          "drain_window_ms",
                                          "request_base",
                                          "origin_rewrite",
                                          "access_log",
                                          "request_headers",
                                          "response_headers",
                                          "add_headers",
                                          "hide_headers",
                                          "ext_auth",
                                          "backend_tls",
                                          "proxy_redirect_from",
                                          "proxy_redirect_to",
                                          "proxy_cookie_domain_from",
                                          "proxy_cookie_domain_to",
                                          "proxy_cookie_path_from",
                                          "proxy_cookie_path_to",
                                          "mirror",
                                          "fastcgi",
                                          "rewrites",
                                          "request_buffering",
                                          "response_buffering",
                                          NULL};
static const char *const mirror_keys[] = {"url", "host", "request_body", NULL};
static const char *const fastcgi_keys[] = {"index", "params", NULL};
static const char *const rewrite_keys[] = {"regex", "replacement", "flag", NULL};
static const char *const rewrite_flag_names[] = {"break", "redirect", "permanent", NULL};
static const char *const proto_names[] = {"HTTP",  "HTTPS",     "FCGI", "GRPC",
                                          "GRPCS", "AUTO_HTTP", NULL};
static const char *const next_upstream_names[ROUTE_NEXT_COUNT] = {
    "error",    "timeout",  "invalid_header", "http_500", "http_502",      "http_503",
    "http_504", "http_403", "http_404",       "http_429", "non_idempotent"};

const char *route_protocol_name(enum route_protocol p)
{
	return (unsigned)p < sizeof(proto_names) / sizeof(proto_names[0]) - 1 ? proto_names[p]
	                                                                      : "?";
}

const char *route_next_upstream_name(int i)
{
	return i >= 0 && i < ROUTE_NEXT_COUNT ? next_upstream_names[i] : NULL;
}

uint32_t route_next_upstream_bit(const char *s, size_t len)
{
	for (int i = 0; i < ROUTE_NEXT_COUNT; i++)
		if (strlen(next_upstream_names[i]) == len &&
		    memcmp(next_upstream_names[i], s, len) == 0)
			return 1u << i;
	return 0;
}

/* policy.next_upstream: an array of condition names, each at most once. */
static int parse_next_upstream(struct parser *p, json_object *obj, const char *path, uint32_t *out)
{
	json_object *arr;
	size_t n;
	char kp[PATH_MAX_LEN], ep[PATH_MAX_LEN];
	if (!json_object_object_get_ex(obj, "next_upstream", NULL))
		return 0;
	int rc = opt_array(p, obj, path, "next_upstream", &arr, &n);
	if (rc != 0)
		return rc;
	path_key(kp, path, "next_upstream");
	uint32_t mask = 0;
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		path_index(ep, kp, i);
		if (json_object_get_type(v) != json_type_string)
			return fail(p, WEIR_EINVAL, ep, "must be a string, not %s",
			            type_name(json_object_get_type(v)));
		const char *name = json_object_get_string(v);
		uint32_t bit = route_next_upstream_bit(name, strlen(name));
		if (!bit)
			return fail(p, WEIR_EINVAL, ep, "unknown condition \"%s\"", name);
		if (mask & bit)
			return fail(p, WEIR_EINVAL, ep, "\"%s\" given twice", name);
		mask |= bit;
	}
	*out = mask;
	return 0;
}
static const char *const balance_names[] = {"round_robin", "ewma", NULL};
static const char *const affinity_names[] = {"none", "cookie", NULL};
static const char *const affinity_mode_names[] = {"balanced", "persistent", NULL};
static const char *const match_names[] = {"exact", "prefix", "regex", NULL};
static const char *const auth_keys[] = {"type", "realm", "users", NULL};
static const char *const auth_user_keys[] = {"name", "hash", NULL};
static const char *const auth_type_names[] = {"none", "basic", NULL};
static const char *const backend_tls_keys[] = {"profile", "name", "server_name", NULL};

static int parse_cookie(struct parser *p, json_object *obj, const char *path,
                        struct route_cookie *c)
{
	int rc;
	if ((rc = check_keys(p, obj, path, cookie_keys)) != 0 ||
	    (rc = opt_str(p, obj, path, "name", STR_DEFAULTED, &c->name)) != 0 ||
	    (rc = opt_str(p, obj, path, "path", STR_NULLABLE, &c->path)) != 0 ||
	    (rc = opt_int(p, obj, path, "max_age_s", -1, INT64_MAX, &c->max_age_s, NULL)) != 0 ||
	    (rc = opt_int(p, obj, path, "expires_s", -1, INT64_MAX, &c->expires_s, NULL)) != 0 ||
	    (rc = opt_bool(p, obj, path, "secure", &c->secure)) != 0 ||
	    (rc = opt_str(p, obj, path, "samesite", STR_NULLABLE, &c->samesite)) != 0 ||
	    (rc = opt_str(p, obj, path, "domain", STR_NULLABLE, &c->domain)) != 0 ||
	    (rc = opt_bool(p, obj, path, "conditional_samesite_none",
	                   &c->conditional_samesite_none)) != 0 ||
	    (rc = opt_bool(p, obj, path, "change_on_failure", &c->change_on_failure)) != 0)
		return rc;
	return 0;
}

static int parse_cors(struct parser *p, json_object *obj, const char *path, struct route_cors *c)
{
	int rc;
	if ((rc = check_keys(p, obj, path, cors_keys)) != 0 ||
	    (rc = opt_bool(p, obj, path, "enabled", &c->enabled)) != 0 ||
	    (rc = opt_str(p, obj, path, "allow_origin", STR_DEFAULTED, &c->allow_origin)) != 0 ||
	    (rc = opt_str(p, obj, path, "allow_methods", STR_DEFAULTED, &c->allow_methods)) != 0 ||
	    (rc = opt_str(p, obj, path, "allow_headers", STR_DEFAULTED, &c->allow_headers)) != 0 ||
	    (rc = opt_str(p, obj, path, "expose_headers", STR_NULLABLE, &c->expose_headers)) != 0 ||
	    (rc = opt_bool(p, obj, path, "allow_credentials", &c->allow_credentials)) != 0 ||
	    (rc = opt_int(p, obj, path, "max_age_s", 0, INT64_MAX, &c->max_age_s, NULL)) != 0)
		return rc;
	return 0;
}

static int parse_auth(struct parser *p, json_object *obj, const char *path, struct route_auth *a)
{
	int rc, e = (int)a->type;
	json_object *arr, *u;
	size_t n;
	char kp[PATH_MAX_LEN], ep[PATH_MAX_LEN], hp[PATH_MAX_LEN];
	if ((rc = check_keys(p, obj, path, auth_keys)) != 0 ||
	    (rc = opt_enum(p, obj, path, "type", auth_type_names, &e)) != 0)
		return rc;
	a->type = (enum route_auth_type)e;
	if ((rc = opt_str(p, obj, path, "realm", STR_NULLABLE, &a->realm)) != 0)
		return rc;
	if (a->realm && strpbrk(a->realm, "\"\\")) {
		path_key(kp, path, "realm");
		return fail(p, WEIR_EINVAL, kp, "contains '\"' or a backslash");
	}
	if ((rc = opt_array(p, obj, path, "users", &arr, &n)) != 0 || n == 0)
		return rc;
	path_key(kp, path, "users");
	a->users = calloc(n, sizeof(*a->users));
	if (!a->users)
		return oom(p, kp);
	a->nusers = n;
	for (size_t i = 0; i < n; i++) {
		struct route_auth_user *au = &a->users[i];
		path_index(ep, kp, i);
		if ((rc = elem_object(p, arr, i, ep, &u)) != 0 ||
		    (rc = check_keys(p, u, ep, auth_user_keys)) != 0 ||
		    (rc = req_str(p, u, ep, "name", 0, &au->name)) != 0 ||
		    (rc = req_str(p, u, ep, "hash", 0, &au->hash)) != 0)
			return rc;
		if (!au->name[0] || strchr(au->name, ':')) {
			path_key(hp, ep, "name");
			return fail(p, WEIR_EINVAL, hp, "empty or holds ':'");
		}
		const char *why = auth_hash_refusal(au->hash);
		if (why) {
			path_key(hp, ep, "hash");
			return fail(p, WEIR_EINVAL, hp, "%s", why);
		}
	}
	return 0;
}

/* policy.custom_errors: an array of codes 300..599, each at most once. */
static int parse_custom_errors(struct parser *p, json_object *obj, const char *path,
                               struct route_policy *pol)
{
	json_object *arr;
	size_t n;
	char kp[PATH_MAX_LEN], ep[PATH_MAX_LEN];
	int rc = opt_array(p, obj, path, "custom_errors", &arr, &n);
	if (rc != 0 || n == 0)
		return rc;
	path_key(kp, path, "custom_errors");
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		path_index(ep, kp, i);
		if (!json_object_is_type(v, json_type_int))
			return fail(p, WEIR_EINVAL, ep, "not an integer");
		int64_t code = json_object_get_int64(v);
		if (code < ROUTE_CUSTOM_ERROR_MIN || code > ROUTE_CUSTOM_ERROR_MAX)
			return fail(p, WEIR_EINVAL, ep, "%lld is not a status code 300..599",
			            (long long)code);
		if (route_custom_error_has(pol, (int)code))
			return fail(p, WEIR_EINVAL, ep, "%lld given twice", (long long)code);
		route_custom_error_set(pol, (int)code);
	}
	return 0;
}

static int parse_rewrites(struct parser *p, json_object *obj, const char *path,
                          struct route_policy *pol)
{
	json_object *arr, *r;
	size_t n;
	char kp[PATH_MAX_LEN], ep[PATH_MAX_LEN];
	int rc = opt_array(p, obj, path, "rewrites", &arr, &n);
	if (rc != 0 || n == 0)
		return rc;
	path_key(kp, path, "rewrites");
	pol->rewrites = calloc(n, sizeof(*pol->rewrites));
	if (!pol->rewrites)
		return oom(p, kp);
	pol->nrewrites = n;
	for (size_t i = 0; i < n; i++) {
		int flag = ROUTE_REWRITE_BREAK;
		path_index(ep, kp, i);
		if ((rc = elem_object(p, arr, i, ep, &r)) != 0 ||
		    (rc = check_keys(p, r, ep, rewrite_keys)) != 0 ||
		    (rc = req_str(p, r, ep, "regex", 0, &pol->rewrites[i].regex)) != 0 ||
		    (rc = req_str(p, r, ep, "replacement", 0, &pol->rewrites[i].replacement)) !=
		        0 ||
		    (rc = opt_enum(p, r, ep, "flag", rewrite_flag_names, &flag)) != 0)
			return rc;
		pol->rewrites[i].flag = (enum route_rewrite_flag)flag;
	}
	return 0;
}

/* Into r's policy, and r's indexes the policy object holds. */
static int parse_policy(struct parser *p, json_object *obj, const char *path, struct route *r)
{
	struct route_policy *pol = r->policy;
	int rc, e;
	int64_t code = pol->redirect_code;
	int64_t rcode = pol->return_code;
	json_object *sub;
	char kp[PATH_MAX_LEN];

	if ((rc = check_keys(p, obj, path, policy_keys)) != 0 ||
	    (rc = opt_u32(p, obj, path, "connect_timeout_ms", &pol->connect_timeout_ms)) != 0 ||
	    (rc = opt_u32(p, obj, path, "read_timeout_ms", &pol->read_timeout_ms)) != 0 ||
	    (rc = opt_u32(p, obj, path, "send_timeout_ms", &pol->send_timeout_ms)) != 0 ||
	    (rc = parse_next_upstream(p, obj, path, &pol->next_upstream)) != 0 ||
	    (rc = opt_u32(p, obj, path, "next_upstream_tries", &pol->next_upstream_tries)) != 0 ||
	    (rc = opt_u32(p, obj, path, "next_upstream_timeout_ms",
	                  &pol->next_upstream_timeout_ms)) != 0 ||
	    (rc = opt_int(p, obj, path, "body_limit", 0, INT64_MAX, &pol->body_limit, NULL)) != 0 ||
	    (rc = opt_u32(p, obj, path, "upstream_head_max", &pol->upstream_head_max)) != 0)
		return rc;
	e = (int)pol->backend_protocol;
	if ((rc = opt_enum(p, obj, path, "backend_protocol", proto_names, &e)) != 0)
		return rc;
	pol->backend_protocol = (enum route_protocol)e;
	if ((rc = opt_bool(p, obj, path, "ssl_redirect", &pol->ssl_redirect)) != 0 ||
	    (rc = opt_bool(p, obj, path, "preserve_trailing_slash",
	                   &pol->preserve_trailing_slash)) != 0 ||
	    (rc = opt_bool(p, obj, path, "port_in_redirects", &pol->port_in_redirects)) != 0 ||
	    (rc = opt_str(p, obj, path, "upstream_vhost", STR_NULLABLE, &pol->upstream_vhost)) !=
	        0 ||
	    (rc = opt_str(p, obj, path, "x_forwarded_prefix", STR_NULLABLE,
	                  &pol->x_forwarded_prefix)) != 0 ||
	    (rc = opt_str(p, obj, path, "rewrite_target", STR_NULLABLE, &pol->rewrite_target)) !=
	        0 ||
	    (rc = opt_int(p, obj, path, "redirect_code", 0, 999, &code, NULL)) != 0 ||
	    (rc = opt_str(p, obj, path, "redirect_url", STR_NULLABLE, &pol->redirect_url)) != 0 ||
	    (rc = opt_str(p, obj, path, "redirect_host", STR_NULLABLE, &pol->redirect_host)) != 0 ||
	    (rc = opt_int(p, obj, path, "return_code", 0, 999, &rcode, NULL)) != 0 ||
	    (rc = opt_str(p, obj, path, "return_body", STR_NULLABLE | STR_MULTILINE,
	                  &pol->return_body)) != 0 ||
	    (rc = opt_str(p, obj, path, "app_root", STR_NULLABLE, &pol->app_root)) != 0)
		return rc;
	pol->redirect_code = (uint16_t)code;
	pol->return_code = (uint16_t)rcode;
	if ((rc = parse_custom_errors(p, obj, path, pol)) != 0 ||
	    (rc = opt_index(p, obj, path, "error_backend", p->nbackends, true,
	                    &r->error_backend)) != 0)
		return rc;
	e = (int)pol->affinity;
	if ((rc = opt_enum(p, obj, path, "affinity", affinity_names, &e)) != 0)
		return rc;
	pol->affinity = (enum route_affinity)e;
	e = (int)pol->affinity_mode;
	if ((rc = opt_enum(p, obj, path, "affinity_mode", affinity_mode_names, &e)) != 0)
		return rc;
	pol->affinity_mode = (enum route_affinity_mode)e;
	if ((rc = opt_object(p, obj, path, "cookie", &sub)) != 0)
		return rc;
	if (sub) {
		path_key(kp, path, "cookie");
		if ((rc = parse_cookie(p, sub, kp, &pol->cookie)) != 0)
			return rc;
	}
	if ((rc = opt_str(p, obj, path, "hash_by", STR_NULLABLE, &pol->hash_by)) != 0 ||
	    (rc = opt_bool(p, obj, path, "hash_by_subset", &pol->hash_by_subset)) != 0 ||
	    (rc = opt_u32(p, obj, path, "hash_by_subset_size", &pol->hash_by_subset_size)) != 0)
		return rc;
	e = (int)pol->balance;
	if ((rc = opt_enum(p, obj, path, "balance", balance_names, &e)) != 0)
		return rc;
	pol->balance = (enum route_balance)e;
	if ((rc = parse_cidrs(p, obj, path, "allow", &pol->allow, &pol->nallow)) != 0 ||
	    (rc = parse_cidrs(p, obj, path, "deny", &pol->deny, &pol->ndeny)) != 0 ||
	    (rc = opt_u32(p, obj, path, "limit_connections", &pol->limit_connections)) != 0 ||
	    (rc = opt_u32(p, obj, path, "limit_rps", &pol->limit_rps)) != 0 ||
	    (rc = opt_u32(p, obj, path, "limit_rpm", &pol->limit_rpm)) != 0 ||
	    (rc = opt_u32(p, obj, path, "limit_burst", &pol->limit_burst)) != 0 ||
	    (rc = parse_cidrs(p, obj, path, "limit_allow", &pol->limit_allow,
	                      &pol->nlimit_allow)) != 0 ||
	    (rc = opt_bool(p, obj, path, "satisfy_any", &pol->satisfy_any)) != 0 ||
	    (rc = opt_object(p, obj, path, "auth", &sub)) != 0)
		return rc;
	if (sub) {
		path_key(kp, path, "auth");
		if ((rc = parse_auth(p, sub, kp, &pol->auth)) != 0)
			return rc;
	}
	if ((rc = opt_object(p, obj, path, "cors", &sub)) != 0)
		return rc;
	if (sub) {
		path_key(kp, path, "cors");
		if ((rc = parse_cors(p, sub, kp, &pol->cors)) != 0)
			return rc;
	}
	if ((rc = opt_u32(p, obj, path, "ws_idle_timeout_ms", &pol->ws_idle_timeout_ms)) != 0 ||
	    (rc = opt_u32(p, obj, path, "ws_max_lifetime_ms", &pol->ws_max_lifetime_ms)) != 0 ||
	    (rc = opt_u32(p, obj, path, "ws_ping_interval_ms", &pol->ws_ping_interval_ms)) != 0 ||
	    (rc = opt_u32(p, obj, path, "drain_window_ms", &pol->drain_window_ms)) != 0 ||
	    (rc = opt_bool(p, obj, path, "request_base", &pol->request_base)) != 0 ||
	    (rc = opt_bool(p, obj, path, "origin_rewrite", &pol->origin_rewrite)) != 0 ||
	    (rc = opt_bool(p, obj, path, "access_log", &pol->access_log)) != 0 ||
	    (rc = parse_headers(p, obj, path, "request_headers", true, &pol->request_headers,
	                        &pol->nrequest_headers)) != 0 ||
	    (rc = parse_headers(p, obj, path, "response_headers", true, &pol->response_headers,
	                        &pol->nresponse_headers)) != 0 ||
	    (rc = parse_add_headers(p, obj, path, &pol->add_headers, &pol->nadd_headers)) != 0 ||
	    (rc = parse_names(p, obj, path, "hide_headers", &pol->hide_headers,
	                      &pol->nhide_headers)) != 0 ||
	    (rc = opt_object(p, obj, path, "ext_auth", &sub)) != 0)
		return rc;
	if (sub) {
		path_key(kp, path, "ext_auth");
		if ((rc = parse_ext_auth(p, sub, kp, &pol->ext_auth)) != 0)
			return rc;
	}
	if ((rc = opt_object(p, obj, path, "mirror", &sub)) != 0)
		return rc;
	if (sub) {
		bool body = true;
		path_key(kp, path, "mirror");
		if ((rc = check_keys(p, sub, kp, mirror_keys)) != 0 ||
		    (rc = opt_str(p, sub, kp, "url", STR_NULLABLE, &pol->mirror.url)) != 0 ||
		    (rc = opt_str(p, sub, kp, "host", STR_NULLABLE, &pol->mirror.host)) != 0 ||
		    (rc = opt_bool(p, sub, kp, "request_body", &body)) != 0)
			return rc;
		pol->mirror.no_request_body = !body;
	}
	if ((rc = parse_rewrites(p, obj, path, pol)) != 0 ||
	    (rc = opt_bool(p, obj, path, "request_buffering", &pol->request_buffering)) != 0 ||
	    (rc = opt_bool(p, obj, path, "response_buffering", &pol->response_buffering)) != 0 ||
	    (rc = opt_object(p, obj, path, "fastcgi", &sub)) != 0)
		return rc;
	if (sub) {
		path_key(kp, path, "fastcgi");
		if ((rc = check_keys(p, sub, kp, fastcgi_keys)) != 0 ||
		    (rc = opt_str(p, sub, kp, "index", STR_NULLABLE, &pol->fastcgi.index)) != 0 ||
		    (rc = parse_headers(p, sub, kp, "params", false, &pol->fastcgi.params,
		                        &pol->fastcgi.nparams)) != 0)
			return rc;
	}
	if ((rc = opt_object(p, obj, path, "backend_tls", &sub)) != 0)
		return rc;
	if (sub) {
		path_key(kp, path, "backend_tls");
		if ((rc = check_keys(p, sub, kp, backend_tls_keys)) != 0 ||
		    (rc = opt_index(p, sub, kp, "profile", p->nbackend_tls, true,
		                    &r->backend_tls)) != 0 ||
		    (rc = opt_str(p, sub, kp, "name", STR_NULLABLE, &pol->backend_tls.name)) != 0 ||
		    (rc = opt_bool(p, sub, kp, "server_name", &pol->backend_tls.server_name)) != 0)
			return rc;
	}
	if ((rc = opt_str(p, obj, path, "proxy_redirect_from", STR_NULLABLE,
	                  &pol->proxy_redirect_from)) != 0 ||
	    (rc = opt_str(p, obj, path, "proxy_redirect_to", STR_NULLABLE,
	                  &pol->proxy_redirect_to)) != 0 ||
	    (rc = opt_str(p, obj, path, "proxy_cookie_domain_from", STR_NULLABLE,
	                  &pol->proxy_cookie_domain_from)) != 0 ||
	    (rc = opt_str(p, obj, path, "proxy_cookie_domain_to", STR_NULLABLE,
	                  &pol->proxy_cookie_domain_to)) != 0 ||
	    (rc = opt_str(p, obj, path, "proxy_cookie_path_from", STR_NULLABLE,
	                  &pol->proxy_cookie_path_from)) != 0 ||
	    (rc = opt_str(p, obj, path, "proxy_cookie_path_to", STR_NULLABLE,
	                  &pol->proxy_cookie_path_to)) != 0)
		return rc;
	return 0;
}

static const char *const canary_keys[] = {
    "backend",           "by_header",    "by_header_value",   "by_cookie", "weight",
    "by_header_pattern", "weight_total", "affinity_behavior", NULL};
static const char *const canary_affinity_names[] = {"sticky", "legacy", NULL};

static int parse_canary(struct parser *p, json_object *obj, const char *path, size_t nbackends,
                        struct route_canary *c)
{
	int rc, e = (int)c->affinity_behavior;
	int64_t w = c->weight, wt = c->weight_total;
	if ((rc = check_keys(p, obj, path, canary_keys)) != 0 ||
	    (rc = opt_index(p, obj, path, "backend", nbackends, true, &c->backend)) != 0 ||
	    (rc = opt_str(p, obj, path, "by_header", STR_NULLABLE, &c->by_header)) != 0 ||
	    (rc = opt_str(p, obj, path, "by_header_value", STR_NULLABLE, &c->by_header_value)) !=
	        0 ||
	    (rc = opt_str(p, obj, path, "by_cookie", STR_NULLABLE, &c->by_cookie)) != 0 ||
	    (rc = opt_int(p, obj, path, "weight", 0, UINT32_MAX, &w, NULL)) != 0 ||
	    (rc = opt_str(p, obj, path, "by_header_pattern", STR_NULLABLE,
	                  &c->by_header_pattern)) != 0 ||
	    (rc = opt_int(p, obj, path, "weight_total", 1, UINT32_MAX, &wt, NULL)) != 0 ||
	    (rc = opt_enum(p, obj, path, "affinity_behavior", canary_affinity_names, &e)) != 0)
		return rc;
	c->weight = (uint32_t)w;
	c->weight_total = (uint32_t)wt;
	c->affinity_behavior = (enum route_canary_affinity)e;
	return 0;
}

static const char *const route_keys[] = {"path",   "match",  "backend", "source",
                                         "policy", "canary", NULL};

static int route_init(struct parser *p, const char *path, struct route *r)
{
	memset(r, 0, sizeof(*r));
	r->backend = -1;
	r->error_backend = -1;
	r->backend_tls = -1;
	r->canary.backend = -1;
	r->canary.weight_total = 100;
	if (!(r->policy = route_policy_new()))
		return oom(p, path);
	return str_default(p, path, "", &r->source);
}

static int parse_route(struct parser *p, json_object *obj, const char *path, size_t nbackends,
                       struct route *r)
{
	int rc, e = -1;
	json_object *sub;
	char kp[PATH_MAX_LEN];

	if ((rc = route_init(p, path, r)) != 0 ||
	    (rc = check_keys(p, obj, path, route_keys)) != 0 ||
	    (rc = req_str(p, obj, path, "path", 0, &r->path)) != 0)
		return rc;
	if (!json_object_object_get_ex(obj, "match", NULL)) {
		path_key(kp, path, "match");
		return fail(p, WEIR_EINVAL, kp, "required key missing");
	}
	if ((rc = opt_enum(p, obj, path, "match", match_names, &e)) != 0)
		return rc;
	r->match = (enum route_match)e;
	if ((rc = opt_index(p, obj, path, "backend", nbackends, true, &r->backend)) != 0 ||
	    (rc = opt_str(p, obj, path, "source", 0, &r->source)) != 0 ||
	    (rc = opt_object(p, obj, path, "policy", &sub)) != 0)
		return rc;
	if (sub) {
		path_key(kp, path, "policy");
		p->nbackends = nbackends;
		if ((rc = parse_policy(p, sub, kp, r)) != 0)
			return rc;
	}
	if ((rc = opt_object(p, obj, path, "canary", &sub)) != 0)
		return rc;
	if (sub) {
		path_key(kp, path, "canary");
		if ((rc = parse_canary(p, sub, kp, nbackends, &r->canary)) != 0)
			return rc;
	}
	/* Every value the route holds, by the rules the controller checked
	 * before it wrote them; regexes are compiled by the proxy right after
	 * (route_regex_compile), so not twice. */
	char field[PATH_MAX_LEN], why[256];
	if (route_validate_route(r, true, field, sizeof(field), why, sizeof(why)) != 0) {
		path_key(kp, path, field);
		return fail(p, WEIR_EINVAL, kp, "%s", why);
	}
	return 0;
}

/* Host names by route_validate_host (flags as there). */
static int check_host_name(struct parser *p, const char *kp, const char *s, int flags)
{
	char why[256];
	if (route_validate_host(s, flags, why, sizeof(why)) != 0)
		return fail(p, WEIR_EINVAL, kp, "%s", why);
	return 0;
}

static int cmp_str_ptr(const void *a, const void *b)
{
	const char *const *x = a, *const *y = b;
	return strcmp(*x, *y);
}

/* Find a duplicate among n strings (sorted copy); returns it or NULL. The
 * strings are names[i*stride] inside an array of structs. */
static int find_duplicate(struct parser *p, const char *what, const char **names, size_t n,
                          const char **dup)
{
	*dup = NULL;
	if (n < 2)
		return 0;
	const char **s = malloc(n * sizeof(*s));
	if (!s)
		return oom(p, what);
	memcpy(s, names, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_str_ptr);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(s[i - 1], s[i]) == 0) {
			*dup = s[i];
			break;
		}
	}
	free(s);
	return 0;
}

static const char *const host_keys[] = {"name",        "cert",   "client_auth",
                                        "ssl_ciphers", "routes", NULL};
static const char *const client_auth_keys[] = {
    "ca", "verify", "verify_depth", "error_page", "pass_certificate", "match_cn", NULL};
static const char *const verify_names[] = {"off", "on", "optional", "optional_no_ca", NULL};

static int parse_client_auth(struct parser *p, json_object *obj, const char *path, size_t ncas,
                             struct route_client_auth *a)
{
	int rc, e = (int)a->verify;
	int64_t depth = a->verify_depth;
	char kp[PATH_MAX_LEN], why[256];
	if ((rc = check_keys(p, obj, path, client_auth_keys)) != 0 ||
	    (rc = opt_index(p, obj, path, "ca", ncas, true, &a->ca)) != 0 ||
	    (rc = opt_enum(p, obj, path, "verify", verify_names, &e)) != 0 ||
	    (rc = opt_int(p, obj, path, "verify_depth", 1, ROUTE_VERIFY_DEPTH_MAX, &depth, NULL)) !=
	        0 ||
	    (rc = opt_str(p, obj, path, "error_page", STR_NULLABLE, &a->error_page)) != 0 ||
	    (rc = opt_bool(p, obj, path, "pass_certificate", &a->pass_certificate)) != 0 ||
	    (rc = opt_str(p, obj, path, "match_cn", STR_NULLABLE, &a->match_cn)) != 0)
		return rc;
	a->verify = (enum route_verify_client)e;
	a->verify_depth = (uint32_t)depth;
	if (a->error_page && route_validate_url(a->error_page, why, sizeof(why)) != 0) {
		path_key(kp, path, "error_page");
		return fail(p, WEIR_EINVAL, kp, "%s", why);
	}
	if (a->match_cn && strncmp(a->match_cn, "CN=", 3) != 0) {
		path_key(kp, path, "match_cn");
		return fail(p, WEIR_EINVAL, kp, "does not start with \"CN=\"");
	}
	return 0;
}

/* Index ranges a host's references are checked against. */
struct host_limits {
	size_t nbackends, ncerts, ncas;
};

/* One host object h (JSON path ep) into host, which the caller zeroed. */
static int parse_host(struct parser *p, json_object *h, const char *ep,
                      const struct host_limits *lim, struct route_host *host)
{
	json_object *routes, *ca;
	size_t nr;
	int rc;
	char kp[PATH_MAX_LEN], rp[PATH_MAX_LEN];
	host->cert = -1;
	route_client_auth_init(&host->client_auth);
	if ((rc = str_default(p, ep, "", &host->name)) != 0)
		return rc;
	if (json_object_get_type(h) != json_type_object)
		return fail(p, WEIR_EINVAL, ep, "must be an object, not %s",
		            type_name(json_object_get_type(h)));
	if ((rc = check_keys(p, h, ep, host_keys)) != 0 ||
	    (rc = opt_str(p, h, ep, "name", 0, &host->name)) != 0)
		return rc;
	path_key(kp, ep, "name");
	if ((rc = check_host_name(p, kp, host->name, 0)) != 0 ||
	    (rc = opt_index(p, h, ep, "cert", lim->ncerts, true, &host->cert)) != 0 ||
	    (rc = opt_object(p, h, ep, "client_auth", &ca)) != 0)
		return rc;
	if (ca) {
		path_key(kp, ep, "client_auth");
		if ((rc = parse_client_auth(p, ca, kp, lim->ncas, &host->client_auth)) != 0)
			return rc;
	}
	if ((rc = opt_str(p, h, ep, "ssl_ciphers", STR_NULLABLE, &host->ssl_ciphers)) != 0)
		return rc;
	if (host->ssl_ciphers) {
		char why[256];
		path_key(kp, ep, "ssl_ciphers");
		if (route_validate_server_ciphers(host->ssl_ciphers, why, sizeof(why)) != 0)
			return fail(p, WEIR_EINVAL, kp, "%s", why);
	}
	if ((rc = opt_array(p, h, ep, "routes", &routes, &nr)) != 0)
		return rc;
	if (nr == 0)
		return 0;
	path_key(kp, ep, "routes");
	host->routes = calloc(nr, sizeof(*host->routes));
	if (!host->routes)
		return oom(p, kp);
	host->nroutes = nr;
	for (size_t j = 0; j < nr; j++) {
		json_object *r;
		path_index(rp, kp, j);
		if ((rc = elem_object(p, routes, j, rp, &r)) != 0 ||
		    (rc = parse_route(p, r, rp, lim->nbackends, &host->routes[j])) != 0)
			return rc;
	}
	return 0;
}

static int parse_hosts(struct parser *p, json_object *root, struct route_table *t)
{
	json_object *arr;
	size_t n;
	char ep[PATH_MAX_LEN], kp[PATH_MAX_LEN];
	int rc = opt_array(p, root, "", "hosts", &arr, &n);
	if (rc != 0 || n == 0)
		return rc;
	t->hosts = calloc(n, sizeof(*t->hosts));
	if (!t->hosts)
		return oom(p, "hosts");
	t->nhosts = n;
	struct host_limits lim = {t->nbackends, t->ncerts, t->ncas};
	for (size_t i = 0; i < n; i++) {
		path_index(ep, "hosts", i);
		if ((rc = parse_host(p, json_object_array_get_idx(arr, i), ep, &lim,
		                     &t->hosts[i])) != 0)
			return rc;
	}
	const char **names = malloc(n * sizeof(*names));
	const char *dup;
	if (!names)
		return oom(p, "hosts");
	for (size_t i = 0; i < n; i++)
		names[i] = t->hosts[i].name;
	rc = find_duplicate(p, "hosts", names, n, &dup);
	free(names);
	if (rc == 0 && dup) {
		for (size_t i = n; i-- > 0;) {
			if (strcmp(t->hosts[i].name, dup) == 0) {
				path_index(ep, "hosts", i);
				path_key(kp, ep, "name");
				break;
			}
		}
		return fail(p, WEIR_EINVAL, kp, "duplicate host \"%.64s\"", dup);
	}
	return rc;
}

static const char *const endpoint_keys[] = {"address", "port", "weight", "draining", NULL};
static const char *const backend_keys[] = {"name", "endpoints", "external_name", "external_port",
                                           NULL};

static int parse_endpoint(struct parser *p, json_object *obj, const char *path,
                          struct route_endpoint *e)
{
	int rc;
	int64_t port = 0, weight = 1;
	char kp[PATH_MAX_LEN], why[256];
	bool present;

	if ((rc = check_keys(p, obj, path, endpoint_keys)) != 0 ||
	    (rc = req_str(p, obj, path, "address", 0, &e->address)) != 0)
		return rc;
	if (route_validate_address(e->address, why, sizeof(why)) != 0) {
		path_key(kp, path, "address");
		return fail(p, WEIR_EINVAL, kp, "%s", why);
	}
	if ((rc = opt_int(p, obj, path, "port", 1, 65535, &port, &present)) != 0)
		return rc;
	if (!present) {
		path_key(kp, path, "port");
		return fail(p, WEIR_EINVAL, kp, "required key missing");
	}
	if ((rc = opt_int(p, obj, path, "weight", 1, UINT32_MAX, &weight, NULL)) != 0 ||
	    (rc = opt_bool(p, obj, path, "draining", &e->draining)) != 0)
		return rc;
	e->port = (uint16_t)port;
	e->weight = (uint32_t)weight;
	return 0;
}

/* external_name and external_port of backend b (ne endpoints listed). */
static int parse_external(struct parser *p, json_object *b, const char *path, size_t ne,
                          struct route_backend *be)
{
	int64_t port = 0;
	char kp[PATH_MAX_LEN], field[32], why[256];
	int rc;
	if ((rc = opt_str(p, b, path, "external_name", STR_NULLABLE, &be->external_name)) != 0 ||
	    (rc = opt_int(p, b, path, "external_port", 0, 65535, &port, NULL)) != 0)
		return rc;
	be->external_port = (uint16_t)port;
	if (route_validate_external(be->external_name, be->external_port, ne, field, sizeof(field),
	                            why, sizeof(why)) != 0) {
		path_key(kp, path, field);
		return fail(p, WEIR_EINVAL, kp, "%s", why);
	}
	return 0;
}

/* One backend object b (JSON path ep) into be, which the caller zeroed. */
static int parse_backend(struct parser *p, json_object *b, const char *ep, struct route_backend *be)
{
	json_object *eps;
	size_t ne;
	char kp[PATH_MAX_LEN], xp[PATH_MAX_LEN];
	int rc;
	if ((rc = str_default(p, ep, "", &be->name)) != 0)
		return rc;
	if (json_object_get_type(b) != json_type_object)
		return fail(p, WEIR_EINVAL, ep, "must be an object, not %s",
		            type_name(json_object_get_type(b)));
	if ((rc = check_keys(p, b, ep, backend_keys)) != 0 ||
	    (rc = opt_str(p, b, ep, "name", 0, &be->name)) != 0 ||
	    (rc = opt_array(p, b, ep, "endpoints", &eps, &ne)) != 0 ||
	    (rc = parse_external(p, b, ep, ne, be)) != 0)
		return rc;
	if (ne == 0)
		return 0;
	path_key(kp, ep, "endpoints");
	be->endpoints = calloc(ne, sizeof(*be->endpoints));
	if (!be->endpoints)
		return oom(p, kp);
	be->nendpoints = ne;
	for (size_t j = 0; j < ne; j++) {
		json_object *e;
		path_index(xp, kp, j);
		if ((rc = elem_object(p, eps, j, xp, &e)) != 0 ||
		    (rc = parse_endpoint(p, e, xp, &be->endpoints[j])) != 0)
			return rc;
	}
	return 0;
}

static int parse_backends(struct parser *p, json_object *root, struct route_table *t)
{
	json_object *arr;
	size_t n;
	char ep[PATH_MAX_LEN], kp[PATH_MAX_LEN];
	int rc = opt_array(p, root, "", "backends", &arr, &n);
	if (rc != 0 || n == 0)
		return rc;
	t->backends = calloc(n, sizeof(*t->backends));
	if (!t->backends)
		return oom(p, "backends");
	t->nbackends = n;
	for (size_t i = 0; i < n; i++) {
		path_index(ep, "backends", i);
		if ((rc = parse_backend(p, json_object_array_get_idx(arr, i), ep,
		                        &t->backends[i])) != 0)
			return rc;
	}
	/* Names are unique; unnamed ("") backends of a hand-written table are
	 * exempt. */
	const char **names = malloc(n * sizeof(*names));
	size_t nn = 0;
	const char *dup;
	if (!names)
		return oom(p, "backends");
	for (size_t i = 0; i < n; i++)
		if (t->backends[i].name[0])
			names[nn++] = t->backends[i].name;
	rc = find_duplicate(p, "backends", names, nn, &dup);
	free(names);
	if (rc == 0 && dup) {
		for (size_t i = n; i-- > 0;) {
			if (strcmp(t->backends[i].name, dup) == 0) {
				path_index(ep, "backends", i);
				path_key(kp, ep, "name");
				break;
			}
		}
		return fail(p, WEIR_EINVAL, kp, "duplicate backend name \"%.64s\"", dup);
	}
	return rc;
}

static const char *const cert_keys[] = {"name", "cert_pem", "key_pem", NULL};

/* One certificate object c (JSON path ep) into ce, which the caller zeroed. */
static int parse_cert(struct parser *p, json_object *c, const char *ep, struct route_cert *ce)
{
	int rc;
	if ((rc = str_default(p, ep, "", &ce->name)) != 0)
		return rc;
	if (json_object_get_type(c) != json_type_object)
		return fail(p, WEIR_EINVAL, ep, "must be an object, not %s",
		            type_name(json_object_get_type(c)));
	if ((rc = check_keys(p, c, ep, cert_keys)) != 0 ||
	    (rc = opt_str(p, c, ep, "name", 0, &ce->name)) != 0 ||
	    (rc = req_str(p, c, ep, "cert_pem", STR_MULTILINE, &ce->cert_pem)) != 0 ||
	    (rc = req_str(p, c, ep, "key_pem", STR_MULTILINE, &ce->key_pem)) != 0)
		return rc;
	return 0;
}

static int parse_certs(struct parser *p, json_object *root, struct route_table *t)
{
	json_object *arr;
	size_t n;
	char ep[PATH_MAX_LEN];
	int rc = opt_array(p, root, "", "certs", &arr, &n);
	if (rc != 0 || n == 0)
		return rc;
	t->certs = calloc(n, sizeof(*t->certs));
	if (!t->certs)
		return oom(p, "certs");
	t->ncerts = n;
	for (size_t i = 0; i < n; i++) {
		path_index(ep, "certs", i);
		if ((rc = parse_cert(p, json_object_array_get_idx(arr, i), ep, &t->certs[i])) != 0)
			return rc;
	}
	return 0;
}

/* A version 2 index: "hosts" and "certs" are arrays of shard ids (a cert
 * slot may be "", a hole). The certs array of t gets one zeroed entry per
 * id, so indexes into it are checked as in version 1. */
static int parse_shard_ids(struct parser *p, json_object *root, const char *key, bool holes,
                           char ***ids, size_t *nids)
{
	json_object *arr;
	size_t n;
	char ep[PATH_MAX_LEN];
	int rc = opt_array(p, root, "", key, &arr, &n);
	if (rc != 0 || n == 0)
		return rc;
	*ids = calloc(n, sizeof(**ids));
	if (!*ids)
		return oom(p, key);
	*nids = n;
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		path_index(ep, key, i);
		if (json_object_get_type(v) != json_type_string)
			return fail(p, WEIR_EINVAL, ep, "must be a shard id string, not %s",
			            type_name(json_object_get_type(v)));
		const char *s = json_object_get_string(v);
		if (!route_shard_id_valid(s) && !(holes && s[0] == '\0'))
			return fail(p, WEIR_EINVAL, ep,
			            "not a shard id (64 lowercase hex digits%s)",
			            holes ? " or \"\"" : "");
		(*ids)[i] = strdup(s);
		if (!(*ids)[i])
			return oom(p, ep);
	}
	return 0;
}

static const char *const ca_keys[] = {"name", "ca_pem", "crl_pem", NULL};

static int parse_cas(struct parser *p, json_object *root, struct route_table *t)
{
	json_object *arr, *c;
	size_t n;
	char ep[PATH_MAX_LEN];
	int rc = opt_array(p, root, "", "cas", &arr, &n);
	if (rc != 0 || n == 0)
		return rc;
	t->cas = calloc(n, sizeof(*t->cas));
	if (!t->cas)
		return oom(p, "cas");
	t->ncas = n;
	for (size_t i = 0; i < n; i++) {
		struct route_ca *ca = &t->cas[i];
		path_index(ep, "cas", i);
		if ((rc = str_default(p, ep, "", &ca->name)) != 0 ||
		    (rc = elem_object(p, arr, i, ep, &c)) != 0 ||
		    (rc = check_keys(p, c, ep, ca_keys)) != 0 ||
		    (rc = opt_str(p, c, ep, "name", 0, &ca->name)) != 0 ||
		    (rc = req_str(p, c, ep, "ca_pem", STR_MULTILINE, &ca->ca_pem)) != 0 ||
		    (rc = opt_str(p, c, ep, "crl_pem", STR_MULTILINE | STR_NULLABLE,
		                  &ca->crl_pem)) != 0)
			return rc;
	}
	return 0;
}

static const char *const backend_tls_profile_keys[] = {"name",      "verify",  "verify_depth",
                                                       "protocols", "ciphers", "ca_pem",
                                                       "cert_pem",  "key_pem", NULL};

static int parse_backend_tls(struct parser *p, json_object *root, struct route_table *t)
{
	json_object *arr, *o;
	size_t n;
	char ep[PATH_MAX_LEN], kp[PATH_MAX_LEN], field[64], why[256];
	int rc = opt_array(p, root, "", "backend_tls", &arr, &n);
	if (rc != 0 || n == 0)
		return rc;
	t->backend_tls = calloc(n, sizeof(*t->backend_tls));
	if (!t->backend_tls)
		return oom(p, "backend_tls");
	t->nbackend_tls = n;
	for (size_t i = 0; i < n; i++) {
		struct route_backend_tls_profile *b = &t->backend_tls[i];
		b->verify_depth = 1;
		path_index(ep, "backend_tls", i);
		if ((rc = str_default(p, ep, "", &b->name)) != 0 ||
		    (rc = elem_object(p, arr, i, ep, &o)) != 0 ||
		    (rc = check_keys(p, o, ep, backend_tls_profile_keys)) != 0 ||
		    (rc = opt_str(p, o, ep, "name", 0, &b->name)) != 0 ||
		    (rc = opt_bool(p, o, ep, "verify", &b->verify)) != 0 ||
		    (rc = opt_u32(p, o, ep, "verify_depth", &b->verify_depth)) != 0 ||
		    (rc = opt_str(p, o, ep, "protocols", STR_NULLABLE, &b->protocols)) != 0 ||
		    (rc = opt_str(p, o, ep, "ciphers", STR_NULLABLE, &b->ciphers)) != 0 ||
		    (rc = opt_str(p, o, ep, "ca_pem", STR_NULLABLE | STR_MULTILINE, &b->ca_pem)) !=
		        0 ||
		    (rc = opt_str(p, o, ep, "cert_pem", STR_NULLABLE | STR_MULTILINE,
		                  &b->cert_pem)) != 0 ||
		    (rc = opt_str(p, o, ep, "key_pem", STR_NULLABLE | STR_MULTILINE,
		                  &b->key_pem)) != 0)
			return rc;
		if (route_validate_backend_tls_profile(b, field, sizeof(field), why, sizeof(why)) !=
		    0) {
			path_key(kp, ep, field);
			return fail(p, WEIR_EINVAL, kp, "%s", why);
		}
	}
	p->nbackend_tls = n;
	return 0;
}

static const char *const passthrough_keys[] = {"host", "backend", "allow", "deny", NULL};

static int parse_passthrough(struct parser *p, json_object *root, struct route_table *t)
{
	json_object *arr, *o;
	size_t n;
	char ep[PATH_MAX_LEN], kp[PATH_MAX_LEN];
	int rc = opt_array(p, root, "", "passthrough", &arr, &n);
	if (rc != 0 || n == 0)
		return rc;
	t->passthrough = calloc(n, sizeof(*t->passthrough));
	if (!t->passthrough)
		return oom(p, "passthrough");
	t->npassthrough = n;
	for (size_t i = 0; i < n; i++) {
		struct route_passthrough *pt = &t->passthrough[i];
		pt->backend = -1;
		path_index(ep, "passthrough", i);
		if ((rc = elem_object(p, arr, i, ep, &o)) != 0 ||
		    (rc = check_keys(p, o, ep, passthrough_keys)) != 0 ||
		    (rc = req_str(p, o, ep, "host", 0, &pt->host)) != 0)
			return rc;
		path_key(kp, ep, "host");
		if ((rc = check_host_name(p, kp, pt->host, ROUTE_HOST_EXACT)) != 0)
			return rc;
		if (!json_object_object_get_ex(o, "backend", NULL)) {
			path_key(kp, ep, "backend");
			return fail(p, WEIR_EINVAL, kp, "required key missing");
		}
		if ((rc = opt_index(p, o, ep, "backend", t->nbackends, false, &pt->backend)) != 0 ||
		    (rc = parse_cidrs(p, o, ep, "allow", &pt->allow, &pt->nallow)) != 0 ||
		    (rc = parse_cidrs(p, o, ep, "deny", &pt->deny, &pt->ndeny)) != 0)
			return rc;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(t->passthrough[j].host, pt->host) == 0)
				return fail(p, WEIR_EINVAL, kp, "duplicate host \"%.64s\"",
				            pt->host);
		}
	}
	return 0;
}

static const char *const settings_keys[] = {"trusted_proxies",
                                            "max_header_bytes",
                                            "max_header_line",
                                            "upstream_head_max",
                                            "header_timeout_ms",
                                            "keepalive_timeout_ms",
                                            "upstream_keepalive",
                                            "drain_window_ms",
                                            "use_forwarded_headers",
                                            "compute_full_forwarded_for",
                                            "use_proxy_protocol",
                                            "forwarded_for_header",
                                            "proxy_real_ip_cidr",
                                            "hsts",
                                            "hsts_max_age",
                                            "hsts_include_subdomains",
                                            "hsts_preload",
                                            "max_connections",
                                            "ssl_protocols",
                                            "ssl_ciphers",
                                            "block_cidrs",
                                            "block_user_agents",
                                            "block_referers",
                                            "access_log",
                                            "access_log_format",
                                            "access_log_escape",
                                            "access_log_skip",
                                            "use_gzip",
                                            "gzip_level",
                                            "gzip_min_length",
                                            "gzip_types",
                                            "enable_brotli",
                                            "brotli_level",
                                            "brotli_min_length",
                                            "brotli_types",
                                            "server_tokens",
                                            "limit_req_status",
                                            "limit_conn_status",
                                            "allow_backend_server_header",
                                            "use_http2",
                                            "http2_max_concurrent_streams",
                                            "http2_cleartext",
                                            "http2_max_field_size",
                                            "http2_max_header_size",
                                            NULL};
static const char *const log_escape_names[] = {"default", "json", "none", NULL};
static const char *const list_keys[ROUTE_INDEX_KINDS] = {"host_lists", "backend_lists",
                                                         "cert_lists"};
static const char *const top_keys[] = {
    "version",     "generation", "settings",      "hosts",           "backends",
    "certs",       "cas",        "default_cert",  "default_backend", "passthrough",
    "backend_tls", "host_lists", "backend_lists", "cert_lists",      NULL};

static int parse_settings(struct parser *p, json_object *root, struct route_settings *s)
{
	json_object *o;
	int rc;
	char err[256], path[PATH_MAX_LEN];
	if ((rc = opt_object(p, root, "", "settings", &o)) != 0 || !o)
		return rc;
	if ((rc = check_keys(p, o, "settings", settings_keys)) != 0 ||
	    (rc = parse_cidrs(p, o, "settings", "trusted_proxies", &s->trusted_proxies,
	                      &s->ntrusted_proxies)) != 0 ||
	    (rc = opt_u32(p, o, "settings", "max_header_bytes", &s->max_header_bytes)) != 0 ||
	    (rc = opt_u32(p, o, "settings", "max_header_line", &s->max_header_line)) != 0 ||
	    (rc = opt_u32(p, o, "settings", "upstream_head_max", &s->upstream_head_max)) != 0 ||
	    (rc = opt_u32(p, o, "settings", "header_timeout_ms", &s->header_timeout_ms)) != 0 ||
	    (rc = opt_u32(p, o, "settings", "keepalive_timeout_ms", &s->keepalive_timeout_ms)) !=
	        0 ||
	    (rc = opt_u32(p, o, "settings", "upstream_keepalive", &s->upstream_keepalive)) != 0 ||
	    (rc = opt_u32(p, o, "settings", "drain_window_ms", &s->drain_window_ms)) != 0 ||
	    (rc = opt_u32(p, o, "settings", "max_connections", &s->max_connections)) != 0 ||
	    (rc = opt_bool(p, o, "settings", "use_forwarded_headers", &s->use_forwarded_headers)) !=
	        0 ||
	    (rc = opt_bool(p, o, "settings", "compute_full_forwarded_for",
	                   &s->compute_full_forwarded_for)) != 0 ||
	    (rc = opt_bool(p, o, "settings", "use_proxy_protocol", &s->use_proxy_protocol)) != 0 ||
	    (rc = opt_str(p, o, "settings", "forwarded_for_header", STR_DEFAULTED,
	                  &s->forwarded_for_header)) != 0 ||
	    (rc = parse_cidrs(p, o, "settings", "proxy_real_ip_cidr", &s->proxy_real_ip_cidr,
	                      &s->nproxy_real_ip_cidr)) != 0 ||
	    (rc = opt_bool(p, o, "settings", "hsts", &s->hsts)) != 0 ||
	    (rc = opt_u32(p, o, "settings", "hsts_max_age", &s->hsts_max_age)) != 0 ||
	    (rc = opt_bool(p, o, "settings", "hsts_include_subdomains",
	                   &s->hsts_include_subdomains)) != 0 ||
	    (rc = opt_bool(p, o, "settings", "hsts_preload", &s->hsts_preload)) != 0 ||
	    (rc = opt_str(p, o, "settings", "ssl_protocols", STR_NULLABLE, &s->ssl_protocols)) !=
	        0 ||
	    (rc = opt_str(p, o, "settings", "ssl_ciphers", STR_NULLABLE, &s->ssl_ciphers)) != 0 ||
	    (rc = parse_cidrs(p, o, "settings", "block_cidrs", &s->block_cidrs,
	                      &s->nblock_cidrs)) != 0 ||
	    (rc = parse_names(p, o, "settings", "block_user_agents", &s->block_user_agents,
	                      &s->nblock_user_agents)) != 0 ||
	    (rc = parse_names(p, o, "settings", "block_referers", &s->block_referers,
	                      &s->nblock_referers)) != 0 ||
	    (rc = opt_bool(p, o, "settings", "access_log", &s->access_log)) != 0 ||
	    (rc = opt_str(p, o, "settings", "access_log_format", STR_NULLABLE,
	                  &s->access_log_format)) != 0 ||
	    (rc = opt_enum(p, o, "settings", "access_log_escape", log_escape_names,
	                   &s->access_log_escape)) != 0 ||
	    (rc = parse_names(p, o, "settings", "access_log_skip", &s->access_log_skip,
	                      &s->naccess_log_skip)) != 0 ||
	    (rc = opt_bool(p, o, "settings", "use_gzip", &s->use_gzip)) != 0 ||
	    (rc = opt_u32(p, o, "settings", "gzip_level", &s->gzip_level)) != 0 ||
	    (rc = opt_u32(p, o, "settings", "gzip_min_length", &s->gzip_min_length)) != 0 ||
	    (rc = opt_str(p, o, "settings", "gzip_types", STR_DEFAULTED, &s->gzip_types)) != 0 ||
	    (rc = opt_bool(p, o, "settings", "enable_brotli", &s->enable_brotli)) != 0 ||
	    (rc = opt_u32(p, o, "settings", "brotli_level", &s->brotli_level)) != 0 ||
	    (rc = opt_u32(p, o, "settings", "brotli_min_length", &s->brotli_min_length)) != 0 ||
	    (rc = opt_str(p, o, "settings", "brotli_types", STR_DEFAULTED, &s->brotli_types)) !=
	        0 ||
	    (rc = opt_bool(p, o, "settings", "server_tokens", &s->server_tokens)) != 0 ||
	    (rc = opt_bool(p, o, "settings", "allow_backend_server_header",
	                   &s->allow_backend_server_header)) != 0 ||
	    (rc = opt_u32(p, o, "settings", "limit_req_status", &s->limit_req_status)) != 0 ||
	    (rc = opt_u32(p, o, "settings", "limit_conn_status", &s->limit_conn_status)) != 0 ||
	    (rc = opt_bool(p, o, "settings", "use_http2", &s->use_http2)) != 0 ||
	    (rc = opt_u32(p, o, "settings", "http2_max_concurrent_streams",
	                  &s->http2_max_concurrent_streams)) != 0 ||
	    (rc = opt_bool(p, o, "settings", "http2_cleartext", &s->http2_cleartext)) != 0 ||
	    (rc = opt_u32(p, o, "settings", "http2_max_field_size", &s->http2_max_field_size)) !=
	        0 ||
	    (rc = opt_u32(p, o, "settings", "http2_max_header_size", &s->http2_max_header_size)) !=
	        0)
		return rc;
	if (s->http2_max_field_size > ROUTE_HTTP2_FIELD_MAX)
		return fail(p, WEIR_EINVAL, "settings.http2_max_field_size", "%u is above %u",
		            (unsigned)s->http2_max_field_size, ROUTE_HTTP2_FIELD_MAX);
	if (s->http2_max_header_size > ROUTE_HTTP2_HEADER_MAX)
		return fail(p, WEIR_EINVAL, "settings.http2_max_header_size", "%u is above %u",
		            (unsigned)s->http2_max_header_size, ROUTE_HTTP2_HEADER_MAX);
	if (s->http2_max_concurrent_streams < 1 || s->http2_max_concurrent_streams > 65535)
		return fail(p, WEIR_EINVAL, "settings.http2_max_concurrent_streams",
		            "%u is not between 1 and 65535",
		            (unsigned)s->http2_max_concurrent_streams);
	if (s->limit_req_status < 400 || s->limit_req_status > 599)
		return fail(p, WEIR_EINVAL, "settings.limit_req_status",
		            "%u is not between 400 and 599", (unsigned)s->limit_req_status);
	if (s->limit_conn_status < 400 || s->limit_conn_status > 599)
		return fail(p, WEIR_EINVAL, "settings.limit_conn_status",
		            "%u is not between 400 and 599", (unsigned)s->limit_conn_status);
	if (s->access_log_format && log_format_check(s->access_log_format, err, sizeof(err)))
		return fail(p, WEIR_EINVAL, "settings.access_log_format", "%s", err);
	if (s->upstream_head_max < ROUTE_HEAD_MAX_MIN || s->upstream_head_max > ROUTE_HEAD_MAX_MAX)
		return fail(p, WEIR_EINVAL, "settings.upstream_head_max",
		            "%u is not between %u and %u", (unsigned)s->upstream_head_max,
		            ROUTE_HEAD_MAX_MIN, ROUTE_HEAD_MAX_MAX);
	if (s->gzip_level < 1 || s->gzip_level > 9)
		return fail(p, WEIR_EINVAL, "settings.gzip_level", "%u is not between 1 and 9",
		            (unsigned)s->gzip_level);
	if (s->gzip_types && route_validate_media_types(s->gzip_types, err, sizeof(err)) != 0)
		return fail(p, WEIR_EINVAL, "settings.gzip_types", "%s", err);
	if (s->brotli_level > 11)
		return fail(p, WEIR_EINVAL, "settings.brotli_level", "%u is not between 0 and 11",
		            (unsigned)s->brotli_level);
	if (s->brotli_types && route_validate_media_types(s->brotli_types, err, sizeof(err)) != 0)
		return fail(p, WEIR_EINVAL, "settings.brotli_types", "%s", err);
	if (s->forwarded_for_header &&
	    route_validate_token(s->forwarded_for_header, err, sizeof(err)) != 0)
		return fail(p, WEIR_EINVAL, "settings.forwarded_for_header", "%s", err);
	if (s->ssl_protocols && route_validate_tls_protocols(s->ssl_protocols, err, sizeof(err)))
		return fail(p, WEIR_EINVAL, "settings.ssl_protocols", "%s", err);
	if (s->ssl_ciphers && route_validate_server_ciphers(s->ssl_ciphers, err, sizeof(err)))
		return fail(p, WEIR_EINVAL, "settings.ssl_ciphers", "%s", err);
	for (size_t i = 0; i < s->nblock_user_agents; i++) {
		path_index(path, "settings.block_user_agents", i);
		if (route_validate_block_pattern(s->block_user_agents[i], err, sizeof(err)))
			return fail(p, WEIR_EINVAL, path, "%s", err);
	}
	for (size_t i = 0; i < s->nblock_referers; i++) {
		path_index(path, "settings.block_referers", i);
		if (route_validate_block_pattern(s->block_referers[i], err, sizeof(err)))
			return fail(p, WEIR_EINVAL, path, "%s", err);
	}
	return 0;
}

/* Line number (1-based) of byte offset off in json. */
static unsigned line_of(const char *json, size_t len, size_t off)
{
	unsigned line = 1;
	for (size_t i = 0; i < off && i < len; i++)
		if (json[i] == '\n')
			line++;
	return line;
}

/* ix NULL: only version 1 is accepted; else version 2 (an index) too, its
 * shard ids going into ix. */
static int parse_document(struct parser *p, json_object *root, struct route_table *t,
                          struct route_index *ix)
{
	int rc;
	int64_t version = 0, generation = 0;
	bool present;

	if (json_object_get_type(root) != json_type_object)
		return fail(p, WEIR_EINVAL, "", "top level must be an object, not %s",
		            type_name(json_object_get_type(root)));
	/* The version first: a table of another version is refused whole,
	 * whatever else it holds. */
	if ((rc = opt_int(p, root, "", "version", INT64_MIN, INT64_MAX, &version, &present)) != 0) {
		if (json_object_object_get_ex(root, "version", NULL))
			return fail(p, WEIR_EVERSION, "version", "must be the integer %d",
			            ROUTE_TABLE_VERSION);
		return rc;
	}
	if (!present)
		return fail(p, WEIR_EVERSION, "version", "required key missing");
	if (version == ROUTE_INDEX_VERSION && !ix)
		return fail(p, WEIR_EVERSION, "version",
		            "version %d is a sharded index: load it with its shards directory",
		            ROUTE_INDEX_VERSION);
	if (version != ROUTE_TABLE_VERSION && version != ROUTE_INDEX_VERSION && !ix)
		return fail(p, WEIR_EVERSION, "version", "unsupported version %lld (want %d)",
		            (long long)version, ROUTE_TABLE_VERSION);
	if (version != ROUTE_TABLE_VERSION && version != ROUTE_INDEX_VERSION)
		return fail(p, WEIR_EVERSION, "version", "unsupported version %lld (want %d or %d)",
		            (long long)version, ROUTE_TABLE_VERSION, ROUTE_INDEX_VERSION);
	bool index = version == ROUTE_INDEX_VERSION;
	t->version = (uint32_t)version;
	/* Id lists the scanner took are emptied by now: one still holding
	 * something is not an array of shard ids, or not in an index. */
	for (int k = 0; k < ROUTE_INDEX_KINDS; k++) {
		json_object *arr;
		size_t n;
		if ((rc = opt_array(p, root, "", list_keys[k], &arr, &n)) != 0)
			return rc;
		if (n && !index)
			return fail(p, WEIR_EINVAL, list_keys[k],
			            "only an index (version %d) has id lists", ROUTE_INDEX_VERSION);
		if (n)
			return fail(p, WEIR_EINVAL, list_keys[k],
			            "must be an array of shard ids (64 lowercase hex digits)");
	}
	if ((rc = check_keys(p, root, "", top_keys)) != 0 ||
	    (rc = opt_int(p, root, "", "generation", 0, INT64_MAX, &generation, NULL)) != 0 ||
	    (rc = parse_settings(p, root, &t->settings)) != 0)
		return rc;
	if (index) {
		if ((rc = parse_shard_ids(p, root, "backends", true, &ix->backends,
		                          &ix->nbackends)) != 0 ||
		    (rc = parse_shard_ids(p, root, "certs", true, &ix->certs, &ix->ncerts)) != 0)
			return rc;
		if (ix->nbackends) {
			t->backends = calloc(ix->nbackends, sizeof(*t->backends));
			if (!t->backends)
				return oom(p, "backends");
			t->nbackends = ix->nbackends;
		}
		if (ix->ncerts) {
			t->certs = calloc(ix->ncerts, sizeof(*t->certs));
			if (!t->certs)
				return oom(p, "certs");
			t->ncerts = ix->ncerts;
		}
	} else if ((rc = parse_backends(p, root, t)) != 0 || (rc = parse_certs(p, root, t)) != 0) {
		return rc;
	}
	if ((rc = parse_backend_tls(p, root, t)) != 0 || (rc = parse_cas(p, root, t)) != 0)
		return rc;
	if (index)
		rc = parse_shard_ids(p, root, "hosts", false, &ix->hosts, &ix->nhosts);
	else
		rc = parse_hosts(p, root, t);
	if (rc != 0 ||
	    (rc = opt_index(p, root, "", "default_cert", t->ncerts, true, &t->default_cert)) != 0 ||
	    (rc = opt_index(p, root, "", "default_backend", t->nbackends, true,
	                    &t->default_backend)) != 0 ||
	    (rc = parse_passthrough(p, root, t)) != 0)
		return rc;
	if (index && t->default_cert >= 0 && ix->certs[t->default_cert][0] == '\0')
		return fail(p, WEIR_EINVAL, "default_cert", "names an empty certificate slot");
	if (index && t->default_backend >= 0 && ix->backends[t->default_backend][0] == '\0')
		return fail(p, WEIR_EINVAL, "default_backend", "names an empty backend slot");
	for (size_t i = 0; index && i < t->npassthrough; i++) {
		if (ix->backends[t->passthrough[i].backend][0] == '\0') {
			char kp[PATH_MAX_LEN], ep[PATH_MAX_LEN];
			path_index(ep, "passthrough", i);
			path_key(kp, ep, "backend");
			return fail(p, WEIR_EINVAL, kp, "names an empty backend slot");
		}
	}
	t->generation = (uint64_t)generation;
	return 0;
}

/* Parse a whole JSON document of len bytes into *root (caller puts it). */
static int parse_json(struct parser *p, const char *json, size_t len, json_object **root)
{
	struct json_tokener *tok = NULL;
	int rc = 0;
	*root = NULL;
	if (len > ROUTE_TABLE_MAX_BYTES)
		return fail(p, WEIR_ETOOBIG, "", "table of %zu bytes is over the %u byte limit",
		            len, ROUTE_TABLE_MAX_BYTES);
	tok = json_tokener_new();
	if (!tok)
		return oom(p, "");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *r = json_tokener_parse_ex(tok, json, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_continue) {
		rc = fail(p, WEIR_EPARSE, "", "json: unexpected end of document (line %u)",
		          line_of(json, len, len));
		goto out;
	}
	if (jerr != json_tokener_success || !r) {
		rc = fail(p, WEIR_EPARSE, "", "json: %s at line %u", json_tokener_error_desc(jerr),
		          line_of(json, len, end));
		goto out;
	}
	for (; end < len; end++) {
		if (!strchr(" \t\r\n", json[end])) {
			rc = fail(p, WEIR_EPARSE, "", "json: trailing data at line %u",
			          line_of(json, len, end));
			goto out;
		}
	}
	*root = r;
	r = NULL;
out:
	json_object_put(r);
	json_tokener_free(tok);
	return rc;
}

void route_index_free(struct route_index *ix)
{
	if (!ix)
		return;
	for (size_t i = 0; i < ix->nhosts && !ix->ids_mem; i++)
		free(ix->hosts[i]);
	for (size_t i = 0; i < ix->ncerts && !ix->ids_mem; i++)
		free(ix->certs[i]);
	for (size_t i = 0; i < ix->nbackends && !ix->ids_mem; i++)
		free(ix->backends[i]);
	free(ix->ids_mem);
	for (int k = 0; k < ROUTE_INDEX_KINDS; k++)
		free(ix->lists[k]);
	free(ix->backends);
	free(ix->hosts);
	free(ix->certs);
	free(ix);
}

bool route_shard_id_valid(const char *s)
{
	/* Without a branch per digit: hex digits are random, so a test per
	 * character mispredicts half the time (at 20,000 ids an index took
	 * milliseconds to check). */
	if (strnlen(s, ROUTE_SHARD_ID_LEN + 1) != ROUTE_SHARD_ID_LEN)
		return false;
	unsigned bad = 0;
	for (size_t i = 0; i < ROUTE_SHARD_ID_LEN; i++) {
		unsigned c = (unsigned char)s[i];
		bad |= (c - '0' > 9u) & (c - 'a' > 5u);
	}
	return !bad;
}

/* ------------------------------------- version 2 index: the id arrays */

/* The id arrays of an index are most of its bytes (10,000 hosts: 2 MB of
 * hex); they are read by a scanner that builds no JSON objects, the rest of
 * the index by the parser. Anything the scanner does not take as it is
 * (not a version 2 index, a key twice, an element that is not an id, an
 * escape in a key) leaves the whole document to the parser, which reports
 * the error with its path. */

struct id_scan {
	const char *s;
	size_t len, i;
};

static void scan_ws(struct id_scan *sc)
{
	while (sc->i < sc->len && (sc->s[sc->i] == ' ' || sc->s[sc->i] == '\t' ||
	                           sc->s[sc->i] == '\n' || sc->s[sc->i] == '\r'))
		sc->i++;
}

/* A string at sc->i: past its closing quote, its content at *start, *n. */
static bool scan_string(struct id_scan *sc, size_t *start, size_t *n, bool *escaped)
{
	if (sc->i >= sc->len || sc->s[sc->i] != '"')
		return false;
	size_t b = ++sc->i;
	*escaped = false;
	while (sc->i < sc->len) {
		char c = sc->s[sc->i];
		if (c == '\\') {
			*escaped = true;
			sc->i += 2;
			continue;
		}
		if (c == '"') {
			*start = b;
			*n = sc->i - b;
			sc->i++;
			return true;
		}
		sc->i++;
	}
	return false;
}

/* Past one value (not checked: the parser reads it), up to the ',' or '}'
 * that follows it at this level. */
static bool scan_skip_value(struct id_scan *sc)
{
	size_t depth = 0, b, n;
	bool esc;
	while (sc->i < sc->len) {
		char c = sc->s[sc->i];
		if (c == '"') {
			if (!scan_string(sc, &b, &n, &esc))
				return false;
			continue;
		}
		if (depth == 0 && (c == ',' || c == '}'))
			return true;
		if (c == '[' || c == '{')
			depth++;
		else if (c == ']' || c == '}') {
			if (depth == 0)
				return false;
			depth--;
		}
		sc->i++;
	}
	return false;
}

struct id_array {
	const char *key;
	bool holes; /* "" allowed */
	bool seen;
	size_t open, close; /* offsets of '[' and ']' */
	size_t n, cap;
	size_t *at; /* offset of each id's first digit; ids of length 0 have it at the quote */
	bool *hole;
};

/* 1 for the bytes of a shard id: without a branch per byte (ids are random
 * digits and letters), 2 MB of them take a millisecond, not ten. */
static const unsigned char id_digit[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1};

/* A shard id in quotes at s (len bytes left, s[0] is '"'): its length
 * with the quotes (ROUTE_SHARD_ID_LEN + 2, or 2 for ""), else 0. */
static size_t scan_quoted_id(const unsigned char *s, size_t len)
{
	if (len >= 2 && s[1] == '"')
		return 2;
	if (len < ROUTE_SHARD_ID_LEN + 2 || s[ROUTE_SHARD_ID_LEN + 1] != '"')
		return 0;
	unsigned ok = 1;
	for (size_t k = 1; k <= ROUTE_SHARD_ID_LEN; k++)
		ok &= id_digit[s[k]];
	return ok ? ROUTE_SHARD_ID_LEN + 2 : 0;
}

/* The elements of the array at sc->i into a; false: not an array of ids. */
static bool scan_id_array(struct id_scan *sc, struct id_array *a, int *oom)
{
	size_t b;
	if (sc->i >= sc->len || sc->s[sc->i] != '[')
		return false;
	a->open = sc->i++;
	scan_ws(sc);
	if (sc->i < sc->len && sc->s[sc->i] == ']') {
		a->close = sc->i++;
		return true;
	}
	for (;;) {
		scan_ws(sc);
		if (sc->i >= sc->len || sc->s[sc->i] != '"')
			return false;
		size_t q = scan_quoted_id((const unsigned char *)sc->s + sc->i, sc->len - sc->i);
		bool hole = q == 2;
		if (!q || (hole && !a->holes))
			return false;
		b = sc->i + 1;
		sc->i += q;
		if (a->n == a->cap) {
			size_t cap = a->cap ? 2 * a->cap : 1024;
			size_t *at = realloc(a->at, cap * sizeof(*at));
			if (at)
				a->at = at;
			bool *h = at ? realloc(a->hole, cap * sizeof(*h)) : NULL;
			if (!h) {
				*oom = 1;
				return false;
			}
			a->hole = h;
			a->cap = cap;
		}
		a->at[a->n] = b;
		a->hole[a->n++] = hole;
		scan_ws(sc);
		if (sc->i < sc->len && sc->s[sc->i] == ',') {
			sc->i++;
			continue;
		}
		if (sc->i < sc->len && sc->s[sc->i] == ']') {
			a->close = sc->i++;
			return true;
		}
		return false;
	}
}

/* The ids of one kind as they are found: each a pointer to its 64 digits
 * (in the index, a list shard's text or a reader's ids) or to "" (a
 * hole), copied into the index's one allocation at the end. */
struct id_src {
	const char **v;
	size_t n, cap;
};

static int src_add(struct id_src *s, const char *id)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 1024;
		const char **v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return WEIR_ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = id;
	return 0;
}

/* A list shard's text: a non-empty array of ids (holes: "" allowed). Its
 * ids go to src. 0, WEIR_EINVAL (not such an array) or WEIR_ENOMEM. */
static int scan_list_text(const char *text, size_t len, bool holes, struct id_src *src)
{
	struct id_scan sc = {text, len, 0};
	struct id_array a = {.holes = holes};
	int oom = 0, rc = WEIR_EINVAL;
	scan_ws(&sc);
	if (scan_id_array(&sc, &a, &oom)) {
		scan_ws(&sc);
		if (sc.i == len && a.n)
			rc = 0;
	}
	for (size_t k = 0; rc == 0 && k < a.n; k++)
		rc = src_add(src, a.hole[k] ? "" : text + a.at[k]);
	free(a.at);
	free(a.hole);
	return oom ? WEIR_ENOMEM : rc;
}

/* The ids of kind k's lists (their ids at the offsets of arr in json)
 * from lists into src, recorded in ix->lists[k]. texts collects the texts
 * read (freed by the caller). */
static int expand_lists(struct parser *p, const char *json, const struct id_array *arr, int k,
                        const struct route_list_reader *lists, struct id_src *src,
                        struct route_index *ix, struct id_src *texts)
{
	char ep[PATH_MAX_LEN], msg[256];
	ix->lists[k] = calloc(arr->n, sizeof(*ix->lists[k]));
	if (!ix->lists[k])
		return oom(p, list_keys[k]);
	ix->nlists[k] = arr->n;
	for (size_t j = 0; j < arr->n; j++) {
		struct route_index_list *l = &ix->lists[k][j];
		memcpy(l->id, json + arr->at[j], ROUTE_SHARD_ID_LEN);
		l->id[ROUTE_SHARD_ID_LEN] = '\0';
		l->start = src->n;
		path_index(ep, list_keys[k], j);
		char *text = NULL;
		size_t len = 0, n = 0;
		char *const *ids = NULL;
		msg[0] = '\0';
		int rc = lists->read(lists->arg, k, l->id, &text, &len, &ids, &n, msg, sizeof(msg));
		if (rc != 0) {
			free(text);
			return fail(p, rc, ep, "%s", msg[0] ? msg : "cannot read the list");
		}
		if (text) {
			if ((rc = src_add(texts, text)) != 0) {
				free(text);
				return oom(p, ep);
			}
			rc = scan_list_text(text, len, k != 0, src);
			if (rc == WEIR_EINVAL)
				return fail(p, rc, ep,
				            "%s/%s.json: not a non-empty array of shard ids%s",
				            ROUTE_SHARD_DIR, l->id, k ? " or \"\"" : "");
		} else {
			for (size_t i = 0; i < n && rc == 0; i++)
				rc = src_add(src, ids[i][0] ? ids[i] : "");
		}
		if (rc != 0)
			return oom(p, ep);
		l->n = src->n - l->start;
	}
	return 0;
}

/* When json is a version 2 index whose id arrays the scanner takes: fills
 * ix with them (the ids of the lists it names read through lists) and
 * *rest (caller frees, *rest_len bytes) with json minus those arrays'
 * elements (their newlines kept, so line numbers in errors stay those of
 * json) and returns 1. 0: leave json to the parser (ix untouched). Else an
 * error (WEIR_E*, with p's message); ix may then hold part: the caller
 * frees it. */
static int scan_index_ids(struct parser *p, const char *json, size_t len,
                          const struct route_list_reader *lists, struct route_index *ix,
                          char **rest, size_t *rest_len)
{
	enum { NARR = 2 * ROUTE_INDEX_KINDS };
	struct id_scan sc = {json, len, 0};
	struct id_array arr[NARR] = {{.key = "hosts"},
	                             {.key = "backends", .holes = true},
	                             {.key = "certs", .holes = true},
	                             {.key = "host_lists"},
	                             {.key = "backend_lists"},
	                             {.key = "cert_lists"}};
	struct id_src src[ROUTE_INDEX_KINDS] = {{0}}, texts = {0};
	bool version2 = false, seen_version = false;
	int rc = 0, oom_ = 0;
	size_t b, n;
	bool esc;

	scan_ws(&sc);
	if (sc.i >= len || json[sc.i] != '{')
		goto out;
	sc.i++;
	scan_ws(&sc);
	if (sc.i < len && json[sc.i] == '}')
		goto out;
	for (;;) {
		scan_ws(&sc);
		if (!scan_string(&sc, &b, &n, &esc) || esc)
			goto out;
		scan_ws(&sc);
		if (sc.i >= len || json[sc.i] != ':')
			goto out;
		sc.i++;
		scan_ws(&sc);
		struct id_array *a = NULL;
		for (size_t k = 0; k < NARR; k++)
			if (strlen(arr[k].key) == n && memcmp(json + b, arr[k].key, n) == 0)
				a = &arr[k];
		if (a) {
			if (a->seen || !scan_id_array(&sc, a, &oom_))
				goto out;
			a->seen = true;
		} else if (n == 7 && memcmp(json + b, "version", 7) == 0) {
			size_t v = sc.i;
			if (seen_version || !scan_skip_value(&sc))
				goto out;
			seen_version = true;
			size_t e = sc.i;
			while (e > v && strchr(" \t\r\n", json[e - 1]))
				e--;
			version2 = e - v == 1 && json[v] == '0' + ROUTE_INDEX_VERSION;
		} else if (!scan_skip_value(&sc)) {
			goto out;
		}
		scan_ws(&sc);
		if (sc.i < len && json[sc.i] == ',') {
			sc.i++;
			continue;
		}
		if (sc.i < len && json[sc.i] == '}')
			break;
		goto out;
	}
	if (!version2)
		goto out;
	/* The ids of each kind: in the index, or in the lists it names. */
	for (int k = 0; k < ROUTE_INDEX_KINDS; k++) {
		const struct id_array *in = &arr[k], *ls = &arr[ROUTE_INDEX_KINDS + k];
		if (ls->n && in->n) {
			rc = fail(p, WEIR_EINVAL, list_keys[k], "given with a non-empty \"%s\"",
			          in->key);
			goto out;
		}
		if (ls->n && !lists) {
			rc = fail(p, WEIR_EINVAL, list_keys[k],
			          "an index naming id lists is read with its shards directory");
			goto out;
		}
		if (ls->n) {
			if ((rc = expand_lists(p, json, ls, k, lists, &src[k], ix, &texts)) != 0)
				goto out;
			continue;
		}
		for (size_t j = 0; j < in->n && !oom_; j++)
			oom_ = src_add(&src[k], in->hole[j] ? "" : json + in->at[j]) != 0;
	}
	if (oom_)
		goto out;
	/* The arrays in document order, each emptied but for its newlines. */
	char *r = malloc(len + 1);
	if (!r) {
		oom_ = 1;
		goto out;
	}
	size_t from = 0, w = 0;
	for (;;) {
		const struct id_array *next = NULL;
		for (size_t k = 0; k < NARR; k++)
			if (arr[k].seen && arr[k].open >= from &&
			    (!next || arr[k].open < next->open))
				next = &arr[k];
		size_t stop = next ? next->open + 1 : len;
		memcpy(r + w, json + from, stop - from);
		w += stop - from;
		if (!next)
			break;
		const char *nl = json + stop, *end = json + next->close;
		while ((nl = memchr(nl, '\n', (size_t)(end - nl)))) {
			r[w++] = '\n';
			nl++;
		}
		from = next->close;
	}
	r[w] = '\0';
	char *mem = ix->ids_mem =
	    malloc((src[0].n + src[1].n + src[2].n) * (ROUTE_SHARD_ID_LEN + 1) + 1);
	char ***out[ROUTE_INDEX_KINDS] = {&ix->hosts, &ix->backends, &ix->certs};
	size_t *nout[ROUTE_INDEX_KINDS] = {&ix->nhosts, &ix->nbackends, &ix->ncerts};
	for (int k = 0; k < ROUTE_INDEX_KINDS && mem; k++) {
		if (!src[k].n)
			continue;
		if (!(*out[k] = malloc(src[k].n * sizeof(**out[k])))) {
			mem = NULL;
			break;
		}
		*nout[k] = src[k].n;
		for (size_t j = 0; j < src[k].n; j++) {
			size_t idn = src[k].v[j][0] ? ROUTE_SHARD_ID_LEN : 0;
			memcpy(mem, src[k].v[j], idn);
			mem[idn] = '\0';
			(*out[k])[j] = mem;
			mem += ROUTE_SHARD_ID_LEN + 1;
		}
	}
	if (!mem) {
		free(r);
		oom_ = 1;
		goto out;
	}
	*rest = r;
	*rest_len = w;
	rc = 1;
out:
	for (size_t k = 0; k < NARR; k++) {
		free(arr[k].at);
		free(arr[k].hole);
	}
	for (int k = 0; k < ROUTE_INDEX_KINDS; k++)
		free(src[k].v);
	for (size_t j = 0; j < texts.n; j++)
		free((char *)texts.v[j]);
	free(texts.v);
	if (oom_)
		return oom(p, "");
	return rc;
}

int route_table_parse_index(const char *json, size_t len, const struct route_list_reader *lists,
                            struct route_table **out, struct route_index **index, char *err,
                            size_t errlen)
{
	struct parser p = {err, errlen, 0, 0};
	json_object *root = NULL;
	struct route_table *t = NULL;
	struct route_index *ix = NULL;
	int rc;

	char *rest = NULL;
	size_t rest_len = 0;

	if (err && errlen)
		err[0] = '\0';
	t = route_table_new();
	ix = calloc(1, sizeof(*ix));
	if (!t || !ix) {
		rc = oom(&p, "");
		goto out;
	}
	if (index && len <= ROUTE_TABLE_MAX_BYTES) {
		if ((rc = scan_index_ids(&p, json, len, lists, ix, &rest, &rest_len)) < 0)
			goto out;
		if (rc == 1) {
			json = rest;
			len = rest_len;
		}
	}
	if ((rc = parse_json(&p, json, len, &root)) != 0)
		goto out;
	rc = parse_document(&p, root, t, index ? ix : NULL);
	if (rc != 0)
		goto out;
	if (index) {
		if (t->version == ROUTE_INDEX_VERSION) {
			*index = ix;
			ix = NULL;
		} else {
			*index = NULL;
		}
	}
	*out = t;
	t = NULL;
out:
	free(rest);
	route_index_free(ix);
	route_table_free(t);
	json_object_put(root);
	return rc;
}

int route_table_parse_any(const char *json, size_t len, struct route_table **out,
                          struct route_index **index, char *err, size_t errlen)
{
	return route_table_parse_index(json, len, NULL, out, index, err, errlen);
}

/* SHA-256, fetched once: SHA256() looks the algorithm up at every call
 * (half the time of hashing a 300-byte shard). */
static EVP_MD *shard_md;

static void shard_md_fetch(void)
{
	shard_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void route_shard_id(const char *text, size_t len, char id[ROUTE_SHARD_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	unsigned char md[SHA256_DIGEST_LENGTH];
	pthread_once(&once, shard_md_fetch);
	if (!shard_md || EVP_Digest(text, len, md, NULL, shard_md, NULL) != 1)
		SHA256((const unsigned char *)text, len, md);
	for (size_t i = 0; i < sizeof(md); i++) {
		id[2 * i] = hex[md[i] >> 4];
		id[2 * i + 1] = hex[md[i] & 15];
	}
	id[ROUTE_SHARD_ID_LEN] = '\0';
}

int route_list_read_file(void *dir, int kind, const char *id, char **text, size_t *len,
                         char *const **ids, size_t *n, char *err, size_t errlen)
{
	(void)kind;
	(void)ids;
	(void)n;
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/%s/%s.json", (const char *)dir, ROUTE_SHARD_DIR, id) >=
	    (int)sizeof(path)) {
		snprintf(err, errlen, "directory name too long");
		return WEIR_EINVAL;
	}
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s/%s.json: %s", ROUTE_SHARD_DIR, id, strerror(e));
		return e == ENOENT ? WEIR_ENOENT : WEIR_EIO;
	}
	size_t cap = 16384, got = 0;
	char *buf = malloc(cap + 1);
	while (buf) {
		size_t r = fread(buf + got, 1, cap - got, f);
		got += r;
		if (got < cap)
			break;
		char *g = cap < ROUTE_TABLE_MAX_BYTES ? realloc(buf, 2 * cap + 1) : NULL;
		if (!g) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = g;
		cap *= 2;
	}
	bool bad = ferror(f);
	fclose(f);
	if (!buf || bad) {
		free(buf);
		snprintf(err, errlen, "%s/%s.json: %s", ROUTE_SHARD_DIR, id,
		         bad ? "read error" : "out of memory");
		return bad ? WEIR_EIO : WEIR_ENOMEM;
	}
	buf[got] = '\0';
	char hex[ROUTE_SHARD_ID_LEN + 1];
	route_shard_id(buf, got, hex);
	if (strcmp(hex, id) != 0) {
		free(buf);
		snprintf(err, errlen, "%s/%s.json: content does not match its name",
		         ROUTE_SHARD_DIR, id);
		return WEIR_EINVAL;
	}
	*text = buf;
	*len = got;
	return 0;
}

int route_id_list_serialize(char *const *ids, size_t n, char **out, size_t *len)
{
	size_t cap = 5 + n * (ROUTE_SHARD_ID_LEN + 6);
	char *b = malloc(cap), *w = b;
	if (!b)
		return WEIR_ENOMEM;
	*w++ = '[';
	*w++ = '\n';
	for (size_t i = 0; i < n; i++) {
		size_t idn = strlen(ids[i]);
		*w++ = ' ';
		*w++ = ' ';
		*w++ = '"';
		memcpy(w, ids[i], idn);
		w += idn;
		*w++ = '"';
		if (i + 1 < n)
			*w++ = ',';
		*w++ = '\n';
	}
	*w++ = ']';
	*w++ = '\n';
	*w = '\0';
	*out = b;
	*len = (size_t)(w - b);
	return 0;
}

int route_table_parse(const char *json, size_t len, struct route_table **out, char *err,
                      size_t errlen)
{
	return route_table_parse_any(json, len, out, NULL, err, errlen);
}

int route_host_shard_parse(const char *json, size_t len, struct route_host *out, char *err,
                           size_t errlen)
{
	/* Index references are checked against each index the shard is used
	 * with (route_host_check_refs), not here. */
	struct parser p = {err, errlen, INT_MAX, 0};
	struct host_limits lim = {INT_MAX, INT_MAX, INT_MAX};
	json_object *root = NULL;
	struct route_host h;
	int rc;
	if (err && errlen)
		err[0] = '\0';
	memset(&h, 0, sizeof(h));
	if ((rc = parse_json(&p, json, len, &root)) != 0)
		goto out;
	rc = parse_host(&p, root, "host", &lim, &h);
	if (rc == 0) {
		*out = h;
		memset(&h, 0, sizeof(h));
	}
out:
	route_host_cleanup(&h);
	json_object_put(root);
	return rc;
}

int route_backend_shard_parse(const char *json, size_t len, struct route_backend *out, char *err,
                              size_t errlen)
{
	struct parser p = {err, errlen, 0, 0};
	json_object *root = NULL;
	struct route_backend b;
	int rc;
	if (err && errlen)
		err[0] = '\0';
	memset(&b, 0, sizeof(b));
	if ((rc = parse_json(&p, json, len, &root)) != 0)
		goto out;
	rc = parse_backend(&p, root, "backend", &b);
	if (rc == 0) {
		*out = b;
		memset(&b, 0, sizeof(b));
	}
out:
	route_backend_cleanup(&b);
	json_object_put(root);
	return rc;
}

int route_cert_shard_parse(const char *json, size_t len, struct route_cert *out, char *err,
                           size_t errlen)
{
	struct parser p = {err, errlen, 0, 0};
	json_object *root = NULL;
	struct route_cert c;
	int rc;
	if (err && errlen)
		err[0] = '\0';
	memset(&c, 0, sizeof(c));
	if ((rc = parse_json(&p, json, len, &root)) != 0)
		goto out;
	rc = parse_cert(&p, root, "cert", &c);
	if (rc == 0) {
		*out = c;
		memset(&c, 0, sizeof(c));
	}
out:
	route_cert_cleanup(&c);
	json_object_put(root);
	return rc;
}

static void refs_note(int v, int *max)
{
	if (v > *max)
		*max = v;
}

void route_host_refs(const struct route_host *h, struct route_host_refs *r)
{
	r->backend = -1;
	r->cert = h->cert;
	r->ca = h->client_auth.ca;
	r->backend_tls = -1;
	for (size_t j = 0; j < h->nroutes; j++) {
		const struct route *rt = &h->routes[j];
		refs_note(rt->backend, &r->backend);
		refs_note(rt->canary.backend, &r->backend);
		refs_note(rt->error_backend, &r->backend);
		refs_note(rt->backend_tls, &r->backend_tls);
	}
}

int route_host_check_refs(const struct route_host_refs *r, const struct route_table *t, char *err,
                          size_t errlen)
{
	const char *what = NULL;
	int v = 0;
	size_t n = 0;
	if (r->backend >= 0 && (size_t)r->backend >= t->nbackends)
		what = "backend", v = r->backend, n = t->nbackends;
	else if (r->cert >= 0 && (size_t)r->cert >= t->ncerts)
		what = "cert", v = r->cert, n = t->ncerts;
	else if (r->ca >= 0 && (size_t)r->ca >= t->ncas)
		what = "client_auth.ca", v = r->ca, n = t->ncas;
	else if (r->backend_tls >= 0 && (size_t)r->backend_tls >= t->nbackend_tls)
		what = "backend_tls.profile", v = r->backend_tls, n = t->nbackend_tls;
	if (!what)
		return 0;
	if (err && errlen)
		snprintf(err, errlen, "%s index %d out of range (the index has %zu)", what, v, n);
	return WEIR_EINVAL;
}

/* ---------------------------------------------------------------- writer */

/* The table is written straight into one growing buffer, in the exact layout
 * json-c gives with PRETTY | SPACED | NOSLASHESCAPE (two-space indent,
 * "key": value, an empty array as "[" newline indent "]"); building a json-c
 * tree first cost most of the publish time at 10,000 Ingresses. Any
 * allocation failure sets oom and the result is dropped. */
struct writer {
	char *buf;
	size_t len, cap;
	bool oom;
	int level;     /* nesting depth of the container being written */
	bool had_item; /* the current container already holds an item */
	/* Objects opened with w_open_lazy that hold nothing yet: written out
	 * (key and "{") only when their first member is. */
	const char *pend_key[4];
	bool *pend_saved[4];
	int npend;
	const struct route_policy *def; /* defaults: members equal to them are left out */
};

static void w_raw(struct writer *w, const char *s, size_t n)
{
	if (w->oom)
		return;
	if (w->len + n + 2 > w->cap) {
		size_t cap = w->cap ? w->cap : 65536;
		while (w->len + n + 2 > cap)
			cap *= 2;
		char *nb = realloc(w->buf, cap);
		if (!nb) {
			w->oom = true;
			return;
		}
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

static void w_lit(struct writer *w, const char *s)
{
	w_raw(w, s, strlen(s));
}

static void w_indent(struct writer *w, int level)
{
	static const char spaces[] = "                                ";
	if (level <= 0)
		return;
	size_t n = (size_t)level * 2;
	while (n > 0) {
		size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;
		w_raw(w, spaces, k);
		n -= k;
	}
}

/* A JSON string literal with json-c's escapes (no "/" escape). */
static void w_quoted(struct writer *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	w_raw(w, "\"", 1);
	const char *run = s;
	for (const char *c = s; *c; c++) {
		unsigned char ch = (unsigned char)*c;
		const char *esc = NULL;
		char u[7];
		switch (ch) {
		case '\b':
			esc = "\\b";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		case '\t':
			esc = "\\t";
			break;
		case '\f':
			esc = "\\f";
			break;
		case '"':
			esc = "\\\"";
			break;
		case '\\':
			esc = "\\\\";
			break;
		default:
			if (ch < ' ') {
				u[0] = '\\';
				u[1] = 'u';
				u[2] = '0';
				u[3] = '0';
				u[4] = hex[ch >> 4];
				u[5] = hex[ch & 15];
				u[6] = '\0';
				esc = u;
			}
		}
		if (esc) {
			w_raw(w, run, (size_t)(c - run));
			w_lit(w, esc);
			run = c + 1;
		}
	}
	w_raw(w, run, strlen(run));
	w_raw(w, "\"", 1);
}

static void w_open(struct writer *w, const char *bracket, bool *saved);

/* Newlines and indentation for the top two levels only (one line per host,
 * backend and certificate): the table stays readable and a tenth the size. */
static bool w_pretty(const struct writer *w)
{
	return w->level <= 1;
}

static void w_flush_pending(struct writer *w);

/* Separator (and at the top levels, newline and indent) before the next item
 * of the current container. */
static void w_next(struct writer *w)
{
	if (w->npend)
		w_flush_pending(w);
	if (w->had_item)
		w_raw(w, ",", 1);
	if (w_pretty(w)) {
		w_raw(w, "\n", 1);
		w_indent(w, w->level + 1);
	}
	w->had_item = true;
}

static void w_key(struct writer *w, const char *key)
{
	w_next(w);
	w_quoted(w, key);
	w_raw(w, w_pretty(w) ? ": " : ":", w_pretty(w) ? 2 : 1);
}

static void w_flush_pending(struct writer *w)
{
	int n = w->npend;
	w->npend = 0;
	for (int i = 0; i < n; i++) {
		w_key(w, w->pend_key[i]);
		w_open(w, "{", w->pend_saved[i]);
	}
}

/* Opening a container saves the parent's state in *saved; close restores it. */
static void w_open(struct writer *w, const char *bracket, bool *saved)
{
	w_lit(w, bracket);
	*saved = w->had_item;
	w->had_item = false;
	w->level++;
}

static void w_close_obj(struct writer *w, bool saved)
{
	if (w->had_item && w_pretty(w)) {
		w_raw(w, "\n", 1);
		w_indent(w, w->level);
	}
	w->level--;
	w_raw(w, "}", 1);
	w->had_item = saved;
}

static void w_close_arr(struct writer *w, bool saved)
{
	if (w->had_item && w_pretty(w)) {
		w_raw(w, "\n", 1);
		w_indent(w, w->level);
	}
	w->level--;
	w_raw(w, "]", 1);
	w->had_item = saved;
}

/* An object member "key" that is left out entirely when nothing is written
 * into it before w_close_lazy. */
static void w_open_lazy(struct writer *w, const char *key, bool *saved)
{
	if (w->npend == (int)(sizeof(w->pend_key) / sizeof(w->pend_key[0])))
		w_flush_pending(w);
	*saved = false; /* set for real if the object is written; read by w_close_lazy either way */
	w->pend_key[w->npend] = key;
	w->pend_saved[w->npend] = saved;
	w->npend++;
}

static void w_close_lazy(struct writer *w, bool saved)
{
	if (w->npend)
		w->npend--; /* never written: leave it out */
	else
		w_close_obj(w, saved);
}

static void w_str(struct writer *w, const char *key, const char *s)
{
	/* NULL is written as null: it is a value ("not set"), not an absent key. */
	w_key(w, key);
	if (s)
		w_quoted(w, s);
	else
		w_raw(w, "null", 4);
}

static void w_int(struct writer *w, const char *key, int64_t v)
{
	char num[32];
	w_key(w, key);
	int n = snprintf(num, sizeof(num), "%" PRId64, v);
	w_raw(w, num, (size_t)n);
}

static void w_uint(struct writer *w, const char *key, uint64_t v)
{
	char num[32];
	w_key(w, key);
	int n = snprintf(num, sizeof(num), "%" PRIu64, v);
	w_raw(w, num, (size_t)n);
}

static void w_bool(struct writer *w, const char *key, bool v)
{
	w_key(w, key);
	if (v)
		w_raw(w, "true", 4);
	else
		w_raw(w, "false", 5);
}

/* Members equal to their default are left out: the parser gives them back. */
static void w_int_d(struct writer *w, const char *key, int64_t v, int64_t def)
{
	if (v != def)
		w_int(w, key, v);
}

static void w_bool_d(struct writer *w, const char *key, bool v, bool def)
{
	if (v != def)
		w_bool(w, key, v);
}

/* def NULL: a nullable string (absent = null); else NULL and def both mean
 * the default. */
static void w_str_d(struct writer *w, const char *key, const char *v, const char *def)
{
	if (!v || (def && strcmp(v, def) == 0))
		return;
	w_str(w, key, v);
}

static void w_cidrs(struct writer *w, const char *key, const struct route_cidr *c, size_t n)
{
	char buf[64];
	bool saved;
	if (n == 0)
		return;
	w_key(w, key);
	w_open(w, "[", &saved);
	for (size_t i = 0; i < n; i++) {
		route_cidr_format(&c[i], buf, sizeof(buf));
		w_next(w);
		w_quoted(w, buf);
	}
	w_close_arr(w, saved);
}

static void w_names(struct writer *w, const char *key, char *const *names, size_t n)
{
	bool saved;
	if (n == 0)
		return;
	w_key(w, key);
	w_open(w, "[", &saved);
	for (size_t i = 0; i < n; i++) {
		w_next(w);
		w_quoted(w, names[i]);
	}
	w_close_arr(w, saved);
}

static void w_headers(struct writer *w, const char *key, const struct route_header *h, size_t n)
{
	bool saved, osaved;
	if (n == 0)
		return;
	w_key(w, key);
	w_open(w, "[", &saved);
	for (size_t i = 0; i < n; i++) {
		w_next(w);
		w_open(w, "{", &osaved);
		w_str(w, "name", h[i].name);
		w_str(w, "value", h[i].value);
		w_bool_d(w, "expand", h[i].expand, false);
		w_close_obj(w, osaved);
	}
	w_close_arr(w, saved);
}

/* r's policy, with r's indexes the policy object holds. */
static void w_policy(struct writer *w, const struct route *r)
{
	const struct route_policy *p = r->policy;
	const struct route_policy *d = w->def;
	bool saved, csaved;
	w_open_lazy(w, "policy", &saved);
	w_int_d(w, "connect_timeout_ms", p->connect_timeout_ms, d->connect_timeout_ms);
	w_int_d(w, "read_timeout_ms", p->read_timeout_ms, d->read_timeout_ms);
	w_int_d(w, "send_timeout_ms", p->send_timeout_ms, d->send_timeout_ms);
	if (p->next_upstream != d->next_upstream) {
		bool nsaved;
		w_key(w, "next_upstream");
		w_open(w, "[", &nsaved);
		for (int i = 0; i < ROUTE_NEXT_COUNT; i++)
			if (p->next_upstream & (1u << i)) {
				w_next(w);
				w_quoted(w, next_upstream_names[i]);
			}
		w_close_arr(w, nsaved);
	}
	w_int_d(w, "next_upstream_tries", p->next_upstream_tries, d->next_upstream_tries);
	w_int_d(w, "next_upstream_timeout_ms", p->next_upstream_timeout_ms,
	        d->next_upstream_timeout_ms);
	w_int_d(w, "body_limit", p->body_limit, d->body_limit);
	w_int_d(w, "upstream_head_max", p->upstream_head_max, d->upstream_head_max);
	if (p->backend_protocol != d->backend_protocol)
		w_str(w, "backend_protocol", proto_names[p->backend_protocol]);
	w_bool_d(w, "ssl_redirect", p->ssl_redirect, d->ssl_redirect);
	w_bool_d(w, "preserve_trailing_slash", p->preserve_trailing_slash,
	         d->preserve_trailing_slash);
	w_bool_d(w, "port_in_redirects", p->port_in_redirects, d->port_in_redirects);
	w_str_d(w, "upstream_vhost", p->upstream_vhost, NULL);
	w_str_d(w, "x_forwarded_prefix", p->x_forwarded_prefix, NULL);
	w_str_d(w, "rewrite_target", p->rewrite_target, NULL);
	w_int_d(w, "redirect_code", p->redirect_code, d->redirect_code);
	w_str_d(w, "redirect_url", p->redirect_url, NULL);
	w_str_d(w, "redirect_host", p->redirect_host, NULL);
	w_int_d(w, "return_code", p->return_code, d->return_code);
	w_str_d(w, "return_body", p->return_body, NULL);
	w_str_d(w, "app_root", p->app_root, NULL);
	if (route_custom_errors_any(p)) {
		bool esaved;
		w_key(w, "custom_errors");
		w_open(w, "[", &esaved);
		for (int code = ROUTE_CUSTOM_ERROR_MIN; code <= ROUTE_CUSTOM_ERROR_MAX; code++)
			if (route_custom_error_has(p, code)) {
				char num[8];
				int len = snprintf(num, sizeof(num), "%d", code);
				w_next(w);
				w_raw(w, num, (size_t)len);
			}
		w_close_arr(w, esaved);
	}
	w_int_d(w, "error_backend", r->error_backend, -1);
	if (p->affinity != d->affinity)
		w_str(w, "affinity", affinity_names[p->affinity == ROUTE_AFFINITY_COOKIE]);
	if (p->affinity_mode != d->affinity_mode)
		w_str(w, "affinity_mode",
		      affinity_mode_names[p->affinity_mode == ROUTE_AFFINITY_PERSISTENT]);

	w_open_lazy(w, "cookie", &csaved);
	w_str_d(w, "name", p->cookie.name, DEFAULT_COOKIE_NAME);
	w_str_d(w, "path", p->cookie.path, NULL);
	w_int_d(w, "max_age_s", p->cookie.max_age_s, d->cookie.max_age_s);
	w_int_d(w, "expires_s", p->cookie.expires_s, d->cookie.expires_s);
	w_bool_d(w, "secure", p->cookie.secure, d->cookie.secure);
	w_str_d(w, "samesite", p->cookie.samesite, NULL);
	w_str_d(w, "domain", p->cookie.domain, NULL);
	w_bool_d(w, "conditional_samesite_none", p->cookie.conditional_samesite_none, false);
	w_bool_d(w, "change_on_failure", p->cookie.change_on_failure, false);
	w_close_lazy(w, csaved);

	w_str_d(w, "hash_by", p->hash_by, NULL);
	w_bool_d(w, "hash_by_subset", p->hash_by_subset, d->hash_by_subset);
	w_int_d(w, "hash_by_subset_size", p->hash_by_subset_size, d->hash_by_subset_size);
	if (p->balance != d->balance)
		w_str(w, "balance", balance_names[p->balance == ROUTE_BALANCE_EWMA]);
	w_cidrs(w, "allow", p->allow, p->nallow);
	w_cidrs(w, "deny", p->deny, p->ndeny);
	w_int_d(w, "limit_connections", p->limit_connections, d->limit_connections);
	w_int_d(w, "limit_rps", p->limit_rps, d->limit_rps);
	w_int_d(w, "limit_rpm", p->limit_rpm, d->limit_rpm);
	w_int_d(w, "limit_burst", p->limit_burst, d->limit_burst);
	w_cidrs(w, "limit_allow", p->limit_allow, p->nlimit_allow);
	w_bool_d(w, "satisfy_any", p->satisfy_any, d->satisfy_any);

	w_open_lazy(w, "auth", &csaved);
	if (p->auth.type != d->auth.type)
		w_str(w, "type", auth_type_names[p->auth.type == ROUTE_AUTH_BASIC]);
	if (p->auth.realm && p->auth.realm[0])
		w_str(w, "realm", p->auth.realm);
	if (p->auth.nusers) {
		bool usaved, osaved;
		w_key(w, "users");
		w_open(w, "[", &usaved);
		for (size_t i = 0; i < p->auth.nusers; i++) {
			w_next(w);
			w_open(w, "{", &osaved);
			w_str(w, "name", p->auth.users[i].name);
			w_str(w, "hash", p->auth.users[i].hash);
			w_close_obj(w, osaved);
		}
		w_close_arr(w, usaved);
	}
	w_close_lazy(w, csaved);

	w_open_lazy(w, "cors", &csaved);
	w_bool_d(w, "enabled", p->cors.enabled, d->cors.enabled);
	w_str_d(w, "allow_origin", p->cors.allow_origin, DEFAULT_CORS_ORIGIN);
	w_str_d(w, "allow_methods", p->cors.allow_methods, DEFAULT_CORS_METHODS);
	w_str_d(w, "allow_headers", p->cors.allow_headers, DEFAULT_CORS_HEADERS);
	w_str_d(w, "expose_headers", p->cors.expose_headers, NULL);
	w_bool_d(w, "allow_credentials", p->cors.allow_credentials, d->cors.allow_credentials);
	w_int_d(w, "max_age_s", p->cors.max_age_s, d->cors.max_age_s);
	w_close_lazy(w, csaved);

	w_int_d(w, "ws_idle_timeout_ms", p->ws_idle_timeout_ms, d->ws_idle_timeout_ms);
	w_int_d(w, "ws_max_lifetime_ms", p->ws_max_lifetime_ms, d->ws_max_lifetime_ms);
	w_int_d(w, "ws_ping_interval_ms", p->ws_ping_interval_ms, d->ws_ping_interval_ms);
	w_int_d(w, "drain_window_ms", p->drain_window_ms, d->drain_window_ms);
	w_bool_d(w, "request_base", p->request_base, d->request_base);
	w_bool_d(w, "origin_rewrite", p->origin_rewrite, d->origin_rewrite);
	w_bool_d(w, "access_log", p->access_log, d->access_log);
	w_headers(w, "request_headers", p->request_headers, p->nrequest_headers);
	w_headers(w, "response_headers", p->response_headers, p->nresponse_headers);
	if (p->nadd_headers) {
		bool asaved, hsaved;
		w_key(w, "add_headers");
		w_open(w, "[", &asaved);
		for (size_t i = 0; i < p->nadd_headers; i++) {
			w_next(w);
			w_open(w, "{", &hsaved);
			w_str(w, "name", p->add_headers[i].name);
			w_str(w, "value", p->add_headers[i].value);
			w_bool_d(w, "always", p->add_headers[i].always, false);
			w_bool_d(w, "expand", p->add_headers[i].expand, false);
			w_close_obj(w, hsaved);
		}
		w_close_arr(w, asaved);
	}
	if (p->nhide_headers) {
		w_key(w, "hide_headers");
		w_open(w, "[", &csaved);
		for (size_t i = 0; i < p->nhide_headers; i++) {
			w_next(w);
			w_quoted(w, p->hide_headers[i]);
		}
		w_close_arr(w, csaved);
	}
	w_open_lazy(w, "ext_auth", &csaved);
	w_str_d(w, "url", p->ext_auth.url, NULL);
	w_str_d(w, "method", p->ext_auth.method, NULL);
	w_str_d(w, "signin", p->ext_auth.signin, NULL);
	w_str_d(w, "signin_redirect_param", p->ext_auth.signin_redirect_param, NULL);
	w_str_d(w, "request_redirect", p->ext_auth.request_redirect, NULL);
	w_bool_d(w, "always_set_cookie", p->ext_auth.always_set_cookie, false);
	if (p->ext_auth.nresponse_headers) {
		bool asaved;
		w_key(w, "response_headers");
		w_open(w, "[", &asaved);
		for (size_t i = 0; i < p->ext_auth.nresponse_headers; i++) {
			w_next(w);
			w_quoted(w, p->ext_auth.response_headers[i]);
		}
		w_close_arr(w, asaved);
	}
	w_str_d(w, "cache_key", p->ext_auth.cache_key, NULL);
	w_str_d(w, "cache_duration", p->ext_auth.cache_duration, NULL);
	w_headers(w, "proxy_set_headers", p->ext_auth.proxy_set_headers,
	          p->ext_auth.nproxy_set_headers);
	w_close_lazy(w, csaved);
	w_open_lazy(w, "mirror", &csaved);
	w_str_d(w, "url", p->mirror.url, NULL);
	w_str_d(w, "host", p->mirror.host, NULL);
	w_bool_d(w, "request_body", !p->mirror.no_request_body, true);
	w_close_lazy(w, csaved);
	if (p->nrewrites) {
		bool rsaved, osaved;
		w_key(w, "rewrites");
		w_open(w, "[", &rsaved);
		for (size_t i = 0; i < p->nrewrites; i++) {
			w_next(w);
			w_open(w, "{", &osaved);
			w_str(w, "regex", p->rewrites[i].regex);
			w_str(w, "replacement", p->rewrites[i].replacement);
			w_str(w, "flag", rewrite_flag_names[p->rewrites[i].flag]);
			w_close_obj(w, osaved);
		}
		w_close_arr(w, rsaved);
	}
	w_bool_d(w, "request_buffering", p->request_buffering, d->request_buffering);
	w_bool_d(w, "response_buffering", p->response_buffering, d->response_buffering);
	w_open_lazy(w, "fastcgi", &csaved);
	w_str_d(w, "index", p->fastcgi.index, NULL);
	w_headers(w, "params", p->fastcgi.params, p->fastcgi.nparams);
	w_close_lazy(w, csaved);
	w_open_lazy(w, "backend_tls", &csaved);
	w_int_d(w, "profile", r->backend_tls, -1);
	w_str_d(w, "name", p->backend_tls.name, NULL);
	w_bool_d(w, "server_name", p->backend_tls.server_name, false);
	w_close_lazy(w, csaved);
	w_str_d(w, "proxy_redirect_from", p->proxy_redirect_from, NULL);
	w_str_d(w, "proxy_redirect_to", p->proxy_redirect_to, NULL);
	w_str_d(w, "proxy_cookie_domain_from", p->proxy_cookie_domain_from, NULL);
	w_str_d(w, "proxy_cookie_domain_to", p->proxy_cookie_domain_to, NULL);
	w_str_d(w, "proxy_cookie_path_from", p->proxy_cookie_path_from, NULL);
	w_str_d(w, "proxy_cookie_path_to", p->proxy_cookie_path_to, NULL);
	w_close_lazy(w, saved);
}

static void w_route(struct writer *w, const struct route *r)
{
	bool saved, csaved;
	w_next(w);
	w_open(w, "{", &saved);
	w_str(w, "path", r->path ? r->path : "");
	w_str(w, "match",
	      match_names[r->match == ROUTE_MATCH_REGEX ? 2 : r->match == ROUTE_MATCH_PREFIX]);
	w_int(w, "backend", r->backend);
	w_str(w, "source", r->source ? r->source : "");
	w_policy(w, r);
	w_open_lazy(w, "canary", &csaved);
	w_int_d(w, "backend", r->canary.backend, -1);
	w_str_d(w, "by_header", r->canary.by_header, NULL);
	w_str_d(w, "by_header_value", r->canary.by_header_value, NULL);
	w_str_d(w, "by_cookie", r->canary.by_cookie, NULL);
	w_int_d(w, "weight", r->canary.weight, 0);
	w_str_d(w, "by_header_pattern", r->canary.by_header_pattern, NULL);
	w_int_d(w, "weight_total", r->canary.weight_total, 100);
	if (r->canary.affinity_behavior != ROUTE_CANARY_STICKY)
		w_str(w, "affinity_behavior", canary_affinity_names[1]);
	w_close_lazy(w, csaved);
	w_close_obj(w, saved);
}

static void w_host(struct writer *w, const struct route_host *h)
{
	bool o, b;
	w_open(w, "{", &o);
	w_str(w, "name", h->name ? h->name : "");
	w_int(w, "cert", h->cert);
	if (h->client_auth.ca >= 0) {
		const struct route_client_auth *ca = &h->client_auth;
		bool cs;
		w_key(w, "client_auth");
		w_open(w, "{", &cs);
		w_int(w, "ca", ca->ca);
		w_str(w, "verify", verify_names[ca->verify]);
		w_int(w, "verify_depth", ca->verify_depth);
		w_str_d(w, "error_page", ca->error_page, NULL);
		w_bool_d(w, "pass_certificate", ca->pass_certificate, false);
		w_str_d(w, "match_cn", ca->match_cn, NULL);
		w_close_obj(w, cs);
	}
	w_str_d(w, "ssl_ciphers", h->ssl_ciphers, NULL);
	w_key(w, "routes");
	w_open(w, "[", &b);
	for (size_t j = 0; j < h->nroutes; j++)
		w_route(w, &h->routes[j]);
	w_close_arr(w, b);
	w_close_obj(w, o);
}

static void w_cert(struct writer *w, const struct route_cert *c)
{
	bool o;
	w_open(w, "{", &o);
	w_str(w, "name", c->name ? c->name : "");
	w_str(w, "cert_pem", c->cert_pem ? c->cert_pem : "");
	w_str(w, "key_pem", c->key_pem ? c->key_pem : "");
	w_close_obj(w, o);
}

static void w_backend(struct writer *w, const struct route_backend *bk)
{
	bool o, b, e;
	w_open(w, "{", &o);
	w_str(w, "name", bk->name ? bk->name : "");
	w_key(w, "endpoints");
	w_open(w, "[", &b);
	for (size_t j = 0; j < bk->nendpoints; j++) {
		const struct route_endpoint *ep = &bk->endpoints[j];
		w_next(w);
		w_open(w, "{", &e);
		w_str(w, "address", ep->address ? ep->address : "");
		w_int(w, "port", ep->port);
		w_int_d(w, "weight", ep->weight, 1);
		w_bool_d(w, "draining", ep->draining, false);
		w_close_obj(w, e);
	}
	w_close_arr(w, b);
	w_str_d(w, "external_name", bk->external_name, NULL);
	w_int_d(w, "external_port", bk->external_port, 0);
	w_close_obj(w, o);
}

/* One string per line: the shard ids of a version 2 index. */
static void w_ids(struct writer *w, const char *key, char *const *ids, size_t n)
{
	bool a;
	w_key(w, key);
	w_open(w, "[", &a);
	for (size_t i = 0; i < n && !w->oom; i++) {
		w_next(w);
		/* an id is 64 hex digits or "" (a hole): nothing to escape */
		if (!ids[i][0] || route_shard_id_valid(ids[i])) {
			w_raw(w, "\"", 1);
			w_raw(w, ids[i], strlen(ids[i]));
			w_raw(w, "\"", 1);
		} else {
			w_quoted(w, ids[i]);
		}
	}
	w_close_arr(w, a);
}

static void w_lists(struct writer *w, const char *key, const struct route_index_list *l, size_t n)
{
	bool a;
	w_key(w, key);
	w_open(w, "[", &a);
	for (size_t i = 0; i < n && !w->oom; i++) {
		w_next(w);
		w_raw(w, "\"", 1);
		w_raw(w, l[i].id, strlen(l[i].id));
		w_raw(w, "\"", 1);
	}
	w_close_arr(w, a);
}

/* ix NULL: version 1, hosts and certs inline; else a version 2 index
 * naming ix's shards instead. */
static void w_table(struct writer *w, const struct route_table *t, const struct route_index *ix)
{
	bool root, s, a, o;
	w_open(w, "{", &root);
	w_int(w, "version", ix ? ROUTE_INDEX_VERSION : t->version);
	w_uint(w, "generation", t->generation);

	w_key(w, "settings");
	w_open(w, "{", &s);
	w_cidrs(w, "trusted_proxies", t->settings.trusted_proxies, t->settings.ntrusted_proxies);
	w_int(w, "max_header_bytes", t->settings.max_header_bytes);
	w_int(w, "header_timeout_ms", t->settings.header_timeout_ms);
	w_int(w, "keepalive_timeout_ms", t->settings.keepalive_timeout_ms);
	w_int(w, "upstream_keepalive", t->settings.upstream_keepalive);
	w_int(w, "drain_window_ms", t->settings.drain_window_ms);
	w_int(w, "max_connections", t->settings.max_connections);
	w_bool(w, "use_forwarded_headers", t->settings.use_forwarded_headers);
	w_bool(w, "compute_full_forwarded_for", t->settings.compute_full_forwarded_for);
	w_bool(w, "use_proxy_protocol", t->settings.use_proxy_protocol);
	w_str(w, "forwarded_for_header",
	      t->settings.forwarded_for_header ? t->settings.forwarded_for_header
	                                       : DEFAULT_FORWARDED_FOR_HEADER);
	w_cidrs(w, "proxy_real_ip_cidr", t->settings.proxy_real_ip_cidr,
	        t->settings.nproxy_real_ip_cidr);
	w_bool(w, "hsts", t->settings.hsts);
	w_int(w, "hsts_max_age", t->settings.hsts_max_age);
	w_bool(w, "hsts_include_subdomains", t->settings.hsts_include_subdomains);
	w_bool(w, "hsts_preload", t->settings.hsts_preload);
	w_str_d(w, "ssl_protocols", t->settings.ssl_protocols, NULL);
	w_str_d(w, "ssl_ciphers", t->settings.ssl_ciphers, NULL);
	w_cidrs(w, "block_cidrs", t->settings.block_cidrs, t->settings.nblock_cidrs);
	w_names(w, "block_user_agents", t->settings.block_user_agents,
	        t->settings.nblock_user_agents);
	w_names(w, "block_referers", t->settings.block_referers, t->settings.nblock_referers);
	w_bool_d(w, "access_log", t->settings.access_log, true);
	w_str_d(w, "access_log_format", t->settings.access_log_format, NULL);
	if (t->settings.access_log_escape != ROUTE_LOG_ESCAPE_DEFAULT)
		w_str(w, "access_log_escape", log_escape_names[t->settings.access_log_escape]);
	w_names(w, "access_log_skip", t->settings.access_log_skip, t->settings.naccess_log_skip);
	/* Keys added after the first release: only when they differ from the
	 * defaults, so a table that does not use them reads as before. */
	if (t->settings.max_header_line)
		w_int(w, "max_header_line", t->settings.max_header_line);
	if (t->settings.upstream_head_max != 4096)
		w_int(w, "upstream_head_max", t->settings.upstream_head_max);
	if (t->settings.use_gzip)
		w_bool(w, "use_gzip", true);
	if (t->settings.gzip_level != 1)
		w_int(w, "gzip_level", t->settings.gzip_level);
	if (t->settings.gzip_min_length != 256)
		w_int(w, "gzip_min_length", t->settings.gzip_min_length);
	if (t->settings.gzip_types && strcmp(t->settings.gzip_types, ROUTE_GZIP_TYPES_DEFAULT) != 0)
		w_str(w, "gzip_types", t->settings.gzip_types);
	if (t->settings.enable_brotli)
		w_bool(w, "enable_brotli", true);
	if (t->settings.brotli_level != 4)
		w_int(w, "brotli_level", t->settings.brotli_level);
	if (t->settings.brotli_min_length != 20)
		w_int(w, "brotli_min_length", t->settings.brotli_min_length);
	if (t->settings.brotli_types &&
	    strcmp(t->settings.brotli_types, ROUTE_BROTLI_TYPES_DEFAULT) != 0)
		w_str(w, "brotli_types", t->settings.brotli_types);
	if (t->settings.server_tokens)
		w_bool(w, "server_tokens", true);
	if (t->settings.allow_backend_server_header)
		w_bool(w, "allow_backend_server_header", true);
	if (t->settings.limit_req_status != 503)
		w_int(w, "limit_req_status", t->settings.limit_req_status);
	if (t->settings.limit_conn_status != 503)
		w_int(w, "limit_conn_status", t->settings.limit_conn_status);
	if (!t->settings.use_http2)
		w_bool(w, "use_http2", false);
	if (t->settings.http2_max_concurrent_streams != 128)
		w_int(w, "http2_max_concurrent_streams", t->settings.http2_max_concurrent_streams);
	if (t->settings.http2_cleartext)
		w_bool(w, "http2_cleartext", true);
	if (t->settings.http2_max_field_size)
		w_int(w, "http2_max_field_size", t->settings.http2_max_field_size);
	if (t->settings.http2_max_header_size)
		w_int(w, "http2_max_header_size", t->settings.http2_max_header_size);
	w_close_obj(w, s);

	if (ix && ix->nlists[0]) {
		w_lists(w, list_keys[0], ix->lists[0], ix->nlists[0]);
	} else if (ix) {
		w_ids(w, "hosts", ix->hosts, ix->nhosts);
	} else {
		w_key(w, "hosts");
		w_open(w, "[", &a);
		for (size_t i = 0; i < t->nhosts && !w->oom; i++) {
			w_next(w);
			w_host(w, &t->hosts[i]);
		}
		w_close_arr(w, a);
	}

	if (ix && ix->nlists[1]) {
		w_lists(w, list_keys[1], ix->lists[1], ix->nlists[1]);
	} else if (ix) {
		w_ids(w, "backends", ix->backends, ix->nbackends);
	} else {
		w_key(w, "backends");
		w_open(w, "[", &a);
		for (size_t i = 0; i < t->nbackends && !w->oom; i++) {
			w_next(w);
			w_backend(w, &t->backends[i]);
		}
		w_close_arr(w, a);
	}

	if (ix && ix->nlists[2]) {
		w_lists(w, list_keys[2], ix->lists[2], ix->nlists[2]);
	} else if (ix) {
		w_ids(w, "certs", ix->certs, ix->ncerts);
	} else {
		w_key(w, "certs");
		w_open(w, "[", &a);
		for (size_t i = 0; i < t->ncerts && !w->oom; i++) {
			w_next(w);
			w_cert(w, &t->certs[i]);
		}
		w_close_arr(w, a);
	}
	if (t->ncas) {
		w_key(w, "cas");
		w_open(w, "[", &a);
		for (size_t i = 0; i < t->ncas && !w->oom; i++) {
			const struct route_ca *c = &t->cas[i];
			w_next(w);
			w_open(w, "{", &o);
			w_str(w, "name", c->name ? c->name : "");
			w_str(w, "ca_pem", c->ca_pem ? c->ca_pem : "");
			w_str_d(w, "crl_pem", c->crl_pem, NULL);
			w_close_obj(w, o);
		}
		w_close_arr(w, a);
	}
	w_int(w, "default_cert", t->default_cert);
	w_int(w, "default_backend", t->default_backend);

	w_key(w, "passthrough");
	w_open(w, "[", &a);
	for (size_t i = 0; i < t->npassthrough && !w->oom; i++) {
		w_next(w);
		w_open(w, "{", &o);
		w_str(w, "host", t->passthrough[i].host ? t->passthrough[i].host : "");
		w_int(w, "backend", t->passthrough[i].backend);
		w_cidrs(w, "allow", t->passthrough[i].allow, t->passthrough[i].nallow);
		w_cidrs(w, "deny", t->passthrough[i].deny, t->passthrough[i].ndeny);
		w_close_obj(w, o);
	}
	w_close_arr(w, a);

	/* Left out when empty: tables without backend TLS profiles keep the
	 * bytes they had before the key existed. */
	if (t->nbackend_tls) {
		w_key(w, "backend_tls");
		w_open(w, "[", &a);
		for (size_t i = 0; i < t->nbackend_tls && !w->oom; i++) {
			const struct route_backend_tls_profile *bt = &t->backend_tls[i];
			w_next(w);
			w_open(w, "{", &o);
			w_str(w, "name", bt->name ? bt->name : "");
			w_bool_d(w, "verify", bt->verify, false);
			w_int_d(w, "verify_depth", bt->verify_depth, 1);
			w_str_d(w, "protocols", bt->protocols, NULL);
			w_str_d(w, "ciphers", bt->ciphers, NULL);
			w_str_d(w, "ca_pem", bt->ca_pem, NULL);
			w_str_d(w, "cert_pem", bt->cert_pem, NULL);
			w_str_d(w, "key_pem", bt->key_pem, NULL);
			w_close_obj(w, o);
		}
		w_close_arr(w, a);
	}
	w_close_obj(w, root);
}

enum w_what { W_TABLE, W_INDEX, W_HOST, W_CERT, W_BACKEND, W_POLICY };

/* The default policy the writer compares members with: made once, never
 * freed (route_policy_init allocates its strings, and the publisher
 * serializes every host and every route's policy: 10,000 of each per full
 * publish at 10,000 Ingresses). NULL when it could not be allocated. */
static struct route_policy default_policy;
static bool default_policy_ok;

static void default_policy_make(void)
{
	route_policy_init(&default_policy);
	default_policy_ok = default_policy.cookie.name && default_policy.cors.allow_origin &&
	                    default_policy.cors.allow_methods && default_policy.cors.allow_headers;
}

static int serialize(enum w_what what, const void *obj, const struct route_index *ix, char **out,
                     size_t *len)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, default_policy_make);
	if (!default_policy_ok)
		return WEIR_ENOMEM;
	struct writer w = {.level = -1, .def = &default_policy};
	if (what == W_HOST || what == W_CERT || what == W_BACKEND || what == W_POLICY) {
		/* Shards are small and kept by the thousand: start small. */
		w.cap = 2048;
		w.buf = malloc(w.cap);
		w.oom = !w.buf;
	}
	switch (what) {
	case W_TABLE:
		w_table(&w, obj, NULL);
		break;
	case W_INDEX:
		w_table(&w, obj, ix);
		break;
	case W_HOST:
		w_host(&w, obj);
		break;
	case W_CERT:
		w_cert(&w, obj);
		break;
	case W_BACKEND:
		w_backend(&w, obj);
		break;
	case W_POLICY: {
		/* as a route's "policy" member, without the route's indexes */
		struct route r = {
		    .error_backend = -1, .backend_tls = -1, .policy = (struct route_policy *)obj};
		bool saved;
		w_open(&w, "{", &saved);
		w_policy(&w, &r);
		w_close_obj(&w, saved);
		break;
	}
	}
	w_raw(&w, "\n", 1);
	if (w.oom) {
		free(w.buf);
		return WEIR_ENOMEM;
	}
	w.buf[w.len] = '\0';
	if (what != W_TABLE && what != W_INDEX) {
		/* Kept by the thousand (the publisher's last shards): no slack. */
		char *fit = realloc(w.buf, w.len + 1);
		if (fit)
			w.buf = fit;
	}
	*out = w.buf;
	*len = w.len;
	return 0;
}

int route_table_serialize(const struct route_table *table, char **out, size_t *len)
{
	return serialize(W_TABLE, table, NULL, out, len);
}

int route_index_serialize(const struct route_table *table, const struct route_index *ix, char **out,
                          size_t *len)
{
	return serialize(W_INDEX, table, ix, out, len);
}

int route_host_serialize(const struct route_host *host, char **out, size_t *len)
{
	return serialize(W_HOST, host, NULL, out, len);
}

int route_policy_serialize(const struct route_policy *policy, char **out, size_t *len)
{
	return serialize(W_POLICY, policy, NULL, out, len);
}

int route_cert_serialize(const struct route_cert *cert, char **out, size_t *len)
{
	return serialize(W_CERT, cert, NULL, out, len);
}

int route_backend_serialize(const struct route_backend *backend, char **out, size_t *len)
{
	return serialize(W_BACKEND, backend, NULL, out, len);
}
