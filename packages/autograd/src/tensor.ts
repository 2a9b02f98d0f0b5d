import type { DType, FloatArray } from "./dtype.ts";
import { dtypeOf } from "./dtype.ts";
import { runBackward, type BackwardOptions } from "./engine.ts";
import { GraphError, ShapeError, ValueError, fmtShape } from "./errors.ts";
import { recycleGrad } from "./memory.ts";
import * as ops from "./ops/index.ts";
import { packedShape, sameShape, sizeOf } from "./shape.ts";
import { isGradEnabled, noGrad, type Node } from "./tape.ts";
import { isTensor, setTensorClass } from "./tensor-class.ts";

export type NestedArray = number | NestedArray[];
export type Axis = number | readonly number[] | undefined;
export type TensorLikeInput = Tensor | number;
export type IndexInput = Tensor | Int32Array | readonly number[] | NestedArray[] | ArrayLike<number>;

export interface TensorOptions {
  shape?: readonly number[];
  dtype?: DType;
  requiresGrad?: boolean;
}

/**
 * An n-dimensional array of float32 or float64 that records the ops applied to it on the tape.
 * Data is contiguous and row-major; ops return new tensors (reshape may share the data).
 */
export class Tensor {
  readonly shape: number[];
  readonly dtype: DType;
  data: FloatArray;
  /** The accumulated gradient of a leaf: filled by backward() until zeroGrad(). */
  grad: Tensor | null = null;
  /** Set by backward on a gradient it allocated for one leaf alone: zeroGrad({ recycle: true }) may pool its
   *  buffer (see memory.ts). */
  poolable = false;
  /** Counts in-place modifications (PyTorch's _version): a graph that saved this tensor refuses to backward
   *  once it has changed. The in-place methods, optimizers, initializers and loadStateDict bump it; code that
   *  writes into `.data` itself calls markModified(). */
  version = 0;
  requiresGrad: boolean;
  /** The node that created this tensor on the tape; null for leaves and untracked results. */
  gradFn: Node | null = null;

  constructor(data: FloatArray, shape: readonly number[], requiresGrad = false) {
    const packed = packedShape(shape);
    if (data.length !== sizeOf(packed)) {
      throw new ShapeError(`tensor: data of length ${data.length} does not fit shape ${fmtShape(shape)}`);
    }
    this.data = data;
    this.shape = packed;
    this.dtype = dtypeOf(data);
    this.requiresGrad = requiresGrad;
  }

  /** Number of elements. */
  get size(): number {
    return this.data.length;
  }

  get ndim(): number {
    return this.shape.length;
  }

  /** True for tensors created by the user rather than by a recorded op. */
  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  /** The single value of a one-element tensor (any shape of size 1, as in PyTorch). */
  item(): number {
    if (this.size !== 1) {
      throw new ShapeError(`item: only a tensor with one element can be read as a number, got shape ${fmtShape(this.shape)}`);
    }
    return this.data[0];
  }

  /** Nested arrays of numbers (a number for a 0-d tensor). */
  toArray(): NestedArray {
    const build = (dim: number, offset: number): NestedArray => {
      if (dim === this.shape.length) return this.data[offset];
      const stride = sizeOf(this.shape.slice(dim + 1));
      const out: NestedArray[] = [];
      for (let i = 0; i < this.shape[dim]; i++) out.push(build(dim + 1, offset + i * stride));
      return out;
    };
    return build(0, 0);
  }

  toString(): string {
    return `Tensor(${JSON.stringify(this.toArray())}, shape=${fmtShape(this.shape)}, dtype=${this.dtype}${this.requiresGrad ? ", requiresGrad" : ""})`;
  }

  // ------------------------------------------------------------ autograd

  /**
   * Reverse mode from this tensor: accumulates d(this)/d(leaf) into every leaf's `.grad`.
   * A tensor of more than one element needs `gradient` (the vector in the vector-Jacobian product), a
   * Tensor or nested arrays of its shape. Options may come alone or after the gradient, as PyTorch's
   * keyword arguments: `backward({ retainGraph: true })`, `backward(g, { createGraph: true })`.
   * @example loss.backward(); w.grad
   */
  backward(gradient?: Tensor | NestedArray | BackwardOptions | null, options: BackwardOptions = {}): void {
    if (gradient !== null && gradient !== undefined && !isTensor(gradient) && typeof gradient === "object" && !Array.isArray(gradient)) {
      options = gradient;
      gradient = undefined;
    }
    if (!this.requiresGrad) {
      throw new GraphError(`backward: tensor of shape ${fmtShape(this.shape)} does not require grad and has no grad_fn`);
    }
    let g: Tensor;
    if (gradient === undefined || gradient === null) {
      if (this.size !== 1) {
        throw new GraphError(
          `backward: grad can be implicitly created only for a scalar output, got shape ${fmtShape(this.shape)}; pass a gradient tensor of that shape`,
        );
      }
      g = ops.onesLike(this);
    } else {
      const given = isTensor(gradient) ? gradient : ops.tensor(gradient as NestedArray, { dtype: this.dtype });
      if (!sameShape(given.shape, this.shape)) {
        throw new ShapeError(`backward: gradient of shape ${fmtShape(given.shape)} does not match output shape ${fmtShape(this.shape)}`);
      }
      g = given.dtype === this.dtype ? given : ops.cast(given, this.dtype);
    }
    runBackward([this], [g], options);
  }

