// Core: seeded random numbers, strict parsing, JSON, atomic files.
#include "testutil.h"
#include "normsharp/measure.h"
#include "normsharp/rng.h"

static void rng_same_seed_gives_pinned_values_on_every_machine(void **state) {
    (void)state;
    ns_rng r;
    ns_rng_seed(&r, 42, 1);
    assert_true(ns_rng_u64(&r) == 0x180247f2e3635182ULL);
    assert_true(ns_rng_u64(&r) == 0xccc3601b72c88777ULL);
    assert_true(ns_rng_u64(&r) == 0x9089cff698d1db80ULL);
    ns_rng_seed(&r, 0, 2);
    assert_true(ns_rng_normal(&r) == 0.9345508586605682);
    assert_true(ns_rng_normal(&r) == 1.1301858499218864);
    assert_true(ns_rng_normal(&r) == -1.6152433569242588);
    ns_rng_seed(&r, 7, 4);
    assert_true(ns_rng_uniform(&r) == 0.21704603281334967);
}

static void rng_seeding_follows_splitmix64_reference(void **state) {
    (void)state;
    // splitmix64 from state 0 starts e220a8397b1dcdaf, 6e789e6aa1b965f4 (Vigna's reference).
    ns_rng r;
    ns_rng_seed(&r, 0, 0);
    assert_true(r.s[0] == 0xe220a8397b1dcdafULL);
    assert_true(r.s[1] == 0x6e789e6aa1b965f4ULL);
}

static void rng_streams_differ_and_normals_have_unit_moments(void **state) {
    (void)state;
    ns_rng a, b;
    ns_rng_seed(&a, 5, 1);
    ns_rng_seed(&b, 5, 2);
    assert_true(ns_rng_u64(&a) != ns_rng_u64(&b));
    double m = 0, v = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double z = ns_rng_normal(&a);
        m += z;
        v += z * z;
    }
    m /= n;
    v = v / n - m * m;
    assert_true(fabs(m) < 0.01);
    assert_true(fabs(v - 1) < 0.01);
    for (int i = 0; i < 1000; i++) {
        double u = ns_rng_uniform(&a);
        assert_true(u >= 0 && u < 1);
        assert_true(ns_rng_below(&a, 7) < 7);
    }
}

static void parse_rejects_garbage_nan_infinite_and_out_of_range(void **state) {
    (void)state;
    double x;
    long l;
    assert_int_equal(ns_parse_double("abc", 0, 1, "--lr", &x), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "--lr"));
    assert_int_equal(ns_parse_double("nan", 0, 1, "--lr", &x), NS_EINVAL);
    assert_int_equal(ns_parse_double("inf", 0, 1e300, "--lr", &x), NS_EINVAL);
    assert_int_equal(ns_parse_double("1e999", 0, INFINITY, "--lr", &x), NS_EINVAL);
    assert_int_equal(ns_parse_double("0.5x", 0, 1, "--lr", &x), NS_EINVAL);
    assert_int_equal(ns_parse_double("", 0, 1, "--lr", &x), NS_EINVAL);
    assert_int_equal(ns_parse_double("0.25", 0, 1, "--lr", &x), 0);
    assert_true(x == 0.25);
    assert_int_equal(ns_parse_long("-5", 1, 100, "--n", &l), NS_EINVAL);
    assert_int_equal(ns_parse_long("1e99", 1, 1000000, "--n", &l), NS_EINVAL);
    assert_int_equal(ns_parse_long("2.5", 1, 100, "--n", &l), NS_EINVAL);
    assert_int_equal(ns_parse_long("1e3", 1, 100000, "--n", &l), 0);
    assert_int_equal(l, 1000);
    assert_int_equal(ns_parse_long("99999999999999999999", 1, 100, "--n", &l), NS_EINVAL);
}

