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
//
// The primal cache of H v. Within one Lanczos run theta and the batch are fixed, yet each
// H v needs the forward pass (every layer's output) and the backward pass (the gradient at
// every layer's output). The first H v at a (theta, batch) stores both, chunk by chunk, while
// they fit in a memory budget (ns_model_set_hvp_cache); the next ones read them and compute
// only the tangents, and recompute the chunks beyond the budget. The cache is keyed on a copy
// of theta and of the batch (pointers, sizes and contents), compared on every H v, so a write
// to theta or to the data between two products can never return a stale result. The stored
// values are the very ones a product computes, so H v is the same bits with and without it.
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
// Convolutional nets make many elementwise passes over large activations: in chunks of 16
// examples these stay in cache, which makes a CNN gradient ~15% faster than in chunks of
// hundreds (BENCHMARKS.md §3). MLPs keep whole-batch chunks, for the widest GEMMs.
#define CONV_CHUNK 16
#define HVP_CACHE_DEFAULT ((size_t)512 << 20)  // bytes

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
    real *cols, *rcols;     // conv: im2col of the input and of its tangent, for the chunk
    unsigned char *arg;     // maxpool routing
} layer;

// The primal cache of H v (see the top of this file).
typedef struct {
    size_t budget;          // bytes; 0 = off
    int valid;              // the stored chunks belong to the key below
    long chunk, nchunks;    // examples per chunk, chunks stored
    size_t slot;            // values per stored chunk: outputs, then gradients, of all layers
    size_t argslot;         // maxpool routing bytes per stored chunk
    real *vals;
    unsigned char *args;
    size_t vals_cap, args_cap;
    // the key: theta and the batch the stored values belong to
    real *theta, *x, *t;
    int *y;
    const real *bx, *bt;
    const int *by;
    long n;
    ns_loss_kind loss;
} hvp_cache;

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
    real *ys;               // the layers' outputs in the workspace (each dout * cap values)
    real *g[2], *rg[2];
    real *taps;             // room for a conv layer's reordered weights (ns_conv3x3_workspace)
    real **gout;            // per layer: dL/d(its output) for the current chunk
    hvp_cache cache;        // the primal cache of H v (see the top of this file)
};

static size_t hvp_cache_default = HVP_CACHE_DEFAULT;

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
    m->gout = ns_calloc((size_t)m->nlayers, sizeof *m->gout);
    if (!m->gout) {
        rc = NS_ENOMEM;
        goto fail;
    }
    m->cache.budget = hvp_cache_default;
    *out = m;
    return 0;
fail:
    ns_model_free(m);
    return rc;
}

