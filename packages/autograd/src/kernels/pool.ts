/**
 * 2-D pooling kernels over NCHW typed arrays: max pooling with saved argmax indices, average pooling,
 * adaptive average pooling; forward and backward, PyTorch's window and divisor rules. Plain loops, no
 * allocation; the caller supplies every buffer.
 */
import type { FloatArray } from "../dtype.ts";
import { ShapeError, ValueError, fmtShape } from "../errors.ts";
import type { Pair } from "./conv.ts";
import type { NativeCnnKernels } from "./gemm-native.ts";
import { nativeCnnKernels } from "./native-loops.ts";
import { sigmoidBackward, unary } from "./elementwise.ts";

export interface Pool2dGeometry {
  readonly batch: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly kernelH: number;
  readonly kernelW: number;
  readonly strideH: number;
  readonly strideW: number;
  readonly padH: number;
  readonly padW: number;
  readonly dilationH: number;
  readonly dilationW: number;
  readonly ceilMode: boolean;
  readonly outH: number;
  readonly outW: number;
}

export interface Pool2dOptions {
  kernelSize: Pair;
  /** Defaults to kernelSize, as in PyTorch. */
  stride?: Pair;
  padding?: Pair;
  /** Max pooling only. */
  dilation?: Pair;
  ceilMode?: boolean;
}

/**
 * PyTorch's pooling output length: floor((size + 2·pad − dilation·(kernel − 1) − 1 + (ceilMode ? stride − 1 : 0)) / stride) + 1,
 * less one in ceil mode when the last window would start at or past the end of input and left padding.
 * @example pool2dOutputSize(5, 2, 2, 0, 1, true) // 3
 */
export function pool2dOutputSize(size: number, kernel: number, stride: number, pad: number, dilation: number, ceilMode: boolean): number {
  let out = Math.floor((size + 2 * pad - dilation * (kernel - 1) - 1 + (ceilMode ? stride - 1 : 0)) / stride) + 1;
  if (ceilMode && (out - 1) * stride >= size + pad) out--;
  return out;
}

function pair(op: string, name: string, v: Pair, min: number): [number, number] {
  const p: [number, number] = typeof v === "number" ? [v, v] : [v[0], v[1]];
  if ((typeof v !== "number" && v.length !== 2) || !p.every((x) => Number.isInteger(x) && x >= min)) {
    throw new ValueError(`${op}: ${name} must be an integer ≥ ${min} or a pair of them, got ${JSON.stringify(v)}`);
  }
  return p;
}

/**
 * Checks an NCHW (or CHW, read as one image) input shape against the pooling options (PyTorch's rules:
 * padding at most half the kernel, an output of at least one element) and returns the kernels' geometry.
 * `op` names the operation in errors ("maxPool2d" or "avgPool2d"; only maxPool2d takes a dilation).
 * @example pool2dGeometry("maxPool2d", [128, 32, 28, 28], { kernelSize: 2 }).outH // 14
 */
