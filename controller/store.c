/* controller/store.c - per-kind sorted arrays under one mutex. Lookups are
 * binary searches; snapshots copy the pointer arrays and take references. */
#include "store.h"
#include "str_hash.h"

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

void store_put(json_object *obj)
{
	obj_put(obj);
}

json_object *store_get(json_object *obj)
{
	pthread_mutex_lock(&refs_lock);
	json_object_get(obj);
	pthread_mutex_unlock(&refs_lock);
	return obj;
}

/* A kind's objects as snapshots see them: made by the first snapshot
 * after the kind changed and shared by every snapshot until the next
 * change, so a snapshot after an EndpointSlice change takes references
 * to the slices only, not to every object of every kind. */
struct store_frozen {
	size_t users; /* under refs_lock: snapshots, and the store's cache */
	size_t n;
	json_object **objs; /* one reference each, held by the frozen list */
	const char **ns, **names;
};

struct store {
	pthread_mutex_t lock;
	struct kind_list kinds[STORE_KIND_COUNT];
	struct store_frozen *frozen[STORE_KIND_COUNT]; /* NULL: changed since */
	void (*notify)(void *arg);
	void *notify_arg;
	store_relevant_cb relevant;
	void *relevant_arg;
};

/* Let go of a frozen list (refs_lock held): freed with its last user. */
static void frozen_release(struct store_frozen *f)
{
	if (!f || --f->users)
		return;
	for (size_t i = 0; i < f->n; i++)
		json_object_put(f->objs[i]);
	free(f->objs);
	free(f->ns);
	free(f->names);
	free(f);
}

/* The kind changed: its cached frozen list is for past snapshots only
 * (s->lock held). */
static void thaw(struct store *s, int kind)
{
	if (!s->frozen[kind])
		return;
	pthread_mutex_lock(&refs_lock);
	frozen_release(s->frozen[kind]);
	pthread_mutex_unlock(&refs_lock);
	s->frozen[kind] = NULL;
}

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
	size_t i = (size_t)str_hash(k) & (KEYS_MAX - 1);
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

/*
 * Shared members: most of a stored object repeats what other objects hold,
 * word for word: the backend of each path of an Ingress (one Service, one
 * port), pathType "Prefix", the ports of Services made from one chart, the
 * annotations of Ingresses made from one template, a namespace's name.
 * store_share (which store_upsert and store_replace apply to every object
 * they take) also makes equal members one json-c node, bottom-up: a string,
 * integer or boolean equal to one seen before, or an object or array whose
 * members are the very nodes of one seen before (same keys in the same
 * order), is replaced by that node, which gains a reference. Equal subtrees
 * of the same object and of different objects share this way (about a
 * third of the json-c heap at 10,000 Ingresses with their Services and
 * Secrets).
 *
 * The nodes seen are kept in a pool that holds one reference to each. The
 * pool forgets everything when it holds POOL_MAX nodes: what it held stays
 * alive as long as the objects that hold it, and later objects share among
 * themselves again. So a node whose objects are gone stays at most until
 * the pool starts over, and the pool never holds more than POOL_MAX nodes
 * of small size: strings up to POOL_STR_MAX bytes, containers of pooled
 * members up to POOL_MEMBERS_MAX of them (a certificate in a Secret, a
 * large annotation or a node that holds one is not pooled).
 *
 * Reference counts: json-c's are not atomic, and a shared node's count is
 * changed by whoever puts an object that holds it. Every get and put of an
 * object store_share has seen goes under refs_lock (obj_put, store_put,
 * store_snapshot, snapshot_free), so the sharing is done under it too;
 * readers of a snapshot only borrow members, and nothing changes an object
 * once store_share has seen it.
 */
#define POOL_MAX 16384 /* nodes; the slots are twice that (a power of two) */
#define POOL_STR_MAX 128
#define POOL_MEMBERS_MAX 32

struct pool_slot {
	uint64_t hash;
	json_object *node; /* one reference; NULL: free */
};

