// Across seeds: the sweeps of one setting at several seeds (theta_0 drawn with different
// seeds), summarized from each seed's findings, and the figure that puts them on common
// axes. In units of each seed's own eta_c = 2/s_GF the paper's picture is the same for
// every seed: S eta / 2 = eta / eta_c while GD follows the flow (S = s_GF) and 1 at the Edge
// of Stability (S = 2/eta), so the seeds' curves fall on min(x, 1).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "figure.h"

// Same setting: everything of the configuration but the seed (and the sweep's own runs).
static int same_setting(const ns_rep_config *a, const ns_rep_config *b) {
    return !strcmp(a->dataset, b->dataset) && !strcmp(a->arch, b->arch) && !strcmp(a->loss, b->loss) &&
           !strcmp(a->param, b->param) && a->n == b->n &&
           (a->init_scale == b->init_scale || (isnan(a->init_scale) && isnan(b->init_scale))) &&
           a->weight_decay == b->weight_decay && a->batch == b->batch;
}

// {mean, sample sd} of the finite values of v[0..n).
static void mean_sd(const double *v, int n, double out[2]) {
    double s = 0, ss = 0;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) s += v[i], m++;
    out[0] = m ? s / m : NAN;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) ss += (v[i] - out[0]) * (v[i] - out[0]);
    out[1] = m > 1 ? sqrt(ss / (m - 1)) : NAN;
}

static int summarize(const ns_report *r, ns_seed_group *g) {
    double *v = ns_calloc((size_t)g->n * 5, sizeof *v);
    if (!v) return NS_ENOMEM;
    double *sgf = v, *pred = v + g->n, *obs = v + 2 * g->n, *rel = v + 3 * g->n, *err = v + 4 * g->n;
    const ns_rep_exp *e0 = &r->exp[g->exp[0]];
    ns_buf t = {0}, tag = {0};
    rp_setting_text(&t, &e0->cfg);
    if (e0->cfg.n > 0) ns_buf_printf(&t, ", n = %ld", e0->cfg.n);
    ns_buf_printf(&t, g->n > 1 ? ", seeds " : ", seed ");
    for (int i = 0; i < g->n; i++) {
        ns_findings f;
        ns_report_findings(r, g->exp[i], &f);
        ns_buf_printf(&t, "%s%llu", i ? ", " : "", (unsigned long long)r->exp[g->exp[i]].cfg.seed);
        sgf[i] = f.s_gf;
        pred[i] = f.eta_c_pred;
        obs[i] = f.eta_c_obs;
        rel[i] = f.best_position != 2 && f.eta_c > 0 ? f.best_eta / f.eta_c : NAN;
        err[i] = f.best_position != 2 ? f.best_err : NAN;
        g->n_above += f.n_above;
        g->n_follow += f.n_follow;
        if (isfinite(f.l1_rho)) g->l1_known++, g->l1_grows += rp_l1_trend(f.l1_rho) > 0;
    }
    mean_sd(sgf, g->n, g->s_gf);
    mean_sd(pred, g->n, g->eta_c_pred);
    mean_sd(obs, g->n, g->eta_c_obs);
    mean_sd(rel, g->n, g->best_rel);
    mean_sd(err, g->n, g->best_err);
    free(v);
    if (g->n == 1) ns_buf_printf(&t, " (repeated)");
    ns_buf_printf(&tag, "%s_%s_%s", e0->cfg.dataset, e0->cfg.arch, e0->cfg.loss);
    if (e0->cfg.n > 0) ns_buf_printf(&tag, "_n%ld", e0->cfg.n);
    ns_buf_printf(&tag, "_seeds");
    rp_file_safe(tag.data);
    g->title = t.data;
    g->tag = tag.data;
    return t.oom || tag.oom || !g->title || !g->tag ? NS_ENOMEM : 0;
}

static const char *group_tag(const void *ctx, int j) { return ((const ns_seed_group *)ctx)[j].tag; }

// Is experiment j a repeat of a member of group s (the same seed)?
static int repeats_a_member(const ns_report *r, const ns_seed_group *s, int j) {
    for (int i = 0; i < s->n; i++)
        if (r->exp[s->exp[i]].cfg.seed_known == r->exp[j].cfg.seed_known && r->exp[s->exp[i]].cfg.seed == r->exp[j].cfg.seed)
            return 1;
    return 0;
}

