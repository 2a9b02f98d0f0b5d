import { afterEach, describe, expect, it, vi } from "vitest";
import fc from "fast-check";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { fileURLToPath, pathToFileURL } from "node:url";
import { dirname, resolve } from "node:path";
import {
  gemm, gemmJs, gemmNative, gemmReference, gemmWasm, nativeGemmAvailable, nativeGemmInfo, nativeGemmThreads,
  nativeGemmTiles, nativeHelperStats,
  initWasmThreads, wasmGemmAvailable, wasmGemmThreads, wasmHelperStats, wasmThreadingInfo, type FloatArray,
} from "../packages/autograd/src/kernels/gemm.ts";
import { axpyPinned, planChunks } from "../packages/autograd/src/kernels/gemm-wasm.ts";
import { chunkSpan, JOB_PARAMS, MAX_CHUNKS, runJob, SLOTS, TAG_MASK } from "../packages/autograd/src/kernels/wasm-parts.ts";
import { loadWasmBackend } from "../packages/autograd/src/kernels/wasm-backend.ts";
import { pinArray } from "../packages/autograd/src/kernels/wasm-heap.ts";

type Gemm = typeof gemmReference;
type FloatArrayConstructor = Float32ArrayConstructor | Float64ArrayConstructor;

/** Deterministic values in [-1, 1) so a failing case replays from its seed. */
function filled(Type: FloatArrayConstructor, length: number, seed: number): FloatArray {
  const out = new Type(length);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = (s / 2 ** 31) - 1;
  }
  return out;
}

interface Case {
  transA: boolean; transB: boolean; m: number; n: number; k: number;
  aOffset: number; bOffset: number; cOffset: number;
  aPad: number; bPad: number; cPad: number; beta: 0 | 1; float64: boolean; seed: number;
}

/** Runs `impl` and the reference on the same operands and compares every element of C, padding included. */
function checkAgainstReference(impl: Gemm, t: Case): void {
  checkedProduct(impl, t);
}

/** checkAgainstReference, returning impl's C (padding included). */
function checkedProduct(impl: Gemm, t: Case): FloatArray {
  const Type = t.float64 ? Float64Array : Float32Array;
  const [aRows, aCols] = t.transA ? [t.k, t.m] : [t.m, t.k];
  const [bRows, bCols] = t.transB ? [t.n, t.k] : [t.k, t.n];
  const lda = aCols + t.aPad, ldb = bCols + t.bPad, ldc = t.n + t.cPad;
  const a = filled(Type, t.aOffset + aRows * lda + 3, t.seed);
  const b = filled(Type, t.bOffset + bRows * ldb + 3, t.seed + 1);
  const expected = filled(Type, t.cOffset + t.m * ldc + 3, t.seed + 2);
  if (t.beta === 0) {
    // beta 0 must not read C: poison the output region.
    for (let i = 0; i < t.m; i++) expected.fill(NaN, t.cOffset + i * ldc, t.cOffset + i * ldc + t.n);
  }
  const actual = expected.slice();
  impl(t.transA, t.transB, t.m, t.n, t.k, a, t.aOffset, lda, b, t.bOffset, ldb, actual, t.cOffset, ldc, t.beta);
  gemmReference(t.transA, t.transB, t.m, t.n, t.k, a, t.aOffset, lda, b, t.bOffset, ldb, expected, t.cOffset, ldc, t.beta);
  // Operands lie in [-1, 1], so each output's rounding error grows at most linearly with k.
  const tolerance = (t.float64 ? 1e-13 : 2e-6) * (t.k + 1);
  for (let i = 0; i < actual.length; i++) {
    const ok = Object.is(actual[i], expected[i]) || Math.abs(actual[i] - expected[i]) <= tolerance;
    if (!ok) {
      expect.fail(`C[${i}] = ${actual[i]}, reference ${expected[i]} (tolerance ${tolerance}) for ${JSON.stringify(t)}`);
    }
  }
  return actual;
}

const size = (max: number) => fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max }));
const caseArbitrary = (maxRows: number, maxDepth: number): fc.Arbitrary<Case> => fc.record({
  transA: fc.boolean(), transB: fc.boolean(),
  m: size(maxRows), n: size(maxRows), k: size(maxDepth),
  aOffset: fc.integer({ min: 0, max: 5 }), bOffset: fc.integer({ min: 0, max: 5 }), cOffset: fc.integer({ min: 0, max: 5 }),
  aPad: fc.integer({ min: 0, max: 3 }), bPad: fc.integer({ min: 0, max: 3 }), cPad: fc.integer({ min: 0, max: 3 }),
  beta: fc.constantFrom<0 | 1>(0, 1), float64: fc.boolean(), seed: fc.nat(),
});

const flagCombos = [[false, false], [true, false], [false, true], [true, true]] as const;

