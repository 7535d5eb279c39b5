/* report/rpt_names.c — name tables, error strings and the small checks the
 * other report/ files share (days, domains). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rpt_int.h"

/* Contract: see tlsrpt.h. */
const char *mxg_rpt_strerror(int code)
{
    switch (code) {
    case MXG_RPT_OK: return "success";
    case MXG_RPT_EINVAL: return "invalid argument or input";
    case MXG_RPT_ENOMEM: return "out of memory";
    case MXG_RPT_EDB: return "database error";
    case MXG_RPT_ENODATA: return "no data";
    case MXG_RPT_EZLIB: return "compression error";
    }
    return "unknown error";
}

static const char *const ptype_names[] = {
    [MXG_RPT_TLSA] = "tlsa",
    [MXG_RPT_STS] = "sts",
    [MXG_RPT_NO_POLICY] = "no-policy-found",
};

/* Contract: see tlsrpt.h. */
const char *mxg_rpt_policy_type_name(enum mxg_rpt_policy_type t)
{
    if ((unsigned)t >= sizeof ptype_names / sizeof ptype_names[0])
        return NULL;
    return ptype_names[t];
}

static const char *const result_names[] = {
    MXG_RPT_R_STARTTLS_NOT_SUPPORTED, MXG_RPT_R_CERT_HOST_MISMATCH,
    MXG_RPT_R_CERT_EXPIRED,           MXG_RPT_R_CERT_NOT_TRUSTED,
    MXG_RPT_R_VALIDATION_FAILURE,     MXG_RPT_R_TLSA_INVALID,
    MXG_RPT_R_DNSSEC_INVALID,         MXG_RPT_R_DANE_REQUIRED,
    MXG_RPT_R_STS_POLICY_FETCH_ERROR, MXG_RPT_R_STS_POLICY_INVALID,
    MXG_RPT_R_STS_WEBPKI_INVALID,
};

/* Contract: see tlsrpt.h. */
int mxg_rpt_result_type_known(const char *name)
{
    if (!name)
        return 0;
    for (size_t i = 0; i < sizeof result_names / sizeof result_names[0]; i++)
        if (strcmp(name, result_names[i]) == 0)
            return 1;
    return 0;
}

static const char *const dstatus_names[] = {
    [MXG_RPT_PENDING] = "pending",
    [MXG_RPT_SENT] = "sent",
    [MXG_RPT_GAVE_UP] = "gave-up",
};

/* Contract: see tlsrpt.h. */
const char *mxg_rpt_dstatus_name(enum mxg_rpt_dstatus s)
{
    if ((unsigned)s >= sizeof dstatus_names / sizeof dstatus_names[0])
        return NULL;
    return dstatus_names[s];
}

/* Contract: see rpt_int.h. err may be NULL. */
void rpt_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Contract: see rpt_int.h. */
int rpt_day_ok(const char *day)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, m, d;
    if (!day || strlen(day) != MXG_RPT_DAY_LEN || day[4] != '-' || day[7] != '-')
        return 0;
    for (int i = 0; i < MXG_RPT_DAY_LEN; i++)
        if (i != 4 && i != 7 && (day[i] < '0' || day[i] > '9'))
            return 0;
    y = (day[0] - '0') * 1000 + (day[1] - '0') * 100 + (day[2] - '0') * 10 + (day[3] - '0');
    m = (day[5] - '0') * 10 + (day[6] - '0');
    d = (day[8] - '0') * 10 + (day[9] - '0');
    if (m < 1 || m > 12 || d < 1)
        return 0;
    return d <= mdays[m - 1] + (m == 2 && leap(y));
}

/* Contract: see rpt_int.h. */
int rpt_day_of(int64_t t, char out[MXG_RPT_DAY_LEN + 1])
{
    struct tm tm;
    time_t tt = (time_t)t;
    if ((int64_t)tt != t || !gmtime_r(&tt, &tm) || tm.tm_year + 1900 < 0 ||
        tm.tm_year + 1900 > 9999)
        return -1;
    snprintf(out, MXG_RPT_DAY_LEN + 1, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday);
    return 0;
}

/* Contract: see rpt_int.h. */
int rpt_domain_norm(const char *in, char out[MXG_RPT_DOMAIN_MAX])
{
    size_t n;
    if (!in)
        return -1;
    n = strnlen(in, MXG_RPT_DOMAIN_MAX + 1);
    if (n > 0 && in[n - 1] == '.')
        n--;
    if (n == 0 || n > MXG_RPT_DOMAIN_MAX - 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= ' ' || c == 0x7f || c == '/' || c == '"' || c == '\\')
            return -1;
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : (char)c;
    }
    out[n] = '\0';
    return 0;
}
