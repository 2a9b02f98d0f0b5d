/**
 * Memory management: allocation, the buffer pool, and the bookkeeping that lets a backward pass reuse
 * the gradient buffers it proves dead. The engine and optimizers call it through a small interface:
 *
 * - `allocate` / `allocateUnfilled`: every tensor's storage, from the pool when a buffer of that size waits there;
 *   `allocateIndices` likewise for an op's integer scratch (a node's `scratch`, released when the graph is freed).
 * - `BackwardMemory`: one per plain backward pass. It knows which arrays the pass allocated ("fresh": no
 *   tensor outside the pass can hold them), releases the consumed gradients no stored gradient still uses,
 *   and settles the leaves' gradients at the end, adopting a fresh array as a leaf's `.grad` without a copy.
 * - `donatedGradient`: a backward may write its result over its incoming gradient when the pass proved that
 *   gradient dead after this backward (BackwardMemory.donate).
 * - `releaseWithGraph`: a tensor only its graph reaches goes to the pool when a plain backward frees the graph.
 * - `recycleGrad`: called explicitly by `zeroGrad({ recycle: true })` (the optimizers' zeroGrad) to hand a
 *   gradient that backward allocated back to the pool.
 *
 * Rules: only arrays this module can prove unreachable go to the pool; views, shared memory (but whole
 * pinned arrays, which go to a pool of their own: allocatePinnedUnfilled) and buffers below the pool's
 * floor (`POOL_MIN_BYTES`, or `POOL_MIN_BYTES_NO_BUFFER` without Node's Buffer) are left to the garbage
 * collector. A pooled buffer is warm in cache, where a new one is first-touched memory and a
 * dropped one waits for the collector.
 */
import type { DType, FloatArray } from "./dtype.ts";
import { itemSize } from "./dtype.ts";
import * as K from "./kernels/index.ts";
import { makeTensor, type Tensor } from "./tensor-class.ts";

// ---------------------------------------------------------------- allocation

/** The smallest buffer the pool keeps where Node's Buffer is there, and the size from which
 *  allocateUnfilled skips the zero fill: below it a fresh zeroed array costs less than a pool lookup or a
 *  Buffer object. */
export const POOL_MIN_BYTES = 16384;
/** Buffers kept per byte length, and in all; a release beyond either is left to the garbage collector. */
const POOL_PER_SIZE = 8;
const POOL_MAX_BYTES = 256 * 2 ** 20;

/** Node's Buffer, where there is one: its allocUnsafeSlow hands out memory without the zero fill. */
const NodeBuffer = (globalThis as { Buffer?: { allocUnsafeSlow(size: number): Uint8Array } }).Buffer;

/** The smallest buffer the pool keeps where there is no Node Buffer (browsers): there every fresh
 *  ArrayBuffer comes with fresh pages, a page fault each on first touch (bench/NOTES.md, "Browser
 *  allocations, SGD and the bench page's profile"), so even small released buffers are worth reusing.
 *  256 bytes stays well above the 64 bytes V8 keeps on its heap. */
export const POOL_MIN_BYTES_NO_BUFFER = 256;

/** The pool's lower size limit in this runtime. */
let poolMinBytes = NodeBuffer ? POOL_MIN_BYTES : POOL_MIN_BYTES_NO_BUFFER;

/** Sets the pool's lower size limit (POOL_MIN_BYTES or POOL_MIN_BYTES_NO_BUFFER) and returns the previous
 *  one; for tests of the other runtime's setting. */
export function setPoolMinBytes(bytes: number): number {
  const previous = poolMinBytes;
  poolMinBytes = bytes;
  return previous;
}

/** Arrays allocated during the current plain backward pass (null outside one). Kept by array, not by
 *  buffer: reading `.buffer` of a typed array of 64 bytes or less makes V8 copy it off its heap. */
let freshArrays: WeakSet<FloatArray> | null = null;

/** A zero-filled array of `size` elements. */
export function allocate(dtype: DType, size: number): FloatArray {
  if (size * itemSize(dtype) >= poolMinBytes) {
    const pooledArray = fromPool(dtype, size);
    if (pooledArray) return pooledArray.fill(0);
  }
  const a = dtype === "float64" ? new Float64Array(size) : new Float32Array(size);
  if (freshArrays) freshArrays.add(a);
  return a;
}

/**
 * Like allocate, for a result the caller overwrites entirely: large arrays skip the zero fill. The array
 * owns its whole ArrayBuffer (byteOffset 0, full length), as allocate's do.
 */
