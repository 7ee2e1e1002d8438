/* controller/status.h - status.loadBalancer.ingress of our Ingresses. */
#ifndef WEIR_CONTROLLER_STATUS_H
#define WEIR_CONTROLLER_STATUS_H

#include <stdbool.h>

#include <json-c/json.h>

struct k8s_client;

/* Read the publish Service "ns/name" and return its address list as a json array suitable
 * for status.loadBalancer.ingress ([{ "ip": ... } or { "hostname": ... }]): the Service's
 * status.loadBalancer.ingress if any, else spec.externalIPs, else spec.clusterIP.
 * *out caller puts. Returns 0 or WEIR_E* (WEIR_ENOENT when the Service does not exist). */
int status_publish_addresses(struct k8s_client *c, const char *ns_name, json_object **out);

/* True when the Ingress object (borrowed) already carries exactly want (borrowed) as
 * status.loadBalancer.ingress; absent, null and [] all count as empty. Lets a caller skip
 * the API round trip for Ingresses whose cached copy is already right. */
bool status_ingress_has(json_object *ingress, json_object *want);

/* Set status.loadBalancer.ingress of one Ingress when it differs (PUT .../status; a 409
 * conflict re-reads and retries once). lb_ingress is borrowed. Returns 0 (also when nothing
 * needed to change) or WEIR_E*. */
int status_update_ingress(struct k8s_client *c, const char *ns, const char *name,
                          json_object *lb_ingress);

#endif
