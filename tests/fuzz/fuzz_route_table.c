/* tests/fuzz/fuzz_route_table.c - route_table_parse (common/route_table.c),
 * the proxy's reader of routes.json. A table that parses must serialize, and
 * the serialized text must parse again to a table that serializes to the same
 * bytes (the controller writes what the proxy reads). The same input also
 * goes through route_table_parse_any as a version 2 index (its id arrays are
 * read by a scanner of their own): ids it returns are shard ids or holes. */
#include <string.h>

#include "fuzz_common.h"
#include "route_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct route_table *t = NULL, *t2 = NULL;
	char *s1 = NULL, *s2 = NULL;
	size_t l1 = 0, l2 = 0;
	char err[256];

	struct route_index *ix = NULL;
	memset(err, 'x', sizeof(err));
	int rc = route_table_parse_any((const char *)data, size, &t, &ix, err, sizeof(err));
	if (rc != 0) {
		FUZZ_CHECK(rc < 0 && t == NULL && ix == NULL);
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	}
	for (size_t i = 0; ix && i < ix->nhosts; i++)
		FUZZ_CHECK(route_shard_id_valid(ix->hosts[i]));
	for (size_t i = 0; ix && i < ix->nbackends; i++)
		FUZZ_CHECK(!ix->backends[i][0] || route_shard_id_valid(ix->backends[i]));
	for (size_t i = 0; ix && i < ix->ncerts; i++)
		FUZZ_CHECK(!ix->certs[i][0] || route_shard_id_valid(ix->certs[i]));
	FUZZ_CHECK(!ix || (t && t->nbackends == ix->nbackends && t->ncerts == ix->ncerts));
	route_index_free(ix);
	route_table_free(t);
	t = NULL;

	memset(err, 'x', sizeof(err));
	rc = route_table_parse((const char *)data, size, &t, err, sizeof(err));
	if (rc != 0) {
		FUZZ_CHECK(rc < 0 && t == NULL);
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		return 0;
	}
	FUZZ_CHECK(t != NULL);
	FUZZ_CHECK(route_table_serialize(t, &s1, &l1) == 0);
	FUZZ_CHECK(strlen(s1) == l1);
	rc = route_table_parse(s1, l1, &t2, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "serialized table refused: %s\n%s\n", err, s1);
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(route_table_serialize(t2, &s2, &l2) == 0);
	if (l1 != l2 || memcmp(s1, s2, l1) != 0)
		fprintf(stderr, "first:\n%s\nsecond:\n%s\n", s1, s2);
	FUZZ_CHECK(l1 == l2 && memcmp(s1, s2, l1) == 0);
	free(s1);
	free(s2);
	route_table_free(t);
	route_table_free(t2);
	return 0;
}
