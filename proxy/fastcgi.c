/* proxy/fastcgi.c - FastCGI 1.0 records out and back (fastcgi.h). */
#include "fastcgi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "headers.h"

#define FCGI_VERSION 1
#define FCGI_BEGIN_REQUEST 1
#define FCGI_END_REQUEST 3
#define FCGI_PARAMS 4
#define FCGI_STDIN 5
#define FCGI_STDOUT 6
#define FCGI_STDERR 7
#define FCGI_RESPONDER 1
#define FCGI_REQUEST_COMPLETE 0
#define REQUEST_ID 1
#define RECORD_MAX 65528u /* content per record: a multiple of 8 under 65535 */
#define VALUE_CAP 16384u  /* one expanded value */
#define REASON_MAX 64

/* ------------------------------------------------------------ records */

static void record_header(uint8_t h[8], uint8_t type, size_t clen, size_t plen)
{
	h[0] = FCGI_VERSION;
	h[1] = type;
	h[2] = 0;
	h[3] = REQUEST_ID;
	h[4] = (uint8_t)(clen >> 8);
	h[5] = (uint8_t)(clen & 0xff);
	h[6] = (uint8_t)plen;
	h[7] = 0;
}

/* p[0..len) as records of type (none when len is 0 and not end), then the
 * empty record that ends the stream when end. */
static int put_stream(struct buf *out, uint8_t type, const char *p, size_t len, bool end)
{
	static const char zeros[8];
	size_t start = out->start, end_at = out->end;
	uint8_t h[8];
	while (len > 0) {
		size_t n = len < RECORD_MAX ? len : RECORD_MAX;
		size_t pad = (8 - n % 8) % 8;
		record_header(h, type, n, pad);
		if (buf_append(out, h, 8) || buf_append(out, p, n) ||
		    (pad && buf_append(out, zeros, pad)))
			goto full;
		p += n;
		len -= n;
	}
	if (end) {
		record_header(h, type, 0, 0);
		if (buf_append(out, h, 8))
			goto full;
	}
	return 0;
full:
	out->start = start; /* nothing appended counts */
	out->end = end_at;
	return WEIR_ETOOBIG;
}

int fastcgi_stdin(struct buf *out, const char *p, size_t len)
{
	return put_stream(out, FCGI_STDIN, p, len, len == 0);
}

size_t fastcgi_stdin_overhead(size_t len)
{
	return (len / RECORD_MAX + 1) * 16;
}

/* ------------------------------------------------------------ params */

static void put_len(struct buf *b, size_t n, bool *over)
{
	uint8_t l[4];
	int rc;
	if (n < 128) {
		l[0] = (uint8_t)n;
		rc = buf_append(b, l, 1);
	} else {
		l[0] = (uint8_t)(0x80 | ((n >> 24) & 0x7f));
		l[1] = (uint8_t)(n >> 16);
		l[2] = (uint8_t)(n >> 8);
		l[3] = (uint8_t)n;
		rc = buf_append(b, l, 4);
	}
	if (rc)
		*over = true;
}

static void put_pair(struct buf *b, const char *name, size_t nlen, const char *value, size_t vlen,
                     bool *over)
{
	put_len(b, nlen, over);
	put_len(b, vlen, over);
	if (buf_append(b, name, nlen) || buf_append(b, value, vlen))
		*over = true;
}

static bool hex(char c, int *v)
{
	if (c >= '0' && c <= '9')
		*v = c - '0';
	else if (c >= 'a' && c <= 'f')
		*v = c - 'a' + 10;
	else if (c >= 'A' && c <= 'F')
		*v = c - 'A' + 10;
	else
		return false;
	return true;
}

/* A segment of out ends at n (after the last '/'): "." goes, ".." takes
 * the segment before it along (never above the root). Returns the new n. */
