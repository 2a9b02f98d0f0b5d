/**
 * A convolutional network's training step in the framework (bench/tools/tapegrad.ts cnnEpochTrainer: `cnn`
 * at batch 128 by default, or `lenet` at batch 256, the bench's sizes): 20 warm-up steps, then three timed
 * runs of 60 steps, each printed as ms/step of wall and CPU time, the median step's time (robust to bursts
 * of other load on a shared machine) and minor page faults per step. Run it as the bench's epoch children
 * run (bench/tools/tapegrad.ts TRAINING_FLAGS and HEAP_MALLOC):
 *   MALLOC_MMAP_THRESHOLD_=2147483647 MALLOC_TRIM_THRESHOLD_=2147483647 \
 *     npx tsx --min-semi-space-size=16 --interrupt-budget=4096 bench/cnn-framework-step.ts [runs] [cnn|lenet]
 */
import * as api from "../packages/autograd/src/index.ts";
import { cnnEpochTrainer } from "./tools/tapegrad.ts";

const runs = Number(process.argv[2] ?? 3);
const network = process.argv[3] === "lenet" ? "lenet" : "cnn";
const batch = network === "cnn" ? 128 : 256, steps = 60, samples = steps * batch;
const run = await cnnEpochTrainer(api, {
  id: "cnn-step", title: `${network} step`, kind: "cnnEpoch", network, batch, lr: network === "cnn" ? 0.05 : 0.9, samples, warmupSteps: 20,
  warmup: 0, minRuns: 1, minTimeMs: 0,
} as never);
run(0, 20 * batch);
const rows: number[] = [], medians: number[] = [];
const stepTimes = new Float64Array(steps);
for (let r = 0; r < runs; r++) {
  const cpu0 = process.cpuUsage(), faults0 = process.resourceUsage().minorPageFault, t0 = performance.now();
  for (let s = 0; s < steps; s++) {
    const ts = performance.now();
    run(s * batch, (s + 1) * batch);
    stepTimes[s] = performance.now() - ts;
  }
  const wall = (performance.now() - t0) / steps, cpu = process.cpuUsage(cpu0);
  const faults = (process.resourceUsage().minorPageFault - faults0) / steps;
  const median = stepTimes.slice().sort()[steps >> 1];
  rows.push(wall);
  medians.push(median);
  console.log(`wall ${wall.toFixed(2)} ms/step  median step ${median.toFixed(2)} ms  cpu ${((cpu.user + cpu.system) / 1000 / steps).toFixed(2)} ms/step  faults ${faults.toFixed(0)}/step`);
}
const mid = (a: number[]): number => a.sort((x, y) => x - y)[a.length >> 1];
console.log(`median wall ${mid(rows).toFixed(2)} ms/step, median step ${mid(medians).toFixed(2)} ms`);
