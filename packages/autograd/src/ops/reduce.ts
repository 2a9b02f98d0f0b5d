/** Reductions: sum and max are primitives; mean, min, logsumexp and sumTo are composites. */
import type { FloatArray } from "../dtype.ts";
import { ShapeError, fmtShape } from "../errors.ts";
import * as K from "../kernels/index.ts";
import { allocate } from "../memory.ts";
import { kindInfo, reductionInfo, type OpInfo } from "../opinfo.ts";
import { normalizeAxes, normalizeAxis, reducedShape, sameShape, scalarAxes, sizeOf } from "../shape.ts";
import { declareOp, noGrad, record } from "../tape.ts";
import { makeTensor, type Tensor } from "../tensor-class.ts";
import type { Axis } from "../tensor.ts";
import { add, div, mul, sub, compare } from "./binary.ts";
import { log, exp, neg } from "./unary.ts";
import { broadcastTo, reshape } from "./shape.ts";

const SUM = declareOp("sum", { inputs: false, output: false });
const MAX = declareOp("max");

type AxisKernel = (x: FloatArray, outer: number, n: number, inner: number, out: FloatArray) => void;

/**
 * Reduces `axes` (sorted) with `kernel`, one run of contiguous axes at a time, last run first.
 * Returns the data and the keepdims shape.
 */
function reduceAxes(x: Tensor, axes: readonly number[], kernel: AxisKernel): { data: FloatArray; kept: number[] } {
  const kept = [...x.shape];
  let data = x.data;
  let end = axes.length - 1;
  while (end >= 0) {
    let start = end;
    while (start > 0 && axes[start - 1] === axes[start] - 1) start--;
    const a0 = axes[start];
    const a1 = axes[end];
    const outer = sizeOf(kept.slice(0, a0));
    const n = sizeOf(kept.slice(a0, a1 + 1));
    const inner = sizeOf(kept.slice(a1 + 1));
    const out = allocate(x.dtype, outer * inner);
    kernel(data, outer, n, inner, out);
    for (let i = a0; i <= a1; i++) kept[i] = 1;
    data = out;
    end = start - 1;
  }
  if (data === x.data) data = x.data.slice();
  return { data, kept };
}

/** Sum over `axis` (all when undefined). @example x.sum(-1, true) */
export function sum(x: Tensor, axis?: Axis, keepdims = false): Tensor {
  const axes = normalizeAxes("sum", axis, x.ndim);
  const { data, kept } = reduceAxes(x, axes, K.sumAxis);
  const out = makeTensor(data, reducedShape(x.shape, axes, keepdims));
  return record(SUM, [x], out, (g) => [broadcastTo(reshape(g, kept), x.shape)]);
}

export function mean(x: Tensor, axis?: Axis, keepdims = false): Tensor {
  const axes = normalizeAxes("mean", axis, x.ndim);
  let n = 1;
  for (let i = 0; i < axes.length; i++) n *= x.shape[axes[i]];
  return div(sum(x, axes, keepdims), n);
}

/** Maximum over `axis`; the gradient is shared evenly between tied maxima (torch.amax). */
export function max(x: Tensor, axis?: Axis, keepdims = false): Tensor {
  const axes = normalizeAxes("max", axis, x.ndim);
  for (const a of axes) {
    if (x.shape[a] === 0) throw new ShapeError(`max: cannot reduce over axis ${a} of size 0 in shape ${fmtShape(x.shape)}`);
  }
  const { data, kept } = reduceAxes(x, axes, K.maxAxis);
  const out = makeTensor(data, reducedShape(x.shape, axes, keepdims));
  return record(MAX, [x], out, (g) => {
    const share = noGrad(() => {
      const hit = maxHits(x, makeTensor(data, kept));
      return div(hit, sum(hit, axes, true));
    });
    return [mul(reshape(g, kept), share)];
  });
}

/** 1 where x equals its slice's maximum `m` (broadcast), or where both are NaN (a NaN is the maximum, and
 *  the gradient goes to the NaNs, as PyTorch's evenly_distribute_backward); 0 elsewhere. */
function maxHits(x: Tensor, m: Tensor): Tensor {
  const hit = compare("eq", x, m);
  const full = broadcastTo(m, x.shape);
  const xd = x.data, md = full.data, h = hit.data;
  for (let i = 0; i < h.length; i++) if (xd[i] !== xd[i] && md[i] !== md[i]) h[i] = 1;
  return hit;
}

export function min(x: Tensor, axis?: Axis, keepdims = false): Tensor {
  return neg(max(neg(x), axis, keepdims));
}

/** Index of the first maximum along `axis` (over the flattened tensor when undefined). Not differentiable. */
export function argmax(x: Tensor, axis?: number, keepdims = false): Tensor {
  if (axis === undefined) {
    if (x.size === 0) throw new ShapeError(`argmax: empty tensor of shape ${fmtShape(x.shape)}`);
    const out = makeTensor(allocate(x.dtype, 1), keepdims ? x.shape.map(() => 1) : []);
    K.argmaxAxis(x.data, 1, x.size, 1, out.data);
    return out;
  }
  if (x.ndim === 0) {
    scalarAxes("argmax", [axis]);
    return makeTensor(allocate(x.dtype, 1), []);
  }
  const a = normalizeAxis("argmax", axis, x.ndim);
  if (x.shape[a] === 0) throw new ShapeError(`argmax: cannot reduce over axis ${a} of size 0 in shape ${fmtShape(x.shape)}`);
  const outer = sizeOf(x.shape.slice(0, a));
  const inner = sizeOf(x.shape.slice(a + 1));
  const out = makeTensor(allocate(x.dtype, outer * inner), reducedShape(x.shape, [a], keepdims));
  K.argmaxAxis(x.data, outer, x.shape[a], inner, out.data);
  return out;
}

/** log Σ exp(x) over `axis`, shifted by the (constant) maximum so it never overflows. */
export function logsumexp(x: Tensor, axis?: Axis, keepdims = false): Tensor {
  const axes = normalizeAxes("logsumexp", axis, x.ndim);
  const shift = noGrad(() => {
    const m = max(x, axes, true);
    // NOTE: an all -inf (or +inf) slice would give inf - inf = NaN; shift those slices by 0 instead
    for (let i = 0; i < m.data.length; i++) if (!Number.isFinite(m.data[i])) m.data[i] = 0;
    return m;
  });
  const out = add(log(sum(exp(sub(x, shift)), axes, true)), shift);
  return keepdims ? out : reshape(out, reducedShape(x.shape, axes, false));
}

/** Sums `g` down to `shape` (the adjoint of broadcastTo): leading axes and axes where shape has 1. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return reshape(sum(g, axes, true), shape);
}

export const reduceOpInfo: readonly OpInfo[] = [
  reductionInfo("sum", sum),
  reductionInfo("mean", mean),
  reductionInfo("max", max, { avoidTies: true }),
  reductionInfo("min", min, { avoidTies: true }),
  reductionInfo("logsumexp", logsumexp),
  kindInfo("sumTo", "sumTo", 1, ([x], a) => sumTo(x, a.shape!)),
];
