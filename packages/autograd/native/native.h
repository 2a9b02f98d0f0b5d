/* Shared between the addon's source files: blas_gemm.c's module init registers the other files' exports. */
#ifndef TAPEGRAD_NATIVE_H
#define TAPEGRAD_NATIVE_H
#include <stdint.h>
#include <node_api.h>

/* One exported function: its JavaScript name and its callback. */
typedef struct {
  const char *name;
  napi_callback fn;
} native_fn_t;

/* elementwise.c: sets exports[name] to a function for each of the `count` entries; 0 on failure. */
int register_functions(napi_env env, napi_value exports, const native_fn_t *table, size_t count);

/* Adds binary, unary, reluBackward, sigmoidBackward, axpy, sumAxis, logSoftmax and logSoftmaxBackward (elementwise.c) to
 * exports; 0 on failure. */
int register_elementwise(napi_env env, napi_value exports);

/* elementwise.c: the unary export's sigmoid and the sigmoidBackward export's loop, on one thread (pool.c's
 * sigmoidAvgPool2d runs them a few planes at a time): out[i] = sigmoid(x[i]); out[i] = g[i] * (y[i] (1 - y[i])). */
void native_sigmoid_f32(const float *x, float *out, int64_t n);
void native_sigmoid_f64(const double *x, double *out, int64_t n);
void native_sigmoid_backward_f32(const float *g, const float *y, float *out, int64_t n);
void native_sigmoid_backward_f64(const double *g, const double *y, double *out, int64_t n);

/* elementwise.c: the operand checks every export shares. float_operand returns a pointer to element
 * `offset` of the float typed array v after checking that it has type `want` (napi_float32_array or
 * napi_float64_array) and that `extent` elements from there fit; otherwise NULL, with a JavaScript error
 * that starts with `who`, names the operand `name` and says what its extent came from (`what`).
 * float_operand_type returns v's float type, or -1 with a TypeError. */
void *float_operand(napi_env env, napi_value v, int want, int64_t offset, int64_t extent, const char *who,
                    const char *name, const char *what);
int float_operand_type(napi_env env, napi_value v, const char *who);

/* helper.c: runs fn(theirs) on the helper thread while the caller runs fn(mine), and returns 1 when both
 * are done; the caller runs fn(theirs) too when the helper has not started it by the time fn(mine)
 * returns. Afterwards the helper spins for the next part for spin_after_us microseconds
 * (TAPEGRAD_HELPER_SPIN_US overrides), then sleeps. Returns 0 at once, running nothing, when the helper
 * is busy with another thread's split or could not be started. */
typedef void (*helper_part_fn)(const void *arg);
int helper_split(helper_part_fn fn, const void *theirs, const void *mine, double spin_after_us);

/* helper.c: runs fn(ctx, u, worker) for every unit u in [0, count), the caller (worker 0) taking units from
 * the front and, with split, the helper thread (worker 1) from the back (helper_split with no spin
 * afterwards), so whichever thread is late computes fewer; each unit runs once. */
typedef void (*helper_unit_fn)(const void *ctx, int unit, int worker);
void helper_units(helper_unit_fn fn, const void *ctx, int count, int split);

/* blas_gemm.c: the thread policy's inputs: threads a product may use (setThreads; 1 means no split) and the
 * work, in multiply-adds, from which a product is split with the helper (TAPEGRAD_SPLIT_MIN_WORK). */
int native_max_threads(void);
int64_t native_split_min_work(void);

/* conv.c: 1 where the CPU runs AVX-512F code and TAPEGRAD_NATIVE_AVX512 is not "0" (which tests use to run
 * the other paths on the same machine). */
int native_avx512(void);

/* conv.c and pool.c: add their functions to exports; 0 on failure. */
int register_conv(napi_env env, napi_value exports);
int register_pool(napi_env env, napi_value exports);

/* helper.c's counters since the start (or the last reset): parts posted; parts the caller took back because
 * the helper had not started them; the helper's start delays (sum, and a histogram with bounds 5, 20, 50,
 * 100 and 300 us); the callers' time inside helper_split, and the part of it spent waiting for the helper
 * to finish. With reset, they restart from zero. */
#define HELPER_LATE_BUCKETS 6
typedef struct {
  long long posts, taken_back, late_ns, split_ns, wait_ns;
  long long late_hist[HELPER_LATE_BUCKETS];
} helper_stats_t;
void helper_stats(helper_stats_t *out, int reset);

#endif
