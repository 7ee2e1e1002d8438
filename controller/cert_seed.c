/* controller/cert_seed.c - seed the good-pairs cache from the certificate
 * shards the publisher takes over at start (see cert_seed.h). */
#include "cert_seed.h"

#include <stddef.h>

#include "compile.h"

void cert_seed_pair(void *arg, const struct route_cert *cert)
{
	size_t *seeded = arg;
	/* The publisher has hashed the pair already (publisher_cert_cb). */
	compile_remember_good_digest(cert->digest);
	if (seeded)
		(*seeded)++;
}
