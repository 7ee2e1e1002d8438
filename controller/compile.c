/* controller/compile.c - snapshot -> route table + diagnostics. Pure: no I/O,
 * no clock, no randomness; every list is processed in a fixed order so the
 * same snapshot always gives the same table. The control plane may abort on
 * out-of-memory (STYLE.md): allocation failures abort here. */
#include "compile.h"
#include "str_hash.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <ctype.h>
#include <stdatomic.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "annotations.h"
#include "auth_hash.h"
#include "error.h"
#include "log_format.h"
#include "route_validate.h"

#define LABEL_SERVICE_NAME "kubernetes.io/service-name"
#define ANN_CLASS "kubernetes.io/ingress.class"
#define ANN_DEFAULT_CLASS "ingressclass.kubernetes.io/is-default-class"
#define CONFIGMAP_NAME "weir"

/* ------------------------------------------------------------ small helpers */

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		abort();
	return q;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		abort();
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p)
		abort();
	return p;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	return s;
}

static json_object *jget(json_object *o, const char *key)
{
	json_object *v = NULL;
	if (!o || !json_object_is_type(o, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

/* A string member, or NULL when absent or not a string. */
static const char *jstr(json_object *o, const char *key)
{
	json_object *v = jget(o, key);
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static const char *jstr_or(json_object *o, const char *key, const char *def)
{
	const char *s = jstr(o, key);
	return s ? s : def;
}

static json_object *jarr(json_object *o, const char *key)
{
	json_object *v = jget(o, key);
	return v && json_object_is_type(v, json_type_array) ? v : NULL;
}

static size_t jlen(json_object *arr)
{
	return arr ? json_object_array_length(arr) : 0;
}

/* -1: absent or not a boolean; else 0/1. */
static int jbool(json_object *o, const char *key)
{
	json_object *v = jget(o, key);
	if (!v || !json_object_is_type(v, json_type_boolean))
		return -1;
	return json_object_get_boolean(v) ? 1 : 0;
}

static const char *meta_ns(json_object *obj)
{
	return jstr_or(jget(obj, "metadata"), "namespace", "");
}

static const char *meta_name(json_object *obj)
{
	return jstr_or(jget(obj, "metadata"), "name", "");
}

static const char *meta_uid(json_object *obj)
{
	return jstr_or(jget(obj, "metadata"), "uid", "");
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* ------------------------------------------------------------ string map */

/* Open-addressing map from a borrowed string (it must outlive the map) to
 * an index; keeps lookups linear in the input size. Each key's hash is
 * kept: some keys are long (a certificate's PEM text, a policy's JSON),
 * and growing the map then hashes none of them again. */
struct strmap {
	size_t cap, n;
	const char **keys;
	uint64_t *hashes;
	int *vals;
};

static int strmap_get(const struct strmap *m, const char *key)
{
	if (!m->cap)
		return -1;
	uint64_t h = str_hash(key);
	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->keys[i])
			return -1;
		if (m->hashes[i] == h && strcmp(m->keys[i], key) == 0)
			return m->vals[i];
	}
}

static void strmap_put_hashed(struct strmap *m, const char *key, uint64_t h, int val)
{
	if ((m->n + 1) * 2 > m->cap) {
		struct strmap g = {.cap = m->cap ? m->cap * 2 : 64};
		g.keys = xcalloc(g.cap, sizeof(*g.keys));
		g.hashes = xcalloc(g.cap, sizeof(*g.hashes));
		g.vals = xcalloc(g.cap, sizeof(*g.vals));
		for (size_t i = 0; i < m->cap; i++)
			if (m->keys[i])
				strmap_put_hashed(&g, m->keys[i], m->hashes[i], m->vals[i]);
		free(m->keys);
		free(m->hashes);
		free(m->vals);
		*m = g;
	}
	size_t i = h & (m->cap - 1);
	while (m->keys[i] && (m->hashes[i] != h || strcmp(m->keys[i], key) != 0))
		i = (i + 1) & (m->cap - 1);
	if (!m->keys[i])
		m->n++;
	m->keys[i] = key;
	m->hashes[i] = h;
	m->vals[i] = val;
}

static void strmap_put(struct strmap *m, const char *key, int val)
{
	strmap_put_hashed(m, key, str_hash(key), val);
}

static void strmap_cleanup(struct strmap *m)
{
	free(m->keys);
	free(m->hashes);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

/* EndpointSlices by (namespace, kubernetes.io/service-name label). */
struct slice_ref {
	const char *ns;
	const char *svc;
	size_t idx;
};

/* ------------------------------------------------------------ diagnostics */

struct ctx {
	const struct snapshot *snap;
	const struct compile_options *o;
	struct route_table *t;
	struct diag_list *diags;
	size_t diag_cap;
	struct strmap backends;   /* name -> index in t->backends */
	struct strmap certs;      /* name -> index in t->certs */
	size_t certs_cap;         /* of t->certs */
	struct cert_preps *preps; /* NULL: none decoded ahead */
	struct strmap pems;       /* cert_pem (borrowed from t->certs) -> index: checked */
	struct slice_ref *slices; /* sorted by ns, svc, idx */
	size_t nslices;
	/* ConfigMap keys that restrict access to every route and that weir
	 * does not enforce (fail closed: the Ingresses they cover are not
	 * served); borrowed from the snapshot. */
	const char *global_unenforced;     /* covers every Ingress */
	bool global_bad_value;             /* ... set to a value weir cannot read */
	const char *global_auth_ignored;   /* global-auth-url: Ingresses without
	                                      enable-global-auth: "false" */
	struct route_ext_auth global_auth; /* global-auth-*: url NULL when off */
	char **no_auth;                    /* no-auth-locations: paths without global auth */
	size_t nno_auth;
	/* proxy-next-upstream* and retry-non-idempotent of the ConfigMap: the
	 * defaults of routes whose Ingress does not set the annotation */
	uint32_t next_upstream, next_upstream_tries, next_upstream_timeout_ms;
	bool retry_non_idempotent;
	/* whitelist-source-range / denylist-source-range of the ConfigMap: the
	 * allow and deny lists of routes whose Ingress sets none */
	struct route_cidr *global_allow, *global_deny;
	size_t nglobal_allow, nglobal_deny;
	/* custom-http-errors of the ConfigMap: the codes of routes whose
	 * Ingress names none (only custom_errors is used) */
	struct route_policy global_errors;
	bool port_in_redirects; /* use-port-in-redirects of the ConfigMap */
	/* --default-backend-service: its backend index, -1: none or unusable */
	int default_backend_service;
	/* global-allowed-response-headers: the header names custom-headers may
	 * set (comma-separated); NULL: none. Borrowed from the snapshot. */
	const char *allowed_response_headers;
	/* proxy-cookie-domain, proxy-cookie-path, proxy-redirect-from and -to of
	 * the ConfigMap that passed the annotation rules, as annotations
	 * (nginx.ingress.kubernetes.io/ keys): the defaults of Ingresses that do
	 * not set them. NULL: none. */
	json_object *proxy_rw_defaults;
	/* proxy-buffer-size of the ConfigMap, for routes without the annotation */
	uint32_t upstream_head_max;
	/* proxy-body-size, proxy-connect-/-read-/-send-timeout and ssl-redirect
	 * of the ConfigMap: the defaults of routes whose Ingress does not set the
	 * annotation; read_timeout_set: proxy-read-timeout given, which then
	 * also sets the WebSocket idle timeout, as the annotation does */
	int64_t body_limit;
	uint32_t connect_timeout_ms, read_timeout_ms, send_timeout_ms;
	bool read_timeout_set;
	bool ssl_redirect;
	/* The policies of the routes compiled so far, each with a reference of
	 * the compile's own, found by their text (route_policy_serialize):
	 * routes whose policies serialize alike share one. A 10k-Ingress table
	 * has a few distinct policies for its tens of thousands of routes. */
	struct strmap policy_at; /* text (in policy_texts) -> index */
	char **policy_texts;
	struct route_policy **policies;
	/* route_validate_policy passed for policies[i]: the routes that share
	 * it check the rest of themselves only (finish_host) */
	bool *policy_ok;
	size_t npolicies, policies_cap;
};

/* s with control bytes and bytes that are not UTF-8 escaped (\n, \xNN), in
 * a new string: a diagnostic quotes user input and becomes a log line and
 * an Event, neither of which may be split or hold invalid UTF-8. */
static char *escaped(const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(s), o = 0;
	char *out = xcalloc(n * 4 + 1, 1);
	for (size_t i = 0; i < n;) {
		unsigned char ch = (unsigned char)s[i];
		size_t k = ch < 0x80 ? 1 : ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : 2;
		if (ch >= 0x80 && (k > n - i || !route_validate_utf8(s + i, k)))
			k = 0;
		if (k > 1 || (k == 1 && ch >= 0x20 && ch != 0x7f)) {
			memcpy(out + o, s + i, k);
			o += k;
			i += k;
			continue;
		}
		out[o++] = '\\';
		if (ch == '\n' || ch == '\r' || ch == '\t') {
			out[o++] = ch == '\n' ? 'n' : ch == '\r' ? 'r' : 't';
		} else {
			out[o++] = 'x';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
		i++;
	}
	out[o] = '\0';
	return out;
}

static void diag_add(struct ctx *c, const char *kind, json_object *obj, const char *key,
                     const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void diag_add(struct ctx *c, const char *kind, json_object *obj, const char *key,
                     const char *reason, const char *fmt, ...)
{
	struct diag_list *d = c->diags;
	if (d->n == c->diag_cap) {
		c->diag_cap = c->diag_cap ? c->diag_cap * 2 : 16;
		d->items = xrealloc(d->items, c->diag_cap * sizeof(*d->items));
	}
	struct diag *g = &d->items[d->n++];
	va_list ap;
	char *msg = NULL;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	g->kind = xstrdup(kind);
	g->ns = xstrdup(meta_ns(obj));
	g->name = xstrdup(meta_name(obj));
	g->uid = xstrdup(meta_uid(obj));
	g->key = key ? escaped(key) : NULL;
	g->reason = xstrdup(reason);
	g->message = escaped(msg);
	free(msg);
}

static void diag_free_one(struct diag *g)
{
	free(g->kind);
	free(g->ns);
	free(g->name);
	free(g->uid);
	free(g->key);
	free(g->reason);
	free(g->message);
}

void diag_list_cleanup(struct diag_list *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		diag_free_one(&d->items[i]);
	free(d->items);
	d->items = NULL;
	d->n = 0;
	for (size_t i = 0; i < d->ndropped; i++)
		free(d->dropped[i]);
	free(d->dropped);
	d->dropped = NULL;
	d->ndropped = 0;
}

/* ------------------------------------------------------------ class selection */

/* Binary search: snapshots are sorted by namespace, then name. */
static json_object *find_obj(const struct snapshot *s, enum store_kind k, const char *ns,
                             const char *name)
{
	size_t lo = 0, hi = s->count[k];
	if (!ns)
		ns = "";
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(s->ns[k][mid], ns);
		if (!r)
			r = strcmp(s->names[k][mid], name);
		if (!r)
			return s->objs[k][mid];
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int cmp_slice_ref(const void *a, const void *b)
{
	const struct slice_ref *x = a, *y = b;
	int r = strcmp(x->ns, y->ns);
	if (!r)
		r = strcmp(x->svc, y->svc);
	if (!r)
		r = x->idx < y->idx ? -1 : x->idx > y->idx;
	return r;
}

static void index_slices(struct ctx *c)
{
	size_t n = c->snap->count[STORE_ENDPOINT_SLICE];
	c->slices = xcalloc(n, sizeof(*c->slices));
	for (size_t i = 0; i < n; i++) {
		json_object *sl = c->snap->objs[STORE_ENDPOINT_SLICE][i];
		const char *svc = jstr(jget(jget(sl, "metadata"), "labels"), LABEL_SERVICE_NAME);
		if (!svc)
			continue;
		c->slices[c->nslices++] = (struct slice_ref){meta_ns(sl), svc, i};
	}
	qsort(c->slices, c->nslices, sizeof(*c->slices), cmp_slice_ref);
}

struct compile_slices {
	struct slice_ref *v;
	size_t n;
	size_t count;       /* the snapshot's slices, to tell whether it still fits */
	json_object **objs; /* borrowed pointers, compared only */
};

struct compile_slices *compile_slices_build(const struct snapshot *snap)
{
	struct compile_slices *cs = xcalloc(1, sizeof(*cs));
	struct ctx c = {.snap = snap};
	index_slices(&c);
	cs->v = c.slices;
	cs->n = c.nslices;
	cs->count = snap->count[STORE_ENDPOINT_SLICE];
	cs->objs = xcalloc(cs->count + 1, sizeof(*cs->objs));
	memcpy(cs->objs, snap->objs[STORE_ENDPOINT_SLICE], cs->count * sizeof(*cs->objs));
	return cs;
}

bool compile_slices_fit(const struct compile_slices *cs, const struct snapshot *snap)
{
	return cs && cs->count == snap->count[STORE_ENDPOINT_SLICE] &&
	       (!cs->count || memcmp(cs->objs, snap->objs[STORE_ENDPOINT_SLICE],
	                             cs->count * sizeof(*cs->objs)) == 0);
}

void compile_slices_refresh(struct compile_slices **csp, const struct snapshot *snap)
{
	struct compile_slices *cs = *csp;
	size_t n = snap->count[STORE_ENDPOINT_SLICE];
	json_object **now = snap->objs[STORE_ENDPOINT_SLICE];
	bool ok = cs && cs->count == n;
	for (size_t i = 0; ok && i < n; i++) {
		if (cs->objs[i] == now[i])
			continue;
		const char *svc =
		    jstr(jget(jget(now[i], "metadata"), "labels"), LABEL_SERVICE_NAME);
		const char *ns = meta_ns(now[i]);
		size_t p = 0;
		while (p < cs->n && cs->v[p].idx != i)
			p++;
		/* same namespace and Service: the sorted order holds */
		ok = p < cs->n && svc && strcmp(cs->v[p].svc, svc) == 0 &&
		     strcmp(cs->v[p].ns, ns) == 0;
		if (ok) {
			cs->v[p].svc = svc;
			cs->v[p].ns = ns;
			cs->objs[i] = now[i];
		}
	}
	if (ok)
		return;
	compile_slices_free(cs);
	*csp = compile_slices_build(snap);
}

void compile_slices_free(struct compile_slices *cs)
{
	if (!cs)
		return;
	free(cs->v);
	free(cs->objs);
	free(cs);
}

/* Our IngressClass (cluster-scoped, by name), or NULL. */
static json_object *our_class(const struct snapshot *s, const struct compile_options *o)
{
	for (size_t i = 0; i < s->count[STORE_INGRESS_CLASS]; i++) {
		json_object *obj = s->objs[STORE_INGRESS_CLASS][i];
		if (strcmp(meta_name(obj), o->ingress_class) == 0)
			return obj;
	}
	return NULL;
}

static bool class_matches(json_object *ing, json_object *cls, const struct compile_options *o)
{
	const char *icn = jstr(jget(ing, "spec"), "ingressClassName");
	const char *ann = jstr(jget(jget(ing, "metadata"), "annotations"), ANN_CLASS);
	bool ours = true;
	if (o->all_classes)
		return true;
	if (cls && !o->take_over_class) {
		const char *ctl = jstr(jget(cls, "spec"), "controller");
		ours = ctl && strcmp(ctl, o->controller_name) == 0;
	}
	if (icn)
		return strcmp(icn, o->ingress_class) == 0 && ours;
	if (ann)
		return strcmp(ann, o->ingress_class) == 0;
	if (!cls || !ours)
		return false;
	const char *def = jstr(jget(jget(cls, "metadata"), "annotations"), ANN_DEFAULT_CLASS);
	return def && strcmp(def, "true") == 0;
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int compile_class_ingresses(const struct snapshot *snap, const struct compile_options *o,
                            char ***out, size_t *n)
{
	json_object *cls = our_class(snap, o);
	size_t total = snap->count[STORE_INGRESS], k = 0;
	char **list = calloc(total ? total : 1, sizeof(*list));
	if (!list)
		return WEIR_ENOMEM;
	for (size_t i = 0; i < total; i++) {
		json_object *ing = snap->objs[STORE_INGRESS][i];
		if (!class_matches(ing, cls, o))
			continue;
		if (asprintf(&list[k], "%s/%s", meta_ns(ing), meta_name(ing)) < 0) {
			for (size_t j = 0; j < k; j++)
				free(list[j]);
			free(list);
			return WEIR_ENOMEM;
		}
		k++;
	}
	qsort(list, k, sizeof(*list), cmp_strp);
	*out = list;
	*n = k;
	return 0;
}

/* ------------------------------------------------------------ backends */

static bool is_loopback(const char *addr)
{
	unsigned char buf[16];
	if (inet_pton(AF_INET, addr, buf) == 1)
		return buf[0] == 127;
	if (inet_pton(AF_INET6, addr, buf) == 1) {
		static const unsigned char one[16] = {[15] = 1};
		static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
		if (memcmp(buf, one, 16) == 0)
			return true;
		return memcmp(buf, mapped, 12) == 0 && buf[12] == 127;
	}
	return false;
}

static bool is_ip(const char *addr)
{
	return route_validate_address(addr, NULL, 0) == 0;
}

/* Addresses compare as numbers: IPv4 before IPv6, then byte order. */
static int cmp_address(const char *a, const char *b)
{
	unsigned char x[17] = {0}, y[17] = {0};
	if (inet_pton(AF_INET, a, x + 1) != 1 && inet_pton(AF_INET6, a, x + 1) == 1)
		x[0] = 1;
	if (inet_pton(AF_INET, b, y + 1) != 1 && inet_pton(AF_INET6, b, y + 1) == 1)
		y[0] = 1;
	int r = memcmp(x, y, sizeof(x));
	return r ? r : strcmp(a, b);
}

static int cmp_endpoint(const void *a, const void *b)
{
	const struct route_endpoint *x = a, *y = b;
	int r = cmp_address(x->address, y->address);
	if (r)
		return r;
	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	/* serving before draining, so dedupe keeps the serving one */
	return (int)x->draining - (int)y->draining;
}

static void add_endpoint(struct route_backend *b, size_t *cap, const char *addr, int port,
                         bool draining)
{
	if (b->nendpoints == *cap) {
		*cap = *cap ? *cap * 2 : 4;
		b->endpoints = xrealloc(b->endpoints, *cap * sizeof(*b->endpoints));
	}
	struct route_endpoint *e = &b->endpoints[b->nendpoints++];
	e->address = xstrdup(addr);
	e->port = (uint16_t)port;
	e->weight = 1;
	e->draining = draining;
}

static bool endpoint_ok(struct ctx *c, json_object *slice, const char *addr)
{
	if (!is_ip(addr))
		return false;
	if (is_loopback(addr) && !c->o->allow_loopback) {
		diag_add(c, "EndpointSlice", slice, "endpoints", "LoopbackEndpoint",
		         "loopback address %s dropped", addr);
		return false;
	}
	return true;
}

/* Endpoints of service svc (namespace ns) for the service port named pname
 * ("" when unnamed), from every EndpointSlice of the service. */
static void collect_endpoints(struct ctx *c, struct route_backend *b, const char *ns,
                              const char *svc, const char *pname)
{
	size_t cap = 0, lo = 0, hi = c->nslices;
	struct slice_ref key = {ns, svc, 0};
	while (lo < hi) { /* first slice of (ns, svc) */
		size_t mid = lo + (hi - lo) / 2;
		if (cmp_slice_ref(&c->slices[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < c->nslices; i++) {
		if (strcmp(c->slices[i].ns, ns) != 0 || strcmp(c->slices[i].svc, svc) != 0)
			break;
		json_object *sl = c->snap->objs[STORE_ENDPOINT_SLICE][c->slices[i].idx];
		const char *atype = jstr(sl, "addressType");
		if (atype && strcmp(atype, "IPv4") != 0 && strcmp(atype, "IPv6") != 0)
			continue;
		json_object *ports = jarr(sl, "ports");
		int port = -1;
		for (size_t p = 0; p < jlen(ports); p++) {
			json_object *po = json_object_array_get_idx(ports, p);
			if (strcmp(jstr_or(po, "name", ""), pname) != 0)
				continue;
			json_object *pn = jget(po, "port");
			if (pn && json_object_is_type(pn, json_type_int))
				port = json_object_get_int(pn);
			break;
		}
		if (port < 1 || port > 65535)
			continue;
		json_object *eps = jarr(sl, "endpoints");
		for (size_t e = 0; e < jlen(eps); e++) {
			json_object *ep = json_object_array_get_idx(eps, e);
			json_object *cond = jget(ep, "conditions");
			int ready = jbool(cond, "ready"), serving = jbool(cond, "serving");
			int term = jbool(cond, "terminating");
			bool draining = term == 1;
			if (ready == 0 && !(serving == 1 && term == 1))
				continue;
			json_object *addrs = jarr(ep, "addresses");
			for (size_t a = 0; a < jlen(addrs); a++) {
				const char *addr =
				    json_object_get_string(json_object_array_get_idx(addrs, a));
				if (addr && endpoint_ok(c, sl, addr))
					add_endpoint(b, &cap, addr, port, draining);
			}
		}
	}
	if (b->nendpoints) /* qsort(NULL, 0) is undefined */
		qsort(b->endpoints, b->nendpoints, sizeof(*b->endpoints), cmp_endpoint);
	size_t k = 0;
	for (size_t i = 0; i < b->nendpoints; i++) {
		if (k && strcmp(b->endpoints[k - 1].address, b->endpoints[i].address) == 0 &&
		    b->endpoints[k - 1].port == b->endpoints[i].port) {
			free(b->endpoints[i].address);
			continue;
		}
		b->endpoints[k++] = b->endpoints[i];
	}
	b->nendpoints = k;
}

static int find_backend(struct ctx *c, const char *name)
{
	return strmap_get(&c->backends, name);
}

static int new_backend(struct ctx *c, char *name /* takes */)
{
	struct route_table *t = c->t;
	t->backends = xrealloc(t->backends, (t->nbackends + 1) * sizeof(*t->backends));
	struct route_backend *b = &t->backends[t->nbackends];
	memset(b, 0, sizeof(*b));
	b->name = name;
	strmap_put(&c->backends, name, (int)t->nbackends);
	return (int)t->nbackends++;
}

/* The service port of svc matching port (number > 0) or pname. */
static json_object *service_port(json_object *svc, long number, const char *pname)
{
	json_object *ports = jarr(jget(svc, "spec"), "ports");
	for (size_t i = 0; i < jlen(ports); i++) {
		json_object *p = json_object_array_get_idx(ports, i);
		json_object *num = jget(p, "port");
		if (number > 0 && num && json_object_get_int64(num) == number)
			return p;
		if (!number && pname && strcmp(jstr_or(p, "name", ""), pname) == 0)
			return p;
	}
	return NULL;
}

/* Service svc of type ExternalName as backend b, on port (its targetPort;
 * -1 when that is a name). An IP literal becomes b's one endpoint, a DNS
 * name b's external_name for the proxy to resolve. Loopback names are
 * refused outside --manifests mode, as ingress-nginx refuses them. Returns
 * 0, or -1 with a diagnostic on ing and b left without endpoints (503). */
static int external_backend(struct ctx *c, json_object *ing, const char *field, json_object *svc,
                            long port, struct route_backend *b)
{
	const char *ns = meta_ns(svc), *sname = meta_name(svc);
	const char *ext = jstr(jget(svc, "spec"), "externalName");
	char why[256];
	if (!ext || !*ext) {
		diag_add(c, "Ingress", ing, field, "ServiceNotFound",
		         "service %s/%s of type ExternalName has no externalName", ns, sname);
		return -1;
	}
	if (port < 1 || port > 65535) {
		diag_add(c, "Ingress", ing, field, "ServiceNotFound",
		         "service %s/%s of type ExternalName: its targetPort must be a number "
		         "1..65535",
		         ns, sname);
		return -1;
	}
	if ((strcmp(ext, "localhost") == 0 || strcmp(ext, "localhost.") == 0 ||
	     (is_ip(ext) && is_loopback(ext))) &&
	    !c->o->allow_loopback) {
		diag_add(c, "Ingress", ing, field, "LoopbackEndpoint",
		         "service %s/%s: ExternalName %s is a loopback name", ns, sname, ext);
		return -1;
	}
	if (is_ip(ext)) {
		size_t cap = 0;
		add_endpoint(b, &cap, ext, (int)port, false);
		return 0;
	}
	char f[32];
	if (route_validate_external(ext, (unsigned)port, 0, f, sizeof(f), why, sizeof(why)) != 0) {
		diag_add(c, "Ingress", ing, field, "ServiceNotFound",
		         "service %s/%s: ExternalName %s", ns, sname, why);
		return -1;
	}
	free(b->external_name); /* set before when a backend is resolved again */
	b->external_name = xstrdup(ext);
	b->external_port = (uint16_t)port;
	return 0;
}

static int first_port_backend(struct ctx *c, const char *ns, const char *name);

/* Resolve one Ingress backend (spec.defaultBackend or a path's backend:
 * {"service":{"name":..,"port":{"number":..}|{"name":..}}}) to a table
 * backend index. -1 with a diagnostic on ing when it cannot be served. */
static int resolve_backend(struct ctx *c, json_object *ing, const struct annotations *a,
                           json_object *be, const char *field)
{
	const char *ns = meta_ns(ing);
	json_object *sref = jget(be, "service");
	const char *sname = jstr(sref, "name");
	json_object *pref = jget(sref, "port");
	json_object *pnum = jget(pref, "number");
	const char *pname = jstr(pref, "name");
	long number = pnum && json_object_is_type(pnum, json_type_int)
	                  ? (long)json_object_get_int64(pnum)
	                  : 0;
	if (!sname || (!number && !pname)) {
		diag_add(c, "Ingress", ing, field, "BadRule",
		         "backend is not a service with a port number or name");
		return -1;
	}
	bool upstream = a && a->service_upstream;
	char *name =
	    number ? xasprintf("%s/%s:%ld%s", ns, sname, number, upstream ? " (cluster IP)" : "")
	           : xasprintf("%s/%s:%s%s", ns, sname, pname, upstream ? " (cluster IP)" : "");
	int idx = find_backend(c, name);
	if (idx >= 0) {
		free(name);
		goto fallback;
	}
	char why[256];
	if (route_validate_text(name, why, sizeof(why)) != 0) {
		diag_add(c, "Ingress", ing, field, "BadRule", "backend name: %s", why);
		free(name);
		return -1;
	}
	json_object *svc = find_obj(c->snap, STORE_SERVICE, ns, sname);
	if (!svc) {
		diag_add(c, "Ingress", ing, field, "ServiceNotFound", "service %s/%s not found", ns,
		         sname);
		goto unavailable;
	}
	const char *type = jstr(jget(svc, "spec"), "type");
	bool external = type && strcmp(type, "ExternalName") == 0;
	json_object *sp = service_port(svc, number, pname);
	if (external && !sp && number && !jlen(jarr(jget(svc, "spec"), "ports"))) {
		/* An ExternalName Service without ports: the Ingress's port
		 * number is the port (as ingress-nginx). */
		idx = new_backend(c, name);
		external_backend(c, ing, field, svc, number, &c->t->backends[idx]);
		goto fallback;
	}
	if (!sp) {
		if (number)
			diag_add(c, "Ingress", ing, field, "ServiceNotFound",
			         "service %s/%s has no port %ld", ns, sname, number);
		else
			diag_add(c, "Ingress", ing, field, "ServiceNotFound",
			         "service %s/%s has no port named %s", ns, sname, pname);
		goto unavailable;
	}
	idx = new_backend(c, name);
	if (external) {
		json_object *tp = jget(sp, "targetPort");
		long port =
		    tp ? (json_object_is_type(tp, json_type_int) ? json_object_get_int64(tp) : -1)
		       : json_object_get_int64(jget(sp, "port"));
		external_backend(c, ing, field, svc, port, &c->t->backends[idx]);
	} else if (upstream) {
		const char *cip = jstr(jget(svc, "spec"), "clusterIP");
		json_object *num = jget(sp, "port");
		int port = num ? json_object_get_int(num) : 0;
		size_t cap = 0;
		if (cip && is_ip(cip) && port > 0 && port <= 65535) {
			if (!is_loopback(cip) || c->o->allow_loopback)
				add_endpoint(&c->t->backends[idx], &cap, cip, port, false);
		} else {
			diag_add(c, "Ingress", ing, field, "BadRule",
			         "service-upstream: service %s/%s has no cluster IP", ns, sname);
		}
	} else {
		collect_endpoints(c, &c->t->backends[idx], ns, sname, jstr_or(sp, "name", ""));
	}
	goto fallback;
unavailable:
	/* The route stays and answers 503 until the Service is usable, as
	 * ingress-nginx does for a path whose backend is missing (404 would
	 * say the path does not exist). */
	idx = new_backend(c, name);
fallback:
	/* default-backend annotation: a Service of the same namespace serves
	 * when this one has no endpoints (decided now, at compile time). */
	if (a && a->default_backend && c->t->backends[idx].nendpoints == 0 &&
	    !c->t->backends[idx].external_name) {
		int didx = first_port_backend(c, ns, a->default_backend);
		if (didx < 0) {
			diag_add(c, "Ingress", ing, "default-backend", "ServiceNotFound",
			         "default-backend service %s/%s not found or has no port", ns,
			         a->default_backend);
			return idx;
		}
		return didx;
	}
	return idx;
}

/* A Service's first port as a backend ("namespace/name:port"), the way
 * ingress-nginx serves a default backend (the default-backend annotation,
 * --default-backend-service). -1 when the Service or its port is missing. */
static int first_port_backend(struct ctx *c, const char *ns, const char *name)
{
	json_object *svc = find_obj(c->snap, STORE_SERVICE, ns, name);
	json_object *ports = jarr(jget(svc, "spec"), "ports");
	json_object *p = jlen(ports) ? json_object_array_get_idx(ports, 0) : NULL;
	json_object *num = jget(p, "port");
	if (!svc || !num)
		return -1;
	char *bname = xasprintf("%s/%s:%d", ns, name, json_object_get_int(num));
	int idx = find_backend(c, bname);
	if (idx >= 0) {
		free(bname);
		return idx;
	}
	idx = new_backend(c, bname);
	collect_endpoints(c, &c->t->backends[idx], ns, name, jstr_or(p, "name", ""));
	return idx;
}

/* --default-backend-service NAMESPACE/NAME: -1 (with a diagnostic on the
 * Service) when it is missing or has no port. */
static int resolve_default_backend_service(struct ctx *c)
{
	const char *v = c->o->default_backend_service;
	const char *slash = v ? strchr(v, '/') : NULL;
	if (!slash)
		return -1;
	char *ns = xasprintf("%.*s", (int)(slash - v), v);
	int idx = first_port_backend(c, ns, slash + 1);
	if (idx < 0) {
		json_object *ref = json_object_new_object();
		json_object *meta = json_object_new_object();
		json_object_object_add(meta, "namespace", json_object_new_string(ns));
		json_object_object_add(meta, "name", json_object_new_string(slash + 1));
		json_object_object_add(ref, "metadata", meta);
		diag_add(c, "Service", ref, "--default-backend-service", "ServiceNotFound",
		         "default backend service %s not found or has no port; unmatched requests "
		         "get 404",
		         v);
		json_object_put(ref);
	}
	free(ns);
	return idx;
}

/* Where an Ingress's custom-http-errors go: its default-backend annotation's
 * Service when that has endpoints (as ingress-nginx), else
 * --default-backend-service, else -1 (the proxy answers 404, as
 * ingress-nginx's built-in default backend does). */
static int error_backend(struct ctx *c, json_object *ing, const struct annotations *a)
{
	if (a->default_backend) {
		int idx = first_port_backend(c, meta_ns(ing), a->default_backend);
		if (idx < 0)
			diag_add(c, "Ingress", ing, "default-backend", "ServiceNotFound",
			         "default-backend service %s/%s not found or has no port; "
			         "custom-http-errors go to the global default backend",
			         meta_ns(ing), a->default_backend);
		else if (c->t->backends[idx].nendpoints > 0)
			return idx;
	}
	return c->default_backend_service;
}

/* ------------------------------------------------------------ certificates */

/* Base64 text (whitespace ignored) -> NUL-terminated bytes, or NULL. */
static char *b64decode(const char *in)
{
	size_t n = strlen(in), k = 0;
	char *clean = xcalloc(n + 1, 1);
	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)in[i]))
			clean[k++] = in[i];
	if (k == 0 || k % 4) {
		free(clean);
		return NULL;
	}
	unsigned char *out = xcalloc(k / 4 * 3 + 1, 1);
	int len = EVP_DecodeBlock(out, (const unsigned char *)clean, (int)k);
	if (len < 0) {
		free(clean);
		free(out);
		return NULL;
	}
	if (clean[k - 1] == '=')
		len--;
	if (clean[k - 2] == '=')
		len--;
	free(clean);
	out[len] = '\0';
	if (memchr(out, '\0', (size_t)len)) {
		free(out);
		return NULL;
	}
	return (char *)out;
}

static bool looks_like_pem(const char *s, const char *what)
{
	const char *b = strstr(s, "-----BEGIN ");
	if (!b || !strstr(b, "-----END "))
		return false;
	return strstr(s, what) != NULL;
}

/* PEM text of key k of a Secret (data: base64; stringData: plain), or NULL. */
static char *secret_pem(json_object *sec, const char *k)
{
	const char *v = jstr(jget(sec, "data"), k);
	if (v)
		return b64decode(v);
	v = jstr(jget(sec, "stringData"), k);
	return v ? xstrdup(v) : NULL;
}

/* Certificate and key pairs that passed route_validate_cert, by SHA-256 of
 * both texts, kept across compiles: the check is OpenSSL's parse of both
 * (about half a millisecond a pair), and at 10,000 distinct pairs every full
 * compile would pay seconds for the same verdicts. Only successes are kept
 * (a failure is checked again for its message). The table grows with what
 * it holds (at most half full), up to 2 * GOOD_PAIRS_MAX slots; bounded:
 * cleared when full. */
#define GOOD_PAIRS_MAX 65536
#define GOOD_PAIRS_MIN 1024 /* first size, in slots */
static struct {
	pthread_mutex_t lock;
	size_t n, cap;                            /* cap: slots, a power of two */
	unsigned char (*d)[SHA256_DIGEST_LENGTH]; /* open addressing; all-zero: empty */
} good_pairs = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Slot of digest d (found or empty) in a table of cap slots. */
static size_t pair_slot(unsigned char (*tab)[SHA256_DIGEST_LENGTH], size_t cap,
                        const unsigned char *d)
{
	static const unsigned char zero[SHA256_DIGEST_LENGTH];
	uint64_t h;
	memcpy(&h, d, sizeof(h));
	size_t i = (size_t)(h & (cap - 1));
	while (memcmp(tab[i], zero, sizeof(zero)) != 0 &&
	       memcmp(tab[i], d, SHA256_DIGEST_LENGTH) != 0)
		i = (i + 1) & (cap - 1);
	return i;
}

/* d: route_cert_digest of the pair */
static bool pair_known_good(const unsigned char *d)
{
	bool hit = false;
	pthread_mutex_lock(&good_pairs.lock);
	if (good_pairs.d)
		hit = memcmp(good_pairs.d[pair_slot(good_pairs.d, good_pairs.cap, d)], d,
		             SHA256_DIGEST_LENGTH) == 0;
	pthread_mutex_unlock(&good_pairs.lock);
	return hit;
}

static void pair_remember_good(const unsigned char *d)
{
	static const unsigned char zero[SHA256_DIGEST_LENGTH];
	pthread_mutex_lock(&good_pairs.lock);
	if (!good_pairs.d) {
		good_pairs.cap = GOOD_PAIRS_MIN;
		good_pairs.d = xcalloc(good_pairs.cap, sizeof(*good_pairs.d));
	}
	if (good_pairs.n >= GOOD_PAIRS_MAX) {
		memset(good_pairs.d, 0, good_pairs.cap * sizeof(*good_pairs.d));
		good_pairs.n = 0;
	} else if (good_pairs.n >= good_pairs.cap / 2) {
		size_t cap = good_pairs.cap * 2;
		unsigned char(*tab)[SHA256_DIGEST_LENGTH] = xcalloc(cap, sizeof(*tab));
		for (size_t i = 0; i < good_pairs.cap; i++)
			if (memcmp(good_pairs.d[i], zero, sizeof(zero)) != 0)
				memcpy(tab[pair_slot(tab, cap, good_pairs.d[i])], good_pairs.d[i],
				       SHA256_DIGEST_LENGTH);
		free(good_pairs.d);
		good_pairs.d = tab;
		good_pairs.cap = cap;
	}
	size_t i = pair_slot(good_pairs.d, good_pairs.cap, d);
	if (memcmp(good_pairs.d[i], d, SHA256_DIGEST_LENGTH) != 0) {
		memcpy(good_pairs.d[i], d, SHA256_DIGEST_LENGTH);
		good_pairs.n++;
	}
	pthread_mutex_unlock(&good_pairs.lock);
}

void compile_remember_good_digest(const unsigned char *d)
{
	pair_remember_good(d);
}

bool compile_pair_known_good(const char *crt, const char *key)
{
	unsigned char d[ROUTE_CERT_DIGEST_LEN];
	route_cert_digest(crt, key, d);
	return pair_known_good(d);
}

/* Index of cert "ns/name" in the table, loading it from its Secret on first
 * use. -1 with a diagnostic on obj (kind) when missing or invalid. */
/*
 * TLS Secrets decoded ahead. At 10,000 Ingresses with a Secret each, a full
 * compile (every restart) spends about a fifth of its time in resolve_cert
 * decoding the base64 of each pair and hashing it, work that needs nothing
 * but the Secret. So while the Ingress pass parses annotations, a second
 * thread decodes and hashes the Secrets named by the spec.tls of our
 * Ingresses, and this one shares what is left once its pass is done;
 * resolve_cert takes what it finds here
 * (and still makes every check and every diagnostic itself, in order). A
 * Secret the list missed, or no thread, costs nothing but the old path.
 */
struct cert_prep {
	char *name;       /* "namespace/secret" */
	json_object *sec; /* borrowed from the snapshot */
	char *crt, *key;  /* decoded, NULL when absent; taken by resolve_cert */
	bool digest_ok;   /* both present: digest is route_cert_digest of them */
	unsigned char digest[ROUTE_CERT_DIGEST_LEN];
};

/* Ingresses claimed at a time; with no more than this, no second thread
 * (an incremental compile of a few Ingresses would only pay for it). */
#define CERT_PREP_CHUNK 64

/* What one thread decoded (names unique within it). */
struct cert_prep_list {
	struct cert_prep *v;
	size_t n, cap;
	struct strmap at; /* name -> index in v */
};

struct ing;

/* Both threads claim the Ingresses in chunks (next): the second from the
 * start, this one once its Ingress pass is done (cert_preps_finish). */
struct cert_preps {
	const struct snapshot *snap;
	const struct ing *ings; /* our Ingresses: obj and ns read only */
	size_t ning;
	atomic_size_t next;
	struct cert_prep_list done[2]; /* [0] this thread's, [1] the other's */
	struct strmap at;              /* name -> 2 * index + list, after the join */
	pthread_t thread;
	bool running, joined;
};

static void cert_prep_list_free(struct cert_prep_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].crt);
		free(l->v[i].key);
	}
	free(l->v);
	strmap_cleanup(&l->at);
}

static void cert_preps_work(struct cert_preps *ps, struct cert_prep_list *out);

static void *cert_preps_thread(void *arg)
{
	struct cert_preps *ps = arg;
	cert_preps_work(ps, &ps->done[1]);
	return NULL;
}

/* This thread's share, then the other's end; the lists merged by name. */
static void cert_preps_finish(struct cert_preps *ps)
{
	if (!ps || ps->joined)
		return;
	cert_preps_work(ps, &ps->done[0]);
	if (ps->running)
		pthread_join(ps->thread, NULL);
	ps->joined = true;
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < ps->done[k].n; i++)
			if (strmap_get(&ps->at, ps->done[k].v[i].name) < 0)
				strmap_put(&ps->at, ps->done[k].v[i].name, (int)(2 * i) + k);
}

static void cert_preps_free(struct cert_preps *ps)
{
	if (!ps)
		return;
	cert_preps_finish(ps);
	for (int k = 0; k < 2; k++)
		cert_prep_list_free(&ps->done[k]);
	strmap_cleanup(&ps->at);
	free(ps);
}

/* What was decoded ahead for Secret sec named cname, or NULL. */
static struct cert_prep *cert_prep_find(struct ctx *c, const char *cname, json_object *sec)
{
	if (!c->preps)
		return NULL;
	cert_preps_finish(c->preps);
	int i = strmap_get(&c->preps->at, cname);
	struct cert_prep *e = i >= 0 ? &c->preps->done[i % 2].v[i / 2] : NULL;
	return e && e->sec == sec ? e : NULL;
}

static int resolve_cert(struct ctx *c, const char *kind, json_object *obj, const char *field,
                        const char *ns, const char *name)
{
	char *cname = xasprintf("%s/%s", ns, name);
	struct route_table *t = c->t;
	int known = strmap_get(&c->certs, cname);
	if (known >= 0) {
		free(cname);
		return known;
	}
	json_object *sec = find_obj(c->snap, STORE_SECRET, ns, name);
	const char *type = sec ? jstr(sec, "type") : NULL;
	char *crt = NULL, *key = NULL;
	if (!sec) {
		diag_add(c, kind, obj, field, "SecretNotFound", "secret %s not found", cname);
		goto fail;
	}
	if (!type || strcmp(type, "kubernetes.io/tls") != 0) {
		diag_add(c, kind, obj, field, "SecretNotFound",
		         "secret %s is not of type kubernetes.io/tls", cname);
		goto fail;
	}
	struct cert_prep *pre = cert_prep_find(c, cname, sec);
	if (pre) { /* decoded ahead: taken (a name is resolved once) */
		crt = pre->crt;
		key = pre->key;
		pre->crt = pre->key = NULL;
	} else {
		crt = secret_pem(sec, "tls.crt");
		key = secret_pem(sec, "tls.key");
	}
	if (!crt || !looks_like_pem(crt, "CERTIFICATE-----")) {
		diag_add(c, kind, obj, field, "SecretNotFound",
		         "secret %s: tls.crt is not a PEM certificate", cname);
		goto fail;
	}
	if (!key || !looks_like_pem(key, "PRIVATE KEY-----")) {
		diag_add(c, kind, obj, field, "SecretNotFound",
		         "secret %s: tls.key is not a PEM private key", cname);
		goto fail;
	}
	/* What the proxy will do with it: a certificate it cannot load would
	 * make it refuse the whole table. Many Secrets share one pair: check
	 * each distinct pair once. */
	char why[400], where[16];
	if (route_validate_text(cname, why, sizeof(why)) != 0) {
		diag_add(c, kind, obj, field, "BadCertificate", "secret name: %s", why);
		goto fail;
	}
	int seen = strmap_get(&c->pems, crt);
	unsigned char d[ROUTE_CERT_DIGEST_LEN];
	bool good = seen >= 0 && strcmp(t->certs[seen].key_pem, key) == 0;
	if (good)
		memcpy(d, t->certs[seen].digest, sizeof(d));
	else if (pre && pre->digest_ok)
		memcpy(d, pre->digest, sizeof(d));
	else
		route_cert_digest(crt, key, d);
	if (!good && !pair_known_good(d)) {
		int rc = route_validate_cert(cname, crt, key, NULL, where, sizeof(where), why,
		                             sizeof(why));
		if (rc == 0)
			pair_remember_good(d);
		if (rc == WEIR_ENOMEM)
			abort();
		if (rc != 0) {
			diag_add(c, kind, obj, field, "BadCertificate", "secret %s: %s: %s", cname,
			         strcmp(where, "key_pem") == 0 ? "tls.key" : "tls.crt", why);
			goto fail;
		}
	}
	if (t->ncerts == c->certs_cap) {
		c->certs_cap = c->certs_cap ? 2 * c->certs_cap : 16;
		t->certs = xrealloc(t->certs, c->certs_cap * sizeof(*t->certs));
	}
	if (seen < 0)
		strmap_put(&c->pems, crt, (int)t->ncerts);
	t->certs[t->ncerts].name = cname;
	t->certs[t->ncerts].cert_pem = crt;
	t->certs[t->ncerts].key_pem = key;
	memcpy(t->certs[t->ncerts].digest, d, sizeof(d));
	strmap_put(&c->certs, cname, (int)t->ncerts);
	return (int)t->ncerts++;
fail:
	free(crt);
	free(key);
	free(cname);
	return -1;
}

/* ------------------------------------------------------------ basic auth */

struct auth_list {
	size_t n, cap;
	struct route_auth_user *users;
};

static void auth_list_free(struct auth_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->users[i].name);
		free(l->users[i].hash);
	}
	free(l->users);
	memset(l, 0, sizeof(*l));
}

static bool has_ctl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

/* Check one user and hash and append them. NULL, or a static reason. */
static const char *auth_add(struct auth_list *l, const char *user, size_t ulen, const char *hash,
                            size_t hlen)
{
	if (ulen == 0)
		return "empty user name";
	if (has_ctl(user, ulen) || has_ctl(hash, hlen))
		return "control character";
	if (hlen == 0)
		return "empty password hash";
	char *h = xasprintf("%.*s", (int)hlen, hash);
	const char *refused = auth_hash_refusal(h);
	if (refused) {
		free(h);
		return refused;
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->users = xrealloc(l->users, l->cap * sizeof(*l->users));
	}
	l->users[l->n].name = xasprintf("%.*s", (int)ulen, user);
	l->users[l->n].hash = h;
	l->n++;
	return NULL;
}

/* The value of key k of a Secret (data: base64; stringData: plain): 1 and
 * *out (caller frees) when present and decodable, 0 when absent, -1 when
 * data holds bad base64 or a NUL byte. An empty value gives "". */
static int secret_value(json_object *sec, const char *k, char **out)
{
	const char *v = jstr(jget(sec, "data"), k);
	if (v) {
		*out = *v ? b64decode(v) : xstrdup("");
		return *out ? 1 : -1;
	}
	v = jstr(jget(sec, "stringData"), k);
	if (!v)
		return 0;
	*out = xstrdup(v);
	return 1;
}

/* auth-file: htpasswd lines "user:hash" (nginx ignores a third ':' field
 * and so does weir); blank lines and lines starting with '#' skipped. */
static bool auth_from_file(struct ctx *c, json_object *obj, const struct annotations *a,
                           const char *sname, const char *text, struct auth_list *l)
{
	size_t lineno = 0;
	for (const char *line = text; *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		lineno++;
		size_t n = len;
		if (n && line[n - 1] == '\r')
			n--;
		size_t lead = 0;
		while (lead < n && (line[lead] == ' ' || line[lead] == '\t'))
			lead++;
		if (lead < n && line[lead] != '#') {
			const char *colon = memchr(line, ':', n);
			const char *why;
			if (!colon) {
				why = "no ':' between user and password hash";
			} else {
				const char *h = colon + 1;
				const char *hend = memchr(h, ':', n - (size_t)(h - line));
				why = auth_add(l, line, (size_t)(colon - line), h,
				               (size_t)((hend ? hend : line + n) - h));
			}
			if (why) {
				diag_add(
				    c, "Ingress", obj, a->auth_secret_key, "BadAuthSecret",
				    "secret %s: key auth, line %zu: %s; the Ingress's routes are "
				    "dropped",
				    sname, lineno, why);
				return false;
			}
		}
		line += len;
		if (*line == '\n')
			line++;
	}
	return true;
}

/* auth-map: each key of the Secret is a user, its value the hash (one
 * trailing newline allowed). Keys in sorted order. */
static bool auth_from_map(struct ctx *c, json_object *obj, const struct annotations *a,
                          const char *sname, json_object *sec, struct auth_list *l)
{
	const char *parts[2] = {"data", "stringData"};
	size_t nkeys = 0, cap = 0;
	const char **keys = NULL;
	bool ok = false;
	for (size_t p = 0; p < 2; p++) {
		json_object *m = jget(sec, parts[p]);
		if (!m || !json_object_is_type(m, json_type_object))
			continue;
		json_object_object_foreach(m, k, v)
		{
			(void)v;
			if (p == 1 && jget(jget(sec, "data"), k))
				continue; /* data wins, as for tls.crt */
			if (nkeys == cap) {
				cap = cap ? cap * 2 : 8;
				keys = xrealloc(keys, cap * sizeof(*keys));
			}
			keys[nkeys++] = k;
		}
	}
	if (nkeys) /* qsort(NULL, 0) is undefined */
		qsort(keys, nkeys, sizeof(*keys), cmp_strp);
	for (size_t i = 0; i < nkeys; i++) {
		char *val = NULL;
		const char *why = NULL;
		if (secret_value(sec, keys[i], &val) < 0) {
			why = "value is not base64 text";
		} else {
			size_t n = strlen(val);
			if (n && val[n - 1] == '\n')
				n--;
			if (n && val[n - 1] == '\r')
				n--;
			why = auth_add(l, keys[i], strlen(keys[i]), val, n);
		}
		free(val);
		if (why) {
			diag_add(c, "Ingress", obj, a->auth_secret_key, "BadAuthSecret",
			         "secret %s: user %s: %s; the Ingress's routes are dropped", sname,
			         keys[i], why);
			goto out;
		}
	}
	ok = true;
out:
	free(keys);
	return ok;
}

/* ------------------------------------------------------------ client certificates */

/* The Secret or ConfigMap (kind) an annotation names ("name" or
 * "namespace/name"), borrowed from the snapshot; NULL with a diagnostic on
 * key when it is absent or in another namespace than the Ingress
 * (ingress-nginx's default, allow-cross-namespace-resources: false; reason
 * names that case). *sname gets "namespace/name" for messages (caller
 * frees, also on NULL). */
static json_object *annotation_ref(struct ctx *c, json_object *obj, enum store_kind kind,
                                   const char *ref, const char *key, const char *reason,
                                   char **sname)
{
	const char *noun = kind == STORE_SECRET ? "secret" : "ConfigMap";
	const char *ins = meta_ns(obj);
	const char *slash = strchr(ref, '/');
	char *ns = slash ? xasprintf("%.*s", (int)(slash - ref), ref) : xstrdup(ins);
	const char *name = slash ? slash + 1 : ref;
	json_object *found = NULL;
	*sname = xasprintf("%s/%s", ns, name);
	if (strcmp(ns, ins) != 0) {
		diag_add(c, "Ingress", obj, key, reason,
		         "%s %s is in another namespace than the Ingress; cross-namespace "
		         "references are refused; the Ingress's routes are dropped",
		         noun, *sname);
		goto out;
	}
	found = find_obj(c->snap, kind, ns, name);
	if (!found)
		diag_add(c, "Ingress", obj, key,
		         kind == STORE_SECRET ? "SecretNotFound" : "ConfigMapNotFound",
		         "%s %s not found; the Ingress's routes are dropped", noun, *sname);
out:
	free(ns);
	return found;
}

/* auth-tls-secret: the CA (ca.crt, and ca.crl when present) of the Secret
 * into t->cas, one entry per distinct content, and its index into
 * a->tls_auth.ca. false on any problem, with a diagnostic naming the key:
 * the caller drops the Ingress (fail closed). */
static bool resolve_ca(struct ctx *c, json_object *obj, struct annotations *a)
{
	struct route_table *t = c->t;
	char *sname = NULL, *ca = NULL, *crl = NULL;
	bool ok = false;
	json_object *sec = annotation_ref(c, obj, STORE_SECRET, a->tls_secret, a->tls_secret_key,
	                                  "BadAuthTLSSecret", &sname);
	if (!sec)
		goto out;
	int r = secret_value(sec, "ca.crt", &ca);
	if (r <= 0 || !*ca) {
		diag_add(c, "Ingress", obj, a->tls_secret_key, "BadAuthTLSSecret",
		         "secret %s: key ca.crt %s; the Ingress's routes are dropped", sname,
		         r == 0  ? "is missing"
		         : r < 0 ? "is not base64 text"
		                 : "is empty");
		goto out;
	}
	r = secret_value(sec, "ca.crl", &crl);
	if (r < 0) {
		diag_add(c, "Ingress", obj, a->tls_secret_key, "BadAuthTLSSecret",
		         "secret %s: key ca.crl is not base64 text; the Ingress's routes are "
		         "dropped",
		         sname);
		goto out;
	}
	for (size_t i = 0; i < t->ncas; i++) {
		if (strcmp(t->cas[i].ca_pem, ca) == 0 &&
		    (t->cas[i].crl_pem ? crl && strcmp(t->cas[i].crl_pem, crl) == 0 : !crl)) {
			a->tls_auth.ca = (int)i;
			ok = true;
			goto out;
		}
	}
	/* What the proxy will do with it: a CA it cannot load would make it
	 * refuse the whole table. */
	char why[400], field[16] = "ca_pem";
	int rc = route_validate_text(sname, why, sizeof(why));
	if (rc == 0)
		rc =
		    route_validate_ca(sname, ca, crl, NULL, field, sizeof(field), why, sizeof(why));
	if (rc == WEIR_ENOMEM)
		abort();
	if (rc != 0) {
		diag_add(c, "Ingress", obj, a->tls_secret_key, "BadAuthTLSSecret",
		         "secret %s: %s: %s; the Ingress's routes are dropped", sname,
		         strcmp(field, "crl_pem") == 0 ? "ca.crl" : "ca.crt", why);
		goto out;
	}
	t->cas = xrealloc(t->cas, (t->ncas + 1) * sizeof(*t->cas));
	t->cas[t->ncas].name = sname;
	t->cas[t->ncas].ca_pem = ca;
	t->cas[t->ncas].crl_pem = crl;
	sname = ca = crl = NULL;
	a->tls_auth.ca = (int)t->ncas++;
	ok = true;
out:
	free(ca);
	free(crl);
	free(sname);
	return ok;
}

/* auth-type: basic: read the Secret named by auth-secret into the Ingress's
 * policy. false on any problem, with a diagnostic naming the auth-secret
 * key: the caller drops the Ingress (fail closed). */
static bool resolve_auth(struct ctx *c, json_object *obj, struct annotations *a)
{
	char *sname = NULL;
	struct auth_list l = {0};
	char *text = NULL;
	bool ok = false;
	json_object *sec = annotation_ref(c, obj, STORE_SECRET, a->auth_secret, a->auth_secret_key,
	                                  "BadAuthSecret", &sname);
	if (!sec)
		goto out;
	if (a->auth_map) {
		if (!auth_from_map(c, obj, a, sname, sec, &l))
			goto out;
	} else {
		int r = secret_value(sec, "auth", &text);
		if (r <= 0) {
			diag_add(c, "Ingress", obj, a->auth_secret_key, "BadAuthSecret",
			         "secret %s: key auth %s; the Ingress's routes are dropped", sname,
			         r == 0 ? "is missing" : "is not base64 text");
			goto out;
		}
		if (!auth_from_file(c, obj, a, sname, text, &l))
			goto out;
	}
	if (l.n == 0) {
		diag_add(c, "Ingress", obj, a->auth_secret_key, "BadAuthSecret",
		         "secret %s: %s holds no user; the Ingress's routes are dropped", sname,
		         a->auth_map ? "the map" : "key auth");
		goto out;
	}
	a->policy.auth.users = l.users;
	a->policy.auth.nusers = l.n;
	l.users = NULL;
	l.n = 0;
	ok = true;
out:
	auth_list_free(&l);
	free(text);
	free(sname);
	return ok;
}

/* ------------------------------------------------------------ backend TLS */

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool same_profile(const struct route_backend_tls_profile *x,
                         const struct route_backend_tls_profile *y)
{
	return same_str(x->name, y->name) && x->verify == y->verify &&
	       x->verify_depth == y->verify_depth && same_str(x->protocols, y->protocols) &&
	       same_str(x->ciphers, y->ciphers) && same_str(x->ca_pem, y->ca_pem) &&
	       same_str(x->cert_pem, y->cert_pem) && same_str(x->key_pem, y->key_pem);
}

/* proxy-ssl-*: point the Ingress's policy at a backend TLS profile of the
 * table (an equal one is shared), reading the Secret named by
 * proxy-ssl-secret: ca.crt (trusted CAs), tls.crt and tls.key (client
 * certificate), as ingress-nginx. Nothing set: no profile. false on any
 * problem, with a diagnostic naming the key: the caller drops the Ingress
 * (fail closed). */
static bool resolve_backend_tls(struct ctx *c, json_object *obj, struct annotations *a)
{
	struct route_backend_tls_profile *pr = &a->proxy_ssl;
	const char *key = a->proxy_ssl_secret_key;
	char *sname = NULL;
	bool ok = false;
	if (!a->proxy_ssl_secret) {
		if (pr->verify) {
			diag_add(c, "Ingress", obj, a->proxy_ssl_verify_key, "BadAnnotation",
			         "proxy-ssl-verify is on without proxy-ssl-secret (no ca.crt to "
			         "verify the backend with); the Ingress's routes are dropped");
			return false;
		}
		if (pr->verify_depth == 1 && !pr->protocols && !pr->ciphers)
			return true;
	} else {
		json_object *sec = annotation_ref(c, obj, STORE_SECRET, a->proxy_ssl_secret, key,
		                                  "BadBackendTLSSecret", &sname);
		if (!sec)
			goto out;
		static const char *const names[3] = {"ca.crt", "tls.crt", "tls.key"};
		char **dst[3] = {&pr->ca_pem, &pr->cert_pem, &pr->key_pem};
		for (size_t i = 0; i < 3; i++) {
			int r = secret_value(sec, names[i], dst[i]);
			if (r < 0) {
				diag_add(
				    c, "Ingress", obj, key, "BadBackendTLSSecret",
				    "secret %s: key %s is not base64 text; the Ingress's routes "
				    "are dropped",
				    sname, names[i]);
				goto out;
			}
		}
		if (!pr->ca_pem && !pr->cert_pem && !pr->key_pem) {
			diag_add(c, "Ingress", obj, key, "BadBackendTLSSecret",
			         "secret %s holds none of ca.crt, tls.crt, tls.key; the Ingress's "
			         "routes are dropped",
			         sname);
			goto out;
		}
		if (!pr->cert_pem != !pr->key_pem) {
			diag_add(c, "Ingress", obj, key, "BadBackendTLSSecret",
			         "secret %s has %s without %s; the Ingress's routes are dropped",
			         sname, pr->cert_pem ? "tls.crt" : "tls.key",
			         pr->cert_pem ? "tls.key" : "tls.crt");
			goto out;
		}
		if (pr->verify && !pr->ca_pem) {
			diag_add(
			    c, "Ingress", obj, key, "BadBackendTLSSecret",
			    "secret %s has no ca.crt but proxy-ssl-verify is on; the Ingress's "
			    "routes are dropped",
			    sname);
			goto out;
		}
		pr->name = sname;
		sname = NULL;
	}
	if (!pr->name)
		pr->name = xstrdup("");
	struct route_table *t = c->t;
	for (size_t i = 0; i < t->nbackend_tls; i++) {
		if (same_profile(&t->backend_tls[i], pr)) {
			a->backend_tls_profile = (int)i;
			ok = true;
			goto out;
		}
	}
	/* What the proxy will do with it: a profile it cannot load would make
	 * it refuse the whole table. */
	char field[32], why[400];
	int rc = route_validate_backend_tls_ctx(pr, NULL, field, sizeof(field), why, sizeof(why));
	if (rc == WEIR_ENOMEM)
		abort();
	if (rc != 0) {
		const char *what = strcmp(field, "ca_pem") == 0     ? "ca.crt"
		                   : strcmp(field, "cert_pem") == 0 ? "tls.crt"
		                   : strcmp(field, "key_pem") == 0  ? "tls.key"
		                                                    : field;
		if (what != field)
			diag_add(c, "Ingress", obj, key, "BadBackendTLSSecret",
			         "secret %s: %s: %s; the Ingress's routes are dropped", pr->name,
			         what, why);
		else
			diag_add(c, "Ingress", obj, ANNOTATIONS_NGINX_PREFIX "proxy-ssl-ciphers",
			         "BadAnnotation", "%s; the Ingress's routes are dropped", why);
		goto out;
	}
	t->backend_tls = xrealloc(t->backend_tls, (t->nbackend_tls + 1) * sizeof(*t->backend_tls));
	t->backend_tls[t->nbackend_tls] = *pr;
	memset(pr, 0, sizeof(*pr));
	a->backend_tls_profile = (int)t->nbackend_tls++;
	ok = true;
out:
	free(sname);
	return ok;
}

/* ------------------------------------------------------------ ConfigMap data */

/* The data keys of ConfigMap cm in byte order: borrowed from cm, in an
 * array the caller frees (NULL when there are none); *data gets its data. */
static const char **configmap_sorted_keys(json_object *cm, json_object **data, size_t *n)
{
	const char **keys = NULL;
	*n = 0;
	*data = jget(cm, "data");
	if (*data && json_object_is_type(*data, json_type_object) &&
	    json_object_object_length(*data) > 0) {
		keys = xcalloc((size_t)json_object_object_length(*data), sizeof(*keys));
		json_object_object_foreach(*data, k, v)
		{
			(void)v;
			keys[(*n)++] = k;
		}
		qsort(keys, *n, sizeof(*keys), cmp_strp);
	}
	return keys;
}

/* The string value of data key k, or NULL with the reason in why: not a
 * string, or one that holds a NUL byte. */
static const char *configmap_string(json_object *data, const char *k, char *why, size_t whylen)
{
	json_object *v = jget(data, k);
	const char *val =
	    json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
	if (!val)
		snprintf(why, whylen, "value is not a string");
	else if (strlen(val) != (size_t)json_object_get_string_len(v))
		snprintf(why, whylen, "value holds a NUL byte");
	else
		return val;
	return NULL;
}

/* ------------------------------------------------------------ auth request headers */

/* auth-proxy-set-headers: each data key of the ConfigMap it names is a
 * header of the auth request and its value the header's value, in key
 * order. false with a diagnostic on the annotation key when the ConfigMap
 * is missing or in another namespace, or when a header is one
 * route_validate_auth_set_header refuses (ingress-nginx denies the
 * location then; weir drops the Ingress's routes). */
static bool resolve_auth_headers(struct ctx *c, json_object *obj, struct annotations *a)
{
	struct route_ext_auth *ea = &a->policy.ext_auth;
	const char *key = a->auth_headers_key;
	char *cname = NULL, why[256];
	const char **keys = NULL;
	size_t nkeys = 0, bytes = 0, nsnip = 0;
	struct route_header *snip = NULL;
	bool ok = false;
	json_object *cm = annotation_ref(c, obj, STORE_CONFIGMAP, a->auth_headers, key,
	                                 "BadAuthProxySetHeaders", &cname);
	if (!cm)
		goto out;
	json_object *data = NULL;
	keys = configmap_sorted_keys(cm, &data, &nkeys);
	/* auth-snippet's proxy_set_header entries (already in the list) come
	 * after the ConfigMap's and win on a name. */
	snip = ea->proxy_set_headers;
	nsnip = ea->nproxy_set_headers;
	ea->proxy_set_headers = NULL;
	ea->nproxy_set_headers = 0;
	if (nkeys + nsnip)
		ea->proxy_set_headers = xcalloc(nkeys + nsnip, sizeof(*ea->proxy_set_headers));
	for (size_t i = 0; i < nkeys; i++) {
		char q[96], reason[200];
		const char *val = configmap_string(data, keys[i], reason, sizeof(reason));
		route_validate_quote(keys[i], q, sizeof(q));
		if (val &&
		    route_validate_auth_set_header(keys[i], val, reason, sizeof(reason)) == 0)
			reason[0] = '\0';
		if (reason[0]) {
			snprintf(why, sizeof(why), "key %s: %s", q, reason);
			goto bad;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcasecmp(keys[j], keys[i]) == 0) {
				snprintf(why, sizeof(why),
				         "keys %.64s and %.64s name the same header", keys[j],
				         keys[i]);
				goto bad;
			}
		}
		bool by_snippet = false;
		for (size_t j = 0; j < nsnip; j++)
			by_snippet = by_snippet || strcasecmp(snip[j].name, keys[i]) == 0;
		if (by_snippet)
			continue;
		bytes += strlen(keys[i]) + strlen(val) + 4;
		if (bytes > ROUTE_AUTH_SET_HEADERS_MAX_BYTES) {
			snprintf(why, sizeof(why),
			         "the headers add up to more than %u bytes (the auth request head "
			         "has a size cap)",
			         ROUTE_AUTH_SET_HEADERS_MAX_BYTES);
			goto bad;
		}
		struct route_header *h = &ea->proxy_set_headers[ea->nproxy_set_headers++];
		memset(h, 0, sizeof(*h));
		h->name = xstrdup(keys[i]);
		h->value = xstrdup(val);
	}
	for (size_t j = 0; j < nsnip; j++) {
		bytes += strlen(snip[j].name) + strlen(snip[j].value) + 4;
		ea->proxy_set_headers[ea->nproxy_set_headers++] = snip[j];
		snip[j].name = snip[j].value = NULL;
	}
	if (bytes > ROUTE_AUTH_SET_HEADERS_MAX_BYTES) {
		snprintf(why, sizeof(why),
		         "with auth-snippet the headers add up to more than %u bytes (the auth "
		         "request head has a size cap)",
		         ROUTE_AUTH_SET_HEADERS_MAX_BYTES);
		goto bad;
	}
	ok = true;
	goto out;
bad:
	diag_add(c, "Ingress", obj, key, "BadAuthProxySetHeaders",
	         "ConfigMap %s: %s; the Ingress's routes are dropped", cname, why);
out:
	for (size_t j = 0; j < nsnip; j++) {
		free(snip[j].name);
		free(snip[j].value);
	}
	free(snip);
	free(keys);
	free(cname);
	return ok;
}

/* ------------------------------------------------------------ custom response headers */

/* True when name is one of the comma-separated names of list
 * (case-insensitive, blanks around names ignored). */
static bool in_name_list(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; p && *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		const char *t = e;
		while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		if ((size_t)(t - p) == n && n && strncasecmp(p, name, n) == 0)
			return true;
		p = e;
	}
	return false;
}

