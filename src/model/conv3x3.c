// conv3x3.c — 3x3 convolution, stride 1, zero padding 1 (PyTorch's Conv2d(c, co, 3,
// padding=1)):
//   y[p][o] = b[o] + wmul sum_{ci, q} W[o][ci][q] x[p + off_q][ci]
// over the 9 taps q = (ky, kx) of pixel p, off_q = (ky - 1, kx - 1), x = 0 outside the image.
// The sums over taps are formed in one of three ways:
// * as a dense layer on image patches (c > DIRECT_MAX_C):
//     cols = im2col(x)             rows (example, y, x), columns (ky, kx, ci): (n*h*w, 9c)
//     y    = wmul cols W'^T + b,   gW' += wmul gy^T cols,
//   where W' (co, 3,3, c) is W (co, c, 3,3) with its axes reordered, so that each tap of a
//   channels-last input is one contiguous copy of c values;
// * directly (c <= DIRECT_MAX_C: a first layer on grey or colour images), pixel by pixel with
//   a vector of outputs in registers. As GEMMs these would have K = 9c, and such thin GEMMs
//   run far below the sgemm rate (BENCHMARKS.md §5). No patches of x are formed. A grey
//   layer (c = 1) whose outputs fill whole blocks, on a CPU with AVX2 and FMA, computes these
//   sums with FMA kernels of the implicit GEMM's shape instead (grey_forward,
//   grey_weight_grad);
// * as an implicit GEMM (the CPU has AVX2 and FMA, the input is channels last, and c and co
//   are multiples of 2 vectors: 16 floats or 8 doubles): the same product as the patch path,
//   cols W'^T, by our own register-blocked kernel that reads each patch row straight from a
//   zero-padded copy of x, xpad (n, h+2, w+2, c), instead of from a patch matrix. The copy is
//   1/9 of the patch matrix, and no operand is packed again (OpenBLAS packs the patch matrix
//   it is given: the gather, the packing and the GEMM each read or write 9x the input). The
//   kernel keeps a tile of 6 pixels x 2 vectors of outputs in 12 registers and sums over
//   (tap, input channel) in that order with FMA; the weight gradient keeps 6 outputs x 2
//   vectors of input channels, sums over the pixels of a strip of image rows (as many as
//   stay in the L1 cache: strip_rows) and adds each such partial sum to the gradient,
//   example by example. The results differ from the patch path's in their last bits
//   (another order of the sums), and from a CPU without FMA's, which takes the patch path;
//   on one machine they are deterministic. BENCHMARKS.md §5 has the measurements.
// The input gradient is, both ways, the transposed convolution, itself a 3x3 convolution of
// gy (off_{8-q} = -off_q):
//   gx[p][ci] = wmul sum_{q, o} W[o][ci][q] gy[p - off_q][o] = wmul im2col(gy) Wf^T
// with Wf (c, 3,3, co) W flipped in (ky, kx) and transposed: one gather of gy and one GEMM
// that writes the small gx, rather than a GEMM that writes the 9x larger patch gradient and
// a scatter-add of it back onto the image (which this file did before, BENCHMARKS.md §5).
// The caller forms the patches (or padded copies) of x and Rx once (ns_conv3x3_patches) and
// keeps them from the forward pass to the backward pass, which then reuses their memory for
// those of gy and R{gy}: one gather per input and pass, one product over all the examples.
#include <string.h>
#include "layers.h"
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_IMPLICIT 1
#else
#define HAVE_IMPLICIT 0
#endif

int ns_conv3x3_no_implicit = 0;

// Input channels up to which a layer computes its sums directly.
#define DIRECT_MAX_C 3

// The direct loops are also compiled for AVX2 (NS_VECTOR_CLONES, layers.h): neither version
// uses FMA, so both give the same bits.
#define ALWAYS_INLINE static inline __attribute__((always_inline))

static int direct(const ns_conv_shape *s) { return s->c <= DIRECT_MAX_C; }

// Values per block of outputs of the implicit kernel: two AVX registers.
#define BLOCK (64 / (int)sizeof(real))

