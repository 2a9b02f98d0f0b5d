/**
 * The native elementwise loops (packages/autograd/native/elementwise.c) against the TypeScript loops they
 * replace: on the same inputs the two must give bit-identical float32 and float64 results, NaN, ±0, ±Infinity
 * and subnormals included (any NaN equals any NaN: payloads may differ). Then the raw addon's argument checks,
 * and the ops whose large results skip the zero fill (allocateUnfilled): no old bytes may reach a result.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import fc from "fast-check";
import * as K from "../packages/autograd/src/kernels/index.ts";
import { NATIVE_MIN_ELEMENTS, gemmBackend, nativeLoops, setNativeLoops } from "../packages/autograd/src/kernels/index.ts";
import { NATIVE_BINARY_OPS, NATIVE_UNARY_OPS } from "../packages/autograd/src/kernels/native-ops.ts";
import { gemmNative, nativeGemmInfo, nativeGemmTilesInfo } from "../packages/autograd/src/kernels/gemm.ts";
import type { DType, FloatArray } from "../packages/autograd/src/dtype.ts";
import { allocateUnfilled } from "../packages/autograd/src/memory.ts";
import { WASM_LOOPS_MIN_ELEMENTS, wasmLoopsAnyBackend } from "../packages/autograd/src/kernels/wasm-loops.ts";
import { nativeCnnKernels } from "../packages/autograd/src/kernels/native-loops.ts";
import { Tensor, linear, logSoftmax, matmul, pick, relu, tensor } from "../packages/autograd/src/index.ts";
import { optim } from "../packages/nn/src/index.ts";

type FloatArrayConstructor = Float32ArrayConstructor | Float64ArrayConstructor;

const DTYPES = ["float32", "float64"] as const;
const arrayType = (dtype: DType): FloatArrayConstructor => (dtype === "float64" ? Float64Array : Float32Array);

/** Property runs per case: every run is a few thousand elements, so the file stays near a second. */
const numRuns = 12;

/**
 * Inputs where C and JavaScript arithmetic could part: NaN, signed zeros and infinities, the smallest
 * subnormal, largest subnormal, smallest normal and largest finite value of both widths, values one ulp
 * above 1, and fractions neither width holds exactly.
 */
const SPECIALS = [
  NaN, 0, -0, Infinity, -Infinity, 1, -1, 2, 0.1, -0.1, 1 / 3, 1 + 2 ** -52, 1 + 2 ** -23, 2 ** 24 + 1,
  5e-324, -5e-324, 2.225073858507201e-308, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308,
  1.401298464324817e-45, -1.401298464324817e-45, 1.1754942106924411e-38, 1.1754943508222875e-38,
  3.4028234663852886e38, -3.4028234663852886e38,
];

/**
 * Deterministic values, so a failing case replays from its seed: specials, raw bit patterns (every NaN
 * payload, signalling NaNs included), any magnitude from subnormal to overflow, and ordinary values.
 */
function awkward(Type: FloatArrayConstructor, length: number, seed: number): FloatArray {
  const out = new Type(length);
  const bits = new Uint32Array(out.buffer);
  const words = Type === Float64Array ? 2 : 1;
  const span = Type === Float64Array ? 2160 : 300; // exponents from below the subnormals to past overflow
  let s = (seed * 2654435761) >>> 0 || 1;
  const next = (): number => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
  const uniform = (): number => next() / 2 ** 32 + next() / 2 ** 64; // in [0, 1) with a full float64 mantissa
  for (let i = 0; i < length; i++) {
    const r = next() % 20;
    if (r < 3) out[i] = SPECIALS[next() % SPECIALS.length];
    else if (r < 7) for (let w = 0; w < words; w++) bits[i * words + w] = next();
    else if (r < 11) out[i] = (2 * uniform() - 1) * 2 ** ((next() % span) - span / 2);
    else out[i] = (2 * uniform() - 1) * 4;
  }
  return out;
}

/** Element-by-element equality with Object.is: +0 and -0 differ, NaN equals NaN whatever its payload. */
function expectSameBits(actual: FloatArray, expected: FloatArray, what: string, inputsAt: (i: number) => string = () => ""): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    if (!Object.is(actual[i], expected[i])) {
      expect.fail(`${what}: [${i}] is ${actual[i]} natively, ${expected[i]} in TypeScript${inputsAt(i)}`);
    }
  }
}

/** Runs `write` (which builds its own inputs and output) once with the native loops, once without. */
function nativeThenTypeScript<T>(write: () => T): { native: T; ts: T } {
  const native = write();
  setNativeLoops(false);
  try {
    return { native, ts: write() };
  } finally {
    setNativeLoops(true);
  }
}

const nativeActive = nativeLoops() !== null;
if (!nativeActive) {
  let backend: string;
  try { backend = gemmBackend(); } catch (error) { backend = (error as Error).message; }
  const why = backend === "native" ? "the addon predates the elementwise loops (pnpm build:native)"
    : `the backend is ${backend} (TAPEGRAD_BACKEND=${process.env.TAPEGRAD_BACKEND ?? ""})`;
  console.info(`kernels-native: skipping the native loop comparisons: ${why}; native addon: ${nativeGemmInfo()}`);
}

const BINARY_KINDS = ["add", "sub", "mul", "div", "maximum", "minimum"] as const;
/** The addon's unary ops. */
const UNARY_KINDS = NATIVE_UNARY_OPS;

/** Operand layouts of K.binary: each sends runs of ≥ NATIVE_MIN_ELEMENTS to the addon, the last three with
 *  offsets (one run per row) and a stride-0 operand. */
type Layout = "equal" | "scalarA" | "scalarB" | "rowB" | "columnA" | "columnB";
const LAYOUTS: Layout[] = ["equal", "scalarA", "scalarB", "rowB", "columnA", "columnB"];

function shapesOf(layout: Layout, rows: number, cols: number): { a: number[]; b: number[]; out: number[] } {
  const n = rows * cols;
  switch (layout) {
    case "equal": return { a: [n], b: [n], out: [n] };
    case "scalarA": return { a: [], b: [n], out: [n] };
    case "scalarB": return { a: [n], b: [], out: [n] };
    case "rowB": return { a: [rows, cols], b: [cols], out: [rows, cols] };
    case "columnA": return { a: [rows, 1], b: [rows, cols], out: [rows, cols] };
    case "columnB": return { a: [rows, cols], b: [rows, 1], out: [rows, cols] };
  }
}

const size = (shape: readonly number[]): number => shape.reduce((p, d) => p * d, 1);
const large = fc.integer({ min: NATIVE_MIN_ELEMENTS, max: 5000 });