/* Headers the proxy writes itself on every response (connection handling
 * and body framing): custom-headers may not set them. */
static bool framing_header(const char *name)
{
	static const char *const names[] = {"Connection", "Keep-Alive",    "Proxy-Connection",
	                                    "TE",         "Trailer",       "Transfer-Encoding",
	                                    "Upgrade",    "Content-Length"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

/* Most bytes custom-headers may add to a response head. */
#define CUSTOM_HEADERS_MAX_BYTES 4096

/* custom-headers: each data key of the ConfigMap it names is a header set
 * on every response of the Ingress's routes (replacing the upstream's of
 * that name), in key order; a header the response-headers annotation also
 * sets keeps that value. As ingress-nginx, every name must be listed in the
 * ConfigMap's global-allowed-response-headers. false with a diagnostic on
 * the annotation key when the ConfigMap is missing or in another namespace,
 * or a header is refused: the caller drops the Ingress. */
static bool resolve_custom_headers(struct ctx *c, json_object *obj, struct annotations *a)
{
	struct route_policy *p = &a->policy;
	const char *key = a->custom_headers_key;
	char *cname = NULL, why[320];
	const char **keys = NULL;
	size_t nkeys = 0, bytes = 0;
	bool ok = false;
	json_object *cm = annotation_ref(c, obj, STORE_CONFIGMAP, a->custom_headers, key,
	                                 "BadCustomHeaders", &cname);
	if (!cm)
		goto out;
	json_object *data = NULL;
	keys = configmap_sorted_keys(cm, &data, &nkeys);
	for (size_t i = 0; i < nkeys; i++) {
		char q[96], reason[200];
		const char *val = configmap_string(data, keys[i], reason, sizeof(reason));
		route_validate_quote(keys[i], q, sizeof(q));
		if (val && route_validate_token(keys[i], reason, sizeof(reason)) == 0 &&
		    route_validate_header_value(val, reason, sizeof(reason)) == 0)
			reason[0] = '\0';
		if (!reason[0] && framing_header(keys[i]))
			snprintf(
			    reason, sizeof(reason),
			    "a hop-by-hop or body framing header, which the proxy sets itself");
		if (!reason[0] && !in_name_list(c->allowed_response_headers, keys[i]))
			snprintf(reason, sizeof(reason),
			         "not listed in the ConfigMap's global-allowed-response-headers");
		if (reason[0]) {
			snprintf(why, sizeof(why), "key %s: %s", q, reason);
			goto bad;
		}
		bytes += strlen(keys[i]) + strlen(val) + 4;
		if (bytes > CUSTOM_HEADERS_MAX_BYTES) {
			snprintf(why, sizeof(why), "the headers add up to more than %u bytes",
			         CUSTOM_HEADERS_MAX_BYTES);
			goto bad;
		}
		bool dup = false;
		for (size_t j = 0; j < p->nresponse_headers && !dup; j++)
			dup = strcasecmp(p->response_headers[j].name, keys[i]) == 0;
		if (dup)
			continue;
		p->response_headers = xrealloc(
		    p->response_headers, (p->nresponse_headers + 1) * sizeof(*p->response_headers));
		struct route_header *h = &p->response_headers[p->nresponse_headers++];
		memset(h, 0, sizeof(*h)); /* expand false: ConfigMap values are sent as written */
		h->name = xstrdup(keys[i]);
		h->value = xstrdup(val);
	}
	ok = true;
	goto out;
bad:
	diag_add(c, "Ingress", obj, key, "BadCustomHeaders",
	         "ConfigMap %s: %s; the Ingress's routes are dropped", cname, why);
out:
	free(keys);
	free(cname);
	return ok;
}

/* fastcgi-params-configmap: each data key of the ConfigMap it names is a
 * FastCGI param sent with every request of the Ingress's routes (replacing
 * the default of that name), in key order; values may name the variables
 * of route_validate_fastcgi_value. false with a diagnostic on the
 * annotation key when the ConfigMap is missing or in another namespace, or
 * a param is refused: the caller drops the Ingress. */
static bool resolve_fastcgi_params(struct ctx *c, json_object *obj, struct annotations *a)
{
	struct route_fastcgi *f = &a->policy.fastcgi;
	const char *key = a->fastcgi_params_key;
	char *cname = NULL, why[360];
	const char **keys = NULL;
	size_t nkeys = 0, bytes = 0;
	bool ok = false;
	json_object *cm = annotation_ref(c, obj, STORE_CONFIGMAP, a->fastcgi_params, key,
	                                 "BadFastCGIParams", &cname);
	if (!cm)
		goto out;
	json_object *data = NULL;
	keys = configmap_sorted_keys(cm, &data, &nkeys);
	if (nkeys)
		f->params = xcalloc(nkeys, sizeof(*f->params));
	for (size_t i = 0; i < nkeys; i++) {
		char q[96], reason[240];
		const char *val = configmap_string(data, keys[i], reason, sizeof(reason));
		route_validate_quote(keys[i], q, sizeof(q));
		if (val && route_validate_fastcgi_name(keys[i], reason, sizeof(reason)) == 0 &&
		    route_validate_fastcgi_value(val, reason, sizeof(reason)) == 0)
			reason[0] = '\0';
		if (reason[0]) {
			snprintf(why, sizeof(why), "key %s: %s", q, reason);
			goto bad;
		}
		bytes += strlen(keys[i]) + strlen(val);
		if (bytes > ROUTE_FASTCGI_PARAMS_MAX) {
			snprintf(why, sizeof(why), "the params add up to more than %u bytes",
			         ROUTE_FASTCGI_PARAMS_MAX);
			goto bad;
		}
		struct route_header *h = &f->params[f->nparams++];
		h->name = xstrdup(keys[i]);
		h->value = xstrdup(val);
	}
	ok = true;
	goto out;
bad:
	diag_add(c, "Ingress", obj, key, "BadFastCGIParams",
	         "ConfigMap %s: %s; the Ingress's routes are dropped", cname, why);
out:
	free(keys);
	free(cname);
	return ok;
}

/* ------------------------------------------------------------ ConfigMap */

/* ingress-nginx ConfigMap keys that restrict access to every route and that
 * weir does not act on yet; a value equal to inert asks for nothing. */
static bool global_unenforced(const char *k, const char *v)
{
	static const struct {
		const char *name;
		const char *inert;
	} keys[] = {
	    {"enable-modsecurity", "false"},
	    {"enable-owasp-modsecurity-crs", "false"},
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(k, keys[i].name) == 0)
			return strcmp(v, keys[i].inert) != 0;
	return false;
}

/* The ConfigMap key named name, as stored in the snapshot (borrowed). */
static const char *data_key(json_object *data, const char *name)
{
	json_object_object_foreach(data, k, v)
	{
		(void)v;
		if (strcmp(k, name) == 0)
			return k;
	}
	return NULL;
}

/* Global forward auth (ConfigMap global-auth-*, as ingress-nginx): parsed
 * with the auth-* annotation rules; applied by add_route to every route of
 * an Ingress without its own auth-url and without enable-global-auth:
 * "false", except the paths in no-auth-locations (a route path equal to
 * one of them or below it: cert-manager's HTTP-01 solver paths lie under
 * the default /.well-known/acme-challenge). A bad value or a
 * global-auth-* key weir does not act on drops those Ingresses instead. */
static void apply_global_auth(struct ctx *c, json_object *cm, json_object *data)
{
	static const char *const supported[] = {"url",
	                                        "method",
	                                        "signin",
	                                        "signin-redirect-param",
	                                        "response-headers",
	                                        "request-redirect",
	                                        "always-set-cookie",
	                                        "cache-key",
	                                        "cache-duration"};
	const char *nal = jstr(data, "no-auth-locations");
	char *list = xstrdup(nal ? nal : "/.well-known/acme-challenge");
	for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		size_t n = strlen(tok);
		while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
			tok[--n] = '\0';
		if (!n)
			continue;
		c->no_auth = xrealloc(c->no_auth, (c->nno_auth + 1) * sizeof(*c->no_auth));
		c->no_auth[c->nno_auth++] = xstrdup(tok);
	}
	free(list);
	const char *url = jstr(data, "global-auth-url");
	if (!url || !*url)
		return;
	json_object *ann = json_object_new_object();
	if (!ann)
		abort();
	json_object_object_foreach(data, k, v)
	{
		if (strncmp(k, "global-auth-", 12) != 0)
			continue;
		bool ok = false;
		for (size_t i = 0; i < sizeof(supported) / sizeof(supported[0]); i++)
			ok = ok || strcmp(k + 12, supported[i]) == 0;
		const char *sv = json_object_get_string(v);
		if (!ok) {
			if (sv && *sv) {
				c->global_auth_ignored = k;
				diag_add(c, "ConfigMap", cm, k, "SecurityNotEnforced",
				         "not enforced by weir yet; Ingresses without "
				         "enable-global-auth: \"false\" are not served");
			}
			continue;
		}
		char *key = xasprintf("%sauth-%s", ANNOTATIONS_NGINX_PREFIX, k + 12);
		json_object_object_add(ann, key, json_object_new_string(sv ? sv : ""));
		free(key);
	}
	struct annotations a;
	struct annotation_issues is = {0};
	if (annotations_parse(ann, 30000, &a, &is))
		abort();
	bool bad = false;
	for (size_t i = 0; i < is.n; i++) {
		char *name =
		    xasprintf("global-%s", is.items[i].key + strlen(ANNOTATIONS_NGINX_PREFIX));
		const char *k = data_key(data, name);
		free(name);
		if (!k)
			continue;
		diag_add(c, "ConfigMap", cm, k, "BadConfig",
		         "%s; Ingresses without enable-global-auth: \"false\" are not served",
		         is.items[i].message);
		if (is.items[i].fatal) {
			c->global_auth_ignored = k;
			bad = true;
		}
	}
	if (!bad && a.policy.ext_auth.url && strchr(a.policy.ext_auth.url, '$')) {
		/* $host is filled in for an Ingress of exact hosts only; global
		 * auth covers every Ingress, wildcards and catch-alls included */
		const char *k = data_key(data, "global-auth-url");
		diag_add(c, "ConfigMap", cm, k ? k : "global-auth-url", "BadConfig",
		         "invalid value: \"%s\": $host is not expanded in global-auth-url (it "
		         "covers wildcard and catch-all hosts too); Ingresses without "
		         "enable-global-auth: \"false\" are not served",
		         url);
		c->global_auth_ignored = k ? k : "global-auth-url";
		bad = true;
	}
	if (!bad && annotations_ext_auth_copy(&c->global_auth, &a.policy.ext_auth))
		abort();
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(ann);
}

/* A ConfigMap default for an Ingress annotation of the same name
 * (proxy-cookie-domain, proxy-cookie-path, proxy-redirect-from/-to, as
 * ingress-nginx): checked by the annotation's own rules; a bad value keeps
 * the default ("off") with BadConfig. */
static void proxy_rw_default(struct ctx *c, json_object *cm, const char *k, const char *v)
{
	char *key = xasprintf("%s%s", ANNOTATIONS_NGINX_PREFIX, k);
	json_object *one = json_object_new_object();
	struct annotations a;
	struct annotation_issues is = {0};
	bool bad = false;
	if (!one)
		abort();
	json_object_object_add(one, key, json_object_new_string(v));
	if (annotations_parse(one, 30000, &a, &is))
		abort();
	for (size_t i = 0; i < is.n && !bad; i++) {
		if (!is.items[i].fatal)
			continue;
		diag_add(c, "ConfigMap", cm, k, "BadConfig", "%s; default kept",
		         is.items[i].message);
		bad = true;
	}
	if (!bad) {
		if (!c->proxy_rw_defaults && !(c->proxy_rw_defaults = json_object_new_object()))
			abort();
		json_object_object_add(c->proxy_rw_defaults, key, json_object_new_string(v));
	}
	annotations_cleanup(&a);
	annotation_issues_cleanup(&is);
	json_object_put(one);
	free(key);
}

/* The annotations of an Ingress with the ConfigMap's proxy_rw_defaults
 * added where the Ingress sets that key under neither prefix: a new object
 * (caller puts it), or NULL when there is nothing to add (use ann). */
static json_object *with_proxy_rw_defaults(const struct ctx *c, json_object *ann)
{
	json_object *out = NULL;
	if (!c->proxy_rw_defaults)
		return NULL;
	json_object_object_foreach(c->proxy_rw_defaults, k, v)
	{
		const char *suffix = k + strlen(ANNOTATIONS_NGINX_PREFIX);
		char *wkey = xasprintf("%s%s", ANNOTATIONS_WEIR_PREFIX, suffix);
		bool set = ann && json_object_is_type(ann, json_type_object) &&
		           (json_object_object_get_ex(ann, k, NULL) ||
		            json_object_object_get_ex(ann, wkey, NULL));
		free(wkey);
		if (set)
			continue;
		if (!out) {
			if (ann && json_object_is_type(ann, json_type_object)) {
				if (json_object_deep_copy(ann, &out, NULL) != 0)
					abort();
			} else if (!(out = json_object_new_object())) {
				abort();
			}
		}
		json_object_object_add(out, k, json_object_get(v));
	}
	return out;
}

/* The boolean setting named by ConfigMap key k (one of those apply_configmap
 * routes here). */
static bool *setting_bool(struct route_settings *s, const char *k)
{
	if (strcmp(k, "use-forwarded-headers") == 0)
		return &s->use_forwarded_headers;
	if (strcmp(k, "compute-full-forwarded-for") == 0)
		return &s->compute_full_forwarded_for;
	if (strcmp(k, "use-proxy-protocol") == 0)
		return &s->use_proxy_protocol;
	if (strcmp(k, "hsts-include-subdomains") == 0)
		return &s->hsts_include_subdomains;
	if (strcmp(k, "hsts-preload") == 0)
		return &s->hsts_preload;
	return &s->hsts;
}

/* An HTTP field name (RFC 9110 token) of at most 64 characters. */
static int parse_header_name(const char *v, char *err, size_t errlen)
{
	size_t n = strlen(v);
	bool ok = n > 0 && n <= 64;
	for (size_t i = 0; ok && i < n; i++)
		ok = isalnum((unsigned char)v[i]) || strchr("!#$%&'*+-.^_`|~", v[i]);
	if (!ok) {
		snprintf(err, errlen, "\"%.64s\" is not a header name", v);
		return WEIR_EINVAL;
	}
	return 0;
}

/* gzip-types, brotli-types: media types separated by white space, or "*", into a new
 * string of lowercase types separated by single spaces (the table's form). */
static int parse_gzip_types(const char *v, char **out, char *err, size_t errlen)
{
	size_t n = strlen(v), o = 0;
	char *t = xcalloc(n + 1, 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
			if (o && t[o - 1] != ' ')
				t[o++] = ' ';
			continue;
		}
		t[o++] = (char)tolower(ch);
	}
	if (o && t[o - 1] == ' ')
		o--;
	t[o] = '\0';
	int rc = route_validate_media_types(t, err, errlen);
	if (rc) {
		free(t);
		return rc;
	}
	*out = t;
	return 0;
}

