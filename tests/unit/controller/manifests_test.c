/* tests/unit/controller/manifests_test.c - YAML -> JSON scalar rules,
 * multi-document streams, syntax errors with lines, and a directory load
 * into the store (sorted files, kinds, default namespace, diagnostics). */
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "controller/manifests.h"
#include "error.h"

struct docs {
	json_object *items[8];
	unsigned lines[8];
	size_t n;
};

static void collect(json_object *doc, unsigned line, void *arg)
{
	struct docs *d = arg;
	if (d->n < 8) {
		d->lines[d->n] = line;
		d->items[d->n++] = doc;
	} else {
		json_object_put(doc);
	}
}

static void docs_free(struct docs *d)
{
	for (size_t i = 0; i < d->n; i++)
		json_object_put(d->items[i]);
	d->n = 0;
}

static void test_scalars(void)
{
	static const char text[] = "a: 1\n"
	                           "b: \"1\"\n"
	                           "c: true\n"
	                           "d: 'true'\n"
	                           "e: ~\n"
	                           "f:\n"
	                           "g: 0x1F\n"
	                           "h: 1.5\n"
	                           "i: hello world\n"
	                           "j: -7\n"
	                           "k: [x, 2, false]\n"
	                           "l: |\n  line1\n  line2\n"
	                           "m: 010\n"
	                           "n: 1e3\n"
	                           "o: yes\n";
	struct docs d = {0};
	char err[256];
	CHECK_INT(manifests_yaml_to_json(text, sizeof(text) - 1, collect, &d, err, sizeof(err)), 0);
	CHECK_INT(d.n, 1);
	json_object *o = d.items[0], *v;
	CHECK(json_object_is_type(json_object_object_get(o, "a"), json_type_int));
	CHECK_INT(json_object_get_int(json_object_object_get(o, "a")), 1);
	CHECK(json_object_is_type(json_object_object_get(o, "b"), json_type_string));
	CHECK(json_object_is_type(json_object_object_get(o, "c"), json_type_boolean));
	CHECK(json_object_is_type(json_object_object_get(o, "d"), json_type_string));
	CHECK(json_object_object_get_ex(o, "e", &v) && v == NULL);
	CHECK(json_object_object_get_ex(o, "f", &v) && v == NULL);
	CHECK_INT(json_object_get_int(json_object_object_get(o, "g")), 31);
	CHECK(json_object_is_type(json_object_object_get(o, "h"), json_type_double));
	CHECK_STR(json_object_get_string(json_object_object_get(o, "i")), "hello world");
	CHECK_INT(json_object_get_int(json_object_object_get(o, "j")), -7);
	v = json_object_object_get(o, "k");
	CHECK(json_object_is_type(v, json_type_array) && json_object_array_length(v) == 3);
	CHECK(json_object_is_type(json_object_array_get_idx(v, 1), json_type_int));
	CHECK(json_object_is_type(json_object_array_get_idx(v, 2), json_type_boolean));
	CHECK_STR(json_object_get_string(json_object_object_get(o, "l")), "line1\nline2\n");
	CHECK_INT(json_object_get_int(json_object_object_get(o, "m")), 10); /* core schema */
	CHECK(json_object_is_type(json_object_object_get(o, "n"), json_type_double));
	CHECK(json_object_is_type(json_object_object_get(o, "o"), json_type_string)); /* 1.2 */
	docs_free(&d);
}

