// Option values and grids: every strict parser of src/core/parse.c on one string.
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = fz_str(data, size, 4096);
    double d;
    long l;
    int i;
    uint64_t u;
    (void)ns_parse_double(s, -1e300, 1e300, "--x", &d);
    (void)ns_parse_long(s, -1000000, 1000000, "--x", &l);
    (void)ns_parse_int(s, 0, 100, "--x", &i);
    (void)ns_parse_u64(s, "--seed", &u);
    double *grid = NULL;
    int n = 0;
    if (ns_parse_grid(s, 1, "--lr", &grid, &n) == 0) {
        if (n < 1 || !grid) abort();
        for (int k = 0; k < n; k++)
            if (!(grid[k] > 0)) abort();  // positive grids hold positive finite values
        free(grid);
    }
    if (ns_parse_grid(s, 0, "--x", &grid, &n) == 0) free(grid);
    free(s);
    return 0;
}
