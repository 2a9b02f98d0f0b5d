import { gemmJs } from "./gemm-js.ts";
import { gemmReference, type FloatArray } from "./gemm-reference.ts";

/**
 * The optional native backend: packages/autograd/native/*.c, a Node-API addon that dlopens the
 * machine's OpenBLAS (or Accelerate) and calls cblas_sgemm / cblas_dgemm, and carries compiled
 * elementwise loops (see native-loops.ts). It exists only after `npx tapegrad-build-native` (in the
 * repository: `pnpm build:native`); without it (or outside Node, or without a BLAS) this module reports
 * "unavailable" and never throws on load.
 */

/** The addon's elementwise loops (native/elementwise.c); an addon built before they existed lacks them. */
export interface NativeLoops {
  /** out[i] = a[aOffset + i*aStride] op b[bOffset + i*bStride]; op is a code of NATIVE_BINARY_OPS
   *  (native-ops.ts); strides 0 or 1. */
  binary(op: number, a: FloatArray, aOffset: number, aStride: number, b: FloatArray, bOffset: number, bStride: number,
    out: FloatArray, outOffset: number, n: number): void;
  /** out[i] = f(x[i]); op is a code of NATIVE_UNARY_OPS (native-ops.ts); exp and log are libm.ts's. */
  unary(op: number, x: FloatArray, out: FloatArray, n: number): void;
  reluBackward(g: FloatArray, x: FloatArray, out: FloatArray, n: number): void;
  /** out[i] = g[i] * (y[i] * (1 - y[i])), each step rounded to the arrays' type. */
  sigmoidBackward(g: FloatArray, y: FloatArray, out: FloatArray, n: number): void;
  /** y[yOffset + i] += alpha * x[xOffset + i], computed in double. */
  axpy(alpha: number, x: FloatArray, xOffset: number, y: FloatArray, yOffset: number, n: number): void;
  sumAxis(x: FloatArray, outer: number, n: number, inner: number, out: FloatArray): void;
  logSoftmax(x: FloatArray, outer: number, n: number, inner: number, out: FloatArray): void;
  logSoftmaxBackward(g: FloatArray, out: FloatArray, outer: number, n: number, inner: number, gx: FloatArray): void;
}

/** The addon's convolution and pooling kernels (native/conv.c, native/pool.c); geometries are Int32Arrays
 *  (see those files), every array float32 for the convolutions, one float type for max pooling. */
export interface NativeCnnKernels {
  /** true where the CPU runs the convolution kernels (AVX-512F); the max-pooling loops run everywhere. */
  convAvailable: boolean;
  /** Floats of workspace pass 0 (forward), 1 (input gradient) or 2 (weight gradient) needs. */
  convWorkspace(pass: 0 | 1 | 2, geometry: Int32Array): number;
  convForward(geometry: Int32Array, x: Float32Array, weight: Float32Array, bias: Float32Array | null, out: Float32Array,
    workspace: Float32Array): void;
  convBackwardInput(geometry: Int32Array, gradOut: Float32Array, weight: Float32Array, gradInput: Float32Array, workspace: Float32Array): void;
  convBackwardWeight(geometry: Int32Array, x: Float32Array, gradOut: Float32Array, gradWeight: Float32Array,
    gradBias: Float32Array | null, workspace: Float32Array, accumulate: boolean): void;
  /** indices: flat indices within the plane, or window offsets of 2 × 2 windows (kernels/pool.ts maxPoolWindowOffsets). */
  maxPool2dForward(geometry: Int32Array, x: FloatArray, out: FloatArray, indices: Int32Array | Uint8Array): void;
  maxPool2dBackward(geometry: Int32Array, gradOut: FloatArray, indices: Int32Array | Uint8Array, gradInput: FloatArray): void;
  avgPool2dForward(geometry: Int32Array, x: FloatArray, out: FloatArray, countIncludePad: boolean): void;
  avgPool2dBackward(geometry: Int32Array, gradOut: FloatArray, gradInput: FloatArray, countIncludePad: boolean): void;
  /** s = sigmoid(x), out = its average pooling; gradInput = the pooling's gradient of gradOut times s (1 - s). */
  sigmoidAvgPool2dForward(geometry: Int32Array, x: FloatArray, s: FloatArray, out: FloatArray, countIncludePad: boolean): void;
  sigmoidAvgPool2dBackward(geometry: Int32Array, gradOut: FloatArray, s: FloatArray, gradInput: FloatArray, countIncludePad: boolean): void;
}

