/** The softmax family: a fused, stable logSoftmax primitive; softmax is its exp. */
import * as K from "../kernels/index.ts";
import { kindInfo, type OpInfo } from "../opinfo.ts";
import { normalizeAxis, scalarAxes, sizeOf } from "../shape.ts";
import { declareOp, isGradEnabled, record } from "../tape.ts";
import type { Tensor } from "../tensor-class.ts";
import { mul, sub } from "./binary.ts";
import { sum } from "./reduce.ts";
import { exp } from "./unary.ts";
import { empty, unfilled } from "./util.ts";

const LOG_SOFTMAX = declareOp("logSoftmax", { inputs: false });

/**
 * log softmax along `axis`: x - max - log Σ exp(x - max), finite for logits of any size.
 * NOTE: backward is g - softmax·Σg, with softmax = exp(output): no division, no overflow.
 */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  if (x.ndim === 0) {
    scalarAxes("logSoftmax", [axis]); // as in PyTorch: 0 or -1
    return record(LOG_SOFTMAX, [x], empty(x.dtype, []), (g) => [mul(g, 0)]);
  }
  const a = normalizeAxis("logSoftmax", axis, x.ndim);
  const outer = sizeOf(x.shape.slice(0, a)), n = x.shape[a], inner = sizeOf(x.shape.slice(a + 1));
  const out = unfilled(x.dtype, x.shape);
  K.logSoftmaxAxis(x.data, outer, n, inner, out.data);
  return record(LOG_SOFTMAX, [x], out, (g) => {
    // NOTE: a recorded (createGraph) backward stays made of ops; otherwise one fused pass, same bits
    if (isGradEnabled() || g.dtype !== out.dtype) return [sub(g, mul(exp(out), sum(g, a, true)))];
    const gx = unfilled(out.dtype, out.shape);
    K.logSoftmaxBackwardAxis(g.data, out.data, outer, n, inner, gx.data);
    return [gx];
  });
}

/** softmax along `axis`; exp of the stable logSoftmax, so its gradient comes for free. */
export function softmax(x: Tensor, axis = -1): Tensor {
  return exp(logSoftmax(x, axis));
}

export const softmaxOpInfo: readonly OpInfo[] = [
  kindInfo("logSoftmax", "axis", 1, ([x], a) => logSoftmax(x, a.axis as number)),
  kindInfo("softmax", "axis", 1, ([x], a) => softmax(x, a.axis as number)),
];
