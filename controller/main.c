/* controller/main.c - weir-controller: objects (Kubernetes API or a
 * directory of manifests) -> store -> compile -> publish, plus Events and
 * Ingress status in API mode. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cert_seed.h"
#include "compile.h"
#include "compile_incr.h"
#include "error.h"
#include "explain.h"
#include "k8s_client.h"
#include "k8s_config.h"
#include "k8s_watch.h"
#include "leader.h"
#include "log.h"
#include "manifests.h"
#include "publish.h"
#include "refs.h"
#include "report.h"
#include "reporter.h"
#include "status.h"
#include "store.h"
#include "telemetry.h"

#define CONTROLLER_NAME "weir.dev/ingress-controller"
#define COMPONENT "controller"
#define BATCH_NS (5 * 1000 * 1000)   /* coalesce a burst of store changes */
#define QUIET_S 0.05                 /* no batching after this long without a compile */
#define TRIM_IDLE_S 5.0              /* malloc_trim after incremental steps, once idle */
#define STATUS_RESYNC_S 30           /* status re-check (leadership changes) */
#define SYNC_TIMEOUT_S 60            /* --once/--explain in API mode */
#define PUBLISH_RETRY_S 1.0          /* after a failed publish */
#define REPORTER_FLUSH_ONCE_MS 10000 /* --once: Events and status before exit */