export function pool2dGeometry(op: "maxPool2d" | "avgPool2d", inputShape: readonly number[], options: Pool2dOptions): Pool2dGeometry {
  if (inputShape.length !== 4 && inputShape.length !== 3) {
    throw new ShapeError(`${op}: expected a 3-D [C, H, W] or 4-D [N, C, H, W] input, got ${fmtShape(inputShape)}`);
  }
  const [batch, channels, height, width] = inputShape.length === 4 ? inputShape : [1, ...inputShape];
  const [kernelH, kernelW] = pair(op, "kernelSize", options.kernelSize, 1);
  const [strideH, strideW] = pair(op, "stride", options.stride ?? options.kernelSize, 1);
  const [padH, padW] = pair(op, "padding", options.padding ?? 0, 0);
  if (op === "avgPool2d" && options.dilation !== undefined && pair(op, "dilation", options.dilation, 1).some((d) => d !== 1)) {
    throw new ValueError(`avgPool2d: takes no dilation, got ${JSON.stringify(options.dilation)}`);
  }
  const [dilationH, dilationW] = pair(op, "dilation", options.dilation ?? 1, 1);
  if (padH > kernelH >> 1 || padW > kernelW >> 1) {
    throw new ValueError(`${op}: padding should be at most half of the kernel size, got padding [${padH}, ${padW}] for kernelSize [${kernelH}, ${kernelW}]`);
  }
  const ceilMode = options.ceilMode ?? false;
  const outH = pool2dOutputSize(height, kernelH, strideH, padH, dilationH, ceilMode);
  const outW = pool2dOutputSize(width, kernelW, strideW, padW, dilationW, ceilMode);
  if (outH < 1 || outW < 1) {
    throw new ShapeError(`${op}: the input ${fmtShape(inputShape)} is too small for kernelSize [${kernelH}, ${kernelW}]`
      + ` (padding [${padH}, ${padW}], dilation [${dilationH}, ${dilationW}]): the output would be ${outH} × ${outW}`);
  }
  return { batch, channels, height, width, kernelH, kernelW, strideH, strideW, padH, padW, dilationH, dilationW, ceilMode, outH, outW };
}

/** Below this many input elements the TypeScript loops are as fast as the native call. */
const NATIVE_POOL_MIN_ELEMENTS = 1024;

/** The native pooling loops where they apply (native backend, a and b one float type, a large enough input). */
function nativePool(p: Pool2dGeometry, a: FloatArray, b: FloatArray): NativeCnnKernels | null {
  if (p.batch * p.channels * p.height * p.width < NATIVE_POOL_MIN_ELEMENTS || (a instanceof Float32Array) !== (b instanceof Float32Array)) return null;
  return nativeCnnKernels();
}

/** The geometry as native/pool.c reads it. */
function nativePoolGeometry(p: Pool2dGeometry): Int32Array {
  return Int32Array.of(p.batch * p.channels, p.height, p.width, p.kernelH, p.kernelW, p.strideH, p.strideW, p.padH, p.padW,
    p.dilationH, p.dilationW, p.outH, p.outW);
}

/**
 * NOTE: max pooling picks between the running maximum and each new element by indexing a two-element array
 * with the comparison's bit instead of branching on it: on random data a branch mispredicts about half the
 * time, and the branching 2×2 loop ran 3× slower than this one (bench/NOTES-conv.md, "Max pooling").
 */
const pickValue = new Float64Array(2);
const pickIndex = new Int32Array(2);
const bit = (b: boolean): number => b as unknown as number;

/**
 * True where maxPool2dForward and maxPool2dBackward take window offsets (a Uint8Array, one byte a window: 0
 * top-left, 1 top-right, 2 bottom-left, 3 bottom-right) instead of flat indices: 2 × 2 windows of stride 2
 * without padding or dilation, none of them partial (ceil mode). A quarter of the flat indices' memory traffic.
 * @example maxPoolWindowOffsets(pool2dGeometry("maxPool2d", [128, 32, 28, 28], { kernelSize: 2 })) // true
 */
export function maxPoolWindowOffsets(p: Pool2dGeometry): boolean {
  return p.kernelH === 2 && p.kernelW === 2 && p.strideH === 2 && p.strideW === 2 && p.padH === 0 && p.padW === 0
    && p.dilationH === 1 && p.dilationW === 1 && 2 * p.outH <= p.height && 2 * p.outW <= p.width;
}

/** The flat index within its input plane of window o's element at window offset d (maxPoolWindowOffsets). */
export function windowOffsetIndex(p: Pool2dGeometry, o: number, d: number): number {
  const oh = Math.floor(o / p.outW), ow = o - oh * p.outW;
  return (2 * oh + (d >> 1)) * p.width + 2 * ow + (d & 1);
}

function checkIndices(op: string, p: Pool2dGeometry, indices: Int32Array | Uint8Array): void {
  if (indices instanceof Uint8Array && !maxPoolWindowOffsets(p)) {
    throw new ValueError(`${op}: window offsets (a Uint8Array) need 2 × 2 windows of stride 2 without padding or dilation`);
  }
}

