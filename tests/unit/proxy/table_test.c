/* The loaded route table: Kubernetes path matching (every row of the
 * documentation's examples table), regex captures, host precedence, SNI
 * certificate choice with real certificates and handshakes, refusals of bad
 * regexes and mismatched keys, reference counting and concurrent readers of
 * the current table while new ones are published. */
#include "check.h"
#include "common/error.h"
#include "proxy/balancer.h"
#include "proxy/table.h"
#include "proxy/tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* s begins with the string literal lit. */
#define STARTS_WITH(s, lit) (strncmp((s), lit, sizeof(lit) - 1) == 0)

static struct table *mk(const char *json)
{
	struct route_table *rt = NULL;
	struct table *t = NULL;
	char err[512] = "";
	int rc = route_table_parse(json, strlen(json), &rt, err, sizeof(err));
	CHECK_INT(rc, 0);
	if (rc == 0) {
		rc = table_new(rt, &t, err, sizeof(err));
		CHECK_INT(rc, 0);
	}
	if (rc != 0)
		fprintf(stderr, "  mk: %s\n", err);
	return t;
}

/* Which route of a one-host table (host "") matches path: "exact:/foo",
 * "prefix:/aaa", "regex:..." or "none". routes is the JSON array body. */
static const char *which(const char *routes, const char *path)
{
	static char out[256];
	char json[2048];
	snprintf(json, sizeof(json), "{\"version\":1,\"hosts\":[{\"name\":\"\",\"routes\":[%s]}]}",
	         routes);
	struct table *t = mk(json);
	if (!t)
		return "error";
	struct table_match m;
	int rc = table_lookup(t, "example.com", 11, path, strlen(path), &m);
	if (rc == 0) {
		static const char *kinds[] = {"exact", "prefix", "regex"};
		snprintf(out, sizeof(out), "%s:%s", kinds[m.route->match], m.route->path);
	} else {
		CHECK_INT(rc, WEIR_ENOENT);
		CHECK(m.route == NULL);
		snprintf(out, sizeof(out), "none");
	}
	table_unref(t);
	return out;
}

#define P(x) "{\"path\":\"" x "\",\"match\":\"prefix\"}"
#define E(x) "{\"path\":\"" x "\",\"match\":\"exact\"}"
#define R(x) "{\"path\":\"" x "\",\"match\":\"regex\"}"

static void test_kubernetes_examples(void)
{
	/* Prefix "/" matches every path. */
	CHECK_STR(which(P("/"), "/"), "prefix:/");
	CHECK_STR(which(P("/"), "/anything/at/all"), "prefix:/");
	/* Exact "/foo". */
	CHECK_STR(which(E("/foo"), "/foo"), "exact:/foo");
	CHECK_STR(which(E("/foo"), "/bar"), "none");
	CHECK_STR(which(E("/foo"), "/foo/"), "none");
	CHECK_STR(which(E("/foo"), "/FOO"), "none");
	/* Exact "/foo/". */
	CHECK_STR(which(E("/foo/"), "/foo"), "none");
	CHECK_STR(which(E("/foo/"), "/foo/"), "exact:/foo/");
	/* Prefix "/foo" and "/foo/": trailing slash ignored on both sides. */
	CHECK_STR(which(P("/foo"), "/foo"), "prefix:/foo");
	CHECK_STR(which(P("/foo"), "/foo/"), "prefix:/foo");
	CHECK_STR(which(P("/foo/"), "/foo"), "prefix:/foo/");
	CHECK_STR(which(P("/foo/"), "/foo/"), "prefix:/foo/");
	/* Element-wise. */
	CHECK_STR(which(P("/aaa/bb"), "/aaa/bbb"), "none");
	CHECK_STR(which(P("/aaa/bbb"), "/aaa/bbb"), "prefix:/aaa/bbb");
	CHECK_STR(which(P("/aaa/bbb/"), "/aaa/bbb"), "prefix:/aaa/bbb/");
	CHECK_STR(which(P("/aaa/bbb"), "/aaa/bbb/"), "prefix:/aaa/bbb");
	CHECK_STR(which(P("/aaa/bbb"), "/aaa/bbb/ccc"), "prefix:/aaa/bbb");
	CHECK_STR(which(P("/aaa/bbb"), "/aaa/bbbxyz"), "none");
	CHECK_STR(which(P("/aaa/bbb"), "/aaa"), "none");
	/* Several paths, in the controller's order (longest first). */
	CHECK_STR(which(P("/aaa") "," P("/"), "/aaa/ccc"), "prefix:/aaa");
	CHECK_STR(which(P("/aaa/bbb") "," P("/aaa") "," P("/"), "/aaa/bbb"), "prefix:/aaa/bbb");
	CHECK_STR(which(P("/aaa") "," P("/"), "/ccc"), "prefix:/");
	CHECK_STR(which(P("/aaa"), "/ccc"), "none");
	/* Exact before Prefix on a tie. */
	CHECK_STR(which(E("/foo") "," P("/foo"), "/foo"), "exact:/foo");
	CHECK_STR(which(E("/foo") "," P("/foo"), "/foo/bar"), "prefix:/foo");
}

