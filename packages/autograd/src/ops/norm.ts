/**
 * Normalisation: batch norm (per channel, over the batch and the spatial axes) and layer norm (over the
 * trailing axes). The forward passes and a plain backward are fused kernels; a recorded backward
 * (createGraph) is written with ops from the saved input, so both are differentiable to any order (the
 * switch logSoftmax makes too).
 */
import { ShapeError, ValueError, fmtShape } from "../errors.ts";
import * as K from "../kernels/index.ts";
import { kindInfo, type OpInfo } from "../opinfo.ts";
import { sizeOf } from "../shape.ts";
import { declareOp, isGradEnabled, record } from "../tape.ts";
import { makeTensor, type Tensor } from "../tensor-class.ts";
import { add, mul, pow, sub } from "./binary.ts";
import { mean, sum } from "./reduce.ts";
import { reshape } from "./shape.ts";
import { promoteAll } from "./nchw.ts";
import { unfilled } from "./util.ts";

const BATCH_NORM = declareOp("batchNorm", { output: false });
const LAYER_NORM = declareOp("layerNorm", { output: false });

export interface BatchNormOptions {
  /** Per-channel scale γ [C] (default none: 1). */
  weight?: Tensor | null;
  /** Per-channel shift β [C] (default none: 0). */
  bias?: Tensor | null;
  /** Normalise with the batch's statistics and update the running ones (default false: use the running ones). */
  training?: boolean;
  /** running = (1 − momentum)·running + momentum·batch statistic (default 0.1). */
  momentum?: number;
  /** Added to the variance (default 1e-5). */
  eps?: number;
}

export interface LayerNormOptions {
  /** Elementwise scale over the normalised axes (default none: 1). */
  weight?: Tensor | null;
  /** Elementwise shift over the normalised axes (default none: 0). */
  bias?: Tensor | null;
  /** Added to the variance (default 1e-5). */
  eps?: number;
}

function checkEps(op: string, eps: number): void {
  if (typeof eps !== "number" || !(eps >= 0) || !Number.isFinite(eps)) throw new ValueError(`${op}: eps must be a finite number ≥ 0, got ${eps}`);
}

function checkChannelVector(op: string, name: string, t: Tensor | null | undefined, channels: number, xShape: readonly number[]): void {
  if (t && (t.ndim !== 1 || t.shape[0] !== channels)) {
    throw new ShapeError(`${op}: ${name} ${fmtShape(t.shape)} does not match the ${channels} channels of input ${fmtShape(xShape)}: expected [${channels}]`);
  }
}

/** A constant [1, C, 1, ...] tensor of `dtype` from per-channel values, to broadcast against x. */
function perChannel(values: ArrayLike<number>, x: Tensor): Tensor {
  const data = x.dtype === "float64" ? Float64Array.from(values) : Float32Array.from(values);
  return makeTensor(data, x.shape.map((d, i) => (i === 1 ? d : 1)));
}

/**
 * Batch normalisation (torch.nn.functional.batch_norm) of x [N, C, ...]: per channel,
 * (x − mean)/√(var + eps)·weight + bias. In training, mean and (biased) variance are the batch's, and
 * runningMean / runningVar (when given) are updated in place with PyTorch's rule, the running variance from
 * the unbiased batch variance; otherwise the running statistics normalise.
 * @example batchNorm(x, rm, rv, { weight, bias, training: true }) // rm, rv updated in place
 */
