/* tests/bench/table_load_bench.c - time and memory of proxy route table loads
 * with many TLS hosts, each with its own certificate (or one shared by all).
 *
 * Writes DIR/routes.json with N hosts (one Prefix "/" route, one backend of
 * one endpoint and one certificate each), then: loads it (first load), and
 * GENS more times changes the table and loads it again while every earlier
 * table stays referenced (as a tunnel or an HTTPS connection started on each
 * would keep it). The changes take turns: one host's route path, one
 * backend's endpoint, one host's certificate (a new key). Prints the wall
 * time of each write and of each table_load (and the CPU time it used: the
 * machine may be shared) and the process RSS (VmRSS after malloc_trim) after
 * it, then the RSS once only the newest table is left. Each loaded table is
 * published (table_publish) as the proxy does, so a version 2 load finds the
 * table in use to take unchanged shards from.
 *
 * --v2 publishes with the controller's publisher (an index + one shard per
 * host and certificate, docs/route-table.md "Sharded tables"), timing
 * publisher_publish; without it, the whole table is serialized into one
 * version 1 routes.json.
 *
 *   cmake --build build --target table_load_bench
 *   build/table_load_bench --hosts 10000 [--shared-cert] [--gens 3] [--v2] [--dir D]
 */
#include <malloc.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "publish.h"
#include "route_table.h"
#include "table.h"

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

static long rss_kib(void)
{
	malloc_trim(0);
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* Bytes malloc has handed out and not had back (RSS also counts holes). */
static long heap_kib(void)
{
	struct mallinfo2 mi = mallinfo2();
	return (long)((mi.uordblks + mi.hblkhd) / 1024);
}

static char *bio_text(BIO *b)
{
	char *p;
	long n = BIO_get_mem_data(b, &p);
	char *s = malloc((size_t)n + 1);
	memcpy(s, p, (size_t)n);
	s[n] = '\0';
	return s;
}

/* A self-signed P-256 certificate for cn with a fresh key, as PEM. */
static void make_cert(const char *cn, long serial, char **cert_pem, char **key_pem)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_sign(x, key, EVP_sha256());
	BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(cb, x);
	PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL);
	*cert_pem = bio_text(cb);
	*key_pem = bio_text(kb);
	BIO_free(cb);
	BIO_free(kb);
	X509_free(x);
	EVP_PKEY_free(key);
}

static struct route_table *make_table(size_t n, bool shared)
{
	struct route_table *rt = route_table_new();
	rt->generation = 1;
	rt->nhosts = rt->nbackends = n;
	rt->ncerts = shared ? 1 : n;
	rt->hosts = calloc(n, sizeof(*rt->hosts));
	rt->backends = calloc(n, sizeof(*rt->backends));
	rt->certs = calloc(rt->ncerts, sizeof(*rt->certs));
	char buf[128];
	for (size_t i = 0; i < rt->ncerts; i++) {
		snprintf(buf, sizeof(buf), "bench/tls-%zu", i);
		rt->certs[i].name = strdup(buf);
		snprintf(buf, sizeof(buf), "h%zu.bench.test", i);
		make_cert(buf, (long)i + 1, &rt->certs[i].cert_pem, &rt->certs[i].key_pem);
	}
	for (size_t i = 0; i < n; i++) {
		struct route_host *h = &rt->hosts[i];
		snprintf(buf, sizeof(buf), "h%zu.bench.test", i);
		h->name = strdup(buf);
		h->cert = shared ? 0 : (int)i;
		route_client_auth_init(&h->client_auth);
		h->nroutes = 1;
		h->routes = calloc(1, sizeof(*h->routes));
		h->routes[0].path = strdup("/");
		h->routes[0].match = ROUTE_MATCH_PREFIX;
		h->routes[0].backend = (int)i;
		h->routes[0].canary.backend = -1;
		h->routes[0].canary.weight_total = 100;
		h->routes[0].error_backend = -1;
		h->routes[0].backend_tls = -1;
		h->routes[0].policy = route_policy_new();
		struct route_backend *b = &rt->backends[i];
		snprintf(buf, sizeof(buf), "bench/svc-%zu:80", i);
		b->name = strdup(buf);
		b->nendpoints = 1;
		b->endpoints = calloc(1, sizeof(*b->endpoints));
		snprintf(buf, sizeof(buf), "127.0.%zu.%zu", (i / 250) % 250 + 1, i % 250 + 1);
		b->endpoints[0].address = strdup(buf);
		b->endpoints[0].port = 8080;
		b->endpoints[0].weight = 1;
	}
	return rt;
}

