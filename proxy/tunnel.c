/* proxy/tunnel.c - WebSocket / passthrough byte relay. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <openssl/rand.h>

#include "error.h"
#include "metrics.h"
#include "policy.h"
#include "table.h"
#include "tunnel.h"

#define CLOSE_GRACE_MS 1000
#define DRAIN_BOUNDARY_WAIT_MS 2000
#define RELAY_ROUNDS 16
#define PING_TOKEN_LEN 8
/* Room before the read in the scratch buffer: the frame bytes a filter holds back
 * (a header, plus a pong payload) are released in front of the fresh bytes. */
#define FILTER_HEADROOM 32

/* WebSocket frame tracking for one direction: where the next frame starts. */
struct ws_track {
	uint8_t hdr[14];
	uint8_t hdr_len;
	uint8_t need;
	uint64_t payload_left;
	bool hold_pong;               /* the frame being read is a pong to our ping */
	uint8_t pong[PING_TOKEN_LEN]; /* its payload so far */
	uint8_t pong_len;
	uint32_t pings_out; /* our pings to this side not yet answered */
};

/* One side of the tunnel. */
struct side {
	struct tls_sock sock;
	struct loop_io io;
	struct tunnel *t;
	bool can_read, can_write, eof;
	bool rdhup;    /* a hang-up or error was reported: read until EAGAIN */
	char *pending; /* bytes waiting to be written TO this side */
	size_t pend_off, pend_len;
	struct ws_track track; /* frames read FROM this side */
	bool close_sent;
};

struct tunnel {
	struct tunnel_worker *w;
	struct tunnel *next, *prev;
	struct side c, u; /* client, upstream */
	struct loop_timer timer;
	struct loop_defer defer;
	struct loop_defer resume;
	bool more; /* a relay stopped on its round budget, not on EAGAIN */
	uint64_t started, last_activity;
	uint64_t drain_at;  /* 0: not draining */
	uint64_t close_at;  /* 0: not closing; else the grace after close frames */
	uint64_t giveup_at; /* 0: none; draining but no frame boundary yet */
	bool draining_now;  /* close frames wanted */
	bool closed;
	bool websocket;
	uint32_t idle_ms, max_lifetime_ms;
	/* No route table reference: what the tunnel needs from its route is
	 * copied at the start, so a table swap frees the old table even while
	 * tunnels that started on it stay open. */
	uint64_t limit_slot; /* the connection count to give back; 0: none */
	uint32_t ping_ms, drain_window_ms;
	uint64_t last_ping;
	uint8_t ping_token[PING_TOKEN_LEN]; /* payload of our pings; their pongs are ours */
	char *backend_name;                 /* NULL: not followed */
	char ep_address[64];
	uint16_t ep_port;
};

static void tunnel_close(struct tunnel *t);
static void tunnel_progress(struct tunnel *t);
static void arm_timer(struct tunnel *t);

size_t tunnel_close_frame(unsigned char *out, bool masked, const unsigned char mask_key[4])
{
	static const char reason[] = "going away";
	unsigned char payload[2 + sizeof(reason) - 1];
	size_t plen = sizeof(payload);
	payload[0] = 1001 >> 8;
	payload[1] = 1001 & 0xff;
	memcpy(payload + 2, reason, sizeof(reason) - 1);
	size_t n = 0;
	out[n++] = 0x88; /* FIN + close */
	out[n++] = (unsigned char)((masked ? 0x80 : 0) | plen);
	if (masked) {
		memcpy(out + n, mask_key, 4);
		n += 4;
		for (size_t i = 0; i < plen; i++)
			out[n + i] = payload[i] ^ mask_key[i % 4];
	} else {
		memcpy(out + n, payload, plen);
	}
	return n + plen;
}

