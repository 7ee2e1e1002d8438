/* controller/compile_incr.h - incremental compile of Ingress changes.
 *
 * After a full compile (compile_incr_full) the state remembers which host
 * names each Ingress of our class can touch. When a later snapshot differs
 * from the one compiled only in Ingress objects (or also in objects the judge
 * set by compile_incr_set_judge calls unseen), compile_incr_apply compiles
 * just the Ingresses those changes can reach (every Ingress that shares a
 * host name with a changed one, transitively) and splices their hosts into
 * the kept table, which then equals what a full compile of the new snapshot
 * gives (tests/unit/controller/compile_incr_test.c checks it byte for byte
 * over random churn). Whatever it cannot do exactly (a pinned Ingress, one
 * with diagnostics, a change to another kind of object, too large a reach)
 * it refuses, and the caller compiles in full. */
#ifndef WEIR_CONTROLLER_COMPILE_INCR_H
#define WEIR_CONTROLLER_COMPILE_INCR_H

#include <stdbool.h>
#include <stddef.h>

#include "compile.h"
#include "route_table.h"
#include "store.h"

/* At most this many Ingresses are compiled by one incremental step; more
 * take a full compile. */
#define COMPILE_INCR_MAX_INGRESSES 2000

struct compile_incr;

struct compile_incr *compile_incr_new(void);
void compile_incr_free(struct compile_incr *s);

/* For a change to an object of another kind that Ingresses see: call
 * each(each_arg, ns, name) for every Ingress of the old snapshot that names
 * the object and return 0, or return -1 when the change reaches further
 * than the Ingresses naming it (the settings ConfigMap, the default
 * backend Service, an EndpointSlice): a full compile. */
typedef int (*compile_incr_namers_cb)(
    void *arg, enum store_kind kind, json_object *old, json_object *now,
    void (*each)(void *each_arg, const char *ns, const char *name), void *each_arg);

/* Let compile_incr_apply take a step whose other kinds of object changed
 * too: a change matters(arg, ...) calls unseen by the Ingresses of the old
 * snapshot is passed over (snapshot_same_for), and one they see makes the
 * Ingresses namers (NULL: none) names compile again as if they had changed.
 * The controller passes refs_matters and refs_namers with the refs brought
 * up to the old snapshot. Without a judge (the default) any such change is
 * refused. Kept across compiles. */
void compile_incr_set_judge(struct compile_incr *s, store_relevant_cb matters,
                            compile_incr_namers_cb namers, void *arg);

/* compile_snapshot, remembering what compile_incr_apply needs. *table and
 * diags as compile_snapshot; the state is reset first. */
int compile_incr_full(struct compile_incr *s, const struct snapshot *snap,
                      const struct compile_options *o, struct route_table **table,
                      struct diag_list *diags);

/* What one incremental step did. */
struct compile_incr_stats {
	size_t changed;    /* Ingresses added, removed or replaced */
	size_t recompiled; /* Ingresses compiled */
	size_t hosts;      /* host names in reach (changed) */
	/* t's backends, certificates, CAs and backend TLS profiles are the ones
	 * it had before, in the same order and with the same content (only
	 * hosts changed: publisher_publish_hosts) */
	bool arrays_kept;
};

/* old: the snapshot t and diags came from (through compile_incr_full or
 * an earlier apply); snap: the new one. When they differ only in Ingress
 * objects (and changes the judge calls unseen) and the step can be made exactly, updates t in place
 * (diags stay as they are: a step that would change them is refused), sets *changed (caller frees
 * each string and the array) to the *nchanged host names whose hosts may differ (sorted) and
 * returns 0. Returns WEIR_EAGAIN when a full compile is needed: t and the state must then be thrown
 * away (t may be half-updated), i.e. followed by compile_incr_full. */
int compile_incr_apply(struct compile_incr *s, const struct snapshot *old,
                       const struct snapshot *snap, const struct compile_options *o,
                       struct route_table *t, const struct diag_list *diags, char ***changed,
                       size_t *nchanged, struct compile_incr_stats *stats);

/* The index of snap's EndpointSlices the state keeps, made to fit snap
 * (for compile_patch_endpoints; borrowed, valid until the next call). */
const struct compile_slices *compile_incr_slices(struct compile_incr *s,
                                                 const struct snapshot *snap);

#endif
