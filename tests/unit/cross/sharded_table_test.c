/* tests/unit/cross/sharded_table_test.c - the sharded table (version 2)
 * end to end: the controller's publisher writes a directory, the proxy's
 * table_load reads it. A v2 directory serves what the v1 table of the same
 * content serves; a reload after one host changed parses exactly one host
 * shard (after an endpoint change, none: one backend shard); a missing or corrupt shard fails the
 * load, the table in use stays; a cached shard is checked again against a
 * new index whose arrays are too short for it. */
#include <dirent.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "error.h"
#include "publish.h"
#include "route_table.h"
#include "table.h"
#include "table_cache.h"
#include "test_cert.h"

#define NHOSTS 40

/* NHOSTS hosts h<i>.test, each with a TLS certificate of its own name, a
 * prefix route to backend ns/b<i>:80 and (every third) a regex route; host
 * changed gets another path; backend bump's endpoint another port. */
static struct route_table *make_table(int changed, int bump, uint64_t gen)
{
	size_t cap = 1 << 21, len = 0;
	char *j = malloc(cap);
	char *cert = NULL, *key = NULL;
	json_object *c = json_object_new_string(CERT_PEM), *k = json_object_new_string(KEY_PEM);
	cert = strdup(json_object_to_json_string(c));
	key = strdup(json_object_to_json_string(k));
	json_object_put(c);
	json_object_put(k);
#define OUT(...) (len += (size_t)snprintf(j + len, cap - len, __VA_ARGS__))
	OUT("{\"version\":1,\"generation\":%llu,\"hosts\":[", (unsigned long long)gen);
	for (int i = 0; i < NHOSTS; i++) {
		OUT("%s{\"name\":\"h%02d.test\",\"cert\":%d,\"routes\":[", i ? "," : "", i, i);
		if (i % 3 == 0)
			OUT("{\"path\":\"/re/([a-z]+)\",\"match\":\"regex\",\"backend\":%d},",
			    (i + 1) % NHOSTS);
		OUT("{\"path\":\"/%s\",\"match\":\"prefix\",\"backend\":%d}]}",
		    i == changed ? "changed" : "", i);
	}
	OUT("],\"backends\":[");
	for (int i = 0; i < NHOSTS; i++)
		OUT("%s{\"name\":\"ns/b%02d:80\",\"endpoints\":[{\"address\":\"10.0.0.%d\","
		    "\"port\":%d}]}",
		    i ? "," : "", i, i + 1, i == bump ? 9999 : 8080);
	OUT("],\"certs\":[");
	for (int i = 0; i < NHOSTS; i++)
		OUT("%s{\"name\":\"ns/c%02d\",\"cert_pem\":%s,\"key_pem\":%s}", i ? "," : "", i,
		    cert, key);
	OUT("],\"default_backend\":0}");
#undef OUT
	struct route_table *t = NULL;
	char err[256];
	int rc = route_table_parse(j, len, &t, err, sizeof(err));
	if (rc)
		fprintf(stderr, "make_table: %s\n", err);
	CHECK_INT(rc, 0);
	free(j);
	free(cert);
	free(key);
	return t;
}

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

/* What a request for host/path reaches: "backend-name endpoint-port" or
 * "none". */
static void what(const struct table *t, const char *host, const char *path, char *buf,
                 size_t n)
{
	struct table_match m;
	const struct route_table *rt = table_routes(t);
	int rc = table_lookup(t, host, strlen(host), path, strlen(path), &m);
	if (rc != 0 || !m.route || m.route->backend < 0) {
		snprintf(buf, n, "none");
		return;
	}
	const struct route_backend *b = &rt->backends[m.route->backend];
	snprintf(buf, n, "%s %u caps=%d", b->name, b->nendpoints ? b->endpoints[0].port : 0,
	         m.ncaptures);
}

static void publish(struct publisher *p, struct route_table *t)
{
	bool written = false;
	CHECK_INT(publisher_publish(p, t, &written), 0);
	CHECK(written);
	route_table_free(t);
}

