// normsharp dln — the diagonal linear network lab (docs/CONVENTIONS.md, DLN): `train` one GD run (or the
// gradient flow), `theory` the reference interpolators, `sweep` GD over a learning-rate grid
// through the shared sweep runner. Files: docs/OUTPUTS.md ("The DLN lab").
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cli.h"
#include "normsharp/dln.h"
#include "normsharp/sweep.h"

// ---- options shared by the subcommands -------------------------------------------------

typedef struct {
    const char *model, *task;
    int depth;
    double alpha;
    ns_dln_task_opts topts;
    ns_dln_train_opts train;
    const char *lr_grid;  // sweep
    int dense_max;
    const char *out;
    int json, jobs, threads;
} dln_args;

static void args_init(dln_args *a) {
    memset(a, 0, sizeof *a);
    a->depth = 2;
    a->alpha = 0.1;
    ns_dln_task_opts_default(&a->topts);
    ns_dln_train_opts_default(&a->train);
    a->dense_max = NS_DLN_DENSE_MAX;
    a->jobs = 1;
}

static void add_problem(ns_cli *c, dln_args *a) {
    ns_dln_task_opts *t = &a->topts;
    ns_cli_add(c, "model", OPT_STR, &a->model, 0, 0, "M",
               "shared (beta = w*w), pm (beta = u^D - v^D), uv (beta = u*v); default: shared for --task single, else pm");
    ns_cli_add(c, "depth", OPT_INT, &a->depth, 2, 64, "D", "depth D of the pm model (default 2)");
    ns_cli_add(c, "alpha", OPT_DOUBLE, &a->alpha, -INFINITY, INFINITY, "A",
               "initialization scale > 0 (w = alpha; u = v = alpha; u = sqrt(2) alpha, v = 0) (default 0.1)");
    ns_cli_add(c, "task", OPT_STR, &a->task, 0, 0, "T",
               "single, sparse or csv (default: csv with --x-csv, single with --x, else sparse)");
    ns_cli_add(c, "preset", OPT_STR, &t->preset, 0, 0, "P", "sparse sizes: woodworth (n=100 d=1000 s=5) or even (n=20 d=30 s=3, default)");
    ns_cli_add(c, "n", OPT_INT, &t->n, 1, 1e7, "N", "sparse: number of examples");
    ns_cli_add(c, "d", OPT_INT, &t->d, 1, 1e7, "D", "sparse: dimension; single: dimension of a drawn x (default 5)");
    ns_cli_add(c, "s", OPT_INT, &t->s, 0, 1e7, "S", "sparse: support size of beta*");
    ns_cli_add(c, "noise", OPT_DOUBLE, &t->noise, 0, 1e12, "SIGMA", "label noise sigma (default 0); adds sigma^2 to the gen error");
    ns_cli_add(c, "seed", OPT_U64, &t->seed, 0, 0, "S", "seed of the drawn data (default 0)");
    ns_cli_add(c, "x", OPT_STR, &t->x_list, 0, 0, "LIST", "single: the data point x, e.g. 0.5,1,2 (default: drawn, entries in [0.5, 2])");
    ns_cli_add(c, "beta-star", OPT_STR, &t->beta_star_list, 0, 0, "LIST", "single/csv: the teacher beta* (single default: drawn in [0, 1])");
    ns_cli_add(c, "beta-star-csv", OPT_STR, &t->beta_star_csv, 0, 0, "FILE", "csv: the teacher beta* from a file");
    ns_cli_add(c, "x-csv", OPT_STR, &t->x_csv, 0, 0, "FILE", "csv: X, one row per example");
    ns_cli_add(c, "y-csv", OPT_STR, &t->y_csv, 0, 0, "FILE", "csv: y, one value per row");
    ns_cli_add(c, "sigma-diag", OPT_STR, &t->sigma_list, 0, 0, "LIST", "diagonal of the test covariance Sigma (d values or one; default identity)");
}

static void add_training(ns_cli *c, dln_args *a, int sweep) {
    ns_dln_train_opts *o = &a->train;
    if (sweep) ns_cli_add(c, "lr", OPT_STR, &a->lr_grid, 0, 0, "GRID", "learning rates: A:B:K (K log-spaced from A to B) or a list (required)");
    else ns_cli_add(c, "lr", OPT_DOUBLE, &o->eta, 1e-300, INFINITY, "ETA", "GD step (default 0.01)");
    ns_cli_add(c, "loss-goal", OPT_DOUBLE, &o->loss_goal, 0, INFINITY, "EPS", "stop when the training loss is <= EPS (default 1e-8)");
    ns_cli_add(c, "max-steps", OPT_LONG, &o->max_steps, 0, 1e15, "T", "step limit (default 100000)");
    ns_cli_add(c, "diverge-factor", OPT_DOUBLE, &o->diverge_factor, 1.000001, INFINITY, "F",
               "diverged when the loss exceeds F x the initial loss (default 1e6)");
    if (!sweep) {
        ns_cli_add(c, "flow", OPT_FLAG, &o->flow, 0, 0, NULL, "gradient flow (RK4, step min(c/S, h_max)) instead of GD");
        ns_cli_add(c, "flow-c", OPT_DOUBLE, &o->flow_c, 1e-9, 2.5, "C", "flow step constant c (default 0.2)");
        ns_cli_add(c, "flow-hmax", OPT_DOUBLE, &o->flow_hmax, 1e-12, INFINITY, "H", "largest flow step (default 1)");
    }
    ns_cli_add(c, "log-every", OPT_LONG, &o->log_every, 0, 1e15, "K", "trajectory.csv row every K steps (default 0 = no trajectory)");
    ns_cli_add(c, "eig-every", OPT_LONG, &o->eig_every, 0, 1e15, "K", "sharpness on trajectory rows at multiples of K (default 0 = never)");
    ns_cli_add(c, "dense-max", OPT_INT, &a->dense_max, 0, 1e6, "P",
               "dense Hessian eigenvalues allowed up to P parameters when the secular route is not exact (default 2000)");
}

