/* tests/unit/controller/store_test.c - upsert, delete, replace, snapshot
 * order and isolation, notify. */
#include <stdlib.h>
#include <string.h>

#include <json-c/linkhash.h>

#include "check.h"
#include "controller/store.h"
#include "error.h"

static json_object *obj(const char *ns, const char *name, int v)
{
	json_object *o = json_object_new_object();
	json_object *m = json_object_new_object();
	if (ns)
		json_object_object_add(m, "namespace", json_object_new_string(ns));
	if (name)
		json_object_object_add(m, "name", json_object_new_string(name));
	json_object_object_add(o, "metadata", m);
	json_object_object_add(o, "v", json_object_new_int(v));
	return o;
}

static const char *key_of(json_object *o, char *buf, size_t n)
{
	json_object *m = json_object_object_get(o, "metadata");
	json_object *ns = json_object_object_get(m, "namespace");
	snprintf(buf, n, "%s/%s", ns ? json_object_get_string(ns) : "",
	         json_object_get_string(json_object_object_get(m, "name")));
	return buf;
}

static int value_of(json_object *o)
{
	return json_object_get_int(json_object_object_get(o, "v"));
}

/* store_compact: every member found, order kept, the object still grows, its
 * JSON text unchanged. */
static void test_compact(void)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	char key[16];
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		json_object_object_add(o, key, json_object_new_int(i));
	}
	for (int i = 0; i < 40; i += 3) { /* deleted slots are not carried over */
		snprintf(key, sizeof(key), "k%d", i);
		json_object_object_del(o, key);
	}
	json_object_array_add(arr, json_object_new_object());
	json_object_array_add(arr, json_object_new_string("x"));
	json_object_object_add(o, "arr", arr);
	json_object_object_add(o, "one", json_object_new_object());
	json_object_object_add(json_object_object_get(o, "one"), "a", json_object_new_int(1));
	char *before = strdup(json_object_to_json_string(o));
	store_compact(o);
	store_compact(o); /* again: nothing to do */
	CHECK_STR(json_object_to_json_string(o), before);
	free(before);
	for (int i = 0; i < 40; i++) {
		json_object *v = NULL;
		snprintf(key, sizeof(key), "k%d", i);
		CHECK_INT(json_object_object_get_ex(o, key, &v), i % 3 != 0);
		if (v)
			CHECK_INT(json_object_get_int(v), i);
	}
	CHECK_INT(json_object_object_get_ex(o, "missing", NULL), 0);
	CHECK_INT((int)json_object_array_length(arr), 2);
	json_object *one = json_object_object_get(o, "one");
	for (int i = 0; i < 50; i++) { /* a compacted object grows as usual */
		snprintf(key, sizeof(key), "n%d", i);
		json_object_object_add(one, key, json_object_new_int(i));
	}
	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "n%d", i);
		CHECK_INT(json_object_get_int(json_object_object_get(one, key)), i);
	}
	CHECK_INT(json_object_object_length(one), 51);
	json_object_array_add(arr, json_object_new_int(7));
	CHECK_INT(json_object_get_int(json_object_array_get_idx(arr, 2)), 7);
	store_compact(NULL);
	json_object_put(o);
}

static void count_cb(void *arg)
{
	(*(int *)arg)++;
}

/* store_compact interns keys: two objects' members name one copy of a key,
 * marked constant; deleting, replacing, deep-copying and putting such
 * members stays sound (ASan builds check the frees). */
static void test_keys(void)
{
	json_object *a = json_tokener_parse("{\"metadata\":{\"name\":\"a\"},\"spec\":{}}");
	json_object *b = json_tokener_parse("{\"metadata\":{\"name\":\"b\"},\"x\":1}");
	store_compact(a);
	store_compact(b);
	store_compact(b); /* twice changes nothing */
	struct lh_entry *ea = json_object_get_object(a)->head;
	struct lh_entry *eb = json_object_get_object(b)->head;
	CHECK_STR((const char *)lh_entry_k(ea), "metadata");
	CHECK(lh_entry_k(ea) == lh_entry_k(eb));
	CHECK(lh_entry_k_is_constant(ea) && lh_entry_k_is_constant(eb));
	json_object *copy = NULL;
	CHECK_INT(json_object_deep_copy(a, &copy, NULL), 0);
	CHECK(json_object_equal(a, copy));
	json_object_object_add(a, "metadata", json_object_new_int(2)); /* replaced */
	json_object_object_del(a, "spec");
	json_object_object_add(a, "grown", json_object_new_int(3)); /* the table grows */
	json_object_object_add(a, "more", json_object_new_int(4));
	CHECK_STR(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN),
	          "{\"metadata\":2,\"grown\":3,\"more\":4}");
	json_object_put(a);
	CHECK_STR(json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN),
	          "{\"metadata\":{\"name\":\"b\"},\"x\":1}");
	CHECK_STR(json_object_to_json_string_ext(copy, JSON_C_TO_STRING_PLAIN),
	          "{\"metadata\":{\"name\":\"a\"},\"spec\":{}}");
	json_object_put(copy);
	json_object_put(b);
}

