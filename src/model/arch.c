// arch.c — architecture strings (docs/CONVENTIONS.md, architectures), case-sensitive:
//   fc-ACT-W1-W2-...                    fully connected, hidden widths W1, W2, ... (none: a
//                                       linear model)
//   cnn-ACT-C1-C2-...[-avgpool|-maxpool] 3x3 convolutions with C1, C2, ... channels, each
//                                       followed by ACT and a 2x2 pool (average pooling
//                                       unless -maxpool is given), then a linear head
// ACT is one of relu, tanh, elu, softplus, gelu, linear.
#include <string.h>
#include "layers.h"
#include "normsharp/model.h"

#define ARCH_FORMS "fc-ACT-W1-W2-... or cnn-ACT-C1-C2-...[-avgpool|-maxpool]"

// A whole-number field in [1, most]; 0 if it is not one.
static int parse_width(const char *t, int most) {
    long v = 0;
    if (!*t) return 0;
    for (; *t; t++) {
        if (*t < '0' || *t > '9') return 0;
        v = v * 10 + (*t - '0');
        if (v > most) return 0;
    }
    return (int)v;
}

int ns_arch_parse(const char *s, ns_arch *out) {
    if (!s || !*s)
        return ns_fail(NS_EINVAL, "the architecture string is empty: expected %s", ARCH_FORMS);
    size_t len = strlen(s);
    if (len >= sizeof ((ns_model_config *)0)->arch)
        return ns_fail(NS_EINVAL, "the architecture string is %zu characters long; at most %zu",
                       len, sizeof ((ns_model_config *)0)->arch - 1);
    char buf[sizeof ((ns_model_config *)0)->arch];
    memcpy(buf, s, len + 1);
    // Split at every '-', keeping empty fields so that "fc-tanh--10" is caught.
    char *field[2 + NS_MAX_HIDDEN + 2];
    int nf = 0;
    for (char *p = buf;;) {
        if (nf == (int)(sizeof field / sizeof *field))
            return ns_fail(NS_EINVAL, "architecture '%s' has more than %d hidden layers",
                           s, NS_MAX_HIDDEN);
        field[nf++] = p;
        char *dash = strchr(p, '-');
        if (!dash) break;
        *dash = 0;
        p = dash + 1;
    }
    for (int i = 0; i < nf; i++)
        if (!*field[i])
            return ns_fail(NS_EINVAL, "architecture '%s' has an empty field (a dash at an end or "
                           "two in a row): expected %s", s, ARCH_FORMS);

    ns_arch a;
    memset(&a, 0, sizeof a);
    if (strcmp(field[0], "fc") == 0)
        a.cnn = 0;
    else if (strcmp(field[0], "cnn") == 0)
        a.cnn = 1;
    else
        return ns_fail(NS_EINVAL, "unknown architecture '%s': expected %s", s, ARCH_FORMS);
    if (nf < 2)
        return ns_fail(NS_EINVAL, "architecture '%s' names no activation: expected %s, with ACT "
                       "one of %s", s, ARCH_FORMS, NS_ACT_NAMES);
    if (ns_act_parse(field[1], &a.act) != 0)
        return ns_fail(NS_EINVAL, "unknown activation '%s' in architecture '%s': expected %s",
                       field[1], s, NS_ACT_NAMES);

    int last = nf;  // one past the last width field
    a.pool = NS_POOL_AVG;
    if (strcmp(field[nf - 1], "avgpool") == 0 || strcmp(field[nf - 1], "maxpool") == 0) {
        if (!a.cnn)
            return ns_fail(NS_EINVAL, "architecture '%s': -%s applies only to cnn "
                           "architectures", s, field[nf - 1]);
        a.pool = field[nf - 1][0] == 'm' ? NS_POOL_MAX : NS_POOL_AVG;
        last = nf - 1;
    }
    int most = a.cnn ? NS_MAX_CHANNELS : NS_MAX_WIDTH;
    for (int i = 2; i < last; i++) {
        if (a.nhidden == NS_MAX_HIDDEN)
            return ns_fail(NS_EINVAL, "architecture '%s' has more than %d hidden layers",
                           s, NS_MAX_HIDDEN);
        int v = parse_width(field[i], most);
        if (!v)
            return ns_fail(NS_EINVAL, "%s '%s' in architecture '%s' is not a whole number "
                           "from 1 to %d", a.cnn ? "channel count" : "width", field[i], s, most);
        a.width[a.nhidden++] = v;
    }
    if (a.cnn && a.nhidden == 0)
        return ns_fail(NS_EINVAL, "architecture '%s' has no convolution: give at least one "
                       "channel count, e.g. cnn-%s-32-32", s, field[1]);
    *out = a;
    return 0;
}

int ns_arch_check(const char *arch) {
    ns_arch a;
    return ns_arch_parse(arch, &a);
}
