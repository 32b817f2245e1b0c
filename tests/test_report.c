// Report: reading result directories (docs/OUTPUTS.md), the findings computed from them,
// the figures drawn by gnuplot, and the command's messages and exit statuses.
#include <ctype.h>
#include "testutil.h"
#include "normsharp/report.h"

// ---- synthetic result directories --------------------------------------------------------------
static void put(const char *root, const char *rel, const char *text) {
    char path[4096], dir[4096];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    assert_int_equal(ns_mkdirs(dir), 0);
    assert_int_equal(ns_write_file_atomic(path, text, strlen(text)), 0);
}

#define SWEEP_HEADER                                                                                          \
    "eta,seed,status,steps,train_loss,train_err,test_loss,test_err,l1,l2,lambda_max,sharpness,two_over_eta," \
    "trace,avg_train_loss,avg_test_err,avg_l1,avg_l2,avg_sharpness,dec_train_loss,dec_test_err,dec_l1,"      \
    "dec_l2,dec_sharpness,seconds\n"

static const char *CONFIG =
    "\"config\": {\"arch\": \"fc-tanh-8\", \"param\": \"standard\", \"init_scale\": 1, \"seed\": 0, "
    "\"dataset\": \"fashion-mnist\", \"n\": 100, \"loss\": \"mse\", \"lr\": %s}";

