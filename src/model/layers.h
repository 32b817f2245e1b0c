// layers.h — the layers of normsharp's networks (internal to src/model/).
//
// Every layer file holds, side by side, the whole calculus of one layer y = f(x; W):
//   forward    y = f(x; W)
//   backward   vector-Jacobian product: gx = (df/dx)^T gy, and gW += (df/dW)^T gy
//   rforward   tangent of the forward pass along a parameter direction V (Pearlmutter's
//              R-operator, R{q} = d/dt q(theta + t v) at t = 0):  Ry = df/dx Rx + df/dW V
//   rbackward  tangent of the backward pass: from gy and R{gy} it gives gx, R{gx} and adds
//              R{gW} — the layer's block of the Hessian-vector product H v — into hW.
// Forward, then rforward, then the loss's g and R{g}, then rbackward from the head down
// give H v exactly in one sweep (forward-over-reverse; no finite differences).
//
// Conventions (llm.c): outputs first, then inputs, then weights, then sizes. Activations
// are row-major (n, features), batched over all n examples of the pass. Parameter gradients
// (gW, gb, hW, hb) accumulate (+=); activation gradients (gx, R{gx}) are overwritten.
// A NULL Rx means "this input does not depend on theta" (the data); a NULL output (gx,
// R{gx}, gW, ...) means "not needed" and is skipped (e.g. gx for the first layer).
#ifndef NORMSHARP_LAYERS_H
#define NORMSHARP_LAYERS_H
#include <cblas.h>
#include <limits.h>
#include <stdint.h>
#include "normsharp/common.h"
#include "normsharp/data.h"
#include "normsharp/model.h"

#ifdef NS_DOUBLE
#define NS_GEMM cblas_dgemm
#else
#define NS_GEMM cblas_sgemm
#endif

// A vector of values (GCC's vector extensions; AVX2 registers where the CPU has them), a mask
// of the same width, and values per vector.
typedef real vreal __attribute__((vector_size(32)));
#ifdef NS_DOUBLE
typedef int64_t vmask __attribute__((vector_size(32)));
#else
typedef int32_t vmask __attribute__((vector_size(32)));
#endif
#define VLEN ((int)(sizeof(vreal) / sizeof(real)))
// Values per 64-byte cache line: the unit of the threads' ranges and of the aligned pieces
// of a workspace, so that two threads never write to one line.
#define NS_LINE ((int)(64 / sizeof(real)))
// A function of vector loops is also compiled for AVX2 (one register per vector), and the
// better version is picked when the program loads: without FMA both give the same bits.
#if defined(__x86_64__) && defined(__GNUC__)
#define NS_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NS_VECTOR_CLONES
#endif

// ReLU's derivative times v, [z > 0] * v: a product with 1 or 0, not a mask, so that signed
// zeros and NaN come out the same in every pass that applies it (act.c, pool.c); for a value,
// and (a macro: a vector passed by value would change the ABI between a loop's clones) for
// vectors.
static inline real ns_relu_times(real z, real v) { return (z > 0 ? 1 : 0) * v; }
#define NS_RELU_TIMES_V(z, v) \
    ((vreal)((vmask)((z) > (vreal){0}) & (vmask)((vreal){0} + 1)) * (v))

