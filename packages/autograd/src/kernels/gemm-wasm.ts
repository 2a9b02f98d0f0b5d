import type { FloatArray } from "./gemm-reference.ts";
import { gemmJs } from "./gemm-js.ts";
import { KC, loadWasmBackend, MAX_BYTES, PAGE_BYTES, type WasmBackend } from "./wasm-backend.ts";
import { JOB_PARAMS as P, MAX_CHUNKS, runJob, SLOTS } from "./wasm-parts.ts";
import { dataReady, finishJob, postJob, readyHelper } from "./wasm-threads.ts";

export {
  initWasmThreads, wasmGemmThreads, wasmHelperStats, wasmThreadingInfo,
  type HelperWorker, type InitWasmThreadsOptions, type WasmHelperState, type WasmThreadingInfo,
} from "./wasm-threads.ts";

/**
 * WebAssembly SIMD GEMM: the operands are copied into the module's memory with one memcpy each, packed
 * there into MR- and NR-wide strips (vector copies or gathers, depending on the transpose), the generated
 * block kernel writes a zero-padded C (for beta 1, a copy of C it accumulates onto), and the valid region is
 * copied back. Float32 uses f32x4 lanes, float64 f64x2.
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
 *  leaves the caller at most that much more than its share (bench/NOTES.md, "WebAssembly gemm: chunks"). */
const CHUNK_WORK = 2 ** 21;
const CACHE_LINE = 64;

let viewF32 = new Float32Array(0);
let viewF64 = new Float64Array(0);
/** The control array of products that run on the calling thread alone. */
const aloneControl = new Int32Array(SLOTS.COUNT);
const params = new Array<number>(P.COUNT).fill(0);

/** True when the WebAssembly SIMD kernel can run in this process. */
export function wasmGemmAvailable(): boolean {
  return loadWasmBackend() !== null;
}

/** Grows memory to at least `bytes` and refreshes the typed views (growing detaches the old buffer, or,
 *  for shared memory, hands out a longer one). */
function ensureMemory(be: WasmBackend, bytes: number): void {
  const have = be.memory.buffer.byteLength;
  if (have < bytes) be.memory.grow(Math.ceil((bytes - have) / PAGE_BYTES));
  if (viewF32.buffer !== be.memory.buffer || viewF32.length === 0) {
    viewF32 = new Float32Array(be.memory.buffer);
    viewF64 = new Float64Array(be.memory.buffer);
  }
}

function roundUp(x: number, multiple: number): number {
  return Math.ceil(x / multiple) * multiple;
}

