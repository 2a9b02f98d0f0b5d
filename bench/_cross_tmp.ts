import { gemmNative, gemmWasm, gemmJs, nativeGemmInfo } from "/work/main/packages/autograd/src/kernels/gemm.ts";
console.log(nativeGemmInfo());
type G = typeof gemmJs;
function time(f: G, t: [boolean, boolean, number, number, number], T: any): number {
  const [ta, tb, m, n, k] = t;
  const a = new T(m * k).fill(0.5), b = new T(k * n).fill(0.25), c = new T(m * n);
  const lda = ta ? m : k, ldb = tb ? k : n;
  const run = () => f(ta, tb, m, n, k, a, 0, lda, b, 0, ldb, c, 0, n, 0);
  let reps = 1; for (;;) { const s = performance.now(); for (let i = 0; i < reps; i++) run(); if (performance.now() - s > 20) break; reps *= 2; }
  const res: number[] = [];
  for (let r = 0; r < 7; r++) { const s = performance.now(); for (let i = 0; i < reps; i++) run(); res.push((performance.now() - s) / reps); }
  res.sort((x, y) => x - y); return res[3];
}
const shapes: [boolean, boolean, number, number, number][] = process.argv[2] === "mlp" ? [
  [false, false, 128, 128, 784], [true, false, 784, 128, 128], [false, true, 128, 784, 128], [false, false, 128, 10, 128], [true, false, 128, 10, 128], [false, true, 128, 128, 10],
  [false, false, 32, 128, 784], [true, false, 784, 128, 32], [false, true, 32, 784, 128], [false, false, 32, 10, 128],
  [false, false, 256, 256, 256], [false, false, 512, 512, 512], [false, false, 1024, 1024, 1024],
] : [4, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64].map((s) => [false, false, s, s, s]);
for (const s of shapes) {
  const flop = 2 * s[2] * s[3] * s[4];
  const row = [s.join("x").replace(/false/g, "N").replace(/true/g, "T")];
  for (const [name, f] of [["native", gemmNative], ["wasm", gemmWasm], ...(process.argv[2] === "mlp" ? [] : [["js", gemmJs]])] as [string, G][]) {
    const ms = time(f, s, Float32Array);
    row.push(`${name} ${(ms * 1000).toFixed(2)}us ${(flop / ms / 1e6).toFixed(1)}GF`);
  }
  console.log(row.join("  |  "));
}
