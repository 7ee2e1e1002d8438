/* controller/leader.h - leader election with a coordination.k8s.io/v1 Lease. */
#ifndef WEIR_CONTROLLER_LEADER_H
#define WEIR_CONTROLLER_LEADER_H

#include <stdbool.h>

struct k8s_client;
struct leader;

/* coordination.k8s.io/v1 Lease election in a thread (lease 15s, renew 10s, retry 2s).
 * c is borrowed until leader_stop returns; strings are copied. Returns 0 and *out
 * (caller frees with leader_stop) or WEIR_E*. */
int leader_start(struct k8s_client *c, const char *ns, const char *lease_name, const char *identity,
                 struct leader **out);

/* Atomic read: true while this process holds an unexpired lease. */
bool leader_is_leader(const struct leader *l);

/* Stops the thread, releases the lease if held (clears holderIdentity), frees. NULL is fine. */
void leader_stop(struct leader *l);

#endif
