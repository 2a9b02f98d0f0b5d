import type { FloatArray } from "../dtype.ts";

export type { FloatArray };

/**
 * Naive triple-loop GEMM, the oracle for the fast kernels: C = beta*C + op(A) @ op(B).
 * op(A) is m×k and op(B) is k×n; every matrix is row-major with a row stride (lda, ldb, ldc).
 * transA=false stores A as m×k, transA=true stores it as k×m and uses Aᵀ; the same for B.
 * beta is 0 (overwrite C, never reading it, so NaN garbage in C is discarded) or 1 (accumulate).
 * @example gemmReference(false, false, 2, 2, 3, a, 0, 3, b, 0, 2, c, 0, 2, 0) // c = a @ b
 */
export function gemmReference(
  transA: boolean, transB: boolean, m: number, n: number, k: number,
  a: FloatArray, aOffset: number, lda: number,
  b: FloatArray, bOffset: number, ldb: number,
  c: FloatArray, cOffset: number, ldc: number,
  beta: 0 | 1,
): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) {
        const av = transA ? a[aOffset + p * lda + i] : a[aOffset + i * lda + p];
        const bv = transB ? b[bOffset + j * ldb + p] : b[bOffset + p * ldb + j];
        sum += av * bv;
      }
      const ci = cOffset + i * ldc + j;
      c[ci] = beta === 0 ? sum : c[ci] + sum;
    }
  }
}
