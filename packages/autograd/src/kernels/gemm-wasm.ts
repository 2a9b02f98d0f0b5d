import type { FloatArray } from "./gemm-reference.ts";
import { gemmJs } from "./gemm-js.ts";
import { f32Kernel, f64Kernel, gemmModuleBytes, type KernelShape } from "./wasm/gemm-module.ts";

/**
 * WebAssembly SIMD GEMM: the operands are copied into the module's memory with one memcpy each,
 * packed there into MR- and NR-wide strips (vector copies or gathers, depending on the transpose),
 * the generated block kernel accumulates into a zero-padded copy of C, and the valid region is
 * copied (or added, for beta 1) back. Float32 uses f32x4 lanes, float64 f64x2.
 *
 * Both cores: where the runtime has shared WebAssembly memory and Node's worker threads, the module's
 * memory is shared with one helper worker that instantiates the same module. A product of 2^20
 * multiply-adds or more is split by columns of C: the caller computes the left part while the helper
 * computes the right one, each packing into its own region of the memory. The helper claims its part
 * when it wakes; if the caller finishes first and the part is still unclaimed, the caller computes it
 * too, so a helper that wakes late costs nothing. Every element of C is summed in the same order
 * either way, so the results are the same bits as on one thread.
 */

/** Depth of one packed block: a kc×NR strip of B (4 KiB for float32) stays in L1 while every A strip
 *  of the block passes it (256 was slower on large squares: bench/NOTES.md, "WebAssembly gemm"). */
const KC = 128;
/** Rows of one A block (MC·KC elements, 64 KiB for float32, in L2); rounded down to whole tiles. */
const MC = 128;
const PAGE_BYTES = 65536;
const MAX_BYTES = 2 ** 31;
/** Products of at least this many multiply-adds are split with the helper worker (the native backend's
 *  threshold too: below it, waking the helper costs more than half the product). */
const SPLIT_MIN_WORK = 2 ** 20;

type BlockKernel = (mStrips: number, nStrips: number, kc: number, a: number, aRow: number, aStrip: number,
  b: number, bRow: number, bStrip: number, c: number, ldcBytes: number) => void;
type Packer = (src: number, ld: number, strips: number, kc: number, dst: number) => void;

interface WasmMemory { buffer: ArrayBuffer; grow(pages: number): number }
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
}

/** The export names of the kernel and the packers for each transpose of each operand, for one element type. */
interface KernelNames {
  kernel: string;
  /** A stored m×k (gathered), Aᵀ stored k×m (copied), B stored k×n (copied), Bᵀ stored n×k (gathered). */
  packA: string;
  packAT: string;
  packB: string;
  packBT: string;
}

interface TypedKernels {
  shape: KernelShape;
  names: KernelNames;
}

interface Backend {
  memory: WasmMemory;
  exports: Record<string, unknown>;
  f32: TypedKernels;
  f64: TypedKernels;
  /** The compiled module and whether its memory is shared (then a helper worker can instantiate it). */
  module: object;
  shared: boolean;
}

let backend: Backend | null | undefined;
let viewF32 = new Float32Array(0);
let viewF64 = new Float64Array(0);

function kernelNames(name: "F32" | "F64", shape: KernelShape): KernelNames {
  return {
    kernel: `gemm${name}`,
    packA: `gather${name}x${shape.mr}`,
    packAT: `copy${shape.mr * shape.bytes}`,
    packB: `copy${shape.nr * shape.bytes}`,
    packBT: `gather${name}x${shape.nr}`,
  };
}

/** Instantiates the kernel once; null where WebAssembly or its SIMD extension is missing. Prefers a
 *  shared memory (for the helper worker) and falls back to the module's own. */
