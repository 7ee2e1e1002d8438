/* tests/unit/proxy/compress_test.c - gzip compression: Accept-Encoding and
 * Content-Type matching, the nginx eligibility rules, and the stream
 * (decompressed again with zlib and compared byte for byte). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <brotli/decode.h>
#include <zlib.h>

#include "check.h"
#include "common/error.h"
#include "common/route_table.h"
#include "proxy/compress.h"
#include "request_fixture.h"

static bool accepts(const char *ae)
{
	char raw[512];
	struct http_request req;
	snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: %s\r\n\r\n", ae);
	fixture_parse_request(raw, &req);
	return compress_accepts(&req, "gzip");
}

static void test_accept_encoding(void)
{
	CHECK(accepts("gzip"));
	CHECK(accepts("GZIP"));
	CHECK(accepts("gzip, deflate, br"));
	CHECK(accepts("br, gzip"));
	CHECK(accepts("deflate,gzip"));
	CHECK(accepts("gzip;q=1"));
	CHECK(accepts("gzip;q=1.0"));
	CHECK(accepts("gzip ; q=0.5"));
	CHECK(accepts("gzip;q=0.001"));
	CHECK(accepts("br;q=1.0, gzip;q=0.8, *;q=0.1"));
	CHECK(accepts("gzip;level=1;q=0.3"));
	CHECK(!accepts("gzip;q=0"));
	CHECK(!accepts("gzip;q=0.0"));
	CHECK(!accepts("gzip;q=0.000"));
	CHECK(!accepts("gzip; Q=0"));
	CHECK(!accepts("br, gzip;q=0"));
	CHECK(!accepts("gzip;q=0, gzip")); /* the first mention decides */
	CHECK(!accepts("gzip;q=2"));       /* not a q-value: refused, as nginx */
	CHECK(!accepts("gzip;q=0.0001"));
	CHECK(!accepts("gzip;q="));
	CHECK(!accepts("gzip;q"));
	CHECK(!accepts("x-gzip"));
	CHECK(!accepts("gzipx"));
	CHECK(!accepts("*"));
	CHECK(!accepts("deflate, br"));
	CHECK(!accepts("identity"));
	CHECK(!accepts(""));

	struct http_request r2;
	fixture_parse_request("GET / HTTP/1.1\r\nAccept-Encoding: gzip, br;q=0.5\r\n\r\n", &r2);
	CHECK(compress_accepts(&r2, "br"));
	fixture_parse_request("GET / HTTP/1.1\r\nAccept-Encoding: gzip, br;q=0\r\n\r\n", &r2);
	CHECK(!compress_accepts(&r2, "br"));
	CHECK(compress_accepts(&r2, "gzip"));
	fixture_parse_request("GET / HTTP/1.1\r\nAccept-Encoding: brotli, gzip\r\n\r\n", &r2);
	CHECK(!compress_accepts(&r2, "br"));

	struct http_request req;
	fixture_parse_request("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &req);
	CHECK(!compress_accepts(&req, "gzip"));
	/* two header lines read as one list */
	fixture_parse_request(
	    "GET / HTTP/1.1\r\nAccept-Encoding: br\r\nHost: a\r\naccept-encoding: gzip\r\n\r\n",
	    &req);
	CHECK(compress_accepts(&req, "gzip"));
}

static bool listed(const char *types, const char *ct)
{
	return compress_type_listed(types, ct, ct ? strlen(ct) : 0);
}

static void test_types(void)
{
	const char *def = ROUTE_GZIP_TYPES_DEFAULT;
	CHECK(listed(def, "text/plain"));
	CHECK(listed(def, "text/plain; charset=utf-8"));
	CHECK(listed(def, "text/plain;charset=utf-8"));
	CHECK(listed(def, "Application/JSON"));
	CHECK(listed(def, "application/json"));
	CHECK(listed(def, "text/x-component"));
	CHECK(listed(def, "application/atom+xml"));
	CHECK(listed(def, "text/html")); /* always, as nginx */
	CHECK(listed("application/json", "text/html; charset=utf-8"));
	CHECK(!listed(def, "text/event-stream"));
	CHECK(!listed(def, "application/octet-stream"));
	CHECK(!listed(def, "image/png"));
	CHECK(!listed(def, "text/plainx"));
	CHECK(!listed(def, "text"));
	CHECK(!listed(def, ""));
	CHECK(!listed(def, NULL));
	CHECK(!listed("application/json", "application/js"));
	CHECK(listed("*", "image/png"));
	CHECK(listed("*", NULL));
	CHECK(listed("text/event-stream", "text/event-stream"));
}