struct options {
	const char *kubeconfig;
	const char *manifests;
	const char *publish;
	const char *ingress_class;
	const char *watch_namespace;
	const char *publish_service;
	const char *default_backend_service;
	const char *election_id;
	bool leader_elect;
	bool take_over_class;
	bool once;
	bool explain;
	enum publish_format publish_format; /* --publish-format */
	bool report;                        /* --migration-report */
	bool all_classes;                   /* --all-classes */
	bool list_annotations;
	bool output_set;
	enum report_format output;
	enum log_format log_format;
	int metrics_port;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static const char usage[] =
    "Usage: weir-controller [flags]\n"
    "  --kubeconfig PATH        kubeconfig (default: in-cluster, else $KUBECONFIG)\n"
    "  --manifests DIR          read objects from YAML files in DIR (and follow them)\n"
    "  --publish DIR            where routes.json is written (default /run/weir)\n"
    "  --publish-format v1|v2   v2 (default): an index naming one shard file per host\n"
    "                           and certificate; v1: the whole table in routes.json\n"
    "  --ingress-class NAME     IngressClass to serve (default weir)\n"
    "  --take-over-class        serve that IngressClass even when its controller is\n"
    "                           another one's (migrating in place, e.g. from nginx)\n"
    "  --watch-namespace NS     only this namespace (default: all)\n"
    "  --publish-service NS/NAME  Service whose address goes into Ingress status\n"
    "  --default-backend-service NS/NAME  Service (its first port) serving requests\n"
    "                           no rule matches, and custom-http-errors pages\n"
    "  --leader-elect           only the elected leader writes status\n"
    "  --election-id NAME       Lease name for --leader-elect (default weir-leader)\n"
    "  --metrics-port N         /healthz and /metrics port (default 10254; 0 disables)\n"
    "  --once                   compile, publish, exit\n"
    "  --explain                print the compiled table as readable text and exit\n"
    "  --migration-report       print what weir does with each annotation and setting\n"
    "                           of the Ingresses it would serve, then exit\n"
    "  --all-classes            with --migration-report: every Ingress, any class\n"
    "  --list-annotations       print weir's status of every ingress-nginx annotation\n"
    "  --output markdown|json   format of those two (default markdown)\n"
    "  --log-format json|text   log record format (default text)\n"
    "  --version                print the version and exit\n"
    "  --help                   print this help and exit\n";

static int bad_flag(const char *fmt, const char *arg)
{
	fprintf(stderr, "weir-controller: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (see --help)\n");
	return 2;
}

/* Returns -1 to continue, else the exit code. */
static int parse_flags(int argc, char **argv, struct options *o)
{
	enum {
		F_KUBECONFIG = 256,
		F_MANIFESTS,
		F_PUBLISH,
		F_CLASS,
		F_NS,
		F_PUBSVC,
		F_LEADER,
		F_ONCE,
		F_EXPLAIN,
		F_LOGFMT,
		F_VERSION,
		F_HELP,
		F_METRICS,
		F_ELECTION,
		F_TAKEOVER,
		F_REPORT,
		F_ALLCLASSES,
		F_LISTANN,
		F_OUTPUT,
		F_DEFBACKEND,
		F_PUBFMT
	};
	static const struct option longopts[] = {
	    {"kubeconfig", required_argument, NULL, F_KUBECONFIG},
	    {"manifests", required_argument, NULL, F_MANIFESTS},
	    {"publish", required_argument, NULL, F_PUBLISH},
	    {"ingress-class", required_argument, NULL, F_CLASS},
	    {"watch-namespace", required_argument, NULL, F_NS},
	    {"publish-service", required_argument, NULL, F_PUBSVC},
	    {"leader-elect", no_argument, NULL, F_LEADER},
	    {"once", no_argument, NULL, F_ONCE},
	    {"explain", no_argument, NULL, F_EXPLAIN},
	    {"log-format", required_argument, NULL, F_LOGFMT},
	    {"version", no_argument, NULL, F_VERSION},
	    {"help", no_argument, NULL, F_HELP},
	    {"metrics-port", required_argument, NULL, F_METRICS},
	    {"election-id", required_argument, NULL, F_ELECTION},
	    {"take-over-class", no_argument, NULL, F_TAKEOVER},
	    {"migration-report", no_argument, NULL, F_REPORT},
	    {"all-classes", no_argument, NULL, F_ALLCLASSES},
	    {"list-annotations", no_argument, NULL, F_LISTANN},
	    {"output", required_argument, NULL, F_OUTPUT},
	    {"default-backend-service", required_argument, NULL, F_DEFBACKEND},
	    {"publish-format", required_argument, NULL, F_PUBFMT},
	    {NULL, 0, NULL, 0}};
	opterr = 0;
	for (;;) {
		int idx = 0;
		int c = getopt_long(argc, argv, ":", longopts, &idx);
		if (c == -1)
			break;
		switch (c) {
		case F_KUBECONFIG:
			o->kubeconfig = optarg;
			break;
		case F_MANIFESTS:
			o->manifests = optarg;
			break;
		case F_PUBLISH:
			if (!*optarg)
				return bad_flag("--publish needs a directory%s", "");
			o->publish = optarg;
			break;
		case F_CLASS:
			if (!*optarg)
				return bad_flag("--ingress-class needs a name%s", "");
			o->ingress_class = optarg;
			break;
		case F_NS:
			o->watch_namespace = *optarg ? optarg : NULL;
			break;
		case F_PUBSVC: {
			const char *slash = strchr(optarg, '/');
			if (!slash || slash == optarg || !slash[1] || strchr(slash + 1, '/'))
				return bad_flag(
				    "--publish-service wants NAMESPACE/NAME, got \"%s\"", optarg);
			o->publish_service = optarg;
			break;
		}
		case F_DEFBACKEND: {
			const char *slash = strchr(optarg, '/');
			if (!slash || slash == optarg || !slash[1] || strchr(slash + 1, '/'))
				return bad_flag(
				    "--default-backend-service wants NAMESPACE/NAME, got \"%s\"",
				    optarg);
			o->default_backend_service = optarg;
			break;
		}
		case F_LEADER:
			o->leader_elect = true;
			break;
		case F_TAKEOVER:
			o->take_over_class = true;
			break;
		case F_ONCE:
			o->once = true;
			break;
		case F_EXPLAIN:
			o->explain = true;
			break;
		case F_REPORT:
			o->report = true;
			break;
		case F_ALLCLASSES:
			o->all_classes = true;
			break;
		case F_LISTANN:
			o->list_annotations = true;
			break;
		case F_OUTPUT:
			if (report_format_parse(optarg, &o->output) != 0)
				return bad_flag("--output must be markdown or json, got \"%s\"",
				                optarg);
			o->output_set = true;
			break;
		case F_PUBFMT:
			if (strcmp(optarg, "v1") == 0)
				o->publish_format = PUBLISH_V1;
			else if (strcmp(optarg, "v2") == 0)
				o->publish_format = PUBLISH_V2;
			else
				return bad_flag("--publish-format must be v1 or v2, got \"%s\"",
				                optarg);
			break;
		case F_LOGFMT:
			if (log_format_parse(optarg, &o->log_format) != 0)
				return bad_flag("--log-format must be json or text, got \"%s\"",
				                optarg);
			break;
		case F_VERSION:
			printf("weir-controller %s\n", WEIR_VERSION);
			return 0;
		case F_HELP:
			fputs(usage, stdout);
			return 0;
		case F_METRICS: {
			char *end;
			errno = 0;
			long v = strtol(optarg, &end, 10);
			if (!*optarg || *end || errno || v < 0 || v > 65535)
				return bad_flag("--metrics-port must be 0..65535, got \"%s\"",
				                optarg);
			o->metrics_port = (int)v;
			break;
		}
		case F_ELECTION:
			if (!*optarg)
				return bad_flag("--election-id needs a name%s", "");
			o->election_id = optarg;
			break;
		case ':':
			return bad_flag("%s needs a value", argv[optind - 1]);
		default:
			return bad_flag("unknown flag %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad_flag("unexpected argument \"%s\"", argv[optind]);
	if (o->manifests && o->kubeconfig)
		return bad_flag("--manifests and --kubeconfig exclude each other%s", "");
	if (o->once + o->explain + o->report + o->list_annotations > 1)
		return bad_flag("--once, --explain, --migration-report and --list-annotations "
		                "exclude each other%s",
		                "");
	if (o->all_classes && !o->report)
		return bad_flag("--all-classes needs --migration-report%s", "");
	if (o->output_set && !o->report && !o->list_annotations)
		return bad_flag("--output needs --migration-report or --list-annotations%s", "");
	return -1;
}

/* ------------------------------------------------------------ the loop */

struct wake {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool dirty;
};

static void on_store_change(void *arg)
{
	struct wake *w = arg;
	pthread_mutex_lock(&w->lock);
	w->dirty = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

struct api {
	struct k8s_config *cfg;
	struct k8s_client *client;
	struct k8s_source *source;
	struct leader *leader;
	struct reporter *reporter; /* Events and status, off the publish path */
};

/* What a status pass reads; lives as long as the reporter. */
struct status_ctx {
	struct api *api;
	const struct options *o;
	struct store *store;
	const struct compile_options *co;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What needs only the publish directory, done on a thread of its own while
 * the objects are read (YAML parsed, or listed from the API server), on a
 * second core: open the publisher, which takes over the slots of the table
 * the last run published, and seed the cache of good certificate pairs from
 * the certificate shards it reads for that (cert_seed.h; at 10,000 distinct
 * pairs a restart otherwise spends seconds in OpenSSL for verdicts it had).
 * It finishes before the first compile (publish_prep_join). */
struct publish_prep {
	pthread_t thread;
	bool running;
	const char *dir; /* borrowed: the --publish argument */
	enum publish_format format;
	struct publisher *pub; /* NULL: the directory cannot be used */
};

static void *publish_prep_main(void *arg)
{
	struct publish_prep *pp = arg;
	size_t n = 0;
	double t0 = now_s();
	if (publisher_open(pp->dir, pp->format, cert_seed_pair, &n, &pp->pub) != 0)
		pp->pub = NULL;
	log_info(
	    COMPONENT,
	    "publish directory %s taken over in %.1f ms: %zu certificate pairs seeded as valid",
	    pp->dir, (now_s() - t0) * 1e3, n);
	return NULL;
}

/* Start the work above; when no thread can be had, it runs here. */
static void publish_prep_start(struct publish_prep *pp, const char *dir, enum publish_format format)
{
	pp->dir = dir;
	pp->format = format;
	pp->pub = NULL;
	pp->running = pthread_create(&pp->thread, NULL, publish_prep_main, pp) == 0;
	if (!pp->running)
		publish_prep_main(pp);
}

/* Wait for it (any number of times) and take the publisher (caller frees;
 * NULL when the directory cannot be used, or already taken). */
static struct publisher *publish_prep_join(struct publish_prep *pp)
{
	if (pp->running) {
		pthread_join(pp->thread, NULL);
		pp->running = false;
	}
	struct publisher *p = pp->pub;
	pp->pub = NULL;
	return p;
}

/* Diagnostics already logged, so a steady problem is logged once. */
struct seen {
	char **lines; /* sorted (strcmp), for bsearch */
	size_t n;
};

static int cmp_line(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void seen_cleanup(struct seen *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->lines[i]);
	free(s->lines);
	s->lines = NULL;
	s->n = 0;
}

static char *diag_line(const struct diag *d)
{
	char *s = NULL;
	if (asprintf(&s, "%s %s%s%s: %s%s%s", d->kind, d->ns, *d->ns ? "/" : "", d->name,
	             d->key ? d->key : "", d->key ? ": " : "", d->message) < 0)
		abort();
	return s;
}

static void report_diags(const struct diag_list *diags, struct seen *seen, struct api *api)
{
	struct seen next = {calloc(diags->n + 1, sizeof(char *)), 0};
	if (!next.lines)
		abort();
	for (size_t i = 0; i < diags->n; i++) {
		const struct diag *d = &diags->items[i];
		char *line = diag_line(d);
		/* A linear scan here was quadratic: 10,000 steady diagnostics
		 * cost half a second per compile, before the next publish. */
		bool old = seen->n && bsearch(&line, seen->lines, seen->n, sizeof(*seen->lines),
		                              cmp_line) != NULL;
		if (!old) {
			log_warn(COMPONENT, "%s", line);
			if (api && api->client && strcmp(d->kind, "Ingress") == 0) {
				/* The Event names the annotation or field at fault, as the log
				 * line does: "<key>: <reason text>". */
				char *msg = NULL;
				if (d->key && d->key[0]) {
					if (asprintf(&msg, "%s: %s", d->key, d->message) < 0)
						abort();
				}
				if (api->reporter)
					reporter_event(api->reporter, d->ns, d->name, d->uid,
					               d->reason, msg ? msg : d->message);
				free(msg);
			}
		}
		next.lines[next.n++] = line;
	}
	qsort(next.lines, next.n, sizeof(*next.lines), cmp_line);
	seen_cleanup(seen);
	*seen = next;
}

/* One status pass, on the reporter's thread (reporter_status_cb). */
static void status_pass(void *arg, const atomic_bool *cancel)
{
	struct status_ctx *sc = arg;
	struct api *api = sc->api;
	const struct options *o = sc->o;
	if (!api->client || !o->publish_service)
		return;
	if (o->leader_elect && !(api->leader && leader_is_leader(api->leader)))
		return;
	json_object *addrs = NULL;
	int rc = status_publish_addresses(api->client, o->publish_service, &addrs);
	if (rc) {
		log_warn(COMPONENT, "publish service %s: %s", o->publish_service,
		         weir_strerror(rc));
		return;
	}
	struct snapshot *snap = store_snapshot(sc->store);
	char **names = NULL;
	size_t n = 0;
	if (compile_class_ingresses(snap, sc->co, &names, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (atomic_load(cancel)) {
				free(names[i]);
				continue;
			}
			char *slash = strchr(names[i], '/');
			*slash = '\0';
			/* The watch keeps the store's copy current: only Ingresses whose cached
			 * status differs cost an API round trip (10,000 Ingresses would otherwise
			 * mean 10,000 GETs after every publish). */
			json_object *cached =
			    snapshot_find(snap, STORE_INGRESS, names[i], slash + 1);
			if (cached && status_ingress_has(cached, addrs)) {
				free(names[i]);
				continue;
			}
			rc = status_update_ingress(api->client, names[i], slash + 1, addrs);
			if (rc)
				log_warn(COMPONENT, "status of %s/%s: %s", names[i], slash + 1,
				         weir_strerror(rc));
			free(names[i]);
		}
		free(names);
	}
	snapshot_free(snap);
	json_object_put(addrs);
}

/* What the last full compile of the watch loop was made from, kept so an
 * EndpointSlice-only change can patch its table instead of compiling
 * everything again. */
struct last_compile {
	struct snapshot *snap;
	struct route_table *table; /* as published */
	struct diag_list diags;    /* of that table */
	bool slice_diags;          /* the compile had EndpointSlice diagnostics */
	struct compile_incr *inc;  /* what Ingress changes can reach */
	bool full;                 /* the last pass was a full compile */
};

static void last_compile_clear(struct last_compile *l)
{
	snapshot_free(l->snap);
	route_table_free(l->table);
	diag_list_cleanup(&l->diags);
	compile_incr_free(l->inc);
	memset(l, 0, sizeof(*l));
}

static void free_strs(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* A change since last that does not need a full compile: EndpointSlices
 * only (patch the endpoints; every host shard is named again), or Ingresses
 * only (compile the ones the change can reach and splice their hosts in).
 * Returns 0 when done (snap is then taken; *publish_rc is the publish
 * error, if any), -1 when a full compile is due (snap untouched), 1 when a
 * full compile is due and snap was taken (the publish needed a certificate
 * text released after the last one: last is cleared). *slices_only: the
 * change was to EndpointSlices alone. */
static int incremental_publish(struct last_compile *last, struct snapshot *snap,
                               const struct compile_options *co, struct publisher *pub,
                               struct refs *refs, int *publish_rc, bool *slices_only)
{
	*publish_rc = 0;
	*slices_only = false;
	char **keys = NULL;
	size_t nkeys = 0, n = 0;
	size_t *patched = NULL;   /* backends whose endpoints changed */
	bool arrays_kept = false; /* an Ingress change that touched hosts only */
	char what[128];
	double t0 = now_s();
	if (!last->table)
		return -1;
	if (snapshot_slices_only_diff(last->snap, snap, refs ? refs_matters : NULL, refs, &keys,
	                              &nkeys)) {
		*slices_only = true;
		patched = calloc(last->table->nbackends + 1, sizeof(*patched));
		if (!patched || last->slice_diags ||
		    compile_patch_endpoints(snap, co, compile_incr_slices(last->inc, snap),
		                            last->table, keys, nkeys, &n, patched) != 0) {
			free_strs(keys, nkeys);
			free(patched);
			return -1;
		}
		free_strs(keys, nkeys);
		keys = NULL;
		snprintf(what, sizeof(what), "endpoints of %zu backends of %zu Services patched", n,
		         nkeys);
		nkeys = 0;
	} else {
		struct compile_incr_stats st;
		if (compile_incr_apply(last->inc, last->snap, snap, co, last->table, &last->diags,
		                       &keys, &nkeys, &st) != 0)
			return -1; /* the table may be half-updated: dropped by the caller */
		n = st.changed;
		arrays_kept = st.arrays_kept;
		snprintf(what, sizeof(what), "%zu Ingresses changed, %zu compiled, %zu host names",
		         st.changed, st.recompiled, nkeys);
	}
	snapshot_free(last->snap);
	last->snap = snap;
	if (!n) { /* nothing the table shows */
		free_strs(keys, nkeys);
		free(patched);
		return 0;
	}
	double t1 = now_s();
	bool written = false;
	int rc = patched       ? publisher_publish_endpoints(pub, last->table, patched, n, &written)
	         : arrays_kept ? publisher_publish_hosts(pub, last->table, keys, nkeys, &written)
	                       : publisher_publish_changed(pub, last->table, keys, nkeys, &written);
	free_strs(keys, nkeys);
	free(patched);
	if (rc == WEIR_EAGAIN) {
		last_compile_clear(last);
		return 1;
	}
	if (rc) {
		log_error(COMPONENT, "publish: %s", weir_strerror(rc));
		last_compile_clear(last); /* the retry compiles in full */
		*publish_rc = rc;
		return 0;
	}
	publisher_release_pems(pub, last->table);
	if (written) {
		const struct publish_stats *ps = publisher_stats(pub);
		log_info(
		    COMPONENT,
		    "published generation %llu (%zu hosts, %zu backends; %s; %zu shard files "
		    "and %zu id lists written, %zu hosts reused): %.1f ms, published in %.1f ms",
		    (unsigned long long)publisher_generation(pub), last->table->nhosts,
		    last->table->nbackends, what, ps->shards_written, ps->lists_written,
		    ps->hosts_reused, (t1 - t0) * 1e3, (now_s() - t1) * 1e3);
		telemetry_published(publisher_generation(pub));
	}
	return 0;
}

/* One compile + publish. refs (may be NULL) is rebuilt from the snapshot;
 * *again is set when a change was judged by the older reference set while
 * this compile ran, so one more compile is due. Returns 0 or the publish
 * error. */
static int compile_publish(struct store *store, const struct compile_options *co,
                           struct publisher *pub, struct seen *seen, struct api *api,
                           const struct options *o, struct refs *refs, bool *again,
                           struct last_compile *last)
{
	static const char *const kinds[STORE_KIND_COUNT] = {
	    "ingress", "ingressclass", "service", "endpointslice", "secret", "configmap"};
	uint64_t ignored = refs ? refs_ignored(refs) : 0;
	struct snapshot *snap = store_snapshot(store);
	if (last) {
		int prc = 0;
		last->full = false;
		bool slices_only;
		int inc = incremental_publish(last, snap, co, pub, refs, &prc, &slices_only);
		if (inc == 0) {
			/* What the Ingresses reference may have moved (no snapshot
			 * when the publish failed: the next pass compiles in full),
			 * and their status. Neither when only EndpointSlices
			 * changed: references come from Ingresses and ConfigMaps,
			 * and both walks of every Ingress would take the CPU the
			 * proxy needs to load the table just published. */
			if (refs && last->snap && !slices_only) {
				refs_update(refs, last->snap);
				if (again && refs_ignored(refs) != ignored)
					*again = true;
			}
			if (api && api->reporter && o->publish_service && !slices_only)
				reporter_status(api->reporter);
			return prc;
		}
		if (inc > 0) {
			log_info(COMPONENT,
			         "a certificate must be written again: compiling in full");
			snap = store_snapshot(store); /* the one given went with last */
		}
		last_compile_clear(last);
		last->inc = compile_incr_new();
		/* refs is brought up to each snapshot compiled (below, and after
		 * an incremental step): what it calls unseen then is unseen by
		 * the Ingresses of last->snap, and the ones it says name an
		 * object are those that do */
		if (refs)
			compile_incr_set_judge(last->inc, refs_matters, refs_namers, refs);
	}
	struct route_table *t = NULL;
	struct diag_list diags = {0};
	bool written = false;
	for (int k = 0; k < STORE_KIND_COUNT; k++)
		telemetry_objects(kinds[k], snap->count[k]);
	double t0 = now_s();
	int rc = last ? compile_incr_full(last->inc, snap, co, &t, &diags)
	              : compile_snapshot(snap, co, &t, &diags);
	telemetry_compile_seconds(now_s() - t0);
	if (rc) {
		log_error(COMPONENT, "compile: %s", weir_strerror(rc));
		goto out;
	}
	double t1 = now_s();
	rc = publisher_publish(pub, t, &written);
	if (rc) {
		log_error(COMPONENT, "publish: %s", weir_strerror(rc));
	} else if (written) {
		const struct publish_stats *ps = publisher_stats(pub);
		log_info(COMPONENT,
		         "published generation %llu (%zu hosts, %zu backends, %zu diagnostics; "
		         "%zu shard files and %zu id lists written, %zu removed): compiled in %.1f "
		         "ms, published in %.1f ms",
		         (unsigned long long)publisher_generation(pub), t->nhosts, t->nbackends,
		         diags.n, ps->shards_written, ps->lists_written, ps->shards_removed,
		         (t1 - t0) * 1e3, (now_s() - t1) * 1e3);
		telemetry_published(publisher_generation(pub));
	} else {
		log_info(COMPONENT,
		         "compiled in %.1f ms (%zu hosts, %zu diagnostics): the table published is "
		         "current (generation %llu), nothing written",
		         (t1 - t0) * 1e3, t->nhosts, diags.n,
		         (unsigned long long)publisher_generation(pub));
	}
	if (refs) {
		refs_update(refs, snap);
		if (again && refs_ignored(refs) != ignored)
			*again = true;
	}
	report_diags(&diags, seen, api);
	if (api && api->reporter && o->publish_service)
		reporter_status(api->reporter);
	if (last && rc == 0) {
		last->slice_diags = false;
		for (size_t i = 0; i < diags.n; i++)
			if (strcmp(diags.items[i].kind, "EndpointSlice") == 0)
				last->slice_diags = true;
		publisher_release_pems(pub, t); /* on disk now, known by digest */
		last->table = t;
		last->snap = snap;
		last->diags = diags;
		memset(&diags, 0, sizeof(diags));
		last->full = true;
		t = NULL;
		snap = NULL;
	}
out:
	route_table_free(t);
	diag_list_cleanup(&diags);
	snapshot_free(snap);
	return rc;
}

/* Until every kind is listed (polled every 5 ms: the first compile waits
 * on it, and a restart at 10,000 Ingresses has about 2 s in all). */
static bool wait_synced(struct api *api)
{
	double t0 = now_s(), deadline = t0 + SYNC_TIMEOUT_S;
	while (!stopping && !k8s_source_synced(api->source)) {
		if (now_s() > deadline)
			return false;
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (!stopping)
		log_info(COMPONENT, "every kind listed from the API in %.0f ms",
		         (now_s() - t0) * 1e3);
	return !stopping;
}

static int run_explain(struct store *store, const struct compile_options *co,
                       struct diag_list *source_diags)
{
	struct snapshot *snap = store_snapshot(store);
	struct route_table *t = NULL;
	int rc = compile_snapshot(snap, co, &t, source_diags);
	if (rc == 0)
		rc = explain_write(stdout, t, source_diags);
	route_table_free(t);
	snapshot_free(snap);
	if (fflush(stdout) != 0)
		rc = WEIR_EIO;
	return rc ? 1 : 0;
}

static int run_report(struct store *store, const struct compile_options *co,
                      struct diag_list *source_diags, const struct options *o)
{
	struct snapshot *snap = store_snapshot(store);
	char *source = NULL;
	if (asprintf(&source, o->manifests ? "manifests in %s" : "the Kubernetes API%s",
	             o->manifests ? o->manifests : "") < 0)
		abort();
	int rc = report_write(stdout, snap, co, source_diags, source, o->output);
	free(source);
	snapshot_free(snap);
	if (fflush(stdout) != 0)
		rc = WEIR_EIO;
	return rc ? 1 : 0;
}

static int start_api(const struct options *o, struct store *store, struct api *api)
{
	char err[512] = "";
	int rc = k8s_config_load(o->kubeconfig, &api->cfg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "weir-controller: kubeconfig: %s\n",
		        *err ? err : weir_strerror(rc));
		return rc;
	}
	rc = k8s_client_new(api->cfg, &api->client);
	if (rc) {
		fprintf(stderr, "weir-controller: API client: %s\n", weir_strerror(rc));
		return rc;
	}
	struct k8s_source_options so = {.watch_namespace = o->watch_namespace,
	                                .configmap_namespace = k8s_config_namespace(api->cfg),
	                                .configmap_name = "weir"};
	rc = k8s_source_start(api->client, store, &so, &api->source);
	if (rc) {
		fprintf(stderr, "weir-controller: watch: %s\n", weir_strerror(rc));
		return rc;
	}
	if (o->leader_elect && !o->once && !o->explain && !o->report) {
		char host[256] = "weir-controller";
		const char *id = getenv("POD_NAME");
		if (!id || !*id) {
			if (gethostname(host, sizeof(host) - 1) != 0)
				snprintf(host, sizeof(host), "weir-controller-%ld", (long)getpid());
			host[sizeof(host) - 1] = '\0';
			id = host;
		}
		rc = leader_start(api->client, k8s_config_namespace(api->cfg), o->election_id, id,
		                  &api->leader);
		if (rc) {
			fprintf(stderr, "weir-controller: leader election: %s\n",
			        weir_strerror(rc));
			return rc;
		}
	}
	return 0;
}

/* flush_ms: how long queued Events and status may still take (--once). */
static void stop_api(struct api *api, unsigned flush_ms)
{
	reporter_free(api->reporter, flush_ms);
	api->reporter = NULL;
	leader_stop(api->leader);
	k8s_source_stop(api->source);
	k8s_client_free(api->client);
	k8s_config_free(api->cfg);
}

int main(int argc, char **argv)
{
	struct options o = {.publish = "/run/weir",
	                    .ingress_class = "weir",
	                    .election_id = "weir-leader",
	                    .log_format = LOG_FORMAT_TEXT,
	                    .metrics_port = 10254};
	int code = parse_flags(argc, argv, &o);
	if (code >= 0)
		return code;
	if (o.list_annotations) {
		code = report_list_annotations(stdout, o.output) || fflush(stdout) ? 1 : 0;
		return code;
	}
	log_init(o.log_format, LOG_LEVEL_INFO);
	/* glibc gives each thread that allocates an arena of its own, up to
	 * eight per core, and each arena keeps the holes its thread's list
	 * pages left around the objects stored for good: one arena for all
	 * took 200 MiB of RSS against 222 MiB with eight (the first publish of
	 * tests/bench/controller_api_bench.py's 10,000 Ingresses, Services and
	 * TLS Secrets, when a list page was parsed as one tree). But at start
	 * the watch threads parse their lists side by side, and with one arena
	 * they queued on its lock: a perf record of the whole machine showed
	 * their CPU adding up to one core while the other idled. Two arenas:
	 * restart -> new Ingress served 1,778 ms against 1,953 ms (medians of
	 * 8 restarts each, interleaved, at those 10,000 objects), and the
	 * controller's RSS unchanged (VmRSS 134 MiB, VmHWM 138 against 137
	 * MiB). Set before any thread starts. */
	mallopt(M_ARENA_MAX, 2);
	/* glibc serves an allocation of 128 KiB or more with its own mmap, but
	 * raises that threshold to the size of each such block freed (up to 32
	 * MiB): after the first list page or published index was freed, the
	 * controller's large transient buffers (list pages, serialized tables,
	 * a snapshot's arrays) came from the heap and left it holding their
	 * holes. A fixed threshold keeps them out of it: at 10,000 Ingresses
	 * with distinct TLS Secrets, the controller's RSS after a restart 126
	 * against 135 MiB, after 40 Ingress creates 300 ms apart 128 against
	 * 141 MiB, VmHWM 138 against 141 MiB (/proc, same API server). */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct compile_options co = {.ingress_class = o.ingress_class,
	                             .controller_name = CONTROLLER_NAME,
	                             .allow_loopback = o.manifests != NULL,
	                             .take_over_class = o.take_over_class,
	                             .all_classes = o.all_classes,
	                             .default_backend_service = o.default_backend_service};
	struct store *store = store_new();
	struct wake wake = {.dirty = true};
	pthread_mutex_init(&wake.lock, NULL);
	pthread_cond_init(&wake.cond, NULL);
	struct api api = {0};
	struct status_ctx sctx = {.api = &api, .o = &o, .store = store, .co = &co};
	struct manifests *watch = NULL;
	struct refs *refs = NULL;
	struct last_compile last = {0};
	struct publisher *pub = NULL;
	struct seen seen = {0};
	struct diag_list source_diags = {0};
	struct publish_prep prep = {0};
	struct manifests_cache *mcache = NULL; /* the first reading, for the watch */
	code = 1;

	if (!o.explain && !o.report)
		publish_prep_start(&prep, o.publish, o.publish_format);

	if (o.manifests) {
		mcache = manifests_cache_new();
		if (manifests_load_cached(o.manifests, store, &source_diags, mcache) != 0) {
			fprintf(stderr, "weir-controller: cannot read manifests directory %s: %s\n",
			        o.manifests, strerror(errno));
			goto out;
		}
		if (o.explain) {
			code = run_explain(store, &co, &source_diags);
			goto out;
		}
		if (o.report) {
			code = run_report(store, &co, &source_diags, &o);
			goto out;
		}
		for (size_t i = 0; i < source_diags.n; i++)
			log_warn(COMPONENT, "%s: %s", source_diags.items[i].name,
			         source_diags.items[i].message);
	} else {
		if (start_api(&o, store, &api) != 0)
			goto out;
		co.configmap_namespace = k8s_config_namespace(api.cfg);
		if (reporter_new(api.client, status_pass, &sctx, &api.reporter) != 0) {
			fprintf(stderr, "weir-controller: cannot start the reporter thread\n");
			goto out;
		}
		if (!wait_synced(&api)) {
			if (!stopping)
				fprintf(stderr, "weir-controller: objects not listed within %ds\n",
				        SYNC_TIMEOUT_S);
			goto out;
		}
		if (o.explain) {
			code = run_explain(store, &co, &source_diags);
			goto out;
		}
		if (o.report) {
			code = run_report(store, &co, &source_diags, &o);
			goto out;
		}
	}

	pub = publish_prep_join(&prep);
	if (!pub) {
		fprintf(stderr, "weir-controller: cannot use publish directory %s\n", o.publish);
		goto out;
	}
	if (o.once) {
		code = compile_publish(store, &co, pub, &seen, api.client ? &api : NULL, &o, NULL,
		                       NULL, NULL)
		           ? 1
		           : 0;
		goto out;
	}

	refs = refs_new();
	if (o.default_backend_service)
		refs_add_service(refs, o.default_backend_service);
	store_set_relevance(store, refs_relevant, refs);
	store_set_notify(store, on_store_change, &wake);
	if (o.manifests && manifests_watch(o.manifests, store, mcache, &watch) != 0)
		log_warn(COMPONENT, "cannot follow %s; changes need a restart", o.manifests);
	mcache = NULL; /* the watch's now, freed also when it could not start */
	if (o.metrics_port && telemetry_start(NULL, o.metrics_port) != 0)
		log_warn(COMPONENT, "metrics port %d unavailable; /metrics disabled",
		         o.metrics_port);
	log_info(COMPONENT, "running: source %s, publish %s, class %s",
	         o.manifests ? o.manifests : "Kubernetes API", o.publish, o.ingress_class);
	if (o.take_over_class)
		log_warn(COMPONENT,
		         "--take-over-class: serving IngressClass %s whatever its controller; "
		         "scale the other controller down, both would write Ingress status",
		         o.ingress_class);

	double last_status = now_s(), retry_at = 0, last_compile = 0;
	bool trim_due = false; /* incremental steps since the last malloc_trim */
	while (!stopping) {
		pthread_mutex_lock(&wake.lock);
		if (!wake.dirty) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&wake.cond, &wake.lock, &ts);
		}
		bool dirty = wake.dirty;
		pthread_mutex_unlock(&wake.lock);
		if (stopping)
			break;
		if (!dirty && retry_at > 0 && now_s() >= retry_at)
			dirty = true;
		if (!dirty) {
			/* What incremental steps freed, given back once they
			 * stop (one walk of the heap, not one per step). */
			if (trim_due && now_s() - last_compile > TRIM_IDLE_S) {
				malloc_trim(0);
				trim_due = false;
			}
			if (api.reporter && o.publish_service &&
			    now_s() - last_status > STATUS_RESYNC_S) {
				reporter_status(api.reporter);
				last_status = now_s();
			}
			continue;
		}
		/* A change after a quiet spell is compiled at once; changes that
		 * follow a compile closely are batched, so a burst costs a few
		 * compiles, not one per object. */
		if (now_s() - last_compile < QUIET_S) {
			struct timespec batch = {0, BATCH_NS};
			nanosleep(&batch, NULL);
		}
		last_compile = now_s();
		pthread_mutex_lock(&wake.lock);
		wake.dirty = false;
		pthread_mutex_unlock(&wake.lock);
		bool again = false;
		if (compile_publish(store, &co, pub, &seen, api.client ? &api : NULL, &o, refs,
		                    &again, &last) != 0)
			retry_at = now_s() + PUBLISH_RETRY_S; /* e.g. a full disk: try again */
		else
			retry_at = 0;
		if (again)
			on_store_change(&wake);
		/* A full compile of 10,000 Ingresses frees tens of MiB of table,
		 * text and diagnostics; glibc keeps freed pages mapped unless
		 * asked (about 50 MiB of RSS at that size). After the publish, so
		 * the proxy is not kept waiting. An incremental step frees little:
		 * no trim (it walks the whole heap). */
		if (!last.table || last.full)
			malloc_trim(0);
		trim_due = last.table && !last.full;
		last_status = now_s();
	}
	log_info(COMPONENT, "stopping; %s/%s stays in place", o.publish, ROUTE_TABLE_FILE);
	code = 0;
out:
	manifests_stop(watch);
	manifests_cache_free(mcache);
	if (api.cfg || api.client)
		stop_api(&api, o.once ? REPORTER_FLUSH_ONCE_MS : 0);
	store_set_notify(store, NULL, NULL);
	store_set_relevance(store, NULL, NULL);
	last_compile_clear(&last);
	refs_free(refs);
	if (o.metrics_port && !o.once && !o.explain && !o.report)
		telemetry_stop();
	publisher_free(pub);
	publisher_free(publish_prep_join(&prep)); /* when we left before taking it */
	seen_cleanup(&seen);
	diag_list_cleanup(&source_diags);
	store_free(store);
	pthread_mutex_destroy(&wake.lock);
	pthread_cond_destroy(&wake.cond);
	return code;
}
