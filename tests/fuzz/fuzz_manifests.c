/* tests/fuzz/fuzz_manifests.c - the YAML manifests reader
 * (controller/manifests.c) as `--manifests` runs it: YAML documents to json-c,
 * objects sorted by kind into a store, then the whole pipeline on: the
 * snapshot compiled to a route table, serialized, and read back by the proxy's
 * parser, which must accept whatever the controller publishes. Includes the .c
 * to reach the per-document loader. */
#include "controller/manifests.c"

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct diag_list diags = {0};
	struct load l = {.diags = &diags, .file = "fuzz.yaml"};
	char err[512];
	struct store *s = store_new();
	struct compile_options co = {.ingress_class = "weir",
	                             .controller_name = "weir.dev/ingress-controller",
	                             .allow_loopback = true};
	struct route_table *t = NULL, *back = NULL;
	char *text = NULL;
	size_t len = 0;

	FUZZ_CHECK(s);
	memset(err, 'x', sizeof(err));
	if (manifests_yaml_to_json((const char *)data, size, each_doc, &l, err, sizeof(err)) != 0)
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	for (size_t i = 0; i < l.ndocs; i++)
		objs_add(&l, l.docs[i].kind, l.docs[i].doc);
	free(l.docs);
	for (int k = 0; k < STORE_KIND_COUNT; k++) {
		store_replace(s, (enum store_kind)k, l.kinds[k].items, l.kinds[k].n);
		free(l.kinds[k].items);
	}
	struct snapshot *snap = store_snapshot(s);
	FUZZ_CHECK(snap);
	FUZZ_CHECK(compile_snapshot(snap, &co, &t, &diags) == 0);
	FUZZ_CHECK(route_table_serialize(t, &text, &len) == 0);
	int rc = route_table_parse(text, len, &back, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "the proxy refuses the compiled table: %s\n%s\n", err, text);
	FUZZ_CHECK(rc == 0);
	route_table_free(back);
	route_table_free(t);
	free(text);
	snapshot_free(snap);
	diag_list_cleanup(&diags);
	store_free(s);
	return 0;
}
