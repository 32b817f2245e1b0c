// `normsharp dln` (train, theory, sweep): bad input gives one clear sentence and the right exit
// status (2 for options, 1 for file contents), and a sweep writes dln.csv, theory.json and
// the run summaries, resumes, and does not depend on --jobs.
#include "testutil.h"
#include "normsharp/dln.h"

static char out[65536];

static void write_text(const char *path, const char *text) { tu_spit(path, text, strlen(text)); }

static void help_lists_the_subcommands_and_each_has_help(void **state) {
    (void)state;
    EXPECT_EXIT(0, "sweep", "dln --help");
    assert_non_null(strstr(out, "train"));
    assert_non_null(strstr(out, "theory"));
    EXPECT_EXIT(0, "--lr", "dln train --help");
    EXPECT_EXIT(0, "--json", "dln theory --help");
    assert_non_null(strstr(out, "also write DIR/theory.json"));  // what theory writes, not summary.json
    assert_null(strstr(out, "summary.json"));
    EXPECT_EXIT(0, "also write DIR/summary.json", "dln train --help");
    EXPECT_EXIT(0, "--jobs", "dln sweep --help");
    EXPECT_EXIT(2, "usage", "dln");
    EXPECT_EXIT(2, "unknown dln subcommand 'fly'", "dln fly");
}

