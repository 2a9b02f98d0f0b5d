/** Layers: Linear, activations, Flatten, Unflatten, Dropout, and the containers Sequential and ModuleList. */
import { Tensor, ValueError, releaseWithGraph, sigmoidAvgPool2d, zeros, type DType, type Generator } from "@tapegrad/autograd";
import { AvgPool2d, Conv2d, MaxPool2d } from "./cnn-layers.ts";
import * as F from "./functional.ts";
import { resetWeightAndBias } from "./default-init.ts";
import { Module, Parameter } from "./module.ts";

export interface LinearOptions {
  /** Add a learnable bias (default true). */
  bias?: boolean;
  /** Parameter dtype (default float32). */
  dtype?: DType;
}

/**
 * y = x @ weightᵀ + bias with weight [out, in], initialised as PyTorch does: weight and bias both
 * U(-1/√in, 1/√in) (kaiming_uniform with a = √5).
 * @example new Linear(784, 128).forward(x) // [N, 784] -> [N, 128]
 */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Parameter;
  bias: Parameter | null;

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    for (const [name, v] of [["inFeatures", inFeatures], ["outFeatures", outFeatures]] as const) {
      if (!Number.isInteger(v) || v < 0) throw new ValueError(`Linear: ${name} must be a non-negative integer, got ${v}`);
    }
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const dtype = options.dtype ?? "float32";
    this.weight = new Parameter(zeros([outFeatures, inFeatures], { dtype }));
    this.bias = (options.bias ?? true) ? new Parameter(zeros([outFeatures], { dtype })) : null;
    this.resetParameters();
  }

  /** Re-draws weight and bias from PyTorch's default distribution. */
  resetParameters(): void {
    resetWeightAndBias(this.weight, this.bias);
  }

  override forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }

  override extraRepr(): string {
    return `inFeatures=${this.inFeatures}, outFeatures=${this.outFeatures}, bias=${this.bias !== null}`;
  }
}

export class ReLU extends Module {
  override forward(x: Tensor): Tensor {
    return x.relu();
  }
}

export class Tanh extends Module {
  override forward(x: Tensor): Tensor {
    return x.tanh();
  }
}

export class Sigmoid extends Module {
  override forward(x: Tensor): Tensor {
    return x.sigmoid();
  }
}

export class Identity extends Module {
  override forward(x: Tensor): Tensor {
    return x;
  }
}

/** softmax along `axis` as a layer. */
export class Softmax extends Module {
  constructor(readonly axis = -1) {
    super();
  }
  override forward(x: Tensor): Tensor {
    return F.softmax(x, this.axis);
  }
}

export class LogSoftmax extends Module {
  constructor(readonly axis = -1) {
    super();
  }
  override forward(x: Tensor): Tensor {
    return F.logSoftmax(x, this.axis);
  }
}

/** Flattens axes startDim..endDim (default: all but the batch axis), e.g. [N, 28, 28] -> [N, 784]. */
export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) {
    super();
  }
  override forward(x: Tensor): Tensor {
    return x.flatten(this.startDim, this.endDim);
  }
  override extraRepr(): string {
    return `startDim=${this.startDim}, endDim=${this.endDim}`;
  }
}

/**
 * Splits axis `dim` into `sizes` (torch.nn.Unflatten), e.g. flat images [N, 784] into [N, 1, 28, 28].
 * @example new Unflatten(1, [1, 28, 28])
 */
export class Unflatten extends Module {
  readonly sizes: number[];
  constructor(readonly dim: number, sizes: readonly number[]) {
    super();
    if (!Number.isInteger(dim)) throw new ValueError(`Unflatten: dim must be an integer, got ${dim}`);
    if (sizes.length === 0 || !sizes.every((d) => Number.isInteger(d) && (d > 0 || d === -1)) || sizes.filter((d) => d === -1).length > 1) {
      throw new ValueError(`Unflatten: sizes must be positive integers (one may be -1), got ${JSON.stringify(sizes)}`);
    }
    this.sizes = [...sizes];
  }
  override forward(x: Tensor): Tensor {
    const d = this.dim < 0 ? this.dim + x.ndim : this.dim;
    if (d < 0 || d >= x.ndim) throw new ValueError(`Unflatten: dim ${this.dim} is out of range for input of rank ${x.ndim}`);
    return x.reshape([...x.shape.slice(0, d), ...this.sizes, ...x.shape.slice(d + 1)]);
  }
  override extraRepr(): string {
    return `dim=${this.dim}, sizes=[${this.sizes.join(", ")}]`;
  }
}

/**
 * Zeroes activations with probability p in training mode (scaling the rest by 1/(1-p)); identity in eval.
 * The masks come from `generator` (default: the global generator, which manualSeed seeds).
 */
export class Dropout extends Module {
  readonly generator: Generator | undefined;
  constructor(readonly p = 0.5, options: { generator?: Generator } = {}) {
    super();
    if (!(p >= 0 && p <= 1)) throw new ValueError(`Dropout: probability must be in [0, 1], got ${p}`);
    this.generator = options.generator;
  }
  override forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training, { generator: this.generator });
  }
  override extraRepr(): string {
    return `p=${this.p}`;
  }
}