static void grid_parses_lists_and_log_ranges_with_exact_ends(void **state) {
    (void)state;
    double *v;
    int n;
    assert_int_equal(ns_parse_grid("0.01,0.02,0.5", 1, "--lr", &v, &n), 0);
    assert_int_equal(n, 3);
    assert_true(v[1] == 0.02);
    free(v);
    assert_int_equal(ns_parse_grid("0.001:1:4", 1, "--lr", &v, &n), 0);
    assert_int_equal(n, 4);
    assert_true(v[0] == 0.001 && v[3] == 1);
    TU_ASSERT_REL(v[1], 0.01, 1e-12);
    TU_ASSERT_REL(v[2], 0.1, 1e-12);
    free(v);
    assert_int_equal(ns_parse_grid("", 1, "--lr", &v, &n), NS_EINVAL);
    assert_int_equal(ns_parse_grid("0.1,,0.2", 1, "--lr", &v, &n), NS_EINVAL);
    assert_int_equal(ns_parse_grid("0.1,-0.2", 1, "--lr", &v, &n), NS_EINVAL);
    assert_int_equal(ns_parse_grid("0,0.2", 1, "--lr", &v, &n), NS_EINVAL);
    assert_int_equal(ns_parse_grid("0.1:1", 1, "--lr", &v, &n), NS_EINVAL);
    assert_int_equal(ns_parse_grid("0.1:1:0", 1, "--lr", &v, &n), NS_EINVAL);
    assert_int_equal(ns_parse_grid("nan:1:3", 1, "--lr", &v, &n), NS_EINVAL);
}

static void json_written_numbers_read_back_bit_exactly(void **state) {
    (void)state;
    ns_buf b = {0};
    ns_json j;
    ns_json_begin(&j, &b);
    ns_json_obj(&j, NULL);
    ns_json_num(&j, "third", 1.0 / 3.0);
    ns_json_num(&j, "tiny", 4.9e-324);
    ns_json_num(&j, "nan", NAN);
    ns_json_str(&j, "s", "a \"quoted\"\nline");
    ns_json_arr(&j, "v");
    ns_json_num(&j, NULL, 0.1);
    ns_json_int(&j, NULL, -3);
    ns_json_end(&j);
    ns_json_obj(&j, "empty");
    ns_json_end(&j);
    ns_json_bool(&j, "t", 1);
    ns_json_end(&j);
    ns_jval v;
    assert_int_equal(ns_json_parse(b.data, b.len, "test", &v), 0);
    assert_true(ns_jnum(&v, "third", 0) == 1.0 / 3.0);
    assert_true(ns_jnum(&v, "tiny", 0) == 4.9e-324);
    assert_true(isnan(ns_jnum(&v, "nan", 0)));
    assert_string_equal(ns_jstr(&v, "s", ""), "a \"quoted\"\nline");
    const ns_jval *arr = ns_jget(&v, "v");
    assert_non_null(arr);
    assert_int_equal(arr->n, 2);
    assert_true(arr->items[0].num == 0.1 && arr->items[1].num == -3);
    assert_int_equal(ns_jget(&v, "empty")->n, 0);
    assert_true(ns_jnum(&v, "t", 0) == 1);
    ns_jval_free(&v);
    ns_buf_free(&b);
}

static void json_reader_rejects_malformed_text_with_the_file_name(void **state) {
    (void)state;
    const char *bad[] = {"{", "{\"a\" 1}", "[1,2", "{\"a\":1,}", "tru", "{\"a\":1} x", "\"abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ns_jval v;
        assert_int_equal(ns_json_parse(bad[i], strlen(bad[i]), "summary.json", &v), NS_EFORMAT);
        assert_non_null(strstr(ns_errmsg(), "summary.json"));
    }
}