// ---- parallel.c: the threads of one layer's sums -------------------------------------------
// ns_parallel(fn, ctx, most) calls fn(ctx, part, parts) for part = 0 .. parts-1 at once, part 0
// on the calling thread and the others on a pool of worker threads, and returns when all have
// returned. parts = min(most, ns_parallel_threads()), or 1 while another thread's job runs.
// Contract: every output is written by one part, and summed in an order that does not depend on
// parts (ns_part_range splits items into contiguous ranges), so results are the same bits for
// any number of threads. A call from within fn may run alone or take the pool; it cannot
// deadlock, and by the contract it gives the same bits either way.
#define NS_MAX_PARTS 16
typedef void ns_part_fn(void *ctx, int part, int parts);
void ns_parallel(ns_part_fn *fn, void *ctx, long most);
// The same with `parts` parts (at most NS_MAX_PARTS), and OpenBLAS's setting 1 while they run
// and set back before it returns: for parts that each call OpenBLAS (model.c's groups). Run
// alone (parts = 1, or the pool busy with another thread's job), it leaves OpenBLAS's setting
// as it is.
void ns_parallel_blas_one(ns_part_fn *fn, void *ctx, int parts);
// Threads a job may use: OpenBLAS's thread count (OPENBLAS_NUM_THREADS, --threads), at most
// NS_MAX_PARTS.
int ns_parallel_threads(void);
// Worker threads this process has started (0 before any job split; 0 again in a forked child).
int ns_parallel_workers(void);
// [*lo, *hi): part `part` of `parts` of the items 0 .. n-1, in contiguous ranges.
static inline void ns_part_range(long n, int part, int parts, long *lo, long *hi) {
    *lo = n * part / parts, *hi = n * (part + 1) / parts;
}
// fn(ctx, lo, hi) over contiguous ranges [lo, hi) that cover the items 0 .. n-1 once, at once
// on up to ns_parallel_threads() threads, each range at least `grain` items (so one range, on
// the calling thread, if n < 2 grain). Which thread takes a range varies from call to call;
// the contract of ns_parallel (each output within one range, summed in an order that does not
// depend on the ranges) keeps the bits the same.
typedef void ns_range_fn(void *ctx, long lo, long hi);
void ns_parallel_for(ns_range_fn *fn, void *ctx, long n, long grain);
// p + i, or NULL for a NULL p (a buffer a pass does not read or write), for a range's
// pointers, of any type. p is evaluated twice.
#define NS_OFFSET(p, i) ((p) ? (p) + (i) : NULL)
// Values per range of an elementwise pass: enough that a range outweighs waking a thread.
#define NS_ELEMENTWISE_GRAIN (1L << 14)
// The grain (ns_parallel_for) of an elementwise pass over items of `per` values each: items
// enough for NS_ELEMENTWISE_GRAIN values; for per <= 0 (nothing to do) one range.
static inline long ns_elementwise_grain(long per) {
    return per > 0 ? (NS_ELEMENTWISE_GRAIN + per - 1) / per : LONG_MAX;
}

// gb[j] += sum_i g[i][j] for g (n, width), summed in double.
void ns_colsum_add(real *gb, const real *g, long n, int width);

// ---- dense.c: y = wmul * x W^T + b ---------------------------------------------------
// x is (n,in), W is (out,in), b is (out), y is (n,out). wmul is the parameterization's
// forward multiplier (1 for standard, 1/sqrt(fan_in) for ntk).
void ns_dense_forward(real *y, const real *x, const real *w, const real *b, real wmul,
                      long n, int in, int out);
// gW += wmul gy^T x, gb += colsum gy, gx = wmul gy W (if gx != NULL).
void ns_dense_backward(real *gx, real *gw, real *gb, const real *gy, const real *x,
                       const real *w, real wmul, long n, int in, int out);
// Ry = wmul (Rx W^T + x V^T) + vb.
void ns_dense_rforward(real *ry, const real *x, const real *rx, const real *w,
                       const real *vw, const real *vb, real wmul, long n, int in, int out);
// hW += wmul (Rgy^T x + gy^T Rx), hb += colsum Rgy,
// gx = wmul gy W, Rgx = wmul (Rgy W + gy V) (if gx, rgx != NULL).
void ns_dense_rbackward(real *gx, real *rgx, real *hw, real *hb, const real *gy,
                        const real *rgy, const real *x, const real *rx, const real *w,
                        const real *vw, real wmul, long n, int in, int out);

