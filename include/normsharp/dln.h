// normsharp/dln.h — the diagonal linear network lab (docs/CONVENTIONS.md, DLN): three models with closed-form
// calculus, GD and gradient flow, exact sharpness, and the reference interpolators
// (min-l1, min-l2, min-sharpness, hypentropy, Even et al., generalization-optimal).
// Everything is double precision, whatever PRECISION the networks use.
//
// Loss L(beta) = (1/(2n)) ||X beta - y||^2, X (n x d, row-major). With r = X beta - y,
// g = X^T r / n is the gradient of L with respect to beta.
#ifndef NORMSHARP_DLN_H
#define NORMSHARP_DLN_H
#include "normsharp/common.h"
#include "normsharp/dln_refs.h"
#include "normsharp/progress.h"

// ---- models --------------------------------------------------------------------------
// Parameters theta, per coordinate i (d coordinates):
//   SHARED  beta_i = w_i^2                    theta = [w]     (d)   init w = alpha
//   PM      beta_i = u_i^D - v_i^D (D=depth)  theta = [u; v]  (2d)  init u = v = alpha
//   UV      beta_i = u_i v_i                  theta = [u; v]  (2d)  init u = sqrt(2) alpha, v = 0
typedef enum { NS_DLN_SHARED = 0, NS_DLN_PM = 1, NS_DLN_UV = 2 } ns_dln_kind;

typedef struct {
    ns_dln_kind kind;
    int depth;      // D for PM (>= 2); 2 otherwise
    double alpha;   // initialization scale (> 0)
} ns_dln_model;

// "shared", "pm" (alias "woodworth", "uu-vv"), "uv" (alias "even").
int ns_dln_model_parse(const char *s, ns_dln_kind *out);
const char *ns_dln_model_name(ns_dln_kind k);
// Checks depth and alpha; returns NS_EINVAL with a sentence on bad values.
int ns_dln_model_check(const ns_dln_model *m);
int ns_dln_nparams(const ns_dln_model *m, int d);  // d or 2d

// The training data the loss sees.
typedef struct {
    int n, d;
    const double *X;  // n x d, row-major
    const double *y;  // n
} ns_dln_data;

// Loss, residual and beta-gradient at one point.
typedef struct {
    double *beta;  // d
    double *r;     // n: X beta - y
    double *g;     // d: X^T r / n
    double loss;
} ns_dln_point;
int ns_dln_point_alloc(ns_dln_point *p, int n, int d);
void ns_dln_point_free(ns_dln_point *p);

void ns_dln_init(const ns_dln_model *m, int d, double *theta);
void ns_dln_beta(const ns_dln_model *m, int d, const double *theta, double *beta);
// Fills pt from theta: beta, r, g (two cblas_dgemv), loss.
void ns_dln_eval(const ns_dln_model *m, const ns_dln_data *t, const double *theta, ns_dln_point *pt);
// grad := dL/dtheta = (dbeta/dtheta)^T g, from an evaluated point.
void ns_dln_grad(const ns_dln_model *m, int d, const double *theta, const ns_dln_point *pt, double *grad);
// hv := H v. H = (1/n) J^T J + blockdiag_i(g_i d^2 beta_i / dtheta_i^2), J = dbeta/dtheta
// composed with X. `work` has n + d doubles.
void ns_dln_hvp(const ns_dln_model *m, const ns_dln_data *t, const double *theta, const ns_dln_point *pt,
                const double *v, double *hv, double *work);
// The dense Hessian (p x p row-major, p = nparams). O(p^2 n).
int ns_dln_hessian(const ns_dln_model *m, const ns_dln_data *t, const double *theta, const ns_dln_point *pt,
                   double *H);

