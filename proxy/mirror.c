/* proxy/mirror.c - the request mirror client (fire and forget). */
#include "mirror.h"

#include <errno.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include "error.h"
#include "http_parse.h"
#include "log.h"
#include "metrics.h"
#include "tls.h"
#include "url.h"

/* Room for the digits of the real Content-Length over the "0" written first. */
#define MIRROR_CL_ROOM 24u

struct mirror_set {
	struct loop *loop;
	struct upstream_pool *pool;
	struct resolver *resolver;
	size_t inflight;    /* capturing or on the wire: counts against the cap */
	struct mirror *all; /* every mirror not yet freed, finished ones included */
};

struct mirror {
	struct mirror_set *set;
	struct mirror *next, *prev;
	bool done;
	struct upstream *up;
	struct resolve_query *query;
	bool https;
	char sni[256];
	char address[RESOLVE_ADDR_MAX];
	struct route_endpoint ep;
	struct loop_timer timer;
	struct loop_defer defer_start; /* connect or report from the loop */
	struct loop_defer defer_free;
	uint32_t connect_timeout_ms, timeout_ms;
	/* The request: head, then body_len body bytes (capped), one buffer. */
	char *out;
	size_t head_len, body_len, out_off;
	size_t body_cap; /* the body bytes out has room for (<= MIRROR_BODY_MAX) */
	bool with_body;
	char *in; /* the answer head (MIRROR_HEAD_MAX) */
	size_t in_len;
	struct http_parse hp;
	char url[]; /* the expanded URL (host slices point here) */
};

/* ---- the head ---- */

struct wbuf {
	char *p;
	size_t cap, len;
	bool over;
};