// `writes`: what --out DIR gets when it is optional ("summary.json", "theory.json").
static void add_output(ns_cli *c, dln_args *a, int out_required, int jobs, const char *writes) {
    static char help[96];  // one command line per process: one help text
    if (out_required) snprintf(help, sizeof help, "output directory (required)");
    else snprintf(help, sizeof help, "also write DIR/%s", writes);
    ns_cli_add(c, "out", OPT_STR, &a->out, 0, 0, "DIR", help);
    ns_cli_add(c, "json", OPT_FLAG, &a->json, 0, 0, NULL, "print the result as JSON");
    if (jobs) ns_cli_add(c, "jobs", OPT_INT, &a->jobs, 1, 1024, "N", "parallel worker processes (default 1)");
    ns_cli_add(c, "threads", OPT_INT, &a->threads, 1, 1024, "N", "OpenBLAS threads (default: all cores; sweep runs use 1)");
}

// The problem from the options: model and task. Returns an exit status (0 = go on).
static int make_problem(const ns_cli *c, dln_args *a, ns_dln_model *m, ns_dln_task *task) {
    ns_dln_task_opts *t = &a->topts;
    if (!a->task) t->kind = t->x_csv || t->y_csv ? NS_TASK_CSV : t->x_list ? NS_TASK_SINGLE : NS_TASK_SPARSE;
    else if (ns_dln_task_parse(a->task, &t->kind)) return ns_cli_usage_error("%s.", ns_errmsg());
    if (t->kind != NS_TASK_SPARSE && (ns_cli_seen(c, "n") || ns_cli_seen(c, "s") || t->preset))
        return ns_cli_usage_error("--n, --s and --preset apply to --task sparse only.");
    if (t->kind != NS_TASK_SINGLE && t->x_list) return ns_cli_usage_error("--x applies to --task single only.");
    if (t->kind != NS_TASK_CSV && (t->x_csv || t->y_csv || t->beta_star_csv))
        return ns_cli_usage_error("--x-csv, --y-csv and --beta-star-csv apply to --task csv only.");
    if (t->kind == NS_TASK_CSV && ns_cli_seen(c, "d")) return ns_cli_usage_error("--d does not apply to --task csv (d comes from the file).");
    m->kind = t->kind == NS_TASK_SINGLE ? NS_DLN_SHARED : NS_DLN_PM;
    if (a->model && ns_dln_model_parse(a->model, &m->kind)) return ns_cli_usage_error("%s.", ns_errmsg());
    m->depth = a->depth;
    m->alpha = a->alpha;
    if (ns_dln_model_check(m)) return ns_cli_usage_error("%s.", ns_errmsg());
    int rc = ns_dln_task_make(t, task);
    return rc ? ns_cli_report(rc) : 0;
}

static int prepare_out(const char *out) {
    if (ns_mkdirs(out)) return ns_cli_usage_error("cannot use --out: %s.", ns_errmsg());
    if (access(out, W_OK | X_OK) != 0) return ns_cli_usage_error("cannot write into --out '%s': %s.", out, strerror(errno));
    return 0;
}

// What every subcommand does once its options are parsed: make --out (if given), set the
// BLAS threads, build the problem. Returns an exit status (0 = go on; then task is owned).
static int open_problem(const ns_cli *c, dln_args *a, ns_dln_model *m, ns_dln_task *task) {
    int rc;
    if (a->out && (rc = prepare_out(a->out))) return rc;
    ns_cli_set_threads(a->threads);
    return make_problem(c, a, m, task);
}

// The hypentropy (gradient-flow) prediction of the task, or *hyp = NULL where there is
// none (depth > 2, no interpolator): the runs then report no distance to it.
static int hypentropy(const ns_dln_model *m, const ns_dln_task *task, double **hyp) {
    ns_dln_data t = ns_dln_task_data(task);
    if (!(*hyp = ns_malloc(sizeof(double) * (size_t)t.d))) return NS_ENOMEM;
    int rc = ns_dln_flow_prediction(m, &t, NULL, *hyp);
    if (rc) {
        free(*hyp);
        *hyp = NULL;
        if (rc == NS_ENOMEM) return rc;  // out of memory is an error, not "no prediction"
        ns_clear_error();
    }
    return NS_OK;
}

// ---- JSON pieces ----------------------------------------------------------------------------


static void json_vec(ns_json *j, const char *key, const double *x, int d) {
    ns_json_arr(j, key);
    for (int i = 0; i < d; i++) ns_json_num(j, NULL, x[i]);
    ns_json_end(j);
}

// The inverse of json_vec: 1 and out[0..d) (null -> NaN) if v is an array of d values, else 0.
static int json_vec_read(const ns_jval *v, int d, double *out) {
    if (!v || v->type != NS_JARR || v->n != d) return 0;
    for (int i = 0; i < d; i++) out[i] = v->items[i].type == NS_JNUM ? v->items[i].num : NAN;
    return 1;
}

static void json_task(ns_json *j, const ns_dln_model *m, const ns_dln_task *t) {
    ns_json_obj(j, "task");
    ns_json_str(j, "kind", ns_dln_task_name(t->kind));
    ns_json_int(j, "n", t->n);
    ns_json_int(j, "d", t->d);
    if (t->kind == NS_TASK_SPARSE) ns_json_int(j, "s", t->s);
    else ns_json_null(j, "s");
    ns_json_num(j, "noise", t->noise);
    ns_json_u64(j, "seed", t->seed);
    ns_json_str(j, "model", ns_dln_model_name(m->kind));
    ns_json_int(j, "depth", m->depth);
    ns_json_num(j, "alpha", m->alpha);
    ns_json_end(j);
}