static struct table *load(const char *dir, char *err, size_t errlen)
{
	struct table *t = NULL;
	int rc = table_load(dir, &t, err, errlen);
	if (rc != 0)
		fprintf(stderr, "load: %s\n", err);
	CHECK_INT(rc, 0);
	return t;
}

/* The host shard id hosts[i] of the index on disk. */
static void host_id(const char *dir, size_t i, char *id)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, ROUTE_TABLE_FILE);
	json_object *root = json_object_from_file(path), *hosts = NULL;
	id[0] = '\0';
	if (root && json_object_object_get_ex(root, "hosts", &hosts))
		snprintf(id, ROUTE_SHARD_ID_LEN + 1, "%s",
		         json_object_get_string(json_object_array_get_idx(hosts, i)));
	json_object_put(root);
}

static void test_same_as_v1_and_reuse(void)
{
	char dir[] = "/tmp/weir-sharded-XXXXXX", err[512] = "";
	CHECK(mkdtemp(dir) != NULL);
	struct publisher *p = NULL;
	CHECK_INT(publisher_new(dir, &p), 0);
	publish(p, make_table(-1, -1, 0));
	struct table *v2 = load(dir, err, sizeof(err));
	struct route_table *one = make_table(-1, -1, 0);
	struct table *v1 = NULL;
	CHECK_INT(table_new(one, &v1, err, sizeof(err)), 0);
	if (!v1 || !v2)
		return;
	CHECK(table_sharded(v2));
	CHECK(!table_sharded(v1));
	CHECK_INT(table_hosts_parsed(v2), NHOSTS);
	CHECK_INT(table_routes(v2)->nhosts, NHOSTS);
	const char *hosts[] = {"h00.test", "h03.test", "H07.TEST:443", "h39.test", "nope.test",
	                       NULL};
	const char *paths[] = {"/", "/x", "/re/abc", "/re/123", "/changed"};
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]); k++) {
			char a[128], b[128];
			const char *h = hosts[i] ? hosts[i] : "";
			what(v1, h, paths[k], a, sizeof(a));
			what(v2, h, paths[k], b, sizeof(b));
			CHECK_STR(b, a);
		}
		/* the same certificate (by name) for each SNI */
		if (hosts[i]) {
			SSL_CTX *c1 = table_ssl_ctx(v1, hosts[i]), *c2 = table_ssl_ctx(v2, hosts[i]);
			CHECK((c1 == NULL) == (c2 == NULL));
		}
	}
	CHECK(table_ssl_ctx(v2, "h05.test") != NULL);
	CHECK_INT(table_routes(v2)->default_backend >= 0, 1);
	CHECK_STR(table_routes(v2)->backends[table_routes(v2)->default_backend].name, "ns/b00:80");

	/* one host changed: exactly one shard parsed, no certificate decoded */
	publish(p, make_table(7, -1, 0));
	struct table *v2b = load(dir, err, sizeof(err));
	if (v2b) {
		CHECK_INT(table_hosts_parsed(v2b), 1);
		CHECK_INT(table_certs_decoded(v2b), 0);
		char b[128];
		what(v2b, "h07.test", "/changed", b, sizeof(b));
		CHECK_STR(b, "ns/b07:80 8080 caps=0");
		what(v2b, "h07.test", "/other", b, sizeof(b));
		CHECK_STR(b, "none");
	}
	/* an endpoint change: one backend shard and the index, no host parsed */
	publish(p, make_table(7, 12, 0));
	struct table *v2c = load(dir, err, sizeof(err));
	if (v2c) {
		CHECK_INT(table_hosts_parsed(v2c), 0);
		char b[128];
		what(v2c, "h12.test", "/", b, sizeof(b));
		CHECK_STR(b, "ns/b12:80 9999 caps=0");
	}
	/* shards are shared, not copied: one cache entry per shard alive */
	CHECK_INT(table_cache_count(TABLE_CACHE_HOST_SHARD), NHOSTS + 1);
	CHECK_INT(table_cache_count(TABLE_CACHE_BACKEND_SHARD), NHOSTS + 1);
	table_unref(v2);
	table_unref(v2b);
	CHECK_INT(table_cache_count(TABLE_CACHE_HOST_SHARD), NHOSTS);
	table_unref(v2c);
	table_unref(v1);
	CHECK_INT(table_cache_count(TABLE_CACHE_HOST_SHARD), 0);
	CHECK_INT(table_cache_count(TABLE_CACHE_BACKEND_SHARD), 0);
	CHECK_INT(table_cache_count(TABLE_CACHE_CERT_SHARD), 0);
	publisher_free(p);
	rm_rf(dir);
}

