/* tests/unit/controller/compile_incr_test.c - the incremental compile is the
 * full compile: over random Ingress churn (hosts shared between Ingresses,
 * server aliases, www redirects, TLS, canaries, passthrough, a default
 * backend, bad annotations, missing Services, class changes), every step
 * compile_incr_apply takes gives the table compile_snapshot gives, byte for
 * byte, with the same diagnostics; every host it does not name as changed is
 * the same host as before (the publisher reuses its shard); and the steps it
 * refuses are the ones it must. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "controller/compile.h"
#include "controller/compile_incr.h"
#include "controller/refs.h"
#include "controller/store.h"
#include "error.h"
#include "test_cert.h"

static const struct compile_options OPTS = {.ingress_class = "weir",
                                            .controller_name = "weir.dev/ingress-controller"};

static char *b64(const char *in)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(in), o = 0;
	char *out = malloc(n * 4 / 3 + 8);
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)in[i] << 16;
		if (i + 1 < n)
			v |= (unsigned char)in[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)in[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

static void put(struct store *s, enum store_kind k, const char *json)
{
	json_object *o = json_tokener_parse(json);
	CHECK(o != NULL);
	if (!o)
		fprintf(stderr, "bad JSON: %s\n", json);
	CHECK_INT(store_upsert(s, k, o), 0);
}

static void base(struct store *s)
{
	put(s, STORE_INGRESS_CLASS,
	    "{\"metadata\":{\"name\":\"weir\"},"
	    "\"spec\":{\"controller\":\"weir.dev/ingress-controller\"}}");
	char buf[1024];
	for (int i = 0; i < 5; i++) {
		for (int n = 0; n < 2; n++) {
			const char *ns = n ? "b" : "a";
			snprintf(buf, sizeof(buf),
			         "{\"metadata\":{\"name\":\"s%d\",\"namespace\":\"%s\"},\"spec\":{"
			         "\"ports\":[{\"name\":\"http\",\"port\":80}]}}",
			         i, ns);
			put(s, STORE_SERVICE, buf);
			snprintf(
			    buf, sizeof(buf),
			    "{\"metadata\":{\"name\":\"s%d-1\",\"namespace\":\"%s\",\"labels\":{"
			    "\"kubernetes.io/service-name\":\"s%d\"}},\"addressType\":\"IPv4\","
			    "\"ports\":[{\"name\":\"http\",\"port\":8080}],\"endpoints\":["
			    "{\"addresses\":[\"10.%d.0.%d\"],\"conditions\":{\"ready\":true}}]}",
			    i, ns, i, n, i + 1);
			put(s, STORE_ENDPOINT_SLICE, buf);
		}
	}
	char *crt = b64(CERT_PEM), *key = b64(KEY_PEM);
	for (int n = 0; n < 2; n++) {
		char *sec = NULL;
		if (asprintf(&sec,
		             "{\"metadata\":{\"name\":\"tls\",\"namespace\":\"%s\"},"
		             "\"type\":\"kubernetes.io/tls\",\"data\":{\"tls.crt\":\"%s\","
		             "\"tls.key\":\"%s\"}}",
		             n ? "b" : "a", crt, key) < 0)
			abort();
		put(s, STORE_SECRET, sec);
		free(sec);
	}
	free(crt);
	free(key);
}

static const char *const SPECIAL[] = {"h1.example.com", "www.h1.example.com", "*.w.example.com",
                                      "secure.example.com", ""};

static unsigned pick(unsigned *seed, unsigned n)
{
	return (unsigned)rand_r(seed) % n;
}

/* A host name: mostly one of 40 plain ones, sometimes one that interacts
 * (www twins, a wildcard, the certificate's name, no host). */
static const char *random_host(unsigned *seed)
{
	static char buf[8][32];
	static unsigned next;
	if (pick(seed, 8) == 0)
		return SPECIAL[pick(seed, 5)];
	char *b = buf[next++ % 8];
	snprintf(b, sizeof(buf[0]), "h%u.example.com", pick(seed, 40));
	return b;
}

