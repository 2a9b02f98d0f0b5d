/*
 * tapegrad's native elementwise and reduction loops, in the same addon as the BLAS gemm.
 *
 * These compiled loops take a small fraction of the time per element of V8's typed-array loops.
 * src/kernels/native-loops.ts calls them only from NATIVE_MIN_ELEMENTS (1024) elements, where the
 * Node-API call (about a microsecond) is repaid.
 *
 * Every result is bit-identical to the TypeScript kernel it replaces: +, -, *, / and sqrt of float32
 * values give the same float whether computed in float or in double (the double rounding is
 * innocuous), axpy computes in double as the JavaScript does, sums accumulate in double in the same
 * order, and -ffp-contract=off keeps the compiler from fusing a multiply and an add.
 *
 * Exports (all synchronous; arrays are Float32Array or Float64Array, all of one type per call; every
 * span is bounds-checked before it is touched):
 *   binary(op, a, aOffset, aStride, b, bOffset, bStride, out, outOffset, n)
 *       out[i] = a[i*sa] op b[i*sb]; op an OP_ code of opcodes.h (add ... minimum); strides 0 or 1
 *   unary(op, x, out, n)       op an OP_ code of opcodes.h (neg ... sigmoid; step is x > 0)
 *   reluBackward(g, x, out, n) out[i] = x[i] <= 0 ? 0 : g[i] (a NaN input passes the gradient, as in PyTorch)
 *   sigmoidBackward(g, y, out, n)  out[i] = g[i] * (y[i] * (1 - y[i])) from sigmoid's output y, each step
 *                              rounded to the array's type as the three separate ops round it
 *   axpy(alpha, x, xOffset, y, yOffset, n)   y[i] += alpha * x[i]
 *   sumAxis(x, outer, n, inner, out)         out[o, i] = sum over j of x[o, j, i]
 *   logSoftmax(x, outer, n, inner, out)      log-softmax of every (o, :, i) row
 *   logSoftmaxBackward(g, out, outer, n, inner, gx)   its backward from the output: g - exp(out) * sum of g
 * exp and log (also inside logSoftmax) are libm.h's, which src/kernels/libm.ts repeats bit for bit.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <node_api.h>

#include "libm.h"
#include "native.h"
#include "opcodes.h"

/* The streaming loops are compiled twice, for AVX2 and for the baseline, and the dynamic loader picks one
 * for the CPU (target_clones, an ifunc: x86-64 with glibc). Both do the same IEEE operations on each
 * element (no FMA: -ffp-contract=off), so the results are the same; the AVX2 copies handle 8 floats per
 * instruction where baseline SSE2 handles 4. */
#if defined(__x86_64__) && defined(__GLIBC__) && (defined(__GNUC__) || defined(__clang__))
#define TG_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TG_CLONES
#endif


