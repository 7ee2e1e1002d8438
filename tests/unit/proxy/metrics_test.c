/* tests/unit/proxy/metrics_test.c - counters add up across threads, label
 * escaping, cumulative histogram, deterministic sorted output, bounded series.
 * Metrics are process-wide, so each check uses its own host label and the
 * bounded-series check runs last. */
#include "check.h"

#include "proxy/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *render(void)
{
	char *out = NULL;
	size_t len = 0;
	int rc = metrics_render(&out, &len);
	CHECK_INT(rc, 0);
	CHECK(out != NULL);
	if (out)
		CHECK_INT(strlen(out), len);
	return out;
}

/* Value of the sample whose line starts with prefix (name plus labels), or -1. */
static long long sample(const char *text, const char *prefix)
{
	size_t pl = strlen(prefix);
	for (const char *p = text; p && *p;) {
		const char *eol = strchr(p, '\n');
		if (strncmp(p, prefix, pl) == 0 && p[pl] == ' ')
			return atoll(p + pl + 1);
		p = eol ? eol + 1 : NULL;
	}
	return -1;
}

#define THREADS 8
#define PER_THREAD 20000

static void *hammer(void *arg)
{
	long id = (long)arg;
	for (int i = 0; i < PER_THREAD; i++) {
		metrics_request("threads.example", "/a", 200, METRICS_HTTP11, -1);
		metrics_request("threads.example", (i & 1) ? "/b" : "/c", (id & 1) ? 502 : 200,
		                METRICS_HTTP11, -1);
		metrics_connections(+1);
		metrics_connections(-1);
		metrics_tunnels(+1);
	}
	return NULL;
}

/* Scrapes while the workers count: must be safe and always well-formed. */
static void *scraper(void *arg)
{
	int *bad = arg;
	for (int i = 0; i < 20; i++) {
		char *out = NULL;
		size_t len = 0;
		if (metrics_render(&out, &len) != 0 || !out || len == 0 || out[len - 1] != '\n')
			(*bad)++;
		free(out);
	}
	return NULL;
}

