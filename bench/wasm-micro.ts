/**
 * Small measurements behind the WebAssembly backend's two-thread design (bench/NOTES.md, "Owner
 * computes"), best of 20 rounds each, in Node:
 * - how long a cache line takes to go from one core to the other and back (two threads handing an Int32
 *   to each other through a SharedArrayBuffer);
 * - SGD's update of the MLP's first weight (100,352 floats) on pinned arrays, split and on one thread,
 *   against the loops module's copies;
 * - the MLP's three n = 10 products at batch 128;
 * - copying 64 KB into a SharedArrayBuffer against into an ordinary ArrayBuffer.
 *
 *   TAPEGRAD_BACKEND=wasm pnpm exec tsx bench/wasm-micro.ts
 */
import { Worker } from "node:worker_threads";
import { axpy, gemm, initWasmThreads, pinArray, wasmGemmThreads } from "../packages/autograd/src/kernels/index.ts";
import { axpyPinned } from "../packages/autograd/src/kernels/gemm-wasm.ts";

/** Best time of one call of `f`, in microseconds (rounds of `reps` calls). */
function best(f: () => void, reps: number): number {
  let fastest = Infinity;
  for (let round = 0; round < 20; round++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < reps; i++) f();
    fastest = Math.min(fastest, Number(process.hrtime.bigint() - started) / 1000 / reps);
  }
  return fastest;
}

async function roundTripNs(trips: number): Promise<number> {
  const cell = new Int32Array(new SharedArrayBuffer(64));
  const other = new Worker(`const { workerData } = require("node:worker_threads"); const c = new Int32Array(workerData.sab);
    for (let i = 0; i < workerData.trips; i++) { while (Atomics.load(c, 0) !== 2 * i + 1) {} Atomics.store(c, 0, 2 * i + 2); }`,
  { eval: true, workerData: { sab: cell.buffer, trips } });
  await new Promise((resolve) => other.once("online", resolve));
  const started = process.hrtime.bigint();
  for (let i = 0; i < trips; i++) {
    Atomics.store(cell, 0, 2 * i + 1);
    while (Atomics.load(cell, 0) !== 2 * i + 2) { /* the other thread answers */ }
  }
  const ns = Number(process.hrtime.bigint() - started) / trips;
  await other.terminate();
  return ns;
}

const info = await initWasmThreads();
const lines: string[] = [`threads: ${info.reason}`];
lines.push(`cache line, one core to the other and back: ${(await roundTripNs(200_000)).toFixed(0)} ns`);

const n = 100_352;
const x = pinArray("float32", n), y = pinArray("float32", n);
if (x && y) {
  const xPlain = new Float32Array(n), yPlain = new Float32Array(n);
  wasmGemmThreads(2);
  const split = best(() => axpyPinned(-0.1, x, 0, y, 0, n), 50);
  wasmGemmThreads(1);
  const alone = best(() => axpyPinned(-0.1, x, 0, y, 0, n), 50);
  wasmGemmThreads(2);
  const copied = best(() => axpy(-0.1, xPlain, 0, yPlain, 0, n), 50);
  lines.push(`SGD update of ${n} floats: pinned ${split.toFixed(1)} µs split, ${alone.toFixed(1)} µs on one thread; through the loops module's copies ${copied.toFixed(1)} µs`);
} else lines.push("SGD update: no pinned memory here (TAPEGRAD_BACKEND=wasm with shared memory needed)");

const a = Float32Array.from({ length: 128 * 128 }, (_, i) => Math.sin(i));
const g = Float32Array.from({ length: 128 * 10 }, (_, i) => Math.cos(i));
const w2 = pinArray("float32", 10 * 128) ?? new Float32Array(10 * 128);
w2.set(Float32Array.from({ length: 1280 }, (_, i) => Math.sin(3 * i)));
const logits = new Float32Array(128 * 10), dW2 = new Float32Array(10 * 128), da = new Float32Array(128 * 128);
lines.push(`n = 10 products at batch 128: logits ${best(() => gemm(false, true, 128, 10, 128, a, 0, 128, w2, 0, 128, logits, 0, 10, 0), 100).toFixed(1)} µs, `
  + `dW2 ${best(() => gemm(true, false, 10, 128, 128, g, 0, 10, a, 0, 128, dW2, 0, 128, 0), 100).toFixed(1)} µs, `
  + `da ${best(() => gemm(false, false, 128, 128, 10, g, 0, 10, w2, 0, 128, da, 0, 128, 0), 100).toFixed(1)} µs`);

const src = Float32Array.from({ length: 16384 }, (_, i) => i);
const plain = new Float32Array(16384), shared = new Float32Array(new SharedArrayBuffer(16384 * 4));
lines.push(`copying 64 KB: into an ArrayBuffer ${best(() => plain.set(src), 100).toFixed(2)} µs, into a SharedArrayBuffer ${best(() => shared.set(src), 100).toFixed(2)} µs`);
console.log(lines.join("\n"));
process.exit(0);
