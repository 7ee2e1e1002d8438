/* proxy/balancer.c - backend and endpoint choice.
 *
 * Everything that must agree across replicas and workers is a pure function
 * of the table and the request: the affinity cookie value is FNV-1a 64 of
 * "<canonical address>:<port>" (inet_ntop form, so "::0001" and "::1" agree),
 * and upstream-hash-by uses rendezvous (highest random weight) hashing of the
 * expanded key against each endpoint id, so removing one endpoint moves only
 * the keys it held. Only round robin (per backend, shared by every table
 * generation with that backend) and the canary weight draw (a per-thread
 * PRNG) are local, as in ingress-nginx, and so is
 * load-balance "ewma": each worker thread keeps an exponentially weighted
 * moving average of every endpoint's upstream response time (decaying toward
 * zero while an endpoint gets no traffic, so a slow one is tried again) and
 * takes the better of two endpoints drawn at random. */
#include "balancer.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "error.h"
#include "log.h"
#include "table_cache.h"

#define LOG_COMPONENT "proxy.balancer"
#define KEY_MAX 1024 /* expanded upstream-hash-by key cap (longer keys are cut) */

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= FNV_PRIME;
	}
	return h;
}

/* splitmix64's finalizer: spreads FNV's weak low bits over the whole word. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* "<canonical address>:<port>" into out (ENDPOINT_TEXT_MAX bytes); returns
 * its length. */
#define ENDPOINT_TEXT_MAX (INET6_ADDRSTRLEN + 8)
static size_t endpoint_text(const struct route_endpoint *ep, char *out)
{
	char addr[INET6_ADDRSTRLEN];
	const char *a = ep->address ? ep->address : "";
	unsigned char bin[16];
	if (inet_pton(AF_INET, a, bin) == 1)
		a = inet_ntop(AF_INET, bin, addr, sizeof(addr)) ? addr : a;
	else if (inet_pton(AF_INET6, a, bin) == 1)
		a = inet_ntop(AF_INET6, bin, addr, sizeof(addr)) ? addr : a;
	int n = snprintf(out, ENDPOINT_TEXT_MAX, "%s:%u", a, (unsigned)ep->port);
	if (n < 0)
		n = 0;
	return (size_t)n < ENDPOINT_TEXT_MAX ? (size_t)n : ENDPOINT_TEXT_MAX - 1;
}

static uint64_t endpoint_hash(const struct route_endpoint *ep)
{
	char text[ENDPOINT_TEXT_MAX];
	return fnv1a(FNV_OFFSET, text, endpoint_text(ep, text));
}

void balancer_endpoint_id(const struct route_endpoint *ep, char out[17])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t h = endpoint_hash(ep);
	for (int i = 15; i >= 0; i--) {
		out[i] = hex[h & 0xf];
		h >>= 4;
	}
	out[16] = '\0';
}

/* ---- request accessors ---- */

