// fuzz.h — shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c; docs/FUZZING.md).
// Harnesses that read files write the input into one private temporary folder, made once
// per process in memory (/dev/shm) where the system has it; none starts a process.
#ifndef NORMSHARP_FUZZ_H
#define NORMSHARP_FUZZ_H
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "normsharp/common.h"

// The harnesses' writes need not survive a power loss: fsync (which the library calls on
// every file it writes and on the file's folder) returns at once. On a disk it cost up to
// 0.3 s per execution of fuzz_report, and a timeout when the disk was busy.
int fsync(int fd) {
    (void)fd;
    return 0;
}

// This process's temporary folder, made once: under $FUZZ_TMPDIR if set, else /dev/shm (a
// file system in memory: rewriting a file on a disk cost ~3 ms per execution, the flush
// ext4 makes when a truncated file is closed), else $TMPDIR or /tmp.
static char fz_dir_path[256];

static int fz_remove(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

// Removes path and, for a folder, everything in it (links are removed, not followed).
static void fz_rmtree(const char *path) { nftw(path, fz_remove, 16, FTW_DEPTH | FTW_PHYS); }

// Removes the folder when the fuzzer exits (it stays after a crash, with the input).
static void fz_cleanup(void) { fz_rmtree(fz_dir_path); }

static const char *fz_dir(void) {
    char *dir = fz_dir_path;
    if (!dir[0]) {
        const char *t = getenv("FUZZ_TMPDIR");
        if (!t && access("/dev/shm", W_OK) == 0) t = "/dev/shm";
        if (!t) t = getenv("TMPDIR");
        snprintf(dir, sizeof fz_dir_path, "%s/normsharp-fuzz.XXXXXX", t ? t : "/tmp");
        if (!mkdtemp(dir)) abort();
        atexit(fz_cleanup);
    }
    return dir;
}

// Writes len bytes to DIR/rel (creating folders) and returns the path (static buffer per slot).
static const char *fz_put(int slot, const char *rel, const uint8_t *data, size_t len) {
    static char path[8][4096];
    snprintf(path[slot], sizeof path[slot], "%s/%s", fz_dir(), rel);
    FILE *f = fopen(path[slot], "wb");
    if (!f) {  // the first time: make its folder
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path[slot]);
        *strrchr(dir, '/') = 0;
        if (ns_mkdirs(dir) || !(f = fopen(path[slot], "wb"))) abort();
    }
    if (len && fwrite(data, 1, len, f) != len) abort();
    fclose(f);
    return path[slot];
}

// The input cut at the first NUL (and bounded) as a C string; free() it.
static char *fz_str(const uint8_t *data, size_t len, size_t most) {
    size_t n = 0;
    while (n < len && n < most && data[n]) n++;
    char *s = malloc(n + 1);
    memcpy(s, data, n);
    s[n] = 0;
    return s;
}

// Splits the input at the separator "\n----\n" into at most `most` parts (pointers into
// data, lengths in len); returns how many.
static int fz_split(const uint8_t *data, size_t size, const uint8_t **part, size_t *len, int most) {
    int n = 0;
    const uint8_t *p = data, *end = data + size;
    while (n < most) {
        const uint8_t *q = p;
        while (q + 6 <= end && memcmp(q, "\n----\n", 6)) q++;
        if (q + 6 > end) q = end;
        part[n] = p;
        len[n++] = (size_t)(q - p);
        if (q == end) break;
        p = q + 6;
    }
    return n;
}
#endif
