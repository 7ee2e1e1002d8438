/* tests/fuzz/fuzz_route_table.c - route_table_parse (common/route_table.c),
 * the proxy's reader of routes.json. A table that parses must serialize, and
 * the serialized text must parse again to a table that serializes to the same
 * bytes (the controller writes what the proxy reads). The same input also
 * goes through route_table_parse_any as a version 2 index (its id arrays are
 * read by a scanner of their own): ids it returns are shard ids or holes.
 * Then as an index whose id lists (host_lists, ...) are all read as the
 * bytes after the input's first NUL (the index is the bytes before it):
 * the lists' ids add up to the arrays. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "route_table.h"

struct lists_arg {
	const char *text;
	size_t len;
};

static int read_lists(void *arg, int kind, const char *id, char **text, size_t *len,
                      char *const **ids, size_t *n, char *err, size_t errlen)
{
	const struct lists_arg *a = arg;
	(void)kind;
	(void)id;
	(void)ids;
	(void)n;
	if (!a->text) {
		snprintf(err, errlen, "no list");
		return -5; /* an error code as a reader gives one */
	}
	*text = malloc(a->len + 1);
	if (!*text)
		return -12;
	memcpy(*text, a->text, a->len);
	(*text)[a->len] = '\0';
	*len = a->len;
	return 0;
}

static void check_lists(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t ilen = nul ? (size_t)(nul - data) : size;
	struct lists_arg a = {nul ? (const char *)nul + 1 : NULL, nul ? size - ilen - 1 : 0};
	struct route_list_reader r = {read_lists, &a};
	struct route_table *t = NULL;
	struct route_index *ix = NULL;
	char err[256];
	memset(err, 'x', sizeof(err));
	int rc = route_table_parse_index((const char *)data, ilen, &r, &t, &ix, err, sizeof(err));
	if (rc != 0) {
		FUZZ_CHECK(rc < 0 && t == NULL && ix == NULL);
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		return;
	}
	size_t count[ROUTE_INDEX_KINDS] = {0, 0, 0};
	if (ix)
		count[0] = ix->nhosts, count[1] = ix->nbackends, count[2] = ix->ncerts;
	for (int k = 0; ix && k < ROUTE_INDEX_KINDS; k++) {
		size_t at = 0;
		for (size_t j = 0; j < ix->nlists[k]; j++) {
			FUZZ_CHECK(ix->lists[k][j].start == at && ix->lists[k][j].n > 0);
			FUZZ_CHECK(route_shard_id_valid(ix->lists[k][j].id));
			at += ix->lists[k][j].n;
		}
		FUZZ_CHECK(!ix->nlists[k] || at == count[k]);
	}
	for (size_t i = 0; ix && i < ix->nhosts; i++)
		FUZZ_CHECK(route_shard_id_valid(ix->hosts[i]));
	for (size_t i = 0; ix && i < ix->nbackends; i++)
		FUZZ_CHECK(!ix->backends[i][0] || route_shard_id_valid(ix->backends[i]));
	FUZZ_CHECK(!ix || (t && t->nbackends == ix->nbackends && t->ncerts == ix->ncerts));
	route_index_free(ix);
	route_table_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_lists(data, size);
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
