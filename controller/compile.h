/* controller/compile.h - the pure compiler: a snapshot of Kubernetes objects
 * in, a route table and diagnostics out. No I/O, no clock, no randomness:
 * the same snapshot always gives a byte-identical serialized table. */
#ifndef WEIR_CONTROLLER_COMPILE_H
#define WEIR_CONTROLLER_COMPILE_H

#include <stdbool.h>
#include <stddef.h>

#include "route_table.h"
#include "store.h"

struct compile_options {
	const char *ingress_class;   /* "weir" */
	const char *controller_name; /* "weir.dev/ingress-controller" */
	bool allow_loopback;         /* --manifests mode: 127.0.0.0/8 and ::1 endpoints kept */
	/* --take-over-class: the IngressClass named ingress_class is ours
	 * whatever its spec.controller (serving another controller's class in
	 * place during a migration). */
	bool take_over_class;
	/* Namespace of the settings ConfigMap "weir"; NULL: the first one of
	 * that name in any namespace (--manifests). */
	const char *configmap_namespace;
	/* --migration-report --all-classes: every Ingress is treated as ours,
	 * whatever its class. */
	bool all_classes;
	/* --default-backend-service: "namespace/name" of the Service (its first
	 * port) that serves requests no route matches when no Ingress's
	 * spec.defaultBackend does, and custom-http-errors; NULL: none. */
	const char *default_backend_service;
};

/* One problem found in the input. Every string is owned by the diag_list.
 * kind/ns/name/uid name the object (ns, uid may be ""); key is the
 * annotation key or field path (NULL when none); reason is a short
 * CamelCase reason for a Kubernetes Event; message is one line. */
struct diag {
	char *kind;
	char *ns;
	char *name;
	char *uid;
	char *key;
	char *reason;
	char *message;
};

struct diag_list {
	size_t n;
	struct diag *items;
	/* The Ingresses ("namespace/name", sorted) that compile_snapshot left
	 * out as a whole (fail closed, bad values); owned by the list. */
	size_t ndropped;
	char **dropped;
};

/* Compile a snapshot (borrowed). On success returns 0, *table is a new table
 * (caller frees with route_table_free; generation 0, the publisher sets it)
 * and diags (caller storage, zero-initialised by the caller or left from a
 * diag_list_cleanup) holds the diagnostics in a deterministic order (caller
 * releases with diag_list_cleanup). Returns WEIR_ENOMEM on allocation
 * failure (nothing allocated then). Bad input never fails the call: it
 * becomes diagnostics. */
int compile_snapshot(const struct snapshot *snap, const struct compile_options *o,
                     struct route_table **table, struct diag_list *diags);

struct compile_slices; /* below */

/* Endpoint-only change: t (compiled from an older snapshot that differs from
 * snap only in EndpointSlices) gets the endpoints snap gives the backends of
 * the Services svc_keys ("namespace/name", sorted by strcmp), as
 * compile_snapshot(snap) would. Backends of other Services, ExternalName and
 * service-upstream backends are left alone. *npatched counts the backends
 * whose endpoints changed; patched (NULL, or room for t->nbackends) gets
 * their indexes in t->backends, ascending. Returns 0 (t patched), or WEIR_EAGAIN with t
 * unchanged when only a full compile gives the right table: the new
 * endpoints raise a diagnostic, or a backend gains its first or loses its
 * last endpoint while some Ingress has a default-backend annotation (the
 * compile picks a route's backend by that). slices: an index of snap's
 * slices (borrowed; NULL, or one that does not fit snap: the slices are
 * read from snap, which costs a look at every EndpointSlice's labels). */
int compile_patch_endpoints(const struct snapshot *snap, const struct compile_options *o,
                            const struct compile_slices *slices, struct route_table *t,
                            char *const *svc_keys, size_t nkeys, size_t *npatched, size_t *patched);

/* Called by compile_snapshot_ex once per Ingress of our class with its
 * "namespace/name" (borrowed for the call), the object (borrowed from the
 * snapshot), the host names its output can touch (sorted, unique; the
 * callee takes hosts and each string) and whether it is pinned (takes part
 * in something table-wide: spec.defaultBackend, a client CA, a backend TLS
 * profile). */
