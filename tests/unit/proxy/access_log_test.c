/* tests/unit/proxy/access_log_test.c - access log formats: ingress-nginx's
 * default line byte for byte, every variable, the three escapings, unknown
 * variables refused. */
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

#include "check.h"
#include "common/error.h"
#include "proxy/access_log.h"
#include "request_fixture.h"

static char *render(const char *fmt, enum access_log_escape esc, const struct access_entry *e)
{
	struct access_log_format *f = NULL;
	char err[128] = "";
	if (access_log_format_new(fmt, esc, &f, err, sizeof(err)) != 0) {
		fprintf(stderr, "format refused: %s\n", err);
		CHECK(0);
		return strdup("");
	}
	char *buf = NULL;
	size_t len = 0, cap = 0;
	CHECK_INT(access_log_render(f, e, &buf, &len, &cap), 0);
	CHECK(len > 0 && buf[len - 1] == '\n');
	buf[len - 1] = '\0'; /* the line without its newline */
	access_log_format_free(f);
	return buf;
}

static struct http_client client(void)
{
	struct http_client c;
	memset(&c, 0, sizeof(c));
	strcpy(c.ip, "203.0.113.7");
	c.port = 51234;
	c.local_port = 443;
	c.tls = true;
	return c;
}

static void test_default_format(void)
{
	struct http_request req;
	fixture_parse_request("GET /app/x?y=1 HTTP/1.1\r\nHost: Shop.Example.com:8443\r\n"
	                      "User-Agent: curl/8.1 \"q\"\r\nReferer: https://r.example/\r\n\r\n",
	                      &req);
	struct http_client c = client();
	struct access_entry e = {.req = &req,
	                         .client = &c,
	                         .req_id = "0123456789abcdef0123456789abcdef",
	                         .source = "shop/front",
	                         .backend = "shop/web:80",
	                         .upstream_addr = "10.0.0.5:8080",
	                         .status = 200,
	                         .upstream_status = 200,
	                         .body_bytes_sent = 1234,
	                         .bytes_sent = 1400,
	                         .request_length = 120,
	                         .upstream_response_length = 1234,
	                         .request_time = 0.0123,
	                         .upstream_response_time = 0.011,
	                         .now_ms = 1764921600123LL}; /* 2025-12-05T08:00:00.123Z */
	char *line = render(NULL, ACCESS_LOG_ESCAPE_DEFAULT, &e);
	CHECK_STR(line, "203.0.113.7 - - [05/Dec/2025:08:00:00 +0000] \"GET /app/x?y=1 HTTP/1.1\" "
	                "200 1234 \"https://r.example/\" \"curl/8.1 \\x22q\\x22\" 120 0.012 "
	                "[shop-web-80] [-] 10.0.0.5:8080 1234 0.011 200 "
	                "0123456789abcdef0123456789abcdef");
	free(line);

	/* no upstream (a 404 of the proxy), no headers */
	fixture_parse_request("HEAD / HTTP/1.0\r\n\r\n", &req);
	struct access_entry n = {.req = &req,
	                         .client = &c,
	                         .req_id = "r",
	                         .status = 404,
	                         .upstream_response_length = -1,
	                         .upstream_response_time = -1,
	                         .now_ms = 0};
	line = render(NULL, ACCESS_LOG_ESCAPE_DEFAULT, &n);
	CHECK_STR(line, "203.0.113.7 - - [01/Jan/1970:00:00:00 +0000] \"HEAD / HTTP/1.0\" 404 0 "
	                "\"-\" \"-\" 0 0.000 [-] [-] - - - - r");
	free(line);
}

static void test_variables_and_escaping(void)
{
	struct http_request req;
	fixture_parse_request("POST /p%20q?a=1&b=2 HTTP/1.1\r\nHost: h.example\r\n"
	                      "X-Custom-Thing: caf\xc3\xa9\\\r\n\r\n",
	                      &req);
	struct http_client c = client();
	c.has_proxy_addr = true;
	strcpy(c.hop_ip, "198.51.100.1");
	struct access_entry e = {.req = &req,
	                         .client = &c,
	                         .req_id = "id",
	                         .remote_user = "alice",
	                         .source = "ns1/ing1",
	                         .backend = "ns1/svc1:8080",
	                         .alt_backend = "ns1/canary:8080",
	                         .status = 502,
	                         .upstream_response_length = -1,
	                         .upstream_response_time = -1,
	                         .now_ms = 1764921600123LL};
	char *line = render("$request_method|$request_uri|$uri|$args|$server_protocol|$scheme|$host|"
	                    "$server_port|$remote_port|$remote_user|$proxy_protocol_addr|"
	                    "$namespace|$ingress_name|$service_name|$service_port|"
	                    "${proxy_alternative_upstream_name}x|$msec|$time_iso8601|$http_x_custom_thing|"
	                    "$upstream_addr|$upstream_status|$upstream_response_time|$ cost",
	                    ACCESS_LOG_ESCAPE_DEFAULT, &e);
	CHECK_STR(line, "POST|/p%20q?a=1&b=2|/p%20q|a=1&b=2|HTTP/1.1|https|h.example|443|51234|alice|"
	                "198.51.100.1|ns1|ing1|svc1|8080|ns1-canary-8080x|1764921600.123|"
	                "2025-12-05T08:00:00+00:00|caf\\xC3\\xA9\\x5C|-|-|-|$ cost");
	free(line);
	/* JSON escaping: quotes and backslashes escaped, UTF-8 kept, controls as \u */
	line = render("{\"ua\":\"$http_x_custom_thing\",\"status\":$status}", ACCESS_LOG_ESCAPE_JSON,
	              &e);
	CHECK_STR(line, "{\"ua\":\"caf\xc3\xa9\\\\\",\"status\":502}");
	free(line);
	/* none: as sent, but never a control byte */
	line = render("$http_x_custom_thing", ACCESS_LOG_ESCAPE_NONE, &e);
	CHECK_STR(line, "caf\xc3\xa9\\");
	free(line);
}

