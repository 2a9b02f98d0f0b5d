/**
 * The WebAssembly gemm on one thread and on two (the caller and its helper worker), alternating in one
 * process: the batch-128 MLP's products and square ones. Prints each product's best time per setting,
 * the ratio two ÷ one, the share of the split products' chunks the helper computed, and in how many of
 * them it took part (a helper that wakes after the caller has claimed every chunk computes none).
 *   pnpm exec tsx bench/wasm-threads.ts [--rounds=15] [--reps=20]
 */
import { parseArgs } from "node:util";
import { gemmWasm, initWasmThreads, wasmGemmAvailable, wasmGemmThreads, wasmHelperStats } from "../packages/autograd/src/kernels/gemm.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "15" }, reps: { type: "string", default: "20" } } });
const rounds = Number(values.rounds), reps = Number(values.reps);
if (!wasmGemmAvailable()) {
  console.error("wasm-threads: this runtime has no WebAssembly SIMD");
  process.exit(1);
}

const shapes: [string, boolean, boolean, number, number, number][] = [
  ["x@W1 128x784 @ 784x128", false, false, 128, 128, 784],
  ["xᵀ@g 784x128ᵀ @ 128x128", true, false, 784, 128, 128],
  ["g@W1ᵀ 128x128 @ 128x784ᵀ", false, true, 128, 784, 128],
  ["square 512", false, false, 512, 512, 512],
  ["square 1024", false, false, 1024, 1024, 1024],
];
const random = (length: number): Float32Array => Float32Array.from({ length }, () => Math.random() - 0.5);

const threading = await initWasmThreads();
if (threading.threads < 2 || threading.helper !== "ready") {
  console.error(`wasm-threads: no helper worker here: ${threading.reason}`);
  process.exit(1);
}

console.log(`WebAssembly gemm, best of ${rounds} alternated rounds of ${reps} products (fewer for 1024²)`);
console.log("| product | 1 thread ms | 2 threads ms | 2 ÷ 1 | chunks by the helper | products it took part in |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
for (const [name, transA, transB, m, n, k] of shapes) {
  const a = random(m * k), b = random(k * n), c = new Float32Array(m * n);
  const n1 = m * n * k > 2 ** 28 ? Math.max(2, reps >> 3) : reps;
  const best = [Infinity, Infinity];
  const before = wasmHelperStats();
  for (let r = 0; r < rounds; r++) {
    for (const threads of r % 2 ? [2, 1] : [1, 2]) {
      wasmGemmThreads(threads);
      const start = performance.now();
      for (let i = 0; i < n1; i++) gemmWasm(transA, transB, m, n, k, a, 0, transA ? m : k, b, 0, transB ? k : n, c, 0, n, 0);
      best[threads - 1] = Math.min(best[threads - 1], (performance.now() - start) / n1);
    }
  }
  const after = wasmHelperStats();
  const posted = after.posted - before.posted, parts = after.parts - before.parts, jobs = after.jobs - before.jobs;
  console.log(`| ${name} | ${best[0].toFixed(3)} | ${best[1].toFixed(3)} | ${(best[1] / best[0]).toFixed(2)} | ${(parts / posted).toFixed(1)} a product | ${jobs} of ${posted} |`);
}
wasmGemmThreads(2);
