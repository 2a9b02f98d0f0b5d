/**
 * The WebAssembly gemm with and without fused multiply-add (wasmGemmFma). Unfused, every depth step of an
 * element is a rounded product and a rounded sum; fused, one relaxed_madd with a single rounding; in both the
 * depth is summed in order, so a float32 product must equal, bit for bit, a sequential loop that does the
 * same arithmetic (the fused one emulated exactly with round-to-odd), whatever the thread count. Node's
 * WebAssembly has relaxed SIMD only behind a flag, so the fused cases run in a child process started with it;
 * headless Chromium runs them by default (test/browser-wasm-threads.test.ts).
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { gemmWasm, wasmGemmAvailable, wasmGemmFma } from "../packages/autograd/src/kernels/gemm.ts";
import { fusedF32, gemmSequential, type Operands, unfusedF32 } from "./helpers/gemm-sequential.ts";

const url = (path: string): string => JSON.stringify(new URL(path, import.meta.url).href);

/** Deterministic values in [-1, 1). */
function fill(length: number, seed: number, f64 = false): Float32Array | Float64Array {
  const a = f64 ? new Float64Array(length) : new Float32Array(length);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    a[i] = s / 2 ** 31 - 1 + (f64 ? s / 2 ** 61 : 0);
  }
  return a;
}

/** The products both halves of the file compute: every transpose, beta 0 and 1, odd sizes, one split with
 *  the helper (2^20 multiply-adds or more) and one too small to split. */
const CASES: Array<Omit<Operands, "a" | "b" | "c"> & { seed: number }> = [
  { transA: false, transB: false, m: 37, n: 29, k: 300, beta: 0, seed: 1 },
  { transA: true, transB: false, m: 21, n: 40, k: 131, beta: 1, seed: 2 },
  { transA: false, transB: true, m: 64, n: 24, k: 257, beta: 0, seed: 3 },
  { transA: true, transB: true, m: 9, n: 13, k: 70, beta: 1, seed: 4 },
  { transA: false, transB: true, m: 128, n: 128, k: 784, beta: 0, seed: 5 },
];

function operands(t: (typeof CASES)[number], f64 = false): Operands {
  return { ...t, a: fill(t.m * t.k, t.seed, f64), b: fill(t.k * t.n, t.seed + 100, f64), c: fill(t.m * t.n, t.seed + 200, f64) };
}

