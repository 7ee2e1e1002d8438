/* proxy/headers.h - building message heads: the request sent upstream, the
 * response sent to the client, and the proxy's own short responses. Pure
 * functions: they only read their arguments and write into the caller's
 * buffer (no allocation on the request path). */
#ifndef WEIR_PROXY_HEADERS_H
#define WEIR_PROXY_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "route_table.h"
#include "table.h"

/* What the request head depends on besides the request and the client. All
 * pointers are borrowed for the duration of one call. */
struct headers_ctx {
	const struct route *route;             /* matched route (NULL: default backend) */
	const struct table_match *match;       /* for rewrite-target captures (may be NULL) */
	const struct route_settings *settings; /* trusted_proxies (may be NULL) */
	const char *upstream_host;             /* "addr:port" of the chosen endpoint */
	bool peer_trusted;                     /* keep the hop's X-Forwarded-* (realip.h) */
	const char *client_cert_lines;         /* a host with client certificates: the ssl-client-*
	                                          lines to send (client_cert.h), the client's own
	                                          dropped; NULL: none, the client's pass */
};

/* Write the upstream request head into buf (cap bytes): request line (path
 * rewritten by rewrite-target with $0..$9 from the match when set, query kept),
 * then every end-to-end header in arrival order, unknown and repeated ones
 * included, names and values byte-for-byte, minus hop-by-hop ones (Connection,
 * Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade and any
 * named in Connection) and, on a basic-auth route, Authorization (as
 * ingress-nginx), and with ctx->client_cert_lines the client's ssl-client-*
 * headers (replaced by those lines); Host unchanged unless upstream-vhost;
 * X-Forwarded-For
 * as client->forwarded_chain says (the chain plus client->hop_ip, or
 * client->ip alone), X-Real-IP (always client->ip), X-Forwarded-Proto/Host/
 * Port, X-Request-ID (kept from a trusted peer, else
 * client->request_id), X-Forwarded-Prefix, X-Request-Base, Origin/Referer
 * rewrite, request-headers (values marked expand with their variables
 * replaced, see route_var_lookup). For a WebSocket upgrade (req->upgrade_websocket)
 * it adds "Connection: Upgrade" and "Upgrade: websocket". Body framing: adds
 * "Content-Length: N" when body_length >= 0, "Transfer-Encoding: chunked" when
 * body_length == -2, nothing when -1. The head ends with the blank line.
 * Returns the number of bytes written (no NUL added), or WEIR_ETOOBIG when it
 * does not fit in cap (buf contents are then unspecified). */
int headers_build_request(const struct http_request *req, const struct http_client *client,
                          const struct headers_ctx *ctx, int64_t body_length, char *buf,
                          size_t cap);

/* What the proxy adds to a response head besides the route's policy. */
struct headers_resp_extra {
	const char *set_cookie;   /* a full Set-Cookie value (affinity), or NULL */
	const char *hsts;         /* Strict-Transport-Security value (HTTPS), or NULL */
	const char *allow_origin; /* CORS Access-Control-Allow-Origin value (not */
	size_t allow_origin_len;  /* NUL-terminated), or NULL: no CORS headers */
	/* The request and client the response answers, for variables in route
	 * headers marked expand (NULL: they expand to nothing). */
	const struct http_request *req;
	const struct http_client *client;
	/* use-gzip, enable-brotli (proxy/compress.h): the body is sent
	 * compressed, "gzip" or "br" (NULL: as is): "Content-Encoding: <it>", no
	 * Accept-Ranges, a strong ETag made weak ("W/" added; one that is not a
	 * quoted string is dropped), as nginx */
	const char *encoding;
	/* add "Vary: Accept-Encoding" unless an upstream Vary names it (or "*") */
	bool vary_accept_encoding;
	/* server-tokens, allow-backend-server-header (route_settings):
	 * hide_server drops the upstream's Server header; server, when not NULL,
	 * is sent as Server unless an upstream's Server passed or the route
	 * hides or sets one */
	bool hide_server;
	const char *server;
};

