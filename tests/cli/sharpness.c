// `normsharp init` and `normsharp sharpness` end to end on a tiny MNIST-style dataset
// written by the test (28x28 images, so the known mnist shape applies).
#include "testutil.h"
#include "data_fixtures.h"
#include "normsharp/measure.h"
#include "normsharp/model.h"

static char data_dir[256];

static int make_data(void **state) {
    (void)state;
    snprintf(data_dir, sizeof data_dir, "%s", tu_tmpdir());
    enum { NTR = 60, NTE = 20, D = 28 * 28 };
    unsigned char *px = malloc((size_t)NTR * D), ytr[NTR], yte[NTE];
    uint32_t s = 12345;
    for (size_t i = 0; i < (size_t)NTR * D; i++) px[i] = (unsigned char)((s = s * 1103515245u + 12345u) >> 24);
    for (int i = 0; i < NTR; i++) ytr[i] = (unsigned char)(i % 10);
    for (int i = 0; i < NTE; i++) yte[i] = (unsigned char)((3 * i) % 10);
    fx_idx_pair(data_dir, "train-images", "train-labels", 1, NTR, 28, 28, px, NTR, ytr);
    fx_idx_pair(data_dir, "t10k-images", "t10k-labels", 0, NTE, 28, 28, px, NTE, yte);
    free(px);
    return 0;
}

// `normsharp init` of fc-tanh-4 for that data into a fresh directory; returns it.
static const char *init_weights(const char *extra) {
    static char dir[300];
    snprintf(dir, sizeof dir, "%s/w", tu_tmpdir());
    char out[4096];
    int rc = tu_run(out, sizeof out, "init --arch fc-tanh-4 --seed 3 --dataset mnist --data-dir %s --n 50 --out %s %s",
                    data_dir, dir, extra);
    if (rc != 0) fail_msg("init failed (%d): %s", rc, out);
    return dir;
}

// Run a command expected to print one JSON object, and parse it.
static void run_json(ns_jval *v, const char *fmt, const char *a, const char *b) {
    static char out[1 << 16];
    char args[2048];
    snprintf(args, sizeof args, fmt, a, b);
    int rc = tu_run(out, sizeof out, "%s", args);
    if (rc != 0) fail_msg("normsharp %s exited %d: %s", args, rc, out);
    if (ns_json_parse(out, strlen(out), "normsharp output", v)) fail_msg("not JSON (%s): %s", ns_errmsg(), out);
}

static void init_json_describes_the_saved_theta_0(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    ns_jval v;
    char w[400];
    snprintf(w, sizeof w, "%s/w0", dir);
    run_json(&v, "init --arch fc-relu-7 --dataset cifar10 --classes 4 --seed 9 --out %s --json%s", w, "");
    assert_int_equal((int)ns_jnum(&v, "nparams", 0), 3 * 32 * 32 * 7 + 7 + 7 * 4 + 4);
    assert_int_equal((int)ns_jnum(&v, "classes", 0), 4);
    ns_jval_free(&v);
    ns_model *m = NULL;
    ns_data_opts d;
    assert_int_equal(ns_weights_load(w, &m, &d), 0);
    assert_string_equal(d.dataset, "cifar10");
    assert_int_equal(d.classes, 4);
    // theta_0 is the model's own draw for that seed
    ns_model_config cfg = *ns_model_cfg(m);
    ns_model *fresh = NULL;
    assert_int_equal(ns_model_create(&cfg, &fresh), 0);
    assert_memory_equal(ns_model_theta(m), ns_model_theta(fresh), ns_model_nparams(m) * sizeof(real));
    ns_model_free(m);
    ns_model_free(fresh);
}

