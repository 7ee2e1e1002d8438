/* proxy/resolve.c - getaddrinfo_a lookups reported through an eventfd. */
#include "resolve.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "error.h"

#define NAME_MAX_LEN 253u

struct cache_slot {
	char name[NAME_MAX_LEN + 1]; /* "" when empty */
	char address[RESOLVE_ADDR_MAX];
	uint64_t expires;
};

struct resolver {
	struct loop *loop;
	struct cache_slot slots[RESOLVE_CACHE_SLOTS];
};

/* Shared by the loop side and glibc's notification thread: each drops one
 * reference, the last frees it. A successfully cancelled lookup is never
 * notified, so cancelling then drops both. */
struct resolve_query {
	atomic_int refs;
	int efd; /* written by the notification, watched by the loop */
	struct loop_io io;
	struct resolver *r;
	resolve_cb cb;
	resolve_all_cb all_cb; /* instead of cb: resolver_lookup_all */
	void *data;
	bool watched;
	char name[NAME_MAX_LEN + 1];
	struct addrinfo hints;
	struct gaicb gcb;
	struct sigevent sev;
};

static void query_unref(struct resolve_query *q)
{
	if (atomic_fetch_sub(&q->refs, 1) != 1)
		return;
	if (q->gcb.ar_result)
		freeaddrinfo(q->gcb.ar_result);
	close(q->efd);
	free(q);
}

/* glibc's notification thread. */
static void on_notify(union sigval sv)
{
	struct resolve_query *q = sv.sival_ptr;
	uint64_t one = 1;
	ssize_t w = write(q->efd, &one, sizeof(one));
	(void)w; /* an eventfd write of 1 cannot fail short of overflow */
	query_unref(q);
}

static void cache_put(struct resolver *r, const char *name, const char *address)
{
	struct cache_slot *victim = &r->slots[0];
	for (size_t i = 0; i < RESOLVE_CACHE_SLOTS; i++) {
		struct cache_slot *s = &r->slots[i];
		if (strcmp(s->name, name) == 0 || !s->name[0]) {
			victim = s;
			break;
		}
		if (s->expires < victim->expires)
			victim = s;
	}
	strcpy(victim->name, name);
	strcpy(victim->address, address);
	victim->expires = loop_now(r->loop) + RESOLVE_TTL_MS;
}

/* The answer of a resolver_lookup_all query, duplicates left out. */
static void report_all(struct resolve_query *q)
{
	char addrs[RESOLVE_ADDRS_MAX][RESOLVE_ADDR_MAX];
	size_t n = 0;
	if (gai_error(&q->gcb) == 0) {
		for (struct addrinfo *ai = q->gcb.ar_result; ai && n < RESOLVE_ADDRS_MAX;
		     ai = ai->ai_next) {
			const void *a = NULL;
			if (ai->ai_family == AF_INET)
				a = &((struct sockaddr_in *)ai->ai_addr)->sin_addr;
			else if (ai->ai_family == AF_INET6)
				a = &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
			if (!a || !inet_ntop(ai->ai_family, a, addrs[n], sizeof(addrs[n])))
				continue;
			bool seen = false;
			for (size_t i = 0; i < n && !seen; i++)
				seen = strcmp(addrs[i], addrs[n]) == 0;
			if (!seen)
				n++;
		}
	}
	q->all_cb(q->data, n ? 0 : WEIR_ENOENT, addrs, n);
}

