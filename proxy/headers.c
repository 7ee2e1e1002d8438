/* proxy/headers.c - message heads for the upstream request, the client
 * response and the proxy's own answers. Everything is written into the
 * caller's buffer through a bounded writer; nothing is allocated.
 *
 * Request rules beyond the contract in headers.h:
 * - Headers the proxy vouches for (X-Forwarded-Proto/-Host/-Port/-Prefix,
 *   X-Request-ID, X-Request-Base) pass from a trusted peer only; an untrusted
 *   client's copies are dropped, then ours are added. X-Forwarded-For and
 *   X-Real-IP are always rebuilt from the real client address (realip.h).
 * - X-Request-Base uses the public scheme and host: a trusted peer's
 *   X-Forwarded-Proto/-Host when it sent them, else the connection's scheme
 *   and the Host header.
 * - origin-rewrite points Origin (and the scheme://authority of Referer) at
 *   the authority the upstream receives in Host (upstream-vhost, else the
 *   client's Host, else the endpoint address) with the upstream's scheme, so
 *   Tornado/Jupyter-style "Origin host == Host" checks pass.
 * - request-headers replace every same-named header, ours included; they
 *   cannot set hop-by-hop or framing headers.
 * - A second Host header is dropped; Content-Length always reflects the
 *   framing the caller asked for. */
#include "headers.h"
#include "rewrite.h"
#include "resp_rewrite.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "client_cert.h"
#include "error.h"

/* A bounded output buffer: once a write does not fit, every later write is
 * ignored and the build reports WEIR_ETOOBIG. */
struct wbuf {
	char *p;
	size_t cap;
	size_t len;
	bool over;
};

