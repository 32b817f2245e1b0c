// The report's figures: the learning-rate sweep (sharpness, norms, generalization, and the
// averaged/decayed measurements), the Edge-of-Stability trajectories, the gradient flow,
// and for DLNs generalization versus the reference interpolators and the interpolating set.
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "figure.h"

#define C_DIVERGED "#d62728"
#define C_THRESHOLD "#555555"

#define X_ETA "learning rate η (step size, log scale)"
#define Y_SHARP "sharpness S = max |λ| of the loss Hessian (1/η units)"
#define Y_ERR "test error (fraction of test examples)"
#define X_FLOW_TIME "time t (flow time, Σ of RK4 steps h; = η × GD steps)"

static double run_value(const ns_rep_run *u, size_t off) {
    return *(const double *)(const void *)((const char *)u + off);
}

static const char *loss_unit(const ns_rep_exp *e) {
    if (e->kind == NS_EXP_DLN) return "(1/2n)·||Xβ − y||²";
    if (!strcmp(e->cfg.loss, "mse")) return "MSE, ½·squared error per example";
    if (!strcmp(e->cfg.loss, "ce")) return "cross-entropy, nats per example";
    return "per example";
}

// ---- marks shared by the sweep panels --------------------------------------------------------
static void eta_range(fig *g, const ns_rep_exp *e, const ns_findings *f) {
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < e->nrun; i++)
        if (e->run[i].eta > 0 && isfinite(e->run[i].eta)) {
            lo = fmin(lo, e->run[i].eta);
            hi = fmax(hi, e->run[i].eta);
        }
    double marks[2] = {f->eta_c_pred, f->eta_c_obs};
    for (int k = 0; k < 2; k++)
        if (marks[k] > 0 && isfinite(marks[k]) && lo <= hi) {
            lo = fmin(lo, marks[k]);
            hi = fmax(hi, marks[k]);
        }
    if (lo > hi) return;
    lo /= 1.3;
    hi *= 1.3;
    fig_cmd(g, "set xrange [%.17g:%.17g]", lo, hi);
    fig_log_tics(g, "x", lo, hi);
}

// Diverged runs have no final values: a triangle at the top edge, never a point at zero.
static void mark_diverged(fig *g, const ns_rep_exp *e) {
    int n = 0;
    for (int i = 0; i < e->nrun; i++)
        if (ns_rep_diverged(&e->run[i]) && e->run[i].eta > 0) {
            fig_cmd(g, "set label \"\" at first %.17g, graph 0.965 point pt 11 ps 1.6 lc rgb \"%s\" front", e->run[i].eta,
                    C_DIVERGED);
            n++;
        }
    if (!n) return;
    fig_clause(g, "keyentry with points pt 11 ps 1.6 lc rgb \"%s\" title \"diverged: %d run%s (marked at the top edge)\"",
               C_DIVERGED, n, n > 1 ? "s" : "");
    fig_content(g);
}

static void mark_eta_c(fig *g, const ns_findings *f) {
    if (isfinite(f->eta_c_pred)) {
        fig_cmd(g, "set arrow from first %.17g, graph 0 to first %.17g, graph 1 nohead dt 2 lw 1.5 lc rgb \"black\" back",
                f->eta_c_pred, f->eta_c_pred);
        fig_clause(g, "keyentry with lines dt 2 lw 1.5 lc rgb \"black\" title \"η_c predicted = %.4g\"", f->eta_c_pred);
    }
    if (isfinite(f->eta_c_obs)) {
        fig_cmd(g, "set arrow from first %.17g, graph 0 to first %.17g, graph 1 nohead dt 3 lw 2 lc rgb \"#888888\" back",
                f->eta_c_obs, f->eta_c_obs);
        fig_clause(g, "keyentry with lines dt 3 lw 2 lc rgb \"#888888\" title \"η_c observed = %.4g\"", f->eta_c_obs);
    }
}

// A quantity of the finished (not diverged) runs against eta; runs that stopped at the
// step limit get an open ring so they are not mistaken for converged ones.
static void plot_vs_eta(fig *g, const ns_rep_exp *e, size_t off, int logy, const char *col, int pt,
                        const char *title, const char *axes) {
    series s, ring;
    ser_init(&s, 1, logy, "eta value (finished runs)");
    ser_init(&ring, 1, logy, "eta value (runs that stopped without converging)");
    s.y2 = ring.y2 = !strcmp(axes, "x1y2");
    for (int i = 0; i < e->nrun; i++) {
        const ns_rep_run *u = &e->run[i];
        if (ns_rep_diverged(u)) continue;
        ser_add(&s, u->eta, run_value(u, off));
        if (!ns_rep_converged(u)) ser_add(&ring, u->eta, run_value(u, off));
    }
    fig_series(g, &s, "using 1:2 axes %s with linespoints pt %d ps 1.2 lw 1.5 lc rgb \"%s\" title %s", axes, pt, col,
               fig_q(g, title));
    fig_ring_points(g, &ring, axes);
}

