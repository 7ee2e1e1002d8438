/* Unit test: k8s_client's connection pool against a small keep-alive HTTP server on loopback.
 * The pages of a list (consecutive streams) and plain requests share one connection; a stream
 * that did not run to its end (aborted by its callback, stopped, timed out) leaves nothing
 * behind: the next call gets its own response, on a new connection. */
#include "controller/k8s_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "common/error.h"
#include "controller/k8s_config.h"

struct server {
	int lfd;
	atomic_bool stop;
	atomic_int accepts;
	atomic_int requests;
	pthread_t thread;
};

static struct server sv;

static void send_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

static void reply(int fd, int code, const char *body)
{
	char head[256];

	snprintf(head, sizeof(head),
	         "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
	         code, strlen(body));
	send_all(fd, head, strlen(head));
	send_all(fd, body, strlen(body));
}

/* Promise a large body, send a little of it, then wait for the client to give up. */
static void reply_unfinished(int fd)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	                           "Content-Length: 1000000\r\n\r\n[\"unfinished\",";
	char b[256];

	send_all(fd, head, sizeof(head) - 1);
	for (int i = 0; i < 100 && !atomic_load(&sv.stop); i++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (poll(&p, 1, 100) > 0 && recv(fd, b, sizeof(b), 0) <= 0)
			return;
	}
}

/* Serve requests on one connection until the client closes it. */
static void *conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char req[4096], path[1024];
	size_t len = 0;

	for (;;) {
		char *end;

		req[len] = '\0';
		while (!(end = strstr(req, "\r\n\r\n"))) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			ssize_t n;

			if (len == sizeof(req) - 1 || poll(&p, 1, 5000) <= 0)
				goto out;
			n = recv(fd, req + len, sizeof(req) - 1 - len, 0);
			if (n <= 0)
				goto out;
			len += (size_t)n;
			req[len] = '\0';
		}
		if (sscanf(req, "GET %1023s ", path) != 1)
			goto out;
		atomic_fetch_add(&sv.requests, 1);
		end += 4;
		len -= (size_t)(end - req);
		memmove(req, end, len);
		if (strncmp(path, "/page/", 6) == 0) {
			char body[1100];

			snprintf(body, sizeof(body), "{\"page\":\"%s\"}", path + 6);
			reply(fd, 200, body);
		} else if (strcmp(path, "/gone") == 0) {
			reply(fd, 410, "{\"kind\":\"Status\",\"code\":410}");
		} else if (strcmp(path, "/unfinished") == 0) {
			reply_unfinished(fd);
			goto out;
		} else {
			reply(fd, 404, "{}");
		}
	}
out:
	close(fd);
	return NULL;
}

static void *accept_main(void *arg)
{
	pthread_t conns[64];
	int nconns = 0;

	(void)arg;
	while (!atomic_load(&sv.stop)) {
		struct pollfd p = {.fd = sv.lfd, .events = POLLIN};
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(sv.lfd, NULL, NULL);
		if (fd < 0)
			continue;
		atomic_fetch_add(&sv.accepts, 1);
		if (nconns == 64 ||
		    pthread_create(&conns[nconns], NULL, conn_main, (void *)(intptr_t)fd) != 0) {
			close(fd);
			continue;
		}
		nconns++;
	}
	for (int i = 0; i < nconns; i++)
		pthread_join(conns[i], NULL);
	return NULL;
}

struct sink {
	char data[256];
	size_t len;
	int abort_with; /* non-zero: return it from the first chunk */
	atomic_bool *stop_on_data;
};

static int sink_cb(void *arg, const char *data, size_t len)
{
	struct sink *s = arg;

	if (s->abort_with)
		return s->abort_with;
	if (s->stop_on_data)
		atomic_store(s->stop_on_data, true);
	if (len > sizeof(s->data) - 1 - s->len)
		len = sizeof(s->data) - 1 - s->len;
	memcpy(s->data + s->len, data, len);
	s->len += len;
	s->data[s->len] = '\0';
	return 0;
}

/* A stream of path; returns its rc, its body (2xx) or error body into s->data. */
static int get_stream(struct k8s_client *c, const char *path, long max_seconds,
                      const atomic_bool *stop, struct sink *s, long *status)
{
	char *errbody = NULL;
	int rc;

	s->len = 0;
	s->data[0] = '\0';
	rc = k8s_stream(c, path, max_seconds, sink_cb, s, stop, status, &errbody);
	if (errbody)
		snprintf(s->data, sizeof(s->data), "%s", errbody);
	free(errbody);
	return rc;
}

