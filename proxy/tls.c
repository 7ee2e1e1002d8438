/* proxy/tls.c - OpenSSL contexts and non-blocking TLS I/O. */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "chan.h"
#include "client_cert.h"
#include "error.h"
#include "log.h"
#include "route_validate.h"
#include "table.h"
#include "tls.h"

static SSL_CTX *server_ctx;
static SSL_CTX *client_ctx;

/* ALPN: "h2" when the client offers it and the connection's table allows
 * HTTP/2 (use_http2), else "http/1.1"; neither offered: no ALPN. */
int tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                    const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)arg;
	struct table **slot = SSL_get_app_data(ssl);
	const struct table *t = slot ? *slot : NULL;
	bool h2_ok = !t || table_routes(t)->settings.use_http2;
	const unsigned char *h11 = NULL;
	for (unsigned int i = 0; i < inlen;) {
		unsigned int n = in[i];
		if (i + 1 + n > inlen)
			break;
		if (h2_ok && n == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
			*out = in + i + 1;
			*outlen = 2;
			return SSL_TLSEXT_ERR_OK;
		}
		if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0)
			h11 = in + i + 1;
		i += 1 + n;
	}
	if (!h11)
		return SSL_TLSEXT_ERR_NOACK;
	*out = h11;
	*outlen = 8;
	return SSL_TLSEXT_ERR_OK;
}

bool tls_alpn_h2(SSL *ssl)
{
	const unsigned char *p = NULL;
	unsigned int n = 0;
	SSL_get0_alpn_selected(ssl, &p, &n);
	return n == 2 && memcmp(p, "h2", 2) == 0;
}

static int servername_cb(SSL *ssl, int *al, void *arg)
{
	struct table **slot = SSL_get_app_data(ssl);
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (!slot)
		return SSL_TLSEXT_ERR_OK;
	if (!*slot)
		*slot = table_current();
	SSL_CTX *ctx = *slot ? table_ssl_ctx(*slot, sni) : NULL;
	if (ctx && ctx != SSL_get_SSL_CTX(ssl))
		SSL_set_SSL_CTX(ssl, ctx);
	if (*slot)
		client_cert_on_servername(ssl, *slot);
	return SSL_TLSEXT_ERR_OK;
}

/* The table's ssl-protocols and the cipher list of the host the SNI
 * selects (its ssl-ciphers annotation, else the table's ssl-ciphers). The
 * connection starts with the built-in defaults, so nothing is parsed when
 * neither is set. Both were checked when the table loaded. */
static void apply_tls_settings(SSL *ssl, const struct table *t, const struct route_host *h)
{
	const struct route_settings *s = &table_routes(t)->settings;
	const char *ciphers = h && h->ssl_ciphers ? h->ssl_ciphers : s->ssl_ciphers;
	if (ciphers)
		SSL_set_cipher_list(ssl, ciphers);
	if (s->ssl_protocols) {
		int min;
		long off;
		route_tls_protocol_bounds(s->ssl_protocols, &min, &off);
		SSL_set_min_proto_version(ssl, min);
		SSL_set_options(ssl, (uint64_t)off);
	}
}

/* Before the servername callback and before a session is resumed (and
 * before the protocol version and cipher are chosen): the table the
 * connection will use, the client certificate settings of the host its SNI
 * selects (client_cert.h), and the protocols and ciphers allowed. */
static int client_hello_cb(SSL *ssl, int *al, void *arg)
{
	struct table **slot = SSL_get_app_data(ssl);
	if (!slot)
		return SSL_CLIENT_HELLO_SUCCESS;
	if (!*slot)
		*slot = table_current();
	if (*slot)
		apply_tls_settings(ssl, *slot, client_cert_on_hello(ssl, *slot));
	return SSL_CLIENT_HELLO_SUCCESS;
}

static int make_self_signed(SSL_CTX *ctx)
{
	int rc = WEIR_ETLS;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name = NULL;
	X509_EXTENSION *ext = NULL;
	unsigned char serial[8];
	if (!key || !x)
		goto out;
	X509_set_version(x, 2);
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto out;
	serial[0] &= 0x7f;
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn)
		goto out;
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	X509_gmtime_adj(X509_getm_notBefore(x), -86400);
	X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 86400);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"weir", -1, -1,
	                           0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                           (const unsigned char *)"weir default certificate", -1, -1, 0);
	X509_set_issuer_name(x, name);
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "DNS:weir.invalid");
	if (ext)
		X509_add_ext(x, ext, -1);
	if (X509_sign(x, key, EVP_sha256()) <= 0)
		goto out;
	if (SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1)
		goto out;
	rc = 0;
