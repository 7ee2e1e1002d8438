/* tests/unit/controller/compile_patch_test.c - the EndpointSlice fast path:
 * a table compiled from snapshot A and patched with compile_patch_endpoints
 * for the Services snapshot_slices_only_diff names serializes byte for byte
 * like compile_snapshot(B), over random slice churn (endpoints added,
 * removed, not ready, terminating, slices created and deleted, ports
 * renamed); the patch refuses (WEIR_EAGAIN) exactly where a full compile is
 * needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "controller/compile.h"
#include "controller/store.h"
#include "error.h"

static const struct compile_options OPTS = {.ingress_class = "weir",
                                            .controller_name = "weir.dev/ingress-controller"};

static void put(struct store *s, enum store_kind k, const char *json)
{
	json_object *o = json_tokener_parse(json);
	CHECK(o != NULL);
	CHECK_INT(store_upsert(s, k, o), 0);
}

/* Services: web (named port http), api (numeric), ext (ExternalName), up
 * (service-upstream), dflt (the default-backend annotation's target). */
static void base(struct store *s, bool default_backend)
{
	put(s, STORE_INGRESS_CLASS,
	    "{\"metadata\":{\"name\":\"weir\"},"
	    "\"spec\":{\"controller\":\"weir.dev/ingress-controller\"}}");
	static const char *const svcs[] = {"web", "api", "up", "dflt"};
	for (size_t i = 0; i < 4; i++) {
		char buf[512];
		snprintf(buf, sizeof(buf),
		         "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"ns\"},\"spec\":{"
		         "\"clusterIP\":\"10.96.0.%zu\",\"ports\":[{\"name\":\"http\",\"port\":80,"
		         "\"targetPort\":8080},{\"name\":\"admin\",\"port\":81}]}}",
		         svcs[i], i + 10);
		put(s, STORE_SERVICE, buf);
	}
	put(s, STORE_SERVICE,
	    "{\"metadata\":{\"name\":\"ext\",\"namespace\":\"ns\"},\"spec\":{"
	    "\"type\":\"ExternalName\",\"externalName\":\"db.example.org\","
	    "\"ports\":[{\"port\":5432,\"targetPort\":5432}]}}");
	char ing[2048];
	snprintf(
	    ing, sizeof(ing),
	    "{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\","
	    "\"creationTimestamp\":\"2026-01-01T00:00:00Z\",\"annotations\":{%s}},"
	    "\"spec\":{\"ingressClassName\":\"weir\",\"rules\":[{\"host\":\"a.example.com\","
	    "\"http\":{\"paths\":["
	    "{\"path\":\"/\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"web\","
	    "\"port\":{\"name\":\"http\"}}}},"
	    "{\"path\":\"/api\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":"
	    "\"api\",\"port\":{\"number\":81}}}},"
	    "{\"path\":\"/db\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":"
	    "\"ext\",\"port\":{\"number\":5432}}}}]}}]}}",
	    default_backend ? "\"nginx.ingress.kubernetes.io/default-backend\":\"dflt\"" : "");
	put(s, STORE_INGRESS, ing);
	put(s, STORE_INGRESS,
	    "{\"metadata\":{\"name\":\"b\",\"namespace\":\"ns\","
	    "\"creationTimestamp\":\"2026-01-02T00:00:00Z\",\"annotations\":{"
	    "\"nginx.ingress.kubernetes.io/service-upstream\":\"true\"}},"
	    "\"spec\":{\"ingressClassName\":\"weir\",\"rules\":[{\"host\":\"b.example.com\","
	    "\"http\":{\"paths\":[{\"path\":\"/\",\"pathType\":\"Prefix\",\"backend\":{\"service\":"
	    "{\"name\":\"up\",\"port\":{\"number\":80}}}}]}}]}}");
}

