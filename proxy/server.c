/* proxy/server.c - workers, listeners, client connections and the request
 * state machine (client head -> route -> policy -> balancer -> upstream ->
 * response relay, or WebSocket upgrade -> tunnel). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "access_log.h"
#include "auth_basic.h"
#include "auth_request.h"
#include "balancer.h"
#include "block.h"
#include "buf.h"
#include "chan.h"
#include "client_cert.h"
#include "compress.h"
#include "error.h"
#include "error_page.h"
#include "external.h"
#include "fastcgi.h"
#include "h2.h"
#include "h2up.h"
#include "headers.h"
#include "http.h"
#include "http_parse.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "mirror.h"
#include "policy.h"
#include "proxy_protocol.h"
#include "realip.h"
#include "resolve.h"
#include "server.h"
#include "spare.h"
#include "table.h"
#include "tls.h"
#include "tunnel.h"
#include "upstream.h"

#define IO_CAP 16384u          /* body bytes buffered per direction */
#define UP_CHAN_CAP 131072u    /* bytes between the data path and h2up, each way */
#define UP_HEAD_DEFAULT 4096u  /* largest upstream response head without a table */
#define UP_IN_MIN 32768u       /* cap of the upstream input buffer, at least */
#define GZ_OUT 8192u           /* compressed bytes made per step (stack) */
#define LOCAL_HEAD_GUESS 4096u /* first room tried for a local answer */
#define ROUTE_LINES_MAX 4096u  /* a route's own headers on a redirect or return answer */
#define LOCAL_EXTRA_MAX 8192u  /* extra header lines of a local answer, HSTS included */
#define SPARE_EXCHANGES 1024u  /* freed request states a worker keeps (10 KiB each) */
#define HEAD_READ_MIN 1024u    /* room wanted for each read of a request head */
#define HEAD_EXTRA 2048u       /* first room tried for a head beyond the one it is built from */
#define OUT_HEAD_ROOM 32768u   /* room for a response head to the client */
#define CHUNK_OVERHEAD 32u     /* chunk header + CRLF + last-chunk */
#define CLOSING_MS 5000u
#define LINGER_MS 2000u
#define LINGER_MAX_BYTES (1024u * 1024u)
#define DRAIN_EXTRA_MS 3000u
#define DRAIN_POLL_MS 50u
#define PROGRESS_ROUNDS 64
#define ACCEPT_BACKOFF_MS 100u     /* no accept after EMFILE/ENFILE, unless a close comes first */
#define ACCEPT_LIMIT_POLL_MS 1000u /* at max-connections: a look for a raised limit */
#define ACCEPT_WARN_MS 10000u      /* at most one accept warning per worker this often */
/* freed request states a worker keeps once idle (spare_trim) */
#define SPARE_EXCHANGES_IDLE 128u
/* the most of a chunked body read whole for a FastCGI upstream when the
 * route sets no proxy-body-size (0): above it, 413 */
#define FCGI_BODY_MAX (64u * 1024u * 1024u)

/* ST_PPHDR: waiting for the PROXY protocol header (use-proxy-protocol). */
/* ST_AUTH: the forward-auth subrequest (auth-url) runs; the request waits. */
/* ST_RESOLVE: the first lookup of an ExternalName backend runs; the request waits. */
enum conn_state { ST_PPHDR, ST_PEEK, ST_HEAD, ST_AUTH, ST_RESOLVE, ST_PROXY, ST_CLOSING };

/* The state of one request: most of a connection's size, so it is allocated
 * when the first bytes of a request arrive and freed when the connection goes
 * idle. */
struct exchange {
	struct http_parse rp;
	struct http_request req; /* points into conn.in */
	struct http_parse sp;
	struct http_response resp; /* points into conn.up_in while the head is handled */
	struct table_match m;
	struct balancer_pick pick;
	char upstream_host[80];
	struct backend_tls_target up_tls; /* HTTPS upstream: strings below */
	char up_tls_name[256];
	/* ExternalName backend: the address picked (ext_ep points at it) */
	struct route_endpoint ext_ep;
	char ext_addr[RESOLVE_ADDR_MAX];
	struct external_wait *ext_wait; /* ST_RESOLVE */
	uint64_t ext_since;
	uint64_t tried[BALANCER_TRIED_MAX / 64]; /* endpoints tried (proxy-next-upstream) */
	/* custom-http-errors: up_phase: the request reached upstream_start (the
	 * proxy's 502/503/504 from then on may be replaced); err_code: the code
	 * whose page the error backend is asked for (0: none); err_from: the
	 * backend that failed (X-Service-Name/-Port), -1: none */
	bool up_phase;
	int err_code;
	int err_from;
	/* backend protocol FCGI: the records from the upstream (fcgi_raw) are
	 * read by fcgi into up_in as an HTTP/1.1 response */
	struct fastcgi_decoder *fcgi;
	struct buf fcgi_raw;
	bool fcgi_eof; /* the upstream socket closed */
	/* a chunked body is read whole before the request goes (fcgi_request):
	 * the HTTP head it is made from, and the body so far */
	bool fcgi_buffering;
	char *fcgi_head;
	size_t fcgi_head_len;
	struct buf fcgi_body;
	/* backend protocol GRPC(S): the answer's trailers, passed on */
	struct buf trailers;
};

struct worker;

/* An HTTP/2 connection as its streams' connections see it (h2.h): the
 * client's address, the table its SNI chose and its SSL object (client
 * certificates), kept while the session or any stream's connection lives. */
struct h2_origin {
	struct worker *w;
	struct http_client client;
	struct table *tls_table;
	SSL *ssl;     /* a reference of its own, NULL on plain TCP (h2c) */
	size_t live;  /* stream connections alive */
	bool session; /* the session holds it */
	/* the session's cap on a header list: its streams' HTTP/1.1 heads
	 * are read with it (and no line cap: the session checked its fields) */
	uint32_t header_bytes;
};

struct conn {
	struct worker *w;
	struct conn *next, *prev;
	struct tls_sock sock;
	struct loop_io io;
	struct loop_timer timer;
	struct loop_defer defer;
	struct loop_defer resume; /* more work after a full round budget */
	enum conn_state state;
	bool can_read, can_write;
	bool rdhup; /* a hang-up was reported: read until EAGAIN */
	bool closed;
	bool https;
	bool alpn_checked;        /* TLS: the protocol ALPN chose was looked at */
	struct h2_origin *origin; /* a stream of an HTTP/2 connection, else NULL */
	struct table *tls_table;  /* reference from the SNI callback / passthrough peek */
	/* use-proxy-protocol: a PROXY header must come first */
	bool proxy_protocol;
	/* the Strict-Transport-Security value being sent */
	char hsts[64];
	struct http_client client;
	uint32_t max_header_bytes, max_header_line, header_timeout_ms, keepalive_timeout_ms;
	struct buf in; /* client bytes: head at [0, in_floor), then body */
	size_t in_floor;
	struct buf out; /* bytes to the client */
	uint64_t idle_since, head_started, closing_since, last_activity;
	bool lingering; /* answer sent, write side shut, draining input */
	uint64_t linger_since;
	size_t linger_bytes;

	/* the request in flight */
	struct exchange *x; /* NULL while idle */
	bool req_active;
	bool req_body_done;
	bool body_too_big;
	bool keep_alive;
	bool limit_entered;
	bool is_head;
	int64_t body_bytes;
	struct table *table;
	const struct route_table *rt;
	const struct route *route;
	const struct route_endpoint *ep;
	bool backend_tls;
	bool fcgi; /* the upstream speaks FastCGI (backend protocol FCGI) */
	bool grpc; /* the upstream speaks HTTP/2 (backend protocol GRPC, GRPCS; h2up.h) */
	/* proxy-request-buffering: the body is read into up_out before the
	 * upstream is contacted (until it is complete or
	 * ROUTE_REQUEST_BUFFER_MAX) */
	bool prebuffer;
	/* response bytes out may hold before the upstream is read no further:
	 * IO_CAP, or ROUTE_RESPONSE_BUFFER_MAX with proxy-buffering */
	size_t out_high;
	uint64_t t_start, up_start;
	uint32_t connect_timeout_ms, read_timeout_ms, send_timeout_ms;
	struct auth_request *auth; /* forward auth: running (ST_AUTH), then its grant */
	struct mirror *mirror;     /* mirror-target: capturing the request body */

	/* upstream side */
	struct upstream *up;
	struct buf up_out;
	struct buf up_in;
	bool got_up_byte;
	bool up_eof;
	bool up_rdhup; /* as rdhup, for the upstream socket */
	bool resp_head_done;
	bool resp_started;
	bool out_chunked;
	bool up_keepalive;
	bool retried;       /* the one fresh-connection retry after a stale pooled one */
	uint32_t attempts;  /* endpoints tried so far (proxy-next-upstream-tries) */
	uint64_t first_try; /* loop time of the first attempt (proxy-next-upstream-timeout) */
	bool req_sent;      /* a byte of the request went to the current upstream */
	bool body_kept;     /* every body byte read so far is still in `in` from in_floor */
	bool interim_sent;  /* a 1xx answer went to the client */
	int status_sent;
	/* for the access log */
	int up_status;            /* the upstream's status, 0: none */
	uint64_t resp_head_bytes; /* response head bytes sent */
	uint64_t resp_body_bytes; /* response body bytes sent (payload, not chunk framing) */
	uint64_t up_body_bytes;   /* response body bytes from the upstream (before compression) */
	/* use-gzip, enable-brotli: the response body is compressed. gz_in holds decoded body
	 * bytes not yet compressed (cap IO_CAP); both exist only while a
	 * compressed response is relayed. */
	struct compress *gz;
	struct buf gz_in;
	bool gz_body_done; /* the upstream's body is all in; the gzip end is due */
};

struct listener {
	int fd;
	bool tls;
	struct loop_io io;
	struct worker *w;
};

/* Each worker listens on its own SO_REUSEPORT socket, so the kernel's
 * hash of the client's address and port picks the worker: 64 connections
 * land 36/28 as often as 32/32, and on long-lived ones (tunnels, HTTP/2)
 * the busier worker stays busier. A worker that holds more than
 * BALANCE_SLACK over the least loaded one hands the connection it just
 * accepted to that one (at most HANDOFF_CAP wait to be taken). */
#define BALANCE_SLACK 2u
#define HANDOFF_CAP 64u

struct handoff {
	int fd;
	bool tls;
	struct sockaddr_storage ss;
};

struct worker {
	int id;
	pthread_t thread;
	bool started;
	struct loop *loop;
	struct listener http, https;
	struct upstream_pool *pool;
	struct h2up_pool *h2up;            /* HTTP/2 upstreams (GRPC, GRPCS) */
	struct resolver *resolver;         /* forward auth host names */
	struct external_names *ext_names;  /* ExternalName backends */
	struct auth_cache *ext_auth_cache; /* forward auth answers (auth-cache-key) */
	struct mirror_set *mirrors;        /* mirror-target requests in flight */
	struct tunnel_worker tw;
	struct h2_worker hw;
	struct conn *conns;
	size_t nconns;
	atomic_bool drain_requested;
	bool draining;
	uint64_t drain_deadline;
	struct loop_timer drain_timer;
	struct loop_timer table_timer;  /* follows table swaps for tunnel endpoints */
	const struct table *seen_table; /* compared, never dereferenced */
	uint64_t seen_generation;
	struct table_view view; /* this worker's reference to the current table */
	uint32_t max_conns;     /* settings.max_connections at the last accept, 0: none */
	bool accept_paused;     /* listeners out of epoll (fd or connection limit) */
	struct loop_timer accept_timer;
	uint64_t accept_warned;   /* loop_now of the last accept warning, 0: none */
	uint64_t accept_unwarned; /* pauses since that warning */
	uint64_t rng;
	struct auth_basic_cache *auth_cache; /* successful basic-auth checks */
	struct access_log_writer alog;       /* this worker's access log lines */
	struct spare spare_x;                /* freed struct exchange, for the next requests */
	/* balance (worker_pick): what it holds as last counted, and the
	 * connections other workers accepted and handed to it */
	atomic_uint load;
	atomic_uint handed; /* pushed to ho and not taken yet */
	pthread_mutex_t ho_mu;
	struct handoff ho[HANDOFF_CAP];
	size_t nho;
};

static struct server_config server_cfg;
static struct worker *workers;
static int nworkers;

static void conn_progress(struct conn *c);
static void on_client_io(struct loop_io *io, uint32_t events);
static void on_conn_timer(struct loop_timer *t);
static void origin_release(struct h2_origin *o);
static int h2_takes(struct conn *c);
static void conn_close(struct conn *c);
static void conn_arm_timer(struct conn *c);
static void upstream_start(struct conn *c);
static void finish_response(struct conn *c);
static void upstream_go(struct conn *c);
static int auth_hook_upstream_head(struct conn *c);
static int conn_exchange(struct conn *c);
static void resume_accept(struct worker *w);
static void format_host(char *out, size_t cap, const struct route_endpoint *ep);
static int setup_backend_tls(struct conn *c);
static bool error_page_start(struct conn *c, int status);
static size_t upstream_head_max(const struct conn *c);

/* Bit indexes of enum route_next_upstream, for the conditions a failed
 * attempt reports. */
enum { NEXT_ERROR = 0, NEXT_TIMEOUT = 1, NEXT_INVALID_HEADER = 2 };

/* ---- helpers ---- */

