/* proxy/external.h - the addresses of ExternalName backends for one worker.
 * Each name is resolved with resolver_lookup_all (glibc's getaddrinfo_a
 * threads, never on the loop) when a request first needs it; every address
 * of the answer is kept and handed out in turn. An answer serves for
 * EXTERNAL_REFRESH_MS (getaddrinfo shows no DNS TTL); after that the next
 * request starts a new lookup in the background and goes on with the
 * addresses it has. A failed lookup keeps the last good addresses and is
 * tried again after EXTERNAL_RETRY_MS. Requests that find no address yet
 * wait for the one lookup in flight. Everything runs in the owning worker's
 * loop thread. */
#ifndef WEIR_PROXY_EXTERNAL_H
#define WEIR_PROXY_EXTERNAL_H

#include <stddef.h>

#include "loop.h"
#include "resolve.h"

#define EXTERNAL_REFRESH_MS 30000u
#define EXTERNAL_RETRY_MS 5000u
#define EXTERNAL_NAMES_MAX 256u /* names kept per worker; the least recently used go */

struct external_names; /* opaque, one per worker */
struct external_wait;  /* opaque, one waiting request */

/* Runs once, from the loop, when the lookup a request waited for ended: rc
 * 0 when the name now has addresses (call external_names_pick again), else
 * WEIR_ENOENT. The wait is freed before the call. */
typedef void (*external_cb)(void *data, int rc);

/* Create a worker's table of names on loop, looking names up with r
 * (borrowed; it must outlive the table). Returns 0 and *out (caller frees
 * with external_names_free) or WEIR_ENOMEM. */
int external_names_new(struct loop *loop, struct resolver *r, struct external_names **out);
/* Free the table and cancel its lookups in flight. Every wait must have
 * fired or been cancelled before. NULL is fine. */
void external_names_free(struct external_names *t);

/* An address of name (a DNS name as route_validate_external allows,
 * borrowed for the call). Returns 0 with the next address in turn copied
 * into address (RESOLVE_ADDR_MAX bytes), starting a background refresh when
 * the answer is older than EXTERNAL_REFRESH_MS; WEIR_EAGAIN with *w set when
 * the name has no address yet and a lookup runs (cb fires later from the
 * loop, never inside this call; cancel with external_wait_cancel until
 * then); WEIR_ENOENT when the name never resolved and its last lookup
 * failed less than EXTERNAL_RETRY_MS ago (or could not start); WEIR_ENOMEM.
 * cb never fires unless WEIR_EAGAIN was returned. */
int external_names_pick(struct external_names *t, const char *name, char *address, external_cb cb,
                        void *data, struct external_wait **w);

/* Stop waiting: cb never fires and w is freed. NULL is fine. */
void external_wait_cancel(struct external_wait *w);

#endif
