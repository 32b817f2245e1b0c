// Report: reading result directories (docs/OUTPUTS.md), the findings computed from them,
// seed groups, and what the library refuses or survives (missing gnuplot, links, hostile and
// out-of-range values). The command `normsharp report` is tested in cli/report.c.
#include "report_fixtures.h"

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

static void coords_are_two_different_1_based_coordinates(void **state) {
    (void)state;
    ns_report_opts o;
    ns_report_opts_default(&o);
    assert_int_equal(ns_report_coords_parse("1,3", &o), 0);
    assert_int_equal(o.coord_i, 0);
    assert_int_equal(o.coord_j, 2);
    assert_int_equal(ns_report_coords_parse("2,2", &o), NS_EINVAL);
    assert_string_equal(ns_errmsg(), "--coords needs two different coordinates, got '2,2'");
    assert_int_equal(ns_report_coords_parse("4", &o), NS_EINVAL);
    assert_string_equal(ns_errmsg(), "--coords expects two coordinates I,J (1-based), got '4'");
    assert_int_equal(ns_report_coords_parse("0,1", &o), NS_EINVAL);
    assert_int_equal(ns_report_coords_parse("1,x", &o), NS_EINVAL);
    assert_true(o.coord_i == 0 && o.coord_j == 2);  // unchanged on error
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(findings_of_a_network_sweep_match_the_known_answers),
        cmocka_unit_test(coords_are_two_different_1_based_coordinates),
        cmocka_unit_test(findings_of_a_dln_say_whether_the_best_eta_beats_both_minimizers),
        cmocka_unit_test(observed_eta_c_falls_back_to_the_smallest_eta_without_a_flow),
        cmocka_unit_test(spearman_gives_tied_values_their_mean_rank),
        cmocka_unit_test(sweep_with_two_seeds_becomes_two_experiments),
        cmocka_unit_test(train_runs_and_a_flow_with_the_same_config_form_one_experiment),
        cmocka_unit_test(csv_with_a_short_row_is_rejected_naming_file_and_line),
        cmocka_unit_test(seeds_count_l1_growth_by_the_findings_rule),
        cmocka_unit_test(seed_groups_of_settings_differing_in_param_get_distinct_figures),
        cmocka_unit_test(one_seed_per_setting_makes_no_group),
        cmocka_unit_test(missing_gnuplot_is_said_in_one_sentence_and_the_documents_remain),
        cmocka_unit_test(links_back_into_the_tree_are_followed_once),
        cmocka_unit_test(out_of_range_numbers_in_results_are_read_without_undefined_casts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