void ns_model_free(ns_model *m) {
    if (!m) return;
    ns_model_hvp_cache_clear(m);
    free(m->gout);
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

// Values of workspace per example (activations, their tangents, gradient buffers, patches).
static size_t per_example(const ns_model *m, int with_r) {
    size_t v = 0;
    for (int l = 0; l < m->nlayers; l++) v += (size_t)m->layers[l].dout;
    v *= with_r ? 2 : 1;
    v += (size_t)m->maxd * (with_r ? 4 : 2);
    for (int l = 0; l < m->nlayers; l++)  // patches of the input, and of its tangent
        if (m->layers[l].kind == L_CONV)
            v += ns_conv3x3_patch_size(&m->layers[l].conv) * (with_r && l ? 2 : 1);
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
    size_t taps = 0;  // the largest conv layer's reordered weights
    for (int l = 0; l < m->nlayers; l++)
        if (m->layers[l].kind == L_CONV && ns_conv3x3_workspace(&m->layers[l].conv) > taps)
            taps = ns_conv3x3_workspace(&m->layers[l].conv);
    size_t args = 0;
    for (int l = 0; l < m->nlayers; l++)
        if (m->layers[l].kind == L_POOL && m->layers[l].pool == NS_POOL_MAX)
            args += (size_t)m->layers[l].dout * (size_t)nb;
    size_t total = per_example(m, with_r) * (size_t)nb + taps;
    m->ws = ns_malloc(sizeof *m->ws * total);
    m->args = args ? ns_malloc(args) : NULL;
    if (!m->ws || (args && !m->args)) {
        free(m->ws);
        m->ws = NULL;
        return ns_fail(NS_ENOMEM, "out of memory for the workspace of a pass over %ld examples "
                       "(%zu MB)", nb, sizeof *m->ws * total >> 20);
    }
    // [outputs of all layers][their tangents][g0 g1 rg0 rg1][patches][taps]
    size_t outs = 0;
    for (int l = 0; l < m->nlayers; l++) outs += (size_t)m->layers[l].dout * (size_t)nb;
    m->ys = m->ws;
    real *p = m->ws + outs;
    for (int l = 0; l < m->nlayers; l++) {
        layer *L = &m->layers[l];
        L->ry = with_r ? p : NULL, p += with_r ? (size_t)L->dout * (size_t)nb : 0;
    }
    for (int i = 0; i < 2; i++) {
        m->g[i] = p, p += (size_t)m->maxd * nb;
        m->rg[i] = with_r ? p : NULL, p += with_r ? (size_t)m->maxd * nb : 0;
    }
    for (int l = 0; l < m->nlayers; l++) {
        layer *L = &m->layers[l];
        if (L->kind != L_CONV) continue;
        size_t sz = ns_conv3x3_patch_size(&L->conv) * (size_t)nb;
        L->cols = p, p += sz;
        L->rcols = with_r && l ? p : NULL, p += with_r && l ? sz : 0;
    }
    m->taps = taps ? p : NULL;
    m->cap = nb;
    m->cap_r = with_r;
    return 0;
}

// Points the layers' outputs, maxpool routing and gradient slots at the workspace (slot < 0)
// or at stored chunk `slot` of the primal cache. In the workspace the gradients take turns in
// g[0] and g[1] (an activation works in place); in the cache every layer has its own.
static void place_chunk(ns_model *m, long slot) {
    long stride = slot < 0 ? m->cap : m->cache.chunk;
    real *y = slot < 0 ? m->ys : m->cache.vals + (size_t)slot * m->cache.slot;
    // (no max-pool layer: no routing bytes, and NULL + 0 is undefined behaviour in C)
    unsigned char *a = slot < 0 ? m->args : m->cache.args ? m->cache.args + (size_t)slot * m->cache.argslot : NULL;
    for (int l = 0; l < m->nlayers; l++) {
        layer *L = &m->layers[l];
        size_t sz = (size_t)L->dout * (size_t)stride;
        L->y = y, y += sz;
        L->arg = NULL;
        if (L->kind == L_POOL && L->pool == NS_POOL_MAX) L->arg = a, a += sz;
    }
    int top = m->nlayers - 1;
    if (slot >= 0) {  // y now points just past the outputs: the gradients follow
        for (int l = 0; l < m->nlayers; l++) m->gout[l] = y, y += (size_t)m->layers[l].dout * (size_t)stride;
        return;
    }
    m->gout[top] = m->g[0];
    for (int l = top; l > 0; l--)
        m->gout[l - 1] = m->layers[l].kind == L_ACT   ? m->gout[l]
                         : m->gout[l] == m->g[0] ? m->g[1]
                                                 : m->g[0];
}

// ---- the primal cache of H v -------------------------------------------------------------

void ns_hvp_cache_default(size_t bytes) { hvp_cache_default = bytes; }

void ns_model_set_hvp_cache(ns_model *m, size_t bytes) {
    if (!m) return;
    if (bytes < m->cache.budget) ns_model_hvp_cache_clear(m);
    m->cache.budget = bytes;
}

void ns_model_hvp_cache_clear(ns_model *m) {
    if (!m) return;
    free(m->cache.vals);
    free(m->cache.args);
    free(m->cache.theta);
    free(m->cache.x);
    free(m->cache.t);
    free(m->cache.y);
    size_t budget = m->cache.budget;
    memset(&m->cache, 0, sizeof m->cache);
    m->cache.budget = budget;
}

long ns_model_hvp_cache_examples(const ns_model *m) {
    if (!m || !m->cache.valid) return 0;
    long e = m->cache.nchunks * m->cache.chunk;
    return e < m->cache.n ? e : m->cache.n;
}

// Is the cache's key this theta and batch? Compares contents, not only pointers.
static int cache_matches(const ns_model *m, const ns_batch *b, long chunk) {
    const hvp_cache *c = &m->cache;
    size_t d = (size_t)m->cfg.c * m->cfg.h * m->cfg.w, n = (size_t)b->n, k = (size_t)m->cfg.k;
    return c->valid && c->chunk == chunk && c->n == b->n && c->loss == b->loss &&
           c->bx == b->x && c->by == b->y && c->bt == b->t &&
           memcmp(c->theta, m->theta, sizeof *m->theta * m->nparams) == 0 &&
           memcmp(c->x, b->x, sizeof *b->x * n * d) == 0 &&
           (!b->y || memcmp(c->y, b->y, sizeof *b->y * n) == 0) &&
           (!b->t || memcmp(c->t, b->t, sizeof *b->t * n * k) == 0);
}

// grows *p to hold `want` bytes; 0 or -1
static int grow(void **p, size_t *cap, size_t want) {
    if (want <= *cap) return 0;
    free(*p);
    *cap = 0;
    if (!(*p = ns_malloc(want ? want : 1))) return -1;
    *cap = want;
    return 0;
}

// Before an H v over b in chunks of `chunk`: returns how many leading chunks are in the cache
// and sets *replay if they hold this theta and batch (else they are to be filled, and the key
// is taken now). 0 when the cache is off, too small for one chunk, or out of memory.
static long cache_prepare(ns_model *m, const ns_batch *b, long chunk, int *replay) {
    hvp_cache *c = &m->cache;
    *replay = 0;
    if (cache_matches(m, b, chunk)) return *replay = 1, c->nchunks;
    c->valid = 0;
    if (!c->budget) return 0;
    size_t d = (size_t)m->cfg.c * m->cfg.h * m->cfg.w, n = (size_t)b->n, k = (size_t)m->cfg.k;
    size_t per = 0, perarg = 0;
    for (int l = 0; l < m->nlayers; l++) {
        const layer *L = &m->layers[l];
        per += 2 * (size_t)L->dout;
        if (L->kind == L_POOL && L->pool == NS_POOL_MAX) perarg += (size_t)L->dout;
    }
    size_t key = sizeof(real) * (m->nparams + n * d + (b->t ? n * k : 0)) + (b->y ? sizeof(int) * n : 0);
    size_t chunk_bytes = (per * sizeof(real) + perarg) * (size_t)chunk;
    long total = (b->n + chunk - 1) / chunk;
    if (c->budget < key + chunk_bytes) return 0;
    long fit = (long)((c->budget - key) / chunk_bytes);
    if (fit > total) fit = total;
    c->slot = per * (size_t)chunk;
    c->argslot = perarg * (size_t)chunk;
    if (grow((void **)&c->vals, &c->vals_cap, sizeof(real) * c->slot * (size_t)fit) ||
        grow((void **)&c->args, &c->args_cap, c->argslot * (size_t)fit)) {
        ns_model_hvp_cache_clear(m);  // recompute instead
        return 0;
    }
    free(c->theta), free(c->x), free(c->t), free(c->y);
    c->theta = ns_malloc(sizeof *c->theta * m->nparams);
    c->x = ns_malloc(sizeof *c->x * n * d);
    c->t = b->t ? ns_malloc(sizeof *c->t * n * k) : NULL;
    c->y = b->y ? ns_malloc(sizeof *c->y * n) : NULL;
    if (!c->theta || !c->x || (b->t && !c->t) || (b->y && !c->y)) {
        ns_model_hvp_cache_clear(m);
        return 0;
    }
    memcpy(c->theta, m->theta, sizeof *m->theta * m->nparams);
    memcpy(c->x, b->x, sizeof *b->x * n * d);
    if (b->t) memcpy(c->t, b->t, sizeof *b->t * n * k);
    if (b->y) memcpy(c->y, b->y, sizeof *b->y * n);
    c->bx = b->x, c->by = b->y, c->bt = b->t, c->n = b->n, c->loss = b->loss;
    c->chunk = chunk;
    c->nchunks = fit;
    return fit;
}

// ---- passes over one chunk of nb examples ------------------------------------------------

// Forward through every layer; with v != NULL also the tangent pass along v. primal = 0
// skips the primal pass (the layers' outputs are already there, from the cache).
static void forward(ns_model *m, const real *x, long nb, const real *v, int primal) {
    const real *th = m->theta;
    for (int l = 0; l < m->nlayers; l++) {
        layer *L = &m->layers[l];
        const real *in = l ? m->layers[l - 1].y : x;
        const real *rin = l ? m->layers[l - 1].ry : NULL;
        size_t len = (size_t)L->dout * (size_t)nb;
        switch (L->kind) {
        case L_DENSE:
            if (primal) ns_dense_forward(L->y, in, th + L->woff, th + L->boff, L->wmul, nb, L->in, L->out);
            if (v)
                ns_dense_rforward(L->ry, in, rin, th + L->woff, v + L->woff, v + L->boff, L->wmul,
                                  nb, L->in, L->out);
            break;
        case L_CONV:
            ns_conv3x3_im2col(L->cols, in, nb, &L->conv);  // also for the tangent alone
            if (primal)
                ns_conv3x3_forward(L->y, L->cols, th + L->woff, th + L->boff, L->wmul, nb,
                                   &L->conv, m->taps);
            if (v && rin) ns_conv3x3_im2col(L->rcols, rin, nb, &L->conv);
            if (v)
                ns_conv3x3_rforward(L->ry, L->cols, rin ? L->rcols : NULL, th + L->woff,
                                    v + L->woff, v + L->boff, L->wmul, nb, &L->conv, m->taps);
            break;
        case L_ACT:
            if (primal) ns_act_forward(L->act, L->y, in, len);
            if (v) ns_act_rforward(L->act, L->ry, rin, in, L->y, len);
            break;
        case L_POOL:
            if (primal) ns_pool_forward(L->pool, L->y, L->arg, in, nb, L->h, L->w, L->c);
            if (v) ns_pool_rforward(L->pool, L->ry, rin, L->arg, nb, L->h, L->w, L->c);
            break;
        case L_FLATTEN:
            if (primal) ns_flatten_forward(L->y, in, nb, L->h, L->w, L->c);
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
            ns_conv3x3_backward(gx, grad + L->woff, grad + L->boff, cur, L->cols, th + L->woff,
                                L->wmul, nb, &L->conv, m->taps);
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

// Tangent of the backward pass from gout[top] = dL/df and rg[0] = R{dL/df}: hv += H v.
// With g_known the gradients gout[l] are already there (from the cache): only the tangents
// and H v are computed.
static void rbackward(ns_model *m, const real *x, long nb, const real *v, real *hv, int g_known) {
    const real *th = m->theta;
    real *rcur = m->rg[0], *rother = m->rg[1], *t;
    for (int l = m->nlayers - 1; l >= 0; l--) {
        layer *L = &m->layers[l];
        const real *in = l ? m->layers[l - 1].y : x;
        const real *rin = l ? m->layers[l - 1].ry : NULL;
        const real *cur = m->gout[l];
        real *gx = l && !g_known ? m->gout[l - 1] : NULL, *rgx = l ? rother : NULL;
        switch (L->kind) {
        case L_DENSE:
            ns_dense_rbackward(gx, rgx, hv + L->woff, hv + L->boff, cur, rcur, in, rin,
                               th + L->woff, v + L->woff, L->wmul, nb, L->in, L->out);
            break;
        case L_CONV:
            ns_conv3x3_rbackward(gx, rgx, hv + L->woff, hv + L->boff, cur, rcur, L->cols,
                                 L->rcols, th + L->woff, v + L->woff, L->wmul, nb, &L->conv,
                                 m->taps);
            break;
        case L_ACT:  // the tangent in place
            ns_act_rbackward(L->act, gx, rcur, cur, rcur, in, rin, L->y,
                             (size_t)L->dout * (size_t)nb);
            continue;
        case L_POOL:
            ns_pool_rbackward(L->pool, gx, rgx, cur, rcur, L->arg, nb, L->h, L->w, L->c);
            break;
        case L_FLATTEN:
            ns_flatten_rbackward(gx, rgx, cur, rcur, nb, L->h, L->w, L->c);
            break;
        }
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
    int replay = 0;  // the cached chunks hold this theta and batch
    long cached = with_r ? cache_prepare(m, b, chunk, &replay) : 0;
    if (out) memset(out, 0, sizeof *out * m->nparams);
    long d = (long)m->cfg.c * m->cfg.h * m->cfg.w, k = m->cfg.k;
    const layer *head = &m->layers[m->nlayers - 1];
    double sum = 0;
    long correct = 0;
    for (long c = 0, e0 = 0; e0 < b->n; c++, e0 += chunk) {
        long nb = b->n - e0 < chunk ? b->n - e0 : chunk;
        const real *x = b->x + e0 * d;
        int known = replay && c < cached;
        place_chunk(m, c < cached ? c : -1);
        forward(m, x, nb, with_r ? v : NULL, !known);
        real *g = pass == PASS_LOSS || known ? NULL : m->gout[m->nlayers - 1];
        rc = ns_loss_eval(b->loss, g, with_r ? m->rg[0] : NULL, head->y, head->ry,
                          b->y ? b->y + e0 : NULL, b->t ? b->t + e0 * k : NULL, nb, (int)k,
                          1.0 / (double)b->n, &sum, &correct);
        if (rc) {
            m->cache.valid = 0;
            return rc;
        }
        if (pass == PASS_GRAD) backward(m, x, nb, out);
        if (pass == PASS_HVP) rbackward(m, x, nb, v, out, known);
    }
    if (cached) m->cache.valid = 1;
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
