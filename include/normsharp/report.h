// normsharp/report.h — read what train, flow, sweep and the DLN lab wrote under a
// directory (docs/OUTPUTS.md), compute the findings of the paper's protocol from those
// files, and draw the figures with gnuplot into DIR/report/.
//
//   ns_report r; ns_report_load(dir, &r);          // walk DIR, read every result
//   ns_findings f; ns_report_findings(&r, k, &f);  // the five findings of experiment k
//   ns_report_write(&r, &opts, &out);             // figures, report.md, index.html
//   ns_report_free(&r);
#ifndef NORMSHARP_REPORT_H
#define NORMSHARP_REPORT_H
#include "normsharp/common.h"
#include "normsharp/dln_refs.h"
#include "normsharp/eos.h"

// ---- CSV tables (a header line, then comma-separated cells; no quoting) ---------------
typedef struct {
    int ncol, nrow;
    char **head;   // ncol column names
    char **cell;   // nrow * ncol cells, row-major; "" where the file left a cell empty
    char *text;    // owns every string above
} ns_table;
// Every row must have as many cells as the header; the error names the file and line.
int ns_table_read(const char *path, ns_table *t);
int ns_table_col(const ns_table *t, const char *name);          // -1 if absent
double ns_table_num(const ns_table *t, int row, int col);       // NAN if absent/empty/not a number
const char *ns_table_str(const ns_table *t, int row, int col);  // "" if absent
void ns_table_free(ns_table *t);

// ---- results --------------------------------------------------------------------------
// What one run (one learning rate of a sweep, one train run, or one DLN run) ended with.
// Values that were not measured are NAN.
typedef struct {
    double eta;
    uint64_t seed;
    char status[16];  // converged | max_steps | acc_goal | diverged
    long steps;
    double train_loss, train_err, test_loss, test_err;  // DLN: test_err = generalization error
    double l1, l2, lambda_max, sharpness, trace;
    double avg_train_loss, avg_test_err, avg_l1, avg_l2, avg_sharpness;  // mean of last m iterates
    double dec_train_loss, dec_test_err, dec_l1, dec_l2, dec_sharpness;  // after the decayed phase
    double dist_min_l1, dist_min_sharp;  // DLN: distance of beta to the two minimizers
    double w_l2_sq;                      // DLN: squared l2 norm of all weights (dln.csv w_l2_sq)
    char *dir;                           // the run's directory, NULL if it is not on disk
    double *beta;                        // DLN: the run's beta (summary.json "beta"), or NULL
    int d;                               // length of beta
} ns_rep_run;
// A run "converged" if it reached its goal (status converged or acc_goal).
int ns_rep_converged(const ns_rep_run *r);
int ns_rep_diverged(const ns_rep_run *r);

// Configuration of a network experiment (summary.json "config"); unknown: "" / -1 / NAN,
// and seed_known 0.
typedef struct {
    char dataset[64], arch[128], loss[32], param[32];
    uint64_t seed;
    int seed_known;
    long n;
    double init_scale;
    double weight_decay;  // 0 when the config has none
    long batch;           // SGD minibatch size; 0 = full-batch GD; -1 not said (a flow)
} ns_rep_config;

// A gradient-flow directory (summary.json kind "flow").
typedef struct {
    char *dir;
    ns_rep_config cfg;
    double s_gf, eta_c;
    int used;  // attached to an experiment
} ns_rep_flow;

// DLN reference solutions of theory.json: NS_REF_* of dln_refs.h, keys ns_dln_ref_key.
extern const char *const ns_ref_label[NS_REF_COUNT];  // "min-l1 interpolator", ...
typedef struct {
    int present;
    double l1, sharpness, gen_err;  // NAN if theory.json does not give them
    double *beta;                   // NULL if absent
    int d;
} ns_rep_ref;

typedef enum { NS_EXP_SWEEP, NS_EXP_TRAIN, NS_EXP_DLN } ns_exp_kind;

