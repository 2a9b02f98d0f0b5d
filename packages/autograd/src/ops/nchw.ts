/** What the convolutional-network ops share: dtype promotion of several operands and unbatched inputs. */
import type { DType } from "../dtype.ts";
import { ValueError } from "../errors.ts";
import type { Tensor } from "../tensor-class.ts";
import { cast } from "./cast.ts";
import { reshape } from "./shape.ts";

/**
 * The tensors cast (recorded) to one dtype: float64 when any of them is float64, as elementwise ops
 * promote. Nulls (absent optional operands) stay null.
 */
export function promoteAll(tensors: readonly (Tensor | null)[]): (Tensor | null)[] {
  let dtype: DType | null = null;
  for (const t of tensors) if (t) dtype = dtype === null || dtype === t.dtype ? t.dtype : "float64";
  return tensors.map((t) => (t && t.dtype !== dtype ? cast(t, dtype!) : t));
}

/** Runs a 4-D op on an unbatched 3-D input [C, H, W] as one image [1, C, H, W], as PyTorch accepts. */
export function unbatched(x: Tensor, fn: (x4: Tensor) => Tensor): Tensor {
  const out = fn(reshape(x, [1, ...x.shape]));
  return reshape(out, out.shape.slice(1));
}

/** A positive integer, or a pair of them, as [h, w]. */
export function intPair(op: string, name: string, v: unknown, min = 1): [number, number] {
  const ok = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= min;
  if (ok(v)) return [v, v];
  if (Array.isArray(v) && v.length === 2 && ok(v[0]) && ok(v[1])) return [v[0], v[1]];
  throw new ValueError(`${op}: ${name} must be an integer ≥ ${min} or a pair of them, got ${JSON.stringify(v)}`);
}
