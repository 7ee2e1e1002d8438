/* proxy/auth_request.c - the forward-auth subrequest client. */
#include "auth_request.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include "error.h"
#include "http_parse.h"
#include "log.h"
#include "url.h"

#define LINES_MAX 8192u /* cap of each collected header-line list */

struct auth_request {
	struct loop *loop;
	const struct route_ext_auth *auth;
	auth_request_done_cb cb;
	void *data;
	struct upstream_pool *pool;
	struct upstream *up;
	struct resolve_query *query; /* host name lookup in flight */
	bool https;
	char sni[256]; /* the URL's host name for TLS SNI; "" for an IP literal */
	struct loop_timer timer;
	struct loop_defer defer_fail; /* reports an immediate connect failure */
	struct loop_defer defer_free;
	uint32_t timeout_ms;
	bool done;
	bool freed;      /* auth_request_free ran: no callback any more */
	bool cacheable;  /* the answer carried nothing that forbids caching */
	char *cache_key; /* the full key when the answer may be stored */
	struct auth_cache *cache;
	struct loop_defer defer_hit; /* reports a cached answer */
	int status;
	char address[RESOLVE_ADDR_MAX]; /* NUL-terminated IP literal of the auth server */
	struct route_endpoint ep;
	char *out; /* the request head */
	size_t out_len, out_off;
	char *in; /* the response head */
	size_t in_len;
	struct http_parse hp;
	/* Collected header lines, exact-size copies (NULL: none). The request
	 * and response buffers are freed once the answer is known, so a request
	 * that was let through keeps only these while its upstream exchange runs. */
	char *upstream_lines;
	char *cookie_lines;
	char *www_auth_lines;
};

/* ---- building the head ---- */

struct wbuf {
	char *p;
	size_t len, cap;
	bool over;
};