/**
 * out = max over each window, indices = the flat position ih·W + iw within its input plane of the element
 * chosen (PyTorch's return_indices), or its window offset where indices is a Uint8Array (maxPoolWindowOffsets). Padding counts as −∞; a NaN is the maximum (the last NaN of a window
 * is the one chosen, as in PyTorch); a window of −∞ alone picks its first element. A dilated window that
 * misses the input entirely gives −∞ and index −1, so no gradient flows back through it.
 * NOTE: PyTorch 1.13 gives such a window the index of the position just past its padding, which can be
 * another element of the plane (or of the next plane), and its backward sends the gradient there.
 */
export function maxPool2dForward(p: Pool2dGeometry, x: FloatArray, out: FloatArray, indices: Int32Array | Uint8Array): void {
  checkIndices("maxPool2dForward", p, indices);
  const native = nativePool(p, x, out);
  if (native !== null) {
    native.maxPool2dForward(nativePoolGeometry(p), x, out, indices);
    return;
  }
  const { height, width, kernelH, kernelW, strideH, strideW, padH, padW, dilationH, dilationW, outH, outW } = p;
  const planes = p.batch * p.channels, inPlane = height * width, outPlane = outH * outW;
  const pv = pickValue, pi = pickIndex;
  if (maxPoolWindowOffsets(p)) {
    maxPool2x2(x, planes, height, width, outH, outW, out, indices);
    return;
  }
  if (indices instanceof Uint8Array) throw new ValueError("maxPool2dForward: unreachable: window offsets outside the 2 × 2 case");
  for (let pl = 0; pl < planes; pl++) {
    const xo = pl * inPlane;
    let o = pl * outPlane;
    for (let oh = 0; oh < outH; oh++) {
      let h0 = oh * strideH - padH;
      const h1 = Math.min(h0 + (kernelH - 1) * dilationH + 1, height);
      while (h0 < 0) h0 += dilationH;
      for (let ow = 0; ow < outW; ow++, o++) {
        let w0 = ow * strideW - padW;
        const w1 = Math.min(w0 + (kernelW - 1) * dilationW + 1, width);
        while (w0 < 0) w0 += dilationW;
        let best = -Infinity;
        let arg = h0 < h1 && w0 < w1 ? h0 * width + w0 : -1;
        for (let ih = h0; ih < h1; ih += dilationH) {
          for (let iw = w0; iw < w1; iw += dilationW) {
            const v = x[xo + ih * width + iw];
            const take = bit(v > best) | bit(v !== v);
            pv[0] = best; pv[1] = v;
            pi[0] = arg; pi[1] = ih * width + iw;
            best = pv[take]; arg = pi[take];
          }
        }
        out[o] = best;
        indices[o] = arg;
      }
    }
  }
}

/** The 2×2, stride-2, unpadded case (the common one) without the window loops. */
function maxPool2x2(x: FloatArray, planes: number, height: number, width: number, outH: number, outW: number,
  out: FloatArray, indices: Int32Array | Uint8Array): void {
  const offsets = indices instanceof Uint8Array;
  const pv = pickValue, pi = pickIndex;
  let o = 0;
  for (let pl = 0; pl < planes; pl++) {
    const xo = pl * height * width;
    for (let oh = 0; oh < outH; oh++) {
      let i = xo + 2 * oh * width; // the window's top-left element
      for (let ow = 0; ow < outW; ow++, o++, i += 2) {
        // the same comparisons in the same order as the general loop (its first one, v > −∞ or NaN, always
        // takes the first element, or leaves −∞ with the first element's index)
        const v0 = x[i], v1 = x[i + 1], v2 = x[i + width], v3 = x[i + width + 1];
        let take = bit(v1 > v0) | bit(v1 !== v1);
        pv[0] = v0; pv[1] = v1; pi[0] = 0; pi[1] = 1;
        let best = pv[take], arg = pi[take];
        take = bit(v2 > best) | bit(v2 !== v2);
        pv[0] = best; pv[1] = v2; pi[0] = arg; pi[1] = width;
        best = pv[take]; arg = pi[take];
        take = bit(v3 > best) | bit(v3 !== v3);
        pv[0] = best; pv[1] = v3; pi[0] = arg; pi[1] = width + 1;
        out[o] = pv[take];
        const k = pi[take];
        // the window offset: 0, 1, width, width + 1 → 0, 1, 2, 3
        indices[o] = offsets ? (k >= width ? k - width + 2 : k) : i - xo + k;
      }
    }
  }
}

