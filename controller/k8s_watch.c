/* controller/k8s_watch.c - list+watch per kind, each in its own thread, feeding the store.
 *
 * Each kind runs: list (limit=500 pages, continue tokens; the first list resourceVersion=0, from
 * the API server's watch cache in one response; items parsed as they arrive) -> store_replace
 * -> watch from the list's resourceVersion with bookmarks -> per event store_upsert/store_delete.
 * A watch that ends (server timeoutSeconds, dropped connection, our own deadline) resumes from
 * the last resourceVersion seen; "410 Gone" (HTTP status or ERROR event) relists. Failures back
 * off exponentially (250 ms doubling to 30 s, jittered) and are logged once per state change.
 *
 * Each watch is its own HTTP/1.1 connection. Six (seven) long-lived streams are cheap for the API
 * server, a stalled or reset connection only affects its own kind, cancelling one is just
 * closing its socket, and no HTTP/2 flow-control window shared by the streams can let one
 * large burst (a relist of thousands of Secrets) delay the events of another kind. HTTP/2
 * multiplexing would save five TLS handshakes per restart, which is not worth those couplings
 * at this scale. */
#include "k8s_watch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "error.h"
#include "k8s_client.h"
#include "log.h"
#include "telemetry.h"

#define LIST_LIMIT 500
#define LIST_PAGES_MAX 100000 /* 50 million objects: a bound, not a expectation */
#define LIST_BODY_MAX ((size_t)256 << 20)
#define LIST_SECONDS 120
#define EVENT_LINE_MAX ((size_t)64 << 20)
#define WATCH_TIMEOUT_MIN 300
#define WATCH_TIMEOUT_SPREAD 301
#define WATCH_DEADLINE_MARGIN 30 /* our own bound past the server's timeoutSeconds */
#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS 30000

static const char *const LOG_C = "controller.k8s_watch";

/* ---- backoff ---- */

struct backoff {
	unsigned attempt;
	unsigned seed;
};

/* Next delay: the ceiling doubles from 250 ms to 30 s; the delay is drawn uniformly from
 * [ceiling/2, ceiling] so that replicas restarted together do not retry in lockstep. */
static long backoff_next_ms(struct backoff *b)
{
	long ceil = BACKOFF_BASE_MS;

	for (unsigned i = 0; i < b->attempt && ceil < BACKOFF_CAP_MS; i++)
		ceil *= 2;
	if (ceil > BACKOFF_CAP_MS)
		ceil = BACKOFF_CAP_MS;
	if (b->attempt < 64)
		b->attempt++;
	return ceil / 2 + (long)(rand_r(&b->seed) % (unsigned)(ceil / 2 + 1));
}

static void backoff_reset(struct backoff *b)
{
	b->attempt = 0;
}

/* ---- watch stream decoder: newline-delimited JSON events ---- */

/* Called per event with its type ("ADDED", ...; borrowed for the call) and object, which
 * the callback owns (one reference, no longer part of the parsed event: json-c's reference
 * counts are not atomic, so an object handed to the store must have no other owner left
 * to put it from this thread). A non-zero return stops decoding and is returned by
 * watch_decoder_feed. */
typedef int (*watch_event_cb)(void *arg, const char *type, json_object *obj);

struct watch_decoder {
	char *buf; /* bytes of an incomplete line */
	size_t len, cap, max;
	watch_event_cb cb;
	void *arg;
	json_tokener *tok;
};

static void watch_decoder_init(struct watch_decoder *d, size_t max, watch_event_cb cb, void *arg)
{
	memset(d, 0, sizeof(*d));
	d->max = max;
	d->cb = cb;
	d->arg = arg;
	d->tok = json_tokener_new_ex(64);
	if (!d->tok)
		abort();
}

static void watch_decoder_cleanup(struct watch_decoder *d)
{
	free(d->buf);
	json_tokener_free(d->tok);
	memset(d, 0, sizeof(*d));
}

/* Discard any partial line (a new stream starts). */
static void watch_decoder_reset(struct watch_decoder *d)
{
	d->len = 0;
}

/* Decode one complete line (without its newline). Blank lines are keep-alives. */
static int decode_line(struct watch_decoder *d, const char *p, size_t n)
{
	json_object *ev, *type, *obj;
	enum json_tokener_error jerr;
	int rc;

	while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	while (n && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	if (!n)
		return 0;
	if (n > (size_t)INT32_MAX)
		return WEIR_ETOOBIG;
	json_tokener_reset(d->tok);
	ev = json_tokener_parse_ex(d->tok, p, (int)n);
	jerr = json_tokener_get_error(d->tok);
	if (!ev || jerr != json_tokener_success || json_tokener_get_parse_end(d->tok) != n) {
		json_object_put(ev);
		log_debug(LOG_C, "bad watch event line (%zu bytes): %s", n,
		          json_tokener_error_desc(jerr));
		return WEIR_EPARSE;
	}
	if (!json_object_object_get_ex(ev, "type", &type) ||
	    !json_object_is_type(type, json_type_string) ||
	    !json_object_object_get_ex(ev, "object", &obj) ||
	    !json_object_is_type(obj, json_type_object)) {
		json_object_put(ev);
		return WEIR_EPARSE;
	}
	json_object_get(obj);
	json_object_object_del(ev, "object");
	rc = d->cb(d->arg, json_object_get_string(type), obj);
	json_object_put(ev);
	return rc;
}

/* Feed bytes as they arrive, in any chunking. Complete lines are decoded at once; a line
 * longer than the cap fails with WEIR_ETOOBIG (the caller restarts the watch). */
static int watch_decoder_feed(struct watch_decoder *d, const char *data, size_t len)
{
	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;
		int rc;

		if (d->len == 0 && nl) {
			/* Whole line inside this chunk: no copy. */
			if (take > d->max)
				return WEIR_ETOOBIG;
			rc = decode_line(d, data, take);
		} else {
			if (take > d->max - d->len)
				return WEIR_ETOOBIG;
			if (d->len + take > d->cap) {
				size_t ncap = d->cap ? d->cap : 65536;
				char *nb;

				while (ncap < d->len + take)
					ncap *= 2;
				if (ncap > d->max)
					ncap = d->max;
				nb = realloc(d->buf, ncap);
				if (!nb)
					return WEIR_ENOMEM;
				d->buf = nb;
				d->cap = ncap;
			}
			memcpy(d->buf + d->len, data, take);
			d->len += take;
			if (!nl)
				return 0;
			rc = decode_line(d, d->buf, d->len);
			d->len = 0;
		}
		if (rc)
			return rc;
		data += take + 1;
		len -= take + 1;
	}
	return 0;
}

