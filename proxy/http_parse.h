/* proxy/http_parse.h - the strict HTTP/1.1 message reader of the data path:
 * a raw scan of the head bytes (what llhttp lets through: bare LF, obs-fold,
 * control characters), then llhttp for the head fields and the body framing
 * (Content-Length, chunked). One message at a time: the reader stops exactly
 * at the end of a message, so pipelined bytes stay for the next one. */
#ifndef WEIR_PROXY_HTTP_PARSE_H
#define WEIR_PROXY_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "buf.h"
#include "http.h"

/* Called with decoded body bytes (chunk framing removed), borrowed for the
 * duration of the call. Return 0 to go on, anything else stops the parse. */
typedef int (*http_parse_body_cb)(void *data, const char *p, size_t len);

/* Caller storage for one message; http_parse_init before each message. */
struct http_parse {
	llhttp_t parser;
	bool response;
	bool head_request; /* response to a HEAD request: no body */
	struct http_request *req;
	struct http_response *resp;
	size_t nheaders;
	struct http_header *headers;
	int in_field; /* 1 name, 2 value */
	int error;    /* status to answer (400...), 0 none */
	int ncl;      /* Content-Length headers seen */
	int nte;      /* Transfer-Encoding headers seen */
	bool te_bad;  /* Transfer-Encoding not exactly "chunked" */
	bool head_done;
	bool done;      /* message complete */
	size_t scanned; /* raw scan position (http_parse_scan_head) */
	http_parse_body_cb body_cb;
	void *body_data;
	/* Trailer fields of a chunked body, kept as "name: value\r\n" lines
	 * when the caller sets this (NULL: dropped); over its cap: an error. */
	struct buf *trailers;
	bool trailer_failed;
};

/* Prepare hp for a new request (response false) or response (true; head_request
 * when it answers a HEAD request). */
void http_parse_init(struct http_parse *hp, bool response, bool head_request);

/* Scan buf[0..len) for the end of the message head, resuming where the last
 * call stopped (buf must keep the same start between calls). Returns the head
 * length (through the blank line) when complete, 0 when more bytes are needed,
 * or a negative HTTP status: -400 for a bare LF, a bare CR, obs-fold (a header
 * line starting with SP or HT), a NUL/control character; -431 when no end was
 * found within max_bytes. */
long http_parse_scan_head(struct http_parse *hp, const char *buf, size_t len, size_t max_bytes);

/* The first line of buf[0..head_len) (a complete head) longer than
 * max_line bytes, CRLF included: 414 when it is the request line, 400 when
 * a header line; 0 when none is (or max_line is 0). As nginx's
 * large_client_header_buffers, whose buffers each hold whole lines. */
int http_parse_long_line(const char *buf, size_t head_len, size_t max_line);

/* Parse a complete head (head_len from http_parse_scan_head) into req. The
 * strings in req point into buf, which must outlive req. Returns 0, or an
 * HTTP status to answer (400: malformed, both Content-Length and
 * Transfer-Encoding, duplicate or bad Content-Length, Transfer-Encoding other
 * than chunked, missing Host on HTTP/1.1), 405 for CONNECT (a reverse proxy
 * does not tunnel, as nginx). */
int http_parse_request_head(struct http_parse *hp, const char *buf, size_t head_len,
                            struct http_request *req);

/* Same for a response head; returns 0 or 502 (the upstream sent garbage). */
int http_parse_response_head(struct http_parse *hp, const char *buf, size_t head_len,
                             struct http_response *resp);

/* True when the message parsed so far has no body to read (complete already). */
bool http_parse_done(const struct http_parse *hp);

/* True when the response body runs until the connection closes. */
bool http_parse_needs_eof(const struct http_parse *hp);

/* True when the peer allows keeping the connection (HTTP/1.1 without
 * "Connection: close", or HTTP/1.0 with keep-alive). Valid after the head. */
bool http_parse_keep_alive(const struct http_parse *hp);

/* Feed body bytes; decoded bytes go to cb. *consumed receives how many input
 * bytes were used (fewer than len when the message ended inside buf). Returns
 * 1 when the message is complete, 0 when more is needed, -400 for bad framing
 * (bad chunk size...), -1 when cb stopped the parse. */
int http_parse_body(struct http_parse *hp, const char *buf, size_t len, size_t *consumed,
                    http_parse_body_cb cb, void *data);

/* The peer closed: a read-until-close body ends here. Returns 1 when the
 * message is complete, else -1 (truncated). */
int http_parse_eof(struct http_parse *hp);

#endif
