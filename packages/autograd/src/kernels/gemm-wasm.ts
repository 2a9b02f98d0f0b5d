import type { FloatArray } from "./gemm-reference.ts";
import { gemmJs } from "./gemm-js.ts";
import { KC, loadWasmBackend, MAX_BYTES, type WasmBackend } from "./wasm-backend.ts";
import { growMemory, isPinned, scratchBlock } from "./wasm-heap.ts";
import { chunkSpan, JOB_PARAMS as P, MAX_CHUNKS, runJob, SLOTS } from "./wasm-parts.ts";
import { finishJob, postJob, readyHelper } from "./wasm-threads.ts";
export { wasmGemmFma } from "./wasm-backend.ts";

export {
  initWasmThreads, wasmGemmThreads, wasmHelperStats, wasmThreadingInfo,
  type HelperWorker, type InitWasmThreadsOptions, type WasmHelperState, type WasmThreadingInfo,
} from "./wasm-threads.ts";

/**
 * WebAssembly SIMD GEMM: the operands are copied into the module's memory with one memcpy each (pinned
 * ones are already there: wasm-heap.ts); the generated block kernels read A (either layout) and B stored k×n
 * in place, Bᵀ packed into NR-wide strips (gathers), and write a zero-padded C (for beta 1, a copy of C they
 * accumulate onto), whose valid region is copied back. Float32 uses f32x4 lanes, float64 f64x2.
 *
 * Both cores: where the memory is shared and the helper worker is up (wasm-threads.ts), a product of 2^20
 * multiply-adds or more is cut into chunks of C's columns (or rows) that the caller and the helper claim one
 * at a time (wasm-parts.ts): a helper that wakes late takes fewer chunks, one that never wakes none. Every
 * element of C is summed in the same order whoever computes it, so the results are the same bits as on one
 * thread.
 */

/** Products of at least this many multiply-adds are split with the helper worker (the native backend's
 *  threshold too: below it, waking the helper costs more than half the product). */
const SPLIT_MIN_WORK = 2 ** 20;
/** Multiply-adds per chunk of a split product: about 50 µs of one core, so a helper that starts late
 *  leaves the caller at most that much more than its share (2^20 and 2^22 were no better on the MLP's
 *  products: bench/NOTES.md, "WebAssembly gemm in browsers, and chunks"). */
const CHUNK_WORK = 2 ** 21;
const CACHE_LINE = 64;

let viewF32 = new Float32Array(0);
let viewF64 = new Float64Array(0);
/** The control array of products that run on the calling thread alone. */
const aloneControl = new Int32Array(SLOTS.COUNT);
const params = new Array<number>(P.COUNT).fill(0);

/** Where the time of the WebAssembly gemm goes (bench/wasm-epoch-profile.ts), collected while enabled. */
export interface WasmGemmProfile {
  /** Products, and of them those split with the helper. */
  products: number;
  splits: number;
  /** Milliseconds inside gemmWasm, and of them in split products. */
  ms: number;
  splitMs: number;
  /** Milliseconds of the split products' phases on the calling thread: copying the operands in, computing
   *  its chunks, waiting for the helper's last chunk, copying C out. */
  copyInMs: number;
  computeMs: number;
  waitMs: number;
  copyOutMs: number;
}

let profile: WasmGemmProfile | null = null;

/** Starts (true) or stops (false) collecting a WasmGemmProfile, clearing it; returns the profile so far
 *  (null while off). The timer calls cost about 0.2 µs a product. */
export function wasmGemmProfile(collect?: boolean): WasmGemmProfile | null {
  const current = profile && { ...profile };
  if (collect === true) profile = { products: 0, splits: 0, ms: 0, splitMs: 0, copyInMs: 0, computeMs: 0, waitMs: 0, copyOutMs: 0 };
  if (collect === false) profile = null;
  return current;
}

/** True when the WebAssembly SIMD kernel can run in this process. */
export function wasmGemmAvailable(): boolean {
  return loadWasmBackend() !== null;
}