static void put(struct wbuf *w, const char *s, size_t n)
{
	if (w->over || w->cap - w->len < n) {
		w->over = true;
		return;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void puts_(struct wbuf *w, const char *s)
{
	put(w, s, strlen(s));
}

static void header(struct wbuf *w, const char *name, const char *v, size_t vlen)
{
	puts_(w, name);
	put(w, ": ", 2);
	put(w, v, vlen);
	put(w, "\r\n", 2);
}

static bool name_in(const struct http_header *h, const char *const *names)
{
	for (size_t i = 0; names[i]; i++)
		if (http_name_is(h, names[i]))
			return true;
	return false;
}

/* Headers of the client request that the auth request does not carry
 * as they came: hop-by-hop ones, body framing, and those it sets itself. */
static const char *const skipped[] = {"host",
                                      "connection",
                                      "keep-alive",
                                      "proxy-connection",
                                      "te",
                                      "trailer",
                                      "transfer-encoding",
                                      "upgrade",
                                      "content-length",
                                      "expect",
                                      "x-original-url",
                                      "x-original-method",
                                      "x-sent-from",
                                      "x-real-ip",
                                      "x-forwarded-for",
                                      "x-forwarded-proto",
                                      "x-forwarded-host",
                                      "x-forwarded-port",
                                      "x-request-id",
                                      "x-auth-request-redirect",
                                      "x-original-uri",
                                      "x-scheme",
                                      NULL};

/* True when the client's Connection header names h (a hop-by-hop header). */
static bool named_by_connection(const struct http_request *req, const struct http_header *h)
{
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *c = &req->headers[i];
		if (!http_name_is(c, "connection"))
			continue;
		const char *p = c->value, *end = c->value + c->value_len;
		while (p < end) {
			while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
				p++;
			const char *s = p;
			while (p < end && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			if ((size_t)(p - s) == h->name_len &&
			    strncasecmp(s, h->name, h->name_len) == 0)
				return true;
		}
	}
	return false;
}

/* True when auth-proxy-set-headers sets h: the configured value replaces
 * the client's (nginx's proxy_set_header). Names were checked when the
 * table loaded; the length test spares most comparisons. */
static bool set_by_route(const struct route_ext_auth *a, const struct http_header *h)
{
	for (size_t i = 0; i < a->nproxy_set_headers; i++) {
		const char *name = a->proxy_set_headers[i].name;
		if (strlen(name) == h->name_len && strncasecmp(h->name, name, h->name_len) == 0)
			return true;
	}
	return false;
}

int auth_request_build_head(const struct auth_request_params *p, const struct url *url, char *buf,
                            size_t cap)
{
	const struct http_request *req = p->req;
	const struct http_client *cl = p->client;
	struct wbuf w = {.p = buf, .cap = cap};
	char num[16];

	puts_(&w, p->auth->method ? p->auth->method : "GET");
	put(&w, " ", 1);
	put(&w, url->target, url->target_len);
	puts_(&w, " HTTP/1.1\r\n");
	header(&w, "Host", url->authority, url->authority_len);
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (name_in(h, skipped) || named_by_connection(req, h) || set_by_route(p->auth, h))
			continue;
		put(&w, h->name, h->name_len);
		put(&w, ": ", 2);
		put(&w, h->value, h->value_len);
		put(&w, "\r\n", 2);
	}
	for (size_t i = 0; i < p->auth->nproxy_set_headers; i++) {
		const struct route_header *h = &p->auth->proxy_set_headers[i];
		header(&w, h->name, h->value, strlen(h->value));
	}
	const char *scheme = cl->tls ? "https" : "http";
	const char *host = req->host ? req->host : "";
	size_t host_len = req->host ? req->host_len : 0;
	puts_(&w, "X-Original-URL: ");
	puts_(&w, scheme);
	puts_(&w, "://");
	put(&w, host, host_len);
	put(&w, req->target, req->target_len);
	put(&w, "\r\n", 2);
	header(&w, "X-Original-Method", req->method, req->method_len);
	if (p->auth->method) {
		/* as ingress-nginx does when auth-method is set */
		header(&w, "X-Original-URI", req->target, req->target_len);
		header(&w, "X-Scheme", scheme, strlen(scheme));
	}
	puts_(&w, "X-Sent-From: nginx-ingress-controller\r\n");
	header(&w, "X-Real-IP", cl->ip, strlen(cl->ip));
	/* As the upstream gets them (proxy/headers.c): the real client
	 * address (realip.h), and the incoming chain plus the nearest hop when
	 * that hop's forwarded headers are believed. */
	puts_(&w, "X-Forwarded-For: ");
	if (cl->forwarded_chain) {
		for (size_t i = 0; i < req->nheaders; i++) {
			const struct http_header *h = &req->headers[i];
			if (!http_name_is(h, "x-forwarded-for") || h->value_len == 0 ||
			    named_by_connection(req, h))
				continue;
			put(&w, h->value, h->value_len);
			put(&w, ", ", 2);
		}
		puts_(&w, cl->hop_ip);
	} else {
		puts_(&w, cl->ip);
	}
	put(&w, "\r\n", 2);
	header(&w, "X-Forwarded-Proto", scheme, strlen(scheme));
	header(&w, "X-Forwarded-Host", host, host_len);
	snprintf(num, sizeof(num), "%u", cl->local_port);
	header(&w, "X-Forwarded-Port", num, strlen(num));
	header(&w, "X-Request-ID", cl->request_id, strlen(cl->request_id));
	if (p->auth->request_redirect)
		header(&w, "X-Auth-Request-Redirect", p->auth->request_redirect,
		       strlen(p->auth->request_redirect));
	else
		header(&w, "X-Auth-Request-Redirect", req->target, req->target_len);
	puts_(&w, "Connection: close\r\n\r\n");
	if (w.over)
		return WEIR_ETOOBIG;
	return (int)w.len;
}

/* ---- decisions and answers ---- */

int auth_request_decision(const struct route_ext_auth *auth, int auth_status)
{
	if (auth_status >= 200 && auth_status < 300)
		return 0;
	if (auth_status == 401)
		return auth->signin ? 302 : 401;
	if (auth_status == 403)
		return 403;
	return 500;
}

static bool unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

/* True when the query of url holds "param=". */
static bool has_param(const char *url, const char *param)
{
	const char *q = strchr(url, '?');
	size_t n = strlen(param);
	while (q) {
		q++;
		if (strncmp(q, param, n) == 0 && q[n] == '=')
			return true;
		q = strchr(q, '&');
	}
	return false;
}

/* Append the request-target percent-encoded as a URI component (nginx's
 * $escaped_request_uri). */
static void put_escaped_target(struct wbuf *w, const struct http_request *req)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < req->target_len; i++) {
		unsigned char c = (unsigned char)req->target[i];
		if (unreserved(c)) {
			put(w, (const char *)&c, 1);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			put(w, e, 3);
		}
	}
}

