// The report's figures of the opt-in curvature views of a sweep, read from each run's
// summary.json ("final": adaptive_sharpness, per_layer) and density.csv: the adaptive
// sharpness beside the l1 norm, the top eigenvalue of each layer's diagonal Hessian block,
// and the spectral density (SLQ) at three learning rates (below eta_c, near it, above it).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "figure.h"

#define X_ETA "learning rate η (step size, log scale)"

typedef struct {
    double adaptive, l1;
    int nlayers;
    char names[16][32];
    double layer[16];
} run_views;

// What run u's summary.json says about the views; 0 if it has none of them.
// Out of memory: -1 (an error, not a run without views).
static int read_views(const ns_rep_run *u, run_views *v) {
    memset(v, 0, sizeof *v);
    v->adaptive = v->l1 = NAN;
    char path[4200];
    ns_jval d;
    int rc = !u->dir || ns_rep_diverged(u) || ns_path(path, sizeof path, "%s/summary.json", u->dir)
                 ? NS_EIO : ns_json_parse_file(path, &d);
    if (rc == NS_ENOMEM) return -1;
    if (rc) {
        ns_clear_error();
        return 0;
    }
    const ns_jval *f = ns_jget(&d, "final"), *pl = ns_jget(f, "per_layer");
    v->adaptive = ns_jnum(f, "adaptive_sharpness", NAN);
    v->l1 = ns_jnum(f, "l1", NAN);
    for (int t = 0; pl && pl->type == NS_JOBJ && t < pl->n && t < 16; t++) {
        snprintf(v->names[t], sizeof v->names[t], "%s", pl->keys[t]);
        v->layer[t] = ns_jnum(&pl->items[t], "sharpness", NAN);
        v->nlayers = t + 1;
    }
    ns_jval_free(&d);
    return isfinite(v->adaptive) || v->nlayers > 0;
}

static void eta_marks(fig *g, const ns_findings *f) {
    if (isfinite(f->eta_c_pred)) {
        fig_cmd(g, "set arrow from first %.17g, graph 0 to first %.17g, graph 1 nohead dt 2 lw 1.5 lc rgb \"black\" back",
                f->eta_c_pred, f->eta_c_pred);
        fig_clause(g, "keyentry with lines dt 2 lw 1.5 lc rgb \"black\" title \"η_c predicted = %.4g\"", f->eta_c_pred);
    }
}

// Adaptive sharpness (left) and l1 norm (right) against eta: does the norm-sharpness
// trade-off survive a scale-invariant measure of sharpness?
static void fig_adaptive(rp_ctx *c, int k, const run_views *v) {
    const ns_rep_exp *e = &c->r->exp[k];
    series a, l;
    ser_init(&a, 1, 1, "eta adaptive_sharpness");
    ser_init(&l, 1, 0, "eta l1");
    l.y2 = 1;
    for (int i = 0; i < e->nrun; i++) {
        ser_add(&a, e->run[i].eta, v[i].adaptive);
        ser_add(&l, e->run[i].eta, v[i].l1);
    }
    if (a.n == 0) {
        ns_buf_free(&a.b);
        ns_buf_free(&l.b);
        return;
    }
    fig g;
    char title[1024];
    fig_begin(&g, c, 820, 600, "%s_adaptive", e->tag);
    snprintf(title, sizeof title, "Adaptive sharpness and l1 norm vs learning rate\n%s", e->title);
    fig_panel(&g, title, X_ETA, "adaptive sharpness max|λ| of D H D, D = diag(|θ| + ε) (loss units)", 1, 1);
    fig_cmd(&g, "set y2label \"l1 norm Σ|θ_j| (parameter units)\"; set y2tics; set ytics nomirror");
    fig_series(&g, &a, "using 1:2 axes x1y1 with linespoints pt 7 ps 1.2 lw 1.5 lc rgb \"%s\" title \"adaptive sharpness (left axis)\"",
               rp_color[0]);
    fig_series(&g, &l, "using 1:2 axes x1y2 with linespoints pt 5 ps 1.2 lw 1.5 lc rgb \"%s\" title \"l1 norm (right axis)\"",
               rp_color[1]);
    eta_marks(&g, &c->f[k]);
    fig_panel_end(&g);
    fig_end(&g, k, "Adaptive (scale-invariant) sharpness, the top |eigenvalue| of diag(|θ|+ε) H diag(|θ|+ε), and the l1 "
                   "norm of the final iterate against the learning rate (diverged runs left out).");
}