/* What the response head says about the client connection. */
enum headers_conn {
	HEADERS_CONN_CLOSE = 0,   /* "Connection: close" (for a final status) */
	HEADERS_CONN_KEEP = 1,    /* nothing: HTTP/1.1 keeps the connection by default */
	HEADERS_CONN_KEEP_10 = 2, /* "Connection: keep-alive": an HTTP/1.0 client asked for it
	                           * and closes unless the answer says so */
};

/* Write the response head for the client: status line (HTTP/1.1, the
 * upstream's reason or the standard one), every end-to-end upstream header in
 * order (repeated Set-Cookie kept in order; Location, Refresh and
 * Set-Cookie rewritten by the route's proxy_redirect_* and proxy_cookie_*,
 * see resp_rewrite.h), minus hop-by-hop ones and the route's hide_headers,
 * plus response-headers (replacing same-named ones), then add_headers
 * (appended; without always only on 200 201 204 206 301 302 303 304 307
 * 308), variables of expand values replaced for extra->req and
 * extra->client, extra->hsts as Strict-Transport-Security (replacing the
 * upstream's, unless the route's response-headers set one); the upstream's
 * Server dropped when extra->hide_server, extra->server sent as Server
 * when no Server passed and the route neither hides nor sets one; on a CORS route
 * the upstream's Access-Control-* response headers are replaced by the
 * route's, sent only when extra->allow_origin is set (with "Vary: Origin"
 * unless it is "*"); extra->set_cookie; framing (Content-Length when
 * body_length >= 0, chunked when -2, nothing when -1 and the connection will
 * close), and the Connection line conn asks for (enum headers_conn); the
 * compression changes extra->encoding and extra->vary_accept_encoding ask for.
 * For a 101: Connection: Upgrade / Upgrade: websocket. route and extra may be
 * NULL.
 * Returns bytes written or WEIR_ETOOBIG. */
int headers_build_response(const struct http_response *resp, const struct route *route,
                           const struct headers_resp_extra *extra, int64_t body_length,
                           enum headers_conn conn, char *buf, size_t cap);

/* The value of the variable name[0..len) (route_var_lookup; nothing for
 * another name) for req and client into buf (cap bytes, NUL-terminated).
 * Returns the length without the NUL, or WEIR_ETOOBIG. */
int headers_expand_var(const char *name, size_t len, const struct http_request *req,
                       const struct http_client *client, char *buf, size_t cap);

/* The route's own response header lines ("Name: value\r\n" each) for an
 * answer the proxy makes for the route (a redirect, a fixed "return"):
 * response-headers, then add_headers that apply to status (always, or
 * status among 200 201 204 206 301 302 303 304 307 308), NUL-terminated in
 * buf (cap bytes). route may be NULL (then ""). Returns the length without
 * the NUL, or WEIR_ETOOBIG. */
int headers_route_lines(const struct route *route, int status, const struct http_request *req,
                        const struct http_client *client, char *buf, size_t cap);

/* Write the header value v into buf (cap bytes, NUL-terminated), its
 * $variables (route_var_lookup) replaced for req and client when expand,
 * else v as is. Returns the length without the NUL, or WEIR_ETOOBIG. */
int headers_expand_value(const char *v, bool expand, const struct http_request *req,
                         const struct http_client *client, char *buf, size_t cap);

/* A short plain-text response made by the proxy itself (404, 502...):
 * "HTTP/1.1 <code> <reason>", Content-Type text/plain, Content-Length, the
 * optional extra header lines (each "Name: value\r\n", may be NULL),
 * the Connection line conn asks for, the blank line, then body (NULL: empty;
 * borrowed). Returns bytes written or WEIR_ETOOBIG. */
int headers_build_local(int status, const char *extra_headers, const char *body,
                        enum headers_conn conn, char *buf, size_t cap);

/* The Strict-Transport-Security value for settings s ("max-age=N" plus
 * "; includeSubDomains" and "; preload" as set) written NUL-terminated into
 * buf (cap bytes; 64 is enough). Returns its length, or 0 when s is NULL, HSTS
 * is off, or it does not fit. */
int headers_hsts_value(const struct route_settings *s, char *buf, size_t cap);

/* Standard reason phrase of a status code ("Unknown" for others). Static. */
const char *headers_reason(int status);

#endif
