/**
 * Where the WebAssembly backend's MLP epoch goes, epoch by epoch in one process: wall time, the time inside
 * the wasm gemm (all products, and the products split with the helper worker: copying operands in,
 * the caller's chunks, waiting for the helper's last chunk, copying C out), the rest (the framework, the
 * TypeScript elementwise loops, SGD), and the share of chunks the helper computed.
 *   TAPEGRAD_BACKEND=wasm pnpm exec tsx --min-semi-space-size=16 --interrupt-budget=4096 bench/wasm-epoch-profile.ts [--batch=128] [--epochs=6] [--threads=2]
 */
import { parseArgs } from "node:util";
import * as api from "../packages/autograd/src/index.ts";
import { gemmBackend, initWasmThreads, wasmGemmThreads, wasmHelperStats } from "../packages/autograd/src/kernels/gemm.ts";
import { wasmGemmProfile } from "../packages/autograd/src/kernels/gemm-wasm.ts";
import { epochTrainer } from "./tools/tapegrad.ts";
import { mlpEpochWorkload } from "./workloads.ts";

const { values } = parseArgs({ options: {
  batch: { type: "string", default: "128" }, epochs: { type: "string", default: "6" }, threads: { type: "string", default: "2" },
} });
const batch = Number(values.batch), epochs = Number(values.epochs);
if (gemmBackend() !== "wasm") {
  console.error("wasm-epoch-profile: run it with TAPEGRAD_BACKEND=wasm");
  process.exit(1);
}
wasmGemmThreads(Number(values.threads));
const threading = await initWasmThreads();
const workload = mlpEpochWorkload(batch);
const run = await epochTrainer(api, workload);
console.log(`MLP ${workload.layers.join("-")}, batch ${batch}, ${workload.samples} samples; wasm gemm: ${threading.reason}`);
console.log("| epoch | wall ms | gemm ms | split products ms | copy in | caller's chunks | wait | copy out | rest ms | splits | chunks by the helper |");
console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (let epoch = 1; epoch <= epochs; epoch++) {
  const before = wasmHelperStats();
  wasmGemmProfile(true);
  const start = performance.now();
  run();
  const wall = performance.now() - start;
  const p = wasmGemmProfile(false)!;
  const after = wasmHelperStats();
  const f = (ms: number): string => ms.toFixed(0);
  console.log(`| ${epoch} | ${f(wall)} | ${f(p.ms)} | ${f(p.splitMs)} | ${f(p.copyInMs)} | ${f(p.computeMs)} | ${f(p.waitMs)} | ${f(p.copyOutMs)} | ${f(wall - p.ms)} | ${p.splits} | ${after.parts - before.parts} |`);
}
