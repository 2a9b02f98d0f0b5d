/*
 * A float32 gemm for the mid-size products of training small networks (the MLP's 128 x 784 x 128), with
 * register tiles in AVX2 + FMA and no packing. OpenBLAS packs both operands into panels before every
 * call; at these sizes the packing costs as much as a third of the product.
 * Without packing, the product can also be cut into many small column blocks at no extra cost, which the
 * two threads of a split claim one by one (blas_gemm.c), so a helper that starts late or is descheduled
 * costs one block instead of half the product.
 *
 * Layouts, with C m x n, row-major:
 *   NT  C[i][j] = sum_p A[i][p] B[j][p]   (x @ W^T: linear's forward) -- dot products along rows of A and B
 *   NN  C[i][j] = sum_p A[i][p] B[p][j]   (g @ W: linear's input gradient) -- broadcast A, rows of B
 *   TN  C[i][j] = sum_p A[p][i] B[p][j]   (g^T @ x: linear's weight gradient) -- broadcast A, rows of B
 * TT and float64 go to BLAS.
 * NOTE: every element of C is computed by the same sequence of operations wherever its tile lies and
 * however the columns are split between threads (NT: eight lane sums over p, then one fixed horizontal
 * sum; NN/TN: one sequential sum over p), so however a product is cut into blocks of rows or columns, and
 * whichever thread computes a block, the result is the same bit for bit.
 */
#include <stdint.h>

#include "native.h"
#include "tile_gemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include "transpose16.h"

#define TILE_TARGET __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