static uint64_t rng_next(struct worker *w)
{
	uint64_t z = (w->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* 32 random hex digits and a NUL in out, as nginx's $request_id. */
static void make_request_id(struct worker *w, char *out)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t a = rng_next(w), b = rng_next(w);
	for (int i = 0; i < 16; i++) {
		out[i] = hex[(a >> (i * 4)) & 15];
		out[16 + i] = hex[(b >> (i * 4)) & 15];
	}
	out[32] = '\0';
}

static void new_request_id(struct conn *c)
{
	make_request_id(c->w, c->client.request_id);
}

static void read_settings(struct conn *c)
{
	struct table *t = table_view_get(&c->w->view);
	c->max_header_bytes = 32768;
	c->max_header_line = 0;
	c->header_timeout_ms = 10000;
	c->keepalive_timeout_ms = 75000;
	if (t) {
		const struct route_settings *s = &table_routes(t)->settings;
		if (s->max_header_bytes)
			c->max_header_bytes = s->max_header_bytes;
		c->max_header_line = s->max_header_line;
		if (s->header_timeout_ms)
			c->header_timeout_ms = s->header_timeout_ms;
		if (s->keepalive_timeout_ms)
			c->keepalive_timeout_ms = s->keepalive_timeout_ms;
		c->proxy_protocol = s->use_proxy_protocol;
		table_unref(t);
	}
	if (c->max_header_bytes > 1024 * 1024)
		c->max_header_bytes = 1024 * 1024;
}

/* EAGAIN bookkeeping for edge-triggered readiness. */

/* A plain-socket read that did not fill the room drained the kernel buffer; with
 * edge-triggered readiness new bytes raise a new edge, so the read that would only
 * return EAGAIN is skipped. Not after a hang-up edge (a pending FIN raises no new
 * edge), nor for TLS (the library may hold decrypted bytes). */
static void note_read(const struct tls_sock *s, bool rdhup, ssize_t got, size_t room,
                      bool *can_read)
{
	if (!s->ssl && !rdhup && got > 0 && (size_t)got < room)
		*can_read = false;
}

/* Write b to s. Returns bytes written (>= 0) or -1 on error. */

/* The client's TLS connection: its own, or its HTTP/2 session's. */
static SSL *client_ssl(const struct conn *c)
{
	return c->sock.ssl ? c->sock.ssl : c->origin ? c->origin->ssl : NULL;
}

static const char *label_host(const struct conn *c)
{
	return c->x && c->x->m.host && c->x->m.host->name ? c->x->m.host->name : "";
}

static const char *label_path(const struct conn *c)
{
	return c->route && c->route->path ? c->route->path : "-";
}

/* One finished request in the metrics: route labels, and the protocol. */
static void count_request(struct conn *c, int status, double upstream_secs)
{
	metrics_request(label_host(c), label_path(c), status,
	                c->client.http2                        ? METRICS_HTTP2
	                : c->x && c->x->req.version_minor == 0 ? METRICS_HTTP10
	                                                       : METRICS_HTTP11,
	                upstream_secs);
}

static bool method_is(const struct conn *c, const char *m)
{
	size_t n = strlen(m);
	return c->x->req.method_len == n && memcmp(c->x->req.method, m, n) == 0;
}

static bool request_has_body(const struct conn *c)
{
	return c->x->req.chunked || c->x->req.content_length > 0;
}

static bool idempotent(const struct conn *c)
{
	return method_is(c, "GET") || method_is(c, "HEAD") || method_is(c, "OPTIONS") ||
	       method_is(c, "PUT") || method_is(c, "DELETE") || method_is(c, "TRACE");
}

static double upstream_seconds(const struct conn *c)
{
	if (!c->up_start)
		return -1;
	return (double)(loop_now(c->w->loop) - c->up_start) / 1000.0;
}

/* ---- request end ---- */

static void release_upstream(struct conn *c, bool reusable)
{
	if (!c->up)
		return;
	uint32_t max_idle = 32;
	if (c->rt)
		max_idle = c->rt->settings.upstream_keepalive;
	upstream_release(c->up, reusable, max_idle);
	c->up = NULL;
}

static void drop_upstream(struct conn *c)
{
	if (c->up)
		upstream_close(c->up);
	c->up = NULL;
}

/* Give back what a compressed response held. */
static void gz_end(struct conn *c)
{
	compress_free(c->gz);
	c->gz = NULL;
	buf_free(&c->gz_in);
	c->gz_body_done = false;
}

/* Give back what reading a FastCGI response held. */
static void fcgi_end(struct conn *c)
{
	c->fcgi = false;
	if (!c->x)
		return;
	if (c->x->fcgi) {
		fastcgi_decoder_free(c->x->fcgi);
		free(c->x->fcgi);
		c->x->fcgi = NULL;
	}
	buf_free(&c->x->fcgi_raw);
	c->x->fcgi_eof = false;
	free(c->x->fcgi_head);
	c->x->fcgi_head = NULL;
	buf_free(&c->x->fcgi_body);
	c->x->fcgi_buffering = false;
	buf_free(&c->x->trailers);
}

/* The request is over (its answer is queued in out). */
static void end_request(struct conn *c, bool keep_alive)
{
	drop_upstream(c);
	gz_end(c);
	auth_request_free(c->auth);
	c->auth = NULL;
	mirror_abandon(c->mirror);
	c->mirror = NULL;
	if (c->x) {
		external_wait_cancel(c->x->ext_wait);
		c->x->ext_wait = NULL;
	}
	fcgi_end(c);
	c->prebuffer = false;
	if (c->limit_entered)
		policy_limit_leave(c->route, &c->client);
	c->limit_entered = false;
	table_unref(c->table);
	c->table = NULL;
	c->rt = NULL;
	c->route = NULL;
	if (c->x) {
		memset(&c->x->m, 0, sizeof(c->x->m));
		c->x->up_phase = false;
		c->x->err_code = 0;
	}
	c->req_active = false;
	c->in.pinned = false; /* req is done with the head */
	buf_free(&c->up_out);
	buf_free(&c->up_in);
	if (!keep_alive || c->w->draining) {
		c->state = ST_CLOSING;
		c->closing_since = loop_now(c->w->loop);
		return;
	}
	/* Pipelined bytes after this request move to the front. */
	size_t rest = buf_len(&c->in);
	if (rest)
		memmove(c->in.data, c->in.data + c->in.start, rest);
	c->in.start = 0;
	c->in.end = rest;
	c->in_floor = 0;
	if (c->x)
		http_parse_init(&c->x->rp, false, false);
	c->state = ST_HEAD;
	c->idle_since = c->head_started = loop_now(c->w->loop);
}

/* The Strict-Transport-Security value for a response on this connection
 * (HTTPS only), or NULL. */
static const char *hsts_value(struct conn *c)
{
	if (!c->client.tls)
		return NULL;
	struct table *t = c->rt ? NULL : table_current();
	const struct route_table *rt = c->rt ? c->rt : t ? table_routes(t) : NULL;
	int n = rt ? headers_hsts_value(&rt->settings, c->hsts, sizeof(c->hsts)) : 0;
	table_unref(t);
	return n > 0 ? c->hsts : NULL;
}

/* server-tokens: the Server value of weir's own answers */
#define SERVER_TOKEN "weir/" WEIR_VERSION

/* server-tokens and allow-backend-server-header of the table this
 * connection answers from. */
static void server_header_settings(struct conn *c, bool *tokens, bool *allow_backend)
{
	struct table *t = c->rt ? NULL : table_current();
	const struct route_table *rt = c->rt ? c->rt : t ? table_routes(t) : NULL;
	*tokens = rt && rt->settings.server_tokens;
	*allow_backend = rt && rt->settings.allow_backend_server_header;
	table_unref(t);
}

/* The Connection line of an answer: ka says the connection stays open; an
 * HTTP/1.0 client is told so (it closes otherwise, and one that waits for the
 * close hangs). c->x is only read when ka. */
static enum headers_conn conn_line(const struct conn *c, bool ka)
{
	if (!ka)
		return HEADERS_CONN_CLOSE;
	return c->x->req.version_minor == 0 ? HEADERS_CONN_KEEP_10 : HEADERS_CONN_KEEP;
}

/* The request as an access log line (access_log.h), unless the table's
 * log is off, the route's is, or the request URI is in skip-access-log-urls. */
/* Wall clock, milliseconds since the epoch (the access log's time). */
static int64_t wall_ms(void)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void log_request(struct conn *c, int status)
{
	const struct access_log_format *f = c->table ? table_access_log(c->table) : NULL;
	if (!f || !c->x || (c->route && !c->route->policy->access_log))
		return;
	const struct route_settings *s = &c->rt->settings;
	const struct http_request *req = &c->x->req;
	for (size_t i = 0; i < s->naccess_log_skip; i++)
		if (strlen(s->access_log_skip[i]) == req->target_len &&
		    strncasecmp(s->access_log_skip[i], req->target, req->target_len) == 0)
			return;
	char addr[RESOLVE_ADDR_MAX + 16];
	const char *backend = NULL, *alt = NULL, *req_id = c->client.request_id;
	if (c->ep) {
		format_host(addr, sizeof(addr), c->ep);
		if (c->x->pick.backend >= 0 && (size_t)c->x->pick.backend < c->rt->nbackends)
			backend = c->rt->backends[c->x->pick.backend].name;
	}
	if (c->route && c->route->canary.backend >= 0 &&
	    (size_t)c->route->canary.backend < c->rt->nbackends)
		alt = c->rt->backends[c->route->canary.backend].name;
	if (c->client.forwarded_trusted) {
		size_t nh = req->nheaders < HTTP_MAX_HEADERS ? req->nheaders : HTTP_MAX_HEADERS;
		for (size_t i = 0; i < nh; i++)
			if (req->headers[i].name_len == 12 &&
			    strncasecmp(req->headers[i].name, "X-Request-ID", 12) == 0)
				req_id =
				    NULL; /* the header passed on: logged as $http_x_request_id */
	}
	char idbuf[256];
	if (!req_id) {
		size_t nh = req->nheaders < HTTP_MAX_HEADERS ? req->nheaders : HTTP_MAX_HEADERS;
		for (size_t i = 0; i < nh && !req_id; i++)
			if (req->headers[i].name_len == 12 &&
			    strncasecmp(req->headers[i].name, "X-Request-ID", 12) == 0) {
				size_t n = req->headers[i].value_len < sizeof(idbuf) - 1
				               ? req->headers[i].value_len
				               : sizeof(idbuf) - 1;
				memcpy(idbuf, req->headers[i].value, n);
				idbuf[n] = '\0';
				req_id = idbuf;
			}
	}
	double up = upstream_seconds(c);
	struct access_entry e = {
	    .req = req,
	    .client = &c->client,
	    .req_id = req_id,
	    .source = c->route ? c->route->source : NULL,
	    .backend = backend,
	    .alt_backend = alt,
	    .upstream_addr = c->ep ? addr : NULL,
	    .status = status,
	    .upstream_status = c->up_status,
	    .body_bytes_sent = c->resp_body_bytes,
	    .bytes_sent = c->resp_head_bytes + c->resp_body_bytes,
	    .request_length = c->in_floor + (uint64_t)(c->body_bytes > 0 ? c->body_bytes : 0),
	    .upstream_response_length = c->up_status ? (int64_t)c->up_body_bytes : -1,
	    .request_time = (double)(loop_now(c->w->loop) - c->t_start) / 1000.0,
	    .upstream_response_time = c->ep ? up : -1,
	    .now_ms = wall_ms(),
	};
	access_log_write(&c->w->alog, f, &e);
}

/* Answer from the proxy itself; body_exact: send body as is (a route's
 * return_body), else a newline is added when it lacks one. */
/* A gRPC route (backend protocol GRPC, GRPCS): the proxy's own 502, 503
 * and 504 go out as a gRPC status in a headers-only answer (HTTP 200,
 * grpc-status 14 UNAVAILABLE, or 4 DEADLINE_EXCEEDED for 504), which gRPC
 * clients read as the call's result. Returns false for other routes. */
static bool answer_grpc_error(struct conn *c, int status, const char *why)
{
	if (!c->route || (c->route->policy->backend_protocol != ROUTE_PROTO_GRPC &&
	                  c->route->policy->backend_protocol != ROUTE_PROTO_GRPCS))
		return false;
	char msg[160];
	size_t k = 0;
	for (const char *p = why ? why : ""; *p && k < sizeof(msg) - 1; p++)
		if (*p >= 0x20 && *p < 0x7f && *p != '%')
			msg[k++] = *p; /* grpc-message is percent-encoded: no '%' of ours */
	msg[k] = '\0';
	drop_upstream(c);
	char head[512];
	int n = snprintf(head, sizeof(head),
	                 "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\n"
	                 "Grpc-Status: %d\r\nGrpc-Message: %s\r\nContent-Length: 0\r\n"
	                 "Connection: close\r\n\r\n",
	                 status == 504 ? 4 : 14, msg);
	if (n < 0 || (size_t)n >= sizeof(head) || buf_append(&c->out, head, (size_t)n) != 0) {
		conn_close(c);
		return true;
	}
	c->status_sent = 200;
	c->resp_head_bytes = (uint64_t)n;
	c->resp_body_bytes = 0;
	count_request(c, 200, -1);
	log_request(c, 200);
	end_request(c, false);
	return true;
}

static void answer_local_body(struct conn *c, int status, const char *extra, const char *body,
                              bool keep_alive, bool body_exact)
{
	/* custom-http-errors covers the proxy's own answers for an upstream
	 * that cannot answer, as nginx's error_page does */
	if (status >= 502 && status <= 504 && c->req_active && c->x && c->x->up_phase &&
	    error_page_start(c, status))
		return;
	if (status >= 502 && status <= 504 && c->req_active && answer_grpc_error(c, status, body))
		return;
	char text[512];
	char with_hsts[LOCAL_EXTRA_MAX];
	const char *hsts = hsts_value(c);
	bool tokens, allow_backend;
	server_header_settings(c, &tokens, &allow_backend);
	if (hsts || tokens) {
		snprintf(with_hsts, sizeof(with_hsts), "%s%s%s%s%s", extra ? extra : "",
		         hsts ? "Strict-Transport-Security: " : "", hsts ? hsts : "",
		         hsts ? "\r\n" : "", tokens ? "Server: " SERVER_TOKEN "\r\n" : "");
		extra = with_hsts;
	}
	drop_upstream(c);
	bool ka = keep_alive && c->req_active && c->req_body_done &&
	          http_parse_keep_alive(&c->x->rp) && !c->w->draining;
	if (!body_exact && body && body[0] && body[strlen(body) - 1] != '\n') {
		snprintf(text, sizeof(text), "%s\n", body);
		body = text;
	}
	/* A first guess at the room, then the whole cap if that was short. */
	int n = WEIR_ENOMEM;
	size_t room = buf_room(&c->out, 0, LOCAL_HEAD_GUESS);
	if (room > 0)
		n = headers_build_local(status, extra, body, conn_line(c, ka),
		                        c->out.data + c->out.end, room);
	if (n == WEIR_ETOOBIG && c->out.size < c->out.max) {
		room = buf_room(&c->out, 0, c->out.max);
		n = headers_build_local(status, extra, body, conn_line(c, ka),
		                        c->out.data + c->out.end, room);
	}
	if (n < 0) {
		static const char fallback[] =
		    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
		    "Connection: close\r\n\r\n";
		if (c->out.size < sizeof(fallback)) {
			conn_close(c); /* no memory even for that */
			return;
		}
		c->out.start = c->out.end = 0;
		memcpy(c->out.data, fallback, sizeof(fallback) - 1);
		n = (int)sizeof(fallback) - 1;
		ka = false;
	}
	if (c->req_active && c->is_head) {
		/* RFC 9110 9.3.2: the head a GET would get, without its body. */
		const char *start = c->out.data + c->out.end;
		const char *blank = memmem(start, (size_t)n, "\r\n\r\n", 4);
		if (blank)
			n = (int)(blank + 4 - start);
	}
	c->out.end += (size_t)n;
	c->status_sent = status;
	if (c->req_active) {
		size_t blen = body && !c->is_head ? strlen(body) : 0;
		c->resp_body_bytes = blen;
		c->resp_head_bytes = (size_t)n > blen ? (size_t)n - blen : (size_t)n;
		count_request(c, status, -1);
		log_request(c, status);
	}
	end_request(c, ka);
}

static void answer_local(struct conn *c, int status, const char *extra, const char *body,
                         bool keep_alive)
{
	answer_local_body(c, status, extra, body, keep_alive, false);
}

/* ---- upstream connection ---- */

static void on_up_event(struct upstream *u, uint32_t events);
static bool next_upstream(struct conn *c, int cond);

/* The response parser for a new attempt; a gRPC answer's trailers are kept. */
static void response_parse_init(struct conn *c)
{
	http_parse_init(&c->x->sp, true, c->is_head);
	if (c->grpc) {
		buf_free(&c->x->trailers);
		buf_init(&c->x->trailers, ROUTE_LINES_MAX);
		c->x->sp.trailers = &c->x->trailers;
	}
}

/* An HTTP/2 upstream (GRPC, GRPCS): side B of an in-memory channel whose
 * side A h2up serves. */
static int open_h2_upstream(struct conn *c, struct upstream **u, int *err)
{
	struct chan *ch = chan_new(c->w->loop, UP_CHAN_CAP);
	if (!ch) {
		*err = ENOMEM;
		return WEIR_ENOMEM;
	}
	int rc = h2up_attach(c->w->h2up, c->ep, c->backend_tls ? &c->x->up_tls : NULL, ch);
	if (rc != 0) {
		chan_close(ch, CHAN_B);
		*err = rc == WEIR_EINVAL ? EINVAL : ENOMEM;
		return rc;
	}
	rc = upstream_adopt_chan(c->w->pool, ch, on_up_event, c, u);
	if (rc != 0)
		*err = ENOMEM;
	return rc;
}

static int open_upstream(struct conn *c, bool fresh)
{
	int err = 0;
	struct upstream *u = NULL;
	const struct backend_tls_target *tls = c->backend_tls ? &c->x->up_tls : NULL;
	fresh = fresh || c->fcgi; /* one FastCGI request per connection */
	int rc = c->grpc ? open_h2_upstream(c, &u, &err)
	         : fresh ? upstream_connect_tls(c->w->pool, c->ep, tls, on_up_event, c, &u, &err)
	                 : upstream_get_tls(c->w->pool, c->ep, tls, on_up_event, c, &u, &err);
	if (rc == WEIR_ENOMEM) {
		answer_local(c, 503, NULL, "out of memory", false);
		return rc;
	}
	if (rc != 0) {
		metrics_upstream_error("connect");
		if (next_upstream(c, NEXT_ERROR))
			return rc;
		answer_local(c, 502, NULL,
		             err == ECONNREFUSED ? "upstream refused connection"
		                                 : "upstream connect failed",
		             true);
		return rc;
	}
	c->up = u;
	c->req_sent = false;
	c->up_rdhup = false;
	c->up_start = c->last_activity = loop_now(c->w->loop);
	c->got_up_byte = false;
	c->up_eof = false;
	return 0;
}

/* The request head for the error backend (custom-http-errors) in up_out. */
static int build_error_head(struct conn *c)
{
	int from = c->x->err_from;
	struct error_page_req er = {
	    .req = &c->x->req,
	    .client = &c->client,
	    .source = c->route->source,
	    .backend_name =
	        from >= 0 && (size_t)from < c->rt->nbackends ? c->rt->backends[from].name : NULL,
	    .fallback_host = c->x->upstream_host,
	    .code = c->x->err_code,
	};
	size_t head_max = c->up_out.max - IO_CAP;
	c->up_out.start = c->up_out.end = 0;
	size_t room = buf_room(&c->up_out, 0, head_max);
	if (room == 0)
		return WEIR_ENOMEM;
	int n = error_page_build_head(&er, c->up_out.data, room < head_max ? room : head_max);
	if (n < 0)
		return n;
	c->up_out.end = (size_t)n;
	return 0;
}

/* The stderr lines of a FastCGI application go to the log, as nginx's
 * "FastCGI sent in stderr". */
static void fcgi_stderr(void *data, const char *line, size_t len)
{
	struct conn *c = data;
	log_warn("proxy.fastcgi", "upstream %s (%s) sent on stderr: %.*s", c->x->upstream_host,
	         c->route && c->route->source ? c->route->source : "", (int)len, line);
}

/* "100 Continue" from the proxy itself to a client that waits for it
 * before its body, when the proxy reads the body before the upstream sees
 * the request (FastCGI, proxy-request-buffering), as nginx does. */
static void answer_continue(struct conn *c)
{
	if (c->req_body_done || c->interim_sent || c->x->req.version_minor < 1)
		return;
	for (size_t i = 0; i < c->x->req.nheaders && i < HTTP_MAX_HEADERS; i++) {
		const struct http_header *h = &c->x->req.headers[i];
		if (http_name_is(h, "expect") && h->value_len == 12 &&
		    strncasecmp(h->value, "100-continue", 12) == 0) {
			buf_append(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
			c->interim_sent = true;
			return;
		}
	}
}

/* The FastCGI request for the HTTP head head[0..len) (as built for an
 * HTTP upstream): BEGIN_REQUEST and the params made from it, then (body:
 * a buffered chunked body of body_len bytes) its stdin, replacing up_out.
 * Without a body to follow, stdin ends there too. 0, or WEIR_ENOMEM /
 * WEIR_ETOOBIG. */
static int fcgi_encode(struct conn *c, const char *head, size_t len, const char *body,
                       size_t body_len)
{
	struct http_parse hp;
	struct http_request *up = malloc(sizeof(*up));
	if (!up)
		return WEIR_ENOMEM;
	http_parse_init(&hp, false, false);
	if (http_parse_request_head(&hp, head, len, up) != 0) {
		free(up);
		return WEIR_ETOOBIG;
	}
	if (body)
		up->content_length = (int64_t)body_len;
	/* No Host from the client and no upstream-vhost: the HTTP head names
	 * the upstream's address, which is no HTTP_HOST (nginx sends none) */
	if (!c->x->req.host && !(c->route && c->route->policy->upstream_vhost)) {
		size_t k = 0;
		for (size_t i = 0; i < up->nheaders && i < HTTP_MAX_HEADERS; i++)
			if (!http_name_is(&up->headers[i], "host"))
				up->headers[k++] = up->headers[i];
		up->nheaders = k;
	}
	char addr[INET6_ADDRSTRLEN] = "";
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(c->sock.fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr,
			          sizeof(addr));
		else if (ss.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr,
			          sizeof(addr));
	}
	struct fastcgi_vars v = {
	    .req = up,
	    .orig = &c->x->req,
	    .client = &c->client,
	    .cfg = c->route ? &c->route->policy->fastcgi : NULL,
	    .server_addr = addr,
	};
	struct buf out;
	buf_init(&out, c->up_out.max + FASTCGI_PARAMS_CAP + 1024 + body_len +
	                   fastcgi_stdin_overhead(body_len));
	bool follows = body || !c->req_body_done; /* stdin comes after the params */
	int rc = fastcgi_request_head(&v, follows, &out);
	free(up);
	if (!rc && body && body_len)
		rc = fastcgi_stdin(&out, body, body_len);
	if (!rc && body)
		rc = fastcgi_stdin(&out, NULL, 0);
	if (rc) {
		buf_free(&out);
		return rc;
	}
	buf_free(&c->up_out);
	c->up_out = out;
	return 0;
}

/* The HTTP head in up_out becomes the FastCGI request (fcgi_encode), and
 * a fresh reader waits for the answer. A chunked body is read whole first
 * (fcgi_body), as nginx does, so that CONTENT_LENGTH can be sent: until
 * then the head waits in fcgi_head and nothing goes upstream. 0, or
 * WEIR_ENOMEM / WEIR_ETOOBIG. */
static int fcgi_request(struct conn *c)
{
	struct exchange *x = c->x;
	free(x->fcgi_head);
	x->fcgi_head = NULL;
	buf_free(&x->fcgi_body);
	x->fcgi_buffering = c->x->req.chunked && !c->req_body_done;
	if (x->fcgi_buffering) {
		x->fcgi_head = malloc(c->up_out.end);
		if (!x->fcgi_head)
			return WEIR_ENOMEM;
		memcpy(x->fcgi_head, c->up_out.data, c->up_out.end);
		x->fcgi_head_len = c->up_out.end;
		c->up_out.start = c->up_out.end = 0;
		int64_t limit = c->route ? c->route->policy->body_limit : 0;
		buf_init(&x->fcgi_body, limit > 0 && (uint64_t)limit < FCGI_BODY_MAX
		                            ? (size_t)limit
		                            : FCGI_BODY_MAX);
	} else {
		int rc = fcgi_encode(c, c->up_out.data, c->up_out.end, NULL, 0);
		if (rc)
			return rc;
	}
	/* nginx reads a body itself and answers "100 Continue" for it; a
	 * FastCGI application cannot */
	answer_continue(c);
	if (!x->fcgi) {
		x->fcgi = malloc(sizeof(*x->fcgi));
		if (!x->fcgi)
			return WEIR_ENOMEM;
	} else {
		fastcgi_decoder_free(x->fcgi);
	}
	fastcgi_decoder_init(x->fcgi, upstream_head_max(c), fcgi_stderr, c);
	buf_free(&x->fcgi_raw);
	buf_init(&x->fcgi_raw, IO_CAP * 2);
	x->fcgi_eof = false;
	return 0;
}

/* The buffered chunked body is complete: the FastCGI request goes with
 * its length. 0, or an error code. */
static int fcgi_body_done(struct conn *c)
{
	struct exchange *x = c->x;
	int rc = fcgi_encode(c, x->fcgi_head, x->fcgi_head_len,
	                     x->fcgi_body.data ? x->fcgi_body.data + x->fcgi_body.start : "",
	                     buf_len(&x->fcgi_body));
	free(x->fcgi_head);
	x->fcgi_head = NULL;
	buf_free(&x->fcgi_body);
	x->fcgi_buffering = false;
	return rc;
}

static int build_upstream_head(struct conn *c)
{
	if (c->x->err_code)
		return build_error_head(c);
	struct headers_ctx hc;
	memset(&hc, 0, sizeof(hc));
	hc.route = c->route;
	hc.match = c->route ? &c->x->m : NULL;
	hc.settings = &c->rt->settings;
	hc.upstream_host = c->x->upstream_host;
	hc.peer_trusted = c->client.forwarded_trusted;
	char *cc_lines = NULL;
	if (client_cert_headers(client_ssl(c), c->table, c->x->m.host, &cc_lines) != 0)
		return WEIR_ENOMEM;
	hc.client_cert_lines = cc_lines;
	int64_t body_length = -1;
	if (c->x->req.chunked)
		body_length = -2;
	else if (c->x->req.content_length >= 0)
		body_length = c->x->req.content_length;
	/* The head may use the cap but IO_CAP, kept for body bytes; first try
	 * the client's head size plus room for the added headers. */
	size_t head_max = c->up_out.max - IO_CAP;
	size_t want = c->in_floor + HEAD_EXTRA < head_max ? c->in_floor + HEAD_EXTRA : head_max;
	c->up_out.start = c->up_out.end = 0;
	int n = WEIR_ENOMEM;
	size_t room = buf_room(&c->up_out, 0, want);
	if (room > 0)
		n = headers_build_request(&c->x->req, &c->client, &hc, body_length, c->up_out.data,
		                          room < head_max ? room : head_max);
	if (n == WEIR_ETOOBIG && room < head_max) {
		room = buf_room(&c->up_out, 0, head_max);
		if (room < head_max) {
			free(cc_lines);
			return WEIR_ENOMEM;
		}
		n = headers_build_request(&c->x->req, &c->client, &hc, body_length, c->up_out.data,
		                          head_max);
	}
	free(cc_lines);
	if (n < 0)
		return n;
	c->up_out.end = (size_t)n;
	if (c->route && c->route->policy->ext_auth.url) {
		n = auth_hook_upstream_head(c);
		if (n < 0)
			return n;
	}
	return c->fcgi ? fcgi_request(c) : 0;
}

/* Feed load-balance "ewma": the time to the response head, or for a failure
 * at least the connect timeout, so the endpoint loses draws for a while. */
static void feed_ewma(struct conn *c, bool failed)
{
	if (!c->ep || !c->route || c->route->policy->balance != ROUTE_BALANCE_EWMA || !c->up_start)
		return;
	double ms = (double)(loop_now(c->w->loop) - c->up_start);
	if (failed && ms < c->connect_timeout_ms)
		ms = c->connect_timeout_ms;
	balancer_observe(c->ep, ms);
}

/* The proxy-next-upstream condition of an upstream status (http_500 ...),
 * or -1. */
static int status_condition(int status)
{
	static const int codes[] = {500, 502, 503, 504, 403, 404, 429};
	for (int i = 0; i < 7; i++)
		if (codes[i] == status)
			return 3 + i;
	return -1;
}

/* nginx's non-idempotent methods: not passed to another endpoint once the
 * request was sent, unless proxy-next-upstream has non_idempotent. */
static bool retry_unsafe_method(const struct conn *c)
{
	return method_is(c, "POST") || method_is(c, "LOCK") || method_is(c, "PATCH");
}

/* Rebuild what goes upstream for another attempt: the head, and a body
 * from its first byte (it is still in `in`: body_kept). 0, or an error
 * code (the head no longer fits, or parses differently). */
static int rewind_request(struct conn *c)
{
	if (request_has_body(c)) {
		c->in.start = c->in_floor;
		http_parse_init(&c->x->rp, false, false);
		if (http_parse_request_head(&c->x->rp, c->in.data, c->in_floor, &c->x->req) != 0)
			return WEIR_EINVAL;
		c->req_body_done = http_parse_done(&c->x->rp);
		c->body_bytes = 0;
	}
	return build_upstream_head(c);
}

/* proxy-next-upstream: after a failed attempt (cond: a bit index of enum
 * route_next_upstream), start the next one on an endpoint not tried yet when
 * the route's conditions, tries and time limit allow it and it is safe: no
 * byte went to the client, the method is idempotent or nothing was sent (or
 * non_idempotent is set), a body is still whole in memory, a WebSocket
 * upgrade only after a connect error. Returns true when it took the request
 * over (a new attempt runs, or an answer was queued); false: the caller
 * answers as it would have. */
static bool next_upstream(struct conn *c, int cond)
{
	const struct route_policy *pol = c->route ? c->route->policy : NULL;
	uint32_t mask = pol ? pol->next_upstream : ROUTE_NEXT_DEFAULT;
	uint32_t tries = pol ? pol->next_upstream_tries : 3;
	uint32_t limit_ms = pol ? pol->next_upstream_timeout_ms : 0;
	int backend = c->x->pick.backend;
	if (!(mask & (1u << cond)) || c->resp_started || c->interim_sent || !c->rt || backend < 0 ||
	    c->x->err_code || (size_t)backend >= c->rt->nbackends)
		return false;
	const struct route_backend *be = &c->rt->backends[backend];
	if (be->external_name)
		return false;
	if (c->x->req.upgrade_websocket && (cond != NEXT_ERROR || c->req_sent))
		return false;
	if (c->req_sent && retry_unsafe_method(c) && !(mask & ROUTE_NEXT_NON_IDEMPOTENT))
		return false;
	if (request_has_body(c) && !(c->req_body_done && c->body_kept))
		return false;
	if (tries && c->attempts >= tries)
		return false;
	if (limit_ms && loop_now(c->w->loop) - c->first_try >= limit_ms)
		return false;
	int cur = c->x->pick.endpoint;
	if (cur >= 0 && cur < BALANCER_TRIED_MAX)
		c->x->tried[cur / 64] |= 1ull << (cur % 64);
	int next = balancer_retry_pick(c->table, backend, c->x->tried);
	if (next < 0 || (size_t)next >= be->nendpoints)
		return false;
	metrics_upstream_retry(cond);
	drop_upstream(c);
	c->x->pick.endpoint = next;
	c->x->pick.set_cookie[0] = '\0'; /* it named the endpoint that failed */
	/* session-cookie-change-on-failure: the cookie follows the endpoint
	 * that takes over (ingress-nginx re-sets it after a failed attempt) */
	if (c->route && c->route->policy->affinity == ROUTE_AFFINITY_COOKIE &&
	    c->route->policy->cookie.change_on_failure &&
	    !(backend == c->route->canary.backend &&
	      c->route->canary.affinity_behavior == ROUTE_CANARY_LEGACY))
		balancer_affinity_cookie(c->route, &be->endpoints[next], &c->x->req,
		                         c->x->pick.set_cookie, sizeof(c->x->pick.set_cookie));
	c->ep = &be->endpoints[next];
	c->up_in.start = c->up_in.end = 0;
	response_parse_init(c);
	format_host(c->x->upstream_host, sizeof(c->x->upstream_host), c->ep);
	if (c->backend_tls && setup_backend_tls(c) != 0) {
		metrics_upstream_error("connect");
		answer_local(c, 502, NULL, "no name to verify the upstream certificate with", true);
		return true;
	}
	int rc = rewind_request(c);
	if (rc != 0) {
		answer_local(c, rc == WEIR_ENOMEM ? 503 : 502, NULL, "request head too large",
		             false);
		return true;
	}
	c->attempts++;
	c->retried = false;
	open_upstream(c, false);
	return true;
}

/* The upstream failed before a usable response: retry once on a fresh
 * connection when a pooled one was stale and that is safe, else the next
 * endpoint (proxy-next-upstream, cond), else answer 502 (or give up on the
 * client). */
static void upstream_failed(struct conn *c, int cond, const char *kind, const char *message)
{
	bool pooled = c->up && c->up->reused;
	if (!c->resp_started && !c->got_up_byte && pooled && !c->retried && idempotent(c) &&
	    !request_has_body(c) && !c->x->req.upgrade_websocket) {
		c->retried = true;
		drop_upstream(c);
		c->up_in.start = c->up_in.end = 0;
		response_parse_init(c);
		if (build_upstream_head(c) != 0) {
			answer_local(c, 502, NULL, "request head too large", false);
			return;
		}
		open_upstream(c, true);
		return;
	}
	if (!c->resp_started)
		feed_ewma(c, true);
	metrics_upstream_error(kind);
	if (next_upstream(c, cond))
		return;
	if (!c->resp_started) {
		answer_local(c, 502, NULL, message, true);
		return;
	}
	conn_close(c);
}

static void on_up_event(struct upstream *u, uint32_t events)
{
	struct conn *c = u->data;
	if (!c || c->closed || c->up != u)
		return;
	if (!u->connected) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		int err = upstream_connect_error(u);
		if (err == EINPROGRESS || err == EALREADY)
			return;
		if (err != 0) {
			upstream_failed(c, NEXT_ERROR, "connect",
			                err == ECONNREFUSED ? "upstream refused connection"
			                                    : "upstream connect failed");
			if (!c->closed)
				conn_progress(c);
			return;
		}
		u->connected = true;
		c->last_activity = loop_now(c->w->loop);
	}
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->up_rdhup = true;
	if (u->sock.ssl)
		u->can_read = u->can_write = true;
	conn_progress(c);
}

