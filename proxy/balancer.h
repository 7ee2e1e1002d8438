/* proxy/balancer.h - choosing the backend (canary or main) and the endpoint
 * for a request. Every decision that must agree across replicas and workers
 * (affinity cookie values, upstream-hash-by) is a pure function of the route
 * table and the request. */
#ifndef WEIR_PROXY_BALANCER_H
#define WEIR_PROXY_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "route_table.h"
#include "table.h"

/* The choice; caller storage. */
struct balancer_pick {
	int backend;          /* chosen backend index (canary or main) */
	int endpoint;         /* index into that backend's endpoints, -1: none available -> 503 */
	char set_cookie[512]; /* "" or a full Set-Cookie value to send (affinity) */
};

/* Choose backend and endpoint for a request: canary first (a request whose
 * affinity cookie names an endpoint of the main backend stays on it, one
 * naming a canary endpoint goes to the canary unless affinity_behavior is
 * legacy; else header / cookie / weight out of weight_total; a legacy
 * canary's picks carry no affinity), then affinity cookie (value = 16 hex chars of a stable 64-bit
 * FNV-1a hash of "address:port", identical in every replica; balanced re-picks and re-sets when
 * gone; persistent keeps it while listed), upstream-hash-by (rendezvous hashing over endpoints on
 * the expanded key, so removing one endpoint moves only its keys; with hash_by_subset over subsets
 * of hash_by_subset_size endpoints, then a random one of the subset), else load-balance ewma (the
 * better of two random endpoints by this thread's decayed response-time averages, see
 * balancer_observe) or weighted round robin (balancer_round_robin). Draining
 * endpoints get no new requests. All arguments borrowed. Returns 0 (out
 * filled), or WEIR_ENOENT when the route has no backend. Thread-safe. */
int balancer_choose(const struct table *t, const struct route *route,
                    const struct http_request *req, const struct http_client *client,
                    struct balancer_pick *out);

/* The next endpoint of backend (an index into t's backends) by smooth
 * weighted round robin over the endpoints that are not draining, or -1 when
 * there is none. The rotation state belongs to the backend's name and each
 * endpoint's address, not to t: every table generation listing them shares
 * it (balancer_state_new), so reloads neither restart it nor skew it. No
 * lock; thread-safe. */
int balancer_round_robin(const struct table *t, int backend);

/* Endpoints a request has tried, as bits by endpoint index; endpoints past
 * the first BALANCER_TRIED_MAX of a backend are never marked. */
#define BALANCER_TRIED_MAX 256

/* The endpoint for the next attempt of a request (proxy-next-upstream): the
 * next one by the same weighted round robin as balancer_round_robin, among
 * the endpoints that are not draining and whose bit in tried is clear,
 * whatever load-balance, affinity or hash the route uses; the pick is not
 * counted in the rotation, so a failing endpoint does not shift the
 * shares of first attempts. -1 when every endpoint was tried. tried is
 * borrowed for the call. Thread-safe. */
int balancer_retry_pick(const struct table *t, int backend,
                        const uint64_t tried[BALANCER_TRIED_MAX / 64]);

/* Round-robin state for every backend of rt, for table_new: shares the cells
 * of backends and endpoints that a live table already has (table_cache.h),
 * new ones start fresh. rt is borrowed for the call. Returns 0 with *out
 * (freed with balancer_state_free, which lets go of the shared cells), or
 * WEIR_ENOMEM. */
int balancer_state_new(const struct route_table *rt, struct balancer_state **out);

/* The same, taking backend i's cells from prev where same[i] (caller's
 * word that backend i of rt has the name and endpoints, in order, of
 * backend i of the table prev was built for): no key hashed or looked up
 * for those. prev (borrowed for the call) may be NULL, then same is not
 * read; else same has rt->nbackends entries. */
int balancer_state_new_reusing(const struct route_table *rt, const struct balancer_state *prev,
                               const bool *same, struct balancer_state **out);
void balancer_state_free(struct balancer_state *st);

/* The cookie value for an endpoint: 16 lowercase hex chars of FNV-1a 64 over
 * "address:port", NUL-terminated (17-byte buffer). */
void balancer_endpoint_id(const struct route_endpoint *ep, char out[17]);

/* False when the User-Agent value ua (n bytes; NULL: none) is one that
 * rejects or misreads SameSite=None cookies, by ingress-nginx's list: Chrome
 * 40-69 ("Chrome/4", "Chrome/5", "Chrome/6"), iOS 12 ("CPU iPhone OS 12",
 * "iPad; CPU OS 12") and Safari on macOS 10.14 ("Macintosh", "Intel Mac OS
 * X 10_14" and "Safari" without "Chrome"). Substring tests, as the Lua. */
bool balancer_samesite_none_ok(const char *ua, size_t n);

/* upstream-hash-by-subset: the endpoint for a key hash (see balancer_choose
 * for the subsets); when the subset's endpoints all drain, the rendezvous
 * pick over the whole backend. -1 when none is available. be borrowed; the
 * random choice within the subset uses this thread's generator. */
int balancer_subset_pick(const struct route_backend *be, uint64_t keyhash, uint32_t size);

/* The affinity Set-Cookie value naming ep for route (session-cookie-* and
 * the request's User-Agent for conditional SameSite=None) into out (cap
 * bytes, NUL-terminated; "" when it does not fit). All borrowed. */
void balancer_affinity_cookie(const struct route *route, const struct route_endpoint *ep,
                              const struct http_request *req, char *out, size_t cap);

/* Feed load-balance "ewma" (this thread's averages): ep answered in ms (the
 * time to the response head), or failed (pass the time it cost, at least the
 * connect or read timeout that expired, so a failing endpoint loses the draw
 * until its average decays). Any thread; touches only its own state. */
void balancer_observe(const struct route_endpoint *ep, double ms);

#endif