/* large-client-header-buffers "NUMBER SIZE" (nginx): the request head may
 * take NUMBER buffers of SIZE bytes and no line may be longer than one;
 * weir caps the whole head at their product (*total, max_header_bytes) and
 * each line at SIZE (*line, max_header_line). */
static int parse_header_buffers(const char *v, uint32_t *total, uint32_t *line, char *err,
                                size_t errlen)
{
	uint64_t num;
	int64_t size;
	char numtxt[24], sizetxt[24];
	const char *sp = strchr(v, ' ');
	size_t nlen = sp ? (size_t)(sp - v) : 0;
	if (!sp || nlen == 0 || nlen >= sizeof(numtxt) || strlen(sp + 1) >= sizeof(sizetxt)) {
		snprintf(err, errlen, "\"%.64s\" is not \"NUMBER SIZE\" (as \"4 8k\")", v);
		return WEIR_EINVAL;
	}
	memcpy(numtxt, v, nlen);
	numtxt[nlen] = '\0';
	snprintf(sizetxt, sizeof(sizetxt), "%s", sp + 1);
	int rc = annotations_parse_uint(numtxt, 1024, &num, err, errlen);
	if (rc == 0)
		rc = annotations_parse_size(sizetxt, &size, err, errlen);
	if (rc)
		return rc;
	if (num == 0 || size < 1024 || (uint64_t)size * num > ROUTE_HEAD_MAX_MAX) {
		snprintf(err, errlen, "\"%.64s\": at least 1 buffer of 1k, at most 1m in all", v);
		return WEIR_EINVAL;
	}
	*total = (uint32_t)((uint64_t)size * num);
	*line = (uint32_t)size;
	return 0;
}