// The stability threshold 2/eta across the eta range (its ends set the y extent).
static void threshold_curve(fig *g, const ns_rep_exp *e, const char *title) {
    fig_clause(g, "2/x with lines dt 2 lw 1.5 lc rgb \"%s\" title %s", C_THRESHOLD, fig_q(g, title));
    for (int i = 0; i < e->nrun; i++)
        if (e->run[i].eta > 0) {
            fig_extent(g, 0, 2 / (1.3 * e->run[i].eta));
            fig_extent(g, 0, 2 / (e->run[i].eta / 1.3));
        }
}

// A panel against eta over the sweep's range: y (log if logy) and, if y2label is given, a
// right axis (log if logy2). Its marks are added by eta_panel_end.
static void eta_panel(fig *g, const ns_rep_exp *e, const ns_findings *f, const char *title, const char *ylabel, int logy,
                      const char *y2label, int logy2) {
    fig_panel(g, title, X_ETA, ylabel, 1, logy);
    if (y2label) {
        fig_cmd(g, "set y2label %s; set y2tics; set ytics nomirror", fig_q(g, y2label));
        if (logy2) fig_log_y2(g);
    }
    eta_range(g, e, f);
}

// The marks every panel against eta carries (eta_c, diverged runs), then its plot.
static void eta_panel_end(fig *g, const ns_rep_exp *e, const ns_findings *f) {
    mark_eta_c(g, f);
    mark_diverged(g, e);
    fig_panel_end(g);
}

// ---- the sweep --------------------------------------------------------------------------------
static void fig_sweep_sharpness(rp_ctx *c, int k) {
    const ns_rep_exp *e = &c->r->exp[k];
    const ns_findings *f = &c->f[k];
    fig g;
    char title[1024];
    fig_begin(&g, c, 820, 600, "%s_sharpness", e->tag);
    snprintf(title, sizeof title, "Final sharpness vs learning rate\n%s", e->title);
    eta_panel(&g, e, f, title, Y_SHARP, 1, NULL, 0);
    plot_vs_eta(&g, e, offsetof(ns_rep_run, sharpness), 1, rp_color[0], 7, "final sharpness", "x1y1");
    threshold_curve(&g, e, "2/η (stability threshold)");
    if (isfinite(f->s_gf))
    {
        fig_clause(&g, "%.17g with lines dt 4 lw 1.5 lc rgb \"%s\" title \"s_GF = %.4g (gradient flow)\"", f->s_gf,
                   rp_color[2], f->s_gf);
        fig_extent(&g, 0, f->s_gf);
    }
    eta_panel_end(&g, e, f);
    fig_end(&g, k, "Final sharpness against the learning rate, with the stability threshold 2/η, the gradient "
                   "flow's sharpness s_GF and the critical learning rate η_c.");
}

static void fig_sweep_norms(rp_ctx *c, int k) {
    const ns_rep_exp *e = &c->r->exp[k];
    const ns_findings *f = &c->f[k];
    fig g;
    char title[1024];
    fig_begin(&g, c, 820, 600, "%s_norms", e->tag);
    snprintf(title, sizeof title, "Parameter norms vs learning rate\n%s", e->title);
    eta_panel(&g, e, f, title, "l1 norm Σ|θ_j| (parameter units)", 0, "l2 norm (Σ θ_j²)^½ (parameter units)", 0);
    plot_vs_eta(&g, e, offsetof(ns_rep_run, l1), 0, rp_color[0], 7, "l1 norm (left axis)", "x1y1");
    plot_vs_eta(&g, e, offsetof(ns_rep_run, l2), 0, rp_color[1], 5, "l2 norm (right axis)", "x1y2");
    eta_panel_end(&g, e, f);
    fig_end(&g, k, "Final l1 (left axis) and l2 (right axis) parameter norms against the learning rate.");
}

static void mark_best(fig *g, const ns_findings *f, const char *what) {
    if (!isfinite(f->best_eta)) return;
    series s;
    ser_init(&s, 1, 0, "best eta, its error");
    ser_add(&s, f->best_eta, f->best_err);
    fig_series(g, &s, "using 1:2 with points pt 3 ps 3.5 lw 2 lc rgb \"black\" title \"best η = %.4g (%s %.4g)\"",
               f->best_eta, what, f->best_err);
}