#define ARGS(count)                                                                       \
  size_t argc = count;                                                                    \
  napi_value argv[count];                                                                 \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != count) { \
    napi_throw_type_error(env, NULL, "tapegrad native: expected " #count " arguments");   \
    return NULL;                                                                          \
  }

static int get_i64(napi_env env, napi_value v, int64_t *out) {
  if (napi_get_value_int64(env, v, out) == napi_ok) return 1;
  napi_throw_type_error(env, NULL, "tapegrad native: sizes, offsets and strides must be numbers");
  return 0;
}

/* A float typed array's type, length and data; 0 (with a TypeError naming `who` thrown) when v is anything
 * else. */
static int float_info(napi_env env, napi_value v, const char *who, napi_typedarray_type *type, size_t *length, void **data) {
  bool is_typed = false;
  if (napi_is_typedarray(env, v, &is_typed) == napi_ok && is_typed &&
      napi_get_typedarray_info(env, v, type, length, data, NULL, NULL) == napi_ok &&
      (*type == napi_float32_array || *type == napi_float64_array)) {
    return 1;
  }
  char message[96];
  snprintf(message, sizeof message, "%s: operands must be Float32Array or Float64Array", who);
  napi_throw_type_error(env, NULL, message);
  return 0;
}

int float_operand_type(napi_env env, napi_value v, const char *who) {
  napi_typedarray_type type;
  size_t length;
  void *data;
  return float_info(env, v, who, &type, &length, &data) ? (int)type : -1;
}

void *float_operand(napi_env env, napi_value v, int want, int64_t offset, int64_t extent, const char *who,
                    const char *name, const char *what) {
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (!float_info(env, v, who, &type, &length, &data)) return NULL;
  char message[128];
  if ((int)type != want) {
    snprintf(message, sizeof message, "%s: operands must share one float type", who);
    napi_throw_type_error(env, NULL, message);
    return NULL;
  }
  if (offset < 0 || extent < 0 || (uint64_t)offset + (uint64_t)extent > (uint64_t)length) {
    snprintf(message, sizeof message, "%s: %s is too short for its %s", who, name, what);
    napi_throw_range_error(env, NULL, message);
    return NULL;
  }
  return (char *)data + (size_t)offset * (type == napi_float32_array ? 4 : 8);
}

static int float_type(napi_env env, napi_value v) {
  return float_operand_type(env, v, "tapegrad native");
}

/* Pointer to element `offset` of a float typed array of type `want`, after checking that the elements
 * offset, offset + stride, ..., offset + (n-1)*stride lie inside it. */
static void *span(napi_env env, napi_value v, int want, int64_t offset, int64_t stride, int64_t n, const char *name) {
  /* a negative stride or size is an extent of -1, which float_operand rejects with the same RangeError */
  int64_t extent = stride < 0 || n < 0 ? -1 : n == 0 ? 0 : (n - 1) * stride + 1;
  return float_operand(env, v, want, offset, extent, "tapegrad native", name, "offset, stride and size");
}

/* One contiguous/scalar loop per (op, stride pattern); T is float or double. */
#define BINARY_LOOPS(T, NAME)                                                                        \
  TG_CLONES static void NAME(int op, const T *a, int64_t sa, const T *b, int64_t sb, T *out, int64_t n) { \
    switch (op) {                                                                                    \
      case OP_ADD: BINARY_CASES(T, x + y) break;                                                     \
      case OP_SUB: BINARY_CASES(T, x - y) break;                                                     \
      case OP_MUL: BINARY_CASES(T, x * y) break;                                                     \
      case OP_DIV: BINARY_CASES(T, x / y) break;                                                     \
      case OP_MAXIMUM: BINARY_CASES(T, (x != x || x > y) ? x : y) break;                             \
      case OP_MINIMUM: BINARY_CASES(T, (x != x || x < y) ? x : y) break;                             \
    }                                                                                                \
  }
#define BINARY_CASES(T, EXPR)                                                                         \
  if (sa && sb) { for (int64_t i = 0; i < n; i++) { T x = a[i], y = b[i]; out[i] = EXPR; } }          \
  else if (sa) { const T y = b[0]; for (int64_t i = 0; i < n; i++) { T x = a[i]; out[i] = EXPR; } }   \
  else if (sb) { const T x = a[0]; for (int64_t i = 0; i < n; i++) { T y = b[i]; out[i] = EXPR; } }   \
  else { const T x = a[0], y = b[0]; const T v = EXPR; for (int64_t i = 0; i < n; i++) out[i] = v; }

BINARY_LOOPS(float, binary_f32)
BINARY_LOOPS(double, binary_f64)

static napi_value binary(napi_env env, napi_callback_info info) {
  ARGS(10)
  int64_t op, a_off, sa, b_off, sb, o_off, n;
  if (!get_i64(env, argv[0], &op) || !get_i64(env, argv[2], &a_off) || !get_i64(env, argv[3], &sa) ||
      !get_i64(env, argv[5], &b_off) || !get_i64(env, argv[6], &sb) || !get_i64(env, argv[8], &o_off) ||
      !get_i64(env, argv[9], &n)) return NULL;
  if (op < OP_ADD || op > OP_MINIMUM || sa < 0 || sa > 1 || sb < 0 || sb > 1) {
    napi_throw_range_error(env, NULL, "tapegrad native binary: unknown op, or a stride other than 0 or 1");
    return NULL;
  }
  int type = float_type(env, argv[7]);
  if (type < 0) return NULL;
  void *a = span(env, argv[1], type, a_off, sa, n, "a");
  if (!a) return NULL;
  void *b = span(env, argv[4], type, b_off, sb, n, "b");
  if (!b) return NULL;
  void *out = span(env, argv[7], type, o_off, 1, n, "out");
  if (!out) return NULL;
  if (type == napi_float32_array) binary_f32((int)op, a, sa, b, sb, out, n);
  else binary_f64((int)op, a, sa, b, sb, out, n);
  return NULL;
}

/* v[i] = tg_exp(v[i]) for i < n. On x86-64 with AVX2, four at a time: tg_exp_normal's operations, one
 * lane each (mul and add kept apart: no FMA), with the table read as a gather; a group of four with an
 * argument outside tg_exp_normal's range (NaN included) goes through tg_exp one by one. Same bits as
 * tg_exp, two to three times faster than one at a time. */
#define EXP_BLOCK 256
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define TG_EXP_AVX2 1
/* at[0..3] = tg_exp(at[0..3]). */
__attribute__((target("avx2"))) static inline void exp4_avx2(double *at) {
  const __m256d x = _mm256_loadu_pd(at);
  const __m256d normal = _mm256_and_pd(_mm256_cmp_pd(x, _mm256_set1_pd(TG_EXP_NORMAL_LO), _CMP_GE_OQ),
                                       _mm256_cmp_pd(x, _mm256_set1_pd(TG_EXP_NORMAL_HI), _CMP_LT_OQ));
  if (_mm256_movemask_pd(normal) != 0xf) {
    for (int l = 0; l < 4; l++) at[l] = tg_exp(at[l]);
    return;
  }
  const __m256d rounder = _mm256_set1_pd(TG_ROUNDER);
  __m256d n = _mm256_sub_pd(_mm256_add_pd(_mm256_mul_pd(x, _mm256_set1_pd(TG_32_BY_LN2)), rounder), rounder);
  __m256d r = _mm256_sub_pd(_mm256_sub_pd(x, _mm256_mul_pd(n, _mm256_set1_pd(TG_LN2_32_HI))),
                            _mm256_mul_pd(n, _mm256_set1_pd(TG_LN2_32_LO)));
  __m128i ni = _mm256_cvttpd_epi32(n); /* n is a whole number: exact */
  __m128i k = _mm_srai_epi32(ni, 5);
  __m256d t = _mm256_i32gather_pd(tg_exp2_32ths, _mm_and_si128(ni, _mm_set1_epi32(31)), 8);
  __m256d r2 = _mm256_mul_pd(r, r);
  __m256d q1 = _mm256_add_pd(_mm256_mul_pd(r, _mm256_set1_pd(1.0 / 6.0)), _mm256_set1_pd(0.5));
  __m256d q2 = _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(r, _mm256_set1_pd(1.0 / 120.0)), _mm256_set1_pd(1.0 / 24.0)),
                             _mm256_mul_pd(r2, _mm256_set1_pd(1.0 / 720.0)));
  __m256d p = _mm256_add_pd(_mm256_add_pd(r, _mm256_mul_pd(r2, q1)), _mm256_mul_pd(_mm256_mul_pd(r2, r2), q2));
  __m256d m = _mm256_add_pd(t, _mm256_mul_pd(t, p));
  __m256i scale = _mm256_slli_epi64(_mm256_cvtepi32_epi64(_mm_add_epi32(k, _mm_set1_epi32(1023))), 52);
  _mm256_storeu_pd(at, _mm256_mul_pd(m, _mm256_castsi256_pd(scale)));
}

