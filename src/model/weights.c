// A weights directory: model.json (how to rebuild the model and which data it belongs
// to) plus one NumPy .npy file per tensor, named after the tensor ("fc1.weight.npy"),
// with PyTorch's names, shapes and C-order layouts, so
//     sd = {name: torch.from_numpy(numpy.load(f"{dir}/{name}.npy")) for name in names}
// loads into the equivalent PyTorch model. model.json is written last, so its presence
// marks a complete directory.
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "layers.h"
#include "normsharp/model.h"

// ---- saving ----------------------------------------------------------------------------

// The model's configuration as JSON keys: arch, param, init_scale, seed, input_shape, classes.
void ns_model_config_json(ns_json *j, const ns_model_config *cfg) {
    ns_json_str(j, "arch", cfg->arch);
    ns_json_str(j, "param", cfg->param);
    ns_json_num(j, "init_scale", cfg->init_scale);
    ns_json_u64(j, "seed", cfg->seed);
    ns_json_arr(j, "input_shape");
    ns_json_int(j, NULL, cfg->c);
    ns_json_int(j, NULL, cfg->h);
    ns_json_int(j, NULL, cfg->w);
    ns_json_end(j);
    ns_json_int(j, "classes", cfg->k);
}

void ns_model_tensors_json(ns_json *j, const char *key, const ns_model *m, int with_files) {
    ns_json_arr(j, key);
    for (int t = 0; t < ns_model_ntensors(m); t++) {
        const ns_tensor_info *ti = ns_model_tensor(m, t);
        char file[64];
        snprintf(file, sizeof file, "%s.npy", ti->name);
        ns_json_obj(j, NULL);
        ns_json_str(j, "name", ti->name);
        ns_json_arr(j, "shape");
        for (int d = 0; d < ti->ndim; d++) ns_json_int(j, NULL, ti->shape[d]);
        ns_json_end(j);
        if (with_files) ns_json_str(j, "file", file);
        ns_json_end(j);
    }
    ns_json_end(j);
}

static void model_json(ns_buf *b, const ns_model *m, const ns_data_opts *data) {
    const ns_model_config *cfg = ns_model_cfg(m);
    ns_json j;
    ns_json_doc(&j, b, "weights");
    ns_model_config_json(&j, cfg);
    ns_json_str(&j, "precision", NS_REAL_NAME);
    ns_json_int(&j, "nparams", (long long)ns_model_nparams(m));
    ns_model_tensors_json(&j, "tensors", m, 1);
    ns_data_opts_json(&j, "data", data);
    ns_json_end(&j);
    ns_buf_append(b, "\n", 1);
}

int ns_weights_save(const ns_model *m, const char *dir, const ns_data_opts *data) {
    int rc = ns_mkdirs(dir);
    if (rc) return rc;
    // ns_model_theta has no const variant; theta is only read here.
    const real *theta = ns_model_theta((ns_model *)m);
    char path[4096];
    for (int t = 0; t < ns_model_ntensors(m); t++) {
        const ns_tensor_info *ti = ns_model_tensor(m, t);
        if ((rc = ns_path(path, sizeof path, "%s/%s.npy", dir, ti->name))) return rc;
        if ((rc = ns_npy_write(path, theta + ti->offset, ti->ndim, ti->shape))) return rc;
    }
    // The data directory is stored absolute: model.json must name the same files whatever
    // the directory of the command that reads it.
    ns_data_opts d;
    if (data) d = *data;
    char cwd[PATH_MAX], abs[2 * PATH_MAX];
    if (data && d.data_dir && d.data_dir[0] != '/') {
        if (!getcwd(cwd, sizeof cwd))
            return ns_fail(NS_EIO, "the current directory cannot be read (%s), so %s/model.json could not name the "
                                   "data directory %s absolutely", strerror(errno), dir, d.data_dir);
        if ((rc = ns_path(abs, sizeof abs, "%s/%s", cwd, d.data_dir))) return rc;
        d.data_dir = abs;
    }
    ns_buf b = {0};
    model_json(&b, m, data ? &d : NULL);
    if (b.oom) rc = ns_fail(NS_ENOMEM, "out of memory while formatting %s/model.json.", dir);
    if (!rc) rc = ns_path(path, sizeof path, "%s/model.json", dir);
    if (!rc) rc = ns_write_file_atomic(path, b.data, b.len);
    ns_buf_free(&b);
    return rc;
}

