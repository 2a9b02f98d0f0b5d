import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { spawnSync } from "node:child_process";
import { gemmBackend, gemmReference, gemmWasm, initWasmThreads, wasmGemmThreads, wasmHelperStats, type FloatArray } from "../packages/autograd/src/kernels/gemm.ts";
import { loadWasmBackend } from "../packages/autograd/src/kernels/wasm-backend.ts";
import { heapAlloc, heapFree, isPinned, pinArray, pinningAvailable, setPinMaxBytes, wasmHeapStats } from "../packages/autograd/src/kernels/wasm-heap.ts";
import * as ag from "../packages/autograd/src/index.ts";

const canPin = pinningAvailable();
const url = (path: string): string => JSON.stringify(new URL(path, import.meta.url).href);

/** Deterministic values in [-1, 1). */
function fill(a: FloatArray, seed: number): FloatArray {
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

function pinned(dtype: "float32" | "float64", size: number): FloatArray {
  const a = pinArray(dtype, size);
  if (!a) throw new Error("pinArray returned null where pinning is available");
  return a;
}

function sameBits(actual: FloatArray, expected: FloatArray, what: string): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    if (!Object.is(actual[i], expected[i])) expect.fail(`${what}: C[${i}] = ${actual[i]}, copied operands gave ${expected[i]}`);
  }
}

interface Case { transA: boolean; transB: boolean; m: number; n: number; k: number; pad: number; offset: number; beta: 0 | 1; float64: boolean; pinA: boolean; pinB: boolean; seed: number }

/** The product with each operand pinned as asked, against the same product with plain copies, bit for bit,
 *  and against the reference within rounding. Pinned operands are allocated last, so the heap's top is right
 *  after them: the kernel's strip reads past their end must stay inside memory. */
function checkPinned(t: Case): void {
  const dtype = t.float64 ? "float64" : "float32";
  const Type = t.float64 ? Float64Array : Float32Array;
  const [aRows, aCols] = t.transA ? [t.k, t.m] : [t.m, t.k];
  const [bRows, bCols] = t.transB ? [t.n, t.k] : [t.k, t.n];
  const lda = aCols + t.pad, ldb = bCols + t.pad, ldc = t.n + t.pad;
  // exactly the operand's extent: the last row ends the array
  const aLength = t.offset + (aRows - 1) * lda + aCols, bLength = t.offset + (bRows - 1) * ldb + bCols;
  const a = fill(new Type(aLength), t.seed), b = fill(new Type(bLength), t.seed + 1);
  const c0 = fill(new Type(t.offset + t.m * ldc), t.seed + 2);
  const pa = t.pinA ? pinned(dtype, aLength) : a;
  const pb = t.pinB ? pinned(dtype, bLength) : b;
  if (t.pinA) { pa.set(a); expect(isPinned(pa)).toBe(true); }
  if (t.pinB) { pb.set(b); expect(isPinned(pb)).toBe(true); }
  const copied = c0.slice(), inPlace = c0.slice(), reference = c0.slice();
  gemmWasm(t.transA, t.transB, t.m, t.n, t.k, a, t.offset, lda, b, t.offset, ldb, copied, t.offset, ldc, t.beta);
  gemmWasm(t.transA, t.transB, t.m, t.n, t.k, pa, t.offset, lda, pb, t.offset, ldb, inPlace, t.offset, ldc, t.beta);
  sameBits(inPlace, copied, JSON.stringify(t));
  gemmReference(t.transA, t.transB, t.m, t.n, t.k, a, t.offset, lda, b, t.offset, ldb, reference, t.offset, ldc, t.beta);
  const tolerance = (t.float64 ? 1e-13 : 2e-6) * (t.k + 1);
  for (let i = 0; i < reference.length; i++) {
    if (Math.abs(inPlace[i] - reference[i]) > tolerance) expect.fail(`C[${i}] = ${inPlace[i]}, reference ${reference[i]} for ${JSON.stringify(t)}`);
  }
  // the kernel only reads its operands
  if (t.pinA) sameBits(pa, a, "pinned A after the product");
  if (t.pinB) sameBits(pb, b, "pinned B after the product");
}