static void put(struct wbuf *w, const char *s, size_t n)
{
	if (w->over)
		return;
	if (n > w->cap - w->len) {
		w->over = true;
		return;
	}
	if (n)
		memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void puts_(struct wbuf *w, const char *s)
{
	put(w, s, strlen(s));
}

/* v in decimal, without stdio (it runs for every response). */
static void put_i64(struct wbuf *w, int64_t v)
{
	char tmp[BUF_DEC_MAX];
	if (v < 0)
		put(w, "-", 1);
	put(w, tmp, buf_dec_u64(tmp, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v));
}

/* The three digits of a status line; outside 100..999 the fallback's. */
static void put_status(struct wbuf *w, int status, int fallback)
{
	unsigned s = (unsigned)(status >= 100 && status <= 999 ? status : fallback);
	char code[3] = {(char)('0' + s / 100), (char)('0' + s / 10 % 10), (char)('0' + s % 10)};
	put(w, code, 3);
}

/* "Name: value\r\n" */
static void put_header(struct wbuf *w, const char *name, size_t nlen, const char *value,
                       size_t vlen)
{
	put(w, name, nlen);
	put(w, ": ", 2);
	put(w, value, vlen);
	put(w, "\r\n", 2);
}

static void put_header_s(struct wbuf *w, const char *name, const char *value)
{
	put_header(w, name, strlen(name), value, strlen(value));
}

static bool name_eq(const char *a, size_t alen, const char *b);

/* The value of one variable (route_var_lookup) for req and client. */
static void put_var(struct wbuf *w, const char *name, size_t len, const struct http_request *req,
                    const struct http_client *client)
{
	enum route_var v = route_var_lookup(name, len);
	if (!req || !client)
		return;
	switch (v) {
	case ROUTE_VAR_HOST: {
		/* nginx $host: the Host header without port, lower case */
		const char *h = req->host;
		size_t n = req->host ? req->host_len : 0, end = n;
		if (n && h[0] == '[') {
			const char *rb = memchr(h, ']', n);
			end = rb ? (size_t)(rb - h) + 1 : n;
		} else if (n) {
			const char *colon = memchr(h, ':', n);
			end = colon ? (size_t)(colon - h) : n;
		}
		for (size_t i = 0; i < end; i++) {
			char c = h[i];
			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			put(w, &c, 1);
		}
		break;
	}
	case ROUTE_VAR_SCHEME:
		puts_(w, client->tls ? "https" : "http");
		break;
	case ROUTE_VAR_REQUEST_URI:
		put(w, req->target, req->target_len);
		break;
	case ROUTE_VAR_REMOTE_ADDR:
		puts_(w, client->ip);
		break;
	case ROUTE_VAR_REQ_ID:
		if (client->forwarded_trusted) {
			size_t n =
			    req->nheaders < HTTP_MAX_HEADERS ? req->nheaders : HTTP_MAX_HEADERS;
			for (size_t i = 0; i < n; i++) {
				const struct http_header *h = &req->headers[i];
				if (name_eq(h->name, h->name_len, "X-Request-ID")) {
					put(w, h->value, h->value_len);
					return;
				}
			}
		}
		puts_(w, client->request_id);
		break;
	case ROUTE_VAR_REQUEST_ID:
		puts_(w, client->request_id);
		break;
	case ROUTE_VAR_HTTP: {
		/* every header whose name matches, '-' read as '_', joined */
		const char *want = name + 5;
		size_t wlen = len - 5,
		       n = req->nheaders < HTTP_MAX_HEADERS ? req->nheaders : HTTP_MAX_HEADERS;
		bool cookie = wlen == 6 && strncasecmp(want, "cookie", 6) == 0, first = true;
		for (size_t i = 0; i < n; i++) {
			const struct http_header *h = &req->headers[i];
			if (h->name_len != wlen)
				continue;
			bool same = true;
			for (size_t k = 0; k < wlen && same; k++) {
				char a = h->name[k] == '-' ? '_' : h->name[k];
				char b = want[k];
				if (a >= 'A' && a <= 'Z')
					a = (char)(a - 'A' + 'a');
				if (b >= 'A' && b <= 'Z')
					b = (char)(b - 'A' + 'a');
				same = a == b;
			}
			if (!same)
				continue;
			if (!first)
				puts_(w, cookie ? "; " : ", ");
			first = false;
			put(w, h->value, h->value_len);
		}
		break;
	}
	case ROUTE_VAR_NONE:
		break; /* the table validator lets none through */
	}
}

/* v with its variable references replaced (a '$' that starts none is
 * kept; the validator refuses such values). */
static void put_template(struct wbuf *w, const char *v, const struct http_request *req,
                         const struct http_client *client)
{
	while (*v) {
		const char *d = strchr(v, '$');
		if (!d) {
			puts_(w, v);
			return;
		}
		put(w, v, (size_t)(d - v));
		const char *name;
		size_t len, n = route_template_var(d, &name, &len);
		if (n == 0) {
			put(w, d, 1);
			v = d + 1;
			continue;
		}
		put_var(w, name, len, req, client);
		v = d + n;
	}
}

/* "Name: value\r\n" of a route header, expanded when marked so. */
static void put_route_header(struct wbuf *w, const char *name, const char *value, bool expand,
                             const struct http_request *req, const struct http_client *client)
{
	if (!expand) {
		put_header_s(w, name, value);
		return;
	}
	puts_(w, name);
	put(w, ": ", 2);
	put_template(w, value, req, client);
	put(w, "\r\n", 2);
}

int headers_expand_value(const char *v, bool expand, const struct http_request *req,
                         const struct http_client *client, char *buf, size_t cap)
{
	struct wbuf w = {buf, cap, 0, false};
	if (expand)
		put_template(&w, v, req, client);
	else
		puts_(&w, v);
	put(&w, "", 1);
	if (w.over)
		return WEIR_ETOOBIG;
	return (int)w.len - 1;
}

int headers_expand_var(const char *name, size_t len, const struct http_request *req,
                       const struct http_client *client, char *buf, size_t cap)
{
	struct wbuf w = {buf, cap, 0, false};
	put_var(&w, name, len, req, client);
	put(&w, "", 1);
	if (w.over)
		return WEIR_ETOOBIG;
	return (int)w.len - 1;
}

static int finish(struct wbuf *w)
{
	if (w->over || w->len > INT_MAX)
		return WEIR_ETOOBIG;
	return (int)w->len;
}

static bool name_eq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	return alen == blen && strncasecmp(a, b, alen) == 0;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* True when name appears as a token in any Connection header of hs. */
static bool connection_lists(const struct http_header *hs, size_t n, const char *name, size_t nlen)
{
	for (size_t i = 0; i < n; i++) {
		if (!name_eq(hs[i].name, hs[i].name_len, "Connection"))
			continue;
		const char *v = hs[i].value, *end = v + hs[i].value_len;
		while (v < end) {
			while (v < end && (is_ows(*v) || *v == ','))
				v++;
			const char *tok = v;
			while (v < end && *v != ',')
				v++;
			const char *tend = v;
			while (tend > tok && is_ows(tend[-1]))
				tend--;
			if ((size_t)(tend - tok) == nlen && strncasecmp(tok, name, nlen) == 0)
				return true;
		}
	}
	return false;
}

/* with their lengths: every header of every message is held against them */
#define NAME_LEN(s) s, sizeof(s) - 1
static const struct {
	const char *name;
	size_t len;
} hop_by_hop[] = {
    {NAME_LEN("Connection")}, {NAME_LEN("Keep-Alive")}, {NAME_LEN("Proxy-Connection")},
    {NAME_LEN("TE")},         {NAME_LEN("Trailer")},    {NAME_LEN("Transfer-Encoding")},
    {NAME_LEN("Upgrade")},
};
#undef NAME_LEN

/* RFC 9110 7.6.1: the fixed hop-by-hop set plus anything a Connection header
 * names. Host is never dropped this way: an upstream needs it. */
static bool is_hop_by_hop(const struct http_header *h, const struct http_header *hs, size_t n)
{
	for (size_t i = 0; i < sizeof(hop_by_hop) / sizeof(hop_by_hop[0]); i++)
		if (h->name_len == hop_by_hop[i].len &&
		    strncasecmp(h->name, hop_by_hop[i].name, h->name_len) == 0)
			return true;
	if (name_eq(h->name, h->name_len, "Host"))
		return false;
	return connection_lists(hs, n, h->name, h->name_len);
}

static bool name_is_hop_or_framing(const char *name)
{
	for (size_t i = 0; i < sizeof(hop_by_hop) / sizeof(hop_by_hop[0]); i++)
		if (strcasecmp(name, hop_by_hop[i].name) == 0)
			return true;
	return strcasecmp(name, "Content-Length") == 0;
}

static bool in_route_headers(const struct route_header *rh, size_t n, const char *name, size_t nlen)
{
	for (size_t i = 0; i < n; i++)
		if (rh[i].name && name_eq(name, nlen, rh[i].name))
			return true;
	return false;
}

const char *headers_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 206:
		return "Partial Content";
	case 300:
		return "Multiple Choices";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 307:
		return "Temporary Redirect";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 411:
		return "Length Required";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 415:
		return "Unsupported Media Type";
	case 417:
		return "Expectation Failed";
	case 421:
		return "Misdirected Request";
	case 426:
		return "Upgrade Required";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Unknown";
	}
}

