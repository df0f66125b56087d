#include <criterion/criterion.h>
#include <stdint.h>

#include "engine/tensor.h"

Test(tensor, new_is_zeroed_aligned_contiguous)
{
    cl_err err = {0};
    tn_tensor *t = tn_new4(2, 3, 4, 5, &err);
    cr_assert_not_null(t, "%s", err.msg);
    cr_assert_eq(tn_numel(t), 120);
    cr_assert_eq((uintptr_t)t->data % 64, 0);
    cr_assert_eq(t->stride[0], 60);
    cr_assert_eq(t->stride[3], 1);
    for (int i = 0; i < 120; i++) cr_assert_eq(t->data[i], 0.0f);
    cr_assert(tn_is_contiguous(t));
    tn_free(t);
}

Test(tensor, resize_reuses_storage)
{
    cl_err err = {0};
    tn_tensor *t = tn_new1(100, &err);
    float *before = t->data;
    int64_t s[2] = {5, 10};
    cr_assert_eq(tn_resize(t, 2, s, &err), 0);
    cr_assert_eq(t->data, before, "a smaller resize must not reallocate");
    int64_t big[1] = {1000};
    cr_assert_eq(tn_resize(t, 1, big, &err), 0);
    cr_assert_eq(t->cap, 1000);
    tn_free(t);
}

Test(tensor, limit_gives_clear_error)
{
    cl_err err = {0};
    int64_t s[4] = {1 << 20, 1 << 20, 1 << 20, 1 << 20};
    cr_assert_null(tn_new(4, s, &err));
    cr_assert_eq(err.code, CL_ELIMIT);
    cr_assert(strstr(err.msg, "; the limit is 2 GiB (set CNNLENS_MAX_TENSOR_BYTES") != NULL, "%s",
              err.msg);
}

Test(tensor, reshape_checks_numel)
{
    cl_err err = {0};
    tn_tensor *t = tn_new2(6, 6, &err);
    int64_t ok[3] = {1, 6, 6}, bad[2] = {5, 7};
    cr_assert_eq(tn_reshape(t, 3, ok, &err), 0);
    cr_assert_eq(tn_reshape(t, 2, bad, &err), -1);
    cr_assert_str_eq(err.msg, "cannot reshape [1, 6, 6] into [5, 7]");
    tn_free(t);
}

Test(tensor, clone_of_strided_view_is_contiguous)
{
    cl_err err = {0};
    tn_tensor *t = tn_new2(3, 4, &err);
    for (int i = 0; i < 12; i++) t->data[i] = (float)i;
    tn_tensor *v = tn_view(t, &err);
    /* transpose the view */
    v->shape[0] = 4, v->shape[1] = 3, v->stride[0] = 1, v->stride[1] = 4;
    tn_tensor *c = tn_clone(v, &err);
    cr_assert_eq(c->data[1], 4.0f);
    cr_assert_eq(c->data[3], 1.0f);
    tn_free(c);
    tn_free(v);
    tn_free(t);
}

Test(err, prefix_keeps_message)
{
    cl_err err = {0};
    cl_err_set(&err, CL_EFORMAT, "bad magic");
    cl_err_prefix(&err, "resnet18.pth");
    cr_assert_str_eq(err.msg, "resnet18.pth: bad magic");
    cr_assert_str_eq(cl_err_name(err.code), "FormatError");
}