// The implicit kernel may run: the CPU has AVX2 and FMA (a read of what the loader found, no
// state of ours), and the patch path is not asked for.
static int kernel_allowed(void) {
#if HAVE_IMPLICIT
    return !ns_conv3x3_no_implicit && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static int implicit(const ns_conv_shape *s) {
    return !direct(s) && !s->nchw && s->c % BLOCK == 0 && s->co % BLOCK == 0 && kernel_allowed();
}

static int grey_tiles(const ns_conv_shape *s);
int ns_conv3x3_implicit(const ns_conv_shape *s) { return implicit(s) || grey_tiles(s); }

// Strides (in values) of channel, row and column within one example.
typedef struct {
    long sc, sy, sx, d;  // d: values per example
} strides;

static strides input_strides(const ns_conv_shape *s) {
    strides t;
    t.d = (long)s->c * s->h * s->w;
    if (s->nchw) {
        t.sc = (long)s->h * s->w, t.sy = s->w, t.sx = 1;
    } else {
        t.sc = 1, t.sy = (long)s->w * s->c, t.sx = s->c;
    }
    return t;
}

// The transposed convolution's shape: input gy (n, h, w, co) channels last, output c channels.
static ns_conv_shape transposed_shape(const ns_conv_shape *s) {
    return (ns_conv_shape){.c = s->co, .h = s->h, .w = s->w, .co = s->c, .nchw = 0};
}

static size_t weight_size(const ns_conv_shape *s) { return (size_t)s->co * s->c * 9; }
static int padded_co(const ns_conv_shape *s) { return (s->co + VLEN - 1) / VLEN * VLEN; }
static size_t plane_size(const ns_conv_shape *s) { return (size_t)(s->h + 2) * (s->w + 2); }
// W in the layout of the sums: W' (co, 9c), or for direct sums (9c, co rounded up to vectors)
static size_t taps_size(const ns_conv_shape *s) {
    return direct(s) ? (size_t)9 * s->c * padded_co(s) : weight_size(s);
}

size_t ns_conv3x3_patch_size(const ns_conv_shape *s, int with_gx) {
    size_t px = (size_t)s->h * s->w;
    size_t of_x = direct(s) ? 0 : px * 9 * s->c, of_gy = with_gx ? px * 9 * s->co : 0;
    return of_x > of_gy ? of_x : of_gy;
}

// Zero-padded planes for the direct sums: one per channel, or for a grey layer one per part
// (each on its own lines: grey_plane).
static size_t pad_planes(const ns_conv_shape *s) {
    return (size_t)(s->c == 1 ? NS_MAX_PARTS : s->c);
}

// Each piece of the workspace starts on a cache line of NS_LINE values (split). The threads
// of a weight gradient add into disjoint blocks of BLOCK values of gp; a block that straddles
// two lines shares one with a block of another thread. With gp 16 bytes off a line, a
// two-thread weight gradient of cnn-relu-32-32's second layer took 1.16-1.55x as long (one
// thread: 1.04-1.05x; bench/conv_kernels.c, BENCHMARKS.md §5 item 13).
static size_t lines(size_t values) { return (values + NS_LINE - 1) / NS_LINE * NS_LINE; }

// The stride of a grey layer's per-part planes: parts pad their examples side by side.
static size_t grey_plane(const ns_conv_shape *s) { return lines(plane_size(s)); }

size_t ns_conv3x3_workspace(const ns_conv_shape *s) {
    return NS_LINE + 3 * lines(taps_size(s)) + 2 * lines(weight_size(s)) +
           (direct(s) ? pad_planes(s) * lines(plane_size(s)) : 0);
}

// The workspace: W and V in the layout of the sums, a gradient accumulator in that layout,
// W and V flipped for the transposed convolution, and (direct sums) zero-padded planes
// (pad_planes); each on a cache line, from the first line boundary in ws.
typedef struct {
    real *wp, *vp, *gp, *wf, *vf, *pad;
} work;

static work split(real *ws, const ns_conv_shape *s) {
    size_t tsz = lines(taps_size(s)), wsz = lines(weight_size(s));
    ws += (size_t)(-(uintptr_t)ws % 64) / sizeof *ws;  // ws holds whole reals: exact
    work k = {.wp = ws, .vp = ws + tsz, .gp = ws + 2 * tsz};
    k.wf = k.gp + tsz, k.vf = k.wf + wsz;
    k.pad = direct(s) ? k.vf + wsz : NULL;
    return k;
}

// wk := w (co, c, 3,3) in the implicit kernel's layout (co/BLOCK, 3,3, c, BLOCK), flipped
// in (ky, kx) and transposed (the transposed convolution's weights, (c/BLOCK, 3,3, co, BLOCK))
// if `flip`.
static void to_blocks(real *wk, const real *w, const ns_conv_shape *s, int flip) {
    int nout = flip ? s->c : s->co, nin = flip ? s->co : s->c;
    for (int o = 0; o < nout; o++)
        for (int q = 0; q < 9; q++)
            for (int i = 0; i < nin; i++) {
                size_t src = flip ? ((size_t)i * s->c + o) * 9 + 8 - q : ((size_t)o * s->c + i) * 9 + q;
                wk[(((size_t)(o / BLOCK) * 9 + q) * nin + i) * BLOCK + o % BLOCK] = w[src];
            }
}

// wp := w (co, c, 3,3) in the layout of the sums: (co, 3,3, c), or (c, 3,3, co padded with 0),
// or the implicit kernel's blocks
static void to_taps(real *wp, const real *w, const ns_conv_shape *s) {
    if (implicit(s)) {
        to_blocks(wp, w, s, 0);
        return;
    }
    int dir = direct(s), co8 = padded_co(s);
    if (dir) memset(wp, 0, sizeof *wp * taps_size(s));
    for (int o = 0; o < s->co; o++)
        for (int ci = 0; ci < s->c; ci++)
            for (int q = 0; q < 9; q++) {
                size_t i = dir ? ((size_t)ci * 9 + q) * co8 + o : ((size_t)o * 9 + q) * s->c + ci;
                wp[i] = w[((size_t)o * s->c + ci) * 9 + q];
            }
}

// gw (co, c, 3,3) += scale * gp (the layout of the sums)
static void add_from_taps(real *gw, const real *gp, real scale, const ns_conv_shape *s) {
    int dir = direct(s), co8 = padded_co(s);
    for (int o = 0; o < s->co; o++)
        for (int ci = 0; ci < s->c; ci++)
            for (int q = 0; q < 9; q++) {
                size_t i = dir ? ((size_t)ci * 9 + q) * co8 + o : ((size_t)o * 9 + q) * s->c + ci;
                gw[((size_t)o * s->c + ci) * 9 + q] += scale * gp[i];
            }
}

// wf (c, 3,3, co) := w (co, c, 3,3) flipped in (ky, kx): the transposed convolution's W'
// (in the implicit kernel's blocks on that path)
static void to_flipped(real *wf, const real *w, const ns_conv_shape *s) {
    if (implicit(s)) {
        to_blocks(wf, w, s, 1);
        return;
    }
    for (int o = 0; o < s->co; o++)
        for (int ci = 0; ci < s->c; ci++)
            for (int q = 0; q < 9; q++)
                wf[((size_t)ci * 9 + q) * s->co + o] = w[((size_t)o * s->c + ci) * 9 + 8 - q];
}

// Offsets of the 9 taps (ky, kx) from the centre pixel.
static void tap_offsets(long off[9], const strides *t) {
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++) off[ky * 3 + kx] = (ky - 1) * t->sy + (kx - 1) * t->sx;
}

