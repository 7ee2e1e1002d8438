/* tests/fuzz/fuzz_fastcgi.c - proxy/fastcgi.c's reader of what a FastCGI
 * application sends, as the server drives it: pieces of the input fed in
 * turn, the output drained after each call under a small cap
 * (back-pressure). The first input byte picks the CGI head cap and the
 * piece size. Checks that the split and the cap change nothing (same
 * bytes, same verdict), that the cap is kept, and that a complete answer
 * starts with an HTTP/1.1 status line from 200 to 599. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "proxy/fastcgi.h"

struct outcome {
	int rc;
	size_t taken;
	size_t len;
	uint32_t sum;
	char first[16];
};

static void run(const char *in, size_t len, size_t head_max, size_t step, size_t cap,
                struct outcome *o)
{
	struct fastcgi_decoder d;
	struct buf out;
	buf_init(&out, cap + FASTCGI_HEAD_EXTRA + head_max + 1);
	fastcgi_decoder_init(&d, head_max, NULL, NULL);
	memset(o, 0, sizeof(*o));
	size_t pos = 0, avail = 0;
	for (int stalls = 0; stalls < 4;) {
		avail = avail + step < len ? avail + step : len;
		size_t used = 0;
		o->rc = fastcgi_decode(&d, in + pos, avail - pos, &used, &out,
		                       d.head_done ? cap : cap + FASTCGI_HEAD_EXTRA + head_max);
		FUZZ_CHECK(used <= avail - pos);
		pos += used;
		for (size_t i = 0; i < buf_len(&out); i++) {
			if (o->len + i < sizeof(o->first))
				o->first[o->len + i] = out.data[out.start + i];
			o->sum = o->sum * 31 + (unsigned char)out.data[out.start + i];
		}
		o->len += buf_len(&out);
		bool drained = buf_len(&out) > 0;
		out.start = out.end = 0;
		if (o->rc != 0)
			break;
		if (used == 0 && !drained && avail == len)
			stalls++;
	}
	o->taken = pos;
	fastcgi_decoder_free(&d);
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t head_max = 64 + (size_t)(data[0] & 0x0f) * 512;
	size_t step = 1 + (data[0] >> 4) * 7;
	const char *in = (const char *)data + 1;
	size_t len = size - 1;
	struct outcome a, b;
	run(in, len, head_max, len ? len : 1, 1 << 20, &a);
	run(in, len, head_max, step, 97, &b);
	FUZZ_CHECK(a.rc == b.rc);
	if (a.rc < 0)
		return 0;
	FUZZ_CHECK(a.len == b.len && a.sum == b.sum && a.taken == b.taken);
	if (a.rc == 1) {
		FUZZ_CHECK(a.len >= 13 && memcmp(a.first, "HTTP/1.1 ", 9) == 0);
		int status = atoi(a.first + 9);
		FUZZ_CHECK(status >= 200 && status <= 599);
	}
	return 0;
}
