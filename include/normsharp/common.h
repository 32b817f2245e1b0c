// normsharp/common.h — what every part shares: the number type, errors, checked
// allocation, strict number parsing, small JSON/CSV writing, atomic files.
#ifndef NORMSHARP_COMMON_H
#define NORMSHARP_COMMON_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NS_VERSION "0.1.0"

// Network math precision. float32 by default (as PyTorch); `make PRECISION=double`
// defines NS_DOUBLE. Reductions (loss sums, norms, Lanczos dot products) always use double.
#ifdef NS_DOUBLE
typedef double real;
#define NS_REAL_NAME "float64"
#else
typedef float real;
#define NS_REAL_NAME "float32"
#endif

// The library and every program that includes this header must agree on `real`. The
// library defines one symbol, ns_precision_float32 or ns_precision_float64; each translation
// unit that includes this header references the one of its own precision. A program built
// for the other precision therefore fails to link ("undefined reference to
// `ns_precision_float64'") or, against a swapped shared library, to start. pkg-config's
// normsharp.pc adds -DNS_DOUBLE=1 for a double library.
#ifdef NS_DOUBLE
extern const int ns_precision_float64;
static const int *const ns_precision_check_ __attribute__((used)) = &ns_precision_float64;
#else
extern const int ns_precision_float32;
static const int *const ns_precision_check_ __attribute__((used)) = &ns_precision_float32;
#endif

// ---- errors -------------------------------------------------------------------------
// Library functions return 0 on success or a negative NS_E* code, and leave one readable
// sentence in a thread-local buffer (ns_errmsg). They never exit. Only the CLI exits.
// The sentence is written for the person at the command line: where an option struct's
// field comes from a command-line option, the message names the option as typed there
// (`--momentum`, `--loss-goal`), since that is what the user can change. A program that
// calls the library fills the field of the same name (momentum, loss_goal).
enum {
    NS_OK = 0,
    NS_EINVAL = -1,   // bad argument or option value (CLI exit status 2)
    NS_EIO = -2,      // cannot open/read/write a file or directory
    NS_EFORMAT = -3,  // a file exists but its contents are malformed
    NS_ENOMEM = -4,   // allocation failed
    NS_ESOLVER = -5,  // an external solver (GLPK, DSDP, LAPACK) failed
};
// Sets the message (printf-style) and returns `code`, so: `return ns_fail(NS_EIO, "...")`.
int ns_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *ns_errmsg(void);
void ns_clear_error(void);

// ---- memory --------------------------------------------------------------------------
// Checked allocation: on failure set the error message and return NULL.
void *ns_malloc(size_t size);
void *ns_calloc(size_t count, size_t size);           // overflow-checked
void *ns_realloc(void *p, size_t size);
char *ns_strdup(const char *s);

// ---- strict parsing (for options and files) ------------------------------------------
// Whole string must be a finite number in [lo, hi]; `what` names it in the message,
// e.g. "--lr". Return 0 or NS_EINVAL with a sentence like
// "--lr expects a finite number, got 'abc'".
int ns_parse_double(const char *s, double lo, double hi, const char *what, double *out);
int ns_parse_long(const char *s, long lo, long hi, const char *what, long *out);
int ns_parse_int(const char *s, int lo, int hi, const char *what, int *out);
int ns_parse_u64(const char *s, const char *what, uint64_t *out);
// A list "a,b,c" or a log-spaced range "A:B:K" (K points from A to B inclusive, A,B>0).
// Values must be finite and > 0 when positive != 0. *out is ns_malloc'd.
int ns_parse_grid(const char *s, int positive, const char *what, double **out, int *count);
// A list "0,1,2" of distinct seeds (non-negative integers below 2^64) into *out (ns_malloc'd,
// *count entries, in the order given). NS_EINVAL naming `what` for an empty or overlong
// item, a value that is not such an integer, or a seed listed twice; NS_ENOMEM.
int ns_parse_seeds(const char *s, const char *what, uint64_t **out, int *count);