// Bit q of the result is set if tap q of pixel (yy, xx) falls inside the image.
static inline unsigned taps_inside(const ns_conv_shape *s, int yy, int xx) {
    if (yy > 0 && yy < s->h - 1 && xx > 0 && xx < s->w - 1) return 0x1ff;  // interior
    unsigned m = 0;
    for (int q = 0; q < 9; q++) {
        int iy = yy + q / 3 - 1, ix = xx + q % 3 - 1;
        if (iy >= 0 && iy < s->h && ix >= 0 && ix < s->w) m |= 1u << q;
    }
    return m;
}

// cols (n*h*w, 9*c) := im2col(x) of the n examples at x; out-of-image taps are 0.
static void im2col(real *cols, const real *x, long n, const ns_conv_shape *s) {
    strides t = input_strides(s);
    long off[9];
    tap_offsets(off, &t);
    int c = s->c;
    for (long e = 0; e < n; e++)
        for (int yy = 0; yy < s->h; yy++)
            for (int xx = 0; xx < s->w; xx++) {
                real *row = cols + ((e * s->h + yy) * s->w + xx) * 9 * c;
                const real *centre = x + e * t.d + yy * t.sy + xx * t.sx;
                unsigned inside = taps_inside(s, yy, xx);
                if (inside == 0x1ff && t.sc == 1 && t.sx == c) {  // interior, channels last:
                    for (int ky = 0; ky < 3; ky++)                 // three runs of 3c values
                        memcpy(row + ky * 3 * c, centre + off[ky * 3], sizeof *row * 3 * (size_t)c);
                    continue;
                }
                for (int q = 0; q < 9; q++) {
                    real *r = row + q * c;
                    const real *p = centre + off[q];
                    if (!(inside >> q & 1))
                        memset(r, 0, sizeof *r * (size_t)c);
                    else
                        for (int ci = 0; ci < c; ci++) r[ci] = p[ci * t.sc];
                }
            }
}

// xpad (n, h+2, w+2, c) := the n examples at x (channels last) with a border of zeros. (One
// thread: a chunk's copy takes a few us, less than handing half of it to another thread.)
static void pad_images(real *xpad, const real *x, long n, const ns_conv_shape *s) {
    size_t c = (size_t)s->c, pw = (size_t)s->w + 2, row = pw * c, ph = (size_t)s->h + 2;
    for (long e = 0; e < n; e++) {
        real *pe = xpad + (size_t)e * ph * row;
        const real *xe = x + (size_t)e * s->h * s->w * c;
        memset(pe, 0, sizeof *pe * (row + c));  // the top row, and the left of the first
        for (int yy = 0; yy < s->h; yy++) {
            real *r = pe + (size_t)(yy + 1) * row;
            memcpy(r + c, xe + (size_t)yy * s->w * c, sizeof *r * (size_t)s->w * c);
            memset(r + row - c, 0, sizeof *r * 2 * c);  // its right, the next row's left
        }
        memset(pe + (ph - 1) * row + c, 0, sizeof *pe * (row - c));  // the bottom row
    }
}

void ns_conv3x3_patches(real *cols, const real *x, long n, const ns_conv_shape *s) {
    if (implicit(s))
        pad_images(cols, x, n, s);
    else if (!direct(s))
        im2col(cols, x, n, s);
}

// ---- the implicit GEMM -----------------------------------------------------------------------
#define TILE 6   // rows of a tile: pixels (convolution), outputs or taps (weight gradient)
// The weight gradient sums over pixels a strip of image rows at a time (strip_rows).
#define STRIP_BYTES (24 * 1024)
#define GREY_TAP_TILES ((9 + TILE - 1) / TILE)

// The sums y (n, h, w, nout) := b + wmul conv, or if b is NULL, += wmul conv (add) or
// = wmul conv, where conv[p][o] = sum_{q, i} wk[o / BLOCK][q][i][o % BLOCK] xpad[p + off_q][i]:
// the padded input xpad (n, h+2, w+2, nin), wk as to_blocks makes it (wblock = 9 nin BLOCK
// values per block of outputs, wstep = BLOCK per (tap, input); the direct layout of a grey
// layer has BLOCK and co rounded up to vectors). run_conv splits them over threads.
typedef struct {
    real *y;
    const real *xpad, *wk, *b;
    long wblock, wstep, n;
    real wmul;
    int add, h, w, nin, nout;
} conv_job;

// The weight gradient gp += wmul gy^T patches(x) of gy (n, h, w, co), in the layout of the
// sums: from the padded input xpad (n, h+2, w+2, c) (implicit_weight_grad), or for a grey
// layer from the images x (n, h, w) with a zero-padded plane per part in pad (NS_MAX_PARTS
// planes). run_wgrad splits it over threads.
typedef struct {
    real *gp;
    const real *gy, *xpad, *x;
    real wmul, *pad;
    long n;
    const ns_conv_shape *s;
    int strip;  // image rows per partial sum: strip_rows(s), set by run_wgrad
} wgrad_job;

// Image rows per partial sum of the weight gradient: the most (at least 1) whose inputs and
// output gradients, (rows + 2) (w + 2) c + rows w co values, fit in STRIP_BYTES, so that the
// items of a strip find them in L1. It depends on the shape alone, so the bits do not depend
// on the thread count. A fixed strip of 2 rows took 204 us for cnn-relu-32-32's second layer
// (32 -> 32 channels, 14 x 14, 4 examples) where 5 rows take 181 us and the whole image
// (57 KB) 204-220 us (bench/conv_kernels.c, one thread, 2026-11-30).
static int strip_rows(const ns_conv_shape *s) {
    int rows = s->h;
    while (rows > 1 && ((size_t)(rows + 2) * (s->w + 2) * s->c + (size_t)rows * s->w * s->co) *
                               sizeof(real) > STRIP_BYTES)
        rows--;
    return rows;
}

