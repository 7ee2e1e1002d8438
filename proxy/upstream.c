/* proxy/upstream.c - upstream connect and the per-worker idle pool. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "chan.h"
#include "error.h"
#include "upstream.h"

#define POOL_BUCKETS 256
#define POOL_IDLE_MS 60000

/* The idle connections to one key, with their count: a release checks the
 * key's cap without walking its connections. Freed with its last connection. */
struct upstream_key {
	struct upstream_key *next; /* in its bucket */
	struct upstream *idle;     /* most recently released first */
	uint32_t nidle;
	unsigned bucket;
	char key[]; /* NUL-terminated */
};

struct upstream_pool {
	struct loop *loop;
	struct upstream_key *buckets[POOL_BUCKETS];
};

static unsigned key_hash(const char *k)
{
	unsigned h = 2166136261u;
	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 16777619u;
	return h % POOL_BUCKETS;
}

int upstream_pool_new(struct loop *l, struct upstream_pool **out)
{
	struct upstream_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return WEIR_ENOMEM;
	p->loop = l;
	*out = p;
	return 0;
}

static void free_deferred(struct loop_defer *d)
{
	free(d->data);
}

static struct upstream_key *find_key(struct upstream_pool *p, const char *key, unsigned b)
{
	for (struct upstream_key *k = p->buckets[b]; k; k = k->next)
		if (strcmp(k->key, key) == 0)
			return k;
	return NULL;
}

static void free_key_if_empty(struct upstream_pool *p, struct upstream_key *k)
{
	if (k->nidle > 0)
		return;
	struct upstream_key **pp = &p->buckets[k->bucket];
	while (*pp != k)
		pp = &(*pp)->next;
	*pp = k->next;
	free(k);
}

/* Take u out of the idle pool; nothing when it is not in it. */
static void unlink_idle(struct upstream *u)
{
	struct upstream_key *k = u->idle_key;
	if (!k)
		return;
	if (u->prev)
		u->prev->next = u->next;
	else
		k->idle = u->next;
	if (u->next)
		u->next->prev = u->prev;
	u->next = u->prev = NULL;
	u->idle_key = NULL;
	k->nidle--;
	free_key_if_empty(u->pool, k);
}

static void close_now(struct upstream *u)
{
	if (u->closed)
		return;
	u->closed = true;
	loop_timer_cancel(u->pool->loop, &u->idle_timer);
	loop_io_del(u->pool->loop, &u->io);
	tls_sock_close(&u->sock);
	u->io.fd = -1;
	loop_defer(u->pool->loop, &u->defer, free_deferred, u);
}

void upstream_pool_free(struct upstream_pool *p)
{
	if (!p)
		return;
	for (unsigned b = 0; b < POOL_BUCKETS; b++) {
		while (p->buckets[b]) {
			struct upstream *u = p->buckets[b]->idle;
			unlink_idle(u); /* frees the key with its last connection */
			u->closed = true;
			loop_timer_cancel(p->loop, &u->idle_timer);
			loop_io_del(p->loop, &u->io);
			tls_sock_close(&u->sock);
			free(u);
		}
	}
	free(p);
}

static void on_io(struct loop_io *io, uint32_t events)
{
	struct upstream *u = io->data;
	if (u->closed)
		return;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		u->can_read = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		u->can_write = true;
	if (u->cb)
		u->cb(u, events);
}

static void on_idle_io(struct upstream *u, uint32_t events)
{
	/* An idle connection has nothing to say: data or a close ends it (a
	 * late EPOLLOUT edge alone means nothing). */
	if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		return;
	unlink_idle(u);
	close_now(u);
}

static void on_idle_timer(struct loop_timer *t)
{
	struct upstream *u = t->data;
	unlink_idle(u);
	close_now(u);
}

/* The SNI and name are host names or IP literals (no '|'); a key that does
 * not fit is cut, which can only make two setups share a key when they agree
 * on everything but bytes past 256 of a name (names are at most 253). */
