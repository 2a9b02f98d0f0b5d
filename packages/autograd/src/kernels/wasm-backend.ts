import { f32Kernel, f64Kernel, gemmModuleBytes, relaxedSimdProbe, type KernelShape } from "./wasm/gemm-module.ts";
import { threadKernels, type JobConfig, type KernelNames, type ThreadKernels } from "./wasm-parts.ts";

/**
 * The WebAssembly kernel module, instantiated once per thread: its memory (shared where the runtime allows,
 * so a helper worker can instantiate the same module over it), its exports and what a job needs to know.
 */

export const PAGE_BYTES = 65536;
/** The module's memory limit: beyond it the gemm falls back to the JS kernel. */
export const MAX_BYTES = 2 ** 31;
/** Depth of one packed block: a kc×NR strip of B (4 KiB for float32) stays in L1 while every A strip
 *  of the block passes it (256 was slower on large squares: bench/NOTES.md, "WebAssembly gemm"). */
export const KC = 128;
/** Rows of one A block (MC·KC elements, 64 KiB for float32, in L2); rounded down to whole tiles. */
export const MC = 128;

/** How long the helper polls for the next job before it sleeps: long enough to span the gap between a
 *  training step's split products (bench/NOTES.md, "The helper polls"). */
export const HELPER_SPIN_US = 1000;

/** Node's environment variable `name`, or undefined where it is unset or empty (and in browsers). */
function nodeEnv(name: string): string | undefined {
  const value = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
  return value === "" ? undefined : value;
}

/** HELPER_SPIN_US, or TAPEGRAD_HELPER_SPIN_US in Node (microseconds, 0 = sleep at once; the native
 *  helper reads the same variable). */
function helperSpinUs(): number {
  const env = nodeEnv("TAPEGRAD_HELPER_SPIN_US");
  if (env === undefined) return HELPER_SPIN_US;
  const us = Number(env);
  if (!(us >= 0)) throw new RangeError(`TAPEGRAD_HELPER_SPIN_US=${env}: expected a number of microseconds >= 0`);
  return us;
}

// NOTE: the project's TypeScript lib has no WebAssembly declarations, so the global is typed here.
export interface WasmMemory { buffer: ArrayBuffer; grow(pages: number): number }
export interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
}

export interface WasmBackend {
  memory: WasmMemory;
  exports: Record<string, unknown>;
  /** The kernels of `exports`, looked up once (wasm-parts.ts, threadKernels). */
  kernels: ThreadKernels;
  config: JobConfig;
  shapes: { f32: KernelShape; f64: KernelShape };
  /** The compiled module and whether its memory is shared (then a helper worker can instantiate it). */
  module: object;
  shared: boolean;
  /** Why the memory is not shared, when it is not. */
  unsharedReason?: string;
  /** Whether the block kernels use fused multiply-add (wasmGemmFma). */
  fma: boolean;
}

let backend: WasmBackend | null | undefined;

function kernelNames(name: "F32" | "F64", shape: KernelShape): KernelNames {
  return {
    kernel: `gemm${name}`,
    kernelRows: `gemm${name}Rows`,
    packBT: `gather${name}x${shape.nr}`,
  };
}

