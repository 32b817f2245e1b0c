// The curvature views (--adaptive, --per-layer, --density-*) and --weight-decay that
// `train`, `sweep` and `sharpness` share, from the command line, on a tiny slice of
// Fashion-MNIST: opt-in columns and files (the default outputs stay as they were), the
// sweep's fingerprint refusing to mix weight decays, the report's figures of the views and
// of SGD sweeps, the DLN norms, and bad options.
#include "testutil.h"

#define TINY "--arch fc-tanh-8 --n 64 --n-test 32 --top-k 1 --trace-probes 2"
#define SWEEP_DIR "fashion-mnist/fc-tanh-8/mse"

static char out[65536];

static char *file_in(const char *dir, const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return tu_slurp(p, NULL);
}

static int exists_in(const char *dir, const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return ns_exists(p);
}

static void train_records_the_views_only_when_asked(void **state) {
    (void)state;
    char plain[256], views[256];
    snprintf(plain, sizeof plain, "%s", tu_tmpdir());
    snprintf(views, sizeof views, "%s", tu_tmpdir());
    EXPECT_EXIT(0, "status", "train %s --lr 0.1 --max-steps 20 --eig-every 5 --out %s", TINY, plain);
    char *t = file_in(plain, "trajectory.csv");
    assert_true(!strncmp(t, "step,time,train_loss,train_acc,l1,l2,test_loss,test_err,lambda_max,sharpness,step_seconds\n",
                         strlen("step,time,train_loss,train_acc,l1,l2,test_loss,test_err,lambda_max,sharpness,step_seconds\n")));
    free(t);
    char *s = file_in(plain, "summary.json");
    assert_null(strstr(s, "adaptive"));
    assert_null(strstr(s, "weight_decay"));
    assert_null(strstr(s, "per_layer"));
    free(s);
    assert_false(exists_in(plain, "density.csv"));

    EXPECT_EXIT(0, "status", "train %s --lr 0.1 --max-steps 20 --log-every 5 --eig-every 5 --weight-decay 0.01 --adaptive --per-layer "
                "--density-probes 2 --density-steps 10 --out %s", TINY, views);
    t = file_in(views, "trajectory.csv");
    const char *head = "step,time,train_loss,train_acc,l1,l2,test_loss,test_err,lambda_max,sharpness,step_seconds,"
                       "objective,adaptive_sharpness,layer_sharpness:fc1.weight,layer_sharpness:fc1.bias,"
                       "layer_sharpness:fc2.weight,layer_sharpness:fc2.bias\n";
    if (strncmp(t, head, strlen(head))) fail_msg("trajectory header:\n%.400s", t);
    free(t);
    ns_jval v;
    char p[1024];
    snprintf(p, sizeof p, "%s/summary.json", views);
    assert_int_equal(ns_json_parse_file(p, &v), 0);
    const ns_jval *f = ns_jget(&v, "final"), *cfg = ns_jget(&v, "config");
    assert_true(ns_jnum(cfg, "weight_decay", 0) == 0.01);
    assert_true(ns_jnum(f, "adaptive_sharpness", -1) > 0);
    double l2 = ns_jnum(f, "l2", NAN);
    TU_ASSERT_REL(ns_jnum(f, "objective", NAN), ns_jnum(f, "train_loss", NAN) + 0.005 * l2 * l2, 1e-12);
    const ns_jval *pl = ns_jget(f, "per_layer");
    assert_true(pl && pl->n == 4);
    assert_true(ns_jnum(ns_jget(pl, "fc1.weight"), "sharpness", -1) > 0);
    assert_int_equal((int)ns_jnum(ns_jget(f, "density"), "probes", 0), 2);
    ns_jval_free(&v);
    // the density: a grid of (lambda, density) that integrates to about 1
    snprintf(p, sizeof p, "%s/density.csv", views);
    char *d = tu_slurp(p, NULL);
    assert_true(!strncmp(d, "lambda,density\n", 15));
    double mass = 0, prev_x = NAN, x, y;
    int rows = 0;
    for (char *line = strchr(d, '\n') + 1; sscanf(line, "%lf,%lf", &x, &y) == 2; line = strchr(line, '\n') + 1) {
        if (!isnan(prev_x)) mass += y * (x - prev_x);
        prev_x = x;
        rows++;
    }
    assert_int_equal(rows, 400);
    assert_true(fabs(mass - 1) < 0.02);
    free(d);
    // along the trajectory: the density of every --eig-every row (0, 5, 10, 15) and the final one (20)
    snprintf(p, sizeof p, "%s/density_trajectory.csv", views);
    d = tu_slurp(p, NULL);
    assert_true(!strncmp(d, "step,lambda,density\n", 20));
    int per_step[5] = {0};
    long step;
    for (char *line = strchr(d, '\n') + 1; sscanf(line, "%ld,%lf,%lf", &step, &x, &y) == 3; line = strchr(line, '\n') + 1) {
        assert_true(step % 5 == 0 && step <= 20);
        per_step[step / 5]++;
    }
    for (int k = 0; k < 5; k++) assert_int_equal(per_step[k], 400);
    free(d);
}

// A diverged run's final point has no spectrum, so no views either (they would be the
// curvature of a blown-up point and cost as much as the whole run).
static void a_diverged_run_gets_no_views(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    EXPECT_EXIT(0, "diverged", "train %s --lr 50 --max-steps 50 --adaptive --per-layer --density-probes 2 --out %s", TINY, dir);
    char p[1024];
    ns_jval v;
    snprintf(p, sizeof p, "%s/summary.json", dir);
    assert_int_equal(ns_json_parse_file(p, &v), 0);
    const ns_jval *f = ns_jget(&v, "final");
    assert_non_null(f);
    assert_null(ns_jget(f, "adaptive_sharpness"));
    assert_null(ns_jget(f, "per_layer"));
    assert_null(ns_jget(f, "density"));
    ns_jval_free(&v);
    assert_false(exists_in(dir, "density.csv"));
}