// Known answers: s_GF = 10 so eta_c = 0.2 predicted; the first eta that ends >10% below
// s_GF and within 10% of 2/eta is 0.25; above 0.2 the converged runs are 0.25, 0.3, 0.4,
// 0.5, of which 3 end within 10% of 2/eta (not 0.4: 4.0 vs 5); their l1 = 11, 12, 13,
// 12.5 has Spearman rho 0.8; the best test error is 0.12 at eta = 0.3. Run 0.15 stopped at
// the step limit; 0.8 diverged (written with nan and empty cells, as a writer may).
static void make_sweep(const char *root, int with_diverged) {
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
static void make_dln(const char *root) {
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

static int file_contains(const char *path, const char *needle) {
    char *text;
    if (ns_read_file(path, &text, NULL)) return 0;
    int found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

// PNG: 8-byte signature, then the IHDR chunk: length 13, "IHDR", width, height (big endian).
static void assert_png(const char *path, unsigned width, unsigned height) {
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

static void assert_exists(const char *dir, const char *rel) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (!ns_exists(path)) fail_msg("missing %s", path);
}

// ---- findings from files --------------------------------------------------------------------------
static void findings_of_a_network_sweep_match_the_known_answers(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    make_sweep(root, 1);
    ns_report r;
    assert_int_equal(ns_report_load(root, &r), 0);
    assert_int_equal(r.nexp, 1);
    assert_int_equal(r.exp[0].kind, NS_EXP_SWEEP);
    assert_int_equal(r.exp[0].nrun, 8);
    assert_true(r.exp[0].flow >= 0);
    assert_string_equal(r.exp[0].cfg.arch, "fc-tanh-8");
    ns_findings f;
    ns_report_findings(&r, 0, &f);
    TU_ASSERT_REL(f.eta_c_pred, 0.2, 1e-12);
    TU_ASSERT_REL(f.s_gf, 10, 1e-12);
    assert_int_equal(f.s_gf_from, NS_SGF_FLOW);
    TU_ASSERT_REL(f.eta_c_obs, 0.25, 1e-12);
    assert_int_equal(f.n_above, 4);
    assert_int_equal(f.n_follow, 3);
    assert_int_equal(f.n_l1, 4);
    TU_ASSERT_REL(f.l1_rho, 0.8, 1e-12);
    assert_int_equal(f.l1_up, 2);
    assert_int_equal(f.l1_steps, 3);
    TU_ASSERT_REL(f.best_eta, 0.3, 1e-12);
    TU_ASSERT_REL(f.best_err, 0.12, 1e-12);
    assert_int_equal(f.best_position, 0);
    assert_int_equal(f.n_converged, 6);
    assert_int_equal(f.n_diverged, 1);
    assert_false(f.is_dln);
    ns_buf b = {0};
    ns_findings_text(&f, &b);
    int lines = 0;
    for (char *p = b.data; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 4);
    assert_non_null(strstr(b.data, "predicted 0.2 "));
    assert_non_null(strstr(b.data, "observed 0.25 "));
    assert_non_null(strstr(b.data, "yes, 3 of 4"));
    assert_non_null(strstr(b.data, "rho = 0.800"));
    assert_non_null(strstr(b.data, "best eta: 0.3,"));
    ns_buf_free(&b);
    ns_report_free(&r);
}

static void findings_of_a_dln_say_whether_the_best_eta_beats_both_minimizers(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    make_dln(root);
    ns_report r;
    assert_int_equal(ns_report_load(root, &r), 0);
    assert_int_equal(r.nexp, 1);
    assert_int_equal(r.exp[0].kind, NS_EXP_DLN);
    assert_int_equal(r.exp[0].dln_d, 2);
    assert_non_null(r.exp[0].run[0].beta);
    assert_int_equal(r.exp[0].run[0].d, 2);
    ns_findings f;
    ns_report_findings(&r, 0, &f);
    assert_true(f.is_dln);
    assert_int_equal(f.s_gf_from, NS_SGF_GF_SOLUTION);
    TU_ASSERT_REL(f.eta_c_pred, 2 / 3.9, 1e-12);
    TU_ASSERT_REL(f.best_eta, 0.3, 1e-12);
    TU_ASSERT_REL(f.best_err, 0.12, 1e-12);
    TU_ASSERT_REL(f.gen_min_l1, 0.5, 1e-12);
    TU_ASSERT_REL(f.gen_min_sharp, 0.4, 1e-12);
    assert_int_equal(f.beats_both, 1);
    assert_int_equal(f.n_diverged, 1);
    ns_buf b = {0};
    ns_findings_text(&f, &b);
    assert_non_null(strstr(b.data, "DLN best eta beats both minimizers: yes"));
    ns_buf_free(&b);
    ns_report_free(&r);
}

static void observed_eta_c_falls_back_to_the_smallest_eta_without_a_flow(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    make_sweep(root, 0);
    char flow[4096];
    snprintf(flow, sizeof flow, "%s/fashion-mnist/fc-tanh-8/mse/seed_0/flow/summary.json", root);
    assert_int_equal(unlink(flow), 0);
    ns_report r;
    assert_int_equal(ns_report_load(root, &r), 0);
    ns_findings f;
    ns_report_findings(&r, 0, &f);
    assert_true(isnan(f.eta_c_pred));
    assert_false(f.s_ref_from_flow);
    TU_ASSERT_REL(f.s_ref, 9.8, 1e-12);
    TU_ASSERT_REL(f.eta_c_obs, 0.25, 1e-12);
    TU_ASSERT_REL(f.eta_c, 0.25, 1e-12);  // the split falls back to the observed eta_c
    ns_report_free(&r);
}

static void spearman_gives_tied_values_their_mean_rank(void **state) {
    (void)state;
    double x[] = {1, 2, 3, 4}, y[] = {1, 2, 2, 3}, z[] = {4, 3, 2, 1}, c[] = {5, 5, 5, 5};
    TU_ASSERT_REL(ns_spearman(x, y, 4), 4.5 / sqrt(22.5), 1e-12);
    TU_ASSERT_REL(ns_spearman(x, z, 4), -1, 1e-12);
    assert_true(isnan(ns_spearman(x, c, 4)));
    assert_true(isnan(ns_spearman(x, y, 1)));
}

static void sweep_with_two_seeds_becomes_two_experiments(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    put(root, "mnist/fc-relu-4/ce/sweep.csv",
        SWEEP_HEADER "0.1,0,converged,10,0.1,0,0.5,0.2,1,1,2,2,20,,,,,,,,,,,,1\n"
                     "0.1,1,converged,10,0.1,0,0.5,0.3,1,1,2,2,20,,,,,,,,,,,,1\n"
                     "0.2,0,converged,10,0.1,0,0.5,0.25,1,1,2,2,10,,,,,,,,,,,,1\n"
                     "0.2,1,diverged,3,inf,,,,,,,,10,,,,,,,,,,,,1\n");
    ns_report r;
    assert_int_equal(ns_report_load(root, &r), 0);
    assert_int_equal(r.nexp, 2);
    assert_int_equal(r.exp[0].cfg.seed, 0);
    assert_int_equal(r.exp[1].cfg.seed, 1);
    assert_string_equal(r.exp[1].cfg.dataset, "mnist");  // from the path: no run directories
    assert_string_equal(r.exp[1].cfg.loss, "ce");
    assert_int_equal(r.exp[0].nrun, 2);
    assert_int_equal(r.exp[1].nrun, 2);
    assert_string_not_equal(r.exp[0].tag, r.exp[1].tag);
    ns_findings f;
    ns_report_findings(&r, 0, &f);
    TU_ASSERT_REL(f.best_eta, 0.1, 1e-12);
    assert_int_equal(f.best_position, -1);
    ns_report_findings(&r, 1, &f);
    assert_int_equal(f.n_diverged, 1);
    ns_report_free(&r);
}

static void train_runs_and_a_flow_with_the_same_config_form_one_experiment(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    const char *lrs[] = {"0.4", "0.1"};
    for (int k = 0; k < 2; k++) {
        char rel[256], cfg[512], sum[2048];
        snprintf(cfg, sizeof cfg, CONFIG, lrs[k]);
        snprintf(sum, sizeof sum,
                 "{\"kind\": \"train\", %s, \"status\": \"converged\", \"steps\": 10, "
                 "\"final\": {\"sharpness\": %s, \"l1\": 5, \"test_err\": 0.3}, \"averaged\": null, \"decayed\": null}",
                 cfg, k ? "9" : "5");
        snprintf(rel, sizeof rel, "train_%s/summary.json", lrs[k]);
        put(root, rel, sum);
    }
    char cfg[512], flow[1024];
    snprintf(cfg, sizeof cfg, CONFIG, "null");
    snprintf(flow, sizeof flow, "{\"kind\": \"flow\", %s, \"s_gf\": 10, \"eta_c\": 0.2}", cfg);
    put(root, "gf/summary.json", flow);
    ns_report r;
    assert_int_equal(ns_report_load(root, &r), 0);
    assert_int_equal(r.nexp, 1);
    assert_int_equal(r.exp[0].kind, NS_EXP_TRAIN);
    assert_int_equal(r.exp[0].nrun, 2);
    TU_ASSERT_REL(r.exp[0].run[0].eta, 0.1, 1e-12);  // sorted by eta
    TU_ASSERT_REL(r.exp[0].run[1].sharpness, 5, 1e-12);
    assert_int_equal(r.exp[0].flow, 0);
    assert_true(r.flow[0].used);
    ns_findings f;
    ns_report_findings(&r, 0, &f);
    TU_ASSERT_REL(f.eta_c_pred, 0.2, 1e-12);
    assert_int_equal(f.n_above, 1);
    assert_int_equal(f.n_follow, 1);  // 5 = 2/0.4
    ns_report_free(&r);
}

static void csv_with_a_short_row_is_rejected_naming_file_and_line(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    put(root, "x/sweep.csv", "eta,seed,status\n0.1,0,converged\n0.2,0\n");
    ns_report r;
    assert_int_equal(ns_report_load(root, &r), NS_EFORMAT);
    assert_non_null(strstr(ns_errmsg(), "sweep.csv"));
    assert_non_null(strstr(ns_errmsg(), "line 3"));
    ns_table t;
    char path[4096];
    snprintf(path, sizeof path, "%s/t.csv", root);
    put(root, "t.csv", "a,b,c\r\n1,,nan\r\n-inf,x,2.5\r\n");
    assert_int_equal(ns_table_read(path, &t), 0);
    assert_int_equal(t.nrow, 2);
    assert_true(isnan(ns_table_num(&t, 0, 1)));  // empty: not measured
    assert_true(isnan(ns_table_num(&t, 0, 2)));
    assert_true(isinf(ns_table_num(&t, 1, 0)));
    assert_true(isnan(ns_table_num(&t, 1, 1)));  // not a number
    TU_ASSERT_REL(ns_table_num(&t, 1, ns_table_col(&t, "c")), 2.5, 0);
    assert_int_equal(ns_table_col(&t, "d"), -1);
    ns_table_free(&t);
}

// ---- the command ------------------------------------------------------------------------------------
static void report_of_a_network_sweep_draws_every_figure_cleanly(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    make_sweep(root, 0);
    char out[16384], rdir[4096];
    int rc = tu_run(out, sizeof out, "report %s", root);
    if (rc != 0) fail_msg("report failed (%d): %s", rc, out);
    snprintf(rdir, sizeof rdir, "%s/report", root);
    const char *tag = "fashion-mnist_fc-tanh-8_mse_seed0";
    const char *figs[] = {"sharpness", "norms", "generalization", "measures", "trajectories", "flow"};
    for (int i = 0; i < 6; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "%s_%s.png", tag, figs[i]);
        assert_exists(rdir, rel);
        snprintf(rel, sizeof rel, "%s_%s.svg", tag, figs[i]);
        assert_exists(rdir, rel);
        snprintf(rel, sizeof rel, "%s_%s.gp", tag, figs[i]);
        assert_exists(rdir, rel);
    }
    char png[4400];
    snprintf(png, sizeof png, "%s/%s_sharpness.png", rdir, tag);
    assert_png(png, 820, 600);
    snprintf(png, sizeof png, "%s/%s_measures.png", rdir, tag);
    assert_png(png, 1560, 660);
    // gnuplot said nothing but the script headers: no warnings about the data.
    char log[4400];
    snprintf(log, sizeof log, "%s/gnuplot.log", rdir);
    assert_false(file_contains(log, "warning"));
    assert_false(file_contains(log, "rror"));
    assert_exists(rdir, "report.md");
    assert_exists(rdir, "index.html");
    char md[4400];
    snprintf(md, sizeof md, "%s/report.md", rdir);
    assert_true(file_contains(md, "_sharpness.png"));
    assert_true(file_contains(md, "| 0.3 |"));
    // The five findings (four for a network) are printed.
    assert_non_null(strstr(out, "eta_c: predicted 0.2 "));
    assert_non_null(strstr(out, "sharpness at 2/eta above eta_c: yes"));
    assert_non_null(strstr(out, "l1 norm grows with eta above eta_c: yes"));
    assert_non_null(strstr(out, "best eta: 0.3,"));
}

static void diverged_runs_are_marked_and_never_plotted_as_points(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    make_sweep(root, 1);
    char out[16384];
    int rc = tu_run(out, sizeof out, "report %s", root);
    if (rc != 0) fail_msg("report failed (%d): %s", rc, out);
    char gp[4096], dat[4096];
    snprintf(gp, sizeof gp, "%s/report/fashion-mnist_fc-tanh-8_mse_seed0_sharpness.gp", root);
    assert_true(file_contains(gp, "diverged: 1 run"));
    assert_true(file_contains(gp, "at first 0.80000000000000004, graph 0.965"));
    // No data file of the report holds a point at the diverged eta.
    for (int k = 0; k < 40; k++) {
        const char *figs[] = {"sharpness", "norms", "generalization", "measures"};
        for (int i = 0; i < 4; i++) {
            snprintf(dat, sizeof dat, "%s/report/data/fashion-mnist_fc-tanh-8_mse_seed0_%s_%d.dat", root, figs[i], k);
            if (!ns_exists(dat)) continue;
            char *text = tu_slurp(dat, NULL);
            for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
                if (!strncmp(line, "0.8\t", 4)) fail_msg("%s plots the diverged run: %.40s", dat, line);
            free(text);
        }
    }
    char md[4096];
    snprintf(md, sizeof md, "%s/report/report.md", root);
    assert_true(file_contains(md, "| 0.8 | 2.5 | diverged |"));
}

static void report_of_a_dln_only_directory_draws_the_interpolating_set(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    make_dln(root);
    char out[16384], png[4096];
    int rc = tu_run(out, sizeof out, "report %s", root);
    if (rc != 0) fail_msg("report failed (%d): %s", rc, out);
    const char *figs[] = {"generalization", "l1_sharpness", "interpolators"};
    for (int i = 0; i < 3; i++) {
        snprintf(png, sizeof png, "%s/report/dln_dln_%s.png", root, figs[i]);
        if (!ns_exists(png)) fail_msg("missing %s; output: %s", png, out);
    }
    snprintf(png, sizeof png, "%s/report/dln_dln_interpolators.png", root);
    assert_png(png, 820, 720);
    // The line b1 + 0.5 b2 = 1 through the known interpolators was drawn.
    char dat[4096];
    snprintf(dat, sizeof dat, "%s/report/data/dln_dln_interpolators_0.dat", root);
    char *text = tu_slurp(dat, NULL);
    double b1, b2;
    char *row = strchr(text, '\n') + 1;
    assert_int_equal(sscanf(row, "%lf %lf", &b1, &b2), 2);
    TU_ASSERT_REL(b1 + 0.5 * b2, 1, 1e-9);
    free(text);
    assert_non_null(strstr(out, "DLN best eta beats both minimizers: yes"));
    assert_non_null(strstr(out, "best eta: 0.3,"));
    // values within a decade: a linear axis; the y label is short enough to fit
    snprintf(png, sizeof png, "%s/report/dln_dln_generalization.gp", root);
    assert_false(file_contains(png, "set logscale y"));
    assert_true(file_contains(png, "set ylabel 'generalization error (squared target units)'"));
}

// Generalization errors from 1e-31 (a noiseless min-l1 interpolator) to 0.45 on a linear
// axis all look like zero: the axis becomes logarithmic, and a zero reference is named in
// the key rather than drawn.
static void dln_generalization_spanning_decades_gets_a_log_axis(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    make_dln(root);
    put(root, "dln/theory.json",
        "{\"task\": {\"kind\": \"single\", \"n\": 1, \"d\": 2, \"s\": 1, \"noise\": 0, \"seed\": 0, "
        "\"model\": \"shared\", \"alpha\": 0.01},\n"
        " \"min_l1\": {\"beta\": [1, 0], \"l1\": 1, \"sharpness\": 4, \"gen_err\": 2.1e-31},\n"
        " \"min_sharpness\": {\"beta\": [0.6, 0.8], \"l1\": 1.4, \"sharpness\": 3.2, \"gen_err\": 0.4},\n"
        " \"gen_opt\": {\"beta\": [0.8, 0.4], \"l1\": 1.2, \"sharpness\": 3.6, \"gen_err\": 0}}\n");
    char out[16384], gp[4096];
    int rc = tu_run(out, sizeof out, "report %s", root);
    if (rc != 0) fail_msg("report failed (%d): %s", rc, out);
    snprintf(gp, sizeof gp, "%s/report/dln_dln_generalization.gp", root);
    assert_true(file_contains(gp, "set logscale y"));
    assert_true(file_contains(gp, "off the log axis"));
    assert_true(file_contains(gp, "e-31 with lines"));  // the 2.1e-31 line is drawn
}

// `set offsets` pads only the left axis: the right (l2) axis of the norms figure gets its
// own padded range, so its highest and lowest markers are not cut in half.
static void norms_figure_pads_the_right_axis(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    make_sweep(root, 0);
    char out[16384], gp[4096];
    assert_int_equal(tu_run(out, sizeof out, "report %s", root), 0);
    snprintf(gp, sizeof gp, "%s/report/fashion-mnist_fc-tanh-8_mse_seed0_norms.gp", root);
    char *text = tu_slurp(gp, NULL);
    const char *r = strstr(text, "set y2range [");
    if (!r) fail_msg("no y2range in %s", gp);
    double lo, hi;
    assert_int_equal(sscanf(r, "set y2range [%lf:%lf]", &lo, &hi), 2);
    free(text);
    assert_true(lo < hi);
}

// A DLN with d coordinates and one data point x = e_2 + e_S (S = 4, or 3 when d = 3; 1-based):
// min-l1 is e_2, min-sharpness e_S, so they differ most in (2, S); the interpolating set is
// {beta_2 + beta_S = 1}, a plane when d = 3.
static void make_dln_wide(const char *root, int d) {
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

static void dln_interpolators_are_drawn_in_3d_and_projected_where_minimizers_differ(void **state) {
    (void)state;
    const char *root3 = tu_tmpdir();
    make_dln_wide(root3, 3);
    char out[16384], path[4096];
    int rc = tu_run(out, sizeof out, "report %s", root3);
    if (rc != 0) fail_msg("report failed (%d): %s", rc, out);
    snprintf(path, sizeof path, "%s/report/dln_wide_interpolators.gp", root3);
    assert_true(file_contains(path, "splot "));  // d = 3: the plane in 3D
    snprintf(path, sizeof path, "%s/report/data/dln_wide_interpolators_0.dat", root3);
    assert_true(file_contains(path, "mesh of the interpolating set"));
    snprintf(path, sizeof path, "%s/report/dln_wide_interpolators.png", root3);
    assert_png(path, 820, 720);
    snprintf(path, sizeof path, "%s/report/gnuplot.log", root3);
    assert_false(file_contains(path, "warning"));

    const char *root7 = tu_tmpdir();
    make_dln_wide(root7, 7);
    rc = tu_run(out, sizeof out, "report %s", root7);
    if (rc != 0) fail_msg("report failed (%d): %s", rc, out);
    snprintf(path, sizeof path, "%s/report/dln_wide_interpolators.gp", root7);
    assert_true(file_contains(path, "(β_2, β_4) (projection; where the two minimizers differ most)"));
    rc = tu_run(out, sizeof out, "report %s --coords 5,6", root7);
    if (rc != 0) fail_msg("report --coords failed (%d): %s", rc, out);
    assert_true(file_contains(path, "(β_5, β_6) (projection)"));
    snprintf(path, sizeof path, "%s/report/dln_wide_interpolators.png", root7);
    assert_png(path, 820, 720);
}

// Two seeds of one setting, each with its flow. Known answers: seed 0 as make_sweep (s_GF 10,
// eta_c 0.2 predicted and 0.25 observed, 3 of 4 runs above it at 2/eta, best eta 0.3 = 1.5
// eta_c with test error 0.12, l1 rho 0.8); seed 1: s_GF 8, eta_c 0.25 predicted, 0.3 observed,
// 3 of 3 at 2/eta, best eta 0.4 = 1.6 eta_c with test error 0.10, l1 rho 1.
// make_two_seeds with seed 0's l1 at eta = 0.25, 0.3, 0.4, 0.5 given (make_two_seeds: 11, 12, 13, 12.5).
static void make_two_seeds_l1(const char *root, const char *const l1[4]) {
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

static void make_two_seeds(const char *root) {
    static const char *const l1[4] = {"11", "12", "13", "12.5"};
    make_two_seeds_l1(root, l1);
}

// The count over seeds of "l1 grows above eta_c" uses the findings' rule (Spearman rho >= 0.5):
// a seed whose rho is 0.4 reads "no clear trend" in its findings and is not counted as growing.
static void seeds_count_l1_growth_by_the_findings_rule(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    static const char *const l1[4] = {"12", "10.5", "11", "13"};  // ranks 3, 1, 2, 4: rho = 0.4
    make_two_seeds_l1(root, l1);
    ns_report r;
    assert_int_equal(ns_report_load(root, &r), 0);
    ns_seed_group *g;
    int n;
    assert_int_equal(ns_report_seed_groups(&r, &g, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(g[0].l1_known, 2);
    assert_int_equal(g[0].l1_grows, 1);  // seed 1 (rho 1) only
    ns_seed_groups_free(g, n);
    ns_report_free(&r);
}

static void seeds_of_one_setting_are_summarized_with_mean_and_sd(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    make_two_seeds(root);
    ns_report r;
    assert_int_equal(ns_report_load(root, &r), 0);
    assert_int_equal(r.nexp, 2);
    ns_seed_group *g;
    int n;
    assert_int_equal(ns_report_seed_groups(&r, &g, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(g[0].n, 2);
    TU_ASSERT_REL(g[0].s_gf[0], 9, 1e-12);
    TU_ASSERT_REL(g[0].s_gf[1], sqrt(2), 1e-12);
    TU_ASSERT_REL(g[0].eta_c_pred[0], 0.225, 1e-12);
    TU_ASSERT_REL(g[0].eta_c_pred[1], 0.025 * sqrt(2), 1e-9);
    TU_ASSERT_REL(g[0].eta_c_obs[0], 0.275, 1e-12);
    TU_ASSERT_REL(g[0].best_rel[0], 1.55, 1e-12);
    TU_ASSERT_REL(g[0].best_rel[1], 0.1 / sqrt(2), 1e-9);
    TU_ASSERT_REL(g[0].best_err[0], 0.11, 1e-12);
    assert_int_equal(g[0].n_above, 7);
    assert_int_equal(g[0].n_follow, 6);
    assert_int_equal(g[0].l1_grows, 2);
    assert_int_equal(g[0].l1_known, 2);
    assert_non_null(strstr(g[0].title, "seeds 0, 1"));
    ns_seed_groups_free(g, n);
    ns_report_free(&r);

    // The command prints the summary, draws the figure and writes the table.
    char out[32768], rdir[4096], md[4400], png[4400];
    int rc = tu_run(out, sizeof out, "report %s", root);
    if (rc != 0) fail_msg("report failed (%d): %s", rc, out);
    assert_non_null(strstr(out, "[seeds]"));
    assert_non_null(strstr(out, "s_GF 9 ± 1.4, eta_c predicted 0.225 ± 0.035"));
    assert_non_null(strstr(out, "6 of 7 converged runs above eta_c"));
    snprintf(rdir, sizeof rdir, "%s/report", root);
    snprintf(png, sizeof png, "%s/fashion-mnist_fc-tanh-8_mse_seeds.png", rdir);
    assert_png(png, 1950, 620);
    snprintf(md, sizeof md, "%s/report.md", rdir);
    assert_true(file_contains(md, "## Across seeds"));
    assert_true(file_contains(md, "| 1 | 8 | 0.25 | 0.3 | 3 of 3 |"));
}

// Two settings that differ only in the parameterization, each at two seeds: two groups whose
// figures have different file names (the first keeps the plain stem).
static void seed_groups_of_settings_differing_in_param_get_distinct_figures(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    const char *params[] = {"standard", "ntk"};
    for (int q = 0; q < 2; q++) {
        char rel[256], sum[1024];
        snprintf(rel, sizeof rel, "%s/fashion-mnist/fc-tanh-8/mse/sweep.csv", params[q]);
        put(root, rel,
            SWEEP_HEADER "0.1,0,converged,10,0.1,0,0.5,0.2,1,1,2,2,20,,,,,,,,,,,,1\n"
                         "0.2,0,converged,10,0.1,0,0.5,0.25,1,1,2,2,10,,,,,,,,,,,,1\n"
                         "0.1,1,converged,10,0.1,0,0.5,0.3,1,1,2,2,20,,,,,,,,,,,,1\n"
                         "0.2,1,converged,10,0.1,0,0.5,0.2,1,1,2,2,10,,,,,,,,,,,,1\n");
        for (int seed = 0; seed < 2; seed++)
            for (int k = 0; k < 2; k++) {
                snprintf(sum, sizeof sum,
                         "{\"kind\": \"train\", \"config\": {\"arch\": \"fc-tanh-8\", \"param\": \"%s\", "
                         "\"init_scale\": 1, \"seed\": %d, \"dataset\": \"fashion-mnist\", \"n\": 100, "
                         "\"loss\": \"mse\", \"lr\": %s}, \"status\": \"converged\"}",
                         params[q], seed, k ? "0.2" : "0.1");
                snprintf(rel, sizeof rel, "%s/fashion-mnist/fc-tanh-8/mse/seed_%d/lr_%s/summary.json", params[q], seed,
                         k ? "0.2" : "0.1");
                put(root, rel, sum);
            }
    }
    ns_report r;
    assert_int_equal(ns_report_load(root, &r), 0);
    assert_int_equal(r.nexp, 4);
    ns_seed_group *g;
    int n;
    assert_int_equal(ns_report_seed_groups(&r, &g, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(g[0].n, 2);
    assert_int_equal(g[1].n, 2);
    assert_string_equal(g[0].tag, "fashion-mnist_fc-tanh-8_mse_n100_seeds");
    assert_string_equal(g[1].tag, "fashion-mnist_fc-tanh-8_mse_n100_seeds_2");
    ns_seed_groups_free(g, n);
    ns_report_free(&r);
}

// Three sweeps of one setting and seed in three folders (a copy run again elsewhere): three
// experiments told apart by their folders, and no average across "seeds 0, 0, 0": one
// group of one seed whose two repeats are named once. Seeds 0 and 1 swept in a/ and again in
// b/: a group of two seeds (each counted once) whose statistics are those of two seeds.
static void sweeps_of_one_setting_and_seed_are_repeats_not_seeds(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    const char *sub[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        char d[4096];
        snprintf(d, sizeof d, "%s/%s", root, sub[i]);
        make_sweep(d, 0);
    }
    ns_report r;
    assert_int_equal(ns_report_load(root, &r), 0);
    assert_int_equal(r.nexp, 3);
    for (int i = 0; i < 3; i++) {
        char in[64];
        snprintf(in, sizeof in, ", in %s/fashion-mnist/fc-tanh-8/mse", sub[i]);
        if (!strstr(r.exp[i].title, in)) fail_msg("experiment %d is titled '%s', without '%s'", i, r.exp[i].title, in);
    }
    ns_seed_group *g;
    int n;
    assert_int_equal(ns_report_seed_groups(&r, &g, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(g[0].n, 1);
    assert_int_equal(g[0].nrepeat, 2);
    assert_null(strstr(g[0].title, "0, 0"));
    ns_buf b = {0};
    ns_seed_group_text(&r, &g[0], &b);
    assert_non_null(strstr(b.data, "the sweep in b/fashion-mnist/fc-tanh-8/mse repeats the one in a/fashion-mnist/fc-tanh-8/mse"));
    assert_null(strstr(b.data, "mean ± sd"));
    ns_buf_free(&b);
    ns_seed_groups_free(g, n);
    ns_report_free(&r);
    char out[32768];
    int rc = tu_run(out, sizeof out, "report %s", root);
    if (rc != 0) fail_msg("report failed (%d): %s", rc, out);
    assert_null(strstr(out, "seeds 0, 0"));
    assert_null(strstr(out, "across 3 seeds"));

    // seeds 0 and 1 in a/, and again in b/: two seeds, the repeats left out
    const char *root2 = tu_tmpdir();
    char d[4096];
    snprintf(d, sizeof d, "%s/a", root2);
    make_two_seeds(d);
    snprintf(d, sizeof d, "%s/b", root2);
    make_two_seeds(d);
    assert_int_equal(ns_report_load(root2, &r), 0);
    assert_int_equal(r.nexp, 4);
    assert_int_equal(ns_report_seed_groups(&r, &g, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(g[0].n, 2);
    assert_int_equal(g[0].nrepeat, 2);
    TU_ASSERT_REL(g[0].s_gf[0], 9, 1e-12);  // (10 + 8) / 2, as without the repeats
    TU_ASSERT_REL(g[0].s_gf[1], sqrt(2), 1e-12);
    assert_non_null(strstr(g[0].title, "seeds 0, 1"));
    ns_seed_groups_free(g, n);
    ns_report_free(&r);
}

// The seeds figure frames every point: a run far below the flow's line (S eta / 2 = 0.1 at
// eta / eta_c = 0.5, below the old floor min(x) / 1.3 = 0.38) stays inside the y range, and
// the run that stopped at the step limit (seed 0, eta 0.15) is drawn, ringed.
static void seeds_figure_frames_every_point_and_rings_step_limit_runs(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    make_two_seeds(root);
    put(root, "fashion-mnist/fc-tanh-8/mse/sweep.csv",
        SWEEP_HEADER
        "0.1,0,converged,500,0.009,0,0.29,0.19,10.1,3.01,2,2,20,,,,,,,,,,,,1\n"
        "0.15,0,max_steps,400,0.02,0,0.28,0.18,10.05,3.02,9.7,9.7,13.33,,,,,,,,,,,,1\n"
        "0.3,0,converged,250,0.009,0,0.22,0.12,12,3.2,6.6,6.6,6.667,,,,,,,,,,,,1\n"
        "0.1,1,converged,500,0.009,0,0.29,0.19,10,3,8.0,8.0,20,,,,,,,,,,,,1\n"
        "0.4,1,converged,250,0.009,0,0.22,0.10,12,3.2,5.0,5.0,5,,,,,,,,,,,,1\n");
    char out[32768], gp[4400], *text = NULL;
    int rc = tu_run(out, sizeof out, "report %s", root);
    if (rc != 0) fail_msg("report failed (%d): %s", rc, out);
    snprintf(gp, sizeof gp, "%s/report/fashion-mnist_fc-tanh-8_mse_seeds.gp", root);
    assert_int_equal(ns_read_file(gp, &text, NULL), 0);
    const char *yr = strstr(text, "set yrange [");
    assert_non_null(yr);
    double ylo = NAN;
    assert_int_equal(sscanf(yr, "set yrange [%lf:", &ylo), 1);
    if (!(ylo < 0.1)) fail_msg("the y range starts at %g, above the point at 0.1", ylo);
    if (!strstr(text, "pt 6")) fail_msg("no ringed point in the seeds figure:\n%s", text);
    free(text);
    // the ringed point is the step-limit run: eta / eta_c = 0.75, S eta / 2 = 0.7275
    char dat[4400];
    int found = 0;
    for (int i = 0; i < 20 && !found; i++) {
        snprintf(dat, sizeof dat, "%s/report/data/fashion-mnist_fc-tanh-8_mse_seeds_%d.dat", root, i);
        char *d = NULL;
        double x, y;
        if (ns_read_file(dat, &d, NULL)) continue;
        const char *head = "# eta/eta_c value (runs that stopped at the step limit)\n";
        found = !strncmp(d, head, strlen(head)) && sscanf(d + strlen(head), "%lf %lf", &x, &y) == 2 &&
                fabs(x - 0.75) < 1e-12 && fabs(y - 0.7275) < 1e-12;
        free(d);
    }
    assert_true(found);
}

static void one_seed_per_setting_makes_no_group(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    make_sweep(root, 1);
    make_dln(root);
    ns_report r;
    assert_int_equal(ns_report_load(root, &r), 0);
    ns_seed_group *g = (ns_seed_group *)1;
    int n = -1;
    assert_int_equal(ns_report_seed_groups(&r, &g, &n), 0);
    assert_int_equal(n, 0);
    assert_null(g);
    ns_report_free(&r);
}

static void report_json_gives_the_findings(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    make_sweep(root, 1);
    make_dln(root);
    char out[65536];
    int rc = tu_run(out, sizeof out, "report %s --json", root);
    if (rc != 0) fail_msg("report failed (%d): %s", rc, out);
    ns_jval j;
    if (ns_json_parse(out, strlen(out), "report --json", &j)) fail_msg("%s: %s", ns_errmsg(), out);
    const ns_jval *exps = ns_jget(&j, "experiments");
    assert_non_null(exps);
    assert_int_equal(exps->n, 2);
    assert_true(ns_jget(&j, "error")->type == NS_JNULL);
    const ns_jval *net = &exps->items[0], *dln = &exps->items[1];
    assert_string_equal(ns_jstr(net, "kind", ""), "sweep");
    const ns_jval *f = ns_jget(net, "findings");
    TU_ASSERT_REL(ns_jnum(ns_jget(f, "eta_c"), "predicted", 0), 0.2, 1e-12);
    TU_ASSERT_REL(ns_jnum(ns_jget(f, "eta_c"), "observed", 0), 0.25, 1e-12);
    TU_ASSERT_REL(ns_jnum(ns_jget(f, "best"), "eta", 0), 0.3, 1e-12);
    assert_int_equal(ns_jget(f, "lines")->n, 4);
    f = ns_jget(dln, "findings");
    assert_true(ns_jget(ns_jget(f, "dln"), "beats_both")->type == NS_JBOOL);
    assert_int_equal((int)ns_jnum(ns_jget(f, "dln"), "beats_both", -1), 1);
    assert_int_equal(ns_jget(f, "lines")->n, 5);
    assert_true(ns_jget(&j, "figures")->n >= 9);
    ns_jval_free(&j);
}

static void empty_directory_is_a_clear_error_with_status_1(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    char out[4096];
    assert_int_equal(tu_run(out, sizeof out, "report %s", root), 1);
    assert_non_null(strstr(out, "no results under"));
    assert_non_null(strstr(out, "sweep.csv"));
    assert_int_equal(tu_run(out, sizeof out, "report %s/does-not-exist", root), 1);
    assert_non_null(strstr(out, "is not a directory"));
    assert_int_equal(tu_run(out, sizeof out, "report"), 2);
    assert_int_equal(tu_run(out, sizeof out, "report %s --coords 3", root), 2);
    assert_int_equal(tu_run(out, sizeof out, "report %s --coords 2,2", root), 2);
}

static void missing_gnuplot_is_said_in_one_sentence_and_the_documents_remain(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    make_dln(root);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "PATH=%s/no-such-bin %s report %s 2>&1", root, tu_bin(), root);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    assert_non_null(strstr(out, "gnuplot is not installed"));
    assert_non_null(strstr(out, "DLN best eta beats both minimizers: yes"));  // findings need no gnuplot
    char md[4096];
    snprintf(md, sizeof md, "%s/report/report.md", root);
    assert_true(file_contains(md, "not drawn"));
}

// ---- hostile strings -------------------------------------------------------------------------------
// A string that would run a command (or write a file) if gnuplot expanded it: a backquote,
// system() after breaking out of either kind of quote or the line, an @macro, control bytes.
// Each asks to create MARKS/<k>_<variant>; nothing may ever appear there.
static void hostile(char *out, size_t cap, const char *marks, int k, int json) {
    snprintf(out, cap,
             "x`touch %s/%d_bq` y'; system('touch %s/%d_sq'); z='%s!touch %s/%d_nl%s"
             "system(%stouch %s/%d_dq%s)%s; set output '%s/%d_out' @PWN %s %s"
             " <script>alert(%d)</script> &amp; <img src=x onerror=alert(1)>",
             marks, k, marks, k, json ? "\\n" : "\n", marks, k, json ? "\\n" : "\n", json ? "\\\"" : "\"", marks,
             k, json ? "\\\"" : "\"", json ? "\\\"" : "\"", marks, k, json ? "\\\\" : "\\",
             json ? "\\u0001\\u001b\\r\\t\\u007f" : "\x01\x1b\r\t\x7f", k);
}

// Every '<' of index.html opens one of the tags the writer makes, every '&' an entity it
// makes, and the text of each hostile string is there escaped: no string from a results
// folder adds markup or leaves an attribute.
static void html_is_only_the_writers_markup(const char *path) {
    static const char *const tags[] = {"<!DOCTYPE html>", "<html>", "<head>", "<meta charset=\"utf-8\">",
                                       "<title>", "<style>", "<body>", "<h1>", "<h2>", "<h3>", "<h4>", "<p>",
                                       "<ul>", "<li>", "<table>", "<tr>", "<th>", "<td>", "<figure>",
                                       "<figcaption>", "<a href=\"", "<img src=\"", "</"};
    static const char *const entities[] = {"&amp;", "&lt;", "&gt;", "&quot;"};
    char *html = tu_slurp(path, NULL);
    for (const char *p = html; *p; p++) {
        int ok = 1;
        if (*p == '<') {
            ok = 0;
            for (size_t t = 0; t < sizeof tags / sizeof *tags; t++) ok |= !strncmp(p, tags[t], strlen(tags[t]));
            // an attribute value holds only file-name characters up to its closing quote
            if (!strncmp(p, "<a href=\"", 9) || !strncmp(p, "<img src=\"", 10)) {
                const char *v = strchr(p, '"') + 1, *e = v;
                while (isalnum((unsigned char)*e) || strchr("._-", *e)) e++;
                ok = *e == '"' && e > v;
            }
        } else if (*p == '&') {
            ok = 0;
            for (size_t t = 0; t < sizeof entities / sizeof *entities; t++) ok |= !strncmp(p, entities[t], strlen(entities[t]));
        }
        if (!ok) fail_msg("index.html: markup the writer did not make at byte %ld: %.60s", (long)(p - html), p);
    }
    if (!strstr(html, "&lt;script&gt;alert(") || !strstr(html, "&amp;amp; &lt;img src=x onerror=alert(1)&gt;"))
        fail_msg("index.html lacks the escaped hostile strings");
    if (!strstr(html, "alt=\"")) fail_msg("index.html has no drawn figure: the alt attribute is untested");
    free(html);
}

static int count_entries(const char *dir) {
    char cmd[8192], line[64];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int n = fgets(line, sizeof line, p) ? atoi(line) : -1;
    pclose(p);
    return n;
}

static void hostile_strings_in_a_results_folder_never_reach_a_shell(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    char marks[300];
    snprintf(marks, sizeof marks, "%.250s/marks", root);
    assert_int_equal(ns_mkdirs(marks), 0);
    char h[7][2048];
    for (int k = 0; k < 7; k++) hostile(h[k], sizeof h[k], marks, k, 1);
    put(root, "ds/fc/mse/sweep.csv",
        SWEEP_HEADER "0.05,0,converged,900,0.009,0,0.30,0.20,10,3,9.8,9.8,40,,,,,,,,,,,,1\n"
                     "0.3,0,converged,250,0.009,0,0.22,0.12,12,3.2,6.6,6.6,6.667,,,,,,,,,,,,1\n");
    char cfg[16384], sum[24000];
    snprintf(cfg, sizeof cfg,
             "\"config\": {\"arch\": \"%s\", \"param\": \"%s\", \"init_scale\": 1, \"seed\": 0, "
             "\"dataset\": \"%s\", \"n\": 100, \"loss\": \"%s\", \"lr\": 0.05}",
             h[0], h[1], h[2], h[3]);
    // the run's summary names a layer (a key of final.per_layer, drawn as a key entry)
    snprintf(sum, sizeof sum,
             "{\"kind\": \"train\", %s, \"status\": \"converged\", \"final\": {\"l1\": 10, "
             "\"adaptive_sharpness\": 3, \"per_layer\": {\"%s\": {\"sharpness\": 5}}}}", cfg, h[6]);
    put(root, "ds/fc/mse/seed_0/lr_0.05/summary.json", sum);
    put(root, "ds/fc/mse/seed_0/lr_0.05/trajectory.csv",
        "step,time,train_loss,train_acc,l1,l2,test_loss,test_err,lambda_max,sharpness,step_seconds\n"
        "0,0,1,0.5,10,3,,,2,2,0.01\n5,0.25,0.5,0.5,10,3,,,4,4,0.01\n10,0.5,0.1,0.5,10,3,,,5,5,0.01\n");
    snprintf(sum, sizeof sum, "{\"kind\": \"flow\", %s, \"s_gf\": 10, \"eta_c\": 0.2, \"status\": \"converged\"}", cfg);
    put(root, "ds/fc/mse/seed_0/flow/summary.json", sum);
    put(root, "ds/fc/mse/seed_0/flow/trajectory.csv",
        "step,time,h,train_loss,train_acc,l1,l2,test_loss,test_err,lambda_max,sharpness\n"
        "0,0,0.05,1,0.1,10,3,,,2,2\n1,0.05,0.05,0.8,0.2,10,3,,,5,5\n2,0.1,0.05,0.5,0.4,10,3,,,10,10\n");
    // A DLN folder whose name is hostile (no theory.json), and one whose theory.json is.
    const char *dlncsv = "eta,status,steps,l1,sharpness,two_over_eta,gen_err,dist_min_l1,dist_min_sharp,train_loss\n"
                         "0.1,converged,800,1.02,3.98,20,0.45,0.04,0.8,1e-9\n"
                         "0.3,converged,300,1.2,3.6,6.667,0.12,0.45,0.4,1e-9\n";
    char name[1200], rel[1500];
    // (no '/' in a folder name: gnuplot runs in ROOT/report, so the marks are at ../marks)
    snprintf(name, sizeof name, "dln`cd ..;cd marks;touch 6_bq`'; system('cd ..;cd marks;touch 6_sq'); '\n!cd ..;cd marks;touch 6_nl\n");
    snprintf(rel, sizeof rel, "%s/dln.csv", name);
    put(root, rel, dlncsv);
    put(root, "dln2/dln.csv", dlncsv);
    char theory[8192];
    snprintf(theory, sizeof theory,
             "{\"task\": {\"kind\": \"%s\", \"n\": 1, \"d\": 2, \"model\": \"%s\"},\n"
             " \"min_l1\": {\"beta\": [1, 0], \"l1\": 1, \"sharpness\": 4, \"gen_err\": 0.5}}\n", h[4], h[5]);
    put(root, "dln2/theory.json", theory);
    char out[65536];
    int rc = tu_run(out, sizeof out, "report %s", root);
    if (rc != 0) fail_msg("report failed (%d): %s", rc, out);
    if (count_entries(marks) != 0) fail_msg("report ran a command from the data: %s is not empty", marks);
    // The saved scripts are inert too when redrawn by hand.
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s/report' && for f in *.gp; do gnuplot \"$f\" >/dev/null 2>&1; done", root);
    assert_int_equal(system(cmd), 0);
    if (count_entries(marks) != 0) fail_msg("a saved .gp ran a command from the data: %s is not empty", marks);
    snprintf(cmd, sizeof cmd, "grep -l 'touch' '%s'/report/*.gp | wc -l", root);
    char line[64];
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int scripts = fgets(line, sizeof line, p) ? atoi(line) : 0;
    pclose(p);
    assert_true(scripts >= 4);  // the hostile strings are there, as inert titles
    snprintf(cmd, sizeof cmd, "%s/report/gnuplot.log", root);
    assert_false(file_contains(cmd, "rror"));
    snprintf(cmd, sizeof cmd, "%s/report/index.html", root);
    html_is_only_the_writers_markup(cmd);
}

// ---- symbolic links ---------------------------------------------------------------------------------
static void links_back_into_the_tree_are_followed_once(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    make_sweep(root, 0);
    char link[4096], target[4096];
    snprintf(link, sizeof link, "%s/self", root);
    assert_int_equal(symlink(".", link), 0);
    snprintf(link, sizeof link, "%s/again", root);
    snprintf(target, sizeof target, "%s/fashion-mnist", root);
    assert_int_equal(symlink(target, link), 0);
    ns_report r;
    assert_int_equal(ns_report_load(root, &r), 0);
    assert_int_equal(r.nexp, 1);  // one sweep, however many links lead to it
    assert_int_equal(r.nflow, 1);
    ns_report_free(&r);
    // Three links to '.' would make 3^16 paths to walk: it must end at once.
    const char *names[] = {"a", "b", "c"};
    for (int k = 0; k < 3; k++) {
        snprintf(link, sizeof link, "%s/fashion-mnist/%s", root, names[k]);
        assert_int_equal(symlink(".", link), 0);
    }
    char cmd[8192], out[8192];
    snprintf(cmd, sizeof cmd, "timeout 60 %s report %s --json 2>&1", tu_bin(), root);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("report did not finish cleanly (%d): %s", st, out);
}

// ---- numbers out of range ---------------------------------------------------------------------------
static void out_of_range_numbers_in_results_are_read_without_undefined_casts(void **state) {
    (void)state;
    const char *root = tu_tmpdir();
    // seed 2^53 + 1 keeps its last digit; seed 1e300, steps 3.26e21 and nan are no integers
    // that fit a long (casting them is undefined behaviour: the SAN build stops on it).
    put(root, "a/b/mse/sweep.csv",
        SWEEP_HEADER "0.05,9007199254740993,converged,3.26e21,0.009,0,0.30,0.20,10,3,9.8,9.8,40,,,,,,,,,,,,1\n"
                     "0.1,1e300,converged,nan,0.009,0,0.29,0.19,10.1,3.01,9.9,9.9,20,,,,,,,,,,,,1\n");
    put(root, "t/summary.json",
        "{\"kind\": \"train\", \"config\": {\"arch\": \"fc-tanh-8\", \"seed\": 1e300, \"n\": -1e30, "
        "\"dataset\": \"fashion-mnist\", \"loss\": \"mse\", \"lr\": 0.1}, \"steps\": 1e19, \"status\": \"converged\"}");
    put(root, "dln/dln.csv", "eta,status,steps\n0.1,converged,1e40\n");
    put(root, "dln/theory.json", "{\"task\": {\"kind\": \"single\", \"n\": 1e12, \"d\": -5e9}}");
    ns_report r;
    assert_int_equal(ns_report_load(root, &r), 0);
    int seen_big = 0;
    for (int k = 0; k < r.nexp; k++) {
        const ns_rep_exp *e = &r.exp[k];
        for (int i = 0; i < e->nrun; i++) assert_int_equal(e->run[i].steps, -1);
        if (e->kind == NS_EXP_SWEEP && e->cfg.seed == 9007199254740993ULL) seen_big = 1;
        if (e->kind == NS_EXP_TRAIN) {
            // 1e300 is no seed: unknown (seed_known 0, seed 0), never a wrapped-around number
            assert_int_equal(e->cfg.seed_known, 0);
            assert_true(e->cfg.seed == 0);
            assert_int_equal(e->cfg.n, -1);
        }
        if (e->kind == NS_EXP_DLN) {
            assert_int_equal(e->dln_n, -1);
            assert_int_equal(e->dln_d, -1);
        }
        assert_null(strstr(e->title, "-9223372036854775808"));
    }
    assert_true(seen_big);
    ns_report_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(findings_of_a_network_sweep_match_the_known_answers),
        cmocka_unit_test(findings_of_a_dln_say_whether_the_best_eta_beats_both_minimizers),
        cmocka_unit_test(observed_eta_c_falls_back_to_the_smallest_eta_without_a_flow),
        cmocka_unit_test(spearman_gives_tied_values_their_mean_rank),
        cmocka_unit_test(sweep_with_two_seeds_becomes_two_experiments),
        cmocka_unit_test(train_runs_and_a_flow_with_the_same_config_form_one_experiment),
        cmocka_unit_test(csv_with_a_short_row_is_rejected_naming_file_and_line),
        cmocka_unit_test(report_of_a_network_sweep_draws_every_figure_cleanly),
        cmocka_unit_test(diverged_runs_are_marked_and_never_plotted_as_points),
        cmocka_unit_test(report_of_a_dln_only_directory_draws_the_interpolating_set),
        cmocka_unit_test(dln_generalization_spanning_decades_gets_a_log_axis),
        cmocka_unit_test(norms_figure_pads_the_right_axis),
        cmocka_unit_test(dln_interpolators_are_drawn_in_3d_and_projected_where_minimizers_differ),
        cmocka_unit_test(seeds_of_one_setting_are_summarized_with_mean_and_sd),
        cmocka_unit_test(seeds_count_l1_growth_by_the_findings_rule),
        cmocka_unit_test(seed_groups_of_settings_differing_in_param_get_distinct_figures),
        cmocka_unit_test(one_seed_per_setting_makes_no_group),
        cmocka_unit_test(sweeps_of_one_setting_and_seed_are_repeats_not_seeds),
        cmocka_unit_test(seeds_figure_frames_every_point_and_rings_step_limit_runs),
        cmocka_unit_test(report_json_gives_the_findings),
        cmocka_unit_test(empty_directory_is_a_clear_error_with_status_1),
        cmocka_unit_test(missing_gnuplot_is_said_in_one_sentence_and_the_documents_remain),
        cmocka_unit_test(hostile_strings_in_a_results_folder_never_reach_a_shell),
        cmocka_unit_test(links_back_into_the_tree_are_followed_once),
        cmocka_unit_test(out_of_range_numbers_in_results_are_read_without_undefined_casts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
