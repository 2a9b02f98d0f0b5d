/** Broadcasting binary ops. Backward formulas return gradients in the output's shape: the engine sums them back. */
import { record } from "../engine.ts";
import * as K from "../kernels/index.ts";
import { broadcastShapes } from "../shape.ts";
import { Tensor, type TensorLikeInput } from "../tensor.ts";
import { noGrad } from "../engine.ts";
import { operands, unfilled } from "./util.ts";

function forward(kind: K.BinaryKind, A: Tensor, B: Tensor): Tensor {
  const shape = broadcastShapes(kind, A.shape, B.shape);
  const out = unfilled(A.dtype, shape);
  K.binary(kind, A.data, A.shape, B.data, B.shape, out.data, shape);
  return out;
}

export function add(a: TensorLikeInput, b: TensorLikeInput): Tensor {
  const [A, B] = operands("add", a, b);
  return record("add", [A, B], forward("add", A, B), (g) => [g, g]);
}

export function sub(a: TensorLikeInput, b: TensorLikeInput): Tensor {
  const [A, B] = operands("sub", a, b);
  return record("sub", [A, B], forward("sub", A, B), (g) => [g, B.requiresGrad ? g.neg() : null]);
}

export function mul(a: TensorLikeInput, b: TensorLikeInput): Tensor {
  const [A, B] = operands("mul", a, b);
  return record("mul", [A, B], forward("mul", A, B), (g) => [
    A.requiresGrad ? mul(g, B) : null,
    B.requiresGrad ? mul(g, A) : null,
  ]);
}

export function div(a: TensorLikeInput, b: TensorLikeInput): Tensor {
  const [A, B] = operands("div", a, b);
  return record("div", [A, B], forward("div", A, B), (g) => [
    A.requiresGrad ? div(g, B) : null,
    // NOTE: d(a/b)/db = -a/b², written as -(g·a/b)/b to stay finite where b² would underflow
    B.requiresGrad ? div(mul(g, A), B).div(B).neg() : null,
  ]);
}

/** Elementwise power. d/da = b·a^(b-1); d/db = a^b·log(a) (needs a > 0). */
export function pow(a: TensorLikeInput, b: TensorLikeInput): Tensor {
  const [A, B] = operands("pow", a, b);
  const out = forward("pow", A, B);
  return record("pow", [A, B], out, (g) => [
    A.requiresGrad ? mul(g, mul(B, pow(A, sub(B, 1)))) : null,
    B.requiresGrad ? mul(g, mul(pow(A, B), A.log())) : null,
  ]);
}

/** Elementwise maximum; at ties the gradient is split evenly (as in PyTorch). */
export function maximum(a: TensorLikeInput, b: TensorLikeInput): Tensor {
  return extremum("maximum", "gt", a, b);
}

export function minimum(a: TensorLikeInput, b: TensorLikeInput): Tensor {
  return extremum("minimum", "lt", a, b);
}

function extremum(kind: "maximum" | "minimum", wins: "gt" | "lt", a: TensorLikeInput, b: TensorLikeInput): Tensor {
  const [A, B] = operands(kind, a, b);
  return record(kind, [A, B], forward(kind, A, B), (g) => {
    const [wa, wb] = noGrad(() => {
      const half = forward("eq", A, B).mul(0.5);
      return [forward(wins, A, B).add(half), forward(wins, B, A).add(half)];
    });
    return [A.requiresGrad ? mul(g, wa) : null, B.requiresGrad ? mul(g, wb) : null];
  });
}

/** 0/1 comparison results; not differentiable, never recorded. */
export function compare(kind: "eq" | "ne" | "gt" | "ge" | "lt" | "le", a: TensorLikeInput, b: TensorLikeInput): Tensor {
  const [A, B] = noGrad(() => operands(kind, a, b));
  return forward(kind, A, B);
}
