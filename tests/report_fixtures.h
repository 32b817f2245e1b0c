// report_fixtures.h — synthetic result directories (sweeps, DLN sweeps, seeds) and checks of
// the files a report writes, shared by the report's library tests (test_report.c) and its
// command's tests (cli/report.c).
#ifndef NORMSHARP_TESTS_REPORT_FIXTURES_H
#define NORMSHARP_TESTS_REPORT_FIXTURES_H
#include <ctype.h>
#include "testutil.h"
#include "normsharp/report.h"

// ---- synthetic result directories --------------------------------------------------------------
static inline void put(const char *root, const char *rel, const char *text) {
    char path[4096], dir[4096];
    assert_true(snprintf(path, sizeof path, "%s/%s", root, rel) < (int)sizeof path);
    memcpy(dir, path, sizeof dir);
    *strrchr(dir, '/') = 0;
    assert_int_equal(ns_mkdirs(dir), 0);
    assert_int_equal(ns_write_file_atomic(path, text, strlen(text)), 0);
}

#define SWEEP_HEADER                                                                                          \
    "eta,seed,status,steps,train_loss,train_err,test_loss,test_err,l1,l2,lambda_max,sharpness,two_over_eta," \
    "trace,avg_train_loss,avg_test_err,avg_l1,avg_l2,avg_sharpness,dec_train_loss,dec_test_err,dec_l1,"      \
    "dec_l2,dec_sharpness,seconds\n"

static const char CONFIG[] =
    "\"config\": {\"arch\": \"fc-tanh-8\", \"param\": \"standard\", \"init_scale\": 1, \"seed\": 0, "
    "\"dataset\": \"fashion-mnist\", \"n\": 100, \"loss\": \"mse\", \"lr\": %s}";

// Known answers: s_GF = 10 so eta_c = 0.2 predicted; the first eta that ends >10% below
// s_GF and within 10% of 2/eta is 0.25; above 0.2 the converged runs are 0.25, 0.3, 0.4,
// 0.5, of which 3 end within 10% of 2/eta (not 0.4: 4.0 vs 5); their l1 = 11, 12, 13,
// 12.5 has Spearman rho 0.8; the best test error is 0.12 at eta = 0.3. Run 0.15 stopped at
// the step limit; 0.8 diverged (written with nan and empty cells, as a writer may).
static inline void make_sweep(const char *root, int with_diverged) {
    char csv[4096];
    snprintf(csv, sizeof csv,
             SWEEP_HEADER
             "0.05,0,converged,900,0.009,0,0.30,0.20,10,3,9.8,9.8,40,,0.009,0.21,10,3,9.7,0.009,0.2,10,3,9.8,1\n"
             "0.1,0,converged,500,0.009,0,0.29,0.19,10.1,3.01,9.9,9.9,20,,0.009,0.2,10.1,3.01,9.8,0.009,0.19,10.1,3.01,9.9,1\n"
             "0.15,0,max_steps,400,0.02,0,0.28,0.18,10.05,3.02,9.7,9.7,13.33,,,,,,,,,,,,1\n"
             "0.25,0,converged,300,0.009,0,0.25,0.15,11,3.1,7.9,7.9,8,,0.009,0.15,11,3.1,7.5,0.009,0.15,11,3.1,7.2,1\n"
             "0.3,0,converged,250,0.009,0,0.22,0.12,12,3.2,6.6,6.6,6.667,,0.009,0.12,12,3.2,6.3,0.009,0.12,12,3.2,6.0,1\n"
             "0.4,0,converged,200,0.009,0,0.24,0.14,13,3.3,4.0,4.0,5,,0.009,0.14,13,3.3,4.6,0.009,0.14,13,3.3,4.2,1\n"
             "0.5,0,converged,150,0.009,0,0.26,0.16,12.5,3.25,3.9,3.9,4,,0.009,0.16,12.5,3.25,3.7,0.009,0.16,12.5,3.25,3.5,1\n"
             "%s",
             with_diverged ? "0.8,0,diverged,12,nan,,,,,,,,2.5,,,,,,,,,,,,0.1\n" : "");
    put(root, "fashion-mnist/fc-tanh-8/mse/sweep.csv", csv);
    const char *lrs[] = {"0.05", "0.3", "0.5"};
    for (int k = 0; k < 3; k++) {
        char rel[256], cfg[512], sum[1024];
        snprintf(cfg, sizeof cfg, CONFIG, lrs[k]);
        snprintf(sum, sizeof sum, "{\"program\": \"normsharp\", \"kind\": \"train\", %s, \"status\": \"converged\"}", cfg);
        snprintf(rel, sizeof rel, "fashion-mnist/fc-tanh-8/mse/seed_0/lr_%s/summary.json", lrs[k]);
        put(root, rel, sum);
        ns_buf t = {0};
        ns_buf_printf(&t, "step,time,train_loss,train_acc,l1,l2,test_loss,test_err,lambda_max,sharpness,step_seconds\n");
        double eta = atof(lrs[k]);
        for (int s = 0; s <= 100; s++) {
            double sharp = fmin(2 * s / 10.0, 2 / eta * (1 + 0.05 * sin(s)));
            if (s % 5 == 0)
                ns_buf_printf(&t, "%d,%g,%g,0.5,10,3,,,%g,%g,0.01\n", s, s * eta, exp(-0.05 * s), sharp, sharp);
            else ns_buf_printf(&t, "%d,%g,%g,0.5,10,3,,,,,0.01\n", s, s * eta, exp(-0.05 * s));
        }
        snprintf(rel, sizeof rel, "fashion-mnist/fc-tanh-8/mse/seed_0/lr_%s/trajectory.csv", lrs[k]);
        put(root, rel, t.data);
        ns_buf_free(&t);
    }
    char cfg[512], flow[1024];
    snprintf(cfg, sizeof cfg, CONFIG, "null");
    snprintf(flow, sizeof flow,
             "{\"program\": \"normsharp\", \"kind\": \"flow\", %s, \"s_gf\": 10, \"eta_c\": 0.2, \"status\": \"converged\"}", cfg);
    put(root, "fashion-mnist/fc-tanh-8/mse/seed_0/flow/summary.json", flow);
    put(root, "fashion-mnist/fc-tanh-8/mse/seed_0/flow/trajectory.csv",
        "step,time,h,train_loss,train_acc,l1,l2,test_loss,test_err,lambda_max,sharpness\n"
        "0,0,0.05,1,0.1,10,3,,,2,2\n1,0.05,0.05,0.8,0.2,10,3,,,5,5\n2,0.1,0.05,0.5,0.4,10,3,,,10,10\n"
        "3,0.15,0.05,0.1,0.8,10,3,,,9,9\n4,0.2,0.05,0.01,1,10,3,,,8.5,8.5\n");
}

