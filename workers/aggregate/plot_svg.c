/* workers/aggregate/plot_svg.c — SVG line charts (see plot_svg.h).
 *
 * Layout per panel (pixels): 560 x 400, plot area inset by margins for tick labels and axis
 * titles. Log axes put ticks at powers of the base (log10 adds light minor lines at 2x and 5x);
 * linear axes use "nice" steps (1, 2, 2.5, 5 x 10^n). Colours: the Tableau-10 palette, which stays
 * distinguishable for common colour-vision deficiencies in its first entries; series beyond the
 * palette reuse it with dashed lines.
 */
#include "workers/aggregate/plot_svg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define PW 560.0  /* panel width */
#define PH 400.0  /* panel height */
#define ML 78.0   /* margins around the plot area */
#define MR 24.0
#define MT 44.0
#define MB 62.0
#define FONT "DejaVu Sans, Helvetica, Arial, sans-serif"

static const char *const PALETTE[] = {"#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2",
                                      "#edc948", "#9c755f", "#ff9da7", "#bab0ac"};
#define NPAL 10

static void xml_text(util_buf *b, const char *s) {
    for (const char *p = s ? s : ""; *p; p++) {
        switch (*p) {
        case '<': util_buf_printf(b, "&lt;"); break;
        case '>': util_buf_printf(b, "&gt;"); break;
        case '&': util_buf_printf(b, "&amp;"); break;
        case '"': util_buf_printf(b, "&quot;"); break;
        default:
            if ((unsigned char)*p < 0x20) util_buf_append(b, " ", 1);
            else util_buf_append(b, p, 1);
        }
    }
}

typedef struct axis {
    plot_scale scale;
    double lo, hi;  /* in data units */
    double p0, p1;  /* pixel range */
} axis;

static double tr(double v, plot_scale sc) {
    if (sc == PLOT_LOG2) return log2(v);
    if (sc == PLOT_LOG10) return log10(v);
    return v;
}

static double ax_map(const axis *a, double v) {
    double t0 = tr(a->lo, a->scale), t1 = tr(a->hi, a->scale), t = tr(v, a->scale);
    if (t1 == t0) return (a->p0 + a->p1) / 2;
    return a->p0 + (t - t0) / (t1 - t0) * (a->p1 - a->p0);
}

static int usable_x(double x, plot_scale sc) { return isfinite(x) && (sc == PLOT_LINEAR || x > 0); }

static double nice_step(double range, int target) {
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double m = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
    return m * mag;
}

static void fmt_num(char *buf, size_t cap, double v, int percent) {
    if (percent) {
        double p = v * 100;
        if (fabs(p - round(p)) < 1e-9) snprintf(buf, cap, "%.0f%%", p);
        else snprintf(buf, cap, "%.1f%%", p);
    } else if (fabs(v) >= 1e5 || (fabs(v) < 1e-3 && v != 0)) {
        snprintf(buf, cap, "%.0e", v);
    } else {
        snprintf(buf, cap, "%g", v);
    }
}

