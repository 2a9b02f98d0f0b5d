/* Shared between the addon's source files: blas_gemm.c's module init registers the other files' exports. */
#ifndef TAPEGRAD_NATIVE_H
#define TAPEGRAD_NATIVE_H
#include <node_api.h>

/* Adds binary, unary, reluBackward, axpy and sumAxis (elementwise.c) to exports; 0 on failure. */
int register_elementwise(napi_env env, napi_value exports);

#endif