// ---- sharpness -----------------------------------------------------------------------
// Exact spectrum ends of the training-loss Hessian.
//  * "dense" (p <= dense_max): all eigenvalues of the dense Hessian (LAPACKE_dsyevd).
//  * "secular" (larger p, and the flow): H = B + (1/n) J^T J with B block diagonal (1x1 or
//    2x2 per coordinate), so lambda > lambda_max(B) is an eigenvalue of H iff 1 is an
//    eigenvalue of M(lambda) = (1/n) X diag(w(lambda)) X^T, w_i = j_i^T (lambda - B_i)^-1 j_i
//    (j_i = dbeta_i/dtheta_i). lambda_max(H) is the root of mu_max(M(lambda)) = 1, found by
//    a safeguarded Newton iteration on n x n eigenproblems — exact at any point, and at an
//    interpolator (B = 0) it reduces to (1/n) lambda_max(X diag(|j_i|^2) X^T). lambda_min is
//    only bounded: lambda_min(B) <= lambda_min(H), since H - B is positive semidefinite.
//    The sharpness max(|lambda_max|, |lambda_min|) is exact whenever lambda_max(H) >=
//    -lambda_min(B) (always near an interpolator); otherwise it is reported as the upper
//    bound -lambda_min(B) with exact = 0.
typedef struct {
    double lambda_max, lambda_min;  // lambda_min: exact (dense) or the lower bound (secular)
    double sharpness;               // max |lambda|
    double trace;                   // exact: (1/n) ||J||_F^2 + tr B
    int exact;                      // sharpness exact (not a bound)
    const char *method;             // "dense" or "secular"
} ns_dln_sharp;
#define NS_DLN_DENSE_MAX 2000
#define NS_DLN_DENSE_ALWAYS 256
// dense_max: largest p for the dense route (0 = always secular).
int ns_dln_sharpness(const ns_dln_model *m, const ns_dln_data *t, const double *theta, const ns_dln_point *pt,
                     int dense_max, ns_dln_sharp *out);
// The policy the commands use: dense when p <= NS_DLN_DENSE_ALWAYS (cheap, every eigenvalue
// exact); otherwise the secular route, falling back to dense (p <= dense_max) only when the
// secular sharpness is not certified exact. For p = 2000 this saves ~0.35 s per measurement
// and gives the same number (tests compare both routes).
int ns_dln_sharpness_auto(const ns_dln_model *m, const ns_dln_data *t, const double *theta, const ns_dln_point *pt,
                          int dense_max, ns_dln_sharp *out);
// Sharpness at an interpolator beta realized by the minimal-norm parameters of model m:
// (1/n) lambda_max(X diag(kappa(beta)) X^T), kappa = |dbeta_i/dtheta_i|^2 at that realization:
// SHARED 4 beta (needs beta >= 0, else NaN), PM D^2 |beta|^(2-2/D), UV 2 |beta|.
// This is the least sharpness of any realization of beta: a lower bound for the others.
int ns_dln_sharpness_of_beta(const ns_dln_model *m, const ns_dln_data *t, const double *beta, double *out);
// Sharpness at the interpolator beta as the gradient flow from the model's initialization
// realizes it. The flow conserves u_i v_i = a_i (PM, D = 2; a = alpha^2 from u = v = alpha)
// and (u_i^2 - v_i^2) / 2 = a_i (UV; a = alpha^2 from u = sqrt(2) alpha, v = 0), which fixes
// the parameters: u^2 + v^2 = sqrt(beta^2 + 4 a^2) (PM) or 2 sqrt(beta^2 + a^2) (UV), so
// kappa = 4 sqrt(beta^2 + 4 a^2) (PM) or 2 sqrt(beta^2 + a^2) (UV). log_alpha_sq gives log a_i
// per coordinate (e.g. a GD run's alpha_inf^2, Even et al.), NULL for alpha^2 everywhere.
// SHARED has a single realization, and PM with D > 2 falls back to ns_dln_sharpness_of_beta.
// Unlike that lower bound, this is the sharpness the flow (and small-step GD) actually ends at:
// at alpha = 0.1, n = 100, d = 1000 the two differ by a factor of 2 (EXPERIMENTS.md §4).
int ns_dln_sharpness_on_flow(const ns_dln_model *m, const ns_dln_data *t, const double *beta,
                             const double *log_alpha_sq, double *out);
// lambda_max(X diag(w) X^T) for w >= 0 (n x n eigenproblem; a sum when n = 1).
int ns_dln_lambda_max_xwx(const ns_dln_data *t, const double *w, double *out);

// ---- training: GD and gradient flow ---------------------------------------------------

typedef struct {
    double eta;            // GD step
    double loss_goal;      // stop when L <= loss_goal
    long max_steps;
    double diverge_factor; // diverged if L > diverge_factor * L(theta_0) or non-finite (1e6)
    int flow;              // gradient flow (RK4) instead of GD
    double flow_c;         // flow step h = min(flow_c / S, flow_hmax)
    double flow_hmax;
    long log_every;        // trajectory row every k steps (0 = none)
    long eig_every;        // sharpness on trajectory rows every k steps (0 = never); flow: S refresh
    ns_progress *progress; // may be NULL
} ns_dln_train_opts;
void ns_dln_train_opts_default(ns_dln_train_opts *o);

