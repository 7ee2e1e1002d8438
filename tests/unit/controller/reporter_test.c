/* tests/unit/controller/reporter_test.c - Events and status leave the caller
 * at once while the API is slow; Events keep their order, a full queue drops
 * and counts, status requests coalesce, free flushes or cancels. The API is
 * replaced by a fake events_warn_ingress that takes SLOW_MS per call. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "controller/reporter.c"

#define SLOW_MS 20

static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static char seen[64][32];
static size_t nseen;
static atomic_int status_runs;
static atomic_int status_cancelled;

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int events_warn_ingress(struct k8s_client *c, const char *ns, const char *name, const char *uid,
                        const char *reason, const char *message)
{
	(void)c;
	(void)ns;
	(void)uid;
	(void)reason;
	(void)message;
	sleep_ms(SLOW_MS);
	pthread_mutex_lock(&seen_mu);
	if (nseen < 64)
		snprintf(seen[nseen++], sizeof(seen[0]), "%s", name);
	pthread_mutex_unlock(&seen_mu);
	return 0;
}

static void status(void *arg, const atomic_bool *cancel)
{
	(void)arg;
	atomic_fetch_add(&status_runs, 1);
	for (int i = 0; i < 50; i++) { /* a pass over many Ingresses */
		if (atomic_load(cancel)) {
			atomic_fetch_add(&status_cancelled, 1);
			return;
		}
		sleep_ms(SLOW_MS);
	}
}

static size_t seen_count(void)
{
	pthread_mutex_lock(&seen_mu);
	size_t n = nseen;
	pthread_mutex_unlock(&seen_mu);
	return n;
}

int main(void)
{
	struct reporter *r = NULL;
	char name[32];

	/* Ten Events at 20 ms each: queuing them costs the caller nothing. */
	CHECK_INT(reporter_new(NULL, status, NULL, &r), 0);
	uint64_t t0 = now_ms();
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "ing-%d", i);
		reporter_event(r, "default", name, "uid", "BadAnnotation", "msg");
	}
	CHECK(now_ms() - t0 < 10 * SLOW_MS / 2);
	reporter_free(r, 5000); /* flush: all ten delivered, in order */
	CHECK_INT(seen_count(), 10);
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "ing-%d", i);
		CHECK_STR(seen[i], name);
	}

	/* Status requests while a pass runs coalesce into one more pass. */
	CHECK_INT(reporter_new(NULL, status, NULL, &r), 0);
	reporter_status(r);
	sleep_ms(5 * SLOW_MS); /* the first pass is running */
	for (int i = 0; i < 100; i++)
		reporter_status(r);
	reporter_free(r, 10000);
	CHECK_INT(atomic_load(&status_runs), 2);
	CHECK_INT(atomic_load(&status_cancelled), 0);

	/* free without flush cancels a running pass and drops the queue. */
	atomic_store(&status_runs, 0);
	nseen = 0;
	CHECK_INT(reporter_new(NULL, status, NULL, &r), 0);
	reporter_status(r);
	sleep_ms(3 * SLOW_MS);
	reporter_event(r, "default", "late", "uid", "R", "m");
	t0 = now_ms();
	reporter_free(r, 0);
	CHECK(now_ms() - t0 < 10 * SLOW_MS);
	CHECK_INT(atomic_load(&status_cancelled), 1);
	CHECK_INT(seen_count(), 0);

	/* A full queue drops and counts; nothing blocks. */
	CHECK_INT(reporter_new(NULL, NULL, NULL, &r), 0);
	t0 = now_ms();
	for (int i = 0; i < REPORTER_QUEUE_MAX + 100; i++)
		reporter_event(r, "default", "flood", "uid", "R", "m");
	CHECK(now_ms() - t0 < 2000);
	CHECK(reporter_dropped(r) >= 50); /* the thread may take a few meanwhile */
	CHECK(reporter_dropped(r) <= 100);
	reporter_free(r, 0);

	reporter_free(NULL, 0);
	return check_finish("reporter_test");
}