describe.skipIf(!wasmGemmAvailable())("gemmWasm on two threads", () => {
  it("planChunks tiles the extent with whole units, large chunks at both ends and smaller ones between", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 5000 }), fc.constantFrom(4, 8, 16), fc.integer({ min: 1, max: 2 ** 26 }), (extent, unit, work) => {
      const plan = planChunks(extent, unit, work);
      if (extent < 2 * unit) {
        expect(plan).toBeNull();
        return;
      }
      const { chunks, chunkSize, bigFront, bigBack, backStart, tailSize } = plan!;
      expect(chunks).toBeGreaterThanOrEqual(2);
      expect(chunks).toBeLessThanOrEqual(MAX_CHUNKS);
      let end = 0;
      for (let c = 0; c < chunks; c++) {
        // the rule runJob applies (wasm-parts.ts)
        const [start, size] = chunkSpan(c, chunks, chunkSize, bigFront, bigBack, backStart, tailSize);
        expect(start).toBe(end);
        expect(start % unit).toBe(0);
        expect(start).toBeLessThan(extent);
        expect(size).toBeGreaterThan(0);
        expect(size).toBeLessThanOrEqual(c < bigFront || c >= chunks - bigBack ? chunkSize : tailSize);
        end = Math.min(extent, start + size);
      }
      expect(end).toBe(extent);
      expect(tailSize % unit).toBe(0);
      expect(tailSize).toBeLessThanOrEqual(chunkSize);
    }), { numRuns: 500 });
    // the MLP's forward product (C 128 × 128, 16-column units): 32 columns at each end, four chunks of 16 between
    expect(planChunks(128, 16, 128 * 128 * 784)).toEqual({ chunks: 6, chunkSize: 32, bigFront: 1, bigBack: 1, backStart: 96, tailSize: 16 });
  });

  it("gemmWasm: a helper worker computes part of large products, with the same bits as one thread", async () => {
    const previous = wasmGemmThreads(2);
    try {
      const info = await initWasmThreads();
      if (info.threads < 2) return; // no shared WebAssembly memory in this runtime: one thread only
      expect(wasmHelperStats().ready).toBe(true);
      const before = wasmHelperStats().parts;
      // the MLP's three layouts, odd sizes under every flag (chunks of rows and of columns, a last chunk
      // narrower than the others), and a square cut into many chunks
      const shapes: [number, number, number, (typeof flagCombos)[number][]][] = [
        [128, 128, 784, [[false, false]]], [784, 128, 128, [[true, false]]], [128, 784, 128, [[false, true]]],
        [67, 133, 301, [...flagCombos]], [133, 67, 301, [...flagCombos]], [9, 1000, 300, [...flagCombos]],
        // C too narrow to cut by columns: row chunks (each thread packs all of a transposed B)
        [1000, 9, 300, [...flagCombos]],
        [512, 512, 512, [[false, false]]],
      ];
      for (const [m, n, k, flags] of shapes) {
        for (const [transA, transB] of flags) {
          for (const [beta, float64] of [[0, false], [1, false], [0, true]] as const) {
            const t: Case = { transA, transB, m, n, k, aOffset: 1, bOffset: 2, cOffset: 3, aPad: 1, bPad: 2, cPad: 1,
              beta, float64, seed: m + n + k };
            wasmGemmThreads(2);
            const two = checkedProduct(gemmWasm, t);
            wasmGemmThreads(1);
            const one = checkedProduct(gemmWasm, t);
            for (let i = 0; i < one.length; i++) {
              if (!Object.is(one[i], two[i])) expect.fail(`C[${i}]: two threads ${two[i]}, one ${one[i]} for ${JSON.stringify(t)}`);
            }
          }
        }
      }
      expect(wasmHelperStats().parts).toBeGreaterThan(before);
    } finally {
      wasmGemmThreads(previous);
    }
  });

  it("gemmWasm writes a pinned C in place, split by rows or columns, with the same bits as an unpinned C on one thread", async () => {
    const previous = wasmGemmThreads(2);
    try {
      await initWasmThreads();
      // the MLP's weight gradient (gᵀ @ x, x pinned: rows), its forward product (columns), a C of whole
      // tiles fed by copied operands, and shapes that are not whole tiles (C copied back as usual)
      const cases: [boolean, boolean, number, number, number, boolean][] = [
        [true, false, 128, 784, 128, true], [false, true, 128, 128, 784, true], [false, false, 64, 256, 200, false],
        [true, false, 66, 784, 128, true], [false, false, 128, 130, 99, false],
      ];
      for (const [transA, transB, m, n, k, pinB] of cases) {
        for (const beta of [0, 1] as const) {
          const a = filled(Float32Array, m * k, m + k) as Float32Array;
          const bValues = filled(Float32Array, k * n, n + k) as Float32Array;
          const start = filled(Float32Array, m * n, m + n) as Float32Array;
          const b = pinB ? pinArray("float32", k * n) : new Float32Array(k * n);
          const c = pinArray("float32", m * n);
          if (!c || !b) return; // no shared WebAssembly memory here
          b.set(bValues);
          c.set(start);
          const [lda, ldb] = [transA ? m : k, transB ? k : n];
          wasmGemmThreads(2);
          gemmWasm(transA, transB, m, n, k, a, 0, lda, b, 0, ldb, c, 0, n, beta);
          const expected = start.slice();
          wasmGemmThreads(1);
          gemmWasm(transA, transB, m, n, k, a, 0, lda, bValues, 0, ldb, expected, 0, n, beta);
          for (let i = 0; i < m * n; i++) {
            if (!Object.is(c[i], expected[i])) expect.fail(`C[${i}] = ${c[i]}, expected ${expected[i]} (${transA} ${transB} ${m}×${n}×${k} beta ${beta})`);
          }
        }
      }
    } finally {
      wasmGemmThreads(previous);
    }
  });

  it("axpyPinned: y += alpha·x on pinned float32 arrays, split with the helper, the same bits as the TypeScript loop", async () => {
    const previous = wasmGemmThreads(2);
    try {
      await initWasmThreads();
      const before = wasmHelperStats().posted;
      for (const n of [1025, 4097, 70_001, 100_352]) {
        const xs = filled(Float32Array, n + 8, n) as Float32Array, ys = filled(Float32Array, n + 8, n + 1) as Float32Array;
        xs[5] = NaN; ys[6] = Infinity; xs[7] = -0; ys[7] = 0; ys[8] = 1e-42;
        const x = pinArray("float32", n + 8), y = pinArray("float32", n + 8);
        if (!x || !y) return; // no shared WebAssembly memory here
        x.set(xs);
        y.set(ys);
        const alpha = -0.1;
        expect(axpyPinned(alpha, x, 3, y, 5, n)).toBe(true);
        for (let i = 0; i < n; i++) ys[5 + i] += alpha * xs[3 + i];
        for (let i = 0; i < n + 8; i++) if (!Object.is(y[i], ys[i])) expect.fail(`n = ${n}: y[${i}] = ${y[i]}, expected ${ys[i]}`);
      }
      // the two long ones were posted to the helper (which takes chunks from the back if it is awake in time)
      if (wasmGemmThreads() === 2) expect(wasmHelperStats().posted - before).toBe(2);
      // arrays that are not pinned, short ones (1 KiB: not checked for pinning), or arrays that overlap at a
      // shift are left to the TypeScript loop
      const short = pinArray("float32", 256);
      if (short) expect(axpyPinned(1, short, 0, short, 0, 256)).toBe(false);
      expect(axpyPinned(1, new Float32Array(5000), 0, new Float32Array(5000), 0, 5000)).toBe(false);
      const shared = pinArray("float32", 10_000);
      if (shared) expect(axpyPinned(1, shared, 0, shared, 1, 5000)).toBe(false);
    } finally {
      wasmGemmThreads(previous);
    }
  });

  it("runJob: a helper whose claim belongs to a later job with the same 7-bit tag reloads that job's parameters", () => {
    const be = loadWasmBackend();
    const x = pinArray("float32", 64), y = pinArray("float32", 64);
    if (!be || !x || !y) return; // no shared WebAssembly memory here
    x.set(filled(Float32Array, 64, 1));
    y.set(filled(Float32Array, 64, 2));
    const expected = y.slice();
    for (let i = 0; i < 64; i++) expected[i] += 0.5 * x[i];
    const ctl = new Int32Array(new SharedArrayBuffer(SLOTS.COUNT * 4));
    const bits = new Int32Array(new Float64Array([0.5]).buffer);
    const job: Record<string, number> = { kind: 1, rawA: x.byteOffset / 4, rawB: y.byteOffset / 4, n: 64, alphaLo: bits[0], alphaHi: bits[1],
      chunkSize: 32, chunks: 2, tailSize: 32, bigFront: 0, bigBack: 0, backStart: 64 };
    for (const [name, value] of Object.entries(job)) ctl[SLOTS.PARAMS + JOB_PARAMS[name as keyof typeof JOB_PARAMS]] = value;
    ctl[SLOTS.SEQ] = 130;
    ctl[SLOTS.CLAIM] = ((130 & TAG_MASK) << 24) | 2;
    // the helper read job 2's parameters (a product) and claims from job 130, whose tag is the same
    const stale = new Array<number>(JOB_PARAMS.COUNT).fill(0);
    stale[JOB_PARAMS.m] = 1 << 20;
    expect(runJob(be.kernels, be.config, ctl, stale, 1, 2, SLOTS, JOB_PARAMS)).toBe(2);
    expect(Array.from(y)).toEqual(Array.from(expected));
    expect(ctl[SLOTS.DONE]).toBe(2);
  });

  it("initWasmThreads: resolves once the helper is up, and wasmThreadingInfo gives the count and its reason", async () => {
    const previous = wasmGemmThreads(2);
    try {
      const info = await initWasmThreads();
      expect(info).toEqual(wasmThreadingInfo());
      if (info.threads === 2) {
        expect(info).toMatchObject({ helper: "ready", workerKind: "worker_threads" });
        expect(info.reason).toBe("2 threads: the caller and a helper worker thread (worker_threads) over shared WebAssembly memory");
        expect(wasmHelperStats().ready).toBe(true);
      } else {
        expect(info.reason).toMatch(/^1 thread: /);
      }
      wasmGemmThreads(1);
      expect(wasmGemmThreads()).toBe(1);
      expect(wasmThreadingInfo()).toMatchObject({ threads: 1, reason: "1 thread: wasmGemmThreads(1)" });
      // a product on one thread posts nothing to the helper
      const posted = wasmHelperStats().posted;
      checkAgainstReference(gemmWasm, { transA: false, transB: false, m: 256, n: 256, k: 256, aOffset: 0, bOffset: 0, cOffset: 0,
        aPad: 0, bPad: 0, cPad: 0, beta: 0, float64: false, seed: 3 });
      expect(wasmHelperStats().posted).toBe(posted);
    } finally {
      wasmGemmThreads(previous);
    }
  });

  it("the helper polls for the next product for TAPEGRAD_HELPER_SPIN_US before it sleeps: jobs posted meanwhile need no wake-up", () => {
    // fresh processes: the spin time is read when the backend loads. Twenty back-to-back products (one
    // thread posting) and, after a pause longer than the spin, one more.
    const kernels = resolve(dirname(fileURLToPath(import.meta.url)), "../packages/autograd/src/kernels/gemm.ts");
    const source = `
      import { gemmWasm, initWasmThreads, wasmHelperStats } from ${JSON.stringify(pathToFileURL(kernels).href)};
      const info = await initWasmThreads();
      const m = 128, n = 128, k = 784;
      const a = new Float32Array(m * k).fill(0.5), b = new Float32Array(k * n).fill(0.25), c = new Float32Array(m * n);
      const product = () => gemmWasm(false, false, m, n, k, a, 0, k, b, 0, n, c, 0, n, 0);
      const before = wasmHelperStats();
      for (let i = 0; i < 20; i++) product();
      const busy = wasmHelperStats();
      await new Promise((done) => setTimeout(done, 300));
      product();
      const after = wasmHelperStats();
      process.stdout.write(JSON.stringify({ threads: info.threads, posted: busy.posted - before.posted,
        busyWakes: busy.wakes - before.wakes, lateWakes: after.wakes - busy.wakes, right: c.every((v) => v === 98) }));
    `;
    const runWith = (spinUs: string) => {
      const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", source], {
        encoding: "utf8", env: { ...process.env, TAPEGRAD_BACKEND: "wasm", TAPEGRAD_WASM_THREADS: "2", TAPEGRAD_HELPER_SPIN_US: spinUs },
      });
      expect(run.status, run.stderr).toBe(0);
      return JSON.parse(run.stdout) as { threads: number; posted: number; busyWakes: number; lateWakes: number; right: boolean };
    };
    const polling = runWith("100000"); // 0.1 s: longer than any gap between these products
    if (polling.threads < 2) return; // no shared WebAssembly memory here
    expect(polling.right).toBe(true);
    expect(polling.posted).toBe(20);
    // only a job posted before the helper's first poll can find it asleep
    expect(polling.busyWakes).toBeLessThanOrEqual(1);
    expect(polling.lateWakes).toBe(1);
    const sleeping = runWith("0");
    expect(sleeping.right).toBe(true);
    expect(sleeping.busyWakes).toBeGreaterThanOrEqual(10);
    expect(sleeping.lateWakes).toBe(1);
    const bad = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", source], {
      encoding: "utf8", env: { ...process.env, TAPEGRAD_BACKEND: "wasm", TAPEGRAD_HELPER_SPIN_US: "soon" },
    });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/TAPEGRAD_HELPER_SPIN_US=soon: expected a number of microseconds >= 0/);
  });

  it("wasmGemmThreads: a count that is not a positive integer is an error", () => {
    for (const bad of [0, -1, 1.5, NaN]) expect(() => wasmGemmThreads(bad)).toThrow(/wasmGemmThreads: expected a positive integer/);
  });
});

