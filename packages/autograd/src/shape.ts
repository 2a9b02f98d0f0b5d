import { AxisError, ShapeError, fmtShape } from "./errors.ts";

export function sizeOf(shape: readonly number[]): number {
  // NOTE: an index loop, not for-of: shapes reach here packed or holey (Array.prototype.map inlined by
  // TurboFan makes holey arrays), and the iterator's map checks deoptimized optimized callers on the other
  let n = 1;
  for (let i = 0; i < shape.length; i++) n *= shape[i];
  return n;
}

/**
 * A copy of `shape` as a packed array of small integers.
 * NOTE: V8 gives `new Array(n)` (holey) and `[]` + push (packed) arrays different maps; a function that
 * has seen only one kind deoptimizes on the other ("wrong map"), and the training step's shape helpers
 * kept deoptimizing for several epochs. Every tensor's shape comes through here, so all are one kind.
 */
export function packedShape(shape: readonly number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < shape.length; i++) out.push(shape[i]);
  return out;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Row-major strides of a contiguous tensor. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = packedShape(shape);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** NumPy broadcasting of two shapes; `op` names the op in the error. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else throw new ShapeError(`${op}: shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast together`);
  }
  return out;
}

/** Normalizes one possibly negative axis against `rank`. */
export function normalizeAxis(op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis)) throw new AxisError(`${op}: axis must be an integer, got ${axis}`);
  // NOTE: rank 0 has no axis here; the reductions and the softmax family accept 0 and -1 on a 0-d tensor,
  // as PyTorch does, through scalarAxes.
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    throw new AxisError(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}

/**
 * Normalizes an axis argument (undefined = all axes) into a sorted, de-duplicated list.
 * NOTE: built with push, not map or spread: TurboFan's inlined Array.prototype.map makes holey arrays where
 * the interpreter's makes packed ones, so once a caller was optimized its axis lists changed kind and the
 * optimized reductions that read them deoptimized ("wrong map") and recompiled, epoch after epoch.
 */
export function normalizeAxes(op: string, axis: number | readonly number[] | undefined, rank: number): number[] {
  const out: number[] = [];
  if (axis === undefined) {
    for (let i = 0; i < rank; i++) out.push(i);
    return out;
  }
  const list = typeof axis === "number" ? [axis] : axis;
  if (rank === 0) {
    scalarAxes(op, list);
    return out;
  }
  for (let i = 0; i < list.length; i++) {
    const a = normalizeAxis(op, list[i], rank);
    // insertion: axis lists are short
    let at = out.length;
    while (at > 0 && out[at - 1] > a) at--;
    if (at > 0 && out[at - 1] === a) throw new AxisError(`${op}: axis ${a} repeated in ${JSON.stringify(list)}`);
    out.splice(at, 0, a);
  }
  return out;
}

/**
 * Checks axes given for a 0-d tensor to reduce over: as in PyTorch, 0 and -1 (the one implicit axis, at
 * most once) are accepted and reduce nothing.
 */
export function scalarAxes(op: string, list: readonly number[]): void {
  let seen = false;
  for (let i = 0; i < list.length; i++) {
    const axis = list[i];
    if (!Number.isInteger(axis)) throw new AxisError(`${op}: axis must be an integer, got ${axis}`);
    if (axis !== 0 && axis !== -1) {
      throw new AxisError(`${op}: axis ${axis} is out of range for a tensor of rank 0 (it accepts 0 and -1)`);
    }
    if (seen) throw new AxisError(`${op}: axis 0 repeated in ${JSON.stringify(list)}`);
    seen = true;
  }
}

function hasAxis(axes: readonly number[], axis: number): boolean {
  for (let i = 0; i < axes.length; i++) if (axes[i] === axis) return true;
  return false;
}

/** Shape after reducing `axes`; with keepdims they stay as 1. */
export function reducedShape(shape: readonly number[], axes: readonly number[], keepdims: boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    if (hasAxis(axes, i)) {
      if (keepdims) out.push(1);
    } else out.push(shape[i]);
  }
  return out;
}

export function checkShape(op: string, shape: readonly number[]): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`${op}: invalid shape ${fmtShape(shape)}`);
  }
}
