/* common/url.c - absolute http(s) URL splitting. */
#include "url.h"

#include <arpa/inet.h>
#include <string.h>

#include "error.h"

int url_parse(const char *s, struct url *out)
{
	struct url u;
	memset(&u, 0, sizeof(u));
	const char *p;
	if (strncmp(s, "http://", 7) == 0) {
		p = s + 7;
	} else if (strncmp(s, "https://", 8) == 0) {
		u.https = true;
		p = s + 8;
	} else {
		return WEIR_EINVAL;
	}
	for (const char *q = s; *q; q++)
		if ((unsigned char)*q <= 0x20 || *q == 0x7f || *q == '#' || *q == '$')
			return WEIR_EINVAL;
	size_t alen = strcspn(p, "/?");
	u.authority = p;
	u.authority_len = alen;
	if (alen == 0 || memchr(p, '@', alen))
		return WEIR_EINVAL;
	const char *port = NULL, *end = p + alen;
	if (p[0] == '[') {
		const char *close = memchr(p, ']', alen);
		if (!close || close == p + 1)
			return WEIR_EINVAL;
		u.host = p + 1;
		u.host_len = (size_t)(close - p - 1);
		if (close + 1 < end) {
			if (close[1] != ':')
				return WEIR_EINVAL;
			port = close + 2;
		}
		if (!url_host_is_ip(u.host, u.host_len) || !memchr(u.host, ':', u.host_len))
			return WEIR_EINVAL;
	} else {
		const char *colon = memchr(p, ':', alen);
		u.host = p;
		u.host_len = colon ? (size_t)(colon - p) : alen;
		if (colon)
			port = colon + 1;
		if (u.host_len == 0 || u.host_len > 253)
			return WEIR_EINVAL;
		for (size_t i = 0; i < u.host_len; i++) {
			char c = u.host[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
				return WEIR_EINVAL;
		}
	}
	u.port = u.https ? 443 : 80;
	if (port) {
		unsigned long v = 0;
		if (port == end)
			return WEIR_EINVAL;
		for (const char *q = port; q < end; q++) {
			if (*q < '0' || *q > '9')
				return WEIR_EINVAL;
			v = v * 10 + (unsigned long)(*q - '0');
			if (v > 65535)
				return WEIR_EINVAL;
		}
		if (v == 0)
			return WEIR_EINVAL;
		u.port = (uint16_t)v;
	}
	if (*end) {
		u.target = end;
		u.target_len = strlen(end);
	} else {
		u.target = "/";
		u.target_len = 1;
	}
	if (u.target[0] == '?') {
		/* "http://a?x" has an empty path: the request line needs the '/' */
		return WEIR_EINVAL;
	}
	*out = u;
	return 0;
}

int url_check_signin(const char *s)
{
	if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0 &&
	    strncmp(s, "$scheme://", 10) != 0 && strncmp(s, "$pass_access_scheme://", 22) != 0)
		return WEIR_EINVAL;
	for (const char *p = s; *p; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return WEIR_EINVAL;
		if (*p != '$')
			continue;
		size_t n = 0;
		while ((p[1 + n] >= 'a' && p[1 + n] <= 'z') || p[1 + n] == '_' ||
		       (p[1 + n] >= '0' && p[1 + n] <= '9'))
			n++;
		bool known = false;
		for (const char *v = URL_SIGNIN_VARS; *v && !known && n;) {
			size_t len = strcspn(v, " ");
			known = len == n && strncmp(v, p + 1, n) == 0;
			v += len;
			v += *v == ' ';
		}
		if (!known)
			return WEIR_EINVAL;
		p += n;
	}
	return 0;
}

static size_t name_len(const char *p)
{
	size_t n = 0;
	while ((p[n] >= 'a' && p[n] <= 'z') || p[n] == '_' || (p[n] >= '0' && p[n] <= '9'))
		n++;
	return n;
}

int url_check_cache_key(const char *s)
{
	static const char *const whole[] = {
	    "remote_user", "host", "http_host", "request_uri", "uri", "remote_addr", "scheme"};
	static const char *const prefix[] = {"http_", "cookie_", "arg_"};
	if (!*s)
		return WEIR_EINVAL;
	for (const char *p = s; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return WEIR_EINVAL;
		if (*p != '$')
			continue;
		size_t n = name_len(p + 1);
		bool known = false;
		for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]) && !known; i++)
			known = strlen(whole[i]) == n && strncmp(p + 1, whole[i], n) == 0;
		for (size_t i = 0; i < sizeof(prefix) / sizeof(prefix[0]) && !known; i++) {
			size_t l = strlen(prefix[i]);
			known = n > l && strncmp(p + 1, prefix[i], l) == 0;
		}
		if (!known)
			return WEIR_EINVAL;
		p += n;
	}
	return 0;
}

/* One nginx time ("5m", "300", "500ms") into *ms. */
static int parse_time(const char *t, size_t len, uint32_t *ms)
{
	uint64_t v = 0, mult;
	size_t i = 0;
	while (i < len && t[i] >= '0' && t[i] <= '9') {
		v = v * 10 + (uint64_t)(t[i] - '0');
		if (v > UINT32_MAX)
			return WEIR_EINVAL;
		i++;
	}
	if (i == 0)
		return WEIR_EINVAL;
	size_t ul = len - i;
	const char *u = t + i;
	if (ul == 0 || (ul == 1 && *u == 's'))
		mult = 1000;
	else if (ul == 2 && strncmp(u, "ms", 2) == 0)
		mult = 1;
	else if (ul == 1 && *u == 'm')
		mult = 60000;
	else if (ul == 1 && *u == 'h')
		mult = 3600000;
	else if (ul == 1 && *u == 'd')
		mult = 86400000;
	else
		return WEIR_EINVAL;
	if (v * mult > UINT32_MAX)
		return WEIR_EINVAL;
	*ms = (uint32_t)(v * mult);
	return 0;
}

