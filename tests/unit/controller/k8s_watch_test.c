/* Unit test: watch stream decoding in arbitrary chunks, event handling into the store,
 * backoff bounds, and the list+watch threads against a small fake API server on loopback
 * (pagination, 410 relist, prompt stop). Includes the .c to reach its static functions. */
#include "controller/k8s_watch.c"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "check.h"
#include "controller/compile.h"
#include "controller/k8s_config.h"
#include "controller/status.h"

/* ---- decoder ---- */

struct rec {
	char log[4096];
	int n;
};

static int rec_cb(void *arg, const char *type, json_object *obj)
{
	struct rec *r = arg;
	const char *name = obj_str(obj, "metadata", "name");
	const char *rv = obj_str(obj, "metadata", "resourceVersion");
	size_t l = strlen(r->log);

	snprintf(r->log + l, sizeof(r->log) - l, "%s %s %s|", type, name ? name : "-",
	         rv ? rv : "-");
	r->n++;
	json_object_put(obj); /* the callback owns it */
	return 0;
}

static const char stream[] =
    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"5\"},"
    "\"data\":\"line\\nwith newline escaped \\u00e9\"}}\n"
    "\n"
    "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"b\",\"resourceVersion\":\"6\"}}}"
    "\r\n"
    "   \n"
    "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Ingress\",\"metadata\":{"
    "\"resourceVersion\":\"9\"}}}\n"
    "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"10\"}}}"
    "\n";
static const char expected[] = "ADDED a 5|MODIFIED b 6|BOOKMARK - 9|DELETED a 10|";

static void test_decoder_chunks(void)
{
	size_t len = strlen(stream);
	unsigned seed = 12345;

	/* Every fixed chunk size, from one byte at a time to the whole stream. */
	for (size_t cs = 1; cs <= len; cs++) {
		struct rec r = {{0}, 0};
		struct watch_decoder d;
		int rc = 0;

		watch_decoder_init(&d, 1 << 20, rec_cb, &r);
		for (size_t off = 0; off < len && rc == 0; off += cs)
			rc = watch_decoder_feed(&d, stream + off, off + cs > len ? len - off : cs);
		CHECK_INT(rc, 0);
		CHECK_INT(r.n, 4);
		if (strcmp(r.log, expected) != 0) {
			CHECK_STR(r.log, expected);
			fprintf(stderr, "  chunk size %zu\n", cs);
		}
		CHECK_INT(d.len, 0);
		watch_decoder_cleanup(&d);
	}
	/* Random chunk boundaries. */
	for (int iter = 0; iter < 500; iter++) {
		struct rec r = {{0}, 0};
		struct watch_decoder d;
		size_t off = 0;
		int rc = 0;

		watch_decoder_init(&d, 1 << 20, rec_cb, &r);
		while (off < len && rc == 0) {
			size_t n = 1 + (size_t)rand_r(&seed) % 40;

			if (n > len - off)
				n = len - off;
			rc = watch_decoder_feed(&d, stream + off, n);
			off += n;
		}
		CHECK_INT(rc, 0);
		if (strcmp(r.log, expected) != 0)
			CHECK_STR(r.log, expected);
		watch_decoder_cleanup(&d);
	}
}

static void test_decoder_errors(void)
{
	struct rec r = {{0}, 0};
	struct watch_decoder d;
	char big[300];

	/* A line over the cap fails even before its newline arrives. */
	watch_decoder_init(&d, 256, rec_cb, &r);
	memset(big, 'x', sizeof(big));
	CHECK_INT(watch_decoder_feed(&d, big, 200), 0);
	CHECK_INT(watch_decoder_feed(&d, big, 100), WEIR_ETOOBIG);
	watch_decoder_cleanup(&d);

	/* Exactly at the cap is fine. */
	watch_decoder_init(&d, 64, rec_cb, &r);
	{
		const char *ev = "{\"type\":\"X\",\"object\":{}}";
		char line[80];
		size_t n = strlen(ev);

		memcpy(line, ev, n);
		memset(line + n, ' ', 64 - n);
		line[64] = '\n';
		CHECK_INT(watch_decoder_feed(&d, line, 65), 0);
		CHECK_INT(r.n, 1);
	}
	watch_decoder_cleanup(&d);

	watch_decoder_init(&d, 1024, rec_cb, &r);
	CHECK_INT(watch_decoder_feed(&d, "{\"type\":\"ADDED\",\"object\":{}\n", 28), WEIR_EPARSE);
	watch_decoder_reset(&d);
	CHECK_INT(watch_decoder_feed(&d, "{\"type\":\"ADDED\"}\n", 17), WEIR_EPARSE);
	CHECK_INT(watch_decoder_feed(&d, "{\"type\":1,\"object\":{}}\n", 23), WEIR_EPARSE);
	CHECK_INT(watch_decoder_feed(&d, "{\"type\":\"A\",\"object\":{}} x\n", 27), WEIR_EPARSE);
	CHECK_INT(watch_decoder_feed(&d, "[]\n", 3), WEIR_EPARSE);
	/* A partial line is dropped by reset (new stream). */
	CHECK_INT(watch_decoder_feed(&d, "{\"type\":\"ADD", 12), 0);
	watch_decoder_reset(&d);
	CHECK_INT(watch_decoder_feed(&d, "{\"type\":\"A\",\"object\":{}}\n", 25), 0);
	watch_decoder_cleanup(&d);
}

/* ---- events into the store ---- */

static int feed_str(struct watch_decoder *d, const char *s)
{
	return watch_decoder_feed(d, s, strlen(s));
}

static json_object *find_obj(struct store *s, enum store_kind k, const char *name, size_t *count)
{
	struct snapshot *snap = store_snapshot(s);
	json_object *found = NULL;

	*count = snap->count[k];
	for (size_t i = 0; i < snap->count[k]; i++) {
		const char *n = obj_str(snap->objs[k][i], "metadata", "name");

		if (n && strcmp(n, name) == 0)
			found = json_object_get(snap->objs[k][i]);
	}
	snapshot_free(snap);
	return found;
}