static bool hname_eq(const struct http_header *h, const char *name, size_t n)
{
	return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

static size_t nheaders(const struct http_request *req)
{
	return req->nheaders < HTTP_MAX_HEADERS ? req->nheaders : HTTP_MAX_HEADERS;
}

/* First header whose name equals name; with dash_underscore, '_' in name
 * also matches '-' (nginx's $http_NAME). */
static const struct http_header *find_header(const struct http_request *req, const char *name,
                                             size_t n, bool dash_underscore)
{
	for (size_t i = 0; i < nheaders(req); i++) {
		const struct http_header *h = &req->headers[i];
		if (h->name_len != n)
			continue;
		if (!dash_underscore) {
			if (hname_eq(h, name, n))
				return h;
			continue;
		}
		size_t k = 0;
		for (; k < n; k++) {
			char a = h->name[k], b = name[k];
			if (a == '-')
				a = '_';
			if (b == '-')
				b = '_';
			if (a >= 'A' && a <= 'Z')
				a = (char)(a - 'A' + 'a');
			if (b >= 'A' && b <= 'Z')
				b = (char)(b - 'A' + 'a');
			if (a != b)
				break;
		}
		if (k == n)
			return h;
	}
	return NULL;
}

/* Value of cookie name from the Cookie headers (first match). */
static bool find_cookie(const struct http_request *req, const char *name, size_t n, bool caseless,
                        const char **val, size_t *vlen)
{
	for (size_t i = 0; i < nheaders(req); i++) {
		const struct http_header *h = &req->headers[i];
		if (!hname_eq(h, "Cookie", 6))
			continue;
		const char *p = h->value, *end = h->value + h->value_len;
		while (p < end) {
			while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
				p++;
			const char *pair = p;
			while (p < end && *p != ';')
				p++;
			const char *eq = memchr(pair, '=', (size_t)(p - pair));
			if (!eq)
				continue;
			const char *ne = eq;
			while (ne > pair && (ne[-1] == ' ' || ne[-1] == '\t'))
				ne--;
			size_t nl = (size_t)(ne - pair);
			bool match = nl == n && (caseless ? strncasecmp(pair, name, n) == 0
			                                  : memcmp(pair, name, n) == 0);
			if (!match)
				continue;
			const char *v = eq + 1, *ve = p;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			if (ve - v >= 2 && v[0] == '"' && ve[-1] == '"') {
				v++;
				ve--;
			}
			*val = v;
			*vlen = (size_t)(ve - v);
			return true;
		}
	}
	return false;
}

/* Value of query argument name (first match, case-insensitive like nginx). */
static bool find_arg(const struct http_request *req, const char *name, size_t n, const char **val,
                     size_t *vlen)
{
	if (req->target_len <= req->path_len)
		return false;
	const char *p = req->target + req->path_len + 1, *end = req->target + req->target_len;
	while (p < end) {
		const char *pair = p;
		while (p < end && *p != '&')
			p++;
		const char *eq = memchr(pair, '=', (size_t)(p - pair));
		const char *ne = eq ? eq : p;
		if ((size_t)(ne - pair) == n && strncasecmp(pair, name, n) == 0) {
			*val = eq ? eq + 1 : p;
			*vlen = eq ? (size_t)(p - eq - 1) : 0;
			return true;
		}
		if (p < end)
			p++;
	}
	return false;
}

/* ---- upstream-hash-by key ---- */

struct keybuf {
	char b[KEY_MAX];
	size_t n;
};

static void key_put(struct keybuf *k, const char *s, size_t n)
{
	size_t room = sizeof(k->b) - k->n;
	if (n > room)
		n = room;
	memcpy(k->b + k->n, s, n);
	k->n += n;
}

static bool var_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

static void expand_var(struct keybuf *k, const char *v, size_t n, const struct http_request *req,
                       const struct http_client *client)
{
	const char *val = NULL;
	size_t vlen = 0;
	const struct http_header *h;
	if (n == 11 && memcmp(v, "remote_addr", 11) == 0) {
		key_put(k, client->ip, strlen(client->ip));
	} else if (n == 11 && memcmp(v, "request_uri", 11) == 0) {
		key_put(k, req->target, req->target_len);
	} else if (n == 3 && memcmp(v, "uri", 3) == 0) {
		key_put(k, req->path, req->path_len);
	} else if (n == 6 && memcmp(v, "scheme", 6) == 0) {
		key_put(k, client->tls ? "https" : "http", client->tls ? 5 : 4);
	} else if ((n == 4 && memcmp(v, "host", 4) == 0) ||
	           (n == 11 && memcmp(v, "server_name", 11) == 0)) {
		/* nginx $host: lowercase, without the port */
		if (req->host) {
			size_t hl = req->host_len;
			if (req->host_len && req->host[0] != '[') {
				const char *c = memchr(req->host, ':', req->host_len);
				if (c)
					hl = (size_t)(c - req->host);
			}
			for (size_t i = 0; i < hl; i++) {
				char c = req->host[i];
				if (c >= 'A' && c <= 'Z')
					c = (char)(c - 'A' + 'a');
				key_put(k, &c, 1);
			}
		}
	} else if (n == 18 && memcmp(v, "binary_remote_addr", 18) == 0) {
		/* nginx: the address in network order, 4 or 16 bytes */
		if (client->addr.ss_family == AF_INET)
			key_put(k, (const char *)&client->addr.in4.sin_addr, 4);
		else if (client->addr.ss_family == AF_INET6)
			key_put(k, (const char *)&client->addr.in6.sin6_addr, 16);
	} else if (n == 11 && memcmp(v, "remote_port", 11) == 0) {
		char port[8];
		int pn = client->port ? snprintf(port, sizeof(port), "%u", client->port) : 0;
		key_put(k, port, (size_t)pn);
	} else if (n == 11 && memcmp(v, "server_port", 11) == 0) {
		char port[8];
		int pn = snprintf(port, sizeof(port), "%u", client->local_port);
		key_put(k, port, (size_t)pn);
	} else if (n == 12 && memcmp(v, "document_uri", 12) == 0) {
		key_put(k, req->path, req->path_len);
	} else if ((n == 4 && memcmp(v, "args", 4) == 0) ||
	           (n == 12 && memcmp(v, "query_string", 12) == 0)) {
		if (req->target_len > req->path_len)
			key_put(k, req->target + req->path_len + 1,
			        req->target_len - req->path_len - 1);
	} else if (n == 7 && memcmp(v, "is_args", 7) == 0) {
		if (req->target_len > req->path_len)
			key_put(k, "?", 1);
	} else if (n == 14 && memcmp(v, "request_method", 14) == 0) {
		key_put(k, req->method, req->method_len);
	} else if (n > 4 && memcmp(v, "arg_", 4) == 0) {
		if (find_arg(req, v + 4, n - 4, &val, &vlen))
			key_put(k, val, vlen);
	} else if (n > 5 && memcmp(v, "http_", 5) == 0) {
		if ((h = find_header(req, v + 5, n - 5, true)))
			key_put(k, h->value, h->value_len);
	} else if (n > 7 && memcmp(v, "cookie_", 7) == 0) {
		if (find_cookie(req, v + 7, n - 7, true, &val, &vlen))
			key_put(k, val, vlen);
	}
	/* unknown variables expand to nothing */
}

static void expand_key(struct keybuf *k, const char *tmpl, const struct http_request *req,
                       const struct http_client *client)
{
	k->n = 0;
	const char *s = tmpl;
	while (*s) {
		if (s[0] == '$' && s[1] == '{') {
			const char *close = strchr(s + 2, '}');
			if (close) {
				expand_var(k, s + 2, (size_t)(close - s - 2), req, client);
				s = close + 1;
				continue;
			}
		}
		if (s[0] == '$' && var_char(s[1])) {
			const char *v = s + 1;
			size_t n = 0;
			while (var_char(v[n]))
				n++;
			expand_var(k, v, n, req, client);
			s = v + n;
			continue;
		}
		key_put(k, s, 1);
		s++;
	}
}

/* ln(x) for x >= 1 without libm: x = m * 2^e with m in [1,2),
 * ln m = 2 atanh((m-1)/(m+1)) by its series. Deterministic in every replica. */
static double ln_u64(uint64_t x)
{
	int e = 63 - __builtin_clzll(x);
	double m = (double)x;
	for (int i = 0; i < e; i++)
		m *= 0.5;
	double t = (m - 1.0) / (m + 1.0), t2 = t * t, term = t, sum = 0.0;
	for (int k = 1; k < 60; k += 2) {
		sum += term / k;
		term *= t2;
	}
	return e * 0.69314718055994530942 + 2.0 * sum;
}

static uint32_t weight_of(const struct route_endpoint *ep)
{
	return ep->weight ? ep->weight : 1;
}

/* Highest random weight: every endpoint's score depends only on the key and
 * that endpoint, so a removal moves only the keys the removed one won. With
 * unequal weights the score is w / -ln(u), u uniform in (0,1) from the hash. */
static int pick_rendezvous(const struct route_backend *be, uint64_t keyhash)
{
	bool equal = true;
	for (size_t i = 1; i < be->nendpoints; i++)
		if (weight_of(&be->endpoints[i]) != weight_of(&be->endpoints[0]))
			equal = false;
	int best = -1;
	uint64_t best_h = 0;
	double best_s = 0;
	for (size_t i = 0; i < be->nendpoints; i++) {
		const struct route_endpoint *ep = &be->endpoints[i];
		if (ep->draining)
			continue;
		uint64_t h = mix64(keyhash ^ mix64(endpoint_hash(ep)));
		if (equal) {
			if (best < 0 || h > best_h) {
				best = (int)i;
				best_h = h;
			}
			continue;
		}
		/* u = x / 2^53 with x odd in [1, 2^53): -ln u = 53 ln2 - ln x > 0 */
		uint64_t x = (h >> 11) | 1;
		double neg_ln_u = 53 * 0.69314718055994530942 - ln_u64(x);
		double s = (double)weight_of(ep) / neg_ln_u;
		if (best < 0 || s > best_s) {
			best = (int)i;
			best_s = s;
		}
	}
	return best;
}

/* ---- round robin: state shared across table generations ----
 *
 * Stride scheduling: each endpoint has a pass, the virtual time it is due
 * next; a pick takes the smallest pass among the endpoints that take new
 * requests (ties: the first listed) and moves it on by RR_SCALE / weight.
 * The backend's clock is the pass the last pick started from; an endpoint
 * that is new, or back after a while, starts no earlier than the clock, so
 * it joins the rotation instead of catching up. The clock and the passes are
 * cells of the table cache, keyed by backend name (and endpoint address), so
 * every table generation that lists them shares them: endpoints coming and
 * going neither restart the rotation nor shift the others' shares. Passes
 * are compared relative to the clock, so they may wrap. */

#define RR_SCALE (UINT64_C(1) << 32) /* the pass step of a weight-1 endpoint */
#define RR_TRIES 8                   /* picks retried when another thread raced */

/* One atomic on its own cache line: workers of other backends do not slow
 * each other down. */
struct rr_cell {
	_Alignas(64) _Atomic uint64_t v;
};

struct rr_backend {
	_Atomic uint64_t *clock;
	_Atomic uint64_t **pass; /* one per endpoint, in the order of be->endpoints */
	size_t entry;            /* entries[entry]: the clock's cell, then one per endpoint */
};

struct balancer_state {
	size_t nbackends;
	struct rr_backend *be;
	_Atomic uint64_t **passes;          /* storage of every backend's pass array */
	struct table_cache_entry **entries; /* the cells held, for table_cache_put */
	size_t nentries;
};

static void rr_cell_free(void *p)
{
	free(p);
}

/* The cell named by fields, shared with any live table that has it; a new
 * one starts at 0. NULL on out-of-memory. */
static _Atomic uint64_t *rr_cell(struct balancer_state *st, size_t nfields,
                                 const char *const *fields)
{
	unsigned char key[TABLE_CACHE_KEY_LEN];
	if (table_cache_key(key, nfields, fields) != 0)
		return NULL;
	struct table_cache_entry *e = table_cache_find(TABLE_CACHE_BALANCER, key);
	if (!e) {
		struct rr_cell *c = aligned_alloc(_Alignof(struct rr_cell), sizeof(*c));
		if (!c)
			return NULL;
		atomic_init(&c->v, 0);
		if (!(e = table_cache_add(TABLE_CACHE_BALANCER, key, c, rr_cell_free)))
			return NULL;
	}
	st->entries[st->nentries++] = e;
	return &((struct rr_cell *)table_cache_object(e))->v;
}

int balancer_state_new(const struct route_table *rt, struct balancer_state **out)
{
	return balancer_state_new_reusing(rt, NULL, NULL, out);
}

int balancer_state_new_reusing(const struct route_table *rt, const struct balancer_state *prev,
                               const bool *same, struct balancer_state **out)
{
	int rc = WEIR_ENOMEM;
	size_t neps = 0;
	for (size_t i = 0; i < rt->nbackends; i++)
		neps += rt->backends[i].nendpoints;
	struct balancer_state *st = calloc(1, sizeof(*st));
	if (!st)
		return WEIR_ENOMEM;
	if (rt->nbackends) {
		st->be = calloc(rt->nbackends, sizeof(*st->be));
		st->entries = calloc(rt->nbackends + neps, sizeof(*st->entries));
		if (!st->be || !st->entries)
			goto fail;
	}
	if (neps && !(st->passes = calloc(neps, sizeof(*st->passes))))
		goto fail;
	st->nbackends = rt->nbackends;
	/* First the backends prev has as they are: their cells by pointer, all
	 * referenced under one lock. */
	for (size_t i = 0, k = 0; prev && i < rt->nbackends; k += rt->backends[i].nendpoints, i++) {
		if (!same[i] || i >= prev->nbackends)
			continue;
		const struct rr_backend *pb = &prev->be[i];
		size_t n = rt->backends[i].nendpoints;
		st->be[i].clock = pb->clock;
		st->be[i].pass = st->passes ? st->passes + k : NULL;
		st->be[i].entry = st->nentries;
		for (size_t j = 0; j < n; j++)
			st->passes[k + j] = pb->pass[j];
		memcpy(st->entries + st->nentries, prev->entries + pb->entry,
		       (n + 1) * sizeof(*st->entries));
		st->nentries += n + 1;
	}
	table_cache_get(st->entries, st->nentries);
	for (size_t i = 0, k = 0; i < rt->nbackends; i++) {
		const struct route_backend *be = &rt->backends[i];
		if (st->be[i].clock) {
			k += be->nendpoints;
			continue;
		}
		const char *name = be->name ? be->name : "";
		const char *bf[] = {"rr-clock", name};
		st->be[i].entry = st->nentries;
		if (!(st->be[i].clock = rr_cell(st, 2, bf)))
			goto fail;
		st->be[i].pass = st->passes ? st->passes + k : NULL; /* no endpoints: none */
		for (size_t j = 0; j < be->nendpoints; j++, k++) {
			char text[ENDPOINT_TEXT_MAX];
			endpoint_text(&be->endpoints[j], text);
			const char *ef[] = {"rr-pass", name, text};
			if (!(st->passes[k] = rr_cell(st, 3, ef)))
				goto fail;
		}
	}
	*out = st;
	return 0;
fail:
	balancer_state_free(st);
	return rc;
}

void balancer_state_free(struct balancer_state *st)
{
	if (!st)
		return;
	table_cache_put(st->entries, st->nentries);
	free(st->entries);
	free(st->passes);
	free(st->be);
	free(st);
}

/* Weighted round robin over the endpoints that take new requests and
 * whose bit in skip (NULL: none) is clear; with skip the pick is not
 * counted in the rotation. */
static int pick_round_robin_skip(const struct table *t, int backend, const struct route_backend *be,
                                 const uint64_t *skip)
{
	const struct balancer_state *st = table_balancer(t);
	if (!st || backend < 0 || (size_t)backend >= st->nbackends)
		return -1;
	const struct rr_backend *rb = &st->be[backend];
	int best = -1;
	for (int attempt = 0; attempt < RR_TRIES; attempt++) {
		uint64_t base = atomic_load_explicit(rb->clock, memory_order_relaxed);
		uint64_t best_off = 0, best_old = 0;
		best = -1;
		for (size_t i = 0; i < be->nendpoints; i++) {
			if (be->endpoints[i].draining)
				continue;
			if (skip && i < BALANCER_TRIED_MAX && (skip[i / 64] >> (i % 64)) & 1)
				continue;
			uint64_t old = atomic_load_explicit(rb->pass[i], memory_order_relaxed);
			uint64_t off = (int64_t)(old - base) > 0 ? old - base : 0;
			if (best < 0 || off < best_off) {
				best = (int)i;
				best_off = off;
				best_old = old;
			}
		}
		if (best < 0 || skip)
			return best; /* a retry is not charged: the first attempts keep
			                their shares whatever failed */
		uint64_t start = base + best_off;
		uint64_t next = start + RR_SCALE / weight_of(&be->endpoints[best]);
		if (!atomic_compare_exchange_strong_explicit(rb->pass[best], &best_old, next,
		                                             memory_order_relaxed,
		                                             memory_order_relaxed))
			continue; /* another thread took it first: look again */
		uint64_t c = base;
		while ((int64_t)(start - c) > 0 &&
		       !atomic_compare_exchange_weak_explicit(
		           rb->clock, &c, start, memory_order_relaxed, memory_order_relaxed))
			;
		return best;
	}
	/* Still racing after RR_TRIES looks: serve the last choice and charge
	 * it its step, so the passes still count every pick and the shares
	 * even out over the next turns. */
	if (best >= 0)
		atomic_fetch_add_explicit(rb->pass[best],
		                          RR_SCALE / weight_of(&be->endpoints[best]),
		                          memory_order_relaxed);
	return best;
}

static int pick_round_robin(const struct table *t, int backend, const struct route_backend *be)
{
	return pick_round_robin_skip(t, backend, be, NULL);
}

int balancer_retry_pick(const struct table *t, int backend,
                        const uint64_t tried[BALANCER_TRIED_MAX / 64])
{
	const struct route_table *rt = table_routes(t);
	if (backend < 0 || (size_t)backend >= rt->nbackends)
		return -1;
	return pick_round_robin_skip(t, backend, &rt->backends[backend], tried);
}

int balancer_round_robin(const struct table *t, int backend)
{
	const struct route_table *rt = table_routes(t);
	if (backend < 0 || (size_t)backend >= rt->nbackends)
		return -1;
	return pick_round_robin(t, backend, &rt->backends[backend]);
}

/* Per-thread xorshift64*, seeded once from the kernel (clock as fallback). */
static uint64_t random_u64(void)
{
	static _Thread_local uint64_t state;
	if (state == 0) {
		if (getrandom(&state, sizeof(state), GRND_NONBLOCK) != (ssize_t)sizeof(state)) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			state = mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
			              (uint64_t)(uintptr_t)&state);
		}
		if (state == 0)
			state = 0x9e3779b97f4a7c15ULL;
	}
	state ^= state >> 12;
	state ^= state << 25;
	state ^= state >> 27;
	return state * 0x2545f4914f6cdd1dULL;
}