/** A scratch block of at least `bytes` for the operands' copies, the padded C and the packed strips (its
 *  start in bytes, or -1 where memory cannot hold it); refreshes the typed views (growing shared memory
 *  hands out a longer buffer, unshared memory detaches the old one). */
function ensureScratch(be: WasmBackend, bytes: number): number {
  const start = scratchBlock(be, bytes);
  refreshViews(be);
  return start;
}

function refreshViews(be: WasmBackend): void {
  if (viewF32.buffer !== be.memory.buffer || viewF32.length === 0) {
    viewF32 = new Float32Array(be.memory.buffer);
    viewF64 = new Float64Array(be.memory.buffer);
  }
}

/** Operands of at least this many bytes are checked for pinned storage (reading `.buffer` of a small
 *  typed array makes V8 move it off its heap). */
const PIN_CHECK_BYTES = 4096;

/** The element offset in the kernels' memory of `x[offset]` when x is pinned and the kernel's reads, up
 *  to `overread` elements past its span, stay inside memory (growing it if needed); else -1. */
function pinnedOffset(be: WasmBackend, x: FloatArray, offset: number, span: number, overread: number, bytes: number): number {
  if (span * bytes < PIN_CHECK_BYTES || !isPinned(x)) return -1;
  const at = x.byteOffset / bytes + offset;
  const need = (at + span + overread) * bytes;
  return need <= MAX_BYTES && growMemory(be, need) ? at : -1;
}

export interface ChunkPlan {
  chunks: number;
  /** chunkSpan's rule: `bigFront` chunks of chunkSize from the start, `bigBack` of chunkSize from
   *  backStart to the extent rounded up to whole units, and chunks of tailSize between them (the last one
   *  ending at backStart). */
  chunkSize: number;
  bigFront: number;
  bigBack: number;
  backStart: number;
  tailSize: number;
}

/**
 * How a split product's extent (C's columns, or rows) is cut: whole units, about CHUNK_WORK multiply-adds a
 * chunk, and the middle two chunks' worth in chunks of half that size: the caller takes chunks from the
 * front, the helper from the back, and where they meet the one that runs out of work first waits at most
 * about half a chunk for the other; null where the extent is less than two units.
 */
export function planChunks(extent: number, unit: number, work: number): ChunkPlan | null {
  if (extent < 2 * unit) return null;
  const want = Math.min(MAX_CHUNKS >> 1, Math.max(2, Math.round(work / CHUNK_WORK)));
  const chunkSize = roundUp(Math.ceil(extent / want), unit);
  const tailSize = Math.max(unit, roundUp(chunkSize / 2, unit));
  const end = roundUp(extent, unit);
  if (tailSize >= chunkSize) {
    // chunks of one unit already: all of the same size
    return { chunks: Math.ceil(end / chunkSize), chunkSize, bigFront: 0, bigBack: 0, backStart: end, tailSize: chunkSize };
  }
  const big = Math.max(0, Math.floor(extent / chunkSize) - 2);
  const bigBack = big >> 1, bigFront = big - bigBack;
  const backStart = end - bigBack * chunkSize;
  const tails = Math.ceil((backStart - bigFront * chunkSize) / tailSize);
  return { chunks: big + tails, chunkSize, bigFront, bigBack, backStart, tailSize };
}

function roundUp(x: number, multiple: number): number {
  return Math.ceil(x / multiple) * multiple;
}

/** Runs every chunk of the job in `params` on the calling thread. */
function computeAlone(be: WasmBackend, chunks: number): void {
  Atomics.store(aloneControl, SLOTS.DONE, 0);
  Atomics.store(aloneControl, SLOTS.CLAIM, chunks);
  runJob(be.kernels, be.config, aloneControl, params, 0, 0, SLOTS, P);
}

/** Posts the job in `params` to the helper and takes its part of the chunks; false when the helper failed
 *  (the job's chunks may be half done: the caller redoes the job alone). */
function computeSplit(be: WasmBackend, ctl: Int32Array, chunks: number): boolean {
  const seq = postJob(ctl, params, chunks);
  runJob(be.kernels, be.config, ctl, params, 0, seq, SLOTS, P);
  if (profile) callerDoneAt = performance.now();
  return finishJob(ctl, chunks);
}

