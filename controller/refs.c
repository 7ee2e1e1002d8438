/* controller/refs.c - the Services, Secrets and ConfigMaps Ingresses name,
 * kept as a counted set of "S ns/name" / "X ns/name" / "C ns/name" keys
 * (how many Ingresses, or the settings, name each), updated after each
 * compile from the Ingresses that changed since the last update. */
#include "refs.h"
#include "str_hash.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The settings ConfigMap (compile.c reads it in the controller's namespace;
 * one of that name in any namespace counts, a safe superset). */
#define SETTINGS_CONFIGMAP "weir"

/* One key of the set and how many times it is named. */
struct counted {
	char *key;
	size_t count;
	struct counted *next;
};

/* An Ingress of the last update and the keys it names (a reference to
 * the object is held, so its pointer names that very object). */
struct memo {
	json_object *ing;
	const char *ns, *name; /* borrowed from ing */
	struct counted **keys; /* each counted once for this Ingress */
	size_t n;
	char **named; /* refs_update's, while the keys are counted */
};

struct refs {
	pthread_mutex_t mu;
	bool ready;               /* under mu: refs_update ran at least once */
	struct counted **buckets; /* under mu: a power of two of them */
	size_t nbuckets, nkeys;   /* under mu */
	atomic_uint_fast64_t ignored;
	char *service; /* "ns/name" of --default-backend-service, or NULL */
	/* refs_update's own (its callers never run two at once) */
	struct memo *memo; /* the Ingresses of the last update, snapshot order */
	size_t nmemo;
	struct counted **extra; /* the service's and the settings' keys, counted */
	size_t nextra;
};

struct keyset {
	char **items;
	size_t n, cap;
};

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		abort(); /* control plane: out of memory is fatal */
	return q;
}

static void add(struct keyset *k, char type, const char *ns, const char *name)
{
	if (!name || !*name)
		return;
	if (k->n == k->cap) {
		k->cap = k->cap ? k->cap * 2 : 64;
		k->items = xrealloc(k->items, k->cap * sizeof(*k->items));
	}
	size_t len = strlen(ns) + strlen(name) + 4;
	char *s = xrealloc(NULL, len);
	snprintf(s, len, "%c %s/%s", type, ns, name);
	k->items[k->n++] = s;
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;
	if (o && json_object_is_type(o, json_type_object))
		json_object_object_get_ex(o, key, &v);
	return v;
}