/* Uniform in [0, n) for n >= 1 (the modulo bias of a 64-bit draw is below
 * 2^-32 for any 32-bit n). */
static uint32_t random_below(uint32_t n)
{
	return (uint32_t)(random_u64() % n);
}

/* ---- load-balance ewma: per-thread latency averages ---- */

#define EWMA_SLOTS 1024   /* endpoints remembered per worker (power of two) */
#define EWMA_PROBE 8      /* slots looked at per endpoint; the stalest is reused */
#define EWMA_TAU_MS 10000 /* decay time constant */
#define EWMA_MIN_GAIN 0.1 /* every sample moves the average at least this much */

struct ewma_slot {
	uint64_t key; /* endpoint_hash, 0: free */
	double ms;    /* average response time */
	uint64_t at;  /* monotonic ms of the last update */
};

static _Thread_local struct ewma_slot ewma_tab[EWMA_SLOTS];

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t ewma_key(const struct route_endpoint *ep)
{
	uint64_t k = mix64(endpoint_hash(ep));
	return k ? k : 1;
}

/* The slot holding key, or (create) a free or the stalest probed one. */
static struct ewma_slot *ewma_slot(uint64_t key, bool create)
{
	struct ewma_slot *victim = NULL;
	for (size_t i = 0; i < EWMA_PROBE; i++) {
		struct ewma_slot *s = &ewma_tab[(key + i) & (EWMA_SLOTS - 1)];
		if (s->key == key)
			return s;
		if (!victim || (victim->key && (!s->key || s->at < victim->at)))
			victim = s;
	}
	if (!create)
		return NULL;
	victim->key = key;
	victim->ms = -1;
	victim->at = 0;
	return victim;
}

