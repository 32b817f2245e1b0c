// train/record.h — what gd.c and flow.c share: trajectory rows, the summary's common
// blocks, the divergence rule and the measurement of a point. Internal to src/train.
#ifndef NORMSHARP_TRAIN_RECORD_H
#define NORMSHARP_TRAIN_RECORD_H
#include "normsharp/train.h"

// ---- trajectory.csv: kept in memory, rewritten atomically now and then and at the end ----
typedef enum { TRAJ_GD, TRAJ_FLOW } traj_kind;
// Opt-in columns after the usual ones: objective (weight decay > 0), adaptive_sharpness,
// and one layer_sharpness:<tensor> per tensor of m (per_layer). Rows whose views carry a
// density also go to density_trajectory.csv (step,lambda,density).
typedef struct {
    int objective, adaptive, per_layer;
    const ns_model *m;
} traj_extra;

typedef struct {
    traj_kind kind;
    traj_extra extra;
    char path[4200];
    ns_buf text;
    char density_path[4200];  // density_trajectory.csv, written when a row carries a density
    ns_buf density;
    double flush_seconds, next_flush;
} traj_writer;

typedef struct {
    long step;
    double time;                   // GD: wall seconds since the start; flow: flow time
    double h;                      // flow step (flow only)
    double train_loss, train_acc, l1, l2;
    int has_test;
    double test_loss, test_err;
    int has_eig;
    double lambda_max, sharpness;
    double step_seconds;           // GD only; NaN when not timed
    double objective;              // train_loss + (wd/2) l2^2 (with weight decay)
    const ns_view_result *views;   // borrowed until appended; NULL: no views on this row
} traj_row;

// extra may be NULL (no opt-in columns).
int traj_init(traj_writer *w, traj_kind kind, const char *dir, double flush_seconds, const traj_extra *extra);
// The opt-in columns a run's options ask for.
traj_extra traj_extra_of(const ns_model *m, double weight_decay, const ns_measure_opts *rows);
// Appends a row; rewrites the file if flush_seconds have passed (force: always).
int traj_append(traj_writer *w, const traj_row *r);
int traj_flush(traj_writer *w);
void traj_free(traj_writer *w);
// The last row, from the final measurement (row holds step and time), then the file.
int traj_finish(traj_writer *w, traj_row *row, const ns_measurement *fin);

// ---- the summary ------------------------------------------------------------------------
// Opens the summary object: program, version, kind.
// Inside "config": arch, param, init_scale, seed, dataset, n, n_test, classes, loss,
// precision, weights_from.
void config_model_data(ns_json *j, const ns_model *m, const ns_dataset *ds, const ns_data_opts *data,
                       const char *weights_from);
// The config keys of weight decay and of the views of `final`, only those that are on
// (weight_decay, adaptive_eps, per_layer, density_probes, density_steps, density_sigma), so
// a run without them has the config it always had and a resumed sweep never mixes them.
void config_views(ns_json *j, double weight_decay, const ns_measure_opts *final);
// DIR/density.csv from x's SLQ density, if it has one (docs/OUTPUTS.md).
int write_density(const char *dir, const ns_measurement *x);
// Closes the summary object opened by ns_json_doc and writes DIR/summary.json.
int summary_finish(ns_json *j, ns_buf *b, const char *dir);

// ---- shared rules -----------------------------------------------------------------------
// The measurements of a run by default. Final: the top 5 eigenvalues (with multiplicity)
// by Lanczos, up to 300 HVPs (on fc-tanh-200-200 / 5000 Fashion-MNIST images the top 5 at
// tol 1e-4 and the restart that checks them for further copies need more than 100), and a
// 10-probe trace. Trajectory: the plain defaults (k = 1).
void run_measure_defaults(ns_measure_opts *final, ns_measure_opts *eig);
// 1 if step t is a multiple of every (every <= 0: never).
int is_due(long t, long every);
// Divergence: a loss that is not finite, or above factor * the initial loss.
int loss_diverged(double loss, double loss0, double factor);
// Norms (and, with weight decay wd > 0, the objective) for a trajectory row.
void row_norms(ns_model *m, double wd, traj_row *r);
// grad := the gradient of L + (wd/2)||theta||^2 over b; loss and acc are of L alone.
int objective_grad(ns_model *m, const ns_batch *b, double wd, real *grad, double *loss, double *acc);
// The measurement options of a run with weight decay wd: o with o.weight_decay = wd.
ns_measure_opts with_weight_decay(const ns_measure_opts *o, double wd);
// The test loss and error into r, in evaluation mode (batch norm with the statistics of
// `train`: ns_model_eval_loss). Nothing without a test set.
int row_test(ns_model *m, const ns_batch *train, const ns_batch *test, traj_row *r);
// Trajectory eigenvalue estimate, warm-started from and updating *warm (length n, owned).
// With views (may be NULL) and o->views asking for some, they are measured into *views
// (freed first) and the row points at them.
int row_eig(ns_model *m, const ns_batch *train, const ns_measure_opts *o, double **warm, ns_view_result *views,
            traj_row *r);
// The full measurement at the current theta; a diverged point gets no spectrum or trace.
int measure_point(ns_model *m, const ns_batch *train, const ns_batch *test, const ns_measure_opts *o,
                  const double *warm, int diverged, ns_measurement *x);
int save_weights(const ns_model *m, const char *dir, const ns_data_opts *data);
#endif