#if HAVE_IMPLICIT
#ifdef NS_DOUBLE
typedef __m256d vec;
#define V_ZERO _mm256_setzero_pd
#define V_LOAD _mm256_loadu_pd
#define V_STORE _mm256_storeu_pd
#define V_BCAST _mm256_broadcast_sd
#define V_SET1 _mm256_set1_pd
#define V_FMA _mm256_fmadd_pd
#define V_MUL _mm256_mul_pd
#define V_ADD _mm256_add_pd
#else
typedef __m256 vec;
#define V_ZERO _mm256_setzero_ps
#define V_LOAD _mm256_loadu_ps
#define V_STORE _mm256_storeu_ps
#define V_BCAST _mm256_broadcast_ss
#define V_SET1 _mm256_set1_ps
#define V_FMA _mm256_fmadd_ps
#define V_MUL _mm256_mul_ps
#define V_ADD _mm256_add_ps
#endif
#define HALF (BLOCK / 2)  // values per register
// The tile's 12 accumulators as named variables, so that they stay in registers.
#define ACC_ZERO                                                                             \
    vec a00 = V_ZERO(), a01 = V_ZERO(), a10 = V_ZERO(), a11 = V_ZERO(), a20 = V_ZERO(),       \
        a21 = V_ZERO(), a30 = V_ZERO(), a31 = V_ZERO(), a40 = V_ZERO(), a41 = V_ZERO(),       \
        a50 = V_ZERO(), a51 = V_ZERO()
#define ACC_ARRAY {a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51}
#define FMA_ROW(r0, r1, a)            \
    do {                              \
        vec b_ = V_BCAST(a);          \
        r0 = V_FMA(b_, w0, r0);       \
        r1 = V_FMA(b_, w1, r1);       \
    } while (0)
#define FMA_TILE(p0, p1, p2, p3, p4, p5) \
    do {                                 \
        FMA_ROW(a00, a01, p0);           \
        FMA_ROW(a10, a11, p1);           \
        FMA_ROW(a20, a21, p2);           \
        FMA_ROW(a30, a31, p3);           \
        FMA_ROW(a40, a41, p4);           \
        FMA_ROW(a50, a51, p5);           \
    } while (0)

// Tiles [t0, t1) of the sums of a conv_job (above). Pixels in tiles of TILE in row-major
// order over the n examples (a last short tile repeats its first pixel and stores only its
// own); each output is one tile's sum, whichever part of a job computes it.
__attribute__((target("avx2,fma"))) static void implicit_conv(const conv_job *j, long t0,
                                                              long t1) {
    real *y = j->y;
    const real *xpad = j->xpad, *wk = j->wk, *b = j->b;
    long wblock = j->wblock, wstep = j->wstep, n = j->n;
    int h = j->h, w = j->w, nin = j->nin, nout = j->nout, add = j->add;
    long npx = n * h * w, pw = w + 2, plane = (long)(h + 2) * pw;
    long off[9];
    for (int q = 0; q < 9; q++) off[q] = ((q / 3) * pw + q % 3) * nin;
    vec vm = V_SET1(j->wmul);
    for (long p0 = t0 * TILE; p0 < npx && p0 < t1 * TILE; p0 += TILE) {
        int nt = npx - p0 < TILE ? (int)(npx - p0) : TILE;
        const real *base[TILE];
        for (int i = 0; i < TILE; i++) {
            long p = p0 + (i < nt ? i : 0), e = p / ((long)h * w), r = p % ((long)h * w);
            base[i] = xpad + (e * plane + (r / w) * pw + r % w) * nin;  // the window's top left
        }
        for (int ob = 0; ob < nout / BLOCK; ob++) {
            ACC_ZERO;
            const real *wq = wk + ob * wblock;
            for (int q = 0; q < 9; q++) {
                const real *c0 = base[0] + off[q], *c1 = base[1] + off[q], *c2 = base[2] + off[q];
                const real *c3 = base[3] + off[q], *c4 = base[4] + off[q], *c5 = base[5] + off[q];
                for (int i = 0; i < nin; i++, wq += wstep) {
                    vec w0 = V_LOAD(wq), w1 = V_LOAD(wq + HALF);
                    FMA_TILE(c0 + i, c1 + i, c2 + i, c3 + i, c4 + i, c5 + i);
                }
            }
            vec acc[2 * TILE] = ACC_ARRAY;
            for (int i = 0; i < nt; i++) {
                real *py = y + (p0 + i) * nout + ob * BLOCK;
                for (int k = 0; k < 2; k++) {
                    vec out = V_MUL(vm, acc[2 * i + k]);
                    if (b)
                        out = V_ADD(V_LOAD(b + ob * BLOCK + k * HALF), out);
                    else if (add)
                        out = V_ADD(V_LOAD(py + k * HALF), out);
                    V_STORE(py + k * HALF, out);
                }
            }
        }
    }
}

