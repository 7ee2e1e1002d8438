/* tests/unit/proxy/table_cache_test.c - the cache of compiled objects shared
 * by route table generations: keys, reuse, freeing when the last holder goes,
 * and what table_new takes from it (server contexts, client CA stores). */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "proxy/table.h"
#include "proxy/table_cache.h"
#include "test_cert.h"

static int freed;

static void count_free(void *p)
{
	freed++;
	free(p);
}

static void test_key(void)
{
	unsigned char a[TABLE_CACHE_KEY_LEN], b[TABLE_CACHE_KEY_LEN];
	const char *f1[] = {"ab", "c"}, *f2[] = {"a", "bc"}, *f3[] = {"ab", "c"};
	const char *n1[] = {"x", NULL}, *n2[] = {"x", ""};
	CHECK_INT(table_cache_key(a, 2, f1), 0);
	CHECK_INT(table_cache_key(b, 2, f3), 0);
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	/* where one field ends is part of the key */
	CHECK_INT(table_cache_key(b, 2, f2), 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	/* NULL is not "" */
	CHECK_INT(table_cache_key(a, 2, n1), 0);
	CHECK_INT(table_cache_key(b, 2, n2), 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
}

static void test_reuse_and_free(void)
{
	unsigned char k1[TABLE_CACHE_KEY_LEN], k2[TABLE_CACHE_KEY_LEN];
	const char *f1[] = {"one"}, *f2[] = {"two"};
	table_cache_key(k1, 1, f1);
	table_cache_key(k2, 1, f2);
	freed = 0;
	CHECK(table_cache_find(TABLE_CACHE_BALANCER, k1) == NULL);
	int *o1 = malloc(sizeof(*o1));
	struct table_cache_entry *e1 = table_cache_add(TABLE_CACHE_BALANCER, k1, o1, count_free);
	CHECK(e1 != NULL);
	CHECK(table_cache_object(e1) == o1);
	CHECK_INT(table_cache_count(TABLE_CACHE_BALANCER), 1);
	/* the same key: the same entry, one more holder */
	struct table_cache_entry *again = table_cache_find(TABLE_CACHE_BALANCER, k1);
	CHECK(again == e1);
	/* the same key in another kind is another entry */
	CHECK(table_cache_find(TABLE_CACHE_CLIENT_CA, k1) == NULL);
	/* adding a key that is there already frees the new object at once */
	int *dup = malloc(sizeof(*dup));
	struct table_cache_entry *e1b = table_cache_add(TABLE_CACHE_BALANCER, k1, dup, count_free);
	CHECK(e1b == e1);
	CHECK_INT(freed, 1);
	/* different content: a different entry */
	int *o2 = malloc(sizeof(*o2));
	struct table_cache_entry *e2 = table_cache_add(TABLE_CACHE_BALANCER, k2, o2, count_free);
	CHECK(e2 != NULL && e2 != e1);
	CHECK_INT(table_cache_count(TABLE_CACHE_BALANCER), 2);
	/* three holders of e1: it stays until the last lets go */
	struct table_cache_entry *some[] = {e1, NULL, e2};
	table_cache_put(some, 3);
	CHECK_INT(freed, 2); /* dup and o2 */
	CHECK_INT(table_cache_count(TABLE_CACHE_BALANCER), 1);
	CHECK(table_cache_find(TABLE_CACHE_BALANCER, k2) == NULL);
	table_cache_put(&again, 1);
	CHECK_INT(freed, 2);
	CHECK(table_cache_find(TABLE_CACHE_BALANCER, k1) == e1); /* a fourth holder */
	struct table_cache_entry *rest[] = {e1, e1b};
	table_cache_put(rest, 2);
	CHECK_INT(table_cache_count(TABLE_CACHE_BALANCER), 0);
	CHECK_INT(freed, 3);
	table_cache_put(NULL, 0);
}

/* Enough entries to make the map grow several times; all found again. */
static void test_many(void)
{
	enum { N = 5000 };
	static struct table_cache_entry *e[N];
	freed = 0;
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "entry %d", i);
		const char *f[] = {name};
		unsigned char k[TABLE_CACHE_KEY_LEN];
		table_cache_key(k, 1, f);
		e[i] = table_cache_add(TABLE_CACHE_BALANCER, k, malloc(1), count_free);
	}
	CHECK_INT(table_cache_count(TABLE_CACHE_BALANCER), N);
	int found = 0;
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "entry %d", i);
		const char *f[] = {name};
		unsigned char k[TABLE_CACHE_KEY_LEN];
		table_cache_key(k, 1, f);
		struct table_cache_entry *x = table_cache_find(TABLE_CACHE_BALANCER, k);
		found += x == e[i];
		table_cache_put(&x, 1);
	}
	CHECK_INT(found, N);
	table_cache_put(e, N);
	CHECK_INT(freed, N);
	CHECK_INT(table_cache_count(TABLE_CACHE_BALANCER), 0);
}

