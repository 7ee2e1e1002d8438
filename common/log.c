/* common/log.c - one-line log records on stderr, as text or JSON. */
#include "log.h"
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_format log_fmt = LOG_FORMAT_TEXT;
static enum log_level log_min = LOG_LEVEL_INFO;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_init(enum log_format format, enum log_level min_level)
{
	log_fmt = format;
	log_min = min_level;
}

int log_format_parse(const char *s, enum log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = LOG_FORMAT_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else
		return WEIR_EINVAL;
	return 0;
}

/* Append src to dst (capacity cap, current length *len) escaping what would
 * break a one-line record; truncates silently at the cap. */
static void append_escaped(char *dst, size_t cap, size_t *len, const char *src, int json)
{
	for (; *src && *len + 7 < cap; src++) {
		unsigned char c = (unsigned char)*src;
		if (json && (c == '"' || c == '\\')) {
			dst[(*len)++] = '\\';
			dst[(*len)++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			*len += (size_t)snprintf(dst + *len, cap - *len,
			                         json ? "\\u%04x" : "\\x%02x", c);
		} else {
			dst[(*len)++] = (char)c;
		}
	}
	dst[*len] = '\0';
}

void log_write(enum log_level level, const char *component, const char *fmt, ...)
{
	char msg[2048], line[4608];
	size_t len = 0;
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (log_fmt == LOG_FORMAT_JSON) {
		len = (size_t)snprintf(
		    line, sizeof(line),
		    "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\","
		    "\"component\":\"%s\",\"msg\":\"",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		    ts.tv_nsec / 1000000, level_names[level], component);
		append_escaped(line, sizeof(line) - 3, &len, msg, 1);
		memcpy(line + len, "\"}\n", 4);
		len += 3;
	} else {
		len = (size_t)snprintf(
		    line, sizeof(line),
		    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ", tm.tm_year + 1900,
		    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		    ts.tv_nsec / 1000000, level_names[level], component);
		append_escaped(line, sizeof(line) - 2, &len, msg, 0);
		line[len++] = '\n';
		line[len] = '\0';
	}
	/* One write() per record keeps lines from different threads whole. */
	if (write(STDERR_FILENO, line, len) < 0)
		return;
}
