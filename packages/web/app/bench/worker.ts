/** Times the bench's MLP epoch with tapegrad and with TF.js's wasm backend, one tool after the other. */
import { gemm, wasmGemmFma, wasmGemmProfile, wasmGemmThreads, wasmHelperStats } from "@tapegrad/autograd/kernels";
import type * as Tf from "@tensorflow/tfjs-core";
import { mlpEpochWorkload } from "../../../../bench/workloads.ts";
import { startBackend } from "../backend.ts";
import { type EpochRunner, tapegradEpoch, tfjsEpoch } from "./epochs.ts";
import type { BenchMessage, BenchRequest, ToolResult } from "./protocol.ts";

const post = (message: BenchMessage): void => self.postMessage(message);

async function time(tool: string, backend: string, runner: EpochRunner, request: BenchRequest): Promise<ToolResult> {
  for (let i = 0; i < request.warmup; i++) {
    post({ type: "progress", text: `${tool}: warm-up epoch ${i + 1} of ${request.warmup}` });
    await new Promise((resolve) => setTimeout(resolve, 0));
    runner.run();
  }
  const epochsMs: number[] = [];
  const profiles: Record<string, number>[] = [];
  const profiling = request.profile === true && tool === "tapegrad";
  let finalLoss = NaN;
  for (let i = 0; i < request.epochs; i++) {
    post({ type: "progress", text: `${tool}: timed epoch ${i + 1} of ${request.epochs}` });
    await new Promise((resolve) => setTimeout(resolve, 0));
    const helperBefore = wasmHelperStats();
    if (profiling) wasmGemmProfile(true);
    const started = performance.now();
    finalLoss = runner.run();
    const ms = performance.now() - started;
    epochsMs.push(ms);
    if (profiling) {
      const p = wasmGemmProfile(false);
      const round = (x: number): number => Math.round(x * 10) / 10;
      const entries = Object.entries({ wall: ms, ...p, ...runner.phases, restOutsideGemm: ms - (p?.ms ?? 0) });
      profiles.push({ ...Object.fromEntries(entries.map(([k, v]) => [k, round(v)])), helperChunks: wasmHelperStats().parts - helperBefore.parts,
        helperWakes: wasmHelperStats().wakes - helperBefore.wakes, callerSleeps: wasmHelperStats().callerSleeps - helperBefore.callerSleeps });
    }
  }
  runner.dispose();
  const sorted = [...epochsMs].sort((a, b) => a - b);
  return { tool, medianMs: sorted[sorted.length >> 1], epochsMs, backend, finalLoss, profiles: profiling ? profiles : undefined };
}

async function tfjs(baseUrl: string, threadsCount: number): Promise<{ tf: typeof Tf; backend: string }> {
  const tf = await import("@tensorflow/tfjs-core");
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  wasm.setWasmPaths(new URL("tfjs/", baseUrl).href);
  wasm.setThreadsCount(threadsCount);
  if (!(await tf.setBackend("wasm"))) throw new Error("TF.js: the wasm backend failed to initialise");
  await tf.ready();
  const [simd, threads] = await Promise.all([tf.env().getAsync("WASM_HAS_SIMD_SUPPORT"), tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT")]);
  const kind = simd && threads ? "threaded SIMD" : simd ? "SIMD" : "plain";
  const count = wasm.getThreadsCount();
  return { tf, backend: `TF.js ${tf.version_core} wasm (${kind}) · ${count} thread${count === 1 ? "" : "s"}` };
}

/** The batch-128 MLP's two large products, best of 30 rounds of 20, on one thread and then on two (where
 *  the helper is up), in `epochsMs`: [x@W1 1 thread, xᵀ@g 1 thread, x@W1 2 threads, xᵀ@g 2 threads]; the
 *  kernel's speed in this browser without the framework. */
function products(): ToolResult {
  const shapes: [boolean, boolean, number, number, number][] = [[false, false, 128, 128, 784], [true, false, 784, 128, 128]];
  const previous = wasmGemmThreads();
  const best: number[] = [];
  for (const threads of [1, 2]) {
    wasmGemmThreads(threads);
    for (const [transA, transB, m, n, k] of shapes) {
      const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i)), b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i));
      const c = new Float32Array(m * n);
      let fastest = Infinity;
      for (let round = 0; round < 30; round++) {
        const started = performance.now();
        for (let i = 0; i < 20; i++) gemm(transA, transB, m, n, k, a, 0, transA ? m : k, b, 0, transB ? k : n, c, 0, n, 0);
        fastest = Math.min(fastest, (performance.now() - started) / 20);
      }
      best.push(fastest);
    }
  }
  wasmGemmThreads(previous);
  return { tool: "products", medianMs: best[0], epochsMs: best, backend: "x@W1, xᵀ@g on 1 thread, then on 2 (best ms)", finalLoss: NaN };
}

