/* proxy/tls.h - TLS for the data path (OpenSSL 3, non-blocking): the
 * built-in self-signed server context made at startup, the servername switch
 * to a route table's certificate, the client context for HTTPS upstreams,
 * byte I/O over a plain or TLS socket, and the ClientHello SNI peek used for
 * ssl-passthrough. */
#ifndef WEIR_PROXY_TLS_H
#define WEIR_PROXY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

struct buf;
struct table;

/* A socket and, when TLS is on, its SSL object. blocked_out is set when the
 * last call returned WEIR_EAGAIN because the socket could not be written
 * (else the socket could not be read). */
struct chan;

struct tls_sock {
	int fd;
	SSL *ssl;          /* NULL: plain TCP */
	struct chan *chan; /* not NULL: no socket (fd -1, ssl NULL) but side
	                    * CHAN_B of an in-memory channel (chan.h) */
	bool blocked_out;
	bool handshake_done;
};

/* Create the self-signed default server context (EC P-256, CN "weir") and
 * the upstream client context. Call once before workers start. Returns 0 or
 * WEIR_ETLS / WEIR_ENOMEM. */
int tls_init(void);
/* Free both contexts. */
void tls_cleanup(void);

/* New server-side SSL for an accepted fd. *table_slot is borrowed for the
 * connection's life: the servername callback stores a table reference there
 * (table_current) and switches to table_ssl_ctx(); the caller drops it with
 * table_unref when the connection closes. Returns NULL on allocation failure. */
SSL *tls_server_new(int fd, struct table **table_slot);
/* New client-side SSL for a connected upstream fd (no verification, as the
 * ingress-nginx default; SNI sni when not NULL). NULL on allocation failure. */
SSL *tls_client_new(int fd, const char *sni);

/* The ALPN selection callback of every server context: "h2" when offered
 * and the connection's table has use_http2, else "http/1.1" when offered. */
int tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                    const unsigned char *in, unsigned int inlen, void *arg);
/* True when ALPN chose "h2" on ssl (after the handshake). */
bool tls_alpn_h2(SSL *ssl);

/* Drive the handshake. Returns 0 when done, WEIR_EAGAIN (see blocked_out),
 * or WEIR_ETLS. */
int tls_sock_handshake(struct tls_sock *s);
/* Read up to len bytes: returns the count (> 0), 0 at end of stream,
 * WEIR_EAGAIN, or WEIR_EIO. Handshakes first when needed. */
ssize_t tls_sock_read(struct tls_sock *s, void *buf, size_t len);
/* Write up to len bytes: returns the count (> 0), WEIR_EAGAIN or WEIR_EIO.
 * After WEIR_EAGAIN, retry with the same bytes at the front of the buffer. */
ssize_t tls_sock_write(struct tls_sock *s, const void *buf, size_t len);
/* After WEIR_EAGAIN: the direction the socket waits for is not ready
 * (can_write when blocked_out, else can_read). */
void tls_sock_blocked(const struct tls_sock *s, bool *can_read, bool *can_write);
/* Write what b holds while *can_write (the bytes written leave b). Returns
 * the bytes written, or -1 when the socket failed. */
ssize_t tls_sock_flush(struct tls_sock *s, struct buf *b, bool *can_read, bool *can_write);

/* Close: a TLS close_notify when possible, then close(fd); frees ssl. */
void tls_sock_close(struct tls_sock *s);

/* Find the SNI host name in the first TLS record of buf (a ClientHello).
 * Returns 1 with out (NUL-terminated, lower case) filled, 0 when the record
 * is complete but holds no usable SNI (none, empty, longer than outlen - 1 or
 * holding a NUL byte) or is not a ClientHello, WEIR_EAGAIN when
 * more bytes are needed, WEIR_EPARSE when buf is not a TLS handshake. */
int tls_peek_sni(const unsigned char *buf, size_t len, char *out, size_t outlen);

#endif