/** gradInput (overwritten) = gradOut scattered to the saved argmax positions (flat indices or window offsets,
 *  as the forward wrote them); overlapping windows add. Index −1 (a window that missed the input), or a
 *  window offset past 3, sends nothing. */
export function maxPool2dBackward(p: Pool2dGeometry, gradOut: FloatArray, indices: Int32Array | Uint8Array, gradInput: FloatArray): void {
  checkIndices("maxPool2dBackward", p, indices);
  const native = nativePool(p, gradOut, gradInput);
  if (native !== null) {
    native.maxPool2dBackward(nativePoolGeometry(p), gradOut, indices, gradInput);
    return;
  }
  const planes = p.batch * p.channels, inPlane = p.height * p.width, outPlane = p.outH * p.outW;
  gradInput.fill(0, 0, planes * inPlane);
  if (indices instanceof Uint8Array) {
    for (let pl = 0; pl < planes; pl++) {
      const xo = pl * inPlane, o0 = pl * outPlane;
      for (let o = o0; o < o0 + outPlane; o++) {
        const d = indices[o];
        if (d < 4) gradInput[xo + windowOffsetIndex(p, o - o0, d)] += gradOut[o];
      }
    }
    return;
  }
  for (let pl = 0; pl < planes; pl++) {
    const xo = pl * inPlane;
    const o0 = pl * outPlane;
    for (let o = o0; o < o0 + outPlane; o++) {
      const k = indices[o];
      if (k >= 0 && k < inPlane) gradInput[xo + k] += gradOut[o];
    }
  }
}

/**
 * out = the mean of each window. countIncludePad true divides by the window clipped to the padded input
 * (PyTorch's default), false by the elements inside the input; a ceil-mode window hanging past the padding
 * counts only the part inside it. Sums in double.
 */
export function avgPool2dForward(p: Pool2dGeometry, x: FloatArray, out: FloatArray, countIncludePad = true): void {
  const native = nativePool(p, x, out);
  if (native !== null) {
    native.avgPool2dForward(nativePoolGeometry(p), x, out, countIncludePad);
    return;
  }
  const { height, width, kernelH, kernelW, strideH, strideW, padH, padW, outH, outW } = p;
  const planes = p.batch * p.channels, inPlane = height * width, outPlane = outH * outW;
  if (kernelH === 2 && kernelW === 2 && strideH === 2 && strideW === 2 && padH === 0 && padW === 0 && 2 * outH <= height && 2 * outW <= width) {
    let o = 0;
    for (let pl = 0; pl < planes; pl++) {
      const xo = pl * inPlane;
      for (let oh = 0; oh < outH; oh++) {
        let i = xo + 2 * oh * width;
        for (let ow = 0; ow < outW; ow++, o++, i += 2) out[o] = (x[i] + x[i + 1] + x[i + width] + x[i + width + 1]) / 4;
      }
    }
    return;
  }
  for (let oh = 0; oh < outH; oh++) {
    // PyTorch's avg_pool window: [start, end) clipped to the input; the divisor's span clipped to input + padding
    const hs = oh * strideH - padH, hePadded = Math.min(hs + kernelH, height + padH);
    const h0 = Math.max(hs, 0), h1 = Math.min(hePadded, height), spanH = hePadded - hs;
    for (let ow = 0; ow < outW; ow++) {
      const ws = ow * strideW - padW, wePadded = Math.min(ws + kernelW, width + padW);
      const w0 = Math.max(ws, 0), w1 = Math.min(wePadded, width), spanW = wePadded - ws;
      const o = oh * outW + ow;
      if (h0 >= h1 || w0 >= w1) {
        for (let pl = 0; pl < planes; pl++) out[pl * outPlane + o] = 0;
        continue;
      }
      const divisor = countIncludePad ? spanH * spanW : (h1 - h0) * (w1 - w0);
      for (let pl = 0; pl < planes; pl++) {
        const xo = pl * inPlane;
        let s = 0;
        for (let ih = h0; ih < h1; ih++) for (let iw = w0; iw < w1; iw++) s += x[xo + ih * width + iw];
        out[pl * outPlane + o] = s / divisor;
      }
    }
  }
}

