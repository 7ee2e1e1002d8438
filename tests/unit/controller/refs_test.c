/* tests/unit/controller/refs_test.c - changes to objects no Ingress names,
 * or to members compile does not read, are stored without waking the
 * compile loop; everything else wakes it. */
#include <stdlib.h>

#include "check.h"
#include "controller/refs.h"
#include "controller/store.h"

static int wakes;

static void on_change(void *arg)
{
	(void)arg;
	wakes++;
}

static json_object *obj(const char *json)
{
	json_object *o = json_tokener_parse(json);
	if (!o)
		abort();
	return o;
}

#define INGRESS(rv, extra)                                                                         \
	"{\"metadata\":{\"namespace\":\"app\",\"name\":\"web\",\"resourceVersion\":\"" rv "\","    \
	"\"annotations\":{\"weir.dev/auth-secret\":\"users\"" extra "}},"                          \
	"\"spec\":{\"tls\":[{\"secretName\":\"cert\"}],\"rules\":[{\"http\":{\"paths\":[{"         \
	"\"backend\":{\"service\":{\"name\":\"web\",\"port\":{\"number\":80}}}}]}}]},"             \
	"\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"" rv "\"}]}}}"

/* Upsert json into kind; returns how many wake-ups it caused. */
static int upsert(struct store *s, enum store_kind kind, const char *json)
{
	int before = wakes;
	CHECK_INT(store_upsert(s, kind, obj(json)), 0);
	return wakes - before;
}