static void on_ready(struct loop_io *io, uint32_t events)
{
	struct resolve_query *q = io->data;
	uint64_t n;
	if (read(q->efd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return; /* not yet: a spurious wake-up */
	loop_io_del(q->r->loop, &q->io);
	q->watched = false;
	if (q->all_cb) {
		report_all(q);
		query_unref(q);
		return;
	}
	char address[RESOLVE_ADDR_MAX] = "";
	int rc = WEIR_ENOENT;
	if (gai_error(&q->gcb) == 0) {
		for (struct addrinfo *ai = q->gcb.ar_result; ai && rc; ai = ai->ai_next) {
			const void *a = NULL;
			if (ai->ai_family == AF_INET)
				a = &((struct sockaddr_in *)ai->ai_addr)->sin_addr;
			else if (ai->ai_family == AF_INET6)
				a = &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
			if (a && inet_ntop(ai->ai_family, a, address, sizeof(address)))
				rc = 0;
		}
	}
	if (rc == 0)
		cache_put(q->r, q->name, address);
	q->cb(q->data, rc, rc == 0 ? address : NULL);
	query_unref(q);
}

static int start_query(struct resolver *r, const char *name, resolve_cb cb, resolve_all_cb all_cb,
                       void *data, struct resolve_query **out);

int resolver_new(struct loop *loop, struct resolver **out)
{
	struct resolver *r = calloc(1, sizeof(*r));
	if (!r)
		return WEIR_ENOMEM;
	r->loop = loop;
	*out = r;
	return 0;
}

void resolver_free(struct resolver *r)
{
	free(r);
}

int resolver_lookup(struct resolver *r, const char *host, size_t host_len, resolve_cb cb,
                    void *data, char *address, struct resolve_query **out)
{
	int rc = WEIR_EINVAL;
	if (host_len == 0 || host_len > NAME_MAX_LEN)
		return rc;
	char name[NAME_MAX_LEN + 1];
	memcpy(name, host, host_len);
	name[host_len] = '\0';
	uint64_t now = loop_now(r->loop);
	for (size_t i = 0; i < RESOLVE_CACHE_SLOTS; i++) {
		const struct cache_slot *s = &r->slots[i];
		if (s->name[0] && s->expires > now && strcmp(s->name, name) == 0) {
			strcpy(address, s->address);
			return 0;
		}
	}
	return start_query(r, name, cb, NULL, data, out);
}

int resolver_lookup_all(struct resolver *r, const char *name, resolve_all_cb cb, void *data,
                        struct resolve_query **out)
{
	if (!*name || strlen(name) > NAME_MAX_LEN)
		return WEIR_EINVAL;
	return start_query(r, name, NULL, cb, data, out);
}

/* Start a getaddrinfo_a lookup of name (checked by the caller) reported to
 * cb or all_cb. WEIR_EAGAIN with *out, else WEIR_ENOMEM or WEIR_EIO. */
static int start_query(struct resolver *r, const char *name, resolve_cb cb, resolve_all_cb all_cb,
                       void *data, struct resolve_query **out)
{
	int rc = WEIR_ENOMEM;
	struct resolve_query *q = calloc(1, sizeof(*q));
	if (!q)
		return rc;
	rc = WEIR_EIO;
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0)
		goto out_free;
	q->r = r;
	q->cb = cb;
	q->all_cb = all_cb;
	q->data = data;
	strcpy(q->name, name);
	q->hints.ai_family = AF_UNSPEC;
	q->hints.ai_socktype = SOCK_STREAM;
	q->gcb.ar_name = q->name;
	q->gcb.ar_request = &q->hints;
	q->io.fd = q->efd;
	q->io.cb = on_ready;
	q->io.data = q;
	if (loop_io_add(r->loop, &q->io, EPOLLIN) != 0)
		goto out_close;
	q->watched = true;
	q->sev.sigev_notify = SIGEV_THREAD;
	q->sev.sigev_notify_function = on_notify;
	q->sev.sigev_value.sival_ptr = q;
	atomic_init(&q->refs, 2);
	struct gaicb *list[1] = {&q->gcb};
	if (getaddrinfo_a(GAI_NOWAIT, list, 1, &q->sev) != 0) {
		loop_io_del(r->loop, &q->io);
		goto out_close;
	}
	*out = q;
	return WEIR_EAGAIN;
out_close:
	close(q->efd);
out_free:
	free(q);
	return rc;
}

void resolve_cancel(struct resolve_query *q)
{
	if (!q)
		return;
	if (q->watched)
		loop_io_del(q->r->loop, &q->io);
	q->watched = false;
	if (gai_cancel(&q->gcb) == EAI_CANCELED)
		query_unref(q); /* never notified: drop the notification's reference too */
	query_unref(q);
}