export function allocateUnfilled(dtype: DType, size: number): FloatArray {
  const bytes = size * itemSize(dtype);
  if (bytes < poolMinBytes) return allocate(dtype, size);
  const pooledArray = fromPool(dtype, size);
  if (pooledArray) return pooledArray;
  if (!NodeBuffer) return allocate(dtype, size);
  const { buffer } = NodeBuffer.allocUnsafeSlow(bytes);
  const a = dtype === "float64" ? new Float64Array(buffer, 0, size) : new Float32Array(buffer, 0, size);
  if (freshArrays) freshArrays.add(a);
  return a;
}

/**
 * Like allocateUnfilled, in pinned memory (the WebAssembly kernels' heap, wasm-heap.ts) where it can be had:
 * a pinned weight's gradient, which the gemm writes in place and a pinned SGD step reads in place. From
 * the pinned pool, else a new pinned array, else allocateUnfilled's.
 */
export function allocatePinnedUnfilled(dtype: DType, size: number): FloatArray {
  const bytes = size * itemSize(dtype);
  if (bytes < POOL_MIN_BYTES) return allocateUnfilled(dtype, size);
  const list = pinnedPool.get(bytes);
  let a: FloatArray | null | undefined = list?.pop();
  if (a) {
    pooledBytes -= bytes;
    if ((a instanceof Float64Array) !== (dtype === "float64")) a = dtype === "float64" ? new Float64Array(a.buffer, a.byteOffset, size) : new Float32Array(a.buffer, a.byteOffset, size);
  } else {
    a = K.pinArray(dtype === "float64" ? "float64" : "float32", size);
    if (!a) return allocateUnfilled(dtype, size);
  }
  if (freshArrays) freshArrays.add(a);
  return a;
}

/**
 * An Int32Array of `size` elements, not zero-filled, for a result the caller overwrites entirely (max
 * pooling's argmax indices); large ones come from the pool and own their whole buffer, so releaseBuffer
 * can take them back.
 */
export function allocateIndices(size: number): Int32Array {
  const buf = unfilledBuffer(size * 4);
  return buf ? new Int32Array(buf) : new Int32Array(size);
}

/** A Uint8Array of `size` elements, not zero-filled, pooled as allocateIndices (max pooling's window offsets). */
export function allocateWindowOffsets(size: number): Uint8Array {
  const buf = unfilledBuffer(size);
  return buf ? new Uint8Array(buf) : new Uint8Array(size);
}

/** A whole buffer of `bytes` the caller overwrites: from the pool, else Node's unfilled memory; null below
 *  the pool's floor or without Node's Buffer, where a fresh zeroed array does. */
function unfilledBuffer(bytes: number): ArrayBuffer | null {
  if (bytes < poolMinBytes) return null;
  return takeFromPool(bytes) ?? (NodeBuffer ? (NodeBuffer.allocUnsafeSlow(bytes).buffer as ArrayBuffer) : null);
}

// ---------------------------------------------------------------- the buffer pool

/** Dead buffers by byte length, for the next allocation of that size (a caching allocator). */
const pool = new Map<number, ArrayBuffer[]>();
/** Dead pinned arrays by byte length (each is its block of the kernels' heap: wasm-heap.ts). */
const pinnedPool = new Map<number, FloatArray[]>();
const pooled = new WeakSet<ArrayBuffer>();
let pooledBytes = 0;
let poolOn = true;

/**
 * Hands `a`'s buffer to the pool. The caller guarantees that nothing will read or write `a`, or any
 * view of its buffer, again. Views, shared memory and small buffers are left to the garbage collector.
 */
export function releaseBuffer(a: FloatArray | Int32Array | Uint8Array): void {
  // NOTE: the size test first: reading .buffer of a small array would move it off V8's heap
  if (!poolOn || a.byteLength < poolMinBytes) return;
  if (K.isWholePinned(a)) {
    if (a instanceof Int32Array || a instanceof Uint8Array || pooledBytes + a.byteLength > POOL_MAX_BYTES) return;
    let pinned = pinnedPool.get(a.byteLength);
    if (!pinned) pinnedPool.set(a.byteLength, (pinned = []));
    if (pinned.length >= POOL_PER_SIZE || pinned.some((b) => b.buffer === a.buffer)) return;
    pinned.push(a);
    pooledBytes += a.byteLength;
    return;
  }
  const buf = a.buffer;
  if (!(buf instanceof ArrayBuffer) || a.byteOffset !== 0 || a.byteLength !== buf.byteLength) return;
  if (pooled.has(buf) || pooledBytes + buf.byteLength > POOL_MAX_BYTES) return;
  let list = pool.get(buf.byteLength);
  if (!list) pool.set(buf.byteLength, (list = []));
  if (list.length >= POOL_PER_SIZE) return;
  list.push(buf);
  pooled.add(buf);
  pooledBytes += buf.byteLength;
}