/* Append the value of the nginx variable name (n bytes); false when it is
 * not one of those auth-signin may use. */
static bool put_var(struct wbuf *w, const char *name, size_t n, const struct http_request *req,
                    const struct http_client *client)
{
#define IS(s) (n == sizeof(s) - 1 && memcmp(name, s, n) == 0)
	if (IS("scheme") || IS("pass_access_scheme")) {
		puts_(w, client->tls ? "https" : "http");
	} else if (IS("http_host") || IS("best_http_host")) {
		if (req->host)
			put(w, req->host, req->host_len);
	} else if (IS("host")) {
		/* lower case, without the port (an IPv6 literal keeps its brackets) */
		size_t len = req->host ? req->host_len : 0;
		const char *colon = len ? memrchr(req->host, ':', len) : NULL;
		if (colon && !memchr(colon, ']', len - (size_t)(colon - req->host)))
			len = (size_t)(colon - req->host);
		for (size_t i = 0; i < len; i++) {
			char c = req->host[i];
			c = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
			put(w, &c, 1);
		}
	} else if (IS("request_uri")) {
		put(w, req->target, req->target_len);
	} else if (IS("escaped_request_uri")) {
		put_escaped_target(w, req);
	} else {
		return false;
	}
	return true;
#undef IS
}

static size_t var_len(const char *p)
{
	size_t n = 0;
	while ((p[n] >= 'a' && p[n] <= 'z') || p[n] == '_' || (p[n] >= '0' && p[n] <= '9'))
		n++;
	return n;
}

int auth_request_signin_location(const struct route_ext_auth *auth, const struct http_request *req,
                                 const struct http_client *client, char *buf, size_t cap)
{
	const char *param = auth->signin_redirect_param ? auth->signin_redirect_param : "rd";
	struct wbuf w = {.p = buf, .cap = cap ? cap - 1 : 0};
	if (!auth->signin)
		return WEIR_EINVAL;
	for (const char *p = auth->signin; *p; p++) {
		size_t n = p[0] == '$' ? var_len(p + 1) : 0;
		if (n && put_var(&w, p + 1, n, req, client)) {
			p += n;
			continue;
		}
		put(&w, p, 1);
	}
	if (!has_param(auth->signin, param)) {
		put(&w, strchr(auth->signin, '?') ? "&" : "?", 1);
		puts_(&w, param);
		put(&w, "=", 1);
		puts_(&w, client->tls ? "https://" : "http://");
		if (req->host)
			put(&w, req->host, req->host_len);
		put_escaped_target(&w, req);
	}
	if (w.over || !cap)
		return WEIR_ETOOBIG;
	buf[w.len] = '\0';
	return (int)w.len;
}

/* ---- the per-worker cache of answers (auth-cache-key) ---- */

struct cache_entry {
	char *key; /* NULL: empty slot */
	uint64_t expires;
	int status;
	char *upstream_lines;
	char *www_auth_lines;
	size_t bytes;
};

struct auth_cache {
	struct cache_entry slots[AUTH_CACHE_SLOTS];
	size_t bytes;
};

int auth_cache_new(struct auth_cache **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : WEIR_ENOMEM;
}

static void entry_clear(struct auth_cache *c, struct cache_entry *e)
{
	c->bytes -= e->bytes;
	free(e->key);
	free(e->upstream_lines);
	free(e->www_auth_lines);
	memset(e, 0, sizeof(*e));
}

void auth_cache_free(struct auth_cache *cache)
{
	if (!cache)
		return;
	for (size_t i = 0; i < AUTH_CACHE_SLOTS; i++)
		entry_clear(cache, &cache->slots[i]);
	free(cache);
}

static struct cache_entry *slot_of(struct auth_cache *c, const char *key)
{
	uint64_t h = 1469598103934665603ull;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return &c->slots[h % AUTH_CACHE_SLOTS];
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Store ar's answer for ms under ar->cache_key (best effort: skipped when
 * out of memory or over the byte cap). */
