/* proxy/error_page.c - the error backend request of custom-http-errors. */
#include "error_page.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "error.h"

/* Headers never copied from the client: the ones set below, Host (written
 * first), hop-by-hop and body framing (no body goes to the error backend). */
static const char *const skipped[] = {
    "Host",           "Connection",     "Keep-Alive",       "Proxy-Connection", "TE",
    "Trailer",        "Transfer-Encoding", "Upgrade",       "Content-Length",   "Expect",
    "X-Code",         "X-Format",       "X-Original-URI",   "X-Namespace",      "X-Ingress-Name",
    "X-Service-Name", "X-Service-Port", "X-Request-ID",     "X-Forwarded-For",
};

/* Whether a Connection header of req names h (a hop-by-hop header too). */
static bool connection_names(const struct http_request *req, const struct http_header *h)
{
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *c = &req->headers[i];
		if (!http_name_is(c, "Connection"))
			continue;
		const char *p = c->value, *end = c->value + c->value_len;
		while (p < end) {
			while (p < end && (*p == ',' || *p == ' ' || *p == '\t'))
				p++;
			const char *tok = p;
			while (p < end && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			if ((size_t)(p - tok) == h->name_len && strncasecmp(tok, h->name, h->name_len) == 0)
				return true;
		}
	}
	return false;
}

static bool skip(const struct http_request *req, const struct http_header *h)
{
	for (size_t i = 0; i < sizeof(skipped) / sizeof(skipped[0]); i++)
		if (http_name_is(h, skipped[i]))
			return true;
	return connection_names(req, h);
}

struct out {
	char *buf;
	size_t cap, len;
	bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->full || n > o->cap - o->len) {
		o->full = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* "Name: value\r\n" unless the value is empty. */
static void header(struct out *o, const char *name, const char *v, size_t n)
{
	if (!v || n == 0)
		return;
	puts_(o, name);
	put(o, ": ", 2);
	put(o, v, n);
	put(o, "\r\n", 2);
}

static const struct http_header *find(const struct http_request *req, const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (http_name_is(&req->headers[i], name))
			return &req->headers[i];
	return NULL;
}

int error_page_build_head(const struct error_page_req *r, char *buf, size_t cap)
{
	struct out o = {.buf = buf, .cap = cap};
	const struct http_request *req = r->req;
	put(&o, req->method, req->method_len);
	puts_(&o, " / HTTP/1.1\r\n");
	if (req->host && req->host_len)
		header(&o, "Host", req->host, req->host_len);
	else
		header(&o, "Host", r->fallback_host, strlen(r->fallback_host));
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (skip(req, h))
			continue;
		put(&o, h->name, h->name_len);
		put(&o, ": ", 2);
		put(&o, h->value, h->value_len);
		put(&o, "\r\n", 2);
	}
	char code[8];
	snprintf(code, sizeof(code), "%d", r->code);
	header(&o, "X-Code", code, strlen(code));
	const struct http_header *accept = find(req, "Accept");
	if (accept)
		header(&o, "X-Format", accept->value, accept->value_len);
	header(&o, "X-Original-URI", req->target, req->target_len);
	/* source: "namespace/name" */
	const char *slash = r->source ? strchr(r->source, '/') : NULL;
	if (slash) {
		header(&o, "X-Namespace", r->source, (size_t)(slash - r->source));
		header(&o, "X-Ingress-Name", slash + 1, strlen(slash + 1));
	}
	/* backend: "namespace/service:port" with an optional " (cluster IP)" */
	const char *bslash = r->backend_name ? strchr(r->backend_name, '/') : NULL;
	if (bslash) {
		const char *svc = bslash + 1;
		const char *colon = strchr(svc, ':');
		if (colon) {
			const char *end = strchr(colon + 1, ' ');
			size_t plen = end ? (size_t)(end - colon - 1) : strlen(colon + 1);
			header(&o, "X-Service-Name", svc, (size_t)(colon - svc));
			header(&o, "X-Service-Port", colon + 1, plen);
		}
	}
	const struct http_header *rid = r->client->forwarded_trusted ? find(req, "X-Request-ID") : NULL;
	if (rid && rid->value_len)
		header(&o, "X-Request-ID", rid->value, rid->value_len);
	else
		header(&o, "X-Request-ID", r->client->request_id, strlen(r->client->request_id));
	header(&o, "X-Forwarded-For", r->client->ip, strlen(r->client->ip));
	if (req->chunked || req->content_length > 0)
		puts_(&o, "Content-Length: 0\r\n");
	put(&o, "\r\n", 2);
	return o.full ? WEIR_ETOOBIG : (int)o.len;
}
