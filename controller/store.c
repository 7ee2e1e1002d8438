/* controller/store.c - per-kind sorted arrays under one mutex. Lookups are
 * binary searches; snapshots copy the pointer arrays and take references. */
#include "store.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/linkhash.h>

#include "error.h"

/* ns and name point into obj (its metadata strings, or a static ""), so they
 * live as long as the object: a snapshot holding the object may use them. */
struct entry {
	const char *ns;
	const char *name;
	json_object *obj;
};

struct kind_list {
	size_t n, cap;
	struct entry *items;
};

/*
 * json-c's reference counts are plain integers (Debian builds it without
 * ENABLE_THREADING), and a store object's count is changed from several
 * threads: the store putting a replaced object, store_snapshot taking
 * references, snapshot_free putting them from the compile or status thread.
 * Every get and put of an object the store has held goes under this lock.
 */
static pthread_mutex_t refs_lock = PTHREAD_MUTEX_INITIALIZER;

static void obj_put(json_object *obj)
{
	pthread_mutex_lock(&refs_lock);
	json_object_put(obj);
	pthread_mutex_unlock(&refs_lock);
}

struct store {
	pthread_mutex_t lock;
	struct kind_list kinds[STORE_KIND_COUNT];
	void (*notify)(void *arg);
	void *notify_arg;
	store_relevant_cb relevant;
	void *relevant_arg;
};

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "weir-controller: out of memory\n");
		abort();
	}
	return p;
}

const char *store_kind_name(enum store_kind kind)
{
	static const char *const names[STORE_KIND_COUNT] = {
	    "Ingress", "IngressClass", "Service", "EndpointSlice", "Secret", "ConfigMap"};
	if ((int)kind < 0 || kind >= STORE_KIND_COUNT)
		return "?";
	return names[kind];
}

/* metadata.namespace ("" when absent) and metadata.name (NULL when absent). */
static void object_key(json_object *obj, const char **ns, const char **name)
{
	json_object *meta = NULL, *v = NULL;
	*ns = "";
	*name = NULL;
	if (!obj || !json_object_object_get_ex(obj, "metadata", &meta) ||
	    !json_object_is_type(meta, json_type_object))
		return;
	if (json_object_object_get_ex(meta, "namespace", &v) &&
	    json_object_is_type(v, json_type_string))
		*ns = json_object_get_string(v);
	if (json_object_object_get_ex(meta, "name", &v) &&
	    json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0)
		*name = json_object_get_string(v);
}

static int key_cmp(const char *ns1, const char *n1, const char *ns2, const char *n2)
{
	int c = strcmp(ns1, ns2);
	return c ? c : strcmp(n1, n2);
}

/* Index of the entry with that key, or -(insertion point) - 1. */
static long find(const struct kind_list *l, const char *ns, const char *name)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(l->items[mid].ns, l->items[mid].name, ns, name);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

static void entry_cleanup(struct entry *e)
{
	obj_put(e->obj);
}

static void list_clear(struct kind_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		entry_cleanup(&l->items[i]);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

/* Insert or replace; takes the object reference. ns and name are obj's
 * (object_key). */
static void list_put(struct kind_list *l, const char *ns, const char *name, json_object *obj)
{
	long at = find(l, ns, name);
	if (at >= 0) {
		obj_put(l->items[at].obj);
		l->items[at] = (struct entry){ns, name, obj};
		return;
	}
	size_t pos = (size_t)(-at - 1);
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct entry *items = realloc(l->items, cap * sizeof(*items));
		if (!items) {
			fprintf(stderr, "weir-controller: out of memory\n");
			abort();
		}
		l->items = items;
		l->cap = cap;
	}
	memmove(&l->items[pos + 1], &l->items[pos], (l->n - pos) * sizeof(*l->items));
	l->items[pos] = (struct entry){ns, name, obj};
	l->n++;
}

/*
 * Memory: json-c gives every JSON object a 16-slot hash table (640 bytes of
 * entries) and every array 32 slots, whatever they hold; a Kubernetes object
 * is mostly small objects (metadata, a path's backend, a port), so those
 * tables were most of the controller's heap (10,000 Ingresses with their
 * Services, EndpointSlices and Secrets: about 220 of 390 MB). Every object
 * the store takes is compacted first: each table rehashed into one just
 * big enough for what it holds (json-c's own lh_table_resize; members keep
 * their order) and each array shrunk to its length. A stored object stays
 * an ordinary json-c object: an insertion into it later grows the table
 * as usual.
 */
static int fitted_size(int count)
{
	/* lh_table_resize inserts the members one by one into a new table that
	 * grows itself once count >= size * LH_LOAD_FACTOR (0.66) before an
	 * insertion, while it records the size it was asked for: the size
	 * must hold every member without that growth, i.e. the smallest with
	 * count - 1 < size * LH_LOAD_FACTOR (the same double arithmetic as
	 * json-c's check). */
	int n = count > 1 ? count : 1;
	while (!((double)(count - 1) < n * LH_LOAD_FACTOR))
		n++;
	return n;
}

