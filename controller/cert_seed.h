/* controller/cert_seed.h - at start, fill compile's cache of certificate and
 * key pairs known to load (compile_remember_good_digest) from the certificate
 * shards of the version 2 table a previous run published, so a restarted
 * controller does not ask OpenSSL again about each pair it had already
 * published (about half a millisecond a pair: 5 s at 10,000 distinct pairs).
 * The publisher reads those shards anyway to keep their slots
 * (publisher_open): it hands each pair it reads here, so they are read and
 * parsed once.
 *
 * Trusting those files is sound because the controller writes a certificate
 * shard only for a pair that passed route_validate_cert, a shard's name is
 * the SHA-256 of its bytes (checked by the publisher before it hands a pair
 * on: a torn or altered file is skipped), and the proxy validates every pair
 * again when it loads a table. The verdict depends on the two texts and the
 * OpenSSL in use: the chart's publish directory is an emptyDir, kept across
 * container restarts, not across a new pod (a new image). A pair not seeded
 * costs one more validation, nothing else. */
#ifndef WEIR_CONTROLLER_CERT_SEED_H
#define WEIR_CONTROLLER_CERT_SEED_H

#include "route_table.h"

/* A publisher_cert_cb (publish.h): remember cert's pair (borrowed for the
 * call) as one that loads. arg: a size_t counting the pairs remembered, or
 * NULL. */
void cert_seed_pair(void *arg, const struct route_cert *cert);

#endif