static void bad_view_options_exit_2_with_a_sentence(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    EXPECT_EXIT(2, "--adaptive-eps applies only with --adaptive", "train %s --lr 0.1 --adaptive-eps 0.1 --out %s", TINY, dir);
    EXPECT_EXIT(2, "apply only with --density-probes", "train %s --lr 0.1 --density-steps 5 --out %s", TINY, dir);
    EXPECT_EXIT(2, "--weight-decay", "train %s --lr 0.1 --weight-decay -1 --out %s", TINY, dir);
    EXPECT_EXIT(2, "--weight-decay", "sweep %s --lr 0.1 --weight-decay nan --out %s", TINY, dir);
    EXPECT_EXIT(0, "", "init --arch fc-tanh-8 --out %s/w", dir);
    EXPECT_EXIT(2, "go together", "sharpness --weights %s/w --n 64 --density-probes 2", dir);
    EXPECT_EXIT(0, "adaptive", "sharpness --weights %s/w --n 64 --adaptive --per-layer --weight-decay 0.1", dir);
    assert_non_null(strstr(out, "fc2.bias"));
}

static void sweep_columns_fingerprint_and_report(void **state) {
    (void)state;
    char dir[256], csv[512];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    const char *grid = "--lr 0.05,0.5 --max-steps 30 --eig-every 10 --adaptive --per-layer --density-probes 2 --density-steps 8";
    EXPECT_EXIT(0, "sweep.csv", "sweep %s %s --weight-decay 0.01 --out %s", TINY, grid, dir);
    snprintf(csv, sizeof csv, "%s/%s", dir, SWEEP_DIR);
    char *s = file_in(csv, "sweep.csv");
    const char *tail = ",seconds,weight_decay,objective,adaptive_sharpness,layer_sharpness:fc1.weight,"
                       "layer_sharpness:fc1.bias,layer_sharpness:fc2.weight,layer_sharpness:fc2.bias\n";
    if (!strstr(s, tail)) fail_msg("sweep.csv header:\n%.400s", s);
    free(s);
    // resuming without the weight decay would mix runs: refused, naming the key
    EXPECT_EXIT(2, "weight_decay", "sweep %s %s --out %s", TINY, grid, dir);
    // the report draws the views and says the weight decay in the title
    EXPECT_EXIT(0, "", "report %s", dir);
    char rep[600];
    snprintf(rep, sizeof rep, "%s/report", dir);
    const char *tag = "fashion-mnist_fc-tanh-8_mse_seed0_wd0.01";
    static const char *figs[] = {"adaptive", "layers", "density"};
    for (int k = 0; k < 3; k++) {
        char name[256];
        snprintf(name, sizeof name, "%s_%s.gp", tag, figs[k]);
        if (!exists_in(rep, name)) fail_msg("no %s in %s", name, rep);
    }
    char *md = file_in(rep, "report.md");
    assert_non_null(strstr(md, "weight decay λ = 0.01"));
    free(md);
}

static void report_names_sgd_sweeps(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    EXPECT_EXIT(0, "sweep.csv", "sweep %s --lr 0.05,0.1 --batch 16 --max-steps 20 --out %s", TINY, dir);
    EXPECT_EXIT(0, "", "report %s", dir);
    char rep[600];
    snprintf(rep, sizeof rep, "%s/report", dir);
    char *md = file_in(rep, "report.md");
    assert_non_null(strstr(md, "SGD batch 16"));
    free(md);
    assert_true(exists_in(rep, "fashion-mnist_fc-tanh-8_mse_seed0_batch16_sharpness.gp"));
}

static void dln_reports_beta_l1_and_the_squared_l2_norm_of_the_weights(void **state) {
    (void)state;
    ns_jval v;
    // shared weights, beta = w*w: ||w||_2^2 = sum w_i^2 = ||beta||_1 exactly
    EXPECT_EXIT(0, "beta", "dln train --x 0.5,1,2 --beta-star 1,1,1 --alpha 0.1 --lr 0.05 --json");
    assert_int_equal(ns_json_parse(out, strlen(out), "dln train --json", &v), 0);
    const ns_jval *f = ns_jget(&v, "final");
    TU_ASSERT_REL(ns_jnum(f, "w_l2_sq", NAN), ns_jnum(f, "beta_l1", NAN), 1e-12);
    TU_ASSERT_REL(ns_jnum(f, "beta_l1", NAN), ns_jnum(f, "l1", NAN), 0);
    ns_jval_free(&v);
    // beta = u*u - v*v: ||u||^2 + ||v||^2 >= ||beta||_1, with room between them at alpha = 1
    EXPECT_EXIT(0, "beta", "dln train --x 0.5,1,2 --beta-star 1,-1,1 --model pm --alpha 1 --lr 0.05 --json");
    assert_int_equal(ns_json_parse(out, strlen(out), "dln train --json", &v), 0);
    f = ns_jget(&v, "final");
    assert_true(ns_jnum(f, "w_l2_sq", NAN) > 1.5 * ns_jnum(f, "beta_l1", NAN));
    ns_jval_free(&v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(train_records_the_views_only_when_asked),
        cmocka_unit_test(a_diverged_run_gets_no_views),
        cmocka_unit_test(bad_view_options_exit_2_with_a_sentence),
        cmocka_unit_test(sweep_columns_fingerprint_and_report),
        cmocka_unit_test(report_names_sgd_sweeps),
        cmocka_unit_test(dln_reports_beta_l1_and_the_squared_l2_norm_of_the_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