static int write_table(const struct route_table *rt, const char *dir)
{
	char *json = NULL, path[4096], tmp[4096];
	size_t len = 0;
	if (route_table_serialize(rt, &json, &len) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/routes.json", dir);
	snprintf(tmp, sizeof(tmp), "%s/.routes.json.tmp", dir);
	FILE *f = fopen(tmp, "w");
	int rc = f && fwrite(json, 1, len, f) == len ? 0 : -1;
	if (f && fclose(f) != 0)
		rc = -1;
	if (rc == 0)
		rc = rename(tmp, path);
	free(json);
	return rc;
}

/* Version 2 through the publisher (rt's generation is its to set), else
 * version 1 as one file. */
static int write_any(struct route_table *rt, const char *dir, struct publisher *pub)
{
	bool written;
	if (pub)
		return publisher_publish(pub, rt, &written) == 0 && written ? 0 : -1;
	return write_table(rt, dir);
}

int main(int argc, char **argv)
{
	size_t hosts = 10000;
	int gens = 3;
	bool shared = false, v2 = false;
	const char *dir = NULL;
	char dirbuf[] = "/tmp/weir-table-bench-XXXXXX";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--hosts") && i + 1 < argc)
			hosts = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--gens") && i + 1 < argc)
			gens = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--shared-cert"))
			shared = true;
		else if (!strcmp(argv[i], "--v2"))
			v2 = true;
		else {
			fprintf(
			    stderr,
			    "usage: %s [--hosts N] [--gens G] [--shared-cert] [--v2] [--dir DIR]\n",
			    argv[0]);
			return 2;
		}
	}
	if (hosts < 1 || gens < 0 || gens > 64) {
		fprintf(stderr, "bad --hosts or --gens\n");
		return 2;
	}
	if (!dir && !(dir = mkdtemp(dirbuf))) {
		perror("mkdtemp");
		return 1;
	}
	double t0 = now_s();
	struct route_table *rt = make_table(hosts, shared);
	struct publisher *pub = NULL;
	printf("table_load_bench: %zu hosts, %s, generated in %.1f s, %s to %s\n", hosts,
	       shared ? "one shared certificate" : "a certificate each", now_s() - t0,
	       v2 ? "version 2 (index + shards)" : "version 1 (one routes.json)", dir);
	if (v2 && publisher_new(dir, &pub) != 0) {
		fprintf(stderr, "cannot publish into %s\n", dir);
		return 1;
	}
	t0 = now_s();
	if (write_any(rt, dir, pub) != 0) {
		fprintf(stderr, "cannot write %s/routes.json\n", dir);
		return 1;
	}
	printf("first write: %.1f ms\n", (now_s() - t0) * 1e3);
	printf("baseline RSS (generator's table in memory): %ld KiB\n", rss_kib());

	struct table *t[65] = {0};
	char err[512];
	for (int g = 0; g <= gens; g++) {
		const char *what = "first";
		if (g > 0) {
			size_t k = ((size_t)g * 7919) % hosts;
			char buf[64];
			if (g % 3 == 1) {
				/* One host's route changes. */
				what = "reload (one host changed)";
				snprintf(buf, sizeof(buf), "/changed-%d", g);
				free(rt->hosts[k].routes[0].path);
				rt->hosts[k].routes[0].path = strdup(buf);
			} else if (g % 3 == 2) {
				/* One backend's endpoint moves. */
				what = "reload (one endpoint changed)";
				rt->backends[k].endpoints[0].port = (uint16_t)(9000 + g);
			} else {
				/* A new key and certificate for one host. */
				what = "reload (one certificate changed)";
				size_t c = k % rt->ncerts;
				free(rt->certs[c].cert_pem);
				free(rt->certs[c].key_pem);
				snprintf(buf, sizeof(buf), "h%zu.bench.test", c);
				make_cert(buf, 100000 + g, &rt->certs[c].cert_pem,
				          &rt->certs[c].key_pem);
			}
			rt->generation++;
			double w = now_s(), wc = clock_s(CLOCK_PROCESS_CPUTIME_ID);
			if (write_any(rt, dir, pub) != 0) {
				fprintf(stderr, "cannot write %s/routes.json\n", dir);
				return 1;
			}
			printf("write %d: %.1f ms (%.1f ms CPU)\n", g, (now_s() - w) * 1e3,
			       (clock_s(CLOCK_PROCESS_CPUTIME_ID) - wc) * 1e3);
		}
		double s = now_s(), cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID);
		int rc = table_load(dir, &t[g], err, sizeof(err));
		double took = now_s() - s, cpu_took = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu;
		if (rc != 0) {
			fprintf(stderr, "table_load: %s\n", err);
			return 1;
		}
		/* As the proxy does (reload.c): the next load sees it as the
		 * table in use and takes its unchanged shards by position. */
		table_ref(t[g]);
		table_publish(t[g]);
		long rss = rss_kib();
		printf("%s load %d: %.1f ms (%.1f ms CPU), %zu hosts parsed, %zu certificates "
		       "decoded, RSS %ld KiB (heap in use %ld KiB) with %d table(s) alive\n",
		       what, g, took * 1e3, cpu_took * 1e3, table_hosts_parsed(t[g]),
		       table_certs_decoded(t[g]), rss, heap_kib(), g + 1);
	}
	for (int g = 0; g <= gens; g++)
		table_unref(t[g]);
	/* The published table stays (there is no unpublishing). */
	long rss = rss_kib();
	printf("RSS with only the newest (published) table alive: %ld KiB (heap in use %ld "
	       "KiB)\n",
	       rss, heap_kib());
	route_table_free(rt);
	publisher_free(pub);
	return 0;
}
