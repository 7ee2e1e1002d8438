/* proxy/backend_tls.c - client TLS contexts for HTTPS upstreams. */
#include "backend_tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "route_validate.h"
#include "table_cache.h"
#include "tls.h"

struct backend_tls_set {
	size_t n;
	SSL_CTX **ctx;                    /* borrowed from entry */
	struct table_cache_entry **entry; /* the shared contexts */
	char (*id)[BACKEND_TLS_ID_LEN];
	bool *verify;
};

void backend_tls_set_free(struct backend_tls_set *set)
{
	if (!set)
		return;
	table_cache_put(set->entry, set->n);
	free(set->entry);
	free(set->ctx);
	free(set->id);
	free(set->verify);
	free(set);
}

static void ssl_ctx_free_cb(void *ctx)
{
	SSL_CTX_free(ctx);
}

/* Each field with its length first, so no two profiles hash alike unless
 * they are equal. */
static void hash_field(EVP_MD_CTX *md, const char *s)
{
	size_t n = s ? strlen(s) + 1 : 0;
	EVP_DigestUpdate(md, &n, sizeof(n));
	if (s)
		EVP_DigestUpdate(md, s, n);
}

static int profile_id(const struct route_backend_tls_profile *b, char *out)
{
	unsigned char d[32];
	unsigned len = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return WEIR_ENOMEM;
	}
	unsigned char flags[5] = {b->verify, (unsigned char)(b->verify_depth >> 24),
	                          (unsigned char)(b->verify_depth >> 16),
	                          (unsigned char)(b->verify_depth >> 8),
	                          (unsigned char)b->verify_depth};
	EVP_DigestUpdate(md, flags, sizeof(flags));
	hash_field(md, b->protocols);
	hash_field(md, b->ciphers);
	hash_field(md, b->ca_pem);
	hash_field(md, b->cert_pem);
	hash_field(md, b->key_pem);
	int ok = EVP_DigestFinal_ex(md, d, &len);
	EVP_MD_CTX_free(md);
	if (ok != 1)
		return WEIR_ENOMEM;
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
	return 0;
}

int backend_tls_set_new(const struct route_table *rt, struct backend_tls_set **out, char *err,
                        size_t errlen)
{
	int rc = WEIR_ENOMEM;
	*out = NULL;
	if (rt->nbackend_tls == 0)
		return 0;
	struct backend_tls_set *set = calloc(1, sizeof(*set));
	if (!set)
		goto oom;
	set->ctx = calloc(rt->nbackend_tls, sizeof(*set->ctx));
	set->entry = calloc(rt->nbackend_tls, sizeof(*set->entry));
	set->id = calloc(rt->nbackend_tls, sizeof(*set->id));
	set->verify = calloc(rt->nbackend_tls, sizeof(*set->verify));
	if (!set->ctx || !set->entry || !set->id || !set->verify)
		goto oom;
	static const unsigned char alpn[] = "\x08http/1.1";
	for (size_t i = 0; i < rt->nbackend_tls; i++) {
		const struct route_backend_tls_profile *b = &rt->backend_tls[i];
		char field[32], why[400];
		unsigned char key[TABLE_CACHE_KEY_LEN];
		if ((rc = profile_id(b, set->id[i])) != 0)
			goto oom;
		const char *fields[] = {"backend-tls", set->id[i]};
		if (table_cache_key(key, 2, fields) != 0)
			goto oom;
		set->verify[i] = b->verify;
		/* A profile a live table has already built (same content, same
		 * id) shares that context. */
		struct table_cache_entry *e = table_cache_find(TABLE_CACHE_BACKEND_TLS, key);
		if (!e) {
			SSL_CTX *ctx = NULL;
			rc = route_validate_backend_tls_ctx(b, &ctx, field, sizeof(field), why,
			                                    sizeof(why));
			if (rc != 0) {
				snprintf(err, errlen, "backend_tls[%zu].%s: %s", i, field, why);
				goto fail;
			}
			SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
			SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
			e = table_cache_add(TABLE_CACHE_BACKEND_TLS, key, ctx, ssl_ctx_free_cb);
			if (!e)
				goto oom;
		}
		set->entry[i] = e;
		set->ctx[i] = table_cache_object(e);
		set->n = i + 1;
	}
	*out = set;
	return 0;
oom:
	rc = WEIR_ENOMEM;
	snprintf(err, errlen, "out of memory");
fail:
	backend_tls_set_free(set);
	return rc;
}

void backend_tls_profile(const struct backend_tls_set *set, int i, SSL_CTX **ctx, const char **id)
{
	*ctx = NULL;
	*id = "";
	if (!set || i < 0 || (size_t)i >= set->n)
		return;
	*ctx = set->ctx[i];
	*id = set->id[i];
}

bool backend_tls_verifies(const struct backend_tls_set *set, int i)
{
	return set && i >= 0 && (size_t)i < set->n && set->verify[i];
}

static bool is_ip(const char *s)
{
	unsigned char a[16];
	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

void backend_tls_name(const struct route_backend_tls *bt, const char *host, size_t host_len,
                      const char *address, char *out, size_t cap)
{
	out[0] = '\0';
	if (bt && bt->name) {
		snprintf(out, cap, "%s", bt->name);
		return;
	}
	if (host && host_len) {
		/* Drop the port: "[v6]:port", "[v6]", "name:port". */
		const char *h = host;
		size_t n = host_len;
		if (h[0] == '[') {
			const char *close = memchr(h, ']', n);
			if (!close)
				return;
			h++;
			n = (size_t)(close - h);
		} else {
			const char *colon = memchr(h, ':', n);
			if (colon)
				n = (size_t)(colon - h);
		}
		if (n && h[n - 1] == '.')
			n--;
		if (n == 0 || n >= cap)
			return;
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)h[i];
			if (!(isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == ':')) {
				out[0] = '\0';
				return;
			}
			out[i] = (char)tolower(ch);
		}
		out[n] = '\0';
		return;
	}
	if (address)
		snprintf(out, cap, "%s", address);
}

SSL *backend_tls_client_new(const struct backend_tls_target *t, int fd)
{
	if (!t->ctx)
		return tls_client_new(fd, t->sni && !is_ip(t->sni) ? t->sni : NULL);
	SSL *ssl = SSL_new(t->ctx);
	if (!ssl)
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1)
		goto fail;
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                      SSL_MODE_RELEASE_BUFFERS);
	if (t->sni && !is_ip(t->sni) && SSL_set_tlsext_host_name(ssl, t->sni) != 1)
		goto fail;
	if (t->name) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
		/* No partial wildcards ("f*.example.com"), as browsers. */
		X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		int ok = is_ip(t->name) ? X509_VERIFY_PARAM_set1_ip_asc(vp, t->name)
		                        : X509_VERIFY_PARAM_set1_host(vp, t->name, 0);
		if (ok != 1)
			goto fail;
	}
	SSL_set_connect_state(ssl);
	return ssl;
fail:
	SSL_free(ssl);
	return NULL;
}

void backend_tls_failure(SSL *ssl, char *buf, size_t cap)
{
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	unsigned long e = ERR_peek_last_error();
	if (v != X509_V_OK)
		snprintf(buf, cap, "certificate verify failed: %s",
		         X509_verify_cert_error_string(v));
	else if (e)
		ERR_error_string_n(e, buf, cap);
	else
		snprintf(buf, cap, "connection closed");
}
