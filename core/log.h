/* core/log.h — one logging sink for the whole process.
 *
 * Contract: mxg_log() writes one line "TIME LEVEL component: message" to
 * stderr (or "component: message" to syslog when mxg_log_setup() was told
 * so). Lines below the configured level are dropped.
 * With the JSON format (log.format = "json") each line is instead one JSON
 * object (RFC 8259): {"time":"2024-05-01T12:00:00.123Z","level":"info",
 * "component":"smtp","message":"..."} — strings escaped (", \, control
 * characters as \n, \t or \u00XX; bytes that are not valid UTF-8 become
 * U+FFFD), so every line parses whatever the message carries. The logger keeps its settings in one struct owned by
 * main() and passed in once; no other module keeps log state.
 * Thread-safety: mxguard is single-threaded (one libuv loop). */
#ifndef MXG_LOG_H
#define MXG_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum mxg_log_level { MXG_LOG_DEBUG = 0, MXG_LOG_INFO, MXG_LOG_NOTICE, MXG_LOG_WARN, MXG_LOG_ERR };

/* Parse "debug|info|notice|warning|error"; returns 0 and sets *out, or -1. */
int mxg_log_level_parse(const char *s, enum mxg_log_level *out);
const char *mxg_log_level_name(enum mxg_log_level l);

enum mxg_log_format { MXG_LOG_TEXT = 0, MXG_LOG_JSON };

/* Set the minimum level and the sink (use_syslog != 0 → syslog(3)). May be
 * called again (SIGHUP reload). */
void mxg_log_setup(enum mxg_log_level min, int use_syslog);
/* The line format (default text). */
void mxg_log_set_format(enum mxg_log_format f);

/* Append s as a JSON string body (without the quotes) to buf[*used..cap),
 * escaped as described above; stops (and stays NUL-terminated) when full.
 * Exposed for the unit tests. */
void mxg_log_json_escape(char *buf, size_t cap, size_t *used, const char *s);

void mxg_log(enum mxg_log_level l, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mxg_vlog(enum mxg_log_level l, const char *component, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Would a line at level l be written? (to skip building text only a debug
 * line would show) */
int mxg_log_enabled(enum mxg_log_level l);

#define LOG_D(comp, ...) mxg_log(MXG_LOG_DEBUG, comp, __VA_ARGS__)
#define LOG_I(comp, ...) mxg_log(MXG_LOG_INFO, comp, __VA_ARGS__)
#define LOG_N(comp, ...) mxg_log(MXG_LOG_NOTICE, comp, __VA_ARGS__)
#define LOG_W(comp, ...) mxg_log(MXG_LOG_WARN, comp, __VA_ARGS__)
#define LOG_E(comp, ...) mxg_log(MXG_LOG_ERR, comp, __VA_ARGS__)

#endif
