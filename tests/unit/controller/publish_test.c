/* tests/unit/controller/publish_test.c - change-only writes, generation
 * continues from the file on disk, no temporary file left behind; version 2:
 * stable slots (an unrelated change writes only the changed host's shard and
 * the index), holes and compaction, garbage collection of shard files. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "controller/publish.h"
#include "error.h"
#include "route_validate.h"

/* Id lists: the v2 tests run once as a table of this size is published
 * (inline ids), once with lists of a few ids each. */
static size_t list_min, list_max;

static int pub_new(const char *dir, struct publisher **out)
{
	int rc = publisher_new(dir, out);
	if (rc == 0 && list_min)
		publisher_set_lists(*out, list_min, list_max);
	return rc;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static size_t count_files(const char *dir)
{
	size_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	if (d)
		closedir(d);
	return n;
}

/* Files in a shard directory that are not id lists (a list's text starts
 * with '['). */
static size_t count_shards(const char *sdir)
{
	size_t n = 0;
	char path[1024];
	DIR *d = opendir(sdir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", sdir, de->d_name);
		FILE *f = fopen(path, "r");
		n += f && fgetc(f) != '[';
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return n;
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

static void test_v1(void)
{
	char dir[] = "/tmp/weir-publish-test-XXXXXX";
	char path[512];
	bool written = false;
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/%s", dir, ROUTE_TABLE_FILE);

	struct publisher *p = NULL;
	CHECK_INT(publisher_new_format(dir, PUBLISH_V1, &p), 0);
	CHECK_INT(publisher_generation(p), 0);
	struct route_table *t = route_table_new();
	CHECK_INT(publisher_publish(p, t, &written), 0);
	CHECK(written);
	CHECK_INT(publisher_generation(p), 1);
	struct stat st;
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode & 0777 & ~0640, 0); /* keys and hashes: not world-readable */
	CHECK_INT(publisher_publish(p, t, &written), 0);
	CHECK(!written); /* unchanged: nothing written */
	CHECK_INT(publisher_generation(p), 1);
	t->settings.upstream_keepalive = 7;
	CHECK_INT(publisher_publish(p, t, &written), 0);
	CHECK(written);
	CHECK_INT(publisher_generation(p), 2);
	CHECK_INT(count_files(dir), 1); /* routes.json only, no temporary left */
	publisher_free(p);

	/* the file parses and carries the generation */
	char *text = slurp(path);
	struct route_table *back = NULL;
	char err[256];
	CHECK(text != NULL);
	CHECK_INT(route_table_parse(text, strlen(text), &back, err, sizeof(err)), 0);
	if (back) {
		CHECK_INT(back->generation, 2);
		CHECK_INT(back->settings.upstream_keepalive, 7);
		route_table_free(back);
	}
	free(text);

	/* a restart continues from the file: same table -> no write */
	CHECK_INT(publisher_new_format(dir, PUBLISH_V1, &p), 0);
	CHECK_INT(publisher_generation(p), 2);
	CHECK_INT(publisher_publish(p, t, &written), 0);
	CHECK(!written);
	t->settings.upstream_keepalive = 9;
	CHECK_INT(publisher_publish(p, t, &written), 0);
	CHECK(written);
	CHECK_INT(publisher_generation(p), 3);
	publisher_free(p);
	route_table_free(t);

	/* an unwritable location fails cleanly */
	CHECK_INT(pub_new("/proc/weir-no-such-dir", &p), WEIR_EIO);
	rm_rf(dir);
}

/* ------------------------------------------------------------ version 2 */

/* A table of hosts h<i>.test (i in [0, n), skipping skip[]), host i routing
 * to backend ns/b<i>:80 with endpoint port 1000+i (+ bump for host bump_at)
 * and serving cert ns/c<i>; backends and certs sorted by name as compile
 * writes them. extra: a backend "aaa/first:80" sorting before all others
 * and a host "a0.test" using it (shifts every compiled backend index). */
static struct route_table *make_table(int n, const int *skip, int nskip, bool extra,
                                      int changed_host, int bump_at)
{
	size_t cap = 1 << 20, len = 0;
	char *j = malloc(cap);
	bool first;
#define OUT(...) (len += (size_t)snprintf(j + len, cap - len, __VA_ARGS__))
	int idx[64], k = 0, nb = 0;
	for (int i = 0; i < n; i++) {
		bool s = false;
		for (int x = 0; x < nskip; x++)
			s |= skip[x] == i;
		idx[i] = s ? -1 : k++;
	}
	nb = k + (extra ? 1 : 0);
	(void)nb;
	OUT("{\"version\":1,\"hosts\":[");
	first = true;
	if (extra) {
		OUT("{\"name\":\"a0.test\",\"routes\":[{\"path\":\"/\",\"match\":\"prefix\","
		    "\"backend\":0}]}");
		first = false;
	}
	for (int i = 0; i < n; i++) {
		if (idx[i] < 0)
			continue;
		int b = idx[i] + (extra ? 1 : 0);
		OUT("%s{\"name\":\"h%02d.test\",\"cert\":%d,\"routes\":[{\"path\":\"/%s\","
		    "\"match\":\"prefix\",\"backend\":%d}]}",
		    first ? "" : ",", i, idx[i], i == changed_host ? "changed" : "", b);
		first = false;
	}
	OUT("],\"backends\":[");
	first = true;
	if (extra) {
		OUT("{\"name\":\"aaa/first:80\",\"endpoints\":[{\"address\":\"10.0.0.1\","
		    "\"port\":80}]}");
		first = false;
	}
	for (int i = 0; i < n; i++) {
		if (idx[i] < 0)
			continue;
		OUT("%s{\"name\":\"ns/b%02d:80\",\"endpoints\":[{\"address\":\"10.0.0.2\","
		    "\"port\":%d}]}",
		    first ? "" : ",", i, 1000 + i + (i == bump_at ? 500 : 0));
		first = false;
	}
	OUT("],\"certs\":[");
	first = true;
	for (int i = 0; i < n; i++) {
		if (idx[i] < 0)
			continue;
		OUT("%s{\"name\":\"ns/c%02d\",\"cert_pem\":\"CERT %d\",\"key_pem\":\"KEY %d\"}",
		    first ? "" : ",", i, i, i);
		first = false;
	}
	OUT("]}");
#undef OUT
	struct route_table *t = NULL;
	char err[256];
	int rc = route_table_parse(j, len, &t, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "make_table: %s\n", err);
	CHECK_INT(rc, 0);
	free(j);
	return t;
}

/* The index on disk and its shard ids (caller frees both). */
static struct route_table *read_index(const char *dir, struct route_index **ix)
{
	char path[512], err[256];
	snprintf(path, sizeof(path), "%s/%s", dir, ROUTE_TABLE_FILE);
	char *text = slurp(path);
	struct route_table *t = NULL;
	*ix = NULL;
	CHECK(text != NULL);
	if (!text)
		return NULL;
	struct route_list_reader lists = {route_list_read_file, (void *)dir};
	int rc = route_table_parse_index(text, strlen(text), &lists, &t, ix, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "read_index: %s\n", err);
	CHECK_INT(rc, 0);
	CHECK(*ix != NULL);
	free(text);
	/* the backends from their shards (holes stay unnamed) */
	for (size_t i = 0; t && *ix && i < (*ix)->nbackends; i++) {
		if (!(*ix)->backends[i][0])
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s.json", dir, ROUTE_SHARD_DIR,
		         (*ix)->backends[i]);
		char *b = slurp(path);
		CHECK(b != NULL);
		if (b)
			CHECK_INT(route_backend_shard_parse(b, strlen(b), &t->backends[i], err,
			                                    sizeof(err)),
			          0);
		free(b);
	}
	return t;
}

static bool shard_exists(const char *dir, const char *id)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s/%s.json", dir, ROUTE_SHARD_DIR, id);
	return access(path, F_OK) == 0;
}