// Items [i0, i1) of a wgrad_job (above): gp (co, 3,3, c) += wmul sum_p gy[p][o] xpad[p +
// off_q][i]. An item is (tap q, block of inputs ib, tile of TILE outputs o0) in that order;
// a last short tile repeats its first output and stores only its own. The sum over pixels is
// taken job->strip image rows at a time, each strip's sum (row-major) added to gp in turn,
// example by example, whichever part of a job computes the item.
__attribute__((target("avx2,fma"))) static void implicit_weight_grad(const wgrad_job *job,
                                                                     long i0, long i1) {
    const ns_conv_shape *s = job->s;
    real *gp = job->gp;
    const real *gy = job->gy, *xpad = job->xpad;
    int h = s->h, w = s->w, c = s->c, co = s->co, otiles = (co + TILE - 1) / TILE;
    long pw = w + 2, plane = (long)(h + 2) * pw;
    vec vm = V_SET1(job->wmul);
    for (long e = 0; e < job->n; e++)
        for (int y0 = 0; y0 < h; y0 += job->strip) {
            int y1 = y0 + job->strip < h ? y0 + job->strip : h;
            int cb = c / BLOCK, q = (int)(i0 / otiles / cb), ib = (int)(i0 / otiles % cb);
            int ot = (int)(i0 % otiles);  // item i0, then counted on (no division per item)
            for (long it = i0; it < i1; it++) {
                int o0 = ot * TILE, nt = co - o0 < TILE ? co - o0 : TILE, oi[TILE];
                for (int k = 0; k < TILE; k++) oi[k] = o0 + (k < nt ? k : 0);
                ACC_ZERO;
                for (int yy = y0; yy < y1; yy++) {
                    const real *xr =
                        xpad + ((e * plane + (yy + q / 3) * pw + q % 3) * c) + ib * BLOCK;
                    const real *gr = gy + ((e * h + yy) * (long)w) * co;
                    for (int xx = 0; xx < w; xx++, xr += c, gr += co) {
                        vec w0 = V_LOAD(xr), w1 = V_LOAD(xr + HALF);
                        FMA_TILE(gr + oi[0], gr + oi[1], gr + oi[2], gr + oi[3], gr + oi[4],
                                 gr + oi[5]);
                    }
                }
                vec acc[2 * TILE] = ACC_ARRAY;
                for (int k = 0; k < nt; k++) {
                    real *g = gp + ((size_t)(o0 + k) * 9 + q) * c + ib * BLOCK;
                    for (int j = 0; j < 2; j++)
                        V_STORE(g + j * HALF, V_FMA(vm, acc[2 * k + j], V_LOAD(g + j * HALF)));
                }
                if (++ot == otiles) {  // the next item
                    ot = 0;
                    if (++ib == cb) ib = 0, q++;
                }
            }
        }
}

// Items [i0, i1) of a wgrad_job of a grey layer (c = 1; x the images, not padded): gp (9, co
// rounded up to vectors) += sum_p xpad[p + off_q] gy[p][o], unscaled, the weight gradient in
// the direct path's layout, from gy (n, h, w, co) and the padded image (h+2, w+2) of each
// example in turn (pad_images into `pad`, this part's own). An item is (block of outputs ob,
// tile of TILE taps), in that order; the last, short tile repeats its first tap and stores
// only its own. Per example and strip of job->strip image rows a sum over its pixels, added
// to gp.
__attribute__((target("avx2,fma"))) static void grey_weight_grad(const wgrad_job *job, long i0,
                                                                 long i1, real *pad) {
    const ns_conv_shape *s = job->s;
    real *gp = job->gp;
    const real *gy = job->gy;
    int h = s->h, w = s->w, co = s->co, co8 = padded_co(s);
    long pw = w + 2;
    for (long e = 0; e < job->n; e++) {
        pad_images(pad, job->x + (size_t)e * h * w, 1, s);
        for (int y0 = 0; y0 < h; y0 += job->strip) {
            int y1 = y0 + job->strip < h ? y0 + job->strip : h;
            for (long it = i0; it < i1; it++) {
                int ob = (int)(it / GREY_TAP_TILES), q0 = (int)(it % GREY_TAP_TILES) * TILE;
                int nt = 9 - q0 < TILE ? 9 - q0 : TILE;
                long off[TILE];
                for (int k = 0; k < TILE; k++) {
                    int q = q0 + (k < nt ? k : 0);
                    off[k] = (q / 3) * pw + q % 3;
                }
                ACC_ZERO;
                for (int yy = y0; yy < y1; yy++) {
                    const real *xr = pad + yy * pw;
                    const real *gr = gy + ((e * h + yy) * (long)w) * co + ob * BLOCK;
                    for (int xx = 0; xx < w; xx++, xr++, gr += co) {
                        vec w0 = V_LOAD(gr), w1 = V_LOAD(gr + HALF);
                        FMA_TILE(xr + off[0], xr + off[1], xr + off[2], xr + off[3], xr + off[4],
                                 xr + off[5]);
                    }
                }
                vec acc[2 * TILE] = ACC_ARRAY;
                for (int k = 0; k < nt; k++) {
                    real *g = gp + (size_t)(q0 + k) * co8 + ob * BLOCK;
                    for (int j = 0; j < 2; j++)
                        V_STORE(g + j * HALF, V_ADD(V_LOAD(g + j * HALF), acc[2 * k + j]));
                }
            }
        }
    }
}
#else
static void grey_weight_grad(const wgrad_job *job, long i0, long i1, real *pad) {
    (void)job, (void)i0, (void)i1, (void)pad;
}
static void implicit_conv(const conv_job *j, long t0, long t1) { (void)j, (void)t0, (void)t1; }
static void implicit_weight_grad(const wgrad_job *job, long i0, long i1) {
    (void)job, (void)i0, (void)i1;
}
#endif

// ---- the implicit GEMM's sums, split over threads (ns_parallel, parallel.c) ----------------

// Items per range of a job of `macs` multiply-adds in `items` items: a range of at least
// MIN_PART_MACS outweighs waking a thread (a few us).
#define MIN_PART_MACS (1L << 18)
static long grain_for(double macs, long items) {
    if (items <= 0 || macs <= 0) return 1;
    double per_item = macs / items;
    return per_item >= MIN_PART_MACS ? 1 : (long)(MIN_PART_MACS / per_item) + 1;
}

