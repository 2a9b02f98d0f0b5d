/*
 * Max pooling with saved argmax indices, forward and backward, float32 and float64: the loops of
 * src/kernels/pool.ts compiled, with the same results bit for bit (the same comparisons in the same order:
 * a value replaces the running maximum when it is greater or NaN; the gradient adds into a zeroed input
 * gradient, so a -0 gradient lands as +0 as there).
 * The common 2 x 2, stride-2, unpadded windows have their own loops: with AVX-512 (float32), 16 windows at
 * a time from two rows split into their even and odd columns; the backward of windows that tile the input
 * exactly writes each window's four gradients at once instead of zeroing and scattering.
 *
 * Average pooling likewise (sums and divisions in double, as there; 2 x 2 windows 16 at a time with AVX-512),
 * and sigmoid followed by average pooling as one pass over a few planes at a time (sigmoidAvgPool2d: the bits
 * of elementwise.c's sigmoid and sigmoidBackward loops and the pooling loops run one after the other).
 *
 * Exports: maxPool2dForward(geometry, x, out, indices), maxPool2dBackward(geometry, gradOut, indices,
 * gradInput), avgPool2dForward(geometry, x, out, countIncludePad), avgPool2dBackward(geometry, gradOut,
 * gradInput, countIncludePad), sigmoidAvgPool2dForward(geometry, x, s, out, countIncludePad),
 * sigmoidAvgPool2dBackward(geometry, gradOut, s, gradInput, countIncludePad); geometry is an Int32Array [planes, height, width, kernelH, kernelW, strideH, strideW, padH,
 * padW, dilationH, dilationW, outH, outW] (planes = batch x channels), x/out and gradOut/gradInput one
 * float type, indices an Int32Array (flat indices within the plane) or, for 2 x 2, stride-2, unpadded windows,
 * a Uint8Array of window offsets (one byte a window instead of four).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>

#include "native.h"

typedef struct {
  int planes, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow;
} pool_geom_t;

static int is_2x2(const pool_geom_t *p) {
  return p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 && p->ph == 0 && p->pw == 0 && p->dh == 1 && p->dw == 1 &&
         2 * p->oh <= p->h && 2 * p->ow <= p->w;
}

#define MAX_POOL_GENERAL(T, NAME)                                                                              \
  static void NAME(const pool_geom_t *p, const T *x, T *out, int32_t *indices) {                              \
    const int64_t in_plane = (int64_t)p->h * p->w, out_plane = (int64_t)p->oh * p->ow;                        \
    for (int64_t pl = 0; pl < p->planes; pl++) {                                                                \
      const T *xp = x + pl * in_plane;                                                                          \
      int64_t o = pl * out_plane;                                                                               \
      for (int oh = 0; oh < p->oh; oh++) {                                                                      \
        int h0 = oh * p->sh - p->ph;                                                                            \
        const int h1 = h0 + (p->kh - 1) * p->dh + 1 < p->h ? h0 + (p->kh - 1) * p->dh + 1 : p->h;             \
        while (h0 < 0) h0 += p->dh;                                                                             \
        for (int ow = 0; ow < p->ow; ow++, o++) {                                                               \
          int w0 = ow * p->sw - p->pw;                                                                          \
          const int w1 = w0 + (p->kw - 1) * p->dw + 1 < p->w ? w0 + (p->kw - 1) * p->dw + 1 : p->w;           \
          while (w0 < 0) w0 += p->dw;                                                                           \
          T best = -INFINITY;                                                                                   \
          int32_t arg = h0 < h1 && w0 < w1 ? h0 * p->w + w0 : -1;                                              \
          for (int ih = h0; ih < h1; ih += p->dh)                                                               \
            for (int iw = w0; iw < w1; iw += p->dw) {                                                           \
              const T v = xp[ih * p->w + iw];                                                                   \
              const int take = (v > best) | (v != v);                                                           \
              best = take ? v : best;                                                                           \
              arg = take ? ih * p->w + iw : arg;                                                                \
            }                                                                                                   \
          out[o] = best;                                                                                        \
          indices[o] = arg;                                                                                     \
        }                                                                                                       \
      }                                                                                                         \
    }                                                                                                           \
  }

MAX_POOL_GENERAL(float, max_pool_f32)
MAX_POOL_GENERAL(double, max_pool_f64)

/* Zeroes gradInput and adds each gradient at its saved index (index -1 or outside the plane: nothing). */
#define MAX_POOL_SCATTER(T, NAME)                                                                              \
  static void NAME(const pool_geom_t *p, const T *g, const int32_t *indices, T *gi) {                         \
    const int64_t in_plane = (int64_t)p->h * p->w, out_plane = (int64_t)p->oh * p->ow;                        \
    memset(gi, 0, (size_t)(p->planes * in_plane) * sizeof(T));                                                \
    for (int64_t pl = 0; pl < p->planes; pl++) {                                                                \
      T *gp = gi + pl * in_plane;                                                                               \
      const int64_t o0 = pl * out_plane;                                                                        \
      for (int64_t o = o0; o < o0 + out_plane; o++) {                                                           \
        const int32_t k = indices[o];                                                                           \
        if (k >= 0 && k < in_plane) gp[k] += g[o];                                                              \
      }                                                                                                         \
    }                                                                                                           \
  }

MAX_POOL_SCATTER(float, scatter_f32)
MAX_POOL_SCATTER(double, scatter_f64)

/* Windows of 2 x 2 that tile the planes exactly: each window's four gradients written at once (0 + g where
 * the index points, 0 elsewhere). Returns 0, having written garbage, when an index lies outside its window
 * (not from the forward): the caller then scatters. */
#define MAX_POOL_TILED(T, NAME)                                                                                \
  static int NAME(const pool_geom_t *p, const T *g, const int32_t *indices, T *gi) {                          \
    const int w = p->w;                                                                                         \
    int bad = 0;                                                                                                \
    int64_t o = 0;                                                                                              \
    for (int64_t pl = 0; pl < p->planes; pl++) {                                                                \
      T *gp = gi + pl * (int64_t)p->h * w;                                                                      \
      for (int oh = 0; oh < p->oh; oh++) {                                                                      \
        T *r0 = gp + (int64_t)2 * oh * w, *r1 = r0 + w;                                                         \
        const int32_t base = 2 * oh * w;                                                                        \
        for (int ow = 0; ow < p->ow; ow++, o++) {                                                               \
          const T v = (T)0 + g[o];                                                                              \
          const int32_t d = indices[o] - base - 2 * ow;                                                         \
          r0[2 * ow] = d == 0 ? v : (T)0;                                                                       \
          r0[2 * ow + 1] = d == 1 ? v : (T)0;                                                                   \
          r1[2 * ow] = d == w ? v : (T)0;                                                                       \
          r1[2 * ow + 1] = d == w + 1 ? v : (T)0;                                                               \
          bad |= d != 0 && d != 1 && d != w && d != w + 1;                                                      \
        }                                                                                                       \
      }                                                                                                         \
    }                                                                                                           \
    return !bad;                                                                                                \
  }

MAX_POOL_TILED(float, tiled_f32)
MAX_POOL_TILED(double, tiled_f64)

/* Window offsets, the compact indices of 2 x 2, stride-2, unpadded windows (one byte each): 0 top-left,
 * 1 top-right, 2 bottom-left, 3 bottom-right. The loops below take `rows` output rows of `ow` windows whose
 * input row pairs lie 2 w apart from x (gradInput), so planes whose height is twice the output's run as one
 * tall plane. The comparisons are the general loop's (the first element starts the maximum). */