typedef struct {
    ns_status status;      // NS_CONVERGED, NS_MAX_STEPS or NS_DIVERGED
    long steps;            // GD steps (flow: RK4 steps) taken
    long diverged_at;      // step of divergence, -1 if none
    double loss0, loss;    // initial and final training loss
    double *theta;         // final parameters (nparams)
    double *beta;          // final beta (d)
    // log of alpha_inf^2 per coordinate, read off the run (NULL for SHARED or D > 2):
    //   UV: alpha^2 prod_k |1 - eta^2 g_k,i^2| = |u_i^2 - v_i^2| / 2,
    //   PM (D = 2): alpha^2 prod_k |1 - 4 eta^2 g_k,i^2| = |u_i v_i|,
    // g_k = X^T r_k / n the beta-gradient at the iterate step k starts from (coordinate i).
    // Flow: read off the final parameters (conserved, so log alpha^2 up to the RK4 error).
    double *log_alpha_inf_sq;
    double time;           // flow: integrated time; GD: steps * eta
    double s_max;          // flow: largest sharpness seen before the loss first reached the goal
    double seconds;
    ns_buf traj;           // trajectory.csv body (header included) if log_every > 0
} ns_dln_train_result;
void ns_dln_train_result_free(ns_dln_train_result *r);
// Trajectory columns (GD and flow): step,time,h,train_loss,l1,l2,sharpness
int ns_dln_train(const ns_dln_model *m, const ns_dln_data *t, const ns_dln_train_opts *o,
                 ns_dln_train_result *r);
// One GD step theta -= eta * grad at the evaluated point pt (grad: scratch of nparams).
void ns_dln_gd_step(const ns_dln_model *m, int d, double *theta, const ns_dln_point *pt, double eta,
                    double *grad);

// ---- reference interpolators (on {X beta = y}) ---------------------------------------
// min sum_i w_i |beta_i| s.t. X beta = y (w = NULL: all ones; nonneg: also beta >= 0).
// GLPK simplex on the split beta = p - q, p, q >= 0.
int ns_dln_min_weighted_l1(const ns_dln_data *t, const double *w, int nonneg, double *beta);
// min ||beta||_2 s.t. X beta = y (pseudo-inverse, LAPACKE_dgelsd). Fails if no interpolator.
int ns_dln_min_l2(const ns_dln_data *t, double *beta);
// min lambda_max(X diag(s) X^T) s.t. X beta = y, s >= |beta| (nonneg: s = beta >= 0).
// SDP with DSDP after eliminating X beta = y through a null-space basis; an LP when n = 1.
// *value = lambda_max(X diag(|beta|) X^T) at the returned beta.
int ns_dln_min_sharpness(const ns_dln_data *t, int nonneg, double *beta, double *value);
// Mirror-flow limits: beta_i = c_i phi((X^T nu)_i) with X beta = y, where phi = sinh (the
// hypentropy argmin of sum_i [beta_i asinh(beta_i/c_i) - sqrt(beta_i^2 + c_i^2) + c_i], which is
// Woodworth's Q_alpha for c = 2 alpha^2) or phi = exp (the entropy potential, beta >= 0).
// log_c holds log c_i (so tiny scales do not underflow). Damped Newton on the convex dual
// until ||X beta - y||_inf <= 1e-10 * max(1, ||y||_inf).
typedef enum { NS_MIRROR_SINH = 0, NS_MIRROR_EXP = 1 } ns_mirror_kind;
int ns_dln_mirror_solve(const ns_dln_data *t, ns_mirror_kind k, const double *log_c, double *beta);
// The gradient-flow prediction for model m from its initialization (Woodworth et al.):
// SHARED exp with c = alpha^2; PM (D = 2) sinh with c = 2 alpha^2; UV sinh with c = alpha^2.
// log_alpha_sq (may be NULL) replaces log alpha^2 per coordinate: the Even et al. prediction
// at alpha_inf (pass ns_dln_train_result.log_alpha_inf_sq). NS_EINVAL for PM with D > 2.
int ns_dln_flow_prediction(const ns_dln_model *m, const ns_dln_data *t, const double *log_alpha_sq, double *beta);
// min (beta - beta*)^T Sigma (beta - beta*) s.t. X beta = y (nonneg: beta >= 0), diagonal Sigma.
// Closed form without signs; semismooth Newton on the dual with beta >= 0.
int ns_dln_gen_opt(const ns_dln_data *t, const double *sigma_diag, const double *beta_star, int nonneg,
                   double *beta);
// (beta - beta*)^T Sigma (beta - beta*) + noise^2 (sigma_diag NULL = identity).
double ns_dln_gen_err(int d, const double *beta, const double *beta_star, const double *sigma_diag,
                      double noise);

