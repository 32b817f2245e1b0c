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
// The layers of ResNets and ViTs under each parameterization (docs/ARCHITECTURES.md):
//   a 1x1 shortcut, the patch embedding and each attention projection are weight
//   matrices as above (fan_in c, c*P*P and d); the position embedding is the patch
//   embedding's per-token bias (drawn as its biases); batch/layer norm gains start at
//   1 and shifts at 0 (times the init scale) with no multiplier, as vectors have no fan-in;
//   muP also scales attention scores by 1/d_head instead of 1/sqrt(d_head) (Yang et al. 2021).
// Batch norm normalizes with the statistics of the whole batch of a pass — PyTorch's train()
// mode — in the loss, gradient and H v: full-batch GD makes them those of the training
// subset. Its statistics couple the examples, so a model with batch norm passes over the
// batch in one chunk whatever the memory budget. A test set is evaluated in evaluation mode
// (ns_model_eval_loss; PyTorch's eval() with running_mean and running_var set to the training
// subset's mean and biased variance): one forward pass over the training batch at the current
// theta takes every batch-norm layer's statistics, then the test batch is normalized with
// them, in chunks like any model (the examples no longer interact).
// theta_0 is drawn from ns_rng(seed, NS_STREAM_INIT), tensor by tensor in state_dict order,
// element by element in row-major order: it depends only on the architecture, input shape,
// classes, parameterization, init scale and seed.
//
// Passes run over the batch in chunks of examples whose buffers fit in a memory budget
// (all of the batch at once for the usual MLPs); the loss, gradient and H v are sums over
// examples, so chunks just accumulate, in groups (GROUP_CHUNKS, and run below).
// NS_MODEL_CHUNK (environment) caps the chunk size, for tests and small machines.
//
// The primal cache of H v. Within one Lanczos run theta and the batch are fixed, yet each
// H v needs the forward pass (every layer's output) and the backward pass (the gradient at
// every layer's output). The first H v at a (theta, batch) stores both, chunk by chunk, while
// they fit in a memory budget (ns_model_set_hvp_cache); the next ones read them and compute
// only the tangents, and recompute the chunks beyond the budget. The cache is keyed on a copy
// of theta and of the batch (pointers, sizes and contents), compared on every H v, so a write
// to theta or to the data between two products can never return a stale result. The stored
// values are the very ones a product computes, so H v is the same bits with and without it.
// The cache holds outputs and output gradients only. Layers that keep more per chunk are
// handled so that a replay never reads a value of another chunk or batch: batch/layer norm
// (x-hat, 1/sigma) and attention (qkv, softmax probabilities, head outputs) recompute their
// primal forward pass, from their cached input, on every product (their tangent passes read
// those values, kept only in the workspace); a residual addition recomputes its shortcut's
// gradient from the cached gradient of its output on every product, and the cached gradient
// of the block's input already includes it, so a replay adds only the tangent's share.
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "layers.h"
#include "normsharp/model.h"
#include "normsharp/rng.h"

#define MAX_INPUT_DIM (1L << 26)
#define MAX_ACTIVATIONS (1L << 28)  // values of one layer's output, per example
#define MAX_PARAMS ((size_t)1 << 31)
#define WORKSPACE_BUDGET ((size_t)512 << 20)  // bytes of activation buffers per pass
// Convolutional nets make many elementwise passes over large activations and patch matrices:
// in chunks of 4 examples these stay in cache between the gather that writes them and the
// GEMM that reads them, which makes a CNN gradient and H v ~1.35x faster than in chunks of 16
// (BENCHMARKS.md §5; `NS_BENCH_CHUNKS` in bench/bench_model.c measures it). MLPs keep
// whole-batch chunks, for the widest GEMMs.
#define CONV_CHUNK 4
// The loss, gradient and H v are summed over groups of GROUP_CHUNKS consecutive chunks: each
// group from zero, then the groups in order (run, below). Convolutional nets give each thread
// whole groups; the bits depend on the group, never on the thread count. 4 chunks of 4
// examples: about 3 ms of a cnn-relu-32-32 gradient per group, so that the last groups of a
// pass leave little idle, while adding the groups costs one pass over theta per 16 examples.
#define GROUP_CHUNKS 4
#define HVP_CACHE_DEFAULT ((size_t)1024 << 20)  // bytes; cnn-relu-32-32 needs 0.58 MB per example

typedef enum {
    L_DENSE, L_CONV, L_ACT, L_POOL, L_FLATTEN, L_ADD, L_NORM, L_ATTN, L_PATCH, L_MEAN
} layer_kind;

typedef struct {
    layer_kind kind;
    long din, dout;         // values per example in and out
    int in, out;            // dense (per row); add: channels of the shortcut's input and output
    long rows;              // dense, add, norm, mean: rows per example (pixels or tokens)
    ns_conv_shape conv;     // conv
    int h, w, c;            // pool, flatten: input geometry (channels last); norm, mean: c
    ns_act_kind act;
    ns_pool_kind pool;
    ns_norm_kind norm;
    ns_attn_shape attn;
    ns_patch_shape patch;
    int from;               // add: the layer whose output is the block's input (the shortcut)
    size_t stats_off;       // batch norm: its (mu, r) in the model's bn_stats
    int skip_by;            // the add layer that also reads this layer's output, or -1
    int has_params;         // add: a 1x1 conv shortcut
    size_t woff, boff;      // parameters in theta (dense, conv; the block's start for others)
    real wmul;
    real *y, *ry;           // output and its tangent, for the examples of the current chunk
    real *cols, *rcols;     // conv: im2col of the input and of its tangent, for the chunk
    real *save, *rsave;     // norm, attention: values kept from forward (and rforward)
    real *gs, *rgs;         // add: gradient (and tangent) w.r.t. the shortcut's input
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
    real *scratch;          // attention, patch embedding
    real **gout;            // per layer: dL/d(its output) for the current chunk
    hvp_cache cache;        // the primal cache of H v (see the top of this file)
    // data parallelism over groups of chunks (run, below): the models of the other threads,
    // each with a workspace of its own and everything else shared with this one, and the
    // groups' gradient slots
    struct ns_model **helpers;
    int nhelpers;
    real *slots;
    size_t slots_cap;       // bytes
    // batch norm's evaluation mode: the training batch's statistics (mu, then r = 1/sqrt(var
    // + eps), per channel of each batch-norm layer), and how passes use them
    double *bn_stats;
    size_t nbn_stats;
    enum { BN_BATCH, BN_TAKE, BN_FIXED } bn_mode;  // normalize by the pass's own batch; and
                                                    // keep its statistics; by bn_stats
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
    L->rows = 1;
    L->from = L->skip_by = -1;
    return L;
}

