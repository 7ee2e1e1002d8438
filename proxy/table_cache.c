/* proxy/table_cache.c - content-keyed, reference-counted objects shared by
 * route table generations: one chained hash map per kind behind one lock.
 * References change only while tables are built or freed, never per
 * request, so a plain count under the lock is enough. Entries live in slabs
 * of SLAB_ENTRIES, handed out in order: the entries a load adds one after
 * the other (a shard per host, a cell per endpoint) lie side by side, so a
 * reload taking or dropping a reference to each of them reads memory in
 * order instead of missing the cache once per entry. */
#include "table_cache.h"
#include "error.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS_MIN 64
#define SLAB_ENTRIES 512

struct slab;

struct table_cache_entry {
	struct table_cache_entry *next; /* bucket chain; free: the slab's free list */
	struct slab *slab;              /* the slab it lies in */
	size_t refs;                    /* under cache_lock */
	enum table_cache_kind kind;
	unsigned char key[TABLE_CACHE_KEY_LEN];
	void *obj;
	table_cache_free_cb free_cb;
};

/* Entries e[0 .. fresh) have been handed out at least once; those of them
 * not in use are on free. A slab with a free or fresh entry is on the
 * list of open slabs; an unused one is freed. */
struct slab {
	struct slab *prev, *next; /* open slabs */
	struct table_cache_entry *free;
	size_t used, fresh;
	struct table_cache_entry e[SLAB_ENTRIES];
};

struct map {
	struct table_cache_entry **bucket;
	size_t nbuckets; /* 0 or a power of two */
	size_t count;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct map maps[TABLE_CACHE_KINDS];
static struct slab *open_slabs; /* under cache_lock */

static void slab_open(struct slab *s)
{
	s->prev = NULL;
	s->next = open_slabs;
	if (open_slabs)
		open_slabs->prev = s;
	open_slabs = s;
}

static void slab_close(struct slab *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		open_slabs = s->next;
	if (s->next)
		s->next->prev = s->prev;
}

/* Under cache_lock: an unused entry (contents undefined), or NULL on
 * out-of-memory. The newest open slab first, its free entries before its
 * fresh ones. */
static struct table_cache_entry *entry_alloc(void)
{
	struct slab *s = open_slabs;
	struct table_cache_entry *e;
	if (!s) {
		if (!(s = malloc(sizeof(*s))))
			return NULL;
		s->free = NULL;
		s->used = s->fresh = 0;
		slab_open(s);
	}
	if ((e = s->free))
		s->free = e->next;
	else
		e = &s->e[s->fresh++];
	e->slab = s;
	if (++s->used == SLAB_ENTRIES)
		slab_close(s);
	return e;
}

/* Under cache_lock: give e back to its slab. */
static void entry_release(struct table_cache_entry *e)
{
	struct slab *s = e->slab;
	if (s->used-- == SLAB_ENTRIES)
		slab_open(s);
	if (!s->used) {
		slab_close(s);
		free(s);
		return;
	}
	e->next = s->free;
	s->free = e;
}

/* SHA-256 fetched once: an implicit fetch per key costs more than hashing a
 * short key (a table load makes one key per certificate, backend and
 * endpoint). Kept for the life of the process. */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

int table_cache_key(unsigned char key[TABLE_CACHE_KEY_LEN], size_t nfields,
                    const char *const *fields)
{
	int rc = WEIR_ENOMEM;
	pthread_once(&sha256_once, sha256_fetch);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, sha256_md ? sha256_md : EVP_sha256(), NULL) != 1)
		goto out;
	for (size_t i = 0; i < nfields; i++) {
		/* NULL: length all ones, no bytes; else length then bytes. */
		uint64_t n = fields[i] ? (uint64_t)strlen(fields[i]) : UINT64_MAX;
		if (EVP_DigestUpdate(md, &n, sizeof(n)) != 1 ||
		    (fields[i] && EVP_DigestUpdate(md, fields[i], (size_t)n) != 1))
			goto out;
	}
	if (EVP_DigestFinal_ex(md, key, NULL) != 1)
		goto out;
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	return rc;
}

static size_t bucket_of(const struct map *m, const unsigned char *key)
{
	uint64_t h;
	memcpy(&h, key, sizeof(h)); /* a digest: its bytes are already uniform */
	return (size_t)h & (m->nbuckets - 1);
}