/* ---- custom-http-errors ---- */

/* Replace an answer of status (the upstream's, or the proxy's own) with the
 * error backend's answer to a request for "/" with X-Code & co, as
 * ingress-nginx's error_page ... = @custom_... does: the error backend's
 * status and body go to the client unchanged. Once per request (its own
 * errors are not replaced again, as nginx without recursive_error_pages).
 * True when it took the request over. */
static bool error_page_start(struct conn *c, int status)
{
	/* the status first: most answers are not errors, and it costs no
	 * load of the route and its policy */
	if (status < ROUTE_CUSTOM_ERROR_MIN || !c->route || !c->rt || c->x->err_code ||
	    c->resp_started || c->interim_sent || !route_custom_error_has(c->route->policy, status))
		return false;
	int eb = c->route->error_backend;
	c->x->err_code = status;
	c->x->err_from = c->x->pick.backend >= 0 ? c->x->pick.backend : c->route->backend;
	drop_upstream(c);
	buf_free(&c->up_out);
	buf_free(&c->up_in);
	if (eb < 0 || (size_t)eb >= c->rt->nbackends) {
		/* no default backend: ingress-nginx's built-in one answers 404 */
		answer_local(c, 404, NULL, "default backend - 404", true);
		return true;
	}
	memset(&c->x->pick, 0, sizeof(c->x->pick));
	c->x->pick.backend = eb;
	c->x->pick.endpoint = balancer_round_robin(c->table, eb);
	c->retried = false;
	upstream_go(c);
	return true;
}

/* ---- request start ---- */

static void format_host(char *out, size_t cap, const struct route_endpoint *ep)
{
	/* snprintf's "[%s]:%u" without parsing a format on every request */
	bool v6 = strchr(ep->address, ':') != NULL;
	size_t alen = strlen(ep->address);
	char p[BUF_DEC_MAX];
	size_t plen = buf_dec_u64(p, ep->port);
	if (alen + plen + 3 >= cap) {
		if (v6)
			snprintf(out, cap, "[%s]:%u", ep->address, ep->port);
		else
			snprintf(out, cap, "%s:%u", ep->address, ep->port);
		return;
	}
	char *d = out;
	if (v6)
		*d++ = '[';
	memcpy(d, ep->address, alen);
	d += alen;
	if (v6)
		*d++ = ']';
	*d++ = ':';
	memcpy(d, p, plen);
	d[plen] = '\0';
}

/* The TLS setup of an HTTPS upstream (proxy-ssl-*): the route's profile,
 * and the name sent as SNI (proxy-ssl-server-name) and verified (with
 * proxy-ssl-verify). WEIR_EINVAL when verification is on but there is no
 * usable name: the request must not go out unverified. */