describe.skipIf(!nativeActive)("native loops: dispatch", () => {
  afterEach(() => {
    vi.restoreAllMocks();
    setNativeLoops(true);
  });

  it("kernels call the addon from NATIVE_MIN_ELEMENTS elements up, and not below, across dtypes, or when turned off", () => {
    const native = nativeLoops()!;
    const spies = (["binary", "unary", "reluBackward", "axpy", "sumAxis", "logSoftmax", "logSoftmaxBackward"] as const)
      .map((name) => vi.spyOn(native, name));
    const calls = (): number[] => spies.map((s) => s.mock.calls.length);
    const n = NATIVE_MIN_ELEMENTS;
    const runAll = (size: number, x: FloatArray = new Float32Array(size), y: FloatArray = new Float32Array(size)): void => {
      K.binary("sub", x, [size], y, [size], new Float32Array(size), [size]);
      K.unary("relu", x, new Float32Array(size));
      K.reluBackward(x, y, new Float32Array(size));
      K.axpy(-0.1, x, 0, y, 0, size);
      K.sumAxis(x, 1, size, 1, new Float32Array(1));
      K.logSoftmaxAxis(x, 2, size / 2, 1, new Float32Array(size));
      K.logSoftmaxBackwardAxis(x, y, 1, size, 1, new Float32Array(size));
    };
    const once = [1, 1, 1, 1, 1, 1, 1];
    runAll(n);
    expect(calls()).toEqual(once);
    runAll(n - 1);
    expect(calls()).toEqual(once);
    // kinds the addon does not have, and axpy of a float64 x into a float32 y, stay in TypeScript
    K.binary("pow", new Float32Array(n), [n], new Float32Array(n), [n], new Float32Array(n), [n]);
    K.unary("tanh", new Float32Array(n), new Float32Array(n));
    K.axpy(-0.1, new Float64Array(n), 0, new Float32Array(n), 0, n);
    expect(calls()).toEqual(once);
    setNativeLoops(false);
    runAll(2 * n);
    expect(calls()).toEqual(once);
    setNativeLoops(true);
    // float64 inputs with float32 outputs stay in TypeScript; axpy, whose y is its output, goes native
    runAll(2 * n, new Float64Array(2 * n), new Float64Array(2 * n));
    expect(calls()).toEqual([1, 1, 1, 2, 1, 1, 1]);
  });

  it("setNativeLoops returns the previous setting and nativeLoops() is null while off", () => {
    expect(setNativeLoops(false)).toBe(true);
    expect(nativeLoops()).toBeNull();
    expect(setNativeLoops(true)).toBe(false);
    expect(nativeLoops()).not.toBeNull();
  });

  it("SGD's plain step goes through the native axpy and gives the parameters of p - lr * grad, on or off", () => {
    const spy = vi.spyOn(nativeLoops()!, "axpy");
    for (const dtype of DTYPES) {
      const Type = arrayType(dtype);
      const p0 = awkward(Type, 3000, 1).map((v) => (Number.isFinite(v) ? v : 0.5));
      const g = awkward(Type, 3000, 2).map((v) => (Number.isFinite(v) ? v : -0.25));
      const step = (): FloatArray => {
        const p = new Tensor(p0.slice(), [3000], true);
        p.grad = new Tensor(g.slice(), [3000]);
        new optim.SGD([p], { lr: 0.1 }).step();
        return p.data;
      };
      const { native, ts } = nativeThenTypeScript(step);
      const expected = new Type(3000);
      for (let i = 0; i < 3000; i++) expected[i] = p0[i] - 0.1 * g[i];
      expectSameBits(native, expected, `SGD ${dtype} native`);
      expectSameBits(ts, expected, `SGD ${dtype} TypeScript`);
    }
    expect(spy).toHaveBeenCalledTimes(2);
  });
});