/* The request target after rewrite-target: $0..$9 are the regex captures over
 * the path (empty when absent), the result gets a leading '/' if it lacks one,
 * and the original query string is kept (joined with '&' when the rewrite
 * itself holds a '?', as nginx does). */
static void put_rewritten_target(struct wbuf *w, const struct http_request *req,
                                 const struct table_match *m, const char *tmpl)
{
	size_t start = w->len;
	bool has_query_in_tmpl = false;
	for (const char *s = tmpl; *s; s++) {
		if (s[0] == '$' && s[1] >= '0' && s[1] <= '9') {
			int i = s[1] - '0';
			if (m && i < m->ncaptures && i < 10 &&
			    m->cap_off[i] + m->cap_len[i] <= req->path_len)
				put(w, req->path + m->cap_off[i], m->cap_len[i]);
			s++;
			continue;
		}
		if (*s == '?')
			has_query_in_tmpl = true;
		put(w, s, 1);
	}
	if (w->over)
		return;
	if (w->len == start || w->p[start] != '/') {
		/* Captures produced the first bytes: make it absolute. */
		if (w->len == w->cap) {
			w->over = true;
			return;
		}
		memmove(w->p + start + 1, w->p + start, w->len - start);
		w->p[start] = '/';
		w->len++;
	}
	if (req->target_len > req->path_len) {
		const char *q = req->target + req->path_len; /* starts with '?' */
		size_t qlen = req->target_len - req->path_len;
		if (has_query_in_tmpl) {
			if (qlen > 1) {
				put(w, "&", 1);
				put(w, q + 1, qlen - 1);
			}
		} else {
			put(w, q, qlen);
		}
	}
}

/* The literal leading part of a path prefix without its trailing '/': for a
 * regex route the pattern up to its first metacharacter. */
static size_t route_prefix(const struct route *r, const char **out)
{
	const char *p = r->path ? r->path : "";
	size_t n;
	if (r->match == ROUTE_MATCH_REGEX) {
		if (*p == '^')
			p++;
		n = strcspn(p, ".^$*+?()[]{}|\\");
	} else {
		n = strlen(p);
	}
	while (n > 0 && p[n - 1] == '/')
		n--;
	*out = p;
	return n;
}

