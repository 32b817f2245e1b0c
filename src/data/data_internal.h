// data_internal.h — helpers shared by the readers in src/data (not part of the public API).
#ifndef NORMSHARP_DATA_INTERNAL_H
#define NORMSHARP_DATA_INTERNAL_H
#include "normsharp/data.h"

// The number of classes of every image dataset normsharp reads (digits, garments, CIFAR).
#define NS_DATA_CLASSES 10

// Read a whole file, raw or gzip (zlib detects which), into *data (ns_malloc'd, *len bytes).
// A gzip stream that is damaged fails with "corrupt gzip stream in PATH"; one that ends
// early is returned with *cut = 1 so the caller can say what is missing.
// `limit` (may be NULL: no limit) bounds what is inflated: given the bytes read so far it
// returns how many the file may need at most (SIZE_MAX: not known yet); reading stops
// there, so a small gzip bomb cannot inflate gigabytes before the size check.
int ns_read_all_gz(const char *path, unsigned char **data, size_t *len, int *cut,
                   size_t (*limit)(const unsigned char *data, size_t len));
#endif
