/** Matrix products. One primitive, mm(a, b, transA, transB), whose backward is mm again with other flags. */
import { ShapeError, fmtShape } from "../errors.ts";
import * as K from "../kernels/index.ts";
import { POOL_MIN_BYTES } from "../memory.ts";
import { kindInfo, type OpInfo } from "../opinfo.ts";
import { broadcastShapes, sizeOf } from "../shape.ts";
import { declareOp, record, type Node } from "../tape.ts";
import type { Tensor } from "../tensor-class.ts";
import { cast } from "./cast.ts";
import { sum } from "./reduce.ts";
import { reshape } from "./shape.ts";
import { empty, unfilled, unfilledPinned } from "./util.ts";

const MATMUL = declareOp("matmul", { output: false });
const LINEAR = declareOp("linear", { output: false });

/**
 * NumPy's matmul: 1-D operands are promoted to a row (left) or a column (right) and the added axis removed;
 * operands of rank > 2 are stacks of matrices whose batch axes broadcast.
 * @example tensor([[1, 2]]).matmul(tensor([[3], [4]])) // [[11]]
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 0 || b.ndim === 0) {
    throw new ShapeError(`matmul: both arguments need at least 1 dimension, got ${fmtShape(a.shape)} @ ${fmtShape(b.shape)}`);
  }
  if (a.dtype !== b.dtype) {
    // cast returns a tensor already of that dtype unchanged
    a = cast(a, "float64");
    b = cast(b, "float64");
  }
  const ka = a.shape[a.ndim - 1];
  const kb = b.ndim === 1 ? b.shape[0] : b.shape[b.ndim - 2];
  if (ka !== kb) {
    throw new ShapeError(`matmul: inner dimensions differ: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)} (${ka} vs ${kb})`);
  }
  const A = a.ndim === 1 ? reshape(a, [1, ka]) : a;
  const B = b.ndim === 1 ? reshape(b, [kb, 1]) : b;
  let out = mm(A, B, false, false, `${fmtShape(a.shape)} @ ${fmtShape(b.shape)}`);
  if (a.ndim === 1 || b.ndim === 1) {
    const s = out.shape.slice(0, -2);
    if (a.ndim !== 1) s.push(out.shape[out.ndim - 2]);
    if (b.ndim !== 1) s.push(out.shape[out.ndim - 1]);
    out = reshape(out, s);
  }
  return out;
}

/**
 * op(a) @ op(b) where op transposes the last two axes when its flag is set; batch axes broadcast.
 * NOTE: the backward of C = op_a(A)·op_b(B) is closed under the flags:
 *   dA = ta ? op_b(B)·Gᵀ : G·op_b(B)ᵀ      dB = tb ? Gᵀ·op_a(A) : op_a(A)ᵀ·G
 * so no transposed copy is ever made. The gradient of a pinned operand (a weight pinned with pinMemory) is
 * pinned too (`pinResult`), so that the WebAssembly gemm writes it in place and a pinned SGD step reads it
 * there.
 */
