/** Times the bench's MLP epoch with tapegrad and with TF.js's wasm backend, one tool after the other. */
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
  let finalLoss = NaN;
  for (let i = 0; i < request.epochs; i++) {
    post({ type: "progress", text: `${tool}: timed epoch ${i + 1} of ${request.epochs}` });
    await new Promise((resolve) => setTimeout(resolve, 0));
    const started = performance.now();
    finalLoss = runner.run();
    epochsMs.push(performance.now() - started);
  }
  runner.dispose();
  const sorted = [...epochsMs].sort((a, b) => a - b);
  return { tool, medianMs: sorted[sorted.length >> 1], epochsMs, backend, finalLoss };
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

async function run(request: BenchRequest): Promise<void> {
  const workload = { ...mlpEpochWorkload(request.batch), samples: request.samples };
  for (const tool of request.tools) {
    if (tool === "tapegrad") {
      const backend = await startBackend();
      post({ type: "result", result: await time(tool, `tapegrad ${backend.label}`, tapegradEpoch(workload), request) });
    } else if (tool === "tfjs-wasm") {
      const { tf, backend } = await tfjs(request.baseUrl, request.tfjsThreads);
      post({ type: "result", result: await time(tool, backend, tfjsEpoch(tf, workload), request) });
    } else {
      throw new Error(`bench: unknown tool "${tool}" (tools: tapegrad, tfjs-wasm)`);
    }
  }
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  post({ type: "done", environment: { userAgent: navigator.userAgent, cores: navigator.hardwareConcurrency, crossOriginIsolated: isolated } });
}

self.addEventListener("message", (event: MessageEvent<BenchRequest>) => {
  run(event.data).catch((error: Error) => post({ type: "error", message: error?.message ?? String(error) }));
}, { once: true });
