// model.c — a network as a list of layers over one flat parameter vector theta, its
// initialization, and the three passes of model.h: loss, gradient, Hessian-vector product.
//
// Parameterizations (forward multiplier wmul of each weight matrix; --init-scale c
// multiplies every initial parameter, weights and biases):
//   standard  W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), wmul = 1 — PyTorch's default init
//             of Linear and Conv2d (fan_in = in, or in*9 for a 3x3 convolution).
//   ntk       W ~ N(0,1), b = 0, wmul = 1/sqrt(fan_in) (Jacot et al.).
//   mup       as ntk, except the head's wmul is 1/fan_in. In the abc-parametrization of
//             Yang & Hu (2021) this is muP shifted by the symmetry (a,b,c) -> (a+1/2, b-1/2,
//             c-1): the same training dynamics as muP with a learning rate that scales with
//             the width, which a sweep over eta at a fixed width absorbs.
// theta_0 is drawn from ns_rng(seed, NS_STREAM_INIT), tensor by tensor in state_dict order,
// element by element in row-major order: it depends only on the architecture, input shape,
// classes, parameterization, init scale and seed.
//
// Passes run over the batch in chunks of examples whose buffers fit in a memory budget
// (all of the batch at once for the usual MLPs); the loss, gradient and H v are sums over
// examples, so chunks just accumulate. NS_MODEL_CHUNK (environment) caps the chunk size,
// for tests and small machines.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "layers.h"
#include "normsharp/model.h"
#include "normsharp/rng.h"

#define MAX_INPUT_DIM (1L << 26)
#define MAX_ACTIVATIONS (1L << 28)  // values of one layer's output, per example
#define MAX_PARAMS ((size_t)1 << 31)
#define WORKSPACE_BUDGET ((size_t)512 << 20)  // bytes of activation buffers per pass
#define COLS_BUDGET ((size_t)4 << 20)         // values of im2col patches per GEMM
// Convolutional nets make many elementwise passes over large activations: in chunks of 16
// examples these stay in cache, which makes a CNN gradient ~15% faster than in chunks of
// hundreds (BENCHMARKS.md §3). MLPs keep whole-batch chunks, for the widest GEMMs.
#define CONV_CHUNK 16

typedef enum { L_DENSE, L_CONV, L_ACT, L_POOL, L_FLATTEN } layer_kind;

typedef struct {
    layer_kind kind;
    long din, dout;         // values per example in and out
    int in, out;            // dense
    ns_conv_shape conv;     // conv
    int h, w, c;            // pool, flatten: input geometry (channels last)
    ns_act_kind act;
    ns_pool_kind pool;
    size_t woff, boff;      // parameters in theta (dense, conv)
    real wmul;
    real *y, *ry;           // output and its tangent, for the examples of the current chunk
    unsigned char *arg;     // maxpool routing
} layer;

struct ns_model {
    ns_model_config cfg;
    ns_arch arch;
    int nlayers, ntensors;
    layer *layers;
    ns_tensor_info *tensors;
    size_t nparams;
    real *theta;
    long maxd;              // widest activation gradient (values per example)
    // workspace for chunks of up to `cap` examples (with tangents if cap_r)
    long cap;
    int cap_r;
    real *ws;
    unsigned char *args;
    real *g[2], *rg[2];
    real *cols;
    size_t cols_cap;
};

// ---- building --------------------------------------------------------------------------

static int add_tensor(ns_model *m, const char *layer_name, const char *what, int ndim,
                      const int *shape) {
    ns_tensor_info *t = &m->tensors[m->ntensors++];
    snprintf(t->name, sizeof t->name, "%s.%s", layer_name, what);
    t->ndim = ndim;
    t->size = 1;
    for (int i = 0; i < 4; i++) t->shape[i] = i < ndim ? shape[i] : 0;
    for (int i = 0; i < ndim; i++) t->size *= (size_t)shape[i];
    t->offset = m->nparams;
    m->nparams += t->size;
    return m->ntensors - 1;
}

// A dense or conv layer's weight and bias tensors; fills woff/boff.
static void add_params(ns_model *m, layer *L, const char *prefix, int index, int ndim,
                       const int *wshape) {
    char name[24];
    snprintf(name, sizeof name, "%s%d", prefix, index);
    L->woff = m->tensors[add_tensor(m, name, "weight", ndim, wshape)].offset;
    L->boff = m->tensors[add_tensor(m, name, "bias", 1, wshape)].offset;
}

