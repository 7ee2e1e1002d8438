/* proxy/compress.c - compression of responses: the decision, and the zlib
 * (gzip) or libbrotli stream. */
#include "compress.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <brotli/encode.h>
#include <zlib.h>

#include "error.h"

struct compress {
	enum compress_verdict codec; /* COMPRESS_GZIP or COMPRESS_BROTLI */
	/* gzip: zlib's state carved from one block (as nginx does): one
	 * allocation per response instead of five */
	char *arena;
	size_t arena_size, arena_used;
	z_stream zs;            /* gzip */
	BrotliEncoderState *br; /* brotli */
	bool br_flushing;       /* a brotli flush has output left to give */
	bool pending;           /* input taken since the last completed flush */
	bool ended;
};

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* A q-value (RFC 9110 12.4.2) in p[0..n): its value in thousandths, or -1
 * when it is not one. */
static int qvalue(const char *p, size_t n)
{
	if (n == 0 || (p[0] != '0' && p[0] != '1'))
		return -1;
	int v = (p[0] - '0') * 1000, scale = 100;
	if (n == 1)
		return v;
	if (p[1] != '.' || n > 5)
		return -1;
	for (size_t i = 2; i < n; i++) {
		if (p[i] < '0' || p[i] > '9' || (p[0] == '1' && p[i] != '0'))
			return -1;
		v += (p[i] - '0') * scale;
		scale /= 10;
	}
	return v;
}

/* One list element e[0..n) of Accept-Encoding: 1 when it names coding
 * (clen bytes) with a q above 0, 0 when it names it with q 0 (or a q that
 * does not parse), -1 when it is about another coding. */
static int element_names(const char *e, size_t n, const char *coding, size_t clen)
{
	size_t i = 0;
	while (i < n && is_ows(e[i]))
		i++;
	size_t start = i;
	while (i < n && e[i] != ';' && !is_ows(e[i]))
		i++;
	if (i - start != clen || strncasecmp(e + start, coding, clen) != 0)
		return -1;
	/* parameters: ;name=value ... only q matters */
	while (i < n) {
		while (i < n && is_ows(e[i]))
			i++;
		if (i == n)
			break;
		if (e[i] != ';')
			return 0;
		i++;
		while (i < n && is_ows(e[i]))
			i++;
		size_t ns = i;
		while (i < n && e[i] != '=' && e[i] != ';' && !is_ows(e[i]))
			i++;
		size_t nlen = i - ns;
		if (i == n || e[i] != '=')
			return 0;
		i++;
		size_t vs = i;
		while (i < n && e[i] != ';' && !is_ows(e[i]))
			i++;
		if (nlen == 1 && (e[ns] == 'q' || e[ns] == 'Q'))
			return qvalue(e + vs, i - vs) > 0 ? 1 : 0;
	}
	return 1;
}

bool compress_accepts(const struct http_request *req, const char *coding)
{
	size_t clen = strlen(coding);
	for (size_t h = 0; h < req->nheaders; h++) {
		const struct http_header *hd = &req->headers[h];
		if (!http_name_is(hd, "accept-encoding"))
			continue;
		const char *p = hd->value, *end = hd->value + hd->value_len;
		while (p < end) {
			const char *comma = memchr(p, ',', (size_t)(end - p));
			const char *e_end = comma ? comma : end;
			int r = element_names(p, (size_t)(e_end - p), coding, clen);
			if (r >= 0)
				return r == 1; /* the first mention decides */
			p = comma ? comma + 1 : end;
		}
	}
	return false;
}

/* types (single spaces between entries) holds t[0..n) as a whole entry. */
static bool list_has(const char *types, const char *t, size_t n)
{
	const char *p = types;
	while (*p) {
		const char *sp = strchr(p, ' ');
		size_t len = sp ? (size_t)(sp - p) : strlen(p);
		if (len == n && strncasecmp(p, t, n) == 0)
			return true;
		if (!sp)
			break;
		p = sp + 1;
	}
	return false;
}

bool compress_type_listed(const char *types, const char *ct, size_t ct_len)
{
	if (types && strcmp(types, "*") == 0)
		return true;
	if (!ct)
		return false;
	size_t n = 0;
	while (n < ct_len && ct[n] != ';' && !is_ows(ct[n]))
		n++;
	if (n == 9 && strncasecmp(ct, "text/html", 9) == 0)
		return true;
	return n > 0 && types && list_has(types, ct, n);
}

