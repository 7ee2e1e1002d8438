/* proxy/tunnel.h - an opaque byte relay between a client and an upstream:
 * upgraded WebSocket connections and ssl-passthrough TCP. Idle tunnels cost
 * almost nothing in user space: bytes are read into the worker's scratch
 * buffer and written straight through; a pending buffer exists only while a
 * write would block. WebSocket tunnels follow the frame boundaries in both
 * directions (headers only) so a close frame can be injected cleanly when
 * draining. */
#ifndef WEIR_PROXY_TUNNEL_H
#define WEIR_PROXY_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "loop.h"
#include "route_table.h"
#include "tls.h"

struct table;
struct tunnel;

/* Per-worker tunnel state (caller storage): the loop, a scratch buffer and
 * the list of live tunnels. */
struct tunnel_worker {
	struct loop *loop;
	char *scratch;
	size_t scratch_cap;
	struct tunnel *head;
	size_t count;
};

struct tunnel_config {
	bool websocket;                   /* frames tracked, close frames on drain, metrics */
	uint32_t idle_ms;                 /* 0: none */
	uint32_t max_lifetime_ms;         /* 0: none */
	const struct route *route;        /* borrowed for the call (may be NULL) */
	const struct http_client *client; /* borrowed for the call */
	bool limit_entered;               /* give (route, client)'s connection count back
	                                     at close (policy_limit_slot) */
	uint32_t ping_interval_ms;        /* WebSocket: ping both sides after this much silence */
	uint32_t drain_window_ms;         /* spread of the close when the endpoint goes away */
	const char *backend_name;         /* copied; with endpoint: see tunnel_check_endpoints */
	const struct route_endpoint *endpoint; /* address and port copied */
};

/* Start relaying between client and upstream (both sockets are taken over,
 * including their SSL objects). to_upstream / to_client (may be empty) are
 * written first, in order. cfg and what it points to are borrowed for the
 * call: the tunnel copies what it needs and holds no route table, so the
 * table it started on is freed at the next swap (the caller drops its own
 * reference). Returns 0, or WEIR_ENOMEM / WEIR_EIO; on failure both sockets
 * are closed and a connection count taken (limit_entered) given back. */
int tunnel_start(struct tunnel_worker *w, struct tls_sock *client, struct tls_sock *upstream,
                 const char *to_upstream, size_t nup, const char *to_client, size_t nclient,
                 const struct tunnel_config *cfg);

/* Shut every tunnel of the worker down: WebSocket tunnels get a close frame
 * (1001 "going away") to each side at a random moment within their route's
 * drain window, raw ones are closed at such a moment. cap_ms bounds every
 * window (UINT32_MAX: no cap). Returns the longest window used, so the caller
 * knows when the last close is due. */
uint32_t tunnel_drain_all(struct tunnel_worker *w, uint32_t cap_ms);

/* After a route table swap: WebSocket tunnels whose endpoint is gone from
 * their backend (or marked draining) get their close frames at a random
 * moment within their drain window. t is borrowed for the call. */
void tunnel_check_endpoints(struct tunnel_worker *w, const struct table *t);

/* Close every tunnel now (end of the shutdown deadline). */
void tunnel_close_all(struct tunnel_worker *w);

/* Write a WebSocket close frame with status 1001 "going away" into out
 * (at least 18 bytes): unmasked (server to client) or masked with mask_key.
 * Returns its length. */
size_t tunnel_close_frame(unsigned char *out, bool masked, const unsigned char mask_key[4]);

#endif