__attribute__((target("avx2"))) static void exp_block_avx2(double *v, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) exp4_avx2(v + i);
  if (i < n) { /* the last, partial group, padded with zeros */
    double tail[4] = { 0, 0, 0, 0 };
    for (int64_t l = 0; l < n - i; l++) tail[l] = v[i + l];
    exp4_avx2(tail);
    for (int64_t l = 0; l < n - i; l++) v[i + l] = tail[l];
  }
}

/* tg_exp of eight lanes (AVX-512F): exp4_avx2's operations, the same bits; the table read as two
 * two-register permutes (the same entries as a gather, fewer micro-operations). Lanes outside
 * tg_exp_normal's range (NaN included) go through tg_exp one by one. */
__attribute__((target("avx512f"))) static inline __m512d exp8_avx512_v(const __m512d x) {
  const __mmask8 normal = _mm512_cmp_pd_mask(x, _mm512_set1_pd(TG_EXP_NORMAL_LO), _CMP_GE_OQ)
                        & _mm512_cmp_pd_mask(x, _mm512_set1_pd(TG_EXP_NORMAL_HI), _CMP_LT_OQ);
  if (normal != 0xff) {
    double at[8];
    _mm512_storeu_pd(at, x);
    for (int l = 0; l < 8; l++) at[l] = tg_exp(at[l]);
    return _mm512_loadu_pd(at);
  }
  const __m512d rounder = _mm512_set1_pd(TG_ROUNDER);
  __m512d n = _mm512_sub_pd(_mm512_add_pd(_mm512_mul_pd(x, _mm512_set1_pd(TG_32_BY_LN2)), rounder), rounder);
  __m512d r = _mm512_sub_pd(_mm512_sub_pd(x, _mm512_mul_pd(n, _mm512_set1_pd(TG_LN2_32_HI))),
                            _mm512_mul_pd(n, _mm512_set1_pd(TG_LN2_32_LO)));
  __m256i ni = _mm512_cvttpd_epi32(n); /* n is a whole number: exact */
  __m256i k = _mm256_srai_epi32(ni, 5);
  const __m512i j = _mm512_cvtepi32_epi64(_mm256_and_si256(ni, _mm256_set1_epi32(31)));
  const __m512d t_lo = _mm512_permutex2var_pd(_mm512_loadu_pd(tg_exp2_32ths), j, _mm512_loadu_pd(tg_exp2_32ths + 8));
  const __m512d t_hi = _mm512_permutex2var_pd(_mm512_loadu_pd(tg_exp2_32ths + 16), j, _mm512_loadu_pd(tg_exp2_32ths + 24));
  __m512d t = _mm512_mask_blend_pd(_mm512_test_epi64_mask(j, _mm512_set1_epi64(16)), t_lo, t_hi);
  __m512d r2 = _mm512_mul_pd(r, r);
  __m512d q1 = _mm512_add_pd(_mm512_mul_pd(r, _mm512_set1_pd(1.0 / 6.0)), _mm512_set1_pd(0.5));
  __m512d q2 = _mm512_add_pd(_mm512_add_pd(_mm512_mul_pd(r, _mm512_set1_pd(1.0 / 120.0)), _mm512_set1_pd(1.0 / 24.0)),
                             _mm512_mul_pd(r2, _mm512_set1_pd(1.0 / 720.0)));
  __m512d p = _mm512_add_pd(_mm512_add_pd(r, _mm512_mul_pd(r2, q1)), _mm512_mul_pd(_mm512_mul_pd(r2, r2), q2));
  __m512d m = _mm512_add_pd(t, _mm512_mul_pd(t, p));
  __m512i scale = _mm512_slli_epi64(_mm512_cvtepi32_epi64(_mm256_add_epi32(k, _mm256_set1_epi32(1023))), 52);
  return _mm512_mul_pd(m, _mm512_castsi512_pd(scale));
}

