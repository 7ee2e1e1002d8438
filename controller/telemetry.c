/* controller/telemetry.c - counters, gauges and the compile-time histogram of the controller,
 * served as Prometheus text with /healthz by one small poll(2)-based HTTP/1.0-style server
 * thread (one request per connection, then close). */
#include "telemetry.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "log.h"

#define KINDS_MAX 16
#define KIND_NAME_MAX 32
#define REQ_MAX 8192
#define CLIENTS_MAX 32
#define CLIENT_TIMEOUT_MS 5000

static const char *const LOG_C = "controller.telemetry";

static const double compile_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof(compile_buckets) / sizeof(compile_buckets[0]))

struct kind_stats {
	char name[KIND_NAME_MAX];
	unsigned long long restarts, relists;
	unsigned long long objects;
	bool has_objects;
};

static struct {
	pthread_mutex_t mu;
	struct kind_stats kinds[KINDS_MAX];
	int nkinds;
	unsigned long long bucket[NBUCKETS]; /* non-cumulative counts */
	unsigned long long compile_count;
	double compile_sum;
	uint64_t published;
} tm = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* With tm.mu held. NULL when the table is full. Kind names match case-insensitively
 * ("Ingress" and "ingress" are one series, labelled as first seen). */
static struct kind_stats *kind_get(const char *kind)
{
	for (int i = 0; i < tm.nkinds; i++)
		if (strcasecmp(tm.kinds[i].name, kind) == 0)
			return &tm.kinds[i];
	if (tm.nkinds == KINDS_MAX)
		return NULL;
	snprintf(tm.kinds[tm.nkinds].name, KIND_NAME_MAX, "%s", kind);
	return &tm.kinds[tm.nkinds++];
}

void telemetry_watch_restart(const char *kind)
{
	struct kind_stats *k;

	pthread_mutex_lock(&tm.mu);
	k = kind_get(kind);
	if (k)
		k->restarts++;
	pthread_mutex_unlock(&tm.mu);
}

void telemetry_relist(const char *kind)
{
	struct kind_stats *k;

	pthread_mutex_lock(&tm.mu);
	k = kind_get(kind);
	if (k)
		k->relists++;
	pthread_mutex_unlock(&tm.mu);
}

void telemetry_objects(const char *kind, size_t n)
{
	struct kind_stats *k;

	pthread_mutex_lock(&tm.mu);
	k = kind_get(kind);
	if (k) {
		k->objects = n;
		k->has_objects = true;
	}
	pthread_mutex_unlock(&tm.mu);
}

void telemetry_compile_seconds(double s)
{
	if (!(s >= 0)) /* NaN or negative: not a duration */
		return;
	pthread_mutex_lock(&tm.mu);
	tm.compile_count++;
	tm.compile_sum += s;
	for (size_t i = 0; i < NBUCKETS; i++) {
		if (s <= compile_buckets[i]) {
			tm.bucket[i]++;
			break;
		}
	}
	pthread_mutex_unlock(&tm.mu);
}

void telemetry_published(uint64_t generation)
{
	pthread_mutex_lock(&tm.mu);
	tm.published = generation;
	pthread_mutex_unlock(&tm.mu);
}

/* Growable output for the text exposition (control plane: abort on OOM is allowed, but we
 * report it instead since the caller can answer 500). */
struct out {
	char *p;
	size_t len, cap;
	bool oom;
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->p ? o->p + o->len : NULL, o->p ? o->cap - o->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->oom = true;
			return;
		}
		if (o->p && (size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		size_t ncap = o->cap ? o->cap * 2 : 4096;
		while (ncap < o->len + (size_t)n + 1)
			ncap *= 2;
		char *np = realloc(o->p, ncap);
		if (!np) {
			o->oom = true;
			return;
		}
		o->p = np;
		o->cap = ncap;
	}
}

/* Kind names come from our own code, but escape label values anyway. */
static void out_label(struct out *o, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			outf(o, "\\%c", *v);
		else if (*v == '\n')
			outf(o, "\\n");
		else
			outf(o, "%c", *v);
	}
}

