/* The zoo: every architecture builds, with torchvision's parameter counts,
 * names and the output shapes of the lecture's layers. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "engine/summary/summary.h"
#include "engine/zoo/zoo.h"

static net *build(const char *arch)
{
    cl_err err = {0};
    net *m = zoo_build(arch, &err);
    cr_assert_not_null(m, "%s: %s", arch, err.msg);
    return m;
}

/* sum(p.numel() for p in torchvision.models.ARCH().parameters()) */
Test(zoo, parameter_counts_match_torchvision)
{
    struct {
        const char *arch;
        int64_t params;
    } cases[] = {
        {"fashion", 137660},     {"alexnet", 61100840},   {"vgg11", 132863336},
        {"vgg11_bn", 132868840}, {"vgg13", 133047848},    {"vgg13_bn", 133053736},
        {"vgg16", 138357544},    {"vgg16_bn", 138365992}, {"vgg19", 143667240},
        {"vgg19_bn", 143678248}, {"resnet18", 11689512},  {"resnet34", 21797672},
        {"resnet50", 25557032},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        net *m = build(cases[i].arch);
        cr_assert_eq(net_param_count(m), cases[i].params, "%s: %lld", cases[i].arch,
                     (long long)net_param_count(m));
        net_free(m);
    }
}

static void expect_shape(net *m, const char *name, int64_t c, int64_t h, int64_t w)
{
    cl_err err = {0};
    int i = net_find(m, name, &err);
    cr_assert_geq(i, 0, "%s", err.msg);
    net_node_info info;
    net_node_info_get(m, i, &info);
    cr_assert(info.ndim == 4 && info.shape[0] == 1 && info.shape[1] == c && info.shape[2] == h &&
                  info.shape[3] == w,
              "%s %s: [%lld, %lld, %lld]", net_arch(m), name, (long long)info.shape[1],
              (long long)info.shape[2], (long long)info.shape[3]);
}

Test(zoo, lecture_layers)
{
    net *m = build("alexnet");
    expect_shape(m, "features_11", 256, 13, 13);
    net_free(m);
    m = build("vgg16");
    expect_shape(m, "features.30", 512, 7, 7);
    net_free(m);
    m = build("vgg19");
    expect_shape(m, "features_35", 512, 14, 14);
    net_free(m);
    m = build("resnet18");
    expect_shape(m, "layer4", 512, 7, 7);
    net_free(m);
    m = build("fashion");
    expect_shape(m, "conv2", 50, 11, 11);
    cl_err err = {0};
    net_node_info info;
    net_node_info_get(m, net_find(m, "dense1", &err), &info);
    cr_assert(info.ndim == 2 && info.shape[1] == 100 && !strcmp(info.type, "linear"));
    cr_assert_eq(net_find(m, "output", &err), net_node_count(m) - 1);
    cr_assert_eq(net_num_classes(m), 10);
    int64_t chw[3];
    net_input_shape(m, chw);
    cr_assert(chw[0] == 1 && chw[1] == 28 && chw[2] == 28);
    net_free(m);
}

Test(zoo, resnet_names)
{
    cl_err err = {0};
    net *m = build("resnet18");
    int block = net_find(m, "layer4.1", &err);
    cr_assert_eq(net_find(m, "layer4", &err), block);
    cr_assert_eq(net_find(m, "layer4.1.relu", &err), block);
    cr_assert_eq(net_find(m, "layer4.1.bn2", &err), net_find(m, "layer4.1.conv2", &err));
    cr_assert_eq(net_find(m, "layer2.0.downsample.1", &err),
                 net_find(m, "layer2.0.downsample_0", &err));
    cr_assert_eq(net_find(m, "bn1", &err), net_find(m, "conv1", &err));
    cr_assert_eq(net_find(m, "fc", &err), net_node_count(m) - 1);
    cr_assert_eq(net_find(m, "layer5", &err), -1);
    cr_assert_str_eq(err.msg, "unknown layer 'layer5' — did you mean 'layer4'?");
    net_free(m);
    m = build("resnet50");
    expect_shape(m, "layer4", 2048, 7, 7);
    expect_shape(m, "layer3.5.bn3", 1024, 14, 14);
    net_free(m);
    m = build("vgg16_bn");
    cr_assert_eq(net_find(m, "features.1", &err), net_find(m, "features.0", &err));
    expect_shape(m, "features.43", 512, 7, 7); /* the last max pool */
    net_free(m);
}

Test(zoo, unknown_arch_suggests)
{
    cl_err err = {0};
    cr_assert_null(zoo_build("resnet19", &err));
    cr_assert_str_eq(err.msg, "unknown model 'resnet19' — did you mean 'resnet18'?");
    int n = 0;
    for (const char *const *a = zoo_archs(); *a; a++) n++;
    cr_assert_eq(n, 13);
}

Test(zoo, fashion_runs_and_checks_its_input)
{
    cl_err err = {0};
    net *m = build("fashion");
    tn_tensor *x = tn_new4(2, 1, 28, 28, &err);
    cr_assert_eq(net_forward(m, x, &err), 0, "%s", err.msg);
    cr_assert(net_output(m)->shape[0] == 2 && net_output(m)->shape[1] == 10);
    tn_free(x);
    x = tn_new4(1, 1, 32, 32, &err);
    cr_assert_eq(net_forward(m, x, &err), -1);
    cr_assert(strstr(err.msg, "'dense1' takes 1250 features"), "%s", err.msg);
    tn_free(x);
    net_free(m);
}

Test(zoo, summary_table)
{
    cl_err err = {0};
    net *m = build("fashion");
    char *t = sm_table(m, &err);
    cr_assert_not_null(t, "%s", err.msg);
    cr_assert(strstr(t, "conv2    conv2d     [1, 50, 11, 11]             11,300\n"), "%s", t);
    cr_assert(strstr(t, "output   linear     [1, 10]"), "%s", t);
    cr_assert(strstr(t, "total parameters: 137,660\n"), "%s", t);
    free(t);
    net_free(m);
}