interface NativeAddon extends Partial<NativeLoops>, Partial<NativeCnnKernels> {
  gemm(transA: boolean, transB: boolean, m: number, n: number, k: number,
    a: FloatArray, aOffset: number, lda: number, b: FloatArray, bOffset: number, ldb: number,
    c: FloatArray, cOffset: number, ldc: number, beta: 0 | 1): void;
  setThreads(count: number): void;
  threads(): number;
  /** tile_gemm.c's register tiles for mid-size float32 products: on/off, and whether they are in use. */
  setTiles?(on: boolean): void;
  tiles?(): boolean;
  /** The tiles' vector width in floats (16: AVX-512, 8: AVX2, 0: none) and the work below which they take a product. */
  tilesInfo?(): { vector: number; maxWork: number };
  /** native/helper.c's counters (see HelperStats); `reset` restarts them from zero. */
  helperStats?(reset: boolean): HelperStats;
  /** The thread policy's bounds in multiply-adds: OpenBLAS's threads from the first, the helper split from the second. */
  threadedMinWork?: number;
  splitMinWork?: number;
  library: string;
  config: string;
}

// NOTE: threads are the addon's policy (native/blas_gemm.c): products of at least 2^24 multiply-adds use
// OpenBLAS's thread count (OPENBLAS_NUM_THREADS, else the cores), whose idle workers sleep at once instead
// of spinning for 0.1 s on the core the JavaScript needs; products of 2^20 up to that are split in two
// halves of C, one computed by the addon's helper thread (native/helper.c); smaller ones run on one
// thread. Results can differ in the last bits between thread counts, as with any threaded BLAS.
// Float32 NN, NT and TN products below 2^24 (2^29 with AVX-512) whose streamed operand fits the cache go to
// the addon's own register tiles (native/tile_gemm.c: AVX-512 where the CPU has it, else AVX2 + FMA)
// instead of BLAS: no packing, and the split hands out small column chunks, so a split result equals the
// one-thread result bit for bit. NN and TN products give the same bits in either width.

/** Where bin/build-native.mjs puts the addon, relative to this file (src/kernels or dist/kernels); the
 *  environment variable TAPEGRAD_NATIVE_ADDON names another file (one built with `--out`).
 *  NOTE: resolved from a variable, not a literal `new URL("…", import.meta.url)`, which webpack and Vite
 *  would try to bundle as an asset. */
const ADDON_PATH = "../../native/build/tapegrad_blas.node";

let addon: NativeAddon | null | undefined;
let unavailableReason = "";

/** Checks a few small products (every transpose, offsets, strides, beta 1, both dtypes) against the oracle,
 *  so a BLAS with a different integer width or a broken build is rejected instead of giving wrong answers. */
function probe(candidate: NativeAddon): boolean {
  const flags = [[false, false], [true, false], [false, true], [true, true]] as const;
  for (const float64 of [false, true]) {
    // Small integers: every product and sum is exact in float32, so equality is the test.
    const ints = (length: number, step: number, modulus: number): FloatArray => {
      const out = float64 ? new Float64Array(length) : new Float32Array(length);
      for (let i = 0; i < length; i++) out[i] = ((i * step) % modulus) - (modulus >> 1);
      return out;
    };
    for (const [transA, transB] of flags) {
      const m = 5, n = 6, k = 7, lda = (transA ? m : k) + 1, ldb = (transB ? k : n) + 2, ldc = n + 1;
      const a = ints(2 + (transA ? k : m) * lda, 7, 11);
      const b = ints(1 + (transB ? n : k) * ldb, 5, 13);
      const expected = ints(3 + m * ldc, 1, 3);
      const actual = expected.slice();
      candidate.gemm(transA, transB, m, n, k, a, 2, lda, b, 1, ldb, actual, 3, ldc, 1);
      gemmReference(transA, transB, m, n, k, a, 2, lda, b, 1, ldb, expected, 3, ldc, 1);
      for (let i = 0; i < expected.length; i++) if (actual[i] !== expected[i]) return false;
    }
  }
  return true;
}