static void fig_sweep_generalization(rp_ctx *c, int k) {
    const ns_rep_exp *e = &c->r->exp[k];
    const ns_findings *f = &c->f[k];
    fig g;
    char title[1024], y2[256];
    fig_begin(&g, c, 820, 600, "%s_generalization", e->tag);
    snprintf(title, sizeof title, "Test error and test loss vs learning rate\n%s", e->title);
    snprintf(y2, sizeof y2, "test loss (%s, log scale)", loss_unit(e));
    eta_panel(&g, e, f, title, Y_ERR, 0, y2, 1);
    plot_vs_eta(&g, e, offsetof(ns_rep_run, test_err), 0, rp_color[0], 7, "test error (left axis)", "x1y1");
    plot_vs_eta(&g, e, offsetof(ns_rep_run, test_loss), 1, rp_color[1], 5, "test loss (right axis)", "x1y2");
    mark_best(&g, f, "test error");
    eta_panel_end(&g, e, f);
    fig_end(&g, k, "Test error (left) and test loss (right) against the learning rate; the star marks the best "
                   "learning rate among converged runs.");
}

// Final, averaged (mean of the last iterates) and decayed measurements overlaid.
static void fig_sweep_measures(rp_ctx *c, int k) {
    const ns_rep_exp *e = &c->r->exp[k];
    const ns_findings *f = &c->f[k];
    int any = 0;
    for (int i = 0; i < e->nrun; i++)
        any |= isfinite(e->run[i].avg_sharpness) || isfinite(e->run[i].dec_sharpness) || isfinite(e->run[i].avg_l1) ||
               isfinite(e->run[i].dec_l1) || isfinite(e->run[i].avg_test_err) || isfinite(e->run[i].dec_test_err);
    if (!any) return;
    fig g;
    char title[1024];
    fig_begin(&g, c, 1560, 660, "%s_measures", e->tag);
    snprintf(title, sizeof title, "Final, averaged and decayed measurements vs learning rate\n%s", e->title);
    fig_multiplot(&g, 1, 3, title);
    struct {
        const char *title, *ylabel;
        int logy;
        size_t off[3];
    } panel[3] = {
        {"sharpness", Y_SHARP, 1,
         {offsetof(ns_rep_run, sharpness), offsetof(ns_rep_run, avg_sharpness), offsetof(ns_rep_run, dec_sharpness)}},
        {"l1 norm", "l1 norm Σ|θ_j| (parameter units)", 0,
         {offsetof(ns_rep_run, l1), offsetof(ns_rep_run, avg_l1), offsetof(ns_rep_run, dec_l1)}},
        {"test error", Y_ERR, 0,
         {offsetof(ns_rep_run, test_err), offsetof(ns_rep_run, avg_test_err), offsetof(ns_rep_run, dec_test_err)}},
    };
    const char *which[3] = {"final", "averaged over the last iterates", "after the decayed-lr phase"};
    const int pt[3] = {7, 5, 9};
    for (int p = 0; p < 3; p++) {
        eta_panel(&g, e, f, panel[p].title, panel[p].ylabel, panel[p].logy, NULL, 0);
        for (int m = 0; m < 3; m++) plot_vs_eta(&g, e, panel[p].off[m], panel[p].logy, rp_color[m], pt[m], which[m], "x1y1");
        if (p == 0) threshold_curve(&g, e, "2/η");
        eta_panel_end(&g, e, f);
    }
    fig_end(&g, k, "Sharpness, l1 norm and test error of the final iterate, of the average of the last iterates, and "
                   "after a short phase at a decayed learning rate.");
}

// ---- trajectories -----------------------------------------------------------------------------
#define MAX_POINTS 2500

// Reads DIR/trajectory.csv into a loss series and a sharpness series against `xcol`
// (step or time), thinning to about MAX_POINTS rows. Returns the largest sharpness.
static double read_trajectory(const char *dir, const char *xcol, series *loss, series *sharp) {
    char path[4200];
    ns_table t;
    int rc = ns_path(path, sizeof path, "%s/trajectory.csv", dir) || !ns_exists(path) ? NS_EIO : ns_table_read(path, &t);
    if (rc == NS_ENOMEM) loss->b.oom = 1;  // an error (fig_series reports it), not a missing trajectory
    if (rc) {
        if (rc != NS_ENOMEM) ns_clear_error();
        return NAN;
    }
    int cx = ns_table_col(&t, xcol), cl = ns_table_col(&t, "train_loss"), cs = ns_table_col(&t, "sharpness");
    if (cs < 0) cs = ns_table_col(&t, "lambda_max");
    int nsharp = 0;
    for (int i = 0; i < t.nrow; i++) nsharp += isfinite(ns_table_num(&t, i, cs));
    int every_l = t.nrow / MAX_POINTS + 1, every_s = nsharp / MAX_POINTS + 1, ks = 0;
    double smax = NAN;
    for (int i = 0; i < t.nrow; i++) {
        double x = ns_table_num(&t, i, cx), s = ns_table_num(&t, i, cs);
        if (i % every_l == 0 || i == t.nrow - 1) ser_add(loss, x, ns_table_num(&t, i, cl));
        if (isfinite(s) && (ks++ % every_s == 0)) {
            ser_add(sharp, x, s);
            smax = isnan(smax) ? s : fmax(smax, s);
        }
    }
    ns_table_free(&t);
    return smax;
}

