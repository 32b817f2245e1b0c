// normsharp sweep — the protocol of docs/CONVENTIONS.md, protocol: for every seed, theta_0 once; optionally the
// gradient flow from it (s_GF, eta_c); then GD from that same theta_0 at every learning
// rate of a grid; one run directory each and a sweep.csv, through the shared runner
// (parallel workers, resume, progress). Ends with a table and the observed transition.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/eos.h"
#include "normsharp/sweep.h"
#include "train_cli.h"

#define SWEEP_CSV_HEADER                                                                            \
    "eta,seed,status,steps,train_loss,train_err,test_loss,test_err,l1,l2,lambda_max,sharpness,"    \
    "two_over_eta,trace,avg_train_loss,avg_test_err,avg_l1,avg_l2,avg_sharpness,dec_train_loss,"   \
    "dec_test_err,dec_l1,dec_l2,dec_sharpness,seconds"
#define FLOW_CSV_HEADER "seed,status,steps,time,s_gf,eta_c,train_loss,sharpness,seconds"

typedef struct {
    train_cli *t;
    const ns_train_opts *gd;
    const ns_flow_opts *flow_opts;
    const ns_dataset *ds;
    int nseeds;
    uint64_t *seeds;
    ns_model **models;      // one per seed, at theta_0
    real **theta0;          // a copy of each theta_0, restored before every run
    double *s_gf, *eta_c;   // per seed, from the flow (NaN without --flow)
    // the runs of the current phase (flows: one per seed; GD: seed-major, eta ascending)
    int flow;               // 1 while the runs are the flows
    int n;
    int *seed_of;
    double *eta;
    char **dirs;
    ns_buf header;          // sweep.csv's header: SWEEP_CSV_HEADER and the opt-in columns
} sweep_ctx;

// Run i of the current phase: its theta_0 (model k) and its options (gd or fl).
typedef struct {
    int k;
    ns_train_opts gd;
    ns_flow_opts fl;
} run_spec;

static void spec_of(const sweep_ctx *c, int i, run_spec *r) {
    r->k = c->flow ? i : c->seed_of[i];
    uint64_t seed = c->seeds[r->k];
    if (c->flow) {
        r->fl = *c->flow_opts;
        train_cli_run_opts(c->t, seed, &r->fl.seed, &r->fl.save_weights, &r->fl.weights_from, &r->fl.final, &r->fl.eig);
        r->fl.final.views = r->fl.eig.views = c->flow_opts->final.views;  // the flow finds s_GF only
    } else {
        r->gd = *c->gd;
        r->gd.lr = c->eta[i];
        train_cli_run_opts(c->t, seed, &r->gd.seed, &r->gd.save_weights, &r->gd.weights_from, &r->gd.final, &r->gd.eig);
    }
}

// ---- the runs -----------------------------------------------------------------------------

// GD or the flow from a fresh copy of theta_0.
static int run(void *ctx, int i, const char *dir, ns_progress *p) {
    sweep_ctx *c = ctx;
    run_spec r;
    spec_of(c, i, &r);
    ns_model *m = c->models[r.k];
    memcpy(ns_model_theta(m), c->theta0[r.k], ns_model_nparams(m) * sizeof(real));
    int rc;
    if (c->flow) {
        ns_flow_result res;
        rc = ns_flow_run(m, c->ds, &c->t->data, &r.fl, dir, p, &res);
        ns_flow_result_free(&res);
    } else {
        ns_train_result res;
        rc = ns_train_run(m, c->ds, &c->t->data, &r.gd, dir, p, &res);
        ns_train_result_free(&res);
    }
    return rc;
}

static void label(void *ctx, int i, char *out, size_t cap) {
    sweep_ctx *c = ctx;
    if (c->flow) snprintf(out, cap, "flow seed=%llu", (unsigned long long)c->seeds[i]);
    else snprintf(out, cap, "lr=%g seed=%llu", c->eta[i], (unsigned long long)c->seeds[c->seed_of[i]]);
}

