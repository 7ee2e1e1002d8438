/* tests/bench/change_bench.c - what one change costs on the controller's
 * incremental path and the proxy's reload, in process, without an API
 * server: where the milliseconds of "EndpointSlice change -> served" and
 * "Ingress change -> served" go.
 *
 * Loads a manifests directory (tests/bench/gen_ingresses.py) into a store,
 * compiles it in full and publishes it (sharded) into --publish, loads it as
 * the proxy does (table_load + table_publish), then CHANGES times each:
 *   endpoint: one EndpointSlice's first address moves (10.0.x.y), the step
 *             the watch loop takes (snapshot_slices_only_diff +
 *             compile_patch_endpoints), publisher_publish_endpoints with the
 *             backends patched, table_load;
 *   ingress:  one Ingress gets a new path, compile_incr_apply,
 *             publisher_publish_hosts (its backends and certificates stay
 *             as they were), table_load;
 *   create:   a new Ingress (a copy of one, without TLS) with a host of its
 *             own, the same steps.
 * Prints p50 / p99 / max of each phase in milliseconds (wall clock: run it
 * on an idle machine) and the index size.
 *
 *   cmake --build build --target change_bench
 *   python3 tests/bench/gen_ingresses.py --count 10000 --out /tmp/m10k --tls-every 10
 *   build/change_bench --manifests /tmp/m10k --publish /dev/shm/weir-bench [--changes 50]
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "compile.h"
#include "compile_incr.h"
#include "manifests.h"
#include "publish.h"
#include "store.h"
#include "table.h"

#define PHASES 4

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void report(const char *what, const char *phase, double *v, size_t n)
{
	if (!n)
		return;
	qsort(v, n, sizeof(*v), cmp_double);
	size_t p99 = (n * 99 + 99) / 100;
	printf("  %-9s %-8s p50 %7.2f  p99 %7.2f  max %7.2f ms\n", what, phase, v[n / 2],
	       v[(p99 ? p99 : 1) - 1], v[n - 1]);
}

static long file_size(const char *dir, const char *name)
{
	char path[4096];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* The proxy's reload of what was just published. */
static int proxy_load(const char *dir)
{
	char err[512];
	struct table *t = NULL;
	if (table_load(dir, &t, err, sizeof(err)) != 0) {
		fprintf(stderr, "change_bench: table_load: %s\n", err);
		return -1;
	}
	table_publish(t); /* takes the reference; drops the table it replaces */
	return 0;
}

struct run {
	struct store *store;
	struct snapshot *snap;
	struct compile_options co;
	struct compile_incr *inc;
	struct route_table *t;
	struct diag_list diags;
	struct publisher *pub;
	const char *dir;
};

/* One step of either kind, timed by phase into ms[phase][i]. */
static int step(struct run *r, bool endpoint, double ms[PHASES][1024], size_t i)
{
	struct snapshot *snap = store_snapshot(r->store);
	char **keys = NULL;
	size_t nkeys = 0, n = 0;
	size_t *patched = NULL;
	bool arrays_kept = false;
	double t0 = now_ms();
	if (endpoint) {
		patched = calloc(r->t->nbackends + 1, sizeof(*patched));
		if (!patched ||
		    !snapshot_slices_only_diff(r->snap, snap, NULL, NULL, &keys, &nkeys) ||
		    compile_patch_endpoints(snap, &r->co, compile_incr_slices(r->inc, snap), r->t,
		                            keys, nkeys, &n, patched) != 0) {
			fprintf(stderr, "change_bench: the endpoint step was refused\n");
			return -1;
		}
		for (size_t k = 0; k < nkeys; k++)
			free(keys[k]);
		free(keys);
		keys = NULL;
		nkeys = 0;
	} else {
		struct compile_incr_stats st;
		if (compile_incr_apply(r->inc, r->snap, snap, &r->co, r->t, &r->diags, &keys,
		                       &nkeys, &st) != 0) {
			fprintf(stderr, "change_bench: the Ingress step was refused\n");
			return -1;
		}
		arrays_kept = st.arrays_kept;
	}
	double t1 = now_ms();
	bool written = false;
	int rc = patched       ? publisher_publish_endpoints(r->pub, r->t, patched, n, &written)
	         : arrays_kept ? publisher_publish_hosts(r->pub, r->t, keys, nkeys, &written)
	                       : publisher_publish_changed(r->pub, r->t, keys, nkeys, &written);
	for (size_t k = 0; k < nkeys; k++)
		free(keys[k]);
	free(keys);
	free(patched);
	if (rc != 0 || !written) {
		fprintf(stderr, "change_bench: publish rc %d written %d\n", rc, written);
		return -1;
	}
	double t2 = now_ms();
	if (proxy_load(r->dir) != 0)
		return -1;
	double t3 = now_ms();
	snapshot_free(r->snap);
	r->snap = snap;
	ms[0][i] = t1 - t0;
	ms[1][i] = t2 - t1;
	ms[2][i] = t3 - t2;
	ms[3][i] = t3 - t0;
	return 0;
}

