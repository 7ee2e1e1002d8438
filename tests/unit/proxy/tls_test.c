/* tests/unit/proxy/tls_test.c - tls_peek_sni, the ClientHello peek of
 * ssl-passthrough: the name is found and lowercased, a partial record asks
 * for more, and names the handshake would refuse (empty, too long for the
 * buffer, holding a NUL) are not reported. */
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "proxy/tls.h"

/* A minimal ClientHello record carrying one server_name entry of name
 * (nlen bytes) after an unrelated extension. Returns its length. */
static size_t client_hello(unsigned char *b, const char *name, size_t nlen)
{
	unsigned char body[1024];
	size_t n = 0;
	body[n++] = 0x03; /* client_version 1.2 */
	body[n++] = 0x03;
	memset(body + n, 0xab, 32); /* random */
	n += 32;
	body[n++] = 0; /* session id */
	body[n++] = 0; /* cipher suites: one */
	body[n++] = 2;
	body[n++] = 0x13;
	body[n++] = 0x01;
	body[n++] = 1; /* compression: null */
	body[n++] = 0;
	size_t ext_len_at = n;
	n += 2;
	/* supported_groups first, so the SNI is not the first extension */
	static const unsigned char groups[] = {0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x1d};
	memcpy(body + n, groups, sizeof(groups));
	n += sizeof(groups);
	body[n++] = 0x00; /* server_name */
	body[n++] = 0x00;
	body[n++] = (unsigned char)((nlen + 5) >> 8);
	body[n++] = (unsigned char)(nlen + 5);
	body[n++] = (unsigned char)((nlen + 3) >> 8); /* server_name_list */
	body[n++] = (unsigned char)(nlen + 3);
	body[n++] = 0; /* host_name */
	body[n++] = (unsigned char)(nlen >> 8);
	body[n++] = (unsigned char)nlen;
	memcpy(body + n, name, nlen);
	n += nlen;
	size_t ext_len = n - ext_len_at - 2;
	body[ext_len_at] = (unsigned char)(ext_len >> 8);
	body[ext_len_at + 1] = (unsigned char)ext_len;

	size_t hs = n + 4;
	b[0] = 0x16; /* handshake record, TLS 1.0 on the wire */
	b[1] = 0x03;
	b[2] = 0x01;
	b[3] = (unsigned char)(hs >> 8);
	b[4] = (unsigned char)hs;
	b[5] = 0x01; /* ClientHello */
	b[6] = 0;
	b[7] = (unsigned char)(n >> 8);
	b[8] = (unsigned char)n;
	memcpy(b + 9, body, n);
	return n + 9;
}

static void test_found(void)
{
	unsigned char rec[1100];
	char out[256];
	size_t len = client_hello(rec, "Www.Example.COM", 15);

	CHECK_INT(tls_peek_sni(rec, len, out, sizeof(out)), 1);
	CHECK_STR(out, "www.example.com");
	/* Every shorter prefix asks for more bytes. */
	for (size_t cut = 1; cut < len; cut++) {
		int r = tls_peek_sni(rec, cut, out, sizeof(out));
		if (r != WEIR_EAGAIN) {
			CHECK_INT(r, WEIR_EAGAIN);
			fprintf(stderr, "  at %zu of %zu bytes\n", cut, len);
			break;
		}
	}
}

static void test_refused_names(void)
{
	unsigned char rec[1100];
	char out[256], small[8];
	size_t len;

	/* A NUL inside the name: the handshake refuses it, the peek must not
	 * report the part before it ("allowed.com") as the name. */
	len = client_hello(rec, "allowed.com\0.evil", 17);
	CHECK_INT(tls_peek_sni(rec, len, out, sizeof(out)), 0);
	len = client_hello(rec, "\0", 1);
	CHECK_INT(tls_peek_sni(rec, len, out, sizeof(out)), 0);
	/* Empty, and longer than the buffer. */
	len = client_hello(rec, "", 0);
	CHECK_INT(tls_peek_sni(rec, len, out, sizeof(out)), 0);
	len = client_hello(rec, "abcdefgh", 8);
	CHECK_INT(tls_peek_sni(rec, len, small, sizeof(small)), 0);
	len = client_hello(rec, "abcdefg", 7);
	CHECK_INT(tls_peek_sni(rec, len, small, sizeof(small)), 1);
	CHECK_STR(small, "abcdefg");
}

static void test_not_tls(void)
{
	char out[256];
	static const unsigned char http[] = "GET / HTTP/1.1\r\n\r\n";
	static const unsigned char not_hello[] = {0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0, 0, 0};

	CHECK_INT(tls_peek_sni(http, sizeof(http) - 1, out, sizeof(out)), WEIR_EPARSE);
	CHECK_INT(tls_peek_sni(http, 1, out, sizeof(out)), WEIR_EPARSE);
	CHECK_INT(tls_peek_sni(not_hello, sizeof(not_hello), out, sizeof(out)), 0);
}

int main(void)
{
	test_found();
	test_refused_names();
	test_not_tls();
	return check_finish("tls_test");
}
