/** dtype conversion. */
import type { DType } from "../dtype.ts";
import { allocate } from "../memory.ts";
import { unaryInfo, type OpInfo } from "../opinfo.ts";
import { declareOp, record } from "../tape.ts";
import { makeTensor, type Tensor } from "../tensor-class.ts";

const CAST = declareOp("cast", { inputs: false, output: false });

/** Converts to `dtype`; the gradient is cast back to the input's dtype. */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const data = allocate(dtype, x.size);
  data.set(x.data);
  const out = makeTensor(data, x.shape);
  return record(CAST, [x], out, (g) => [cast(g, x.dtype)]);
}

export const castOpInfo: readonly OpInfo[] = [
  // NOTE: a float32 round trip rounds each value to 24 bits, so the central difference needs a wide step
  unaryInfo("cast", (x) => cast(cast(x, "float32"), "float64"), undefined, { gradcheck: { eps: 1e-2, atol: 1e-4, rtol: 1e-3 } }),
];