describe.skipIf(!nativeActive)("native loops: bit-identical to the TypeScript loops", () => {
  afterEach(() => setNativeLoops(true));

  for (const dtype of DTYPES) {
    const Type = arrayType(dtype);

    for (const kind of BINARY_KINDS) {
      it(`binary ${kind} (${dtype}): equal shapes, a scalar on either side, row and column broadcasts`, () => {
        const caseArbitrary = fc.record({
          layout: fc.constantFrom(...LAYOUTS), rows: fc.integer({ min: 2, max: 4 }),
          cols: fc.integer({ min: NATIVE_MIN_ELEMENTS, max: 1250 }), seed: fc.nat(),
        });
        fc.assert(fc.property(caseArbitrary, (t) => {
          const shapes = shapesOf(t.layout, t.rows, t.cols);
          const a = awkward(Type, size(shapes.a), t.seed);
          const b = awkward(Type, size(shapes.b), t.seed + 1);
          const { native, ts } = nativeThenTypeScript(() => {
            const out = new Type(size(shapes.out)).fill(7);
            K.binary(kind, a, shapes.a, b, shapes.b, out, shapes.out);
            return out;
          });
          const ia = (i: number): number => (t.layout === "scalarA" ? 0 : t.layout === "columnA" ? Math.floor(i / t.cols) : i);
          const ib = (i: number): number => (t.layout === "scalarB" ? 0 : t.layout === "columnB" ? Math.floor(i / t.cols)
            : t.layout === "rowB" ? i % t.cols : i);
          expectSameBits(native, ts, `${kind} ${JSON.stringify(t)}`, (i) => ` for a = ${a[ia(i)]}, b = ${b[ib(i)]}`);
        }), { numRuns });
      });
    }

    for (const kind of UNARY_KINDS) {
      it(`unary ${kind} (${dtype}): NaN, ±0, ±Infinity, subnormals and large magnitudes`, () => {
        fc.assert(fc.property(large, fc.nat(), (n, seed) => {
          const x = awkward(Type, n, seed);
          const { native, ts } = nativeThenTypeScript(() => {
            const out = new Type(n).fill(7);
            K.unary(kind, x, out);
            return out;
          });
          expectSameBits(native, ts, `${kind} n=${n} seed=${seed}`, (i) => ` for x = ${x[i]}`);
        }), { numRuns });
      });
    }

    it(`unary exp, log, sigmoid (${dtype}): arrays of many units, shared with the helper thread, give the same bits`, () => {
      // elementwise.c splits these loops into units of 16384 elements from 65536 elements up
      for (const n of [65536, 3 * 16384 + 123, 200_003]) {
        const x = awkward(Type, n, n);
        for (let i = 0; i < n; i += 3) x[i] = ((i * 2654435761) % 2000) / 100 - 10;
        for (const kind of ["exp", "log", "sigmoid"] as const) {
          const { native, ts } = nativeThenTypeScript(() => {
            const out = new Type(n).fill(7);
            K.unary(kind, x, out);
            return out;
          });
          expectSameBits(native, ts, `${kind} n=${n}`, (i) => ` for x = ${x[i]}`);
        }
      }
    });

    it(`unary exp (${dtype}): groups of four across the edges of the vector path's range, and partial last groups`, () => {
      // elementwise.c computes exp four at a time where every argument lies in [-708, 709.7) (a normal
      // result) and one at a time elsewhere; cross both edges, subnormal and overflowing results included
      const edges = [-745.5, -745.1, -720, -708.5, -708.0000001, -708, -707.9999999, -1e-300, 0, 1e-300, 88.7, 709.69999, 709.7, 709.8, 710];
      fc.assert(fc.property(large, fc.nat(), fc.double({ min: -750, max: 712, noNaN: true }), (n, seed, centre) => {
        const x = new Type(n);
        for (let i = 0; i < n; i++) {
          const r = (seed + i * 7919) % 10;
          x[i] = r < 3 ? edges[(seed + i) % edges.length] : r < 6 ? centre + (i % 13) * 0.37 - 2 : ((i * 2654435761) % 1000) / 1000 * 1460 - 748;
        }
        const { native, ts } = nativeThenTypeScript(() => {
          const out = new Type(n).fill(7);
          K.unary("exp", x, out);
          return out;
        });
        expectSameBits(native, ts, `exp n=${n} seed=${seed} centre=${centre}`, (i) => ` for x = ${x[i]}`);
      }), { numRuns });
    });

    it(`unary sigmoid (${dtype}): groups of eight across the edges of exp's vector range and of 0, in place too`, () => {
      // elementwise.c computes float32 sigmoid eight at a time from exp(-|x|), one lane at a time where -|x|
      // leaves exp's normal range; cross that edge, ±0 and the sign's choice of numerator
      const edges = [-745.5, -708.5, -708.0000001, -708, -707.9999999, -103.97, -87.3, -16.7, -1e-30, -0, 0, 1e-30, 16.7, 87.3, 708, 708.5, 746];
      fc.assert(fc.property(large, fc.nat(), (n, seed) => {
        const x = new Type(n);
        for (let i = 0; i < n; i++) {
          const r = (seed + i * 7919) % 10;
          x[i] = r < 4 ? edges[(seed + i) % edges.length] : ((i * 2654435761) % 1000) / 1000 * 1500 - 750;
        }
        const { native, ts } = nativeThenTypeScript(() => {
          const out = new Type(n).fill(7);
          K.unary("sigmoid", x, out);
          const inPlace = x.slice();
          K.unary("sigmoid", inPlace, inPlace);
          return { out, inPlace };
        });
        expectSameBits(native.out, ts.out, `sigmoid n=${n} seed=${seed}`, (i) => ` for x = ${x[i]}`);
        expectSameBits(native.inPlace, ts.out, `sigmoid in place n=${n} seed=${seed}`, (i) => ` for x = ${x[i]}`);
      }), { numRuns });
    });

    it(`logSoftmax and its backward (${dtype}): any [outer, n, inner] layout, awkward values, rows of -Infinity`, () => {
      const layout = fc.record({ outer: fc.integer({ min: 1, max: 40 }), n: fc.integer({ min: 1, max: 300 }),
        inner: fc.integer({ min: 1, max: 6 }), plainLogits: fc.boolean(), seed: fc.nat() })
        .filter((t) => t.outer * t.n * t.inner >= NATIVE_MIN_ELEMENTS);
      fc.assert(fc.property(layout, ({ outer, n, inner, plainLogits, seed }) => {
        const size = outer * n * inner;
        const x = plainLogits ? new Type(plain(dtype, size, seed).map((v) => v * 8)) : awkward(Type, size, seed);
        // one row (o = 0, i = 0) of nothing but -Infinity: PyTorch's NaN row
        for (let j = 0; j < n; j++) x[j * inner] = -Infinity;
        const g = awkward(Type, size, seed + 1);
        const { native, ts } = nativeThenTypeScript(() => {
          const out = new Type(size).fill(7);
          K.logSoftmaxAxis(x, outer, n, inner, out);
          const gx = new Type(size).fill(7);
          K.logSoftmaxBackwardAxis(g, out, outer, n, inner, gx);
          return { out, gx };
        });
        const what = `[${outer}, ${n}, ${inner}] seed=${seed}`;
        expectSameBits(native.out, ts.out, `logSoftmax ${what}`, (i) => ` for x = ${x[i]}`);
        expectSameBits(native.gx, ts.gx, `logSoftmaxBackward ${what}`, (i) => ` for g = ${g[i]}, out = ${ts.out[i]}`);
      }), { numRuns });
    });

    it(`logSoftmax and its backward (${dtype}): many short rows, which the native loop exponentiates several at a time`, () => {
      // rows of n <= 128 along the last axis share exp's groups of four across row ends; a row of -Infinity
      // or with a NaN anywhere in a group must still come out alone
      const layout = fc.record({ n: fc.integer({ min: 1, max: 128 }), seed: fc.nat(), odd: fc.nat() })
        .map((t) => ({ ...t, outer: Math.ceil(NATIVE_MIN_ELEMENTS / t.n) + (t.odd % 37) }));
      fc.assert(fc.property(layout, ({ outer, n, seed, odd }) => {
        const size = outer * n;
        const x = new Type(plain(dtype, size, seed).map((v) => v * 8));
        const bad = odd % outer;
        for (let j = 0; j < n; j++) x[bad * n + j] = -Infinity;
        x[((odd * 7) % outer) * n + (odd % n)] = NaN;
        x[((odd * 13) % outer) * n] = 800; // exp out of the vector path's range
        const g = awkward(Type, size, seed + 1);
        const { native, ts } = nativeThenTypeScript(() => {
          const out = new Type(size).fill(7);
          K.logSoftmaxAxis(x, outer, n, 1, out);
          const gx = new Type(size).fill(7);
          K.logSoftmaxBackwardAxis(g, out, outer, n, 1, gx);
          return { out, gx };
        });
        expectSameBits(native.out, ts.out, `logSoftmax [${outer}, ${n}]`, (i) => ` for x = ${x[i]}`);
        expectSameBits(native.gx, ts.gx, `logSoftmaxBackward [${outer}, ${n}]`, (i) => ` for g = ${g[i]}, out = ${ts.out[i]}`);
      }), { numRuns: 3 * numRuns });
    });

    it(`reluBackward (${dtype}): passes g where x > 0, zero elsewhere, NaN x included`, () => {
      fc.assert(fc.property(large, fc.nat(), (n, seed) => {
        const g = awkward(Type, n, seed);
        const x = awkward(Type, n, seed + 1);
        const { native, ts } = nativeThenTypeScript(() => {
          const out = new Type(n).fill(7);
          K.reluBackward(g, x, out);
          return out;
        });
        expectSameBits(native, ts, `reluBackward n=${n} seed=${seed}`, (i) => ` for g = ${g[i]}, x = ${x[i]}`);
      }), { numRuns });
    });

    it(`sigmoidBackward (${dtype}): g * (y * (1 - y)) with the rounding of three separate ops`, () => {
      fc.assert(fc.property(large, fc.nat(), (n, seed) => {
        const g = awkward(Type, n, seed);
        const y = awkward(Type, n, seed + 1);
        const { native, ts } = nativeThenTypeScript(() => {
          const out = new Type(n).fill(7);
          K.sigmoidBackward(g, y, out);
          return out;
        });
        expectSameBits(native, ts, `sigmoidBackward n=${n} seed=${seed}`, (i) => ` for g = ${g[i]}, y = ${y[i]}`);
        // and the same bits as sub, mul, mul
        const t = new Type(n), u = new Type(n), ops = new Type(n);
        K.binary("sub", new Type([1]), [], y, [n], t, [n]);
        K.binary("mul", y, [n], t, [n], u, [n]);
        K.binary("mul", g, [n], u, [n], ops, [n]);
        expectSameBits(ts, ops, `sigmoidBackward against sub, mul, mul, n=${n}`, (i) => ` for g = ${g[i]}, y = ${y[i]}`);
      }), { numRuns });
    });

    it(`axpy (${dtype}): offsets, overlapping x and y, alphas such as -0.1 that float32 cannot hold`, () => {
      const caseArbitrary = fc.record({
        n: large, xOffset: fc.integer({ min: 0, max: 5 }), yOffset: fc.integer({ min: 0, max: 5 }),
        alpha: fc.constantFrom(-0.1, 0.1, 1 / 3, -1e-3, 1e-40, 3e38, -0, 1, NaN, -Infinity),
        alias: fc.boolean(), seed: fc.nat(),
      });
      fc.assert(fc.property(caseArbitrary, (t) => {
        const length = Math.max(t.xOffset, t.yOffset) + t.n + 3;
        const x0 = awkward(Type, length, t.seed);
        const y0 = awkward(Type, length, t.seed + 1);
        const { native, ts } = nativeThenTypeScript(() => {
          const y = y0.slice();
          // aliased: y[yOffset + i] += alpha * y[xOffset + i], in order, as the JavaScript loop runs
          K.axpy(t.alpha, t.alias ? y : x0, t.xOffset, y, t.yOffset, t.n);
          return y;
        });
        expectSameBits(native, ts, `axpy ${JSON.stringify({ ...t, alpha: String(t.alpha) })}`,
          (i) => ` for y = ${y0[i]}, x = ${(t.alias ? y0 : x0)[i - t.yOffset + t.xOffset]}`);
      }), { numRuns });
    });

    it(`sumAxis (${dtype}): inner = 1 and inner > 1 over several outer blocks, accumulated in double`, () => {
      const caseArbitrary = fc.record({
        outer: fc.integer({ min: 1, max: 5 }), inner: fc.oneof(fc.constant(1), fc.integer({ min: 2, max: 40 })),
        total: large, finite: fc.boolean(), seed: fc.nat(),
      });
      fc.assert(fc.property(caseArbitrary, (t) => {
        const n = Math.ceil(t.total / (t.outer * t.inner));
        // awkward rows almost always hold a NaN or an infinity; finite ones show how the sum was accumulated
        const length = t.outer * n * t.inner;
        const x = t.finite ? Type.from(plain(dtype, length, t.seed)) : awkward(Type, length, t.seed);
        const { native, ts } = nativeThenTypeScript(() => {
          const out = new Type(t.outer * t.inner + 2).fill(7); // the two past the end must stay 7
          K.sumAxis(x, t.outer, n, t.inner, out);
          return out;
        });
        expectSameBits(native, ts, `sumAxis ${JSON.stringify({ ...t, n })}`);
      }), { numRuns });
    });

    it(`sumAxis (${dtype}): low bits a float32 accumulator would drop, and a sum beyond float32's range`, () => {
      const n = 3000;
      const x = new Type(2 * n);
      x.fill(0.1, 0, n); // 3000 × fround(0.1) is 300 in float32 summed in double, 300.00909 summed in float32
      x.fill(3e35, n); // the float64 sum, 3000 × 3e35 = 9e38, exceeds float32's 3.4e38
      const { native, ts } = nativeThenTypeScript(() => {
        const out = new Type(2);
        K.sumAxis(x, 2, n, 1, out);
        return out;
      });
      expectSameBits(native, ts, "sumAxis");
      let sum = 0;
      for (let j = 0; j < n; j++) sum += x[j];
      expect(native[0]).toBe(dtype === "float32" ? 300 : sum);
      if (dtype === "float32") expect(native[1]).toBe(Infinity);
    });
  }

  it("binary maximum/minimum: NaN on either side propagates, and ties of ±0 return the second operand", () => {
    const n = NATIVE_MIN_ELEMENTS;
    const pairs: [number, number][] = [[NaN, 1], [1, NaN], [NaN, NaN], [0, -0], [-0, 0], [-Infinity, NaN], [Infinity, -Infinity]];
    for (const Type of [Float32Array, Float64Array]) {
      for (const [x, y] of pairs) {
        for (const kind of ["maximum", "minimum"] as const) {
          const { native, ts } = nativeThenTypeScript(() => {
            const out = new Type(n);
            K.binary(kind, new Type(n).fill(x), [n], new Type(n).fill(y), [n], out, [n]);
            return out;
          });
          expectSameBits(native, ts, `${kind}(${x}, ${y})`);
          const expected = x !== x || (kind === "maximum" ? x > y : x < y) ? x : y;
          expect(Object.is(native[n - 1], expected), `${kind}(${x}, ${y}) = ${native[n - 1]}`).toBe(true);
        }
      }
    }
  });

  it("unary relu, abs, sign, step, sqrt: signed zeros and NaN come out as in the TypeScript kernel", () => {
    const n = NATIVE_MIN_ELEMENTS;
    const cases: [K.UnaryKind, number, number][] = [
      ["relu", -0, 0], ["relu", NaN, NaN], ["relu", -Infinity, 0], ["abs", -0, 0], ["abs", NaN, NaN],
      ["sign", -0, 0], ["sign", NaN, 0], ["step", NaN, 1], ["step", -0, 0], ["sign", -1.401298464324817e-45, -1], ["sqrt", -0, -0], ["sqrt", -1, NaN], ["neg", 0, -0],
    ];
    for (const Type of [Float32Array, Float64Array]) {
      for (const [kind, x, expected] of cases) {
        const out = new Type(n).fill(7);
        K.unary(kind, new Type(n).fill(x), out);
        const want = Type === Float32Array ? Math.fround(expected) : expected;
        expect(Object.is(out[0], want) && Object.is(out[n - 1], want), `${kind}(${x}) = ${out[0]}`).toBe(true);
      }
    }
  });
});