// The top |eigenvalue| of every tensor's diagonal Hessian block against eta, with 2/eta.
static void fig_layers(rp_ctx *c, int k, const run_views *v) {
    const ns_rep_exp *e = &c->r->exp[k];
    int nl = 0, ref = -1;
    for (int i = 0; i < e->nrun; i++)
        if (v[i].nlayers > nl) nl = v[i].nlayers, ref = i;
    if (nl == 0) return;
    fig g;
    char title[1024];
    fig_begin(&g, c, 860, 620, "%s_layers", e->tag);
    snprintf(title, sizeof title, "Per-layer curvature vs learning rate\n%s", e->title);
    fig_panel(&g, title, X_ETA, "top |eigenvalue| of the layer's diagonal Hessian block (loss units, log scale)", 1, 1);
    for (int t = 0; t < nl; t++) {
        series s;
        ser_init(&s, 1, 1, "eta layer_sharpness");
        for (int i = 0; i < e->nrun; i++)
            if (t < v[i].nlayers && !strcmp(v[i].names[t], v[ref].names[t])) ser_add(&s, e->run[i].eta, v[i].layer[t]);
        fig_series(&g, &s, "using 1:2 with linespoints pt %d ps 1.1 lw 1.4 lc rgb \"%s\" title %s", 4 + t,
                   rp_color[t % RP_NCOLOR], fig_q(&g, v[ref].names[t]));
    }
    series s;
    ser_init(&s, 1, 1, "eta sharpness");
    for (int i = 0; i < e->nrun; i++)
        if (!ns_rep_diverged(&e->run[i])) ser_add(&s, e->run[i].eta, e->run[i].sharpness);
    fig_series(&g, &s, "using 1:2 with lines lw 2.5 lc rgb \"black\" title \"whole Hessian: sharpness S\"");
    fig_clause(&g, "2/x with lines dt 2 lw 1.5 lc rgb \"#555555\" title \"2/η\"");
    eta_marks(&g, &c->f[k]);
    fig_panel_end(&g);
    fig_end(&g, k, "Top |eigenvalue| of each parameter tensor's diagonal Hessian block (the Hessian restricted to that "
                   "tensor) against the learning rate, with the whole Hessian's sharpness and 2/η.");
}

// Three runs with a density.csv: the largest eta below 0.7 eta_c, the one nearest eta_c,
// and the largest one that did not diverge (at the EoS); without eta_c: smallest, middle,
// largest. Returns how many (distinct) were found.
static int pick_density_runs(const ns_rep_exp *e, double eta_c, int pick[3]) {
    int cand[512], m = 0;
    for (int i = 0; i < e->nrun && m < 512; i++) {
        char p[4200];
        if (e->run[i].dir && !ns_rep_diverged(&e->run[i]) && !ns_path(p, sizeof p, "%s/density.csv", e->run[i].dir) &&
            ns_exists(p))
            cand[m++] = i;
    }
    ns_clear_error();
    if (m == 0) return 0;
    int below = cand[0], near = cand[m / 2], above = cand[m - 1];
    if (isfinite(eta_c)) {
        double best = INFINITY;
        for (int j = 0; j < m; j++) {
            double eta = e->run[cand[j]].eta, d = fabs(log(eta / eta_c));
            if (eta <= 0.7 * eta_c) below = cand[j];
            if (d < best) best = d, near = cand[j];
        }
    }
    int n = 0, want[3] = {below, near, above};
    for (int j = 0; j < 3; j++) {
        int dup = 0;
        for (int q = 0; q < n; q++) dup |= pick[q] == want[j];
        if (!dup) pick[n++] = want[j];
    }
    return n;
}

