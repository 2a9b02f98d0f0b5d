/**
 * Convolutional-network layers: Conv2d, pooling, BatchNorm1d/2d and LayerNorm, with PyTorch's defaults,
 * initialisation and state-dict names (weight, bias, running_mean, running_var, num_batches_tracked), so a
 * checkpoint loads into the same PyTorch model and back.
 */
import {
  Tensor, ShapeError, ValueError, adaptiveAvgPool2d, avgPool2d, batchNorm, conv2d, fmtShape, layerNorm, maxPool2d, ones, zeros,
  type AdaptiveSize, type Conv2dPadding, type DType, type Pair,
} from "@tapegrad/autograd";
import { resetWeightAndBias } from "./default-init.ts";
import { Module, Parameter } from "./module.ts";

function positiveInt(layer: string, name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new ValueError(`${layer}: ${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function pairOf(layer: string, name: string, v: Pair, min: number): [number, number] {
  const p: [number, number] = typeof v === "number" ? [v, v] : [v[0], v[1]];
  if ((typeof v !== "number" && (!Array.isArray(v) || v.length !== 2)) || !p.every((x) => Number.isInteger(x) && x >= min)) {
    throw new ValueError(`${layer}: ${name} must be an integer ≥ ${min} or a pair of them, got ${JSON.stringify(v)}`);
  }
  return p;
}

const showPair = (p: readonly [number, number]): string => `[${p[0]}, ${p[1]}]`;

export interface Conv2dLayerOptions {
  /** Default 1. */
  stride?: Pair;
  /** A number, a pair, "same" (stride 1) or "valid". Default 0. */
  padding?: Conv2dPadding;
  /** Default 1. */
  dilation?: Pair;
  /** Default 1; inChannels and outChannels must be multiples of it. */
  groups?: number;
  /** Add a learnable bias (default true). */
  bias?: boolean;
  /** Parameter dtype (default float32). */
  dtype?: DType;
}

/**
 * 2-D convolution over [N, inChannels, H, W]: weight [outChannels, inChannels/groups, kH, kW], bias
 * [outChannels], both initialised as PyTorch does (kaiming_uniform with a = √5: U(±1/√fanIn), fanIn =
 * inChannels/groups·kH·kW).
 * @example new Conv2d(1, 32, 3, { padding: 1 }).forward(x) // [N, 1, 28, 28] -> [N, 32, 28, 28]
 */
export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number] | "same" | "valid";
  readonly dilation: [number, number];
  readonly groups: number;
  weight: Parameter;
  bias: Parameter | null;

  constructor(inChannels: number, outChannels: number, kernelSize: Pair, options: Conv2dLayerOptions = {}) {
    super();
    const layer = "Conv2d";
    this.inChannels = positiveInt(layer, "inChannels", inChannels);
    this.outChannels = positiveInt(layer, "outChannels", outChannels);
    this.kernelSize = pairOf(layer, "kernelSize", kernelSize, 1);
    this.stride = pairOf(layer, "stride", options.stride ?? 1, 1);
    this.dilation = pairOf(layer, "dilation", options.dilation ?? 1, 1);
    this.groups = positiveInt(layer, "groups", options.groups ?? 1);
    const padding = options.padding ?? 0;
    this.padding = padding === "same" || padding === "valid" ? padding : pairOf(layer, "padding", padding, 0);
    if (inChannels % this.groups !== 0) throw new ValueError(`${layer}: inChannels ${inChannels} must be divisible by groups ${this.groups}`);
    if (outChannels % this.groups !== 0) throw new ValueError(`${layer}: outChannels ${outChannels} must be divisible by groups ${this.groups}`);
    if (padding === "same" && (this.stride[0] !== 1 || this.stride[1] !== 1)) {
      throw new ValueError(`${layer}: padding "same" is not supported for strided convolutions (stride ${showPair(this.stride)})`);
    }
    const dtype = options.dtype ?? "float32";
    this.weight = new Parameter(zeros([outChannels, inChannels / this.groups, ...this.kernelSize], { dtype }));
    this.bias = (options.bias ?? true) ? new Parameter(zeros([outChannels], { dtype })) : null;
    this.resetParameters();
  }

  /** Re-draws weight and bias from PyTorch's default distribution. */
  resetParameters(): void {
    resetWeightAndBias(this.weight, this.bias);
  }

  override forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }

  override extraRepr(): string {
    const parts = [`${this.inChannels}, ${this.outChannels}, kernelSize=${showPair(this.kernelSize)}, stride=${showPair(this.stride)}`];
    if (typeof this.padding === "string" || this.padding[0] !== 0 || this.padding[1] !== 0) {
      parts.push(`padding=${typeof this.padding === "string" ? this.padding : showPair(this.padding)}`);
    }
    if (this.dilation[0] !== 1 || this.dilation[1] !== 1) parts.push(`dilation=${showPair(this.dilation)}`);
    if (this.groups !== 1) parts.push(`groups=${this.groups}`);
    if (!this.bias) parts.push("bias=false");
    return parts.join(", ");
  }
}

export interface MaxPool2dLayerOptions {
  /** Default: kernelSize. */
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  ceilMode?: boolean;
}

/** Max over windows of [N, C, H, W]. @example new MaxPool2d(2) // halves H and W */
export class MaxPool2d extends Module {
  constructor(readonly kernelSize: Pair, readonly options: MaxPool2dLayerOptions = {}) {
    super();
    pairOf("MaxPool2d", "kernelSize", kernelSize, 1);
  }
  override forward(x: Tensor): Tensor {
    return maxPool2d(x, this.kernelSize, this.options);
  }
  override extraRepr(): string {
    const { stride, padding = 0, dilation = 1, ceilMode = false } = this.options;
    return `kernelSize=${JSON.stringify(this.kernelSize)}, stride=${JSON.stringify(stride ?? this.kernelSize)}, padding=${JSON.stringify(padding)}, dilation=${JSON.stringify(dilation)}, ceilMode=${ceilMode}`;
  }
}

export interface AvgPool2dLayerOptions {
  /** Default: kernelSize. */
  stride?: Pair;
  padding?: Pair;
  ceilMode?: boolean;
  /** Default true. */
  countIncludePad?: boolean;
}

/** Mean over windows of [N, C, H, W]. @example new AvgPool2d(2) // LeNet's pooling */
export class AvgPool2d extends Module {
  constructor(readonly kernelSize: Pair, readonly options: AvgPool2dLayerOptions = {}) {
    super();
    pairOf("AvgPool2d", "kernelSize", kernelSize, 1);
  }
  override forward(x: Tensor): Tensor {
    return avgPool2d(x, this.kernelSize, this.options);
  }
  override extraRepr(): string {
    const { stride, padding = 0 } = this.options;
    return `kernelSize=${JSON.stringify(this.kernelSize)}, stride=${JSON.stringify(stride ?? this.kernelSize)}, padding=${JSON.stringify(padding)}`;
  }
}

/** Average pooling to a fixed output size. @example new AdaptiveAvgPool2d(1) // global average pooling */
export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: AdaptiveSize) {
    super();
  }
  override forward(x: Tensor): Tensor {
    return adaptiveAvgPool2d(x, this.outputSize);
  }
  override extraRepr(): string {
    return `outputSize=${JSON.stringify(this.outputSize)}`;
  }
}

export interface BatchNormLayerOptions {
  /** Added to the variance (default 1e-5). */
  eps?: number;
  /** Weight of the batch statistics in the running ones (default 0.1); null: a cumulative average. */
  momentum?: number | null;
  /** Learnable weight (1) and bias (0) per channel (default true). */
  affine?: boolean;
  /** Keep running statistics for evaluation (default true); without them every mode normalises by the batch. */
  trackRunningStats?: boolean;
  /** Parameter and statistics dtype (default float32). */
  dtype?: DType;
}

/**
 * Batch normalisation (PyTorch's _BatchNorm): in training, normalises each channel by the batch's mean and
 * variance and updates running_mean / running_var (momentum 0.1, the unbiased variance) and
 * num_batches_tracked; in evaluation (`eval()`), normalises by the running statistics.
 */
abstract class BatchNormBase extends Module {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly trackRunningStats: boolean;
  weight: Parameter | null;
  bias: Parameter | null;

  protected abstract checkInput(x: Tensor): void;

  constructor(numFeatures: number, options: BatchNormLayerOptions = {}) {
    super();
    const name = this.constructor.name;
    this.numFeatures = positiveInt(name, "numFeatures", numFeatures);
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum === undefined ? 0.1 : options.momentum;
    if (!(this.eps >= 0)) throw new ValueError(`${name}: eps must be ≥ 0, got ${this.eps}`);
    if (this.momentum !== null && !(this.momentum >= 0 && this.momentum <= 1)) throw new ValueError(`${name}: momentum must be in [0, 1] or null, got ${this.momentum}`);
    this.trackRunningStats = options.trackRunningStats ?? true;
    const dtype = options.dtype ?? "float32";
    const affine = options.affine ?? true;
    this.weight = affine ? new Parameter(ones([numFeatures], { dtype })) : null;
    this.bias = affine ? new Parameter(zeros([numFeatures], { dtype })) : null;
    if (this.trackRunningStats) {
      this.registerBuffer("running_mean", zeros([numFeatures], { dtype }));
      this.registerBuffer("running_var", ones([numFeatures], { dtype }));
      this.registerBuffer("num_batches_tracked", zeros([], { dtype: "float64" }), { storageDtype: "int64" });
    }
  }

  /** The running mean [numFeatures] (null without trackRunningStats). */
  get runningMean(): Tensor | null {
    return this.getBuffer("running_mean") ?? null;
  }

  get runningVar(): Tensor | null {
    return this.getBuffer("running_var") ?? null;
  }

  /** Training batches seen (PyTorch's num_batches_tracked). */
  get numBatchesTracked(): number {
    return this.getBuffer("num_batches_tracked")?.data[0] ?? 0;
  }

  /** Running statistics back to mean 0, variance 1, no batches. */
  resetRunningStats(): void {
    this.runningMean?.data.fill(0);
    this.runningVar?.data.fill(1);
    this.getBuffer("num_batches_tracked")?.data.fill(0);
    for (const t of [this.runningMean, this.runningVar, this.getBuffer("num_batches_tracked")]) t?.markModified();
  }

  override forward(x: Tensor): Tensor {
    this.checkInput(x);
    let momentum = this.momentum ?? 0;
    const tracked = this.getBuffer("num_batches_tracked");
    if (this.training && tracked) {
      tracked.data[0] += 1;
      tracked.markModified();
      if (this.momentum === null) momentum = 1 / tracked.data[0];
    }
    // training (or no running statistics): the batch's statistics, and the running ones updated when kept
    return batchNorm(x, this.runningMean, this.runningVar, {
      weight: this.weight, bias: this.bias, training: this.training || !this.trackRunningStats, momentum, eps: this.eps,
    });
  }

  override extraRepr(): string {
    return `${this.numFeatures}, eps=${this.eps}, momentum=${this.momentum}, affine=${this.weight !== null}, trackRunningStats=${this.trackRunningStats}`;
  }
}

/** Batch norm over [N, C] or [N, C, L] (per channel C). @example new BatchNorm1d(128) */
export class BatchNorm1d extends BatchNormBase {
  protected checkInput(x: Tensor): void {
    if (x.ndim !== 2 && x.ndim !== 3) throw new ShapeError(`BatchNorm1d: expected a 2-D [N, C] or 3-D [N, C, L] input, got ${fmtShape(x.shape)}`);
  }
}

/** Batch norm over [N, C, H, W] (per channel C). @example new BatchNorm2d(32) */
export class BatchNorm2d extends BatchNormBase {
  protected checkInput(x: Tensor): void {
    if (x.ndim !== 4) throw new ShapeError(`BatchNorm2d: expected a 4-D [N, C, H, W] input, got ${fmtShape(x.shape)}`);
  }
}

export interface LayerNormLayerOptions {
  /** Default 1e-5. */
  eps?: number;
  /** Learnable weight (1) and bias (0) of normalizedShape (default true). */
  elementwiseAffine?: boolean;
  /** With elementwiseAffine, whether to have the bias (default true). */
  bias?: boolean;
  dtype?: DType;
}

/** Layer normalisation over the trailing axes normalizedShape. @example new LayerNorm(512) */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  weight: Parameter | null;
  bias: Parameter | null;

  constructor(normalizedShape: number | readonly number[], options: LayerNormLayerOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
    this.normalizedShape.forEach((d) => positiveInt("LayerNorm", "normalizedShape", d));
    this.eps = options.eps ?? 1e-5;
    const dtype = options.dtype ?? "float32";
    const affine = options.elementwiseAffine ?? true;
    this.weight = affine ? new Parameter(ones(this.normalizedShape, { dtype })) : null;
    this.bias = affine && (options.bias ?? true) ? new Parameter(zeros(this.normalizedShape, { dtype })) : null;
  }

  override forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, { weight: this.weight, bias: this.bias, eps: this.eps });
  }

  override extraRepr(): string {
    return `${fmtShape(this.normalizedShape)}, eps=${this.eps}, elementwiseAffine=${this.weight !== null}`;
  }
}