/* First comma-separated element of a header value, trimmed. */
static size_t first_element(const char *v, size_t len)
{
	size_t n = 0;
	while (n < len && v[n] != ',')
		n++;
	while (n > 0 && is_ows(v[n - 1]))
		n--;
	return n;
}

static const struct http_header *find_header(const struct http_header *hs, size_t n,
                                             const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (name_eq(hs[i].name, hs[i].name_len, name))
			return &hs[i];
	return NULL;
}

/* Headers the proxy sets itself and that only a trusted peer may pass on
 * (X-Real-IP is always the real client: never passed on). */
enum fwd { FWD_PROTO, FWD_HOST, FWD_PORT, FWD_REAL_IP, FWD_REQUEST_ID, FWD_N };
static const char *const fwd_names[FWD_N] = {
    "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Real-IP", "X-Request-ID",
};

int headers_build_request(const struct http_request *req, const struct http_client *client,
                          const struct headers_ctx *ctx, int64_t body_length, char *buf, size_t cap)
{
	struct wbuf w = {buf, cap, 0, false};
	const struct route *route = ctx ? ctx->route : NULL;
	const struct route_policy *pol = route ? route->policy : NULL;
	bool trusted = ctx && ctx->peer_trusted;
	const struct http_header *hs = req->headers;
	size_t n = req->nheaders < HTTP_MAX_HEADERS ? req->nheaders : HTTP_MAX_HEADERS;
	const struct route_header *rh = pol ? pol->request_headers : NULL;
	size_t nrh = pol ? pol->nrequest_headers : 0;
	const char *vhost = pol ? pol->upstream_vhost : NULL;
	bool kept[FWD_N] = {false};
	bool host_seen = false;

	/* Where the upstream's Origin/Referer should point: the authority the
	 * upstream receives in Host, with the upstream's scheme. */
	const char *up_scheme =
	    pol && pol->backend_protocol == ROUTE_PROTO_HTTPS ? "https://" : "http://";
	const char *up_auth = vhost;
	size_t up_auth_len = vhost ? strlen(vhost) : 0;
	if (!up_auth && req->host) {
		up_auth = req->host;
		up_auth_len = req->host_len;
	}
	if (!up_auth && ctx && ctx->upstream_host) {
		up_auth = ctx->upstream_host;
		up_auth_len = strlen(up_auth);
	}

	/* Request line: a snippet rewrite (break) that matches, else
	 * rewrite-target, else the target as received. */
	char rw[REWRITE_TARGET_MAX];
	size_t rwlen = 0;
	int rwi = -1;
	int rwrc = rewrite_apply(pol, req, client, rw, sizeof(rw), &rwlen, &rwi);
	if (rwrc)
		return rwrc;
	put(&w, req->method, req->method_len);
	put(&w, " ", 1);
	if (rwi >= 0 && pol->rewrites[rwi].flag == ROUTE_REWRITE_BREAK)
		put(&w, rw, rwlen);
	else if (pol && pol->rewrite_target)
		put_rewritten_target(&w, req, ctx->match, pol->rewrite_target);
	else
		put(&w, req->target, req->target_len);
	puts_(&w, " HTTP/1.1\r\n");

	/* End-to-end headers in arrival order. */
	for (size_t i = 0; i < n; i++) {
		const struct http_header *h = &hs[i];
		if (is_hop_by_hop(h, hs, n))
			continue;
		if (name_eq(h->name, h->name_len, "Content-Length"))
			continue; /* framing is ours */
		if (pol && pol->auth.type == ROUTE_AUTH_BASIC &&
		    name_eq(h->name, h->name_len, "Authorization"))
			continue; /* ingress-nginx: proxy_set_header Authorization "" */
		if (ctx && ctx->client_cert_lines && client_cert_header_name(h->name, h->name_len))
			continue; /* set below from the connection's certificate */
		if (in_route_headers(rh, nrh, h->name, h->name_len))
			continue; /* replaced below */
		if (name_eq(h->name, h->name_len, "Host")) {
			if (host_seen)
				continue;
			host_seen = true;
			if (vhost)
				put_header_s(&w, "Host", vhost);
			else
				put_header(&w, h->name, h->name_len, h->value, h->value_len);
			continue;
		}
		if (name_eq(h->name, h->name_len, "X-Forwarded-For"))
			continue; /* rebuilt below */
		bool is_fwd = false;
		for (int f = 0; f < FWD_N; f++) {
			if (name_eq(h->name, h->name_len, fwd_names[f])) {
				is_fwd = true;
				if (trusted && f != FWD_REAL_IP) {
					kept[f] = true;
					put_header(&w, h->name, h->name_len, h->value,
					           h->value_len);
				}
			}
		}
		if (is_fwd)
			continue;
		if (name_eq(h->name, h->name_len, "X-Forwarded-Prefix")) {
			if (trusted && !(pol && pol->x_forwarded_prefix))
				put_header(&w, h->name, h->name_len, h->value, h->value_len);
			continue;
		}
		if (name_eq(h->name, h->name_len, "X-Request-Base")) {
			if (trusted && !(pol && pol->request_base))
				put_header(&w, h->name, h->name_len, h->value, h->value_len);
			continue;
		}
		if (pol && pol->origin_rewrite && up_auth &&
		    name_eq(h->name, h->name_len, "Origin")) {
			put(&w, h->name, h->name_len);
			put(&w, ": ", 2);
			puts_(&w, up_scheme);
			put(&w, up_auth, up_auth_len);
			put(&w, "\r\n", 2);
			continue;
		}
		if (pol && pol->origin_rewrite && up_auth &&
		    name_eq(h->name, h->name_len, "Referer")) {
			const char *sep = memmem(h->value, h->value_len, "://", 3);
			put(&w, h->name, h->name_len);
			put(&w, ": ", 2);
			if (sep) {
				const char *auth = sep + 3, *end = h->value + h->value_len;
				const char *rest = auth;
				while (rest < end && *rest != '/' && *rest != '?' && *rest != '#')
					rest++;
				puts_(&w, up_scheme);
				put(&w, up_auth, up_auth_len);
				put(&w, rest, (size_t)(end - rest));
			} else {
				put(&w, h->value, h->value_len);
			}
			put(&w, "\r\n", 2);
			continue;
		}
		put_header(&w, h->name, h->name_len, h->value, h->value_len);
	}

	/* Host when the client sent none (HTTP/1.0): the upstream needs one. */
	if (!host_seen && !in_route_headers(rh, nrh, "Host", 4)) {
		if (vhost)
			put_header_s(&w, "Host", vhost);
		else if (ctx && ctx->upstream_host)
			put_header_s(&w, "Host", ctx->upstream_host);
	}

	/* X-Forwarded-For: the incoming chain plus the nearest hop, or the real
	 * client alone (realip.c decides which). */
	if (!in_route_headers(rh, nrh, "X-Forwarded-For", 15)) {
		puts_(&w, "X-Forwarded-For: ");
		if (client->forwarded_chain) {
			for (size_t i = 0; i < n; i++) {
				const struct http_header *h = &hs[i];
				if (!name_eq(h->name, h->name_len, "X-Forwarded-For") ||
				    is_hop_by_hop(h, hs, n) || h->value_len == 0)
					continue;
				put(&w, h->value, h->value_len);
				put(&w, ", ", 2);
			}
			puts_(&w, client->hop_ip);
		} else {
			puts_(&w, client->ip);
		}
		put(&w, "\r\n", 2);
	}

	/* The public scheme and host, as a trusted peer saw them or as we do. */
	const char *scheme = client->tls ? "https" : "http";
	size_t scheme_len = strlen(scheme);
	const char *pub_host = req->host;
	size_t pub_host_len = req->host ? req->host_len : 0;
	if (kept[FWD_PROTO]) {
		const struct http_header *h = find_header(hs, n, "X-Forwarded-Proto");
		scheme = h->value;
		scheme_len = first_element(h->value, h->value_len);
	}
	if (kept[FWD_HOST]) {
		const struct http_header *h = find_header(hs, n, "X-Forwarded-Host");
		pub_host = h->value;
		pub_host_len = first_element(h->value, h->value_len);
	}

	for (int f = 0; f < FWD_N; f++) {
		if (kept[f] || in_route_headers(rh, nrh, fwd_names[f], strlen(fwd_names[f])))
			continue;
		switch (f) {
		case FWD_PROTO:
			put_header_s(&w, fwd_names[f], client->tls ? "https" : "http");
			break;
		case FWD_HOST:
			if (req->host)
				put_header(&w, fwd_names[f], strlen(fwd_names[f]), req->host,
				           req->host_len);
			break;
		case FWD_PORT:
			puts_(&w, "X-Forwarded-Port: ");
			put_i64(&w, client->local_port);
			put(&w, "\r\n", 2);
			break;
		case FWD_REAL_IP:
			put_header_s(&w, fwd_names[f], client->ip);
			break;
		case FWD_REQUEST_ID:
			put_header_s(&w, fwd_names[f], client->request_id);
			break;
		}
	}

	if (pol && pol->x_forwarded_prefix && !in_route_headers(rh, nrh, "X-Forwarded-Prefix", 18))
		put_header_s(&w, "X-Forwarded-Prefix", pol->x_forwarded_prefix);

	if (pol && pol->request_base && pub_host &&
	    !in_route_headers(rh, nrh, "X-Request-Base", 14)) {
		const char *prefix;
		size_t plen = route_prefix(route, &prefix);
		puts_(&w, "X-Request-Base: ");
		put(&w, scheme, scheme_len);
		puts_(&w, "://");
		put(&w, pub_host, pub_host_len);
		put(&w, prefix, plen);
		put(&w, "\r\n", 2);
	}

	if (ctx && ctx->client_cert_lines)
		puts_(&w, ctx->client_cert_lines);

	for (size_t i = 0; i < nrh; i++) {
		if (!rh[i].name || !rh[i].value || name_is_hop_or_framing(rh[i].name))
			continue;
		put_route_header(&w, rh[i].name, rh[i].value, rh[i].expand, req, client);
	}

	if (req->upgrade_websocket)
		puts_(&w, "Connection: Upgrade\r\nUpgrade: websocket\r\n");

	if (body_length >= 0) {
		puts_(&w, "Content-Length: ");
		put_i64(&w, body_length);
		put(&w, "\r\n", 2);
	} else if (body_length == -2) {
		puts_(&w, "Transfer-Encoding: chunked\r\n");
	}
	put(&w, "\r\n", 2);
	return finish(&w);
}