/* ---- kinds ---- */

struct kind_def {
	enum store_kind kind;
	const char *name;   /* Kind, also the telemetry label */
	const char *prefix; /* "/api/v1" or "/apis/GROUP/VERSION" */
	const char *resource;
	bool namespaced;
	const char *selector; /* fieldSelector, already escaped */
};

/* Secrets of every type but two: kubernetes.io/tls for certificates and, as
 * ingress-nginx reads any Secret an annotation names, the Opaque ones of
 * auth-secret and auth-tls-secret (ca.crt). Left out: Helm release records (large and many) and
 * service account tokens (credentials weir has no use for). Field selectors AND their terms:
 * "type!=helm.sh/release.v1,type!=kubernetes.io/service-account-token". */
#define SECRET_SELECTOR                                                                            \
	"type%21%3Dhelm.sh%2Frelease.v1%2Ctype%21%3Dkubernetes.io%2Fservice-account-token"

static const struct kind_def kind_defs[] = {
    {STORE_INGRESS, "Ingress", "/apis/networking.k8s.io/v1", "ingresses", true, NULL},
    {STORE_INGRESS_CLASS, "IngressClass", "/apis/networking.k8s.io/v1", "ingressclasses", false,
     NULL},
    {STORE_SERVICE, "Service", "/api/v1", "services", true, NULL},
    {STORE_ENDPOINT_SLICE, "EndpointSlice", "/apis/discovery.k8s.io/v1", "endpointslices", true,
     NULL},
    {STORE_SECRET, "Secret", "/api/v1", "secrets", true, SECRET_SELECTOR},
    {STORE_CONFIGMAP, "ConfigMap", "/api/v1", "configmaps", true, NULL},
};
#define NKINDS (sizeof(kind_defs) / sizeof(kind_defs[0]))

struct watcher {
	struct k8s_source *src;
	const struct kind_def *def;
	char *path;     /* collection path */
	char *selector; /* escaped fieldSelector or NULL */
	char *scope;    /* the one namespace listed, NULL: all (store_replace_in) */
	bool gauge;     /* reports the objects gauge of its kind (one watcher per kind) */
	char *rv;       /* last resourceVersion seen */
	struct backoff bo;
	struct watch_decoder dec;
	unsigned long events; /* in the current watch */
	bool listed;
	bool failing; /* logged as failing; the next success logs recovery */
	unsigned failures;
	pthread_t thread;
	bool started;
	atomic_bool synced;
};

struct k8s_source {
	struct k8s_client *c;
	struct store *s;
	atomic_bool stop; /* set under mu (for cv); read without it by the
	                     transfers */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct watcher w[NKINDS + 1]; /* + weir's ConfigMap outside the watched namespace */
	size_t nw;
};

/* Percent-encode everything but unreserved characters (continue tokens are base64). */
static char *url_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	if (!out)
		abort();
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			*o++ = (char)ch;
		} else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	*o = '\0';
	return out;
}

static const char *obj_str(json_object *obj, const char *a, const char *b)
{
	json_object *x, *y;

	if (!json_object_object_get_ex(obj, a, &x) || !json_object_object_get_ex(x, b, &y) ||
	    !json_object_is_type(y, json_type_string))
		return NULL;
	return json_object_get_string(y);
}

/* Members of a Service's spec that compile reads; the rest (clusterIPs, ipFamilies,
 * sessionAffinity, ...) is dropped, as is its status. */
static const char *const service_spec_kept[] = {"ports", "type", "externalName", "clusterIP"};

static bool kept_member(const char *key, const char *const *kept, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(key, kept[i]) == 0)
			return true;
	return false;
}

/* Delete every member of obj (a json object) not named in kept[0..n). */
static void keep_only(json_object *obj, const char *const *kept, size_t n)
{
	const char *drop[64];
	size_t ndrop;

	do { /* no deletion while iterating: collect, delete, repeat */
		ndrop = 0;
		json_object_object_foreach(obj, k, v)
		{
			(void)v;
			if (!kept_member(k, kept, n) && ndrop < sizeof(drop) / sizeof(drop[0]))
				drop[ndrop++] = k;
		}
		for (size_t i = 0; i < ndrop; i++)
			json_object_object_del(obj, drop[i]);
	} while (ndrop == sizeof(drop) / sizeof(drop[0]));
}

/* Of an EndpointSlice's endpoints compile reads addresses and conditions; the rest
 * (targetRef, an object per endpoint, nodeName, zone, hints, ...) is dropped. refs.c
 * compares endpoints whole, so a change there alone no longer wakes the compile loop. */
static const char *const endpoint_kept[] = {"addresses", "conditions"};

/* All that is read of the metadata of a Service, Secret or ConfigMap: its key (not its
 * labels and annotations, often a chart's or cert-manager's dozen). Of an EndpointSlice:
 * its key and the one label that names its Service. */
static const char *const key_kept[] = {"namespace", "name"};
static const char *const slice_meta_kept[] = {"namespace", "name", "labels"};
static const char *const slice_label_kept[] = {"kubernetes.io/service-name"};

/* Members of metadata no reader of the store uses. resourceVersion too: the watch reads
 * an event's before prepare_object, and a list's from the list. creationTimestamp is
 * read only of Ingresses (the older one wins a conflict), and uid too (the Events of
 * an Ingress's diagnostics name it; those of other kinds are only logged): an
 * IngressClass loses both, the other kinds keep even less (key_kept). */
static const char *const metadata_dropped[] = {
    "generation", "ownerReferences", "finalizers", "generateName", "selfLink", "resourceVersion"};

