/** Messages between the bench page and its worker. */

export interface BenchRequest {
  /** Tools to time, in this order: "tapegrad", "tfjs-wasm", "products" (the two large products alone),
   *  "pin-weights" (tapegrad with the weights pinned against not pinned, epochs alternating). */
  tools: string[];
  /** Samples in the synthetic data set (the Node bench's 60,000 unless a smoke run asks for fewer). */
  samples: number;
  batch: number;
  /** Untimed epochs before the timed ones, per tool. */
  warmup: number;
  /** Timed epochs per tool (the median is reported). */
  epochs: number;
  /** Threads of TF.js's XNNPACK pool (its own default is half the logical cores, at most 4). */
  tfjsThreads: number;
  /** The page's URL, for TF.js's wasm binaries under tfjs/. */
  baseUrl: string;
  /** Collect tapegrad's WebAssembly gemm profile (wasmGemmProfile) for each timed epoch. */
  profile?: boolean;
  /** tapegrad's data set and weights in pinned memory (Tensor.pinMemory), which its WebAssembly gemm reads
   *  in place (default true; false copies each batch and weight in, for comparison). */
  pin?: boolean;
  /** false: tapegrad's WebAssembly gemm without fused multiply-add (wasmGemmFma(false)), for comparison. */
  fma?: boolean;
}

export interface ToolResult {
  tool: string;
  /** Median epoch time in milliseconds. */
  medianMs: number;
  /** Every timed epoch, in milliseconds. */
  epochsMs: number[];
  /** Backend and threads, e.g. "wasm SIMD + FMA · 2 threads" or "wasm (threaded SIMD) · 2 threads". */
  backend: string;
  /** Mean training loss of the last timed epoch's last batch (a sanity check that both train the same net). */
  finalLoss: number;
  /** With `profile`: per timed epoch, where tapegrad's WebAssembly gemm spent its time (ms) and the rest. */
  profiles?: Record<string, number>[];
}

export type BenchMessage =
  | { type: "progress"; text: string }
  | { type: "result"; result: ToolResult }
  | { type: "done"; environment: { userAgent: string; cores: number; crossOriginIsolated: boolean } }
  | { type: "error"; message: string };
