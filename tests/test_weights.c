// Weights I/O: NumPy .npy files (format 1.0) and weights directories (model.json + one
// .npy per tensor), including every way a directory can be broken.
#include <sys/resource.h>
#include "testutil.h"
#include "normsharp/model.h"


// ---- .npy ------------------------------------------------------------------------------
static void npy_round_trip_preserves_values_for_1d_2d_and_4d(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    char path[512];
    int shapes[3][4] = {{7}, {3, 5}, {2, 3, 3, 3}};
    int ndims[3] = {1, 2, 4};
    for (int s = 0; s < 3; s++) {
        size_t count = 1;
        for (int d = 0; d < ndims[s]; d++) count *= (size_t)shapes[s][d];
        real *x = malloc(count * sizeof(real)), *y = malloc(count * sizeof(real));
        for (size_t i = 0; i < count; i++) x[i] = (real)(sin(1.0 + i) * 1e3 / (i + 1));
        snprintf(path, sizeof path, "%s/a%d.npy", dir, s);
        assert_int_equal(ns_npy_write(path, x, ndims[s], shapes[s]), 0);
        assert_int_equal(ns_npy_read(path, y, ndims[s], shapes[s]), 0);
        assert_memory_equal(x, y, count * sizeof(real));
        free(x);
        free(y);
    }
}

static void npy_header_is_numpy_format_1_0_aligned_to_64_bytes(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/w.npy", dir);
    int shape[2] = {200, 784};
    real *x = calloc(200 * 784, sizeof(real));
    assert_int_equal(ns_npy_write(path, x, 2, shape), 0);
    size_t len;
    unsigned char *b = (unsigned char *)tu_slurp(path, &len);
    assert_memory_equal(b, "\x93NUMPY", 6);
    assert_int_equal(b[6], 1);
    assert_int_equal(b[7], 0);
    size_t hlen = b[8] | (size_t)b[9] << 8;
    assert_int_equal((10 + hlen) % 64, 0);
    assert_int_equal(len, 10 + hlen + 200 * 784 * sizeof(real));
    char want[128];
    snprintf(want, sizeof want, "{'descr': '<f%d', 'fortran_order': False, 'shape': (200, 784), }", (int)sizeof(real));
    assert_memory_equal(b + 10, want, strlen(want));
    for (size_t i = 10 + strlen(want); i < 10 + hlen - 1; i++) assert_int_equal(b[i], ' ');
    assert_int_equal(b[10 + hlen - 1], '\n');
    free(b);
    free(x);
    // a 1-D shape is written as a Python 1-tuple
    int one[1] = {5};
    real v[5] = {1, 2, 3, 4, 5};
    assert_int_equal(ns_npy_write(path, v, 1, one), 0);
    b = (unsigned char *)tu_slurp(path, &len);
    assert_non_null(strstr((char *)b + 10, "'shape': (5,), }"));
    free(b);
}

// A hand-made .npy with any header and payload.
static void write_npy(const char *path, const char *dict, const void *data, size_t nbytes) {
    size_t dlen = strlen(dict), hlen = ((10 + dlen + 1 + 63) / 64) * 64 - 10;
    unsigned char *b = calloc(10 + hlen + nbytes + 1, 1);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(hlen & 0xff);
    b[9] = (unsigned char)(hlen >> 8);
    memcpy(b + 10, dict, dlen);
    memset(b + 10 + dlen, ' ', hlen - dlen - 1);
    b[10 + hlen - 1] = '\n';
    if (nbytes) memcpy(b + 10 + hlen, data, nbytes);
    tu_spit(path, b, 10 + hlen + nbytes);
    free(b);
}