out:
	X509_EXTENSION_free(ext);
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

int tls_init(void)
{
	int rc = WEIR_ETLS;
	server_ctx = SSL_CTX_new(TLS_server_method());
	client_ctx = SSL_CTX_new(TLS_client_method());
	if (!server_ctx || !client_ctx)
		goto fail;
	SSL_CTX_set_min_proto_version(server_ctx, TLS1_2_VERSION);
	/* ingress-nginx's defaults: its cipher list (TLS 1.2; the TLS 1.3
	 * suites stay OpenSSL's), the server's order preferred. A connection's
	 * options come from this context; its cipher list, unless set on the
	 * connection, from the context the SNI switches to (table.c sets the
	 * same default there). */
	SSL_CTX_set_options(server_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_set_cipher_list(server_ctx, ROUTE_DEFAULT_SSL_CIPHERS) != 1)
		goto fail;
	SSL_CTX_set_mode(server_ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_alpn_select_cb(server_ctx, tls_alpn_select, NULL);
	SSL_CTX_set_tlsext_servername_callback(server_ctx, servername_cb);
	SSL_CTX_set_client_hello_cb(server_ctx, client_hello_cb, NULL);
	if (client_cert_init() != 0)
		goto fail;
	if (make_self_signed(server_ctx) != 0)
		goto fail;
	SSL_CTX_set_min_proto_version(client_ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(client_ctx, SSL_MODE_RELEASE_BUFFERS);
	static const unsigned char alpn[] = "\x08http/1.1";
	SSL_CTX_set_alpn_protos(client_ctx, alpn, sizeof(alpn) - 1);
	return 0;
fail:
	log_error("proxy.tls", "cannot create TLS contexts");
	tls_cleanup();
	return rc;
}

void tls_cleanup(void)
{
	SSL_CTX_free(server_ctx);
	SSL_CTX_free(client_ctx);
	server_ctx = NULL;
	client_ctx = NULL;
}

static void ssl_modes(SSL *ssl)
{
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                      SSL_MODE_RELEASE_BUFFERS);
}

SSL *tls_server_new(int fd, struct table **table_slot)
{
	SSL *ssl = SSL_new(server_ctx);
	if (!ssl)
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	ssl_modes(ssl);
	SSL_set_app_data(ssl, table_slot);
	SSL_set_accept_state(ssl);
	return ssl;
}

SSL *tls_client_new(int fd, const char *sni)
{
	SSL *ssl = SSL_new(client_ctx);
	if (!ssl)
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	ssl_modes(ssl);
	if (sni)
		SSL_set_tlsext_host_name(ssl, sni);
	SSL_set_connect_state(ssl);
	return ssl;
}

/* Map an SSL result to EAGAIN / EOF / error. */
static ssize_t ssl_result(struct tls_sock *s, int ret)
{
	int e = SSL_get_error(s->ssl, ret);
	switch (e) {
	case SSL_ERROR_WANT_READ:
		s->blocked_out = false;
		return WEIR_EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		s->blocked_out = true;
		return WEIR_EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return WEIR_EAGAIN;
		return ret == 0 ? 0 : WEIR_EIO;
	default:
		ERR_clear_error();
		return WEIR_EIO;
	}
}

int tls_sock_handshake(struct tls_sock *s)
{
	if (!s->ssl || s->handshake_done)
		return 0;
	ERR_clear_error();
	int ret = SSL_do_handshake(s->ssl);
	if (ret == 1) {
		s->handshake_done = true;
		return 0;
	}
	ssize_t r = ssl_result(s, ret);
	return r == WEIR_EAGAIN ? WEIR_EAGAIN : WEIR_ETLS;
}

ssize_t tls_sock_read(struct tls_sock *s, void *buf, size_t len)
{
	if (s->chan) {
		ssize_t n = chan_read(s->chan, CHAN_B, buf, len);
		if (n == WEIR_EAGAIN)
			s->blocked_out = false;
		return n;
	}
	if (!s->ssl) {
		ssize_t n;
		do
			n = recv(s->fd, buf, len, 0);
		while (n < 0 && errno == EINTR);
		if (n >= 0)
			return n;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			s->blocked_out = false;
			return WEIR_EAGAIN;
		}
		return WEIR_EIO;
	}
	if (!s->handshake_done) {
		int h = tls_sock_handshake(s);
		if (h != 0)
			return h == WEIR_EAGAIN ? WEIR_EAGAIN : WEIR_EIO;
	}
	ERR_clear_error();
	int n = SSL_read(s->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (n > 0)
		return n;
	return ssl_result(s, n);
}

ssize_t tls_sock_write(struct tls_sock *s, const void *buf, size_t len)
{
	if (s->chan) {
		ssize_t n = chan_write(s->chan, CHAN_B, buf, len);
		if (n == WEIR_EAGAIN)
			s->blocked_out = true;
		return n;
	}
	if (!s->ssl) {
		ssize_t n;
		do
			n = send(s->fd, buf, len, MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n >= 0)
			return n;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			s->blocked_out = true;
			return WEIR_EAGAIN;
		}
		return WEIR_EIO;
	}
	if (!s->handshake_done) {
		int h = tls_sock_handshake(s);
		if (h != 0)
			return h == WEIR_EAGAIN ? WEIR_EAGAIN : WEIR_EIO;
	}
	ERR_clear_error();
	int n = SSL_write(s->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (n > 0)
		return n;
	ssize_t r = ssl_result(s, n);
	return r == 0 ? WEIR_EIO : r;
}

void tls_sock_close(struct tls_sock *s)
{
	if (s->chan) {
		chan_close(s->chan, CHAN_B);
		s->chan = NULL;
	}
	if (s->ssl) {
		if (s->handshake_done)
			SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

int tls_peek_sni(const unsigned char *buf, size_t len, char *out, size_t outlen)
{
	if (len < 5)
		return len > 0 && buf[0] != 0x16 ? WEIR_EPARSE : WEIR_EAGAIN;
	if (buf[0] != 0x16 || buf[1] != 0x03)
		return WEIR_EPARSE;
	size_t rlen = (size_t)buf[3] << 8 | buf[4];
	if (len < 5 + rlen)
		return WEIR_EAGAIN;
	const unsigned char *p = buf + 5, *end = buf + 5 + rlen;
	if (end - p < 4 || p[0] != 0x01)
		return 0;
	size_t hlen = (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
	p += 4;
	if ((size_t)(end - p) > hlen)
		end = p + hlen;
	/* version(2) random(32) */
	if (end - p < 34)
		return 0;
	p += 34;
	if (end - p < 1 || end - p < 1 + p[0])
		return 0;
	p += 1 + p[0]; /* session id */
	if (end - p < 2)
		return 0;
	size_t n = (size_t)p[0] << 8 | p[1];
	if ((size_t)(end - p) < 2 + n)
		return 0;
	p += 2 + n; /* cipher suites */
	if (end - p < 1 || end - p < 1 + p[0])
		return 0;
	p += 1 + p[0]; /* compression */
	if (end - p < 2)
		return 0;
	size_t elen = (size_t)p[0] << 8 | p[1];
	p += 2;
	if ((size_t)(end - p) < elen)
		return 0;
	end = p + elen;
	while (end - p >= 4) {
		unsigned type = (unsigned)p[0] << 8 | p[1];
		size_t l = (size_t)p[2] << 8 | p[3];
		p += 4;
		if ((size_t)(end - p) < l)
			return 0;
		if (type == 0) {
			const unsigned char *q = p, *qe = p + l;
			if (qe - q < 2)
				return 0;
			q += 2;
			while (qe - q >= 3) {
				unsigned nt = q[0];
				size_t nl = (size_t)q[1] << 8 | q[2];
				q += 3;
				if ((size_t)(qe - q) < nl)
					return 0;
				if (nt == 0) {
					/* A NUL would cut the name short of what the
					 * handshake (which refuses it) sees. */
					if (nl == 0 || nl + 1 > outlen || memchr(q, '\0', nl))
						return 0;
					for (size_t i = 0; i < nl; i++)
						out[i] = (char)tolower(q[i]);
					out[nl] = '\0';
					return 1;
				}
				q += nl;
			}
			return 0;
		}
		p += l;
	}
	return 0;
}

void tls_sock_blocked(const struct tls_sock *s, bool *can_read, bool *can_write)
{
	if (s->blocked_out)
		*can_write = false;
	else
		*can_read = false;
}

ssize_t tls_sock_flush(struct tls_sock *s, struct buf *b, bool *can_read, bool *can_write)
{
	size_t total = 0;
	while (buf_len(b) > 0 && *can_write) {
		ssize_t n = tls_sock_write(s, b->data + b->start, buf_len(b));
		if (n == WEIR_EAGAIN) {
			tls_sock_blocked(s, can_read, can_write);
			break;
		}
		if (n < 0)
			return -1;
		b->start += (size_t)n;
		total += (size_t)n;
	}
	if (b->start == b->end)
		b->start = b->end = 0;
	return (ssize_t)total;
}
