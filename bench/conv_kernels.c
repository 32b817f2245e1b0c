// conv_kernels.c — the implicit GEMM of src/model/conv3x3.c against the patch path on one
// layer: cnn-relu-32-32's second convolution (32 -> 32 channels, 14 x 14), one chunk of n
// examples, float32. Times (best of R) the gather of each path (im2col; the zero-padded copy),
// the forward product (sgemm on the patches; the implicit kernel) and the weight gradient
// (sgemm gy^T patches; the implicit kernel), and checks that both paths agree.
//   conv_kernels [N [R]]          defaults: 4 (the library's chunk for convolutions) 300
// It includes conv3x3.c itself, to reach its static kernels. Build in the repository, after
// `make TAG=-nn PRECISION=float build/float-nn/libnormsharp.a`:
//   cc -O3 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc/model $(pkg-config --cflags openblas)
//      bench/conv_kernels.c build/float-nn/libnormsharp.a
//      $(pkg-config --libs openblas lapacke zlib) -lglpk -ldsdp -lm -lpthread -o conv_kernels
// Run with OPENBLAS_NUM_THREADS=1 for the one-thread figures of BENCHMARKS.md §5 item 8 (the
// kernels' threads, like OpenBLAS's, follow that setting: src/model/parallel.c).
#include "conv3x3.c"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static double best(double t, double b) { return t < b ? t : b; }

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 4;
    int reps = argc > 2 ? atoi(argv[2]) : 300;
    if (n < 1 || reps < 1) {
        fprintf(stderr, "usage: conv_kernels [N [R]]\n");
        return 2;
    }
    ns_conv_shape s = {.c = 32, .h = 14, .w = 14, .co = 32, .nchw = 0};
    if (!implicit(&s)) {
        fprintf(stderr, "conv_kernels: this CPU has no AVX2 and FMA: no implicit GEMM\n");
        return 1;
    }
    long px = n * s.h * s.w, kk = 9L * s.c;
    float *x = malloc(sizeof *x * px * s.c), *gy = malloc(sizeof *gy * px * s.co);
    float *cols = malloc(sizeof *cols * px * kk), *pad = calloc((size_t)px * kk, sizeof *pad);
    float *w = malloc(sizeof *w * s.co * kk), *wp = malloc(sizeof *wp * s.co * kk);
    float *wk = malloc(sizeof *wk * s.co * kk), *y1 = malloc(sizeof *y1 * px * s.co);
    float *y2 = malloc(sizeof *y2 * px * s.co), *g1 = calloc((size_t)s.co * kk, sizeof *g1);
    // the kernel's accumulator on a cache line, as in the library's workspace (split)
    float *g2 = aligned_alloc(64, sizeof *g2 * lines((size_t)s.co * kk));
    if (!g2) {
        fprintf(stderr, "conv_kernels: out of memory\n");
        return 1;
    }
    memset(g2, 0, sizeof *g2 * s.co * kk);
    for (long i = 0; i < px * s.c; i++) x[i] = (float)((i * 7) % 13) * 0.1f - 0.5f;
    for (long i = 0; i < px * s.co; i++) gy[i] = (float)((i * 3) % 17) * 0.1f - 0.8f;
    for (long i = 0; i < s.co * kk; i++) w[i] = (float)((i * 5) % 11) * 0.01f - 0.05f;
    ns_conv3x3_no_implicit = 1;
    to_taps(wp, w, &s);  // (co, 9c)
    ns_conv3x3_no_implicit = 0;
    to_taps(wk, w, &s);  // the kernel's blocks
    double t_im2col = 1e9, t_sgemm = 1e9, t_wsgemm = 1e9, t_pad = 1e9, t_kernel = 1e9, t_wk = 1e9;
    for (int r = 0; r < reps; r++) {
        double t0 = ns_now();
        im2col(cols, x, n, &s);
        double t1 = ns_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)px, s.co, (int)kk, 1, cols,
                    (int)kk, wp, (int)kk, 0, y1, s.co);
        double t2 = ns_now();
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s.co, (int)kk, (int)px, 1, gy, s.co,
                    cols, (int)kk, r == 0 ? 0 : 1, g1, (int)kk);
        double t3 = ns_now();
        pad_images(pad, x, n, &s);
        double t4 = ns_now();
        run_conv((conv_job){.y = y2, .xpad = pad, .wk = wk, .wblock = 9L * s.c * BLOCK,
                            .wstep = BLOCK, .n = n, .wmul = 1, .h = s.h, .w = s.w, .nin = s.c,
                            .nout = s.co});
        double t5 = ns_now();
        run_wgrad((wgrad_job){.gp = g2, .gy = gy, .xpad = pad, .wmul = 1, .n = n, .s = &s});
        double t6 = ns_now();
        t_im2col = best(t1 - t0, t_im2col), t_sgemm = best(t2 - t1, t_sgemm);
        t_wsgemm = best(t3 - t2, t_wsgemm), t_pad = best(t4 - t3, t_pad);
        t_kernel = best(t5 - t4, t_kernel), t_wk = best(t6 - t5, t_wk);
    }
    double dy = 0, my = 0, dg = 0, mg = 0, gf = 2.0 * px * s.co * kk * 1e-9;
    for (long i = 0; i < px * s.co; i++) dy = fmax(dy, fabs(y1[i] - y2[i])), my = fmax(my, fabs(y1[i]));
    for (long i = 0; i < s.co * kk; i++) dg = fmax(dg, fabs(g1[i] - g2[i])), mg = fmax(mg, fabs(g1[i]));
    printf("32 -> 32 channels, 14 x 14, chunk of %ld, best of %d (us; GFLOP/s)\n", n, reps);
    printf("  patches:  im2col %7.1f  forward sgemm %7.1f (%5.1f)  weight-gradient sgemm %7.1f (%5.1f)\n",
           t_im2col * 1e6, t_sgemm * 1e6, gf / t_sgemm, t_wsgemm * 1e6, gf / t_wsgemm);
    printf("  implicit: padding %6.1f  forward kernel %7.1f (%5.1f)  weight-gradient kernel %6.1f (%5.1f)\n",
           t_pad * 1e6, t_kernel * 1e6, gf / t_kernel, t_wk * 1e6, gf / t_wk);
    printf("  the paths differ by %.1g (forward) and %.1g (weight gradient, summed over %d runs) of the largest value\n",
           dy / my, dg / mg, reps);
    free(x), free(gy), free(cols), free(pad), free(w), free(wp), free(wk), free(y1), free(y2);
    free(g1), free(g2);
    return 0;
}