static size_t end_segment(char *out, size_t n)
{
	size_t s = n;
	while (s > 0 && out[s - 1] != '/')
		s--;
	if (n - s == 1 && out[s] == '.')
		return s;
	if (n - s == 2 && out[s] == '.' && out[s + 1] == '.') {
		n = s;
		if (n > 1)
			n--; /* the '/' before "..", then the segment before it */
		while (n > 0 && out[n - 1] != '/')
			n--;
		return n ? n : 1;
	}
	return n;
}

/* nginx's $uri for a request path p (after its leading '/'):
 * percent-decoded (%00 and bad escapes stay as written), "//" merged, "."
 * and ".." segments resolved. out has room for len + 2 bytes; returns the
 * length. */
static size_t normalize_path(const char *p, size_t len, char *out)
{
	size_t n = 0;
	out[n++] = '/';
	for (size_t i = 0; i < len;) {
		char c = p[i];
		int hi, lo;
		if (c == '%' && i + 2 < len && hex(p[i + 1], &hi) && hex(p[i + 2], &lo) &&
		    (hi || lo)) {
			c = (char)(hi * 16 + lo);
			i += 3;
		} else {
			i++;
		}
		if (c != '/') {
			out[n++] = c;
			continue;
		}
		n = end_segment(out, n);
		if (out[n - 1] != '/')
			out[n++] = '/';
	}
	return end_segment(out, n);
}

/* The request's path as sent upstream ($uri), and with the index when it
 * ends in '/' ($fastcgi_script_name); each NUL-terminated. */
struct paths {
	char *uri;
	size_t uri_len;
	char *script;
	size_t script_len;
};

static int make_paths(const struct fastcgi_vars *v, struct paths *ps)
{
	const struct http_request *r = v->req;
	const char *index = v->cfg ? v->cfg->index : NULL;
	size_t ilen = index ? strlen(index) : 0;
	ps->uri = malloc(r->path_len + 3);
	ps->script = malloc(r->path_len + ilen + 3);
	if (!ps->uri || !ps->script)
		return WEIR_ENOMEM;
	const char *p = r->path;
	size_t len = r->path_len;
	if (len && p[0] == '/') {
		p++;
		len--;
	}
	ps->uri_len = normalize_path(p, len, ps->uri);
	ps->uri[ps->uri_len] = '\0';
	memcpy(ps->script, ps->uri, ps->uri_len);
	ps->script_len = ps->uri_len;
	if (ilen && ps->uri[ps->uri_len - 1] == '/') {
		memcpy(ps->script + ps->script_len, index, ilen);
		ps->script_len += ilen;
	}
	ps->script[ps->script_len] = '\0';
	return 0;
}

static const struct http_header *find(const struct http_request *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders && i < HTTP_MAX_HEADERS; i++)
		if (http_name_is(&r->headers[i], name))
			return &r->headers[i];
	return NULL;
}