#define MAX_POOL_OFFSETS(T, NAME)                                                                              \
  static void NAME(int64_t rows, int w, int ow, const T *x, T *out, uint8_t *offsets) {                       \
    for (int64_t k = 0; k < rows; k++) {                                                                        \
      const T *r0 = x + 2 * k * w, *r1 = r0 + w;                                                                \
      for (int j = 0; j < ow; j++) {                                                                            \
        const T v[4] = { r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1] };                                  \
        T best = v[0];                                                                                          \
        int arg = 0;                                                                                            \
        for (int i = 1; i < 4; i++) {                                                                           \
          const int take = (v[i] > best) | (v[i] != v[i]);                                                      \
          best = take ? v[i] : best;                                                                            \
          arg = take ? i : arg;                                                                                 \
        }                                                                                                       \
        out[k * ow + j] = best;                                                                                 \
        offsets[k * ow + j] = (uint8_t)arg;                                                                     \
      }                                                                                                         \
    }                                                                                                           \
  }

MAX_POOL_OFFSETS(float, offsets_f32)
MAX_POOL_OFFSETS(double, offsets_f64)

/* Windows that tile rows of exactly 2 ow columns: each window's four gradients written at once (0 + g at its
 * offset, 0 elsewhere; an offset past 3 sends nothing). */
#define MAX_POOL_TILED_OFFSETS(T, NAME)                                                                        \
  static void NAME(int64_t rows, int ow, const T *g, const uint8_t *offsets, T *gi) {                         \
    const int w = 2 * ow;                                                                                       \
    for (int64_t k = 0; k < rows; k++) {                                                                        \
      T *r0 = gi + 2 * k * w, *r1 = r0 + w;                                                                     \
      for (int j = 0; j < ow; j++) {                                                                            \
        const T v = (T)0 + g[k * ow + j];                                                                       \
        const int d = offsets[k * ow + j];                                                                      \
        r0[2 * j] = d == 0 ? v : (T)0;                                                                          \
        r0[2 * j + 1] = d == 1 ? v : (T)0;                                                                      \
        r1[2 * j] = d == 2 ? v : (T)0;                                                                          \
        r1[2 * j + 1] = d == 3 ? v : (T)0;                                                                      \
      }                                                                                                         \
    }                                                                                                           \
  }

MAX_POOL_TILED_OFFSETS(float, tiled_offsets_f32)
MAX_POOL_TILED_OFFSETS(double, tiled_offsets_f64)

/* Zeroes gradInput and adds each gradient at its window offset: windows that leave a last odd row or column. */
#define MAX_POOL_SCATTER_OFFSETS(T, NAME)                                                                      \
  static void NAME(const pool_geom_t *p, const T *g, const uint8_t *offsets, T *gi) {                         \
    const int64_t in_plane = (int64_t)p->h * p->w;                                                            \
    memset(gi, 0, (size_t)(p->planes * in_plane) * sizeof(T));                                                \
    int64_t o = 0;                                                                                              \
    for (int64_t pl = 0; pl < p->planes; pl++)                                                                  \
      for (int oh = 0; oh < p->oh; oh++)                                                                        \
        for (int ow = 0; ow < p->ow; ow++, o++) {                                                               \
          const int d = offsets[o];                                                                             \
          if (d < 4) gi[pl * in_plane + (int64_t)(2 * oh + (d >> 1)) * p->w + 2 * ow + (d & 1)] += g[o];       \
        }                                                                                                       \
  }

MAX_POOL_SCATTER_OFFSETS(float, scatter_offsets_f32)
MAX_POOL_SCATTER_OFFSETS(double, scatter_offsets_f64)


/* Average pooling, as pool.ts's loops: each window summed in double in row-major order and divided in
 * double by PyTorch's divisor (count_include_pad: the window clipped to the padded input; else the elements
 * inside the input; a ceil-mode window past the padding counts its part inside it); the backward adds each
 * window's gradient / divisor, rounded to the element type, to every element of it in window order. */
#define AVG_WINDOW(p, oh, ow)                                                                                 \
  const int hs = (oh) * (p)->sh - (p)->ph, he = hs + (p)->kh < (p)->h + (p)->ph ? hs + (p)->kh : (p)->h + (p)->ph; \
  const int h0 = hs > 0 ? hs : 0, h1 = he < (p)->h ? he : (p)->h;                                             \
  const int ws = (ow) * (p)->sw - (p)->pw, we = ws + (p)->kw < (p)->w + (p)->pw ? ws + (p)->kw : (p)->w + (p)->pw; \
  const int w0 = ws > 0 ? ws : 0, w1 = we < (p)->w ? we : (p)->w;                                             \
  const double divisor = include_pad ? (double)(he - hs) * (we - ws) : (double)(h1 - h0) * (w1 - w0);

#define AVG_POOL(T, NAME)                                                                                      \
  static void NAME##_forward(const pool_geom_t *p, const T *x, T *out, int include_pad) {                     \
    const int64_t in_plane = (int64_t)p->h * p->w, out_plane = (int64_t)p->oh * p->ow;                        \
    if (is_2x2(p)) {                                                                                            \
      int64_t o = 0;                                                                                            \
      for (int64_t pl = 0; pl < p->planes; pl++)                                                                \
        for (int oh = 0; oh < p->oh; oh++) {                                                                    \
          const T *r0 = x + pl * in_plane + (int64_t)2 * oh * p->w, *r1 = r0 + p->w;                            \
          for (int ow = 0; ow < p->ow; ow++, o++)                                                               \
            out[o] = (T)(((double)r0[2 * ow] + r0[2 * ow + 1] + r1[2 * ow] + r1[2 * ow + 1]) / 4);             \
        }                                                                                                       \
      return;                                                                                                   \
    }                                                                                                           \
    for (int64_t pl = 0; pl < p->planes; pl++) {                                                                \
      const T *xp = x + pl * in_plane;                                                                          \
      T *op = out + pl * out_plane;                                                                             \
      for (int oh = 0; oh < p->oh; oh++)                                                                        \
        for (int ow = 0; ow < p->ow; ow++) {                                                                    \
          AVG_WINDOW(p, oh, ow)                                                                                 \
          if (h0 >= h1 || w0 >= w1) {                                                                           \
            op[oh * p->ow + ow] = 0;                                                                            \
            continue;                                                                                           \
          }                                                                                                     \
          double s = 0;                                                                                         \
          for (int ih = h0; ih < h1; ih++)                                                                      \
            for (int iw = w0; iw < w1; iw++) s += xp[ih * p->w + iw];                                           \
          op[oh * p->ow + ow] = (T)(s / divisor);                                                               \
        }                                                                                                       \
    }                                                                                                           \
  }                                                                                                             \
  static void NAME##_backward(const pool_geom_t *p, const T *g, T *gi, int include_pad) {                     \
    const int64_t in_plane = (int64_t)p->h * p->w, out_plane = (int64_t)p->oh * p->ow;                        \
    if (is_2x2(p)) {                                                                                            \
      /* windows do not overlap; the rows and columns no window covers (odd sizes) get 0 */                     \
      if (2 * p->oh != p->h || 2 * p->ow != p->w) memset(gi, 0, (size_t)(p->planes * in_plane) * sizeof(T));  \
      int64_t o = 0;                                                                                            \
      for (int64_t pl = 0; pl < p->planes; pl++)                                                                \
        for (int oh = 0; oh < p->oh; oh++) {                                                                    \
          T *r0 = gi + pl * in_plane + (int64_t)2 * oh * p->w, *r1 = r0 + p->w;                                 \
          for (int ow = 0; ow < p->ow; ow++, o++) {                                                             \
            const T v = (T)((double)g[o] / 4);                                                                  \
            r0[2 * ow] = v;                                                                                     \
            r0[2 * ow + 1] = v;                                                                                 \
            r1[2 * ow] = v;                                                                                     \
            r1[2 * ow + 1] = v;                                                                                 \
          }                                                                                                     \
        }                                                                                                       \
      return;                                                                                                   \
    }                                                                                                           \
    memset(gi, 0, (size_t)(p->planes * in_plane) * sizeof(T));                                                \
    for (int64_t pl = 0; pl < p->planes; pl++) {                                                                \
      T *gp = gi + pl * in_plane;                                                                               \
      const T *go = g + pl * out_plane;                                                                         \
      for (int oh = 0; oh < p->oh; oh++)                                                                        \
        for (int ow = 0; ow < p->ow; ow++) {                                                                    \
          AVG_WINDOW(p, oh, ow)                                                                                 \
          if (h0 >= h1 || w0 >= w1) continue;                                                                   \
          const double v = (double)go[oh * p->ow + ow] / divisor;                                               \
          for (int ih = h0; ih < h1; ih++)                                                                      \
            for (int iw = w0; iw < w1; iw++) gp[ih * p->w + iw] = (T)((double)gp[ih * p->w + iw] + v);          \
        }                                                                                                       \
    }                                                                                                           \
  }

