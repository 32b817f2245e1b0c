// normsharp/measure.h — measure a network at its current theta (docs/CONVENTIONS.md, measurements): training and
// test loss/accuracy, l1/l2 norms (total and per tensor), the top of the Hessian
// spectrum (Lanczos with a warm start, or power iteration) and the Hutchinson trace.
// One code path serves `normsharp sharpness`, the "final" blocks of `train`/`flow`
// summaries and the sweep, so every number is computed and named the same way.
#ifndef NORMSHARP_MEASURE_H
#define NORMSHARP_MEASURE_H
#include <stdio.h>
#include "normsharp/curvature.h"
#include "normsharp/model.h"
#include "normsharp/views.h"

// ---- the training-loss Hessian as an operator on double vectors ----------------------
// Wraps ns_model_hvp (network precision) as an ns_matvec_fn (double), converting both ways.
typedef struct {
    ns_model *m;
    const ns_batch *b;
    size_t n;          // parameters
    real *v, *hv;      // scratch, length n
    double weight_decay;  // lambda >= 0: the operator is H + lambda I (default 0)
} ns_hessian_op;
int ns_hessian_op_init(ns_hessian_op *op, ns_model *m, const ns_batch *b);
void ns_hessian_op_free(ns_hessian_op *op);
int ns_hessian_matvec(void *op, const double *v, double *out, size_t n);  // ctx = ns_hessian_op*

// The error rate of an accuracy acc = correct / n over n examples: (n - correct) / n,
// exactly the double nearest that fraction (1 - acc is not: 1 - 7857/10000 prints as
// 0.21430000000000005, while 2143/10000 is 0.2143).
static inline double ns_error_rate(double acc, long n) {
    if (!(n > 0) || acc != acc) return 1 - acc;
    double correct = acc * (double)n;
    correct = (double)(long long)(correct + 0.5);  // the count acc was made from
    return ((double)n - correct) / (double)n;
}

// Batch views of a prepared dataset (no copies).
ns_batch ns_batch_train(const ns_dataset *ds, ns_loss_kind loss);
ns_batch ns_batch_test(const ns_dataset *ds, ns_loss_kind loss);

// l1 = sum |theta_j|, l2 = sqrt(sum theta_j^2), in double; per-tensor arrays (length
// ns_model_ntensors) may be NULL.
void ns_model_norms(ns_model *m, double *l1, double *l2, double *l1_tensor, double *l2_tensor);

// ---- opt-in curvature views (views.h; computed in src/curvature/views_measure.c) ----------
typedef struct {
    int adaptive;           // adaptive sharpness: spectrum of D H D, D = diag(|theta| + adaptive_eps)
    double adaptive_eps;    // default NS_ADAPTIVE_EPS
    int per_layer;          // top eigenvalue of every tensor's diagonal Hessian block (and its
                            // trace, with trace_probes > 0: exact when the block has at most that
                            // many coordinates, else Hutchinson with that many probes)
    int density_probes;     // SLQ probes; 0 = no spectral density
    int density_steps;      // Lanczos steps per probe (default 80)
    double density_sigma;   // Gaussian bandwidth; 0 (default) = 1% of max |node|
} ns_view_opts;
// eps keeps a zero weight's direction in D H D; 1e-6 is far below the weights of a trained
// network, so the rescaling invariance holds to about 1e-6 / |theta_j| (exactly at eps = 0).
#define NS_ADAPTIVE_EPS 1e-6

typedef struct {
    int have_adaptive;
    double adaptive_eps;
    ns_eig_result adaptive;         // of D H D; .sharpness is the adaptive sharpness
    int nlayers;                    // = ns_model_ntensors when have_layers
    int have_layers;
    double *layer_lambda_max, *layer_sharpness, *layer_resid;  // per tensor
    int *layer_iters, *layer_converged;
    double *layer_trace;            // NaN without trace probes
    int *layer_trace_exact;
    int have_density;
    ns_slq_result slq;
    double density_sigma;           // the bandwidth used
    double seconds_adaptive, seconds_layers, seconds_density;
} ns_view_result;
void ns_view_result_free(ns_view_result *v);
// Validates the view options (one sentence naming the option).
int ns_view_opts_check(const ns_view_opts *v);