static void track(struct ws_track *tr, const unsigned char *b, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (tr->payload_left > 0) {
			size_t take = n - i;
			if (take > tr->payload_left)
				take = (size_t)tr->payload_left;
			tr->payload_left -= take;
			i += take;
			continue;
		}
		tr->hdr[tr->hdr_len++] = b[i++];
		if (tr->hdr_len == 2) {
			uint8_t l7 = tr->hdr[1] & 0x7f;
			tr->need = 2 +
			           (l7 == 126   ? 2
			            : l7 == 127 ? 8
			                        : 0) +
			           ((tr->hdr[1] & 0x80) ? 4 : 0);
		}
		if (tr->hdr_len >= 2 && tr->hdr_len == tr->need) {
			uint8_t l7 = tr->hdr[1] & 0x7f;
			uint64_t len = l7;
			if (l7 == 126)
				len = (uint64_t)tr->hdr[2] << 8 | tr->hdr[3];
			else if (l7 == 127) {
				len = 0;
				for (int k = 0; k < 8; k++)
					len = len << 8 | tr->hdr[2 + k];
			}
			tr->payload_left = len;
			tr->hdr_len = 0;
			tr->need = 0;
		}
	}
}

/* Filters the bytes read from a side in place: a pong that echoes our ping
 * token while a ping to that side is outstanding is dropped, every other byte
 * passes in order. Frame headers are held until complete, and such a pong until
 * its payload is complete, so out may run up to FILTER_HEADROOM bytes ahead of
 * in: the caller reads to b + FILTER_HEADROOM and gets the output at b. Returns
 * the output length. */
static size_t ws_filter(struct ws_track *tr, const uint8_t token[PING_TOKEN_LEN], unsigned char *b,
                        size_t n)
{
	const unsigned char *in = b + FILTER_HEADROOM;
	size_t i = 0, o = 0;
	while (i < n) {
		if (tr->payload_left > 0) {
			size_t take = n - i;
			if (take > tr->payload_left)
				take = (size_t)tr->payload_left;
			if (tr->hold_pong) {
				memcpy(tr->pong + tr->pong_len, in + i, take);
				tr->pong_len += (uint8_t)take;
			} else {
				memmove(b + o, in + i, take);
				o += take;
			}
			tr->payload_left -= take;
			i += take;
			if (tr->hold_pong && tr->payload_left == 0) {
				bool masked = tr->hdr[1] & 0x80;
				bool ours = true;
				for (size_t k = 0; k < PING_TOKEN_LEN; k++) {
					uint8_t v = tr->pong[k] ^ (masked ? tr->hdr[2 + k % 4] : 0);
					if (v != token[k])
						ours = false;
				}
				if (ours) {
					tr->pings_out--;
				} else {
					memcpy(b + o, tr->hdr, tr->need);
					o += tr->need;
					memcpy(b + o, tr->pong, tr->pong_len);
					o += tr->pong_len;
				}
				tr->hold_pong = false;
				tr->pong_len = 0;
				tr->hdr_len = 0;
				tr->need = 0;
			}
			continue;
		}
		tr->hdr[tr->hdr_len++] = in[i++];
		if (tr->hdr_len == 2) {
			uint8_t l7 = tr->hdr[1] & 0x7f;
			tr->need = 2 +
			           (l7 == 126   ? 2
			            : l7 == 127 ? 8
			                        : 0) +
			           ((tr->hdr[1] & 0x80) ? 4 : 0);
		}
		if (tr->hdr_len < 2 || tr->hdr_len != tr->need)
			continue;
		uint8_t l7 = tr->hdr[1] & 0x7f;
		uint64_t len = l7;
		if (l7 == 126)
			len = (uint64_t)tr->hdr[2] << 8 | tr->hdr[3];
		else if (l7 == 127) {
			len = 0;
			for (int k = 0; k < 8; k++)
				len = len << 8 | tr->hdr[2 + k];
		}
		tr->payload_left = len;
		if (tr->hdr[0] == 0x8A && len == PING_TOKEN_LEN && tr->pings_out > 0) {
			tr->hold_pong = true; /* the header stays in hdr until decided */
			continue;
		}
		memcpy(b + o, tr->hdr, tr->hdr_len);
		o += tr->hdr_len;
		tr->hdr_len = 0;
		tr->need = 0;
	}
	return o;
}

static bool at_boundary(const struct ws_track *tr)
{
	return tr->hdr_len == 0 && tr->payload_left == 0 && !tr->hold_pong;
}