static void fig_density(rp_ctx *c, int k) {
    const ns_rep_exp *e = &c->r->exp[k];
    const ns_findings *f = &c->f[k];
    int pick[3], np = pick_density_runs(e, f->eta_c, pick);
    if (np == 0) return;
    fig g;
    char title[1024];
    fig_begin(&g, c, 900, 620, "%s_density", e->tag);
    snprintf(title, sizeof title, "Hessian spectral density (stochastic Lanczos quadrature)\n%s", e->title);
    fig_panel(&g, title, "eigenvalue λ of the loss Hessian (loss units)", "density (per unit λ, log scale; integrates to 1)",
              0, 1);
    for (int j = 0; j < np; j++) {
        const ns_rep_run *u = &e->run[pick[j]];
        char p[4200];
        ns_table t;
        int rc = ns_path(p, sizeof p, "%s/density.csv", u->dir) ? NS_EIO : ns_table_read(p, &t);
        if (rc == NS_ENOMEM) rp_hard_error(c, rc);  // an error, not a missing density
        if (rc) {
            if (rc != NS_ENOMEM) ns_clear_error();
            continue;
        }
        series s;
        ser_init(&s, 0, 1, "lambda density");
        int cl = ns_table_col(&t, "lambda"), cd = ns_table_col(&t, "density");
        for (int i = 0; i < t.nrow; i++) {
            double y = ns_table_num(&t, i, cd);
            if (y > 1e-8) ser_add(&s, ns_table_num(&t, i, cl), y);
            else if (s.n > 0) ser_gap(&s);  // the Gaussian tails between nodes carry no information
        }
        ns_table_free(&t);
        const char *where = !isfinite(f->eta_c) ? "" : u->eta < 0.85 * f->eta_c ? " (below η_c)"
                                                  : u->eta <= 1.2 * f->eta_c    ? " (near η_c)"
                                                                                : " (above η_c: EoS)";
        if (fig_series(&g, &s, "using 1:2 with lines lw 1.6 lc rgb \"%s\" title \"η = %.4g%s\"", rp_color[j], u->eta, where))
            fig_cmd(&g, "set arrow from first %.17g, graph 0 to first %.17g, graph 1 nohead dt 2 lw 1.2 lc rgb \"%s\" back",
                    2 / u->eta, 2 / u->eta, rp_color[j]);
    }
    fig_clause(&g, "keyentry with lines dt 2 lw 1.2 lc rgb \"#555555\" title \"dashed: 2/η in the same colour\"");
    fig_panel_end(&g);
    fig_end(&g, k, "Gaussian-smoothed Hessian eigenvalue density of the final iterate (stochastic Lanczos quadrature; "
                   "each eigenvalue carries mass 1/n) at three learning rates; the dashed lines mark each run's 2/η.");
}

void rp_figures_views(rp_ctx *c, int k) {
    const ns_rep_exp *e = &c->r->exp[k];
    if (e->kind != NS_EXP_SWEEP || e->nrun < 1) return;
    run_views *v = ns_calloc((size_t)e->nrun, sizeof *v);
    if (!v) {
        rp_hard_error(c, NS_ENOMEM);
        return;
    }
    int any = 0;
    for (int i = 0; i < e->nrun; i++) {
        int got = read_views(&e->run[i], &v[i]);
        if (got < 0) {
            rp_hard_error(c, NS_ENOMEM);
            free(v);
            return;
        }
        any |= got;
    }
    if (any) {
        fig_adaptive(c, k, v);
        fig_layers(c, k, v);
    }
    free(v);
    fig_density(c, k);
}