static void test_stream_errors(void)
{
	static const char text[] = "kind: A\n---\n---\n# only a comment\n---\nkind: B\n"
	                           "---\nkind: [C\nx: 1\n";
	struct docs d = {0};
	char err[256] = "";
	CHECK_INT(manifests_yaml_to_json(text, sizeof(text) - 1, collect, &d, err, sizeof(err)),
	          WEIR_EPARSE);
	CHECK_INT(d.n, 2); /* A and B before the error; empty documents skipped */
	CHECK_INT(d.lines[0], 1);
	CHECK_INT(d.lines[1], 6);
	CHECK(strncmp(err, "line 9:", 7) == 0);
	CHECK(strstr(err, "started on line 8") != NULL);
	docs_free(&d);

	/* an alias bomb stops at the node cap instead of exhausting memory */
	char bomb[2048];
	int n = snprintf(bomb, sizeof(bomb), "a: &a [x,x,x,x,x,x,x,x,x,x]\n");
	for (int i = 0; i < 8; i++)
		n += snprintf(bomb + n, sizeof(bomb) - (size_t)n,
		              "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", 'b' + i,
		              'b' + i, 'a' + i, 'a' + i, 'a' + i, 'a' + i, 'a' + i, 'a' + i,
		              'a' + i, 'a' + i, 'a' + i, 'a' + i);
	CHECK_INT(manifests_yaml_to_json(bomb, (size_t)n, collect, &d, err, sizeof(err)),
	          WEIR_ETOOBIG);
	CHECK_INT(d.n, 0);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void test_load(void)
{
	char dir[] = "/tmp/weir-manifests-test-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	write_file(dir, "b.yaml",
	           "kind: Service\nmetadata:\n  name: svc\n---\n"
	           "kind: Deployment\nmetadata:\n  name: ignored\n---\n"
	           "kind: IngressClass\nmetadata:\n  name: weir\n");
	write_file(dir, "a.yml",
	           "kind: Service\nmetadata:\n  name: svc\n  namespace: other\n---\n"
	           "kind: Secret\nmetadata: {}\n");
	write_file(dir, "c.txt", "kind: Service\nmetadata:\n  name: not-yaml-ext\n");
	write_file(dir, "d.yaml", "kind: ConfigMap\nmetadata:\n  name: weir\n  bad: [\n");
	write_file(dir, "e.yaml",
	           "kind: List\nitems:\n- kind: Ingress\n  metadata:\n    name: i1\n");

	struct store *s = store_new();
	struct diag_list diags = {0};
	CHECK_INT(manifests_load(dir, s, &diags), 0);
	struct snapshot *snap = store_snapshot(s);
	CHECK_INT(snap->count[STORE_SERVICE], 2);
	if (snap->count[STORE_SERVICE] == 2) {
		json_object *m0 = json_object_object_get(snap->objs[STORE_SERVICE][0], "metadata");
		json_object *m1 = json_object_object_get(snap->objs[STORE_SERVICE][1], "metadata");
		CHECK_STR(json_object_get_string(json_object_object_get(m0, "namespace")),
		          "default");
		CHECK_STR(json_object_get_string(json_object_object_get(m1, "namespace")), "other");
	}
	CHECK_INT(snap->count[STORE_INGRESS_CLASS], 1);
	json_object *icm = json_object_object_get(snap->objs[STORE_INGRESS_CLASS][0], "metadata");
	CHECK(!json_object_object_get_ex(icm, "namespace", NULL)); /* cluster-scoped */
	CHECK_INT(snap->count[STORE_INGRESS], 1);
	CHECK_INT(snap->count[STORE_SECRET], 0);
	CHECK_INT(snap->count[STORE_CONFIGMAP], 0);
	snapshot_free(snap);
	CHECK_INT(diags.n, 2);
	if (diags.n == 2) {
		CHECK_STR(diags.items[0].kind, "File");
		CHECK_STR(diags.items[0].name, "a.yml:6");
		CHECK(strstr(diags.items[1].name, "d.yaml:") == diags.items[1].name);
	}
	diag_list_cleanup(&diags);

	/* a re-read replaces: removed objects disappear */
	char path[512];
	snprintf(path, sizeof(path), "%s/a.yml", dir);
	unlink(path);
	CHECK_INT(manifests_load(dir, s, &diags), 0);
	snap = store_snapshot(s);
	CHECK_INT(snap->count[STORE_SERVICE], 1);
	snapshot_free(snap);
	diag_list_cleanup(&diags);

	const char *names[] = {"b.yaml", "c.txt", "d.yaml", "e.yaml"};
	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
	CHECK_INT(manifests_load(dir, s, &diags), WEIR_EIO);
	store_free(s);
}

/* Past the window in which a file just written is read again anyway
 * (manifests_load_cached: file times are coarse). */
static void settle(void)
{
	usleep(120 * 1000);
}

/* The Service named name in namespace "default" of the snapshot, or NULL. */
static json_object *svc(const struct snapshot *snap, const char *name)
{
	return snapshot_find(snap, STORE_SERVICE, "default", name);
}

/* manifests_load_cached: files unchanged since the last reading are not
 * read again and give the very same objects; in a file read again an
 * object equal to the one at its place stays that one; files gone leave
 * the store and the cache; a problem is reported once per reading. */
