// fuzz.h — shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c; docs/FUZZING.md).
// Harnesses that read files write the input into a private temporary folder first; none
// starts a process.
#ifndef NORMSHARP_FUZZ_H
#define NORMSHARP_FUZZ_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "normsharp/common.h"

// This process's temporary folder (made once, under $TMPDIR or /tmp).
static const char *fz_dir(void) {
    static char dir[256];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/normsharp-fuzz.XXXXXX", t ? t : "/tmp");
        if (!mkdtemp(dir)) abort();
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
