/* proxy/spare.h - a worker's freed objects of one kind, kept for the next
 * ones. The per-request structs of the data path (a request's exchange, an
 * HTTP/2 stream) are several KiB: glibc serves them from its shared heap
 * (its per-thread cache stops at 1 KiB), where each one costs a search of
 * the bins and splits the chunks the small allocations then have to merge
 * again. A worker that gives them back here takes the same memory again on
 * its next request, without a lock or a search. Not in sanitized builds:
 * there a freed object must be freed, so a late use is caught. */
#ifndef WEIR_PROXY_SPARE_H
#define WEIR_PROXY_SPARE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "idle.h"

#ifndef SPARE_KEEP /* a unit test may define it to 1 */
#if defined(__SANITIZE_ADDRESS__)
#define SPARE_KEEP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define SPARE_KEEP 0
#endif
#endif
#endif
#ifndef SPARE_KEEP
#define SPARE_KEEP 1
#endif

/* How long a spare must go without a take before spare_trim lets the
 * objects over idle_max go. */
#define SPARE_IDLE_MS 5000u

/* Caller storage, one thread's: zero it, set max (objects kept at most)
 * and, for a max sized for bursts, idle_max (kept at most once the burst
 * is over, see spare_trim; 0: max). */
struct spare {
	void *head; /* freed objects, each holding the next one's address first */
	size_t n, max, idle_max;
	struct idle_watch idle; /* uses: objects taken */
};

static inline void *spare_pop(struct spare *s)
{
	void *p = s->head;
	if (p) {
		s->head = *(void **)p;
		s->n--;
	}
	return p;
}

/* A kept object (its contents are whatever its last user left), or NULL:
 * the caller allocates one. */
static inline void *spare_take(struct spare *s)
{
	void *p = spare_pop(s);
	if (p)
		s->idle.uses++;
	return p;
}

/* Takes ownership of p (at least a pointer in size; NULL is fine): kept,
 * or freed when max are kept already. */
static inline void spare_give(struct spare *s, void *p)
{
	if (!p)
		return;
	if (!SPARE_KEEP || s->n >= s->max) {
		free(p);
		return;
	}
	*(void **)p = s->head;
	s->head = p;
	s->n++;
}

/* Call from the thread's periodic timer, now_ms its monotonic clock: once
 * nothing has been taken for SPARE_IDLE_MS, the objects over idle_max are
 * freed, so what a burst left does not stay with an idle worker. */
static inline void spare_trim(struct spare *s, uint64_t now_ms)
{
	if (!idle_for(&s->idle, now_ms, SPARE_IDLE_MS))
		return;
	while (s->idle_max && s->n > s->idle_max)
		free(spare_pop(s));
}

/* Free every kept object; s stays usable. */
static inline void spare_cleanup(struct spare *s)
{
	void *p;
	while ((p = spare_pop(s)))
		free(p);
}

#endif
