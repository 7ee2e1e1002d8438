/* controller/events.h - Warning Events on Ingresses (core/v1 Event). */
#ifndef WEIR_CONTROLLER_EVENTS_H
#define WEIR_CONTROLLER_EVENTS_H

struct k8s_client;

/* Create a core/v1 Event (type Warning) on an Ingress, deduplicated (same object+reason+message
 * -> count bump at most once per minute) and rate-limited. Returns 0 or WEIR_E*
 * (WEIR_EAGAIN when the rate limit dropped it). All strings are borrowed for the call.
 * Thread-safe. */
int events_warn_ingress(struct k8s_client *c, const char *ns, const char *name, const char *uid,
                        const char *reason, const char *message);

#endif
