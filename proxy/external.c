/* proxy/external.c - per-worker addresses of ExternalName backends. */
#include "external.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"

#define NAME_MAX_LEN 254u /* a host name and its final dot */

struct external_wait {
	struct external_wait *next, *prev;
	struct external_entry *e;
	external_cb cb;
	void *data;
};

struct external_entry {
	struct external_entry *next, *prev;
	struct external_names *t;
	char name[NAME_MAX_LEN + 1];
	char addrs[RESOLVE_ADDRS_MAX][RESOLVE_ADDR_MAX];
	size_t naddrs;
	uint32_t turn;
	uint64_t answered;  /* loop_now of the last answer; 0: none yet */
	bool failed;        /* the last lookup failed */
	bool firing;        /* its waiters are being called: keep it */
	uint64_t last_used; /* for eviction */
	struct resolve_query *q;
	struct external_wait *waiters;
};

struct external_names {
	struct loop *loop;
	struct resolver *r;
	struct external_entry *entries;
	size_t n;
};

int external_names_new(struct loop *loop, struct resolver *r, struct external_names **out)
{
	struct external_names *t = calloc(1, sizeof(*t));
	if (!t)
		return WEIR_ENOMEM;
	t->loop = loop;
	t->r = r;
	*out = t;
	return 0;
}

static void entry_free(struct external_entry *e)
{
	struct external_names *t = e->t;
	resolve_cancel(e->q);
	if (e->prev)
		e->prev->next = e->next;
	else
		t->entries = e->next;
	if (e->next)
		e->next->prev = e->prev;
	t->n--;
	free(e);
}

void external_names_free(struct external_names *t)
{
	if (!t)
		return;
	while (t->entries)
		entry_free(t->entries);
	free(t);
}

static void on_answer(void *data, int rc, const char (*addrs)[RESOLVE_ADDR_MAX], size_t n)
{
	struct external_entry *e = data;
	e->q = NULL; /* freed by the resolver after this call */
	e->answered = loop_now(e->t->loop);
	e->failed = rc != 0;
	if (rc == 0) {
		memcpy(e->addrs, addrs, n * sizeof(*addrs));
		e->naddrs = n;
	} else {
		log_warn("proxy.external", "ExternalName %s did not resolve; %s", e->name,
		         e->naddrs ? "keeping the last addresses" : "requests get 502");
	}
	int result = e->naddrs ? 0 : WEIR_ENOENT;
	/* A callback may pick again (this entry is fresh now) or cancel
	 * another wait; firing keeps the entry from eviction meanwhile. */
	e->firing = true;
	struct external_wait *w;
	while ((w = e->waiters) != NULL) {
		e->waiters = w->next;
		if (w->next)
			w->next->prev = NULL;
		external_cb cb = w->cb;
		void *cb_data = w->data;
		free(w);
		cb(cb_data, result);
	}
	e->firing = false;
}

/* The entry of name, made when missing (evicting the least recently used
 * idle entry at EXTERNAL_NAMES_MAX), or NULL when out of memory or every
 * entry is busy. */
static struct external_entry *entry_of(struct external_names *t, const char *name)
{
	struct external_entry *e, *victim = NULL;
	for (e = t->entries; e; e = e->next) {
		if (strcmp(e->name, name) == 0)
			return e;
		if (!e->q && !e->waiters && !e->firing &&
		    (!victim || e->last_used < victim->last_used))
			victim = e;
	}
	if (t->n >= EXTERNAL_NAMES_MAX) {
		if (!victim)
			return NULL;
		entry_free(victim);
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->t = t;
	strcpy(e->name, name);
	e->next = t->entries;
	if (t->entries)
		t->entries->prev = e;
	t->entries = e;
	t->n++;
	return e;
}

int external_names_pick(struct external_names *t, const char *name, char *address, external_cb cb,
                        void *data, struct external_wait **out)
{
	if (strlen(name) > NAME_MAX_LEN)
		return WEIR_ENOENT;
	struct external_entry *e = entry_of(t, name);
	if (!e)
		return WEIR_ENOMEM;
	uint64_t now = loop_now(t->loop);
	e->last_used = now;
	uint64_t every = e->failed ? EXTERNAL_RETRY_MS : EXTERNAL_REFRESH_MS;
	if (!e->q && (!e->answered || now - e->answered >= every)) {
		int rc = resolver_lookup_all(t->r, e->name, on_answer, e, &e->q);
		if (rc != WEIR_EAGAIN) {
			e->q = NULL;
			e->answered = now;
			e->failed = true;
			log_warn("proxy.external", "ExternalName %s: lookup could not start (%s)",
			         e->name, weir_strerror(rc));
		}
	}
	if (e->naddrs) {
		strcpy(address, e->addrs[e->turn++ % e->naddrs]);
		return 0;
	}
	if (!e->q)
		return WEIR_ENOENT;
	struct external_wait *w = calloc(1, sizeof(*w));
	if (!w)
		return WEIR_ENOMEM;
	w->e = e;
	w->cb = cb;
	w->data = data;
	w->next = e->waiters;
	if (e->waiters)
		e->waiters->prev = w;
	e->waiters = w;
	*out = w;
	return WEIR_EAGAIN;
}

void external_wait_cancel(struct external_wait *w)
{
	if (!w)
		return;
	if (w->prev)
		w->prev->next = w->next;
	else
		w->e->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w);
}
