/* common/log.h - one-line log records on stderr, as text or JSON. */
#ifndef WEIR_COMMON_LOG_H
#define WEIR_COMMON_LOG_H

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Set the output format and the lowest level written. Thread-safe to call
 * before threads start; the log calls themselves are thread-safe. */
void log_init(enum log_format format, enum log_level min_level);

/* Parse "text" or "json" into *out. Returns 0 or WEIR_EINVAL. */
int log_format_parse(const char *s, enum log_format *out);

/* Write one record: a timestamp, the level, the program's component name
 * (static string, e.g. "proxy.reload") and a printf-style message. The
 * message is escaped for JSON in json mode; newlines never split a record. */
void log_write(enum log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(c, ...) log_write(LOG_LEVEL_DEBUG, c, __VA_ARGS__)
#define log_info(c, ...) log_write(LOG_LEVEL_INFO, c, __VA_ARGS__)
#define log_warn(c, ...) log_write(LOG_LEVEL_WARN, c, __VA_ARGS__)
#define log_error(c, ...) log_write(LOG_LEVEL_ERROR, c, __VA_ARGS__)

#endif