AVG_POOL(float, avg_f32)
AVG_POOL(double, avg_f64)

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define K512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline))

/* The 2 x 2 loops below ask for their rows POOL_AHEAD output rows ahead: without it they read at a fraction of
 * the memory's speed (the hardware prefetchers do not follow them here; bench/NOTES-conv.md, "Prefetching the
 * max-pooling loops"). */
#define POOL_AHEAD 8

/* Asks for the cache lines of [at, at + bytes), for reading or (write) for writing. */
K512 INLINE void prefetch_lines(const void *at, int64_t bytes, int write) {
  const char *p = at;
  for (int64_t i = 0; i < bytes; i += 64) {
    if (write) __builtin_prefetch(p + i, 1, 3);
    else _mm_prefetch(p + i, _MM_HINT_T0);
  }
}

static int avx512(void) { return native_avx512(); }

/* The maximum of four windows' elements in the general loop's order (an element replaces the running maximum
 * when it is greater or NaN), and in *arg the value a1, a2 or a3 of the element chosen after the first (0 for
 * the first). */
K512 INLINE __m512 max_of_four(__m512 v0, __m512 v1, __m512 v2, __m512 v3, __m512i a1, __m512i a2, __m512i a3, __m512i *arg) {
  __m512 best = v0;
  __m512i at = _mm512_setzero_si512();
  __mmask16 take = _mm512_cmp_ps_mask(v1, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v1, v1, _CMP_UNORD_Q);
  best = _mm512_mask_mov_ps(best, take, v1);
  at = _mm512_mask_mov_epi32(at, take, a1);
  take = _mm512_cmp_ps_mask(v2, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v2, v2, _CMP_UNORD_Q);
  best = _mm512_mask_mov_ps(best, take, v2);
  at = _mm512_mask_mov_epi32(at, take, a2);
  take = _mm512_cmp_ps_mask(v3, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v3, v3, _CMP_UNORD_Q);
  best = _mm512_mask_mov_ps(best, take, v3);
  *arg = _mm512_mask_mov_epi32(at, take, a3);
  return best;
}

/* The input columns of `count` (up to 16) 2 x 2 windows of a row in two vectors: the first 16, then the rest. */
static inline __mmask16 columns_low(int count) { return (__mmask16)(count >= 8 ? 0xffff : (1u << (2 * count)) - 1); }
static inline __mmask16 columns_high(int count) { return (__mmask16)(count <= 8 ? 0 : (1u << (2 * count - 16)) - 1); }

/* The four elements of `count` (up to 16) 2 x 2 windows whose top-left elements are r0[0], r0[2], ... (the
 * bottom row at r1): top-left, top-right, bottom-left, bottom-right; the even and odd columns of each row. */
K512 INLINE void row_windows(const float *r0, const float *r1, int count, __m512 v[4]) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __mmask16 lo = columns_low(count), hi = columns_high(count);
  const __m512 a0 = _mm512_maskz_loadu_ps(lo, r0), a1 = _mm512_maskz_loadu_ps(hi, r0 + 16);
  const __m512 b0 = _mm512_maskz_loadu_ps(lo, r1), b1 = _mm512_maskz_loadu_ps(hi, r1 + 16);
  v[0] = _mm512_permutex2var_ps(a0, even, a1);
  v[1] = _mm512_permutex2var_ps(a0, odd, a1);
  v[2] = _mm512_permutex2var_ps(b0, even, b1);
  v[3] = _mm512_permutex2var_ps(b0, odd, b1);
}

/* The 2 x 2 forward, 16 windows per step: even and odd columns of the two rows, compared in the general
 * loop's order (top-left, top-right, bottom-left, bottom-right). */
K512 static void max_pool_2x2_f32(const pool_geom_t *p, const float *x, float *out, int32_t *indices) {
  const int w = p->w;
  const __m512i one = _mm512_set1_epi32(1), below = _mm512_set1_epi32(w), below1 = _mm512_set1_epi32(w + 1);
  int64_t o = 0;
  for (int64_t pl = 0; pl < p->planes; pl++) {
    const float *xp = x + pl * (int64_t)p->h * w;
    for (int oh = 0; oh < p->oh; oh++, o += p->ow) {
      const float *r0 = xp + (int64_t)2 * oh * w, *r1 = r0 + w;
      for (int ow = 0; ow < p->ow; ow += 16) {
        const int count = p->ow - ow < 16 ? p->ow - ow : 16;
        const __mmask16 keep = (__mmask16)((1u << count) - 1);
        __m512 v[4];
        row_windows(r0 + 2 * ow, r1 + 2 * ow, count, v);
        __m512i arg;
        const __m512 best = max_of_four(v[0], v[1], v[2], v[3], one, below, below1, &arg);
        /* window ow + lane starts at plane index 2 oh w + 2 (ow + lane) */
        const __m512i start = _mm512_add_epi32(_mm512_set1_epi32(2 * oh * w + 2 * ow), _mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 1));
        _mm512_mask_storeu_ps(out + o + ow, keep, best);
        _mm512_mask_storeu_epi32(indices + o + ow, keep, _mm512_add_epi32(start, arg));
      }
    }
  }
}

