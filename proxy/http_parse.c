/* proxy/http_parse.c - strict HTTP/1.1 head scan + llhttp glue. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "http_parse.h"

static struct http_parse *hp_of(llhttp_t *p)
{
	return p->data;
}

static int on_method(llhttp_t *p, const char *at, size_t len)
{
	struct http_parse *hp = hp_of(p);
	if (!hp->req->method)
		hp->req->method = at;
	hp->req->method_len += len;
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct http_parse *hp = hp_of(p);
	if (!hp->req->target)
		hp->req->target = at;
	hp->req->target_len += len;
	return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
	struct http_parse *hp = hp_of(p);
	if (!hp->resp->reason)
		hp->resp->reason = at;
	hp->resp->reason_len += len;
	return 0;
}

/* A trailer field piece (after the head): kept in hp->trailers when set. */
static int trailer_piece(struct http_parse *hp, int part, const char *at, size_t len)
{
	struct buf *t = hp->trailers;
	if (!t)
		return 0;
	int rc = 0;
	if (part == 1 && hp->in_field == 2)
		rc |= buf_append(t, "\r\n", 2);
	else if (part == 2 && hp->in_field != 2)
		rc |= buf_append(t, ": ", 2);
	hp->in_field = part;
	rc |= buf_append(t, at, len);
	if (rc != 0) {
		hp->trailer_failed = true;
		return -1;
	}
	return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct http_parse *hp = hp_of(p);
	if (hp->head_done)
		return trailer_piece(hp, 1, at, len);
	if (hp->in_field != 1) {
		if (hp->nheaders >= HTTP_MAX_HEADERS) {
			hp->error = 431;
			return -1;
		}
		struct http_header *h = &hp->headers[hp->nheaders++];
		h->name = at;
		h->name_len = 0;
		h->value = at + len; /* empty until a value arrives */
		h->value_len = 0;
		hp->in_field = 1;
	}
	hp->headers[hp->nheaders - 1].name_len += len;
	return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct http_parse *hp = hp_of(p);
	if (hp->head_done)
		return trailer_piece(hp, 2, at, len);
	if (hp->nheaders == 0)
		return -1;
	struct http_header *h = &hp->headers[hp->nheaders - 1];
	if (hp->in_field != 2) {
		h->value = at;
		h->value_len = 0;
		hp->in_field = 2;
	}
	h->value_len += len;
	return 0;
}

static bool value_has_token(const char *v, size_t len, const char *token)
{
	size_t tl = strlen(token);
	size_t i = 0;
	while (i < len) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < len && v[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
			return true;
	}
	return false;
}

static void trim_values(struct http_parse *hp)
{
	for (size_t i = 0; i < hp->nheaders; i++) {
		struct http_header *h = &hp->headers[i];
		while (h->value_len > 0 &&
		       (h->value[h->value_len - 1] == ' ' || h->value[h->value_len - 1] == '\t'))
			h->value_len--;
	}
}

static int parse_length(const char *v, size_t len, int64_t *out)
{
	int64_t n = 0;
	if (len == 0 || len > 18)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	*out = n;
	return 0;
}

static int on_headers_complete(llhttp_t *p)
{
	struct http_parse *hp = hp_of(p);
	hp->head_done = true;
	hp->in_field = 0;
	if (hp->response && hp->head_request)
		return 1; /* no body after a response to HEAD */
	return 0;
}

static int on_message_complete(llhttp_t *p)
{
	struct http_parse *hp = hp_of(p);
	hp->done = true;
	if (hp->trailers && hp->in_field == 2 && buf_append(hp->trailers, "\r\n", 2) != 0)
		hp->trailer_failed = true;
	hp->in_field = 0;
	return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
	struct http_parse *hp = hp_of(p);
	if (!hp->body_cb)
		return -1;
	return hp->body_cb(hp->body_data, at, len) == 0 ? 0 : -1;
}

/* The callbacks of every request parse and every response parse: llhttp
 * keeps a pointer to them, so they need not be made for each message. */
static const llhttp_settings_t request_settings = {
    .on_method = on_method,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
    .on_body = on_body,
};
static const llhttp_settings_t response_settings = {
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
    .on_body = on_body,
};

void http_parse_init(struct http_parse *hp, bool response, bool head_request)
{
	memset(hp, 0, sizeof(*hp));
	llhttp_init(&hp->parser, response ? HTTP_RESPONSE : HTTP_REQUEST,
	            response ? &response_settings : &request_settings);
	hp->parser.data = hp;
	hp->response = response;
	hp->head_request = head_request;
}

/* A byte the head scan looks at: a control byte but tab (CR and LF
 * included), or DEL. */
