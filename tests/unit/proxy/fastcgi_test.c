/* tests/unit/proxy/fastcgi_test.c - the FastCGI records weir sends (read
 * back with an independent reader here) and the HTTP/1.1 response it makes
 * of the records an application sends, fed whole and one byte at a time. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "common/route_table.h"
#include "proxy/fastcgi.h"
#include "request_fixture.h"

/* ---- reading what weir sends ---- */

struct sent {
	int begin_role, begin_flags;
	int nparams;
	char *names[128];
	char *values[128];
	size_t stdin_len;
	char stdin_data[200000];
	bool stdin_ended, params_ended;
	bool bad;
};

static size_t read_len(const uint8_t *p, size_t *pos)
{
	if (p[*pos] < 128)
		return p[(*pos)++];
	size_t n = ((size_t)(p[*pos] & 0x7f) << 24) | ((size_t)p[*pos + 1] << 16) |
	           ((size_t)p[*pos + 2] << 8) | p[*pos + 3];
	*pos += 4;
	return n;
}

static void parse_sent(const char *data, size_t len, struct sent *s)
{
	memset(s, 0, sizeof(*s));
	static uint8_t params[300000];
	size_t plen = 0;
	const uint8_t *p = (const uint8_t *)data;
	for (size_t i = 0; i + 8 <= len;) {
		if (p[i] != 1 || p[i + 2] != 0 || p[i + 3] != 1) {
			s->bad = true;
			return;
		}
		int type = p[i + 1];
		size_t clen = (size_t)p[i + 4] << 8 | p[i + 5], pad = p[i + 6];
		const uint8_t *c = p + i + 8;
		if (i + 8 + clen + pad > len) {
			s->bad = true;
			return;
		}
		if (type == 1 && clen == 8) {
			s->begin_role = c[0] << 8 | c[1];
			s->begin_flags = c[2];
		} else if (type == 4) {
			if (clen == 0)
				s->params_ended = true;
			memcpy(params + plen, c, clen);
			plen += clen;
		} else if (type == 5) {
			if (clen == 0)
				s->stdin_ended = true;
			memcpy(s->stdin_data + s->stdin_len, c, clen);
			s->stdin_len += clen;
		} else {
			s->bad = true;
		}
		i += 8 + clen + pad;
	}
	for (size_t pos = 0; pos < plen && s->nparams < 128;) {
		size_t nl = read_len(params, &pos);
		size_t vl = read_len(params, &pos);
		s->names[s->nparams] = strndup((const char *)params + pos, nl);
		s->values[s->nparams] = strndup((const char *)params + pos + nl, vl);
		s->nparams++;
		pos += nl + vl;
	}
}

static const char *param(const struct sent *s, const char *name)
{
	const char *v = NULL;
	int count = 0;
	for (int i = 0; i < s->nparams; i++)
		if (strcmp(s->names[i], name) == 0) {
			v = s->values[i];
			count++;
		}
	return count == 1 ? v : NULL; /* missing or twice: NULL */
}

static void free_sent(struct sent *s)
{
	for (int i = 0; i < s->nparams; i++) {
		free(s->names[i]);
		free(s->values[i]);
	}
}

static struct http_client client(void)
{
	struct http_client c;
	memset(&c, 0, sizeof(c));
	strcpy(c.ip, "192.0.2.7");
	c.port = 40123;
	c.local_port = 8080;
	strcpy(c.request_id, "0123456789abcdef0123456789abcdef");
	return c;
}

static void sent_for(const char *up_raw, const char *orig_raw, const struct route_fastcgi *cfg,
                     bool body, struct sent *s)
{
	static struct http_request up, orig;
	fixture_parse_request(up_raw, &up);
	fixture_parse_request(orig_raw, &orig);
	struct http_client cl = client();
	struct fastcgi_vars v = {
	    .req = &up, .orig = &orig, .client = &cl, .cfg = cfg, .server_addr = "10.1.2.3"};
	struct buf out;
	buf_init(&out, 1 << 20);
	CHECK_INT(fastcgi_request_head(&v, body, &out), 0);
	parse_sent(out.data + out.start, buf_len(&out), s);
	buf_free(&out);
}