int main(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	struct k8s_config *cfg = NULL;
	struct k8s_client *c = NULL;
	char kc[] = "/tmp/weir-k8s-client-test-XXXXXX", err[256], *resp = NULL;
	struct sink s = {0};
	atomic_bool stop = false;
	long status;
	int fd;

	sv.lfd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_INT(bind(sv.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CHECK_INT(listen(sv.lfd, 64), 0);
	getsockname(sv.lfd, (struct sockaddr *)&sa, &sl);
	CHECK_INT(pthread_create(&sv.thread, NULL, accept_main, NULL), 0);

	fd = mkstemp(kc);
	CHECK(fd >= 0);
	dprintf(fd,
	        "current-context: t\nclusters: [{name: c, cluster: {server: "
	        "'http://127.0.0.1:%d'}}]\ncontexts: [{name: t, context: {cluster: c}}]\n",
	        ntohs(sa.sin_port));
	close(fd);
	CHECK_INT(k8s_config_load(kc, &cfg, err, sizeof(err)), 0);
	unlink(kc);
	if (!cfg)
		goto out;
	CHECK_INT(k8s_client_new(cfg, &c), 0);

	/* The pages of a list, one after another: one connection. */
	for (int i = 0; i < 3; i++) {
		char path[32], want[64];

		snprintf(path, sizeof(path), "/page/%d", i);
		snprintf(want, sizeof(want), "{\"page\":\"%d\"}", i);
		CHECK_INT(get_stream(c, path, 10, NULL, &s, &status), 0);
		CHECK_INT(status, 200);
		CHECK_STR(s.data, want);
	}
	CHECK_INT(atomic_load(&sv.requests), 3);
	CHECK_INT(atomic_load(&sv.accepts), 1);

	/* A plain request and an error status keep it too. */
	CHECK_INT(k8s_request(c, "GET", "/page/r", NULL, NULL, &status, &resp), 0);
	CHECK_INT(status, 200);
	CHECK_STR(resp, "{\"page\":\"r\"}");
	free(resp);
	resp = NULL;
	CHECK_INT(get_stream(c, "/gone", 10, NULL, &s, &status), 0);
	CHECK_INT(status, 410);
	CHECK_STR(s.data, "{\"kind\":\"Status\",\"code\":410}");
	CHECK_INT(atomic_load(&sv.accepts), 1);

	/* Aborted by its callback halfway through a body: the rest of that body must not reach
	 * the next call, which gets a connection of its own. */
	s.abort_with = WEIR_EPARSE;
	CHECK_INT(get_stream(c, "/unfinished", 10, NULL, &s, &status), WEIR_EPARSE);
	s.abort_with = 0;
	CHECK_INT(get_stream(c, "/page/after-abort", 10, NULL, &s, &status), 0);
	CHECK_STR(s.data, "{\"page\":\"after-abort\"}");
	CHECK_INT(atomic_load(&sv.accepts), 2);

	/* Stopped halfway (the stop flag set once data arrived). */
	s.stop_on_data = &stop;
	CHECK_INT(get_stream(c, "/unfinished", 10, &stop, &s, &status), WEIR_ECANCELED);
	s.stop_on_data = NULL;
	CHECK_INT(get_stream(c, "/page/after-stop", 10, NULL, &s, &status), 0);
	CHECK_STR(s.data, "{\"page\":\"after-stop\"}");
	CHECK_INT(atomic_load(&sv.accepts), 3);

	/* Timed out halfway. */
	CHECK_INT(get_stream(c, "/unfinished", 1, NULL, &s, &status), WEIR_ETIMEDOUT);
	CHECK_INT(k8s_request(c, "GET", "/page/after-timeout", NULL, NULL, &status, &resp), 0);
	CHECK_STR(resp, "{\"page\":\"after-timeout\"}");
	free(resp);
	CHECK_INT(atomic_load(&sv.accepts), 4);
	CHECK_INT(atomic_load(&sv.requests), 11);
out:
	k8s_client_free(c);
	k8s_config_free(cfg);
	atomic_store(&sv.stop, true);
	pthread_join(sv.thread, NULL);
	close(sv.lfd);
	return check_finish("k8s_client_test");
}