/* proxy-real-ip-cidr only means something with use-forwarded-headers or
 * use-proxy-protocol (as in ingress-nginx); then it defaults to 0.0.0.0/0.
 * Without either it is left out of the table. */
static void real_ip_cidr_default(struct route_settings *s)
{
	if (!s->use_forwarded_headers && !s->use_proxy_protocol) {
		free(s->proxy_real_ip_cidr);
		s->proxy_real_ip_cidr = NULL;
		s->nproxy_real_ip_cidr = 0;
		return;
	}
	if (s->nproxy_real_ip_cidr)
		return;
	s->proxy_real_ip_cidr = xcalloc(1, sizeof(*s->proxy_real_ip_cidr));
	if (route_cidr_parse("0.0.0.0/0", s->proxy_real_ip_cidr) != 0)
		abort();
	s->nproxy_real_ip_cidr = 1;
}

static void free_list(char **l, size_t n);

/* block-user-agents / block-referers: comma-separated entries (as
 * ingress-nginx splits them), each trimmed and checked by
 * route_validate_block_pattern; empty entries are skipped. */
static int parse_block_patterns(const char *v, char ***out, size_t *nout, char *err, size_t errlen)
{
	char **list = NULL;
	size_t n = 0;
	for (const char *p = v; *p;) {
		size_t len = strcspn(p, ",");
		const char *b = p, *e = p + len;
		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > b) {
			char *one = xasprintf("%.*s", (int)(e - b), b);
			char why[200];
			if (route_validate_block_pattern(one, why, sizeof(why)) != 0) {
				char *q = escaped(one);
				snprintf(err, errlen, "entry \"%s\": %s", q, why);
				free(q);
				free(one);
				free_list(list, n);
				return WEIR_EINVAL;
			}
			list = xrealloc(list, (n + 1) * sizeof(*list));
			list[n++] = one;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	*out = list;
	*nout = n;
	return 0;
}

static void apply_configmap(struct ctx *c, json_object *cm, uint32_t *drain_default)
{
	struct route_settings *s = &c->t->settings;
	json_object *data = jget(cm, "data");
	if (!data || !json_object_is_type(data, json_type_object))
		return;
	size_t nkeys = 0;
	const char **keys = xcalloc((size_t)json_object_object_length(data) + 1, sizeof(*keys));
	json_object_object_foreach(data, k0, v0)
	{
		(void)v0;
		keys[nkeys++] = k0;
	}
	qsort(keys, nkeys, sizeof(*keys), cmp_strp);
	bool header_buffers_set = false;
	for (size_t i = 0; i < nkeys; i++) {
		const char *k = keys[i];
		const char *v = jstr(data, k);
		char err[256] = "";
		int rc = 0;
		uint32_t ms;
		uint64_t u;
		int64_t size;
		if (!v) {
			diag_add(c, "ConfigMap", cm, k, "BadConfig", "value is not a string");
			continue;
		}
		if (strcmp(k, "trusted-proxies") == 0) {
			struct route_cidr *list;
			size_t n;
			rc = annotations_parse_cidrs(v, &list, &n, err, sizeof(err));
			if (rc == 0) {
				free(s->trusted_proxies);
				s->trusted_proxies = list;
				s->ntrusted_proxies = n;
			}
		} else if (strcmp(k, "max-header-bytes") == 0) {
			rc = annotations_parse_size(v, &size, err, sizeof(err));
			if (rc == 0 && (size < 1024 || size > (int64_t)UINT32_MAX)) {
				snprintf(err, sizeof(err), "%s is out of range (1k..4g)", v);
				rc = WEIR_EINVAL;
			}
			/* large-client-header-buffers, when set too, decides (it is
			 * read first: keys go in sorted order) */
			if (rc == 0 && !header_buffers_set)
				s->max_header_bytes = (uint32_t)size;
		} else if (strcmp(k, "large-client-header-buffers") == 0) {
			uint32_t total, line;
			rc = parse_header_buffers(v, &total, &line, err, sizeof(err));
			if (rc == 0) {
				s->max_header_bytes = total;
				s->max_header_line = line;
				header_buffers_set = true;
			}
		} else if (strcmp(k, "use-gzip") == 0) {
			rc = annotations_parse_bool(v, &s->use_gzip, err, sizeof(err));
		} else if (strcmp(k, "gzip-level") == 0) {
			rc = annotations_parse_uint(v, 9, &u, err, sizeof(err));
			if (rc == 0 && u == 0) {
				snprintf(err, sizeof(err), "must be between 1 and 9");
				rc = WEIR_EINVAL;
			}
			if (rc == 0)
				s->gzip_level = (uint32_t)u;
		} else if (strcmp(k, "gzip-min-length") == 0) {
			rc = annotations_parse_uint(v, UINT32_MAX, &u, err, sizeof(err));
			if (rc == 0)
				s->gzip_min_length = (uint32_t)u;
		} else if (strcmp(k, "gzip-types") == 0) {
			char *types;
			rc = parse_gzip_types(v, &types, err, sizeof(err));
			if (rc == 0) {
				free(s->gzip_types);
				s->gzip_types = types;
			}
		} else if (strcmp(k, "enable-brotli") == 0) {
			rc = annotations_parse_bool(v, &s->enable_brotli, err, sizeof(err));
		} else if (strcmp(k, "brotli-level") == 0) {
			rc = annotations_parse_uint(v, 11, &u, err, sizeof(err));
			if (rc == 0)
				s->brotli_level = (uint32_t)u;
		} else if (strcmp(k, "brotli-min-length") == 0) {
			rc = annotations_parse_uint(v, UINT32_MAX, &u, err, sizeof(err));
			if (rc == 0)
				s->brotli_min_length = (uint32_t)u;
		} else if (strcmp(k, "brotli-types") == 0) {
			char *types;
			rc = parse_gzip_types(v, &types, err, sizeof(err));
			if (rc == 0) {
				free(s->brotli_types);
				s->brotli_types = types;
			}
		} else if (strcmp(k, "proxy-buffer-size") == 0) {
			rc = annotations_parse_head_max(v, &c->upstream_head_max, err, sizeof(err));
			if (rc == 0)
				s->upstream_head_max = c->upstream_head_max;
		} else if (strcmp(k, "proxy-body-size") == 0) {
			rc = annotations_parse_size(v, &c->body_limit, err, sizeof(err));
		} else if (strcmp(k, "proxy-connect-timeout") == 0) {
			rc = annotations_parse_duration_ms(v, &c->connect_timeout_ms, err,
			                                   sizeof(err));
		} else if (strcmp(k, "proxy-read-timeout") == 0) {
			rc =
			    annotations_parse_duration_ms(v, &c->read_timeout_ms, err, sizeof(err));
			if (rc == 0)
				c->read_timeout_set = true;
		} else if (strcmp(k, "proxy-send-timeout") == 0) {
			rc =
			    annotations_parse_duration_ms(v, &c->send_timeout_ms, err, sizeof(err));
		} else if (strcmp(k, "ssl-redirect") == 0) {
			rc = annotations_parse_bool(v, &c->ssl_redirect, err, sizeof(err));
		} else if (strcmp(k, "server-tokens") == 0) {
			rc = annotations_parse_bool(v, &s->server_tokens, err, sizeof(err));
		} else if (strcmp(k, "allow-backend-server-header") == 0) {
			rc = annotations_parse_bool(v, &s->allow_backend_server_header, err,
			                            sizeof(err));
		} else if (strcmp(k, "header-timeout") == 0 ||
		           strcmp(k, "keepalive-timeout") == 0 || strcmp(k, "drain-window") == 0) {
			rc = annotations_parse_duration_ms(v, &ms, err, sizeof(err));
			if (rc == 0 && ms == 0 && strcmp(k, "drain-window") != 0) {
				snprintf(err, sizeof(err), "must be above 0");
				rc = WEIR_EINVAL;
			}
			if (rc == 0 && k[0] == 'h')
				s->header_timeout_ms = ms;
			else if (rc == 0 && k[0] == 'k')
				s->keepalive_timeout_ms = ms;
			else if (rc == 0)
				s->drain_window_ms = *drain_default = ms;
		} else if (strcmp(k, "use-forwarded-headers") == 0 ||
		           strcmp(k, "compute-full-forwarded-for") == 0 ||
		           strcmp(k, "use-proxy-protocol") == 0 || strcmp(k, "hsts") == 0 ||
		           strcmp(k, "hsts-include-subdomains") == 0 ||
		           strcmp(k, "hsts-preload") == 0) {
			bool b;
			rc = annotations_parse_bool(v, &b, err, sizeof(err));
			if (rc == 0)
				*setting_bool(s, k) = b;
		} else if (strcmp(k, "hsts-max-age") == 0) {
			rc = annotations_parse_uint(v, UINT32_MAX, &u, err, sizeof(err));
			if (rc == 0)
				s->hsts_max_age = (uint32_t)u;
		} else if (strcmp(k, "forwarded-for-header") == 0) {
			rc = parse_header_name(v, err, sizeof(err));
			if (rc == 0) {
				free(s->forwarded_for_header);
				s->forwarded_for_header = xstrdup(v);
			}
		} else if (strcmp(k, "proxy-real-ip-cidr") == 0) {
			struct route_cidr *list;
			size_t n;
			rc = annotations_parse_cidrs(v, &list, &n, err, sizeof(err));
			if (rc == 0 && n == 0) {
				free(list);
				snprintf(err, sizeof(err), "no CIDR given");
				rc = WEIR_EINVAL;
			}
			if (rc == 0) {
				free(s->proxy_real_ip_cidr);
				s->proxy_real_ip_cidr = list;
				s->nproxy_real_ip_cidr = n;
			}
		} else if (strcmp(k, "proxy-next-upstream") == 0) {
			rc =
			    annotations_parse_next_upstream(v, &c->next_upstream, err, sizeof(err));
		} else if (strcmp(k, "proxy-next-upstream-tries") == 0) {
			rc = annotations_parse_uint(v, 1000, &u, err, sizeof(err));
			if (rc == 0)
				c->next_upstream_tries = (uint32_t)u;
		} else if (strcmp(k, "proxy-next-upstream-timeout") == 0) {
			rc = annotations_parse_duration_ms(v, &c->next_upstream_timeout_ms, err,
			                                   sizeof(err));
		} else if (strcmp(k, "custom-http-errors") == 0) {
			/* ingress-nginx keeps codes 300..599 here */
			rc = annotations_parse_custom_errors(v, ROUTE_CUSTOM_ERROR_MIN,
			                                     &c->global_errors, err, sizeof(err));
		} else if (strcmp(k, "use-port-in-redirects") == 0) {
			rc = annotations_parse_bool(v, &c->port_in_redirects, err, sizeof(err));
		} else if (strcmp(k, "retry-non-idempotent") == 0) {
			rc = annotations_parse_bool(v, &c->retry_non_idempotent, err, sizeof(err));
		} else if (strcmp(k, "upstream-keepalive") == 0) {
			rc = annotations_parse_uint(v, 65535, &u, err, sizeof(err));
			if (rc == 0)
				s->upstream_keepalive = (uint32_t)u;
		} else if (strcmp(k, "limit-req-status-code") == 0 ||
		           strcmp(k, "limit-conn-status-code") == 0) {
			rc = annotations_parse_uint(v, 599, &u, err, sizeof(err));
			if (rc == 0 && u < 400) {
				snprintf(err, sizeof(err), "%s is not between 400 and 599", v);
				rc = WEIR_EINVAL;
			}
			if (rc == 0 && k[6] == 'r')
				s->limit_req_status = (uint32_t)u;
			else if (rc == 0)
				s->limit_conn_status = (uint32_t)u;
		} else if (strcmp(k, "use-http2") == 0) {
			rc = annotations_parse_bool(v, &s->use_http2, err, sizeof(err));
		} else if (strcmp(k, "http2-cleartext") == 0) {
			rc = annotations_parse_bool(v, &s->http2_cleartext, err, sizeof(err));
		} else if (strcmp(k, "http2-max-concurrent-streams") == 0) {
			rc = annotations_parse_uint(v, 65535, &u, err, sizeof(err));
			if (rc == 0 && u < 1) {
				snprintf(err, sizeof(err), "must be above 0");
				rc = WEIR_EINVAL;
			}
			if (rc == 0)
				s->http2_max_concurrent_streams = (uint32_t)u;
		} else if (strcmp(k, "http2-max-field-size") == 0 ||
		           strcmp(k, "http2-max-header-size") == 0) {
			bool field = k[10] == 'f';
			rc = annotations_parse_size(v, &size, err, sizeof(err));
			if (rc == 0 &&
			    (size < 1024 || size > (int64_t)(field ? ROUTE_HTTP2_FIELD_MAX
			                                           : ROUTE_HTTP2_HEADER_MAX))) {
				snprintf(err, sizeof(err), "%s is out of range (1k..%s)", v,
				         field ? "64k" : "1m");
				rc = WEIR_EINVAL;
			}
			if (rc == 0 && field)
				s->http2_max_field_size = (uint32_t)size;
			else if (rc == 0)
				s->http2_max_header_size = (uint32_t)size;
		} else if (strcmp(k, "max-connections") == 0) {
			rc = annotations_parse_uint(v, 1048576, &u, err, sizeof(err));
			if (rc == 0)
				s->max_connections = (uint32_t)u;
		} else if (strcmp(k, "default-tls-secret") == 0) {
			const char *slash = strchr(v, '/');
			if (!slash || slash == v || !slash[1] || strchr(slash + 1, '/')) {
				snprintf(err, sizeof(err), "\"%s\" is not namespace/name", v);
				rc = WEIR_EINVAL;
			} else {
				char *ns = xasprintf("%.*s", (int)(slash - v), v);
				int idx = resolve_cert(c, "ConfigMap", cm, k, ns, slash + 1);
				free(ns);
				if (idx >= 0)
					c->t->default_cert = idx;
				continue;
			}
		} else if (strcmp(k, "whitelist-source-range") == 0 ||
		           strcmp(k, "allowlist-source-range") == 0 ||
		           strcmp(k, "denylist-source-range") == 0 ||
		           strcmp(k, "block-cidrs") == 0) {
			struct route_cidr *list;
			size_t n;
			rc = annotations_parse_cidrs(v, &list, &n, err, sizeof(err));
			if (rc == 0) {
				struct route_cidr **dst = k[0] == 'b'   ? &s->block_cidrs
				                          : k[0] == 'd' ? &c->global_deny
				                                        : &c->global_allow;
				size_t *ndst = k[0] == 'b'   ? &s->nblock_cidrs
				               : k[0] == 'd' ? &c->nglobal_deny
				                             : &c->nglobal_allow;
				free(*dst);
				*dst = list;
				*ndst = n;
			} else {
				/* It restricts access: a value weir cannot read must
				 * not leave every route open (fail closed). */
				if (!c->global_unenforced) {
					c->global_unenforced = k;
					c->global_bad_value = true;
				}
				diag_add(c, "ConfigMap", cm, k, "SecurityNotEnforced",
				         "invalid value: %s; no Ingress is served (fail closed)",
				         err);
				continue;
			}
		} else if (strcmp(k, "block-user-agents") == 0 ||
		           strcmp(k, "block-referers") == 0) {
			char **list;
			size_t n;
			rc = parse_block_patterns(v, &list, &n, err, sizeof(err));
			if (rc == 0) {
				char ***dst =
				    k[6] == 'u' ? &s->block_user_agents : &s->block_referers;
				size_t *ndst =
				    k[6] == 'u' ? &s->nblock_user_agents : &s->nblock_referers;
				free_list(*dst, *ndst);
				*dst = list;
				*ndst = n;
			} else {
				if (!c->global_unenforced) {
					c->global_unenforced = k;
					c->global_bad_value = true;
				}
				diag_add(c, "ConfigMap", cm, k, "SecurityNotEnforced",
				         "invalid value: %s; no Ingress is served (fail closed)",
				         err);
				continue;
			}
		} else if (strcmp(k, "ssl-protocols") == 0 || strcmp(k, "ssl-ciphers") == 0) {
			bool proto = k[4] == 'p';
			char **dst = proto ? &s->ssl_protocols : &s->ssl_ciphers;
			rc = !*v     ? 0
			     : proto ? route_validate_tls_protocols(v, err, sizeof(err))
			             : route_validate_server_ciphers(v, err, sizeof(err));
			if (rc == 0) {
				free(*dst);
				*dst = *v ? xstrdup(v) : NULL; /* empty: the default */
			} else {
				/* A TLS restriction weir cannot apply as written: fail
				 * closed rather than serve with weaker settings. */
				if (!c->global_unenforced) {
					c->global_unenforced = k;
					c->global_bad_value = true;
				}
				diag_add(c, "ConfigMap", cm, k, "SecurityNotEnforced",
				         "invalid value: %s; no Ingress is served (fail closed)",
				         err);
				continue;
			}
		} else if (strcmp(k, "disable-access-log") == 0 ||
		           strcmp(k, "log-format-escape-json") == 0 ||
		           strcmp(k, "log-format-escape-none") == 0) {
			bool b;
			rc = annotations_parse_bool(v, &b, err, sizeof(err));
			if (rc == 0 && k[0] == 'd')
				s->access_log = !b;
			else if (rc == 0 && strcmp(k, "log-format-escape-none") == 0 && b)
				s->access_log_escape = ROUTE_LOG_ESCAPE_NONE; /* wins over json */
			else if (rc == 0 && b && s->access_log_escape != ROUTE_LOG_ESCAPE_NONE)
				s->access_log_escape = ROUTE_LOG_ESCAPE_JSON;
		} else if (strcmp(k, "log-format-upstream") == 0) {
			rc = log_format_check(v, err, sizeof(err));
			if (rc == 0 && route_validate_text(v, err, sizeof(err)) != 0)
				rc = WEIR_EINVAL;
			if (rc == 0) {
				free(s->access_log_format);
				s->access_log_format = *v ? xstrdup(v) : NULL;
			}
		} else if (strcmp(k, "skip-access-log-urls") == 0) {
			char **list = NULL;
			size_t n = 0;
			for (const char *p = v; *p;) {
				size_t len = strcspn(p, ",");
				const char *b = p, *e = p + len;
				while (b < e && (*b == ' ' || *b == '\t'))
					b++;
				while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
					e--;
				if (e > b) {
					list = xrealloc(list, (n + 1) * sizeof(*list));
					list[n++] = xasprintf("%.*s", (int)(e - b), b);
				}
				p += len + (p[len] == ',');
			}
			for (size_t j = 0; j < n && rc == 0; j++)
				if (route_validate_text(list[j], err, sizeof(err)) != 0)
					rc = WEIR_EINVAL;
			if (rc == 0) {
				free_list(s->access_log_skip, s->naccess_log_skip);
				s->access_log_skip = list;
				s->naccess_log_skip = n;
			} else {
				free_list(list, n);
			}
		} else if (strcmp(k, "proxy-cookie-domain") == 0 ||
		           strcmp(k, "proxy-cookie-path") == 0 ||
		           strcmp(k, "proxy-redirect-from") == 0 ||
		           strcmp(k, "proxy-redirect-to") == 0) {
			proxy_rw_default(c, cm, k, v);
			continue;
		} else if (strcmp(k, "global-allowed-response-headers") == 0) {
			c->allowed_response_headers = v; /* resolve_custom_headers */
			continue;
		} else if (strcmp(k, "log-format") == 0 || strcmp(k, "worker-count") == 0) {
			continue; /* read by the programs themselves, not part of the table */
		} else if (strncmp(k, "global-auth-", 12) == 0 ||
		           strcmp(k, "no-auth-locations") == 0) {
			continue; /* apply_global_auth */
		} else if (global_unenforced(k, v)) {
			if (!c->global_unenforced)
				c->global_unenforced = k;
			diag_add(c, "ConfigMap", cm, k, "SecurityNotEnforced",
			         "restricts access but weir does not enforce it yet; no Ingress "
			         "is served (fail closed)");
			continue;
		} else {
			diag_add(c, "ConfigMap", cm, k, "BadConfig", "unknown setting (ignored)");
			continue;
		}
		if (rc == WEIR_ENOMEM)
			abort();
		if (rc)
			diag_add(c, "ConfigMap", cm, k, "BadConfig",
			         "invalid value: %s; default kept", err);
	}
	free(keys);
	real_ip_cidr_default(s);
	apply_global_auth(c, cm, data);
	const char *from =
	    c->proxy_rw_defaults
	        ? jstr(c->proxy_rw_defaults, ANNOTATIONS_NGINX_PREFIX "proxy-redirect-from")
	        : NULL;
	if (from && strcmp(from, "off") != 0 && strcmp(from, "default") != 0 &&
	    !jstr(c->proxy_rw_defaults, ANNOTATIONS_NGINX_PREFIX "proxy-redirect-to"))
		diag_add(c, "ConfigMap", cm, data_key(data, "proxy-redirect-from"), "BadConfig",
		         "has no effect without a proxy-redirect-to (here or on the Ingress) other "
		         "than \"off\" (as in ingress-nginx)");
}

/* The ConfigMap's proxy-next-upstream* where the Ingress sets none (the
 * annotation wins); retry-non-idempotent adds non_idempotent unless "off". */
/* The ConfigMap's whitelist-source-range / denylist-source-range where the
 * Ingress sets no list of its own (the annotation wins, as ingress-nginx). */
static void apply_access_defaults(const struct ctx *c, struct annotations *a)
{
	struct route_policy *p = &a->policy;
	if (!p->nallow && c->nglobal_allow) {
		p->allow = xcalloc(c->nglobal_allow, sizeof(*p->allow));
		memcpy(p->allow, c->global_allow, c->nglobal_allow * sizeof(*p->allow));
		p->nallow = c->nglobal_allow;
	}
	if (!p->ndeny && c->nglobal_deny) {
		p->deny = xcalloc(c->nglobal_deny, sizeof(*p->deny));
		memcpy(p->deny, c->global_deny, c->nglobal_deny * sizeof(*p->deny));
		p->ndeny = c->nglobal_deny;
	}
}

static void apply_next_upstream_defaults(const struct ctx *c, struct annotations *a)
{
	struct route_policy *p = &a->policy;
	if (!a->next_upstream_set)
		p->next_upstream = c->next_upstream;
	if (!a->next_tries_set)
		p->next_upstream_tries = c->next_upstream_tries;
	if (!a->next_timeout_set)
		p->next_upstream_timeout_ms = c->next_upstream_timeout_ms;
	if (c->retry_non_idempotent && p->next_upstream)
		p->next_upstream |= ROUTE_NEXT_NON_IDEMPOTENT;
}

/* The ConfigMap's proxy-buffer-size where the Ingress sets none. */
static void apply_head_max_default(const struct ctx *c, struct annotations *a)
{
	if (!a->head_max_set)
		a->policy.upstream_head_max = c->upstream_head_max;
}

/* The ConfigMap's proxy-body-size, proxy-*-timeout and ssl-redirect where
 * the Ingress does not set the annotation (the annotation wins, as
 * ingress-nginx). A ConfigMap proxy-read-timeout is also the WebSocket idle
 * timeout of routes without websocket-idle-timeout, as the annotation is
 * (add_route); without it that stays weir's default. */
static void apply_proxy_defaults(const struct ctx *c, struct annotations *a)
{
	struct route_policy *p = &a->policy;
	if (!a->body_limit_set)
		p->body_limit = c->body_limit;
	if (!a->connect_timeout_set)
		p->connect_timeout_ms = c->connect_timeout_ms;
	if (!a->send_timeout_set)
		p->send_timeout_ms = c->send_timeout_ms;
	if (!a->read_timeout_set) {
		p->read_timeout_ms = c->read_timeout_ms;
		if (c->read_timeout_set && !a->ws_idle_set)
			p->ws_idle_timeout_ms = c->read_timeout_ms;
	}
	if (!a->ssl_redirect_set)
		a->ssl_redirect = c->ssl_redirect;
}

/* ------------------------------------------------------------ routes */

/* The policy an Ingress's last route got, and what it depended on
 * (add_route). */
struct policy_memo {
	struct route_policy *policy; /* NULL: none yet */
	size_t ix;                   /* in ctx.policies */
	bool tls, global;
	char *host; /* when auth-url has $host */
};

struct ing {
	json_object *obj;
	/* Sort key (oldest first), borrowed from obj and the snapshot. */
	const char *created, *ns, *name;
	char *source; /* "ns/name" */
	struct annotations ann;
	bool dropped;
	int error_backend; /* custom-http-errors target (error_backend()), -1: none */
	struct policy_memo memo;
};

struct rbuild {
	char *path;  /* as written */
	char *field; /* spec.rules[i].http.paths[j], for diagnostics */
	bool exact;
	int backend;
	int error_backend, backend_tls; /* as struct route's */
	struct ing *ing;
	struct route_policy *policy; /* a reference (policy_share) */
	size_t policy_ix;            /* its index in ctx.policies */
	struct route_canary canary;
	struct ing *canary_ing;
};

struct hbuild {
	char *name;
	bool tls;
	int cert;
	bool regex;
	struct ing *cert_ing;   /* the Ingress whose spec.tls named it */
	const char *secret;     /* its secretName (borrowed from that Ingress) */
	struct ing *auth_ing;   /* the oldest Ingress with auth-tls-secret on the host */
	struct ing *cipher_ing; /* the oldest Ingress with ssl-ciphers on the host */
	size_t n, cap;
	struct rbuild *routes;
};

struct hosts {
	size_t n, cap;
	struct hbuild *items;
	struct strmap index; /* name -> index in items */
};

static struct hbuild *host_get(struct hosts *hs, const char *name, bool create)
{
	int idx = strmap_get(&hs->index, name);
	if (idx >= 0)
		return &hs->items[idx];
	if (!create)
		return NULL;
	if (hs->n == hs->cap) {
		hs->cap = hs->cap ? hs->cap * 2 : 8;
		hs->items = xrealloc(hs->items, hs->cap * sizeof(*hs->items));
	}
	struct hbuild *h = &hs->items[hs->n];
	memset(h, 0, sizeof(*h));
	h->name = xstrdup(name);
	h->cert = -1;
	strmap_put(&hs->index, h->name, (int)hs->n);
	hs->n++;
	return h;
}

/* Lowercased host of a rule (or tls entry) into a new string; NULL and a
 * diagnostic when invalid. */
static char *rule_host(struct ctx *c, struct ing *in, const char *raw, const char *field)
{
	char *h = xstrdup(raw ? raw : "");
	char why[256];
	lower(h);
	if (route_validate_host(h, 0, why, sizeof(why)) != 0) {
		diag_add(c, "Ingress", in->obj, field, "BadRule", "%s", why);
		free(h);
		return NULL;
	}
	return h;
}

static bool path_exact(const char *ptype)
{
	return ptype && strcmp(ptype, "Exact") == 0;
}

static bool path_type_ok(const char *ptype)
{
	return !ptype || strcmp(ptype, "Exact") == 0 || strcmp(ptype, "Prefix") == 0 ||
	       strcmp(ptype, "ImplementationSpecific") == 0;
}

/* *p (caller storage, filled for one route) as a policy routes share: the
 * one an earlier route of this compile holds when both serialize alike,
 * else p moved to the heap. Consumes *p; returns a reference. */
static struct route_policy *policy_share(struct ctx *c, struct route_policy *p, size_t *ix)
{
	char *text;
	size_t len;
	if (route_policy_serialize(p, &text, &len))
		abort();
	int at = strmap_get(&c->policy_at, text);
	if (at >= 0) {
		free(text);
		route_policy_cleanup(p);
		*ix = (size_t)at;
		return route_policy_ref(c->policies[at]);
	}
	struct route_policy *h = xcalloc(1, sizeof(*h));
	*h = *p;
	memset(p, 0, sizeof(*p));
	h->refs = 2; /* the route's and the compile's */
	if (c->npolicies == c->policies_cap) {
		c->policies_cap = c->policies_cap ? 2 * c->policies_cap : 16;
		c->policies = xrealloc(c->policies, c->policies_cap * sizeof(*c->policies));
		c->policy_texts =
		    xrealloc(c->policy_texts, c->policies_cap * sizeof(*c->policy_texts));
		c->policy_ok = xrealloc(c->policy_ok, c->policies_cap * sizeof(*c->policy_ok));
	}
	*ix = c->npolicies;
	c->policies[c->npolicies] = h;
	c->policy_texts[c->npolicies] = text;
	c->policy_ok[c->npolicies] = false;
	strmap_put(&c->policy_at, text, (int)c->npolicies++);
	return h;
}

static void add_route(struct ctx *c, struct hbuild *h, struct ing *in, const char *path, bool exact,
                      int backend, const char *field)
{
	for (size_t i = 0; i < h->n; i++) {
		struct rbuild *r = &h->routes[i];
		if (r->exact != exact || strcmp(r->path, path) != 0)
			continue;
		if (r->ing != in)
			diag_add(c, "Ingress", in->obj, field, "PathConflict",
			         "%s path %s on host \"%s\" is already served by the older Ingress "
			         "%s; this path is ignored",
			         exact ? "Exact" : "Prefix", path, h->name, r->ing->source);
		return;
	}
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 4;
		h->routes = xrealloc(h->routes, h->cap * sizeof(*h->routes));
	}
	struct rbuild *r = &h->routes[h->n++];
	memset(r, 0, sizeof(*r));
	r->path = xstrdup(path);
	r->field = xstrdup(field);
	r->exact = exact;
	r->backend = backend;
	r->ing = in;
	r->canary.backend = -1;
	r->canary.weight_total = 100;
	struct annotations *a = &in->ann;
	/* What the policy below depends on besides the Ingress: the host's TLS,
	 * whether global auth applies (by path), the host when auth-url has
	 * $host. Another route of the Ingress with the same gets the same
	 * policy (serializing it to find its shared copy is most of the cost). */
	bool global = false;
	if (!a->policy.ext_auth.url && a->global_auth && c->global_auth.url) {
		global = true;
		for (size_t i = 0; i < c->nno_auth && global; i++) {
			size_t n = strlen(c->no_auth[i]);
			global =
			    !(strncmp(c->no_auth[i], path, n) == 0 &&
			      (path[n] == '\0' || path[n] == '/' || c->no_auth[i][n - 1] == '/'));
		}
	}
	bool by_host = a->policy.ext_auth.url && strchr(a->policy.ext_auth.url, '$');
	r->error_backend = -1;
	r->backend_tls = a->backend_tls_profile;
	if (a->use_regex || a->policy.rewrite_target)
		h->regex = true;
	struct policy_memo *m = &in->memo;
	if (m->policy && m->tls == h->tls && m->global == global &&
	    (!by_host || strcmp(m->host, h->name) == 0)) {
		r->policy = route_policy_ref(m->policy);
		r->policy_ix = m->ix;
		r->error_backend = route_custom_errors_any(r->policy) ? in->error_backend : -1;
		return;
	}
	struct route_policy pol;
	if (annotations_policy_copy(&pol, &in->ann.policy))
		abort();
	if (pol.ext_auth.url && strchr(pol.ext_auth.url, '$')) {
		/* auth-url with $host: this route's host (validate_ingress made
		 * sure every host of the Ingress is an exact name) */
		char *u = annotations_auth_url_expand(pol.ext_auth.url, h->name);
		if (!u)
			abort();
		free(pol.ext_auth.url);
		pol.ext_auth.url = u;
	}
	if (global && annotations_ext_auth_copy(&pol.ext_auth, &c->global_auth))
		abort();
	if (!a->port_in_redirects_set)
		pol.port_in_redirects = c->port_in_redirects;
	if (!a->custom_errors_set)
		memcpy(pol.custom_errors, c->global_errors.custom_errors,
		       sizeof(pol.custom_errors));
	r->error_backend = route_custom_errors_any(&pol) ? in->error_backend : -1;
	pol.ssl_redirect = (h->tls && a->ssl_redirect) || a->force_ssl_redirect;
	if (!a->ws_idle_set && a->read_timeout_set)
		pol.ws_idle_timeout_ms = a->policy.read_timeout_ms;
	r->policy = policy_share(c, &pol, &r->policy_ix);
	m->policy = r->policy; /* borrowed: the compile holds a reference */
	m->ix = r->policy_ix;
	m->tls = h->tls;
	m->global = global;
	free(m->host);
	m->host = by_host ? xstrdup(h->name) : NULL;
}

