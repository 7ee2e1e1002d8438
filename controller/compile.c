/* controller/compile.c - snapshot -> route table + diagnostics.
 *
 * Pure: no I/O, no clock, no randomness. Determinism comes from the
 * snapshot's sorted order, from processing Ingresses oldest first
 * (creationTimestamp, then namespace/name) and from sorting every output
 * list (hosts, routes, backends, certs, diagnostics) before it is written.
 * The control plane aborts on out-of-memory (house style), so allocation
 * failures do not thread through here. */
#include "compile.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pcre2.h>

#include "annotations.h"
#include "error.h"

#define INGRESS_CLASS_ANNOTATION "kubernetes.io/ingress.class"
#define DEFAULT_CLASS_ANNOTATION "ingressclass.kubernetes.io/is-default-class"
#define SERVICE_NAME_LABEL "kubernetes.io/service-name"
#define SETTINGS_CONFIGMAP "weir"

/* ---------------------------------------------------------------- memory */

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "weir-controller: out of memory\n");
		abort();
	}
	return p;
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);
	if (!p) {
		fprintf(stderr, "weir-controller: out of memory\n");
		abort();
	}
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fprintf(stderr, "weir-controller: out of memory\n");
		abort();
	}
	return p;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		fprintf(stderr, "weir-controller: out of memory\n");
		abort();
	}
	return s;
}

#define GROW(arr, n, cap)                                                                          \
	do {                                                                                       \
		if ((n) == (cap)) {                                                                \
			(cap) = (cap) ? (cap)*2 : 8;                                               \
			(arr) = xrealloc((arr), (cap) * sizeof(*(arr)));                           \
		}                                                                                  \
	} while (0)

/* ------------------------------------------------------------------ JSON */

