/* proxy/client_cert.c - client certificates per host: asked for at
 * handshake time, checked and passed upstream at request time. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/tls1.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "client_cert.h"
#include "error.h"
#include "route_validate.h"

/* The host picked at ClientHello time (borrowed from the connection's
 * table). */
static int host_idx = -1;

int client_cert_init(void)
{
	if (host_idx < 0)
		host_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	return host_idx < 0 ? WEIR_ETLS : 0;
}

/* The host name of a ClientHello's server_name extension, lowercased into
 * out; false when there is none. */
static bool hello_sni(SSL *ssl, char *out, size_t outlen)
{
	const unsigned char *p;
	size_t len;
	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1 || len < 2)
		return false;
	size_t list = (size_t)p[0] << 8 | p[1];
	const unsigned char *q = p + 2, *end = p + 2 + (list < len - 2 ? list : len - 2);
	while (end - q >= 3) {
		unsigned type = q[0];
		size_t n = (size_t)q[1] << 8 | q[2];
		q += 3;
		if ((size_t)(end - q) < n)
			return false;
		if (type == TLSEXT_NAMETYPE_host_name) {
			if (n == 0 || n >= outlen || memchr(q, '\0', n))
				return false;
			for (size_t i = 0; i < n; i++)
				out[i] = (char)tolower(q[i]);
			out[n] = '\0';
			return true;
		}
		q += n;
	}
	return false;
}

const struct route_host *client_cert_on_hello(SSL *ssl, const struct table *t)
{
	char sni[256];
	const struct route_host *h =
	    table_sni_host(t, hello_sni(ssl, sni, sizeof(sni)) ? sni : NULL);
	SSL_set_ex_data(ssl, host_idx, (void *)h);
	if (h)
		SSL_set_session_id_context(ssl, table_client_auth_id(t, h),
		                           TABLE_CLIENT_AUTH_ID_LEN);
	return h;
}

/* nginx's verify callback: never fail the handshake; the verdict is read
 * from SSL_get_verify_result when a request comes. */
static int accept_any(int ok, X509_STORE_CTX *x)
{
	(void)ok;
	(void)x;
	return 1;
}

void client_cert_on_servername(SSL *ssl, const struct table *t)
{
	const struct route_host *h = SSL_get_ex_data(ssl, host_idx);
	X509_STORE *store = h ? table_ca_store(t, h) : NULL;
	if (!store) {
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
		return;
	}
	SSL_set_verify(ssl, SSL_VERIFY_PEER, accept_any);
	SSL_set_verify_depth(ssl, (int)h->client_auth.verify_depth);
	SSL_set1_verify_cert_store(ssl, store);
	/* A client that cannot be told the CA names still gets asked. */
	STACK_OF(X509_NAME) *names = table_ca_names(t, h);
	STACK_OF(X509_NAME) *copy = names ? SSL_dup_CA_list(names) : NULL;
	if (copy)
		SSL_set_client_CA_list(ssl, copy);
}

/* optional_no_ca lets a chain through whose only fault is an unknown or
 * self-signed issuer (nginx's ngx_ssl_verify_error_optional). */
static bool optional_error(long e)
{
	return e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
	       e == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
	       e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
	       e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
	       e == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE;
}

bool client_cert_header_name(const char *name, size_t len)
{
	static const char *const names[] = {"ssl-client-cert", "ssl-client-verify",
	                                    "ssl-client-subject-dn", "ssl-client-issuer-dn"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == len && strncasecmp(names[i], name, len) == 0)
			return true;
	return false;
}

static bool wants_cert(const struct route_host *h)
{
	return h && h->client_auth.ca >= 0 && h->client_auth.verify != ROUTE_VERIFY_OFF;
}

/* True when ssl's handshake was made for h: the ClientHello selected a host
 * of that name and the session (new or resumed) has h's settings. */
static bool handshake_for(SSL *ssl, const struct table *t, const struct route_host *h)
{
	const struct route_host *picked = SSL_get_ex_data(ssl, host_idx);
	if (!picked || strcmp(picked->name, h->name) != 0)
		return false;
	const SSL_SESSION *s = SSL_get0_session(ssl);
	unsigned int len = 0;
	const unsigned char *id = s ? SSL_SESSION_get0_id_context(s, &len) : NULL;
	return id && len == TABLE_CLIENT_AUTH_ID_LEN &&
	       memcmp(id, table_client_auth_id(t, h), len) == 0;
}

/* Subject or issuer DN as nginx's $ssl_client_s_dn: RFC 2253. NULL on
 * out-of-memory or when it could not be a header value; caller frees. */
static char *dn_text(const X509_NAME *name)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *out = NULL, *data;
	if (!b)
		return NULL;
	if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
		long n = BIO_get_mem_data(b, &data);
		out = n >= 0 ? strndup(data, (size_t)n) : NULL;
	}
	BIO_free(b);
	char why[8];
	if (out && route_validate_header_value(out, why, sizeof(why)) != 0) {
		free(out);
		out = NULL;
	}
	return out;
}

