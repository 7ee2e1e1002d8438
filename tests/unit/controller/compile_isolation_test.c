/* tests/unit/controller/compile_isolation_test.c - the compiler as a pure function:
 * byte-identical output for the same objects (whatever their insertion
 * order), a valid table for the proxy's reader, one bad Ingress isolated,
 * loopback endpoints, class listing, TLS material. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "controller/compile.h"
#include "controller/store.h"
#include "error.h"

static const char *const OBJS[][2] = {
    {"IngressClass", "{\"metadata\":{\"name\":\"weir\"},"
                     "\"spec\":{\"controller\":\"weir.dev/ingress-controller\"}}"},
    {"Service", "{\"metadata\":{\"name\":\"web\",\"namespace\":\"default\"},"
                "\"spec\":{\"ports\":[{\"name\":\"http\",\"port\":80,\"targetPort\":8080}]}}"},
    {"Service", "{\"metadata\":{\"name\":\"api\",\"namespace\":\"team\"},"
                "\"spec\":{\"ports\":[{\"port\":9000,\"targetPort\":9000}]}}"},
    {"EndpointSlice",
     "{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"default\","
     "\"labels\":{\"kubernetes.io/service-name\":\"web\"}},\"addressType\":\"IPv4\","
     "\"ports\":[{\"name\":\"http\",\"port\":8080}],\"endpoints\":["
     "{\"addresses\":[\"10.0.0.2\"],\"conditions\":{\"ready\":true}},"
     "{\"addresses\":[\"127.0.0.1\"],\"conditions\":{\"ready\":true}},"
     "{\"addresses\":[\"10.0.0.1\"],\"conditions\":{\"ready\":false,\"serving\":true,"
     "\"terminating\":true}}]}"},
    {"EndpointSlice", "{\"metadata\":{\"name\":\"api-1\",\"namespace\":\"team\","
                      "\"labels\":{\"kubernetes.io/service-name\":\"api\"}},"
                      "\"addressType\":\"IPv4\",\"ports\":[{\"port\":9000}],\"endpoints\":["
                      "{\"addresses\":[\"10.1.0.1\"]}]}"},
    {"Secret", "{\"metadata\":{\"name\":\"tls\",\"namespace\":\"default\"},"
               "\"type\":\"kubernetes.io/tls\",\"data\":{"
               /* a P-256 certificate and its key (tests/golden/tls-host-secret): the
                * proxy loads them, so compile keeps them */
               "\"tls.crt\":\""
               "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJyekNDQVZTZ0F3SUJBZ0lVSXJONG4wR3NRdTVX"
               "eVZlb0NKc0lFVTVudjNvd0NnWUlLb1pJemowRUF3SXcKSFRFYk1Ca0dBMVVFQXd3U2MyVmpkWEpsTG1W"
               "NFlXMXdiR1V1WTI5dE1CNFhEVEkyTVRFeU16QXhORFV6T0ZvWApEVE0yTVRFeU1EQXhORFV6T0Zvd0hU"
               "RWJNQmtHQTFVRUF3d1NjMlZqZFhKbExtVjRZVzF3YkdVdVkyOXRNRmt3CkV3WUhLb1pJemowQ0FRWUlL"
               "b1pJemowREFRY0RRZ0FFWW9BWmwwdktnQlV1a3ByQ1Nua0xQd2tEbHBKdC93QlUKOTdyRGZKWFFpUm5x"
               "UWFrdkk0cTV4R2xvc2ZDdStZT1Fvc01VajNsQXhSQitXd09YdGNtMm1LTnlNSEF3SFFZRApWUjBPQkJZ"
               "RUZJWFdBb0JtSEFXaHMxNkdKSkc5ZjQ0bVduNzZNQjhHQTFVZEl3UVlNQmFBRklYV0FvQm1IQVdoCnMx"
               "NkdKSkc5ZjQ0bVduNzZNQThHQTFVZEV3RUIvd1FGTUFNQkFmOHdIUVlEVlIwUkJCWXdGSUlTYzJWamRY"
               "SmwKTG1WNFlXMXdiR1V1WTI5dE1Bb0dDQ3FHU000OUJBTUNBMGtBTUVZQ0lRRGpSVjg4UktpSS95OVNG"
               "RTFTZlpqQQpkMEhhU0xCR0tvTlFMQS8zQ0d1SzV3SWhBSzRSNDFFTEgzdG5LNmIrcTg4RjJpbUtaVEZY"
               "NVpmNkxFdjhJRWI0CjAvdHMKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
               "\",\"tls.key\":\""
               "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JR0hBZ0VBTUJNR0J5cUdTTTQ5QWdFR0NDcUdTTTQ5"
               "QXdFSEJHMHdhd0lCQVFRZzVneE03dkM4K1pPWnFCREIKZGN1UWVQZ1hMbjEyditFcHVEc05kZzhTRFdX"
               "aFJBTkNBQVJpZ0JtWFM4cUFGUzZTbXNKS2VRcy9DUU9Xa20zLwpBRlQzdXNOOGxkQ0pHZXBCcVM4amly"
               "bkVhV2l4OEs3NWc1Q2l3eFNQZVVERkVINWJBNWUxeWJhWQotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0t"
               "Cg=="
               "\"}}"},
    {"ConfigMap", "{\"metadata\":{\"name\":\"weir\",\"namespace\":\"weir-system\"},"
                  "\"data\":{\"max-header-bytes\":\"64k\",\"trusted-proxies\":\"10.0.0.0/8\"}}"},
    {"Ingress",
     "{\"metadata\":{\"name\":\"site\",\"namespace\":\"default\","
     "\"creationTimestamp\":\"2026-01-01T00:00:00Z\","
     "\"annotations\":{\"nginx.ingress.kubernetes.io/proxy-read-timeout\":\"120\"}},"
     "\"spec\":{\"ingressClassName\":\"weir\","
     "\"tls\":[{\"hosts\":[\"www.example.com\"],\"secretName\":\"tls\"}],"
     "\"defaultBackend\":{\"service\":{\"name\":\"web\",\"port\":{\"name\":\"http\"}}},"
     "\"rules\":[{\"host\":\"www.example.com\",\"http\":{\"paths\":["
     "{\"path\":\"/\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"web\","
     "\"port\":{\"number\":80}}}},"
     "{\"path\":\"/about\",\"pathType\":\"Exact\",\"backend\":{\"service\":{\"name\":\"web\","
     "\"port\":{\"number\":80}}}}]}}]}}"},
    {"Ingress", "{\"metadata\":{\"name\":\"api\",\"namespace\":\"team\","
                "\"creationTimestamp\":\"2026-01-02T00:00:00Z\"},"
                "\"spec\":{\"ingressClassName\":\"weir\","
                "\"rules\":[{\"host\":\"www.example.com\",\"http\":{\"paths\":["
                "{\"path\":\"/api\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{"
                "\"name\":\"api\",\"port\":{\"number\":9000}}}}]}}]}}"},
    {"Ingress", "{\"metadata\":{\"name\":\"broken\",\"namespace\":\"team\","
                "\"creationTimestamp\":\"2026-01-03T00:00:00Z\","
                "\"annotations\":{\"weir.dev/proxy-body-size\":\"big\"}},"
                "\"spec\":{\"ingressClassName\":\"weir\","
                "\"rules\":[{\"host\":\"www.example.com\",\"http\":{\"paths\":["
                "{\"path\":\"/broken\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{"
                "\"name\":\"api\",\"port\":{\"number\":9000}}}}]}}]}}"},
    {"Ingress", "{\"metadata\":{\"name\":\"elsewhere\",\"namespace\":\"default\"},"
                "\"spec\":{\"ingressClassName\":\"nginx\","
                "\"rules\":[{\"host\":\"www.example.com\",\"http\":{\"paths\":["
                "{\"path\":\"/\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{"
                "\"name\":\"web\",\"port\":{\"number\":80}}}}]}}]}}"},
};
#define NOBJS (sizeof(OBJS) / sizeof(OBJS[0]))