/* The average decayed by the time since it was last fed; 0 when unknown, so
 * a new endpoint gets tried. */
static double ewma_score(const struct route_endpoint *ep, uint64_t now)
{
	const struct ewma_slot *s = ewma_slot(ewma_key(ep), false);
	if (!s || s->ms < 0)
		return 0;
	return s->ms * exp(-(double)(now - s->at) / EWMA_TAU_MS);
}

void balancer_observe(const struct route_endpoint *ep, double ms)
{
	uint64_t now = mono_ms();
	struct ewma_slot *s = ewma_slot(ewma_key(ep), true);
	if (ms < 0)
		ms = 0;
	if (s->ms < 0) {
		s->ms = ms;
	} else {
		double w = exp(-(double)(now - s->at) / EWMA_TAU_MS);
		if (w > 1 - EWMA_MIN_GAIN)
			w = 1 - EWMA_MIN_GAIN;
		s->ms = s->ms * w + ms * (1 - w);
	}
	s->at = now;
}

/* Power of two choices on the decayed averages among the endpoints that take
 * new requests. */
static int pick_ewma(const struct route_backend *be)
{
	size_t live = 0;
	for (size_t i = 0; i < be->nendpoints; i++)
		live += !be->endpoints[i].draining;
	if (live == 0)
		return -1;
	uint64_t r = random_u64();
	size_t a = (size_t)((r >> 32) % live);
	size_t b = live > 1 ? (a + 1 + (size_t)((r & 0xffffffffu) % (live - 1))) % live : a;
	int ia = -1, ib = -1;
	for (size_t i = 0, k = 0; i < be->nendpoints; i++) {
		if (be->endpoints[i].draining)
			continue;
		if (k == a)
			ia = (int)i;
		if (k == b)
			ib = (int)i;
		k++;
	}
	if (ia == ib)
		return ia;
	uint64_t now = mono_ms();
	double sa = ewma_score(&be->endpoints[ia], now);
	double sb = ewma_score(&be->endpoints[ib], now);
	return sb < sa ? ib : ia;
}

