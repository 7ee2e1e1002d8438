/* proxy/policy.c - per-request decisions taken before an upstream is chosen,
 * and the per-client-IP limits.
 *
 * ssl-redirect target rule: Location is "https://" + the Host header without
 * its port + the request target as sent. When preserve_trailing_slash is
 * false and the target has no query, one trailing '/' is removed from a path
 * longer than "/" ("/app/" -> "/app"), as ingress-nginx strips "/$" from the
 * redirect URI; with a query, or when preserve_trailing_slash is true, the
 * target is kept byte for byte. No port is added (the public HTTPS port is
 * not known here; a load balancer in front normally listens on 443), unless
 * the route has port_in_redirects (use-port-in-redirects): then the proxy's
 * HTTPS listen port, as ingress-nginx writes its own listen port.
 *
 * Limits: one fixed-size table (LIMIT_SLOTS entries, bounded probing) keyed by
 * a 64-bit hash of (client ip, route source, route path), so the state
 * survives table reloads and memory never grows. A full probe window evicts
 * its least recently used entry that holds no open connection (an idle entry
 * only remembers a bucket that refills anyway). When every entry in the window
 * holds open connections, evicting one would forget its count, so the new
 * client is refused with the limit's status instead (never fail open); that
 * is logged at most once per LIMIT_WARN_NS with the number refused. */
#include "policy.h"
#include "rewrite.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "error.h"
#include "log.h"

#define LOG_COMPONENT "proxy.policy"

static bool name_eq(const struct http_header *h, const char *name)
{
	size_t n = strlen(name);
	return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

static const struct http_header *find_header(const struct http_request *req, const char *name)
{
	size_t n = req->nheaders < HTTP_MAX_HEADERS ? req->nheaders : HTTP_MAX_HEADERS;
	for (size_t i = 0; i < n; i++)
		if (name_eq(&req->headers[i], name))
			return &req->headers[i];
	return NULL;
}

/* Value with optional whitespace trimmed on both sides. */
static void trimmed(const struct http_header *h, const char **v, size_t *len)
{
	const char *s = h->value, *e = h->value + h->value_len;
	while (s < e && (*s == ' ' || *s == '\t'))
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*v = s;
	*len = (size_t)(e - s);
}

static int client_address(const struct http_client *c, int *family, uint8_t addr[16])
{
	if (c->addr.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&c->addr;
		memcpy(addr, &sin->sin_addr, 4);
		*family = 4;
		return 0;
	}
	if (c->addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&c->addr;
		memcpy(addr, &sin6->sin6_addr, 16);
		*family = 6;
		return 0;
	}
	if (inet_pton(AF_INET, c->ip, addr) == 1) {
		*family = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, c->ip, addr) == 1) {
		*family = 6;
		return 0;
	}
	return WEIR_EINVAL;
}

static bool in_cidrs(const struct route_cidr *list, size_t n, int family, const uint8_t *addr)
{
	for (size_t i = 0; i < n; i++)
		if (route_cidr_contains(&list[i], family, addr))
			return true;
	return false;
}

bool policy_client_allowed(const struct route_cidr *allow, size_t nallow,
                           const struct route_cidr *deny, size_t ndeny,
                           const struct http_client *client)
{
	if (!nallow && !ndeny)
		return true;
	int family;
	uint8_t addr[16];
	if (client_address(client, &family, addr) != 0)
		return false; /* an address we cannot read is in no allowlist */
	if (in_cidrs(deny, ndeny, family, addr))
		return false;
	return !nallow || in_cidrs(allow, nallow, family, addr);
}

/* Host header characters we are willing to copy into a Location. */
static bool host_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == ':' || c == '[' || c == ']';
}

/* The Host header value without its port; 0 when absent or unusable. */
static size_t host_without_port(const struct http_request *req, const char **out)
{
	if (!req->host || req->host_len == 0)
		return 0;
	for (size_t i = 0; i < req->host_len; i++)
		if (!host_char_ok(req->host[i]))
			return 0;
	size_t n = req->host_len;
	if (req->host[0] == '[') {
		const char *rb = memchr(req->host, ']', req->host_len);
		if (!rb)
			return 0;
		n = (size_t)(rb - req->host) + 1;
	} else {
		const char *colon = memchr(req->host, ':', req->host_len);
		if (colon)
			n = (size_t)(colon - req->host);
	}
	*out = req->host;
	return n;
}