// ---- tasks ---------------------------------------------------------------------------
typedef enum { NS_TASK_SINGLE = 0, NS_TASK_SPARSE = 1, NS_TASK_CSV = 2 } ns_dln_task_kind;
const char *ns_dln_task_name(ns_dln_task_kind k);
int ns_dln_task_parse(const char *s, ns_dln_task_kind *out);  // a name of ns_dln_task_name; else NS_EINVAL

// What the command line asked for (lists are "a,b,c" strings; NULL = not given).
typedef struct {
    ns_dln_task_kind kind;
    int n, d, s;           // sparse: sizes (0, 0, -1 = from the preset); single: d when x is drawn
    double noise;          // label noise sigma (also the sigma^2 of the generalization error)
    uint64_t seed;
    const char *preset;    // "woodworth" (100,1000,5), "even" (20,30,3)
    const char *x_list;    // single: the data point
    const char *beta_star_list;
    const char *sigma_list;  // diagonal of Sigma (length d, or one value for all)
    const char *x_csv, *y_csv, *beta_star_csv;
} ns_dln_task_opts;
void ns_dln_task_opts_default(ns_dln_task_opts *o);

typedef struct {
    ns_dln_task_kind kind;
    int n, d, s;
    double noise;
    uint64_t seed;
    double *X, *y;         // n x d, n
    double *beta_star;     // d, NULL if unknown (csv without a teacher)
    double *sigma_diag;    // d (ones for identity)
} ns_dln_task;
// Build the task. Option problems: NS_EINVAL; file problems: NS_EIO / NS_EFORMAT.
//  single: x from x_list, else d entries uniform in [0.5, 2] (distinct, positive);
//          beta* from beta_star_list, else d entries uniform in [0, 1]; y = <beta*, x> + noise*N(0,1).
//  sparse: ns_synth_sparse(n, d, s, noise, seed).
//  csv:    X from x_csv (n rows of d numbers), y from y_csv (n rows of one number).
int ns_dln_task_make(const ns_dln_task_opts *o, ns_dln_task *t);
void ns_dln_task_free(ns_dln_task *t);
static inline ns_dln_data ns_dln_task_data(const ns_dln_task *t) {
    ns_dln_data d = {t->n, t->d, t->X, t->y};
    return d;
}
// A numeric CSV file: rows of comma-separated finite numbers, all rows equally long
// (blank lines and lines starting with '#' are skipped). *rows x *cols, row-major.
int ns_dln_read_csv(const char *path, double **out, int *rows, int *cols);

// ---- the reference table -------------------------------------------------------------
typedef struct {
    const char *name;      // "min_l1", "min_l2", "min_sharpness", "hypentropy", "gen_opt"
    int ok;                // computed
    char note[160];        // why not, if !ok
    double *beta;          // d
    double l1, sharpness, gen_err, residual;  // residual = ||X beta - y||_inf
} ns_dln_ref;
typedef struct {
    ns_dln_ref ref[NS_REF_COUNT];
    double seconds;
} ns_dln_theory;
// All references for model m on the task. Restricted to beta >= 0 for SHARED (the
// realizable set). A reference that cannot be computed is left !ok with a note; only
// allocation failures are errors.
int ns_dln_theory_compute(const ns_dln_model *m, const ns_dln_task *t, ns_dln_theory *th);
// An empty table for d coordinates: every reference named, its beta zero, its values NaN,
// none ok (what _compute fills, or a reader of theory.json). NS_ENOMEM leaves th freed.
int ns_dln_theory_init(ns_dln_theory *th, int d);
void ns_dln_theory_free(ns_dln_theory *th);
double ns_dln_l1(int d, const double *x);
double ns_dln_l2(int d, const double *x);
double ns_dln_dist(int d, const double *a, const double *b);  // ||a - b||_2

// ---- runs and their files (src/dln/record.c; docs/OUTPUTS.md, "The DLN lab") ------------
// The hypentropy (gradient-flow) prediction of the task into a new array *hyp (d, caller
// frees), or *hyp = NULL where there is none (depth > 2, no interpolator). Only running out
// of memory is an error.
int ns_dln_hypentropy(const ns_dln_model *m, const ns_dln_task *task, double **hyp);

// What a run records of its final point (NaN where not measured: a diverged run has only
// its norms; sharp.method is then "none").
typedef struct {
    ns_dln_sharp sharp;
    double l1, l2;                  // ||beta||_1 and ||theta||_2 (all weights)
    double gen_err;                 // ns_dln_gen_err of the final beta
    double dist_hyp;                // ||beta - hypentropy prediction||_2
    double log_ainf_min, log_ainf_max;  // range of log alpha_inf^2 over the coordinates
    int have_even;                  // the Even et al. prediction at alpha_inf was computed:
    double even_l1, even_gen, even_dist, even_sharp;  //   its l1, gen error, distance, sharpness
} ns_dln_measures;