static layer *push(ns_model *m, layer_kind kind, long din, long dout) {
    layer *L = &m->layers[m->nlayers++];
    memset(L, 0, sizeof *L);
    L->kind = kind;
    L->din = din;
    L->dout = dout;
    return L;
}

static int build(ns_model *m) {
    const ns_model_config *cfg = &m->cfg;
    const ns_arch *a = &m->arch;
    int nh = a->nhidden;
    m->layers = ns_calloc((size_t)(3 * nh + 2), sizeof *m->layers);
    m->tensors = ns_calloc((size_t)(2 * nh + 2), sizeof *m->tensors);
    if (!m->layers || !m->tensors) return NS_ENOMEM;
    int skip_act = a->act == NS_ACT_LINEAR;  // the identity: no layer needed
    long d = (long)cfg->c * cfg->h * cfg->w;
    int fc_index = 1;
    if (a->cnn) {
        int pools = nh;
        long need = 1L << pools;
        if (cfg->h < need || cfg->w < need)
            return ns_fail(NS_EINVAL, "architecture '%s' pools %d time%s, so it needs inputs of "
                           "at least %ldx%ld pixels; these are %dx%d", cfg->arch, pools,
                           pools == 1 ? "" : "s", need, need, cfg->h, cfg->w);
        int c = cfg->c, h = cfg->h, w = cfg->w;
        for (int i = 0; i < nh; i++) {
            int co = a->width[i];
            layer *L = push(m, L_CONV, (long)c * h * w, (long)co * h * w);
            L->conv = (ns_conv_shape){.c = c, .h = h, .w = w, .co = co, .nchw = i == 0};
            add_params(m, L, "conv", i + 1, 4, (const int[]){co, c, 3, 3});
            if (!skip_act) push(m, L_ACT, L->dout, L->dout)->act = a->act;
            L = push(m, L_POOL, (long)co * h * w, (long)co * (h / 2) * (w / 2));
            L->pool = a->pool;
            L->h = h, L->w = w, L->c = co;
            c = co, h /= 2, w /= 2;
        }
        layer *L = push(m, L_FLATTEN, (long)c * h * w, (long)c * h * w);
        L->h = h, L->w = w, L->c = c;
        d = (long)c * h * w;
    } else {
        for (int i = 0; i < nh; i++) {
            layer *L = push(m, L_DENSE, d, a->width[i]);
            L->in = (int)d, L->out = a->width[i];
            add_params(m, L, "fc", fc_index++, 2, (const int[]){L->out, L->in});
            if (!skip_act) push(m, L_ACT, L->dout, L->dout)->act = a->act;
            d = a->width[i];
        }
    }
    if (d > MAX_INPUT_DIM)
        return ns_fail(NS_EINVAL, "architecture '%s' feeds %ld features into its head; at most "
                       "%ld are supported", cfg->arch, d, MAX_INPUT_DIM);
    layer *head = push(m, L_DENSE, d, cfg->k);
    head->in = (int)d, head->out = cfg->k;
    add_params(m, head, "fc", fc_index, 2, (const int[]){head->out, head->in});
    if (m->nparams > MAX_PARAMS)
        return ns_fail(NS_EINVAL, "architecture '%s' on %dx%dx%d inputs has %zu parameters; at "
                       "most %zu are supported", cfg->arch, cfg->c, cfg->h, cfg->w, m->nparams,
                       MAX_PARAMS);
    m->maxd = 1;
    for (int l = 0; l < m->nlayers; l++) {
        if (m->layers[l].dout > MAX_ACTIVATIONS)
            return ns_fail(NS_EINVAL, "architecture '%s' on %dx%dx%d inputs has a layer of %ld "
                           "values per example; at most %ld are supported", cfg->arch, cfg->c,
                           cfg->h, cfg->w, m->layers[l].dout, MAX_ACTIVATIONS);
        if (m->layers[l].dout > m->maxd) m->maxd = m->layers[l].dout;
        if (l > 0 && m->layers[l].din > m->maxd) m->maxd = m->layers[l].din;
    }
    return 0;
}

