// The report: loader, findings, seed groups and writer (scripts and documents; drawing off,
// so no gnuplot process). The input is split at "\n----\n" into the files of a results
// folder: a sweep (sweep.csv, a run's summary.json and trajectory.csv, a flow's
// summary.json), a DLN (dln.csv, theory.json, a run's summary.json) and a train run.
#include "fuzz.h"
#include "normsharp/report.h"

static const char *const files[] = {
    "r/ds/fc-tanh-8/mse/sweep.csv",           "r/ds/fc-tanh-8/mse/seed_0/lr_0.1/summary.json",
    "r/ds/fc-tanh-8/mse/seed_0/lr_0.1/trajectory.csv", "r/ds/fc-tanh-8/mse/seed_0/flow/summary.json",
    "r/dln/dln.csv",                          "r/dln/theory.json",
    "r/dln/runs/lr_0.1/summary.json",         "r/train/summary.json",
};
#define NFILES ((int)(sizeof files / sizeof files[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[NFILES];
    size_t len[NFILES];
    int n = fz_split(data, size, part, len, NFILES);
    char root[4200], out[4300];
    snprintf(root, sizeof root, "%s/r", fz_dir());
    // the report of the previous input goes: each execution starts from the same folder
    snprintf(out, sizeof out, "%s/report", root);
    fz_rmtree(out);
    for (int i = 0; i < NFILES; i++) {
        char path[4300];
        snprintf(path, sizeof path, "%s/%s", fz_dir(), files[i]);
        unlink(path);
        if (i < n) fz_put(0, files[i], part[i], len[i]);
    }
    ns_report r;
    if (ns_report_load(root, &r) == 0) {
        for (int k = 0; k < r.nexp; k++) {
            ns_findings f;
            ns_buf b = {0};
            ns_report_findings(&r, k, &f);
            ns_findings_text(&f, &b);
            ns_buf_free(&b);
        }
        ns_seed_group *g = NULL;
        int ng = 0;
        if (ns_report_seed_groups(&r, &g, &ng) == 0) ns_seed_groups_free(g, ng);
        ns_report_opts o;
        ns_report_opts_default(&o);
        o.gnuplot = "";  // write the scripts, start no process
        ns_report_out out;
        memset(&out, 0, sizeof out);
        (void)ns_report_write(&r, &o, &out);
        ns_report_out_free(&out);
        ns_report_free(&r);
    }
    ns_clear_error();
    return 0;
}
