/* proxy/h2.h - HTTP/2 from clients (RFC 9113), with WebSocket over HTTP/2
 * (RFC 8441 extended CONNECT). A session owns the client's socket and speaks
 * HTTP/2 with libnghttp2; each stream is handed to the HTTP/1.1 data path as
 * its own connection over an in-memory channel (chan.h; a WebSocket stream
 * over a socket pair, for tunnel.c), so every route policy applies per
 * stream exactly as it does for HTTP/1.1. The session translates the stream's
 * request into an HTTP/1.1 request head and body, and the HTTP/1.1 answer
 * back into HEADERS and DATA frames. An extended CONNECT stream becomes a
 * WebSocket upgrade towards the data path; after its 101 the stream relays
 * raw bytes both ways (the tunnel behind it keeps its idle, lifetime, ping
 * and drain rules). */
#ifndef WEIR_PROXY_H2_H
#define WEIR_PROXY_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "buf.h"
#include "h2mem.h"
#include "loop.h"
#include "spare.h"
#include "tls.h"

struct h2_session;

/* Per-worker state (caller storage, zeroed but for loop). */
struct h2_worker {
	struct loop *loop;
	struct h2_session *head;
	size_t count;         /* live sessions */
	struct spare streams; /* freed streams, for the next ones */
	struct h2_mem mem;    /* nghttp2's small blocks, for the next ones */
};

struct h2_limits {
	uint32_t max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS (>= 1) */
	uint32_t max_header_bytes;       /* a request's decoded header list; over it: 431 */
	uint32_t max_field_bytes;        /* one decoded name or value; over it: 431 (0: none) */
	uint32_t idle_ms;                /* no stream open this long: GOAWAY, close */
	uint32_t header_timeout_ms;      /* a stream's request head this slow: RST_STREAM */
};

/* What the session asks of its owner (the HTTP/1.1 data path). */
struct h2_refusal {
	const char *method, *path, *authority;
	int status;
	size_t header_bytes; /* the request's header list as HPACK counts it */
};

struct h2_host {
	/* Serve one stream over ch's side CHAN_B (the session keeps side
	 * CHAN_A), or, when ch is NULL (a tunnel, which leaves the data path
	 * for tunnel.c), over fd, the data path's end of a socket pair.
	 * Returns 0, or an error (fd or side CHAN_B closed). */
	int (*open_stream)(void *data, int fd, struct chan *ch);
	/* HTTP/1.1 connections opened for this session and still alive (they
	 * may outlive their stream while an upstream answers). */
	size_t (*live_streams)(void *data);
	/* A stream answered by the session itself, never reaching the data
	 * path (a malformed or oversized request head: 400, 405, 431, 501):
	 * for the access log. The strings (NULL when the client sent none) are
	 * borrowed for the call. May be NULL. */
	void (*refused)(void *data, const struct h2_refusal *r);
	/* The session is gone; data is not used again by the session. */
	void (*release)(void *data);
	void *data;
};

/* Take over client (its SSL object included) and speak HTTP/2 on it.
 * preread (n bytes, may be 0) were read from the client already (the start
 * of the connection preface). lim and host are copied. Returns 0, or
 * WEIR_ENOMEM / WEIR_EIO; on failure the socket is closed and
 * host->release called. */
int h2_start(struct h2_worker *w, struct tls_sock *client, const char *preread, size_t n,
             const struct h2_limits *lim, const struct h2_host *host);

/* Graceful shutdown: GOAWAY to every session; each closes once its streams
 * are done. */
void h2_drain_all(struct h2_worker *w);

/* Close every session now. */
void h2_close_all(struct h2_worker *w);

/* Call from the worker's periodic timer (now_ms: loop_now): once no stream
 * has started for a while, the freed streams kept over the number an idle
 * worker keeps are freed (a burst of streams leaves up to 1024). */
void h2_worker_trim(struct h2_worker *w, uint64_t now_ms);

/* Give back the memory w keeps for streams to come, once no session is left
 * and the frees the closes queued ran (w may be used again). */
void h2_worker_cleanup(struct h2_worker *w);

/* True when buf (n bytes) is the start of the HTTP/2 client preface (all of
 * it once n >= 24). */
bool h2_is_preface(const char *buf, size_t n);

/* Shared with h2up.c. */
/* nghttp2's frames due into out while it holds less than high. Returns 1
 * when some were added, 0 when none were due, -1 on an error. */
int h2_frames_out(nghttp2_session *ng, struct buf *out, size_t high);
/* A connection-specific header HTTP/2 never carries (RFC 9113 8.2.2). */
bool h2_hop_by_hop(const char *name, size_t len);

/* Bytes in the client connection preface. */
#define H2_PREFACE_LEN 24u

#endif
