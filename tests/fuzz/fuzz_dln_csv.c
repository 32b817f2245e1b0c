// The DLN lab's numeric CSV reader (--x-csv, --y-csv, --beta-star-csv).
#include <math.h>
#include "fuzz.h"
#include "normsharp/dln.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_put(0, "in.csv", data, size);
    double *x = NULL;
    int rows = 0, cols = 0;
    if (ns_dln_read_csv(p, &x, &rows, &cols) == 0) {
        for (long i = 0; i < (long)rows * cols; i++)
            if (!isfinite(x[i])) abort();  // rows of finite numbers only
        free(x);
    }
    return 0;
}
