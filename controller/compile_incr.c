/* controller/compile_incr.c - incremental compile of Ingress changes (see
 * compile_incr.h). */
#include "compile_incr.h"
#include "str_hash.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) {
		fprintf(stderr, "weir-controller: out of memory\n");
		abort();
	}
	return q;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p) {
		fprintf(stderr, "weir-controller: out of memory\n");
		abort();
	}
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p) {
		fprintf(stderr, "weir-controller: out of memory\n");
		abort();
	}
	return p;
}

/* ------------------------------------------------------------ string set */

/* Open addressing, owned strings, no removal. */
struct sset {
	size_t cap, n;
	char **keys;
};

static bool sset_has(const struct sset *m, const char *k)
{
	if (!m->cap)
		return false;
	for (size_t i = str_hash(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->keys[i])
			return false;
		if (strcmp(m->keys[i], k) == 0)
			return true;
	}
}

/* Adds a copy of k; false when it was there. */
static bool sset_add(struct sset *m, const char *k)
{
	if ((m->n + 1) * 2 > m->cap) {
		struct sset g = {.cap = m->cap ? m->cap * 2 : 64};
		g.keys = xcalloc(g.cap, sizeof(*g.keys));
		for (size_t i = 0; i < m->cap; i++)
			if (m->keys[i]) {
				size_t j = str_hash(m->keys[i]) & (g.cap - 1);
				while (g.keys[j])
					j = (j + 1) & (g.cap - 1);
				g.keys[j] = m->keys[i];
				g.n++;
			}
		free(m->keys);
		*m = g;
	}
	size_t i = str_hash(k) & (m->cap - 1);
	for (; m->keys[i]; i = (i + 1) & (m->cap - 1))
		if (strcmp(m->keys[i], k) == 0)
			return false;
	m->keys[i] = xstrdup(k);
	m->n++;
	return true;
}

static void sset_free(struct sset *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------ state */

struct ent {
	char *key; /* "namespace/name" */
	char **hosts;
	size_t nhosts;
	bool pinned;
};

/* host name -> the entries that mention it */
struct hnode {
	char *host; /* NULL: free slot */
	struct ent **v;
	size_t n, cap;
};

struct compile_incr {
	struct compile_slices *slices; /* of the last snapshot compiled */
	struct ent **ents;             /* sorted by key */
	size_t n, cap;
	struct hnode *tab;
	size_t tcap, tn;
	store_relevant_cb matters; /* compile_incr_set_judge */
	compile_incr_namers_cb namers;
	void *matters_arg;
};

static void ent_free(struct ent *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->nhosts; i++)
		free(e->hosts[i]);
	free(e->hosts);
	free(e->key);
	free(e);
}

static struct hnode *hnode_get(struct compile_incr *s, const char *host, bool create)
{
	if (create && (s->tn + 1) * 2 > s->tcap) {
		size_t ncap = s->tcap ? s->tcap * 2 : 1024;
		struct hnode *g = xcalloc(ncap, sizeof(*g));
		for (size_t i = 0; i < s->tcap; i++) {
			if (!s->tab[i].host)
				continue;
			size_t j = str_hash(s->tab[i].host) & (ncap - 1);
			while (g[j].host)
				j = (j + 1) & (ncap - 1);
			g[j] = s->tab[i];
		}
		free(s->tab);
		s->tab = g;
		s->tcap = ncap;
	}
	if (!s->tcap)
		return NULL;
	size_t i = str_hash(host) & (s->tcap - 1);
	for (; s->tab[i].host; i = (i + 1) & (s->tcap - 1))
		if (strcmp(s->tab[i].host, host) == 0)
			return &s->tab[i];
	if (!create)
		return NULL;
	s->tab[i].host = xstrdup(host);
	s->tn++;
	return &s->tab[i];
}