static int setup_backend_tls(struct conn *c)
{
	const struct route_backend_tls *bt = &c->route->policy->backend_tls;
	const struct backend_tls_set *set = table_backend_tls(c->table);
	struct backend_tls_target *t = &c->x->up_tls;
	const char *vhost = c->route->policy->upstream_vhost;
	memset(t, 0, sizeof(*t));
	backend_tls_profile(set, c->route->backend_tls, &t->ctx, &t->id);
	backend_tls_name(bt, vhost ? vhost : c->x->req.host,
	                 vhost            ? strlen(vhost)
	                 : c->x->req.host ? c->x->req.host_len
	                                  : 0,
	                 c->ep->address, c->x->up_tls_name, sizeof(c->x->up_tls_name));
	const char *name = c->x->up_tls_name[0] ? c->x->up_tls_name : NULL;
	t->sni = bt->server_name ? name : NULL;
	if (backend_tls_verifies(set, c->route->backend_tls)) {
		if (!name)
			return WEIR_EINVAL;
		t->name = name;
	}
	return 0;
}

/* ---- forward auth (auth-url): the hooks around proxy/auth_request.c ---- */

/* The auth server answered (or failed): go on to the upstream, or answer
 * the client as ingress-nginx does. */
static void on_auth_done(struct auth_request *ar, void *data)
{
	struct conn *c = data;
	if (c->closed || c->auth != ar || c->state != ST_AUTH)
		return;
	const struct route_ext_auth *a = &c->route->policy->ext_auth;
	int st = auth_request_status(ar);
	int decision = auth_request_decision(a, st);
	if (decision == 0) {
		upstream_start(c);
	} else {
		char extra[3 * 8192 + 4200];
		size_t len = 0;
		extra[0] = '\0';
		if (decision == 302) {
			char loc[4096];
			if (auth_request_signin_location(a, &c->x->req, &c->client, loc,
			                                 sizeof(loc)) < 0) {
				answer_local(c, 500, NULL, "signin URL too long", true);
				goto out;
			}
			len += (size_t)snprintf(extra + len, sizeof(extra) - len,
			                        "Location: %s\r\n", loc);
		}
		if (decision == 401)
			len += (size_t)snprintf(extra + len, sizeof(extra) - len, "%s",
			                        auth_request_www_auth_lines(ar));
		/* ingress-nginx adds them to the signin redirect too */
		if ((a->always_set_cookie || decision == 302) && st != 0)
			snprintf(extra + len, sizeof(extra) - len, "%s",
			         auth_request_cookie_lines(ar));
		answer_local(c, decision, extra[0] ? extra : NULL,
		             decision == 500   ? "authentication service error"
		             : decision == 403 ? "forbidden"
		             : decision == 401 ? "unauthorized"
		                               : NULL,
		             true);
	}
out:
	if (!c->closed)
		conn_progress(c);
}

/* Start the auth subrequest; the request waits in ST_AUTH. */
static void auth_hook_start(struct conn *c)
{
	struct auth_request_params p;
	memset(&p, 0, sizeof(p));
	p.auth = &c->route->policy->ext_auth;
	p.req = &c->x->req;
	p.client = &c->client;
	p.resolver = c->w->resolver;
	char scope[1024];
	snprintf(scope, sizeof(scope), "%s\n%s", label_host(c), c->route->path);
	p.cache = c->w->ext_auth_cache;
	p.cache_scope = scope;
	p.connect_timeout_ms = c->connect_timeout_ms;
	p.timeout_ms = c->read_timeout_ms;
	int rc = auth_request_start(c->w->loop, c->w->pool, &p, on_auth_done, c, &c->auth);
	if (rc == WEIR_ENOMEM) {
		answer_local(c, 503, NULL, "out of memory", false);
		return;
	}
	if (rc != 0) {
		c->auth = NULL;
		answer_local(c, 500, NULL, "authentication service error", true);
		return;
	}
	c->state = ST_AUTH;
}

/* The upstream request head (in up_out, from offset 0): the client's own
 * headers named in auth-response-headers go, the auth server's values come
 * in. Returns the new length (up_out.end set) or WEIR_ETOOBIG / WEIR_ENOMEM. */
static int auth_hook_upstream_head(struct conn *c)
{
	const struct route_ext_auth *a = &c->route->policy->ext_auth;
	const char *lines = c->auth ? auth_request_upstream_lines(c->auth) : "";
	size_t len = c->up_out.end, head_max = c->up_out.max - IO_CAP;
	size_t more = strlen(lines);
	if (len >= head_max)
		return WEIR_ETOOBIG;
	size_t room = buf_room(&c->up_out, 0, more < head_max - len ? more : head_max - len);
	if (!c->up_out.data)
		return WEIR_ENOMEM;
	size_t cap = len + room < head_max ? len + room : head_max;
	int n = auth_request_edit_head(c->up_out.data, len, cap, a->response_headers,
	                               a->nresponse_headers, lines);
	if (n >= 0)
		c->up_out.end = (size_t)n;
	return n;
}

/* The response head (n bytes at out.end, cap bytes of room there): the auth server's Set-Cookie
 * lines join it on the statuses nginx's add_header covers, or always with
 * auth-always-set-cookie. */
static int auth_hook_response_head(struct conn *c, size_t n, size_t cap)
{
	const char *lines = auth_request_cookie_lines(c->auth);
	int st = c->x->resp.status;
	bool due = c->route->policy->ext_auth.always_set_cookie || st == 200 || st == 201 ||
	           st == 204 || st == 206 || st == 301 || st == 302 || st == 303 || st == 304 ||
	           st == 307 || st == 308;
	if (!due || !lines[0])
		return (int)n;
	return auth_request_edit_head(c->out.data + c->out.end, n, cap, NULL, 0, lines);
}

static void start_request(struct conn *c, size_t head_len)
{
	c->req_active = true;
	c->req_body_done = false;
	c->body_too_big = false;
	c->body_bytes = 0;
	c->resp_started = false;
	c->resp_head_done = false;
	c->got_up_byte = false;
	c->retried = false;
	c->attempts = 0;
	c->req_sent = false;
	c->body_kept = true;
	c->interim_sent = false;
	c->prebuffer = false;
	c->out_high = IO_CAP;
	memset(c->x->tried, 0, sizeof(c->x->tried));
	c->x->up_phase = false;
	c->x->err_code = 0;
	c->x->err_from = -1;
	c->up_start = 0;
	c->status_sent = 0;
	c->up_status = 0;
	c->resp_head_bytes = c->resp_body_bytes = c->up_body_bytes = 0;
	c->route = NULL;
	c->ep = NULL;
	memset(&c->x->m, 0, sizeof(c->x->m));
	c->in_floor = head_len;
	c->in.start = head_len;
	c->t_start = loop_now(c->w->loop);
	c->connect_timeout_ms = 5000;
	c->read_timeout_ms = 60000;
	c->send_timeout_ms = 60000;

	int status = http_parse_request_head(&c->x->rp, c->in.data, head_len, &c->x->req);
	if (!status && (c->x->req.chunked || c->x->req.content_length > 0) &&
	    c->in.size - head_len < IO_CAP && c->in.size < c->in.max) {
		/* Room for body bytes behind the head before req points into the
		 * memory for good: grow, then parse the head again. */
		buf_room(&c->in, head_len, IO_CAP);
		http_parse_init(&c->x->rp, false, false);
		status = http_parse_request_head(&c->x->rp, c->in.data, head_len, &c->x->req);
	}
	c->in.pinned = true; /* until end_request: req points into it */
	if (status) {
		answer_local(c, status, NULL,
		             status == 431   ? "request header too large"
		             : status == 405 ? "method not allowed"
		                             : "bad request",
		             false);
		return;
	}
	c->req_body_done = http_parse_done(&c->x->rp);
	c->is_head = method_is(c, "HEAD");
	new_request_id(c);
	c->table = table_view_get(&c->w->view);
	if (!c->table) {
		answer_local(c, 503, NULL, "no route table loaded", true);
		return;
	}
	c->rt = table_routes(c->table);
	realip_resolve(&c->rt->settings, &c->x->req, &c->client);
	/* block-cidrs, block-user-agents, block-referers: before the host and
	 * its routes, as ingress-nginx's http-level deny and server-level map. */
	if (block_check(table_block(c->table), &c->x->req, &c->client)) {
		answer_local(c, 403, NULL, "forbidden", true);
		return;
	}
	int rc = table_lookup(c->table, c->x->req.host, c->x->req.host ? c->x->req.host_len : 0,
	                      c->x->req.path, c->x->req.path_len, &c->x->m);
	/* As nginx: the host's client certificate check comes before its
	 * locations (and their 404). */
	char cc_extra[CLIENT_CERT_EXTRA_MAX];
	const char *cc_body;
	status =
	    client_cert_check(client_ssl(c), c->table, c->x->m.host, rc == 0 ? c->x->m.route : NULL,
	                      cc_extra, sizeof(cc_extra), &cc_body);
	if (status) {
		answer_local(c, status, cc_extra[0] ? cc_extra : NULL, cc_body, false);
		return;
	}
	if (rc != 0) {
		c->x->m.route = NULL;
		if (c->rt->default_backend < 0) {
			answer_local(c, 404, NULL, "no route for host/path", true);
			return;
		}
	}
	c->route = c->x->m.route;
	if (c->route) {
		c->connect_timeout_ms = c->route->policy->connect_timeout_ms;
		c->read_timeout_ms = c->route->policy->read_timeout_ms;
		c->send_timeout_ms = c->route->policy->send_timeout_ms;
	}
	struct policy_result pr;
	policy_check(c->route, &c->x->req, &c->client, &pr);
	if (pr.status) {
		char extra[sizeof(pr.location) + sizeof(pr.extra_headers) + ROUTE_LINES_MAX + 32];
		char lines[ROUTE_LINES_MAX];
		lines[0] = '\0';
		if (pr.route_headers && headers_route_lines(c->route, pr.status, &c->x->req,
		                                            &c->client, lines, sizeof(lines)) < 0) {
			/* A fixed answer must carry them (500 rather than less); a
			 * redirect goes out without them, as it did before it carried
			 * any. */
			log_warn("proxy.server",
			         "route response headers exceed %u bytes on a local answer",
			         ROUTE_LINES_MAX);
			if (pr.body_exact) {
				answer_local(c, 500, NULL, "Internal Server Error", true);
				return;
			}
			lines[0] = '\0';
		}
		if (pr.location[0])
			snprintf(extra, sizeof(extra), "Location: %s\r\n%s%s", pr.location,
			         pr.extra_headers, lines);
		else
			snprintf(extra, sizeof(extra), "%s%s", pr.extra_headers, lines);
		answer_local_body(c, pr.status, extra[0] ? extra : NULL, pr.body, pr.status != 413,
		                  pr.body_exact);
		return;
	}
	status = policy_limit_enter(c->route, &c->client, (int)c->rt->settings.limit_req_status,
	                            (int)c->rt->settings.limit_conn_status);
	if (status) {
		answer_local(c, status, NULL, "too many requests from this address", true);
		return;
	}
	c->limit_entered = true;
	/* After limit-rps (nginx: preaccess before access), before any upstream
	 * and so before a WebSocket upgrade. */
	if (pr.skip_auth) {
		upstream_start(c);
		return;
	}
	char auth_extra[AUTH_BASIC_EXTRA_MAX];
	status = auth_basic_check(c->w->auth_cache, c->table, c->route, &c->x->req,
	                          loop_now(c->w->loop), auth_extra, sizeof(auth_extra));
	if (status) {
		answer_local(c, status, auth_extra[0] ? auth_extra : NULL,
		             status == 401 ? "authorization required" : "bad request", true);
		return;
	}
	/* Forward auth after basic auth (nginx: auth_basic, then auth_request,
	 * both access phase, in module order). */
	if (c->route && c->route->policy->ext_auth.url) {
		auth_hook_start(c); /* resumes at upstream_start when allowed */
		return;
	}
	upstream_start(c);
}

/* Pick the endpoint and open the upstream: the rest of start_request. */
/* mirror-target: the copy starts as the request goes upstream (after the
 * access checks, as nginx's mirror runs in the precontent phase); with a
 * body, req_body_cb feeds it until the body is complete. */
static void mirror_hook(struct conn *c)
{
	const struct route_mirror *m = &c->route->policy->mirror;
	char host[256];
	size_t hl = 0;
	const char *h = c->x->req.host;
	size_t n = h ? c->x->req.host_len : 0;
	if (n && h[0] == '[') {
		const char *e = memchr(h, ']', n);
		n = e ? (size_t)(e - h) + 1 : n;
	} else if (n) {
		const char *e = memchr(h, ':', n);
		n = e ? (size_t)(e - h) : n;
	}
	if (n == 0) {
		h = label_host(c);
		n = strlen(h);
	}
	for (; hl < n && hl < sizeof(host); hl++)
		host[hl] = (h[hl] >= 'A' && h[hl] <= 'Z') ? (char)(h[hl] + 32) : h[hl];
	bool body = request_has_body(c) && !c->req_body_done;
	mirror_start(c->w->mirrors, m, &c->x->req, host, hl, body, c->connect_timeout_ms,
	             c->read_timeout_ms, &c->mirror);
}

static void upstream_start(struct conn *c)
{
	if (c->route && c->route->policy->mirror.url && !c->mirror)
		mirror_hook(c);
	c->x->up_phase = true;
	memset(&c->x->pick, 0, sizeof(c->x->pick));
	c->x->pick.backend = -1;
	if (balancer_choose(c->table, c->route, &c->x->req, &c->client, &c->x->pick) != 0 ||
	    c->x->pick.backend < 0 || (size_t)c->x->pick.backend >= c->rt->nbackends) {
		answer_local(c, 503, NULL, "no backend for this route", true);
		return;
	}
	upstream_go(c);
}

/* The first lookup of an ExternalName backend ended: go on, or 502. */
static void on_external(void *data, int rc)
{
	struct conn *c = data;
	c->x->ext_wait = NULL; /* freed before the call */
	if (c->closed || c->state != ST_RESOLVE)
		return;
	if (rc != 0) {
		metrics_upstream_error("resolve");
		answer_local(c, 502, NULL, "upstream name did not resolve", true);
	} else {
		upstream_go(c);
	}
	if (!c->closed)
		conn_progress(c);
}

/* An address of the ExternalName backend be for c->ep: 0 when c->ep is
 * set, else the request waits (ST_RESOLVE) or was answered. */
static int external_endpoint(struct conn *c, const struct route_backend *be)
{
	struct external_wait *wait = NULL;
	int rc = external_names_pick(c->w->ext_names, be->external_name, c->x->ext_addr,
	                             on_external, c, &wait);
	if (rc == WEIR_EAGAIN) {
		c->x->ext_wait = wait;
		if (c->state != ST_RESOLVE) {
			c->state = ST_RESOLVE;
			c->x->ext_since = loop_now(c->w->loop);
		}
		return rc;
	}
	if (rc != 0) {
		metrics_upstream_error("resolve");
		answer_local(c, rc == WEIR_ENOMEM ? 503 : 502, NULL,
		             rc == WEIR_ENOMEM ? "out of memory" : "upstream name did not resolve",
		             true);
		return rc;
	}
	memset(&c->x->ext_ep, 0, sizeof(c->x->ext_ep));
	c->x->ext_ep.address = c->x->ext_addr;
	c->x->ext_ep.port = be->external_port;
	c->x->ext_ep.weight = 1;
	c->ep = &c->x->ext_ep;
	return 0;
}

/* proxy-buffer-size of the request's route, else (the default backend) of
 * the ConfigMap. */
static size_t upstream_head_max(const struct conn *c)
{
	if (c->route)
		return c->route->policy->upstream_head_max;
	return c->rt ? c->rt->settings.upstream_head_max : UP_HEAD_DEFAULT;
}

/* Open the upstream for the backend and endpoint picked: the rest of
 * upstream_start, run again when an ExternalName lookup ends. */
static void upstream_go(struct conn *c)
{
	char msg[600];
	int rc;
	const struct route_backend *be = &c->rt->backends[c->x->pick.backend];
	if (be->external_name) {
		if (external_endpoint(c, be) != 0)
			return;
	} else if (c->x->pick.endpoint < 0 || (size_t)c->x->pick.endpoint >= be->nendpoints) {
		metrics_upstream_error("no_endpoints");
		snprintf(msg, sizeof(msg), "no endpoints for %s", be->name ? be->name : "backend");
		answer_local(c, 503, NULL, msg, true);
		return;
	} else {
		c->ep = &be->endpoints[c->x->pick.endpoint];
	}
	enum route_protocol proto =
	    c->route && !c->x->err_code ? c->route->policy->backend_protocol : ROUTE_PROTO_HTTP;
	c->backend_tls = proto == ROUTE_PROTO_HTTPS || proto == ROUTE_PROTO_GRPCS ||
	                 (proto == ROUTE_PROTO_AUTO_HTTP && c->https);
	c->fcgi = proto == ROUTE_PROTO_FCGI;
	c->grpc = proto == ROUTE_PROTO_GRPC || proto == ROUTE_PROTO_GRPCS;
	format_host(c->x->upstream_host, sizeof(c->x->upstream_host), c->ep);
	if (c->backend_tls && setup_backend_tls(c) != 0) {
		metrics_upstream_error("connect");
		answer_local(c, 502, NULL, "no name to verify the upstream certificate with", true);
		return;
	}

	buf_init(&c->up_out, (size_t)c->max_header_bytes + 16384 + IO_CAP);
	/* room for the largest head allowed and one byte more (to see it is
	 * too big), and at least UP_IN_MIN for body reads */
	size_t head_max = upstream_head_max(c) + (c->fcgi ? FASTCGI_HEAD_EXTRA : 0);
	buf_init(&c->up_in, head_max + 1 > UP_IN_MIN ? head_max + 1 : UP_IN_MIN);
	rc = build_upstream_head(c);
	if (rc == WEIR_ENOMEM) {
		answer_local(c, 503, NULL, "out of memory", false);
		return;
	}
	if (rc != 0) {
		answer_local(c, 431, NULL, "request header too large", false);
		return;
	}
	response_parse_init(c);
	c->state = ST_PROXY;
	c->attempts = 1;
	c->first_try = loop_now(c->w->loop);
	const struct route_policy *pol = c->route ? c->route->policy : NULL;
	c->out_high = pol && pol->response_buffering ? ROUTE_RESPONSE_BUFFER_MAX : IO_CAP;
	if (c->out.max < OUT_HEAD_ROOM + c->out_high + IO_CAP)
		c->out.max = OUT_HEAD_ROOM + c->out_high + IO_CAP;
	/* streaming RPCs need each message to go on as it comes */
	bool rpc = pol && (pol->backend_protocol == ROUTE_PROTO_GRPC ||
	                   pol->backend_protocol == ROUTE_PROTO_GRPCS);
	c->prebuffer = pol && pol->request_buffering && request_has_body(c) && !c->req_body_done &&
	               !c->x->req.upgrade_websocket && !c->x->err_code && !rpc;
	if (c->prebuffer) {
		/* the body first (pump_request opens the upstream) */
		c->up_out.max += ROUTE_REQUEST_BUFFER_MAX;
		c->last_activity = loop_now(c->w->loop);
		answer_continue(c);
		return;
	}
	open_upstream(c, false);
}