describe.skipIf(!wasmGemmAvailable())("WebAssembly gemm: fused multiply-add", () => {
  it("Node: the kernels do not fuse by default, and each float32 element is the in-order sum of rounded products", () => {
    if (process.env.TAPEGRAD_WASM_FMA === "1") return;
    expect(wasmGemmFma()).toBe(false);
    for (const t of CASES) {
      const o = operands(t);
      const c = Float32Array.from(o.c);
      const lda = t.transA ? t.m : t.k, ldb = t.transB ? t.k : t.n;
      gemmWasm(t.transA, t.transB, t.m, t.n, t.k, o.a, 0, lda, o.b, 0, ldb, c, 0, t.n, t.beta);
      const expected = gemmSequential(o, unfusedF32);
      for (let i = 0; i < c.length; i++) if (!Object.is(c[i], expected[i])) expect.fail(`case ${t.seed}: C[${i}] = ${c[i]}, expected ${expected[i]}`);
    }
    // the kernels are compiled now: allowing FMA that this runtime lacks changes nothing, forbidding it is what they do
    expect(wasmGemmFma(true)).toBe(false);
    expect(wasmGemmFma(false)).toBe(false);
    expect(() => wasmGemmFma("yes" as unknown as boolean)).toThrow(/wasmGemmFma: expected true or false, got yes/);
  });

  it("the fused emulation rounds once: it differs from the unfused step where the product's low bits matter", () => {
    // (1 + 2^-12)² = 1 + 2^-11 + 2^-24: the product rounds to 1 + 2^-11 (ties to even), the fused sum keeps it
    const x = 1 + 2 ** -12;
    expect(unfusedF32(x, x, -1)).toBe(2 ** -11);
    expect(fusedF32(x, x, -1)).toBe(2 ** -11 + 2 ** -24);
    // (1 + 2^-23)(1 - 2^-24) + 2^-47(1 + 2^-23) = 1 + 2^-24 + 2^-70, just above float32's halfway point between
    // 1 and 1 + 2^-23: a plain double sum loses the 2^-70 and then rounds the tie to 1
    const [a, b, c] = [1 + 2 ** -23, 1 - 2 ** -24, 2 ** -47 * (1 + 2 ** -23)];
    expect(Math.fround(a * b + c)).toBe(1);
    expect(fusedF32(a, b, c)).toBe(1 + 2 ** -23);
    expect(fusedF32(3, 5, 7)).toBe(22);
  });

  it("Node with relaxed SIMD and TAPEGRAD_WASM_FMA=1: fused products equal the in-order fused loop, on two threads and on one", () => {
    const source = `
      import { gemmWasm, initWasmThreads, wasmGemmFma, wasmGemmThreads, wasmHelperStats } from ${url("../packages/autograd/src/kernels/gemm.ts")};
      const cases = JSON.parse(process.env.CASES);
      ${fill.toString()}
      await initWasmThreads();
      const out = { fma: wasmGemmFma(), threads: wasmGemmThreads(), results: [] };
      for (const t of cases) {
        const f64 = t.f64 === true;
        const a = fill(t.m * t.k, t.seed, f64), b = fill(t.k * t.n, t.seed + 100, f64);
        const lda = t.transA ? t.m : t.k, ldb = t.transB ? t.k : t.n;
        const run = (threads) => {
          wasmGemmThreads(threads);
          const c = fill(t.m * t.n, t.seed + 200, f64);
          gemmWasm(t.transA, t.transB, t.m, t.n, t.k, a, 0, lda, b, 0, ldb, c, 0, t.n, t.beta);
          return Buffer.from(c.buffer).toString("base64");
        };
        // on two threads 30 times: the helper, which may start late, takes part in some
        const parts = wasmHelperStats().parts;
        const twos = Array.from({ length: 30 }, () => run(2));
        out.results.push({ two: twos[0], same: twos.every((x) => x === twos[0]), one: run(1), helped: wasmHelperStats().parts > parts });
      }
      try { wasmGemmFma(false); out.refused = ""; } catch (error) { out.refused = error.message; }
      process.stdout.write(JSON.stringify(out));
    `;
    const cases = [...CASES, ...CASES.slice(0, 3).map((t) => ({ ...t, f64: true }))];
    // Node 20 has relaxed SIMD behind this flag; a later Node that ships it may no longer know the flag
    const flag = spawnSync(process.execPath, ["--experimental-wasm-relaxed-simd", "-e", "0"]).status === 0 ? ["--experimental-wasm-relaxed-simd"] : [];
    const run = spawnSync(process.execPath, [...flag, "--import", "tsx", "--input-type=module", "-e", source], {
      encoding: "utf8", env: { ...process.env, TAPEGRAD_BACKEND: "wasm", TAPEGRAD_WASM_FMA: "1", CASES: JSON.stringify(cases) },
    });
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { fma: boolean; threads: number; refused: string; results: Array<{ two: string; same: boolean; one: string; helped: boolean }> };
    if (flag.length === 0 && !out.fma) return; // this Node's WebAssembly has no relaxed SIMD at all
    expect(out.fma).toBe(true);
    expect(out.refused).toMatch(/wasmGemmFma\(false\): the WebAssembly kernels are already compiled with fused multiply-add; call it before the first product/);
    cases.forEach((t, index) => {
      const r = out.results[index];
      expect(r.same, `case ${t.seed}: 30 products on two threads give the same bits`).toBe(true);
      expect(r.two, `case ${t.seed}: two threads and one give the same bits`).toBe(r.one);
      const f64 = "f64" in t;
      const bytes = Buffer.from(r.two, "base64");
      const c = f64 ? new Float64Array(bytes.buffer, bytes.byteOffset, t.m * t.n) : new Float32Array(bytes.buffer, bytes.byteOffset, t.m * t.n);
      const o = operands(t, f64);
      if (!f64) {
        const expected = gemmSequential(o, fusedF32);
        for (let i = 0; i < c.length; i++) if (!Object.is(c[i], expected[i])) expect.fail(`case ${t.seed}: C[${i}] = ${c[i]}, the fused loop gives ${expected[i]}`);
      } else {
        // float64 has no exact fused emulation here: within rounding of the plain loop, and not equal to it
        const plain = gemmSequential(o, (x, y, acc) => acc + x * y);
        let differ = 0;
        for (let i = 0; i < c.length; i++) {
          expect(Math.abs(c[i] - plain[i])).toBeLessThan(1e-12 * (1 + Math.abs(plain[i])) * t.k);
          if (c[i] !== plain[i]) differ++;
        }
        expect(differ, `case ${t.seed} (float64): some elements show the single rounding`).toBeGreaterThan(0);
      }
    });
    // the large product was split with the helper where the runtime shares memory
    if (out.threads === 2) expect(out.results[4].helped).toBe(true);
  });

  it("TAPEGRAD_WASM_FMA takes 1 or 0, and says so otherwise", () => {
    const source = `import { wasmGemmFma } from ${url("../packages/autograd/src/kernels/gemm.ts")}; wasmGemmFma();`;
    const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", source], {
      encoding: "utf8", env: { ...process.env, TAPEGRAD_WASM_FMA: "yes" },
    });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/TAPEGRAD_WASM_FMA=yes: expected 1 \(allow fused multiply-add\) or 0/);
  });
});
