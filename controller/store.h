/* controller/store.h - thread-safe cache of the Kubernetes objects the
 * controller compiles from, with immutable sorted snapshots.
 *
 * Objects are json-c objects (from the API or converted from YAML manifests),
 * keyed by metadata.namespace/metadata.name within their kind. */
#ifndef WEIR_CONTROLLER_STORE_H
#define WEIR_CONTROLLER_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

enum store_kind {
	STORE_INGRESS,
	STORE_INGRESS_CLASS,
	STORE_SERVICE,
	STORE_ENDPOINT_SLICE,
	STORE_SECRET,
	STORE_CONFIGMAP,
	STORE_KIND_COUNT
};

struct store;

/* Allocate an empty store. Caller frees with store_free(); aborts on OOM. */
struct store *store_new(void);

/* Free the store and put every object it holds. NULL is fine. */
void store_free(struct store *s);

/* Shrink obj's json-c tables in place to what they hold: every JSON object's
 * hash table (json-c gives each 16 slots) and every array (32); and point
 * each member's key at one process-wide copy of that text (marked constant,
 * never freed) instead of its own. Members keep their order; obj stays a
 * normal json-c object (deleting, replacing and deep-copying members work as
 * usual). Thread-safe. store_upsert and
 * store_replace do this to every object they take; a source calls it
 * earlier (as each object is parsed) so the freed tables are reused rather
 * than left as holes in the heap. NULL is fine. Shares nothing (see
 * store_share): obj's members may still be changed. */
void store_compact(json_object *obj);

/* store_compact, and more: replace obj's members by equal nodes that other
 * objects so treated hold (one json-c node for equal strings, numbers and
 * subtrees; the store does this to every object it takes). For a source,
 * as each object is parsed: the duplicates freed here are reused by the
 * next object rather than left as holes in the heap. From then on obj and
 * its members are read-only, and obj is put only by the store (handed to
 * it) or with store_put. obj is marked (its json-c userdata): an object
 * seen once is left alone when handed over again, so a source may hand
 * the store an object it gave before. Thread-safe. NULL is fine. */
void store_share(json_object *obj);

/* A deep copy of obj (NULL: NULL) that nothing shares: the caller's to
 * change. json_object_deep_copy refuses an object store_share has seen (it
 * carries the store's mark as userdata); this takes any. Aborts on OOM. */
json_object *store_copy(json_object *obj);
/* Put an object store_share has seen (its shared members' reference counts
 * change under the lock that guards them). NULL is fine. */
void store_put(json_object *obj);
/* One more reference to an object store_share has seen (taken under the
 * lock store_put uses), e.g. to hand it to the store while keeping one.
 * Returns obj; NULL is fine. */
json_object *store_get(json_object *obj);

/* Insert or replace the object with the same metadata.namespace (missing:
 * "") and metadata.name. Takes ownership of obj (one reference), also on
 * failure. The store applies store_share to obj: from then on obj and
 * every member of it are read-only, and only the store puts them. Returns 0, or WEIR_EINVAL when
 * kind is out of range or obj has no metadata.name. Calls the notify callback after a change. */
int store_upsert(struct store *s, enum store_kind kind, json_object *obj);

/* Remove one object (ns NULL means ""). Returns 0, WEIR_ENOENT when absent
 * (no notification then) or WEIR_EINVAL. */
int store_delete(struct store *s, enum store_kind kind, const char *ns, const char *name);

/* Replace every object of a kind (after a list/relist). Takes ownership of
 * objs[0..n) (one reference each, also on failure; shared as store_upsert
 * does); the array itself stays the caller's. Objects without metadata.name are dropped; with
 * duplicate keys the last one wins. An object equal (json_object_equal) to
 * the one held under its key is put, and the held one stays: a snapshot
 * after it holds the same pointer for it as one before (what
 * snapshot_diff_kind and the incremental compile compare). Notifies once. */
int store_replace(struct store *s, enum store_kind kind, json_object **objs, size_t n);

/* store_replace for one namespace: the objects of kind in namespace scope
 * (NULL: every namespace, as store_replace) become objs[0..n); objects of
 * other namespaces stay, and objs of another namespace are dropped. For
 * two lists of one kind that cover different namespaces. Same ownership
 * and notification as store_replace. */
int store_replace_in(struct store *s, enum store_kind kind, const char *scope, json_object **objs,
                     size_t n);

/* How many objects of kind the store holds in namespace scope (NULL:
 * every namespace); 0 when kind is out of range. O(log n). */
size_t store_count(struct store *s, enum store_kind kind, const char *scope);

