/* tests/unit/proxy/external_test.c - ExternalName addresses on a real loop:
 * "localhost" (from /etc/hosts) resolves asynchronously for every request
 * waiting on it, then is served from the table; a name under .invalid
 * (RFC 6761: never resolves) fails its waiters and fails at once while the
 * retry delay runs; a stale answer whose refresh fails keeps serving; a
 * cancelled wait never calls back. Includes the .c to age entries. */
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "proxy/external.c"
#include "proxy/loop.h"

#define MISSING "weir-external-test.invalid"

static struct loop *L;
static int calls, oks, fails;

static void on_done(void *data, int rc)
{
	calls++;
	if (rc == 0)
		oks++;
	else
		fails++;
	if (data)
		loop_stop(L);
}

static void on_deadline(struct loop_timer *t)
{
	loop_stop(L);
}

static bool is_loopback(const char *a)
{
	return strcmp(a, "::1") == 0 || strncmp(a, "127.", 4) == 0;
}

/* Run the loop until a callback with data stops it, or 10 s. */
static void run(struct loop_timer *deadline)
{
	loop_timer_set(L, deadline, 10000);
	CHECK_INT(loop_run(L), 0);
	loop_timer_cancel(L, deadline);
}

static struct external_entry *entry(struct external_names *t, const char *name)
{
	for (struct external_entry *e = t->entries; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

int main(void)
{
	struct resolver *r = NULL;
	struct external_names *t = NULL;
	struct external_wait *w1 = NULL, *w2 = NULL;
	struct loop_timer deadline;
	char a[RESOLVE_ADDR_MAX] = "", b[RESOLVE_ADDR_MAX] = "";
	CHECK_INT(loop_new(NULL, NULL, &L), 0);
	CHECK_INT(resolver_new(L, &r), 0);
	CHECK_INT(external_names_new(L, r, &t), 0);
	loop_timer_init(&deadline, on_deadline, NULL);

	/* Two requests wait for one lookup; both go on when it answers. */
	CHECK_INT(external_names_pick(t, "localhost", a, on_done, NULL, &w1), WEIR_EAGAIN);
	CHECK_INT(external_names_pick(t, "localhost", a, on_done, &deadline, &w2), WEIR_EAGAIN);
	CHECK_INT(calls, 0);
	CHECK(entry(t, "localhost") && entry(t, "localhost")->q != NULL);
	run(&deadline);
	CHECK_INT(calls, 2);
	CHECK_INT(oks, 2);
	CHECK_INT(external_names_pick(t, "localhost", a, on_done, NULL, &w1), 0);
	CHECK(is_loopback(a));
	CHECK_INT(external_names_pick(t, "localhost", b, on_done, NULL, &w1), 0);
	CHECK(is_loopback(b));
	CHECK(entry(t, "localhost")->q == NULL); /* fresh: no new lookup */

	/* A name that never resolves: its waiter fails, and the next request
	 * fails at once (no lookup per request while the retry delay runs). */
	calls = oks = fails = 0;
	CHECK_INT(external_names_pick(t, MISSING, a, on_done, &deadline, &w1), WEIR_EAGAIN);
	run(&deadline);
	CHECK_INT(calls, 1);
	CHECK_INT(fails, 1);
	CHECK_INT(external_names_pick(t, MISSING, a, on_done, NULL, &w1), WEIR_ENOENT);
	CHECK(entry(t, MISSING)->q == NULL);
	CHECK_INT(calls, 1);

	/* A stale answer is served while it is refreshed; when the refresh
	 * fails, the last good addresses keep serving. (The entry of localhost
	 * is renamed so that its refresh asks for a name that fails.) */
	struct external_entry *e = entry(t, "localhost");
	strcpy(e->name, "stale." MISSING);
	e->answered = loop_now(L) > EXTERNAL_REFRESH_MS ? loop_now(L) - EXTERNAL_REFRESH_MS : 1;
	CHECK_INT(external_names_pick(t, "stale." MISSING, a, on_done, NULL, &w1), 0);
	CHECK(is_loopback(a));
	CHECK(e->q != NULL);
	for (int i = 0; i < 100 && e->q; i++) {
		loop_timer_set(L, &deadline, 100);
		loop_run(L);
	}
	CHECK(e->q == NULL && e->failed);
	CHECK_INT(external_names_pick(t, "stale." MISSING, a, on_done, NULL, &w1), 0);
	CHECK(is_loopback(a));
	CHECK(e->q == NULL); /* the retry waits EXTERNAL_RETRY_MS */

	/* A cancelled wait never calls back; freeing the table cancels the
	 * lookup in flight (ASan sees no leak). */
	calls = 0;
	struct external_names *t2 = NULL;
	CHECK_INT(external_names_new(L, r, &t2), 0);
	CHECK_INT(external_names_pick(t2, "localhost", a, on_done, &deadline, &w1), WEIR_EAGAIN);
	external_wait_cancel(w1);
	loop_timer_set(L, &deadline, 300);
	loop_run(L);
	CHECK_INT(calls, 0);
	CHECK_INT(external_names_pick(t2, MISSING, a, on_done, NULL, &w1), WEIR_EAGAIN);
	external_wait_cancel(w1);
	external_names_free(t2);

	external_names_free(t);
	resolver_free(r);
	loop_free(L);
	return check_finish("external_test");
}