/* Append at most max bytes of s to key[*at..cap-1), as snprintf would
 * (every request makes a key: no format parsing). */
static void key_put(char *key, size_t cap, size_t *at, const char *s, size_t max)
{
	for (size_t i = 0; i < max && s[i] && *at + 1 < cap; i++)
		key[(*at)++] = s[i];
}

static void make_key(char *key, size_t cap, const struct route_endpoint *ep,
                     const struct backend_tls_target *tls)
{
	char port[BUF_DEC_MAX];
	size_t at = 0;
	buf_dec_u64(port, ep->port);
	key_put(key, cap, &at, ep->address, SIZE_MAX);
	key_put(key, cap, &at, "|", 1);
	key_put(key, cap, &at, port, SIZE_MAX);
	if (!tls) {
		key_put(key, cap, &at, "|0", 2);
	} else {
		key_put(key, cap, &at, "|1|", 3);
		key_put(key, cap, &at, tls->id ? tls->id : "", SIZE_MAX);
		key_put(key, cap, &at, "|", 1);
		key_put(key, cap, &at, tls->sni ? tls->sni : "-", 256);
		key_put(key, cap, &at, "|", 1);
		key_put(key, cap, &at, tls->name ? tls->name : "-", 256);
	}
	if (cap > 0)
		key[at] = '\0';
}

static const struct backend_tls_target builtin_tls = {NULL, "", NULL, NULL};

int upstream_connect(struct upstream_pool *p, const struct route_endpoint *ep, bool tls,
                     upstream_event_cb cb, void *data, struct upstream **out, int *errno_out)
{
	return upstream_connect_tls(p, ep, tls ? &builtin_tls : NULL, cb, data, out, errno_out);
}

int upstream_connect_tls(struct upstream_pool *p, const struct route_endpoint *ep,
                         const struct backend_tls_target *tls, upstream_event_cb cb, void *data,
                         struct upstream **out, int *errno_out)
{
	int rc = WEIR_ENOMEM;
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	*errno_out = 0;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, ep->address, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(ep->port);
		sl = sizeof(*sin);
	} else if (inet_pton(AF_INET6, ep->address, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(ep->port);
		sl = sizeof(*sin6);
	} else {
		*errno_out = EINVAL;
		return WEIR_EINVAL;
	}
	struct upstream *u = calloc(1, sizeof(*u));
	if (!u)
		goto out;
	u->pool = p;
	u->sock.fd = -1;
	u->io.fd = -1;
	loop_timer_init(&u->idle_timer, on_idle_timer, u);
	make_key(u->key, sizeof(u->key), ep, tls);
	rc = WEIR_EIO;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*errno_out = errno;
		goto out_free;
	}
	u->sock.fd = fd;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&ss, sl) == 0) {
		u->connected = true;
	} else if (errno != EINPROGRESS) {
		*errno_out = errno;
		goto out_close;
	}
	if (tls) {
		u->sock.ssl = backend_tls_client_new(tls, fd);
		if (!u->sock.ssl) {
			rc = WEIR_ENOMEM;
			goto out_close;
		}
	}
	u->io.fd = fd;
	u->io.cb = on_io;
	u->io.data = u;
	u->cb = cb;
	u->data = data;
	if (loop_io_add(p->loop, &u->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) != 0) {
		*errno_out = errno;
		goto out_close;
	}
	*out = u;
	return 0;
out_close:
	tls_sock_close(&u->sock);
out_free:
	free(u);
out:
	return rc;
}

int upstream_adopt_chan(struct upstream_pool *p, struct chan *ch, upstream_event_cb cb, void *data,
                        struct upstream **out)
{
	struct upstream *u = calloc(1, sizeof(*u));
	if (!u) {
		chan_close(ch, CHAN_B);
		return WEIR_ENOMEM;
	}
	u->pool = p;
	u->sock.fd = -1;
	u->sock.chan = ch;
	u->connected = true;
	loop_timer_init(&u->idle_timer, on_idle_timer, u);
	strcpy(u->key, "chan"); /* never pooled (upstream_release): h2up's answers close */
	u->io.fd = -1;
	u->io.cb = on_io;
	u->io.data = u;
	u->cb = cb;
	u->data = data;
	chan_watch(ch, CHAN_B, &u->io);
	*out = u;
	return 0;
}

