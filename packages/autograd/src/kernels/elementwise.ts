/**
 * Elementwise kernels over typed arrays: broadcasting binary ops, unary maps, broadcastTo, permute.
 * They know nothing of tensors or the tape: plain loops with explicit sizes and strides.
 */
import type { FloatArray } from "../dtype.ts";
import { NATIVE_MIN_ELEMENTS, nativeLoops, sameArrayType } from "./native-loops.ts";
import { NATIVE_BINARY_OPS, NATIVE_UNARY_OPS, opCodes } from "./native-ops.ts";
import { expDouble, logDouble } from "./libm.ts";
import { axpyPinned } from "./gemm-wasm.ts";
import { wasmLoops } from "./wasm-loops.ts";

export type BinaryKind = "add" | "sub" | "mul" | "div" | "pow" | "maximum" | "minimum" | "eq" | "ne" | "gt" | "ge" | "lt" | "le";

/** Strides of `shape` read as broadcast to `outShape`: 0 along broadcast dimensions. */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const n = outShape.length;
  const off = n - shape.length;
  const s = new Array<number>(n).fill(0);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i + off] = shape[i] === 1 ? 0 : acc;
    acc *= shape[i];
  }
  return s;
}

/** The native binary loop's op codes (native-ops.ts); the other kinds stay in TypeScript. */
const NATIVE_BINARY = opCodes(NATIVE_BINARY_OPS) as Partial<Record<BinaryKind, number>>;

/** out[i] = a[ai] ∘ b[bi] for `len` elements with strides sa, sb (0 = broadcast). out may be a or b
 *  itself (in-place accumulation) but must not overlap a stride-0 operand: the native loop reads it once. */
function binaryRun(
  kind: BinaryKind, a: FloatArray, ao: number, sa: number, b: FloatArray, bo: number, sb: number,
  out: FloatArray, oo: number, len: number,
): void {
  if (len >= NATIVE_MIN_ELEMENTS && sa <= 1 && sb <= 1) {
    const native = nativeLoops();
    const op = NATIVE_BINARY[kind];
    if (native && op !== undefined && sameArrayType(a, b, out)) {
      native.binary(op, a, ao, sa, b, bo, sb, out, oo, len);
      return;
    }
  }
  switch (kind) {
    case "add":
      if (sa === 1 && sb === 1) for (let i = 0; i < len; i++) out[oo + i] = a[ao + i] + b[bo + i];
      else if (sa === 1 && sb === 0) { const y = b[bo]; for (let i = 0; i < len; i++) out[oo + i] = a[ao + i] + y; }
      else for (let i = 0; i < len; i++) out[oo + i] = a[ao + i * sa] + b[bo + i * sb];
      return;
    case "sub":
      if (sa === 1 && sb === 1) for (let i = 0; i < len; i++) out[oo + i] = a[ao + i] - b[bo + i];
      else if (sa === 1 && sb === 0) { const y = b[bo]; for (let i = 0; i < len; i++) out[oo + i] = a[ao + i] - y; }
      else for (let i = 0; i < len; i++) out[oo + i] = a[ao + i * sa] - b[bo + i * sb];
      return;
    case "mul":
      if (sa === 1 && sb === 1) for (let i = 0; i < len; i++) out[oo + i] = a[ao + i] * b[bo + i];
      else if (sa === 1 && sb === 0) { const y = b[bo]; for (let i = 0; i < len; i++) out[oo + i] = a[ao + i] * y; }
      else for (let i = 0; i < len; i++) out[oo + i] = a[ao + i * sa] * b[bo + i * sb];
      return;
    case "div":
      if (sa === 1 && sb === 1) for (let i = 0; i < len; i++) out[oo + i] = a[ao + i] / b[bo + i];
      else for (let i = 0; i < len; i++) out[oo + i] = a[ao + i * sa] / b[bo + i * sb];
      return;
    case "pow":
      for (let i = 0; i < len; i++) out[oo + i] = Math.pow(a[ao + i * sa], b[bo + i * sb]);
      return;
    case "maximum":
      for (let i = 0; i < len; i++) { const x = a[ao + i * sa], y = b[bo + i * sb]; out[oo + i] = x !== x || x > y ? x : y; }
      return;
    case "minimum":
      for (let i = 0; i < len; i++) { const x = a[ao + i * sa], y = b[bo + i * sb]; out[oo + i] = x !== x || x < y ? x : y; }
      return;
    case "eq": for (let i = 0; i < len; i++) out[oo + i] = a[ao + i * sa] === b[bo + i * sb] ? 1 : 0; return;
    case "ne": for (let i = 0; i < len; i++) out[oo + i] = a[ao + i * sa] !== b[bo + i * sb] ? 1 : 0; return;
    case "gt": for (let i = 0; i < len; i++) out[oo + i] = a[ao + i * sa] > b[bo + i * sb] ? 1 : 0; return;
    case "ge": for (let i = 0; i < len; i++) out[oo + i] = a[ao + i * sa] >= b[bo + i * sb] ? 1 : 0; return;
    case "lt": for (let i = 0; i < len; i++) out[oo + i] = a[ao + i * sa] < b[bo + i * sb] ? 1 : 0; return;
    case "le": for (let i = 0; i < len; i++) out[oo + i] = a[ao + i * sa] <= b[bo + i * sb] ? 1 : 0; return;
  }
}

