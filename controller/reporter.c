/* controller/reporter.c - one thread that writes Warning Events and Ingress
 * status. A publish only queues work here: at 10,000 Ingresses a leader
 * change means thousands of status writes, which must not hold back the
 * next route table. */
#include "reporter.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "events.h"
#include "log.h"

#define COMPONENT "controller.reporter"
#define DROP_LOG_EVERY_S 60

struct event_item {
	struct event_item *next;
	char *ns, *name, *uid, *reason, *message;
};

struct reporter {
	struct k8s_client *client;
	reporter_status_cb status_cb;
	void *arg;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct event_item *head, *tail; /* under mu */
	size_t queued;                  /* under mu */
	bool status_due;                /* under mu */
	bool stopping;                  /* under mu */
	bool busy;                      /* under mu: an Event or status pass runs */
	uint64_t flush_until_ms;        /* under mu; valid once stopping */
	atomic_bool cancel;             /* stopping and the flush time is over */
	atomic_size_t dropped;
	time_t drop_logged;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void item_free(struct event_item *it)
{
	if (!it)
		return;
	free(it->ns);
	free(it->name);
	free(it->uid);
	free(it->reason);
	free(it->message);
	free(it);
}

static void send_event(struct reporter *r, struct event_item *it)
{
	int rc = events_warn_ingress(r->client, it->ns, it->name, it->uid, it->reason, it->message);
	/* WEIR_EAGAIN: events.c's own rate limit dropped it (it counts that). */
	if (rc && rc != WEIR_EAGAIN)
		log_warn(COMPONENT, "event on %s/%s: %s", it->ns, it->name, weir_strerror(rc));
}

static void *run(void *arg)
{
	struct reporter *r = arg;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->stopping && !r->head && !r->status_due)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->stopping && ((!r->head && !r->status_due) || now_ms() >= r->flush_until_ms))
			break;
		if (r->head) {
			struct event_item *it = r->head;
			r->head = it->next;
			if (!r->head)
				r->tail = NULL;
			r->queued--;
			r->busy = true;
			pthread_mutex_unlock(&r->mu);
			send_event(r, it);
			item_free(it);
			pthread_mutex_lock(&r->mu);
			r->busy = false;
			continue;
		}
		r->status_due = false;
		r->busy = true;
		pthread_mutex_unlock(&r->mu);
		if (r->status_cb)
			r->status_cb(r->arg, &r->cancel);
		pthread_mutex_lock(&r->mu);
		r->busy = false;
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

int reporter_new(struct k8s_client *client, reporter_status_cb status_cb, void *arg,
                 struct reporter **out)
{
	int rc = WEIR_ENOMEM;
	struct reporter *r = calloc(1, sizeof(*r));
	if (!r)
		goto fail;
	r->client = client;
	r->status_cb = status_cb;
	r->arg = arg;
	atomic_init(&r->cancel, false);
	atomic_init(&r->dropped, 0);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	rc = WEIR_EIO;
	if (pthread_create(&r->thread, NULL, run, r) != 0)
		goto fail_sync;
	*out = r;
	return 0;
fail_sync:
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
fail:
	return rc;
}

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

void reporter_event(struct reporter *r, const char *ns, const char *name, const char *uid,
                    const char *reason, const char *message)
{
	struct event_item *it = calloc(1, sizeof(*it));
	if (!it)
		abort(); /* control plane: out of memory is fatal */
	it->ns = dup_or_empty(ns);
	it->name = dup_or_empty(name);
	it->uid = dup_or_empty(uid);
	it->reason = dup_or_empty(reason);
	it->message = dup_or_empty(message);
	if (!it->ns || !it->name || !it->uid || !it->reason || !it->message)
		abort();
	bool drop_log = false;
	pthread_mutex_lock(&r->mu);
	if (r->queued >= REPORTER_QUEUE_MAX || r->stopping) {
		atomic_fetch_add(&r->dropped, 1);
		time_t now = time(NULL);
		if (now - r->drop_logged >= DROP_LOG_EVERY_S) {
			r->drop_logged = now;
			drop_log = true;
		}
		pthread_mutex_unlock(&r->mu);
		item_free(it);
		if (drop_log)
			log_warn(COMPONENT, "event queue full (%d): %zu Events dropped so far",
			         REPORTER_QUEUE_MAX, reporter_dropped(r));
		return;
	}
	if (r->tail)
		r->tail->next = it;
	else
		r->head = it;
	r->tail = it;
	r->queued++;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

void reporter_status(struct reporter *r)
{
	pthread_mutex_lock(&r->mu);
	if (!r->stopping) {
		r->status_due = true;
		pthread_cond_signal(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
}

size_t reporter_dropped(const struct reporter *r)
{
	return atomic_load(&((struct reporter *)r)->dropped);
}

void reporter_free(struct reporter *r, unsigned flush_ms)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stopping = true;
	r->flush_until_ms = now_ms() + flush_ms;
	if (!flush_ms)
		atomic_store(&r->cancel, true);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	/* A status pass in progress sees cancel once the flush time is over. */
	while (flush_ms) {
		struct timespec ts = {0, 20 * 1000 * 1000};
		pthread_mutex_lock(&r->mu);
		bool idle = !r->head && !r->status_due && !r->busy;
		pthread_mutex_unlock(&r->mu);
		if (now_ms() >= r->flush_until_ms || idle)
			break;
		nanosleep(&ts, NULL);
	}
	atomic_store(&r->cancel, true);
	pthread_join(r->thread, NULL);
	while (r->head) {
		struct event_item *it = r->head;
		r->head = it->next;
		item_free(it);
	}
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
