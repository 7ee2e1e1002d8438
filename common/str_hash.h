/* common/str_hash.h - FNV-1a of a NUL-terminated string, for the hash
 * tables of the controller (not a digest: anyone can make it collide). */
#ifndef WEIR_COMMON_STR_HASH_H
#define WEIR_COMMON_STR_HASH_H

#include <stdint.h>

static inline uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

#endif