static bool scan_special(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

#define BYTES_OF(b) (0x0101010101010101ull * (b))

/* The first i from i on where buf[i] is a byte the scan looks at, or len.
 * Eight bytes a step: a word's bytes below 0x20 and DEL are flagged by the
 * bit hacks' hasless and haszero, exact for the lowest flagged byte (a
 * borrow may flag bytes above it), which on a little-endian machine is the
 * lowest set bit; a flagged tab is passed over. */
static size_t skip_plain(const char *buf, size_t i, size_t len)
{
	while (len - i >= 8) {
		uint64_t x, d;
		memcpy(&x, buf + i, 8);
		d = x ^ BYTES_OF(0x7f);
		uint64_t m = ((x - BYTES_OF(0x20)) & ~x) | ((d - BYTES_OF(0x01)) & ~d);
		m &= BYTES_OF(0x80);
		if (!m) {
			i += 8;
			continue;
		}
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		i += (size_t)__builtin_ctzll(m) / 8;
		if (buf[i] != '\t')
			return i;
		i++;
#else
		for (size_t end = i + 8; i < end; i++)
			if (scan_special((unsigned char)buf[i]))
				return i;
#endif
	}
	for (; i < len; i++)
		if (scan_special((unsigned char)buf[i]))
			return i;
	return len;
}

/* A byte that may start a header line inside a head: not a control byte,
 * DEL, or whitespace (obs-fold), and not the CR of the empty line. */
static bool line_start_plain(unsigned char c)
{
	return !scan_special(c) && c != ' ' && c != '\t';
}

long http_parse_scan_head(struct http_parse *hp, const char *buf, size_t len, size_t max_bytes)
{
	size_t i = hp->scanned;
	for (; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		unsigned char prev = i > 0 ? (unsigned char)buf[i - 1] : 0;
		if (prev != '\r' && prev != '\n' && !scan_special(c)) {
			/* inside a line: no check below can fail before the next
			 * control byte (CR and LF included) */
			i = skip_plain(buf, i + 1, len) - 1;
			continue;
		}
		if (c == '\r' && i > 0 && prev != '\r' && prev != '\n' && len - i > 2 &&
		    buf[i + 1] == '\n' && line_start_plain((unsigned char)buf[i + 2])) {
			/* the CRLF after a line, and the next line starts as it
			 * should: nothing below fails on these three bytes */
			i = skip_plain(buf, i + 3, len) - 1;
			continue;
		}
		if (prev == '\r' && c != '\n')
			return -400; /* bare CR */
		if (c == '\n') {
			if (prev != '\r')
				return -400; /* bare LF */
			if (i == 1)
				return -400; /* empty line before the start line */
			if (i >= 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
				if (i + 1 > max_bytes)
					return -431;
				hp->scanned = i + 1;
				return (long)(i + 1);
			}
			continue;
		}
		if ((c == ' ' || c == '\t') && prev == '\n')
			return -400; /* obs-fold, or whitespace before a field name */
		if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
			return -400;
	}
	hp->scanned = len;
	if (len > max_bytes)
		return -431;
	return 0;
}

int http_parse_long_line(const char *buf, size_t head_len, size_t max_line)
{
	if (max_line == 0)
		return 0;
	size_t start = 0;
	while (start < head_len) {
		const char *lf = memchr(buf + start, '\n', head_len - start);
		size_t end = lf ? (size_t)(lf - buf) + 1 : head_len;
		if (end - start > max_line)
			return start == 0 ? 414 : 400;
		start = end;
	}
	return 0;
}

static int run_head(struct http_parse *hp, const char *buf, size_t head_len)
{
	llhttp_errno_t err = llhttp_execute(&hp->parser, buf, head_len);
	if (err == HPE_OK || err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
		if (!hp->head_done)
			return -1;
		if (err != HPE_OK && llhttp_get_error_pos(&hp->parser) != buf + head_len)
			return -1;
		return 0;
	}
	return -1;
}

int http_parse_request_head(struct http_parse *hp, const char *buf, size_t head_len,
                            struct http_request *req)
{
	/* All but the header array (4 KiB) is zeroed: a header is read only
	 * below nheaders, and the parse writes each one it counts. */
	size_t a = offsetof(struct http_request, headers), b = a + sizeof(req->headers);
	memset(req, 0, a);
	memset((char *)req + b, 0, sizeof(*req) - b);
	req->content_length = -1;
	hp->req = req;
	hp->headers = req->headers;
	if (run_head(hp, buf, head_len) != 0)
		return hp->error ? hp->error : 400;
	req->nheaders = hp->nheaders;
	trim_values(hp);
	if (hp->parser.http_major != 1)
		return 400;
	req->version_minor = hp->parser.http_minor;
	if (!req->method || !req->target || req->target_len == 0)
		return 400;
	/* llhttp ends a CONNECT at its head whatever framing it announces: the
	 * bytes after it would reach the upstream as a body we did not frame. */
	if (hp->parser.method == HTTP_CONNECT)
		return 405;
	const char *q = memchr(req->target, '?', req->target_len);
	req->path = req->target;
	req->path_len = q ? (size_t)(q - req->target) : req->target_len;
	int nhost = 0;
	bool conn_upgrade = false, upgrade_ws = false;
	for (size_t i = 0; i < req->nheaders; i++) {
		struct http_header *h = &req->headers[i];
		if (http_name_is(h, "host")) {
			nhost++;
			req->host = h->value;
			req->host_len = h->value_len;
		} else if (http_name_is(h, "content-length")) {
			int64_t n;
			hp->ncl++;
			if (parse_length(h->value, h->value_len, &n) != 0)
				return 400;
			req->content_length = n;
		} else if (http_name_is(h, "transfer-encoding")) {
			hp->nte++;
			if (h->value_len != 7 || strncasecmp(h->value, "chunked", 7) != 0)
				hp->te_bad = true;
		} else if (http_name_is(h, "connection")) {
			if (value_has_token(h->value, h->value_len, "upgrade"))
				conn_upgrade = true;
		} else if (http_name_is(h, "upgrade")) {
			if (value_has_token(h->value, h->value_len, "websocket"))
				upgrade_ws = true;
		}
	}
	if (hp->ncl > 1 || hp->nte > 1 || hp->te_bad || (hp->ncl && hp->nte))
		return 400;
	if (nhost > 1 || (nhost == 0 && req->version_minor >= 1))
		return 400;
	/* The body is framed by llhttp: a head whose framing it read otherwise
	 * (a value it does not take for chunked, say "chunked<TAB>", which on an
	 * Upgrade request it ends at the head) would let what follows reach the
	 * upstream as a body we never framed. */
	if (hp->nte && !(hp->parser.flags & F_CHUNKED))
		return 400;
	if (hp->ncl && (!(hp->parser.flags & F_CONTENT_LENGTH) ||
	                hp->parser.content_length != (uint64_t)req->content_length))
		return 400;
	req->chunked = hp->nte == 1;
	req->upgrade_websocket = conn_upgrade && upgrade_ws;
	return 0;
}

int http_parse_response_head(struct http_parse *hp, const char *buf, size_t head_len,
                             struct http_response *resp)
{
	size_t a = offsetof(struct http_response, headers), b = a + sizeof(resp->headers);
	memset(resp, 0, a); /* as for a request head */
	memset((char *)resp + b, 0, sizeof(*resp) - b);
	resp->content_length = -1;
	hp->resp = resp;
	hp->headers = resp->headers;
	if (run_head(hp, buf, head_len) != 0)
		return 502;
	resp->nheaders = hp->nheaders;
	trim_values(hp);
	if (hp->parser.http_major != 1)
		return 502;
	resp->version_minor = hp->parser.http_minor;
	resp->status = hp->parser.status_code;
	if (!resp->reason) {
		resp->reason = buf;
		resp->reason_len = 0;
	}
	for (size_t i = 0; i < resp->nheaders; i++) {
		struct http_header *h = &resp->headers[i];
		if (http_name_is(h, "content-length")) {
			int64_t n;
			if (parse_length(h->value, h->value_len, &n) != 0)
				return 502;
			if (resp->content_length >= 0 && n != resp->content_length)
				return 502;
			resp->content_length = n;
		}
	}
	resp->chunked = (hp->parser.flags & F_CHUNKED) != 0;
	return 0;
}

bool http_parse_done(const struct http_parse *hp)
{
	return hp->done;
}

bool http_parse_needs_eof(const struct http_parse *hp)
{
	return !hp->done && llhttp_message_needs_eof(&hp->parser);
}

bool http_parse_keep_alive(const struct http_parse *hp)
{
	/* llhttp_should_keep_alive answers for the message as a whole; before the
	 * body it still reflects the head's version and Connection header. */
	if (hp->parser.flags & F_CONNECTION_CLOSE)
		return false;
	if (hp->parser.http_major == 1 && hp->parser.http_minor == 0)
		return (hp->parser.flags & F_CONNECTION_KEEP_ALIVE) != 0;
	return true;
}

int http_parse_body(struct http_parse *hp, const char *buf, size_t len, size_t *consumed,
                    http_parse_body_cb cb, void *data)
{
	*consumed = 0;
	if (hp->done)
		return 1;
	hp->body_cb = cb;
	hp->body_data = data;
	llhttp_errno_t err = llhttp_execute(&hp->parser, buf, len);
	hp->body_cb = NULL;
	if (err == HPE_OK) {
		*consumed = len;
		return hp->done ? 1 : 0;
	}
	if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
		*consumed = (size_t)(llhttp_get_error_pos(&hp->parser) - buf);
		return 1;
	}
	if (err == HPE_USER)
		return -1;
	return -400;
}

int http_parse_eof(struct http_parse *hp)
{
	if (hp->done)
		return 1;
	return llhttp_message_needs_eof(&hp->parser) ? 1 : -1;
}
