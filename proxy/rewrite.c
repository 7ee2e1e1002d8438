/* proxy/rewrite.c - snippet rewrites at request time (rewrite.h). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "rewrite.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "headers.h"
#include "route_validate.h"

#define CACHE_SLOTS 64 /* compiled regexes a thread keeps */
#define CAPTURES 10    /* $0..$9 */
#define VAR_MAX 2048   /* one expanded variable */

struct slot {
	char *pattern;
	pcre2_code *code;
	uint64_t used; /* last use, for eviction */
};

struct cache {
	struct slot slots[CACHE_SLOTS];
	uint64_t clock;
	pcre2_match_data *md;
};

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static bool cache_key_ok;

static void cache_free(void *p)
{
	struct cache *c = p;
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		free(c->slots[i].pattern);
		pcre2_code_free(c->slots[i].code);
	}
	pcre2_match_data_free(c->md);
	free(c);
}

static void cache_key_init(void)
{
	cache_key_ok = pthread_key_create(&cache_key, cache_free) == 0;
}

static struct cache *thread_cache(void)
{
	pthread_once(&cache_once, cache_key_init);
	if (!cache_key_ok)
		return NULL;
	struct cache *c = pthread_getspecific(cache_key);
	if (c)
		return c;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->md = pcre2_match_data_create(CAPTURES, NULL);
	if (!c->md || pthread_setspecific(cache_key, c) != 0) {
		cache_free(c);
		return NULL;
	}
	return c;
}

/* The compiled regex for pattern: from the cache, else compiled now in
 * the least recently used slot. NULL: out of memory or (the table
 * validator lets none through) a regex that does not compile. */
static const pcre2_code *regex(struct cache *c, const char *pattern)
{
	struct slot *victim = &c->slots[0];
	c->clock++;
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		struct slot *s = &c->slots[i];
		if (s->pattern && strcmp(s->pattern, pattern) == 0) {
			s->used = c->clock;
			return s->code;
		}
		if (s->used < victim->used)
			victim = s;
	}
	pcre2_code *code = route_match_cn_compile(pattern, NULL, 0);
	char *copy = code ? strdup(pattern) : NULL;
	if (!copy) {
		pcre2_code_free(code);
		return NULL;
	}
	(void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
	free(victim->pattern);
	pcre2_code_free(victim->code);
	victim->pattern = copy;
	victim->code = code;
	victim->used = c->clock;
	return code;
}

struct out {
	char *p;
	size_t cap, len;
	bool over;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->over || n >= o->cap - o->len) {
		o->over = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

/* The replacement r with its captures (from md, for subject) and
 * variables expanded. */
static void expand(struct out *o, const char *r, pcre2_match_data *md, int rc, const char *subject,
                   const struct http_request *req, const struct http_client *client)
{
	const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
	uint32_t pairs = pcre2_get_ovector_count(md);
	while (*r && !o->over) {
		const char *d = strchr(r, '$');
		if (!d) {
			put(o, r, strlen(r));
			return;
		}
		put(o, r, (size_t)(d - r));
		if (d[1] >= '1' && d[1] <= '9') {
			uint32_t i = (uint32_t)(d[1] - '0');
			if (i < pairs && (rc == 0 || (int)i < rc) && ov[2 * i] != PCRE2_UNSET)
				put(o, subject + ov[2 * i], ov[2 * i + 1] - ov[2 * i]);
			r = d + 2;
			continue;
		}
		const char *name;
		size_t nlen, n = route_template_var(d, &name, &nlen);
		if (n == 0) {
			put(o, d, 1);
			r = d + 1;
			continue;
		}
		char val[VAR_MAX];
		int k = headers_expand_var(name, nlen, req, client, val, sizeof(val));
		if (k < 0)
			o->over = true;
		else
			put(o, val, (size_t)k);
		r = d + n;
	}
}

int rewrite_apply(const struct route_policy *pol, const struct http_request *req,
                  const struct http_client *client, char *buf, size_t cap, size_t *len, int *which)
{
	*which = -1;
	if (!pol || !pol->nrewrites)
		return 0;
	if (cap < 2)
		return WEIR_ETOOBIG;
	struct cache *c = thread_cache();
	if (!c)
		return WEIR_ENOMEM;
	for (size_t i = 0; i < pol->nrewrites; i++) {
		const struct route_rewrite *rw = &pol->rewrites[i];
		const pcre2_code *code = regex(c, rw->regex);
		if (!code)
			return WEIR_ENOMEM;
		int rc = pcre2_match(code, (PCRE2_SPTR)req->path, req->path_len, 0, 0, c->md, NULL);
		if (rc < 0)
			continue;
		struct out o = {buf, cap, 0, false};
		buf[0] = '\0';
		expand(&o, rw->replacement, c->md, rc, req->path, req, client);
		/* a target is absolute (a replacement may start with a capture) */
		if (rw->flag == ROUTE_REWRITE_BREAK && !o.over && (o.len == 0 || buf[0] != '/')) {
			if (o.len + 2 > cap) {
				o.over = true;
			} else {
				memmove(buf + 1, buf, o.len + 1);
				buf[0] = '/';
				o.len++;
			}
		}
		const char *q = memchr(req->target, '?', req->target_len);
		size_t qlen = q ? req->target_len - (size_t)(q - req->target) - 1 : 0;
		/* as nginx, the replacement as written decides (an expanded
		 * $request_uri brings its own '?') */
		size_t rlen = strlen(rw->replacement);
		bool mark = memchr(rw->replacement, '?', rlen) != NULL;
		if (mark && rw->replacement[rlen - 1] == '?') {
			if (!o.over && o.len && buf[o.len - 1] == '?')
				buf[--o.len] = '\0'; /* "...?": the request's query is dropped */
		} else if (mark) {
			if (qlen) {
				put(&o, "&", 1);
				put(&o, q + 1, qlen);
			}
		} else if (q) {
			put(&o, q, qlen + 1);
		}
		if (o.over)
			return WEIR_ETOOBIG;
		*len = o.len;
		*which = (int)i;
		return 0;
	}
	return 0;
}