static void slim_slice_endpoints(json_object *obj)
{
	json_object *eps;

	if (!json_object_object_get_ex(obj, "endpoints", &eps) ||
	    !json_object_is_type(eps, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(eps); i++) {
		json_object *ep = json_object_array_get_idx(eps, i);

		if (json_object_is_type(ep, json_type_object))
			keep_only(ep, endpoint_kept,
			          sizeof(endpoint_kept) / sizeof(endpoint_kept[0]));
	}
}

/* An Ingress's status matters only for its loadBalancer.ingress list (the status pass
 * compares it, status_ingress_has); without entries, status_ingress_has answers the same
 * with no status at all. Each json-c object costs about 700 bytes (a 16-slot hash table),
 * and every Ingress the API returns has an empty {"loadBalancer": {}} until weir writes
 * one. */
static void slim_ingress_status(json_object *obj)
{
	json_object *st, *lb, *list;

	if (!json_object_object_get_ex(obj, "status", &st))
		return;
	if (json_object_is_type(st, json_type_object) &&
	    json_object_object_get_ex(st, "loadBalancer", &lb) &&
	    json_object_is_type(lb, json_type_object) &&
	    json_object_object_get_ex(lb, "ingress", &list) &&
	    json_object_is_type(list, json_type_array) && json_object_array_length(list) > 0)
		return;
	json_object_object_del(obj, "status");
}

/* Make an object smaller: managedFields and the last-applied annotation (often as big as
 * the object) gone, and members no reader of the store uses dropped (kind and apiVersion,
 * which list items omit anyway: the store knows the kind; a Service's status and most of
 * its spec, an Ingress's empty status, all metadata of a Service, Secret or ConfigMap but
 * its key; tests/unit/controller/k8s_watch_test.c checks that
 * compile's output is the same with and without). */
static void prepare_object(const struct kind_def *def, json_object *obj)
{
	json_object *meta, *ann, *spec;

	json_object_object_del(obj, "kind");
	json_object_object_del(obj, "apiVersion");
	if (json_object_object_get_ex(obj, "metadata", &meta) &&
	    json_object_is_type(meta, json_type_object)) {
		json_object_object_del(meta, "managedFields");
		for (size_t i = 0; i < sizeof(metadata_dropped) / sizeof(metadata_dropped[0]); i++)
			json_object_object_del(meta, metadata_dropped[i]);
		if (def->kind == STORE_SERVICE || def->kind == STORE_SECRET ||
		    def->kind == STORE_CONFIGMAP) {
			keep_only(meta, key_kept, 2);
		} else if (def->kind == STORE_ENDPOINT_SLICE) {
			json_object *labels;

			keep_only(meta, slice_meta_kept, 3);
			if (json_object_object_get_ex(meta, "labels", &labels) &&
			    json_object_is_type(labels, json_type_object))
				keep_only(labels, slice_label_kept, 1);
		} else if (def->kind != STORE_INGRESS) {
			json_object_object_del(meta, "creationTimestamp");
			json_object_object_del(meta, "uid");
		}
		if (json_object_object_get_ex(meta, "annotations", &ann) &&
		    json_object_is_type(ann, json_type_object))
			json_object_object_del(ann,
			                       "kubectl.kubernetes.io/last-applied-configuration");
	}
	/* Every ConfigMap of the watched namespaces is kept; compile reads
	 * only data. */
	if (def->kind == STORE_CONFIGMAP)
		json_object_object_del(obj, "binaryData");
	if (def->kind == STORE_SERVICE) {
		json_object_object_del(obj, "status");
		if (json_object_object_get_ex(obj, "spec", &spec) &&
		    json_object_is_type(spec, json_type_object))
			keep_only(spec, service_spec_kept,
			          sizeof(service_spec_kept) / sizeof(service_spec_kept[0]));
	}
	if (def->kind == STORE_INGRESS)
		slim_ingress_status(obj);
	if (def->kind == STORE_ENDPOINT_SLICE)
		slim_slice_endpoints(obj);
	/* Now, while the page is parsed, not in store_replace after the last
	 * page: the 16-slot tables and duplicate members freed here are reused
	 * by the next items instead of staying as holes in the heap (holes
	 * that made the first compile's mallocs a third slower). */
	store_share(obj);
}

/* The objects gauge of the watcher's kind: what the store holds of it in
 * the watcher's namespace (counted there, not kept in a set of keys of our
 * own: 10,000 objects made that set megabytes). */
static void gauge_update(struct watcher *w)
{
	if (w->gauge)
		telemetry_objects(w->def->name, store_count(w->src->s, w->def->kind, w->scope));
}

static void set_rv(struct watcher *w, const char *rv)
{
	if (!rv || !rv[0])
		return;
	if (w->rv && strcmp(w->rv, rv) == 0)
		return;
	free(w->rv);
	w->rv = strdup(rv);
	if (!w->rv)
		abort();
}

/* Interruptible sleep. Returns true when stopping. */
static bool sleep_ms(struct k8s_source *src, long ms)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&src->mu);
	while (!atomic_load(&src->stop)) {
		if (pthread_cond_timedwait(&src->cv, &src->mu, &ts) != 0)
			break;
	}
	stop = atomic_load(&src->stop);
	pthread_mutex_unlock(&src->mu);
	return stop;
}

/* Failure bookkeeping: one warning when a kind starts failing, debug lines after that, one
 * info line when it recovers. */
static void note_failure(struct watcher *w, const char *what, const char *detail)
{
	w->failures++;
	if (!w->failing) {
		log_warn(LOG_C, "%s: %s failed: %s (retrying with backoff)", w->def->name, what,
		         detail);
		w->failing = true;
	} else {
		log_debug(LOG_C, "%s: %s failed again (%u): %s", w->def->name, what, w->failures,
		          detail);
	}
}

static void note_success(struct watcher *w)
{
	if (w->failing)
		log_info(LOG_C, "%s: recovered after %u failed attempts", w->def->name,
		         w->failures);
	w->failing = false;
	w->failures = 0;
	backoff_reset(&w->bo);
}

/* ---- list ---- */

struct list_buf {
	char *data;
	size_t len, cap;
};

