// dln/task.c — the DLN tasks of docs/CONVENTIONS.md, DLN: the single data point, Gaussian sparse regression
// (ns_synth_sparse), and X, y read from CSV files; plus the test covariance diag(Sigma).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/data.h"
#include "normsharp/dln.h"
#include "normsharp/rng.h"

const char *ns_dln_task_name(ns_dln_task_kind k) {
    switch (k) {
    case NS_TASK_SINGLE: return "single";
    case NS_TASK_SPARSE: return "sparse";
    case NS_TASK_CSV: return "csv";
    }
    return "?";
}

int ns_dln_task_parse(const char *s, ns_dln_task_kind *out) {
    for (ns_dln_task_kind k = NS_TASK_SINGLE; k <= NS_TASK_CSV; k++)
        if (!strcmp(s, ns_dln_task_name(k))) {
            *out = k;
            return NS_OK;
        }
    return ns_fail(NS_EINVAL, "--task must be single, sparse or csv, got '%s'", s);
}

void ns_dln_task_opts_default(ns_dln_task_opts *o) {
    memset(o, 0, sizeof *o);
    o->kind = NS_TASK_SPARSE;
    o->s = -1;  // unset: from the preset
}

void ns_dln_task_free(ns_dln_task *t) {
    free(t->X);
    free(t->y);
    free(t->beta_star);
    free(t->sigma_diag);
    memset(t, 0, sizeof *t);
}

// ---- CSV -------------------------------------------------------------------------------

int ns_dln_read_csv(const char *path, double **out, int *rows, int *cols) {
    *out = NULL;
    *rows = *cols = 0;
    char *text;
    size_t len;
    int rc = ns_read_file(path, &text, &len);
    if (rc) return rc;
    if (strlen(text) != len) {
        free(text);
        return ns_fail(NS_EFORMAT, "'%s' is not a text file (it contains a NUL byte)", path);
    }
    ns_buf vals = {0};
    int nr = 0, nc = -1, line = 0;
    char *p = text;
    while (*p && !rc) {
        char *eol = strchr(p, '\n');
        if (eol) *eol = 0;
        line++;
        size_t L = strlen(p);
        if (L && p[L - 1] == '\r') p[--L] = 0;
        char *q = p;
        while (*q == ' ' || *q == '\t') q++;
        if (*q && *q != '#') {
            int count = 0;
            for (char *tok = p;; count++) {
                char *comma = strchr(tok, ',');
                if (comma) *comma = 0;
                char *a = tok, *b = tok + strlen(tok);
                while (*a == ' ' || *a == '\t') a++;
                while (b > a && (b[-1] == ' ' || b[-1] == '\t')) *--b = 0;
                char *end;
                double x = strtod(a, &end);
                if (!*a || *end) {
                    rc = ns_fail(NS_EFORMAT, "'%s' line %d, value %d: '%s' is not a number", path, line, count + 1, a);
                    break;
                }
                if (!isfinite(x)) {
                    rc = ns_fail(NS_EFORMAT, "'%s' line %d, value %d: '%s' is not a finite number", path, line,
                                 count + 1, a);
                    break;
                }
                ns_buf_append(&vals, (const char *)&x, sizeof x);
                if (!comma) {
                    count++;
                    break;
                }
                tok = comma + 1;
            }
            if (!rc && nc < 0) nc = count;
            else if (!rc && count != nc)
                rc = ns_fail(NS_EFORMAT, "'%s' line %d has %d values but the first row has %d (ragged rows)", path,
                             line, count, nc);
            nr++;
        }
        p = eol ? eol + 1 : p + L;
    }
    free(text);
    if (!rc && vals.oom) rc = NS_ENOMEM;
    if (!rc && nr == 0) rc = ns_fail(NS_EFORMAT, "'%s' has no rows of numbers", path);
    if (rc) {
        ns_buf_free(&vals);
        return rc;
    }
    *out = (double *)vals.data;  // ns_buf data is malloc'd and suitably aligned
    *rows = nr;
    *cols = nc;
    return NS_OK;
}

// A vector of length d from a CSV file: d rows of one value, or one row of d values.
static int read_csv_vector(const char *path, int d, const char *what, double **out) {
    int r, c;
    int rc = ns_dln_read_csv(path, out, &r, &c);
    if (rc) return rc;
    if (!((r == d && c == 1) || (r == 1 && c == d))) {
        free(*out);
        *out = NULL;
        return ns_fail(NS_EFORMAT, "'%s' holds %d x %d values but %s needs %d", path, r, c, what, d);
    }
    return NS_OK;
}

// ---- lists from options ----------------------------------------------------------------

static int parse_list(const char *s, const char *what, int expect, double **out, int *count) {
    int rc = ns_parse_grid(s, 0, what, out, count);
    if (rc) return rc;
    if (expect > 0 && *count != expect) {
        free(*out);
        *out = NULL;
        return ns_fail(NS_EINVAL, "%s has %d values but the task has d = %d coordinates", what, *count, expect);
    }
    return NS_OK;
}