/* The exactly tiled 2 x 2 backward, 16 windows per step; 0 when an index lies outside its window. */
K512 static int tiled_avx512_f32(const pool_geom_t *p, const float *g, const int32_t *indices, float *gi) {
  const int w = p->w;
  const __m512i lanes2 = _mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 1);
  const __m512i one = _mm512_set1_epi32(1), below = _mm512_set1_epi32(w), below1 = _mm512_set1_epi32(w + 1);
  const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i second = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  __mmask16 bad = 0;
  int64_t o = 0;
  for (int64_t pl = 0; pl < p->planes; pl++) {
    float *gp = gi + pl * (int64_t)p->h * w;
    for (int oh = 0; oh < p->oh; oh++, o += p->ow) {
      float *r0 = gp + (int64_t)2 * oh * w, *r1 = r0 + w;
      for (int ow = 0; ow < p->ow; ow += 16) {
        const int count = p->ow - ow < 16 ? p->ow - ow : 16;
        const __mmask16 keep = (__mmask16)((1u << count) - 1), lo = columns_low(count), hi = columns_high(count);
        const __m512 v = _mm512_add_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(keep, g + o + ow));
        const __m512i d = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(keep, indices + o + ow),
                                           _mm512_add_epi32(_mm512_set1_epi32(2 * oh * w + 2 * ow), lanes2));
        const __mmask16 m0 = _mm512_cmpeq_epi32_mask(d, _mm512_setzero_si512()), m1 = _mm512_cmpeq_epi32_mask(d, one);
        const __mmask16 m2 = _mm512_cmpeq_epi32_mask(d, below), m3 = _mm512_cmpeq_epi32_mask(d, below1);
        bad |= keep & (__mmask16)~(m0 | m1 | m2 | m3);
        const __m512 g0 = _mm512_maskz_mov_ps(m0, v), g1 = _mm512_maskz_mov_ps(m1, v);
        const __m512 g2 = _mm512_maskz_mov_ps(m2, v), g3 = _mm512_maskz_mov_ps(m3, v);
        _mm512_mask_storeu_ps(r0 + 2 * ow, lo, _mm512_permutex2var_ps(g0, first, g1));
        _mm512_mask_storeu_ps(r0 + 2 * ow + 16, hi, _mm512_permutex2var_ps(g0, second, g1));
        _mm512_mask_storeu_ps(r1 + 2 * ow, lo, _mm512_permutex2var_ps(g2, first, g3));
        _mm512_mask_storeu_ps(r1 + 2 * ow + 16, hi, _mm512_permutex2var_ps(g2, second, g3));
      }
    }
  }
  return bad == 0;
}

/* Two output rows of up to 8 windows each in one vector: the even and odd columns of four input rows w apart. */
typedef struct {
  __m512i even, odd; /* lane j's column in the two-register permute of rows 0 and 2 (or 1 and 3) */
  __mmask16 row;     /* the 2 ow columns of an input row the windows read */
  int w;
} two_rows_t;

K512 INLINE two_rows_t two_rows_plan(int w, int ow) {
  int32_t e[16];
  for (int j = 0; j < 16; j++) e[j] = j < ow ? 2 * j : j < 2 * ow ? 16 + 2 * (j - ow) : 0;
  const __m512i even = _mm512_loadu_si512(e);
  const two_rows_t t = { even, _mm512_add_epi32(even, _mm512_set1_epi32(1)), (__mmask16)((1u << (2 * ow)) - 1), w };
  return t;
}

/* The windows of the output rows whose input rows start at r (the second output row's in lanes ow ... 2 ow - 1,
 * none unless `both`), as row_windows orders them. */
K512 INLINE void two_rows_windows(const two_rows_t *t, const float *r, int both, __m512 v[4]) {
  const __mmask16 second = both ? t->row : 0;
  const __m512 t0 = _mm512_maskz_loadu_ps(t->row, r), b0 = _mm512_maskz_loadu_ps(t->row, r + t->w);
  const __m512 t1 = _mm512_maskz_loadu_ps(second, r + 2 * t->w), b1 = _mm512_maskz_loadu_ps(second, r + 3 * t->w);
  v[0] = _mm512_permutex2var_ps(t0, t->even, t1);
  v[1] = _mm512_permutex2var_ps(t0, t->odd, t1);
  v[2] = _mm512_permutex2var_ps(b0, t->even, b1);
  v[3] = _mm512_permutex2var_ps(b0, t->odd, b1);
}

/* The 2 x 2 forward with window offsets. Rows of up to 8 windows go two output rows to a vector (the even
 * and odd columns of four input rows), longer ones 16 windows of one row at a time. */
K512 static void offsets_avx512_f32(int64_t rows, int w, int ow, const float *x, float *out, uint8_t *offsets) {
  const __m512i one = _mm512_set1_epi32(1), two = _mm512_set1_epi32(2), three = _mm512_set1_epi32(3);
  if (ow <= 8) {
    const two_rows_t plan = two_rows_plan(w, ow);
    for (int64_t k = 0; k < rows; k += 2) {
      const int both = rows - k >= 2;
      const __mmask16 keep = (__mmask16)((1u << ((both ? 2 : 1) * ow)) - 1);
      const float *r = x + 2 * k * w;
      if (k + POOL_AHEAD + 2 <= rows) prefetch_lines(r + 2 * POOL_AHEAD * w, 4 * w * (int64_t)sizeof(float), 0);
      __m512 v[4];
      two_rows_windows(&plan, r, both, v);
      __m512i arg;
      const __m512 best = max_of_four(v[0], v[1], v[2], v[3], one, two, three, &arg);
      _mm512_mask_storeu_ps(out + k * ow, keep, best);
      _mm512_mask_cvtepi32_storeu_epi8(offsets + k * ow, keep, arg);
    }
    return;
  }
  for (int64_t k = 0; k < rows; k++) {
    const float *r0 = x + 2 * k * w, *r1 = r0 + w;
    if (k + POOL_AHEAD < rows) prefetch_lines(r0 + 2 * POOL_AHEAD * w, 2 * w * (int64_t)sizeof(float), 0);
    for (int j = 0; j < ow; j += 16) {
      const int count = ow - j < 16 ? ow - j : 16;
      const __mmask16 keep = (__mmask16)((1u << count) - 1);
      __m512 v[4];
      row_windows(r0 + 2 * j, r1 + 2 * j, count, v);
      __m512i arg;
      const __m512 best = max_of_four(v[0], v[1], v[2], v[3], one, two, three, &arg);
      _mm512_mask_storeu_ps(out + k * ow + j, keep, best);
      _mm512_mask_cvtepi32_storeu_epi8(offsets + k * ow + j, keep, arg);
    }
  }
}

/* 16 window offsets from `at` as 32-bit lanes: one 16-byte load while 16 bytes remain before `end`, else a copy
 * of the `count` that do (lanes past them read as 4: no gradient). */
K512 INLINE __m512i load_offsets(const uint8_t *at, const uint8_t *end, int count) {
  if (end - at >= 16) return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)at));
  uint8_t tail[16];
  memset(tail, 4, sizeof tail);
  memcpy(tail, at, (size_t)count);
  return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)tail));
}

/* The exactly tiled 2 x 2 backward from window offsets (rows of w = 2 ow gradients), two output rows to a
 * vector where ow <= 8, else 16 windows of one row at a time. */