// `want` of the m candidates (indices into e->run, sorted by eta), evenly spread, appended.
static int spread(const int *cand, int m, int want, int *out) {
    if (want > m) want = m;
    for (int j = 0; j < want; j++) out[j] = cand[want == 1 ? m - 1 : (int)lround((double)j * (m - 1) / (want - 1))];
    return want;
}

// At most 6 curves stay readable: two below eta_c (flow-aligned) and the rest above it,
// where the Edge-of-Stability picture is; without eta_c, spread over all.
static int pick_runs(const ns_rep_exp *e, const int *cand, int m, double eta_c, int *pick) {
    int below = 0;
    while (below < m && isfinite(eta_c) && e->run[cand[below]].eta <= eta_c) below++;
    if (!isfinite(eta_c) || below == 0 || below == m) return spread(cand, m, 6, pick);
    int above = m - below, nb = below < 2 ? below : 2, na = above < 6 - nb ? above : 6 - nb;
    if (nb + na < 6) nb = below < 6 - na ? below : 6 - na;
    int n = spread(cand, below, nb, pick);
    return n + spread(cand + below, above, na, pick + n);
}

// The classic Edge-of-Stability picture: several learning rates, each with its 2/eta.
static void fig_trajectories(rp_ctx *c, int k) {
    const ns_rep_exp *e = &c->r->exp[k];
    int cand[512], m = 0;
    for (int i = 0; i < e->nrun && m < 512; i++) {
        char path[4200];
        const ns_rep_run *u = &e->run[i];
        if (u->dir && !ns_rep_diverged(u) && u->eta > 0 && !ns_path(path, sizeof path, "%s/trajectory.csv", u->dir) &&
            ns_exists(path))
            cand[m++] = i;
    }
    ns_clear_error();
    if (m == 0) return;
    int pick[RP_NCOLOR], np = pick_runs(e, cand, m, c->f[k].eta_c, pick);
    // Runs of very different lengths (a DLN's small etas take 1e5 steps): log steps.
    long smin = 0, smax_steps = 0;
    for (int j = 0; j < np; j++) {
        long s = e->run[pick[j]].steps;
        if (s > 0 && (smin == 0 || s < smin)) smin = s;
        if (s > smax_steps) smax_steps = s;
    }
    int logx = smin > 0 && smax_steps > 30 * smin;
    const char *xlabel = logx ? "step (GD iterations, log scale)" : "step (GD iterations)";
    fig g;
    char title[1024];
    fig_begin(&g, c, 900, 860, "%s_trajectories", e->tag);
    snprintf(title, sizeof title, "Training loss and sharpness along GD\n%s", e->title);
    fig_multiplot(&g, 2, 1, title);
    series loss[RP_NCOLOR], sharp[RP_NCOLOR];
    double smax = NAN;
    for (int j = 0; j < np; j++) {
        ser_init(&loss[j], logx, 1, "step train_loss");
        ser_init(&sharp[j], logx, 0, "step sharpness");
        double s = read_trajectory(e->run[pick[j]].dir, "step", &loss[j], &sharp[j]);
        if (isfinite(s)) smax = isnan(smax) ? s : fmax(smax, s);
    }
    char ylabel[256];
    snprintf(ylabel, sizeof ylabel, "training loss (%s, log scale)", loss_unit(e));
    fig_panel(&g, "training loss", xlabel, ylabel, logx, 1);
    for (int j = 0; j < np; j++)
        fig_series(&g, &loss[j], "using 1:2 with lines lw 1.3 lc rgb \"%s\" title \"η = %.4g\"", rp_color[j],
                   e->run[pick[j]].eta);
    fig_panel_end(&g);
    fig_panel(&g, "sharpness; dashed: 2/η in the same colour", xlabel, Y_SHARP, logx, 0);
    if (isfinite(smax)) fig_cmd(&g, "set yrange [0:%.17g]", 1.25 * smax);
    for (int j = 0; j < np; j++) {
        double eta = e->run[pick[j]].eta;
        if (fig_series(&g, &sharp[j], "using 1:2 with %s lw 1.3 lc rgb \"%s\" title \"η = %.4g\"",
                       sharp[j].n > 150 ? "lines" : "linespoints pt 7 ps 0.5", rp_color[j], eta))
            fig_clause(&g, "%.17g with lines dt 2 lw 1.3 lc rgb \"%s\" notitle", 2 / eta, rp_color[j]);
    }
    fig_panel_end(&g);
    fig_end(&g, k, "Training loss (top) and sharpness (bottom) against the GD step for several learning rates; each "
                   "dashed line is the stability threshold 2/η of the curve of the same colour.");
}

