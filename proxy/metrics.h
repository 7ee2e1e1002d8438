/* proxy/metrics.h - process-wide Prometheus metrics of weir-proxy.
 * Every function is thread-safe and cheap enough for the request path. */
#ifndef WEIR_PROXY_METRICS_H
#define WEIR_PROXY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The protocol a request came in: the protocol label of weir_proxy_requests_total and of
 * weir_proxy_requests_by_protocol_total. METRICS_NO_HTTP is a connection refused before any
 * HTTP (an ssl-passthrough client outside its source ranges), labelled "-". */
enum metrics_protocol {
	METRICS_HTTP10 = 0,
	METRICS_HTTP11 = 1,
	METRICS_HTTP2 = 2,
	METRICS_NO_HTTP = 3,
};

/* One finished request: route labels are the host name and route path ("" and "-" when no
 * route matched), status the code sent to the client, proto the protocol it came in,
 * upstream_seconds < 0 when no upstream. host/path are borrowed for the call only (copied
 * when a new label set is first seen). At most METRICS_MAX_SERIES distinct (host, path, code,
 * protocol) sets are kept; later new ones are counted per status code in overflow series
 * labelled host="~overflow",path="~overflow",protocol="~overflow". A status outside 0..999
 * is counted as code "0". Every HTTP request (not METRICS_NO_HTTP) also counts in
 * weir_proxy_requests_by_protocol_total. */
void metrics_request(const char *host, const char *path, int status, enum metrics_protocol proto,
                     double upstream_seconds);

/* Open HTTP/2 client connections (also counted in open connections). */
void metrics_http2_connections(int delta);
/* What worker id holds: client connections (HTTP/1.1, HTTP/2, tunnels)
 * plus HTTP/2 streams in flight, as it last counted; ids 0..1023. */
void metrics_worker_load(int id, unsigned n);

/* Open client connections: +1 on accept, -1 on close. */
void metrics_connections(int delta);

/* Open WebSocket tunnels: +1 when a tunnel starts, -1 when it ends. */
void metrics_tunnels(int delta);

/* One route table reload attempt; on success generation becomes the table generation gauge. */
void metrics_reload(bool ok, uint64_t generation);

/* A successful load took usec microseconds and parsed hosts_parsed hosts
 * (version 1: all of them; version 2: the shards not cached) and reused
 * hosts_reused cached host shards. */
void metrics_table_load(uint64_t usec, size_t hosts_parsed, size_t hosts_reused);

/* One upstream failure of a kind: "connect", "timeout", "reset", "no_endpoints" (other short
 * strings are accepted and escaped; borrowed for the call only). */
void metrics_upstream_error(const char *kind);

/* One more attempt of a request on another endpoint (proxy-next-upstream),
 * by the condition that caused it: the bit index of enum
 * route_next_upstream (0 error ... 9 http_429); others are ignored. */
void metrics_upstream_retry(int condition);

/* Outcome of one mirrored request (mirror-target). */
enum metrics_mirror {
	METRICS_MIRROR_SENT = 0,    /* the mirror answered (the answer is ignored) */
	METRICS_MIRROR_DROPPED = 1, /* not sent: cap reached, body too large, request cut short */
	METRICS_MIRROR_FAILED = 2   /* lookup, connect, write, timeout or bad answer */
};

/* One mirror request with its outcome (weir_proxy_mirror_requests_total). */
void metrics_mirror(enum metrics_mirror result);

/* Outcome of one basic-auth check (auth-type basic). */
enum metrics_basic_auth {
	METRICS_BASIC_AUTH_CACHED,   /* credentials found in the worker's success cache */
	METRICS_BASIC_AUTH_VERIFIED, /* password hash checked and matched */
	METRICS_BASIC_AUTH_REFUSED,  /* no, malformed or wrong credentials (401/400) */
};

/* One basic-auth check with its outcome (weir_proxy_basic_auth_checks_total). */
void metrics_basic_auth(enum metrics_basic_auth outcome);

/* Prometheus text exposition (format 0.0.4) of everything, series sorted so the output is
 * deterministic. Returns 0 with *out a NUL-terminated malloc'd string (caller frees) and *len
 * its length, or WEIR_ENOMEM (*out untouched). */
int metrics_render(char **out, size_t *len);

/* Cap on distinct weir_proxy_requests_total label sets (the overflow series excluded). */
#define METRICS_MAX_SERIES 10000

#endif
