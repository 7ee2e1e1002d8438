/* tests/fuzz/fuzz_http_request.c - the client side of proxy/http_parse.c as
 * the server drives it: the raw head scan fed in growing reads, the llhttp head
 * parse, then the body framing (Content-Length, chunked) fed in pieces, for up
 * to four pipelined requests. Checks that the result does not depend on how
 * the bytes were split, that a head ends with CRLFCRLF, that both framings are
 * never accepted together and that a fixed-length body decodes to exactly
 * Content-Length bytes. */
#include <stdbool.h>
#include <string.h>

#include "fuzz_common.h"
#include "http_parse.h"

#define MAX_HEAD 8192
#define MAX_MESSAGES 4

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

/* Body of one message from buf[0..len) in reads of step bytes. Returns what
 * http_parse_body last returned; *used gets the bytes taken. */
static int feed_body(struct http_parse *hp, const char *buf, size_t len, size_t step, size_t *used,
                     struct sink *s)
{
	int r = 0;
	*used = 0;
	while (*used < len) {
		size_t n = len - *used < step ? len - *used : step;
		size_t c = 0;
		r = http_parse_body(hp, buf + *used, n, &c, sink_cb, s);
		FUZZ_CHECK(c <= n);
		*used += c;
		if (r != 0)
			return r;
		FUZZ_CHECK(c == n);
	}
	return r;
}

static struct http_request req1, req2;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	size_t step = 1 + size % 13;
	size_t off = 0;

	for (int msg = 0; msg < MAX_MESSAGES && off < size; msg++) {
		const char *m = buf + off;
		size_t len = size - off;
		struct http_parse a, b;

		/* The head, read at once and in growing reads: same answer. */
		http_parse_init(&a, false, false);
		long whole = http_parse_scan_head(&a, m, len, MAX_HEAD);
		http_parse_init(&b, false, false);
		long part = 0;
		for (size_t end = step < len ? step : len;;
		     end = end + step < len ? end + step : len) {
			part = http_parse_scan_head(&b, m, end, MAX_HEAD);
			if (part != 0 || end == len)
				break;
		}
		FUZZ_CHECK(part == whole);
		if (whole <= 0)
			return 0;
		FUZZ_CHECK((size_t)whole <= len && whole >= 4);
		FUZZ_CHECK(memcmp(m + whole - 4, "\r\n\r\n", 4) == 0);

		int st = http_parse_request_head(&a, m, (size_t)whole, &req1);
		int st2 = http_parse_request_head(&b, m, (size_t)whole, &req2);
		FUZZ_CHECK(st == st2);
		if (st != 0) {
			FUZZ_CHECK(st == 400 || st == 405 || st == 431);
			return 0;
		}
		FUZZ_CHECK(req1.method && req1.method_len > 0 && req1.target_len > 0);
		FUZZ_CHECK(req1.path_len <= req1.target_len);
		FUZZ_CHECK(!(req1.chunked && req1.content_length >= 0));
		FUZZ_CHECK(req1.nheaders <= HTTP_MAX_HEADERS);
		for (size_t i = 0; i < req1.nheaders; i++) {
			const struct http_header *h = &req1.headers[i];
			FUZZ_CHECK(h->name >= m && h->name + h->name_len <= m + whole);
			FUZZ_CHECK(h->value >= m && h->value + h->value_len <= m + whole);
		}
		if (req1.host)
			FUZZ_CHECK(req1.host >= m && req1.host + req1.host_len <= m + whole);
		off += (size_t)whole;

		/* The body, in one piece and in reads of step bytes: same bytes,
		 * same end. */
		bool done = http_parse_done(&a);
		FUZZ_CHECK(done == http_parse_done(&b));
		(void)http_parse_keep_alive(&a);
		if (done) {
			FUZZ_CHECK(!req1.chunked && req1.content_length <= 0);
			continue;
		}
		struct sink s1 = {0, 0}, s2 = {0, 0};
		size_t used1 = 0, used2 = 0;
		int r1 =
		    feed_body(&a, buf + off, size - off, size - off ? size - off : 1, &used1, &s1);
		int r2 = feed_body(&b, buf + off, size - off, step, &used2, &s2);
		FUZZ_CHECK((r1 < 0) == (r2 < 0));
		if (r1 < 0)
			return 0;
		FUZZ_CHECK(r1 == r2);
		FUZZ_CHECK(s1.len == s2.len && s1.sum == s2.sum);
		FUZZ_CHECK(s1.len <= used1);
		if (r1 != 1)
			return 0; /* the body goes on past the input */
		FUZZ_CHECK(used1 == used2);
		if (!req1.chunked)
			FUZZ_CHECK((int64_t)s1.len == req1.content_length);
		off += used1;
	}
	return 0;
}