static bool target_ok(const struct http_request *req)
{
	for (size_t i = 0; i < req->target_len; i++) {
		unsigned char c = (unsigned char)req->target[i];
		if (c <= 0x20 || c == 0x7f)
			return false;
	}
	return req->target_len > 0;
}

static void answer(struct policy_result *out, int status, const char *body)
{
	out->status = status;
	out->body = body;
}

/* Bounded appender for extra_headers: a line that does not fit is skipped. */
static void add_line(struct policy_result *out, const char *name, const char *value, size_t vlen)
{
	size_t used = strlen(out->extra_headers);
	size_t need = strlen(name) + 2 + vlen + 2;
	if (need >= sizeof(out->extra_headers) - used) {
		log_warn(LOG_COMPONENT, "header %s does not fit in a local response; skipped",
		         name);
		return;
	}
	snprintf(out->extra_headers + used, sizeof(out->extra_headers) - used, "%s: %.*s\r\n", name,
	         (int)vlen, value);
}

/* The Access-Control-Allow-Origin value for a request Origin (olen 0: none):
 * "*" when any origin is allowed, the Origin itself when it is in the
 * configured list, else false (not a CORS request we answer). */
static bool cors_origin(const struct route_cors *cors, const char *origin, size_t olen,
                        const char **val, size_t *vlen)
{
	const char *list = cors->allow_origin ? cors->allow_origin : "*";
	const char *p = list;
	while (*p) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		const char *tok = p;
		while (*p && *p != ',')
			p++;
		const char *e = p;
		while (e > tok && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		size_t n = (size_t)(e - tok);
		if (n == 1 && tok[0] == '*') {
			*val = "*";
			*vlen = 1;
			return true;
		}
		if (n && n == olen && strncasecmp(tok, origin, n) == 0) {
			*val = origin;
			*vlen = olen;
			return true;
		}
	}
	return false;
}

bool policy_cors_allow_origin(const struct route *route, const struct http_request *req,
                              const char **val, size_t *vlen)
{
	const struct http_header *origin;
	const char *ov = "";
	size_t olen = 0;

	if (!route || !route->policy->cors.enabled)
		return false;
	origin = find_header(req, "Origin");
	if (origin)
		trimmed(origin, &ov, &olen);
	return cors_origin(&route->policy->cors, ov, olen, val, vlen);
}

