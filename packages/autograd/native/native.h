/* Shared between the addon's source files: blas_gemm.c's module init registers the other files' exports. */
#ifndef TAPEGRAD_NATIVE_H
#define TAPEGRAD_NATIVE_H
#include <node_api.h>

/* Adds binary, unary, reluBackward, axpy and sumAxis (elementwise.c) to exports; 0 on failure. */
int register_elementwise(napi_env env, napi_value exports);

/* helper.c: runs fn(theirs) on the helper thread while the caller runs fn(mine), and returns 1 when both
 * are done; returns 0 at once, running nothing, when the helper is busy with another thread's split or
 * could not be started. */
typedef void (*helper_part_fn)(const void *arg);
int helper_split(helper_part_fn fn, const void *theirs, const void *mine);

#endif