describe("gemmReference", () => {
  it("gemmReference: multiplies a 2×3 by a 3×2 under every transpose combination", () => {
    const a = [1, 2, 3, 4, 5, 6]; // [[1,2,3],[4,5,6]]
    const b = [7, 8, 9, 10, 11, 12]; // [[7,8],[9,10],[11,12]]
    const aT = [1, 4, 2, 5, 3, 6];
    const bT = [7, 9, 11, 8, 10, 12];
    for (const [transA, transB] of flagCombos) {
      const c = new Float64Array(4);
      gemmReference(transA, transB, 2, 2, 3, Float64Array.from(transA ? aT : a), 0, transA ? 2 : 3,
        Float64Array.from(transB ? bT : b), 0, transB ? 3 : 2, c, 0, 2, 0);
      expect(Array.from(c)).toEqual([58, 64, 139, 154]);
    }
  });

  it("gemmReference: beta 1 accumulates into C", () => {
    const c = Float32Array.from([1, 1, 1, 1]);
    gemmReference(false, false, 2, 2, 1, Float32Array.from([1, 2]), 0, 1, Float32Array.from([3, 4]), 0, 2, c, 0, 2, 1);
    expect(Array.from(c)).toEqual([4, 5, 7, 9]);
  });
});

const implementations: [string, Gemm, boolean][] = [
  ["gemmJs", gemmJs, true],
  ["gemmWasm", gemmWasm, wasmGemmAvailable()],
  ["gemmNative", gemmNative, nativeGemmAvailable()],
  ["gemm", gemm, true],
];