static void free_deferred(struct loop_defer *d)
{
	free(d->data);
}

static void tunnel_close(struct tunnel *t)
{
	struct tunnel_worker *w = t->w;
	if (t->closed)
		return;
	t->closed = true;
	loop_timer_cancel(w->loop, &t->timer);
	loop_io_del(w->loop, &t->c.io);
	loop_io_del(w->loop, &t->u.io);
	tls_sock_close(&t->c.sock);
	tls_sock_close(&t->u.sock);
	free(t->c.pending);
	free(t->u.pending);
	t->c.pending = t->u.pending = NULL;
	if (t->prev)
		t->prev->next = t->next;
	else
		w->head = t->next;
	if (t->next)
		t->next->prev = t->prev;
	w->count--;
	if (t->websocket)
		metrics_tunnels(-1);
	policy_limit_leave_slot(t->limit_slot);
	t->limit_slot = 0;
	free(t->backend_name);
	t->backend_name = NULL;
	loop_defer(w->loop, &t->defer, free_deferred, t);
}

/* Write what is pending for side s; returns false when it must wait. */
static int flush_pending(struct side *s)
{
	while (s->pend_len > 0) {
		ssize_t n = tls_sock_write(&s->sock, s->pending + s->pend_off, s->pend_len);
		if (n == WEIR_EAGAIN) {
			s->can_write = false;
			return 0;
		}
		if (n < 0)
			return -1;
		s->pend_off += (size_t)n;
		s->pend_len -= (size_t)n;
	}
	free(s->pending);
	s->pending = NULL;
	s->pend_off = 0;
	return 1;
}

static int add_pending(struct side *s, const char *p, size_t n)
{
	if (n == 0)
		return 0;
	char *np = malloc(s->pend_len + n);
	if (!np)
		return WEIR_ENOMEM;
	if (s->pend_len)
		memcpy(np, s->pending + s->pend_off, s->pend_len);
	memcpy(np + s->pend_len, p, n);
	free(s->pending);
	s->pending = np;
	s->pend_off = 0;
	s->pend_len += n;
	return 0;
}

/* Relay from src to dst. Returns -1 when the tunnel must close. */
static int relay(struct tunnel *t, struct side *src, struct side *dst)
{
	struct tunnel_worker *w = t->w;
	for (int round = 0; round < RELAY_ROUNDS; round++) {
		if (dst->pend_len > 0) {
			int f = flush_pending(dst);
			if (f < 0)
				return -1;
			if (f == 0)
				return 0;
		}
		if (src->eof)
			return 0;
		if (!src->can_read && !(src->sock.ssl && SSL_pending(src->sock.ssl) > 0))
			return 0;
		size_t room = w->scratch_cap - FILTER_HEADROOM;
		ssize_t n = tls_sock_read(&src->sock, w->scratch + FILTER_HEADROOM, room);
		if (n == WEIR_EAGAIN) {
			if (src->sock.blocked_out)
				src->can_write = false;
			else
				src->can_read = false;
			return 0;
		}
		if (n <= 0) {
			src->eof = true;
			return 0;
		}
		/* A plain read short of the room drained the socket: the edge-triggered
		 * watch raises a new edge for new bytes, so no read is spent on EAGAIN.
		 * Not after a hang-up edge (a pending FIN raises none), nor for TLS (the
		 * library may hold decrypted bytes). */
		if (!src->sock.ssl && !src->rdhup && (size_t)n < room)
			src->can_read = false;
		t->last_activity = loop_now(w->loop);
		if (dst->close_sent) /* closing: nothing follows a close frame */
			continue;
		if (t->websocket)
			n = (ssize_t)ws_filter(&src->track, t->ping_token,
			                       (unsigned char *)w->scratch, (size_t)n);
		else
			memmove(w->scratch, w->scratch + FILTER_HEADROOM, (size_t)n);
		if (n == 0)
			continue;
		ssize_t m = tls_sock_write(&dst->sock, w->scratch, (size_t)n);
		if (m == WEIR_EAGAIN) {
			dst->can_write = false;
			m = 0;
		} else if (m < 0) {
			return -1;
		}
		if (m < n) {
			if (add_pending(dst, w->scratch + m, (size_t)(n - m)) != 0)
				return -1;
			return 0;
		}
	}
	t->more = true;
	return 0;
}