static void test_events_into_store(void)
{
	struct k8s_source src = {0};
	struct watcher *w = &src.w[0];
	struct store *s = store_new();
	json_object *o, *v;
	size_t n;
	static const char evs[] =
	    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"web\",\"namespace\":\"ns1\","
	    "\"resourceVersion\":\"11\",\"managedFields\":[{\"manager\":\"kubectl\"}],"
	    "\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":\"{}\","
	    "\"keep\":\"me\"}},\"spec\":{}}}\n"
	    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"api\",\"namespace\":\"ns1\","
	    "\"resourceVersion\":\"12\"}}}\n"
	    "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"web\",\"namespace\":"
	    "\"ns1\",\"resourceVersion\":\"13\",\"labels\":{\"v\":\"2\"}}}}\n"
	    "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"api\",\"namespace\":"
	    "\"ns1\","
	    "\"resourceVersion\":\"14\"}}}\n"
	    "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"20\"}}}\n";

	src.s = s;
	w->src = &src;
	w->def = &kind_defs[0]; /* Ingress */
	watch_decoder_init(&w->dec, 1 << 20, on_event, w);
	CHECK_INT(watch_decoder_feed(&w->dec, evs, strlen(evs)), 0);
	CHECK_STR(w->rv, "20");
	o = find_obj(s, STORE_INGRESS, "web", &n);
	CHECK_INT(n, 1);
	CHECK(o != NULL);
	if (o) {
		/* the store knows the kind: kind and apiVersion are not kept */
		CHECK(!json_object_object_get_ex(o, "kind", NULL));
		CHECK(!json_object_object_get_ex(o, "apiVersion", NULL));
		CHECK(!json_object_object_get_ex(json_object_object_get(o, "metadata"),
		                                 "resourceVersion", NULL)); /* dropped */
		CHECK(
		    json_object_object_get_ex(json_object_object_get(o, "metadata"), "labels", &v));
		json_object_put(o);
	}
	CHECK(find_obj(s, STORE_INGRESS, "api", &n) == NULL);
	CHECK_INT(store_count(s, STORE_INGRESS, NULL), 1);

	/* managedFields and last-applied are stripped; other annotations stay. */
	watch_decoder_reset(&w->dec);
	CHECK_INT(watch_decoder_feed(&w->dec, evs, strchr(evs, '\n') - evs + 1), 0);
	o = find_obj(s, STORE_INGRESS, "web", &n);
	if (o) {
		json_object *meta = json_object_object_get(o, "metadata");
		json_object *ann = json_object_object_get(meta, "annotations");

		CHECK(!json_object_object_get_ex(meta, "managedFields", NULL));
		CHECK(!json_object_object_get_ex(
		    ann, "kubectl.kubernetes.io/last-applied-configuration", NULL));
		CHECK_STR(json_object_get_string(json_object_object_get(ann, "keep")), "me");
		json_object_put(o);
	}

	/* ERROR 410 asks for a relist; other errors restart the watch. */
	CHECK_INT(feed_str(&w->dec, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\","
	                            "\"code\":410,\"reason\":\"Expired\"}}\n"),
	          WEIR_EGONE);
	watch_decoder_reset(&w->dec);
	CHECK_INT(feed_str(&w->dec, "{\"type\":\"ERROR\",\"object\":{\"code\":500}}\n"),
	          WEIR_EHTTP);
	watcher_cleanup(w);
	store_free(s);
}

/* ---- prepare_object: what it drops, compile never reads ---- */

/* Objects as the API returns them (status, clusterIPs, ipFamilies, ...). */
static const char *const api_objects[][2] = {
    {"IngressClass", "{\"metadata\":{\"name\":\"weir\"},\"spec\":{\"controller\":"
                     "\"weir.dev/ingress-controller\"}}"},
    {"Service",
     "{\"metadata\":{\"namespace\":\"ns1\",\"name\":\"web\",\"uid\":\"u1\",\"labels\":{"
     "\"app.kubernetes.io/name\":\"web\"},\"annotations\":{\"meta.helm.sh/release-name\":"
     "\"web\"}},\"spec\":{"
     "\"clusterIP\":\"10.96.0.10\",\"clusterIPs\":[\"10.96.0.10\"],\"ipFamilies\":[\"IPv4\"],"
     "\"ipFamilyPolicy\":\"SingleStack\",\"internalTrafficPolicy\":\"Cluster\",\"ports\":[{"
     "\"name\":\"http\",\"port\":80,\"protocol\":\"TCP\",\"targetPort\":8080}],"
     "\"sessionAffinity\":\"None\",\"type\":\"ClusterIP\"},\"status\":{\"loadBalancer\":{}}}"},
    {"Service", "{\"metadata\":{\"namespace\":\"ns1\",\"name\":\"ext\"},\"spec\":{\"type\":"
                "\"ExternalName\",\"externalName\":\"backend.example.net\",\"ports\":[{"
                "\"port\":443,\"protocol\":\"TCP\",\"targetPort\":443}],\"sessionAffinity\":"
                "\"None\"},\"status\":{\"loadBalancer\":{}}}"},
    {"Service", "{\"metadata\":{\"namespace\":\"ns1\",\"name\":\"headless\"},\"spec\":{"
                "\"clusterIP\":\"None\",\"clusterIPs\":[\"None\"],\"ports\":[{\"port\":80,"
                "\"targetPort\":8080}],\"type\":\"LoadBalancer\",\"allocateLoadBalancerNodePorts\""
                ":true},\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"192.0.2.9\"}]}}}"},
    {"EndpointSlice",
     "{\"metadata\":{\"namespace\":\"ns1\",\"name\":\"web-1\",\"labels\":{"
     "\"endpointslice.kubernetes.io/managed-by\":\"endpointslice-controller.k8s.io\","
     "\"kubernetes.io/service-name\":\"web\"},\"annotations\":{"
     "\"endpoints.kubernetes.io/last-change-trigger-time\":\"2026-01-01T00:00:00Z\"},"
     "\"uid\":\"s1\"},\"addressType\":\"IPv4\",\"ports\":[{\"name\":"
     "\"http\",\"port\":8080}],\"endpoints\":[{\"addresses\":[\"10.0.0.5\"]},{"
     "\"addresses\":[\"10.0.0.6\"],\"conditions\":{\"ready\":false,\"serving\":true,"
     "\"terminating\":true},\"nodeName\":\"n1\",\"zone\":\"z1\",\"targetRef\":{\"kind\":"
     "\"Pod\",\"namespace\":\"ns1\",\"name\":\"web-x\",\"uid\":\"p1\"},\"hints\":{"
     "\"forZones\":[{\"name\":\"z1\"}]}},{\"addresses\":[\"10.0.0.7\"],\"conditions\":{"
     "\"ready\":false},\"targetRef\":{\"kind\":\"Pod\",\"name\":\"web-y\"}}]}"},
    {"Secret", "{\"metadata\":{\"namespace\":\"ns1\",\"name\":\"tls-a\",\"uid\":\"x1\",\"labels\":{"
               "\"controller.cert-manager.io/fao\":\"true\"},\"annotations\":{"
               "\"cert-manager.io/issuer-name\":\"le\"}},\"type\":\"kubernetes.io/tls\",\"data\":{"
               "\"tls.crt\":\"bm90IGEgY2VydA==\",\"tls.key\":\"bm90IGEga2V5\"}}"},
    {"Ingress",
     "{\"metadata\":{\"namespace\":\"ns1\",\"name\":\"a\",\"creationTimestamp\":"
     "\"2026-01-01T00:00:00Z\",\"managedFields\":[{\"manager\":\"kubectl\",\"fieldsV1\":{"
     "\"f:spec\":{}}}],\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":"
     "\"{}\",\"nginx.ingress.kubernetes.io/proxy-read-timeout\":\"90\"}},\"spec\":{"
     "\"ingressClassName\":\"weir\",\"rules\":[{\"host\":\"a.example.com\",\"http\":{\"paths\":"
     "[{\"path\":\"/\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"web\","
     "\"port\":{\"number\":80}}}},{\"path\":\"/ext\",\"pathType\":\"Prefix\",\"backend\":{"
     "\"service\":{\"name\":\"ext\",\"port\":{\"number\":443}}}},{\"path\":\"/hl\","
     "\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"headless\",\"port\":{"
     "\"number\":80}}}},{\"path\":\"/none\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{"
     "\"name\":\"web\",\"port\":{\"number\":81}}}}]}}],\"tls\":[{\"hosts\":["
     "\"a.example.com\"],\"secretName\":\"tls-a\"}]},\"status\":{\"loadBalancer\":{}}}"},
    {"Ingress",
     "{\"metadata\":{\"namespace\":\"ns1\",\"name\":\"b\",\"creationTimestamp\":"
     "\"2026-01-01T00:00:01Z\",\"generation\":3,\"labels\":{\"app\":\"b\"},"
     "\"ownerReferences\":[{\"kind\":\"X\",\"name\":\"x\"}],\"finalizers\":[\"f\"],"
     "\"annotations\":{\"nginx.ingress.kubernetes.io/"
     "service-upstream\":\"true\"}},\"spec\":{\"ingressClassName\":\"weir\",\"rules\":[{\"host\":"
     "\"b.example.com\",\"http\":{\"paths\":[{\"path\":\"/\",\"pathType\":\"Prefix\","
     "\"backend\":{\"service\":{\"name\":\"web\",\"port\":{\"name\":\"http\"}}}}]}}]},"
     "\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"192.0.2.1\"}]}}}"},
};
#define NAPI (sizeof(api_objects) / sizeof(api_objects[0]))

