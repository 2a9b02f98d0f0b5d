/**
 * Where the bench's MLP epoch goes, epoch by epoch from a fresh process: wall time, the time inside
 * products split with the native gemm's helper thread (and the rest: the framework, small kernels, SGD),
 * how often the helper never started its part, and how late it started the others. The first epochs are
 * slower than later ones while V8 compiles the step's functions on background threads; this shows which
 * part pays.
 *   pnpm exec tsx --min-semi-space-size=16 --interrupt-budget=4096 bench/epoch-profile.ts [--batch=128] [--epochs=8]
 */
import { parseArgs } from "node:util";
import * as api from "../packages/autograd/src/index.ts";
import { nativeGemmInfo, nativeHelperStats } from "../packages/autograd/src/kernels/gemm.ts";
import { epochTrainer } from "./tools/tapegrad.ts";
import { mlpEpochWorkload } from "./workloads.ts";

const { values } = parseArgs({ options: { batch: { type: "string", default: "128" }, epochs: { type: "string", default: "8" } } });
const batch = Number(values.batch), epochs = Number(values.epochs);
if (!nativeHelperStats()) {
  console.error(`epoch-profile: needs the native addon with its helper counters (${nativeGemmInfo()}); run \`pnpm build:native\``);
  process.exit(1);
}
const workload = mlpEpochWorkload(batch);
const run = await epochTrainer(api, workload);
const bounds = ["<5", "<20", "<50", "<100", "<300", "≥300"];
console.log(`MLP ${workload.layers.join("-")}, batch ${batch}, ${workload.samples} samples; ${nativeGemmInfo()}`);
console.log("| epoch | wall ms | split products ms | of it waiting for the helper | rest ms | splits | helper never started | helper start delay: mean µs | histogram (µs: count) |");
console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
for (let epoch = 1; epoch <= epochs; epoch++) {
  nativeHelperStats(true);
  const start = performance.now();
  run();
  const wall = performance.now() - start;
  const s = nativeHelperStats()!;
  const started = s.posts - s.takenBack;
  const histogram = s.lateHistogram.map((n, i) => `${bounds[i]}: ${n}`).join(", ");
  console.log(`| ${epoch} | ${wall.toFixed(0)} | ${s.splitMs.toFixed(0)} | ${s.waitMs.toFixed(0)} | ${(wall - s.splitMs).toFixed(0)} | ${s.posts} | ${s.takenBack} | ${started ? (s.lateUs / started).toFixed(1) : "-"} | ${histogram} |`);
}