// ---- ResNets and ViTs ------------------------------------------------------------------

static int last_index(const ns_model *m) { return m->nlayers - 1; }

// A tensor named "<prefix>.<what>" of the given shape; returns its offset.
static size_t tensor(ns_model *m, const char *prefix, const char *what, int ndim,
                     const int *shape) {
    return m->tensors[add_tensor(m, prefix, what, ndim, shape)].offset;
}

// batch norm (over the rows of all examples) or layer norm (over each row), gain and shift.
static void push_norm(ns_model *m, ns_norm_kind k, const char *name, long rows, int c) {
    layer *L = push(m, L_NORM, rows * c, rows * c);
    L->norm = k, L->rows = rows, L->c = c;
    if (k == NS_NORM_BATCH) L->stats_off = m->nbn_stats, m->nbn_stats += 2 * (size_t)c;
    L->woff = tensor(m, name, "weight", 1, (const int[]){c});
    tensor(m, name, "bias", 1, (const int[]){c});
}

// A dense layer applied to each of `rows` rows of an example.
static void push_dense(ns_model *m, const char *name, long rows, int in, int out) {
    layer *L = push(m, L_DENSE, rows * in, rows * out);
    L->rows = rows, L->in = in, L->out = out;
    L->woff = tensor(m, name, "weight", 2, (const int[]){out, in});
    L->boff = tensor(m, name, "bias", 1, (const int[]){out});
}

// The addition closing a residual block whose input is the output of layer `from`.
static void push_add(ns_model *m, const char *name, int from, long rows, int c, int co) {
    layer *L = push(m, L_ADD, rows * co, rows * co);
    L->from = from, L->rows = rows, L->in = c, L->out = co;
    m->layers[from].skip_by = last_index(m);
    if (c != co) {
        L->has_params = 1;
        L->woff = tensor(m, name, "weight", 4, (const int[]){co, c, 1, 1});
        L->boff = tensor(m, name, "bias", 1, (const int[]){co});
    }
}

static void push_conv(ns_model *m, const char *name, int c, int h, int w, int co, int nchw) {
    layer *L = push(m, L_CONV, (long)c * h * w, (long)co * h * w);
    L->conv = (ns_conv_shape){.c = c, .h = h, .w = w, .co = co, .nchw = nchw};
    L->woff = tensor(m, name, "weight", 4, (const int[]){co, c, 3, 3});
    L->boff = tensor(m, name, "bias", 1, (const int[]){co});
}

static void push_act(ns_model *m, ns_act_kind act, long d) {
    if (act != NS_ACT_LINEAR) push(m, L_ACT, d, d)->act = act;
}

// conv [bn] act for a stem or the first half of a block; `name` is the module's prefix.
static void push_conv_unit(ns_model *m, const char *prefix, int unit, int c, int h, int w,
                           int co, int nchw, int act) {
    char name[48];
    snprintf(name, sizeof name, "%s%sconv%d", prefix, *prefix ? "." : "", unit);
    push_conv(m, name, c, h, w, co, nchw);
    if (m->arch.bn) {
        snprintf(name, sizeof name, "%s%sbn%d", prefix, *prefix ? "." : "", unit);
        push_norm(m, NS_NORM_BATCH, name, (long)h * w, co);
    }
    if (act) push_act(m, m->arch.act, (long)co * h * w);
}

// He et al. (2016)'s basic blocks, post-activation: x -> act(x + bn(conv(act(bn(conv x))))).
static int build_resnet(ns_model *m, long *d) {
    const ns_model_config *cfg = &m->cfg;
    const ns_arch *a = &m->arch;
    long need = 1L << (a->nhidden - 1);
    if (cfg->h < need || cfg->w < need)
        return ns_fail(NS_EINVAL, "architecture '%s' halves its maps %d time%s, so it needs "
                       "inputs of at least %ldx%ld pixels; these are %dx%d", cfg->arch,
                       a->nhidden - 1, a->nhidden == 2 ? "" : "s", need, need, cfg->h, cfg->w);
    int c = a->width[0], h = cfg->h, w = cfg->w;
    push_conv_unit(m, "", 1, cfg->c, h, w, c, 1, 1);
    for (int s = 0; s < a->nhidden; s++) {
        if (s > 0) {
            layer *P = push(m, L_POOL, (long)c * h * w, (long)c * (h / 2) * (w / 2));
            P->pool = NS_POOL_AVG, P->h = h, P->w = w, P->c = c;
            h /= 2, w /= 2;
        }
        int co = a->width[s];
        for (int b = 0; b < a->blocks; b++) {
            char prefix[32], name[48];
            snprintf(prefix, sizeof prefix, "layer%d.%d", s + 1, b);
            int from = last_index(m);
            push_conv_unit(m, prefix, 1, c, h, w, co, 0, 1);
            push_conv_unit(m, prefix, 2, co, h, w, co, 0, 0);
            snprintf(name, sizeof name, "%s.shortcut", prefix);
            push_add(m, name, from, (long)h * w, c, co);
            push_act(m, a->act, (long)co * h * w);
            c = co;
        }
    }
    layer *G = push(m, L_MEAN, (long)c * h * w, c);
    G->rows = (long)h * w, G->c = c;
    *d = c;
    return 0;
}