/**
 * Applies its modules in order; they are named "0", "1", ... in parameter names.
 * @example new Sequential(new Linear(784, 128), new ReLU(), new Linear(128, 10))
 */
export class Sequential extends Module {
  readonly #layers: Module[] = [];

  constructor(...modules: Module[]) {
    super();
    for (const m of modules) this.append(m);
  }

  /** Adds a module at the end. */
  append(module: Module): this {
    if (!(module instanceof Module)) throw new ValueError(`Sequential: expected a Module at position ${this.#layers.length}, got ${String(module)}`);
    this.registerModule(String(this.#layers.length), module);
    this.#layers.push(module);
    return this;
  }

  /** The i-th module (negative counts from the end). */
  at(i: number): Module {
    const m = this.#layers.at(i);
    if (!m) throw new ValueError(`Sequential: index ${i} is out of range for ${this.#layers.length} modules`);
    return m;
  }

  get length(): number {
    return this.#layers.length;
  }

  [Symbol.iterator](): Iterator<Module> {
    return this.#layers[Symbol.iterator]();
  }

  override forward(input: Tensor): Tensor {
    const layers = this.#layers;
    // outputs passed from one built-in layer to the next: nothing else sees them (releaseWithGraph)
    let hidden: Tensor[] | null = null;
    let x = input;
    for (let i = 0; i < layers.length; i++) {
      const m = layers[i];
      if (i + 1 < layers.length && reluCommutesWith(m, layers[i + 1])) {
        const pooled = layers[i + 1].forward(x);
        (hidden ??= []).push(pooled);
        x = m.forward(pooled);
        i++;
      } else if (i + 1 < layers.length && isSigmoidThenAvgPool(m, layers[i + 1])) {
        const pool = layers[i + 1] as AvgPool2d;
        x = sigmoidAvgPool2d(x, pool.kernelSize, pool.options);
        i++;
      } else x = m.forward(x);
      if (i + 1 < layers.length && keepsNoReferences(layers[i]) && keepsNoReferences(layers[i + 1])) (hidden ??= []).push(x);
    }
    // NOTE: a layer may return a view of its input (Flatten), or its input itself: what the caller holds, its
    // input and the result, keeps any hidden output whose memory it shares
    if (hidden) for (const h of hidden) releaseWithGraph(h, [input, x]);
    return x;
  }
}

/** Built-in layers, which keep no reference to their input or output (a subclass might: exact classes only). */
function keepsNoReferences(m: Module): boolean {
  const c = m.constructor;
  return c === Linear || c === ReLU || c === Tanh || c === Sigmoid || c === Flatten || c === MaxPool2d || c === AvgPool2d || c === Conv2d;
}

/**
 * Whether `relu` then `pool` may run as `pool` then `relu` (on a quarter of the elements, for 2 × 2 windows):
 * a ReLU followed by a MaxPool2d whose every window holds an input element (dilation 1), exactly these
 * classes (a subclass may change either forward).
 * NOTE: the two orders give the same values and gradients, bit for bit. relu is monotone, keeps NaN and maps
 * every x ≤ 0 to +0, so a window's maximum of relu(x) is relu of its maximum, and NaN stays the maximum.
 * The gradient: when the maximum is positive (or NaN) both orders pick the same first (last NaN) element and
 * pass it the gradient; otherwise relu stops it in both, and every element of x gets +0. A window of padding
 * alone (possible only with dilation) would be −∞ one way and 0 the other.
 */
function reluCommutesWith(relu: Module, pool: Module): boolean {
  if (relu.constructor !== ReLU || pool.constructor !== MaxPool2d) return false;
  const { dilation = 1 } = (pool as MaxPool2d).options;
  return typeof dilation === "number" ? dilation === 1 : dilation[0] === 1 && dilation[1] === 1;
}

/** A Sigmoid followed by an AvgPool2d, exactly these classes (a subclass may change either forward): they run
 *  as one op, sigmoidAvgPool2d, with the same values and gradients bit for bit. */
function isSigmoidThenAvgPool(sigmoid: Module, pool: Module): boolean {
  return sigmoid.constructor === Sigmoid && pool.constructor === AvgPool2d;
}

/** A list of modules, registered as "0", "1", ...; it has no forward of its own. */
export class ModuleList extends Module {
  readonly #items: Module[] = [];

  constructor(modules: Iterable<Module> = []) {
    super();
    for (const m of modules) this.append(m);
  }

  append(module: Module): this {
    this.registerModule(String(this.#items.length), module);
    this.#items.push(module);
    return this;
  }

  at(i: number): Module {
    const m = this.#items.at(i);
    if (!m) throw new ValueError(`ModuleList: index ${i} is out of range for ${this.#items.length} modules`);
    return m;
  }

  get length(): number {
    return this.#items.length;
  }

  [Symbol.iterator](): Iterator<Module> {
    return this.#items[Symbol.iterator]();
  }
}