function loadBackend(): Backend | null {
  if (backend !== undefined) return backend;
  backend = null;
  // NOTE: the project's TypeScript lib has no WebAssembly declarations, so the global is typed here.
  const api = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
  if (!api) return backend;
  const f32 = { shape: f32Kernel, names: kernelNames("F32", f32Kernel) };
  const f64 = { shape: f64Kernel, names: kernelNames("F64", f64Kernel) };
  try {
    const maxPages = MAX_BYTES / PAGE_BYTES;
    const bytes = gemmModuleBytes({ maxPages });
    if (typeof SharedArrayBuffer === "function" && api.validate(bytes)) {
      const memory = new api.Memory({ initial: 1, maximum: maxPages, shared: true });
      const module = new api.Module(bytes);
      const { exports } = new api.Instance(module, { env: { memory } });
      backend = { memory, exports, f32, f64, module, shared: true };
      return backend;
    }
  } catch {
    // no shared memory here (a browser page that is not cross-origin isolated): one thread
  }
  try {
    const bytes = gemmModuleBytes();
    if (!api.validate(bytes)) return backend;
    const module = new api.Module(bytes);
    const { exports } = new api.Instance(module, {});
    backend = { memory: exports.memory as WasmMemory, exports, f32, f64, module, shared: false };
  } catch {
    backend = null;
  }
  return backend;
}

/** True when the WebAssembly SIMD kernel can run in this process. */
export function wasmGemmAvailable(): boolean {
  return loadBackend() !== null;
}

/** Grows memory to at least `bytes` and refreshes the typed views (growing detaches the old buffer, or,
 *  for shared memory, hands out a longer one). */