function loadAddon(): NativeAddon | null {
  if (addon !== undefined) return addon;
  addon = null;
  // NOTE: no static node: imports, so this module (and gemm.ts) still loads in browsers and bundlers.
  const proc = (globalThis as { process?: NodeJS.Process }).process;
  const builtin = proc?.getBuiltinModule;
  if (!proc || typeof builtin !== "function") {
    unavailableReason = "native addons need Node.js ≥ 20.16";
    return addon;
  }
  try {
    const { existsSync } = proc.getBuiltinModule("node:fs");
    const { createRequire } = proc.getBuiltinModule("node:module");
    const { fileURLToPath } = proc.getBuiltinModule("node:url");
    const path = proc.env?.TAPEGRAD_NATIVE_ADDON || fileURLToPath(new URL(ADDON_PATH, import.meta.url));
    if (!existsSync(path)) {
      unavailableReason = `the addon is not built (${path} is missing; \`npx tapegrad-build-native\` builds it)`;
      return addon;
    }
    const candidate = createRequire(import.meta.url)(path) as NativeAddon;
    if (!probe(candidate)) {
      unavailableReason = `${candidate.library} gives wrong products (a 64-bit-integer BLAS?)`;
      return addon;
    }
    addon = candidate;
  } catch (error) {
    unavailableReason = `the addon does not load: ${(error as Error).message}`;
  }
  return addon;
}

/** The elementwise loops of the loaded addon, or null where it is unavailable or predates them. */
export function nativeAddonLoops(): NativeLoops | null {
  const loaded = loadAddon();
  return loaded && typeof loaded.axpy === "function" && typeof loaded.logSoftmaxBackward === "function" ? loaded as NativeLoops : null;
}

/** The convolution and pooling kernels of the loaded addon, or null where it is unavailable or predates them. */
export function nativeAddonCnn(): NativeCnnKernels | null {
  const loaded = loadAddon();
  return loaded && typeof loaded.convForward === "function" && typeof loaded.sigmoidAvgPool2dBackward === "function" ? loaded as NativeCnnKernels : null;
}

/** True when the native BLAS gemm is built, loads, and passes its probe in this process. */
export function nativeGemmAvailable(): boolean {
  return loadAddon() !== null;
}

/**
 * Threads the native gemm may use: OpenBLAS's count when the addon loaded (OPENBLAS_NUM_THREADS, else the
 * cores), 0 where the addon is unavailable or its BLAS cannot be told. With `count`, sets it for this
 * process (1 keeps every product on the calling thread) and returns the previous value.
 * @example nativeGemmThreads(1) // single-threaded gemm, as torch.set_num_threads(1)
 */
export function nativeGemmThreads(count?: number): number {
  const loaded = loadAddon();
  if (!loaded) return 0;
  const previous = loaded.threads();
  if (count !== undefined) {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`nativeGemmThreads: expected a positive integer, got ${count}`);
    if (previous > 0) loaded.setThreads(count);
  }
  return previous;
}

/**
 * Whether mid-size float32 products use the addon's register tiles (native/tile_gemm.c: AVX-512 or AVX2) rather
 * than BLAS: false where the addon is unavailable, predates them, or the CPU lacks AVX2 and FMA. With `on`, turns
 * them on or off for this process and returns the previous value (for comparisons; on is the default).
 * @example nativeGemmTiles(false) // every product through BLAS
 */
export function nativeGemmTiles(on?: boolean): boolean {
  const loaded = loadAddon();
  if (!loaded || !loaded.tiles || !loaded.setTiles) return false;
  const previous = loaded.tiles();
  if (on !== undefined) loaded.setTiles(on);
  return previous;
}

