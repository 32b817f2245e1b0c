// train_cli.h — the options that `train`, `flow` and `sweep` share (defined in
// cmd_train.c), so the three commands spell and check them the same way.
#ifndef NORMSHARP_TRAIN_CLI_H
#define NORMSHARP_TRAIN_CLI_H
#include "cli.h"
#include "normsharp/train.h"

typedef struct {
    // the model: theta_0 from (arch, param, init_scale, seed) or from --weights
    const char *arch, *param, *weights;
    double init_scale;
    uint64_t seed;
    // the data
    ns_data_opts data;
    // measurements
    int top_k, trace_probes, eig_iters;
    double eig_tol;
    double track_tol;       // Lanczos tolerance of the tracked sharpness (rows, flow step)
    double weight_decay;    // --weight-decay (train, sweep)
    ns_view_opts views;     // --adaptive --per-layer --density-* (train, sweep)
    // output and machine
    const char *out;
    int json, threads, save_weights;
    long hvp_cache_mb;      // --hvp-cache-mb, -1 if not given
} train_cli;

void train_cli_init(train_cli *t);
// --arch --param --init-scale --weights (and --seed if with_seed).
void train_cli_add_model(ns_cli *c, train_cli *t, int with_seed);
// --top-k --trace-probes --eig-tol --eig-iters --track-tol --hvp-cache-mb.
void train_cli_add_measure(ns_cli *c, train_cli *t);
// --weight-decay --adaptive --adaptive-eps --per-layer --density-probes --density-steps
// --density-sigma (train, sweep and, measuring saved weights, sharpness).
void train_cli_add_views(ns_cli *c, double *weight_decay, ns_view_opts *v);
// After parsing: 0, or a usage error (2) for a view option that would be ignored.
int train_cli_check_views(const ns_cli *c);
// --out --json --save-weights (and --threads if with_threads: sweeps fix 1 per run).
void train_cli_add_output(ns_cli *c, train_cli *t, int with_threads);
// Everything about stopping and recording GD (not --lr): --momentum ... --decay-factor.
void train_cli_add_gd(ns_cli *c, ns_train_opts *o);
// Validates the shared options after parsing; returns 0 or an exit status (2) after
// printing the message. Creates --out (an unwritable one is a usage error). With --weights:
// refuses the options that draw theta_0 (--arch --param --init-scale --seed --seeds), sets
// t->seed to the weights' seed and the data options not given to those in model.json.
int train_cli_check(train_cli *t, const ns_cli *c);
// --out must be empty (train, flow: one run's files only); returns 0 or 2 after a message.
int train_cli_fresh_out(const train_cli *t);
// What a run (GD or flow) from theta_0 of `seed` takes from the shared options: its seed,
// --save-weights, --weights, and the measurements (final: top-k and trace; trajectory: k = 1;
// the views in both).
void train_cli_run_opts(const train_cli *t, uint64_t seed, uint64_t *run_seed, int *save_weights,
                        const char **weights_from, ns_measure_opts *final, ns_measure_opts *eig);
// theta_0 for `seed`: built from the architecture, or loaded from --weights; checked
// against the data's input shape and classes.
int train_cli_model(const train_cli *t, const ns_dataset *ds, uint64_t seed, ns_model **out);
#endif