// fan_in of a dense/conv layer (the weight's size over its output count)
static long fan_in(const layer *L) { return L->kind == L_CONV ? 9L * L->conv.c : L->in; }

static int draw_theta0(ns_model *m) {
    const ns_model_config *cfg = &m->cfg;
    int ntk = strcmp(cfg->param, "ntk") == 0, mup = strcmp(cfg->param, "mup") == 0;
    ns_rng rng;
    ns_rng_seed(&rng, cfg->seed, NS_STREAM_INIT);
    const layer *head = &m->layers[m->nlayers - 1];
    // Tensors were added in state_dict order, layer by layer, weight then bias.
    for (int l = 0; l < m->nlayers; l++) {
        layer *L = &m->layers[l];
        if (L->kind != L_DENSE && L->kind != L_CONV) continue;
        double fin = (double)fan_in(L), bound = 1.0 / sqrt(fin);
        size_t nw = L->boff - L->woff, nb = L->kind == L_CONV ? (size_t)L->conv.co : (size_t)L->out;
        real *w = m->theta + L->woff, *b = m->theta + L->boff;
        if (ntk || mup) {
            L->wmul = (real)(mup && L == head ? 1.0 / fin : bound);
            for (size_t i = 0; i < nw; i++) w[i] = (real)(cfg->init_scale * ns_rng_normal(&rng));
            for (size_t i = 0; i < nb; i++) b[i] = 0;
        } else {
            L->wmul = 1;
            for (size_t i = 0; i < nw; i++)
                w[i] = (real)(cfg->init_scale * ns_rng_uniform_in(&rng, -bound, bound));
            for (size_t i = 0; i < nb; i++)
                b[i] = (real)(cfg->init_scale * ns_rng_uniform_in(&rng, -bound, bound));
        }
    }
    return 0;
}

int ns_model_create(const ns_model_config *cfg, ns_model **out) {
    if (!out) return ns_fail(NS_EINVAL, "ns_model_create needs somewhere to put the model");
    *out = NULL;
    if (!cfg) return ns_fail(NS_EINVAL, "ns_model_create needs a model configuration");
    ns_model *m = ns_calloc(1, sizeof *m);
    if (!m) return NS_ENOMEM;
    m->cfg = *cfg;
    m->cfg.arch[sizeof m->cfg.arch - 1] = 0;
    m->cfg.param[sizeof m->cfg.param - 1] = 0;
    int rc = ns_arch_parse(m->cfg.arch, &m->arch);
    if (rc) goto fail;
    if (!m->cfg.param[0]) strcpy(m->cfg.param, "standard");
    if (strcmp(m->cfg.param, "standard") && strcmp(m->cfg.param, "ntk") && strcmp(m->cfg.param, "mup")) {
        rc = ns_fail(NS_EINVAL, "unknown parameterization '%s': expected standard, ntk or mup",
                     m->cfg.param);
        goto fail;
    }
    if (!isfinite(cfg->init_scale) || cfg->init_scale < 0) {
        rc = ns_fail(NS_EINVAL, "the init scale must be a finite number >= 0, got %g",
                     cfg->init_scale);
        goto fail;
    }
    if (cfg->c < 1 || cfg->h < 1 || cfg->w < 1 || (long)cfg->c * cfg->h * cfg->w > MAX_INPUT_DIM) {
        rc = ns_fail(NS_EINVAL, "the model's input shape %dx%dx%d is not a positive size of at "
                     "most %ld values", cfg->c, cfg->h, cfg->w, MAX_INPUT_DIM);
        goto fail;
    }
    if (cfg->k < 1 || cfg->k > NS_MAX_WIDTH) {
        rc = ns_fail(NS_EINVAL, "the model's number of classes must be from 1 to %d, got %d",
                     NS_MAX_WIDTH, cfg->k);
        goto fail;
    }
    if ((rc = build(m))) goto fail;
    m->theta = ns_malloc(sizeof *m->theta * m->nparams);
    if (!m->theta) {
        rc = NS_ENOMEM;
        goto fail;
    }
    draw_theta0(m);
    *out = m;
    return 0;
fail:
    ns_model_free(m);
    return rc;
}

void ns_model_free(ns_model *m) {
    if (!m) return;
    free(m->ws);
    free(m->args);
    free(m->theta);
    free(m->layers);
    free(m->tensors);
    free(m);
}

