/* zoo — builders for the lecture CNN, AlexNet, VGG and ResNet, following the
 * module layouts of torchvision so that state_dict keys and layer names match. */
#include "engine/zoo/zoo.h"

#include <stdio.h>
#include <string.h>

static const char *const archs[] = {
    "fashion",  "alexnet", "vgg11",    "vgg11_bn", "vgg13",    "vgg13_bn", "vgg16",
    "vgg16_bn", "vgg19",   "vgg19_bn", "resnet18", "resnet34", "resnet50", NULL,
};

const char *const *zoo_archs(void)
{
    return archs;
}

static net *build_fashion(net *m)
{
    int x = net_add_conv(m, "conv1", NET_INPUT, 1, 25, 3, 1, 0, 1);
    x = net_add_maxpool(m, "pool1", x, 2, 2, 0);
    x = net_add_conv(m, "conv2", x, 25, 50, 3, 1, 0, 1);
    x = net_add_maxpool(m, "pool2", x, 2, 2, 0);
    x = net_add_flatten(m, "flatten", x);
    x = net_add_linear(m, "dense1", x, 1250, 100, 1);
    x = net_add_relu(m, "relu", x);
    net_add_linear(m, "output", x, 100, 10, 1);
    return m;
}

static net *build_alexnet(net *m)
{
    int x = net_add_conv(m, "features.0", NET_INPUT, 3, 64, 11, 4, 2, 1);
    x = net_add_relu(m, "features.1", x);
    x = net_add_maxpool(m, "features.2", x, 3, 2, 0);
    x = net_add_conv(m, "features.3", x, 64, 192, 5, 1, 2, 1);
    x = net_add_relu(m, "features.4", x);
    x = net_add_maxpool(m, "features.5", x, 3, 2, 0);
    x = net_add_conv(m, "features.6", x, 192, 384, 3, 1, 1, 1);
    x = net_add_relu(m, "features.7", x);
    x = net_add_conv(m, "features.8", x, 384, 256, 3, 1, 1, 1);
    x = net_add_relu(m, "features.9", x);
    x = net_add_conv(m, "features.10", x, 256, 256, 3, 1, 1, 1);
    x = net_add_relu(m, "features.11", x);
    x = net_add_maxpool(m, "features.12", x, 3, 2, 0);
    x = net_add_adaptive_avgpool(m, "avgpool", x, 6, 6);
    x = net_add_flatten(m, "flatten", x);
    x = net_add_dropout(m, "classifier.0", x);
    x = net_add_linear(m, "classifier.1", x, 9216, 4096, 1);
    x = net_add_relu(m, "classifier.2", x);
    x = net_add_dropout(m, "classifier.3", x);
    x = net_add_linear(m, "classifier.4", x, 4096, 4096, 1);
    x = net_add_relu(m, "classifier.5", x);
    net_add_linear(m, "classifier.6", x, 4096, 1000, 1);
    return m;
}

/* torchvision's VGG configurations: channel counts, 0 for a max pool. */
static const int vgg_cfg[4][22] = {
    {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0, -1},
    {64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0, -1},
    {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0, -1},
    {64,  64,  0,   128, 128, 0,   256, 256, 256, 256, 0,
     512, 512, 512, 512, 0,   512, 512, 512, 512, 0,   -1},
};

static net *build_vgg(net *m, int cfg, int bn)
{
    char name[32];
    int x = NET_INPUT, idx = 0, cin = 3;
    for (const int *c = vgg_cfg[cfg]; *c >= 0; c++) {
        snprintf(name, sizeof name, "features.%d", idx++);
        if (*c == 0) {
            x = net_add_maxpool(m, name, x, 2, 2, 0);
            continue;
        }
        x = net_add_conv(m, name, x, cin, *c, 3, 1, 1, 1);
        if (bn) {
            snprintf(name, sizeof name, "features.%d", idx++);
            net_add_bn(m, name, x);
        }
        snprintf(name, sizeof name, "features.%d", idx++);
        x = net_add_relu(m, name, x);
        cin = *c;
    }
    x = net_add_adaptive_avgpool(m, "avgpool", x, 7, 7);
    x = net_add_flatten(m, "flatten", x);
    x = net_add_linear(m, "classifier.0", x, 25088, 4096, 1);
    x = net_add_relu(m, "classifier.1", x);
    x = net_add_dropout(m, "classifier.2", x);
    x = net_add_linear(m, "classifier.3", x, 4096, 4096, 1);
    x = net_add_relu(m, "classifier.4", x);
    x = net_add_dropout(m, "classifier.5", x);
    net_add_linear(m, "classifier.6", x, 4096, 1000, 1);
    return m;
}

/* A conv followed by its folded batch norm: "P.convK" + "P.bnK". */
static int conv_bn(net *m, const char *p, int k, int x, int cin, int cout, int ks, int stride,
                   int pad)
{
    char cn[64], bn[64];
    snprintf(cn, sizeof cn, "%s.conv%d", p, k);
    snprintf(bn, sizeof bn, "%s.bn%d", p, k);
    x = net_add_conv(m, cn, x, cin, cout, ks, stride, pad, 0);
    net_add_bn(m, bn, x);
    return x;
}

