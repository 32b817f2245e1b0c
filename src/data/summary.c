// data/summary.c — what `normsharp data` reports about a loaded dataset (normsharp/data.h):
// the class counts of both subsets and the moments of their standardized features.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/data.h"

// Mean over features of the per-feature mean and of the per-feature population std of
// the n x d rows x (double accumulators); NaN for n = 0.
static int feature_moments(const real *x, long n, int d, double *mean, double *std) {
    *mean = *std = NAN;
    if (n <= 0) return NS_OK;
    double *s1 = ns_calloc((size_t)d, sizeof *s1), *s2 = ns_calloc((size_t)d, sizeof *s2);
    if (!s1 || !s2) {
        free(s1);
        free(s2);
        return NS_ENOMEM;
    }
    for (long i = 0; i < n; i++) {
        const real *xi = x + (size_t)i * (size_t)d;
        for (int j = 0; j < d; j++) {
            s1[j] += xi[j];
            s2[j] += (double)xi[j] * xi[j];
        }
    }
    double ms = 0, ss = 0;
    for (int j = 0; j < d; j++) {
        double m = s1[j] / (double)n, var = s2[j] / (double)n - m * m;
        ms += m;
        ss += var > 0 ? sqrt(var) : 0;
    }
    *mean = ms / d;
    *std = ss / d;
    free(s1);
    free(s2);
    return NS_OK;
}

static void count_classes(const int *y, long n, int k, long *counts) {
    for (int c = 0; c < k; c++) counts[c] = 0;
    for (long i = 0; i < n; i++) counts[y[i]]++;
}

int ns_data_summarize(const ns_dataset *ds, ns_data_summary *s) {
    memset(s, 0, sizeof *s);
    s->counts = ns_calloc((size_t)ds->k, sizeof *s->counts);
    s->test_counts = ns_calloc((size_t)ds->k, sizeof *s->test_counts);
    int rc = s->counts && s->test_counts ? NS_OK : NS_ENOMEM;
    if (!rc) {
        count_classes(ds->y_train, ds->n, ds->k, s->counts);
        count_classes(ds->y_test, ds->n_test, ds->k, s->test_counts);
        rc = feature_moments(ds->x_train, ds->n, ds->d, &s->sub_mean, &s->sub_std);
    }
    if (!rc) rc = feature_moments(ds->x_test, ds->n_test, ds->d, &s->test_mean, &s->test_std);
    if (rc) ns_data_summary_free(s);
    return rc;
}

void ns_data_summary_free(ns_data_summary *s) {
    free(s->counts);
    free(s->test_counts);
    s->counts = s->test_counts = NULL;
}

static void moments_json(ns_json *j, const char *key, double mean, double std) {
    ns_json_obj(j, key);
    ns_json_num(j, "mean_of_feature_means", mean);
    ns_json_num(j, "mean_feature_std", std);
    ns_json_end(j);
}

int ns_data_summary_json(const ns_dataset *ds, const ns_data_opts *o, const ns_data_summary *s, double seconds,
                         ns_buf *out) {
    ns_json j;
    ns_json_begin(&j, out);
    ns_json_obj(&j, NULL);
    ns_json_str(&j, "dataset", ds->name);
    ns_json_str(&j, "source", ds->source);
    ns_json_str(&j, "data_dir", ds->dir);
    ns_json_int(&j, "n", ds->n);
    ns_json_int(&j, "n_test", ds->n_test);
    ns_json_int(&j, "n_train_full", ds->n_train_full);
    ns_json_int(&j, "n_test_full", ds->n_test_full);
    ns_json_arr(&j, "shape");
    ns_json_int(&j, NULL, ds->c);
    ns_json_int(&j, NULL, ds->h);
    ns_json_int(&j, NULL, ds->w);
    ns_json_end(&j);
    ns_json_int(&j, "features", ds->d);
    ns_json_int(&j, "classes", ds->k);
    if (o->classes > 0) ns_json_int(&j, "classes_filter", o->classes);
    else ns_json_null(&j, "classes_filter");
    ns_json_str(&j, "loss", ns_loss_name(o->loss));
    ns_json_arr(&j, "class_counts");
    for (int c = 0; c < ds->k; c++) ns_json_int(&j, NULL, s->counts[c]);
    ns_json_end(&j);
    ns_json_arr(&j, "test_class_counts");
    for (int c = 0; c < ds->k; c++) ns_json_int(&j, NULL, s->test_counts[c]);
    ns_json_end(&j);
    ns_json_obj(&j, "standardized");
    moments_json(&j, "full_train", ds->full_mean, ds->full_std);
    moments_json(&j, "train_subset", s->sub_mean, s->sub_std);
    moments_json(&j, "test_subset", s->test_mean, s->test_std);
    ns_json_end(&j);
    ns_json_num(&j, "seconds", seconds);
    ns_json_end(&j);
    ns_buf_append(out, "\n", 1);
    return out->oom ? ns_fail(NS_ENOMEM, "out of memory while printing the data summary") : NS_OK;
}