// RFC 8259: control bytes inside strings must be escaped; a raw NUL used to cut an
// architecture string short. Escapes must be known, \u needs four hex digits, and \u0000
// cannot live in a C string.
static void json_reader_rejects_control_bytes_and_bad_escapes_in_strings(void **state) {
    (void)state;
    static const struct {
        const char *text;
        size_t len;
    } bad[] = {
        {"{\"arch\": \"fc-relu-8\0-4096\"}", 26}, {"{\"a\": \"x\ny\"}", 12}, {"{\"a\": \"\x01\"}", 10},
        {"{\"a\": \"\x1f\"}", 10},                {"{\"a\": \"\\q\"}", 11}, {"{\"a\": \"\\u00zz\"}", 15},
        {"{\"a\": \"\\u0000\"}", 15},             {"{\"a\": \"\\u12\"}", 13},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ns_jval v;
        if (ns_json_parse(bad[i].text, bad[i].len, "model.json", &v) != NS_EFORMAT)
            fail_msg("case %zu was accepted", i);
        assert_non_null(strstr(ns_errmsg(), "model.json"));
    }
    ns_jval v;
    const char *good = "{\"a\": \"\\u0041\\/\\t\xc3\xa9\"}";
    assert_int_equal(ns_json_parse(good, strlen(good), "x", &v), 0);
    assert_string_equal(ns_jstr(&v, "a", ""), "A/\t\xc3\xa9");
    ns_jval_free(&v);
}

// After the rename, the folder itself is synced (a power loss could otherwise lose the new
// name): seen with strace on a command that writes a summary.
static void atomic_write_syncs_the_folder_after_the_rename(void **state) {
    (void)state;
    if (system("strace -o /dev/null true >/dev/null 2>&1") != 0) skip();  // no strace, or no ptrace here
    char dir[300], cmd[2048], log[400];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(log, sizeof log, "%s/strace.log", dir);
    snprintf(cmd, sizeof cmd,
             "strace -qq -e trace=openat,fsync,rename -o %s %s dln train --x 0.5,1,2 --beta-star 1,1,1 --alpha 0.1 "
             "--lr 0.05 --out %s/run >/dev/null 2>&1", log, tu_bin(), dir);
    assert_int_equal(system(cmd), 0);
    char *text = tu_slurp(log, NULL);
    char want[400];
    snprintf(want, sizeof want, "rename(\"%s/run/summary.json.tmp.", dir);
    const char *p = strstr(text, want);
    if (!p) fail_msg("no rename onto summary.json in:\n%s", text);
    snprintf(want, sizeof want, "openat(AT_FDCWD, \"%s/run\", O_RDONLY|O_DIRECTORY", dir);
    p = strstr(p, want);
    if (!p) fail_msg("the folder is not opened after the rename:\n%s", text);
    const char *eq = strstr(p, ") = ");
    assert_non_null(eq);
    char sync[64];
    snprintf(sync, sizeof sync, "fsync(%d)", atoi(eq + 4));
    if (!strstr(eq, sync)) fail_msg("the folder is not synced:\n%s", text);
    free(text);
}

static void atomic_write_replaces_whole_file_and_leaves_no_temporary(void **state) {
    (void)state;
    const char *d = tu_tmpdir();
    char sub[512], path[600];
    snprintf(sub, sizeof sub, "%s/a/b/c", d);
    assert_int_equal(ns_mkdirs(sub), 0);
    assert_true(ns_is_dir(sub));
    snprintf(path, sizeof path, "%s/f.txt", sub);
    assert_int_equal(ns_write_file_atomic(path, "first", 5), 0);
    assert_int_equal(ns_write_file_atomic(path, "second", 6), 0);
    char *text;
    size_t len;
    assert_int_equal(ns_read_file(path, &text, &len), 0);
    assert_int_equal(len, 6);
    assert_string_equal(text, "second");
    free(text);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp", sub);
    FILE *p = popen(cmd, "r");
    int count = -1;
    assert_int_equal(fscanf(p, "%d", &count), 1);
    pclose(p);
    assert_int_equal(count, 0);
    assert_int_equal(ns_read_file("/nonexistent/x", &text, &len), NS_EIO);
    assert_non_null(strstr(ns_errmsg(), "/nonexistent/x"));
    assert_int_equal(ns_write_file_atomic("/nonexistent/dir/x", "a", 1), NS_EIO);
}