/* "Name: value\r\n"... "\r\n" (held by the caller) into resp's headers. */
static void split_headers(const char *p, struct http_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	while (strncmp(p, "\r\n", 2) != 0 && resp->nheaders < HTTP_MAX_HEADERS) {
		const char *colon = strchr(p, ':');
		const char *end = strstr(p, "\r\n");
		struct http_header *h = &resp->headers[resp->nheaders++];
		h->name = p;
		h->name_len = (size_t)(colon - p);
		const char *v = colon + 1;
		while (*v == ' ')
			v++;
		h->value = v;
		h->value_len = (size_t)(end - v);
		p = end + 2;
	}
}

struct decide_case {
	const char *req;
	const char *resp_head;
	int status;
	int64_t content_length;
	bool head;
	enum compress_verdict want;
};

static void test_decide(void)
{
	static const char *const gz_req =
	    "GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n";
	static const struct decide_case cases[] = {
	    {NULL, "Content-Type: text/plain\r\n", 200, -1, false, COMPRESS_GZIP},
	    {NULL, "Content-Type: text/plain\r\n", 200, 256, false, COMPRESS_GZIP},
	    {NULL, "Content-Type: text/plain\r\n", 200, 255, false, COMPRESS_NO},
	    {NULL, "Content-Type: text/plain\r\n", 404, -1, false, COMPRESS_GZIP},
	    {NULL, "Content-Type: text/plain\r\n", 403, -1, false, COMPRESS_GZIP},
	    {NULL, "Content-Type: text/plain\r\n", 201, -1, false, COMPRESS_NO},
	    {NULL, "Content-Type: text/plain\r\n", 206, -1, false, COMPRESS_NO},
	    {NULL, "Content-Type: text/plain\r\n", 204, -1, false, COMPRESS_NO},
	    {NULL, "Content-Type: text/plain\r\n", 304, -1, false, COMPRESS_NO},
	    {NULL, "Content-Type: text/plain\r\n", 500, -1, false, COMPRESS_NO},
	    {NULL, "Content-Type: text/plain\r\n", 200, -1, true, COMPRESS_NO},
	    {NULL, "Content-Type: image/png\r\n", 200, -1, false, COMPRESS_NO},
	    {NULL, "", 200, -1, false, COMPRESS_NO},
	    {NULL, "Content-Type: text/plain\r\nContent-Encoding: br\r\n", 200, -1, false,
	     COMPRESS_NO},
	    {NULL, "Content-Type: text/plain\r\nContent-Encoding: \r\n", 200, -1, false,
	     COMPRESS_GZIP},
	    {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "Content-Type: text/plain\r\n", 200, -1, false,
	     COMPRESS_VARY},
	    {"GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip;q=0\r\n\r\n",
	     "Content-Type: text/plain\r\n", 200, -1, false, COMPRESS_VARY},
	    {"GET / HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n", "Content-Type: text/plain\r\n", 200,
	     -1, false, COMPRESS_VARY},
	    {"GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\nConnection: Upgrade\r\n"
	     "Upgrade: websocket\r\n\r\n",
	     "Content-Type: text/plain\r\n", 200, -1, false, COMPRESS_NO},
	};
	struct route_table *t = route_table_new();
	CHECK(t != NULL);
	if (!t)
		return;
	t->settings.use_gzip = true;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct decide_case *k = &cases[i];
		struct http_request req;
		struct http_response resp;
		char raw[512];
		fixture_parse_request(k->req ? k->req : gz_req, &req);
		if (strstr(k->req ? k->req : gz_req, "websocket"))
			req.upgrade_websocket = true;
		snprintf(raw, sizeof(raw), "%s\r\n", k->resp_head);
		split_headers(raw, &resp);
		resp.status = k->status;
		resp.content_length = k->content_length;
		enum compress_verdict v = compress_decide(&t->settings, &req, &resp, k->head);
		if (v != k->want)
			fprintf(stderr, "case %zu\n", i);
		CHECK_INT(v, k->want);
	}
	/* off: nothing, not even Vary */
	struct http_request req;
	struct http_response resp;
	fixture_parse_request(gz_req, &req);
	memset(&resp, 0, sizeof(resp));
	resp.status = 200;
	resp.content_length = -1;
	t->settings.use_gzip = false;
	free(t->settings.gzip_types);
	t->settings.gzip_types = strdup("*");
	CHECK_INT(compress_decide(&t->settings, &req, &resp, false), COMPRESS_NO);
	t->settings.use_gzip = true;
	CHECK_INT(compress_decide(&t->settings, &req, &resp, false), COMPRESS_GZIP);
	CHECK_INT(compress_decide(NULL, &req, &resp, false), COMPRESS_NO);
	t->settings.gzip_min_length = 0;
	resp.content_length = 0;
	CHECK_INT(compress_decide(&t->settings, &req, &resp, false), COMPRESS_GZIP);
	route_table_free(t);

	/* brotli first, when the client takes it; each coding its own rules */
	static const struct {
		const char *ae;
		const char *type;
		int64_t content_length;
		int version_minor;
		enum compress_verdict want;
	} br[] = {
	    {"gzip, deflate, br", "text/plain", -1, 1, COMPRESS_BROTLI},
	    {"br", "text/plain", -1, 1, COMPRESS_BROTLI},
	    {"gzip", "text/plain", -1, 1, COMPRESS_GZIP},
	    {"br;q=0, gzip", "text/plain", -1, 1, COMPRESS_GZIP},
	    {"identity", "text/plain", -1, 1, COMPRESS_VARY},
	    {"br", "text/plain", -1, 0, COMPRESS_VARY},
	    {"br", "text/plain", 19, 1, COMPRESS_NO},
	    {"br", "text/plain", 20, 1, COMPRESS_BROTLI},
	    {"gzip", "text/plain", 100, 1, COMPRESS_VARY}, /* br's 20 met, gzip's 256 not */
	    {"br", "application/xml+rss", -1, 1, COMPRESS_BROTLI},
	    {"gzip", "application/xml+rss", -1, 1, COMPRESS_VARY}, /* in brotli's list only */
	    {"br", "image/png", -1, 1, COMPRESS_NO},
	};
	t = route_table_new();
	CHECK(t != NULL);
	if (!t)
		return;
	t->settings.use_gzip = true;
	t->settings.enable_brotli = true;
	for (size_t i = 0; i < sizeof(br) / sizeof(br[0]); i++) {
		char raw[256], head[128];
		snprintf(raw, sizeof(raw),
		         "GET / HTTP/1.%d\r\nHost: a\r\nAccept-Encoding: %s\r\n\r\n",
		         br[i].version_minor, br[i].ae);
		fixture_parse_request(raw, &req);
		snprintf(head, sizeof(head), "Content-Type: %s\r\n\r\n", br[i].type);
		split_headers(head, &resp);
		resp.status = 200;
		resp.content_length = br[i].content_length;
		enum compress_verdict v = compress_decide(&t->settings, &req, &resp, false);
		if (v != br[i].want)
			fprintf(stderr, "brotli case %zu\n", i);
		CHECK_INT(v, br[i].want);
	}
	/* brotli alone */
	t->settings.use_gzip = false;
	fixture_parse_request("GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: br\r\n\r\n", &req);
	split_headers("Content-Type: text/css\r\n\r\n", &resp);
	resp.status = 404;
	resp.content_length = -1;
	CHECK_INT(compress_decide(&t->settings, &req, &resp, false), COMPRESS_BROTLI);
	route_table_free(t);
}

