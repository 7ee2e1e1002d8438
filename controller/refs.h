/* controller/refs.h - which Services, Secrets and ConfigMaps the Ingresses
 * reference, so that a change to an object nobody references (another
 * team's Secret or ConfigMap, an unrelated EndpointSlice) or a change
 * compile does not read (an Ingress's status, a resourceVersion bump)
 * triggers no recompile. A ConfigMap named "weir" always counts (the
 * settings). */
#ifndef WEIR_CONTROLLER_REFS_H
#define WEIR_CONTROLLER_REFS_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "store.h"

struct refs;

/* An empty set that calls every change relevant until the first
 * refs_update. Caller frees with refs_free; aborts on OOM. */
struct refs *refs_new(void);
void refs_free(struct refs *r);

/* Also count the Service "ns/name" as referenced in every update (the
 * controller's --default-backend-service). Call before the first update. */
void refs_add_service(struct refs *r, const char *ns_name);

/* Bring the set up to what every Ingress (of any class: a superset is safe)
 * and the weir ConfigMap in snap (borrowed for the call) name. Only the
 * Ingresses not held by the same pointer at the last update are read: the
 * set keeps a reference to each Ingress and the keys it named until the
 * next update or refs_free. Safe against refs_relevant on other threads;
 * not to be called by two threads at once. */
void refs_update(struct refs *r, const struct snapshot *snap);

/* store_relevant_cb: arg is a struct refs. True when the change can alter
 * the compiled table. Every change it calls irrelevant bumps a counter. */
bool refs_relevant(void *arg, enum store_kind kind, json_object *old, json_object *obj);

/* refs_relevant without the count: for judging, on the thread that calls
 * refs_update, what changed between the snapshot of that update and a newer
 * one (snapshot_same_for). False: no Ingress of the update's snapshot can
 * compile differently for the change. */
bool refs_matters(void *arg, enum store_kind kind, json_object *old, json_object *obj);

/* compile_incr_namers_cb, on the thread that calls refs_update: calls
 * each(each_arg, ns, name) for every Ingress of the last update that names
 * the Service, Secret or ConfigMap old or obj is (returns 0), or returns -1
 * for a change that reaches further: another kind, the settings ConfigMap,
 * an object the settings or --default-backend-service name. */
int refs_namers(void *arg, enum store_kind kind, json_object *old, json_object *obj,
                void (*each)(void *each_arg, const char *ns, const char *name), void *each_arg);

/* Number of changes called irrelevant so far. A caller that takes a
 * snapshot, compiles and then calls refs_update compares this counter
 * before the snapshot and after the update: if it moved, a change may have
 * been judged by the older set and a new compile is due. */
uint64_t refs_ignored(const struct refs *r);

#endif
