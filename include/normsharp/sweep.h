// normsharp/sweep.h — the shared sweep runner used by `normsharp sweep` and
// `normsharp dln sweep`: runs in parallel processes (--jobs), resume, progress, sweep.csv.
#ifndef NORMSHARP_SWEEP_H
#define NORMSHARP_SWEEP_H
#include "normsharp/common.h"
#include "normsharp/progress.h"

// Run i: do the work and write everything into run_dir (which the runner creates).
// The run must write run_dir/summary.json LAST, atomically: its presence marks the run
// finished, so a rerun of the sweep skips it. Return 0, or an NS_E* code on a real error
// (divergence is a result, not an error).
typedef int (*ns_run_fn)(void *ctx, int i, const char *run_dir, ns_progress *p);
// Append the CSV row for finished run i (no newline) read from run_dir's files.
typedef int (*ns_row_fn)(void *ctx, int i, const char *run_dir, ns_buf *line);
// Short human label of run i for progress lines, e.g. "lr=0.01 seed=0".
typedef void (*ns_label_fn)(void *ctx, int i, char *out, size_t cap);

typedef struct {
    int n_runs;
    char **run_dirs;        // n_runs directories
    ns_run_fn run;
    ns_row_fn row;
    ns_label_fn label;
    ns_label_fn short_label; // optional shorter label for the 80-column progress line
    const char *name;       // what the progress line calls the runs: "sweep" (default), "flows"
    void *ctx;
    int jobs;               // parallel worker processes (>= 1)
    const char *csv_path;   // sweep.csv / dln.csv, written atomically at the end
    const char *csv_header; // header line, no newline
    int quiet;              // no progress output (e.g. --json)
} ns_sweep;

typedef struct {
    int done, skipped, failed;
    double seconds;
} ns_sweep_stats;

// Runs every unfinished run, then writes the CSV with one row per finished run, in run
// order. Results do not depend on `jobs`. Returns 0 if every run finished, else an error.
// Under mpirun with several ranks (make MPI=1, docs/MPI.md) it is collective: every rank
// calls it with the same runs; rank 0 deals them to all ranks and alone writes the CSV and
// the progress; every rank returns rank 0's result, stats and message.
int ns_sweep_run(const ns_sweep *s, ns_sweep_stats *stats);

// ---- MPI (make MPI=1; in a plain build these do nothing, rank 0 of 1) -------------------
// First thing in main: MPI_Init_thread. Returns 0 or an error.
int ns_sweep_mpi_start(int *argc, char ***argv);
// Last thing in main, with the exit status; returns it after MPI_Finalize. A rank that
// fails (status != 0) while other ranks go on would leave them waiting forever, so if
// they do not all arrive within a minute it aborts the whole MPI job (MPI_Abort).
int ns_sweep_mpi_finish(int status);
// This process's rank and the number of ranks (0 and 1 without MPI or outside mpirun).
// Only rank 0 prints results and writes files shared by the whole sweep.
int ns_sweep_rank(void);
int ns_sweep_ranks(void);
#endif