/**
 * Broadcasting binary op. Fast paths: equal shapes, a scalar operand, a row vector against a matrix;
 * otherwise a strided walk over the output whose innermost dimension is one contiguous run.
 */
export function binary(
  kind: BinaryKind, a: FloatArray, aShape: readonly number[], b: FloatArray, bShape: readonly number[],
  out: FloatArray, outShape: readonly number[],
): void {
  const n = out.length;
  if (n === 0) return;
  if (a.length === n && b.length === n) return binaryRun(kind, a, 0, 1, b, 0, 1, out, 0, n);
  if (b.length === 1 && a.length === n) return binaryRun(kind, a, 0, 1, b, 0, 0, out, 0, n);
  if (a.length === 1 && b.length === n) return binaryRun(kind, a, 0, 0, b, 0, 1, out, 0, n);
  const rank = outShape.length;
  const sa = broadcastStrides(aShape, outShape);
  const sb = broadcastStrides(bShape, outShape);
  const inner = outShape[rank - 1];
  const ia = sa[rank - 1];
  const ib = sb[rank - 1];
  const idx = new Array<number>(rank).fill(0);
  let ao = 0;
  let bo = 0;
  for (let oo = 0; oo < n; oo += inner) {
    binaryRun(kind, a, ao, ia, b, bo, ib, out, oo, inner);
    // advance the multi-index over all but the innermost dimension
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++;
      ao += sa[d];
      bo += sb[d];
      if (idx[d] < outShape[d]) break;
      ao -= sa[d] * idx[d];
      bo -= sb[d] * idx[d];
      idx[d] = 0;
    }
  }
}

/** out = x broadcast to outShape. */
export function broadcastTo(x: FloatArray, xShape: readonly number[], out: FloatArray, outShape: readonly number[]): void {
  const n = out.length;
  if (n === 0) return;
  if (x.length === n) { out.set(x); return; }
  if (x.length === 1) { out.fill(x[0]); return; }
  const rank = outShape.length;
  const sx = broadcastStrides(xShape, outShape);
  const inner = outShape[rank - 1];
  const ix = sx[rank - 1];
  const idx = new Array<number>(rank).fill(0);
  let xo = 0;
  for (let oo = 0; oo < n; oo += inner) {
    if (ix === 1) out.set(x.subarray(xo, xo + inner), oo);
    else out.fill(x[xo], oo, oo + inner);
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++;
      xo += sx[d];
      if (idx[d] < outShape[d]) break;
      xo -= sx[d] * idx[d];
      idx[d] = 0;
    }
  }
}

export type UnaryKind = "neg" | "exp" | "log" | "relu" | "tanh" | "sigmoid" | "softplus" | "sqrt" | "abs" | "sign" | "step";

/** The native unary loop's op codes (native-ops.ts). exp, log and sigmoid's exp are libm.ts's on both sides;
 *  tanh stays in TypeScript (Math.tanh may differ from C's in the last bit). */
const NATIVE_UNARY = opCodes(NATIVE_UNARY_OPS) as Partial<Record<UnaryKind, number>>;

/** out = f(x) elementwise. `step` is relu's gradient mask: 0 where x ≤ 0, else 1 (a NaN passes, as in
 *  PyTorch); `sign` is abs's gradient: 0 at 0 and at NaN. */
