/* proxy/compress.c - gzip compression of responses: the decision and the
 * zlib stream. */
#include "compress.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "error.h"

struct compress {
	z_stream zs;
	bool pending; /* input taken since the last completed flush */
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

/* One list element e[0..n) of Accept-Encoding: 1 when it names gzip with a
 * q above 0, 0 when it names gzip with q 0 (or a q that does not parse),
 * -1 when it is about another coding. */
static int element_gzip(const char *e, size_t n)
{
	size_t i = 0;
	while (i < n && is_ows(e[i]))
		i++;
	size_t start = i;
	while (i < n && e[i] != ';' && !is_ows(e[i]))
		i++;
	if (i - start != 4 || strncasecmp(e + start, "gzip", 4) != 0)
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

bool compress_accepts_gzip(const struct http_request *req)
{
	for (size_t h = 0; h < req->nheaders; h++) {
		const struct http_header *hd = &req->headers[h];
		if (!http_name_is(hd, "accept-encoding"))
			continue;
		const char *p = hd->value, *end = hd->value + hd->value_len;
		while (p < end) {
			const char *comma = memchr(p, ',', (size_t)(end - p));
			const char *e_end = comma ? comma : end;
			int r = element_gzip(p, (size_t)(e_end - p));
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

enum compress_verdict compress_decide(const struct route_settings *s,
                                      const struct http_request *req,
                                      const struct http_response *resp, bool head_request)
{
	if (!s || !s->use_gzip || head_request || req->upgrade_websocket)
		return COMPRESS_NO;
	if (resp->status != 200 && resp->status != 403 && resp->status != 404)
		return COMPRESS_NO;
	const struct http_header *ce = resp_header(resp, "content-encoding");
	if (ce && ce->value_len > 0)
		return COMPRESS_NO;
	if (resp->content_length >= 0 && resp->content_length < (int64_t)s->gzip_min_length)
		return COMPRESS_NO;
	const struct http_header *ct = resp_header(resp, "content-type");
	if (!compress_type_listed(s->gzip_types, ct ? ct->value : NULL, ct ? ct->value_len : 0))
		return COMPRESS_NO;
	if (req->version_minor < 1 || !compress_accepts_gzip(req))
		return COMPRESS_VARY;
	return COMPRESS_GZIP;
}

struct compress *compress_new(int level, int64_t content_length)
{
	int wbits = 15, memlevel = 8;
	if (level < 1 || level > 9)
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
	/* +16: the gzip wrapper (header and CRC-32 trailer) instead of zlib's */
	if (deflateInit2(&z->zs, level, Z_DEFLATED, wbits + 16, memlevel, Z_DEFAULT_STRATEGY) !=
	    Z_OK) {
		free(z);
		return NULL;
	}
	return z;
}

void compress_free(struct compress *z)
{
	if (!z)
		return;
	deflateEnd(&z->zs);
	free(z);
}

bool compress_pending(const struct compress *z)
{
	return z->pending;
}

int compress_run(struct compress *z, const char *in, size_t in_len, size_t *used, char *out,
                 size_t cap, size_t *produced, enum compress_mode mode)
{
	*used = *produced = 0;
	if (z->ended)
		return mode == COMPRESS_FINISH ? 1 : WEIR_EINVAL;
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