static void test_refusals(void)
{
	char dir[] = "/tmp/weir-sharded-bad-XXXXXX", err[512] = "", id[80], path[512];
	CHECK(mkdtemp(dir) != NULL);
	struct publisher *p = NULL;
	CHECK_INT(publisher_new(dir, &p), 0);
	publish(p, make_table(-1, -1, 0));
	struct table *good = load(dir, err, sizeof(err));
	if (!good)
		return;
	table_publish(good); /* the table in use */
	uint64_t gen = table_current_generation();

	/* a missing shard: one clear line, nothing published */
	publish(p, make_table(3, -1, 0));
	host_id(dir, 3, id);
	snprintf(path, sizeof(path), "%s/%s/%s.json", dir, ROUTE_SHARD_DIR, id);
	char *saved = NULL;
	FILE *f = fopen(path, "rb");
	if (f) {
		saved = calloc(1, 1 << 16);
		size_t n = fread(saved, 1, (1 << 16) - 1, f);
		saved[n] = '\0';
		fclose(f);
	}
	CHECK(saved != NULL);
	CHECK_INT(unlink(path), 0);
	struct table *t = NULL;
	CHECK_INT(table_load(dir, &t, err, sizeof(err)), WEIR_EIO); /* a broken table, not one to come */
	CHECK(strstr(err, id) != NULL && strstr(err, "No such file") != NULL);
	CHECK(strchr(err, '\n') == NULL);
	CHECK_INT(table_current_generation(), gen);

	/* corrupt (same name, other bytes): refused before parsing */
	char orig = saved ? saved[10] : 0;
	f = fopen(path, "wb");
	if (f && saved) {
		saved[10] = orig == 'x' ? 'y' : 'x';
		fputs(saved, f);
	}
	if (f)
		fclose(f);
	CHECK(table_load(dir, &t, err, sizeof(err)) != 0);
	CHECK(strstr(err, "does not match its name") != NULL);
	/* restored: the next event loads it */
	f = fopen(path, "wb");
	if (f && saved) {
		saved[10] = orig;
		fputs(saved, f);
	}
	if (f)
		fclose(f);
	free(saved);
	t = load(dir, err, sizeof(err));
	CHECK(t != NULL);
	if (t)
		CHECK_INT(table_hosts_parsed(t), 1);

	/* a cached shard against an index whose backends are too few */
	snprintf(path, sizeof(path), "%s/%s", dir, ROUTE_TABLE_FILE);
	json_object *root = json_object_from_file(path), *b = NULL;
	CHECK(root != NULL);
	if (root && json_object_object_get_ex(root, "backends", &b)) {
		json_object_array_del_idx(b, 5, json_object_array_length(b) - 5);
		CHECK_INT(json_object_to_file_ext(path, root, JSON_C_TO_STRING_PLAIN), 0);
	}
	json_object_put(root);
	struct table *t2 = NULL;
	CHECK_INT(table_load(dir, &t2, err, sizeof(err)), WEIR_EINVAL);
	CHECK(strstr(err, "backend index") != NULL && strstr(err, "out of range") != NULL);
	CHECK(strstr(err, ROUTE_SHARD_DIR "/") != NULL);
	table_unref(t);

	/* a hole named by a host is refused */
	publisher_free(p);
	rm_rf(dir);
	CHECK(mkdtemp(strcpy(dir, "/tmp/weir-sharded-bad-XXXXXX")) != NULL);
	CHECK_INT(publisher_new(dir, &p), 0);
	publish(p, make_table(-1, -1, 0));
	snprintf(path, sizeof(path), "%s/%s", dir, ROUTE_TABLE_FILE);
	root = json_object_from_file(path);
	json_object *certs = NULL;
	if (root && json_object_object_get_ex(root, "certs", &certs)) {
		json_object_array_put_idx(certs, 4, json_object_new_string(""));
		CHECK_INT(json_object_to_file_ext(path, root, JSON_C_TO_STRING_PLAIN), 0);
	}
	json_object_put(root);
	CHECK(table_load(dir, &t2, err, sizeof(err)) != 0);
	CHECK(strstr(err, "cert 4 is an empty slot") != NULL);
	publisher_free(p);
	rm_rf(dir);
}