static enum store_kind kind_of(const char *k)
{
	for (int i = 0; i < STORE_KIND_COUNT; i++)
		if (strcmp(store_kind_name((enum store_kind)i), k) == 0)
			return (enum store_kind)i;
	return STORE_KIND_COUNT;
}

/* A store with every object, inserted forwards or backwards. */
static struct store *make_store(bool reverse)
{
	struct store *s = store_new();
	for (size_t j = 0; j < NOBJS; j++) {
		size_t i = reverse ? NOBJS - 1 - j : j;
		json_object *o = json_tokener_parse(OBJS[i][1]);
		CHECK(o != NULL);
		CHECK_INT(store_upsert(s, kind_of(OBJS[i][0]), o), 0);
	}
	return s;
}

static const struct compile_options OPTS = {.ingress_class = "weir",
                                            .controller_name = "weir.dev/ingress-controller",
                                            .allow_loopback = false};

static char *compile_text(struct store *s, const struct compile_options *o, struct diag_list *d,
                          struct route_table **keep)
{
	struct snapshot *snap = store_snapshot(s);
	struct route_table *t = NULL;
	char *json = NULL;
	size_t len = 0;
	CHECK_INT(compile_snapshot(snap, o, &t, d), 0);
	CHECK(t != NULL);
	CHECK_INT(route_table_serialize(t, &json, &len), 0);
	if (keep)
		*keep = t;
	else
		route_table_free(t);
	snapshot_free(snap);
	return json;
}