K512 static void tiled_offsets_avx512_f32(int64_t rows, int ow, const float *g, const uint8_t *offsets, float *gi) {
  const int w = 2 * ow;
  const uint8_t *end = offsets + rows * ow;
  const __m512i one = _mm512_set1_epi32(1), two = _mm512_set1_epi32(2), three = _mm512_set1_epi32(3);
  const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  if (ow <= 8) {
    const __m512i next = _mm512_add_epi32(first, _mm512_set1_epi32(ow)); /* the second row's windows */
    const __mmask16 row = (__mmask16)((1u << w) - 1);
    for (int64_t k = 0; k < rows; k += 2) {
      const int both = rows - k >= 2, count = (both ? 2 : 1) * ow;
      const __mmask16 keep = (__mmask16)((1u << count) - 1), second = both ? row : 0;
      if (k + POOL_AHEAD + 2 <= rows) {
        prefetch_lines(g + (k + POOL_AHEAD) * ow, 2 * ow * (int64_t)sizeof(float), 0);
        prefetch_lines(offsets + (k + POOL_AHEAD) * ow, 2 * ow, 0);
        prefetch_lines(gi + 2 * (k + POOL_AHEAD) * w, 4 * w * (int64_t)sizeof(float), 1);
      }
      const __m512 v = _mm512_add_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(keep, g + k * ow));
      const __m512i d = load_offsets(offsets + k * ow, end, count);
      const __m512 g0 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(d, _mm512_setzero_si512()), v);
      const __m512 g1 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(d, one), v);
      const __m512 g2 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(d, two), v);
      const __m512 g3 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(d, three), v);
      float *r = gi + 2 * k * w;
      _mm512_mask_storeu_ps(r, row, _mm512_permutex2var_ps(g0, first, g1));
      _mm512_mask_storeu_ps(r + w, row, _mm512_permutex2var_ps(g2, first, g3));
      _mm512_mask_storeu_ps(r + 2 * w, second, _mm512_permutex2var_ps(g0, next, g1));
      _mm512_mask_storeu_ps(r + 3 * w, second, _mm512_permutex2var_ps(g2, next, g3));
    }
    return;
  }
  const __m512i later = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  for (int64_t k = 0; k < rows; k++) {
    float *r0 = gi + 2 * k * w, *r1 = r0 + w;
    if (k + POOL_AHEAD < rows) {
      prefetch_lines(g + (k + POOL_AHEAD) * ow, ow * (int64_t)sizeof(float), 0);
      prefetch_lines(offsets + (k + POOL_AHEAD) * ow, ow, 0);
      prefetch_lines(r0 + 2 * POOL_AHEAD * w, 2 * w * (int64_t)sizeof(float), 1);
    }
    for (int j = 0; j < ow; j += 16) {
      const int count = ow - j < 16 ? ow - j : 16;
      const __mmask16 keep = (__mmask16)((1u << count) - 1), lo = columns_low(count), hi = columns_high(count);
      const __m512 v = _mm512_add_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(keep, g + k * ow + j));
      const __m512i d = load_offsets(offsets + k * ow + j, end, count);
      const __m512 g0 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(d, _mm512_setzero_si512()), v);
      const __m512 g1 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(d, one), v);
      const __m512 g2 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(d, two), v);
      const __m512 g3 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(d, three), v);
      _mm512_mask_storeu_ps(r0 + 2 * j, lo, _mm512_permutex2var_ps(g0, first, g1));
      _mm512_mask_storeu_ps(r0 + 2 * j + 16, hi, _mm512_permutex2var_ps(g0, later, g1));
      _mm512_mask_storeu_ps(r1 + 2 * j, lo, _mm512_permutex2var_ps(g2, first, g3));
      _mm512_mask_storeu_ps(r1 + 2 * j + 16, hi, _mm512_permutex2var_ps(g2, later, g3));
    }
  }
}

/* The low and high eight lanes of v, and v from them (AVX-512F alone: no AVX512DQ). */
K512 INLINE __m256 low8(__m512 v) { return _mm512_castps512_ps256(v); }
K512 INLINE __m256 high8(__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }
K512 INLINE __m512 join8(__m256 lo, __m256 hi) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
}

/* Sixteen 2 x 2 windows' means in avg_f32_forward's arithmetic: ((tl + tr) + bl) + br in double, over 4, rounded
 * to float (v: the windows' top-left, top-right, bottom-left and bottom-right elements). */
K512 INLINE __m512 mean_of_four(const __m512 v[4]) {
  const __m512d quarter = _mm512_set1_pd(0.25);
  __m512d half[2];
  for (int h = 0; h < 2; h++) {
    const __m512d a = _mm512_cvtps_pd(h ? high8(v[0]) : low8(v[0])), b = _mm512_cvtps_pd(h ? high8(v[1]) : low8(v[1]));
    const __m512d c = _mm512_cvtps_pd(h ? high8(v[2]) : low8(v[2])), d = _mm512_cvtps_pd(h ? high8(v[3]) : low8(v[3]));
    /* NOTE: a product by 0.25 is the quotient by 4, exactly (a power of two; these sums are not subnormal) */
    half[h] = _mm512_mul_pd(_mm512_add_pd(_mm512_add_pd(_mm512_add_pd(a, b), c), d), quarter);
  }
  return join8(_mm512_cvtpd_ps(half[0]), _mm512_cvtpd_ps(half[1]));
}

/* Sixteen window gradients over 4 in avg_f32_backward's arithmetic (in double, rounded to float). */
K512 INLINE __m512 quarter_of(__m512 g) {
  const __m512d quarter = _mm512_set1_pd(0.25);
  return join8(_mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(low8(g)), quarter)),
               _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(high8(g)), quarter)));
}

/* avg_f32_forward's 2 x 2 windows, 16 a step. Planes twice the output's height run as one tall plane, two output
 * rows to a vector where rows have up to 8 windows (as offsets_avx512_f32). */
K512 static void avg_2x2_forward_avx512(const pool_geom_t *p, const float *x, float *out) {
  const int w = p->w, ow = p->ow;
  if (2 * p->oh == p->h && ow <= 8) {
    const int64_t rows = (int64_t)p->planes * p->oh;
    const two_rows_t plan = two_rows_plan(w, ow);
    for (int64_t k = 0; k < rows; k += 2) {
      const int both = rows - k >= 2;
      const float *r = x + 2 * k * w;
      if (k + POOL_AHEAD + 2 <= rows) prefetch_lines(r + 2 * POOL_AHEAD * w, 4 * w * (int64_t)sizeof(float), 0);
      __m512 v[4];
      two_rows_windows(&plan, r, both, v);
      _mm512_mask_storeu_ps(out + k * ow, (__mmask16)((1u << ((both ? 2 : 1) * ow)) - 1), mean_of_four(v));
    }
    return;
  }
  int64_t o = 0;
  for (int64_t pl = 0; pl < p->planes; pl++) {
    const float *xp = x + pl * (int64_t)p->h * w;
    for (int oh = 0; oh < p->oh; oh++, o += ow) {
      const float *r0 = xp + (int64_t)2 * oh * w, *r1 = r0 + w;
      if (oh + POOL_AHEAD < p->oh) prefetch_lines(r0 + 2 * POOL_AHEAD * w, 2 * w * (int64_t)sizeof(float), 0);
      for (int j = 0; j < ow; j += 16) {
        const int count = ow - j < 16 ? ow - j : 16;
        __m512 v[4];
        row_windows(r0 + 2 * j, r1 + 2 * j, count, v);
        _mm512_mask_storeu_ps(out + o + j, (__mmask16)((1u << count) - 1), mean_of_four(v));
      }
    }
  }
}

/* avg_f32_backward's exactly tiled 2 x 2 windows (w = 2 ow, h = 2 oh; rows: planes x oh), 16 windows a step, and
 * with y (sigmoid's output, the input's shape) each gradient times y (1 - y) in float, as sigmoid_backward_f32
 * rounds it: one pass for sigmoidAvgPool2d's backward. */