export function batchNorm(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, options: BatchNormOptions = {}): Tensor {
  const { training = false, momentum = 0.1, eps = 1e-5 } = options;
  const op = "batchNorm";
  if (x.ndim < 2) throw new ShapeError(`${op}: expected an input [N, C, ...] of rank 2 or more, got ${fmtShape(x.shape)}`);
  const [batch, channels] = x.shape;
  const inner = sizeOf(x.shape.slice(2));
  checkChannelVector(op, "weight", options.weight, channels, x.shape);
  checkChannelVector(op, "bias", options.bias, channels, x.shape);
  checkChannelVector(op, "runningMean", runningMean, channels, x.shape);
  checkChannelVector(op, "runningVar", runningVar, channels, x.shape);
  if ((runningMean === null) !== (runningVar === null)) throw new ValueError(`${op}: give both runningMean and runningVar or neither`);
  checkEps(op, eps);
  if (typeof momentum !== "number" || !Number.isFinite(momentum)) throw new ValueError(`${op}: momentum must be a finite number, got ${momentum}`);
  const count = batch * inner;
  if (training && count <= 1) {
    throw new ValueError(`${op}: expected more than 1 value per channel when training, got input of shape ${fmtShape(x.shape)}`);
  }
  if (!training && (!runningMean || !runningVar)) throw new ValueError(`${op}: runningMean and runningVar are needed when not training`);
  const [input, weight, bias] = promoteAll([x, options.weight ?? null, options.bias ?? null]) as [Tensor, Tensor | null, Tensor | null];

  const out = unfilled(input.dtype, input.shape);
  const saveMean = new Float64Array(channels), saveInvstd = new Float64Array(channels);
  if (training) {
    const batchVar = runningVar ? new Float64Array(channels) : null;
    K.batchNormForwardTraining(input.data, batch, channels, inner, weight?.data ?? null, bias?.data ?? null, eps, out.data, saveMean, saveInvstd, batchVar);
    if (runningMean && runningVar) {
      K.batchNormUpdateRunning(runningMean.data, runningVar.data, saveMean, batchVar!, channels, count, momentum);
      runningMean.markModified();
      runningVar.markModified();
    }
  } else {
    for (let c = 0; c < channels; c++) {
      saveMean[c] = runningMean!.data[c];
      saveInvstd[c] = 1 / Math.sqrt(runningVar!.data[c] + eps);
    }
    K.batchNormForwardEval(input.data, batch, channels, inner, runningMean!.data, runningVar!.data, weight?.data ?? null, bias?.data ?? null, eps, out.data);
  }

  const inputs = [input];
  if (weight) inputs.push(weight);
  if (bias) inputs.push(bias);
  const axes = input.shape.map((_, i) => i).filter((i) => i !== 1);
  return record(BATCH_NORM, inputs, out, (g) => {
    const needX = input.requiresGrad, needW = weight !== null && weight.requiresGrad, needB = bias !== null && bias.requiresGrad;
    let gx: Tensor | null = null, gw: Tensor | null = null, gb: Tensor | null = null;
    if (!isGradEnabled() && g.dtype === input.dtype) {
      gx = needX ? unfilled(input.dtype, input.shape) : null;
      gw = needW ? unfilled(input.dtype, [channels]) : null;
      gb = needB ? unfilled(input.dtype, [channels]) : null;
      K.batchNormBackward(g.data, input.data, batch, channels, inner, weight?.data ?? null, saveMean, saveInvstd, training,
        gx?.data ?? null, gw?.data ?? null, gb?.data ?? null);
    } else {
      // NOTE: in training the statistics are functions of x, so they are recomputed with ops; in
      // evaluation they are constants
      let xhat: Tensor, invstd: Tensor;
      if (training) {
        const xc = sub(input, mean(input, axes, true));
        invstd = pow(add(mean(mul(xc, xc), axes, true), eps), -0.5);
        xhat = mul(xc, invstd);
      } else {
        invstd = perChannel(saveInvstd, input);
        xhat = mul(sub(input, perChannel(saveMean, input)), invstd);
      }
      if (needX) {
        const gxhat = weight ? mul(g, reshape(weight, invstd.shape)) : g;
        gx = training
          ? mul(invstd, sub(sub(gxhat, mean(gxhat, axes, true)), mul(xhat, mean(mul(gxhat, xhat), axes, true))))
          : mul(gxhat, invstd);
      }
      if (needW) gw = sum(mul(g, xhat), axes);
      if (needB) gb = sum(g, axes);
    }
    const grads: (Tensor | null)[] = [gx];
    if (weight) grads.push(gw);
    if (bias) grads.push(gb);
    return grads;
  });
}

/**
 * Layer normalisation (torch.nn.functional.layer_norm) over the trailing axes `normalizedShape` of x: each
 * slice becomes (x − mean)/√(var + eps) (biased variance), times weight plus bias (both of shape normalizedShape).
 * @example layerNorm(x, [512], { weight, bias }) // x [..., 512]
 */