function takeFromPool(bytes: number): ArrayBuffer | null {
  const buf = pool.get(bytes)?.pop();
  if (!buf) return null;
  pooled.delete(buf);
  pooledBytes -= buf.byteLength;
  return buf;
}

function fromPool(dtype: DType, size: number): FloatArray | null {
  const buf = takeFromPool(size * itemSize(dtype));
  if (!buf) return null;
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
  pinnedPool.clear();
  pooledBytes = 0;
}

/** Bytes the pool holds now, and how many buffers. */
export function bufferPoolSize(): { bytes: number; buffers: number } {
  let buffers = 0;
  for (const list of pool.values()) buffers += list.length;
  for (const list of pinnedPool.values()) buffers += list.length;
  return { bytes: pooledBytes, buffers };
}

// ---------------------------------------------------------------- donated gradients

/** The incoming gradient of the backward that runs now, when the pass proved it dead once that backward
 *  returns (see BackwardMemory.donate); null otherwise. */
let donated: Tensor | null = null;

/**
 * `g`'s array when the engine donated `g` to the running backward, else null. A backward that takes it may
 * write its result into it, elementwise (out[i] from g[i] and saved values at i), and return that array as a
 * gradient; at most one result takes it.
 * @example const out = donatedGradient(g) ?? allocateUnfilled(g.dtype, g.size)
 */
export function donatedGradient(g: Tensor): FloatArray | null {
  if (donated !== g) return null;
  donated = null;
  return g.data;
}

// ---------------------------------------------------------------- graph-private tensors

/** Arrays of tensors that only their graph's nodes reach (see releaseWithGraph). */
const graphPrivate = new WeakSet<FloatArray>();

/**
 * Declares that, once the caller returns, only the nodes of its graph reach `t` (an nn.Sequential's output
 * between two of its built-in layers): the plain backward that frees that graph hands t's buffer to the pool.
 * `keep` lists the tensors the caller hands out; when `t` shares memory with one of them (a view), nothing is
 * declared. A createGraph pass through the graph withdraws the declaration, since the graph it records may
 * keep `t`. Small arrays and tensors no recorded op made are left to the garbage collector.
 * @example releaseWithGraph(hidden, [input, result]) // hidden = conv(input), seen only by the next layer
 */
export function releaseWithGraph(t: Tensor, keep: readonly Tensor[] = []): void {
  if (!t.gradFn || t.data.byteLength < poolMinBytes) return;
  // NOTE: t is large, so its buffer is off V8's heap already (see freshArrays)
  for (const k of keep) if (k.data === t.data || k.data.buffer === t.data.buffer) return;
  graphPrivate.add(t.data);
}

/** The engine frees a node after a plain backward: a graph-private input goes to the pool. */
export function releaseIfGraphPrivate(t: Tensor): void {
  if (t.data.byteLength >= poolMinBytes && graphPrivate.delete(t.data)) releaseBuffer(t.data);
}

/** A recorded backward (createGraph) ran through a node: its inputs may live on in the new graph. */
export function keepBeyondGraph(t: Tensor): void {
  if (t.data.byteLength >= poolMinBytes) graphPrivate.delete(t.data);
}

// ---------------------------------------------------------------- leaf gradients

/**
 * Sets `t.grad` to null and, when backward allocated that gradient, hands its buffer to the pool. The caller
 * declares that nothing will use the old gradient again (an optimizer between steps). A gradient set by
 * user code, or made under createGraph, is only dropped.
 */
export function recycleGrad(t: Tensor): void {
  const g = t.grad;
  t.grad = null;
  if (g && g.poolable) {
    g.poolable = false;
    releaseBuffer(g.data);
  }
}

// ---------------------------------------------------------------- one backward pass

/**
 * The memory side of one plain backward pass (no createGraph, no grad() targets). Gradients made in such
 * a pass are never recorded or saved, and user code only sees leaf gradients (and, in a defineOp backward,
 * the gradients handed to it, which `forget` excludes), so a consumed gradient whose array the pass
 * allocated is dead once no stored gradient uses its memory.
 */
export class BackwardMemory {
  private readonly fresh = new WeakSet<FloatArray>();
  private readonly outer: WeakSet<FloatArray> | null;
  private readonly consumed: Tensor[] = [];

  constructor() {
    this.outer = freshArrays;
    freshArrays = this.fresh;
  }