static void test_regex(void)
{
	struct table *t =
	    mk("{\"version\":1,\"hosts\":[{\"name\":\"\",\"routes\":["
	       "{\"path\":\"/user/([^/]+)/api/kernels/([^/]+)/channels\","
	       "\"match\":\"regex\"},"
	       "{\"path\":\"/(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)\",\"match\":\"regex\"},"
	       "{\"path\":\"/opt(ional)?/x\",\"match\":\"regex\"}]}]}");
	if (!t)
		return;
	struct table_match m;
	const char *p = "/USER/bob/api/kernels/k-1/channels";
	CHECK_INT(table_lookup(t, NULL, 0, p, strlen(p), &m), 0);
	CHECK(m.route == &table_routes(t)->hosts[0].routes[0]);
	CHECK_INT(m.ncaptures, 3);
	CHECK_INT(m.cap_off[0], 0);
	CHECK_INT(m.cap_len[0], strlen(p));
	CHECK_INT(m.cap_len[1], 3);
	CHECK(memcmp(p + m.cap_off[1], "bob", 3) == 0);
	CHECK_INT(m.cap_len[2], 3);
	CHECK(memcmp(p + m.cap_off[2], "k-1", 3) == 0);
	/* Anchored at the start, open at the end (an nginx "~*" location). */
	p = "/user/bob/api/kernels/k/channels/more";
	CHECK_INT(table_lookup(t, NULL, 0, p, strlen(p), &m), 0);
	p = "/x/user/bob/api/kernels/k/channels";
	CHECK_INT(table_lookup(t, NULL, 0, p, strlen(p), &m), WEIR_ENOENT);
	CHECK_INT(m.ncaptures, 0);
	/* A path slice (no NUL at path_len) is honoured. */
	p = "/user/bob/api/kernels/k/channelsXYZ";
	CHECK_INT(table_lookup(t, NULL, 0, p, strlen(p) - 4, &m), WEIR_ENOENT);
	/* More groups than slots: the first ten are reported. */
	p = "/abcdefghijk";
	CHECK_INT(table_lookup(t, NULL, 0, p, strlen(p), &m), 0);
	CHECK_INT(m.ncaptures, 10);
	CHECK_INT(m.cap_off[9], 9);
	CHECK_INT(m.cap_len[9], 1);
	/* An unset group is empty. */
	p = "/opt/x";
	CHECK_INT(table_lookup(t, NULL, 0, p, strlen(p), &m), 0);
	CHECK_INT(m.ncaptures, 2);
	CHECK_INT(m.cap_len[1], 0);
	table_unref(t);
}

static const char *host_of(const struct table *t, const char *host, int *rc)
{
	struct table_match m;
	*rc = table_lookup(t, host, host ? strlen(host) : 0, "/x", 2, &m);
	return m.host ? m.host->name : "(none)";
}