export function unary(kind: UnaryKind, x: FloatArray, out: FloatArray): void {
  const n = x.length;
  if (n >= NATIVE_MIN_ELEMENTS) {
    const native = nativeLoops();
    const op = NATIVE_UNARY[kind];
    if (native && op !== undefined && sameArrayType(x, x, out)) {
      native.unary(op, x, out, n);
      return;
    }
  }
  switch (kind) {
    case "neg": for (let i = 0; i < n; i++) out[i] = -x[i]; return;
    case "exp": for (let i = 0; i < n; i++) out[i] = expDouble(x[i]); return;
    case "log": for (let i = 0; i < n; i++) out[i] = logDouble(x[i]); return;
    case "relu": {
      const wasm = wasmLoops(n, x, out);
      if (wasm) wasm.relu(x as Float32Array, out as Float32Array);
      else for (let i = 0; i < n; i++) { const v = x[i]; out[i] = v > 0 ? v : v !== v ? v : 0; }
      return;
    }
    case "tanh": for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]); return;
    case "sigmoid":
      // NOTE: e = exp(-|v|) never overflows; 1/(1+e) for v >= 0, e/(1+e) below. libm.ts's exp, rounded to
      // the array's type as the native path stores it, so every backend gives the same bits
      if (out instanceof Float32Array) {
        for (let i = 0; i < n; i++) { const v = x[i], e = Math.fround(expDouble(-Math.abs(v))); out[i] = v >= 0 ? 1 / (1 + e) : e / (1 + e); }
      } else {
        for (let i = 0; i < n; i++) { const v = x[i], e = expDouble(-Math.abs(v)); out[i] = v >= 0 ? 1 / (1 + e) : e / (1 + e); }
      }
      return;
    case "softplus":
      // NOTE: log(1 + e^v) = max(v, 0) + log1p(e^-|v|), which never overflows; above 20 it is v itself
      // in float32 and float64 alike (PyTorch's threshold)
      for (let i = 0; i < n; i++) { const v = x[i]; out[i] = v > 20 ? v : Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v))); }
      return;
    case "sqrt": for (let i = 0; i < n; i++) out[i] = Math.sqrt(x[i]); return;
    case "abs": for (let i = 0; i < n; i++) out[i] = Math.abs(x[i]); return;
    case "sign": for (let i = 0; i < n; i++) { const v = x[i]; out[i] = v > 0 ? 1 : v < 0 ? -1 : 0; } return;
    case "step": for (let i = 0; i < n; i++) out[i] = x[i] <= 0 ? 0 : 1; return;
  }
}

/** out = x with its axes permuted: out.shape[i] = shape[axes[i]]. */
export function permute(x: FloatArray, shape: readonly number[], axes: readonly number[], out: FloatArray): void {
  const rank = shape.length;
  const n = x.length;
  if (n === 0) return;
  if (rank === 2 && axes[0] === 1) return transpose2d(x, 0, shape[0], shape[1], out, 0);
  const inStrides = new Array<number>(rank);
  let acc = 1;
  for (let i = rank - 1; i >= 0; i--) { inStrides[i] = acc; acc *= shape[i]; }
  const outShape = axes.map((a) => shape[a]);
  const st = axes.map((a) => inStrides[a]);
  // batched 2-D transposes (the common transpose() of the last two axes) take the blocked path
  if (rank > 2 && axes[rank - 1] === rank - 2 && axes[rank - 2] === rank - 1 && axes.slice(0, rank - 2).every((a, i) => a === i)) {
    const r = shape[rank - 2];
    const c = shape[rank - 1];
    for (let off = 0; off < n; off += r * c) transpose2d(x, off, r, c, out, off);
    return;
  }
  const inner = outShape[rank - 1];
  const is = st[rank - 1];
  const idx = new Array<number>(rank).fill(0);
  let xo = 0;
  for (let oo = 0; oo < n; oo += inner) {
    for (let i = 0; i < inner; i++) out[oo + i] = x[xo + i * is];
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++;
      xo += st[d];
      if (idx[d] < outShape[d]) break;
      xo -= st[d] * idx[d];
      idx[d] = 0;
    }
  }
}

/** Cache-blocked transpose of an r×c matrix at x[xo] into out[oo] (c×r). */
export function transpose2d(x: FloatArray, xo: number, r: number, c: number, out: FloatArray, oo: number): void {
  const B = 32;
  for (let i0 = 0; i0 < r; i0 += B) {
    const i1 = Math.min(i0 + B, r);
    for (let j0 = 0; j0 < c; j0 += B) {
      const j1 = Math.min(j0 + B, c);
      for (let i = i0; i < i1; i++) {
        const row = xo + i * c;
        for (let j = j0; j < j1; j++) out[oo + j * r + i] = x[row + j];
      }
    }
  }
}