export function wasmApi(): WasmApi | undefined {
  return (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
}

/** Why this runtime cannot share WebAssembly memory between threads, or undefined when it can. */
function sharedMemoryBlocker(): string | undefined {
  const g = globalThis as { crossOriginIsolated?: boolean };
  if (g.crossOriginIsolated === false) {
    return "the page is not cross-origin isolated (serve it with the headers Cross-Origin-Opener-Policy: same-origin "
      + "and Cross-Origin-Embedder-Policy: require-corp), so it has no SharedArrayBuffer";
  }
  if (typeof SharedArrayBuffer !== "function") return "this runtime has no SharedArrayBuffer";
  return undefined;
}

/** wasmGemmFma's setting before the kernels are compiled (undefined: the default). */
let fmaAllowed: boolean | undefined;

/** Whether this runtime's WebAssembly has relaxed SIMD (f32x4.relaxed_madd). */
function relaxedSimd(api: WasmApi): boolean {
  try {
    return api.validate(relaxedSimdProbe());
  } catch {
    return false;
  }
}

/** TAPEGRAD_WASM_FMA in Node: "1" allows fused multiply-add, "0" forbids it, unset leaves the default. */
function fmaFromEnv(): boolean | undefined {
  const env = nodeEnv("TAPEGRAD_WASM_FMA");
  if (env === undefined) return undefined;
  if (env !== "0" && env !== "1") throw new RangeError(`TAPEGRAD_WASM_FMA=${env}: expected 1 (allow fused multiply-add) or 0`);
  return env === "1";
}

/** Whether the kernels about to be compiled may fuse: wasmGemmFma's setting, else TAPEGRAD_WASM_FMA, else
 *  yes in browsers and no in Node (whose V8 ran the fused tile slower: bench/NOTES.md, "The helper polls"). */
function fmaWanted(): boolean {
  if (fmaAllowed !== undefined) return fmaAllowed;
  const env = fmaFromEnv();
  if (env !== undefined) return env;
  return (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === undefined;
}

/**
 * Whether the WebAssembly gemm's block kernels use fused multiply-add (relaxed SIMD's relaxed_madd: one
 * rounding per multiply-add, as native BLAS does on hardware with FMA, instead of a rounded product and a
 * rounded sum). By default they do in browsers whose engine has relaxed SIMD (Chromium's V8 runs the MLP's
 * products 2–4% faster fused) and do not in Node (set TAPEGRAD_WASM_FMA=1 to allow it where Node's WebAssembly has
 * relaxed SIMD). Fused or not, the depth is summed in the same order, so the thread count never changes the
 * bits; products from a fused and an unfused runtime differ in the last bits.
 * `allow` sets it before the kernels are compiled (the first product, pinArray or initWasmThreads); after
 * that a different value throws. An allowed FMA that the runtime lacks leaves the kernels unfused.
 * @example wasmGemmFma(false) // before the first product: the same bits as Node's unfused kernels
 */
export function wasmGemmFma(allow?: boolean): boolean {
  if (allow !== undefined) {
    if (typeof allow !== "boolean") throw new TypeError(`wasmGemmFma: expected true or false, got ${String(allow)}`);
    if (backend) {
      // allowing what the runtime lacks changes nothing
      const unavailable = allow && !relaxedSimd(wasmApi()!);
      if (allow !== backend.fma && !unavailable) {
        throw new Error(`wasmGemmFma(${allow}): the WebAssembly kernels are already compiled ${backend.fma ? "with" : "without"} fused multiply-add; call it before the first product, pinArray or initWasmThreads`);
      }
    } else {
      fmaAllowed = allow;
    }
  }
  if (backend) return backend.fma;
  const api = wasmApi();
  return fmaWanted() && api !== undefined && relaxedSimd(api);
}

/** Instantiates the kernel once; null where WebAssembly or its SIMD extension is missing. Prefers a
 *  shared memory (for the helper worker) and falls back to the module's own. */
export function loadWasmBackend(): WasmBackend | null {
  if (backend !== undefined) return backend;
  backend = null;
  const api = wasmApi();
  if (!api) return backend;
  const shapes = { f32: f32Kernel, f64: f64Kernel };
  const config: JobConfig = {
    names: [kernelNames("F32", f32Kernel), kernelNames("F64", f64Kernel)],
    shapes: [{ ...f32Kernel }, { ...f64Kernel }],
    kc: KC,
    mc: MC,
    spinUs: helperSpinUs(),
  };
  const fma = fmaWanted() && relaxedSimd(api);
  let unsharedReason = sharedMemoryBlocker();
  if (unsharedReason === undefined) {
    try {
      const maxPages = MAX_BYTES / PAGE_BYTES;
      const bytes = gemmModuleBytes({ shared: { maxPages }, fma });
      if (api.validate(bytes)) {
        const memory = new api.Memory({ initial: 1, maximum: maxPages, shared: true });
        const module = new api.Module(bytes);
        const { exports } = new api.Instance(module, { env: { memory } });
        backend = { memory, exports, kernels: threadKernels(exports, config), config, shapes, module, shared: true, fma };
        return backend;
      }
      unsharedReason = "this runtime's WebAssembly has no threads (shared memory)";
    } catch (error) {
      unsharedReason = `shared WebAssembly memory failed: ${(error as Error).message}`;
    }
  }
  try {
    const bytes = gemmModuleBytes({ fma });
    if (!api.validate(bytes)) return backend;
    const module = new api.Module(bytes);
    const { exports } = new api.Instance(module, {});
    backend = { memory: exports.memory as WasmMemory, exports, kernels: threadKernels(exports, config), config, shapes, module, shared: false, unsharedReason, fma };
  } catch {
    backend = null;
  }
  return backend;
}
