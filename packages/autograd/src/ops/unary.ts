/** Elementwise unary ops; each backward is written with ops so it can be recorded again. */
import * as K from "../kernels/index.ts";
import { kinkAtZero, positive, unaryInfo, type OpInfo } from "../opinfo.ts";
import { declareOp, isGradEnabled, noGrad, record, type Node } from "../tape.ts";
import { allocateUnfilled, donatedGradient } from "../memory.ts";
import { makeTensor, type Tensor } from "../tensor-class.ts";
import { mul, div, sub } from "./binary.ts";
import { unfilled } from "./util.ts";

const NEG = declareOp("neg", { inputs: false, output: false });
const EXP = declareOp("exp", { inputs: false });
const LOG = declareOp("log", { output: false });
const RELU = declareOp("relu", { output: false });
const TANH = declareOp("tanh", { inputs: false });
const SIGMOID = declareOp("sigmoid", { inputs: false });
const SOFTPLUS = declareOp("softplus", { output: false });
const SQRT = declareOp("sqrt", { inputs: false });
const ABS = declareOp("abs", { output: false });

function map(kind: K.UnaryKind, x: Tensor): Tensor {
  const out = unfilled(x.dtype, x.shape);
  K.unary(kind, x.data, out.data);
  return out;
}

export function neg(x: Tensor): Tensor {
  return record(NEG, [x], map("neg", x), (g) => [neg(g)]);
}

export function exp(x: Tensor): Tensor {
  const out = map("exp", x);
  return record(EXP, [x], out, (g) => [mul(g, out)]);
}

export function log(x: Tensor): Tensor {
  return record(LOG, [x], map("log", x), (g) => [div(g, x)]);
}

/** max(x, 0); the gradient at 0 is 0, as in PyTorch. */
export function relu(x: Tensor): Tensor {
  return record(RELU, [x], map("relu", x), reluBackward);
}

function reluBackward(g: Tensor, node: Node): Tensor[] {
  const x = node.inputs[0];
  // NOTE: recorded (createGraph) backward stays made of ops; otherwise one fused pass, no mask tensor
  if (isGradEnabled()) return [mul(g, noGrad(() => map("step", x)))];
  const out = makeTensor(donatedGradient(g) ?? allocateUnfilled(g.dtype, g.size), g.shape);
  K.reluBackward(g.data, x.data, out.data);
  return [out];
}

export function tanh(x: Tensor): Tensor {
  const out = map("tanh", x);
  return record(TANH, [x], out, (g) => [mul(g, sub(1, mul(out, out)))]);
}

export function sigmoid(x: Tensor): Tensor {
  return recordSigmoid(x, map("sigmoid", x));
}

/** Records `out`, which holds sigmoid(x)'s values, as sigmoid's output (sigmoidAvgPool2d's recorded backward). */
export function recordSigmoid(x: Tensor, out: Tensor): Tensor {
  return record(SIGMOID, [x], out, (g) => {
    // NOTE: recorded (createGraph) backward stays made of ops; otherwise one fused pass with the same bits
    if (isGradEnabled() || g.dtype !== out.dtype) return [mul(g, mul(out, sub(1, out)))];
    const gx = makeTensor(donatedGradient(g) ?? allocateUnfilled(g.dtype, g.size), g.shape);
    K.sigmoidBackward(g.data, out.data, gx.data);
    return [gx];
  });
}

/** log(1 + exp(x)), a smooth relu (torch.nn.functional.softplus); its gradient is sigmoid(x). */
export function softplus(x: Tensor): Tensor {
  return record(SOFTPLUS, [x], map("softplus", x), (g) => [mul(g, sigmoid(x))]);
}

export function sqrt(x: Tensor): Tensor {
  const out = map("sqrt", x);
  return record(SQRT, [x], out, (g) => [div(g, mul(out, 2))]);
}

/** |x|; the gradient at 0 is 0 (sign(0) = 0), as in PyTorch. */
export function abs(x: Tensor): Tensor {
  return record(ABS, [x], map("abs", x), (g) => [mul(g, noGrad(() => map("sign", x)))]);
}

export const unaryOpInfo: readonly OpInfo[] = [
  unaryInfo("neg", neg),
  unaryInfo("exp", exp),
  unaryInfo("log", log, positive),
  unaryInfo("relu", relu, kinkAtZero),
  unaryInfo("tanh", tanh),
  unaryInfo("sigmoid", sigmoid),
  unaryInfo("softplus", softplus, { min: -25, max: 25, avoid: [20], margin: 1e-3 }),
  unaryInfo("sqrt", sqrt, positive),
  unaryInfo("abs", abs, kinkAtZero),
];
