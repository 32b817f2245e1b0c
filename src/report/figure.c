// The figure builder: a figure is a gnuplot script NAME.gp plus data files
// data/NAME_<k>.dat in DIR/report/, drawn by running gnuplot there into NAME.png (for
// viewing) and NAME.svg (for papers). Scripts name files relative to DIR/report, so
// `cd DIR/report && gnuplot NAME.gp` redraws a figure.
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "figure.h"

const char *const rp_color[RP_NCOLOR] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd",
                                         "#8c564b", "#e377c2", "#17becf", "#bcbd22"};

static void buf_vprintf(ns_buf *b, const char *fmt, va_list ap) {
    va_list again;
    va_copy(again, ap);
    char tmp[1024];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    if (n >= 0 && (size_t)n < sizeof tmp) {
        ns_buf_append(b, tmp, (size_t)n);
    } else if (n >= 0) {
        char *big = ns_malloc((size_t)n + 1);
        if (!big) b->oom = 1;
        else {
            vsnprintf(big, (size_t)n + 1, fmt, again);
            ns_buf_append(b, big, (size_t)n);
            free(big);
        }
    }
    va_end(again);
}

const char *rp_num(char out[32], double x) {
    if (isfinite(x)) snprintf(out, 32, "%.4g", x);
    else snprintf(out, 32, "\xe2\x80\x94");  // em dash
    return out;
}

// gnuplot expands `cmd` (runs a shell command) and @macros inside double-quoted strings and
// interprets their backslash escapes; a single-quoted string is taken literally, with '' for
// one quote. So every string from data becomes single-quoted; a line break becomes the
// concatenation '."\n".' and any other control byte a space (a raw one would end the
// command). Truncated at a character boundary when it does not fit FIG_ESC_LEN.
const char *fig_q(fig *g, const char *s) {
    char *o = g->esc[g->esc_i++ % FIG_NESC];
    size_t k = 0;
    o[k++] = '\'';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        const char *put = ch == '\n' ? "'.\"\\n\".'" : ch == '\'' ? "''" : ch < 0x20 || ch == 0x7f ? " " : NULL;
        size_t n = put ? strlen(put) : 1;
        if (k + n + 2 > FIG_ESC_LEN) {
            while (k > 1 && ((unsigned char)o[k - 1] & 0xc0) == 0x80) k--;  // a cut UTF-8 sequence
            if (k > 1 && (unsigned char)o[k - 1] >= 0xc0) k--;
            break;
        }
        if (put) memcpy(o + k, put, n);
        else o[k] = (char)ch;
        k += n;
    }
    o[k++] = '\'';
    o[k] = 0;
    return o;
}

void fig_cmd(fig *g, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ns_buf_append(&g->body, "    ", 4);
    buf_vprintf(&g->body, fmt, ap);
    ns_buf_append(&g->body, "\n", 1);
    va_end(ap);
}

void fig_clause(fig *g, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (g->nclause++) ns_buf_printf(&g->plot, ", \\\n        ");
    buf_vprintf(&g->plot, fmt, ap);
    va_end(ap);
}

int fig_begin(fig *g, rp_ctx *c, int w, int h, const char *fmt, ...) {
    memset(g, 0, sizeof *g);
    g->c = c;
    g->w = w;
    g->h = h;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(g->name, sizeof g->name, fmt, ap);
    va_end(ap);
    for (char *p = g->name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '-' || *p == '_'))
            *p = '_';
    return n > 0 && (size_t)n < sizeof g->name;
}

void fig_multiplot(fig *g, int rows, int cols, const char *title) {
    g->multiplot = 1;
    g->cols = cols;
    fig_cmd(g, "set multiplot layout %d,%d title %s font \",12\"", rows, cols, fig_q(g, title));
}

void fig_panel(fig *g, const char *title, const char *xlabel, const char *ylabel, int logx, int logy) {
    g->nclause = 0;
    g->ndata_panel = 0;
    g->ring_key = 0;
    g->plot.len = 0;
    g->logy[0] = logy;
    g->logy[1] = 0;
    g->ylo[0] = g->ylo[1] = INFINITY;
    g->yhi[0] = g->yhi[1] = -INFINITY;
    fig_cmd(g, "unset logscale; unset arrow; unset label; unset object; unset y2tics; unset y2label; unset colorbox; set cbrange [*:*]");
    fig_cmd(g, "unset title; set autoscale; set xtics autofreq; set ytics autofreq mirror; set size noratio; set grid; set format x \"%%g\"; set format y \"%%g\"");
    fig_cmd(g, "set autoscale yfix; set autoscale y2fix; set offsets 0, 0, graph 0.05, graph 0.05");  // lines at the extremes stay visible
    fig_cmd(g, "set title %s", fig_q(g, title));
    fig_cmd(g, "set xlabel %s", fig_q(g, xlabel));
    fig_cmd(g, "set ylabel %s", fig_q(g, ylabel));
    if (logx) fig_cmd(g, "set logscale x");
    if (logy) fig_cmd(g, "set logscale y");
}