// ---- gradient flow ------------------------------------------------------------------------------
static void fig_flow(rp_ctx *c, const ns_rep_flow *fl, int exp, const char *tag, const char *what) {
    series loss, sharp;
    ser_init(&loss, 0, 1, "time train_loss");
    ser_init(&sharp, 0, 0, "time sharpness");
    read_trajectory(fl->dir, "time", &loss, &sharp);
    fig g;
    char title[1024], ylabel[256];
    fig_begin(&g, c, 860, 820, "%s_flow", tag);
    snprintf(title, sizeof title, "Gradient flow (RK4): sharpness and loss vs time\n%s", what);
    fig_multiplot(&g, 2, 1, title);
    fig_panel(&g, "sharpness", X_FLOW_TIME, Y_SHARP, 0, 0);
    fig_series(&g, &sharp, "using 1:2 with %s lw 1.5 lc rgb \"%s\" title \"sharpness along the flow\"",
               sharp.n > 150 ? "lines" : "linespoints pt 7 ps 0.5", rp_color[0]);
    if (isfinite(fl->s_gf))
        fig_clause(&g, "%.17g with lines dt 4 lw 1.5 lc rgb \"%s\" title \"s_GF = %.4g, so η_c = 2/s_GF = %.4g\"", fl->s_gf,
                   rp_color[2], fl->s_gf, isfinite(fl->eta_c) ? fl->eta_c : 2 / fl->s_gf);
    fig_panel_end(&g);
    snprintf(ylabel, sizeof ylabel, "training loss (%s, log scale)", !strcmp(fl->cfg.loss, "ce") ? "nats per example" : "per example");
    fig_panel(&g, "training loss", X_FLOW_TIME, ylabel, 0, 1);
    fig_series(&g, &loss, "using 1:2 with lines lw 1.5 lc rgb \"%s\" title \"training loss along the flow\"", rp_color[1]);
    fig_panel_end(&g);
    fig_end(&g, exp, "Gradient flow from the same initialization: its largest sharpness s_GF predicts the critical "
                     "learning rate η_c = 2/s_GF.");
}

void rp_figure_standalone_flow(rp_ctx *c, int k) {
    const ns_rep_flow *fl = &c->r->flow[k];
    char tag[300];
    snprintf(tag, sizeof tag, "flow%d_%s_%s_%s_seed%llu", k + 1, fl->cfg.dataset, fl->cfg.arch, fl->cfg.loss,
             (unsigned long long)fl->cfg.seed);
    ns_buf what = {0};
    rp_setting_text(&what, &fl->cfg);
    if (fl->cfg.seed_known) ns_buf_printf(&what, ", seed %llu", (unsigned long long)fl->cfg.seed);
    ns_buf_printf(&what, ", in %s", rp_rel_dir(c->r, fl->dir));
    fig_flow(c, fl, -1 - k, tag, what.data ? what.data : "");
    ns_buf_free(&what);
}

// ---- DLN ----------------------------------------------------------------------------------------
static const int ref_pt[NS_REF_COUNT] = {5, 8, 13, 2, 3};
static const char *const ref_color[NS_REF_COUNT] = {"#1f77b4", "#8c564b", "#ff7f0e", "#9467bd", "#2ca02c"};

static double ref_value(const ns_rep_exp *e, int r, size_t off) {
    return *(const double *)(const void *)((const char *)&e->ref[r] + off);
}

// Horizontal lines at a reference solution's value (whatever theory.json gives). On a log
// axis a value <= 0 has no line: its key entry says so.
static void ref_lines(fig *g, const ns_rep_exp *e, size_t off, const char *fmt) {
    for (int r = 0; r < NS_REF_COUNT; r++) {
        double v = ref_value(e, r, off);
        if (!e->ref[r].present || !isfinite(v)) continue;
        char t[200];
        snprintf(t, sizeof t, fmt, ns_ref_label[r], v);
        if (g->logy[0] && v <= 0) {
            char off[256];
            snprintf(off, sizeof off, "%s (off the log axis)", t);
            fig_clause(g, "keyentry with lines dt %d lw 1.5 lc rgb \"%s\" title %s", 3 + r % 3, ref_color[r],
                       fig_q(g, off));
            continue;
        }
        fig_clause(g, "%.17g with lines dt %d lw 1.5 lc rgb \"%s\" title %s", v, 3 + r % 3, ref_color[r], fig_q(g, t));
        fig_extent(g, 0, v);
    }
}

// 1 if the positive values a panel would draw (the finished runs' and the references') span
// more than three decades: a linear axis would show the small ones as zero.
static int spans_decades(const ns_rep_exp *e, size_t run_off, size_t ref_off) {
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < e->nrun; i++) {
        double v = run_value(&e->run[i], run_off);
        if (!ns_rep_diverged(&e->run[i]) && v > 0 && isfinite(v)) lo = fmin(lo, v), hi = fmax(hi, v);
    }
    for (int r = 0; r < NS_REF_COUNT; r++) {
        double v = ref_value(e, r, ref_off);
        if (e->ref[r].present && v > 0 && isfinite(v)) lo = fmin(lo, v), hi = fmax(hi, v);
    }
    return hi > 1e3 * lo;
}