static int list_sink(void *arg, const char *data, size_t len)
{
	struct list_buf *b = arg;

	if (len > LIST_BODY_MAX - b->len)
		return WEIR_ETOOBIG;
	if (b->len + len + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 65536;
		char *nd;

		while (ncap < b->len + len + 1)
			ncap *= 2;
		nd = realloc(b->data, ncap);
		if (!nd)
			return WEIR_ENOMEM;
		b->data = nd;
		b->cap = ncap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

/* ---- list page: one item at a time ----
 *
 * A page is not parsed as one json-c tree: a scan finds the spans of the page's members and of
 * its items, and json-c parses each span on its own. So one item's nodes exist at a time, not
 * a page's (500 Ingresses: megabytes of json-c nodes, freed as holes among the kept ones), and
 * each item's metadata.managedFields and last-applied annotation are cut out of its text before
 * it is parsed: they were a quarter to a third of an item's nodes, built only to be deleted.
 * Every value is still parsed by json-c; the scan checks the punctuation between them. */

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* p at a '"': past the closing quote, or NULL. memchr finds each quote (a Secret's
 * certificate and key are kilobytes of base64 each); a quote after an odd run of backslashes
 * is escaped. */
static const char *string_end(const char *p, const char *end)
{
	const char *open = p;

	for (p++; p < end; p++) {
		const char *q = memchr(p, '"', (size_t)(end - p)), *b;

		if (!q)
			return NULL;
		for (b = q; b > open + 1 && b[-1] == '\\'; b--)
			;
		if ((q - b) % 2 == 0)
			return q + 1;
		p = q;
	}
	return NULL;
}

/* p at a value: past it, or NULL. Containers are matched by bracket depth (strings skipped);
 * what is inside is json-c's to check. */
static const char *value_end(const char *p, const char *end)
{
	int depth = 0;

	if (p == end)
		return NULL;
	if (*p == '"')
		return string_end(p, end);
	if (*p != '{' && *p != '[') {
		const char *q = p;

		while (q < end && !strchr(",}] \t\r\n", *q))
			q++;
		return q > p ? q : NULL;
	}
	for (; p < end; p++) {
		if (*p == '"') {
			p = string_end(p, end);
			if (!p)
				return NULL;
			p--;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			if (--depth == 0)
				return p + 1;
		}
	}
	return NULL;
}

/* Members of an object or elements of an array, in order. */
struct span_scan {
	const char *p, *end;
	char close; /* '}' or ']' */
	bool first;
};

struct span {
	const char *key, *key_end; /* with their quotes; NULL in an array */
	const char *val, *val_end;
};

/* p at the '{' or '[' (after blanks). Returns false when it is neither. */
static bool scan_begin(struct span_scan *s, const char *p, const char *end)
{
	p = skip_ws(p, end);
	if (p == end || (*p != '{' && *p != '['))
		return false;
	s->close = *p == '{' ? '}' : ']';
	s->p = p + 1;
	s->end = end;
	s->first = true;
	return true;
}

/* The next member or element into *m: 1, 0 at the end (s->p then past the closing bracket),
 * -1 when malformed. */
static int scan_next(struct span_scan *s, struct span *m)
{
	const char *p = skip_ws(s->p, s->end);

	if (p < s->end && *p == s->close) {
		s->p = p + 1;
		return 0;
	}
	if (!s->first) {
		if (p == s->end || *p != ',')
			return -1;
		p = skip_ws(p + 1, s->end);
	}
	s->first = false;
	m->key = m->key_end = NULL;
	if (s->close == '}') {
		if (p == s->end || *p != '"' || !(m->key_end = string_end(p, s->end)))
			return -1;
		m->key = p;
		p = skip_ws(m->key_end, s->end);
		if (p == s->end || *p != ':')
			return -1;
		p = skip_ws(p + 1, s->end);
	}
	m->val = p;
	m->val_end = value_end(p, s->end);
	if (!m->val_end)
		return -1;
	s->p = m->val_end;
	return 1;
}

/* Parse exactly p[0..n) with tok. Returns false when that is not one JSON value; else true and
 * *out (caller puts; NULL for null). */
static bool parse_span(json_tokener *tok, const char *p, size_t n, json_object **out)
{
	json_object *o;

	*out = NULL;
	if (n > (size_t)INT32_MAX)
		return false;
	json_tokener_reset(tok);
	o = json_tokener_parse_ex(tok, p, (int)n);
	if (!o && json_tokener_get_error(tok) == json_tokener_continue)
		o = json_tokener_parse_ex(tok, " ", 1); /* a bare number ends here */
	else if (json_tokener_get_parse_end(tok) != n)
		goto bad;
	if (json_tokener_get_error(tok) != json_tokener_success)
		goto bad;
	*out = o;
	return true;
bad:
	json_object_put(o);
	return false;
}

/* Whether the key span (with its quotes) is want. */
static bool key_is(json_tokener *tok, const struct span *m, const char *want)
{
	size_t n = (size_t)(m->key_end - m->key) - 2;
	json_object *k;
	bool same;

	if (!memchr(m->key + 1, '\\', n))
		return n == strlen(want) && memcmp(m->key + 1, want, n) == 0;
	if (!parse_span(tok, m->key, n + 2, &k))
		return false;
	same = strcmp(json_object_get_string(k), want) == 0;
	json_object_put(k);
	return same;
}

/* The first member key of the object at obj (a well-formed one, already scanned), or NULL;
 * *prev_end is where the member before it ends (NULL: it is the first). */
static bool find_member(json_tokener *tok, const char *obj, const char *end, const char *key,
                        struct span *m, const char **prev_end)
{
	struct span_scan s;

	*prev_end = NULL;
	if (!scan_begin(&s, obj, end) || s.close != '}')
		return false;
	while (scan_next(&s, m) == 1) {
		if (key_is(tok, m, key))
			return true;
		*prev_end = m->val_end;
	}
	return false;
}

/* Remove member key (its first occurrence) from the object at obj, inside the text
 * base[0..*len): the bytes after it move down and *len shrinks. The text stays the same JSON
 * less that member. */
static void cut_member(json_tokener *tok, char *base, size_t *len, char *obj, const char *key)
{
	const char *end = base + *len, *prev_end, *after;
	struct span m;
	char *from, *to;

	if (!find_member(tok, obj, end, key, &m, &prev_end))
		return;
	after = skip_ws(m.val_end, end);
	if (after < end && *after == ',') {
		from = (char *)m.key; /* "key": value, -> next member */
		to = (char *)after + 1;
	} else if (prev_end) {
		from = (char *)prev_end; /* previous, "key": value -> previous */
		to = (char *)m.val_end;
	} else {
		from = (char *)m.key; /* the only member */
		to = (char *)m.val_end;
	}
	memmove(from, to, (size_t)(end - to));
	*len -= (size_t)(to - from);
}

/* Cut what prepare_object would delete first out of the item's text item[0..*len). */
static void cut_item(json_tokener *tok, char *item, size_t *len)
{
	const char *prev_end;
	struct span meta, ann;

	if (!find_member(tok, item, item + *len, "metadata", &meta, &prev_end) || *meta.val != '{')
		return;
	cut_member(tok, item, len, (char *)meta.val, "managedFields");
	if (find_member(tok, meta.val, item + *len, "annotations", &ann, &prev_end) &&
	    *ann.val == '{')
		cut_member(tok, item, len, (char *)ann.val,
		           "kubectl.kubernetes.io/last-applied-configuration");
}

struct item_list {
	json_object **v;
	size_t n, cap;
};

static void item_list_push(struct item_list *l, json_object *obj)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		json_object **nv = realloc(l->v, ncap * sizeof(*nv));

		if (!nv)
			abort();
		l->v = nv;
		l->cap = ncap;
	}
	l->v[l->n++] = obj;
}