int upstream_get(struct upstream_pool *p, const struct route_endpoint *ep, bool tls,
                 upstream_event_cb cb, void *data, struct upstream **out, int *errno_out)
{
	return upstream_get_tls(p, ep, tls ? &builtin_tls : NULL, cb, data, out, errno_out);
}

int upstream_get_tls(struct upstream_pool *p, const struct route_endpoint *ep,
                     const struct backend_tls_target *tls, upstream_event_cb cb, void *data,
                     struct upstream **out, int *errno_out)
{
	char key[UPSTREAM_KEY_MAX];
	make_key(key, sizeof(key), ep, tls);
	struct upstream_key *k = find_key(p, key, key_hash(key));
	if (k) {
		struct upstream *u = k->idle;
		unlink_idle(u);
		loop_timer_cancel(p->loop, &u->idle_timer);
		u->cb = cb;
		u->data = data;
		u->reused = true;
		/* A pooled plain socket was drained when released, and any byte or
		 * FIN since would have raised an edge that closed it (on_idle_io):
		 * the response will raise a fresh edge, so do not read before it
		 * (that read would only return EAGAIN). TLS may hold buffered
		 * records, so try it. Writing is allowed until it blocks. */
		u->can_read = u->sock.ssl != NULL;
		u->can_write = true;
		*out = u;
		*errno_out = 0;
		return 0;
	}
	return upstream_connect_tls(p, ep, tls, cb, data, out, errno_out);
}

int upstream_connect_error(struct upstream *u)
{
	int err = 0;
	socklen_t l = sizeof(err);
	if (getsockopt(u->sock.fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
		return errno;
	return err;
}

void upstream_release(struct upstream *u, bool reusable, uint32_t max_idle)
{
	struct upstream_pool *p = u->pool;
	if (u->closed)
		return;
	if (reusable && max_idle > 0 && u->connected && !u->sock.chan) {
		/* A peer that already closed or sent stray bytes is not reused. With
		 * can_read clear the owner saw the plain socket drained and no edge
		 * since (a later byte or FIN raises an edge, which on_idle_io turns
		 * into a close), so the probe is only needed otherwise. */
		char c;
		ssize_t n = -1;
		errno = EAGAIN;
		if (u->can_read || u->sock.ssl)
			n = recv(u->sock.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			unsigned b = key_hash(u->key);
			struct upstream_key *k = find_key(p, u->key, b);
			if (!k) {
				size_t len = strlen(u->key);
				k = calloc(1, sizeof(*k) + len + 1);
				if (k) {
					memcpy(k->key, u->key, len + 1);
					k->bucket = b;
					k->next = p->buckets[b];
					p->buckets[b] = k;
				}
			}
			if (k && k->nidle < max_idle &&
			    loop_timer_set(p->loop, &u->idle_timer, POOL_IDLE_MS) == 0) {
				u->cb = on_idle_io;
				u->data = NULL;
				u->prev = NULL;
				u->next = k->idle;
				if (u->next)
					u->next->prev = u;
				k->idle = u;
				k->nidle++;
				u->idle_key = k;
				return;
			}
			if (k)
				free_key_if_empty(p, k);
		}
	}
	close_now(u);
}

void upstream_close(struct upstream *u)
{
	close_now(u);
}

void upstream_detach(struct upstream *u, struct tls_sock *sock)
{
	loop_io_del(u->pool->loop, &u->io);
	loop_timer_cancel(u->pool->loop, &u->idle_timer);
	*sock = u->sock;
	u->sock.fd = -1;
	u->sock.ssl = NULL;
	u->sock.chan = NULL;
	u->closed = true;
	u->io.fd = -1;
	loop_defer(u->pool->loop, &u->defer, free_deferred, u);
}