/* The value of a FastCGI variable into b (bounded by its cap). */
static void fcgi_var(const struct fastcgi_vars *v, const struct paths *ps,
                     enum route_fastcgi_var var, struct buf *b, bool *over)
{
	char tmp[64];
	const char *s = NULL;
	size_t n = 0;
	const struct http_request *r = v->req;
	const char *q = memchr(r->target, '?', r->target_len);
	const struct http_header *h;
	switch (var) {
	case ROUTE_FCGI_VAR_URI:
		s = ps->uri;
		n = ps->uri_len;
		break;
	case ROUTE_FCGI_VAR_SCRIPT_NAME:
		s = ps->script;
		n = ps->script_len;
		break;
	case ROUTE_FCGI_VAR_PATH_INFO:
	case ROUTE_FCGI_VAR_NONE:
		break;
	case ROUTE_FCGI_VAR_ARGS:
		if (q) {
			s = q + 1;
			n = r->target_len - (size_t)(q + 1 - r->target);
		}
		break;
	case ROUTE_FCGI_VAR_IS_ARGS:
		s = q ? "?" : "";
		n = strlen(s);
		break;
	case ROUTE_FCGI_VAR_METHOD:
		s = v->orig->method;
		n = v->orig->method_len;
		break;
	case ROUTE_FCGI_VAR_CONTENT_TYPE:
		if ((h = find(r, "content-type")) != NULL) {
			s = h->value;
			n = h->value_len;
		}
		break;
	case ROUTE_FCGI_VAR_CONTENT_LENGTH:
		if (r->content_length >= 0) {
			n = (size_t)snprintf(tmp, sizeof(tmp), "%lld",
			                     (long long)r->content_length);
			s = tmp;
		}
		break;
	case ROUTE_FCGI_VAR_SERVER_NAME: {
		/* as $host: the Host without port, lower case */
		char hb[300];
		int k = headers_expand_var("host", 4, v->orig, v->client, hb, sizeof(hb));
		if (k > 0 && buf_append(b, hb, (size_t)k))
			*over = true;
		return;
	}
	case ROUTE_FCGI_VAR_SERVER_PORT:
		n = (size_t)snprintf(tmp, sizeof(tmp), "%u", (unsigned)v->client->local_port);
		s = tmp;
		break;
	case ROUTE_FCGI_VAR_SERVER_ADDR:
		s = v->server_addr ? v->server_addr : "";
		n = strlen(s);
		break;
	case ROUTE_FCGI_VAR_SERVER_PROTOCOL:
		n = (size_t)snprintf(tmp, sizeof(tmp), "HTTP/1.%d", v->orig->version_minor);
		s = tmp;
		break;
	case ROUTE_FCGI_VAR_REMOTE_PORT:
		if (v->client->port) {
			n = (size_t)snprintf(tmp, sizeof(tmp), "%u", (unsigned)v->client->port);
			s = tmp;
		}
		break;
	case ROUTE_FCGI_VAR_HTTPS:
		s = v->client->tls ? "on" : "";
		n = strlen(s);
		break;
	case ROUTE_FCGI_VAR_DOCUMENT_ROOT:
		s = ROUTE_FASTCGI_DOCUMENT_ROOT;
		n = strlen(s);
		break;
	}
	if (n && buf_append(b, s, n))
		*over = true;
}

/* A value template (route_validate_fastcgi_value) expanded into b, which is
 * emptied first; the result is NUL-free and not terminated. */
static void expand(const struct fastcgi_vars *v, const struct paths *ps, const char *t,
                   struct buf *b, bool *over)
{
	b->start = b->end = 0;
	while (*t) {
		const char *d = strchr(t, '$');
		if (!d) {
			if (buf_append(b, t, strlen(t)))
				*over = true;
			return;
		}
		if (d > t && buf_append(b, t, (size_t)(d - t)))
			*over = true;
		const char *name;
		size_t len, k = route_template_var(d, &name, &len);
		if (k == 0) {
			if (buf_append(b, "$", 1))
				*over = true;
			t = d + 1;
			continue;
		}
		enum route_fastcgi_var fv = route_fastcgi_var_lookup(name, len);
		if (fv != ROUTE_FCGI_VAR_NONE) {
			fcgi_var(v, ps, fv, b, over);
		} else {
			char val[VALUE_CAP];
			int m = headers_expand_var(name, len, v->orig, v->client, val, sizeof(val));
			if (m < 0 || buf_append(b, val, (size_t)m))
				*over = true;
		}
		t = d + k;
	}
}

static bool configured(const struct fastcgi_vars *v, const char *name, size_t len)
{
	if (!v->cfg)
		return false;
	for (size_t i = 0; i < v->cfg->nparams; i++) {
		const char *p = v->cfg->params[i].name;
		if (strlen(p) == len && memcmp(p, name, len) == 0)
			return true;
	}
	return false;
}

/* nginx's fastcgi_params file, in its order; SERVER_SOFTWARE names weir.
 * HTTPS is sent only when not empty (its "if_not_empty"). */
