/* proxy/realip.c - the real client address (see realip.h).
 *
 * How the settings combine (the same words as the ConfigMap keys):
 * - use-proxy-protocol: the PROXY header's client replaces the TCP peer as
 *   the nearest hop when the peer is in trusted-proxies or proxy-real-ip-cidr
 *   (nginx: set_real_ip_from with real_ip_header proxy_protocol).
 * - use-forwarded-headers: a hop in proxy-real-ip-cidr is trusted; so is a
 *   hop in trusted-proxies, whatever this setting says.
 * - X-Forwarded-For keeps the incoming chain and appends the hop when the hop
 *   is in trusted-proxies (weir's historical rule) or with
 *   compute-full-forwarded-for; otherwise it is the real client alone. */
#include "realip.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

static bool addr_bytes(const union http_addr *a, int *family, const uint8_t **bytes)
{
	if (a->ss_family == AF_INET) {
		*family = 4;
		*bytes = (const uint8_t *)&((const struct sockaddr_in *)a)->sin_addr;
		return true;
	}
	if (a->ss_family == AF_INET6) {
		*family = 6;
		*bytes = ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr;
		return true;
	}
	return false;
}

static bool in_list(const struct route_cidr *list, size_t n, const union http_addr *a)
{
	int family;
	const uint8_t *bytes;
	if (!addr_bytes(a, &family, &bytes))
		return false;
	for (size_t i = 0; i < n; i++)
		if (route_cidr_contains(&list[i], family, bytes))
			return true;
	return false;
}

static bool in_trusted_proxies(const struct route_settings *s, const union http_addr *a)
{
	return in_list(s->trusted_proxies, s->ntrusted_proxies, a);
}

static bool in_real_ip_cidr(const struct route_settings *s, const union http_addr *a)
{
	return in_list(s->proxy_real_ip_cidr, s->nproxy_real_ip_cidr, a);
}

/* May this address speak for the one before it? */
static bool trusted(const struct route_settings *s, const union http_addr *a)
{
	return in_trusted_proxies(s, a) || (s->use_forwarded_headers && in_real_ip_cidr(s, a));
}

static bool name_is(const struct http_header *h, const char *name)
{
	size_t n = strlen(name);
	return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* One list element as an address (no port, no brackets). */
static bool parse_elem(const char *p, size_t n, union http_addr *out)
{
	char text[64];
	while (n && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n == 0 || n >= sizeof(text))
		return false;
	memcpy(text, p, n);
	text[n] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, text, &((struct sockaddr_in *)out)->sin_addr) == 1) {
		out->ss_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)out)->sin6_addr) == 1) {
		out->ss_family = AF_INET6;
		return true;
	}
	return false;
}

/* Walk the forwarded-for header lines right to left; *real starts as the hop. */
static void walk_forwarded(const struct route_settings *s, const struct http_request *req,
                           union http_addr *real)
{
	const char *name = s->forwarded_for_header ? s->forwarded_for_header : "X-Forwarded-For";
	size_t nh = req->nheaders < HTTP_MAX_HEADERS ? req->nheaders : HTTP_MAX_HEADERS;
	for (size_t i = nh; i-- > 0;) {
		const struct http_header *h = &req->headers[i];
		if (!name_is(h, name))
			continue;
		size_t end = h->value_len;
		for (;;) {
			size_t start = end;
			while (start > 0 && h->value[start - 1] != ',')
				start--;
			union http_addr a;
			bool blank = true;
			for (size_t k = start; k < end; k++)
				blank = blank && (h->value[k] == ' ' || h->value[k] == '\t');
			if (!blank) {
				if (!parse_elem(h->value + start, end - start, &a))
					return; /* garbage: keep the last good address */
				*real = a;
				if (!trusted(s, real))
					return;
			}
			if (start == 0)
				break;
			end = start - 1;
		}
	}
}

/* Dotted quad of the 4 bytes at b, as inet_ntop writes it, without stdio (this
 * runs for every request). ip has room for 16 bytes. */
static void format_ipv4(const unsigned char b[4], char *ip)
{
	for (int i = 0; i < 4; i++) {
		unsigned v = b[i];
		if (v >= 100)
			*ip++ = (char)('0' + v / 100);
		if (v >= 10)
			*ip++ = (char)('0' + v / 10 % 10);
		*ip++ = (char)('0' + v % 10);
		*ip++ = i < 3 ? '.' : '\0';
	}
}

void realip_format(const union http_addr *addr, char ip[64], uint16_t *port)
{
	uint16_t p = 0;
	ip[0] = '\0';
	if (addr->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)addr;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			format_ipv4(s6->sin6_addr.s6_addr + 12, ip);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, ip, 64);
		p = ntohs(s6->sin6_port);
	} else if (addr->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)addr;
		format_ipv4((const unsigned char *)&s4->sin_addr.s_addr, ip);
		p = ntohs(s4->sin_port);
	}
	if (port)
		*port = p;
}

void realip_resolve(const struct route_settings *s, const struct http_request *req,
                    struct http_client *client)
{
	union http_addr hop = client->peer;
	bool hop_trusted = false;
	if (s && s->use_proxy_protocol && client->has_proxy_addr &&
	    (in_trusted_proxies(s, &client->peer) || in_real_ip_cidr(s, &client->peer)))
		hop = client->proxy_addr;
	union http_addr real = hop;
	if (s) {
		hop_trusted = trusted(s, &hop);
		if (hop_trusted && req)
			walk_forwarded(s, req, &real);
	}
	client->forwarded_trusted = hop_trusted;
	client->forwarded_chain =
	    s && (in_trusted_proxies(s, &hop) ||
	          (s->use_forwarded_headers && s->compute_full_forwarded_for));
	realip_format(&hop, client->hop_ip, &client->port);
	client->addr = real;
	if (hop_trusted && req) /* the walk may have moved away from the hop */
		realip_format(&real, client->ip, &client->port);
	else
		memcpy(client->ip, client->hop_ip, sizeof(client->ip));
}
