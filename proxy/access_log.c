/* proxy/access_log.c - access log formats (access_log.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <limits.h>
#include <errno.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "access_log.h"
#include "error.h"
#include "log_format.h"

struct segment {
	int v;
	const char *text; /* literal text, or the header name of LOG_V_HTTP ("_" for "-") */
	size_t len;
};

struct access_log_format {
	enum access_log_escape esc;
	size_t n;
	struct segment *seg;
	char *copy; /* the format text the segments point into */
};

bool access_log_variable_known(const char *name, size_t len)
{
	return len > 0 && log_format_var(name, len) >= 0;
}

void access_log_format_free(struct access_log_format *f)
{
	if (!f)
		return;
	free(f->seg);
	free(f->copy);
	free(f);
}

static int add_seg(struct access_log_format *f, size_t *cap, int v, const char *t, size_t n)
{
	if (v == LOG_V_LITERAL && n == 0)
		return 0;
	if (f->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct segment *g = realloc(f->seg, nc * sizeof(*g));
		if (!g)
			return WEIR_ENOMEM;
		f->seg = g;
		*cap = nc;
	}
	f->seg[f->n++] = (struct segment){v, t, n};
	return 0;
}

int access_log_format_new(const char *fmt, enum access_log_escape esc,
                          struct access_log_format **out, char *err, size_t errlen)
{
	struct access_log_format *f = calloc(1, sizeof(*f));
	if (!f)
		return WEIR_ENOMEM;
	f->esc = esc;
	f->copy = strdup(fmt ? fmt : ACCESS_LOG_DEFAULT_FORMAT);
	if (!f->copy) {
		free(f);
		return WEIR_ENOMEM;
	}
	size_t cap = 0;
	const char *p = f->copy, *lit = p;
	int rc = 0;
	while (*p && rc == 0) {
		if (*p != '$') {
			p++;
			continue;
		}
		const char *name = p + 1, *end;
		bool braced = *name == '{';
		if (braced)
			name++;
		end = name;
		while (log_format_var_char(*end))
			end++;
		if (braced && *end != '}') {
			snprintf(err, errlen, "\"${\" without a closing \"}\"");
			rc = WEIR_EINVAL;
			break;
		}
		int v;
		if (end == name) { /* a lone "$": literal */
			p++;
			continue;
		}
		if ((v = log_format_var(name, (size_t)(end - name))) < 0) {
			snprintf(err, errlen, "unknown variable $%.*s", (int)(end - name), name);
			rc = WEIR_EINVAL;
			break;
		}
		rc = add_seg(f, &cap, LOG_V_LITERAL, lit, (size_t)(p - lit));
		if (rc == 0)
			rc = v == LOG_V_HTTP
			         ? add_seg(f, &cap, v, name + 5, (size_t)(end - name) - 5)
			         : add_seg(f, &cap, v, NULL, 0);
		p = end + (braced ? 1 : 0);
		lit = p;
	}
	if (rc == 0)
		rc = add_seg(f, &cap, LOG_V_LITERAL, lit, (size_t)(p - lit));
	if (rc) {
		access_log_format_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

/* ---- rendering ---- */

struct out {
	char *buf;
	size_t len, cap;
	bool oom;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->oom)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t nc = o->cap ? o->cap : 4096;
		while (nc < o->len + n + 1)
			nc *= 2;
		char *g = realloc(o->buf, nc);
		if (!g) {
			o->oom = true;
			return;
		}
		o->buf = g;
		o->cap = nc;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

/* A value as nginx escapes variables: default escapes '"', '\' and bytes
 * outside 0x20..0x7e as \xHH; json as a JSON string body; none leaves
 * everything but control bytes (a value never breaks the line). */
static void put_value(struct out *o, enum access_log_escape esc, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[8];
		size_t en = 0;
		if (esc == ACCESS_LOG_ESCAPE_JSON) {
			if (c == '"' || c == '\\') {
				e[0] = '\\';
				e[1] = (char)c;
				en = 2;
			} else if (c < 0x20) {
				en = (size_t)snprintf(e, sizeof(e), "\\u%04x", c);
			}
		} else if (esc == ACCESS_LOG_ESCAPE_DEFAULT) {
			if (c == '"' || c == '\\' || c < 0x20 || c > 0x7e) {
				e[0] = '\\';
				e[1] = 'x';
				e[2] = hex[c >> 4];
				e[3] = hex[c & 15];
				en = 4;
			}
		} else if (c < 0x20 || c == 0x7f) {
			e[0] = '\\';
			e[1] = 'x';
			e[2] = hex[c >> 4];
			e[3] = hex[c & 15];
			en = 4;
		}
		if (en) {
			put(o, s + i - run, run);
			put(o, e, en);
			run = 0;
		} else {
			run++;
		}
	}
	put(o, s + n - run, run);
}

/* $server_protocol: 8 characters */
static const char *server_protocol(const struct access_entry *e, const struct http_request *r)
{
	if (e->client && e->client->http2)
		return "HTTP/2.0";
	return r->version_minor ? "HTTP/1.1" : "HTTP/1.0";
}

static void put_str(struct out *o, enum access_log_escape esc, const char *s)
{
	if (!s || !*s)
		put(o, "-", 1);
	else
		put_value(o, esc, s, strlen(s));
}

static void put_u64(struct out *o, uint64_t v)
{
	char b[24];
	int n = snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
	put(o, b, (size_t)n);
}

static void put_seconds(struct out *o, double s)
{
	char b[32];
	if (s < 0) {
		put(o, "-", 1);
		return;
	}
	int n = snprintf(b, sizeof(b), "%.3f", s);
	put(o, b, (size_t)n);
}

static const struct http_header *header(const struct http_request *req, const char *name,
                                        size_t len)
{
	if (!req)
		return NULL;
	size_t nh = req->nheaders < HTTP_MAX_HEADERS ? req->nheaders : HTTP_MAX_HEADERS;
	for (size_t i = 0; i < nh; i++) {
		const struct http_header *h = &req->headers[i];
		if (h->name_len != len)
			continue;
		size_t j = 0;
		for (; j < len; j++) {
			char a = h->name[j], b = name[j];
			if (a == '-')
				a = '_';
			if ((a | 0x20) != (b | 0x20))
				break;
		}
		if (j == len)
			return h;
	}
	return NULL;
}

/* "ns/svc:port" -> "ns-svc-port" (ingress-nginx's upstream names). */
static void put_upstream_name(struct out *o, enum access_log_escape esc, const char *b)
{
	if (!b || !*b) {
		put(o, "-", 1);
		return;
	}
	char tmp[512];
	size_t n = strlen(b);
	if (n >= sizeof(tmp))
		n = sizeof(tmp) - 1;
	for (size_t i = 0; i < n; i++)
		tmp[i] = b[i] == '/' || b[i] == ':' ? '-' : b[i];
	put_value(o, esc, tmp, n);
}

/* Part i (0: namespace, 1: name) of "namespace/name", or of the service of
 * "namespace/service:port" (2: service, 3: port). */
static void put_part(struct out *o, enum access_log_escape esc, const char *s, int part)
{
	if (!s || !*s) {
		put(o, "-", 1);
		return;
	}
	const char *slash = strchr(s, '/');
	const char *colon = slash ? strrchr(slash, ':') : NULL;
	const char *b = s, *e = s + strlen(s);
	if (part == 0 || part == 2) {
		if (!slash) {
			put(o, "-", 1);
			return;
		}
		e = slash;
		if (part == 2) {
			b = slash + 1;
			e = colon ? colon : s + strlen(s);
		}
	} else if (part == 1) {
		b = slash ? slash + 1 : s;
	} else {
		if (!colon) {
			put(o, "-", 1);
			return;
		}
		b = colon + 1;
	}
	if (e <= b)
		put(o, "-", 1);
	else
		put_value(o, esc, b, (size_t)(e - b));
}

/* nginx's $remote_user: the user name of an Authorization: Basic header
 * (whether or not it was checked), "-" without one. */
static void put_basic_user(struct out *o, enum access_log_escape esc, const struct http_request *r)
{
	const struct http_header *h = r ? header(r, "authorization", 13) : NULL;
	if (!h || h->value_len < 7 || strncasecmp(h->value, "basic ", 6) != 0) {
		put(o, "-", 1);
		return;
	}
	const char *v = h->value + 6;
	size_t n = h->value_len - 6;
	while (n && *v == ' ') {
		v++;
		n--;
	}
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	unsigned char dec[384];
	char in[512];
	if (n == 0 || n % 4 != 0 || n >= sizeof(in)) {
		put(o, "-", 1);
		return;
	}
	memcpy(in, v, n);
	int dn = EVP_DecodeBlock(dec, (const unsigned char *)in, (int)n);
	if (dn < 0) {
		put(o, "-", 1);
		return;
	}
	const unsigned char *colon = memchr(dec, ':', (size_t)dn);
	if (!colon || colon == dec) {
		put(o, "-", 1);
		return;
	}
	put_value(o, esc, (const char *)dec, (size_t)(colon - dec));
}

static void put_time(struct out *o, int64_t ms, int v)
{
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	char b[64];
	int n;
	if (v == LOG_V_MSEC) {
		n = snprintf(b, sizeof(b), "%lld.%03lld", (long long)(ms / 1000),
		             (long long)(ms % 1000));
	} else {
		time_t t = (time_t)(ms / 1000);
		struct tm tm;
		gmtime_r(&t, &tm);
		if (v == LOG_V_TIME_LOCAL)
			n = snprintf(b, sizeof(b), "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday,
			             mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
			             tm.tm_sec);
		else
			n = snprintf(b, sizeof(b), "%04d-%02d-%02dT%02d:%02d:%02d+00:00",
			             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			             tm.tm_min, tm.tm_sec);
	}
	put(o, b, (size_t)n);
}

static void put_var(struct out *o, enum access_log_escape esc, const struct segment *sg,
                    const struct access_entry *e)
{
	const struct http_request *r = e->req;
	const char *q;
	switch (sg->v) {
	case LOG_V_LITERAL:
		put(o, sg->text, sg->len);
		break;
	case LOG_V_REMOTE_ADDR:
		put_str(o, esc, e->client ? e->client->ip : NULL);
		break;
	case LOG_V_REMOTE_PORT:
		if (e->client && e->client->port)
			put_u64(o, e->client->port);
		else
			put(o, "-", 1);
		break;
	case LOG_V_REMOTE_USER:
		if (e->remote_user)
			put_str(o, esc, e->remote_user);
		else
			put_basic_user(o, esc, r);
		break;
	case LOG_V_PROXY_PROTOCOL_ADDR:
		put_str(o, esc, e->client && e->client->has_proxy_addr ? e->client->hop_ip : NULL);
		break;
	case LOG_V_TIME_LOCAL:
	case LOG_V_TIME_ISO8601:
	case LOG_V_MSEC:
		put_time(o, e->now_ms, sg->v);
		break;
	case LOG_V_REQUEST:
		if (!r) {
			put(o, "-", 1);
			break;
		}
		put_value(o, esc, r->method, r->method_len);
		put(o, " ", 1);
		put_value(o, esc, r->target, r->target_len);
		put(o, " ", 1);
		put(o, server_protocol(e, r), 8);
		break;
	case LOG_V_REQUEST_METHOD:
		if (r)
			put_value(o, esc, r->method, r->method_len);
		else
			put(o, "-", 1);
		break;
	case LOG_V_REQUEST_URI:
		if (r)
			put_value(o, esc, r->target, r->target_len);
		else
			put(o, "-", 1);
		break;
	case LOG_V_URI:
		if (r)
			put_value(o, esc, r->path, r->path_len);
		else
			put(o, "-", 1);
		break;
	case LOG_V_ARGS:
		q = r ? memchr(r->target, '?', r->target_len) : NULL;
		if (q && (size_t)(r->target + r->target_len - q) > 1)
			put_value(o, esc, q + 1, (size_t)(r->target + r->target_len - q - 1));
		else
			put(o, "-", 1);
		break;
	case LOG_V_SERVER_PROTOCOL:
		if (r)
			put(o, server_protocol(e, r), 8);
		else
			put(o, "-", 1);
		break;
	case LOG_V_SCHEME:
		put_str(o, esc, e->client && e->client->tls ? "https" : "http");
		break;
	case LOG_V_HOST:
		if (r && r->host && r->host_len) {
			/* nginx's $host: without the port, lowercase */
			char h[256];
			size_t n = 0;
			for (; n < r->host_len && n < sizeof(h) && r->host[n] != ':'; n++)
				h[n] = (char)(r->host[n] >= 'A' && r->host[n] <= 'Z'
				                  ? r->host[n] | 0x20
				                  : r->host[n]);
			put_value(o, esc, h, n);
		} else {
			put(o, "-", 1);
		}
		break;
	case LOG_V_SERVER_PORT:
		if (e->client && e->client->local_port)
			put_u64(o, e->client->local_port);
		else
			put(o, "-", 1);
		break;
	case LOG_V_STATUS:
		put_u64(o, (uint64_t)(e->status > 0 ? e->status : 0));
		break;
	case LOG_V_BODY_BYTES_SENT:
		put_u64(o, e->body_bytes_sent);
		break;
	case LOG_V_BYTES_SENT:
		put_u64(o, e->bytes_sent);
		break;
	case LOG_V_REQUEST_LENGTH:
		put_u64(o, e->request_length);
		break;
	case LOG_V_REQUEST_TIME:
		put_seconds(o, e->request_time);
		break;
	case LOG_V_UPSTREAM_NAME:
		put_upstream_name(o, esc, e->backend);
		break;
	case LOG_V_ALT_UPSTREAM_NAME:
		put_upstream_name(o, esc, e->alt_backend);
		break;
	case LOG_V_UPSTREAM_ADDR:
		put_str(o, esc, e->upstream_addr);
		break;
	case LOG_V_UPSTREAM_STATUS:
		if (e->upstream_status > 0)
			put_u64(o, (uint64_t)e->upstream_status);
		else
			put(o, "-", 1);
		break;
	case LOG_V_UPSTREAM_RESPONSE_TIME:
		put_seconds(o, e->upstream_addr ? e->upstream_response_time : -1);
		break;
	case LOG_V_UPSTREAM_RESPONSE_LENGTH:
		if (e->upstream_response_length >= 0)
			put_u64(o, (uint64_t)e->upstream_response_length);
		else
			put(o, "-", 1);
		break;
	case LOG_V_REQ_ID:
		put_str(o, esc, e->req_id);
		break;
	case LOG_V_NAMESPACE:
		put_part(o, esc, e->source, 0);
		break;
	case LOG_V_INGRESS_NAME:
		put_part(o, esc, e->source, 1);
		break;
	case LOG_V_SERVICE_NAME:
		put_part(o, esc, e->backend, 2);
		break;
	case LOG_V_SERVICE_PORT:
		put_part(o, esc, e->backend, 3);
		break;
	case LOG_V_HTTP: {
		const struct http_header *h = header(r, sg->text, sg->len);
		if (h && h->value_len)
			put_value(o, esc, h->value, h->value_len);
		else
			put(o, "-", 1);
		break;
	}
	}
}

int access_log_render(const struct access_log_format *f, const struct access_entry *e, char **buf,
                      size_t *len, size_t *cap)
{
	struct out o = {*buf, *len, *cap, false};
	for (size_t i = 0; i < f->n; i++)
		put_var(&o, f->esc, &f->seg[i], e);
	put(&o, "\n", 1);
	*buf = o.buf;
	*cap = o.cap;
	if (o.oom)
		return WEIR_ENOMEM; /* *len unchanged: the partial line is dropped */
	*len = o.len;
	return 0;
}

/* ---- the worker's writer ---- */

#define WRITER_FLUSH_BYTES 16384
#define WRITER_DELAY_MS 50

static void on_writer_timer(struct loop_timer *t)
{
	access_log_writer_flush(t->data);
}

void access_log_writer_init(struct access_log_writer *w, struct loop *loop, int fd)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->loop = loop;
	loop_timer_init(&w->timer, on_writer_timer, w);
}