/* ---- client head ---- */

static int read_client(struct conn *c, struct buf *b, size_t floor, bool *eof)
{
	size_t room = buf_room(b, floor, IO_CAP / 2);
	if (room == 0 || !c->can_read)
		return 0;
	ssize_t n = tls_sock_read(&c->sock, b->data + b->end, room);
	if (n == WEIR_EAGAIN) {
		tls_sock_blocked(&c->sock, &c->can_read, &c->can_write);
		return 0;
	}
	if (n <= 0) {
		*eof = true;
		return n == 0 ? 0 : -1;
	}
	note_read(&c->sock, c->rdhup, n, room, &c->can_read);
	b->end += (size_t)n;
	return (int)n;
}

static bool progress_head(struct conn *c)
{
	if (buf_len(&c->out) > 0)
		return false; /* the previous answer first, in order */
	for (int round = 0; round < 2; round++) {
		int h2 = h2_takes(c);
		if (h2 == 1)
			return true;
		if (h2 == 0 && buf_len(&c->in) > 0) {
			long r = http_parse_scan_head(&c->x->rp, c->in.data, c->in.end,
			                              c->max_header_bytes);
			if (r < 0) {
				c->req_active = true;
				answer_local(c, (int)-r, NULL,
				             r == -431 ? "request header too large" : "bad request",
				             false);
				return true;
			}
			int st =
			    r > 0 ? http_parse_long_line(c->in.data, (size_t)r, c->max_header_line)
			          : 0;
			if (st) {
				c->req_active = true;
				answer_local(c, st, NULL,
				             st == 414 ? "request-uri too large"
				                       : "request header or cookie too large",
				             false);
				return true;
			}
			if (r > 0) {
				start_request(c, (size_t)r);
				return true;
			}
		}
		if (round == 1)
			break;
		size_t before = buf_len(&c->in);
		/* The head must start at offset 0 and fit the cap. */
		if (c->in.end == c->in.max) {
			c->req_active = true;
			answer_local(c, 431, NULL, "request header too large", false);
			return true;
		}
		if (!c->can_read)
			return false;
		/* Bytes are coming: the request state and the head's memory are
		 * made now, and grow while the head does. */
		size_t room = 0;
		if (conn_exchange(c) == 0)
			room = buf_room(&c->in, 0, HEAD_READ_MIN);
		if (room == 0) {
			conn_close(c); /* out of memory */
			return true;
		}
		ssize_t n = tls_sock_read(&c->sock, c->in.data + c->in.end, room);
		if (n == WEIR_EAGAIN) {
			tls_sock_blocked(&c->sock, &c->can_read, &c->can_write);
			return false;
		}
		if (n <= 0) {
			conn_close(c);
			return true;
		}
		if (before == 0)
			c->head_started = loop_now(c->w->loop);
		note_read(&c->sock, c->rdhup, n, room, &c->can_read);
		c->in.end += (size_t)n;
	}
	return true;
}

/* ---- request body ---- */

static int append_chunk(struct buf *b, const char *p, size_t len)
{
	char hdr[24];
	int h = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
	if (buf_append(b, hdr, (size_t)h) != 0 || buf_append(b, p, len) != 0 ||
	    buf_append(b, "\r\n", 2) != 0)
		return -1;
	return 0;
}

static int req_body_cb(void *data, const char *p, size_t len)
{
	struct conn *c = data;
	c->body_bytes += (int64_t)len;
	int64_t limit = c->route ? c->route->policy->body_limit : 0;
	if (limit > 0 && c->body_bytes > limit) {
		c->body_too_big = true;
		return -1;
	}
	if (c->mirror && mirror_body(c->mirror, p, len) != 0)
		c->mirror = NULL; /* over MIRROR_BODY_MAX: dropped */
	if (c->fcgi && c->x->fcgi_buffering) {
		if (buf_append(&c->x->fcgi_body, p, len)) {
			c->body_too_big = true;
			return -1;
		}
		return 0;
	}
	if (c->fcgi)
		return fastcgi_stdin(&c->up_out, p, len);
	if (c->x->req.chunked)
		return append_chunk(&c->up_out, p, len);
	return buf_append(&c->up_out, p, len);
}

static bool pump_request(struct conn *c)
{
	bool progress = false;
	struct upstream *u = c->up;
	if (!c->req_body_done && !c->x->req.upgrade_websocket && !c->x->err_code) {
		if (buf_len(&c->in) > 0) {
			size_t room =
			    c->fcgi && c->x->fcgi_buffering
			        ? buf_room(&c->x->fcgi_body, 0, IO_CAP) + CHUNK_OVERHEAD * 3
			        : buf_room(&c->up_out, 0, IO_CAP);
			size_t limit = room > CHUNK_OVERHEAD * 2 ? room - CHUNK_OVERHEAD * 2 : 0;
			size_t n = buf_len(&c->in) < limit ? buf_len(&c->in) : limit;
			if (n > 0) {
				size_t used = 0;
				int r = http_parse_body(&c->x->rp, c->in.data + c->in.start, n,
				                        &used, req_body_cb, c);
				c->in.start += used;
				if (used)
					progress = true;
				if (r == 1) {
					c->req_body_done = true;
					if (c->mirror)
						mirror_body_done(c->mirror);
					c->mirror = NULL;
					if (c->fcgi && c->x->fcgi_buffering) {
						if (fcgi_body_done(c) != 0) {
							answer_local(c, 413, NULL,
							             "request body too large",
							             false);
							return true;
						}
					} else if (c->fcgi) {
						fastcgi_stdin(&c->up_out, NULL, 0);
					} else if (c->x->req.chunked)
						buf_append(&c->up_out, "0\r\n\r\n", 5);
				} else if (r < 0) {
					if (c->resp_started) {
						conn_close(c);
					} else if (c->body_too_big) {
						answer_local(c, 413, NULL, "request body too large",
						             false);
					} else {
						answer_local(c, 400, NULL, "bad request body",
						             false);
					}
					return true;
				}
			}
		}
		if (!c->req_body_done && buf_len(&c->in) == 0) {
			bool eof = false;
			/* Body bytes already passed on stay in `in` for a retry
			 * (proxy-next-upstream) while there is room behind them;
			 * after that the read reuses their room. */
			size_t floor = c->in_floor;
			if (c->in.start > c->in_floor && c->body_kept && c->in.end < c->in.size)
				floor = c->in.start;
			else if (c->in.start > c->in_floor)
				c->body_kept = false;
			int n = read_client(c, &c->in, floor, &eof);
			if (eof) {
				conn_close(c); /* the client left in the middle of its body */
				return true;
			}
			if (n > 0) {
				progress = true;
				c->last_activity = loop_now(c->w->loop);
			}
		}
	}
	if (c->prebuffer && !c->closed &&
	    (c->req_body_done || buf_len(&c->up_out) >= ROUTE_REQUEST_BUFFER_MAX)) {
		/* proxy-request-buffering: the body is in (or as much as is held
		 * in memory); the rest streams */
		c->prebuffer = false;
		open_upstream(c, false); /* on failure it answered */
		return true;
	}
	if (u && u->connected && buf_len(&c->up_out) > 0 && u->can_write) {
		ssize_t n = tls_sock_flush(&u->sock, &c->up_out, &u->can_read, &u->can_write);
		if (n < 0 && u->sock.ssl && !u->sock.handshake_done) {
			/* nginx logs a refused upstream certificate the same way */
			char why[200];
			backend_tls_failure(u->sock.ssl, why, sizeof(why));
			log_warn("proxy.server", "upstream %s (%s): TLS handshake failed: %s",
			         c->x->upstream_host,
			         c->route && c->route->source ? c->route->source : "", why);
			upstream_failed(c, NEXT_ERROR, "tls", "upstream TLS handshake failed");
			return true;
		}
		if (n < 0) {
			upstream_failed(c, NEXT_ERROR, "reset", "upstream reset");
			return true;
		}
		if (n > 0) {
			c->req_sent = true;
			progress = true;
			c->last_activity = loop_now(c->w->loop);
		}
	}
	return progress;
}

/* ---- response ---- */

static int resp_body_cb(void *data, const char *p, size_t len)
{
	struct conn *c = data;
	c->up_body_bytes += len;
	if (c->gz)
		return buf_append(&c->gz_in, p, len);
	c->resp_body_bytes += len;
	if (c->out_chunked)
		return append_chunk(&c->out, p, len);
	return buf_append(&c->out, p, len);
}

/* Compress what gz_in holds into out (framed as the response is) in mode,
 * while out holds less than IO_CAP (back-pressure: the rest waits in gz_in
 * or in zlib). Returns 1 when the gzip stream is complete (COMPRESS_FINISH),
 * 0 when more is due later, -1 on failure. */
static int gz_pump(struct conn *c, enum compress_mode mode, bool *progress)
{
	char tmp[GZ_OUT];
	for (;;) {
		if (buf_len(&c->out) >= IO_CAP)
			return 0;
		size_t in_len = buf_len(&c->gz_in), used, produced;
		const char *in = in_len ? c->gz_in.data + c->gz_in.start : NULL;
		int r = compress_run(c->gz, in, in_len, &used, tmp, sizeof(tmp), &produced, mode);
		if (r < 0)
			return -1;
		c->gz_in.start += used;
		if (c->gz_in.start == c->gz_in.end)
			c->gz_in.start = c->gz_in.end = 0;
		if (produced > 0) {
			int e = c->out_chunked ? append_chunk(&c->out, tmp, produced)
			                       : buf_append(&c->out, tmp, produced);
			if (e != 0)
				return -1;
			c->resp_body_bytes += produced;
		}
		if (used || produced)
			*progress = true;
		if (r == 1)
			return 1;
		if (produced < sizeof(tmp) && buf_len(&c->gz_in) == 0)
			return 0;
		if (!used && !produced)
			return 0;
	}
}

/* The upstream's body is all in. Without gzip the response ends here; with
 * it the rest of the compressed stream must fit in out first (pump_response
 * calls again while gz_body_done). Returns true when the exchange is over
 * (finished or closed). */
static bool response_done(struct conn *c, bool *progress)
{
	if (c->gz) {
		c->gz_body_done = true;
		int r = gz_pump(c, COMPRESS_FINISH, progress);
		if (r < 0) {
			conn_close(c);
			return true;
		}
		if (r == 0)
			return false;
		gz_end(c);
	}
	finish_response(c);
	return true;
}

static void finish_response(struct conn *c)
{
	if (c->out_chunked && c->grpc && buf_len(&c->x->trailers) > 0) {
		buf_append(&c->out, "0\r\n", 3);
		buf_append(&c->out, c->x->trailers.data + c->x->trailers.start,
		           buf_len(&c->x->trailers));
		buf_append(&c->out, "\r\n", 2);
	} else if (c->out_chunked) {
		buf_append(&c->out, "0\r\n\r\n", 5);
	}
	bool reusable = c->up_keepalive && c->req_body_done && buf_len(&c->up_in) == 0 &&
	                !c->up_eof && buf_len(&c->up_out) == 0;
	count_request(c, c->status_sent, upstream_seconds(c));
	log_request(c, c->status_sent);
	release_upstream(c, reusable);
	end_request(c, c->keep_alive && c->req_body_done);
}

static bool websocket_accept_ok(const struct conn *c)
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	const struct http_header *key = NULL, *acc = NULL;
	for (size_t i = 0; i < c->x->req.nheaders; i++)
		if (http_name_is(&c->x->req.headers[i], "sec-websocket-key"))
			key = &c->x->req.headers[i];
	for (size_t i = 0; i < c->x->resp.nheaders; i++)
		if (http_name_is(&c->x->resp.headers[i], "sec-websocket-accept"))
			acc = &c->x->resp.headers[i];
	if (!key || !acc || key->value_len > 128)
		return false;
	unsigned char in[128 + sizeof(guid)];
	memcpy(in, key->value, key->value_len);
	memcpy(in + key->value_len, guid, sizeof(guid) - 1);
	unsigned char md[SHA_DIGEST_LENGTH];
	SHA1(in, key->value_len + sizeof(guid) - 1, md);
	unsigned char b64[64];
	int n = EVP_EncodeBlock(b64, md, SHA_DIGEST_LENGTH);
	return n > 0 && (size_t)n == acc->value_len && memcmp(b64, acc->value, (size_t)n) == 0;
}

static void become_tunnel(struct conn *c, size_t head_len)
{
	struct worker *w = c->w;
	/* Bytes for the client: the 101 head (in out) then whatever the upstream
	 * sent after it. Bytes for the upstream: what the client sent after its
	 * request head. */
	size_t nc = buf_len(&c->out), nextra = c->up_in.end - head_len;
	char *to_client = malloc(nc + nextra + 1);
	if (!to_client) {
		conn_close(c);
		return;
	}
	memcpy(to_client, c->out.data + c->out.start, nc);
	memcpy(to_client + nc, c->up_in.data + head_len, nextra);
	if (c->sock.chan) {
		/* HTTP/2 tunnels come over socket pairs (h2.c), and no other
		 * HTTP/2 request asks for an upgrade */
		free(to_client);
		conn_close(c);
		return;
	}
	struct tls_sock cs = c->sock, us;
	if (cs.ssl)
		SSL_set_app_data(cs.ssl, NULL); /* the slot dies with c */
	loop_io_del(w->loop, &c->io);
	c->io.fd = -1;
	c->sock.fd = -1;
	c->sock.ssl = NULL;
	upstream_detach(c->up, &us);
	c->up = NULL;
	count_request(c, 101, upstream_seconds(c));
	log_request(c, 101);
	struct tunnel_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.websocket = true;
	cfg.idle_ms = c->route ? c->route->policy->ws_idle_timeout_ms : 3600000;
	cfg.max_lifetime_ms = c->route ? c->route->policy->ws_max_lifetime_ms : 0;
	cfg.route = c->route;
	cfg.client = &c->client;
	cfg.limit_entered = c->limit_entered;
	cfg.ping_interval_ms = c->route ? c->route->policy->ws_ping_interval_ms : 0;
	cfg.drain_window_ms =
	    c->route ? c->route->policy->drain_window_ms : c->rt->settings.drain_window_ms;
	cfg.backend_name = c->rt->backends[c->x->pick.backend].name;
	/* an ExternalName's addresses are not in the table: no drain on swaps */
	cfg.endpoint = c->rt->backends[c->x->pick.backend].external_name ? NULL : c->ep;
	c->limit_entered = false; /* the tunnel gives the count back */
	tunnel_start(&w->tw, &cs, &us, c->in.data + c->in.start, buf_len(&c->in), to_client,
	             nc + nextra, &cfg);
	free(to_client);
	c->req_active = false;
	conn_close(c);
}

/* Additions to the response head: the affinity cookie, and the CORS origin
 * (the request head is still in c->in, so req's pointers are valid). */
static void resp_extra(struct conn *c, const char *cookie, struct headers_resp_extra *x)
{
	memset(x, 0, sizeof(*x)); /* no compression unless the caller says so */
	x->set_cookie = cookie;
	x->hsts = hsts_value(c);
	bool tokens, allow_backend;
	server_header_settings(c, &tokens, &allow_backend);
	x->hide_server = !allow_backend;
	x->server = tokens ? SERVER_TOKEN : NULL;
	x->allow_origin = NULL; /* left as is when CORS headers are not due */
	x->allow_origin_len = 0;
	policy_cors_allow_origin(c->route, &c->x->req, &x->allow_origin, &x->allow_origin_len);
	x->req = &c->x->req;
	x->client = &c->client;
}

/* One try of build_response_head in room bytes at the end of out, with the
 * forward-auth Set-Cookie lines added when the request had an auth grant. */