static void test_hosts(void)
{
	struct table *t =
	    mk("{\"version\":1,\"hosts\":["
	       "{\"name\":\"\",\"routes\":[" P(
	           "/") "]},"
	                "{\"name\":\"*.foo.com\",\"routes\":[" P(
	                    "/") "]},"
	                         "{\"name\":\"a.foo.com\",\"routes\":[" P(
	                             "/") "]},"
	                                  "{\"name\":\"foo.bar.com\",\"routes\":[" P(
	                                      "/") "]},"
	                                           "{\"name\":\"only.exact.com\",\"routes\":[" E(
	                                               "/y") "]}]}");
	if (!t)
		return;
	int rc;
	CHECK_STR(host_of(t, "foo.bar.com", &rc), "foo.bar.com");
	CHECK_STR(host_of(t, "FOO.Bar.COM", &rc), "foo.bar.com");
	CHECK_STR(host_of(t, "foo.bar.com:8080", &rc), "foo.bar.com");
	CHECK_STR(host_of(t, "foo.bar.com.", &rc), "foo.bar.com");
	CHECK_STR(host_of(t, "bar.foo.com", &rc), "*.foo.com");
	CHECK_STR(host_of(t, "Bar.Foo.Com:443", &rc), "*.foo.com");
	CHECK_STR(host_of(t, "baz.bar.foo.com", &rc), "");
	CHECK_STR(host_of(t, "foo.com", &rc), "");
	CHECK_STR(host_of(t, ".foo.com", &rc), "");
	/* Exact beats wildcard beats catch-all. */
	CHECK_STR(host_of(t, "a.foo.com", &rc), "a.foo.com");
	CHECK_STR(host_of(t, "b.foo.com", &rc), "*.foo.com");
	CHECK_STR(host_of(t, "elsewhere.org", &rc), "");
	CHECK_STR(host_of(t, NULL, &rc), "");
	CHECK_STR(host_of(t, "", &rc), "");
	CHECK_STR(host_of(t, "[::1]:8080", &rc), "");
	CHECK_STR(host_of(t, "127.0.0.1:8080", &rc), "");
	CHECK_INT(rc, 0);
	/* The host matched but none of its routes: no fall-back to "". */
	CHECK_STR(host_of(t, "only.exact.com", &rc), "only.exact.com");
	CHECK_INT(rc, WEIR_ENOENT);
	/* A host value longer than any name only reaches "". */
	char longhost[400];
	memset(longhost, 'a', sizeof(longhost) - 1);
	longhost[sizeof(longhost) - 1] = '\0';
	CHECK_STR(host_of(t, longhost, &rc), "");
	table_unref(t);

	/* Without a "" host an unknown name matches nothing. */
	t = mk("{\"version\":1,\"hosts\":[{\"name\":\"a.b\",\"routes\":[" P("/") "]}]}");
	if (!t)
		return;
	CHECK_STR(host_of(t, "c.d", &rc), "(none)");
	CHECK_INT(rc, WEIR_ENOENT);
	CHECK_STR(host_of(t, NULL, &rc), "(none)");
	CHECK_STR(host_of(t, "A.B:1", &rc), "a.b");
	CHECK_INT(rc, 0);
	table_unref(t);
}

