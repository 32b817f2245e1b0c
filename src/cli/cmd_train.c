// normsharp train — gradient descent at one learning rate from theta_0, into a run
// directory (docs/OUTPUTS.md). Also home of the options train, flow and sweep share.
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "train_cli.h"

// ---- the shared options -------------------------------------------------------------------

void train_cli_init(train_cli *t) {
    memset(t, 0, sizeof *t);
    t->arch = "fc-tanh-200-200";
    t->param = "standard";
    t->init_scale = 1.0;
    ns_data_opts_default(&t->data);
    ns_train_opts lib;  // the final measurement's defaults are the library's
    ns_train_opts_default(&lib);
    t->top_k = lib.final.eig.k;
    t->trace_probes = lib.final.trace_probes;
    t->eig_iters = lib.final.eig.max_iter;
    t->eig_tol = lib.final.eig.tol;
    t->track_tol = 1e-2;
    t->views = lib.final.views;
}

void train_cli_add_model(ns_cli *c, train_cli *t, int with_seed) {
    ns_cli_add(c, "arch", OPT_STR, &t->arch, 0, 0, "ARCH", "architecture, e.g. fc-tanh-200-200 (default), cnn-relu-32-32, resnet-relu-16-32-64, vit-P7-D64-L2-H4");
    ns_cli_add(c, "param", OPT_STR, &t->param, 0, 0, "P", "parameterization: standard (default), ntk, mup");
    ns_cli_add(c, "init-scale", OPT_DOUBLE, &t->init_scale, 0, 1e6, "C", "multiply the initial weights by C (default 1)");
    if (with_seed) ns_cli_add(c, "seed", OPT_U64, &t->seed, 0, 0, "S", "seed of theta_0 (default 0)");
    ns_cli_add(c, "weights", OPT_STR, &t->weights, 0, 0, "DIR",
               "start from saved weights instead of a fresh theta_0 (their model.json gives the model, the seed "
               "and the default data options)");
}

void train_cli_add_measure(ns_cli *c, train_cli *t) {
    ns_cli_add(c, "top-k", OPT_INT, &t->top_k, 1, 1000, "K", "final measurement: top K Hessian eigenvalues (default 5)");
    ns_cli_add(c, "trace-probes", OPT_INT, &t->trace_probes, 0, 1e6, "P", "final measurement: Hutchinson probes for the trace (default 10, 0 = none)");
    ns_cli_add(c, "eig-tol", OPT_DOUBLE, &t->eig_tol, 1e-14, 1, "TOL", "Lanczos relative residual tolerance (default 1e-4)");
    ns_cli_add(c, "eig-iters", OPT_INT, &t->eig_iters, 2, 100000, "N", "Lanczos iteration limit (default 300)");
    ns_cli_add(c, "track-tol", OPT_DOUBLE, &t->track_tol, 1e-14, 1, "TOL",
               "Lanczos tolerance of the tracked sharpness: trajectory rows, flow steps (default 1e-2)");
    ns_cli_add_hvp_cache(c, &t->hvp_cache_mb);
    // the spellings of `normsharp sharpness` before the options were one vocabulary
    ns_cli_alias(c, "top-k", "k");
    ns_cli_alias(c, "eig-tol", "tol");
    ns_cli_alias(c, "eig-iters", "max-iter");
}