static void ent_link(struct compile_incr *s, struct ent *e)
{
	for (size_t i = 0; i < e->nhosts; i++) {
		struct hnode *h = hnode_get(s, e->hosts[i], true);
		if (h->n == h->cap) {
			h->cap = h->cap ? h->cap * 2 : 2;
			h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
		}
		h->v[h->n++] = e;
	}
}

static void ent_unlink(struct compile_incr *s, struct ent *e)
{
	for (size_t i = 0; i < e->nhosts; i++) {
		struct hnode *h = hnode_get(s, e->hosts[i], false);
		for (size_t j = 0; h && j < h->n; j++)
			if (h->v[j] == e) {
				h->v[j] = h->v[--h->n];
				break;
			}
	}
}

/* Position of key, or -(insertion point) - 1. */
static long ent_find(const struct compile_incr *s, const char *key)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->ents[mid]->key, key);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

static void ent_remove(struct compile_incr *s, const char *key)
{
	long at = ent_find(s, key);
	if (at < 0)
		return;
	struct ent *e = s->ents[at];
	ent_unlink(s, e);
	memmove(&s->ents[at], &s->ents[at + 1], (s->n - (size_t)at - 1) * sizeof(*s->ents));
	s->n--;
	ent_free(e);
}

static void ent_insert(struct compile_incr *s, struct ent *e /* takes */)
{
	long at = ent_find(s, e->key);
	if (at >= 0) {
		ent_remove(s, e->key);
		at = ent_find(s, e->key);
	}
	size_t pos = (size_t)(-at - 1);
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->ents = xrealloc(s->ents, s->cap * sizeof(*s->ents));
	}
	memmove(&s->ents[pos + 1], &s->ents[pos], (s->n - pos) * sizeof(*s->ents));
	s->ents[pos] = e;
	s->n++;
	ent_link(s, e);
}

static void state_reset(struct compile_incr *s)
{
	compile_slices_free(s->slices);
	for (size_t i = 0; i < s->n; i++)
		ent_free(s->ents[i]);
	free(s->ents);
	for (size_t i = 0; i < s->tcap; i++) {
		free(s->tab[i].host);
		free(s->tab[i].v);
	}
	free(s->tab);
	store_relevant_cb matters = s->matters;
	compile_incr_namers_cb namers = s->namers;
	void *arg = s->matters_arg;
	memset(s, 0, sizeof(*s));
	s->matters = matters;
	s->namers = namers;
	s->matters_arg = arg;
}

struct compile_incr *compile_incr_new(void)
{
	return xcalloc(1, sizeof(struct compile_incr));
}

void compile_incr_set_judge(struct compile_incr *s, store_relevant_cb matters,
                            compile_incr_namers_cb namers, void *arg)
{
	s->matters = matters;
	s->namers = namers;
	s->matters_arg = arg;
}

void compile_incr_free(struct compile_incr *s)
{
	if (!s)
		return;
	state_reset(s);
	free(s);
}

/* Collects the mentions compile_snapshot_ex reports. */
struct collect {
	struct ent **v;
	size_t n;
};

static void collect_cb(void *arg, const char *key, json_object *obj, char **hosts, size_t nhosts,
                       bool pinned)
{
	(void)obj;
	struct collect *c = arg;
	struct ent *e = xcalloc(1, sizeof(*e));
	e->key = xstrdup(key);
	e->hosts = hosts;
	e->nhosts = nhosts;
	e->pinned = pinned;
	c->v = xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
	c->v[c->n++] = e;
}

static int cmp_ent(const void *a, const void *b)
{
	return strcmp((*(struct ent *const *)a)->key, (*(struct ent *const *)b)->key);
}

