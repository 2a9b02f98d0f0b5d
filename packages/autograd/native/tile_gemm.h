/* tile_gemm.c: the AVX2 + FMA float32 gemm blas_gemm.c uses for mid-size NN, NT and TN products. */
#ifndef TAPEGRAD_TILE_GEMM_H
#define TAPEGRAD_TILE_GEMM_H

/* C = beta * C + op(A) @ op(B), row-major float32; ta && tb (TT) is not handled. */
typedef struct {
  int ta, tb, m, n, k;
  const float *a;
  int lda;
  const float *b;
  int ldb;
  int beta; /* 0 or 1; with 0, C is never read */
  float *c;
  int ldc;
} tile_gemm_t;

/* 1 when this CPU runs the kernels (x86-64 with AVX2 and FMA), else 0. */
int tile_gemm_available(void);
/* 1 when the kernels run in AVX-512 (native_avx512): 6 x 4 NT tiles of 16 lanes, 8 x 48 NN/TN tiles. NN and TN
 * give the same bits either way (one sequential sum over p per element); NT's lane sums differ. */
int tile_gemm_wide(void);
/* dst[c * ldd + r] = src[r * ld + c] for rows r < rows and columns c < cols (AVX-512 only: call it where
 * tile_gemm_wide). */
void tile_gemm_transpose(const float *src, int ld, int rows, int cols, float *dst, int ldd);
/* Computes the block C[i0:i1, j0:j1]; any block gives the same bits as the whole product there. */
void tile_gemm_part(const tile_gemm_t *t, int i0, int i1, int j0, int j1);
/* NN / TN: blocks of columns that start at c * size - shift, for any size that is a multiple of the vector
 * (8 floats, 16 with AVX-512), start where tile_gemm_part's loads from B are aligned vectors (0..15; always
 * 0 for NT, whose loads run along the depth). */
int tile_gemm_column_shift(const tile_gemm_t *t);

#endif