// For the 80-column progress line: "lr=0.0123" (and "/s1" when there are several seeds).
static void short_label(void *ctx, int i, char *out, size_t cap) {
    sweep_ctx *c = ctx;
    unsigned long long seed = c->flow ? c->seeds[i] : c->seeds[c->seed_of[i]];
    char s[32] = "";
    if (c->nseeds > 1) snprintf(s, sizeof s, "/s%llu", seed);
    if (c->flow) snprintf(out, cap, "flow%s", s);
    else snprintf(out, cap, "lr=%.3g%s", c->eta[i], s);
}

// ---- CSV rows from the runs' summary.json ----------------------------------------------------

static int load_summary(const char *dir, ns_jval *doc) {
    char p[4200];
    int rc = ns_path(p, sizeof p, "%s/summary.json", dir);
    return rc ? rc : ns_json_parse_file(p, doc);
}

// ---- opt-in columns (weight decay and the views), after the usual ones ------------------------

// The header: SWEEP_CSV_HEADER, then weight_decay,objective (with weight decay),
// adaptive_sharpness (--adaptive), layer_sharpness:<tensor> per tensor (--per-layer).
static int csv_header(sweep_ctx *c) {
    const ns_view_opts *v = &c->t->views;
    ns_buf_printf(&c->header, "%s", SWEEP_CSV_HEADER);
    if (c->gd->weight_decay > 0) ns_buf_printf(&c->header, ",weight_decay,objective");
    if (v->adaptive) ns_buf_printf(&c->header, ",adaptive_sharpness");
    for (int t = 0; v->per_layer && t < ns_model_ntensors(c->models[0]); t++)
        ns_buf_printf(&c->header, ",layer_sharpness:%s", ns_model_tensor(c->models[0], t)->name);
    return c->header.oom ? NS_ENOMEM : 0;
}

static void row_views(const sweep_ctx *c, const ns_jval *f, ns_buf *line) {
    const ns_view_opts *v = &c->t->views;
    if (c->gd->weight_decay > 0) {
        ns_csv_value(line, c->gd->weight_decay);
        ns_csv_value(line, ns_jnum(f, "objective", NAN));
    }
    if (v->adaptive) ns_csv_value(line, ns_jnum(f, "adaptive_sharpness", NAN));
    const ns_jval *layers = ns_jget(f, "per_layer");
    for (int t = 0; v->per_layer && t < ns_model_ntensors(c->models[0]); t++)
        ns_csv_value(line, ns_jnum(ns_jget(layers, ns_model_tensor(c->models[0], t)->name), "sharpness", NAN));
}

static int row_gd(void *ctx, int i, const char *dir, ns_buf *line) {
    sweep_ctx *c = ctx;
    ns_jval d;
    int rc = load_summary(dir, &d);
    if (rc) return rc;
    const ns_jval *f = ns_jget(&d, "final"), *a = ns_jget(&d, "averaged"), *x = ns_jget(&d, "decayed"),
                  *tm = ns_jget(&d, "timing");
    char eta[32];
    ns_fmt_double(eta, c->eta[i]);
    ns_buf_printf(line, "%s,%llu,%s", eta, (unsigned long long)c->seeds[c->seed_of[i]], ns_jstr(&d, "status", ""));
    ns_csv_value(line, ns_jnum(&d, "steps", NAN));
    static const char *fkeys[] = {"train_loss", "train_err", "test_loss", "test_err", "l1", "l2", "lambda_max", "sharpness"};
    for (int k = 0; k < 8; k++) ns_csv_value(line, ns_jnum(f, fkeys[k], NAN));
    ns_csv_value(line, 2 / c->eta[i]);
    ns_csv_value(line, ns_jnum(f, "trace", NAN));
    static const char *akeys[] = {"train_loss", "test_err", "l1", "l2", "sharpness"};
    for (int k = 0; k < 5; k++) ns_csv_value(line, ns_jnum(a, akeys[k], NAN));
    for (int k = 0; k < 5; k++) ns_csv_value(line, ns_jnum(x, akeys[k], NAN));
    ns_csv_value(line, ns_jnum(tm, "seconds", NAN));
    row_views(c, f, line);
    ns_jval_free(&d);
    return 0;
}

