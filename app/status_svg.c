/* app/status_svg.c — the status page's chart (status.h): TLS session
 * outcomes per UTC day as stacked bars in SVG, drawn on the server (the
 * page has no script). Only digits and dates we formatted ourselves reach
 * the markup. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "status.h"

#define SVG_W 760
#define SVG_H 230
#define PLOT_X 56  /* left edge of the plot (room for the y labels) */
#define PLOT_Y 12  /* top edge */
#define PLOT_H 170 /* height of the plot; the dates go below */
#define SLOT_W 23  /* one day's horizontal room */
#define BAR_W 17

/* The smallest 1, 2 or 5 times a power of ten that is >= v (at least 1). */
static uint64_t nice_max(uint64_t v)
{
    uint64_t p = 1;
    for (;;) {
        if (v <= p)
            return p;
        if (v <= 2 * p)
            return 2 * p;
        if (v <= 5 * p)
            return 5 * p;
        if (p > UINT64_MAX / 10)
            return v;
        p *= 10;
    }
}

/* Pixel height of count c on a scale of max (never taller than the plot). */
static int bar_h(uint64_t c, uint64_t max)
{
    if (c == 0)
        return 0;
    long double h = (long double)c * PLOT_H / (long double)max;
    return h < 1 ? 1 : h > PLOT_H ? PLOT_H : (int)(h + 0.5L);
}

/* Is s a date as we format it ("YYYY-MM-DD")? Anything else is not drawn. */
static int date_ok(const char *s)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return 0;
    return 1;
}

/* Append the chart (status.h). */
int mxg_status_svg(struct mxg_buf *b, const struct mxg_status_day *days, int n)
{
    uint64_t top = 0;
    for (int i = 0; i < n; i++)
        if (days[i].ok + days[i].fail > top)
            top = days[i].ok + days[i].fail;
    uint64_t max = nice_max(top);
    int rc = 0;
    rc |= mxg_buf_printf(b,
                         "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                         "viewBox=\"0 0 %d %d\" role=\"img\" aria-labelledby=\"chart-title\" "
                         "class=\"chart\">\n<title id=\"chart-title\">TLS sessions per day: "
                         "successes and failures</title>\n",
                         SVG_W, SVG_H, SVG_W, SVG_H);
    /* axes and the y scale: 0, half, max */
    for (int k = 0; k <= 2; k++) {
        int y = PLOT_Y + PLOT_H - k * PLOT_H / 2;
        rc |= mxg_buf_printf(b,
                             "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"grid\" stroke=\"#bbb\"/>"
                             "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"axis\" font-size=\"11\" fill=\"#444\">%" PRIu64
                             "</text>\n",
                             PLOT_X, y, PLOT_X + MXG_STATUS_DAYS * SLOT_W, y, PLOT_X - 6, y + 4,
                             max / 2 * (uint64_t)k + (k == 2 ? max % 2 : 0));
    }
    for (int i = 0; i < n; i++) {
        if (!date_ok(days[i].day))
            continue;
        int x = PLOT_X + i * SLOT_W + (SLOT_W - BAR_W) / 2;
        int hs = bar_h(days[i].ok, max), hf = bar_h(days[i].fail, max);
        if (hs + hf > PLOT_H)
            hf = PLOT_H - hs;
        int base = PLOT_Y + PLOT_H;
        rc |= mxg_buf_printf(b, "<g class=\"day\"><title>%s: %" PRIu64 " successful, %" PRIu64
                                " failed</title>",
                             days[i].day, days[i].ok, days[i].fail);
        rc |= mxg_buf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                                "class=\"ok\" fill=\"#2e7d32\"/>",
                             x, base - hs, BAR_W, hs);
        rc |= mxg_buf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                                "class=\"fail\" fill=\"#c62828\"/>",
                             x, base - hs - hf, BAR_W, hf);
        /* a day with nothing still gets a hover target */
        rc |= mxg_buf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                                "class=\"hit\" fill=\"transparent\"/></g>\n",
                             x, PLOT_Y, BAR_W, PLOT_H);
        if (i == 0 || i == n - 1 || i == n / 2)
            rc |= mxg_buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"%s\" "
                                    "class=\"axis\" font-size=\"11\" fill=\"#444\">%s</text>\n",
                                 x + BAR_W / 2, PLOT_Y + PLOT_H + 18,
                                 i == n - 1 && i ? "end" : i == 0 ? "start" : "middle",
                                 days[i].day);
    }
    /* the legend */
    int ly = PLOT_Y + PLOT_H + 36;
    rc |= mxg_buf_printf(b,
                         "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" class=\"ok\" fill=\"#2e7d32\"/>"
                         "<text x=\"%d\" y=\"%d\" class=\"axis\" font-size=\"11\" fill=\"#444\">successful sessions</text>"
                         "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" class=\"fail\" fill=\"#c62828\"/>"
                         "<text x=\"%d\" y=\"%d\" class=\"axis\" font-size=\"11\" fill=\"#444\">failed sessions</text>\n</svg>\n",
                         PLOT_X, ly - 10, PLOT_X + 18, ly, PLOT_X + 180, ly - 10, PLOT_X + 198,
                         ly);
    return rc ? -1 : 0;
}