int compile_incr_full(struct compile_incr *s, const struct snapshot *snap,
                      const struct compile_options *o, struct route_table **table,
                      struct diag_list *diags)
{
	struct collect c = {0};
	state_reset(s);
	s->slices = compile_slices_build(snap);
	int rc = compile_snapshot_with(snap, o, s->slices, table, diags, collect_cb, &c);
	if (rc) {
		for (size_t i = 0; i < c.n; i++)
			ent_free(c.v[i]);
		free(c.v);
		return rc;
	}
	if (c.n > 1)
		qsort(c.v, c.n, sizeof(*c.v), cmp_ent);
	s->ents = c.v;
	s->n = s->cap = c.n;
	for (size_t i = 0; i < s->n; i++)
		ent_link(s, s->ents[i]);
	return 0;
}

/* ------------------------------------------------------------ one step */

struct change {
	char *key;
	json_object *now; /* NULL: deleted */
	char **hosts;     /* mentions of now, when of our class */
	size_t nhosts;
};

/* Whether two certificates of one name hold the same pair: by digest (the
 * compile sets it; the kept table's texts may be released after a publish,
 * publisher_release_pems), by text when either has none. */
static bool same_cert(const struct route_cert *a, const struct route_cert *b)
{
	static const unsigned char zero[ROUTE_CERT_DIGEST_LEN];
	if (memcmp(a->digest, zero, sizeof(zero)) != 0 &&
	    memcmp(b->digest, zero, sizeof(zero)) != 0)
		return memcmp(a->digest, b->digest, sizeof(zero)) == 0;
	return a->cert_pem && b->cert_pem && a->key_pem && b->key_pem &&
	       strcmp(a->cert_pem, b->cert_pem) == 0 && strcmp(a->key_pem, b->key_pem) == 0;
}

/* Index of name among the first n elements of v (each size bytes, sorted
 * by the char * member at offset off), or -1. */
static int find_named(const void *v, size_t size, size_t off, size_t n, const char *name)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(*(char *const *)((const char *)v + mid * size + off), name);
		if (c == 0)
			return (int)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int remap(int i, const int *map)
{
	return i < 0 ? i : map[i];
}

/* Indexes into a table's backends or certificates (a few: the ones some
 * hosts use). */
struct used {
	int *v;
	size_t n, cap;
};

static void used_add(struct used *u, int i)
{
	if (i < 0)
		return;
	for (size_t k = 0; k < u->n; k++)
		if (u->v[k] == i)
			return;
	if (u->n == u->cap) {
		u->cap = u->cap ? 2 * u->cap : 8;
		u->v = xrealloc(u->v, u->cap * sizeof(*u->v));
	}
	u->v[u->n++] = i;
}

/* The backends (routes' backend, canary and error backends) and the
 * certificate host h uses. */
static void used_host(const struct route_host *h, struct used *b, struct used *c)
{
	used_add(c, h->cert);
	for (size_t j = 0; j < h->nroutes; j++) {
		const struct route *r = &h->routes[j];
		used_add(b, r->backend);
		used_add(b, r->canary.backend);
		used_add(b, r->error_backend);
	}
}

/* True when every index of b is in a. */
static bool used_covers(const struct used *a, const struct used *b)
{
	for (size_t i = 0; i < b->n; i++) {
		size_t k = 0;
		while (k < a->n && a->v[k] != b->v[i])
			k++;
		if (k == a->n)
			return false;
	}
	return true;
}

/* Per host of t (hosts in name order, as a compile leaves them): named in
 * reach (caller frees). */
static bool *reach_hosts(const struct route_table *t, const struct sset *reach)
{
	bool *hit = xcalloc(t->nhosts + 1, sizeof(*hit));
	for (size_t k = 0; k < reach->cap; k++) {
		if (!reach->keys[k])
			continue;
		int at = find_named(t->hosts, sizeof(*t->hosts), offsetof(struct route_host, name),
		                    t->nhosts, reach->keys[k]);
		if (at >= 0)
			hit[at] = true;
	}
	return hit;
}

/* Splice part's hosts and passthrough entries (all named in reach) into t
 * in place of t's hosts and entries named in reach. *kept: t's backends,
 * certificates, CAs and profiles are still the ones it had (none added,
 * none dropped: the order holds, and the ones part shares were compared
 * equal). */
