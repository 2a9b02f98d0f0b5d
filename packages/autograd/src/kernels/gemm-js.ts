import type { FloatArray } from "./gemm-reference.ts";

/**
 * Pure TypeScript blocked GEMM (GotoBLAS loop order): panels of op(A) and op(B) are packed into
 * module-level Float64Array scratch so the 4×4 micro-kernel streams both operands contiguously,
 * whatever the transpose flags, with zero padding so it never needs edge cases in its inner loop.
 * NOTE: scratch is float64 for both dtypes: JS arithmetic is in doubles anyway, so packing float32
 * once saves a conversion per multiply, and the float32 result is rounded only when stored to C.
 */

const MR = 4;
const NR = 4;
/** Depth of one packed block: KC·NR doubles of B (8 KiB) stay in L1 across a whole A block. */
const KC = 256;
/** Rows of one packed A block: MC·KC doubles (256 KiB) sit in L2. */
const MC = 128;
/** Columns of one packed B panel. */
const NC = 2048;
/** Below this many multiply-adds, packing costs more than it saves. */
const SMALL_WORK = 16 * 16 * 16;

let packedA = new Float64Array(0);
let packedB = new Float64Array(0);
const edgeTile = new Float64Array(MR * NR);

/** Copy op(A)[i0:i0+mc, p0:p0+kc] as MR-row strips, each stored column by column ([p][r]). */
function packA(transA: boolean, a: FloatArray, aOffset: number, lda: number,
  i0: number, mc: number, p0: number, kc: number, dst: Float64Array): void {
  let d = 0;
  for (let ir = 0; ir < mc; ir += MR) {
    const rows = Math.min(MR, mc - ir);
    if (transA) {
      // op(A)(i, p) = A[p, i]: the MR values of one column are contiguous in storage.
      let s = aOffset + p0 * lda + i0 + ir;
      for (let p = 0; p < kc; p++, s += lda) {
        for (let r = 0; r < MR; r++) dst[d++] = r < rows ? a[s + r] : 0;
      }
    } else {
      const base = aOffset + (i0 + ir) * lda + p0;
      if (rows === MR) {
        let s0 = base, s1 = base + lda, s2 = base + 2 * lda, s3 = base + 3 * lda;
        for (let p = 0; p < kc; p++) {
          dst[d] = a[s0++]; dst[d + 1] = a[s1++]; dst[d + 2] = a[s2++]; dst[d + 3] = a[s3++];
          d += MR;
        }
      } else {
        for (let p = 0; p < kc; p++) {
          for (let r = 0; r < MR; r++) dst[d++] = r < rows ? a[base + r * lda + p] : 0;
        }
      }
    }
  }
}

/** Copy op(B)[p0:p0+kc, j0:j0+nc] as NR-column strips, each stored row by row ([p][c]). */
function packB(transB: boolean, b: FloatArray, bOffset: number, ldb: number,
  p0: number, kc: number, j0: number, nc: number, dst: Float64Array): void {
  let d = 0;
  for (let jr = 0; jr < nc; jr += NR) {
    const cols = Math.min(NR, nc - jr);
    if (transB) {
      // op(B)(p, j) = B[j, p]: walk NR storage rows in step.
      const base = bOffset + (j0 + jr) * ldb + p0;
      if (cols === NR) {
        let s0 = base, s1 = base + ldb, s2 = base + 2 * ldb, s3 = base + 3 * ldb;
        for (let p = 0; p < kc; p++) {
          dst[d] = b[s0++]; dst[d + 1] = b[s1++]; dst[d + 2] = b[s2++]; dst[d + 3] = b[s3++];
          d += NR;
        }
      } else {
        for (let p = 0; p < kc; p++) {
          for (let c = 0; c < NR; c++) dst[d++] = c < cols ? b[base + c * ldb + p] : 0;
        }
      }
    } else {
      let s = bOffset + p0 * ldb + j0 + jr;
      if (cols === NR) {
        for (let p = 0; p < kc; p++, s += ldb) {
          dst[d] = b[s]; dst[d + 1] = b[s + 1]; dst[d + 2] = b[s + 2]; dst[d + 3] = b[s + 3];
          d += NR;
        }
      } else {
        for (let p = 0; p < kc; p++, s += ldb) {
          for (let c = 0; c < NR; c++) dst[d++] = c < cols ? b[s + c] : 0;
        }
      }
    }
  }
}

/**
 * C[0:rows, 0:cols] (+)= packed A strip @ packed B strip, with the 4×4 product held in locals.
 * `accumulate` false overwrites C (first depth block with beta 0), true adds to it.
 */