static const struct kind_def *def_named(const char *name)
{
	for (size_t i = 0; i < NKINDS; i++)
		if (strcmp(kind_defs[i].name, name) == 0)
			return &kind_defs[i];
	return NULL;
}

/* Compile api_objects (prepared by prepare_object or not) into *text and *diags (one
 * "reason key message" line each). Returns the store, for the caller to inspect. */
static struct store *compile_api_objects(bool prepare, char **text, char **diags)
{
	struct store *s = store_new();
	struct compile_options o = {.ingress_class = "weir",
	                            .controller_name = "weir.dev/ingress-controller"};
	struct route_table *t = NULL;
	struct diag_list d = {0};
	size_t len, off = 0;

	for (size_t i = 0; i < NAPI; i++) {
		const struct kind_def *def = def_named(api_objects[i][0]);
		json_object *obj = json_tokener_parse(api_objects[i][1]);

		CHECK(def != NULL && obj != NULL);
		if (prepare)
			prepare_object(def, obj);
		else
			json_object_object_add(obj, "kind", json_object_new_string(def->name));
		CHECK_INT(store_upsert(s, def->kind, obj), 0);
	}
	struct snapshot *snap = store_snapshot(s);
	CHECK_INT(compile_snapshot(snap, &o, &t, &d), 0);
	CHECK_INT(route_table_serialize(t, text, &len), 0);
	*diags = calloc(1, 8192);
	for (size_t i = 0; i < d.n && *diags; i++)
		off += (size_t)snprintf(*diags + off, 8192 - off, "%s %s %s\n", d.items[i].reason,
		                        d.items[i].key ? d.items[i].key : "-", d.items[i].message);
	route_table_free(t);
	diag_list_cleanup(&d);
	snapshot_free(snap);
	return s;
}

static json_object *stored(struct store *s, enum store_kind k, const char *name)
{
	struct snapshot *snap = store_snapshot(s);
	json_object *o = json_object_get(snapshot_find(snap, k, "ns1", name));

	snapshot_free(snap);
	return o;
}

/* The store shares equal members between objects (store_upsert): compile
 * reads the same from them as from copies that share nothing. */
static void test_shared_keeps_compile_output(void)
{
	char *stext = NULL, *ctext = NULL, *sd = NULL;
	struct store *s = compile_api_objects(true, &stext, &sd);
	struct snapshot *snap = store_snapshot(s), copy = {0};
	struct compile_options o = {.ingress_class = "weir",
	                            .controller_name = "weir.dev/ingress-controller"};
	struct route_table *t = NULL;
	struct diag_list d = {0};
	size_t len;

	/* sharing happened: one node for the namespace of two objects */
	json_object *a = snapshot_find(snap, STORE_INGRESS, "ns1", "a");
	json_object *web = snapshot_find(snap, STORE_SERVICE, "ns1", "web");
	CHECK(a && web);
	CHECK(json_object_object_get(json_object_object_get(a, "metadata"), "namespace") ==
	      json_object_object_get(json_object_object_get(web, "metadata"), "namespace"));
	for (int k = 0; k < STORE_KIND_COUNT; k++) {
		copy.count[k] = snap->count[k];
		copy.objs[k] = calloc(snap->count[k] + 1, sizeof(json_object *));
		copy.ns[k] = snap->ns[k];
		copy.names[k] = snap->names[k];
		for (size_t i = 0; i < snap->count[k]; i++)
			CHECK((copy.objs[k][i] = store_copy(snap->objs[k][i])) != NULL);
	}
	CHECK_INT(compile_snapshot(&copy, &o, &t, &d), 0);
	CHECK_INT(route_table_serialize(t, &ctext, &len), 0);
	CHECK(stext && ctext);
	CHECK_STR(ctext, stext);
	route_table_free(t);
	diag_list_cleanup(&d);
	for (int k = 0; k < STORE_KIND_COUNT; k++) {
		for (size_t i = 0; i < copy.count[k]; i++)
			json_object_put(copy.objs[k][i]);
		free(copy.objs[k]);
	}
	snapshot_free(snap);
	store_free(s);
	free(stext);
	free(ctext);
	free(sd);
}

