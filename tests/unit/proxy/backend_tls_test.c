/* tests/unit/proxy/backend_tls_test.c - backend TLS profiles in the proxy:
 * the name an upstream connection is verified and SNI'd with, one client
 * context per profile with a content id that tells profiles apart, and the
 * error that refuses a table whose profile does not load. */
#include <stdlib.h>
#include <string.h>

#include "backend_tls.h"
#include "check.h"
#include "error.h"
#include "table_cache.h"

#include "test_cert.h"

static void test_name(void)
{
	char out[256];
	struct route_backend_tls named = {.name = "backend.internal"};
	struct route_backend_tls dflt = {0};
	backend_tls_name(&named, "www.example.com", 15, "10.0.0.1", out, sizeof(out));
	CHECK_STR(out, "backend.internal");
	backend_tls_name(&dflt, "Backend.Test:8443", 17, "10.0.0.1", out, sizeof(out));
	CHECK_STR(out, "backend.test");
	backend_tls_name(&dflt, "backend.test.", 13, "10.0.0.1", out, sizeof(out));
	CHECK_STR(out, "backend.test");
	backend_tls_name(&dflt, "[::1]:443", 9, "10.0.0.1", out, sizeof(out));
	CHECK_STR(out, "::1");
	/* no Host: the endpoint address */
	backend_tls_name(&dflt, NULL, 0, "10.0.0.1", out, sizeof(out));
	CHECK_STR(out, "10.0.0.1");
	/* a Host no certificate name can match: none (verification then fails closed) */
	backend_tls_name(&dflt, "a b", 3, "10.0.0.1", out, sizeof(out));
	CHECK_STR(out, "");
	backend_tls_name(&dflt, "[::1", 4, "10.0.0.1", out, sizeof(out));
	CHECK_STR(out, "");
	/* only the length given counts */
	backend_tls_name(&dflt, "a.test:80 trailing", 9, "10.0.0.1", out, sizeof(out));
	CHECK_STR(out, "a.test");
}

static void test_set(void)
{
	struct route_table *rt = route_table_new();
	if (!rt)
		return;
	rt->backend_tls = calloc(3, sizeof(*rt->backend_tls));
	rt->nbackend_tls = 3;
	struct route_backend_tls_profile *b = rt->backend_tls;
	b[0] = (struct route_backend_tls_profile){
	    .name = strdup("ns/ca"), .verify = true, .verify_depth = 1, .ca_pem = strdup(CERT_PEM)};
	b[1] = (struct route_backend_tls_profile){
	    .name = strdup("ns/ca"), .verify = true, .verify_depth = 1, .ca_pem = strdup(CERT_PEM)};
	b[2] = (struct route_backend_tls_profile){.name = strdup("ns/client"),
	                                          .verify_depth = 1,
	                                          .protocols = strdup("TLSv1.3"),
	                                          .cert_pem = strdup(CERT_PEM),
	                                          .key_pem = strdup(KEY_PEM)};
	struct backend_tls_set *set = NULL;
	char err[256] = "";
	CHECK_INT(backend_tls_set_new(rt, &set, err, sizeof(err)), 0);
	CHECK(set != NULL);
	SSL_CTX *c0, *c1, *c2, *none;
	const char *id0, *id1, *id2, *idn;
	backend_tls_profile(set, 0, &c0, &id0);
	backend_tls_profile(set, 1, &c1, &id1);
	backend_tls_profile(set, 2, &c2, &id2);
	backend_tls_profile(set, 3, &none, &idn);
	/* equal content: one context (shared through the table cache) */
	CHECK(c0 && c1 && c2 && c0 == c1 && c0 != c2);
	CHECK(none == NULL && strcmp(idn, "") == 0);
	CHECK_INT(strlen(id0), BACKEND_TLS_ID_LEN - 1);
	CHECK_STR(id0, id1); /* equal content, equal id */
	CHECK(strcmp(id0, id2) != 0);
	CHECK(backend_tls_verifies(set, 0));
	CHECK(!backend_tls_verifies(set, 2));
	CHECK(!backend_tls_verifies(set, -1));
	CHECK_INT(SSL_CTX_get_verify_mode(c0), SSL_VERIFY_PEER);
	CHECK_INT(SSL_CTX_get_verify_mode(c2), SSL_VERIFY_NONE);
	CHECK_INT(SSL_CTX_get_min_proto_version(c2), TLS1_3_VERSION);
	CHECK(SSL_CTX_get0_certificate(c2) != NULL);
	/* A second set from the same profiles (the next table generation)
	 * takes the same contexts; they outlive the first set. */
	struct backend_tls_set *next = NULL;
	CHECK_INT(backend_tls_set_new(rt, &next, err, sizeof(err)), 0);
	SSL_CTX *n0 = NULL, *n2 = NULL;
	const char *nid;
	backend_tls_profile(next, 0, &n0, &nid);
	backend_tls_profile(next, 2, &n2, &nid);
	CHECK(n0 == c0 && n2 == c2);
	CHECK_INT(table_cache_count(TABLE_CACHE_BACKEND_TLS), 2);
	backend_tls_set_free(set);
	CHECK_INT(table_cache_count(TABLE_CACHE_BACKEND_TLS), 2);
	CHECK_INT(SSL_CTX_get_min_proto_version(n2), TLS1_3_VERSION);
	backend_tls_set_free(next);
	CHECK_INT(table_cache_count(TABLE_CACHE_BACKEND_TLS), 0);

	/* Anything else than what profile 0 verifies with changes the id. */
	free(b[1].ca_pem);
	b[1].ca_pem = NULL;
	b[1].verify = false;
	set = NULL;
	CHECK_INT(backend_tls_set_new(rt, &set, err, sizeof(err)), 0);
	backend_tls_profile(set, 0, &c0, &id0);
	backend_tls_profile(set, 1, &c1, &id1);
	CHECK(set && strcmp(id0, id1) != 0);
	backend_tls_set_free(set);

	/* A profile whose PEM does not load refuses the table, named by index. */
	free(b[1].ca_pem);
	b[1].ca_pem = strdup("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
	set = NULL;
	CHECK_INT(backend_tls_set_new(rt, &set, err, sizeof(err)), WEIR_ETLS);
	CHECK(set == NULL);
	CHECK(strncmp(err, "backend_tls[1].ca_pem: bad CA certificate (ns/ca): ", 51) == 0);
	/* A client key that is not the certificate's. */
	free(b[1].ca_pem);
	b[1].ca_pem = NULL;
	b[1].cert_pem = strdup(CERT_PEM);
	b[1].key_pem = strdup("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
	CHECK_INT(backend_tls_set_new(rt, &set, err, sizeof(err)), WEIR_ETLS);
	CHECK(strncmp(err, "backend_tls[1].key_pem: bad client private key (ns/ca): ", 56) == 0);
	route_table_free(rt);

	/* No profile, no set. */
	rt = route_table_new();
	set = (struct backend_tls_set *)rt;
	CHECK_INT(backend_tls_set_new(rt, &set, err, sizeof(err)), 0);
	CHECK(set == NULL);
	route_table_free(rt);
}

int main(void)
{
	test_name();
	test_set();
	return check_finish("backend_tls_test");
}