static void test_params(void)
{
	struct sent s;
	const char *orig = "GET /app/x%20y.php?a=1&b=2 HTTP/1.1\r\nHost: Shop.Example.com:8080\r\n"
	                   "User-Agent: t\r\n\r\n";
	const char *up = "GET /x%20y.php?a=1&b=2 HTTP/1.1\r\nHost: Shop.Example.com:8080\r\n"
	                 "User-Agent: t\r\nX-Forwarded-For: 192.0.2.7\r\nX_Under: 1\r\n"
	                 "Proxy: http://evil\r\nConnection: close\r\nCookie: a=1\r\n"
	                 "Cookie: b=2\r\nAccept: x\r\nAccept: y\r\n\r\n";
	sent_for(up, orig, NULL, false, &s);
	CHECK(!s.bad);
	CHECK_INT(s.begin_role, 1);
	CHECK_INT(s.begin_flags, 0); /* no FCGI_KEEP_CONN */
	CHECK(s.params_ended);
	CHECK(s.stdin_ended);
	CHECK_INT(s.stdin_len, 0);
	CHECK_STR(param(&s, "QUERY_STRING"), "a=1&b=2");
	CHECK_STR(param(&s, "REQUEST_METHOD"), "GET");
	CHECK_STR(param(&s, "CONTENT_TYPE"), "");
	CHECK_STR(param(&s, "CONTENT_LENGTH"), "");
	CHECK_STR(param(&s, "SCRIPT_NAME"), "/x y.php");
	CHECK_STR(param(&s, "REQUEST_URI"), "/app/x%20y.php?a=1&b=2");
	CHECK_STR(param(&s, "DOCUMENT_URI"), "/x y.php");
	CHECK_STR(param(&s, "DOCUMENT_ROOT"), "/etc/nginx/html");
	CHECK_STR(param(&s, "SERVER_PROTOCOL"), "HTTP/1.1");
	CHECK_STR(param(&s, "REQUEST_SCHEME"), "http");
	CHECK(param(&s, "HTTPS") == NULL);
	CHECK_STR(param(&s, "GATEWAY_INTERFACE"), "CGI/1.1");
	CHECK_STR(param(&s, "REMOTE_ADDR"), "192.0.2.7");
	CHECK_STR(param(&s, "REMOTE_PORT"), "40123");
	CHECK_STR(param(&s, "SERVER_ADDR"), "10.1.2.3");
	CHECK_STR(param(&s, "SERVER_PORT"), "8080");
	CHECK_STR(param(&s, "SERVER_NAME"), "shop.example.com");
	CHECK_STR(param(&s, "REDIRECT_STATUS"), "200");
	CHECK_STR(param(&s, "HTTP_HOST"), "Shop.Example.com:8080");
	CHECK_STR(param(&s, "HTTP_USER_AGENT"), "t");
	CHECK_STR(param(&s, "HTTP_X_FORWARDED_FOR"), "192.0.2.7");
	CHECK_STR(param(&s, "HTTP_COOKIE"), "a=1; b=2");
	CHECK_STR(param(&s, "HTTP_ACCEPT"), "x, y");
	CHECK(param(&s, "HTTP_PROXY") == NULL);
	CHECK(param(&s, "HTTP_X_UNDER") == NULL);
	CHECK(param(&s, "HTTP_CONNECTION") == NULL);
	free_sent(&s);
}