static void sharpness_json_matches_an_in_process_measurement(void **state) {
    (void)state;
    const char *w = init_weights("--loss ce");
    ns_jval v;
    run_json(&v, "sharpness --weights %s --k 2 --tol 1e-9 --max-iter 400 --trace-probes 5 --seed 4 --json%s", w, "");
    // the data options came from model.json
    const ns_jval *data = ns_jget(&v, "data");
    assert_string_equal(ns_jstr(data, "dataset", ""), "mnist");
    assert_int_equal((int)ns_jnum(data, "n", 0), 50);
    assert_string_equal(ns_jstr(data, "loss", ""), "ce");
    const ns_jval *f = ns_jget(&v, "final");
    assert_non_null(f);
    assert_true(ns_jget(f, "eig_converged")->num == 1);

    ns_model *m = NULL;
    ns_data_opts d;
    assert_int_equal(ns_weights_load(w, &m, &d), 0);
    ns_dataset ds;
    assert_int_equal(ns_data_load(&d, &ds), 0);
    ns_batch train = ns_batch_train(&ds, d.loss);
    ns_measure_opts o;
    ns_measure_opts_default(&o);
    o.eig.k = 2;
    o.eig.tol = 1e-9;
    o.eig.max_iter = 400;
    o.eig.seed = o.trace_seed = 4;
    o.trace_probes = 5;
    ns_measurement x;
    assert_int_equal(ns_measure(m, &train, NULL, &o, &x), 0);
    TU_ASSERT_REL(ns_jnum(f, "sharpness", 0), x.eig.sharpness, 1e-12);
    TU_ASSERT_REL(ns_jnum(f, "lambda_max", 0), x.eig.lambda_max, 1e-12);
    TU_ASSERT_REL(ns_jnum(f, "train_loss", 0), x.train_loss, 1e-12);
    TU_ASSERT_REL(ns_jnum(f, "trace", 0), x.trace, 1e-12);
    TU_ASSERT_REL(ns_jnum(f, "l2", 0), x.l2, 1e-12);
    assert_int_equal(ns_jget(f, "top_k")->n, 2);
    assert_true(ns_jnum(f, "test_err", -1) >= 0);  // the test split was measured too
    ns_measurement_free(&x);
    ns_data_free(&ds);
    ns_model_free(m);

    // the power method finds the same sharpness (to what float32 HVPs allow)
    ns_jval p;
    const char *ptol = sizeof(real) == 8 ? "1e-10" : "1e-5";
    run_json(&p, "sharpness --weights %s --method power --tol %s --max-iter 5000 --trace-probes 0 --json", w, ptol);
    const ns_jval *pf = ns_jget(&p, "final");
    TU_ASSERT_REL(ns_jnum(pf, "sharpness", 0), ns_jnum(f, "sharpness", 1), sizeof(real) == 8 ? 1e-6 : 1e-4);
    assert_string_equal(ns_jstr(ns_jget(&p, "eig"), "method", ""), "power");
    assert_true(ns_jget(pf, "trace")->type == NS_JNULL);
    ns_jval_free(&p);
    ns_jval_free(&v);
}

static void sharpness_options_override_the_saved_data_conventions(void **state) {
    (void)state;
    const char *w = init_weights("");
    ns_jval v;
    run_json(&v, "sharpness --weights %s --n 30 --n-test 7 --loss ce --k 1 --json%s", w, "");
    const ns_jval *data = ns_jget(&v, "data");
    assert_int_equal((int)ns_jnum(data, "n", 0), 30);
    assert_int_equal((int)ns_jnum(data, "n_test", 0), 7);
    assert_string_equal(ns_jstr(data, "loss", ""), "ce");
    ns_jval_free(&v);
}

static void sharpness_text_names_every_quantity(void **state) {
    (void)state;
    const char *w = init_weights("");
    char out[1 << 15];
    assert_int_equal(tu_run(out, sizeof out, "sharpness --weights %s --k 2", w), 0);
    const char *want[] = {"train loss", "train accuracy", "l1", "l2", "fc1.weight", "fc2.bias", "lambda_max",
                          "max|lambda|", "top 1", "top 2", "residual", "Hessian-vector products", "trace"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(out, want[i])) fail_msg("'%s' missing from:\n%s", want[i], out);
}

static void usage_errors_exit_2_and_runtime_errors_exit_1(void **state) {
    (void)state;
    const char *w = init_weights("");
    char out[4096];
    assert_int_equal(tu_run(out, sizeof out, "sharpness"), 2);
    assert_non_null(strstr(out, "--weights"));
    assert_int_equal(tu_run(out, sizeof out, "sharpness --weights %s --method lobpcg", w), 2);
    assert_int_equal(tu_run(out, sizeof out, "sharpness --weights %s --k 0", w), 2);
    assert_int_equal(tu_run(out, sizeof out, "sharpness --weights %s --bogus", w), 2);
    assert_int_equal(tu_run(out, sizeof out, "init --out /tmp/x"), 2);
    assert_int_equal(tu_run(out, sizeof out, "init --arch fc-tanh-4"), 2);
    assert_int_equal(tu_run(out, sizeof out, "init --arch fc-nope-4 --out %s/x", w), 2);
    assert_int_equal(tu_run(out, sizeof out, "init --arch fc-tanh-4 --dataset svhn --out %s/x", w), 2);
    assert_int_equal(tu_run(out, sizeof out, "init --arch fc-tanh-4 --param weird --out %s/x", w), 2);
    assert_non_null(strstr(out, "expected standard, ntk or mup"));
    // train, flow and sweep share the check (ns_param_check), before any data is read
    assert_int_equal(tu_run(out, sizeof out, "train --arch fc-tanh-4 --param mu --lr 0.1 --out %s/x", w), 2);
    assert_non_null(strstr(out, "unknown parameterization 'mu'"));
    // a model for 10 classes cannot be measured on 3
    assert_int_equal(tu_run(out, sizeof out, "sharpness --weights %s --classes 3 --n 10", w), 2);
    assert_non_null(strstr(out, "10 outputs"));
    // runtime failures name the file
    assert_int_equal(tu_run(out, sizeof out, "sharpness --weights %s/nowhere", w), 1);
    assert_non_null(strstr(out, "nowhere"));
    char path[512];
    snprintf(path, sizeof path, "%s/fc2.weight.npy", w);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(tu_run(out, sizeof out, "sharpness --weights %s", w), 1);
    assert_non_null(strstr(out, "fc2.weight.npy"));
    assert_int_equal(tu_run(out, sizeof out, "sharpness --help"), 0);
    assert_int_equal(tu_run(out, sizeof out, "init --help"), 0);
}

