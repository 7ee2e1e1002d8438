/* controller/cert_seed.h - at start, fill compile's cache of certificate and
 * key pairs known to load (compile_remember_good_pair) from the certificate
 * shards of the version 2 table a previous run published, so a restarted
 * controller does not ask OpenSSL again about each pair it had already
 * published (about half a millisecond a pair: 5 s at 10,000 distinct pairs).
 *
 * Trusting those files is sound because the controller writes a certificate
 * shard only for a pair that passed route_validate_cert, a shard's name is
 * the SHA-256 of its bytes (checked here: a torn or altered file is skipped),
 * and the proxy validates every pair again when it loads a table. The
 * verdict depends on the two texts and the OpenSSL in use: the chart's
 * publish directory is an emptyDir, kept across container restarts, not
 * across a new pod (a new image). A pair not seeded costs one more
 * validation, nothing else. */
#ifndef WEIR_CONTROLLER_CERT_SEED_H
#define WEIR_CONTROLLER_CERT_SEED_H

#include <stddef.h>

/* Read dir/ROUTE_TABLE_FILE (dir borrowed for the call) and, when it is a
 * version 2 index, remember as good the pair of every certificate shard it
 * names whose bytes hash to its id and parse. Shards that cannot be read,
 * do not match or do not parse are skipped (debug log). Returns 0 and
 * *seeded (may be NULL) the number of pairs remembered; else *seeded is 0
 * and the return is WEIR_ENOENT (no index), WEIR_EVERSION (a version 1
 * table: nothing to seed from) or why the index could not be read or
 * parsed (WEIR_EIO, WEIR_ETOOBIG, route_table_parse_any's codes). */
int cert_seed_from_dir(const char *dir, size_t *seeded);

#endif