// Parts (ns_parallel) of a job of `macs` multiply-adds in `items` items, one per MIN_PART_MACS.
static long parts_for(double macs, long items) {
    double most = macs / MIN_PART_MACS;
    return most < items ? (long)most : items;
}

static long conv_tiles(const conv_job *j) { return (j->n * j->h * j->w + TILE - 1) / TILE; }

static void conv_range(void *arg, long lo, long hi) { implicit_conv(arg, lo, hi); }

static void run_conv(conv_job j) {
    double macs = (double)j.n * j.h * j.w * j.nin * 9 * j.nout;
    ns_parallel_for(conv_range, &j, conv_tiles(&j), grain_for(macs, conv_tiles(&j)));
}

// Items of a weight gradient: (tap, input block, output tile) on the implicit path
// (implicit_weight_grad), (output block, tap tile) for a grey layer (grey_weight_grad).
static long wgrad_items(const ns_conv_shape *s) {
    return s->c == 1 ? (long)(s->co / BLOCK) * GREY_TAP_TILES
                     : 9L * (s->c / BLOCK) * ((s->co + TILE - 1) / TILE);
}

static void wgrad_range(void *arg, long lo, long hi) { implicit_weight_grad(arg, lo, hi); }

static void grey_wgrad_part(void *arg, int part, int parts) {
    const wgrad_job *j = arg;
    long lo, hi;
    ns_part_range(wgrad_items(j->s), part, parts, &lo, &hi);
    grey_weight_grad(j, lo, hi, j->pad + part * grey_plane(j->s));
}

static void run_wgrad(wgrad_job j) {
    const ns_conv_shape *s = j.s;
    j.strip = strip_rows(s);
    double macs = (double)j.n * s->h * s->w * s->c * 9 * s->co;
    if (s->c == 1)
        ns_parallel(grey_wgrad_part, &j, parts_for(macs, wgrad_items(s)));
    else
        ns_parallel_for(wgrad_range, &j, wgrad_items(s), grain_for(macs, wgrad_items(s)));
}

// ---- direct sums ---------------------------------------------------------------------------

// The interior of pad (c, h+2, w+2) := example x; its border stays 0.
static void pad_example(real *pad, const real *x, const ns_conv_shape *s) {
    strides t = input_strides(s);
    int pw = s->w + 2;
    for (int ci = 0; ci < s->c; ci++)
        for (int yy = 0; yy < s->h; yy++) {
            real *row = pad + ci * plane_size(s) + (size_t)(yy + 1) * pw + 1;
            const real *src = x + ci * t.sc + yy * t.sy;
            for (int xx = 0; xx < s->w; xx++) row[xx] = src[xx * t.sx];
        }
}

// The first nv (<= VLEN) values at p, as a vector padded with 0; and back.
ALWAYS_INLINE void load_part(vreal *v, const real *p, int nv) {
    if (nv == VLEN) {
        memcpy(v, p, sizeof *v);
        return;
    }
    memset(v, 0, sizeof *v);
    memcpy(v, p, sizeof *p * (size_t)nv);
}
ALWAYS_INLINE void store_part(real *p, const vreal *v, int nv) {
    if (nv == VLEN)
        memcpy(p, v, sizeof *v);  // a constant size: one vector store, not a call
    else
        memcpy(p, v, sizeof *p * (size_t)nv);
}

// y (n, h,w, co) := b + wmul conv(x, W), or += wmul conv(x, W) if b is NULL; wp (9c, co8)
// in the direct layout. Each output is a sum over the taps in the order (ci, ky, kx).
// c is a constant for the grey-image case, so that the tap loop unrolls into registers.
ALWAYS_INLINE void direct_forward_c(real *y, const real *x, const real *wp, const real *b,
                                    real wmul, long n, const ns_conv_shape *s, real *pad, int c) {
    int pw = s->w + 2, co = s->co, co8 = padded_co(s);
    size_t plane = plane_size(s), hw = (size_t)s->h * s->w;
    long d = (long)c * s->h * s->w;
    memset(pad, 0, sizeof *pad * plane * (size_t)c);
    for (long e = 0; e < n; e++) {
        pad_example(pad, x + e * d, s);
        real *ye = y + (size_t)e * hw * co;
        for (int o0 = 0; o0 < co8; o0 += VLEN) {
            int nv = co - o0 < VLEN ? co - o0 : VLEN;
            vreal wv[9 * DIRECT_MAX_C], bv = {0};
            for (int k = 0; k < 9 * c; k++) memcpy(&wv[k], wp + (size_t)k * co8 + o0, sizeof *wv);
            if (b) load_part(&bv, b + o0, nv);
            for (int yy = 0; yy < s->h; yy++)
                for (int xx = 0; xx < s->w; xx++) {
                    const real *win = pad + (size_t)yy * pw + xx;  // the window's top left
                    vreal acc = {0}, out;
                    for (int ci = 0; ci < c; ci++)
                        for (int q = 0; q < 9; q++)
                            acc += wv[ci * 9 + q] * win[ci * plane + (size_t)(q / 3) * pw + q % 3];
                    real *py = ye + ((size_t)yy * s->w + xx) * co + o0;
                    if (b) {
                        out = bv + wmul * acc;
                    } else {
                        load_part(&out, py, nv);
                        out += wmul * acc;
                    }
                    store_part(py, &out, nv);
                }
        }
    }
}

NS_VECTOR_CLONES static void direct_forward(real *y, const real *x, const real *wp, const real *b,
                                         real wmul, long n, const ns_conv_shape *s, real *pad) {
    if (s->c == 1)
        direct_forward_c(y, x, wp, b, wmul, n, s, pad, 1);
    else
        direct_forward_c(y, x, wp, b, wmul, n, s, pad, s->c);
}

