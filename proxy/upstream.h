/* proxy/upstream.h - connections from a worker to upstream endpoints:
 * non-blocking connect (plain or TLS) and a per-worker, per-endpoint pool of
 * idle keep-alive connections. Every function runs in the owning worker's
 * loop thread; nothing here is shared between workers. */
#ifndef WEIR_PROXY_UPSTREAM_H
#define WEIR_PROXY_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"
#include "route_table.h"
#include "backend_tls.h"
#include "tls.h"

struct upstream_pool; /* opaque, one per worker */

/* Pool key: address, port, and for TLS the profile id, SNI and verified
 * name, so a connection is never reused with another TLS setup. */
#define UPSTREAM_KEY_MAX (64 + 8 + BACKEND_TLS_ID_LEN + 2 * 256)
struct upstream;
struct upstream_key; /* the idle connections of one key (upstream.c) */

/* Called on socket events while a connection is handed out. */
typedef void (*upstream_event_cb)(struct upstream *u, uint32_t events);

struct upstream {
	struct tls_sock sock;
	struct loop_io io;
	struct upstream_pool *pool;
	upstream_event_cb cb;
	void *data;
	bool connected; /* TCP connect finished */
	bool reused;    /* taken from the idle pool */
	bool can_read;  /* edge-triggered readiness not yet used up */
	bool can_write;
	bool closed;
	char key[UPSTREAM_KEY_MAX];    /* "address|port|tls[|profile id|sni|name]" */
	struct upstream *next, *prev;  /* idle list of its key */
	struct upstream_key *idle_key; /* while idle in the pool, else NULL */
	struct loop_timer idle_timer;
	struct loop_defer defer;
};

/* Create / free a worker's pool (free closes every idle connection).
 * max_idle is read per release. Returns 0 or WEIR_ENOMEM. */
int upstream_pool_new(struct loop *l, struct upstream_pool **out);
void upstream_pool_free(struct upstream_pool *p);

/* Hand out a connection to ep: an idle pooled one (reused = true) when one
 * is there, else a new non-blocking connect (TLS client when tls). cb fires
 * on every event until release/close. Returns 0 and *out (owned by the
 * caller until upstream_release/upstream_close), WEIR_ENOMEM or WEIR_EIO
 * (socket or immediate connect failure; *errno_out set). */
int upstream_get(struct upstream_pool *p, const struct route_endpoint *ep, bool tls,
                 upstream_event_cb cb, void *data, struct upstream **out, int *errno_out);
/* Open a new connection even when idle ones exist (the retry after a pooled
 * connection failed). Same contract as upstream_get. */
int upstream_connect(struct upstream_pool *p, const struct route_endpoint *ep, bool tls,
                     upstream_event_cb cb, void *data, struct upstream **out, int *errno_out);

/* upstream_get / upstream_connect for TLS with a backend TLS target (tls
 * NULL: plain TCP). The target's strings are copied into the pool key; its
 * ctx must stay alive until the SSL is made (it takes its own reference). */
int upstream_get_tls(struct upstream_pool *p, const struct route_endpoint *ep,
                     const struct backend_tls_target *tls, upstream_event_cb cb, void *data,
                     struct upstream **out, int *errno_out);
int upstream_connect_tls(struct upstream_pool *p, const struct route_endpoint *ep,
                         const struct backend_tls_target *tls, upstream_event_cb cb, void *data,
                         struct upstream **out, int *errno_out);

/* A connection that is side CHAN_B of an in-memory channel (chan.h) whose
 * side CHAN_A h2up serves (taken over; closed on failure). Never pooled.
 * Returns 0 or WEIR_ENOMEM. */
int upstream_adopt_chan(struct upstream_pool *p, struct chan *ch, upstream_event_cb cb, void *data,
                        struct upstream **out);

/* After an EPOLLOUT on a connecting socket: 0 when connected, else the
 * connect errno (ECONNREFUSED...). */
int upstream_connect_error(struct upstream *u);

/* Give a connection back. When reusable and the pool for its endpoint holds
 * fewer than max_idle, it waits there (idle timeout 60 s); else closed. u is
 * no longer the caller's either way. */
void upstream_release(struct upstream *u, bool reusable, uint32_t max_idle);
/* Close now (freed after the current batch of events). */
void upstream_close(struct upstream *u);

/* Detach the socket for a tunnel: the caller gets fd/ssl in *sock and u is
 * freed (its io removed from the loop). */
void upstream_detach(struct upstream *u, struct tls_sock *sock);

#endif