  /**
   * Clears the accumulated gradient (sets it to null, as PyTorch's set_to_none). With `recycle`, a gradient
   * that backward allocated goes back to the buffer pool for the next backward: the caller promises that
   * nothing uses the old gradient again (optimizers do this between steps).
   */
  zeroGrad(options: { recycle?: boolean } = {}): void {
    if (options.recycle) recycleGrad(this);
    else this.grad = null;
  }

  /**
   * Tells tapegrad that this tensor's data was changed in place (by code writing into `.data`): a graph that
   * saved it for backward will refuse to run with the stale values. Returns this.
   * @example w.data[0] = 0; w.markModified();
   */
  markModified(): this {
    this.version++;
    return this;
  }

  /** Copies `src` (broadcast to this shape) into this tensor, in place (torch's copy_). */
  copy_(src: Tensor | number): this {
    this.checkInPlace("copy_");
    const s = isTensor(src) ? src : ops.tensor(src, { dtype: this.dtype });
    const full = s.shape.length === this.shape.length && sameShape(s.shape, this.shape) ? s : noGrad(() => ops.broadcastTo(s, this.shape));
    this.data.set(full.data);
    return this.markModified();
  }

  /** Fills this tensor with `value`, in place. */
  fill_(value: number): this {
    this.checkInPlace("fill_");
    this.data.fill(value);
    return this.markModified();
  }

  /** Fills this tensor with zeros, in place. */
  zero_(): this {
    return this.fill_(0);
  }

  /** In-place ops are not recorded, so they may only change a tensor the tape does not differentiate. */
  private checkInPlace(op: string): void {
    if (this.requiresGrad && isGradEnabled()) {
      throw new GraphError(
        `${op}: a tensor that requires grad (${this.isLeaf ? "a leaf" : "the output of a recorded op"}, shape ${fmtShape(this.shape)}) cannot be modified in place while grad mode is on; ` +
          "wrap the update in noGrad(() => ...) (as optimizers do) or modify a detach()ed copy",
      );
    }
  }

  /** The same data cut off from the tape (shares memory, like torch's detach). */
  detach(): Tensor {
    return new Tensor(this.data, this.shape, false);
  }

  /** Sets requiresGrad on a leaf, in place; returns this. */
  requiresGrad_(flag = true): this {
    if (!this.isLeaf && !flag) throw new GraphError("requiresGrad_: cannot turn off requiresGrad on a non-leaf tensor; use detach()");
    this.requiresGrad = flag;
    return this;
  }

  /** A copy of the data, recorded on the tape (gradient flows through). */
  clone(): Tensor {
    return ops.clone(this);
  }

  /** A copy in the WebAssembly kernels' pinned memory, which they read in place (see the pinMemory op);
   *  this tensor itself where pinning does not apply. */
  pinMemory(): Tensor {
    return ops.pinMemory(this);
  }

  /** Whether the storage is pinned memory (torch's is_pinned). */
  isPinned(): boolean {
    return ops.isPinned(this);
  }

  /** Converts to another dtype (recorded: the gradient is cast back). */
  to(dtype: DType): Tensor {
    return dtype === this.dtype ? this : ops.cast(this, dtype);
  }

  // ------------------------------------------------------------ arithmetic (NumPy broadcasting)