static void test_refusals(void)
{
	struct access_log_format *f = NULL;
	char err[128] = "";
	CHECK_INT(access_log_format_new("$remote_addr $bogus_var", ACCESS_LOG_ESCAPE_DEFAULT, &f, err,
	                                sizeof(err)),
	          WEIR_EINVAL);
	CHECK_STR(err, "unknown variable $bogus_var");
	CHECK_INT(access_log_format_new("${status", ACCESS_LOG_ESCAPE_DEFAULT, &f, err, sizeof(err)),
	          WEIR_EINVAL);
	CHECK(f == NULL);
	CHECK(access_log_variable_known("http_user_agent", 15));
	CHECK(access_log_variable_known("upstream_status", 15));
	CHECK(!access_log_variable_known("http_", 5));
	CHECK(!access_log_variable_known("request_body", 12));
}

static void test_remote_user(void)
{
	struct http_request req;
	struct http_client c = client();
	/* "alice:secret" */
	fixture_parse_request("GET / HTTP/1.1\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n", &req);
	struct access_entry e = {.req = &req, .client = &c, .status = 200,
	                         .upstream_response_length = -1, .upstream_response_time = -1};
	char *line = render("$remote_user", ACCESS_LOG_ESCAPE_DEFAULT, &e);
	CHECK_STR(line, "alice");
	free(line);
	fixture_parse_request("GET / HTTP/1.1\r\nAuthorization: Bearer abc\r\n\r\n", &req);
	line = render("$remote_user", ACCESS_LOG_ESCAPE_DEFAULT, &e);
	CHECK_STR(line, "-");
	free(line);
	fixture_parse_request("GET / HTTP/1.1\r\nAuthorization: Basic !!!!\r\n\r\n", &req);
	line = render("$remote_user", ACCESS_LOG_ESCAPE_DEFAULT, &e);
	CHECK_STR(line, "-");
	free(line);
}

/* A buffer of many lines longer than PIPE_BUF in all, flushed in writes of
 * whole lines: every byte reaches the fd, nothing is counted as dropped. */
static void test_writer_whole_lines(void)
{
	int fds[2];
	CHECK(pipe(fds) == 0);
	struct access_log_writer w;
	access_log_writer_init(&w, NULL, fds[1]);
	struct access_log_format *f = NULL;
	char err[64];
	CHECK_INT(access_log_format_new("line $status $http_x_pad", ACCESS_LOG_ESCAPE_DEFAULT, &f,
	                                err, sizeof(err)),
	          0);
	char pad[700];
	memset(pad, 'p', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	char raw[900];
	snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nX-Pad: %s\r\n\r\n", pad);
	struct http_request req;
	fixture_parse_request(raw, &req);
	struct http_client c = client();
	struct access_entry e = {.req = &req, .client = &c, .status = 200,
	                         .upstream_response_length = -1, .upstream_response_time = -1};
	/* loop NULL: every line is written at once; build a 20-line buffer by hand */
	for (int i = 0; i < 20; i++)
		CHECK_INT(access_log_render(f, &e, &w.buf, &w.len, &w.cap), 0);
	size_t total = w.len;
	access_log_writer_flush(&w);
	CHECK_INT(w.len, 0);
	close(fds[1]);
	char buf[PIPE_BUF * 2];
	size_t got = 0;
	for (;;) {
		ssize_t k = read(fds[0], buf, sizeof(buf));
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	CHECK_INT(got, total);
	CHECK_INT(w.dropped, 0);
	close(fds[0]);
	access_log_writer_cleanup(&w);
	access_log_format_free(f);
}

int main(void)
{
	test_remote_user();
	test_writer_whole_lines();
	test_default_format();
	test_variables_and_escaping();
	test_refusals();
	return check_finish("access_log_test");
}