K512 static void avg_2x2_tiled_backward_avx512(int64_t rows, int ow, const float *g, const float *y, float *gi) {
  const int w = 2 * ow;
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i later = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  for (int64_t k = 0; k < rows; k++) {
    float *r0 = gi + 2 * k * w, *r1 = r0 + w;
    const float *y0 = y ? y + 2 * k * w : NULL, *y1 = y0 ? y0 + w : NULL;
    if (k + POOL_AHEAD < rows) {
      prefetch_lines(g + (k + POOL_AHEAD) * ow, ow * (int64_t)sizeof(float), 0);
      if (y) prefetch_lines(y0 + 2 * POOL_AHEAD * w, 2 * w * (int64_t)sizeof(float), 0);
      prefetch_lines(r0 + 2 * POOL_AHEAD * w, 2 * w * (int64_t)sizeof(float), 1);
    }
    for (int j = 0; j < ow; j += 16) {
      const int count = ow - j < 16 ? ow - j : 16;
      const __mmask16 keep = (__mmask16)((1u << count) - 1), lo = columns_low(count), hi = columns_high(count);
      const __m512 q = quarter_of(_mm512_maskz_loadu_ps(keep, g + k * ow + j));
      __m512 a = _mm512_permutex2var_ps(q, first, q), b = _mm512_permutex2var_ps(q, later, q);
      __m512 a1 = a, b1 = b;
      if (y) {
        const __m512 ya = _mm512_maskz_loadu_ps(lo, y0 + 2 * j), yb = _mm512_maskz_loadu_ps(hi, y0 + 2 * j + 16);
        const __m512 za = _mm512_maskz_loadu_ps(lo, y1 + 2 * j), zb = _mm512_maskz_loadu_ps(hi, y1 + 2 * j + 16);
        a = _mm512_mul_ps(a, _mm512_mul_ps(ya, _mm512_sub_ps(one, ya)));
        b = _mm512_mul_ps(b, _mm512_mul_ps(yb, _mm512_sub_ps(one, yb)));
        a1 = _mm512_mul_ps(a1, _mm512_mul_ps(za, _mm512_sub_ps(one, za)));
        b1 = _mm512_mul_ps(b1, _mm512_mul_ps(zb, _mm512_sub_ps(one, zb)));
      }
      _mm512_mask_storeu_ps(r0 + 2 * j, lo, a);
      _mm512_mask_storeu_ps(r0 + 2 * j + 16, hi, b);
      _mm512_mask_storeu_ps(r1 + 2 * j, lo, a1);
      _mm512_mask_storeu_ps(r1 + 2 * j + 16, hi, b1);
    }
  }
}
#else
static int avx512(void) { return 0; }
static void max_pool_2x2_f32(const pool_geom_t *p, const float *x, float *out, int32_t *indices) { max_pool_f32(p, x, out, indices); }
static int tiled_avx512_f32(const pool_geom_t *p, const float *g, const int32_t *indices, float *gi) { return tiled_f32(p, g, indices, gi); }
static void offsets_avx512_f32(int64_t rows, int w, int ow, const float *x, float *out, uint8_t *offsets) { offsets_f32(rows, w, ow, x, out, offsets); }
static void tiled_offsets_avx512_f32(int64_t rows, int ow, const float *g, const uint8_t *offsets, float *gi) { tiled_offsets_f32(rows, ow, g, offsets, gi); }
static void avg_2x2_forward_avx512(const pool_geom_t *p, const float *x, float *out) { avg_f32_forward(p, x, out, 1); }
/* never called: avx512() is 0 here */
static void avg_2x2_tiled_backward_avx512(int64_t rows, int ow, const float *g, const float *y, float *gi) {
  (void)rows; (void)ow; (void)g; (void)y; (void)gi;
  abort();
}
#endif

/* Large poolings are shared with the helper thread (helper_units) in units of whole planes: every output
 * and gradient element belongs to one plane, so the result does not depend on the split. From
 * POOL_SPLIT_MIN input elements (a quarter of TAPEGRAD_SPLIT_MIN_WORK where that is larger): below it,
 * waking the helper costs about as much as it saves. Units of about POOL_UNIT_ELEMENTS input elements.
 * Timings: bench/NOTES-conv.md, "Pooling in C". */
#define POOL_SPLIT_MIN ((int64_t)1 << 18)
#define POOL_UNIT_ELEMENTS ((int64_t)1 << 16)

enum { MAX_FORWARD, MAX_BACKWARD, AVG_FORWARD, AVG_BACKWARD, SIGMOID_AVG_FORWARD, SIGMOID_AVG_BACKWARD };

typedef struct {
  int kind, f64, include_pad;
  pool_geom_t p;
  const void *in;   /* x (forward) or gradOut (backward) */
  void *out;        /* out (forward) or gradInput (backward) */
  int32_t *indices; /* max pooling: flat indices within the plane, */
  uint8_t *offsets; /* or window offsets (2 x 2 windows) */
  void *s;          /* sigmoid then average pooling: sigmoid's output, the input's shape */
  int64_t per_unit; /* planes */
} pool_job_t;

/* Whether 2 x 2 windows tile the planes exactly (w = 2 ow, h = 2 oh): their rows then pair up as one tall plane. */
static int tiles_2x2(const pool_geom_t *p) { return is_2x2(p) && 2 * p->oh == p->h && 2 * p->ow == p->w; }

static void avg_forward(const pool_job_t *J, const pool_geom_t *q, const void *in, void *out) {
  if (J->f64) avg_f64_forward(q, (const double *)in, (double *)out, J->include_pad);
  else if (is_2x2(q) && avx512()) avg_2x2_forward_avx512(q, (const float *)in, (float *)out);
  else avg_f32_forward(q, (const float *)in, (float *)out, J->include_pad);
}

static void avg_backward(const pool_job_t *J, const pool_geom_t *q, const void *in, void *out) {
  if (J->f64) avg_f64_backward(q, (const double *)in, (double *)out, J->include_pad);
  else if (tiles_2x2(q) && avx512()) avg_2x2_tiled_backward_avx512((int64_t)q->planes * q->oh, q->ow, (const float *)in, NULL, (float *)out);
  else avg_f32_backward(q, (const float *)in, (float *)out, J->include_pad);
}

/* sigmoid then average pooling works through its planes a few at a time, about SIGMOID_CHUNK_ELEMENTS input
 * elements, so that sigmoid's output (or the pooling's gradient) is still in the L1 cache when the second
 * step reads it. */
#define SIGMOID_CHUNK_ELEMENTS 4096

/* Runs fn over the planes of q a few at a time (SIGMOID_CHUNK_ELEMENTS input elements, at least a plane): in and
 * out the chunk's operands of a forward (input, output sizes) or a backward (output, input sizes), s its part of
 * sigmoid's output. */
typedef void (*chunk_fn)(const pool_job_t *J, const pool_geom_t *c, const char *in, char *s, char *out);

static void by_chunks(const pool_job_t *J, const pool_geom_t *q, const void *in, void *s, void *out, int forward, chunk_fn fn) {
  const int64_t in_plane = (int64_t)q->h * q->w, out_plane = (int64_t)q->oh * q->ow;
  const int64_t chunk = SIGMOID_CHUNK_ELEMENTS / in_plane > 1 ? SIGMOID_CHUNK_ELEMENTS / in_plane : 1;
  const size_t size = J->f64 ? sizeof(double) : sizeof(float);
  for (int64_t p0 = 0; p0 < q->planes; p0 += chunk) {
    pool_geom_t c = *q;
    c.planes = (int)(q->planes - p0 < chunk ? q->planes - p0 : chunk);
    fn(J, &c, (const char *)in + (size_t)(p0 * (forward ? in_plane : out_plane)) * size, (char *)s + (size_t)(p0 * in_plane) * size,
       (char *)out + (size_t)(p0 * (forward ? out_plane : in_plane)) * size);
  }
}

/* Sigmoid of x into s, then average pooling of s. */
static void sigmoid_avg_forward_chunk(const pool_job_t *J, const pool_geom_t *c, const char *x, char *s, char *out) {
  const int64_t n = (int64_t)c->planes * c->h * c->w;
  if (J->f64) native_sigmoid_f64((const double *)x, (double *)s, n);
  else native_sigmoid_f32((const float *)x, (float *)s, n);
  avg_forward(J, c, s, out);
}

/* The pooling's gradient, then each element times s (1 - s): sigmoid's backward from its output s. */
static void sigmoid_avg_backward_chunk(const pool_job_t *J, const pool_geom_t *c, const char *g, char *s, char *gi) {
  const int64_t n = (int64_t)c->planes * c->h * c->w;
  avg_backward(J, c, g, gi);
  if (J->f64) native_sigmoid_backward_f64((const double *)gi, (const double *)s, (double *)gi, n);
  else native_sigmoid_backward_f32((const float *)gi, (const float *)s, (float *)gi, n);
}

