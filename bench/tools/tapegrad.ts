import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  gemm, gemmBackend, gemmJs, gemmNative, gemmReference, gemmWasm, nativeGemmAvailable, nativeGemmInfo,
  wasmGemmAvailable, type FloatArray,
} from "../../packages/autograd/src/kernels/gemm.ts";
import { filledArray, measure, type Timing } from "../measure.ts";
import { heWeights, synthetic } from "../synthetic.ts";
import type { CnnEpochWorkload, EpochWorkload, MatmulWorkload, TinyAddWorkload, Workload } from "../workloads.ts";
import type { MissingTool, Tool, ToolGroup } from "./types.ts";

type Gemm = typeof gemm;
type Autograd = typeof import("../../packages/autograd/src/index.ts");

/** The naive loop is O(mnk) at a fraction of a GFLOP/s: beyond this many multiply-adds it would dominate the run. */
const NAIVE_MAX_WORK = 2 ** 25;

function matmulRunner(kernel: Gemm, w: MatmulWorkload): () => void {
  const Type = w.dtype === "float64" ? Float64Array : Float32Array;
  const a: FloatArray = filledArray(new Type(w.m * w.k), 1);
  const b: FloatArray = filledArray(new Type(w.k * w.n), 2);
  const c: FloatArray = new Type(w.m * w.n);
  const lda = w.transA ? w.m : w.k;
  const ldb = w.transB ? w.k : w.n;
  return () => kernel(w.transA, w.transB, w.m, w.n, w.k, a, 0, lda, b, 0, ldb, c, 0, w.n, 0);
}

function kernelTool(name: string, kernel: Gemm, maxWork = Infinity): Tool {
  return {
    name,
    async run(w) {
      if (w.kind !== "matmul" || w.m * w.n * w.k > maxWork) return undefined;
      return measure(matmulRunner(kernel, w), w);
    },
  };
}

async function tinyAdd(api: Autograd, w: TinyAddWorkload): Promise<Timing> {
  const a = api.tensor(new Float32Array(w.size).fill(1), { requiresGrad: true });
  const b = api.tensor(new Float32Array(w.size).fill(2), { requiresGrad: true });
  const g = api.onesLike(a);
  const timing = await measure(w.backward
    ? () => {
      for (let i = 0; i < w.repeat; i++) {
        a.mul(b).backward(g);
        a.grad = null;
        b.grad = null;
      }
    }
    : () => {
      for (let i = 0; i < w.repeat; i++) a.add(b);
    }, w);
  return { medianMs: timing.medianMs / w.repeat, runs: timing.runs };
}

/**
 * One SGD epoch written against the public API, as a user would: forward, loss, backward, optimizer step.
 * Layers use the fused `linear` op (weights stored [out, in], as nn.Linear does; PyTorch's nn.Linear
 * likewise runs one addmm); the loss is logSoftmax + pick + mean, the same ops as the references.
 * Builds the workload's model, data and optimizer and returns `run(first, end)`, which trains on samples
 * [first, end) (the whole data set by default).
 */
export async function epochTrainer(api: Autograd, w: EpochWorkload): Promise<(first?: number, end?: number) => void> {
  const { optim } = await import("../../packages/nn/src/index.ts");
  const { x, y, features } = synthetic(w.samples, w.layers[0], w.layers[w.layers.length - 1]);
  // The data set and the weights pinned where the WebAssembly backend runs (under the native backend
  // pinMemory returns the tensor itself): its gemm reads the batches and weights in place, writes the
  // weights' gradients in place, and SGD updates them there. TAPEGRAD_BENCH_PIN=0 pins neither.
  const pin = process.env.TAPEGRAD_BENCH_PIN !== "0";
  const params = w.layers.slice(1).flatMap((fanOut, i) => {
    // the same numbers as the references' [in, out] matrices, laid out [out, in]
    const weight = api.tensor(heWeights(w.layers[i], fanOut, 10 + i), { shape: [w.layers[i], fanOut] }).transpose();
    return [(pin ? weight.pinMemory() : weight).detach().requiresGrad_(), api.tensor(new Float32Array(fanOut), { shape: [fanOut], requiresGrad: true })];
  });
  // the references update with `weight -= lr * weight.grad`; a tapegrad user calls the optimizer
  const optimizer = new optim.SGD(params, { lr: w.lr });
  // the data set as one tensor over the same memory (as torch.from_numpy); each batch is a zero-copy
  // narrow of it, as the references slice theirs
  const data = new api.Tensor(x, [w.samples, features]);
  const inputs = pin ? data.pinMemory() : data;
  return (first = 0, end = w.samples): void => {
    for (let start = first; start < end; start += w.batch) {
      const stop = Math.min(end, start + w.batch);
      // the hidden activations only the graph reaches go back to the pool with it, as nn.Sequential
      // declares its own (the TF.js loop wraps its step in tf.tidy)
      let h = inputs.narrow(0, start, stop - start);
      for (let layer = 0; layer < params.length / 2; layer++) {
        if (layer > 0) api.releaseWithGraph(h);
        h = api.linear(h, params[2 * layer], params[2 * layer + 1]);
        if (layer < params.length / 2 - 1) { api.releaseWithGraph(h); h = h.relu(); }
      }
      api.releaseWithGraph(h);
      const loss = h.logSoftmax().pick(y.subarray(start, stop)).mean().neg();
      loss.backward();
      optimizer.step();
      optimizer.zeroGrad();
    }
  };
}