static void churn_key(unsigned char k[TABLE_CACHE_KEY_LEN], int round, int i)
{
	char name[48];
	snprintf(name, sizeof(name), "churn %d %d", round, i);
	const char *f[] = {name};
	table_cache_key(k, 1, f);
}

/* 1 when entry i is found by its key (round r) holding the value i. */
static int churn_found(struct table_cache_entry *const *e, int r, int i)
{
	unsigned char k[TABLE_CACHE_KEY_LEN];
	churn_key(k, r, i);
	struct table_cache_entry *x = table_cache_find(TABLE_CACHE_BALANCER, k);
	int ok = x && x == e[i] && *(int *)table_cache_object(x) == i;
	table_cache_put(&x, 1);
	return ok;
}

/* Entries go and come in any order (they share blocks of memory that are
 * filled again and given back when empty): each keeps its own key and
 * object, and every object is freed once. */
static void test_churn(void)
{
	enum { N = 3000 };
	static struct table_cache_entry *e[N];
	static int round[N];
	unsigned char k[TABLE_CACHE_KEY_LEN];
	freed = 0;
	for (int i = 0; i < N; i++) {
		int *o = malloc(sizeof(*o));
		*o = i;
		churn_key(k, 0, i);
		e[i] = table_cache_add(TABLE_CACHE_BALANCER, k, o, count_free);
	}
	/* every third goes, then comes back under another key */
	for (int i = 0; i < N; i += 3)
		table_cache_put(&e[i], 1);
	CHECK_INT(freed, N / 3);
	CHECK_INT(table_cache_count(TABLE_CACHE_BALANCER), N - N / 3);
	for (int i = 0; i < N; i += 3) {
		int *o = malloc(sizeof(*o));
		*o = i;
		churn_key(k, 1, i);
		e[i] = table_cache_add(TABLE_CACHE_BALANCER, k, o, count_free);
		round[i] = 1;
	}
	int found = 0;
	for (int i = 0; i < N; i++)
		found += churn_found(e, round[i], i);
	CHECK_INT(found, N);
	/* the first half goes (whole blocks empty), the rest stays intact */
	table_cache_put(e, N / 2);
	CHECK_INT(table_cache_count(TABLE_CACHE_BALANCER), N - N / 2);
	found = 0;
	for (int i = N / 2; i < N; i++)
		found += churn_found(e, round[i], i);
	CHECK_INT(found, N - N / 2);
	table_cache_put(e + N / 2, N - N / 2);
	CHECK_INT(freed, N + N / 3);
	CHECK_INT(table_cache_count(TABLE_CACHE_BALANCER), 0);
}

static char *bio_text(BIO *b)
{
	char *p;
	long n = BIO_get_mem_data(b, &p);
	char *s = malloc((size_t)n + 1);
	memcpy(s, p, (size_t)n);
	s[n] = '\0';
	return s;
}

/* A fresh self-signed P-256 certificate and key, PEM (caller frees both). */
static void make_cert(const char *cn, char **cert_pem, char **key_pem)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_sign(x, key, EVP_sha256());
	BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(cb, x);
	PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL);
	*cert_pem = bio_text(cb);
	*key_pem = bio_text(kb);
	BIO_free(cb);
	BIO_free(kb);
	X509_free(x);
	EVP_PKEY_free(key);
}

/* Hosts a.test and b.test with certificates (cert, key) a and b; the CA of
 * a.test's client certificates is ca_pem (NULL: none). */
static struct table *tls_table(const char *a_cert, const char *a_key, const char *b_cert,
                               const char *b_key, const char *ca_pem)
{
	struct route_table *rt = route_table_new();
	rt->ncerts = 2;
	rt->certs = calloc(2, sizeof(*rt->certs));
	rt->certs[0].name = strdup("ns/a");
	rt->certs[0].cert_pem = strdup(a_cert);
	rt->certs[0].key_pem = strdup(a_key);
	rt->certs[1].name = strdup("ns/b");
	rt->certs[1].cert_pem = strdup(b_cert);
	rt->certs[1].key_pem = strdup(b_key);
	rt->nhosts = 2;
	rt->hosts = calloc(2, sizeof(*rt->hosts));
	for (int i = 0; i < 2; i++) {
		route_client_auth_init(&rt->hosts[i].client_auth);
		rt->hosts[i].name = strdup(i ? "b.test" : "a.test");
		rt->hosts[i].cert = i;
	}
	if (ca_pem) {
		rt->ncas = 1;
		rt->cas = calloc(1, sizeof(*rt->cas));
		rt->cas[0].name = strdup("ns/ca");
		rt->cas[0].ca_pem = strdup(ca_pem);
		rt->hosts[0].client_auth.ca = 0;
	}
	struct table *t = NULL;
	char err[512];
	int rc = table_new(rt, &t, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "table_new: %s\n", err);
	CHECK_INT(rc, 0);
	return t;
}