/* Put items[from..n) and drop them from the list (prepared: store_put). */
static void item_list_truncate(struct item_list *l, size_t from)
{
	while (l->n > from)
		store_put(l->v[--l->n]);
}

/* The elements of an items array (the span at p) that are objects, each prepared, onto *out.
 * The text is changed in place (cut_item). Returns 0 or WEIR_EPARSE. */
static int page_items(const struct kind_def *def, json_tokener *tok, char *p, const char *end,
                      struct item_list *out)
{
	struct span_scan s;
	struct span m;
	int r;

	if (!scan_begin(&s, p, end) || s.close != ']')
		return WEIR_EPARSE;
	while ((r = scan_next(&s, &m)) == 1) {
		size_t len = (size_t)(m.val_end - m.val);
		json_object *it;

		if (*m.val == '{')
			cut_item(tok, (char *)m.val, &len);
		if (!parse_span(tok, m.val, len, &it))
			return WEIR_EPARSE;
		if (!json_object_is_type(it, json_type_object)) {
			json_object_put(it);
			continue;
		}
		prepare_object(def, it);
		item_list_push(out, it);
	}
	return r == 0 ? 0 : WEIR_EPARSE;
}

/* One list page body[0..len) (changed in place): its items onto *out, its
 * metadata.resourceVersion into rv (unchanged when absent) and its metadata.continue into
 * *cont (caller frees; NULL when absent or empty). Returns 0 or WEIR_EPARSE (items out[start..n)
 * are then put again). The same as parsing the page whole: a later duplicate member wins.
 * out[start..n) are the page's items taken already, when have_items (list_stream: its items
 * array was where body has a member parse_page ignores); else start is out->n. */
static int parse_page(const struct kind_def *def, char *body, size_t len, struct item_list *out,
                      size_t start, bool have_items, char *rv, size_t rvlen, char **cont)
{
	const char *end = body + len;
	json_tokener *tok = json_tokener_new();
	json_object *meta = NULL, *v;
	struct span_scan s;
	struct span m;
	int r, rc = WEIR_EPARSE;

	if (!tok)
		abort();
	*cont = NULL;
	if (!scan_begin(&s, body, end) || s.close != '}')
		goto out;
	while ((r = scan_next(&s, &m)) == 1) {
		bool items = key_is(tok, &m, "items");

		if (items) {
			item_list_truncate(out, start); /* json-c keeps the last one */
			have_items = true;
			if (*m.val == '[') {
				if (page_items(def, tok, (char *)m.val, m.val_end, out) != 0)
					goto out;
				continue;
			}
		}
		if (!parse_span(tok, m.val, (size_t)(m.val_end - m.val), &v))
			goto out;
		if (items && v) { /* neither an array nor null */
			json_object_put(v);
			goto out;
		}
		if (key_is(tok, &m, "metadata")) {
			json_object_put(meta);
			meta = v;
			continue;
		}
		json_object_put(v);
	}
	if (r != 0 || !have_items)
		goto out;
	if (json_object_object_get_ex(meta, "resourceVersion", &v) &&
	    json_object_is_type(v, json_type_string))
		snprintf(rv, rvlen, "%s", json_object_get_string(v));
	if (json_object_object_get_ex(meta, "continue", &v) &&
	    json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0) {
		*cont = strdup(json_object_get_string(v));
		if (!*cont)
			abort();
	}
	rc = 0;
out:
	if (rc)
		item_list_truncate(out, start);
	json_object_put(meta);
	json_tokener_free(tok);
	return rc;
}

/* ---- list page: items parsed as they arrive ----
 *
 * The elements of a page's first top-level "items" array are parsed as soon as each has
 * arrived, while the server is still encoding and sending the next ones (a resourceVersion=0
 * list is all of a kind's objects in one response); before, the whole page was received first.
 * The rest of the page is kept as text, the streamed member replaced by "":null (a member
 * parse_page ignores), and parse_page reads it at the end: the same items, resourceVersion
 * and continue as parse_page of the whole page. A page whose members before its items take
 * more than STREAM_HEAD_MAX bytes, or whose first "items" member is not an array, is parsed
 * whole at the end as before. */
#define STREAM_HEAD_MAX ((size_t)1 << 20)

enum stream_state { LS_HEAD, LS_ITEMS, LS_TAIL };

struct list_stream {
	const struct kind_def *def;
	json_tokener *tok;
	struct item_list *out;
	size_t start;         /* out->n before this page */
	struct list_buf head; /* the page but its streamed items member */
	struct list_buf rest; /* LS_ITEMS: received bytes of the items array not taken yet */
	size_t total;         /* bytes received */
	size_t wait_for; /* LS_ITEMS: rest.len at which an unfinished element is looked at again */
	size_t at;       /* LS_HEAD: end of the last whole member in head (0: '{' not seen) */
	enum stream_state state;
	bool first;    /* no member (LS_HEAD) or element (LS_ITEMS) taken yet */
	bool streamed; /* the page's items array was streamed */
	bool nul;      /* a NUL byte came: what follows is ignored (as the whole-page parse did) */
};

static void list_stream_init(struct list_stream *ls, const struct kind_def *def,
                             struct item_list *out)
{
	memset(ls, 0, sizeof(*ls));
	ls->def = def;
	ls->out = out;
	ls->start = out->n;
	ls->first = true;
	ls->tok = json_tokener_new();
	if (!ls->tok)
		abort();
}

static void list_stream_cleanup(struct list_stream *ls)
{
	json_tokener_free(ls->tok);
	free(ls->head.data);
	free(ls->rest.data);
	memset(ls, 0, sizeof(*ls));
}

/* Whether the value at v (inside [v, end)) has been received whole: ve from value_end, and a
 * number or literal could go on past end. */
static bool value_whole(const char *v, const char *ve, const char *end)
{
	return ve && (ve < end || *v == '"' || *v == '{' || *v == '[');
}

