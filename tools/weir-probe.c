/* tools/weir-probe.c - "weir-probe [--retry SECONDS] http://host:port/path":
 * one HTTP GET that exits 0 on a 2xx answer, 1 on any other answer or error,
 * 2 on bad usage; with --retry, the GET is repeated every second until it
 * succeeds or SECONDS have passed (a Helm test that starts right after the
 * install may find the Service's DNS name or endpoints not there yet). It
 * exists so the image needs no shell or curl for the Helm test and for
 * health checks. */
#include "common/error.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROBE_TIMEOUT_MS 5000

struct probe_url {
	char host[256];
	char port[8];
	char path[1024];
};

/* Split "http://host[:port][/path]"; IPv6 literals in brackets. */
static int url_parse(const char *url, struct probe_url *u)
{
	const char *p, *host_end, *port_start = NULL;
	size_t n;

	if (strncmp(url, "http://", 7) != 0)
		return WEIR_EINVAL;
	p = url + 7;
	if (*p == '[') {
		host_end = strchr(p, ']');
		if (!host_end)
			return WEIR_EINVAL;
		p++;
		n = (size_t)(host_end - p);
		host_end++;
	} else {
		host_end = p + strcspn(p, ":/");
		n = (size_t)(host_end - p);
	}
	if (n == 0 || n >= sizeof(u->host))
		return WEIR_EINVAL;
	memcpy(u->host, p, n);
	u->host[n] = '\0';
	if (*host_end == ':')
		port_start = host_end + 1;
	n = port_start ? strcspn(port_start, "/") : 0;
	if (n >= sizeof(u->port))
		return WEIR_EINVAL;
	if (port_start && n > 0) {
		memcpy(u->port, port_start, n);
		u->port[n] = '\0';
	} else {
		strcpy(u->port, "80");
	}
	p = strchr(host_end, '/');
	snprintf(u->path, sizeof(u->path), "%s", p ? p : "/");
	return 0;
}

static int wait_fd(int fd, short events)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int rc = poll(&pfd, 1, PROBE_TIMEOUT_MS);
	return rc == 1 ? 0 : WEIR_ETIMEDOUT;
}

/* One GET of url (parsed into u): 0 on a 2xx answer, 1 otherwise. */
static int probe_once(const char *url, const struct probe_url *u)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	char req[1400], resp[64];
	int fd = -1, status = 0, rc = 1;
	size_t got = 0;
	if (getaddrinfo(u->host, u->port, &hints, &res) != 0) {
		fprintf(stderr, "weir-probe: cannot resolve %s\n", u->host);
		return 1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS && wait_fd(fd, POLLOUT) == 0))
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		fprintf(stderr, "weir-probe: cannot connect to %s:%s\n", u->host, u->port);
		goto out_addr;
	}
	int reqlen = snprintf(req, sizeof(req),
	                      "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: weir-probe\r\n\r\n",
	                      u->path, u->host);
	if (reqlen < 0 || (size_t)reqlen >= sizeof(req))
		goto out_fd;
	if (wait_fd(fd, POLLOUT) != 0 || send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
		goto out_fd;
	while (got < sizeof(resp) - 1 && !memchr(resp, '\n', got)) {
		ssize_t n;
		if (wait_fd(fd, POLLIN) != 0)
			break;
		n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	resp[got] = '\0';
	if (sscanf(resp, "HTTP/1.%*d %d", &status) == 1 && status >= 200 && status < 300)
		rc = 0;
	else
		fprintf(stderr, "weir-probe: %s answered %s\n", url,
		        status ? "a non-2xx status" : "no HTTP status line");
	printf("%d\n", status);
out_fd:
	close(fd);
out_addr:
	freeaddrinfo(res);
	return rc;
}

int main(int argc, char **argv)
{
	struct probe_url u;
	long retry_s = 0;
	int i = 1;
	if (argc == 4 && strcmp(argv[1], "--retry") == 0) {
		char *end;
		retry_s = strtol(argv[2], &end, 10);
		if (*end || retry_s < 0 || retry_s > 3600)
			retry_s = -1;
		i = 3;
	}
	if (retry_s < 0 || argc != i + 1 || url_parse(argv[i], &u) != 0) {
		fprintf(stderr, "usage: weir-probe [--retry SECONDS] http://host[:port]/path\n");
		return 2;
	}
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (probe_once(argv[i], &u) == 0)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= retry_s)
			return 1;
		sleep(1);
	}
}