static void test_index_and_config(void)
{
	struct sent s;
	struct route_header params[] = {
	    {.name = "SCRIPT_FILENAME", .value = "/srv$fastcgi_script_name"},
	    {.name = "HTTP_PROXY", .value = ""},
	    {.name = "SERVER_NAME", .value = "fixed"},
	    {.name = "MIX", .value = "$request_method $host ${args}$is_args|$uri|$https"},
	};
	struct route_fastcgi cfg = {.index = "index.php", .nparams = 4, .params = params};
	const char *req = "POST /a/b/../c/./d//?x=1 HTTP/1.1\r\nHost: h\r\nProxy: p\r\n"
	                  "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\n";
	sent_for(req, req, &cfg, true, &s);
	CHECK(!s.bad);
	CHECK(!s.stdin_ended); /* a body follows */
	CHECK_STR(param(&s, "SCRIPT_NAME"), "/a/c/d/index.php");
	CHECK_STR(param(&s, "DOCUMENT_URI"), "/a/c/d/");
	CHECK_STR(param(&s, "SCRIPT_FILENAME"), "/srv/a/c/d/index.php");
	CHECK_STR(param(&s, "HTTP_PROXY"), "");
	CHECK_STR(param(&s, "SERVER_NAME"), "fixed");
	CHECK_STR(param(&s, "MIX"), "POST h x=1?|/a/c/d/|");
	CHECK_STR(param(&s, "CONTENT_TYPE"), "text/plain");
	CHECK_STR(param(&s, "CONTENT_LENGTH"), "5");
	free_sent(&s);

	/* ".." cannot climb above the root; %2e%2e is decoded first */
	const char *up = "GET /../../%2e%2e/etc/passwd HTTP/1.1\r\nHost: h\r\n\r\n";
	sent_for(up, up, &cfg, false, &s);
	CHECK_STR(param(&s, "SCRIPT_NAME"), "/etc/passwd");
	CHECK_STR(param(&s, "SCRIPT_FILENAME"), "/srv/etc/passwd");
	free_sent(&s);
	up = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
	sent_for(up, up, &cfg, false, &s);
	CHECK_STR(param(&s, "SCRIPT_NAME"), "/index.php");
	free_sent(&s);
	up = "GET /a%00b/.. HTTP/1.1\r\nHost: h\r\n\r\n";
	sent_for(up, up, NULL, false, &s);
	CHECK_STR(param(&s, "SCRIPT_NAME"), "/"); /* %00 stays as written */
	free_sent(&s);
	up = "GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n";
	sent_for(up, up, NULL, false, &s);
	CHECK_STR(param(&s, "SCRIPT_NAME"), "/a%00b");
	free_sent(&s);
}

static void test_stdin(void)
{
	struct buf out;
	buf_init(&out, 1 << 20);
	static char body[150000];
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)(i * 7);
	CHECK_INT(fastcgi_stdin(&out, body, 1), 0);
	CHECK_INT(fastcgi_stdin(&out, body + 1, sizeof(body) - 1), 0);
	CHECK_INT(fastcgi_stdin(&out, NULL, 0), 0);
	struct sent *s = malloc(sizeof(*s));
	parse_sent(out.data + out.start, buf_len(&out), s);
	CHECK(!s->bad);
	CHECK(s->stdin_ended);
	CHECK_INT(s->stdin_len, sizeof(body));
	CHECK(memcmp(s->stdin_data, body, sizeof(body)) == 0);
	CHECK(buf_len(&out) <= sizeof(body) + fastcgi_stdin_overhead(1) +
	                           fastcgi_stdin_overhead(sizeof(body) - 1) + 8);
	free(s);
	buf_free(&out);
	/* over the cap: nothing appended */
	buf_init(&out, 100);
	CHECK_INT(fastcgi_stdin(&out, body, 50), 0);
	size_t len = buf_len(&out);
	CHECK_INT(fastcgi_stdin(&out, body, 60), WEIR_ETOOBIG);
	CHECK_INT(buf_len(&out), len);
	buf_free(&out);
}

/* ---- reading what the application sends ---- */

