/* core/log.c — see log.h. The only process-wide state is the sink setting
 * (level, syslog, format), set by main() before the loop starts and again on
 * a SIGHUP reload, always from the loop thread. */
#include "log.h"
#include "str.h"

#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <sys/time.h>

static enum mxg_log_level g_min = MXG_LOG_INFO;
static int g_syslog;
static enum mxg_log_format g_format = MXG_LOG_TEXT;

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
    if (use_syslog && !g_syslog)
        openlog("mxguard", LOG_PID, LOG_MAIL);
    else if (!use_syslog && g_syslog)
        closelog();
    g_syslog = use_syslog;
}

void mxg_log_set_format(enum mxg_log_format f)
{
    g_format = f;
}

/* Append n bytes; 0, or -1 when they do not fit (nothing appended). */
static int put(char *buf, size_t cap, size_t *used, const char *s, size_t n)
{
    if (*used + n >= cap)
        return -1;
    memcpy(buf + *used, s, n);
    *used += n;
    buf[*used] = '\0';
    return 0;
}

void mxg_log_json_escape(char *buf, size_t cap, size_t *used, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    if (cap == 0)
        return;
    buf[*used < cap ? *used : cap - 1] = '\0';
    while (*p) {
        char esc[8];
        const char *out = esc;
        size_t n = 2;
        esc[0] = '\\';
        switch (*p) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                n = 6;
            } else if (*p < 0x80) {
                out = (const char *)p;
                n = 1;
            } else if ((n = mxg_utf8_seq(p)) > 0) {
                out = (const char *)p;
            } else {
                out = "\xEF\xBF\xBD"; /* U+FFFD for a byte that is not UTF-8 */
                n = 3;
                if (put(buf, cap, used, out, n) < 0)
                    return;
                p++;
                continue;
            }
        }
        if (put(buf, cap, used, out, n) < 0)
            return;
        p += out == (const char *)p ? n : 1;
    }
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) into ts[0..len). gmtime_r and strftime
 * run once a second: the seconds' text is kept per thread (a worker thread
 * that logs has its own) and only the milliseconds are written per line. */
static void timestamp(char *ts, size_t len)
{
    static _Thread_local time_t last = (time_t)-1;
    static _Thread_local char sec[32];
    static _Thread_local size_t sec_len;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    if (tv.tv_sec != last) {
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        sec_len = strftime(sec, sizeof sec, "%Y-%m-%dT%H:%M:%S", &tm);
        sec[sec_len] = '\0';
        last = tv.tv_sec;
    }
    int ms = (int)(tv.tv_usec / 1000);
    if (len < sec_len + 6 || ms < 0 || ms > 999) {
        snprintf(ts, len, "%s.%03dZ", sec, ms);
        return;
    }
    memcpy(ts, sec, sec_len);
    char *p = ts + sec_len;
    *p++ = '.';
    *p++ = (char)('0' + ms / 100);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    *p++ = 'Z';
    *p = '\0';
}

static void log_json(enum mxg_log_level l, const char *component, const char *msg)
{
    char line[16384], ts[40];
    size_t used = 0;
    timestamp(ts, sizeof ts);
    used = (size_t)snprintf(line, sizeof line, "{\"time\":\"%s\",\"level\":\"%s\",\"component\":\"",
                            ts, mxg_log_level_name(l));
    mxg_log_json_escape(line, sizeof line - 4, &used, component);
    put(line, sizeof line - 4, &used, "\",\"message\":\"", 13);
    mxg_log_json_escape(line, sizeof line - 4, &used, msg);
    memcpy(line + used, "\"}", 3); /* room kept: cap - 4 above */
    used += 2;
    if (g_syslog) {
        static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR};
        syslog(prio[l], "%s", line);
        return;
    }
    line[used++] = '\n';
    fwrite(line, 1, used, stderr);
}

void mxg_vlog(enum mxg_log_level l, const char *component, const char *fmt, va_list ap)
{
    if (l < g_min || (unsigned)l >= 5)
        return;
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (g_format == MXG_LOG_JSON) {
        log_json(l, component, msg);
        return;
    }
    if (g_syslog) {
        static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR};
        syslog(prio[l], "%s: %s", component, msg);
        return;
    }
    /* "TIME LEVEL component: message\n" put together here and written with
     * one fwrite: the same octets (and one write(2) on the unbuffered
     * stderr) as fprintf, without the printf machinery */
    char line[sizeof msg + 256];
    size_t used = 0;
    timestamp(line, 40);
    used = strlen(line);
    const char *level = mxg_log_level_name(l);
    if (put(line, sizeof line, &used, " ", 1) < 0 || put(line, sizeof line, &used, level, strlen(level)) < 0 ||
        put(line, sizeof line, &used, " ", 1) < 0 ||
        put(line, sizeof line, &used, component, strlen(component)) < 0 ||
        put(line, sizeof line, &used, ": ", 2) < 0 || put(line, sizeof line, &used, msg, strlen(msg)) < 0 ||
        put(line, sizeof line, &used, "\n", 1) < 0) {
        char ts[40];
        timestamp(ts, sizeof ts);
        fprintf(stderr, "%s %s %s: %s\n", ts, level, component, msg);
        return;
    }
    fwrite(line, 1, used, stderr);
}

/* Contract: see log.h. */
int mxg_log_enabled(enum mxg_log_level l)
{
    return l >= g_min && (unsigned)l < 5;
}

void mxg_log(enum mxg_log_level l, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mxg_vlog(l, component, fmt, ap);
    va_end(ap);
}