/**
 * tapegrad's epoch with the weights pinned and not pinned (the data set pinned in both), two runners in this
 * worker whose timed epochs alternate in the order A B, B A, A B, ... so that neither always runs first (the
 * first of a pair was favoured by ~30 ms in this VM); `epochsMs[i]` of the two results are pair i.
 */
async function pinWeightsAB(workload: ReturnType<typeof mlpEpochWorkload>, request: BenchRequest): Promise<ToolResult[]> {
  const runners = [tapegradEpoch(workload, { pin: true }), tapegradEpoch(workload, { pin: true, pinWeights: false })];
  const times: number[][] = [[], []];
  const losses = [NaN, NaN];
  for (let i = 0; i < request.warmup; i++) for (const r of runners) r.run();
  for (let i = 0; i < request.epochs; i++) {
    post({ type: "progress", text: `pin-weights: timed pair ${i + 1} of ${request.epochs}` });
    for (const which of i % 2 === 0 ? [0, 1] : [1, 0]) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      const started = performance.now();
      losses[which] = runners[which].run();
      times[which].push(performance.now() - started);
    }
  }
  const median = (t: number[]): number => [...t].sort((a, b) => a - b)[t.length >> 1];
  return ["tapegrad, weights pinned", "tapegrad, weights not pinned"].map((tool, i) => ({
    tool, medianMs: median(times[i]), epochsMs: times[i], backend: `tapegrad ${wasmGemmThreads()} threads · data pinned`, finalLoss: losses[i],
  }));
}

async function run(request: BenchRequest): Promise<void> {
  const workload = { ...mlpEpochWorkload(request.batch), samples: request.samples };
  // before the first product compiles the kernels
  if (request.fma === false) wasmGemmFma(false);
  for (const tool of request.tools) {
    if (tool === "tapegrad") {
      const backend = await startBackend();
      const runner = tapegradEpoch(workload, { timed: request.profile === true, pin: request.pin !== false });
      post({ type: "result", result: await time(tool, `tapegrad ${backend.label}${runner.pinned ? " · data and weights pinned" : ""}`, runner, request) });
    } else if (tool === "pin-weights") {
      await startBackend();
      for (const result of await pinWeightsAB(workload, request)) post({ type: "result", result });
    } else if (tool === "products") {
      await startBackend();
      post({ type: "result", result: products() });
    } else if (tool === "tfjs-wasm") {
      const { tf, backend } = await tfjs(request.baseUrl, request.tfjsThreads);
      post({ type: "result", result: await time(tool, backend, tfjsEpoch(tf, workload), request) });
    } else {
      throw new Error(`bench: unknown tool "${tool}" (tools: tapegrad, tfjs-wasm, products, pin-weights)`);
    }
  }
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  post({ type: "done", environment: { userAgent: navigator.userAgent, cores: navigator.hardwareConcurrency, crossOriginIsolated: isolated } });
}

self.addEventListener("message", (event: MessageEvent<BenchRequest>) => {
  run(event.data).catch((error: Error) => post({ type: "error", message: error?.message ?? String(error) }));
}, { once: true });
