/* proxy/table.c - a route table made ready to serve: regexes compiled, TLS
 * contexts loaded, host index built; reference counted and published as the
 * process-wide current table with one atomic pointer store. */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "table.h"
#include "backend_tls.h"
#include "access_log.h"
#include "balancer.h"
#include "block.h"
#include "error.h"
#include "log.h"
#include "route_validate.h"
#include "table_cache.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Longest host name compared (DNS allows 253); longer ones only reach "". */
#define HOST_MAX 256
#define CAPTURES_MAX 10

/* One name in a sorted index; for wildcards the name is what follows "*.". */
struct host_entry {
	const char *name;
	size_t len;
	const struct route_host *host;
};

/* Per host, client certificate settings ready to use. */
struct host_auth {
	unsigned char id[TABLE_CLIENT_AUTH_ID_LEN]; /* see table_client_auth_id */
	pcre2_code *match_cn;                       /* NULL: none */
};

/* Per route, precomputed at load time. */
struct route_ext {
	size_t cmp_len; /* Exact: strlen(path); Prefix: length without trailing '/' */
	pcre2_code *re; /* Regex routes only */
	int ncaptures;  /* Regex: 1 + capture groups, at most CAPTURES_MAX */
};

/* A compiled canary.by_header_pattern, found by its route's address. */
struct canary_re {
	const struct route *route;
	pcre2_code *re;
	size_t host; /* position of the route's host in the table (v2 tables) */
};

struct table {
	atomic_uint refs;
	struct route_table *rt;
	struct host_entry *exact; /* sorted by name */
	size_t nexact;
	struct host_entry *wild; /* sorted by name (suffix after "*.") */
	size_t nwild;
	const struct route_host *any;         /* the "" host, or NULL */
	struct route_ext **ext;               /* ext[host index][route index] */
	SSL_CTX **ctx;                        /* one per cert, borrowed from ctx_entry */
	struct table_cache_entry **ctx_entry; /* one per cert: the shared context */
	X509_STORE **ca_store;                /* one per CA, borrowed from ca_entry */
	STACK_OF(X509_NAME) * *ca_names;      /* one per CA: its subjects, for CertificateRequest */
	struct table_cache_entry **ca_entry;  /* one per CA: the shared store and names */
	struct host_auth *auth;               /* one per host */
	struct backend_tls_set *btls;         /* one client context per backend TLS profile */
	struct balancer_state *balancer;      /* round-robin state, shared by backend name */
	struct block_list *block;             /* settings.block_*, NULL: nothing blocked */
	struct access_log_format *log_format; /* settings.access_log_format, compiled */
	size_t certs_decoded;                 /* contexts this table built (not shared) */
	struct canary_re *canary_re;          /* sorted by route address */
	size_t ncanary_re;
	/* Version 2 (sharded): rt->hosts[i] is a shallow copy of the host of
	 * host_shards[i], and ext[i] and auth[i].match_cn are that shard's;
	 * rt->backends[i] is a shallow copy of the backend of backend_shards[i];
	 * rt->certs[i].name and ctx[i] belong to cert_shards[i] (NULL: hole);
	 * canary_re[k].re belongs to the shard of host canary_re[k].host. */
	bool sharded;
	struct table_cache_entry **host_shards;
	struct table_cache_entry **backend_shards; /* struct route_backend; NULL: hole */
	struct table_cache_entry **cert_shards;
	struct route_index *ix;     /* the index's ids: the next load reuses shards by position */
	size_t hosts_parsed;        /* host shards this load parsed (the others were cached) */
	struct table *retired_next; /* on the retired list (table_set_reaper) */
};

/* A host shard as the cache keeps it: parsed, validated, compiled. */
struct host_shard {
	struct route_host host;
	struct route_ext *ext;    /* one per route */
	pcre2_code *match_cn;     /* client_auth.match_cn compiled, or NULL */
	struct canary_re *canary; /* by_header_pattern of its routes, in route order */
	size_t ncanary;
	struct route_host_refs refs;
};

/* A certificate shard: its name and its server context (a
 * TABLE_CACHE_SERVER_CTX entry, shared by content). */
struct cert_shard {
	char *name;
	struct table_cache_entry *ctx;
};

/* ------------------------------------------------------------ lifetime */

static void table_free(struct table *t)
{
	if (!t)
		return;
	block_list_free(t->block);
	access_log_format_free(t->log_format);
	if (t->ext) {
		for (size_t i = 0; i < t->rt->nhosts && !t->sharded; i++) {
			if (!t->ext[i])
				continue;
			for (size_t j = 0; j < t->rt->hosts[i].nroutes; j++)
				pcre2_code_free(t->ext[i][j].re);
			free(t->ext[i]);
		}
		free(t->ext);
	}
	if (t->ctx_entry)
		table_cache_put(t->ctx_entry, t->rt->ncerts);
	free(t->ctx_entry);
	free(t->ctx);
	if (t->ca_entry)
		table_cache_put(t->ca_entry, t->rt->ncas);
	free(t->ca_entry);
	free(t->ca_store);
	free(t->ca_names);
	if (t->auth) {
		for (size_t i = 0; i < t->rt->nhosts && !t->sharded; i++)
			pcre2_code_free(t->auth[i].match_cn);
		free(t->auth);
	}
	for (size_t i = 0; i < t->ncanary_re && !t->sharded; i++)
		pcre2_code_free(t->canary_re[i].re);
	free(t->canary_re);
	backend_tls_set_free(t->btls);
	free(t->exact);
	free(t->wild);
	balancer_state_free(t->balancer);
	if (t->sharded && t->rt) {
		/* Borrowed from the shards: not the table's to free. */
		free(t->rt->hosts);
		t->rt->hosts = NULL;
		for (size_t i = 0; i < t->rt->ncerts; i++)
			t->rt->certs[i].name = NULL;
		free(t->rt->backends);
		t->rt->backends = NULL;
		if (t->backend_shards)
			table_cache_put(t->backend_shards, t->rt->nbackends);
		t->rt->nbackends = 0;
		if (t->host_shards)
			table_cache_put(t->host_shards, t->rt->nhosts);
		if (t->cert_shards)
			table_cache_put(t->cert_shards, t->rt->ncerts);
		t->rt->nhosts = 0;
	}
	free(t->host_shards);
	free(t->backend_shards);
	free(t->cert_shards);
	route_index_free(t->ix);
	route_table_free(t->rt);
	free(t);
}