void train_cli_add_views(ns_cli *c, double *weight_decay, ns_view_opts *v) {
    ns_cli_add(c, "weight-decay", OPT_DOUBLE, weight_decay, 0, 1e6, "LAMBDA",
               "L2 penalty (LAMBDA/2)||theta||^2 added to the objective whose gradient and Hessian are used; "
               "train_loss stays the data loss, \"objective\" records the sum (default 0)");
    ns_cli_add(c, "adaptive", OPT_FLAG, &v->adaptive, 0, 0, NULL,
               "also the adaptive sharpness: max|lambda| of D H D, D = diag(|theta| + eps)");
    ns_cli_add(c, "adaptive-eps", OPT_DOUBLE, &v->adaptive_eps, 0, 1e6, "EPS", "eps of --adaptive (default 1e-6)");
    ns_cli_add(c, "per-layer", OPT_FLAG, &v->per_layer, 0, 0, NULL,
               "also the top eigenvalue (and, with trace probes, the trace) of each tensor's diagonal Hessian block");
    ns_cli_add(c, "density-probes", OPT_INT, &v->density_probes, 0, 100000, "P",
               "also the Hessian's spectral density by stochastic Lanczos quadrature with P probes: density.csv, and on "
               "--eig-every rows density_trajectory.csv (default 0 = off)");
    ns_cli_add(c, "density-steps", OPT_INT, &v->density_steps, 1, 100000, "M", "Lanczos steps per density probe (default 80)");
    ns_cli_add(c, "density-sigma", OPT_DOUBLE, &v->density_sigma, 0, 1e12, "S",
               "Gaussian bandwidth of the density (default 0 = 1% of the largest |Ritz value|)");
}

int train_cli_check_views(const ns_cli *c) {
    if (ns_cli_seen(c, "adaptive-eps") && !*(const int *)ns_cli_opt(c, "adaptive")->ptr)
        return ns_cli_usage_error("--adaptive-eps applies only with --adaptive.");
    int probes = *(const int *)ns_cli_opt(c, "density-probes")->ptr;
    if (probes == 0 && (ns_cli_seen(c, "density-steps") || ns_cli_seen(c, "density-sigma")))
        return ns_cli_usage_error("--density-steps and --density-sigma apply only with --density-probes P > 0.");
    return 0;
}

void train_cli_add_output(ns_cli *c, train_cli *t, int with_threads) {
    ns_cli_add(c, "out", OPT_STR, &t->out, 0, 0, "DIR", "output directory (required)");
    ns_cli_add(c, "json", OPT_FLAG, &t->json, 0, 0, NULL, "print the summary as JSON");
    ns_cli_add(c, "save-weights", OPT_FLAG, &t->save_weights, 0, 0, NULL, "write the final weights into the run directory's weights/");
    if (with_threads)
        ns_cli_add(c, "threads", OPT_INT, &t->threads, 1, 1024, "N",
                   "threads, OpenBLAS's and normsharp's own (default: all cores; a sweep run uses 1, so --threads 1 reproduces it)");
}

void train_cli_add_gd(ns_cli *c, ns_train_opts *o) {
    ns_cli_add(c, "momentum", OPT_DOUBLE, &o->momentum, 0, 0.999999, "MU", "heavy-ball momentum (default 0: plain GD)");
    ns_cli_add(c, "nesterov", OPT_FLAG, &o->nesterov, 0, 0, NULL, "Nesterov momentum (needs --momentum)");
    ns_cli_add(c, "batch", OPT_LONG, &o->batch, 1, 1e12, "B", "minibatch SGD with batches of B (default: full batch)");
    ns_cli_add(c, "loss-goal", OPT_DOUBLE, &o->loss_goal, 0, INFINITY, "EPS", "stop when the training loss is <= EPS (status converged)");
    ns_cli_add(c, "acc-goal", OPT_DOUBLE, &o->acc_goal, 0, 1, "A", "stop when the training accuracy is >= A (status acc_goal)");
    ns_cli_add(c, "max-steps", OPT_LONG, &o->max_steps, 0, 1e15, "T", "stop after T steps (default 100000)");
    ns_cli_add(c, "diverge-factor", OPT_DOUBLE, &o->diverge_factor, 1.000001, INFINITY, "F", "diverged when the loss exceeds F x the initial loss (default 1000)");
    ns_cli_add(c, "log-every", OPT_LONG, &o->log_every, 0, 1e15, "K", "trajectory row every K steps (default 10; 0 = final only)");
    ns_cli_add(c, "test-every", OPT_LONG, &o->test_every, 0, 1e15, "K", "test loss/error on rows at multiples of K (default 100)");
    ns_cli_add(c, "eig-every", OPT_LONG, &o->eig_every, 0, 1e15, "K", "lambda_max and sharpness on rows at multiples of K (default 0 = never)");
    ns_cli_add(c, "avg-last", OPT_INT, &o->avg_last, 0, 1e6, "M", "also measure the mean of the last M iterates (default 0 = off)");
    ns_cli_add(c, "decay-steps", OPT_LONG, &o->decay_steps, 0, 1e15, "T", "also measure after T more steps at lr x --decay-factor (default 0 = off)");
    ns_cli_add(c, "decay-factor", OPT_DOUBLE, &o->decay_factor, 1e-12, 1, "F", "learning-rate factor of the decayed phase (default 0.1)");
}