/* base64 of 16 bytes: 22 alphabet characters then "==". */
static bool websocket_key_ok(const char *k, size_t n)
{
	if (n != 24 || k[22] != '=' || k[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++) {
		char c = k[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		          (c >= '0' && c <= '9') || c == '+' || c == '/';
		if (!ok)
			return false;
	}
	return true;
}

int policy_check(const struct route *route, const struct http_request *req,
                 const struct http_client *client, struct policy_result *out)
{
	/* not a memset of its 3 KiB on every request: the two texts are read
	 * only up to their NUL */
	out->status = 0;
	out->location[0] = '\0';
	out->extra_headers[0] = '\0';
	out->body = NULL;
	out->body_exact = false;
	out->route_headers = false;
	out->skip_auth = false;
	const struct route_policy *pol = route ? route->policy : NULL;

	if (pol && (pol->nallow || pol->ndeny)) {
		int family;
		uint8_t addr[16];
		if (client_address(client, &family, addr) != 0) {
			answer(out, 403, "Forbidden\n");
			return 0;
		}
		if (in_cidrs(pol->deny, pol->ndeny, family, addr)) {
			answer(out, 403, "Forbidden\n");
			return 0;
		}
		if (pol->nallow) {
			bool inside = in_cidrs(pol->allow, pol->nallow, family, addr);
			bool has_auth = pol->auth.type == ROUTE_AUTH_BASIC || pol->ext_auth.url;
			if (inside && pol->satisfy_any) {
				out->skip_auth = true;
			} else if (!inside && !(pol->satisfy_any && has_auth)) {
				answer(out, 403, "Forbidden\n");
				return 0;
			}
		}
	}

	if (pol && pol->redirect_code && pol->redirect_url) {
		if (strlen(pol->redirect_url) >= sizeof(out->location)) {
			answer(out, 500, "Internal Server Error\n");
			return 0;
		}
		snprintf(out->location, sizeof(out->location), "%s", pol->redirect_url);
		answer(out, pol->redirect_code, NULL);
		out->route_headers = true;
		return 0;
	}

	if (pol && pol->return_code) {
		answer(out, pol->return_code, pol->return_body);
		out->body_exact = true;
		out->route_headers = true;
		return 0;
	}

	if (pol && pol->redirect_code && pol->redirect_host) {
		/* from-to-www-redirect: same scheme, the other name, the port the
		 * client named and the target as sent */
		const char *hv;
		size_t hlen = host_without_port(req, &hv);
		size_t plen = hlen ? req->host_len - hlen : 0;
		char port[8] = "";
		if (pol->port_in_redirects && client->local_port) {
			snprintf(port, sizeof(port), ":%u", client->local_port);
			plen = 0; /* the port it arrived on instead of the one named */
		}
		if (!target_ok(req)) {
			answer(out, 400, "Bad Request\n");
			return 0;
		}
		int n =
		    snprintf(out->location, sizeof(out->location), "%s://%s%s%.*s%.*s",
		             client->tls ? "https" : "http", pol->redirect_host, port, (int)plen,
		             plen ? req->host + hlen : "", (int)req->target_len, req->target);
		if (n < 0 || (size_t)n >= sizeof(out->location)) {
			out->location[0] = '\0';
			answer(out, 414, "URI Too Long\n");
			return 0;
		}
		answer(out, pol->redirect_code, NULL);
		return 0;
	}

	/* configuration-snippet rewrites (nginx's rewrite phase, after the
	 * server's from-to-www return, before the Lua ssl redirect) */
	if (pol && pol->nrewrites) {
		size_t n = 0;
		int i = -1;
		if (rewrite_apply(pol, req, client, out->location, sizeof(out->location), &n, &i) !=
		    0) {
			out->location[0] = '\0';
			answer(out, 500, "Internal Server Error\n");
			return 0;
		}
		if (i >= 0 && pol->rewrites[i].flag != ROUTE_REWRITE_BREAK) {
			answer(out, pol->rewrites[i].flag == ROUTE_REWRITE_PERMANENT ? 301 : 302,
			       NULL);
			out->route_headers = true;
			return 0;
		}
		out->location[0] = '\0';
	}

	if (pol && pol->ssl_redirect && !client->tls) {
		const char *host;
		size_t hlen = host_without_port(req, &host);
		if (hlen == 0 || !target_ok(req)) {
			answer(out, 400, "Bad Request\n");
			return 0;
		}
		size_t tlen = req->target_len;
		bool has_query = memchr(req->target, '?', req->target_len) != NULL;
		if (!pol->preserve_trailing_slash && !has_query && tlen > 1 &&
		    req->target[tlen - 1] == '/')
			tlen--;
		char port[8] = "";
		if (pol->port_in_redirects && client->https_port)
			snprintf(port, sizeof(port), ":%u", client->https_port);
		if (8 + hlen + strlen(port) + tlen >= sizeof(out->location)) {
			answer(out, 414, "URI Too Long\n");
			return 0;
		}
		snprintf(out->location, sizeof(out->location), "https://%.*s%s%.*s", (int)hlen,
		         host, port, (int)tlen, req->target);
		answer(out, 308, NULL);
		return 0;
	}

	if (pol && pol->app_root && req->path_len == 1 && req->path[0] == '/') {
		const char *root = pol->app_root;
		const char *hv;
		int n;
		if (root[0] == '/' && host_without_port(req, &hv) > 0)
			n = snprintf(out->location, sizeof(out->location), "%s://%.*s%s",
			             client->tls ? "https" : "http", (int)req->host_len, req->host,
			             root);
		else
			n = snprintf(out->location, sizeof(out->location), "%s", root);
		if (n < 0 || (size_t)n >= sizeof(out->location)) {
			out->location[0] = '\0';
			answer(out, 500, "Internal Server Error\n");
			return 0;
		}
		answer(out, 302, NULL);
		return 0;
	}

	if (pol && pol->cors.enabled && req->method_len == 7 &&
	    memcmp(req->method, "OPTIONS", 7) == 0) {
		const struct http_header *origin = find_header(req, "Origin");
		const struct http_header *acrm = find_header(req, "Access-Control-Request-Method");
		const char *ov, *val;
		size_t olen, vlen;
		if (origin && acrm) {
			trimmed(origin, &ov, &olen);
			if (olen && cors_origin(&pol->cors, ov, olen, &val, &vlen)) {
				const struct route_cors *c = &pol->cors;
				char age[24];
				add_line(out, "Access-Control-Allow-Origin", val, vlen);
				if (!(vlen == 1 && val[0] == '*'))
					add_line(out, "Vary", "Origin", 6);
				if (c->allow_credentials)
					add_line(out, "Access-Control-Allow-Credentials", "true",
					         4);
				if (c->allow_methods)
					add_line(out, "Access-Control-Allow-Methods",
					         c->allow_methods, strlen(c->allow_methods));
				if (c->allow_headers)
					add_line(out, "Access-Control-Allow-Headers",
					         c->allow_headers, strlen(c->allow_headers));
				if (c->max_age_s >= 0) {
					int an = snprintf(age, sizeof(age), "%lld",
					                  (long long)c->max_age_s);
					add_line(out, "Access-Control-Max-Age", age, (size_t)an);
				}
				answer(out, 204, NULL);
				return 0;
			}
		}
	}

	if (pol && pol->body_limit > 0 && req->content_length > pol->body_limit) {
		answer(out, 413, "Request Entity Too Large\n");
		return 0;
	}

	if (req->upgrade_websocket) {
		const struct http_header *key = find_header(req, "Sec-WebSocket-Key");
		const struct http_header *ver = find_header(req, "Sec-WebSocket-Version");
		const char *v;
		size_t vlen;
		if (!key) {
			answer(out, 400, "Bad Request: missing Sec-WebSocket-Key\n");
			return 0;
		}
		trimmed(key, &v, &vlen);
		if (!websocket_key_ok(v, vlen)) {
			answer(out, 400, "Bad Request: bad Sec-WebSocket-Key\n");
			return 0;
		}
		if (ver)
			trimmed(ver, &v, &vlen);
		if (!ver || vlen != 2 || memcmp(v, "13", 2) != 0) {
			/* RFC 6455 4.4: tell the client the version we speak. */
			add_line(out, "Sec-WebSocket-Version", "13", 2);
			answer(out, 400, "Bad Request: unsupported WebSocket version\n");
			return 0;
		}
	}
	return 0;
}

/* ---- per-client-IP limits ---- */

#define LIMIT_SLOTS 8192
#define LIMIT_PROBE 16
#define MICRO 1000000LL
#define LIMIT_STATUS 503 /* ingress-nginx's limit-req-status-code default */
#define LIMIT_WARN_NS (60LL * 1000000000LL)

struct limit_entry {
	uint64_t key;       /* 0: free */
	int64_t tokens;     /* limit_rps bucket: MICRO per request; -1: not filled yet */
	int64_t tokens_rpm; /* limit_rpm bucket: 60 * MICRO per request; -1: not filled yet */
	int64_t last_ns;    /* last refill / use */
	uint32_t conns;     /* open enters without a leave */
};

static struct limit_entry limit_slots[LIMIT_SLOTS];
static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t limit_window_refused; /* since the last warning; under limit_lock */
static int64_t limit_warned_ns;       /* 0: never warned */

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Replaced by the unit test to control time. */
static int64_t (*limit_now)(void) = mono_ns;

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; s && *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t limit_key(const struct route *route, const struct http_client *client)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	h = fnv1a(h, client->ip);
	h = fnv1a(h ^ 0xff, route->source);
	h = fnv1a(h ^ 0xfe, route->path);
	return h ? h : 1;
}

/* Find the entry for key; with create, take a free slot or evict the least
 * recently used idle one in the probe window. Caller holds limit_lock. */
static struct limit_entry *limit_find(uint64_t key, bool create, int64_t now)
{
	size_t base = (size_t)(key % LIMIT_SLOTS);
	struct limit_entry *victim = NULL;
	for (size_t i = 0; i < LIMIT_PROBE; i++) {
		struct limit_entry *e = &limit_slots[(base + i) % LIMIT_SLOTS];
		if (e->key == key)
			return e;
		if (e->key == 0) {
			if (!victim || victim->key != 0)
				victim = e;
		} else if (e->conns == 0 &&
		           (!victim || (victim->key != 0 && e->last_ns < victim->last_ns))) {
			victim = e;
		}
	}
	if (!create || !victim)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	victim->key = key;
	victim->last_ns = now;
	victim->tokens = -1; /* filled on first use */
	victim->tokens_rpm = -1;
	return victim;
}

/* A token bucket of rate units per microsecond holding at most cap units,
 * refilled for us microseconds; a bucket at -1 starts full. A request costs
 * cost units. Compares before multiplying so a long idle time cannot
 * overflow. */
static void bucket_refill(int64_t *tokens, int64_t rate, int64_t cap, int64_t us)
{
	if (*tokens < 0 || *tokens > cap) {
		*tokens = cap;
		return;
	}
	int64_t missing = cap - *tokens;
	if (us > 0)
		*tokens = us > missing / rate ? cap : *tokens + us * rate;
}

/* Units a bucket holds at most: rate x burst requests of cost units each,
 * saturated far beyond any count a client could send. */
static int64_t bucket_cap(uint32_t rate, uint32_t burst, int64_t cost)
{
	int64_t requests = (int64_t)rate * (burst ? burst : 5); /* 0: the default */
	return requests > INT64_MAX / 4 / cost ? INT64_MAX / 4 : requests * cost;
}

static bool limited(const struct route_policy *pol)
{
	return pol->limit_rps || pol->limit_rpm || pol->limit_connections;
}

/* In limit-allowlist: no limit counts this client. */
static bool limit_exempt(const struct route_policy *pol, const struct http_client *client)
{
	int family;
	uint8_t addr[16];
	return pol->nlimit_allow && client_address(client, &family, addr) == 0 &&
	       in_cidrs(pol->limit_allow, pol->nlimit_allow, family, addr);
}

int policy_limit_enter(const struct route *route, const struct http_client *client, int req_status,
                       int conn_status)
{
	if (!route || !limited(route->policy) || limit_exempt(route->policy, client))
		return 0;
	const struct route_policy *pol = route->policy;
	uint64_t key = limit_key(route, client);
	int rc = 0;

	uint64_t report = 0;

	pthread_mutex_lock(&limit_lock);
	int64_t now = limit_now();
	struct limit_entry *e = limit_find(key, true, now);
	if (!e) {
		limit_window_refused++;
		if (!limit_warned_ns || now - limit_warned_ns >= LIMIT_WARN_NS) {
			report = limit_window_refused;
			limit_window_refused = 0;
			limit_warned_ns = now;
		}
		rc = req_status;
		goto out;
	}
	/* Both buckets refill for the same time; a request takes a token from
	 * each, or from none when either is empty (nginx charges its limit_req
	 * zones only when all of them let the request through). */
	int64_t us = e->tokens < 0 && e->tokens_rpm < 0 ? 0 : (now - e->last_ns) / 1000;
	if (pol->limit_rps)
		bucket_refill(&e->tokens, pol->limit_rps,
		              bucket_cap(pol->limit_rps, pol->limit_burst, MICRO), us);
	if (pol->limit_rpm)
		bucket_refill(&e->tokens_rpm, pol->limit_rpm,
		              bucket_cap(pol->limit_rpm, pol->limit_burst, 60 * MICRO), us);
	e->last_ns = now;
	if ((pol->limit_rps && e->tokens < MICRO) ||
	    (pol->limit_rpm && e->tokens_rpm < 60 * MICRO)) {
		rc = req_status;
		goto out;
	}
	if (pol->limit_rps)
		e->tokens -= MICRO;
	if (pol->limit_rpm)
		e->tokens_rpm -= 60 * MICRO;
	if (pol->limit_connections) {
		if (e->conns >= pol->limit_connections) {
			rc = conn_status;
			goto out;
		}
	}
	e->conns++;
out:
	pthread_mutex_unlock(&limit_lock);
	if (report)
		log_warn(LOG_COMPONENT,
		         "limit table: every entry near a new client holds open connections; "
		         "%llu request(s) refused with %d since the last report (last from %s)",
		         (unsigned long long)report, req_status, client->ip);
	return rc;
}

uint64_t policy_limit_slot(const struct route *route, const struct http_client *client)
{
	if (!route || !limited(route->policy) || limit_exempt(route->policy, client))
		return 0;
	return limit_key(route, client); /* never 0 */
}

void policy_limit_leave_slot(uint64_t slot)
{
	if (!slot)
		return;
	pthread_mutex_lock(&limit_lock);
	struct limit_entry *e = limit_find(slot, false, 0);
	if (e && e->conns > 0)
		e->conns--;
	pthread_mutex_unlock(&limit_lock);
}

void policy_limit_leave(const struct route *route, const struct http_client *client)
{
	policy_limit_leave_slot(policy_limit_slot(route, client));
}