// One experiment: the runs of one seed of a network sweep, a group of standalone train
// runs with the same configuration, or one DLN lab sweep. Runs are sorted by eta.
typedef struct {
    ns_exp_kind kind;
    char *dir;    // where its files are (the sweep.csv / dln.csv directory)
    char *title;  // for figures: dataset, architecture, loss, seed, and (networks) the path of
                  // dir under the report's DIR, which tells experiments of one setting apart
    char *tag;    // unique, file-name safe stem of its figures
    ns_rep_config cfg;
    ns_rep_run *run;
    int nrun;
    int flow;  // index into ns_report.flow, or -1
    // DLN only (theory.json)
    ns_rep_ref ref[NS_REF_COUNT];
    double theory_s_gf;  // theory.json "s_gf" if present, else NAN
    int dln_n, dln_d;    // task n and d (-1 if unknown)
} ns_rep_exp;

typedef struct {
    char *dir;
    ns_rep_exp *exp;
    int nexp;
    ns_rep_flow *flow;
    int nflow;
} ns_report;

// Walk DIR recursively (not into DIR/report, hidden directories or weights/) and read every
// sweep.csv (with its runs' summary.json for the configuration), dln.csv (+ theory.json and
// runs/lr_*/summary.json), flow summary.json and standalone train summary.json. A directory
// without any result is an error (NS_EIO) whose message says what was looked for.
int ns_report_load(const char *dir, ns_report *r);
void ns_report_free(ns_report *r);

// ---- findings ---------------------------------------------------------------------------
// Thresholds of the findings (docs/CONVENTIONS.md, findings): NS_EOS_TOL and the transition
// rule of normsharp/eos.h.

typedef enum { NS_SGF_NONE, NS_SGF_FLOW, NS_SGF_THEORY, NS_SGF_GF_SOLUTION } ns_sgf_source;

typedef struct {
    // 1. critical learning rate
    double s_gf;            // largest sharpness along the gradient flow (NAN if unknown)
    ns_sgf_source s_gf_from;
    double eta_c_pred;      // 2 / s_gf
    double s_ref;           // the flat-regime sharpness used for eta_c observed: s_gf, or
    int s_ref_from_flow;    //   (no prediction) the final sharpness of the smallest finished eta
    double eta_c_obs;       // smallest eta with S < 0.9 s_ref and S within 10% of 2/eta (NAN: none)
    double eta_c;           // the split used below: predicted if known, else observed (NAN: none)
    // 2. sharpness at 2/eta above eta_c
    int n_above, n_follow;  // converged runs with eta > eta_c; of them within 10% of 2/eta
    // 3. l1 growth above eta_c
    int n_l1;               // converged runs above eta_c with a finite l1
    double l1_rho;          // Spearman rank correlation of l1 with eta (NAN if n_l1 < 3)
    int l1_up, l1_steps;    // consecutive (in eta) pairs where l1 increases / all pairs
    // 4. best generalization (test error; DLN: generalization error), converged runs only
    int n_converged, n_diverged, n_runs;
    double best_eta, best_err, best_loss;
    int best_position;      // -1 smallest converged eta, +1 largest, 0 strictly inside, 2 none
    // 5. DLN: does the best GD solution beat both minimizers?
    int is_dln;
    double gen_min_l1, gen_min_sharp;  // NAN if theory.json lacks them
    int beats_both;                    // 1 yes, 0 no, -1 unknown
} ns_findings;

// Computes the findings of experiment k from what ns_report_load read.
void ns_report_findings(const ns_report *r, int k, ns_findings *f);
// One line per finding (4 for a network experiment, 5 for a DLN), each ending in '\n'.
void ns_findings_text(const ns_findings *f, ns_buf *out);
// The findings as one JSON object (key may be NULL inside an array).
void ns_findings_json(const ns_findings *f, ns_json *j, const char *key);

// Spearman rank correlation of y with x (ties get their mean rank); NAN if n < 2 or a
// variable is constant.
double ns_spearman(const double *x, const double *y, int n);

