/* tests/unit/proxy/table_sharded_test.c - reloads of a version 2 index
 * (docs/route-table.md, "Sharded tables") on top of the table in use, whose
 * shards a reload takes by position without checking them again when the
 * index keeps its shape: a host shard kept at its position is still refused
 * when a slot it names turned into a hole or an array it names shrank below
 * it; the host index and backend names carried over from the table in use
 * still find every host and still refuse duplicates; canary patterns of kept
 * and changed hosts both match. The directories are written by hand (shards
 * named by the SHA-256 of their bytes, the index naming them), so each case
 * says exactly which ids stay at which position. */
#include <dirent.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "error.h"
#include "route_table.h"
#include "table.h"
#include "test_cert.h"

#define ID_SIZE (ROUTE_SHARD_ID_LEN + 1)

static char dir[] = "/tmp/weir-table-sharded-XXXXXX";
static unsigned long long generation;

static void rm_tree(const char *path)
{
	char sub[1024];
	DIR *d = opendir(path);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		if (unlink(sub) != 0)
			rm_tree(sub);
	}
	if (d)
		closedir(d);
	rmdir(path);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK_INT(fwrite(text, 1, strlen(text), f), strlen(text));
	fclose(f);
}

/* A shard of the printf-formatted text: written under its name, which
 * goes into id. */
static void shard(char id[ID_SIZE], const char *fmt, ...)
{
	char text[8192], path[512];
	unsigned char md[SHA256_DIGEST_LENGTH];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	SHA256((const unsigned char *)text, strlen(text), md);
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(id + 2 * i, 3, "%02x", md[i]);
	snprintf(path, sizeof(path), "%s/%s/%s.json", dir, ROUTE_SHARD_DIR, id);
	write_file(path, text);
}

/* A JSON array of the n ids (NULL: a hole) into out. */
static void id_list(char *out, size_t cap, char ids[][ID_SIZE], size_t n)
{
	size_t len = (size_t)snprintf(out, cap, "[");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s\"%s\"", i ? "," : "", ids[i]);
	snprintf(out + len, cap - len, "]");
}

/* The index: hosts, backends and certs by id ("" for a hole), extra
 * appended as top-level members (",\"cas\":[...]"). */
static void write_index(char hosts[][ID_SIZE], size_t nh, char backends[][ID_SIZE], size_t nb,
                        char certs[][ID_SIZE], size_t nc, const char *extra)
{
	static char json[1 << 16];
	char h[4096], b[4096], c[4096], path[512];
	id_list(h, sizeof(h), hosts, nh);
	id_list(b, sizeof(b), backends, nb);
	id_list(c, sizeof(c), certs, nc);
	snprintf(json, sizeof(json),
	         "{\"version\":2,\"generation\":%llu,\"hosts\":%s,\"backends\":%s,\"certs\":%s%s}",
	         ++generation, h, b, c, extra ? extra : "");
	snprintf(path, sizeof(path), "%s/%s", dir, ROUTE_TABLE_FILE);
	write_file(path, json);
}

/* PEM text as the body of a JSON string. */
static const char *json_pem(const char *pem)
{
	static char out[2][4096];
	static int turn;
	char *o = out[turn++ % 2];
	size_t n = 0;
	for (; *pem && n + 3 < sizeof(out[0]); pem++) {
		if (*pem == '\n') {
			o[n++] = '\\';
			o[n++] = 'n';
		} else {
			o[n++] = *pem;
		}
	}
	o[n] = '\0';
	return o;
}

static struct table *load_ok(void)
{
	char err[512] = "";
	struct table *t = NULL;
	int rc = table_load(dir, &t, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "table_load: %s\n", err);
	CHECK_INT(rc, 0);
	return t;
}

/* The load is refused with exactly want; the table in use stays. */
static void load_refused(const char *want)
{
	char err[512] = "";
	struct table *t = NULL;
	uint64_t gen = table_current_generation();
	CHECK_INT(table_load(dir, &t, err, sizeof(err)), WEIR_EINVAL);
	CHECK(t == NULL);
	CHECK_STR(err, want);
	CHECK_INT(table_current_generation(), gen);
}

/* "backend-name" of what host/path reaches on the current table, "404"
 * when no route, "-" for a route without backend. */