static int build_response_head_in(struct conn *c, struct headers_resp_extra *x, int64_t body_length,
                                  bool ka, size_t room)
{
	int n = headers_build_response(&c->x->resp, c->route, x, body_length, conn_line(c, ka),
	                               c->out.data + c->out.end, room);
	if (n >= 0 && c->auth)
		n = auth_hook_response_head(c, (size_t)n, room);
	return n;
}

/* Build the response head at the end of out: first with room for the
 * upstream's head and some additions, then with the whole cap. Returns its
 * length or WEIR_ETOOBIG / WEIR_ENOMEM. */
static int build_response_head(struct conn *c, struct headers_resp_extra *x, int64_t body_length,
                               bool ka, size_t head_len)
{
	int n = WEIR_ENOMEM;
	size_t more = c->auth ? strlen(auth_request_cookie_lines(c->auth)) : 0;
	size_t room = buf_room(&c->out, 0, head_len + HEAD_EXTRA + more);
	if (room > 0)
		n = build_response_head_in(c, x, body_length, ka, room);
	if (n == WEIR_ETOOBIG && c->out.size < c->out.max) {
		room = buf_room(&c->out, 0, c->out.max);
		n = build_response_head_in(c, x, body_length, ka, room);
	}
	return n;
}

static void process_response_head(struct conn *c, size_t head_len)
{
	int st = http_parse_response_head(&c->x->sp, c->up_in.data, head_len, &c->x->resp);
	if (st) {
		upstream_failed(c, NEXT_INVALID_HEADER, "reset", "bad response from upstream");
		return;
	}
	int status = c->x->resp.status;
	c->up_status = status;
	if (status >= 200 || status == 101)
		feed_ewma(c, false);
	int cond = status_condition(status);
	if (cond >= 0 && next_upstream(c, cond))
		return;
	if (error_page_start(c, status))
		return;
	if (status >= 100 && status < 200 && status != 101) {
		/* one "100 Continue" reaches the client: none when the proxy sent
		 * its own (answer_continue) */
		if (status == 100 && c->x->req.version_minor >= 1 && !c->interim_sent) {
			buf_append(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
			c->interim_sent = true;
		}
		c->up_in.start = head_len;
		buf_compact(&c->up_in, 0);
		response_parse_init(c);
		return;
	}
	if (status == 101) {
		if (!c->x->req.upgrade_websocket) {
			upstream_failed(c, NEXT_INVALID_HEADER, "reset",
			                "bad response from upstream");
			return;
		}
		if (!websocket_accept_ok(c)) {
			metrics_upstream_error("handshake");
			answer_local(c, 502, NULL, "bad websocket handshake from upstream", false);
			return;
		}
		struct headers_resp_extra x;
		resp_extra(c, NULL, &x);
		int n = build_response_head(c, &x, -1, true, head_len);
		if (n < 0) {
			answer_local(c, 502, NULL, "response head too large", false);
			return;
		}
		c->out.end += (size_t)n;
		c->status_sent = 101;
		become_tunnel(c, head_len);
		return;
	}
	int64_t body_length;
	bool ka = http_parse_keep_alive(&c->x->rp) && c->req_body_done && !c->w->draining &&
	          !c->x->req.upgrade_websocket;
	c->out_chunked = false;
	if (c->is_head || status == 204 || status == 304) {
		body_length = c->x->resp.content_length >= 0 ? c->x->resp.content_length : -1;
	} else if (c->x->resp.chunked) {
		body_length = -2;
		c->out_chunked = true;
	} else if (c->x->resp.content_length >= 0) {
		body_length = c->x->resp.content_length;
	} else if (c->x->req.version_minor >= 1) {
		body_length = -2; /* read until close, re-framed as chunked */
		c->out_chunked = true;
	} else {
		body_length = -1;
		ka = false;
	}
	if (body_length == -2 && c->x->req.version_minor == 0) {
		body_length = -1;
		c->out_chunked = false;
		ka = false;
	}
	enum compress_verdict gz =
	    compress_decide(&c->rt->settings, &c->x->req, &c->x->resp, c->is_head);
	if (gz == COMPRESS_GZIP || gz == COMPRESS_BROTLI) {
		/* The length changes: chunked (compress_decide only says yes to
		 * HTTP/1.1). Out of memory: sent as is. */
		const struct route_settings *s = &c->rt->settings;
		int level = (int)(gz == COMPRESS_GZIP ? s->gzip_level : s->brotli_level);
		c->gz = compress_new(gz, level, c->x->resp.content_length);
		if (c->gz) {
			buf_init(&c->gz_in, IO_CAP);
			body_length = -2;
			c->out_chunked = true;
		} else {
			gz = COMPRESS_VARY;
		}
	}
	struct headers_resp_extra x;
	resp_extra(c, c->x->pick.set_cookie[0] ? c->x->pick.set_cookie : NULL, &x);
	x.encoding = gz == COMPRESS_GZIP ? "gzip" : gz == COMPRESS_BROTLI ? "br" : NULL;
	x.vary_accept_encoding = gz != COMPRESS_NO;
	int n = build_response_head(c, &x, body_length, ka, head_len);
	if (n < 0) {
		answer_local(c, 502, NULL, "response head too large", false);
		return;
	}
	c->out.end += (size_t)n;
	c->resp_head_bytes = (size_t)n;
	c->keep_alive = ka;
	c->status_sent = status;
	c->resp_started = true;
	c->resp_head_done = true;
	c->up_keepalive = http_parse_keep_alive(&c->x->sp);
	c->up_in.start = head_len;
	if (http_parse_done(&c->x->sp)) {
		bool progress = false;
		response_done(c, &progress);
	}
}

/* Moves parsed body bytes from up_in to out. Returns true when the exchange is
 * over (finished or closed) and the caller must return. */
static bool response_body(struct conn *c, bool *progress)
{
	if (c->gz_body_done)
		return true; /* pump_response finishes the gzip stream */
	if (c->gz && gz_pump(c, COMPRESS_MORE, progress) < 0) {
		conn_close(c);
		return true;
	}
	if (c->resp_head_done && buf_len(&c->up_in) > 0) {
		size_t limit;
		if (c->gz) {
			limit = buf_room(&c->gz_in, 0, IO_CAP);
		} else {
			size_t room = buf_room(&c->out, 0, IO_CAP);
			limit = room > CHUNK_OVERHEAD * 2 ? room - CHUNK_OVERHEAD * 2 : 0;
		}
		size_t n = buf_len(&c->up_in) < limit ? buf_len(&c->up_in) : limit;
		if (n > 0) {
			size_t used = 0;
			int r = http_parse_body(&c->x->sp, c->up_in.data + c->up_in.start, n, &used,
			                        resp_body_cb, c);
			c->up_in.start += used;
			if (used)
				*progress = true;
			if (r == 1) {
				response_done(c, progress);
				return true;
			}
			if (r < 0) {
				metrics_upstream_error("reset");
				conn_close(c);
				return true;
			}
			if (c->gz && gz_pump(c, COMPRESS_MORE, progress) < 0) {
				conn_close(c);
				return true;
			}
		}
	}
	return false;
}

/* FastCGI: read records from the upstream into fcgi_raw and turn them
 * into the HTTP/1.1 response in up_in (as much as it takes; the rest
 * waits: back-pressure). END_REQUEST reads as the upstream closing.
 * Returns true when the exchange is over (failed or closed) and the caller
 * must return. */
static bool fcgi_pump(struct conn *c, struct upstream *u, bool *progress)
{
	struct exchange *x = c->x;
	struct buf *raw = &x->fcgi_raw;
	for (int round = 0; round < 4 && !c->up_eof; round++) {
		if (buf_len(raw) > 0) {
			size_t used = 0, before = buf_len(&c->up_in);
			size_t limit = c->resp_head_done ? IO_CAP : c->up_in.max;
			if (c->resp_head_done && c->up_in.start > 0 && buf_len(&c->up_in) == 0)
				c->up_in.start = c->up_in.end = 0;
			int r = fastcgi_decode(x->fcgi, raw->data + raw->start, buf_len(raw), &used,
			                       &c->up_in, limit);
			raw->start += used;
			if (raw->start == raw->end)
				raw->start = raw->end = 0;
			if (used || buf_len(&c->up_in) != before)
				*progress = true;
			if (r == 1) {
				c->up_eof = true; /* the application is done */
				break;
			}
			if (r < 0) {
				if (c->resp_head_done) {
					metrics_upstream_error("reset");
					conn_close(c);
				} else {
					upstream_failed(c, NEXT_INVALID_HEADER, "reset",
					                r == WEIR_ETOOBIG
					                    ? "upstream sent too big header"
					                    : "bad response from upstream");
				}
				return true;
			}
			if (buf_len(raw) > 0)
				break; /* up_in is full */
		}
		if (x->fcgi_eof || !u->can_read)
			break;
		size_t room = buf_room(raw, 0, IO_CAP);
		if (room == 0)
			break;
		ssize_t n = tls_sock_read(&u->sock, raw->data + raw->end, room);
		if (n == WEIR_EAGAIN) {
			tls_sock_blocked(&u->sock, &u->can_read, &u->can_write);
			break;
		}
		if (n <= 0) {
			x->fcgi_eof = true;
			*progress = true;
			break;
		}
		note_read(&u->sock, c->up_rdhup, n, room, &u->can_read);
		raw->end += (size_t)n;
		c->got_up_byte = true;
		c->last_activity = loop_now(c->w->loop);
		*progress = true;
	}
	if (x->fcgi_eof && !c->up_eof && buf_len(raw) == 0) {
		/* closed before END_REQUEST: no answer yet is a failed attempt, a
		 * started one is cut short */
		if (!c->resp_head_done) {
			c->up_eof = true;
			return false; /* pump_response reports the reset */
		}
		metrics_upstream_error("reset");
		conn_close(c);
		return true;
	}
	return false;
}

static bool pump_response(struct conn *c)
{
	struct upstream *u = c->up;
	bool progress = false;
	if (!u || !u->connected)
		return false;
	if (c->gz_body_done) {
		response_done(c, &progress);
		return progress;
	}
	if (response_body(c, &progress))
		return true;
	/* Read more only when it can go somewhere (back-pressure). */
	size_t floor = 0;
	if (!c->resp_head_done && c->up_in.start != 0)
		buf_compact(&c->up_in, 0);
	if (c->resp_head_done && buf_len(&c->out) > c->out_high)
		return progress;
	if (c->fcgi) {
		if (fcgi_pump(c, u, &progress))
			return true;
	} else if (!c->up_eof && u->can_read && buf_room(&c->up_in, floor, IO_CAP) > 0 &&
	           (c->resp_head_done ? buf_len(&c->up_in) == 0 : true)) {
		size_t uroom = c->up_in.size - c->up_in.end;
		ssize_t n = tls_sock_read(&u->sock, c->up_in.data + c->up_in.end, uroom);
		if (n == WEIR_EAGAIN) {
			tls_sock_blocked(&u->sock, &u->can_read, &u->can_write);
		} else if (n <= 0) {
			c->up_eof = true;
			progress = true;
		} else {
			note_read(&u->sock, c->up_rdhup, n, uroom, &u->can_read);
			c->up_in.end += (size_t)n;
			c->got_up_byte = true;
			c->last_activity = loop_now(c->w->loop);
			progress = true;
		}
	}
	if (!c->resp_head_done) {
		if (buf_len(&c->up_in) > 0) {
			long r = http_parse_scan_head(&c->x->sp, c->up_in.data, c->up_in.end,
			                              upstream_head_max(c) +
			                                  (c->fcgi ? FASTCGI_HEAD_EXTRA : 0));
			if (r < 0) {
				/* nginx: "upstream sent too big header" (proxy-buffer-size) */
				upstream_failed(c, NEXT_INVALID_HEADER, "reset",
				                r == -431 ? "upstream sent too big header"
				                          : "bad response from upstream");
				return true;
			}
			if (r > 0) {
				process_response_head(c, (size_t)r);
				/* The body bytes that came with the head join it in out,
				 * so head and body leave in one write. */
				if (!c->closed && c->state == ST_PROXY && c->up == u)
					response_body(c, &progress);
				return true;
			}
		}
		if (c->up_eof) {
			upstream_failed(c, NEXT_ERROR, "reset", "upstream reset");
			return true;
		}
		return progress;
	}
	if (c->gz && !c->up_eof && !u->can_read && buf_len(&c->up_in) == 0 &&
	    buf_len(&c->gz_in) == 0 && compress_pending(c->gz)) {
		/* The upstream has nothing more ready: what it sent so far goes
		 * out decodable (a streamed response is not held back). */
		if (gz_pump(c, COMPRESS_FLUSH, &progress) < 0) {
			conn_close(c);
			return true;
		}
	}
	if (c->up_eof && buf_len(&c->up_in) == 0) {
		if (http_parse_eof(&c->x->sp) == 1) {
			response_done(c, &progress);
		} else {
			metrics_upstream_error("reset");
			conn_close(c);
		}
		return true;
	}
	return progress;
}

/* ---- ssl-passthrough ---- */

static void start_passthrough(struct conn *c, int backend)
{
	struct worker *w = c->w;
	const struct route_table *rt = table_routes(c->tls_table);
	const struct route_backend *be = &rt->backends[backend];
	int pick = balancer_round_robin(c->tls_table, backend);
	const struct route_endpoint *ep = pick >= 0 ? &be->endpoints[pick] : NULL;
	if (!ep) {
		metrics_upstream_error("no_endpoints");
		conn_close(c);
		return;
	}
	struct upstream *u = NULL;
	int err = 0;
	if (upstream_connect(w->pool, ep, false, NULL, NULL, &u, &err) != 0) {
		metrics_upstream_error("connect");
		conn_close(c);
		return;
	}
	struct tls_sock us, cs = c->sock;
	upstream_detach(u, &us);
	loop_io_del(w->loop, &c->io);
	c->io.fd = -1;
	c->sock.fd = -1;
	c->sock.ssl = NULL;
	struct tunnel_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.websocket = false;
	cfg.idle_ms = 3600000;
	cfg.drain_window_ms = rt->settings.drain_window_ms; /* no route: the global one */
	tunnel_start(&w->tw, &cs, &us, NULL, 0, NULL, 0, &cfg);
	conn_close(c);
}

/* use-proxy-protocol: read exactly the PROXY header, before TLS or HTTP;
 * a connection without a valid one is closed. */
static bool progress_pphdr(struct conn *c)
{
	struct proxy_protocol_info info;
	if (!c->can_read)
		return false;
	char hdr[PROXY_PROTOCOL_MAX_BYTES]; /* read before any buffer is allocated */
	size_t cap = sizeof(hdr);
	ssize_t n = recv(c->sock.fd, hdr, cap, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		c->can_read = false;
		return false;
	}
	int r = n > 0 ? proxy_protocol_parse(hdr, (size_t)n, &info) : WEIR_EINVAL;
	if (r == WEIR_EAGAIN && (size_t)n < cap) {
		c->can_read = false; /* the next bytes bring a new edge */
		return false;
	}
	if (r <= 0 || recv(c->sock.fd, hdr, (size_t)r, 0) != r) {
		conn_close(c);
		return true;
	}
	if (info.has_addr) {
		c->client.has_proxy_addr = true;
		http_addr_set(&c->client.proxy_addr, &info.src);
	}
	c->state = c->https ? ST_PEEK : ST_HEAD;
	c->head_started = loop_now(c->w->loop);
	return true;
}

static bool progress_peek(struct conn *c)
{
	char sni[256];
	if (!c->can_read)
		return false;
	size_t room = buf_room(&c->in, 0, 16384 + 5);
	if (room == 0) {
		conn_close(c); /* out of memory */
		return true;
	}
	ssize_t n = recv(c->sock.fd, c->in.data, room, MSG_PEEK);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->can_read = false;
			return false;
		}
		conn_close(c);
		return true;
	}
	if (n == 0) {
		conn_close(c);
		return true;
	}
	int r = tls_peek_sni((const unsigned char *)c->in.data, (size_t)n, sni, sizeof(sni));
	if (r == WEIR_EAGAIN && (size_t)n < room && (size_t)n < 16384 + 5) {
		c->can_read = false; /* the next bytes bring a new edge */
		return false;
	}
	if (!c->tls_table)
		c->tls_table = table_view_get(&c->w->view);
	if (r == 1 && c->tls_table) {
		const struct route_passthrough *pt = table_passthrough(c->tls_table, sni);
		int b = pt ? pt->backend : -1;
		if (b >= 0 && (size_t)b < table_routes(c->tls_table)->nbackends) {
			/* allowlist/denylist-source-range: nothing to answer in
			 * a stream we never decrypt, so a refused client is
			 * closed before a byte is relayed (counted as 403). */
			if (!policy_client_allowed(pt->allow, pt->nallow, pt->deny, pt->ndeny,
			                           &c->client)) {
				metrics_request(pt->host, "(ssl-passthrough)", 403, METRICS_NO_HTTP,
				                -1);
				conn_close(c);
				return true;
			}
			start_passthrough(c, b);
			return true;
		}
	}
	c->sock.ssl = tls_server_new(c->sock.fd, &c->tls_table);
	if (!c->sock.ssl) {
		conn_close(c);
		return true;
	}
	c->state = ST_HEAD;
	return true;
}

/* ---- the connection state machine ---- */

