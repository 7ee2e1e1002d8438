/* tests/unit/cross/client_auth_test.c - auth-tls from manifests to the
 * proxy's loaded table, under ASan: tests/golden/auth-tls goes through
 * manifests_load, compile, route_table_serialize, route_table_parse and
 * table_new; then the per-host client certificate state the proxy serves
 * from (the CA store, the settings id that decides session resumption and
 * Host/SNI agreement, the compiled match_cn) is checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "compile.h"
#include "error.h"
#include "manifests.h"
#include "route_table.h"
#include "store.h"
#include "table.h"

static const struct route_host *host(const struct table *t, const char *name)
{
	return table_sni_host(t, name);
}

int main(void)
{
	struct store *s = store_new();
	struct diag_list d = {0};
	CHECK_INT(manifests_load("tests/golden/auth-tls", s, &d), 0);
	struct compile_options opt = {"weir", "weir.dev/ingress-controller", true, NULL};
	struct snapshot *snap = store_snapshot(s);
	struct route_table *rt = NULL;
	CHECK_INT(compile_snapshot(snap, &opt, &rt, &d), 0);
	char *json = NULL;
	size_t len = 0;
	CHECK_INT(route_table_serialize(rt, &json, &len), 0);
	route_table_free(rt);
	struct route_table *parsed = NULL;
	char err[256] = "";
	CHECK_INT(route_table_parse(json, len, &parsed, err, sizeof(err)), 0);
	struct table *t = NULL;
	CHECK_INT(table_new(parsed, &t, err, sizeof(err)), 0);
	if (!t) {
		fprintf(stderr, "table_new: %s\n", err);
		goto out;
	}
	CHECK_INT(table_routes(t)->ncas, 2);
	const struct route_host *a = host(t, "a.example.com"), *c = host(t, "c.example.com"),
	                        *dh = host(t, "d.example.com"), *f = host(t, "f.example.com"),
	                        *h = host(t, "h.example.com");
	CHECK(a && c && dh && f && h);
	if (!a || !c || !dh || !f || !h)
		goto out;
	CHECK(host(t, "g.example.com") == NULL); /* every Ingress of it dropped */
	CHECK(host(t, "b.example.com") == NULL); /* the conflicting Ingress is dropped whole */
	/* stores: one per CA, none with verify off */
	CHECK(table_ca_store(t, a) != NULL);
	CHECK(table_ca_store(t, a) == table_ca_store(t, c));
	CHECK(table_ca_store(t, dh) != NULL && table_ca_store(t, dh) != table_ca_store(t, a));
	CHECK(table_ca_store(t, f) == NULL);
	/* ids: equal only for equal CA, verify and depth */
	const unsigned char *ia = table_client_auth_id(t, a), *ic = table_client_auth_id(t, c),
	                    *id = table_client_auth_id(t, dh), *ifh = table_client_auth_id(t, f),
	                    *ih = table_client_auth_id(t, h);
	CHECK(memcmp(ia, ih, TABLE_CLIENT_AUTH_ID_LEN) != 0); /* depth 2 vs 1 */
	CHECK(memcmp(ic, ih, TABLE_CLIENT_AUTH_ID_LEN) != 0); /* optional_no_ca vs on */
	CHECK(memcmp(id, ih, TABLE_CLIENT_AUTH_ID_LEN) != 0); /* CA with CRL vs without */
	CHECK(memcmp(ifh, ih, TABLE_CLIENT_AUTH_ID_LEN) != 0);
	/* match_cn "CN=(alice|bob)$": searched in the whole DN, case-sensitive */
	static const char alice[] = "O=Weir,CN=alice", carol[] = "O=Weir,CN=carol",
	                  upper[] = "O=Weir,CN=ALICE";
	CHECK_INT(table_match_cn(t, a, alice, strlen(alice)), 1);
	CHECK_INT(table_match_cn(t, a, carol, strlen(carol)), 0);
	CHECK_INT(table_match_cn(t, a, upper, strlen(upper)), 0);
	CHECK_INT(table_match_cn(t, a, "", 0), 0);
	CHECK_INT(table_match_cn(t, h, carol, strlen(carol)), 1); /* none set */
out:
	table_unref(t);
	free(json);
	diag_list_cleanup(&d);
	snapshot_free(snap);
	store_free(s);
	return check_finish("client_auth_test");
}