describe.skipIf(!canPin)("pinned memory: the WebAssembly kernels' heap", () => {
  it("pinArray: zero-filled arrays in the kernels' memory; isPinned holds for them and their views, not for other arrays", () => {
    const a = pinned("float32", 1000);
    const d = pinned("float64", 10);
    expect(a).toBeInstanceOf(Float32Array);
    expect(d).toBeInstanceOf(Float64Array);
    expect(a.length).toBe(1000);
    expect(a.every((v) => v === 0)).toBe(true);
    expect(a.byteOffset % 64).toBe(0);
    expect(a.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(isPinned(a)).toBe(true);
    expect(isPinned(a.subarray(10, 20))).toBe(true);
    expect(isPinned(new Float32Array(a.buffer, a.byteOffset, 4))).toBe(true);
    expect(isPinned(d)).toBe(true);
    expect(isPinned(new Float32Array(1000))).toBe(false);
    expect(isPinned(new Float32Array(new SharedArrayBuffer(4000)))).toBe(false);
    // each array has its own buffer object (that is what frees it once its views are gone)
    expect(a.buffer).not.toBe(d.buffer);
    // a block that held other data comes back zero-filled
    const be = loadWasmBackend()!;
    const used = heapAlloc(be, 8192);
    new Uint8Array(be.memory.buffer, used, 8192).fill(0xab);
    heapFree(used);
    const reused = pinned("float32", 2048);
    expect(reused.byteOffset).toBe(used);
    expect(reused.every((v) => v === 0)).toBe(true);
  });

  it("heap: a freed block is reused, neighbours merge, and freeing the highest block lowers the top", () => {
    const be = loadWasmBackend()!;
    const x = heapAlloc(be, 1000), y = heapAlloc(be, 5000), z = heapAlloc(be, 64);
    expect(x % 64).toBe(0);
    expect(y).toBe(x + 1024);
    expect(z).toBe(y + 5056);
    expect(wasmHeapStats().top).toBe(z + 64);
    heapFree(x);
    expect(heapAlloc(be, 512)).toBe(x); // first fit: the front of x's block
    heapFree(x);
    heapFree(y); // merges with x's block
    expect(heapAlloc(be, 6000)).toBe(x);
    heapFree(x);
    heapFree(z); // the top falls through the merged free block below it
    expect(wasmHeapStats().top).toBe(x);
    expect(() => heapFree(z)).toThrow(/no block in use/);
  });

  it("heap: the gemm's scratch moves above a pinned array when it grows, never over it", () => {
    const small = new Float32Array(16 * 16).fill(1);
    gemmWasm(false, false, 16, 16, 16, small, 0, 16, small, 0, 16, new Float32Array(256), 0, 16, 0);
    const keep = pinned("float32", 4096);
    fill(keep, 5);
    const copy = keep.slice();
    const m = 300, k = 500;
    const big = fill(new Float32Array(m * k), 6);
    const out = new Float32Array(m * m);
    gemmWasm(false, true, m, m, k, big, 0, k, big, 0, k, out, 0, m, 0);
    sameBits(keep, copy, "the pinned array after a product whose scratch grew");
  });

  it("gemmWasm: pinned operands, read in place, give the same bits as copied ones (random shapes, flags, strides, dtypes)", () => {
    const dims = (max: number) => fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max }));
    fc.assert(fc.property(fc.record({
      transA: fc.boolean(), transB: fc.boolean(), m: dims(90), n: dims(90), k: dims(300),
      pad: fc.integer({ min: 0, max: 3 }), offset: fc.integer({ min: 0, max: 5 }), beta: fc.constantFrom<0 | 1>(0, 1),
      float64: fc.boolean(), pinA: fc.boolean(), pinB: fc.boolean(), seed: fc.nat(),
    }), checkPinned), { numRuns: 120 });
  });

  it("gemmWasm: large pinned products split with the helper worker give the same bits as copied ones on one thread", async () => {
    const previous = wasmGemmThreads(2);
    try {
      const info = await initWasmThreads();
      const before = wasmHelperStats().parts;
      for (const [m, n, k] of [[128, 128, 784], [784, 128, 128], [128, 784, 128], [67, 1003, 301]] as const) {
        for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
          for (const [pinA, pinB] of [[true, true], [true, false], [false, true]] as const) {
            checkPinned({ transA, transB, m, n, k, pad: 1, offset: 3, beta: 0, float64: false, pinA, pinB, seed: m + n + k });
          }
        }
      }
      if (info.threads === 2) expect(wasmHelperStats().parts).toBeGreaterThan(before);
    } finally {
      wasmGemmThreads(previous);
    }
  });

  it("pinArray: returns null past the pinned-bytes limit (setPinMaxBytes), and a limit must be a byte count", () => {
    const previous = setPinMaxBytes(wasmHeapStats().pinnedBytes + 4096);
    try {
      expect(pinArray("float32", 1024)).not.toBeNull();
      expect(pinArray("float32", 1024)).toBeNull();
      expect(() => setPinMaxBytes(-1)).toThrow(/bytes >= 0/);
    } finally {
      setPinMaxBytes(previous);
    }
  });
});