int ns_report_seed_groups(const ns_report *r, ns_seed_group **out, int *nout) {
    *out = NULL;
    *nout = 0;
    int *owner = ns_calloc((size_t)r->nexp + 1, sizeof *owner);  // 1 + group index, 0 = none yet
    if (!owner) return NS_ENOMEM;
    ns_seed_group *g = NULL;
    int n = 0, rc = 0;
    for (int k = 0; k < r->nexp && !rc; k++) {
        if (r->exp[k].kind != NS_EXP_SWEEP || owner[k]) continue;
        int members = 1;
        for (int j = k + 1; j < r->nexp; j++)
            members += r->exp[j].kind == NS_EXP_SWEEP && !owner[j] && same_setting(&r->exp[k].cfg, &r->exp[j].cfg);
        if (members < 2) continue;  // one sweep of this setting: nothing to group
        ns_seed_group *ng = ns_realloc(g, (size_t)(n + 1) * sizeof *ng);
        if (!ng) {
            rc = NS_ENOMEM;
            break;
        }
        g = ng;
        ns_seed_group *s = &g[n++];
        memset(s, 0, sizeof *s);
        if (!(s->exp = ns_calloc((size_t)members, sizeof *s->exp)) ||
            !(s->repeat = ns_calloc((size_t)members, sizeof *s->repeat))) {
            rc = NS_ENOMEM;
            break;
        }
        for (int j = k; j < r->nexp; j++)
            if (r->exp[j].kind == NS_EXP_SWEEP && !owner[j] && same_setting(&r->exp[k].cfg, &r->exp[j].cfg)) {
                owner[j] = n;
                if (repeats_a_member(r, s, j)) s->repeat[s->nrepeat++] = j;
                else s->exp[s->n++] = j;
            }
        // Settings that differ only in parameterization or init scale share a file-name stem.
        if (!(rc = summarize(r, s))) rc = rp_unique_tag(&s->tag, group_tag, g, n - 1);
    }
    free(owner);
    if (rc) {
        ns_seed_groups_free(g, n);
        return rc;
    }
    *out = g;
    *nout = n;
    return 0;
}

void ns_seed_groups_free(ns_seed_group *g, int n) {
    for (int i = 0; i < n; i++) {
        free(g[i].exp);
        free(g[i].repeat);
        free(g[i].title);
        free(g[i].tag);
    }
    free(g);
}

// "m ± sd", "m" (one value) or "unknown".
static void stat_text(ns_buf *b, const double v[2]) {
    if (!isfinite(v[0])) ns_buf_printf(b, "unknown");
    else if (!isfinite(v[1])) ns_buf_printf(b, "%.4g", v[0]);
    else ns_buf_printf(b, "%.4g ± %.2g", v[0], v[1]);
}

// The member of g with the seed of experiment j (the run a repeat repeats).
static int member_of_seed(const ns_report *r, const ns_seed_group *g, int j) {
    for (int i = 0; i < g->n; i++)
        if (r->exp[g->exp[i]].cfg.seed == r->exp[j].cfg.seed) return g->exp[i];
    return g->exp[0];
}

void ns_seed_group_text(const ns_report *r, const ns_seed_group *g, ns_buf *b) {
    if (g->n > 1) {
        ns_buf_printf(b, "across %d seeds (mean ± sd): s_GF ", g->n);
        stat_text(b, g->s_gf);
        ns_buf_printf(b, ", eta_c predicted ");
        stat_text(b, g->eta_c_pred);
        ns_buf_printf(b, ", observed ");
        stat_text(b, g->eta_c_obs);
        ns_buf_printf(b, "; %d of %d converged runs above eta_c end within 10%% of 2/eta; l1 grows above eta_c for %d of %d "
                         "seeds; best eta = ",
                      g->n_follow, g->n_above, g->l1_grows, g->l1_known);
        stat_text(b, g->best_rel);
        ns_buf_printf(b, " x eta_c, test error ");
        stat_text(b, g->best_err);
        ns_buf_printf(b, "\n");
    }
    for (int i = 0; i < g->nrepeat; i++) {
        const ns_rep_exp *e = &r->exp[g->repeat[i]];
        ns_buf_printf(b, "the sweep in %s repeats the one in %s (the same setting and seed %llu): one seed, counted once%s\n",
                      rp_rel_dir(r, e->dir), rp_rel_dir(r, r->exp[member_of_seed(r, g, g->repeat[i])].dir),
                      (unsigned long long)e->cfg.seed,
                      g->n > 1 ? "; it is left out of the mean and sd" : "; with one seed there is no average across seeds");
    }
}

static void stat_json(ns_json *j, const char *key, const double v[2]) {
    ns_json_obj(j, key);
    ns_json_num(j, "mean", v[0]);
    ns_json_num(j, "sd", v[1]);
    ns_json_end(j);
}

