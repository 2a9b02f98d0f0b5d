import { AxisError, ShapeError, fmtShape } from "./errors.ts";

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
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
  // NOTE: a 0-d tensor accepts axis 0 and -1 for reductions in PyTorch; we follow NumPy and reject them
  // except through the "all axes" form, so rank 0 has no valid axis.
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    throw new AxisError(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}

/** Normalizes an axis argument (undefined = all axes) into a sorted, de-duplicated list. */
export function normalizeAxes(op: string, axis: number | readonly number[] | undefined, rank: number): number[] {
  if (axis === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axis === "number" ? [axis] : axis;
  const out = list.map((a) => normalizeAxis(op, a, rank));
  const sorted = [...out].sort((x, y) => x - y);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i] === sorted[i - 1]) throw new AxisError(`${op}: axis ${sorted[i]} repeated in ${JSON.stringify(list)}`);
  }
  return sorted;
}

/** Shape after reducing `axes`; with keepdims they stay as 1. */
export function reducedShape(shape: readonly number[], axes: readonly number[], keepdims: boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    if (axes.includes(i)) {
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