static json_object *member(json_object *o, const char *path)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *k = strtok(buf, "."); k && o; k = strtok(NULL, ".")) {
		if (json_object_is_type(o, json_type_array))
			o = json_object_array_get_idx(o, (size_t)atoi(k));
		else
			o = json_object_object_get(o, k);
	}
	return o;
}

/* Stored objects share equal members (one node), keep their JSON text, and
 * stay sound when the objects that share a node go one by one (ASan checks
 * the frees); the key of an object whose name became a shared node still
 * reads after the object that first had that string is gone. */
#define PLAIN (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* The i-th of many ConfigMaps: some members unique, some shared (text: 256 bytes). */
static const char *cm_text(char *text, int i)
{
	snprintf(text, 256,
	         "{\"metadata\":{\"name\":\"o%d\",\"namespace\":\"n%d\",\"uid\":\"u%d\"},\"data\":{"
	         "\"a\":\"x%d\",\"b\":\"y%d\",\"c\":\"%d\",\"d\":\"v%d\",\"e\":[%d,%d]}}",
	         i, i % 7, i, i, i, i % 5, i % 3, i, i + 1);
	return text;
}

/* An object shared once is not shared again: handed over again after the
 * pool started over and pooled an equal member of another object, it
 * keeps its own member (a snapshot may be reading it). */
static void test_share_once(void)
{
	json_object *x = json_tokener_parse("{\"m\":\"share-once-member\"}");
	store_share(x);
	json_object *mine = json_object_object_get(x, "m");
	char text[64];
	for (int i = 0; i < 20000; i++) { /* more nodes than the pool holds */
		snprintf(text, sizeof(text), "{\"k\":\"flood-%d\"}", i);
		json_object *f = json_tokener_parse(text);
		store_share(f);
		store_put(f);
	}
	json_object *z = json_tokener_parse("{\"m\":\"share-once-member\"}");
	store_share(z); /* its member is pooled now, not x's */
	CHECK(json_object_object_get(z, "m") != mine);
	store_share(x);
	CHECK(json_object_object_get(x, "m") == mine);
	/* a stored object copies (store_copy), into one nothing marks */
	json_object *c = store_copy(x), *c2 = NULL;
	CHECK(c && json_object_equal(c, x));
	CHECK_INT(json_object_deep_copy(c, &c2, NULL), 0);
	json_object_put(c2);
	json_object_put(c);
	store_put(z);
	store_put(x);
}

/* Snapshots taken while a kind does not change share its arrays; a change
 * gives that kind new ones and leaves the others shared; a snapshot
 * outlives the store. */