/* Loads after a publish take the shards of the table in use by position:
 * the same answers as loads from the cache, nothing leaked or shared that
 * changed. */
static void test_reuse_from_table_in_use(void)
{
	char dir[] = "/tmp/weir-sharded-pub-XXXXXX", err[512] = "", b[128];
	CHECK(mkdtemp(dir) != NULL);
	struct publisher *p = NULL;
	CHECK_INT(publisher_new(dir, &p), 0);
	publish(p, make_table(-1, -1, 0));
	struct table *a = load(dir, err, sizeof(err));
	if (!a)
		return;
	table_publish(a);
	size_t cells = table_cache_count(TABLE_CACHE_BALANCER);
	CHECK(cells > 0);

	publish(p, make_table(7, -1, 0));
	struct table *c = load(dir, err, sizeof(err));
	if (!c)
		return;
	CHECK_INT(table_hosts_parsed(c), 1);
	CHECK_INT(table_certs_decoded(c), 0);
	what(c, "h07.test", "/changed", b, sizeof(b));
	CHECK_STR(b, "ns/b07:80 8080 caps=0");
	what(c, "h06.test", "/", b, sizeof(b));
	CHECK_STR(b, "ns/b06:80 8080 caps=0");
	table_publish(c); /* a is freed */
	CHECK_INT(table_cache_count(TABLE_CACHE_BALANCER), cells);
	CHECK_INT(table_cache_count(TABLE_CACHE_HOST_SHARD), NHOSTS);
	CHECK_INT(table_cache_count(TABLE_CACHE_BACKEND_SHARD), NHOSTS);

	publish(p, make_table(7, 12, 0));
	struct table *d = load(dir, err, sizeof(err));
	if (!d)
		return;
	CHECK_INT(table_hosts_parsed(d), 0);
	what(d, "h12.test", "/", b, sizeof(b));
	CHECK_STR(b, "ns/b12:80 9999 caps=0");
	what(d, "h07.test", "/changed", b, sizeof(b));
	CHECK_STR(b, "ns/b07:80 8080 caps=0");
	what(d, "h13.test", "/", b, sizeof(b));
	CHECK_STR(b, "ns/b13:80 8080 caps=0");
	table_publish(d); /* c is freed: one endpoint cell went, one came */
	CHECK_INT(table_cache_count(TABLE_CACHE_BALANCER), cells);
	CHECK_INT(table_cache_count(TABLE_CACHE_BACKEND_SHARD), NHOSTS);
	CHECK_INT(table_cache_count(TABLE_CACHE_CERT_SHARD) > 0, 1);
	publisher_free(p);
	rm_rf(dir);
}

int main(void)
{
	test_same_as_v1_and_reuse();
	test_refusals();
	test_reuse_from_table_in_use();
	return check_finish("sharded_table_test");
}
