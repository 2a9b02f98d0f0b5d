/**
 * How the layers below the Tensor class make and recognise tensors. The ops sit below `tensor.ts` (its
 * methods call them), so they cannot import the class itself without an import cycle; `tensor.ts` hands
 * its class to `setTensorClass` where it defines it. Any Tensor that exists was made after that, so the
 * ops always find it.
 */
import type { FloatArray } from "./dtype.ts";
import type { Tensor } from "./tensor.ts";

export type { Tensor };

type TensorClass = new (data: FloatArray, shape: readonly number[], requiresGrad?: boolean) => Tensor;

let TensorCtor: TensorClass | null = null;

/** Called once, by tensor.ts, with the Tensor class. */
export function setTensorClass(cls: TensorClass): void {
  TensorCtor = cls;
}

/** A new tensor over `data` (not copied), as `new Tensor(data, shape, requiresGrad)`. */
export function makeTensor(data: FloatArray, shape: readonly number[], requiresGrad = false): Tensor {
  return new TensorCtor!(data, shape, requiresGrad);
}

/** Whether `x` is a Tensor (or a subclass such as nn's Parameter). */
export function isTensor(x: unknown): x is Tensor {
  return TensorCtor !== null && x instanceof TensorCtor;
}
