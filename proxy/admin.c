/* proxy/admin.c - the admin port: /healthz, /readyz, /metrics.
 *
 * This is the one place weir uses libwebsockets' own HTTP server: the admin
 * port sees a few scrapes a minute, so one lws context with one service thread
 * suits it. Each response is built whole, written from the writeable callback
 * in bounded chunks, and the connection is closed after it. lws bounds the
 * request head (max_http_header_data) and times out idle or slow clients. */
#include "admin.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "table.h"

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define ADMIN_MAX_REQUEST 8192 /* bytes of request head kept; more is refused */
#define ADMIN_TIMEOUT_SECS 5   /* a client that sends nothing useful is dropped */
#define ADMIN_RESPONSE_SECS 10 /* a client too slow to read its answer is dropped */
#define ADMIN_CHUNK 16384      /* body bytes per lws_write */

struct admin_conn {
	char *body; /* malloc'd response body, or NULL for a static one */
	const char *static_body;
	size_t len, sent;
	bool done; /* everything sent: close on the next writeable */
};

static pthread_mutex_t admin_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lws_context *admin_ctx;
static pthread_t admin_thread;
static atomic_bool admin_stopping;
static bool admin_running;

static void lws_log_emit(int level, const char *line)
{
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	/* What lws reports is mostly a client misbehaving (a request over the cap, a bad
	 * method): a warning. admin_start logs its own errors. */
	log_warn("proxy.admin", "lws: %.*s", (int)n, line);
}

static int send_head(struct lws *wsi, unsigned int status, const char *ctype, size_t len,
                     bool allow_header)
{
	unsigned char buf[LWS_PRE + 512];
	unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;

	if (lws_add_http_common_headers(wsi, status, ctype, (lws_filepos_t)len, &p, end))
		return -1;
	if (allow_header &&
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
	                                (const unsigned char *)"GET, HEAD", 9, &p, end))
		return -1;
	if (lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close",
	                                 5, &p, end))
		return -1;
	if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
	                                (const unsigned char *)"no-store", 8, &p, end))
		return -1;
	if (lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	return 0;
}

/* Decide the answer to one request and send its head; the body follows from
 * the writeable callback. */
static int on_request(struct lws *wsi, struct admin_conn *c)
{
	char *uri = NULL;
	int uri_len = 0;
	int method = lws_http_get_uri_and_method(wsi, &uri, &uri_len);
	unsigned int status;
	const char *ctype = "text/plain; charset=utf-8";
	bool head = method == LWSHUMETH_HEAD, allow = false;

	c->body = NULL;
	c->static_body = NULL;
	c->sent = 0;
	c->done = false;

	if (method != LWSHUMETH_GET && method != LWSHUMETH_HEAD) {
		status = 405;
		allow = true;
		c->static_body = "method not allowed\n";
	} else if (!uri) {
		status = 400;
		c->static_body = "bad request\n";
	} else if (uri_len == 8 && memcmp(uri, "/healthz", 8) == 0) {
		status = 200;
		c->static_body = "ok\n";
	} else if (uri_len == 7 && memcmp(uri, "/readyz", 7) == 0) {
		bool ready = table_ready();
		status = ready ? 200 : 503;
		c->static_body = ready ? "ready\n" : "no route table loaded\n";
	} else if (uri_len == 8 && memcmp(uri, "/metrics", 8) == 0) {
		size_t len = 0;
		if (metrics_render(&c->body, &len) == 0) {
			status = 200;
			ctype = "text/plain; version=0.0.4";
			c->len = len;
		} else {
			c->body = NULL;
			status = 503;
			c->static_body = "out of memory\n";
		}
	} else {
		status = 404;
		c->static_body = "not found\n";
	}
	if (c->static_body)
		c->len = strlen(c->static_body);

	/* The whole answer must be taken within the deadline, so a client that stops
	 * reading cannot hold a connection (and the body) forever. */
	lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, ADMIN_RESPONSE_SECS);
	if (send_head(wsi, status, ctype, c->len, allow))
		return -1;
	if (head) {
		/* HEAD: the same head, no body. */
		free(c->body);
		c->body = NULL;
		c->static_body = NULL;
		c->len = 0;
	}
	c->done = c->len == 0;
	lws_callback_on_writable(wsi);
	return 0;
}

