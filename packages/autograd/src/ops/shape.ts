/** Shape ops: reshape, permute/transpose, narrow, broadcastTo (its adjoint sumTo is a reduction), clone. */
import type { FloatArray } from "../dtype.ts";
import { AxisError, IndexError, ShapeError, ValueError, fmtShape } from "../errors.ts";
import * as K from "../kernels/index.ts";
import { allocate } from "../memory.ts";
import { kindInfo, unaryInfo, type OpInfo } from "../opinfo.ts";
import { normalizeAxis, sameShape, scalarAxes, sizeOf, broadcastShapes } from "../shape.ts";
import { declareOp, record } from "../tape.ts";
import { makeTensor, type Tensor } from "../tensor-class.ts";
import { empty, unfilled } from "./util.ts";

const RESHAPE = declareOp("reshape", { inputs: false, output: false });
const PERMUTE = declareOp("permute", { inputs: false, output: false });
const NARROW = declareOp("narrow", { inputs: false, output: false });
const NARROW_BACKWARD = declareOp("narrowBackward", { inputs: false, output: false });
const BROADCAST_TO = declareOp("broadcastTo", { inputs: false, output: false });
const CLONE = declareOp("clone", { inputs: false, output: false });

/** Same data, new shape; one dimension may be -1. Shares memory with `x`. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const target = [...shape];
  let infer = -1;
  let known = 1;
  for (let i = 0; i < target.length; i++) {
    const d = target[i];
    if (d === -1) {
      if (infer >= 0) throw new ShapeError(`reshape: only one dimension can be -1, got ${fmtShape(shape)}`);
      infer = i;
    } else if (!Number.isInteger(d) || d < 0) {
      throw new ShapeError(`reshape: invalid dimension ${d} in ${fmtShape(shape)}`);
    } else known *= d;
  }
  if (infer >= 0) {
    if (known === 0 || x.size % known !== 0) {
      throw new ShapeError(`reshape: cannot reshape ${fmtShape(x.shape)} (${x.size} elements) into ${fmtShape(shape)}`);
    }
    target[infer] = x.size / known;
  }
  if (sizeOf(target) !== x.size) {
    throw new ShapeError(`reshape: cannot reshape ${fmtShape(x.shape)} (${x.size} elements) into ${fmtShape(shape)} (${sizeOf(target)} elements)`);
  }
  if (sameShape(target, x.shape)) return x;
  const out = makeTensor(x.data, target);
  return record(RESHAPE, [x], out, (g) => [reshape(g, x.shape)]);
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normalizeAxis("flatten", startDim, x.ndim);
  const e = normalizeAxis("flatten", endDim, x.ndim);
  if (s > e) throw new AxisError(`flatten: startDim ${startDim} comes after endDim ${endDim} for shape ${fmtShape(x.shape)}`);
  return reshape(x, [...x.shape.slice(0, s), sizeOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normalizeAxis("unsqueeze", axis, x.ndim + 1);
  return reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]);
}

/**
 * Removes axes of size 1: all of them, or those of `axis` (one or a list). As in PyTorch, a named axis whose
 * size is not 1 is left as it is, and a 0-d tensor accepts axis 0 or -1 and comes back unchanged.
 */