static const char *reach(const char *host, const char *path)
{
	static char out[128];
	struct table *t = table_current();
	struct table_match m;
	if (!t)
		return "no table";
	const struct route_table *rt = table_routes(t);
	if (table_lookup(t, host, strlen(host), path, strlen(path), &m) != 0)
		snprintf(out, sizeof(out), "404");
	else if (m.route->backend < 0)
		snprintf(out, sizeof(out), "-");
	else
		snprintf(out, sizeof(out), "%s", rt->backends[m.route->backend].name);
	table_unref(t);
	return out;
}

/* Host shard: name, certificate, CA, and one prefix route "/" to backend. */
static void host(char id[ID_SIZE], const char *name, int cert, int ca, int backend)
{
	shard(id,
	      "{\"name\":\"%s\",\"cert\":%d,\"client_auth\":{\"ca\":%d},\"routes\":["
	      "{\"path\":\"/\",\"match\":\"prefix\",\"backend\":%d}]}",
	      name, cert, ca, backend);
}

static void backend(char id[ID_SIZE], const char *name, int port)
{
	shard(id, "{\"name\":\"%s\",\"endpoints\":[{\"address\":\"10.0.0.1\",\"port\":%d}]}", name,
	      port);
}

/* A host kept at its position is checked again when the index changed
 * shape under it: a certificate or CA slot it names became a hole, or an
 * array it names got shorter than its index. Each reload below names the
 * very host shards of the table in use at the same positions. */
static void test_kept_host_checked_against_new_shape(void)
{
	char h[3][ID_SIZE], b[3][ID_SIZE], c[3][ID_SIZE], h1tls[ID_SIZE], want[512];
	char cas_one[4096], cas_hole[] = ",\"cas\":[{\"name\":\"\",\"ca_pem\":\"\"}]";
	snprintf(cas_one, sizeof(cas_one), ",\"cas\":[{\"name\":\"ns/ca\",\"ca_pem\":\"%s\"}]",
	         json_pem(CERT_PEM));
	host(h[0], "h0.test", 0, -1, 0);
	host(h[1], "h1.test", 1, 0, 1);
	backend(b[0], "ns/b0:80", 80);
	backend(b[1], "ns/b1:80", 80);
	for (int i = 0; i < 2; i++)
		shard(c[i], "{\"name\":\"ns/c%d\",\"cert_pem\":\"%s\",\"key_pem\":\"%s\"}", i,
		      json_pem(CERT_PEM), json_pem(KEY_PEM));
	write_index(h, 2, b, 2, c, 2, cas_one);
	struct table *a = load_ok();
	if (!a)
		return;
	table_publish(a);
	CHECK_STR(reach("h1.test", "/"), "ns/b1:80");

	/* certs[1] is a hole now */
	char c_hole[2][ID_SIZE];
	memcpy(c_hole[0], c[0], ID_SIZE);
	c_hole[1][0] = '\0';
	write_index(h, 2, b, 2, c_hole, 2, cas_one);
	snprintf(want, sizeof(want),
	         "routes.json: hosts[1] (" ROUTE_SHARD_DIR "/%s.json): cert 1 is an empty slot",
	         h[1]);
	load_refused(want);

	/* certs shorter than the index host 1 names */
	write_index(h, 2, b, 2, c, 1, cas_one);
	snprintf(want, sizeof(want),
	         "routes.json: hosts[1] (" ROUTE_SHARD_DIR
	         "/%s.json): cert index 1 out of range (the index has 1)",
	         h[1]);
	load_refused(want);

	/* backends shorter */
	write_index(h, 2, b, 1, c, 2, cas_one);
	snprintf(want, sizeof(want),
	         "routes.json: hosts[1] (" ROUTE_SHARD_DIR
	         "/%s.json): backend index 1 out of range (the index has 1)",
	         h[1]);
	load_refused(want);

	/* the CA host 1 names is a hole, then gone */
	write_index(h, 2, b, 2, c, 2, cas_hole);
	snprintf(want, sizeof(want),
	         "routes.json: hosts[1] (" ROUTE_SHARD_DIR
	         "/%s.json): client_auth.ca 0 is an empty slot",
	         h[1]);
	load_refused(want);
	write_index(h, 2, b, 2, c, 2, ",\"cas\":[]");
	snprintf(want, sizeof(want),
	         "routes.json: hosts[1] (" ROUTE_SHARD_DIR
	         "/%s.json): client_auth.ca index 0 out of range (the index has 0)",
	         h[1]);
	load_refused(want);

	/* Grown arrays and a hole filled keep every kept host valid: loads,
	 * serves, and is the table in use for what follows. */
	backend(b[2], "ns/b2:80", 80);
	shard(c[2], "{\"name\":\"ns/c2\",\"cert_pem\":\"%s\",\"key_pem\":\"%s\"}",
	      json_pem(CERT_PEM), json_pem(KEY_PEM));
	write_index(h, 2, b, 3, c, 3, cas_one);
	struct table *grown = load_ok();
	if (!grown)
		return;
	CHECK_INT(table_hosts_parsed(grown), 0);
	table_publish(grown);
	CHECK_STR(reach("h0.test", "/"), "ns/b0:80");
	CHECK_STR(reach("h1.test", "/"), "ns/b1:80");
	/* Shrunk again, but below what any host names: the full check passes. */
	write_index(h, 2, b, 2, c, 2, cas_one);
	struct table *shrunk = load_ok();
	if (shrunk)
		table_publish(shrunk);
	CHECK_STR(reach("h1.test", "/"), "ns/b1:80");

	/* backend_tls shorter than a kept host's profile */
	shard(h1tls,
	      "{\"name\":\"h1.test\",\"cert\":1,\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
	      "\"backend\":1,\"policy\":{\"backend_protocol\":\"HTTPS\",\"backend_tls\":"
	      "{\"profile\":0}}}]}");
	memcpy(h[1], h1tls, ID_SIZE);
	write_index(h, 2, b, 2, c, 2, ",\"backend_tls\":[{\"name\":\"ns/tls\"}]");
	struct table *tls = load_ok();
	if (tls)
		table_publish(tls);
	write_index(h, 2, b, 2, c, 2, ",\"backend_tls\":[]");
	snprintf(want, sizeof(want),
	         "routes.json: hosts[1] (" ROUTE_SHARD_DIR
	         "/%s.json): backend_tls.profile index 0 out of range (the index has 0)",
	         h[1]);
	load_refused(want);
}

