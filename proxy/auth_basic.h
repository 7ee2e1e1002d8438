/* proxy/auth_basic.h - HTTP basic authentication of a route (auth-type:
 * basic): the Authorization check, the password hash checks, and a small
 * per-worker cache of successful checks so a slow hash (bcrypt) is not
 * recomputed for every request of the same client on the event loop. */
#ifndef WEIR_PROXY_AUTH_BASIC_H
#define WEIR_PROXY_AUTH_BASIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "route_table.h"

/* Successful checks are remembered for this long (and forgotten at once when
 * the route table changes). */
#define AUTH_BASIC_CACHE_TTL_MS 30000u
/* Entries per worker, in sets of 4; a new entry replaces the one of its set
 * that expires first. */
#define AUTH_BASIC_CACHE_SLOTS 256u

struct auth_basic_cache; /* opaque, one per worker thread, not thread-safe */

/* Allocate a cache (with the scratch space crypt needs). Returns 0 and *out
 * (caller frees with auth_basic_cache_free), or WEIR_ENOMEM. */
int auth_basic_cache_new(struct auth_basic_cache **out);

/* Free a cache, wiping its entries. NULL is fine. */
void auth_basic_cache_free(struct auth_basic_cache *cache);

/* Room for the header lines of a 401 (see auth_basic_check). */
#define AUTH_BASIC_EXTRA_MAX 1536u

/* The answer to a request on a route: 0 when it may go on (the route has no
 * authentication, or the request carries "Authorization: Basic" credentials
 * of a listed user whose password matches the hash); 400 when it carries
 * more than one Authorization header (as nginx); else 401. extra (size cap,
 * AUTH_BASIC_EXTRA_MAX is enough) receives the header lines to add to the
 * answer ("" for 0 and 400): "WWW-Authenticate: Basic realm=\"...\"\r\n"
 * and, on a CORS route whose origin rule matches, the
 * Access-Control-Allow-Origin (and -Credentials) lines ingress-nginx also
 * puts on its 401 (left out when they do not fit). table identifies the
 * route table route belongs to (compared only, never dereferenced): a change
 * of table empties the cache. now_ms is a monotonic clock. Each call that
 * checks credentials counts its outcome (metrics_basic_auth). All arguments
 * borrowed. */
int auth_basic_check(struct auth_basic_cache *cache, const void *table, const struct route *route,
                     const struct http_request *req, uint64_t now_ms, char *extra, size_t cap);

/* True when password (len bytes) matches hash, a format of
 * common/auth_hash.h: bcrypt and crypt(3) formats through libxcrypt, apr1
 * and {SHA} with OpenSSL digests; the final comparison is constant-time.
 * cache provides scratch space (NULL: allocated for this call). */
bool auth_basic_verify(struct auth_basic_cache *cache, const char *password, size_t len,
                       const char *hash);

#endif
