/**
 * The WebAssembly kernels' memory as a heap: the gemm's scratch region and pinned arrays (storage the
 * kernels read in place, without copying it in) are blocks of it.
 *
 * Pinned arrays exist only where the memory is shared (a SharedArrayBuffer: growing it never detaches
 * the arrays already handed out). Each pinned array gets a SharedArrayBuffer object of its own over the
 * whole memory (`memory.grow(0)` makes a new one), so every view made from it (subarray, a tensor's
 * narrow) holds that object: its block goes back to the heap when the collector has taken the object,
 * that is, when no view of the block is left. Freed blocks return between tasks (FinalizationRegistry),
 * so a synchronous loop that pins a new array each step grows the heap; pinning stops at PIN_MAX_BYTES
 * (setPinMaxBytes) and pinArray returns null from there.
 */
import type { FloatArray } from "./gemm-reference.ts";
import { loadWasmBackend, MAX_BYTES, PAGE_BYTES, type WasmBackend } from "./wasm-backend.ts";

/** Blocks start on cache lines. */
const ALIGN = 64;
/** Bytes of pinned arrays the heap holds at most by default; beyond it pinArray returns null. */
export const PIN_MAX_BYTES = 2 ** 30;
let pinMaxBytes = PIN_MAX_BYTES;

interface FreeBlock { start: number; bytes: number }

/** Free blocks below `top`, by address, never adjacent (merged on free). */
const free: FreeBlock[] = [];
/** Sizes of the blocks in use, by start. */
const used = new Map<number, number>();
/** The end of the highest block in use: memory above it is free. */
let top = 0;
/** The end of the highest block ever handed out: memory above it was never written (still zero). */
let highWater = 0;
let pinnedBytes = 0;
/** The SharedArrayBuffer objects of pinned arrays, with the byte range pinArray handed out in each. */
const pinnedBuffers = new WeakMap<ArrayBufferLike, { start: number; bytes: number }>();
let registry: FinalizationRegistry<number> | undefined;

function roundUp(x: number, multiple: number): number {
  return Math.ceil(x / multiple) * multiple;
}

/** Grows the module's memory to at least `bytes`; false where the runtime refuses (out of memory). */
export function growMemory(be: WasmBackend, bytes: number): boolean {
  const have = be.memory.buffer.byteLength;
  if (have >= bytes) return true;
  try {
    be.memory.grow(Math.ceil((bytes - have) / PAGE_BYTES));
    return true;
  } catch {
    return false;
  }
}

/** A block of at least `bytes` (first fit, else above the top, growing memory); its start, or -1 where
 *  it would pass MAX_BYTES or the runtime cannot grow the memory. */
export function heapAlloc(be: WasmBackend, bytes: number): number {
  const size = Math.max(ALIGN, roundUp(bytes, ALIGN));
  for (let i = 0; i < free.length; i++) {
    const f = free[i];
    if (f.bytes < size) continue;
    const start = f.start;
    if (f.bytes === size) free.splice(i, 1);
    else { f.start += size; f.bytes -= size; }
    used.set(start, size);
    return start;
  }
  // the last free block may end at the top: extend it upwards
  const last = free[free.length - 1];
  const start = last && last.start + last.bytes === top ? last.start : top;
  if (start + size > MAX_BYTES || !growMemory(be, start + size)) return -1;
  if (last && start === last.start) free.pop();
  top = start + size;
  highWater = Math.max(highWater, top);
  used.set(start, size);
  return start;
}

/** Returns a block from heapAlloc to the heap. */
export function heapFree(start: number): void {
  const size = used.get(start);
  if (size === undefined) throw new Error(`wasm heap: no block in use at ${start}`);
  used.delete(start);
  if (start + size === top) {
    top = start;
    const last = free[free.length - 1];
    if (last && last.start + last.bytes === top) {
      top = last.start;
      free.pop();
    }
    return;
  }
  let i = 0;
  while (i < free.length && free[i].start < start) i++;
  const before = i > 0 ? free[i - 1] : undefined;
  const after = i < free.length ? free[i] : undefined;
  if (before && before.start + before.bytes === start) {
    before.bytes += size;
    if (after && before.start + before.bytes === after.start) {
      before.bytes += after.bytes;
      free.splice(i, 1);
    }
  } else if (after && start + size === after.start) {
    after.start = start;
    after.bytes += size;
  } else free.splice(i, 0, { start, bytes: size });
}