/** Runs every chunk of the job in `params` on the calling thread. */
function computeAlone(be: WasmBackend, chunks: number): void {
  Atomics.store(aloneControl, SLOTS.DONE, 0);
  Atomics.store(aloneControl, SLOTS.CLAIM, chunks);
  runJob(be.exports, be.config, aloneControl, params, 0, 0, SLOTS, P);
}

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
  const isF32 = c instanceof Float32Array;
  const { mr, nr, bytes } = isF32 ? be.shapes.f32 : be.shapes.f64;
  const mPad = roundUp(m, mr);
  const nPad = roundUp(n, nr);
  const work = m * n * k;
  const ctl = work >= SPLIT_MIN_WORK ? readyHelper(be) : null;
  // Chunks cut the operand that costs more to pack, so each thread packs only its chunks of it and all of
  // the other. A gathered operand (A, Bᵀ) counts four times a copied one (Aᵀ, B): gathers move one value
  // at a time, copies a vector. Column chunks are whole cache lines of C wide, so the threads never write
  // the same line.
  let byRows = m * (transA ? 1 : 4) > n * (transB ? 4 : 1);
  let chunks = 1;
  let chunkSize = 0;
  if (ctl) {
    const unit = (rows: boolean): number => (rows ? mr : Math.max(nr, CACHE_LINE / bytes));
    if ((byRows ? m : n) < 2 * unit(byRows)) byRows = !byRows;
    const extent = byRows ? m : n;
    if (extent >= 2 * unit(byRows)) {
      const want = Math.min(MAX_CHUNKS, Math.max(2, Math.round(work / CHUNK_WORK)));
      chunkSize = roundUp(Math.ceil(extent / want), unit(byRows));
      chunks = Math.ceil(extent / chunkSize);
    }
  }
  if (chunks === 1) chunkSize = byRows ? mPad : nPad;
  const split = chunks > 1;
  // Raw storage spans, copied as they are (gaps of lda > cols included).
  const aSpan = (transA ? k - 1 : m - 1) * lda + (transA ? m : k);
  const bSpan = (transB ? n - 1 : k - 1) * ldb + (transB ? k : n);
  // NOTE: packing whole strips reads up to W rows or W values past a span; those values land only in
  // C's padding rows or columns, which are discarded. The slack just keeps the reads inside memory.
  const align = CACHE_LINE / bytes;
  const rawA = 0;
  const rawB = rawA + roundUp(aSpan + mr * (lda + 1), align);
  const cBase = rawB + roundUp(bSpan + nr * (ldb + 1), align);
  const fullSize = roundUp(byRows ? nPad * k : mPad * k, align);
  const partSize = roundUp(chunkSize * Math.min(k, KC), align);
  const full0 = cBase + roundUp(mPad * nPad, align);
  const part0 = full0 + fullSize;
  const full1 = part0 + partSize;
  const part1 = split ? full1 + fullSize : full1;
  const end = split ? part1 + partSize : full1;
  if (end * bytes > MAX_BYTES) {
    // Beyond what 32-bit wasm addresses comfortably hold: the JS kernel has no such limit.
    gemmJs(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, beta);
    return;
  }
  ensureMemory(be, end * bytes);
  params[P.f64] = isF32 ? 0 : 1;
  params[P.transA] = transA ? 1 : 0;
  params[P.transB] = transB ? 1 : 0;
  params[P.m] = m; params[P.n] = n; params[P.k] = k; params[P.lda] = lda; params[P.ldb] = ldb;
  params[P.rawA] = rawA; params[P.rawB] = rawB;
  params[P.byRows] = byRows ? 1 : 0; params[P.chunkSize] = chunkSize; params[P.chunks] = chunks;
  params[P.cBase] = cBase; params[P.accumulate] = beta;
  params[P.full0] = full0; params[P.part0] = part0; params[P.full1] = full1; params[P.part1] = part1;
  // the helper wakes while the operands are copied in
  const seq = split && ctl ? postJob(ctl, params, chunks) : 0;
  const view: FloatArray = isF32 ? viewF32 : viewF64;
  view.set(a.subarray(aOffset, aOffset + aSpan), rawA);
  view.set(b.subarray(bOffset, bOffset + bSpan), rawB);
  const copyC = (): void => {
    if (nPad === n && ldc === n) view.set(c.subarray(cOffset, cOffset + m * n), cBase);
    else for (let i = 0; i < m; i++) view.set(c.subarray(cOffset + i * ldc, cOffset + i * ldc + n), cBase + i * nPad);
  };
  if (beta === 1) copyC();
  if (seq !== 0 && ctl) {
    dataReady(ctl, seq);
    runJob(be.exports, be.config, ctl, params, 0, seq & 0x7ffff, SLOTS, P);
    if (!finishJob(ctl, chunks)) {
      // the helper failed: compute the whole product here
      if (beta === 1) copyC();
      computeAlone(be, chunks);
    }
  } else {
    computeAlone(be, chunks);
  }
  if (nPad === n && ldc === n) {
    c.set(view.subarray(cBase, cBase + m * n), cOffset);
    return;
  }
  for (let i = 0; i < m; i++) {
    const src = cBase + i * nPad;
    const dst = cOffset + i * ldc;
    if (n >= 64) c.set(view.subarray(src, src + n), dst);
    else for (let j = 0; j < n; j++) c[dst + j] = view[src + j];
  }
}
