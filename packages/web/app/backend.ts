/** Which kernels train in this page, in the words the page shows. Runs in the worker that trains. */
import { gemmBackend, initWasmThreads, wasmGemmFma } from "@tapegrad/autograd/kernels";
import type { BackendInfo } from "./protocol.ts";

/** How long the page waits for the WebAssembly helper thread before it trains on one thread. */
const HELPER_TIMEOUT_MS = 10_000;

/** Starts the WebAssembly helper thread where the page allows it, then describes the backend. */
export async function startBackend(): Promise<BackendInfo> {
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  const gemm = gemmBackend();
  if (gemm !== "wasm") {
    const note = gemm === "js" ? "this browser has no WebAssembly SIMD: the products run as plain JavaScript loops on one thread" : undefined;
    return { label: gemm, gemm, threads: 1, fma: false, crossOriginIsolated: isolated, note };
  }
  // the reason names what stops a second thread, e.g. a page without the cross-origin isolation headers
  const { threads, reason } = await initWasmThreads({ timeoutMs: HELPER_TIMEOUT_MS });
  // fused multiply-add where the browser's WebAssembly has relaxed SIMD (wasmGemmFma)
  const fma = wasmGemmFma();
  return {
    label: `wasm SIMD${fma ? " + FMA" : ""} · ${threads} thread${threads === 1 ? "" : "s"}`, gemm, threads, fma, crossOriginIsolated: isolated,
    note: threads === 1 ? reason : undefined,
  };
}