/* After the last answer on a connection the client may still be sending
 * (a body we refused): shut our side and read its bytes away for a moment,
 * so the close does not turn into a reset that destroys the answer. */
static bool linger(struct conn *c)
{
	char sink[4096];
	if (!c->lingering) {
		c->lingering = true;
		c->linger_since = loop_now(c->w->loop);
		if (c->sock.ssl || c->sock.chan) {
			conn_close(c);
			return true;
		}
		shutdown(c->sock.fd, SHUT_WR);
	}
	for (int i = 0; i < 16 && c->can_read; i++) {
		ssize_t n = recv(c->sock.fd, sink, sizeof(sink), 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->can_read = false;
			return false;
		}
		c->linger_bytes += n > 0 ? (size_t)n : 0;
		if (n <= 0 || c->linger_bytes > LINGER_MAX_BYTES) {
			conn_close(c);
			return true;
		}
	}
	return c->can_read;
}

/* The request state, made when the bytes of a request start to arrive.
 * Returns 0 or WEIR_ENOMEM. */
static int conn_exchange(struct conn *c)
{
	if (c->x)
		return 0;
	struct exchange *x = spare_take(&c->w->spare_x);
	if (!x && !(x = malloc(sizeof(*x))))
		return WEIR_ENOMEM;
	/* Zeroed as calloc would, but for the two header arrays (8 KiB of the
	 * 10): a header is read only below its message's nheaders, which the
	 * parse sets. */
	char *p = (char *)x;
	size_t a = offsetof(struct exchange, req.headers), b = a + sizeof(x->req.headers);
	size_t d = offsetof(struct exchange, resp.headers), e = d + sizeof(x->resp.headers);
	memset(p, 0, a);
	memset(p + b, 0, d - b);
	memset(p + e, 0, sizeof(*x) - e);
	c->x = x;
	http_parse_init(&c->x->rp, false, false);
	return 0;
}

/* Between requests a connection keeps no buffer and no request state, so an
 * idle keep-alive connection costs little more than struct conn. */
static void conn_trim(struct conn *c)
{
	if (c->state != ST_HEAD && c->state != ST_CLOSING)
		return;
	if (buf_len(&c->out) == 0)
		buf_free(&c->out);
	if (c->in.pinned || (c->state == ST_HEAD && buf_len(&c->in) > 0))
		return;
	buf_free(&c->in);
	spare_give(&c->w->spare_x, c->x);
	c->x = NULL;
}

static void on_resume(struct loop_defer *d)
{
	struct conn *c = d->data;
	if (!c->closed)
		conn_progress(c);
}

static void conn_progress(struct conn *c)
{
	for (int round = 0; !c->closed; round++) {
		bool progress = false;
		if (round == PROGRESS_ROUNDS) {
			/* Edge-triggered: nothing will wake us for readiness we have
			 * not used up, so come back after the other events. */
			loop_defer(c->w->loop, &c->resume, on_resume, c);
			break;
		}
		if (buf_len(&c->out) > 0 && c->can_write) {
			ssize_t n = tls_sock_flush(&c->sock, &c->out, &c->can_read, &c->can_write);
			if (n < 0) {
				conn_close(c);
				return;
			}
			if (n > 0) {
				progress = true;
				c->last_activity = loop_now(c->w->loop);
			}
		}
		switch (c->state) {
		case ST_PPHDR:
			progress |= progress_pphdr(c);
			break;
		case ST_PEEK:
			progress |= progress_peek(c);
			break;
		case ST_HEAD:
			progress |= progress_head(c);
			break;
		case ST_AUTH:
			break; /* the auth subrequest's callback moves on */
		case ST_RESOLVE:
			break; /* the lookup's callback moves on */
		case ST_PROXY:
			progress |= pump_request(c);
			if (!c->closed && c->state == ST_PROXY)
				progress |= pump_response(c);
			break;
		case ST_CLOSING:
			if (buf_len(&c->out) == 0) {
				progress |= linger(c);
				if (c->closed)
					return;
			}
			break;
		}
		if (!progress)
			break;
	}
	if (!c->closed) {
		conn_trim(c);
		conn_arm_timer(c);
	}
}

/* ---- timers ---- */

enum deadline_kind { DL_NONE, DL_IDLE, DL_HEADER, DL_RESOLVE, DL_CONNECT, DL_IO, DL_CLOSING };

static uint64_t conn_deadline(const struct conn *c, enum deadline_kind *kind)
{
	switch (c->state) {
	case ST_PPHDR:
	case ST_PEEK:
		*kind = DL_HEADER;
		return c->head_started + c->header_timeout_ms;
	case ST_HEAD:
		if (buf_len(&c->in) == 0 && buf_len(&c->out) == 0 &&
		    (!c->sock.ssl || c->sock.handshake_done)) {
			*kind = DL_IDLE;
			return c->idle_since + c->keepalive_timeout_ms;
		}
		*kind = DL_HEADER;
		return c->head_started + c->header_timeout_ms;
	case ST_AUTH:
		break; /* the auth subrequest has its own timer */
	case ST_RESOLVE:
		*kind = DL_RESOLVE;
		return c->x->ext_since + c->connect_timeout_ms;
	case ST_PROXY:
		if (c->up && !c->up->connected) {
			*kind = DL_CONNECT;
			return c->up_start + c->connect_timeout_ms;
		}
		*kind = DL_IO;
		return c->last_activity +
		       (buf_len(&c->up_out) > 0 ? c->send_timeout_ms : c->read_timeout_ms);
	case ST_CLOSING:
		*kind = DL_CLOSING;
		return c->lingering ? c->linger_since + LINGER_MS : c->closing_since + CLOSING_MS;
	}
	*kind = DL_NONE;
	return UINT64_MAX;
}

static void conn_arm_timer(struct conn *c)
{
	enum deadline_kind kind;
	uint64_t d = conn_deadline(c, &kind);
	if (kind == DL_NONE) {
		loop_timer_cancel(c->w->loop, &c->timer);
		return;
	}
	/* A later deadline keeps the armed timer: when it fires, on_conn_timer
	 * sees the deadline ahead and arms for it then. A connection's deadline
	 * moves at every request (idle, header, upstream I/O), and moving a
	 * heap entry each time costs more than one early wake per timeout. */
	if (loop_timer_armed(&c->timer) && c->timer.deadline <= d)
		return;
	uint64_t now = loop_now(c->w->loop);
	if (loop_timer_set(c->w->loop, &c->timer, d > now ? d - now : 0) != 0)
		conn_close(c);
}

static void on_conn_timer(struct loop_timer *t)
{
	struct conn *c = t->data;
	enum deadline_kind kind;
	uint64_t d = conn_deadline(c, &kind);
	if (loop_now(c->w->loop) < d) {
		conn_arm_timer(c);
		return;
	}
	switch (kind) {
	case DL_IDLE:
	case DL_CLOSING:
	case DL_NONE:
		conn_close(c);
		return;
	case DL_HEADER:
		if (c->state == ST_HEAD && buf_len(&c->in) > 0 && buf_len(&c->out) == 0) {
			c->req_active = true;
			answer_local(c, 408, NULL, "request timeout", false);
			conn_progress(c);
		} else {
			conn_close(c);
		}
		return;
	case DL_RESOLVE:
		external_wait_cancel(c->x->ext_wait);
		c->x->ext_wait = NULL;
		metrics_upstream_error("resolve");
		answer_local(c, 502, NULL, "upstream name did not resolve in time", true);
		conn_progress(c);
		return;
	case DL_CONNECT:
		feed_ewma(c, true);
		metrics_upstream_error("timeout");
		if (!next_upstream(c, NEXT_TIMEOUT))
			answer_local(c, 504, NULL, "upstream connect timed out", true);
		conn_progress(c);
		return;
	case DL_IO:
		if (c->prebuffer) {
			/* the client stopped sending its body (nginx client_body_timeout) */
			answer_local(c, 408, NULL, "request body timeout", false);
			conn_progress(c);
			return;
		}
		metrics_upstream_error("timeout");
		if (!c->resp_started) {
			feed_ewma(c, true);
			if (!next_upstream(c, NEXT_TIMEOUT))
				answer_local(c, 504, NULL, "upstream timed out", false);
			conn_progress(c);
		} else {
			conn_close(c);
		}
		return;
	}
}

/* ---- connection life ---- */

static void free_conn(struct loop_defer *d)
{
	struct conn *c = d->data;
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->up_in);
	buf_free(&c->up_out);
	buf_free(&c->gz_in);
	compress_free(c->gz);
	spare_give(&c->w->spare_x, c->x);
	free(c);
}

static void conn_close(struct conn *c)
{
	struct worker *w = c->w;
	if (c->closed)
		return;
	if (c->req_active && c->x && c->table) {
		/* a request cut off (client gone, upstream died mid-answer, a
		 * body over the limit after the answer began): logged as nginx
		 * does, with the status sent, or 499 when none was */
		int status = c->status_sent ? c->status_sent : 499;
		count_request(c, status, upstream_seconds(c));
		log_request(c, status);
		c->req_active = false;
	}
	c->closed = true;
	loop_timer_cancel(w->loop, &c->timer);
	if (c->io.fd >= 0)
		loop_io_del(w->loop, &c->io);
	c->io.fd = -1;
	tls_sock_close(&c->sock);
	drop_upstream(c);
	gz_end(c);
	fcgi_end(c);
	auth_request_free(c->auth);
	c->auth = NULL;
	mirror_abandon(c->mirror);
	c->mirror = NULL;
	if (c->x) {
		external_wait_cancel(c->x->ext_wait);
		c->x->ext_wait = NULL;
	}
	if (c->limit_entered)
		policy_limit_leave(c->route, &c->client);
	c->limit_entered = false;
	table_unref(c->table);
	c->table = NULL;
	table_unref(c->tls_table);
	c->tls_table = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	if (c->origin) {
		c->origin->live--;
		origin_release(c->origin);
		c->origin = NULL;
	} else {
		metrics_connections(-1);
	}
	resume_accept(w);
	loop_defer(w->loop, &c->defer, free_conn, c);
}

static void on_client_io(struct loop_io *io, uint32_t events)
{
	struct conn *c = io->data;
	if (c->closed)
		return;
	if (c->origin && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
		/* the HTTP/2 session closes a stream's pair only when the stream
		 * is over (reset by the client, or its connection gone): the
		 * request is abandoned, its upstream exchange with it */
		conn_close(c);
		return;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->can_read = true;
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->rdhup = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		c->can_write = true;
	if (c->sock.ssl)
		c->can_read = c->can_write = true;
	conn_progress(c);
}

/* A client connection on fd (taken over), watched and in the worker's list.
 * client: who it is (copied). Returns NULL when out of memory (fd closed).
 * fd -1: an HTTP/2 stream's, whose caller attaches a chan (not watched). */
static struct conn *conn_new(struct worker *w, int fd, bool tls, const struct http_client *client)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return NULL;
	}
	c->w = w;
	c->sock.fd = fd;
	c->io.fd = fd;
	c->io.cb = on_client_io;
	c->io.data = c;
	c->https = tls;
	c->client = *client;
	loop_timer_init(&c->timer, on_conn_timer, c);
	read_settings(c);
	buf_init(&c->in, (size_t)c->max_header_bytes + IO_CAP);
	buf_init(&c->out, OUT_HEAD_ROOM + IO_CAP);
	c->state = ST_HEAD;
	c->idle_since = c->head_started = loop_now(w->loop);
	if (fd >= 0 &&
	    loop_io_add(w->loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) != 0) {
		free(c);
		close(fd);
		return NULL;
	}
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	return c;
}

static void accept_one(struct listener *l, int fd, struct sockaddr_storage *ss)
{
	struct worker *w = l->w;
	struct http_client client;
	memset(&client, 0, sizeof(client));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	http_addr_set(&client.addr, ss);
	http_addr_set(&client.peer, ss);
	if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, client.ip, sizeof(client.ip));
		client.port = ntohs(s6->sin6_port);
		if (strncmp(client.ip, "::ffff:", 7) == 0 && strchr(client.ip, '.'))
			memmove(client.ip, client.ip + 7, strlen(client.ip + 7) + 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, client.ip, sizeof(client.ip));
		client.port = ntohs(s4->sin_port);
	}
	client.local_port = (uint16_t)(l->tls ? server_cfg.https_port : server_cfg.http_port);
	client.https_port = (uint16_t)server_cfg.https_port;
	client.tls = l->tls;
	struct conn *c = conn_new(w, fd, l->tls, &client);
	if (!c)
		return;
	c->state = c->proxy_protocol ? ST_PPHDR : l->tls ? ST_PEEK : ST_HEAD;
	metrics_connections(1);
	conn_arm_timer(c);
}

/* ---- HTTP/2 ---- */

/* The session or a stream's connection lets go of o. */
static void origin_release(struct h2_origin *o)
{
	if (o->session || o->live > 0)
		return;
	if (o->ssl) {
		SSL_set_app_data(o->ssl, NULL);
		SSL_free(o->ssl);
	}
	table_unref(o->tls_table);
	free(o);
}

static int h2_open_stream(void *data, int fd, struct chan *ch)
{
	struct h2_origin *o = data;
	struct conn *c = conn_new(o->w, ch ? -1 : fd, o->client.tls, &o->client);
	if (!c) {
		if (ch)
			chan_close(ch, CHAN_B);
		return WEIR_ENOMEM;
	}
	if (ch) {
		c->sock.chan = ch;
		chan_watch(ch, CHAN_B, &c->io);
	}
	c->origin = o;
	o->live++;
	c->max_header_bytes = o->header_bytes;
	c->max_header_line = 0;
	buf_init(&c->in, (size_t)c->max_header_bytes + IO_CAP);
	if (o->tls_table) {
		table_ref(o->tls_table);
		c->tls_table = o->tls_table;
	}
	conn_arm_timer(c);
	return 0;
}

/* A stream its HTTP/2 session answered itself (a request head it could
 * not pass on): one access-log line, as nginx logs the requests it
 * refuses, and one request in the metrics (no route). */
static void h2_refused(void *data, const struct h2_refusal *r)
{
	struct h2_origin *o = data;
	metrics_request("", "-", r->status, METRICS_HTTP2, -1);
	struct table *t = table_view_get(&o->w->view);
	const struct access_log_format *f = t ? table_access_log(t) : NULL;
	if (f) {
		static const char dash[] = "-";
		struct http_request req;
		memset(&req, 0, sizeof(req));
		req.method = r->method ? r->method : dash;
		req.method_len = strlen(req.method);
		req.target = req.path = r->path ? r->path : dash;
		req.target_len = req.path_len = strlen(req.target);
		req.version_minor = 1;
		req.host = r->authority;
		req.host_len = r->authority ? strlen(r->authority) : 0;
		req.content_length = -1;
		struct http_client client = o->client;
		make_request_id(o->w, client.request_id);
		struct access_entry e = {
		    .req = &req,
		    .client = &client,
		    .req_id = client.request_id,
		    .status = r->status,
		    .request_length = r->header_bytes,
		    .upstream_response_length = -1,
		    .upstream_response_time = -1,
		    .now_ms = wall_ms(),
		};
		access_log_write(&o->w->alog, f, &e);
	}
	table_unref(t);
}

static size_t h2_live_streams(void *data)
{
	const struct h2_origin *o = data;
	return o->live;
}

static void h2_release(void *data)
{
	struct h2_origin *o = data;
	o->session = false;
	metrics_connections(-1);
	metrics_http2_connections(-1);
	origin_release(o);
}

/* The client speaks HTTP/2 (ALPN "h2", or the h2c preface on the HTTP
 * port): its socket goes to an h2 session (with what was read of it so far)
 * and c closes without touching it. */
static void become_h2(struct conn *c)
{
	struct worker *w = c->w;
	struct h2_origin *o = calloc(1, sizeof(*o));
	if (!o) {
		conn_close(c);
		return;
	}
	o->w = w;
	o->client = c->client;
	o->client.http2 = true; /* each stream's connection copies it */
	o->session = true;
	o->tls_table = c->tls_table;
	c->tls_table = NULL;
	if (c->sock.ssl) {
		SSL_up_ref(c->sock.ssl);
		o->ssl = c->sock.ssl;
		SSL_set_app_data(o->ssl, &o->tls_table); /* c's slot dies with c */
	}
	struct h2_limits lim = {
	    .max_concurrent_streams = 128,
	    .max_header_bytes = c->max_header_bytes,
	    .idle_ms = c->keepalive_timeout_ms,
	    .header_timeout_ms = c->header_timeout_ms,
	};
	struct table *t = table_view_get(&w->view);
	if (t) {
		const struct route_settings *s = &table_routes(t)->settings;
		lim.max_concurrent_streams = s->http2_max_concurrent_streams;
		if (s->http2_max_header_size)
			lim.max_header_bytes = s->http2_max_header_size;
		lim.max_field_bytes =
		    s->http2_max_field_size ? s->http2_max_field_size : s->max_header_line;
		table_unref(t);
	}
	if (lim.max_header_bytes > ROUTE_HTTP2_HEADER_MAX)
		lim.max_header_bytes = ROUTE_HTTP2_HEADER_MAX;
	/* the HTTP/1.1 head a stream becomes: its fields with ": " and CRLF
	 * (HPACK counted 32 bytes each), the request line and Host */
	o->header_bytes = lim.max_header_bytes + 1024;
	struct h2_host host = {
	    .open_stream = h2_open_stream,
	    .refused = h2_refused,
	    .live_streams = h2_live_streams,
	    .release = h2_release,
	    .data = o,
	};
	struct tls_sock cs = c->sock;
	loop_io_del(w->loop, &c->io);
	c->io.fd = -1;
	c->sock.fd = -1;
	c->sock.ssl = NULL;
	metrics_connections(1); /* the session's; c gives its own back */
	metrics_http2_connections(1);
	h2_start(&w->hw, &cs, c->in.data ? c->in.data + c->in.start : NULL, buf_len(&c->in), &lim,
	         &host);
	buf_free(&c->in);
	conn_close(c);
}

