import type { FloatArray } from "./gemm-reference.ts";
import { gemmJs } from "./gemm-js.ts";
import { gemmWasm, wasmGemmAvailable } from "./gemm-wasm.ts";

export type { FloatArray } from "./gemm-reference.ts";
export { gemmReference } from "./gemm-reference.ts";
export { gemmJs } from "./gemm-js.ts";
export { gemmWasm, wasmGemmAvailable } from "./gemm-wasm.ts";

export type GemmBackend = "wasm" | "js";

/** Below this many multiply-adds the JS loops win: packing into wasm memory and copying back costs more. */
const WASM_MIN_WORK = 8 * 8 * 8;

function chooseBackend(): GemmBackend {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  if (env?.TAPEGRAD_BACKEND === "js") return "js";
  return wasmGemmAvailable() ? "wasm" : "js";
}

let backend: GemmBackend | undefined;

/** The kernel family `gemm` dispatches to: "wasm" (SIMD) where available, "js" otherwise or when
 *  the environment sets TAPEGRAD_BACKEND=js. Decided once per process. */
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
  if (gemmBackend() === "wasm" && m * n * k >= WASM_MIN_WORK) {
    gemmWasm(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, beta);
  } else {
    gemmJs(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, beta);
  }
}