static bool value_is(const char *v, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(v, s, n) == 0;
}

/* ingress-nginx precedence: header (by_header_value, else
 * by_header_pattern, else always/never), then cookie, then weight. */
static bool use_canary(const struct table *t, const struct route *route,
                       const struct http_request *req)
{
	const struct route_canary *c = &route->canary;
	const char *v;
	size_t n;
	if (c->by_header) {
		const struct http_header *h =
		    find_header(req, c->by_header, strlen(c->by_header), false);
		if (h) {
			if (c->by_header_value) {
				if (value_is(h->value, h->value_len, c->by_header_value))
					return true;
			} else if (c->by_header_pattern) {
				if (table_canary_pattern_match(t, route, h->value, h->value_len))
					return true;
			} else if (value_is(h->value, h->value_len, "always")) {
				return true;
			} else if (value_is(h->value, h->value_len, "never")) {
				return false;
			}
		}
	}
	if (c->by_cookie && find_cookie(req, c->by_cookie, strlen(c->by_cookie), false, &v, &n)) {
		if (value_is(v, n, "always"))
			return true;
		if (value_is(v, n, "never"))
			return false;
	}
	if (c->weight == 0)
		return false;
	return random_below(c->weight_total ? c->weight_total : 100) < c->weight;
}

bool balancer_samesite_none_ok(const char *ua, size_t n)
{
	/* The user agents ingress-nginx's sticky balancer leaves SameSite=None
	 * out for (Chromium's list of clients that reject or misread it). */
	if (!ua)
		return true;
	if (memmem(ua, n, "Chrome/4", 8) || memmem(ua, n, "Chrome/5", 8) ||
	    memmem(ua, n, "Chrome/6", 8) || memmem(ua, n, "CPU iPhone OS 12", 16) ||
	    memmem(ua, n, "iPad; CPU OS 12", 15))
		return false;
	if (memmem(ua, n, "Macintosh", 9) && memmem(ua, n, "Intel Mac OS X 10_14", 20) &&
	    memmem(ua, n, "Safari", 6) && !memmem(ua, n, "Chrome", 6))
		return false;
	return true;
}

