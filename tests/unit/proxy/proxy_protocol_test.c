/* tests/unit/proxy/proxy_protocol_test.c - PROXY protocol v1/v2 headers:
 * addresses and lengths of good ones, and the refusal of truncated, garbage
 * and oversized ones. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "proxy/proxy_protocol.h"

static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static const char *src_text(const struct proxy_protocol_info *i, char *buf)
{
	if (i->src.ss_family == AF_INET)
		return inet_ntop(AF_INET, &((const struct sockaddr_in *)&i->src)->sin_addr, buf,
		                 64);
	return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&i->src)->sin6_addr, buf, 64);
}

static int src_port(const struct proxy_protocol_info *i)
{
	if (i->src.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&i->src)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&i->src)->sin6_port);
}

static int dst_port(const struct proxy_protocol_info *i)
{
	if (i->dst.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&i->dst)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&i->dst)->sin6_port);
}

static int parse_s(const char *s, struct proxy_protocol_info *i)
{
	return proxy_protocol_parse(s, strlen(s), i);
}

static void test_v1(void)
{
	struct proxy_protocol_info i;
	char buf[64];
	const char *tcp4 = "PROXY TCP4 192.0.2.10 198.51.100.1 51234 443\r\nGET / HTTP/1.1\r\n";
	CHECK_INT(parse_s(tcp4, &i), 46);
	CHECK_INT(i.version, 1);
	CHECK(i.has_addr);
	CHECK_INT(i.src.ss_family, AF_INET);
	CHECK_STR(src_text(&i, buf), "192.0.2.10");
	CHECK_INT(src_port(&i), 51234);
	CHECK_INT(dst_port(&i), 443);

	const char *tcp6 = "PROXY TCP6 2001:db8::7 2001:db8::1 65535 80\r\n";
	CHECK_INT(parse_s(tcp6, &i), (int)strlen(tcp6));
	CHECK_INT(i.src.ss_family, AF_INET6);
	CHECK_STR(src_text(&i, buf), "2001:db8::7");
	CHECK_INT(src_port(&i), 65535);

	CHECK_INT(parse_s("PROXY UNKNOWN\r\n", &i), 15);
	CHECK(!i.has_addr);
	const char *unk = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\nX";
	CHECK_INT(parse_s(unk, &i), (int)strlen(unk) - 1);
	CHECK(!i.has_addr);

	/* the longest v1 line, 107 bytes with CRLF, is accepted */
	const char *longest = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	                      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	CHECK_INT(strlen(longest), 104);
	CHECK_INT(parse_s(longest, &i), 104);
}

static void test_v1_bad(void)
{
	struct proxy_protocol_info i;
	memset(&i, 0x5a, sizeof(i));
	/* truncated: a valid start waits for more */
	CHECK_INT(parse_s("PRO", &i), WEIR_EAGAIN);
	CHECK_INT(parse_s("PROXY ", &i), WEIR_EAGAIN);
	CHECK_INT(parse_s("PROXY TCP4 192.0.2.10 198.51.100.1 51234 44", &i), WEIR_EAGAIN);
	CHECK_INT(parse_s("PROXY TCP4 192.0.2.10 198.51.100.1 51234 443\r", &i), WEIR_EAGAIN);
	CHECK_INT(i.version, 0x5a5a5a5a); /* untouched on failure */
	/* garbage */
	CHECK_INT(parse_s("GET / HTTP/1.1\r\n\r\n", &i), WEIR_EINVAL);
	CHECK_INT(parse_s("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", &i), WEIR_EINVAL);
	CHECK_INT(parse_s("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", &i), WEIR_EINVAL);
	CHECK_INT(parse_s("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", &i), WEIR_EINVAL);
	CHECK_INT(parse_s("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", &i), WEIR_EINVAL);
	CHECK_INT(parse_s("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", &i), WEIR_EINVAL);
	CHECK_INT(parse_s("PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n", &i), WEIR_EINVAL);
	CHECK_INT(parse_s("PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n", &i), WEIR_EINVAL);
	CHECK_INT(parse_s("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", &i), WEIR_EINVAL);
	CHECK_INT(parse_s("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", &i), WEIR_EINVAL);
	CHECK_INT(parse_s("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", &i), WEIR_EINVAL);
	CHECK_INT(parse_s("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", &i), WEIR_EINVAL);
	CHECK_INT(parse_s("PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n", &i), WEIR_EINVAL);
	/* oversized: no CRLF within 107 bytes */
	char big[200];
	memset(big, 'x', sizeof(big));
	memcpy(big, "PROXY UNKNOWN ", 14);
	CHECK_INT(proxy_protocol_parse(big, sizeof(big), &i), WEIR_EINVAL);
	CHECK_INT(proxy_protocol_parse(big, 107, &i), WEIR_EINVAL);
	CHECK_INT(proxy_protocol_parse(big, 106, &i), WEIR_EAGAIN);
	CHECK_INT(i.version, 0x5a5a5a5a);
}

/* A v2 header: signature, ver/cmd, fam/proto, length, body. */
static size_t v2(unsigned char *out, unsigned char ver_cmd, unsigned char fam,
                 const unsigned char *body, size_t blen, size_t stated)
{
	memcpy(out, sig, 12);
	out[12] = ver_cmd;
	out[13] = fam;
	out[14] = (unsigned char)(stated >> 8);
	out[15] = (unsigned char)stated;
	if (blen)
		memcpy(out + 16, body, blen);
	return 16 + blen;
}