describe.skipIf(!nativeActive)("native addon: argument checks", () => {
  const SENTINEL = 7;
  const filled = (Type: FloatArrayConstructor, n: number): FloatArray => new Type(n).fill(SENTINEL);

  /** `call` throws `type` with a message matching `message`, and leaves every array in `untouched` as it was. */
  function expectRejected(call: () => void, type: ErrorConstructor, message: RegExp, untouched: FloatArray[]): void {
    const before = untouched.map((a) => a.slice());
    let thrown: unknown = null;
    try { call(); } catch (error) { thrown = error; }
    expect(thrown, `expected ${type.name} ${message}`).toBeInstanceOf(type);
    expect((thrown as Error).message).toMatch(message);
    untouched.forEach((a, i) => expectSameBits(a, before[i], `array ${i} after a rejected call`));
  }

  it("binary: a span past the end of an operand is a RangeError naming it", () => {
    const native = nativeLoops()!;
    const out = filled(Float32Array, 10);
    const ten = filled(Float32Array, 10);
    expectRejected(() => native.binary(0, ten, 1, 1, ten, 0, 1, out, 0, 10), RangeError, /\ba is too short/, [out]);
    expectRejected(() => native.binary(0, ten, 0, 1, ten, 3, 1, out, 0, 10), RangeError, /\bb is too short/, [out]);
    expectRejected(() => native.binary(0, ten, 0, 1, ten, 0, 1, out, 1, 10), RangeError, /\bout is too short/, [out]);
    expectRejected(() => native.binary(0, ten, 0, 1, ten, 0, 1, out, 0, 11), RangeError, /\ba is too short/, [out]);
    // a scalar operand (stride 0) is still checked at its offset
    expectRejected(() => native.binary(0, ten, 10, 0, ten, 0, 1, out, 0, 10), RangeError, /\ba is too short/, [out]);
    expectRejected(() => native.binary(0, ten, 0, 1, filled(Float32Array, 0), 0, 0, out, 0, 10), RangeError, /\bb is too short/, [out]);
    expectRejected(() => native.binary(0, ten, -1, 1, ten, 0, 1, out, 0, 5), RangeError, /\ba is too short/, [out]);
    expectRejected(() => native.binary(0, ten, 0, 1, ten, 0, 1, out, 0, -1), RangeError, /too short/, [out]);
    expectRejected(() => native.binary(0, ten, 0, 2, ten, 0, 1, out, 0, 4), RangeError, /stride other than 0 or 1/, [out]);
  });

  it("unary, reluBackward, axpy, sumAxis: a span past the end is a RangeError naming the operand", () => {
    const native = nativeLoops()!;
    const out = filled(Float64Array, 10);
    const ten = filled(Float64Array, 10);
    const nine = filled(Float64Array, 9);
    expectRejected(() => native.unary(0, nine, out, 10), RangeError, /\bx is too short/, [out]);
    expectRejected(() => native.unary(0, ten, nine, 10), RangeError, /\bout is too short/, [nine]);
    expectRejected(() => native.reluBackward(nine, ten, out, 10), RangeError, /\bg is too short/, [out]);
    expectRejected(() => native.reluBackward(ten, nine, out, 10), RangeError, /\bx is too short/, [out]);
    expectRejected(() => native.reluBackward(ten, ten, nine, 10), RangeError, /\bout is too short/, [nine]);
    expectRejected(() => native.sigmoidBackward(nine, ten, out, 10), RangeError, /\bg is too short/, [out]);
    expectRejected(() => native.sigmoidBackward(ten, nine, out, 10), RangeError, /\by is too short/, [out]);
    expectRejected(() => native.sigmoidBackward(ten, ten, nine, 10), RangeError, /\bout is too short/, [nine]);
    expectRejected(() => native.axpy(0.5, ten, 1, out, 0, 10), RangeError, /\bx is too short/, [out]);
    expectRejected(() => native.axpy(0.5, ten, 0, out, 1, 10), RangeError, /\by is too short/, [out]);
    expectRejected(() => native.axpy(0.5, ten, 0, out, -1, 3), RangeError, /\by is too short/, [out]);
    expectRejected(() => native.sumAxis(ten, 2, 3, 2, out), RangeError, /\bx is too short/, [out]);
    expectRejected(() => native.sumAxis(ten, 5, 1, 2, nine), RangeError, /\bout is too short/, [nine]);
    expectRejected(() => native.sumAxis(ten, -1, 2, 1, out), RangeError, /bad sizes/, [out]);
    expectRejected(() => native.sumAxis(ten, 2 ** 40, 2 ** 20, 2 ** 10, out), RangeError, /bad sizes/, [out]);
    // with n = 0, outer * inner alone must not wrap around to a span that fits (this once wrote past out)
    const four = filled(Float32Array, 4);
    expectRejected(() => native.sumAxis(filled(Float32Array, 4), 2 ** 62, 0, 4, four), RangeError, /bad sizes/, [four]);
    expectRejected(() => native.sumAxis(filled(Float32Array, 4), 2 ** 40, 0, 2 ** 24, four), RangeError, /bad sizes/, [four]);
  });

  it("logSoftmax and its backward: a span past the end, or bad sizes, is a RangeError naming the operand", () => {
    const native = nativeLoops()!;
    const out = filled(Float32Array, 12);
    const twelve = filled(Float32Array, 12);
    const eleven = filled(Float32Array, 11);
    expectRejected(() => native.logSoftmax(eleven, 2, 3, 2, out), RangeError, /\bx is too short/, [out]);
    expectRejected(() => native.logSoftmax(twelve, 2, 3, 2, eleven), RangeError, /\bout is too short/, [eleven]);
    expectRejected(() => native.logSoftmax(twelve, 2, -3, 2, out), RangeError, /logSoftmax: bad sizes/, [out]);
    expectRejected(() => native.logSoftmax(twelve, 2 ** 62, 0, 4, out), RangeError, /logSoftmax: bad sizes/, [out]);
    expectRejected(() => native.logSoftmaxBackward(eleven, twelve, 2, 3, 2, out), RangeError, /\bg is too short/, [out]);
    expectRejected(() => native.logSoftmaxBackward(twelve, eleven, 2, 3, 2, out), RangeError, /\bout is too short/, [out]);
    expectRejected(() => native.logSoftmaxBackward(twelve, twelve, 2, 3, 2, eleven), RangeError, /\bgx is too short/, [eleven]);
    expectRejected(() => native.logSoftmaxBackward(twelve, twelve, 2 ** 40, 2 ** 20, 2 ** 10, out), RangeError,
      /logSoftmaxBackward: bad sizes/, [out]);
  });

  it("every function: mixing Float32Array and Float64Array is a TypeError", () => {
    const native = nativeLoops()!;
    const f32 = filled(Float32Array, 8);
    const f64 = filled(Float64Array, 8);
    const share = /share one float type/;
    expectRejected(() => native.binary(0, f64, 0, 1, f32, 0, 1, f32, 0, 8), TypeError, share, [f32, f64]);
    expectRejected(() => native.binary(0, f32, 0, 1, f64, 0, 1, f32, 0, 8), TypeError, share, [f32, f64]);
    expectRejected(() => native.binary(0, f32, 0, 1, f32, 0, 1, f64, 0, 8), TypeError, share, [f32, f64]);
    expectRejected(() => native.unary(0, f64, f32, 8), TypeError, share, [f32, f64]);
    expectRejected(() => native.reluBackward(f32, f64, f32, 8), TypeError, share, [f32, f64]);
    expectRejected(() => native.reluBackward(f64, f32, f32, 8), TypeError, share, [f32, f64]);
    expectRejected(() => native.axpy(0.5, f64, 0, f32, 0, 8), TypeError, share, [f32, f64]);
    expectRejected(() => native.sumAxis(f32, 1, 8, 1, f64), TypeError, share, [f32, f64]);
    expectRejected(() => native.logSoftmax(f32, 1, 8, 1, f64), TypeError, share, [f32, f64]);
    expectRejected(() => native.logSoftmaxBackward(f32, f64, 1, 8, 1, f32), TypeError, share, [f32, f64]);
    expectRejected(() => native.logSoftmaxBackward(f64, f64, 1, 8, 1, f32), TypeError, share, [f32, f64]);
  });

  it("binary and unary: an unknown op code is a RangeError", () => {
    const native = nativeLoops()!;
    const x = filled(Float32Array, 4);
    const out = filled(Float32Array, 4);
    for (const op of [NATIVE_BINARY_OPS.length, -1, 99]) {
      expectRejected(() => native.binary(op, x, 0, 1, x, 0, 1, out, 0, 4), RangeError, /unknown op/, [out]);
    }
    for (const op of [NATIVE_UNARY_OPS.length, -1, 99]) {
      expectRejected(() => native.unary(op, x, out, 4), RangeError, /unknown op/, [out]);
    }
  });

  it("every function: an operand that is not a Float32Array or Float64Array is a TypeError", () => {
    const native = nativeLoops()!;
    const x = filled(Float32Array, 4);
    const out = filled(Float32Array, 4);
    const floats = /Float32Array or Float64Array/;
    const notFloatArrays: unknown[] = [[1, 2, 3, 4], new Int32Array(4), new Uint8Array(16), new DataView(new ArrayBuffer(16)), null, 3];
    for (const bad of notFloatArrays) {
      const b = bad as FloatArray; // deliberately the wrong type: the addon must check
      expectRejected(() => native.binary(0, b, 0, 1, x, 0, 1, out, 0, 4), TypeError, floats, [out]);
      expectRejected(() => native.binary(0, x, 0, 1, b, 0, 1, out, 0, 4), TypeError, floats, [out]);
      expectRejected(() => native.binary(0, x, 0, 1, x, 0, 1, b, 0, 4), TypeError, floats, [out]);
      expectRejected(() => native.unary(0, b, out, 4), TypeError, floats, [out]);
      expectRejected(() => native.unary(0, x, b, 4), TypeError, floats, [out]);
      expectRejected(() => native.reluBackward(b, x, out, 4), TypeError, floats, [out]);
      expectRejected(() => native.reluBackward(x, x, b, 4), TypeError, floats, [out]);
      expectRejected(() => native.axpy(0.5, b, 0, out, 0, 4), TypeError, floats, [out]);
      expectRejected(() => native.axpy(0.5, x, 0, b, 0, 4), TypeError, floats, [out]);
      expectRejected(() => native.sumAxis(b, 1, 4, 1, out), TypeError, floats, [out]);
      expectRejected(() => native.sumAxis(x, 1, 4, 1, b), TypeError, floats, [out]);
      expectRejected(() => native.logSoftmax(b, 1, 4, 1, out), TypeError, floats, [out]);
      expectRejected(() => native.logSoftmax(x, 1, 4, 1, b), TypeError, floats, [out]);
      expectRejected(() => native.logSoftmaxBackward(b, x, 1, 4, 1, out), TypeError, floats, [out]);
      expectRejected(() => native.logSoftmaxBackward(x, b, 1, 4, 1, out), TypeError, floats, [out]);
      expectRejected(() => native.logSoftmaxBackward(x, x, 1, 4, 1, b), TypeError, floats, [out]);
    }
  });

  it("every function: a size that is not a number, or a wrong argument count, is a TypeError", () => {
    const native = nativeLoops()!;
    const x = filled(Float32Array, 4);
    const out = filled(Float32Array, 4);
    const loose = native as unknown as Record<string, (...args: unknown[]) => void>;
    expectRejected(() => loose.binary(0, x, 0, 1, x, 0, 1, out, 0, "4"), TypeError, /must be numbers/, [out]);
    expectRejected(() => loose.unary(0, x, out, 4n), TypeError, /must be numbers/, [out]);
    expectRejected(() => loose.axpy("0.5", x, 0, out, 0, 4), TypeError, /alpha must be a number/, [out]);
    expectRejected(() => loose.sumAxis(x, 1, 4, 1), TypeError, /expected 5 arguments/, [out]);
    expectRejected(() => loose.reluBackward(x, x, out, 4, 5), TypeError, /expected 4 arguments/, [out]);
  });

  it("the pooling exports name themselves in argument-count and geometry errors", () => {
    const pool = nativeCnnKernels() as unknown as Record<string, (...args: unknown[]) => void>;
    const x = filled(Float32Array, 16);
    const out = filled(Float32Array, 4);
    const geometry = new Int32Array(13);
    for (const [name, op] of [["maxPool2dForward", "maxPool2d"], ["maxPool2dBackward", "maxPool2d"],
      ["avgPool2dForward", "avgPool2d"], ["avgPool2dBackward", "avgPool2d"]] as const) {
      expectRejected(() => pool[name](geometry, x, out), TypeError, new RegExp(`^tapegrad native ${op}: expected 4 arguments$`), [x, out]);
      expectRejected(() => pool[name](new Int32Array(12), x, out, name.startsWith("avg") ? true : new Int32Array(4)), TypeError,
        new RegExp(`^tapegrad native ${op}: the geometry must be an Int32Array of 13 sizes$`), [x, out]);
      expectRejected(() => pool[name](geometry, x, out, name.startsWith("avg") ? true : new Int32Array(4)), RangeError,
        new RegExp(`^tapegrad native ${op}: the geometry's sizes are out of range$`), [x, out]);
    }
  });
});

