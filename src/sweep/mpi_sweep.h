// sweep/mpi_sweep.h — the seam between the sweep runner (runner.c) and its MPI dispatcher
// (mpi.c). Private to src/sweep. In a plain build, and in an MPI build started without
// mpirun or with one rank, ns_sweep_ranks() is 1 and the runner never calls the rest.
#ifndef NORMSHARP_MPI_SWEEP_H
#define NORMSHARP_MPI_SWEEP_H
#include "normsharp/sweep.h"

// The whole of run i (runner.c's execute_run): prepare run_dir, call s->run, check summary.json.
typedef int (*ns_sweep_exec_fn)(const ns_sweep *s, int i, ns_progress *p);
// The runner's sweep on this process: lock, find the pending runs, dispatch, write the CSV.
typedef int (*ns_sweep_here_fn)(const ns_sweep *s, ns_sweep_stats *stats);
// Account for a run that ended (runner.c's run_ended on its private tally).
typedef void (*ns_sweep_ended_fn)(void *tally, int i, int code, const char *why, double seconds);

// This process's rank and the number of ranks (0 and 1 unless ns_sweep_mpi_start
// initialized MPI under mpirun). Declared for the CLI in normsharp/sweep.h as well.
int ns_sweep_rank(void);
int ns_sweep_ranks(void);

// A sweep over several ranks; every rank calls it with the same sweep. Rank 0 runs `here`
// (whose dispatcher is ns_sweep_mpi_deal) and then tells every other rank the result;
// the other ranks carry out the runs rank 0 deals them (through `exec`) until then.
// Every rank returns rank 0's result, stats and error message.
int ns_sweep_mpi_run(const ns_sweep *s, ns_sweep_stats *stats, ns_sweep_here_fn here, ns_sweep_exec_fn exec);

// Rank 0's dispatcher: deals the pending runs, one at a time on request, to the other
// ranks and to a worker thread of its own; reports each end through `ended`.
void ns_sweep_mpi_deal(const ns_sweep *s, const int *pending, int npending, ns_sweep_exec_fn exec,
                       ns_sweep_ended_fn ended, void *tally);
#endif