// ---- act.c: a = sigma(z), elementwise over len = n * width values ---------------------
typedef enum {
    NS_ACT_LINEAR, NS_ACT_RELU, NS_ACT_TANH, NS_ACT_ELU, NS_ACT_SOFTPLUS, NS_ACT_GELU
} ns_act_kind;
#define NS_ACT_NAMES "relu, tanh, elu, softplus, gelu or linear"
int ns_act_parse(const char *s, ns_act_kind *out);  // 0, or -1 if unknown (no message)
const char *ns_act_name(ns_act_kind k);
void ns_act_forward(ns_act_kind k, real *a, const real *z, size_t len);
// gz = sigma'(z) ga. In place allowed (gz == ga). a = sigma(z) from the forward pass.
void ns_act_backward(ns_act_kind k, real *gz, const real *ga, const real *z, const real *a,
                     size_t len);
// Ra = sigma'(z) Rz. In place allowed.
void ns_act_rforward(ns_act_kind k, real *ra, const real *rz, const real *z, const real *a,
                     size_t len);
// gz = sigma' ga, Rgz = sigma' Rga + sigma'' Rz ga. In place allowed; gz may be NULL.
void ns_act_rbackward(ns_act_kind k, real *gz, real *rgz, const real *ga, const real *rga,
                      const real *z, const real *rz, const real *a, size_t len);

// ---- conv3x3.c: 3x3 convolution, stride 1, zero padding 1 ---------------------------------
// Input (n, c, h, w) if nchw (the dataset's layout) else (n, h, w, c); output always
// (n, h, w, co) ("channels last", so that the GEMM writes it directly). W is
// (co, c, 3, 3) as PyTorch's Conv2d. The passes read x (and Rx) and the patches that
// ns_conv3x3_patches formed of them in cols (and rcols): a zero-padded copy of x for layers on
// the implicit GEMM, im2col(x) for other layers with many input channels, nothing for the
// few-channel layers that compute directly from x. The buffers hold
// ns_conv3x3_patch_size(s, with_gx) values per example (enough for either path), with_gx if
// gx or R{gx} will be asked for; the backward passes then overwrite them (cols with gy's
// patches or copy if gx or R{gx} is asked for, rcols with R{gy}'s if R{gx} is). Rx NULL (the
// data): rcols is not read and R{gx} is not formed. `ws` holds ns_conv3x3_workspace values.
typedef struct {
    int c, h, w, co;
    int nchw;
} ns_conv_shape;
// The implicit GEMM (conv3x3.c) is used where it applies unless this is set: tests and
// bench/bench_model.c compare it with the patches and sgemm. Set it only between passes.
extern int ns_conv3x3_no_implicit;
// 1 if the passes of s take the implicit GEMM, or its kernel for a grey layer's forward sums
// (on this CPU, with ns_conv3x3_no_implicit unset).
int ns_conv3x3_implicit(const ns_conv_shape *s);
size_t ns_conv3x3_patch_size(const ns_conv_shape *s, int with_gx);
size_t ns_conv3x3_workspace(const ns_conv_shape *s);
void ns_conv3x3_patches(real *cols, const real *x, long n, const ns_conv_shape *s);
void ns_conv3x3_forward(real *y, const real *x, const real *cols, const real *w, const real *b,
                        real wmul, long n, const ns_conv_shape *s, real *ws);
void ns_conv3x3_backward(real *gx, real *gw, real *gb, const real *gy, const real *x, real *cols,
                         const real *w, real wmul, long n, const ns_conv_shape *s, real *ws);
void ns_conv3x3_rforward(real *ry, const real *x, const real *rx, const real *cols,
                         const real *rcols, const real *w, const real *vw, const real *vb,
                         real wmul, long n, const ns_conv_shape *s, real *ws);
void ns_conv3x3_rbackward(real *gx, real *rgx, real *hw, real *hb, const real *gy,
                          const real *rgy, const real *x, const real *rx, real *cols, real *rcols,
                          const real *w, const real *vw, real wmul, long n,
                          const ns_conv_shape *s, real *ws);