// A DLN lab with d = 2 and one data point x = (1, 0.5), y = 1: the interpolating set is the
// line b1 + 0.5 b2 = 1. Known answer: best eta 0.3 with generalization error 0.12 beats
// min-l1 (0.5) and min-sharpness (0.4).
static inline void make_dln(const char *root) {
    put(root, "dln/dln.csv",
        "eta,status,steps,l1,sharpness,two_over_eta,gen_err,dist_min_l1,dist_min_sharp,train_loss\n"
        "0.1,converged,800,1.02,3.98,20,0.45,0.04,0.8,1e-9\n"
        "0.2,converged,400,1.1,3.8,10,0.3,0.22,0.6,1e-9\n"
        "0.3,converged,300,1.2,3.6,6.667,0.12,0.45,0.4,1e-9\n"
        "0.4,converged,200,1.3,3.4,5,0.35,0.67,0.2,1e-9\n"
        "0.6,diverged,10,,,3.333,,,,inf\n");
    put(root, "dln/theory.json",
        "{\"task\": {\"kind\": \"single\", \"n\": 1, \"d\": 2, \"s\": 1, \"noise\": 0, \"seed\": 0, "
        "\"model\": \"shared\", \"alpha\": 0.01},\n"
        " \"min_l1\": {\"beta\": [1, 0], \"l1\": 1, \"sharpness\": 4, \"gen_err\": 0.5},\n"
        " \"min_sharpness\": {\"beta\": [0.6, 0.8], \"l1\": 1.4, \"sharpness\": 3.2, \"gen_err\": 0.4},\n"
        " \"hypentropy\": {\"beta\": [0.99, 0.02], \"l1\": 1.01, \"sharpness\": 3.9, \"gen_err\": 0.48},\n"
        " \"gen_opt\": {\"beta\": [0.8, 0.4], \"l1\": 1.2, \"sharpness\": 3.6, \"gen_err\": 0.1}}\n");
    const char *lr[] = {"0.1", "0.2", "0.3", "0.4"};
    const char *beta[] = {"[0.98, 0.04]", "[0.9, 0.2]", "[0.8, 0.4]", "[0.7, 0.6]"};
    for (int k = 0; k < 4; k++) {
        char rel[256], sum[256];
        snprintf(rel, sizeof rel, "dln/runs/lr_%s/summary.json", lr[k]);
        snprintf(sum, sizeof sum, "{\"kind\": \"dln\", \"status\": \"converged\", \"beta\": %s}", beta[k]);
        put(root, rel, sum);
    }
}