/* Whether a host or passthrough entry out of reach uses backend (or, with
 * cert, certificate) at: one that keeps its name but not its content can
 * change in place only when none does (the Ingresses that name its Service
 * or Secret are all compiled again: compile_incr_set_judge's namers). */
static bool used_outside(const struct route_table *t, const bool *hit, const struct sset *reach,
                         bool cert, int at)
{
	for (size_t i = 0; i < t->nhosts; i++) {
		const struct route_host *h = &t->hosts[i];
		if (hit[i])
			continue;
		if (cert) {
			if (h->cert == at)
				return true;
			continue;
		}
		for (size_t j = 0; j < h->nroutes; j++) {
			const struct route *r = &h->routes[j];
			if (r->backend == at || r->canary.backend == at || r->error_backend == at)
				return true;
		}
	}
	for (size_t i = 0; i < t->npassthrough && !cert; i++)
		if (t->passthrough[i].backend == at && !sset_has(reach, t->passthrough[i].host))
			return true;
	return false;
}

static int splice(struct route_table *t, struct route_table *part, const struct sset *reach,
                  bool *kept)
{
	*kept = false;
	/* What the merge cannot place exactly: CAs and backend TLS profiles
	 * (kept in read order, not by name). */
	if (part->ncas || part->nbackend_tls)
		return WEIR_EAGAIN;
	/* t's hosts in reach, found by name (t's hosts are in name order):
	 * a few look-ups, not a hash of every host name. */
	bool *hit = reach_hosts(t, reach);
	for (size_t i = 0; i < t->nhosts; i++) {
		struct route_host *h = &t->hosts[i];
		if (!hit[i])
			continue;
		bool pinned = h->client_auth.ca >= 0;
		for (size_t j = 0; j < h->nroutes && !pinned; j++)
			pinned = h->routes[j].backend_tls >= 0;
		if (pinned) {
			free(hit);
			return WEIR_EAGAIN;
		}
	}
	/* part's backends and certificates into t, by name */
	size_t nb0 = t->nbackends, nc0 = t->ncerts;
	int *bmap = xcalloc(part->nbackends + 1, sizeof(int));
	int *cmap = xcalloc(part->ncerts + 1, sizeof(int));
	int rc = 0;
	bool replaced = false; /* a backend or certificate changed in place */
	for (size_t i = 0; i < part->nbackends && rc == 0; i++) {
		int at =
		    find_named(t->backends, sizeof(*t->backends),
		               offsetof(struct route_backend, name), nb0, part->backends[i].name);
		if (at >= 0) {
			if (!route_backend_equal(&t->backends[at], &part->backends[i])) {
				if (used_outside(t, hit, reach, false, at)) {
					rc = WEIR_EAGAIN;
				} else {
					route_backend_cleanup(&t->backends[at]);
					t->backends[at] = part->backends[i];
					memset(&part->backends[i], 0, sizeof(part->backends[i]));
					replaced = true;
				}
			}
			bmap[i] = at;
			continue;
		}
		t->backends = xrealloc(t->backends, (t->nbackends + 1) * sizeof(*t->backends));
		t->backends[t->nbackends] = part->backends[i];
		memset(&part->backends[i], 0, sizeof(part->backends[i]));
		bmap[i] = (int)t->nbackends++;
	}
	for (size_t i = 0; i < part->ncerts && rc == 0; i++) {
		int at = find_named(t->certs, sizeof(*t->certs), offsetof(struct route_cert, name),
		                    nc0, part->certs[i].name);
		if (at >= 0) {
			if (!same_cert(&t->certs[at], &part->certs[i])) {
				if (used_outside(t, hit, reach, true, at)) {
					rc = WEIR_EAGAIN;
				} else {
					route_cert_cleanup(&t->certs[at]);
					t->certs[at] = part->certs[i];
					memset(&part->certs[i], 0, sizeof(part->certs[i]));
					replaced = true;
				}
			}
			cmap[i] = at;
			continue;
		}
		t->certs = xrealloc(t->certs, (t->ncerts + 1) * sizeof(*t->certs));
		t->certs[t->ncerts] = part->certs[i];
		memset(&part->certs[i], 0, sizeof(part->certs[i]));
		cmap[i] = (int)t->ncerts++;
	}
	if (rc == 0) {
		/* What the outgoing hosts and entries use: when the incoming ones
		 * use all of it too and nothing was added, no backend or
		 * certificate lost its last user, and the compaction (a walk over
		 * every route of every host) has nothing to do. */
		struct used out_b = {0}, out_c = {0};
		for (size_t i = 0; i < t->nhosts; i++)
			if (hit[i])
				used_host(&t->hosts[i], &out_b, &out_c);
		for (size_t i = 0; i < t->npassthrough; i++)
			if (sset_has(reach, t->passthrough[i].host))
				used_add(&out_b, t->passthrough[i].backend);
		/* out with the old hosts and entries in reach */
		size_t k = 0;
		for (size_t i = 0; i < t->nhosts; i++) {
			if (hit[i])
				route_host_cleanup(&t->hosts[i]);
			else
				t->hosts[k++] = t->hosts[i];
		}
		t->nhosts = k;
		size_t nkeep = k;
		k = 0;
		for (size_t i = 0; i < t->npassthrough; i++) {
			struct route_passthrough *p = &t->passthrough[i];
			if (sset_has(reach, p->host)) {
				free(p->host);
				free(p->allow);
				free(p->deny);
			} else {
				t->passthrough[k++] = *p;
			}
		}
		t->npassthrough = k;
		size_t pkeep = k;
		/* in with part's */
		t->hosts = xrealloc(t->hosts, (t->nhosts + part->nhosts + 1) * sizeof(*t->hosts));
		for (size_t i = 0; i < part->nhosts; i++) {
			struct route_host *h = &t->hosts[t->nhosts++];
			*h = part->hosts[i];
			memset(&part->hosts[i], 0, sizeof(part->hosts[i]));
			h->cert = remap(h->cert, cmap);
			for (size_t j = 0; j < h->nroutes; j++) {
				struct route *r = &h->routes[j];
				r->backend = remap(r->backend, bmap);
				r->canary.backend = remap(r->canary.backend, bmap);
				r->error_backend = remap(r->error_backend, bmap);
			}
		}
		part->nhosts = 0;
		t->passthrough =
		    xrealloc(t->passthrough,
		             (t->npassthrough + part->npassthrough + 1) * sizeof(*t->passthrough));
		for (size_t i = 0; i < part->npassthrough; i++) {
			struct route_passthrough *p = &t->passthrough[t->npassthrough++];
			*p = part->passthrough[i];
			memset(&part->passthrough[i], 0, sizeof(part->passthrough[i]));
			p->backend = remap(p->backend, bmap);
		}
		part->npassthrough = 0;
		size_t na0 = t->ncas, np0 = t->nbackend_tls;
		bool added = t->nbackends != nb0 || t->ncerts != nc0 || replaced;
		struct used in_b = {0}, in_c = {0};
		for (size_t i = nkeep; i < t->nhosts; i++)
			used_host(&t->hosts[i], &in_b, &in_c);
		for (size_t i = pkeep; i < t->npassthrough; i++)
			used_add(&in_b, t->passthrough[i].backend);
		bool lost = !used_covers(&in_b, &out_b) || !used_covers(&in_c, &out_c);
		if (added || lost)
			compile_finish_merge(t, nkeep, pkeep, nb0, nc0);
		else
			compile_finish_merge_hosts(t, nkeep, pkeep);
		free(out_b.v);
		free(out_c.v);
		free(in_b.v);
		free(in_c.v);
		*kept = !added && t->nbackends == nb0 && t->ncerts == nc0 && t->ncas == na0 &&
		        t->nbackend_tls == np0;
	}
	free(bmap);
	free(cmap);
	free(hit);
	return rc;
}