static const struct {
	const char *name;
	const char *value;
} defaults[] = {
    {"QUERY_STRING", "$query_string"},
    {"REQUEST_METHOD", "$request_method"},
    {"CONTENT_TYPE", "$content_type"},
    {"CONTENT_LENGTH", "$content_length"},
    {"SCRIPT_NAME", "$fastcgi_script_name"},
    {"REQUEST_URI", "$request_uri"},
    {"DOCUMENT_URI", "$document_uri"},
    {"DOCUMENT_ROOT", "$document_root"},
    {"SERVER_PROTOCOL", "$server_protocol"},
    {"REQUEST_SCHEME", "$scheme"},
    {"HTTPS", "$https"},
    {"GATEWAY_INTERFACE", "CGI/1.1"},
    {"SERVER_SOFTWARE", "weir"},
    {"REMOTE_ADDR", "$remote_addr"},
    {"REMOTE_PORT", "$remote_port"},
    {"SERVER_ADDR", "$server_addr"},
    {"SERVER_PORT", "$server_port"},
    {"SERVER_NAME", "$server_name"},
    {"REDIRECT_STATUS", "200"},
};

/* Request headers that never become HTTP_* params: hop-by-hop and body
 * framing ones, and Proxy (httpoxy: HTTP_PROXY reads as a proxy setting). */
static bool skipped_header(const struct http_header *h)
{
	static const char *const names[] = {"connection",        "keep-alive", "te",
	                                    "transfer-encoding", "upgrade",    "proxy",
	                                    "proxy-connection"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (http_name_is(h, names[i]))
			return true;
	/* only names nginx would take: letters, digits, '-' (an underscore
	 * would read like a '-' and let one header pass for another) */
	for (size_t i = 0; i < h->name_len; i++) {
		char c = h->name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return true;
	}
	return false;
}

/* HTTP_<NAME> for header h into name (cap 5 + name_len + 1). */
static size_t param_name(const struct http_header *h, char *name)
{
	memcpy(name, "HTTP_", 5);
	for (size_t i = 0; i < h->name_len; i++) {
		char c = h->name[i];
		if (c == '-')
			c = '_';
		else if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		name[5 + i] = c;
	}
	return 5 + h->name_len;
}

/* Every request header as HTTP_*, same-named ones joined with ", " ("; "
 * for Cookie), unless a configured param has that name. */
static void put_headers(const struct fastcgi_vars *v, struct buf *pb, struct buf *val, bool *over)
{
	const struct http_request *r = v->req;
	size_t n = r->nheaders < HTTP_MAX_HEADERS ? r->nheaders : HTTP_MAX_HEADERS;
	char name[5 + 256];
	for (size_t i = 0; i < n; i++) {
		const struct http_header *h = &r->headers[i];
		if (skipped_header(h) || h->name_len > 256)
			continue;
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = h->name_len == r->headers[j].name_len &&
			       strncasecmp(h->name, r->headers[j].name, h->name_len) == 0;
		if (seen)
			continue;
		size_t nlen = param_name(h, name);
		if (configured(v, name, nlen))
			continue;
		bool cookie = http_name_is(h, "cookie");
		val->start = val->end = 0;
		for (size_t j = i; j < n; j++) {
			const struct http_header *o = &r->headers[j];
			if (o->name_len != h->name_len ||
			    strncasecmp(o->name, h->name, h->name_len))
				continue;
			if (j > i && buf_append(val, cookie ? "; " : ", ", 2))
				*over = true;
			if (buf_append(val, o->value, o->value_len))
				*over = true;
		}
		put_pair(pb, name, nlen, val->data ? val->data : "", buf_len(val), over);
	}
}

int fastcgi_request_head(const struct fastcgi_vars *v, bool body_follows, struct buf *out)
{
	struct paths ps = {0};
	struct buf pb, val;
	buf_init(&pb, FASTCGI_PARAMS_CAP);
	buf_init(&val, VALUE_CAP);
	bool over = false;
	int rc = make_paths(v, &ps);
	if (rc)
		goto done;
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		size_t nlen = strlen(defaults[i].name);
		if (configured(v, defaults[i].name, nlen))
			continue;
		expand(v, &ps, defaults[i].value, &val, &over);
		if (buf_len(&val) == 0 && strcmp(defaults[i].name, "HTTPS") == 0)
			continue;
		put_pair(&pb, defaults[i].name, nlen, val.data ? val.data : "", buf_len(&val),
		         &over);
	}
	put_headers(v, &pb, &val, &over);
	for (size_t i = 0; v->cfg && i < v->cfg->nparams; i++) {
		const struct route_header *p = &v->cfg->params[i];
		expand(v, &ps, p->value ? p->value : "", &val, &over);
		put_pair(&pb, p->name, strlen(p->name), val.data ? val.data : "", buf_len(&val),
		         &over);
	}
	if (over) {
		rc = WEIR_ETOOBIG;
		goto done;
	}
	/* BEGIN_REQUEST: role responder, flags 0 (the application closes) */
	uint8_t begin[16];
	record_header(begin, FCGI_BEGIN_REQUEST, 8, 0);
	memset(begin + 8, 0, 8);
	begin[9] = FCGI_RESPONDER;
	size_t start = out->start, end = out->end;
	if (buf_append(out, begin, sizeof(begin)) ||
	    put_stream(out, FCGI_PARAMS, pb.data, buf_len(&pb), true) ||
	    (!body_follows && fastcgi_stdin(out, NULL, 0))) {
		out->start = start;
		out->end = end;
		rc = WEIR_ETOOBIG;
	}
done:
	free(ps.uri);
	free(ps.script);
	buf_free(&pb);
	buf_free(&val);
	return rc;
}