/* sigmoid_f32's operations on eight floats a step in AVX-512F registers (the same bits): e = tg_exp(-|x|)
 * rounded to float, then (x >= 0 ? 1 : e) / (1 + e) in double, rounded to float. */
__attribute__((target("avx512f"))) static int64_t sigmoid_f32_avx512(const float *x, float *out, int64_t n) {
  const __m512d one = _mm512_set1_pd(1.0);
  const __m512i sign = _mm512_set1_epi64((long long)0x8000000000000000ULL);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xf = _mm256_loadu_ps(x + i);
    const __m512d xd = _mm512_cvtps_pd(xf);
    const __m512d e = _mm512_cvtps_pd(_mm512_cvtpd_ps(exp8_avx512_v(_mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(xd), sign)))));
    const __mmask8 nonnegative = _mm512_cmp_pd_mask(xd, _mm512_setzero_pd(), _CMP_GE_OQ);
    const __m512d y = _mm512_div_pd(_mm512_mask_blend_pd(nonnegative, e, one), _mm512_add_pd(one, e));
    _mm256_storeu_ps(out + i, _mm512_cvtpd_ps(y));
  }
  return i;
}

/* at[0..7] = tg_exp(at[0..7]). */
__attribute__((target("avx512f"))) static inline void exp8_avx512(double *at) {
  _mm512_storeu_pd(at, exp8_avx512_v(_mm512_loadu_pd(at)));
}

__attribute__((target("avx512f"))) static void exp_block_avx512(double *v, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) exp8_avx512(v + i);
  if (i < n) { /* the last, partial group, padded with zeros */
    double tail[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    for (int64_t l = 0; l < n - i; l++) tail[l] = v[i + l];
    exp8_avx512(tail);
    for (int64_t l = 0; l < n - i; l++) v[i + l] = tail[l];
  }
}
#endif

/* v[i] = tg_exp(v[i]) for i < n: eight lanes with AVX-512F (unless TAPEGRAD_NATIVE_AVX512=0), four with AVX2,
 * else one at a time; the same bits every way. */
static void exp_block(double *v, int64_t n) {
#ifdef TG_EXP_AVX2
  static int avx2 = -1;
  if (avx2 < 0) avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
  if (native_avx512()) {
    exp_block_avx512(v, n);
    return;
  }
  if (avx2) {
    exp_block_avx2(v, n);
    return;
  }
#endif
  for (int64_t i = 0; i < n; i++) v[i] = tg_exp(v[i]);
}

/* out[i] = (T)tg_exp((double)x[i]) for i < n, through exp_block. */
#define EXP_LOOP(T, NAME)                                                             \
  static void NAME(const T *x, T *out, int64_t n) {                                   \
    double v[EXP_BLOCK];                                                              \
    for (int64_t i0 = 0; i0 < n; i0 += EXP_BLOCK) {                                   \
      int64_t len = n - i0 < EXP_BLOCK ? n - i0 : EXP_BLOCK;                          \
      for (int64_t i = 0; i < len; i++) v[i] = (double)x[i0 + i];                     \
      exp_block(v, len);                                                              \
      for (int64_t i = 0; i < len; i++) out[i0 + i] = (T)v[i];                        \
    }                                                                                 \
  }

EXP_LOOP(float, exp_f32)
EXP_LOOP(double, exp_f64)

/* out[i] = sigmoid(x[i]): e = tg_exp(-|x|) rounded to T (it never overflows), then 1 / (1 + e) for x >= 0
 * and e / (1 + e) below, in double, rounded to T; a NaN stays NaN. out may be x itself: each element is
 * read before it is written. */
#define SIGMOID_LOOP(T, NAME)                                                         \
  TG_CLONES static void NAME(const T *x, T *out, int64_t n) {                         \
    double v[EXP_BLOCK];                                                              \
    for (int64_t i0 = 0; i0 < n; i0 += EXP_BLOCK) {                                   \
      int64_t len = n - i0 < EXP_BLOCK ? n - i0 : EXP_BLOCK;                          \
      for (int64_t i = 0; i < len; i++) v[i] = -fabs((double)x[i0 + i]);             \
      exp_block(v, len);                                                              \
      for (int64_t i = 0; i < len; i++) {                                             \
        const double e = (double)(T)v[i];                                             \
        out[i0 + i] = (T)((x[i0 + i] >= 0 ? 1.0 : e) / (1.0 + e));                    \
      }                                                                               \
    }                                                                                 \
  }

SIGMOID_LOOP(float, sigmoid_f32_loop)
SIGMOID_LOOP(double, sigmoid_f64)

/* sigmoid_f32_loop's bits: eight at a time in AVX-512F registers (unless TAPEGRAD_NATIVE_AVX512=0), the rest
 * through the loop. */
static void sigmoid_f32(const float *x, float *out, int64_t n) {
  int64_t done = 0;
#ifdef TG_EXP_AVX2
  if (native_avx512()) done = sigmoid_f32_avx512(x, out, n);
#endif
  if (done < n) sigmoid_f32_loop(x + done, out + done, n - done);
}