static void changes_free(struct change *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].key);
		for (size_t j = 0; j < v[i].nhosts; j++)
			free(v[i].hosts[j]);
		free(v[i].hosts);
	}
	free(v);
}

static char *key_of(const char *ns, const char *name)
{
	size_t a = strlen(ns), b = strlen(name);
	char *k = xcalloc(a + b + 2, 1);
	memcpy(k, ns, a);
	k[a] = '/';
	memcpy(k + a + 1, name, b);
	return k;
}

struct changes {
	struct change *v;
	size_t n;
};

/* snapshot_diff_cb: one more changed Ingress; stops past the limit. */
static bool add_change(void *arg, const char *ns, const char *name, json_object *old,
                       json_object *now)
{
	struct changes *c = arg;
	(void)old;
	c->v = xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
	c->v[c->n++] = (struct change){.key = key_of(ns, name), .now = now};
	return c->n <= COMPILE_INCR_MAX_INGRESSES;
}

static long snap_find(const struct snapshot *snap, const char *key);

/* What the changes to other kinds of object add to the changed Ingresses. */
struct others {
	const struct compile_incr *s;
	const struct snapshot *snap;
	enum store_kind kind;
	struct changes *cs;
	struct sset keys; /* of cs */
	bool refuse;
};

/* An Ingress that names an object seen to change: compiled again, as if
 * it had changed itself (once). */