// ---- growing string buffer -----------------------------------------------------------
typedef struct {
    char *data;
    size_t len, cap;
    int oom;  // set if an allocation failed; later appends are ignored
} ns_buf;
void ns_buf_printf(ns_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ns_buf_append(ns_buf *b, const char *s, size_t n);
void ns_buf_free(ns_buf *b);

// Shortest text that reads back to exactly the same double ("%.17g", trimmed).
// Non-finite values are written as JSON null / CSV "nan"/"inf" by the writers below.
void ns_fmt_double(char out[32], double x);
// One CSV cell of every table normsharp writes (trajectories, sweep.csv, flow.csv, dln.csv):
// a comma, then x as ns_fmt_double writes it ("nan", "inf" included) if it was measured,
// else nothing: an empty cell means "not measured".
void ns_csv_cell(ns_buf *b, double x, int measured);
// The cell of a value read back from summary.json, where null (NaN) means "not measured".
void ns_csv_value(ns_buf *b, double x);

// ---- JSON writer ---------------------------------------------------------------------
// Pretty enough, deterministic. Usage:
//   ns_json j; ns_json_begin(&j, &buf); ns_json_obj(&j, NULL);
//   ns_json_num(&j, "eta", 0.1); ns_json_str(&j, "status", "converged");
//   ns_json_arr(&j, "top_k"); ns_json_num(&j, NULL, 3.0); ns_json_end(&j); ns_json_end(&j);
typedef struct {
    ns_buf *b;
    int depth;
    int first[32];
    char kind[32];  // '{' or '['
} ns_json;
void ns_json_begin(ns_json *j, ns_buf *b);
void ns_json_obj(ns_json *j, const char *key);
void ns_json_arr(ns_json *j, const char *key);
void ns_json_end(ns_json *j);  // closes the innermost object/array
void ns_json_num(ns_json *j, const char *key, double x);  // non-finite -> null
void ns_json_int(ns_json *j, const char *key, long long x);
// An unsigned 64-bit integer (a seed): a JSON number below 2^53, where every JSON reader
// holds it exactly in a double; its decimal digits as a string from 2^53 on. ns_jget_u64
// reads both forms.
#define NS_JSON_EXACT_MAX (UINT64_C(1) << 53)
void ns_json_u64(ns_json *j, const char *key, uint64_t x);
void ns_json_bool(ns_json *j, const char *key, int x);
void ns_json_str(ns_json *j, const char *key, const char *s);
void ns_json_null(ns_json *j, const char *key);
// Start a normsharp document into b: the top object, opened with program, version and kind.
void ns_json_doc(ns_json *j, ns_buf *b, const char *kind);

// ---- JSON reader (small DOM, for model.json / summary.json / the report) -------------
typedef enum { NS_JNULL, NS_JBOOL, NS_JNUM, NS_JSTR, NS_JARR, NS_JOBJ } ns_jtype;
typedef struct ns_jval {
    ns_jtype type;
    double num;          // NUM, BOOL (0/1)
    char *str;           // STR
    int n;               // ARR/OBJ: number of children
    char **keys;         // OBJ keys
    struct ns_jval *items;  // ARR/OBJ children
} ns_jval;
// Parse a whole file; `path` is named in the error message on failure.
int ns_json_parse_file(const char *path, ns_jval *out);
int ns_json_parse(const char *text, size_t len, const char *what, ns_jval *out);
void ns_jval_free(ns_jval *v);
const ns_jval *ns_jget(const ns_jval *obj, const char *key);  // NULL if missing
// Convenience getters: return `def` if missing or of another type.
double ns_jnum(const ns_jval *obj, const char *key, double def);
const char *ns_jstr(const ns_jval *obj, const char *key, const char *def);
// An unsigned 64-bit integer written by ns_json_u64 (or any exact integer number): 0, or
// -1 if missing or not a non-negative integer.
int ns_jget_u64(const ns_jval *obj, const char *key, uint64_t *out);

// ---- how a run ended ---------------------------------------------------------------------
// One vocabulary for network and DLN runs, GD and gradient flow: the "status" of
// summary.json and of the CSVs. Divergence is a result, not an error.
typedef enum {
    NS_CONVERGED,  // the training loss reached the loss goal
    NS_ACC_GOAL,   // the training accuracy reached the accuracy goal (networks)
    NS_MAX_STEPS,  // the step limit
    NS_MAX_TIME,   // the flow-time limit (gradient flow)
    NS_DIVERGED    // the loss became non-finite or grew past diverge_factor x the initial loss
} ns_status;
static inline const char *ns_status_name(ns_status s) {
    static const char *const name[] = {"converged", "acc_goal", "max_steps", "max_time", "diverged"};
    return (unsigned)s < sizeof name / sizeof name[0] ? name[s] : "?";
}

// ---- files ---------------------------------------------------------------------------
// mkdir -p. Error names the path and the reason.
int ns_mkdirs(const char *path);
int ns_exists(const char *path);
int ns_is_dir(const char *path);
// Write a whole file atomically: write PATH.tmp.<pid>, fsync, rename onto PATH.
int ns_write_file_atomic(const char *path, const void *data, size_t len);
// Read a whole file (NUL-terminated); *len may be NULL.
int ns_read_file(const char *path, char **data, size_t *len);
// snprintf into a path buffer with a truncation check.
int ns_path(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// ---- time ----------------------------------------------------------------------------
double ns_now(void);  // monotonic seconds

#endif
