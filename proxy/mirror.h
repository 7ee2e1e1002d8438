/* proxy/mirror.h - request mirroring (ingress-nginx mirror-target): a copy
 * of a client request (method, target from the expanded mirror URL,
 * headers and, unless mirror-request-body is off, the body) sent to the
 * mirror on the worker's event loop, the answer's head read and thrown
 * away. Fire and forget: the client's request never waits for a mirror nor
 * fails with it, and a mirror outlives the client connection it copies.
 *
 * Bounded per worker: at most MIRROR_INFLIGHT_MAX mirrors (capturing a body
 * or on the wire) at once, more are dropped; a body is kept up to
 * MIRROR_BODY_MAX bytes, a request with a larger body is not mirrored at
 * all (dropped: a truncated copy would mislead the mirror); each mirror has
 * the route's connect timeout for name lookup and connect, then at most
 * MIRROR_TIMEOUT_MAX_MS (or the route's read timeout when shorter) for
 * sending and the answer's head. Connects as auth_request.h does (IP
 * literal or a host name through proxy/resolve.h; http or https without
 * certificate verification, SNI for a host name; Connection: close).
 * Outcomes count in weir_proxy_mirror_requests_total{result}: sent (an
 * answer head came back), dropped, failed. */
#ifndef WEIR_PROXY_MIRROR_H
#define WEIR_PROXY_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "loop.h"
#include "resolve.h"
#include "route_table.h"
#include "upstream.h"

#define MIRROR_INFLIGHT_MAX 64u       /* per worker */
#define MIRROR_BODY_MAX (64u * 1024u) /* request body bytes kept for a mirror */
#define MIRROR_HEAD_MAX 16384u        /* mirror request head, and answer head read */
#define MIRROR_TIMEOUT_MAX_MS 10000u  /* after connecting */

struct mirror_set; /* opaque, one per worker */
struct mirror;     /* opaque, one mirrored request */

/* Create / free a worker's mirrors. The loop, pool and resolver are
 * borrowed until mirror_set_free, which closes every mirror still running
 * (before the resolver is freed). Returns 0 and *out, or WEIR_ENOMEM. NULL
 * is fine for free. */
int mirror_set_new(struct loop *loop, struct upstream_pool *pool, struct resolver *resolver,
                   struct mirror_set **out);
void mirror_set_free(struct mirror_set *s);

/* Build the mirror request head into buf (cap bytes): "<method> <target of
 * the expanded url> HTTP/1.1", Host: m->host or the URL's host without
 * its port (as ingress-nginx), the
 * client's end-to-end headers (not Host, hop-by-hop, body framing nor
 * Expect), Content-Length: body_len when with_body, Connection: close.
 * expanded is the URL after url_expand_mirror. Returns the length,
 * WEIR_EINVAL (expanded is not a URL) or WEIR_ETOOBIG. */
int mirror_build_head(const struct route_mirror *m, const char *expanded,
                      const struct http_request *req, bool with_body, size_t body_len, char *buf,
                      size_t cap);

/* Start mirroring req on route policy m (m->url set). body_coming: the
 * request has a body (content length > 0 or chunked) and m wants it; then
 * *out is set to the mirror, which waits for mirror_body calls and
 * mirror_body_done (or mirror_abandon); the caller holds it until one of
 * those two. Else the mirror goes out at once and *out is NULL. Never fails
 * the caller: a mirror that cannot start (cap reached, bad expansion, no
 * memory) is counted dropped or failed and *out is NULL. req and host
 * (the request's host without port) are borrowed for the call only. */
void mirror_start(struct mirror_set *s, const struct route_mirror *m,
                  const struct http_request *req, const char *host, size_t host_len,
                  bool body_coming, uint32_t connect_timeout_ms, uint32_t timeout_ms,
                  struct mirror **out);

/* Body bytes (decoded payload) of the request being captured. Returns 0,
 * or -1 when the body went over MIRROR_BODY_MAX: the mirror is then
 * dropped and freed (the caller forgets it). */
int mirror_body(struct mirror *mr, const char *p, size_t len);

/* The body is complete: the mirror goes out; the caller forgets it. */
void mirror_body_done(struct mirror *mr);

/* The request ended before its body did (client gone, bad body): the
 * mirror is dropped and freed. NULL is fine. */
void mirror_abandon(struct mirror *mr);

#endif