static int relu_n(net *m, const char *p, int k, int x)
{
    char name[64];
    snprintf(name, sizeof name, "%s.relu%d", p, k);
    return net_add_relu(m, name, x);
}

/* Adds the shortcut and the block's final ReLU, named after the block. */
static int block_end(net *m, const char *p, int x, int shortcut, int cin, int cout, int stride)
{
    char name[64];
    if (stride != 1 || cin != cout) {
        snprintf(name, sizeof name, "%s.downsample.0", p);
        shortcut = net_add_conv(m, name, shortcut, cin, cout, 1, stride, 0, 0);
        snprintf(name, sizeof name, "%s.downsample.1", p);
        net_add_bn(m, name, shortcut);
        snprintf(name, sizeof name, "%s.downsample", p);
        net_alias(m, name, shortcut);
    }
    snprintf(name, sizeof name, "%s.add", p);
    x = net_add_add(m, name, x, shortcut);
    x = net_add_relu(m, p, x);
    snprintf(name, sizeof name, "%s.relu", p);
    net_alias(m, name, x);
    return x;
}

static int basic_block(net *m, const char *p, int x, int cin, int planes, int stride)
{
    int y = conv_bn(m, p, 1, x, cin, planes, 3, stride, 1);
    y = relu_n(m, p, 1, y);
    y = conv_bn(m, p, 2, y, planes, planes, 3, 1, 1);
    return block_end(m, p, y, x, cin, planes, stride);
}

static int bottleneck(net *m, const char *p, int x, int cin, int planes, int stride)
{
    int y = conv_bn(m, p, 1, x, cin, planes, 1, 1, 0);
    y = relu_n(m, p, 1, y);
    y = conv_bn(m, p, 2, y, planes, planes, 3, stride, 1);
    y = relu_n(m, p, 2, y);
    y = conv_bn(m, p, 3, y, planes, 4 * planes, 1, 1, 0);
    return block_end(m, p, y, x, cin, 4 * planes, stride);
}

static net *build_resnet(net *m, const int blocks[4], int bottle)
{
    int x = net_add_conv(m, "conv1", NET_INPUT, 3, 64, 7, 2, 3, 0);
    net_add_bn(m, "bn1", x);
    x = net_add_relu(m, "relu", x);
    x = net_add_maxpool(m, "maxpool", x, 3, 2, 1);
    int cin = 64, expansion = bottle ? 4 : 1;
    for (int l = 0; l < 4; l++) {
        char p[32];
        int planes = 64 << l;
        for (int b = 0; b < blocks[l]; b++) {
            snprintf(p, sizeof p, "layer%d.%d", l + 1, b);
            int stride = l > 0 && b == 0 ? 2 : 1;
            x = bottle ? bottleneck(m, p, x, cin, planes, stride)
                       : basic_block(m, p, x, cin, planes, stride);
            cin = planes * expansion;
        }
        snprintf(p, sizeof p, "layer%d", l + 1);
        net_alias(m, p, x);
    }
    x = net_add_adaptive_avgpool(m, "avgpool", x, 1, 1);
    x = net_add_flatten(m, "flatten", x);
    net_add_linear(m, "fc", x, cin, 1000, 1);
    return m;
}

static net *build(net *m, const char *arch)
{
    static const int r18[4] = {2, 2, 2, 2}, r34[4] = {3, 4, 6, 3};
    if (!strcmp(arch, "fashion")) return build_fashion(m);
    if (!strcmp(arch, "alexnet")) return build_alexnet(m);
    if (!strncmp(arch, "vgg", 3)) {
        int depth = arch[3] == '1' ? 10 + arch[4] - '0' : 0;
        int cfg = depth == 11 ? 0 : depth == 13 ? 1 : depth == 16 ? 2 : 3;
        return build_vgg(m, cfg, strstr(arch, "_bn") != NULL);
    }
    if (!strcmp(arch, "resnet18")) return build_resnet(m, r18, 0);
    if (!strcmp(arch, "resnet34")) return build_resnet(m, r34, 0);
    return build_resnet(m, r34, 1); /* resnet50 */
}

static int lev(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int row[32];
    if (la > 30 || lb > 30) return 99;
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best, diag = up;
        }
    }
    return row[lb];
}

net *zoo_build_seeded(const char *arch, uint64_t seed, cl_err *err)
{
    int known = 0;
    for (int i = 0; archs[i] && !known; i++) known = !strcmp(archs[i], arch);
    if (!known) {
        const char *best = archs[0];
        for (int i = 1; archs[i]; i++)
            if (lev(arch, archs[i]) < lev(arch, best)) best = archs[i];
        cl_err_set(err, CL_ENAME, "unknown model '%s' — did you mean '%s'?", arch, best);
        return NULL;
    }
    int fashion = !strcmp(arch, "fashion");
    net *m = net_new(arch, fashion ? 1 : 3, fashion ? 28 : 224, fashion ? 28 : 224,
                     fashion ? 10 : 1000, err);
    if (!m) return NULL;
    if (net_finish(build(m, arch), seed, err)) {
        net_free(m);
        return NULL;
    }
    return m;
}

net *zoo_build(const char *arch, cl_err *err)
{
    return zoo_build_seeded(arch, 0, err);
}