static void draw_panel(util_buf *b, const plot_panel *pn, int cid, double ox, double oy) {
    axis xa = {pn->x_scale, INFINITY, -INFINITY, ox + ML, ox + PW - MR};
    axis ya = {PLOT_LINEAR, INFINITY, -INFINITY, oy + PH - MB, oy + MT};
    for (int s = 0; s < pn->n_series; s++) {
        const plot_series *se = &pn->series[s];
        for (int i = 0; i < se->n; i++) {
            if (!usable_x(se->x[i], xa.scale) || !isfinite(se->y[i])) continue;
            if (se->x[i] < xa.lo) xa.lo = se->x[i];
            if (se->x[i] > xa.hi) xa.hi = se->x[i];
            double ys[3] = {se->y[i], se->y_lo ? se->y_lo[i] : NAN, se->y_hi ? se->y_hi[i] : NAN};
            for (int q = 0; q < 3; q++) if (isfinite(ys[q])) { if (ys[q] < ya.lo) ya.lo = ys[q]; if (ys[q] > ya.hi) ya.hi = ys[q]; }
        }
    }
    if (!(xa.lo <= xa.hi)) { xa.lo = 1; xa.hi = 2; }
    if (!(ya.lo <= ya.hi)) { ya.lo = 0; ya.hi = 1; }
    /* x range: pad log axes by a fraction of a decade / octave, linear by 3% */
    if (xa.scale != PLOT_LINEAR) {
        double base = xa.scale == PLOT_LOG2 ? 2 : 10, pad = xa.scale == PLOT_LOG2 ? 0.25 : 0.08;
        double t0 = tr(xa.lo, xa.scale), t1 = tr(xa.hi, xa.scale);
        if (t1 - t0 < 1) { t0 -= 0.5; t1 += 0.5; }
        xa.lo = pow(base, t0 - pad); xa.hi = pow(base, t1 + pad);
    } else {
        double r = xa.hi - xa.lo;
        if (r <= 0) r = fabs(xa.hi) > 0 ? fabs(xa.hi) : 1;
        xa.lo -= 0.03 * r; xa.hi += 0.03 * r;
    }
    /* y range: data padded by 6%, percent panels kept within [0, 1]; explicit limits win */
    {
        double r = ya.hi - ya.lo;
        if (r < 1e-9) r = pn->y_percent ? 0.1 : (fabs(ya.hi) > 0 ? fabs(ya.hi) * 0.2 : 1);
        ya.lo -= 0.06 * r; ya.hi += 0.06 * r;
        if (pn->y_percent) { if (ya.lo < 0) ya.lo = 0; if (ya.hi > 1) ya.hi = 1; }
        if (isfinite(pn->y_min)) ya.lo = pn->y_min;
        if (isfinite(pn->y_max)) ya.hi = pn->y_max;
        if (!(ya.hi > ya.lo)) ya.hi = ya.lo + 1;
    }
    double x0 = xa.p0, x1 = xa.p1, y0 = ya.p0, y1 = ya.p1;
    util_buf_printf(b, "<g>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fbfbfd\" stroke=\"#c8c8d0\"/>\n",
                    x0, y1, x1 - x0, y0 - y1);
    /* y grid and ticks */
    double step = nice_step(ya.hi - ya.lo, 6);
    char lab[64];
    for (double v = ceil(ya.lo / step - 1e-9) * step; v <= ya.hi + 1e-9 * step; v += step) {
        double py = ax_map(&ya, v);
        fmt_num(lab, sizeof lab, fabs(v) < 1e-12 ? 0 : v, pn->y_percent);
        util_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e3ea\"/>\n", x0, py, x1, py);
        util_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"end\" fill=\"#333\">%s</text>\n", x0 - 8, py + 4.5, lab);
    }
    /* x grid and ticks */
    if (xa.scale != PLOT_LINEAR) {
        double base = xa.scale == PLOT_LOG2 ? 2 : 10;
        int e0 = (int)ceil(tr(xa.lo, xa.scale) - 1e-9), e1 = (int)floor(tr(xa.hi, xa.scale) + 1e-9);
        int every = (e1 - e0) > 12 ? 2 : 1;
        for (int e = e0 - 1; e <= e1; e++) {
            if (xa.scale == PLOT_LOG10) /* minor lines at 2x and 5x */
                for (int m = 2; m <= 5; m += 3) {
                    double v = m * pow(10, e);
                    if (v < xa.lo || v > xa.hi) continue;
                    double px = ax_map(&xa, v);
                    util_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#efeff4\"/>\n", px, y1, px, y0);
                }
            if (e < e0) continue;
            double v = pow(base, e), px = ax_map(&xa, v);
            util_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e3ea\"/>\n", px, y1, px, y0);
            if ((e - e0) % every) continue;
            fmt_num(lab, sizeof lab, v, 0);
            util_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\" fill=\"#333\">%s</text>\n", px, y0 + 19, lab);
        }
    } else {
        double xs = nice_step(xa.hi - xa.lo, 7);
        for (double v = ceil(xa.lo / xs - 1e-9) * xs; v <= xa.hi + 1e-9 * xs; v += xs) {
            double px = ax_map(&xa, v);
            fmt_num(lab, sizeof lab, fabs(v) < 1e-12 ? 0 : v, 0);
            util_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e3ea\"/>\n", px, y1, px, y0);
            util_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\" fill=\"#333\">%s</text>\n", px, y0 + 19, lab);
        }
    }
    /* axis titles and panel title */
    util_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" text-anchor=\"middle\" fill=\"#111\">", (x0 + x1) / 2, y0 + 44);
    xml_text(b, pn->xlabel);
    util_buf_printf(b, "</text>\n<text transform=\"translate(%.1f,%.1f) rotate(-90)\" font-size=\"14\" text-anchor=\"middle\" fill=\"#111\">",
                    ox + 20, (y0 + y1) / 2);
    xml_text(b, pn->ylabel);
    util_buf_printf(b, "</text>\n");
    if (pn->title && *pn->title) {
        util_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"15\" font-weight=\"bold\" text-anchor=\"middle\" fill=\"#111\">", (x0 + x1) / 2, oy + 28);
        xml_text(b, pn->title);
        util_buf_printf(b, "</text>\n");
    }
    /* clip lines to the plot area */
    util_buf_printf(b, "<clipPath id=\"c%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>\n<g clip-path=\"url(#c%d)\">\n",
                    cid, x0, y1, x1 - x0, y0 - y1, cid);
    for (int s = 0; s < pn->n_series; s++) {
        const plot_series *se = &pn->series[s];
        const char *col = PALETTE[s % NPAL];
        if (se->y_lo && se->y_hi) { /* band: upper edge forward, lower edge back, per run of finite points */
            int i = 0;
            while (i < se->n) {
                while (i < se->n && !(usable_x(se->x[i], xa.scale) && isfinite(se->y_lo[i]) && isfinite(se->y_hi[i]))) i++;
                int j = i;
                while (j < se->n && usable_x(se->x[j], xa.scale) && isfinite(se->y_lo[j]) && isfinite(se->y_hi[j])) j++;
                if (j - i >= 2) {
                    util_buf_printf(b, "<polygon fill=\"%s\" fill-opacity=\"0.16\" stroke=\"none\" points=\"", col);
                    for (int q = i; q < j; q++) util_buf_printf(b, "%.1f,%.1f ", ax_map(&xa, se->x[q]), ax_map(&ya, se->y_hi[q]));
                    for (int q = j - 1; q >= i; q--) util_buf_printf(b, "%.1f,%.1f ", ax_map(&xa, se->x[q]), ax_map(&ya, se->y_lo[q]));
                    util_buf_printf(b, "\"/>\n");
                }
                i = j;
            }
        }
        /* line: one polyline per run of finite points */
        int i = 0;
        while (i < se->n) {
            while (i < se->n && !(usable_x(se->x[i], xa.scale) && isfinite(se->y[i]))) i++;
            int j = i;
            while (j < se->n && usable_x(se->x[j], xa.scale) && isfinite(se->y[j])) j++;
            if (j > i) {
                util_buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2.4\" stroke-linejoin=\"round\"%s points=\"", col,
                                s >= NPAL ? " stroke-dasharray=\"7 4\"" : "");
                for (int q = i; q < j; q++) util_buf_printf(b, "%.1f,%.1f ", ax_map(&xa, se->x[q]), ax_map(&ya, se->y[q]));
                util_buf_printf(b, "\"/>\n");
                for (int q = i; q < j; q++)
                    util_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.6\" fill=\"%s\" stroke=\"#fff\" stroke-width=\"1.2\"/>\n",
                                    ax_map(&xa, se->x[q]), ax_map(&ya, se->y[q]), col);
            }
            i = j;
        }
    }
    util_buf_printf(b, "</g>\n</g>\n");
}

