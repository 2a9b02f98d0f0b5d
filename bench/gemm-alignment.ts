/**
 * How much it costs the native gemm when the MLP's operands do not start on a 32-byte boundary. A large
 * Float32Array (from 128 KB, which glibc maps on its own pages) starts 16 bytes past one, so the batch,
 * W1 and their gradients all do; smaller ones land anywhere on 16 bytes. Times each batch-128 product
 * with its operands at float offset 0 and 4 of 32-byte aligned storage, on 1 and 2 threads, alternating
 * the two placements in one process; prints the best of each and the ratio misaligned / aligned.
 *   pnpm exec tsx bench/gemm-alignment.ts [--rounds=25] [--reps=40]
 */
import { parseArgs } from "node:util";
import { gemmNative, nativeGemmAvailable, nativeGemmInfo, nativeGemmThreads } from "../packages/autograd/src/kernels/gemm.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "25" }, reps: { type: "string", default: "40" } } });
const rounds = Number(values.rounds), reps = Number(values.reps);
if (!nativeGemmAvailable()) {
  console.error(`gemm-alignment: needs the native gemm (${nativeGemmInfo()}); run \`pnpm build:native\``);
  process.exit(1);
}

/** `length` floats at `offset` floats past a 32-byte boundary. */
function placed(length: number, offset: number, seed: number): Float32Array {
  // a WebAssembly memory's buffer starts on a page, so a view `offset` floats in sits where asked
  // (typed here: the project's TypeScript lib has no WebAssembly declarations)
  const { Memory } = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } } }).WebAssembly;
  const memory = new Memory({ initial: Math.ceil((4 * (length + 16)) / 65536) });
  const out = new Float32Array(memory.buffer, 4 * offset, length);
  let s = seed;
  for (let i = 0; i < length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

const products = [
  { name: "forward x @ W1ᵀ (NT)", ta: false, tb: true, m: 128, n: 128, k: 784 },
  { name: "dW1 = gᵀ @ x (TN)", ta: true, tb: false, m: 128, n: 784, k: 128 },
  { name: "dX = g @ W1 (NN)", ta: false, tb: false, m: 128, n: 784, k: 128 },
];
const previous = nativeGemmThreads();
console.log(`native gemm: ${nativeGemmInfo()}`);
console.log("| product | threads | aligned GFLOP/s | 16 bytes off GFLOP/s | time off / aligned |");
console.log("| --- | ---: | ---: | ---: | ---: |");
for (const threads of [1, 2]) {
  nativeGemmThreads(threads);
  for (const p of products) {
    const lda = p.ta ? p.m : p.k, ldb = p.tb ? p.k : p.n;
    const operands = [0, 4].map((offset) => ({
      a: placed(p.m * p.k, offset, 1), b: placed(p.k * p.n, offset, 2), c: placed(p.m * p.n, offset, 3),
    }));
    const best = [Infinity, Infinity];
    for (let r = 0; r < rounds; r++) {
      for (let v = 0; v < 2; v++) {
        const { a, b, c } = operands[(v + r) % 2];
        const start = performance.now();
        for (let i = 0; i < reps; i++) gemmNative(p.ta, p.tb, p.m, p.n, p.k, a, 0, lda, b, 0, ldb, c, 0, p.n, 0);
        const ms = (performance.now() - start) / reps;
        const which = (v + r) % 2;
        best[which] = Math.min(best[which], ms);
      }
    }
    const gflops = (ms: number) => ((2 * p.m * p.n * p.k) / ms / 1e6).toFixed(1);
    console.log(`| ${p.name} | ${threads} | ${gflops(best[0])} | ${gflops(best[1])} | ${(best[1] / best[0]).toFixed(3)} |`);
  }
}
nativeGemmThreads(previous);