/* A random Ingress ing-<id> in namespace a or b. */
static void random_ingress(struct store *s, int id, unsigned *seed)
{
	char ann[1024] = "", rules[2048] = "", tls[256] = "", extra[256] = "";
	size_t al = 0, rl = 0;
	const char *ns = id % 2 ? "b" : "a";
#define ANN(...) (al += (size_t)snprintf(ann + al, sizeof(ann) - al, __VA_ARGS__))
	const char *sep = "";
	if (pick(seed, 4) == 0) {
		ANN("%s\"nginx.ingress.kubernetes.io/server-alias\":\"%s\"", sep,
		    random_host(seed));
		sep = ",";
	}
	if (pick(seed, 4) == 0) {
		ANN("%s\"nginx.ingress.kubernetes.io/from-to-www-redirect\":\"true\"", sep);
		sep = ",";
	}
	bool canary = pick(seed, 10) == 0;
	if (canary) {
		ANN("%s\"nginx.ingress.kubernetes.io/canary\":\"true\","
		    "\"nginx.ingress.kubernetes.io/canary-weight\":\"%u\"",
		    sep, pick(seed, 100));
		sep = ",";
	}
	if (pick(seed, 15) == 0) {
		ANN("%s\"nginx.ingress.kubernetes.io/ssl-passthrough\":\"true\"", sep);
		sep = ",";
	}
	if (pick(seed, 5) == 0) {
		ANN("%s\"nginx.ingress.kubernetes.io/rewrite-target\":\"/%u\"", sep, pick(seed, 3));
		sep = ",";
	}
	if (pick(seed, 5) == 0) {
		ANN("%s\"nginx.ingress.kubernetes.io/ssl-redirect\":\"%s\"", sep,
		    pick(seed, 2) ? "true" : "false");
		sep = ",";
	}
	if (pick(seed, 40) == 0) { /* a bad value: the Ingress is dropped */
		ANN("%s\"nginx.ingress.kubernetes.io/proxy-body-size\":\"big\"", sep);
		sep = ",";
	}
#undef ANN
	unsigned nrules = 1 + pick(seed, 2);
	const char *first_host = NULL;
	for (unsigned r = 0; r < nrules; r++) {
		const char *host = random_host(seed);
		if (!first_host)
			first_host = host;
		char paths[1024] = "";
		size_t pl = 0;
		unsigned np = 1 + pick(seed, 2);
		static const char *const P[] = {"/", "/api", "/x"};
		for (unsigned p = 0; p < np; p++) {
			char own[32];
			snprintf(own, sizeof(own), "/i%d-%u", id, p);
			/* mostly a path of its own; a shared one now and then
			 * (conflicts, canaries that attach) */
			const char *path = canary || pick(seed, 4) == 0 ? P[pick(seed, 3)] : own;
			unsigned svc = pick(seed, 40); /* 5 Services; s5 missing, rarely */
			pl += (size_t)snprintf(
			    paths + pl, sizeof(paths) - pl,
			    "%s{\"path\":\"%s\",\"pathType\":\"%s\",\"backend\":{\"service\":{"
			    "\"name\":\"s%u\",\"port\":{\"number\":80}}}}",
			    p ? "," : "", path, pick(seed, 3) ? "Prefix" : "Exact",
			    svc < 39 ? svc % 5 : 5);
		}
		rl += (size_t)snprintf(rules + rl, sizeof(rules) - rl,
		                       "%s{%s%s%s\"http\":{\"paths\":[%s]}}", r ? "," : "",
		                       *host ? "\"host\":\"" : "", host, *host ? "\"," : "", paths);
	}
	if (*first_host &&
	    (strcmp(first_host, "secure.example.com") == 0 ? pick(seed, 2) : pick(seed, 12)) == 0)
		snprintf(tls, sizeof(tls), ",\"tls\":[{\"hosts\":[\"%s\"],\"secretName\":\"tls\"}]",
		         first_host);
	if (pick(seed, 25) == 0)
		snprintf(
		    extra, sizeof(extra),
		    ",\"defaultBackend\":{\"service\":{\"name\":\"s%u\",\"port\":{\"number\":80}}}",
		    pick(seed, 5));
	const char *cls = pick(seed, 15) == 0 ? "other" : "weir";
	char *obj = NULL;
	if (asprintf(&obj,
	             "{\"metadata\":{\"name\":\"ing-%d\",\"namespace\":\"%s\","
	             "\"creationTimestamp\":\"2026-01-%02uT00:00:00Z\",\"annotations\":{%s}},"
	             "\"spec\":{\"ingressClassName\":\"%s\",\"rules\":[%s]%s%s}}",
	             id, ns, 1 + pick(seed, 28), ann, cls, rules, tls, extra) < 0)
		abort();
	put(s, STORE_INGRESS, obj);
	free(obj);
}

