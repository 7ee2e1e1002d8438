/* tests/unit/proxy/spare_test.c - a worker's kept objects: up to max while
 * busy, and once nothing has been taken for SPARE_IDLE_MS, spare_trim lets
 * all over idle_max go. Sanitized builds keep nothing, so this test turns
 * keeping on. */
#define SPARE_KEEP 1
#include "check.h"
#include "proxy/spare.h"

static void give_n(struct spare *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		spare_give(s, malloc(64));
}

static void test_burst_then_idle(void)
{
	struct spare s = {0};
	s.max = 1024;
	s.idle_max = 128;

	/* a burst: up to max kept, the rest freed */
	give_n(&s, 1500);
	CHECK_INT(s.n, 1024);

	/* a take is seen by the next trim; nothing goes until SPARE_IDLE_MS
	 * after it */
	void *p = spare_take(&s);
	CHECK(p != NULL);
	CHECK_INT(s.n, 1023);
	spare_trim(&s, 1000);
	CHECK_INT(s.n, 1023);
	spare_trim(&s, 1000 + SPARE_IDLE_MS - 1);
	CHECK_INT(s.n, 1023);

	/* a take in between restarts the wait */
	spare_give(&s, p);
	p = spare_take(&s);
	spare_trim(&s, 1000 + SPARE_IDLE_MS);
	CHECK_INT(s.n, 1023);
	spare_trim(&s, 1000 + 2 * SPARE_IDLE_MS - 1);
	CHECK_INT(s.n, 1023);

	/* idle long enough: down to idle_max */
	spare_trim(&s, 1000 + 2 * SPARE_IDLE_MS);
	CHECK_INT(s.n, 128);
	spare_trim(&s, 1000 + 3 * SPARE_IDLE_MS);
	CHECK_INT(s.n, 128);

	/* still a spare */
	spare_give(&s, p);
	CHECK_INT(s.n, 129);
	CHECK(spare_take(&s) == p);
	free(p);

	/* idle_max 0: no trim */
	struct spare t = {0};
	t.max = 16;
	give_n(&t, 16);
	spare_trim(&t, 0);
	spare_trim(&t, 10 * SPARE_IDLE_MS);
	CHECK_INT(t.n, 16);

	spare_cleanup(&s);
	spare_cleanup(&t);
	CHECK_INT(s.n, 0);
	CHECK_INT(t.n, 0);
}

int main(void)
{
	test_burst_then_idle();
	return check_finish("spare_test");
}