// With --weights, theta_0 and its seed come from model.json: an option that draws theta_0
// would be ignored, so it is refused; the run's seed (minibatches, Lanczos and Hutchinson
// starts) is the weights' seed, which summary.json records; the data options not given on
// the command line are the saved ones (as for `sharpness`).
static int from_weights(train_cli *t, const ns_cli *c) {
    static const char *const drawn[] = {"arch", "param", "init-scale", "seed", "seeds"};
    for (size_t i = 0; i < sizeof drawn / sizeof *drawn; i++)
        if (ns_cli_seen(c, drawn[i]))
            return ns_cli_usage_error("--%s cannot go with --weights: the weights in %s are theta_0, and their "
                                      "model.json fixes the architecture, parameterization, init scale and seed "
                                      "(the seed also draws minibatches and Lanczos starts); drop --%s, or drop "
                                      "--weights to draw a fresh theta_0.", drawn[i], t->weights, drawn[i]);
    ns_model *m = NULL;
    ns_data_opts saved, given = t->data;
    int rc = ns_weights_load(t->weights, &m, &saved);
    if (rc) return ns_cli_report(rc);
    t->seed = ns_model_cfg(m)->seed;
    ns_cli_merge_data(&t->data, &given, &saved, c);
    ns_model_free(m);
    return 0;
}

int train_cli_check(train_cli *t, const ns_cli *c) {
    int rc = t->weights ? from_weights(t, c) : 0;
    if (rc) return rc;
    if (ns_arch_check(t->arch)) return ns_cli_usage_error("%s", ns_errmsg());
    if (ns_param_check(t->param)) return ns_cli_usage_error("--param: %s.", ns_errmsg());
    if (!t->out) return ns_cli_usage_error("--out DIR is required (where the results go).");
    if ((rc = ns_cli_out_dir(t->out))) return rc;
    ns_cli_set_threads(t->threads);
    ns_cli_set_hvp_cache(t->hvp_cache_mb);
    return 0;
}