// gp (9c, co8) += sum over the pixels of the n examples of tap_k(x) gy[p][o]: per example a
// sum over its pixels in row-major order, then added to gp.
NS_VECTOR_CLONES static void direct_weight_grad(real *gp, const real *gy, const real *x, long n,
                                             const ns_conv_shape *s, real *pad) {
    int pw = s->w + 2, co = s->co, co8 = padded_co(s);
    size_t plane = plane_size(s), hw = (size_t)s->h * s->w;
    strides t = input_strides(s);
    memset(pad, 0, sizeof *pad * plane * (size_t)s->c);
    for (long e = 0; e < n; e++) {
        pad_example(pad, x + e * t.d, s);
        const real *ge = gy + (size_t)e * hw * co;
        for (int o0 = 0; o0 < co8; o0 += VLEN) {
            int nv = co - o0 < VLEN ? co - o0 : VLEN;
            for (int ci = 0; ci < s->c; ci++) {
                vreal acc[9] = {{0}};
                for (int yy = 0; yy < s->h; yy++)
                    for (int xx = 0; xx < s->w; xx++) {
                        const real *win = pad + ci * plane + (size_t)yy * pw + xx;
                        vreal g;
                        load_part(&g, ge + ((size_t)yy * s->w + xx) * co + o0, nv);
                        for (int q = 0; q < 9; q++) acc[q] += win[(q / 3) * pw + q % 3] * g;
                    }
                for (int q = 0; q < 9; q++) {
                    real *p = gp + ((size_t)ci * 9 + q) * co8 + o0;
                    vreal sum;
                    memcpy(&sum, p, sizeof sum);
                    sum += acc[q];
                    memcpy(p, &sum, sizeof sum);
                }
            }
        }
    }
}

// ---- the sums, either way ----------------------------------------------------------------

// A grey first layer (c = 1) whose outputs fill whole blocks computes its forward sums with the
// implicit GEMM's kernel, example by example from a zero-padded copy of the image in the
// direct path's buffer (for c = 1 channels first and last are one layout), on the direct
// layout of W: the kernel keeps 12 accumulators where the direct loop keeps one. Its weight
// gradient likewise (grey_weight_grad: 6 taps x 2 vectors of outputs).
static int grey_tiles(const ns_conv_shape *s) {
    return s->c == 1 && s->co % BLOCK == 0 && kernel_allowed();
}

// The examples split over threads, each part padding its images into its own plane of pad.
typedef struct {
    conv_job one;  // the sums of one example: y, xpad and n filled in per example
    const real *x;
    real *pad;
    long n;
    const ns_conv_shape *s;
} grey_job;

static void grey_forward_part(void *arg, int part, int parts) {
    const grey_job *g = arg;
    size_t hw = (size_t)g->s->h * g->s->w;
    conv_job one = g->one;
    one.xpad = g->pad + part * grey_plane(g->s);
    long lo, hi;
    ns_part_range(g->n, part, parts, &lo, &hi);
    for (long e = lo; e < hi; e++) {
        pad_images((real *)one.xpad, g->x + e * hw, 1, g->s);
        one.y = g->one.y + e * hw * g->s->co;
        implicit_conv(&one, 0, conv_tiles(&one));
    }
}

static void grey_forward(real *y, const real *x, const real *wp, const real *b, real wmul, long n,
                         const ns_conv_shape *s, real *pad) {
    grey_job g = {.one = {.y = y, .wk = wp, .b = b, .wblock = BLOCK, .wstep = padded_co(s),
                          .n = 1, .wmul = wmul, .add = 1, .h = s->h, .w = s->w, .nin = 1,
                          .nout = s->co},
                  .x = x, .pad = pad, .n = n, .s = s};
    ns_parallel(grey_forward_part, &g, parts_for((double)n * s->h * s->w * 9 * s->co, n));
}

// y := b + wmul conv(x, W), or += wmul conv(x, W) if b is NULL; cols = im2col(x) (patches).
static void conv_sums(real *y, const real *x, const real *cols, const real *wp, const real *b,
                      real wmul, long n, const ns_conv_shape *s, real *pad) {
    int kk = s->c * 9;
    long rows = n * s->h * s->w;
    if (grey_tiles(s))
        grey_forward(y, x, wp, b, wmul, n, s, pad);
    else if (direct(s))
        direct_forward(y, x, wp, b, wmul, n, s, pad);
    else if (implicit(s))
        run_conv((conv_job){.y = y, .xpad = cols, .wk = wp, .b = b, .wblock = 9L * s->c * BLOCK,
                            .wstep = BLOCK, .n = n, .wmul = wmul, .add = 1, .h = s->h, .w = s->w,
                            .nin = s->c, .nout = s->co});
    else if (b)
        ns_dense_forward(y, cols, wp, b, wmul, rows, kk, s->co);
    else
        NS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, s->co, kk, wmul, cols, kk, wp,
                kk, 1, y, s->co);
}

// gp (the layout of the sums) += the weight gradient of gy at x (patches cols); scaled by
// wmul on the patch path, unscaled on the direct path (add_weight_grad scales it there).
static void weight_grad(real *gp, const real *gy, const real *x, const real *cols, real wmul,
                        long n, const ns_conv_shape *s, real *pad) {
    if (grey_tiles(s))
        run_wgrad((wgrad_job){.gp = gp, .gy = gy, .x = x, .pad = pad, .n = n, .s = s});
    else if (direct(s))
        direct_weight_grad(gp, gy, x, n, s, pad);
    else if (implicit(s))
        run_wgrad((wgrad_job){.gp = gp, .gy = gy, .xpad = cols, .wmul = wmul, .n = n, .s = s});
    else
        ns_dense_backward(NULL, gp, NULL, gy, cols, NULL, wmul, n * s->h * s->w, s->c * 9, s->co);
}