static void cache_store(struct auth_request *ar, uint32_t ms)
{
	struct auth_cache *c = ar->cache;
	struct cache_entry *e = slot_of(c, ar->cache_key);
	entry_clear(c, e);
	size_t bytes = strlen(ar->cache_key) + 1 +
	               (ar->upstream_lines ? strlen(ar->upstream_lines) + 1 : 0) +
	               (ar->www_auth_lines ? strlen(ar->www_auth_lines) + 1 : 0);
	if (c->bytes + bytes > AUTH_CACHE_MAX_BYTES)
		return;
	e->key = strdup(ar->cache_key);
	e->upstream_lines = dup_or_null(ar->upstream_lines);
	e->www_auth_lines = dup_or_null(ar->www_auth_lines);
	if (!e->key || (ar->upstream_lines && !e->upstream_lines) ||
	    (ar->www_auth_lines && !e->www_auth_lines)) {
		free(e->key);
		free(e->upstream_lines);
		free(e->www_auth_lines);
		memset(e, 0, sizeof(*e));
		return;
	}
	e->status = ar->status;
	e->expires = loop_now(ar->loop) + ms;
	e->bytes = bytes;
	c->bytes += bytes;
}

/* A fresh entry for key, or NULL (an expired one is dropped). */
static struct cache_entry *cache_find(struct auth_cache *c, const char *key, uint64_t now)
{
	struct cache_entry *e = slot_of(c, key);
	if (!e->key || strcmp(e->key, key) != 0)
		return NULL;
	if (e->expires <= now) {
		entry_clear(c, e);
		return NULL;
	}
	return e;
}

/* $remote_user: the user name of Basic credentials. */
static void put_remote_user(struct wbuf *w, const struct http_request *req)
{
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (!http_name_is(h, "authorization") || h->value_len < 7 ||
		    strncasecmp(h->value, "basic ", 6) != 0)
			continue;
		const char *b = h->value + 6;
		size_t n = h->value_len - 6;
		while (n && *b == ' ') {
			b++;
			n--;
		}
		unsigned char dec[512];
		if (n == 0 || n % 4 || n / 4 * 3 > sizeof(dec))
			return;
		int len = EVP_DecodeBlock(dec, (const unsigned char *)b, (int)n);
		if (len <= 0)
			return;
		const unsigned char *colon = memchr(dec, ':', (size_t)len);
		if (colon)
			put(w, (const char *)dec, (size_t)(colon - dec));
		return;
	}
}

/* Value of name=value in a list split by sep (cookies: ';', query: '&'). */
static void put_item(struct wbuf *w, const char *list, size_t len, char sep, const char *name,
                     size_t nlen)
{
	const char *p = list, *end = list + len;
	while (p < end) {
		while (p < end && (*p == ' ' || *p == sep))
			p++;
		const char *item = p;
		while (p < end && *p != sep)
			p++;
		const char *eq = memchr(item, '=', (size_t)(p - item));
		if (eq && (size_t)(eq - item) == nlen && strncasecmp(item, name, nlen) == 0) {
			put(w, eq + 1, (size_t)(p - eq - 1));
			return;
		}
	}
}

int auth_request_cache_key(const struct route_ext_auth *auth, const struct http_request *req,
                           const struct http_client *client, char *buf, size_t cap)
{
	struct wbuf w = {.p = buf, .cap = cap ? cap - 1 : 0};
	for (const char *p = auth->cache_key ? auth->cache_key : ""; *p; p++) {
		size_t n = p[0] == '$' ? var_len(p + 1) : 0;
		const char *v = p + 1;
#define IS(s) (n == sizeof(s) - 1 && memcmp(v, s, n) == 0)
#define HAS(s) (n > sizeof(s) - 1 && memcmp(v, s, sizeof(s) - 1) == 0)
		if (!n) {
			put(&w, p, 1);
			continue;
		}
		if (IS("remote_user")) {
			put_remote_user(&w, req);
		} else if (IS("uri")) {
			put(&w, req->path, req->path_len);
		} else if (IS("remote_addr")) {
			puts_(&w, client->ip);
		} else if (HAS("http_") && !IS("http_host")) {
			char hname[128];
			size_t hl = n - 5;
			if (hl >= sizeof(hname))
				hl = sizeof(hname) - 1;
			for (size_t i = 0; i < hl; i++)
				hname[i] = v[5 + i] == '_' ? '-' : v[5 + i];
			hname[hl] = '\0';
			for (size_t i = 0; i < req->nheaders; i++) {
				if (http_name_is(&req->headers[i], hname)) {
					put(&w, req->headers[i].value, req->headers[i].value_len);
					break;
				}
			}
		} else if (HAS("cookie_")) {
			for (size_t i = 0; i < req->nheaders; i++)
				if (http_name_is(&req->headers[i], "cookie"))
					put_item(&w, req->headers[i].value,
					         req->headers[i].value_len, ';', v + 7, n - 7);
		} else if (HAS("arg_")) {
			const char *q = memchr(req->target, '?', req->target_len);
			if (q)
				put_item(&w, q + 1, req->target_len - (size_t)(q + 1 - req->target),
				         '&', v + 4, n - 4);
		} else if (!put_var(&w, v, n, req, client)) {
			put(&w, p, n + 1); /* not a variable the controller lets through */
		}
		p += n;
#undef IS
#undef HAS
	}
	if (w.over || !cap)
		return WEIR_ETOOBIG;
	buf[w.len] = '\0';
	return (int)w.len;
}