static void test_prepare_keeps_compile_output(void)
{
	char *full = NULL, *slim = NULL, *dfull = NULL, *dslim = NULL;
	struct store *sf = compile_api_objects(false, &full, &dfull);
	struct store *ss = compile_api_objects(true, &slim, &dslim);
	json_object *o, *spec, *want = json_tokener_parse("[{\"ip\":\"192.0.2.1\"}]");

	/* The same table, byte for byte, and the same diagnostics (port 81: none). */
	CHECK(full && slim && strstr(full, "a.example.com") && strstr(full, "backend.example.net"));
	CHECK(full && strstr(full, "10.96.0.10")); /* b: service-upstream */
	CHECK_STR(slim, full);
	CHECK(dfull && strstr(dfull, "81"));
	CHECK(dfull && strstr(dfull, "tls-a")); /* the Secret was read */
	CHECK_STR(dslim, dfull);

	/* What went: a Service's status and unread spec members, an empty Ingress status. */
	o = stored(ss, STORE_SERVICE, "web");
	CHECK(o && !json_object_object_get_ex(o, "status", NULL));
	/* of its metadata, only the key */
	CHECK_INT(json_object_object_length(json_object_object_get(o, "metadata")), 2);
	spec = json_object_object_get(o, "spec");
	CHECK(!json_object_object_get_ex(spec, "clusterIPs", NULL));
	CHECK(!json_object_object_get_ex(spec, "ipFamilies", NULL));
	CHECK(!json_object_object_get_ex(spec, "sessionAffinity", NULL));
	CHECK_INT(json_object_object_length(spec), 3); /* clusterIP, ports, type */
	json_object_put(o);
	o = stored(ss, STORE_SECRET, "tls-a");
	CHECK(o != NULL);
	CHECK_INT(json_object_object_length(json_object_object_get(o, "metadata")), 2);
	json_object_put(o);
	o = stored(ss, STORE_SERVICE, "ext");
	CHECK_STR(json_object_get_string(
	              json_object_object_get(json_object_object_get(o, "spec"), "externalName")),
	          "backend.example.net");
	json_object_put(o);

	/* An EndpointSlice keeps its endpoints' addresses and conditions, its labels;
	 * an Ingress loses unread metadata. */
	o = stored(ss, STORE_ENDPOINT_SLICE, "web-1");
	CHECK(o != NULL);
	json_object *eps = json_object_object_get(o, "endpoints");
	CHECK_INT((int)json_object_array_length(eps), 3);
	json_object *ep = json_object_array_get_idx(eps, 1);
	CHECK_INT(json_object_object_length(ep), 2);
	CHECK(json_object_object_get_ex(ep, "conditions", NULL));
	CHECK(!json_object_object_get_ex(ep, "targetRef", NULL));
	CHECK(!json_object_object_get_ex(ep, "nodeName", NULL));
	json_object *smeta = json_object_object_get(o, "metadata");
	CHECK_INT(json_object_object_length(smeta), 3); /* namespace, name, labels */
	CHECK_INT(json_object_object_length(json_object_object_get(smeta, "labels")), 1);
	CHECK_STR(json_object_get_string(json_object_object_get(
	              json_object_object_get(smeta, "labels"), "kubernetes.io/service-name")),
	          "web");
	json_object_put(o);
	o = stored(ss, STORE_INGRESS, "b");
	json_object *meta = json_object_object_get(o, "metadata");
	CHECK(!json_object_object_get_ex(meta, "generation", NULL));
	CHECK(!json_object_object_get_ex(meta, "ownerReferences", NULL));
	CHECK(!json_object_object_get_ex(meta, "finalizers", NULL));
	CHECK(json_object_object_get_ex(meta, "creationTimestamp", NULL));
	json_object_put(o);

	/* The status pass reads an Ingress's loadBalancer list: it answers the same. */
	const char *names[2] = {"a", "b"};
	for (size_t i = 0; i < 2; i++) {
		json_object *f = stored(sf, STORE_INGRESS, names[i]);
		json_object *p = stored(ss, STORE_INGRESS, names[i]);

		CHECK(f && p);
		CHECK(status_ingress_has(f, want) == status_ingress_has(p, want));
		CHECK(status_ingress_has(f, NULL) == status_ingress_has(p, NULL));
		CHECK(json_object_object_get_ex(p, "status", NULL) == (i == 1));
		json_object_put(f);
		json_object_put(p);
	}
	o = stored(ss, STORE_INGRESS, "b");
	CHECK(status_ingress_has(o, want));
	json_object_put(o);

	json_object_put(want);
	free(full);
	free(slim);
	free(dfull);
	free(dslim);
	store_free(sf);
	store_free(ss);
}

/* An object whose metadata is not an object (no API server sends one, but a
 * stream is input): ignored, not an abort in json-c. */
static void test_events_odd_metadata(void)
{
	struct k8s_source src = {0};
	struct watcher *w = &src.w[0];
	struct store *s = store_new();
	size_t n;

	src.s = s;
	w->src = &src;
	w->def = &kind_defs[0];
	watch_decoder_init(&w->dec, 1 << 20, on_event, w);
	CHECK_INT(feed_str(&w->dec, "{\"type\":\"ADDED\",\"object\":{\"metadata\":\"x\"}}\n"
	                            "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":[1]}}\n"
	                            "{\"type\":\"DELETED\",\"object\":{\"metadata\":7}}\n"
	                            "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":"
	                            "\"ok\",\"namespace\":\"ns\"}}}\n"),
	          0);
	json_object *o = find_obj(s, STORE_INGRESS, "ok", &n);
	CHECK_INT(n, 1);
	json_object_put(o);
	watcher_cleanup(w);
	store_free(s);
}