int tile_gemm_available(void) {
  static int cached = -1;
  if (cached < 0) {
    __builtin_cpu_init();
    cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  return cached;
}

/* Lanes [0, count) on, the rest off: the mask of a partial vector's loads and stores. */
TILE_TARGET INLINE __m256i lane_mask(int count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The fixed horizontal sum: halves, then pairs, then the last two. */
TILE_TARGET INLINE float hsum(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

/* Where float data sits against a 32-byte boundary, in floats (0..7). */
INLINE int misalign8(const float *p) { return (int)(((uintptr_t)p >> 2) & 7); }

/* NT: an MR x NR tile of C from MR rows of A and NR rows of B, eight lanes along p, then hsum. */
TILE_TARGET INLINE void nt_tile(const int MR, const int NR, int k, const float *a, int lda, const float *b,
                                int ldb, float *c, int ldc, int beta) {
  __m256 acc[3][4];
  for (int r = 0; r < MR; r++)
    for (int s = 0; s < NR; s++) acc[r][s] = _mm256_setzero_ps();
  int p = 0;
  for (; p + 8 <= k; p += 8) {
    __m256 av[3];
    for (int r = 0; r < MR; r++) av[r] = _mm256_loadu_ps(a + (int64_t)r * lda + p);
    for (int s = 0; s < NR; s++) {
      __m256 bv = _mm256_loadu_ps(b + (int64_t)s * ldb + p);
      for (int r = 0; r < MR; r++) acc[r][s] = _mm256_fmadd_ps(av[r], bv, acc[r][s]);
    }
  }
  if (p < k) {
    /* masked-off lanes load as zeros and read no memory */
    __m256i mask = lane_mask(k - p);
    __m256 av[3];
    for (int r = 0; r < MR; r++) av[r] = _mm256_maskload_ps(a + (int64_t)r * lda + p, mask);
    for (int s = 0; s < NR; s++) {
      __m256 bv = _mm256_maskload_ps(b + (int64_t)s * ldb + p, mask);
      for (int r = 0; r < MR; r++) acc[r][s] = _mm256_fmadd_ps(av[r], bv, acc[r][s]);
    }
  }
  for (int r = 0; r < MR; r++) {
    float *out = c + (int64_t)r * ldc;
    if (NR == 4) {
      /* hsum's order for four columns at once: halves added, the four 4-lane vectors transposed, then
       * (lanes 0 + 2) + (lanes 1 + 3) */
      __m128 x0 = _mm_add_ps(_mm256_castps256_ps128(acc[r][0]), _mm256_extractf128_ps(acc[r][0], 1));
      __m128 x1 = _mm_add_ps(_mm256_castps256_ps128(acc[r][1]), _mm256_extractf128_ps(acc[r][1], 1));
      __m128 x2 = _mm_add_ps(_mm256_castps256_ps128(acc[r][2]), _mm256_extractf128_ps(acc[r][2], 1));
      __m128 x3 = _mm_add_ps(_mm256_castps256_ps128(acc[r][3]), _mm256_extractf128_ps(acc[r][3], 1));
      _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
      __m128 sums = _mm_add_ps(_mm_add_ps(x0, x2), _mm_add_ps(x1, x3));
      /* beta 0 never reads C: it may hold NaN garbage */
      _mm_storeu_ps(out, beta ? _mm_add_ps(_mm_loadu_ps(out), sums) : sums);
    } else {
      for (int s = 0; s < NR; s++) {
        float sum = hsum(acc[r][s]);
        out[s] = beta ? out[s] + sum : sum;
      }
    }
  }
}

/* NN / TN: an MR x (8 NV) tile of C, A(i, p) = a[i * a_is + p * a_ps] broadcast against rows of B; the
 * last vector covers `last` columns (1..8). */
TILE_TARGET INLINE void bc_tile(const int MR, const int NV, int last, int k, const float *a, int64_t a_is,
                                int64_t a_ps, const float *b, int ldb, float *c, int ldc, int beta) {
  __m256 acc[4][3];
  __m256i mask = lane_mask(last);
  const int full = last == 8;
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++) {
      const float *src = c + (int64_t)r * ldc + 8 * v;
      acc[r][v] = !beta ? _mm256_setzero_ps()
                : (v < NV - 1 || full) ? _mm256_loadu_ps(src) : _mm256_maskload_ps(src, mask);
    }
  for (int p = 0; p < k; p++) {
    const float *brow = b + (int64_t)p * ldb;
    __m256 bv[3];
    for (int v = 0; v < NV; v++)
      bv[v] = (v < NV - 1 || full) ? _mm256_loadu_ps(brow + 8 * v) : _mm256_maskload_ps(brow + 8 * v, mask);
    const float *acol = a + p * a_ps;
    for (int r = 0; r < MR; r++) {
      __m256 av = _mm256_broadcast_ss(acol + r * a_is);
      for (int v = 0; v < NV; v++) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++) {
      float *dst = c + (int64_t)r * ldc + 8 * v;
      if (v < NV - 1 || full) _mm256_storeu_ps(dst, acc[r][v]);
      else _mm256_maskstore_ps(dst, mask, acc[r][v]);
    }
}

#define NT_CASE(MR, NR) case MR * 8 + NR: nt_tile(MR, NR, k, ai, lda, bj, ldb, cij, ldc, beta); break;
#define BC_CASE(MR, NV) case MR * 8 + NV: bc_tile(MR, NV, last, k, ai, a_is, a_ps, bj, ldb, cij, ldc, beta); break;

/* A B (all of op(B)'s rows, in floats) small enough to stay in cache while every row of A passes once. */
#define NT_SMALL_B ((int64_t)1 << 15)

/* The NT tile whose top-left element is C[i][j], cut to rows below i1 and columns below j1. */
TILE_TARGET INLINE void nt_tile_at(const tile_gemm_t *t, int i, int i1, int j, int j1) {
  const int k = t->k, lda = t->lda, ldb = t->ldb, ldc = t->ldc, beta = t->beta;
  const int mr = i1 - i < 3 ? i1 - i : 3, nr = j1 - j < 4 ? j1 - j : 4;
  const float *ai = t->a + (int64_t)i * lda, *bj = t->b + (int64_t)j * ldb;
  float *cij = t->c + (int64_t)i * ldc + j;
  switch (mr * 8 + nr) {
    NT_CASE(3, 4) NT_CASE(3, 3) NT_CASE(3, 2) NT_CASE(3, 1)
    NT_CASE(2, 4) NT_CASE(2, 3) NT_CASE(2, 2) NT_CASE(2, 1)
    NT_CASE(1, 4) NT_CASE(1, 3) NT_CASE(1, 2) NT_CASE(1, 1)
  }
}

TILE_TARGET static void nt_part(const tile_gemm_t *t, int i0, int i1, int j0, int j1) {
  if ((int64_t)t->n * t->k <= NT_SMALL_B) {
    /* NOTE: few columns (softmax regression's x @ W^T, W 10 x 784): the rows of B stay in cache while A
     * passes once, 3 rows at a time, instead of once per 4 columns */
    for (int i = i0; i < i1; i += 3)
      for (int j = j0; j < j1; j += 4) nt_tile_at(t, i, i1, j, j1);
    return;
  }
  /* NOTE: the NR rows of B stay in L1 while the rows of A stream past them from L2 */
  for (int j = j0; j < j1; j += 4)
    for (int i = i0; i < i1; i += 3) nt_tile_at(t, i, i1, j, j1);
}

TILE_TARGET static void bc_part(const tile_gemm_t *t, int i0, int i1, int j0, int j1) {
  const int k = t->k, ldb = t->ldb, ldc = t->ldc, beta = t->beta;
  const int64_t a_is = t->ta ? 1 : t->lda, a_ps = t->ta ? t->lda : 1;
  /* Panels start where B's rows cross a 32-byte boundary (when its stride is whole vectors), so the loads
   * down a panel are aligned: a block that starts elsewhere first takes a panel up to 16 columns past the
   * boundary. Which columns share a panel changes no sum. */
  const int aligns = ldb % 8 == 0, grid = (8 - misalign8(t->b)) & 7; /* B's column j is aligned at j % 8 == grid */
  /* NOTE: the k x 24 panel of B stays in cache while the tiles of rows go down it */
  for (int j = j0; j < j1;) {
    const int to_grid = aligns ? (grid - j % 8 + 8) & 7 : 0;
    const int span = to_grid ? to_grid + 16 : 24;
    const int width = j1 - j < span ? j1 - j : span;
    const int nv = (width + 7) / 8, last = width - 8 * (nv - 1);
    const float *bj = t->b + j;
    for (int i = i0; i < i1; i += 4) {
      const int mr = i1 - i < 4 ? i1 - i : 4;
      const float *ai = t->a + i * a_is;
      float *cij = t->c + (int64_t)i * ldc + j;
      switch (mr * 8 + nv) {
        BC_CASE(4, 3) BC_CASE(4, 2) BC_CASE(4, 1)
        BC_CASE(3, 3) BC_CASE(3, 2) BC_CASE(3, 1)
        BC_CASE(2, 3) BC_CASE(2, 2) BC_CASE(2, 1)
        BC_CASE(1, 3) BC_CASE(1, 2) BC_CASE(1, 1)
      }
    }
    j += width;
  }
}

/* ---- AVX-512 (where the CPU has it, native_avx512): the same products in 16-float vectors ---------------- */

#define T512 __attribute__((target("avx512f,avx2,fma")))
#define UNROLL _Pragma("GCC unroll 8")

/* Where float data sits against a 64-byte boundary, in floats (0..15). */
INLINE int misalign16(const float *p) { return (int)(((uintptr_t)p >> 2) & 15); }

/* A 16-lane sum as one AVX2 lane sum: lanes i and i + 8 added, then hsum's order. */
T512 INLINE __m256 halves(__m512 v) {
  return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* NT: an MR x NR tile of C, sixteen lanes along p, then halves and hsum's order (four columns at once or
 * one at a time give the same bits). */
T512 INLINE void nt_tile512(const int MR, const int NR, int k, const float *a, int lda, const float *b, int ldb,
                            float *c, int ldc, int beta) {
  __m512 acc[6][4];
  UNROLL for (int r = 0; r < MR; r++)
    UNROLL for (int s = 0; s < NR; s++) acc[r][s] = _mm512_setzero_ps();
  int p = 0;
  for (; p + 16 <= k; p += 16) {
    __m512 av[6];
    UNROLL for (int r = 0; r < MR; r++) av[r] = _mm512_loadu_ps(a + (int64_t)r * lda + p);
    UNROLL for (int s = 0; s < NR; s++) {
      const __m512 bv = _mm512_loadu_ps(b + (int64_t)s * ldb + p);
      UNROLL for (int r = 0; r < MR; r++) acc[r][s] = _mm512_fmadd_ps(av[r], bv, acc[r][s]);
    }
  }
  if (p < k) {
    /* masked-off lanes load as zeros and read no memory */
    const __mmask16 mask = (__mmask16)((1u << (k - p)) - 1);
    __m512 av[6];
    UNROLL for (int r = 0; r < MR; r++) av[r] = _mm512_maskz_loadu_ps(mask, a + (int64_t)r * lda + p);
    UNROLL for (int s = 0; s < NR; s++) {
      const __m512 bv = _mm512_maskz_loadu_ps(mask, b + (int64_t)s * ldb + p);
      UNROLL for (int r = 0; r < MR; r++) acc[r][s] = _mm512_fmadd_ps(av[r], bv, acc[r][s]);
    }
  }
  UNROLL for (int r = 0; r < MR; r++) {
    float *out = c + (int64_t)r * ldc;
    if (NR == 4) {
      __m128 x0 = _mm_add_ps(_mm256_castps256_ps128(halves(acc[r][0])), _mm256_extractf128_ps(halves(acc[r][0]), 1));
      __m128 x1 = _mm_add_ps(_mm256_castps256_ps128(halves(acc[r][1])), _mm256_extractf128_ps(halves(acc[r][1]), 1));
      __m128 x2 = _mm_add_ps(_mm256_castps256_ps128(halves(acc[r][2])), _mm256_extractf128_ps(halves(acc[r][2]), 1));
      __m128 x3 = _mm_add_ps(_mm256_castps256_ps128(halves(acc[r][3])), _mm256_extractf128_ps(halves(acc[r][3]), 1));
      _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
      const __m128 sums = _mm_add_ps(_mm_add_ps(x0, x2), _mm_add_ps(x1, x3));
      _mm_storeu_ps(out, beta ? _mm_add_ps(_mm_loadu_ps(out), sums) : sums);
    } else {
      UNROLL for (int s = 0; s < NR; s++) {
        const float sum = hsum(halves(acc[r][s]));
        out[s] = beta ? out[s] + sum : sum;
      }
    }
  }
}

/* NN / TN: an MR x (16 NV) tile of C, A(i, p) = a[i a_is + p a_ps] broadcast against rows of B; the last
 * vector covers `last` columns (1..16). Each element is one sequential sum over p, as in bc_tile. */
T512 INLINE void bc_tile512(const int MR, const int NV, int last, int k, const float *a, int64_t a_is, int64_t a_ps,
                            const float *b, int ldb, float *c, int ldc, int beta) {
  __m512 acc[8][3];
  const __mmask16 full = 0xffff, tail = (__mmask16)(last >= 16 ? 0xffff : (1u << last) - 1);
  UNROLL for (int r = 0; r < MR; r++)
    UNROLL for (int v = 0; v < NV; v++)
      acc[r][v] = beta ? _mm512_maskz_loadu_ps(v < NV - 1 ? full : tail, c + (int64_t)r * ldc + 16 * v) : _mm512_setzero_ps();
  for (int p = 0; p < k; p++) {
    const float *brow = b + (int64_t)p * ldb;
    __m512 bv[3];
    /* B's row 8 rows on: the first tile of a panel reads it from memory, with masked loads that the hardware
     * prefetchers do not follow here (bench/NOTES-conv.md, "Prefetching the convolutions' streams") */
    if (p + 8 < k) UNROLL for (int v = 0; v < NV; v++) _mm_prefetch((const char *)(brow + 8 * (int64_t)ldb + 16 * v), _MM_HINT_T0);
    UNROLL for (int v = 0; v < NV; v++) bv[v] = _mm512_maskz_loadu_ps(v < NV - 1 ? full : tail, brow + 16 * v);
    const float *acol = a + p * a_ps;
    UNROLL for (int r = 0; r < MR; r++) {
      const __m512 av = _mm512_set1_ps(acol[r * a_is]);
      UNROLL for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  UNROLL for (int r = 0; r < MR; r++)
    UNROLL for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(c + (int64_t)r * ldc + 16 * v, v < NV - 1 ? full : tail, acc[r][v]);
}

#define NT512_CASE(MR, NR) case MR * 8 + NR: nt_tile512(MR, NR, k, ai, lda, bj, ldb, cij, ldc, beta); break;
#define NT512_ROW(MR) NT512_CASE(MR, 4) NT512_CASE(MR, 3) NT512_CASE(MR, 2) NT512_CASE(MR, 1)
#define BC512_CASE(MR, NV) case MR * 4 + NV: bc_tile512(MR, NV, last, k, ai, a_is, a_ps, bj, ldb, cij, ldc, beta); break;
#define BC512_ROW(MR) BC512_CASE(MR, 3) BC512_CASE(MR, 2) BC512_CASE(MR, 1)

T512 INLINE void nt_tile512_at(const tile_gemm_t *t, int i, int i1, int j, int j1) {
  const int k = t->k, lda = t->lda, ldb = t->ldb, ldc = t->ldc, beta = t->beta;
  const int mr = i1 - i < 6 ? i1 - i : 6, nr = j1 - j < 4 ? j1 - j : 4;
  const float *ai = t->a + (int64_t)i * lda, *bj = t->b + (int64_t)j * ldb;
  float *cij = t->c + (int64_t)i * ldc + j;
  switch (mr * 8 + nr) {
    NT512_ROW(6) NT512_ROW(5) NT512_ROW(4) NT512_ROW(3) NT512_ROW(2) NT512_ROW(1)
  }
}

T512 static void nt_part512(const tile_gemm_t *t, int i0, int i1, int j0, int j1) {
  if ((int64_t)t->n * t->k <= NT_SMALL_B) {
    for (int i = i0; i < i1; i += 6)
      for (int j = j0; j < j1; j += 4) nt_tile512_at(t, i, i1, j, j1);
    return;
  }
  for (int j = j0; j < j1; j += 4)
    for (int i = i0; i < i1; i += 6) nt_tile512_at(t, i, i1, j, j1);
}

T512 static void bc_part512(const tile_gemm_t *t, int i0, int i1, int j0, int j1) {
  const int k = t->k, ldb = t->ldb, ldc = t->ldc, beta = t->beta;
  const int64_t a_is = t->ta ? 1 : t->lda, a_ps = t->ta ? t->lda : 1;
  /* panels start where B's rows cross a 64-byte boundary (when its stride is whole vectors) */
  const int aligns = ldb % 16 == 0, grid = (16 - misalign16(t->b)) & 15;
  /* NOTE: the k x 48 panel of B stays in cache while the tiles of rows go down it */
  for (int j = j0; j < j1;) {
    const int to_grid = aligns ? (grid - j % 16 + 16) & 15 : 0;
    const int span = to_grid ? to_grid + 32 : 48;
    const int width = j1 - j < span ? j1 - j : span;
    const int nv = (width + 15) / 16, last = width - 16 * (nv - 1);
    const float *bj = t->b + j;
    for (int i = i0; i < i1; i += 8) {
      const int mr = i1 - i < 8 ? i1 - i : 8;
      const float *ai = t->a + i * a_is;
      float *cij = t->c + (int64_t)i * ldc + j;
      switch (mr * 4 + nv) {
        BC512_ROW(8) BC512_ROW(7) BC512_ROW(6) BC512_ROW(5) BC512_ROW(4) BC512_ROW(3) BC512_ROW(2) BC512_ROW(1)
      }
    }
    j += width;
  }
}

int tile_gemm_wide(void) { return native_avx512(); }

T512 void tile_gemm_transpose(const float *src, int ld, int rows, int cols, float *dst, int ldd) {
  for (int r0 = 0; r0 < rows; r0 += 16)
    for (int c0 = 0; c0 < cols; c0 += 16) {
      /* four blocks ahead along the 16 rows: streams the hardware prefetchers do not follow here */
      if (c0 + 64 < cols)
        for (int r = r0; r < rows && r < r0 + 16; r++) _mm_prefetch((const char *)(src + (int64_t)r * ld + c0 + 64), _MM_HINT_T0);
      transpose16_block(src + (int64_t)r0 * ld + c0, ld, rows - r0 < 16 ? rows - r0 : 16, cols - c0 < 16 ? cols - c0 : 16,
                        dst + (int64_t)c0 * ldd + r0, ldd, 1);
    }
}

int tile_gemm_column_shift(const tile_gemm_t *t) {
  if (t->tb) return 0;
  if (tile_gemm_wide()) return t->ldb % 16 == 0 ? misalign16(t->b) : 0;
  return t->ldb % 8 == 0 ? misalign8(t->b) : 0;
}

void tile_gemm_part(const tile_gemm_t *t, int i0, int i1, int j0, int j1) {
  if (tile_gemm_wide()) {
    if (t->tb) nt_part512(t, i0, i1, j0, j1);
    else bc_part512(t, i0, i1, j0, j1);
    return;
  }
  if (t->tb) nt_part(t, i0, i1, j0, j1);
  else bc_part(t, i0, i1, j0, j1);
}

#else /* no AVX2 kernels on this architecture or compiler: everything goes to BLAS */

int tile_gemm_available(void) { return 0; }
int tile_gemm_wide(void) { return 0; }
void tile_gemm_transpose(const float *src, int ld, int rows, int cols, float *dst, int ldd) {
  (void)src; (void)ld; (void)rows; (void)cols; (void)dst; (void)ldd;
}
void tile_gemm_part(const tile_gemm_t *t, int i0, int i1, int j0, int j1) {
  (void)t; (void)i0; (void)i1; (void)j0; (void)j1;
}
int tile_gemm_column_shift(const tile_gemm_t *t) { (void)t; return 0; }

#endif