static void bad_options_exit_2_with_a_sentence_naming_the_option(void **state) {
    (void)state;
    static const struct {
        const char *args, *sentence_part;
    } bad[] = {
        {"dln train --d 0", "--d"},
        {"dln train --preset even --s 40", "--s (40) must not exceed --d (30)"},
        {"dln train --alpha -0.5", "--alpha"},
        {"dln theory --alpha 0", "--alpha"},
        {"dln train --x 1,nan,2", "--x"},
        {"dln theory --x 1,2,3 --beta-star 1,2", "--beta-star has 2 values"},
        {"dln train --lr abc", "--lr"},
        {"dln train --model mlp", "--model"},
        {"dln train --task dense", "--task must be single, sparse or csv, got 'dense'"},
        {"dln theory --preset huge", "--preset"},
        {"dln theory --preset even --sigma-diag 1,2", "--sigma-diag"},
        {"dln sweep --lr 0.1:1:3", "--out DIR is required"},
        {"dln sweep --out /tmp/x", "--lr GRID is required"},
        {"dln theory --bogus 1", "unknown option '--bogus'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) EXPECT_EXIT(2, bad[i].sentence_part, "%s", bad[i].args);
}

static void bad_files_exit_1_with_the_file_and_line(void **state) {
    (void)state;
    char dir[256], x[300], y[300], z[300];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(x, sizeof x, "%s/x.csv", dir);
    snprintf(y, sizeof y, "%s/y.csv", dir);
    snprintf(z, sizeof z, "%s/bad.csv", dir);
    write_text(x, "1,2,3\n4,5,6\n");
    write_text(y, "1\n2\n");
    write_text(z, "1,2,3\n4,5\n");
    EXPECT_EXIT(1, "line 2 has 2 values but the first row has 3", "dln theory --x-csv %s --y-csv %s", z, y);
    write_text(z, "1,2,3\n4,inf,6\n");
    EXPECT_EXIT(1, "not a finite number", "dln theory --x-csv %s --y-csv %s", z, y);
    write_text(z, "1,2,3\n4,five,6\n");
    EXPECT_EXIT(1, "line 2, value 2: 'five' is not a number", "dln theory --x-csv %s --y-csv %s", z, y);
    write_text(z, "1\n2\n3\n");
    EXPECT_EXIT(1, "one label per example", "dln theory --x-csv %s --y-csv %s", x, z);
    EXPECT_EXIT(1, "cannot open", "dln theory --x-csv %s/missing.csv --y-csv %s", dir, y);
    EXPECT_EXIT(2, "--y-csv", "dln theory --x-csv %s", x);
    // a good CSV task works, with a teacher from a file
    write_text(z, "0.5\n0.5\n0\n");
    EXPECT_EXIT(0, "min_sharpness", "dln theory --x-csv %s --y-csv %s --beta-star-csv %s", x, y, z);
}

static void train_json_reports_the_run(void **state) {
    (void)state;
    int st = tu_run(out, sizeof out, "dln train --x 0.5,1,2 --beta-star 1,1,1 --alpha 0.1 --lr 0.05 --json 2>/dev/null");
    assert_int_equal(st, 0);
    ns_jval v;
    if (ns_json_parse(out, strlen(out), "train --json", &v)) fail_msg("%s\n%s", ns_errmsg(), out);
    assert_string_equal(ns_jstr(&v, "status", ""), "converged");
    const ns_jval *f = ns_jget(&v, "final");
    assert_non_null(f);
    assert_true(ns_jnum(f, "train_loss", 1) <= 1e-8);
    assert_true(ns_jnum(f, "sharpness", -1) > 0);
    assert_true(ns_jnum(f, "sharpness", 1e9) <= 2 / 0.05);
    const ns_jval *b = ns_jget(&v, "beta");
    assert_true(b && b->type == NS_JARR && b->n == 3);
    ns_jval_free(&v);
    // the flow reports s_GF and eta_c = 2 / s_GF
    st = tu_run(out, sizeof out, "dln train --x 0.5,1,2 --beta-star 1,1,1 --flow --json 2>/dev/null");
    assert_int_equal(st, 0);
    assert_int_equal(ns_json_parse(out, strlen(out), "flow --json", &v), 0);
    f = ns_jget(&v, "final");
    TU_ASSERT_REL(ns_jnum(f, "eta_c", 0), 2 / ns_jnum(f, "s_gf", 1), 1e-12);
    ns_jval_free(&v);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void sweep_writes_csv_theory_and_runs_and_resumes(void **state) {
    (void)state;
    char a[256], b[256], p[400];
    snprintf(a, sizeof a, "%s", tu_tmpdir());
    snprintf(b, sizeof b, "%s", tu_tmpdir());
    const char *task = "--task sparse --n 6 --d 10 --s 2 --noise 0.2 --seed 3 --lr 0.02:3:5";
    EXPECT_EXIT(0, "lowest generalization error", "dln sweep %s --out %s", task, a);
    assert_non_null(strstr(out, "below both minimizers"));
    // the printed table's headers are whole (they were cut to 11 characters: two_over_et)
    assert_non_null(strstr(out, " two_over_eta "));
    assert_non_null(strstr(out, " dist_min_sharp "));
    snprintf(p, sizeof p, "%s/dln.csv", a);
    char *csv = tu_slurp(p, NULL);
    const char *header = "eta,status,steps,l1,sharpness,two_over_eta,gen_err,dist_min_l1,dist_min_sharp,train_loss,"
                         "beta_l1,w_l2_sq\n";
    assert_true(!strncmp(csv, header, strlen(header)));
    assert_int_equal(count_lines(csv), 6);
    snprintf(p, sizeof p, "%s/runs/lr_0.02/summary.json", a);
    ns_jval v;
    assert_int_equal(ns_json_parse_file(p, &v), 0);
    assert_true(ns_jget(&v, "beta") && ns_jget(&v, "beta")->n == 10);
    ns_jval_free(&v);
    snprintf(p, sizeof p, "%s/theory.json", a);
    assert_int_equal(ns_json_parse_file(p, &v), 0);
    static const char *refs[] = {"min_l1", "min_l2", "min_sharpness", "hypentropy", "gen_opt"};
    for (int k = 0; k < 5; k++) {
        const ns_jval *r = ns_jget(&v, refs[k]);
        if (!r || r->type != NS_JOBJ) fail_msg("theory.json lacks %s", refs[k]);
        assert_true(isfinite(ns_jnum(r, "gen_err", NAN)));
    }
    assert_string_equal(ns_jstr(ns_jget(&v, "task"), "kind", ""), "sparse");
    ns_jval_free(&v);
    // a rerun skips every finished run and reproduces the CSV
    EXPECT_EXIT(0, "5 skipped", "dln sweep %s --out %s", task, a);
    snprintf(p, sizeof p, "%s/dln.csv", a);
    char *again = tu_slurp(p, NULL);
    assert_string_equal(csv, again);
    free(again);
    // --jobs 2 gives the same CSV; --json is one JSON object
    int st = tu_run(out, sizeof out, "dln sweep %s --out %s --jobs 2 --json 2>/dev/null", task, b);
    assert_int_equal(st, 0);
    assert_int_equal(ns_json_parse(out, strlen(out), "sweep --json", &v), 0);
    assert_int_equal((int)ns_jnum(&v, "runs", 0), 5);
    assert_non_null(ns_jget(&v, "below_both"));
    ns_jval_free(&v);
    snprintf(p, sizeof p, "%s/dln.csv", b);
    again = tu_slurp(p, NULL);
    assert_string_equal(csv, again);
    free(again);
    free(csv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(help_lists_the_subcommands_and_each_has_help),
        cmocka_unit_test(bad_options_exit_2_with_a_sentence_naming_the_option),
        cmocka_unit_test(bad_files_exit_1_with_the_file_and_line),
        cmocka_unit_test(train_json_reports_the_run),
        cmocka_unit_test(sweep_writes_csv_theory_and_runs_and_resumes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