static void test_backends_and_passthrough(void)
{
	struct table *t = mk("{\"version\":1,\"backends\":[{\"name\":\"a\",\"endpoints\":["
	                     "{\"address\":\"10.0.0.1\",\"port\":1},"
	                     "{\"address\":\"10.0.0.2\",\"port\":1},"
	                     "{\"address\":\"10.0.0.3\",\"port\":1}]},{\"name\":\"b\"}],"
	                     "\"passthrough\":[{\"host\":\"gocd.example.com\",\"backend\":1}]}");
	if (!t)
		return;
	/* round robin in endpoint order (ssl-passthrough uses it too) */
	CHECK_INT(balancer_round_robin(t, 0), 0);
	CHECK_INT(balancer_round_robin(t, 0), 1);
	CHECK_INT(balancer_round_robin(t, 0), 2);
	CHECK_INT(balancer_round_robin(t, 0), 0);
	CHECK_INT(balancer_round_robin(t, 1), -1); /* no endpoints */
	CHECK_INT(balancer_round_robin(t, 2), -1);
	CHECK_INT(balancer_round_robin(t, -1), -1);
	CHECK_INT(table_passthrough_backend(t, "gocd.example.com"), 1);
	CHECK_INT(table_passthrough_backend(t, "GOCD.example.com"), 1);
	CHECK_INT(table_passthrough_backend(t, "x.example.com"), -1);
	CHECK_INT(table_passthrough_backend(t, NULL), -1);
	CHECK(table_ssl_ctx(t, "gocd.example.com") == NULL);
	table_unref(t);
}

/* ---------------------------------------------------------------- TLS */

static char *bio_string(BIO *b)
{
	char *p;
	long n = BIO_get_mem_data(b, &p);
	char *s = malloc((size_t)n + 1);
	memcpy(s, p, (size_t)n);
	s[n] = '\0';
	return s;
}

/* A fresh self-signed P-256 certificate for cn, as PEM. */
static void make_cert(const char *cn, char **cert_pem, char **key_pem)
{
	static long serial = 1;
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, n);
	X509_sign(x, k, EVP_sha256());
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(b, x);
	*cert_pem = bio_string(b);
	BIO_free(b);
	b = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	*key_pem = bio_string(b);
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(k);
}

/* The CN of the certificate an SSL_CTX serves, or "(null)". */
static const char *ctx_cn(SSL_CTX *ctx)
{
	static char cn[128];
	if (!ctx)
		return "(null)";
	X509 *x = SSL_CTX_get0_certificate(ctx);
	if (!x)
		return "(no cert)";
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
	return cn;
}

/* A table with two certs: cert 0 for a.example.com, cert 1 for
 * *.wild.com; keys may be swapped to make a mismatch. */
static struct route_table *tls_table(char *pem[2][2], bool swap_keys, int default_cert)
{
	struct route_table *rt = route_table_new();
	rt->ncerts = 2;
	rt->certs = calloc(2, sizeof(*rt->certs));
	for (int i = 0; i < 2; i++) {
		rt->certs[i].name = strdup(i ? "ns/wild" : "ns/a");
		rt->certs[i].cert_pem = strdup(pem[i][0]);
		rt->certs[i].key_pem = strdup(pem[swap_keys ? 1 - i : i][1]);
	}
	rt->nhosts = 3;
	rt->hosts = calloc(3, sizeof(*rt->hosts));
	rt->hosts[0].name = strdup("a.example.com");
	rt->hosts[0].cert = 0;
	rt->hosts[1].name = strdup("*.wild.com");
	rt->hosts[1].cert = 1;
	rt->hosts[2].name = strdup("plain.wild.com");
	rt->hosts[2].cert = -1;
	rt->default_cert = default_cert;
	return rt;
}

/* Handshake in memory with the server context; returns the ALPN protocol
 * chosen ("" when none) or NULL when the handshake failed. */
