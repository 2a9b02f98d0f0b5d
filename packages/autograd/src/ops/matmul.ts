/** Matrix products. One primitive, mm(a, b, transA, transB), whose backward is mm again with other flags. */
import { ShapeError, fmtShape } from "../errors.ts";
import { record } from "../engine.ts";
import * as K from "../kernels/index.ts";
import { broadcastShapes, sizeOf } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { reshape, cast } from "./shape.ts";
import { empty } from "./util.ts";

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
    a = a.dtype === "float64" ? a : cast(a, "float64");
    b = b.dtype === "float64" ? b : cast(b, "float64");
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
 * so no transposed copy is ever made.
 */
export function mm(a: Tensor, b: Tensor, ta: boolean, tb: boolean, what?: string): Tensor {
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
  const out = empty(a.dtype, [...batch, m, n]);
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
  return record("matmul", [a, b], out, (g) => [
    a.requiresGrad ? (ta ? mm(b, g, tb, true) : mm(g, b, false, !tb)) : null,
    b.requiresGrad ? (tb ? mm(g, a, true, ta) : mm(a, g, !ta, false)) : null,
  ]);
}
