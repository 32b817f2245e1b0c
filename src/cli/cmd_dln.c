// normsharp dln — the diagonal linear network lab (docs/CONVENTIONS.md, DLN): `train` one GD run (or the
// gradient flow), `theory` the reference interpolators, `sweep` GD over a learning-rate grid
// through the shared sweep runner. Files: docs/OUTPUTS.md ("The DLN lab").
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

// What every subcommand does once its options are parsed: make --out (if given), set the
// BLAS threads, build the problem. Returns an exit status (0 = go on; then task is owned).
static int open_problem(const ns_cli *c, dln_args *a, ns_dln_model *m, ns_dln_task *task) {
    int rc;
    if (a->out && (rc = ns_cli_out_dir(a->out))) return rc;
    ns_cli_set_threads(a->threads);
    return make_problem(c, a, m, task);
}

// ---- printing --------------------------------------------------------------------------------

static const char *fmt_g(char *buf, double x) {
    if (!isfinite(x)) snprintf(buf, 32, "-");
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

static void print_run(const ns_dln_model *m, const ns_dln_train_opts *o, const ns_dln_run_result *res) {
    const ns_dln_train_result *r = &res->train;
    const ns_dln_measures *q = &res->measures;
    char b1[32], b2[32], b3[32], b4[32];
    printf("%s: %s after %ld steps (%.3g s)\n", o->flow ? "gradient flow" : "GD", ns_status_name(r->status), r->steps,
           r->seconds);
    printf("train loss %s  ||beta||_1 %s  ||w||_2^2 %s (all weights)\n", fmt_g(b1, r->loss), fmt_g(b2, q->l1),
           fmt_g(b3, q->l2 * q->l2));
    printf("sharpness %s (%s)%s%s  trace %s\n", fmt_g(b1, q->sharp.sharpness), q->sharp.method, o->flow ? "" : "  2/eta ",
           o->flow ? "" : fmt_g(b2, 2 / o->eta), fmt_g(b3, q->sharp.trace));
    if (o->flow)
        printf("s_GF %s  eta_c = 2/s_GF %s  time %s\n", fmt_g(b1, r->s_max), fmt_g(b2, r->s_max > 0 ? 2 / r->s_max : NAN),
               fmt_g(b3, r->time));
    printf("gen err %s  distance to the hypentropy prediction %s\n", fmt_g(b1, q->gen_err), fmt_g(b2, q->dist_hyp));
    if (r->log_alpha_inf_sq)
        printf("alpha_inf in [%s, %s] (alpha %g)\n", fmt_g(b1, exp(0.5 * q->log_ainf_min)),
               fmt_g(b2, exp(0.5 * q->log_ainf_max)), m->alpha);
    if (q->have_even)
        printf("Even et al. prediction at alpha_inf: l1 %s  gen err %s  distance %s  sharpness %s\n",
               fmt_g(b1, q->even_l1), fmt_g(b2, q->even_gen), fmt_g(b3, q->even_dist), fmt_g(b4, q->even_sharp));
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

// NS_ENOMEM if the CSV could not be read into memory (other read failures: no table).
static int print_sweep(const ns_dln_sweep_result *vd) {
    char *text;
    int rc = ns_read_file(vd->csv_path, &text, NULL);
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
    printf("%d runs done, %d skipped (already finished), %d failed, %.3g s\n", vd->done, vd->skipped, vd->failed,
           vd->seconds);
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

// ---- the subcommands ---------------------------------------------------------------------------

static int dln_train(const ns_cli *c, dln_args *a) {
    ns_dln_model m;
    ns_dln_task task;
    double *hyp;
    int rc = open_problem(c, a, &m, &task);
    if (rc) return rc;
    if ((rc = ns_dln_hypentropy(&m, &task, &hyp))) {
        ns_dln_task_free(&task);
        return ns_cli_report(rc);
    }
    ns_dln_run_result res;
    if (!(rc = ns_dln_run(&m, &task, hyp, &a->train, a->dense_max, a->out, &res))) {
        if (a->json) {
            fputs(res.summary.data, stdout);
        } else {
            print_problem(&m, &task);
            print_run(&m, &a->train, &res);
        }
        ns_dln_run_result_free(&res);
    }
    free(hyp);
    ns_dln_task_free(&task);
    return ns_cli_report(rc);
}

static int dln_theory(const ns_cli *c, dln_args *a) {
    ns_dln_model m;
    ns_dln_task task;
    int rc = open_problem(c, a, &m, &task);
    if (rc) return rc;
    ns_dln_theory th;
    ns_buf b = {0};
    if (!(rc = ns_dln_theory_run(&m, &task, a->out, &th, &b))) {
        if (a->json) {
            fputs(b.data, stdout);
        } else {
            print_problem(&m, &task);
            print_theory(&th);
            printf("(%.3g s)\n", th.seconds);
        }
        ns_buf_free(&b);
        ns_dln_theory_free(&th);
    }
    ns_dln_task_free(&task);
    return ns_cli_report(rc);
}

static int dln_sweep(const ns_cli *c, dln_args *a) {
    if (!a->lr_grid) return ns_cli_usage_error("--lr GRID is required, e.g. --lr 0.01:1:24.");
    if (!a->out) return ns_cli_usage_error("--out DIR is required (where the results go).");
    ns_dln_sweep_opts o = {.out_dir = a->out, .train = a->train, .dense_max = a->dense_max, .jobs = a->jobs, .quiet = a->json};
    double *etas;
    if (ns_parse_grid(a->lr_grid, 1, "--lr", &etas, &o.n)) return ns_cli_usage_error("%s.", ns_errmsg());
    o.etas = etas;
    ns_dln_model m;
    ns_dln_task task;
    int rc = ns_dln_sweep_layout(a->out, etas, o.n, &o.run_dirs);
    if (rc) rc = ns_cli_report(rc);
    else if (!(rc = open_problem(c, a, &m, &task))) {
        ns_dln_sweep_result res;
        int src = ns_dln_sweep(&m, &task, &o, &res);
        char why[1024];  // the sweep's error: reading the CSV to print it may replace the message
        snprintf(why, sizeof why, "%s", ns_errmsg());
        if (res.ran) {
            if (!a->json) print_problem(&m, &task);
            ns_buf b = {0};
            int prc = a->json ? ns_cli_put(&b, ns_dln_sweep_result_json(&res, o.n, &b)) : print_sweep(&res);
            if (prc && !src) {
                src = prc;
                snprintf(why, sizeof why, "%s", ns_errmsg());
            }
        }
        rc = ns_cli_report_once(src ? ns_fail(src, "%s", why) : 0);
        ns_dln_task_free(&task);
    }
    ns_dln_sweep_layout_free(o.run_dirs, o.n);
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