/* ------------------------------------------------------------ response */

static void stderr_bytes(struct fastcgi_decoder *d, const char *p, size_t len, bool flush);

void fastcgi_decoder_init(struct fastcgi_decoder *d, size_t head_max, fastcgi_stderr_cb on_stderr,
                          void *data)
{
	memset(d, 0, sizeof(*d));
	d->head_max = head_max;
	buf_init(&d->head, head_max + 1);
	d->on_stderr = on_stderr;
	d->data = data;
}

void fastcgi_decoder_free(struct fastcgi_decoder *d)
{
	stderr_bytes(d, NULL, 0, true);
	buf_free(&d->head);
}

static bool is_token_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* The HTTP/1.1 head for the CGI head h[0..len) (through its blank line)
 * into out. */
static int make_head(const char *h, size_t len, struct buf *out, size_t out_limit)
{
	int status = 0;
	bool location = false;
	const char *reason = NULL;
	size_t reason_len = 0;
	/* first pass: check every line, find Status and Location */
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(h + i, '\n', len - i);
		size_t e = (size_t)(nl - h); /* nl is found: the head ends in one */
		size_t le = e > i && h[e - 1] == '\r' ? e - 1 : e;
		if (le == i)
			break; /* the blank line */
		size_t c = i;
		while (c < le && is_token_char(h[c]))
			c++;
		if (c == i || c >= le || h[c] != ':')
			return WEIR_EINVAL;
		for (size_t k = c + 1; k < le; k++)
			if (((unsigned char)h[k] < 0x20 && h[k] != '\t') || h[k] == 0x7f)
				return WEIR_EINVAL;
		size_t vs = c + 1;
		while (vs < le && (h[vs] == ' ' || h[vs] == '\t'))
			vs++;
		if (c - i == 6 && strncasecmp(h + i, "status", 6) == 0) {
			if (le - vs < 3 || h[vs] < '1' || h[vs] > '5' || h[vs + 1] < '0' ||
			    h[vs + 1] > '9' || h[vs + 2] < '0' || h[vs + 2] > '9' ||
			    (le - vs > 3 && h[vs + 3] != ' '))
				return WEIR_EINVAL;
			status = (h[vs] - '0') * 100 + (h[vs + 1] - '0') * 10 + (h[vs + 2] - '0');
			if (le - vs > 4) {
				reason = h + vs + 4;
				reason_len = le - vs - 4;
			}
		} else if (c - i == 8 && strncasecmp(h + i, "location", 8) == 0) {
			location = true;
		}
		i = e + 1;
	}
	if (status && status < 200)
		return WEIR_EINVAL; /* no interim answer, and no upgrade, over FastCGI */
	if (!status)
		status = location ? 302 : 200;
	if (!reason || reason_len == 0) {
		reason = headers_reason(status);
		reason_len = strlen(reason);
	}
	if (reason_len > REASON_MAX)
		reason_len = REASON_MAX;
	char line[32 + REASON_MAX];
	int n =
	    snprintf(line, sizeof(line), "HTTP/1.1 %d %.*s\r\n", status, (int)reason_len, reason);
	size_t start = out->start, end = out->end;
	if (buf_len(out) + (size_t)n + len + FASTCGI_HEAD_EXTRA > out_limit ||
	    buf_append(out, line, (size_t)n))
		return WEIR_ETOOBIG;
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(h + i, '\n', len - i);
		size_t e = (size_t)(nl - h);
		size_t le = e > i && h[e - 1] == '\r' ? e - 1 : e;
		if (le == i)
			break;
		size_t c = (size_t)((const char *)memchr(h + i, ':', le - i) - h);
		size_t nlen = c - i;
		bool drop = (nlen == 6 && strncasecmp(h + i, "status", 6) == 0) ||
		            (nlen == 10 && strncasecmp(h + i, "connection", 10) == 0) ||
		            (nlen == 10 && strncasecmp(h + i, "keep-alive", 10) == 0) ||
		            (nlen == 17 && strncasecmp(h + i, "transfer-encoding", 17) == 0);
		if (!drop && (buf_append(out, h + i, le - i) || buf_append(out, "\r\n", 2)))
			goto full;
		i = e + 1;
	}
	if (buf_append(out, "Connection: close\r\n\r\n", 21))
		goto full;
	return 0;