// ---- loading ---------------------------------------------------------------------------
// Strings handed out in ns_data_opts must outlive this call: keep one copy of each
// distinct string for the life of the process (a handful at most).
static const char *intern(const char *s) {
    static char **pool;
    static int npool;
    for (int i = 0; i < npool; i++)
        if (!strcmp(pool[i], s)) return pool[i];
    char **p = ns_realloc(pool, (size_t)(npool + 1) * sizeof *p);
    if (!p) return NULL;
    pool = p;
    if (!(pool[npool] = ns_strdup(s))) return NULL;
    return pool[npool++];
}

// An integer field in [lo, hi]; `def` when missing or null (fail if def < lo).
static int get_int(const ns_jval *o, const char *key, long lo, long hi, long def, const char *file, long *out) {
    const ns_jval *v = ns_jget(o, key);
    if (!v || v->type == NS_JNULL) {
        if (def < lo) return ns_fail(NS_EFORMAT, "%s: missing \"%s\".", file, key);
        *out = def;
        return NS_OK;
    }
    if (v->type != NS_JNUM || v->num != floor(v->num) || v->num < lo || v->num > hi)
        return ns_fail(NS_EFORMAT, "%s: \"%s\" must be an integer in [%ld, %ld].", file, key, lo, hi);
    *out = (long)v->num;
    return NS_OK;
}

static int get_str(const ns_jval *o, const char *key, const char *file, int required, const char **out) {
    const ns_jval *v = ns_jget(o, key);
    if (!v || v->type == NS_JNULL) {
        if (required) return ns_fail(NS_EFORMAT, "%s: missing \"%s\".", file, key);
        *out = NULL;
        return NS_OK;
    }
    if (v->type != NS_JSTR) return ns_fail(NS_EFORMAT, "%s: \"%s\" must be a string.", file, key);
    *out = v->str;
    return NS_OK;
}

static int copy_field(char *dst, size_t cap, const char *src, const char *key, const char *file) {
    if (strlen(src) >= cap) return ns_fail(NS_EFORMAT, "%s: \"%s\" is too long.", file, key);
    memcpy(dst, src, strlen(src) + 1);
    return NS_OK;
}

static int read_config(const ns_jval *root, const char *file, ns_model_config *cfg) {
    const char *s = NULL;
    long v;
    int rc;
    memset(cfg, 0, sizeof *cfg);
    if ((rc = get_str(root, "arch", file, 1, &s)) || (rc = copy_field(cfg->arch, sizeof cfg->arch, s, "arch", file)))
        return rc;
    if ((rc = get_str(root, "param", file, 0, &s))) return rc;
    if ((rc = copy_field(cfg->param, sizeof cfg->param, s ? s : "standard", "param", file))) return rc;
    const ns_jval *sc = ns_jget(root, "init_scale");
    cfg->init_scale = 1.0;
    if (sc && sc->type != NS_JNULL) {
        if (sc->type != NS_JNUM || !isfinite(sc->num))
            return ns_fail(NS_EFORMAT, "%s: \"init_scale\" must be a finite number.", file);
        cfg->init_scale = sc->num;
    }
    if (ns_jget_u64(root, "seed", &cfg->seed))
        return ns_fail(NS_EFORMAT, "%s: missing or invalid \"seed\" (a non-negative integer).", file);
    const ns_jval *shape = ns_jget(root, "input_shape");
    if (!shape || shape->type != NS_JARR || shape->n != 3)
        return ns_fail(NS_EFORMAT, "%s: \"input_shape\" must be an array [channels, height, width].", file);
    int *dims[3] = {&cfg->c, &cfg->h, &cfg->w};
    for (int i = 0; i < 3; i++) {
        const ns_jval *d = &shape->items[i];
        if (d->type != NS_JNUM || d->num != floor(d->num) || d->num < 1 || d->num > 65536)
            return ns_fail(NS_EFORMAT, "%s: \"input_shape\" entries must be positive integers.", file);
        *dims[i] = (int)d->num;
    }
    if ((rc = get_int(root, "classes", 1, 1 << 20, -1, file, &v))) return rc;
    cfg->k = (int)v;
    return NS_OK;
}