static const char *str(json_object *o, const char *key)
{
	json_object *v = get(o, key);
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static size_t len(json_object *a)
{
	return a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

static const char *meta_ns(json_object *o)
{
	const char *ns = str(get(o, "metadata"), "namespace");
	return ns ? ns : "";
}

static void add_backend(struct keyset *k, const char *ns, json_object *backend)
{
	add(k, 'S', ns, str(get(backend, "service"), "name"));
}

/* "ns/name" or "name" (in ns) */
static void add_ref(struct keyset *k, char type, const char *ns, const char *v)
{
	const char *slash = strchr(v, '/');
	if (!slash) {
		add(k, type, ns, v);
		return;
	}
	char buf[512];
	snprintf(buf, sizeof(buf), "%.*s", (int)(slash - v), v);
	add(k, type, buf, slash + 1);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void ingress_refs(struct keyset *k, json_object *ing)
{
	const char *ns = meta_ns(ing);
	json_object *spec = get(ing, "spec");
	add_backend(k, ns, get(spec, "defaultBackend"));
	json_object *rules = get(spec, "rules");
	for (size_t i = 0; i < len(rules); i++) {
		json_object *paths = get(get(json_object_array_get_idx(rules, i), "http"), "paths");
		for (size_t j = 0; j < len(paths); j++)
			add_backend(k, ns, get(json_object_array_get_idx(paths, j), "backend"));
	}
	json_object *tls = get(spec, "tls");
	for (size_t i = 0; i < len(tls); i++)
		add(k, 'X', ns, str(json_object_array_get_idx(tls, i), "secretName"));
	json_object *ann = get(get(ing, "metadata"), "annotations");
	if (!ann || !json_object_is_type(ann, json_type_object))
		return;
	json_object_object_foreach(ann, key, val)
	{
		if (!json_object_is_type(val, json_type_string))
			continue;
		const char *v = json_object_get_string(val);
		if (ends_with(key, "/default-backend"))
			add(k, 'S', ns, v);
		else if (ends_with(key, "-secret"))
			add_ref(k, 'X', ns, v);
		else if (ends_with(key, "/auth-proxy-set-headers") ||
		         ends_with(key, "/custom-headers") ||
		         ends_with(key, "/fastcgi-params-configmap"))
			add_ref(k, 'C', ns, v);
	}
}

static void configmap_refs(struct keyset *k, json_object *cm)
{
	const char *name = str(get(cm, "metadata"), "name");
	if (!name || strcmp(name, SETTINGS_CONFIGMAP) != 0)
		return; /* only the settings name Secrets */
	json_object *data = get(cm, "data");
	if (!data || !json_object_is_type(data, json_type_object))
		return;
	json_object_object_foreach(data, key, val)
	{
		if (ends_with(key, "-secret") && json_object_is_type(val, json_type_string))
			add_ref(k, 'X', meta_ns(cm), json_object_get_string(val));
	}
}

struct refs *refs_new(void)
{
	struct refs *r = xrealloc(NULL, sizeof(*r));
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	atomic_init(&r->ignored, 0);
	return r;
}

void refs_free(struct refs *r)
{
	if (!r)
		return;
	for (size_t b = 0; b < r->nbuckets; b++)
		for (struct counted *c = r->buckets[b], *next; c; c = next) {
			next = c->next;
			free(c->key);
			free(c);
		}
	free(r->buckets);
	for (size_t i = 0; i < r->nmemo; i++) {
		store_put(r->memo[i].ing);
		free(r->memo[i].keys);
	}
	free(r->memo);
	free(r->extra);
	free(r->service);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

void refs_add_service(struct refs *r, const char *ns_name)
{
	free(r->service);
	r->service = xrealloc(NULL, strlen(ns_name) + 1);
	memcpy(r->service, ns_name, strlen(ns_name) + 1);
}

/* The slot that holds key's entry, or the NULL one at the end of its chain
 * (mu held, buckets allocated). */
static struct counted **slot(struct refs *r, const char *key)
{
	struct counted **c = &r->buckets[str_hash(key) & (r->nbuckets - 1)];
	while (*c && strcmp((*c)->key, key) != 0)
		c = &(*c)->next;
	return c;
}

/* Count key once more (mu held); it is taken (freed, or kept by the entry
 * made for it). Returns its entry. */
static struct counted *count_up(struct refs *r, char *key)
{
	if (r->nkeys + 1 > r->nbuckets) {
		size_t nb = r->nbuckets ? 2 * r->nbuckets : 64;
		struct counted **old = r->buckets;
		size_t nold = r->nbuckets;
		r->buckets = calloc(nb, sizeof(*r->buckets));
		if (!r->buckets)
			abort();
		r->nbuckets = nb;
		for (size_t b = 0; b < nold; b++)
			for (struct counted *c = old[b], *next; c; c = next) {
				next = c->next;
				struct counted **to = &r->buckets[str_hash(c->key) & (nb - 1)];
				c->next = *to;
				*to = c;
			}
		free(old);
	}
	struct counted **c = slot(r, key);
	if (*c) {
		free(key);
		(*c)->count++;
		return *c;
	}
	*c = xrealloc(NULL, sizeof(**c));
	**c = (struct counted){key, 1, NULL};
	r->nkeys++;
	return *c;
}

/* Count c once less; a key no longer named leaves (mu held). */
static void count_down(struct refs *r, struct counted *c)
{
	if (--c->count)
		return;
	struct counted **at = &r->buckets[str_hash(c->key) & (r->nbuckets - 1)];
	while (*at != c)
		at = &(*at)->next;
	*at = c->next;
	free(c->key);
	free(c);
	r->nkeys--;
}

static int cmp_memo(const struct memo *m, const char *ns, const char *name)
{
	int c = strcmp(m->ns, ns);
	return c ? c : strcmp(m->name, name);
}

/* The entries of a memo, gone or changed, collected to be counted down. */
struct gone {
	struct counted **items;
	size_t n, cap;
};

/* An Ingress of the last update, gone or changed: its keys into g, its
 * reference put. */
static void retire(struct gone *g, struct memo *m)
{
	if (g->n + m->n > g->cap) {
		g->cap = g->n + m->n > 2 * g->cap ? g->n + m->n : 2 * g->cap;
		g->items = xrealloc(g->items, g->cap * sizeof(*g->items));
	}
	if (m->n)
		memcpy(g->items + g->n, m->keys, m->n * sizeof(*m->keys));
	g->n += m->n;
	free(m->keys);
	store_put(m->ing);
}

/* Count the keys of k (taken) and return their entries (mu held). */
static struct counted **count_all(struct refs *r, struct keyset *k)
{
	struct counted **out = xrealloc(NULL, (k->n ? k->n : 1) * sizeof(*out));
	for (size_t i = 0; i < k->n; i++)
		out[i] = count_up(r, k->items[i]);
	free(k->items);
	return out;
}

void refs_update(struct refs *r, const struct snapshot *snap)
{
	size_t n = snap->count[STORE_INGRESS], j = 0;
	struct memo *memo = xrealloc(NULL, (n ? n : 1) * sizeof(*memo));
	struct gone gone = {0}; /* keys of Ingresses changed or removed */
	/* Both lists are sorted by namespace and name; an Ingress held by the
	 * same pointer as at the last update names the same keys. */
	for (size_t i = 0; i < n; i++) {
		json_object *ing = snap->objs[STORE_INGRESS][i];
		const char *ns = snap->ns[STORE_INGRESS][i], *name = snap->names[STORE_INGRESS][i];
		while (j < r->nmemo && cmp_memo(&r->memo[j], ns, name) < 0)
			retire(&gone, &r->memo[j++]);
		if (j < r->nmemo && r->memo[j].ing == ing) {
			memo[i] = r->memo[j++];
			continue;
		}
		if (j < r->nmemo && cmp_memo(&r->memo[j], ns, name) == 0)
			retire(&gone, &r->memo[j++]);
		struct keyset k = {0};
		ingress_refs(&k, ing);
		memo[i] = (struct memo){store_get(ing), ns, name, NULL, k.n, k.items};
	}
	while (j < r->nmemo)
		retire(&gone, &r->memo[j++]);
	free(r->memo);
	r->memo = memo;
	r->nmemo = n;

	/* The service's and the settings' keys: few, taken again each time. */
	struct keyset extra = {0};
	const char *slash = r->service ? strchr(r->service, '/') : NULL;
	if (slash) {
		char ns[256];
		snprintf(ns, sizeof(ns), "%.*s", (int)(slash - r->service), r->service);
		add(&extra, 'S', ns, slash + 1);
	}
	for (size_t i = 0; i < snap->count[STORE_CONFIGMAP]; i++)
		configmap_refs(&extra, snap->objs[STORE_CONFIGMAP][i]);

	pthread_mutex_lock(&r->mu);
	/* Up first: a key that moved from one Ingress to another stays. */
	for (size_t i = 0; i < n; i++)
		if (memo[i].named) {
			struct keyset k = {memo[i].named, memo[i].n, memo[i].n};
			memo[i].keys = count_all(r, &k);
			memo[i].named = NULL;
		}
	struct counted **old_extra = r->extra;
	size_t nold_extra = r->nextra;
	r->nextra = extra.n;
	r->extra = count_all(r, &extra);
	for (size_t i = 0; i < gone.n; i++)
		count_down(r, gone.items[i]);
	for (size_t i = 0; i < nold_extra; i++)
		count_down(r, old_extra[i]);
	r->ready = true;
	pthread_mutex_unlock(&r->mu);
	free(old_extra);
	free(gone.items);
}

/* Whether "type ns/name" is referenced; true until the first update. */
static bool referenced(struct refs *r, char type, const char *ns, const char *name)
{
	char key[600];
	if (!name)
		return false;
	snprintf(key, sizeof(key), "%c %s/%s", type, ns, name);
	pthread_mutex_lock(&r->mu);
	bool hit = !r->ready || (r->nbuckets && *slot(r, key) != NULL);
	pthread_mutex_unlock(&r->mu);
	return hit;
}

static bool same(json_object *a, json_object *b, const char *key)
{
	return json_object_equal(get(a, key), get(b, key)) != 0;
}

/* Both versions exist and differ only in members compile does not read. */
static bool unchanged(enum store_kind kind, json_object *old, json_object *obj)
{
	if (!old || !obj)
		return false;
	json_object *mo = get(old, "metadata"), *mn = get(obj, "metadata");
	switch (kind) {
	case STORE_INGRESS:
		return same(old, obj, "spec") && same(mo, mn, "annotations") &&
		       same(mo, mn, "uid") && same(mo, mn, "creationTimestamp") &&
		       same(mo, mn, "deletionTimestamp");
	case STORE_SERVICE:
		return same(old, obj, "spec");
	case STORE_ENDPOINT_SLICE:
		return same(old, obj, "endpoints") && same(old, obj, "ports") &&
		       same(old, obj, "addressType") && same(mo, mn, "labels");
	case STORE_SECRET:
		return same(old, obj, "type") && same(old, obj, "data") &&
		       same(old, obj, "stringData");
	case STORE_CONFIGMAP:
		return same(old, obj, "data");
	default:
		return false;
	}
}

static const char *slice_service(json_object *slice)
{
	return str(get(get(slice, "metadata"), "labels"), "kubernetes.io/service-name");
}

static bool is_relevant(struct refs *r, enum store_kind kind, json_object *old, json_object *obj)
{
	if (unchanged(kind, old, obj))
		return false;
	json_object *any = obj ? obj : old;
	const char *ns = meta_ns(any);
	switch (kind) {
	case STORE_SERVICE:
		return referenced(r, 'S', ns, str(get(any, "metadata"), "name"));
	case STORE_SECRET:
		return referenced(r, 'X', ns, str(get(any, "metadata"), "name"));
	case STORE_CONFIGMAP: {
		const char *name = str(get(any, "metadata"), "name");
		return (name && strcmp(name, SETTINGS_CONFIGMAP) == 0) ||
		       referenced(r, 'C', ns, name);
	}
	case STORE_ENDPOINT_SLICE:
		return (old && referenced(r, 'S', ns, slice_service(old))) ||
		       (obj && referenced(r, 'S', ns, slice_service(obj)));
	default:
		return true;
	}
}

bool refs_relevant(void *arg, enum store_kind kind, json_object *old, json_object *obj)
{
	struct refs *r = arg;
	bool rel = is_relevant(r, kind, old, obj);
	if (!rel)
		atomic_fetch_add(&r->ignored, 1);
	return rel;
}

bool refs_matters(void *arg, enum store_kind kind, json_object *old, json_object *obj)
{
	return is_relevant(arg, kind, old, obj);
}

int refs_namers(void *arg, enum store_kind kind, json_object *old, json_object *obj,
                void (*each)(void *each_arg, const char *ns, const char *name), void *each_arg)
{
	struct refs *r = arg;
	char type;
	switch (kind) {
	case STORE_SERVICE:
		type = 'S';
		break;
	case STORE_SECRET:
		type = 'X';
		break;
	case STORE_CONFIGMAP:
		type = 'C';
		break;
	default:
		return -1;
	}
	json_object *any = obj ? obj : old;
	const char *name = str(get(any, "metadata"), "name");
	if (!name || (kind == STORE_CONFIGMAP && strcmp(name, SETTINGS_CONFIGMAP) == 0))
		return -1;
	struct keyset k = {0};
	add(&k, type, meta_ns(any), name);
	int rc = 0;
	for (size_t i = 0; i < r->nextra && rc == 0; i++)
		if (strcmp(r->extra[i]->key, k.items[0]) == 0)
			rc = -1; /* the settings' or the default backend's */
	for (size_t m = 0; m < r->nmemo && rc == 0; m++)
		for (size_t j = 0; j < r->memo[m].n; j++)
			if (strcmp(r->memo[m].keys[j]->key, k.items[0]) == 0) {
				each(each_arg, r->memo[m].ns, r->memo[m].name);
				break;
			}
	free(k.items[0]);
	free(k.items);
	return rc;
}

uint64_t refs_ignored(const struct refs *r)
{
	return atomic_load(&((struct refs *)r)->ignored);
}