/* The host index of a reload whose positions keep their host names comes
 * from the table in use; it must point at the new table's hosts and names
 * (a changed host's old shard is freed with the old table), and a changed
 * name at a position must still be sorted in and checked for duplicates. */
static void test_host_index_across_reloads(void)
{
	char h[4][ID_SIZE], b[3][ID_SIZE], c[1][ID_SIZE], want[256];
	host(h[0], "", -1, -1, 0);
	host(h[1], "*.w.test", -1, -1, 1);
	host(h[2], "a.test", -1, -1, 0);
	host(h[3], "b.test", -1, -1, 1);
	backend(b[0], "ns/b0:80", 80);
	backend(b[1], "ns/b1:80", 80);
	b[2][0] = '\0';
	write_index(h, 4, b, 3, c, 0, NULL);
	struct table *a = load_ok();
	if (!a)
		return;
	table_publish(a);

	/* b.test and *.w.test change, same names: the old shards go with a */
	shard(h[3], "{\"name\":\"b.test\",\"routes\":[{\"path\":\"/new\",\"match\":\"exact\","
	            "\"backend\":0}]}");
	shard(h[1], "{\"name\":\"*.w.test\",\"routes\":[{\"path\":\"/w\",\"match\":\"prefix\","
	            "\"backend\":0}]}");
	write_index(h, 4, b, 3, c, 0, NULL);
	struct table *t = load_ok();
	if (!t)
		return;
	CHECK_INT(table_hosts_parsed(t), 2);
	table_publish(t); /* frees a */
	CHECK_STR(reach("b.test", "/new"), "ns/b0:80");
	CHECK_STR(reach("B.Test:8443", "/"), "404");
	CHECK_STR(reach("x.w.test", "/w/1"), "ns/b0:80");
	CHECK_STR(reach("x.w.test", "/"), "404");
	CHECK_STR(reach("a.test", "/"), "ns/b0:80");
	CHECK_STR(reach("other.test", "/"), "ns/b0:80");
	t = table_current();
	if (t) {
		const struct route_host *sni = table_sni_host(t, "x.w.test");
		CHECK(sni != NULL && strcmp(sni->name, "*.w.test") == 0);
		table_unref(t);
	}

	/* a host takes the name another position has: a duplicate */
	char dup[4][ID_SIZE];
	memcpy(dup, h, sizeof(dup));
	host(dup[3], "a.test", -1, -1, 1);
	write_index(dup, 4, b, 3, c, 0, NULL);
	load_refused("routes.json: hosts: duplicate host \"a.test\"");
	/* the "" host twice */
	host(dup[3], "", -1, -1, 1);
	write_index(dup, 4, b, 3, c, 0, NULL);
	load_refused("routes.json: hosts[3].name: duplicate host \"\"");

	/* a new name at a position: sorted in, the old one gone */
	host(h[3], "0.test", -1, -1, 1);
	write_index(h, 4, b, 3, c, 0, NULL);
	t = load_ok();
	if (t)
		table_publish(t);
	CHECK_STR(reach("0.test", "/"), "ns/b1:80");
	CHECK_STR(reach("b.test", "/"), "ns/b0:80"); /* the "" host's */
	t = table_current();
	if (t) {
		const struct route_host *any = table_sni_host(t, "b.test");
		CHECK(any != NULL && any->name[0] == '\0');
		table_unref(t);
	}
	CHECK_STR(reach("a.test", "/"), "ns/b0:80");

	/* backend names: a changed backend or a filled hole taking a name
	 * another position has is a duplicate; the same name changed is not */
	char bdup[3][ID_SIZE];
	memcpy(bdup, b, sizeof(bdup));
	backend(bdup[1], "ns/b0:80", 81);
	write_index(h, 4, bdup, 3, c, 0, NULL);
	snprintf(want, sizeof(want), "routes.json: backends: duplicate backend name \"ns/b0:80\"");
	load_refused(want);
	memcpy(bdup, b, sizeof(bdup));
	backend(bdup[2], "ns/b1:80", 82);
	write_index(h, 4, bdup, 3, c, 0, NULL);
	snprintf(want, sizeof(want), "routes.json: backends: duplicate backend name \"ns/b1:80\"");
	load_refused(want);
	backend(b[1], "ns/b1:80", 83);
	write_index(h, 4, b, 3, c, 0, NULL);
	t = load_ok();
	if (t) {
		const struct route_table *rt = table_routes(t);
		CHECK_INT(rt->backends[1].endpoints[0].port, 83);
		table_publish(t);
	}
	CHECK_STR(reach("0.test", "/"), "ns/b1:80");
}