/** When the caller of the last split job ran out of chunks to claim (for the profile's waitMs). */
let callerDoneAt = 0;

/** C = beta*C + op(A) @ op(B) with the WebAssembly SIMD kernel; same contract as gemmReference.
 *  Throws where WebAssembly SIMD is unavailable (check wasmGemmAvailable first). */
export function gemmWasm(transA: boolean, transB: boolean, m: number, n: number, k: number,
  a: FloatArray, aOffset: number, lda: number, b: FloatArray, bOffset: number, ldb: number,
  c: FloatArray, cOffset: number, ldc: number, beta: 0 | 1): void {
  const be = loadWasmBackend();
  if (!be) throw new Error("gemmWasm: WebAssembly SIMD is not available in this runtime");
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (beta === 0) for (let i = 0; i < m; i++) c.fill(0, cOffset + i * ldc, cOffset + i * ldc + n);
    return;
  }
  const prof = profile;
  const tStart = prof ? performance.now() : 0;
  const isF32 = c instanceof Float32Array;
  const { mr, nr, bytes } = isF32 ? be.shapes.f32 : be.shapes.f64;
  const mPad = roundUp(m, mr);
  const nPad = roundUp(n, nr);
  const work = m * n * k;
  const ctl = work >= SPLIT_MIN_WORK ? readyHelper(be) : null;
  // Raw storage spans, copied as they are (gaps of lda > cols included).
  const aSpan = (transA ? k - 1 : m - 1) * lda + (transA ? m : k);
  const bSpan = (transB ? n - 1 : k - 1) * ldb + (transB ? k : n);
  // NOTE: whole strips read up to MR (NR) rows or values past a span, packed or in place; those values
  // land only in C's padding rows or columns, which are discarded. The slack keeps the reads inside memory.
  const aSlack = mr * (lda + 1), bSlack = nr * (ldb + 1);
  // pinned operands are read where they are, the others copied into the scratch block
  const aPinned = pinnedOffset(be, a, aOffset, aSpan, aSlack, bytes);
  const bPinned = pinnedOffset(be, b, bOffset, bSpan, bSlack, bytes);
  // a pinned C that is its own padded block (whole tiles, rows of n) and overlaps no operand read in place
  // is written where it is
  const cPinned = mPad === m && nPad === n && ldc === n ? pinnedOffset(be, c, cOffset, m * n, 0, bytes) : -1;
  const cInPlace = cPinned >= 0 && !overlaps(cPinned, m * n, aPinned, aSpan) && !overlaps(cPinned, m * n, bPinned, bSpan);
  // Chunks are ranges of C's columns, so that Bᵀ, the only operand packed, is packed once in all (each
  // chunk its part), unless C is too narrow to cut, or is written in place and B is read in place: then
  // rows, so that each thread writes one stretch of C (the rows of a pinned weight's gradient that its
  // optimizer step updates on the same thread). Column chunks are whole cache lines of C wide, so the
  // threads never write the same line.
  const columnUnit = Math.max(nr, CACHE_LINE / bytes);
  const byRows = ctl !== null && (n < 2 * columnUnit || (cInPlace && !transB && m >= 2 * mr));
  const plan = ctl ? planChunks(byRows ? m : n, byRows ? mr : columnUnit, work) : null;
  const { chunks, chunkSize, bigFront, bigBack, backStart, tailSize } = plan
    ?? { chunks: 1, chunkSize: byRows ? mPad : nPad, bigFront: 1, bigBack: 0, backStart: byRows ? mPad : nPad, tailSize: 0 };
  const split = chunks > 1;
  const align = CACHE_LINE / bytes;
  const rawA = 0;
  const rawB = rawA + (aPinned >= 0 ? 0 : roundUp(aSpan + aSlack, align));
  const cBase = rawB + (bPinned >= 0 ? 0 : roundUp(bSpan + bSlack, align));
  const fullSize = byRows && transB ? roundUp(nPad * k, align) : 0;
  const partSize = !byRows && transB ? roundUp(chunkSize * Math.min(k, KC), align) : 0;
  const full0 = cBase + (cInPlace ? 0 : roundUp(mPad * nPad, align));
  const part0 = full0 + fullSize;
  const full1 = part0 + partSize;
  const part1 = split ? full1 + fullSize : full1;
  const end = split ? part1 + partSize : full1;
  const start = end * bytes > MAX_BYTES ? -1 : ensureScratch(be, end * bytes);
  if (start < 0) {
    // Beyond what 32-bit wasm addresses comfortably hold: the JS kernel has no such limit.
    gemmJs(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, beta);
    return;
  }
  const base = start / bytes;
  params[P.kind] = 0;
  params[P.f64] = isF32 ? 0 : 1;
  params[P.transA] = transA ? 1 : 0;
  params[P.transB] = transB ? 1 : 0;
  params[P.m] = m; params[P.n] = n; params[P.k] = k; params[P.lda] = lda; params[P.ldb] = ldb;
  params[P.rawA] = aPinned >= 0 ? aPinned : base + rawA;
  params[P.rawB] = bPinned >= 0 ? bPinned : base + rawB;
  params[P.byRows] = byRows ? 1 : 0; params[P.chunkSize] = chunkSize; params[P.chunks] = chunks;
  params[P.bigFront] = bigFront; params[P.bigBack] = bigBack; params[P.backStart] = backStart; params[P.tailSize] = tailSize;
  params[P.cBase] = cInPlace ? cPinned : base + cBase; params[P.accumulate] = beta;
  params[P.full0] = base + full0; params[P.part0] = base + part0; params[P.full1] = base + full1; params[P.part1] = base + part1;
  const view: FloatArray = isF32 ? viewF32 : viewF64;
  if (aPinned < 0) view.set(a.subarray(aOffset, aOffset + aSpan), base + rawA);
  if (bPinned < 0) view.set(b.subarray(bOffset, bOffset + bSpan), base + rawB);
  // C in place keeps its values for beta 1; a helper that fails halfway leaves them changed, so its copy
  // is kept for the redo
  const cKept = cInPlace && beta === 1 && split ? c.slice(cOffset, cOffset + m * n) : null;
  if (beta === 1 && !cInPlace) copyRows(m, n, c, cOffset, ldc, view, base + cBase, nPad);
  const tIn = prof ? performance.now() : 0;
  let tComputed = tIn;
  if (split && ctl) {
    const done = computeSplit(be, ctl, chunks);
    if (prof) tComputed = callerDoneAt;
    if (!done) {
      // the helper failed: compute the whole product here
      if (cKept) c.set(cKept, cOffset);
      else if (beta === 1) copyRows(m, n, c, cOffset, ldc, view, base + cBase, nPad);
      computeAlone(be, chunks);
    }
  } else {
    computeAlone(be, chunks);
    if (prof) tComputed = performance.now();
  }
  const tWaited = prof ? performance.now() : 0;
  if (!cInPlace) copyRows(m, n, view, base + cBase, nPad, c, cOffset, ldc);
  if (prof) {
    const tEnd = performance.now();
    prof.products++;
    prof.ms += tEnd - tStart;
    if (split) {
      prof.splits++;
      prof.splitMs += tEnd - tStart;
      prof.copyInMs += tIn - tStart;
      prof.computeMs += tComputed - tIn;
      prof.waitMs += tWaited - tComputed;
      prof.copyOutMs += tEnd - tWaited;
    }
  }
}