/* Length of the header name at the start of line (up to ':'). */
static size_t line_name_len(const char *line, size_t n)
{
	const char *colon = memchr(line, ':', n);
	return colon ? (size_t)(colon - line) : n;
}

int auth_request_edit_head(char *head, size_t len, size_t cap, char *const *drop, size_t ndrop,
                           const char *lines)
{
	size_t add = lines ? strlen(lines) : 0;
	if (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0)
		return WEIR_EINVAL;
	if (len + add > cap)
		return WEIR_ETOOBIG;
	/* Skip the start line; then each header line until the blank one. */
	char *p = memchr(head, '\n', len);
	if (!p)
		return WEIR_EINVAL;
	p++;
	while ((size_t)(p - head) < len - 2) {
		char *eol = memchr(p, '\n', len - (size_t)(p - head));
		if (!eol)
			return WEIR_EINVAL;
		size_t llen = (size_t)(eol - p) + 1;
		size_t nlen = line_name_len(p, llen);
		bool gone = false;
		for (size_t i = 0; i < ndrop && !gone; i++)
			gone = strlen(drop[i]) == nlen && strncasecmp(p, drop[i], nlen) == 0;
		if (gone) {
			memmove(p, p + llen, len - (size_t)(p - head) - llen);
			len -= llen;
		} else {
			p += llen;
		}
	}
	memcpy(head + len - 2 + add, "\r\n", 2);
	memcpy(head + len - 2, lines ? lines : "", add);
	return (int)(len + add);
}

/* ---- the subrequest ---- */

const char *auth_request_upstream_lines(const struct auth_request *ar)
{
	return ar->upstream_lines ? ar->upstream_lines : "";
}

const char *auth_request_cookie_lines(const struct auth_request *ar)
{
	return ar->cookie_lines ? ar->cookie_lines : "";
}

const char *auth_request_www_auth_lines(const struct auth_request *ar)
{
	return ar->www_auth_lines ? ar->www_auth_lines : "";
}

int auth_request_status(const struct auth_request *ar)
{
	return ar->status;
}

static void close_up(struct auth_request *ar)
{
	if (ar->up)
		upstream_close(ar->up);
	ar->up = NULL;
	resolve_cancel(ar->query);
	ar->query = NULL;
}

#define WARN_EVERY_MS 1000u

/* A failing auth server fails every request: at most one warning per second
 * per worker, with the count of those left out. */
static void warn_failure(struct auth_request *ar, const char *why)
{
	static _Thread_local uint64_t last_ms;
	static _Thread_local uint64_t suppressed;
	uint64_t now = loop_now(ar->loop);
	if (last_ms && now - last_ms < WARN_EVERY_MS) {
		suppressed++;
		return;
	}
	log_warn("proxy.auth", "auth request to %s failed: %s (%llu more failures not logged)",
	         ar->auth->url ? ar->auth->url : "-", why, (unsigned long long)suppressed);
	last_ms = now ? now : 1;
	suppressed = 0;
}

static void finish(struct auth_request *ar, int status, const char *why)
{
	if (ar->done)
		return;
	ar->done = true;
	ar->status = status;
	close_up(ar);
	loop_timer_cancel(ar->loop, &ar->timer);
	free(ar->out);
	free(ar->in);
	ar->out = ar->in = NULL;
	uint32_t ms = 0;
	if (status && ar->cache_key && ar->cacheable &&
	    url_cache_valid_ms(ar->auth->cache_duration ? ar->auth->cache_duration
	                                                : "200 202 401 5m",
	                       status, &ms) == 0 &&
	    ms)
		cache_store(ar, ms);
	if (!status)
		warn_failure(ar, why);
	ar->cb(ar, ar->data);
}