static const struct diag *find_diag(const struct diag_list *d, const char *reason)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->items[i].reason, reason) == 0)
			return &d->items[i];
	return NULL;
}

static void determinism(void)
{
	struct store *a = make_store(false), *b = make_store(true);
	struct diag_list da = {0}, db = {0}, dc = {0};
	char *ja = compile_text(a, &OPTS, &da, NULL);
	char *jb = compile_text(b, &OPTS, &db, NULL);
	char *jc = compile_text(a, &OPTS, &dc, NULL);
	CHECK(ja && jb && jc);
	if (ja && jb && jc) {
		CHECK_STR(ja, jb);
		CHECK_STR(ja, jc);
	}
	CHECK_INT(da.n, db.n);
	for (size_t i = 0; i < da.n && i < db.n; i++) {
		CHECK_STR(da.items[i].message, db.items[i].message);
		CHECK_STR(da.items[i].reason, db.items[i].reason);
	}
	/* the proxy's reader accepts it, and it round-trips byte for byte */
	struct route_table *parsed = NULL;
	char err[256] = "";
	CHECK_INT(route_table_parse(ja, strlen(ja), &parsed, err, sizeof(err)), 0);
	if (err[0])
		fprintf(stderr, "parse: %s\n", err);
	if (parsed) {
		char *again = NULL;
		size_t len;
		CHECK_INT(route_table_serialize(parsed, &again, &len), 0);
		CHECK_STR(again, ja);
		CHECK_INT(parsed->generation, 0);
		free(again);
		route_table_free(parsed);
	}
	free(ja);
	free(jb);
	free(jc);
	diag_list_cleanup(&da);
	diag_list_cleanup(&db);
	diag_list_cleanup(&dc);
	CHECK_INT(da.n, 0);
	CHECK(da.items == NULL);
	store_free(a);
	store_free(b);
}

static const struct route *route_of(const struct route_table *t, const char *host, const char *path)
{
	for (size_t i = 0; i < t->nhosts; i++) {
		if (strcmp(t->hosts[i].name, host) != 0)
			continue;
		for (size_t j = 0; j < t->hosts[i].nroutes; j++)
			if (strcmp(t->hosts[i].routes[j].path, path) == 0)
				return &t->hosts[i].routes[j];
	}
	return NULL;
}

