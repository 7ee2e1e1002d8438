/* common/log_format.c - access log variables (log_format.h). */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "log_format.h"

static const struct {
	const char *name;
	int v;
} vars[] = {
    {"remote_addr", LOG_V_REMOTE_ADDR},
    {"the_real_ip", LOG_V_REMOTE_ADDR},
    {"remote_port", LOG_V_REMOTE_PORT},
    {"remote_user", LOG_V_REMOTE_USER},
    {"proxy_protocol_addr", LOG_V_PROXY_PROTOCOL_ADDR},
    {"time_local", LOG_V_TIME_LOCAL},
    {"time_iso8601", LOG_V_TIME_ISO8601},
    {"msec", LOG_V_MSEC},
    {"request", LOG_V_REQUEST},
    {"request_method", LOG_V_REQUEST_METHOD},
    {"request_uri", LOG_V_REQUEST_URI},
    {"uri", LOG_V_URI},
    {"args", LOG_V_ARGS},
    {"server_protocol", LOG_V_SERVER_PROTOCOL},
    {"scheme", LOG_V_SCHEME},
    {"host", LOG_V_HOST},
    {"server_port", LOG_V_SERVER_PORT},
    {"status", LOG_V_STATUS},
    {"body_bytes_sent", LOG_V_BODY_BYTES_SENT},
    {"bytes_sent", LOG_V_BYTES_SENT},
    {"request_length", LOG_V_REQUEST_LENGTH},
    {"request_time", LOG_V_REQUEST_TIME},
    {"proxy_upstream_name", LOG_V_UPSTREAM_NAME},
    {"proxy_alternative_upstream_name", LOG_V_ALT_UPSTREAM_NAME},
    {"upstream_addr", LOG_V_UPSTREAM_ADDR},
    {"upstream_status", LOG_V_UPSTREAM_STATUS},
    {"upstream_response_time", LOG_V_UPSTREAM_RESPONSE_TIME},
    {"upstream_response_length", LOG_V_UPSTREAM_RESPONSE_LENGTH},
    {"req_id", LOG_V_REQ_ID},
    {"request_id", LOG_V_REQ_ID},
    {"namespace", LOG_V_NAMESPACE},
    {"ingress_name", LOG_V_INGRESS_NAME},
    {"service_name", LOG_V_SERVICE_NAME},
    {"service_port", LOG_V_SERVICE_PORT},
};

bool log_format_var_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

int log_format_var(const char *name, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!log_format_var_char(name[i]))
			return -1;
	if (len > 5 && strncmp(name, "http_", 5) == 0)
		return LOG_V_HTTP;
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if (strlen(vars[i].name) == len && strncmp(vars[i].name, name, len) == 0)
			return vars[i].v;
	return -1;
}

int log_format_check(const char *fmt, char *err, size_t errlen)
{
	for (const char *p = fmt; *p; p++) {
		if (*p != '$')
			continue;
		const char *name = p + 1;
		bool braced = *name == '{';
		if (braced)
			name++;
		const char *end = name;
		while (log_format_var_char(*end))
			end++;
		if (braced && *end != '}') {
			snprintf(err, errlen, "\"${\" without a closing \"}\"");
			return WEIR_EINVAL;
		}
		if (end == name)
			continue; /* a lone "$" is text */
		if (log_format_var(name, (size_t)(end - name)) < 0) {
			snprintf(err, errlen, "unknown variable $%.*s", (int)(end - name), name);
			return WEIR_EINVAL;
		}
		p = end - 1 + (braced ? 1 : 0);
	}
	return 0;
}