function microKernel(kc: number, pa: Float64Array, ai: number, pb: Float64Array, bi: number,
  c: FloatArray, ci: number, ldc: number, rows: number, cols: number, accumulate: boolean): void {
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
  let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
  let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
  for (let p = 0; p < kc; p++) {
    const a0 = pa[ai], a1 = pa[ai + 1], a2 = pa[ai + 2], a3 = pa[ai + 3];
    const b0 = pb[bi], b1 = pb[bi + 1], b2 = pb[bi + 2], b3 = pb[bi + 3];
    c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
    c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
    c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
    c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
    ai += MR;
    bi += NR;
  }
  if (rows === MR && cols === NR) {
    const r1 = ci + ldc, r2 = r1 + ldc, r3 = r2 + ldc;
    if (accumulate) {
      c[ci] += c00; c[ci + 1] += c01; c[ci + 2] += c02; c[ci + 3] += c03;
      c[r1] += c10; c[r1 + 1] += c11; c[r1 + 2] += c12; c[r1 + 3] += c13;
      c[r2] += c20; c[r2 + 1] += c21; c[r2 + 2] += c22; c[r2 + 3] += c23;
      c[r3] += c30; c[r3 + 1] += c31; c[r3 + 2] += c32; c[r3 + 3] += c33;
    } else {
      c[ci] = c00; c[ci + 1] = c01; c[ci + 2] = c02; c[ci + 3] = c03;
      c[r1] = c10; c[r1 + 1] = c11; c[r1 + 2] = c12; c[r1 + 3] = c13;
      c[r2] = c20; c[r2 + 1] = c21; c[r2 + 2] = c22; c[r2 + 3] = c23;
      c[r3] = c30; c[r3 + 1] = c31; c[r3 + 2] = c32; c[r3 + 3] = c33;
    }
    return;
  }
  const t = edgeTile;
  t[0] = c00; t[1] = c01; t[2] = c02; t[3] = c03;
  t[4] = c10; t[5] = c11; t[6] = c12; t[7] = c13;
  t[8] = c20; t[9] = c21; t[10] = c22; t[11] = c23;
  t[12] = c30; t[13] = c31; t[14] = c32; t[15] = c33;
  for (let r = 0; r < rows; r++) {
    const row = ci + r * ldc;
    for (let j = 0; j < cols; j++) {
      c[row + j] = accumulate ? c[row + j] + t[r * NR + j] : t[r * NR + j];
    }
  }
}

function roundUp(x: number, multiple: number): number {
  return Math.ceil(x / multiple) * multiple;
}

/** Unpacked loops for tiny products, where packing would dominate. Row-axpy order when B is not transposed. */
function gemmSmall(transA: boolean, transB: boolean, m: number, n: number, k: number,
  a: FloatArray, aOffset: number, lda: number, b: FloatArray, bOffset: number, ldb: number,
  c: FloatArray, cOffset: number, ldc: number, beta: 0 | 1): void {
  for (let i = 0; i < m; i++) {
    const ci = cOffset + i * ldc;
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) {
        const av = transA ? a[aOffset + p * lda + i] : a[aOffset + i * lda + p];
        const bv = transB ? b[bOffset + j * ldb + p] : b[bOffset + p * ldb + j];
        sum += av * bv;
      }
      c[ci + j] = beta === 0 ? sum : c[ci + j] + sum;
    }
  }
}

/** C = beta*C + op(A) @ op(B) in pure TypeScript; same contract as gemmReference. */
export function gemmJs(transA: boolean, transB: boolean, m: number, n: number, k: number,
  a: FloatArray, aOffset: number, lda: number, b: FloatArray, bOffset: number, ldb: number,
  c: FloatArray, cOffset: number, ldc: number, beta: 0 | 1): void {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (beta === 0) for (let i = 0; i < m; i++) c.fill(0, cOffset + i * ldc, cOffset + i * ldc + n);
    return;
  }
  if (m * n * k <= SMALL_WORK) {
    gemmSmall(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, beta);
    return;
  }
  // Scratch grows to the largest product seen and is reused, keeping the hot path allocation-free.
  const kcMax = Math.min(KC, k);
  const aSize = roundUp(Math.min(MC, m), MR) * kcMax;
  const bSize = roundUp(Math.min(NC, n), NR) * kcMax;
  if (packedA.length < aSize) packedA = new Float64Array(aSize);
  if (packedB.length < bSize) packedB = new Float64Array(bSize);
  const pa = packedA;
  const pb = packedB;
  for (let jc = 0; jc < n; jc += NC) {
    const nc = Math.min(NC, n - jc);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = Math.min(KC, k - pc);
      const accumulate = beta === 1 || pc > 0;
      packB(transB, b, bOffset, ldb, pc, kc, jc, nc, pb);
      for (let ic = 0; ic < m; ic += MC) {
        const mc = Math.min(MC, m - ic);
        packA(transA, a, aOffset, lda, ic, mc, pc, kc, pa);
        for (let jr = 0; jr < nc; jr += NR) {
          const cols = Math.min(NR, nc - jr);
          const bi = jr * kc;
          for (let ir = 0; ir < mc; ir += MR) {
            const rows = Math.min(MR, mc - ir);
            microKernel(kc, pa, ir * kc, pb, bi, c, cOffset + (ic + ir) * ldc + jc + jr, ldc,
              rows, cols, accumulate);
          }
        }
      }
    }
  }
}
