/* core/log.h — one logging sink for the whole process.
 *
 * Contract: mxg_log() writes one line "LEVEL component: message" to stderr
 * (or syslog when mxg_log_open() was told so). Lines below the configured
 * level are dropped. The logger keeps its settings in one struct owned by
 * main() and passed in once; no other module keeps log state.
 * Thread-safety: mxguard is single-threaded (one libuv loop). */
#ifndef MXG_LOG_H
#define MXG_LOG_H

#include <stdarg.h>

enum mxg_log_level { MXG_LOG_DEBUG = 0, MXG_LOG_INFO, MXG_LOG_NOTICE, MXG_LOG_WARN, MXG_LOG_ERR };

/* Parse "debug|info|notice|warning|error"; returns 0 and sets *out, or -1. */
int mxg_log_level_parse(const char *s, enum mxg_log_level *out);
const char *mxg_log_level_name(enum mxg_log_level l);

/* Set the minimum level and the sink (use_syslog != 0 → syslog(3)). */
void mxg_log_setup(enum mxg_log_level min, int use_syslog);

void mxg_log(enum mxg_log_level l, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mxg_vlog(enum mxg_log_level l, const char *component, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define LOG_D(comp, ...) mxg_log(MXG_LOG_DEBUG, comp, __VA_ARGS__)
#define LOG_I(comp, ...) mxg_log(MXG_LOG_INFO, comp, __VA_ARGS__)
#define LOG_N(comp, ...) mxg_log(MXG_LOG_NOTICE, comp, __VA_ARGS__)
#define LOG_W(comp, ...) mxg_log(MXG_LOG_WARN, comp, __VA_ARGS__)
#define LOG_E(comp, ...) mxg_log(MXG_LOG_ERR, comp, __VA_ARGS__)

#endif