/*
 * Keys: json-c gives every member of every object a malloc'd copy of its key
 * (a 32-byte chunk for "metadata", "name", "namespace", ...): about a million
 * copies at 10,000 Ingresses with their Services and Secrets, of a few
 * hundred distinct names. compact() points each member at one interned copy
 * instead, marked constant (json-c's JSON_C_OBJECT_ADD_CONSTANT_KEY: never
 * freed by json-c, kept by lh_table_resize and deletions, copied by deep
 * copies). Only the key text is shared, no json-c node: reference counts
 * stay per object. Interned keys are never freed: the table is bounded
 * (KEYS_MAX / 2 keys of at most KEY_LEN_MAX bytes; past that a member keeps
 * its own copy), so objects with made-up keys (annotations, data) cannot
 * grow it without limit.
 */
#define KEYS_MAX 8192 /* a power of two; at most half of it is used */
#define KEY_LEN_MAX 128

static struct {
	pthread_mutex_t lock;
	size_t n;
	char **slots; /* KEYS_MAX, NULL: free */
} keys = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t key_hash(const char *k)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 1099511628211ULL;
	return h;
}

/* The interned copy of k, or NULL when k is too long or the table is full.
 * Called with keys.lock held. */
static const char *key_intern(const char *k)
{
	size_t len = strlen(k);
	if (len > KEY_LEN_MAX)
		return NULL;
	if (!keys.slots)
		keys.slots = calloc(KEYS_MAX, sizeof(*keys.slots));
	if (!keys.slots)
		return NULL;
	size_t i = (size_t)key_hash(k) & (KEYS_MAX - 1);
	for (; keys.slots[i]; i = (i + 1) & (KEYS_MAX - 1))
		if (strcmp(keys.slots[i], k) == 0)
			return keys.slots[i];
	if (keys.n >= KEYS_MAX / 2)
		return NULL;
	keys.slots[i] = malloc(len + 1);
	if (!keys.slots[i])
		return NULL;
	memcpy(keys.slots[i], k, len + 1);
	keys.n++;
	return keys.slots[i];
}

/* Point every member of t at the interned copy of its key (keys.lock held).
 * The hash of a key is its text's: the table stays valid as it is. */
static void intern_keys(struct lh_table *t)
{
	for (struct lh_entry *e = t->head; e; e = e->next) {
		if (e->k_is_constant)
			continue;
		const char *k = key_intern(e->k);
		if (!k)
			continue;
		free((void *)e->k);
		e->k = k;
		e->k_is_constant = 1;
	}
}

static void compact(json_object *obj, int depth);

void store_compact(json_object *obj)
{
	pthread_mutex_lock(&keys.lock);
	compact(obj, 0);
	pthread_mutex_unlock(&keys.lock);
}

static void compact(json_object *obj, int depth)
{
	if (depth > 64)
		return;
	switch (json_object_get_type(obj)) {
	case json_type_object: {
		struct lh_table *t = json_object_get_object(obj);
		int want = fitted_size(lh_table_length(t));
		if (want < t->size && lh_table_resize(t, want) != 0) {
			fprintf(stderr, "weir-controller: out of memory\n");
			abort();
		}
		intern_keys(t);
		json_object_object_foreach(obj, k, v)
		{
			(void)k;
			compact(v, depth + 1);
		}
		break;
	}
	case json_type_array: {
		size_t n = json_object_array_length(obj);
		json_object_array_shrink(obj, 0);
		for (size_t i = 0; i < n; i++)
			compact(json_object_array_get_idx(obj, i), depth + 1);
		break;
	}
	default:
		break;
	}
}

