/* tests/fuzz/fuzz_tls_sni.c - tls_peek_sni (proxy/tls.c), the ClientHello
 * peek that picks the ssl-passthrough backend from the first bytes a client
 * sends. Checks that a found name is a NUL-terminated lowercase string that
 * fits the buffer, and that every shorter prefix of the input answers "need
 * more" or the same as the whole (the server peeks again as bytes arrive). */
#include <ctype.h>
#include <string.h>

#include "error.h"
#include "fuzz_common.h"
#include "tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char whole[256], part[256];
	size_t cuts[4] = {size / 2, size > 0 ? size - 1 : 0, 5, 4};

	memset(whole, 'x', sizeof(whole));
	int r = tls_peek_sni(data, size, whole, sizeof(whole));
	FUZZ_CHECK(r == 0 || r == 1 || r == WEIR_EAGAIN || r == WEIR_EPARSE);
	if (r == 1) {
		size_t n = strnlen(whole, sizeof(whole));
		FUZZ_CHECK(n > 0 && n < sizeof(whole));
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK(!isupper((unsigned char)whole[i]));
	}
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		if (cuts[i] >= size)
			continue;
		int p = tls_peek_sni(data, cuts[i], part, sizeof(part));
		FUZZ_CHECK(p == WEIR_EAGAIN || p == r);
		if (p == 1)
			FUZZ_CHECK(strcmp(part, whole) == 0);
	}
	/* A small output buffer: the name must fit or not be reported. */
	char small[8];
	int s = tls_peek_sni(data, size, small, sizeof(small));
	if (s == 1)
		FUZZ_CHECK(strlen(small) < sizeof(small) && strcmp(small, whole) == 0);
	return 0;
}
