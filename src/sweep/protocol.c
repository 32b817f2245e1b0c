// sweep/protocol.c — the learning-rate protocol of `normsharp sweep` (normsharp/protocol.h):
// for every seed theta_0 once; optionally the gradient flow from it (s_GF, eta_c); then GD
// from that same theta_0 at every learning rate of a grid; one run directory each, flow.csv
// and sweep.csv through the shared runner (parallel workers, resume, progress), and the
// closing table with the observed transition.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/eos.h"
#include "normsharp/protocol.h"
#include "normsharp/sweep.h"

#define SWEEP_CSV_HEADER                                                                            \
    "eta,seed,status,steps,train_loss,train_err,test_loss,test_err,l1,l2,lambda_max,sharpness,"    \
    "two_over_eta,trace,avg_train_loss,avg_test_err,avg_l1,avg_l2,avg_sharpness,dec_train_loss,"   \
    "dec_test_err,dec_l1,dec_l2,dec_sharpness,seconds"
#define FLOW_CSV_HEADER "seed,status,steps,time,s_gf,eta_c,train_loss,sharpness,seconds"

typedef struct {
    const ns_protocol_opts *o;
    const ns_dataset *ds;
    int nseeds;
    const uint64_t *seeds;
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

// The seeds of a run from theta_0 of `seed`: its own, and its Lanczos and Hutchinson starts.
static void seed_measures(uint64_t seed, uint64_t *run_seed, ns_measure_opts *final, ns_measure_opts *eig) {
    *run_seed = seed;
    final->eig.seed = seed;
    final->trace_seed = seed;
    eig->eig.seed = seed;
}

static void spec_of(const sweep_ctx *c, int i, run_spec *r) {
    r->k = c->flow ? i : c->seed_of[i];
    uint64_t seed = c->seeds[r->k];
    if (c->flow) {
        r->fl = c->o->flow;
        seed_measures(seed, &r->fl.seed, &r->fl.final, &r->fl.eig);
    } else {
        r->gd = c->o->gd;
        r->gd.lr = c->eta[i];
        seed_measures(seed, &r->gd.seed, &r->gd.final, &r->gd.eig);
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
        rc = ns_flow_run(m, c->ds, c->o->data, &r.fl, dir, p, &res);
        ns_flow_result_free(&res);
    } else {
        ns_train_result res;
        rc = ns_train_run(m, c->ds, c->o->data, &r.gd, dir, p, &res);
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
    const ns_view_opts *v = &c->o->gd.final.views;
    ns_buf_printf(&c->header, "%s", SWEEP_CSV_HEADER);
    if (c->o->gd.weight_decay > 0) ns_buf_printf(&c->header, ",weight_decay,objective");
    if (v->adaptive) ns_buf_printf(&c->header, ",adaptive_sharpness");
    for (int t = 0; v->per_layer && t < ns_model_ntensors(c->models[0]); t++)
        ns_buf_printf(&c->header, ",layer_sharpness:%s", ns_model_tensor(c->models[0], t)->name);
    return c->header.oom ? NS_ENOMEM : 0;
}

static void row_views(const sweep_ctx *c, const ns_jval *f, ns_buf *line) {
    const ns_view_opts *v = &c->o->gd.final.views;
    if (c->o->gd.weight_decay > 0) {
        ns_csv_value(line, c->o->gd.weight_decay);
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
    if (c->flow) ns_flow_config_json(&j, c->models[r.k], c->ds, c->o->data, &r.fl);
    else ns_train_config_json(&j, c->models[r.k], c->ds, c->o->data, &r.gd);
    ns_json_end(&j);
    int rc = b.oom ? NS_ENOMEM : ns_json_parse(b.data, b.len, "the expected config", out);
    ns_buf_free(&b);
    return rc;
}

// NS_EINVAL naming the first finished run made with other options.
static int check_finished_runs(sweep_ctx *c) {
    for (int i = 0; i < c->n; i++) {
        char p[4200], why[512];
        if (ns_path(p, sizeof p, "%s/summary.json", c->dirs[i]) || !ns_exists(p)) continue;
        ns_jval want;
        int rc = expected_config(c, i, &want);
        if (rc) return rc;
        int ok = ns_config_matches(p, ns_jget(&want, "config"), why, sizeof why);
        ns_jval_free(&want);
        if (!ok)
            return ns_fail(NS_EINVAL, "the finished run in '%s' was made with other options (%s); "
                                      "choose another --out or remove that directory.", c->dirs[i], why);
    }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Lays out the GD runs: seed-major, eta ascending; dirs OUT/.../seed_<s>/lr_<%g>.
static int layout_gd_runs(sweep_ctx *c, const char *root, const double *grid, int ngrid, int around, double span_lo,
                          double span_hi) {
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
            ns_lr_grid_around(e, c->eta_c[k], span_lo, span_hi, around);
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
    if (!c->dirs) return NS_ENOMEM;
    for (int k = 0; k < c->nseeds; k++) {
        char d[4200];
        if (ns_path(d, sizeof d, "%s/seed_%llu/flow", root, (unsigned long long)c->seeds[k]) ||
            !(c->dirs[k] = ns_strdup(d)))
            return NS_ENOMEM;
    }
    int rc = check_finished_runs(c);
    if (rc) return rc;
    char csv[4200];
    if ((rc = ns_path(csv, sizeof csv, "%s/flow.csv", root)) || (rc = run_phase(c, csv, jobs, quiet)))
        return rc;
    for (int k = 0; k < c->nseeds; k++) {
        ns_jval d;
        if ((rc = load_summary(c->dirs[k], &d))) return rc;
        c->s_gf[k] = ns_jnum(&d, "s_gf", NAN);
        c->eta_c[k] = ns_jnum(&d, "eta_c", NAN);
        ns_jval_free(&d);
    }
    free_runs(c);
    return 0;
}

// A run without a readable summary is "missing"; running out of memory is an error.
static int view_of(const sweep_ctx *c, int i, ns_protocol_view *v) {
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
static double transition_eta(const ns_protocol_view *v, int n, double s_gf) {
    double best = NAN;
    for (int j = 0; j < n; j++) {
        double s = v[j].finished && strcmp(v[j].status, "diverged") ? v[j].sharpness : NAN;
        if (ns_eos_transitioned(v[j].eta, s, s_gf) && !(v[j].eta >= best)) best = v[j].eta;
    }
    return best;
}


// The closing table: every GD run's view and each seed's observed transition.
static int closing_table(const sweep_ctx *c, ns_protocol_result *res) {
    int per = c->n / (c->nseeds ? c->nseeds : 1);
    res->per = per;
    res->views = ns_calloc((size_t)c->n + 1, sizeof *res->views);
    res->transition = ns_calloc((size_t)c->nseeds + 1, sizeof(double));
    if (!res->views || !res->transition) return NS_ENOMEM;
    for (int i = 0; i < c->n; i++)
        if (view_of(c, i, &res->views[i])) return NS_ENOMEM;
    for (int k = 0; k < c->nseeds; k++) res->transition[k] = transition_eta(res->views + (size_t)k * per, per, c->s_gf[k]);
    ns_clear_error();
    return NS_OK;
}

// theta_0 of every seed, copied, and the per-seed flow results (NaN until the flows run).
static int ctx_init(sweep_ctx *c, const ns_protocol_opts *o, ns_protocol_result *res) {
    *c = (sweep_ctx){.o = o, .ds = o->ds, .nseeds = o->nseeds, .seeds = o->seeds, .models = o->models};
    c->theta0 = ns_calloc((size_t)o->nseeds, sizeof *c->theta0);
    c->s_gf = res->s_gf = ns_calloc((size_t)o->nseeds, sizeof(double));
    c->eta_c = res->eta_c = ns_calloc((size_t)o->nseeds, sizeof(double));
    if (!c->theta0 || !c->s_gf || !c->eta_c) return NS_ENOMEM;
    for (int k = 0; k < o->nseeds; k++) {
        c->s_gf[k] = c->eta_c[k] = NAN;
        size_t n = ns_model_nparams(o->models[k]);
        if (!(c->theta0[k] = ns_malloc(n * sizeof(real)))) return NS_ENOMEM;
        memcpy(c->theta0[k], ns_model_theta(o->models[k]), n * sizeof(real));
    }
    return csv_header(c);
}

// The GD phase and, on rank 0, the closing table; a failed run fails the protocol, but the
// table is still filled (with the first error's message kept).
static int gd_phase(sweep_ctx *c, ns_protocol_result *res) {
    const ns_protocol_opts *o = c->o;
    char csv[4200];
    int rc = layout_gd_runs(c, o->root, o->grid, o->ngrid, o->around, o->span_lo, o->span_hi);
    if (!rc) rc = check_finished_runs(c);
    if (!rc) rc = ns_path(csv, sizeof csv, "%s/sweep.csv", o->root);
    if (rc) return rc;
    rc = run_phase(c, csv, o->jobs, o->quiet);
    if (ns_sweep_rank() > 0) return rc;
    char why[1024];  // reading unfinished runs below replaces the message
    snprintf(why, sizeof why, "%s", ns_errmsg());
    int trc = closing_table(c, res);
    if (!rc && trc) return trc;
    res->filled = !trc;
    return rc ? ns_fail(rc, "%s", why) : 0;
}

int ns_protocol_run(const ns_protocol_opts *o, ns_protocol_result *res) {
    memset(res, 0, sizeof *res);
    res->nseeds = o->nseeds;
    sweep_ctx c;
    int rc = ctx_init(&c, o, res);
    if (!rc && o->run_flow) rc = flow_phase(&c, o->root, o->jobs, o->quiet);
    if (!rc) rc = gd_phase(&c, res);
    free_runs(&c);
    ns_buf_free(&c.header);
    for (int k = 0; k < o->nseeds && c.theta0; k++) free(c.theta0[k]);
    free(c.theta0);
    return rc;
}

void ns_protocol_result_free(ns_protocol_result *r) {
    free(r->s_gf);
    free(r->eta_c);
    free(r->transition);
    free(r->views);
    memset(r, 0, sizeof *r);
}

int ns_protocol_result_json(const ns_protocol_result *r, const uint64_t *seeds, const char *root, ns_buf *out) {
    ns_json j;
    ns_json_begin(&j, out);
    ns_json_obj(&j, NULL);
    ns_json_str(&j, "dir", root);
    ns_json_arr(&j, "seeds");
    for (int k = 0; k < r->nseeds; k++) {
        const ns_protocol_view *v = r->views + (size_t)k * r->per;
        ns_json_obj(&j, NULL);
        ns_json_u64(&j, "seed", seeds[k]);
        ns_json_num(&j, "s_gf", r->s_gf[k]);
        ns_json_num(&j, "eta_c", r->eta_c[k]);
        ns_json_num(&j, "transition_eta", r->transition[k]);
        ns_json_arr(&j, "runs");
        for (int q = 0; q < r->per; q++) {
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
    }
    ns_json_end(&j);
    ns_json_end(&j);
    ns_buf_append(out, "\n", 1);
    return out->oom ? ns_fail(NS_ENOMEM, "out of memory while printing the sweep's table") : 0;
}
