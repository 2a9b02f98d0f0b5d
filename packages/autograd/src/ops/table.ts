/**
 * The op table: one entry per differentiable op, saying how to call it and what sample inputs it needs.
 * The gradient property tests (test/properties.test.ts) are generated from it: adding an op here adds
 * its first- and second-order gradient checks. Sample generators live in testing.ts (`opSample`).
 */
import type { Tensor } from "../tensor.ts";
import * as ops from "./index.ts";

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
 */
export type SampleKind =
  | "unary" | "binary" | "reduction" | "axis" | "matmul" | "linear" | "pick"
  | "reshape" | "flatten" | "permute" | "unsqueeze" | "squeeze" | "broadcastTo" | "sumTo" | "narrow";

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
}

const any: InputDomain = { min: -2, max: 2 };
const positive: InputDomain = { min: 0.1, max: 3 };
const awayFromZero: InputDomain = { min: -2, max: 2, avoid: [0], margin: 0.5 };
const kinkAtZero: InputDomain = { min: -2, max: 2, avoid: [0], margin: 1e-3 };

const unary = (name: string, f: (x: Tensor) => Tensor, domain: InputDomain = any): OpInfo => ({
  name, arity: 1, kind: "unary", call: ([x]) => f(x), domains: [domain], twiceDifferentiable: true,
});

const binary = (name: string, f: (a: Tensor, b: Tensor) => Tensor, domains: InputDomain[] = [any, any], extra: Partial<OpInfo> = {}): OpInfo => ({
  name, arity: 2, kind: "binary", call: ([a, b]) => f(a, b), domains, twiceDifferentiable: true, ...extra,
});

const reduction = (name: string, f: (x: Tensor, axis: number | number[] | undefined, keepdims: boolean) => Tensor, extra: Partial<OpInfo> = {}): OpInfo => ({
  name, arity: 1, kind: "reduction", call: ([x], a) => f(x, a.axis, a.keepdims ?? false), twiceDifferentiable: true, ...extra,
});

export const opTable: readonly OpInfo[] = [
  binary("add", ops.add),
  binary("sub", ops.sub),
  binary("mul", ops.mul),
  binary("div", ops.div, [any, awayFromZero]),
  binary("pow", ops.pow, [positive, any]),
  unary("pow (number exponent)", (x) => ops.pow(x, 3)),
  binary("maximum", ops.maximum, [any, any], { avoidTies: true }),
  binary("minimum", ops.minimum, [any, any], { avoidTies: true }),
  unary("neg", ops.neg),
  unary("exp", ops.exp),
  unary("log", ops.log, positive),
  unary("relu", ops.relu, kinkAtZero),
  unary("tanh", ops.tanh),
  unary("sigmoid", ops.sigmoid),
  unary("sqrt", ops.sqrt, positive),
  unary("abs", ops.abs, kinkAtZero),
  unary("clone", ops.clone),
  unary("transpose", ops.transpose),
  {
    name: "matmul", arity: 2, kind: "matmul", call: ([a, b]) => ops.matmul(a, b), twiceDifferentiable: true,
  },
  {
    name: "linear", arity: 3, kind: "linear", call: ([x, w, b]) => ops.linear(x, w, b), twiceDifferentiable: true,
  },
  reduction("sum", ops.sum),
  reduction("mean", ops.mean),
  reduction("max", ops.max, { avoidTies: true }),
  reduction("min", ops.min, { avoidTies: true }),
  reduction("logsumexp", ops.logsumexp),
  {
    name: "logSoftmax", arity: 1, kind: "axis", call: ([x], a) => ops.logSoftmax(x, a.axis as number), twiceDifferentiable: true,
  },
  {
    name: "softmax", arity: 1, kind: "axis", call: ([x], a) => ops.softmax(x, a.axis as number), twiceDifferentiable: true,
  },
  {
    name: "pick", arity: 1, kind: "pick", call: ([x], a) => ops.pick(x, a.index!, a.axis as number, a.keepdims), twiceDifferentiable: true,
  },
  { name: "reshape", arity: 1, kind: "reshape", call: ([x], a) => ops.reshape(x, a.shape!), twiceDifferentiable: true },
  { name: "flatten", arity: 1, kind: "flatten", call: ([x], a) => ops.flatten(x, a.startDim, a.endDim), twiceDifferentiable: true },
  { name: "permute", arity: 1, kind: "permute", call: ([x], a) => ops.permute(x, a.axes!), twiceDifferentiable: true },
  { name: "unsqueeze", arity: 1, kind: "unsqueeze", call: ([x], a) => ops.unsqueeze(x, a.axis as number), twiceDifferentiable: true },
  { name: "squeeze", arity: 1, kind: "squeeze", call: ([x], a) => ops.squeeze(x, a.axis), twiceDifferentiable: true },
  { name: "broadcastTo", arity: 1, kind: "broadcastTo", call: ([x], a) => ops.broadcastTo(x, a.shape!), twiceDifferentiable: true },
  { name: "sumTo", arity: 1, kind: "sumTo", call: ([x], a) => ops.sumTo(x, a.shape!), twiceDifferentiable: true },
  { name: "narrow", arity: 1, kind: "narrow", call: ([x], a) => ops.narrow(x, a.axis as number, a.start!, a.length!), twiceDifferentiable: true },
];

/** The entry of `name`; throws for an op that is not in the table. */
export function opInfo(name: string): OpInfo {
  const info = opTable.find((o) => o.name === name);
  if (!info) throw new Error(`opInfo: no op named ${JSON.stringify(name)} in the op table`);
  return info;
}