/** The collector, reached through a fresh context once --expose-gc is set; null where V8 refuses. */
const collectGarbage = ((): (() => void) | null => {
  try {
    v8.setFlagsFromString("--expose-gc");
    return runInNewContext("gc") as () => void;
  } catch {
    return null;
  }
})();

/**
 * Frees buffers of the sizes these tests allocate, filled with 0xff (NaN in both float widths), so that an
 * unfilled result the op leaves partly unwritten shows NaN rather than the zeros of fresh pages. NOTE: with
 * glibc most large unfilled buffers allocated right after this reuse the freed memory.
 */
function dirtyFreedMemory(): void {
  let junk: Uint8Array[] | null = [];
  for (let i = 0; i < 48; i++) junk.push(Buffer.allocUnsafeSlow(16384 << (i % 4)).fill(0xff));
  junk = null;
  collectGarbage?.();
}

/** Plain, finite values in [-2, -0.5] ∪ [0.5, 2], rounded to the dtype (safe divisors, no specials). */
function plain(dtype: DType, length: number, seed: number): Float64Array {
  const round = dtype === "float32" ? Math.fround : (v: number) => v;
  const out = new Float64Array(length);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    const u = s / 2 ** 32;
    out[i] = round((u < 0.5 ? -1 : 1) * (0.5 + 3 * Math.abs(u - 0.5)));
  }
  return out;
}

const leaf = (values: Float64Array, shape: number[], dtype: DType, requiresGrad = false): Tensor =>
  tensor(values, { shape, dtype, requiresGrad });

/** Row-major matrix product in float64: a [m, k] @ b [k, n], each at its offset. */
function matmulReference(a: Float64Array, ao: number, b: Float64Array, bo: number, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[ao + i * k + p] * b[bo + p * n + j];
      out[i * n + j] = s;
    }
  }
  return out;
}