static void content(void)
{
	struct store *s = make_store(false);
	struct diag_list d = {0};
	struct route_table *t = NULL;
	char *json = compile_text(s, &OPTS, &d, &t);
	free(json);
	if (!t) {
		store_free(s);
		return;
	}
	/* one host, merged from two Ingresses, in match order */
	CHECK_INT(t->nhosts, 1);
	if (t->nhosts == 1) {
		const struct route_host *h = &t->hosts[0];
		CHECK_STR(h->name, "www.example.com");
		CHECK_INT(h->nroutes, 3);
		if (h->nroutes == 3) {
			CHECK_STR(h->routes[0].path, "/about");
			CHECK_INT(h->routes[0].match, ROUTE_MATCH_EXACT);
			CHECK_STR(h->routes[1].path, "/api");
			CHECK_STR(h->routes[1].source, "team/api");
			CHECK_STR(h->routes[2].path, "/");
		}
		CHECK(h->cert >= 0);
	}
	/* the bad Ingress is gone, with a diagnostic naming it and the key;
	 * the other Ingress of the same namespace and host is untouched */
	CHECK(route_of(t, "www.example.com", "/broken") == NULL);
	const struct diag *bad = find_diag(&d, "BadAnnotation");
	CHECK(bad != NULL);
	if (bad) {
		CHECK_STR(bad->kind, "Ingress");
		CHECK_STR(bad->ns, "team");
		CHECK_STR(bad->name, "broken");
		CHECK_STR(bad->key, "weir.dev/proxy-body-size");
		CHECK(strstr(bad->message, "big") != NULL);
	}
	/* policy: read timeout also bounds the WebSocket idle time; TLS host
	 * redirects */
	const struct route *r = route_of(t, "www.example.com", "/");
	CHECK(r != NULL);
	if (r) {
		CHECK_INT(r->policy->read_timeout_ms, 120000);
		CHECK_INT(r->policy->ws_idle_timeout_ms, 120000);
		CHECK(r->policy->ssl_redirect);
		CHECK(r->backend >= 0);
	}
	/* endpoints: loopback dropped with a diagnostic, terminating+serving
	 * kept as draining, sorted */
	CHECK(r && r->backend >= 0);
	if (r && r->backend >= 0) {
		const struct route_backend *b = &t->backends[r->backend];
		CHECK_STR(b->name, "default/web:80");
		CHECK_INT(b->nendpoints, 2);
		if (b->nendpoints == 2) {
			CHECK_STR(b->endpoints[0].address, "10.0.0.1");
			CHECK(b->endpoints[0].draining);
			CHECK_STR(b->endpoints[1].address, "10.0.0.2");
			CHECK(!b->endpoints[1].draining);
			CHECK_INT(b->endpoints[1].port, 8080);
		}
	}
	const struct diag *lo = find_diag(&d, "LoopbackEndpoint");
	CHECK(lo != NULL);
	if (lo) {
		CHECK_STR(lo->kind, "EndpointSlice");
		CHECK_STR(lo->name, "web-1");
	}
	/* default backend by port name is its own backend */
	CHECK(t->default_backend >= 0);
	if (t->default_backend >= 0)
		CHECK_STR(t->backends[t->default_backend].name, "default/web:http");
	/* TLS material decoded from base64 */
	CHECK_INT(t->ncerts, 1);
	if (t->ncerts == 1) {
		CHECK_STR(t->certs[0].name, "default/tls");
		CHECK(strncmp(t->certs[0].cert_pem, "-----BEGIN CERTIFICATE-----\nMII", 30) == 0);
		CHECK(strncmp(t->certs[0].key_pem, "-----BEGIN PRIVATE KEY-----\nMII", 30) == 0);
	}
	/* ConfigMap settings */
	CHECK_INT(t->settings.max_header_bytes, 65536);
	CHECK_INT(t->settings.ntrusted_proxies, 1);
	/* the nginx-class Ingress contributed nothing */
	for (size_t i = 0; i < d.n; i++)
		CHECK(strcmp(d.items[i].name, "elsewhere") != 0);
	route_table_free(t);
	diag_list_cleanup(&d);

	/* --manifests mode keeps loopback endpoints */
	struct compile_options lo_ok = OPTS;
	lo_ok.allow_loopback = true;
	t = NULL;
	json = compile_text(s, &lo_ok, &d, &t);
	free(json);
	CHECK(find_diag(&d, "LoopbackEndpoint") == NULL);
	r = t ? route_of(t, "www.example.com", "/") : NULL;
	if (r && r->backend >= 0)
		CHECK_INT(t->backends[r->backend].nendpoints, 3);
	route_table_free(t);
	diag_list_cleanup(&d);
	store_free(s);
}

static void append_and_classes(void)
{
	struct store *s = make_store(false);
	/* diagnostics already in the list (e.g. from the manifests reader) stay */
	struct diag_list d = {0};
	d.items = calloc(1, sizeof(*d.items));
	d.n = 1;
	d.items[0].kind = strdup("File");
	d.items[0].ns = strdup("");
	d.items[0].name = strdup("a.yaml:3");
	d.items[0].uid = strdup("");
	d.items[0].reason = strdup("BadManifest");
	d.items[0].message = strdup("oops");
	char *json = compile_text(s, &OPTS, &d, NULL);
	free(json);
	CHECK(d.n > 1);
	CHECK(find_diag(&d, "BadManifest") != NULL);
	diag_list_cleanup(&d);

	char **names = NULL;
	size_t n = 0;
	struct snapshot *snap = store_snapshot(s);
	CHECK_INT(compile_class_ingresses(snap, &OPTS, &names, &n), 0);
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK_STR(names[0], "default/site");
		CHECK_STR(names[1], "team/api");
		CHECK_STR(names[2], "team/broken");
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	snapshot_free(snap);
	store_free(s);
}

/* The Ingresses whose status is written: with take_over_class the class
 * named by ingress_class is ours although another controller owns it. */