/* Sigmoid, then average pooling of its output s, over the planes of q: the bits of the two separate loops. */
static void sigmoid_avg_forward(const pool_job_t *J, const pool_geom_t *q, const void *in, void *s, void *out) {
  by_chunks(J, q, in, s, out, 1, sigmoid_avg_forward_chunk);
}

/* The gradient of sigmoid then average pooling, the bits of the two separate loops; one pass where 2 x 2 windows
 * tile float32 planes. */
static void sigmoid_avg_backward(const pool_job_t *J, const pool_geom_t *q, const void *g, void *s, void *gi) {
  if (!J->f64 && tiles_2x2(q) && avx512()) {
    avg_2x2_tiled_backward_avx512((int64_t)q->planes * q->oh, q->ow, (const float *)g, (const float *)s, (float *)gi);
    return;
  }
  by_chunks(J, q, g, s, gi, 0, sigmoid_avg_backward_chunk);
}

/* Max pooling with window offsets over the planes of q; planes whose height is twice the output's run as one
 * tall plane. */
static void max_pool_offsets(const pool_job_t *J, const pool_geom_t *q, const void *in, void *out, uint8_t *offsets) {
  const int64_t in_plane = (int64_t)q->h * q->w, out_plane = (int64_t)q->oh * q->ow;
  const int tall = 2 * q->oh == q->h;
  const int64_t planes = tall ? 1 : q->planes, rows = tall ? q->planes * (int64_t)q->oh : q->oh;
  if (J->kind == MAX_FORWARD) {
    for (int64_t pl = 0; pl < planes; pl++) {
      if (J->f64) offsets_f64(rows, q->w, q->ow, (const double *)in + pl * in_plane, (double *)out + pl * out_plane, offsets + pl * out_plane);
      else if (avx512()) offsets_avx512_f32(rows, q->w, q->ow, (const float *)in + pl * in_plane, (float *)out + pl * out_plane, offsets + pl * out_plane);
      else offsets_f32(rows, q->w, q->ow, (const float *)in + pl * in_plane, (float *)out + pl * out_plane, offsets + pl * out_plane);
    }
  } else if (!tall || 2 * q->ow != q->w) {
    if (J->f64) scatter_offsets_f64(q, (const double *)in, offsets, (double *)out);
    else scatter_offsets_f32(q, (const float *)in, offsets, (float *)out);
  } else if (J->f64) {
    tiled_offsets_f64(rows, q->ow, (const double *)in, offsets, (double *)out);
  } else if (avx512()) {
    tiled_offsets_avx512_f32(rows, q->ow, (const float *)in, offsets, (float *)out);
  } else {
    tiled_offsets_f32(rows, q->ow, (const float *)in, offsets, (float *)out);
  }
}

/* Unit u: planes [u per_unit, ...) of the job. */
static void pool_unit(const void *arg, int u, int worker) {
  (void)worker;
  const pool_job_t *J = arg;
  pool_geom_t q = J->p;
  const int64_t p0 = u * J->per_unit, in_plane = (int64_t)q.h * q.w, out_plane = (int64_t)q.oh * q.ow;
  q.planes = (int)(q.planes - p0 < J->per_unit ? q.planes - p0 : J->per_unit);
  const size_t size = J->f64 ? sizeof(double) : sizeof(float);
  const int forward = J->kind == MAX_FORWARD || J->kind == AVG_FORWARD || J->kind == SIGMOID_AVG_FORWARD;
  const char *in = (const char *)J->in + (size_t)(p0 * (forward ? in_plane : out_plane)) * size;
  char *out = (char *)J->out + (size_t)(p0 * (forward ? out_plane : in_plane)) * size;
  int32_t *indices = J->indices ? J->indices + p0 * out_plane : NULL;
  char *s = J->s ? (char *)J->s + (size_t)(p0 * in_plane) * size : NULL;
  if (J->offsets) {
    max_pool_offsets(J, &q, in, out, J->offsets + p0 * out_plane);
    return;
  }
  switch (J->kind) {
    case MAX_FORWARD:
      if (J->f64) max_pool_f64(&q, (const double *)in, (double *)out, indices);
      else if (is_2x2(&q) && avx512()) max_pool_2x2_f32(&q, (const float *)in, (float *)out, indices);
      else max_pool_f32(&q, (const float *)in, (float *)out, indices);
      break;
    case MAX_BACKWARD: {
      const int tiled = is_2x2(&q) && 2 * q.oh == q.h && 2 * q.ow == q.w;
      if (J->f64) {
        if (!(tiled && tiled_f64(&q, (const double *)in, indices, (double *)out))) scatter_f64(&q, (const double *)in, indices, (double *)out);
      } else if (!(tiled && (avx512() ? tiled_avx512_f32(&q, (const float *)in, indices, (float *)out)
                                      : tiled_f32(&q, (const float *)in, indices, (float *)out)))) {
        scatter_f32(&q, (const float *)in, indices, (float *)out);
      }
      break;
    }
    case AVG_FORWARD: avg_forward(J, &q, in, out); break;
    case AVG_BACKWARD: avg_backward(J, &q, in, out); break;
    case SIGMOID_AVG_FORWARD: sigmoid_avg_forward(J, &q, in, s, out); break;
    default: sigmoid_avg_backward(J, &q, in, s, out);
  }
}

static void run_pool(int kind, int f64, const pool_geom_t *p, const void *in, void *out, int32_t *indices, uint8_t *offsets,
                     void *s, int include_pad) {
  const int64_t in_plane = (int64_t)p->h * p->w, elements = p->planes * in_plane;
  int64_t per_unit = POOL_UNIT_ELEMENTS / in_plane;
  if (per_unit < 1) per_unit = 1;
  const int units = (int)((p->planes + per_unit - 1) / per_unit);
  const int64_t split_min = native_split_min_work() / 4 > POOL_SPLIT_MIN ? native_split_min_work() / 4 : POOL_SPLIT_MIN;
  pool_job_t job = { kind, f64, include_pad, *p, in, out, indices, offsets, s, per_unit };
  helper_units(pool_unit, &job, units, native_max_threads() > 1 && elements >= split_min);
}

static const char WHO[] = "tapegrad native maxPool2d";
static const char WHO_AVG[] = "tapegrad native avgPool2d";
static const char WHO_SIGMOID_AVG[] = "tapegrad native sigmoidAvgPool2d";

/* Throws a TypeError (range 0) or RangeError (range 1) whose message is `who`, ": " and `what`. */
static void throw_pool_error(napi_env env, int range, const char *who, const char *what) {
  char message[200];
  snprintf(message, sizeof message, "%s: %s", who, what);
  if (range) napi_throw_range_error(env, NULL, message);
  else napi_throw_type_error(env, NULL, message);
}

static int read_pool_geometry(napi_env env, napi_value v, pool_geom_t *p, const char *who) {
  bool typed = false;
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_is_typedarray(env, v, &typed) != napi_ok || !typed ||
      napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok || type != napi_int32_array || length != 13) {
    throw_pool_error(env, 0, who, "the geometry must be an Int32Array of 13 sizes");
    return 0;
  }
  const int32_t *a = data;
  *p = (pool_geom_t){ a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12] };
  if (p->planes < 0 || p->h <= 0 || p->w <= 0 || p->kh <= 0 || p->kw <= 0 || p->sh <= 0 || p->sw <= 0 || p->ph < 0 ||
      p->pw < 0 || p->dh <= 0 || p->dw <= 0 || p->oh <= 0 || p->ow <= 0 || (int64_t)p->h * p->w > INT32_MAX ||
      (int64_t)p->oh * p->sh > INT32_MAX / 2 || (int64_t)p->ow * p->sw > INT32_MAX / 2) {
    throw_pool_error(env, 1, who, "the geometry's sizes are out of range");
    return 0;
  }
  return 1;
}

