/* proxy/h2up.h - HTTP/2 to upstreams (backend protocol GRPC: h2c with prior
 * knowledge; GRPCS: h2 over TLS). The data path talks HTTP/1.1 to an
 * upstream; for these backends its "upstream connection" is side CHAN_B of
 * an in-memory channel (chan.h) whose side CHAN_A is served here: the request that arrives on it
 * (head, then a body of any framing) becomes a stream on an HTTP/2
 * connection to the endpoint, shared by the worker's requests (reused while
 * it has streams to spare), and the stream's answer comes back as an
 * HTTP/1.1 response with a chunked body whose trailers carry the HTTP/2
 * trailers (grpc-status, grpc-message), or with Content-Length 0 when the
 * answer was headers only. Every answer says Connection: close, so the data
 * path never pools the channel. An endpoint that cannot be reached, or a stream
 * the upstream resets before answering, lets go of the channel without an answer:
 * the data path sees an upstream that failed and acts as for HTTP/1.1 (next
 * upstream, 502). */
#ifndef WEIR_PROXY_H2UP_H
#define WEIR_PROXY_H2UP_H

#include <stdbool.h>

#include "backend_tls.h"
#include "chan.h"
#include "loop.h"
#include "route_table.h"

struct h2up_pool; /* opaque, one per worker */

int h2up_pool_new(struct loop *l, struct h2up_pool **out);
/* Close every connection and stream (NULL is fine). */
void h2up_pool_free(struct h2up_pool *p);

/* Serve the exchange that arrives on side CHAN_A of ch (taken over; let go
 * on failure) over HTTP/2 to ep: h2c when tls is NULL, else h2 over TLS
 * (ALPN "h2") made as tls says (the route's proxy-ssl-* profile: its
 * context, SNI and the name the certificate must carry; backend_tls.h).
 * Connections are shared only by exchanges with the same endpoint and the
 * same TLS target. Returns 0, WEIR_EINVAL (ep has no IP address) or
 * WEIR_ENOMEM. */
int h2up_attach(struct h2up_pool *p, const struct route_endpoint *ep,
                const struct backend_tls_target *tls, struct chan *ch);

#endif
