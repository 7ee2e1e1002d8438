/* proxy/block.h - requests refused before any route (ingress-nginx's
 * block-cidrs, block-user-agents and block-referers ConfigMap keys): the
 * table's lists, with their regular expressions compiled once per table. */
#ifndef WEIR_PROXY_BLOCK_H
#define WEIR_PROXY_BLOCK_H

#include <stdbool.h>

#include "http.h"
#include "route_table.h"

struct block_list; /* opaque, immutable once built */

/* Compile the patterns of s (borrowed; it must outlive the list). Returns 0
 * and *out (NULL when s blocks nothing), or WEIR_EINVAL with err (a pattern
 * that does not compile, "settings.block_referers[1]: bad regex: ...") or
 * WEIR_ENOMEM. */
int block_list_new(const struct route_settings *s, struct block_list **out, char *err,
                   size_t errlen);
void block_list_free(struct block_list *b);

/* True when the request is refused: its client (the real client address,
 * realip.h) is in block_cidrs, or its User-Agent / Referer matches one of
 * the patterns (a plain entry equals the whole value, ignoring case; "~RE"
 * and "~*RE" are searched in it, the latter ignoring case). A header that
 * is absent matches nothing; a repeated one is matched line by line. b may
 * be NULL (nothing blocked). */
bool block_check(const struct block_list *b, const struct http_request *req,
                 const struct http_client *client);

#endif