static char *text_of(const struct route_table *t)
{
	char *json = NULL;
	size_t len = 0;
	CHECK_INT(route_table_serialize(t, &json, &len), 0);
	return json;
}

static char *diags_text(const struct diag_list *d)
{
	char *out = strdup("");
	for (size_t i = 0; i < d->n; i++) {
		const struct diag *g = &d->items[i];
		char *n = NULL;
		if (asprintf(&n, "%s%s %s/%s %s %s: %s\n", out, g->kind, g->ns, g->name,
		             g->key ? g->key : "-", g->reason, g->message) < 0)
			abort();
		free(out);
		out = n;
	}
	for (size_t i = 0; i < d->ndropped; i++) {
		char *n = NULL;
		if (asprintf(&n, "%sdropped %s\n", out, d->dropped[i]) < 0)
			abort();
		free(out);
		out = n;
	}
	return out;
}

/* A host as the publisher sees it: its text with every index replaced by
 * the name it points at. */
static char *host_by_names(const struct route_table *t, const struct route_host *h)
{
	struct route_host c = *h;
	c.routes = calloc(h->nroutes + 1, sizeof(*c.routes));
	memcpy(c.routes, h->routes, h->nroutes * sizeof(*c.routes));
	char names[4096] = "";
	size_t nl = 0;
#define NAME(i, arr) ((i) >= 0 ? t->arr[(i)].name : "-")
	nl += (size_t)snprintf(names + nl, sizeof(names) - nl, " cert=%s", NAME(h->cert, certs));
	c.cert = h->cert >= 0 ? 0 : h->cert;
	for (size_t j = 0; j < h->nroutes; j++) {
		struct route *r = &c.routes[j];
		nl += (size_t)snprintf(
		    names + nl, sizeof(names) - nl, " %s|%s|%s", NAME(r->backend, backends),
		    NAME(r->canary.backend, backends), NAME(r->error_backend, backends));
		r->backend = r->backend >= 0 ? 0 : r->backend;
		r->canary.backend = r->canary.backend >= 0 ? 0 : r->canary.backend;
		r->error_backend = r->error_backend >= 0 ? 0 : r->error_backend;
	}
#undef NAME
	char *text = NULL, *out = NULL;
	size_t len = 0;
	CHECK_INT(route_host_serialize(&c, &text, &len), 0);
	if (asprintf(&out, "%s%s", text, names) < 0)
		abort();
	free(text);
	free(c.routes);
	return out;
}

static const struct route_host *host_named(const struct route_table *t, const char *name)
{
	for (size_t i = 0; i < t->nhosts; i++)
		if (strcmp(t->hosts[i].name, name) == 0)
			return &t->hosts[i];
	return NULL;
}

static bool named(char **list, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], name) == 0)
			return true;
	return false;
}

/* a and b have the same backends, certificates, CAs and backend TLS
 * profiles in the same order, with the same content. */
static bool same_arrays(const struct route_table *a, const struct route_table *b)
{
	if (a->nbackends != b->nbackends || a->ncerts != b->ncerts || a->ncas != b->ncas ||
	    a->nbackend_tls != b->nbackend_tls)
		return false;
	for (size_t i = 0; i < a->nbackends; i++)
		if (strcmp(a->backends[i].name, b->backends[i].name) != 0 ||
		    !route_backend_equal(&a->backends[i], &b->backends[i]))
			return false;
	for (size_t i = 0; i < a->ncerts; i++)
		if (strcmp(a->certs[i].name, b->certs[i].name) != 0 ||
		    strcmp(a->certs[i].cert_pem, b->certs[i].cert_pem) != 0 ||
		    strcmp(a->certs[i].key_pem, b->certs[i].key_pem) != 0)
			return false;
	for (size_t i = 0; i < a->ncas; i++)
		if (strcmp(a->cas[i].name, b->cas[i].name) != 0 ||
		    strcmp(a->cas[i].ca_pem, b->cas[i].ca_pem) != 0)
			return false;
	for (size_t i = 0; i < a->nbackend_tls; i++)
		if (strcmp(a->backend_tls[i].name, b->backend_tls[i].name) != 0)
			return false;
	return true;
}