/* In ST_HEAD before a request: 1 when c turned into an HTTP/2 session, 2
 * when the start of the h2c preface came (more bytes are needed before the
 * head is looked at), else 0. */
static int h2_takes(struct conn *c)
{
	if (c->origin || c->req_active)
		return 0;
	if (c->sock.ssl) {
		if (c->alpn_checked || !c->sock.handshake_done)
			return 0;
		c->alpn_checked = true;
		if (!tls_alpn_h2(c->sock.ssl))
			return 0;
		become_h2(c);
		return 1;
	}
	size_t n = buf_len(&c->in);
	if (c->https || n == 0 || !h2_is_preface(c->in.data + c->in.start, n))
		return 0;
	struct table *t = table_view_get(&c->w->view);
	bool on = t && table_routes(t)->settings.http2_cleartext;
	table_unref(t);
	if (!on)
		return 0;
	if (n < H2_PREFACE_LEN)
		return 2;
	become_h2(c);
	return 1;
}

/* ---- accepting, within the file and connection limits ---- */

/* Level-triggered listeners fire as long as the backlog holds connections,
 * so a worker that cannot take one now takes its listeners out of epoll: the
 * kernel backlog holds the rest until a connection closes or the back-off
 * ends. Warnings are rate-limited per worker. */

static bool at_conn_limit(const struct worker *w)
{
	return w->max_conns && w->nconns + w->tw.count + w->hw.count >= w->max_conns;
}

static void watch_listeners(struct worker *w, bool on)
{
	struct listener *ls[2] = {&w->http, &w->https};
	for (int i = 0; i < 2; i++) {
		if (ls[i]->fd < 0)
			continue;
		if (on)
			loop_io_add(w->loop, &ls[i]->io, EPOLLIN);
		else
			loop_io_del(w->loop, &ls[i]->io);
	}
}

static void warn_accept(struct worker *w, const char *why)
{
	uint64_t now = loop_now(w->loop);
	w->accept_unwarned++;
	if (w->accept_warned && now - w->accept_warned < ACCEPT_WARN_MS)
		return;
	log_warn("proxy.server",
	         "worker %d: %s; not accepting for now (%llu time(s) since the last report)", w->id,
	         why, (unsigned long long)w->accept_unwarned);
	w->accept_warned = now;
	w->accept_unwarned = 0;
}

static void pause_accept(struct worker *w, uint64_t ms)
{
	if (!w->accept_paused) {
		watch_listeners(w, false);
		w->accept_paused = true;
	}
	loop_timer_set(w->loop, &w->accept_timer, ms);
}

/* Watch the listeners again unless the worker is still full. */
static void resume_accept(struct worker *w)
{
	if (!w->accept_paused || w->draining || at_conn_limit(w))
		return;
	w->accept_paused = false;
	loop_timer_cancel(w->loop, &w->accept_timer);
	watch_listeners(w, true);
}

static void on_accept_timer(struct loop_timer *t)
{
	struct worker *w = t->data;
	if (at_conn_limit(w)) {
		loop_timer_set(w->loop, &w->accept_timer, ACCEPT_LIMIT_POLL_MS);
		return;
	}
	resume_accept(w);
}

/* What w holds now (and what the others see of it). */
static unsigned worker_count(struct worker *w)
{
	unsigned n = (unsigned)(w->nconns + w->tw.count + w->hw.count) +
	             atomic_load_explicit(&w->handed, memory_order_relaxed);
	atomic_store_explicit(&w->load, n, memory_order_relaxed);
	metrics_worker_load(w->id, n);
	return n;
}

/* The worker that should take a connection w accepted: the least loaded
 * when w holds more than BALANCE_SLACK over it, else w. */
static struct worker *worker_pick(struct worker *w)
{
	unsigned mine = worker_count(w);
	struct worker *best = w;
	unsigned least = mine;
	for (int i = 0; i < nworkers; i++) {
		struct worker *o = &workers[i];
		/* every worker's loop and queue exist before any thread runs */
		if (o == w || atomic_load(&o->drain_requested))
			continue;
		unsigned n = atomic_load_explicit(&o->load, memory_order_relaxed);
		if (n < least) {
			least = n;
			best = o;
		}
	}
	if (best == w || mine <= least + BALANCE_SLACK)
		return w;
	/* counted now, so the next accepts here do not all pick it too */
	atomic_fetch_add_explicit(&best->load, 1, memory_order_relaxed);
	return best;
}

/* Queue an accepted connection for o; false when its queue is full. */
static bool handoff_push(struct worker *o, int fd, bool tls, const struct sockaddr_storage *ss)
{
	pthread_mutex_lock(&o->ho_mu);
	bool ok = o->nho < HANDOFF_CAP;
	if (ok) {
		o->ho[o->nho++] = (struct handoff){.fd = fd, .tls = tls, .ss = *ss};
		atomic_fetch_add_explicit(&o->handed, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&o->ho_mu);
	if (ok)
		loop_wake(o->loop);
	return ok;
}

/* The connections other workers handed to w (on_wake). */
static void handoff_take(struct worker *w)
{
	struct handoff got[HANDOFF_CAP];
	pthread_mutex_lock(&w->ho_mu);
	size_t n = w->nho;
	memcpy(got, w->ho, n * sizeof(got[0]));
	w->nho = 0;
	atomic_fetch_sub_explicit(&w->handed, (unsigned)n, memory_order_relaxed);
	pthread_mutex_unlock(&w->ho_mu);
	for (size_t i = 0; i < n; i++)
		accept_one(got[i].tls ? &w->https : &w->http, got[i].fd, &got[i].ss);
	if (n)
		worker_count(w);
}

static void on_accept(struct loop_io *io, uint32_t events)
{
	struct listener *l = io->data;
	struct worker *w = l->w;
	char why[96];
	if (l->fd < 0)
		return;
	struct table *t = table_view_get(&w->view);
	w->max_conns = t ? table_routes(t)->settings.max_connections : 0;
	table_unref(t);
	for (int i = 0; i < 64; i++) {
		if (at_conn_limit(w)) {
			snprintf(why, sizeof(why), "max-connections (%u) reached", w->max_conns);
			warn_accept(w, why);
			/* A close resumes; the poll follows a raised limit. */
			pause_accept(w, ACCEPT_LIMIT_POLL_MS);
			return;
		}
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			int err = errno;
			if (err == EINTR || err == ECONNABORTED)
				continue;
			if (err == EAGAIN || err == EWOULDBLOCK)
				return;
			snprintf(why, sizeof(why), "accept: %s", strerror(err));
			warn_accept(w, why);
			/* Out of files or memory: back off (a close resumes sooner).
			 * Any other error: the same, rather than spin on it. */
			pause_accept(w, ACCEPT_BACKOFF_MS);
			return;
		}
		struct worker *o = worker_pick(w);
		if (o != w && handoff_push(o, fd, l->tls, &ss))
			continue;
		accept_one(l, fd, &ss);
	}
	worker_count(w);
}

/* ---- listeners and workers ---- */

static int make_listener(const char *addr, int port, int *out)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		sl = sizeof(*s6);
	} else {
		log_error("proxy.server", "bad listen address %s", addr);
		return WEIR_EINVAL;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return WEIR_EIO;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 1024) != 0) {
		log_error("proxy.server", "cannot listen on %s port %d: %s", addr, port,
		          strerror(errno));
		close(fd);
		return WEIR_EIO;
	}
	*out = fd;
	return 0;
}

static void close_listener(struct worker *w, struct listener *l)
{
	if (l->fd < 0)
		return;
	loop_io_del(w->loop, &l->io);
	close(l->fd);
	l->fd = -1;
}

static void drain_check(struct loop_timer *t)
{
	struct worker *w = t->data;
	uint64_t now = loop_now(w->loop);
	if (now >= w->drain_deadline) {
		h2_close_all(&w->hw);
		while (w->conns)
			conn_close(w->conns);
		tunnel_close_all(&w->tw);
	}
	if (w->nconns == 0 && w->tw.count == 0 && w->hw.count == 0) {
		loop_stop(w->loop);
		return;
	}
	loop_timer_set(w->loop, &w->drain_timer, DRAIN_POLL_MS);
}

#define TABLE_POLL_MS 250u

/* A new table may have dropped endpoints that tunnels still use. The look
 * also moves the worker's view on, so an idle worker lets an old table go
 * within TABLE_POLL_MS; and the buffer blocks and request states a burst
 * left kept go back once the worker has been idle a while. */
static void table_check(struct loop_timer *tm)
{
	struct worker *w = tm->data;
	worker_count(w);
	buf_cache_trim(loop_now(w->loop));
	spare_trim(&w->spare_x, loop_now(w->loop));
	h2_worker_trim(&w->hw, loop_now(w->loop));
	struct table *t = table_view_get(&w->view);
	uint64_t gen = table_current_generation();
	if (t && (t != w->seen_table || gen != w->seen_generation)) {
		w->seen_table = t;
		w->seen_generation = gen;
		if (w->tw.count > 0)
			tunnel_check_endpoints(&w->tw, t);
	}
	table_unref(t);
	if (!w->draining)
		loop_timer_set(w->loop, &w->table_timer, TABLE_POLL_MS);
}

static void on_wake(void *data)
{
	struct worker *w = data;
	handoff_take(w);
	if (!atomic_load(&w->drain_requested) || w->draining)
		return;
	w->draining = true;
	loop_timer_cancel(w->loop, &w->table_timer);
	loop_timer_cancel(w->loop, &w->accept_timer);
	close_listener(w, &w->http);
	close_listener(w, &w->https);
	/* Each tunnel drains within its own route's drain-window; the flag, when
	 * given, caps them all. Requests still running get the global window. */
	uint32_t window = 30000, cap = UINT32_MAX;
	if (server_cfg.drain_window_ms >= 0) {
		window = cap = (uint32_t)server_cfg.drain_window_ms;
	} else {
		struct table *t = table_view_get(&w->view);
		if (t) {
			window = table_routes(t)->settings.drain_window_ms;
			table_unref(t);
		}
	}
	/* Idle keep-alive connections go now; busy ones finish their request. */
	struct conn *next;
	for (struct conn *c = w->conns; c; c = next) {
		next = c->next;
		/* an HTTP/2 stream's connection may not have read the head
		 * written to it yet: its session ends it when it drains */
		if (c->origin)
			continue;
		if (c->state == ST_PEEK || c->state == ST_PPHDR ||
		    (c->state == ST_HEAD && buf_len(&c->in) == 0 && buf_len(&c->out) == 0))
			conn_close(c);
	}
	h2_drain_all(&w->hw);
	uint32_t tunnels = tunnel_drain_all(&w->tw, cap);
	if (tunnels > window)
		window = tunnels;
	w->drain_deadline = loop_now(w->loop) + window + DRAIN_EXTRA_MS;
	loop_timer_set(w->loop, &w->drain_timer, 0);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	buf_cache_thread_start(); /* without it, buffers come from malloc */
	int rc = loop_run(w->loop);
	if (rc != 0)
		log_error("proxy.server", "worker %d: event loop failed", w->id);
	h2_close_all(&w->hw);
	while (w->conns)
		conn_close(w->conns);
	tunnel_close_all(&w->tw);
	loop_run_deferred(w->loop); /* the frees those closes queued */
	table_view_cleanup(&w->view);
	return NULL;
}

static int worker_init(struct worker *w, int id)
{
	w->id = id;
	w->http.fd = w->https.fd = -1;
	uint64_t seed = 0;
	if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1)
		seed = (uint64_t)(uintptr_t)w ^ (uint64_t)id;
	w->rng = seed;
	pthread_mutex_init(&w->ho_mu, NULL);
	int rc = loop_new(on_wake, w, &w->loop);
	if (rc != 0)
		return rc;
	loop_timer_init(&w->drain_timer, drain_check, w);
	loop_timer_init(&w->table_timer, table_check, w);
	loop_timer_init(&w->accept_timer, on_accept_timer, w);
	access_log_writer_init(&w->alog, w->loop, STDOUT_FILENO);
	loop_timer_set(w->loop, &w->table_timer, TABLE_POLL_MS);
	rc = upstream_pool_new(w->loop, &w->pool);
	if (rc != 0)
		return rc;
	rc = h2up_pool_new(w->loop, &w->h2up);
	if (rc != 0)
		return rc;
	rc = auth_basic_cache_new(&w->auth_cache);
	if (rc != 0)
		return rc;
	rc = resolver_new(w->loop, &w->resolver);
	if (rc != 0)
		return rc;
	rc = external_names_new(w->loop, w->resolver, &w->ext_names);
	if (rc != 0)
		return rc;
	rc = auth_cache_new(&w->ext_auth_cache);
	if (rc != 0)
		return rc;
	rc = mirror_set_new(w->loop, w->pool, w->resolver, &w->mirrors);
	if (rc != 0)
		return rc;
	w->spare_x.max = SPARE_EXCHANGES;
	w->spare_x.idle_max = SPARE_EXCHANGES_IDLE;
	w->tw.loop = w->loop;
	w->hw.loop = w->loop;
	w->tw.scratch_cap = IO_CAP;
	w->tw.scratch = malloc(IO_CAP);
	if (!w->tw.scratch)
		return WEIR_ENOMEM;
	struct listener *ls[2] = {&w->http, &w->https};
	int ports[2] = {server_cfg.http_port, server_cfg.https_port};
	for (int i = 0; i < 2; i++) {
		if (ports[i] <= 0)
			continue;
		rc = make_listener(server_cfg.listen_address, ports[i], &ls[i]->fd);
		if (rc != 0)
			return rc;
		ls[i]->tls = i == 1;
		ls[i]->w = w;
		ls[i]->io.fd = ls[i]->fd;
		ls[i]->io.cb = on_accept;
		ls[i]->io.data = ls[i];
		if (loop_io_add(w->loop, &ls[i]->io, EPOLLIN) != 0)
			return WEIR_EIO;
	}
	return 0;
}

static void worker_cleanup(struct worker *w)
{
	if (!w->loop)
		return;
	for (size_t i = 0; i < w->nho; i++) /* handed over after the loop ended */
		close(w->ho[i].fd);
	w->nho = 0;
	pthread_mutex_destroy(&w->ho_mu);
	close_listener(w, &w->http);
	close_listener(w, &w->https);
	loop_timer_cancel(w->loop, &w->drain_timer);
	loop_timer_cancel(w->loop, &w->table_timer);
	loop_timer_cancel(w->loop, &w->accept_timer);
	access_log_writer_cleanup(&w->alog);
	mirror_set_free(w->mirrors); /* closes its upstreams and lookups first */
	w->mirrors = NULL;
	h2up_pool_free(w->h2up);
	w->h2up = NULL;
	loop_run_deferred(w->loop);
	spare_cleanup(&w->spare_x);
	h2_worker_cleanup(&w->hw);
	upstream_pool_free(w->pool);
	w->pool = NULL;
	external_names_free(w->ext_names);
	w->ext_names = NULL;
	resolver_free(w->resolver);
	w->resolver = NULL;
	auth_cache_free(w->ext_auth_cache);
	w->ext_auth_cache = NULL;
	auth_basic_cache_free(w->auth_cache);
	w->auth_cache = NULL;
	free(w->tw.scratch);
	w->tw.scratch = NULL;
	loop_free(w->loop);
	w->loop = NULL;
}

int server_start(const struct server_config *cfg)
{
	int rc = WEIR_ENOMEM;
	server_cfg = *cfg;
	if (server_cfg.workers < 1)
		server_cfg.workers = 1;
	workers = calloc((size_t)server_cfg.workers, sizeof(*workers));
	if (!workers)
		return rc;
	nworkers = server_cfg.workers;
	for (int i = 0; i < nworkers; i++) {
		rc = worker_init(&workers[i], i);
		if (rc != 0)
			goto fail;
	}
	for (int i = 0; i < nworkers; i++) {
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
			rc = WEIR_ENOMEM;
			goto fail;
		}
		workers[i].started = true;
	}
	return 0;
fail:
	server_shutdown();
	return rc;
}

void server_shutdown(void)
{
	if (!workers)
		return;
	for (int i = 0; i < nworkers; i++) {
		if (!workers[i].started)
			continue;
		atomic_store(&workers[i].drain_requested, true);
		loop_wake(workers[i].loop);
	}
	for (int i = 0; i < nworkers; i++)
		if (workers[i].started)
			pthread_join(workers[i].thread, NULL);
	for (int i = 0; i < nworkers; i++)
		worker_cleanup(&workers[i]);
	free(workers);
	workers = NULL;
	nworkers = 0;
}
