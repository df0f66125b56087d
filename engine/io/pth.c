#include "engine/io/pth.h"

int pth_load_zip(const fm_map *m, wt_dict *d, cl_err *err)
{
    (void)m, (void)d;
    return cl_err_set(err, CL_EFORMAT, ".pth zip files: not yet supported");
}

int pth_is_legacy(const fm_map *m)
{
    (void)m;
    return 0;
}

int pth_load_legacy(const fm_map *m, wt_dict *d, cl_err *err)
{
    (void)m, (void)d;
    return cl_err_set(err, CL_EFORMAT, "legacy .pth files: not yet supported");
}