static const struct http_header *resp_header(const struct http_response *resp, const char *name)
{
	for (size_t i = 0; i < resp->nheaders && i < HTTP_MAX_HEADERS; i++)
		if (http_name_is(&resp->headers[i], name))
			return &resp->headers[i];
	return NULL;
}

/* The response rules of one coding: on, min_length, types. */
static bool eligible(const struct http_response *resp, bool on, uint32_t min_length,
                     const char *types)
{
	if (!on)
		return false;
	if (resp->content_length >= 0 && resp->content_length < (int64_t)min_length)
		return false;
	const struct http_header *ct = resp_header(resp, "content-type");
	return compress_type_listed(types, ct ? ct->value : NULL, ct ? ct->value_len : 0);
}

enum compress_verdict compress_decide(const struct route_settings *s,
                                      const struct http_request *req,
                                      const struct http_response *resp, bool head_request)
{
	if (!s || (!s->use_gzip && !s->enable_brotli) || head_request || req->upgrade_websocket)
		return COMPRESS_NO;
	if (resp->status != 200 && resp->status != 403 && resp->status != 404)
		return COMPRESS_NO;
	const struct http_header *ce = resp_header(resp, "content-encoding");
	if (ce && ce->value_len > 0)
		return COMPRESS_NO;
	bool br = eligible(resp, s->enable_brotli, s->brotli_min_length, s->brotli_types);
	bool gz = eligible(resp, s->use_gzip, s->gzip_min_length, s->gzip_types);
	if (!br && !gz)
		return COMPRESS_NO;
	if (req->version_minor < 1)
		return COMPRESS_VARY;
	if (br && compress_accepts(req, "br"))
		return COMPRESS_BROTLI;
	if (gz && compress_accepts(req, "gzip"))
		return COMPRESS_GZIP;
	return COMPRESS_VARY;
}

static struct compress *brotli_new(int level, int64_t content_length)
{
	/* ngx_brotli's default window, 512 KiB, shrunk for a smaller body */
	int lgwin = 19;
	if (level < BROTLI_MIN_QUALITY || level > BROTLI_MAX_QUALITY)
		return NULL;
	if (content_length > 0)
		while (lgwin > BROTLI_MIN_WINDOW_BITS && content_length < (1 << (lgwin - 1)))
			lgwin--;
	struct compress *z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	z->codec = COMPRESS_BROTLI;
	z->br = BrotliEncoderCreateInstance(NULL, NULL, NULL);
	if (!z->br || !BrotliEncoderSetParameter(z->br, BROTLI_PARAM_QUALITY, (uint32_t)level) ||
	    !BrotliEncoderSetParameter(z->br, BROTLI_PARAM_LGWIN, (uint32_t)lgwin) ||
	    (content_length > 0 && content_length <= UINT32_MAX &&
	     !BrotliEncoderSetParameter(z->br, BROTLI_PARAM_SIZE_HINT, (uint32_t)content_length))) {
		compress_free(z);
		return NULL;
	}
	return z;
}

/* zlib's allocator: slices of z->arena (8-byte aligned); calloc beyond it. */
static voidpf arena_alloc(voidpf opaque, uInt items, uInt size)
{
	struct compress *z = opaque;
	size_t n = ((size_t)items * size + 7u) & ~(size_t)7u;
	if (z->arena && n <= z->arena_size - z->arena_used) {
		voidpf p = z->arena + z->arena_used;
		z->arena_used += n;
		return p;
	}
	return calloc(items, size);
}

static void arena_free(voidpf opaque, voidpf p)
{
	struct compress *z = opaque;
	char *c = p;
	if (!z->arena || c < z->arena || c >= z->arena + z->arena_size)
		free(p);
}

struct compress *compress_new(enum compress_verdict codec, int level, int64_t content_length)
{
	int wbits = 15, memlevel = 8;
	if (codec == COMPRESS_BROTLI)
		return brotli_new(level, content_length);
	if (codec != COMPRESS_GZIP || level < 1 || level > 9)
		return NULL;
	/* A window larger than the body buys nothing (zlib's usable window is
	 * 262 bytes short of its size). */
	if (content_length > 0) {
		while (wbits > 9 && content_length < (1 << (wbits - 1)) - 262) {
			wbits--;
			memlevel--;
		}
		if (memlevel < 1)
			memlevel = 1;
	}
	struct compress *z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	z->codec = COMPRESS_GZIP;
	/* deflate's window and prev (2^(wbits+2)), head and pending
	 * (2^(memlevel+9)), and its state (under 8 KiB) */
	z->arena_size = ((size_t)1 << (wbits + 2)) + ((size_t)1 << (memlevel + 9)) + 8192;
	z->arena = malloc(z->arena_size);
	z->zs.zalloc = arena_alloc;
	z->zs.zfree = arena_free;
	z->zs.opaque = z;
	/* +16: the gzip wrapper (header and CRC-32 trailer) instead of zlib's */
	if (deflateInit2(&z->zs, level, Z_DEFLATED, wbits + 16, memlevel, Z_DEFAULT_STRATEGY) !=
	    Z_OK) {
		free(z->arena);
		free(z);
		return NULL;
	}
	return z;
}