/* Take every element of the items array that has arrived. Returns 0 or WEIR_EPARSE. */
static int stream_items(struct list_stream *ls)
{
	char *base = ls->rest.data, *end, *p;
	size_t taken = 0; /* bytes of rest done with */

	/* An element not whole yet is scanned again from its start once what is buffered has
	 * doubled, not at every read: linear, however large it is. */
	if (!base || ls->rest.len < ls->wait_for)
		return 0;
	end = base + ls->rest.len;
	for (;;) {
		p = (char *)skip_ws(base + taken, end);
		if (p == end)
			break;
		if (*p == ']') {
			/* The array ends: what follows goes on into head. */
			p++;
			if (list_sink(&ls->head, p, (size_t)(end - p)) != 0)
				return WEIR_ENOMEM;
			ls->rest.len = 0;
			ls->state = LS_TAIL;
			return 0;
		}
		if (!ls->first) {
			if (*p != ',')
				return WEIR_EPARSE;
			p = (char *)skip_ws(p + 1, end);
		}
		const char *ve = value_end(p, end);
		if (!value_whole(p, ve, end))
			break;
		size_t len = (size_t)(ve - p);
		json_object *it;

		if (*p == '{')
			cut_item(ls->tok, p, &len);
		if (!parse_span(ls->tok, p, len, &it))
			return WEIR_EPARSE;
		if (json_object_is_type(it, json_type_object)) {
			prepare_object(ls->def, it);
			item_list_push(ls->out, it);
		} else {
			json_object_put(it);
		}
		ls->first = false;
		taken = (size_t)(ve - base);
	}
	if (taken) {
		memmove(base, base + taken, ls->rest.len - taken);
		ls->rest.len -= taken;
	}
	ls->wait_for = 2 * ls->rest.len;
	return 0;
}

/* Look for the items array among the members in head; at it, go on with LS_ITEMS. */
static int stream_head(struct list_stream *ls)
{
	char *base = ls->head.data, *end, *p;

	if (!base)
		return 0;
	end = base + ls->head.len;
	if (ls->at == 0) {
		p = (char *)skip_ws(base, end);
		if (p == end)
			return 0;
		if (*p != '{') {
			ls->state = LS_TAIL; /* parse_page will say */
			return 0;
		}
		ls->at = (size_t)(p + 1 - base);
	}
	for (;;) {
		struct span m;

		p = (char *)skip_ws(base + ls->at, end);
		if (p == end)
			return 0;
		if (*p == '}' || (!ls->first && *p != ',')) {
			ls->state = LS_TAIL;
			return 0;
		}
		if (!ls->first)
			p = (char *)skip_ws(p + 1, end);
		if (p == end)
			return 0;
		if (*p != '"') {
			ls->state = LS_TAIL;
			return 0;
		}
		m.key = p;
		m.key_end = string_end(p, end);
		if (!m.key_end)
			return 0;
		p = (char *)skip_ws(m.key_end, end);
		if (p == end)
			return 0;
		if (*p != ':') {
			ls->state = LS_TAIL;
			return 0;
		}
		m.val = skip_ws(p + 1, end);
		if (m.val == end)
			return 0;
		if (key_is(ls->tok, &m, "items")) {
			const char *after = m.val + 1;

			if (*m.val != '[') {
				ls->state = LS_TAIL; /* items null or not a list: parsed whole */
				return 0;
			}
			/* head keeps what came before the member, then "":null; the array's
			 * elements go to rest. */
			if (list_sink(&ls->rest, after, (size_t)(end - after)) != 0)
				return WEIR_ENOMEM;
			ls->head.len = (size_t)(m.key - base);
			if (list_sink(&ls->head, "\"\":null", 7) != 0)
				return WEIR_ENOMEM;
			ls->state = LS_ITEMS;
			ls->streamed = true;
			ls->first = true;
			return stream_items(ls);
		}
		m.val_end = value_end(m.val, end);
		if (!value_whole(m.val, m.val_end, end))
			return 0;
		ls->at = (size_t)(m.val_end - base);
		ls->first = false;
	}
}

/* k8s_stream_cb of a list page (a list_stream). */
static int list_stream_sink(void *arg, const char *data, size_t len)
{
	struct list_stream *ls = arg;
	const char *nul;
	int rc;

	if (ls->nul)
		return 0;
	nul = memchr(data, '\0', len);
	if (nul) {
		len = (size_t)(nul - data);
		ls->nul = true;
	}
	if (len > LIST_BODY_MAX - ls->total)
		return WEIR_ETOOBIG;
	ls->total += len;
	if (ls->state == LS_ITEMS) {
		if ((rc = list_sink(&ls->rest, data, len)) != 0)
			return rc;
		return stream_items(ls);
	}
	if ((rc = list_sink(&ls->head, data, len)) != 0)
		return rc;
	if (ls->state == LS_HEAD) {
		if (ls->head.len > STREAM_HEAD_MAX) {
			ls->state = LS_TAIL;
			return 0;
		}
		return stream_head(ls);
	}
	return 0;
}

/* After the last byte: parse_page of the page received (its items already on out when
 * streamed). */
static int list_stream_finish(struct list_stream *ls, char *rv, size_t rvlen, char **cont)
{
	*cont = NULL;
	if (ls->state == LS_ITEMS) {
		int rc;

		ls->wait_for = 0; /* the last elements, whatever their size */
		if ((rc = stream_items(ls)) != 0)
			return rc;
	}
	if (ls->state == LS_ITEMS || !ls->head.data)
		return WEIR_EPARSE;
	return parse_page(ls->def, ls->head.data, ls->head.len, ls->out, ls->start, ls->streamed,
	                  rv, rvlen, cont);
}

/* Full paginated list; on success the store holds exactly the listed objects and w->rv is
 * the list's resourceVersion. A watcher's first list asks for resourceVersion=0: the API server
 * answers it from its watch cache, every object in one response (it ignores the limit there),
 * encoded while the items already sent are parsed here (list_stream), where a consistent list
 * costs it a check of etcd's revision and 500-object pages each a round trip. The watch then
 * starts from the version listed, so what the cache had not yet seen comes as events (as
 * client-go's informers list). A relist after 410 Gone asks for the newest version. */