  add(other: TensorLikeInput): Tensor { return ops.add(this, other); }
  sub(other: TensorLikeInput): Tensor { return ops.sub(this, other); }
  mul(other: TensorLikeInput): Tensor { return ops.mul(this, other); }
  div(other: TensorLikeInput): Tensor { return ops.div(this, other); }
  /** Elementwise power; the exponent may be a tensor (then the base should be positive). */
  pow(exponent: TensorLikeInput): Tensor { return ops.pow(this, exponent); }
  maximum(other: TensorLikeInput): Tensor { return ops.maximum(this, other); }
  minimum(other: TensorLikeInput): Tensor { return ops.minimum(this, other); }
  neg(): Tensor { return ops.neg(this); }
  exp(): Tensor { return ops.exp(this); }
  log(): Tensor { return ops.log(this); }
  relu(): Tensor { return ops.relu(this); }
  tanh(): Tensor { return ops.tanh(this); }
  sigmoid(): Tensor { return ops.sigmoid(this); }
  softplus(): Tensor { return ops.softplus(this); }
  sqrt(): Tensor { return ops.sqrt(this); }
  abs(): Tensor { return ops.abs(this); }
  square(): Tensor { return ops.mul(this, this); }

  // comparisons give 0/1 tensors of the promoted dtype and carry no gradient
  eq(other: TensorLikeInput): Tensor { return ops.compare("eq", this, other); }
  ne(other: TensorLikeInput): Tensor { return ops.compare("ne", this, other); }
  gt(other: TensorLikeInput): Tensor { return ops.compare("gt", this, other); }
  ge(other: TensorLikeInput): Tensor { return ops.compare("ge", this, other); }
  lt(other: TensorLikeInput): Tensor { return ops.compare("lt", this, other); }
  le(other: TensorLikeInput): Tensor { return ops.compare("le", this, other); }

  // ------------------------------------------------------------ linear algebra

  /** Matrix product with NumPy's rules: 1-D operands, batched operands with broadcast batch dims. */
  matmul(other: Tensor): Tensor { return ops.matmul(this, other); }

  // ------------------------------------------------------------ reductions

  /** Sum over `axis` (all axes when undefined); negative axes count from the end. */
  sum(axis?: Axis, keepdims = false): Tensor { return ops.sum(this, axis, keepdims); }
  mean(axis?: Axis, keepdims = false): Tensor { return ops.mean(this, axis, keepdims); }
  /** Maximum over `axis`; the gradient is shared evenly between tied maxima (like torch.amax). */
  max(axis?: Axis, keepdims = false): Tensor { return ops.max(this, axis, keepdims); }
  min(axis?: Axis, keepdims = false): Tensor { return ops.min(this, axis, keepdims); }
  /** Index of the first maximum along `axis` (flattened when undefined), as a float tensor of integers. */
  argmax(axis?: number, keepdims = false): Tensor { return ops.argmax(this, axis, keepdims); }
  /** log Σ exp along `axis`, stable for any input. */
  logsumexp(axis?: Axis, keepdims = false): Tensor { return ops.logsumexp(this, axis, keepdims); }

  // ------------------------------------------------------------ indexing and shape

  /** MXNet's nd.pick: one entry per row along `axis`; `index` has this shape without `axis`. */
  pick(index: IndexInput, axis = -1, keepdims = false): Tensor { return ops.pick(this, index, axis, keepdims); }
  /** New shape with the same number of elements; one dimension may be -1. */
  reshape(shape: readonly number[]): Tensor { return ops.reshape(this, shape); }
  /** Flattens dimensions startDim..endDim into one. */
  flatten(startDim = 0, endDim = -1): Tensor { return ops.flatten(this, startDim, endDim); }
  /** Swaps axes dim0 and dim1 (torch.transpose); without them the last two (a 1-D or 0-d tensor comes back
   *  unchanged), as PyTorch's .mT. */
  transpose(dim0?: number, dim1?: number): Tensor { return ops.transpose(this, dim0, dim1); }
  /** All axes reversed, as NumPy's and PyTorch's .T (for a matrix, its transpose). */
  get T(): Tensor { return ops.reverseAxes(this); }
  /** The last two axes swapped (PyTorch's .mT): a stack of matrices, each transposed. */
  get mT(): Tensor { return ops.transpose(this); }
  permute(axes: readonly number[]): Tensor { return ops.permute(this, axes); }
  broadcastTo(shape: readonly number[]): Tensor { return ops.broadcastTo(this, shape); }
  unsqueeze(axis: number): Tensor { return ops.unsqueeze(this, axis); }
  squeeze(axis?: number | readonly number[]): Tensor { return ops.squeeze(this, axis); }
  /** The slice start..start+length-1 along `dim` (torch.narrow); shares memory when it is one contiguous block. */
  narrow(dim: number, start: number, length: number): Tensor { return ops.narrow(this, dim, start, length); }

  // ------------------------------------------------------------ softmax family

  /** log softmax along `axis`, numerically stable for logits of any size. */
  logSoftmax(axis = -1): Tensor { return ops.logSoftmax(this, axis); }
  softmax(axis = -1): Tensor { return ops.softmax(this, axis); }
}

setTensorClass(Tensor);
