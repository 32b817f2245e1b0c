// data_fixtures.h — small dataset files written by the data tests themselves: IDX (raw or
// gzip, any header), CIFAR batches, and an MNIST-style directory. Used by test_data.c and
// cli/data.c.
#ifndef NORMSHARP_DATA_FIXTURES_H
#define NORMSHARP_DATA_FIXTURES_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "testutil.h"

// Write len bytes to path, through zlib's gzip writer when gz != 0.
static inline void fx_write(const char *path, int gz, const void *bytes, size_t len) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (!f) fail_msg("cannot create %s", path);
        if (len && gzwrite(f, bytes, (unsigned)len) != (int)len) fail_msg("gzwrite %s failed", path);
        if (gzclose(f) != Z_OK) fail_msg("gzclose %s failed", path);
        return;
    }
    tu_spit(path, bytes, len);
}

// An IDX file: magic 00 00 `type` ndim, big-endian dims, then `ndata` data bytes (which
// may disagree with the dims on purpose).
static inline void fx_idx(const char *path, int gz, int type, int ndim, const uint32_t *dims,
                          const unsigned char *data, size_t ndata) {
    size_t len = 4 + 4 * (size_t)ndim + ndata;
    unsigned char *b = malloc(len);
    if (!b) fail_msg("out of memory");
    b[0] = 0;
    b[1] = 0;
    b[2] = (unsigned char)type;
    b[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        b[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        b[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        b[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        b[7 + 4 * i] = (unsigned char)dims[i];
    }
    if (ndata) memcpy(b + 4 + 4 * ndim, data, ndata);
    fx_write(path, gz, b, len);
    free(b);
}

// DIR/<stem>-idx3-ubyte[.gz] holding n images of h x w, and DIR/<lstem>-idx1-ubyte[.gz]
// holding nl labels.
static inline void fx_idx_pair(const char *dir, const char *stem, const char *lstem, int gz, uint32_t n,
                               uint32_t h, uint32_t w, const unsigned char *px, uint32_t nl,
                               const unsigned char *labels) {
    char path[512];
    uint32_t dims[3] = {n, h, w};
    snprintf(path, sizeof path, "%s/%s-idx3-ubyte%s", dir, stem, gz ? ".gz" : "");
    fx_idx(path, gz, 8, 3, dims, px, (size_t)n * h * w);
    snprintf(path, sizeof path, "%s/%s-idx1-ubyte%s", dir, lstem, gz ? ".gz" : "");
    fx_idx(path, gz, 8, 1, &nl, labels, nl);
}

// The hand-worked example of docs/CONVENTIONS.md, data (2x2 images): 4 training images with labels
// 0,1,2,0 and 2 test images with labels 1,3. Feature 1 is constant; with --classes 2
// the label-2 image is dropped only after standardizing.
static const unsigned char fx_hand_train[4 * 4] = {
    0, 51, 0, 255,    //
    255, 51, 0, 0,    //
    255, 51, 0, 0,    // label 2
    0, 51, 255, 0,
};
static const unsigned char fx_hand_train_y[4] = {0, 1, 2, 0};
static const unsigned char fx_hand_test[2 * 4] = {255, 0, 255, 255, 0, 0, 0, 0};
static const unsigned char fx_hand_test_y[2] = {1, 3};

static inline void fx_hand_dir(const char *dir, int gz) {
    fx_idx_pair(dir, "train-images", "train-labels", gz, 4, 2, 2, fx_hand_train, 4, fx_hand_train_y);
    fx_idx_pair(dir, "t10k-images", "t10k-labels", gz, 2, 2, 2, fx_hand_test, 2, fx_hand_test_y);
}

// Pixel p of CIFAR record r: a pattern that makes every byte position distinguishable.
static inline unsigned char fx_cifar_px(long r, long p) { return (unsigned char)((r * 7 + p * 13 + p / 256) % 256); }

// A CIFAR batch of n records; record r has label labels[r] (or r % 10 if labels is NULL)
// and `extra` stray bytes are appended.
static inline void fx_cifar(const char *path, long n, long first, const unsigned char *labels, size_t extra) {
    size_t len = (size_t)n * 3073 + extra;
    unsigned char *b = calloc(len ? len : 1, 1);
    if (!b) fail_msg("out of memory");
    for (long r = 0; r < n; r++) {
        unsigned char *rec = b + (size_t)r * 3073;
        rec[0] = labels ? labels[r] : (unsigned char)((first + r) % 10);
        for (long p = 0; p < 3072; p++) rec[1 + p] = fx_cifar_px(first + r, p);
    }
    fx_write(path, 0, b, len);
    free(b);
}

// A CIFAR directory: 5 training batches of `per` records and a test batch of `per`.
static inline void fx_cifar_dir(const char *dir, long per) {
    char path[512];
    for (int b = 0; b < 5; b++) {
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, b + 1);
        fx_cifar(path, per, b * per, NULL, 0);
    }
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    fx_cifar(path, per, 5 * per, NULL, 0);
}

// XOR one byte of a file at `offset` (negative: from the end).
static inline void fx_flip(const char *path, long offset) {
    FILE *f = fopen(path, "r+b");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, offset, offset < 0 ? SEEK_END : SEEK_SET);
    int c = fgetc(f);
    fseek(f, -1, SEEK_CUR);
    fputc(c ^ 0xff, f);
    fclose(f);
}

// Cut a file to `len` bytes.
static inline void fx_cut(const char *path, long len) {
    if (truncate(path, len) != 0) fail_msg("cannot truncate %s", path);
}

static inline int fx_fashion_present(void) {
    return access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) == 0 &&
           access("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz", R_OK) == 0;
}
#endif
