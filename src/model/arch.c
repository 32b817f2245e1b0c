// arch.c — architecture strings (docs/CONVENTIONS.md, architectures), case-sensitive:
//   fc-ACT-W1-W2-...                    fully connected, hidden widths W1, W2, ... (none: a
//                                       linear model)
//   cnn-ACT-C1-C2-...[-avgpool|-maxpool] 3x3 convolutions with C1, C2, ... channels, each
//                                       followed by ACT and a 2x2 pool (average pooling
//                                       unless -maxpool is given), then a linear head
//   resnet-ACT-C1-C2-...[-bN][-bn]      a ResNet: a 3x3 stem of C1 channels, then one stage
//                                       per C_i of N residual blocks (default 1) of two 3x3
//                                       convolutions, 2x2 average pooling between stages,
//                                       global average pooling and a linear head; -bn puts
//                                       batch norm after every convolution
//   vit-PP-DD-LL-HH                     a ViT: P x P patches, width D, L pre-LayerNorm blocks
//                                       of H-head self-attention and a GELU MLP (ratio 4)
// ACT is one of relu, tanh, elu, softplus, gelu, linear. docs/ARCHITECTURES.md gives the
// layers and the equivalent PyTorch modules.
#include <string.h>
#include "layers.h"
#include "normsharp/model.h"

#define ARCH_FORMS "fc-ACT-W1-W2-..., cnn-ACT-C1-C2-...[-avgpool|-maxpool], " \
                   "resnet-ACT-C1-C2-...[-bN][-bn] or vit-PP-DD-LL-HH (e.g. vit-P7-D64-L2-H4)"

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

// vit-PP-DD-LL-HH: the four fields, each a letter and a whole number, in this order.
static int parse_vit(const char *s, char **field, int nf, ns_arch *a) {
    static const char letters[4] = {'P', 'D', 'L', 'H'};
    static const char *const what[4] = {"patch size", "width", "depth", "head count"};
    static const int most[4] = {1024, NS_MAX_CHANNELS, NS_MAX_BLOCKS, 1024};
    int v[4];
    if (nf != 5)
        return ns_fail(NS_EINVAL, "architecture '%s' is not of the form vit-PP-DD-LL-HH (patch "
                       "size, width, depth, heads), e.g. vit-P7-D64-L2-H4", s);
    for (int i = 0; i < 4; i++) {
        const char *f = field[i + 1];
        if (f[0] != letters[i] || !(v[i] = parse_width(f + 1, most[i])))
            return ns_fail(NS_EINVAL, "field %d of architecture '%s' must be the %s as %c "
                           "followed by a whole number from 1 to %d, got '%s'", i + 2, s,
                           what[i], letters[i], most[i], f);
    }
    if (v[1] % v[3])
        return ns_fail(NS_EINVAL, "architecture '%s': %d heads do not divide the width %d", s,
                       v[3], v[1]);
    a->family = NS_NET_VIT;
    a->act = NS_ACT_GELU;
    a->patch = v[0], a->dim = v[1], a->blocks = v[2], a->heads = v[3];
    return 0;
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
        a.family = NS_NET_FC;
    else if (strcmp(field[0], "cnn") == 0)
        a.family = NS_NET_CNN;
    else if (strcmp(field[0], "resnet") == 0)
        a.family = NS_NET_RESNET;
    else if (strcmp(field[0], "vit") == 0) {
        int rc = parse_vit(s, field, nf, &a);
        if (!rc) *out = a;
        return rc;
    } else
        return ns_fail(NS_EINVAL, "unknown architecture '%s': expected %s", s, ARCH_FORMS);
    int conv = a.family != NS_NET_FC;
    if (nf < 2)
        return ns_fail(NS_EINVAL, "architecture '%s' names no activation: expected %s, with ACT "
                       "one of %s", s, ARCH_FORMS, NS_ACT_NAMES);
    if (ns_act_parse(field[1], &a.act) != 0)
        return ns_fail(NS_EINVAL, "unknown activation '%s' in architecture '%s': expected %s",
                       field[1], s, NS_ACT_NAMES);

    int last = nf;  // one past the last width field
    a.pool = NS_POOL_AVG;
    if (a.family == NS_NET_RESNET) {
        a.blocks = 1;
        int seen_b = 0;
        // trailing options -bN and -bn, in either order, each at most once
        while (last > 2 && field[last - 1][0] == 'b') {
            const char *f = field[last - 1];
            if (strcmp(f, "bn") == 0 && !a.bn) {
                a.bn = 1;
            } else if (f[1] >= '0' && f[1] <= '9' && !seen_b) {
                if (!(a.blocks = parse_width(f + 1, NS_MAX_BLOCKS)))
                    return ns_fail(NS_EINVAL, "architecture '%s': the blocks per stage '%s' must "
                                   "be b followed by a whole number from 1 to %d", s, f,
                                   NS_MAX_BLOCKS);
                seen_b = 1;
            } else {
                break;
            }
            last--;
        }
    }
    if (strcmp(field[nf - 1], "avgpool") == 0 || strcmp(field[nf - 1], "maxpool") == 0) {
        if (a.family != NS_NET_CNN)
            return ns_fail(NS_EINVAL, "architecture '%s': -%s applies only to cnn "
                           "architectures", s, field[nf - 1]);
        a.pool = field[nf - 1][0] == 'm' ? NS_POOL_MAX : NS_POOL_AVG;
        last = nf - 1;
    }
    int most = conv ? NS_MAX_CHANNELS : NS_MAX_WIDTH;
    for (int i = 2; i < last; i++) {
        if (a.nhidden == NS_MAX_HIDDEN)
            return ns_fail(NS_EINVAL, "architecture '%s' has more than %d hidden layers",
                           s, NS_MAX_HIDDEN);
        int v = parse_width(field[i], most);
        if (!v)
            return ns_fail(NS_EINVAL, "%s '%s' in architecture '%s' is not a whole number "
                           "from 1 to %d", conv ? "channel count" : "width", field[i], s, most);
        a.width[a.nhidden++] = v;
    }
    if (conv && a.nhidden == 0)
        return ns_fail(NS_EINVAL, "architecture '%s' has no convolution: give at least one "
                       "channel count, e.g. %s-%s-32-32", s, field[0], field[1]);
    *out = a;
    return 0;
}

int ns_arch_check(const char *arch) {
    ns_arch a;
    return ns_arch_parse(arch, &a);
}