static bool hidden(const struct route *route, const struct http_header *h)
{
	if (!route)
		return false;
	for (size_t i = 0; i < route->policy->nhide_headers; i++)
		if (route->policy->hide_headers[i] &&
		    name_eq(h->name, h->name_len, route->policy->hide_headers[i]))
			return true;
	return false;
}

/* nginx add_header without "always": only on these statuses. */
static bool add_header_status(int status)
{
	switch (status) {
	case 200:
	case 201:
	case 204:
	case 206:
	case 301:
	case 302:
	case 303:
	case 304:
	case 307:
	case 308:
		return true;
	default:
		return false;
	}
}

static void put_resp_headers(struct wbuf *w, const struct route_policy *pol,
                             const struct http_request *req, const struct http_client *client)
{
	for (size_t i = 0; i < pol->nresponse_headers; i++) {
		const struct route_header *r = &pol->response_headers[i];
		if (!r->name || !r->value || name_is_hop_or_framing(r->name))
			continue;
		put_route_header(w, r->name, r->value, r->expand, req, client);
	}
}

static void put_add_headers(struct wbuf *w, const struct route_policy *pol, int status,
                            const struct http_request *req, const struct http_client *client)
{
	bool ok = add_header_status(status);
	for (size_t i = 0; i < pol->nadd_headers; i++) {
		const struct route_add_header *a = &pol->add_headers[i];
		if (!a->name || !a->value || name_is_hop_or_framing(a->name) || !(ok || a->always))
			continue;
		put_route_header(w, a->name, a->value, a->expand, req, client);
	}
}