export function layerNorm(x: Tensor, normalizedShape: number | readonly number[], options: LayerNormOptions = {}): Tensor {
  const op = "layerNorm";
  const { eps = 1e-5 } = options;
  const shape = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
  const k = shape.length;
  if (k === 0 || k > x.ndim || shape.some((d, i) => d !== x.shape[x.ndim - k + i])) {
    throw new ShapeError(`${op}: normalizedShape ${fmtShape(shape)} must be the last dimensions of input ${fmtShape(x.shape)} (and not empty)`);
  }
  for (const [name, t] of [["weight", options.weight], ["bias", options.bias]] as const) {
    if (t && (t.ndim !== k || t.shape.some((d, i) => d !== shape[i]))) {
      throw new ShapeError(`${op}: ${name} ${fmtShape(t.shape)} does not match normalizedShape ${fmtShape(shape)}`);
    }
  }
  checkEps(op, eps);
  const [input, weight, bias] = promoteAll([x, options.weight ?? null, options.bias ?? null]) as [Tensor, Tensor | null, Tensor | null];
  const cols = sizeOf(shape), rows = cols === 0 ? 0 : input.size / cols;
  const out = unfilled(input.dtype, input.shape);
  const saveMean = new Float64Array(rows), saveInvstd = new Float64Array(rows);
  K.layerNormForward(input.data, rows, cols, weight?.data ?? null, bias?.data ?? null, eps, out.data, saveMean, saveInvstd);

  const inputs = [input];
  if (weight) inputs.push(weight);
  if (bias) inputs.push(bias);
  const axes = shape.map((_, i) => input.ndim - k + i);
  return record(LAYER_NORM, inputs, out, (g) => {
    const needX = input.requiresGrad, needW = weight !== null && weight.requiresGrad, needB = bias !== null && bias.requiresGrad;
    let gx: Tensor | null = null, gw: Tensor | null = null, gb: Tensor | null = null;
    if (!isGradEnabled() && g.dtype === input.dtype) {
      gx = needX ? unfilled(input.dtype, input.shape) : null;
      gw = needW ? unfilled(input.dtype, shape) : null;
      gb = needB ? unfilled(input.dtype, shape) : null;
      K.layerNormBackward(g.data, input.data, rows, cols, weight?.data ?? null, saveMean, saveInvstd, gx?.data ?? null, gw?.data ?? null, gb?.data ?? null);
    } else {
      const xc = sub(input, mean(input, axes, true));
      const invstd = pow(add(mean(mul(xc, xc), axes, true), eps), -0.5);
      const xhat = mul(xc, invstd);
      if (needX) {
        const gxhat = weight ? mul(g, weight) : g;
        gx = mul(invstd, sub(sub(gxhat, mean(gxhat, axes, true)), mul(xhat, mean(mul(gxhat, xhat), axes, true))));
      }
      // the engine sums these over the leading axes, to the shape of weight and bias
      if (needW) gw = mul(g, xhat);
      if (needB) gb = g;
    }
    const grads: (Tensor | null)[] = [gx];
    if (weight) grads.push(gw);
    if (bias) grads.push(gb);
    return grads;
  });
}

/** Fresh running statistics for a batch-norm sample (each call of the op-table entry starts from the same ones). */
function runningStats(a: { runningMean?: number[]; runningVar?: number[] }): [Tensor, Tensor] {
  return [makeTensor(Float64Array.from(a.runningMean!), [a.runningMean!.length]), makeTensor(Float64Array.from(a.runningVar!), [a.runningVar!.length])];
}

export const normOpInfo: readonly OpInfo[] = [
  kindInfo("batchNorm", "batchNorm", 3, ([x, w, b], a) => {
    const [rm, rv] = runningStats(a);
    return batchNorm(x, rm, rv, { weight: a.affine === false ? null : w, bias: a.affine === false ? null : b, training: a.training, momentum: a.momentum, eps: a.eps });
  }),
  kindInfo("layerNorm", "layerNorm", 3, ([x, w, b], a) =>
    layerNorm(x, a.shape!, { weight: a.affine === false ? null : w, bias: a.affine === false ? null : b, eps: a.eps })),
];