static int do_list(struct watcher *w, char *errtext, size_t errlen)
{
	struct k8s_source *src = w->src;
	struct item_list items = {0};
	char *cont = NULL, *url = NULL, *errbody = NULL;
	char rv[128] = "";
	long status;
	int rc = WEIR_EIO;

	for (int page = 0; page < LIST_PAGES_MAX; page++) {
		struct list_stream ls;
		char *esc = cont ? url_escape(cont) : NULL;

		free(url);
		if (asprintf(&url, "%s?limit=%d%s%s%s%s%s", w->path, LIST_LIMIT,
		             w->selector ? "&fieldSelector=" : "", w->selector ? w->selector : "",
		             esc ? "&continue=" : "", esc ? esc : "",
		             !esc && !w->listed ? "&resourceVersion=0" : "") < 0)
			abort();
		free(esc);
		list_stream_init(&ls, w->def, &items);
		rc = k8s_stream(src->c, url, LIST_SECONDS, list_stream_sink, &ls, &src->stop,
		                &status, &errbody);
		if (rc) {
			list_stream_cleanup(&ls);
			if (rc == WEIR_EPARSE)
				snprintf(errtext, errlen, "list: malformed response");
			else
				snprintf(errtext, errlen, "list: %s", weir_strerror(rc));
			goto out;
		}
		if (status < 200 || status > 299) {
			list_stream_cleanup(&ls);
			k8s_status_text(errbody, status, errtext, errlen);
			/* An expired continue token: the caller starts the list over. */
			rc = status == 410 ? WEIR_EGONE : WEIR_EHTTP;
			goto out;
		}
		free(cont);
		/* Up to a NUL, as json_tokener_parse read the page before. */
		rc = list_stream_finish(&ls, rv, sizeof(rv), &cont);
		list_stream_cleanup(&ls);
		if (rc) {
			snprintf(errtext, errlen, "list: malformed response");
			goto out;
		}
		if (!cont)
			break;
		free(errbody);
		errbody = NULL;
	}
	if (cont) {
		snprintf(errtext, errlen, "list: more than %d pages", LIST_PAGES_MAX);
		rc = WEIR_ETOOBIG;
		goto out;
	}
	rc = store_replace_in(src->s, w->def->kind, w->scope, items.v, items.n);
	items.n = 0; /* ownership was taken either way (contract) */
	if (rc) {
		snprintf(errtext, errlen, "store: %s", weir_strerror(rc));
		goto out;
	}
	gauge_update(w);
	free(w->rv);
	w->rv = strdup(rv);
	if (!w->rv)
		abort();
out:
	item_list_truncate(&items, 0);
	free(items.v);
	free(cont);
	free(url);
	free(errbody);
	return rc;
}

/* ---- watch ---- */

/* One event; *objp is handed to the store (and set to NULL) on ADDED/MODIFIED. */
static int handle_event(struct watcher *w, const char *type, json_object **objp)
{
	struct k8s_source *src = w->src;
	json_object *obj = *objp;
	int rc;

	w->events++;
	if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0) {
		set_rv(w, obj_str(obj, "metadata", "resourceVersion"));
		prepare_object(w->def, obj);
		*objp = NULL;
		rc = store_upsert(src->s, w->def->kind, obj); /* obj is the store's now */
		if (rc == WEIR_EINVAL) {
			log_debug(LOG_C, "%s: ignoring an object without a name", w->def->name);
			return 0;
		}
		if (rc)
			return rc;
		gauge_update(w);
		return 0;
	}
	if (strcmp(type, "DELETED") == 0) {
		const char *ns = obj_str(obj, "metadata", "namespace");
		const char *name = obj_str(obj, "metadata", "name");

		set_rv(w, obj_str(obj, "metadata", "resourceVersion"));
		if (!name)
			return 0;
		rc = store_delete(src->s, w->def->kind, ns ? ns : "", name);
		if (rc && rc != WEIR_ENOENT)
			return rc;
		gauge_update(w);
		return 0;
	}
	if (strcmp(type, "BOOKMARK") == 0) {
		set_rv(w, obj_str(obj, "metadata", "resourceVersion"));
		return 0;
	}
	if (strcmp(type, "ERROR") == 0) {
		json_object *code = NULL, *msg = NULL;

		json_object_object_get_ex(obj, "code", &code);
		json_object_object_get_ex(obj, "message", &msg);
		if (code && json_object_get_int(code) == 410)
			return WEIR_EGONE;
		log_debug(LOG_C, "%s: watch ERROR event %d: %s", w->def->name,
		          code ? json_object_get_int(code) : 0,
		          msg ? json_object_get_string(msg) : "");
		return WEIR_EHTTP;
	}
	log_debug(LOG_C, "%s: ignoring watch event type %s", w->def->name, type);
	return 0;
}

static int on_event(void *arg, const char *type, json_object *obj)
{
	int rc = handle_event(arg, type, &obj);

	json_object_put(obj);
	return rc;
}

static int watch_sink(void *arg, const char *data, size_t len)
{
	struct watcher *w = arg;

	return watch_decoder_feed(&w->dec, data, len);
}

static long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* One watch request from w->rv. Returns 0 when it ended normally, WEIR_EGONE when a relist
 * is needed, other WEIR_E* on failure (errtext says what). */
static int do_watch(struct watcher *w, char *errtext, size_t errlen)
{
	struct k8s_source *src = w->src;
	unsigned seed = (unsigned)mono_ms() ^ (unsigned)(uintptr_t)w;
	int timeout = WATCH_TIMEOUT_MIN + (int)(rand_r(&seed) % WATCH_TIMEOUT_SPREAD);
	char *url = NULL, *errbody = NULL;
	long status = 0, started = mono_ms();
	int rc;

	if (asprintf(&url,
	             "%s?watch=1&allowWatchBookmarks=true&timeoutSeconds=%d&resourceVersion=%s%s%s",
	             w->path, timeout, w->rv ? w->rv : "", w->selector ? "&fieldSelector=" : "",
	             w->selector ? w->selector : "") < 0)
		abort();
	watch_decoder_reset(&w->dec);
	w->events = 0;
	rc = k8s_stream(src->c, url, timeout + WATCH_DEADLINE_MARGIN, watch_sink, w, &src->stop,
	                &status, &errbody);
	if (rc == 0 && status == 410) {
		rc = WEIR_EGONE;
	} else if (rc == 0 && (status < 200 || status > 299)) {
		k8s_status_text(errbody, status, errtext, errlen);
		rc = WEIR_EHTTP;
	} else if (rc == WEIR_ETIMEDOUT) {
		/* Our deadline passed without the server closing: resume. */
		rc = 0;
	} else if (rc == WEIR_ECLOSED && w->events) {
		rc = 0; /* dropped after making progress: resume right away */
	} else if (rc == 0 && !w->events && mono_ms() - started < 1000) {
		/* Ended at once with nothing: treat as a failure so we do not spin. */
		snprintf(errtext, errlen, "watch ended immediately");
		rc = WEIR_EIO;
	} else if (rc && rc != WEIR_EGONE && rc != WEIR_ECANCELED) {
		snprintf(errtext, errlen, "watch: %s", weir_strerror(rc));
	}
	free(url);
	free(errbody);
	return rc;
}