static void test_frozen(void)
{
	struct store *s = store_new();
	store_upsert(s, STORE_INGRESS, obj("a", "i", 1));
	store_upsert(s, STORE_SERVICE, obj("a", "s", 1));
	store_upsert(s, STORE_ENDPOINT_SLICE, obj("a", "e", 1));
	struct snapshot *one = store_snapshot(s), *two = store_snapshot(s);
	for (int k = 0; k < STORE_KIND_COUNT; k++)
		CHECK(one->objs[k] == two->objs[k]);
	store_upsert(s, STORE_ENDPOINT_SLICE, obj("a", "e", 2));
	struct snapshot *three = store_snapshot(s);
	CHECK(three->objs[STORE_ENDPOINT_SLICE] != two->objs[STORE_ENDPOINT_SLICE]);
	CHECK_INT(value_of(three->objs[STORE_ENDPOINT_SLICE][0]), 2);
	CHECK_INT(value_of(two->objs[STORE_ENDPOINT_SLICE][0]), 1);
	CHECK(three->objs[STORE_INGRESS] == two->objs[STORE_INGRESS]);
	CHECK(snapshot_same_except(two, three, STORE_ENDPOINT_SLICE));
	CHECK(!snapshot_same_except(two, three, -1));
	snapshot_free(one);
	CHECK(store_delete(s, STORE_SERVICE, "a", "s") == 0);
	struct snapshot *four = store_snapshot(s);
	CHECK_INT(four->count[STORE_SERVICE], 0);
	CHECK_INT(three->count[STORE_SERVICE], 1);
	json_object *list[1] = {obj("a", "i", 1)}; /* equal: kept, yet a new list */
	store_replace(s, STORE_INGRESS, list, 1);
	struct snapshot *five = store_snapshot(s);
	CHECK(five->objs[STORE_INGRESS][0] == four->objs[STORE_INGRESS][0]);
	store_free(s); /* the snapshots still hold their objects */
	CHECK_INT(value_of(three->objs[STORE_INGRESS][0]), 1);
	snapshot_free(two);
	snapshot_free(three);
	snapshot_free(four);
	snapshot_free(five);
}

static void test_shared(void)
{
	static const char *const texts[] = {
	    "{\"metadata\":{\"name\":\"app\",\"namespace\":\"ns\"},\"spec\":{\"rules\":[{\"host\":"
	    "\"a.test\",\"http\":{\"paths\":[{\"path\":\"/\",\"pathType\":\"Prefix\",\"backend\":{"
	    "\"service\":{\"name\":\"svc\",\"port\":{\"number\":80}}}},{\"path\":\"/ws\","
	    "\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"svc\",\"port\":{"
	    "\"number\":80}}}}]}}],\"tls\":[{\"hosts\":[\"a.test\"],\"secretName\":\"t\"}]}}",
	    "{\"metadata\":{\"name\":\"other\",\"namespace\":\"ns\"},\"spec\":{\"rules\":[{"
	    "\"host\":\"b.test\",\"http\":{\"paths\":[{\"path\":\"/\",\"pathType\":\"Prefix\","
	    "\"backend\":{\"service\":{\"port\":{\"number\":80},\"name\":\"svc\"}}}]}}],"
	    "\"flag\":true,\"ratio\":1.50,\"big\":18446744073709551615,\"none\":null}}",
	    "{\"metadata\":{\"name\":\"svc\",\"namespace\":\"ns\"},\"spec\":{\"ports\":[{"
	    "\"port\":80}]}}",
	};
	struct store *s = store_new();
	json_object *in[3];
	for (int i = 0; i < 3; i++) {
		in[i] = json_tokener_parse(texts[i]);
		CHECK(in[i] != NULL);
	}
	CHECK_INT(store_upsert(s, STORE_INGRESS, in[0]), 0);
	CHECK_INT(store_upsert(s, STORE_INGRESS, in[1]), 0);
	CHECK_INT(store_upsert(s, STORE_SERVICE, in[2]), 0);
	struct snapshot *snap = store_snapshot(s);
	json_object *a = snapshot_find(snap, STORE_INGRESS, "ns", "app");
	json_object *b = snapshot_find(snap, STORE_INGRESS, "ns", "other");
	json_object *svc = snapshot_find(snap, STORE_SERVICE, "ns", "svc");
	CHECK(a && b && svc);
	/* what readers see is what was stored */
	CHECK_STR(json_object_to_json_string_ext(a, PLAIN), texts[0]);
	CHECK_STR(json_object_to_json_string_ext(b, PLAIN), texts[1]);
	CHECK_STR(json_object_to_json_string_ext(svc, PLAIN), texts[2]);
	/* the two backends of app are one node; other's backend lists its
	 * members in another order: its own node, with the same port node */
	json_object *be0 = member(a, "spec.rules.0.http.paths.0.backend");
	CHECK(be0 == member(a, "spec.rules.0.http.paths.1.backend"));
	CHECK(be0 != member(b, "spec.rules.0.http.paths.0.backend"));
	CHECK(member(be0, "service.port") ==
	      member(b, "spec.rules.0.http.paths.0.backend.service.port"));
	CHECK(member(a, "metadata.namespace") == member(svc, "metadata.namespace"));
	CHECK(member(a, "spec.rules.0.host") == member(a, "spec.tls.0.hosts.0"));
	/* the Service's name is the node the Ingresses' backends hold */
	CHECK(member(svc, "metadata.name") == member(be0, "service.name"));
	CHECK(member(svc, "spec.ports.0.port") == member(be0, "service.port.number"));
	CHECK(snap->names[STORE_SERVICE][0] ==
	      json_object_get_string(member(svc, "metadata.name")));
	snapshot_free(snap);
	/* gone one by one: what stays reads the same */
	CHECK_INT(store_delete(s, STORE_INGRESS, "ns", "app"), 0);
	snap = store_snapshot(s);
	CHECK_STR(snap->names[STORE_SERVICE][0], "svc");
	CHECK_STR(json_object_to_json_string_ext(snap->objs[STORE_INGRESS][0], PLAIN), texts[1]);
	snapshot_free(snap);
	CHECK_INT(store_delete(s, STORE_INGRESS, "ns", "other"), 0);
	snap = store_snapshot(s);
	CHECK_STR(json_object_to_json_string_ext(snap->objs[STORE_SERVICE][0], PLAIN), texts[2]);
	snapshot_free(snap);

	/* More distinct members than the pool holds: it starts over, and
	 * every object still reads as it was stored. */
	enum { N = 3000 };
	char text[256], name[32], ns[32];
	for (int i = 0; i < N; i++) {
		CHECK_INT(store_upsert(s, STORE_CONFIGMAP, json_tokener_parse(cm_text(text, i))),
		          0);
	}
	snap = store_snapshot(s);
	CHECK_INT(snap->count[STORE_CONFIGMAP], N);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "o%d", i);
		snprintf(ns, sizeof(ns), "n%d", i % 7);
		json_object *o = snapshot_find(snap, STORE_CONFIGMAP, ns, name);
		CHECK(o != NULL);
		CHECK_STR(json_object_to_json_string_ext(o, PLAIN), cm_text(text, i));
	}
	snapshot_free(snap);
	store_free(s);
}

