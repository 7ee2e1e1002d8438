/* tests/unit/proxy/resolve_test.c - the worker resolver on a real loop:
 * "localhost" (from /etc/hosts, no network) resolves asynchronously, the
 * second lookup is a cache hit, and a cancelled lookup never calls back. */
#include <arpa/inet.h>
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "proxy/loop.h"
#include "proxy/resolve.h"

static struct loop *L;
static int calls;
static int last_rc = 99;
static char last_address[RESOLVE_ADDR_MAX];

static void on_done(void *data, int rc, const char *address)
{
	calls++;
	last_rc = rc;
	snprintf(last_address, sizeof(last_address), "%s", address ? address : "");
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

int main(void)
{
	struct resolver *r = NULL;
	struct resolve_query *q = NULL;
	struct loop_timer deadline;
	char address[RESOLVE_ADDR_MAX] = "";
	CHECK_INT(loop_new(NULL, NULL, &L), 0);
	CHECK_INT(resolver_new(L, &r), 0);
	loop_timer_init(&deadline, on_deadline, NULL);

	/* A miss: answered later from the loop, never inside the call. */
	CHECK_INT(resolver_lookup(r, "localhost", 9, on_done, NULL, address, &q), WEIR_EAGAIN);
	CHECK_INT(calls, 0);
	loop_timer_set(L, &deadline, 5000);
	CHECK_INT(loop_run(L), 0);
	loop_timer_cancel(L, &deadline);
	CHECK_INT(calls, 1);
	CHECK_INT(last_rc, 0);
	CHECK(is_loopback(last_address));

	/* A hit: the same address at once, no callback. */
	address[0] = '\0';
	CHECK_INT(resolver_lookup(r, "localhost", 9, on_done, NULL, address, &q), 0);
	CHECK_STR(address, last_address);
	CHECK_INT(calls, 1);

	/* Cancelled (on a fresh resolver, so not from the cache): the callback
	 * never fires, whether glibc had started the lookup or not (and nothing
	 * leaks, see ASan). */
	struct resolver *r2 = NULL;
	CHECK_INT(resolver_new(L, &r2), 0);
	CHECK_INT(resolver_lookup(r2, "localhost", 9, on_done, NULL, address, &q), WEIR_EAGAIN);
	resolve_cancel(q);
	loop_timer_set(L, &deadline, 300);
	CHECK_INT(loop_run(L), 0);
	CHECK_INT(calls, 1);

	/* Names that cannot be looked up. */
	CHECK_INT(resolver_lookup(r, "", 0, on_done, NULL, address, &q), WEIR_EINVAL);
	char longname[300];
	memset(longname, 'a', sizeof(longname));
	CHECK_INT(resolver_lookup(r, longname, sizeof(longname), on_done, NULL, address, &q),
	          WEIR_EINVAL);

	resolver_free(r2);
	resolver_free(r);
	loop_free(L);
	return check_finish("resolve_test");
}
