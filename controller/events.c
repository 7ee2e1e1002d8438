/* controller/events.c - Warning Events on Ingresses, deduplicated and rate-limited.
 *
 * The compile loop reports the same problems on every pass, so events are remembered by
 * (object uid, reason, message) in a bounded cache. A repeat within 10 minutes of the last
 * occurrence does not create a new Event: it bumps the local count, and the Event's count and
 * lastTimestamp are PATCHed at most once a minute (merge patch). Older entries are forgotten
 * and the next occurrence creates a fresh Event. A global token bucket (10/s, burst 25) bounds
 * the API calls; after a transport error calls are skipped for a few seconds so a dead API
 * server does not stall the caller once per event. */
#include "events.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "error.h"
#include "k8s_client.h"
#include "log.h"

#define CACHE_MAX 1024
#define DEDUPE_WINDOW_S 600
#define PATCH_INTERVAL_S 60
#define RATE_PER_S 10.0
#define RATE_BURST 25.0
#define MESSAGE_MAX 1024
#define COOLDOWN_S 5

static const char *const LOG_C = "controller.events";

struct entry {
	uint64_t hash;
	char *key;                /* uid \x1f reason \x1f message */
	char *event_name;         /* metadata.name of the created Event */
	unsigned long count;      /* occurrences so far */
	unsigned long sent_count; /* count the API server has */
	double last_seen;         /* monotonic seconds */
	double last_sent;
};

