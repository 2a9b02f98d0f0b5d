/** The kernel interface: raw typed-array loops that know nothing of tensors or the tape. */
export { gemm, gemmReference, gemmBackend, gemmJs, gemmWasm, nativeGemmThreads, nativeGemmTiles, nativeHelperStats, type HelperStats, wasmGemmThreads, wasmHelperStats,
  wasmGemmProfile, type WasmGemmProfile,
  initWasmThreads, wasmGemmAvailable, wasmGemmFma, wasmThreadingInfo, type HelperWorker, type InitWasmThreadsOptions, type WasmHelperState,
  type WasmThreadingInfo } from "./gemm.ts";
export { nativeLoops, setNativeLoops, NATIVE_MIN_ELEMENTS } from "./native-loops.ts";
export * from "./elementwise.ts";
export * from "./reduce.ts";
export { expDouble, logDouble } from "./libm.ts";
export * from "./cnn.ts";
export { isPinned, isWholePinned, pinArray, pinningAvailable, setPinMaxBytes, wasmHeapStats, PIN_MAX_BYTES } from "./wasm-heap.ts";
