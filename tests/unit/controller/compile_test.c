/* tests/unit/controller/compile_test.c - compile is a pure function: the
 * same objects (inserted in any order) give byte-identical serialized tables
 * and identical diagnostics, and the table is one the proxy's parser takes. */
#include <stdlib.h>

#include "check.h"
#include "controller/compile.h"
#include "error.h"

static const char *const objects[][2] = {
    {"IngressClass", "{\"metadata\":{\"name\":\"weir\"},\"spec\":{\"controller\":"
                     "\"weir.dev/ingress-controller\"}}"},
    {"ConfigMap", "{\"metadata\":{\"namespace\":\"sys\",\"name\":\"weir\"},\"data\":{"
                  "\"upstream-keepalive\":\"8\",\"header-timeout\":\"bad\"}}"},
    {"Service", "{\"metadata\":{\"namespace\":\"a\",\"name\":\"web\"},\"spec\":{\"ports\":["
                "{\"name\":\"http\",\"port\":80},{\"name\":\"ws\",\"port\":81}]}}"},
    {"Service", "{\"metadata\":{\"namespace\":\"b\",\"name\":\"api\"},\"spec\":{\"ports\":["
                "{\"port\":8080}]}}"},
    {"EndpointSlice",
     "{\"metadata\":{\"namespace\":\"a\",\"name\":\"web-2\",\"labels\":{"
     "\"kubernetes.io/service-name\":\"web\"}},\"addressType\":\"IPv4\",\"ports\":[{\"name\":"
     "\"http\",\"port\":8080},{\"name\":\"ws\",\"port\":9090}],\"endpoints\":[{\"addresses\":["
     "\"10.0.0.9\",\"10.0.0.3\"]},{\"addresses\":[\"10.0.0.7\"],\"conditions\":{\"ready\":"
     "false,\"serving\":true,\"terminating\":true}}]}"},
    {"EndpointSlice",
     "{\"metadata\":{\"namespace\":\"a\",\"name\":\"web-1\",\"labels\":{"
     "\"kubernetes.io/service-name\":\"web\"}},\"addressType\":\"IPv4\",\"ports\":[{\"name\":"
     "\"http\",\"port\":8080}],\"endpoints\":[{\"addresses\":[\"10.0.0.5\"]},{\"addresses\":["
     "\"10.0.0.6\"],\"conditions\":{\"ready\":false}}]}"},
    {"EndpointSlice",
     "{\"metadata\":{\"namespace\":\"b\",\"name\":\"api-1\",\"labels\":{"
     "\"kubernetes.io/service-name\":\"api\"}},\"addressType\":\"IPv4\",\"ports\":[{\"port\":"
     "7000}],\"endpoints\":[{\"addresses\":[\"10.1.0.2\",\"127.0.0.1\"]}]}"},
    {"Ingress",
     "{\"metadata\":{\"namespace\":\"a\",\"name\":\"one\",\"creationTimestamp\":"
     "\"2026-01-01T00:00:00Z\",\"annotations\":{\"weir.dev/proxy-read-timeout\":\"90\","
     "\"nginx.ingress.kubernetes.io/server-snippet\":\"x\"}},\"spec\":{\"ingressClassName\":"
     "\"weir\",\"rules\":[{\"host\":\"x.example.com\",\"http\":{\"paths\":[{\"path\":\"/\","
     "\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"web\",\"port\":{\"name\":"
     "\"http\"}}}}]}}]}}"},
    {"Ingress",
     "{\"metadata\":{\"namespace\":\"a\",\"name\":\"two\",\"creationTimestamp\":"
     "\"2026-01-01T00:00:01Z\",\"annotations\":{\"nginx.ingress.kubernetes.io/"
     "proxy-read-timeout\":\"120\",\"weir.dev/unknown\":\"1\"}},\"spec\":{"
     "\"ingressClassName\":\"weir\",\"defaultBackend\":{\"service\":{\"name\":\"web\","
     "\"port\":{\"number\":80}}},\"rules\":[{\"host\":\"X.example.com\",\"http\":{\"paths\":["
     "{\"path\":\"/ws\",\"pathType\":\"Exact\",\"backend\":{\"service\":{\"name\":\"web\","
     "\"port\":{\"name\":\"ws\"}}}},{\"path\":\"/ws\",\"pathType\":\"Prefix\",\"backend\":{"
     "\"service\":{\"name\":\"web\",\"port\":{\"number\":80}}}},{\"path\":\"/gone\","
     "\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"missing\",\"port\":{"
     "\"number\":80}}}}]}},{\"host\":\"*.example.com\",\"http\":{\"paths\":[{\"path\":\"/\","
     "\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"web\",\"port\":{"
     "\"number\":80}}}}]}}]}}"},
    {"Ingress",
     "{\"metadata\":{\"namespace\":\"b\",\"name\":\"three\",\"creationTimestamp\":"
     "\"2026-01-02T00:00:00Z\",\"annotations\":{\"nginx.ingress.kubernetes.io/use-regex\":"
     "\"true\",\"nginx.ingress.kubernetes.io/rewrite-target\":\"/$1\"}},\"spec\":{"
     "\"ingressClassName\":\"weir\",\"rules\":[{\"host\":\"api.example.com\",\"http\":{"
     "\"paths\":[{\"path\":\"/v1/(.*)\",\"pathType\":\"ImplementationSpecific\",\"backend\":{"
     "\"service\":{\"name\":\"api\",\"port\":{\"number\":8080}}}},{\"path\":\"/bad(\","
     "\"pathType\":\"ImplementationSpecific\",\"backend\":{\"service\":{\"name\":\"api\","
     "\"port\":{\"number\":8080}}}}]}}]}}"},
    {"Ingress",
     "{\"metadata\":{\"namespace\":\"b\",\"name\":\"other\"},\"spec\":{\"ingressClassName\":"
     "\"nginx\",\"rules\":[{\"host\":\"other.example.com\",\"http\":{\"paths\":[{\"path\":"
     "\"/\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"api\",\"port\":{"
     "\"number\":8080}}}}]}}]}}"},
};
#define NOBJ (sizeof(objects) / sizeof(objects[0]))