int telemetry_render(char **out)
{
	struct out o = {0};
	unsigned long long cum = 0;

	*out = NULL;
	pthread_mutex_lock(&tm.mu);
	outf(&o, "# HELP weir_controller_watch_restarts_total Watches of a kind that ended and "
	         "were restarted.\n# TYPE weir_controller_watch_restarts_total counter\n");
	for (int i = 0; i < tm.nkinds; i++) {
		outf(&o, "weir_controller_watch_restarts_total{kind=\"");
		out_label(&o, tm.kinds[i].name);
		outf(&o, "\"} %llu\n", tm.kinds[i].restarts);
	}
	outf(&o, "# HELP weir_controller_relists_total Full lists of a kind after the first "
	         "(watch expired or failed).\n# TYPE weir_controller_relists_total counter\n");
	for (int i = 0; i < tm.nkinds; i++) {
		outf(&o, "weir_controller_relists_total{kind=\"");
		out_label(&o, tm.kinds[i].name);
		outf(&o, "\"} %llu\n", tm.kinds[i].relists);
	}
	outf(&o, "# HELP weir_controller_objects Objects of a kind in the store.\n"
	         "# TYPE weir_controller_objects gauge\n");
	for (int i = 0; i < tm.nkinds; i++) {
		if (!tm.kinds[i].has_objects)
			continue;
		outf(&o, "weir_controller_objects{kind=\"");
		out_label(&o, tm.kinds[i].name);
		outf(&o, "\"} %llu\n", tm.kinds[i].objects);
	}
	outf(&o, "# HELP weir_controller_compile_seconds Time to compile a snapshot into a route "
	         "table.\n# TYPE weir_controller_compile_seconds histogram\n");
	for (size_t i = 0; i < NBUCKETS; i++) {
		cum += tm.bucket[i];
		outf(&o, "weir_controller_compile_seconds_bucket{le=\"%g\"} %llu\n",
		     compile_buckets[i], cum);
	}
	outf(&o, "weir_controller_compile_seconds_bucket{le=\"+Inf\"} %llu\n", tm.compile_count);
	outf(&o, "weir_controller_compile_seconds_sum %.9g\n", tm.compile_sum);
	outf(&o, "weir_controller_compile_seconds_count %llu\n", tm.compile_count);
	outf(&o,
	     "# HELP weir_controller_published_generation Generation of the last published "
	     "route table.\n# TYPE weir_controller_published_generation gauge\n"
	     "weir_controller_published_generation %llu\n",
	     (unsigned long long)tm.published);
	pthread_mutex_unlock(&tm.mu);
	if (o.oom) {
		free(o.p);
		return WEIR_ENOMEM;
	}
	*out = o.p;
	return 0;
}

/* ---- HTTP server ---- */

struct client {
	int fd;
	char in[REQ_MAX];
	size_t inlen;
	char *outbuf;
	size_t outlen, outoff;
	struct timespec deadline;
};

static struct {
	pthread_mutex_t mu; /* start/stop */
	bool running;
	int listen_fd;
	int wake[2];
	int port;
	pthread_t thread;
	struct client clients[CLIENTS_MAX];
	int nclients;
} srv = {.mu = PTHREAD_MUTEX_INITIALIZER, .listen_fd = -1, .wake = {-1, -1}, .port = -1};

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void client_close(int i)
{
	close(srv.clients[i].fd);
	free(srv.clients[i].outbuf);
	srv.clients[i] = srv.clients[--srv.nclients];
}

static void respond(struct client *cl, int code, const char *reason, const char *ctype,
                    const char *body)
{
	size_t blen = strlen(body);

	free(cl->outbuf);
	cl->outbuf = NULL;
	if (asprintf(&cl->outbuf,
	             "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	             "Connection: close\r\nCache-Control: no-store\r\n\r\n%s",
	             code, reason, ctype, blen, body) < 0) {
		cl->outbuf = NULL;
		cl->outlen = 0;
		return;
	}
	cl->outlen = strlen(cl->outbuf);
	cl->outoff = 0;
}

/* A full request head is in cl->in: decide the answer. */
static void handle_request(struct client *cl)
{
	char method[16], target[512];
	char *metrics = NULL, *q;

	if (sscanf(cl->in, "%15s %511s HTTP/1.%*c", method, target) != 2) {
		respond(cl, 400, "Bad Request", "text/plain", "bad request\n");
		return;
	}
	q = strchr(target, '?');
	if (q)
		*q = '\0';
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		respond(cl, 405, "Method Not Allowed", "text/plain", "method not allowed\n");
		return;
	}
	if (strcmp(target, "/healthz") == 0) {
		respond(cl, 200, "OK", "text/plain", strcmp(method, "HEAD") ? "ok" : "");
	} else if (strcmp(target, "/metrics") == 0) {
		if (telemetry_render(&metrics)) {
			respond(cl, 500, "Internal Server Error", "text/plain", "out of memory\n");
			return;
		}
		respond(cl, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
		        strcmp(method, "HEAD") ? metrics : "");
		free(metrics);
	} else {
		respond(cl, 404, "Not Found", "text/plain", "not found\n");
	}
}

static void client_readable(int i)
{
	struct client *cl = &srv.clients[i];
	ssize_t n;

	if (cl->outbuf)
		return; /* answer decided; ignore anything more */
	n = read(cl->fd, cl->in + cl->inlen, sizeof(cl->in) - 1 - cl->inlen);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		client_close(i);
		return;
	}
	cl->inlen += (size_t)n;
	cl->in[cl->inlen] = '\0';
	if (strstr(cl->in, "\r\n\r\n") || strstr(cl->in, "\n\n"))
		handle_request(cl);
	else if (cl->inlen >= sizeof(cl->in) - 1)
		respond(cl, 431, "Request Header Fields Too Large", "text/plain",
		        "request too large\n");
}