static int64_t fake_now;
static int64_t fake_clock(void)
{
	return fake_now;
}

static void publish_ok(struct publisher *p, struct route_table *t, bool want_written)
{
	bool written = false;
	CHECK_INT(publisher_publish(p, t, &written), 0);
	CHECK_INT(written, want_written);
	route_table_free(t);
}

static void test_v2_slots(void)
{
	char dir[] = "/tmp/weir-publish-v2-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	struct publisher *p = NULL;
	struct route_index *ix = NULL;
	struct route_table *it;
	const struct publish_stats *st;
	CHECK_INT(pub_new(dir, &p), 0);
	publisher_set_clock(p, fake_clock);
	fake_now = 1000;
	st = publisher_stats(p);

	publish_ok(p, make_table(10, NULL, 0, false, -1, -1), true);
	CHECK_INT(st->host_shards, 10);
	CHECK_INT(st->cert_shards, 10);
	CHECK_INT(st->backend_shards, 10);
	CHECK_INT(st->shards_written, 30);
	CHECK_INT(count_files(dir), 2); /* routes.json and shards/ */
	char sdir[512];
	snprintf(sdir, sizeof(sdir), "%s/%s", dir, ROUTE_SHARD_DIR);
	CHECK_INT(count_shards(sdir), 30); /* no temporary left */
	/* and the lists: at most 3 ids each, so 4 a kind at least */
	CHECK_INT(count_files(sdir), 30 + st->lists_written);
	CHECK(list_min ? st->lists_written >= 12 : st->lists_written == 0);
	it = read_index(dir, &ix);
	CHECK_INT(it->version, ROUTE_INDEX_VERSION);
	CHECK_INT(ix->nhosts, 10);
	CHECK_INT(ix->ncerts, 10);
	char h5[ROUTE_SHARD_ID_LEN + 1];
	memcpy(h5, ix->hosts[5], sizeof(h5));
	route_index_free(ix);
	route_table_free(it);

	/* unchanged: nothing written */
	publish_ok(p, make_table(10, NULL, 0, false, -1, -1), false);
	CHECK_INT(st->shards_written, 0);

	/* a backend sorting first and a host using it: every compiled backend
	 * index moves, yet only the new host's and the new backend's shards are
	 * written */
	publish_ok(p, make_table(10, NULL, 0, true, -1, -1), true);
	CHECK_INT(st->shards_written, 2);
	CHECK_INT(st->host_shards, 11);
	CHECK(!st->compacted);
	it = read_index(dir, &ix);
	CHECK_INT(it->nbackends, 11);
	CHECK_STR(it->backends[10].name, "aaa/first:80"); /* appended: a new slot */
	CHECK_STR(ix->hosts[6], h5);                      /* h05 after a0: same shard */
	route_index_free(ix);
	route_table_free(it);

	/* an endpoint-only change: that backend's shard and the index, no host */
	publish_ok(p, make_table(10, NULL, 0, true, -1, 3), true);
	CHECK_INT(st->shards_written, 1);
	it = read_index(dir, &ix);
	CHECK_INT(it->backends[3].endpoints[0].port, 1503);
	route_index_free(ix);
	route_table_free(it);

	/* one host's route changed: one shard */
	publish_ok(p, make_table(10, NULL, 0, true, 7, 3), true);
	CHECK_INT(st->shards_written, 1);

	/* two hosts (with their backends and certs) removed: holes, nothing
	 * else written; the holes are placeholders nothing refers to */
	int skip[] = {2, 4};
	publish_ok(p, make_table(10, skip, 2, true, 7, 3), true);
	CHECK_INT(st->shards_written, 0);
	it = read_index(dir, &ix);
	CHECK_INT(it->nbackends, 11);
	CHECK_STR(ix->backends[2], "");
	CHECK(it->backends[2].name == NULL);
	CHECK_STR(ix->certs[4], "");
	CHECK_INT(ix->ncerts, 10);
	CHECK_INT(ix->nhosts, 9);
	route_index_free(ix);
	route_table_free(it);

	/* a host back takes the lowest hole: its old slots, so the same shard
	 * text, still on disk (younger than the grace period) */
	int skip4[] = {4};
	publish_ok(p, make_table(10, skip4, 1, true, 7, 3), true);
	CHECK_INT(st->shards_written, 0);
	it = read_index(dir, &ix);
	CHECK_STR(it->backends[2].name, "ns/b02:80");
	CHECK(ix->certs[2][0] != '\0');
	CHECK_STR(ix->certs[4], "");
	route_index_free(ix);
	route_table_free(it);

	/* a restart publishing the same table writes nothing */
	publisher_free(p);
	CHECK_INT(pub_new(dir, &p), 0);
	publisher_set_clock(p, fake_clock);
	st = publisher_stats(p);
	publish_ok(p, make_table(10, skip4, 1, true, 7, 3), false);
	publish_ok(p, make_table(10, skip4, 1, true, 7, -1), true);
	CHECK_INT(st->shards_written, 0);

	/* more than half the slots holes: compacted, every shard rewritten once */
	int many[] = {0, 1, 2, 3, 4, 5, 6};
	publish_ok(p, make_table(10, many, 7, true, -1, -1), true);
	CHECK(st->compacted);
	it = read_index(dir, &ix);
	CHECK_INT(it->nbackends, 4);
	for (size_t i = 0; i < it->nbackends; i++)
		CHECK(it->backends[i].name[0] != '\0');
	CHECK_INT(ix->ncerts, 3);
	route_index_free(ix);
	route_table_free(it);
	publisher_free(p);
	rm_rf(dir);
}