static void npy_reads_both_f4_and_f8_and_converts(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/x.npy", dir);
    int shape[2] = {2, 2};
    real y[4];
    double d[4] = {1.5, -2.25, 1e-3, 7};
    write_npy(path, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", d, sizeof d);
    assert_int_equal(ns_npy_read(path, y, 2, shape), 0);
    for (int i = 0; i < 4; i++) assert_true(y[i] == (real)d[i]);
    float f[4] = {0.5f, -1, 3, 1e-3f};
    write_npy(path, "{\"descr\":\"<f4\",\"shape\":(2,2),\"fortran_order\":False}", f, sizeof f);
    assert_int_equal(ns_npy_read(path, y, 2, shape), 0);
    for (int i = 0; i < 4; i++) assert_true(y[i] == (real)f[i]);
}

// ns_npy_read fails with `code` and a message that names the file and contains `what`.
static void expect_npy_error(const char *path, int ndim, const int *shape, int code, const char *what) {
    real y[64];
    int rc = ns_npy_read(path, y, ndim, shape);
    if (rc != code) fail_msg("expected code %d, got %d (%s)", code, rc, ns_errmsg());
    if (!strstr(ns_errmsg(), path) || !strstr(ns_errmsg(), what))
        fail_msg("message '%s' should name %s and say '%s'", ns_errmsg(), path, what);
}

static void npy_rejects_corrupt_files_naming_the_file(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/bad.npy", dir);
    int shape[1] = {4};
    float f[4] = {1, 2, 3, 4};
    tu_spit(path, "PK\x03\x04 not numpy at all", 22);
    expect_npy_error(path, 1, shape, NS_EFORMAT, "bad magic");
    tu_spit(path, "\x93NUM", 4);
    expect_npy_error(path, 1, shape, NS_EFORMAT, "bad magic");
    write_npy(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", f, 12);
    expect_npy_error(path, 1, shape, NS_EFORMAT, "truncated");
    write_npy(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", f, 16);
    real y[4];
    assert_int_equal(ns_npy_read(path, y, 1, shape), 0);
    write_npy(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), ", f, 16);
    expect_npy_error(path, 1, shape, NS_EFORMAT, "header");
    write_npy(path, "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }", f, 16);
    expect_npy_error(path, 1, shape, NS_EFORMAT, "dtype");
    write_npy(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", f, 16);
    expect_npy_error(path, 1, shape, NS_EFORMAT, "shape (2, 2)");
    write_npy(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}", f, 16);
    expect_npy_error(path, 1, shape, NS_EFORMAT, "header");
    // header length pointing past the end of the file
    unsigned char hdr[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0xff, 0x7f, '{', '}'};
    tu_spit(path, hdr, sizeof hdr);
    expect_npy_error(path, 1, shape, NS_EFORMAT, "truncated");
    snprintf(path, sizeof path, "%s/none.npy", dir);
    expect_npy_error(path, 1, shape, NS_EIO, "");
}

// numpy.load (the system Python, if it has NumPy) reads what we write.
static void numpy_load_reads_our_npy_files(void **state) {
    (void)state;
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) skip();
    const char *dir = tu_tmpdir();
    char path[512], cmd[1400];
    snprintf(path, sizeof path, "%s/t.npy", dir);
    int shape[3] = {2, 3, 4};
    real x[24];
    for (int i = 0; i < 24; i++) x[i] = (real)(i * 0.25 - 1);
    assert_int_equal(ns_npy_write(path, x, 3, shape), 0);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import numpy as np; a = np.load('%s'); "
             "assert a.shape == (2, 3, 4) and a.dtype == np.float%d, (a.shape, a.dtype); "
             "assert (a.reshape(-1) == np.arange(24) * 0.25 - 1).all()\"",
             path, (int)(8 * sizeof(real)));
    assert_int_equal(system(cmd), 0);
}

// A NaN or an infinity in a weights file would make every loss NaN ("diverged at step 0"):
// refused, naming the file and the first bad element.
static void npy_refuses_nonfinite_values_naming_the_first_one(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/w.npy", dir);
    int shape[2] = {2, 3};
    real y[6];
    float f[6] = {1, 2, 3, 4, 5, 6};
    f[5] = NAN;
    f[4] = INFINITY;
    write_npy(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f, sizeof f);
    assert_int_equal(ns_npy_read(path, y, 2, shape), NS_EFORMAT);
    assert_non_null(strstr(ns_errmsg(), path));
    if (!strstr(ns_errmsg(), "element 4 (1, 1)")) fail_msg("%s", ns_errmsg());
    double d[6] = {1, 2, NAN, 4, 5, 6};
    write_npy(path, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", d, sizeof d);
    assert_int_equal(ns_npy_read(path, y, 2, shape), NS_EFORMAT);
    if (!strstr(ns_errmsg(), "element 2 (0, 2)")) fail_msg("%s", ns_errmsg());
}

static long max_rss_kb(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

// Writes DIR/model.json = json and loads DIR, whose .npy files are missing: NS_EIO naming
// `missing`, no model, and the peak memory grown by at most 40 MB. Returns the peak before.
static long expect_missing_within_40mb(const char *dir, const char *json, const char *missing) {
    char path[1024];
    snprintf(path, sizeof path, "%s/model.json", dir);
    tu_spit(path, json, strlen(json));
    long before = max_rss_kb();
    ns_model *m = (ns_model *)1;
    assert_int_equal(ns_weights_load(dir, &m, NULL), NS_EIO);
    assert_null(m);
    if (!strstr(ns_errmsg(), missing)) fail_msg("%s: %s", json, ns_errmsg());
    long grown = max_rss_kb() - before;
    if (grown > 40000) fail_msg("%s: loading grew the memory by %ld kB before finding a file missing", json, grown);
    return before;
}

// The .npy files are checked before the model is built: a model.json naming a 30M-parameter
// network whose files are missing fails without drawing its theta_0.
static void weights_load_checks_the_files_before_building_the_model(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    const char *json =
        "{\"arch\": \"fc-relu-4096-4096\", \"seed\": 0, \"input_shape\": [3, 32, 32], \"classes\": 10, "
        "\"tensors\": [{\"name\": \"fc1.weight\", \"shape\": [4096, 3072]}, {\"name\": \"fc1.bias\", \"shape\": [4096]}, "
        "{\"name\": \"fc2.weight\", \"shape\": [4096, 4096]}, {\"name\": \"fc2.bias\", \"shape\": [4096]}, "
        "{\"name\": \"fc3.weight\", \"shape\": [10, 4096]}, {\"name\": \"fc3.bias\", \"shape\": [10]}]}";
    long before = expect_missing_within_40mb(dir, json, "fc1.weight.npy is missing");
    // A header of the wrong shape is found the same way.
    char path[512];
    ns_model *m = NULL;
    float one = 1;
    snprintf(path, sizeof path, "%s/fc1.weight.npy", dir);
    write_npy(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", &one, sizeof one);
    assert_int_equal(ns_weights_load(dir, &m, NULL), NS_EFORMAT);
    assert_non_null(strstr(ns_errmsg(), "shape (1,)"));
    assert_true(max_rss_kb() - before <= 40000);
}

// A loaded model computes what the saved one computes, in every parameterization (ntk and
// mup scale each layer's weights by a multiplier the model sets up with theta_0: loading,
// which reads theta instead of drawing it, must set it up too).
static void loaded_models_give_the_saved_models_loss_and_gradient(void **state) {
    (void)state;
    const char *arch[] = {"fc-tanh-5-4", "resnet-relu-2"}, *param[] = {"standard", "ntk", "mup"};
    real x[2 * 12], grad[2][4096];
    int y[2] = {0, 2};
    for (int i = 0; i < 24; i++) x[i] = (real)sin(0.7 * i);
    ns_batch b = {.x = x, .y = y, .n = 2, .loss = NS_LOSS_CE};
    for (int a = 0; a < 2; a++)
        for (int p = 0; p < 3; p++) {
            ns_model_config cfg = {.init_scale = 1.0, .seed = 5, .c = 1, .h = 4, .w = 3, .k = 3};
            snprintf(cfg.arch, sizeof cfg.arch, "%s", arch[a]);
            snprintf(cfg.param, sizeof cfg.param, "%s", param[p]);
            ns_model *m[2] = {NULL, NULL};
            assert_int_equal(ns_model_create(&cfg, &m[0]), 0);
            char dir[600];
            snprintf(dir, sizeof dir, "%s/%s-%s", tu_tmpdir(), arch[a], param[p]);
            assert_int_equal(ns_weights_save(m[0], dir, NULL), 0);
            assert_int_equal(ns_weights_load(dir, &m[1], NULL), 0);
            assert_true(ns_model_nparams(m[0]) <= 4096);
            double loss[2];
            for (int k = 0; k < 2; k++) assert_int_equal(ns_model_grad(m[k], &b, grad[k], &loss[k], NULL), 0);
            if (loss[0] != loss[1]) fail_msg("%s %s: loss %.17g saved, %.17g loaded", arch[a], param[p], loss[0], loss[1]);
            assert_memory_equal(grad[0], grad[1], ns_model_nparams(m[0]) * sizeof(real));
            ns_model_free(m[0]);
            ns_model_free(m[1]);
        }
}

// Without a "tensors" list in model.json the architecture string alone says what to build:
// the planned model's files are checked before its parameters are allocated, for every
// family (a hostile string may name a net of up to 2^31 parameters).
static void weights_load_without_a_tensor_list_checks_the_files_first(void **state) {
    (void)state;
    const char *arch[] = {"fc-relu-8192-8192", "resnet-relu-1024-b2", "vit-P4-D1024-L2-H4"};
    for (int a = 0; a < 3; a++) {
        char dir[600], json[512];
        snprintf(dir, sizeof dir, "%s/w%d", tu_tmpdir(), a);
        assert_int_equal(ns_mkdirs(dir), 0);
        snprintf(json, sizeof json, "{\"arch\": \"%s\", \"seed\": 0, \"input_shape\": [3, 32, 32], "
                 "\"classes\": 10}", arch[a]);
        expect_missing_within_40mb(dir, json, "is missing");
    }
}

// A .npy header longer than 64 KB (format 2) is read whole by the cheap check: its data
// size is checked like any other (it was let through to the full read, after the model's
// parameters were allocated).
static void npy_check_reads_a_long_header_whole(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/long.npy", tu_tmpdir());
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    size_t hlen = 70016 - 12, dlen = strlen(dict);  // 12 + hlen is a multiple of 64
    unsigned char *b = calloc(12 + hlen + 4, 1);
    memcpy(b, "\x93NUMPY\x02\x00", 8);
    for (int i = 0; i < 4; i++) b[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 12, dict, dlen);
    memset(b + 12 + dlen, ' ', hlen - dlen - 1);
    b[12 + hlen - 1] = '\n';
    int shape[2] = {2, 3};
    tu_spit(path, b, 12 + hlen + 4);  // one float where the shape needs six
    assert_int_equal(ns_npy_check(path, 2, shape), NS_EFORMAT);
    if (!strstr(ns_errmsg(), "truncated")) fail_msg("%s", ns_errmsg());
    float six[6] = {1, 2, 3, 4, 5, 6};
    memcpy(b + 12 + hlen, six, 4);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, 12 + hlen, f), 12 + hlen);
    assert_int_equal(fwrite(six, sizeof six, 1, f), 1);
    fclose(f);
    assert_int_equal(ns_npy_check(path, 2, shape), 0);
    real y[6];
    assert_int_equal(ns_npy_read(path, y, 2, shape), 0);
    assert_true(y[5] == 6);
    int other[2] = {3, 2};
    assert_int_equal(ns_npy_check(path, 2, other), NS_EFORMAT);
    free(b);
}

// ---- weights directories -----------------------------------------------------------------
static ns_model *small_model(const char *arch, uint64_t seed) {
    ns_model_config cfg = {.init_scale = 1.0, .seed = seed, .c = 1, .h = 4, .w = 3, .k = 3};
    snprintf(cfg.arch, sizeof cfg.arch, "%s", arch);
    snprintf(cfg.param, sizeof cfg.param, "standard");
    ns_model *m = NULL;
    if (ns_model_create(&cfg, &m)) fail_msg("ns_model_create(%s): %s", arch, ns_errmsg());
    return m;
}

static void weights_round_trip_restores_config_theta_and_data_conventions(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    ns_model *m = small_model("fc-tanh-5-4", 3);
    real *theta = ns_model_theta(m);
    size_t n = ns_model_nparams(m);
    for (size_t i = 0; i < n; i++) theta[i] = (real)(0.01 * i - 0.3);  // not theta_0: loading must read files
    ns_data_opts d;
    ns_data_opts_default(&d);
    d.dataset = "mnist";
    d.data_dir = "/some/where";
    d.n = 123;
    d.classes = 3;
    d.loss = NS_LOSS_CE;
    assert_int_equal(ns_weights_save(m, dir, &d), 0);
    ns_model *m2 = NULL;
    ns_data_opts d2;
    assert_int_equal(ns_weights_load(dir, &m2, &d2), 0);
    const ns_model_config *a = ns_model_cfg(m), *b = ns_model_cfg(m2);
    assert_string_equal(a->arch, b->arch);
    assert_string_equal(a->param, b->param);
    assert_true(a->init_scale == b->init_scale && a->seed == b->seed);
    assert_true(a->c == b->c && a->h == b->h && a->w == b->w && a->k == b->k);
    assert_int_equal(ns_model_nparams(m2), n);
    assert_memory_equal(ns_model_theta(m2), theta, n * sizeof(real));
    assert_string_equal(d2.dataset, "mnist");
    assert_string_equal(d2.data_dir, "/some/where");
    assert_int_equal(d2.n, 123);
    assert_int_equal(d2.n_test, -1);
    assert_int_equal(d2.classes, 3);
    assert_int_equal(d2.loss, NS_LOSS_CE);
    // model.json names everything a reader needs
    char path[512];
    snprintf(path, sizeof path, "%s/model.json", dir);
    ns_jval root;
    assert_int_equal(ns_json_parse_file(path, &root), 0);
    assert_string_equal(ns_jstr(&root, "arch", ""), "fc-tanh-5-4");
    assert_string_equal(ns_jstr(&root, "precision", ""), NS_REAL_NAME);
    assert_string_equal(ns_jstr(&root, "version", ""), NS_VERSION);
    const ns_jval *ts = ns_jget(&root, "tensors");
    assert_non_null(ts);
    assert_int_equal(ts->n, ns_model_ntensors(m));
    assert_string_equal(ns_jstr(&ts->items[0], "name", ""), "fc1.weight");
    assert_string_equal(ns_jstr(&ts->items[0], "file", ""), "fc1.weight.npy");
    ns_jval_free(&root);
    ns_model_free(m);
    ns_model_free(m2);
}

// ResNet (with batch norm) and ViT weights: every tensor written and read back bit for bit.
static void resnet_and_vit_weights_round_trip(void **state) {
    (void)state;
    const char *archs[] = {"resnet-relu-2-3-bn", "vit-P1-D4-L1-H2"};
    for (int a = 0; a < 2; a++) {
        const char *dir = tu_tmpdir();
        ns_model *m = small_model(archs[a], 5);
        real *theta = ns_model_theta(m);
        size_t n = ns_model_nparams(m);
        for (size_t i = 0; i < n; i++) theta[i] = (real)(0.001 * i - 0.2);
        assert_int_equal(ns_weights_save(m, dir, NULL), 0);
        ns_model *m2 = NULL;
        assert_int_equal(ns_weights_load(dir, &m2, NULL), 0);
        assert_string_equal(ns_model_cfg(m2)->arch, archs[a]);
        assert_int_equal(ns_model_ntensors(m2), ns_model_ntensors(m));
        for (int t = 0; t < ns_model_ntensors(m); t++)
            assert_string_equal(ns_model_tensor(m2, t)->name, ns_model_tensor(m, t)->name);
        assert_memory_equal(ns_model_theta(m2), theta, n * sizeof(real));
        ns_model_free(m);
        ns_model_free(m2);
    }
}

static void weights_files_have_pytorch_names_and_shapes(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    ns_model *m = small_model("fc-relu-5", 1);
    assert_int_equal(ns_weights_save(m, dir, NULL), 0);
    const char *names[4] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    int shapes[4][2] = {{5, 12}, {5, 0}, {3, 5}, {3, 0}};
    assert_int_equal(ns_model_ntensors(m), 4);
    for (int t = 0; t < 4; t++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.npy", dir, names[t]);
        assert_true(ns_exists(path));
        const ns_tensor_info *ti = ns_model_tensor(m, t);
        assert_string_equal(ti->name, names[t]);
        assert_int_equal(ti->ndim, shapes[t][1] ? 2 : 1);
        for (int d = 0; d < ti->ndim; d++) assert_int_equal(ti->shape[d], shapes[t][d]);
    }
    ns_model *m2 = NULL;
    ns_data_opts d2;
    assert_int_equal(ns_weights_load(dir, &m2, &d2), 0);  // no data block: defaults
    assert_string_equal(d2.dataset, "fashion-mnist");
    assert_int_equal(d2.n, 5000);
    ns_model_free(m);
    ns_model_free(m2);
}

// ns_weights_load fails with `code`, leaves *out NULL, and the message contains `what`.
static void expect_load_error(const char *dir, int code, const char *what) {
    ns_model *m = (ns_model *)1;
    int rc = ns_weights_load(dir, &m, NULL);
    if (rc != code) fail_msg("expected code %d, got %d (%s)", code, rc, ns_errmsg());
    assert_null(m);
    if (!strstr(ns_errmsg(), what)) fail_msg("message '%s' should contain '%s'", ns_errmsg(), what);
}

static void weights_load_names_the_broken_file(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    ns_model *m = small_model("fc-tanh-5", 2);
    assert_int_equal(ns_weights_save(m, dir, NULL), 0);
    char path[512], json[512];
    snprintf(json, sizeof json, "%s/model.json", dir);
    size_t jlen;
    char *jtext = tu_slurp(json, &jlen);

    // a missing tensor file
    snprintf(path, sizeof path, "%s/fc2.bias.npy", dir);
    size_t blen;
    char *bias = tu_slurp(path, &blen);
    assert_int_equal(unlink(path), 0);
    expect_load_error(dir, NS_EIO, path);
    // a tensor of the wrong shape
    real z[6] = {0};
    int wrong[1] = {6};
    assert_int_equal(ns_npy_write(path, z, 1, wrong), 0);
    expect_load_error(dir, NS_EFORMAT, path);
    expect_load_error(dir, NS_EFORMAT, "shape (6,)");
    // a corrupt tensor file: truncated data
    tu_spit(path, bias, blen - 1);
    expect_load_error(dir, NS_EFORMAT, path);
    // a corrupt tensor file: bad magic
    tu_spit(path, "garbage!garbage!", 16);
    expect_load_error(dir, NS_EFORMAT, "bad magic");
    tu_spit(path, bias, blen);
    ns_model *ok = NULL;
    assert_int_equal(ns_weights_load(dir, &ok, NULL), 0);
    ns_model_free(ok);

    // model.json: missing, malformed, unknown architecture, a field of the wrong type
    assert_int_equal(unlink(json), 0);
    expect_load_error(dir, NS_EIO, "model.json");
    tu_spit(json, "{\"arch\": ", 9);
    expect_load_error(dir, NS_EFORMAT, "model.json");
    const char *bad_arch = "{\"arch\": \"fc-nope-3\", \"seed\": 0, \"input_shape\": [1, 4, 3], \"classes\": 3}";
    tu_spit(json, bad_arch, strlen(bad_arch));
    expect_load_error(dir, NS_EINVAL, "model.json");
    const char *bad_shape = "{\"arch\": \"fc-tanh-5\", \"seed\": 0, \"input_shape\": [1, 4], \"classes\": 3}";
    tu_spit(json, bad_shape, strlen(bad_shape));
    expect_load_error(dir, NS_EFORMAT, "input_shape");
    // model.json for another architecture than the files
    const char *other = "{\"arch\": \"fc-tanh-6\", \"seed\": 0, \"input_shape\": [1, 4, 3], \"classes\": 3}";
    tu_spit(json, other, strlen(other));
    expect_load_error(dir, NS_EFORMAT, "fc1.weight.npy");
    tu_spit(json, jtext, jlen);
    // a directory that does not exist
    snprintf(path, sizeof path, "%s/nope", dir);
    expect_load_error(path, NS_EIO, path);
    free(jtext);
    free(bias);
    ns_model_free(m);
}

static void weights_match_torch_sequential_state_dict_shapes(void **state) {
    (void)state;
    if (system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") != 0) skip();
    const char *dir = tu_tmpdir();
    ns_model *m = small_model("fc-tanh-5-4", 4);
    assert_int_equal(ns_weights_save(m, dir, NULL), 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import json, numpy as np, torch; d = '%s'; "
             "meta = json.load(open(d + '/model.json')); "
             "seq = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5), torch.nn.Tanh(), "
             "torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)); "
             "sd = seq.state_dict(); names = [t['name'] for t in meta['tensors']]; "
             "assert len(sd) == len(names); "
             "new = {k: torch.from_numpy(np.load(d + '/' + n + '.npy')) for k, n in zip(sd, names)}; "
             "assert all(tuple(new[k].shape) == tuple(v.shape) for k, v in sd.items()); "
             "seq.load_state_dict({k: v.float() for k, v in new.items()})\"",
             dir);
    assert_int_equal(system(cmd), 0);
    ns_model_free(m);
}

// theta_0 drawn for the data's shape, or loaded from a weights folder and checked against
// the data: a model with other outputs is refused, naming the folder.
static void theta0_is_drawn_for_the_data_or_loaded_and_checked_against_it(void **state) {
    (void)state;
    ns_dataset ds = {.c = 1, .h = 2, .w = 2, .d = 4, .k = 3};
    ns_model_config cfg = {.arch = "fc-tanh-5", .param = "standard", .init_scale = 1, .seed = 4, .c = 9, .k = 9};
    ns_model *m;
    assert_int_equal(ns_model_theta0(NULL, &cfg, &ds, &m), 0);
    const ns_model_config *got = ns_model_cfg(m);
    assert_true(got->c == 1 && got->h == 2 && got->w == 2 && got->k == 3 && got->seed == 4);
    char dir[400];
    snprintf(dir, sizeof dir, "%s/w", tu_tmpdir());
    assert_int_equal(ns_weights_save(m, dir, NULL), 0);
    ns_model *back;
    assert_int_equal(ns_model_theta0(dir, NULL, &ds, &back), 0);
    assert_int_equal(ns_model_nparams(back), ns_model_nparams(m));
    assert_memory_equal(ns_model_theta(back), ns_model_theta(m), ns_model_nparams(m) * sizeof(real));
    ns_model_free(back);
    ds.k = 2;
    assert_int_equal(ns_model_theta0(dir, NULL, &ds, &back), NS_EINVAL);
    assert_null(back);
    assert_non_null(strstr(ns_errmsg(), dir));
    ns_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(npy_round_trip_preserves_values_for_1d_2d_and_4d),
        cmocka_unit_test(theta0_is_drawn_for_the_data_or_loaded_and_checked_against_it),
        cmocka_unit_test(npy_header_is_numpy_format_1_0_aligned_to_64_bytes),
        cmocka_unit_test(npy_reads_both_f4_and_f8_and_converts),
        cmocka_unit_test(npy_rejects_corrupt_files_naming_the_file),
        cmocka_unit_test(numpy_load_reads_our_npy_files),
        cmocka_unit_test(weights_round_trip_restores_config_theta_and_data_conventions),
        cmocka_unit_test(weights_files_have_pytorch_names_and_shapes),
        cmocka_unit_test(resnet_and_vit_weights_round_trip),
        cmocka_unit_test(weights_load_names_the_broken_file),
        cmocka_unit_test(weights_match_torch_sequential_state_dict_shapes),
        cmocka_unit_test(npy_refuses_nonfinite_values_naming_the_first_one),
        cmocka_unit_test(weights_load_checks_the_files_before_building_the_model),
        cmocka_unit_test(weights_load_without_a_tensor_list_checks_the_files_first),
        cmocka_unit_test(loaded_models_give_the_saved_models_loss_and_gradient),
        cmocka_unit_test(npy_check_reads_a_long_header_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