static void *watcher_main(void *arg)
{
	struct watcher *w = arg;
	struct k8s_source *src = w->src;
	char errtext[512];

	while (!atomic_load(&src->stop)) {
		int rc;

		errtext[0] = '\0';
		if (!w->rv) {
			long t0 = mono_ms();

			rc = do_list(w, errtext, sizeof(errtext));
			if (atomic_load(&src->stop))
				break;
			if (rc) {
				note_failure(w, "list", errtext);
				if (sleep_ms(src, backoff_next_ms(&w->bo)))
					break;
				continue;
			}
			if (w->listed)
				telemetry_relist(w->def->name);
			w->listed = true;
			atomic_store(&w->synced, true);
			note_success(w);
			log_info(LOG_C, "%s: listed in %ld ms, resourceVersion %s", w->def->name,
			         mono_ms() - t0, w->rv);
		}
		rc = do_watch(w, errtext, sizeof(errtext));
		if (atomic_load(&src->stop))
			break;
		telemetry_watch_restart(w->def->name);
		if (rc == WEIR_EGONE) {
			log_info(LOG_C, "%s: resourceVersion %s expired; relisting", w->def->name,
			         w->rv ? w->rv : "");
			free(w->rv);
			w->rv = NULL;
			continue;
		}
		if (rc == WEIR_ETOOBIG || rc == WEIR_EPARSE) {
			/* The same event would come again on resume: start over from a list. */
			free(w->rv);
			w->rv = NULL;
		}
		if (rc) {
			note_failure(w, "watch", errtext[0] ? errtext : weir_strerror(rc));
			if (sleep_ms(src, backoff_next_ms(&w->bo)))
				break;
			continue;
		}
		note_success(w);
	}
	return NULL;
}

static void watcher_cleanup(struct watcher *w)
{
	free(w->path);
	free(w->selector);
	free(w->scope);
	free(w->rv);
	watch_decoder_cleanup(&w->dec);
}

bool k8s_source_synced(const struct k8s_source *src)
{
	for (size_t i = 0; i < src->nw; i++)
		if (!atomic_load(&((struct k8s_source *)src)->w[i].synced))
			return false;
	return true;
}

void k8s_source_stop(struct k8s_source *src)
{
	if (!src)
		return;
	pthread_mutex_lock(&src->mu);
	atomic_store(&src->stop, true);
	pthread_cond_broadcast(&src->cv);
	pthread_mutex_unlock(&src->mu);
	for (size_t i = 0; i < src->nw; i++) {
		if (src->w[i].started)
			pthread_join(src->w[i].thread, NULL);
		watcher_cleanup(&src->w[i]);
	}
	pthread_cond_destroy(&src->cv);
	pthread_mutex_destroy(&src->mu);
	free(src);
}

/* One list+watch of def's objects in namespace ns (NULL: every namespace)
 * with the escaped fieldSelector sel (NULL: none; copied). */
static void add_watcher(struct k8s_source *src, const struct kind_def *def, const char *ns,
                        const char *sel, bool gauge)
{
	struct watcher *w = &src->w[src->nw];
	int r;

	w->src = src;
	w->def = def;
	w->gauge = gauge;
	w->selector = sel ? strdup(sel) : NULL;
	w->scope = ns ? strdup(ns) : NULL;
	if ((sel && !w->selector) || (ns && !w->scope))
		abort();
	w->bo.seed = (unsigned)time(NULL) ^ (unsigned)(src->nw * 7919) ^ (unsigned)getpid();
	watch_decoder_init(&w->dec, EVENT_LINE_MAX, on_event, w);
	if (ns)
		r = asprintf(&w->path, "%s/namespaces/%s/%s", def->prefix, ns, def->resource);
	else
		r = asprintf(&w->path, "%s/%s", def->prefix, def->resource);
	if (r < 0)
		abort();
	src->nw++;
}

int k8s_source_start(struct k8s_client *c, struct store *s, const struct k8s_source_options *o,
                     struct k8s_source **out)
{
	struct k8s_source *src;
	pthread_condattr_t ca;
	const char *wns =
	    o && o->watch_namespace && o->watch_namespace[0] ? o->watch_namespace : NULL;

	*out = NULL;
	src = calloc(1, sizeof(*src));
	if (!src)
		return WEIR_ENOMEM;
	src->c = c;
	src->s = s;
	pthread_mutex_init(&src->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&src->cv, &ca);
	pthread_condattr_destroy(&ca);
	for (size_t i = 0; i < NKINDS; i++) {
		const struct kind_def *def = &kind_defs[i];

		add_watcher(src, def, def->namespaced ? wns : NULL, def->selector, true);
		/* ConfigMaps: those of the watched namespaces (auth-proxy-set-headers
		 * names them; refs.c keeps unnamed ones from recompiling), and
		 * weir's own by name when its namespace is not watched. */
		if (def->kind == STORE_CONFIGMAP && wns && o && o->configmap_namespace &&
		    o->configmap_namespace[0] && o->configmap_name && o->configmap_name[0] &&
		    strcmp(o->configmap_namespace, wns) != 0) {
			char *esc = url_escape(o->configmap_name), *sel;

			if (asprintf(&sel, "metadata.name%%3D%s", esc) < 0)
				abort();
			free(esc);
			add_watcher(src, def, o->configmap_namespace, sel, false);
			free(sel);
		}
	}
	for (size_t i = 0; i < src->nw; i++) {
		if (pthread_create(&src->w[i].thread, NULL, watcher_main, &src->w[i]) != 0) {
			log_error(LOG_C, "cannot start the %s watch thread", src->w[i].def->name);
			k8s_source_stop(src);
			return WEIR_ENOMEM;
		}
		src->w[i].started = true;
	}
	*out = src;
	return 0;
}