/** Whether the element ranges [at, at + span) and [other, other + otherSpan) overlap; other < 0: not in memory. */
function overlaps(at: number, span: number, other: number, otherSpan: number): boolean {
  return other >= 0 && at < other + otherSpan && other < at + span;
}

/** m rows of n elements from `src` (rows `srcStride` apart) to `dst` (rows `dstStride` apart): C into the
 *  padded C block (beta 1) and its valid region back. Short rows are copied element by element: a view per
 *  row costs an object each (the logits' 128 rows of 10, every step). */
function copyRows(m: number, n: number, src: FloatArray, srcAt: number, srcStride: number, dst: FloatArray, dstAt: number, dstStride: number): void {
  if (srcStride === n && dstStride === n) {
    dst.set(src.subarray(srcAt, srcAt + m * n), dstAt);
    return;
  }
  for (let i = 0; i < m; i++) {
    const from = srcAt + i * srcStride;
    const to = dstAt + i * dstStride;
    if (n >= 64) dst.set(src.subarray(from, from + n), to);
    else for (let j = 0; j < n; j++) dst[to + j] = src[from + j];
  }
}

/** Pinned axpys of at least this many elements are split with the helper (about 25 µs of one core). */
const AXPY_SPLIT_MIN = 2 ** 16;
/** Chunks of a split axpy (at most 16: SLOTS.AXPY_DONE): halves, the helper's from the back; eight were no
 *  faster (bench/NOTES.md, "Owner computes"). */