static json_object *jget(json_object *o, const char *key)
{
	json_object *v = NULL;
	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

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

static const char *meta_ns(json_object *o)
{
	return jstr_or(jget(o, "metadata"), "namespace", "");
}

static const char *meta_name(json_object *o)
{
	return jstr_or(jget(o, "metadata"), "name", "");
}

/* Is v a boolean true/false (or the string)? Returns -1 when absent. */
static int jbool(json_object *o, const char *key)
{
	json_object *v = jget(o, key);
	if (!v)
		return -1;
	if (json_object_is_type(v, json_type_boolean))
		return json_object_get_boolean(v) ? 1 : 0;
	if (json_object_is_type(v, json_type_string))
		return strcmp(json_object_get_string(v), "true") == 0;
	return -1;
}

/* ----------------------------------------------------------- diagnostics */

static void diag_add(struct diag_list *d, const char *kind, json_object *obj, const char *key,
                     const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void diag_add(struct diag_list *d, const char *kind, json_object *obj, const char *key,
                     const char *reason, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	d->items = xrealloc(d->items, (d->n + 1) * sizeof(*d->items));
	struct diag *g = &d->items[d->n++];
	g->kind = xstrdup(kind);
	g->ns = xstrdup(meta_ns(obj));
	g->name = xstrdup(meta_name(obj));
	g->uid = xstrdup(jstr_or(jget(obj, "metadata"), "uid", ""));
	g->key = key ? xstrdup(key) : NULL;
	g->reason = xstrdup(reason);
	g->message = msg;
}

void diag_list_cleanup(struct diag_list *d)
{
	for (size_t i = 0; i < d->n; i++) {
		struct diag *g = &d->items[i];
		free(g->kind);
		free(g->ns);
		free(g->name);
		free(g->uid);
		free(g->key);
		free(g->reason);
		free(g->message);
	}
	free(d->items);
	d->items = NULL;
	d->n = 0;
}

/* --------------------------------------------------------- intermediates */

struct pendpoint {
	char *address;
	uint16_t port;
	bool draining;
};

struct pbackend {
	char *name;
	size_t n, cap;
	struct pendpoint *eps;
	bool used;
	int index;
};

struct pcert {
	char *name;
	char *cert_pem;
	char *key_pem;
	bool used;
	int index;
};

struct proute {
	char *path;
	enum route_match match;
	char *backend; /* pbackend name */
	char *source;
	json_object *ing; /* borrowed from the snapshot */
	struct route_policy policy;
	bool ssl_redirect, force_ssl, read_set, ws_set, regex_src;
	struct route_canary canary; /* backend unused; canary_backend names it */
	char *canary_backend;
	bool dropped;
};

struct phost {
	char *name;
	bool regex;
	bool tls;      /* listed in some spec.tls */
	char *cert;    /* pcert name; NULL: default certificate */
	bool tls_set;  /* first (oldest) TLS entry decided the cert */
	bool is_alias; /* created from a server-alias only */
	size_t n, cap;
	struct proute *routes;
};

struct ppass {
	char *host;
	char *backend;
};

struct slice_ref {
	const char *ns;
	const char *svc;
	json_object *slice;
};

struct alias_req {
	json_object *ing;
	char *alias;
	char *source;
};

struct ctx {
	const struct snapshot *snap;
	const struct compile_options *o;
	struct diag_list *diags;
	struct route_table *t;
	struct pbackend *backends;
	size_t nb, capb;
	struct pcert *certs;
	size_t nc, capc;
	struct phost *hosts;
	size_t nh, caph;
	struct ppass *pass;
	size_t np, capp;
	struct proute *canaries;
	size_t ncan, capcan;
	struct alias_req *aliases;
	size_t nal, capal;
	struct slice_ref *slices;
	size_t nslices;
	char *default_backend;
	char *default_cert;
};

/* --------------------------------------------------------------- lookups */

static json_object *find_obj(const struct snapshot *snap, enum store_kind kind, const char *ns,
                             const char *name)
{
	size_t lo = 0, hi = snap->count[kind];
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		json_object *o = snap->objs[kind][mid];
		int c = strcmp(meta_ns(o), ns);
		if (!c)
			c = strcmp(meta_name(o), name);
		if (!c)
			return o;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int slice_cmp(const void *a, const void *b)
{
	const struct slice_ref *x = a, *y = b;
	int c = strcmp(x->ns, y->ns);
	if (!c)
		c = strcmp(x->svc, y->svc);
	if (!c)
		c = strcmp(meta_name(x->slice), meta_name(y->slice));
	return c;
}

static void index_slices(struct ctx *c)
{
	size_t n = c->snap->count[STORE_ENDPOINT_SLICE];
	c->slices = xcalloc(n, sizeof(*c->slices));
	for (size_t i = 0; i < n; i++) {
		json_object *s = c->snap->objs[STORE_ENDPOINT_SLICE][i];
		const char *svc = jstr(jget(jget(s, "metadata"), "labels"), SERVICE_NAME_LABEL);
		if (!svc)
			continue;
		c->slices[c->nslices++] = (struct slice_ref){meta_ns(s), svc, s};
	}
	qsort(c->slices, c->nslices, sizeof(*c->slices), slice_cmp);
}

/* ------------------------------------------------------------- endpoints */

static bool is_loopback(const char *a)
{
	return strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0 ||
	       strncmp(a, "::ffff:127.", 11) == 0;
}

static int ep_cmp(const void *a, const void *b)
{
	const struct pendpoint *x = a, *y = b;
	int c = strcmp(x->address, y->address);
	if (c)
		return c;
	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	return (int)x->draining - (int)y->draining;
}

static void backend_add_ep(struct pbackend *b, const char *addr, uint16_t port, bool draining)
{
	GROW(b->eps, b->n, b->cap);
	b->eps[b->n++] = (struct pendpoint){xstrdup(addr), port, draining};
}

static void backend_finish(struct pbackend *b)
{
	qsort(b->eps, b->n, sizeof(*b->eps), ep_cmp);
	/* Same address+port from two slices: keep one, serving beats draining
	 * (sorted non-draining first). */
	size_t w = 0;
	for (size_t i = 0; i < b->n; i++) {
		if (w && strcmp(b->eps[w - 1].address, b->eps[i].address) == 0 &&
		    b->eps[w - 1].port == b->eps[i].port) {
			free(b->eps[i].address);
			continue;
		}
		b->eps[w++] = b->eps[i];
	}
	b->n = w;
}

static struct pbackend *backend_find(struct ctx *c, const char *name)
{
	for (size_t i = 0; i < c->nb; i++)
		if (strcmp(c->backends[i].name, name) == 0)
			return &c->backends[i];
	return NULL;
}

static void fill_from_slices(struct ctx *c, const char *ns, const char *svc, const char *port_name,
                             struct pbackend *b)
{
	struct slice_ref key = {ns, svc, NULL};
	/* first slice of (ns, svc): lower bound on (ns, svc) */
	size_t lo = 0, hi = c->nslices;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(c->slices[mid].ns, key.ns);
		if (!cmp)
			cmp = strcmp(c->slices[mid].svc, key.svc);
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < c->nslices; i++) {
		struct slice_ref *r = &c->slices[i];
		if (strcmp(r->ns, ns) || strcmp(r->svc, svc))
			break;
		const char *family = jstr(r->slice, "addressType");
		if (family && strcmp(family, "IPv4") && strcmp(family, "IPv6"))
			continue;
		json_object *ports = jarr(r->slice, "ports");
		long port = -1;
		for (size_t p = 0; p < jlen(ports); p++) {
			json_object *sp = json_object_array_get_idx(ports, p);
			if (strcmp(jstr_or(sp, "name", ""), port_name) == 0) {
				json_object *pv = jget(sp, "port");
				if (pv && json_object_is_type(pv, json_type_int))
					port = (long)json_object_get_int64(pv);
				break;
			}
		}
		if (port < 1 || port > 65535)
			continue;
		bool loop_warned = false;
		json_object *eps = jarr(r->slice, "endpoints");
		for (size_t e = 0; e < jlen(eps); e++) {
			json_object *ep = json_object_array_get_idx(eps, e);
			json_object *cond = jget(ep, "conditions");
			int ready = jbool(cond, "ready"), serving = jbool(cond, "serving"),
			    terminating = jbool(cond, "terminating");
			bool draining;
			if (ready != 0)
				draining = false;
			else if (serving == 1 && terminating == 1)
				draining = true;
			else
				continue;
			json_object *addrs = jarr(ep, "addresses");
			for (size_t a = 0; a < jlen(addrs); a++) {
				json_object *av = json_object_array_get_idx(addrs, a);
				if (!json_object_is_type(av, json_type_string))
					continue;
				const char *addr = json_object_get_string(av);
				struct route_cidr probe;
				if (route_cidr_parse(addr, &probe) != 0 || strchr(addr, '/')) {
					diag_add(c->diags, "EndpointSlice", r->slice, NULL,
					         "InvalidAddress", "address \"%s\" is not an IP",
					         addr);
					continue;
				}
				if (is_loopback(addr) && !c->o->allow_loopback) {
					if (!loop_warned)
						diag_add(
						    c->diags, "EndpointSlice", r->slice, NULL,
						    "LoopbackEndpoint",
						    "loopback address %s dropped (only allowed "
						    "with --manifests)",
						    addr);
					loop_warned = true;
					continue;
				}
				backend_add_ep(b, addr, (uint16_t)port, draining);
			}
		}
	}
}

/* Resolve an Ingress backend {service:{name,port:{number|name}}} in ns to a
 * pbackend name (owned by the ctx). Returns NULL after a diagnostic. */
static const char *resolve_service(struct ctx *c, json_object *ing, const char *ns,
                                   const char *svc_name, json_object *port_ref,
                                   bool service_upstream, const char *field)
{
	json_object *num = jget(port_ref, "number");
	const char *pname = jstr(port_ref, "name");
	long pnum = -1;
	if (num && json_object_is_type(num, json_type_int))
		pnum = (long)json_object_get_int64(num);
	if (!svc_name || !*svc_name || (pnum < 1 && !pname)) {
		diag_add(c->diags, "Ingress", ing, field, "InvalidBackend",
		         "backend needs a service name and a port number or name");
		return NULL;
	}
	if (pnum > 65535) {
		diag_add(c->diags, "Ingress", ing, field, "InvalidBackend", "port %ld out of range",
		         pnum);
		return NULL;
	}
	char portbuf[32];
	if (pname)
		snprintf(portbuf, sizeof(portbuf), "%.31s", pname);
	else
		snprintf(portbuf, sizeof(portbuf), "%ld", pnum);
	char *name = xprintf("%s/%s:%s%s", ns, svc_name, portbuf,
	                     service_upstream ? "@service-upstream" : "");
	struct pbackend *b = backend_find(c, name);
	if (b) {
		free(name);
		return b->name;
	}
	json_object *svc = find_obj(c->snap, STORE_SERVICE, ns, svc_name);
	if (!svc) {
		diag_add(c->diags, "Ingress", ing, field, "ServiceNotFound",
		         "Service %s/%s not found; route dropped", ns, svc_name);
		free(name);
		return NULL;
	}
	json_object *spec = jget(svc, "spec");
	if (strcmp(jstr_or(spec, "type", ""), "ExternalName") == 0) {
		diag_add(c->diags, "Ingress", ing, field, "UnsupportedService",
		         "Service %s/%s is of type ExternalName (not supported); route dropped", ns,
		         svc_name);
		free(name);
		return NULL;
	}
	json_object *ports = jarr(spec, "ports"), *sp = NULL;
	for (size_t i = 0; i < jlen(ports); i++) {
		json_object *p = json_object_array_get_idx(ports, i);
		json_object *pv = jget(p, "port");
		if (pname ? strcmp(jstr_or(p, "name", ""), pname) == 0
		          : (pv && json_object_get_int64(pv) == pnum)) {
			sp = p;
			break;
		}
	}
	if (!sp) {
		diag_add(c->diags, "Ingress", ing, field, "ServicePortNotFound",
		         "Service %s/%s has no port %s; route dropped", ns, svc_name, portbuf);
		free(name);
		return NULL;
	}
	GROW(c->backends, c->nb, c->capb);
	b = &c->backends[c->nb++];
	memset(b, 0, sizeof(*b));
	b->name = name;
	if (service_upstream) {
		const char *ip = jstr(spec, "clusterIP");
		long port = (long)json_object_get_int64(jget(sp, "port"));
		if (!ip || !*ip || strcmp(ip, "None") == 0) {
			diag_add(c->diags, "Ingress", ing, field, "InvalidBackend",
			         "service-upstream: Service %s/%s has no cluster IP", ns, svc_name);
		} else if (is_loopback(ip) && !c->o->allow_loopback) {
			diag_add(c->diags, "Ingress", ing, field, "LoopbackEndpoint",
			         "loopback cluster IP %s dropped", ip);
		} else if (port >= 1 && port <= 65535) {
			backend_add_ep(b, ip, (uint16_t)port, false);
		}
	} else {
		fill_from_slices(c, ns, svc_name, jstr_or(sp, "name", ""), b);
	}
	backend_finish(b);
	return b->name;
}

/* Resolve an IngressBackend object (service or resource). */
static const char *resolve_backend(struct ctx *c, json_object *ing, json_object *backend,
                                   bool service_upstream, const char *field)
{
	if (jget(backend, "resource")) {
		diag_add(c->diags, "Ingress", ing, field, "UnsupportedBackend",
		         "resource backends are not supported; route dropped");
		return NULL;
	}
	json_object *svc = jget(backend, "service");
	return resolve_service(c, ing, meta_ns(ing), jstr(svc, "name"), jget(svc, "port"),
	                       service_upstream, field);
}

/* ------------------------------------------------------------------ TLS */

static int b64val(int ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* Standard base64 (whitespace ignored, padding optional). NULL when bad. */
static char *b64decode(const char *s)
{
	size_t len = strlen(s);
	char *out = xmalloc(len * 3 / 4 + 4);
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;
	bool pad = false;
	for (const char *p = s; *p; p++) {
		if (isspace((unsigned char)*p))
			continue;
		if (*p == '=') {
			pad = true;
			continue;
		}
		int v = b64val((unsigned char)*p);
		if (v < 0 || pad) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	if (strlen(out) != o) { /* PEM never holds NUL */
		free(out);
		return NULL;
	}
	return out;
}

/* Check that cert/key are PEM, parse, and belong together. */
static const char *check_pem(const char *cert, const char *key)
{
	const char *why = NULL;
	BIO *cb = BIO_new_mem_buf(cert, -1), *kb = BIO_new_mem_buf(key, -1);
	X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
	EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
	if (!x)
		why = "tls.crt is not a PEM certificate";
	else if (!k)
		why = "tls.key is not a PEM private key";
	else if (X509_check_private_key(x, k) != 1)
		why = "tls.key does not match tls.crt";
	X509_free(x);
	EVP_PKEY_free(k);
	BIO_free(cb);
	BIO_free(kb);
	return why;
}

static char *secret_field(json_object *secret, const char *key)
{
	const char *v = jstr(jget(secret, "data"), key);
	if (v)
		return b64decode(v);
	v = jstr(jget(secret, "stringData"), key);
	return v ? xstrdup(v) : NULL;
}

/* Load Secret ns/name as a certificate; returns its pcert name or NULL with a
 * diagnostic on diag_obj (kind diag_kind). */
static const char *load_cert(struct ctx *c, const char *ns, const char *name, const char *diag_kind,
                             json_object *diag_obj, const char *field)
{
	char *cname = xprintf("%s/%s", ns, name);
	for (size_t i = 0; i < c->nc; i++)
		if (strcmp(c->certs[i].name, cname) == 0) {
			free(cname);
			return c->certs[i].name;
		}
	json_object *sec = find_obj(c->snap, STORE_SECRET, ns, name);
	char *crt = NULL, *key = NULL;
	const char *why = NULL;
	if (!sec)
		why = "not found";
	else if (strcmp(jstr_or(sec, "type", ""), "kubernetes.io/tls") != 0)
		why = "is not of type kubernetes.io/tls";
	else if (!(crt = secret_field(sec, "tls.crt")) || !(key = secret_field(sec, "tls.key")))
		why = "has no valid tls.crt and tls.key";
	else
		why = check_pem(crt, key);
	if (why) {
		diag_add(c->diags, diag_kind, diag_obj, field, "InvalidSecret",
		         "TLS Secret %s %s; the default certificate is used", cname, why);
		free(crt);
		free(key);
		free(cname);
		return NULL;
	}
	GROW(c->certs, c->nc, c->capc);
	c->certs[c->nc++] = (struct pcert){cname, crt, key, false, -1};
	return cname;
}

/* ----------------------------------------------------------------- hosts */

static struct phost *host_get(struct ctx *c, const char *name, bool create)
{
	for (size_t i = 0; i < c->nh; i++)
		if (strcmp(c->hosts[i].name, name) == 0)
			return &c->hosts[i];
	if (!create)
		return NULL;
	GROW(c->hosts, c->nh, c->caph);
	struct phost *h = &c->hosts[c->nh++];
	memset(h, 0, sizeof(*h));
	h->name = xstrdup(name);
	return h;
}

/* Lowercased copy of a valid rule host ("" allowed), or NULL. */
static char *normalize_host(const char *h)
{
	char *s = xstrdup(h);
	for (char *p = s; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	const char *q = s;
	if (strncmp(q, "*.", 2) == 0)
		q += 2;
	bool ok = strlen(s) <= 253 && (*s == '\0' || (*q && *q != '.' && *q != '-'));
	for (const char *p = q; *p && ok; p++)
		if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '.'))
			ok = false;
	if (!ok) {
		free(s);
		return NULL;
	}
	return s;
}

static void proute_cleanup(struct proute *r)
{
	free(r->path);
	free(r->backend);
	free(r->source);
	route_policy_cleanup(&r->policy);
	free(r->canary.by_header);
	free(r->canary.by_header_value);
	free(r->canary.by_cookie);
	free(r->canary_backend);
}

static void proute_copy(struct proute *dst, const struct proute *src)
{
	*dst = *src;
	dst->path = xstrdup(src->path);
	dst->backend = src->backend ? xstrdup(src->backend) : NULL;
	dst->source = xstrdup(src->source);
	if (annotations_policy_copy(&dst->policy, &src->policy))
		abort();
	dst->canary.by_header = src->canary.by_header ? xstrdup(src->canary.by_header) : NULL;
	dst->canary.by_header_value =
	    src->canary.by_header_value ? xstrdup(src->canary.by_header_value) : NULL;
	dst->canary.by_cookie = src->canary.by_cookie ? xstrdup(src->canary.by_cookie) : NULL;
	dst->canary_backend = src->canary_backend ? xstrdup(src->canary_backend) : NULL;
}

static const char *match_name(enum route_match m)
{
	return m == ROUTE_MATCH_EXACT ? "Exact" : m == ROUTE_MATCH_PREFIX ? "Prefix" : "Regex";
}

/* -------------------------------------------------------------- classes */

static int ts_cmp(json_object *a, json_object *b)
{
	int c = strcmp(jstr_or(jget(a, "metadata"), "creationTimestamp", ""),
	               jstr_or(jget(b, "metadata"), "creationTimestamp", ""));
	if (!c)
		c = strcmp(meta_ns(a), meta_ns(b));
	if (!c)
		c = strcmp(meta_name(a), meta_name(b));
	return c;
}

static int ing_age_cmp(const void *a, const void *b)
{
	return ts_cmp(*(json_object *const *)a, *(json_object *const *)b);
}

/* Is our IngressClass present (name + controller)? *is_default set. */
static bool our_class(const struct snapshot *snap, const struct compile_options *o,
                      bool *is_default)
{
	*is_default = false;
	for (size_t i = 0; i < snap->count[STORE_INGRESS_CLASS]; i++) {
		json_object *ic = snap->objs[STORE_INGRESS_CLASS][i];
		if (strcmp(meta_name(ic), o->ingress_class) != 0)
			continue;
		if (strcmp(jstr_or(jget(ic, "spec"), "controller", ""), o->controller_name) != 0)
			return false;
		const char *d =
		    jstr(jget(jget(ic, "metadata"), "annotations"), DEFAULT_CLASS_ANNOTATION);
		*is_default = d && strcmp(d, "true") == 0;
		return true;
	}
	return false;
}

static bool ingress_is_ours(json_object *ing, const struct compile_options *o, bool class_ok,
                            bool is_default)
{
	const char *cls = jstr(jget(ing, "spec"), "ingressClassName");
	if (cls)
		return class_ok && strcmp(cls, o->ingress_class) == 0;
	const char *ann =
	    jstr(jget(jget(ing, "metadata"), "annotations"), INGRESS_CLASS_ANNOTATION);
	if (ann)
		return strcmp(ann, o->ingress_class) == 0;
	return class_ok && is_default;
}

/* Our Ingresses, oldest first. Caller frees the array. */
static json_object **our_ingresses(const struct snapshot *snap, const struct compile_options *o,
                                   size_t *n)
{
	bool is_default;
	bool ok = our_class(snap, o, &is_default);
	json_object **list = xcalloc(snap->count[STORE_INGRESS], sizeof(*list));
	*n = 0;
	for (size_t i = 0; i < snap->count[STORE_INGRESS]; i++) {
		json_object *ing = snap->objs[STORE_INGRESS][i];
		if (ingress_is_ours(ing, o, ok, is_default))
			list[(*n)++] = ing;
	}
	qsort(list, *n, sizeof(*list), ing_age_cmp);
	return list;
}

static int str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int compile_class_ingresses(const struct snapshot *snap, const struct compile_options *o,
                            char ***out, size_t *n)
{
	size_t count;
	json_object **list = our_ingresses(snap, o, &count);
	char **names = xcalloc(count, sizeof(*names));
	for (size_t i = 0; i < count; i++)
		names[i] = xprintf("%s/%s", meta_ns(list[i]), meta_name(list[i]));
	free(list);
	qsort(names, count, sizeof(*names), str_ptr_cmp);
	*out = names;
	*n = count;
	return 0;
}

/* -------------------------------------------------------------- settings */

static void settings_from_configmap(struct ctx *c)
{
	json_object *cm = NULL;
	for (size_t i = 0; i < c->snap->count[STORE_CONFIGMAP]; i++) {
		json_object *o = c->snap->objs[STORE_CONFIGMAP][i];
		if (strcmp(meta_name(o), SETTINGS_CONFIGMAP) == 0) {
			cm = o;
			break;
		}
	}
	if (!cm)
		return;
	struct route_settings *st = &c->t->settings;
	json_object *data = jget(cm, "data");
	if (!data || !json_object_is_type(data, json_type_object))
		return;
	/* sorted keys for a deterministic diagnostic order */
	size_t nkeys = 0;
	const char **keys = xcalloc((size_t)json_object_object_length(data) + 1, sizeof(*keys));
	json_object_object_foreach(data, k, v)
	{
		(void)v;
		keys[nkeys++] = k;
	}
	qsort(keys, nkeys, sizeof(*keys), str_ptr_cmp);
	char err[256];
	for (size_t i = 0; i < nkeys; i++) {
		const char *k = keys[i];
		const char *v = json_object_get_string(json_object_object_get(data, k));
		if (!v)
			v = "";
		int rc = 0;
		err[0] = '\0';
		if (strcmp(k, "trusted-proxies") == 0) {
			struct route_cidr *list;
			size_t n;
			rc = annotations_parse_cidrs(v, &list, &n, err, sizeof(err));
			if (!rc) {
				free(st->trusted_proxies);
				st->trusted_proxies = list;
				st->ntrusted_proxies = n;
			}
		} else if (strcmp(k, "max-header-bytes") == 0) {
			int64_t sz;
			rc = annotations_parse_size(v, &sz, err, sizeof(err));
			if (!rc && (sz < 1024 || sz > 1024 * 1024)) {
				snprintf(err, sizeof(err), "%s is outside 1k..1m", v);
				rc = WEIR_EINVAL;
			}
			if (!rc)
				st->max_header_bytes = (uint32_t)sz;
		} else if (strcmp(k, "header-timeout") == 0 ||
		           strcmp(k, "keepalive-timeout") == 0 || strcmp(k, "drain-window") == 0) {
			uint32_t ms;
			rc = annotations_parse_duration_ms(v, &ms, err, sizeof(err));
			if (!rc && ms == 0 && strcmp(k, "drain-window") != 0) {
				snprintf(err, sizeof(err), "must be above 0");
				rc = WEIR_EINVAL;
			}
			if (!rc) {
				if (k[0] == 'h')
					st->header_timeout_ms = ms;
				else if (k[0] == 'k')
					st->keepalive_timeout_ms = ms;
				else
					st->drain_window_ms = ms;
			}
		} else if (strcmp(k, "upstream-keepalive") == 0) {
			uint64_t n;
			rc = annotations_parse_uint(v, 65535, &n, err, sizeof(err));
			if (!rc)
				st->upstream_keepalive = (uint32_t)n;
		} else if (strcmp(k, "default-tls-secret") == 0) {
			const char *slash = strchr(v, '/');
			if (!slash || slash == v || !slash[1]) {
				snprintf(err, sizeof(err), "\"%s\" is not namespace/name", v);
				rc = WEIR_EINVAL;
			} else {
				char *ns = strndup(v, (size_t)(slash - v));
				const char *cert = load_cert(c, ns, slash + 1, "ConfigMap", cm, k);
				free(ns);
				free(c->default_cert);
				c->default_cert = cert ? xstrdup(cert) : NULL;
			}
		} else if (strcmp(k, "log-format") == 0 || strcmp(k, "worker-count") == 0) {
			/* read by the programs themselves */
		} else {
			diag_add(c->diags, "ConfigMap", cm, k, "UnknownSetting",
			         "unknown setting (ignored)");
		}
		if (rc)
			diag_add(c->diags, "ConfigMap", cm, k, "InvalidSetting",
			         "invalid value: %s; the default is kept", err);
	}
	free(keys);
}

/* -------------------------------------------------------------- Ingresses */

static void add_route(struct ctx *c, struct phost *h, struct proute *r, json_object *ing)
{
	for (size_t i = 0; i < h->n; i++) {
		struct proute *o = &h->routes[i];
		if (o->match == r->match && strcmp(o->path, r->path) == 0) {
			diag_add(c->diags, "Ingress", ing, NULL, "PathConflict",
			         "host \"%s\" path %s (%s) is already defined by the older "
			         "Ingress %s; this rule is ignored",
			         h->name, r->path, match_name(r->match), o->source);
			proute_cleanup(r);
			return;
		}
	}
	GROW(h->routes, h->n, h->cap);
	h->routes[h->n++] = *r;
}

static void process_ingress(struct ctx *c, json_object *ing, bool *default_set)
{
	json_object *meta = jget(ing, "metadata"), *spec = jget(ing, "spec");
	const char *ns = meta_ns(ing);
	char *source = xprintf("%s/%s", ns, meta_name(ing));
	struct annotations a;
	struct annotation_issues issues = {0};
	if (annotations_parse(jget(meta, "annotations"), c->t->settings.drain_window_ms, &a,
	                      &issues))
		abort();
	bool fatal = false;
	for (size_t i = 0; i < issues.n; i++) {
		struct annotation_issue *is = &issues.items[i];
		diag_add(c->diags, "Ingress", ing, is->key, is->reason, "%s", is->message);
		fatal |= is->fatal;
	}
	annotation_issues_cleanup(&issues);
	if (fatal) {
		diag_add(c->diags, "Ingress", ing, NULL, "IngressSkipped",
		         "routes of this Ingress are dropped (see above)");
		goto out;
	}

	/* spec.defaultBackend: the oldest Ingress that sets one wins */
	json_object *dbe = jget(spec, "defaultBackend");
	if (dbe && !a.ssl_passthrough) {
		if (*default_set) {
			diag_add(c->diags, "Ingress", ing, "spec.defaultBackend",
			         "DefaultBackendConflict",
			         "defaultBackend ignored: an older Ingress already sets it");
		} else {
			const char *b =
			    resolve_backend(c, ing, dbe, a.service_upstream, "spec.defaultBackend");
			if (b) {
				c->default_backend = xstrdup(b);
				*default_set = true;
			}
		}
	}

	json_object *rules = jarr(spec, "rules");
	if (a.ssl_passthrough) {
		for (size_t i = 0; i < jlen(rules); i++) {
			json_object *rule = json_object_array_get_idx(rules, i);
			char *host = normalize_host(jstr_or(rule, "host", ""));
			json_object *paths = jarr(jget(rule, "http"), "paths");
			if (!host || !*host || !jlen(paths)) {
				diag_add(c->diags, "Ingress", ing, "ssl-passthrough",
				         "InvalidPassthrough",
				         "ssl-passthrough needs a rule with a host and a path");
				free(host);
				continue;
			}
			json_object *pick = json_object_array_get_idx(paths, 0);
			for (size_t p = 0; p < jlen(paths); p++) {
				json_object *pp = json_object_array_get_idx(paths, p);
				if (strcmp(jstr_or(pp, "path", "/"), "/") == 0) {
					pick = pp;
					break;
				}
			}
			bool dup = false;
			for (size_t p = 0; p < c->np; p++)
				if (strcmp(c->pass[p].host, host) == 0)
					dup = true;
			if (dup) {
				diag_add(c->diags, "Ingress", ing, "ssl-passthrough",
				         "PassthroughConflict",
				         "host \"%s\" already has ssl-passthrough from an older "
				         "Ingress",
				         host);
				free(host);
				continue;
			}
			const char *b = resolve_backend(c, ing, jget(pick, "backend"), false,
			                                "spec.rules.http.paths.backend");
			if (!b) {
				free(host);
				continue;
			}
			GROW(c->pass, c->np, c->capp);
			c->pass[c->np++] = (struct ppass){host, xstrdup(b)};
		}
		goto out;
	}

	/* TLS: the oldest Ingress listing a host decides its certificate */
	json_object *tls = jarr(spec, "tls");
	for (size_t i = 0; i < jlen(tls); i++) {
		json_object *entry = json_object_array_get_idx(tls, i);
		json_object *hosts = jarr(entry, "hosts");
		const char *secret = jstr(entry, "secretName");
		const char *cert = NULL;
		if (secret && *secret && jlen(hosts))
			cert = load_cert(c, ns, secret, "Ingress", ing, "spec.tls");
		else if (jlen(hosts))
			diag_add(c->diags, "Ingress", ing, "spec.tls", "InvalidSecret",
			         "spec.tls entry without secretName; the default certificate "
			         "is used");
		for (size_t j = 0; j < jlen(hosts); j++) {
			json_object *hv = json_object_array_get_idx(hosts, j);
			char *hn = hv && json_object_is_type(hv, json_type_string)
			               ? normalize_host(json_object_get_string(hv))
			               : NULL;
			if (!hn || !*hn) {
				free(hn);
				continue;
			}
			struct phost *h = host_get(c, hn, true);
			h->tls = true;
			if (!h->tls_set) {
				h->tls_set = true;
				h->cert = cert ? xstrdup(cert) : NULL;
			}
			free(hn);
		}
	}

	bool regex_src = a.use_regex || a.policy.rewrite_target != NULL;
	for (size_t i = 0; i < jlen(rules); i++) {
		json_object *rule = json_object_array_get_idx(rules, i);
		const char *raw_host = jstr_or(rule, "host", "");
		char *host = normalize_host(raw_host);
		if (!host) {
			diag_add(c->diags, "Ingress", ing, "spec.rules.host", "InvalidHost",
			         "host \"%s\" is not a valid host name; rule ignored", raw_host);
			continue;
		}
		json_object *paths = jarr(jget(rule, "http"), "paths");
		for (size_t p = 0; p < jlen(paths); p++) {
			json_object *pp = json_object_array_get_idx(paths, p);
			const char *type = jstr_or(pp, "pathType", "ImplementationSpecific");
			const char *path = jstr_or(pp, "path", "");
			enum route_match m;
			if (strcmp(type, "Exact") == 0)
				m = ROUTE_MATCH_EXACT;
			else if (strcmp(type, "Prefix") == 0 ||
			         strcmp(type, "ImplementationSpecific") == 0)
				m = ROUTE_MATCH_PREFIX;
			else {
				diag_add(c->diags, "Ingress", ing, "spec.rules.http.paths.pathType",
				         "InvalidPath", "pathType \"%s\" is not supported", type);
				continue;
			}
			if (!*path && m == ROUTE_MATCH_PREFIX)
				path = "/";
			if (path[0] != '/') {
				diag_add(c->diags, "Ingress", ing, "spec.rules.http.paths.path",
				         "InvalidPath", "path \"%s\" does not start with /", path);
				continue;
			}
			bool bad = false;
			for (const char *q = path; *q; q++)
				if ((unsigned char)*q <= 0x20 || *q == 0x7f)
					bad = true;
			if (bad) {
				diag_add(c->diags, "Ingress", ing, "spec.rules.http.paths.path",
				         "InvalidPath", "path has a space or control character");
				continue;
			}
			const char *b =
			    resolve_backend(c, ing, jget(pp, "backend"), a.service_upstream,
			                    "spec.rules.http.paths.backend");
			if (!b)
				continue;
			struct pbackend *pb = backend_find(c, b);
			if (pb && pb->n == 0 && a.default_backend) {
				/* ingress-nginx: a Service without endpoints falls back to
				 * the default-backend annotation's Service (first port) */
				json_object *dsvc =
				    find_obj(c->snap, STORE_SERVICE, ns, a.default_backend);
				json_object *p0 =
				    json_object_array_get_idx(jarr(jget(dsvc, "spec"), "ports"), 0);
				json_object *ref = json_object_new_object();
				if (p0 && jget(p0, "port"))
					json_object_object_add(ref, "number",
					                       json_object_get(jget(p0, "port")));
				const char *db = resolve_service(c, ing, ns, a.default_backend, ref,
				                                 false, "default-backend");
				json_object_put(ref);
				if (db)
					b = db;
			}
			struct proute r = {0};
			r.path = xstrdup(path);
			r.match = m;
			r.backend = xstrdup(b);
			r.source = xstrdup(source);
			r.ing = ing;
			if (annotations_policy_copy(&r.policy, &a.policy))
				abort();
			r.ssl_redirect = a.ssl_redirect;
			r.force_ssl = a.force_ssl_redirect;
			r.read_set = a.read_timeout_set;
			r.ws_set = a.ws_idle_set;
			r.regex_src = regex_src;
			r.canary.backend = -1;
			if (a.canary) {
				r.canary_backend = r.backend;
				r.backend = NULL;
				r.canary.weight = a.canary_rule.weight;
				r.canary.by_header = a.canary_rule.by_header
				                         ? xstrdup(a.canary_rule.by_header)
				                         : NULL;
				r.canary.by_header_value =
				    a.canary_rule.by_header_value
				        ? xstrdup(a.canary_rule.by_header_value)
				        : NULL;
				r.canary.by_cookie = a.canary_rule.by_cookie
				                         ? xstrdup(a.canary_rule.by_cookie)
				                         : NULL;
				free(r.path);
				r.path = xprintf("%s\n%s", host, path); /* host kept for matching */
				GROW(c->canaries, c->ncan, c->capcan);
				c->canaries[c->ncan++] = r;
				continue;
			}
			struct phost *h = host_get(c, host, true);
			if (regex_src)
				h->regex = true;
			add_route(c, h, &r, ing);
		}
		free(host);
	}
	for (size_t i = 0; i < a.nserver_alias && !a.canary; i++) {
		GROW(c->aliases, c->nal, c->capal);
		c->aliases[c->nal++] =
		    (struct alias_req){ing, xstrdup(a.server_alias[i]), xstrdup(source)};
	}
out:
	annotations_cleanup(&a);
	free(source);
}

/* Canary Ingresses attach to the main route with the same host, path, match. */
static void apply_canaries(struct ctx *c)
{
	for (size_t i = 0; i < c->ncan; i++) {
		struct proute *cr = &c->canaries[i];
		char *nl = strchr(cr->path, '\n');
		*nl = '\0';
		const char *host = cr->path, *path = nl + 1;
		struct phost *h = host_get(c, host, false);
		struct proute *main = NULL;
		for (size_t j = 0; h && j < h->n; j++)
			if (h->routes[j].match == cr->match && strcmp(h->routes[j].path, path) == 0)
				main = &h->routes[j];
		if (!main) {
			diag_add(c->diags, "Ingress", cr->ing, "canary", "CanaryWithoutMain",
			         "no main Ingress serves host \"%s\" path %s; canary ignored", host,
			         path);
			continue;
		}
		if (main->canary_backend) {
			diag_add(c->diags, "Ingress", cr->ing, "canary", "CanaryConflict",
			         "host \"%s\" path %s already has a canary; ignored", host, path);
			continue;
		}
		main->canary_backend = xstrdup(cr->canary_backend);
		main->canary.weight = cr->canary.weight;
		main->canary.by_header = cr->canary.by_header;
		main->canary.by_header_value = cr->canary.by_header_value;
		main->canary.by_cookie = cr->canary.by_cookie;
		cr->canary.by_header = cr->canary.by_header_value = cr->canary.by_cookie = NULL;
	}
}

static void apply_aliases(struct ctx *c)
{
	for (size_t i = 0; i < c->nal; i++) {
		struct alias_req *al = &c->aliases[i];
		struct phost *ah = host_get(c, al->alias, false);
		if (ah && !ah->is_alias) {
			diag_add(c->diags, "Ingress", al->ing, "server-alias", "AliasConflict",
			         "alias \"%s\" is already a host of an Ingress; alias ignored",
			         al->alias);
			continue;
		}
		/* copy every route of the Ingress (from its real hosts) */
		size_t nh = c->nh;
		for (size_t h = 0; h < nh; h++) {
			if (c->hosts[h].is_alias)
				continue;
			for (size_t r = 0; r < c->hosts[h].n; r++) {
				if (strcmp(c->hosts[h].routes[r].source, al->source) != 0)
					continue;
				struct proute copy;
				proute_copy(&copy, &c->hosts[h].routes[r]);
				bool regex = c->hosts[h].regex;
				ah = host_get(c, al->alias, true);
				ah->is_alias = true;
				ah->regex |= regex;
				add_route(c, ah, &copy, al->ing);
			}
		}
	}
}

/* -------------------------------------------------------------- finalize */

static int route_order(const void *a, const void *b)
{
	const struct proute *x = a, *y = b;
	size_t lx = strlen(x->path), ly = strlen(y->path);
	if (lx != ly)
		return lx > ly ? -1 : 1;
	if (x->match != y->match)
		return x->match == ROUTE_MATCH_EXACT ? -1 : 1;
	return strcmp(x->path, y->path);
}

static int host_order(const void *a, const void *b)
{
	return strcmp(((const struct phost *)a)->name, ((const struct phost *)b)->name);
}

static int backend_order(const void *a, const void *b)
{
	return strcmp(((const struct pbackend *)a)->name, ((const struct pbackend *)b)->name);
}

static int cert_order(const void *a, const void *b)
{
	return strcmp(((const struct pcert *)a)->name, ((const struct pcert *)b)->name);
}

static int pass_order(const void *a, const void *b)
{
	return strcmp(((const struct ppass *)a)->host, ((const struct ppass *)b)->host);
}

static struct pbackend *mark_backend(struct ctx *c, const char *name)
{
	struct pbackend *b = backend_find(c, name);
	if (b)
		b->used = true;
	return b;
}

static int backend_index(struct ctx *c, const char *name)
{
	struct pbackend *b = name ? backend_find(c, name) : NULL;
	return b ? b->index : -1;
}

static int cert_index(struct ctx *c, const char *name)
{
	for (size_t i = 0; name && i < c->nc; i++)
		if (strcmp(c->certs[i].name, name) == 0)
			return c->certs[i].index;
	return -1;
}

/* Regex mode: validate and convert; returns false (after a diagnostic) when
 * the pattern does not compile. */
static bool to_regex(struct ctx *c, struct proute *r)
{
	char *pat = xprintf("^%s%s", r->path, r->match == ROUTE_MATCH_EXACT ? "$" : "");
	int errcode;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS,
	                               &errcode, &off, NULL);
	if (!re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(errcode, msg, sizeof(msg));
		diag_add(c->diags, "Ingress", r->ing, "spec.rules.http.paths.path", "InvalidRegex",
		         "path %s is not a valid regex (%s at offset %zu); route dropped", r->path,
		         (const char *)msg, (size_t)off);
		free(pat);
		return false;
	}
	pcre2_code_free(re);
	free(r->path);
	r->path = pat;
	r->match = ROUTE_MATCH_REGEX;
	return true;
}

static void finalize(struct ctx *c)
{
	struct route_table *t = c->t;
	/* resolve per-route decisions, convert regex hosts, mark used objects */
	for (size_t i = 0; i < c->nh; i++) {
		struct phost *h = &c->hosts[i];
		qsort(h->routes, h->n, sizeof(*h->routes), route_order);
		size_t w = 0;
		for (size_t j = 0; j < h->n; j++) {
			struct proute *r = &h->routes[j];
			r->policy.ssl_redirect = (h->tls && r->ssl_redirect) || r->force_ssl;
			if (!r->ws_set && r->read_set)
				r->policy.ws_idle_timeout_ms = r->policy.read_timeout_ms;
			if (h->regex && !to_regex(c, r)) {
				proute_cleanup(r);
				continue;
			}
			mark_backend(c, r->backend);
			if (r->canary_backend)
				mark_backend(c, r->canary_backend);
			h->routes[w++] = *r;
		}
		h->n = w;
		if (h->cert)
			for (size_t k = 0; k < c->nc; k++)
				if (strcmp(c->certs[k].name, h->cert) == 0)
					c->certs[k].used = true;
	}
	if (c->default_backend)
		mark_backend(c, c->default_backend);
	for (size_t i = 0; i < c->np; i++)
		mark_backend(c, c->pass[i].backend);
	for (size_t k = 0; c->default_cert && k < c->nc; k++)
		if (strcmp(c->certs[k].name, c->default_cert) == 0)
			c->certs[k].used = true;

	/* backends: used ones, sorted by name */
	qsort(c->backends, c->nb, sizeof(*c->backends), backend_order);
	t->backends = xcalloc(c->nb, sizeof(*t->backends));
	for (size_t i = 0; i < c->nb; i++) {
		struct pbackend *b = &c->backends[i];
		if (!b->used)
			continue;
		b->index = (int)t->nbackends;
		struct route_backend *rb = &t->backends[t->nbackends++];
		rb->name = xstrdup(b->name);
		rb->nendpoints = b->n;
		rb->endpoints = xcalloc(b->n, sizeof(*rb->endpoints));
		for (size_t e = 0; e < b->n; e++)
			rb->endpoints[e] = (struct route_endpoint){
			    xstrdup(b->eps[e].address), b->eps[e].port, 1, b->eps[e].draining};
	}
	qsort(c->certs, c->nc, sizeof(*c->certs), cert_order);
	t->certs = xcalloc(c->nc, sizeof(*t->certs));
	for (size_t i = 0; i < c->nc; i++) {
		struct pcert *pc = &c->certs[i];
		if (!pc->used)
			continue;
		pc->index = (int)t->ncerts;
		t->certs[t->ncerts++] = (struct route_cert){
		    xstrdup(pc->name), xstrdup(pc->cert_pem), xstrdup(pc->key_pem)};
	}
	t->default_cert = cert_index(c, c->default_cert);
	t->default_backend = backend_index(c, c->default_backend);

	/* hosts with at least one route, sorted by name */
	qsort(c->hosts, c->nh, sizeof(*c->hosts), host_order);
	t->hosts = xcalloc(c->nh, sizeof(*t->hosts));
	for (size_t i = 0; i < c->nh; i++) {
		struct phost *h = &c->hosts[i];
		if (!h->n)
			continue;
		struct route_host *rh = &t->hosts[t->nhosts++];
		rh->name = xstrdup(h->name);
		rh->cert = cert_index(c, h->cert);
		rh->nroutes = h->n;
		rh->routes = xcalloc(h->n, sizeof(*rh->routes));
		for (size_t j = 0; j < h->n; j++) {
			struct proute *r = &h->routes[j];
			struct route *out = &rh->routes[j];
			out->path = r->path;
			out->match = r->match;
			out->backend = backend_index(c, r->backend);
			out->source = r->source;
			out->policy = r->policy;
			out->canary = r->canary;
			out->canary.backend = backend_index(c, r->canary_backend);
			/* ownership moved to the table */
			r->path = r->source = NULL;
			memset(&r->policy, 0, sizeof(r->policy));
			memset(&r->canary, 0, sizeof(r->canary));
		}
	}
	qsort(c->pass, c->np, sizeof(*c->pass), pass_order);
	t->passthrough = xcalloc(c->np, sizeof(*t->passthrough));
	for (size_t i = 0; i < c->np; i++) {
		t->passthrough[i].host = xstrdup(c->pass[i].host);
		t->passthrough[i].backend = backend_index(c, c->pass[i].backend);
	}
	t->npassthrough = c->np;
}

static void ctx_cleanup(struct ctx *c)
{
	for (size_t i = 0; i < c->nb; i++) {
		for (size_t e = 0; e < c->backends[i].n; e++)
			free(c->backends[i].eps[e].address);
		free(c->backends[i].eps);
		free(c->backends[i].name);
	}
	free(c->backends);
	for (size_t i = 0; i < c->nc; i++) {
		free(c->certs[i].name);
		free(c->certs[i].cert_pem);
		free(c->certs[i].key_pem);
	}
	free(c->certs);
	for (size_t i = 0; i < c->nh; i++) {
		for (size_t j = 0; j < c->hosts[i].n; j++)
			proute_cleanup(&c->hosts[i].routes[j]);
		free(c->hosts[i].routes);
		free(c->hosts[i].name);
		free(c->hosts[i].cert);
	}
	free(c->hosts);
	for (size_t i = 0; i < c->np; i++) {
		free(c->pass[i].host);
		free(c->pass[i].backend);
	}
	free(c->pass);
	for (size_t i = 0; i < c->ncan; i++)
		proute_cleanup(&c->canaries[i]);
	free(c->canaries);
	for (size_t i = 0; i < c->nal; i++) {
		free(c->aliases[i].alias);
		free(c->aliases[i].source);
	}
	free(c->aliases);
	free(c->slices);
	free(c->default_backend);
	free(c->default_cert);
}

static int diag_order(const void *a, const void *b)
{
	const struct diag *x = a, *y = b;
	int c = strcmp(x->kind, y->kind);
	if (!c)
		c = strcmp(x->ns, y->ns);
	if (!c)
		c = strcmp(x->name, y->name);
	return c;
}

/* Stable sort (insertion sort keeps emission order inside one object). */
static void diags_sort(struct diag_list *d, size_t from)
{
	for (size_t i = from + 1; i < d->n; i++) {
		struct diag tmp = d->items[i];
		size_t j = i;
		while (j > from && diag_order(&d->items[j - 1], &tmp) > 0) {
			d->items[j] = d->items[j - 1];
			j--;
		}
		d->items[j] = tmp;
	}
}

int compile_snapshot(const struct snapshot *snap, const struct compile_options *o,
                     struct route_table **table, struct diag_list *diags)
{
	struct ctx c = {.snap = snap, .o = o, .diags = diags};
	size_t first_diag = diags->n;
	c.t = route_table_new();
	if (!c.t)
		return WEIR_ENOMEM;
	index_slices(&c);
	settings_from_configmap(&c);
	size_t ning;
	json_object **ings = our_ingresses(snap, o, &ning);
	bool default_set = false;
	for (size_t i = 0; i < ning; i++)
		process_ingress(&c, ings[i], &default_set);
	free(ings);
	apply_canaries(&c);
	apply_aliases(&c);
	finalize(&c);
	ctx_cleanup(&c);
	diags_sort(diags, first_diag);
	*table = c.t;
	return 0;
}