static void on_resume(struct loop_defer *d)
{
	struct tunnel *t = d->data;
	if (!t->closed)
		tunnel_progress(t);
}

static void try_inject_close(struct tunnel *t)
{
	unsigned char frame[32];
	unsigned char mask[4];
	/* To the client: after the last complete frame from the upstream. */
	if (!t->c.close_sent && at_boundary(&t->u.track) && t->c.pend_len == 0) {
		size_t n = tunnel_close_frame(frame, false, mask);
		if (add_pending(&t->c, (const char *)frame, n) == 0)
			t->c.close_sent = true;
	}
	if (!t->u.close_sent && at_boundary(&t->c.track) && t->u.pend_len == 0) {
		if (RAND_bytes(mask, 4) != 1)
			memset(mask, 0x5a, 4);
		size_t n = tunnel_close_frame(frame, true, mask);
		if (add_pending(&t->u, (const char *)frame, n) == 0)
			t->u.close_sent = true;
	}
	if (t->c.close_sent && t->u.close_sent && !t->close_at) {
		t->close_at = loop_now(t->w->loop) + CLOSE_GRACE_MS;
		arm_timer(t);
	}
}

#define PINGS_OUT_MAX 64

/* A ping to each side that sits at a frame boundary. Its payload is the
 * tunnel's token, so ws_filter can take the pong that answers it out of the
 * stream (it is ours, not the other side's). */
static void send_pings(struct tunnel *t)
{
	unsigned char mask[4];
	if (at_boundary(&t->u.track) && t->c.pend_len == 0 && !t->c.close_sent) {
		unsigned char frame[2 + PING_TOKEN_LEN] = {0x89, PING_TOKEN_LEN};
		memcpy(frame + 2, t->ping_token, PING_TOKEN_LEN);
		if (add_pending(&t->c, (const char *)frame, sizeof(frame)) == 0 &&
		    t->c.track.pings_out < PINGS_OUT_MAX)
			t->c.track.pings_out++;
	}
	if (at_boundary(&t->c.track) && t->u.pend_len == 0 && !t->u.close_sent) {
		unsigned char frame[6 + PING_TOKEN_LEN] = {0x89, 0x80 | PING_TOKEN_LEN};
		if (RAND_bytes(mask, 4) != 1)
			memset(mask, 0x5a, 4);
		memcpy(frame + 2, mask, 4);
		for (size_t k = 0; k < PING_TOKEN_LEN; k++)
			frame[6 + k] = t->ping_token[k] ^ mask[k % 4];
		if (add_pending(&t->u, (const char *)frame, sizeof(frame)) == 0 &&
		    t->u.track.pings_out < PINGS_OUT_MAX)
			t->u.track.pings_out++;
	}
	t->last_ping = loop_now(t->w->loop);
}

static void tunnel_progress(struct tunnel *t)
{
	if (t->closed)
		return;
	t->more = false;
	if (relay(t, &t->c, &t->u) < 0 || relay(t, &t->u, &t->c) < 0) {
		tunnel_close(t);
		return;
	}
	if (t->more)
		loop_defer(t->w->loop, &t->resume, on_resume, t);
	if (t->draining_now && !(t->c.close_sent && t->u.close_sent)) {
		try_inject_close(t);
		if (t->c.pend_len && flush_pending(&t->c) < 0) {
			tunnel_close(t);
			return;
		}
		if (t->u.pend_len && flush_pending(&t->u) < 0) {
			tunnel_close(t);
			return;
		}
	}
	/* One side ended: once what it sent is delivered, the tunnel ends. */
	if ((t->c.eof && t->u.pend_len == 0) || (t->u.eof && t->c.pend_len == 0)) {
		tunnel_close(t);
		return;
	}
	if (t->close_at && t->c.pend_len == 0 && t->u.pend_len == 0 && t->c.eof && t->u.eof)
		tunnel_close(t);
}

