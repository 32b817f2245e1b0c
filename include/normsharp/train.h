// normsharp/train.h — gradient descent at one learning rate (docs/CONVENTIONS.md, protocol) and gradient flow
// by RK4 (docs/CONVENTIONS.md, measurements, the critical learning rate), each from the model's current theta and
// each writing a run directory: trajectory.csv, then summary.json last (docs/OUTPUTS.md).
#ifndef NORMSHARP_TRAIN_H
#define NORMSHARP_TRAIN_H
#include "normsharp/measure.h"
#include "normsharp/progress.h"

// ---- gradient descent -------------------------------------------------------------------
// theta_{t+1} = theta_t - eta * v_{t+1}, v_{t+1} = mu v_t + g_t (heavy ball, PyTorch's
// convention; mu = 0 is plain GD); Nesterov: theta_{t+1} = theta_t - eta (g_t + mu v_{t+1}).
// g_t is the full-batch gradient, or with batch B a minibatch gradient over a seeded
// reshuffle of the training set each epoch (NS_STREAM_BATCH).
typedef struct {
    double lr;              // eta > 0
    double momentum;        // mu in [0, 1)
    int nesterov;
    long batch;             // minibatch size; 0 = full batch
    double weight_decay;    // lambda >= 0: GD on L + (lambda/2)||theta||^2 (g_t gets + lambda theta_t),
                            // and every curvature is of that objective; loss goal, divergence and
                            // the recorded train_loss are of L alone ("objective" records the sum)
    uint64_t seed;          // minibatch order and Lanczos/Hutchinson starts
    double loss_goal;       // status "converged" when train loss <= loss_goal (NaN: no goal)
    double acc_goal;        // status "acc_goal" when train accuracy >= acc_goal (NaN: no goal)
    long max_steps;         // status "max_steps" after this many updates
    double diverge_factor;  // status "diverged" when loss is not finite or > factor * initial loss
    long log_every;         // trajectory row every this many steps (0: final row only)
    long test_every;        // test loss/error on rows whose step is a multiple (0: never)
    long eig_every;         // lambda_max and sharpness on such rows, warm-started (0: never)
    int avg_last;           // m > 0: also measure at the mean of the last m iterates
    long decay_steps;       // > 0: also measure after this many steps at eta * decay_factor
    double decay_factor;
    ns_measure_opts final;  // the final measurements (top-k, trace; views, whose density goes to
                            // out_dir/density.csv)
    ns_measure_opts eig;    // the trajectory's eigenvalue estimates (k = 1; views as extra columns)
    int save_weights;       // write out_dir/weights/ (ns_weights_save)
    const char *weights_from;  // recorded in the config when theta_0 came from --weights
    double flush_seconds;   // trajectory.csv is rewritten (atomically) at most this often
} ns_train_opts;
void ns_train_opts_default(ns_train_opts *o);

typedef struct {
    ns_status status;       // NS_CONVERGED, NS_ACC_GOAL, NS_MAX_STEPS or NS_DIVERGED
    long steps;             // updates taken
    long diverged_at;       // step at which divergence was detected, else -1
    double final_loss, final_sharpness, final_l1, final_test_err;
    double seconds;
    ns_buf summary;         // the text of summary.json
} ns_train_result;
void ns_train_result_free(ns_train_result *r);

// Trains the model from its current theta (left at the final iterate), writes out_dir
// (which must exist). `data` names the dataset conventions for the config. p may be NULL.
// Divergence is a result (status "diverged", return 0), not an error.
int ns_train_run(ns_model *m, const ns_dataset *ds, const ns_data_opts *data, const ns_train_opts *o,
                 const char *out_dir, ns_progress *p, ns_train_result *res);
// The summary's "config" object exactly as ns_train_run writes it (a sweep compares it
// with a finished run's, so a resumed sweep never mixes runs made with other options).
void ns_train_config_json(ns_json *j, const ns_model *m, const ns_dataset *ds, const ns_data_opts *data,
                          const ns_train_opts *o);

// ---- gradient flow ----------------------------------------------------------------------
// theta' = -grad L(theta), integrated by classical RK4 at step h = min(c / S(theta), h_max),
// S = max|lambda| by Lanczos (warm-started) at steps 0 and 1, then when S, changing at the
// relative rate r per step of its last two estimates, may have drifted by 10 %: floor(0.1/r)
// steps later, at least 1 and at most eig_every; and after any step that raised the loss.
// s_GF is the largest S measured until the loss first reaches loss_goal; eta_c = 2 / s_GF.
typedef struct {
    double rk_c;            // c (default 0.5)
    double h_max;           // largest step (default 1)
    long eig_every;         // the most steps between two estimates of S (default 5)
    double loss_goal;       // status "converged" when loss <= loss_goal (NaN: none)
    double max_time;        // status "max_time" at this flow time; the last step lands on it
    long max_steps;
    double diverge_factor;
    long log_every, test_every;
    double weight_decay;    // the flow of L + (lambda/2)||theta||^2, as in ns_train_opts
    uint64_t seed;
    ns_measure_opts final, eig;
    int save_weights;
    const char *weights_from;
    double flush_seconds;
} ns_flow_opts;
void ns_flow_opts_default(ns_flow_opts *o);

typedef struct {
    ns_status status;       // NS_CONVERGED, NS_MAX_TIME, NS_MAX_STEPS or NS_DIVERGED
    long steps;
    double time;            // flow time reached
    double s_gf, eta_c;     // eta_c = 2 / s_gf
    double final_loss;
    double seconds;
    ns_buf summary;
} ns_flow_result;
void ns_flow_result_free(ns_flow_result *r);

int ns_flow_run(ns_model *m, const ns_dataset *ds, const ns_data_opts *data, const ns_flow_opts *o,
                const char *out_dir, ns_progress *p, ns_flow_result *res);
void ns_flow_config_json(ns_json *j, const ns_model *m, const ns_dataset *ds, const ns_data_opts *data,
                         const ns_flow_opts *o);

// 1 if every key of `want` (a "config" object) has an equal value in the finished run's
// summary at `summary_path`; 0 with the first difference in `why` otherwise. Numbers
// compare exactly (null == null), strings and booleans by value.
int ns_config_matches(const char *summary_path, const ns_jval *want, char *why, size_t cap);
#endif