int url_cache_valid_ms(const char *spec, int status, uint32_t *ms)
{
	uint32_t named = 0, any = 0;
	bool have_named = false, have_any = false, saw_entry = false;
	*ms = 0;
	const char *p = spec;
	while (*p) {
		const char *end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		/* tokens of this entry: codes then the time */
		const char *tok[16];
		size_t tlen[16], nt = 0;
		for (const char *q = p; q < end;) {
			while (q < end && (*q == ' ' || *q == '\t'))
				q++;
			const char *st = q;
			while (q < end && *q != ' ' && *q != '\t')
				q++;
			if (q > st) {
				if (nt == 16)
					return WEIR_EINVAL;
				tok[nt] = st;
				tlen[nt++] = (size_t)(q - st);
			}
		}
		if (nt == 0)
			return WEIR_EINVAL;
		uint32_t t;
		if (parse_time(tok[nt - 1], tlen[nt - 1], &t) != 0)
			return WEIR_EINVAL;
		saw_entry = true;
		bool hit = false, is_any = false;
		if (nt == 1)
			hit = status == 200 || status == 301 || status == 302;
		for (size_t i = 0; i + 1 < nt; i++) {
			if (tlen[i] == 3 && strncmp(tok[i], "any", 3) == 0) {
				is_any = true;
				continue;
			}
			if (tlen[i] != 3 || tok[i][0] < '1' || tok[i][0] > '5' || tok[i][1] < '0' ||
			    tok[i][1] > '9' || tok[i][2] < '0' || tok[i][2] > '9')
				return WEIR_EINVAL;
			int code =
			    (tok[i][0] - '0') * 100 + (tok[i][1] - '0') * 10 + (tok[i][2] - '0');
			hit = hit || code == status;
		}
		if (hit && !have_named) {
			have_named = true;
			named = t;
		}
		if (is_any && !have_any) {
			have_any = true;
			any = t;
		}
		if (*end == ',' && end[1] == '\0')
			return WEIR_EINVAL; /* an empty last entry */
		p = *end ? end + 1 : end;
	}
	if (!saw_entry)
		return WEIR_EINVAL;
	*ms = have_named ? named : have_any ? any : 0;
	return 0;
}

bool url_host_is_ip(const char *host, size_t host_len)
{
	char buf[64];
	unsigned char addr[16];
	if (host_len == 0 || host_len >= sizeof(buf))
		return false;
	memcpy(buf, host, host_len);
	buf[host_len] = '\0';
	return inet_pton(AF_INET, buf, addr) == 1 || inet_pton(AF_INET6, buf, addr) == 1;
}

int url_expand_mirror(const char *tmpl, const struct url_mirror_vars *v, char *buf, size_t cap)
{
	size_t n = 0;
	if (cap == 0)
		return WEIR_ETOOBIG;
	for (const char *p = tmpl; *p;) {
		const char *val = p;
		size_t len = 1;
		if (*p == '$') {
			size_t nl = 0;
			while ((p[1 + nl] >= 'a' && p[1 + nl] <= 'z') ||
			       (p[1 + nl] >= 'A' && p[1 + nl] <= 'Z') ||
			       (p[1 + nl] >= '0' && p[1 + nl] <= '9') || p[1 + nl] == '_')
				nl++;
			if (nl == 11 && strncmp(p + 1, "request_uri", 11) == 0) {
				val = v->request_uri;
				len = v->request_uri_len;
			} else if (nl == 3 && strncmp(p + 1, "uri", 3) == 0) {
				val = v->uri;
				len = v->uri_len;
			} else if (nl == 4 && strncmp(p + 1, "args", 4) == 0) {
				val = v->args;
				len = v->args_len;
			} else if (nl == 4 && strncmp(p + 1, "host", 4) == 0) {
				val = v->host;
				len = v->host_len;
			} else {
				return WEIR_EINVAL;
			}
			p += 1 + nl;
		} else {
			p++;
		}
		if (len >= cap - n)
			return WEIR_ETOOBIG;
		if (len)
			memcpy(buf + n, val, len);
		n += len;
	}
	buf[n] = '\0';
	return (int)n;
}

int url_check_mirror(const char *tmpl)
{
	static const struct url_mirror_vars sample = {"/a?b", 4, "/a", 2, "b", 1, "a.test", 6};
	char buf[4096];
	struct url u;
	/* No variable in scheme or authority: a client's Host or target must
	 * never choose where the proxy connects. $request_uri and $uri always
	 * start with '/', so the authority ends where one of them starts. */
	const char *a = strstr(tmpl, "://");
	if (!a || memchr(tmpl, '$', (size_t)(a - tmpl)))
		return WEIR_EINVAL;
	for (const char *p = a + 3; *p && *p != '/' && *p != '?'; p++) {
		if (*p != '$')
			continue;
		size_t nl = 0;
		while ((p[1 + nl] >= 'a' && p[1 + nl] <= 'z') ||
		       (p[1 + nl] >= 'A' && p[1 + nl] <= 'Z') ||
		       (p[1 + nl] >= '0' && p[1 + nl] <= '9') || p[1 + nl] == '_')
			nl++;
		if ((nl == 11 && strncmp(p + 1, "request_uri", 11) == 0) ||
		    (nl == 3 && strncmp(p + 1, "uri", 3) == 0))
			break;
		return WEIR_EINVAL;
	}
	int n = url_expand_mirror(tmpl, &sample, buf, sizeof(buf));
	if (n < 0)
		return WEIR_EINVAL;
	return url_parse(buf, &u) == 0 ? 0 : WEIR_EINVAL;
}
