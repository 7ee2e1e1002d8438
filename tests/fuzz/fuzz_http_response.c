/* tests/fuzz/fuzz_http_response.c - the upstream side of proxy/http_parse.c
 * as the server drives it: the response head (raw scan, then llhttp), interim
 * 1xx heads skipped, then the body framing (Content-Length, chunked, until
 * close) fed in pieces and ended by the upstream closing. The low bit of the
 * input length says whether the response answers a HEAD request. Checks that
 * the split of the reads changes nothing and that a fixed-length body decodes
 * to exactly Content-Length bytes. */
#include <stdbool.h>
#include <string.h>

#include "fuzz_common.h"
#include "http_parse.h"

#define UP_HEAD_MAX 16384
#define MAX_INTERIM 4

struct sink {
	size_t len;
	uint32_t sum;
};

static int sink_cb(void *data, const char *p, size_t len)
{
	struct sink *s = data;
	for (size_t i = 0; i < len; i++)
		s->sum = s->sum * 31 + (unsigned char)p[i];
	s->len += len;
	return 0;
}

struct outcome {
	int head; /* 0 ok, else the status/scan result that stopped */
	int status;
	bool chunked;
	int64_t content_length;
	int body;   /* last http_parse_body result */
	int eof;    /* http_parse_eof at the end, 2 when not called */
	size_t end; /* bytes taken */
	struct sink s;
};

static struct http_response resp;

static void run(const char *buf, size_t len, size_t step, bool head_req, struct outcome *o)
{
	struct http_parse hp;
	size_t off = 0;

	memset(o, 0, sizeof(*o));
	o->eof = 2;
	for (int interim = 0;; interim++) {
		const char *m = buf + off;
		size_t mlen = len - off;
		long r = 0;

		http_parse_init(&hp, true, head_req);
		for (size_t end = step < mlen ? step : mlen;;
		     end = end + step < mlen ? end + step : mlen) {
			r = http_parse_scan_head(&hp, m, end, UP_HEAD_MAX);
			if (r != 0 || end == mlen)
				break;
		}
		if (r <= 0) {
			o->head = r == 0 ? 1 : (int)r;
			return;
		}
		FUZZ_CHECK(memcmp(m + r - 4, "\r\n\r\n", 4) == 0);
		o->head = http_parse_response_head(&hp, m, (size_t)r, &resp);
		if (o->head) {
			FUZZ_CHECK(o->head == 502);
			return;
		}
		FUZZ_CHECK(resp.nheaders <= HTTP_MAX_HEADERS);
		FUZZ_CHECK(resp.reason >= m && resp.reason + resp.reason_len <= m + r);
		off += (size_t)r;
		o->status = resp.status;
		o->chunked = resp.chunked;
		o->content_length = resp.content_length;
		if (resp.status >= 100 && resp.status < 200 && resp.status != 101 &&
		    interim < MAX_INTERIM)
			continue;
		break;
	}
	(void)http_parse_keep_alive(&hp);
	if (http_parse_done(&hp)) {
		o->body = 1;
		o->end = off;
		return;
	}
	while (off < len) {
		size_t n = len - off < step ? len - off : step;
		size_t used = 0;
		o->body = http_parse_body(&hp, buf + off, n, &used, sink_cb, &o->s);
		FUZZ_CHECK(used <= n);
		off += used;
		if (o->body != 0)
			break;
		FUZZ_CHECK(used == n);
	}
	o->end = off;
	if (o->body == 0) {
		bool needs_eof = http_parse_needs_eof(&hp);
		o->eof = http_parse_eof(&hp);
		FUZZ_CHECK(!needs_eof || o->eof == 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	bool head_req = size & 1;
	struct outcome a, b;

	run(buf, size, size ? size : 1, head_req, &a);
	run(buf, size, 1 + size % 11, head_req, &b);
	FUZZ_CHECK(a.head == b.head);
	if (a.head)
		return 0;
	FUZZ_CHECK(a.status == b.status && a.chunked == b.chunked);
	FUZZ_CHECK((a.body < 0) == (b.body < 0));
	if (a.body < 0)
		return 0;
	FUZZ_CHECK(a.body == b.body && a.eof == b.eof && a.end == b.end);
	FUZZ_CHECK(a.s.len == b.s.len && a.s.sum == b.s.sum);
	if (a.body == 1 && !a.chunked && a.content_length >= 0 && !head_req && a.status >= 200 &&
	    a.status != 204 && a.status != 304)
		FUZZ_CHECK((int64_t)a.s.len == a.content_length);
	return 0;
}