static void add_weight_grad(real *gw, const real *gp, real wmul, const ns_conv_shape *s) {
    add_from_taps(gw, gp, direct(s) ? wmul : 1, s);
}

// cols := the patches (or, on the implicit path, the padded copy) of gy (n, h, w, co), the
// input of the transposed convolution of s.
static void gy_patches(real *cols, const real *gy, long n, const ns_conv_shape *s) {
    ns_conv_shape g = transposed_shape(s);
    if (implicit(s))
        pad_images(cols, gy, n, &g);
    else
        im2col(cols, gy, n, &g);
}

// gx (x's layout) := wmul gcols Wf^T (beta 0) or += (beta 1): the transposed convolution,
// with gcols = im2col(gy) (n*h*w, 9co) and wf (c, 9co); on the implicit path gcols is gy's
// padded copy and wf in the kernel's blocks (to_flipped).
static void transposed_conv(real *gx, const real *gcols, const real *wf, real wmul, real beta,
                            long n, const ns_conv_shape *s) {
    int kk = 9 * s->co, hw = s->h * s->w;
    if (implicit(s)) {
        run_conv((conv_job){.y = gx, .xpad = gcols, .wk = wf, .wblock = 9L * s->co * BLOCK,
                            .wstep = BLOCK, .n = n, .wmul = wmul, .add = beta != 0, .h = s->h,
                            .w = s->w, .nin = s->co, .nout = s->c});
        return;
    }
    if (!s->nchw || s->c == 1) {  // (n*h*w, c)
        NS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(n * hw), s->c, kk, wmul, gcols, kk,
                wf, kk, beta, gx, s->c);
        return;
    }
    for (long e = 0; e < n; e++)  // (c, h*w) per example: the transposed product
        NS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, s->c, hw, kk, wmul, wf, kk,
                gcols + (size_t)e * hw * kk, kk, beta, gx + (size_t)e * s->c * hw, hw);
}

// ---- the passes --------------------------------------------------------------------------

void ns_conv3x3_forward(real *y, const real *x, const real *cols, const real *w, const real *b,
                        real wmul, long n, const ns_conv_shape *s, real *ws) {
    work k = split(ws, s);
    to_taps(k.wp, w, s);
    conv_sums(y, x, cols, k.wp, b, wmul, n, s, k.pad);
}

// gW += wmul gy^T im2col(x), gb += colsum gy, gx = wmul im2col(gy) Wf^T (each by the path's
// own sums: patches, padded copies or direct); cols then holds gy's patches (or padded copy).
void ns_conv3x3_backward(real *gx, real *gw, real *gb, const real *gy, const real *x, real *cols,
                         const real *w, real wmul, long n, const ns_conv_shape *s, real *ws) {
    work k = split(ws, s);
    if (gw) {
        memset(k.gp, 0, sizeof *k.gp * taps_size(s));
        weight_grad(k.gp, gy, x, cols, wmul, n, s, k.pad);
        add_weight_grad(gw, k.gp, wmul, s);
    }
    if (gb) ns_colsum_add(gb, gy, n * s->h * s->w, s->co);
    if (gx) {
        to_flipped(k.wf, w, s);
        gy_patches(cols, gy, n, s);
        transposed_conv(gx, cols, k.wf, wmul, 0, n, s);
    }
}

// Ry = wmul (conv(Rx, W) + conv(x, V)) + vb.
void ns_conv3x3_rforward(real *ry, const real *x, const real *rx, const real *cols,
                         const real *rcols, const real *w, const real *vw, const real *vb,
                         real wmul, long n, const ns_conv_shape *s, real *ws) {
    work k = split(ws, s);
    to_taps(k.vp, vw, s);
    conv_sums(ry, x, cols, k.vp, vb, wmul, n, s, k.pad);
    if (rx) {
        to_taps(k.wp, w, s);
        conv_sums(ry, rx, rcols, k.wp, NULL, wmul, n, s, k.pad);
    }
}

// hW += wmul (Rgy^T im2col(x) + gy^T im2col(Rx)), hb += colsum Rgy,
// gx = wmul im2col(gy) Wf^T, Rgx = wmul (im2col(Rgy) Wf^T + im2col(gy) Vf^T).
void ns_conv3x3_rbackward(real *gx, real *rgx, real *hw, real *hb, const real *gy,
                          const real *rgy, const real *x, const real *rx, real *cols, real *rcols,
                          const real *w, const real *vw, real wmul, long n,
                          const ns_conv_shape *s, real *ws) {
    work k = split(ws, s);
    if (hw) {
        memset(k.gp, 0, sizeof *k.gp * taps_size(s));
        weight_grad(k.gp, rgy, x, cols, wmul, n, s, k.pad);
        if (rx) weight_grad(k.gp, gy, rx, rcols, wmul, n, s, k.pad);
        add_weight_grad(hw, k.gp, wmul, s);
    }
    if (hb) ns_colsum_add(hb, rgy, n * s->h * s->w, s->co);
    rgx = rx ? rgx : NULL;  // Rx is NULL only for the data, whose layer needs no Rgx
    if (!gx && !rgx) return;
    to_flipped(k.wf, w, s);
    gy_patches(cols, gy, n, s);
    if (gx) transposed_conv(gx, cols, k.wf, wmul, 0, n, s);
    if (rgx) {
        to_flipped(k.vf, vw, s);
        gy_patches(rcols, rgy, n, s);
        transposed_conv(rgx, rcols, k.wf, wmul, 0, n, s);
        transposed_conv(rgx, cols, k.vf, wmul, 1, n, s);
    }
}