// ---- pool.c: 2x2 pooling, stride 2, channels last: x (n,h,w,c) -> y (n,h/2,w/2,c) -------
// As PyTorch (floor): an odd last row/column is dropped. Max pooling records in `arg` the
// window position (0..3, row-major, first maximum wins) that each output came from; the
// R- and backward passes route through it (the map is linear once the routing is fixed).
typedef enum { NS_POOL_AVG, NS_POOL_MAX } ns_pool_kind;
void ns_pool_forward(ns_pool_kind k, real *y, unsigned char *arg, const real *x, long n,
                     int h, int w, int c);
void ns_pool_backward(ns_pool_kind k, real *gx, const real *gy, const unsigned char *arg,
                      long n, int h, int w, int c);
void ns_pool_rforward(ns_pool_kind k, real *ry, const real *rx, const unsigned char *arg,
                      long n, int h, int w, int c);
void ns_pool_rbackward(ns_pool_kind k, real *gx, real *rgx, const real *gy, const real *rgy,
                       const unsigned char *arg, long n, int h, int w, int c);
// The backward pass of ReLU then pooling at once: gz (n,h,w,c), the gradient at the ReLU's
// input, from gy and, for max pooling, the pool's output y = maxpool(relu(z)) and routing
// arg (z unused), for average pooling z (y and arg unused).
void ns_pool_relu_backward(ns_pool_kind k, real *gz, const real *gy, const unsigned char *arg,
                           const real *y, const real *z, long n, int h, int w, int c);
// The R-forward pass of ReLU then pooling at once: ry (n,h/2,w/2,c) = P([z > 0] Rz), from the
// ReLU's input z and its tangent rz (n,h,w,c) and the pool's routing arg (max pooling).
void ns_pool_relu_rforward(ns_pool_kind k, real *ry, const real *rz, const real *z,
                           const unsigned char *arg, long n, int h, int w, int c);

// ---- flatten.c: channels-last (n,h,w,c) -> PyTorch's flatten order (n, c*h*w) ------------
void ns_flatten_forward(real *y, const real *x, long n, int h, int w, int c);
void ns_flatten_backward(real *gx, const real *gy, long n, int h, int w, int c);
void ns_flatten_rforward(real *ry, const real *rx, long n, int h, int w, int c);
void ns_flatten_rbackward(real *gx, real *rgx, const real *gy, const real *rgy, long n,
                          int h, int w, int c);

// ---- residual.c: y = x + s (identity shortcut) or y = x + wmul s P^T + pb (1x1 conv) -----
// x, y (m, co) the residual branch and the sum; s (m, c) the block's input; m rows
// (examples x pixels or tokens). p: NULL for the identity (c == co), else P (co, c) then pb
// (co) — PyTorch's Conv2d(c, co, 1) weight and bias. gx may equal gy (then it is not copied).
// gp (and hp) accumulate into the (P, pb) block; gs, R{gs}, gx, R{gx} are overwritten.
void ns_residual_forward(real *y, const real *x, const real *s, const real *p, real wmul,
                         long m, int c, int co);
void ns_residual_backward(real *gx, real *gs, real *gp, const real *gy, const real *s,
                          const real *p, real wmul, long m, int c, int co);
void ns_residual_rforward(real *ry, const real *rx, const real *s, const real *rs,
                          const real *p, const real *vp, real wmul, long m, int c, int co);
void ns_residual_rbackward(real *gx, real *rgx, real *gs, real *rgs, real *hp, const real *gy,
                           const real *rgy, const real *s, const real *rs, const real *p,
                           const real *vp, real wmul, long m, int c, int co);

