/* tests/bench/backend.c - the benchmark's upstream: a small epoll server on loopback.
 *
 *   backend PORT [THREADS [ADDRESS]]
 *
 * ADDRESS is an IPv4 loopback address (default 127.0.0.1), so several backends can share a port
 * on 127.0.0.2, 127.0.0.3, ... (the soak benchmark lists them as endpoints of one Service).
 * Every connection starts as HTTP/1.1. A GET without an upgrade gets a small fixed 200 with
 * keep-alive (pipelined requests answered in order); GET /text64k gets 64 KiB of log-like
 * text/plain instead (the gzip benchmark). A WebSocket upgrade gets 101 and from then
 * on every data frame is echoed back (unmasked), ping gets pong, close is echoed and the
 * connection closed. Request bodies are not supported (the benchmark sends none). Prints
 * "backend ready on ADDRESS:PORT" once listening. Loopback only; caps on every buffer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_CAP (256 * 1024)
#define OUT_CAP (512 * 1024)

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 13\r\n\r\nhello, weir!\n";

/* GET /text64k: a head and 64 KiB of text lines, made once in main. */
#define TEXT64_BODY 65536
static char text64[TEXT64_BODY + 128];
static size_t text64_len;

static void make_text64(void)
{
	int n = snprintf(text64, sizeof(text64),
	                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                 "Content-Length: %d\r\n\r\n",
	                 TEXT64_BODY);
	size_t off = (size_t)n, end = (size_t)n + TEXT64_BODY;
	for (unsigned i = 0; off < end; i++) {
		char line[128];
		int k = snprintf(line, sizeof(line),
		                 "2026-12-05T07:%02u:%02u.%03uZ INFO GET /api/items/%u status=200 "
		                 "bytes=%u ms=%u\n",
		                 (i / 60) % 60, i % 60, (i * 37) % 1000, i * 7919 % 100000,
		                 (i * 131) % 9000 + 200, (i * 17) % 250);
		size_t take = end - off < (size_t)k ? end - off : (size_t)k;
		memcpy(text64 + off, line, take);
		off += take;
	}
	text64_len = end;
}

struct conn {
	int fd;
	int ws;
	size_t in_len;
	size_t out_len;
	size_t out_off;
	unsigned char in[IN_CAP];
	unsigned char out[OUT_CAP];
};

static int port;
static struct in_addr address = {.s_addr = 0};
static char address_text[INET_ADDRSTRLEN] = "127.0.0.1";

static void b64(const unsigned char *src, size_t n, char *dst)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
		dst[o++] = t[v >> 18];
		dst[o++] = t[(v >> 12) & 63];
		dst[o++] = t[(v >> 6) & 63];
		dst[o++] = t[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)src[i] << 16;
		dst[o++] = t[v >> 18];
		dst[o++] = t[(v >> 12) & 63];
		dst[o++] = '=';
		dst[o++] = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
		dst[o++] = t[v >> 18];
		dst[o++] = t[(v >> 12) & 63];
		dst[o++] = t[(v >> 6) & 63];
		dst[o++] = '=';
	}
	dst[o] = 0;
}

static int out_put(struct conn *c, const void *p, size_t n)
{
	if (c->out_off > 0 && c->out_len + n > OUT_CAP) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (c->out_len + n > OUT_CAP)
		return -1;
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	return 0;
}

/* Find header name (case-insensitive) in head; copies its value into val (cap). */
static int header_value(const char *head, const char *name, char *val, size_t cap)
{
	size_t nl = strlen(name);
	const char *p = strstr(head, "\r\n");
	while (p && p[2] != '\r') {
		p += 2;
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			const char *e = strstr(v, "\r\n");
			if (!e)
				return -1;
			size_t len = (size_t)(e - v);
			if (len >= cap)
				return -1;
			memcpy(val, v, len);
			val[len] = 0;
			return 0;
		}
		p = strstr(p, "\r\n");
	}
	return -1;
}