#define UNARY_LOOPS(T, NAME, SQRT, EXP, SIGMOID)                                                              \
  TG_CLONES static void NAME(int op, const T *x, T *out, int64_t n) {                                \
    switch (op) {                                                                                    \
      case OP_NEG: for (int64_t i = 0; i < n; i++) out[i] = -x[i]; break;                            \
      /* NOTE: NaN passes through relu, as in PyTorch */                                             \
      case OP_RELU: for (int64_t i = 0; i < n; i++) { T v = x[i]; out[i] = v > 0 ? v : (v != v ? v : 0); } break; \
      case OP_ABS: for (int64_t i = 0; i < n; i++) { T v = x[i]; out[i] = v < 0 ? -v : (v == 0 ? 0 : v); } break; \
      case OP_SIGN: for (int64_t i = 0; i < n; i++) { T v = x[i]; out[i] = v > 0 ? 1 : (v < 0 ? -1 : 0); } break;  \
      case OP_STEP: for (int64_t i = 0; i < n; i++) out[i] = x[i] <= 0 ? 0 : 1; break;               \
      case OP_SQRT: for (int64_t i = 0; i < n; i++) out[i] = SQRT(x[i]); break;                      \
      case OP_EXP: EXP(x, out, n); break;                                                            \
      case OP_LOG: for (int64_t i = 0; i < n; i++) out[i] = (T)tg_log((double)x[i]); break;          \
      case OP_SIGMOID: SIGMOID(x, out, n); break;                                                    \
    }                                                                                                \
  }

UNARY_LOOPS(float, unary_f32, sqrtf, exp_f32, sigmoid_f32)
UNARY_LOOPS(double, unary_f64, sqrt, exp_f64, sigmoid_f64)

/* exp, log and sigmoid cost about as much per element as 16 multiply-adds: from native_split_min_work of
 * that, the loop runs in units of UNARY_UNIT elements shared with the helper thread (each element is
 * computed the same way by either thread). */
#define UNARY_UNIT 16384
#define UNARY_SPLIT_COST 16

typedef struct { int op, f32; const void *x; void *out; int64_t n; } unary_job_t;

static void unary_unit(const void *ctx, int unit, int worker) {
  (void)worker;
  const unary_job_t *job = ctx;
  const int64_t start = (int64_t)unit * UNARY_UNIT;
  const int64_t len = job->n - start < UNARY_UNIT ? job->n - start : UNARY_UNIT;
  if (job->f32) unary_f32(job->op, (const float *)job->x + start, (float *)job->out + start, len);
  else unary_f64(job->op, (const double *)job->x + start, (double *)job->out + start, len);
}

static void unary_any(int op, int f32, const void *x, void *out, int64_t n) {
  const int costly = op == OP_EXP || op == OP_LOG || op == OP_SIGMOID;
  if (costly && n >= 2 * UNARY_UNIT && native_max_threads() > 1 && n * UNARY_SPLIT_COST >= native_split_min_work()) {
    const unary_job_t job = { op, f32, x, out, n };
    helper_units(unary_unit, &job, (int)((n + UNARY_UNIT - 1) / UNARY_UNIT), 1);
  } else if (f32) unary_f32(op, x, out, n);
  else unary_f64(op, x, out, n);
}

static napi_value unary(napi_env env, napi_callback_info info) {
  ARGS(4)
  int64_t op, n;
  if (!get_i64(env, argv[0], &op) || !get_i64(env, argv[3], &n)) return NULL;
  if (op < OP_NEG || op > OP_SIGMOID) {
    napi_throw_range_error(env, NULL, "tapegrad native unary: unknown op");
    return NULL;
  }
  int type = float_type(env, argv[2]);
  if (type < 0) return NULL;
  void *x = span(env, argv[1], type, 0, 1, n, "x");
  if (!x) return NULL;
  void *out = span(env, argv[2], type, 0, 1, n, "out");
  if (!out) return NULL;
  unary_any((int)op, type == napi_float32_array, x, out, n);
  return NULL;
}

/* NOTE: both loads are unconditional so the compiler can make this a mask and vectorize it; with g[i] read
 * only under the branch it stays a branch, which mispredicts on real activations */
#define RELU_BACKWARD(T, NAME)                                                                 \
  TG_CLONES static void NAME(const T *g, const T *x, T *out, int64_t n) {                      \
    for (int64_t i = 0; i < n; i++) { T gv = g[i]; out[i] = x[i] <= 0 ? 0 : gv; }              \
  }

RELU_BACKWARD(float, relu_backward_f32)
RELU_BACKWARD(double, relu_backward_f64)

/* A backward loop out[i] = f(g[i], saved[i]) over n elements of one float type, and its exports' shared checks
 * (the saved operand is named `saved_name` in their errors). */
typedef void (*backward_f32_fn)(const float *g, const float *saved, float *out, int64_t n);
typedef void (*backward_f64_fn)(const double *g, const double *saved, double *out, int64_t n);

