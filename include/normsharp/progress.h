// normsharp/progress.h — progress of a run: what GD and the flows (network and DLN) call
// from time to time, and the line a single run draws on a terminal. A sweep's workers
// report through the same calls (the runner, normsharp/sweep.h, owns those handles), so
// training code needs only this header, not the process pool or MPI.
#ifndef NORMSHARP_PROGRESS_H
#define NORMSHARP_PROGRESS_H
#include <stddef.h>

typedef struct ns_progress ns_progress;
// Where a run is, for progress lines. NaN (or -1 for counts) marks what a run does not have.
typedef struct {
    long step;          // GD update or RK4 step
    long max_steps;     // the step limit (-1: none), for the ETA
    double time;        // gradient-flow time t (NaN for GD)
    double max_time;    // the flow's time limit (INFINITY or NaN: none), for the ETA
    double loss;        // training loss now
    double loss_goal;   // the loss goal (NaN: none)
    double sharpness;   // the latest measured sharpness S (NaN: not measured yet)
    double eta_seconds; // filled in by ns_progress_report: estimated seconds left (-1: unknown)
} ns_progress_info;
// Called by a run from time to time; cheap (throttled inside); p may be NULL.
void ns_progress_report(ns_progress *p, const ns_progress_info *x);
// The same with only a step and a loss (the DLN lab).
void ns_progress_step(ns_progress *p, long step, double loss);
// Progress of a single run outside a sweep (`normsharp train`, `flow`) on stderr: on a
// terminal an updating line "LABEL | step N | loss X > goal G | S s | ETA e"; otherwise the
// same as a plain line every PLAIN_SECONDS (30 s). NULL if the allocation fails
// (ns_progress_report accepts NULL). ns_progress_console_end clears the line and frees p.
ns_progress *ns_progress_console(const char *label);
void ns_progress_console_end(ns_progress *p);
// Text of one run's progress: "step N loss X>G S s" (GD) or "t T loss X>G S s" (flow),
// each part only when known; `brief` drops the words (sweep lines at 80 columns).
void ns_progress_text(char *out, size_t cap, const ns_progress_info *x, int brief);
#endif
