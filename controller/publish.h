/* controller/publish.h - write the route table into the publish directory
 * atomically (temporary file, fsync, rename, fsync of the directory), only
 * when it changed, with a generation that grows by one per write. */
#ifndef WEIR_CONTROLLER_PUBLISH_H
#define WEIR_CONTROLLER_PUBLISH_H

#include <stdbool.h>
#include <stdint.h>

#include "route_table.h"

struct publisher;

/* Open dir (created when missing, one level). The generation continues from
 * the existing ROUTE_TABLE_FILE, if it holds a readable "generation"; else it
 * starts at 0 (the first write is 1). dir is copied. Returns 0 and *out
 * (caller frees with publisher_free), or WEIR_EIO. */
int publisher_new(const char *dir, struct publisher **out);
void publisher_free(struct publisher *p);

/* Publish t (borrowed; its generation field is overwritten). When the
 * serialized text equals what is on disk, nothing is written and *written is
 * false. Returns 0, WEIR_ENOMEM, WEIR_ETOOBIG (the text is over
 * ROUTE_TABLE_MAX_BYTES, which the proxy refuses) or WEIR_EIO; on failure the
 * previous file stays. */
int publisher_publish(struct publisher *p, struct route_table *t, bool *written);

/* Generation of the file on disk (0: none yet). */
uint64_t publisher_generation(const struct publisher *p);

#endif