void compress_free(struct compress *z)
{
	if (!z)
		return;
	if (z->codec == COMPRESS_BROTLI)
		BrotliEncoderDestroyInstance(z->br);
	else
		deflateEnd(&z->zs);
	free(z->arena);
	free(z);
}

bool compress_pending(const struct compress *z)
{
	return z->pending;
}

/* compress_run for brotli. A flush that could not give all its output goes
 * on (same operation, no input, as the library requires) before anything
 * else. compress_run's callers flush only with no input pending. */
static int brotli_run(struct compress *z, const char *in, size_t in_len, size_t *used, char *out,
                      size_t cap, size_t *produced, enum compress_mode mode)
{
	size_t avail_out = cap;
	uint8_t *next_out = (uint8_t *)out;
	if (z->br_flushing) {
		size_t zero = 0;
		const uint8_t *none = NULL;
		if (!BrotliEncoderCompressStream(z->br, BROTLI_OPERATION_FLUSH, &zero, &none,
		                                 &avail_out, &next_out, NULL))
			return WEIR_EINVAL;
		*produced = cap - avail_out;
		if (BrotliEncoderHasMoreOutput(z->br))
			return 0;
		z->br_flushing = false;
		z->pending = false;
	}
	BrotliEncoderOperation op = mode == COMPRESS_FINISH  ? BROTLI_OPERATION_FINISH
	                            : mode == COMPRESS_FLUSH ? BROTLI_OPERATION_FLUSH
	                                                     : BROTLI_OPERATION_PROCESS;
	size_t avail_in = in_len;
	const uint8_t *next_in = (const uint8_t *)in;
	if (!BrotliEncoderCompressStream(z->br, op, &avail_in, &next_in, &avail_out, &next_out,
	                                 NULL))
		return WEIR_EINVAL;
	*used = in_len - avail_in;
	*produced = cap - avail_out;
	if (*used > 0)
		z->pending = true;
	if (mode == COMPRESS_FINISH) {
		if (!BrotliEncoderIsFinished(z->br))
			return 0;
		z->ended = true;
		z->pending = false;
		return 1;
	}
	if (mode == COMPRESS_FLUSH) {
		if (avail_in == 0 && !BrotliEncoderHasMoreOutput(z->br))
			z->pending = false;
		else if (avail_in == 0)
			z->br_flushing = true;
	}
	return 0;
}

int compress_run(struct compress *z, const char *in, size_t in_len, size_t *used, char *out,
                 size_t cap, size_t *produced, enum compress_mode mode)
{
	*used = *produced = 0;
	if (z->ended)
		return mode == COMPRESS_FINISH ? 1 : WEIR_EINVAL;
	if (z->codec == COMPRESS_BROTLI)
		return brotli_run(z, in, in_len, used, out, cap, produced, mode);
	if (in_len > UINT32_MAX)
		in_len = UINT32_MAX;
	if (cap > UINT32_MAX)
		cap = UINT32_MAX;
	z->zs.next_in = (Bytef *)(uintptr_t)in;
	z->zs.avail_in = (uInt)in_len;
	z->zs.next_out = (Bytef *)out;
	z->zs.avail_out = (uInt)cap;
	int flush = mode == COMPRESS_FINISH  ? Z_FINISH
	            : mode == COMPRESS_FLUSH ? Z_SYNC_FLUSH
	                                     : Z_NO_FLUSH;
	int r = deflate(&z->zs, flush);
	*used = in_len - z->zs.avail_in;
	*produced = cap - z->zs.avail_out;
	z->zs.next_in = NULL;
	z->zs.avail_in = 0;
	if (*used > 0)
		z->pending = true;
	if (r == Z_STREAM_END) {
		z->ended = true;
		z->pending = false;
		return 1;
	}
	if (r != Z_OK && r != Z_BUF_ERROR) /* Z_BUF_ERROR: nothing to do, not fatal */
		return WEIR_EINVAL;
	if (mode == COMPRESS_FLUSH && *used == in_len && *produced < cap)
		z->pending = false;
	return 0;
}