static void put(struct wbuf *w, const char *s, size_t n)
{
	if (w->over || n >= w->cap - w->len) {
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

/* Not copied from the client: hop-by-hop, body framing, and Host. */
static const char *const skipped[] = {
    "host",    "connection",        "keep-alive", "proxy-connection", "te",
    "trailer", "transfer-encoding", "upgrade",    "content-length",   "expect",
    NULL};

static bool skip_header(const struct http_request *req, const struct http_header *h)
{
	for (size_t i = 0; skipped[i]; i++)
		if (http_name_is(h, skipped[i]))
			return true;
	/* and those the client's Connection header names */
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

int mirror_build_head(const struct route_mirror *m, const char *expanded,
                      const struct http_request *req, bool with_body, size_t body_len, char *buf,
                      size_t cap)
{
	struct url url;
	struct wbuf w = {buf, cap, 0, cap == 0};
	if (url_parse(expanded, &url) != 0)
		return WEIR_EINVAL;
	put(&w, req->method, req->method_len);
	puts_(&w, " ");
	put(&w, url.target, url.target_len);
	puts_(&w, " HTTP/1.1\r\nHost: ");
	if (m->host) {
		puts_(&w, m->host);
	} else {
		/* the URL's host without its port, as ingress-nginx's default
		 * mirror-host (an IPv6 literal keeps its brackets) */
		bool v6 = memchr(url.host, ':', url.host_len) != NULL;
		put(&w, "[", v6);
		put(&w, url.host, url.host_len);
		put(&w, "]", v6);
	}
	puts_(&w, "\r\n");
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (skip_header(req, h))
			continue;
		put(&w, h->name, h->name_len);
		puts_(&w, ": ");
		put(&w, h->value, h->value_len);
		puts_(&w, "\r\n");
	}
	if (with_body) {
		char cl[48];
		snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", body_len);
		puts_(&w, cl);
	}
	puts_(&w, "Connection: close\r\n\r\n");
	if (w.over)
		return WEIR_ETOOBIG;
	return (int)w.len;
}

/* ---- the set ---- */

int mirror_set_new(struct loop *loop, struct upstream_pool *pool, struct resolver *resolver,
                   struct mirror_set **out)
{
	struct mirror_set *s = calloc(1, sizeof(*s));
	if (!s)
		return WEIR_ENOMEM;
	s->loop = loop;
	s->pool = pool;
	s->resolver = resolver;
	*out = s;
	return 0;
}

static void close_up(struct mirror *mr)
{
	if (mr->up)
		upstream_close(mr->up);
	mr->up = NULL;
	resolve_cancel(mr->query);
	mr->query = NULL;
}

static void unlink_free(struct mirror *mr)
{
	struct mirror_set *s = mr->set;
	if (mr->prev)
		mr->prev->next = mr->next;
	else
		s->all = mr->next;
	if (mr->next)
		mr->next->prev = mr->prev;
	free(mr->out);
	free(mr->in);
	free(mr);
}

void mirror_set_free(struct mirror_set *s)
{
	if (!s)
		return;
	while (s->all) {
		struct mirror *mr = s->all;
		close_up(mr);
		loop_timer_cancel(s->loop, &mr->timer);
		unlink_free(mr);
	}
	free(s);
}

static void free_deferred(struct loop_defer *d)
{
	unlink_free(d->data);
}

#define WARN_EVERY_MS 1000u

/* A dead mirror fails every request: one warning per second per worker. */
static void warn_failure(struct mirror *mr, const char *why)
{
	static _Thread_local uint64_t last_ms;
	static _Thread_local uint64_t suppressed;
	uint64_t now = loop_now(mr->set->loop);
	if (last_ms && now - last_ms < WARN_EVERY_MS) {
		suppressed++;
		return;
	}
	log_warn("proxy.mirror", "mirror request to %s failed: %s (%llu more failures not logged)",
	         mr->url, why, (unsigned long long)suppressed);
	last_ms = now ? now : 1;
	suppressed = 0;
}

/* End the mirror with its outcome (NULL why: dropped without warning); it is
 * freed from the loop (an upstream event of this batch may still name it). */
static void finish(struct mirror *mr, enum metrics_mirror result, const char *why)
{
	if (mr->done)
		return;
	mr->done = true;
	close_up(mr);
	loop_timer_cancel(mr->set->loop, &mr->timer);
	mr->set->inflight--;
	metrics_mirror(result);
	if (result == METRICS_MIRROR_FAILED && why)
		warn_failure(mr, why);
	loop_defer(mr->set->loop, &mr->defer_free, free_deferred, mr);
}

/* ---- the exchange ---- */

static void step(struct mirror *mr)
{
	struct upstream *u = mr->up;
	size_t total = mr->head_len + mr->body_len;
	while (mr->out_off < total && u->can_write) {
		ssize_t n = tls_sock_write(&u->sock, mr->out + mr->out_off, total - mr->out_off);
		if (n == WEIR_EAGAIN) {
			if (u->sock.blocked_out)
				u->can_write = false;
			else
				u->can_read = false;
			break;
		}
		if (n < 0) {
			finish(mr, METRICS_MIRROR_FAILED, "write failed");
			return;
		}
		mr->out_off += (size_t)n;
	}
	while (u->can_read) {
		size_t room = MIRROR_HEAD_MAX - mr->in_len;
		if (room == 0) {
			finish(mr, METRICS_MIRROR_FAILED, "answer head too large");
			return;
		}
		ssize_t n = tls_sock_read(&u->sock, mr->in + mr->in_len, room);
		if (n == WEIR_EAGAIN) {
			if (u->sock.blocked_out)
				u->can_write = false;
			else
				u->can_read = false;
			break;
		}
		if (n <= 0) {
			finish(mr, METRICS_MIRROR_FAILED,
			       "connection closed before the answer head");
			return;
		}
		mr->in_len += (size_t)n;
		long r = http_parse_scan_head(&mr->hp, mr->in, mr->in_len, MIRROR_HEAD_MAX);
		if (r < 0) {
			finish(mr, METRICS_MIRROR_FAILED, "bad answer head");
			return;
		}
		if (r > 0) {
			/* The answer is ignored: its head is enough to know the
			 * mirror took the request. */
			finish(mr, METRICS_MIRROR_SENT, NULL);
			return;
		}
	}
}

static void on_up_event(struct upstream *u, uint32_t events)
{
	struct mirror *mr = u->data;
	if (mr->done || mr->up != u)
		return;
	if (!u->connected) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		int err = upstream_connect_error(u);
		if (err == EINPROGRESS || err == EALREADY)
			return;
		if (err != 0) {
			finish(mr, METRICS_MIRROR_FAILED, strerror(err));
			return;
		}
		u->connected = true;
		if (loop_timer_set(mr->set->loop, &mr->timer, mr->timeout_ms) != 0) {
			finish(mr, METRICS_MIRROR_FAILED, "out of memory (timer)");
			return;
		}
	}
	if (u->sock.ssl)
		u->can_read = u->can_write = true;
	step(mr);
}

static void on_timer(struct loop_timer *t)
{
	struct mirror *mr = t->data;
	finish(mr, METRICS_MIRROR_FAILED,
	       mr->up && mr->up->connected ? "timed out" : "connect timed out");
}

static void connect_now(struct mirror *mr)
{
	int err = 0;
	if (upstream_connect(mr->set->pool, &mr->ep, mr->https, on_up_event, mr, &mr->up, &err) !=
	    0) {
		mr->up = NULL;
		finish(mr, METRICS_MIRROR_FAILED, err ? strerror(err) : "connect failed");
		return;
	}
	if (mr->up->sock.ssl && mr->sni[0])
		SSL_set_tlsext_host_name(mr->up->sock.ssl, mr->sni);
	if (loop_timer_set(mr->set->loop, &mr->timer,
	                   mr->up->connected ? mr->timeout_ms : mr->connect_timeout_ms) != 0)
		finish(mr, METRICS_MIRROR_FAILED, "out of memory (timer)");
	else if (mr->up->connected)
		step(mr);
}

static void on_resolved(void *data, int rc, const char *address)
{
	struct mirror *mr = data;
	mr->query = NULL; /* freed by the resolver after this call */
	if (mr->done)
		return;
	if (rc != 0) {
		finish(mr, METRICS_MIRROR_FAILED, "host name did not resolve");
		return;
	}
	snprintf(mr->address, sizeof(mr->address), "%s", address);
	connect_now(mr);
}

/* Look the host up and connect; runs from the loop so that nothing of the
 * mirror happens inside the client request's own processing. */
static void on_go(struct loop_defer *d)
{
	struct mirror *mr = d->data;
	struct url url;
	if (mr->done)
		return;
	if (url_parse(mr->url, &url) != 0) { /* checked in mirror_start */
		finish(mr, METRICS_MIRROR_FAILED, "bad URL");
		return;
	}
	mr->https = url.https;
	mr->ep.address = mr->address;
	mr->ep.port = url.port;
	mr->ep.weight = 1;
	if (url_host_is_ip(url.host, url.host_len)) {
		memcpy(mr->address, url.host, url.host_len);
		connect_now(mr);
		return;
	}
	if (!mr->set->resolver) {
		finish(mr, METRICS_MIRROR_FAILED, "no resolver");
		return;
	}
	if (url.host_len < sizeof(mr->sni))
		memcpy(mr->sni, url.host, url.host_len);
	int lrc = resolver_lookup(mr->set->resolver, url.host, url.host_len, on_resolved, mr,
	                          mr->address, &mr->query);
	if (lrc == WEIR_EAGAIN) {
		if (loop_timer_set(mr->set->loop, &mr->timer, mr->connect_timeout_ms) != 0)
			finish(mr, METRICS_MIRROR_FAILED, "out of memory (timer)");
		return;
	}
	if (lrc != 0) {
		mr->query = NULL;
		finish(mr, METRICS_MIRROR_FAILED, "host name lookup could not start");
		return;
	}
	connect_now(mr);
}

/* Send head and body (out) from the loop. */
static void go(struct mirror *mr)
{
	mr->in = malloc(MIRROR_HEAD_MAX);
	if (!mr->in) {
		finish(mr, METRICS_MIRROR_FAILED, "out of memory");
		return;
	}
	http_parse_init(&mr->hp, true, mr->out && strncmp(mr->out, "HEAD ", 5) == 0);
	loop_defer(mr->set->loop, &mr->defer_start, on_go, mr);
}

void mirror_start(struct mirror_set *s, const struct route_mirror *m,
                  const struct http_request *req, const char *host, size_t host_len,
                  bool body_coming, uint32_t connect_timeout_ms, uint32_t timeout_ms,
                  struct mirror **out)
{
	*out = NULL;
	if (!s || !m->url)
		return;
	/* Over the cap, or a declared body too large to keep: not mirrored. */
	if (s->inflight >= MIRROR_INFLIGHT_MAX ||
	    (body_coming && !m->no_request_body && !req->chunked &&
	     req->content_length > (int64_t)MIRROR_BODY_MAX)) {
		metrics_mirror(METRICS_MIRROR_DROPPED);
		return;
	}
	const char *q = memchr(req->target, '?', req->target_len);
	struct url_mirror_vars v = {
	    .request_uri = req->target,
	    .request_uri_len = req->target_len,
	    .uri = req->path,
	    .uri_len = req->path_len,
	    .args = q ? q + 1 : "",
	    .args_len = q ? req->target_len - (size_t)(q + 1 - req->target) : 0,
	    .host = host ? host : "",
	    .host_len = host ? host_len : 0,
	};
	char expanded[4096];
	int n = url_expand_mirror(m->url, &v, expanded, sizeof(expanded));
	struct url url;
	if (n < 0 || url_parse(expanded, &url) != 0) {
		metrics_mirror(METRICS_MIRROR_FAILED);
		return;
	}
	struct mirror *mr = calloc(1, sizeof(*mr) + (size_t)n + 1);
	if (!mr) {
		metrics_mirror(METRICS_MIRROR_FAILED);
		return;
	}
	memcpy(mr->url, expanded, (size_t)n + 1);
	mr->set = s;
	mr->connect_timeout_ms = connect_timeout_ms;
	mr->timeout_ms =
	    timeout_ms < MIRROR_TIMEOUT_MAX_MS && timeout_ms ? timeout_ms : MIRROR_TIMEOUT_MAX_MS;
	mr->with_body = body_coming && !m->no_request_body;
	loop_timer_init(&mr->timer, on_timer, mr);
	/* The head is built now, while req is valid; with a body it says
	 * Content-Length: 0 until mirror_body_done knows the length (a chunked
	 * body goes to the mirror with a length). Room: the head, the longer
	 * length, and the declared body (MIRROR_BODY_MAX for a chunked one). */
	if (mr->with_body)
		mr->body_cap = req->chunked ? MIRROR_BODY_MAX : (size_t)req->content_length;
	mr->out = malloc(MIRROR_HEAD_MAX + MIRROR_CL_ROOM + mr->body_cap);
	if (!mr->out) {
		free(mr);
		metrics_mirror(METRICS_MIRROR_FAILED);
		return;
	}
	int h = mirror_build_head(m, mr->url, req, mr->with_body, 0, mr->out, MIRROR_HEAD_MAX);
	if (h < 0) {
		free(mr->out);
		free(mr);
		metrics_mirror(METRICS_MIRROR_FAILED);
		return;
	}
	mr->head_len = (size_t)h;
	if (!mr->with_body) {
		char *fit = realloc(mr->out, mr->head_len);
		if (fit)
			mr->out = fit;
	}
	mr->next = s->all;
	if (s->all)
		s->all->prev = mr;
	s->all = mr;
	s->inflight++;
	if (mr->with_body) {
		*out = mr;
		return;
	}
	go(mr);
}

int mirror_body(struct mirror *mr, const char *p, size_t len)
{
	if (len > mr->body_cap - mr->body_len) {
		finish(mr, METRICS_MIRROR_DROPPED, NULL);
		return -1;
	}
	memcpy(mr->out + mr->head_len + mr->body_len, p, len);
	mr->body_len += len;
	return 0;
}

void mirror_body_done(struct mirror *mr)
{
	/* Rewrite "Content-Length: 0\r\n" (the last header before Connection)
	 * with the real length: the head is moved to make room. */
	static const char cl0[] = "Content-Length: 0\r\nConnection: close\r\n\r\n";
	size_t tail = sizeof(cl0) - 1;
	char line[64];
	int ln = snprintf(line, sizeof(line), "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	                  mr->body_len);
	size_t keep = mr->head_len - tail;
	size_t grow = (size_t)ln - tail;
	if (grow) /* out has MIRROR_CL_ROOM bytes for it */
		memmove(mr->out + mr->head_len + grow, mr->out + mr->head_len, mr->body_len);
	memcpy(mr->out + keep, line, (size_t)ln);
	mr->head_len += grow;
	go(mr);
}

void mirror_abandon(struct mirror *mr)
{
	if (mr)
		finish(mr, METRICS_MIRROR_DROPPED, NULL);
}