  /** Stops tracking allocations (the pass is over, or failed). */
  end(): void {
    freshArrays = this.outer;
    donated = null;
  }

  /**
   * Offers `g`, the incoming gradient of the node whose built-in backward runs next, to that backward
   * (donatedGradient) when it is dead afterwards: the pass allocated it, and no stored gradient (the
   * walk's pending gradients, the leaves' contributions) uses its memory. The engine has already taken `g`
   * out of `stored`; `withdraw` ends the offer when the backward returns.
   */
  donate(g: Tensor, stored: Map<unknown, Tensor>, leafContributions: Map<Tensor, Tensor[]>): void {
    // NOTE: byteLength first: only arrays the pool would take are worth it (and see freshArrays)
    if (g.data.byteLength >= poolMinBytes && this.fresh.has(g.data) && !this.stillStored(g.data, stored, leafContributions)) donated = g;
  }

  withdraw(): void {
    donated = null;
  }

  /** Notes a gradient the pass has finished with. NOTE: byteLength, not buffer (see freshArrays). */
  consume(t: Tensor): void {
    if (t.data.byteLength >= poolMinBytes) this.consumed.push(t);
  }

  /** User code (a defineOp backward) saw these: they are never recycled or adopted. */
  forget(g: Tensor, returned: readonly (Tensor | null | undefined)[]): void {
    this.fresh.delete(g.data);
    for (const t of returned) if (t) this.fresh.delete(t.data);
  }

  /** Releases the consumed gradients that the pass allocated and that no stored gradient (the walk's
   *  pending gradients, the leaves' contributions) still uses. */
  releaseConsumed(stored: Map<unknown, Tensor>, leafContributions: Map<Tensor, Tensor[]>): void {
    if (this.consumed.length === 0) return;
    for (const t of this.consumed) {
      if (this.fresh.has(t.data) && !this.stillStored(t.data, stored, leafContributions)) releaseBuffer(t.data);
    }
    this.consumed.length = 0;
  }

  /** Whether a stored gradient uses the memory of `a`, a fresh array. Another fresh array never shares
   *  `a`'s buffer, so only the other arrays' buffers are read. */
  private stillStored(a: FloatArray, stored: Map<unknown, Tensor>, leafContributions: Map<Tensor, Tensor[]>): boolean {
    for (const t of stored.values()) if (this.sharesMemory(a, t.data)) return true;
    for (const list of leafContributions.values()) for (const t of list) if (this.sharesMemory(a, t.data)) return true;
    return false;
  }

  private sharesMemory(a: FloatArray, b: FloatArray): boolean {
    return a === b || (!this.fresh.has(b) && a.buffer === b.buffer);
  }

  /**
   * Accumulates each leaf's contributions into its `.grad`. A leaf without a gradient adopts its first
   * contribution without a copy when the pass allocated that array (so it is no view and owns its buffer)
   * and no other contribution is the same array (add's backward hands one tensor to both inputs) or a view
   * of its buffer; otherwise it gets a copy. Either way no two leaves, and no tensor of the user's, share a
   * gradient buffer. The contributions not adopted are dead afterwards; those the pass made go to the pool.
   */
  settleLeaves(leafContributions: Map<Tensor, Tensor[]>): void {
    // NOTE: only the buffers of non-fresh contributions are read, so the usual pass reads none
    const uses = new Map<FloatArray, number>();
    let otherBuffers: Set<ArrayBufferLike> | null = null;
    for (const list of leafContributions.values()) {
      for (const g of list) {
        if (this.fresh.has(g.data)) uses.set(g.data, (uses.get(g.data) ?? 0) + 1);
        else (otherBuffers ??= new Set()).add(g.data.buffer);
      }
    }
    let adopted: Set<FloatArray> | null = null;
    for (const [x, list] of leafContributions) {
      let start = 0;
      if (!x.grad) {
        const g = list[0];
        const own = uses.get(g.data) === 1 && !(otherBuffers && otherBuffers.has(g.data.buffer));
        if (own) (adopted ??= new Set()).add(g.data);
        x.grad = makeTensor(own ? g.data : g.data.slice(), g.shape);
        x.grad.poolable = true;
        start = 1;
      }
      const target = x.grad;
      for (let i = start; i < list.length; i++) {
        const g = list[i];
        K.binary("add", target.data, target.shape, g.data, g.shape, target.data, target.shape);
      }
    }
    for (const list of leafContributions.values()) {
      for (const g of list) {
        if (g.data.byteLength >= poolMinBytes && this.fresh.has(g.data) && !adopted?.has(g.data)) releaseBuffer(g.data);
      }
    }
  }
}