static void take_over_status(void)
{
	struct store *s = make_store(false);
	json_object *cls = json_tokener_parse("{\"metadata\":{\"name\":\"nginx\"},\"spec\":{"
	                                      "\"controller\":\"k8s.io/ingress-nginx\"}}");
	CHECK_INT(store_upsert(s, STORE_INGRESS_CLASS, cls), 0);
	struct snapshot *snap = store_snapshot(s);
	struct compile_options o = OPTS;
	o.ingress_class = "nginx";
	for (int take = 0; take <= 1; take++) {
		char **names = NULL;
		size_t n = 0;
		o.take_over_class = take;
		CHECK_INT(compile_class_ingresses(snap, &o, &names, &n), 0);
		CHECK_INT(n, (size_t)take);
		if (take && n == 1)
			CHECK_STR(names[0], "default/elsewhere");
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
	snapshot_free(snap);
	store_free(s);
}

/* An ExternalName of localhost or a loopback literal is refused from the
 * API (as ingress-nginx) and kept in --manifests mode. */
static void external_loopback(void)
{
	static const char *const names[] = {"localhost", "127.0.0.2"};
	for (size_t i = 0; i < 2; i++) {
		struct store *s = store_new();
		char svc[512];
		snprintf(svc, sizeof(svc),
		         "{\"metadata\":{\"name\":\"ext\",\"namespace\":\"default\"},"
		         "\"spec\":{\"type\":\"ExternalName\",\"externalName\":\"%s\","
		         "\"ports\":[{\"port\":80,\"targetPort\":8080}]}}",
		         names[i]);
		CHECK_INT(store_upsert(s, STORE_INGRESS_CLASS, json_tokener_parse(OBJS[0][1])), 0);
		CHECK_INT(store_upsert(s, STORE_SERVICE, json_tokener_parse(svc)), 0);
		CHECK_INT(
		    store_upsert(s, STORE_INGRESS,
		                 json_tokener_parse(
		                     "{\"metadata\":{\"name\":\"ext\",\"namespace\":\"default\"},"
		                     "\"spec\":{\"ingressClassName\":\"weir\",\"rules\":[{\"host\":"
		                     "\"ext.example.com\",\"http\":{\"paths\":[{\"path\":\"/\","
		                     "\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":"
		                     "\"ext\",\"port\":{\"number\":80}}}}]}}]}}")),
		    0);
		for (int lo = 0; lo <= 1; lo++) {
			struct compile_options o = OPTS;
			o.allow_loopback = lo;
			struct diag_list d = {0};
			struct route_table *t = NULL;
			free(compile_text(s, &o, &d, &t));
			const struct route *r = t ? route_of(t, "ext.example.com", "/") : NULL;
			CHECK(r != NULL && r->backend >= 0);
			if (r && r->backend >= 0) {
				const struct route_backend *b = &t->backends[r->backend];
				CHECK((find_diag(&d, "LoopbackEndpoint") != NULL) == !lo);
				if (!lo)
					CHECK(b->external_name == NULL && b->nendpoints == 0);
				else if (i == 0)
					CHECK(b->external_name &&
					      strcmp(b->external_name, "localhost") == 0 &&
					      b->external_port == 8080);
				else
					CHECK(!b->external_name && b->nendpoints == 1 &&
					      strcmp(b->endpoints[0].address, "127.0.0.2") == 0 &&
					      b->endpoints[0].port == 8080);
			}
			route_table_free(t);
			diag_list_cleanup(&d);
		}
		store_free(s);
	}
}

static void empty(void)
{
	struct snapshot snap;
	memset(&snap, 0, sizeof(snap));
	struct route_table *t = NULL;
	struct diag_list d = {0};
	CHECK_INT(compile_snapshot(&snap, &OPTS, &t, &d), 0);
	CHECK(t != NULL);
	if (t) {
		CHECK_INT(t->nhosts, 0);
		CHECK_INT(t->default_backend, -1);
		CHECK_INT(t->default_cert, -1);
		CHECK_INT(t->version, ROUTE_TABLE_VERSION);
	}
	CHECK_INT(d.n, 0);
	route_table_free(t);
	diag_list_cleanup(&d);
}

/* Many TLS Ingresses: the compile decodes their Secrets on two threads
 * (compile.c, cert_preps), claimed in chunks of Ingresses. More Ingresses
 * than a chunk, Secrets shared by Ingresses of different chunks, one that is
 * not a certificate and one that is missing: each host has the certificate
 * of its own Secret, each bad one a diagnostic, and two compiles of the
 * same objects give the same bytes. */
static void many_tls(void)
{
	enum { N = 300, SECRETS = 7 };
	const char *secret_json = NULL;
	for (size_t i = 0; i < NOBJS; i++)
		if (strcmp(OBJS[i][0], "Secret") == 0)
			secret_json = OBJS[i][1];
	CHECK(secret_json != NULL);
	if (!secret_json)
		return;
	struct store *s = store_new();
	CHECK_INT(store_upsert(s, STORE_INGRESS_CLASS, json_tokener_parse(OBJS[0][1])), 0);
	for (int k = 0; k <= SECRETS; k++) {
		json_object *sec = json_tokener_parse(secret_json);
		json_object *md = NULL, *data = NULL;
		CHECK(json_object_object_get_ex(sec, "metadata", &md));
		char name[32];
		snprintf(name, sizeof(name), k < SECRETS ? "tls-%d" : "bad", k);
		json_object_object_add(md, "name", json_object_new_string(name));
		json_object_object_add(md, "namespace", json_object_new_string("many"));
		if (k == SECRETS && json_object_object_get_ex(sec, "data", &data))
			json_object_object_add(
			    data, "tls.crt",
			    json_object_new_string(
			        "bm90IGEgY2VydGlmaWNhdGU=")); /* "not a certificate" */
		CHECK_INT(store_upsert(s, STORE_SECRET, sec), 0);
	}
	for (int i = 0; i < N; i++) {
		char obj[1024];
		const char *secret = i % 10 == 9 ? "bad" : i % 10 == 8 ? "missing" : NULL;
		char own[16];
		snprintf(own, sizeof(own), "tls-%d", i % SECRETS);
		snprintf(
		    obj, sizeof(obj),
		    "{\"metadata\":{\"name\":\"i%03d\",\"namespace\":\"many\","
		    "\"creationTimestamp\":\"2026-01-01T00:00:00Z\"},\"spec\":{"
		    "\"ingressClassName\":\"weir\",\"tls\":[{\"hosts\":[\"h%03d.example.com\"],"
		    "\"secretName\":\"%s\"}],\"rules\":[{\"host\":\"h%03d.example.com\","
		    "\"http\":{\"paths\":[{\"path\":\"/\",\"pathType\":\"Prefix\",\"backend\":{"
		    "\"service\":{\"name\":\"web\",\"port\":{\"number\":80}}}}]}}]}}",
		    i, i, secret ? secret : own, i);
		json_object *o = json_tokener_parse(obj);
		CHECK(o != NULL);
		CHECK_INT(store_upsert(s, STORE_INGRESS, o), 0);
	}
	struct diag_list d1 = {0}, d2 = {0};
	struct route_table *t = NULL;
	char *a = compile_text(s, &OPTS, &d1, &t);
	char *b = compile_text(s, &OPTS, &d2, NULL);
	CHECK(a && b && strcmp(a, b) == 0);
	CHECK_INT(d1.n, d2.n);
	size_t bad = 0, missing = 0;
	for (size_t i = 0; i < d1.n; i++) {
		if (strcmp(d1.items[i].reason, "SecretNotFound") != 0)
			continue;
		bad += strstr(d1.items[i].message, "many/bad") != NULL;
		missing += strstr(d1.items[i].message, "many/missing") != NULL;
	}
	CHECK_INT(bad, N / 10);
	CHECK_INT(missing, N / 10);
	size_t checked = 0;
	for (size_t h = 0; t && h < t->nhosts; h++) {
		int i = -1;
		if (sscanf(t->hosts[h].name, "h%d.example.com", &i) != 1 || i % 10 >= 8)
			continue;
		char want[32];
		snprintf(want, sizeof(want), "many/tls-%d", i % SECRETS);
		int c = t->hosts[h].cert;
		CHECK(c >= 0 && (size_t)c < t->ncerts);
		if (c >= 0 && (size_t)c < t->ncerts) {
			CHECK_STR(t->certs[c].name, want);
			CHECK(strncmp(t->certs[c].cert_pem, "-----BEGIN CERTIFICATE-----\nMII",
			              30) == 0);
		}
		checked++;
	}
	CHECK_INT(checked, N - 2 * (N / 10));
	free(a);
	free(b);
	route_table_free(t);
	diag_list_cleanup(&d1);
	diag_list_cleanup(&d2);
	store_free(s);
}

int main(void)
{
	determinism();
	content();
	append_and_classes();
	take_over_status();
	external_loopback();
	empty();
	many_tls();
	return check_finish("compile_isolation_test");
}