static int row_flow(void *ctx, int i, const char *dir, ns_buf *line) {
    sweep_ctx *c = ctx;
    ns_jval d;
    int rc = load_summary(dir, &d);
    if (rc) return rc;
    ns_buf_printf(line, "%llu,%s", (unsigned long long)c->seeds[i], ns_jstr(&d, "status", ""));
    ns_csv_value(line, ns_jnum(&d, "steps", NAN));
    ns_csv_value(line, ns_jnum(&d, "time", NAN));
    ns_csv_value(line, ns_jnum(&d, "s_gf", NAN));
    ns_csv_value(line, ns_jnum(&d, "eta_c", NAN));
    ns_csv_value(line, ns_jnum(ns_jget(&d, "final"), "train_loss", NAN));
    ns_csv_value(line, ns_jnum(ns_jget(&d, "final"), "sharpness", NAN));
    ns_csv_value(line, ns_jnum(ns_jget(&d, "timing"), "seconds", NAN));
    ns_jval_free(&d);
    return 0;
}

// ---- resume safety: a finished run must have been made with the same options ---------------

// The config run i would write.
static int expected_config(sweep_ctx *c, int i, ns_jval *out) {
    run_spec r;
    spec_of(c, i, &r);
    ns_buf b = {0};
    ns_json j;
    ns_json_begin(&j, &b);
    ns_json_obj(&j, NULL);
    if (c->flow) ns_flow_config_json(&j, c->models[r.k], c->ds, &c->t->data, &r.fl);
    else ns_train_config_json(&j, c->models[r.k], c->ds, &c->t->data, &r.gd);
    ns_json_end(&j);
    int rc = b.oom ? NS_ENOMEM : ns_json_parse(b.data, b.len, "the expected config", out);
    ns_buf_free(&b);
    return rc;
}

// Returns 0, or an exit status after printing which finished run disagrees.
static int check_finished_runs(sweep_ctx *c) {
    for (int i = 0; i < c->n; i++) {
        char p[4200], why[512];
        if (ns_path(p, sizeof p, "%s/summary.json", c->dirs[i]) || !ns_exists(p)) continue;
        ns_jval want;
        int rc = expected_config(c, i, &want);
        if (rc) return ns_cli_report(rc);
        int ok = ns_config_matches(p, ns_jget(&want, "config"), why, sizeof why);
        ns_jval_free(&want);
        if (!ok)
            return ns_cli_usage_error("the finished run in '%s' was made with other options (%s); "
                                      "choose another --out or remove that directory.", c->dirs[i], why);
    }
    return 0;
}

// ---- the grid ---------------------------------------------------------------------------------