// Numbers are written in the shortest form that reads back as the same double, and
// error rates are the double nearest (n - correct) / n, not 1 - accuracy.
static void numbers_print_shortest_round_trip_and_error_rates_are_exact(void **state) {
    (void)state;
    char t[32];
    ns_rng r;
    ns_rng_seed(&r, 7, 0);
    for (int i = 0; i < 20000; i++) {
        double x = (ns_rng_uniform_in(&r, -1, 1)) * pow(10, (int)ns_rng_uniform_in(&r, -30, 30));
        if (i % 3 == 0) x = round(x * 1e4) / 1e4;  // short decimals too
        ns_fmt_double(t, x);
        assert_true(strtod(t, NULL) == x);
        char u[32];  // when 15 digits read back, they are what is printed (no longer form)
        snprintf(u, sizeof u, "%.15g", x);
        if (strtod(u, NULL) == x) assert_string_equal(t, u);
    }
    ns_fmt_double(t, 0.2143);
    assert_string_equal(t, "0.2143");
    ns_fmt_double(t, 0.1 + 0.2);
    assert_string_equal(t, "0.30000000000000004");  // a different double from 0.3: all 17 digits
    double acc = 7857.0 / 10000;
    ns_fmt_double(t, ns_error_rate(acc, 10000));
    assert_string_equal(t, "0.2143");
    ns_fmt_double(t, 1 - acc);
    assert_string_equal(t, "0.21430000000000005");  // what 1 - accuracy printed
    for (long n = 1; n < 3000; n += 7)
        for (long c = 0; c <= n; c += 1 + n / 13)
            assert_true(ns_error_rate((double)c / (double)n, n) == (double)(n - c) / (double)n);
}

static void seeds_parse_into_distinct_integers_and_name_the_option_on_errors(void **state) {
    (void)state;
    uint64_t *v;
    int n;
    assert_int_equal(ns_parse_seeds("3,0,18446744073709551615", "--seeds", &v, &n), 0);
    assert_int_equal(n, 3);
    assert_true(v[0] == 3 && v[1] == 0 && v[2] == UINT64_MAX);
    free(v);
    assert_int_equal(ns_parse_seeds("1,2,1", "--seeds", &v, &n), NS_EINVAL);
    assert_string_equal(ns_errmsg(), "--seeds lists seed 1 twice");
    assert_true(v == NULL && n == 0);
    assert_int_equal(ns_parse_seeds("1,,2", "--seeds", &v, &n), NS_EINVAL);
    assert_string_equal(ns_errmsg(), "--seeds expects a list like 0,1,2, got '1,,2'");
    assert_int_equal(ns_parse_seeds("", "--seeds", &v, &n), NS_EINVAL);
    assert_int_equal(ns_parse_seeds("-1", "--seeds", &v, &n), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "--seeds expects a non-negative integer"));
    assert_int_equal(ns_parse_seeds("18446744073709551616", "--seeds", &v, &n), NS_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(numbers_print_shortest_round_trip_and_error_rates_are_exact),
        cmocka_unit_test(rng_same_seed_gives_pinned_values_on_every_machine),
        cmocka_unit_test(rng_seeding_follows_splitmix64_reference),
        cmocka_unit_test(rng_streams_differ_and_normals_have_unit_moments),
        cmocka_unit_test(parse_rejects_garbage_nan_infinite_and_out_of_range),
        cmocka_unit_test(grid_parses_lists_and_log_ranges_with_exact_ends),
        cmocka_unit_test(seeds_parse_into_distinct_integers_and_name_the_option_on_errors),
        cmocka_unit_test(json_written_numbers_read_back_bit_exactly),
        cmocka_unit_test(json_reader_rejects_malformed_text_with_the_file_name),
        cmocka_unit_test(atomic_write_replaces_whole_file_and_leaves_no_temporary),
        cmocka_unit_test(json_reader_rejects_control_bytes_and_bad_escapes_in_strings),
        cmocka_unit_test(atomic_write_syncs_the_folder_after_the_rename),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
