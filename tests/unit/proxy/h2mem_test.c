/* tests/unit/proxy/h2mem_test.c - nghttp2's allocator: blocks of every size
 * keep their bytes through realloc within and across classes and to and from
 * big blocks, calloc zeroes, a size that overflows is refused, and a client
 * and a server session made with it exchange a request and its answer (the
 * sanitized build checks that no block is lost or used after its free). */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "proxy/h2mem.h"

static void fill(unsigned char *p, size_t n, unsigned char seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed + i);
}

static int same(const unsigned char *p, size_t n, unsigned char seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(seed + i))
			return 0;
	return 1;
}

static void test_blocks(void)
{
	struct h2_mem m = {0};
	nghttp2_mem ng;
	h2_mem_init(&m, &ng);
	static const size_t sizes[] = {0, 1, 31, 32, 33, 100, 1024, 2048, 2049, 10000};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		unsigned char *p = ng.malloc(n, ng.mem_user_data);
		CHECK(p != NULL);
		CHECK(((uintptr_t)p & 15u) == 0);
		fill(p, n, (unsigned char)i);
		/* grow across classes and into a big block, then shrink back */
		p = ng.realloc(p, n + 40, ng.mem_user_data);
		CHECK(p && same(p, n, (unsigned char)i));
		p = ng.realloc(p, n + 5000, ng.mem_user_data);
		CHECK(p && same(p, n, (unsigned char)i));
		p = ng.realloc(p, n / 2, ng.mem_user_data);
		CHECK(p && same(p, n / 2, (unsigned char)i));
		ng.free(p, ng.mem_user_data);
	}
	/* a kept block comes back zeroed from calloc */
	unsigned char *a = ng.malloc(64, ng.mem_user_data);
	memset(a, 0xab, 64);
	ng.free(a, ng.mem_user_data);
	unsigned char *z = ng.calloc(8, 8, ng.mem_user_data);
	int zero = 1;
	for (int i = 0; i < 64; i++)
		zero &= z[i] == 0;
	CHECK(zero);
	ng.free(z, ng.mem_user_data);
	CHECK(ng.calloc(SIZE_MAX / 2, 4, ng.mem_user_data) == NULL);
	CHECK(ng.malloc(SIZE_MAX - 8, ng.mem_user_data) == NULL);
	ng.free(NULL, ng.mem_user_data);
	void *fresh = ng.realloc(NULL, 10, ng.mem_user_data);
	CHECK(fresh != NULL);
	ng.free(fresh, ng.mem_user_data);
	h2_mem_cleanup(&m);
	CHECK_INT(m.bytes, 0);
	/* after the cleanup, frees are malloc's */
	void *late = ng.malloc(48, ng.mem_user_data);
	ng.free(late, ng.mem_user_data);
	for (int k = 0; k < H2MEM_CLASSES; k++)
		CHECK(m.free[k] == NULL);
}

/* ---- two sessions over memory ---- */

struct peer {
	nghttp2_session *ng;
	int status;     /* the client's: the answer's :status */
	int closed;     /* streams closed */
	int32_t req_id; /* the server's: the stream to answer */
};

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	(void)ng;
	(void)flags;
	struct peer *p = ud;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0 && valuelen == 3)
		p->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
	if (namelen == 5 && memcmp(name, ":path", 5) == 0)
		p->req_id = f->hd.stream_id;
	return 0;
}

static int on_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
	(void)ng;
	(void)id;
	(void)code;
	((struct peer *)ud)->closed++;
	return 0;
}

/* What one side has to send goes to the other. Returns the bytes moved. */
static size_t pump(struct peer *from, struct peer *to)
{
	size_t moved = 0;
	for (;;) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(from->ng, &data);
		if (n <= 0)
			break;
		CHECK(nghttp2_session_mem_recv(to->ng, data, (size_t)n) == n);
		moved += (size_t)n;
	}
	return moved;
}

static void test_sessions(void)
{
	struct h2_mem m = {0};
	nghttp2_mem mem;
	h2_mem_init(&m, &mem);
	nghttp2_session_callbacks *cb;
	CHECK(nghttp2_session_callbacks_new(&cb) == 0);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	struct peer c = {0}, s = {0};
	CHECK(nghttp2_session_client_new3(&c.ng, cb, &c, NULL, &mem) == 0);
	CHECK(nghttp2_session_server_new3(&s.ng, cb, &s, NULL, &mem) == 0);
	nghttp2_session_callbacks_del(cb);
	CHECK(nghttp2_submit_settings(c.ng, NGHTTP2_FLAG_NONE, NULL, 0) == 0);
	CHECK(nghttp2_submit_settings(s.ng, NGHTTP2_FLAG_NONE, NULL, 0) == 0);
	for (int round = 0; round < 100; round++) {
		char path[32];
		int plen = snprintf(path, sizeof(path), "/r%d", round);
		nghttp2_nv req[] = {
		    {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0},
		    {(uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0},
		    {(uint8_t *)":authority", (uint8_t *)"a.test", 10, 6, 0},
		    {(uint8_t *)":path", (uint8_t *)path, 5, (size_t)plen, 0},
		};
		s.req_id = 0;
		CHECK(nghttp2_submit_request(c.ng, NULL, req, 4, NULL, NULL) > 0);
		pump(&c, &s);
		CHECK(s.req_id > 0);
		nghttp2_nv resp[] = {{(uint8_t *)":status", (uint8_t *)"204", 7, 3, 0}};
		CHECK(nghttp2_submit_response(s.ng, s.req_id, resp, 1, NULL) == 0);
		c.status = 0;
		while (pump(&s, &c) + pump(&c, &s) > 0)
			;
		CHECK_INT(c.status, 204);
	}
	CHECK_INT(c.closed, 100);
	nghttp2_session_del(c.ng);
	nghttp2_session_del(s.ng);
	h2_mem_cleanup(&m);
}

int main(void)
{
	test_blocks();
	test_sessions();
	return check_finish("h2mem");
}