static bool count_diff(void *arg, const char *ns, const char *name, json_object *old,
                       json_object *now)
{
	(void)ns, (void)name, (void)old, (void)now;
	++*(int *)arg;
	return true;
}

int main(void)
{
	char buf[128];
	int notified = 0;
	struct store *s = store_new();
	store_set_notify(s, count_cb, &notified);
	test_compact();
	test_keys();
	test_shared();
	test_share_once();
	test_frozen();

	/* upsert sorts by namespace then name; replace keeps one entry */
	CHECK_INT(store_upsert(s, STORE_INGRESS, obj("b", "x", 1)), 0);
	CHECK_INT(store_upsert(s, STORE_INGRESS, obj("a", "z", 2)), 0);
	CHECK_INT(store_upsert(s, STORE_INGRESS, obj("a", "y", 3)), 0);
	CHECK_INT(store_upsert(s, STORE_INGRESS, obj("b", "x", 4)), 0);
	CHECK_INT(store_upsert(s, STORE_INGRESS_CLASS, obj(NULL, "weir", 5)), 0);
	CHECK_INT(notified, 5);
	CHECK_INT(store_upsert(s, STORE_INGRESS, obj("a", NULL, 6)), WEIR_EINVAL);
	CHECK_INT(store_upsert(s, STORE_KIND_COUNT, obj("a", "q", 7)), WEIR_EINVAL);
	CHECK_INT(notified, 5);

	struct snapshot *snap = store_snapshot(s);
	CHECK_INT(snap->count[STORE_INGRESS], 3);
	CHECK_STR(key_of(snap->objs[STORE_INGRESS][0], buf, sizeof(buf)), "a/y");
	CHECK_STR(key_of(snap->objs[STORE_INGRESS][1], buf, sizeof(buf)), "a/z");
	CHECK_STR(key_of(snap->objs[STORE_INGRESS][2], buf, sizeof(buf)), "b/x");
	CHECK_INT(value_of(snap->objs[STORE_INGRESS][2]), 4);
	/* store_count: all, per namespace (first, last, absent), bad kind */
	CHECK_INT(store_count(s, STORE_INGRESS, NULL), 3);
	CHECK_INT(store_count(s, STORE_INGRESS, "a"), 2);
	CHECK_INT(store_count(s, STORE_INGRESS, "b"), 1);
	CHECK_INT(store_count(s, STORE_INGRESS, "c"), 0);
	CHECK_INT(store_count(s, STORE_INGRESS, ""), 0);
	CHECK_INT(store_count(s, STORE_INGRESS_CLASS, ""), 1);
	CHECK_INT(store_count(s, STORE_KIND_COUNT, NULL), 0);
	CHECK_INT(snap->count[STORE_INGRESS_CLASS], 1);
	CHECK_STR(key_of(snap->objs[STORE_INGRESS_CLASS][0], buf, sizeof(buf)), "/weir");
	CHECK_INT(snap->count[STORE_SERVICE], 0);

	/* delete: present, absent (no notify), and the snapshot is unaffected */
	CHECK_INT(store_delete(s, STORE_INGRESS, "a", "z"), 0);
	CHECK_INT(notified, 6);
	CHECK_INT(store_delete(s, STORE_INGRESS, "a", "z"), WEIR_ENOENT);
	CHECK_INT(store_delete(s, STORE_INGRESS_CLASS, NULL, "weir"), 0);
	CHECK_INT(notified, 7);
	CHECK_INT(snap->count[STORE_INGRESS], 3);
	CHECK_STR(key_of(snap->objs[STORE_INGRESS][1], buf, sizeof(buf)), "a/z");
	snapshot_free(snap);

	/* replace: the kind's contents become exactly the list (unsorted in,
	 * sorted out, duplicate keys: last wins, unnamed dropped), notify once */
	json_object *list[5] = {obj("n", "c", 1), obj("n", "a", 2), obj("m", "b", 3),
	                        obj("n", "a", 9), obj("n", NULL, 0)};
	CHECK_INT(store_replace(s, STORE_SERVICE, list, 5), 0);
	CHECK_INT(notified, 8);
	snap = store_snapshot(s);
	CHECK_INT(snap->count[STORE_SERVICE], 3);
	CHECK_STR(key_of(snap->objs[STORE_SERVICE][0], buf, sizeof(buf)), "m/b");
	CHECK_STR(key_of(snap->objs[STORE_SERVICE][1], buf, sizeof(buf)), "n/a");
	CHECK_INT(value_of(snap->objs[STORE_SERVICE][1]), 9);
	CHECK_STR(key_of(snap->objs[STORE_SERVICE][2], buf, sizeof(buf)), "n/c");
	CHECK_INT(snap->count[STORE_INGRESS], 2);
	snapshot_free(snap);
	CHECK_INT(store_replace(s, STORE_SERVICE, NULL, 0), 0);
	snap = store_snapshot(s);
	CHECK_INT(snap->count[STORE_SERVICE], 0);
	snapshot_free(snap);

	/* replace again with equal objects: the held ones stay (same pointers,
	 * so snapshot_diff_kind sees no change), a changed one is new, the
	 * held object passed back itself stays too */
	json_object *first[3] = {obj("n", "a", 1), obj("n", "b", 2), obj("n", "c", 3)};
	CHECK_INT(store_replace(s, STORE_SERVICE, first, 3), 0);
	struct snapshot *before = store_snapshot(s);
	json_object *again[3] = {obj("n", "a", 1), obj("n", "b", 5), obj("n", "c", 3)};
	CHECK_INT(store_replace(s, STORE_SERVICE, again, 3), 0);
	snap = store_snapshot(s);
	CHECK(snap->objs[STORE_SERVICE][0] == before->objs[STORE_SERVICE][0]);
	CHECK(snap->objs[STORE_SERVICE][1] != before->objs[STORE_SERVICE][1]);
	CHECK_INT(value_of(snap->objs[STORE_SERVICE][1]), 5);
	CHECK(snap->objs[STORE_SERVICE][2] == before->objs[STORE_SERVICE][2]);
	int ndiff = 0;
	snapshot_diff_kind(before, snap, STORE_SERVICE, count_diff, &ndiff);
	CHECK_INT(ndiff, 1);
	json_object *same = snap->objs[STORE_SERVICE][2];
	json_object_get(same); /* one more reference, handed to the store */
	json_object *third[2] = {same, obj("n", "a", 1)};
	CHECK_INT(store_replace(s, STORE_SERVICE, third, 2), 0);
	snapshot_free(snap);
	snap = store_snapshot(s);
	CHECK_INT(snap->count[STORE_SERVICE], 2);
	CHECK(snap->objs[STORE_SERVICE][0] == before->objs[STORE_SERVICE][0]);
	CHECK(snap->objs[STORE_SERVICE][1] == same);
	/* Equal keys: the last in the list wins, whether it is held (passed
	 * again, or equal to it) or new; the held one passed twice is one. */
	json_object *a0 = snap->objs[STORE_SERVICE][0];
	json_object_get(a0);
	json_object_get(a0);
	json_object *dup[4] = {a0, obj("n", "a", 7), obj("n", "z", 1), a0};
	CHECK_INT(store_replace(s, STORE_SERVICE, dup, 4), 0);
	struct snapshot *after = store_snapshot(s);
	CHECK_INT(after->count[STORE_SERVICE], 2);
	CHECK(after->objs[STORE_SERVICE][0] == a0);
	CHECK_STR(key_of(after->objs[STORE_SERVICE][1], buf, sizeof(buf)), "n/z");
	snapshot_free(after);
	json_object *dup2[3] = {obj("n", "a", 1), obj("n", "a", 8), obj("n", "z", 1)};
	CHECK_INT(store_replace(s, STORE_SERVICE, dup2, 3), 0);
	after = store_snapshot(s);
	CHECK_INT(after->count[STORE_SERVICE], 2);
	CHECK(after->objs[STORE_SERVICE][0] != a0);
	CHECK_INT(value_of(after->objs[STORE_SERVICE][0]), 8);
	snapshot_free(after);
	snapshot_free(snap);
	snapshot_free(before);
	CHECK_INT(store_replace(s, STORE_SERVICE, NULL, 0), 0);

	/* A replace scoped to one namespace keeps the others' objects and
	 * drops listed objects of another namespace. */
	store_upsert(s, STORE_CONFIGMAP, obj("apps", "a", 1));
	store_upsert(s, STORE_CONFIGMAP, obj("apps", "b", 1));
	store_upsert(s, STORE_CONFIGMAP, obj("weir-system", "weir", 1));
	store_upsert(s, STORE_CONFIGMAP, obj("zzz", "z", 1));
	json_object *scoped[] = {obj("apps", "c", 2), obj("apps", "a", 2), obj("other", "x", 2)};
	CHECK_INT(store_replace_in(s, STORE_CONFIGMAP, "apps", scoped, 3), 0);
	snap = store_snapshot(s);
	CHECK_INT(snap->count[STORE_CONFIGMAP], 4);
	CHECK(snapshot_find(snap, STORE_CONFIGMAP, "apps", "a") != NULL);
	CHECK(snapshot_find(snap, STORE_CONFIGMAP, "apps", "b") == NULL);
	CHECK(snapshot_find(snap, STORE_CONFIGMAP, "apps", "c") != NULL);
	CHECK(snapshot_find(snap, STORE_CONFIGMAP, "weir-system", "weir") != NULL);
	CHECK(snapshot_find(snap, STORE_CONFIGMAP, "zzz", "z") != NULL);
	CHECK(snapshot_find(snap, STORE_CONFIGMAP, "other", "x") == NULL);
	snapshot_free(snap);
	CHECK_INT(store_replace_in(s, STORE_CONFIGMAP, "weir-system", NULL, 0), 0);
	snap = store_snapshot(s);
	CHECK_INT(snap->count[STORE_CONFIGMAP], 3);
	CHECK(snapshot_find(snap, STORE_CONFIGMAP, "weir-system", "weir") == NULL);
	snapshot_free(snap);

	/* many objects in reverse order come out sorted */
	for (int i = 999; i >= 0; i--) {
		char name[16];
		snprintf(name, sizeof(name), "s%04d", i);
		store_upsert(s, STORE_SECRET, obj("ns", name, i));
	}
	snap = store_snapshot(s);
	CHECK_INT(snap->count[STORE_SECRET], 1000);
	int sorted = 1;
	for (size_t i = 0; i < 1000; i++)
		sorted &= value_of(snap->objs[STORE_SECRET][i]) == (int)i;
	CHECK(sorted);
	/* snapshot_find: every key is found, absent ones are not */
	int found = 1;
	for (int i = 0; i < 1000; i++) {
		char name[16];
		snprintf(name, sizeof(name), "s%04d", i);
		json_object *o = snapshot_find(snap, STORE_SECRET, "ns", name);
		found &= o != NULL && value_of(o) == i;
	}
	CHECK(found);
	CHECK(snapshot_find(snap, STORE_SECRET, "ns", "s1000") == NULL);
	CHECK(snapshot_find(snap, STORE_SECRET, "nt", "s0001") == NULL);
	CHECK(snapshot_find(snap, STORE_INGRESS, "b", "x") != NULL);
	CHECK(snapshot_find(snap, STORE_INGRESS, "a", "z") == NULL);
	CHECK(snapshot_find(snap, STORE_SERVICE, "m", "b") == NULL);
	snapshot_free(snap);

	/* A snapshot's ns/names arrays are its objects' own strings: they stay
	 * right after the store replaces or drops the object (ASan sees a stale
	 * pointer), and a replacement's snapshot names the replacement. */
	CHECK_INT(store_upsert(s, STORE_ENDPOINT_SLICE, obj("k", "a", 1)), 0);
	CHECK_INT(store_upsert(s, STORE_ENDPOINT_SLICE, obj(NULL, "c", 1)), 0);
	snap = store_snapshot(s);
	CHECK_INT(store_upsert(s, STORE_ENDPOINT_SLICE, obj("k", "a", 2)), 0);
	json_object *moved[1] = {obj("j", "b", 3)};
	CHECK_INT(store_replace_in(s, STORE_ENDPOINT_SLICE, "k", NULL, 0), 0);
	CHECK_INT(store_replace_in(s, STORE_ENDPOINT_SLICE, "j", moved, 1), 0);
	CHECK_INT(snap->count[STORE_ENDPOINT_SLICE], 2);
	CHECK_STR(snap->ns[STORE_ENDPOINT_SLICE][0], "");
	CHECK_STR(snap->names[STORE_ENDPOINT_SLICE][0], "c");
	CHECK_STR(snap->ns[STORE_ENDPOINT_SLICE][1], "k");
	CHECK_STR(snap->names[STORE_ENDPOINT_SLICE][1], "a");
	CHECK_INT(value_of(snapshot_find(snap, STORE_ENDPOINT_SLICE, "k", "a")), 1);
	snapshot_free(snap);
	snap = store_snapshot(s);
	CHECK_INT(snap->count[STORE_ENDPOINT_SLICE], 2);
	for (size_t i = 0; i < snap->count[STORE_ENDPOINT_SLICE]; i++)
		CHECK_STR(key_of(snap->objs[STORE_ENDPOINT_SLICE][i], buf, sizeof(buf)),
		          i == 0 ? "/c" : "j/b");
	CHECK_STR(snap->names[STORE_ENDPOINT_SLICE][1], "b");
	CHECK(snapshot_find(snap, STORE_ENDPOINT_SLICE, "k", "a") == NULL);
	CHECK_INT(value_of(snapshot_find(snap, STORE_ENDPOINT_SLICE, "j", "b")), 3);
	snapshot_free(snap);

	/* The replaced object gone for good (the snapshot held its last
	 * reference): the entry reads the replacement's strings. */
	CHECK_INT(store_upsert(s, STORE_ENDPOINT_SLICE, obj("r", "x", 4)), 0);
	snap = store_snapshot(s);
	CHECK_INT(store_upsert(s, STORE_ENDPOINT_SLICE, obj("r", "x", 5)), 0);
	snapshot_free(snap);
	snap = store_snapshot(s);
	CHECK_INT(snap->count[STORE_ENDPOINT_SLICE], 3);
	CHECK_STR(snap->ns[STORE_ENDPOINT_SLICE][2], "r");
	CHECK_STR(snap->names[STORE_ENDPOINT_SLICE][2], "x");
	CHECK_INT(value_of(snapshot_find(snap, STORE_ENDPOINT_SLICE, "r", "x")), 5);
	snapshot_free(snap);

	store_set_notify(s, NULL, NULL);
	store_upsert(s, STORE_SECRET, obj("ns", "late", 0));
	/* 1009 + 4 upserts, 6 replaces and 2 scoped replaces, then 3, 2, 2 */
	CHECK_INT(notified, 1028);
	CHECK_STR(store_kind_name(STORE_ENDPOINT_SLICE), "EndpointSlice");
	store_free(s);
	return check_finish("store_test");
}
