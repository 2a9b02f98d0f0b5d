/** Floating-point element types. float32 is the default, as in PyTorch. */
export type DType = "float32" | "float64";
export type FloatArray = Float32Array | Float64Array;

export const arrayTypes = { float32: Float32Array, float64: Float64Array } as const;

export function isDType(x: unknown): x is DType {
  return x === "float32" || x === "float64";
}

/**
 * Arrays allocated while a backward pass runs, so the engine can hand a leaf a gradient it alone owns
 * instead of copying it (see engine.ts, settleLeaves). Null outside backward. Each one owns its whole
 * buffer, which no array made before the pass shares: two different arrays of the set never share memory.
 * NOTE: kept by array, not by buffer: reading `.buffer` of a typed array of 64 bytes or less makes V8 move
 * it off its heap, which cost ~0.35 µs per array on the bench machine (a third of a tiny op's backward).
 */
let freshArrays: WeakSet<FloatArray> | null = null;

export function trackFreshArrays(set: WeakSet<FloatArray> | null): void {
  freshArrays = set;
}

export function allocate(dtype: DType, size: number): FloatArray {
  if (size >= POOL_MIN_BYTES / 8) { // a cheap test that lets small arrays skip the pool's lookup
    const pooledArray = fromPool(dtype, size);
    if (pooledArray) return pooledArray.fill(0);
  }
  const a = dtype === "float64" ? new Float64Array(size) : new Float32Array(size);
  if (freshArrays) freshArrays.add(a);
  return a;
}

/** Node's Buffer, where there is one: its allocUnsafeSlow hands out memory without the zero fill. */
const NodeBuffer = (globalThis as { Buffer?: { allocUnsafeSlow(size: number): Uint8Array } }).Buffer;

/** Below this many bytes the zero fill costs less than the Buffer object allocUnsafeSlow creates. */
const UNFILLED_MIN_BYTES = 16384;
/** The smallest buffer the pool keeps: smaller ones cost little to allocate fresh. */
export const POOL_MIN_BYTES = UNFILLED_MIN_BYTES;

/**
 * Like allocate, but for a result the caller overwrites entirely: large buffers skip the zero fill.
 * NOTE: measured on the bench machine, a zeroed 400 KB Float32Array costs 45–80 µs to allocate, an
 * unfilled one 4–9 µs; the MLP allocates one per layer per step. The array owns its ArrayBuffer
 * (byteOffset 0, full length), as allocate's do, so the engine may adopt it as a gradient.
 */
export function allocateUnfilled(dtype: DType, size: number): FloatArray {
  const width = dtype === "float64" ? 8 : 4;
  if (size * width >= POOL_MIN_BYTES) {
    const a = fromPool(dtype, size);
    if (a) return a;
  }
  if (!NodeBuffer || size * width < UNFILLED_MIN_BYTES) return allocate(dtype, size);
  const { buffer } = NodeBuffer.allocUnsafeSlow(size * width);
  const a = dtype === "float64" ? new Float64Array(buffer, 0, size) : new Float32Array(buffer, 0, size);
  if (freshArrays) freshArrays.add(a);
  return a;
}

// ---------------------------------------------------------------- the buffer pool

/**
 * Buffers the framework has proved dead, by byte length, for the next allocation of that size (a caching
 * allocator, as PyTorch keeps for CUDA). Only the engine and zeroGrad release buffers, and only ones no
 * tensor the user can reach still uses: gradients made and consumed within one backward pass, and a
 * leaf's gradient that no code outside the framework has read (see Tensor.grad).
 * NOTE: measured on the bench VM (one-off script, 14 alternated pairs of fresh processes, batch-128 MLP):
 * with the pool, epochs 2–4 were faster in 11 pairs and epochs 5–8 in 10 (medians 477 against 495 ms and
 * 405 against 431 ms). A fresh buffer is new memory: the first write to each of its cache lines reads it
 * from DRAM. A recycled one was written a step ago and is still in cache. JavaScript frees a buffer only
 * when the garbage collector finds it dead, many steps later.
 */
const pool = new Map<number, ArrayBuffer[]>();
const pooled = new WeakSet<ArrayBuffer>();
let pooledBytes = 0;
let poolOn = true;
/** Buffers kept per byte length, and in all; a release beyond either is left to the garbage collector. */
const POOL_PER_SIZE = 8;
const POOL_MAX_BYTES = 256 * 2 ** 20;

/**
 * Hands `a`'s buffer to the pool. The caller guarantees that nothing will read or write `a`, or any
 * view of its buffer, again. Views, shared memory and small buffers are left to the garbage collector.
 */
export function releaseBuffer(a: FloatArray): void {
  // NOTE: the size test first: reading .buffer of a small array would move it off V8's heap
  if (!poolOn || a.byteLength < POOL_MIN_BYTES) return;
  const buf = a.buffer;
  if (!(buf instanceof ArrayBuffer) || a.byteOffset !== 0 || a.byteLength !== buf.byteLength) return;
  if (buf.byteLength < POOL_MIN_BYTES || pooled.has(buf) || pooledBytes + buf.byteLength > POOL_MAX_BYTES) return;
  let list = pool.get(buf.byteLength);
  if (!list) pool.set(buf.byteLength, (list = []));
  if (list.length >= POOL_PER_SIZE) return;
  list.push(buf);
  pooled.add(buf);
  pooledBytes += buf.byteLength;
}

function fromPool(dtype: DType, size: number): FloatArray | null {
  const width = dtype === "float64" ? 8 : 4;
  const list = pool.get(size * width);
  const buf = list?.pop();
  if (!buf) return null;
  pooled.delete(buf);
  pooledBytes -= buf.byteLength;
  const a = dtype === "float64" ? new Float64Array(buf) : new Float32Array(buf);
  if (freshArrays) freshArrays.add(a);
  return a;
}

/** Turns the buffer pool off (emptying it) or back on; returns the previous setting. For tests and debugging. */
export function setBufferPool(on: boolean): boolean {
  const prev = poolOn;
  poolOn = on;
  if (!on) emptyBufferPool();
  return prev;
}

/** Empties the buffer pool (its memory goes back to the garbage collector), as torch.cuda.empty_cache. */
export function emptyBufferPool(): void {
  pool.clear();
  pooledBytes = 0;
}

/** Bytes the pool holds now, and how many buffers. */
export function bufferPoolSize(): { bytes: number; buffers: number } {
  let buffers = 0;
  for (const list of pool.values()) buffers += list.length;
  return { bytes: pooledBytes, buffers };
}

export function dtypeOf(a: FloatArray): DType {
  return a instanceof Float64Array ? "float64" : "float32";
}

/** NOTE: mixing float32 and float64 promotes to float64, as in PyTorch and NumPy. */
export function promoteTypes(a: DType, b: DType): DType {
  return a === b ? a : "float64";
}