// gnuplot 5.4 lets a key "below" overlap the x label: reserve the bottom margin ourselves,
// one line per row of legend entries. Two columns only when two of the longest entry fit
// the panel (about 7.5 px per character at 10 pt, plus the sample and padding): gnuplot
// falls back to one column when they do not, and the margin must be counted for that.
static void reserve_key_rows(fig *g) {
    int entries = 0, longest = 0;
    for (const char *p = g->plot.data; p && (p = strstr(p, " title ")); p++) {
        char quote = p[7];
        if (quote != '"' && quote != '\'') continue;
        entries++;
        int len = 0;
        for (const char *q = p + 8; *q; q++) {
            if (quote == '"' && *q == '"') break;
            if (quote == '"' && *q == '\\' && q[1]) q++, len++;
            else if (quote == '\'' && *q == '\'' && q[1] == '\'') q++, len++;  // '' is one quote
            else if (quote == '\'' && *q == '\'' && !strncmp(q, "'.\"\\n\".'", 8)) q += 7, len++;  // fig_q's line break
            else if (quote == '\'' && *q == '\'') break;
            else len += ((unsigned char)*q & 0xc0) != 0x80;  // UTF-8: count characters
        }
        if (len > longest) longest = len;
    }
    int panel = g->w / (g->cols ? g->cols : 1);
    int cols = 2 * (7.5 * longest + 70) <= panel - 90 ? 2 : 1;
    int rows = (entries + cols - 1) / cols;
    fig_cmd(g, "set key below box opaque samplen 3 spacing 1.25 maxcols %d", cols);
    // tics, label, box; key spacing 1.25. Panels share the largest margin (BM, set in
    // fig_end) so that the panels of a multiplot stay aligned.
    int margin = 5 + (int)ceil(1.25 * rows);
    if (margin > g->bmargin) g->bmargin = margin;
    fig_cmd(g, "set bmargin BM");
}

void fig_log_y2(fig *g) {
    g->logy[1] = 1;
    fig_cmd(g, "set logscale y2");
}

void fig_extent(fig *g, int axis, double v) {
    if (!isfinite(v) || (g->logy[axis] && v <= 0)) return;
    g->ylo[axis] = fmin(g->ylo[axis], v);
    g->yhi[axis] = fmax(g->yhi[axis], v);
}