/** relu's backward in one pass: out[i] = x[i] <= 0 ? 0 : g[i] (a NaN input passes the gradient). */
export function reluBackward(g: FloatArray, x: FloatArray, out: FloatArray): void {
  const n = out.length;
  if (n >= NATIVE_MIN_ELEMENTS) {
    const native = nativeLoops();
    if (native && sameArrayType(g, x, out)) {
      native.reluBackward(g, x, out, n);
      return;
    }
  }
  const wasm = wasmLoops(n, g, x, out);
  if (wasm) wasm.reluBackward(g as Float32Array, x as Float32Array, out as Float32Array);
  else for (let i = 0; i < n; i++) out[i] = x[i] <= 0 ? 0 : g[i];
}

/** sigmoid's backward from its output y in one pass: out[i] = g[i] * (y[i] * (1 - y[i])), each step rounded to
 *  the arrays' type, the same bits as the three ops sub, mul, mul. */
export function sigmoidBackward(g: FloatArray, y: FloatArray, out: FloatArray): void {
  const n = out.length;
  if (n >= NATIVE_MIN_ELEMENTS) {
    const native = nativeLoops();
    if (native && sameArrayType(g, y, out)) {
      native.sigmoidBackward(g, y, out, n);
      return;
    }
  }
  if (out instanceof Float32Array && y instanceof Float32Array) {
    for (let i = 0; i < n; i++) { const v = y[i]; out[i] = g[i] * Math.fround(v * Math.fround(1 - v)); }
  } else {
    for (let i = 0; i < n; i++) { const v = y[i]; out[i] = g[i] * (v * (1 - v)); }
  }
}

/**
 * Writes `row` (length n) into each of the m rows of out (row-major m×n): the first row, then copies of
 * the rows written so far, doubling each time, so a [128, n] output takes 8 block copies, not 128.
 */
export function fillRows(row: FloatArray, m: number, n: number, out: FloatArray): void {
  if (m === 0) return;
  out.set(row.length === n ? row : row.subarray(0, n), 0);
  for (let done = 1; done < m; done *= 2) out.copyWithin(done * n, 0, Math.min(done, m - done) * n);
}

/**
 * y[yOffset + i] += alpha * x[xOffset + i] for n elements, computed in double (SGD's update, gradient
 * accumulation). x and y may be different float types.
 * @example axpy(-lr, grad, 0, param, 0, param.length) // param -= lr * grad
 */
export function axpy(alpha: number, x: FloatArray, xOffset: number, y: FloatArray, yOffset: number, n: number): void {
  if (n >= NATIVE_MIN_ELEMENTS) {
    const native = nativeLoops();
    if (native && sameArrayType(x, y, y)) {
      native.axpy(alpha, x, xOffset, y, yOffset, n);
      return;
    }
  }
  if (n < AXPY_UNROLL_MIN) {
    for (let i = 0; i < n; i++) y[yOffset + i] += alpha * x[xOffset + i];
    return;
  }
  const xs = x.subarray(xOffset, xOffset + n), ys = y.subarray(yOffset, yOffset + n);
  const wasm = wasmLoops(n, xs, ys);
  if (wasm) {
    // pinned arrays (a pinned weight and its gradient) are updated where they are, on both threads
    if (!axpyPinned(alpha, x, xOffset, y, yOffset, n)) wasm.axpy(alpha, xs as Float32Array, ys as Float32Array);
    return;
  }
  // NOTE: zero-based views and four statements a turn, in index order (so overlapping x and y read and
  // write as the one-at-a-time loop does): V8 drops the offset adds and three of four loop checks
  // (bench/NOTES.md, "Browser allocations, SGD and the bench page's profile")
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    ys[i] += alpha * xs[i];
    ys[i + 1] += alpha * xs[i + 1];
    ys[i + 2] += alpha * xs[i + 2];
    ys[i + 3] += alpha * xs[i + 3];
  }
  for (; i < n; i++) ys[i] += alpha * xs[i];
}

/** From this length axpy's views pay for themselves (two subarray objects, ~0.2 µs). */
const AXPY_UNROLL_MIN = 64;
