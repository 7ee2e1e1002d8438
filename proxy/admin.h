/* proxy/admin.h - the admin HTTP port of weir-proxy: health, readiness, metrics. */
#ifndef WEIR_PROXY_ADMIN_H
#define WEIR_PROXY_ADMIN_H

/* Serve GET /healthz (200 "ok"), /readyz (200 once table_ready(), else 503), /metrics on
 * addr:port in its own thread. Returns 0 or WEIR_E* (port in use...). HEAD works on each
 * path; other paths get 404, other methods lws knows (POST, PUT, DELETE, OPTIONS, PATCH) 405,
 * method tokens lws cannot parse get lws's own 403; upgrades (WebSocket, h2c) and CONNECT are
 * hung up. Every connection is closed after one response. addr: an IPv4 or IPv6 literal
 * ("0.0.0.0": every IPv4 address; NULL or "": every address), borrowed for the call only.
 * One admin server per process: a second admin_start before admin_stop returns WEIR_EINVAL. */
int admin_start(const char *addr, int port);

/* Stop the server thread and free everything admin_start made; a no-op when not running. */
void admin_stop(void);

#endif