/* Same history, same bytes: the index and the shards are deterministic. */
static void test_v2_deterministic(void)
{
	char a[] = "/tmp/weir-publish-da-XXXXXX", b[] = "/tmp/weir-publish-db-XXXXXX";
	char pa[512], pb[512];
	CHECK(mkdtemp(a) != NULL && mkdtemp(b) != NULL);
	struct publisher *p = NULL, *q = NULL;
	CHECK_INT(pub_new(a, &p), 0);
	CHECK_INT(pub_new(b, &q), 0);
	int skip[] = {3};
	publish_ok(p, make_table(8, NULL, 0, false, -1, -1), true);
	publish_ok(q, make_table(8, NULL, 0, false, -1, -1), true);
	publish_ok(p, make_table(8, skip, 1, true, 5, 2), true);
	publish_ok(q, make_table(8, skip, 1, true, 5, 2), true);
	snprintf(pa, sizeof(pa), "%s/%s", a, ROUTE_TABLE_FILE);
	snprintf(pb, sizeof(pb), "%s/%s", b, ROUTE_TABLE_FILE);
	char *ta = slurp(pa), *tb = slurp(pb);
	CHECK(ta && tb && strcmp(ta, tb) == 0);
	free(ta);
	free(tb);
	publisher_free(p);
	publisher_free(q);
	rm_rf(a);
	rm_rf(b);
}

/* The two publish directories hold the same index. */
static bool same_index(const char *a, const char *b)
{
	char pa[512], pb[512];
	snprintf(pa, sizeof(pa), "%s/%s", a, ROUTE_TABLE_FILE);
	snprintf(pb, sizeof(pb), "%s/%s", b, ROUTE_TABLE_FILE);
	char *ta = slurp(pa), *tb = slurp(pb);
	bool same = ta && tb && strcmp(ta, tb) == 0;
	free(ta);
	free(tb);
	return same;
}

/* An endpoint-only change published with publisher_publish_changed names
 * the same host shards without serializing a host, and its index is the one
 * a full publish of the same table writes. */