/* The indices operand: an Int32Array of flat indices within the plane, or a Uint8Array of window offsets
 * (2 x 2, stride-2, unpadded, undilated windows only), at least `extent` long. Returns 0 with a JavaScript
 * error. */
static int index_operand(napi_env env, napi_value v, const pool_geom_t *p, int64_t extent, int32_t **indices, uint8_t **offsets) {
  bool typed = false;
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_is_typedarray(env, v, &typed) != napi_ok || !typed ||
      napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok ||
      (type != napi_int32_array && type != napi_uint8_array)) {
    napi_throw_type_error(env, NULL, "tapegrad native maxPool2d: indices must be an Int32Array or a Uint8Array of window offsets");
    return 0;
  }
  if (type == napi_uint8_array && !is_2x2(p)) {
    napi_throw_range_error(env, NULL, "tapegrad native maxPool2d: window offsets need 2 x 2 windows of stride 2 without padding or dilation");
    return 0;
  }
  if ((int64_t)length < extent) {
    napi_throw_range_error(env, NULL, "tapegrad native maxPool2d: indices is too short for its geometry");
    return 0;
  }
  *indices = type == napi_int32_array ? data : NULL;
  *offsets = type == napi_uint8_array ? data : NULL;
  return 1;
}

#define POOL_ARGS(count, who)                                                             \
  size_t argc = count;                                                                    \
  napi_value argv[count];                                                                 \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != count) { \
    throw_pool_error(env, 0, who, "expected " #count " arguments");                       \
    return NULL;                                                                          \
  }

static napi_value max_pool_forward(napi_env env, napi_callback_info info) {
  POOL_ARGS(4, WHO)
  pool_geom_t p;
  if (!read_pool_geometry(env, argv[0], &p, WHO)) return NULL;
  const int64_t in_size = (int64_t)p.planes * p.h * p.w, out_size = (int64_t)p.planes * p.oh * p.ow;
  const int type = float_operand_type(env, argv[1], WHO);
  if (type < 0) return NULL;
  void *x = float_operand(env, argv[1], type, 0, in_size, WHO, "x", "geometry");
  void *out = x ? float_operand(env, argv[2], type, 0, out_size, WHO, "out", "geometry") : NULL;
  int32_t *indices = NULL;
  uint8_t *offsets = NULL;
  if (!out || !index_operand(env, argv[3], &p, out_size, &indices, &offsets)) return NULL;
  if (p.planes > 0) run_pool(MAX_FORWARD, type == napi_float64_array, &p, x, out, indices, offsets, NULL, 0);
  return NULL;
}

static napi_value max_pool_backward(napi_env env, napi_callback_info info) {
  POOL_ARGS(4, WHO)
  pool_geom_t p;
  if (!read_pool_geometry(env, argv[0], &p, WHO)) return NULL;
  const int64_t in_size = (int64_t)p.planes * p.h * p.w, out_size = (int64_t)p.planes * p.oh * p.ow;
  const int type = float_operand_type(env, argv[1], WHO);
  if (type < 0) return NULL;
  void *g = float_operand(env, argv[1], type, 0, out_size, WHO, "gradOut", "geometry");
  int32_t *indices = NULL;
  uint8_t *offsets = NULL;
  if (!g || !index_operand(env, argv[2], &p, out_size, &indices, &offsets)) return NULL;
  void *gi = float_operand(env, argv[3], type, 0, in_size, WHO, "gradInput", "geometry");
  if (!gi) return NULL;
  if (p.planes > 0) run_pool(MAX_BACKWARD, type == napi_float64_array, &p, g, gi, indices, offsets, NULL, 0);
  return NULL;
}

/* avgPool2dForward(geometry, x, out, countIncludePad), avgPool2dBackward(geometry, gradOut, gradInput, countIncludePad),
 * sigmoidAvgPool2dForward(geometry, x, s, out, countIncludePad) (s = sigmoid(x), out its average pooling) and
 * sigmoidAvgPool2dBackward(geometry, gradOut, s, gradInput, countIncludePad) (gradInput = the pooling's gradient
 * times s (1 - s)). The shared checks: the forward reads x (the input's size) and writes out (the output's size),
 * the backward reads gradOut (the output's size) and writes gradInput (the input's size); s has the input's size. */
static napi_value avg_pool(napi_env env, napi_callback_info info, int backward, int sigmoid) {
  const char *who = sigmoid ? WHO_SIGMOID_AVG : WHO_AVG;
  const size_t count = sigmoid ? 5 : 4;
  size_t argc = count;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != count) {
    throw_pool_error(env, 0, who, sigmoid ? "expected 5 arguments" : "expected 4 arguments");
    return NULL;
  }
  pool_geom_t p;
  bool include_pad;
  if (!read_pool_geometry(env, argv[0], &p, who)) return NULL;
  if (napi_get_value_bool(env, argv[count - 1], &include_pad) != napi_ok) {
    throw_pool_error(env, 0, who, "countIncludePad must be a boolean");
    return NULL;
  }
  const int64_t in_size = (int64_t)p.planes * p.h * p.w, out_size = (int64_t)p.planes * p.oh * p.ow;
  const int type = float_operand_type(env, argv[1], who);
  if (type < 0) return NULL;
  void *src = float_operand(env, argv[1], type, 0, backward ? out_size : in_size, who, backward ? "gradOut" : "x", "geometry");
  void *s = src && sigmoid ? float_operand(env, argv[2], type, 0, in_size, who, "s", "geometry") : NULL;
  if (!src || (sigmoid && !s)) return NULL;
  void *dst = float_operand(env, argv[count - 2], type, 0, backward ? in_size : out_size, who, backward ? "gradInput" : "out", "geometry");
  if (!dst) return NULL;
  const int kind = sigmoid ? (backward ? SIGMOID_AVG_BACKWARD : SIGMOID_AVG_FORWARD) : (backward ? AVG_BACKWARD : AVG_FORWARD);
  if (p.planes > 0) run_pool(kind, type == napi_float64_array, &p, src, dst, NULL, NULL, s, include_pad);
  return NULL;
}

static napi_value avg_pool_forward(napi_env env, napi_callback_info info) { return avg_pool(env, info, 0, 0); }

static napi_value avg_pool_backward(napi_env env, napi_callback_info info) { return avg_pool(env, info, 1, 0); }

static napi_value sigmoid_avg_pool_forward(napi_env env, napi_callback_info info) { return avg_pool(env, info, 0, 1); }

static napi_value sigmoid_avg_pool_backward(napi_env env, napi_callback_info info) { return avg_pool(env, info, 1, 1); }

int register_pool(napi_env env, napi_value exports) {
  static const native_fn_t functions[] = {
    { "maxPool2dForward", max_pool_forward }, { "maxPool2dBackward", max_pool_backward },
    { "avgPool2dForward", avg_pool_forward }, { "avgPool2dBackward", avg_pool_backward },
    { "sigmoidAvgPool2dForward", sigmoid_avg_pool_forward }, { "sigmoidAvgPool2dBackward", sigmoid_avg_pool_backward },
  };
  return register_functions(env, exports, functions, sizeof functions / sizeof functions[0]);
}