const ns_model_config *ns_model_cfg(const ns_model *m) { return &m->cfg; }
size_t ns_model_nparams(const ns_model *m) { return m->nparams; }
real *ns_model_theta(ns_model *m) { return m->theta; }
int ns_model_ntensors(const ns_model *m) { return m->ntensors; }
const ns_tensor_info *ns_model_tensor(const ns_model *m, int i) {
    return i >= 0 && i < m->ntensors ? &m->tensors[i] : NULL;
}

// ---- workspace -------------------------------------------------------------------------

// Values of workspace per example (activations, their tangents, gradient buffers).
static size_t per_example(const ns_model *m, int with_r) {
    size_t v = 0;
    for (int l = 0; l < m->nlayers; l++) v += (size_t)m->layers[l].dout;
    v *= with_r ? 2 : 1;
    v += (size_t)m->maxd * (with_r ? 4 : 2);
    return v;
}

// Examples per chunk for a batch of n.
static long chunk_size(const ns_model *m, long n, int with_r) {
    size_t bytes = per_example(m, with_r) * sizeof(real) + (size_t)m->maxd;
    long most = (long)(WORKSPACE_BUDGET / bytes);
    for (int l = 0; l < m->nlayers; l++)
        if (m->layers[l].kind == L_CONV && most > CONV_CHUNK) most = CONV_CHUNK;
    const char *env = getenv("NS_MODEL_CHUNK");
    if (env && atol(env) > 0 && atol(env) < most) most = atol(env);
    if (most > 1L << 24) most = 1L << 24;  // keeps every GEMM dimension an int
    if (most < 1) most = 1;
    return n < most ? n : most;
}

static int ensure_workspace(ns_model *m, long nb, int with_r) {
    if (nb <= m->cap && (m->cap_r || !with_r)) return 0;
    with_r = with_r || m->cap_r;
    long keep = chunk_size(m, m->cap, with_r);  // what the old capacity allows, with tangents
    if (nb < keep) nb = keep;
    free(m->ws);
    free(m->args);
    m->ws = NULL;
    m->args = NULL;
    m->cap = 0;
    m->cap_r = 0;
    // convolution workspace: im2col patches of as many examples as COLS_BUDGET allows
    size_t cols = 0;
    for (int l = 0; l < m->nlayers; l++) {
        const layer *L = &m->layers[l];
        if (L->kind != L_CONV) continue;
        long per = (long)L->conv.h * L->conv.w * L->conv.c * 9;
        long g = (long)(COLS_BUDGET / (size_t)per);
        if (g > nb) g = nb;
        size_t want = ns_conv3x3_workspace(&L->conv, g);
        if (want > cols) cols = want;
    }
    size_t args = 0;
    for (int l = 0; l < m->nlayers; l++)
        if (m->layers[l].kind == L_POOL && m->layers[l].pool == NS_POOL_MAX)
            args += (size_t)m->layers[l].dout * (size_t)nb;
    size_t total = per_example(m, with_r) * (size_t)nb + cols;
    m->ws = ns_malloc(sizeof *m->ws * total);
    m->args = args ? ns_malloc(args) : NULL;
    if (!m->ws || (args && !m->args)) {
        free(m->ws);
        m->ws = NULL;
        return ns_fail(NS_ENOMEM, "out of memory for the workspace of a pass over %ld examples "
                       "(%zu MB)", nb, sizeof *m->ws * total >> 20);
    }
    real *p = m->ws;
    unsigned char *q = m->args;
    for (int l = 0; l < m->nlayers; l++) {
        layer *L = &m->layers[l];
        size_t sz = (size_t)L->dout * (size_t)nb;
        L->y = p, p += sz;
        L->ry = with_r ? p : NULL, p += with_r ? sz : 0;
        L->arg = NULL;
        if (L->kind == L_POOL && L->pool == NS_POOL_MAX) L->arg = q, q += sz;
    }
    for (int i = 0; i < 2; i++) {
        m->g[i] = p, p += (size_t)m->maxd * nb;
        m->rg[i] = with_r ? p : NULL, p += with_r ? (size_t)m->maxd * nb : 0;
    }
    m->cols = cols ? p : NULL;
    m->cols_cap = cols;
    m->cap = nb;
    m->cap_r = with_r;
    return 0;
}