static void test_threads(void)
{
	pthread_t th[THREADS], scr;
	int bad = 0;
	CHECK_INT(pthread_create(&scr, NULL, scraper, &bad), 0);
	for (long i = 0; i < THREADS; i++)
		CHECK_INT(pthread_create(&th[i], NULL, hammer, (void *)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_join(scr, NULL);
	CHECK_INT(bad, 0);
	char *t = render();
	if (!t)
		return;
	CHECK_INT(sample(t, "weir_proxy_requests_total{host=\"threads.example\",path=\"/a\","
	                    "code=\"200\",protocol=\"HTTP/1.1\"}"),
	          THREADS * PER_THREAD);
	/* Even threads -> 200, odd -> 502; half the iterations go to /b, half to /c. */
	long long each = (long long)(THREADS / 2) * (PER_THREAD / 2);
	CHECK_INT(sample(t, "weir_proxy_requests_total{host=\"threads.example\",path=\"/b\","
	                    "code=\"200\",protocol=\"HTTP/1.1\"}"),
	          each);
	CHECK_INT(sample(t, "weir_proxy_requests_total{host=\"threads.example\",path=\"/b\","
	                    "code=\"502\",protocol=\"HTTP/1.1\"}"),
	          each);
	CHECK_INT(sample(t, "weir_proxy_requests_total{host=\"threads.example\",path=\"/c\","
	                    "code=\"502\",protocol=\"HTTP/1.1\"}"),
	          each);
	CHECK_INT(sample(t, "weir_proxy_open_connections"), 0);
	CHECK_INT(sample(t, "weir_proxy_open_websocket_tunnels"), THREADS * PER_THREAD);
	free(t);
	for (int i = 0; i < THREADS * PER_THREAD; i++)
		metrics_tunnels(-1);
}

static void test_escaping(void)
{
	metrics_request("esc\"ape", "/x\\y\nz", 404, METRICS_HTTP11, -1);
	metrics_request(NULL, NULL, 404, METRICS_HTTP11, -1);
	metrics_upstream_error("we\"ird\\kind\n");
	char *t = render();
	if (!t)
		return;
	CHECK_INT(sample(t, "weir_proxy_requests_total{host=\"esc\\\"ape\",path=\"/x\\\\y\\nz\","
	                    "code=\"404\",protocol=\"HTTP/1.1\"}"),
	          1);
	CHECK_INT(sample(t, "weir_proxy_requests_total{host=\"\",path=\"-\",code=\"404\",protocol="
	                    "\"HTTP/1.1\"}"),
	          1);
	CHECK_INT(sample(t, "weir_proxy_upstream_errors_total{kind=\"we\\\"ird\\\\kind\\n\"}"), 1);
	/* No raw newline inside any sample: every line is a comment or starts with the prefix. */
	for (const char *p = t; *p;) {
		CHECK(*p == '#' || strncmp(p, "weir_proxy_", 11) == 0);
		const char *eol = strchr(p, '\n');
		if (!eol)
			break;
		p = eol + 1;
	}
	free(t);
}

static void test_histogram(void)
{
	char *t0 = render();
	if (!t0)
		return;
	long long b005 = sample(t0, "weir_proxy_upstream_latency_seconds_bucket{le=\"0.005\"}");
	long long b01 = sample(t0, "weir_proxy_upstream_latency_seconds_bucket{le=\"0.1\"}");
	long long b1 = sample(t0, "weir_proxy_upstream_latency_seconds_bucket{le=\"1\"}");
	long long b10 = sample(t0, "weir_proxy_upstream_latency_seconds_bucket{le=\"10\"}");
	long long binf = sample(t0, "weir_proxy_upstream_latency_seconds_bucket{le=\"+Inf\"}");
	long long cnt = sample(t0, "weir_proxy_upstream_latency_seconds_count");
	free(t0);

	metrics_request("hist.example", "/", 200, METRICS_HTTP11, 0.001); /* le 0.005 and up */
	metrics_request("hist.example", "/", 200, METRICS_HTTP11, 0.005); /* bound is inclusive */
	metrics_request("hist.example", "/", 200, METRICS_HTTP11, 0.07);  /* le 0.1 and up */
	metrics_request("hist.example", "/", 200, METRICS_HTTP11, 0.5);   /* le 0.5 and up */
	metrics_request("hist.example", "/", 200, METRICS_HTTP11, 30);    /* +Inf only */
	metrics_request("hist.example", "/", 200, METRICS_HTTP11,
	                -1); /* no upstream: not observed */

	char *t = render();
	if (!t)
		return;
	CHECK_INT(sample(t, "weir_proxy_upstream_latency_seconds_bucket{le=\"0.005\"}"), b005 + 2);
	CHECK_INT(sample(t, "weir_proxy_upstream_latency_seconds_bucket{le=\"0.1\"}"), b01 + 3);
	CHECK_INT(sample(t, "weir_proxy_upstream_latency_seconds_bucket{le=\"1\"}"), b1 + 4);
	CHECK_INT(sample(t, "weir_proxy_upstream_latency_seconds_bucket{le=\"10\"}"), b10 + 4);
	CHECK_INT(sample(t, "weir_proxy_upstream_latency_seconds_bucket{le=\"+Inf\"}"), binf + 5);
	CHECK_INT(sample(t, "weir_proxy_upstream_latency_seconds_count"), cnt + 5);
	CHECK_INT(sample(t, "weir_proxy_requests_total{host=\"hist.example\",path=\"/\","
	                    "code=\"200\",protocol=\"HTTP/1.1\"}"),
	          6);
	/* Buckets are cumulative: never decreasing, in the declared order. */
	static const char *const les[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
	                                  "0.5",   "1",    "2.5",   "5",    "10",  "+Inf"};
	long long prev = -1;
	const char *last = t;
	for (size_t i = 0; i < sizeof(les) / sizeof(les[0]); i++) {
		char pfx[96];
		snprintf(pfx, sizeof(pfx), "weir_proxy_upstream_latency_seconds_bucket{le=\"%s\"}",
		         les[i]);
		long long v = sample(t, pfx);
		CHECK(v >= prev);
		prev = v;
		const char *at = strstr(t, pfx);
		CHECK(at != NULL && at >= last);
		if (at)
			last = at;
	}
	CHECK(strstr(t, "# TYPE weir_proxy_upstream_latency_seconds histogram\n") != NULL);
	CHECK(strstr(t, "weir_proxy_upstream_latency_seconds_sum ") != NULL);
	free(t);
}

static void test_families_and_order(void)
{
	metrics_request("b.example", "/z", 200, METRICS_HTTP11, -1);
	metrics_request("a.example", "/z", 200, METRICS_HTTP11, -1);
	metrics_request("a.example", "/a", 503, METRICS_HTTP11, -1);
	metrics_request("a.example", "/a", 200, METRICS_HTTP11, -1);
	metrics_reload(true, 42);
	metrics_reload(false, 0);
	metrics_table_load(1500, 3, 97);
	metrics_upstream_error("timeout");
	metrics_upstream_error("connect");
	metrics_upstream_retry(0);
	metrics_upstream_retry(5);
	metrics_upstream_retry(5);
	metrics_upstream_retry(10); /* non_idempotent is no cause: ignored */
	metrics_upstream_retry(-1);
	char *t1 = render();
	char *t2 = render();
	if (!t1 || !t2) {
		free(t1);
		free(t2);
		return;
	}
	CHECK_STR(t1, t2);
	const char *a =
	    strstr(t1, "{host=\"a.example\",path=\"/a\",code=\"200\",protocol=\"HTTP/1.1\"}");
	const char *b =
	    strstr(t1, "{host=\"a.example\",path=\"/a\",code=\"503\",protocol=\"HTTP/1.1\"}");
	const char *c =
	    strstr(t1, "{host=\"a.example\",path=\"/z\",code=\"200\",protocol=\"HTTP/1.1\"}");
	const char *d =
	    strstr(t1, "{host=\"b.example\",path=\"/z\",code=\"200\",protocol=\"HTTP/1.1\"}");
	CHECK(a && b && c && d && a < b && b < c && c < d);
	CHECK_INT(sample(t1, "weir_proxy_route_table_generation"), 42);
	CHECK_INT(sample(t1, "weir_proxy_reloads_total{result=\"ok\"}"), 1);
	CHECK_INT(sample(t1, "weir_proxy_reloads_total{result=\"failed\"}"), 1);
	CHECK_INT(sample(t1, "weir_proxy_route_table_load_microseconds"), 1500);
	CHECK_INT(sample(t1, "weir_proxy_route_table_hosts_total{result=\"parsed\"}"), 3);
	CHECK_INT(sample(t1, "weir_proxy_route_table_hosts_total{result=\"reused\"}"), 97);
	CHECK_INT(sample(t1, "weir_proxy_upstream_errors_total{kind=\"timeout\"}"), 1);
	CHECK_INT(sample(t1, "weir_proxy_upstream_errors_total{kind=\"connect\"}"), 1);
	CHECK_INT(sample(t1, "weir_proxy_upstream_errors_total{kind=\"reset\"}"), 0);
	CHECK_INT(sample(t1, "weir_proxy_upstream_errors_total{kind=\"no_endpoints\"}"), 0);
	CHECK_INT(sample(t1, "weir_proxy_upstream_retries_total{condition=\"error\"}"), 1);
	CHECK_INT(sample(t1, "weir_proxy_upstream_retries_total{condition=\"http_503\"}"), 2);
	CHECK_INT(sample(t1, "weir_proxy_upstream_retries_total{condition=\"http_429\"}"), 0);
	CHECK(strstr(t1, "condition=\"non_idempotent\"") == NULL);
	static const char *const families[][2] = {
	    {"weir_proxy_requests_total", "counter"},
	    {"weir_proxy_upstream_latency_seconds", "histogram"},
	    {"weir_proxy_open_connections", "gauge"},
	    {"weir_proxy_open_websocket_tunnels", "gauge"},
	    {"weir_proxy_route_table_generation", "gauge"},
	    {"weir_proxy_reloads_total", "counter"},
	    {"weir_proxy_route_table_load_microseconds", "gauge"},
	    {"weir_proxy_route_table_hosts_total", "counter"},
	    {"weir_proxy_upstream_errors_total", "counter"},
	    {"weir_proxy_upstream_retries_total", "counter"},
	};
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		char line[128];
		snprintf(line, sizeof(line), "# HELP %s ", families[i][0]);
		CHECK(strstr(t1, line) != NULL);
		snprintf(line, sizeof(line), "# TYPE %s %s\n", families[i][0], families[i][1]);
		CHECK(strstr(t1, line) != NULL);
	}
	CHECK(t1[strlen(t1) - 1] == '\n');
	free(t1);
	free(t2);
}

static void test_long_labels(void)
{
	/* Labels are capped at 512 bytes, cut on a UTF-8 character boundary. */
	char host[700], want[600];
	memset(host, 'a', 511);
	strcpy(host + 511, "\xc3\xa9tail"); /* "é" straddles the cap */
	memset(want, 'a', 511);
	want[511] = '\0';
	metrics_request(host, "/long", 200, METRICS_HTTP11, -1);
	char *t = render();
	if (!t)
		return;
	char pfx[700];
	snprintf(pfx, sizeof(pfx),
	         "weir_proxy_requests_total{host=\"%s\",path=\"/"
	         "long\",code=\"200\",protocol=\"HTTP/1.1\"}",
	         want);
	CHECK_INT(sample(t, pfx), 1);
	free(t);
}

/* The protocol is part of a series' label set; by_protocol counts HTTP requests only. */
static void test_protocols(void)
{
	char *t0 = render();
	if (!t0)
		return;
	long long h10 = sample(t0, "weir_proxy_requests_by_protocol_total{protocol=\"HTTP/1.0\"}");
	long long h11 = sample(t0, "weir_proxy_requests_by_protocol_total{protocol=\"HTTP/1.1\"}");
	long long h2 = sample(t0, "weir_proxy_requests_by_protocol_total{protocol=\"HTTP/2.0\"}");
	free(t0);

	metrics_request("proto.example", "/", 200, METRICS_HTTP2, -1);
	metrics_request("proto.example", "/", 200, METRICS_HTTP2, -1);
	metrics_request("proto.example", "/", 200, METRICS_HTTP11, -1);
	metrics_request("proto.example", "/", 200, METRICS_HTTP10, -1);
	metrics_request("proto.example", "(ssl-passthrough)", 403, METRICS_NO_HTTP, -1);
	metrics_request("proto.example", "/", 200, (enum metrics_protocol)77, -1);

	char *t = render();
	if (!t)
		return;
	const char *v10 =
	    "weir_proxy_requests_total{host=\"proto.example\",path=\"/\",code=\"200\","
	    "protocol=\"HTTP/1.0\"}";
	const char *v11 =
	    "weir_proxy_requests_total{host=\"proto.example\",path=\"/\",code=\"200\","
	    "protocol=\"HTTP/1.1\"}";
	const char *v2 = "weir_proxy_requests_total{host=\"proto.example\",path=\"/\",code=\"200\","
	                 "protocol=\"HTTP/2.0\"}";
	CHECK_INT(sample(t, v10), 1);
	CHECK_INT(sample(t, v11), 1);
	CHECK_INT(sample(t, v2), 2);
	/* An out-of-range protocol counts as no HTTP, like a refused passthrough client. */
	CHECK_INT(sample(t,
	                 "weir_proxy_requests_total{host=\"proto.example\",path=\"/\",code=\"200\","
	                 "protocol=\"-\"}"),
	          1);
	CHECK_INT(sample(t, "weir_proxy_requests_total{host=\"proto.example\","
	                    "path=\"(ssl-passthrough)\",code=\"403\",protocol=\"-\"}"),
	          1);
	/* Sorted by protocol after code. */
	const char *a = strstr(t, v10), *b = strstr(t, v11), *c = strstr(t, v2);
	CHECK(a && b && c && a < b && b < c);
	CHECK_INT(sample(t, "weir_proxy_requests_by_protocol_total{protocol=\"HTTP/1.0\"}"),
	          h10 + 1);
	CHECK_INT(sample(t, "weir_proxy_requests_by_protocol_total{protocol=\"HTTP/1.1\"}"),
	          h11 + 1);
	CHECK_INT(sample(t, "weir_proxy_requests_by_protocol_total{protocol=\"HTTP/2.0\"}"),
	          h2 + 2);
	CHECK(strstr(t, "weir_proxy_requests_by_protocol_total{protocol=\"-\"}") == NULL);
	free(t);
}

static int count_lines_with(const char *t, const char *needle)
{
	int n = 0;
	for (const char *p = t; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void test_bounded(void)
{
	char host[64];
	/* Far more distinct label sets than the cap; every request must still be counted. */
	const int total = METRICS_MAX_SERIES + 2500;
	for (int i = 0; i < total; i++) {
		snprintf(host, sizeof(host), "h%05d.bound", i);
		metrics_request(host, "/", i % 2 ? 200 : 404, METRICS_HTTP11, -1);
	}
	metrics_request("h00000.bound", "/", 404, METRICS_HTTP11,
	                -1); /* existing series still counts */
	char *t = render();
	if (!t)
		return;
	int series = count_lines_with(t, "\nweir_proxy_requests_total{");
	int overflow = count_lines_with(t, "weir_proxy_requests_total{host=\"~overflow\"");
	CHECK(series <= METRICS_MAX_SERIES + 1000);
	CHECK(overflow >= 1 && overflow <= 2);
	CHECK(series - overflow <= METRICS_MAX_SERIES);
	CHECK_INT(sample(t, "weir_proxy_requests_total{host=\"h00000.bound\",path=\"/\","
	                    "code=\"404\",protocol=\"HTTP/1.1\"}"),
	          2);
	/* Sum of the .bound series plus the overflow ones equals what was sent. */
	long long sum = 0;
	for (const char *p = t; p && *p;) {
		if (strncmp(p, "weir_proxy_requests_total{host=\"", 32) == 0 &&
		    (strstr(p, ".bound\"") == p + 38 || strncmp(p + 32, "~overflow", 9) == 0)) {
			const char *sp = strchr(p, '}');
			if (sp)
				sum += atoll(sp + 2);
		}
		const char *eol = strchr(p, '\n');
		p = eol ? eol + 1 : NULL;
	}
	CHECK_INT(sum, total + 1);
	free(t);
}

int main(void)
{
	test_threads();
	test_escaping();
	test_histogram();
	test_families_and_order();
	test_long_labels();
	test_protocols();
	test_bounded();
	return check_finish("metrics_test");
}