static void fig_dln_generalization(rp_ctx *c, int k) {
    const ns_rep_exp *e = &c->r->exp[k];
    const ns_findings *f = &c->f[k];
    fig g;
    char title[1024];
    fig_begin(&g, c, 820, 620, "%s_generalization", e->tag);
    int logy = spans_decades(e, offsetof(ns_rep_run, test_err), offsetof(ns_rep_ref, gen_err));
    snprintf(title, sizeof title, "Generalization error (β−β*)ᵀΣ(β−β*) + σ² of the GD solution vs learning rate\n%s",
             e->title);
    eta_panel(&g, e, f, title, logy ? "generalization error (squared target units, log scale)"
                                    : "generalization error (squared target units)", logy, NULL, 0);
    plot_vs_eta(&g, e, offsetof(ns_rep_run, test_err), logy, rp_color[0], 7, "GD solution", "x1y1");
    ref_lines(&g, e, offsetof(ns_rep_ref, gen_err), "%s: %.4g");
    mark_best(&g, f, "error");
    eta_panel_end(&g, e, f);
    fig_end(&g, k, "Generalization error of the GD solution against the learning rate, with the reference "
                   "interpolators of theory.json as horizontal lines.");
}

static void fig_dln_norm_sharpness(rp_ctx *c, int k) {
    const ns_rep_exp *e = &c->r->exp[k];
    const ns_findings *f = &c->f[k];
    fig g;
    char title[1024];
    fig_begin(&g, c, 1560, 660, "%s_l1_sharpness", e->tag);
    snprintf(title, sizeof title, "l1 norm, sharpness and distance to the minimizers vs learning rate\n%s", e->title);
    fig_multiplot(&g, 1, 3, title);
    int has_w = 0;
    for (int i = 0; i < e->nrun; i++) has_w |= isfinite(e->run[i].w_l2_sq);
    eta_panel(&g, e, f, "norms: ||β||_1 and ||w||_2²", "||β||_1 (coefficient units)", 0,
              has_w ? "||w||_2², all weights (squared weight units)" : NULL, 0);
    plot_vs_eta(&g, e, offsetof(ns_rep_run, l1), 0, rp_color[0], 7, "||β||_1 of the GD solution (left)", "x1y1");
    if (has_w)
        plot_vs_eta(&g, e, offsetof(ns_rep_run, w_l2_sq), 0, rp_color[1], 4, "||w||_2² of the GD solution (right)", "x1y2");
    ref_lines(&g, e, offsetof(ns_rep_ref, l1), "%s: %.4g");
    eta_panel_end(&g, e, f);
    eta_panel(&g, e, f, "sharpness", Y_SHARP, 1, NULL, 0);
    plot_vs_eta(&g, e, offsetof(ns_rep_run, sharpness), 1, rp_color[0], 7, "GD solution", "x1y1");
    threshold_curve(&g, e, "2/η");
    ref_lines(&g, e, offsetof(ns_rep_ref, sharpness), "%s: %.4g");
    eta_panel_end(&g, e, f);
    eta_panel(&g, e, f, "distance of the GD solution to the minimizers", "||β − β_ref||_2 (coefficient units)", 0, NULL, 0);
    plot_vs_eta(&g, e, offsetof(ns_rep_run, dist_min_l1), 0, ref_color[NS_REF_MIN_L1], 5, "to the min-l1 interpolator", "x1y1");
    plot_vs_eta(&g, e, offsetof(ns_rep_run, dist_min_sharp), 0, ref_color[NS_REF_MIN_SHARP], 13,
                "to the min-sharpness interpolator", "x1y1");
    eta_panel_end(&g, e, f);
    fig_end(&g, k, "The l1 norm of β (and the squared l2 norm of the weights, right axis), the sharpness of the GD "
                   "solution, and its distance to the min-l1 and min-sharpness interpolators, against the learning rate.");
}

// An orthonormal basis (at most `want` vectors) of the affine hull of the points, from
// `p0`. Reference solutions are exact interpolators, so they come first in `pts`.
static int affine_basis(const double *const *pts, int npts, int d, int want, double basis[][3]) {
    int nb = 0;
    double scale = 0;
    for (int i = 0; i < npts; i++)
        for (int j = 0; j < d; j++) scale = fmax(scale, fabs(pts[i][j]));
    for (int i = 1; i < npts && nb < want; i++) {
        double v[3] = {0, 0, 0};
        for (int j = 0; j < d; j++) v[j] = pts[i][j] - pts[0][j];
        for (int b = 0; b < nb; b++) {
            double dot = 0;
            for (int j = 0; j < d; j++) dot += v[j] * basis[b][j];
            for (int j = 0; j < d; j++) v[j] -= dot * basis[b][j];
        }
        double nv = 0;
        for (int j = 0; j < d; j++) nv += v[j] * v[j];
        nv = sqrt(nv);
        if (nv <= 1e-3 * (scale > 0 ? scale : 1)) continue;
        for (int j = 0; j < d; j++) basis[nb][j] = v[j] / nv;
        nb++;
    }
    return nb;
}