static struct {
	size_t n;
	struct pool_slot *slots; /* 2 * POOL_MAX */
} pool;

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdULL;
}

/* Whether a and b (same hash) are interchangeable: same type and value;
 * containers: the same keys in the same order naming the same nodes. */
static bool same_node(json_object *a, json_object *b)
{
	enum json_type t = json_object_get_type(a);
	if (t != json_object_get_type(b))
		return false;
	switch (t) {
	case json_type_string: {
		int n = json_object_get_string_len(a);
		return n == json_object_get_string_len(b) &&
		       memcmp(json_object_get_string(a), json_object_get_string(b), (size_t)n) == 0;
	}
	case json_type_int:
		return json_object_get_int64(a) == json_object_get_int64(b) &&
		       json_object_get_uint64(a) == json_object_get_uint64(b);
	case json_type_boolean:
		return json_object_get_boolean(a) == json_object_get_boolean(b);
	case json_type_object: {
		struct lh_table *ta = json_object_get_object(a), *tb = json_object_get_object(b);
		if (lh_table_length(ta) != lh_table_length(tb))
			return false;
		for (struct lh_entry *x = ta->head, *y = tb->head; x && y; x = x->next, y = y->next)
			if (lh_entry_v(x) != lh_entry_v(y) ||
			    (x->k != y->k && strcmp(x->k, y->k) != 0))
				return false;
		return true;
	}
	case json_type_array: {
		size_t n = json_object_array_length(a);
		if (n != json_object_array_length(b))
			return false;
		for (size_t i = 0; i < n; i++)
			if (json_object_array_get_idx(a, i) != json_object_array_get_idx(b, i))
				return false;
		return true;
	}
	default:
		return false;
	}
}

/* Put every node the pool holds and empty it (refs_lock held). */
static void pool_clear(void)
{
	if (!pool.slots)
		return;
	for (size_t i = 0; i < 2 * POOL_MAX; i++)
		if (pool.slots[i].node)
			json_object_put(pool.slots[i].node);
	memset(pool.slots, 0, 2 * POOL_MAX * sizeof(*pool.slots));
	pool.n = 0;
}

/* The pooled node equal to v (one more reference taken for the caller), or
 * v itself, now pooled (or not, when the pool cannot be allocated). */
static json_object *pool_share(json_object *v, uint64_t h)
{
	if (!pool.slots && !(pool.slots = calloc(2 * POOL_MAX, sizeof(*pool.slots))))
		return v;
	size_t mask = 2 * POOL_MAX - 1, i = (size_t)h & mask;
	for (; pool.slots[i].node; i = (i + 1) & mask) {
		json_object *c = pool.slots[i].node;
		if (pool.slots[i].hash != h || (c != v && !same_node(c, v)))
			continue;
		return c == v ? v : json_object_get(c);
	}
	if (pool.n >= POOL_MAX) {
		pool_clear();
		i = (size_t)h & mask;
	}
	pool.slots[i] = (struct pool_slot){h, json_object_get(v)};
	pool.n++;
	return v;
}

/* Compact obj's subtree and make its members the pooled nodes equal to
 * them (keys.lock and refs_lock held). Returns whether obj itself may be
 * pooled, with *h its hash. */
static bool compact(json_object *obj, int depth, bool share, uint64_t *h);

/* The node to hold in v's place (v compacted first): the pooled one equal
 * to v (with a reference for the holder) or v. *pooled: whether it is. */
static json_object *shared(json_object *v, int depth, bool share, bool *pooled, uint64_t *h)
{
	*h = 0;
	*pooled = true; /* JSON null: no node */
	if (!v)
		return NULL;
	*pooled = compact(v, depth, share, h);
	return *pooled && share ? pool_share(v, *h) : v;
}

void store_compact(json_object *obj)
{
	uint64_t h;
	pthread_mutex_lock(&keys.lock);
	compact(obj, 0, false, &h);
	pthread_mutex_unlock(&keys.lock);
}