/* Hosts an Ingress rule applies to: the rule's host and, for a named host,
 * every server-alias. */
static size_t rule_hosts(struct ctx *c, struct ing *in, json_object *rule, size_t ri, char ***out)
{
	char field[64];
	snprintf(field, sizeof(field), "spec.rules[%zu].host", ri);
	char *h = rule_host(c, in, jstr(rule, "host"), field);
	if (!h)
		return 0;
	size_t n = 1 + (*h ? in->ann.nserver_alias : 0);
	char **list = xcalloc(n, sizeof(*list));
	list[0] = h;
	for (size_t i = 1; i < n; i++)
		list[i] = xstrdup(in->ann.server_alias[i - 1]);
	*out = list;
	return n;
}

static void free_list(char **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

static void ingress_routes(struct ctx *c, struct hosts *hs, struct ing *in)
{
	json_object *rules = jarr(jget(in->obj, "spec"), "rules");
	for (size_t ri = 0; ri < jlen(rules); ri++) {
		json_object *rule = json_object_array_get_idx(rules, ri);
		char **hnames;
		size_t nh = rule_hosts(c, in, rule, ri, &hnames);
		if (!nh)
			continue;
		json_object *paths = jarr(jget(rule, "http"), "paths");
		for (size_t pi = 0; pi < jlen(paths); pi++) {
			json_object *p = json_object_array_get_idx(paths, pi);
			char field[96];
			snprintf(field, sizeof(field), "spec.rules[%zu].http.paths[%zu]", ri, pi);
			const char *ptype = jstr(p, "pathType");
			const char *path = jstr(p, "path");
			if (!path || !*path)
				path = "/";
			if (!path_type_ok(ptype)) {
				diag_add(c, "Ingress", in->obj, field, "BadRule",
				         "unknown pathType %s", ptype);
				continue;
			}
			int be = resolve_backend(c, in->obj, &in->ann, jget(p, "backend"), field);
			if (be < 0)
				continue;
			for (size_t k = 0; k < nh; k++)
				add_route(c, host_get(hs, hnames[k], true), in, path,
				          path_exact(ptype), be, field);
		}
		free_list(hnames, nh);
	}
}

static void ingress_canary(struct ctx *c, struct hosts *hs, struct ing *in)
{
	json_object *rules = jarr(jget(in->obj, "spec"), "rules");
	for (size_t ri = 0; ri < jlen(rules); ri++) {
		json_object *rule = json_object_array_get_idx(rules, ri);
		char field[96];
		snprintf(field, sizeof(field), "spec.rules[%zu].host", ri);
		char *hname = rule_host(c, in, jstr(rule, "host"), field);
		if (!hname)
			continue;
		struct hbuild *h = host_get(hs, hname, false);
		json_object *paths = jarr(jget(rule, "http"), "paths");
		for (size_t pi = 0; pi < jlen(paths); pi++) {
			json_object *p = json_object_array_get_idx(paths, pi);
			snprintf(field, sizeof(field), "spec.rules[%zu].http.paths[%zu]", ri, pi);
			const char *path = jstr(p, "path");
			if (!path || !*path)
				path = "/";
			bool exact = path_exact(jstr(p, "pathType"));
			struct rbuild *target = NULL;
			for (size_t i = 0; h && i < h->n; i++)
				if (h->routes[i].exact == exact &&
				    strcmp(h->routes[i].path, path) == 0)
					target = &h->routes[i];
			if (!target) {
				diag_add(
				    c, "Ingress", in->obj, field, "CanaryNoMatch",
				    "canary path %s on host \"%s\" has no main Ingress path to "
				    "attach to",
				    path, hname);
				continue;
			}
			if (target->canary.backend >= 0) {
				diag_add(c, "Ingress", in->obj, field, "PathConflict",
				         "path %s on host \"%s\" already has the canary %s", path,
				         hname, target->canary_ing->source);
				continue;
			}
			/* The main route's policy applies to canary traffic (as in
			 * ingress-nginx): a canary asking for authentication must not
			 * be reached through a main route without it. */
			if (in->ann.policy.auth.type == ROUTE_AUTH_BASIC &&
			    target->policy->auth.type != ROUTE_AUTH_BASIC) {
				diag_add(
				    c, "Ingress", in->obj, in->ann.auth_type_key, "BadAnnotation",
				    "canary path %s on host \"%s\" asks for basic authentication "
				    "but the main Ingress %s has none, and its policy is the one "
				    "applied; the canary is not attached",
				    path, hname, target->ing->source);
				continue;
			}
			if (in->ann.policy.ext_auth.url && !target->policy->ext_auth.url) {
				diag_add(c, "Ingress", in->obj, "auth-url", "BadAnnotation",
				         "canary path %s on host \"%s\" asks for forward "
				         "authentication but the main Ingress %s has none, and its "
				         "policy is the one applied; the canary is not attached",
				         path, hname, target->ing->source);
				continue;
			}
			int be = resolve_backend(c, in->obj, NULL, jget(p, "backend"), field);
			if (be < 0)
				continue;
			const struct route_canary *cr = &in->ann.canary_rule;
			target->canary.backend = be;
			target->canary.by_header = cr->by_header ? xstrdup(cr->by_header) : NULL;
			target->canary.by_header_value =
			    cr->by_header_value ? xstrdup(cr->by_header_value) : NULL;
			target->canary.by_header_pattern =
			    cr->by_header_pattern ? xstrdup(cr->by_header_pattern) : NULL;
			target->canary.by_cookie = cr->by_cookie ? xstrdup(cr->by_cookie) : NULL;
			target->canary.weight = cr->weight;
			target->canary.weight_total = cr->weight_total;
			target->canary.affinity_behavior = cr->affinity_behavior;
			target->canary_ing = in;
		}
		free(hname);
	}
}

/* The annotation key name as the Ingress writes it (either prefix;
 * borrowed from obj), or NULL when it has none. */
static const char *written_key(json_object *obj, const char *name)
{
	static const char *const prefixes[] = {ANNOTATIONS_NGINX_PREFIX, ANNOTATIONS_WEIR_PREFIX};
	json_object *anns = jget(jget(obj, "metadata"), "annotations");
	if (!anns || !json_object_is_type(anns, json_type_object))
		return NULL;
	json_object_object_foreach(anns, k, v)
	{
		(void)v;
		for (size_t i = 0; i < 2; i++) {
			size_t n = strlen(prefixes[i]);
			if (strncmp(k, prefixes[i], n) == 0 && strcmp(k + n, name) == 0)
				return k;
		}
	}
	return NULL;
}

/* What an ssl-passthrough Ingress asks for that a stream weir never
 * decrypts cannot have (the allow and deny lists it can: they are checked
 * on the connection): the Ingress is dropped (fail closed). */
static void passthrough_unenforced(struct ctx *c, struct ing *in)
{
	static const char *const keys[] = {"limit-rps", "limit-rpm", "limit-connections",
	                                   "ssl-ciphers"};
	const struct route_policy *p = &in->ann.policy;
	bool set[] = {p->limit_rps > 0, p->limit_rpm > 0, p->limit_connections > 0,
	              in->ann.ssl_ciphers != NULL};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (!set[i])
			continue;
		const char *k = written_key(in->obj, keys[i]);
		diag_add(c, "Ingress", in->obj, k ? k : keys[i], "SecurityNotEnforced",
		         "%s cannot be enforced on an ssl-passthrough Ingress (weir never "
		         "decrypts it, so it sees no request and chooses no cipher); this Ingress "
		         "is not served (fail closed)",
		         keys[i]);
		in->dropped = true;
		return;
	}
}