// Dosovitskiy et al. (2021) with pre-LayerNorm blocks x += attn(ln1 x); x += mlp(ln2 x),
// mlp = fc2(gelu(fc1 .)) of width 4d, then a final LayerNorm and the mean over tokens.
static int build_vit(ns_model *m, long *dout) {
    const ns_model_config *cfg = &m->cfg;
    const ns_arch *a = &m->arch;
    int P = a->patch, d = a->dim;
    if (cfg->h % P || cfg->w % P)
        return ns_fail(NS_EINVAL, "architecture '%s': the patch size %d does not divide the "
                       "%dx%d images", cfg->arch, P, cfg->h, cfg->w);
    int t = (cfg->h / P) * (cfg->w / P);
    long td = (long)t * d;
    layer *E = push(m, L_PATCH, (long)cfg->c * cfg->h * cfg->w, td);
    E->patch = (ns_patch_shape){.c = cfg->c, .h = cfg->h, .w = cfg->w, .p = P, .d = d};
    E->woff = tensor(m, "embed", "pos", 3, (const int[]){1, t, d});
    tensor(m, "embed.proj", "weight", 4, (const int[]){d, cfg->c, P, P});
    tensor(m, "embed.proj", "bias", 1, (const int[]){d});
    int mup = strcmp(cfg->param, "mup") == 0, dh = d / a->heads;
    for (int b = 0; b < a->blocks; b++) {
        char pre[24], name[40];
        snprintf(pre, sizeof pre, "blocks.%d", b);
        int from = last_index(m);
        snprintf(name, sizeof name, "%s.norm1", pre);
        push_norm(m, NS_NORM_LAYER, name, t, d);
        layer *A = push(m, L_ATTN, td, td);
        A->attn = (ns_attn_shape){.t = t, .d = d, .heads = a->heads,
                                  .scale = (real)(mup ? 1.0 / dh : 1.0 / sqrt((double)dh))};
        snprintf(name, sizeof name, "%s.attn", pre);
        A->woff = tensor(m, name, "in_proj_weight", 2, (const int[]){3 * d, d});
        tensor(m, name, "in_proj_bias", 1, (const int[]){3 * d});
        snprintf(name, sizeof name, "%s.attn.out_proj", pre);
        tensor(m, name, "weight", 2, (const int[]){d, d});
        tensor(m, name, "bias", 1, (const int[]){d});
        push_add(m, NULL, from, t, d, d);
        from = last_index(m);
        snprintf(name, sizeof name, "%s.norm2", pre);
        push_norm(m, NS_NORM_LAYER, name, t, d);
        snprintf(name, sizeof name, "%s.fc1", pre);
        push_dense(m, name, t, d, 4 * d);
        push_act(m, NS_ACT_GELU, 4 * td);
        snprintf(name, sizeof name, "%s.fc2", pre);
        push_dense(m, name, t, 4 * d, d);
        push_add(m, NULL, from, t, d, d);
    }
    push_norm(m, NS_NORM_LAYER, "norm", t, d);
    layer *G = push(m, L_MEAN, td, d);
    G->rows = t, G->c = d;
    *dout = d;
    return 0;
}

