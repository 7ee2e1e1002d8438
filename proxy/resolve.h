/* proxy/resolve.h - asynchronous host name lookups for one worker (the auth
 * server of forward auth, usually a Service DNS name). A lookup runs in
 * glibc's getaddrinfo_a threads and reports back through an eventfd watched
 * by the worker's loop, so the worker never blocks on DNS. Answers are kept
 * in a small per-worker cache for RESOLVE_TTL_MS (DNS TTLs are not visible
 * through getaddrinfo; Service ClusterIPs rarely change). Failures are not
 * cached. Everything runs in the owning worker's loop thread. */
#ifndef WEIR_PROXY_RESOLVE_H
#define WEIR_PROXY_RESOLVE_H

#include <stddef.h>

#include "loop.h"

#define RESOLVE_TTL_MS 30000u
#define RESOLVE_CACHE_SLOTS 32u
#define RESOLVE_ADDR_MAX 64u /* an IPv4 or IPv6 literal with its NUL */

struct resolver;      /* opaque, one per worker */
struct resolve_query; /* opaque, one per lookup in flight */

/* Runs once, from the loop, with rc 0 and the first address found (a
 * NUL-terminated literal, borrowed for the call), or rc WEIR_ENOENT when the
 * name did not resolve. The query is freed right after the callback. */
typedef void (*resolve_cb)(void *data, int rc, const char *address);

/* Create a worker's resolver on loop. Returns 0 and *out (caller frees with
 * resolver_free) or WEIR_ENOMEM. */
int resolver_new(struct loop *loop, struct resolver **out);
/* Free the resolver. Every lookup must have fired or been cancelled
 * (resolve_cancel) before. NULL is fine. */
void resolver_free(struct resolver *r);

/* Look host (host_len bytes, a DNS name) up. When the cache holds a fresh
 * answer, copies it into address (RESOLVE_ADDR_MAX bytes) and returns 0; cb
 * is not called. Otherwise starts a lookup and returns WEIR_EAGAIN with *q
 * set (the caller may cancel it with resolve_cancel until cb fires); cb
 * fires later from the loop, never inside this call. Returns WEIR_EINVAL for
 * a name too long, WEIR_ENOMEM or WEIR_EIO (the lookup could not start; cb
 * never fires). */
int resolver_lookup(struct resolver *r, const char *host, size_t host_len, resolve_cb cb,
                    void *data, char *address, struct resolve_query **q);

/* Every address of one answer, for names looked up with resolver_lookup_all. */
#define RESOLVE_ADDRS_MAX 16u

/* Runs once, from the loop, with rc 0 and n (1..RESOLVE_ADDRS_MAX) distinct
 * address literals in answer order (borrowed for the call), or rc
 * WEIR_ENOENT and n 0. The query is freed right after the callback. */
typedef void (*resolve_all_cb)(void *data, int rc, const char (*addrs)[RESOLVE_ADDR_MAX], size_t n);

/* Look name (a NUL-terminated DNS name) up for all its IPv4 and IPv6
 * addresses, bypassing and not filling the cache (the caller keeps its
 * own). Returns WEIR_EAGAIN with *q set (cancel with resolve_cancel until
 * cb fires; cb fires later from the loop, never inside this call),
 * WEIR_EINVAL for a name too long, WEIR_ENOMEM or WEIR_EIO (cb never
 * fires). */
int resolver_lookup_all(struct resolver *r, const char *name, resolve_all_cb cb, void *data,
                        struct resolve_query **q);

/* Cancel a lookup in flight: its callback never fires. */
void resolve_cancel(struct resolve_query *q);

#endif