static void add_namer(void *arg, const char *ns, const char *name)
{
	struct others *x = arg;
	char *key = key_of(ns, name);
	if (sset_add(&x->keys, key)) {
		long at = snap_find(x->snap, key);
		struct changes *c = x->cs;
		c->v = xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
		c->v[c->n++] = (struct change){
		    .key = key, .now = at >= 0 ? x->snap->objs[STORE_INGRESS][at] : NULL};
		if (c->n > COMPILE_INCR_MAX_INGRESSES)
			x->refuse = true;
		return;
	}
	free(key);
}

static bool other_change(void *arg, const char *ns, const char *name, json_object *old,
                         json_object *now)
{
	struct others *x = arg;
	(void)ns;
	(void)name;
	if (x->s->matters && !x->s->matters(x->s->matters_arg, x->kind, old, now))
		return true; /* no Ingress of the old snapshot sees it */
	if (!x->s->matters || !x->s->namers ||
	    x->s->namers(x->s->matters_arg, x->kind, old, now, add_namer, x) != 0)
		x->refuse = true;
	return !x->refuse;
}

/* Adds to cs (the changed Ingresses) those a change to another kind of
 * object reaches; false when one must be compiled in full. */
static bool others_to_changes(const struct compile_incr *s, const struct snapshot *old,
                              const struct snapshot *snap, struct changes *cs)
{
	struct others x = {.s = s, .snap = snap, .cs = cs};
	for (size_t i = 0; i < cs->n; i++)
		sset_add(&x.keys, cs->v[i].key);
	for (int k = 0; k < STORE_KIND_COUNT && !x.refuse; k++) {
		if (k == STORE_INGRESS)
			continue;
		x.kind = (enum store_kind)k;
		snapshot_diff_kind(old, snap, x.kind, other_change, &x);
	}
	sset_free(&x.keys);
	return !x.refuse;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

/* Position of the Ingress "ns/name" in snap, or -1. */
static long snap_find(const struct snapshot *snap, const char *key)
{
	const char *slash = strchr(key, '/');
	if (!slash)
		return -1;
	size_t nl = (size_t)(slash - key), lo = 0, hi = snap->count[STORE_INGRESS];
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *ns = snap->ns[STORE_INGRESS][mid];
		int c = strncmp(ns, key, nl);
		if (!c && ns[nl])
			c = 1; /* ns is longer */
		if (!c)
			c = strcmp(snap->names[STORE_INGRESS][mid], slash + 1);
		if (!c)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int compile_incr_apply(struct compile_incr *s, const struct snapshot *old,
                       const struct snapshot *snap, const struct compile_options *o,
                       struct route_table *t, const struct diag_list *diags, char ***changed,
                       size_t *nchanged, struct compile_incr_stats *stats)
{
	*changed = NULL;
	*nchanged = 0;
	memset(stats, 0, sizeof(*stats));
	/* The changed Ingresses, and those that name another object changed. */
	const int K = STORE_INGRESS;
	struct changes cs = {0};
	if (!snapshot_diff_kind(old, snap, STORE_INGRESS, add_change, &cs) ||
	    !others_to_changes(s, old, snap, &cs)) {
		changes_free(cs.v, cs.n);
		return WEIR_EAGAIN; /* too many, or beyond what Ingresses name */
	}
	struct change *ch = cs.v;
	size_t nch = cs.n;
	stats->changed = nch;
	if (!nch)
		return 0;

	int rc = WEIR_EAGAIN;
	struct sset reach = {0}, todo = {0}, gone = {0};
	char **queue = NULL;
	size_t nq = 0, qcap = 0, qi = 0;
	struct snapshot sub;
	memset(&sub, 0, sizeof(sub));
	struct route_table *part = NULL;
	struct diag_list pd = {0};
	struct collect col = {0};
	size_t *pos = NULL, npos = 0;
#define PUSH_HOST(h)                                                                               \
	do {                                                                                       \
		if (sset_add(&reach, (h))) {                                                       \
			if (nq == qcap) {                                                          \
				qcap = qcap ? qcap * 2 : 64;                                       \
				queue = xrealloc(queue, qcap * sizeof(*queue));                    \
			}                                                                          \
			queue[nq++] = xstrdup(h);                                                  \
		}                                                                                  \
	} while (0)

	for (size_t c = 0; c < nch; c++) {
		long at = ent_find(s, ch[c].key);
		if (at >= 0) {
			struct ent *e = s->ents[at];
			if (e->pinned)
				goto out;
			for (size_t h = 0; h < e->nhosts; h++)
				PUSH_HOST(e->hosts[h]);
		}
		sset_add(&gone, ch[c].key); /* its old version leaves the index */
		if (ch[c].now) {
			bool pinned = false;
			if (compile_ingress_mentions(snap, o, ch[c].now, &ch[c].hosts,
			                             &ch[c].nhosts, &pinned) == 0) {
				if (pinned)
					goto out;
				sset_add(&todo, ch[c].key);
				for (size_t h = 0; h < ch[c].nhosts; h++)
					PUSH_HOST(ch[c].hosts[h]);
			}
		}
	}
	/* Every unchanged Ingress that shares a host name, transitively. */
	for (; qi < nq; qi++) {
		struct hnode *hn = hnode_get(s, queue[qi], false);
		for (size_t x = 0; hn && x < hn->n; x++) {
			struct ent *e = hn->v[x];
			if (sset_has(&gone, e->key) || sset_has(&todo, e->key))
				continue;
			if (e->pinned)
				goto out;
			sset_add(&todo, e->key);
			if (todo.n > COMPILE_INCR_MAX_INGRESSES)
				goto out;
			for (size_t h = 0; h < e->nhosts; h++)
				PUSH_HOST(e->hosts[h]);
		}
	}
	/* Diagnostics must stay as they are: none on what is recompiled or
	 * removed, none on endpoints (they come with a backend's first use). */
	for (size_t d = 0; d < diags->n; d++) {
		const struct diag *g = &diags->items[d];
		if (strcmp(g->kind, "EndpointSlice") == 0)
			goto out;
		if (strcmp(g->kind, "Ingress") == 0) {
			char *k = key_of(g->ns, g->name);
			bool hit = sset_has(&todo, k) || sset_has(&gone, k);
			free(k);
			if (hit)
				goto out;
		}
	}
	for (size_t d = 0; d < diags->ndropped; d++)
		if (sset_has(&todo, diags->dropped[d]) || sset_has(&gone, diags->dropped[d]))
			goto out;

	/* Compile the Ingresses in reach alone. */
	sub = *snap;
	sub.count[K] = 0;
	sub.objs[K] = xcalloc(todo.n + 1, sizeof(*sub.objs[K]));
	sub.ns[K] = xcalloc(todo.n + 1, sizeof(*sub.ns[K]));
	sub.names[K] = xcalloc(todo.n + 1, sizeof(*sub.names[K]));
	pos = xcalloc(todo.n + 1, sizeof(*pos));
	for (size_t x = 0; x < todo.cap; x++)
		if (todo.keys[x]) {
			long at = snap_find(snap, todo.keys[x]);
			if (at >= 0)
				pos[npos++] = (size_t)at;
		}
	if (npos > 1) /* in the snapshot's order */
		qsort(pos, npos, sizeof(*pos), cmp_size);
	for (size_t x = 0; x < npos; x++) {
		sub.objs[K][sub.count[K]] = snap->objs[K][pos[x]];
		sub.ns[K][sub.count[K]] = snap->ns[K][pos[x]];
		sub.names[K][sub.count[K]] = snap->names[K][pos[x]];
		sub.count[K]++;
	}
	compile_slices_refresh(&s->slices, snap);
	int crc = compile_snapshot_with(&sub, o, s->slices, &part, &pd, collect_cb, &col);
	if (crc) {
		rc = crc;
		goto out;
	}
	if (pd.ndropped)
		goto out;
	for (size_t d = 0; d < pd.n; d++)
		/* The ConfigMap's and --default-backend-service's come again,
		 * the same as in diags; any other is new. */
		if (strcmp(pd.items[d].kind, "ConfigMap") != 0 &&
		    strcmp(pd.items[d].kind, "Service") != 0)
			goto out;
	for (size_t x = 0; x < col.n; x++)
		if (col.v[x]->pinned)
			goto out;
	rc = splice(t, part, &reach, &stats->arrays_kept);
	if (rc)
		goto out;

	/* The index follows. */
	for (size_t c = 0; c < nch; c++)
		ent_remove(s, ch[c].key);
	for (size_t x = 0; x < todo.cap; x++)
		if (todo.keys[x])
			ent_remove(s, todo.keys[x]);
	for (size_t x = 0; x < col.n; x++) {
		ent_insert(s, col.v[x]);
		col.v[x] = NULL;
	}
	stats->recompiled = todo.n;
	stats->hosts = reach.n;
	*changed = xcalloc(reach.n + 1, sizeof(char *));
	for (size_t x = 0; x < reach.cap; x++)
		if (reach.keys[x]) {
			(*changed)[(*nchanged)++] = reach.keys[x];
			reach.keys[x] = NULL;
		}
	if (*nchanged > 1)
		qsort(*changed, *nchanged, sizeof(char *), cmp_strp);
	rc = 0;
out:
#undef PUSH_HOST
	for (size_t x = 0; x < col.n; x++)
		ent_free(col.v[x]);
	free(col.v);
	route_table_free(part);
	diag_list_cleanup(&pd);
	free(pos);
	free(sub.objs[K]);
	free(sub.ns[K]);
	free(sub.names[K]);
	for (size_t x = 0; x < nq; x++)
		free(queue[x]);
	free(queue);
	sset_free(&reach);
	sset_free(&todo);
	sset_free(&gone);
	changes_free(ch, nch);
	return rc;
}

const struct compile_slices *compile_incr_slices(struct compile_incr *s,
                                                 const struct snapshot *snap)
{
	if (!s)
		return NULL;
	compile_slices_refresh(&s->slices, snap);
	return s->slices;
}