/* The userdata store_share leaves on an object it has seen: seen again
 * (a source that hands the same object over again), it is left alone. Its
 * members may be held by other objects, and a snapshot may be reading it:
 * sharing it again could swap a member for an equal one under a reader. */
static const char shared_mark;

/* json_c_shallow_copy_fn for an object store_share has marked (json-c
 * refuses to copy userdata it does not know): a new object without the
 * mark, its members copied here (2: the caller copies no more). Only the
 * top of a stored object carries the mark. */
static int copy_marked(json_object *src, json_object *parent, const char *key, size_t index,
                       json_object **dst)
{
	if (json_object_get_userdata(src) != &shared_mark)
		return json_c_shallow_copy_default(src, parent, key, index, dst);
	if (!(*dst = json_object_new_object()))
		return -1;
	json_object_object_foreach(src, k, v)
	{
		json_object *c = NULL;
		if ((v && json_object_deep_copy(v, &c, copy_marked) != 0) ||
		    json_object_object_add(*dst, k, c) != 0)
			return -1;
	}
	return 2;
}

json_object *store_copy(json_object *obj)
{
	json_object *copy = NULL;
	if (obj && json_object_deep_copy(obj, &copy, copy_marked) != 0) {
		fprintf(stderr, "weir-controller: out of memory\n");
		abort();
	}
	return copy;
}

void store_share(json_object *obj)
{
	uint64_t h;
	if (!obj || json_object_get_userdata(obj) == &shared_mark)
		return;
	pthread_mutex_lock(&keys.lock);
	pthread_mutex_lock(&refs_lock);
	compact(obj, 0, true, &h);
	pthread_mutex_unlock(&refs_lock);
	pthread_mutex_unlock(&keys.lock);
	json_object_set_userdata(obj, (void *)&shared_mark, NULL);
}

static bool compact(json_object *obj, int depth, bool share, uint64_t *h)
{
	enum json_type type = json_object_get_type(obj);
	bool pooled = depth > 0; /* the object itself is never shared */
	*h = mix(0, (uint64_t)type);
	if (depth > 64)
		return false;
	switch (type) {
	case json_type_object: {
		struct lh_table *t = json_object_get_object(obj);
		int want = fitted_size(lh_table_length(t));
		if (want < t->size && lh_table_resize(t, want) != 0) {
			fprintf(stderr, "weir-controller: out of memory\n");
			abort();
		}
		intern_keys(t);
		pooled = pooled && lh_table_length(t) <= POOL_MEMBERS_MAX;
		for (struct lh_entry *e = t->head; e; e = e->next) {
			json_object *v = lh_entry_v(e);
			bool ok;
			uint64_t vh;
			json_object *c = shared(v, depth + 1, share, &ok, &vh);
			if (c != v) {
				lh_entry_set_val(e, c);
				json_object_put(v);
			}
			pooled = pooled && ok;
			*h = mix(mix(*h, str_hash(lh_entry_k(e))), (uint64_t)(uintptr_t)c);
		}
		break;
	}
	case json_type_array: {
		size_t n = json_object_array_length(obj);
		json_object_array_shrink(obj, 0);
		pooled = pooled && n <= POOL_MEMBERS_MAX;
		for (size_t i = 0; i < n; i++) {
			json_object *v = json_object_array_get_idx(obj, i);
			bool ok;
			uint64_t vh;
			json_object *c = shared(v, depth + 1, share, &ok, &vh);
			if (c != v && json_object_array_put_idx(obj, i, c) != 0) {
				fprintf(stderr, "weir-controller: out of memory\n");
				abort();
			}
			pooled = pooled && ok;
			*h = mix(*h, (uint64_t)(uintptr_t)c);
		}
		break;
	}
	case json_type_string: {
		int n = json_object_get_string_len(obj);
		const char *p = json_object_get_string(obj);
		pooled = pooled && n <= POOL_STR_MAX;
		if (!pooled || !share)
			break;
		for (int i = 0; i < n; i++)
			*h = (*h ^ (unsigned char)p[i]) * 1099511628211ULL;
		*h = mix(*h, (uint64_t)n);
		break;
	}
	case json_type_int:
		*h = mix(*h, (uint64_t)json_object_get_int64(obj));
		*h = mix(*h, json_object_get_uint64(obj));
		break;
	case json_type_boolean:
		*h = mix(*h, (uint64_t)json_object_get_boolean(obj));
		break;
	default: /* doubles keep their own text; null has no node */
		pooled = false;
		break;
	}
	return pooled;
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
	for (int k = 0; k < STORE_KIND_COUNT; k++) {
		thaw(s, k);
		list_clear(&s->kinds[k]);
	}
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
		obj_put(obj);
		return WEIR_EINVAL;
	}
	/* Compacting may replace metadata strings by equal shared ones: the
	 * key must point at what the object holds after it. */
	store_share(obj);
	object_key(obj, &ns, &name);
	if (!name) {
		obj_put(obj);
		return WEIR_EINVAL;
	}
	pthread_mutex_lock(&s->lock);
	struct kind_list *l = &s->kinds[kind];
	long at = find(l, ns, name);
	bool relevant = !s->relevant ||
	                s->relevant(s->relevant_arg, kind, at >= 0 ? l->items[at].obj : NULL, obj);
	list_put(l, ns, name, obj);
	thaw(s, kind);
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
		thaw(s, kind);
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