int plot_svg_render(const plot_panel *panels, int n_panels, int columns, const char *title, util_buf *out, char *err,
                    size_t errlen) {
    if (!panels || n_panels < 1 || n_panels > 64) return util_err(err, errlen, "plot: expected 1..64 panels, got %d", n_panels);
    int finite = 0;
    for (int p = 0; p < n_panels; p++) {
        if (panels[p].n_series < 0 || (panels[p].n_series > 0 && !panels[p].series))
            return util_err(err, errlen, "plot: panel %d: bad series array", p);
        for (int s = 0; s < panels[p].n_series; s++) {
            const plot_series *se = &panels[p].series[s];
            if (se->n < 0 || (se->n > 0 && (!se->x || !se->y)))
                return util_err(err, errlen, "plot: panel %d series %d (%s): bad points", p, s, se->name ? se->name : "?");
            for (int i = 0; i < se->n; i++) finite += usable_x(se->x[i], panels[p].x_scale) && isfinite(se->y[i]);
        }
    }
    if (!finite) return util_err(err, errlen, "plot: no finite point to draw");
    if (columns <= 0 || columns > n_panels) columns = n_panels;
    int rows = (n_panels + columns - 1) / columns;
    /* legend: entries of the first panel, wrapped into rows of the figure width */
    const plot_panel *lp = &panels[0];
    double W = columns * PW, title_h = title && *title ? 40 : 12;
    double lx = 0, lrows = 1;
    for (int s = 0; s < lp->n_series; s++) {
        double w = 44 + 8.0 * (double)strlen(lp->series[s].name ? lp->series[s].name : "") + 24;
        if (lx + w > W - 40 && lx > 0) { lrows++; lx = 0; }
        lx += w;
    }
    double legend_h = lp->n_series ? 26 * lrows + 8 : 0;
    double H = title_h + legend_h + rows * PH;
    util_buf_printf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"%s\">\n"
                    "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n", W, H, W, H, FONT);
    if (title && *title) {
        util_buf_printf(out, "<text x=\"%.1f\" y=\"28\" font-size=\"19\" font-weight=\"bold\" text-anchor=\"middle\" fill=\"#111\">", W / 2);
        xml_text(out, title);
        util_buf_printf(out, "</text>\n");
    }
    lx = 40;
    double ly = title_h + 18;
    for (int s = 0; s < lp->n_series; s++) {
        const char *name = lp->series[s].name ? lp->series[s].name : "";
        double w = 44 + 8.0 * (double)strlen(name) + 24;
        if (lx + w > W - 40 + 40 && lx > 40) { lx = 40; ly += 26; }
        const char *col = PALETTE[s % NPAL];
        util_buf_printf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"%s/>"
                        "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n",
                        lx, ly, lx + 30, ly, col, s >= NPAL ? " stroke-dasharray=\"7 4\"" : "", lx + 15, ly, col);
        util_buf_printf(out, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" fill=\"#222\">", lx + 38, ly + 5);
        xml_text(out, name);
        util_buf_printf(out, "</text>\n");
        lx += w;
    }
    for (int p = 0; p < n_panels; p++)
        draw_panel(out, &panels[p], p, (p % columns) * PW, title_h + legend_h + (p / columns) * PH);
    util_buf_printf(out, "</svg>\n");
    return 0;
}

