import type { DType, FloatArray } from "./dtype.ts";
import { allocate, allocateUnfilled, arrayTypes, dtypeOf, isDType, releaseBuffer } from "./dtype.ts";
import { GraphError, ShapeError, ValueError, fmtShape } from "./errors.ts";
import { checkShape, packedShape, sameShape, sizeOf } from "./shape.ts";
import { runBackward, type Node } from "./engine.ts";
import * as ops from "./ops/index.ts";

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
  /**
   * The gradient behind `grad`, for the framework's own use (optimizers read it here). Reading `grad`
   * instead tells the framework that other code may hold the gradient, so zeroGrad leaves its buffer alone.
   */
  _grad: Tensor | null = null;
  /** True while `_grad` was made by backward and nothing outside the framework has read it: its buffer
   *  is then the framework's to recycle when the gradient is cleared. */
  _gradOwned = false;
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

  /** Accumulated gradient of a leaf, filled by backward() until zeroGrad(). */
  get grad(): Tensor | null {
    this._gradOwned = false;
    return this._grad;
  }

  set grad(g: Tensor | null) {
    this._grad = g;
    this._gradOwned = false;
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
   * A tensor of more than one element needs `gradient` (the vector in the vector-Jacobian product).
   * @example loss.backward(); w.grad
   */
  backward(gradient?: Tensor, options: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    if (!this.requiresGrad) {
      throw new GraphError(`backward: tensor of shape ${fmtShape(this.shape)} does not require grad and has no grad_fn`);
    }
    let g: Tensor;
    if (gradient === undefined) {
      if (this.size !== 1) {
        throw new GraphError(
          `backward: grad can be implicitly created only for a scalar output, got shape ${fmtShape(this.shape)}; pass a gradient tensor of that shape`,
        );
      }
      g = ops.onesLike(this);
    } else {
      if (!sameShape(gradient.shape, this.shape)) {
        throw new ShapeError(`backward: gradient of shape ${fmtShape(gradient.shape)} does not match output shape ${fmtShape(this.shape)}`);
      }
      g = gradient.dtype === this.dtype ? gradient : ops.cast(gradient, this.dtype);
    }
    runBackward([this], [g], options);
  }

  /**
   * Clears the accumulated gradient (sets it to null, as PyTorch's set_to_none). When no code outside the
   * framework has read `grad` since backward made it, its buffer goes to the pool for the next gradient.
   */
  zeroGrad(): void {
    if (this._grad && this._gradOwned) releaseBuffer(this._grad.data);
    this._grad = null;
    this._gradOwned = false;
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

// ---------------------------------------------------------------- factories

function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let cur: NestedArray = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0];
  }
  return shape;
}

function flattenNested(data: NestedArray, shape: number[], out: FloatArray): void {
  let k = 0;
  const walk = (x: NestedArray, dim: number, path: number[]): void => {
    if (dim === shape.length) {
      if (typeof x !== "number") {
        throw new ValueError(`tensor: ragged nested array: expected a number at [${path.join("][")}], got an array`);
      }
      out[k++] = x;
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[dim]) {
      const got = Array.isArray(x) ? `length ${x.length}` : typeof x;
      throw new ValueError(
        `tensor: ragged nested array: expected length ${shape[dim]} at ${path.length ? `[${path.join("][")}]` : "the top level"}, got ${got} (inferred shape ${fmtShape(shape)})`,
      );
    }
    for (let i = 0; i < x.length; i++) walk(x[i], dim + 1, [...path, i]);
  };
  walk(data, 0, []);
}

/**
 * Creates a leaf tensor from a number, nested arrays, or a flat array / typed array with `shape`.
 * @example tensor([[1, 2], [3, 4]], { requiresGrad: true })
 * @example tensor(new Float64Array(6), { shape: [2, 3], dtype: "float64" })
 */
export function tensor(data: NestedArray | ArrayLike<number>, options: TensorOptions = {}): Tensor {
  if (options.dtype !== undefined && !isDType(options.dtype)) {
    throw new ValueError(`tensor: unknown dtype ${JSON.stringify(options.dtype)}; use "float32" or "float64"`);
  }
  const isTyped = ArrayBuffer.isView(data);
  const dtype: DType = options.dtype ?? (data instanceof Float64Array ? "float64" : "float32");
  let arr: FloatArray;
  let shape: number[];
  if (isTyped || (options.shape && Array.isArray(data) && data.every((v) => typeof v === "number"))) {
    const flat = data as ArrayLike<number>;
    shape = options.shape ? [...options.shape] : [flat.length];
    checkShape("tensor", shape);
    if (flat.length !== sizeOf(shape)) {
      throw new ShapeError(`tensor: ${flat.length} values do not fit shape ${fmtShape(shape)} (${sizeOf(shape)} elements)`);
    }
    if (ArrayBuffer.isView(flat)) {
      // NOTE: set copies (and converts) in one native pass into a buffer that skips the zero fill; .from iterates
      arr = allocateUnfilled(dtype, flat.length);
      arr.set(flat as unknown as ArrayLike<number>);
    } else {
      arr = arrayTypes[dtype].from(flat);
    }
  } else {
    const nested = data as NestedArray;
    shape = inferShape(nested);
    arr = allocate(dtype, sizeOf(shape));
    flattenNested(nested, shape, arr);
    if (options.shape) {
      checkShape("tensor", options.shape);
      if (sizeOf(options.shape) !== arr.length) {
        throw new ShapeError(`tensor: nested array of shape ${fmtShape(shape)} does not fit shape ${fmtShape(options.shape)}`);
      }
      shape = [...options.shape];
    }
  }
  return new Tensor(arr, shape, options.requiresGrad ?? false);
}