// FNV-1a over everything the references depend on: a cached theory.json is reused only
// if this matches.
static void fingerprint(const ns_dln_model *m, const ns_dln_task *t, char out[17]) {
    uint64_t h = 1469598103934665603ULL;
    double head[4] = {(double)m->kind, (double)m->depth, m->alpha, t->noise};
    const double *parts[5] = {head, t->X, t->y, t->beta_star, t->sigma_diag};
    size_t lens[5] = {4, (size_t)t->n * t->d, (size_t)t->n, t->beta_star ? (size_t)t->d : 0, (size_t)t->d};
    for (int p = 0; p < 5; p++) {
        const unsigned char *b = (const unsigned char *)parts[p];
        for (size_t k = 0; k < lens[p] * sizeof(double); k++) h = (h ^ b[k]) * 1099511628211ULL;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

// theory.json's text into b.
static void json_theory(ns_buf *b, const ns_dln_model *m, const ns_dln_task *t, const ns_dln_theory *th) {
    char fp[17];
    fingerprint(m, t, fp);
    ns_json js, *j = &js;
    ns_json_doc(j, b, "dln-theory");
    ns_json_str(j, "fingerprint", fp);
    json_task(j, m, t);
    for (int k = 0; k < NS_REF_COUNT; k++) {
        const ns_dln_ref *r = &th->ref[k];
        if (!r->ok) {
            ns_json_null(j, r->name);
            continue;
        }
        ns_json_obj(j, r->name);
        json_vec(j, "beta", r->beta, t->d);
        ns_json_num(j, "l1", r->l1);
        ns_json_num(j, "sharpness", r->sharpness);
        ns_json_num(j, "gen_err", r->gen_err);
        ns_json_num(j, "residual", r->residual);
        ns_json_end(j);
    }
    ns_json_obj(j, "notes");
    for (int k = 0; k < NS_REF_COUNT; k++)
        if (th->ref[k].note[0]) ns_json_str(j, th->ref[k].name, th->ref[k].note);
    ns_json_end(j);
    if (t->beta_star) json_vec(j, "beta_star", t->beta_star, t->d);
    else ns_json_null(j, "beta_star");
    json_vec(j, "sigma_diag", t->sigma_diag, t->d);
    ns_json_num(j, "seconds", th->seconds);
    ns_json_end(j);
}

// theory.json into th if it was made for this very problem: 1 loaded, 0 absent or
// unreadable, -1 made for another problem (another task, model or alpha), -2 out of memory.
static int theory_load(const char *path, const ns_dln_model *m, const ns_dln_task *t, ns_dln_theory *th) {
    ns_jval v;
    int rc = ns_exists(path) ? ns_json_parse_file(path, &v) : NS_EIO;
    if (rc == NS_ENOMEM) return -2;  // an error, not "no theory yet"
    if (rc) {
        ns_clear_error();
        return 0;
    }
    char fp[17];
    fingerprint(m, t, fp);
    if (strcmp(ns_jstr(&v, "fingerprint", ""), fp)) {
        ns_jval_free(&v);
        return -1;
    }
    if (ns_dln_theory_init(th, t->d)) {
        ns_jval_free(&v);
        return -2;
    }
    int ok = 1;
    for (int k = 0; k < NS_REF_COUNT && ok; k++) {
        ns_dln_ref *r = &th->ref[k];
        const ns_jval *o = ns_jget(&v, r->name);
        if (!o || o->type == NS_JNULL) {
            const ns_jval *notes = ns_jget(&v, "notes");
            snprintf(r->note, sizeof r->note, "%s", notes ? ns_jstr(notes, r->name, "not computed") : "not computed");
            continue;
        }
        if (!(ok = json_vec_read(ns_jget(o, "beta"), t->d, r->beta))) break;
        r->l1 = ns_jnum(o, "l1", NAN);
        r->sharpness = ns_jnum(o, "sharpness", NAN);
        r->gen_err = ns_jnum(o, "gen_err", NAN);
        r->residual = ns_jnum(o, "residual", NAN);
        r->ok = 1;
    }
    th->seconds = ns_jnum(&v, "seconds", NAN);
    ns_jval_free(&v);
    if (!ok) ns_dln_theory_free(th);
    return ok;
}

static int write_json_file(const char *path, ns_buf *b) {
    if (b->oom) return ns_fail(NS_ENOMEM, "out of memory while writing '%s'", path);
    ns_buf_append(b, "\n", 1);
    return ns_write_file_atomic(path, b->data, b->len);
}

// ---- one run: train, measure, summarize ------------------------------------------------------

typedef struct {
    ns_dln_sharp sharp;
    double l1, l2, gen_err, dist_hyp;
    int have_even;
    double even_l1, even_gen, even_dist, even_sharp;
    double log_ainf_min, log_ainf_max;
} measures;

// Returns an error code: a failed measurement (no memory, LAPACK) is an error, never a
// silently missing value. The flow prediction alone may be unavailable (depth > 2, or its
// mirror-map solve fails): then it is left out, unless memory ran out.
static int measure(const ns_dln_model *m, const ns_dln_task *task, const double *hyp, const ns_dln_train_result *r,
                   int dense_max, measures *q) {
    ns_dln_data t = ns_dln_task_data(task);
    int d = t.d, p = ns_dln_nparams(m, d);
    memset(q, 0, sizeof *q);
    q->l1 = ns_dln_l1(d, r->beta);
    q->l2 = ns_dln_l2(p, r->theta);
    int finite = r->status != NS_DLN_DIVERGED && isfinite(q->l1) && isfinite(q->l2);
    q->sharp.lambda_max = q->sharp.lambda_min = q->sharp.sharpness = q->sharp.trace = NAN;
    q->sharp.method = "none";
    q->gen_err = q->dist_hyp = NAN;
    q->log_ainf_min = q->log_ainf_max = NAN;
    if (!finite) return 0;
    ns_dln_point pt;
    int rc = ns_dln_point_alloc(&pt, t.n, d);
    if (rc) return rc;
    ns_dln_eval(m, &t, r->theta, &pt);
    rc = ns_dln_sharpness_auto(m, &t, r->theta, &pt, dense_max, &q->sharp);
    ns_dln_point_free(&pt);
    if (rc) return rc;
    q->gen_err = ns_dln_gen_err(d, r->beta, task->beta_star, task->sigma_diag, task->noise);
    if (hyp) q->dist_hyp = ns_dln_dist(d, r->beta, hyp);
    if (r->log_alpha_inf_sq) {
        q->log_ainf_min = INFINITY;
        q->log_ainf_max = -INFINITY;
        for (int i = 0; i < d; i++) {
            q->log_ainf_min = fmin(q->log_ainf_min, r->log_alpha_inf_sq[i]);
            q->log_ainf_max = fmax(q->log_ainf_max, r->log_alpha_inf_sq[i]);
        }
        double *even = ns_malloc(sizeof(double) * (size_t)d);
        if (!even) return NS_ENOMEM;
        if (!(rc = ns_dln_flow_prediction(m, &t, r->log_alpha_inf_sq, even))) {
            q->have_even = 1;
            q->even_l1 = ns_dln_l1(d, even);
            q->even_gen = ns_dln_gen_err(d, even, task->beta_star, task->sigma_diag, task->noise);
            q->even_dist = ns_dln_dist(d, r->beta, even);
            if ((rc = ns_dln_sharpness_on_flow(m, &t, even, r->log_alpha_inf_sq, &q->even_sharp))) q->even_sharp = NAN;
        }
        free(even);
        if (rc == NS_ENOMEM) return rc;
        ns_clear_error();
    }
    return 0;
}

// summary.json's text into b.
static void json_run(ns_buf *b, const ns_dln_train_opts *o, const ns_dln_model *m, const ns_dln_task *t,
                     const ns_dln_train_result *r, const measures *q) {
    ns_json js, *j = &js;
    ns_json_doc(j, b, o->flow ? "dln-flow" : "dln-train");
    ns_json_obj(j, "config");
    json_task(j, m, t);
    if (o->flow) ns_json_null(j, "lr");
    else ns_json_num(j, "lr", o->eta);
    ns_json_bool(j, "flow", o->flow);
    ns_json_num(j, "loss_goal", o->loss_goal);
    ns_json_int(j, "max_steps", o->max_steps);
    ns_json_num(j, "diverge_factor", o->diverge_factor);
    if (o->flow) {
        ns_json_num(j, "flow_c", o->flow_c);
        ns_json_num(j, "flow_hmax", o->flow_hmax);
    }
    ns_json_end(j);
    ns_json_str(j, "status", ns_dln_status_name(r->status));
    ns_json_int(j, "steps", r->steps);
    if (r->diverged_at >= 0) ns_json_int(j, "diverged_at", r->diverged_at);
    else ns_json_null(j, "diverged_at");
    ns_json_obj(j, "final");
    ns_json_num(j, "train_loss", r->loss);
    ns_json_num(j, "l1", q->l1);
    ns_json_num(j, "l2", q->l2);
    // the two norms of the implicit bias, named for what they measure: ||beta||_1, and the
    // squared l2 norm of all weights (u, v or w); for beta = w*w they are equal (Woodworth et al.)
    ns_json_num(j, "beta_l1", q->l1);
    ns_json_num(j, "w_l2_sq", q->l2 * q->l2);
    ns_json_num(j, "lambda_max", q->sharp.lambda_max);
    // the secular route only bounds lambda_min from below
    if (!strcmp(q->sharp.method, "dense")) ns_json_num(j, "lambda_min", q->sharp.lambda_min);
    else ns_json_null(j, "lambda_min");
    ns_json_num(j, "sharpness", q->sharp.sharpness);
    ns_json_bool(j, "sharpness_exact", q->sharp.exact);
    ns_json_str(j, "sharpness_method", q->sharp.method);
    ns_json_num(j, "trace", q->sharp.trace);
    if (o->flow) ns_json_null(j, "two_over_eta");
    else ns_json_num(j, "two_over_eta", 2 / o->eta);
    ns_json_num(j, "gen_err", q->gen_err);
    ns_json_num(j, "dist_hypentropy", q->dist_hyp);
    ns_json_num(j, "time", r->time);
    if (o->flow) {
        ns_json_num(j, "s_gf", r->s_max);
        ns_json_num(j, "eta_c", r->s_max > 0 ? 2 / r->s_max : NAN);
    }
    ns_json_end(j);
    if (r->log_alpha_inf_sq) {
        ns_json_obj(j, "alpha_inf");
        ns_json_str(j, "definition", m->kind == NS_DLN_UV ? "alpha^2 prod_k |1 - eta^2 g_k,i^2| = |u_i^2 - v_i^2|/2"
                                                          : "alpha^2 prod_k |1 - 4 eta^2 g_k,i^2| = |u_i v_i|");
        ns_json_num(j, "min", exp(0.5 * q->log_ainf_min));
        ns_json_num(j, "max", exp(0.5 * q->log_ainf_max));
        json_vec(j, "log_alpha_inf_sq", r->log_alpha_inf_sq, t->d);
        ns_json_end(j);
    } else {
        ns_json_null(j, "alpha_inf");
    }
    if (q->have_even) {
        ns_json_obj(j, "even_prediction");
        ns_json_num(j, "l1", q->even_l1);
        ns_json_num(j, "sharpness", q->even_sharp);
        ns_json_num(j, "gen_err", q->even_gen);
        ns_json_num(j, "dist", q->even_dist);
        ns_json_end(j);
    } else {
        ns_json_null(j, "even_prediction");
    }
    json_vec(j, "beta", r->beta, t->d);
    ns_json_obj(j, "timing");
    ns_json_num(j, "seconds", r->seconds);
    ns_json_num(j, "seconds_per_step", r->steps > 0 ? r->seconds / r->steps : NAN);
    ns_json_end(j);
    ns_json_end(j);
}

// Train, measure, and write dir/trajectory.csv (if logged) then dir/summary.json (last).
static int run_one(const dln_args *a, const ns_dln_model *m, const ns_dln_task *task, const double *hyp,
                   const ns_dln_train_opts *o, const char *dir, ns_buf *json_out) {
    ns_dln_data t = ns_dln_task_data(task);
    ns_dln_train_result r;
    int rc = ns_dln_train(m, &t, o, &r);
    if (rc) return rc;
    measures q;
    if ((rc = measure(m, task, hyp, &r, a->dense_max, &q))) {
        ns_dln_train_result_free(&r);
        return rc;
    }
    ns_buf b = {0};
    json_run(&b, o, m, task, &r, &q);
    char path[4200];
    if (dir && r.traj.len && !(rc = ns_path(path, sizeof path, "%s/trajectory.csv", dir)))
        rc = ns_write_file_atomic(path, r.traj.data, r.traj.len);
    if (!rc && dir && !(rc = ns_path(path, sizeof path, "%s/summary.json", dir))) rc = write_json_file(path, &b);
    if (!rc && json_out) ns_buf_append(json_out, b.data, b.len);
    ns_buf_free(&b);
    ns_dln_train_result_free(&r);
    return rc;
}

// ---- printing --------------------------------------------------------------------------------

static const char *fmt_g(char *buf, double x) {
    if (isnan(x)) snprintf(buf, 32, "-");
    else snprintf(buf, 32, "%.6g", x);
    return buf;
}

static void print_problem(const ns_dln_model *m, const ns_dln_task *t) {
    printf("model %s", ns_dln_model_name(m->kind));
    if (m->kind == NS_DLN_PM && m->depth != 2) printf(" (depth %d)", m->depth);
    printf(", alpha %g; task %s: n = %d, d = %d", m->alpha, ns_dln_task_name(t->kind), t->n, t->d);
    if (t->kind == NS_TASK_SPARSE) printf(", s = %d", t->s);
    printf(", noise %g, seed %llu\n", t->noise, (unsigned long long)t->seed);
}

static void print_theory(const ns_dln_theory *th) {
    char a[32], b[32], c[32];
    printf("%-14s %12s %12s %12s %10s\n", "reference", "l1", "sharpness", "gen_err", "residual");
    for (int k = 0; k < NS_REF_COUNT; k++) {
        const ns_dln_ref *r = &th->ref[k];
        if (!r->ok) {
            printf("%-14s (not computed: %s)\n", r->name, r->note);
            continue;
        }
        printf("%-14s %12s %12s %12s %10.2g%s%s\n", r->name, fmt_g(a, r->l1), fmt_g(b, r->sharpness), fmt_g(c, r->gen_err),
               r->residual, r->note[0] ? "  " : "", r->note);
    }
}

// ---- train -------------------------------------------------------------------------------------

static int dln_train(const ns_cli *c, dln_args *a) {
    ns_dln_model m;
    ns_dln_task task;
    double *hyp;
    int rc = open_problem(c, a, &m, &task);
    if (rc) return rc;
    if ((rc = hypentropy(&m, &task, &hyp))) {
        ns_dln_task_free(&task);
        return ns_cli_report(rc);
    }
    ns_buf out = {0};
    rc = run_one(a, &m, &task, hyp, &a->train, a->out, &out);
    if (!rc && a->json) {
        fwrite(out.data, 1, out.len, stdout);
        putchar('\n');
    } else if (!rc) {
        ns_jval v;
        if ((rc = ns_json_parse(out.data, out.len, "the run summary", &v)) == 0) {
            const ns_jval *f = ns_jget(&v, "final");
            char b1[32], b2[32], b3[32], b4[32];
            print_problem(&m, &task);
            printf("%s: %s after %ld steps (%.3g s)\n", a->train.flow ? "gradient flow" : "GD", ns_jstr(&v, "status", "?"),
                   (long)ns_jnum(&v, "steps", -1), ns_jnum(ns_jget(&v, "timing"), "seconds", NAN));
            printf("train loss %s  ||beta||_1 %s  ||w||_2^2 %s (all weights)\n", fmt_g(b1, ns_jnum(f, "train_loss", NAN)),
                   fmt_g(b2, ns_jnum(f, "beta_l1", NAN)), fmt_g(b3, ns_jnum(f, "w_l2_sq", NAN)));
            printf("sharpness %s (%s)%s%s  trace %s\n", fmt_g(b1, ns_jnum(f, "sharpness", NAN)),
                   ns_jstr(f, "sharpness_method", "?"), a->train.flow ? "" : "  2/eta ",
                   a->train.flow ? "" : fmt_g(b2, 2 / a->train.eta), fmt_g(b3, ns_jnum(f, "trace", NAN)));
            if (a->train.flow)
                printf("s_GF %s  eta_c = 2/s_GF %s  time %s\n", fmt_g(b1, ns_jnum(f, "s_gf", NAN)),
                       fmt_g(b2, ns_jnum(f, "eta_c", NAN)), fmt_g(b3, ns_jnum(f, "time", NAN)));
            printf("gen err %s  distance to the hypentropy prediction %s\n", fmt_g(b1, ns_jnum(f, "gen_err", NAN)),
                   fmt_g(b2, ns_jnum(f, "dist_hypentropy", NAN)));
            const ns_jval *ai = ns_jget(&v, "alpha_inf"), *ev = ns_jget(&v, "even_prediction");
            if (ai && ai->type == NS_JOBJ)
                printf("alpha_inf in [%s, %s] (alpha %g)\n", fmt_g(b1, ns_jnum(ai, "min", NAN)), fmt_g(b2, ns_jnum(ai, "max", NAN)),
                       m.alpha);
            if (ev && ev->type == NS_JOBJ)
                printf("Even et al. prediction at alpha_inf: l1 %s  gen err %s  distance %s  sharpness %s\n",
                       fmt_g(b1, ns_jnum(ev, "l1", NAN)), fmt_g(b2, ns_jnum(ev, "gen_err", NAN)),
                       fmt_g(b3, ns_jnum(ev, "dist", NAN)), fmt_g(b4, ns_jnum(ev, "sharpness", NAN)));
            ns_jval_free(&v);
        }
    }
    ns_buf_free(&out);
    free(hyp);
    ns_dln_task_free(&task);
    return ns_cli_report(rc);
}

// ---- theory ------------------------------------------------------------------------------------

static int dln_theory(const ns_cli *c, dln_args *a) {
    ns_dln_model m;
    ns_dln_task task;
    int rc = open_problem(c, a, &m, &task);
    if (rc) return rc;
    ns_dln_theory th;
    if ((rc = ns_dln_theory_compute(&m, &task, &th))) {
        ns_dln_task_free(&task);
        return ns_cli_report(rc);
    }
    ns_buf b = {0};
    json_theory(&b, &m, &task, &th);
    char path[4200];
    if (a->out && !(rc = ns_path(path, sizeof path, "%s/theory.json", a->out))) rc = write_json_file(path, &b);
    if (!rc && a->json) {
        fwrite(b.data, 1, b.len, stdout);
        if (!a->out) putchar('\n');
    } else if (!rc) {
        print_problem(&m, &task);
        print_theory(&th);
        printf("(%.3g s)\n", th.seconds);
    }
    ns_buf_free(&b);
    ns_dln_theory_free(&th);
    ns_dln_task_free(&task);
    return ns_cli_report(rc);
}

// ---- sweep -------------------------------------------------------------------------------------

// The reference interpolators of a sweep are computed in a process of their own while the
// runs go on (the min-sharpness SDP takes seconds to tens of seconds for d = 1000); the
// runs do not need them. They are needed first when the CSV is assembled (the distance
// columns), so the first CSV row waits for that process and loads OUT/theory.json.
typedef struct {
    const dln_args *a;
    const ns_dln_model *m;
    const ns_dln_task *task;
    const double *etas;
    const double *hyp;      // the hypentropy prediction (cheap, computed up front), or NULL
    const char *theory_path;
    pid_t theory_pid;       // > 0 while the theory process runs
    int theory_state;       // 0 not yet loaded, 1 loaded, -1 unavailable
    ns_dln_theory th;
} sweep_ctx;

static int theory_write(const sweep_ctx *s) {
    ns_dln_theory th;
    int rc = ns_dln_theory_compute(s->m, s->task, &th);
    if (!rc) {
        ns_buf b = {0};
        json_theory(&b, s->m, s->task, &th);
        rc = write_json_file(s->theory_path, &b);
        ns_buf_free(&b);
        ns_dln_theory_free(&th);
    }
    return rc;
}

// In a child process: compute the references, write theory.json, exit.
static pid_t theory_start(sweep_ctx *s) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid != 0) return pid;  // parent (or -1: fork failed, computed later in-process)
    ns_cli_set_threads(1);
    int rc = theory_write(s);
    if (rc) fprintf(stderr, "normsharp: %s\n", ns_errmsg());
    fflush(stderr);
    _exit(rc ? 1 : 0);
}