// ---- passes over one chunk of nb examples ------------------------------------------------

// Forward through every layer; with v != NULL also the tangent pass along v.
static void forward(ns_model *m, const real *x, long nb, const real *v) {
    const real *th = m->theta;
    for (int l = 0; l < m->nlayers; l++) {
        layer *L = &m->layers[l];
        const real *in = l ? m->layers[l - 1].y : x;
        const real *rin = l ? m->layers[l - 1].ry : NULL;
        size_t len = (size_t)L->dout * (size_t)nb;
        switch (L->kind) {
        case L_DENSE:
            ns_dense_forward(L->y, in, th + L->woff, th + L->boff, L->wmul, nb, L->in, L->out);
            if (v)
                ns_dense_rforward(L->ry, in, rin, th + L->woff, v + L->woff, v + L->boff, L->wmul,
                                  nb, L->in, L->out);
            break;
        case L_CONV:
            ns_conv3x3_forward(L->y, in, th + L->woff, th + L->boff, L->wmul, nb, &L->conv,
                               m->cols, m->cols_cap);
            if (v)
                ns_conv3x3_rforward(L->ry, in, rin, th + L->woff, v + L->woff, v + L->boff,
                                    L->wmul, nb, &L->conv, m->cols, m->cols_cap);
            break;
        case L_ACT:
            ns_act_forward(L->act, L->y, in, len);
            if (v) ns_act_rforward(L->act, L->ry, rin, in, L->y, len);
            break;
        case L_POOL:
            ns_pool_forward(L->pool, L->y, L->arg, in, nb, L->h, L->w, L->c);
            if (v) ns_pool_rforward(L->pool, L->ry, rin, L->arg, nb, L->h, L->w, L->c);
            break;
        case L_FLATTEN:
            ns_flatten_forward(L->y, in, nb, L->h, L->w, L->c);
            if (v) ns_flatten_rforward(L->ry, rin, nb, L->h, L->w, L->c);
            break;
        }
    }
}

// Backward from g[0] = dL/df: grad += dL/dtheta for this chunk.
static void backward(ns_model *m, const real *x, long nb, real *grad) {
    const real *th = m->theta;
    real *cur = m->g[0], *other = m->g[1], *t;
    for (int l = m->nlayers - 1; l >= 0; l--) {
        layer *L = &m->layers[l];
        const real *in = l ? m->layers[l - 1].y : x;
        real *gx = l ? other : NULL;  // the data needs no gradient
        switch (L->kind) {
        case L_DENSE:
            ns_dense_backward(gx, grad + L->woff, grad + L->boff, cur, in, th + L->woff, L->wmul,
                              nb, L->in, L->out);
            break;
        case L_CONV:
            ns_conv3x3_backward(gx, grad + L->woff, grad + L->boff, cur, in, th + L->woff,
                                L->wmul, nb, &L->conv, m->cols, m->cols_cap);
            break;
        case L_ACT:  // in place
            ns_act_backward(L->act, cur, cur, in, L->y, (size_t)L->dout * (size_t)nb);
            continue;
        case L_POOL:
            ns_pool_backward(L->pool, gx, cur, L->arg, nb, L->h, L->w, L->c);
            break;
        case L_FLATTEN:
            ns_flatten_backward(gx, cur, nb, L->h, L->w, L->c);
            break;
        }
        t = cur, cur = other, other = t;
    }
}

