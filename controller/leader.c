/* controller/leader.c - leader election on a coordination.k8s.io/v1 Lease.
 *
 * Every 2 s the thread reads the Lease: absent -> create it holding it; ours -> renew
 * (renewTime); someone else's and expired (renewTime + leaseDurationSeconds < now, by our wall
 * clock, so clocks are assumed roughly in sync as with any Lease user) or without holder ->
 * take it over. Writes carry the resourceVersion that was read, so of two replicas racing for
 * the same Lease only one PUT succeeds (the other gets 409). A leader that could not renew for
 * 10 s (the renew deadline, under the 15 s lease) stops calling itself leader even while a
 * request is still hanging, so two leaders never overlap. */
#include "leader.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "error.h"
#include "k8s_client.h"
#include "log.h"

#define LEASE_SECONDS 15
#define RENEW_DEADLINE_MS 10000L
#define RETRY_MS 2000L

static const char *const LOG_C = "controller.leader";

struct leader {
	struct k8s_client *c;
	char *ns, *name, *identity;
	char *path, *collection;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	atomic_bool leading;
	atomic_long renewed_ms; /* monotonic time of the last successful acquire/renew */
	bool logged_error;
};

static long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* MicroTime: RFC 3339 with microseconds, UTC. */
static void micro_time_now(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char base[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%.20s.%06uZ", base, (unsigned)(ts.tv_nsec / 1000) % 1000000u);
}

/* Parse an RFC 3339 time (fraction and offset optional) into seconds since the epoch.
 * Returns 0 or WEIR_EPARSE. */
static int parse_time(const char *s, double *out)
{
	struct tm tm;
	const char *p;
	double frac = 0;
	long off = 0;

	memset(&tm, 0, sizeof(tm));
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return WEIR_EPARSE;
	if (*p == '.') {
		double scale = 0.1;

		for (p++; *p >= '0' && *p <= '9'; p++) {
			frac += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int hh, mm;

		if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
			return WEIR_EPARSE;
		off = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return WEIR_EPARSE;
	}
	if (*p)
		return WEIR_EPARSE;
	*out = (double)timegm(&tm) - (double)off + frac;
	return 0;
}

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *spec_str(json_object *spec, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(spec, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Send lease (PUT when it exists, POST to create). Returns 0 when written, 1 on a conflict
 * (someone else wrote first), WEIR_E* otherwise. */
static int write_lease(struct leader *l, json_object *lease, bool create)
{
	char *resp = NULL;
	long status;
	int rc;

	rc = k8s_request(l->c, create ? "POST" : "PUT", create ? l->collection : l->path,
	                 json_object_to_json_string_ext(lease, JSON_C_TO_STRING_PLAIN),
	                 "application/json", &status, &resp);
	if (rc == 0) {
		if (status == 409)
			rc = 1;
		else if (status < 200 || status > 299) {
			log_debug(LOG_C, "%s lease %s/%s: HTTP %ld: %.200s",
			          create ? "POST" : "PUT", l->ns, l->name, status, resp);
			rc = WEIR_EHTTP;
		}
	}
	free(resp);
	return rc;
}

static void set_holder(json_object *spec, const char *identity, const char *now, bool acquire)
{
	json_object_object_add(spec, "holderIdentity", json_object_new_string(identity));
	json_object_object_add(spec, "leaseDurationSeconds", json_object_new_int(LEASE_SECONDS));
	json_object_object_add(spec, "renewTime", json_object_new_string(now));
	if (acquire) {
		json_object *tr = NULL;
		int transitions = 0;

		json_object_object_get_ex(spec, "leaseTransitions", &tr);
		if (tr)
			transitions = json_object_get_int(tr) + 1;
		json_object_object_add(spec, "acquireTime", json_object_new_string(now));
		json_object_object_add(spec, "leaseTransitions", json_object_new_int(transitions));
	}
}

/* One round. Returns 0 when we hold the lease now, 1 when someone else holds it, WEIR_E* on
 * errors (leadership state unknown). */
static int try_acquire_or_renew(struct leader *l)
{
	json_object *lease = NULL, *spec, *meta;
	char *resp = NULL, now[48];
	const char *holder, *renew;
	double renewed;
	long status;
	int rc, dur = LEASE_SECONDS;

	micro_time_now(now, sizeof(now));
	rc = k8s_request(l->c, "GET", l->path, NULL, NULL, &status, &resp);
	if (rc)
		goto out;
	if (status == 404) {
		lease = json_object_new_object();
		meta = json_object_new_object();
		spec = json_object_new_object();
		json_object_object_add(lease, "apiVersion",
		                       json_object_new_string("coordination.k8s.io/v1"));
		json_object_object_add(lease, "kind", json_object_new_string("Lease"));
		json_object_object_add(meta, "name", json_object_new_string(l->name));
		json_object_object_add(meta, "namespace", json_object_new_string(l->ns));
		json_object_object_add(lease, "metadata", meta);
		json_object_object_add(lease, "spec", spec);
		set_holder(spec, l->identity, now, true);
		json_object_object_add(spec, "leaseTransitions", json_object_new_int(0));
		rc = write_lease(l, lease, true);
		goto out;
	}
	if (status < 200 || status > 299) {
		log_debug(LOG_C, "GET lease %s/%s: HTTP %ld: %.200s", l->ns, l->name, status, resp);
		rc = WEIR_EHTTP;
		goto out;
	}
	lease = json_tokener_parse(resp);
	if (!lease || !json_object_is_type(lease, json_type_object)) {
		rc = WEIR_EPARSE;
		goto out;
	}
	if (!json_object_object_get_ex(lease, "spec", &spec) ||
	    !json_object_is_type(spec, json_type_object)) {
		spec = json_object_new_object();
		json_object_object_add(lease, "spec", spec);
	}
	holder = spec_str(spec, "holderIdentity");
	if (holder && strcmp(holder, l->identity) == 0) {
		set_holder(spec, l->identity, now, false);
		rc = write_lease(l, lease, false);
		goto out;
	}
	if (holder && holder[0]) {
		json_object *d = NULL;

		if (json_object_object_get_ex(spec, "leaseDurationSeconds", &d))
			dur = json_object_get_int(d);
		renew = spec_str(spec, "renewTime");
		if (!renew)
			renew = spec_str(spec, "acquireTime");
		if (renew && parse_time(renew, &renewed) == 0 && renewed + dur >= wall_now()) {
			rc = 1; /* held and fresh */
			goto out;
		}
		log_info(LOG_C, "lease %s/%s of %s expired; taking it over", l->ns, l->name,
		         holder);
	}
	set_holder(spec, l->identity, now, true);
	rc = write_lease(l, lease, false);
out:
	json_object_put(lease);
	free(resp);
	return rc;
}

/* Release: clear holderIdentity if we still hold the Lease, so another replica can take over
 * at once instead of waiting for expiry. */
static void release(struct leader *l)
{
	json_object *lease = NULL, *spec;
	char *resp = NULL, now[48];
	const char *holder;
	long status;

	if (k8s_request(l->c, "GET", l->path, NULL, NULL, &status, &resp) != 0 || status != 200)
		goto out;
	lease = json_tokener_parse(resp);
	if (!lease || !json_object_object_get_ex(lease, "spec", &spec))
		goto out;
	holder = spec_str(spec, "holderIdentity");
	if (!holder || strcmp(holder, l->identity) != 0)
		goto out;
	micro_time_now(now, sizeof(now));
	json_object_object_add(spec, "holderIdentity", json_object_new_string(""));
	json_object_object_add(spec, "leaseDurationSeconds", json_object_new_int(1));
	json_object_object_add(spec, "renewTime", json_object_new_string(now));
	if (write_lease(l, lease, false) == 0)
		log_info(LOG_C, "released lease %s/%s", l->ns, l->name);
out:
	json_object_put(lease);
	free(resp);
}

static void set_leading(struct leader *l, bool on)
{
	bool was = atomic_exchange(&l->leading, on);

	if (was != on)
		log_info(LOG_C, "%s leader (lease %s/%s, identity %s)", on ? "became" : "no longer",
		         l->ns, l->name, l->identity);
}

static void *leader_main(void *arg)
{
	struct leader *l = arg;

	for (;;) {
		struct timespec ts;
		int rc = try_acquire_or_renew(l);
		long now = mono_ms();

		if (rc == 0) {
			atomic_store(&l->renewed_ms, now);
			set_leading(l, true);
			l->logged_error = false;
		} else if (rc == 1) {
			set_leading(l, false);
			l->logged_error = false;
		} else {
			if (!l->logged_error)
				log_warn(LOG_C, "lease %s/%s: %s (retrying every %ld ms)", l->ns,
				         l->name, weir_strerror(rc), RETRY_MS);
			l->logged_error = true;
			if (now - atomic_load(&l->renewed_ms) > RENEW_DEADLINE_MS)
				set_leading(l, false);
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += RETRY_MS / 1000;
		ts.tv_nsec += (RETRY_MS % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&l->mu);
		while (!l->stop && pthread_cond_timedwait(&l->cv, &l->mu, &ts) == 0)
			;
		if (l->stop) {
			pthread_mutex_unlock(&l->mu);
			break;
		}
		pthread_mutex_unlock(&l->mu);
	}
	return NULL;
}

bool leader_is_leader(const struct leader *l)
{
	struct leader *m = (struct leader *)l; /* atomics are read-only here */

	if (!atomic_load(&m->leading))
		return false;
	/* A renew may be hanging: do not outlive the renew deadline. */
	return mono_ms() - atomic_load(&m->renewed_ms) <= RENEW_DEADLINE_MS;
}

static void leader_free(struct leader *l)
{
	free(l->ns);
	free(l->name);
	free(l->identity);
	free(l->path);
	free(l->collection);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

int leader_start(struct k8s_client *c, const char *ns, const char *lease_name, const char *identity,
                 struct leader **out)
{
	struct leader *l;
	pthread_condattr_t ca;

	*out = NULL;
	if (!c || !ns || !ns[0] || !lease_name || !lease_name[0] || !identity || !identity[0])
		return WEIR_EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return WEIR_ENOMEM;
	l->c = c;
	l->ns = strdup(ns);
	l->name = strdup(lease_name);
	l->identity = strdup(identity);
	if (!l->ns || !l->name || !l->identity ||
	    asprintf(&l->collection, "/apis/coordination.k8s.io/v1/namespaces/%s/leases", ns) < 0 ||
	    asprintf(&l->path, "%s/%s", l->collection, lease_name) < 0)
		abort();
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&l->leading, false);
	atomic_init(&l->renewed_ms, mono_ms() - 2 * RENEW_DEADLINE_MS);
	if (pthread_create(&l->thread, NULL, leader_main, l) != 0) {
		leader_free(l);
		return WEIR_ENOMEM;
	}
	*out = l;
	return 0;
}

void leader_stop(struct leader *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = true;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->thread, NULL);
	if (atomic_load(&l->leading)) {
		atomic_store(&l->leading, false);
		release(l);
	}
	leader_free(l);
}