static const char *handshake(SSL_CTX *server_ctx, const unsigned char *alpn, unsigned alpn_len,
                             int client_max_version)
{
	static char proto[32];
	const char *result = NULL;
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
	if (client_max_version) {
		SSL_CTX_set_min_proto_version(cctx, TLS1_VERSION);
		SSL_CTX_set_max_proto_version(cctx, client_max_version);
		SSL_CTX_set_security_level(cctx, 0);
		SSL_CTX_set_cipher_list(cctx, "ALL:@SECLEVEL=0");
	}
	if (alpn)
		SSL_CTX_set_alpn_protos(cctx, alpn, alpn_len);
	SSL *c = SSL_new(cctx), *s = SSL_new(server_ctx);
	BIO *cb, *sb;
	BIO_new_bio_pair(&cb, 0, &sb, 0);
	SSL_set_bio(c, cb, cb);
	SSL_set_bio(s, sb, sb);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	bool cdone = false, sdone = false, failed = false;
	for (int i = 0; i < 100 && !(cdone && sdone) && !failed; i++) {
		if (!cdone) {
			int r = SSL_do_handshake(c);
			if (r == 1)
				cdone = true;
			else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
				failed = true;
		}
		if (!sdone && !failed) {
			int r = SSL_do_handshake(s);
			if (r == 1)
				sdone = true;
			else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
				failed = true;
		}
	}
	if (cdone && sdone) {
		const unsigned char *p = NULL;
		unsigned len = 0;
		SSL_get0_alpn_selected(s, &p, &len);
		snprintf(proto, sizeof(proto), "%.*s", (int)len, p ? (const char *)p : "");
		result = proto;
	}
	ERR_clear_error();
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
	return result;
}

static void test_tls(void)
{
	char *pem[2][2];
	make_cert("a.example.com", &pem[0][0], &pem[0][1]);
	make_cert("*.wild.com", &pem[1][0], &pem[1][1]);

	struct table *t = NULL;
	char err[512] = "";
	int rc = table_new(tls_table(pem, false, 1), &t, err, sizeof(err));
	CHECK_INT(rc, 0);
	if (rc == 0) {
		CHECK_STR(ctx_cn(table_ssl_ctx(t, "a.example.com")), "a.example.com");
		CHECK_STR(ctx_cn(table_ssl_ctx(t, "A.Example.COM")), "a.example.com");
		CHECK_STR(ctx_cn(table_ssl_ctx(t, "x.wild.com")), "*.wild.com");
		/* An exact host without its own cert: the wildcard's. */
		CHECK_STR(ctx_cn(table_ssl_ctx(t, "plain.wild.com")), "*.wild.com");
		CHECK_STR(ctx_cn(table_ssl_ctx(t, "y.x.wild.com")), "*.wild.com"); /* default */
		CHECK_STR(ctx_cn(table_ssl_ctx(t, "other.org")), "*.wild.com");    /* default */
		CHECK_STR(ctx_cn(table_ssl_ctx(t, NULL)), "*.wild.com");

		SSL_CTX *ctx = table_ssl_ctx(t, "a.example.com");
		static const unsigned char h2_h11[] = "\x02h2\x08http/1.1";
		static const unsigned char h2_only[] = "\x02h2";
		static const unsigned char h11_only[] = "\x08http/1.1";
		CHECK_STR(handshake(ctx, h2_h11, sizeof(h2_h11) - 1, 0), "h2");
		CHECK_STR(handshake(ctx, NULL, 0, 0), "");
		CHECK_STR(handshake(ctx, h2_only, sizeof(h2_only) - 1, 0), "h2");
		CHECK_STR(handshake(ctx, h11_only, sizeof(h11_only) - 1, 0), "http/1.1");
		/* The selection asks the connection's table (the SSL's slot). */
		const unsigned char *sel = NULL;
		unsigned char sel_len = 0;
		SSL *ssl = SSL_new(ctx);
		struct table *slot = t;
		SSL_set_app_data(ssl, &slot);
		CHECK_INT(tls_alpn_select(ssl, &sel, &sel_len, h2_h11, sizeof(h2_h11) - 1, NULL),
		          SSL_TLSEXT_ERR_OK);
		CHECK_INT(sel_len, 2);
		struct table *t_off = NULL;
		struct route_table *off = tls_table(pem, false, 1);
		off->settings.use_http2 = false;
		CHECK_INT(table_new(off, &t_off, err, sizeof(err)), 0);
		slot = t_off;
		CHECK_INT(tls_alpn_select(ssl, &sel, &sel_len, h2_h11, sizeof(h2_h11) - 1, NULL),
		          SSL_TLSEXT_ERR_OK);
		CHECK_INT(sel_len, 8);
		CHECK_INT(tls_alpn_select(ssl, &sel, &sel_len, h2_only, sizeof(h2_only) - 1, NULL),
		          SSL_TLSEXT_ERR_NOACK);
		SSL_free(ssl);
		table_unref(t_off);
		CHECK_STR(handshake(ctx, NULL, 0, TLS1_2_VERSION), "");
		CHECK(handshake(ctx, NULL, 0, TLS1_1_VERSION) == NULL);
		table_unref(t);
	} else {
		fprintf(stderr, "  tls table: %s\n", err);
	}

	/* No default cert: unknown names get NULL (the built-in one). */
	t = NULL;
	rc = table_new(tls_table(pem, false, -1), &t, err, sizeof(err));
	CHECK_INT(rc, 0);
	if (rc == 0) {
		CHECK(table_ssl_ctx(t, "other.org") == NULL);
		CHECK(table_ssl_ctx(t, NULL) == NULL);
		CHECK_STR(ctx_cn(table_ssl_ctx(t, "a.example.com")), "a.example.com");
		table_unref(t);
	}

	/* A key that does not belong to its certificate refuses the table. */
	t = NULL;
	rc = table_new(tls_table(pem, true, -1), &t, err, sizeof(err));
	CHECK_INT(rc, WEIR_ETLS);
	CHECK(t == NULL);
	CHECK_STR(err, "certs[0].key_pem: private key does not match the certificate (ns/a)");

	/* Garbage PEM. */
	struct route_table *rt = tls_table(pem, false, -1);
	free(rt->certs[1].cert_pem);
	rt->certs[1].cert_pem =
	    strdup("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n");
	rc = table_new(rt, &t, err, sizeof(err));
	CHECK_INT(rc, WEIR_ETLS);
	CHECK(STARTS_WITH(err, "certs[1].cert_pem: bad certificate (ns/wild): "));
	rt = tls_table(pem, false, -1);
	free(rt->certs[0].key_pem);
	rt->certs[0].key_pem = strdup("");
	rc = table_new(rt, &t, err, sizeof(err));
	CHECK_INT(rc, WEIR_ETLS);
	CHECK(STARTS_WITH(err, "certs[0].key_pem: bad private key (ns/a): "));

	for (int i = 0; i < 2; i++) {
		free(pem[i][0]);
		free(pem[i][1]);
	}
}