void access_log_writer_flush(struct access_log_writer *w)
{
	size_t off = 0;
	while (off < w->len) {
		size_t n = w->len - off;
		if (n > PIPE_BUF) {
			/* whole lines only: up to the last newline within PIPE_BUF */
			const char *nl = NULL;
			for (size_t i = PIPE_BUF; i > 0 && !nl; i--)
				if (w->buf[off + i - 1] == '\n')
					nl = w->buf + off + i - 1;
			n = nl ? (size_t)(nl - (w->buf + off)) + 1
			       : n; /* a longer line: as it is */
		}
		ssize_t k = write(w->fd, w->buf + off, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			for (size_t i = off; i < w->len; i++)
				w->dropped += w->buf[i] == '\n';
			break;
		}
		off += (size_t)k;
	}
	w->len = 0;
	if (w->loop && loop_timer_armed(&w->timer))
		loop_timer_cancel(w->loop, &w->timer);
}

void access_log_write(struct access_log_writer *w, const struct access_log_format *f,
                      const struct access_entry *e)
{
	if (access_log_render(f, e, &w->buf, &w->len, &w->cap) != 0) {
		w->dropped++;
		return;
	}
	if (w->len >= WRITER_FLUSH_BYTES || !w->loop)
		access_log_writer_flush(w);
	else if (!loop_timer_armed(&w->timer))
		loop_timer_set(w->loop, &w->timer, WRITER_DELAY_MS);
}

void access_log_writer_cleanup(struct access_log_writer *w)
{
	access_log_writer_flush(w);
	free(w->buf);
	w->buf = NULL;
	w->cap = 0;
}