int main(int argc, char **argv)
{
	const char *mdir = NULL, *pdir = NULL;
	size_t changes = 50;
	int kinds = 3; /* --endpoints-only: 1 */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--manifests") == 0 && i + 1 < argc)
			mdir = argv[++i];
		else if (strcmp(argv[i], "--publish") == 0 && i + 1 < argc)
			pdir = argv[++i];
		else if (strcmp(argv[i], "--changes") == 0 && i + 1 < argc)
			changes = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--endpoints-only") == 0)
			kinds = 1;
		else {
			fprintf(stderr,
			        "usage: %s --manifests DIR --publish DIR [--changes N] "
			        "[--endpoints-only]\n",
			        argv[0]);
			return 2;
		}
	}
	if (!mdir || !pdir || changes < 1 || changes > 1024) {
		fprintf(stderr, "change_bench: --manifests and --publish are needed, --changes "
		                "1..1024\n");
		return 2;
	}
	mkdir(pdir, 0755);

	struct run r = {.co = {.ingress_class = "weir",
	                       .controller_name = "weir.dev/ingress-controller",
	                       .allow_loopback = true},
	                .dir = pdir};
	struct diag_list src = {0};
	r.store = store_new();
	double t0 = now_ms();
	if (manifests_load(mdir, r.store, &src) != 0) {
		perror(mdir);
		return 1;
	}
	diag_list_cleanup(&src);
	r.snap = store_snapshot(r.store);
	r.inc = compile_incr_new();
	double t1 = now_ms();
	if (compile_incr_full(r.inc, r.snap, &r.co, &r.t, &r.diags) != 0)
		return 1;
	double t2 = now_ms();
	bool written;
	if (publisher_new(pdir, &r.pub) != 0 || publisher_publish(r.pub, r.t, &written) != 0)
		return 1;
	double t3 = now_ms();
	if (proxy_load(pdir) != 0)
		return 1;
	double t4 = now_ms();
	size_t nslices = r.snap->count[STORE_ENDPOINT_SLICE], ning = r.snap->count[STORE_INGRESS];
	printf("change_bench: %zu Ingresses, %zu EndpointSlices, %zu hosts, %zu backends, %zu "
	       "certificates, %zu diagnostics\n",
	       ning, nslices, r.t->nhosts, r.t->nbackends, r.t->ncerts, r.diags.n);
	printf("  load %.0f ms, full compile %.0f ms, first publish %.0f ms, first proxy load "
	       "%.0f ms; index %ld bytes\n",
	       t1 - t0, t2 - t1, t3 - t2, t4 - t3, file_size(pdir, "routes.json"));
	if (!nslices || !ning)
		return 1;

	static double ms[PHASES][1024];
	const char *phase[PHASES] = {"compile", "publish", "load", "total"};
	srand(1);
	static const char *const kind_name[] = {"endpoint", "ingress", "create"};
	for (int kind = 0; kind < kinds; kind++) {
		bool endpoint = kind == 0;
		for (size_t i = 0; i < changes; i++) {
			size_t k = (size_t)rand() % (endpoint ? nslices : ning);
			enum store_kind sk = endpoint ? STORE_ENDPOINT_SLICE : STORE_INGRESS;
			json_object *o = NULL, *x;
			if (json_object_deep_copy(r.snap->objs[sk][k], &o, NULL) != 0)
				return 1;
			if (endpoint) {
				char addr[32];
				snprintf(addr, sizeof(addr), "10.0.%zu.%zu", i / 200, i % 200 + 1);
				x = json_object_object_get(o, "endpoints");
				x = json_object_object_get(json_object_array_get_idx(x, 0),
				                           "addresses");
				json_object_array_put_idx(x, 0, json_object_new_string(addr));
			} else if (kind == 2) {
				/* a new Ingress with a host of its own (no TLS) */
				char name[64], host[64];
				snprintf(name, sizeof(name), "bench-new-%zu", i);
				snprintf(host, sizeof(host), "new-%zu.bench.weir.test", i);
				json_object_object_add(json_object_object_get(o, "metadata"),
				                       "name", json_object_new_string(name));
				x = json_object_object_get(o, "spec");
				json_object_object_del(x, "tls");
				x = json_object_array_get_idx(json_object_object_get(x, "rules"),
				                              0);
				json_object_object_add(x, "host", json_object_new_string(host));
			} else {
				char path[32];
				snprintf(path, sizeof(path), "/changed-%zu", i);
				x = json_object_object_get(o, "spec");
				x = json_object_array_get_idx(json_object_object_get(x, "rules"),
				                              0);
				x = json_object_object_get(json_object_object_get(x, "http"),
				                           "paths");
				json_object *p = json_object_array_get_idx(x, 0), *q = NULL;
				json_object_deep_copy(p, &q, NULL);
				json_object_object_add(q, "path", json_object_new_string(path));
				json_object_array_add(x, q);
			}
			if (store_upsert(r.store, sk, o) != 0)
				return 1;
			if (step(&r, endpoint, ms, i) != 0)
				return 1;
		}
		for (int ph = 0; ph < PHASES; ph++)
			report(kind_name[kind], phase[ph], ms[ph], changes);
	}
	printf("  index %ld bytes after the changes\n", file_size(pdir, "routes.json"));
	publisher_free(r.pub);
	route_table_free(r.t);
	diag_list_cleanup(&r.diags);
	compile_incr_free(r.inc);
	snapshot_free(r.snap);
	store_free(r.store);
	return 0;
}