// One vocabulary: sharpness, train, flow and sweep spell the eigensolver options
// --top-k/--eig-tol/--eig-iters with the same defaults; the old spellings still work; an
// unknown option gets the nearest one suggested; `normsharp help CMD` is `CMD --help`.
static void eigensolver_options_have_one_vocabulary_and_one_default(void **state) {
    (void)state;
    const char *w = init_weights("");
    ns_jval a, b;
    run_json(&a, "sharpness --weights %s --top-k 2 --eig-tol 1e-9 --eig-iters 400 --trace-probes 0 --json%s", w, "");
    run_json(&b, "sharpness --weights %s --k 2 --tol 1e-9 --max-iter 400 --trace-probes 0 --json%s", w, "");
    const ns_jval *ea = ns_jget(&a, "eig"), *eb = ns_jget(&b, "eig");
    assert_int_equal((int)ns_jnum(ea, "k", 0), 2);
    assert_int_equal((int)ns_jnum(ea, "max_iter", 0), 400);
    assert_true(ns_jnum(ea, "tol", 0) == 1e-9);
    assert_true(ns_jnum(ns_jget(&a, "final"), "sharpness", 0) == ns_jnum(ns_jget(&b, "final"), "sharpness", 1));
    assert_int_equal((int)ns_jnum(eb, "max_iter", 0), 400);
    ns_jval_free(&a);
    ns_jval_free(&b);
    // the defaults are train's: top 5, 300 iterations
    run_json(&a, "sharpness --weights %s --trace-probes 0 --json%s", w, "");
    ea = ns_jget(&a, "eig");
    assert_int_equal((int)ns_jnum(ea, "k", 0), NS_TOP_K_DEFAULT);
    assert_int_equal((int)ns_jnum(ea, "max_iter", 0), NS_EIG_ITERS_DEFAULT);
    ns_jval_free(&a);
    char out[8192];
    assert_int_equal(tu_run(out, sizeof out, "sharpness --weights %s --eig-tl 1e-3", w), 2);
    if (!strstr(out, "did you mean --eig-tol?")) fail_msg("no suggestion in: %s", out);
    assert_int_equal(tu_run(out, sizeof out, "train --lr 0.1 --eig-iter 10 --out %s/t", w), 2);
    if (!strstr(out, "did you mean --eig-iters?")) fail_msg("no suggestion in: %s", out);
    assert_int_equal(tu_run(out, sizeof out, "train --lr 0.1 --tol 1e-3 --k 2 --max-iter 9 --bogus-thing 1 --out %s/t", w), 2);
    if (!strstr(out, "unknown option '--bogus-thing'") || strstr(out, "did you mean"))
        fail_msg("wrong message for a far-off option: %s", out);
    // help CMD prints the command's help
    char help[1 << 14];
    assert_int_equal(tu_run(out, sizeof out, "help sharpness"), 0);
    assert_int_equal(tu_run(help, sizeof help, "sharpness --help"), 0);
    assert_string_equal(out, help);
    assert_non_null(strstr(out, "--eig-iters N"));
    assert_non_null(strstr(out, "(also --max-iter)"));
    assert_int_equal(tu_run(out, sizeof out, "help dln sweep"), 0);
    assert_non_null(strstr(out, "usage: normsharp dln sweep"));
    // every help line fits 80 columns
    for (const char *p = help; *p;) {
        size_t n = strcspn(p, "\n");
        if (n > 80) fail_msg("help line of %zu columns: %.*s", n, (int)n, p);
        p += n + (p[n] != 0);
    }
}

