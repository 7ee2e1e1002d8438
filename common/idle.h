/* common/idle.h - has a use counter stood still for a while? For caches a
 * thread trims from its periodic timer once a burst is over (the buffer
 * block cache, the proxy's spare lists). */
#ifndef WEIR_COMMON_IDLE_H
#define WEIR_COMMON_IDLE_H

#include <stdbool.h>
#include <stdint.h>

/* Caller storage, zeroed. */
struct idle_watch {
	uint64_t uses;      /* the owner's count of uses, ever (it adds to it) */
	uint64_t uses_seen; /* uses at the last idle_for that saw them change */
	uint64_t since_ms;  /* that call's clock */
};

/* Whether no use was counted for at least ms, as seen by calls with the
 * thread's monotonic clock now_ms: a call that finds uses changed starts
 * the wait again (false). */
static inline bool idle_for(struct idle_watch *w, uint64_t now_ms, uint64_t ms)
{
	if (w->uses != w->uses_seen) {
		w->uses_seen = w->uses;
		w->since_ms = now_ms;
		return false;
	}
	return now_ms - w->since_ms >= ms;
}

#endif