typedef void (*compile_mention_cb)(void *arg, const char *key, json_object *obj, char **hosts,
                                   size_t nhosts, bool pinned);

/* compile_snapshot that also reports each Ingress's mentions (mention may be
 * NULL). */
int compile_snapshot_ex(const struct snapshot *snap, const struct compile_options *o,
                        struct route_table **table, struct diag_list *diags,
                        compile_mention_cb mention, void *arg);

/* EndpointSlices indexed by Service, built from a snapshot and reusable by
 * compiles of later snapshots whose slices are the same objects. */
struct compile_slices *compile_slices_build(const struct snapshot *snap);
/* True when snap's slices are the ones cs was built from. */
bool compile_slices_fit(const struct compile_slices *cs, const struct snapshot *snap);
void compile_slices_free(struct compile_slices *cs);
/* Make *cs fit snap: in place when the slices at the positions that changed
 * keep their namespace and Service (an endpoint change), else built again
 * (*cs may be NULL). */
void compile_slices_refresh(struct compile_slices **cs, const struct snapshot *snap);

/* compile_snapshot_ex with an index of snap's slices (borrowed; NULL, or
 * one that does not fit snap: built for the call). */
int compile_snapshot_with(const struct snapshot *snap, const struct compile_options *o,
                          const struct compile_slices *slices, struct route_table **table,
                          struct diag_list *diags, compile_mention_cb mention, void *arg);

/* The mentions compile_snapshot_ex would report for obj, an Ingress of snap:
 * returns 0 and fills them (caller frees), or 1 when obj is not of our
 * class (nothing filled). */
int compile_ingress_mentions(const struct snapshot *snap, const struct compile_options *o,
                             json_object *obj, char ***hosts, size_t *n, bool *pinned);

/* After hosts and passthrough entries were moved between tables: sort them
 * and drop (and renumber) backends, certificates, CAs and profiles no one
 * uses, as compile_snapshot leaves a table. The first hsorted hosts,
 * psorted passthrough entries, bsorted backends and csorted certificates
 * are known to be sorted already (only the rest is sorted, then merged). */
void compile_finish_merge(struct route_table *t, size_t hsorted, size_t psorted, size_t bsorted,
                          size_t csorted);

/* The same when no backend, certificate, CA or profile was added and none
 * lost its last user: hosts and passthrough entries are sorted, the rest
 * stays as it is. */
void compile_finish_merge_hosts(struct route_table *t, size_t hsorted, size_t psorted);

/* Sort diagnostics into compile_snapshot's order. */
void compile_sort_diags(struct diag_list *d);

/* The settings ConfigMap compile_snapshot reads from snap (borrowed from
 * it), or NULL when there is none. */
json_object *compile_settings_configmap(const struct snapshot *snap,
                                        const struct compile_options *o);

/* The process-wide cache of certificate and key pairs (only a digest of
 * both is kept) that route_validate_cert accepted: compile validates a pair
 * it finds there no more. Thread-safe; bounded (emptied when full).
 * Remember only a pair known to load, e.g. one of a certificate shard this
 * controller published (cert_seed.h), by its route_cert_digest d
 * (ROUTE_CERT_DIGEST_LEN bytes, borrowed for the call). */
void compile_remember_good_digest(const unsigned char *d);
/* True when the pair (PEM texts, borrowed for the call) is in that cache. */
bool compile_pair_known_good(const char *crt, const char *key);

/* Free every diagnostic and reset the list to empty. */
void diag_list_cleanup(struct diag_list *d);

/* The Ingresses (as "namespace/name", sorted) of the snapshot that belong to
 * our class, for status updates. Returns 0 and *out (caller frees each
 * string and the array) with *n entries, or WEIR_ENOMEM. */
int compile_class_ingresses(const struct snapshot *snap, const struct compile_options *o,
                            char ***out, size_t *n);

#endif
