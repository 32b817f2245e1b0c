// train/record.h — what gd.c and flow.c share: trajectory rows, the summary's common
// blocks, the divergence rule and the measurement of a point. Internal to src/train.
#ifndef NORMSHARP_TRAIN_RECORD_H
#define NORMSHARP_TRAIN_RECORD_H
#include "normsharp/train.h"

// ---- trajectory.csv: kept in memory, rewritten atomically now and then and at the end ----
typedef enum { TRAJ_GD, TRAJ_FLOW } traj_kind;
typedef struct {
    traj_kind kind;
    char path[4200];
    ns_buf text;
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
} traj_row;

int traj_init(traj_writer *w, traj_kind kind, const char *dir, double flush_seconds);
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
// Loss/accuracy/norms (and test loss/error if test_every applies) for a trajectory row.
void row_norms(ns_model *m, traj_row *r);
int row_test(ns_model *m, const ns_batch *test, traj_row *r);
// Trajectory eigenvalue estimate, warm-started from and updating *warm (length n, owned).
int row_eig(ns_model *m, const ns_batch *train, const ns_measure_opts *o, double **warm, traj_row *r);
// The full measurement at the current theta; a diverged point gets no spectrum or trace.
int measure_point(ns_model *m, const ns_batch *train, const ns_batch *test, const ns_measure_opts *o,
                  const double *warm, int diverged, ns_measurement *x);
int save_weights(const ns_model *m, const char *dir, const ns_data_opts *data);
#endif
