/** Broadcasting binary ops. Backward formulas return gradients in the output's shape: the engine sums them back. */
import * as K from "../kernels/index.ts";
import { broadcastShapes } from "../shape.ts";
import { declareOp, noGrad, record, type OpId } from "../tape.ts";
import type { Tensor } from "../tensor-class.ts";
import type { TensorLikeInput } from "../tensor.ts";
import { awayFromZero, anyValue, binaryInfo, positive, unaryInfo, type OpInfo } from "../opinfo.ts";
import { broadcastTo } from "./shape.ts";
import { operands, unfilled } from "./util.ts";

const ADD = declareOp("add", { inputs: false, output: false });
const SUB = declareOp("sub", { inputs: false, output: false });
const MUL = declareOp("mul", { output: false });
const DIV = declareOp("div", { output: false });
const POW = declareOp("pow", { output: false });
const ZERO_WHERE = declareOp("zeroWhere", { inputs: false, output: false });
const MAXIMUM = declareOp("maximum", { output: false });
const MINIMUM = declareOp("minimum", { output: false });

function forward(kind: K.BinaryKind, A: Tensor, B: Tensor): Tensor {
  const shape = broadcastShapes(kind, A.shape, B.shape);
  const out = unfilled(A.dtype, shape);
  K.binary(kind, A.data, A.shape, B.data, B.shape, out.data, shape);
  return out;
}

export function add(a: TensorLikeInput, b: TensorLikeInput): Tensor {
  const [A, B] = operands("add", a, b);
  return record(ADD, [A, B], forward("add", A, B), (g) => [g, g]);
}

export function sub(a: TensorLikeInput, b: TensorLikeInput): Tensor {
  const [A, B] = operands("sub", a, b);
  return record(SUB, [A, B], forward("sub", A, B), (g) => [g, B.requiresGrad ? g.neg() : null]);
}

export function mul(a: TensorLikeInput, b: TensorLikeInput): Tensor {
  const [A, B] = operands("mul", a, b);
  return record(MUL, [A, B], forward("mul", A, B), (g) => [
    A.requiresGrad ? mul(g, B) : null,
    B.requiresGrad ? mul(g, A) : null,
  ]);
}

export function div(a: TensorLikeInput, b: TensorLikeInput): Tensor {
  const [A, B] = operands("div", a, b);
  return record(DIV, [A, B], forward("div", A, B), (g) => [
    A.requiresGrad ? div(g, B) : null,
    // NOTE: d(a/b)/db = -a/b², written as -(g·a/b)/b to stay finite where b² would underflow
    B.requiresGrad ? div(mul(g, A), B).div(B).neg() : null,
  ]);
}

/**
 * Elementwise power. d/da = b·a^(b-1), and 0 where b = 0; d/db = a^b·log(a), and 0 where a = 0 and
 * b ≥ 0 (PyTorch's pow_backward: the formulas give NaN or -inf at those points, where the limits are 0).
 */
export function pow(a: TensorLikeInput, b: TensorLikeInput): Tensor {
  const [A, B] = operands("pow", a, b);
  const out = forward("pow", A, B);
  return record(POW, [A, B], out, (g) => [
    A.requiresGrad ? zeroWhere(noGrad(() => compare("eq", B, 0)), mul(g, mul(B, pow(A, sub(B, 1))))) : null,
    B.requiresGrad ? zeroWhere(noGrad(() => mul(compare("eq", A, 0), compare("ge", B, 0))), mul(g, mul(pow(A, B), A.log()))) : null,
  ]);
}

/** `x` with 0 wherever `mask` (broadcast to x's shape) is non-zero, as torch.where(mask, 0, x): a NaN
 *  or infinity there does not survive. Differentiable in x; the mask is a constant. */
function zeroWhere(mask: Tensor, x: Tensor): Tensor {
  const full = noGrad(() => broadcastTo(mask, x.shape));
  const out = unfilled(x.dtype, x.shape);
  const m = full.data, d = x.data, o = out.data;
  for (let i = 0; i < o.length; i++) o[i] = m[i] !== 0 ? 0 : d[i];
  return record(ZERO_WHERE, [x], out, (g) => [zeroWhere(full, g)]);
}

/**
 * Elementwise maximum. As in PyTorch, each input's gradient is g where it is not the smaller one, half
 * of g at ties, so where either is NaN (no order) both get all of g.
 */
export function maximum(a: TensorLikeInput, b: TensorLikeInput): Tensor {
  return extremum(MAXIMUM, "maximum", "lt", a, b);
}

export function minimum(a: TensorLikeInput, b: TensorLikeInput): Tensor {
  return extremum(MINIMUM, "minimum", "gt", a, b);
}

function extremum(op: OpId, kind: "maximum" | "minimum", loses: "gt" | "lt", a: TensorLikeInput, b: TensorLikeInput): Tensor {
  const [A, B] = operands(kind, a, b);
  return record(op, [A, B], forward(kind, A, B), (g) => {
    const [wa, wb] = noGrad(() => {
      const half = forward("eq", A, B).mul(0.5);
      return [sub(sub(1, forward(loses, A, B)), half), sub(sub(1, forward(loses, B, A)), half)];
    });
    return [A.requiresGrad ? mul(g, wa) : null, B.requiresGrad ? mul(g, wb) : null];
  });
}

/** 0/1 comparison results; not differentiable, never recorded. */
export function compare(kind: "eq" | "ne" | "gt" | "ge" | "lt" | "le", a: TensorLikeInput, b: TensorLikeInput): Tensor {
  const [A, B] = noGrad(() => operands(kind, a, b));
  return forward(kind, A, B);
}

export const binaryOpInfo: readonly OpInfo[] = [
  binaryInfo("add", add),
  binaryInfo("sub", sub),
  binaryInfo("mul", mul),
  binaryInfo("div", div, [anyValue, awayFromZero]),
  binaryInfo("pow", pow, [positive, anyValue]),
  unaryInfo("pow (number exponent)", (x) => pow(x, 3)),
  binaryInfo("maximum", maximum, [anyValue, anyValue], { avoidTies: true }),
  binaryInfo("minimum", minimum, [anyValue, anyValue], { avoidTies: true }),
];