/* 1 when header value v selects the canary of host's route "/". */
static int canary(const char *hostname, const char *v)
{
	struct table *t = table_current();
	struct table_match m;
	int r = -1;
	if (t && table_lookup(t, hostname, strlen(hostname), "/", 1, &m) == 0)
		r = table_canary_pattern_match(t, m.route, v, strlen(v));
	table_unref(t);
	return r;
}

/* Canary patterns belong to the host shards: a reload keeps those of the
 * hosts it keeps and takes the changed hosts' new ones. */
static void test_canary_patterns_across_reloads(void)
{
	char h[3][ID_SIZE], b[2][ID_SIZE], c[1][ID_SIZE];
	const char *fmt = "{\"name\":\"%s\",\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
	                  "\"backend\":0,\"canary\":{\"backend\":1,\"by_header\":\"x-canary\","
	                  "\"by_header_pattern\":\"%s\"}}]}";
	shard(h[0], fmt, "c0.test", "^yes");
	host(h[1], "c1.test", -1, -1, 0);
	shard(h[2], fmt, "c2.test", "^two");
	backend(b[0], "ns/main:80", 80);
	backend(b[1], "ns/canary:80", 80);
	write_index(h, 3, b, 2, c, 0, NULL);
	struct table *t = load_ok();
	if (!t)
		return;
	table_publish(t);
	CHECK_INT(canary("c0.test", "yes please"), 1);
	CHECK_INT(canary("c0.test", "no"), 0);
	CHECK_INT(canary("c1.test", "yes"), 0);
	CHECK_INT(canary("c2.test", "two"), 1);

	/* c1 gains a pattern (sorted in among the kept ones), c2 changes its */
	shard(h[1], fmt, "c1.test", "^one");
	shard(h[2], fmt, "c2.test", "^deux");
	write_index(h, 3, b, 2, c, 0, NULL);
	t = load_ok();
	if (t)
		table_publish(t); /* the old c1 and c2 shards go */
	CHECK_INT(canary("c0.test", "yes"), 1);
	CHECK_INT(canary("c1.test", "one"), 1);
	CHECK_INT(canary("c2.test", "two"), 0);
	CHECK_INT(canary("c2.test", "deux"), 1);

	/* c0 loses its pattern */
	host(h[0], "c0.test", -1, -1, 0);
	write_index(h, 3, b, 2, c, 0, NULL);
	t = load_ok();
	if (t)
		table_publish(t);
	CHECK_INT(canary("c0.test", "yes"), 0);
	CHECK_INT(canary("c1.test", "one"), 1);
	CHECK_INT(canary("c2.test", "deux"), 1);
}

