/**
 * 2-D pooling (NCHW, or an unbatched CHW): max pooling with saved argmax indices, average pooling and
 * adaptive average pooling. Each backward is an op whose own backward is the forward kind again, so all
 * three are differentiable to any order: max pooling's backward scatters the gradient to the argmax
 * positions, and the scatter's backward gathers from them (a gather at the same indices is what the
 * forward computed); the average poolings are linear, each paired with its adjoint.
 */
import { ShapeError, fmtShape } from "../errors.ts";
import * as K from "../kernels/index.ts";
import { kindInfo, type OpInfo } from "../opinfo.ts";
import { allocateIndices, allocateUnfilled, allocateWindowOffsets, releaseBuffer } from "../memory.ts";
import { declareOp, isGradEnabled, record } from "../tape.ts";
import { makeTensor, type Tensor } from "../tensor-class.ts";
import { mul, sub } from "./binary.ts";
import { intPair } from "./nchw.ts";
import { recordSigmoid } from "./unary.ts";
import { empty, unfilled } from "./util.ts";

const MAX_POOL2D = declareOp("maxPool2d", { inputs: false, output: false });
const MAX_POOL2D_BACKWARD = declareOp("maxPool2dBackward", { inputs: false, output: false });
const AVG_POOL2D = declareOp("avgPool2d", { inputs: false, output: false });
const AVG_POOL2D_BACKWARD = declareOp("avgPool2dBackward", { inputs: false, output: false });
const SIGMOID_AVG_POOL2D = declareOp("sigmoidAvgPool2d", { inputs: false, output: false });
const ADAPTIVE_AVG_POOL2D = declareOp("adaptiveAvgPool2d", { inputs: false, output: false });
const ADAPTIVE_AVG_POOL2D_BACKWARD = declareOp("adaptiveAvgPool2dBackward", { inputs: false, output: false });

type Pair = K.Pair;

export interface MaxPool2dOptions {
  /** Default: kernelSize. */
  stride?: Pair;
  /** Implicit −∞ on each side, at most half the kernel. Default 0. */
  padding?: Pair;
  /** Spacing of the window's elements. Default 1. */
  dilation?: Pair;
  /** Round the output size up (a last, partial window), as PyTorch's ceil_mode. Default false. */
  ceilMode?: boolean;
}

export interface AvgPool2dOptions {
  /** Default: kernelSize. */
  stride?: Pair;
  /** Implicit zeros on each side, at most half the kernel. Default 0. */
  padding?: Pair;
  ceilMode?: boolean;
  /** Divide by the whole window, padding included (default true), or by the input elements in it. */
  countIncludePad?: boolean;
}

function pooledShape(x: Tensor, p: K.Pool2dGeometry): number[] {
  return x.ndim === 4 ? [p.batch, p.channels, p.outH, p.outW] : [p.channels, p.outH, p.outW];
}

/**
 * Max over each window (torch.nn.functional.max_pool2d). Padding counts as −∞; the gradient goes to the
 * element each window picked (its first maximum; a NaN is the maximum).
 * @example maxPool2d(x, 2) // [128, 32, 28, 28] -> [128, 32, 14, 14]
 */
export function maxPool2d(x: Tensor, kernelSize: Pair, options: MaxPool2dOptions = {}): Tensor {
  const p = K.pool2dGeometry("maxPool2d", x.shape, { kernelSize, ...options });
  const out = unfilled(x.dtype, pooledShape(x, p));
  // 2 × 2 windows keep one byte a window (its offset) instead of a flat index: nothing outside reads them
  const indices = K.maxPoolWindowOffsets(p) ? allocateWindowOffsets(out.size) : allocateIndices(out.size);
  K.maxPool2dForward(p, x.data, out.data, indices);
  record(MAX_POOL2D, [x], out, (g, node) => {
    // a recorded backward keeps the indices in its own graph: they are no longer the node's alone
    if (isGradEnabled()) node.scratch = null;
    return [scatterToArgmax(g, indices, p, x.shape)];
  });
  // nothing else keeps the indices: no node (grad mode off, or no input requires grad) or the node's scratch
  if (out.gradFn) out.gradFn.scratch = indices;
  else releaseBuffer(indices);
  return out;
}