void ns_seed_group_json(const ns_report *r, const ns_seed_group *g, ns_json *j, const char *key) {
    ns_json_obj(j, key);
    ns_json_str(j, "title", g->title);
    ns_json_int(j, "seeds", g->n);
    ns_json_arr(j, "repeats");  // folders under DIR of the sweeps left out as repeats
    for (int i = 0; i < g->nrepeat; i++) ns_json_str(j, NULL, rp_rel_dir(r, r->exp[g->repeat[i]].dir));
    ns_json_end(j);
    stat_json(j, "s_gf", g->s_gf);
    stat_json(j, "eta_c_predicted", g->eta_c_pred);
    stat_json(j, "eta_c_observed", g->eta_c_obs);
    stat_json(j, "best_eta_over_eta_c", g->best_rel);
    stat_json(j, "best_test_err", g->best_err);
    ns_json_int(j, "runs_above_eta_c", g->n_above);
    ns_json_int(j, "runs_at_two_over_eta", g->n_follow);
    ns_json_int(j, "seeds_l1_grows", g->l1_grows);
    ns_json_int(j, "seeds_l1_known", g->l1_known);
    ns_json_end(j);
}

// ---- the figure ------------------------------------------------------------------------------
void rp_figure_seeds(rp_ctx *c, const ns_seed_group *grp, int gi) {
    if (grp->n < 2) return;  // repeats of one seed: nothing to compare
    fig g;
    char title[1200];
    fig_begin(&g, c, 1950, 620, "%s", grp->tag);
    snprintf(title, sizeof title, "Across seeds, in units of each seed's η_c = 2/s_GF\n%s", grp->title);
    fig_multiplot(&g, 1, 3, title);
    double lo = INFINITY, hi = -INFINITY, ymin = 1, ymax = 1;
    static const char *const panel[3][2] = {
        {"sharpness in units of the stability threshold 2/η", "S·η/2 = S / (2/η) (dimensionless)"},
        {"test error", "test error (fraction of test examples)"},
        {"test loss", "test loss (per example, the run's loss)"}};
    for (int p = 0; p < 3; p++) {
        fig_panel(&g, panel[p][0], "η / η_c (each seed's own η_c; log scale)", panel[p][1], 1, p == 0);
        for (int i = 0; i < grp->n; i++) {
            const ns_rep_exp *e = &c->r->exp[grp->exp[i]];
            const ns_findings *f = &c->f[grp->exp[i]];
            if (!(f->eta_c > 0)) continue;
            series s, ring;
            ser_init(&s, 1, p == 0, "eta/eta_c value (finished runs)");
            ser_init(&ring, 1, p == 0, "eta/eta_c value (runs that stopped at the step limit)");
            for (int k = 0; k < e->nrun; k++) {
                const ns_rep_run *u = &e->run[k];
                if (ns_rep_diverged(u)) continue;
                double x = u->eta / f->eta_c;
                double y = p == 2 ? u->test_loss : p ? u->test_err : u->sharpness * u->eta / 2;
                ser_add(&s, x, y);
                if (!ns_rep_converged(u)) ser_add(&ring, x, y);
                if (isfinite(x) && x > 0) lo = fmin(lo, x), hi = fmax(hi, x);
                if (!p && isfinite(y) && y > 0) ymin = fmin(ymin, y), ymax = fmax(ymax, y);
            }
            fig_series(&g, &s, "using 1:2 with linespoints pt 7 ps 1.1 lw 1.5 lc rgb \"%s\" title \"seed %llu\"",
                       rp_color[i % RP_NCOLOR], (unsigned long long)e->cfg.seed);
            fig_ring_points(&g, &ring, "x1y1");
        }
        if (lo <= hi) {
            fig_cmd(&g, "set xrange [%.17g:%.17g]", lo / 1.3, hi * 1.3);
            fig_log_tics(&g, "x", lo / 1.3, hi * 1.3);
        }
        if (p == 0) {
            fig_clause(&g, "x with lines dt 2 lw 1.5 lc rgb \"#555555\" title \"S = s_GF (follows the flow): S·η/2 = η/η_c\"");
            fig_clause(&g, "1 with lines dt 3 lw 2 lc rgb \"#d62728\" title \"S = 2/η (Edge of Stability)\"");
            // the reference line x would stretch the axis to the largest eta/eta_c: stop above the
            // data, and below both the data and where that line enters the frame
            if (lo <= hi) fig_cmd(&g, "set yrange [%.17g:%.17g]", fmin(ymin, fmin(lo, 1)) / 1.3, 1.6 * ymax);
        }
        fig_cmd(&g, "set arrow from first 1, graph 0 to first 1, graph 1 nohead dt 2 lw 1.5 lc rgb \"black\" back");
        fig_panel_end(&g);
    }
    fig_end(&g, RP_FIG_GROUP(gi),
            "Final sharpness in units of 2/η, test error and test loss, against η/η_c for every seed (finished runs, those that "
            "stopped at the step limit ringed; each seed's η_c is its own 2/s_GF, or the observed η_c without a flow).");
}
