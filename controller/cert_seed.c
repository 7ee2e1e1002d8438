/* controller/cert_seed.c - seed the good-pairs cache from the certificate
 * shards the publisher takes over at start (see cert_seed.h). */
#include "cert_seed.h"

#include <stddef.h>

#include "compile.h"

void cert_seed_pair(void *arg, const struct route_cert *cert)
{
	size_t *seeded = arg;
	compile_remember_good_pair(cert->cert_pem, cert->key_pem);
	if (seeded)
		(*seeded)++;
}
