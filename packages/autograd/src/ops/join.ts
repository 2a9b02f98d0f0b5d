/**
 * Padding and joining: pad (constant; negative pads crop), cat and stack. pad's backward is pad again with
 * the pads negated (a crop of the gradient, or zeros around it), so one op covers every order; cat's
 * backward is one narrow per input, and stack is cat of unsqueezed inputs.
 */
import type { FloatArray } from "../dtype.ts";
import { ShapeError, ValueError, fmtShape } from "../errors.ts";
import { kindInfo, type OpInfo } from "../opinfo.ts";
import { normalizeAxis, sizeOf } from "../shape.ts";
import { declareOp, record } from "../tape.ts";
import { isTensor, type Tensor } from "../tensor-class.ts";
import { promoteAll } from "./nchw.ts";
import { narrow, unsqueeze } from "./shape.ts";
import { unfilled } from "./util.ts";

const PAD = declareOp("pad", { inputs: false, output: false });
const CAT = declareOp("cat", { inputs: false, output: false });

/**
 * Pads x with `value` (torch.nn.functional.pad, mode "constant"): `pads` lists (before, after) pairs
 * starting from the last axis, [left, right, top, bottom, ...], at most one pair per axis; a negative pad
 * removes that many elements instead.
 * @example pad(x, [1, 1, 2, 0]) // [N, C, H, W] -> [N, C, H + 2, W + 2], two rows of zeros on top
 */
export function pad(x: Tensor, pads: readonly number[], value = 0): Tensor {
  if (!Array.isArray(pads) || pads.length % 2 !== 0) {
    throw new ValueError(`pad: pads must have an even length (before, after pairs from the last axis), got ${JSON.stringify(pads)}`);
  }
  if (pads.length / 2 > x.ndim) {
    throw new ValueError(`pad: ${pads.length / 2} (before, after) pairs given for a tensor of rank ${x.ndim} ${fmtShape(x.shape)}`);
  }
  if (!pads.every((p) => Number.isInteger(p))) throw new ValueError(`pad: pads must be integers, got ${JSON.stringify(pads)}`);
  if (typeof value !== "number") throw new ValueError(`pad: value must be a number, got ${typeof value}`);
  const before = new Array<number>(x.ndim).fill(0), after = new Array<number>(x.ndim).fill(0);
  for (let i = 0; i < pads.length / 2; i++) {
    before[x.ndim - 1 - i] = pads[2 * i];
    after[x.ndim - 1 - i] = pads[2 * i + 1];
  }
  const outShape = x.shape.map((d, i) => d + before[i] + after[i]);
  const bad = outShape.findIndex((d) => d < 0);
  if (bad >= 0) {
    throw new ShapeError(`pad: padding ${JSON.stringify(pads)} makes axis ${bad} of ${fmtShape(x.shape)} negative (${outShape[bad]})`);
  }
  return padForward(x, before, outShape, value);
}

function padForward(x: Tensor, before: readonly number[], outShape: readonly number[], value: number): Tensor {
  const out = unfilled(x.dtype, outShape);
  out.data.fill(value);
  copyRegion(x.data, x.shape, out.data, outShape, before);
  // <pad(x), g> = <x, crop(g)>: the gradient is g padded by the opposite amounts (with zeros)
  return record(PAD, [x], out, (g) => [padForward(g, before.map((b) => -b), x.shape, 0)]);
}

/**
 * Copies the part of src that lands inside dst when src is moved by `offset` (per axis; negative moves
 * crop): dst[i + offset] = src[i]. The last axis is copied in runs.
 */