static int build(ns_model *m) {
    const ns_model_config *cfg = &m->cfg;
    const ns_arch *a = &m->arch;
    int nh = a->nhidden;
    // at most: per ResNet block 8 layers and 10 tensors; per ViT block 10 and 16
    size_t most = (size_t)(3 * nh + 2) + (size_t)nh * (1 + 10 * (size_t)a->blocks) + 10 +
                  16 * (size_t)a->blocks;
    m->layers = ns_calloc(most, sizeof *m->layers);
    m->tensors = ns_calloc(most, sizeof *m->tensors);
    if (!m->layers || !m->tensors) return NS_ENOMEM;
    int skip_act = a->act == NS_ACT_LINEAR;  // the identity: no layer needed
    long d = (long)cfg->c * cfg->h * cfg->w;
    int fc_index = 1, rc;
    const char *head_name = "fc";
    if (a->family == NS_NET_RESNET || a->family == NS_NET_VIT) {
        rc = a->family == NS_NET_RESNET ? build_resnet(m, &d) : build_vit(m, &d);
        if (rc) return rc;
        fc_index = 0;
        head_name = a->family == NS_NET_RESNET ? "fc" : "head";
    } else if (a->family == NS_NET_CNN) {
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
    if (fc_index) {
        layer *head = push(m, L_DENSE, d, cfg->k);
        head->in = (int)d, head->out = cfg->k;
        add_params(m, head, "fc", fc_index, 2, (const int[]){head->out, head->in});
    } else {
        push_dense(m, head_name, 1, (int)d, cfg->k);
    }
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

// fan_in of a layer's weight matrix (the weight's size over its output count)
static long fan_in(const layer *L) {
    switch (L->kind) {
    case L_CONV: return 9L * L->conv.c;
    case L_ATTN: return L->attn.d;
    case L_PATCH: return (long)L->patch.c * L->patch.p * L->patch.p;
    default: return L->in;  // dense, add (the 1x1 shortcut)
    }
}

typedef struct {
    ns_rng rng;
    double scale;           // --init-scale
    int ntk;                // ntk or mup: N(0,1) weights, zero biases
} init_draw;

// n weights of a matrix with this fan_in: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), or N(0,1).
static void draw_weights(init_draw *g, real *w, size_t n, double fin) {
    double bound = 1.0 / sqrt(fin);
    for (size_t i = 0; i < n; i++)
        w[i] = (real)(g->scale * (g->ntk ? ns_rng_normal(&g->rng)
                                         : ns_rng_uniform_in(&g->rng, -bound, bound)));
}

// n biases of a layer with this fan_in: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), or 0.
static void draw_biases(init_draw *g, real *b, size_t n, double fin) {
    double bound = 1.0 / sqrt(fin);
    for (size_t i = 0; i < n; i++)
        b[i] = g->ntk ? 0 : (real)(g->scale * ns_rng_uniform_in(&g->rng, -bound, bound));
}

// Sets each layer's weight multiplier (the parameterization's) and, when draw, theta_0.
static int draw_theta0(ns_model *m, int draw) {
    const ns_model_config *cfg = &m->cfg;
    int mup = strcmp(cfg->param, "mup") == 0;
    init_draw g = {.scale = cfg->init_scale, .ntk = mup || strcmp(cfg->param, "ntk") == 0};
    ns_rng_seed(&g.rng, cfg->seed, NS_STREAM_INIT);
    const layer *head = &m->layers[m->nlayers - 1];
    // Tensors were added in state_dict order, layer by layer; they are drawn in that order.
    for (int l = 0; l < m->nlayers; l++) {
        layer *L = &m->layers[l];
        real *p = m->theta + L->woff;
        if (L->kind == L_NORM) {  // gain and shift
            for (int i = 0; draw && i < L->c; i++) p[i] = (real)cfg->init_scale, p[L->c + i] = 0;
            continue;
        }
        if (L->kind != L_DENSE && L->kind != L_CONV && L->kind != L_ATTN &&
            L->kind != L_PATCH && !(L->kind == L_ADD && L->has_params))
            continue;
        double fin = (double)fan_in(L);
        L->wmul = (real)(!g.ntk ? 1.0 : mup && L == head ? 1.0 / fin : 1.0 / sqrt(fin));
        if (!draw) continue;
        if (L->kind == L_ATTN) {  // in_proj weight and bias, out_proj weight and bias
            size_t d = (size_t)L->attn.d;
            draw_weights(&g, p, 3 * d * d, fin);
            draw_biases(&g, p + 3 * d * d, 3 * d, fin);
            draw_weights(&g, p + 3 * d * d + 3 * d, d * d, fin);
            draw_biases(&g, p + 4 * d * d + 3 * d, d, fin);
        } else if (L->kind == L_PATCH) {  // position embedding, weight, bias
            size_t td = (size_t)L->dout, d = (size_t)L->patch.d;
            draw_biases(&g, p, td, fin);
            draw_weights(&g, p + td, d * (size_t)fin, fin);
            draw_biases(&g, p + td + d * (size_t)fin, d, fin);
        } else {  // weight, then bias
            size_t nb = L->kind == L_CONV ? (size_t)L->conv.co : (size_t)L->out;
            draw_weights(&g, p, L->boff - L->woff, fin);
            draw_biases(&g, m->theta + L->boff, nb, fin);
        }
    }
    return 0;
}

int ns_model_plan(const ns_model_config *cfg, ns_model **out) {
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
    if ((rc = ns_param_check(m->cfg.param))) goto fail;
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
    *out = m;
    return 0;
fail:
    ns_model_free(m);
    return rc;
}

int ns_model_realize(ns_model *m, int draw) {
    m->theta = draw ? ns_malloc(sizeof *m->theta * m->nparams) : ns_calloc(m->nparams, sizeof *m->theta);
    m->gout = ns_calloc((size_t)m->nlayers, sizeof *m->gout);
    m->bn_stats = m->nbn_stats ? ns_calloc(m->nbn_stats, sizeof *m->bn_stats) : NULL;
    if (!m->theta || !m->gout || (m->nbn_stats && !m->bn_stats)) return NS_ENOMEM;
    draw_theta0(m, draw);
    m->cache.budget = hvp_cache_default;
    return 0;
}

int ns_param_check(const char *param) {
    if (param && (!strcmp(param, "standard") || !strcmp(param, "ntk") || !strcmp(param, "mup"))) return 0;
    return ns_fail(NS_EINVAL, "unknown parameterization '%s': expected standard, ntk or mup",
                   param ? param : "");
}

int ns_model_create(const ns_model_config *cfg, ns_model **out) {
    int rc = ns_model_plan(cfg, out);
    if (rc || (rc = ns_model_realize(*out, 1)) == 0) return rc;
    ns_model_free(*out);
    *out = NULL;
    return rc;
}

static void free_helpers(ns_model *m);  // with the passes, below

void ns_model_free(ns_model *m) {
    if (!m) return;
    free_helpers(m);
    ns_model_hvp_cache_clear(m);
    free(m->gout);
    free(m->bn_stats);
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

// Values a layer keeps per example besides its output: the forward pass's saved values
// (batch norm's per-channel ones counted per example, an overestimate) and an addition's
// gradient w.r.t. its shortcut. Tangents double both.
static size_t saved_per_example(const ns_model *m, const layer *L) {
    switch (L->kind) {
    case L_NORM: return (size_t)L->dout + (size_t)(L->norm == NS_NORM_BATCH ? L->c : L->rows);
    case L_ATTN: return ns_attention_saved(&L->attn);
    case L_ADD: return (size_t)m->layers[L->from].dout;
    default: return 0;
    }
}

// Scratch values of a pass over nb examples (shared by the layers in turn).
static size_t scratch_size(const ns_model *m, long nb) {
    size_t most = 0, v;
    for (int l = 0; l < m->nlayers; l++) {
        const layer *L = &m->layers[l];
        v = L->kind == L_ATTN ? ns_attention_scratch(&L->attn, nb)
            : L->kind == L_PATCH ? ns_patch_scratch(&L->patch, nb) : 0;
        if (v > most) most = v;
    }
    return most;
}

// Batch norm couples the examples of a pass: its models pass over the batch in one chunk.
static int batch_statistics(const ns_model *m) { return m->nbn_stats > 0; }

// A model with a convolution passes over the batch in small chunks (CONV_CHUNK), and its
// threads take whole groups of them (run, below).
static int conv_net(const ns_model *m) {
    for (int l = 0; l < m->nlayers; l++)
        if (m->layers[l].kind == L_CONV) return 1;
    return 0;
}

// Values of workspace per example (activations, their tangents, kept values, gradient
// buffers, patches).
static size_t per_example(const ns_model *m, int with_r) {
    size_t v = 0;
    for (int l = 0; l < m->nlayers; l++)
        v += (size_t)m->layers[l].dout + saved_per_example(m, &m->layers[l]);
    v *= with_r ? 2 : 1;
    v += (size_t)m->maxd * (with_r ? 4 : 2);
    for (int l = 0; l < m->nlayers; l++)  // patches of the input, and of its tangent
        if (m->layers[l].kind == L_CONV)
            v += ns_conv3x3_patch_size(&m->layers[l].conv, l > 0) * (with_r && l ? 2 : 1);
    return v;
}

// Examples per chunk for a batch of n.
static long chunk_size(const ns_model *m, long n, int with_r) {
    if (batch_statistics(m) && m->bn_mode != BN_FIXED) return n;
    size_t bytes = per_example(m, with_r) * sizeof(real) + (size_t)m->maxd;
    long most = (long)(WORKSPACE_BUDGET / bytes);
    if (conv_net(m) && most > CONV_CHUNK) most = CONV_CHUNK;
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
    size_t scratch = scratch_size(m, nb);
    size_t total = per_example(m, with_r) * (size_t)nb + taps + scratch;
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
        size_t keep = saved_per_example(m, L) * (size_t)nb;
        real **into = L->kind == L_ADD ? &L->gs : &L->save, **rinto = L->kind == L_ADD ? &L->rgs : &L->rsave;
        *into = keep ? p : NULL, p += keep;
        *rinto = keep && with_r ? p : NULL, p += with_r ? keep : 0;
    }
    for (int i = 0; i < 2; i++) {
        m->g[i] = p, p += (size_t)m->maxd * nb;
        m->rg[i] = with_r ? p : NULL, p += with_r ? (size_t)m->maxd * nb : 0;
    }
    for (int l = 0; l < m->nlayers; l++) {
        layer *L = &m->layers[l];
        if (L->kind != L_CONV) continue;
        size_t sz = ns_conv3x3_patch_size(&L->conv, l > 0) * (size_t)nb;
        L->cols = p, p += sz;
        L->rcols = with_r && l ? p : NULL, p += with_r && l ? sz : 0;
    }
    m->taps = taps ? p : NULL;
    m->scratch = scratch ? p + taps : NULL;
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
    for (int l = top; l > 0; l--) {
        layer_kind k = m->layers[l].kind;
        m->gout[l - 1] = k == L_ACT || k == L_ADD ? m->gout[l]  // in place
                         : m->gout[l] == m->g[0]  ? m->g[1]
                                                  : m->g[0];
    }
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

// Layer l is a pool right after a ReLU whose output nothing else reads: the R-forward pass,
// the backward pass and the tangent of a replayed one (rbackward from the cache) take both
// layers at once (ns_pool_relu_rforward, ns_pool_relu_backward), which saves a pass over the
// ReLU's activations; the ReLU's own tangent (its ry) is then not formed. ReLU's second
// derivative is 0, so its tangent is the same map: R{gz} = [z > 0] R{ga}.
static int pool_after_relu(const ns_model *m, int l) {
    const layer *L = &m->layers[l], *A = l > 1 ? &m->layers[l - 1] : NULL;
    return L->kind == L_POOL && A && A->kind == L_ACT && A->act == NS_ACT_RELU && A->skip_by < 0;
}

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
            if (primal)
                ns_dense_forward(L->y, in, th + L->woff, th + L->boff, L->wmul, nb * L->rows,
                                 L->in, L->out);
            if (v)
                ns_dense_rforward(L->ry, in, rin, th + L->woff, v + L->woff, v + L->boff, L->wmul,
                                  nb * L->rows, L->in, L->out);
            break;
        case L_CONV:
            ns_conv3x3_patches(L->cols, in, nb, &L->conv);  // also for the tangent alone
            if (primal)
                ns_conv3x3_forward(L->y, in, L->cols, th + L->woff, th + L->boff, L->wmul, nb,
                                   &L->conv, m->taps);
            if (v && rin) ns_conv3x3_patches(L->rcols, rin, nb, &L->conv);
            if (v)
                ns_conv3x3_rforward(L->ry, in, rin, L->cols, L->rcols, th + L->woff, v + L->woff,
                                    v + L->boff, L->wmul, nb, &L->conv, m->taps);
            break;
        case L_ACT:
            if (primal) ns_act_forward(L->act, L->y, in, len);
            if (v && !(l + 1 < m->nlayers && pool_after_relu(m, l + 1)))  // else in the pool's
                ns_act_rforward(L->act, L->ry, rin, in, L->y, len);
            break;
        case L_POOL:
            if (primal) ns_pool_forward(L->pool, L->y, L->arg, in, nb, L->h, L->w, L->c);
            if (v && pool_after_relu(m, l))  // the ReLU's tangent too, from its input's
                ns_pool_relu_rforward(L->pool, L->ry, m->layers[l - 2].ry, m->layers[l - 2].y,
                                      L->arg, nb, L->h, L->w, L->c);
            else if (v)
                ns_pool_rforward(L->pool, L->ry, rin, L->arg, nb, L->h, L->w, L->c);
            break;
        case L_FLATTEN:
            if (primal) ns_flatten_forward(L->y, in, nb, L->h, L->w, L->c);
            if (v) ns_flatten_rforward(L->ry, rin, nb, L->h, L->w, L->c);
            break;
        case L_ADD: {
            const layer *S = &m->layers[L->from];
            const real *p = L->has_params ? th + L->woff : NULL;
            if (primal)
                ns_residual_forward(L->y, in, S->y, p, L->wmul, nb * L->rows, L->in, L->out);
            if (v)
                ns_residual_rforward(L->ry, rin, S->y, S->ry, p, v + L->woff, L->wmul,
                                     nb * L->rows, L->in, L->out);
            break;
        }
        case L_NORM: {  // primal always: save is per chunk, not cached (top of this file)
            long rows = nb * L->rows;
            const real *gamma = th + L->woff, *beta = gamma + L->c;
            double *stats = L->norm == NS_NORM_BATCH ? m->bn_stats + L->stats_off : NULL;
            if (stats && m->bn_mode == BN_FIXED) {  // evaluation mode: a loss, no tangents
                ns_norm_forward_fixed(L->y, in, stats, gamma, beta, rows, L->c);
                break;
            }
            real *r = L->save + (size_t)rows * L->c, *a = v ? L->rsave + (size_t)rows * L->c : NULL;
            ns_norm_forward(L->norm, L->y, L->save, r, m->bn_mode == BN_TAKE ? stats : NULL, in,
                            gamma, beta, rows, L->c);
            if (v)
                ns_norm_rforward(L->norm, L->ry, L->rsave, a, rin, L->save, r, th + L->woff,
                                 v + L->woff, v + L->woff + L->c, rows, L->c);
            break;
        }
        case L_ATTN:  // primal always: save is per chunk, not cached (top of this file)
            ns_attention_forward(L->y, L->save, in, th + L->woff, L->wmul, nb, &L->attn);
            if (v)
                ns_attention_rforward(L->ry, L->rsave, in, rin, L->save, th + L->woff, v + L->woff,
                                      L->wmul, nb, &L->attn);
            break;
        case L_PATCH:
            if (primal) ns_patch_forward(L->y, in, th + L->woff, L->wmul, nb, &L->patch, m->scratch);
            if (v)
                ns_patch_rforward(L->ry, in, rin, th + L->woff, v + L->woff, L->wmul, nb,
                                  &L->patch, m->scratch);
            break;
        case L_MEAN:
            if (primal) ns_meanpool_forward(L->y, in, nb, (int)L->rows, L->c);
            if (v) ns_meanpool_rforward(L->ry, rin, nb, (int)L->rows, L->c);
            break;
        }
    }
}

