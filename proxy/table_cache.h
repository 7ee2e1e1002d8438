/* proxy/table_cache.h - compiled objects that route table generations share,
 * found by a digest of what they are compiled from: server TLS contexts
 * (certificate, chain and key), client CA stores, backend TLS client
 * contexts, round-robin state. A reload
 * that keeps a certificate takes the context the previous table built
 * instead of decoding the PEM again; an object is freed when the last table
 * holding it is freed. Only table building and freeing touch the cache (under
 * one lock); the request path reads the objects through its table. */
#ifndef WEIR_PROXY_TABLE_CACHE_H
#define WEIR_PROXY_TABLE_CACHE_H

#include <stddef.h>

#define TABLE_CACHE_KEY_LEN 32 /* a SHA-256 digest */

/* Separate name spaces: equal keys of two kinds are two entries. */
enum table_cache_kind {
	TABLE_CACHE_SERVER_CTX,  /* SSL_CTX of a served certificate */
	TABLE_CACHE_CLIENT_CA,   /* CA store (+ names) for client certificates */
	TABLE_CACHE_BACKEND_TLS, /* client SSL_CTX of a backend TLS profile */
	TABLE_CACHE_BALANCER,    /* round-robin state of a backend or an endpoint */
	TABLE_CACHE_HOST_SHARD,  /* a parsed, compiled host shard (key: its id) */
	TABLE_CACHE_BACKEND_SHARD, /* a parsed backend shard (key: its id) */
	TABLE_CACHE_CERT_SHARD,  /* a certificate shard: name + server context (key: its id) */
	TABLE_CACHE_KINDS
};

typedef void (*table_cache_free_cb)(void *obj);

struct table_cache_entry; /* opaque */

/* The key of a list of fields: SHA-256 over each field's length and bytes
 * (NULL differs from ""), so no two different lists share a key. Fills key;
 * returns 0, or WEIR_ENOMEM. */
int table_cache_key(unsigned char key[TABLE_CACHE_KEY_LEN], size_t nfields,
                    const char *const *fields);

/* The entry of kind holding key with one more reference for the caller, or
 * NULL when there is none. Thread-safe. */
struct table_cache_entry *table_cache_find(enum table_cache_kind kind,
                                           const unsigned char key[TABLE_CACHE_KEY_LEN]);

/* Add obj under key with one reference for the caller. Takes ownership of
 * obj in all cases: when another thread added key first, obj is freed with
 * free_cb and that entry is returned (referenced); on out-of-memory obj is
 * freed and NULL returned. free_cb runs once, when the last reference goes.
 * Thread-safe. */
struct table_cache_entry *table_cache_add(enum table_cache_kind kind,
                                          const unsigned char key[TABLE_CACHE_KEY_LEN], void *obj,
                                          table_cache_free_cb free_cb);

/* The object of e; borrowed while the caller holds its reference. */
void *table_cache_object(const struct table_cache_entry *e);

/* Drop one reference of each of the n entries (NULL ones skipped, e may be
 * NULL when n is 0); an entry left with none leaves the cache and its object
 * is freed. One lock for all. Thread-safe. */
void table_cache_put(struct table_cache_entry *const *e, size_t n);

/* Take one more reference of each of the n entries (NULL ones skipped; e
 * may be NULL when n is 0), which the caller already holds a reference of
 * (directly or through a live table). One lock for all. Thread-safe. */
void table_cache_get(struct table_cache_entry *const *e, size_t n);

/* Number of entries of kind (tests, metrics). Thread-safe. */
size_t table_cache_count(enum table_cache_kind kind);

#endif
