/**
 * OpInfo: the test metadata of an op (PyTorch's OpInfo), declared next to the op in its ops/ file: how to
 * call it on sample inputs, which kind of samples it needs and where its inputs may lie. `opTable` (in
 * ops/index.ts) collects every file's entries; the gradient property tests (first and second order) are
 * generated from it, and the op-coverage test checks that every op the tape can record appears on the
 * tape of some entry's samples. The sample generators live in testing.ts (`arbitraries.opSample`).
 */
import type { Conv2dPadding, Pair } from "./kernels/conv.ts";
import type { Tensor } from "./tensor-class.ts";

/**
 * How the samples of an op are shaped:
 * - unary: one tensor of rank 0–4
 * - binary: two tensors of broadcastable shapes
 * - reduction: one tensor, an axis (undefined, one axis or a list) and keepdims
 * - axis: one tensor of rank ≥ 1 and one axis (softmax, logSoftmax)
 * - matmul: NumPy matmul shapes (1-D, 2-D, batched with broadcast batch axes)
 * - linear: x [..., in], weight [out, in] and a bias [out] (arity 3)
 * - pick: a tensor, an axis, one index per row (repeats allowed) and keepdims
 * - reshape / flatten / permute / unsqueeze / squeeze / broadcastTo / sumTo: a tensor and a target of that kind
 * - narrow: a tensor of rank ≥ 1, an axis, a start (negative ones included) and a length that fit it
 * - conv2d: input [N, C, H, W] (or [C, H, W]), weight [O, C/groups, kH, kW], bias [O] (or none: bias false);
 *   strides, paddings (numbers, pairs, "same", "valid"), dilations and groups
 * - pool2d: input [N, C, H, W] (or [C, H, W]); kernel sizes, strides, paddings (≤ half the kernel),
 *   dilations, ceilMode and countIncludePad, every window touching the input
 * - adaptivePool2d: input [N, C, H, W] (or [C, H, W]) and an output size (a number or a pair, null entries
 *   keeping the input's size)
 * - batchNorm: input [N, C, ...] (rank 2–4), weight and bias [C] (or none: affine false), running
 *   statistics, training or not, momentum and eps
 * - layerNorm: input, its trailing axes as normalizedShape (shape), weight and bias of that shape (or none),
 *   eps
 * - pad: a tensor and (before, after) pairs from the last axis, negative ones included, and a value
 * - cat: one to three tensors that agree in every axis but `axis`
 * - stack: one to three tensors of one shape and an axis of the result
 * - dropout: a tensor, a probability and the seed of the mask's generator
 */
export type SampleKind =
  | "unary" | "binary" | "reduction" | "axis" | "matmul" | "linear" | "pick"
  | "reshape" | "flatten" | "permute" | "unsqueeze" | "squeeze" | "broadcastTo" | "sumTo" | "narrow"
  | "conv2d" | "pool2d" | "adaptivePool2d" | "batchNorm" | "layerNorm" | "pad" | "cat" | "stack" | "dropout";

/** Arguments other than the tensors, drawn by the sample generator for the op's kind. */
export interface SampleArgs {
  axis?: number | number[];
  keepdims?: boolean;
  index?: number[];
  shape?: number[];
  axes?: number[];
  startDim?: number;
  endDim?: number;
  start?: number;
  length?: number;
  conv?: { stride?: Pair; padding?: Conv2dPadding; dilation?: Pair; groups?: number };
  /** false: call the op without its bias (conv2d) */
  bias?: boolean;
  pool?: { kernelSize: Pair; stride?: Pair; padding?: Pair; dilation?: Pair; ceilMode?: boolean; countIncludePad?: boolean };
  outputSize?: number | [number | null, number | null];
  /** false: call the op without weight and bias (batchNorm, layerNorm) */
  affine?: boolean;
  training?: boolean;
  momentum?: number;
  eps?: number;
  runningMean?: number[];
  runningVar?: number[];
  pads?: number[];
  value?: number;
  p?: number;
  seed?: number;
}

/** Where an input's values are drawn from. */
export interface InputDomain {
  min: number;
  max: number;
  /** Values are kept at least `margin` away from these points (non-differentiable points, poles). */
  avoid?: readonly number[];
  margin?: number;
}

export interface OpInfo {
  /** The op's name: the name it records on the tape, or its public name for a composite. */
  name: string;
  /** Number of tensor inputs. */
  arity: number;
  kind: SampleKind;
  /** Calls the op on sample tensors and arguments. */
  call(inputs: readonly Tensor[], args: SampleArgs): Tensor;
  /** One domain per input (defaults to [-2, 2]). */
  domains?: readonly InputDomain[];
  /**
   * The op has kinks where its inputs tie (max, maximum): samples get values spaced at least 0.01 apart
   * (within a tensor for reductions, across the two inputs for binary ops) so no tie is within eps.
   */
  avoidTies?: boolean;
  /** Whether the backward is itself differentiable (checked with gradgradcheck). */
  twiceDifferentiable: boolean;
  /** gradcheck options for this op, where the defaults do not fit (e.g. a float32 round trip). */
  gradcheck?: { eps?: number; atol?: number; rtol?: number };
}

export const anyValue: InputDomain = { min: -2, max: 2 };
export const positive: InputDomain = { min: 0.1, max: 3 };
export const awayFromZero: InputDomain = { min: -2, max: 2, avoid: [0], margin: 0.5 };
export const kinkAtZero: InputDomain = { min: -2, max: 2, avoid: [0], margin: 1e-3 };

/** An elementwise one-input op. */
export function unaryInfo(name: string, f: (x: Tensor) => Tensor, domain: InputDomain = anyValue, extra: Partial<OpInfo> = {}): OpInfo {
  return { name, arity: 1, kind: "unary", call: ([x]) => f(x), domains: [domain], twiceDifferentiable: true, ...extra };
}

/** A broadcasting two-input op. */
export function binaryInfo(name: string, f: (a: Tensor, b: Tensor) => Tensor, domains: InputDomain[] = [anyValue, anyValue], extra: Partial<OpInfo> = {}): OpInfo {
  return { name, arity: 2, kind: "binary", call: ([a, b]) => f(a, b), domains, twiceDifferentiable: true, ...extra };
}

/** A reduction over an axis argument with keepdims. */
export function reductionInfo(name: string, f: (x: Tensor, axis: number | number[] | undefined, keepdims: boolean) => Tensor, extra: Partial<OpInfo> = {}): OpInfo {
  return { name, arity: 1, kind: "reduction", call: ([x], a) => f(x, a.axis, a.keepdims ?? false), twiceDifferentiable: true, ...extra };
}

/** Any other op: its kind of samples and how to call it on them. */
export function kindInfo(name: string, kind: SampleKind, arity: number, call: OpInfo["call"], extra: Partial<OpInfo> = {}): OpInfo {
  return { name, arity, kind, call, twiceDifferentiable: true, ...extra };
}
