// `normsharp` itself (src/cli/main.c): --version, --help, and an unknown or missing command
// (exit status 2 with one sentence).
#include "testutil.h"

static void cli_version_help_and_unknown_command(void **state) {
    (void)state;
    char out[8192];
    assert_int_equal(tu_run(out, sizeof out, "--version"), 0);
    assert_non_null(strstr(out, "normsharp " NS_VERSION));
    assert_int_equal(tu_run(out, sizeof out, "--help"), 0);
    assert_non_null(strstr(out, "sweep"));
    assert_int_equal(tu_run(out, sizeof out, "frobnicate"), 2);
    assert_non_null(strstr(out, "unknown command 'frobnicate'"));
    assert_int_equal(tu_run(out, sizeof out, ""), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cli_version_help_and_unknown_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