describe("pinMemory", () => {
  it("pinMemory: outside the WebAssembly backend it returns the tensor itself", () => {
    if (gemmBackend() === "wasm") return; // the child process below covers this backend
    const x = ag.tensor([[1, 2], [3, 4]]);
    expect(x.pinMemory()).toBe(x);
    expect(x.isPinned()).toBe(false);
  });

  it.skipIf(!canPin)("pinMemory under TAPEGRAD_BACKEND=wasm: a pinned copy, its narrows pinned, gradients as clone's, blocks freed once unreachable", () => {
    const source = `
      import * as ag from ${url("../packages/autograd/src/index.ts")};
      import { setPinMaxBytes, wasmHeapStats } from ${url("../packages/autograd/src/kernels/wasm-heap.ts")};
      const out = {};
      const x = ag.tensor([[1, 2, 3], [4, 5, 6]], { requiresGrad: true });
      const p = x.pinMemory();
      out.pinned = p.isPinned();
      out.plain = x.isPinned();
      out.same = Array.from(p.data);
      out.again = p.pinMemory() === p;
      out.narrow = p.narrow(0, 1, 1).isPinned();
      out.isLeaf = p.isLeaf;
      p.mul(ag.tensor([[1, 2, 3], [1, 2, 3]])).sum().backward();
      out.grad = Array.from(x.grad.data);
      const before = wasmHeapStats().pinnedBytes;
      // a large data set pinned; a narrow of it outlives the tensor and keeps the block
      let data = ag.randn([1000, 784]).pinMemory();
      const held = data.narrow(0, 10, 5);
      const copyOfRows = Array.from(held.data.slice(0, 8));
      out.grew = wasmHeapStats().pinnedBytes - before;
      data = null;
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 50));
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 50));
      out.keptByView = wasmHeapStats().pinnedBytes - before;
      // pinning more must not reuse the block the narrow still sees
      const other = ag.ones([1000, 784]).pinMemory();
      out.viewIntact = Array.from(held.data.slice(0, 8)).every((v, i) => Object.is(v, copyOfRows[i]));
      out.otherPinned = other.isPinned();
      const limit = setPinMaxBytes(0);
      const y = ag.ones([10]);
      out.full = y.pinMemory() === y;
      setPinMaxBytes(limit);
      process.stdout.write(JSON.stringify(out));
    `;
    const run = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", "--input-type=module", "-e", source], {
      encoding: "utf8", env: { ...process.env, TAPEGRAD_BACKEND: "wasm" },
    });
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out).toMatchObject({
      pinned: true, plain: false, same: [1, 2, 3, 4, 5, 6], again: true, narrow: true, isLeaf: false,
      grad: [1, 2, 3, 1, 2, 3], viewIntact: true, otherPinned: true, full: true,
    });
    expect(out.grew).toBeGreaterThanOrEqual(1000 * 784 * 4);
    expect(out.keptByView).toBe(out.grew);
  });

  it.skipIf(!canPin)("Module.pinMemory: SGD on pinned weights (gradients pinned, written in place, updated on both threads) gives the same bits as unpinned, and the heap stops growing", () => {
    const source = `
      import * as ag from ${url("../packages/autograd/src/index.ts")};
      import { nn, optim, functional } from ${url("../packages/nn/src/index.ts")};
      import { initWasmThreads, wasmHelperStats } from ${url("../packages/autograd/src/kernels/gemm.ts")};
      import { wasmHeapStats } from ${url("../packages/autograd/src/kernels/wasm-heap.ts")};
      const info = await initWasmThreads();
      const build = () => { ag.manualSeed(7); return new nn.Sequential(new nn.Linear(784, 128), new nn.ReLU(), new nn.Linear(128, 10)); };
      const plain = build(), pinned = build().pinMemory();
      ag.manualSeed(8);
      const x = ag.randn([128, 784]).pinMemory(), y = Int32Array.from({ length: 128 }, (_, i) => i % 10);
      const train = (model) => {
        const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
        const heap = [];
        let gradPinned = false;
        for (let step = 0; step < 6; step++) {
          const loss = functional.crossEntropy(model.forward(x), y);
          loss.backward();
          gradPinned = model.parameters()[0].grad.isPinned();
          opt.step();
          opt.zeroGrad();
          heap.push(wasmHeapStats().pinnedBytes);
        }
        return { params: model.parameters().map((p) => Array.from(p.data)), heap, gradPinned };
      };
      const a = train(plain);
      const before = wasmHelperStats();
      const b = train(pinned);
      const after = wasmHelperStats();
      const same = a.params.every((p, i) => p.every((v, j) => Object.is(v, b.params[i][j])));
      process.stdout.write(JSON.stringify({ threads: info.threads, same, weightPinned: pinned.parameters()[0].isPinned(),
        plainPinned: plain.parameters()[0].isPinned(), gradPinned: b.gradPinned, plainGradPinned: a.gradPinned,
        heap: b.heap, posted: after.posted - before.posted, parts: after.parts - before.parts }));
    `;
    const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", source], {
      encoding: "utf8", env: { ...process.env, TAPEGRAD_BACKEND: "wasm", TAPEGRAD_WASM_THREADS: "2" },
    });
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out).toMatchObject({ same: true, weightPinned: true, plainPinned: false, gradPinned: true, plainGradPinned: false });
    // the first step pins the gradients; later steps take them from the pinned pool
    expect(new Set(out.heap.slice(1)).size).toBe(1);
    // per step: the forward product, the weight gradient's and the SGD update's split jobs
    if (out.threads === 2) expect(out.posted).toBeGreaterThanOrEqual(6 * 3);
  });

  it.skipIf(!canPin)("a helper that throws in the middle of a split product or pinned SGD step: the caller redoes only what is missing, with the same bits", () => {
    // the helper's kernels replaced by ones that throw (its source text patched where the Worker is made):
    // the first chunk it claims fails, after which every product runs on the calling thread
    const source = (mode: "axpy" | "gemm"): string => `
      const realGet = process.getBuiltinModule.bind(process);
      const threads = realGet("node:worker_threads");
      class FailingWorker extends threads.Worker {
        constructor(text, options) {
          const patched = text.replace("helperLoop(ctl, threadKernels(instance.exports,",
            "helperLoop(ctl, threadKernels(Object.fromEntries(Object.entries(instance.exports).map(([k, v]) => [k, typeof v === 'function' ? () => { throw new Error('injected'); } : v])),");
          if (patched === text) throw new Error("the helper's source changed: update this test");
          super(patched, options);
        }
      }
      process.getBuiltinModule = (id) => id === "node:worker_threads" ? { ...threads, Worker: FailingWorker } : realGet(id);
      const { axpyPinned, gemmWasm, initWasmThreads, wasmThreadingInfo } = await import(${url("../packages/autograd/src/kernels/gemm-wasm.ts")});
      const { pinArray } = await import(${url("../packages/autograd/src/kernels/wasm-heap.ts")});
      const out = { threads: (await initWasmThreads()).threads, wrong: 0, rounds: 0 };
      const n = 100_352;
      const x = pinArray("float32", n), y = pinArray("float32", n);
      for (let i = 0; i < n; i++) { x[i] = Math.sin(i); y[i] = Math.cos(i); }
      const expected = Float32Array.from(y);
      // a product writing a pinned C in place, accumulating (beta 1): gᵀ @ x with x pinned
      const g = Float32Array.from({ length: 128 * 128 }, (_, i) => Math.sin(i / 7));
      const xs = pinArray("float32", 128 * 784);
      for (let i = 0; i < xs.length; i++) xs[i] = Math.cos(i / 3);
      const c = pinArray("float32", 128 * 784);
      const plain = new Float32Array(128 * 784), xPlain = Float32Array.from(xs);
      for (let round = 0; round < 50 && wasmThreadingInfo().helper !== "failed"; round++) {
        out.rounds++;
        if (${JSON.stringify(mode)} === "axpy") {
          axpyPinned(-0.01, x, 0, y, 0, n);
          for (let i = 0; i < n; i++) expected[i] += -0.01 * x[i];
        } else {
          gemmWasm(true, false, 128, 784, 128, g, 0, 128, xs, 0, 784, c, 0, 784, 1);
          gemmWasm(true, false, 128, 784, 128, g, 0, 128, xPlain, 0, 784, plain, 0, 784, 1);
        }
      }
      for (let i = 0; i < n; i++) if (!Object.is(y[i], expected[i])) out.wrong++;
      for (let i = 0; i < plain.length; i++) if (!Object.is(c[i], plain[i])) out.wrong++;
      out.helper = wasmThreadingInfo().helper;
      out.reason = wasmThreadingInfo().reason;
      process.stdout.write(JSON.stringify(out));
      process.exit(0);
    `;
    for (const mode of ["axpy", "gemm"] as const) {
      const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", source(mode)], {
        encoding: "utf8", env: { ...process.env, TAPEGRAD_BACKEND: "wasm", TAPEGRAD_WASM_THREADS: "2" },
      });
      expect(run.status, run.stderr).toBe(0);
      const out = JSON.parse(run.stdout);
      if (out.threads < 2) return; // no helper here
      expect(out, mode).toMatchObject({ helper: "failed", wrong: 0 });
      expect(out.reason).toMatch(/^1 thread: the helper worker threw/);
    }
  });

  it.skipIf(!canPin)("pinMemory: a pinned block returns to the heap once no view of it is left", () => {
    const source = `
      import * as ag from ${url("../packages/autograd/src/index.ts")};
      import { wasmHeapStats } from ${url("../packages/autograd/src/kernels/wasm-heap.ts")};
      const before = wasmHeapStats().pinnedBytes;
      let data = ag.randn([500, 784]).pinMemory();
      let view = data.narrow(0, 0, 100);
      const pinned = wasmHeapStats().pinnedBytes - before;
      data = null;
      const settle = async () => { for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); } };
      await settle();
      const withView = wasmHeapStats().pinnedBytes - before;
      view = null;
      await settle();
      const after = wasmHeapStats().pinnedBytes - before;
      process.stdout.write(JSON.stringify({ pinned, withView, after }));
    `;
    const run = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", "--input-type=module", "-e", source], {
      encoding: "utf8", env: { ...process.env, TAPEGRAD_BACKEND: "wasm" },
    });
    expect(run.status, run.stderr).toBe(0);
    const { pinned, withView, after } = JSON.parse(run.stdout);
    expect(pinned).toBeGreaterThanOrEqual(500 * 784 * 4);
    expect(withView).toBe(pinned);
    expect(after).toBe(0);
  });
});
