/**
 * 2-D convolution (NCHW). Three recorded ops form a closed set under differentiation: the convolution
 * F(x, w), its input gradient Ti(g, w) and its weight gradient Tw(x, g). All three are bilinear and
 * adjoint to each other, <F(x, w), g> = <x, Ti(g, w)> = <w, Tw(x, g)>, so each one's backward is made of
 * the other two (and itself), and conv2d is differentiable to any order.
 */
import type { FloatArray } from "../dtype.ts";
import { ShapeError, fmtShape } from "../errors.ts";
import * as K from "../kernels/index.ts";
import { allocateUnfilled, releaseBuffer } from "../memory.ts";
import { kindInfo, type OpInfo } from "../opinfo.ts";
import { declareOp, isGradEnabled, record } from "../tape.ts";
import type { Tensor } from "../tensor-class.ts";
import { sum } from "./reduce.ts";
import { promoteAll, unbatched } from "./nchw.ts";
import { unfilled } from "./util.ts";

const CONV2D = declareOp("conv2d", { output: false });
const CONV2D_INPUT_GRAD = declareOp("conv2dInputGrad", { output: false });
const CONV2D_WEIGHT_GRAD = declareOp("conv2dWeightGrad", { output: false });

export type Pair = K.Pair;
export type Conv2dPadding = K.Conv2dPadding;

export interface Conv2dOptions {
  /** Default 1. */
  stride?: Pair;
  /** A number, a pair [top/bottom, left/right], "valid" (0) or "same" (stride 1; output as large as the input). Default 0. */
  padding?: Conv2dPadding;
  /** Default 1. */
  dilation?: Pair;
  /** Input and output channels split into this many independent groups. Default 1. */
  groups?: number;
}

/** Runs `fn` with a scratch buffer of `size` elements of x's dtype from the buffer pool, given back after. */
function withWorkspace<T>(x: Tensor, size: number, fn: (ws: FloatArray) => T): T {
  const ws = allocateUnfilled(x.dtype, size);
  try {
    return fn(ws);
  } finally {
    releaseBuffer(ws);
  }
}

/** F(x, w) (+ b): the convolution itself. */
function convForward(x: Tensor, w: Tensor, b: Tensor | null, g: K.Conv2dGeometry): Tensor {
  const out = unfilled(x.dtype, [g.batch, g.outChannels, g.outH, g.outW]);
  withWorkspace(x, K.conv2dWorkspaceSize(g, "forward"), (ws) => K.conv2dForward(g, x.data, w.data, b ? b.data : null, out.data, ws));
  const inputs = b ? [x, w, b] : [x, w];
  return record(CONV2D, inputs, out, (gy) => {
    const needW = w.requiresGrad, needB = b !== null && b.requiresGrad;
    // NOTE: a plain backward gets the weight and bias gradients from one kernel call; a recorded one
    // (createGraph) builds them from ops so that they can be differentiated again
    if (needW && needB && !isGradEnabled() && gy.dtype === x.dtype) {
      const gw = unfilled(w.dtype, w.shape), gb = unfilled(b!.dtype, b!.shape);
      withWorkspace(x, K.conv2dWorkspaceSize(g, "backwardWeight"), (ws) => K.conv2dBackwardWeight(g, x.data, gy.data, gw.data, gb.data, ws));
      return [x.requiresGrad ? inputGrad(gy, w, g) : null, gw, gb];
    }
    const gx = x.requiresGrad ? inputGrad(gy, w, g) : null, gw = needW ? weightGrad(x, gy, g) : null;
    return b ? [gx, gw, needB ? sum(gy, [0, 2, 3]) : null] : [gx, gw];
  });
}

/** Ti(gy, w): the gradient of <F(x, w), gy> with respect to x. */
function inputGrad(gradOut: Tensor, weight: Tensor, g: K.Conv2dGeometry): Tensor {
  const [gy, w] = promoteAll([gradOut, weight]) as [Tensor, Tensor];
  const out = unfilled(gy.dtype, [g.batch, g.inChannels, g.height, g.width]);
  withWorkspace(gy, K.conv2dWorkspaceSize(g, "backwardInput"), (ws) => K.conv2dBackwardInput(g, gy.data, w.data, out.data, ws));
  // <Ti(gy, w), v> = <gy, F(v, w)> = <w, Tw(v, gy)>
  return record(CONV2D_INPUT_GRAD, [gy, w], out, (v) => [
    gy.requiresGrad ? convForward(v, w, null, g) : null,
    w.requiresGrad ? weightGrad(v, gy, g) : null,
  ]);
}

/** Tw(x, gy): the gradient of <F(x, w), gy> with respect to w. */
function weightGrad(input: Tensor, gradOut: Tensor, g: K.Conv2dGeometry): Tensor {
  const [x, gy] = promoteAll([input, gradOut]) as [Tensor, Tensor];
  const out = unfilled(x.dtype, [g.outChannels, g.inChannels / g.groups, g.kernelH, g.kernelW]);
  withWorkspace(x, K.conv2dWorkspaceSize(g, "backwardWeight"), (ws) => K.conv2dBackwardWeight(g, x.data, gy.data, out.data, null, ws));
  // <Tw(x, gy), u> = <F(x, u), gy> = <x, Ti(gy, u)>
  return record(CONV2D_WEIGHT_GRAD, [x, gy], out, (u) => [
    x.requiresGrad ? inputGrad(gy, u, g) : null,
    gy.requiresGrad ? convForward(x, u, null, g) : null,
  ]);
}

/**
 * 2-D convolution (torch.nn.functional.conv2d; strictly a cross-correlation): input [N, C, H, W] (or an
 * unbatched [C, H, W]), weight [outChannels, C/groups, kH, kW], bias [outChannels] or none. Output
 * [N, outChannels, outH, outW] with outH = ⌊(H + 2·padding − dilation·(kH − 1) − 1)/stride⌋ + 1.
 * Differentiable to any order in input, weight and bias.
 * @example conv2d(x, w, b, { padding: 1 }) // [128, 1, 28, 28] * [32, 1, 3, 3] -> [128, 32, 28, 28]
 */
export function conv2d(input: Tensor, weight: Tensor, bias?: Tensor | null, options: Conv2dOptions = {}): Tensor {
  if (input.ndim === 3) return unbatched(input, (x) => conv2d(x, weight, bias, options));
  if (input.ndim !== 4) {
    throw new ShapeError(`conv2d: expected a 3-D [C, H, W] or 4-D [N, C, H, W] input, got ${fmtShape(input.shape)} (weight ${fmtShape(weight.shape)})`);
  }
  const geometry = K.conv2dGeometry(input.shape, weight.shape, options);
  if (bias !== undefined && bias !== null && (bias.ndim !== 1 || bias.shape[0] !== weight.shape[0])) {
    throw new ShapeError(`conv2d: bias ${fmtShape(bias.shape)} does not match weight ${fmtShape(weight.shape)}: expected [${weight.shape[0]}]`);
  }
  const [x, w, b] = promoteAll([input, weight, bias ?? null]);
  return convForward(x!, w!, b, geometry);
}

export const convOpInfo: readonly OpInfo[] = [
  kindInfo("conv2d", "conv2d", 3, ([x, w, b], a) => conv2d(x, w, a.bias === false ? null : b, a.conv)),
];
