/** Messages between the page (main.ts) and the training worker (worker.ts). */
import type { ModelId, OptimizerId } from "./catalog.ts";

export type { OptimizerId } from "./catalog.ts";

export interface TrainSettings {
  model: ModelId;
  optimizer: OptimizerId;
  lr: number;
  batchSize: number;
  /** Training pauses after this many epochs. */
  epochs: number;
  /** Steps between two evaluations on the whole test set (and at every epoch's end). */
  evalEvery: number;
  /** Seed of the weights' initialisation and of the loader's shuffle. */
  seed: number;
}

export interface BackendInfo {
  /** What the page shows, e.g. "wasm SIMD + FMA · 2 threads". */
  label: string;
  gemm: "native" | "wasm" | "js";
  threads: number;
  /** Whether the WebAssembly gemm fuses multiply-adds (relaxed SIMD; wasmGemmFma). */
  fma: boolean;
  crossOriginIsolated: boolean;
  /** Why it runs on one thread, where it does. */
  note?: string;
}

export interface DataInfo {
  source: "full" | "sample";
  trainSize: number;
  testSize: number;
  classes: string[];
  /** Milliseconds to fetch and decode the four files. */
  loadMs: number;
}

export type ToWorker =
  | { type: "init"; baseUrl: string; data: "auto" | "full" | "sample"; settings: TrainSettings; gridSize: number }
  | { type: "settings"; settings: TrainSettings }
  | { type: "start" }
  | { type: "pause" }
  | { type: "reset"; settings: TrainSettings }
  | { type: "predict"; id: number; pixels: Float32Array }
  | { type: "save" }
  | { type: "load"; name: string; bytes: Uint8Array };

export interface CurvePoint {
  step: number;
  /** Fractional epochs done at this step. */
  epoch: number;
  value: number;
}

export interface Evaluation {
  step: number;
  epoch: number;
  testLoss: number;
  testAccuracy: number;
  perClass: number[];
  /** Predicted class of each grid image. */
  gridPredictions: number[];
  /** The grid images' class probabilities, row-major [gridSize, classes]. */
  gridProbabilities: Float32Array;
}

export type FromWorker =
  | { type: "ready"; backend: BackendInfo; data: DataInfo; grid: { pixels: Uint8Array; labels: number[]; indices: number[] } }
  | { type: "status"; running: boolean; stopsAfter: number; step: number; epoch: number; stepsPerEpoch: number; elapsedMs: number;
    trainLoss: CurvePoint[]; trainAccuracy: CurvePoint[];
    /** While the test set is being evaluated: the fraction of it done (training waits for it). */
    evaluating: number | null }
  | { type: "evaluation"; evaluation: Evaluation; elapsedMs: number }
  | { type: "reset"; model: ModelId; parameters: number; description: string }
  | { type: "probabilities"; id: number; probabilities: Float32Array }
  | { type: "checkpoint"; name: string; bytes: Uint8Array }
  | { type: "loaded"; name: string; model: ModelId; description: string }
  | { type: "error"; message: string };
