/** MXNet's pick (one entry per row along an axis) and its adjoint, a scatter-add into zeros. */
import { IndexError, ShapeError, fmtShape } from "../errors.ts";
import * as K from "../kernels/index.ts";
import { kindInfo, type OpInfo } from "../opinfo.ts";
import { normalizeAxis, sizeOf } from "../shape.ts";
import { declareOp, record } from "../tape.ts";
import { isTensor, type Tensor } from "../tensor-class.ts";
import type { IndexInput, NestedArray } from "../tensor.ts";
import { tensor } from "./factories.ts";
import { reshape } from "./shape.ts";
import { empty, unfilled } from "./util.ts";

const PICK = declareOp("pick", { inputs: false, output: false });
const UNPICK = declareOp("unpick", { inputs: false, output: false });

/** Validates `index` (integers in [0, n)) and returns it as an Int32Array. */
function toIndex(op: string, index: IndexInput, expected: number[], n: number, xShape: readonly number[], axis: number): Int32Array {
  let values: ArrayLike<number>;
  let shape: readonly number[] | null = null;
  if (isTensor(index)) {
    values = index.data;
    shape = index.shape;
  } else if (Array.isArray(index) && index.some((v) => Array.isArray(v))) {
    const t = tensor(index as NestedArray, { dtype: "float64" });
    values = t.data;
    shape = t.shape;
  } else values = index as ArrayLike<number>;
  const count = sizeOf(expected);
  if (values.length !== count) {
    throw new ShapeError(
      `${op}: index has ${values.length} entries${shape ? ` (shape ${fmtShape(shape)})` : ""}, expected ${count} (shape ${fmtShape(expected)}) to pick along axis ${axis} of ${fmtShape(xShape)}`,
    );
  }
  if (values instanceof Int32Array) {
    for (let i = 0; i < count; i++) {
      const v = values[i];
      if (v < 0 || v >= n) throw new IndexError(`${op}: index ${v} at position ${i} is out of range [0, ${n}) for axis ${axis} of ${fmtShape(xShape)}`);
    }
    return values;
  }
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const v = values[i];
    if (!Number.isInteger(v)) throw new IndexError(`${op}: index ${v} at position ${i} is not an integer`);
    if (v < 0 || v >= n) throw new IndexError(`${op}: index ${v} at position ${i} is out of range [0, ${n}) for axis ${axis} of ${fmtShape(xShape)}`);
    out[i] = v;
  }
  return out;
}

/**
 * out[..., i, ...] = x[..., index[...], ...] along `axis`: one entry per row, as MXNet's nd.pick.
 * `index` has x's shape without `axis`; repeated indices in backward accumulate.
 * @example logits.logSoftmax().pick(labels) // log-probability of each row's label
 */
export function pick(x: Tensor, index: IndexInput, axis = -1, keepdims = false): Tensor {
  if (x.ndim === 0) throw new ShapeError(`pick: cannot pick from a 0-d tensor`);
  const a = normalizeAxis("pick", axis, x.ndim);
  const outShape = x.shape.filter((_, i) => i !== a);
  const n = x.shape[a];
  const idx = toIndex("pick", index, outShape, n, x.shape, a);
  const outer = sizeOf(x.shape.slice(0, a));
  const inner = sizeOf(x.shape.slice(a + 1));
  const out = unfilled(x.dtype, outShape);
  K.pickAxis(x.data, outer, n, inner, idx, out.data);
  const picked = record(PICK, [x], out, (g) => [unpick(g, idx, x.shape, a)]);
  return keepdims ? reshape(picked, x.shape.map((d, i) => (i === a ? 1 : d))) : picked;
}

/** The adjoint of pick: zeros of `shape` with g scattered (added) at the picked places. */
export function unpick(g: Tensor, idx: Int32Array, shape: readonly number[], axis: number): Tensor {
  const outer = sizeOf(shape.slice(0, axis));
  const inner = sizeOf(shape.slice(axis + 1));
  const out = empty(g.dtype, shape);
  K.scatterAddAxis(g.data, outer, shape[axis], inner, idx, out.data);
  return record(UNPICK, [g], out, (gg) => [pick(gg, idx, axis)]);
}

export const pickOpInfo: readonly OpInfo[] = [
  kindInfo("pick", "pick", 1, ([x], a) => pick(x, a.index!, a.axis as number, a.keepdims)),
];
