// Shared by the report's figure and document writers (not part of the library's API).
#ifndef NORMSHARP_REPORT_INTERNAL_H
#define NORMSHARP_REPORT_INTERNAL_H
#include "normsharp/report.h"

typedef struct {
    char *name;     // file stem: NAME.gp, NAME.png, NAME.svg
    char *caption;  // one sentence for report.md / index.html
    int exp;        // experiment index, -1 - flow index for a standalone flow, or RP_FIG_GROUP(g)
    int drawn;      // gnuplot produced NAME.png
} rp_figure;

typedef struct {
    const ns_report *r;
    const ns_report_opts *o;
    const ns_findings *f;  // per experiment
    const ns_seed_group *grp;  // sweeps of one setting at several seeds
    int ngrp;
    char rdir[4096];       // DIR/report
    char log[4200];        // DIR/report/gnuplot.log
    rp_figure *fig;
    int nfig;
    int gnuplot_missing;   // gnuplot could not be started: stop trying
    int gnuplot_failed;    // a script failed: keep the first message
    char fail_msg[1024];
    int rc;                // first hard error (I/O, memory), set through rp_hard_error
    char rc_msg[1024];     // its sentence, kept: later steps may clear the error buffer
} rp_ctx;

// Records the first hard error (code rc) with the current error sentence.
void rp_hard_error(rp_ctx *c, int rc);

// The figure of seed group g (seeds.c).
#define RP_FIG_GROUP(g) (-1000000 - (g))
void rp_figure_seeds(rp_ctx *c, const ns_seed_group *grp, int g);
// Every figure of experiment k (the sweep panels, trajectories, flow, DLN pictures).
void rp_figures_experiment(rp_ctx *c, int k);
// The figures of the opt-in curvature views of sweep k (views.c), where its runs have them.
void rp_figures_views(rp_ctx *c, int k);
// The figure of a gradient flow that no experiment claimed.
void rp_figure_standalone_flow(rp_ctx *c, int flow);
// DIR/report/report.md and DIR/report/index.html from the figures drawn.
int rp_write_documents(rp_ctx *c, ns_report_out *out);
// "dataset, arch, loss loss" (with "unknown ..." for what the configuration lacks).
void rp_setting_text(ns_buf *b, const ns_rep_config *c);
// dir as a path under the report's DIR ("." for DIR itself; dir unchanged if outside it).
const char *rp_rel_dir(const ns_report *r, const char *dir);
// Makes s usable as a file name in place: keeps letters, digits, '.', '-', '_'; else '_'.
void rp_file_safe(char *s);
// Replaces *tag (malloc'd) by itself or, if one of the n names name_at(ctx, 0..n-1) already is
// it, by the first "<tag>_2", "<tag>_3", ... that none is. NS_ENOMEM (*tag then NULL) or 0.
int rp_unique_tag(char **tag, const char *(*name_at)(const void *ctx, int j), const void *ctx, int n);
// The rule by which the report says "l1 grows with eta above eta_c" (Spearman rho >= 0.5; one
// rule for a sweep's findings and for the count over seeds): +1 grows, -1 falls (rho <= -0.5),
// 0 no clear trend (including NAN: fewer than 3 runs, or constant values).
int rp_l1_trend(double rho);
// "%.4g", or an em dash for a value that is not a finite number.
const char *rp_num(char out[32], double x);
#endif