static int theory_ready(sweep_ctx *s) {
    if (s->theory_state > 0) return NS_OK;
    if (s->theory_state < 0) return ns_fail(NS_ESOLVER, "the reference interpolators are not available (see above)");
    if (s->theory_pid > 0) {
        int st;
        pid_t done = waitpid(s->theory_pid, &st, WNOHANG);
        if (done == 0 && !s->a->json) fprintf(stderr, "normsharp: waiting for the reference interpolators (theory.json)...\n");
        while (done == 0 || (done < 0 && errno == EINTR)) done = waitpid(s->theory_pid, &st, 0);
        s->theory_pid = 0;
    } else if (!ns_exists(s->theory_path)) {  // no child (fork failed): compute here
        int rc = theory_write(s);
        if (rc) {
            s->theory_state = -1;
            return rc;
        }
    }
    s->theory_state = theory_load(s->theory_path, s->m, s->task, &s->th) > 0 ? 1 : -1;
    if (s->theory_state < 0)
        return ns_fail(NS_ESOLVER, "the reference interpolators were not computed ('%s' is missing or stale)", s->theory_path);
    return NS_OK;
}

static int sweep_run(void *ctx, int i, const char *run_dir, ns_progress *p) {
    sweep_ctx *s = ctx;
    ns_dln_train_opts o = s->a->train;
    o.eta = s->etas[i];
    o.progress = p;
    return run_one(s->a, s->m, s->task, s->hyp, &o, run_dir, NULL);
}