export async function runEpoch(api: Autograd, w: EpochWorkload): Promise<Timing> {
  const run = await epochTrainer(api, w);
  return measure(() => run(), w);
}

/**
 * One SGD epoch of a convolutional network (CnnEpochWorkload) built from @tapegrad/nn's layers, as the
 * examples build them, with F.crossEntropy as PyTorch's F.cross_entropy; each batch is a zero-copy narrow
 * of the synthetic data set. Returns `run(first, end)`, which trains on samples [first, end).
 */
export async function cnnEpochTrainer(api: Autograd, w: CnnEpochWorkload): Promise<(first?: number, end?: number) => void> {
  const { nn, optim, F, init } = await import("../../packages/nn/src/index.ts");
  api.manualSeed(0);
  const model = w.network === "cnn"
    ? new nn.Sequential(
      new nn.Conv2d(1, 32, 3, { padding: 1 }), new nn.ReLU(), new nn.MaxPool2d(2),
      new nn.Conv2d(32, 64, 3, { padding: 1 }), new nn.ReLU(), new nn.MaxPool2d(2),
      new nn.Flatten(), new nn.Linear(3136, 128), new nn.ReLU(), new nn.Linear(128, 10))
    : new nn.Sequential(
      new nn.Conv2d(1, 6, 5, { padding: 2 }), new nn.Sigmoid(), new nn.AvgPool2d(2),
      new nn.Conv2d(6, 16, 5), new nn.Sigmoid(), new nn.AvgPool2d(2),
      new nn.Flatten(), new nn.Linear(400, 120), new nn.Sigmoid(), new nn.Linear(120, 84), new nn.Sigmoid(), new nn.Linear(84, 10));
  if (w.network === "lenet") for (const m of model.modules()) if (m instanceof nn.Conv2d || m instanceof nn.Linear) init.xavierUniform_(m.weight);
  const optimizer = new optim.SGD(model.parameters(), { lr: w.lr });
  const { x, y } = synthetic(w.samples, 784, 10);
  const inputs = new api.Tensor(x, [w.samples, 1, 28, 28]);
  const labels = new Int32Array(y);
  return (first = 0, end = w.samples): void => {
    for (let start = first; start < end; start += w.batch) {
      const stop = Math.min(end, start + w.batch);
      const loss = F.crossEntropy(model.forward(inputs.narrow(0, start, stop - start)), labels.subarray(start, stop));
      optimizer.zeroGrad();
      loss.backward();
      optimizer.step();
    }
  };
}

/** The timed epochs of a CnnEpochWorkload after its warm-up steps. */
export async function runCnnEpoch(api: Autograd, w: CnnEpochWorkload): Promise<Timing> {
  const run = await cnnEpochTrainer(api, w);
  run(0, Math.min(w.samples, w.warmupSteps * w.batch));
  return measure(() => run(), w);
}

