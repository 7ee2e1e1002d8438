/* proxy/access_log.h - one line per request on standard output, in an nginx
 * log_format (ingress-nginx's log-format-upstream; its default when the
 * table names none), with nginx's escaping rules (default, json or none).
 * A format is compiled once per table; each worker renders into its own
 * buffer and writes whole lines, so lines of different workers never mix. */
#ifndef WEIR_PROXY_ACCESS_LOG_H
#define WEIR_PROXY_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "loop.h"
#include "route_table.h"

/* ingress-nginx's default log-format-upstream. */
#define ACCESS_LOG_DEFAULT_FORMAT                                                                 \
	"$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent "        \
	"\"$http_referer\" \"$http_user_agent\" $request_length $request_time "                    \
	"[$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr "               \
	"$upstream_response_length $upstream_response_time $upstream_status $req_id"

enum access_log_escape { ACCESS_LOG_ESCAPE_DEFAULT, ACCESS_LOG_ESCAPE_JSON, ACCESS_LOG_ESCAPE_NONE };

struct access_log_format; /* opaque, immutable once compiled */

/* Compile fmt (NULL: ACCESS_LOG_DEFAULT_FORMAT). Variables are $name or
 * ${name}: the names access_log_variable_known accepts. Returns 0 and *out,
 * WEIR_EINVAL with err naming the first unknown variable, or WEIR_ENOMEM. */
int access_log_format_new(const char *fmt, enum access_log_escape esc,
                          struct access_log_format **out, char *err, size_t errlen);
void access_log_format_free(struct access_log_format *f);

/* True when name (without "$") is a variable weir can log: remote_addr,
 * remote_port, remote_user, the_real_ip, proxy_protocol_addr, time_local,
 * time_iso8601, msec, request, request_method, request_uri, uri, args,
 * server_protocol, scheme, host, server_port, status, body_bytes_sent,
 * bytes_sent, request_length, request_time, proxy_upstream_name,
 * proxy_alternative_upstream_name, upstream_addr, upstream_status,
 * upstream_response_time, upstream_response_length, req_id, request_id,
 * namespace, ingress_name, service_name, service_port, and http_NAME (a
 * request header, "-" to "_", case ignored). */
bool access_log_variable_known(const char *name, size_t len);

/* What one finished request looked like; strings borrowed for the call. */
struct access_entry {
	const struct http_request *req; /* NULL: no request line was read */
	const struct http_client *client;
	const char *req_id;       /* $req_id */
	const char *remote_user;  /* basic auth user, NULL: none */
	const char *source;       /* "namespace/ingress" of the route, NULL: none */
	const char *backend;      /* "namespace/service:port", NULL: none */
	const char *alt_backend;  /* the canary's, NULL: none */
	const char *upstream_addr; /* "10.0.0.1:8080", NULL: no upstream */
	int status;
	int upstream_status;       /* 0: none */
	uint64_t body_bytes_sent;  /* response body bytes written to the client */
	uint64_t bytes_sent;       /* head + body */
	uint64_t request_length;   /* request line, head and body bytes read */
	int64_t upstream_response_length; /* -1: none */
	double request_time;       /* seconds */
	double upstream_response_time; /* seconds, < 0: none */
	int64_t now_ms;            /* wall clock, milliseconds since the epoch */
};

/* Render e as one line (with "\n") appended to *buf (grown with realloc;
 * *len and *cap updated). Returns 0 or WEIR_ENOMEM. */
int access_log_render(const struct access_log_format *f, const struct access_entry *e,
                      char **buf, size_t *len, size_t *cap);

/* One worker's output: rendered lines collect in a buffer written to fd
 * (standard output) when it holds 16 KiB or 50 ms after its first line, in
 * writes of whole lines of at most PIPE_BUF bytes (so lines of several
 * workers sharing a pipe never interleave). Owned by one thread. */
struct loop;
struct access_log_writer {
	int fd;
	struct loop *loop;
	struct loop_timer timer;
	char *buf;
	size_t len, cap;
	uint64_t dropped; /* lines lost to a failed write or out of memory */
};

void access_log_writer_init(struct access_log_writer *w, struct loop *loop, int fd);
void access_log_write(struct access_log_writer *w, const struct access_log_format *f,
                      const struct access_entry *e);
void access_log_writer_flush(struct access_log_writer *w);
/* Flush, cancel the timer, free the buffer. */
void access_log_writer_cleanup(struct access_log_writer *w);

#endif