void fig_log_tics(fig *g, const char *axis, double lo, double hi) {
    static const int steps[3][9] = {{1, 2, 5}, {1, 2, 3, 5, 7}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
    static const int nsteps[3] = {3, 5, 9};
    if (!(lo > 0) || !(hi >= lo) || !isfinite(hi)) return;
    int e0 = (int)floor(log10(lo)), e1 = (int)ceil(log10(hi));
    if (e1 - e0 > 4) return;  // many decades: gnuplot's labels at powers of ten suffice
    for (int s = 0; s < 3; s++) {
        char list[2048];
        int n = 0, len = 0;
        for (int e = e0; e <= e1; e++)
            for (int m = 0; m < nsteps[s]; m++) {
                double v = steps[s][m] * pow(10, e);
                if (v < lo || v > hi || len > 1900) continue;
                len += snprintf(list + len, sizeof list - (size_t)len, "%s%g", n ? ", " : "", v);
                n++;
            }
        if (n >= 4 || (s == 2 && n >= 3)) {
            if (n <= 14) fig_cmd(g, "set %stics (%s)", axis, list);
            return;
        }
    }
    // Less than a decade: evenly spaced round values.
    double step = pow(10, floor(log10((hi - lo) / 4)));
    if ((hi - lo) / step > 10) step *= 2.5;
    if ((hi - lo) / step > 10) step *= 2;
    char list[2048];
    int len = 0;
    for (double v = ceil(lo / step) * step; v <= hi && len < 1900; v += step)
        len += snprintf(list + len, sizeof list - (size_t)len, "%s%.6g", len ? ", " : "", v);
    if (len) fig_cmd(g, "set %stics (%s)", axis, list);
}

void fig_panel_end(fig *g) {
    for (int a = 0; a < 2; a++)
        if (g->logy[a] && g->ylo[a] <= g->yhi[a]) {
            // the autoscaled range: the extent plus the 5% offsets (in log space)
            double pad = pow(g->yhi[a] / g->ylo[a], 0.05) * 1.0001;
            fig_log_tics(g, a ? "y2" : "y", g->ylo[a] / pad, g->yhi[a] * pad);
        }
    // `set offsets` pads y only: pad y2 the same way, or its extreme points are cut in half
    if (g->ylo[1] <= g->yhi[1]) {
        double lo = g->ylo[1], hi = g->yhi[1];
        if (g->logy[1]) {
            double pad = pow(hi / lo, 0.05) * 1.0001;
            lo /= pad, hi *= pad;
        } else {
            double pad = hi > lo ? 0.05 * (hi - lo) : 0.05 * fabs(hi) + 1e-12;
            lo -= pad, hi += pad;
        }
        fig_cmd(g, "set y2range [%.17g:%.17g]", lo, hi);
    }
    if (g->ndata_panel == 0) {
        // Keep the layout: an empty frame that says so.
        fig_cmd(g, "unset logscale; unset arrow; unset label; set bmargin BM");
        fig_cmd(g, "set label 1 \"not measured in these runs\" at graph 0.5, graph 0.5 center");
        fig_cmd(g, "plot [0:1][0:1] NaN notitle");
        return;
    }
    reserve_key_rows(g);
    fig_cmd(g, "plot %s", g->plot.data ? g->plot.data : "");
}

void fig_splot_end(fig *g) {
    fig_cmd(g, "set key bottom right box opaque samplen 3 spacing 1.25");  // 3D: that corner is empty
    fig_cmd(g, "splot %s", g->plot.data ? g->plot.data : "");
}

void ser_init(series *s, int logx, int logy, const char *columns) {
    memset(s, 0, sizeof *s);
    s->logx = logx;
    s->logy = logy;
    s->ylo = INFINITY;
    s->yhi = -INFINITY;
    ns_buf_printf(&s->b, "# %s\n", columns);
}

static int ser_ok(const series *s, double x, double y) {
    return isfinite(x) && isfinite(y) && !(s->logx && x <= 0) && !(s->logy && y <= 0);
}

void ser_add(series *s, double x, double y) {
    if (!ser_ok(s, x, y)) return;
    char a[32], b[32];
    ns_fmt_double(a, x);
    ns_fmt_double(b, y);
    ns_buf_printf(&s->b, "%s\t%s\n", a, b);
    s->n++;
    s->ylo = fmin(s->ylo, y);
    s->yhi = fmax(s->yhi, y);
}

void ser_add3(series *s, double x, double y, double z) {
    if (!ser_ok(s, x, y) || !isfinite(z)) return;
    char a[32], b[32], d[32];
    ns_fmt_double(a, x);
    ns_fmt_double(b, y);
    ns_fmt_double(d, z);
    ns_buf_printf(&s->b, "%s\t%s\t%s\n", a, b, d);
    s->n++;
}

void ser_row(series *s, const double *v, int n) {
    for (int i = 0; i < n; i++)
        if (!isfinite(v[i])) return;
    for (int i = 0; i < n; i++) {
        char a[32];
        ns_fmt_double(a, v[i]);
        ns_buf_printf(&s->b, "%s%c", a, i + 1 < n ? '\t' : '\n');
    }
    s->n++;
}

void ser_gap(series *s) { ns_buf_append(&s->b, "\n", 1); }

int fig_series(fig *g, series *s, const char *fmt, ...) {
    int drawn = 0;
    if (s->n > 0 && !s->b.oom) {
        char rel[300], path[4400];
        snprintf(rel, sizeof rel, "data/%s_%d.dat", g->name, g->nfile++);
        if (ns_path(path, sizeof path, "%s/%s", g->c->rdir, rel) ||
            ns_write_file_atomic(path, s->b.data, s->b.len)) {
            rp_hard_error(g->c, NS_EIO);
        } else {
            if (g->nclause++) ns_buf_printf(&g->plot, ", \\\n        ");
            ns_buf_printf(&g->plot, "'%s' ", rel);
            va_list ap;
            va_start(ap, fmt);
            buf_vprintf(&g->plot, fmt, ap);
            va_end(ap);
            g->ndata_panel++;
            g->ndata++;
            drawn = 1;
            fig_extent(g, s->y2, s->ylo);
            fig_extent(g, s->y2, s->yhi);
        }
    }
    if (s->b.oom) rp_hard_error(g->c, NS_ENOMEM);
    ns_buf_free(&s->b);
    return drawn;
}

void fig_content(fig *g) {
    g->ndata_panel++;
    g->ndata++;
}

void rp_hard_error(rp_ctx *c, int rc) {
    if (c->rc) return;
    c->rc = rc;
    snprintf(c->rc_msg, sizeof c->rc_msg, "%s", ns_errmsg());
}

// ---- running gnuplot -------------------------------------------------------------------------
static void note_failure(rp_ctx *c, const char *fmt, ...) {
    if (c->fail_msg[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->fail_msg, sizeof c->fail_msg, fmt, ap);
    va_end(ap);
}

// Runs `gnuplot SCRIPT` in DIR/report with its output appended to gnuplot.log.
static int run_gnuplot(rp_ctx *c, const char *script) {
    int log = open(c->log, O_WRONLY | O_APPEND | O_CREAT, 0666);
    if (log < 0) return ns_fail(NS_EIO, "cannot write '%s': %s", c->log, strerror(errno));
    dprintf(log, "== %s\n", script);
    const char *prog = c->o->gnuplot ? c->o->gnuplot : "gnuplot";
    if (!*prog) {  // drawing off: the scripts are written, no process is started
        close(log);
        c->gnuplot_missing = 1;
        note_failure(c, "drawing is off (no gnuplot program given), so the figures were not drawn");
        return NS_EIO;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(log);
        return ns_fail(NS_EIO, "cannot start %s: %s", prog, strerror(errno));
    }
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0) dup2(in, 0);
        dup2(log, 1);
        dup2(log, 2);
        if (chdir(c->rdir) != 0) _exit(126);
        execlp(prog, prog, script, (char *)NULL);
        _exit(127);
    }
    close(log);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return ns_fail(NS_EIO, "lost track of %s: %s", prog, strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
        c->gnuplot_missing = 1;
        note_failure(c, "gnuplot is not installed (could not run '%s'), so the figures were not drawn; install it "
                        "(Debian: apt-get install gnuplot-nox) and run 'normsharp report' again", prog);
        return NS_EIO;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        c->gnuplot_failed = 1;
        note_failure(c, "gnuplot failed on '%s/%s' (%s %d); its messages are in '%s'", c->rdir, script,
                     WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), c->log);
        return NS_EIO;
    }
    return 0;
}