static int on_writeable(struct lws *wsi, struct admin_conn *c)
{
	unsigned char buf[LWS_PRE + ADMIN_CHUNK];

	if (c->done)
		return -1; /* lws only calls us once what we wrote has drained: close */
	const char *src = c->body ? c->body : c->static_body;
	size_t n = c->len - c->sent;
	if (n > ADMIN_CHUNK)
		n = ADMIN_CHUNK;
	memcpy(buf + LWS_PRE, src + c->sent, n);
	bool last = c->sent + n == c->len;
	int w = lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
	if (w < (int)n)
		return -1;
	c->sent += n;
	if (last)
		c->done = true;
	lws_callback_on_writable(wsi);
	return 0;
}

static int admin_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len)
{
	struct admin_conn *c = user;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return on_request(wsi, c);
	case LWS_CALLBACK_HTTP_BODY:
		return 0; /* every body-bearing method gets 405; the body is ignored */
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return on_writeable(wsi, c);
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return -1; /* no WebSocket or h2c here: hang up */
	case LWS_CALLBACK_RAW_ADOPT:
	case LWS_CALLBACK_RAW_RX:
		/* lws falls back to raw mode for what is not HTTP it serves (CONNECT, unknown
		 * protocols): not ours, drop it. */
		return -1;
	case LWS_CALLBACK_CLOSED_HTTP:
		if (c) {
			free(c->body);
			c->body = NULL;
		}
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols admin_protocols[] = {
    {"http", admin_callback, sizeof(struct admin_conn), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *admin_main(void *arg)
{
	struct lws_context *ctx = arg;
	while (!atomic_load(&admin_stopping)) {
		if (lws_service(ctx, 0) < 0)
			break;
	}
	return NULL;
}

int admin_start(const char *addr, int port)
{
	int rc = WEIR_EINVAL;
	struct lws_context_creation_info info;

	if (port <= 0 || port > 65535)
		return WEIR_EINVAL;
	pthread_mutex_lock(&admin_lock);
	if (admin_running)
		goto out_unlock;

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);

	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.max_http_header_data = ADMIN_MAX_REQUEST;
	info.max_http_header_pool = 4;
	info.fd_limit_per_thread = 64;
	info.timeout_secs = ADMIN_TIMEOUT_SECS;
	info.timeout_secs_ah_idle = ADMIN_TIMEOUT_SECS;
	info.keepalive_timeout = ADMIN_TIMEOUT_SECS;
	rc = WEIR_ENOMEM;
	struct lws_context *ctx = lws_create_context(&info);
	if (!ctx) {
		log_error("proxy.admin", "cannot create the admin server context");
		goto out_unlock;
	}

	memset(&info, 0, sizeof(info));
	info.port = port;
	info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
	/* An IPv4 address gets a plain IPv4 socket (lws would otherwise open an IPv6 one
	 * and map, which fails where IPv6 is off, as in many pods); NULL or "" means
	 * every address of both families. */
	struct in_addr a4;
	if (addr && inet_pton(AF_INET, addr, &a4) == 1)
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	info.iface = addr && *addr ? addr : NULL;
	info.protocols = admin_protocols;
	info.vhost_name = "admin";
	info.server_string = "weir-proxy";
	info.max_http_header_data = ADMIN_MAX_REQUEST;
	info.timeout_secs = ADMIN_TIMEOUT_SECS;
	info.timeout_secs_ah_idle = ADMIN_TIMEOUT_SECS;
	info.keepalive_timeout = ADMIN_TIMEOUT_SECS;
	if (!lws_create_vhost(ctx, &info)) {
		log_error("proxy.admin", "cannot listen on %s:%d (in use?)", addr ? addr : "*",
		          port);
		rc = WEIR_EIO;
		goto out_ctx;
	}

	atomic_store(&admin_stopping, false);
	if (pthread_create(&admin_thread, NULL, admin_main, ctx) != 0) {
		rc = WEIR_ENOMEM;
		goto out_ctx;
	}
	admin_ctx = ctx;
	admin_running = true;
	log_info("proxy.admin", "admin server on %s:%d", addr ? addr : "*", port);
	rc = 0;
	goto out_unlock;

out_ctx:
	lws_context_destroy(ctx);
out_unlock:
	pthread_mutex_unlock(&admin_lock);
	return rc;
}

void admin_stop(void)
{
	pthread_mutex_lock(&admin_lock);
	if (admin_running) {
		atomic_store(&admin_stopping, true);
		lws_cancel_service(admin_ctx);
		pthread_join(admin_thread, NULL);
		lws_context_destroy(admin_ctx);
		admin_ctx = NULL;
		admin_running = false;
	}
	pthread_mutex_unlock(&admin_lock);
}