static void test_cache(void)
{
	char dir[] = "/tmp/weir-manifests-cache-XXXXXX", path[512];
	CHECK(mkdtemp(dir) != NULL);
	write_file(dir, "a.yaml",
	           "kind: Service\nmetadata:\n  name: a1\nspec: {x: 1}\n---\n"
	           "kind: Service\nmetadata:\n  name: a2\nspec: {x: 2}\n");
	write_file(dir, "b.yaml", "kind: Service\nmetadata:\n  name: b1\nspec: {x: 3}\n");
	write_file(dir, "c.yaml", "kind: Service\nmetadata:\n  name: c1\n  bad: [\n");
	settle();

	struct store *s = store_new();
	struct manifests_cache *c = manifests_cache_new();
	struct diag_list diags = {0};
	CHECK_INT(manifests_load_cached(dir, s, &diags, c), 0);
	CHECK_INT(diags.n, 1); /* c.yaml */
	diag_list_cleanup(&diags);
	struct snapshot *one = store_snapshot(s);
	CHECK_INT(one->count[STORE_SERVICE], 3);

	/* Nothing changed: nothing read (no problem reported again), same
	 * objects. */
	CHECK_INT(manifests_load_cached(dir, s, &diags, c), 0);
	CHECK_INT(diags.n, 0);
	struct snapshot *two = store_snapshot(s);
	CHECK(snapshot_same_except(one, two, -1));
	snapshot_free(two);

	/* b.yaml's contents made different: its object is new... */
	write_file(dir, "b.yaml", "kind: Service\nmetadata:\n  name: b1\nspec: {x: 4}\n");
	/* ...and a.yaml rewritten with a2 changed: a1 stays the same object. */
	write_file(dir, "a.yaml",
	           "kind: Service\nmetadata:\n  name: a1\nspec: {x: 1}\n---\n"
	           "kind: Service\nmetadata:\n  name: a2\nspec: {x: 5}\n");
	settle();
	CHECK_INT(manifests_load_cached(dir, s, &diags, c), 0);
	two = store_snapshot(s);
	CHECK(svc(two, "a1") == svc(one, "a1"));
	CHECK(svc(two, "a2") != svc(one, "a2"));
	CHECK(svc(two, "b1") != svc(one, "b1"));
	CHECK_INT(json_object_get_int(
	              json_object_object_get(json_object_object_get(svc(two, "a2"), "spec"), "x")),
	          5);
	CHECK(svc(two, "c1") == NULL);
	CHECK_INT(diags.n, 0); /* c.yaml unchanged */

	/* c.yaml fixed, a.yaml gone. */
	write_file(dir, "c.yaml", "kind: Service\nmetadata:\n  name: c1\n");
	snprintf(path, sizeof(path), "%s/a.yaml", dir);
	unlink(path);
	settle();
	CHECK_INT(manifests_load_cached(dir, s, &diags, c), 0);
	struct snapshot *three = store_snapshot(s);
	CHECK_INT(three->count[STORE_SERVICE], 2);
	CHECK(svc(three, "a1") == NULL);
	CHECK(svc(three, "b1") == svc(two, "b1"));
	CHECK(svc(three, "c1") != NULL);
	CHECK_INT(diags.n, 0);

	/* Broken again: reported. Dated in the future (as a file changed
	 * within the reading's clock tick may seem to be): read again, and
	 * reported, at every reading. */
	write_file(dir, "c.yaml", "kind: Service\nmetadata:\n  name: c1\n  bad: [\n");
	settle();
	CHECK_INT(manifests_load_cached(dir, s, &diags, c), 0);
	CHECK_INT(diags.n, 1);
	diag_list_cleanup(&diags);
	CHECK_INT(manifests_load_cached(dir, s, &diags, c), 0);
	CHECK_INT(diags.n, 0);
	struct timespec later[2];
	clock_gettime(CLOCK_REALTIME, &later[0]);
	later[0].tv_sec += 3600;
	later[1] = later[0];
	snprintf(path, sizeof(path), "%s/c.yaml", dir);
	CHECK_INT(utimensat(AT_FDCWD, path, later, 0), 0);
	settle();
	for (int i = 0; i < 2; i++) {
		CHECK_INT(manifests_load_cached(dir, s, &diags, c), 0);
		CHECK_INT(diags.n, 1);
		diag_list_cleanup(&diags);
	}

	snapshot_free(one);
	snapshot_free(two);
	snapshot_free(three);
	manifests_cache_free(c);
	store_free(s);
	const char *names[] = {"b.yaml", "c.yaml"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

int main(void)
{
	test_scalars();
	test_stream_errors();
	test_load();
	test_cache();
	return check_finish("manifests_test");
}