export function squeeze(x: Tensor, axis?: number | readonly number[]): Tensor {
  if (axis === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const list = typeof axis === "number" ? [axis] : axis;
  if (x.ndim === 0) {
    scalarAxes("squeeze", list);
    return x;
  }
  const axes = list.map((a) => normalizeAxis("squeeze", a, x.ndim));
  if (new Set(axes).size !== axes.length) throw new AxisError(`squeeze: axis repeated in ${JSON.stringify(list)}`);
  return reshape(x, x.shape.filter((d, i) => d !== 1 || !axes.includes(i)));
}

/** Reorders the axes: out.shape[i] = x.shape[axes[i]]. */
export function permute(x: Tensor, axes: readonly number[]): Tensor {
  if (axes.length !== x.ndim) {
    throw new AxisError(`permute: ${axes.length} axes given for a tensor of rank ${x.ndim} ${fmtShape(x.shape)}`);
  }
  const norm = axes.map((a) => normalizeAxis("permute", a, x.ndim));
  if (new Set(norm).size !== norm.length) throw new AxisError(`permute: axes ${JSON.stringify(axes)} repeat an axis`);
  if (norm.every((a, i) => a === i)) return x;
  const outShape = norm.map((a) => x.shape[a]);
  const out = makeTensor(allocate(x.dtype, x.size), outShape);
  K.permute(x.data, x.shape, norm, out.data);
  const inverse = new Array<number>(norm.length);
  norm.forEach((a, i) => (inverse[a] = i));
  return record(PERMUTE, [x], out, (g) => [permute(g, inverse)]);
}

/**
 * Swaps axes `dim0` and `dim1` (torch.transpose; negative axes count from the end). Without them, swaps
 * the last two axes (torch's .mT), and a tensor of rank < 2 comes back unchanged.
 * @example transpose(x, 0, 1)
 */
export function transpose(x: Tensor, dim0?: number, dim1?: number): Tensor {
  if ((dim0 === undefined) !== (dim1 === undefined)) {
    throw new AxisError(`transpose: give both axes to swap or neither (got ${dim0 ?? dim1} alone)`);
  }
  if (dim0 === undefined || dim1 === undefined) {
    if (x.ndim < 2) return x;
    return swapAxes(x, x.ndim - 2, x.ndim - 1);
  }
  if (x.ndim === 0) {
    scalarAxes("transpose", [dim0]);
    scalarAxes("transpose", [dim1]);
    return x;
  }
  return swapAxes(x, normalizeAxis("transpose", dim0, x.ndim), normalizeAxis("transpose", dim1, x.ndim));
}

function swapAxes(x: Tensor, i: number, j: number): Tensor {
  const axes: number[] = [];
  for (let k = 0; k < x.ndim; k++) axes.push(k);
  axes[i] = j;
  axes[j] = i;
  return permute(x, axes);
}

/** All axes reversed (NumPy's and PyTorch's .T). */
export function reverseAxes(x: Tensor): Tensor {
  const axes: number[] = [];
  for (let k = x.ndim - 1; k >= 0; k--) axes.push(k);
  return permute(x, axes);
}

/**
 * The slice `start .. start + length - 1` along `dim` (torch.narrow); `dim` and `start` may be negative.
 * NOTE: like torch's view, the result shares memory with `x` when the slice is one contiguous block of
 * its data (every axis before `dim` has size 1, so always for dim 0); along any other axis it is a copy.
 * The whole axis gives `x` itself back, as reshape does for its own shape.
 * @example narrow(x, 0, 1, 2) // rows 1 and 2 of x, sharing x's data
 */
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  if (x.ndim === 0) throw new ShapeError("narrow: cannot be applied to a 0-d tensor");
  const d = normalizeAxis("narrow", dim, x.ndim);
  const n = x.shape[d];
  if (!Number.isInteger(start) || start < -n || start > n) {
    throw new IndexError(`narrow: start ${start} is out of range [${-n}, ${n}] for axis ${d} of shape ${fmtShape(x.shape)}`);
  }
  if (!Number.isInteger(length) || length < 0) {
    throw new ValueError(`narrow: length must be a non-negative integer, got ${length}`);
  }
  const s = start < 0 ? start + n : start;
  if (s + length > n) {
    throw new ShapeError(`narrow: start ${start} + length ${length} exceeds size ${n} of axis ${d} of shape ${fmtShape(x.shape)}`);
  }
  if (length === n) return x;
  const outShape = x.shape.slice();
  outShape[d] = length;
  const outer = sizeOf(x.shape.slice(0, d));
  const inner = sizeOf(x.shape.slice(d + 1));
  let out: Tensor;
  if (outer === 1) out = makeTensor(x.data.subarray(s * inner, (s + length) * inner), outShape);
  else {
    out = unfilled(x.dtype, outShape);
    copyBlocks(x.data, n * inner, s * inner, out.data, length * inner, 0, length * inner, outer);
  }
  // NOTE: the gradient is always a fresh full-size buffer, never g or a view of it (the engine adopts
  // fresh buffers as a leaf's .grad), and it is itself an op whose backward is narrow again.
  return record(NARROW, [x], out, (g) => [narrowBackward(g, x.shape, d, s)]);
}