int train_cli_fresh_out(const train_cli *t) {
    DIR *d = opendir(t->out);
    if (!d) return ns_cli_usage_error("cannot read --out '%s': %s.", t->out, strerror(errno));
    struct dirent *e;
    char first[256] = "";
    while (!*first && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            snprintf(first, sizeof first, "%s", e->d_name);
    closedir(d);
    if (*first)
        return ns_cli_usage_error("--out '%s' already holds files (%s, ...), perhaps of an earlier run; a run "
                                  "directory holds one run only: give a new or empty folder.", t->out, first);
    return 0;
}

void train_cli_run_opts(const train_cli *t, uint64_t seed, uint64_t *run_seed, int *save_weights,
                        const char **weights_from, ns_measure_opts *final, ns_measure_opts *eig) {
    *run_seed = seed;
    *save_weights = t->save_weights;
    *weights_from = t->weights;
    ns_measure_opts_default(final);
    final->eig.k = t->top_k;
    final->eig.tol = t->eig_tol;
    final->eig.max_iter = t->eig_iters > t->top_k + 1 ? t->eig_iters : t->top_k + 1;
    final->eig.seed = seed;
    final->trace_probes = t->trace_probes;
    final->trace_seed = seed;
    ns_measure_opts_default(eig);
    eig->eig.k = 1;
    eig->eig.tol = t->track_tol;
    eig->eig.max_iter = t->eig_iters;
    eig->eig.seed = seed;
    final->views = t->views;
    eig->views = t->views;
}

int train_cli_model(const train_cli *t, const ns_dataset *ds, uint64_t seed, ns_model **out) {
    ns_model_config cfg = {.init_scale = t->init_scale, .seed = seed};
    snprintf(cfg.arch, sizeof cfg.arch, "%s", t->arch);
    snprintf(cfg.param, sizeof cfg.param, "%s", t->param);
    return ns_model_theta0(t->weights, &cfg, ds, out);
}

// ---- normsharp train ----------------------------------------------------------------------

static void print_result(const ns_train_opts *o, const ns_train_result *r, const char *out) {
    printf("status          %s", ns_status_name(r->status));
    if (r->diverged_at >= 0) printf(" at step %ld", r->diverged_at);
    printf("\nsteps           %ld (%.1f s)\n", r->steps, r->seconds);
    printf("train loss      %.6g\n", r->final_loss);
    printf("sharpness       %.6g   (2/eta = %.6g)\n", r->final_sharpness, 2 / o->lr);
    printf("l1              %.6g\n", r->final_l1);
    if (!isnan(r->final_test_err)) printf("test error      %.4f\n", r->final_test_err);
    printf("results in      %s/summary.json\n", out);
}

int cmd_train(int argc, char **argv) {
    train_cli t;
    train_cli_init(&t);
    ns_train_opts o;
    ns_train_opts_default(&o);
    double lr = NAN;
    ns_cli c;
    ns_cli_init(&c, "train", "normsharp train --lr ETA --out DIR [options]",
                "Full-batch gradient descent at the constant learning rate ETA from theta_0 (or minibatch "
                "SGD with --batch), until the loss goal, the accuracy goal, the step limit or divergence. "
                "Writes DIR/trajectory.csv and DIR/summary.json. A diverged run is a result (exit 0).");
    ns_cli_add(&c, "lr", OPT_DOUBLE, &lr, -INFINITY, INFINITY, "ETA", "learning rate eta > 0 (required)");
    train_cli_add_model(&c, &t, 1);
    ns_cli_add_data(&c, &t.data);
    train_cli_add_gd(&c, &o);
    train_cli_add_measure(&c, &t);
    train_cli_add_views(&c, &o.weight_decay, &t.views);
    train_cli_add_output(&c, &t, 1);
    NS_CLI_PARSE(&c, argc, argv);
    if (!ns_cli_seen(&c, "lr")) return ns_cli_usage_error("--lr ETA is required.");
    int vrc = train_cli_check_views(&c);
    if (vrc) return vrc;
    if (!(lr > 0)) return ns_cli_usage_error("--lr must be a number > 0, got %g.", lr);
    if (o.nesterov && !(o.momentum > 0)) return ns_cli_usage_error("--nesterov needs --momentum > 0.");
    int rc = train_cli_check(&t, &c);
    if (!rc) rc = train_cli_fresh_out(&t);
    if (rc) return rc;
    o.lr = lr;
    train_cli_run_opts(&t, t.seed, &o.seed, &o.save_weights, &o.weights_from, &o.final, &o.eig);

    ns_dataset ds = {0};
    ns_model *m = NULL;
    ns_train_result res = {0};
    if ((rc = ns_data_load(&t.data, &ds))) return ns_cli_report(rc);
    if (o.batch > ds.n) {
        ns_data_free(&ds);
        return ns_cli_usage_error("--batch %ld is larger than the training set (%ld examples).", o.batch, ds.n);
    }
    if (!(rc = train_cli_model(&t, &ds, t.seed, &m))) {
        char label[64];
        snprintf(label, sizeof label, "train lr=%g", lr);
        ns_progress *p = ns_progress_console(label);
        rc = !p ? NS_ENOMEM : ns_train_run(m, &ds, &t.data, &o, t.out, p, &res);
        ns_progress_console_end(p);
    }
    if (!rc) {
        if (t.json) fputs(res.summary.data, stdout);
        else print_result(&o, &res, t.out);
    }
    ns_train_result_free(&res);
    ns_model_free(m);
    ns_data_free(&ds);
    return ns_cli_report(rc);
}
