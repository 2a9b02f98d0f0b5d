/** Elementwise unary ops; each backward is written with ops so it can be recorded again. */
import { isGradEnabled, noGrad, record, type Node } from "../engine.ts";
import * as K from "../kernels/index.ts";
import type { Tensor } from "../tensor.ts";
import { mul, div, sub } from "./binary.ts";
import { unfilled } from "./util.ts";

function map(kind: K.UnaryKind, x: Tensor): Tensor {
  const out = unfilled(x.dtype, x.shape);
  K.unary(kind, x.data, out.data);
  return out;
}

export function neg(x: Tensor): Tensor {
  return record("neg", [x], map("neg", x), (g) => [neg(g)]);
}

export function exp(x: Tensor): Tensor {
  const out = map("exp", x);
  return record("exp", [x], out, (g) => [mul(g, out)]);
}

export function log(x: Tensor): Tensor {
  return record("log", [x], map("log", x), (g) => [div(g, x)]);
}

/** max(x, 0); the gradient at 0 is 0, as in PyTorch. */
export function relu(x: Tensor): Tensor {
  return record("relu", [x], map("relu", x), reluBackward);
}

function reluBackward(g: Tensor, node: Node): Tensor[] {
  const x = node.inputs[0];
  // NOTE: recorded (createGraph) backward stays made of ops; otherwise one fused pass, no mask tensor
  if (isGradEnabled()) return [mul(g, noGrad(() => map("step", x)))];
  const out = unfilled(g.dtype, g.shape);
  K.reluBackward(g.data, x.data, out.data);
  return [out];
}

export function tanh(x: Tensor): Tensor {
  const out = map("tanh", x);
  return record("tanh", [x], out, (g) => [mul(g, sub(1, mul(out, out)))]);
}

export function sigmoid(x: Tensor): Tensor {
  const out = map("sigmoid", x);
  return record("sigmoid", [x], out, (g) => [mul(g, mul(out, sub(1, out)))]);
}

export function sqrt(x: Tensor): Tensor {
  const out = map("sqrt", x);
  return record("sqrt", [x], out, (g) => [div(g, mul(out, 2))]);
}

/** |x|; the gradient at 0 is 0 (sign(0) = 0), as in PyTorch. */
export function abs(x: Tensor): Tensor {
  return record("abs", [x], map("abs", x), (g) => [mul(g, noGrad(() => map("sign", x)))]);
}