/** Every element within `tolerance` of the reference (a NaN or stale value anywhere fails). */
function expectClose(actual: FloatArray, expected: ArrayLike<number>, tolerance: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= tolerance)) {
      expect.fail(`${what}: [${i}] is ${actual[i]}, expected ${expected[i]} (tolerance ${tolerance})`);
    }
  }
}

function expectExact(actual: FloatArray, expected: ArrayLike<number>, what: string): void {
  expectClose(actual, expected, 0, what);
}

describe("ops whose large results skip the zero fill write every element", () => {
  beforeEach(dirtyFreedMemory);

  it("allocateUnfilled: the array owns its whole buffer, below and above the no-fill threshold", () => {
    for (const dtype of DTYPES) {
      for (const n of [0, 1, 1000, 4095, 4096, 5000, 100_000]) {
        const a = allocateUnfilled(dtype, n);
        expect(a).toBeInstanceOf(arrayType(dtype));
        expect(a.length).toBe(n);
        expect(a.byteOffset).toBe(0);
        expect(a.buffer.byteLength).toBe(a.byteLength);
      }
    }
  });

  for (const dtype of DTYPES) {
    const round = dtype === "float32" ? Math.fround : (v: number) => v;
    // a sum of k products of magnitude ≤ 4 in the dtype's precision (any stale or NaN element is far outside)
    const tolerance = (k: number): number => (dtype === "float64" ? 2 ** -52 : 2 ** -23) * 4 * (k + 1) * (k + 1);

    it(`add/sub/mul/div (${dtype}): a row vector broadcast over ≥ 4096 elements, from either side`, () => {
      const ops = { add: (x: number, y: number) => x + y, sub: (x: number, y: number) => x - y,
        mul: (x: number, y: number) => x * y, div: (x: number, y: number) => x / y };
      for (const [rows, cols] of [[4, 1024], [64, 64], [3, 1500]]) {
        const av = plain(dtype, rows * cols, rows);
        const bv = plain(dtype, cols, cols);
        const A = leaf(av, [rows, cols], dtype);
        const b = leaf(bv, [cols], dtype);
        for (const [name, f] of Object.entries(ops) as [keyof typeof ops, (x: number, y: number) => number][]) {
          const left = new Float64Array(rows * cols);
          const right = new Float64Array(rows * cols);
          for (let i = 0; i < rows * cols; i++) {
            left[i] = round(f(av[i], bv[i % cols]));
            right[i] = round(f(bv[i % cols], av[i]));
          }
          expectExact(A[name](b).data, left, `[${rows}, ${cols}] ${name} [${cols}]`);
          expectExact(b[name](A).data, right, `[${cols}] ${name} [${rows}, ${cols}]`);
          // a number operand: the scalar fast path
          expectExact(A[name](0.75).data, av.map((v) => round(f(v, 0.75))), `[${rows}, ${cols}] ${name} 0.75`);
        }
      }
    });

    it(`relu (${dtype}): forward and backward over 4096 elements`, () => {
      const n = 4096;
      const xv = plain(dtype, n, 5).map((v, i) => (i % 7 === 0 ? 0 : v)); // exact zeros: relu'(0) = 0
      const wv = plain(dtype, n, 6);
      const x = leaf(xv, [64, 64], dtype, true);
      const y = relu(x);
      expectExact(y.data, xv.map((v) => (v > 0 ? v : 0)), "relu forward");
      y.mul(leaf(wv, [64, 64], dtype)).sum().backward();
      expectExact(x.grad!.data, xv.map((v, i) => (v > 0 ? wv[i] : 0)), "relu backward");
      expect(x.grad!.data.buffer).not.toBe(y.data.buffer);
    });

    it(`matmul (${dtype}): 2-D, batched, broadcast batches, and an empty inner dimension gives zeros`, () => {
      const cases: [number[], number[]][] = [
        [[64, 96], [96, 80]],
        [[3, 40, 50], [3, 50, 40]],
        [[3, 40, 50], [50, 40]],
        [[40, 50], [3, 50, 40]],
        [[2, 1, 40, 30], [3, 30, 40]],
        [[64, 0], [0, 64]],
        [[2, 64, 0], [2, 0, 64]],
      ];
      for (const [as, bs] of cases) {
        const [m, k] = as.slice(-2);
        const n = bs[bs.length - 1];
        const av = plain(dtype, size(as), m + k);
        const bv = plain(dtype, size(bs), k + n);
        const out = matmul(leaf(av, as, dtype), leaf(bv, bs, dtype));
        const batchA = as.slice(0, -2), batchB = bs.slice(0, -2);
        const rank = Math.max(batchA.length, batchB.length);
        const batch = Array.from({ length: rank }, (_, i) => {
          const da = batchA[i - rank + batchA.length] ?? 1, db = batchB[i - rank + batchB.length] ?? 1;
          return Math.max(da, db);
        });
        expect(out.shape).toEqual([...batch, m, n]);
        const expected = new Float64Array(size(out.shape));
        // walk the broadcast batch index; each operand's batch offset ignores its size-1 or missing axes
        for (let t = 0; t < size(batch); t++) {
          let rest = t, ao = 0, bo = 0, aStride = 1, bStride = 1;
          for (let d = rank - 1; d >= 0; d--) {
            const i = rest % batch[d];
            rest = Math.floor(rest / batch[d]);
            const da = batchA[d - rank + batchA.length], db = batchB[d - rank + batchB.length];
            if (da !== undefined) { if (da > 1) ao += i * aStride; aStride *= da; }
            if (db !== undefined) { if (db > 1) bo += i * bStride; bStride *= db; }
          }
          expected.set(matmulReference(av, ao * m * k, bv, bo * k * n, m, k, n), t * m * n);
        }
        expect(out.size).toBeGreaterThanOrEqual(4096);
        expectClose(out.data, expected, tolerance(k), `matmul ${JSON.stringify(as)} @ ${JSON.stringify(bs)}`);
      }
    });

    /** linear(x, w, b) against x @ wᵀ + b computed here in float64. */
    function checkLinear(xs: number[], outF: number, bias: boolean): void {
      const inF = xs[xs.length - 1];
      const rows = size(xs.slice(0, -1));
      const xv = plain(dtype, size(xs), 11);
      const wv = plain(dtype, outF * inF, 12);
      const bv = plain(dtype, outF, 13);
      const wT = new Float64Array(inF * outF); // w transposed to [in, out] for the reference
      for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) wT[i * outF + o] = wv[o * inF + i];
      const expected = matmulReference(xv, 0, wT, 0, rows, inF, outF).map((v, i) => (bias ? v + bv[i % outF] : v));
      const out = linear(leaf(xv, xs, dtype), leaf(wv, [outF, inF], dtype), bias ? leaf(bv, [outF], dtype) : null);
      expect(out.shape).toEqual([...xs.slice(0, -1), outF]);
      expect(out.size).toBeGreaterThanOrEqual(4096);
      expectClose(out.data, expected, tolerance(inF + 1), `linear ${JSON.stringify(xs)} → ${outF} ${bias ? "with" : "without"} bias`);
    }

    it(`linear (${dtype}): with and without bias, with batch axes; no input features and no bias gives zeros`, () => {
      for (const bias of [false, true]) {
        checkLinear([64, 96], 80, bias);
        checkLinear([2, 32, 96], 80, bias);
      }
      checkLinear([4096, 0], 3, false);
    });

    // NOTE: a regression test: linear once computed rows = x.size / inF, NaN when inF = 0, so no row got the
    // bias and the unfilled output kept whatever the memory held; PyTorch gives the bias in every row.
    it(`linear (${dtype}): with no input features, every row is the bias`, () => {
      checkLinear([4096, 0], 3, true);
    });

    it(`logSoftmax and pick (${dtype}): every row and column of a [64, 100] and a [3, 4096] input`, () => {
      for (const [rows, cols] of [[64, 100], [3, 4096]]) {
        const xv = plain(dtype, rows * cols, rows);
        const x = leaf(xv, [rows, cols], dtype);
        for (const axis of [1, 0]) {
          const [outer, n, inner] = axis === 1 ? [rows, cols, 1] : [1, rows, cols];
          const expected = new Float64Array(rows * cols);
          for (let o = 0; o < outer; o++) {
            for (let i = 0; i < inner; i++) {
              const at = (j: number): number => o * n * inner + j * inner + i;
              let m = -Infinity;
              for (let j = 0; j < n; j++) m = Math.max(m, xv[at(j)]);
              let s = 0;
              for (let j = 0; j < n; j++) s += Math.exp(xv[at(j)] - m);
              for (let j = 0; j < n; j++) expected[at(j)] = xv[at(j)] - m - Math.log(s);
            }
          }
          const lp = logSoftmax(x, axis);
          expectClose(lp.data, expected, dtype === "float32" ? 1e-5 : 1e-12, `logSoftmax [${rows}, ${cols}] axis ${axis}`);

          const index = Array.from({ length: outer * inner }, (_, k) => (k * 7 + 3) % n);
          const picked = pick(x, index, axis);
          const want = index.map((j, k) => xv[Math.floor(k / inner) * n * inner + j * inner + (k % inner)]);
          expectExact(picked.data, want, `pick [${rows}, ${cols}] axis ${axis}`);
        }
      }
    });

    it(`backward (${dtype}): a large weight's .grad is the right gradient and owns its buffer`, () => {
      const N = 64, inF = 96, outF = 80;
      const xv = plain(dtype, N * inF, 21).map((v) => v / 4);
      const wv = plain(dtype, outF * inF, 22).map((v) => v / 8);
      const bv = plain(dtype, outF, 23).map((v) => v / 8);
      const labels = Array.from({ length: N }, (_, i) => (i * 13) % outF);
      const x = leaf(xv, [N, inF], dtype);
      const W = leaf(wv, [outF, inF], dtype, true);
      const b = leaf(bv, [outF], dtype, true);
      const forward = (): Tensor[] => {
        const h = linear(x, W, b);
        const r = relu(h);
        const lp = logSoftmax(r, -1);
        const loss = pick(lp, labels).mean().neg();
        return [h, r, lp, loss];
      };

      // reference in float64: dh = (softmax(r) - onehot) / N where h > 0; dW = dhᵀ x; db = Σ_rows dh
      const dW = new Float64Array(outF * inF);
      const db = new Float64Array(outF);
      for (let i = 0; i < N; i++) {
        const h = new Float64Array(outF);
        for (let o = 0; o < outF; o++) {
          let s = bv[o];
          for (let p = 0; p < inF; p++) s += xv[i * inF + p] * wv[o * inF + p];
          h[o] = s;
        }
        const r = h.map((v) => Math.max(v, 0));
        const m = Math.max(...r);
        const e = r.map((v) => Math.exp(v - m));
        const z = e.reduce((p, v) => p + v, 0);
        for (let o = 0; o < outF; o++) {
          const dh = h[o] > 0 ? (e[o] / z - (o === labels[i] ? 1 : 0)) / N : 0;
          db[o] += dh;
          for (let p = 0; p < inF; p++) dW[o * inF + p] += dh * xv[i * inF + p];
        }
      }

      const first = forward();
      first[3].backward();
      const tol = dtype === "float32" ? 1e-5 : 1e-13;
      expectClose(W.grad!.data, dW, tol, "dW");
      expectClose(b.grad!.data, db, tol, "db");
      const others = [x, W, b, ...first, b.grad!];
      for (const t of others) expect(W.grad!.data.buffer, "W.grad shares a buffer").not.toBe(t.data.buffer);
      expect(W.grad!.data.byteOffset).toBe(0);
      expect(W.grad!.data.buffer.byteLength).toBe(W.grad!.data.byteLength);

      // a second pass accumulates into W.grad: no other tensor may change with it
      const snapshots = others.map((t) => t.data.slice());
      const g1 = W.grad!.data.slice();
      forward()[3].backward();
      expectExact(W.grad!.data, g1.map((v) => v * 2), "dW after two passes");
      others.forEach((t, i) => {
        if (t !== b.grad) expectExact(t.data, snapshots[i], `tensor ${i} after the second backward`);
      });
    });
  }
});