export function mm(a: Tensor, b: Tensor, ta: boolean, tb: boolean, what?: string, pinResult = false): Tensor {
  if (a.ndim < 2 || b.ndim < 2) throw new ShapeError(`mm: operands must be at least 2-D, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const ar = a.shape[a.ndim - 2], ac = a.shape[a.ndim - 1];
  const br = b.shape[b.ndim - 2], bc = b.shape[b.ndim - 1];
  const m = ta ? ac : ar, k = ta ? ar : ac;
  const kb = tb ? bc : br, n = tb ? br : bc;
  if (k !== kb) {
    throw new ShapeError(`matmul: inner dimensions differ: ${what ?? `${fmtShape(a.shape)} @ ${fmtShape(b.shape)}`} (${k} vs ${kb})`);
  }
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const batch = broadcastShapes("matmul", batchA, batchB);
  // an empty inner dimension leaves the zeros of a filled buffer as the product
  const out = (k === 0 ? empty : pinResult ? unfilledPinned : unfilled)(a.dtype, [...batch, m, n]);
  const nb = sizeOf(batch);
  if (nb > 0 && m > 0 && n > 0) {
    if (k === 0) {
      // empty inner dimension: the product is all zeros (already)
    } else if (batchB.length === 0 && !ta) {
      // a stack of matrices times one matrix: one gemm over all rows
      K.gemm(false, tb, nb * m, n, k, a.data, 0, ac, b.data, 0, bc, out.data, 0, n, 0);
    } else {
      const sa = K.broadcastStrides(batchA, batch);
      const sb = K.broadcastStrides(batchB, batch);
      const idx = new Array<number>(batch.length).fill(0);
      let ao = 0, bo = 0;
      for (let t = 0; t < nb; t++) {
        K.gemm(ta, tb, m, n, k, a.data, ao * ar * ac, ac, b.data, bo * br * bc, bc, out.data, t * m * n, n, 0);
        for (let d = batch.length - 1; d >= 0; d--) {
          idx[d]++;
          ao += sa[d];
          bo += sb[d];
          if (idx[d] < batch[d]) break;
          ao -= sa[d] * idx[d];
          bo -= sb[d] * idx[d];
          idx[d] = 0;
        }
      }
    }
  }
  return record(MATMUL, [a, b], out, (g) => [
    a.requiresGrad ? (ta ? mm(b, g, tb, true, undefined, pinned(a)) : mm(g, b, false, !tb, undefined, pinned(a))) : null,
    b.requiresGrad ? (tb ? mm(g, a, true, ta, undefined, pinned(b)) : mm(a, g, !ta, false, undefined, pinned(b))) : null,
  ]);
}

/**
 * x @ wᵀ + b with w stored [out, in] (PyTorch's Linear layout); x may have leading batch axes.
 * NOTE: fused: the bias is written into the output rows and the gemm accumulates onto it (beta = 1).
 * @example linear(x, w, b) // [N, in] → [N, out]
 */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  if (w.ndim !== 2) throw new ShapeError(`linear: weight must be 2-D [out, in], got ${fmtShape(w.shape)}`);
  const [outF, inF] = w.shape;
  if (x.ndim === 0 || x.shape[x.ndim - 1] !== inF) {
    throw new ShapeError(`linear: input ${fmtShape(x.shape)} does not match weight ${fmtShape(w.shape)}: the last dimension must be ${inF}`);
  }
  if (b && (b.ndim !== 1 || b.shape[0] !== outF)) {
    throw new ShapeError(`linear: bias ${fmtShape(b.shape)} does not match weight ${fmtShape(w.shape)}: expected [${outF}]`);
  }
  if (x.dtype !== w.dtype || (b && b.dtype !== w.dtype)) {
    x = cast(x, "float64");
    w = cast(w, "float64");
    if (b) b = cast(b, "float64");
  }
  // NOTE: not x.size / inF, which is NaN for inF = 0 (then every row is the bias, as in PyTorch)
  const rows = sizeOf(x.shape.slice(0, -1));
  const out = (b || inF > 0 ? unfilled : empty)(x.dtype, [...x.shape.slice(0, -1), outF]);
  if (b) K.fillRows(b.data, rows, outF, out.data);
  if (rows > 0 && inF > 0 && outF > 0) K.gemm(false, true, rows, outF, inF, x.data, 0, inF, w.data, 0, inF, out.data, 0, outF, b ? 1 : 0);
  const inputs = b ? [x, w, b] : [x, w];
  return record(LINEAR, inputs, out, linearBackward);
}

function linearBackward(g: Tensor, node: Node): (Tensor | null)[] {
  const [x, w, b] = node.inputs;
  const [outF, inF] = w.shape;
  const g2 = g.ndim === 2 ? g : reshape(g, [-1, outF]);
  const x2 = x.ndim === 2 ? x : reshape(x, [-1, inF]);
  const gx = x.requiresGrad ? mm(g2, w, false, false) : null;
  return [
    gx && x.ndim !== 2 ? reshape(gx, x.shape) : gx,
    w.requiresGrad ? mm(g2, x2, true, false, undefined, pinned(w)) : null,
    b && b.requiresGrad ? sum(g2, 0) : null,
  ];
}

/** Whether a leaf's storage is pinned (K.isPinned), checked only for arrays the pinned pool would take
 *  (reading `.buffer` of a small typed array moves it off V8's heap). */
function pinned(t: Tensor): boolean {
  return t.isLeaf && t.data.byteLength >= POOL_MIN_BYTES && K.isPinned(t.data);
}

export const matmulOpInfo: readonly OpInfo[] = [
  kindInfo("matmul", "matmul", 2, ([a, b]) => matmul(a, b)),
  kindInfo("linear", "linear", 3, ([x, w, b]) => linear(x, w, b)),
];