static void test_v2_endpoints(void)
{
	char a[] = "/tmp/weir-publish-ea-XXXXXX", b[] = "/tmp/weir-publish-eb-XXXXXX";
	CHECK(mkdtemp(a) != NULL && mkdtemp(b) != NULL);
	struct publisher *p = NULL, *q = NULL;
	CHECK_INT(pub_new(a, &p), 0);
	CHECK_INT(pub_new(b, &q), 0);
	publish_ok(p, make_table(8, NULL, 0, false, -1, -1), true);
	publish_ok(q, make_table(8, NULL, 0, false, -1, -1), true);
	/* backend 2's endpoint port moves */
	struct route_table *t = make_table(8, NULL, 0, false, -1, 2);
	bool written = false;
	CHECK_INT(publisher_publish_changed(p, t, NULL, 0, &written), 0);
	CHECK(written);
	CHECK_INT(publisher_stats(p)->hosts_reused, 8);
	CHECK_INT(publisher_stats(p)->backends_reused, 7); /* all but backend 2 */
	CHECK_INT(publisher_stats(p)->host_shards, 8);
	CHECK_INT(publisher_stats(p)->shards_written, 1); /* the backend alone */
	route_table_free(t);
	publish_ok(q, make_table(8, NULL, 0, false, -1, 2), true);
	CHECK_INT(publisher_stats(q)->hosts_reused, 0);
	CHECK(same_index(a, b));
	/* the same again: nothing to write */
	t = make_table(8, NULL, 0, false, -1, 2);
	CHECK_INT(publisher_publish_changed(p, t, NULL, 0, &written), 0);
	CHECK(!written);
	route_table_free(t);
	/* one host changed, named as such: the seven others are reused */
	char *h04[] = {"h04.test"};
	t = make_table(8, NULL, 0, false, 4, 2);
	CHECK_INT(publisher_publish_changed(p, t, h04, 1, &written), 0);
	CHECK(written);
	CHECK_INT(publisher_stats(p)->hosts_reused, 7);
	route_table_free(t);
	publish_ok(q, make_table(8, NULL, 0, false, 4, 2), true);
	CHECK(same_index(a, b));
	/* a host added in front, with a backend that sorts first: every
	 * other host's backend index moves, its slot does not */
	char *a0[] = {"a0.test"};
	t = make_table(8, NULL, 0, true, 4, 2);
	CHECK_INT(publisher_publish_changed(p, t, a0, 1, &written), 0);
	CHECK(written);
	CHECK_INT(publisher_stats(p)->hosts_reused, 8);
	route_table_free(t);
	publish_ok(q, make_table(8, NULL, 0, true, 4, 2), true);
	CHECK(same_index(a, b));
	/* the same names again, two hosts changed (h04 back, h05 changed):
	 * replaced in place */
	char *h45[] = {"h04.test", "h05.test"};
	t = make_table(8, NULL, 0, true, 5, 2);
	CHECK_INT(publisher_publish_changed(p, t, h45, 2, &written), 0);
	CHECK(written);
	CHECK_INT(publisher_stats(p)->hosts_reused, 7);
	CHECK_INT(publisher_stats(p)->host_shards, 9);
	route_table_free(t);
	publish_ok(q, make_table(8, NULL, 0, true, 5, 2), true);
	CHECK(same_index(a, b));
	/* and the full form after it agrees */
	publish_ok(p, make_table(8, NULL, 0, true, 6, 2), true);
	publish_ok(q, make_table(8, NULL, 0, true, 6, 2), true);
	CHECK(same_index(a, b));
	publisher_free(p);
	publisher_free(q);
	rm_rf(a);
	rm_rf(b);
}

/* publisher_publish_endpoints: only the named backends are looked at, and
 * the index is the one a full publish writes; when its premise does not
 * hold (the backend count changed) it compares everything. */
static void test_v2_publish_endpoints(void)
{
	char a[] = "/tmp/weir-publish-pa-XXXXXX", b[] = "/tmp/weir-publish-pb-XXXXXX";
	CHECK(mkdtemp(a) != NULL && mkdtemp(b) != NULL);
	struct publisher *p = NULL, *q = NULL;
	CHECK_INT(pub_new(a, &p), 0);
	CHECK_INT(pub_new(b, &q), 0);
	bool written = false;
	/* before any publish: no premise, a full compare */
	size_t two[] = {2};
	struct route_table *t = make_table(8, NULL, 0, false, -1, -1);
	CHECK_INT(publisher_publish_endpoints(p, t, two, 1, &written), 0);
	CHECK(written);
	route_table_free(t);
	publish_ok(q, make_table(8, NULL, 0, false, -1, -1), true);
	CHECK(same_index(a, b));
	/* backend 2's port moves */
	t = make_table(8, NULL, 0, false, -1, 2);
	CHECK_INT(publisher_publish_endpoints(p, t, two, 1, &written), 0);
	CHECK(written);
	CHECK_INT(publisher_stats(p)->backends_reused, 7);
	CHECK_INT(publisher_stats(p)->hosts_reused, 8);
	CHECK_INT(publisher_stats(p)->shards_written, 1);
	route_table_free(t);
	publish_ok(q, make_table(8, NULL, 0, false, -1, 2), true);
	CHECK(same_index(a, b));
	/* back again, named among others that did not change */
	size_t some[] = {0, 2, 7};
	t = make_table(8, NULL, 0, false, -1, -1);
	CHECK_INT(publisher_publish_endpoints(p, t, some, 3, &written), 0);
	CHECK(written);
	CHECK_INT(publisher_stats(p)->backends_reused, 5);
	route_table_free(t);
	publish_ok(q, make_table(8, NULL, 0, false, -1, -1), true);
	CHECK(same_index(a, b));
	/* backend 6 moves and back, ten times (the generation gains a digit on
	 * the way): each index is the last one with an id and the generation
	 * replaced, the same bytes a full publish writes */
	size_t one_six[] = {6, 1};
	for (int i = 0; i < 10; i++) {
		t = make_table(8, NULL, 0, false, -1, i % 2 ? -1 : 6);
		CHECK_INT(publisher_publish_endpoints(p, t, one_six, 2, &written), 0);
		CHECK(written);
		CHECK_INT(publisher_stats(p)->backends_reused, 6);
		CHECK_INT(publisher_stats(p)->hosts_reused, 8);
		CHECK_INT(publisher_stats(p)->shards_written, i == 0);
		CHECK_INT(t->generation, publisher_generation(p));
		route_table_free(t);
		publish_ok(q, make_table(8, NULL, 0, false, -1, i % 2 ? -1 : 6), true);
		CHECK(same_index(a, b));
	}
	/* named, but the same as published: nothing is written */
	t = make_table(8, NULL, 0, false, -1, -1);
	CHECK_INT(publisher_publish_endpoints(p, t, one_six, 2, &written), 0);
	CHECK(!written);
	route_table_free(t);
	/* one backend fewer than the last table: everything is compared */
	int skip[] = {5};
	t = make_table(8, skip, 1, false, -1, 2);
	CHECK_INT(publisher_publish_endpoints(p, t, two, 1, &written), 0);
	CHECK(written);
	route_table_free(t);
	publish_ok(q, make_table(8, skip, 1, false, -1, 2), true);
	CHECK(same_index(a, b));
	publisher_free(p);
	publisher_free(q);
	rm_rf(a);
	rm_rf(b);
}