/** gradInput (overwritten): each window's gradient divided by avgPool2dForward's divisor, added to every element of the window. */
export function avgPool2dBackward(p: Pool2dGeometry, gradOut: FloatArray, gradInput: FloatArray, countIncludePad = true): void {
  const native = nativePool(p, gradOut, gradInput);
  if (native !== null) {
    native.avgPool2dBackward(nativePoolGeometry(p), gradOut, gradInput, countIncludePad);
    return;
  }
  const { height, width, kernelH, kernelW, strideH, strideW, padH, padW, outH, outW } = p;
  const planes = p.batch * p.channels, inPlane = height * width, outPlane = outH * outW;
  if (kernelH === 2 && kernelW === 2 && strideH === 2 && strideW === 2 && padH === 0 && padW === 0 && 2 * outH <= height && 2 * outW <= width) {
    // NOTE: windows do not overlap; the rows and columns no window covers (odd sizes) get 0
    if (2 * outH !== height || 2 * outW !== width) gradInput.fill(0, 0, planes * inPlane);
    let o = 0;
    for (let pl = 0; pl < planes; pl++) {
      const xo = pl * inPlane;
      for (let oh = 0; oh < outH; oh++) {
        let i = xo + 2 * oh * width;
        for (let ow = 0; ow < outW; ow++, o++, i += 2) {
          const v = gradOut[o] / 4;
          gradInput[i] = v; gradInput[i + 1] = v; gradInput[i + width] = v; gradInput[i + width + 1] = v;
        }
      }
    }
    return;
  }
  gradInput.fill(0, 0, planes * inPlane);
  for (let oh = 0; oh < outH; oh++) {
    // PyTorch's avg_pool window: [start, end) clipped to the input; the divisor's span clipped to input + padding
    const hs = oh * strideH - padH, hePadded = Math.min(hs + kernelH, height + padH);
    const h0 = Math.max(hs, 0), h1 = Math.min(hePadded, height), spanH = hePadded - hs;
    for (let ow = 0; ow < outW; ow++) {
      const ws = ow * strideW - padW, wePadded = Math.min(ws + kernelW, width + padW);
      const w0 = Math.max(ws, 0), w1 = Math.min(wePadded, width), spanW = wePadded - ws;
      if (h0 >= h1 || w0 >= w1) continue;
      const divisor = countIncludePad ? spanH * spanW : (h1 - h0) * (w1 - w0);
      const o = oh * outW + ow;
      for (let pl = 0; pl < planes; pl++) {
        const xo = pl * inPlane;
        const v = gradOut[pl * outPlane + o] / divisor;
        for (let ih = h0; ih < h1; ih++) for (let iw = w0; iw < w1; iw++) gradInput[xo + ih * width + iw] += v;
      }
    }
  }
}

/**
 * s = sigmoid(x) (kept for the backward) and out = avgPool2dForward of s, the bits of unary("sigmoid") and
 * avgPool2dForward one after the other; the native loops take a few planes at a time, while s is in cache.
 */