/* Set the change callback (NULL to clear). It is called from the thread that
 * made the change, after the store's lock is released; it must not block
 * (it is meant to wake the compile loop). arg is borrowed. */
void store_set_notify(struct store *s, void (*cb)(void *arg), void *arg);

/* Decides whether a change needs a recompile. old is the stored object
 * (NULL: a new one), obj the incoming one (NULL: a deletion); both borrowed
 * and read-only. Called with the store locked: it must not call back into
 * the store, nor block. */
typedef bool (*store_relevant_cb)(void *arg, enum store_kind kind, json_object *old,
                                  json_object *obj);

/* Set (NULL: clear) the relevance filter of store_upsert and store_delete: a
 * change it calls irrelevant is stored without notifying. store_replace
 * always notifies. arg is borrowed. */
void store_set_relevance(struct store *s, store_relevant_cb cb, void *arg);

/* Immutable view: objects of each kind sorted by namespace then name.
 * Readers borrow the objects and their members and change nothing: members
 * may be shared between objects (store_upsert).
 * ns[k][i] and names[k][i] are objs[k][i]'s metadata.namespace ("" when
 * absent) and metadata.name, borrowed from that object (read them without a
 * json lookup). A zeroed snapshot is a valid empty one. */
struct store_frozen;
struct snapshot {
	size_t count[STORE_KIND_COUNT];
	json_object **objs[STORE_KIND_COUNT];
	const char **ns[STORE_KIND_COUNT];
	const char **names[STORE_KIND_COUNT];
	/* store_snapshot's: the kind's arrays, shared with other snapshots
	 * taken while the kind did not change (read-only). NULL: the arrays
	 * and a reference to each object are the snapshot's own. */
	struct store_frozen *frozen[STORE_KIND_COUNT];
};

/* Take a snapshot: each object is held (one reference per kind's list,
 * shared by the snapshots taken while that kind did not change), so later
 * store changes do not affect it. Caller frees with snapshot_free(); aborts
 * on OOM. */
struct snapshot *store_snapshot(struct store *s);

/* Put the snapshot's references and free it. NULL is fine. */
void snapshot_free(struct snapshot *snap);

/* The object of that kind with metadata namespace/name (ns "" for
 * cluster-scoped kinds), borrowed from the snapshot, or NULL. O(log n). */
json_object *snapshot_find(const struct snapshot *snap, enum store_kind kind, const char *ns,
                           const char *name);

/* Static name of a kind ("Ingress", "IngressClass", "Service",
 * "EndpointSlice", "Secret", "ConfigMap"); "?" when out of range. */
const char *store_kind_name(enum store_kind kind);

/* Whether a and b hold the same objects (the same pointers) for every kind
 * but except (-1: every kind). */
bool snapshot_same_except(const struct snapshot *a, const struct snapshot *b, int except);

/* snapshot_same_except, but an object of another kind added, removed or
 * replaced between a and b still counts as the same when matters(arg,
 * kind, a's object or NULL, b's or NULL) is false: a change the compile
 * cannot see (refs_matters: an object no Ingress references). NULL
 * matters: every change counts. Called on the caller's thread. */
bool snapshot_same_for(const struct snapshot *a, const struct snapshot *b, int except,
                       store_relevant_cb matters, void *arg);

/* Called by snapshot_diff_kind for a key of the kind whose object differs:
 * old is a's (NULL: added), now is b's (NULL: removed); ns and name are
 * borrowed. Return false to stop. */
typedef bool (*snapshot_diff_cb)(void *arg, const char *ns, const char *name, json_object *old,
                                 json_object *now);

/* Walk both snapshots' objects of kind in key order and call cb for each
 * key added, removed or replaced (pointer compare). Returns false when cb
 * stopped the walk. */
bool snapshot_diff_kind(const struct snapshot *a, const struct snapshot *b, enum store_kind kind,
                        snapshot_diff_cb cb, void *arg);

/* Whether snapshots a and b differ in EndpointSlices alone (the same object
 * pointers everywhere else, or changes there that matters calls unseen, as
 * snapshot_same_for judges them). When true, *keys (caller frees each and the
 * array) holds the *nkeys Services ("namespace/name", sorted, unique) named
 * by the kubernetes.io/service-name label of a slice that was added,
 * removed or replaced (old and new label both count); a slice without
 * that label names none. When false, *keys is NULL. Aborts on OOM. */
bool snapshot_slices_only_diff(const struct snapshot *a, const struct snapshot *b,
                               store_relevant_cb matters, void *arg, char ***keys, size_t *nkeys);

#endif