/* A hosts-only change published with publisher_publish_hosts compares no
 * backend and writes only the changed host's shard; its index is the one a
 * full publish of the same table writes. */
static void test_v2_publish_hosts(void)
{
	char a[] = "/tmp/weir-publish-ha-XXXXXX", b[] = "/tmp/weir-publish-hb-XXXXXX";
	CHECK(mkdtemp(a) != NULL && mkdtemp(b) != NULL);
	struct publisher *p = NULL, *q = NULL;
	CHECK_INT(pub_new(a, &p), 0);
	CHECK_INT(pub_new(b, &q), 0);
	bool written = false;
	char *h3[] = {"h03.test"}, *h3h6[] = {"h03.test", "h06.test"};
	/* before any publish: no premise, a full compare */
	struct route_table *t = make_table(8, NULL, 0, false, -1, -1);
	CHECK_INT(publisher_publish_hosts(p, t, h3, 1, &written), 0);
	CHECK(written);
	route_table_free(t);
	publish_ok(q, make_table(8, NULL, 0, false, -1, -1), true);
	CHECK(same_index(a, b));
	/* host 3's route changes */
	t = make_table(8, NULL, 0, false, 3, -1);
	CHECK_INT(publisher_publish_hosts(p, t, h3, 1, &written), 0);
	CHECK(written);
	CHECK_INT(publisher_stats(p)->hosts_reused, 7);
	CHECK_INT(publisher_stats(p)->backends_reused, 8);
	CHECK_INT(publisher_stats(p)->shards_written, 1);
	route_table_free(t);
	publish_ok(q, make_table(8, NULL, 0, false, 3, -1), true);
	CHECK(same_index(a, b));
	/* back, named with one that did not change: nothing new to write */
	t = make_table(8, NULL, 0, false, -1, -1);
	CHECK_INT(publisher_publish_hosts(p, t, h3h6, 2, &written), 0);
	CHECK(written);
	CHECK_INT(publisher_stats(p)->hosts_reused, 6);
	CHECK_INT(publisher_stats(p)->shards_written, 0);
	route_table_free(t);
	publish_ok(q, make_table(8, NULL, 0, false, -1, -1), true);
	CHECK(same_index(a, b));
	/* a host and its backend fewer than the last table: the premise fails,
	 * everything is compared */
	int skip[] = {5};
	char *h5[] = {"h05.test"};
	t = make_table(8, skip, 1, false, -1, -1);
	CHECK_INT(publisher_publish_hosts(p, t, h5, 1, &written), 0);
	CHECK(written);
	route_table_free(t);
	publish_ok(q, make_table(8, skip, 1, false, -1, -1), true);
	CHECK(same_index(a, b));
	publisher_free(p);
	publisher_free(q);
	rm_rf(a);
	rm_rf(b);
}

/* The host names of a make_table(n, skip, ..., extra, changed_host) table
 * that differ from another's: added, removed or changed (sorted). */
static size_t diff_names(int n, const bool *gone_a, bool extra_a, int ch_a, const bool *gone_b,
                         bool extra_b, int ch_b, char names[][16])
{
	size_t k = 0;
	if (extra_a != extra_b)
		snprintf(names[k++], 16, "a0.test");
	for (int i = 0; i < n; i++)
		if (gone_a[i] != gone_b[i] || ((i == ch_a) != (i == ch_b) && !gone_b[i]))
			snprintf(names[k++], 16, "h%02d.test", i);
	return k;
}

/* Hosts come and go and change, one or a few per publish, each publish
 * naming them (publisher_publish_changed, or publisher_publish_hosts when
 * the backends and certificates stayed): the index is every time the one a
 * publisher that publishes each table in full writes, and names shards on
 * disk. */
