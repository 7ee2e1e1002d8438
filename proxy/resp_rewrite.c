/* proxy/resp_rewrite.c - Location, Refresh and Set-Cookie rewrites. */
#include "resp_rewrite.h"

#include <string.h>
#include <strings.h>

/* The position of needle (any case) in v[0..n), or n when absent. */
static size_t find_caseless(const char *v, size_t n, const char *needle)
{
	size_t k = strlen(needle);
	for (size_t i = 0; i + k <= n; i++)
		if (strncasecmp(v + i, needle, k) == 0)
			return i;
	return n;
}

int resp_rewrite_redirect(const struct route_policy *pol, bool refresh, const char *v, size_t n,
                          struct resp_piece out[RESP_REWRITE_MAX_PIECES])
{
	if (!pol || !pol->proxy_redirect_from || !pol->proxy_redirect_to)
		return 0;
	size_t start = 0;
	if (refresh) {
		start = find_caseless(v, n, "url=");
		if (start == n)
			return 0;
		start += 4;
	}
	const char *from = pol->proxy_redirect_from;
	size_t fl = strlen(from);
	if (n - start < fl || memcmp(v + start, from, fl) != 0)
		return 0;
	out[0] = (struct resp_piece){v, start};
	out[1] = (struct resp_piece){pol->proxy_redirect_to, strlen(pol->proxy_redirect_to)};
	out[2] = (struct resp_piece){v + start + fl, n - start - fl};
	return 3;
}

/* One replacement of v[at, at+len) by to. */
struct edit {
	size_t at, len;
	const char *to;
};

/* The value of the first attribute named name (after the first ';'): sets
 * *at and *len and returns true, else false. */
static bool attribute(const char *v, size_t n, const char *name, size_t *at, size_t *len)
{
	size_t nl = strlen(name);
	const char *semi = memchr(v, ';', n);
	size_t i = semi ? (size_t)(semi - v) : n;
	while (i < n) {
		i++; /* past ';' */
		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
		const char *e = memchr(v + i, ';', n - i);
		size_t end = e ? (size_t)(e - v) : n;
		size_t j = i;
		while (j < end && v[j] != '=')
			j++;
		size_t k = j;
		while (k > i && (v[k - 1] == ' ' || v[k - 1] == '\t'))
			k--;
		if (j < end && k - i == nl && strncasecmp(v + i, name, nl) == 0) {
			size_t s = j + 1, t = end;
			while (s < t && (v[s] == ' ' || v[s] == '\t'))
				s++;
			while (t > s && (v[t - 1] == ' ' || v[t - 1] == '\t'))
				t--;
			*at = s;
			*len = t - s;
			return true;
		}
		i = end;
	}
	return false;
}

int resp_rewrite_cookie(const struct route_policy *pol, const char *v, size_t n,
                        struct resp_piece out[RESP_REWRITE_MAX_PIECES])
{
	struct edit ed[2];
	int ne = 0;
	size_t at, len;
	if (!pol)
		return 0;
	if (pol->proxy_cookie_domain_from && pol->proxy_cookie_domain_to &&
	    attribute(v, n, "domain", &at, &len)) {
		const char *from = pol->proxy_cookie_domain_from;
		if (*from == '.')
			from++;
		if (len && v[at] == '.') {
			at++;
			len--;
		}
		if (strlen(from) == len && strncasecmp(v + at, from, len) == 0)
			ed[ne++] = (struct edit){at, len, pol->proxy_cookie_domain_to};
	}
	if (pol->proxy_cookie_path_from && pol->proxy_cookie_path_to &&
	    attribute(v, n, "path", &at, &len)) {
		size_t fl = strlen(pol->proxy_cookie_path_from);
		if (fl <= len && memcmp(v + at, pol->proxy_cookie_path_from, fl) == 0)
			ed[ne++] = (struct edit){at, fl, pol->proxy_cookie_path_to};
	}
	if (!ne)
		return 0;
	if (ne == 2 && ed[1].at < ed[0].at) {
		struct edit tmp = ed[0];
		ed[0] = ed[1];
		ed[1] = tmp;
	}
	int np = 0;
	size_t pos = 0;
	for (int i = 0; i < ne; i++) {
		out[np++] = (struct resp_piece){v + pos, ed[i].at - pos};
		out[np++] = (struct resp_piece){ed[i].to, strlen(ed[i].to)};
		pos = ed[i].at + ed[i].len;
	}
	out[np++] = (struct resp_piece){v + pos, n - pos};
	return np;
}