static void free_changed(char **changed, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(changed[i]);
	free(changed);
}

/* What a run of steps leaves to free. */
static void finish(struct route_table *t, struct diag_list *d, struct snapshot *a,
                   struct compile_incr *inc, struct refs *refs, struct store *s)
{
	route_table_free(t);
	diag_list_cleanup(d);
	snapshot_free(a);
	compile_incr_free(inc);
	refs_free(refs);
	store_free(s);
}

static int kept_steps, kept_differ;
static int other_applied, other_refused; /* steps with another kind changed too */
static int namer_applied;                /* ... that compiled an unchanged Ingress again */

/* A change to another kind of object: Services and EndpointSlices no
 * Ingress names (u0, u1) or that one rarely names (s5), Secrets no Ingress
 * names or the one TLS Ingresses name, a named Service's port renamed (its
 * EndpointSlice's port then no longer matches), or an object removed. */
static void random_other(struct store *s, unsigned *seed)
{
	char buf[512];
	const char *ns = pick(seed, 2) ? "b" : "a";
	static const char *const SVC[] = {"u0", "u1", "s5", "s2"};
	const char *svc = SVC[pick(seed, 4)];
	switch (pick(seed, 5)) {
	case 0:
		/* another port: seen, compiles the same; a renamed one: the
		 * slice's port no longer matches */
		static const char *const PORTS[] = {
		    "{\"name\":\"http\",\"port\":80}",
		    "{\"name\":\"http\",\"port\":80},{\"name\":\"admin\",\"port\":9090}",
		    "{\"name\":\"web\",\"port\":80}"};
		snprintf(buf, sizeof(buf),
		         "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\"},\"spec\":{"
		         "\"ports\":[%s]}}",
		         svc, ns, PORTS[pick(seed, 3)]);
		put(s, STORE_SERVICE, buf);
		break;
	case 1:
		snprintf(buf, sizeof(buf),
		         "{\"metadata\":{\"name\":\"%s-9\",\"namespace\":\"%s\",\"labels\":{"
		         "\"kubernetes.io/service-name\":\"%s\"}},\"addressType\":\"IPv4\","
		         "\"ports\":[{\"name\":\"http\",\"port\":8080}],\"endpoints\":["
		         "{\"addresses\":[\"10.9.0.%u\"],\"conditions\":{\"ready\":true}}]}",
		         svc, ns, svc, 1 + pick(seed, 200));
		put(s, STORE_ENDPOINT_SLICE, buf);
		break;
	case 2: {
		/* the pair TLS Ingresses name, its certificate's text changed
		 * now and then (a line end more: another digest), or another */
		char pem[sizeof(CERT_PEM) + 1];
		snprintf(pem, sizeof(pem), "%s%s", CERT_PEM, pick(seed, 2) ? "\n" : "");
		char *crt = b64(pem), *key = b64(KEY_PEM), *sec = NULL;
		if (asprintf(&sec,
		             "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\",\"labels\":{"
		             "\"v\":\"%u\"}},\"type\":\"kubernetes.io/tls\",\"data\":{"
		             "\"tls.crt\":\"%s\",\"tls.key\":\"%s\"}}",
		             pick(seed, 3) ? "tls" : "other", ns, pick(seed, 1000), crt, key) < 0)
			abort();
		put(s, STORE_SECRET, sec);
		free(sec);
		free(crt);
		free(key);
		break;
	}
	case 3:
		store_delete(s, STORE_SERVICE, ns, pick(seed, 2) ? "u0" : "u1");
		break;
	default:
		snprintf(buf, sizeof(buf), "%s-9", svc);
		store_delete(s, STORE_ENDPOINT_SLICE, ns, buf);
		break;
	}
}

static bool count_diff(void *arg, const char *ns, const char *name, json_object *old,
                       json_object *now)
{
	(void)ns;
	(void)name;
	(void)old;
	(void)now;
	(*(size_t *)arg)++;
	return true;
}

/* judged: other kinds change too, and the refs of the last snapshot
 * compiled judge them, as the controller's watch loop does. */
