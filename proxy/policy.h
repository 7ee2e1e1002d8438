/* proxy/policy.h - what happens to a request before any upstream is chosen
 * (access lists, redirects, CORS preflight, body limit, WebSocket handshake
 * checks) and the per-client-IP limits (limit-rps, limit-connections). */
#ifndef WEIR_PROXY_POLICY_H
#define WEIR_PROXY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "route_table.h"

/* The decision; caller storage, filled by policy_check. */
struct policy_result {
	int status;               /* 0: go on and proxy; else answer with this status */
	char location[2048];      /* for redirects ("" otherwise) */
	char extra_headers[1024]; /* "Name: value\r\n" lines, e.g. CORS preflight headers */
	const char *body;         /* static short body, or the route's return_body (NULL: none) */
	bool body_exact;          /* body as is (no newline added): a route's return_body */
	bool route_headers;       /* a redirect_code or return_code answer: the route's
	                             response-headers and add_headers go on it */
	bool skip_auth; /* satisfy any and the client is in the allowlist: no auth checks */
};

/* Decide what happens before any upstream is chosen, in this order: allow/deny
 * CIDRs -> 403 (with satisfy_any and basic or forward auth on the route, a
 * client outside the allowlist is left to authenticate and one inside it
 * gets skip_auth; the denylist always refuses); redirect_code/redirect_url; return_code with
 * return_body (text/plain, as is); ssl_redirect on plain
 * HTTP -> 308 to https://host/uri (trailing slash rules in policy.c); app_root for "/" -> 302; CORS
 * preflight (OPTIONS with Origin and Access-Control-Request-Method, cors.enabled) -> 204 with the
 * CORS headers; body over body_limit by Content-Length -> 413; WebSocket upgrade without
 * Sec-WebSocket-Key or with a version other than 13 -> 400. route may be NULL (default backend:
 * only the WebSocket check applies). All arguments borrowed. Returns 0 (out filled: every
 * field set, the texts up to their NUL; nothing of out is read first). */
int policy_check(const struct route *route, const struct http_request *req,
                 const struct http_client *client, struct policy_result *out);

/* A client address against an allowlist (when not empty it must hold the
 * client) and a denylist (it must not): the check of allow/deny lists
 * outside a route (ssl-passthrough). An unreadable address is refused when
 * either list is set. */
bool policy_client_allowed(const struct route_cidr *allow, size_t nallow,
                           const struct route_cidr *deny, size_t ndeny,
                           const struct http_client *client);

/* CORS on a normal (non-preflight) response: true and val, vlen (borrowed
 * from the route or req) the Access-Control-Allow-Origin value when the
 * route has CORS on and either allows any origin ("*") or lists the request's
 * Origin (which is then echoed, as ingress-nginx does); false: add no CORS
 * headers. */
bool policy_cors_allow_origin(const struct route *route, const struct http_request *req,
                              const char **val, size_t *vlen);

/* Per-client-IP limits (limit-rps, limit-connections), per process,
 * thread-safe, bounded memory. policy_limit_enter returns 0 to go on, or the
 * status to answer: req_status over limit-rps/limit-rpm (also when the table
 * has no room for a new client without forgetting open connections: the
 * limits never fail open), conn_status over limit-connections (ingress-nginx's
 * limit-req-status-code and limit-conn-status-code); every enter that returned 0 is paired with
 * exactly one policy_limit_leave (same route and client) for connection counting. */
int policy_limit_enter(const struct route *route, const struct http_client *client, int req_status,
                       int conn_status);
void policy_limit_leave(const struct route *route, const struct http_client *client);

/* The same leave for a holder that outlives route's table (a WebSocket
 * tunnel): policy_limit_slot names the count that policy_limit_enter took for
 * (route, client), both borrowed for the call; 0 when route has no limit.
 * policy_limit_leave_slot(slot) then equals policy_limit_leave(route, client);
 * slot 0 does nothing. */
uint64_t policy_limit_slot(const struct route *route, const struct http_client *client);
void policy_limit_leave_slot(uint64_t slot);

#endif
