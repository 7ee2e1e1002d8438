/* proxy/metrics.c - process-wide Prometheus metrics, cheap on the request path.
 *
 * Request counters live in a striped hash: bucket heads are atomic pointers and
 * a series, once published, is never moved or freed, so a hit (the common case)
 * is a lock-free walk plus one atomic add. Only the first request of a new label
 * set takes its stripe's mutex. The number of label sets is capped; past the cap
 * requests are counted per status code in an overflow series. Everything else is
 * a plain atomic. Rendering walks the chains, sorts, and writes text format 0.0.4. */
#include "metrics.h"
#include "error.h"
#include "route_table.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES 64
#define BUCKETS_PER_STRIPE 256
#define LABEL_MAX 512 /* bytes kept of a host or path label */
#define OVERFLOW_LABEL "~overflow"

struct series {
	struct series *next; /* immutable once published */
	_Atomic uint64_t count;
	uint64_t hash;
	int code;
	int proto; /* enum metrics_protocol */
	size_t host_len, path_len;
	char data[]; /* host NUL path NUL */
};

struct stripe {
	pthread_mutex_t lock; /* serialises inserts only */
	_Atomic(struct series *) heads[BUCKETS_PER_STRIPE];
};

static struct stripe stripes[STRIPES] = {
    [0 ... STRIPES - 1] = {.lock = PTHREAD_MUTEX_INITIALIZER},
};
static atomic_int series_total;
static _Atomic uint64_t overflow_by_code[1000];

/* Upstream latency histogram: per-bucket (not cumulative) counts, the last one
 * is +Inf; the sum is kept in nanoseconds so it adds exactly. */
static const double latency_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const char *const latency_bound_text[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                                                 "0.5",   "1",    "2.5",   "5",    "10"};
#define NBOUNDS (sizeof(latency_bounds) / sizeof(latency_bounds[0]))
static _Atomic uint64_t latency_buckets[NBOUNDS + 1];
static _Atomic uint64_t latency_sum_ns;