static enum store_kind kind_of(const char *k)
{
	static const char *const names[] = {"Ingress",       "IngressClass", "Service",
	                                    "EndpointSlice", "Secret",       "ConfigMap"};
	for (int i = 0; i < STORE_KIND_COUNT; i++)
		if (strcmp(k, names[i]) == 0)
			return (enum store_kind)i;
	return STORE_KIND_COUNT;
}

/* Fill a store in the given order of object indexes. */
static struct store *fill(const size_t *order)
{
	struct store *s = store_new();
	for (size_t i = 0; i < NOBJ; i++) {
		json_object *o = json_tokener_parse(objects[order[i]][1]);
		CHECK(o != NULL);
		CHECK_INT(store_upsert(s, kind_of(objects[order[i]][0]), o), 0);
	}
	return s;
}

static char *compile_text(struct store *s, bool loopback, char **diag_text)
{
	struct compile_options o = {.ingress_class = "weir",
	                            .controller_name = "weir.dev/ingress-controller",
	                            .allow_loopback = loopback};
	struct snapshot *snap = store_snapshot(s);
	struct route_table *t = NULL;
	struct diag_list d = {0};
	char *text = NULL;
	size_t len = 0;
	CHECK_INT(compile_snapshot(snap, &o, &t, &d), 0);
	CHECK(t != NULL);
	CHECK_INT(t->generation, 0);
	CHECK_INT(route_table_serialize(t, &text, &len), 0);
	CHECK_INT(strlen(text), len);
	/* diagnostics flattened to text, in order */
	size_t cap = 1, used = 0;
	char *dt = calloc(1, 1);
	for (size_t i = 0; i < d.n; i++) {
		char line[1024];
		int n =
		    snprintf(line, sizeof(line), "%s|%s|%s|%s|%s|%s\n", d.items[i].kind,
		             d.items[i].ns, d.items[i].name, d.items[i].key ? d.items[i].key : "-",
		             d.items[i].reason, d.items[i].message);
		dt = realloc(dt, cap + (size_t)n);
		memcpy(dt + used, line, (size_t)n + 1);
		used += (size_t)n;
		cap += (size_t)n;
	}
	*diag_text = dt;
	route_table_free(t);
	diag_list_cleanup(&d);
	snapshot_free(snap);
	return text;
}