/** The gemm's scratch block: kept between products, traded for a larger one when a product needs more. */
let scratch: { start: number; bytes: number } | null = null;

/** The start of the gemm's scratch block of at least `bytes` (whole pages), or -1 where memory cannot hold it. */
export function scratchBlock(be: WasmBackend, bytes: number): number {
  if (scratch && scratch.bytes >= bytes) return scratch.start;
  if (scratch) heapFree(scratch.start);
  const size = Math.ceil(bytes / PAGE_BYTES) * PAGE_BYTES;
  const start = heapAlloc(be, size);
  scratch = start < 0 ? null : { start, bytes: size };
  return start;
}

/** What the heap holds: bytes in pinned arrays, blocks in use, the top and the free blocks below it. */
export function wasmHeapStats(): { pinnedBytes: number; blocks: number; top: number; freeBlocks: number; freeBytes: number } {
  return {
    pinnedBytes, blocks: used.size, top, freeBlocks: free.length,
    freeBytes: free.reduce((s, f) => s + f.bytes, 0),
  };
}

/** Sets the most bytes pinned arrays may hold (PIN_MAX_BYTES by default) and returns the previous limit. */
export function setPinMaxBytes(bytes: number): number {
  if (!(bytes >= 0)) throw new RangeError(`setPinMaxBytes: expected a number of bytes >= 0, got ${bytes}`);
  const previous = pinMaxBytes;
  pinMaxBytes = bytes;
  return previous;
}

/** Whether pinArray can pin here: the WebAssembly backend loads and its memory is shared. */
export function pinningAvailable(): boolean {
  return loadWasmBackend()?.shared === true;
}

/**
 * A zero-filled array of `size` elements in the kernels' memory, which the WebAssembly gemm reads in place;
 * null where pinning is unavailable (no shared WebAssembly memory) or the heap is full.
 */
export function pinArray(dtype: "float32" | "float64", size: number): FloatArray | null {
  const be = loadWasmBackend();
  if (!be?.shared) return null;
  const bytes = size * (dtype === "float64" ? 8 : 4);
  if (pinnedBytes + bytes > pinMaxBytes) return null;
  const written = highWater;
  const start = heapAlloc(be, bytes);
  if (start < 0) return null;
  // a buffer object of this array's own: the block is free once every view of it is gone
  be.memory.grow(0);
  const buffer = be.memory.buffer;
  // and the memory moves on to another, so that it does not keep this one alive
  be.memory.grow(0);
  const blockBytes = used.get(start) as number;
  pinnedBytes += blockBytes;
  pinnedBuffers.set(buffer, { start, bytes });
  registry ??= new FinalizationRegistry<number>((block) => {
    pinnedBytes -= used.get(block) ?? 0;
    heapFree(block);
  });
  registry.register(buffer, start);
  const a = dtype === "float64" ? new Float64Array(buffer, start, size) : new Float32Array(buffer, start, size);
  // memory the heap never handed out is still zero (and filling it would only touch its pages early)
  if (start < written) a.fill(0, 0, Math.min(size, Math.ceil((written - start) / a.BYTES_PER_ELEMENT)));
  return a;
}

/** Whether `a` is (a view of) a pinned array. */
export function isPinned(a: ArrayBufferView): boolean {
  return pinnedBuffers.has(a.buffer);
}

/** Whether `a` spans all of a pinned array, as pinArray handed it out (a buffer pool may take it back). */
export function isWholePinned(a: ArrayBufferView): boolean {
  const block = pinnedBuffers.get(a.buffer);
  return block !== undefined && block.start === a.byteOffset && block.bytes === a.byteLength;
}