/* ssl-passthrough: each named host of the Ingress is relayed as TCP to the
 * backend of its "/" path (else its first path, else spec.defaultBackend). */
static void ingress_passthrough(struct ctx *c, struct ing *in)
{
	struct route_table *t = c->t;
	json_object *rules = jarr(jget(in->obj, "spec"), "rules");
	for (size_t ri = 0; ri < jlen(rules); ri++) {
		json_object *rule = json_object_array_get_idx(rules, ri);
		char field[96];
		snprintf(field, sizeof(field), "spec.rules[%zu].host", ri);
		char *hname = rule_host(c, in, jstr(rule, "host"), field);
		if (!hname)
			continue;
		if (!*hname || hname[0] == '*') {
			diag_add(c, "Ingress", in->obj, field, "BadRule",
			         "ssl-passthrough needs an exact host name");
			free(hname);
			continue;
		}
		bool taken = false;
		for (size_t i = 0; i < t->npassthrough; i++)
			if (strcmp(t->passthrough[i].host, hname) == 0)
				taken = true;
		if (taken) {
			diag_add(c, "Ingress", in->obj, field, "PathConflict",
			         "ssl-passthrough host %s is already taken by an older Ingress",
			         hname);
			free(hname);
			continue;
		}
		json_object *paths = jarr(jget(rule, "http"), "paths");
		json_object *be = NULL;
		for (size_t pi = 0; pi < jlen(paths); pi++) {
			json_object *p = json_object_array_get_idx(paths, pi);
			const char *path = jstr_or(p, "path", "/");
			if (!be || strcmp(path, "/") == 0)
				be = jget(p, "backend");
			if (strcmp(path, "/") == 0)
				break;
		}
		if (!be)
			be = jget(jget(in->obj, "spec"), "defaultBackend");
		if (!be) {
			diag_add(c, "Ingress", in->obj, field, "BadRule",
			         "ssl-passthrough host %s has no backend", hname);
			free(hname);
			continue;
		}
		int idx = resolve_backend(c, in->obj, NULL, be, field);
		if (idx < 0) {
			free(hname);
			continue;
		}
		t->passthrough =
		    xrealloc(t->passthrough, (t->npassthrough + 1) * sizeof(*t->passthrough));
		struct route_passthrough *pt = &t->passthrough[t->npassthrough];
		memset(pt, 0, sizeof(*pt));
		pt->host = hname;
		pt->backend = idx;
		/* allowlist/denylist-source-range (or the ConfigMap's): checked by
		 * the proxy on the connection's client address */
		const struct route_policy *pol = &in->ann.policy;
		if (pol->nallow) {
			pt->allow = xcalloc(pol->nallow, sizeof(*pt->allow));
			memcpy(pt->allow, pol->allow, pol->nallow * sizeof(*pt->allow));
			pt->nallow = pol->nallow;
		}
		if (pol->ndeny) {
			pt->deny = xcalloc(pol->ndeny, sizeof(*pt->deny));
			memcpy(pt->deny, pol->deny, pol->ndeny * sizeof(*pt->deny));
			pt->ndeny = pol->ndeny;
		}
		t->npassthrough++;
	}
}

