// normsharp/protocol.h — the learning-rate protocol of `normsharp sweep`: for every seed,
// theta_0 once; optionally the gradient flow from it (s_GF, predicting eta_c = 2/s_GF); then
// GD from that same theta_0 at every learning rate of a grid, or at K rates around each
// seed's eta_c. Run directories ROOT/seed_<s>/flow and ROOT/seed_<s>/lr_<eta>, ROOT/flow.csv
// and ROOT/sweep.csv (docs/OUTPUTS.md), through the sweep runner (normsharp/sweep.h):
// parallel, resumable, the same for any --jobs.
#ifndef NORMSHARP_PROTOCOL_H
#define NORMSHARP_PROTOCOL_H
#include "normsharp/train.h"

typedef struct {
    const ns_dataset *ds;
    const ns_data_opts *data;   // the dataset conventions, for the runs' config
    int nseeds;
    const uint64_t *seeds;
    ns_model **models;          // theta_0 of each seed; every run starts from a copy of it
    ns_train_opts gd;           // every GD run's options; lr and the seeds are set per run
                                // (gd.final.views also chooses sweep.csv's extra columns)
    ns_flow_opts flow;          // every flow's options (with run_flow); the seeds set per run
    int run_flow;
    const double *grid;         // ngrid rates (sorted per seed), or with around = K > 0,
    int ngrid, around;          //   K log-spaced rates from eta_c/span_lo to eta_c*span_hi
    double span_lo, span_hi;    //   (ns_lr_grid_around; needs run_flow)
    const char *root;           // OUT/<dataset>/<arch>/<loss>
    int jobs, quiet;            // worker processes; no progress lines
} ns_protocol_opts;

// One GD run in the closing table (read from its summary.json; status "missing" if none).
typedef struct {
    double eta, sharpness, l1, test_err;
    char status[16];
    int finished;
} ns_protocol_view;

typedef struct {
    int nseeds, per;            // per: GD runs per seed
    double *s_gf, *eta_c;       // per seed, from the flow (NaN without it)
    int filled;                 // the table below is filled (MPI rank 0, once GD ran)
    ns_protocol_view *views;    // nseeds x per, seed-major, eta ascending
    double *transition;         // per seed: the observed transition (ns_eos_transition), NaN if none
} ns_protocol_result;

// Runs the protocol. NS_EINVAL if a finished run in ROOT was made with other options (a
// resume never mixes runs), or if two rates share a directory; NS_EIO if a flow gave no
// usable eta_c for --lr-around. A failed run fails the protocol, but res is still filled
// for the runs that finished. Free res with ns_protocol_result_free in every case.
int ns_protocol_run(const ns_protocol_opts *o, ns_protocol_result *res);
void ns_protocol_result_free(ns_protocol_result *r);
// The closing table as JSON into *out (`sweep --json`, docs/OUTPUTS.md): {"dir": root,
// "seeds": [{"seed", "s_gf", "eta_c", "transition_eta", "runs": [{"eta", "status",
// "sharpness", "two_over_eta", "l1", "test_err"}]}]} and a newline; NaN is null. seeds has
// r->nseeds entries (the protocol's). The caller frees *out (ns_buf_free), also on error:
// NS_ENOMEM.
int ns_protocol_result_json(const ns_protocol_result *r, const uint64_t *seeds, const char *root, ns_buf *out);
#endif