int headers_route_lines(const struct route *route, int status, const struct http_request *req,
                        const struct http_client *client, char *buf, size_t cap)
{
	struct wbuf w = {buf, cap, 0, false};
	const struct route_policy *pol = route ? route->policy : NULL;
	if (pol) {
		put_resp_headers(&w, pol, req, client);
		put_add_headers(&w, pol, status, req, client);
	}
	put(&w, "", 1); /* NUL */
	if (w.over)
		return WEIR_ETOOBIG;
	return (int)w.len - 1;
}

static const char *const cors_response_names[] = {
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Expose-Headers",
};

/* Location and Refresh (proxy-redirect-*) and Set-Cookie (proxy-cookie-*)
 * rewritten by the route's policy: true when h was written so. */
static bool put_rewritten(struct wbuf *w, const struct route_policy *pol,
                          const struct http_header *h)
{
	struct resp_piece pc[RESP_REWRITE_MAX_PIECES];
	int np = 0;
	if (name_eq(h->name, h->name_len, "Location"))
		np = resp_rewrite_redirect(pol, false, h->value, h->value_len, pc);
	else if (name_eq(h->name, h->name_len, "Refresh"))
		np = resp_rewrite_redirect(pol, true, h->value, h->value_len, pc);
	else if (name_eq(h->name, h->name_len, "Set-Cookie"))
		np = resp_rewrite_cookie(pol, h->value, h->value_len, pc);
	if (np <= 0)
		return false;
	put(w, h->name, h->name_len);
	put(w, ": ", 2);
	for (int i = 0; i < np; i++)
		put(w, pc[i].p, pc[i].n);
	put(w, "\r\n", 2);
	return true;
}

