/* proxy/auth_request.h - forward authentication (ingress-nginx auth-url): a
 * subrequest carrying the client's request head (no body) to an auth server,
 * run on the worker's event loop with a non-blocking connect and its own
 * timer, and the decision its answer leads to. One auth_request per client
 * request; nothing is shared between workers.
 *
 * The auth server is an IP literal or a host name looked up without
 * blocking (proxy/resolve.h, cached per worker); plain http or https (no
 * certificate verification; SNI for a host name), as ingress-nginx. The
 * connection is not kept alive (auth-keepalive is not supported). */
#ifndef WEIR_PROXY_AUTH_REQUEST_H
#define WEIR_PROXY_AUTH_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "loop.h"
#include "resolve.h"
#include "route_table.h"
#include "upstream.h"
#include "url.h"

#define AUTH_REQUEST_HEAD_MAX 16384u              /* largest auth response head read */
#define AUTH_CACHE_SLOTS 1024u                    /* per worker, direct-mapped by key hash */
#define AUTH_CACHE_MAX_BYTES (4u * 1024u * 1024u) /* per worker */
#define AUTH_CACHE_KEY_MAX 4096u                  /* longer keys are not cached */

struct auth_request; /* opaque */
struct auth_cache;   /* opaque, one per worker: auth-cache-key answers */

/* Create / free a worker's cache of auth answers. Returns 0 and *out
 * (caller frees with auth_cache_free; NULL is fine there) or WEIR_ENOMEM. */
int auth_cache_new(struct auth_cache **out);
void auth_cache_free(struct auth_cache *cache);

/* Runs once when the answer is known (or the call failed or timed out); the
 * request's result getters are valid from then until auth_request_free. */
typedef void (*auth_request_done_cb)(struct auth_request *ar, void *data);

/* What the subrequest is built from. Pointers are borrowed for the call of
 * auth_request_start only, except auth, which is borrowed until
 * auth_request_free (it lives in the route table the caller holds). */
struct auth_request_params {
	const struct route_ext_auth *auth;
	const struct http_request *req;
	const struct http_client *client;
	struct resolver *resolver;   /* for a host name in the URL (NULL: IP only) */
	struct auth_cache *cache;    /* with auth->cache_key (NULL: no caching) */
	const char *cache_scope;     /* the route, e.g. "host\npath": keys never cross routes */
	uint32_t connect_timeout_ms; /* name lookup and TCP connect together */
	uint32_t timeout_ms;         /* after connecting, for the whole response head */
};

/* Build the auth request head into buf (cap bytes): "<auth-method or GET>
 * <url path+query> HTTP/1.1", Host: the auth URL's authority, the client's
 * end-to-end headers (no Host, hop-by-hop, body framing, Expect, nor those
 * set below), the auth-proxy-set-headers (auth->proxy_set_headers, in
 * order; a client header of the same name is not sent), then X-Original-URL (scheme://Host
 * request-target), X-Original-Method (and with auth-method X-Original-URI and X-Scheme, as
 * ingress-nginx), X-Sent-From: nginx-ingress-controller, X-Real-IP (client->ip,
 * the real client of realip.h), X-Forwarded-For (as the upstream gets it:
 * the incoming chain plus client->hop_ip when client->forwarded_chain, else
 * client->ip), X-Forwarded-Proto/-Host/-Port, X-Request-ID, X-Auth-Request-Redirect
 * (auth-request-redirect, else the request-target), Connection: close, and
 * no body. url is the parsed auth->url. Returns the length or WEIR_ETOOBIG. */
int auth_request_build_head(const struct auth_request_params *p, const struct url *url, char *buf,
                            size_t cap);

/* Start the subrequest, or answer from p->cache when auth->cache_key is set
 * and a fresh answer for the expanded key is there (answers are stored for
 * the auth-cache-duration of their status, default "200 202 401 5m", unless
 * they carry Set-Cookie, Cache-Control, Expires, X-Accel-Expires or Vary).
 * On success returns 0 and *out (caller frees with
 * auth_request_free, which may be called at any time; cb never fires after
 * it); cb fires later from the loop, never from inside this call. On failure
 * (WEIR_ENOMEM, WEIR_EINVAL for a bad URL, WEIR_ETOOBIG for a head over
 * AUTH_REQUEST_HEAD_MAX) cb never fires. */
int auth_request_start(struct loop *loop, struct upstream_pool *pool,
                       const struct auth_request_params *p, auth_request_done_cb cb, void *data,
                       struct auth_request **out);

/* Cancel (when running) and free. NULL is fine. */
void auth_request_free(struct auth_request *ar);

/* The auth server's status, or 0 when it could not be reached or did not
 * answer in time. Valid once done. */
int auth_request_status(const struct auth_request *ar);

/* The status for the client, from the auth server's: 0 lets the request
 * through (2xx), 401 (302 when signin is set), 403, and 500 for anything
 * else, 0 (no answer) included - as ingress-nginx. */
int auth_request_decision(const struct route_ext_auth *auth, int auth_status);

/* Header lines ("Name: value\r\n"...) collected from the auth response
 * (NUL-terminated, owned by ar): for the upstream request (the
 * auth-response-headers present in the answer, in the order configured),
 * the Set-Cookie lines for the client, and the WWW-Authenticate lines. */
const char *auth_request_upstream_lines(const struct auth_request *ar);
const char *auth_request_cookie_lines(const struct auth_request *ar);
const char *auth_request_www_auth_lines(const struct auth_request *ar);

/* Location for the signin redirect: signin with the nginx variables of
 * URL_SIGNIN_VARS expanded (others are left as written), plus
 * "<param>=scheme://Host" and the request-target percent-encoded as a URI
 * component, as a query parameter (after '?' or '&') unless the signin URL
 * already carries that parameter. Returns the length written into buf
 * (NUL-terminated) or WEIR_ETOOBIG. */
int auth_request_signin_location(const struct route_ext_auth *auth, const struct http_request *req,
                                 const struct http_client *client, char *buf, size_t cap);

/* Expand auth->cache_key for this request (url_check_cache_key variables;
 * $remote_user from Basic credentials) into buf (NUL-terminated). Returns
 * the length or WEIR_ETOOBIG. */
int auth_request_cache_key(const struct route_ext_auth *auth, const struct http_request *req,
                           const struct http_client *client, char *buf, size_t cap);

/* Edit a message head in place (head[0..len), ending with the blank line,
 * cap bytes of room): remove the header lines whose names are in drop
 * (case-insensitive; the start line is kept), then insert lines (already
 * "Name: value\r\n" formatted, may be empty) before the blank line. Returns
 * the new length or WEIR_ETOOBIG (head unchanged). */
int auth_request_edit_head(char *head, size_t len, size_t cap, char *const *drop, size_t ndrop,
                           const char *lines);

#endif