static void churn(unsigned seed, int steps, bool judged, int *applied, int *refused, int *multi)
{
	struct store *s = store_new();
	base(s);
	for (int id = 0; id < 24; id++)
		random_ingress(s, id, &seed);
	struct compile_incr *inc = compile_incr_new();
	struct refs *refs = refs_new();
	if (judged)
		compile_incr_set_judge(inc, refs_matters, refs_namers, refs);
	struct snapshot *a = store_snapshot(s);
	struct route_table *t = NULL;
	struct diag_list d = {0};
	CHECK_INT(compile_incr_full(inc, a, &OPTS, &t, &d), 0);
	refs_update(refs, a);
	for (int step = 0; step < steps; step++) {
		int nops = pick(&seed, 8) == 0 ? 3 : 1;
		bool other = judged && pick(&seed, 3) == 0;
		if (other)
			random_other(s, &seed);
		for (int op = 0; op < nops; op++) {
			int id = (int)pick(&seed, 30);
			if (pick(&seed, 6) == 0) {
				char name[32];
				snprintf(name, sizeof(name), "ing-%d", id);
				store_delete(s, STORE_INGRESS, id % 2 ? "b" : "a", name);
			} else {
				random_ingress(s, id, &seed);
			}
		}
		struct snapshot *b = store_snapshot(s);
		struct route_table *before = NULL;
		char *old_text = text_of(t);
		char err[256];
		CHECK_INT(route_table_parse(old_text, strlen(old_text), &before, err, sizeof(err)),
		          0);
		char **changed = NULL;
		size_t nchanged = 0;
		struct compile_incr_stats st;
		int rc = compile_incr_apply(inc, a, b, &OPTS, t, &d, &changed, &nchanged, &st);
		struct route_table *full = NULL;
		struct diag_list fd = {0};
		CHECK_INT(compile_snapshot(b, &OPTS, &full, &fd), 0);
		if (rc == 0) {
			(*applied)++;
			other_applied += other;
			size_t ning = 0;
			snapshot_diff_kind(a, b, STORE_INGRESS, count_diff, &ning);
			namer_applied += other && st.changed > ning;
			if (st.recompiled > 1)
				(*multi)++;
			char *got = text_of(t), *want = text_of(full);
			CHECK_STR(got, want);
			/* arrays_kept is never claimed wrongly (it may be missed) */
			if (st.arrays_kept) {
				kept_steps++;
				CHECK(same_arrays(before, t));
			} else if (same_arrays(before, t)) {
				kept_differ++;
			}
			char *gd = diags_text(&d), *wd = diags_text(&fd);
			CHECK_STR(gd, wd);
			/* hosts not named as changed are as they were */
			for (size_t i = 0; i < t->nhosts; i++) {
				if (named(changed, nchanged, t->hosts[i].name))
					continue;
				const struct route_host *o = host_named(before, t->hosts[i].name);
				CHECK(o != NULL);
				if (!o)
					continue;
				char *x = host_by_names(t, &t->hosts[i]),
				     *y = host_by_names(before, o);
				CHECK_STR(x, y);
				free(x);
				free(y);
			}
			free(got);
			free(want);
			free(gd);
			free(wd);
			route_table_free(full);
			diag_list_cleanup(&fd);
		} else {
			CHECK_INT(rc, WEIR_EAGAIN);
			(*refused)++;
			other_refused += other;

			route_table_free(full);
			diag_list_cleanup(&fd);
			route_table_free(t);
			diag_list_cleanup(&d);
			t = NULL;
			CHECK_INT(compile_incr_full(inc, b, &OPTS, &t, &d), 0);
		}
		refs_update(refs, b); /* the judge of the next step knows b */
		free_changed(changed, nchanged);
		free(old_text);
		route_table_free(before);
		snapshot_free(a);
		a = b;
	}
	finish(t, &d, a, inc, refs, s);
}

/* A Service or TLS Secret that Ingresses name changes, and nothing else:
 * each step compiles again exactly the Ingresses that name it (refs_namers
 * finds them) and gives the table a full compile gives. */