/**
 * The register tiles' vector width in floats (16 with AVX-512, 8 with AVX2) and the multiply-adds below which
 * they take a float32 product; null where the tiles are off or unavailable.
 * @example nativeGemmTilesInfo()?.vector // 16 on an AVX-512 machine
 */
export function nativeGemmTilesInfo(): { vector: number; maxWork: number } | null {
  const loaded = loadAddon();
  if (!loaded?.tiles?.() || !loaded.tilesInfo) return null;
  return loaded.tilesInfo();
}

/** What the native gemm's helper thread (native/helper.c) did with the products split between it and the caller. */
export interface HelperStats {
  /** Products (or their parts) posted to the helper. */
  posts: number;
  /** Posted parts the caller computed itself because the helper had not started them by then. */
  takenBack: number;
  /** The helper's start delays (post to start) of the parts it did start, summed, in microseconds. */
  lateUs: number;
  /** Those delays counted below 5, 20, 50, 100 and 300 µs, and from 300 µs up. */
  lateHistogram: number[];
  /** The callers' time inside split products, in milliseconds, and the part of it spent waiting for the helper. */
  splitMs: number;
  waitMs: number;
}

/**
 * The helper thread's counters since the process started or since the last reset; null where the addon is
 * unavailable or predates them. For profiling (bench/epoch-profile.ts); counting costs a few atomic adds
 * per split product.
 * @example nativeHelperStats(true); trainEpoch(); nativeHelperStats() // this epoch's splits
 */
export function nativeHelperStats(reset = false): HelperStats | null {
  const loaded = loadAddon();
  return loaded?.helperStats ? loaded.helperStats(reset) : null;
}

/** 2^24 for 16777216; other numbers as they are; "?" for an addon that does not say. */
function power(n: number | undefined): string {
  if (n === undefined) return "?";
  const e = Math.log2(n);
  return Number.isInteger(e) ? `2^${e}` : String(n);
}

/** One line about the native backend: the BLAS library, its config and threads, or why it is unavailable. */
export function nativeGemmInfo(): string {
  const loaded = loadAddon();
  if (!loaded) return `unavailable: ${unavailableReason}`;
  const threads = loaded.threads();
  return `${loaded.library}${loaded.config ? ` (${loaded.config})` : ""}, `
    + (threads > 1 ? `${threads} threads for products of ≥ ${power(loaded.threadedMinWork)} multiply-adds, 2 (split with a helper thread) from ${power(loaded.splitMinWork)}, 1 below` : `${threads} thread`)
    + (loaded.tiles?.() ? `; ${loaded.tilesInfo?.().vector === 16 ? "AVX-512" : "AVX2"} tiles for mid-size float32 products below `
      + `${power(loaded.tilesInfo?.().maxWork ?? loaded.threadedMinWork)}` : "");
}

/** C = beta*C + op(A) @ op(B) through the machine's BLAS; same contract as gemmReference.
 *  Throws where the addon is unavailable (check nativeGemmAvailable first). */
export function gemmNative(transA: boolean, transB: boolean, m: number, n: number, k: number,
  a: FloatArray, aOffset: number, lda: number, b: FloatArray, bOffset: number, ldb: number,
  c: FloatArray, cOffset: number, ldc: number, beta: 0 | 1): void {
  const loaded = loadAddon();
  if (!loaded) throw new Error(`gemmNative: ${unavailableReason}; run \`npx tapegrad-build-native\` (in the repository: \`pnpm build:native\`)`);
  if (m <= 0 || n <= 0) return;
  // BLAS rejects a stride narrower than its row (legal here when the rows overlap, or k = 0 with lda 0):
  // those rare shapes, and empty depths, take the TypeScript kernel.
  if (k <= 0 || lda < (transA ? m : k) || ldb < (transB ? k : n) || ldc < n) {
    gemmJs(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, beta);
    return;
  }
  loaded.gemm(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, beta);
}