/* Decompress in[0..n) (gzip or brotli) into a new buffer of at most cap
 * bytes; *outlen receives its length, *complete whether the stream ended
 * there. Caller frees. */
static unsigned char *decode(enum compress_verdict codec, const unsigned char *in, size_t n,
                             size_t cap, size_t *outlen, bool *complete)
{
	unsigned char *dec = malloc(cap + 1);
	*complete = false;
	if (codec == COMPRESS_GZIP) {
		z_stream is;
		memset(&is, 0, sizeof(is));
		CHECK(inflateInit2(&is, 16 + 15) == Z_OK);
		is.next_in = (unsigned char *)(uintptr_t)in;
		is.avail_in = (uInt)n;
		is.next_out = dec;
		is.avail_out = (uInt)(cap + 1);
		int ir = inflate(&is, Z_SYNC_FLUSH);
		CHECK(ir == Z_OK || ir == Z_STREAM_END);
		*complete = ir == Z_STREAM_END && is.avail_in == 0;
		*outlen = is.total_out;
		inflateEnd(&is);
	} else {
		BrotliDecoderState *d = BrotliDecoderCreateInstance(NULL, NULL, NULL);
		size_t avail_in = n, avail_out = cap + 1;
		const uint8_t *next_in = in;
		uint8_t *next_out = dec;
		BrotliDecoderResult r = BrotliDecoderDecompressStream(d, &avail_in, &next_in,
		                                                      &avail_out, &next_out, NULL);
		CHECK(r == BROTLI_DECODER_RESULT_SUCCESS ||
		      r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT);
		*complete = r == BROTLI_DECODER_RESULT_SUCCESS && avail_in == 0;
		*outlen = cap + 1 - avail_out;
		BrotliDecoderDestroyInstance(d);
	}
	return dec;
}