static inline int file_contains(const char *path, const char *needle) {
    char *text;
    if (ns_read_file(path, &text, NULL)) return 0;
    int found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

// PNG: 8-byte signature, then the IHDR chunk: length 13, "IHDR", width, height (big endian).
static inline void assert_png(const char *path, unsigned width, unsigned height) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("no PNG at %s", path);
    unsigned char h[24];
    size_t got = fread(h, 1, sizeof h, f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    assert_int_equal(got, 24);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    assert_memory_equal(h, sig, 8);
    assert_memory_equal(h + 12, "IHDR", 4);
    unsigned w = (unsigned)h[16] << 24 | (unsigned)h[17] << 16 | (unsigned)h[18] << 8 | h[19];
    unsigned hh = (unsigned)h[20] << 24 | (unsigned)h[21] << 16 | (unsigned)h[22] << 8 | h[23];
    assert_int_equal(w, width);
    assert_int_equal(hh, height);
    assert_true(size > 5000);  // a drawn figure, not an empty canvas
}

static inline void assert_exists(const char *dir, const char *rel) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (!ns_exists(path)) fail_msg("missing %s", path);
}

// A DLN with d coordinates and one data point x = e_2 + e_S (S = 4, or 3 when d = 3; 1-based):
// min-l1 is e_2, min-sharpness e_S, so they differ most in (2, S); the interpolating set is
// {beta_2 + beta_S = 1}, a plane when d = 3.
static inline void make_dln_wide(const char *root, int d) {
    int si = d > 3 ? 3 : d - 1;
    ns_buf th = {0}, l1 = {0}, sh = {0};
    for (int i = 0; i < d; i++) {
        ns_buf_printf(&l1, "%s%d", i ? ", " : "", i == 1);
        ns_buf_printf(&sh, "%s%d", i ? ", " : "", i == si);
    }
    ns_buf_printf(&th,
                  "{\"task\": {\"kind\": \"single\", \"n\": 1, \"d\": %d},\n"
                  " \"min_l1\": {\"beta\": [%s], \"l1\": 1, \"sharpness\": 4, \"gen_err\": 0.5},\n"
                  " \"min_sharpness\": {\"beta\": [%s], \"l1\": 1, \"sharpness\": 3, \"gen_err\": 0.4}}\n",
                  d, l1.data, sh.data);
    put(root, "wide/theory.json", th.data);
    put(root, "wide/dln.csv",
        "eta,status,steps,l1,sharpness,two_over_eta,gen_err,dist_min_l1,dist_min_sharp,train_loss\n"
        "0.1,converged,100,1,3.9,20,0.45,0.1,1,1e-9\n0.5,converged,100,1,3.5,4,0.3,0.5,0.5,1e-9\n");
    for (int k = 0; k < 2; k++) {
        ns_buf b = {0};
        ns_buf_printf(&b, "{\"beta\": [");
        for (int i = 0; i < d; i++)
            ns_buf_printf(&b, "%s%g", i ? ", " : "", i == 1 ? 0.8 - 0.4 * k : i == si ? 0.2 + 0.4 * k : 0.1 * k);
        ns_buf_printf(&b, "]}");
        put(root, k ? "wide/runs/lr_0.5/summary.json" : "wide/runs/lr_0.1/summary.json", b.data);
        ns_buf_free(&b);
    }
    ns_buf_free(&th);
    ns_buf_free(&l1);
    ns_buf_free(&sh);
}