static void test_v2_hosts_churn(void)
{
	enum { N = 12 };
	char a[] = "/tmp/weir-publish-ra-XXXXXX", b[] = "/tmp/weir-publish-rb-XXXXXX";
	CHECK(mkdtemp(a) != NULL && mkdtemp(b) != NULL);
	struct publisher *p = NULL, *q = NULL;
	CHECK_INT(pub_new(a, &p), 0);
	CHECK_INT(pub_new(b, &q), 0);
	bool gone[N] = {false}, extra = false;
	int ch = -1;
	unsigned seed = 7;
	int skip[N], nskip = 0;
	publish_ok(p, make_table(N, skip, nskip, extra, ch, -1), true);
	publish_ok(q, make_table(N, skip, nskip, extra, ch, -1), true);
	int same = 0;
	for (int step = 0; step < 120; step++) {
		bool g2[N];
		memcpy(g2, gone, sizeof(g2));
		bool e2 = extra;
		int c2 = ch;
		int what = (int)(rand_r(&seed) % 4);
		if (what == 0) /* a host comes or goes (and its backend and certificate) */
			g2[rand_r(&seed) % N] ^= true;
		else if (what == 1) /* the extra host, first by name, comes or goes */
			e2 = !e2;
		else /* another host changes (its route) */
			c2 = (int)(rand_r(&seed) % N);
		if (rand_r(&seed) % 5 == 0) /* sometimes two at once */
			g2[rand_r(&seed) % N] ^= true;
		char names[N + 2][16];
		char *changed[N + 2];
		size_t nchanged = diff_names(N, gone, extra, ch, g2, e2, c2, names);
		for (size_t i = 0; i < nchanged; i++)
			changed[i] = names[i];
		nskip = 0;
		for (int i = 0; i < N; i++)
			if (g2[i])
				skip[nskip++] = i;
		bool kept = memcmp(gone, g2, sizeof(g2)) == 0 && extra == e2;
		struct route_table *t = make_table(N, skip, nskip, e2, c2, -1);
		bool written = false;
		if (kept)
			CHECK_INT(publisher_publish_hosts(p, t, changed, nchanged, &written), 0);
		else
			CHECK_INT(publisher_publish_changed(p, t, changed, nchanged, &written), 0);
		CHECK_INT(written, nchanged > 0);
		route_table_free(t);
		if (nchanged)
			publish_ok(q, make_table(N, skip, nskip, e2, c2, -1), true);
		same += same_index(a, b);
		struct route_index *ix = NULL;
		struct route_table *it = read_index(a, &ix);
		for (size_t i = 0; ix && i < ix->nhosts; i++)
			CHECK(shard_exists(a, ix->hosts[i]));
		CHECK_INT(ix ? (int)ix->nhosts : -1, N - nskip + (e2 ? 1 : 0));
		route_index_free(ix);
		route_table_free(it);
		memcpy(gone, g2, sizeof(g2));
		extra = e2;
		ch = c2;
	}
	CHECK_INT(same, 120);
	publisher_free(p);
	publisher_free(q);
	rm_rf(a);
	rm_rf(b);
}

/* Garbage: a shard goes once none of the last three indexes names it and it
 * is 10 s old; a restart keeps what the index on disk names. */