static void on_io(struct loop_io *io, uint32_t events)
{
	struct side *s = io->data;
	struct tunnel *t = s->t;
	if (t->closed)
		return;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		s->can_read = true;
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		s->rdhup = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		s->can_write = true;
	/* A TLS read may need the socket writable and the reverse: retry all. */
	if (s->sock.ssl && (events & EPOLLOUT))
		s->can_read = true;
	tunnel_progress(t);
}

static void arm_timer(struct tunnel *t)
{
	uint64_t now = loop_now(t->w->loop);
	uint64_t d = UINT64_MAX;
	if (t->idle_ms)
		d = t->last_activity + t->idle_ms;
	if (t->max_lifetime_ms && t->started + t->max_lifetime_ms < d)
		d = t->started + t->max_lifetime_ms;
	if (t->drain_at && t->drain_at < d)
		d = t->drain_at;
	if (t->close_at && t->close_at < d)
		d = t->close_at;
	if (t->giveup_at && t->giveup_at < d)
		d = t->giveup_at;
	if (t->ping_ms && !t->draining_now) {
		uint64_t base = t->last_activity > t->last_ping ? t->last_activity : t->last_ping;
		if (base + t->ping_ms < d)
			d = base + t->ping_ms;
	}
	if (d == UINT64_MAX) {
		loop_timer_cancel(t->w->loop, &t->timer);
		return;
	}
	if (loop_timer_set(t->w->loop, &t->timer, d > now ? d - now : 0) != 0)
		tunnel_close(t);
}

static void on_timer(struct loop_timer *tm)
{
	struct tunnel *t = tm->data;
	uint64_t now = loop_now(t->w->loop);
	if ((t->close_at && now >= t->close_at) || (t->giveup_at && now >= t->giveup_at)) {
		tunnel_close(t);
		return;
	}
	if ((t->idle_ms && now >= t->last_activity + t->idle_ms) ||
	    (t->max_lifetime_ms && now >= t->started + t->max_lifetime_ms)) {
		tunnel_close(t);
		return;
	}
	if (t->ping_ms && !t->draining_now) {
		uint64_t base = t->last_activity > t->last_ping ? t->last_activity : t->last_ping;
		if (now >= base + t->ping_ms) {
			send_pings(t);
			tunnel_progress(t);
			if (t->closed)
				return;
		}
	}
	if (t->drain_at && now >= t->drain_at) {
		t->drain_at = 0;
		if (!t->websocket) {
			tunnel_close(t);
			return;
		}
		t->draining_now = true;
		/* Give a frame in flight a little time to finish, then give up. */
		t->idle_ms = 0;
		t->max_lifetime_ms = 0;
		t->giveup_at = now + DRAIN_BOUNDARY_WAIT_MS;
		tunnel_progress(t);
		if (t->closed)
			return;
	}
	arm_timer(t);
}