/* Append "Name: value\r\n" to list (cap LINES_MAX) unless it would not fit. */
static void add_line(char *list, const char *name, size_t nlen, const char *v, size_t vlen)
{
	size_t have = strlen(list);
	if (have + nlen + vlen + 5 > LINES_MAX)
		return;
	char *p = list + have;
	memcpy(p, name, nlen);
	p += nlen;
	memcpy(p, ": ", 2);
	p += 2;
	memcpy(p, v, vlen);
	p += vlen;
	memcpy(p, "\r\n", 3);
}

/* An exact-size copy of list into *dst unless it is empty. */
static int keep_lines(char **dst, const char *list)
{
	if (!list[0])
		return 0;
	*dst = strdup(list);
	return *dst ? 0 : WEIR_ENOMEM;
}

static int take_headers(struct auth_request *ar, const struct http_response *resp)
{
	const struct route_ext_auth *a = ar->auth;
	char *scratch = malloc(3 * LINES_MAX);
	if (!scratch)
		return WEIR_ENOMEM;
	char *cookies = scratch, *www = scratch + LINES_MAX, *up = scratch + 2 * LINES_MAX;
	cookies[0] = www[0] = up[0] = '\0';
	ar->cacheable = true;
	for (size_t i = 0; i < resp->nheaders; i++) {
		const struct http_header *h = &resp->headers[i];
		/* nginx's cache would not store these, or not for our duration */
		if (http_name_is(h, "set-cookie") || http_name_is(h, "cache-control") ||
		    http_name_is(h, "expires") || http_name_is(h, "x-accel-expires") ||
		    http_name_is(h, "vary"))
			ar->cacheable = false;
		if (http_name_is(h, "set-cookie"))
			add_line(cookies, "Set-Cookie", 10, h->value, h->value_len);
		else if (http_name_is(h, "www-authenticate"))
			add_line(www, "WWW-Authenticate", 16, h->value, h->value_len);
	}
	for (size_t n = 0; n < a->nresponse_headers && resp->status >= 200 && resp->status < 300;
	     n++) {
		for (size_t i = 0; i < resp->nheaders; i++) {
			if (!http_name_is(&resp->headers[i], a->response_headers[n]))
				continue;
			add_line(up, a->response_headers[n], strlen(a->response_headers[n]),
			         resp->headers[i].value, resp->headers[i].value_len);
			break; /* the first one, as nginx's $upstream_http_ variable */
		}
	}
	int rc = keep_lines(&ar->cookie_lines, cookies) || keep_lines(&ar->www_auth_lines, www) ||
	                 keep_lines(&ar->upstream_lines, up)
	             ? WEIR_ENOMEM
	             : 0;
	free(scratch);
	return rc;
}

/* Returns true when the exchange is over. */
static bool step(struct auth_request *ar)
{
	struct upstream *u = ar->up;
	while (ar->out_off < ar->out_len && u->can_write) {
		ssize_t n =
		    tls_sock_write(&u->sock, ar->out + ar->out_off, ar->out_len - ar->out_off);
		if (n == WEIR_EAGAIN) {
			if (u->sock.blocked_out)
				u->can_write = false;
			else
				u->can_read = false;
			break;
		}
		if (n < 0) {
			finish(ar, 0, "write failed");
			return true;
		}
		ar->out_off += (size_t)n;
	}
	while (u->can_read) {
		size_t room = AUTH_REQUEST_HEAD_MAX - ar->in_len;
		if (room == 0) {
			finish(ar, 0, "response head too large");
			return true;
		}
		ssize_t n = tls_sock_read(&u->sock, ar->in + ar->in_len, room);
		if (n == WEIR_EAGAIN) {
			if (u->sock.blocked_out)
				u->can_write = false;
			else
				u->can_read = false;
			break;
		}
		if (n <= 0) {
			finish(ar, 0, "connection closed before the response head");
			return true;
		}
		ar->in_len += (size_t)n;
		long r = http_parse_scan_head(&ar->hp, ar->in, ar->in_len, AUTH_REQUEST_HEAD_MAX);
		if (r < 0) {
			finish(ar, 0, "bad response head");
			return true;
		}
		if (r > 0) {
			struct http_response *resp = malloc(sizeof(*resp));
			if (!resp) {
				finish(ar, 0, "out of memory");
				return true;
			}
			int st = http_parse_response_head(&ar->hp, ar->in, (size_t)r, resp);
			if (st || resp->status < 200) {
				free(resp);
				finish(ar, 0, st ? "bad response head" : "informational response");
				return true;
			}
			int trc = take_headers(ar, resp);
			int status = resp->status;
			free(resp);
			finish(ar, trc ? 0 : status, trc ? "out of memory" : "");
			return true;
		}
	}
	return false;
}

