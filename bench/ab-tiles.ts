/**
 * In-process A/B of the native gemm's AVX2 tiles (native/tile_gemm.c) against BLAS on the MLP epoch:
 * one process trains with both settings, switching every `--block` steps (the order flips each epoch), so
 * the machine's minute-to-minute noise falls on both alike. Prints the time of each setting's half of
 * every epoch and the ratio tiles / BLAS over the epochs after the first.
 *   pnpm exec tsx --min-semi-space-size=16 --interrupt-budget=4096 bench/ab-tiles.ts [--batch=128] [--epochs=6] [--block=47]
 */
import { parseArgs } from "node:util";
import * as api from "../packages/autograd/src/index.ts";
import { nativeGemmInfo, nativeGemmTiles } from "../packages/autograd/src/kernels/gemm.ts";
import { epochTrainer } from "./tools/tapegrad.ts";
import { mlpEpochWorkload } from "./workloads.ts";

const { values } = parseArgs({ options: {
  batch: { type: "string", default: "128" }, epochs: { type: "string", default: "6" }, block: { type: "string", default: "47" },
} });
const batch = Number(values.batch), epochs = Number(values.epochs), block = Number(values.block) * batch;
if (!nativeGemmTiles()) {
  console.error(`ab-tiles: the native gemm's tiles are not in use here (${nativeGemmInfo()})`);
  process.exit(1);
}
const workload = mlpEpochWorkload(batch);
const { samples } = workload;
const run = await epochTrainer(api, workload);
const totals = { tiles: 0, blas: 0 };
for (let epoch = 0; epoch < epochs; epoch++) {
  const half = { tiles: 0, blas: 0 };
  for (let first = 0, i = 0; first < samples; first += block, i++) {
    const setting = (i + epoch) % 2 === 0 ? "tiles" : "blas";
    nativeGemmTiles(setting === "tiles");
    const start = performance.now();
    run(first, Math.min(samples, first + block));
    half[setting] += performance.now() - start;
  }
  nativeGemmTiles(true);
  console.log(`epoch ${epoch + 1}: tiles ${half.tiles.toFixed(0)} ms, BLAS ${half.blas.toFixed(0)} ms (each about half an epoch)`);
  if (epoch > 0) { totals.tiles += half.tiles; totals.blas += half.blas; }
}
console.log(`batch ${batch}, epochs 2-${epochs}: tiles / BLAS = ${(totals.tiles / totals.blas).toFixed(3)}`);
