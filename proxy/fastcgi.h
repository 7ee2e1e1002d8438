/* proxy/fastcgi.h - FastCGI 1.0 to upstreams of routes with backend
 * protocol FCGI (ingress-nginx backend-protocol FCGI): the request goes as
 * records of the responder role (params, then stdin), and the records that
 * come back are turned into an HTTP/1.1 response, which the data path then
 * reads as it reads any upstream's. One request per connection: weir does
 * not set FCGI_KEEP_CONN, so the application closes after each answer (as
 * nginx without fastcgi_keep_conn). */
#ifndef WEIR_PROXY_FASTCGI_H
#define WEIR_PROXY_FASTCGI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http.h"
#include "route_table.h"

/* Bytes the HTTP/1.1 head made from a CGI head may have beyond it: the
 * status line, its reason (cut to 64 bytes) and "Connection: close". */
#define FASTCGI_HEAD_EXTRA 128u

/* The most bytes of params one request sends (expanded values included). */
#define FASTCGI_PARAMS_CAP (256u * 1024u)

/* What the params are made of. */
struct fastcgi_vars {
	/* the request as weir sends it upstream: rewritten target, the route's
	 * header policies applied (its headers become HTTP_* params) */
	const struct http_request *req;
	/* the request as the client sent it ($request_uri, $request_method,
	 * $server_protocol, and the variables of enum route_var) */
	const struct http_request *orig;
	const struct http_client *client;
	const struct route_fastcgi *cfg; /* NULL: no index, no params */
	const char *server_addr;         /* the address the client reached ("" unknown) */
};

/* BEGIN_REQUEST (responder, no FCGI_KEEP_CONN) and the whole params
 * stream, appended to out; without body_follows the end of stdin too.
 * Returns 0, or WEIR_ETOOBIG when out's cap is reached (or memory is
 * short). */
int fastcgi_request_head(const struct fastcgi_vars *v, bool body_follows, struct buf *out);

/* Body bytes as STDIN records (len > 0), or the end of stdin (len 0),
 * appended to out. Returns 0 or WEIR_ETOOBIG (out unchanged). */
int fastcgi_stdin(struct buf *out, const char *p, size_t len);

/* Bytes fastcgi_stdin adds to len body bytes at most. */
size_t fastcgi_stdin_overhead(size_t len);

/* Called with a line the application wrote on stderr (at most 255 bytes,
 * no line end; a STDERR record ends a line too), to be logged. */
typedef void (*fastcgi_stderr_cb)(void *data, const char *line, size_t len);

/* The reader of the records coming back. Caller storage. */
struct fastcgi_decoder {
	uint8_t hdr[8];      /* the record header being read */
	size_t have;         /* bytes of it so far */
	bool in_record;      /* the header is complete: content and padding follow */
	uint8_t type;        /* record type */
	size_t content_left; /* content bytes of the record still to come */
	size_t pad_left;     /* padding bytes still to come */
	uint8_t end_body[8]; /* END_REQUEST content */
	size_t end_have;     /* bytes of it so far */
	bool head_done;      /* the CGI head was turned into the HTTP head */
	bool ended;          /* END_REQUEST came */
	struct buf head;     /* CGI head bytes until its blank line */
	size_t head_max;     /* the most a CGI head may take */
	char line[256];      /* stderr text since the last line end */
	size_t line_len;
	fastcgi_stderr_cb on_stderr;
	void *data;
};

/* Prepare d for one response whose CGI head may take head_max bytes
 * (proxy-buffer-size). on_stderr may be NULL. */
void fastcgi_decoder_init(struct fastcgi_decoder *d, size_t head_max, fastcgi_stderr_cb on_stderr,
                          void *data);

/* Give back what d holds (it can be initialised again). */
void fastcgi_decoder_free(struct fastcgi_decoder *d);

/* Read in[0..len) (*used: bytes taken) and append what it means to out as
 * HTTP/1.1 bytes: "HTTP/1.1 <status>" made from the CGI head (Status:, else
 * 302 with Location:, else 200), its other fields, "Connection: close" and
 * the blank line, then the stdout bytes after it. out holds at most
 * out_limit bytes: reading stops there (back-pressure). Returns 1 when the
 * application ended the request (END_REQUEST), 0 when more is due, or a
 * negative code: WEIR_ETOOBIG (the CGI head is longer than head_max),
 * WEIR_EINVAL (not FastCGI, a CGI head that is not one, a 1xx status, or
 * the request refused by the application). */
int fastcgi_decode(struct fastcgi_decoder *d, const char *in, size_t len, size_t *used,
                   struct buf *out, size_t out_limit);

#endif