/* Compress src in pieces of step bytes, flushing after each piece when
 * flush, with an output buffer of outcap bytes; then decompress and
 * compare. */
static void roundtrip(enum compress_verdict codec, const unsigned char *src, size_t len,
                      size_t step, size_t outcap, bool flush, int level, int64_t content_length)
{
	struct compress *z = compress_new(codec, level, content_length);
	CHECK(z != NULL);
	if (!z)
		return;
	/* stored blocks, and a sync flush marker (5 bytes) per piece at most */
	size_t cap = len + len / 2 + (len / step + 1) * 16 + 4096, total = 0;
	unsigned char *gz = malloc(cap);
	char *out = malloc(outcap);
	size_t off = 0;
	int r = 0;
	while (off < len) {
		size_t n = len - off < step ? len - off : step;
		size_t taken = 0;
		/* feed the piece, then flush it when asked */
		for (int mode = COMPRESS_MORE; mode <= (flush ? COMPRESS_FLUSH : COMPRESS_MORE);
		     mode++) {
			for (;;) {
				size_t used, produced;
				r = compress_run(z, (const char *)src + off + taken, n - taken,
				                 &used, out, outcap, &produced,
				                 (enum compress_mode)mode);
				CHECK(r == 0);
				CHECK(total + produced <= cap);
				memcpy(gz + total, out, produced);
				total += produced;
				taken += used;
				if (taken == n && produced < outcap)
					break;
				if (r != 0)
					break;
			}
		}
		if (flush) {
			CHECK(!compress_pending(z));
			/* everything so far decodes now */
			size_t got;
			bool complete;
			unsigned char *dec = decode(codec, gz, total, off + n, &got, &complete);
			CHECK(!complete);
			CHECK_INT(got, off + n);
			CHECK(memcmp(dec, src, off + n) == 0);
			free(dec);
		} else {
			CHECK(n == 0 || compress_pending(z));
		}
		off += n;
	}
	for (;;) {
		size_t used, produced;
		r = compress_run(z, NULL, 0, &used, out, outcap, &produced, COMPRESS_FINISH);
		CHECK(r >= 0);
		memcpy(gz + total, out, produced);
		total += produced;
		if (r == 1 || r < 0)
			break;
	}
	CHECK_INT(r, 1);
	/* after the end: FINISH says done, anything else is misuse */
	size_t used, produced;
	CHECK_INT(compress_run(z, NULL, 0, &used, out, outcap, &produced, COMPRESS_FINISH), 1);
	CHECK_INT(compress_run(z, "x", 1, &used, out, outcap, &produced, COMPRESS_MORE),
	          WEIR_EINVAL);
	compress_free(z);

	/* one whole stream (for gzip one member: magic, deflate) that decodes
	 * to exactly src */
	if (codec == COMPRESS_GZIP)
		CHECK(total >= 20 && gz[0] == 0x1f && gz[1] == 0x8b && gz[2] == 8);
	size_t got;
	bool complete;
	unsigned char *dec = decode(codec, gz, total, len, &got, &complete);
	CHECK(complete);
	CHECK_INT(got, len);
	CHECK(len == 0 || memcmp(dec, src, len) == 0);
	free(dec);
	free(gz);
	free(out);
}