describe.skipIf(K.gemmBackend() !== "native" || !K.nativeGemmTiles())("the native gemm's register tiles (native/tile_gemm.c)", () => {
  /** Small integers: every product and partial sum is exact in float32, so any summation order gives the reference's bits. */
  const ints = (length: number, seed: number): Float32Array => Float32Array.from({ length }, (_, i) => ((i * 7 + seed * 13) % 9) - 4);
  /** Values in [-1, 1) with every mantissa bit in use, where summation orders part in the last bits (the
   *  source is also run in a child process). */
  const REALS = `(length, seed) => {
    let s = (seed * 2654435761) >>> 0 || 1;
    return Float32Array.from({ length }, () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 2 ** 31 - 1; });
  }`;
  const reals = runInNewContext(REALS, { Float32Array }) as (length: number, seed: number) => Float32Array;
  const product = (transA: boolean, transB: boolean, m: number, n: number, k: number, a: Float32Array, b: Float32Array,
    lda: number, ldb: number, c: Float32Array, beta: 0 | 1, threads = 1): Float32Array => {
    const previous = K.nativeGemmThreads(threads);
    try {
      gemmNative(transA, transB, m, n, k, a, 0, lda, b, 0, ldb, c, 0, n, beta);
    } finally {
      K.nativeGemmThreads(previous);
    }
    return c;
  };
  const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

  it("NT products beyond the cache bounds (a transposed copy of B with AVX-512) equal the reference, wider strides and beta 1 included", () => {
    for (const [m, n, k, pad] of [[128, 128, 3136, 0], [37, 61, 1000, 3], [200, 130, 2000, 17], [5, 300, 129, 1]] as const) {
      const lda = k + pad, ldb = k + 2 * pad;
      const a = ints(m * lda, 1), b = ints(n * ldb, 2), c0 = ints(m * n, 3);
      const expected = c0.slice();
      K.gemmReference(false, true, m, n, k, a, 0, lda, b, 0, ldb, expected, 0, n, 1);
      const actual = product(false, true, m, n, k, a, b, lda, ldb, c0.slice(), 1);
      expect(bytes(actual).equals(bytes(expected)), `${m}x${n}x${k}`).toBe(true);
    }
  });

  it.skipIf(nativeGemmTilesInfo()?.vector !== 16)("AVX-512: products of 2^24 to 2^29 multiply-adds split in chunks with the helper give the one-thread bits and match the reference", () => {
    for (const [transA, transB, m, n, k] of [[false, false, 512, 512, 512], [true, false, 128, 3136, 128], [false, true, 128, 128, 3136],
      [false, true, 300, 257, 700]] as const) {
      const lda = transA ? m : k, ldb = transB ? k : n;
      const a = reals(m * k, m), b = reals(k * n, n);
      const one = product(transA, transB, m, n, k, a, b, lda, ldb, new Float32Array(m * n), 0, 1);
      const two = product(transA, transB, m, n, k, a, b, lda, ldb, new Float32Array(m * n), 0, 2);
      expect(bytes(two).equals(bytes(one)), `${m}x${n}x${k} ${transA ? "T" : "N"}${transB ? "T" : "N"}`).toBe(true);
      const expected = new Float32Array(m * n);
      K.gemmReference(transA, transB, m, n, k, a, 0, lda, b, 0, ldb, expected, 0, n, 0);
      let worst = 0;
      for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(one[i] - expected[i]));
      expect(worst).toBeLessThanOrEqual(1e-6 * k);
    }
  });

  it.skipIf(nativeGemmTilesInfo()?.vector !== 16)("NN and TN products give the same bits with the AVX2 tiles (TAPEGRAD_NATIVE_AVX512=0) as with the AVX-512 ones", () => {
    // one sequential sum over the depth per element in both widths; the child prints its products' bytes
    const addonPath = fileURLToPath(new URL("../packages/autograd/native/build/tapegrad_blas.node", import.meta.url));
    const shapes = [[false, 128, 784, 128], [true, 784, 128, 128], [false, 37, 203, 61], [true, 9, 52, 17]] as const;
    const source = `
      const addon = require(${JSON.stringify(addonPath)});
      const reals = ${REALS};
      addon.setThreads(1);
      const out = [];
      for (const [transA, m, n, k] of ${JSON.stringify(shapes)}) {
        const c = new Float32Array(m * n);
        addon.gemm(transA, false, m, n, k, reals(m * k, m), 0, transA ? m : k, reals(k * n, n), 0, n, c, 0, n, 0);
        out.push(Buffer.from(c.buffer).toString("base64"));
      }
      process.stdout.write(JSON.stringify({ info: addon.tilesInfo(), out }));
    `;
    const run = spawnSync(process.execPath, ["-e", source], {
      encoding: "utf8", maxBuffer: 2 ** 26, env: { ...process.env, TAPEGRAD_NATIVE_AVX512: "0" },
    });
    expect(run.status, `${run.stderr} ${run.error ?? ""}`).toBe(0);
    const child = JSON.parse(run.stdout) as { info: { vector: number }; out: string[] };
    expect(child.info.vector).toBe(8);
    shapes.forEach(([transA, m, n, k], i) => {
      const c = product(transA, false, m, n, k, reals(m * k, m), reals(k * n, n), transA ? m : k, n, new Float32Array(m * n), 0);
      expect(bytes(c).toString("base64"), `${transA ? "TN" : "NN"} ${m}x${n}x${k}`).toBe(child.out[i]);
    });
  });
});

