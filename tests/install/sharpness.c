// A program built against an installed normsharp with `pkg-config --cflags --libs normsharp`
// alone (tests/test_install.sh): the sharpness of a weights directory on the first N training
// examples of its saved dataset, printed as "%.17g" to compare with `normsharp sharpness`.
//   usage: sharpness WEIGHTS_DIR N
#include <stdio.h>
#include <stdlib.h>
#include <normsharp/common.h>
#include <normsharp/data.h>
#include <normsharp/measure.h>
#include <normsharp/model.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: sharpness WEIGHTS_DIR N\n");
        return 2;
    }
    ns_model *m = NULL;
    ns_data_opts data;
    ns_dataset ds = {0};
    int rc = ns_weights_load(argv[1], &m, &data);
    if (!rc) {
        data.n = atol(argv[2]);
        rc = ns_data_load(&data, &ds);
    }
    if (!rc) {
        ns_batch train = ns_batch_train(&ds, data.loss);
        ns_measure_opts o;
        ns_measure_opts_default(&o);  // k 1, tol 1e-4, 100 iterations, seed 0: the CLI's with --k 1
        ns_measurement x;
        if (!(rc = ns_measure(m, &train, NULL, &o, &x))) {
            printf("%.17g\n", x.eig.sharpness);
            ns_measurement_free(&x);
        }
        ns_data_free(&ds);
    }
    if (m) ns_model_free(m);
    if (rc) fprintf(stderr, "sharpness: %s\n", ns_errmsg());
    return rc ? 1 : 0;
}