if (!nativeGemmAvailable()) {
  console.info(`kernels-gemm: skipping gemmNative, the optional BLAS backend is ${nativeGemmInfo()} (pnpm build:native)`);
}

for (const [name, impl, available] of implementations) {
  describe.skipIf(!available)(name, () => {
    it(`${name}: matches the reference on random shapes, strides, offsets, flags, beta and dtypes`, () => {
      fc.assert(fc.property(caseArbitrary(70, 300), (t) => checkAgainstReference(impl, t)), { numRuns: 150 });
    });

    it(`${name}: matches the reference across cache-block boundaries`, () => {
      for (const [transA, transB] of flagCombos) {
        for (const float64 of [false, true]) {
          checkAgainstReference(impl, {
            transA, transB, m: 133, n: 37, k: 517, aOffset: 1, bOffset: 2, cOffset: 3,
            aPad: 1, bPad: 0, cPad: 2, beta: 1, float64, seed: 7,
          });
        }
      }
    });

    it(`${name}: handles 1-wide edges (vectors and outer products)`, () => {
      for (const [m, n, k] of [[1, 1, 1], [1, 37, 19], [37, 1, 19], [23, 29, 1], [1, 1, 300], [1, 300, 1]]) {
        for (const [transA, transB] of flagCombos) {
          checkAgainstReference(impl, {
            transA, transB, m, n, k, aOffset: 0, bOffset: 0, cOffset: 0,
            aPad: 0, bPad: 0, cPad: 0, beta: 0, float64: false, seed: m * 1000 + n * 10 + k,
          });
        }
      }
    });

    it(`${name}: writes C back correctly for whole-tile, wide and narrow rows, packed or strided`, () => {
      for (const [n, cPad] of [[64, 0], [64, 1], [72, 2], [10, 0], [8, 0]]) {
        for (const beta of [0, 1] as const) {
          for (const float64 of [false, true]) {
            checkAgainstReference(impl, { transA: false, transB: false, m: 9, n, k: 33, aOffset: 0, bOffset: 0,
              cOffset: 1, aPad: 0, bPad: 0, cPad, beta, float64, seed: n + cPad });
          }
        }
      }
    });

    it(`${name}: an empty depth (k = 0) zeroes C for beta 0 and keeps it for beta 1`, () => {
      for (const beta of [0, 1] as const) {
        const c = Float32Array.from([5, 6, 7, 8, 9]);
        impl(false, false, 2, 2, 0, new Float32Array(0), 0, 0, new Float32Array(0), 0, 2, c, 0, 2, beta);
        expect(Array.from(c)).toEqual(beta === 0 ? [0, 0, 0, 0, 9] : [5, 6, 7, 8, 9]);
      }
    });

    it(`${name}: results are reproducible when the kernel is reused with smaller shapes`, () => {
      // Scratch buffers are module-level: a large call followed by a small one must not leak stale data.
      checkAgainstReference(impl, { transA: false, transB: false, m: 200, n: 90, k: 300, aOffset: 0, bOffset: 0,
        cOffset: 0, aPad: 0, bPad: 0, cPad: 0, beta: 0, float64: false, seed: 11 });
      checkAgainstReference(impl, { transA: true, transB: true, m: 5, n: 3, k: 7, aOffset: 0, bOffset: 0,
        cOffset: 0, aPad: 0, bPad: 0, cPad: 0, beta: 0, float64: false, seed: 12 });
    });
  });
}