/** The adjoint of narrow (PyTorch's slice_backward): zeros of `shape` with `g` written at the slice. */
function narrowBackward(g: Tensor, shape: readonly number[], dim: number, start: number): Tensor {
  const n = shape[dim];
  const length = g.shape[dim];
  const inner = sizeOf(shape.slice(dim + 1));
  const out = empty(g.dtype, shape);
  copyBlocks(g.data, length * inner, 0, out.data, n * inner, start * inner, length * inner, sizeOf(shape.slice(0, dim)));
  return record(NARROW_BACKWARD, [g], out, (gg) => [narrow(gg, dim, start, length)]);
}

/** Copies `count` blocks of `block` elements from `src` to `dst`, each side with its own offset and stride. */
function copyBlocks(
  src: FloatArray, srcStride: number, srcOffset: number, dst: FloatArray, dstStride: number, dstOffset: number, block: number, count: number,
): void {
  if (block === 0) return;
  for (let k = 0; k < count; k++) {
    const from = srcOffset + k * srcStride;
    dst.set(src.subarray(from, from + block), dstOffset + k * dstStride);
  }
}

/** Broadcasts `x` to `shape` (NumPy rules); its gradient is summed back by the engine. */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  const full = broadcastShapes("broadcastTo", x.shape, shape);
  if (!sameShape(full, shape)) {
    throw new ShapeError(`broadcastTo: cannot broadcast ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  }
  if (sameShape(x.shape, shape)) return x;
  const out = makeTensor(allocate(x.dtype, sizeOf(shape)), shape);
  K.broadcastTo(x.data, x.shape, out.data, shape);
  return record(BROADCAST_TO, [x], out, (g) => [g]);
}

/** A copy of `x`'s data, recorded on the tape. */
export function clone(x: Tensor): Tensor {
  const out = makeTensor(x.data.slice(), x.shape);
  return record(CLONE, [x], out, (g) => [g]);
}

/**
 * A copy of `x` in pinned memory (torch's pin_memory): storage inside the WebAssembly kernels' shared memory,
 * which the WebAssembly gemm reads in place instead of copying it in for every product. Pin what the
 * steps read unchanged: a data set that batches are `narrow`ed from. Returns `x` itself
 * where it is pinned already, where the gemm backend is not "wasm", where the memory is not shared (a
 * browser page without cross-origin isolation) or the pinned heap is full (wasm-heap.ts, PIN_MAX_BYTES).
 * Recorded on the tape as a clone. The memory returns to the heap once no view of the copy is left.
 * @example const data = ag.tensor(images, { shape: [60000, 784] }).pinMemory(); // batches: data.narrow(0, i, 128)
 */
export function pinMemory(x: Tensor): Tensor {
  if (K.gemmBackend() !== "wasm" || x.size === 0 || isPinned(x)) return x;
  const data = K.pinArray(x.dtype, x.size);
  if (!data) return x;
  data.set(x.data);
  return record(CLONE, [x], makeTensor(data, x.shape), (g) => [g]);
}

/** Whether `x`'s storage is pinned memory (pinMemory). */
export function isPinned(x: Tensor): boolean {
  return K.isPinned(x.data);
}

export const shapeOpInfo: readonly OpInfo[] = [
  kindInfo("reshape", "reshape", 1, ([x], a) => reshape(x, a.shape!)),
  kindInfo("flatten", "flatten", 1, ([x], a) => flatten(x, a.startDim, a.endDim)),
  kindInfo("permute", "permute", 1, ([x], a) => permute(x, a.axes!)),
  unaryInfo("transpose", (x) => transpose(x)),
  kindInfo("unsqueeze", "unsqueeze", 1, ([x], a) => unsqueeze(x, a.axis as number)),
  kindInfo("squeeze", "squeeze", 1, ([x], a) => squeeze(x, a.axis)),
  kindInfo("broadcastTo", "broadcastTo", 1, ([x], a) => broadcastTo(x, a.shape!)),
  kindInfo("narrow", "narrow", 1, ([x], a) => narrow(x, a.axis as number, a.start!, a.length!)),
  unaryInfo("clone", clone),
];