static void csv_num(ns_buf *b, double x) {
    if (isfinite(x)) {
        char s[32];
        ns_fmt_double(s, x);
        ns_buf_printf(b, "%s", s);
    }
}

// eta,status,steps,l1,sharpness,two_over_eta,gen_err,dist_min_l1,dist_min_sharp,train_loss
// (the distances: ||beta - beta_ref||_2 from the run's beta and theory.json)
static int sweep_row(void *ctx, int i, const char *run_dir, ns_buf *line) {
    (void)i;
    sweep_ctx *s = ctx;
    int rc = theory_ready(s);
    char path[4200];
    if (rc || (rc = ns_path(path, sizeof path, "%s/summary.json", run_dir))) return rc;
    ns_jval v;
    if ((rc = ns_json_parse_file(path, &v))) return rc;
    const ns_jval *f = ns_jget(&v, "final"), *b = ns_jget(&v, "beta");
    int d = s->task->d;
    double dist[2] = {NAN, NAN}, *beta = ns_malloc(sizeof(double) * (size_t)d);
    if (!beta) {
        ns_jval_free(&v);
        return NS_ENOMEM;
    }
    if (json_vec_read(b, d, beta) && strcmp(ns_jstr(&v, "status", ""), "diverged")) {
        const ns_dln_ref *refs[2] = {&s->th.ref[NS_REF_MIN_L1], &s->th.ref[NS_REF_MIN_SHARP]};
        for (int k = 0; k < 2; k++)
            if (refs[k]->ok) dist[k] = ns_dln_dist(d, beta, refs[k]->beta);
    }
    free(beta);
    csv_num(line, ns_jnum(ns_jget(&v, "config"), "lr", NAN));
    ns_buf_printf(line, ",%s,", ns_jstr(&v, "status", ""));
    csv_num(line, ns_jnum(&v, "steps", NAN));
    double l2 = ns_jnum(f, "l2", NAN);  // w_l2_sq from l2, so runs written before it resume
    double cells[9] = {ns_jnum(f, "l1", NAN), ns_jnum(f, "sharpness", NAN), ns_jnum(f, "two_over_eta", NAN),
                       ns_jnum(f, "gen_err", NAN), dist[0], dist[1], ns_jnum(f, "train_loss", NAN),
                       ns_jnum(f, "l1", NAN), l2 * l2};
    for (int k = 0; k < 9; k++) {
        ns_buf_append(line, ",", 1);
        csv_num(line, cells[k]);
    }
    ns_jval_free(&v);
    return NS_OK;
}