full:
	out->start = start;
	out->end = end;
	return WEIR_ETOOBIG;
}

/* Where the CGI head in b ends (through its blank line), 0: not yet. */
static size_t head_end(const struct buf *b)
{
	const char *p = b->data + b->start;
	size_t len = buf_len(b);
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(p + i, '\n', len - i);
		if (!nl)
			return 0;
		size_t e = (size_t)(nl - p);
		if (e == i || (e == i + 1 && p[i] == '\r'))
			return e + 1;
		i = e + 1;
	}
	return 0;
}

/* stdout bytes: the CGI head first, then the body. Returns bytes taken
 * (fewer than len when out is at its limit) or a negative code. */
static long take_stdout(struct fastcgi_decoder *d, const char *p, size_t len, struct buf *out,
                        size_t out_limit)
{
	if (d->head_done) {
		size_t room = out_limit > buf_len(out) ? out_limit - buf_len(out) : 0;
		size_t n = len < room ? len : room;
		if (n && buf_append(out, p, n))
			return WEIR_ENOMEM;
		return (long)n;
	}
	/* the head is read one piece at a time: at most up to its cap */
	size_t room = d->head_max - buf_len(&d->head);
	size_t n = len < room ? len : room;
	if (n && buf_append(&d->head, p, n))
		return WEIR_ENOMEM;
	size_t e = head_end(&d->head);
	if (!e)
		return buf_len(&d->head) >= d->head_max ? WEIR_ETOOBIG : (long)n;
	int rc = make_head(d->head.data + d->head.start, e, out, out_limit);
	if (rc)
		return rc;
	d->head_done = true;
	/* bytes after the blank line in this piece are body: give them back */
	size_t extra = buf_len(&d->head) - e;
	buf_free(&d->head);
	return (long)(n - extra);
}

