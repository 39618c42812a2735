/* workers/aggregate/plot_svg.h — SVG line charts for `jobctl compare`: several series (e.g.
 * teacher vs student jobs) on a log-2 k axis or a GPU-seconds axis, in one or more panels.
 *
 * The output is a self-contained SVG 1.1 document (no scripts, no external fonts): a title, a
 * shared legend, and per panel labelled axes, tick labels, a light grid, one coloured line with
 * markers per series and an optional translucent confidence band. Series keep the same colour in
 * every panel. Pure: renders into a caller buffer.
 */
#ifndef THINKFAST_PLOT_SVG_H
#define THINKFAST_PLOT_SVG_H

#include <stddef.h>

#include "common/util.h"
#include "workers/aggregate/aggregate.h"

typedef enum { PLOT_LINEAR = 0, PLOT_LOG2 = 2, PLOT_LOG10 = 10 } plot_scale;

/* One line. x, y: n points (NaN y = gap; x <= 0 is skipped on a log axis). y_lo/y_hi (both or
 * neither, may be NULL): a band drawn under the line (e.g. bootstrap 95% intervals). */
typedef struct plot_series {
    const char *name;
    int n;
    const double *x, *y;
    const double *y_lo, *y_hi;
} plot_series;

typedef struct plot_panel {
    const char *title;       /* may be NULL */
    const char *xlabel, *ylabel;
    plot_scale x_scale;      /* PLOT_LOG2 for k; PLOT_LOG10 (or LOG2) for GPU-seconds */
    int y_percent;           /* 1: y in [0,1] shown as percentages */
    double y_min, y_max;     /* NaN = from the data (y_percent panels default to the data range padded, within [0,1]) */
    const plot_series *series;
    int n_series;
} plot_panel;

/* Renders n_panels panels in a grid of `columns` columns (<= 0: all in one row) under a figure
 * title (may be NULL) into out (appended). The legend lists the series of the first panel.
 * Returns 0, or -1 with err set (no panels, a series with n < 0, no finite point anywhere). */
int plot_svg_render(const plot_panel *panels, int n_panels, int columns, const char *title,
                    util_buf *out, char *err, size_t errlen);

/* The `jobctl compare` figure: one series per job (names[i], e.g. "teacher" / "student"), panels
 * "coverage@k" and "majority@k" on a log-2 k axis (with the bootstrap 95% bands), plus
 * "weighted best-of-N@k" when every job has rewards, plus coverage and majority against
 * GPU-seconds per problem (log axis) when every job has sample times. Returns as
 * plot_svg_render. */
int plot_svg_compare(const agg_stats *const *jobs, const char *const *names, int n_jobs, const char *title,
                     util_buf *out, char *err, size_t errlen);

#endif
