/* proxy/compress.h - gzip compression of responses (ConfigMap use-gzip):
 * which responses are compressed, as nginx's gzip module decides with the
 * directives ingress-nginx writes (gzip_proxied any, gzip_vary on,
 * gzip_http_version 1.1), and a streaming deflate with the gzip wrapper
 * whose memory is bounded and freed when the response ends. */
#ifndef WEIR_PROXY_COMPRESS_H
#define WEIR_PROXY_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "route_table.h"

/* True when the request's Accept-Encoding headers (all of them, read as one
 * comma-separated list) name the "gzip" coding with a q-value above 0, as
 * nginx reads it: "gzip;q=0" refuses, "x-gzip" and "*" do not count. */
bool compress_accepts_gzip(const struct http_request *req);

/* True when the media type of a Content-Type value ct (ct_len bytes; its
 * parameters and case ignored) is text/html or one of types (a gzip_types
 * value: lowercase "type/subtype" entries separated by single spaces, or
 * "*", which also matches a missing Content-Type, ct NULL). */
bool compress_type_listed(const char *types, const char *ct, size_t ct_len);

enum compress_verdict {
	COMPRESS_NO = 0,   /* sent as is, no Vary added */
	COMPRESS_VARY = 1, /* sent as is, with "Vary: Accept-Encoding" (a client that
	                      accepts gzip would get it compressed) */
	COMPRESS_GZIP = 2  /* compressed, with Content-Encoding: gzip and Vary */
};

/* What to do with a final response (status >= 200, not 101) to req under
 * settings s (NULL: COMPRESS_NO). Eligible, as nginx's gzip filter: use_gzip
 * on, status 200, 403 or 404, not a HEAD request, no Content-Encoding (or an
 * empty one), no Content-Length below gzip_min_length, a Content-Type in
 * gzip_types; not a WebSocket upgrade request. Compressed when also the
 * request is HTTP/1.1 and accepts gzip. */
enum compress_verdict compress_decide(const struct route_settings *s,
                                      const struct http_request *req,
                                      const struct http_response *resp, bool head_request);

/* One gzip stream. Opaque. */
struct compress;

/* A gzip stream at zlib level 1..9; content_length (-1: unknown) shrinks
 * the window and hash for small bodies (as nginx does), bounding the memory
 * to what the body needs, at most about 256 KiB. Returns NULL on
 * out-of-memory. Caller frees with compress_free(). */
struct compress *compress_new(int level, int64_t content_length);

/* Free z and all its memory. NULL is fine. */
void compress_free(struct compress *z);

enum compress_mode {
	COMPRESS_MORE = 0,  /* more input follows: output only what is ready */
	COMPRESS_FLUSH = 1, /* emit everything given so far (a sync flush: the client can
	                       decompress all of it now) */
	COMPRESS_FINISH = 2 /* no more input: emit the rest and the gzip trailer */
};

/* Compress from in (in_len bytes; *used receives how many were taken) into
 * out (cap bytes; *produced receives how many were written) in mode. Call
 * again with the same mode while it returns 0 and filled out (or left
 * input). Returns 1 when the stream is complete (COMPRESS_FINISH, all
 * emitted), 0 otherwise, WEIR_EINVAL on misuse. */
int compress_run(struct compress *z, const char *in, size_t in_len, size_t *used, char *out,
                 size_t cap, size_t *produced, enum compress_mode mode);

/* True when input was given since the last COMPRESS_FLUSH (or start) whose
 * output the client may not have been able to decode yet. */
bool compress_pending(const struct compress *z);

#endif