/* A random slice "<svc>-<n>" of Service svc (namespace ns). */
static void random_slice(struct store *s, const char *svc, int n, unsigned *seed, bool loopback)
{
	char buf[4096];
	int len = snprintf(buf, sizeof(buf),
	                   "{\"metadata\":{\"name\":\"%s-%d\",\"namespace\":\"ns\",\"labels\":{"
	                   "\"kubernetes.io/service-name\":\"%s\"}},\"addressType\":\"IPv4\","
	                   "\"ports\":[{\"name\":\"%s\",\"port\":%d}],\"endpoints\":[",
	                   svc, n, svc, rand_r(seed) % 5 == 0 ? "admin" : "http",
	                   8080 + rand_r(seed) % 2);
	int neps = rand_r(seed) % 4;
	for (int e = 0; e < neps; e++) {
		int cond = rand_r(seed) % 4;
		const char *c = cond == 0   ? "{\"ready\":true}"
		                : cond == 1 ? "{\"ready\":false}"
		                : cond == 2
		                    ? "{\"ready\":false,\"serving\":true,\"terminating\":true}"
		                    : "{}";
		bool lo = loopback && rand_r(seed) % 6 == 0;
		len += snprintf(buf + len, sizeof(buf) - (size_t)len,
		                "%s{\"addresses\":[\"%s.%d\"],\"conditions\":%s}", e ? "," : "",
		                lo ? "127.0.0" : "10.0.0", 1 + rand_r(seed) % 5, c);
	}
	snprintf(buf + len, sizeof(buf) - (size_t)len, "]}");
	put(s, STORE_ENDPOINT_SLICE, buf);
}

static char *text_of(const struct route_table *t)
{
	char *json = NULL;
	size_t len = 0;
	CHECK_INT(route_table_serialize(t, &json, &len), 0);
	return json;
}

/* which[0 .. n) are, ascending, exactly the backends of t that differ
 * from the table serialized as before. */
static void check_patched(const char *before, const struct route_table *t, const size_t *which,
                          size_t n)
{
	struct route_table *old = NULL;
	char err[256];
	CHECK_INT(route_table_parse(before, strlen(before), &old, err, sizeof(err)), 0);
	if (!old)
		return;
	CHECK_INT(old->nbackends, t->nbackends);
	size_t k = 0;
	for (size_t i = 0; i < t->nbackends && i < old->nbackends; i++) {
		bool differs = !route_backend_equal(&old->backends[i], &t->backends[i]);
		bool named = k < n && which[k] == i;
		CHECK_INT(named, differs);
		k += named;
	}
	CHECK_INT(k, n); /* every index named once, ascending, in range */
	route_table_free(old);
}

/* One scenario: steps of random churn; counts patches and refusals. */
static void churn(bool default_backend, bool loopback, unsigned seed, int *patched, int *refused)
{
	struct store *s = store_new();
	base(s, default_backend);
	static const char *const svcs[] = {"web", "api", "ext", "up", "dflt"};
	for (int i = 0; i < 5; i++)
		random_slice(s, svcs[i], 0, &seed, loopback);
	struct snapshot *a = store_snapshot(s);
	struct route_table *t = NULL;
	struct diag_list d = {0};
	CHECK_INT(compile_snapshot(a, &OPTS, &t, &d), 0);
	diag_list_cleanup(&d);
	/* the slice index the controller keeps, refreshed each step (in place
	 * when a slice is replaced, built again when one comes or goes); every
	 * other step patches without it */
	struct compile_slices *cs = compile_slices_build(a);
	for (int step = 0; step < 300; step++) {
		const char *svc = svcs[rand_r(&seed) % 5];
		int n = rand_r(&seed) % 3;
		if (rand_r(&seed) % 5 == 0) {
			char name[64];
			snprintf(name, sizeof(name), "%s-%d", svc, n);
			store_delete(s, STORE_ENDPOINT_SLICE, "ns", name);
		} else {
			random_slice(s, svc, n, &seed, loopback);
		}
		struct snapshot *b = store_snapshot(s);
		char **keys = NULL;
		size_t nkeys = 0, np = 0;
		CHECK(snapshot_slices_only_diff(a, b, NULL, NULL, &keys, &nkeys));
		char *before = text_of(t);
		compile_slices_refresh(&cs, b);
		CHECK(compile_slices_fit(cs, b));
		size_t *which = calloc(t->nbackends + 1, sizeof(*which));
		int rc = compile_patch_endpoints(b, &OPTS, step % 2 ? NULL : cs, t, keys, nkeys,
		                                 &np, which);
		struct route_table *full = NULL;
		CHECK_INT(compile_snapshot(b, &OPTS, &full, &d), 0);
		char *want = text_of(full);
		char *got = text_of(t);
		if (rc == 0) {
			(*patched)++;
			CHECK_STR(got, want);
			CHECK(np > 0 || strcmp(before, want) == 0);
			check_patched(before, t, which, np);
			route_table_free(full);
		} else {
			CHECK_INT(rc, WEIR_EAGAIN);
			CHECK_STR(got, before); /* refused: untouched */
			(*refused)++;
			route_table_free(t); /* as the controller does: compile in full */
			t = full;
		}
		bool slice_diag = false;
		for (size_t i = 0; i < d.n; i++)
			slice_diag |= strcmp(d.items[i].kind, "EndpointSlice") == 0;
		/* a refusal only where the full compile needed one */
		if (rc != 0 && !default_backend)
			CHECK(slice_diag || loopback);
		diag_list_cleanup(&d);
		free(before);
		free(which);
		free(want);
		free(got);
		for (size_t i = 0; i < nkeys; i++)
			free(keys[i]);
		free(keys);
		snapshot_free(a);
		a = b;
	}
	compile_slices_free(cs);
	route_table_free(t);
	snapshot_free(a);
	store_free(s);
}