/* Returns true when the client was closed. */
static bool client_writable(int i)
{
	struct client *cl = &srv.clients[i];
	ssize_t n = send(cl->fd, cl->outbuf + cl->outoff, cl->outlen - cl->outoff, MSG_NOSIGNAL);

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return false;
		client_close(i);
		return true;
	}
	cl->outoff += (size_t)n;
	if (cl->outoff == cl->outlen) {
		shutdown(cl->fd, SHUT_WR);
		client_close(i);
		return true;
	}
	return false;
}

static void *server_main(void *arg)
{
	struct pollfd pfd[CLIENTS_MAX + 2];

	for (;;) {
		long now = now_ms();
		int n = 0;

		pfd[n++] = (struct pollfd){.fd = srv.wake[0], .events = POLLIN};
		pfd[n++] = (struct pollfd){.fd = srv.listen_fd,
		                           .events = srv.nclients < CLIENTS_MAX ? POLLIN : 0};
		for (int i = 0; i < srv.nclients; i++)
			pfd[n++] =
			    (struct pollfd){.fd = srv.clients[i].fd,
			                    .events = srv.clients[i].outbuf ? POLLOUT : POLLIN};
		if (poll(pfd, (nfds_t)n, 250) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			break; /* telemetry_stop */
		/* Clients first, from the end, so closing (swap-with-last) keeps indexes valid. */
		for (int i = srv.nclients - 1; i >= 0; i--) {
			short re = pfd[2 + i].revents;
			struct client *cl = &srv.clients[i];
			long deadline =
			    cl->deadline.tv_sec * 1000L + cl->deadline.tv_nsec / 1000000L;

			if (re & (POLLERR | POLLNVAL)) {
				client_close(i);
				continue;
			}
			if ((re & POLLOUT) && client_writable(i))
				continue;
			if (re & (POLLIN | POLLHUP))
				client_readable(i);
			else if (now > deadline)
				client_close(i); /* slow or idle client */
		}
		if (pfd[1].revents & POLLIN) {
			int fd = accept4(srv.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

			if (fd >= 0) {
				struct client *cl = &srv.clients[srv.nclients++];
				long d = now_ms() + CLIENT_TIMEOUT_MS;

				memset(cl, 0, sizeof(*cl));
				cl->fd = fd;
				cl->deadline.tv_sec = d / 1000;
				cl->deadline.tv_nsec = (d % 1000) * 1000000L;
			}
		}
	}
	while (srv.nclients)
		client_close(srv.nclients - 1);
	return NULL;
}

int telemetry_start(const char *addr, int port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd = -1, one = 1, rc = WEIR_EIO;

	pthread_mutex_lock(&srv.mu);
	if (srv.running) {
		rc = WEIR_EINVAL;
		goto out_unlock;
	}
	memset(&ss, 0, sizeof(ss));
	if (!addr || !addr[0])
		addr = "0.0.0.0";
	if (port < 0 || port > 65535) {
		rc = WEIR_EINVAL;
		goto out_unlock;
	}
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1) {
			rc = WEIR_EINVAL;
			goto out_unlock;
		}
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1) {
			rc = WEIR_EINVAL;
			goto out_unlock;
		}
		sl = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto out_unlock;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 64) != 0) {
		log_error(LOG_C, "cannot listen on %s:%d: %s", addr, port, strerror(errno));
		goto out_fd;
	}
	sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	srv.port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                          : ((struct sockaddr_in *)&ss)->sin_port);
	if (pipe2(srv.wake, O_CLOEXEC | O_NONBLOCK) != 0)
		goto out_fd;
	srv.listen_fd = fd;
	srv.nclients = 0;
	if (pthread_create(&srv.thread, NULL, server_main, NULL) != 0) {
		close(srv.wake[0]);
		close(srv.wake[1]);
		srv.listen_fd = -1;
		goto out_fd;
	}
	srv.running = true;
	log_info(LOG_C, "serving /healthz and /metrics on %s:%d", addr, srv.port);
	pthread_mutex_unlock(&srv.mu);
	return 0;
out_fd:
	close(fd);
	srv.port = -1;
out_unlock:
	pthread_mutex_unlock(&srv.mu);
	return rc;
}

int telemetry_port(void)
{
	int p;

	pthread_mutex_lock(&srv.mu);
	p = srv.running ? srv.port : -1;
	pthread_mutex_unlock(&srv.mu);
	return p;
}

void telemetry_stop(void)
{
	pthread_mutex_lock(&srv.mu);
	if (srv.running) {
		ssize_t w = write(srv.wake[1], "x", 1);

		(void)w;
		pthread_join(srv.thread, NULL);
		close(srv.listen_fd);
		close(srv.wake[0]);
		close(srv.wake[1]);
		srv.listen_fd = -1;
		srv.wake[0] = srv.wake[1] = -1;
		srv.port = -1;
		srv.running = false;
	}
	pthread_mutex_unlock(&srv.mu);
}