describe.skipIf(!nativeGemmAvailable())("gemmNative safety", () => {
  it("gemmNative: rejects operands too short for their offset, shape and stride instead of reading past them", () => {
    const c = new Float32Array(4);
    expect(() => gemmNative(false, false, 2, 2, 3, new Float32Array(5), 0, 3, new Float32Array(6), 0, 2, c, 0, 2, 0))
      .toThrow(/A is too short/);
    expect(() => gemmNative(false, false, 2, 2, 3, new Float32Array(6), 0, 3, new Float32Array(6), 1, 2, c, 0, 2, 0))
      .toThrow(/B is too short/);
    expect(() => gemmNative(false, false, 2, 2, 3, new Float32Array(6), 0, 3, new Float32Array(6), 0, 2, c, 1, 2, 0))
      .toThrow(/C is too short/);
  });

  it("gemmNative: products above the threading threshold (2^24 multiply-adds) match the reference, then small ones again", () => {
    // 320 x 256 x 208 = 17M multiply-adds: the threaded path where the machine has two cores or more
    for (const [m, n, k] of [[320, 256, 208], [5, 7, 3], [256, 257, 256]]) {
      const a = filled(Float64Array, m * k, 3), b = filled(Float64Array, k * n, 4);
      const actual = new Float64Array(m * n), expected = new Float64Array(m * n);
      gemmNative(false, true, m, n, k, a, 0, k, b, 0, k, actual, 0, n, 0);
      gemmReference(false, true, m, n, k, a, 0, k, b, 0, k, expected, 0, n, 0);
      // float64 sums of ≤ 256 terms in [-1, 1): only the summation order differs
      let worst = 0;
      for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
      expect(worst).toBeLessThan(1e-12);
    }
  });

  it("gemmNative: products split with the helper thread (2^20 to 2^24 multiply-adds) match the reference, every layout", () => {
    const previous = nativeGemmThreads(2); // the split runs with 2 threads even on a 1-core machine
    try {
      fc.assert(fc.property(
        fc.record({
          transA: fc.boolean(), transB: fc.boolean(),
          // m or n under 16 (two halves of 8, the split's alignment) forces the other dimension to be cut
          m: fc.oneof(fc.integer({ min: 1, max: 15 }), fc.integer({ min: 16, max: 300 })),
          n: fc.oneof(fc.integer({ min: 1, max: 15 }), fc.integer({ min: 16, max: 300 })),
          k: fc.integer({ min: 200, max: 900 }),
          aOffset: fc.integer({ min: 0, max: 3 }), bOffset: fc.integer({ min: 0, max: 3 }), cOffset: fc.integer({ min: 0, max: 3 }),
          aPad: fc.integer({ min: 0, max: 2 }), bPad: fc.integer({ min: 0, max: 2 }), cPad: fc.integer({ min: 0, max: 2 }),
          beta: fc.constantFrom<0 | 1>(0, 1), float64: fc.boolean(), seed: fc.integer({ min: 1, max: 1e6 }),
        }).filter((t) => t.m * t.n * t.k >= 2 ** 20 && t.m * t.n * t.k < 2 ** 24),
        (t) => checkAgainstReference(gemmNative, t),
      ), { numRuns: 40 });
    } finally {
      nativeGemmThreads(previous);
    }
  });

  it("nativeHelperStats: counts the split products and accounts for every part; reset restarts the counts", () => {
    const previous = nativeGemmThreads(2);
    try {
      nativeHelperStats(true);
      const m = 128, n = 128, k = 784; // the MLP's forward product: 12.8M multiply-adds, split
      const a = filled(Float32Array, m * k, 1), b = filled(Float32Array, n * k, 2), c = new Float32Array(m * n);
      for (let i = 0; i < 5; i++) gemmNative(false, true, m, n, k, a, 0, k, b, 0, k, c, 0, n, 0);
      gemmNative(false, true, 8, 8, 8, a, 0, 8, b, 0, 8, c, 0, 8, 0); // too small to split
      const s = nativeHelperStats()!;
      expect(s.posts).toBe(5);
      // each part was either started by the helper (and its delay counted) or taken back by the caller
      expect(s.lateHistogram.reduce((x, y) => x + y, 0) + s.takenBack).toBe(5);
      expect(s.lateHistogram).toHaveLength(6);
      expect(s.splitMs).toBeGreaterThan(0);
      expect(s.waitMs).toBeGreaterThanOrEqual(0);
      expect(s.waitMs).toBeLessThanOrEqual(s.splitMs);
      expect(s.lateUs).toBeGreaterThanOrEqual(0);
      expect(nativeHelperStats(true)!.posts).toBe(5);
      expect(nativeHelperStats()).toMatchObject({ posts: 0, takenBack: 0, lateUs: 0, splitMs: 0, waitMs: 0, lateHistogram: [0, 0, 0, 0, 0, 0] });
    } finally {
      nativeGemmThreads(previous);
    }
  });

  it("gemmNative: the MLP's products give the same answer, to rounding, split in two or on one thread", () => {
    const previous = nativeGemmThreads();
    try {
      for (const [transA, transB, m, n, k] of [[false, true, 128, 128, 784], [true, false, 128, 784, 128]] as const) {
        const a = filled(Float32Array, m * k, 5), b = filled(Float32Array, k * n, 6);
        const lda = transA ? m : k, ldb = transB ? k : n;
        const one = new Float32Array(m * n), two = new Float32Array(m * n);
        nativeGemmThreads(1);
        gemmNative(transA, transB, m, n, k, a, 0, lda, b, 0, ldb, one, 0, n, 0);
        nativeGemmThreads(2);
        gemmNative(transA, transB, m, n, k, a, 0, lda, b, 0, ldb, two, 0, n, 0);
        let worst = 0;
        for (let i = 0; i < one.length; i++) worst = Math.max(worst, Math.abs(one[i] - two[i]));
        // sums of ≤ 784 products in [-1, 1): float32 rounding of differently blocked sums only
        expect(worst).toBeLessThan(1e-4);
      }
    } finally {
      nativeGemmThreads(previous);
    }
  });

  it("gemmNative: two Node threads multiplying at once both get right answers (one splits, the other runs whole)", async () => {
    const addonPath = fileURLToPath(new URL("../packages/autograd/native/build/tapegrad_blas.node", import.meta.url));
    // each worker loads the addon (sharing its helper thread) and checks 200 split-size products against a
    // plain loop; run together, they contend for the helper
    const source = `
      const { parentPort, workerData } = require("node:worker_threads");
      const addon = require(workerData.addonPath);
      addon.setThreads(2);
      const m = 64, n = 96, k = 200 + workerData.id;
      const Type = workerData.id % 2 ? Float32Array : Float64Array; // float32: the tiles' chunked split
      const a = new Type(m * k).map((_, i) => ((i * 7 + workerData.id) % 13) - 6);
      const b = new Type(k * n).map((_, i) => ((i * 5) % 11) - 5);
      const want = new Type(m * n);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
        want[i * n + j] = s;
      }
      let wrong = 0;
      for (let r = 0; r < 200; r++) {
        const c = new Type(m * n).fill(NaN);
        addon.gemm(false, false, m, n, k, a, 0, k, b, 0, n, c, 0, n, 0);
        for (let i = 0; i < c.length; i++) if (c[i] !== want[i]) { wrong++; break; }
      }
      parentPort.postMessage(wrong);
    `;
    const run = (id: number) => new Promise<number>((resolve, reject) => {
      const worker = new Worker(source, { eval: true, workerData: { addonPath, id } });
      worker.once("message", resolve);
      worker.once("error", reject);
    });
    // small integers: every sum is exact in float32 and float64, so any split or thread gives exactly the
    // loop's answer
    expect(await Promise.all([run(1), run(2), run(3), run(4)])).toEqual([0, 0, 0, 0]);
  });

  it("gemmNative: with a helper that sleeps after every part (so the caller often takes its part back), every split is right", () => {
    const addonPath = fileURLToPath(new URL("../packages/autograd/native/build/tapegrad_blas.node", import.meta.url));
    // a fresh process: the spin time is read when the helper starts
    const source = `
      const addon = require(${JSON.stringify(addonPath)});
      addon.setThreads(2);
      let wrong = 0;
      for (let r = 0; r < 300; r++) {
        // odd rounds in float32: the tiles' chunked split (exact too: |sums| < 2^24)
        const Type = r % 2 ? Float32Array : Float64Array;
        const m = 40 + (r % 7) * 8, n = 72 + (r % 5), k = 300 + r;
        const a = new Type(m * k).map((_, i) => ((i * 7 + r) % 13) - 6);
        const b = new Type(k * n).map((_, i) => ((i * 5) % 11) - 5);
        const c = new Type(m * n).fill(NaN);
        addon.gemm(false, false, m, n, k, a, 0, k, b, 0, n, c, 0, n, 0);
        for (let i = 0; i < m && !wrong; i++) for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
          if (c[i * n + j] !== s) { wrong++; break; }
        }
      }
      process.stdout.write(String(wrong));
    `;
    const run = spawnSync(process.execPath, ["-e", source], {
      encoding: "utf8", env: { ...process.env, TAPEGRAD_HELPER_SPIN_US: "0" },
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toBe("0");
  });

  describe.skipIf(!nativeGemmTiles())("the gemm tiles (native/tile_gemm.c: AVX-512 where the CPU has it, else AVX2)", () => {
    const tileCase = (maxRows: number, maxDepth: number) => caseArbitrary(maxRows, maxDepth)
      .map((t) => ({ ...t, float64: false }))
      .filter((t) => !(t.transA && t.transB));

    it("gemmNative: float32 NN, NT and TN products match the reference with the tiles on and with BLAS", () => {
      // odd sizes cross every edge: rows not a multiple of the 3- or 4-row tiles, columns not a multiple of
      // 4 or 24 (and of 8: masked stores), depths not a multiple of 8 (masked loads)
      for (const on of [true, false]) {
        const previous = nativeGemmTiles(on);
        try {
          fc.assert(fc.property(tileCase(70, 300), (t) => checkAgainstReference(gemmNative, t)), { numRuns: 120 });
        } finally {
          nativeGemmTiles(previous);
        }
      }
    });

    it("gemmNative: a product split in chunks between the caller and the helper equals the one-thread product bit for bit", () => {
      const previous = nativeGemmThreads();
      const compare = (t: { transA: boolean; transB: boolean; m: number; n: number; k: number; beta: 0 | 1; seed: number }) => {
        const { transA, transB, m, n, k } = t;
        const lda = transA ? m : k, ldb = transB ? k : n;
        const a = filled(Float32Array, m * k, t.seed), b = filled(Float32Array, k * n, t.seed + 1);
        const c0 = filled(Float32Array, m * n, t.seed + 2);
        const one = c0.slice(), two = c0.slice();
        nativeGemmThreads(1);
        gemmNative(transA, transB, m, n, k, a, 0, lda, b, 0, ldb, one, 0, n, t.beta);
        nativeGemmThreads(2);
        gemmNative(transA, transB, m, n, k, a, 0, lda, b, 0, ldb, two, 0, n, t.beta);
        expect(two).toEqual(one);
        checkAgainstReference(gemmNative, { ...t, aOffset: 0, bOffset: 0, cOffset: 0, aPad: 0, bPad: 0, cPad: 0, float64: false });
      };
      try {
        // chunks of columns (wide C) and of rows (tall, narrow C), every layout the tiles take
        // NT with a small B (softmax regression's 256 x 10 x 784) passes A once, rows outermost
        for (const [transA, transB, m, n, k] of [[false, true, 128, 128, 784], [true, false, 128, 784, 128],
          [true, false, 784, 128, 128], [false, true, 301, 41, 300], [false, false, 603, 61, 100],
          [false, true, 256, 10, 784], [false, true, 700, 9, 1000]] as const) {
          compare({ transA, transB, m, n, k, beta: 1, seed: m + n + k });
        }
        fc.assert(fc.property(
          fc.record({
            transA: fc.boolean(), transB: fc.boolean(),
            m: fc.integer({ min: 1, max: 300 }), n: fc.integer({ min: 2, max: 400 }), k: fc.integer({ min: 8, max: 512 }),
            beta: fc.constantFrom<0 | 1>(0, 1), seed: fc.integer({ min: 1, max: 1e6 }),
          }).filter((t) => !(t.transA && t.transB) && t.m * t.n * t.k >= 2 ** 20 && t.m * t.n * t.k < 2 ** 22
            && (t.transB ? t.m * t.k <= 2 ** 17 : true)),
          compare,
        ), { numRuns: 20 });
      } finally {
        nativeGemmThreads(previous);
      }
    });

    it("gemmNative: a float32 product gives the same bits wherever its operands sit against a 32-byte boundary", () => {
      // NN and TN panels (and the split's column chunks) start where B's rows cross a 32-byte boundary;
      // where that is must change no sum. Offsets 0..7 floats put the operands at every such position
      // whatever the arrays' own alignment; strides that are not whole vectors (203) keep the fixed panels.
      const previous = nativeGemmThreads();
      try {
        for (const threads of [1, 2]) {
          nativeGemmThreads(threads);
          for (const [transA, transB, m, n, k, ldb] of [[true, false, 128, 784, 128, 784], [false, false, 37, 200, 61, 200],
            [false, false, 29, 203, 40, 203], [true, false, 9, 52, 17, 56], [false, true, 40, 33, 100, 104]] as const) {
            const lda = transA ? m : k;
            const aRows = transA ? k : m, bRows = transB ? n : k;
            const a0 = filled(Float32Array, aRows * lda, m + k), b0 = filled(Float32Array, bRows * ldb, n + k);
            const run = (aOff: number, bOff: number, cOff: number) => {
              const a = new Float32Array(aOff + a0.length), b = new Float32Array(bOff + b0.length);
              a.set(a0, aOff);
              b.set(b0, bOff);
              const c = new Float32Array(cOff + m * n).fill(NaN);
              gemmNative(transA, transB, m, n, k, a, aOff, lda, b, bOff, ldb, c, cOff, n, 0);
              return c.subarray(cOff);
            };
            const base = run(0, 0, 0);
            const expected = new Float32Array(m * n);
            gemmReference(transA, transB, m, n, k, a0, 0, lda, b0, 0, ldb, expected, 0, n, 0);
            let worst = 0;
            for (let i = 0; i < base.length; i++) worst = Math.max(worst, Math.abs(base[i] - expected[i]) || 0, Number.isNaN(base[i]) ? Infinity : 0);
            expect(worst, `${m}x${n}x${k} against the reference`).toBeLessThanOrEqual(2e-6 * (k + 1));
            const same = (c: Float32Array) => Buffer.compare(Buffer.from(c.buffer, c.byteOffset, c.byteLength),
              Buffer.from(base.buffer, base.byteOffset, base.byteLength)) === 0;
            for (let off = 1; off < 8; off++) {
              expect(same(run(off, off, off)), `all at offset ${off}, ${threads} threads, ${m}x${n}x${k}`).toBe(true);
              expect(same(run(0, off, (3 * off) % 8)), `B at offset ${off}, ${threads} threads, ${m}x${n}x${k}`).toBe(true);
            }
          }
        }
      } finally {
        nativeGemmThreads(previous);
      }
    });

    it("gemmNative: an NT element's bits do not depend on the tile it falls in (full 3 x 4 tiles or edges)", () => {
      // full tiles reduce four columns at once, edge tiles one at a time: both must sum in one order
      for (const [m, n, k] of [[7, 9, 301], [6, 8, 64], [4, 5, 17], [3, 4, 1000]] as const) {
        const a = filled(Float32Array, m * k, m + n), b = filled(Float32Array, n * k, k);
        for (const beta of [0, 1] as const) {
          const c0 = filled(Float32Array, m * n, 5);
          const whole = c0.slice();
          gemmNative(false, true, m, n, k, a, 0, k, b, 0, k, whole, 0, n, beta);
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < n; j++) {
              // the element alone: a 1 x 1 product of row i of A and row j of B
              const one = Float32Array.of(c0[i * n + j]);
              gemmNative(false, true, 1, 1, k, a, i * k, k, b, j * k, k, one, 0, 1, beta);
              if (!Object.is(one[0], whole[i * n + j])) {
                expect.fail(`C[${i}][${j}] of ${m}x${n}x${k} (beta ${beta}): ${whole[i * n + j]} in the product, ${one[0]} alone`);
              }
            }
          }
        }
      }
    });

    it("nativeGemmTiles: reads and sets the switch, and turning it off sends float32 products to BLAS", () => {
      const previous = nativeGemmTiles();
      expect(previous).toBe(true);
      try {
        // the two paths sum in different orders: a 128 x 128 x 784 product tells them apart in the last bits
        const m = 128, n = 128, k = 784;
        const a = filled(Float32Array, m * k, 8), b = filled(Float32Array, n * k, 9);
        const run = () => {
          const c = new Float32Array(m * n);
          gemmNative(false, true, m, n, k, a, 0, k, b, 0, k, c, 0, n, 0);
          return c;
        };
        const tiled = run();
        expect(nativeGemmTiles(false)).toBe(true);
        expect(nativeGemmTiles()).toBe(false);
        const blas = run();
        expect(blas).not.toEqual(tiled);
        expect(nativeGemmTiles(true)).toBe(false);
        expect(run()).toEqual(tiled);
      } finally {
        nativeGemmTiles(previous);
      }
    });
  });

  it("nativeGemmThreads: reads and sets the thread count, and rejects a count below one", () => {
    const previous = nativeGemmThreads();
    expect(() => nativeGemmThreads(0)).toThrow(/positive integer/);
    if (previous === 0) return; // a BLAS without a thread setting (Accelerate, reference BLAS): nothing to set
    expect(nativeGemmThreads(1)).toBe(previous);
    expect(nativeGemmThreads()).toBe(1);
    expect(nativeGemmThreads(previous)).toBe(1);
  });

  it("gemmNative: rejects mixed float32 and float64 operands", () => {
    expect(() => gemmNative(false, false, 2, 2, 3, new Float64Array(6), 0, 3, new Float32Array(6), 0, 2,
      new Float32Array(4), 0, 2, 0)).toThrow(/share one float type/);
  });

  it("gemmNative: a stride narrower than its row (overlapping rows) still matches the reference", () => {
    const a = filled(Float64Array, 20, 3), b = filled(Float64Array, 20, 4);
    const actual = new Float64Array(9), expected = new Float64Array(9);
    gemmNative(false, false, 3, 3, 4, a, 0, 2, b, 0, 3, actual, 0, 3, 0);
    gemmReference(false, false, 3, 3, 4, a, 0, 2, b, 0, 3, expected, 0, 3, 0);
    expect(Array.from(actual)).toEqual(Array.from(expected));
  });
});