// Tangent of the backward pass from g[0] = dL/df and rg[0] = R{dL/df}: hv += H v.
static void rbackward(ns_model *m, const real *x, long nb, const real *v, real *hv) {
    const real *th = m->theta;
    real *cur = m->g[0], *other = m->g[1], *rcur = m->rg[0], *rother = m->rg[1], *t;
    for (int l = m->nlayers - 1; l >= 0; l--) {
        layer *L = &m->layers[l];
        const real *in = l ? m->layers[l - 1].y : x;
        const real *rin = l ? m->layers[l - 1].ry : NULL;
        real *gx = l ? other : NULL, *rgx = l ? rother : NULL;
        switch (L->kind) {
        case L_DENSE:
            ns_dense_rbackward(gx, rgx, hv + L->woff, hv + L->boff, cur, rcur, in, rin,
                               th + L->woff, v + L->woff, L->wmul, nb, L->in, L->out);
            break;
        case L_CONV:
            ns_conv3x3_rbackward(gx, rgx, hv + L->woff, hv + L->boff, cur, rcur, in, rin,
                                 th + L->woff, v + L->woff, L->wmul, nb, &L->conv, m->cols,
                                 m->cols_cap);
            break;
        case L_ACT:  // in place
            ns_act_rbackward(L->act, cur, rcur, cur, rcur, in, rin, L->y,
                             (size_t)L->dout * (size_t)nb);
            continue;
        case L_POOL:
            ns_pool_rbackward(L->pool, gx, rgx, cur, rcur, L->arg, nb, L->h, L->w, L->c);
            break;
        case L_FLATTEN:
            ns_flatten_rbackward(gx, rgx, cur, rcur, nb, L->h, L->w, L->c);
            break;
        }
        t = cur, cur = other, other = t;
        t = rcur, rcur = rother, rother = t;
    }
}

// ---- the passes of model.h -----------------------------------------------------------------

enum { PASS_LOSS, PASS_GRAD, PASS_HVP };

static int check_batch(const ns_model *m, const ns_batch *b) {
    if (!b || !b->x || b->n < 1)
        return ns_fail(NS_EINVAL, "the batch given to model '%s' is empty", m->cfg.arch);
    if (b->loss != NS_LOSS_MSE && b->loss != NS_LOSS_CE)
        return ns_fail(NS_EINVAL, "the batch names an unknown loss (%d)", (int)b->loss);
    if (b->loss == NS_LOSS_MSE && !b->t)
        return ns_fail(NS_EINVAL, "the MSE loss needs one-hot targets, but the batch has none");
    if (b->loss == NS_LOSS_CE && !b->y)
        return ns_fail(NS_EINVAL, "the cross-entropy loss needs labels, but the batch has none");
    return 0;
}

static int run(ns_model *m, const ns_batch *b, int pass, const real *v, real *out,
               double *loss, double *acc) {
    int rc = check_batch(m, b);
    if (rc) return rc;
    int with_r = pass == PASS_HVP;
    long chunk = chunk_size(m, b->n, with_r);
    if ((rc = ensure_workspace(m, chunk, with_r))) return rc;
    if (out) memset(out, 0, sizeof *out * m->nparams);
    long d = (long)m->cfg.c * m->cfg.h * m->cfg.w, k = m->cfg.k;
    const layer *head = &m->layers[m->nlayers - 1];
    double sum = 0;
    long correct = 0;
    for (long e0 = 0; e0 < b->n; e0 += chunk) {
        long nb = b->n - e0 < chunk ? b->n - e0 : chunk;
        const real *x = b->x + e0 * d;
        forward(m, x, nb, with_r ? v : NULL);
        rc = ns_loss_eval(b->loss, pass == PASS_LOSS ? NULL : m->g[0], with_r ? m->rg[0] : NULL,
                          head->y, head->ry, b->y ? b->y + e0 : NULL, b->t ? b->t + e0 * k : NULL,
                          nb, (int)k, 1.0 / (double)b->n, &sum, &correct);
        if (rc) return rc;
        if (pass == PASS_GRAD) backward(m, x, nb, out);
        if (pass == PASS_HVP) rbackward(m, x, nb, v, out);
    }
    if (loss) *loss = sum / (double)b->n;
    if (acc) *acc = (double)correct / (double)b->n;
    return 0;
}

int ns_model_loss(ns_model *m, const ns_batch *b, double *loss, double *acc) {
    return run(m, b, PASS_LOSS, NULL, NULL, loss, acc);
}

int ns_model_grad(ns_model *m, const ns_batch *b, real *grad, double *loss, double *acc) {
    if (!grad) return ns_fail(NS_EINVAL, "ns_model_grad needs an output vector");
    return run(m, b, PASS_GRAD, NULL, grad, loss, acc);
}

int ns_model_hvp(ns_model *m, const ns_batch *b, const real *v, real *hv) {
    if (!v || !hv) return ns_fail(NS_EINVAL, "ns_model_hvp needs the vector v and an output");
    return run(m, b, PASS_HVP, v, hv, NULL, NULL);
}