/* A flush whose output does not fit, then more input with COMPRESS_MORE
 * (what the proxy does when the client is slow and the upstream sends
 * again): the flush ends first, nothing is lost or refused. */
static void test_flush_interrupted(enum compress_verdict codec, const unsigned char *src,
                                   size_t len)
{
	struct compress *z = compress_new(codec, 4, -1);
	size_t cap = 2 * len + 4096, total = 0, off = 0, used, produced;
	unsigned char *gz = malloc(cap);
	char out[64];
	CHECK(z != NULL);
	if (!z) {
		free(gz);
		return;
	}
	for (int round = 0; round < 4; round++) {
		size_t n = len / 4;
		/* feed a quarter, flush with room for 64 bytes only */
		while (n > 0) {
			CHECK_INT(compress_run(z, (const char *)src + off, n, &used, out,
			                       sizeof(out), &produced, COMPRESS_MORE),
			          0);
			memcpy(gz + total, out, produced);
			total += produced;
			off += used;
			n -= used;
		}
		CHECK_INT(
		    compress_run(z, NULL, 0, &used, out, sizeof(out), &produced, COMPRESS_FLUSH),
		    0);
		CHECK_INT(produced, sizeof(out)); /* more is due: the flush is unfinished */
		memcpy(gz + total, out, produced);
		total += produced;
		CHECK(compress_pending(z));
	}
	for (int r = 0; r != 1;) {
		r = compress_run(z, NULL, 0, &used, out, sizeof(out), &produced, COMPRESS_FINISH);
		CHECK(r >= 0);
		if (r < 0)
			break;
		memcpy(gz + total, out, produced);
		total += produced;
	}
	compress_free(z);
	size_t got;
	bool complete;
	unsigned char *dec = decode(codec, gz, total, len, &got, &complete);
	CHECK(complete);
	CHECK_INT(got, off);
	CHECK(memcmp(dec, src, off) == 0);
	free(dec);
	free(gz);
}

static void test_stream(void)
{
	size_t len = 1u << 20;
	unsigned char *text = malloc(len), *noise = malloc(len);
	uint32_t x = 12345;
	for (size_t i = 0; i < len; i++) {
		text[i] = (unsigned char)"the quick brown fox jumps over the lazy dog\n"[i % 44];
		x = x * 1103515245u + 12345u;
		noise[i] = (unsigned char)(x >> 24);
	}
	for (int codec = COMPRESS_GZIP; codec <= COMPRESS_BROTLI; codec++) {
		enum compress_verdict k = (enum compress_verdict)codec;
		int lo = k == COMPRESS_GZIP ? 1 : 0, hi = k == COMPRESS_GZIP ? 9 : 11;
		roundtrip(k, text, len, 16384, 8192, false, lo + 1, -1);
		roundtrip(k, text, len, 16384, 8192, true, 6, (int64_t)len);
		roundtrip(k, noise, len, 16384, 8192, false, lo, -1); /* many output rounds */
		roundtrip(k, noise, 20000, 7, 64, true, 4, -1); /* tiny pieces and output room */
		roundtrip(k, noise, 200000, 20000, 100, true, hi, -1); /* flushes left unfinished */
		roundtrip(k, text, 300, 300, 8192, false, 1, 300); /* small window, small body */
		roundtrip(k, text, 0, 1, 8192, false, 1, -1);      /* empty body */
		test_flush_interrupted(k, noise, 400000);
		CHECK(compress_new(k, lo - 1, -1) == NULL);
		CHECK(compress_new(k, hi + 1, -1) == NULL);
	}
	CHECK(compress_new(COMPRESS_VARY, 1, -1) == NULL);
	free(text);
	free(noise);
	compress_free(NULL);
}

int main(void)
{
	test_accept_encoding();
	test_types();
	test_decide();
	test_stream();
	return check_finish("compress_test");
}