static void arm(struct auth_request *ar, uint32_t ms)
{
	if (loop_timer_set(ar->loop, &ar->timer, ms) != 0)
		finish(ar, 0, "out of memory (timer)");
}

static void on_up_event(struct upstream *u, uint32_t events)
{
	struct auth_request *ar = u->data;
	if (ar->done || ar->up != u)
		return;
	if (!u->connected) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		int err = upstream_connect_error(u);
		if (err == EINPROGRESS || err == EALREADY)
			return;
		if (err != 0) {
			finish(ar, 0, strerror(err));
			return;
		}
		u->connected = true;
		arm(ar, ar->timeout_ms);
		if (ar->done)
			return;
	}
	if (u->sock.ssl)
		u->can_read = u->can_write = true;
	step(ar);
}

static void on_timer(struct loop_timer *t)
{
	struct auth_request *ar = t->data;
	finish(ar, 0, ar->up && ar->up->connected ? "timed out" : "connect timed out");
}

/* Open the connection to ar->address. Returns 0 or the upstream_connect
 * error (ar->up then NULL). */
static int connect_now(struct auth_request *ar)
{
	int err = 0;
	int rc = upstream_connect(ar->pool, &ar->ep, ar->https, on_up_event, ar, &ar->up, &err);
	if (rc != 0) {
		ar->up = NULL;
		return rc;
	}
	/* SNI as ingress-nginx's proxy_ssl_server_name on; the handshake has not
	 * started yet (it runs on the first read or write). */
	if (ar->up->sock.ssl && ar->sni[0])
		SSL_set_tlsext_host_name(ar->up->sock.ssl, ar->sni);
	return 0;
}

static void on_resolved(void *data, int rc, const char *address)
{
	struct auth_request *ar = data;
	ar->query = NULL; /* freed by the resolver after this call */
	if (ar->done)
		return;
	if (rc != 0) {
		finish(ar, 0, "host name did not resolve");
		return;
	}
	snprintf(ar->address, sizeof(ar->address), "%s", address);
	if (connect_now(ar) != 0)
		finish(ar, 0, "connect failed");
	else if (ar->up->connected)
		arm(ar, ar->timeout_ms);
}

static void on_cache_hit(struct loop_defer *d)
{
	struct auth_request *ar = d->data;
	if (!ar->freed)
		ar->cb(ar, ar->data);
}

/* The cache key of this request ("url\nscope\nexpanded") into buf, or -1
 * when it is too long to cache. */
static int full_cache_key(const struct auth_request_params *p, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s\n%s\n", p->auth->url, p->cache_scope ? p->cache_scope : "");
	if (n < 0 || (size_t)n >= cap)
		return -1;
	int k = auth_request_cache_key(p->auth, p->req, p->client, buf + n, cap - (size_t)n);
	return k < 0 ? -1 : n + k;
}

/* Answer from the cache: ar gets the stored status and lines, and the
 * callback runs from the loop. Returns 0, or WEIR_ENOMEM. */
static int answer_cached(struct auth_request *ar, const struct cache_entry *e)
{
	ar->status = e->status;
	ar->done = true;
	ar->upstream_lines = dup_or_null(e->upstream_lines);
	ar->www_auth_lines = dup_or_null(e->www_auth_lines);
	if ((e->upstream_lines && !ar->upstream_lines) ||
	    (e->www_auth_lines && !ar->www_auth_lines))
		return WEIR_ENOMEM;
	loop_defer(ar->loop, &ar->defer_hit, on_cache_hit, ar);
	return 0;
}

static void on_connect_failed(struct loop_defer *d)
{
	struct auth_request *ar = d->data;
	finish(ar, 0, "connect failed");
}

