/* proxy/rewrite.h - the nginx rewrites of a route (route_policy.rewrites,
 * from a configuration-snippet) at request time: the first whose regex
 * matches the path decides (route_table.h struct route_rewrite). Regexes
 * are compiled once per thread and kept by their text (a small cache), so
 * that no table load pays for them and no pointer outlives its table. */
#ifndef WEIR_PROXY_REWRITE_H
#define WEIR_PROXY_REWRITE_H

#include <stddef.h>

#include "http.h"
#include "route_table.h"

/* Room for a rewritten request target or Location. */
#define REWRITE_TARGET_MAX 8192

/* The first of pol's rewrites whose regex matches req's path: *which gets
 * its index (-1: none matches, pol NULL or without rewrites too) and buf
 * (cap bytes, NUL-terminated; *len its length) its replacement, expanded:
 * with flag break a request target that starts with '/', else a Location;
 * the request's query joined as nginx does. Returns 0, WEIR_ETOOBIG (the
 * result does not fit) or WEIR_ENOMEM. */
int rewrite_apply(const struct route_policy *pol, const struct http_request *req,
                  const struct http_client *client, char *buf, size_t cap, size_t *len, int *which);

#endif