// ---- across seeds -------------------------------------------------------------------------
// The sweeps of one setting (dataset, architecture, loss, n, parameterization, init scale)
// at two or more distinct seeds, summarized: each statistic is {mean, sample standard
// deviation} over the seeds where it is known ({NAN, NAN} if none; sd NAN with one value).
// A sweep of the same setting and seed as a member (in another folder) is a repeat, not
// another seed: it is listed in repeat[] and left out of every statistic. A setting swept
// at one seed in several folders makes a group with n = 1 and only its repeats (no
// statistics, no figure), so that the report says so once.
typedef struct {
    int *exp;              // experiment indices (sweeps) of the distinct seeds, in order of appearance
    int n;                 // number of distinct seeds
    int *repeat;           // experiment indices of the repeats
    int nrepeat;
    char *title;           // "dataset, arch, loss loss, n = N, seeds 0, 1, 2"
    char *tag;             // file-name safe stem of its figure
    double s_gf[2], eta_c_pred[2], eta_c_obs[2];
    double best_rel[2];    // best eta / eta_c (the split of the findings: predicted if known)
    double best_err[2];    // test error at the best eta
    int n_above, n_follow; // summed over the seeds (finding 2)
    int l1_grows;          // seeds whose l1 grows with eta above eta_c (Spearman rho > 0)
    int l1_known;          // seeds where that could be decided (3+ converged runs above eta_c)
} ns_seed_group;
// Finds the groups of r (none if every setting has one seed and one sweep): *out is NULL
// and *n 0 then.
int ns_report_seed_groups(const ns_report *r, ns_seed_group **out, int *n);
// One line (ending in '\n') summarizing the group (with two or more seeds), and one line
// naming its repeats (if any), by their folders under r->dir.
void ns_seed_group_text(const ns_report *r, const ns_seed_group *g, ns_buf *out);
void ns_seed_group_json(const ns_report *r, const ns_seed_group *g, ns_json *j, const char *key);
void ns_seed_groups_free(ns_seed_group *g, int n);

// ---- figures and documents --------------------------------------------------------------
typedef struct {
    int coord_i, coord_j;  // 0-based beta coordinates for the DLN interpolation picture; -1: auto
    const char *gnuplot;   // program to run (default "gnuplot"); "": write scripts, start nothing
} ns_report_opts;
void ns_report_opts_default(ns_report_opts *o);
// coord_i and coord_j from the text of --coords: "I,J", two different 1-based coordinates.
// Returns 0, or NS_EINVAL with a sentence naming --coords (o unchanged).
int ns_report_coords_parse(const char *s, ns_report_opts *o);

typedef struct {
    char **png;  // paths of the PNGs drawn (the SVG next to each)
    int npng;
    int nfig;    // figures scripted (drawn or not)
    char md[4096], html[4096];
} ns_report_out;

// Writes DIR/report/: for every figure NAME.gp (gnuplot script), data/NAME_*.dat, and,
// drawn by gnuplot, NAME.png and NAME.svg; then report.md and index.html. gnuplot's
// messages go to DIR/report/gnuplot.log. If gnuplot is missing or fails, the documents are
// still written and the call returns NS_EIO with a sentence saying so.
int ns_report_write(const ns_report *r, const ns_report_opts *o, ns_report_out *out);
void ns_report_out_free(ns_report_out *out);
// "sweep", "train" or "dln": an experiment's kind as `report` prints it.
const char *ns_exp_kind_name(ns_exp_kind k);
// `normsharp report --json` into *out: the report's paths ("dir", "report", "index",
// "figures_scripted", "figures"), "error" (the sentence of a failed ns_report_write, or
// null), every experiment's title, kind, folder, run count and findings (ns_findings_json),
// and the ngrp seed groups (ns_seed_group_json), then a newline. The caller frees *out
// (ns_buf_free), also on error: NS_ENOMEM.
int ns_report_json(const ns_report *r, const ns_seed_group *grp, int ngrp, const ns_report_out *o, const char *error,
                   ns_buf *out);
#endif