static napi_value backward_loop(napi_env env, napi_callback_info info, const char *saved_name,
                                backward_f32_fn f32, backward_f64_fn f64) {
  ARGS(4)
  int64_t n;
  if (!get_i64(env, argv[3], &n)) return NULL;
  int type = float_type(env, argv[2]);
  if (type < 0) return NULL;
  void *g = span(env, argv[0], type, 0, 1, n, "g");
  if (!g) return NULL;
  void *saved = span(env, argv[1], type, 0, 1, n, saved_name);
  if (!saved) return NULL;
  void *out = span(env, argv[2], type, 0, 1, n, "out");
  if (!out) return NULL;
  if (type == napi_float32_array) f32(g, saved, out, n);
  else f64(g, saved, out, n);
  return NULL;
}

static napi_value relu_backward(napi_env env, napi_callback_info info) {
  return backward_loop(env, info, "x", relu_backward_f32, relu_backward_f64);
}

/* NOTE: in T, one rounding per step, as sub, mul and mul round when sigmoid's backward is three ops */
#define SIGMOID_BACKWARD(T, NAME)                                                              \
  TG_CLONES static void NAME(const T *g, const T *y, T *out, int64_t n) {                      \
    for (int64_t i = 0; i < n; i++) { const T yv = y[i]; const T u = yv * ((T)1 - yv); out[i] = g[i] * u; } \
  }

SIGMOID_BACKWARD(float, sigmoid_backward_f32)
SIGMOID_BACKWARD(double, sigmoid_backward_f64)

void native_sigmoid_f32(const float *x, float *out, int64_t n) { sigmoid_f32(x, out, n); }
void native_sigmoid_f64(const double *x, double *out, int64_t n) { sigmoid_f64(x, out, n); }
void native_sigmoid_backward_f32(const float *g, const float *y, float *out, int64_t n) { sigmoid_backward_f32(g, y, out, n); }
void native_sigmoid_backward_f64(const double *g, const double *y, double *out, int64_t n) { sigmoid_backward_f64(g, y, out, n); }

static napi_value sigmoid_backward(napi_env env, napi_callback_info info) {
  return backward_loop(env, info, "y", sigmoid_backward_f32, sigmoid_backward_f64);
}

/* NOTE: in double, as JavaScript computes y[i] + alpha * x[i] before the store rounds it to y's type */
#define AXPY(T, NAME)                                                                          \
  TG_CLONES static void NAME(double alpha, const T *x, T *y, int64_t n) {                      \
    for (int64_t i = 0; i < n; i++) y[i] = (T)((double)y[i] + alpha * (double)x[i]);           \
  }

AXPY(float, axpy_f32)
AXPY(double, axpy_f64)

static napi_value axpy(napi_env env, napi_callback_info info) {
  ARGS(6)
  double alpha;
  int64_t x_off, y_off, n;
  if (napi_get_value_double(env, argv[0], &alpha) != napi_ok) {
    napi_throw_type_error(env, NULL, "tapegrad native axpy: alpha must be a number");
    return NULL;
  }
  if (!get_i64(env, argv[2], &x_off) || !get_i64(env, argv[4], &y_off) || !get_i64(env, argv[5], &n)) return NULL;
  int type = float_type(env, argv[3]);
  if (type < 0) return NULL;
  void *x = span(env, argv[1], type, x_off, 1, n, "x");
  if (!x) return NULL;
  void *y = span(env, argv[3], type, y_off, 1, n, "y");
  if (!y) return NULL;
  if (type == napi_float32_array) axpy_f32(alpha, x, y, n);
  else axpy_f64(alpha, x, y, n);
  return NULL;
}

#define SUM_AXIS(T, NAME)                                                                  \
  TG_CLONES static int NAME(const T *x, int64_t outer, int64_t n, int64_t inner, T *out) { \
    if (inner == 1) {                                                                      \
      for (int64_t o = 0; o < outer; o++) {                                                \
        double s = 0;                                                                      \
        const T *row = x + o * n;                                                          \
        for (int64_t j = 0; j < n; j++) s += row[j];                                       \
        out[o] = (T)s;                                                                     \
      }                                                                                    \
      return 1;                                                                            \
    }                                                                                      \
    double *acc = malloc((size_t)inner * sizeof(double));                                  \
    if (!acc) return 0;                                                                    \
    for (int64_t o = 0; o < outer; o++) {                                                  \
      for (int64_t i = 0; i < inner; i++) acc[i] = 0;                                      \
      const T *base = x + o * n * inner;                                                   \
      for (int64_t j = 0; j < n; j++, base += inner) {                                     \
        for (int64_t i = 0; i < inner; i++) acc[i] += base[i];                             \
      }                                                                                    \
      for (int64_t i = 0; i < inner; i++) out[o * inner + i] = (T)acc[i];                  \
    }                                                                                      \
    free(acc);                                                                             \
    return 1;                                                                              \
  }

SUM_AXIS(float, sum_axis_f32)
SUM_AXIS(double, sum_axis_f64)

/* Reads the [outer, n, inner] view's sizes from argv[first..first+2]; 0, with a RangeError naming `who`,
 * when one is negative or a product of them overflows.
 * NOTE: outer * inner is checked on its own too: with n = 0 the product with n cannot overflow, but
 * out's span, and sumAxis's accumulator, still can. */