void table_ref(struct table *t)
{
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

/* Tables whose last reference went while a reaper was set: freed by
 * table_reap on the reaper's thread, not on the worker that let go. */
static struct table *_Atomic retired;
static _Atomic(table_reaper_cb) reaper;
static void *_Atomic reaper_arg;

void table_unref(struct table *t)
{
	if (!t)
		return;
	if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
		return;
	table_reaper_cb cb = atomic_load_explicit(&reaper, memory_order_acquire);
	if (!cb) {
		table_free(t);
		return;
	}
	struct table *head = atomic_load_explicit(&retired, memory_order_relaxed);
	do
		t->retired_next = head;
	while (!atomic_compare_exchange_weak_explicit(&retired, &head, t, memory_order_release,
	                                              memory_order_relaxed));
	cb(atomic_load_explicit(&reaper_arg, memory_order_relaxed));
}

void table_set_reaper(table_reaper_cb cb, void *arg)
{
	atomic_store_explicit(&reaper_arg, arg, memory_order_relaxed);
	atomic_store_explicit(&reaper, cb, memory_order_release);
	if (!cb)
		table_reap();
}

size_t table_reap(void)
{
	size_t n = 0;
	struct table *t = atomic_exchange_explicit(&retired, NULL, memory_order_acquire);
	while (t) {
		struct table *next = t->retired_next;
		table_free(t);
		t = next;
		n++;
	}
	return n;
}

const struct route_table *table_routes(const struct table *t)
{
	return t->rt;
}

/* ------------------------------------------------------------ building */

static int host_entry_cmp(const void *a, const void *b)
{
	const struct host_entry *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->name, y->name, n);
	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

/* True when e[0..n) is in strictly ascending order (so without a
 * duplicate). */
static bool entries_ascending(const struct host_entry *e, size_t n)
{
	for (size_t k = 1; k < n; k++)
		if (host_entry_cmp(&e[k - 1], &e[k]) >= 0)
			return false;
	return true;
}

static int build_host_index(struct table *t, char *err, size_t errlen)
{
	const struct route_table *rt = t->rt;
	size_t ne = 0, nw = 0;
	if (rt->nhosts) {
		t->exact = calloc(rt->nhosts, sizeof(*t->exact));
		t->wild = calloc(rt->nhosts, sizeof(*t->wild));
		if (!t->exact || !t->wild) {
			snprintf(err, errlen, "out of memory");
			return WEIR_ENOMEM;
		}
	}
	for (size_t i = 0; i < rt->nhosts; i++) {
		const struct route_host *h = &rt->hosts[i];
		if (h->name[0] == '\0' && t->any) {
			snprintf(err, errlen, "hosts[%zu].name: duplicate host \"\"", i);
			return WEIR_EINVAL;
		}
		if (h->name[0] == '\0')
			t->any = h;
		else if (h->name[0] == '*')
			t->wild[nw++] = (struct host_entry){h->name + 2, strlen(h->name + 2), h};
		else
			t->exact[ne++] = (struct host_entry){h->name, strlen(h->name), h};
	}
	t->nexact = ne;
	t->nwild = nw;
	/* A published table has its hosts in name order: then so are these,
	 * and the sort is only a check. */
	if (!entries_ascending(t->exact, ne))
		qsort(t->exact, ne, sizeof(*t->exact), host_entry_cmp);
	if (!entries_ascending(t->wild, nw))
		qsort(t->wild, nw, sizeof(*t->wild), host_entry_cmp);
	/* The parser refuses duplicates within one document; the hosts of an
	 * index come from separate shards. */
	const struct host_entry *dup = NULL;
	for (size_t k = 1; k < ne && !dup; k++)
		if (host_entry_cmp(&t->exact[k - 1], &t->exact[k]) == 0)
			dup = &t->exact[k];
	for (size_t k = 1; k < nw && !dup; k++)
		if (host_entry_cmp(&t->wild[k - 1], &t->wild[k]) == 0)
			dup = &t->wild[k];
	if (dup) {
		snprintf(err, errlen, "hosts: duplicate host \"%.64s\"", dup->host->name);
		return WEIR_EINVAL;
	}
	return 0;
}

/* t's host index from prev's, when every position of t holds a host of
 * the name prev has there (attach_shards says so): the same names sorted the
 * same way, unique as prev's were. Only the pointers move to t's hosts and
 * names (a host that changed at a position may be freed with prev). */
static int copy_host_index(struct table *t, const struct table *prev, char *err, size_t errlen)
{
	const struct route_host *hosts = t->rt->hosts, *phosts = prev->rt->hosts;
	if (prev->nexact && !(t->exact = malloc(prev->nexact * sizeof(*t->exact))))
		goto oom;
	if (prev->nwild && !(t->wild = malloc(prev->nwild * sizeof(*t->wild))))
		goto oom;
	for (size_t k = 0; k < prev->nexact; k++) {
		const struct route_host *h = &hosts[prev->exact[k].host - phosts];
		t->exact[k] = (struct host_entry){h->name, prev->exact[k].len, h};
	}
	for (size_t k = 0; k < prev->nwild; k++) {
		const struct route_host *h = &hosts[prev->wild[k].host - phosts];
		t->wild[k] = (struct host_entry){h->name + 2, prev->wild[k].len, h};
	}
	t->nexact = prev->nexact;
	t->nwild = prev->nwild;
	t->any = prev->any ? &hosts[prev->any - phosts] : NULL;
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return WEIR_ENOMEM;
}

/* The per-route data of host h (hosts[hi] in errors) into *out (caller
 * frees the regexes and the array, also on failure; NULL when no routes). */
static int compile_host_routes(const struct route_host *h, size_t hi, struct route_ext **out,
                               char *err, size_t errlen)
{
	*out = NULL;
	if (!h->nroutes)
		return 0;
	struct route_ext *ext = calloc(h->nroutes, sizeof(*ext));
	if (!ext) {
		snprintf(err, errlen, "out of memory");
		return WEIR_ENOMEM;
	}
	*out = ext;
	for (size_t j = 0; j < h->nroutes; j++) {
		const struct route *r = &h->routes[j];
		struct route_ext *x = &ext[j];
		size_t len = strlen(r->path);
		if (r->match == ROUTE_MATCH_EXACT) {
			x->cmp_len = len;
			continue;
		}
		if (r->match == ROUTE_MATCH_PREFIX) {
			while (len > 0 && r->path[len - 1] == '/')
				len--;
			x->cmp_len = len;
			continue;
		}
		char why[256];
		x->re = route_regex_compile(r->path, why, sizeof(why));
		if (!x->re) {
			snprintf(err, errlen, "hosts[%zu].routes[%zu].path: %s", hi, j, why);
			return WEIR_EINVAL;
		}
		uint32_t groups = 0;
		pcre2_pattern_info(x->re, PCRE2_INFO_CAPTURECOUNT, &groups);
		x->ncaptures = groups + 1 > CAPTURES_MAX ? CAPTURES_MAX : (int)groups + 1;
		/* JIT is an optimisation only: the interpreter is the fallback. */
		(void)pcre2_jit_compile(x->re, PCRE2_JIT_COMPLETE);
	}
	return 0;
}

static int canary_re_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct canary_re *)a)->route;
	uintptr_t y = (uintptr_t)((const struct canary_re *)b)->route;
	return x < y ? -1 : x > y;
}

/* The canary.by_header_pattern of route j of host h (hosts[hi] in errors)
 * compiled into *out ({NULL} when it has none). */
static int compile_canary(const struct route_host *h, size_t hi, size_t j, struct canary_re *out,
                          char *err, size_t errlen)
{
	const struct route *r = &h->routes[j];
	char why[256];
	*out = (struct canary_re){r, NULL, hi};
	if (!r->canary.by_header_pattern)
		return 0;
	out->re = route_match_cn_compile(r->canary.by_header_pattern, why, sizeof(why));
	if (!out->re) {
		snprintf(err, errlen, "hosts[%zu].routes[%zu].canary.by_header_pattern: %s", hi, j,
		         why);
		return WEIR_EINVAL;
	}
	(void)pcre2_jit_compile(out->re, PCRE2_JIT_COMPLETE);
	return 0;
}

/* canary.by_header_pattern of every route, compiled once per table. */
static int compile_canary_patterns(struct table *t, char *err, size_t errlen)
{
	const struct route_table *rt = t->rt;
	size_t n = 0;
	for (size_t i = 0; i < rt->nhosts; i++)
		for (size_t j = 0; j < rt->hosts[i].nroutes; j++)
			n += rt->hosts[i].routes[j].canary.by_header_pattern != NULL;
	if (!n)
		return 0;
	t->canary_re = calloc(n, sizeof(*t->canary_re));
	if (!t->canary_re) {
		snprintf(err, errlen, "out of memory");
		return WEIR_ENOMEM;
	}
	for (size_t i = 0; i < rt->nhosts; i++) {
		for (size_t j = 0; j < rt->hosts[i].nroutes; j++) {
			struct canary_re c;
			int rc = compile_canary(&rt->hosts[i], i, j, &c, err, errlen);
			if (rc != 0)
				return rc;
			if (c.re)
				t->canary_re[t->ncanary_re++] = c;
		}
	}
	qsort(t->canary_re, t->ncanary_re, sizeof(*t->canary_re), canary_re_cmp);
	return 0;
}

/* The canary patterns of host h compiled into *out (caller frees the
 * regexes and the array, also on failure; NULL when none), in route order,
 * which is address order. */
static int compile_host_canary(const struct route_host *h, size_t hi, struct canary_re **out,
                               size_t *n, char *err, size_t errlen)
{
	size_t k = 0;
	*out = NULL;
	*n = 0;
	for (size_t j = 0; j < h->nroutes; j++)
		k += h->routes[j].canary.by_header_pattern != NULL;
	if (!k)
		return 0;
	if (!(*out = calloc(k, sizeof(**out)))) {
		snprintf(err, errlen, "out of memory");
		return WEIR_ENOMEM;
	}
	for (size_t j = 0; j < h->nroutes; j++) {
		struct canary_re c;
		int rc = compile_canary(h, hi, j, &c, err, errlen);
		if (rc != 0)
			return rc;
		if (c.re)
			(*out)[(*n)++] = c;
	}
	return 0;
}