static void test_refusals(void)
{
	const char *json = "{\"version\":1,\"hosts\":[{\"name\":\"a\"},{\"name\":\"b\",\"routes\":["
	                   "{\"path\":\"/ok\",\"match\":\"regex\"},"
	                   "{\"path\":\"/user/(unclosed\",\"match\":\"regex\"}]}]}";
	struct route_table *rt = NULL;
	struct table *t = NULL;
	char err[512] = "";
	CHECK_INT(route_table_parse(json, strlen(json), &rt, err, sizeof(err)), 0);
	if (!rt)
		return;
	CHECK_INT(table_new(rt, &t, err, sizeof(err)), WEIR_EINVAL);
	CHECK(t == NULL);
	CHECK(STARTS_WITH(err, "hosts[1].routes[1].path: bad regex: "));
	CHECK(strstr(err, "at offset 15") != NULL);
}

/* table_load from a directory: the error line names the file. */
static void test_load(void)
{
	char dir[] = "/tmp/weir-table-test-XXXXXX";
	char path[128], err[512];
	struct table *t = NULL;
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/routes.json", dir);
	CHECK_INT(table_load(dir, &t, err, sizeof(err)), WEIR_ENOENT);
	CHECK(STARTS_WITH(err, "routes.json: "));

	FILE *f = fopen(path, "w");
	fputs("{\"version\":1,\"generation\":5,\"hosts\":[{\"name\":\"a.b\",\"routes\":[" P(
	          "/") "]}]}",
	      f);
	fclose(f);
	CHECK_INT(table_load(dir, &t, err, sizeof(err)), 0);
	if (t) {
		CHECK_INT(table_routes(t)->generation, 5);
		table_unref(t);
	}
	f = fopen(path, "w");
	fputs("{\"version\":1,\"hosts\":[{\"routes\":[" R("(") "]}]}", f);
	fclose(f);
	t = NULL;
	CHECK_INT(table_load(dir, &t, err, sizeof(err)), WEIR_EINVAL);
	CHECK(t == NULL);
	CHECK(STARTS_WITH(err, "routes.json: hosts[0].routes[0].path: bad regex: "));
	f = fopen(path, "w");
	fputs("{\"version\":3}", f);
	fclose(f);
	CHECK_INT(table_load(dir, &t, err, sizeof(err)), WEIR_EVERSION);
	CHECK_STR(err, "routes.json: version: unsupported version 3 (want 1 or 2)");
	unlink(path);
	rmdir(dir);
}

