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
/* Computes the block C[i0:i1, j0:j1]; any block gives the same bits as the whole product there. */
void tile_gemm_part(const tile_gemm_t *t, int i0, int i1, int j0, int j1);
/* NN / TN: blocks of columns that start at c * size - shift, for any size that is a multiple of 8, start
 * where tile_gemm_part's loads from B are aligned vectors (0..7; always 0 for NT, whose loads run along
 * the depth). */
int tile_gemm_column_shift(const tile_gemm_t *t);

#endif