function ensureMemory(be: Backend, bytes: number): void {
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

/**
 * One thread's part of a product: rows [i0, i0 + m) and columns [j0, j0 + nCols) of C, from the raw
 * copies of A and B in memory (element offsets rawA, rawB) through its own packed strips (packedA,
 * packedB) into its own C block (cBase; m and nCols rounded up to whole tiles), which it zero-fills
 * first: its cache lines then start in the cache of the core that computes it. Offsets are in elements.
 * NOTE: the helper worker runs this function's source text (see HELPER_SOURCE), so it uses nothing but
 * its arguments: no closures, no imports.
 */
function runPart(exports: Record<string, unknown>, names: KernelNames, mr: number, nr: number, bytes: number,
  kcMax: number, mcMax: number, transA: boolean, transB: boolean, k: number, lda: number, ldb: number,
  rawA: number, rawB: number, i0: number, m: number, j0: number, nCols: number, packedA: number, packedB: number,
  cBase: number): void {
  const kernel = exports[names.kernel] as BlockKernel;
  const packA = exports[transA ? names.packAT : names.packA] as Packer;
  const packB = exports[transB ? names.packBT : names.packB] as Packer;
  const mPad = Math.ceil(m / mr) * mr;
  const nPad = Math.ceil(nCols / nr) * nr;
  const mcBlock = Math.floor(mcMax / mr) * mr;
  new Uint8Array((exports.memory as { buffer: ArrayBuffer }).buffer, cBase * bytes, mPad * nPad * bytes).fill(0);
  // Element (x, p) sits at x*sx + p*sp in storage; the part's first row and column move the starts.
  const aStart = rawA + (transA ? i0 : i0 * lda);
  const bStart = rawB + (transB ? j0 * ldb : j0);
  for (let p0 = 0; p0 < k; p0 += kcMax) {
    const kc = Math.min(kcMax, k - p0);
    const aBlock = (packedA + p0 * mPad) * bytes;
    const bBlock = (packedB + p0 * nPad) * bytes;
    packA((aStart + (transA ? p0 * lda : p0)) * bytes, lda * bytes, mPad / mr, kc, aBlock);
    packB((bStart + (transB ? p0 : p0 * ldb)) * bytes, ldb * bytes, nPad / nr, kc, bBlock);
    for (let r = 0; r < mPad; r += mcBlock) {
      const mc = Math.min(mcBlock, mPad - r);
      kernel(mc / mr, nPad / nr, kc, aBlock + r * kc * bytes, mr * bytes, mr * kc * bytes,
        bBlock, nr * bytes, nr * kc * bytes, (cBase + r * nPad) * bytes, nPad * bytes);
    }
  }
}

// ---------------------------------------------------------------- the helper worker

/** Slots of the control array the caller and the helper share (Int32, its own SharedArrayBuffer). */
const SEQ = 0; // bumped for every posted part
const CLAIM = 1; // 0 while the posted part is open, 1 once the caller or the helper took it
const DONE = 2; // 1 once the helper finished the part it claimed
const READY = 3; // 1 once the helper instantiated the module
const FAILED = 4; // 1 after the helper threw
const HELPER_PARTS = 5; // parts the helper computed (statistics)
const DATA = 6; // the SEQ of the latest part whose operands the caller has copied into memory
const PARAMS = 8; // f64, transA, transB, k, lda, ldb, rawA, rawB, i0, m, j0, nCols, packedA, packedB, cBase
const PARAM_COUNT = 15;
const CONTROL_SLOTS = PARAMS + PARAM_COUNT;

/** The helper's program (CommonJS, evaluated by Node's Worker): it waits for a part, claims it, runs it. */
const HELPER_SOURCE = `
var __name = function (f) { return f; }; // esbuild's keepNames helper, in case the source mentions it
const { workerData } = require("node:worker_threads");
const { module, memory, control, names, shapes, kc, mc } = workerData;
const runPart = new Function("return (" + workerData.runPart + ")")();
const ctl = new Int32Array(control);
const { exports } = new WebAssembly.Instance(module, { env: { memory } });
let seen = Atomics.load(ctl, ${SEQ});
Atomics.store(ctl, ${READY}, 1);
for (;;) {
  Atomics.wait(ctl, ${SEQ}, seen);
  const seq = Atomics.load(ctl, ${SEQ});
  if (seq === seen) continue;
  seen = seq;
  if (Atomics.compareExchange(ctl, ${CLAIM}, 0, 1) !== 0) continue;
  // the part claimed is the latest posted (the caller posts no other until this one is done), which may
  // be newer than the one that woke this thread
  seen = Atomics.load(ctl, ${SEQ});
  // the caller posts a part before it copies the operands in (the wake-up overlaps the copy): wait for them
  while (Atomics.load(ctl, ${DATA}) !== seen) {}
  try {
    const p = [];
    for (let i = 0; i < ${PARAM_COUNT}; i++) p.push(Atomics.load(ctl, ${PARAMS} + i));
    const t = p[0];
    runPart(exports, names[t], shapes[t].mr, shapes[t].nr, shapes[t].bytes, kc, mc, p[1] === 1, p[2] === 1,
      p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13], p[14]);
    Atomics.add(ctl, ${HELPER_PARTS}, 1);
  } catch (error) {
    Atomics.store(ctl, ${FAILED}, 1);
  }
  Atomics.store(ctl, ${DONE}, 1);
  Atomics.notify(ctl, ${DONE});
}
`;

interface Helper { control: Int32Array; worker: { unref(): void } }

let helper: Helper | null | undefined;
let helperThreads: number | undefined;

/** Threads the wasm gemm uses: TAPEGRAD_WASM_THREADS, else 2 where the machine has two cores or more. */
function defaultThreads(): number {
  const proc = (globalThis as { process?: NodeJS.Process }).process;
  const env = proc?.env?.TAPEGRAD_WASM_THREADS;
  if (env !== undefined && env !== "") {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`TAPEGRAD_WASM_THREADS=${env}: expected a positive integer`);
    return Math.min(n, 2);
  }
  try {
    const os = proc?.getBuiltinModule?.("node:os");
    return os && os.availableParallelism() >= 2 ? 2 : 1;
  } catch {
    return 1;
  }
}

/**
 * Threads the WebAssembly gemm may use: 2 (the caller and one helper worker) or 1. The helper needs
 * shared WebAssembly memory and Node's worker threads; elsewhere this stays 1. With `count`, sets it for
 * this process (1 keeps every product on the calling thread) and returns the
 * previous value. TAPEGRAD_WASM_THREADS sets the default.
 * @example wasmGemmThreads(1) // single-threaded wasm gemm
 */
export function wasmGemmThreads(count?: number): number {
  helperThreads ??= defaultThreads();
  const be = loadBackend();
  const previous = be?.shared ? helperThreads : 1;
  if (count !== undefined) {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`wasmGemmThreads: expected a positive integer, got ${count}`);
    // NOTE: a helper already started stays, asleep in Atomics.wait, for a later wasmGemmThreads(2)
    helperThreads = Math.min(count, 2);
  }
  return previous;
}