static void test_v2_gc(void)
{
	char dir[] = "/tmp/weir-publish-gc-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	struct publisher *p = NULL;
	struct route_index *ix = NULL;
	struct route_table *it;
	char id[6][ROUTE_SHARD_ID_LEN + 1];
	const struct publish_stats *st;
	CHECK_INT(pub_new(dir, &p), 0);
	publisher_set_clock(p, fake_clock);
	st = publisher_stats(p);
	fake_now = 5000;
	/* generations 1..4, host h01 different in each (id[g-1]) */
	for (int g = 0; g < 4; g++) {
		struct route_table *t = make_table(3, NULL, 0, false, -1, -1);
		free(t->hosts[1].routes[0].path);
		char path[32];
		snprintf(path, sizeof(path), "/v%d", g);
		t->hosts[1].routes[0].path = strdup(path);
		publish_ok(p, t, true);
		CHECK_INT(st->shards_removed, 0); /* all younger than 10 s */
		it = read_index(dir, &ix);
		memcpy(id[g], ix->hosts[1], sizeof(id[g]));
		route_index_free(ix);
		route_table_free(it);
	}
	CHECK(shard_exists(dir, id[0]));
	fake_now += PUBLISH_SHARD_GRACE_S;
	/* generation 5 names v4: the last three are 3, 4, 5, so v0 (gen 1) and
	 * v1 (gen 2) go; v2 (gen 3) and v3 (gen 4) stay */
	struct route_table *t = make_table(3, NULL, 0, false, -1, -1);
	free(t->hosts[1].routes[0].path);
	t->hosts[1].routes[0].path = strdup("/v4");
	publish_ok(p, t, true);
	/* with lists, the host list of generations 1 and 2 goes as well */
	CHECK_INT(st->shards_removed, list_min ? 4 : 2);
	CHECK(!shard_exists(dir, id[0]));
	CHECK(!shard_exists(dir, id[1]));
	CHECK(shard_exists(dir, id[2]));
	CHECK(shard_exists(dir, id[3]));
	it = read_index(dir, &ix);
	memcpy(id[4], ix->hosts[1], sizeof(id[4]));
	/* h00 has not changed since generation 1: its shard is named by every
	 * index, however old it is */
	memcpy(id[5], ix->hosts[0], sizeof(id[5]));
	CHECK(shard_exists(dir, id[5]));
	route_index_free(ix);
	route_table_free(it);
	publisher_free(p);

	/* a restart: what the index names stays, the rest is garbage */
	CHECK_INT(pub_new(dir, &p), 0);
	publisher_set_clock(p, fake_clock);
	st = publisher_stats(p);
	fake_now = (int64_t)time(NULL) + 100; /* the files' mtimes are real ones now */
	t = make_table(3, NULL, 0, false, -1, -1);
	free(t->hosts[1].routes[0].path);
	t->hosts[1].routes[0].path = strdup("/v5");
	publish_ok(p, t, true);
	/* the shards on disk were stamped with the generation the restart
	 * found (5): v2 and v3 go at once (their files are old), v4 is named
	 * by generation 5 and stays */
	CHECK(!shard_exists(dir, id[2]));
	CHECK(!shard_exists(dir, id[3]));
	CHECK(shard_exists(dir, id[4]));
	CHECK(shard_exists(dir, id[5]));
	/* more generations with only h01 changing: h00's shard stays, v4
	 * goes once three newer indexes do not name it */
	for (int g = 6; g < 10; g++) {
		char vp[32];
		fake_now += PUBLISH_SHARD_GRACE_S;
		t = make_table(3, NULL, 0, false, -1, -1);
		free(t->hosts[1].routes[0].path);
		snprintf(vp, sizeof(vp), "/v%d", g);
		t->hosts[1].routes[0].path = strdup(vp);
		publish_ok(p, t, true);
		CHECK(shard_exists(dir, id[5]));
	}
	CHECK(!shard_exists(dir, id[4]));
	publisher_free(p);

	/* a missing shard named by the index is written again */
	char path[512];
	it = read_index(dir, &ix);
	memcpy(id[4], ix->hosts[1], sizeof(id[4])); /* v9 */
	route_index_free(ix);
	route_table_free(it);
	snprintf(path, sizeof(path), "%s/%s/%s.json", dir, ROUTE_SHARD_DIR, id[4]);
	CHECK_INT(unlink(path), 0);
	CHECK_INT(pub_new(dir, &p), 0);
	t = make_table(3, NULL, 0, false, -1, -1);
	free(t->hosts[1].routes[0].path);
	t->hosts[1].routes[0].path = strdup("/v9");
	publish_ok(p, t, false); /* the index is the same: only the shard is written */
	CHECK(shard_exists(dir, id[4]));
	publisher_free(p);
	rm_rf(dir);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The certificate shard ids dir's index names, sorted, NULL-terminated. */
static char **cert_ids(const char *dir)
{
	struct route_index *ix = NULL;
	struct route_table *t = read_index(dir, &ix);
	char **v = ix ? calloc(ix->ncerts + 1, sizeof(*v)) : NULL;
	size_t n = 0;
	for (size_t i = 0; v && i < ix->ncerts; i++)
		if (ix->certs[i][0])
			v[n++] = strdup(ix->certs[i]);
	if (v)
		qsort(v, n, sizeof(*v), cmp_str);
	route_index_free(ix);
	route_table_free(t);
	return v;
}

static void free_ids(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static struct route_table *with_digests(struct route_table *t)
{
	for (size_t i = 0; t && i < t->ncerts; i++)
		route_cert_digest(t->certs[i].cert_pem, t->certs[i].key_pem, t->certs[i].digest);
	return t;
}

/* A certificate is known by its name and pair digest: a table whose
 * certificates carry the compile's digest is the table without them, for a
 * running publisher and for one that adopts the directory at start; a
 * changed pair (with its new digest) gets a new shard, and the index is the
 * one a publisher given no digests writes. */
static void test_v2_cert_digest(void)
{
	char a[] = "/tmp/weir-publish-ca-XXXXXX", b[] = "/tmp/weir-publish-cb-XXXXXX";
	CHECK(mkdtemp(a) != NULL && mkdtemp(b) != NULL);
	struct publisher *p = NULL, *q = NULL;
	CHECK_INT(pub_new(a, &p), 0);
	publish_ok(p, make_table(6, NULL, 0, false, -1, -1), true);
	publish_ok(p, with_digests(make_table(6, NULL, 0, false, -1, -1)), false);
	publisher_free(p);
	p = NULL;
	CHECK_INT(pub_new(a, &p), 0); /* a restart: slots read back from the shards */
	publish_ok(p, with_digests(make_table(6, NULL, 0, false, -1, -1)), false);

	char **before = cert_ids(a);
	struct route_table *t = make_table(6, NULL, 0, false, -1, -1);
	free(t->certs[2].key_pem);
	t->certs[2].key_pem = strdup("KEY 2 renewed");
	publish_ok(p, with_digests(t), true);
	char **after = cert_ids(a);
	size_t fresh = 0;
	for (size_t i = 0; after && after[i]; i++) {
		bool known = false;
		for (size_t j = 0; before && before[j]; j++)
			known |= strcmp(after[i], before[j]) == 0;
		if (!known) {
			fresh++;
			CHECK(shard_exists(a, after[i]));
		}
	}
	CHECK_INT(fresh, 1);

	CHECK_INT(pub_new(b, &q), 0);
	t = make_table(6, NULL, 0, false, -1, -1);
	free(t->certs[2].key_pem);
	t->certs[2].key_pem = strdup("KEY 2 renewed");
	publish_ok(q, t, true);
	/* b went straight to the renewed table without digests, a through
	 * three publishes with them: the same certificate shards */
	char **direct = cert_ids(b);
	size_t n = 0;
	for (; after && direct && after[n] && direct[n]; n++)
		CHECK_STR(after[n], direct[n]);
	CHECK(after && direct && !after[n] && !direct[n] && n == 6);
	free_ids(before);
	free_ids(after);
	free_ids(direct);
	publisher_free(p);
	publisher_free(q);
	rm_rf(a);
	rm_rf(b);
}

/* publisher_release_pems: the kept table's certificate texts go once they
 * are on disk; publishing that table again to the same publisher writes
 * nothing new, and a publish that would have to write one of them again (a
 * publisher that knows none of them) fails with WEIR_EAGAIN. */
static void test_v2_release_pems(void)
{
	char a[] = "/tmp/weir-publish-ra-XXXXXX", b[] = "/tmp/weir-publish-rb-XXXXXX";
	CHECK(mkdtemp(a) != NULL && mkdtemp(b) != NULL);
	struct publisher *p = NULL, *q = NULL;
	CHECK_INT(pub_new(a, &p), 0);
	struct route_table *t = with_digests(make_table(6, NULL, 0, false, -1, -1));
	bool written = false;
	CHECK_INT(publisher_publish(p, t, &written), 0);
	CHECK(written);
	publisher_release_pems(p, t);
	for (size_t i = 0; i < t->ncerts; i++)
		CHECK(!t->certs[i].cert_pem && !t->certs[i].key_pem && t->certs[i].name);
	char **before = cert_ids(a);
	CHECK_INT(publisher_publish(p, t, &written), 0);
	CHECK(!written);
	CHECK_INT(publisher_publish_changed(p, t, NULL, 0, &written), 0);
	char **after = cert_ids(a);
	size_t n = 0;
	for (; before && after && before[n] && after[n]; n++)
		CHECK_STR(before[n], after[n]);
	CHECK(before && after && !before[n] && !after[n] && n == 6);
	CHECK_INT(pub_new(b, &q), 0);
	CHECK_INT(publisher_publish(q, t, &written), WEIR_EAGAIN);
	route_table_free(t);
	free_ids(before);
	free_ids(after);
	publisher_free(p);
	publisher_free(q);
	rm_rf(a);
	rm_rf(b);
}

/* A restart whose first table has a backend whose endpoints changed while
 * the controller was down, one gone and one new: the same index and the
 * same shard writes as a publisher that never stopped (the backends that
 * did not change keep their slots without their shards being read, the
 * changed one by the name in its old shard). */
static void test_v2_restart_backends(void)
{
	char a[] = "/tmp/weir-publish-rba-XXXXXX", b[] = "/tmp/weir-publish-rbb-XXXXXX";
	CHECK(mkdtemp(a) != NULL && mkdtemp(b) != NULL);
	struct publisher *p = NULL, *q = NULL;
	int skip5[] = {5};
	CHECK_INT(pub_new(a, &p), 0);
	CHECK_INT(pub_new(b, &q), 0);
	publish_ok(p, make_table(8, NULL, 0, false, -1, -1), true);
	publish_ok(q, make_table(8, NULL, 0, false, -1, -1), true);
	publisher_free(q);
	CHECK_INT(pub_new(b, &q), 0);
	publish_ok(p, make_table(8, skip5, 1, true, -1, 2), true);
	publish_ok(q, make_table(8, skip5, 1, true, -1, 2), true);
	CHECK(same_index(a, b));
	CHECK_INT(publisher_stats(q)->shards_written, publisher_stats(p)->shards_written);
	struct route_index *ix = NULL;
	struct route_table *it = read_index(b, &ix);
	CHECK_STR(it ? it->backends[2].name : "", "ns/b02:80");
	CHECK_STR(it ? it->backends[5].name : "", "aaa/first:80");
	route_index_free(ix);
	route_table_free(it);
	publisher_free(p);
	publisher_free(q);
	rm_rf(a);
	rm_rf(b);
}

/* The bytes of file path cut to half (a torn write). */
static void tear(const char *path)
{
	char *text = slurp(path);
	CHECK(text != NULL);
	FILE *f = fopen(path, "wb");
	CHECK(f != NULL);
	if (f && text)
		fwrite(text, 1, strlen(text) / 2, f);
	if (f)
		fclose(f);
	free(text);
}

/* True when shard id's bytes in dir hash to id. */
static bool shard_sound(const char *dir, const char *id)
{
	char path[512], hex[ROUTE_SHARD_ID_LEN + 1];
	snprintf(path, sizeof(path), "%s/%s/%s.json", dir, ROUTE_SHARD_DIR, id);
	char *text = slurp(path);
	if (!text)
		return false;
	route_shard_id(text, strlen(text), hex);
	free(text);
	return strcmp(hex, id) == 0;
}

/* A restart finds a certificate shard the index names torn: the first
 * publish writes it again (the index stays the same), where a publisher
 * that took every file on disk for sound left it torn and the proxy
 * refusing the index. */
static void test_v2_restart_repairs(void)
{
	char dir[] = "/tmp/weir-publish-repair-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	struct publisher *p = NULL;
	struct route_index *ix = NULL;
	char cert[ROUTE_SHARD_ID_LEN + 1], path[512];
	CHECK_INT(pub_new(dir, &p), 0);
	publish_ok(p, make_table(4, NULL, 0, false, -1, -1), true);
	publisher_free(p);
	struct route_table *it = read_index(dir, &ix);
	CHECK(ix && ix->ncerts == 4);
	snprintf(cert, sizeof(cert), "%s", ix ? ix->certs[1] : "");
	route_index_free(ix);
	route_table_free(it);
	snprintf(path, sizeof(path), "%s/%s/%s.json", dir, ROUTE_SHARD_DIR, cert);
	tear(path);
	CHECK(!shard_sound(dir, cert));

	CHECK_INT(pub_new(dir, &p), 0);
	publish_ok(p, make_table(4, NULL, 0, false, -1, -1), false);
	CHECK_INT(publisher_stats(p)->shards_written, 1);
	CHECK(shard_sound(dir, cert));
	publisher_free(p);
	rm_rf(dir);
}

int main(void)
{
	test_v1();
	for (int lists = 0; lists < 2; lists++) {
		list_min = lists ? 2 : 0;
		list_max = lists ? 3 : 0;
		test_v2_slots();
		test_v2_deterministic();
		test_v2_endpoints();
		test_v2_publish_endpoints();
		test_v2_publish_hosts();
		test_v2_hosts_churn();
		test_v2_gc();
		test_v2_cert_digest();
		test_v2_release_pems();
		test_v2_restart_repairs();
		test_v2_restart_backends();
	}
	return check_finish("publish_test");
}
