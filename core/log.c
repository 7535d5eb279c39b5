/* core/log.c — see log.h. The only process-wide state is the sink setting,
 * set once by main() before the loop starts. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <sys/time.h>

static enum mxg_log_level g_min = MXG_LOG_INFO;
static int g_syslog;

static const char *const level_names[] = {"debug", "info", "notice", "warning", "error"};

int mxg_log_level_parse(const char *s, enum mxg_log_level *out)
{
    for (int i = 0; i < 5; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum mxg_log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *mxg_log_level_name(enum mxg_log_level l)
{
    return (unsigned)l < 5 ? level_names[l] : "?";
}

void mxg_log_setup(enum mxg_log_level min, int use_syslog)
{
    g_min = min;
    g_syslog = use_syslog;
    if (use_syslog)
        openlog("mxguard", LOG_PID, LOG_MAIL);
}

void mxg_vlog(enum mxg_log_level l, const char *component, const char *fmt, va_list ap)
{
    if (l < g_min)
        return;
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (g_syslog) {
        static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR};
        syslog(prio[l], "%s: %s", component, msg);
        return;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03dZ %s %s: %s\n", ts, (int)(tv.tv_usec / 1000), mxg_log_level_name(l),
            component, msg);
}

void mxg_log(enum mxg_log_level l, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mxg_vlog(l, component, fmt, ap);
    va_end(ap);
}