typedef struct {
    ns_dln_train_result train;
    ns_dln_measures measures;
    ns_buf summary;                 // the text of summary.json (ends with a newline)
} ns_dln_run_result;
// One run of o (GD at o->eta, or the flow) from the model's initialization: train, measure
// the final point (sharpness by ns_dln_sharpness_auto with dense_max), and write
// out_dir/trajectory.csv (if logged) then out_dir/summary.json last, atomically (out_dir
// must exist; NULL writes nothing). hyp: ns_dln_hypentropy's prediction or NULL. Divergence
// is a result. On error res holds nothing to free.
int ns_dln_run(const ns_dln_model *m, const ns_dln_task *task, const double *hyp, const ns_dln_train_opts *o,
               int dense_max, const char *out_dir, ns_dln_run_result *res);
void ns_dln_run_result_free(ns_dln_run_result *r);

// ns_dln_theory_compute, then theory.json (with the fingerprint of model and task) into
// *json if json is not NULL (caller frees; ends with a newline) and into out_dir/theory.json
// if out_dir is not NULL. On error th holds nothing to free.
int ns_dln_theory_run(const ns_dln_model *m, const ns_dln_task *t, const char *out_dir, ns_dln_theory *th,
                      ns_buf *json);
// theory.json at path into th if it was made for this very problem: 1 loaded (free th), 0
// absent or unreadable, -1 made for another problem (another task, model or alpha), -2 out
// of memory.
int ns_dln_theory_load(const char *path, const ns_dln_model *m, const ns_dln_task *t, ns_dln_theory *th);

// ---- the learning-rate sweep (`normsharp dln sweep`) ---------------------------------------
// The run directories out_dir/runs/lr_<eta> (%g) of the grid into *dirs (n strings; free with
// ns_dln_sweep_layout_free). NS_EINVAL if two rates share a directory.
int ns_dln_sweep_layout(const char *out_dir, const double *etas, int n, char ***dirs);
void ns_dln_sweep_layout_free(char **dirs, int n);

typedef struct {
    const double *etas;             // the grid, n rates in the order of the CSV
    int n;
    char **run_dirs;                // from ns_dln_sweep_layout
    const char *out_dir;            // exists and is writable
    ns_dln_train_opts train;        // every run's options; eta and progress are set per run
    int dense_max;
    int jobs;                       // parallel worker processes
    int quiet;                      // no progress lines
} ns_dln_sweep_opts;

typedef struct {
    int ran;                        // the runner ran and this process reports (MPI rank 0)
    int done, skipped, failed;      // runs: run now, finished before (a resume), failed
    double seconds;
    int best;                       // index of the lowest generalization error among the
    int n_ok, interior;             //   non-diverged runs (-1: none); how many; not an end
    double best_eta, best_gen;
    double gen_l1, gen_sharp;       // the min-l1 and min-sharpness interpolators' gen errors
    char csv_path[4200], theory_path[4200];  // out_dir/dln.csv, out_dir/theory.json
} ns_dln_sweep_result;
// GD at every rate of the grid through ns_sweep_run (resumable; finished runs are skipped),
// writing out_dir/theory.json (computed in a process of its own while the runs go on, or
// reused when it was made for this very problem), the runs' directories and out_dir/dln.csv
// with each run's distance to the min-l1 and min-sharpness interpolators; then the verdict.
// NS_EINVAL if out_dir holds another problem's theory.json. A failed run makes the sweep
// fail, but res is filled (ran = 1) for whatever finished.
int ns_dln_sweep(const ns_dln_model *m, const ns_dln_task *task, const ns_dln_sweep_opts *o, ns_dln_sweep_result *res);
// The sweep's result as JSON into *out (`dln sweep --json`, docs/OUTPUTS.md): "csv",
// "theory", "runs" (the grid's size), "done", "skipped", "failed", "seconds", "best" ({"eta",
// "gen_err", "index", "interior"}, or null when no run converged), "min_l1_gen_err",
// "min_sharpness_gen_err", "below_both" (the best eta's gen error is below both), then a
// newline. The caller frees *out (ns_buf_free), also on error: NS_ENOMEM.
int ns_dln_sweep_result_json(const ns_dln_sweep_result *r, int runs, ns_buf *out);
#endif
