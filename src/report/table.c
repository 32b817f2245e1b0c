// CSV tables as the writers of docs/OUTPUTS.md produce them: a header line, then rows of
// comma-separated cells without quoting; empty cells mean "not measured".
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/report.h"

static int count_cells(const char *line) {
    int n = 1;
    for (; *line; line++) n += *line == ',';
    return n;
}

// Splits `line` in place at commas into cells (room for count_cells(line) of them).
static void split_cells(char *line, char **cells) {
    for (int n = 0;; n++) {
        cells[n] = line;
        line = strchr(line, ',');
        if (!line) break;
        *line++ = 0;
    }
}

int ns_table_read(const char *path, ns_table *t) {
    memset(t, 0, sizeof *t);
    size_t len;
    int rc = ns_read_file(path, &t->text, &len);
    if (rc) return rc;
    if (strlen(t->text) != len) {
        ns_table_free(t);
        return ns_fail(NS_EFORMAT, "'%s' is not a CSV file: it contains a NUL byte", path);
    }
    // Count lines to bound the row array.
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += t->text[i] == '\n';
    char *line = t->text, *next;
    int lineno = 0;
    for (; line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[--l] = 0;
        if (l == 0) continue;  // blank lines (the trailing newline) carry nothing
        if (!t->head) {
            int n = count_cells(line);
            t->head = ns_calloc((size_t)n, sizeof *t->head);
            t->cell = t->head ? ns_calloc(lines, (size_t)n * sizeof *t->cell) : NULL;
            if (!t->cell) {
                ns_table_free(t);
                return NS_ENOMEM;
            }
            split_cells(line, t->head);
            t->ncol = n;
            continue;
        }
        int n = count_cells(line);
        if (n != t->ncol) {
            int ncol = t->ncol;
            ns_table_free(t);
            return ns_fail(NS_EFORMAT, "'%s' line %d has %d cells but its header has %d", path, lineno, n, ncol);
        }
        split_cells(line, t->cell + (size_t)t->nrow * (size_t)t->ncol);
        t->nrow++;
    }
    if (!t->head) {
        ns_table_free(t);
        return ns_fail(NS_EFORMAT, "'%s' is empty: it has no header line", path);
    }
    return 0;
}

int ns_table_col(const ns_table *t, const char *name) {
    for (int c = 0; c < t->ncol; c++)
        if (!strcmp(t->head[c], name)) return c;
    return -1;
}

const char *ns_table_str(const ns_table *t, int row, int col) {
    if (col < 0 || col >= t->ncol || row < 0 || row >= t->nrow) return "";
    return t->cell[(size_t)row * (size_t)t->ncol + (size_t)col];
}

double ns_table_num(const ns_table *t, int row, int col) {
    const char *s = ns_table_str(t, row, col);
    while (*s == ' ') s++;
    if (!*s) return NAN;
    char *end;
    double x = strtod(s, &end);
    while (*end == ' ') end++;
    return *end ? NAN : x;
}

void ns_table_free(ns_table *t) {
    free(t->head);
    free(t->cell);
    free(t->text);
    memset(t, 0, sizeof *t);
}