static int axis_sizes(napi_env env, napi_value *argv, const char *who, int64_t *outer, int64_t *n, int64_t *inner) {
  if (!get_i64(env, argv[0], outer) || !get_i64(env, argv[1], n) || !get_i64(env, argv[2], inner)) return 0;
  int64_t o = *outer, m = *n, i = *inner;
  if (o < 0 || m < 0 || i < 0 || (i > 0 && o > INT64_MAX / i) || (i > 0 && m > 0 && o > INT64_MAX / m / i) ||
      i > (int64_t)(SIZE_MAX / sizeof(double))) {
    char message[96];
    snprintf(message, sizeof message, "tapegrad native %s: bad sizes", who);
    napi_throw_range_error(env, NULL, message);
    return 0;
  }
  return 1;
}

static napi_value sum_axis(napi_env env, napi_callback_info info) {
  ARGS(5)
  int64_t outer, n, inner;
  if (!axis_sizes(env, argv + 1, "sumAxis", &outer, &n, &inner)) return NULL;
  int type = float_type(env, argv[4]);
  if (type < 0) return NULL;
  void *x = span(env, argv[0], type, 0, 1, outer * n * inner, "x");
  if (!x) return NULL;
  void *out = span(env, argv[4], type, 0, 1, outer * inner, "out");
  if (!out) return NULL;
  int ok = type == napi_float32_array ? sum_axis_f32(x, outer, n, inner, out) : sum_axis_f64(x, outer, n, inner, out);
  if (!ok) napi_throw_error(env, NULL, "tapegrad native sumAxis: out of memory");
  return NULL;
}

/* Row (o, :, i) of the [outer, n, inner] view: x - max - log(sum of exp(x - max)), in double as
 * kernels/reduce.ts computes it. Short contiguous rows (inner 1, n at most EXP_BLOCK / 2: the MLP's
 * [128, 10] logits) go through exp_block several rows at a time, so its groups of four stay full; each
 * row still takes its max, its sum in order and its log alone, so the bits are the same (about twice as
 * fast as row by row on [128, 10]). */
#define LOG_SOFTMAX(T, NAME)                                                              \
  static void NAME(const T *x, int64_t outer, int64_t n, int64_t inner, T *out) {         \
    double v[EXP_BLOCK];                                                                  \
    if (inner == 1 && n <= EXP_BLOCK / 2) {                                               \
      const int64_t per = EXP_BLOCK / n;                                                  \
      double ms[EXP_BLOCK]; /* per <= EXP_BLOCK rows */                                 \
      for (int64_t o0 = 0; o0 < outer; o0 += per) {                                       \
        const int64_t rows = outer - o0 < per ? outer - o0 : per;                         \
        for (int64_t r = 0; r < rows; r++) {                                              \
          const T *xr = x + (o0 + r) * n;                                                 \
          double m = -(double)INFINITY;                                                   \
          for (int64_t j = 0; j < n; j++) { double e = xr[j]; if (e > m || e != e) m = e; } \
          if (m == -(double)INFINITY) m = 0;                                              \
          ms[r] = m;                                                                      \
          for (int64_t j = 0; j < n; j++) v[r * n + j] = (double)xr[j] - m;               \
        }                                                                                 \
        exp_block(v, rows * n);                                                           \
        for (int64_t r = 0; r < rows; r++) {                                              \
          const T *xr = x + (o0 + r) * n;                                                 \
          T *orow = out + (o0 + r) * n;                                                   \
          double s = 0;                                                                   \
          for (int64_t j = 0; j < n; j++) s += v[r * n + j];                              \
          double lse = ms[r] + tg_log(s);                                                 \
          for (int64_t j = 0; j < n; j++) orow[j] = (T)((double)xr[j] - lse);             \
        }                                                                                 \
      }                                                                                   \
      return;                                                                             \
    }                                                                                     \
    for (int64_t o = 0; o < outer; o++) {                                                 \
      for (int64_t i = 0; i < inner; i++) {                                               \
        const T *xr = x + o * n * inner + i;                                              \
        T *orow = out + o * n * inner + i;                                                \
        double m = -(double)INFINITY;                                                     \
        for (int64_t j = 0; j < n; j++) { double e = xr[j * inner]; if (e > m || e != e) m = e; } \
        if (m == -(double)INFINITY) m = 0;                                                \
        double s = 0;                                                                     \
        for (int64_t j0 = 0; j0 < n; j0 += EXP_BLOCK) {                                   \
          int64_t len = n - j0 < EXP_BLOCK ? n - j0 : EXP_BLOCK;                          \
          for (int64_t j = 0; j < len; j++) v[j] = (double)xr[(j0 + j) * inner] - m;      \
          exp_block(v, len);                                                              \
          for (int64_t j = 0; j < len; j++) s += v[j];                                    \
        }                                                                                 \
        double lse = m + tg_log(s);                                                       \
        for (int64_t j = 0; j < n; j++) orow[j * inner] = (T)((double)xr[j * inner] - lse); \
      }                                                                                   \
    }                                                                                     \
  }

LOG_SOFTMAX(float, log_softmax_f32)
LOG_SOFTMAX(double, log_softmax_f64)