int main(void)
{
	struct store *s = store_new();
	struct refs *r = refs_new();
	store_set_relevance(s, refs_relevant, r);
	store_set_notify(s, on_change, NULL);

	/* Before the first update every change counts. */
	CHECK_INT(upsert(s, STORE_SECRET, "{\"metadata\":{\"namespace\":\"app\",\"name\":\"x\"}}"),
	          1);
	CHECK_INT(upsert(s, STORE_INGRESS, INGRESS("1", "")), 1);
	struct snapshot *snap = store_snapshot(s);
	refs_update(r, snap);
	snapshot_free(snap);
	uint64_t ignored = refs_ignored(r);

	/* Secrets: only the ones named (tls, *-secret annotation), only data. */
	CHECK_INT(
	    upsert(s, STORE_SECRET,
	           "{\"metadata\":{\"namespace\":\"app\",\"name\":\"x\"},\"data\":{\"a\":\"b\"}}"),
	    0);
	CHECK_INT(upsert(s, STORE_SECRET,
	                 "{\"metadata\":{\"namespace\":\"other\",\"name\":\"cert\"},\"data\":{}}"),
	          0);
	CHECK_INT(
	    upsert(s, STORE_SECRET,
	           "{\"metadata\":{\"namespace\":\"app\",\"name\":\"cert\",\"resourceVersion\":"
	           "\"1\"},\"type\":\"kubernetes.io/tls\",\"data\":{\"tls.crt\":\"QQ==\"}}"),
	    1);
	CHECK_INT(
	    upsert(s, STORE_SECRET,
	           "{\"metadata\":{\"namespace\":\"app\",\"name\":\"cert\",\"resourceVersion\":"
	           "\"2\"},\"type\":\"kubernetes.io/tls\",\"data\":{\"tls.crt\":\"QQ==\"}}"),
	    0);
	CHECK_INT(upsert(s, STORE_SECRET,
	                 "{\"metadata\":{\"namespace\":\"app\",\"name\":\"users\"},\"data\":{}}"),
	          1);

	/* Services and EndpointSlices: only the ones the Ingress routes to. */
	CHECK_INT(upsert(s, STORE_SERVICE,
	                 "{\"metadata\":{\"namespace\":\"app\",\"name\":\"db\"},\"spec\":{}}"),
	          0);
	CHECK_INT(upsert(s, STORE_SERVICE,
	                 "{\"metadata\":{\"namespace\":\"app\",\"name\":\"web\"},\"spec\":{}}"),
	          1);
	CHECK_INT(upsert(s, STORE_ENDPOINT_SLICE,
	                 "{\"metadata\":{\"namespace\":\"app\",\"name\":\"db-1\",\"labels\":{"
	                 "\"kubernetes.io/service-name\":\"db\"}},\"endpoints\":[]}"),
	          0);
	CHECK_INT(upsert(s, STORE_ENDPOINT_SLICE,
	                 "{\"metadata\":{\"namespace\":\"app\",\"name\":\"web-1\",\"labels\":{"
	                 "\"kubernetes.io/service-name\":\"web\"}},\"endpoints\":[]}"),
	          1);

	/* Ingress: a status or resourceVersion change is not compiled. */
	CHECK_INT(upsert(s, STORE_INGRESS, INGRESS("2", "")), 0);
	CHECK_INT(upsert(s, STORE_INGRESS, INGRESS("3", ",\"weir.dev/limit-rps\":\"5\"")), 1);

	/* Deletions follow the same rule. */
	int before = wakes;
	CHECK_INT(store_delete(s, STORE_SERVICE, "app", "db"), 0);
	CHECK_INT(wakes - before, 0);
	CHECK_INT(store_delete(s, STORE_SERVICE, "app", "web"), 0);
	CHECK_INT(wakes - before, 1);

	/* A relist always notifies. */
	before = wakes;
	CHECK_INT(store_replace(s, STORE_SECRET, NULL, 0), 0);
	CHECK_INT(wakes - before, 1);

	/* ConfigMaps: the one auth-proxy-set-headers names (in the Ingress's
	 * namespace) and the settings ConfigMap weir; only data. */
	CHECK_INT(upsert(s, STORE_INGRESS,
	                 INGRESS("4", ",\"nginx.ingress.kubernetes.io/auth-proxy-set-headers\":"
	                              "\"hdrs\"")),
	          1);
	snap = store_snapshot(s);
	refs_update(r, snap);
	snapshot_free(snap);
	CHECK_INT(upsert(s, STORE_CONFIGMAP,
	                 "{\"metadata\":{\"namespace\":\"app\",\"name\":\"other\"},"
	                 "\"data\":{\"a\":\"b\"}}"),
	          0);
	CHECK_INT(upsert(s, STORE_CONFIGMAP,
	                 "{\"metadata\":{\"namespace\":\"elsewhere\",\"name\":\"hdrs\"},"
	                 "\"data\":{\"X-A\":\"1\"}}"),
	          0);
	CHECK_INT(upsert(s, STORE_CONFIGMAP,
	                 "{\"metadata\":{\"namespace\":\"app\",\"name\":\"hdrs\","
	                 "\"resourceVersion\":\"1\"},\"data\":{\"X-A\":\"1\"}}"),
	          1);
	CHECK_INT(upsert(s, STORE_CONFIGMAP,
	                 "{\"metadata\":{\"namespace\":\"app\",\"name\":\"hdrs\","
	                 "\"resourceVersion\":\"2\"},\"data\":{\"X-A\":\"1\"}}"),
	          0);
	CHECK_INT(upsert(s, STORE_CONFIGMAP,
	                 "{\"metadata\":{\"namespace\":\"app\",\"name\":\"hdrs\","
	                 "\"resourceVersion\":\"3\"},\"data\":{\"X-A\":\"2\"}}"),
	          1);
	CHECK_INT(upsert(s, STORE_CONFIGMAP,
	                 "{\"metadata\":{\"namespace\":\"weir-system\",\"name\":\"weir\"},"
	                 "\"data\":{\"drain-window\":\"5s\"}}"),
	          1);
	/* A ConfigMap other than weir names no Secret, whatever its keys. */
	CHECK_INT(upsert(s, STORE_CONFIGMAP,
	                 "{\"metadata\":{\"namespace\":\"app\",\"name\":\"noise\"},"
	                 "\"data\":{\"default-tls-secret\":\"app/leak\"}}"),
	          0);
	snap = store_snapshot(s);
	refs_update(r, snap);
	snapshot_free(snap);
	CHECK_INT(upsert(s, STORE_SECRET,
	                 "{\"metadata\":{\"namespace\":\"app\",\"name\":\"leak\"},\"data\":{}}"),
	          0);
	before = wakes;
	CHECK_INT(store_delete(s, STORE_CONFIGMAP, "app", "other"), 0);
	CHECK_INT(wakes - before, 0);
	CHECK_INT(store_delete(s, STORE_CONFIGMAP, "app", "hdrs"), 0);
	CHECK_INT(wakes - before, 1);

	/* Every ignored change was counted (the caller's recompile check). */
	CHECK_INT(refs_ignored(r) - ignored, 13);

	/* Counted: two Ingresses name the Secret shared; it stays named
	 * until neither does. An Ingress changed to name another Service
	 * stops naming the first. */
	CHECK_INT(upsert(s, STORE_INGRESS,
	                 "{\"metadata\":{\"namespace\":\"two\",\"name\":\"a\"},"
	                 "\"spec\":{\"tls\":[{\"secretName\":\"shared\"}],\"defaultBackend\":"
	                 "{\"service\":{\"name\":\"first\"}}}}"),
	          1);
	CHECK_INT(upsert(s, STORE_INGRESS,
	                 "{\"metadata\":{\"namespace\":\"two\",\"name\":\"b\"},"
	                 "\"spec\":{\"tls\":[{\"secretName\":\"shared\"},"
	                 "{\"secretName\":\"shared\"}]}}"),
	          1);
	snap = store_snapshot(s);
	refs_update(r, snap);
	snapshot_free(snap);
	CHECK_INT(
	    upsert(s, STORE_SECRET, "{\"metadata\":{\"namespace\":\"two\",\"name\":\"shared\"}}"),
	    1);
	CHECK_INT(upsert(s, STORE_SERVICE,
	                 "{\"metadata\":{\"namespace\":\"two\",\"name\":\"first\"},\"spec\":{}}"),
	          1);
	CHECK_INT(store_delete(s, STORE_INGRESS, "two", "a"), 0);
	CHECK_INT(upsert(s, STORE_INGRESS,
	                 "{\"metadata\":{\"namespace\":\"two\",\"name\":\"c\"},"
	                 "\"spec\":{\"defaultBackend\":{\"service\":{\"name\":\"second\"}}}}"),
	          1);
	snap = store_snapshot(s);
	refs_update(r, snap);
	snapshot_free(snap);
	CHECK_INT(upsert(s, STORE_SECRET,
	                 "{\"metadata\":{\"namespace\":\"two\",\"name\":\"shared\"},"
	                 "\"data\":{\"a\":\"b\"}}"),
	          1); /* b still names it (twice) */
	CHECK_INT(upsert(s, STORE_SERVICE,
	                 "{\"metadata\":{\"namespace\":\"two\",\"name\":\"first\"},"
	                 "\"spec\":{\"x\":1}}"),
	          0);
	CHECK_INT(upsert(s, STORE_SERVICE,
	                 "{\"metadata\":{\"namespace\":\"two\",\"name\":\"second\"},\"spec\":{}}"),
	          1);
	/* b changed to name nothing: the Secret is named by no one. */
	CHECK_INT(upsert(s, STORE_INGRESS,
	                 "{\"metadata\":{\"namespace\":\"two\",\"name\":\"b\"},\"spec\":{}}"),
	          1);
	snap = store_snapshot(s);
	refs_update(r, snap);
	refs_update(r, snap); /* again, nothing changed: the same set */
	snapshot_free(snap);
	CHECK_INT(upsert(s, STORE_SECRET,
	                 "{\"metadata\":{\"namespace\":\"two\",\"name\":\"shared\"},"
	                 "\"data\":{\"a\":\"c\"}}"),
	          0);
	CHECK_INT(upsert(s, STORE_SERVICE,
	                 "{\"metadata\":{\"namespace\":\"two\",\"name\":\"second\"},"
	                 "\"spec\":{\"x\":2}}"),
	          1);

	store_set_relevance(s, NULL, NULL);
	store_free(s);
	refs_free(r);
	return check_finish("refs_test");
}