static void namer_steps(void)
{
	struct store *s = store_new();
	base(s);
	char buf[1024];
	for (int i = 0; i < 30; i++) {
		snprintf(
		    buf, sizeof(buf),
		    "{\"metadata\":{\"name\":\"n%d\",\"namespace\":\"%s\"},\"spec\":{"
		    "\"ingressClassName\":\"weir\",\"rules\":[{\"host\":\"n%d.example.com\","
		    "\"http\":{\"paths\":[{\"path\":\"/\",\"pathType\":\"Prefix\",\"backend\":{"
		    "\"service\":{\"name\":\"s%d\",\"port\":{\"number\":80}}}}]}}]%s}}",
		    i, i % 2 ? "b" : "a", i, i % 5,
		    i % 3 ? ""
		          : (i % 2 ? ",\"tls\":[{\"hosts\":[\"n0.example.com\"],\"secretName\":"
		                     "\"tls\"}]"
		                   : ",\"tls\":[{\"secretName\":\"tls\"}]"));
		put(s, STORE_INGRESS, buf);
	}
	struct compile_incr *inc = compile_incr_new();
	struct refs *refs = refs_new();
	compile_incr_set_judge(inc, refs_matters, refs_namers, refs);
	struct snapshot *a = store_snapshot(s);
	struct route_table *t = NULL;
	struct diag_list d = {0};
	CHECK_INT(compile_incr_full(inc, a, &OPTS, &t, &d), 0);
	CHECK_INT(d.n, 0);
	refs_update(refs, a);
	unsigned seed = 77;
	bool two_ports[5][2] = {{false}}, newline[2] = {false};
	for (int step = 0; step < 60; step++) {
		int n = (int)pick(&seed, 2);
		const char *ns = n ? "b" : "a";
		size_t want = 0; /* Ingresses that name what changes */
		if (pick(&seed, 3)) {
			int k = (int)pick(&seed, 5);
			two_ports[k][n] = !two_ports[k][n];
			snprintf(buf, sizeof(buf),
			         "{\"metadata\":{\"name\":\"s%d\",\"namespace\":\"%s\"},\"spec\":{"
			         "\"ports\":[{\"name\":\"http\",\"port\":80}%s]}}",
			         k, ns,
			         two_ports[k][n] ? ",{\"name\":\"admin\",\"port\":9090}" : "");
			put(s, STORE_SERVICE, buf);
			for (int i = 0; i < 30; i++)
				want += i % 2 == n && i % 5 == k;
		} else {
			newline[n] = !newline[n];
			char pem[sizeof(CERT_PEM) + 1];
			snprintf(pem, sizeof(pem), "%s%s", CERT_PEM, newline[n] ? "\n" : "");
			char *crt = b64(pem), *key = b64(KEY_PEM), *sec = NULL;
			if (asprintf(&sec,
			             "{\"metadata\":{\"name\":\"tls\",\"namespace\":\"%s\"},"
			             "\"type\":\"kubernetes.io/tls\",\"data\":{\"tls.crt\":\"%s\","
			             "\"tls.key\":\"%s\"}}",
			             ns, crt, key) < 0)
				abort();
			put(s, STORE_SECRET, sec);
			free(sec);
			free(crt);
			free(key);
			for (int i = 0; i < 30; i++)
				want += i % 2 == n && i % 3 == 0;
		}
		struct snapshot *b = store_snapshot(s);
		char **changed = NULL;
		size_t nchanged = 0;
		struct compile_incr_stats st;
		CHECK_INT(compile_incr_apply(inc, a, b, &OPTS, t, &d, &changed, &nchanged, &st), 0);
		CHECK_INT(st.changed, want);
		struct route_table *full = NULL;
		struct diag_list fd = {0};
		CHECK_INT(compile_snapshot(b, &OPTS, &full, &fd), 0);
		char *got = text_of(t), *wantt = text_of(full);
		CHECK_STR(got, wantt);
		free(got);
		free(wantt);
		route_table_free(full);
		diag_list_cleanup(&fd);
		free_changed(changed, nchanged);
		refs_update(refs, b);
		snapshot_free(a);
		a = b;
	}
	finish(t, &d, a, inc, refs, s);
}