/* A Vary value v[0..n) that lists Accept-Encoding or "*". */
static bool vary_names_accept_encoding(const char *v, size_t n)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
			i++;
		if ((i - s == 1 && v[s] == '*') || name_eq(v + s, i - s, "Accept-Encoding"))
			return true;
	}
	return false;
}

int headers_build_response(const struct http_response *resp, const struct route *route,
                           const struct headers_resp_extra *extra, int64_t body_length,
                           enum headers_conn conn, char *buf, size_t cap)
{
	struct wbuf w = {buf, cap, 0, false};
	const struct route_policy *pol = route ? route->policy : NULL;
	const struct http_header *hs = resp->headers;
	size_t n = resp->nheaders < HTTP_MAX_HEADERS ? resp->nheaders : HTTP_MAX_HEADERS;
	int status = resp->status;
	bool upgrade = status == 101;
	/* RFC 9110 8.6: no Content-Length in 1xx and 204; a 304 carries the
	 * upstream's (it describes the 200), so pass that one through. */
	bool no_framing = status < 200 || status == 204;
	bool not_modified = status == 304;
	bool cors = pol && pol->cors.enabled;
	/* ours replaces the upstream's; a route's response-headers entry wins */
	const char *encoding = extra && !upgrade ? extra->encoding : NULL;
	bool gzip = encoding != NULL; /* compressed, by either coding */
	bool vary = extra && extra->vary_accept_encoding && !upgrade;
	bool hsts = extra && extra->hsts &&
	            !(pol && in_route_headers(pol->response_headers, pol->nresponse_headers,
	                                      "Strict-Transport-Security", 25));
	static const struct http_header server_h = {.name = "Server", .name_len = 6};
	bool server =
	    extra && extra->server && !hidden(route, &server_h) &&
	    !(pol && in_route_headers(pol->response_headers, pol->nresponse_headers, "Server", 6));

	puts_(&w, "HTTP/1.1 ");
	put_status(&w, status, 502);
	put(&w, " ", 1);
	if (resp->reason && resp->reason_len)
		put(&w, resp->reason, resp->reason_len);
	else
		puts_(&w, headers_reason(status));
	put(&w, "\r\n", 2);

	for (size_t i = 0; i < n; i++) {
		const struct http_header *h = &hs[i];
		if (is_hop_by_hop(h, hs, n))
			continue;
		if (name_eq(h->name, h->name_len, "Content-Length") && !not_modified)
			continue;
		if (hidden(route, h))
			continue;
		if (pol && in_route_headers(pol->response_headers, pol->nresponse_headers, h->name,
		                            h->name_len))
			continue;
		if (hsts && name_eq(h->name, h->name_len, "Strict-Transport-Security"))
			continue;
		if (name_eq(h->name, h->name_len, "Server")) {
			if (extra && extra->hide_server)
				continue;
			server = false; /* the upstream's passes instead */
		}
		if (cors) {
			bool c = false;
			for (size_t k = 0; k < 3; k++)
				c = c || name_eq(h->name, h->name_len, cors_response_names[k]);
			if (c)
				continue;
		}
		if (pol && put_rewritten(&w, pol, h))
			continue;
		if (gzip && name_eq(h->name, h->name_len, "Accept-Ranges"))
			continue;
		if (gzip && name_eq(h->name, h->name_len, "ETag")) {
			/* the compressed bytes differ: at most a weak validator */
			if (h->value_len >= 2 && h->value[0] == 'W' && h->value[1] == '/') {
				put_header(&w, h->name, h->name_len, h->value, h->value_len);
			} else if (h->value_len >= 2 && h->value[0] == '"') {
				put(&w, h->name, h->name_len);
				puts_(&w, ": W/");
				put(&w, h->value, h->value_len);
				put(&w, "\r\n", 2);
			}
			continue;
		}
		if (vary && name_eq(h->name, h->name_len, "Vary") &&
		    vary_names_accept_encoding(h->value, h->value_len))
			vary = false;
		put_header(&w, h->name, h->name_len, h->value, h->value_len);
	}
	if (encoding)
		put_header_s(&w, "Content-Encoding", encoding);
	if (vary)
		puts_(&w, "Vary: Accept-Encoding\r\n");

