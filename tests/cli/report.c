// `normsharp report DIR` from the command line: the figures it has gnuplot draw (network
// sweeps, diverged runs, the DLN interpolating set in 2-D and 3-D, seed groups), --json,
// --coords, and its messages and exit statuses, on the synthetic directories of
// report_fixtures.h.
#include "report_fixtures.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(report_of_a_network_sweep_draws_every_figure_cleanly),
        cmocka_unit_test(diverged_runs_are_marked_and_never_plotted_as_points),
        cmocka_unit_test(report_of_a_dln_only_directory_draws_the_interpolating_set),
        cmocka_unit_test(dln_generalization_spanning_decades_gets_a_log_axis),
        cmocka_unit_test(norms_figure_pads_the_right_axis),
        cmocka_unit_test(dln_interpolators_are_drawn_in_3d_and_projected_where_minimizers_differ),
        cmocka_unit_test(seeds_of_one_setting_are_summarized_with_mean_and_sd),
        cmocka_unit_test(sweeps_of_one_setting_and_seed_are_repeats_not_seeds),
        cmocka_unit_test(seeds_figure_frames_every_point_and_rings_step_limit_runs),
        cmocka_unit_test(report_json_gives_the_findings),
        cmocka_unit_test(empty_directory_is_a_clear_error_with_status_1),
        cmocka_unit_test(hostile_strings_in_a_results_folder_never_reach_a_shell),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