// ---- norm.c: batch norm (per column over rows) or layer norm (per row over columns) ------
// x, y (m, c); gamma, beta (c). Saved by forward: xh (m, c), r (one per group); by
// rforward: R{xh} (m, c), a (one per group). ns_norm_groups gives the group count (c for
// batch norm, m for layer norm). ggamma/gbeta and hgamma/hbeta accumulate; gx, R{gx} are
// overwritten (NULL: skipped).
typedef enum { NS_NORM_BATCH, NS_NORM_LAYER } ns_norm_kind;
long ns_norm_groups(ns_norm_kind k, long m, int c);
// stats (NULL: not kept) receives each group's mean mu, then each group's r = 1/sqrt(var + eps),
// in double (2 * groups values).
void ns_norm_forward(ns_norm_kind k, real *y, real *xh, real *r, double *stats, const real *x,
                     const real *gamma, const real *beta, long m, int c);
// Batch norm in evaluation mode: y = gamma (x - mu) r + beta with the stats (mu[c], r[c]) of
// another batch, taken by ns_norm_forward. Nothing saved: it has no backward pass.
void ns_norm_forward_fixed(real *y, const real *x, const double *stats, const real *gamma,
                           const real *beta, long m, int c);
void ns_norm_backward(ns_norm_kind k, real *gx, real *ggamma, real *gbeta, const real *gy,
                      const real *xh, const real *r, const real *gamma, long m, int c);
void ns_norm_rforward(ns_norm_kind k, real *ry, real *rxh, real *a, const real *rx,
                      const real *xh, const real *r, const real *gamma, const real *vgamma,
                      const real *vbeta, long m, int c);
void ns_norm_rbackward(ns_norm_kind k, real *gx, real *rgx, real *hgamma, real *hbeta,
                       const real *gy, const real *rgy, const real *xh, const real *r,
                       const real *rxh, const real *a, const real *gamma, const real *vgamma,
                       long m, int c);

// ---- attention.c: multi-head self-attention on tokens x, y (n, t, d) ----------------------
// p (and v, gp, hp) is the block in_proj_weight (3d,d), in_proj_bias (3d), out_proj.weight
// (d,d), out_proj.bias (d). `save` holds ns_attention_saved(s) values per example (qkv,
// softmax probabilities, head outputs), written by forward; `rsave` as many, written by
// rforward. ws: ns_attention_scratch(s, n) values. gp/hp accumulate, gx/R{gx} overwritten.
typedef struct {
    int t, d, heads;
    real scale;          // of the dot products: 1/sqrt(d/heads), or 1/(d/heads) under muP
} ns_attn_shape;
size_t ns_attention_saved(const ns_attn_shape *s);
size_t ns_attention_scratch(const ns_attn_shape *s, long n);
void ns_attention_forward(real *y, real *save, const real *x, const real *p, real wmul, long n,
                          const ns_attn_shape *s);
void ns_attention_backward(real *gx, real *gp, const real *gy, const real *x, const real *save,
                           const real *p, real wmul, long n, const ns_attn_shape *s, real *ws);
void ns_attention_rforward(real *ry, real *rsave, const real *x, const real *rx,
                           const real *save, const real *p, const real *v, real wmul, long n,
                           const ns_attn_shape *s);
void ns_attention_rbackward(real *gx, real *rgx, real *hp, const real *gy, const real *rgy,
                            const real *x, const real *rx, const real *save, const real *rsave,
                            const real *p, const real *v, real wmul, long n,
                            const ns_attn_shape *s, real *ws);

// ---- patch.c: patch embedding + position embedding, x (n, c, h, w) -> y (n, t, d) --------
// t = (h/P)(w/P) patches, P dividing h and w. p (and v, gp, hp) is the block pos (t, d),
// W (d, c, P, P), b (d). ws: ns_patch_scratch(s, n) values. Rx may be NULL (the data).
typedef struct {
    int c, h, w, p, d;
} ns_patch_shape;
size_t ns_patch_scratch(const ns_patch_shape *s, long n);
void ns_patch_forward(real *y, const real *x, const real *p, real wmul, long n,
                      const ns_patch_shape *s, real *ws);
void ns_patch_backward(real *gx, real *gp, const real *gy, const real *x, const real *p,
                       real wmul, long n, const ns_patch_shape *s, real *ws);