static struct {
	pthread_mutex_t mu;
	struct entry e[CACHE_MAX];
	size_t n;
	double tokens;
	double tokens_at;
	double cooldown_until;
} ev = {.mu = PTHREAD_MUTEX_INITIALIZER, .tokens = RATE_BURST};

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void rfc3339_now(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

/* With ev.mu held. Takes a token if one is available. */
static bool rate_take(double now)
{
	if (ev.tokens_at > 0)
		ev.tokens += (now - ev.tokens_at) * RATE_PER_S;
	ev.tokens_at = now;
	if (ev.tokens > RATE_BURST)
		ev.tokens = RATE_BURST;
	if (ev.tokens < 1.0)
		return false;
	ev.tokens -= 1.0;
	return true;
}

static void entry_clear(struct entry *e)
{
	free(e->key);
	free(e->event_name);
	memset(e, 0, sizeof(*e));
}

/* With ev.mu held: the entry for key, or a fresh slot (the least recently seen one is
 * evicted when the cache is full). *found tells which. */
static struct entry *cache_slot(const char *key, uint64_t h, double now, bool *found)
{
	struct entry *oldest = NULL;

	*found = false;
	for (size_t i = 0; i < ev.n; i++) {
		struct entry *e = &ev.e[i];

		if (e->hash == h && strcmp(e->key, key) == 0) {
			if (now - e->last_seen > DEDUPE_WINDOW_S) {
				entry_clear(e);
				return e;
			}
			*found = true;
			return e;
		}
		if (!oldest || e->last_seen < oldest->last_seen)
			oldest = e;
	}
	if (ev.n < CACHE_MAX)
		return &ev.e[ev.n++];
	entry_clear(oldest);
	return oldest;
}

static char *event_body(const char *ns, const char *name, const char *uid, const char *reason,
                        const char *message, unsigned long count, const char *ts)
{
	json_object *o = json_object_new_object(), *meta = json_object_new_object();
	json_object *inv = json_object_new_object(), *src = json_object_new_object();
	char gen[300];
	char *out;

	snprintf(gen, sizeof(gen), "%s.", name);
	json_object_object_add(o, "apiVersion", json_object_new_string("v1"));
	json_object_object_add(o, "kind", json_object_new_string("Event"));
	json_object_object_add(meta, "generateName", json_object_new_string(gen));
	json_object_object_add(meta, "namespace", json_object_new_string(ns));
	json_object_object_add(o, "metadata", meta);
	json_object_object_add(inv, "kind", json_object_new_string("Ingress"));
	json_object_object_add(inv, "apiVersion", json_object_new_string("networking.k8s.io/v1"));
	json_object_object_add(inv, "namespace", json_object_new_string(ns));
	json_object_object_add(inv, "name", json_object_new_string(name));
	if (uid && uid[0])
		json_object_object_add(inv, "uid", json_object_new_string(uid));
	json_object_object_add(o, "involvedObject", inv);
	json_object_object_add(o, "reason", json_object_new_string(reason));
	json_object_object_add(
	    o, "message", json_object_new_string_len(message, (int)strnlen(message, MESSAGE_MAX)));
	json_object_object_add(o, "type", json_object_new_string("Warning"));
	json_object_object_add(src, "component", json_object_new_string("weir-controller"));
	json_object_object_add(o, "source", src);
	json_object_object_add(o, "firstTimestamp", json_object_new_string(ts));
	json_object_object_add(o, "lastTimestamp", json_object_new_string(ts));
	json_object_object_add(o, "count", json_object_new_int64((int64_t)count));
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	if (!out)
		abort();
	return out;
}

/* POST a new Event; on success returns its generated name (caller frees). */
static int post_event(struct k8s_client *c, const char *ns, const char *name, const char *uid,
                      const char *reason, const char *message, unsigned long count, const char *ts,
                      char **ev_name)
{
	char *body = event_body(ns, name, uid, reason, message, count, ts), *path = NULL,
	     *resp = NULL;
	json_object *r = NULL, *meta, *n;
	long status;
	int rc;

	*ev_name = NULL;
	if (asprintf(&path, "/api/v1/namespaces/%s/events", ns) < 0)
		abort();
	rc = k8s_request(c, "POST", path, body, "application/json", &status, &resp);
	if (rc)
		goto out;
	if (status != 201 && status != 200) {
		log_debug(LOG_C, "POST %s: HTTP %ld: %.200s", path, status, resp);
		rc = WEIR_EHTTP;
		goto out;
	}
	r = json_tokener_parse(resp);
	if (r && json_object_object_get_ex(r, "metadata", &meta) &&
	    json_object_object_get_ex(meta, "name", &n)) {
		*ev_name = strdup(json_object_get_string(n));
		if (!*ev_name)
			abort();
	}
out:
	json_object_put(r);
	free(resp);
	free(path);
	free(body);
	return rc;
}

/* Merge-patch count and lastTimestamp of an existing Event. */
static int patch_event(struct k8s_client *c, const char *ns, const char *ev_name,
                       unsigned long count, const char *ts)
{
	char *path = NULL, *body = NULL, *resp = NULL;
	long status;
	int rc;

	if (asprintf(&path, "/api/v1/namespaces/%s/events/%s", ns, ev_name) < 0 ||
	    asprintf(&body, "{\"count\":%lu,\"lastTimestamp\":\"%s\"}", count, ts) < 0)
		abort();
	rc = k8s_request(c, "PATCH", path, body, "application/merge-patch+json", &status, &resp);
	if (rc == 0 && status == 404)
		rc = WEIR_ENOENT; /* expired (events have a TTL): create a new one */
	else if (rc == 0 && (status < 200 || status > 299))
		rc = WEIR_EHTTP;
	free(resp);
	free(body);
	free(path);
	return rc;
}

static bool transport_error(int rc)
{
	return rc == WEIR_EIO || rc == WEIR_ETIMEDOUT || rc == WEIR_ETLS || rc == WEIR_ECLOSED;
}

int events_warn_ingress(struct k8s_client *c, const char *ns, const char *name, const char *uid,
                        const char *reason, const char *message)
{
	char ts[32], *key = NULL, *ev_name = NULL;
	struct entry *e;
	double now = mono_s();
	bool found, do_post = false, do_patch = false;
	unsigned long count = 0;
	uint64_t h;
	int rc = 0;

	if (!c || !ns || !ns[0] || !name || !name[0] || !reason || !message)
		return WEIR_EINVAL;
	if (asprintf(&key, "%s\x1f%s\x1f%s\x1f%s\x1f%.*s", ns, name, uid ? uid : "", reason,
	             MESSAGE_MAX, message) < 0)
		abort();
	h = fnv1a(key);
	rfc3339_now(ts, sizeof(ts));

	pthread_mutex_lock(&ev.mu);
	e = cache_slot(key, h, now, &found);
	if (!found) {
		e->hash = h;
		e->key = strdup(key);
		if (!e->key)
			abort();
	}
	e->count++;
	e->last_seen = now;
	if (!e->event_name) {
		do_post = true; /* new, or its creation failed before */
	} else if (e->count > e->sent_count && now - e->last_sent >= PATCH_INTERVAL_S) {
		do_patch = true;
		ev_name = strdup(e->event_name);
		if (!ev_name)
			abort();
	}
	count = e->count;
	if ((do_post || do_patch) && (now < ev.cooldown_until || !rate_take(now))) {
		do_post = do_patch = false;
		rc = WEIR_EAGAIN;
	}
	if (do_post || do_patch) {
		/* Claim the send so concurrent callers do not duplicate it. */
		e->last_sent = now;
		e->sent_count = count;
	}
	pthread_mutex_unlock(&ev.mu);
	if (!do_post && !do_patch)
		goto out;

	if (do_patch) {
		rc = patch_event(c, ns, ev_name, count, ts);
		free(ev_name);
		ev_name = NULL;
		if (rc == WEIR_ENOENT)
			do_post = true;
	}
	if (do_post)
		rc = post_event(c, ns, name, uid, reason, message, count, ts, &ev_name);

	pthread_mutex_lock(&ev.mu);
	if (transport_error(rc))
		ev.cooldown_until = now + COOLDOWN_S;
	for (size_t i = 0; i < ev.n; i++) {
		e = &ev.e[i];
		if (e->hash != h || strcmp(e->key, key) != 0)
			continue;
		if (do_post) {
			free(e->event_name);
			e->event_name = rc == 0 ? ev_name : NULL;
			ev_name = NULL;
		}
		break;
	}
	pthread_mutex_unlock(&ev.mu);
	if (rc)
		log_debug(LOG_C, "event %s on Ingress %s/%s not sent: %s", reason, ns, name,
		          weir_strerror(rc));
out:
	free(ev_name);
	free(key);
	return rc;
}