static void stderr_bytes(struct fastcgi_decoder *d, const char *p, size_t len, bool flush)
{
	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		if (c == '\n' || d->line_len == sizeof(d->line) - 1) {
			if (d->line_len && d->on_stderr)
				d->on_stderr(d->data, d->line, d->line_len);
			d->line_len = 0;
			if (c == '\n')
				continue;
		}
		if (c == '\r')
			continue;
		d->line[d->line_len++] = ((unsigned char)c < 0x20 || c == 0x7f) ? '?' : c;
	}
	if (flush && d->line_len) {
		if (d->on_stderr)
			d->on_stderr(d->data, d->line, d->line_len);
		d->line_len = 0;
	}
}

int fastcgi_decode(struct fastcgi_decoder *d, const char *in, size_t len, size_t *used,
                   struct buf *out, size_t out_limit)
{
	size_t pos = 0;
	int rc = 0;
	while (pos < len && !d->ended) {
		if (!d->in_record) {
			while (d->have < 8 && pos < len)
				d->hdr[d->have++] = (uint8_t)in[pos++];
			if (d->have < 8)
				break;
			if (d->hdr[0] != FCGI_VERSION) {
				rc = WEIR_EINVAL;
				break;
			}
			d->type = d->hdr[1];
			d->content_left = (size_t)d->hdr[4] << 8 | d->hdr[5];
			d->pad_left = d->hdr[6];
			d->in_record = true;
			d->end_have = 0;
			unsigned id = (unsigned)d->hdr[2] << 8 | d->hdr[3];
			/* management records (id 0) are skipped; another request's
			 * records cannot come: only one was sent */
			if (id != 0 && id != REQUEST_ID) {
				rc = WEIR_EINVAL;
				break;
			}
		}
		if (d->content_left > 0 && pos < len) {
			size_t n = len - pos < d->content_left ? len - pos : d->content_left;
			uint8_t id_lo = d->hdr[3], id_hi = d->hdr[2];
			bool ours = id_hi == 0 && id_lo == REQUEST_ID;
			if (ours && d->type == FCGI_STDOUT) {
				long t = take_stdout(d, in + pos, n, out, out_limit);
				if (t < 0) {
					rc = (int)t;
					break;
				}
				n = (size_t)t;
				if (n == 0 && d->head_done)
					break; /* out is full */
			} else if (ours && d->type == FCGI_STDERR) {
				stderr_bytes(d, in + pos, n, false);
			} else if (ours && d->type == FCGI_END_REQUEST) {
				for (size_t k = 0; k < n; k++)
					if (d->end_have < sizeof(d->end_body))
						d->end_body[d->end_have++] = (uint8_t)in[pos + k];
			}
			pos += n;
			d->content_left -= n;
			if (d->content_left > 0)
				continue;
		}
		if (d->content_left > 0)
			break;
		size_t skip = len - pos < d->pad_left ? len - pos : d->pad_left;
		pos += skip;
		d->pad_left -= skip;
		if (d->pad_left > 0)
			break;
		/* the record is complete */
		d->in_record = false;
		d->have = 0;
		if (d->hdr[2] == 0 && d->hdr[3] == REQUEST_ID) {
			if (d->type == FCGI_STDERR) /* one log line per record at least, as nginx */
				stderr_bytes(d, NULL, 0, true);
			if (d->type == FCGI_END_REQUEST) {
				/* refused (cannot multiplex, overloaded, unknown role),
				 * or over before a head: not an answer */
				if (d->end_have < 8 || d->end_body[4] != FCGI_REQUEST_COMPLETE ||
				    !d->head_done) {
					rc = WEIR_EINVAL;
					break;
				}
				d->ended = true;
			}
		}
	}
	*used = pos;
	if (rc)
		return rc;
	return d->ended ? 1 : 0;
}