/* Other kinds of change are refused; nothing changed is nothing to do. */
static void refusals(void)
{
	struct store *s = store_new();
	base(s);
	unsigned seed = 5;
	random_ingress(s, 0, &seed);
	put(s, STORE_INGRESS,
	    "{\"metadata\":{\"name\":\"names-s0\",\"namespace\":\"a\"},\"spec\":{"
	    "\"ingressClassName\":\"weir\",\"rules\":[{\"host\":\"s0.example.com\",\"http\":{"
	    "\"paths\":[{\"path\":\"/\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{"
	    "\"name\":\"s0\",\"port\":{\"number\":80}}}}]}}]}}");
	struct compile_incr *inc = compile_incr_new();
	struct snapshot *a = store_snapshot(s);
	struct route_table *t = NULL;
	struct diag_list d = {0};
	CHECK_INT(compile_incr_full(inc, a, &OPTS, &t, &d), 0);
	char **changed = NULL;
	size_t n = 0;
	struct compile_incr_stats st;
	struct snapshot *same = store_snapshot(s);
	CHECK_INT(compile_incr_apply(inc, a, same, &OPTS, t, &d, &changed, &n, &st), 0);
	CHECK_INT(n, 0);
	CHECK_INT(st.changed, 0);
	free(changed);
	put(s, STORE_SERVICE, "{\"metadata\":{\"name\":\"s9\",\"namespace\":\"a\"},\"spec\":{}}");
	struct snapshot *b = store_snapshot(s);
	CHECK_INT(compile_incr_apply(inc, same, b, &OPTS, t, &d, &changed, &n, &st), WEIR_EAGAIN);
	CHECK(changed == NULL);
	/* with the refs of the snapshot compiled as judge: s9 is a Service no
	 * Ingress names, so nothing to do; s0 is one names-s0 names: it
	 * compiles again; a ConfigMap named weir (the settings) reaches every
	 * Ingress: refused */
	struct refs *refs = refs_new();
	refs_update(refs, same);
	compile_incr_set_judge(inc, refs_matters, refs_namers, refs);
	CHECK_INT(compile_incr_apply(inc, same, b, &OPTS, t, &d, &changed, &n, &st), 0);
	CHECK_INT(n, 0);
	free(changed);
	changed = NULL;
	put(s, STORE_SERVICE,
	    "{\"metadata\":{\"name\":\"s0\",\"namespace\":\"a\"},\"spec\":{\"ports\":["
	    "{\"name\":\"http\",\"port\":80},{\"name\":\"admin\",\"port\":9090}]}}");
	struct snapshot *c = store_snapshot(s);
	CHECK_INT(compile_incr_apply(inc, b, c, &OPTS, t, &d, &changed, &n, &st), 0);
	CHECK(st.changed >= 1 && st.recompiled >= 1);
	for (size_t i = 0; i < n; i++)
		free(changed[i]);
	free(changed);
	changed = NULL;
	refs_update(refs, c);
	put(s, STORE_CONFIGMAP,
	    "{\"metadata\":{\"name\":\"weir\",\"namespace\":\"a\"},\"data\":{\"x\":\"1\"}}");
	struct snapshot *e = store_snapshot(s);
	CHECK_INT(compile_incr_apply(inc, c, e, &OPTS, t, &d, &changed, &n, &st), WEIR_EAGAIN);
	CHECK(changed == NULL);
	snapshot_free(c);
	snapshot_free(e);
	refs_free(refs);
	snapshot_free(a);
	snapshot_free(same);
	snapshot_free(b);
	route_table_free(t);
	diag_list_cleanup(&d);
	compile_incr_free(inc);
	store_free(s);
}

int main(void)
{
	refusals();
	namer_steps();
	int applied = 0, refused = 0, multi = 0;
	for (unsigned seed = 1; seed <= 8; seed++)
		churn(seed, 150, false, &applied, &refused, &multi);
	printf("incremental steps %d, refused %d, with more than one Ingress compiled %d\n",
	       applied, refused, multi);
	int japplied = 0, jrefused = 0, jmulti = 0;
	for (unsigned seed = 9; seed <= 16; seed++)
		churn(seed, 150, true, &japplied, &jrefused, &jmulti);
	printf("with other kinds changing, judged by refs: incremental steps %d, refused %d; "
	       "of those with another kind changed, %d incremental (%d with Ingresses that "
	       "name it compiled again) and %d refused\n",
	       japplied, jrefused, other_applied, namer_applied, other_refused);
	/* about as many steps go the fast way as without the other changes: a
	 * change no Ingress sees leaves it open */
	CHECK(other_applied > 60);
	CHECK(other_refused > 20); /* and one they see closes it */
	CHECK(applied > 200);      /* most steps go the fast way */
	CHECK(refused > 20);       /* and the refusal paths are exercised */
	CHECK(multi > 20);         /* shared hosts pull in their other Ingresses */
	printf("steps that kept the arrays %d (said so), %d (not said)\n", kept_steps, kept_differ);
	CHECK(kept_steps > 50);
	return check_finish("compile_incr_test");
}
