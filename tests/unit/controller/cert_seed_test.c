/* tests/unit/controller/cert_seed_test.c - a publisher that takes over a
 * table published before (publisher_open with cert_seed_pair) seeds
 * compile's good-pairs cache with its certificate pairs; a shard whose bytes
 * do not hash to its id, a missing shard, a directory without an index and
 * a version 1 table seed nothing. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "controller/cert_seed.h"
#include "controller/compile.h"
#include "controller/publish.h"
#include "error.h"
#include "test_cert.h"

/* Pairs that need not load: seeding trusts what the publisher wrote and
 * never asks OpenSSL, and these must not be remembered. */
#define FAKE_CRT(x) "-----BEGIN CERTIFICATE-----\n" x "\n-----END CERTIFICATE-----\n"
#define FAKE_KEY(x) "-----BEGIN PRIVATE KEY-----\n" x "\n-----END PRIVATE KEY-----\n"

static void rm_rf(const char *dir)
{
	char path[1024];
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) != 0)
			rm_rf(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

/* A table of n TLS hosts h<i>.test, host i using certificate i (name
 * "ns/c<i>", the pair crt[i], key[i]). Caller frees. */
static struct route_table *tls_table(size_t n, const char *const *crt, const char *const *key)
{
	struct route_table *t = route_table_new();
	CHECK(t != NULL);
	t->hosts = calloc(n, sizeof(*t->hosts));
	t->certs = calloc(n, sizeof(*t->certs));
	for (size_t i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "h%zu.test", i);
		t->hosts[i].name = strdup(name);
		t->hosts[i].cert = (int)i;
		route_client_auth_init(&t->hosts[i].client_auth);
		snprintf(name, sizeof(name), "ns/c%zu", i);
		t->certs[i].name = strdup(name);
		t->certs[i].cert_pem = strdup(crt[i]);
		t->certs[i].key_pem = strdup(key[i]);
	}
	t->nhosts = t->ncerts = n;
	return t;
}

static void publish(const char *dir, enum publish_format format, struct route_table *t)
{
	struct publisher *p = NULL;
	bool written = false;
	CHECK_INT(publisher_new_format(dir, format, &p), 0);
	CHECK_INT(publisher_publish(p, t, &written), 0);
	CHECK(written);
	publisher_free(p);
	route_table_free(t);
}

/* Path of the shard of the certificate named name in the index in dir. */
static void cert_shard_path(const char *dir, const char *name, char *out, size_t outlen)
{
	char path[512], err[256];
	snprintf(path, sizeof(path), "%s/%s", dir, ROUTE_TABLE_FILE);
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	static char text[1 << 16];
	size_t len = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
	text[len] = '\0';
	if (f)
		fclose(f);
	struct route_table *t = NULL;
	struct route_index *ix = NULL;
	CHECK_INT(route_table_parse_any(text, len, &t, &ix, err, sizeof(err)), 0);
	out[0] = '\0';
	for (size_t i = 0; ix && i < ix->ncerts; i++) {
		char body[1 << 14];
		snprintf(path, sizeof(path), "%s/%s/%s.json", dir, ROUTE_SHARD_DIR, ix->certs[i]);
		f = fopen(path, "rb");
		if (!f)
			continue;
		size_t n = fread(body, 1, sizeof(body) - 1, f);
		body[n] = '\0';
		fclose(f);
		struct route_cert c = {0};
		if (route_cert_shard_parse(body, n, &c, err, sizeof(err)) == 0 &&
		    strcmp(c.name, name) == 0)
			snprintf(out, outlen, "%s", path);
		route_cert_cleanup(&c);
	}
	CHECK(out[0] != '\0');
	route_index_free(ix);
	route_table_free(t);
}

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK_INT(fwrite(text, 1, len, f), len);
	fclose(f);
}

/* Open dir as a restarted controller does; the pairs seeded. */
static size_t seed(const char *dir, enum publish_format format)
{
	struct publisher *p = NULL;
	size_t n = 0;
	CHECK_INT(publisher_open(dir, format, cert_seed_pair, &n, &p), 0);
	publisher_free(p);
	return n;
}

static void test_seed_v2(void)
{
	static const char *const crt[] = {CERT_PEM, FAKE_CRT("b"), FAKE_CRT("c")};
	static const char *const key[] = {KEY_PEM, FAKE_KEY("b"), FAKE_KEY("c")};
	const char *x_crt = FAKE_CRT("x"), *x_key = FAKE_KEY("x");
	char dir[] = "/tmp/weir-cert-seed-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);

	CHECK_INT(seed(dir, PUBLISH_V2), 0); /* no index yet */

	publish(dir, PUBLISH_V2, tls_table(3, crt, key));
	for (size_t i = 0; i < 3; i++)
		CHECK(!compile_pair_known_good(crt[i], key[i]));

	/* c1's shard now holds the shard text of another pair, x: well formed,
	 * but its bytes no longer hash to the id the index names */
	char b_path[600], c_path[600];
	cert_shard_path(dir, "ns/c1", b_path, sizeof(b_path));
	cert_shard_path(dir, "ns/c2", c_path, sizeof(c_path));
	struct route_cert x = {
	    .name = "ns/c1", .cert_pem = (char *)x_crt, .key_pem = (char *)x_key};
	char *text = NULL;
	size_t len = 0;
	CHECK_INT(route_cert_serialize(&x, &text, &len), 0);
	write_file(b_path, text, len);
	free(text);
	/* c2's shard is gone */
	CHECK_INT(unlink(c_path), 0);

	CHECK_INT(seed(dir, PUBLISH_V2), 1);
	CHECK(compile_pair_known_good(CERT_PEM, KEY_PEM));
	CHECK(!compile_pair_known_good(x_crt, x_key));
	CHECK(!compile_pair_known_good(crt[1], key[1]));
	CHECK(!compile_pair_known_good(crt[2], key[2]));
	/* the pair, not each text: a key with another certificate is unknown */
	CHECK(!compile_pair_known_good(CERT_PEM, key[1]));
	rm_rf(dir);
}

static void test_seed_v1(void)
{
	static const char *const crt[] = {FAKE_CRT("v1")};
	static const char *const key[] = {FAKE_KEY("v1")};
	char dir[] = "/tmp/weir-cert-seed-v1-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	publish(dir, PUBLISH_V1, tls_table(1, crt, key));
	CHECK_INT(seed(dir, PUBLISH_V2), 0);
	CHECK_INT(seed(dir, PUBLISH_V1), 0);
	CHECK(!compile_pair_known_good(crt[0], key[0]));
	rm_rf(dir);
}

int main(void)
{
	test_seed_v2();
	test_seed_v1();
	return check_finish("cert_seed_test");
}