/* A list shard of the ids (as the publisher writes it) into id. */
static void list_shard(char id[ID_SIZE], char ids[][ID_SIZE], size_t n)
{
	char text[8192];
	size_t len = (size_t)snprintf(text, sizeof(text), "[\n");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "  \"%s\"%s\n", ids[i],
		                        i + 1 < n ? "," : "");
	snprintf(text + len, sizeof(text) - len, "]\n");
	shard(id, "%s", text);
}

static void remove_shard(const char *id)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s/%s.json", dir, ROUTE_SHARD_DIR, id);
	CHECK_INT(unlink(path), 0);
}

/* An index naming its hosts and backends through id lists: loaded as the
 * same index with the ids inline; a reload takes the lists the table in
 * use was built from from that table (their files are not read again),
 * and reads the others. */
static void test_id_lists(void)
{
	char h[3][ID_SIZE], b[2][ID_SIZE], hl[2][ID_SIZE], bl[1][ID_SIZE], path[512];
	static char json[4096];
	host(h[0], "l0.test", -1, -1, 0);
	host(h[1], "l1.test", -1, -1, 1);
	host(h[2], "l2.test", -1, -1, 1);
	backend(b[0], "ns/l0:80", 80);
	backend(b[1], "ns/l1:80", 80);
	list_shard(hl[0], h, 2);
	list_shard(hl[1], h + 2, 1);
	list_shard(bl[0], b, 2);
	snprintf(path, sizeof(path), "%s/%s", dir, ROUTE_TABLE_FILE);
#define LISTED_INDEX(bl0)                                                                          \
	snprintf(json, sizeof(json),                                                               \
	         "{\"version\":2,\"generation\":%llu,\"host_lists\":[\"%s\",\"%s\"],"              \
	         "\"backend_lists\":[\"%s\"]}",                                                    \
	         ++generation, hl[0], hl[1], bl0);                                                 \
	write_file(path, json)
	LISTED_INDEX(bl[0]);
	struct table *t = load_ok();
	if (!t)
		return;
	table_publish(t);
	CHECK_STR(reach("l0.test", "/"), "ns/l0:80");
	CHECK_STR(reach("l2.test", "/"), "ns/l1:80");

	/* l1's port changes: a new backend shard and backend list; the host
	 * lists' files are gone, and not needed (the table in use has them) */
	char b2[2][ID_SIZE], bl2[ID_SIZE];
	memcpy(b2, b, sizeof(b2));
	backend(b2[1], "ns/l1-new:80", 81);
	list_shard(bl2, b2, 2);
	remove_shard(hl[0]);
	remove_shard(hl[1]);
	LISTED_INDEX(bl2);
	t = load_ok();
	if (!t)
		return;
	CHECK_INT(table_hosts_parsed(t), 0);
	table_publish(t);
	CHECK_STR(reach("l2.test", "/"), "ns/l1-new:80");
	CHECK_STR(reach("l0.test", "/"), "ns/l0:80");

	/* a list neither on disk nor in the table in use: refused, kept serving */
	char err[512] = "", want[512];
	struct table *none = NULL;
	LISTED_INDEX(bl[0]); /* bl[0]'s file is there: reads it */
	t = load_ok();
	if (t)
		table_publish(t);
	CHECK_STR(reach("l2.test", "/"), "ns/l1:80");
	remove_shard(bl2);
	LISTED_INDEX(bl2);
	CHECK_INT(table_load(dir, &none, err, sizeof(err)), WEIR_EIO);
	snprintf(want, sizeof(want),
	         "routes.json: backend_lists[0]: shards/%s.json: No such file or directory", bl2);
	CHECK_STR(err, want);
	/* a list whose bytes are not its name's */
	snprintf(path, sizeof(path), "%s/%s/%s.json", dir, ROUTE_SHARD_DIR, bl2);
	write_file(path, "[\"\"]\n");
	snprintf(path, sizeof(path), "%s/%s", dir, ROUTE_TABLE_FILE);
	LISTED_INDEX(bl2);
	CHECK(table_load(dir, &none, err, sizeof(err)) != 0);
	CHECK(strstr(err, "content does not match its name") != NULL);
	CHECK_STR(reach("l2.test", "/"), "ns/l1:80");
#undef LISTED_INDEX
}

int main(void)
{
	char path[512];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/%s", dir, ROUTE_SHARD_DIR);
	CHECK_INT(mkdir(path, 0755), 0);
	test_kept_host_checked_against_new_shape();
	test_host_index_across_reloads();
	test_canary_patterns_across_reloads();
	test_id_lists();
	rm_tree(dir);
	return check_finish("table_sharded_test");
}