/* An object on its way into a kind, and its place in the caller's list. */
struct incoming {
	struct entry e;
	size_t pos;
};

static int cmp_incoming(const void *a, const void *b)
{
	const struct incoming *x = a, *y = b;
	int c = key_cmp(x->e.ns, x->e.name, y->e.ns, y->e.name);
	return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* The held objects by pointer: an open-addressing table of indexes into
 * a kind list (size a power of two, at least twice the objects). */
struct by_ptr {
	size_t mask;
	long *at; /* -1: free */
};

static size_t ptr_hash(const void *p)
{
	uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ULL;
	return (size_t)(h >> 17);
}

static void by_ptr_build(struct by_ptr *b, const struct kind_list *l)
{
	size_t size = 16;
	while (size < 2 * l->n)
		size *= 2;
	b->mask = size - 1;
	b->at = xmalloc(size * sizeof(*b->at));
	memset(b->at, 0xff, size * sizeof(*b->at));
	for (size_t i = 0; i < l->n; i++) {
		size_t x = ptr_hash(l->items[i].obj) & b->mask;
		while (b->at[x] >= 0)
			x = (x + 1) & b->mask;
		b->at[x] = (long)i;
	}
}

static long by_ptr_find(const struct by_ptr *b, const struct kind_list *l, const void *p)
{
	for (size_t x = ptr_hash(p) & b->mask; b->at[x] >= 0; x = (x + 1) & b->mask)
		if (l->items[b->at[x]].obj == p)
			return b->at[x];
	return -1;
}

/* Sort list[0..*n) by key, equal keys in list order, and keep the last of
 * equal keys (the others put). */
static void sort_last_wins(struct incoming *list, size_t *n)
{
	size_t k = 0;
	qsort(list, *n, sizeof(*list), cmp_incoming);
	for (size_t i = 0; i < *n; i++) {
		if (i + 1 < *n && key_cmp(list[i].e.ns, list[i].e.name, list[i + 1].e.ns,
		                          list[i + 1].e.name) == 0) {
			obj_put(list[i].e.obj);
			continue;
		}
		list[k++] = list[i];
	}
	*n = k;
}

int store_replace_in(struct store *s, enum store_kind kind, const char *scope, json_object **objs,
                     size_t n)
{
	if (!kind_ok(kind)) {
		for (size_t i = 0; i < n; i++)
			obj_put(objs[i]);
		return WEIR_EINVAL;
	}
	/* An object equal to the one held under its key is dropped for that
	 * one: the compiler tells changes apart by pointer, so a relist or a
	 * reread directory that changed little recompiles little. An object
	 * passed that is held already (a source that keeps what it gave) is
	 * found by pointer, without reading its key. */
	long *held_at = xmalloc((n ? n : 1) * sizeof(*held_at));
	pthread_mutex_lock(&s->lock);
	const struct kind_list *held = &s->kinds[kind];
	struct by_ptr index;
	by_ptr_build(&index, held);
	/* last[h]: 1 + the list position of the last object that is, or
	 * equals, held object h; 0: none. */
	size_t *last = calloc(held->n ? held->n : 1, sizeof(*last)), nkept = 0;
	if (!last)
		abort();
	for (size_t i = 0; i < n; i++) {
		long at = by_ptr_find(&index, held, objs[i]);
		if (at < 0) {
			const char *ns, *name;
			object_key(objs[i], &ns, &name);
			at = name ? find(held, ns, name) : -1;
			if (at >= 0 && !json_object_equal(held->items[at].obj, objs[i]))
				at = -1;
		}
		if (at >= 0 && scope && strcmp(held->items[at].ns, scope) != 0)
			at = -1; /* another namespace's: dropped below */
		held_at[i] = at;
		if (at >= 0)
			last[at] = i + 1;
	}
	for (size_t h = 0; h < held->n; h++)
		nkept += last[h] != 0;
	struct incoming *kept = xmalloc((nkept ? nkept : 1) * sizeof(*kept));
	nkept = 0;
	pthread_mutex_lock(&refs_lock);
	for (size_t h = 0; h < held->n; h++)
		if (last[h]) /* in key order */
			kept[nkept++] = (struct incoming){{held->items[h].ns, held->items[h].name,
			                                   json_object_get(held->items[h].obj)},
			                                  last[h] - 1};
	pthread_mutex_unlock(&refs_lock);
	pthread_mutex_unlock(&s->lock);
	free(index.at);
	free(last);

	struct incoming *other = xmalloc((n ? n : 1) * sizeof(*other));
	size_t nother = 0;
	for (size_t i = 0; i < n; i++) {
		if (held_at[i] >= 0) {
			obj_put(objs[i]); /* the caller's: a held one is kept instead */
			continue;
		}
		struct entry e = {.obj = objs[i]};
		store_share(e.obj); /* first: see store_upsert */
		object_key(e.obj, &e.ns, &e.name);
		if (!e.name || (scope && strcmp(e.ns, scope) != 0)) {
			obj_put(e.obj);
			continue;
		}
		other[nother++] = (struct incoming){e, i};
	}
	free(held_at);
	sort_last_wins(other, &nother);

	/* Both sorted: merged, the later in the list winning an equal key. */
	struct kind_list fresh = {0};
	fresh.cap = nkept + nother ? nkept + nother : 1;
	fresh.items = xmalloc(fresh.cap * sizeof(*fresh.items));
	for (size_t a = 0, b = 0; a < nkept || b < nother;) {
		int c = a == nkept ? 1
		        : b == nother
		            ? -1
		            : key_cmp(kept[a].e.ns, kept[a].e.name, other[b].e.ns, other[b].e.name);
		if (c == 0) {
			bool later = other[b].pos > kept[a].pos;
			obj_put(later ? kept[a].e.obj : other[b].e.obj);
			fresh.items[fresh.n++] = later ? other[b].e : kept[a].e;
			a++, b++;
		} else if (c < 0) {
			fresh.items[fresh.n++] = kept[a++].e;
		} else {
			fresh.items[fresh.n++] = other[b++].e;
		}
	}
	free(kept);
	free(other);

	pthread_mutex_lock(&s->lock);
	struct kind_list old = s->kinds[kind];
	if (scope) {
		/* Objects of other namespaces stay: merged in, both lists sorted. */
		struct kind_list merged = {0};
		size_t stay = 0, f = 0;
		merged.cap = fresh.n + old.n ? fresh.n + old.n : 1;
		merged.items = xmalloc(merged.cap * sizeof(*merged.items));
		for (size_t i = 0; i < old.n; i++) {
			struct entry *e = &old.items[i];
			if (strcmp(e->ns, scope) == 0) {
				old.items[stay++] = *e;
				continue;
			}
			while (f < fresh.n &&
			       key_cmp(fresh.items[f].ns, fresh.items[f].name, e->ns, e->name) < 0)
				merged.items[merged.n++] = fresh.items[f++];
			merged.items[merged.n++] = *e;
		}
		while (f < fresh.n)
			merged.items[merged.n++] = fresh.items[f++];
		old.n = stay;
		free(fresh.items);
		fresh = merged;
	}
	s->kinds[kind] = fresh;
	thaw(s, kind);
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
		struct store_frozen *f = s->frozen[k];
		if (!f) {
			f = xmalloc(sizeof(*f));
			f->users = 1; /* the cache's */
			f->n = l->n;
			f->objs = xmalloc(l->n * sizeof(json_object *));
			f->ns = xmalloc(l->n * sizeof(char *));
			f->names = xmalloc(l->n * sizeof(char *));
			for (size_t i = 0; i < l->n; i++) {
				f->objs[i] = json_object_get(l->items[i].obj);
				f->ns[i] = l->items[i].ns;
				f->names[i] = l->items[i].name;
			}
			s->frozen[k] = f;
		}
		f->users++;
		snap->frozen[k] = f;
		snap->count[k] = f->n;
		snap->objs[k] = f->objs;
		snap->ns[k] = f->ns;
		snap->names[k] = f->names;
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
	for (int k = 0; k < STORE_KIND_COUNT; k++) {
		if (snap->frozen[k]) {
			frozen_release(snap->frozen[k]);
			continue;
		}
		for (size_t i = 0; i < snap->count[k]; i++)
			json_object_put(snap->objs[k][i]);
	}
	pthread_mutex_unlock(&refs_lock);
	for (int k = 0; k < STORE_KIND_COUNT; k++) {
		if (snap->frozen[k])
			continue;
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
	return snapshot_same_for(a, b, except, NULL, NULL);
}

struct judge {
	store_relevant_cb matters;
	void *arg;
	enum store_kind kind;
	bool seen; /* a change that matters */
};

static bool judge_change(void *arg, const char *ns, const char *name, json_object *old,
                         json_object *now)
{
	struct judge *j = arg;
	(void)ns;
	(void)name;
	j->seen = j->matters(j->arg, j->kind, old, now);
	return !j->seen;
}

bool snapshot_same_for(const struct snapshot *a, const struct snapshot *b, int except,
                       store_relevant_cb matters, void *arg)
{
	for (int k = 0; k < STORE_KIND_COUNT; k++) {
		if (k == except)
			continue;
		if (a->objs[k] == b->objs[k] && a->count[k] == b->count[k])
			continue; /* one frozen list: the kind did not change */
		if (matters) {
			struct judge j = {
			    .matters = matters, .arg = arg, .kind = (enum store_kind)k};
			snapshot_diff_kind(a, b, (enum store_kind)k, judge_change, &j);
			if (j.seen)
				return false;
			continue;
		}
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
	if (a->objs[k] == b->objs[k] && a->count[k] == b->count[k])
		return true; /* one frozen list: the kind did not change */
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

bool snapshot_slices_only_diff(const struct snapshot *a, const struct snapshot *b,
                               store_relevant_cb matters, void *arg, char ***keys, size_t *nkeys)
{
	struct slice_keys k = {0};
	*keys = NULL;
	*nkeys = 0;
	if (!snapshot_same_for(a, b, STORE_ENDPOINT_SLICE, matters, arg))
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