static int make_sigma(const ns_dln_task_opts *o, ns_dln_task *t) {
    int d = t->d;
    t->sigma_diag = ns_malloc(sizeof(double) * (size_t)d);
    if (!t->sigma_diag) return NS_ENOMEM;
    for (int i = 0; i < d; i++) t->sigma_diag[i] = 1.0;
    if (!o->sigma_list) return NS_OK;
    double *v;
    int k;
    int rc = ns_parse_grid(o->sigma_list, 0, "--sigma-diag", &v, &k);
    if (rc) return rc;
    if (k != 1 && k != d) rc = ns_fail(NS_EINVAL, "--sigma-diag needs d = %d values (or one for all), got %d", d, k);
    for (int i = 0; i < k && !rc; i++)
        if (!(v[i] > 0)) rc = ns_fail(NS_EINVAL, "--sigma-diag entries must be > 0, got %g at position %d", v[i], i + 1);
    for (int i = 0; i < d && !rc; i++) t->sigma_diag[i] = v[k == 1 ? 0 : i];
    free(v);
    return rc;
}

static int make_single(const ns_dln_task_opts *o, ns_dln_task *t) {
    int rc, k;
    ns_rng rng;
    ns_rng_seed(&rng, o->seed, NS_STREAM_DATA);
    t->n = 1;
    if (o->x_list) {
        if ((rc = parse_list(o->x_list, "--x", o->d > 0 ? o->d : 0, &t->X, &k))) return rc;
        t->d = k;
    } else {
        t->d = o->d > 0 ? o->d : 5;
        if (!(t->X = ns_malloc(sizeof(double) * (size_t)t->d))) return NS_ENOMEM;
        for (int i = 0; i < t->d; i++) t->X[i] = ns_rng_uniform_in(&rng, 0.5, 2.0);
    }
    if (o->beta_star_list) {
        if ((rc = parse_list(o->beta_star_list, "--beta-star", t->d, &t->beta_star, &k))) return rc;
    } else {
        if (!(t->beta_star = ns_malloc(sizeof(double) * (size_t)t->d))) return NS_ENOMEM;
        for (int i = 0; i < t->d; i++) t->beta_star[i] = ns_rng_uniform(&rng);
    }
    if (!(t->y = ns_malloc(sizeof(double)))) return NS_ENOMEM;
    double y = 0;
    for (int i = 0; i < t->d; i++) y += t->X[i] * t->beta_star[i];
    t->y[0] = y + o->noise * ns_rng_normal(&rng);
    return NS_OK;
}

static int make_sparse(const ns_dln_task_opts *o, ns_dln_task *t) {
    ns_synth s;
    int rc = ns_synth_sparse(o->n, o->d, o->s, o->noise, o->seed, &s);
    if (rc) return rc;
    t->n = s.n;
    t->d = s.d;
    t->s = s.s;
    t->X = s.X;
    t->y = s.y;
    t->beta_star = s.beta_star;
    return NS_OK;
}

static int make_csv(const ns_dln_task_opts *o, ns_dln_task *t) {
    if (!o->x_csv || !o->y_csv) return ns_fail(NS_EINVAL, "the csv task needs both --x-csv FILE and --y-csv FILE");
    int rc, r, c;
    if ((rc = ns_dln_read_csv(o->x_csv, &t->X, &t->n, &t->d))) return rc;
    if ((rc = ns_dln_read_csv(o->y_csv, &t->y, &r, &c))) return rc;
    if (c != 1 || r != t->n)
        return ns_fail(NS_EFORMAT, "'%s' must hold one label per example (%d rows of 1 value), got %d x %d", o->y_csv,
                       t->n, r, c);
    if (o->beta_star_csv) return read_csv_vector(o->beta_star_csv, t->d, "the teacher beta*", &t->beta_star);
    if (o->beta_star_list) return parse_list(o->beta_star_list, "--beta-star", t->d, &t->beta_star, &c);
    return NS_OK;
}

int ns_dln_task_make(const ns_dln_task_opts *o0, ns_dln_task *t) {
    memset(t, 0, sizeof *t);
    ns_dln_task_opts o = *o0;
    if (!(o.noise >= 0) || !isfinite(o.noise)) return ns_fail(NS_EINVAL, "--noise must be finite and >= 0, got %g", o.noise);
    if (o.kind == NS_TASK_SPARSE) {
        int pn = 20, pd = 30, ps = 3;  // the "even" sizes are the default
        if (o.preset && !strcmp(o.preset, "woodworth")) {
            pn = 100;
            pd = 1000;
            ps = 5;
        } else if (o.preset && strcmp(o.preset, "even"))
            return ns_fail(NS_EINVAL, "--preset must be woodworth (n=100, d=1000, s=5) or even (n=20, d=30, s=3), got '%s'",
                           o.preset);
        if (o.n <= 0) o.n = pn;
        if (o.d <= 0) o.d = pd;
        if (o.s < 0) o.s = ps;
        if (o.s > o.d) return ns_fail(NS_EINVAL, "--s (%d) must not exceed --d (%d)", o.s, o.d);
        if (o.x_list || o.beta_star_list || o.x_csv || o.y_csv || o.beta_star_csv)
            return ns_fail(NS_EINVAL, "the sparse task draws X, y and beta*; --x, --beta-star and the CSV options do not apply");
    }
    int rc;
    switch (o.kind) {
    case NS_TASK_SINGLE: rc = make_single(&o, t); break;
    case NS_TASK_SPARSE: rc = make_sparse(&o, t); break;
    case NS_TASK_CSV: rc = make_csv(&o, t); break;
    default: rc = ns_fail(NS_EINVAL, "unknown task kind %d", (int)o.kind);
    }
    t->kind = o.kind;
    t->noise = o.noise;
    t->seed = o.seed;
    if (!rc && t->d <= 0) rc = ns_fail(NS_EINVAL, "the task has d = %d coordinates; it needs at least 1", t->d);
    if (!rc) rc = make_sigma(&o, t);
    if (rc) ns_dln_task_free(t);
    return rc;
}
