import type { FloatArray } from "./gemm-reference.ts";
import { gemmJs } from "./gemm-js.ts";
import { f32Kernel, f64Kernel, gemmModuleBytes, type KernelShape } from "./wasm/gemm-module.ts";

/**
 * WebAssembly SIMD GEMM: the operands are copied into the module's memory with one memcpy each,
 * packed there into MR- and NR-wide strips (vector copies or gathers, depending on the transpose),
 * the generated block kernel accumulates into a zero-padded copy of C, and the valid region is
 * copied (or added, for beta 1) back. Float32 uses f32x4 lanes, float64 f64x2.
 */

/** Depth of one packed block: a kc×NR strip of B (4 KiB for float32) stays in L1 while every A strip
 *  of the block passes it. 128 measured faster than 256 for 512² and 1024² (AMD EPYC, V8 11.3). */
const KC = 128;
/** Rows of one A block (MC·KC elements, 64 KiB for float32, in L2); rounded down to whole tiles. */
const MC = 128;
const PAGE_BYTES = 65536;
const MAX_BYTES = 2 ** 31;

type BlockKernel = (mStrips: number, nStrips: number, kc: number, a: number, aRow: number, aStrip: number,
  b: number, bRow: number, bStrip: number, c: number, ldcBytes: number) => void;
type Packer = (src: number, ld: number, strips: number, kc: number, dst: number) => void;

interface WasmMemory { buffer: ArrayBuffer; grow(pages: number): number }
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}

/** The kernel and the packer for each transpose of each operand, for one element type. */
interface TypedKernels {
  shape: KernelShape;
  kernel: BlockKernel;
  /** A stored m×k (gathered), Aᵀ stored k×m (copied), B stored k×n (copied), Bᵀ stored n×k (gathered). */
  packA: Packer;
  packAT: Packer;
  packB: Packer;
  packBT: Packer;
}

interface Backend {
  memory: WasmMemory;
  f32: TypedKernels;
  f64: TypedKernels;
}

let backend: Backend | null | undefined;
let viewF32 = new Float32Array(0);
let viewF64 = new Float64Array(0);

/** Instantiates the kernel once; null where WebAssembly or its SIMD extension is missing. */
function loadBackend(): Backend | null {
  if (backend !== undefined) return backend;
  backend = null;
  // NOTE: the project's TypeScript lib has no WebAssembly declarations, so the global is typed here.
  const api = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
  if (!api) return backend;
  try {
    const bytes = gemmModuleBytes();
    if (!api.validate(bytes)) return backend;
    const { exports } = new api.Instance(new api.Module(bytes), {});
    const typed = (name: "F32" | "F64", shape: KernelShape): TypedKernels => ({
      shape,
      kernel: exports[`gemm${name}`] as BlockKernel,
      packA: exports[`gather${name}x${shape.mr}`] as Packer,
      packAT: exports[`copy${shape.mr * shape.bytes}`] as Packer,
      packB: exports[`copy${shape.nr * shape.bytes}`] as Packer,
      packBT: exports[`gather${name}x${shape.nr}`] as Packer,
    });
    backend = { memory: exports.memory as WasmMemory, f32: typed("F32", f32Kernel), f64: typed("F64", f64Kernel) };
  } catch {
    backend = null;
  }
  return backend;
}

/** True when the WebAssembly SIMD kernel can run in this process. */
export function wasmGemmAvailable(): boolean {
  return loadBackend() !== null;
}

/** Grows memory to at least `bytes` and refreshes the typed views (growing detaches the old buffer). */
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
  const kernel = kernels.kernel;
  // Strips whose W values are contiguous per depth step (Aᵀ, B) are vector copies; the others gathers.
  const packA = transA ? kernels.packAT : kernels.packA;
  const packB = transB ? kernels.packBT : kernels.packB;
  const mPad = roundUp(m, mr);
  const nPad = roundUp(n, nr);
  // Raw storage spans, copied as they are (gaps of lda > cols included).
  const aSpan = (transA ? k - 1 : m - 1) * lda + (transA ? m : k);
  const bSpan = (transB ? n - 1 : k - 1) * ldb + (transB ? k : n);
  // NOTE: packing whole strips reads up to W rows or W values past a span; those values land only in
  // C's padding rows or columns, which are discarded. The slack just keeps the reads inside memory.
  const rawA = 0;
  const rawB = rawA + roundUp(aSpan + mr * (lda + 1), 4);
  const packedA = rawB + roundUp(bSpan + nr * (ldb + 1), 4);
  const packedB = packedA + mPad * k;
  const cBase = packedB + nPad * k;
  const needBytes = (cBase + mPad * nPad) * bytes;
  if (needBytes > MAX_BYTES) {
    // Beyond what 32-bit wasm addresses comfortably hold: the JS kernel has no such limit.
    gemmJs(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, beta);
    return;
  }
  ensureMemory(be, needBytes);
  const view: FloatArray = isF32 ? viewF32 : viewF64;
  view.set(a.subarray(aOffset, aOffset + aSpan), rawA);
  view.set(b.subarray(bOffset, bOffset + bSpan), rawB);
  view.fill(0, cBase, cBase + mPad * nPad);

  const ldcBytes = nPad * bytes;
  const mcBlock = Math.floor(MC / mr) * mr;
  for (let p0 = 0; p0 < k; p0 += KC) {
    const kc = Math.min(KC, k - p0);
    const aBlock = (packedA + p0 * mPad) * bytes;
    const bBlock = (packedB + p0 * nPad) * bytes;
    // Element (x, p) sits at x*sx + p*sp in storage; start each packer at depth p0.
    packA((rawA + (transA ? p0 * lda : p0)) * bytes, lda * bytes, mPad / mr, kc, aBlock);
    packB((rawB + (transB ? p0 : p0 * ldb)) * bytes, ldb * bytes, nPad / nr, kc, bBlock);
    for (let i0 = 0; i0 < mPad; i0 += mcBlock) {
      const mc = Math.min(mcBlock, mPad - i0);
      kernel(mc / mr, nPad / nr, kc, aBlock + i0 * kc * bytes, mr * bytes, mr * kc * bytes,
        bBlock, nr * bytes, nr * kc * bytes, (cBase + i0 * nPad) * bytes, ldcBytes);
    }
  }

  if (beta === 0 && nPad === n && ldc === n) {
    c.set(view.subarray(cBase, cBase + m * n), cOffset);
    return;
  }
  for (let i = 0; i < m; i++) {
    const src = cBase + i * nPad;
    const dst = cOffset + i * ldc;
    if (beta === 0 && n >= 64) {
      c.set(view.subarray(src, src + n), dst);
    } else if (beta === 0) {
      for (let j = 0; j < n; j++) c[dst + j] = view[src + j];
    } else {
      for (let j = 0; j < n; j++) c[dst + j] += view[src + j];
    }
  }
}