/* Under cache_lock. */
static struct table_cache_entry *lookup(struct map *m, const unsigned char *key)
{
	if (!m->nbuckets)
		return NULL;
	for (struct table_cache_entry *e = m->bucket[bucket_of(m, key)]; e; e = e->next)
		if (memcmp(e->key, key, TABLE_CACHE_KEY_LEN) == 0)
			return e;
	return NULL;
}

/* Under cache_lock: double the buckets when they hold more than one entry
 * each on average. False on out-of-memory (the map stays usable). */
static bool grow(struct map *m)
{
	if (m->nbuckets && m->count < m->nbuckets)
		return true;
	size_t n = m->nbuckets ? m->nbuckets * 2 : BUCKETS_MIN;
	struct table_cache_entry **b = calloc(n, sizeof(*b));
	if (!b)
		return m->nbuckets != 0;
	struct map nm = {b, n, m->count};
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct table_cache_entry *e = m->bucket[i], *next;
		for (; e; e = next) {
			next = e->next;
			size_t k = bucket_of(&nm, e->key);
			e->next = b[k];
			b[k] = e;
		}
	}
	free(m->bucket);
	*m = nm;
	return true;
}

struct table_cache_entry *table_cache_find(enum table_cache_kind kind,
                                           const unsigned char key[TABLE_CACHE_KEY_LEN])
{
	pthread_mutex_lock(&cache_lock);
	struct table_cache_entry *e = lookup(&maps[kind], key);
	if (e)
		e->refs++;
	pthread_mutex_unlock(&cache_lock);
	return e;
}

struct table_cache_entry *table_cache_add(enum table_cache_kind kind,
                                          const unsigned char key[TABLE_CACHE_KEY_LEN], void *obj,
                                          table_cache_free_cb free_cb)
{
	struct table_cache_entry *e;
	struct map *m = &maps[kind];
	pthread_mutex_lock(&cache_lock);
	if ((e = lookup(m, key))) {
		e->refs++; /* another thread added key first */
	} else if ((e = entry_alloc())) {
		if (grow(m)) {
			e->refs = 1;
			e->kind = kind;
			memcpy(e->key, key, TABLE_CACHE_KEY_LEN);
			e->obj = obj;
			e->free_cb = free_cb;
			size_t k = bucket_of(m, key);
			e->next = m->bucket[k];
			m->bucket[k] = e;
			m->count++;
			obj = NULL; /* the entry owns it now */
		} else {
			entry_release(e);
			e = NULL;
		}
	}
	pthread_mutex_unlock(&cache_lock);
	if (obj)
		free_cb(obj);
	return e;
}

void *table_cache_object(const struct table_cache_entry *e)
{
	return e->obj;
}

/* Under cache_lock: unlink e from its map. */
static void unlink_entry(struct table_cache_entry *e)
{
	struct map *m = &maps[e->kind];
	struct table_cache_entry **p = &m->bucket[bucket_of(m, e->key)];
	while (*p != e)
		p = &(*p)->next;
	*p = e->next;
	m->count--;
}

void table_cache_put(struct table_cache_entry *const *e, size_t n)
{
	struct table_cache_entry *dead = NULL;
	if (!n)
		return;
	pthread_mutex_lock(&cache_lock);
	for (size_t i = 0; i < n; i++) {
		if (!e[i] || --e[i]->refs > 0)
			continue;
		unlink_entry(e[i]);
		e[i]->next = dead;
		dead = e[i];
	}
	pthread_mutex_unlock(&cache_lock);
	if (!dead)
		return;
	/* Freeing a TLS context takes a while: not under the lock. */
	for (struct table_cache_entry *d = dead; d; d = d->next)
		d->free_cb(d->obj);
	pthread_mutex_lock(&cache_lock);
	while (dead) {
		struct table_cache_entry *next = dead->next;
		entry_release(dead);
		dead = next;
	}
	pthread_mutex_unlock(&cache_lock);
}

void table_cache_get(struct table_cache_entry *const *e, size_t n)
{
	if (!n)
		return;
	pthread_mutex_lock(&cache_lock);
	for (size_t i = 0; i < n; i++)
		if (e[i])
			e[i]->refs++;
	pthread_mutex_unlock(&cache_lock);
}

size_t table_cache_count(enum table_cache_kind kind)
{
	pthread_mutex_lock(&cache_lock);
	size_t n = maps[kind].count;
	pthread_mutex_unlock(&cache_lock);
	return n;
}