/* The settings come from the ConfigMap weir of the controller's namespace
 * only: every ConfigMap of the watched namespaces is in the snapshot, and
 * one called weir in a tenant's namespace must not change them. */
static void test_settings_namespace(void)
{
	struct store *s = store_new();
	CHECK_INT(store_upsert(s, STORE_CONFIGMAP,
	                       json_tokener_parse("{\"metadata\":{\"namespace\":\"tenant\","
	                                          "\"name\":\"weir\"},\"data\":{"
	                                          "\"header-timeout\":\"3s\"}}")),
	          0);
	struct snapshot *snap = store_snapshot(s);
	const char *const nss[] = {"weir-system", NULL, "tenant"};
	const uint32_t want[] = {10000, 3000, 3000};
	for (size_t i = 0; i < 3; i++) {
		struct compile_options o = {.ingress_class = "weir",
		                            .controller_name = "weir.dev/ingress-controller",
		                            .configmap_namespace = nss[i]};
		struct route_table *t = NULL;
		struct diag_list d = {0};
		CHECK_INT(compile_snapshot(snap, &o, &t, &d), 0);
		if (t)
			CHECK_INT(t->settings.header_timeout_ms, want[i]);
		route_table_free(t);
		diag_list_cleanup(&d);
	}
	snapshot_free(snap);
	store_free(s);
}

/* Routes share a policy exactly when their policies serialize alike, and
 * each shared policy counts the routes that hold it (the compile's own
 * references are gone). */
static void test_policies_shared(struct store *s)
{
	struct compile_options o = {.ingress_class = "weir",
	                            .controller_name = "weir.dev/ingress-controller"};
	struct snapshot *snap = store_snapshot(s);
	struct route_table *t = NULL;
	struct diag_list d = {0};
	CHECK_INT(compile_snapshot(snap, &o, &t, &d), 0);
	size_t n = 0, shared = 0, distinct = 0;
	const struct route *all[64];
	for (size_t i = 0; t && i < t->nhosts; i++)
		for (size_t j = 0; j < t->hosts[i].nroutes && n < 64; j++)
			all[n++] = &t->hosts[i].routes[j];
	CHECK(n >= 4);
	for (size_t i = 0; i < n; i++) {
		char *a = NULL;
		size_t alen = 0, holders = 0;
		CHECK_INT(route_policy_serialize(all[i]->policy, &a, &alen), 0);
		for (size_t j = 0; j < n; j++) {
			char *b = NULL;
			size_t blen = 0;
			holders += all[j]->policy == all[i]->policy;
			if (j == i)
				continue;
			CHECK_INT(route_policy_serialize(all[j]->policy, &b, &blen), 0);
			bool same_text = a && b && alen == blen && memcmp(a, b, alen) == 0;
			CHECK_INT(same_text, all[i]->policy == all[j]->policy);
			shared += all[i]->policy == all[j]->policy;
			free(b);
		}
		distinct += holders == 1;
		CHECK_INT(all[i]->policy->refs, holders);
		free(a);
	}
	/* a/two's three routes on two hosts hold one policy; b/three's regex
	 * route with a rewrite holds another */
	CHECK(shared >= 2);
	CHECK(distinct >= 1);
	route_table_free(t);
	diag_list_cleanup(&d);
	snapshot_free(snap);
}