static const char *const wday[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const month[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* "Set-Cookie" value for the affinity cookie; "" when it does not fit. */
static void make_cookie(const struct route *route, const struct route_endpoint *ep,
                        const struct http_request *req, char *out, size_t cap)
{
	const struct route_cookie *c = &route->policy->cookie;
	char id[17];
	balancer_endpoint_id(ep, id);
	const char *path = c->path;
	if (!path)
		path = route->match != ROUTE_MATCH_REGEX && route->path ? route->path : "/";
	size_t n = 0;
	int r = snprintf(out, cap, "%s=%s; Path=%s", c->name ? c->name : "INGRESSCOOKIE", id, path);
	if (r < 0 || (size_t)r >= cap)
		goto toolong;
	n = (size_t)r;
	if (c->domain) {
		r = snprintf(out + n, cap - n, "; Domain=%s", c->domain);
		if (r < 0 || (size_t)r >= cap - n)
			goto toolong;
		n += (size_t)r;
	}
	if (c->max_age_s >= 0) {
		r = snprintf(out + n, cap - n, "; Max-Age=%lld", (long long)c->max_age_s);
		if (r < 0 || (size_t)r >= cap - n)
			goto toolong;
		n += (size_t)r;
	}
	if (c->expires_s >= 0) {
		time_t when = time(NULL) + (time_t)c->expires_s;
		struct tm tm;
		if (gmtime_r(&when, &tm)) {
			r = snprintf(out + n, cap - n,
			             "; Expires=%s, %02d %s %04d %02d:%02d:%02d GMT",
			             wday[tm.tm_wday % 7], tm.tm_mday, month[tm.tm_mon % 12],
			             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
			if (r < 0 || (size_t)r >= cap - n)
				goto toolong;
			n += (size_t)r;
		}
	}
	if (c->secure) {
		r = snprintf(out + n, cap - n, "; Secure");
		if (r < 0 || (size_t)r >= cap - n)
			goto toolong;
		n += (size_t)r;
	}
	const struct http_header *ua = NULL;
	if (c->samesite && c->conditional_samesite_none && strcmp(c->samesite, "None") == 0)
		ua = find_header(req, "User-Agent", 10, false);
	if (c->samesite && !(ua && !balancer_samesite_none_ok(ua->value, ua->value_len))) {
		r = snprintf(out + n, cap - n, "; SameSite=%s", c->samesite);
		if (r < 0 || (size_t)r >= cap - n)
			goto toolong;
		n += (size_t)r;
	}
	r = snprintf(out + n, cap - n, "; HttpOnly");
	if (r < 0 || (size_t)r >= cap - n)
		goto toolong;
	return;
toolong:
	log_warn(LOG_COMPONENT, "affinity cookie for route %s does not fit; not set",
	         route->path ? route->path : "-");
	out[0] = '\0';
}

/* The endpoint named by the affinity cookie, or -1. */
static int cookie_endpoint(const struct route *route, const struct route_backend *be,
                           const struct http_request *req)
{
	const struct route_cookie *c = &route->policy->cookie;
	const char *name = c->name ? c->name : "INGRESSCOOKIE";
	const char *v;
	size_t n;
	if (!find_cookie(req, name, strlen(name), false, &v, &n) || n != 16)
		return -1;
	for (size_t i = 0; i < be->nendpoints; i++) {
		char id[17];
		balancer_endpoint_id(&be->endpoints[i], id);
		if (strncasecmp(id, v, 16) == 0)
			return (int)i;
	}
	return -1;
}

/* upstream-hash-by-subset (ingress-nginx's chashsubset): the endpoints,
 * in table order and padded from the start to a multiple of size, form
 * consecutive subsets of size; the key picks a subset by rendezvous hashing
 * over subset numbers, and a random endpoint of it that is not draining
 * serves. -2 when every endpoint of the subset is draining. A subset is a
 * window of the endpoints taken cyclically, so when size < n its members
 * are distinct, and when size >= n there is one subset: all of them. */
static int pick_subset(const struct route_backend *be, uint64_t keyhash, uint32_t size)
{
	size_t n = be->nendpoints;
	if (n == 0)
		return -1;
	if (size < 1)
		size = 1;
	size_t sets = (n + size - 1) / size, best = 0;
	uint64_t best_h = 0;
	for (size_t s = 0; s < sets; s++) {
		uint64_t h = mix64(keyhash ^ mix64((uint64_t)s + 0x51ed27a3u));
		if (s == 0 || h > best_h) {
			best = s;
			best_h = h;
		}
	}
	size_t span = size < n ? size : n, first = (best * size) % n, live = 0;
	for (size_t k = 0; k < span; k++)
		live += !be->endpoints[(first + k) % n].draining;
	if (!live)
		return -2;
	uint32_t r = random_below((uint32_t)live);
	for (size_t k = 0; k < span; k++) {
		size_t i = (first + k) % n;
		if (be->endpoints[i].draining)
			continue;
		if (r-- == 0)
			return (int)i;
	}
	return -2; /* not reached */
}

int balancer_subset_pick(const struct route_backend *be, uint64_t keyhash, uint32_t size)
{
	int i = pick_subset(be, keyhash, size);
	return i == -2 ? pick_rendezvous(be, keyhash) : i;
}

void balancer_affinity_cookie(const struct route *route, const struct route_endpoint *ep,
                              const struct http_request *req, char *out, size_t cap)
{
	make_cookie(route, ep, req, out, cap);
}

int balancer_choose(const struct table *t, const struct route *route,
                    const struct http_request *req, const struct http_client *client,
                    struct balancer_pick *out)
{
	const struct route_table *rt = table_routes(t);
	out->backend = -1;
	out->endpoint = -1;
	out->set_cookie[0] = '\0';

	int backend = route ? route->backend : rt->default_backend;
	if (backend < 0 || (size_t)backend >= rt->nbackends)
		return WEIR_ENOENT;
	bool affinity = route && route->policy->affinity == ROUTE_AFFINITY_COOKIE;
	bool legacy = false;
	if (route && route->canary.backend >= 0 && (size_t)route->canary.backend < rt->nbackends) {
		int canary = route->canary.backend;
		legacy = route->canary.affinity_behavior == ROUTE_CANARY_LEGACY;
		/* ingress-nginx: a client the affinity cookie ties to the main
		 * backend stays there whatever the canary rules say; with sticky
		 * canaries, one it ties to the canary stays on the canary. */
		if (affinity && cookie_endpoint(route, &rt->backends[backend], req) >= 0)
			;
		else if (affinity && !legacy &&
		         cookie_endpoint(route, &rt->backends[canary], req) >= 0)
			backend = canary;
		else if (use_canary(t, route, req))
			backend = canary;
		/* legacy: the canary's answers carry no affinity */
		if (legacy && backend == canary)
			affinity = false;
	}
	out->backend = backend;
	const struct route_backend *be = &rt->backends[backend];

	if (affinity) {
		int i = cookie_endpoint(route, be, req);
		if (i >= 0 && (route->policy->affinity_mode == ROUTE_AFFINITY_PERSISTENT ||
		               !be->endpoints[i].draining)) {
			out->endpoint = i;
			return 0;
		}
		out->endpoint = pick_round_robin(t, backend, be);
		if (out->endpoint >= 0)
			make_cookie(route, &be->endpoints[out->endpoint], req, out->set_cookie,
			            sizeof(out->set_cookie));
		return 0;
	}

	if (route && route->policy->hash_by) {
		struct keybuf k;
		expand_key(&k, route->policy->hash_by, req, client);
		uint64_t kh = mix64(fnv1a(FNV_OFFSET, k.b, k.n));
		if (route->policy->hash_by_subset)
			out->endpoint =
			    balancer_subset_pick(be, kh, route->policy->hash_by_subset_size);
		else
			out->endpoint = pick_rendezvous(be, kh);
		return 0;
	}

	if (route && route->policy->balance == ROUTE_BALANCE_EWMA)
		out->endpoint = pick_ewma(be);
	else
		out->endpoint = pick_round_robin(t, backend, be);
	return 0;
}
