// normsharp/model.h — networks from architecture strings (docs/CONVENTIONS.md, architectures), with exact gradients
// and exact Hessian-vector products (Pearlmutter's R-operator, forward-over-reverse).
// All parameters live in one contiguous buffer theta, laid out tensor after tensor in
// PyTorch's state_dict order and layouts (fc1.weight (out,in), fc1.bias, conv1.weight
// (out,in,3,3), ...).
#ifndef NORMSHARP_MODEL_H
#define NORMSHARP_MODEL_H
#include "normsharp/common.h"
#include "normsharp/data.h"

typedef struct ns_model ns_model;

typedef struct {
    char name[32];      // "fc1.weight", "conv2.bias", ...
    int ndim;
    int shape[4];
    size_t offset;      // into theta
    size_t size;        // number of elements
} ns_tensor_info;

typedef struct {
    char arch[128];     // e.g. "fc-tanh-200-200", "cnn-relu-32-32-avgpool"
    char param[16];     // "standard", "ntk", "mup"
    double init_scale;
    uint64_t seed;
    int c, h, w;        // input shape
    int k;              // outputs = classes
} ns_model_config;

// Build the model and draw theta_0 (depends only on arch, param, init_scale, seed).
int ns_model_create(const ns_model_config *cfg, ns_model **out);
void ns_model_free(ns_model *m);
const ns_model_config *ns_model_cfg(const ns_model *m);
size_t ns_model_nparams(const ns_model *m);
real *ns_model_theta(ns_model *m);     // the flat parameter vector (read/write)
int ns_model_ntensors(const ns_model *m);
const ns_tensor_info *ns_model_tensor(const ns_model *m, int i);
// Validate an architecture string without building (for early option errors).
int ns_arch_check(const char *arch);
// Validate a parameterization name: "standard", "ntk" or "mup" (NULL or "" is not one).
// Returns 0, or NS_EINVAL with one sentence in ns_errmsg(). ns_model_create runs the same check.
int ns_param_check(const char *param);

// A batch: x (n x d), labels y (n), one-hot targets t (n x k; MSE). Loss as docs/CONVENTIONS.md, losses.
typedef struct {
    const real *x;
    const int *y;
    const real *t;
    long n;
    ns_loss_kind loss;
} ns_batch;

// Loss and accuracy at the current theta (either output pointer may be NULL).
int ns_model_loss(ns_model *m, const ns_batch *b, double *loss, double *acc);
// Loss and accuracy of batch b (a test set) in evaluation mode, PyTorch's eval(): every
// batch-norm layer normalizes b with the mean and biased variance (eps = 1e-5) that the
// training batch `train` gives it at the current theta (one forward pass over `train` takes
// them), not with b's own. The training batch itself so evaluated gives the training loss to
// the bit. Without batch norm this is ns_model_loss(m, b) (train is not read and may be NULL).
int ns_model_eval_loss(ns_model *m, const ns_batch *train, const ns_batch *b, double *loss,
                       double *acc);
// The passes sum over the batch in chunks of examples (4 for a convolutional net, else as
// many as fit in 512 MB of workspace), the chunks in groups of 4: each group from zero, then
// the groups in order. A convolutional net's threads (OpenBLAS's setting,
// openblas_set_num_threads) take whole groups, and while they do, OpenBLAS's setting is 1 (set
// back before the pass returns; another thread calling OpenBLAS meanwhile gets one thread):
// on a batch of more than one group its results are the same bits at any thread count. On
// one group, and for other models, normsharp's own splits give the same bits at any count,
// and OpenBLAS's threaded products (an MLP's, a large dense head's) may not. One model is one
// pass at a time: a model is not to be shared by threads that call it at once.
// grad := dL/dtheta (overwritten), plus loss and accuracy.
int ns_model_grad(ns_model *m, const ns_batch *b, real *grad, double *loss, double *acc);
// hv := H v, H the Hessian of the loss over the batch at theta. Exact (R-operator).
int ns_model_hvp(ns_model *m, const ns_batch *b, const real *v, real *hv);
// The primal cache of H v: successive products at the same theta and batch (a Lanczos run)
// reuse the forward pass and the gradient at every layer instead of recomputing them, for
// the chunks of examples that fit in `bytes` (its key, copies of theta and of the batch,
// counted in); the rest are recomputed. The results are the same bits with and without it.
// A change to theta or to the batch's contents is detected (by comparison) on the next
// product. Default 1024 MB (ns_hvp_cache_default); 0 turns it off. Clear frees its memory.
void ns_model_set_hvp_cache(ns_model *m, size_t bytes);
void ns_model_hvp_cache_clear(ns_model *m);
// Examples whose primal values the cache holds now (for tests and benchmarks).
long ns_model_hvp_cache_examples(const ns_model *m);
// The budget of models created from now on, in bytes (the command line's --hvp-cache-mb).
void ns_hvp_cache_default(size_t bytes);

// ---- weights directory: model.json + one NumPy .npy (format 1.0) per tensor ------------
// `extra_json` (may be NULL) is an already-formatted JSON object body appended to
// model.json under "data" (dataset conventions: dataset, n, classes, loss, ...).
// Write the configuration keys (arch, param, init_scale, seed, input_shape, classes) into
// an open JSON object; model.json and `normsharp init --json` share it.
void ns_model_config_json(ns_json *j, const ns_model_config *cfg);
// The tensors as a JSON array under `key`: {"name", "shape"} each, and with with_files != 0
// "file" (<name>.npy, as in model.json); model.json and `normsharp init --json` share it.
void ns_model_tensors_json(ns_json *j, const char *key, const ns_model *m, int with_files);
// NS_EINVAL with one sentence unless the model's input shape and outputs match the dataset
// (`dir` names the weights in the message).
int ns_model_fits(const ns_model *m, const ns_dataset *ds, const char *dir);
// theta_0 of a run on ds: loaded from the weights directory `weights` when it is not NULL
// (its model.json fixes the model and cfg is not used), else drawn from cfg's arch, param,
// init_scale and seed for ds's input shape and classes (cfg's c, h, w and k are ignored).
// Either way checked against ds (ns_model_fits). *out is the caller's (ns_model_free), NULL
// on error: the errors of ns_weights_load, ns_model_create and ns_model_fits.
int ns_model_theta0(const char *weights, const ns_model_config *cfg, const ns_dataset *ds, ns_model **out);
int ns_weights_save(const ns_model *m, const char *dir, const ns_data_opts *data);
// Load: reads model.json, checks that every tensor's .npy exists with the right header
// (before the model, whose theta_0 may be large, is built), builds the model, reads every
// tensor (all finite), checks shapes.
// If `data` is non-NULL it is filled with the saved dataset conventions.
int ns_weights_load(const char *dir, ns_model **out, ns_data_opts *data);
// .npy helpers (float32 '<f4' or float64 '<f8', C order)
int ns_npy_write(const char *path, const real *x, int ndim, const int *shape);
// Reads the array into x (count of shape values). NS_EFORMAT naming the file (and, for a
// NaN or infinite value, or a float64 beyond the build's float range, the first such
// element's index) unless it is a finite array of exactly that shape.
int ns_npy_read(const char *path, real *x, int ndim, const int *shape);
// The cheap part of ns_npy_read: the file exists, its header gives that shape and a
// supported dtype, and its size matches; the data are not read.
int ns_npy_check(const char *path, int ndim, const int *shape);
#endif