/** The tapegrad tools: the dispatching kernel (and the Tensor API where the core loads), each backend, the naive loop. */
export async function tapegradTools(): Promise<ToolGroup> {
  const missing: MissingTool[] = [];
  const notes = [`gemm backend: ${gemmBackend()}${process.env.TAPEGRAD_BACKEND ? ` (TAPEGRAD_BACKEND=${process.env.TAPEGRAD_BACKEND})` : ""}`,
    `native BLAS: ${nativeGemmInfo()}`];
  let api: Autograd | undefined;
  try {
    api = await import("../../packages/autograd/src/index.ts");
  } catch (error) {
    notes.push(`tapegrad Tensor API did not load, Tensor workloads skipped: ${(error as Error).message}`);
  }
  const training = epochTool("tapegrad", TRAINING_FLAGS, {}, { cnn: true });
  const main: Tool = {
    name: "tapegrad",
    async run(w: Workload) {
      if (w.kind === "matmul") return measure(matmulRunner(gemm, w), w);
      if (!api) return undefined;
      return w.kind === "tinyAdd" ? tinyAdd(api, w) : training.run(w);
    },
  };
  const tools = [main, kernelTool("tapegrad js", gemmJs)];
  if (wasmGemmAvailable()) {
    // its epochs: the whole framework on the portable backend, as on a machine without the native addon
    const epochs = epochTool("tapegrad wasm", TRAINING_FLAGS, { TAPEGRAD_BACKEND: "wasm" });
    const kernel = kernelTool("tapegrad wasm", gemmWasm);
    tools.push({ name: kernel.name, run: (w) => (w.kind === "epoch" ? epochs.run(w) : kernel.run(w)) });
  }
  else missing.push({ name: "tapegrad wasm", reason: "WebAssembly SIMD is not available in this runtime" });
  if (nativeGemmAvailable()) tools.push(kernelTool("tapegrad native", gemmNative));
  else missing.push({ name: "tapegrad native", reason: `${nativeGemmInfo()}; run \`pnpm build:native\`` });
  tools.push(kernelTool("naive loop", gemmReference, NAIVE_MAX_WORK));
  notes.push(`epochs run in a child process per round, as the Python references do: \`tapegrad\` with node ${TRAINING_FLAGS.join(" ")} (as \`npm start\` and \`pnpm example\` run), \`tapegrad, node defaults\` without it, \`tapegrad wasm\` with the flags and TAPEGRAD_BACKEND=wasm (the portable backend, what a machine without the native addon runs)`);
  tools.push(epochTool("tapegrad, node defaults", []));
  const rss = (): string[] => (childPeakRssMb ? [`peak RSS of an epoch child process (its float32 synthetic data set is ${childDataMb.toFixed(0)} MB): ${childPeakRssMb.toFixed(0)} MB`] : []);
  return { tools, missing, notes: () => [...notes, ...rss()] };
}

/**
 * Node flags for training: the ones package.json's `start` script passes to tsx, read from there so the
 * bench times what `npm start` and `pnpm example` run. Both flags keep V8's background work off the core
 * the gemm helper thread needs (measurements: bench/NOTES.md, "Node flags"):
 * - `--min-semi-space-size=16` (a 16 MB young generation): with Node's default 1 MB semi-spaces a training
 *   loop's short-lived tensors set off about ten full garbage collections an epoch; with 16 MB, one a run.
 * - `--interrupt-budget=4096` (a sixteenth of V8's default): V8 optimizes a function after it has run
 *   3 + bytecode length / 150 budgets' worth of bytecode, so a step's functions, which run once or twice
 *   a step, would be compiled during epochs 2–5 of the batch-128 epoch (469 steps); with the flag, during
 *   the first (bench/jit-profile.ts lists them).
 */
export const TRAINING_FLAGS: string[] = (() => {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { scripts: { start: string } };
  const flags = /\btsx((?: --\S+)*) /.exec(pkg.scripts.start);
  if (!flags) throw new Error(`bench: package.json's start script does not run tsx: ${pkg.scripts.start}`);
  return flags[1].trim().split(" ").filter(Boolean);
})();

/** Largest peak RSS of any epoch child process, and the largest synthetic data set one held, in MB. */
let childPeakRssMb = 0;
let childDataMb = 0;

/** glibc keeps freed memory in its heap (no mmap/munmap per large buffer): the settings bench/cnn-reference.py
 *  gives PyTorch's convolutional epochs, so both sides of those rows run with the same allocator behaviour. */
const HEAP_MALLOC = { MALLOC_MMAP_THRESHOLD_: "2147483647", MALLOC_TRIM_THRESHOLD_: "2147483647" };

/**
 * The epoch workloads in a fresh child Node process started with `flags` (and the TypeScript loader); the
 * convolutional networks' epochs (minutes each) only where `cnn` says so.
 */
function epochTool(name: string, flags: string[], env: Record<string, string> = {}, options: { cnn?: boolean } = {}): Tool {
  const child = fileURLToPath(new URL("../epoch-child.ts", import.meta.url));
  return {
    name,
    async run(w: Workload) {
      if (w.kind !== "epoch" && !(w.kind === "cnnEpoch" && options.cnn)) return undefined;
      const run = spawnSync(process.execPath, [...flags, "--import", "tsx", child], {
        input: JSON.stringify(w), encoding: "utf8", maxBuffer: 1 << 20, cwd: fileURLToPath(new URL("../..", import.meta.url)),
        env: { ...process.env, ...(w.kind === "cnnEpoch" ? HEAP_MALLOC : {}), ...env },
      });
      if (run.status !== 0) throw new Error(`epoch child failed: ${run.stderr.trim().split("\n").slice(-3).join(" ")}`);
      const out = JSON.parse(run.stdout.trim().split("\n").pop()!) as Timing & { peakRssMb: number };
      childPeakRssMb = Math.max(childPeakRssMb, out.peakRssMb);
      childDataMb = Math.max(childDataMb, (w.samples * (w.kind === "epoch" ? w.layers[0] : 784) * 4) / 2 ** 20);
      return { medianMs: out.medianMs, runs: out.runs };
    },
  };
}