static void sweep_label(void *ctx, int i, char *out, size_t cap) {
    sweep_ctx *s = ctx;
    snprintf(out, cap, "lr=%g", s->etas[i]);
}

// Which eta generalizes best, whether it is interior, and how it compares to the minimizers.
typedef struct {
    int best, n_ok, interior;
    double best_eta, best_gen, gen_l1, gen_sharp;
} verdict;

// Runs without a readable summary are left out; running out of memory is an error.
static int sweep_verdict(char **dirs, const double *etas, int K, const ns_dln_theory *th, verdict *vd) {
    memset(vd, 0, sizeof *vd);
    vd->best = -1;
    vd->best_gen = INFINITY;
    for (int i = 0; i < K; i++) {
        char path[4200];
        ns_jval v;
        int rc = ns_path(path, sizeof path, "%s/summary.json", dirs[i]);
        if (!rc) rc = ns_json_parse_file(path, &v);
        if (rc == NS_ENOMEM) return rc;
        if (rc) {
            ns_clear_error();
            continue;
        }
        double g = ns_jnum(ns_jget(&v, "final"), "gen_err", NAN);
        if (strcmp(ns_jstr(&v, "status", ""), "diverged") && isfinite(g)) {
            vd->n_ok++;
            if (g < vd->best_gen) {
                vd->best_gen = g;
                vd->best = i;
            }
        }
        ns_jval_free(&v);
    }
    if (vd->best >= 0) {
        vd->best_eta = etas[vd->best];
        vd->interior = vd->best > 0 && vd->best < K - 1;
    }
    vd->gen_l1 = th->ref[NS_REF_MIN_L1].ok ? th->ref[NS_REF_MIN_L1].gen_err : NAN;
    vd->gen_sharp = th->ref[NS_REF_MIN_SHARP].ok ? th->ref[NS_REF_MIN_SHARP].gen_err : NAN;
    return 0;
}