const AXPY_CHUNKS = 2;
const alphaBits = new Int32Array(2);
const alphaF64 = new Float64Array(alphaBits.buffer);

/**
 * y[yOffset..+n) += alpha * x[xOffset..+n) in the kernels' memory, where x and y are pinned float32 arrays
 * (else false: nothing done): the same bits as elementwise.ts's axpy, without copying either in, and from
 * AXPY_SPLIT_MIN elements split with the helper. The caller takes the front of y and the helper the back,
 * as in split products, so a pinned weight's SGD step updates each half on the core whose products read it.
 */
export function axpyPinned(alpha: number, x: FloatArray, xOffset: number, y: FloatArray, yOffset: number, n: number): boolean {
  if (!(x instanceof Float32Array) || !(y instanceof Float32Array)) return false;
  const be = loadWasmBackend();
  if (!be?.shared || n < 2) return false;
  const xAt = pinnedOffset(be, x, xOffset, n, 0, 4);
  const yAt = pinnedOffset(be, y, yOffset, n, 0, 4);
  // overlapping at a shift, the loop reads elements it wrote: the TypeScript loop's order decides
  if (xAt < 0 || yAt < 0 || (xAt !== yAt && overlaps(yAt, n, xAt, n))) return false;
  const pairs = n >> 1;
  const ctl = n >= AXPY_SPLIT_MIN ? readyHelper(be) : null;
  const chunkSize = ctl ? roundUp(Math.ceil(2 * pairs / AXPY_CHUNKS), CACHE_LINE / 4) : 2 * pairs;
  const chunks = Math.ceil(2 * pairs / chunkSize);
  alphaF64[0] = alpha;
  params[P.kind] = 1;
  params[P.rawA] = xAt; params[P.rawB] = yAt; params[P.n] = 2 * pairs;
  params[P.alphaLo] = alphaBits[0]; params[P.alphaHi] = alphaBits[1];
  params[P.chunkSize] = chunkSize; params[P.chunks] = chunks; params[P.tailSize] = chunkSize;
  params[P.bigFront] = 0; params[P.bigBack] = 0; params[P.backStart] = 2 * pairs;
  if (!(ctl && chunks > 1)) computeAlone(be, chunks);
  else {
    for (let i = 0; i < chunks; i++) Atomics.store(ctl, SLOTS.AXPY_DONE + i, 0);
    if (!computeSplit(be, ctl, chunks)) {
      // the helper failed: the chunks it did not finish, and only those (an axpy cannot run twice), here
      const axpy = be.kernels.axpy;
      for (let i = 0; i < chunks; i++) {
        if (Atomics.load(ctl, SLOTS.AXPY_DONE + i) === 1) continue;
        const [at, size] = chunkSpan(i, chunks, chunkSize, 0, 0, 2 * pairs, chunkSize);
        axpy(alpha, (xAt + at) * 4, (yAt + at) * 4, Math.min(size, 2 * pairs - at) >> 1);
      }
    }
  }
  if (n & 1) y[yOffset + n - 1] += alpha * x[xOffset + n - 1];
  return true;
}