/* Handle complete HTTP heads in c->in; returns bytes consumed or -1 to close. */
static long http_step(struct conn *c)
{
	size_t used = 0;
	while (!c->ws) {
		unsigned char *start = c->in + used;
		size_t avail = c->in_len - used;
		unsigned char *end = memmem(start, avail, "\r\n\r\n", 4);
		if (!end)
			break;
		size_t hlen = (size_t)(end - start) + 4;
		char head[16384];
		if (hlen >= sizeof(head))
			return -1;
		memcpy(head, start, hlen);
		head[hlen] = 0;
		char up[64], key[128];
		if (header_value(head, "Upgrade", up, sizeof(up)) == 0 &&
		    strcasecmp(up, "websocket") == 0 &&
		    header_value(head, "Sec-WebSocket-Key", key, sizeof(key)) == 0) {
			char cat[256], acc[64], resp[256];
			unsigned char dig[SHA_DIGEST_LENGTH];
			snprintf(cat, sizeof(cat), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
			SHA1((const unsigned char *)cat, strlen(cat), dig);
			b64(dig, sizeof(dig), acc);
			int n =
			    snprintf(resp, sizeof(resp),
			             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			             "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			             acc);
			if (out_put(c, resp, (size_t)n) < 0)
				return -1;
			c->ws = 1;
		} else if (strncmp(head, "GET /text64k ", 13) == 0) {
			if (out_put(c, text64, text64_len) < 0)
				break; /* output full: retry once drained */
		} else if (out_put(c, RESPONSE, sizeof(RESPONSE) - 1) < 0) {
			break; /* output full: retry once drained */
		}
		used += hlen;
	}
	if (!c->ws && c->in_len - used >= IN_CAP / 2)
		return -1; /* head too big */
	return (long)used;
}

/* Echo complete WebSocket frames from c->in; returns bytes consumed or -1 to close. */
static long ws_step(struct conn *c, int *closing)
{
	size_t used = 0;
	for (;;) {
		unsigned char *p = c->in + used;
		size_t avail = c->in_len - used;
		if (avail < 2)
			break;
		int op = p[0] & 0x0f, masked = p[1] & 0x80;
		uint64_t len = p[1] & 0x7f;
		size_t hdr = 2;
		if (len == 126) {
			if (avail < 4)
				break;
			len = (uint64_t)p[2] << 8 | p[3];
			hdr = 4;
		} else if (len == 127) {
			if (avail < 10)
				break;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | p[2 + i];
			hdr = 10;
		}
		if (len > IN_CAP - 16)
			return -1;
		size_t mk = hdr;
		if (masked)
			hdr += 4;
		if (avail < hdr + len)
			break;
		unsigned char oh[10];
		size_t ohl = 2;
		unsigned char *pl = p + hdr;
		if (masked)
			for (uint64_t i = 0; i < len; i++)
				pl[i] ^= p[mk + (i & 3)];
		if (op == 9)
			op = 10;
		oh[0] = (unsigned char)((p[0] & 0x80) | op);
		if (len < 126) {
			oh[1] = (unsigned char)len;
		} else if (len < 65536) {
			oh[1] = 126;
			oh[2] = (unsigned char)(len >> 8);
			oh[3] = (unsigned char)len;
			ohl = 4;
		} else {
			oh[1] = 127;
			for (int i = 0; i < 8; i++)
				oh[2 + i] = (unsigned char)(len >> (56 - 8 * i));
			ohl = 10;
		}
		if (c->out_len - c->out_off + ohl + len > OUT_CAP)
			break; /* wait for the output to drain */
		if (out_put(c, oh, ohl) < 0 || out_put(c, pl, (size_t)len) < 0)
			return -1;
		used += hdr + (size_t)len;
		if (op == 8) {
			*closing = 1;
			break;
		}
	}
	return (long)used;
}

static int flush_out(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 1;
			if (errno == EINTR)
				continue;
			return -1;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

static void conn_close(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

static void *serve(void *arg)
{
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(ls, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr = address;
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 4096) < 0) {
		perror("bind/listen");
		exit(1);
	}
	if (arg) {
		printf("backend ready on %s:%d\n", address_text, port);
		fflush(stdout);
	}
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c) {
				for (;;) {
					int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
					if (fd < 0)
						break;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					struct conn *nc = calloc(1, sizeof(*nc));
					if (!nc) {
						close(fd);
						continue;
					}
					nc->fd = fd;
					struct epoll_event cev = {.events = EPOLLIN,
					                          .data.ptr = nc};
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
				}
				continue;
			}
			int closing = 0, bad = 0;
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				ssize_t r = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
				if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
					bad = 1;
				else if (r > 0)
					c->in_len += (size_t)r;
			}
			if (!bad) {
				long used = http_step(c);
				if (used >= 0 && c->ws) {
					memmove(c->in, c->in + used, c->in_len - (size_t)used);
					c->in_len -= (size_t)used;
					used = ws_step(c, &closing);
				}
				if (used < 0) {
					bad = 1;
				} else {
					memmove(c->in, c->in + used, c->in_len - (size_t)used);
					c->in_len -= (size_t)used;
				}
			}
			int fl = bad ? -1 : flush_out(c);
			if (bad || fl < 0 || (closing && fl == 0)) {
				conn_close(ep, c);
				continue;
			}
			struct epoll_event cev = {.events = fl ? EPOLLOUT : EPOLLIN, .data.ptr = c};
			if (c->in_len == IN_CAP)
				cev.events = EPOLLOUT;
			epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: backend PORT [THREADS [ADDRESS]]\n");
		return 2;
	}
	port = atoi(argv[1]);
	int threads = argc > 2 ? atoi(argv[2]) : 1;
	if (argc > 3) {
		/* loopback only: 127.0.0.0/8 */
		if (inet_pton(AF_INET, argv[3], &address) != 1 ||
		    (ntohl(address.s_addr) >> 24) != 127) {
			fprintf(stderr, "backend: %s is not a 127.0.0.0/8 address\n", argv[3]);
			return 2;
		}
		snprintf(address_text, sizeof(address_text), "%s", argv[3]);
	} else {
		address.s_addr = htonl(0x7f000001);
	}
	signal(SIGPIPE, SIG_IGN);
	make_text64();
	pthread_t t[16];
	if (threads < 1 || threads > 16)
		threads = 1;
	for (int i = 1; i < threads; i++)
		pthread_create(&t[i], NULL, serve, NULL);
	serve(&port);
	return 0;
}