static struct table *gen_table(unsigned gen)
{
	char json[512];
	snprintf(json, sizeof(json),
	         "{\"version\":1,\"generation\":%u,\"backends\":[{}],\"hosts\":[{\"name\":\"\","
	         "\"routes\":[{\"path\":\"/g%u\",\"match\":\"prefix\",\"backend\":0},"
	         "{\"path\":\"/r/(.*)\",\"match\":\"regex\"}]}]}",
	         gen, gen);
	return mk(json);
}

static void test_refcount(void)
{
	CHECK(!table_ready());
	CHECK(table_current() == NULL);
	CHECK_INT(table_current_generation(), 0);
	struct table *t1 = gen_table(1);
	if (!t1)
		return;
	table_publish(t1);
	CHECK(table_ready());
	CHECK_INT(table_current_generation(), 1);
	struct table *held = table_current();
	CHECK(held == t1);
	table_publish(gen_table(2));
	CHECK_INT(table_current_generation(), 2);
	/* The old table is still whole while referenced (ASan would object). */
	struct table_match m;
	CHECK_INT(table_lookup(held, NULL, 0, "/g1/x", 5, &m), 0);
	CHECK_STR(m.route->path, "/g1");
	CHECK_INT(table_routes(held)->generation, 1);
	table_unref(held);
	struct table *cur = table_current();
	CHECK(cur != NULL && cur != held);
	if (cur) {
		CHECK_INT(table_routes(cur)->generation, 2);
		table_unref(cur);
	}
	table_unref(NULL);
}

/* A view follows every publish and keeps the table it saw alive, and only
 * that one: ASan reports a use after free or a leak otherwise. */
static void test_view(void)
{
	struct table_view v = {NULL, 0};
	struct table *a = table_view_get(&v);
	CHECK(a != NULL && a == v.t);
	uint64_t g = a ? table_routes(a)->generation : 0;
	struct table *b = table_view_get(&v);
	CHECK(b == a);
	table_unref(a);
	table_unref(b);
	table_publish(gen_table(g + 1));
	/* The global dropped its reference; the view still holds the old one. */
	CHECK_INT(table_routes(v.t)->generation, g);
	struct table *c = table_view_get(&v);
	CHECK(c != NULL && c == v.t);
	if (c) {
		CHECK_INT(table_routes(c)->generation, g + 1);
		table_unref(c);
	}
	table_view_cleanup(&v);
	CHECK(v.t == NULL);
	table_view_cleanup(&v);
}

static atomic_bool stop_readers;
static atomic_long reads;