static napi_value log_softmax(napi_env env, napi_callback_info info) {
  ARGS(5)
  int64_t outer, n, inner;
  if (!axis_sizes(env, argv + 1, "logSoftmax", &outer, &n, &inner)) return NULL;
  int type = float_type(env, argv[4]);
  if (type < 0) return NULL;
  void *x = span(env, argv[0], type, 0, 1, outer * n * inner, "x");
  if (!x) return NULL;
  void *out = span(env, argv[4], type, 0, 1, outer * n * inner, "out");
  if (!out) return NULL;
  if (type == napi_float32_array) log_softmax_f32(x, outer, n, inner, out);
  else log_softmax_f64(x, outer, n, inner, out);
  return NULL;
}

/* gx = g - exp(out) * sum_j g along each row; T arithmetic rounds where reduce.ts's Math.fround does
 * (a float op of two floats rounds as the double op and fround do: the double rounding is innocuous).
 * Short contiguous rows go through exp_block several at a time, as in LOG_SOFTMAX. */
#define LOG_SOFTMAX_BACKWARD(T, NAME)                                                                \
  static void NAME(const T *g, const T *out, int64_t outer, int64_t n, int64_t inner, T *gx) {    \
    double v[EXP_BLOCK];                                                                          \
    if (inner == 1 && n <= EXP_BLOCK / 2) {                                                       \
      const int64_t per = EXP_BLOCK / n;                                                          \
      for (int64_t o0 = 0; o0 < outer; o0 += per) {                                               \
        const int64_t rows = outer - o0 < per ? outer - o0 : per;                                 \
        const int64_t base = o0 * n;                                                              \
        for (int64_t j = 0; j < rows * n; j++) v[j] = (double)out[base + j];                      \
        exp_block(v, rows * n);                                                                   \
        for (int64_t r = 0; r < rows; r++) {                                                      \
          const int64_t row = base + r * n;                                                       \
          double acc = 0;                                                                         \
          for (int64_t j = 0; j < n; j++) acc += g[row + j];                                      \
          const T s = (T)acc;                                                                     \
          for (int64_t j = 0; j < n; j++) gx[row + j] = g[row + j] - (T)v[r * n + j] * s;         \
        }                                                                                         \
      }                                                                                           \
      return;                                                                                     \
    }                                                                                             \
    for (int64_t o = 0; o < outer; o++) {                                                         \
      for (int64_t i = 0; i < inner; i++) {                                                       \
        int64_t base = o * n * inner + i;                                                         \
        double acc = 0;                                                                           \
        for (int64_t j = 0; j < n; j++) acc += g[base + j * inner];                               \
        const T s = (T)acc;                                                                       \
        for (int64_t j0 = 0; j0 < n; j0 += EXP_BLOCK) {                                           \
          int64_t len = n - j0 < EXP_BLOCK ? n - j0 : EXP_BLOCK;                                  \
          for (int64_t j = 0; j < len; j++) v[j] = (double)out[base + (j0 + j) * inner];          \
          exp_block(v, len);                                                                      \
          for (int64_t j = 0; j < len; j++) {                                                     \
            int64_t k = base + (j0 + j) * inner;                                                  \
            gx[k] = g[k] - (T)v[j] * s;                                                           \
          }                                                                                       \
        }                                                                                         \
      }                                                                                           \
    }                                                                                             \
  }

LOG_SOFTMAX_BACKWARD(float, log_softmax_backward_f32)
LOG_SOFTMAX_BACKWARD(double, log_softmax_backward_f64)

static napi_value log_softmax_backward(napi_env env, napi_callback_info info) {
  ARGS(6)
  int64_t outer, n, inner;
  if (!axis_sizes(env, argv + 2, "logSoftmaxBackward", &outer, &n, &inner)) return NULL;
  int type = float_type(env, argv[5]);
  if (type < 0) return NULL;
  int64_t size = outer * n * inner;
  void *g = span(env, argv[0], type, 0, 1, size, "g");
  if (!g) return NULL;
  void *out = span(env, argv[1], type, 0, 1, size, "out");
  if (!out) return NULL;
  void *gx = span(env, argv[5], type, 0, 1, size, "gx");
  if (!gx) return NULL;
  if (type == napi_float32_array) log_softmax_backward_f32(g, out, outer, n, inner, gx);
  else log_softmax_backward_f64(g, out, outer, n, inner, gx);
  return NULL;
}

int register_functions(napi_env env, napi_value exports, const native_fn_t *table, size_t count) {
  for (size_t i = 0; i < count; i++) {
    napi_value fn;
    if (napi_create_function(env, table[i].name, NAPI_AUTO_LENGTH, table[i].fn, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, table[i].name, fn) != napi_ok) return 0;
  }
  return 1;
}

int register_elementwise(napi_env env, napi_value exports) {
  static const native_fn_t table[] = {
    { "binary", binary }, { "unary", unary }, { "reluBackward", relu_backward },
    { "sigmoidBackward", sigmoid_backward },
    { "axpy", axpy }, { "sumAxis", sum_axis }, { "logSoftmax", log_softmax },
    { "logSoftmaxBackward", log_softmax_backward },
  };
  return register_functions(env, exports, table, sizeof table / sizeof table[0]);
}