function copyRegion(src: FloatArray, srcShape: readonly number[], dst: FloatArray, dstShape: readonly number[], offset: readonly number[]): void {
  const rank = srcShape.length;
  if (rank === 0) {
    dst[0] = src[0];
    return;
  }
  const lo: number[] = [], hi: number[] = [];
  for (let i = 0; i < rank; i++) {
    lo.push(Math.max(0, -offset[i]));
    hi.push(Math.min(srcShape[i], dstShape[i] - offset[i]));
    if (hi[i] <= lo[i]) return;
  }
  const srcStrides = new Array<number>(rank), dstStrides = new Array<number>(rank);
  srcStrides[rank - 1] = dstStrides[rank - 1] = 1;
  for (let i = rank - 2; i >= 0; i--) {
    srcStrides[i] = srcStrides[i + 1] * srcShape[i + 1];
    dstStrides[i] = dstStrides[i + 1] * dstShape[i + 1];
  }
  const last = rank - 1, run = hi[last] - lo[last];
  const idx = lo.slice(0, last);
  for (;;) {
    let s = lo[last], d = lo[last] + offset[last];
    for (let i = 0; i < last; i++) {
      s += idx[i] * srcStrides[i];
      d += (idx[i] + offset[i]) * dstStrides[i];
    }
    dst.set(src.subarray(s, s + run), d);
    let i = last - 1;
    while (i >= 0 && ++idx[i] >= hi[i]) idx[i] = lo[i--];
    if (i < 0) return;
  }
}

/**
 * Joins tensors along an existing axis (torch.cat): every other axis must agree. Mixed dtypes promote.
 * @example cat([a, b], 1) // [2, 3] and [2, 4] -> [2, 7]
 */
export function cat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new ValueError("cat: expected a non-empty list of tensors");
  tensors.forEach((t, i) => {
    if (!isTensor(t)) throw new ValueError(`cat: element ${i} of the list is not a Tensor`);
  });
  const first = tensors[0];
  if (first.ndim === 0) throw new ShapeError(`cat: zero-dimensional tensor (at position 0) cannot be concatenated`);
  const a = normalizeAxis("cat", axis, first.ndim);
  tensors.forEach((t, i) => {
    if (t.ndim !== first.ndim || t.shape.some((d: number, j: number) => j !== a && d !== first.shape[j])) {
      throw new ShapeError(
        `cat: tensor ${i} ${fmtShape(t.shape)} does not match tensor 0 ${fmtShape(first.shape)} in every axis but ${a}`,
      );
    }
  });
  const xs = promoteAll(tensors) as Tensor[];
  const outShape = first.shape.slice();
  outShape[a] = xs.reduce((n, t) => n + t.shape[a], 0);
  const out = unfilled(xs[0].dtype, outShape);
  const outer = sizeOf(first.shape.slice(0, a)), inner = sizeOf(first.shape.slice(a + 1));
  const outRow = outShape[a] * inner;
  const starts: number[] = [];
  let start = 0;
  for (const t of xs) {
    starts.push(start);
    const block = t.shape[a] * inner;
    if (block > 0) for (let o = 0; o < outer; o++) out.data.set(t.data.subarray(o * block, (o + 1) * block), o * outRow + start * inner);
    start += t.shape[a];
  }
  return record(CAT, xs, out, (g) => xs.map((t, i) => (t.requiresGrad ? narrow(g, a, starts[i], t.shape[a]) : null)));
}

/**
 * Joins tensors of one shape along a new axis (torch.stack).
 * @example stack([a, b]) // two [3] -> [2, 3]
 */
export function stack(tensors: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new ValueError("stack: expected a non-empty list of tensors");
  const first = tensors[0];
  tensors.forEach((t, i) => {
    if (!isTensor(t)) throw new ValueError(`stack: element ${i} of the list is not a Tensor`);
    if (t.ndim !== first.ndim || t.shape.some((d, j) => d !== first.shape[j])) {
      throw new ShapeError(`stack: expects each tensor to be equal size, but got ${fmtShape(first.shape)} at entry 0 and ${fmtShape(t.shape)} at entry ${i}`);
    }
  });
  const a = normalizeAxis("stack", axis, first.ndim + 1);
  return cat(tensors.map((t) => unsqueeze(t, a)), a);
}

export const joinOpInfo: readonly OpInfo[] = [
  kindInfo("pad", "pad", 1, ([x], a) => pad(x, a.pads!, a.value ?? 0)),
  kindInfo("cat", "cat", 3, (xs, a) => cat(xs, a.axis as number)),
  kindInfo("stack", "stack", 3, (xs, a) => stack(xs, a.axis as number)),
];