/* arg non-NULL: read through a per-thread table_view, as workers do. */
static void *reader(void *arg)
{
	long bad = 0;
	struct table_view view = {NULL, 0};
	while (!atomic_load(&stop_readers)) {
		struct table *t = arg ? table_view_get(&view) : table_current();
		if (!t) {
			bad++;
			continue;
		}
		char path[32];
		uint64_t gen = table_routes(t)->generation;
		snprintf(path, sizeof(path), "/g%llu/x", (unsigned long long)gen);
		struct table_match m;
		if (table_lookup(t, "h", 1, path, strlen(path), &m) != 0 ||
		    m.route != &table_routes(t)->hosts[0].routes[0])
			bad++;
		if (table_lookup(t, "h", 1, "/r/abc", 6, &m) != 0 || m.ncaptures != 2 ||
		    m.cap_len[1] != 3)
			bad++;
		balancer_round_robin(t, 0);
		table_unref(t);
		atomic_fetch_add(&reads, 1);
	}
	table_view_cleanup(&view);
	return (void *)bad;
}

static void test_concurrent(void)
{
	pthread_t th[4];
	atomic_store(&stop_readers, false);
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, reader, i % 2 ? &th[i] : NULL);
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	unsigned published = 0;
	for (unsigned g = 3; g < 503; g++) {
		struct table *t = gen_table(g);
		if (!t)
			break;
		table_publish(t);
		published++;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > 20)
			break;
	}
	/* Let readers run on the final table a moment too. */
	usleep(20000);
	atomic_store(&stop_readers, true);
	long bad = 0;
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(th[i], &r);
		bad += (long)r;
	}
	CHECK_INT(bad, 0);
	CHECK(published > 100);
	CHECK(atomic_load(&reads) > 0);
	CHECK_INT(table_current_generation(), 2 + published);
}

/* tests/fixtures/tables: every good-*.json loads into a serving table; every
 * bad-proxy-*.json passes the common reader but is refused by the proxy with
 * an error line starting with the text of its .err file. */
static void test_fixtures(void)
{
	const char *dir = "tests/fixtures/tables";
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	if (!d)
		return;
	int ngood = 0, nbad = 0;
	for (struct dirent *e; (e = readdir(d));) {
		size_t nl = strlen(e->d_name);
		if (nl < 6 || strcmp(e->d_name + nl - 5, ".json") != 0)
			continue;
		bool good = strncmp(e->d_name, "good-", 5) == 0;
		if (!good && strncmp(e->d_name, "bad-proxy-", 10) != 0)
			continue;
		char path[512], err[512] = "", want[512] = "";
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		CHECK(f != NULL);
		if (!f)
			continue;
		static char json[1 << 16];
		size_t len = fread(json, 1, sizeof(json) - 1, f);
		fclose(f);
		json[len] = '\0';
		struct route_table *rt = NULL;
		struct table *t = NULL;
		CHECK_INT(route_table_parse(json, len, &rt, err, sizeof(err)), 0);
		if (!rt)
			continue;
		int rc = table_new(rt, &t, err, sizeof(err));
		if (good) {
			ngood++;
			CHECK_INT(rc, 0);
			if (rc != 0)
				fprintf(stderr, "  %s: %s\n", e->d_name, err);
			table_unref(t);
			continue;
		}
		nbad++;
		CHECK(rc != 0 && t == NULL);
		snprintf(path + strlen(path) - 5, 6, ".err");
		f = fopen(path, "r");
		CHECK(f != NULL);
		if (f) {
			if (!fgets(want, sizeof(want), f))
				want[0] = '\0';
			fclose(f);
		}
		want[strcspn(want, "\n")] = '\0';
		CHECK(want[0] && strncmp(err, want, strlen(want)) == 0);
		if (strncmp(err, want, strlen(want)) != 0)
			fprintf(stderr, "  %s: got \"%s\", want \"%s\"\n", e->d_name, err, want);
	}
	closedir(d);
	CHECK(ngood >= 2);
	CHECK(nbad >= 2);
}

int main(void)
{
	test_kubernetes_examples();
	test_regex();
	test_hosts();
	test_backends_and_passthrough();
	test_tls();
	test_refusals();
	test_load();
	test_fixtures();
	test_refcount();
	test_view();
	test_concurrent();
	return check_finish("table_test");
}
