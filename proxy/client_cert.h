/* proxy/client_cert.h - client certificate authentication (ingress-nginx
 * auth-tls-*): the certificate asked for in the TLS handshake of the host the
 * SNI selects, and on each request the check of the host the Host header
 * selects, the answers nginx gives when it fails and the ssl-client-* headers
 * sent upstream. */
#ifndef WEIR_PROXY_CLIENT_CERT_H
#define WEIR_PROXY_CLIENT_CERT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "route_table.h"
#include "table.h"

/* Room for the extra header lines of a refusal (a Location). */
#define CLIENT_CERT_EXTRA_MAX 2200

/* Once per process, before any connection: reserves the SSL ex_data slot.
 * Returns 0 or WEIR_ETLS. */
int client_cert_init(void);

/* ClientHello time (before session resumption is decided): pick the host
 * the SNI of the ClientHello selects in t (borrowed; it must outlive ssl's
 * handshake) and give the connection the session id context of that host's
 * client certificate settings, so a session made under other settings is
 * never resumed here. Returns that host (NULL: none). */
const struct route_host *client_cert_on_hello(SSL *ssl, const struct table *t);

/* Servername time, after the switch to the host's certificate context: ask
 * for a client certificate when the host picked at ClientHello time wants
 * one (its CA store, verify depth, the CA names in the CertificateRequest
 * as nginx sends them; the handshake never fails for the
 * certificate: the request answers, as nginx does). t as above. */
void client_cert_on_servername(SSL *ssl, const struct table *t);

/* Request time, for a request whose Host selected h (may be NULL) in t.
 * ssl is the connection's TLS object, NULL for plain HTTP; route the
 * matched route (may be NULL). Returns 0 to go on, or the status to answer
 * with: 400 (no certificate with verify on, or one that fails
 * verification), 302 to auth-tls-error-page instead of those 400s, 403
 * (auth-tls-match-cn does not match the subject), 421 (the handshake was
 * made for a host with other client certificate settings). Then extra
 * (cap bytes, CLIENT_CERT_EXTRA_MAX is enough) holds header lines to add
 * ("" when none) and *body a static text. Plain HTTP to such a host is
 * answered as a request without certificate unless the route redirects to
 * HTTPS first (ssl-redirect). */
int client_cert_check(SSL *ssl, const struct table *t, const struct route_host *h,
                      const struct route *route, char *extra, size_t cap, const char **body);

/* True when a request header of that name is one client_cert_headers sets
 * (ssl-client-cert, -verify, -subject-dn, -issuer-dn): on a host with client
 * certificates the client's own are not passed on. */
bool client_cert_header_name(const char *name, size_t len);

/* Header lines for the upstream of a request to h in t (as for
 * client_cert_check): ssl-client-verify (SUCCESS, FAILED:<reason> or NONE),
 * ssl-client-subject-dn and ssl-client-issuer-dn (RFC 2253) when there is a
 * certificate, and with auth-tls-pass-certificate-to-upstream
 * ssl-client-cert (the PEM, URL-encoded as nginx's
 * $ssl_client_escaped_cert). *out is NULL when h has no client
 * certificates, else a NUL-terminated string the caller frees. Returns 0 or
 * WEIR_ENOMEM. */
int client_cert_headers(SSL *ssl, const struct table *t, const struct route_host *h, char **out);

#endif