// Two seeds of one setting, each with its flow. Known answers: seed 0 as make_sweep (s_GF 10,
// eta_c 0.2 predicted and 0.25 observed, 3 of 4 runs above it at 2/eta, best eta 0.3 = 1.5
// eta_c with test error 0.12, l1 rho 0.8); seed 1: s_GF 8, eta_c 0.25 predicted, 0.3 observed,
// 3 of 3 at 2/eta, best eta 0.4 = 1.6 eta_c with test error 0.10, l1 rho 1.
// make_two_seeds with seed 0's l1 at eta = 0.25, 0.3, 0.4, 0.5 given (make_two_seeds: 11, 12, 13, 12.5).
static inline void make_two_seeds_l1(const char *root, const char *const l1[4]) {
    char csv[4096];
    snprintf(csv, sizeof csv,
        SWEEP_HEADER
        "0.05,0,converged,900,0.009,0,0.30,0.20,10,3,9.8,9.8,40,,,,,,,,,,,,1\n"
        "0.1,0,converged,500,0.009,0,0.29,0.19,10.1,3.01,9.9,9.9,20,,,,,,,,,,,,1\n"
        "0.15,0,max_steps,400,0.02,0,0.28,0.18,10.05,3.02,9.7,9.7,13.33,,,,,,,,,,,,1\n"
        "0.25,0,converged,300,0.009,0,0.25,0.15,%s,3.1,7.9,7.9,8,,,,,,,,,,,,1\n"
        "0.3,0,converged,250,0.009,0,0.22,0.12,%s,3.2,6.6,6.6,6.667,,,,,,,,,,,,1\n"
        "0.4,0,converged,200,0.009,0,0.24,0.14,%s,3.3,4.0,4.0,5,,,,,,,,,,,,1\n"
        "0.5,0,converged,150,0.009,0,0.26,0.16,%s,3.25,3.9,3.9,4,,,,,,,,,,,,1\n"
        "0.05,1,converged,900,0.009,0,0.30,0.20,10,3,7.9,7.9,40,,,,,,,,,,,,1\n"
        "0.1,1,converged,500,0.009,0,0.29,0.19,10,3,8.0,8.0,20,,,,,,,,,,,,1\n"
        "0.2,1,converged,400,0.009,0,0.28,0.18,10,3,7.9,7.9,10,,,,,,,,,,,,1\n"
        "0.3,1,converged,300,0.009,0,0.25,0.15,11,3.1,6.5,6.5,6.667,,,,,,,,,,,,1\n"
        "0.4,1,converged,250,0.009,0,0.22,0.10,12,3.2,5.0,5.0,5,,,,,,,,,,,,1\n"
        "0.5,1,converged,200,0.009,0,0.24,0.13,13,3.3,4.1,4.1,4,,,,,,,,,,,,1\n"
        "0.9,1,diverged,12,nan,,,,,,,,2.222,,,,,,,,,,,,0.1\n",
             l1[0], l1[1], l1[2], l1[3]);
    put(root, "fashion-mnist/fc-tanh-8/mse/sweep.csv", csv);

    for (int seed = 0; seed < 2; seed++) {
        char rel[256], flow[1024];
        snprintf(flow, sizeof flow,
                 "{\"kind\": \"flow\", \"config\": {\"arch\": \"fc-tanh-8\", \"param\": \"standard\", "
                 "\"init_scale\": 1, \"seed\": %d, \"dataset\": \"fashion-mnist\", \"n\": 100, \"loss\": \"mse\"}, "
                 "\"s_gf\": %d, \"eta_c\": %g}",
                 seed, seed ? 8 : 10, seed ? 0.25 : 0.2);
        snprintf(rel, sizeof rel, "fashion-mnist/fc-tanh-8/mse/seed_%d/flow/summary.json", seed);
        put(root, rel, flow);
    }
}

static inline void make_two_seeds(const char *root) {
    static const char *const l1[4] = {"11", "12", "13", "12.5"};
    make_two_seeds_l1(root, l1);
}

// ---- hostile strings -------------------------------------------------------------------------------
// A string that would run a command (or write a file) if gnuplot expanded it: a backquote,
// system() after breaking out of either kind of quote or the line, an @macro, control bytes.
// Each asks to create MARKS/<k>_<variant>; nothing may ever appear there.
static inline void hostile(char *out, size_t cap, const char *marks, int k, int json) {
    snprintf(out, cap,
             "x`touch %s/%d_bq` y'; system('touch %s/%d_sq'); z='%s!touch %s/%d_nl%s"
             "system(%stouch %s/%d_dq%s)%s; set output '%s/%d_out' @PWN %s %s"
             " <script>alert(%d)</script> &amp; <img src=x onerror=alert(1)>",
             marks, k, marks, k, json ? "\\n" : "\n", marks, k, json ? "\\n" : "\n", json ? "\\\"" : "\"", marks,
             k, json ? "\\\"" : "\"", json ? "\\\"" : "\"", marks, k, json ? "\\\\" : "\\",
             json ? "\\u0001\\u001b\\r\\t\\u007f" : "\x01\x1b\r\t\x7f", k);
}

static inline int count_entries(const char *dir) {
    char cmd[8192], line[64];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int n = fgets(line, sizeof line, p) ? atoi(line) : -1;
    pclose(p);
    return n;
}
#endif