static void test_backoff(void)
{
	struct backoff b = {.attempt = 0, .seed = 7};
	long ceil = 250;

	for (int i = 0; i < 20; i++) {
		long d = backoff_next_ms(&b);

		CHECK(d >= ceil / 2 && d <= ceil);
		ceil = ceil * 2 > 30000 ? 30000 : ceil * 2;
	}
	/* Capped, and it never overflows however long the outage. */
	for (int i = 0; i < 1000; i++) {
		long d = backoff_next_ms(&b);

		CHECK(d >= 15000 && d <= 30000);
	}
	backoff_reset(&b);
	CHECK(backoff_next_ms(&b) <= 250);
	CHECK(backoff_next_ms(&b) <= 500);
}

static void test_url_escape(void)
{
	char *e = url_escape("eyJ2Ijoi/+=a-b_c.d~");

	CHECK_STR(e, "eyJ2Ijoi%2F%2B%3Da-b_c.d~");
	free(e);
}

/* ---- list+watch against a fake API server ---- */

struct fake {
	int lfd;
	int port;
	atomic_bool stop;
	atomic_int service_watches;
	atomic_int service_lists;
	atomic_int ingress_lists;
	atomic_int requests;
	pthread_t thread;
	char bad_path[2048];
};

static struct fake fk;

static void send_all(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

static void reply_json(int fd, int code, const char *body)
{
	char head[256];

	snprintf(head, sizeof(head),
	         "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
	         "Connection: close\r\n\r\n",
	         code, strlen(body));
	send_all(fd, head);
	send_all(fd, body);
}

/* Hold a watch open until the client goes away or the test ends (at most 10 s). */
static void hold_open(int fd)
{
	for (int i = 0; i < 100 && !atomic_load(&fk.stop); i++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char b[256];

		if (poll(&p, 1, 100) > 0 && recv(fd, b, sizeof(b), 0) <= 0)
			return;
	}
}

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void *conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char req[4096], path[2048];
	size_t len = 0;

	while (len < sizeof(req) - 1 && !strstr(req, "\r\n\r\n")) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 2000) <= 0)
			goto out;
		n = recv(fd, req + len, sizeof(req) - 1 - len, 0);
		if (n <= 0)
			goto out;
		len += (size_t)n;
		req[len] = '\0';
	}
	if (sscanf(req, "GET %2047s ", path) != 1)
		goto out;
	atomic_fetch_add(&fk.requests, 1);
	if (strstr(path, "watch=1")) {
		if (starts(path, "/api/v1/services?") &&
		    atomic_fetch_add(&fk.service_watches, 1) == 0) {
			/* First Service watch: the resourceVersion is too old. */
			send_all(
			    fd,
			    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			    "Connection: close\r\n\r\n"
			    "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":"
			    "\"v1\",\"status\":\"Failure\",\"reason\":\"Expired\",\"code\":"
			    "410}}\n");
			goto out;
		}
		send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		             "Connection: close\r\n\r\n");
		if (starts(path, "/apis/networking.k8s.io/v1/ingresses?")) {
			if (!strstr(path, "&resourceVersion=100") ||
			    !strstr(path, "allowWatchBookmarks=true"))
				snprintf(fk.bad_path, sizeof(fk.bad_path), "%s", path);
			/* One event split across two writes, as a real server may. */
			send_all(fd,
			         "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"b\","
			         "\"namespace\":\"n\",\"resourceVersion\":\"101\",");
			usleep(20000);
			send_all(fd, "\"labels\":{\"x\":\"y\"}}}}\n");
		}
		hold_open(fd);
		goto out;
	}
	/* The first list of a kind may come from the API server's watch cache
	 * (resourceVersion=0); a continue token carries its own version; a relist after
	 * 410 Gone (the Service watch's) asks for the newest. */
	if (starts(path, "/api/v1/services?") && (atomic_fetch_add(&fk.service_lists, 1) == 0
	                                              ? !strstr(path, "&resourceVersion=0")
	                                              : strstr(path, "resourceVersion=") != NULL))
		snprintf(fk.bad_path, sizeof(fk.bad_path), "%s", path);
	if (starts(path, "/apis/networking.k8s.io/v1/ingresses?")) {
		if (!strstr(path, "limit=500") || (strstr(path, "continue=") != NULL) ==
		                                      (strstr(path, "&resourceVersion=0") != NULL))
			snprintf(fk.bad_path, sizeof(fk.bad_path), "%s", path);
		if (!strstr(path, "continue=")) {
			atomic_fetch_add(&fk.ingress_lists, 1);
			reply_json(
			    fd, 200,
			    "{\"kind\":\"IngressList\",\"apiVersion\":\"networking.k8s.io/v1\","
			    "\"metadata\":{\"resourceVersion\":\"100\",\"continue\":\"t/+=\"},"
			    "\"items\":[{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\","
			    "\"managedFields\":[]}}]}");
		} else if (strstr(path, "continue=t%2F%2B%3D")) {
			reply_json(
			    fd, 200,
			    "{\"kind\":\"IngressList\",\"metadata\":{\"resourceVersion\":\"100\"},"
			    "\"items\":[{\"metadata\":{\"name\":\"b\",\"namespace\":\"n\"}}]}");
		} else {
			snprintf(fk.bad_path, sizeof(fk.bad_path), "%s", path);
			reply_json(fd, 400, "{}");
		}
		goto out;
	}
	if (starts(path, "/api/v1/secrets?") &&
	    !strstr(path, "fieldSelector=type%21%3Dhelm.sh%2Frelease.v1%2C"
	                  "type%21%3Dkubernetes.io%2Fservice-account-token"))
		snprintf(fk.bad_path, sizeof(fk.bad_path), "%s", path);
	/* Every namespace is watched: all ConfigMaps (weir's own among them),
	 * no selector, no second ConfigMap watch. */
	if ((starts(path, "/api/v1/configmaps?") && strstr(path, "fieldSelector")) ||
	    (starts(path, "/api/v1/namespaces/") && strstr(path, "/configmaps?")))
		snprintf(fk.bad_path, sizeof(fk.bad_path), "%s", path);
	if (starts(path, "/api/v1/configmaps?") && strstr(path, "limit=500")) {
		reply_json(fd, 200,
		           "{\"metadata\":{\"resourceVersion\":\"7\"},\"items\":[{\"metadata\":"
		           "{\"name\":\"hdr\",\"namespace\":\"n\"},\"data\":{\"X-A\":\"1\"},"
		           "\"binaryData\":{\"b\":\"AAAA\"}}]}");
		goto out;
	}
	reply_json(fd, 200, "{\"metadata\":{\"resourceVersion\":\"7\"},\"items\":[]}");
