/* tests/bench/ws_client.c - WebSocket load client for the benchmark (loopback only).
 *
 *   ws_client echo PORT PATH CONNS SECONDS SIZE
 *       CONNS connections each ping-pong one SIZE-byte binary frame at a time for SECONDS;
 *       prints "messages N seconds S rate R errors E".
 *   ws_client idle PORT PATH CONNS
 *       opens CONNS upgraded connections, checks each with one echo, prints "connected N" and
 *       then holds them idle until stdin reaches EOF (or 600 s pass).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXSIZE 65536

struct wsc {
	int fd;
	size_t want; /* bytes of the echo frame still expected */
	size_t got;
	size_t frame_len;
	unsigned char buf[MAXSIZE + 16];
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pf = {.fd = fd, .events = POLLOUT};
				poll(&pf, 1, 1000);
				continue;
			}
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Blocking connect + upgrade; returns fd or -1. */
static int ws_open(int port, const char *path)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(0x7f000001);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	char req[512];
	int n = snprintf(req, sizeof(req),
	                 "GET %s HTTP/1.1\r\nHost: bench.test\r\nConnection: Upgrade\r\n"
	                 "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
	                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
	                 path);
	if (write_all(fd, req, (size_t)n) < 0)
		goto fail;
	char resp[2048];
	size_t len = 0;
	while (len < sizeof(resp) - 1) {
		/* read byte-wise up to the end of the head so no frame byte is swallowed */
		ssize_t r = read(fd, resp + len, 1);
		if (r <= 0)
			goto fail;
		len++;
		if (len >= 4 && memcmp(resp + len - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	resp[len] = 0;
	if (strncmp(resp, "HTTP/1.1 101", 12) != 0)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

static size_t frame(unsigned char *out, size_t size, unsigned seed)
{
	size_t h = 2;
	out[0] = 0x82;
	if (size < 126) {
		out[1] = (unsigned char)(0x80 | size);
	} else {
		out[1] = 0x80 | 126;
		out[2] = (unsigned char)(size >> 8);
		out[3] = (unsigned char)size;
		h = 4;
	}
	unsigned char mask[4] = {0x12, 0x34, 0x56, (unsigned char)seed};
	memcpy(out + h, mask, 4);
	for (size_t i = 0; i < size; i++)
		out[h + 4 + i] = (unsigned char)('a' + (i + seed) % 26) ^ mask[i & 3];
	return h + 4 + size;
}

static size_t echo_len(size_t size)
{
	return (size < 126 ? 2 : 4) + size;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: ws_client echo|idle PORT PATH CONNS [SECONDS SIZE]\n");
		return 2;
	}
	int idle = strcmp(argv[1], "idle") == 0;
	int port = atoi(argv[2]);
	const char *path = argv[3];
	int conns = atoi(argv[4]);
	double seconds = argc > 5 ? atof(argv[5]) : 10;
	size_t size = argc > 6 ? (size_t)atoi(argv[6]) : 64;
	if (conns < 1 || conns > 100000 || size < 1 || size >= MAXSIZE)
		return 2;
	struct wsc *cs = calloc((size_t)conns, sizeof(*cs));
	unsigned char out[MAXSIZE + 16];
	int ep = epoll_create1(0);
	int opened = 0;
	for (int i = 0; i < conns; i++) {
		cs[i].fd = ws_open(port, path);
		if (cs[i].fd < 0) {
			fprintf(stderr, "connection %d: upgrade failed (%s)\n", i, strerror(errno));
			break;
		}
		/* one checked echo per connection */
		size_t fl = frame(out, size, (unsigned)i);
		unsigned char back[MAXSIZE + 16];
		size_t want = echo_len(size), got = 0;
		if (write_all(cs[i].fd, out, fl) < 0)
			break;
		while (got < want) {
			ssize_t r = read(cs[i].fd, back + got, want - got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (got != want) {
			fprintf(stderr, "connection %d: no echo\n", i);
			close(cs[i].fd);
			break;
		}
		opened++;
	}
	if (idle) {
		printf("connected %d\n", opened);
		fflush(stdout);
		char b[64];
		struct pollfd pf = {.fd = 0, .events = POLLIN};
		double end = now() + 600;
		while (now() < end) {
			if (poll(&pf, 1, 1000) > 0 && read(0, b, sizeof(b)) <= 0)
				break;
		}
		return opened == conns ? 0 : 1;
	}
	for (int i = 0; i < opened; i++) {
		struct timeval tv = {0};
		setsockopt(cs[i].fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
		cs[i].want = echo_len(size);
		size_t fl = frame(out, size, 7);
		write_all(cs[i].fd, out, fl);
	}
	size_t fl = frame(out, size, 7);
	unsigned long long msgs = 0, errors = 0;
	double t0 = now(), end = t0 + seconds;
	struct epoll_event evs[256];
	while (now() < end && opened > 0) {
		int n = epoll_wait(ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			struct wsc *c = evs[i].data.ptr;
			ssize_t r = read(c->fd, c->buf + c->got, c->want - c->got);
			if (r <= 0) {
				if (r < 0 && errno == EAGAIN)
					continue;
				errors++;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				continue;
			}
			c->got += (size_t)r;
			if (c->got < c->want)
				continue;
			if (c->buf[0] != 0x82 ||
			    c->buf[c->want - 1] != (unsigned char)('a' + (size - 1 + 7) % 26))
				errors++;
			c->got = 0;
			msgs++;
			if (write_all(c->fd, out, fl) < 0)
				errors++;
		}
	}
	double took = now() - t0;
	printf("messages %llu seconds %.2f rate %.0f errors %llu conns %d\n", msgs, took,
	       (double)msgs / took, errors, opened);
	return opened == conns ? 0 : 1;
}