int plot_svg_compare(const agg_stats *const *jobs, const char *const *names, int n_jobs, const char *title,
                     util_buf *out, char *err, size_t errlen) {
    if (!jobs || !names || n_jobs < 1 || n_jobs > 32) return util_err(err, errlen, "compare: expected 1..32 jobs, got %d", n_jobs);
    int all_rew = 1, all_time = 1;
    for (int j = 0; j < n_jobs; j++) {
        if (!jobs[j]) return util_err(err, errlen, "compare: job %d: no stats", j);
        all_rew &= jobs[j]->has_reward;
        all_time &= jobs[j]->has_time;
    }
    enum { MAXP = 5 };
    plot_series ser[MAXP][32];
    double kx[32][AGG_MAX_K];
    for (int j = 0; j < n_jobs; j++) {
        const agg_stats *s = jobs[j];
        for (int i = 0; i < s->n_k; i++) kx[j][i] = s->k[i];
        ser[0][j] = (plot_series){names[j], s->n_k, kx[j], s->coverage, s->coverage_lo, s->coverage_hi};
        ser[1][j] = (plot_series){names[j], s->n_k, kx[j], s->majority, s->majority_lo, s->majority_hi};
        ser[2][j] = (plot_series){names[j], s->n_k, kx[j], s->wbon, s->wbon_lo, s->wbon_hi};
        ser[3][j] = (plot_series){names[j], s->n_k, s->budget_s, s->time_coverage, NULL, NULL};
        ser[4][j] = (plot_series){names[j], s->n_k, s->budget_s, s->time_majority, NULL, NULL};
    }
    plot_panel pn[MAXP];
    int np = 0;
    pn[np++] = (plot_panel){"Coverage", "samples per problem (k)", "coverage@k", PLOT_LOG2, 1, NAN, NAN, ser[0], n_jobs};
    pn[np++] = (plot_panel){"Majority vote", "samples per problem (k)", "majority@k", PLOT_LOG2, 1, NAN, NAN, ser[1], n_jobs};
    if (all_rew) pn[np++] = (plot_panel){"Weighted best-of-N", "samples per problem (k)", "weighted BoN@k", PLOT_LOG2, 1, NAN, NAN, ser[2], n_jobs};
    if (all_time) {
        pn[np++] = (plot_panel){"Coverage under a time budget", "GPU-seconds per problem", "coverage", PLOT_LOG10, 1, NAN, NAN, ser[3], n_jobs};
        pn[np++] = (plot_panel){"Majority under a time budget", "GPU-seconds per problem", "majority", PLOT_LOG10, 1, NAN, NAN, ser[4], n_jobs};
    }
    return plot_svg_render(pn, np, np == 3 ? 3 : 2, title, out, err, errlen);
}