describe("axpy's TypeScript loop (no addon needed)", () => {
  it("unrolled from 64 elements: the same bits as one element at a time, offsets and overlapping x and y included", () => {
    const caseArbitrary = fc.record({
      n: fc.integer({ min: 0, max: 300 }), xOffset: fc.integer({ min: 0, max: 6 }), yOffset: fc.integer({ min: 0, max: 6 }),
      alpha: fc.constantFrom(-0.1, 1 / 3, -1e-3, 3e38, NaN), alias: fc.boolean(), float64: fc.boolean(), seed: fc.nat(),
    });
    const previous = setNativeLoops(false);
    try {
      fc.assert(fc.property(caseArbitrary, (t) => {
        const Type = t.float64 ? Float64Array : Float32Array;
        const length = Math.max(t.xOffset, t.yOffset) + t.n + 3;
        const x = awkward(Type, length, t.seed);
        const y = awkward(Type, length, t.seed + 1);
        const expected = y.slice();
        const xRef = t.alias ? expected : x;
        for (let i = 0; i < t.n; i++) expected[t.yOffset + i] += t.alpha * xRef[t.xOffset + i];
        K.axpy(t.alpha, t.alias ? y : x, t.xOffset, y, t.yOffset, t.n);
        // NOTE: every value and sign of zero; a NaN's payload is V8's choice (it differs between its tiers)
        expectSameBits(y, expected, `axpy n=${t.n} alpha=${t.alpha}`);
      }), { numRuns: 200 });
    } finally {
      setNativeLoops(previous);
    }
  });
});

describe.skipIf(!wasmLoopsAnyBackend())("the WebAssembly float32 loops (kernels/wasm-loops.ts, no addon needed)", () => {
  const wasm = wasmLoopsAnyBackend()!;
  // lengths around whole 2- and 4-lane steps, both sides of WASM_LOOPS_MIN_ELEMENTS
  const length = fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: WASM_LOOPS_MIN_ELEMENTS - 5, max: WASM_LOOPS_MIN_ELEMENTS + 70 }));

  it("axpy, relu and reluBackward give the TypeScript loops' bits: NaN, ±0, ±Infinity, subnormals, any length", () => {
    const previous = setNativeLoops(false);
    try {
      fc.assert(fc.property(length, fc.nat(), fc.constantFrom(-0.1, 1 / 3, -1e-3, 3e38, -0, NaN), (n, seed, alpha) => {
        const x = awkward(Float32Array, n, seed) as Float32Array;
        const g = awkward(Float32Array, n, seed + 1) as Float32Array;
        const y = awkward(Float32Array, n, seed + 2) as Float32Array;
        const expected = { axpy: y.slice(), relu: new Float32Array(n), back: new Float32Array(n) };
        for (let i = 0; i < n; i++) expected.axpy[i] += alpha * x[i];
        for (let i = 0; i < n; i++) { const v = x[i]; expected.relu[i] = v > 0 ? v : v !== v ? v : 0; }
        for (let i = 0; i < n; i++) expected.back[i] = x[i] <= 0 ? 0 : g[i];
        const out = { axpy: y.slice(), relu: new Float32Array(n).fill(7), back: new Float32Array(n).fill(7) };
        wasm.axpy(alpha, x, out.axpy);
        wasm.relu(x, out.relu);
        wasm.reluBackward(g, x, out.back);
        expectSameBits(out.axpy, expected.axpy, `axpy n=${n} alpha=${alpha}`, (i) => ` for x = ${x[i]}, y = ${y[i]}`);
        expectSameBits(out.relu, expected.relu, `relu n=${n}`, (i) => ` for x = ${x[i]}`);
        expectSameBits(out.back, expected.back, `reluBackward n=${n}`, (i) => ` for g = ${g[i]}, x = ${x[i]}`);
        // in place: the output is an input (a donated gradient, a relu over its input)
        const inPlace = g.slice();
        wasm.reluBackward(inPlace, x, inPlace);
        expectSameBits(inPlace, expected.back, `reluBackward in place n=${n}`);
        const reluInPlace = x.slice();
        wasm.relu(reluInPlace, reluInPlace);
        expectSameBits(reluInPlace, expected.relu, `relu in place n=${n}`);
      }), { numRuns: 60 });
    } finally {
      setNativeLoops(previous);
    }
  });

  it("sumAxis gives the TypeScript loop's bits (double accumulators, rows in order) for any outer, rows and columns", () => {
    const previous = setNativeLoops(false);
    try {
      const dims = fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 140 }), fc.integer({ min: 2, max: 70 }));
      fc.assert(fc.property(dims, fc.nat(), fc.boolean(), ([outer, n, inner], seed, finite) => {
        const x = awkward(Float32Array, outer * n * inner + 3, seed) as Float32Array;
        // finite values too, whose sums are not swamped by infinities and NaNs
        if (finite) for (let i = 0; i < x.length; i++) x[i] = Number.isFinite(x[i]) ? Math.fround(Math.sin(x[i] + i) * 2 ** ((i % 40) - 20)) : i;
        const expected = new Float32Array(outer * inner).fill(7);
        K.sumAxis(x, outer, n, inner, expected); // the TypeScript loop (no backend dispatch: native loops off, native backend)
        const out = new Float32Array(outer * inner).fill(7);
        wasm.sumAxis(x, outer, n, inner, out);
        expectSameBits(out, expected, `sumAxis outer=${outer} n=${n} inner=${inner}`);
      }), { numRuns: 150 });
    } finally {
      setNativeLoops(previous);
    }
  });

  it("under the wasm backend the kernels take them for large float32 arrays, and outputs shifted over an input keep the loop", () => {
    // a fresh process: the backend is chosen once per process
    const source = `
      import * as K from ${JSON.stringify(new URL("../packages/autograd/src/kernels/index.ts", import.meta.url).href)};
      import { setNativeLoops } from ${JSON.stringify(new URL("../packages/autograd/src/kernels/native-loops.ts", import.meta.url).href)};
      import { wasmLoopsCalls } from ${JSON.stringify(new URL("../packages/autograd/src/kernels/wasm-loops.ts", import.meta.url).href)};
      const n = 5000;
      const x = Float32Array.from({ length: n + 8 }, (_, i) => Math.sin(i * 12.9898) * (i % 7 === 0 ? 0 : 3));
      const g = Float32Array.from({ length: n + 8 }, (_, i) => Math.cos(i * 4.1414));
      const run = () => {
        const y = g.slice(), r = new Float32Array(n), b = new Float32Array(n), shifted = g.slice();
        K.axpy(-0.25, x, 0, y, 0, n);
        K.unary("relu", x.subarray(0, n), r);
        K.reluBackward(g.subarray(0, n), x.subarray(0, n), b);
        K.axpy(0.5, shifted, 0, shifted, 3, n); // y three elements after x in one array: reads what it wrote
        const sums = new Float32Array(50);
        K.sumAxis(x, 1, 100, 50, sums); // a bias gradient's column sums
        return [y, r, b, shifted, sums].map((a) => Array.from(a).join(",")).join(";");
      };
      const compiled = run();
      const calls = wasmLoopsCalls();
      setNativeLoops(false);
      const loops = run();
      process.stdout.write(JSON.stringify({ backend: K.gemmBackend(), same: compiled === loops, calls, callsOff: wasmLoopsCalls() - calls }));
    `;
    const child = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", source], {
      encoding: "utf8", env: { ...process.env, TAPEGRAD_BACKEND: "wasm" },
    });
    expect(child.status, child.stderr).toBe(0);
    // axpy, relu, reluBackward and sumAxis went to WebAssembly; the shifted axpy and everything with the loops
    // off did not
    expect(JSON.parse(child.stdout)).toEqual({ backend: "wasm", same: true, calls: 4, callsOff: 0 });
  });
});