static size_t record(char *out, int type, int id, const char *p, size_t len, size_t pad)
{
	uint8_t *o = (uint8_t *)out;
	o[0] = 1;
	o[1] = (uint8_t)type;
	o[2] = (uint8_t)(id >> 8);
	o[3] = (uint8_t)id;
	o[4] = (uint8_t)(len >> 8);
	o[5] = (uint8_t)len;
	o[6] = (uint8_t)pad;
	o[7] = 0;
	memcpy(out + 8, p, len);
	memset(out + 8 + len, 'P', pad);
	return 8 + len + pad;
}

static size_t end_request(char *out, int proto)
{
	char body[8] = {0, 0, 0, 0, (char)proto, 0, 0, 0};
	return record(out, 3, 1, body, 8, 0);
}

static char stderr_seen[1024];

static void on_err(void *data, const char *line, size_t len)
{
	(void)data;
	strncat(stderr_seen, line, len);
	strcat(stderr_seen, "|");
}

/* Decode in (whole, or one byte per call) with an unbounded out; returns
 * the final code and the bytes made in got. */
static int decode(const char *in, size_t len, bool bytewise, size_t head_max, char *got,
                  size_t *got_len)
{
	struct fastcgi_decoder d;
	struct buf out;
	buf_init(&out, 1 << 22);
	fastcgi_decoder_init(&d, head_max, on_err, NULL);
	int rc = 0;
	size_t pos = 0;
	while (pos < len && rc == 0) {
		size_t used = 0, n = bytewise ? 1 : len - pos;
		rc = fastcgi_decode(&d, in + pos, n, &used, &out, 1 << 22);
		pos += used;
		if (rc == 0 && used == 0)
			break;
	}
	if (buf_len(&out))
		memcpy(got, out.data + out.start, buf_len(&out));
	*got_len = buf_len(&out);
	got[*got_len] = '\0';
	fastcgi_decoder_free(&d);
	buf_free(&out);
	return rc;
}

