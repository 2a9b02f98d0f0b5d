/** Floating-point element types. float32 is the default, as in PyTorch. */
export type DType = "float32" | "float64";
export type FloatArray = Float32Array | Float64Array;

export const arrayTypes = { float32: Float32Array, float64: Float64Array } as const;

export function isDType(x: unknown): x is DType {
  return x === "float32" || x === "float64";
}

/**
 * Buffers allocated while a backward pass runs, so the engine can hand a leaf a gradient it alone owns
 * instead of copying it (see engine.ts, settleLeaves). Null outside backward.
 */
let freshBuffers: WeakSet<ArrayBufferLike> | null = null;

export function trackFreshBuffers(set: WeakSet<ArrayBufferLike> | null): void {
  freshBuffers = set;
}

export function allocate(dtype: DType, size: number): FloatArray {
  const a = dtype === "float64" ? new Float64Array(size) : new Float32Array(size);
  if (freshBuffers) freshBuffers.add(a.buffer);
  return a;
}

/** Node's Buffer, where there is one: its allocUnsafeSlow hands out memory without the zero fill. */
const NodeBuffer = (globalThis as { Buffer?: { allocUnsafeSlow(size: number): Uint8Array } }).Buffer;

/** Below this many bytes the zero fill costs less than the Buffer object allocUnsafeSlow creates. */
const UNFILLED_MIN_BYTES = 16384;

/**
 * Like allocate, but for a result the caller overwrites entirely: large buffers skip the zero fill.
 * NOTE: measured on the bench machine, a zeroed 400 KB Float32Array costs 45–80 µs to allocate, an
 * unfilled one 4–9 µs; the MLP allocates one per layer per step. The array owns its ArrayBuffer
 * (byteOffset 0, full length), as allocate's do, so the engine may adopt it as a gradient.
 */
export function allocateUnfilled(dtype: DType, size: number): FloatArray {
  const width = dtype === "float64" ? 8 : 4;
  if (!NodeBuffer || size * width < UNFILLED_MIN_BYTES) return allocate(dtype, size);
  const { buffer } = NodeBuffer.allocUnsafeSlow(size * width);
  const a = dtype === "float64" ? new Float64Array(buffer, 0, size) : new Float32Array(buffer, 0, size);
  if (freshBuffers) freshBuffers.add(a.buffer);
  return a;
}

export function dtypeOf(a: FloatArray): DType {
  return a instanceof Float64Array ? "float64" : "float32";
}

/** NOTE: mixing float32 and float64 promotes to float64, as in PyTorch and NumPy. */
export function promoteTypes(a: DType, b: DType): DType {
  return a === b ? a : "float64";
}