static int parse_seeds(const char *s, uint64_t **out, int *n) {
    int cnt = 1;
    for (const char *q = s; *q; q++) cnt += *q == ',';
    uint64_t *v = ns_calloc((size_t)cnt, sizeof *v);
    if (!v) return NS_ENOMEM;
    const char *q = s;
    for (int i = 0; i < cnt; i++) {
        const char *e = strchr(q, ',');
        char tok[32];
        size_t len = e ? (size_t)(e - q) : strlen(q);
        if (len == 0 || len >= sizeof tok) {
            free(v);
            return ns_fail(NS_EINVAL, "--seeds expects a list like 0,1,2, got '%s'", s);
        }
        memcpy(tok, q, len);
        tok[len] = 0;
        if (ns_parse_u64(tok, "--seeds", &v[i])) {
            free(v);
            return NS_EINVAL;
        }
        for (int j = 0; j < i; j++)
            if (v[j] == v[i]) {
                free(v);
                return ns_fail(NS_EINVAL, "--seeds lists seed %s twice", tok);
            }
        q = e ? e + 1 : q + len;
    }
    *out = v;
    *n = cnt;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// --lr-span F (eta_c/F .. F eta_c) or LO:HI (eta_c/LO .. HI eta_c), every factor > 1.
static int parse_span(const char *s, double span[2]) {
    const char *colon = strchr(s, ':');
    char a[64];
    if (colon && (size_t)(colon - s) >= sizeof a)
        return ns_cli_usage_error("--lr-span expects F or LO:HI (factors above 1), got '%s'.", s);
    snprintf(a, sizeof a, "%.*s", colon ? (int)(colon - s) : (int)strlen(s), s);
    if (ns_parse_double(a, 1.000001, 1e6, "--lr-span", &span[0]) ||
        ns_parse_double(colon ? colon + 1 : a, 1.000001, 1e6, "--lr-span", &span[1]))
        return ns_cli_usage_error("%s (--lr-span expects F or LO:HI, factors above 1).", ns_errmsg());
    return 0;
}

// Lays out the GD runs: seed-major, eta ascending; dirs OUT/.../seed_<s>/lr_<%g>.
static int layout_gd_runs(sweep_ctx *c, const char *root, const double *grid, int ngrid, int around,
                          const double span[2]) {
    int per = around > 0 ? around : ngrid;
    c->flow = 0;
    c->n = c->nseeds * per;
    c->seed_of = ns_calloc((size_t)c->n, sizeof(int));
    c->eta = ns_calloc((size_t)c->n, sizeof(double));
    c->dirs = ns_calloc((size_t)c->n, sizeof(char *));
    if (!c->seed_of || !c->eta || !c->dirs) return NS_ENOMEM;
    for (int k = 0; k < c->nseeds; k++) {
        double *e = c->eta + (size_t)k * per;
        if (around > 0) {
            if (!(c->eta_c[k] > 0) || !isfinite(c->eta_c[k]))
                return ns_fail(NS_EIO, "the flow of seed %llu gave no usable eta_c (%g); use an explicit --lr grid",
                               (unsigned long long)c->seeds[k], c->eta_c[k]);
            ns_lr_grid_around(e, c->eta_c[k], span[0], span[1], around);
        } else {
            memcpy(e, grid, sizeof(double) * (size_t)ngrid);
        }
        qsort(e, (size_t)per, sizeof(double), cmp_double);
        for (int j = 0; j < per; j++) {
            int i = k * per + j;
            c->seed_of[i] = k;
            char d[4200];
            int rc = ns_path(d, sizeof d, "%s/seed_%llu/lr_%g", root, (unsigned long long)c->seeds[k], e[j]);
            if (rc) return rc;
            for (int q = k * per; q < i; q++)
                if (!strcmp(c->dirs[q], d))
                    return ns_fail(NS_EINVAL, "learning rates %.17g and %.17g share the directory name lr_%g; "
                                   "use fewer or more distinct values", c->eta[q], e[j], e[j]);
            if (!(c->dirs[i] = ns_strdup(d))) return NS_ENOMEM;
        }
    }
    return 0;
}

static void free_runs(sweep_ctx *c) {
    for (int i = 0; c->dirs && i < c->n; i++) free(c->dirs[i]);
    free(c->dirs);
    free(c->seed_of);
    free(c->eta);
    c->dirs = NULL;
    c->seed_of = NULL;
    c->eta = NULL;
    c->n = 0;
}

// ---- phases ----------------------------------------------------------------------------------

static int run_phase(sweep_ctx *c, const char *csv, int jobs, int quiet) {
    ns_sweep s = {.n_runs = c->n, .run_dirs = c->dirs, .run = run, .row = c->flow ? row_flow : row_gd, .label = label,
                  .short_label = short_label, .name = c->flow ? "flows" : "sweep",
                  .ctx = c, .jobs = jobs, .csv_path = csv, .csv_header = c->flow ? FLOW_CSV_HEADER : c->header.data,
                  .quiet = quiet};
    ns_sweep_stats st;
    int rc = ns_sweep_run(&s, &st);
    if (!quiet && ns_sweep_rank() == 0)
        fprintf(stderr, "%s: %d done, %d already finished, %d failed (%.1f s)\n", c->flow ? "flows" : "sweep", st.done,
                st.skipped, st.failed, st.seconds);
    return rc;
}

static int flow_phase(sweep_ctx *c, const char *root, int jobs, int quiet) {
    c->flow = 1;
    c->n = c->nseeds;
    c->dirs = ns_calloc((size_t)c->n, sizeof(char *));
    if (!c->dirs) return ns_cli_report(NS_ENOMEM);
    for (int k = 0; k < c->nseeds; k++) {
        char d[4200];
        if (ns_path(d, sizeof d, "%s/seed_%llu/flow", root, (unsigned long long)c->seeds[k]) ||
            !(c->dirs[k] = ns_strdup(d)))
            return ns_cli_report(NS_ENOMEM);
    }
    int rc = check_finished_runs(c);
    if (rc) return rc;
    char csv[4200];
    if ((rc = ns_path(csv, sizeof csv, "%s/flow.csv", root)) || (rc = run_phase(c, csv, jobs, quiet)))
        return ns_cli_report_once(rc);
    for (int k = 0; k < c->nseeds; k++) {
        ns_jval d;
        if ((rc = load_summary(c->dirs[k], &d))) return ns_cli_report(rc);
        c->s_gf[k] = ns_jnum(&d, "s_gf", NAN);
        c->eta_c[k] = ns_jnum(&d, "eta_c", NAN);
        ns_jval_free(&d);
    }
    free_runs(c);
    return 0;
}

// ---- the closing table --------------------------------------------------------------------------

typedef struct {
    double eta, sharpness, l1, test_err;
    char status[16];
    int finished;
} run_view;

// A run without a readable summary is "missing"; running out of memory is an error.
static int view_of(const sweep_ctx *c, int i, run_view *v) {
    memset(v, 0, sizeof *v);
    v->eta = c->eta[i];
    v->sharpness = v->l1 = v->test_err = NAN;
    ns_jval d;
    int rc = load_summary(c->dirs[i], &d);
    if (rc) {
        snprintf(v->status, sizeof v->status, "missing");
        return rc == NS_ENOMEM ? rc : 0;
    }
    const ns_jval *f = ns_jget(&d, "final");
    v->finished = 1;
    snprintf(v->status, sizeof v->status, "%s", ns_jstr(&d, "status", "?"));
    v->sharpness = ns_jnum(f, "sharpness", NAN);
    v->l1 = ns_jnum(f, "l1", NAN);
    v->test_err = ns_jnum(f, "test_err", NAN);
    ns_jval_free(&d);
    return 0;
}

// The observed transition among one seed's runs (normsharp/eos.h); unfinished and diverged
// runs never qualify.
static double transition_eta(const run_view *v, int n, double s_gf) {
    double *eta = ns_calloc((size_t)n + 1, sizeof *eta), *s = ns_calloc((size_t)n + 1, sizeof *s), tr = NAN;
    if (eta && s) {
        for (int j = 0; j < n; j++) {
            eta[j] = v[j].eta;
            s[j] = v[j].finished && strcmp(v[j].status, "diverged") ? v[j].sharpness : NAN;
        }
        tr = ns_eos_transition(eta, s, n, s_gf);
    }
    free(eta);
    free(s);
    return tr;
}

static int report(const sweep_ctx *c, const char *root, int json) {
    int per = c->n / (c->nseeds ? c->nseeds : 1);
    run_view *v = ns_calloc((size_t)(per ? per : 1), sizeof *v);
    if (!v) return NS_ENOMEM;
    int rc = 0;
    ns_buf b = {0};
    ns_json j;
    if (json) {
        ns_json_begin(&j, &b);
        ns_json_obj(&j, NULL);
        ns_json_str(&j, "dir", root);
        ns_json_arr(&j, "seeds");
    }
    for (int k = 0; k < c->nseeds; k++) {
        for (int q = 0; q < per && !rc; q++) rc = view_of(c, k * per + q, &v[q]);
        if (rc) break;
        double tr = transition_eta(v, per, c->s_gf[k]);
        if (json) {
            ns_json_obj(&j, NULL);
            ns_json_u64(&j, "seed", c->seeds[k]);
            ns_json_num(&j, "s_gf", c->s_gf[k]);
            ns_json_num(&j, "eta_c", c->eta_c[k]);
            ns_json_num(&j, "transition_eta", tr);
            ns_json_arr(&j, "runs");
            for (int q = 0; q < per; q++) {
                ns_json_obj(&j, NULL);
                ns_json_num(&j, "eta", v[q].eta);
                ns_json_str(&j, "status", v[q].status);
                ns_json_num(&j, "sharpness", v[q].sharpness);
                ns_json_num(&j, "two_over_eta", 2 / v[q].eta);
                ns_json_num(&j, "l1", v[q].l1);
                ns_json_num(&j, "test_err", v[q].test_err);
                ns_json_end(&j);
            }
            ns_json_end(&j);
            ns_json_end(&j);
            continue;
        }
        printf("seed %llu\n", (unsigned long long)c->seeds[k]);
        printf("  %-12s %-10s %12s %12s %12s %9s\n", "eta", "status", "sharpness", "2/eta", "l1", "test_err");
        for (int q = 0; q < per; q++)
            printf("  %-12.6g %-10s %12.5g %12.5g %12.6g %9.4f\n", v[q].eta, v[q].status, v[q].sharpness,
                   2 / v[q].eta, v[q].l1, v[q].test_err);
        if (isnan(c->s_gf[k])) {
            printf("  (run with --flow for s_GF, the predicted eta_c and the observed transition)\n");
        } else {
            printf("  gradient flow: s_GF = %.6g, predicted eta_c = 2/s_GF = %.6g\n", c->s_gf[k], c->eta_c[k]);
            if (isnan(tr))
                printf("  observed transition: none in this grid (no final sharpness >10%% below s_GF and within 10%% of 2/eta)\n");
            else
                printf("  observed transition: eta = %.6g (smallest eta whose final sharpness is >10%% below s_GF and within 10%% of 2/eta)\n", tr);
        }
    }
    if (json) {
        ns_json_end(&j);
        ns_json_end(&j);
        ns_buf_append(&b, "\n", 1);
        if (!rc && b.oom) rc = NS_ENOMEM;
        if (!rc) fputs(b.data, stdout);
    } else if (!rc) {
        printf("results in %s/sweep.csv\n", root);
    }
    ns_buf_free(&b);
    free(v);
    return rc;
}

// ---- the command --------------------------------------------------------------------------------

// What `normsharp sweep` was asked for.
typedef struct {
    train_cli t;
    ns_train_opts gd;
    ns_flow_opts fl;
    const char *lr, *seeds_s, *span_s;
    int jobs, flow, around, quiet;
    double span[2];
    double *grid;
    int ngrid;
    uint64_t *seeds;
    int nseeds;
} sweep_args;

// Options, then their checks. Returns 0, -1 after --help, or an exit status (2).
static int parse_args(int argc, char **argv, sweep_args *a) {
    memset(a, 0, sizeof *a);
    train_cli_init(&a->t);
    ns_train_opts_default(&a->gd);
    ns_flow_opts_default(&a->fl);
    a->seeds_s = "0";
    a->span_s = "8";
    a->jobs = 1;
    ns_cli c;
    ns_cli_init(&c, "sweep", "normsharp sweep (--lr GRID | --flow --lr-around K) --out OUT [options]",
                "Gradient descent from the same theta_0 (per seed) at every learning rate of a grid. Run directories "
                "OUT/<dataset>/<arch>/<loss>/seed_<s>/lr_<eta>/ and OUT/<dataset>/<arch>/<loss>/sweep.csv. "
                "--flow first integrates the gradient flow of each seed (its s_GF predicts eta_c = 2/s_GF, in "
                "seed_<s>/flow/ and flow.csv); --lr-around K then uses K log-spaced rates from eta_c/F to "
                "eta_c*F (--lr-span F, default 8; or LO:HI for eta_c/LO to eta_c*HI). Runs go to --jobs worker processes, one OpenBLAS thread each, "
                "so results do not depend on --jobs. Rerunning the same command resumes: finished runs are kept.");
    ns_cli_add(&c, "lr", OPT_STR, &a->lr, 0, 0, "GRID", "learning rates: a list 0.01,0.02 or a log range A:B:K");
    ns_cli_add(&c, "seeds", OPT_STR, &a->seeds_s, 0, 0, "LIST", "seeds of theta_0, e.g. 0,1,2 (default 0)");
    ns_cli_add(&c, "jobs", OPT_INT, &a->jobs, 1, 4096, "N", "parallel worker processes (default 1)");
    ns_cli_add(&c, "flow", OPT_FLAG, &a->flow, 0, 0, NULL, "run the gradient flow of each seed first (needs --loss-goal)");
    ns_cli_add(&c, "lr-around", OPT_INT, &a->around, 1, 10000, "K", "with --flow: K log-spaced rates centred on eta_c");
    ns_cli_add(&c, "lr-span", OPT_STR, &a->span_s, 0, 0, "F|LO:HI",
               "--lr-around covers eta_c/F .. eta_c*F (default 8), or eta_c/LO .. eta_c*HI");
    ns_cli_add(&c, "rk-c", OPT_DOUBLE, &a->fl.rk_c, 1e-9, 2.7, "C", "flow step h = min(C / S, h_max) (default 0.5)");
    ns_cli_add(&c, "h-max", OPT_DOUBLE, &a->fl.h_max, 1e-12, INFINITY, "H", "largest flow step (default 1)");
    ns_cli_add(&c, "flow-eig-every", OPT_LONG, &a->fl.eig_every, 1, 1e15, "K", "flow: re-estimate S every K steps (default 5)");
    ns_cli_add(&c, "flow-max-time", OPT_DOUBLE, &a->fl.max_time, 1e-300, INFINITY, "T", "flow: stop at time T");
    ns_cli_add(&c, "flow-max-steps", OPT_LONG, &a->fl.max_steps, 0, 1e15, "N", "flow: stop after N steps (default 1000000)");
    train_cli_add_model(&c, &a->t, 0);
    ns_cli_add_data(&c, &a->t.data);
    train_cli_add_gd(&c, &a->gd);
    train_cli_add_measure(&c, &a->t);
    train_cli_add_views(&c, &a->gd.weight_decay, &a->t.views);
    train_cli_add_output(&c, &a->t, 0);
    ns_cli_add(&c, "quiet", OPT_FLAG, &a->quiet, 0, 0, NULL, "no progress output (implied by --json)");
    int rc = ns_cli_parse(&c, argc, argv);
    if (rc) return rc;
    a->quiet |= a->t.json;
    if (!a->lr == !ns_cli_seen(&c, "lr-around"))
        return ns_cli_usage_error("give the learning rates either as --lr GRID or as --flow --lr-around K.");
    if (ns_cli_seen(&c, "lr-around") && !a->flow) return ns_cli_usage_error("--lr-around needs --flow (it centres the grid on eta_c).");
    if (a->flow && !ns_cli_seen(&c, "loss-goal"))
        return ns_cli_usage_error("--flow measures s_GF until the training loss reaches --loss-goal EPS; give --loss-goal.");
    if (a->gd.nesterov && !(a->gd.momentum > 0)) return ns_cli_usage_error("--nesterov needs --momentum > 0.");
    if ((rc = train_cli_check_views(&c))) return rc;
    a->fl.weight_decay = a->gd.weight_decay;
    if ((rc = parse_span(a->span_s, a->span))) return rc;
    if (a->lr && ns_parse_grid(a->lr, 1, "--lr", &a->grid, &a->ngrid)) return ns_cli_usage_error("%s.", ns_errmsg());
    if (parse_seeds(a->seeds_s, &a->seeds, &a->nseeds)) return ns_cli_usage_error("%s.", ns_errmsg());
    if ((rc = train_cli_check(&a->t, &c))) return rc;
    if (a->t.weights) a->seeds[0] = a->t.seed;  // the one theta_0, under its own seed (--seeds is refused)
    a->fl.loss_goal = a->gd.loss_goal;
    return 0;
}

// theta_0 of every seed (and a copy of it), and the results' root OUT/<dataset>/<arch>/<loss>.
// Returns an exit status.
static int make_seeds(sweep_ctx *x, const sweep_args *a, char root[4200]) {
    int rc, n = a->nseeds;
    if (a->gd.batch > x->ds->n)
        return ns_cli_usage_error("--batch %ld is larger than the training set (%ld examples).", a->gd.batch, x->ds->n);
    x->models = ns_calloc((size_t)n, sizeof *x->models);
    x->theta0 = ns_calloc((size_t)n, sizeof *x->theta0);
    x->s_gf = ns_calloc((size_t)n, sizeof(double));
    x->eta_c = ns_calloc((size_t)n, sizeof(double));
    if (!x->models || !x->theta0 || !x->s_gf || !x->eta_c) return ns_cli_report(NS_ENOMEM);
    for (int k = 0; k < n; k++) {
        x->s_gf[k] = x->eta_c[k] = NAN;
        if ((rc = train_cli_model(&a->t, x->ds, a->seeds[k], &x->models[k]))) return ns_cli_report(rc);
        size_t np = ns_model_nparams(x->models[k]);
        if (!(x->theta0[k] = ns_malloc(np * sizeof(real)))) return ns_cli_report(NS_ENOMEM);
        memcpy(x->theta0[k], ns_model_theta(x->models[k]), np * sizeof(real));
    }
    rc = ns_path(root, 4200, "%s/%s/%s/%s", a->t.out, x->ds->name, ns_model_cfg(x->models[0])->arch,
                 ns_loss_name(a->t.data.loss));
    if (!rc) rc = csv_header(x);
    return rc ? ns_cli_report(rc) : 0;
}

// The flows (with --flow), then GD over the grid, then the closing table. Returns an exit status.
static int run_protocol(sweep_ctx *x, const sweep_args *a, const char *root) {
    int rc, status;
    if (a->flow && (status = flow_phase(x, root, a->jobs, a->quiet))) return status;
    if ((rc = layout_gd_runs(x, root, a->grid, a->ngrid, a->around, a->span))) return ns_cli_report(rc);
    if ((status = check_finished_runs(x))) return status;
    char csv[4200];
    if ((rc = ns_path(csv, sizeof csv, "%s/sweep.csv", root))) return ns_cli_report(rc);
    rc = run_phase(x, csv, a->jobs, a->quiet);
    status = ns_cli_report_once(rc);  // first: the table's reading of unfinished runs replaces the message
    if (ns_sweep_rank() == 0 && (rc = report(x, root, a->t.json)) && !status) status = ns_cli_report(rc);
    return status;
}

int cmd_sweep(int argc, char **argv) {
    sweep_args a;
    int status = parse_args(argc, argv, &a);
    ns_dataset ds = {0};
    sweep_ctx x = {.t = &a.t, .gd = &a.gd, .flow_opts = &a.fl, .ds = &ds, .nseeds = a.nseeds, .seeds = a.seeds};
    char root[4200];
    int rc;
    if (status) status = status < 0 ? 0 : status;
    else if ((rc = ns_data_load(&a.t.data, &ds))) status = ns_cli_report(rc);
    else if (!(status = make_seeds(&x, &a, root))) status = run_protocol(&x, &a, root);
    free_runs(&x);
    ns_buf_free(&x.header);
    for (int k = 0; k < a.nseeds && x.models; k++) ns_model_free(x.models[k]);
    for (int k = 0; k < a.nseeds && x.theta0; k++) free(x.theta0[k]);
    free(x.models);
    free(x.theta0);
    free(x.s_gf);
    free(x.eta_c);
    free(a.seeds);
    free(a.grid);
    ns_data_free(&ds);
    return status;
}