static void test_v2(void)
{
	struct proxy_protocol_info i;
	unsigned char h[5000];
	char buf[64];
	/* PROXY TCP4 192.0.2.10:51234 -> 198.51.100.1:443, then HTTP bytes */
	const unsigned char b4[12] = {192, 0, 2, 10, 198, 51, 100, 1, 0xC8, 0x22, 0x01, 0xBB};
	size_t n = v2(h, 0x21, 0x11, b4, sizeof(b4), sizeof(b4));
	memcpy(h + n, "GET /", 5);
	CHECK_INT(proxy_protocol_parse(h, n + 5, &i), 28);
	CHECK_INT(i.version, 2);
	CHECK(i.has_addr);
	CHECK_STR(src_text(&i, buf), "192.0.2.10");
	CHECK_INT(src_port(&i), 51234);
	CHECK_INT(dst_port(&i), 443);

	/* TCP6 with a TLV after the addresses: skipped, length includes it */
	unsigned char b6[36 + 7];
	memset(b6, 0, sizeof(b6));
	inet_pton(AF_INET6, "2001:db8::7", b6);
	inet_pton(AF_INET6, "2001:db8::1", b6 + 16);
	b6[32] = 0x30;
	b6[33] = 0x39; /* 12345 */
	b6[35] = 80;
	b6[36] = 0x04; /* PP2_TYPE_NOOP, 4 bytes */
	b6[38] = 4;
	n = v2(h, 0x21, 0x21, b6, sizeof(b6), sizeof(b6));
	CHECK_INT(proxy_protocol_parse(h, n, &i), 16 + 43);
	CHECK_INT(i.src.ss_family, AF_INET6);
	CHECK_STR(src_text(&i, buf), "2001:db8::7");
	CHECK_INT(src_port(&i), 12345);
	CHECK_INT(dst_port(&i), 80);

	/* LOCAL (health checks): no address, whatever the family says */
	n = v2(h, 0x20, 0x00, NULL, 0, 0);
	CHECK_INT(proxy_protocol_parse(h, n, &i), 16);
	CHECK(!i.has_addr);
	n = v2(h, 0x20, 0x11, b4, sizeof(b4), sizeof(b4));
	CHECK_INT(proxy_protocol_parse(h, n, &i), 28);
	CHECK(!i.has_addr);
	/* PROXY over UDP or UNIX: a header, but no TCP client address */
	n = v2(h, 0x21, 0x12, b4, sizeof(b4), sizeof(b4));
	CHECK_INT(proxy_protocol_parse(h, n, &i), 28);
	CHECK(!i.has_addr);
}

static void test_v2_bad(void)
{
	struct proxy_protocol_info i;
	unsigned char h[5000];
	const unsigned char b4[12] = {192, 0, 2, 10, 198, 51, 100, 1, 0xC8, 0x22, 0x01, 0xBB};
	memset(&i, 0x5a, sizeof(i));
	size_t n = v2(h, 0x21, 0x11, b4, sizeof(b4), sizeof(b4));
	/* truncated anywhere: wait */
	for (size_t k = 1; k < n; k++)
		CHECK_INT(proxy_protocol_parse(h, k, &i), WEIR_EAGAIN);
	CHECK_INT(i.version, 0x5a5a5a5a);
	/* wrong version, unknown command, unknown family/protocol */
	h[12] = 0x11;
	CHECK_INT(proxy_protocol_parse(h, n, &i), WEIR_EINVAL);
	h[12] = 0x22;
	CHECK_INT(proxy_protocol_parse(h, n, &i), WEIR_EINVAL);
	h[12] = 0x21;
	h[13] = 0x41;
	CHECK_INT(proxy_protocol_parse(h, n, &i), WEIR_EINVAL);
	h[13] = 0x13;
	CHECK_INT(proxy_protocol_parse(h, n, &i), WEIR_EINVAL);
	/* a TCP4 length too short for its addresses */
	n = v2(h, 0x21, 0x11, b4, 8, 8);
	CHECK_INT(proxy_protocol_parse(h, n, &i), WEIR_EINVAL);
	n = v2(h, 0x21, 0x21, b4, 12, 12);
	CHECK_INT(proxy_protocol_parse(h, n, &i), WEIR_EINVAL);
	/* a broken signature is garbage */
	n = v2(h, 0x21, 0x11, b4, sizeof(b4), sizeof(b4));
	h[5] = 0x0C;
	CHECK_INT(proxy_protocol_parse(h, n, &i), WEIR_EINVAL);
	/* oversized: refused from the length field, without waiting for the bytes */
	n = v2(h, 0x21, 0x11, b4, sizeof(b4), 0xFFFF);
	CHECK_INT(proxy_protocol_parse(h, n, &i), WEIR_EINVAL);
	n = v2(h, 0x21, 0x11, b4, sizeof(b4), PROXY_PROTOCOL_MAX_BYTES - 16 + 1);
	CHECK_INT(proxy_protocol_parse(h, n, &i), WEIR_EINVAL);
	/* the largest accepted one */
	memset(h + 16, 0, PROXY_PROTOCOL_MAX_BYTES - 16);
	n = v2(h, 0x21, 0x11, b4, sizeof(b4), PROXY_PROTOCOL_MAX_BYTES - 16);
	CHECK_INT(proxy_protocol_parse(h, PROXY_PROTOCOL_MAX_BYTES, &i),
	          (int)PROXY_PROTOCOL_MAX_BYTES);
	CHECK(i.has_addr);
}

int main(void)
{
	test_v1();
	test_v1_bad();
	test_v2();
	test_v2_bad();
	return check_finish("proxy_protocol_test");
}