describe("gemm backend selection", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it("gemm: TAPEGRAD_BACKEND=js forces the pure TypeScript kernels", async () => {
    vi.stubEnv("TAPEGRAD_BACKEND", "js");
    vi.resetModules();
    const fresh = await import("../packages/autograd/src/kernels/gemm.ts");
    expect(fresh.gemmBackend()).toBe("js");
  });

  it("gemmNative: a built addon loads and passes its probe (a wrong kernel would otherwise fall back without a word)", () => {
    const addonPath = fileURLToPath(new URL("../packages/autograd/native/build/tapegrad_blas.node", import.meta.url));
    if (!existsSync(addonPath)) {
      console.info("kernels-gemm: no native addon built here; nothing to check");
      return;
    }
    expect(nativeGemmAvailable(), nativeGemmInfo()).toBe(true);
  });

  it("gemm: defaults to the native BLAS when built, else WebAssembly where the runtime supports SIMD, else js", async () => {
    vi.stubEnv("TAPEGRAD_BACKEND", "");
    vi.resetModules();
    const fresh = await import("../packages/autograd/src/kernels/gemm.ts");
    expect(fresh.gemmBackend()).toBe(nativeGemmAvailable() ? "native" : wasmGemmAvailable() ? "wasm" : "js");
  });

  it("gemm: TAPEGRAD_BACKEND=wasm forces WebAssembly even when the native BLAS is built", async () => {
    vi.stubEnv("TAPEGRAD_BACKEND", "wasm");
    vi.resetModules();
    const fresh = await import("../packages/autograd/src/kernels/gemm.ts");
    if (wasmGemmAvailable()) expect(fresh.gemmBackend()).toBe("wasm");
    else expect(() => fresh.gemmBackend()).toThrow(/no WebAssembly SIMD/);
  });

  it("gemm: TAPEGRAD_BACKEND=native uses the BLAS, or says to run build:native when it is not built", async () => {
    vi.stubEnv("TAPEGRAD_BACKEND", "native");
    vi.resetModules();
    const fresh = await import("../packages/autograd/src/kernels/gemm.ts");
    if (nativeGemmAvailable()) expect(fresh.gemmBackend()).toBe("native");
    else expect(() => fresh.gemmBackend()).toThrow(/pnpm build:native/);
  });

  it("gemm: an unknown TAPEGRAD_BACKEND names the valid ones", async () => {
    vi.stubEnv("TAPEGRAD_BACKEND", "cuda");
    vi.resetModules();
    const fresh = await import("../packages/autograd/src/kernels/gemm.ts");
    expect(() => fresh.gemmBackend()).toThrow("TAPEGRAD_BACKEND=cuda is not a gemm backend; use one of native, wasm, js");
  });
});
