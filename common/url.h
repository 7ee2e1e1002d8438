/* common/url.h - absolute http(s) URLs as the forward-auth annotations give
 * them (auth-url): split into the parts a client needs to connect and to
 * write its request line. Shared so that the controller refuses exactly the
 * URLs the proxy could not use. Pure, no allocation. */
#ifndef WEIR_COMMON_URL_H
#define WEIR_COMMON_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Slices of the parsed string (borrowed from it, not NUL-terminated). */
struct url {
	bool https;
	const char *authority; /* host[:port] as written: the Host header */
	size_t authority_len;
	const char *host; /* without the brackets of an IPv6 literal */
	size_t host_len;
	uint16_t port;      /* the explicit port, else 80 or 443 */
	const char *target; /* path and query ("/" when the URL has none) */
	size_t target_len;
};

/* Parse "http://host[:port][/path][?query]" or the https form. Refused (with
 * WEIR_EINVAL): other schemes, user info, fragments, empty hosts, ports
 * outside 1..65535, bytes <= 0x20 or 0x7f, '$' (nginx variables are not
 * expanded). On success returns 0 and fills *out with slices of s (s must
 * outlive them). */
int url_parse(const char *s, struct url *out);

/* The nginx variables an auth-signin URL may hold (the proxy expands them
 * per request): space-separated names without '$'. */
#define URL_SIGNIN_VARS                                                                            \
	"scheme pass_access_scheme host http_host best_http_host request_uri escaped_request_uri"

/* Check an auth-signin value: "http://", "https://" or "$scheme://" (or
 * "$pass_access_scheme://") first, no byte <= 0x20 or
 * 0x7f, and every '$' starts one of URL_SIGNIN_VARS. Returns 0 or
 * WEIR_EINVAL. */
int url_check_signin(const char *s);

/* auth-cache-key: literal text and the nginx variables $remote_user, $host,
 * $http_host, $request_uri, $uri, $remote_addr, $scheme, $http_NAME,
 * $cookie_NAME and $arg_NAME (NAME: [a-z0-9_]+); no byte < 0x20 or 0x7f.
 * Returns 0 or WEIR_EINVAL. */
int url_check_cache_key(const char *s);

/* auth-cache-duration: comma-separated "[code ...] time" entries as nginx's
 * proxy_cache_valid (codes 100..599 or "any"; no code means 200 301 302;
 * time: digits with ms, s, m, h or d, bare digits are seconds), e.g.
 * "200 202 401 5m". Sets *ms to how long an answer with status may be
 * cached (0: not cached; the first entry naming the status wins, then
 * "any"). Returns 0 or WEIR_EINVAL for a bad spec (*ms then 0). */
int url_cache_valid_ms(const char *spec, int status, uint32_t *ms);

/* The request's parts a mirror-target may name ($request_uri, $uri,
 * $args, $host), as slices (not NUL-terminated). */
struct url_mirror_vars {
	const char *request_uri; /* the request-target as sent: path and query */
	size_t request_uri_len;
	const char *uri; /* its path, without the query */
	size_t uri_len;
	const char *args; /* its query, without the '?' */
	size_t args_len;
	const char *host; /* the request's host, without a port */
	size_t host_len;
};

/* Expand a mirror-target template: literal text and $request_uri, $uri,
 * $args, $host (a name is the longest run of [A-Za-z0-9_] after '$') into
 * buf (NUL-terminated, cap bytes). Returns the length, WEIR_EINVAL for
 * another variable (or a bare '$'), WEIR_ETOOBIG when cap is too small. The
 * result is not checked: url_parse it. */
int url_expand_mirror(const char *tmpl, const struct url_mirror_vars *v, char *buf, size_t cap);

/* Check a mirror-target: no variable in the scheme or authority (the
 * client must not pick where the proxy connects), url_expand_mirror knows
 * its variables and, with sample values filled in, url_parse takes the
 * result. Returns 0 or WEIR_EINVAL. */
int url_check_mirror(const char *tmpl);

/* True when host (host_len bytes) is an IPv4 or IPv6 literal. */
bool url_host_is_ip(const char *host, size_t host_len);

#endif