/* A judge for snapshot_slices_only_diff: changes to Services are unseen. */
static bool services_unseen(void *arg, enum store_kind kind, json_object *old, json_object *obj)
{
	(void)arg;
	(void)old;
	(void)obj;
	return kind != STORE_SERVICE;
}

static void diff_rules(void)
{
	struct store *s = store_new();
	base(s, false);
	unsigned seed = 7;
	random_slice(s, "web", 0, &seed, false);
	struct snapshot *a = store_snapshot(s);
	char **keys = NULL;
	size_t n = 0;
	/* the same snapshot: nothing differs */
	struct snapshot *same = store_snapshot(s);
	CHECK(snapshot_slices_only_diff(a, same, NULL, NULL, &keys, &n));
	CHECK_INT(n, 0);
	free(keys);
	snapshot_free(same);
	/* a slice of api added, web's replaced */
	random_slice(s, "api", 1, &seed, false);
	random_slice(s, "web", 0, &seed, false);
	struct snapshot *b = store_snapshot(s);
	CHECK(snapshot_slices_only_diff(a, b, NULL, NULL, &keys, &n));
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_STR(keys[0], "ns/api");
		CHECK_STR(keys[1], "ns/web");
	}
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	/* a Service changed too: not a slice-only change */
	put(s, STORE_SERVICE,
	    "{\"metadata\":{\"name\":\"web\",\"namespace\":\"ns\"},"
	    "\"spec\":{\"ports\":[{\"name\":\"http\",\"port\":80}]}}");
	struct snapshot *c = store_snapshot(s);
	CHECK(!snapshot_slices_only_diff(b, c, NULL, NULL, &keys, &n));
	CHECK(keys == NULL);
	/* ... unless a judge calls the Service change unseen; it still sees a
	 * change to a Secret */
	CHECK(snapshot_slices_only_diff(b, c, services_unseen, NULL, &keys, &n));
	CHECK_INT(n, 0);
	free(keys);
	put(s, STORE_SECRET, "{\"metadata\":{\"name\":\"x\",\"namespace\":\"ns\"}}");
	struct snapshot *e = store_snapshot(s);
	CHECK(!snapshot_slices_only_diff(b, e, services_unseen, NULL, &keys, &n));
	CHECK(keys == NULL);
	snapshot_free(a);
	snapshot_free(b);
	snapshot_free(c);
	snapshot_free(e);
	store_free(s);
}

int main(void)
{
	diff_rules();
	int patched = 0, refused = 0;
	churn(false, false, 1, &patched, &refused);
	CHECK_INT(refused, 0); /* nothing here needs a full compile */
	CHECK(patched == 300);
	int p2 = 0, r2 = 0;
	churn(true, false, 2, &p2, &r2);
	CHECK(p2 > 50); /* most steps keep every backend's emptiness */
	CHECK(r2 > 0);  /* some flip it: the default-backend fallback may move */
	int p3 = 0, r3 = 0;
	churn(false, true, 3, &p3, &r3);
	CHECK(p3 > 50);
	CHECK(r3 > 0); /* loopback endpoints make diagnostics */
	printf("patched %d/%d/%d, refused %d/%d/%d\n", patched, p2, p3, refused, r2, r3);
	return check_finish("compile_patch_test");
}
