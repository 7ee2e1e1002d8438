/* proxy/compress.h - compression of responses (ConfigMap use-gzip and
 * enable-brotli): which responses are compressed, as nginx's gzip module
 * (and ngx_brotli, which ingress-nginx runs before it) decide with the
 * directives ingress-nginx writes (gzip_proxied any, gzip_vary on,
 * gzip_http_version 1.1), and a streaming compressor (zlib deflate with the
 * gzip wrapper, or libbrotli) whose memory is bounded and freed when the
 * response ends. */
#ifndef WEIR_PROXY_COMPRESS_H
#define WEIR_PROXY_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "route_table.h"

/* True when the request's Accept-Encoding headers (all of them, read as one
 * comma-separated list) name the content coding coding ("gzip", "br") with
 * a q-value above 0, as nginx reads it: "gzip;q=0" refuses, the first
 * mention decides, "x-gzip" and "*" do not count. */
bool compress_accepts(const struct http_request *req, const char *coding);

/* True when the media type of a Content-Type value ct (ct_len bytes; its
 * parameters and case ignored) is text/html or one of types (a gzip_types
 * value: lowercase "type/subtype" entries separated by single spaces, or
 * "*", which also matches a missing Content-Type, ct NULL). */
bool compress_type_listed(const char *types, const char *ct, size_t ct_len);

enum compress_verdict {
	COMPRESS_NO = 0,    /* sent as is, no Vary added */
	COMPRESS_VARY = 1,  /* sent as is, with "Vary: Accept-Encoding" (a client that
	                       accepts gzip or br would get it compressed) */
	COMPRESS_GZIP = 2,  /* compressed, Content-Encoding: gzip, with Vary */
	COMPRESS_BROTLI = 3 /* compressed, Content-Encoding: br, with Vary */
};

/* What to do with a final response (status >= 200, not 101) to req under
 * settings s (NULL: COMPRESS_NO). Eligible for gzip, as nginx's gzip
 * filter: use_gzip on, status 200, 403 or 404, not a HEAD request, no
 * Content-Encoding (or an empty one), no Content-Length below
 * gzip_min_length, a Content-Type in gzip_types; not a WebSocket upgrade
 * request. For brotli the same with enable_brotli, brotli_min_length and
 * brotli_types. Brotli first (ngx_brotli runs before gzip): compressed with
 * it when eligible, the request is HTTP/1.1 and accepts br; else with gzip
 * when eligible, HTTP/1.1 and accepting gzip; else COMPRESS_VARY when
 * eligible for either. */
enum compress_verdict compress_decide(const struct route_settings *s,
                                      const struct http_request *req,
                                      const struct http_response *resp, bool head_request);

/* One compressed stream. Opaque. */
struct compress;

/* A stream for verdict COMPRESS_GZIP (zlib level 1..9) or COMPRESS_BROTLI
 * (quality 0..11, window 512 KiB as ngx_brotli); content_length (-1:
 * unknown) shrinks the window for small bodies (as nginx and ngx_brotli
 * do), bounding the memory to what the body needs: at most about 256 KiB
 * for gzip, about 1 MiB for brotli at level 4 (measured: 850 KiB). Returns NULL on
 * out-of-memory or a bad verdict or level. Caller frees with
 * compress_free(). */
struct compress *compress_new(enum compress_verdict codec, int level, int64_t content_length);

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