// ---- options -------------------------------------------------------------------------
typedef enum { NS_EIG_NONE = 0, NS_EIG_LANCZOS = 1, NS_EIG_POWER = 2 } ns_eig_method;
int ns_eig_method_parse(const char *s, ns_eig_method *out);   // "lanczos", "power", "none"
const char *ns_eig_method_name(ns_eig_method m);

typedef struct {
    ns_eig_method method;   // default NS_EIG_LANCZOS
    ns_lanczos_opts eig;    // k (default 1), tol (1e-4), max_iter (100), seed (0), warm (NULL)
    int trace_probes;       // Hutchinson probes; 0 (default) = no trace
    uint64_t trace_seed;    // default 0
    // Weight decay lambda >= 0 (default 0): every curvature above and below is of the
    // objective L + (lambda/2) ||theta||^2, whose Hessian is H + lambda I.
    double weight_decay;
    ns_view_opts views;     // opt-in views beyond the paper (all off by default)
} ns_measure_opts;
void ns_measure_opts_default(ns_measure_opts *o);
// The views o->views asks for, of the Hessian of L + (o->weight_decay/2)||theta||^2 over
// `train`, with the Lanczos options o->eig (k = 1, no warm start). Nothing asked: v zeroed.
int ns_measure_views(ns_model *m, const ns_batch *train, const ns_measure_opts *o, ns_view_result *v);
// The command line's defaults for a final measurement, the same in every command
// (sharpness, train, flow, sweep): --top-k 5, --eig-iters 300, --eig-tol 1e-4, --trace-probes 10.
#define NS_TOP_K_DEFAULT 5
#define NS_EIG_ITERS_DEFAULT 300
#define NS_TRACE_PROBES_DEFAULT 10

// Only the spectrum (e.g. for trajectory rows every eig_every steps). Pass the previous
// r->vec_max as o->eig.warm to warm-start. r is freed with ns_eig_result_free.
int ns_measure_eig(ns_model *m, const ns_batch *train, const ns_measure_opts *o, ns_eig_result *r);

// ---- the full measurement --------------------------------------------------------------
typedef struct {
    double train_loss, train_acc, train_err;
    double test_loss, test_err;      // NaN without a test batch; evaluation mode (batch norm
                                     // with the training batch's statistics: ns_model_eval_loss)
    double l1, l2;
    int ntensors;
    char (*names)[32];               // tensor names, for the per-tensor norms
    double *l1_tensor, *l2_tensor;
    int have_eig;                    // 0 when not asked for, or the loss is not finite
    ns_eig_method method;
    ns_eig_result eig;
    double trace, trace_stderr;      // NaN when not measured
    int trace_probes;
    double seconds_loss, seconds_eig, seconds_trace;
    double weight_decay;             // lambda of the measured objective
    double objective;                // train_loss + (lambda/2) l2^2; NaN when lambda = 0
    ns_view_result views;            // what o->views asked for
} ns_measurement;

// Measures everything o asks for at the model's current theta. `test` may be NULL.
// If the training loss is not finite (a diverged run) the spectrum and trace are skipped
// (reported as not measured) and the call still succeeds.
int ns_measure(ns_model *m, const ns_batch *train, const ns_batch *test, const ns_measure_opts *o,
               ns_measurement *out);
void ns_measurement_free(ns_measurement *x);

// Writes x as the JSON object `key` with the key names of docs/OUTPUTS.md's "final" block
// (train_loss, train_acc, train_err, test_loss, test_err, l1, l2, lambda_max, sharpness,
// top_k, top_k_resid, trace, trace_stderr, eig_iters, eig_converged, l1_per_tensor,
// l2_per_tensor) plus lambda_min, lambda_min_resid and lambda_min_converged. Not measured
// -> null.
void ns_measurement_json(ns_json *j, const char *key, const ns_measurement *x);
// `normsharp sharpness --json` into *out (docs/OUTPUTS.md): the weights folder, the model
// m (arch, nparams, precision), the data options, the eigensolver's options mo, x as
// "final", and the timing: load_seconds (weights and data), x's own, and `seconds` (the
// whole command); then a newline. The caller frees *out (ns_buf_free), also on error:
// NS_ENOMEM.
int ns_measurement_doc_json(const char *weights, const ns_model *m, const ns_data_opts *data, const ns_measure_opts *mo,
                            const ns_measurement *x, double load_seconds, double seconds, ns_buf *out);
// Human-readable report, one quantity per line.
void ns_measurement_print(FILE *f, const ns_measurement *x);
#endif
