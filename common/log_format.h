/* common/log_format.h - the variables of an access log format (ingress-nginx's
 * log-format-upstream, nginx log_format syntax): the names weir can log,
 * shared by the controller (which checks a ConfigMap's format) and the
 * proxy (which renders it). */
#ifndef WEIR_COMMON_LOG_FORMAT_H
#define WEIR_COMMON_LOG_FORMAT_H

#include <stdbool.h>
#include <stddef.h>

enum log_var {
	LOG_V_LITERAL,
	LOG_V_REMOTE_ADDR,
	LOG_V_REMOTE_PORT,
	LOG_V_REMOTE_USER,
	LOG_V_PROXY_PROTOCOL_ADDR,
	LOG_V_TIME_LOCAL,
	LOG_V_TIME_ISO8601,
	LOG_V_MSEC,
	LOG_V_REQUEST,
	LOG_V_REQUEST_METHOD,
	LOG_V_REQUEST_URI,
	LOG_V_URI,
	LOG_V_ARGS,
	LOG_V_SERVER_PROTOCOL,
	LOG_V_SCHEME,
	LOG_V_HOST,
	LOG_V_SERVER_PORT,
	LOG_V_STATUS,
	LOG_V_BODY_BYTES_SENT,
	LOG_V_BYTES_SENT,
	LOG_V_REQUEST_LENGTH,
	LOG_V_REQUEST_TIME,
	LOG_V_UPSTREAM_NAME,
	LOG_V_ALT_UPSTREAM_NAME,
	LOG_V_UPSTREAM_ADDR,
	LOG_V_UPSTREAM_STATUS,
	LOG_V_UPSTREAM_RESPONSE_TIME,
	LOG_V_UPSTREAM_RESPONSE_LENGTH,
	LOG_V_REQ_ID,
	LOG_V_NAMESPACE,
	LOG_V_INGRESS_NAME,
	LOG_V_SERVICE_NAME,
	LOG_V_SERVICE_PORT,
	LOG_V_HTTP, /* a request header */
};

/* The variable named name[0..len) (without "$"): its id, or -1 when weir
 * cannot log it. "http_NAME" (NAME not empty) is LOG_V_HTTP. */
int log_format_var(const char *name, size_t len);

/* True for the characters of a variable name. */
bool log_format_var_char(char c);

/* Check a whole format: every "$name" or "${name}" is known and every "${"
 * is closed. Returns 0, or WEIR_EINVAL with err ("unknown variable $x"). */
int log_format_check(const char *fmt, char *err, size_t errlen);

#endif
