import type { FloatArray } from "./gemm-reference.ts";
import { gemmJs } from "./gemm-js.ts";
import { gemmNative, nativeGemmAvailable, nativeGemmInfo } from "./gemm-native.ts";
import { gemmWasm, wasmGemmAvailable } from "./gemm-wasm.ts";

export type { FloatArray } from "./gemm-reference.ts";
export { gemmReference } from "./gemm-reference.ts";
export { gemmJs } from "./gemm-js.ts";
export {
  gemmWasm, initWasmThreads, wasmGemmAvailable, wasmGemmFma, wasmGemmProfile, wasmGemmThreads, wasmHelperStats, wasmThreadingInfo,
  type HelperWorker, type WasmGemmProfile, type InitWasmThreadsOptions, type WasmHelperState, type WasmThreadingInfo,
} from "./gemm-wasm.ts";
export { gemmNative, nativeGemmAvailable, nativeGemmInfo, nativeGemmThreads, nativeGemmTiles, nativeGemmTilesInfo, nativeHelperStats, type HelperStats } from "./gemm-native.ts";

export type GemmBackend = "native" | "wasm" | "js";
const BACKENDS: readonly GemmBackend[] = ["native", "wasm", "js"];

/** Below this many multiply-adds the JS loops win: packing into wasm memory and copying back costs more. */
const WASM_MIN_WORK = 8 * 8 * 8;

/** Below this many multiply-adds the JS loops beat the BLAS call, whose Node-API marshalling and OpenBLAS
 *  dispatch cost about half a microsecond. Above it native is at least as fast as wasm, so the native
 *  backend never calls wasm (timings: bench/NOTES.md, "Backend thresholds"). */
const NATIVE_MIN_WORK = 6 * 6 * 6;

function chooseBackend(): GemmBackend {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const requested = env?.TAPEGRAD_BACKEND ?? "";
  if (requested === "") {
    if (nativeGemmAvailable()) return "native";
    return wasmGemmAvailable() ? "wasm" : "js";
  }
  if (!(BACKENDS as readonly string[]).includes(requested)) {
    throw new Error(`TAPEGRAD_BACKEND=${requested} is not a gemm backend; use one of ${BACKENDS.join(", ")}`);
  }
  if (requested === "native" && !nativeGemmAvailable()) {
    throw new Error(`TAPEGRAD_BACKEND=native, but the native BLAS gemm is ${nativeGemmInfo()}; `
      + "run `npx tapegrad-build-native` (in the repository: `pnpm build:native`; needs a C compiler and OpenBLAS), or unset TAPEGRAD_BACKEND");
  }
  if (requested === "wasm" && !wasmGemmAvailable()) {
    throw new Error("TAPEGRAD_BACKEND=wasm, but this runtime has no WebAssembly SIMD; unset TAPEGRAD_BACKEND");
  }
  return requested as GemmBackend;
}

let backend: GemmBackend | undefined;

/** The kernel family `gemm` dispatches to, decided once per process: "native" (the machine's BLAS)
 *  where `npx tapegrad-build-native` built it and it loads, else "wasm" (SIMD) where available, else "js".
 *  TAPEGRAD_BACKEND=native|wasm|js forces one and throws if it cannot run. */
export function gemmBackend(): GemmBackend {
  backend ??= chooseBackend();
  return backend;
}

/**
 * C = beta*C + op(A) @ op(B); op(A) is m×k, op(B) is k×n, all row-major with row strides lda, ldb, ldc.
 * transA=false stores A as m×k, transA=true stores it as k×m and uses Aᵀ; the same for B.
 * beta is 0 (overwrite C without reading it) or 1 (accumulate). A, B and C share one array type.
 * @example gemm(false, false, 2, 2, 3, a, 0, 3, b, 0, 2, c, 0, 2, 0) // c = a @ b
 */
export function gemm(
  transA: boolean, transB: boolean, m: number, n: number, k: number,
  a: FloatArray, aOffset: number, lda: number,
  b: FloatArray, bOffset: number, ldb: number,
  c: FloatArray, cOffset: number, ldc: number,
  beta: 0 | 1,
): void {
  const chosen = gemmBackend();
  const work = m * n * k;
  if (chosen === "native" && work >= NATIVE_MIN_WORK) {
    gemmNative(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, beta);
  } else if (chosen === "wasm" && work >= WASM_MIN_WORK) {
    gemmWasm(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, beta);
  } else {
    gemmJs(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, beta);
  }
}
