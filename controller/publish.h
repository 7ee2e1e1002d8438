/* controller/publish.h - write the route table into the publish directory
 * atomically, only when it changed, with a generation that grows by one per
 * write. Version 2 (the default) writes a sharded table: one content-addressed
 * file per host and per certificate under shards/, written before the index
 * routes.json that names them (temporary file, fsync, rename, fsync of the
 * directory); an unchanged host keeps its shard. Version 1 writes the whole
 * table into routes.json. */
#ifndef WEIR_CONTROLLER_PUBLISH_H
#define WEIR_CONTROLLER_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route_table.h"

struct publisher;

enum publish_format {
	PUBLISH_V2 = 0, /* index + shards (docs/route-table.md "Sharded tables") */
	PUBLISH_V1 = 1  /* one routes.json */
};

/* A shard file is removed once none of the last PUBLISH_KEEP_INDEXES
 * indexes names it and it is at least PUBLISH_SHARD_GRACE_S seconds old (a
 * proxy may still be loading an index one or two generations old). */
#define PUBLISH_KEEP_INDEXES 3
#define PUBLISH_SHARD_GRACE_S 10

/* Open dir (created when missing, one level) for format. The generation
 * continues from the existing ROUTE_TABLE_FILE, if it holds a readable
 * "generation"; else it starts at 0 (the first write is 1). Shard files the
 * existing index names are kept; the others are removed by a later publish
 * (as garbage). dir is copied. Returns 0 and *out (caller frees with
 * publisher_free), or WEIR_EIO. */
int publisher_new_format(const char *dir, enum publish_format format, struct publisher **out);

/* Called by publisher_open for each certificate shard of the index on disk
 * whose bytes hash to its name (so a publisher wrote it, for a pair that
 * passed route_validate_cert), with the certificate read from it (borrowed
 * for the call; digest set, see route_cert_digest). */
typedef void (*publisher_cert_cb)(void *arg, const struct route_cert *cert);

/* publisher_new_format, and cert (NULL: none) called with arg as above while
 * the certificate shards are read to take over their slots: a restart reads
 * them once for both (cert_seed.h). cert is not called after this returns. */
int publisher_open(const char *dir, enum publish_format format, publisher_cert_cb cert, void *arg,
                   struct publisher **out);

/* publisher_new_format(dir, PUBLISH_V2, out). */
int publisher_new(const char *dir, struct publisher **out);
void publisher_free(struct publisher *p);

/* Publish t (borrowed; its generation field is overwritten). When the
 * serialized text equals what is on disk, nothing is written and *written is
 * false. Returns 0, WEIR_ENOMEM, WEIR_ETOOBIG (a file would be over
 * ROUTE_TABLE_MAX_BYTES, which the proxy refuses) or WEIR_EIO; on failure the
 * previous index stays in place. */
int publisher_publish(struct publisher *p, struct route_table *t, bool *written);

/* publisher_publish for a table whose hosts are those given to the last
 * publisher_publish(_changed) except the ones named in changed (sorted by
 * strcmp; NULL with nchanged 0: none, e.g. only endpoints changed). A host
 * not named whose name the last index had is taken to be that same host:
 * its shard is named again without serializing it (unless slots were
 * renumbered). Backends, certificates and the rest are compared in full. */
int publisher_publish_changed(struct publisher *p, struct route_table *t, char *const *changed,
                              size_t nchanged, bool *written);

/* publisher_publish_changed with no host changed, for an endpoint change:
 * t has the backends, certificates, CAs and backend TLS profiles of the
 * table given to the last publish, in the same order, and only the
 * endpoints of t->backends[backends[i]] (n indexes) may differ. The other
 * backends are then neither compared nor serialized, and no slot is
 * assigned again. When the publisher cannot rely on its last publish (none
 * yet, or it failed, or the counts differ) this is a publish_changed. */
int publisher_publish_endpoints(struct publisher *p, struct route_table *t, const size_t *backends,
                                size_t n, bool *written);

/* After a publish of t that succeeded, in the v2 format: every certificate
 * of t is in a shard on disk, which the publisher knows by the pair's
 * digest, so t's copies of the texts are freed (cert_pem and key_pem of
 * each of t->certs set to NULL, name and digest kept). A later publish of
 * t that would have to write one of them again (its slot moved) fails with
 * WEIR_EAGAIN, changing nothing the proxy reads: compile in full then. A
 * no-op in the v1 format, which writes every certificate each time. */
void publisher_release_pems(const struct publisher *p, struct route_table *t);

/* publisher_publish_changed for a change of hosts only: t has the backends
 * (endpoints included), certificates, CAs and backend TLS profiles of the
 * table given to the last publish, in the same order. No slot is assigned
 * again and no backend compared or serialized; when the publisher cannot
 * rely on its last publish this is a publish_changed. */
int publisher_publish_hosts(struct publisher *p, struct route_table *t, char *const *changed,
                            size_t nchanged, bool *written);

/* Generation of the file on disk (0: none yet). */
uint64_t publisher_generation(const struct publisher *p);

/* What the last publisher_publish did (tests, logs). */
struct publish_stats {
	size_t host_shards;     /* host shards the index names */
	size_t backend_shards;  /* backend slots in use */
	size_t cert_shards;     /* certificate slots in use */
	size_t shards_written;  /* shard files written (the others were on disk) */
	size_t lists_written;   /* id list files written (not in shards_written) */
	size_t shards_removed;  /* garbage shard files removed */
	bool compacted;         /* slots were renumbered (every host shard rewritten) */
	size_t hosts_reused;    /* host shards named again unserialized (publish_changed) */
	size_t backends_reused; /* backend shards likewise */
};
const struct publish_stats *publisher_stats(const struct publisher *p);

/* Time source for the garbage collection's age check (tests); NULL: time(). */
typedef int64_t (*publisher_clock_cb)(void);
void publisher_set_clock(struct publisher *p, publisher_clock_cb clock);

/* An array of at least min ids (0: never) is written as id lists of at
 * most max ids each (0: the default); tests use small ones. */
void publisher_set_lists(struct publisher *p, size_t min, size_t max);

#endif