// The interpolating set {X beta = y} for d = 2 (a line) or d = 3 (a plane or line), spanned
// by the known interpolators, as a data series for plot / splot.
static void interpolating_set(series *s, const double *const *pts, int npts, int d, int dim) {
    double basis[2][3];
    int nb = affine_basis(pts, npts, d, dim, basis);
    if (nb == 0 || nb != dim) return;
    double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
    for (int i = 0; i < npts; i++)
        for (int b = 0; b < nb; b++) {
            double t = 0;
            for (int j = 0; j < d; j++) t += (pts[i][j] - pts[0][j]) * basis[b][j];
            lo[b] = fmin(lo[b], t);
            hi[b] = fmax(hi[b], t);
        }
    // A square patch around the points, a quarter wider than their largest spread.
    double half = 0;
    for (int b = 0; b < nb; b++) half = fmax(half, 0.625 * (hi[b] - lo[b]));
    if (half <= 0) half = 1;
    for (int b = 0; b < nb; b++) {
        double mid = 0.5 * (lo[b] + hi[b]);
        lo[b] = mid - half;
        hi[b] = mid + half;
    }
    int steps = nb == 1 ? 1 : 10;
    for (int a = 0; a <= (nb == 2 ? steps : 0); a++) {
        for (int b = 0; b <= steps; b++) {
            double ta = nb == 2 ? lo[0] + (hi[0] - lo[0]) * a / steps : 0;
            double tb = nb == 2 ? lo[1] + (hi[1] - lo[1]) * b / steps : lo[0] + (hi[0] - lo[0]) * b / steps;
            double p[3];
            for (int j = 0; j < d; j++)
                p[j] = pts[0][j] + (nb == 2 ? ta * basis[0][j] + tb * basis[1][j] : tb * basis[0][j]);
            ser_row(s, p, d);
        }
        ser_gap(s);
    }
}

// For d > 3 without --coords: the two coordinates where the min-l1 and min-sharpness
// interpolators differ most, so the projection shows GD moving between them.
static int contrast_coords(const ns_rep_exp *e, int d, int *ci, int *cj) {
    const ns_rep_ref *a = &e->ref[NS_REF_MIN_L1], *b = &e->ref[NS_REF_MIN_SHARP];
    if (!a->beta || !b->beta || a->d != d || b->d != d) return 0;
    int best[2] = {-1, -1};
    for (int i = 0; i < d; i++) {
        double gap = fabs(a->beta[i] - b->beta[i]);
        if (best[0] < 0 || gap > fabs(a->beta[best[0]] - b->beta[best[0]])) {
            best[1] = best[0];
            best[0] = i;
        } else if (best[1] < 0 || gap > fabs(a->beta[best[1]] - b->beta[best[1]])) {
            best[1] = i;
        }
    }
    *ci = best[0] < best[1] ? best[0] : best[1];
    *cj = best[0] < best[1] ? best[1] : best[0];
    return 1;
}

