import type { DType } from "../dtype.ts";
import { promoteTypes } from "../dtype.ts";
import { ValueError } from "../errors.ts";
import { allocate, allocatePinnedUnfilled, allocateUnfilled } from "../memory.ts";
import { sizeOf } from "../shape.ts";
import { isTensor, makeTensor, type Tensor } from "../tensor-class.ts";
import type { TensorLikeInput } from "../tensor.ts";
import { cast } from "./cast.ts";

/** A fresh zero-filled tensor to write an op's result into. */
export function empty(dtype: DType, shape: readonly number[]): Tensor {
  return makeTensor(allocate(dtype, sizeOf(shape)), shape);
}

/** A tensor for a result the op writes entirely: large ones skip the zero fill (see allocateUnfilled). */
export function unfilled(dtype: DType, shape: readonly number[]): Tensor {
  return makeTensor(allocateUnfilled(dtype, sizeOf(shape)), shape);
}

/** Like unfilled, in pinned memory where it can be had (allocatePinnedUnfilled): a pinned weight's gradient. */
export function unfilledPinned(dtype: DType, shape: readonly number[]): Tensor {
  return makeTensor(allocatePinnedUnfilled(dtype, sizeOf(shape)), shape);
}

/** A number becomes a 0-d tensor of `like`'s dtype (a plain number does not promote, as in PyTorch). */
export function lift(op: string, x: TensorLikeInput, like: Tensor | DType): Tensor {
  if (isTensor(x)) return x;
  if (typeof x !== "number") throw new ValueError(`${op}: expected a Tensor or a number, got ${typeof x}`);
  const dtype = typeof like === "string" ? like : like.dtype;
  const t = empty(dtype, []);
  t.data[0] = x;
  return t;
}

/** Both operands as tensors of one dtype, PyTorch's promotion (recorded casts). */
export function operands(op: string, a: TensorLikeInput, b: TensorLikeInput): [Tensor, Tensor] {
  let A = isTensor(a) ? a : null;
  let B = isTensor(b) ? b : null;
  if (!A && !B) throw new ValueError(`${op}: at least one operand must be a Tensor`);
  A ??= lift(op, a, B!);
  B ??= lift(op, b, A);
  if (A.dtype !== B.dtype) {
    // NOTE: PyTorch's rule: a 0-d tensor does not promote a dimensioned one of the same kind (all ours
    // are floating point), so float32 [n] with float64 [] stays float32; otherwise float64 wins.
    const dt = A.ndim === 0 && B.ndim > 0 ? B.dtype : B.ndim === 0 && A.ndim > 0 ? A.dtype : promoteTypes(A.dtype, B.dtype);
    A = A.dtype === dt ? A : cast(A, dt);
    B = B.dtype === dt ? B : cast(B, dt);
  }
  return [A, B];
}