/** Parts posted to the helper worker, how many it computed (the caller took the others back because
 *  the helper had not woken yet), and whether it is up. */
export function wasmHelperStats(): { ready: boolean; posted: number; parts: number } {
  if (!helper) return { ready: false, posted: 0, parts: 0 };
  return { ready: Atomics.load(helper.control, READY) === 1, posted: Atomics.load(helper.control, SEQ), parts: Atomics.load(helper.control, HELPER_PARTS) };
}

/** The helper, started on first use; null where it cannot run (then products stay on one thread). */
function getHelper(be: Backend): Helper | null {
  if (helper !== undefined) return helper;
  helper = null;
  const proc = (globalThis as { process?: NodeJS.Process }).process;
  if (!be.shared || typeof proc?.getBuiltinModule !== "function") return helper;
  try {
    const { Worker } = proc.getBuiltinModule("node:worker_threads");
    const control = new Int32Array(new SharedArrayBuffer(CONTROL_SLOTS * 4));
    const worker = new Worker(HELPER_SOURCE, {
      eval: true,
      // NOTE: no --import tsx or other loader in the helper: it runs plain JavaScript
      execArgv: [],
      workerData: {
        module: be.module, memory: be.memory, control: control.buffer, runPart: runPart.toString(),
        names: [be.f32.names, be.f64.names], shapes: [be.f32.shape, be.f64.shape], kc: KC, mc: MC,
      },
    });
    worker.on("error", () => Atomics.store(control, FAILED, 1));
    worker.unref();
    helper = { control, worker };
  } catch {
    helper = null;
  }
  return helper;
}

/** Posts the second part to the helper before its operands are in memory; returns its SEQ, which the
 *  caller stores in DATA once they are, or 0 if the helper is not up (then the caller runs both parts). */
function postPart(h: Helper, params: number[]): number {
  const ctl = h.control;
  if (Atomics.load(ctl, READY) !== 1 || Atomics.load(ctl, FAILED) === 1) return 0;
  for (let i = 0; i < params.length; i++) Atomics.store(ctl, PARAMS + i, params[i]);
  Atomics.store(ctl, DONE, 0);
  Atomics.store(ctl, CLAIM, 0);
  const seq = Atomics.add(ctl, SEQ, 1) + 1;
  Atomics.notify(ctl, SEQ, 1);
  return seq;
}

/** After the caller's own part: takes the posted part back if the helper has not claimed it (returns
 *  true: the caller must run it), else waits for the helper to finish it. */
function takeBackOrWait(h: Helper): boolean {
  const ctl = h.control;
  if (Atomics.compareExchange(ctl, CLAIM, 0, 1) === 0) return true;
  while (Atomics.load(ctl, DONE) === 0) Atomics.wait(ctl, DONE, 0, 1000);
  if (Atomics.load(ctl, FAILED) === 1) throw new Error("gemmWasm: the helper worker failed; call wasmGemmThreads(1) to stay on one thread");
  return false;
}

/** C = beta*C + op(A) @ op(B) with the WebAssembly SIMD kernel; same contract as gemmReference.
 *  Throws where WebAssembly SIMD is unavailable (check wasmGemmAvailable first). */