int fig_end(fig *g, int exp, const char *caption) {
    rp_ctx *c = g->c;
    if (g->multiplot) fig_cmd(g, "unset multiplot");
    int keep = g->ndata > 0 && !g->body.oom && !g->plot.oom && !c->rc;
    if (g->body.oom || g->plot.oom) rp_hard_error(c, NS_ENOMEM);
    ns_buf script = {0};
    if (keep) {
        ns_buf_printf(&script,
                      "# %s\n# Written by normsharp report; redraw with: gnuplot %s.gp (in this directory)\n"
                      "set encoding utf8\n"
                      "BM = %d  # bottom margin (lines) of every panel: room for the longest key\n"
                      "do for [fmt in \"png svg\"] {\n"
                      "    if (fmt eq \"png\") {\n"
                      "        set terminal pngcairo size %d,%d font \"DejaVu Sans,10\" noenhanced\n"
                      "    } else {\n"
                      "        set terminal svg size %d,%d font \"DejaVu Sans,10\" noenhanced background rgb \"white\"\n"
                      "    }\n"
                      "    set output \"%s.\".fmt\n",
                      caption, g->name, g->bmargin > 4 ? g->bmargin : 4, g->w, g->h, g->w, g->h, g->name);
        ns_buf_append(&script, g->body.data, g->body.len);
        ns_buf_printf(&script, "    unset output\n}\n");
    }
    ns_buf_free(&g->body);
    ns_buf_free(&g->plot);
    if (!keep) {
        ns_buf_free(&script);
        return 0;
    }
    char path[4400], png[4400];
    rp_figure *f = NULL;
    if (script.oom || ns_path(path, sizeof path, "%s/%s.gp", c->rdir, g->name) ||
        ns_write_file_atomic(path, script.data, script.len)) {
        rp_hard_error(c, script.oom ? NS_ENOMEM : NS_EIO);
    } else if ((f = ns_realloc(c->fig, (size_t)(c->nfig + 1) * sizeof *f))) {
        c->fig = f;
        f = &c->fig[c->nfig++];
        f->name = ns_strdup(g->name);
        f->caption = ns_strdup(caption);
        f->exp = exp;
        f->drawn = 0;
        if (!f->name || !f->caption) rp_hard_error(c, NS_ENOMEM);
        char gp[300];
        snprintf(gp, sizeof gp, "%s.gp", g->name);
        if (!c->gnuplot_missing && run_gnuplot(c, gp) == 0 && !ns_path(png, sizeof png, "%s/%s.png", c->rdir, g->name))
            f->drawn = ns_exists(png);
        ns_clear_error();
    } else {
        rp_hard_error(c, NS_ENOMEM);
    }
    ns_buf_free(&script);
    return f != NULL;
}

void fig_ring_points(fig *g, series *ring, const char *axes) {
    if (fig_series(g, ring, "using 1:2 axes %s with points pt 6 ps 2.4 lc rgb \"black\" notitle", axes) && !g->ring_key) {
        fig_clause(g, "keyentry with points pt 6 ps 2.4 lc rgb \"black\" title \"ringed: stopped at the step limit\"");
        g->ring_key = 1;
    }
}
