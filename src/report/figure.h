// The figure builder used by the report's plots (internal).
//   fig g; fig_begin(&g, c, 800, 560, "%s_sharpness", tag);
//   fig_panel(&g, title, xlabel, ylabel, logx, logy);
//   series s; ser_init(&s, 1, 1, "eta sharpness"); ser_add(&s, x, y);
//   fig_series(&g, &s, "using 1:2 with linespoints title %s", fig_q(&g, t));
//   fig_clause(&g, "2/x with lines dt 2 title \"2/η\"");
//   fig_panel_end(&g);
//   fig_end(&g, exp_index, caption);   // writes NAME.gp, runs gnuplot, registers the figure
// A figure with no data in any panel is dropped silently (nothing to draw).
#ifndef NORMSHARP_REPORT_FIGURE_H
#define NORMSHARP_REPORT_FIGURE_H
#include "report_internal.h"

// The colours of the lines of one figure, in order.
#define RP_NCOLOR 8
extern const char *const rp_color[RP_NCOLOR];

#define FIG_NESC 8
#define FIG_ESC_LEN 1024
typedef struct {
    rp_ctx *c;
    char name[200];
    int w, h, multiplot, cols;
    int bmargin;  // largest bottom margin a panel needs
    ns_buf body;  // commands drawn once per output format
    ns_buf plot;  // clauses of the current panel's plot command
    int nclause, ndata_panel, ndata, nfile;
    int ring_key;  // the "step limit reached" legend entry is in this panel
    int logy[2];   // y / y2 axis of the current panel is logarithmic
    double ylo[2], yhi[2];  // extent of what the panel draws on y / y2
    char esc[FIG_NESC][FIG_ESC_LEN];
    int esc_i;
} fig;

typedef struct {
    ns_buf b;
    int n, logx, logy;
    int y2;           // drawn on the y2 axis
    double ylo, yhi;  // extent of the points kept
} series;

int fig_begin(fig *g, rp_ctx *c, int w, int h, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void fig_multiplot(fig *g, int rows, int cols, const char *title);
void fig_panel(fig *g, const char *title, const char *xlabel, const char *ylabel, int logx, int logy);
void fig_panel_end(fig *g);   // the panel's plot command
void fig_splot_end(fig *g);   // the same as a 3D splot
void fig_cmd(fig *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fig_clause(fig *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Writes the series (if it has points) as a data file and adds its clause; returns 1 if added.
int fig_series(fig *g, series *s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// Open rings over the points of a series (runs that stopped at the step limit, so that they
// are not mistaken for converged ones), and the legend's one entry for them in this panel.
void fig_ring_points(fig *g, series *ring, const char *axes);
// y2 on a log scale in the current panel.
void fig_log_y2(fig *g);
// Something drawn on axis 0 (y) or 1 (y2) that is not a series, e.g. a reference line.
void fig_extent(fig *g, int axis, double v);
// Labelled tics at 1-2-5 (or denser) multiples of powers of ten on a log axis ("x", "y",
// "y2") over [lo, hi]: a sweep often spans under two decades, where gnuplot labels one.
void fig_log_tics(fig *g, const char *axis, double lo, double hi);
// Count non-series content (e.g. markers of diverged runs) as something to draw.
void fig_content(fig *g);
int fig_end(fig *g, int exp, const char *caption);
// The string as an inert gnuplot string literal, quotes included: single-quoted (no `cmd`,
// no @macro, no escapes), '' for a quote, line breaks concatenated as "\n", other control
// bytes as spaces. Every string that reaches a script passes here. Valid until FIG_NESC
// more calls.
const char *fig_q(fig *g, const char *s);

// Points that are not finite, or not positive on a log axis, are left out.
void ser_init(series *s, int logx, int logy, const char *columns);
void ser_add(series *s, double x, double y);
void ser_add3(series *s, double x, double y, double z);
void ser_row(series *s, const double *v, int n);  // any number of columns, all finite
void ser_gap(series *s);                          // blank line: breaks a line / ends a mesh row
#endif
