/* proxy/proxy_protocol.c - PROXY protocol v1 (text) and v2 (binary) headers.
 *
 * v1: "PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n" or "PROXY UNKNOWN...\r\n",
 *     at most 107 bytes; addresses must be of the named family and ports
 *     decimal 0..65535 without leading zeros.
 * v2: a 12-byte signature, version/command, family/transport, a 16-bit
 *     length, then the addresses and optional TLVs (skipped). LOCAL and
 *     families other than TCP over IPv4/IPv6 carry no usable client address. */
#include "proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "error.h"

#define V1_MAX 107u
#define V2_HEAD 16u

static const unsigned char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A decimal port: 1 to 5 digits, no leading zero (except "0"), <= 65535. */
static int parse_port(const char *s, size_t n, uint16_t *out)
{
	unsigned v = 0;
	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return WEIR_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return WEIR_EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return WEIR_EINVAL;
	*out = (uint16_t)v;
	return 0;
}

static int parse_addr(int family, const char *s, size_t n, uint16_t port,
                      struct sockaddr_storage *out)
{
	char text[64];
	if (n == 0 || n >= sizeof(text))
		return WEIR_EINVAL;
	memcpy(text, s, n);
	text[n] = '\0';
	memset(out, 0, sizeof(*out));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)out;
		if (inet_pton(AF_INET, text, &a->sin_addr) != 1)
			return WEIR_EINVAL;
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		return 0;
	}
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
	if (inet_pton(AF_INET6, text, &a->sin6_addr) != 1)
		return WEIR_EINVAL;
	a->sin6_family = AF_INET6;
	a->sin6_port = htons(port);
	return 0;
}

static int parse_v1(const char *p, size_t len, struct proxy_protocol_info *out)
{
	const char *end = NULL;
	size_t scan = len < V1_MAX ? len : V1_MAX;
	for (size_t i = 0; i < scan && !end; i++) {
		if (p[i] == '\r' && i + 1 < scan && p[i + 1] == '\n')
			end = p + i;
		else if (p[i] == '\0' || p[i] == '\n' || (p[i] == '\r' && i + 1 < scan))
			return WEIR_EINVAL;
	}
	if (!end)
		return len < V1_MAX ? WEIR_EAGAIN : WEIR_EINVAL;
	size_t hlen = (size_t)(end - p) + 2;
	struct proxy_protocol_info info;
	memset(&info, 0, sizeof(info));
	info.version = 1;
	const char *f = p + 6; /* after "PROXY " */
	if ((size_t)(end - f) >= 7 && memcmp(f, "UNKNOWN", 7) == 0 &&
	    (end - f == 7 || f[7] == ' ')) {
		*out = info;
		return (int)hlen;
	}
	int family;
	if ((size_t)(end - f) > 5 && memcmp(f, "TCP4 ", 5) == 0)
		family = AF_INET;
	else if ((size_t)(end - f) > 5 && memcmp(f, "TCP6 ", 5) == 0)
		family = AF_INET6;
	else
		return WEIR_EINVAL;
	/* four fields separated by single spaces */
	const char *fld[4];
	size_t flen[4];
	const char *q = f + 5;
	for (int i = 0; i < 4; i++) {
		const char *sp = q;
		while (sp < end && *sp != ' ')
			sp++;
		fld[i] = q;
		flen[i] = (size_t)(sp - q);
		if (flen[i] == 0 || (i < 3 && sp == end) || (i == 3 && sp != end))
			return WEIR_EINVAL;
		q = sp + 1;
	}
	uint16_t sport, dport;
	if (parse_port(fld[2], flen[2], &sport) != 0 || parse_port(fld[3], flen[3], &dport) != 0 ||
	    parse_addr(family, fld[0], flen[0], sport, &info.src) != 0 ||
	    parse_addr(family, fld[1], flen[1], dport, &info.dst) != 0)
		return WEIR_EINVAL;
	info.has_addr = true;
	*out = info;
	return (int)hlen;
}

static int parse_v2(const unsigned char *p, size_t len, struct proxy_protocol_info *out)
{
	if (len < V2_HEAD)
		return WEIR_EAGAIN;
	unsigned ver = p[12] >> 4, cmd = p[12] & 0x0F;
	if (ver != 2 || cmd > 1)
		return WEIR_EINVAL;
	size_t body = ((size_t)p[14] << 8) | p[15];
	size_t hlen = V2_HEAD + body;
	if (hlen > PROXY_PROTOCOL_MAX_BYTES)
		return WEIR_EINVAL;
	unsigned fam = p[13] >> 4, proto = p[13] & 0x0F;
	if (fam > 3 || proto > 2)
		return WEIR_EINVAL;
	/* The address block must fit the stated length, before waiting for it. */
	if (cmd == 1 && proto == 1 && ((fam == 1 && body < 12) || (fam == 2 && body < 36)))
		return WEIR_EINVAL;
	if (len < hlen)
		return WEIR_EAGAIN;
	struct proxy_protocol_info info;
	memset(&info, 0, sizeof(info));
	info.version = 2;
	const unsigned char *a = p + V2_HEAD;
	if (cmd == 1 && proto == 1 && fam == 1) {
		struct sockaddr_in *s = (struct sockaddr_in *)&info.src;
		struct sockaddr_in *d = (struct sockaddr_in *)&info.dst;
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);
		memcpy(&d->sin_port, a + 10, 2);
		info.has_addr = true;
	} else if (cmd == 1 && proto == 1 && fam == 2) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&info.src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&info.dst;
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
		info.has_addr = true;
	}
	*out = info;
	return (int)hlen;
}

int proxy_protocol_parse(const void *buf, size_t len, struct proxy_protocol_info *out)
{
	const unsigned char *p = buf;
	size_t n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
	if (memcmp(p, v2_sig, n) == 0)
		return len < sizeof(v2_sig) ? WEIR_EAGAIN : parse_v2(p, len, out);
	n = len < 6 ? len : 6;
	if (memcmp(p, "PROXY ", n) == 0)
		return len < 6 ? WEIR_EAGAIN : parse_v1(buf, len, out);
	return WEIR_EINVAL;
}
