/* proxy/backend_tls.h - TLS to HTTPS upstreams with a route's backend TLS
 * profile (proxy-ssl-*): one client SSL_CTX per profile of a route table,
 * built when the table loads, and the per-connection name used for SNI and
 * certificate verification. */
#ifndef WEIR_PROXY_BACKEND_TLS_H
#define WEIR_PROXY_BACKEND_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "route_table.h"

/* Hex SHA-256 of a profile's content plus NUL: two profiles with the same id
 * connect the same way, in whatever table they are. */
#define BACKEND_TLS_ID_LEN 65

/* The client contexts of one table, in the order of route_table.backend_tls. */
struct backend_tls_set;

/* What an upstream TLS connection is made with. Borrowed strings; ctx NULL:
 * the built-in client context (no verification, TLS 1.2 and 1.3). */
struct backend_tls_target {
	SSL_CTX *ctx;
	const char *id;   /* BACKEND_TLS_ID_LEN hex or "" with the built-in context */
	const char *sni;  /* NULL: no SNI */
	const char *name; /* verified name (host or IP literal); NULL: no name check */
};

/* Build one client context per profile of rt (route_validate_backend_tls_ctx,
 * then ALPN http/1.1), or take the one a live table built from a profile
 * with the same id (table_cache.h). On success returns 0 and *out (caller frees with
 * backend_tls_set_free; NULL when rt has no profile). On failure returns
 * WEIR_ETLS or WEIR_ENOMEM and err holds one line naming the profile, e.g.
 * "backend_tls[0].ca_pem: bad CA certificate (...)". */
int backend_tls_set_new(const struct route_table *rt, struct backend_tls_set **out, char *err,
                        size_t errlen);
void backend_tls_set_free(struct backend_tls_set *set);

/* Context and id of profile i (borrowed while set lives); ctx NULL and id ""
 * when set is NULL or i is out of range (the built-in context). */
void backend_tls_profile(const struct backend_tls_set *set, int i, SSL_CTX **ctx, const char **id);

/* True when the profile of index i verifies the upstream's certificate. */
bool backend_tls_verifies(const struct backend_tls_set *set, int i);

/* The name a route connects with: policy name, else host (the Host sent
 * upstream, without its port), else the endpoint address. Written to out
 * (size cap) lowercased; "" when it does not fit or is no usable name. */
void backend_tls_name(const struct route_backend_tls *bt, const char *host, size_t host_len,
                      const char *address, char *out, size_t cap);

/* New client SSL for a connected (or connecting) fd with target t: SNI when
 * t->sni (not for an IP literal, RFC 6066), the name check when t->name.
 * NULL on allocation failure. Caller frees (tls_sock_close). */
SSL *backend_tls_client_new(const struct backend_tls_target *t, int fd);

/* Why a client handshake on ssl failed, for the log: the certificate check's
 * verdict when it refused the upstream, else OpenSSL's last error, else
 * "connection closed". Written to buf (size cap). */
void backend_tls_failure(SSL *ssl, char *buf, size_t cap);

#endif