static void test_response(void)
{
	static char in[300000], got[400000];
	size_t n = 0, got_len;
	const char *head = "Status: 404 Nope\nContent-Type: text/html\r\nX-A: 1\n"
	                   "Connection: keep-alive\n\nhello ";
	n += record(in + n, 6, 1, head, strlen(head), 3);
	n += record(in + n, 7, 1, "warn one\nwarn", 13, 0);
	n += record(in + n, 7, 1, " two", 4, 0);
	n += record(in + n, 8, 0, "mgmt", 4, 4); /* a management record: skipped */
	n += record(in + n, 6, 1, "world", 5, 0);
	n += record(in + n, 6, 1, "", 0, 0);
	n += end_request(in + n, 0);
	const char *want = "HTTP/1.1 404 Nope\r\nContent-Type: text/html\r\nX-A: 1\r\n"
	                   "Connection: close\r\n\r\nhello world";
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		stderr_seen[0] = '\0';
		CHECK_INT(decode(in, n, bytewise, 4096, got, &got_len), 1);
		CHECK_STR(got, want);
		CHECK_STR(stderr_seen, "warn one|warn| two|");
	}

	/* no Status: 200, or 302 with Location; a head split over records */
	n = 0;
	n += record(in + n, 6, 1, "Loc", 3, 0);
	n += record(in + n, 6, 1, "ation: /x\r", 10, 0);
	n += record(in + n, 6, 1, "\n\r\n", 3, 0);
	n += end_request(in + n, 0);
	CHECK_INT(decode(in, n, false, 4096, got, &got_len), 1);
	CHECK_STR(got, "HTTP/1.1 302 Found\r\nLocation: /x\r\nConnection: close\r\n\r\n");
	n = record(in, 6, 1, "\r\nbody", 6, 0);
	n += end_request(in + n, 0);
	CHECK_INT(decode(in, n, true, 4096, got, &got_len), 1);
	CHECK_STR(got, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody");

	/* a large body in records of every size */
	static char body[200000];
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)('a' + i % 26);
	n = record(in, 6, 1, "Content-Type: x\n\n", 17, 0);
	for (size_t off = 0, k = 1; off < sizeof(body); k = k * 3 + 1) {
		size_t take = k % 65536;
		if (take > sizeof(body) - off)
			take = sizeof(body) - off;
		n += record(in + n, 6, 1, body + off, take, (8 - take % 8) % 8);
		off += take;
	}
	n += end_request(in + n, 0);
	CHECK_INT(decode(in, n, false, 4096, got, &got_len), 1);
	const char *h2 = "HTTP/1.1 200 OK\r\nContent-Type: x\r\nConnection: close\r\n\r\n";
	CHECK_INT(got_len, strlen(h2) + sizeof(body));
	CHECK(memcmp(got + strlen(h2), body, sizeof(body)) == 0);

	/* refusals */
	n = record(in, 6, 1, "Status: 101 Switching\n\n", 23, 0);
	CHECK_INT(decode(in, n, false, 4096, got, &got_len), WEIR_EINVAL);
	n = record(in, 6, 1, "Status: 2000\n\n", 14, 0);
	CHECK_INT(decode(in, n, false, 4096, got, &got_len), WEIR_EINVAL);
	n = record(in, 6, 1, "No colon here\n\n", 15, 0);
	CHECK_INT(decode(in, n, false, 4096, got, &got_len), WEIR_EINVAL);
	n = record(in, 6, 1, "X-Bad: a\x01z\n\n", 12, 0);
	CHECK_INT(decode(in, n, false, 4096, got, &got_len), WEIR_EINVAL);
	n = record(in, 6, 2, "X: 1\n\n", 6, 0); /* another request id */
	CHECK_INT(decode(in, n, false, 4096, got, &got_len), WEIR_EINVAL);
	memcpy(in, "HTTP/1.1 200 OK\r\n", 17); /* not FastCGI at all */
	CHECK_INT(decode(in, 17, false, 4096, got, &got_len), WEIR_EINVAL);
	n = end_request(in, 1); /* refused before any head */
	CHECK_INT(decode(in, n, false, 4096, got, &got_len), WEIR_EINVAL);
	n = record(in, 6, 1, "X: 1\n\n", 6, 0);
	n += end_request(in + n, 2); /* overloaded */
	CHECK_INT(decode(in, n, false, 4096, got, &got_len), WEIR_EINVAL);

	/* proxy-buffer-size */
	static char big[9000];
	memcpy(big, "X-Big: ", 7);
	memset(big + 7, 'b', 5000);
	memcpy(big + 5007, "\n\n", 2);
	n = record(in, 6, 1, big, 5009, 0);
	n += end_request(in + n, 0);
	CHECK_INT(decode(in, n, false, 4096, got, &got_len), WEIR_ETOOBIG);
	CHECK_INT(decode(in, n, true, 8192, got, &got_len), 1);
}

/* out_limit holds bytes back: the caller drains and calls again. */
static void test_back_pressure(void)
{
	static char in[100000];
	static char body[50000];
	memset(body, 'z', sizeof(body));
	size_t n = record(in, 6, 1, "\n", 1, 0);
	n += record(in + n, 6, 1, body, sizeof(body), 0);
	n += end_request(in + n, 0);
	struct fastcgi_decoder d;
	struct buf out;
	buf_init(&out, 1 << 20);
	fastcgi_decoder_init(&d, 4096, NULL, NULL);
	size_t pos = 0, total = 0;
	int rc = 0, calls = 0;
	while (rc == 0 && calls < 1000) {
		size_t used = 0;
		rc = fastcgi_decode(&d, in + pos, n - pos, &used, &out, 4096);
		pos += used;
		CHECK(buf_len(&out) <= 4096);
		total += buf_len(&out);
		out.start = out.end = 0;
		calls++;
	}
	CHECK_INT(rc, 1);
	CHECK_INT(pos, n);
	CHECK_INT(total, strlen("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n") + sizeof(body));
	CHECK(calls > 10);
	fastcgi_decoder_free(&d);
	buf_free(&out);
}

int main(void)
{
	test_params();
	test_index_and_config();
	test_stdin();
	test_response();
	test_back_pressure();
	return check_finish("fastcgi_test");
}