static void test_tables_share(void)
{
	char *c2, *k2, *c3, *k3;
	make_cert("two.test", &c2, &k2);
	make_cert("three.test", &c3, &k3);
	size_t ctx0 = table_cache_count(TABLE_CACHE_SERVER_CTX);
	size_t ca0 = table_cache_count(TABLE_CACHE_CLIENT_CA);

	/* Two hosts with the same certificate and key: one context. */
	struct table *t1 = tls_table(CERT_PEM, KEY_PEM, CERT_PEM, KEY_PEM, CERT_PEM);
	if (!t1)
		goto out;
	CHECK(table_ssl_ctx(t1, "a.test") == table_ssl_ctx(t1, "b.test"));
	CHECK_INT(table_certs_decoded(t1), 1);
	CHECK_INT(table_cache_count(TABLE_CACHE_SERVER_CTX), ctx0 + 1);
	CHECK_INT(table_cache_count(TABLE_CACHE_CLIENT_CA), ca0 + 1);

	/* The next generation changes b's certificate: a's context and the
	 * CA store are the ones t1 built, b's is new. */
	struct table *t2 = tls_table(CERT_PEM, KEY_PEM, c2, k2, CERT_PEM);
	if (!t2)
		goto out1;
	CHECK(table_ssl_ctx(t2, "a.test") == table_ssl_ctx(t1, "a.test"));
	CHECK(table_ssl_ctx(t2, "b.test") != table_ssl_ctx(t1, "b.test"));
	CHECK_INT(table_certs_decoded(t2), 1);
	const struct route_table *r1 = table_routes(t1), *r2 = table_routes(t2);
	CHECK(table_ca_store(t2, &r2->hosts[0]) == table_ca_store(t1, &r1->hosts[0]));
	CHECK(table_ca_names(t2, &r2->hosts[0]) == table_ca_names(t1, &r1->hosts[0]));
	CHECK_INT(table_cache_count(TABLE_CACHE_SERVER_CTX), ctx0 + 2);
	CHECK_INT(table_cache_count(TABLE_CACHE_CLIENT_CA), ca0 + 1);

	/* The same certificate with another key is other content (it does not
	 * load: the key does not match), and a failed load leaves the cache as
	 * it was. */
	struct route_table *bad = route_table_new();
	bad->ncerts = 1;
	bad->certs = calloc(1, sizeof(*bad->certs));
	bad->certs[0].name = strdup("ns/bad");
	bad->certs[0].cert_pem = strdup(CERT_PEM);
	bad->certs[0].key_pem = strdup(k3);
	struct table *tb = NULL;
	char err[512];
	CHECK_INT(table_new(bad, &tb, err, sizeof(err)), WEIR_ETLS);
	CHECK(strstr(err, "certs[0].key_pem") != NULL);
	CHECK_INT(table_cache_count(TABLE_CACHE_SERVER_CTX), ctx0 + 2);

	/* t1 goes: t2 uses everything t1 did, nothing is freed. */
	table_unref(t1);
	t1 = NULL;
	CHECK_INT(table_cache_count(TABLE_CACHE_SERVER_CTX), ctx0 + 2);
	CHECK_INT(table_cache_count(TABLE_CACHE_CLIENT_CA), ca0 + 1);
	struct table *t3 = tls_table(c3, k3, c2, k2, NULL);
	if (t3) {
		CHECK(table_ssl_ctx(t3, "b.test") == table_ssl_ctx(t2, "b.test"));
		CHECK(table_ssl_ctx(t3, "a.test") != table_ssl_ctx(t2, "a.test"));
		CHECK_INT(table_certs_decoded(t3), 1);
		CHECK_INT(table_cache_count(TABLE_CACHE_SERVER_CTX), ctx0 + 3);
	}
	/* t2 goes: the CA store and CERT_PEM's context, which t3 does not
	 * use, are freed. */
	table_unref(t2);
	CHECK_INT(table_cache_count(TABLE_CACHE_CLIENT_CA), ca0);
	CHECK_INT(table_cache_count(TABLE_CACHE_SERVER_CTX), ctx0 + (t3 ? 2 : 0));
	table_unref(t3);
	CHECK_INT(table_cache_count(TABLE_CACHE_SERVER_CTX), ctx0);
out1:
	table_unref(t1);
out:
	free(c2);
	free(k2);
	free(c3);
	free(k3);
}

int main(void)
{
	test_key();
	test_reuse_and_free();
	test_many();
	test_churn();
	test_tables_share();
	return check_finish("table_cache");
}