int tunnel_start(struct tunnel_worker *w, struct tls_sock *client, struct tls_sock *upstream,
                 const char *to_upstream, size_t nup, const char *to_client, size_t nclient,
                 const struct tunnel_config *cfg)
{
	int rc = WEIR_ENOMEM;
	struct tunnel *t = calloc(1, sizeof(*t));
	if (!t)
		goto fail;
	t->w = w;
	t->c.sock = *client;
	t->u.sock = *upstream;
	client->fd = upstream->fd = -1;
	client->ssl = upstream->ssl = NULL;
	t->c.t = t->u.t = t;
	t->c.io.fd = t->c.sock.fd;
	t->c.io.cb = on_io;
	t->c.io.data = &t->c;
	t->u.io.fd = t->u.sock.fd;
	t->u.io.cb = on_io;
	t->u.io.data = &t->u;
	t->c.can_read = t->c.can_write = t->u.can_read = t->u.can_write = true;
	t->websocket = cfg->websocket;
	t->idle_ms = cfg->idle_ms;
	t->max_lifetime_ms = cfg->max_lifetime_ms;
	if (cfg->limit_entered && cfg->route && cfg->client)
		t->limit_slot = policy_limit_slot(cfg->route, cfg->client);
	t->ping_ms = cfg->websocket ? cfg->ping_interval_ms : 0;
	if (RAND_bytes(t->ping_token, PING_TOKEN_LEN) != 1)
		memcpy(t->ping_token, "weir-png", PING_TOKEN_LEN);
	t->drain_window_ms = cfg->drain_window_ms;
	if (cfg->backend_name && cfg->endpoint && cfg->endpoint->address &&
	    strlen(cfg->endpoint->address) < sizeof(t->ep_address)) {
		t->backend_name = strdup(cfg->backend_name); /* NULL: just not followed */
		strcpy(t->ep_address, cfg->endpoint->address);
		t->ep_port = cfg->endpoint->port;
	}
	t->started = t->last_activity = loop_now(w->loop);
	loop_timer_init(&t->timer, on_timer, t);
	if (add_pending(&t->u, to_upstream, nup) != 0 || add_pending(&t->c, to_client, nclient))
		goto fail_t;
	if (t->websocket)
		track(&t->c.track, (const unsigned char *)to_upstream, nup);
	rc = WEIR_EIO;
	if (loop_io_add(w->loop, &t->c.io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) != 0)
		goto fail_t;
	if (loop_io_add(w->loop, &t->u.io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) != 0) {
		loop_io_del(w->loop, &t->c.io);
		goto fail_t;
	}
	t->next = w->head;
	if (w->head)
		w->head->prev = t;
	w->head = t;
	w->count++;
	if (t->websocket)
		metrics_tunnels(1);
	arm_timer(t);
	tunnel_progress(t);
	return 0;
fail_t:
	free(t->backend_name);
	tls_sock_close(&t->c.sock);
	tls_sock_close(&t->u.sock);
	free(t->c.pending);
	free(t->u.pending);
	policy_limit_leave_slot(t->limit_slot);
	free(t);
	return rc;
fail:
	tls_sock_close(client);
	tls_sock_close(upstream);
	if (cfg->limit_entered && cfg->route && cfg->client)
		policy_limit_leave(cfg->route, cfg->client);
	return rc;
}

static void schedule_drain(struct tunnel *t, uint32_t window_ms)
{
	uint64_t now = loop_now(t->w->loop);
	uint32_t r = 0;
	if (t->draining_now)
		return;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)(uintptr_t)t;
	uint64_t at = now + (window_ms ? r % window_ms : 0);
	if (at == 0)
		at = 1;
	if (!t->drain_at || at < t->drain_at)
		t->drain_at = at;
	arm_timer(t);
}

uint32_t tunnel_drain_all(struct tunnel_worker *w, uint32_t cap_ms)
{
	struct tunnel *next;
	uint32_t longest = 0;
	for (struct tunnel *t = w->head; t; t = next) {
		next = t->next; /* arm_timer may close t on allocation failure */
		uint32_t window = t->drain_window_ms < cap_ms ? t->drain_window_ms : cap_ms;
		if (window > longest)
			longest = window;
		schedule_drain(t, window);
	}
	return longest;
}

static bool endpoint_listed(const struct tunnel *t, const struct route_table *rt)
{
	for (size_t b = 0; b < rt->nbackends; b++) {
		const struct route_backend *be = &rt->backends[b];
		if (!be->name || strcmp(be->name, t->backend_name) != 0)
			continue;
		for (size_t e = 0; e < be->nendpoints; e++) {
			const struct route_endpoint *ep = &be->endpoints[e];
			if (ep->port == t->ep_port && ep->address &&
			    strcmp(ep->address, t->ep_address) == 0)
				return !ep->draining;
		}
		return false;
	}
	return false;
}

void tunnel_check_endpoints(struct tunnel_worker *w, const struct table *tab)
{
	const struct route_table *rt = table_routes(tab);
	struct tunnel *next;
	for (struct tunnel *t = w->head; t; t = next) {
		next = t->next;
		if (!t->websocket || !t->backend_name || t->draining_now || t->drain_at)
			continue;
		if (!endpoint_listed(t, rt))
			schedule_drain(t, t->drain_window_ms);
	}
}

void tunnel_close_all(struct tunnel_worker *w)
{
	while (w->head)
		tunnel_close(w->head);
}