/* Whether the first certificate of cert_pem is valid for host name. */
static bool cert_covers(const char *cert_pem, const char *name)
{
	BIO *bio = BIO_new_mem_buf(cert_pem, -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	bool ok = x && X509_check_host(x, name, 0, 0, NULL) == 1;
	X509_free(x);
	BIO_free(bio);
	return ok;
}

static bool only_www_routes(const struct hbuild *h)
{
	for (size_t i = 0; i < h->n; i++)
		if (!h->routes[i].policy->redirect_host)
			return false;
	return true;
}

/* from-to-www-redirect: the www. twin of each named rule host of the
 * Ingress (or the name without www.) becomes a host whose every request is
 * redirected with 308 (ingress-nginx's http-redirect-code default) to the
 * rule host; not when the twin has routes of its own (as ingress-nginx).
 * The twin takes the host's certificate when it covers the twin's name. */
static void ingress_www(struct ctx *c, struct hosts *hs, struct ing *in)
{
	json_object *rules = jarr(jget(in->obj, "spec"), "rules");
	for (size_t ri = 0; ri < jlen(rules); ri++) {
		const char *raw = jstr(json_object_array_get_idx(rules, ri), "host");
		char *to = xstrdup(raw ? raw : "");
		char why[256];
		lower(to);
		struct hbuild *th = host_get(hs, to, false);
		if (!*to || to[0] == '*' || !th || !th->n ||
		    route_validate_host(to, 0, why, sizeof(why)) != 0) {
			free(to);
			continue;
		}
		char *from =
		    strncmp(to, "www.", 4) == 0 ? xstrdup(to + 4) : xasprintf("www.%s", to);
		struct hbuild *fh = host_get(hs, from, false);
		if (route_validate_host(from, 0, why, sizeof(why)) != 0 || (fh && fh->n)) {
			if (fh && fh->n && !only_www_routes(fh))
				diag_add(c, "Ingress", in->obj, "from-to-www-redirect",
				         "RedirectSkipped",
				         "host %s has routes of its own; no redirect from it to %s",
				         from, to);
			free(from);
			free(to);
			continue;
		}
		fh = host_get(hs, from, true);
		th = host_get(hs, to, false); /* host_get may have moved the array */
		if (fh->n == fh->cap) {
			fh->cap = fh->cap ? fh->cap * 2 : 4;
			fh->routes = xrealloc(fh->routes, fh->cap * sizeof(*fh->routes));
		}
		struct rbuild *r = &fh->routes[fh->n++];
		memset(r, 0, sizeof(*r));
		r->path = xstrdup("/");
		r->field = xstrdup("from-to-www-redirect");
		r->backend = -1;
		r->ing = in;
		r->canary.backend = -1;
		r->canary.weight_total = 100;
		r->error_backend = -1;
		r->backend_tls = -1;
		struct route_policy pol;
		route_policy_init(&pol);
		if (!pol.cookie.name || !pol.cors.allow_origin)
			abort();
		pol.request_buffering = true; /* as every compiled route */
		pol.redirect_code = 308;
		pol.redirect_host = xstrdup(to);
		pol.port_in_redirects = in->ann.port_in_redirects_set
		                            ? in->ann.policy.port_in_redirects
		                            : c->port_in_redirects;
		r->policy = policy_share(c, &pol, &r->policy_ix);
		if (th->tls && !fh->tls && th->cert >= 0) {
			if (cert_covers(c->t->certs[th->cert].cert_pem, from)) {
				fh->tls = true;
				fh->cert = th->cert;
				fh->cert_ing = th->cert_ing;
				fh->secret = th->secret;
			} else {
				diag_add(
				    c, "Ingress", in->obj, "from-to-www-redirect",
				    "CertificateMismatch",
				    "the certificate of %s does not cover %s: HTTPS requests for "
				    "%s get the default certificate",
				    to, from, from);
			}
		}
		free(from);
		free(to);
	}
}

/* spec.tls of one Ingress: the first (oldest) Ingress naming a host decides
 * its certificate. */
static void ingress_tls(struct ctx *c, struct hosts *hs, struct ing *in)
{
	json_object *tls = jarr(jget(in->obj, "spec"), "tls");
	for (size_t ti = 0; ti < jlen(tls); ti++) {
		json_object *e = json_object_array_get_idx(tls, ti);
		const char *secret = jstr(e, "secretName");
		json_object *hosts = jarr(e, "hosts");
		char field[64];
		snprintf(field, sizeof(field), "spec.tls[%zu]", ti);
		int cert = -2; /* not looked up yet */
		for (size_t hi = 0; hi < jlen(hosts); hi++) {
			const char *raw =
			    json_object_get_string(json_object_array_get_idx(hosts, hi));
			char *hname = rule_host(c, in, raw, field);
			if (!hname)
				continue;
			struct hbuild *h = host_get(hs, hname, true);
			free(hname);
			if (h->tls) {
				if (h->cert_ing != in && secret && h->secret &&
				    (strcmp(secret, h->secret) != 0 ||
				     strcmp(meta_ns(in->obj), meta_ns(h->cert_ing->obj)) != 0))
					diag_add(
					    c, "Ingress", in->obj, field, "TLSConflict",
					    "host %s already takes its certificate from secret "
					    "%s/%s of the older Ingress %s; secret %s ignored",
					    h->name, meta_ns(h->cert_ing->obj), h->secret,
					    h->cert_ing->source, secret);
				continue;
			}
			h->tls = true;
			h->cert_ing = in;
			h->secret = secret;
			if (cert == -2)
				cert = secret && *secret
				           ? resolve_cert(c, "Ingress", in->obj, field,
				                          meta_ns(in->obj), secret)
				           : -1;
			h->cert = cert;
		}
	}
}

static bool same_client_auth(const struct route_client_auth *a, const struct route_client_auth *b)
{
	return a->ca == b->ca && a->verify == b->verify && a->verify_depth == b->verify_depth &&
	       a->pass_certificate == b->pass_certificate &&
	       same_str(a->error_page, b->error_page) && same_str(a->match_cn, b->match_cn);
}

/* The hosts of an Ingress's rules (server aliases included), lowercased;
 * invalid names are left out silently (the routes pass reports them). */
static size_t ingress_hosts(struct ing *in, char ***out)
{
	json_object *rules = jarr(jget(in->obj, "spec"), "rules");
	size_t n = 0;
	char **list = NULL;
	for (size_t ri = 0; ri < jlen(rules); ri++) {
		const char *raw = jstr(json_object_array_get_idx(rules, ri), "host");
		char *h = xstrdup(raw ? raw : "");
		char why[256];
		lower(h);
		if (route_validate_host(h, 0, why, sizeof(why)) != 0) {
			free(h);
			continue;
		}
		size_t k = 1 + (*h ? in->ann.nserver_alias : 0);
		list = xrealloc(list, (n + k) * sizeof(*list));
		list[n++] = h;
		for (size_t i = 1; i < k; i++)
			list[n++] = xstrdup(in->ann.server_alias[i - 1]);
	}
	*out = list;
	return n;
}

/* auth-tls is a server-level setting in ingress-nginx: one per host, and it
 * covers every route of the host. The oldest Ingress with auth-tls-secret on
 * a host sets it; a younger one asking for different settings on any of its
 * hosts is dropped whole (so no host keeps half of it). */
static void ingress_client_auth(struct ctx *c, struct hosts *hs, struct ing *in)
{
	if (!in->ann.tls_secret)
		return;
	char **names;
	size_t n = ingress_hosts(in, &names);
	for (size_t i = 0; i < n; i++) {
		struct hbuild *h = host_get(hs, names[i], true);
		if (h->auth_ing && h->auth_ing != in &&
		    !same_client_auth(&h->auth_ing->ann.tls_auth, &in->ann.tls_auth)) {
			diag_add(c, "Ingress", in->obj, in->ann.tls_secret_key, "AuthTLSConflict",
			         "host \"%s\" already takes its client certificate settings "
			         "(auth-tls-*) from the older Ingress %s and these differ; the "
			         "Ingress's routes are dropped",
			         h->name, h->auth_ing->source);
			in->dropped = true;
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct hbuild *h = host_get(hs, names[i], false);
		if (!h->auth_ing)
			h->auth_ing = in;
	}
out:
	free_list(names, n);
}

/* ssl-ciphers is server level too: the oldest Ingress that sets it on a
 * host decides; a younger one asking for another list on any of its hosts
 * is dropped whole (it asked for a TLS setting it cannot have). */
static void ingress_ssl_ciphers(struct ctx *c, struct hosts *hs, struct ing *in)
{
	if (!in->ann.ssl_ciphers)
		return;
	char **names;
	size_t n = ingress_hosts(in, &names);
	for (size_t i = 0; i < n; i++) {
		struct hbuild *h = host_get(hs, names[i], true);
		if (h->cipher_ing && h->cipher_ing != in &&
		    strcmp(h->cipher_ing->ann.ssl_ciphers, in->ann.ssl_ciphers) != 0) {
			diag_add(
			    c, "Ingress", in->obj, in->ann.ssl_ciphers_key, "SSLCiphersConflict",
			    "host \"%s\" already takes its ssl-ciphers from the older Ingress %s "
			    "and these differ; the Ingress's routes are dropped",
			    h->name, h->cipher_ing->source);
			in->dropped = true;
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct hbuild *h = host_get(hs, names[i], false);
		if (!h->cipher_ing)
			h->cipher_ing = in;
	}
out:
	free_list(names, n);
}

/* What every route of the Ingress will carry from its metadata and
 * annotations (source, policy, canary rule), by the rules the proxy loads
 * the table with. The annotation handlers already check each value with
 * the same rules; this catches what only their combination could break.
 * A failure drops the Ingress, as a bad annotation does. */
static void validate_ingress(struct ctx *c, struct ing *in)
{
	/* auth-url with $host: the auth server is named after the request's
	 * host, which only an exact host name fixes; under a wildcard or the
	 * catch-all the client would choose where the auth request goes. */
	const char *aurl = in->ann.policy.ext_auth.url;
	if (aurl && strchr(aurl, '$')) {
		json_object *rules = jarr(jget(in->obj, "spec"), "rules");
		bool ok = true;
		for (size_t ri = 0; ri < jlen(rules); ri++) {
			const char *hname = jstr(json_object_array_get_idx(rules, ri), "host");
			if (!hname || !hname[0] || hname[0] == '*')
				ok = false;
		}
		if (!jlen(rules) || jget(jget(in->obj, "spec"), "defaultBackend"))
			ok = false;
		for (size_t i = 0; ok && i < in->ann.nserver_alias; i++)
			if (in->ann.server_alias[i][0] == '*')
				ok = false;
		if (!ok) {
			const char *k = written_key(in->obj, "auth-url");
			diag_add(
			    c, "Ingress", in->obj, k ? k : "auth-url", "BadAnnotation",
			    "auth-url uses $host, which names the auth server after the "
			    "request's host: only an Ingress whose every rule has an exact host "
			    "(no wildcard, no catch-all, no spec.defaultBackend) may use it; the "
			    "Ingress's routes are dropped");
			in->dropped = true;
			return;
		}
	}
	char field[200], why[256];
	if (route_validate_text(in->source, why, sizeof(why)) != 0) {
		diag_add(c, "Ingress", in->obj, "metadata.name", "BadRule",
		         "%s; the Ingress's routes are dropped", why);
		in->dropped = true;
		return;
	}
	/* A $host of auth-url is filled in per route (add_route): check the
	 * policy with a host name in its place. */
	char *url_as_written = in->ann.policy.ext_auth.url, *probe = NULL;
	if (url_as_written && strchr(url_as_written, '$')) {
		probe = annotations_auth_url_expand(url_as_written, "host.example");
		if (!probe)
			abort();
		in->ann.policy.ext_auth.url = probe;
	}
	int bad = route_validate_policy(&in->ann.policy, field, sizeof(field), why, sizeof(why));
	in->ann.policy.ext_auth.url = url_as_written;
	free(probe);
	if (bad != 0 || route_validate_canary(&in->ann.canary_rule, field, sizeof(field), why,
	                                      sizeof(why)) != 0) {
		diag_add(c, "Ingress", in->obj, "metadata.annotations", "BadAnnotation",
		         "the annotations give %s: %s; the Ingress's routes are dropped", field,
		         why);
		in->dropped = true;
	}
}

static int cmp_route(const void *a, const void *b)
{
	const struct rbuild *x = a, *y = b;
	size_t lx = strlen(x->path), ly = strlen(y->path);
	if (lx != ly)
		return lx > ly ? -1 : 1;
	if (x->exact != y->exact)
		return x->exact ? -1 : 1;
	return strcmp(x->path, y->path);
}

/* Sort, convert to regex when the host is in regex mode, validate, and move
 * into the table host. */
static void finish_host(struct ctx *c, struct hbuild *h, struct route_host *out)
{
	qsort(h->routes, h->n, sizeof(*h->routes), cmp_route);
	out->name = h->name;
	h->name = NULL;
	out->cert = h->cert;
	route_client_auth_init(&out->client_auth);
	const struct route_client_auth *ca = h->auth_ing ? &h->auth_ing->ann.tls_auth : NULL;
	if (ca && ca->ca >= 0 && ca->verify != ROUTE_VERIFY_OFF) {
		out->client_auth = *ca;
		out->client_auth.error_page = ca->error_page ? xstrdup(ca->error_page) : NULL;
		out->client_auth.match_cn = ca->match_cn ? xstrdup(ca->match_cn) : NULL;
	}
	out->ssl_ciphers = h->cipher_ing && !h->cipher_ing->dropped
	                       ? xstrdup(h->cipher_ing->ann.ssl_ciphers)
	                       : NULL;
	out->routes = xcalloc(h->n, sizeof(*out->routes));
	out->nroutes = 0;
	for (size_t i = 0; i < h->n; i++) {
		struct rbuild *r = &h->routes[i];
		char *path;
		char field[200], why[256];
		struct route cand = {.backend = r->backend, .source = r->ing->source};
		if (h->regex) {
			path = xasprintf("^%s%s", r->path, r->exact ? "$" : "");
			cand.match = ROUTE_MATCH_REGEX;
		} else {
			path = xstrdup(r->path);
			cand.match = r->exact ? ROUTE_MATCH_EXACT : ROUTE_MATCH_PREFIX;
		}
		/* The rules the proxy loads the table by (route_validate_route,
		 * regex compiled): a route that fails them is dropped here, never
		 * published. */
		cand.path = path;
		cand.policy = r->policy;
		cand.canary = r->canary;
		/* a policy is checked once, with the first route that has it */
		bool policy_ok = c->policy_ok[r->policy_ix];
		int bad = policy_ok ? route_validate_route_but_policy(
		                          &cand, false, field, sizeof(field), why, sizeof(why))
		                    : route_validate_route(&cand, false, field, sizeof(field), why,
		                                           sizeof(why));
		if (!bad || strncmp(field, "canary.", 7) == 0) /* checked after the policy */
			c->policy_ok[r->policy_ix] = true;
		if (bad) {
			if (strcmp(field, "path") != 0)
				diag_add(c, "Ingress", r->ing->obj, r->field, "BadRule",
				         "route %s: %s; route dropped", field, why);
			else if (h->regex)
				diag_add(c, "Ingress", r->ing->obj, r->field, "BadRegex",
				         "host \"%s\" is in regex mode: path %s: %s; route dropped",
				         out->name, path, why);
			else
				diag_add(c, "Ingress", r->ing->obj, r->field, "BadRule",
				         "path %s; route dropped", why);
			free(path);
			goto drop;
		}
		enum route_match match = cand.match;
		struct route *rt = &out->routes[out->nroutes++];
		rt->path = path;
		rt->match = match;
		rt->backend = r->backend;
		rt->error_backend = r->error_backend;
		rt->backend_tls = r->backend_tls;
		rt->source = xstrdup(r->ing->source);
		rt->policy = r->policy;
		rt->canary = r->canary;
		free(r->path);
		free(r->field);
		continue;
	drop:
		route_policy_unref(r->policy);
		free(r->canary.by_header);
		free(r->canary.by_header_value);
		free(r->canary.by_header_pattern);
		free(r->canary.by_cookie);
		free(r->path);
		free(r->field);
	}
	free(h->routes);
	h->routes = NULL;
	h->n = 0;
}

static int cmp_host(const void *a, const void *b)
{
	return strcmp(((const struct route_host *)a)->name, ((const struct route_host *)b)->name);
}

static int cmp_pass(const void *a, const void *b)
{
	return strcmp(((const struct route_passthrough *)a)->host,
	              ((const struct route_passthrough *)b)->host);
}

struct named {
	const char *name;
	size_t idx;
};

static int cmp_named(const void *a, const void *b)
{
	return strcmp(((const struct named *)a)->name, ((const struct named *)b)->name);
}

static const char *backend_name_at(const struct route_table *t, size_t i)
{
	return t->backends[i].name;
}

static const char *cert_name_at(const struct route_table *t, size_t i)
{
	return t->certs[i].name;
}

/* Reorder the indexes order[0..k) by the (unique) names they point at. */
static void sort_by_name(size_t *order, size_t k,
                         const char *(*name_at)(const struct route_table *, size_t),
                         const struct route_table *t)
{
	if (k < 2)
		return;
	struct named *v = xcalloc(k, sizeof(*v));
	for (size_t i = 0; i < k; i++)
		v[i] = (struct named){name_at(t, order[i]), order[i]};
	qsort(v, k, sizeof(*v), cmp_named);
	for (size_t i = 0; i < k; i++)
		order[i] = v[i].idx;
	free(v);
}

/* Drop backends and certs nothing refers to; order the rest by name. */
/* sort_by_name where the entries of order below index nsorted are already
 * in name order (and order lists indexes ascending): sort the rest and
 * merge. */
static void sort_by_name_tail(size_t *order, size_t k,
                              const char *(*name_at)(const struct route_table *, size_t),
                              const struct route_table *t, size_t nsorted)
{
	size_t a = 0;
	while (a < k && order[a] < nsorted)
		a++;
	sort_by_name(order + a, k - a, name_at, t);
	if (a == 0 || a == k)
		return;
	size_t *m = xcalloc(k, sizeof(*m)), i = 0, j = a, o = 0;
	while (i < a || j < k) {
		if (j == k || (i < a && strcmp(name_at(t, order[i]), name_at(t, order[j])) <= 0))
			m[o++] = order[i++];
		else
			m[o++] = order[j++];
	}
	memcpy(order, m, k * sizeof(*m));
	free(m);
}

/* Drop what no host uses and sort backends and certificates by name; the
 * first bsorted backends and csorted certificates are known to be in name
 * order already (0: sort all). */
static void compact_sorted(struct route_table *t, size_t bsorted, size_t csorted);

static void compact(struct route_table *t)
{
	compact_sorted(t, 0, 0);
}

static void compact_sorted(struct route_table *t, size_t bsorted, size_t csorted)
{
	int *bmap = xcalloc(t->nbackends, sizeof(int));
	bool *bused = xcalloc(t->nbackends, sizeof(bool));
	for (size_t i = 0; i < t->nhosts; i++)
		for (size_t j = 0; j < t->hosts[i].nroutes; j++) {
			struct route *r = &t->hosts[i].routes[j];
			if (r->backend >= 0)
				bused[r->backend] = true;
			if (r->canary.backend >= 0)
				bused[r->canary.backend] = true;
			if (r->error_backend >= 0)
				bused[r->error_backend] = true;
		}
	for (size_t i = 0; i < t->npassthrough; i++)
		bused[t->passthrough[i].backend] = true;
	if (t->default_backend >= 0)
		bused[t->default_backend] = true;
	/* order: indexes sorted by name */
	size_t *order = xcalloc(t->nbackends, sizeof(size_t));
	size_t k = 0;
	for (size_t i = 0; i < t->nbackends; i++)
		if (bused[i])
			order[k++] = i;
	sort_by_name_tail(order, k, backend_name_at, t, bsorted);
	struct route_backend *nb = xcalloc(k, sizeof(*nb));
	for (size_t i = 0; i < k; i++) {
		nb[i] = t->backends[order[i]];
		bmap[order[i]] = (int)i;
	}
	for (size_t i = 0; i < t->nbackends; i++) {
		if (bused[i])
			continue;
		for (size_t e = 0; e < t->backends[i].nendpoints; e++)
			free(t->backends[i].endpoints[e].address);
		free(t->backends[i].endpoints);
		free(t->backends[i].external_name);
		free(t->backends[i].name);
	}
	free(t->backends);
	t->backends = nb;
	t->nbackends = k;
	for (size_t i = 0; i < t->nhosts; i++)
		for (size_t j = 0; j < t->hosts[i].nroutes; j++) {
			struct route *r = &t->hosts[i].routes[j];
			if (r->backend >= 0)
				r->backend = bmap[r->backend];
			if (r->canary.backend >= 0)
				r->canary.backend = bmap[r->canary.backend];
			if (r->error_backend >= 0)
				r->error_backend = bmap[r->error_backend];
		}
	for (size_t i = 0; i < t->npassthrough; i++)
		t->passthrough[i].backend = bmap[t->passthrough[i].backend];
	if (t->default_backend >= 0)
		t->default_backend = bmap[t->default_backend];
	free(bmap);
	free(bused);
	free(order);

	/* certs */
	int *cmap = xcalloc(t->ncerts, sizeof(int));
	bool *cused = xcalloc(t->ncerts, sizeof(bool));
	for (size_t i = 0; i < t->nhosts; i++)
		if (t->hosts[i].cert >= 0)
			cused[t->hosts[i].cert] = true;
	if (t->default_cert >= 0)
		cused[t->default_cert] = true;
	order = xcalloc(t->ncerts, sizeof(size_t));
	k = 0;
	for (size_t i = 0; i < t->ncerts; i++)
		if (cused[i])
			order[k++] = i;
	sort_by_name_tail(order, k, cert_name_at, t, csorted);
	struct route_cert *nc = xcalloc(k, sizeof(*nc));
	for (size_t i = 0; i < k; i++) {
		nc[i] = t->certs[order[i]];
		cmap[order[i]] = (int)i;
	}
	for (size_t i = 0; i < t->ncerts; i++) {
		if (cused[i])
			continue;
		free(t->certs[i].name);
		free(t->certs[i].cert_pem);
		free(t->certs[i].key_pem);
	}
	free(t->certs);
	t->certs = nc;
	t->ncerts = k;
	for (size_t i = 0; i < t->nhosts; i++)
		if (t->hosts[i].cert >= 0)
			t->hosts[i].cert = cmap[t->hosts[i].cert];
	if (t->default_cert >= 0)
		t->default_cert = cmap[t->default_cert];

	/* CAs: the ones a host still names, in the order they were read. */
	int *camap = xcalloc(t->ncas, sizeof(int));
	size_t nca = 0;
	for (size_t i = 0; i < t->ncas; i++)
		camap[i] = -1;
	for (size_t i = 0; i < t->nhosts; i++)
		if (t->hosts[i].client_auth.ca >= 0)
			camap[t->hosts[i].client_auth.ca] = 0;
	for (size_t i = 0; i < t->ncas; i++) {
		if (camap[i] < 0) {
			free(t->cas[i].name);
			free(t->cas[i].ca_pem);
			free(t->cas[i].crl_pem);
			continue;
		}
		camap[i] = (int)nca;
		t->cas[nca++] = t->cas[i];
	}
	t->ncas = nca;
	if (!nca) {
		free(t->cas);
		t->cas = NULL;
	}
	for (size_t i = 0; i < t->nhosts; i++)
		if (t->hosts[i].client_auth.ca >= 0)
			t->hosts[i].client_auth.ca = camap[t->hosts[i].client_auth.ca];
	free(camap);
	free(cmap);
	free(cused);
	free(order);

	/* backend TLS profiles: keep the used ones, in first-use order */
	int *pmap = xcalloc(t->nbackend_tls, sizeof(int));
	bool *pused = xcalloc(t->nbackend_tls, sizeof(bool));
	for (size_t i = 0; i < t->nhosts; i++)
		for (size_t j = 0; j < t->hosts[i].nroutes; j++)
			if (t->hosts[i].routes[j].backend_tls >= 0)
				pused[t->hosts[i].routes[j].backend_tls] = true;
	k = 0;
	for (size_t i = 0; i < t->nbackend_tls; i++) {
		if (pused[i]) {
			pmap[i] = (int)k;
			t->backend_tls[k++] = t->backend_tls[i];
		} else {
			route_backend_tls_profile_cleanup(&t->backend_tls[i]);
		}
	}
	t->nbackend_tls = k;
	if (k == 0) {
		free(t->backend_tls);
		t->backend_tls = NULL;
	}
	for (size_t i = 0; i < t->nhosts; i++)
		for (size_t j = 0; j < t->hosts[i].nroutes; j++) {
			int *pi = &t->hosts[i].routes[j].backend_tls;
			if (*pi >= 0)
				*pi = pmap[*pi];
		}
	free(pmap);
	free(pused);
}

/* Oldest first (metadata.creationTimestamp, RFC 3339 compares as text),
 * then namespace, then name. */
static int cmp_ing(const void *a, const void *b)
{
	const struct ing *x = a, *y = b;
	int r = strcmp(x->created, y->created);
	if (r)
		return r;
	r = strcmp(x->ns, y->ns);
	return r ? r : strcmp(x->name, y->name);
}

struct diag_ref {
	struct diag d;
	size_t seq;
};

static int cmp_diag(const void *a, const void *b)
{
	const struct diag_ref *x = a, *y = b;
	int r = strcmp(x->d.kind, y->d.kind);
	if (!r)
		r = strcmp(x->d.ns, y->d.ns);
	if (!r)
		r = strcmp(x->d.name, y->d.name);
	if (!r)
		r = x->seq < y->seq ? -1 : x->seq > y->seq;
	return r;
}

/* Stable sort of the diagnostics by kind, namespace, name (insertion order
 * otherwise kept). */
static void sort_diags(struct diag_list *d)
{
	if (d->n < 2)
		return;
	struct diag_ref *v = xcalloc(d->n, sizeof(*v));
	for (size_t i = 0; i < d->n; i++)
		v[i] = (struct diag_ref){d->items[i], i};
	qsort(v, d->n, sizeof(*v), cmp_diag);
	for (size_t i = 0; i < d->n; i++)
		d->items[i] = v[i].d;
	free(v);
}

/* ------------------------------------------------------------ mentions */

static void push_host(char ***v, size_t *n, char *h /* takes */)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = h;
}

/* Every host name an Ingress's output can touch (a superset): its rule hosts
 * (invalid ones too, lowercased), their server-alias names and www twins
 * (with from-to-www-redirect), its TLS hosts. Sorted, unique. *pinned: it
 * takes part in something table-wide (spec.defaultBackend, a client CA, a
 * backend TLS profile), so a change to it needs a full compile. */
static void mentions_of(json_object *obj, const struct annotations *a, char ***out, size_t *nout,
                        bool *pinned)
{
	char **v = NULL;
	size_t n = 0;
	json_object *spec = jget(obj, "spec");
	json_object *rules = jarr(spec, "rules");
	for (size_t ri = 0; ri < jlen(rules); ri++) {
		const char *raw = jstr(json_object_array_get_idx(rules, ri), "host");
		char *h = xstrdup(raw ? raw : "");
		lower(h);
		if (*h) {
			for (size_t i = 0; i < a->nserver_alias; i++)
				push_host(&v, &n, xstrdup(a->server_alias[i]));
			if (a->from_to_www)
				push_host(&v, &n,
				          strncmp(h, "www.", 4) == 0 ? xstrdup(h + 4)
				                                     : xasprintf("www.%s", h));
		}
		push_host(&v, &n, h);
	}
	json_object *tls = jarr(spec, "tls");
	for (size_t ti = 0; ti < jlen(tls); ti++) {
		json_object *hosts = jarr(json_object_array_get_idx(tls, ti), "hosts");
		for (size_t hi = 0; hi < jlen(hosts); hi++) {
			const char *raw =
			    json_object_get_string(json_object_array_get_idx(hosts, hi));
			char *h = xstrdup(raw ? raw : "");
			lower(h);
			push_host(&v, &n, h);
		}
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_strp);
	size_t u = 0;
	for (size_t i = 0; i < n; i++) {
		if (u && strcmp(v[u - 1], v[i]) == 0) {
			free(v[i]);
			continue;
		}
		v[u++] = v[i];
	}
	*out = v;
	*nout = u;
	*pinned = jget(spec, "defaultBackend") || a->tls_secret || a->proxy_ssl_secret;
}

int compile_ingress_mentions(const struct snapshot *snap, const struct compile_options *o,
                             json_object *obj, char ***hosts, size_t *n, bool *pinned)
{
	*hosts = NULL;
	*n = 0;
	*pinned = false;
	if (!class_matches(obj, our_class(snap, o), o))
		return 1;
	struct annotations a;
	struct annotation_issues issues = {0};
	if (annotations_parse(jget(jget(obj, "metadata"), "annotations"), 0, &a, &issues))
		abort();
	annotation_issues_cleanup(&issues);
	mentions_of(obj, &a, hosts, n, pinned);
	annotations_cleanup(&a);
	return 0;
}

/* Sort v[0..n) of size sz whose first nsorted are in order: the tail is
 * sorted and merged in. */
static void sort_tail(void *v, size_t n, size_t sz, size_t nsorted,
                      int (*cmp)(const void *, const void *))
{
	if (nsorted > n)
		nsorted = n;
	if (n - nsorted > 1)
		qsort((char *)v + nsorted * sz, n - nsorted, sz, cmp);
	if (!nsorted || nsorted == n)
		return;
	char *m = xcalloc(n, sz), *b = v;
	size_t i = 0, j = nsorted, o = 0;
	while (i < nsorted || j < n) {
		if (j == n || (i < nsorted && cmp(b + i * sz, b + j * sz) <= 0))
			memcpy(m + o++ * sz, b + i++ * sz, sz);
		else
			memcpy(m + o++ * sz, b + j++ * sz, sz);
	}
	memcpy(v, m, n * sz);
	free(m);
}

void compile_finish_merge_hosts(struct route_table *t, size_t hsorted, size_t psorted)
{
	sort_tail(t->hosts, t->nhosts, sizeof(*t->hosts), hsorted, cmp_host);
	sort_tail(t->passthrough, t->npassthrough, sizeof(*t->passthrough), psorted, cmp_pass);
}

void compile_finish_merge(struct route_table *t, size_t hsorted, size_t psorted, size_t bsorted,
                          size_t csorted)
{
	sort_tail(t->hosts, t->nhosts, sizeof(*t->hosts), hsorted, cmp_host);
	sort_tail(t->passthrough, t->npassthrough, sizeof(*t->passthrough), psorted, cmp_pass);
	compact_sorted(t, bsorted, csorted);
}

void compile_sort_diags(struct diag_list *d)
{
	sort_diags(d);
}

json_object *compile_settings_configmap(const struct snapshot *snap,
                                        const struct compile_options *o)
{
	for (size_t i = 0; i < snap->count[STORE_CONFIGMAP]; i++) {
		json_object *cm = snap->objs[STORE_CONFIGMAP][i];
		/* The ConfigMaps of every watched namespace are in the snapshot
		 * (auth-proxy-set-headers): only ours holds settings. */
		if (strcmp(meta_name(cm), CONFIGMAP_NAME) == 0 &&
		    (!o->configmap_namespace || strcmp(meta_ns(cm), o->configmap_namespace) == 0))
			return cm;
	}
	return NULL;
}

int compile_snapshot(const struct snapshot *snap, const struct compile_options *o,
                     struct route_table **table, struct diag_list *diags)
{
	return compile_snapshot_ex(snap, o, table, diags, NULL, NULL);
}

int compile_snapshot_ex(const struct snapshot *snap, const struct compile_options *o,
                        struct route_table **table, struct diag_list *diags,
                        compile_mention_cb mention, void *arg)
{
	return compile_snapshot_with(snap, o, NULL, table, diags, mention, arg);
}

/* Decode the TLS Secrets named by the spec.tls of the Ingresses claimed
 * from ps->next, into out. */
static void cert_preps_work(struct cert_preps *ps, struct cert_prep_list *out)
{
	for (;;) {
		size_t from = atomic_fetch_add(&ps->next, CERT_PREP_CHUNK);
		if (from >= ps->ning)
			return;
		size_t to = from + CERT_PREP_CHUNK < ps->ning ? from + CERT_PREP_CHUNK : ps->ning;
		for (size_t i = from; i < to; i++) {
			json_object *tls = jarr(jget(ps->ings[i].obj, "spec"), "tls");
			for (size_t ti = 0; ti < jlen(tls); ti++) {
				const char *secret =
				    jstr(json_object_array_get_idx(tls, ti), "secretName");
				if (!secret || !*secret)
					continue;
				const char *ns = ps->ings[i].ns;
				json_object *sec = find_obj(ps->snap, STORE_SECRET, ns, secret);
				if (!sec)
					continue;
				char *name = xasprintf("%s/%s", ns, secret);
				if (strmap_get(&out->at, name) >= 0) {
					free(name);
					continue;
				}
				if (out->n == out->cap) {
					out->cap = out->cap ? 2 * out->cap : 64;
					out->v = xrealloc(out->v, out->cap * sizeof(*out->v));
				}
				struct cert_prep *e = &out->v[out->n];
				*e = (struct cert_prep){.name = name, .sec = sec};
				strmap_put(&out->at, name, (int)out->n++);
				e->crt = secret_pem(sec, "tls.crt");
				e->key = secret_pem(sec, "tls.key");
				if (e->crt && e->key) {
					route_cert_digest(e->crt, e->key, e->digest);
					e->digest_ok = true;
				}
			}
		}
	}
}

/* Start the second thread on it (when one can be had: otherwise all of it
 * is done by cert_preps_finish). */
static struct cert_preps *cert_preps_start(const struct snapshot *snap, const struct ing *ings,
                                           size_t ning)
{
	struct cert_preps *ps = xcalloc(1, sizeof(*ps));
	ps->snap = snap;
	ps->ings = ings;
	ps->ning = ning;
	atomic_init(&ps->next, 0);
	ps->running =
	    ning > CERT_PREP_CHUNK && pthread_create(&ps->thread, NULL, cert_preps_thread, ps) == 0;
	return ps;
}

int compile_snapshot_with(const struct snapshot *snap, const struct compile_options *o,
                          const struct compile_slices *slices, struct route_table **table,
                          struct diag_list *diags, compile_mention_cb mention, void *arg)
{
	struct route_table *t = route_table_new();
	if (!t)
		return WEIR_ENOMEM;
	/* diags may already hold entries (e.g. manifest file problems): append. */
	struct ctx c = {.snap = snap,
	                .o = o,
	                .t = t,
	                .diags = diags,
	                .diag_cap = diags->n,
	                .next_upstream = ROUTE_NEXT_DEFAULT,
	                .next_upstream_tries = 3,
	                .upstream_head_max = 4096,
	                .body_limit = 1048576,
	                .connect_timeout_ms = 5000,
	                .read_timeout_ms = 60000,
	                .send_timeout_ms = 60000,
	                .ssl_redirect = true};
	struct hosts hs = {0};
	uint32_t drain_default = t->settings.drain_window_ms;
	if (compile_slices_fit(slices, snap)) {
		c.slices = slices->v; /* borrowed: not freed below */
		c.nslices = slices->n;
	} else {
		slices = NULL;
		index_slices(&c);
	}

	json_object *cm = compile_settings_configmap(snap, o);
	if (cm)
		apply_configmap(&c, cm, &drain_default);
	c.default_backend_service = resolve_default_backend_service(&c);

	/* Our Ingresses, oldest first. */
	json_object *cls = our_class(snap, o);
	size_t ning = 0;
	struct ing *ings = xcalloc(snap->count[STORE_INGRESS], sizeof(*ings));
	for (size_t i = 0; i < snap->count[STORE_INGRESS]; i++) {
		json_object *obj = snap->objs[STORE_INGRESS][i];
		if (!class_matches(obj, cls, o))
			continue;
		/* The sort compares these n log n times: look them up once. */
		ings[ning].obj = obj;
		ings[ning].created = jstr_or(jget(obj, "metadata"), "creationTimestamp", "");
		ings[ning].ns = snap->ns[STORE_INGRESS][i];
		ings[ning].name = snap->names[STORE_INGRESS][i];
		ning++;
	}
	qsort(ings, ning, sizeof(*ings), cmp_ing);
	c.preps = cert_preps_start(snap, ings, ning);

	for (size_t i = 0; i < ning; i++) {
		struct ing *in = &ings[i];
		struct annotation_issues issues = {0};
		in->source = xasprintf("%s/%s", in->ns, in->name);
		json_object *ann = jget(jget(in->obj, "metadata"), "annotations");
		json_object *merged = with_proxy_rw_defaults(&c, ann);
		if (annotations_parse(merged ? merged : ann, drain_default, &in->ann, &issues))
			abort();
		for (size_t k = 0; k < issues.n; k++) {
			struct annotation_issue *is = &issues.items[k];
			/* a note about a ConfigMap default the Ingress does not set
			 * (proxy-redirect-from without -to) is the ConfigMap's */
			if (merged && !is->fatal &&
			    !(ann && json_object_object_get_ex(ann, is->key, NULL)))
				continue;
			/* annotations.c says InvalidAnnotation; the agreed Event
			 * reason for a bad value is BadAnnotation. */
			bool bad = strcmp(is->reason, "InvalidAnnotation") == 0;
			diag_add(&c, "Ingress", in->obj, is->key,
			         bad ? "BadAnnotation" : is->reason, "%s%s", is->message,
			         bad && is->fatal ? "; the Ingress's routes are dropped" : "");
			if (is->fatal)
				in->dropped = true;
		}
		annotation_issues_cleanup(&issues);
		json_object_put(merged);
		apply_next_upstream_defaults(&c, &in->ann);
		apply_access_defaults(&c, &in->ann);
		apply_head_max_default(&c, &in->ann);
		apply_proxy_defaults(&c, &in->ann);
		if (in->ann.ssl_passthrough && !in->dropped &&
		    (in->ann.policy.ext_auth.url || (in->ann.global_auth && c.global_auth.url))) {
			/* TLS is relayed untouched: no request to authenticate. */
			const char *key =
			    in->ann.policy.ext_auth.url ? "auth-url" : "global-auth-url";
			diag_add(&c, "Ingress", in->obj, key, "SecurityNotEnforced",
			         "forward auth cannot apply to ssl-passthrough (TLS is not "
			         "terminated); this Ingress is not served (fail closed)");
			in->dropped = true;
		}
		const char *global = c.global_unenforced;
		if (!global && c.global_auth_ignored && in->ann.global_auth) {
			diag_add(&c, "Ingress", in->obj, c.global_auth_ignored,
			         "SecurityNotEnforced",
			         "ConfigMap %s: global auth cannot be enforced as set (see %s); "
			         "this Ingress is not served (fail closed)",
			         CONFIGMAP_NAME, c.global_auth_ignored);
			in->dropped = true;
		}
		if (global) {
			diag_add(
			    &c, "Ingress", in->obj, global, "SecurityNotEnforced",
			    c.global_bad_value
			        ? "ConfigMap %s sets %s to a value weir cannot apply; this "
			          "Ingress is not served (fail closed)"
			        : "ConfigMap %s sets %s, which weir does not enforce yet; this "
			          "Ingress is not served (fail closed)",
			    CONFIGMAP_NAME, global);
			in->dropped = true;
		}
		if (!in->dropped && in->ann.ssl_passthrough)
			passthrough_unenforced(&c, in);
		if (!in->dropped && in->ann.policy.auth.type == ROUTE_AUTH_BASIC) {
			if (in->ann.ssl_passthrough) {
				diag_add(
				    &c, "Ingress", in->obj, in->ann.auth_type_key, "BadAnnotation",
				    "basic authentication cannot be enforced on an ssl-passthrough "
				    "Ingress (weir never decrypts it); the Ingress's routes are "
				    "dropped");
				in->dropped = true;
			} else if (!resolve_auth(&c, in->obj, &in->ann)) {
				in->dropped = true;
			}
		}
		if (!in->dropped && in->ann.tls_secret) {
			if (in->ann.ssl_passthrough) {
				diag_add(
				    &c, "Ingress", in->obj, in->ann.tls_secret_key, "BadAnnotation",
				    "client certificates cannot be checked on an ssl-passthrough "
				    "Ingress (weir never decrypts it); the Ingress's routes are "
				    "dropped");
				in->dropped = true;
			} else if (!resolve_ca(&c, in->obj, &in->ann)) {
				in->dropped = true;
			}
		}
		if (!in->dropped && !resolve_backend_tls(&c, in->obj, &in->ann))
			in->dropped = true;
		if (!in->dropped && in->ann.auth_headers && in->ann.policy.ext_auth.url &&
		    !resolve_auth_headers(&c, in->obj, &in->ann))
			in->dropped = true;
		if (!in->dropped && in->ann.custom_headers &&
		    !resolve_custom_headers(&c, in->obj, &in->ann))
			in->dropped = true;
		if (!in->dropped && in->ann.fastcgi_params &&
		    !resolve_fastcgi_params(&c, in->obj, &in->ann))
			in->dropped = true;
		if (!in->dropped)
			validate_ingress(&c, in);
		if (mention) {
			char **hosts;
			size_t nh;
			bool pinned;
			mentions_of(in->obj, &in->ann, &hosts, &nh, &pinned);
			mention(arg, in->source, in->obj, hosts, nh, pinned);
		}
	}

	/* Client certificate settings per host, before anything is built from
	 * an Ingress that a conflict drops. */
	for (size_t i = 0; i < ning; i++)
		if (!ings[i].dropped)
			ingress_client_auth(&c, &hs, &ings[i]);
	for (size_t i = 0; i < ning; i++)
		if (!ings[i].dropped && !ings[i].ann.canary)
			ingress_ssl_ciphers(&c, &hs, &ings[i]);
	cert_preps_finish(c.preps); /* the other thread reads ings, which go below */
	/* TLS hosts first: ssl-redirect of every route depends on them. */
	for (size_t i = 0; i < ning; i++)
		if (!ings[i].dropped && !ings[i].ann.canary && !ings[i].ann.ssl_passthrough)
			ingress_tls(&c, &hs, &ings[i]);
	for (size_t i = 0; i < ning; i++) {
		struct ing *in = &ings[i];
		if (in->dropped || in->ann.canary)
			continue;
		if (in->ann.ssl_passthrough) {
			ingress_passthrough(&c, in);
			continue;
		}
		json_object *dbe = jget(jget(in->obj, "spec"), "defaultBackend");
		if (dbe && in->ann.tls_secret && in->ann.tls_auth.verify != ROUTE_VERIFY_OFF) {
			/* It would answer requests of hosts that ask for no client
			 * certificate: fail closed. */
			diag_add(&c, "Ingress", in->obj, "spec.defaultBackend", "BadAnnotation",
			         "an Ingress with auth-tls-secret does not provide the default "
			         "backend (requests to other hosts would reach it without a client "
			         "certificate); spec.defaultBackend ignored");
		} else if (dbe && t->default_backend < 0) {
			int idx =
			    resolve_backend(&c, in->obj, &in->ann, dbe, "spec.defaultBackend");
			if (idx >= 0)
				t->default_backend = idx;
		}
		in->error_backend = -1;
		if (route_custom_errors_any(&in->ann.policy) ||
		    route_custom_errors_any(&c.global_errors))
			in->error_backend = error_backend(&c, in->obj, &in->ann);
		ingress_routes(&c, &hs, in);
	}
	/* --default-backend-service serves what no route matches unless an
	 * Ingress's spec.defaultBackend does (as ingress-nginx's catch-all). */
	if (t->default_backend < 0)
		t->default_backend = c.default_backend_service;
	for (size_t i = 0; i < ning; i++)
		if (!ings[i].dropped && ings[i].ann.canary && !ings[i].ann.ssl_passthrough)
			ingress_canary(&c, &hs, &ings[i]);
	for (size_t i = 0; i < ning; i++)
		if (!ings[i].dropped && !ings[i].ann.canary && !ings[i].ann.ssl_passthrough &&
		    ings[i].ann.from_to_www)
			ingress_www(&c, &hs, &ings[i]);

	/* Hosts named only by spec.tls get no entry (nothing routes there). */
	t->hosts = xcalloc(hs.n, sizeof(*t->hosts));
	for (size_t i = 0; i < hs.n; i++) {
		struct hbuild *h = &hs.items[i];
		if (h->n) {
			struct route_host *out = &t->hosts[t->nhosts];
			finish_host(&c, h, out);
			/* Every route dropped: no entry either, or it would shadow
			 * a wildcard or "" host that still serves. */
			if (out->nroutes) {
				t->nhosts++;
			} else {
				free(out->name);
				free(out->routes);
				free(out->ssl_ciphers);
				route_client_auth_cleanup(&out->client_auth);
				memset(out, 0, sizeof(*out));
			}
		}
		free(h->name);
		free(h->routes);
	}
	free(hs.items);
	strmap_cleanup(&hs.index);
	qsort(t->hosts, t->nhosts, sizeof(*t->hosts), cmp_host);
	if (t->npassthrough)
		qsort(t->passthrough, t->npassthrough, sizeof(*t->passthrough), cmp_pass);
	compact(t);
	sort_diags(diags);

	for (size_t i = 0; i < ning; i++)
		if (ings[i].dropped) {
			diags->dropped = xrealloc(diags->dropped,
			                          (diags->ndropped + 1) * sizeof(*diags->dropped));
			diags->dropped[diags->ndropped++] = ings[i].source;
			ings[i].source = NULL;
		}
	if (diags->ndropped > 1)
		qsort(diags->dropped, diags->ndropped, sizeof(*diags->dropped), cmp_strp);
	for (size_t i = 0; i < ning; i++) {
		free(ings[i].source);
		free(ings[i].memo.host);
		annotations_cleanup(&ings[i].ann);
	}
	free(ings);
	cert_preps_free(c.preps);
	strmap_cleanup(&c.backends);
	strmap_cleanup(&c.certs);
	strmap_cleanup(&c.pems);
	if (!slices)
		free(c.slices);
	route_ext_auth_cleanup(&c.global_auth);
	for (size_t i = 0; i < c.npolicies; i++) {
		route_policy_unref(c.policies[i]);
		free(c.policy_texts[i]);
	}
	free(c.policies);
	free(c.policy_texts);
	free(c.policy_ok);
	strmap_cleanup(&c.policy_at);
	json_object_put(c.proxy_rw_defaults);
	for (size_t i = 0; i < c.nno_auth; i++)
		free(c.no_auth[i]);
	free(c.no_auth);
	free(c.global_allow);
	free(c.global_deny);
	*table = t;
	return 0;
}

/* ------------------------------------------------------------ endpoint patch */

/* "ns/name" of svc_keys (sorted) holds ns/svc? */
static bool in_sorted_keys(char *const *keys, size_t n, const char *ns, const char *svc)
{
	size_t lo = 0, hi = n, nl = strlen(ns);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *k = keys[mid];
		int r = strncmp(k, ns, nl);
		if (!r)
			r = (unsigned char)k[nl] - (unsigned char)'/';
		if (!r)
			r = strcmp(k + nl + 1, svc);
		if (!r)
			return true;
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Some Ingress of snap sets a default-backend annotation (any prefix): the
 * compile then chose a route's backend by whether a Service had endpoints. */
static bool any_default_backend_annotation(const struct snapshot *snap)
{
	for (size_t i = 0; i < snap->count[STORE_INGRESS]; i++) {
		json_object *ann =
		    jget(jget(snap->objs[STORE_INGRESS][i], "metadata"), "annotations");
		if (!ann || !json_object_is_type(ann, json_type_object))
			continue;
		json_object_object_foreach(ann, k, v)
		{
			(void)v;
			const char *slash = strrchr(k, '/');
			if (strcmp(slash ? slash + 1 : k, "default-backend") == 0)
				return true;
		}
	}
	return false;
}

int compile_patch_endpoints(const struct snapshot *snap, const struct compile_options *o,
                            const struct compile_slices *slices, struct route_table *t,
                            char *const *svc_keys, size_t nkeys, size_t *npatched, size_t *patched)
{
	*npatched = 0;
	if (!nkeys)
		return 0;
	struct diag_list scratch = {0};
	struct ctx c = {.snap = snap, .o = o, .t = t, .diags = &scratch};
	/* The slices of the changed Services only (or the index of all). */
	size_t n = snap->count[STORE_ENDPOINT_SLICE];
	bool borrowed = compile_slices_fit(slices, snap);
	if (borrowed) {
		c.slices = slices->v;
		c.nslices = slices->n;
		n = 0;
	} else {
		c.slices = xcalloc(n + 1, sizeof(*c.slices));
	}
	for (size_t i = 0; i < n; i++) {
		json_object *sl = snap->objs[STORE_ENDPOINT_SLICE][i];
		const char *svc = jstr(jget(jget(sl, "metadata"), "labels"), LABEL_SERVICE_NAME);
		if (svc && in_sorted_keys(svc_keys, nkeys, snap->ns[STORE_ENDPOINT_SLICE][i], svc))
			c.slices[c.nslices++] =
			    (struct slice_ref){snap->ns[STORE_ENDPOINT_SLICE][i], svc, i};
	}
	if (!borrowed)
		qsort(c.slices, c.nslices, sizeof(*c.slices), cmp_slice_ref);

	int rc = 0;
	int fallback = -1;  /* any default-backend annotation: looked up when needed */
	size_t missing = 0; /* keys without a backend in t */
	struct route_backend *fresh = xcalloc(t->nbackends + 1, sizeof(*fresh));
	bool *changed = xcalloc(t->nbackends + 1, sizeof(bool));
	for (size_t k = 0; k < nkeys && rc == 0; k++) {
		const char *slash = strchr(svc_keys[k], '/');
		if (!slash)
			continue;
		/* Backends are sorted by name: those of this Service are the run
		 * that starts with "ns/svc:". */
		char *prefix = xasprintf("%s:", svc_keys[k]);
		size_t l = strlen(prefix), lo = 0, hi = t->nbackends;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (strcmp(t->backends[mid].name, prefix) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == t->nbackends || strncmp(t->backends[lo].name, prefix, l) != 0)
			missing++;
		char *ns = xasprintf("%.*s", (int)(slash - svc_keys[k]), svc_keys[k]);
		const char *svc = slash + 1;
		json_object *so = find_obj(snap, STORE_SERVICE, ns, svc);
		const char *type = jstr(jget(so, "spec"), "type");
		for (size_t i = lo;
		     i < t->nbackends && rc == 0 && strncmp(t->backends[i].name, prefix, l) == 0;
		     i++) {
			struct route_backend *b = &t->backends[i];
			/* endpoints from the Service itself, not its slices */
			if (b->external_name || strchr(b->name + l, ' '))
				continue;
			const char *port = b->name + l;
			char *end = NULL;
			long number = strtol(port, &end, 10);
			bool numeric = end != port && !*end;
			json_object *sp = NULL;
			if (so && !(type && strcmp(type, "ExternalName") == 0))
				sp = service_port(so, numeric ? number : 0, numeric ? NULL : port);
			if (!sp)
				continue; /* no such port: no endpoints, as before */
			size_t before = scratch.n;
			collect_endpoints(&c, &fresh[i], ns, svc, jstr_or(sp, "name", ""));
			changed[i] = true;
			if (scratch.n != before) {
				rc = WEIR_EAGAIN; /* a diagnostic: the full compile reports it */
			} else if ((fresh[i].nendpoints == 0) != (b->nendpoints == 0)) {
				if (fallback < 0)
					fallback = any_default_backend_annotation(snap);
				if (fallback)
					rc = WEIR_EAGAIN; /* a route may change backend */
			}
		}
		free(ns);
		free(prefix);
	}
	/* A changed Service without a backend here may be one whose empty
	 * backend a default-backend annotation replaced (and the compile then
	 * left out): once it has endpoints, its routes go back to it. */
	if (rc == 0 && missing) {
		if (fallback < 0)
			fallback = any_default_backend_annotation(snap);
		if (fallback)
			rc = WEIR_EAGAIN;
	}
	for (size_t i = 0; i < t->nbackends; i++) {
		if (!changed[i])
			continue;
		struct route_backend *b = &t->backends[i];
		fresh[i].name = b->name; /* borrowed for the compare */
		fresh[i].external_name = b->external_name;
		fresh[i].external_port = b->external_port;
		bool same = rc == 0 && route_backend_equal(&fresh[i], b);
		fresh[i].name = fresh[i].external_name = NULL;
		struct route_endpoint *drop = fresh[i].endpoints;
		size_t ndrop = fresh[i].nendpoints;
		if (rc == 0 && !same) {
			drop = b->endpoints;
			ndrop = b->nendpoints;
			b->endpoints = fresh[i].endpoints;
			b->nendpoints = fresh[i].nendpoints;
			if (patched)
				patched[*npatched] = i;
			(*npatched)++;
		}
		for (size_t e = 0; e < ndrop; e++)
			free(drop[e].address);
		free(drop);
	}
	free(fresh);
	free(changed);
	if (!borrowed)
		free(c.slices);
	diag_list_cleanup(&scratch);
	return rc;
}