static atomic_llong open_connections;
static atomic_llong open_http2_connections;
static _Atomic uint64_t protocol_count[3]; /* the HTTP ones, by enum metrics_protocol */
static const char *const protocol_names[4] = {"HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "-"};
static atomic_llong open_tunnels;
static _Atomic uint64_t table_generation;
static _Atomic uint64_t reloads_ok, reloads_failed;
static _Atomic uint64_t load_usec;                    /* the last successful load */
static _Atomic uint64_t shards_parsed, shards_reused; /* host shards, all loads */
static _Atomic uint64_t basic_auth_count[3];          /* by enum metrics_basic_auth */
static _Atomic uint64_t mirror_count[3];              /* by enum metrics_mirror */

/* Upstream error kinds: the known ones have fixed slots; a few unknown ones are
 * kept by name under a mutex (errors are rare), the rest count as "other". */
static const char *const known_kinds[] = {"connect", "no_endpoints", "reset", "timeout"};
#define NKNOWN (sizeof(known_kinds) / sizeof(known_kinds[0]))
#define EXTRA_KINDS 16
#define KIND_MAX 64
static _Atomic uint64_t known_kind_count[NKNOWN];
static pthread_mutex_t extra_lock = PTHREAD_MUTEX_INITIALIZER;
static char extra_kind_name[EXTRA_KINDS][KIND_MAX];
static uint64_t extra_kind_count[EXTRA_KINDS];
static int extra_kinds;
static uint64_t other_kind_count;

static uint64_t fnv1a(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Length of s capped at max, cut back to a UTF-8 character boundary. */
static size_t label_len(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

static struct series *find(struct series *p, uint64_t hash, const char *host, size_t hl,
                           const char *path, size_t pl, int code, int proto)
{
	for (; p; p = p->next) {
		if (p->hash == hash && p->code == code && p->proto == proto && p->host_len == hl &&
		    p->path_len == pl && memcmp(p->data, host, hl) == 0 &&
		    memcmp(p->data + hl + 1, path, pl) == 0)
			return p;
	}
	return NULL;
}

static void observe_latency(double seconds)
{
	/* NaN and negative values mean "no upstream" and are skipped. */
	if (!(seconds >= 0))
		return;
	size_t i = 0;
	while (i < NBOUNDS && seconds > latency_bounds[i])
		i++;
	if (seconds > 1e9)
		seconds = 1e9;
	atomic_fetch_add_explicit(&latency_buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&latency_sum_ns, (uint64_t)(seconds * 1e9 + 0.5),
	                          memory_order_relaxed);
}

void metrics_request(const char *host, const char *path, int status, enum metrics_protocol proto,
                     double upstream_seconds)
{
	int pr = (unsigned)proto <= METRICS_NO_HTTP ? (int)proto : METRICS_NO_HTTP;
	if (pr != METRICS_NO_HTTP)
		atomic_fetch_add_explicit(&protocol_count[pr], 1, memory_order_relaxed);
	if (!host)
		host = "";
	if (!path)
		path = "-";
	if (status < 0 || status > 999)
		status = 0;
	observe_latency(upstream_seconds);

	size_t hl = label_len(host, LABEL_MAX), pl = label_len(path, LABEL_MAX);
	uint64_t h = fnv1a(0xcbf29ce484222325ULL, host, hl);
	h = fnv1a(h ^ 0xff, path, pl);
	h ^= (uint64_t)(status * 4 + pr) * 0x9E3779B97F4A7C15ULL;
	h *= 0x100000001b3ULL;
	struct stripe *st = &stripes[(h >> 32) % STRIPES];
	_Atomic(struct series *) *head = &st->heads[(h >> 8) % BUCKETS_PER_STRIPE];

	struct series *s = find(atomic_load_explicit(head, memory_order_acquire), h, host, hl, path,
	                        pl, status, pr);
	if (s) {
		atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
		return;
	}

	pthread_mutex_lock(&st->lock);
	/* Someone may have inserted it since the lock-free walk. */
	s = find(atomic_load_explicit(head, memory_order_acquire), h, host, hl, path, pl, status,
	         pr);
	if (!s) {
		if (atomic_fetch_add(&series_total, 1) >= METRICS_MAX_SERIES) {
			atomic_fetch_sub(&series_total, 1);
		} else {
			s = malloc(sizeof(*s) + hl + pl + 2);
			if (!s) {
				atomic_fetch_sub(&series_total, 1);
			} else {
				s->hash = h;
				s->code = status;
				s->proto = pr;
				s->host_len = hl;
				s->path_len = pl;
				memcpy(s->data, host, hl);
				s->data[hl] = '\0';
				memcpy(s->data + hl + 1, path, pl);
				s->data[hl + 1 + pl] = '\0';
				atomic_init(&s->count, 0);
				s->next = atomic_load_explicit(head, memory_order_relaxed);
				atomic_store_explicit(head, s, memory_order_release);
			}
		}
	}
	pthread_mutex_unlock(&st->lock);
	if (s)
		atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&overflow_by_code[status], 1, memory_order_relaxed);
}

void metrics_connections(int delta)
{
	atomic_fetch_add_explicit(&open_connections, delta, memory_order_relaxed);
}

void metrics_tunnels(int delta)
{
	atomic_fetch_add_explicit(&open_tunnels, delta, memory_order_relaxed);
}

void metrics_reload(bool ok, uint64_t generation)
{
	if (ok) {
		atomic_store_explicit(&table_generation, generation, memory_order_relaxed);
		atomic_fetch_add_explicit(&reloads_ok, 1, memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&reloads_failed, 1, memory_order_relaxed);
	}
}

void metrics_table_load(uint64_t usec, size_t hosts_parsed, size_t hosts_reused)
{
	atomic_store_explicit(&load_usec, usec, memory_order_relaxed);
	atomic_fetch_add_explicit(&shards_parsed, hosts_parsed, memory_order_relaxed);
	atomic_fetch_add_explicit(&shards_reused, hosts_reused, memory_order_relaxed);
}

void metrics_upstream_error(const char *kind)
{
	if (!kind)
		kind = "other";
	for (size_t i = 0; i < NKNOWN; i++) {
		if (strcmp(kind, known_kinds[i]) == 0) {
			atomic_fetch_add_explicit(&known_kind_count[i], 1, memory_order_relaxed);
			return;
		}
	}
	size_t kl = label_len(kind, KIND_MAX - 1);
	pthread_mutex_lock(&extra_lock);
	int i;
	for (i = 0; i < extra_kinds; i++) {
		if (strlen(extra_kind_name[i]) == kl && memcmp(extra_kind_name[i], kind, kl) == 0)
			break;
	}
	if (i == extra_kinds && extra_kinds < EXTRA_KINDS && strcmp(kind, "other") != 0) {
		memcpy(extra_kind_name[i], kind, kl);
		extra_kind_name[i][kl] = '\0';
		extra_kinds++;
	}
	if (i < extra_kinds)
		extra_kind_count[i]++;
	else
		other_kind_count++;
	pthread_mutex_unlock(&extra_lock);
}

/* ---- rendering ---- */

struct outbuf {
	char *data;
	size_t len, cap;
	bool failed;
};

static void out_reserve(struct outbuf *b, size_t more)
{
	if (b->failed || b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p) {
		b->failed = true;
		return;
	}
	b->data = p;
	b->cap = cap;
}

static void out_mem(struct outbuf *b, const char *s, size_t n)
{
	out_reserve(b, n);
	if (b->failed)
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void out_str(struct outbuf *b, const char *s)
{
	out_mem(b, s, strlen(s));
}

static void out_u64(struct outbuf *b, uint64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
	out_mem(b, tmp, (size_t)n);
}

static void out_i64(struct outbuf *b, long long v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%lld", v);
	out_mem(b, tmp, (size_t)n);
}

/* A label value escaped as the text format requires: \\, \" and \n. */
static void out_label(struct outbuf *b, const char *s, size_t n)
{
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		const char *esc = NULL;
		if (s[i] == '\\')
			esc = "\\\\";
		else if (s[i] == '"')
			esc = "\\\"";
		else if (s[i] == '\n')
			esc = "\\n";
		if (!esc)
			continue;
		out_mem(b, s + run, i - run);
		out_str(b, esc);
		run = i + 1;
	}
	out_mem(b, s + run, n - run);
}

static void out_family(struct outbuf *b, const char *name, const char *type, const char *help)
{
	out_str(b, "# HELP ");
	out_str(b, name);
	out_str(b, " ");
	out_str(b, help);
	out_str(b, "\n# TYPE ");
	out_str(b, name);
	out_str(b, " ");
	out_str(b, type);
	out_str(b, "\n");
}

struct snap {
	const struct series *s;
	uint64_t count;
};

static int snap_cmp(const void *a, const void *b)
{
	const struct series *x = ((const struct snap *)a)->s, *y = ((const struct snap *)b)->s;
	int c = strcmp(x->data, y->data);
	if (c)
		return c;
	c = strcmp(x->data + x->host_len + 1, y->data + y->host_len + 1);
	if (c)
		return c;
	if (x->code != y->code)
		return (x->code > y->code) - (x->code < y->code);
	return (x->proto > y->proto) - (x->proto < y->proto);
}

static void out_request_line(struct outbuf *b, const char *host, size_t hl, const char *path,
                             size_t pl, int code, const char *proto, uint64_t count)
{
	out_str(b, "weir_proxy_requests_total{host=\"");
	out_label(b, host, hl);
	out_str(b, "\",path=\"");
	out_label(b, path, pl);
	out_str(b, "\",code=\"");
	out_i64(b, code);
	out_str(b, "\",protocol=\"");
	out_str(b, proto);
	out_str(b, "\"} ");
	out_u64(b, count);
	out_str(b, "\n");
}

static void render_requests(struct outbuf *b)
{
	out_family(b, "weir_proxy_requests_total", "counter",
	           "Requests answered, by route host, route path, status code and the protocol "
	           "they came in.");
	/* Series only ever get added; take what is there now (bounded by the cap). */
	size_t n = 0, cap = (size_t)atomic_load(&series_total) + 1;
	struct snap *v = calloc(cap, sizeof(*v));
	if (!v) {
		b->failed = true;
		return;
	}
	for (size_t i = 0; i < STRIPES; i++) {
		for (size_t j = 0; j < BUCKETS_PER_STRIPE; j++) {
			const struct series *s =
			    atomic_load_explicit(&stripes[i].heads[j], memory_order_acquire);
			for (; s; s = s->next) {
				if (n == cap) {
					struct snap *nv = realloc(v, 2 * cap * sizeof(*v));
					if (!nv) {
						free(v);
						b->failed = true;
						return;
					}
					v = nv;
					cap *= 2;
				}
				v[n].s = s;
				v[n].count = atomic_load_explicit(&((struct series *)s)->count,
				                                  memory_order_relaxed);
				n++;
			}
		}
	}
	qsort(v, n, sizeof(*v), snap_cmp);
	for (size_t i = 0; i < n; i++) {
		const struct series *s = v[i].s;
		out_request_line(b, s->data, s->host_len, s->data + s->host_len + 1, s->path_len,
		                 s->code, protocol_names[s->proto], v[i].count);
	}
	free(v);
	for (int code = 0; code < 1000; code++) {
		uint64_t c = atomic_load_explicit(&overflow_by_code[code], memory_order_relaxed);
		if (c)
			out_request_line(b, OVERFLOW_LABEL, strlen(OVERFLOW_LABEL), OVERFLOW_LABEL,
			                 strlen(OVERFLOW_LABEL), code, OVERFLOW_LABEL, c);
	}
}

static void render_latency(struct outbuf *b)
{
	const char *name = "weir_proxy_upstream_latency_seconds";
	out_family(b, name, "histogram",
	           "Time from sending the request upstream to its response head.");
	uint64_t cum = 0;
	for (size_t i = 0; i <= NBOUNDS; i++) {
		cum += atomic_load_explicit(&latency_buckets[i], memory_order_relaxed);
		out_str(b, name);
		out_str(b, "_bucket{le=\"");
		out_str(b, i < NBOUNDS ? latency_bound_text[i] : "+Inf");
		out_str(b, "\"} ");
		out_u64(b, cum);
		out_str(b, "\n");
	}
	uint64_t ns = atomic_load_explicit(&latency_sum_ns, memory_order_relaxed);
	char tmp[48];
	snprintf(tmp, sizeof(tmp), "%llu.%09llu", (unsigned long long)(ns / 1000000000ULL),
	         (unsigned long long)(ns % 1000000000ULL));
	out_str(b, name);
	out_str(b, "_sum ");
	out_str(b, tmp);
	out_str(b, "\n");
	/* _count equals the +Inf bucket by construction, even under concurrent updates. */
	out_str(b, name);
	out_str(b, "_count ");
	out_u64(b, cum);
	out_str(b, "\n");
}

static void render_gauge(struct outbuf *b, const char *name, const char *help, long long v)
{
	out_family(b, name, "gauge", help);
	out_str(b, name);
	out_str(b, " ");
	out_i64(b, v);
	out_str(b, "\n");
}

struct kind_snap {
	char name[KIND_MAX];
	uint64_t count;
};

static int kind_cmp(const void *a, const void *b)
{
	return strcmp(((const struct kind_snap *)a)->name, ((const struct kind_snap *)b)->name);
}

static void render_upstream_errors(struct outbuf *b)
{
	const char *name = "weir_proxy_upstream_errors_total";
	struct kind_snap v[NKNOWN + EXTRA_KINDS + 1];
	size_t n = 0;
	for (size_t i = 0; i < NKNOWN; i++) {
		snprintf(v[n].name, KIND_MAX, "%s", known_kinds[i]);
		v[n++].count = atomic_load_explicit(&known_kind_count[i], memory_order_relaxed);
	}
	pthread_mutex_lock(&extra_lock);
	for (int i = 0; i < extra_kinds; i++) {
		memcpy(v[n].name, extra_kind_name[i], KIND_MAX);
		v[n++].count = extra_kind_count[i];
	}
	if (other_kind_count) {
		snprintf(v[n].name, KIND_MAX, "other");
		v[n++].count = other_kind_count;
	}
	pthread_mutex_unlock(&extra_lock);
	qsort(v, n, sizeof(v[0]), kind_cmp);
	out_family(b, name, "counter", "Failures talking to upstreams, by kind.");
	for (size_t i = 0; i < n; i++) {
		out_str(b, name);
		out_str(b, "{kind=\"");
		out_label(b, v[i].name, strlen(v[i].name));
		out_str(b, "\"} ");
		out_u64(b, v[i].count);
		out_str(b, "\n");
	}
}

#define RETRY_CONDITIONS 10 /* error .. http_429: not non_idempotent */
static _Atomic uint64_t retry_count[RETRY_CONDITIONS];

void metrics_upstream_retry(int condition)
{
	if (condition >= 0 && condition < RETRY_CONDITIONS)
		atomic_fetch_add_explicit(&retry_count[condition], 1, memory_order_relaxed);
}

static void render_retries(struct outbuf *b)
{
	const char *name = "weir_proxy_upstream_retries_total";
	out_family(b, name, "counter",
	           "Requests passed to another endpoint (proxy-next-upstream), by condition.");
	for (int i = 0; i < RETRY_CONDITIONS; i++) {
		out_str(b, name);
		out_str(b, "{condition=\"");
		out_str(b, route_next_upstream_name(i));
		out_str(b, "\"} ");
		out_u64(b, atomic_load_explicit(&retry_count[i], memory_order_relaxed));
		out_str(b, "\n");
	}
}

void metrics_basic_auth(enum metrics_basic_auth outcome)
{
	if ((unsigned)outcome < 3)
		atomic_fetch_add_explicit(&basic_auth_count[outcome], 1, memory_order_relaxed);
}

/* A counter family with one label: counts[i] under label="values[i]". */
static void render_counters_by(struct outbuf *b, const char *name, const char *help,
                               const char *label, const char *const *values,
                               _Atomic uint64_t *counts, size_t n)
{
	out_family(b, name, "counter", help);
	for (size_t i = 0; i < n; i++) {
		out_str(b, name);
		out_str(b, "{");
		out_str(b, label);
		out_str(b, "=\"");
		out_str(b, values[i]);
		out_str(b, "\"} ");
		out_u64(b, atomic_load_explicit(&counts[i], memory_order_relaxed));
		out_str(b, "\n");
	}
}

static void render_basic_auth(struct outbuf *b)
{
	static const char *const result[] = {"cached", "verified", "refused"};
	render_counters_by(b, "weir_proxy_basic_auth_checks_total",
	                   "Basic-auth checks, by result: cached (success cache hit), verified "
	                   "(hash matched), refused (no, malformed or wrong credentials).",
	                   "result", result, basic_auth_count, 3);
}

void metrics_mirror(enum metrics_mirror result)
{
	if ((unsigned)result < 3)
		atomic_fetch_add_explicit(&mirror_count[result], 1, memory_order_relaxed);
}

static void render_mirror(struct outbuf *b)
{
	static const char *const result[] = {"sent", "dropped", "failed"};
	render_counters_by(b, "weir_proxy_mirror_requests_total",
	                   "Mirrored requests (mirror-target), by result: sent (the mirror "
	                   "answered), dropped (not sent: too many in flight, body too large, "
	                   "request cut short), failed (lookup, connect, write, timeout or bad "
	                   "answer).",
	                   "result", result, mirror_count, 3);
}

#define WORKERS_MAX 1024
static atomic_uint worker_load[WORKERS_MAX];
static atomic_int workers_seen; /* highest id reported + 1 */

void metrics_worker_load(int id, unsigned n)
{
	if (id < 0 || id >= WORKERS_MAX)
		return;
	atomic_store_explicit(&worker_load[id], n, memory_order_relaxed);
	int seen = atomic_load_explicit(&workers_seen, memory_order_relaxed);
	while (seen < id + 1 &&
	       !atomic_compare_exchange_weak_explicit(&workers_seen, &seen, id + 1,
	                                              memory_order_relaxed, memory_order_relaxed))
		;
}

static void render_worker_load(struct outbuf *b)
{
	int n = atomic_load_explicit(&workers_seen, memory_order_relaxed);
	if (n == 0)
		return;
	const char *name = "weir_proxy_worker_load";
	out_family(b, name, "gauge",
	           "What each worker holds: client connections (HTTP/1.1, HTTP/2, tunnels) plus "
	           "HTTP/2 streams in flight, as it last counted (each accept, every 250 ms).");
	for (int i = 0; i < n; i++) {
		out_str(b, name);
		out_str(b, "{worker=\"");
		out_u64(b, (uint64_t)i);
		out_str(b, "\"} ");
		out_u64(b, atomic_load_explicit(&worker_load[i], memory_order_relaxed));
		out_str(b, "\n");
	}
}

void metrics_http2_connections(int delta)
{
	atomic_fetch_add_explicit(&open_http2_connections, delta, memory_order_relaxed);
}

static void render_protocols(struct outbuf *b)
{
	render_counters_by(b, "weir_proxy_requests_by_protocol_total",
	                   "Finished requests, by the protocol they came in (an HTTP/2 stream "
	                   "is one).",
	                   "protocol", protocol_names, protocol_count, 3);
	render_gauge(b, "weir_proxy_open_http2_connections",
	             "Open HTTP/2 client connections (in weir_proxy_open_connections too).",
	             atomic_load_explicit(&open_http2_connections, memory_order_relaxed));
}

int metrics_render(char **out, size_t *len)
{
	struct outbuf b = {0};
	render_requests(&b);
	render_latency(&b);
	render_gauge(&b, "weir_proxy_open_connections", "Open client connections.",
	             atomic_load_explicit(&open_connections, memory_order_relaxed));
	render_gauge(&b, "weir_proxy_open_websocket_tunnels", "Open WebSocket tunnels.",
	             atomic_load_explicit(&open_tunnels, memory_order_relaxed));
	render_worker_load(&b);
	render_gauge(&b, "weir_proxy_route_table_generation",
	             "Generation of the route table in use (0: none loaded).",
	             (long long)atomic_load_explicit(&table_generation, memory_order_relaxed));
	out_family(&b, "weir_proxy_reloads_total", "counter",
	           "Route table reload attempts, by result.");
	out_str(&b, "weir_proxy_reloads_total{result=\"failed\"} ");
	out_u64(&b, atomic_load_explicit(&reloads_failed, memory_order_relaxed));
	out_str(&b, "\nweir_proxy_reloads_total{result=\"ok\"} ");
	out_u64(&b, atomic_load_explicit(&reloads_ok, memory_order_relaxed));
	out_str(&b, "\n");
	render_gauge(&b, "weir_proxy_route_table_load_microseconds",
	             "Time the last successful route table load took (read, parse, build).",
	             (long long)atomic_load_explicit(&load_usec, memory_order_relaxed));
	out_family(&b, "weir_proxy_route_table_hosts_total", "counter",
	           "Hosts of loaded route tables, by whether the load parsed them or reused a "
	           "cached shard.");
	out_str(&b, "weir_proxy_route_table_hosts_total{result=\"parsed\"} ");
	out_u64(&b, atomic_load_explicit(&shards_parsed, memory_order_relaxed));
	out_str(&b, "\nweir_proxy_route_table_hosts_total{result=\"reused\"} ");
	out_u64(&b, atomic_load_explicit(&shards_reused, memory_order_relaxed));
	out_str(&b, "\n");
	render_upstream_errors(&b);
	render_retries(&b);
	render_basic_auth(&b);
	render_mirror(&b);
	render_protocols(&b);
	if (b.failed) {
		free(b.data);
		return WEIR_ENOMEM;
	}
	*out = b.data;
	*len = b.len;
	return 0;
}