// The tensor list in model.json, when present, must describe the rebuilt model exactly.
static int check_tensors(const ns_jval *root, const ns_model *m, const char *file) {
    const ns_jval *ts = ns_jget(root, "tensors");
    if (!ts || ts->type == NS_JNULL) return NS_OK;
    if (ts->type != NS_JARR || ts->n != ns_model_ntensors(m))
        return ns_fail(NS_EFORMAT, "%s: \"tensors\" lists %d tensors but %s has %d.", file,
                       ts->type == NS_JARR ? ts->n : 0, ns_model_cfg(m)->arch, ns_model_ntensors(m));
    for (int t = 0; t < ts->n; t++) {
        const ns_tensor_info *ti = ns_model_tensor(m, t);
        const char *name = ns_jstr(&ts->items[t], "name", "");
        const ns_jval *sh = ns_jget(&ts->items[t], "shape");
        int same = !strcmp(name, ti->name) && sh && sh->type == NS_JARR && sh->n == ti->ndim;
        for (int d = 0; same && d < ti->ndim; d++) same = sh->items[d].type == NS_JNUM && sh->items[d].num == ti->shape[d];
        if (!same)
            return ns_fail(NS_EFORMAT, "%s: tensor %d is listed as '%s' but the model's is %s with another shape or name.",
                           file, t + 1, name, ti->name);
    }
    return NS_OK;
}

// `dir` is the weights directory: a relative "data_dir" (written by hand, or by an older
// normsharp) is taken relative to it, not to the current directory.
static int read_data(const ns_jval *root, const char *dir, const char *file, ns_data_opts *d) {
    ns_data_opts_default(d);
    const ns_jval *o = ns_jget(root, "data");
    if (!o || o->type == NS_JNULL) return NS_OK;
    if (o->type != NS_JOBJ) return ns_fail(NS_EFORMAT, "%s: \"data\" must be an object.", file);
    const char *s = NULL;
    long v;
    int rc;
    if ((rc = get_str(o, "dataset", file, 0, &s))) return rc;
    if (s && !(d->dataset = intern(s))) return NS_ENOMEM;
    if ((rc = get_str(o, "data_dir", file, 0, &s))) return rc;
    char joined[4096];
    if (s && s[0] != '/' && !(rc = ns_path(joined, sizeof joined, "%s/%s", dir, s))) s = joined;
    if (rc) return rc;
    if (s && !(d->data_dir = intern(s))) return NS_ENOMEM;
    if ((rc = get_int(o, "n", 1, 1L << 40, d->n, file, &v))) return rc;
    d->n = v;
    if ((rc = get_int(o, "n_test", -1, 1L << 40, -1, file, &v))) return rc;
    d->n_test = v;
    if ((rc = get_int(o, "classes", -1, 1 << 20, -1, file, &v))) return rc;
    d->classes = (int)v;
    if ((rc = get_str(o, "loss", file, 0, &s))) return rc;
    if (s && ns_loss_parse(s, &d->loss)) return ns_fail(NS_EFORMAT, "%s: unknown loss '%s'.", file, s);
    return NS_OK;
}

// Every tensor of the planned model m has its .npy file in dir, with the tensor's shape in
// its header and the size to match: checked before any parameter is allocated, so what a
// model.json can cost is bounded by the bytes of the files that are there (a 2^31-parameter
// architecture with its files missing costs nothing).
static int check_files(const ns_model *m, const char *dir) {
    for (int t = 0; t < ns_model_ntensors(m); t++) {
        const ns_tensor_info *ti = ns_model_tensor(m, t);
        char path[4096];
        int rc = ns_path(path, sizeof path, "%s/%s.npy", dir, ti->name);
        if (rc) return rc;
        if (!ns_exists(path))
            return ns_fail(NS_EIO, "%s is missing: the weights of tensor %s (%s).", path, ti->name,
                           ns_model_cfg(m)->arch);
        if ((rc = ns_npy_check(path, ti->ndim, ti->shape))) return rc;
    }
    return NS_OK;
}