void ns_patch_rforward(real *ry, const real *x, const real *rx, const real *p, const real *v,
                       real wmul, long n, const ns_patch_shape *s, real *ws);
void ns_patch_rbackward(real *gx, real *rgx, real *hp, const real *gy, const real *rgy,
                        const real *x, const real *rx, const real *p, const real *v, real wmul,
                        long n, const ns_patch_shape *s, real *ws);

// ---- meanpool.c: mean over the t rows of each example, x (n, t, c) -> y (n, c) ------------
void ns_meanpool_forward(real *y, const real *x, long n, int t, int c);
void ns_meanpool_backward(real *gx, const real *gy, long n, int t, int c);
void ns_meanpool_rforward(real *ry, const real *rx, long n, int t, int c);
// gx may be NULL (skipped).
void ns_meanpool_rbackward(real *gx, real *rgx, const real *gy, const real *rgy, long n, int t,
                           int c);

// ---- loss.c: docs/CONVENTIONS.md, losses, on outputs f (n,k) ------------------------------------
// MSE l_i = 0.5 ||f_i - t_i||^2; CE l_i = -log softmax(f_i)[y_i]. The loss is
// L = scale * sum_i l_i with scale = 1/n_total (a pass may cover part of the batch).
// Adds sum_i l_i to *loss_sum and the count of argmax(f_i) == label to *correct (the label
// is y_i, or argmax t_i when y is NULL). If g != NULL: g = scale dl/df. If rg != NULL:
// rg = scale (d2l/df2) Rf. Returns 0, or NS_EINVAL if the labels/targets it needs are
// missing or a label is out of range.
int ns_loss_eval(ns_loss_kind kind, real *g, real *rg, const real *f, const real *rf,
                 const int *y, const real *t, long n, int k, double scale, double *loss_sum,
                 long *correct);

// ---- arch.c: architecture strings (docs/CONVENTIONS.md, architectures; docs/ARCHITECTURES.md)
#define NS_MAX_HIDDEN 32        // hidden layers / conv blocks / ResNet stages
#define NS_MAX_WIDTH 65536      // hidden width of an fc layer
#define NS_MAX_CHANNELS 4096    // channels of a conv layer
#define NS_MAX_BLOCKS 16        // residual blocks per ResNet stage, transformer blocks of a ViT
typedef enum { NS_NET_FC, NS_NET_CNN, NS_NET_RESNET, NS_NET_VIT } ns_net_family;
typedef struct {
    ns_net_family family;
    ns_act_kind act;            // fc, cnn, resnet (a ViT's MLP is GELU)
    ns_pool_kind pool;          // cnn only; avgpool unless the string ends in -maxpool
    int nhidden;                // fc: hidden layers; cnn: conv blocks; resnet: stages
    int width[NS_MAX_HIDDEN];   // their widths / channels
    int blocks;                 // resnet: residual blocks per stage; vit: transformer blocks
    int bn;                     // resnet: batch norm after every convolution
    int patch, dim, heads;      // vit: patch size P, width D, attention heads
} ns_arch;
// Parse and validate; on failure return NS_EINVAL with a sentence naming the fault.
int ns_arch_parse(const char *s, ns_arch *out);

// ---- model.c: ns_model_create in two steps, for a caller that must check what a configuration
// costs before paying for it (the weights loader: a model.json can name a net of 2^31
// parameters; its .npy files are checked against the planned tensors first).
// The layers and tensors of cfg's model (names, shapes, offsets, ns_model_nparams) with no
// parameters allocated (ns_model_theta is NULL); the same checks and errors as
// ns_model_create. Free with ns_model_free.
int ns_model_plan(const ns_model_config *cfg, ns_model **out);
// Allocates a planned model's theta and buffers and sets each layer's weight multiplier (ntk,
// mup): theta_0 drawn as ns_model_create draws it when draw, else zeros (for a caller that
// fills every tensor). 0 or NS_ENOMEM (m is then still to be freed by the caller).
int ns_model_realize(ns_model *m, int draw);
#endif