// NS_ENOMEM if the CSV could not be read into memory (other read failures: no table).
static int print_sweep(const char *csv_path, const verdict *vd, const ns_sweep_stats *st) {
    char *text;
    int rc = ns_read_file(csv_path, &text, NULL);
    if (rc == NS_ENOMEM) return rc;
    if (rc == 0) {  // the CSV as an aligned table
        int width[32], header = 1;  // each column as wide as its name, at least 11
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), header = 0) {
            int col = 0;
            for (char *p = line, *f; p; p = f, col++) {
                f = strchr(p, ',');
                if (f) *f++ = 0;
                int w = col < 32 ? width[col] : 11;
                if (header && col < 32) w = width[col] = strlen(p) > 11 ? (int)strlen(p) : 11;
                char *end;
                double x = strtod(p, &end);
                if (*p && !*end) printf(" %-*.5g", w, x);
                else printf(" %-*.*s", w, w, *p ? p : "-");
            }
            putchar('\n');
        }
        free(text);
    }
    printf("%d runs done, %d skipped (already finished), %d failed, %.3g s\n", st->done, st->skipped, st->failed,
           st->seconds);
    if (vd->best < 0) {
        printf("no run converged to a point with a finite generalization error.\n");
        return 0;
    }
    char a[32];
    printf("lowest generalization error: eta = %g (%s of the grid): gen err %s\n", vd->best_eta,
           vd->interior ? "interior" : "an end", fmt_g(a, vd->best_gen));
    const char *names[2] = {"min-l1", "min-sharpness"};
    double refs[2] = {vd->gen_l1, vd->gen_sharp};
    for (int k = 0; k < 2; k++) {
        char g[32];
        printf("%s interpolator: gen err %s", names[k], fmt_g(g, refs[k]));
        if (refs[k] > 1e-12 * fmax(1, vd->best_gen))
            printf(" (the best eta's is %.3g%% %s)", 100 * fabs(vd->best_gen - refs[k]) / refs[k],
                   vd->best_gen < refs[k] ? "lower" : "higher");
        printf("\n");
    }
    int below = vd->best_gen < vd->gen_l1 && vd->best_gen < vd->gen_sharp;
    printf("the best eta is %sbelow both minimizers' generalization errors.\n", below ? "" : "NOT ");
    return 0;
}

static int dln_sweep(const ns_cli *c, dln_args *a) {
    int rc;
    if (!a->lr_grid) return ns_cli_usage_error("--lr GRID is required, e.g. --lr 0.01:1:24.");
    if (!a->out) return ns_cli_usage_error("--out DIR is required (where the results go).");
    double *etas;
    int K;
    if (ns_parse_grid(a->lr_grid, 1, "--lr", &etas, &K)) return ns_cli_usage_error("%s.", ns_errmsg());
    char **dirs = ns_calloc((size_t)K, sizeof(char *));
    ns_dln_model m;
    ns_dln_task task;
    sweep_ctx sc = {0};
    double *hyp = NULL;
    int have_task = 0, have_th = 0;
    if (!dirs) {
        rc = ns_cli_report(NS_ENOMEM);
        goto done;
    }
    for (int i = 0; i < K; i++) {
        char d[4200];
        if (ns_path(d, sizeof d, "%s/runs/lr_%g", a->out, etas[i]) || !(dirs[i] = ns_strdup(d))) {
            rc = ns_cli_report(NS_ENOMEM);
            goto done;
        }
        for (int k = 0; k < i; k++)
            if (!strcmp(dirs[k], dirs[i])) {
                rc = ns_cli_usage_error("--lr values %.17g and %.17g share the run directory '%s'; use fewer points.",
                                        etas[k], etas[i], dirs[i]);
                goto done;
            }
    }
    if ((rc = open_problem(c, a, &m, &task))) goto done;
    have_task = 1;
    char tpath[4200], cpath[4200];
    if (ns_path(tpath, sizeof tpath, "%s/theory.json", a->out) || ns_path(cpath, sizeof cpath, "%s/dln.csv", a->out)) {
        rc = ns_cli_report(NS_EINVAL);
        goto done;
    }
    if ((rc = hypentropy(&m, &task, &hyp))) {  // only out of memory: else NULL, the runs lack dist_hypentropy
        rc = ns_cli_report(rc);
        goto done;
    }
    sc = (sweep_ctx){.a = a, .m = &m, .task = &task, .etas = etas, .hyp = hyp, .theory_path = tpath};
    int found = theory_load(tpath, &m, &task, &sc.th);
    if (found == -2) {
        rc = ns_cli_report(NS_ENOMEM);
        goto done;
    }
    if (found < 0) {
        rc = ns_cli_usage_error("'%s' holds the results of another problem (task, model or alpha); use a new --out.", a->out);
        goto done;
    }
    have_th = 1;
    if (found) sc.theory_state = 1;  // from an earlier sweep of this problem
    else if (ns_sweep_rank() == 0) sc.theory_pid = theory_start(&sc);  // only rank 0 needs and writes it
    ns_sweep sw = {.n_runs = K, .run_dirs = dirs, .run = sweep_run, .row = sweep_row, .label = sweep_label, .ctx = &sc,
                   .jobs = a->jobs, .csv_path = cpath, .quiet = a->json,
                   .csv_header = "eta,status,steps,l1,sharpness,two_over_eta,gen_err,dist_min_l1,dist_min_sharp,train_loss,"
                                 "beta_l1,w_l2_sq"};
    ns_sweep_stats st = {0};
    int src = ns_sweep_run(&sw, &st);
    if (ns_sweep_rank() > 0) {  // under mpirun rank 0 reports the sweep
        rc = ns_cli_report_once(src);
        goto done;
    }
    char why[1024];  // the error to report: reading theory.json and the runs below may replace the message
    snprintf(why, sizeof why, "%s", ns_errmsg());
    int trc = theory_ready(&sc);  // also reaps the theory process if no row needed it
    if (trc) fprintf(stderr, "normsharp: %s.\n", ns_errmsg());
    if (!src && trc) snprintf(why, sizeof why, "%s", ns_errmsg());
    if (!src) src = trc;
    verdict vd;
    if (sweep_verdict(dirs, etas, K, &sc.th, &vd) && !src) {
        src = NS_ENOMEM;
        snprintf(why, sizeof why, "%s", ns_errmsg());
    }
    if (a->json) {
        ns_buf b = {0};
        ns_json j;
        ns_json_begin(&j, &b);
        ns_json_obj(&j, NULL);
        ns_json_str(&j, "csv", cpath);
        ns_json_str(&j, "theory", tpath);
        ns_json_int(&j, "runs", K);
        ns_json_int(&j, "done", st.done);
        ns_json_int(&j, "skipped", st.skipped);
        ns_json_int(&j, "failed", st.failed);
        ns_json_num(&j, "seconds", st.seconds);
        if (vd.best >= 0) {
            ns_json_obj(&j, "best");
            ns_json_num(&j, "eta", vd.best_eta);
            ns_json_num(&j, "gen_err", vd.best_gen);
            ns_json_int(&j, "index", vd.best);
            ns_json_bool(&j, "interior", vd.interior);
            ns_json_end(&j);
        } else {
            ns_json_null(&j, "best");
        }
        ns_json_num(&j, "min_l1_gen_err", vd.gen_l1);
        ns_json_num(&j, "min_sharpness_gen_err", vd.gen_sharp);
        ns_json_bool(&j, "below_both", vd.best >= 0 && vd.best_gen < vd.gen_l1 && vd.best_gen < vd.gen_sharp);
        ns_json_end(&j);
        if (!b.oom) printf("%s\n", b.data);
        else if (!src) {
            src = NS_ENOMEM;
            snprintf(why, sizeof why, "%s", ns_errmsg());
        }
        ns_buf_free(&b);
    } else {
        print_problem(&m, &task);
        if (print_sweep(cpath, &vd, &st) && !src) {
            src = NS_ENOMEM;
            snprintf(why, sizeof why, "%s", ns_errmsg());
        }
    }
    rc = ns_cli_report(src ? ns_fail(src, "%s", why) : 0);
done:
    if (have_th && sc.theory_state > 0) ns_dln_theory_free(&sc.th);
    free(hyp);
    if (have_task) ns_dln_task_free(&task);
    for (int i = 0; dirs && i < K; i++) free(dirs[i]);
    free(dirs);
    free(etas);
    return rc;
}

