/* proxy/table.h - a loaded, validated, reference-counted route table and the
 * process-wide "current table" the data path reads. A table is immutable once
 * built; a new one replaces the old with one atomic pointer store, and the old
 * one is freed when the last request holding a reference lets go (tunnels hold
 * none: tunnel.h). */
#ifndef WEIR_PROXY_TABLE_H
#define WEIR_PROXY_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "route_table.h"

struct table; /* opaque */

/* Read <dir>/routes.json: a version 1 table, or a version 2 index whose host
 * and certificate shards are read from <dir>/shards/ (docs/route-table.md,
 * "Sharded tables"). A shard is read, checked against its name (SHA-256),
 * parsed, validated and compiled once, then shared through the table cache
 * by every table naming it; its index references are checked against each
 * new index. Shards the current table (table_current) holds at the same
 * position of its index are taken from it without a cache lookup, and its
 * round-robin cells for backends whose shard did not change. A missing or
 * corrupt shard fails the load. Then, as for version
 * 1: parse it (route_table_parse), then validate what
 * only the proxy can: compile every regex route with PCRE2 (caseless), load
 * every cert/key PEM into its own SSL_CTX (TLS server, min TLS 1.2, ALPN
 * select "http/1.1"), build the host index. Contexts and CA stores come from
 * the table cache (table_cache.h) when a live table already built them from
 * the same PEM text. On success returns 0 and *out
 * holds one reference (the caller drops it with table_unref or hands it to
 * table_publish). On failure returns WEIR_E*, *out is untouched and err (size
 * errlen) holds one line, e.g.
 * "routes.json: hosts[2].routes[0].path: bad regex: ...". */
int table_load(const char *dir, struct table **out, char *err, size_t errlen);

/* True when t was loaded from a version 2 index. */
bool table_sharded(const struct table *t);

/* Host shards this load parsed (the others came from the cache); for a
 * version 1 table, its number of hosts. */
size_t table_hosts_parsed(const struct table *t);

/* Same as table_load from an already-parsed table. Takes ownership of rt in
 * all cases (freed on failure). */
int table_new(struct route_table *rt, struct table **out, char *err, size_t errlen);

/* Take one more reference. Thread-safe. */
void table_ref(struct table *t);

/* Drop one reference; the table is freed at zero, or, while a reaper is
 * set, put on the retired list for table_reap. NULL is fine. Thread-safe. */
void table_unref(struct table *t);

/* Called (with arg) on the thread that dropped a table's last reference,
 * after the table went on the retired list; it must only wake the thread
 * that calls table_reap (a worker lets go of the table it served before a
 * reload at its next request, and freeing 10,000 hosts' references there
 * would delay that request). */
typedef void (*table_reaper_cb)(void *arg);

/* Set the reaper (NULL: tables are freed where their last reference goes,
 * and the retired list is emptied now). Thread-safe. */
void table_set_reaper(table_reaper_cb cb, void *arg);

/* Free every retired table; returns how many. Thread-safe. */
size_t table_reap(void);

/* The parsed route table inside t; borrowed while t is referenced. Its
 * certs[].cert_pem and key_pem are NULL: table_new drops the PEM text once
 * the TLS contexts are built. */
const struct route_table *table_routes(const struct table *t);

/* The process-wide current table. table_publish takes ownership of the
 * caller's reference and swaps it in with one atomic store; the previous
 * table loses the reference the global held (freed when its last
 * request lets go). table_current returns a NEW reference (caller
 * drops it with table_unref) or NULL when none was ever published. All four
 * are thread-safe; table_current takes a process-wide lock, so the data path
 * reads through a per-worker table_view instead. */
void table_publish(struct table *t);
struct table *table_current(void);

/* One thread's own reference to the current table, so the data path takes
 * no process-wide lock: table_view_get compares the publish count (one
 * atomic load) with the one seen last and only on a change takes the lock to
 * follow the swap. Caller storage, zero-initialised; owned by one thread. The
 * view keeps the table it saw last alive until the next table_view_get after
 * a publish, or table_view_cleanup. */
struct table_view {
	struct table *t; /* the view's own reference, NULL: none yet */
	uint64_t seq;    /* publish count t belongs to */
};

/* The current table as a NEW reference (caller drops it with table_unref),
 * or NULL when none was ever published. No lock unless a publish happened
 * since the last call on v. */
struct table *table_view_get(struct table_view *v);

/* Drop the view's reference (the thread stops using v). */
void table_view_cleanup(struct table_view *v);

/* The table's global block lists (block.h; NULL: nothing blocked),
 * borrowed while t is referenced. */
struct block_list;
const struct block_list *table_block(const struct table *t);