	if (pol) {
		const struct http_request *xreq = extra ? extra->req : NULL;
		const struct http_client *xclient = extra ? extra->client : NULL;
		put_resp_headers(&w, pol, xreq, xclient);
		put_add_headers(&w, pol, status, xreq, xclient);
	}
	if (cors && extra && extra->allow_origin) {
		puts_(&w, "Access-Control-Allow-Origin: ");
		put(&w, extra->allow_origin, extra->allow_origin_len);
		put(&w, "\r\n", 2);
		if (!(extra->allow_origin_len == 1 && extra->allow_origin[0] == '*'))
			puts_(&w, "Vary: Origin\r\n");
		if (pol->cors.allow_credentials)
			puts_(&w, "Access-Control-Allow-Credentials: true\r\n");
		if (pol->cors.expose_headers && pol->cors.expose_headers[0])
			put_header_s(&w, "Access-Control-Expose-Headers", pol->cors.expose_headers);
	}
	if (extra && extra->set_cookie && extra->set_cookie[0])
		put_header_s(&w, "Set-Cookie", extra->set_cookie);
	if (hsts)
		put_header_s(&w, "Strict-Transport-Security", extra->hsts);
	if (server)
		put_header_s(&w, "Server", extra->server);

	if (upgrade) {
		puts_(&w, "Connection: Upgrade\r\nUpgrade: websocket\r\n");
	} else {
		if (!no_framing && !not_modified) {
			if (body_length >= 0) {
				puts_(&w, "Content-Length: ");
				put_i64(&w, body_length);
				put(&w, "\r\n", 2);
			} else if (body_length == -2) {
				puts_(&w, "Transfer-Encoding: chunked\r\n");
			}
		}
		if (conn == HEADERS_CONN_CLOSE && status >= 200)
			puts_(&w, "Connection: close\r\n");
		else if (conn == HEADERS_CONN_KEEP_10)
			puts_(&w, "Connection: keep-alive\r\n");
	}
	put(&w, "\r\n", 2);
	return finish(&w);
}

int headers_build_local(int status, const char *extra_headers, const char *body,
                        enum headers_conn conn, char *buf, size_t cap)
{
	struct wbuf w = {buf, cap, 0, false};
	/* 204 and 304 have no content: no body and no Content-Length. */
	bool bodyless = status == 204 || status == 304 || status < 200;
	size_t blen = body && !bodyless ? strlen(body) : 0;
	puts_(&w, "HTTP/1.1 ");
	put_status(&w, status, 500);
	put(&w, " ", 1);
	puts_(&w, headers_reason(status));
	put(&w, "\r\n", 2);
	if (!bodyless) {
		puts_(&w, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
		put_i64(&w, (int64_t)blen);
		put(&w, "\r\n", 2);
	}
	if (extra_headers)
		puts_(&w, extra_headers);
	if (conn == HEADERS_CONN_CLOSE)
		puts_(&w, "Connection: close\r\n");
	else if (conn == HEADERS_CONN_KEEP_10)
		puts_(&w, "Connection: keep-alive\r\n");
	put(&w, "\r\n", 2);
	put(&w, body, blen);
	return finish(&w);
}

int headers_hsts_value(const struct route_settings *s, char *buf, size_t cap)
{
	if (!s || !s->hsts)
		return 0;
	/* every HTTPS answer asks: no format parsing */
	char p[BUF_DEC_MAX];
	size_t alen = buf_dec_u64(p, s->hsts_max_age);
	const char *sub = s->hsts_include_subdomains ? "; includeSubDomains" : "";
	const char *pre = s->hsts_preload ? "; preload" : "";
	size_t slen = strlen(sub), plen = strlen(pre), n = 8 + alen + slen + plen;
	if (n >= cap)
		return 0;
	memcpy(buf, "max-age=", 8);
	memcpy(buf + 8, p, alen);
	memcpy(buf + 8 + alen, sub, slen);
	memcpy(buf + 8 + alen + slen, pre, plen);
	buf[n] = '\0';
	return (int)n;
}