int auth_request_start(struct loop *loop, struct upstream_pool *pool,
                       const struct auth_request_params *p, auth_request_done_cb cb, void *data,
                       struct auth_request **out)
{
	int rc = WEIR_EINVAL;
	struct url url;
	struct auth_request *ar = NULL;
	if (!p->auth->url || url_parse(p->auth->url, &url) != 0 ||
	    (!p->resolver && !url_host_is_ip(url.host, url.host_len)))
		return WEIR_EINVAL;
	rc = WEIR_ENOMEM;
	ar = calloc(1, sizeof(*ar));
	if (!ar)
		goto fail;
	ar->loop = loop;
	ar->auth = p->auth;
	ar->cb = cb;
	ar->data = data;
	loop_timer_init(&ar->timer, on_timer, ar);
	if (p->auth->cache_key && p->cache) {
		char key[AUTH_CACHE_KEY_MAX];
		if (full_cache_key(p, key, sizeof(key)) >= 0) {
			const struct cache_entry *e = cache_find(p->cache, key, loop_now(loop));
			if (e) {
				if (answer_cached(ar, e) != 0)
					goto fail;
				*out = ar;
				return 0;
			}
			ar->cache = p->cache;
			ar->cache_key = strdup(key);
			if (!ar->cache_key)
				goto fail;
		}
	}
	ar->out = malloc(AUTH_REQUEST_HEAD_MAX);
	ar->in = malloc(AUTH_REQUEST_HEAD_MAX);
	if (!ar->out || !ar->in)
		goto fail;
	int n = auth_request_build_head(p, &url, ar->out, AUTH_REQUEST_HEAD_MAX);
	if (n < 0) {
		rc = n;
		goto fail;
	}
	ar->out_len = (size_t)n;
	char *fit = realloc(ar->out, (size_t)n);
	if (fit)
		ar->out = fit;
	ar->timeout_ms = p->timeout_ms;
	ar->pool = pool;
	ar->https = url.https;
	ar->ep.address = ar->address;
	ar->ep.port = url.port;
	ar->ep.weight = 1;
	http_parse_init(&ar->hp, true, p->auth->method && strcmp(p->auth->method, "HEAD") == 0);
	if (url_host_is_ip(url.host, url.host_len)) {
		memcpy(ar->address, url.host, url.host_len);
	} else {
		if (url.host_len < sizeof(ar->sni))
			memcpy(ar->sni, url.host, url.host_len);
		int lrc = resolver_lookup(p->resolver, url.host, url.host_len, on_resolved, ar,
		                          ar->address, &ar->query);
		if (lrc == WEIR_ENOMEM)
			goto fail;
		if (lrc == WEIR_EAGAIN) {
			loop_timer_set(loop, &ar->timer, p->connect_timeout_ms);
			*out = ar;
			return 0;
		}
		if (lrc != 0) {
			ar->query = NULL;
			loop_defer(loop, &ar->defer_fail, on_connect_failed, ar);
			*out = ar;
			return 0;
		}
	}
	int crc = connect_now(ar);
	if (crc == WEIR_ENOMEM)
		goto fail;
	if (crc != 0) {
		/* Reported from the loop: the callback never runs inside start. */
		loop_defer(loop, &ar->defer_fail, on_connect_failed, ar);
	} else {
		loop_timer_set(loop, &ar->timer,
		               ar->up->connected ? ar->timeout_ms : p->connect_timeout_ms);
	}
	*out = ar;
	return 0;
fail:
	if (ar) {
		free(ar->out);
		free(ar->in);
		free(ar->cache_key);
		free(ar->upstream_lines);
		free(ar->www_auth_lines);
		free(ar);
	}
	return rc;
}

static void free_deferred(struct loop_defer *d)
{
	struct auth_request *ar = d->data;
	free(ar->out);
	free(ar->in);
	free(ar->cache_key);
	free(ar->upstream_lines);
	free(ar->cookie_lines);
	free(ar->www_auth_lines);
	free(ar);
}

void auth_request_free(struct auth_request *ar)
{
	if (!ar)
		return;
	ar->freed = true;
	ar->done = true;
	close_up(ar);
	loop_timer_cancel(ar->loop, &ar->timer);
	/* A queued connect-failure report may still point at ar: free after it
	 * (deferred callbacks run in the order queued). */
	loop_defer(ar->loop, &ar->defer_free, free_deferred, ar);
}