/* The table's compiled access log format, NULL when the access log is off
 * (settings.access_log false); borrowed while t is referenced. */
struct access_log_format;
const struct access_log_format *table_access_log(const struct table *t);

/* True once a table has been published. */
bool table_ready(void);

/* Generation of the current table (cheap); 0 when none. */
uint64_t table_current_generation(void);

struct table_match {
	const struct route_host *host;   /* NULL when no host entry matched */
	const struct route *route;       /* NULL when no route matched */
	int ncaptures;                   /* regex routes: 1 + number of groups; else 0 */
	size_t cap_off[10], cap_len[10]; /* capture i = path[cap_off[i] .. +cap_len[i]] */
};

/* Find the route for a Host header value (case-insensitive, ":port" ignored,
 * may be NULL -> only the "" host applies) and a path (no query). Host
 * precedence: exact name, then one-label wildcard, then "". Within the chosen
 * host: the first route in table order that matches (Exact: equal; Prefix:
 * element-wise on '/', trailing '/' ignored on both sides, "/" matches
 * everything; Regex: PCRE2 caseless match anchored at path start). Returns 0
 * with m filled, or WEIR_ENOENT (m->host may still be set) - the caller then
 * uses default_backend or answers 404. The pointers in m are borrowed while t
 * is referenced. Thread-safe. */
int table_lookup(const struct table *t, const char *host, size_t host_len, const char *path,
                 size_t path_len, struct table_match *m);

/* SSL_CTX for an SNI name (NULL sni -> default): the matching host's cert
 * (exact name, then wildcard), else default_cert, else NULL (the caller uses
 * its built-in self-signed context). Borrowed while t is referenced. */
SSL_CTX *table_ssl_ctx(const struct table *t, const char *sni);

/* The host an SNI name selects for client certificates (NULL sni: no SNI),
 * found as a Host header is (exact, wildcard, then ""), or NULL. Borrowed
 * while t is referenced. */
const struct route_host *table_sni_host(const struct table *t, const char *sni);

/* The CA store client certificates of host h (of t) are checked against, or
 * NULL when h asks for none (no CA or verify off). Borrowed while t is
 * referenced (X509_STORE_up_ref to keep it longer). */
X509_STORE *table_ca_store(const struct table *t, const struct route_host *h);

/* The subject names of that store's CA certificates (sent in the
 * CertificateRequest), or NULL as for table_ca_store. Borrowed while t is
 * referenced (SSL_dup_CA_list to hand it to an SSL). */
STACK_OF(X509_NAME) * table_ca_names(const struct table *t, const struct route_host *h);

/* TABLE_CLIENT_AUTH_ID_LEN bytes naming host h's client certificate
 * settings by content (CA and CRL text, verify mode, depth): equal ids in two
 * tables mean a handshake made for one is good for the other. All hosts
 * without client certificates share one id. h must be a host of t. Borrowed
 * while t is referenced. */
#define TABLE_CLIENT_AUTH_ID_LEN 32
const unsigned char *table_client_auth_id(const struct table *t, const struct route_host *h);

/* auth-tls-match-cn of host h (of t) against a subject DN of len bytes:
 * 1 when it matches or h has none, 0 when not, WEIR_ENOMEM. Thread-safe. */
int table_match_cn(const struct table *t, const struct route_host *h, const char *dn, size_t len);

/* Route r's canary.by_header_pattern (r a route of t) against a header
 * value of len bytes: 1 when it matches, 0 when not, when r has none, or
 * when matching fails (ingress-nginx counts a regex error as no match).
 * Thread-safe. */
int table_canary_pattern_match(const struct table *t, const struct route *r, const char *v,
                               size_t len);

/* The client TLS contexts of the table's backend TLS profiles (NULL when
 * it has none); borrowed while t is referenced. */
const struct backend_tls_set *table_backend_tls(const struct table *t);

/* ssl-passthrough backend index for an SNI name (case-insensitive), or -1. */
int table_passthrough_backend(const struct table *t, const char *sni);

/* The ssl-passthrough entry for sni (borrowed while t is referenced), or
 * NULL. */
const struct route_passthrough *table_passthrough(const struct table *t, const char *sni);

/* How many of the table's certificates table_new decoded itself; the rest
 * (certs - this) it took from a live table or from an earlier entry with the
 * same PEM text. */
size_t table_certs_decoded(const struct table *t);

/* The round-robin state of the table's backends (balancer.h); borrowed
 * while t is referenced. Tables with a backend of the same name share its
 * state, so a reload does not restart round robin. */
struct balancer_state;
const struct balancer_state *table_balancer(const struct table *t);

#endif