/* A 400 of nginx's 495/496, or the error page's 302 instead. */
static int refuse(const struct route_host *h, const char *text, char *extra, size_t cap,
                  const char **body)
{
	if (h->client_auth.error_page) {
		int n = snprintf(extra, cap, "Location: %s\r\n", h->client_auth.error_page);
		if (n > 0 && (size_t)n < cap) {
			*body = "";
			return 302;
		}
		extra[0] = '\0';
	}
	*body = text;
	return 400;
}

int client_cert_check(SSL *ssl, const struct table *t, const struct route_host *h,
                      const struct route *route, char *extra, size_t cap, const char **body)
{
	extra[0] = '\0';
	*body = NULL;
	if (!wants_cert(h))
		return 0;
	const struct route_client_auth *a = &h->client_auth;
	X509 *peer = NULL;
	if (!ssl) {
		/* Plain HTTP never carries a certificate; the HTTPS redirect
		 * comes first when the route has one. */
		if (route && route->policy->ssl_redirect)
			return 0;
	} else if (!handshake_for(ssl, t, h)) {
		/* nginx: a Host other than the SNI, on a server that verifies
		 * client certificates. */
		if (SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) {
			*body = "Misdirected Request";
			return 421;
		}
	} else {
		peer = SSL_get0_peer_certificate(ssl);
		long vr = SSL_get_verify_result(ssl);
		if (peer && vr != X509_V_OK &&
		    !(a->verify == ROUTE_VERIFY_OPTIONAL_NO_CA && optional_error(vr)))
			return refuse(h, "The SSL certificate error", extra, cap, body);
	}
	if (!peer && a->verify == ROUTE_VERIFY_ON)
		return refuse(h, "No required SSL certificate was sent", extra, cap, body);
	if (a->match_cn) {
		/* nginx compares the subject DN, "" without a certificate. */
		char *dn = peer ? dn_text(X509_get_subject_name(peer)) : NULL;
		int m = table_match_cn(t, h, dn ? dn : "", dn ? strlen(dn) : 0);
		free(dn);
		if (m == WEIR_ENOMEM) {
			*body = "out of memory";
			return 503;
		}
		if (m == 0) {
			*body = "client certificate unauthorized";
			return 403;
		}
	}
	return 0;
}

/* Append "name: value\r\n" to a growing string; false on out-of-memory. */
static bool add_line(char **s, size_t *len, const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 4;
	char *g = realloc(*s, *len + n + 1);
	if (!g)
		return false;
	*s = g;
	*len += (size_t)snprintf(g + *len, n + 1, "%s: %s\r\n", name, value);
	return true;
}

/* nginx's $ssl_client_escaped_cert: the PEM with every byte but ALPHA,
 * DIGIT and "-._~" percent-encoded. NULL on out-of-memory. */
static char *escaped_pem(X509 *x)
{
	static const char hex[] = "0123456789ABCDEF";
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	if (!b)
		return NULL;
	if (PEM_write_bio_X509(b, x) == 1) {
		long n = BIO_get_mem_data(b, &data);
		out = n >= 0 ? malloc((size_t)n * 3 + 1) : NULL;
		if (out) {
			size_t o = 0;
			for (long i = 0; i < n; i++) {
				unsigned char ch = (unsigned char)data[i];
				if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' ||
				    ch == '~') {
					out[o++] = (char)ch;
				} else {
					out[o++] = '%';
					out[o++] = hex[ch >> 4];
					out[o++] = hex[ch & 15];
				}
			}
			out[o] = '\0';
		}
	}
	BIO_free(b);
	return out;
}

int client_cert_headers(SSL *ssl, const struct table *t, const struct route_host *h, char **out)
{
	*out = NULL;
	if (!wants_cert(h))
		return 0;
	char *s = NULL, *subject = NULL, *issuer = NULL, *pem = NULL;
	size_t len = 0;
	char verify[160] = "NONE";
	X509 *peer = ssl && handshake_for(ssl, t, h) ? SSL_get0_peer_certificate(ssl) : NULL;
	bool ok = false;
	if (peer) {
		long vr = SSL_get_verify_result(ssl);
		if (vr == X509_V_OK)
			snprintf(verify, sizeof(verify), "SUCCESS");
		else
			snprintf(verify, sizeof(verify), "FAILED:%s",
			         X509_verify_cert_error_string(vr));
		subject = dn_text(X509_get_subject_name(peer));
		issuer = dn_text(X509_get_issuer_name(peer));
		if (h->client_auth.pass_certificate && !(pem = escaped_pem(peer)))
			goto out;
	}
	if ((pem && !add_line(&s, &len, "ssl-client-cert", pem)) ||
	    !add_line(&s, &len, "ssl-client-verify", verify) ||
	    (subject && *subject && !add_line(&s, &len, "ssl-client-subject-dn", subject)) ||
	    (issuer && *issuer && !add_line(&s, &len, "ssl-client-issuer-dn", issuer)))
		goto out;
	*out = s;
	s = NULL;
	ok = true;
out:
	free(s);
	free(subject);
	free(issuer);
	free(pem);
	return ok ? 0 : WEIR_ENOMEM;
}
