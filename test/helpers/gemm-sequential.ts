/**
 * The WebAssembly gemm's arithmetic, one element at a time: each element of C starts at 0 (beta 0) or at
 * C (beta 1) and takes the depth's products in order through `step`. With `unfusedF32` (a rounded product,
 * then a rounded sum) or `fusedF32` (one rounding) a float32 product of the kernel must match it bit for bit.
 */
export interface Operands {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  beta: 0 | 1;
  /** op(A) is m×k: A stored m×k (lda k), or k×m when transposed (lda m); likewise B, k×n or n×k. */
  a: Float32Array | Float64Array;
  b: Float32Array | Float64Array;
  /** C, m×n (ldc n); read only with beta 1. */
  c: Float32Array | Float64Array;
}

export type Step = (a: number, b: number, acc: number) => number;

export function gemmSequential(o: Operands, step: Step): Float64Array {
  const out = new Float64Array(o.m * o.n);
  for (let i = 0; i < o.m; i++) {
    for (let j = 0; j < o.n; j++) {
      let acc = o.beta === 1 ? o.c[i * o.n + j] : 0;
      for (let p = 0; p < o.k; p++) {
        const a = o.transA ? o.a[p * o.m + i] : o.a[i * o.k + p];
        const b = o.transB ? o.b[j * o.k + p] : o.b[p * o.n + j];
        acc = step(a, b, acc);
      }
      out[i * o.n + j] = acc;
    }
  }
  return out;
}

/** f32x4.mul then f32x4.add. */
export const unfusedF32: Step = (a, b, acc) => Math.fround(acc + Math.fround(a * b));

const scratch = new Float64Array(1);
const words = new Uint32Array(scratch.buffer);

/**
 * a·b + acc rounded once to float32, for float32 inputs. The product of two float32 values is exact in a
 * double; the sum is taken exactly as a double plus its error (two-sum) and rounded to odd (an inexact sum
 * with an even last bit moves one ulp toward the error), and rounding that to float32 is then the correctly
 * rounded result (a double has more than 24 + 2 bits), where a plain double sum could round twice.
 */
export const fusedF32: Step = (a, b, acc) => {
  const p = a * b;
  const s = p + acc;
  if (!Number.isFinite(s)) return Math.fround(s);
  const bv = s - p;
  const error = (p - (s - bv)) + (acc - bv);
  if (error === 0) return Math.fround(s);
  scratch[0] = s;
  // little-endian words: words[0] holds the low 32 bits of the significand
  if ((words[0] & 1) === 0) {
    if ((error > 0) === (s > 0)) words[0] += 1;
    else if (words[0] === 0) {
      words[0] = 0xffffffff;
      words[1] -= 1;
    } else words[0] -= 1;
  }
  return Math.fround(scratch[0]);
};