/** maxPool2d's backward: zeros of the input's shape, each window's gradient added at its argmax. */
function scatterToArgmax(g: Tensor, indices: Int32Array | Uint8Array, p: K.Pool2dGeometry, inputShape: readonly number[]): Tensor {
  const out = unfilled(g.dtype, inputShape);
  K.maxPool2dBackward(p, g.data, indices, out.data);
  return record(MAX_POOL2D_BACKWARD, [g], out, (gg) => [gatherAtArgmax(gg, indices, p, g.shape)]);
}

/** The adjoint of scatterToArgmax: each window's value at its argmax (what maxPool2d computed), 0 for a
 *  window that missed the input. Recorded as maxPool2d: the same gather, its backward the same scatter. */
function gatherAtArgmax(x: Tensor, indices: Int32Array | Uint8Array, p: K.Pool2dGeometry, outShape: readonly number[]): Tensor {
  const out = empty(x.dtype, outShape);
  const planes = p.batch * p.channels, inPlane = p.height * p.width, outPlane = p.outH * p.outW;
  const xd = x.data, od = out.data;
  if (indices instanceof Uint8Array) {
    for (let pl = 0; pl < planes; pl++) {
      const xo = pl * inPlane, o0 = pl * outPlane;
      for (let o = o0; o < o0 + outPlane; o++) {
        const d = indices[o];
        if (d < 4) od[o] = xd[xo + K.windowOffsetIndex(p, o - o0, d)];
      }
    }
    return record(MAX_POOL2D, [x], out, (g) => [scatterToArgmax(g, indices, p, x.shape)]);
  }
  for (let pl = 0; pl < planes; pl++) {
    const xo = pl * inPlane;
    for (let o = pl * outPlane, end = o + outPlane; o < end; o++) {
      const k = indices[o];
      if (k >= 0) od[o] = xd[xo + k];
    }
  }
  return record(MAX_POOL2D, [x], out, (g) => [scatterToArgmax(g, indices, p, x.shape)]);
}

/**
 * Mean over each window (torch.nn.functional.avg_pool2d).
 * @example avgPool2d(x, 2) // LeNet's pooling: [256, 6, 28, 28] -> [256, 6, 14, 14]
 */
export function avgPool2d(x: Tensor, kernelSize: Pair, options: AvgPool2dOptions = {}): Tensor {
  const { countIncludePad = true, ...rest } = options;
  const p = K.pool2dGeometry("avgPool2d", x.shape, { kernelSize, ...rest });
  return avgPoolForward(x, p, countIncludePad);
}

function avgPoolForward(x: Tensor, p: K.Pool2dGeometry, countIncludePad: boolean): Tensor {
  const out = unfilled(x.dtype, pooledShape(x, p));
  K.avgPool2dForward(p, x.data, out.data, countIncludePad);
  return record(AVG_POOL2D, [x], out, (g) => [avgPoolBackward(g, p, countIncludePad, x.shape)]);
}

function avgPoolBackward(g: Tensor, p: K.Pool2dGeometry, countIncludePad: boolean, inputShape: readonly number[]): Tensor {
  const out = unfilled(g.dtype, inputShape);
  K.avgPool2dBackward(p, g.data, out.data, countIncludePad);
  return record(AVG_POOL2D_BACKWARD, [g], out, (gg) => [avgPoolForward(gg, p, countIncludePad)]);
}

/**
 * avgPool2d(sigmoid(x)) as one op, with the pair's values and gradients bit for bit (nn.Sequential runs a
 * Sigmoid followed by an AvgPool2d through it). The forward keeps sigmoid's output for the backward, which
 * computes the pooling's gradient times s·(1 − s) in one pass over the input instead of two. A recorded
 * backward (createGraph) is the pair's own ops, with sigmoid's output recorded as sigmoid records it.
 * NOTE: its first-order gradient has the pair's bits, higher orders the pair's values up to rounding: their
 * terms reach x along two paths (this node and that sigmoid) and add there, where the pair adds them at
 * sigmoid's output before its backward.
 * @example sigmoidAvgPool2d(x, 2) // LeNet: [256, 6, 28, 28] -> [256, 6, 14, 14]
 */
