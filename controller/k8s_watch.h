/* controller/k8s_watch.h - list+watch of every kind the controller needs, feeding the store. */
#ifndef WEIR_CONTROLLER_K8S_WATCH_H
#define WEIR_CONTROLLER_K8S_WATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

struct k8s_client;

struct k8s_source_options {
	const char *watch_namespace;     /* NULL: all namespaces (namespaced kinds) */
	const char *configmap_namespace; /* the controller's own ConfigMap "weir" (NULL: none
	                                    outside the watched namespaces) */
	const char *configmap_name;
};

struct k8s_source;

/* Start list+watch of Ingress, IngressClass, Service, EndpointSlice, Secret (every type but
 * helm.sh/release.v1 and kubernetes.io/service-account-token, via fieldSelector) and
 * ConfigMap (every one of the watched namespaces, for auth-proxy-set-headers; plus, when
 * watch_namespace is set and is not configmap_namespace, configmap_name there by
 * fieldSelector), feeding the store (store_replace_in after each list, scoped to the
 * namespace listed; store_upsert/store_delete per watch event). Paginated lists, bookmarks,
 * 410 -> relist, capped exponential backoff with jitter, never exits on API errors.
 * c and s are borrowed until k8s_source_stop returns; o's strings are copied.
 * Returns 0 and *out, or WEIR_E* (no thread is left running then). */
int k8s_source_start(struct k8s_client *c, struct store *s, const struct k8s_source_options *o,
                     struct k8s_source **out);

/* True once every kind has been listed at least once. Thread-safe. */
bool k8s_source_synced(const struct k8s_source *src);

/* Interrupts blocking watches (within ~100 ms), joins the threads, frees src. NULL is fine. */
void k8s_source_stop(struct k8s_source *src);

#endif