// Re-issue the current error with the file named first (copying: the message buffer is
// also the destination).
static int prefix_error(int rc, const char *file) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", ns_errmsg());
    return ns_fail(rc, "%s: %s", file, msg);
}

int ns_weights_load(const char *dir, ns_model **out, ns_data_opts *data) {
    *out = NULL;
    char file[4096], path[4096];
    int rc = ns_path(file, sizeof file, "%s/model.json", dir);
    if (rc) return rc;
    if (!ns_is_dir(dir)) return ns_fail(NS_EIO, "weights directory %s does not exist.", dir);
    if (!ns_exists(file))
        return ns_fail(NS_EIO, "%s is missing; is %s a weights directory (normsharp init / train --save-weights)?",
                       file, dir);
    ns_jval root;
    if ((rc = ns_json_parse_file(file, &root))) return rc;
    ns_model_config cfg;
    ns_model *m = NULL;
    if (root.type != NS_JOBJ) rc = ns_fail(NS_EFORMAT, "%s: expected a JSON object.", file);
    if (!rc) rc = read_config(&root, file, &cfg);
    // cheap things first: the architecture's tensors, then their files, then the parameters
    if (!rc && (rc = ns_model_plan(&cfg, &m))) rc = prefix_error(rc, file);
    if (!rc) rc = check_tensors(&root, m, file);
    if (!rc) rc = check_files(m, dir);
    if (!rc && data) rc = read_data(&root, dir, file, data);
    if (!rc) rc = ns_model_realize(m, 0);  // every tensor is read below
    for (int t = 0; !rc && t < ns_model_ntensors(m); t++) {
        const ns_tensor_info *ti = ns_model_tensor(m, t);
        if (!(rc = ns_path(path, sizeof path, "%s/%s.npy", dir, ti->name)))
            rc = ns_npy_read(path, ns_model_theta(m) + ti->offset, ti->ndim, ti->shape);
    }
    ns_jval_free(&root);
    if (rc) {
        if (m) ns_model_free(m);
        return rc;
    }
    *out = m;
    return NS_OK;
}

// Does the model take the dataset's inputs and give one output per class? `dir` names the
// weights in the message.
int ns_model_fits(const ns_model *m, const ns_dataset *ds, const char *dir) {
    const ns_model_config *cfg = ns_model_cfg(m);
    if (cfg->c != ds->c || cfg->h != ds->h || cfg->w != ds->w)
        return ns_fail(NS_EINVAL, "the weights in %s take %dx%dx%d inputs but %s has %dx%dx%d images; "
                                  "pass the dataset the model was made for", dir, cfg->c, cfg->h, cfg->w, ds->name,
                       ds->c, ds->h, ds->w);
    if (cfg->k != ds->k)
        return ns_fail(NS_EINVAL, "the weights in %s have %d outputs but the data has %d classes; "
                                  "pass --classes %d (or the dataset the model was made for)", dir, cfg->k, ds->k,
                       cfg->k);
    return NS_OK;
}

int ns_model_theta0(const char *weights, const ns_model_config *cfg, const ns_dataset *ds, ns_model **out) {
    *out = NULL;
    int rc;
    if (weights) {
        rc = ns_weights_load(weights, out, NULL);
    } else {
        ns_model_config c = *cfg;
        c.c = ds->c, c.h = ds->h, c.w = ds->w, c.k = ds->k;
        rc = ns_model_create(&c, out);
    }
    if (rc) return rc;
    if ((rc = ns_model_fits(*out, ds, weights ? weights : "(model)"))) {
        ns_model_free(*out);
        *out = NULL;
    }
    return rc;
}