export function sigmoidAvgPool2dForward(p: Pool2dGeometry, x: FloatArray, s: FloatArray, out: FloatArray, countIncludePad = true): void {
  const native = nativePool(p, x, out);
  if (native !== null && (s instanceof Float32Array) === (x instanceof Float32Array)) {
    native.sigmoidAvgPool2dForward(nativePoolGeometry(p), x, s, out, countIncludePad);
    return;
  }
  unary("sigmoid", x, s);
  avgPool2dForward(p, s, out, countIncludePad);
}

/** gradInput (overwritten) = avgPool2dBackward of gradOut times s (1 − s), sigmoid's backward from its output s:
 *  the bits of the two loops one after the other. */
export function sigmoidAvgPool2dBackward(p: Pool2dGeometry, gradOut: FloatArray, s: FloatArray, gradInput: FloatArray, countIncludePad = true): void {
  const native = nativePool(p, gradOut, gradInput);
  if (native !== null && (s instanceof Float32Array) === (gradInput instanceof Float32Array)) {
    native.sigmoidAvgPool2dBackward(nativePoolGeometry(p), gradOut, s, gradInput, countIncludePad);
    return;
  }
  avgPool2dBackward(p, gradOut, gradInput, countIncludePad);
  sigmoidBackward(gradInput, s, gradInput);
}

/** PyTorch's adaptive pooling window along one axis: [floor(i·in/out), ceil((i + 1)·in/out)). */
export function adaptiveStart(i: number, inSize: number, outSize: number): number {
  return Math.floor((i * inSize) / outSize);
}
export function adaptiveEnd(i: number, inSize: number, outSize: number): number {
  return Math.ceil(((i + 1) * inSize) / outSize);
}

/**
 * out [planes, outH, outW] = the mean of each adaptive window of x [planes, height, width] (planes = N·C).
 * @example adaptiveAvgPool2dForward(x, 128 * 64, 7, 7, 1, 1, out) // global average pooling
 */
export function adaptiveAvgPool2dForward(x: FloatArray, planes: number, height: number, width: number,
  outH: number, outW: number, out: FloatArray): void {
  const inPlane = height * width, outPlane = outH * outW;
  for (let oh = 0; oh < outH; oh++) {
    const h0 = adaptiveStart(oh, height, outH), h1 = adaptiveEnd(oh, height, outH);
    for (let ow = 0; ow < outW; ow++) {
      const w0 = adaptiveStart(ow, width, outW), w1 = adaptiveEnd(ow, width, outW);
      const count = (h1 - h0) * (w1 - w0);
      const o = oh * outW + ow;
      for (let pl = 0; pl < planes; pl++) {
        const xo = pl * inPlane;
        let s = 0;
        for (let ih = h0; ih < h1; ih++) for (let iw = w0; iw < w1; iw++) s += x[xo + ih * width + iw];
        out[pl * outPlane + o] = s / count;
      }
    }
  }
}

/** gradInput (overwritten) of adaptiveAvgPool2dForward: each window's gradient / its size, to every element of it. */
export function adaptiveAvgPool2dBackward(gradOut: FloatArray, planes: number, height: number, width: number,
  outH: number, outW: number, gradInput: FloatArray): void {
  const inPlane = height * width, outPlane = outH * outW;
  gradInput.fill(0, 0, planes * inPlane);
  for (let oh = 0; oh < outH; oh++) {
    const h0 = adaptiveStart(oh, height, outH), h1 = adaptiveEnd(oh, height, outH);
    for (let ow = 0; ow < outW; ow++) {
      const w0 = adaptiveStart(ow, width, outW), w1 = adaptiveEnd(ow, width, outW);
      const count = (h1 - h0) * (w1 - w0);
      const o = oh * outW + ow;
      for (let pl = 0; pl < planes; pl++) {
        const xo = pl * inPlane;
        const v = gradOut[pl * outPlane + o] / count;
        for (let ih = h0; ih < h1; ih++) for (let iw = w0; iw < w1; iw++) gradInput[xo + ih * width + iw] += v;
      }
    }
  }
}
