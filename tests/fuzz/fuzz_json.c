// The JSON reader (model.json, summary.json, theory.json, the sweep's resume check all
// read through it), with the accessors the readers use.
#include <math.h>
#include "fuzz.h"

static void walk(const ns_jval *v, int depth) {
    if (depth > 70) abort();  // the reader bounds nesting
    if (v->type == NS_JOBJ || v->type == NS_JARR)
        for (int i = 0; i < v->n; i++) {
            if (v->type == NS_JOBJ && !v->keys[i]) abort();
            walk(&v->items[i], depth + 1);
        }
    if (v->type == NS_JSTR && !v->str) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ns_jval v;
    if (ns_json_parse((const char *)data, size, "fuzz.json", &v) == 0) {
        walk(&v, 0);
        (void)ns_jnum(&v, "seed", NAN);
        (void)ns_jstr(ns_jget(&v, "config"), "arch", "");
        ns_jval_free(&v);
    }
    return 0;
}