out:
	close(fd);
	return NULL;
}

static void *fake_main(void *arg)
{
	pthread_t conns[256];
	int nconns = 0;

	while (!atomic_load(&fk.stop)) {
		struct pollfd p = {.fd = fk.lfd, .events = POLLIN};
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(fk.lfd, NULL, NULL);
		if (fd < 0)
			continue;
		if (nconns == 256 ||
		    pthread_create(&conns[nconns], NULL, conn_main, (void *)(intptr_t)fd) != 0) {
			close(fd);
			continue;
		}
		nconns++;
	}
	for (int i = 0; i < nconns; i++)
		pthread_join(conns[i], NULL);
	return NULL;
}

static long now_ms(void)
{
	return mono_ms();
}

static void test_source_against_fake_server(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	struct k8s_source_options opt = {.configmap_namespace = "weir-system",
	                                 .configmap_name = "weir"};
	struct k8s_config *cfg = NULL;
	struct k8s_client *c = NULL;
	struct k8s_source *src = NULL;
	struct store *s = store_new();
	char path[] = "/tmp/weir-k8s-watch-test-XXXXXX", err[256], *metrics = NULL;
	json_object *o;
	size_t n;
	long t0;
	int fd;

	fk.lfd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_INT(bind(fk.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CHECK_INT(listen(fk.lfd, 64), 0);
	getsockname(fk.lfd, (struct sockaddr *)&sa, &sl);
	fk.port = ntohs(sa.sin_port);
	CHECK_INT(pthread_create(&fk.thread, NULL, fake_main, NULL), 0);

	fd = mkstemp(path);
	CHECK(fd >= 0);
	dprintf(fd,
	        "current-context: t\nclusters: [{name: c, cluster: {server: "
	        "'http://127.0.0.1:%d'}}]\ncontexts: [{name: t, context: {cluster: c}}]\n",
	        fk.port);
	close(fd);
	CHECK_INT(k8s_config_load(path, &cfg, err, sizeof(err)), 0);
	unlink(path);
	if (!cfg)
		goto out;
	CHECK_INT(k8s_client_new(cfg, &c), 0);
	CHECK_INT(k8s_source_start(c, s, &opt, &src), 0);
	if (!src)
		goto out;
	CHECK_INT(src->nw, 6);

	t0 = now_ms();
	while (!k8s_source_synced(src) && now_ms() - t0 < 5000)
		usleep(10000);
	CHECK(k8s_source_synced(src));

	/* Both pages listed, then the watch event (split in two writes) applied. */
	t0 = now_ms();
	for (;;) {
		json_object *labels = NULL;

		o = find_obj(s, STORE_INGRESS, "b", &n);
		if (o && json_object_object_get_ex(json_object_object_get(o, "metadata"), "labels",
		                                   &labels)) {
			json_object_put(o);
			break;
		}
		json_object_put(o);
		if (now_ms() - t0 > 5000)
			break;
		usleep(10000);
	}
	o = find_obj(s, STORE_INGRESS, "a", &n);
	CHECK_INT(n, 2);
	CHECK(o != NULL);
	if (o) {
		/* the store knows the kind: kind and apiVersion are not kept */
		CHECK(!json_object_object_get_ex(o, "kind", NULL));
		CHECK(!json_object_object_get_ex(o, "apiVersion", NULL));
		CHECK(!json_object_object_get_ex(json_object_object_get(o, "metadata"),
		                                 "managedFields", NULL));
		json_object_put(o);
	}
	/* the watch event's version of b (its labels), without its resourceVersion */
	o = find_obj(s, STORE_INGRESS, "b", &n);
	CHECK(o &&
	      json_object_object_get_ex(json_object_object_get(o, "metadata"), "labels", NULL) &&
	      !json_object_object_get_ex(json_object_object_get(o, "metadata"), "resourceVersion",
	                                 NULL));
	json_object_put(o);
	/* A ConfigMap of any namespace is kept, without binaryData. */
	o = find_obj(s, STORE_CONFIGMAP, "hdr", &n);
	CHECK(o != NULL);
	if (o) {
		CHECK_STR(obj_str(o, "data", "X-A"), "1");
		CHECK(!json_object_object_get_ex(o, "binaryData", NULL));
		json_object_put(o);
	}

	/* The Service watch got ERROR 410: a relist followed, then a second watch. */
	t0 = now_ms();
	while (atomic_load(&fk.service_watches) < 2 && now_ms() - t0 < 5000)
		usleep(10000);
	CHECK_INT(atomic_load(&fk.service_watches), 2);
	CHECK_INT(atomic_load(&fk.service_lists), 2);
	CHECK_INT(telemetry_render(&metrics), 0);
	CHECK(metrics && strstr(metrics, "weir_controller_relists_total{kind=\"Service\"} 1\n"));
	CHECK(metrics && strstr(metrics, "weir_controller_objects{kind=\"Ingress\"} 2\n"));
	free(metrics);
	CHECK_INT(atomic_load(&fk.ingress_lists), 1);
	CHECK_STR(fk.bad_path, "");

	/* Stopping interrupts the hanging watches promptly. */
	t0 = now_ms();
	k8s_source_stop(src);
	src = NULL;
	CHECK(now_ms() - t0 < 1000);
out:
	k8s_source_stop(src);
	atomic_store(&fk.stop, true);
	pthread_join(fk.thread, NULL);
	close(fk.lfd);
	k8s_client_free(c);
	k8s_config_free(cfg);
	store_free(s);
}

/* The API server being down: lists fail, the thread backs off, stop is still prompt. */
static void test_source_server_down(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	struct k8s_config *cfg = NULL;
	struct k8s_client *c = NULL;
	struct k8s_source *src = NULL;
	struct store *s = store_new();
	char path[] = "/tmp/weir-k8s-watch-test-XXXXXX", err[256];
	int lfd = socket(AF_INET, SOCK_STREAM, 0), fd, port;
	long t0;

	/* A port nobody listens on: bind, read the port, close. */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(lfd, (struct sockaddr *)&sa, sizeof(sa));
	getsockname(lfd, (struct sockaddr *)&sa, &sl);
	port = ntohs(sa.sin_port);
	close(lfd);
	fd = mkstemp(path);
	dprintf(fd,
	        "current-context: t\nclusters: [{name: c, cluster: {server: "
	        "'http://127.0.0.1:%d'}}]\ncontexts: [{name: t, context: {cluster: c}}]\n",
	        port);
	close(fd);
	CHECK_INT(k8s_config_load(path, &cfg, err, sizeof(err)), 0);
	unlink(path);
	if (!cfg)
		goto out;
	CHECK_INT(k8s_client_new(cfg, &c), 0);
	CHECK_INT(k8s_source_start(c, s, NULL, &src), 0);
	if (!src)
		goto out;
	CHECK_INT(src->nw, 6); /* ConfigMaps of every namespace, weir's own among them */
	CHECK_STR(src->w[5].path, "/api/v1/configmaps");
	CHECK(src->w[5].selector == NULL && src->w[5].scope == NULL);
	usleep(1200000);
	CHECK(!k8s_source_synced(src));
	CHECK(src->w[0].failing);
	CHECK(src->w[0].failures >= 2); /* 250 ms then 500 ms ceilings */
	CHECK(src->w[0].failures <= 6);
	t0 = now_ms();
	k8s_source_stop(src);
	src = NULL;
	CHECK(now_ms() - t0 < 500);
out:
	k8s_source_stop(src);
	k8s_client_free(c);
	k8s_config_free(cfg);
	store_free(s);
}

/* --watch-namespace apps with weir's ConfigMap in weir-system: every
 * ConfigMap of apps, and weir's own by name in weir-system; each list
 * replaces only its namespace's ConfigMaps in the store. */
static void test_source_scoped_configmaps(void)
{
	struct k8s_source_options opt = {.watch_namespace = "apps",
	                                 .configmap_namespace = "weir-system",
	                                 .configmap_name = "weir"};
	struct k8s_config *cfg = NULL;
	struct k8s_client *c = NULL;
	struct k8s_source *src = NULL;
	struct store *s = store_new();
	char path[] = "/tmp/weir-k8s-watch-test-XXXXXX", err[256];
	int fd = mkstemp(path);

	/* Port 1 on loopback: nothing listens, lists just fail. */
	dprintf(fd, "current-context: t\nclusters: [{name: c, cluster: {server: "
	            "'http://127.0.0.1:1'}}]\ncontexts: [{name: t, context: {cluster: c}}]\n");
	close(fd);
	CHECK_INT(k8s_config_load(path, &cfg, err, sizeof(err)), 0);
	unlink(path);
	if (!cfg)
		goto out;
	CHECK_INT(k8s_client_new(cfg, &c), 0);
	CHECK_INT(k8s_source_start(c, s, &opt, &src), 0);
	if (!src)
		goto out;
	CHECK_INT(src->nw, 7);
	if (src->nw == 7) {
		CHECK_STR(src->w[0].path, "/apis/networking.k8s.io/v1/namespaces/apps/ingresses");
		CHECK_STR(src->w[1].path, "/apis/networking.k8s.io/v1/ingressclasses");
		CHECK(src->w[1].scope == NULL);
		CHECK_STR(src->w[5].path, "/api/v1/namespaces/apps/configmaps");
		CHECK(src->w[5].selector == NULL);
		CHECK_STR(src->w[5].scope, "apps");
		CHECK(src->w[5].gauge);
		CHECK_STR(src->w[6].path, "/api/v1/namespaces/weir-system/configmaps");
		CHECK_STR(src->w[6].selector, "metadata.name%3Dweir");
		CHECK_STR(src->w[6].scope, "weir-system");
		CHECK(!src->w[6].gauge);
	}
out:
	k8s_source_stop(src);
	k8s_client_free(c);
	k8s_config_free(cfg);
	store_free(s);
}

/* ---- list pages ---- */

/* l's items as "json|json|..." into out (unless there are none), then l emptied and freed. */
static void items_text(struct item_list *l, char *out, size_t outlen)
{
	size_t len = 0;
	for (size_t i = 0; i < l->n; i++)
		len += (size_t)snprintf(
		    out + len, outlen - len, "%s|",
		    json_object_to_json_string_ext(l->v[i], JSON_C_TO_STRING_PLAIN));
	item_list_truncate(l, 0);
	free(l->v);
}

/* parse_page of text as an Ingress list: the items as plain JSON joined by '|', or
 * "ERROR". */
static void page_result(const char *text, char *out, size_t outlen, char *rv, size_t rvlen,
                        char **cont)
{
	char *copy = strdup(text);
	struct item_list l = {0};

	CHECK(copy != NULL);
	*cont = NULL;
	out[0] = '\0';
	if (parse_page(&kind_defs[0], copy, strlen(copy), &l, 0, false, rv, rvlen, cont) != 0) {
		snprintf(out, outlen, "ERROR");
		CHECK_INT(l.n, 0);
	}
	items_text(&l, out, outlen);
	free(copy);
}

/* The same through a list_stream, text fed to it step bytes at a time (as a list response
 * arrives). */
static void stream_result(const char *text, size_t step, char *out, size_t outlen, char *rv,
                          size_t rvlen, char **cont)
{
	struct item_list l = {0};
	struct list_stream ls;
	size_t n = strlen(text);
	int rc = 0;

	*cont = NULL;
	out[0] = '\0';
	list_stream_init(&ls, &kind_defs[0], &l);
	for (size_t off = 0; off < n && rc == 0; off += step)
		rc = list_stream_sink(&ls, text + off, n - off < step ? n - off : step);
	if (rc == 0)
		rc = list_stream_finish(&ls, rv, rvlen, cont);
	list_stream_cleanup(&ls);
	if (rc) {
		snprintf(out, outlen, "ERROR");
		item_list_truncate(&l, 0);
	}
	items_text(&l, out, outlen);
}

/* One parse's items, resourceVersion and continue token against the
 * wanted ones (cont_want NULL: no token); frees cont. */
static void check_result(const char *out, const char *items, const char *rv, const char *rv_want,
                         char *cont, const char *cont_want)
{
	CHECK_STR(out, items);
	CHECK_STR(rv, rv_want);
	if (cont_want)
		CHECK_STR(cont, cont_want);
	else
		CHECK(cont == NULL);
	free(cont);
}

static void check_page(const char *text, const char *items, const char *rv_want,
                       const char *cont_want)
{
	static const size_t steps[] = {1, 2, 3, 7, 64, 100000};
	char out[4096], rv[128] = "";
	char *cont;

	page_result(text, out, sizeof(out), rv, sizeof(rv), &cont);
	check_result(out, items, rv, rv_want, cont, cont_want);
	/* Parsed as it arrives, in any chunking: the same. */
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		rv[0] = '\0';
		stream_result(text, steps[i], out, sizeof(out), rv, sizeof(rv), &cont);
		check_result(out, items, rv, rv_want, cont, cont_want);
	}
}

static void test_list_pages(void)
{
	/* managedFields first, in the middle, last, alone; the last-applied annotation
	 * likewise; members order kept. */
	check_page("{\"kind\":\"IngressList\",\"apiVersion\":\"networking.k8s.io/v1\","
	           "\"metadata\":{\"resourceVersion\":\"77\",\"continue\":\"tok\"},\"items\":["
	           "{\"metadata\":{\"managedFields\":[{\"f\":{\"}\":\"]\"}}],\"name\":\"a\"}},"
	           " {\"metadata\" : { \"name\":\"b\" , \"managedFields\" : [ ] , \"uid\":\"u\" }},"
	           "{\"metadata\":{\"name\":\"c\",\"managedFields\":[{}]},\"spec\":{}},"
	           "{\"metadata\":{\"managedFields\":null}},"
	           "{\"metadata\":{\"name\":\"d\",\"annotations\":{"
	           "\"kubectl.kubernetes.io/last-applied-configuration\":\"{\\\"x\\\":1}\","
	           "\"k\":\"v\"}}},"
	           "{\"metadata\":{\"name\":\"e\",\"annotations\":{\"k\":\"v\","
	           "\"kubectl.kubernetes.io\\/last-applied-configuration\":\"{}\"}}},"
	           "7,\"s\",null,[]]}",
	           "{\"metadata\":{\"name\":\"a\"}}|{\"metadata\":{\"name\":\"b\",\"uid\":\"u\"}}|"
	           "{\"metadata\":{\"name\":\"c\"},\"spec\":{}}|{\"metadata\":{}}|"
	           "{\"metadata\":{\"name\":\"d\",\"annotations\":{\"k\":\"v\"}}}|"
	           "{\"metadata\":{\"name\":\"e\",\"annotations\":{\"k\":\"v\"}}}|",
	           "77", "tok");
	/* Only where prepare_object deletes: an annotation named managedFields and a
	 * managedFields member outside metadata stay. */
	check_page("{\"items\":[{\"metadata\":{\"name\":\"a\",\"annotations\":{"
	           "\"managedFields\":\"1\"}},\"spec\":{\"metadata\":{\"managedFields\":2}}}]}",
	           "{\"metadata\":{\"name\":\"a\",\"annotations\":{\"managedFields\":\"1\"}},"
	           "\"spec\":{\"metadata\":{\"managedFields\":2}}}|",
	           "", NULL);
	/* A later duplicate member wins, as in one json-c tree; an empty continue is none;
	 * escaped keys. */
	check_page(
	    "{\"items\":[{\"metadata\":{\"name\":\"old\"}}],\"metadata\":{\"continue\":\"x\"},"
	    "\"\\u0069tems\":[{\"metadata\":{\"name\":\"new\"}}],"
	    "\"metadata\":{\"resourceVersion\":\"3\",\"continue\":\"\"}}",
	    "{\"metadata\":{\"name\":\"new\"}}|", "3", NULL);
	/* Backslash runs before a quote inside strings. */
	check_page("{\"items\":[{\"metadata\":{\"name\":\"a\\\\\"},"
	           "\"spec\":{\"x\":\"q\\\"]}\\\\\\\"\"}}]}",
	           "{\"metadata\":{\"name\":\"a\\\\\"},\"spec\":{\"x\":\"q\\\"]}\\\\\\\"\"}}|", "",
	           NULL);
	/* Items with the list's metadata after them, members after the items, a number item
	 * cut by a read. */
	check_page("{\"apiVersion\":\"v1\",\"items\":[{\"metadata\":{\"name\":\"a\\\\\"},"
	           "\"spec\":{\"x\":\"q\\\"]}\\\\\\\"\"}},12345,{\"metadata\":{\"name\":\"b\"}}],"
	           "\"metadata\":{\"resourceVersion\":\"9\",\"continue\":\"c\"},\"z\":[1,{}]}",
	           "{\"metadata\":{\"name\":\"a\\\\\"},\"spec\":{\"x\":\"q\\\"]}\\\\\\\"\"}}|"
	           "{\"metadata\":{\"name\":\"b\"}}|",
	           "9", "c");
	/* A later items member wins over a streamed one; items null first: parsed whole. */
	check_page("{\"items\":[{\"metadata\":{\"name\":\"old\"}}],\"items\":[]}", "", "", NULL);
	check_page("{\"items\":null,\"items\":[{\"metadata\":{\"name\":\"new\"}}]}",
	           "{\"metadata\":{\"name\":\"new\"}}|", "", NULL);
	check_page(" {\"items\":null} trailing", "", "", NULL);
	check_page("{\"items\":[],\"metadata\":{\"resourceVersion\":5}}", "", "", NULL);
	/* Malformed: no items, items not a list, bad punctuation, a bad item, cut short. */
	const char *bad[] = {
	    "",
	    "[]",
	    "{}",
	    "{\"items\":{}}",
	    "{\"items\":1}",
	    "{\"items\":[{}],}",
	    "{\"items\":[{},]}",
	    "{\"items\":[{} {}]}",
	    "{\"items\" [{}]}",
	    "{\"items\":[{\"a\":}]}",
	    "{\"items\":[{\"a\":1]]}",
	    "{\"items\":[{\"metadata\":{\"managedFields\":[}}]}",
	    "{\"kind\":tru,\"items\":[]}",
	    "{\"items\":[{\"a\":\"b}]}",
	    "{\"items\":[",
	    "{\"items\":[{\"a\":\"b\\\"}]}",
	    "{\"items\":[{}",
	    "{\"items\":[{},",
	    "{\"items\":[1",
	    "{\"items\":[{}] ,",
	    "{,\"items\":[]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_page(bad[i], "ERROR", "", NULL);
}

int main(void)
{
	log_init(LOG_FORMAT_TEXT, LOG_LEVEL_ERROR);
	test_decoder_chunks();
	test_decoder_errors();
	test_events_into_store();
	test_events_odd_metadata();
	test_prepare_keeps_compile_output();
	test_shared_keeps_compile_output();
	test_backoff();
	test_url_escape();
	test_list_pages();
	test_source_against_fake_server();
	test_source_server_down();
	test_source_scoped_configmaps();
	return check_finish("k8s_watch_test");
}