static void fig_dln_interpolators(rp_ctx *c, int k) {
    const ns_rep_exp *e = &c->r->exp[k];
    int d = 0;
    for (int i = 0; i < e->nrun && !d; i++) d = e->run[i].beta ? e->run[i].d : 0;
    for (int r = 0; r < NS_REF_COUNT && !d; r++) d = e->ref[r].beta ? e->ref[r].d : 0;
    int ci = c->o->coord_i, cj = c->o->coord_j;
    int chosen = ci >= 0 && cj >= 0 && ci < d && cj < d && ci != cj;
    int automatic = !chosen && d > 3 && contrast_coords(e, d, &ci, &cj);
    int three_d = d == 3 && !chosen;
    if (d < 2 || (d > 3 && !chosen && !automatic)) return;
    if (!chosen && !automatic) ci = 0, cj = 1;
    // Known interpolators: references first (exact), then the converged GD solutions.
    const double *pts[NS_REF_COUNT + 512];
    int np = 0;
    for (int r = 0; r < NS_REF_COUNT; r++)
        if (e->ref[r].beta && e->ref[r].d == d) pts[np++] = e->ref[r].beta;
    int nref = np;
    for (int i = 0; i < e->nrun && np < NS_REF_COUNT + 512; i++)
        if (e->run[i].beta && e->run[i].d == d && ns_rep_converged(&e->run[i])) pts[np++] = e->run[i].beta;
    int dim = e->dln_n > 0 ? d - e->dln_n : (nref >= 2 ? 1 : 0);
    fig g;
    char title[1024], xl[64], yl[64];
    fig_begin(&g, c, 820, 720, "%s_interpolators", e->tag);
    if (chosen || automatic)
        snprintf(title, sizeof title, "GD solutions and minimizers in coordinates (β_%d, β_%d)%s\n%s", ci + 1, cj + 1,
                 automatic ? " (projection; where the two minimizers differ most)" : d > 3 ? " (projection)" : "",
                 e->title);
    else
        snprintf(title, sizeof title, "The interpolating set, the GD solutions and the minimizers\n%s", e->title);
    snprintf(xl, sizeof xl, "β_%d (coefficient units)", ci + 1);
    snprintf(yl, sizeof yl, "β_%d (coefficient units)", cj + 1);
    fig_panel(&g, title, xl, yl, 0, 0);
    fig_cmd(&g, "set palette defined (0 \"#440154\", 1 \"#31688e\", 2 \"#35b779\", 3 \"#fde725\")");
    fig_cmd(&g, "set cblabel \"log10 η\"; set colorbox");
    double elo = INFINITY, ehi = -INFINITY;
    for (int i = 0; i < e->nrun; i++)
        if (e->run[i].beta && e->run[i].eta > 0) {
            elo = fmin(elo, log10(e->run[i].eta));
            ehi = fmax(ehi, log10(e->run[i].eta));
        }
    if (elo < ehi) fig_cmd(&g, "set cbrange [%.17g:%.17g]", elo, ehi);
    else if (elo == ehi) fig_cmd(&g, "set cbrange [%.17g:%.17g]", elo - 0.5, ehi + 0.5);
    series set;
    ser_init(&set, 0, 0, three_d ? "beta_1 beta_2 beta_3 (mesh of the interpolating set)" : "beta_i beta_j (interpolating set)");
    if (three_d) {
        fig_cmd(&g, "set zlabel \"β_3 (coefficient units)\" rotate parallel; set view 60, 35; set ticslevel 0");
        if (dim == 1 || dim == 2) interpolating_set(&set, pts, np, 3, dim);
        fig_series(&g, &set, "using 1:2:3 with lines lc rgb \"#bbbbbb\" title \"interpolating set Xβ = y\"");
    } else {
        fig_cmd(&g, "set size ratio -1; set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05");
        if (d == 2 && dim == 1) interpolating_set(&set, pts, np, 2, 1);
        fig_series(&g, &set, "using 1:2 with lines lw 2 lc rgb \"#999999\" title \"interpolating set Xβ = y\"");
    }
    series gd;
    ser_init(&gd, 0, 0, three_d ? "beta_1 beta_2 beta_3 eta" : "beta_i beta_j eta");
    for (int i = 0; i < e->nrun; i++) {
        const ns_rep_run *u = &e->run[i];
        if (!u->beta || u->d != d || ns_rep_diverged(u)) continue;
        double row[4] = {u->beta[ci], u->beta[cj], three_d ? u->beta[2] : u->eta, u->eta};
        ser_row(&gd, row, three_d ? 4 : 3);
    }
    fig_series(&g, &gd, three_d ? "using 1:2:3:(log10($4)) with points pt 7 ps 1.4 lc palette title \"GD solution (colour: log10 η)\""
                                : "using 1:2:(log10($3)) with points pt 7 ps 1.4 lc palette title \"GD solution (colour: log10 η)\"");
    for (int r = 0; r < NS_REF_COUNT; r++) {
        if (!e->ref[r].beta || e->ref[r].d != d) continue;
        series s;
        ser_init(&s, 0, 0, ns_dln_ref_key[r]);
        double row[3] = {e->ref[r].beta[ci], e->ref[r].beta[cj], three_d ? e->ref[r].beta[2] : 0};
        ser_row(&s, row, three_d ? 3 : 2);
        fig_series(&g, &s, "using 1:2%s with points pt %d ps 2.6 lw 2 lc rgb \"%s\" title %s", three_d ? ":3" : "",
                   ref_pt[r], ref_color[r], fig_q(&g, ns_ref_label[r]));
    }
    if (three_d) {
        fig_splot_end(&g);
    } else {
        fig_panel_end(&g);
    }
    fig_end(&g, k, "The interpolating set with the GD solution of every learning rate (colour: log10 η) and the "
                   "reference minimizers.");
}

void rp_figures_experiment(rp_ctx *c, int k) {
    const ns_rep_exp *e = &c->r->exp[k];
    if (e->kind == NS_EXP_DLN) {
        fig_dln_generalization(c, k);
        fig_dln_norm_sharpness(c, k);
        fig_dln_interpolators(c, k);
        fig_trajectories(c, k);
        return;
    }
    if (e->nrun >= 2) {
        fig_sweep_sharpness(c, k);
        fig_sweep_norms(c, k);
        fig_sweep_generalization(c, k);
        fig_sweep_measures(c, k);
    }
    rp_figures_views(c, k);
    fig_trajectories(c, k);
    if (e->flow >= 0) fig_flow(c, &c->r->flow[e->flow], k, e->tag, e->title);
}