int main(void)
{
	size_t fwd[NOBJ], rev[NOBJ], mixed[NOBJ];
	for (size_t i = 0; i < NOBJ; i++) {
		fwd[i] = i;
		rev[i] = NOBJ - 1 - i;
		mixed[i] = (i * 7 + 3) % NOBJ; /* 7 is coprime with NOBJ (11) */
	}
	struct store *a = fill(fwd), *b = fill(rev), *c = fill(mixed);
	char *da1, *da2, *db, *dc, *dl;
	char *ta1 = compile_text(a, false, &da1);
	char *ta2 = compile_text(a, false, &da2);
	char *tb = compile_text(b, false, &db);
	char *tc = compile_text(c, false, &dc);
	CHECK_STR(ta1, ta2);
	CHECK_STR(ta1, tb);
	CHECK_STR(ta1, tc);
	CHECK_STR(da1, da2);
	CHECK_STR(da1, db);
	CHECK_STR(da1, dc);

	/* the proxy's parser accepts it; spot-check the content */
	struct route_table *t = NULL;
	char err[256] = "";
	CHECK_INT(route_table_parse(ta1, strlen(ta1), &t, err, sizeof(err)), 0);
	if (!t) {
		fprintf(stderr, "parse: %s\n", err);
	} else {
		CHECK_INT(t->settings.upstream_keepalive, 8);
		CHECK_INT(t->settings.header_timeout_ms, 10000); /* bad value: default kept */
		CHECK(t->default_backend >= 0);
		/* hosts sorted: "*.example.com" < "api.example.com" < "x.example.com";
		 * a/one is refused (snippet), so x.example.com has only a/two's routes */
		CHECK_INT(t->nhosts, 3);
		if (t->nhosts == 3) {
			CHECK_STR(t->hosts[0].name, "*.example.com");
			CHECK_STR(t->hosts[1].name, "api.example.com");
			CHECK_INT(t->hosts[1].nroutes, 1); /* the bad regex is dropped */
			CHECK_INT(t->hosts[1].routes[0].match, ROUTE_MATCH_REGEX);
			CHECK_STR(t->hosts[2].name, "x.example.com");
			/* /gone Prefix (longest first), /ws Exact, /ws Prefix: the
			 * missing Service keeps its route with an empty backend (503) */
			CHECK_INT(t->hosts[2].nroutes, 3);
			if (t->hosts[2].nroutes == 3) {
				const struct route *r = t->hosts[2].routes;
				CHECK_STR(r[0].path, "/gone");
				CHECK_INT(r[0].match, ROUTE_MATCH_PREFIX);
				CHECK(r[0].backend >= 0);
				if (r[0].backend >= 0)
					CHECK_INT(t->backends[r[0].backend].nendpoints, 0);
				CHECK_INT(r[1].match, ROUTE_MATCH_EXACT);
				CHECK_INT(r[2].match, ROUTE_MATCH_PREFIX);
				CHECK_INT(r[1].policy->ws_idle_timeout_ms, 120000);
			}
		}
		/* no loopback endpoint without allow_loopback; draining kept,
		 * not-ready dropped */
		for (size_t i = 0; i < t->nbackends; i++)
			for (size_t e = 0; e < t->backends[i].nendpoints; e++) {
				CHECK(strcmp(t->backends[i].endpoints[e].address, "127.0.0.1") !=
				      0);
				CHECK(strcmp(t->backends[i].endpoints[e].address, "10.0.0.6") != 0);
				if (strcmp(t->backends[i].endpoints[e].address, "10.0.0.7") == 0)
					CHECK(t->backends[i].endpoints[e].draining);
			}
		route_table_free(t);
	}
	CHECK(strstr(da1, "server-snippet") != NULL);
	CHECK(strstr(da1, "weir.dev/unknown") != NULL);
	CHECK(strstr(da1, "missing") != NULL);
	CHECK(strstr(da1, "header-timeout") != NULL);

	/* loopback allowed in manifests mode changes the table */
	char *tl = compile_text(a, true, &dl);
	CHECK(strcmp(tl, ta1) != 0);
	CHECK(strstr(tl, "127.0.0.1") != NULL);

	free(ta1);
	free(ta2);
	free(tb);
	free(tc);
	free(tl);
	free(da1);
	free(da2);
	free(db);
	free(dc);
	free(dl);
	test_policies_shared(a);
	store_free(a);
	store_free(b);
	store_free(c);
	test_settings_namespace();
	return check_finish("compile_test");
}