// The gradient (and tangent) w.r.t. layer l's output also gets what the residual addition
// that reads it sent back through its shortcut. g or rg NULL: skipped.
static void add_shortcut_gradient(const ns_model *m, int l, long nb, real *g, real *rg) {
    int by = m->layers[l].skip_by;
    if (by < 0) return;
    size_t len = (size_t)m->layers[l].dout * (size_t)nb;
    const real *gs = m->layers[by].gs, *rgs = m->layers[by].rgs;
    if (g)
        for (size_t i = 0; i < len; i++) g[i] += gs[i];
    if (rg)
        for (size_t i = 0; i < len; i++) rg[i] += rgs[i];
}

// Backward from g[0] = dL/df: grad += dL/dtheta for this chunk.
static void backward(ns_model *m, const real *x, long nb, real *grad) {
    const real *th = m->theta;
    real *cur = m->g[0], *other = m->g[1], *t;
    for (int l = m->nlayers - 1; l >= 0; l--) {
        layer *L = &m->layers[l];
        const real *in = l ? m->layers[l - 1].y : x;
        real *gx = l ? other : NULL;  // the data needs no gradient
        add_shortcut_gradient(m, l, nb, cur, NULL);
        switch (L->kind) {
        case L_DENSE:
            ns_dense_backward(gx, grad + L->woff, grad + L->boff, cur, in, th + L->woff, L->wmul,
                              nb * L->rows, L->in, L->out);
            break;
        case L_CONV:
            ns_conv3x3_backward(gx, grad + L->woff, grad + L->boff, cur, in, L->cols, th + L->woff,
                                L->wmul, nb, &L->conv, m->taps);
            break;
        case L_ACT:  // in place
            ns_act_backward(L->act, cur, cur, in, L->y, (size_t)L->dout * (size_t)nb);
            continue;
        case L_POOL:
            if (pool_after_relu(m, l)) {  // the ReLU's too: gx is the gradient at its input
                ns_pool_relu_backward(L->pool, gx, cur, L->arg, L->y, m->layers[l - 2].y, nb,
                                      L->h, L->w, L->c);
                l--;
                break;
            }
            ns_pool_backward(L->pool, gx, cur, L->arg, nb, L->h, L->w, L->c);
            break;
        case L_FLATTEN:
            ns_flatten_backward(gx, cur, nb, L->h, L->w, L->c);
            break;
        case L_ADD:  // gx = gy: in place
            ns_residual_backward(cur, L->gs, L->has_params ? grad + L->woff : NULL, cur,
                                 m->layers[L->from].y, L->has_params ? th + L->woff : NULL,
                                 L->wmul, nb * L->rows, L->in, L->out);
            continue;
        case L_NORM: {
            long rows = nb * L->rows;
            ns_norm_backward(L->norm, gx, grad + L->woff, grad + L->woff + L->c, cur, L->save,
                             L->save + (size_t)rows * L->c, th + L->woff, rows, L->c);
            break;
        }
        case L_ATTN:
            ns_attention_backward(gx, grad + L->woff, cur, in, L->save, th + L->woff, L->wmul, nb,
                                  &L->attn, m->scratch);
            break;
        case L_PATCH:
            ns_patch_backward(gx, grad + L->woff, cur, in, th + L->woff, L->wmul, nb, &L->patch,
                              m->scratch);
            break;
        case L_MEAN:
            ns_meanpool_backward(gx, cur, nb, (int)L->rows, L->c);
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
        real *cur = m->gout[l];
        real *gx = l && !g_known ? m->gout[l - 1] : NULL, *rgx = l ? rother : NULL;
        add_shortcut_gradient(m, l, nb, g_known ? NULL : cur, rcur);  // cached: already added
        switch (L->kind) {
        case L_DENSE:
            ns_dense_rbackward(gx, rgx, hv + L->woff, hv + L->boff, cur, rcur, in, rin,
                               th + L->woff, v + L->woff, L->wmul, nb * L->rows, L->in, L->out);
            break;
        case L_CONV:
            ns_conv3x3_rbackward(gx, rgx, hv + L->woff, hv + L->boff, cur, rcur, in, rin, L->cols,
                                 L->rcols, th + L->woff, v + L->woff, L->wmul, nb, &L->conv,
                                 m->taps);
            break;
        case L_ACT:  // the tangent in place
            ns_act_rbackward(L->act, gx, rcur, cur, rcur, in, rin, L->y,
                             (size_t)L->dout * (size_t)nb);
            continue;
        case L_POOL:
            if (g_known && pool_after_relu(m, l)) {  // only the tangent: through the ReLU too
                ns_pool_relu_backward(L->pool, rgx, rcur, L->arg, L->y, m->layers[l - 2].y, nb,
                                      L->h, L->w, L->c);
                l--;
                break;
            }
            ns_pool_rbackward(L->pool, gx, rgx, cur, rcur, L->arg, nb, L->h, L->w, L->c);
            break;
        case L_FLATTEN:
            ns_flatten_rbackward(gx, rgx, cur, rcur, nb, L->h, L->w, L->c);
            break;
        case L_ADD: {  // gx = gy (in place in the workspace), R{gx} = R{gy} in place
            const layer *S = &m->layers[L->from];
            ns_residual_rbackward(gx, rcur, L->gs, L->rgs, L->has_params ? hv + L->woff : NULL,
                                  cur, rcur, S->y, S->ry, L->has_params ? th + L->woff : NULL,
                                  v + L->woff, L->wmul, nb * L->rows, L->in, L->out);
            continue;
        }
        case L_NORM: {
            long rows = nb * L->rows;
            size_t o = (size_t)rows * L->c;
            ns_norm_rbackward(L->norm, gx, rgx, hv + L->woff, hv + L->woff + L->c, cur, rcur,
                              L->save, L->save + o, L->rsave, L->rsave + o, th + L->woff,
                              v + L->woff, rows, L->c);
            break;
        }
        case L_ATTN:
            ns_attention_rbackward(gx, rgx, hv + L->woff, cur, rcur, in, rin, L->save, L->rsave,
                                   th + L->woff, v + L->woff, L->wmul, nb, &L->attn, m->scratch);
            break;
        case L_PATCH:
            ns_patch_rbackward(gx, rgx, hv + L->woff, cur, rcur, in, rin, th + L->woff,
                               v + L->woff, L->wmul, nb, &L->patch, m->scratch);
            break;
        case L_MEAN:
            ns_meanpool_rbackward(gx, rgx, cur, rcur, nb, (int)L->rows, L->c);
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

// ---- a pass over the batch: chunks, in groups, over threads ---------------------------------
//
// A pass sums over the chunks of the batch. Chunk c belongs to group c / GROUP_CHUNKS; each
// group sums its chunks from zero, and the groups are added in order: group 0 into the output
// itself, every later one into a slot that is added to the output (and its loss and count to
// the pass's) once all groups before it have been. Those sums are the same whichever thread
// computes a group and whenever, so the bits depend on the group size alone. A convolutional
// net's threads take whole groups, each with a model of its own (a helper: the same layers
// and theta, a workspace of its own), from a shared counter; the layers' own splits
// (ns_parallel) then run on one thread each. Other models, whose chunks are large, keep one
// thread for the chunks and split each layer's work instead. There are SLOTS_PER_THREAD
// slots per thread (fewer if they would not fit in WORKSPACE_BUDGET), used in turn: a group
// waits only while the group that used its slot before is not yet added. OpenBLAS's setting
// is 1 while the threads run groups (ns_parallel_blas_one), so that each group's products run
// on its own thread, the same way at any thread count; a thread whose pass finds the pool
// busy runs all groups itself, in order, with OpenBLAS's setting as it is.
#define SLOTS_PER_THREAD 2

typedef struct {
    ns_model *m;
    const ns_batch *b;
    int pass, with_r, replay;
    const real *v;
    real *out;
    long chunk, nchunks, ngroups, cached;
    ns_model *models[NS_MAX_PARTS];  // per part
    int nslots;
    atomic_long claimed;    // groups claimed
    atomic_int failed;      // a group has failed
    pthread_mutex_t lock;   // guards the rest, and the adding into out
    pthread_cond_t added;   // another group was added
    long next_add;          // the first group not yet added
    int first_done;         // group 0 is complete
    unsigned char *done;    // per slot: its group is complete
    double *sums;           // per slot: the group's loss sum (times 1/n)
    long *counts;           // per slot: the group's correct predictions
    double sum;
    long correct;
    int rc;                 // the error of the first failing group, and its message
    long rc_group;
    char msg[1024];
} pass_job;

// The chunks of group g, on model w: gradients (or H v) into grad, loss into *sum, *correct.
static int run_group(const pass_job *j, ns_model *w, long g, real *grad, double *sum,
                     long *correct) {
    const ns_batch *b = j->b;
    long d = (long)w->cfg.c * w->cfg.h * w->cfg.w, k = w->cfg.k;
    const layer *head = &w->layers[w->nlayers - 1];
    long c1 = (g + 1) * GROUP_CHUNKS < j->nchunks ? (g + 1) * GROUP_CHUNKS : j->nchunks;
    for (long c = g * GROUP_CHUNKS; c < c1; c++) {
        long e0 = c * j->chunk, nb = b->n - e0 < j->chunk ? b->n - e0 : j->chunk;
        const real *x = b->x + e0 * d;
        int known = j->replay && c < j->cached;
        place_chunk(w, c < j->cached ? c : -1);
        forward(w, x, nb, j->with_r ? j->v : NULL, !known);
        real *gy = j->pass == PASS_LOSS || known ? NULL : w->gout[w->nlayers - 1];
        int rc = ns_loss_eval(b->loss, gy, j->with_r ? w->rg[0] : NULL, head->y, head->ry,
                              b->y ? b->y + e0 : NULL, b->t ? b->t + e0 * k : NULL, nb, (int)k,
                              1.0 / (double)b->n, sum, correct);
        if (rc) return rc;
        if (j->pass == PASS_GRAD) backward(w, x, nb, grad);
        if (j->pass == PASS_HVP) rbackward(w, x, nb, j->v, grad, known);
    }
    return 0;
}

// Adds the complete groups that are next in order (with j->lock held).
static void add_groups(pass_job *j) {
    size_t p = j->m->nparams;
    for (long g; (g = j->next_add) < j->ngroups; j->next_add = g + 1) {
        if (!g) {  // group 0 summed into the output itself
            if (!j->first_done) return;
            continue;
        }
        int s = (int)((g - 1) % j->nslots);
        if (!j->done[s]) return;
        j->sum += j->sums[s];
        j->correct += j->counts[s];
        if (j->out) {
            const real *from = j->m->slots + (size_t)s * p;
            for (size_t i = 0; i < p; i++) j->out[i] += from[i];
        }
        j->done[s] = 0;
    }
}

static void group_part(void *arg, int part, int parts) {
    (void)parts;
    pass_job *j = arg;
    ns_model *w = j->models[part];
    size_t p = j->m->nparams;
    for (long g; (g = atomic_fetch_add(&j->claimed, 1)) < j->ngroups;) {
        int s = g ? (int)((g - 1) % j->nslots) : 0;
        real *grad = j->out;
        double sum = 0, *sp = &j->sum;
        long correct = 0, *cp = &j->correct;
        if (g) {  // a slot, once the group that used it before is added
            pthread_mutex_lock(&j->lock);
            while (g - j->nslots >= 1 && j->next_add <= g - j->nslots)
                pthread_cond_wait(&j->added, &j->lock);
            pthread_mutex_unlock(&j->lock);
            grad = j->out ? j->m->slots + (size_t)s * p : NULL;
            if (grad) memset(grad, 0, sizeof *grad * p);
            sp = &sum, cp = &correct;
        }
        int rc = atomic_load(&j->failed) ? 0 : run_group(j, w, g, grad, sp, cp);  // after a
        // failure the pass's sums are not returned: later groups are only marked done
        if (rc) atomic_store(&j->failed, 1);
        pthread_mutex_lock(&j->lock);
        if (rc && (!j->rc || g < j->rc_group)) {
            j->rc = rc, j->rc_group = g;
            snprintf(j->msg, sizeof j->msg, "%s", ns_errmsg());
        }
        if (g) j->sums[s] = sum, j->counts[s] = correct, j->done[s] = 1;
        else j->first_done = 1;
        add_groups(j);
        pthread_cond_broadcast(&j->added);
        pthread_mutex_unlock(&j->lock);
    }
}

// The model of another thread: a shallow copy of m with layers and a workspace of its own.
static ns_model *new_helper(const ns_model *m) {
    ns_model *w = ns_malloc(sizeof *w);
    if (!w) return NULL;
    *w = *m;
    w->layers = ns_malloc(sizeof *w->layers * (size_t)m->nlayers);
    w->gout = ns_calloc((size_t)m->nlayers, sizeof *w->gout);
    w->ws = NULL, w->args = NULL, w->cap = 0, w->cap_r = 0;
    w->helpers = NULL, w->nhelpers = 0, w->slots = NULL, w->slots_cap = 0;
    if (!w->layers || !w->gout) {
        free(w->layers), free(w->gout), free(w);
        return NULL;
    }
    memcpy(w->layers, m->layers, sizeof *w->layers * (size_t)m->nlayers);
    return w;
}

static void free_helpers(ns_model *m) {
    for (int i = 0; i < m->nhelpers; i++) {
        ns_model *w = m->helpers[i];
        free(w->ws), free(w->args), free(w->layers), free(w->gout), free(w);
    }
    free(m->helpers);
    m->helpers = NULL;
    m->nhelpers = 0;
    free(m->slots);
    m->slots = NULL;
    m->slots_cap = 0;
}

// Readies `parts` - 1 helpers for chunks of `chunk` and the slots of `nslots` groups; the
// helpers take m's theta, primal cache and batch-norm mode as they are now.
static int ready_helpers(ns_model *m, int parts, long chunk, int with_r, int nslots, int out) {
    if (parts - 1 > m->nhelpers) {
        ns_model **h = ns_realloc(m->helpers, sizeof *h * (size_t)(parts - 1));
        if (!h) return ns_fail(NS_ENOMEM, "out of memory for the threads of a pass");
        m->helpers = h;
        for (; m->nhelpers < parts - 1; m->nhelpers++)
            if (!(h[m->nhelpers] = new_helper(m)))
                return ns_fail(NS_ENOMEM, "out of memory for the threads of a pass");
    }
    for (int i = 0; i < parts - 1; i++) {
        ns_model *w = m->helpers[i];
        w->theta = m->theta, w->cache = m->cache;
        w->bn_stats = m->bn_stats, w->bn_mode = m->bn_mode;
        int rc = ensure_workspace(w, chunk, with_r);
        if (rc) return rc;
    }
    size_t want = out ? sizeof *m->slots * m->nparams * (size_t)nslots : 0;
    if (grow((void **)&m->slots, &m->slots_cap, want))
        return ns_fail(NS_ENOMEM, "out of memory for the gradients of %d groups of a pass "
                       "(%zu MB)", nslots, want >> 20);
    return 0;
}

static int run(ns_model *m, const ns_batch *b, int pass, const real *v, real *out,
               double *loss, double *acc) {
    int rc = check_batch(m, b);
    if (rc) return rc;
    pass_job j = {.m = m, .b = b, .pass = pass, .with_r = pass == PASS_HVP, .v = v, .out = out};
    j.chunk = chunk_size(m, b->n, j.with_r);
    if ((rc = ensure_workspace(m, j.chunk, j.with_r))) return rc;
    j.cached = j.with_r ? cache_prepare(m, b, j.chunk, &j.replay) : 0;
    if (out) memset(out, 0, sizeof *out * m->nparams);
    j.nchunks = (b->n + j.chunk - 1) / j.chunk;
    j.ngroups = (j.nchunks + GROUP_CHUNKS - 1) / GROUP_CHUNKS;
    long parts = conv_net(m) ? ns_parallel_threads() : 1;
    if (parts > j.ngroups) parts = j.ngroups;
    long most = SLOTS_PER_THREAD * parts;
    j.nslots = (int)(j.ngroups - 1 < most ? j.ngroups - 1 : most);
    size_t fit = WORKSPACE_BUDGET / (sizeof(real) * m->nparams);  // slots within the budget
    if (out && j.nslots > 1 && (size_t)j.nslots > fit) j.nslots = fit > 1 ? (int)fit : 1;
    unsigned char done[SLOTS_PER_THREAD * NS_MAX_PARTS] = {0};
    double sums[SLOTS_PER_THREAD * NS_MAX_PARTS];
    long counts[SLOTS_PER_THREAD * NS_MAX_PARTS];
    j.done = done, j.sums = sums, j.counts = counts;
    if (j.nslots && (rc = ready_helpers(m, (int)parts, j.chunk, j.with_r, j.nslots, out != NULL))) {
        m->cache.valid = 0;
        return rc;
    }
    j.models[0] = m;
    for (int i = 1; i < parts; i++) j.models[i] = m->helpers[i - 1];
    pthread_mutex_init(&j.lock, NULL);
    pthread_cond_init(&j.added, NULL);
    if (parts > 1)  // OpenBLAS's products within a group on that group's thread alone
        ns_parallel_blas_one(group_part, &j, (int)parts);
    else
        group_part(&j, 0, 1);
    pthread_mutex_destroy(&j.lock);
    pthread_cond_destroy(&j.added);
    if (j.rc) {
        m->cache.valid = 0;
        return ns_fail(j.rc, "%s", j.msg);
    }
    if (j.cached) m->cache.valid = 1;
    if (loss) *loss = j.sum / (double)b->n;
    if (acc) *acc = (double)j.correct / (double)b->n;
    return 0;
}

int ns_model_loss(ns_model *m, const ns_batch *b, double *loss, double *acc) {
    return run(m, b, PASS_LOSS, NULL, NULL, loss, acc);
}

int ns_model_eval_loss(ns_model *m, const ns_batch *train, const ns_batch *b, double *loss,
                       double *acc) {
    if (!batch_statistics(m)) return run(m, b, PASS_LOSS, NULL, NULL, loss, acc);
    if (!train)
        return ns_fail(NS_EINVAL, "model '%s' has batch norm: evaluating it needs the training "
                       "batch, whose statistics it normalizes with", m->cfg.arch);
    m->bn_mode = BN_TAKE;
    int rc = run(m, train, PASS_LOSS, NULL, NULL, NULL, NULL);
    m->bn_mode = BN_FIXED;
    if (!rc) rc = run(m, b, PASS_LOSS, NULL, NULL, loss, acc);
    m->bn_mode = BN_BATCH;
    return rc;
}

int ns_model_grad(ns_model *m, const ns_batch *b, real *grad, double *loss, double *acc) {
    if (!grad) return ns_fail(NS_EINVAL, "ns_model_grad needs an output vector");
    return run(m, b, PASS_GRAD, NULL, grad, loss, acc);
}

int ns_model_hvp(ns_model *m, const ns_batch *b, const real *v, real *hv) {
    if (!v || !hv) return ns_fail(NS_EINVAL, "ns_model_hvp needs the vector v and an output");
    return run(m, b, PASS_HVP, v, hv, NULL, NULL);
}
