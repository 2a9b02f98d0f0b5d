/**
 * Reductions along one axis, with the tensor viewed as [outer, n, inner] (n = the reduced axis).
 * Several contiguous axes merge into one n; the ops layer reduces non-contiguous axes one after another.
 */
import type { FloatArray } from "../dtype.ts";
import { expDouble, logDouble } from "./libm.ts";
import { NATIVE_MIN_ELEMENTS, nativeLoops, sameArrayType } from "./native-loops.ts";
import { wasmLoops } from "./wasm-loops.ts";

/** out[o, i] = Σ_j x[o, j, i]. Accumulates in double precision. */
export function sumAxis(x: FloatArray, outer: number, n: number, inner: number, out: FloatArray): void {
  if (outer * n * inner >= NATIVE_MIN_ELEMENTS) {
    const native = nativeLoops();
    if (native && sameArrayType(x, x, out)) {
      native.sumAxis(x, outer, n, inner, out);
      return;
    }
  }
  if (inner > 1 && n > 0) {
    const wasm = wasmLoops(outer * n * inner, x, out);
    if (wasm && x !== out) {
      wasm.sumAxis(x as Float32Array, outer, n, inner, out as Float32Array);
      return;
    }
  }
  if (inner === 1) {
    for (let o = 0; o < outer; o++) {
      let s = 0;
      const base = o * n;
      for (let j = 0; j < n; j++) s += x[base + j];
      out[o] = s;
    }
    return;
  }
  if (sumScratch.length < inner) sumScratch = new Float64Array(Math.max(inner, 2 * sumScratch.length));
  const acc = sumScratch;
  for (let o = 0; o < outer; o++) {
    acc.fill(0, 0, inner);
    let base = o * n * inner;
    for (let j = 0; j < n; j++, base += inner) {
      // four columns a turn: each acc[i] still adds its rows in order j = 0, 1, ...
      let i = 0;
      for (; i + 4 <= inner; i += 4) {
        acc[i] += x[base + i];
        acc[i + 1] += x[base + i + 1];
        acc[i + 2] += x[base + i + 2];
        acc[i + 3] += x[base + i + 3];
      }
      for (; i < inner; i++) acc[i] += x[base + i];
    }
    const ob = o * inner;
    for (let i = 0; i < inner; i++) out[ob + i] = acc[i];
  }
}

/** sumAxis's double accumulators for inner > 1, kept between calls: a fresh array each call costs a
 *  page fault in browsers (bench/NOTES.md, "Browser allocations, SGD and the bench page's profile"). */
let sumScratch = new Float64Array(256);

/** out[o, i] = max_j x[o, j, i]; NaN propagates as in NumPy. n must be ≥ 1. */
export function maxAxis(x: FloatArray, outer: number, n: number, inner: number, out: FloatArray): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let base = o * n * inner + i;
      let m = x[base];
      for (let j = 1; j < n && m === m; j++) {
        base += inner;
        const v = x[base];
        if (v > m || v !== v) m = v;
      }
      out[o * inner + i] = m;
    }
  }
}

/** out[o, i] = argmax_j x[o, j, i] (the first maximum; a NaN counts as the maximum, as in NumPy). */
export function argmaxAxis(x: FloatArray, outer: number, n: number, inner: number, out: FloatArray): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let base = o * n * inner + i;
      let m = x[base];
      let arg = 0;
      for (let j = 1; j < n && m === m; j++) {
        base += inner;
        const v = x[base];
        if (v > m || v !== v) { m = v; arg = j; }
      }
      out[o * inner + i] = arg;
    }
  }
}

/** out[o, i] = x[o, index[o, i], i] (MXNet's pick). Indices must be validated by the caller. */
export function pickAxis(x: FloatArray, outer: number, n: number, inner: number, index: Int32Array, out: FloatArray): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const k = o * inner + i;
      out[k] = x[(o * n + index[k]) * inner + i];
    }
  }
}

/** out[o, index[o, i], i] += g[o, i]; out must be zeroed by the caller. Repeated indices accumulate. */
export function scatterAddAxis(g: FloatArray, outer: number, n: number, inner: number, index: Int32Array, out: FloatArray): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const k = o * inner + i;
      out[(o * n + index[k]) * inner + i] += g[k];
    }
  }
}

/**
 * logSoftmax's backward along the middle axis: gx = g - exp(out) * Σ_j g, in one pass per row.
 * NOTE: every step rounds to gx's float type exactly where the composed ops (exp, sum with its double
 * accumulation, mul, sub) round, so the fused and the recorded backward give the same bits.
 */
export function logSoftmaxBackwardAxis(g: FloatArray, out: FloatArray, outer: number, n: number, inner: number, gx: FloatArray): void {
  if (outer * n * inner >= NATIVE_MIN_ELEMENTS) {
    const native = nativeLoops();
    if (native && sameArrayType(g, out, gx)) {
      native.logSoftmaxBackward(g, out, outer, n, inner, gx);
      return;
    }
  }
  const f32 = gx instanceof Float32Array;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let acc = 0;
      for (let j = 0; j < n; j++) acc += g[base + j * inner];
      const s = f32 ? Math.fround(acc) : acc;
      for (let j = 0; j < n; j++) {
        const k = base + j * inner;
        const e = f32 ? Math.fround(expDouble(out[k])) : expDouble(out[k]);
        gx[k] = g[k] - (f32 ? Math.fround(e * s) : e * s);
      }
    }
  }
}

/** Numerically stable log-softmax along the middle axis: x - max - log Σ exp(x - max). */
export function logSoftmaxAxis(x: FloatArray, outer: number, n: number, inner: number, out: FloatArray): void {
  if (outer * n * inner >= NATIVE_MIN_ELEMENTS) {
    const native = nativeLoops();
    if (native && sameArrayType(x, x, out)) {
      native.logSoftmax(x, outer, n, inner, out);
      return;
    }
  }
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let m = -Infinity;
      for (let j = 0; j < n; j++) { const v = x[base + j * inner]; if (v > m || v !== v) m = v; }
      if (m === -Infinity) m = 0; // every logit -inf: let the result be -inf/NaN like PyTorch, without inf - inf here
      let s = 0;
      for (let j = 0; j < n; j++) s += expDouble(x[base + j * inner] - m);
      const lse = m + logDouble(s);
      for (let j = 0; j < n; j++) out[base + j * inner] = x[base + j * inner] - lse;
    }
  }
}
