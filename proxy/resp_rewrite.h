/* proxy/resp_rewrite.h - rewriting the upstream's Location, Refresh and
 * Set-Cookie header values for the client (ingress-nginx proxy-redirect-*,
 * proxy-cookie-domain, proxy-cookie-path, after nginx's proxy_redirect and
 * proxy_cookie_*). Pure: the result is a list of pieces that point into the
 * original value and the route's strings; nothing is allocated or copied. */
#ifndef WEIR_PROXY_RESP_REWRITE_H
#define WEIR_PROXY_RESP_REWRITE_H

#include <stdbool.h>
#include <stddef.h>

#include "route_table.h"

/* Most pieces a rewritten value is made of. */
#define RESP_REWRITE_MAX_PIECES 5

/* One stretch of the rewritten value (borrowed bytes). */
struct resp_piece {
	const char *p;
	size_t n;
};

/* A Location (refresh false) or Refresh (refresh true: the part after the
 * first "url=", any case) value v of n bytes that starts with
 * pol->proxy_redirect_from (case-sensitive) gets that prefix replaced by
 * pol->proxy_redirect_to. Returns how many pieces out holds (the rewritten
 * value is their concatenation), or 0 when the value stays as it is
 * (no rewrite set, no match). Pieces borrow v and pol. */
int resp_rewrite_redirect(const struct route_policy *pol, bool refresh, const char *v, size_t n,
                          struct resp_piece out[RESP_REWRITE_MAX_PIECES]);

/* A Set-Cookie value v of n bytes: its first Domain attribute, when equal
 * to pol->proxy_cookie_domain_from (case-insensitive, a leading '.' ignored
 * on either side and kept in the value), gets the value after that dot
 * replaced by pol->proxy_cookie_domain_to; its first Path attribute, when
 * it starts with pol->proxy_cookie_path_from (case-sensitive), gets that
 * prefix replaced by pol->proxy_cookie_path_to. Attribute names are
 * matched case-insensitively after the first ';'. Returns the number of
 * pieces, or 0 when nothing changes. */
int resp_rewrite_cookie(const struct route_policy *pol, const char *v, size_t n,
                        struct resp_piece out[RESP_REWRITE_MAX_PIECES]);

#endif