static int compile_routes(struct table *t, char *err, size_t errlen)
{
	const struct route_table *rt = t->rt;
	if (!rt->nhosts)
		return 0;
	t->ext = calloc(rt->nhosts, sizeof(*t->ext));
	if (!t->ext) {
		snprintf(err, errlen, "out of memory");
		return WEIR_ENOMEM;
	}
	for (size_t i = 0; i < rt->nhosts; i++) {
		int rc = compile_host_routes(&rt->hosts[i], i, &t->ext[i], err, errlen);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* One certificate into its own TLS context: loaded and checked by
 * route_validate_cert (the controller ran the same before publishing it),
 * then set up for serving. */
static int load_cert(const struct route_cert *c, size_t idx, SSL_CTX **out, char *err,
                     size_t errlen)
{
	char field[16], why[400];
	SSL_CTX *ctx = NULL;
	int rc = route_validate_cert(c->name, c->cert_pem, c->key_pem, &ctx, field, sizeof(field),
	                             why, sizeof(why));
	if (rc != 0) {
		snprintf(err, errlen, "certs[%zu].%s: %s", idx, field, why);
		return rc;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select, NULL);
	/* A connection without a cipher list of its own (tls.c sets one when
	 * the table or the host has ssl-ciphers) uses the list of the context
	 * its SNI switched to: ingress-nginx's default. */
	if (SSL_CTX_set_cipher_list(ctx, ROUTE_DEFAULT_SSL_CIPHERS) != 1) {
		SSL_CTX_free(ctx);
		snprintf(err, errlen, "certs[%zu]: OpenSSL refuses the default cipher list", idx);
		return WEIR_ETLS;
	}
	*out = ctx;
	return 0;
}

static void ssl_ctx_free_cb(void *ctx)
{
	SSL_CTX_free(ctx);
}

/* Many Secrets often hold the same certificate and key (a wildcard shared by
 * every Ingress), and a reload keeps most of them; decoding PEM is the slow
 * part of a load. So each context comes from the table cache, keyed by the
 * certificate chain and key text: a pair already loaded by this table or a
 * live earlier one is not decoded again (the name only labels errors and is
 * no part of the key). */
static int load_certs(struct table *t, char *err, size_t errlen)
{
	const struct route_table *rt = t->rt;
	if (!rt->ncerts)
		return 0;
	t->ctx = calloc(rt->ncerts, sizeof(*t->ctx));
	t->ctx_entry = calloc(rt->ncerts, sizeof(*t->ctx_entry));
	if (!t->ctx || !t->ctx_entry)
		goto oom;
	for (size_t i = 0; i < rt->ncerts; i++) {
		const struct route_cert *c = &rt->certs[i];
		const char *fields[] = {"server", c->cert_pem, c->key_pem};
		unsigned char key[TABLE_CACHE_KEY_LEN];
		if (table_cache_key(key, 3, fields) != 0)
			goto oom;
		struct table_cache_entry *e = table_cache_find(TABLE_CACHE_SERVER_CTX, key);
		if (!e) {
			SSL_CTX *ctx = NULL;
			int rc = load_cert(c, i, &ctx, err, errlen);
			if (rc != 0)
				return rc;
			t->certs_decoded++;
			e = table_cache_add(TABLE_CACHE_SERVER_CTX, key, ctx, ssl_ctx_free_cb);
			if (!e)
				goto oom;
		}
		t->ctx_entry[i] = e;
		t->ctx[i] = table_cache_object(e);
	}
	/* The PEM text has served its purpose once every context exists; each
	 * live generation would otherwise hold its own copy of every private
	 * key (about 1 KiB per certificate, more with RSA). */
	for (size_t i = 0; i < rt->ncerts; i++) {
		struct route_cert *c = &t->rt->certs[i];
		if (c->key_pem)
			OPENSSL_clear_free(c->key_pem, strlen(c->key_pem));
		free(c->cert_pem);
		c->key_pem = c->cert_pem = NULL;
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return WEIR_ENOMEM;
}

/* A CA entry of the table cache: the store client certificates are checked
 * against and its subjects, sent in the CertificateRequest. */
struct client_ca {
	X509_STORE *store;
	STACK_OF(X509_NAME) * names;
};

static void client_ca_free_cb(void *p)
{
	struct client_ca *ca = p;
	X509_STORE_free(ca->store);
	sk_X509_NAME_pop_free(ca->names, X509_NAME_free);
	free(ca);
}

/* Build CA i of rt; NULL with err filled on failure. */
static struct client_ca *load_ca(const struct route_ca *rca, size_t i, int *rc, char *err,
                                 size_t errlen)
{
	char field[16], why[256];
	struct client_ca *ca = calloc(1, sizeof(*ca));
	if (!ca)
		goto oom;
	*rc = route_validate_ca(rca->name, rca->ca_pem, rca->crl_pem, &ca->store, field,
	                        sizeof(field), why, sizeof(why));
	if (*rc != 0) {
		snprintf(err, errlen, "cas[%zu].%s: %s", i, field, why);
		goto fail;
	}
	/* The names a client is told its certificate may chain to (as nginx
	 * sends those of ssl_client_certificate). */
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(ca->store);
	if (!(ca->names = sk_X509_NAME_new_null()))
		goto oom;
	for (int k = 0; k < sk_X509_OBJECT_num(objs); k++) {
		X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, k));
		X509_NAME *n = x ? X509_NAME_dup(X509_get_subject_name(x)) : NULL;
		if (x && (!n || !sk_X509_NAME_push(ca->names, n))) {
			X509_NAME_free(n);
			goto oom;
		}
	}
	return ca;
oom:
	*rc = WEIR_ENOMEM;
	snprintf(err, errlen, "out of memory");
fail:
	if (ca)
		client_ca_free_cb(ca);
	return NULL;
}

/* The CA stores, and per host the settings id and the compiled match_cn. */
static int load_client_auth(struct table *t, char *err, size_t errlen)
{
	const struct route_table *rt = t->rt;
	char why[256];
	if (rt->ncas) {
		t->ca_store = calloc(rt->ncas, sizeof(*t->ca_store));
		t->ca_names = calloc(rt->ncas, sizeof(*t->ca_names));
		t->ca_entry = calloc(rt->ncas, sizeof(*t->ca_entry));
		if (!t->ca_store || !t->ca_names || !t->ca_entry)
			goto oom;
	}
	for (size_t i = 0; i < rt->ncas; i++) {
		const struct route_ca *rca = &rt->cas[i];
		/* A version 2 index's hole (no host may name it: checked). */
		if (t->sharded && !rca->ca_pem[0])
			continue;
		const char *fields[] = {"client-ca", rca->ca_pem, rca->crl_pem};
		unsigned char key[TABLE_CACHE_KEY_LEN];
		if (table_cache_key(key, 3, fields) != 0)
			goto oom;
		struct table_cache_entry *e = table_cache_find(TABLE_CACHE_CLIENT_CA, key);
		if (!e) {
			int rc = 0;
			struct client_ca *ca = load_ca(rca, i, &rc, err, errlen);
			if (!ca)
				return rc;
			e = table_cache_add(TABLE_CACHE_CLIENT_CA, key, ca, client_ca_free_cb);
			if (!e)
				goto oom;
		}
		t->ca_entry[i] = e;
		const struct client_ca *ca = table_cache_object(e);
		t->ca_store[i] = ca->store;
		t->ca_names[i] = ca->names;
	}
	if (!rt->nhosts)
		return 0;
	t->auth = calloc(rt->nhosts, sizeof(*t->auth));
	if (!t->auth)
		goto oom;
	unsigned char none_id[TABLE_CLIENT_AUTH_ID_LEN];
	SHA256((const unsigned char *)"weir: no client certificates", 29, none_id);
	for (size_t i = 0; i < rt->nhosts; i++) {
		const struct route_client_auth *a = &rt->hosts[i].client_auth;
		struct host_auth *ha = &t->auth[i];
		if (a->ca < 0 || a->verify == ROUTE_VERIFY_OFF) {
			/* Every host without client certificates shares one id. */
			memcpy(ha->id, none_id, sizeof(none_id));
			continue;
		}
		const struct route_ca *ca = &rt->cas[a->ca];
		char tail[64];
		snprintf(tail, sizeof(tail), "%d/%u", (int)a->verify, a->verify_depth);
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
		         EVP_DigestUpdate(md, ca->ca_pem, strlen(ca->ca_pem) + 1) == 1 &&
		         (!ca->crl_pem ||
		          EVP_DigestUpdate(md, ca->crl_pem, strlen(ca->crl_pem) + 1) == 1) &&
		         EVP_DigestUpdate(md, tail, strlen(tail) + 1) == 1 &&
		         EVP_DigestFinal_ex(md, ha->id, NULL) == 1;
		EVP_MD_CTX_free(md);
		if (!ok)
			goto oom;
		if (a->match_cn && t->sharded) {
			const struct host_shard *hs = table_cache_object(t->host_shards[i]);
			ha->match_cn = hs->match_cn;
		} else if (a->match_cn) {
			ha->match_cn = route_match_cn_compile(a->match_cn, why, sizeof(why));
			if (!ha->match_cn) {
				snprintf(err, errlen, "hosts[%zu].client_auth.match_cn: %s", i,
				         why);
				return WEIR_EINVAL;
			}
		}
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return WEIR_ENOMEM;
}

/* What a table compiles from its settings: the block lists and the access
 * log format. */
static int build_settings(struct table *t, char *err, size_t errlen)
{
	const struct route_settings *st = &t->rt->settings;
	int rc = block_list_new(st, &t->block, err, errlen);
	if (rc == 0)
		rc = access_log_format_new(st->access_log_format,
		                           (enum access_log_escape)st->access_log_escape,
		                           &t->log_format, err, errlen);
	if (rc == WEIR_ENOMEM)
		snprintf(err, errlen, "out of memory");
	return rc;
}

int table_new(struct route_table *rt, struct table **out, char *err, size_t errlen)
{
	char dummy[8];
	int rc = WEIR_ENOMEM;
	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	struct table *t = calloc(1, sizeof(*t));
	if (!t) {
		route_table_free(rt);
		snprintf(err, errlen, "out of memory");
		return WEIR_ENOMEM;
	}
	atomic_init(&t->refs, 1);
	t->rt = rt;
	if ((rc = balancer_state_new(rt, &t->balancer)) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((rc = build_settings(t, err, errlen)) != 0)
		goto fail;
	if ((rc = build_host_index(t, err, errlen)) != 0 ||
	    (rc = compile_routes(t, err, errlen)) != 0 ||
	    (rc = compile_canary_patterns(t, err, errlen)) != 0 ||
	    (rc = load_certs(t, err, errlen)) != 0 ||
	    (rc = load_client_auth(t, err, errlen)) != 0 ||
	    (rc = backend_tls_set_new(rt, &t->btls, err, errlen)) != 0)
		goto fail;
	*out = t;
	return 0;
fail:
	table_free(t);
	return rc;
}

/* Read a whole file of at most ROUTE_TABLE_MAX_BYTES; *buf caller frees. */
static int read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
	int rc = WEIR_EIO;
	char *data = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = errno == ENOENT ? WEIR_ENOENT : WEIR_EIO;
		snprintf(err, errlen, "%s", strerror(errno));
		return rc;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "not a regular file");
		goto out;
	}
	if ((uint64_t)st.st_size > ROUTE_TABLE_MAX_BYTES) {
		snprintf(err, errlen, "file of %lld bytes is over the %u byte limit",
		         (long long)st.st_size, ROUTE_TABLE_MAX_BYTES);
		rc = WEIR_ETOOBIG;
		goto out;
	}
	size_t cap = (size_t)st.st_size, n = 0;
	data = malloc(cap + 1);
	if (!data) {
		snprintf(err, errlen, "out of memory");
		rc = WEIR_ENOMEM;
		goto out;
	}
	/* Never read past the size seen: the file is replaced by rename, so
	 * an open descriptor's content does not change under us. */
	while (n < cap) {
		ssize_t r = read(fd, data + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s", strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	data[n] = '\0';
	*buf = data;
	*len = n;
	data = NULL;
	rc = 0;
out:
	free(data);
	close(fd);
	return rc;
}

/* ------------------------------------------------ sharded tables (v2) */

static int unhex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c - 'a' + 10;
}

/* The cache key of a shard id (valid: route_shard_id_valid). */
static void shard_key(const char *id, unsigned char key[TABLE_CACHE_KEY_LEN])
{
	for (size_t i = 0; i < TABLE_CACHE_KEY_LEN; i++)
		key[i] = (unsigned char)(unhex(id[2 * i]) << 4 | unhex(id[2 * i + 1]));
}

/* Read shard id of dir and check that its bytes are what its name says:
 * a corrupt or truncated file is refused, not parsed. */
static int read_shard(const char *dir, const char *id, const unsigned char key[TABLE_CACHE_KEY_LEN],
                      char **buf, size_t *len, char *err, size_t errlen)
{
	char path[4096], msg[256];
	unsigned char md[SHA256_DIGEST_LENGTH];
	if (snprintf(path, sizeof(path), "%s/%s/%s.json", dir, ROUTE_SHARD_DIR, id) >=
	    (int)sizeof(path)) {
		snprintf(err, errlen, "%s/%s.json: path too long", ROUTE_SHARD_DIR, id);
		return WEIR_EINVAL;
	}
	int rc = read_file(path, buf, len, msg, sizeof(msg));
	if (rc != 0) {
		snprintf(err, errlen, "%s/%s.json: %s", ROUTE_SHARD_DIR, id, msg);
		return rc;
	}
	SHA256((const unsigned char *)*buf, *len, md);
	if (memcmp(md, key, sizeof(md)) != 0) {
		snprintf(err, errlen, "%s/%s.json: content does not match its name (corrupt)",
		         ROUTE_SHARD_DIR, id);
		free(*buf);
		*buf = NULL;
		return WEIR_EPARSE;
	}
	return 0;
}

static void host_shard_free_cb(void *p)
{
	struct host_shard *hs = p;
	if (hs->ext) {
		for (size_t j = 0; j < hs->host.nroutes; j++)
			pcre2_code_free(hs->ext[j].re);
		free(hs->ext);
	}
	pcre2_code_free(hs->match_cn);
	for (size_t k = 0; k < hs->ncanary; k++)
		pcre2_code_free(hs->canary[k].re);
	free(hs->canary);
	route_host_cleanup(&hs->host);
	free(hs);
}

static void cert_shard_free_cb(void *p)
{
	struct cert_shard *cs = p;
	table_cache_put(&cs->ctx, 1);
	free(cs->name);
	free(cs);
}

/* Host shard id (hosts[i] of the index) from the cache, else read, parsed,
 * validated and compiled once and added to it. *parsed counts the latter. */
static struct table_cache_entry *get_host_shard(const char *dir, const char *id, size_t i,
                                                size_t *parsed, int *rc, char *err, size_t errlen)
{
	unsigned char key[TABLE_CACHE_KEY_LEN];
	char msg[400];
	char *buf = NULL;
	size_t len = 0;
	shard_key(id, key);
	struct table_cache_entry *e = table_cache_find(TABLE_CACHE_HOST_SHARD, key);
	if (e)
		return e;
	if ((*rc = read_shard(dir, id, key, &buf, &len, err, errlen)) != 0)
		return NULL;
	struct host_shard *hs = calloc(1, sizeof(*hs));
	if (!hs) {
		free(buf);
		*rc = WEIR_ENOMEM;
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	*rc = route_host_shard_parse(buf, len, &hs->host, msg, sizeof(msg));
	free(buf);
	if (*rc == 0)
		*rc = compile_host_routes(&hs->host, i, &hs->ext, msg, sizeof(msg));
	if (*rc == 0)
		*rc =
		    compile_host_canary(&hs->host, i, &hs->canary, &hs->ncanary, msg, sizeof(msg));
	if (*rc == 0 && hs->host.client_auth.match_cn) {
		char why[256];
		hs->match_cn =
		    route_match_cn_compile(hs->host.client_auth.match_cn, why, sizeof(why));
		if (!hs->match_cn) {
			snprintf(msg, sizeof(msg), "host.client_auth.match_cn: %s", why);
			*rc = WEIR_EINVAL;
		}
	}
	if (*rc != 0) {
		snprintf(err, errlen, "%s/%s.json: %s", ROUTE_SHARD_DIR, id, msg);
		host_shard_free_cb(hs);
		return NULL;
	}
	route_host_refs(&hs->host, &hs->refs);
	(*parsed)++;
	e = table_cache_add(TABLE_CACHE_HOST_SHARD, key, hs, host_shard_free_cb);
	if (!e) {
		*rc = WEIR_ENOMEM;
		snprintf(err, errlen, "out of memory");
	}
	return e;
}

static void backend_shard_free_cb(void *p)
{
	route_backend_cleanup(p);
	free(p);
}

/* Backend shard id from the cache, else read, parsed and added to it. */
static struct table_cache_entry *get_backend_shard(const char *dir, const char *id, int *rc,
                                                   char *err, size_t errlen)
{
	unsigned char key[TABLE_CACHE_KEY_LEN];
	char msg[400];
	char *buf = NULL;
	size_t len = 0;
	struct table_cache_entry *e;
	shard_key(id, key);
	if ((e = table_cache_find(TABLE_CACHE_BACKEND_SHARD, key)))
		return e;
	if ((*rc = read_shard(dir, id, key, &buf, &len, err, errlen)) != 0)
		return NULL;
	struct route_backend *b = calloc(1, sizeof(*b));
	if (!b) {
		free(buf);
		*rc = WEIR_ENOMEM;
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	*rc = route_backend_shard_parse(buf, len, b, msg, sizeof(msg));
	free(buf);
	if (*rc != 0) {
		snprintf(err, errlen, "%s/%s.json: %s", ROUTE_SHARD_DIR, id, msg);
		backend_shard_free_cb(b);
		return NULL;
	}
	if (!(e = table_cache_add(TABLE_CACHE_BACKEND_SHARD, key, b, backend_shard_free_cb))) {
		*rc = WEIR_ENOMEM;
		snprintf(err, errlen, "out of memory");
	}
	return e;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Into e[0..n) (zeroed), the entries of prev_e whose id in prev_ids is the
 * id at the same position in ids, each with one more reference: a reload
 * takes what did not move from the table before it without a cache
 * lookup. prev_e entries may be NULL (holes, or not loaded). */
static void reuse_by_position(struct table_cache_entry **e, char *const *ids, size_t n,
                              struct table_cache_entry *const *prev_e, char *const *prev_ids,
                              size_t prev_n, const struct route_index *ix,
                              const struct route_index *pix, int kind)
{
	if (!prev_e)
		return;
	if (prev_n < n)
		n = prev_n;
	/* The positions of a list the index before named at the same place
	 * hold the same ids: taken without comparing them. */
	size_t i = 0;
	for (size_t j = 0; j <= ix->nlists[kind] && i < n; j++) {
		const struct route_index_list *l =
		    j < ix->nlists[kind] ? &ix->lists[kind][j] : NULL;
		bool same = l && j < pix->nlists[kind] && pix->lists[kind][j].start == l->start &&
		            memcmp(pix->lists[kind][j].id, l->id, ROUTE_SHARD_ID_LEN) == 0;
		size_t end = l && l->start + l->n < n ? l->start + l->n : n;
		for (; i < end; i++)
			if (prev_e[i] && ids[i][0] && (same || strcmp(ids[i], prev_ids[i]) == 0))
				e[i] = prev_e[i];
	}
	table_cache_get(e, n);
}

/* 0 when the backends of rt that have a name have each their own, as
 * version 1 wants them; else WEIR_EINVAL naming a duplicate. */
static int check_backend_names(const struct route_table *rt, char *err, size_t errlen)
{
	const char **names = calloc(rt->nbackends, sizeof(*names));
	size_t nn = 0;
	int rc = 0;
	if (!names) {
		snprintf(err, errlen, "out of memory");
		return WEIR_ENOMEM;
	}
	for (size_t i = 0; i < rt->nbackends; i++)
		if (rt->backends[i].name[0])
			names[nn++] = rt->backends[i].name;
	qsort(names, nn, sizeof(*names), cmp_name);
	for (size_t k = 1; k < nn; k++) {
		if (strcmp(names[k - 1], names[k]) == 0) {
			snprintf(err, errlen, "backends: duplicate backend name \"%.64s\"",
			         names[k]);
			rc = WEIR_EINVAL;
			break;
		}
	}
	free(names);
	return rc;
}

/* The index's backends from their shards (holes: an unnamed backend
 * without endpoints), names unique as version 1 wants them. A backend prev
 * has at the same position is copied from prev's array, not from its shard
 * (a reload keeps nearly all: one cache miss less per backend). */
static int attach_backends(struct table *t, const char *dir, const struct route_index *ix,
                           const struct table *prev, char *err, size_t errlen)
{
	struct route_table *rt = t->rt;
	static char hole_name[] = "";
	int rc = 0;
	if (!ix->nbackends)
		return 0;
	t->backend_shards = calloc(ix->nbackends, sizeof(*t->backend_shards));
	if (!t->backend_shards) {
		snprintf(err, errlen, "out of memory");
		return WEIR_ENOMEM;
	}
	if (prev)
		reuse_by_position(t->backend_shards, ix->backends, ix->nbackends,
		                  prev->backend_shards, prev->ix->backends, prev->ix->nbackends, ix,
		                  prev->ix, 1);
	/* Every name either "" or prev's name at the same position: prev's
	 * names were unique, so these are too, without sorting them again. */
	bool names_kept = prev != NULL;
	for (size_t i = 0; i < ix->nbackends; i++) {
		rt->backends[i].name = hole_name;
		if (!ix->backends[i][0])
			continue;
		struct table_cache_entry *e = t->backend_shards[i];
		if (e) {
			rt->backends[i] = prev->rt->backends[i];
			continue;
		}
		if (!(e = get_backend_shard(dir, ix->backends[i], &rc, err, errlen)))
			return rc;
		t->backend_shards[i] = e;
		rt->backends[i] = *(const struct route_backend *)table_cache_object(e);
		const char *name = rt->backends[i].name;
		if (names_kept && name[0] &&
		    (i >= prev->rt->nbackends || strcmp(name, prev->rt->backends[i].name) != 0))
			names_kept = false;
	}
	return names_kept ? 0 : check_backend_names(rt, err, errlen);
}

/* Certificate shard id (certs[i]) from the cache, else read and its
 * context taken from the table cache or decoded (*decoded counts that). */
static struct table_cache_entry *get_cert_shard(const char *dir, const char *id, size_t i,
                                                size_t *decoded, int *rc, char *err, size_t errlen)
{
	unsigned char key[TABLE_CACHE_KEY_LEN], ckey[TABLE_CACHE_KEY_LEN];
	char msg[400];
	char *buf = NULL;
	size_t len = 0;
	struct route_cert c = {0};
	struct cert_shard *cs = NULL;
	struct table_cache_entry *e;
	shard_key(id, key);
	if ((e = table_cache_find(TABLE_CACHE_CERT_SHARD, key)))
		return e;
	if ((*rc = read_shard(dir, id, key, &buf, &len, err, errlen)) != 0)
		return NULL;
	*rc = route_cert_shard_parse(buf, len, &c, msg, sizeof(msg));
	free(buf);
	if (*rc != 0) {
		snprintf(err, errlen, "%s/%s.json: %s", ROUTE_SHARD_DIR, id, msg);
		goto out;
	}
	*rc = WEIR_ENOMEM;
	const char *fields[] = {"server", c.cert_pem, c.key_pem};
	if (table_cache_key(ckey, 3, fields) != 0 || !(cs = calloc(1, sizeof(*cs))))
		goto oom;
	if (!(cs->ctx = table_cache_find(TABLE_CACHE_SERVER_CTX, ckey))) {
		SSL_CTX *ctx = NULL;
		if ((*rc = load_cert(&c, i, &ctx, msg, sizeof(msg))) != 0) {
			snprintf(err, errlen, "%s/%s.json: %s", ROUTE_SHARD_DIR, id, msg);
			goto out;
		}
		(*decoded)++;
		if (!(cs->ctx =
		          table_cache_add(TABLE_CACHE_SERVER_CTX, ckey, ctx, ssl_ctx_free_cb)))
			goto oom;
	}
	cs->name = c.name;
	c.name = NULL;
	e = table_cache_add(TABLE_CACHE_CERT_SHARD, key, cs, cert_shard_free_cb);
	cs = NULL;
	if (!e)
		goto oom;
	*rc = 0;
	goto out;
oom:
	*rc = WEIR_ENOMEM;
	snprintf(err, errlen, "out of memory");
out:
	if (cs)
		cert_shard_free_cb(cs);
	if (c.key_pem)
		OPENSSL_clear_free(c.key_pem, strlen(c.key_pem));
	c.key_pem = NULL;
	route_cert_cleanup(&c);
	return e;
}

/* Host shard hs (hosts[i] of ix) against the arrays of rt: every index in
 * range, no certificate or CA hole named. Checked against every index it
 * comes with, not once: a new index may have shorter arrays or new holes. */
static int check_host_refs(const struct route_table *rt, const struct route_index *ix, size_t i,
                           const struct host_shard *hs, char *err, size_t errlen)
{
	char msg[300];
	if (route_host_check_refs(&hs->refs, rt, msg, sizeof(msg)) != 0) {
		snprintf(err, errlen, "hosts[%zu] (%s/%s.json): %s", i, ROUTE_SHARD_DIR,
		         ix->hosts[i], msg);
		return WEIR_EINVAL;
	}
	if (hs->host.cert >= 0 && !ix->certs[hs->host.cert][0]) {
		snprintf(err, errlen, "hosts[%zu] (%s/%s.json): cert %d is an empty slot", i,
		         ROUTE_SHARD_DIR, ix->hosts[i], hs->host.cert);
		return WEIR_EINVAL;
	}
	int ca = hs->host.client_auth.ca;
	if (ca >= 0 && !rt->cas[ca].ca_pem[0]) {
		snprintf(err, errlen, "hosts[%zu] (%s/%s.json): client_auth.ca %d is an empty slot",
		         i, ROUTE_SHARD_DIR, ix->hosts[i], ca);
		return WEIR_EINVAL;
	}
	return 0;
}

/* True when every host shard that passed check_host_refs against prev
 * passes it against t too: no array a host refers into is shorter than in
 * prev, and no certificate or CA slot that was not a hole in prev is one
 * in t (slots past prev's arrays no host of prev names). */
static bool refs_shape_kept(const struct table *t, const struct table *prev)
{
	const struct route_table *rt = t->rt, *pr = prev->rt;
	if (rt->nbackends < pr->nbackends || rt->ncerts < pr->ncerts || rt->ncas < pr->ncas ||
	    rt->nbackend_tls < pr->nbackend_tls)
		return false;
	for (size_t i = 0; i < pr->ncerts; i++)
		if (!t->ix->certs[i][0] && prev->ix->certs[i][0])
			return false;
	for (size_t i = 0; i < pr->ncas; i++)
		if (!rt->cas[i].ca_pem[0] && pr->cas[i].ca_pem[0])
			return false;
	return true;
}

/* The index's shards into t (rt already attached): hosts as shallow copies
 * of the cached shards, each checked against this index's arrays. A shard
 * prev has at the same position is copied from prev's arrays (no pointer
 * into it followed) and checked only when the arrays changed shape
 * (refs_shape_kept). *names_kept: every position holds a host of the name
 * prev has there, so prev's host index holds for t. */
static int attach_shards(struct table *t, const char *dir, const struct route_index *ix,
                         const struct table *prev, bool *names_kept, char *err, size_t errlen)
{
	struct route_table *rt = t->rt;
	static char hole_name[] = "";
	int rc = WEIR_ENOMEM;
	*names_kept = false;
	if (ix->nhosts) {
		t->host_shards = calloc(ix->nhosts, sizeof(*t->host_shards));
		rt->hosts = calloc(ix->nhosts, sizeof(*rt->hosts));
		t->ext = calloc(ix->nhosts, sizeof(*t->ext));
		if (!t->host_shards || !rt->hosts || !t->ext)
			goto oom;
	}
	if (ix->ncerts) {
		t->cert_shards = calloc(ix->ncerts, sizeof(*t->cert_shards));
		t->ctx = calloc(ix->ncerts, sizeof(*t->ctx));
		if (!t->cert_shards || !t->ctx)
			goto oom;
	}
	if (prev) {
		reuse_by_position(t->cert_shards, ix->certs, ix->ncerts, prev->cert_shards,
		                  prev->ix->certs, prev->ix->ncerts, ix, prev->ix, 2);
		reuse_by_position(t->host_shards, ix->hosts, ix->nhosts, prev->host_shards,
		                  prev->ix->hosts, prev->ix->nhosts, ix, prev->ix, 0);
		rt->nhosts = ix->nhosts; /* table_free gives back what was reused */
	}
	for (size_t i = 0; i < ix->ncerts; i++) {
		rt->certs[i].name = hole_name;
		if (!ix->certs[i][0])
			continue;
		struct table_cache_entry *e = t->cert_shards[i];
		if (e) {
			rt->certs[i].name = prev->rt->certs[i].name;
			t->ctx[i] = prev->ctx[i];
			continue;
		}
		if (!(e = get_cert_shard(dir, ix->certs[i], i, &t->certs_decoded, &rc, err,
		                         errlen)))
			return rc;
		t->cert_shards[i] = e;
		const struct cert_shard *cs = table_cache_object(e);
		rt->certs[i].name = cs->name;
		t->ctx[i] = table_cache_object(cs->ctx);
	}
	bool recheck = !prev || !refs_shape_kept(t, prev);
	bool same_names = prev && ix->nhosts == prev->rt->nhosts;
	for (size_t i = 0; i < ix->nhosts; i++) {
		struct table_cache_entry *e = t->host_shards[i];
		const struct host_shard *hs;
		if (e) {
			rt->hosts[i] = prev->rt->hosts[i];
			t->ext[i] = prev->ext[i];
			if (recheck && (rc = check_host_refs(rt, ix, i, table_cache_object(e), err,
			                                     errlen)) != 0)
				return rc;
			continue;
		}
		if (!(e = get_host_shard(dir, ix->hosts[i], i, &t->hosts_parsed, &rc, err, errlen)))
			return rc;
		t->host_shards[i] = e;
		if (rt->nhosts < i + 1)
			rt->nhosts = i + 1; /* what table_free gives back */
		hs = table_cache_object(e);
		if ((rc = check_host_refs(rt, ix, i, hs, err, errlen)) != 0)
			return rc;
		rt->hosts[i] = hs->host;
		t->ext[i] = hs->ext;
		if (same_names && strcmp(hs->host.name, prev->rt->hosts[i].name) != 0)
			same_names = false;
	}
	*names_kept = same_names;
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return WEIR_ENOMEM;
}

/* True when host i of t is the shard prev has at position i. */
static bool host_kept(const struct table *t, const struct table *prev, size_t i)
{
	return prev && i < prev->rt->nhosts && t->host_shards[i] == prev->host_shards[i];
}

/* The canary patterns of a v2 table, compiled by the host shards: prev's
 * entries of the hosts t keeps at the same position (in address order
 * already) merged with those of the other hosts, so a reload that changes
 * one host does not walk the routes of all. */
static int gather_canary_patterns(struct table *t, const struct table *prev, char *err,
                                  size_t errlen)
{
	const struct route_table *rt = t->rt;
	struct canary_re *fresh = NULL;
	size_t nkept = 0, nfresh = 0;
	for (size_t k = 0; prev && k < prev->ncanary_re; k++)
		nkept += host_kept(t, prev, prev->canary_re[k].host);
	for (size_t i = 0; i < rt->nhosts; i++)
		if (!host_kept(t, prev, i))
			nfresh += ((const struct host_shard *)table_cache_object(t->host_shards[i]))
			              ->ncanary;
	if (!nkept && !nfresh)
		return 0;
	if (!(t->canary_re = calloc(nkept + nfresh, sizeof(*t->canary_re))) ||
	    (nfresh && !(fresh = calloc(nfresh, sizeof(*fresh)))))
		goto oom;
	nfresh = 0;
	for (size_t i = 0; i < rt->nhosts; i++) {
		if (host_kept(t, prev, i))
			continue;
		const struct host_shard *hs = table_cache_object(t->host_shards[i]);
		for (size_t k = 0; k < hs->ncanary; k++) {
			fresh[nfresh] = hs->canary[k];
			fresh[nfresh++].host = i;
		}
	}
	if (nfresh)
		qsort(fresh, nfresh, sizeof(*fresh), canary_re_cmp);
	size_t a = 0, b = 0, n = 0;
	while (prev && a < prev->ncanary_re) {
		const struct canary_re *c = &prev->canary_re[a];
		if (!host_kept(t, prev, c->host)) {
			a++;
			continue;
		}
		if (b < nfresh && canary_re_cmp(&fresh[b], c) < 0)
			t->canary_re[n++] = fresh[b++];
		else
			t->canary_re[n++] = prev->canary_re[a++];
	}
	while (b < nfresh)
		t->canary_re[n++] = fresh[b++];
	t->ncanary_re = n;
	free(fresh);
	return 0;
oom:
	free(fresh);
	snprintf(err, errlen, "out of memory");
	return WEIR_ENOMEM;
}

/* The round-robin state of t; the backends whose shard is the one prev has
 * at the same position keep prev's cells as they are. */
static int new_balancer(struct table *t, const struct table *prev, char *err, size_t errlen)
{
	size_t n = t->rt->nbackends;
	bool *same = NULL;
	int rc;
	if (prev && prev->balancer && n) {
		same = calloc(n, sizeof(*same));
		if (!same)
			goto oom;
		for (size_t i = 0; i < n && i < prev->rt->nbackends; i++)
			same[i] =
			    t->backend_shards[i] && t->backend_shards[i] == prev->backend_shards[i];
	}
	rc = balancer_state_new_reusing(t->rt, same ? prev->balancer : NULL, same, &t->balancer);
	free(same);
	if (rc == 0)
		return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return WEIR_ENOMEM;
}

/* A table from a version 2 index (rt, ix: taken) and its shards in dir. */
static int table_new_sharded(const char *dir, struct route_table *rt, struct route_index *ix,
                             struct table **out, char *err, size_t errlen)
{
	int rc;
	struct table *t = calloc(1, sizeof(*t));
	if (!t) {
		route_table_free(rt);
		route_index_free(ix);
		snprintf(err, errlen, "out of memory");
		return WEIR_ENOMEM;
	}
	atomic_init(&t->refs, 1);
	t->rt = rt;
	t->sharded = true;
	t->ix = ix;
	/* The table being served, if sharded: its shards are taken by
	 * position where the index names the same id there. */
	struct table *prev = table_current();
	if (prev && !prev->ix) {
		table_unref(prev);
		prev = NULL;
	}
	bool names_kept = false;
	rc = attach_backends(t, dir, ix, prev, err, errlen);
	if (rc == 0)
		rc = attach_shards(t, dir, ix, prev, &names_kept, err, errlen);
	if (rc == 0)
		rc = new_balancer(t, prev, err, errlen);
	if (rc == 0)
		rc = build_settings(t, err, errlen);
	if (rc == 0)
		rc = names_kept ? copy_host_index(t, prev, err, errlen)
		                : build_host_index(t, err, errlen);
	if (rc == 0)
		rc = gather_canary_patterns(t, prev, err, errlen);
	table_unref(prev);
	if (rc != 0)
		goto fail;
	if ((rc = load_client_auth(t, err, errlen)) != 0 ||
	    (rc = backend_tls_set_new(rt, &t->btls, err, errlen)) != 0)
		goto fail;
	*out = t;
	return 0;
fail:
	table_free(t);
	return rc;
}

/* Where table_load gets an index's id lists: the table being served has
 * the ids of each list it was built from (the usual case: one list of one
 * kind changed), the others are read from their files. */
struct list_source {
	const char *dir;
	const struct table *prev;
};

static int read_list(void *arg, int kind, const char *id, char **text, size_t *len,
                     char *const **ids, size_t *n, char *err, size_t errlen)
{
	const struct list_source *src = arg;
	const struct route_index *pix = src->prev ? src->prev->ix : NULL;
	if (pix && kind >= 0 && kind < ROUTE_INDEX_KINDS) {
		char *const *arr[ROUTE_INDEX_KINDS] = {pix->hosts, pix->backends, pix->certs};
		for (size_t j = 0; j < pix->nlists[kind]; j++) {
			const struct route_index_list *l = &pix->lists[kind][j];
			if (memcmp(l->id, id, ROUTE_SHARD_ID_LEN) == 0) {
				*ids = arr[kind] + l->start;
				*n = l->n;
				return 0;
			}
		}
	}
	unsigned char key[TABLE_CACHE_KEY_LEN];
	if (!route_shard_id_valid(id)) {
		snprintf(err, errlen, "not a shard id");
		return WEIR_EINVAL;
	}
	shard_key(id, key);
	int rc = read_shard(src->dir, id, key, text, len, err, errlen);
	/* A missing list is a broken table (as a missing shard). */
	return rc == WEIR_ENOENT ? WEIR_EIO : rc;
}

int table_load(const char *dir, struct table **out, char *err, size_t errlen)
{
	char path[4096], msg[512];
	char *buf = NULL;
	size_t len = 0;
	struct route_table *rt = NULL;
	struct route_index *ix = NULL;
	int rc;

	if (snprintf(path, sizeof(path), "%s/%s", dir, ROUTE_TABLE_FILE) >= (int)sizeof(path)) {
		snprintf(err, errlen, "%s: directory name too long", ROUTE_TABLE_FILE);
		return WEIR_EINVAL;
	}
	msg[0] = '\0';
	rc = read_file(path, &buf, &len, msg, sizeof(msg));
	if (rc == 0) {
		struct table *prev = table_current();
		struct list_source src = {dir, prev && prev->ix ? prev : NULL};
		struct route_list_reader lists = {read_list, &src};
		rc = route_table_parse_index(buf, len, &lists, &rt, &ix, msg, sizeof(msg));
		table_unref(prev);
	}
	free(buf);
	if (rc == 0 && ix) {
		rc = table_new_sharded(dir, rt, ix, out, msg, sizeof(msg));
		/* A shard that is not there is a broken table, not a table the
		 * controller has yet to write (WEIR_ENOENT means that). */
		if (rc == WEIR_ENOENT)
			rc = WEIR_EIO;
	} else if (rc == 0)
		rc = table_new(rt, out, msg, sizeof(msg));
	if (rc != 0 && err && errlen)
		snprintf(err, errlen, "%s: %s", ROUTE_TABLE_FILE, msg);
	return rc;
}

bool table_sharded(const struct table *t)
{
	return t->sharded;
}

size_t table_hosts_parsed(const struct table *t)
{
	return t->sharded ? t->hosts_parsed : t->rt->nhosts;
}

/* ------------------------------------------------------- current table */

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct table *_Atomic current;
static atomic_uint_fast64_t current_generation;
static atomic_uint_fast64_t current_seq; /* bumped by every publish */
static atomic_bool current_ready;

void table_publish(struct table *t)
{
	if (!t)
		return;
	/* The lock pairs the swap with the slow path of table_current and
	 * table_view_get (load + ref), so a reader never takes a reference on a
	 * table whose last reference is being dropped here. */
	pthread_mutex_lock(&current_lock);
	struct table *old = atomic_load_explicit(&current, memory_order_relaxed);
	atomic_store_explicit(&current, t, memory_order_release);
	atomic_store_explicit(&current_generation, t->rt->generation, memory_order_relaxed);
	atomic_fetch_add_explicit(&current_seq, 1, memory_order_release);
	atomic_store_explicit(&current_ready, true, memory_order_release);
	pthread_mutex_unlock(&current_lock);
	table_unref(old);
}

/* Load and reference the current table and the publish count it goes with. */
static struct table *current_ref(uint64_t *seq)
{
	pthread_mutex_lock(&current_lock);
	struct table *t = atomic_load_explicit(&current, memory_order_acquire);
	if (t)
		table_ref(t);
	*seq = atomic_load_explicit(&current_seq, memory_order_relaxed);
	pthread_mutex_unlock(&current_lock);
	return t;
}

struct table *table_current(void)
{
	uint64_t seq;
	return current_ref(&seq);
}

struct table *table_view_get(struct table_view *v)
{
	uint64_t seq = atomic_load_explicit(&current_seq, memory_order_acquire);
	if (seq != v->seq || !v->t) {
		/* A publish happened since the last look: follow it once, under
		 * the lock; the old view's reference goes after. */
		struct table *old = v->t;
		v->t = current_ref(&v->seq);
		table_unref(old);
	}
	if (v->t)
		table_ref(v->t);
	return v->t;
}

void table_view_cleanup(struct table_view *v)
{
	table_unref(v->t);
	v->t = NULL;
	v->seq = 0;
}

bool table_ready(void)
{
	return atomic_load_explicit(&current_ready, memory_order_acquire);
}

uint64_t table_current_generation(void)
{
	return atomic_load_explicit(&current_generation, memory_order_relaxed);
}

/* -------------------------------------------------------------- lookup */

/* Normalise a Host header value or SNI name into buf: lowercase, no port,
 * no brackets around an IPv6 literal, no trailing dot. Returns the length,
 * or -1 when it does not fit (then only the "" host can match). */
static int host_normalise(const char *in, size_t len, char *buf)
{
	if (len > 0 && in[0] == '[') {
		const char *close = memchr(in, ']', len);
		if (!close)
			return -1;
		in++;
		len = (size_t)(close - in);
	} else {
		const char *colon = memchr(in, ':', len);
		if (colon && !memchr(colon + 1, ':', len - (size_t)(colon + 1 - in)))
			len = (size_t)(colon - in);
	}
	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len >= HOST_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	buf[len] = '\0';
	return (int)len;
}

static const struct host_entry *index_find(const struct host_entry *ix, size_t n, const char *name,
                                           size_t len)
{
	if (!n)
		return NULL;
	struct host_entry key = {name, len, NULL};
	return bsearch(&key, ix, n, sizeof(*ix), host_entry_cmp);
}

/* Exact name, then one-label wildcard; NULL when neither. */
static const struct route_host *find_named_host(const struct table *t, const char *name, size_t len,
                                                bool want_wild_only)
{
	const struct host_entry *e;
	if (!want_wild_only && (e = index_find(t->exact, t->nexact, name, len)))
		return e->host;
	const char *dot = memchr(name, '.', len);
	if (dot && dot > name) {
		size_t off = (size_t)(dot + 1 - name);
		if ((e = index_find(t->wild, t->nwild, dot + 1, len - off)))
			return e->host;
	}
	return NULL;
}

static const struct route_host *find_host(const struct table *t, const char *host, size_t host_len)
{
	char buf[HOST_MAX];
	if (host) {
		int n = host_normalise(host, host_len, buf);
		if (n > 0) {
			const struct route_host *h = find_named_host(t, buf, (size_t)n, false);
			if (h)
				return h;
		}
	}
	return t->any;
}

static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static bool md_key_ok;

static void md_free(void *p)
{
	pcre2_match_data_free(p);
}

static void md_key_init(void)
{
	md_key_ok = pthread_key_create(&md_key, md_free) == 0;
}

/* Per-thread match data, so the request path does not allocate per match.
 * NULL on out-of-memory. */
static pcre2_match_data *thread_match_data(void)
{
	pthread_once(&md_once, md_key_init);
	if (!md_key_ok)
		return NULL;
	pcre2_match_data *md = pthread_getspecific(md_key);
	if (!md) {
		md = pcre2_match_data_create(CAPTURES_MAX, NULL);
		if (md && pthread_setspecific(md_key, md) != 0) {
			pcre2_match_data_free(md);
			md = NULL;
		}
	}
	return md;
}

static bool match_regex(const struct route_ext *x, const char *path, size_t path_len,
                        struct table_match *m)
{
	pcre2_match_data *md = thread_match_data();
	if (!md)
		return false;
	int rc = pcre2_match(x->re, (PCRE2_SPTR)path, path_len, 0, PCRE2_ANCHORED, md, NULL);
	if (rc < 0)
		return false;
	/* rc == 0: more groups than slots; the first CAPTURES_MAX are set. */
	const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
	uint32_t pairs = pcre2_get_ovector_count(md);
	m->ncaptures = x->ncaptures;
	for (int i = 0; i < x->ncaptures; i++) {
		if ((uint32_t)i < pairs && (rc == 0 || i < rc) && ov[2 * i] != PCRE2_UNSET) {
			m->cap_off[i] = ov[2 * i];
			m->cap_len[i] = ov[2 * i + 1] - ov[2 * i];
		} else {
			m->cap_off[i] = 0;
			m->cap_len[i] = 0;
		}
	}
	return true;
}

static bool match_prefix(const char *rpath, size_t plen, const char *path, size_t path_len)
{
	/* plen excludes trailing '/', so "/" is 0 and matches everything. */
	if (plen == 0)
		return true;
	if (path_len < plen || memcmp(path, rpath, plen) != 0)
		return false;
	return path_len == plen || path[plen] == '/';
}

int table_lookup(const struct table *t, const char *host, size_t host_len, const char *path,
                 size_t path_len, struct table_match *m)
{
	memset(m, 0, sizeof(*m));
	const struct route_host *h = find_host(t, host, host_len);
	if (!h)
		return WEIR_ENOENT;
	m->host = h;
	size_t hi = (size_t)(h - t->rt->hosts);
	for (size_t j = 0; j < h->nroutes; j++) {
		const struct route *r = &h->routes[j];
		const struct route_ext *x = &t->ext[hi][j];
		bool ok;
		switch (r->match) {
		case ROUTE_MATCH_EXACT:
			ok = path_len == x->cmp_len && memcmp(path, r->path, path_len) == 0;
			break;
		case ROUTE_MATCH_PREFIX:
			ok = match_prefix(r->path, x->cmp_len, path, path_len);
			break;
		default:
			ok = match_regex(x, path, path_len, m);
			break;
		}
		if (ok) {
			m->route = r;
			return 0;
		}
	}
	m->ncaptures = 0;
	return WEIR_ENOENT;
}

SSL_CTX *table_ssl_ctx(const struct table *t, const char *sni)
{
	const struct route_table *rt = t->rt;
	char buf[HOST_MAX];
	int n = sni ? host_normalise(sni, strlen(sni), buf) : -1;
	if (n > 0) {
		const struct host_entry *e = index_find(t->exact, t->nexact, buf, (size_t)n);
		if (e && e->host->cert >= 0)
			return t->ctx[e->host->cert];
		const struct route_host *w = find_named_host(t, buf, (size_t)n, true);
		if (w && w->cert >= 0)
			return t->ctx[w->cert];
	}
	if (rt->default_cert >= 0)
		return t->ctx[rt->default_cert];
	return NULL;
}

const struct route_passthrough *table_passthrough(const struct table *t, const char *sni)
{
	char buf[HOST_MAX];
	if (!sni)
		return NULL;
	int n = host_normalise(sni, strlen(sni), buf);
	if (n <= 0)
		return NULL;
	for (size_t i = 0; i < t->rt->npassthrough; i++)
		if (strcmp(t->rt->passthrough[i].host, buf) == 0)
			return &t->rt->passthrough[i];
	return NULL;
}

int table_passthrough_backend(const struct table *t, const char *sni)
{
	const struct route_passthrough *pt = table_passthrough(t, sni);
	return pt ? pt->backend : -1;
}

size_t table_certs_decoded(const struct table *t)
{
	return t->certs_decoded;
}

const struct balancer_state *table_balancer(const struct table *t)
{
	return t->balancer;
}

const struct route_host *table_sni_host(const struct table *t, const char *sni)
{
	return find_host(t, sni, sni ? strlen(sni) : 0);
}

X509_STORE *table_ca_store(const struct table *t, const struct route_host *h)
{
	int ca = h ? h->client_auth.ca : -1;
	if (ca < 0 || (size_t)ca >= t->rt->ncas || h->client_auth.verify == ROUTE_VERIFY_OFF)
		return NULL;
	return t->ca_store[ca];
}

STACK_OF(X509_NAME) * table_ca_names(const struct table *t, const struct route_host *h)
{
	if (!table_ca_store(t, h))
		return NULL;
	return t->ca_names[h->client_auth.ca];
}

const unsigned char *table_client_auth_id(const struct table *t, const struct route_host *h)
{
	return t->auth[h - t->rt->hosts].id;
}

int table_match_cn(const struct table *t, const struct route_host *h, const char *dn, size_t len)
{
	const pcre2_code *re = t->auth[h - t->rt->hosts].match_cn;
	if (!re)
		return 1;
	pcre2_match_data *md = thread_match_data();
	if (!md)
		return WEIR_ENOMEM;
	return pcre2_match(re, (PCRE2_SPTR)dn, len, 0, 0, md, NULL) >= 0;
}

int table_canary_pattern_match(const struct table *t, const struct route *r, const char *v,
                               size_t len)
{
	struct canary_re key = {r, NULL, 0};
	const struct canary_re *e = t->ncanary_re ? bsearch(&key, t->canary_re, t->ncanary_re,
	                                                    sizeof(*t->canary_re), canary_re_cmp)
	                                          : NULL;
	if (!e)
		return 0;
	pcre2_match_data *md = thread_match_data();
	if (!md)
		return 0;
	return pcre2_match(e->re, (PCRE2_SPTR)v, len, 0, 0, md, NULL) >= 0;
}

const struct backend_tls_set *table_backend_tls(const struct table *t)
{
	return t->btls;
}

const struct block_list *table_block(const struct table *t)
{
	return t->block;
}

const struct access_log_format *table_access_log(const struct table *t)
{
	return t->rt->settings.access_log ? t->log_format : NULL;
}