export function sigmoidAvgPool2d(x: Tensor, kernelSize: Pair, options: AvgPool2dOptions = {}): Tensor {
  const { countIncludePad = true, ...rest } = options;
  const p = K.pool2dGeometry("avgPool2d", x.shape, { kernelSize, ...rest });
  const s = allocateUnfilled(x.dtype, x.size);
  const out = unfilled(x.dtype, pooledShape(x, p));
  K.sigmoidAvgPool2dForward(p, x.data, s, out.data, countIncludePad);
  record(SIGMOID_AVG_POOL2D, [x], out, (g, node) => {
    if (isGradEnabled() || g.dtype !== x.dtype) {
      // a recorded backward keeps s in its own graph: it is no longer the node's alone
      if (isGradEnabled()) node.scratch = null;
      const y = recordSigmoid(x, makeTensor(s, x.shape));
      return [mul(avgPoolBackward(g, p, countIncludePad, x.shape), mul(y, sub(1, y)))];
    }
    const gx = unfilled(g.dtype, x.shape);
    K.sigmoidAvgPool2dBackward(p, g.data, s, gx.data, countIncludePad);
    return [gx];
  });
  // nothing else keeps s: no node (grad mode off, or x does not require grad) or the node's scratch
  if (out.gradFn) out.gradFn.scratch = s;
  else releaseBuffer(s);
  return out;
}

/** An adaptive output size: a number, or a pair whose null entries keep the input's size. */
export type AdaptiveSize = number | readonly [number | null, number | null];

/**
 * Average pooling to a fixed output size (torch.nn.functional.adaptive_avg_pool2d): output cell i
 * averages the input rows ⌊i·H/outH⌋ … ⌈(i + 1)·H/outH⌉ − 1, and likewise for columns.
 * @example adaptiveAvgPool2d(x, 1) // global average pooling: [N, C, H, W] -> [N, C, 1, 1]
 */
export function adaptiveAvgPool2d(x: Tensor, outputSize: AdaptiveSize): Tensor {
  if (x.ndim !== 3 && x.ndim !== 4) {
    throw new ShapeError(`adaptiveAvgPool2d: expected a 3-D [C, H, W] or 4-D [N, C, H, W] input, got ${fmtShape(x.shape)}`);
  }
  const [height, width] = x.shape.slice(-2);
  const given = typeof outputSize === "number" ? [outputSize, outputSize] : outputSize;
  const [outH, outW] = intPair("adaptiveAvgPool2d", "outputSize", [given[0] ?? height, given[1] ?? width]);
  if (height === 0 || width === 0) throw new ShapeError(`adaptiveAvgPool2d: the input ${fmtShape(x.shape)} has an empty spatial dimension`);
  return adaptiveForward(x, outH, outW);
}

function adaptiveForward(x: Tensor, outH: number, outW: number): Tensor {
  const [height, width] = x.shape.slice(-2);
  const planes = x.size / (height * width);
  const out = unfilled(x.dtype, [...x.shape.slice(0, -2), outH, outW]);
  K.adaptiveAvgPool2dForward(x.data, planes, height, width, outH, outW, out.data);
  return record(ADAPTIVE_AVG_POOL2D, [x], out, (g) => [adaptiveBackward(g, x.shape)]);
}

function adaptiveBackward(g: Tensor, inputShape: readonly number[]): Tensor {
  const [height, width] = inputShape.slice(-2);
  const [outH, outW] = g.shape.slice(-2);
  const out = unfilled(g.dtype, inputShape);
  K.adaptiveAvgPool2dBackward(g.data, g.size / (outH * outW), height, width, outH, outW, out.data);
  return record(ADAPTIVE_AVG_POOL2D_BACKWARD, [g], out, (gg) => [adaptiveForward(gg, outH, outW)]);
}

export const poolOpInfo: readonly OpInfo[] = [
  kindInfo("maxPool2d", "pool2d", 1, ([x], a) => maxPool2d(x, a.pool!.kernelSize, a.pool), { avoidTies: true }),
  kindInfo("avgPool2d", "pool2d", 1, ([x], a) => {
    const { kernelSize, stride, padding, ceilMode, countIncludePad } = a.pool!;
    return avgPool2d(x, kernelSize, { stride, padding, ceilMode, countIncludePad });
  }),
  kindInfo("sigmoidAvgPool2d", "pool2d", 1, ([x], a) => {
    const { kernelSize, stride, padding, ceilMode, countIncludePad } = a.pool!;
    return sigmoidAvgPool2d(x, kernelSize, { stride, padding, ceilMode, countIncludePad });
  }),
  kindInfo("adaptiveAvgPool2d", "adaptivePool2d", 1, ([x], a) => adaptiveAvgPool2d(x, a.outputSize!)),
];