// train and flow from saved weights take the data options of model.json (mnist, n 50, the
// saved data directory), as sharpness does; the command line still overrides them.
static void train_and_flow_from_weights_take_the_data_options_of_model_json(void **state) {
    (void)state;
    const char *w = init_weights("");
    const char *d = tu_tmpdir();
    const struct {
        const char *cmd;
        long n;
    } cases[] = {{"train --lr 0.1 --max-steps 2", 50}, {"flow --max-steps 2", 50},
                 {"train --lr 0.1 --max-steps 2 --n 20", 20}};
    for (int i = 0; i < 3; i++) {
        ns_jval v;
        char args[1024];
        snprintf(args, sizeof args, "%s --top-k 1 --trace-probes 0 --json --out %s/r%d --weights %%s%%s", cases[i].cmd,
                 d, i);
        run_json(&v, args, w, "");
        const ns_jval *cfg = ns_jget(&v, "config");
        if (strcmp(ns_jstr(cfg, "dataset", ""), "mnist") || ns_jnum(cfg, "n", 0) != cases[i].n)
            fail_msg("%s --weights: dataset %s, n %g", cases[i].cmd, ns_jstr(cfg, "dataset", ""), ns_jnum(cfg, "n", 0));
        ns_jval_free(&v);
    }
}

// model.json names its data directory absolutely, whatever the directory init ran in; a
// relative one (written by hand) is taken relative to the weights folder, not the current
// directory.
static void model_json_data_dir_is_absolute_or_relative_to_the_weights_folder(void **state) {
    (void)state;
    char cwd[2048], rel[4096] = "", abs[8192];
    assert_non_null(getcwd(cwd, sizeof cwd));
    for (const char *p = cwd; *p; p++)
        if (*p == '/' && p[1]) strcat(rel, "../");
    strcat(rel, data_dir + 1);  // data_dir from the current directory
    snprintf(abs, sizeof abs, "%s/%s", cwd, rel);
    char w[400], json[600], out[4096];
    snprintf(w, sizeof w, "%s/w", tu_tmpdir());
    assert_int_equal(tu_run(out, sizeof out, "init --arch fc-tanh-4 --dataset mnist --data-dir %s --n 50 --out %s", rel,
                            w), 0);
    snprintf(json, sizeof json, "%s/model.json", w);
    char *text = NULL;
    assert_int_equal(ns_read_file(json, &text, NULL), 0);
    char want[8300];
    snprintf(want, sizeof want, "\"data_dir\": \"%s\"", abs);
    if (!strstr(text, want)) fail_msg("model.json should hold %s:\n%s", want, text);
    // the same folder as ../../t.XXXXXX from the weights (both are test folders side by side)
    const char *base = strrchr(data_dir, '/') + 1;
    ns_buf b = {0};
    char *at = strstr(text, want);
    ns_buf_append(&b, text, (size_t)(at - text));
    ns_buf_printf(&b, "\"data_dir\": \"../../%s\"%s", base, at + strlen(want));
    assert_int_equal(ns_write_file_atomic(json, b.data, b.len), 0);
    ns_buf_free(&b);
    free(text);
    if (tu_run(out, sizeof out, "sharpness --weights %s --k 1 --trace-probes 0", w))
        fail_msg("a data_dir relative to the weights folder was not found: %s", out);
}

// Weights whose outputs overflow (finite, but 1e300 in double, 3e38 in float, on the last
// layer) give a training loss of inf: sharpness says that the curvature was not computed and
// why, and exits 1, instead of leaving it out without a word.
static void sharpness_says_why_when_the_loss_is_not_finite(void **state) {
    (void)state;
    const char *w = init_weights("");
    ns_model *m = NULL;
    ns_data_opts d;
    assert_int_equal(ns_weights_load(w, &m, &d), 0);
    const ns_tensor_info *head = ns_model_tensor(m, 2);  // fc2.weight
    assert_string_equal(head->name, "fc2.weight");
    real *th = ns_model_theta(m);
    for (size_t i = 0; i < head->size; i++) th[head->offset + i] = (real)(sizeof(real) == 4 ? 3e38 : 1e300);
    char big[400], out[1 << 14];
    snprintf(big, sizeof big, "%s/big", tu_tmpdir());
    assert_int_equal(ns_weights_save(m, big, &d), 0);
    ns_model_free(m);
    int rc = tu_run(out, sizeof out, "sharpness --weights %s --k 1", big);
    if (rc != 1 || !strstr(out, "training loss") || !strstr(out, "not computed"))
        fail_msg("sharpness at overflowing weights: exit %d, '%s'", rc, out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(init_json_describes_the_saved_theta_0),
        cmocka_unit_test(sharpness_json_matches_an_in_process_measurement),
        cmocka_unit_test(sharpness_options_override_the_saved_data_conventions),
        cmocka_unit_test(sharpness_text_names_every_quantity),
        cmocka_unit_test(usage_errors_exit_2_and_runtime_errors_exit_1),
        cmocka_unit_test(eigensolver_options_have_one_vocabulary_and_one_default),
        cmocka_unit_test(train_and_flow_from_weights_take_the_data_options_of_model_json),
        cmocka_unit_test(model_json_data_dir_is_absolute_or_relative_to_the_weights_folder),
        cmocka_unit_test(sharpness_says_why_when_the_loss_is_not_finite),
    };
    return cmocka_run_group_tests(tests, make_data, NULL);
}