struct store *store_new(void)
{
	struct store *s = xmalloc(sizeof(*s));
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

void store_free(struct store *s)
{
	if (!s)
		return;
	for (int k = 0; k < STORE_KIND_COUNT; k++)
		list_clear(&s->kinds[k]);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static void notify(struct store *s)
{
	void (*cb)(void *);
	void *arg;
	pthread_mutex_lock(&s->lock);
	cb = s->notify;
	arg = s->notify_arg;
	pthread_mutex_unlock(&s->lock);
	if (cb)
		cb(arg);
}

static bool kind_ok(enum store_kind kind)
{
	return (int)kind >= 0 && kind < STORE_KIND_COUNT;
}

int store_upsert(struct store *s, enum store_kind kind, json_object *obj)
{
	const char *ns, *name;
	if (!kind_ok(kind)) {
		json_object_put(obj);
		return WEIR_EINVAL;
	}
	object_key(obj, &ns, &name);
	if (!name) {
		json_object_put(obj);
		return WEIR_EINVAL;
	}
	store_compact(obj);
	pthread_mutex_lock(&s->lock);
	struct kind_list *l = &s->kinds[kind];
	long at = find(l, ns, name);
	bool relevant = !s->relevant ||
	                s->relevant(s->relevant_arg, kind, at >= 0 ? l->items[at].obj : NULL, obj);
	list_put(l, ns, name, obj);
	pthread_mutex_unlock(&s->lock);
	if (relevant)
		notify(s);
	return 0;
}

int store_delete(struct store *s, enum store_kind kind, const char *ns, const char *name)
{
	int rc = WEIR_ENOENT;
	if (!kind_ok(kind) || !name)
		return WEIR_EINVAL;
	pthread_mutex_lock(&s->lock);
	struct kind_list *l = &s->kinds[kind];
	long at = find(l, ns ? ns : "", name);
	bool relevant = true;
	if (at >= 0) {
		if (s->relevant)
			relevant = s->relevant(s->relevant_arg, kind, l->items[at].obj, NULL);
		entry_cleanup(&l->items[at]);
		memmove(&l->items[at], &l->items[at + 1],
		        (l->n - (size_t)at - 1) * sizeof(*l->items));
		l->n--;
		rc = 0;
	}
	pthread_mutex_unlock(&s->lock);
	if (rc == 0 && relevant)
		notify(s);
	return rc;
}

int store_replace(struct store *s, enum store_kind kind, json_object **objs, size_t n)
{
	return store_replace_in(s, kind, NULL, objs, n);
}

int store_replace_in(struct store *s, enum store_kind kind, const char *scope, json_object **objs,
                     size_t n)
{
	struct kind_list fresh = {0};
	if (!kind_ok(kind)) {
		for (size_t i = 0; i < n; i++)
			json_object_put(objs[i]);
		return WEIR_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		const char *ns, *name;
		object_key(objs[i], &ns, &name);
		if (!name || (scope && strcmp(ns, scope) != 0)) {
			json_object_put(objs[i]);
			continue;
		}
		store_compact(objs[i]);
		list_put(&fresh, ns, name, objs[i]);
	}
	pthread_mutex_lock(&s->lock);
	struct kind_list old = s->kinds[kind];
	if (scope) {
		/* Objects of other namespaces stay: move them over. */
		size_t kept = 0;
		for (size_t i = 0; i < old.n; i++) {
			struct entry *e = &old.items[i];
			if (strcmp(e->ns, scope) == 0) {
				old.items[kept++] = *e;
				continue;
			}
			list_put(&fresh, e->ns, e->name, e->obj);
		}
		old.n = kept;
	}
	s->kinds[kind] = fresh;
	pthread_mutex_unlock(&s->lock);
	list_clear(&old);
	notify(s);
	return 0;
}

/* Index of the first entry whose namespace is ns (after: the first past
 * it). */
static size_t ns_bound(const struct kind_list *l, const char *ns, bool after)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->items[mid].ns, ns);
		if (c < 0 || (after && c == 0))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

size_t store_count(struct store *s, enum store_kind kind, const char *scope)
{
	size_t n;
	if (!kind_ok(kind))
		return 0;
	pthread_mutex_lock(&s->lock);
	const struct kind_list *l = &s->kinds[kind];
	n = scope ? ns_bound(l, scope, true) - ns_bound(l, scope, false) : l->n;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void store_set_relevance(struct store *s, store_relevant_cb cb, void *arg)
{
	pthread_mutex_lock(&s->lock);
	s->relevant = cb;
	s->relevant_arg = arg;
	pthread_mutex_unlock(&s->lock);
}

void store_set_notify(struct store *s, void (*cb)(void *arg), void *arg)
{
	pthread_mutex_lock(&s->lock);
	s->notify = cb;
	s->notify_arg = arg;
	pthread_mutex_unlock(&s->lock);
}

struct snapshot *store_snapshot(struct store *s)
{
	struct snapshot *snap = xmalloc(sizeof(*snap));
	memset(snap, 0, sizeof(*snap));
	pthread_mutex_lock(&s->lock);
	pthread_mutex_lock(&refs_lock);
	for (int k = 0; k < STORE_KIND_COUNT; k++) {
		struct kind_list *l = &s->kinds[k];
		snap->count[k] = l->n;
		snap->objs[k] = xmalloc(l->n * sizeof(json_object *));
		snap->ns[k] = xmalloc(l->n * sizeof(char *));
		snap->names[k] = xmalloc(l->n * sizeof(char *));
		for (size_t i = 0; i < l->n; i++) {
			snap->objs[k][i] = json_object_get(l->items[i].obj);
			snap->ns[k][i] = l->items[i].ns;
			snap->names[k][i] = l->items[i].name;
		}
	}
	pthread_mutex_unlock(&refs_lock);
	pthread_mutex_unlock(&s->lock);
	return snap;
}

void snapshot_free(struct snapshot *snap)
{
	if (!snap)
		return;
	pthread_mutex_lock(&refs_lock);
	for (int k = 0; k < STORE_KIND_COUNT; k++)
		for (size_t i = 0; i < snap->count[k]; i++)
			json_object_put(snap->objs[k][i]);
	pthread_mutex_unlock(&refs_lock);
	for (int k = 0; k < STORE_KIND_COUNT; k++) {
		free(snap->objs[k]);
		free(snap->ns[k]);
		free(snap->names[k]);
	}
	free(snap);
}

json_object *snapshot_find(const struct snapshot *snap, enum store_kind kind, const char *ns,
                           const char *name)
{
	size_t lo = 0, hi = snap->count[kind];
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(snap->ns[kind][mid], snap->names[kind][mid], ns, name);
		if (c == 0)
			return snap->objs[kind][mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ------------------------------------------------------------ snapshot diff */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_slice_service(json_object *slice, const char *ns, char ***keys, size_t *n)
{
	json_object *md = NULL, *labels = NULL, *svc = NULL;
	if (!json_object_object_get_ex(slice, "metadata", &md) ||
	    !json_object_object_get_ex(md, "labels", &labels) ||
	    !json_object_object_get_ex(labels, "kubernetes.io/service-name", &svc) ||
	    !json_object_is_type(svc, json_type_string))
		return;
	char *k = NULL;
	if (asprintf(&k, "%s/%s", ns, json_object_get_string(svc)) < 0)
		abort();
	char **g = realloc(*keys, (*n + 1) * sizeof(*g));
	if (!g)
		abort();
	*keys = g;
	g[(*n)++] = k;
}

bool snapshot_same_except(const struct snapshot *a, const struct snapshot *b, int except)
{
	for (int k = 0; k < STORE_KIND_COUNT; k++) {
		if (k == except)
			continue;
		if (a->count[k] != b->count[k])
			return false;
		for (size_t i = 0; i < a->count[k]; i++)
			if (a->objs[k][i] != b->objs[k][i])
				return false;
	}
	return true;
}

bool snapshot_diff_kind(const struct snapshot *a, const struct snapshot *b, enum store_kind k,
                        snapshot_diff_cb cb, void *arg)
{
	size_t i = 0, j = 0;
	while (i < a->count[k] || j < b->count[k]) {
		if (i < a->count[k] && j < b->count[k] && a->objs[k][i] == b->objs[k][j]) {
			i++; /* one object is under one key: no need to compare names */
			j++;
			continue;
		}
		int c = i == a->count[k] ? 1
		        : j == b->count[k]
		            ? -1
		            : key_cmp(a->ns[k][i], a->names[k][i], b->ns[k][j], b->names[k][j]);
		bool go = true;
		if (c < 0) {
			go = cb(arg, a->ns[k][i], a->names[k][i], a->objs[k][i], NULL);
			i++;
		} else if (c > 0) {
			go = cb(arg, b->ns[k][j], b->names[k][j], NULL, b->objs[k][j]);
			j++;
		} else {
			if (a->objs[k][i] != b->objs[k][j])
				go = cb(arg, b->ns[k][j], b->names[k][j], a->objs[k][i],
				        b->objs[k][j]);
			i++;
			j++;
		}
		if (!go)
			return false;
	}
	return true;
}

struct slice_keys {
	char **v;
	size_t n;
};

static bool slice_changed(void *arg, const char *ns, const char *name, json_object *old,
                          json_object *now)
{
	struct slice_keys *k = arg;
	(void)name;
	if (old)
		add_slice_service(old, ns, &k->v, &k->n);
	if (now)
		add_slice_service(now, ns, &k->v, &k->n);
	return true;
}

bool snapshot_slices_only_diff(const struct snapshot *a, const struct snapshot *b, char ***keys,
                               size_t *nkeys)
{
	struct slice_keys k = {0};
	*keys = NULL;
	*nkeys = 0;
	if (!snapshot_same_except(a, b, STORE_ENDPOINT_SLICE))
		return false;
	snapshot_diff_kind(a, b, STORE_ENDPOINT_SLICE, slice_changed, &k);
	if (k.n > 1)
		qsort(k.v, k.n, sizeof(*k.v), cmp_str);
	size_t u = 0;
	for (size_t x = 0; x < k.n; x++) {
		if (u && strcmp(k.v[u - 1], k.v[x]) == 0) {
			free(k.v[x]);
			continue;
		}
		k.v[u++] = k.v[x];
	}
	*keys = k.v;
	*nkeys = u;
	return true;
}