// ---- dispatch ----------------------------------------------------------------------------------

// Each subcommand parses the problem options, then its training and output options, and
// runs on the parsed arguments.
typedef struct {
    const char *name, *cmd, *usage, *help;
    int (*run)(const ns_cli *c, dln_args *a);
    int training;  // 0 none, 1 one run, 2 a sweep (a grid of --lr, --out required, --jobs)
    const char *about;
} subcommand;

static const subcommand subcommands[] = {
    {"train", "dln train", "normsharp dln train [options]",
     "One run of full-batch GD at --lr (or --flow: gradient flow by RK4) on a diagonal linear network\n"
     "from its fixed initialization, until the loss is <= --loss-goal, --max-steps, or divergence.\n"
     "Prints the final beta's l1 norm, parameter l2 norm, exact sharpness, generalization error, the\n"
     "distance to the hypentropy (gradient-flow) prediction and, for uv and pm, alpha_inf and the\n"
     "Even et al. prediction at alpha_inf. --out DIR writes DIR/summary.json.",
     dln_train, 1, "one GD run (or --flow) with its final norm, sharpness and generalization error"},
    {"theory", "dln theory", "normsharp dln theory [options]",
     "The reference interpolators of the task, each with its l1 norm, sharpness (of the minimal-norm\n"
     "parameters of --model realizing it) and generalization error: min-l1 (GLPK), min-l2\n"
     "(pseudo-inverse), min-sharpness (DSDP; an LP when n = 1), the hypentropy prediction of\n"
     "gradient flow, and the generalization-optimal interpolator. For shared weights all are\n"
     "restricted to beta >= 0. --out DIR writes DIR/theory.json.",
     dln_theory, 0, "min-l1, min-l2, min-sharpness, hypentropy, gen-opt interpolators"},
    {"sweep", "dln sweep", "normsharp dln sweep --lr A:B:K --out OUT [options]",
     "GD from the same initialization at every learning rate of --lr. Writes OUT/theory.json (the\n"
     "reference interpolators; reused on a rerun of the same problem), OUT/runs/lr_<eta>/summary.json\n"
     "per run (finished runs are skipped on a rerun) and OUT/dln.csv, then says which eta\n"
     "generalizes best and whether it beats both the min-l1 and the min-sharpness interpolators.",
     dln_sweep, 2, "GD over a learning-rate grid: OUT/dln.csv, OUT/theory.json, OUT/runs/"},
};
#define NSUB ((int)(sizeof subcommands / sizeof subcommands[0]))

static int run_subcommand(const subcommand *s, int argc, char **argv) {
    dln_args a;
    ns_cli c;
    int sweep = s->training == 2;
    args_init(&a);
    ns_cli_init(&c, s->cmd, s->usage, s->help);
    add_problem(&c, &a);
    if (s->training) add_training(&c, &a, sweep);
    add_output(&c, &a, sweep, sweep, s->training ? "summary.json" : "theory.json");
    NS_CLI_PARSE(&c, argc, argv);
    return s->run(&c, &a);
}

static void dln_usage(FILE *f) {
    fprintf(f, "usage: normsharp dln <subcommand> [options]\n       normsharp dln <subcommand> --help\n\n"
               "The diagonal linear network lab (docs/CONVENTIONS.md): beta = w*w, u^D - v^D or\n"
               "u*v trained by GD on L = ||X beta - y||^2 / (2n), against the min-norm and\n"
               "min-sharpness interpolators.\n\n"
               "subcommands:\n");
    for (int i = 0; i < NSUB; i++) fprintf(f, "  %-7s %s\n", subcommands[i].name, subcommands[i].about);
}

int cmd_dln(int argc, char **argv) {
    if (argc < 2) {
        dln_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        dln_usage(stdout);
        return 0;
    }
    for (int i = 0; i < NSUB; i++)
        if (!strcmp(argv[1], subcommands[i].name)) return run_subcommand(&subcommands[i], argc - 1, argv + 1);
    return ns_cli_usage_error("unknown dln subcommand '%s'; run 'normsharp dln --help' for the list.", argv[1]);
}
