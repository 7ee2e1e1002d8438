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