export function gemmWasm(transA: boolean, transB: boolean, m: number, n: number, k: number,
  a: FloatArray, aOffset: number, lda: number, b: FloatArray, bOffset: number, ldb: number,
  c: FloatArray, cOffset: number, ldc: number, beta: 0 | 1): void {
  const be = loadBackend();
  if (!be) throw new Error("gemmWasm: WebAssembly SIMD is not available in this runtime");
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (beta === 0) for (let i = 0; i < m; i++) c.fill(0, cOffset + i * ldc, cOffset + i * ldc + n);
    return;
  }
  const isF32 = c instanceof Float32Array;
  const kernels = isF32 ? be.f32 : be.f64;
  const { mr, nr, bytes } = kernels.shape;
  // Two parts where the helper can take one: split the rows of C, or its columns, so that each thread
  // packs half of the operand that costs more to pack and all of the other. A gathered operand (A, Bᵀ)
  // counts four times a copied one (Aᵀ, B): gathers move one value at a time, copies a vector.
  helperThreads ??= defaultThreads();
  const h = helperThreads > 1 && m * n * k >= SPLIT_MIN_WORK ? getHelper(be) : null;
  const packCostA = m * (transA ? 1 : 4);
  const packCostB = n * (transB ? 4 : 1);
  const preferRows = packCostA > packCostB || n < 2 * nr;
  type Part = { i0: number; mRows: number; j0: number; nCols: number; mPad: number; nPad: number; packedA: number; packedB: number; cBase: number };
  const split: [number, number, number, number][] = []; // i0, rows, j0, columns
  if (h && preferRows && m >= 2 * mr) {
    const top = roundUp(Math.ceil(m / 2), mr);
    split.push([0, top, 0, n], [top, m - top, 0, n]);
  } else if (h && n >= 2 * nr) {
    const left = roundUp(Math.ceil(n / 2), nr);
    split.push([0, m, 0, left], [0, m, left, n - left]);
  } else {
    split.push([0, m, 0, n]);
  }
  // Raw storage spans, copied as they are (gaps of lda > cols included).
  const aSpan = (transA ? k - 1 : m - 1) * lda + (transA ? m : k);
  const bSpan = (transB ? n - 1 : k - 1) * ldb + (transB ? k : n);
  // NOTE: packing whole strips reads up to W rows or W values past a span; those values land only in
  // C's padding rows or columns, which are discarded. The slack just keeps the reads inside memory.
  const rawA = 0;
  const rawB = rawA + roundUp(aSpan + mr * (lda + 1), 4);
  // each part: its packed A, packed B and padded C
  const layout: Part[] = [];
  let end = rawB + roundUp(bSpan + nr * (ldb + 1), 4);
  for (const [i0, mRows, j0, nCols] of split) {
    const mPad = roundUp(mRows, mr);
    const nPad = roundUp(nCols, nr);
    const packedA = end;
    const packedB = packedA + roundUp(mPad * k, 4);
    const cBase = packedB + roundUp(nPad * k, 4);
    end = cBase + roundUp(mPad * nPad, 4);
    layout.push({ i0, mRows, j0, nCols, mPad, nPad, packedA, packedB, cBase });
  }
  const needBytes = end * bytes;
  if (needBytes > MAX_BYTES) {
    // Beyond what 32-bit wasm addresses comfortably hold: the JS kernel has no such limit.
    gemmJs(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, beta);
    return;
  }
  ensureMemory(be, needBytes);
  const second = layout[1];
  const posted = second !== undefined && h !== null ? postPart(h, [isF32 ? 0 : 1, transA ? 1 : 0, transB ? 1 : 0,
    k, lda, ldb, rawA, rawB, second.i0, second.mRows, second.j0, second.nCols, second.packedA, second.packedB, second.cBase]) : 0;
  const view: FloatArray = isF32 ? viewF32 : viewF64;
  view.set(a.subarray(aOffset, aOffset + aSpan), rawA);
  view.set(b.subarray(bOffset, bOffset + bSpan), rawB);
  if (posted) Atomics.store(h!.control, DATA, posted);

  const run = (p: Part): void => runPart(be.exports, kernels.names, mr, nr, bytes, KC, MC,
    transA, transB, k, lda, ldb, rawA, rawB, p.i0, p.mRows, p.j0, p.nCols, p.packedA, p.packedB, p.cBase);
  run(layout[0]);
  if (second && (!posted || takeBackOrWait(h!))) run(second);

  for (const { i0, mRows, j0, nCols, nPad, cBase } of layout) {
    if (beta === 0 && nPad === n && ldc === n) {
      c.set(view.subarray(cBase, cBase + mRows * n), cOffset + i0 * ldc);
      continue;
    }
    for (let i = 0; i < mRows; i++) {
      const src = cBase + i * nPad;
      const dst = cOffset + (i0 + i) * ldc + j0;
      if (beta === 0 && nCols >= 64) {
        c.set(view.subarray(src, src + nCols), dst);
      } else if (beta === 0) {
        for (let j = 0; j < nCols; j++) c[dst + j] = view[src + j];
      } else {
        for (let j = 0; j < nCols; j++) c[dst + j] += view[src + j];
      }
    }
  }
}
