// Pooling kernels against their definitions written as direct loops here.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  adaptiveAvgPool2dBackward, adaptiveAvgPool2dForward, avgPool2dBackward, avgPool2dForward, maxPool2dBackward,
  maxPool2dForward, maxPoolWindowOffsets, pool2dGeometry, pool2dOutputSize, sigmoidAvgPool2dBackward,
  sigmoidAvgPool2dForward, windowOffsetIndex, type Pool2dGeometry, type Pool2dOptions,
} from "../packages/autograd/src/kernels/pool.ts";
import { sigmoidBackward, unary } from "../packages/autograd/src/kernels/elementwise.ts";
import { nativeCnnKernels, setNativeLoops } from "../packages/autograd/src/kernels/native-loops.ts";
import { ShapeError, ValueError } from "../packages/autograd/src/errors.ts";

type FloatArray = Float32Array | Float64Array;

function filled(Type: Float32ArrayConstructor | Float64ArrayConstructor, length: number, seed: number): FloatArray {
  const out = new Type(length);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** The input positions (ih, iw) of output (oh, ow)'s window, in row-major window order, padding left out. */
function windowOf(p: Pool2dGeometry, oh: number, ow: number): [number, number][] {
  const cells: [number, number][] = [];
  for (let i = 0; i < p.kernelH; i++) for (let j = 0; j < p.kernelW; j++) {
    const ih = oh * p.strideH - p.padH + i * p.dilationH, iw = ow * p.strideW - p.padW + j * p.dilationW;
    if (ih >= 0 && ih < p.height && iw >= 0 && iw < p.width) cells.push([ih, iw]);
  }
  return cells;
}

interface PoolCase {
  batch: number; channels: number; height: number; width: number; kernel: [number, number]; stride: [number, number];
  padding: [number, number]; dilation: [number, number]; ceilMode: boolean; float64: boolean; seed: number;
}

const poolCase = (dilation: boolean): fc.Arbitrary<PoolCase> => fc.record({
  batch: fc.integer({ min: 1, max: 2 }), channels: fc.integer({ min: 1, max: 3 }),
  height: fc.integer({ min: 1, max: 9 }), width: fc.integer({ min: 1, max: 9 }),
  kernel: fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 })),
  stride: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
  padding: fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 })),
  dilation: dilation ? fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })) : fc.constant<[number, number]>([1, 1]),
  ceilMode: fc.boolean(), float64: fc.boolean(), seed: fc.nat(),
});

function geometry(op: "maxPool2d" | "avgPool2d", t: PoolCase): Pool2dGeometry | null {
  try {
    return pool2dGeometry(op, [t.batch, t.channels, t.height, t.width],
      { kernelSize: t.kernel, stride: t.stride, padding: t.padding, dilation: op === "maxPool2d" ? t.dilation : undefined, ceilMode: t.ceilMode });
  } catch (e) {
    if (e instanceof ShapeError || e instanceof ValueError) return null; // padding over half the kernel, empty output
    throw e;
  }
}

/** Checks maxPool2dForward against the window definition and the backward by the adjoint identity. */
function checkMaxPool(t: PoolCase): void {
  const p = geometry("maxPool2d", t);
  if (p === null) return;
  const Type = t.float64 ? Float64Array : Float32Array;
  const x = filled(Type, p.batch * p.channels * p.height * p.width, t.seed);
  const n = p.batch * p.channels * p.outH * p.outW;
  const out = new Type(n).fill(NaN), indices = new Int32Array(n).fill(-7);
  maxPool2dForward(p, x, out, indices);
  for (let pl = 0, o = 0; pl < p.batch * p.channels; pl++) {
    for (let oh = 0; oh < p.outH; oh++) for (let ow = 0; ow < p.outW; ow++, o++) {
      const cells = windowOf(p, oh, ow);
      if (cells.length === 0) {
        // a dilated window can miss the input entirely: -inf, and index -1 (no gradient)
        expect(out[o]).toBe(-Infinity);
        expect(indices[o]).toBe(-1);
        continue;
      }
      const values = cells.map(([ih, iw]) => x[pl * p.height * p.width + ih * p.width + iw]);
      expect(out[o]).toBe(Math.max(...values));
      expect(cells.some(([ih, iw]) => ih * p.width + iw === indices[o])).toBe(true);
      expect(x[pl * p.height * p.width + indices[o]]).toBe(out[o]);
    }
  }
  // backward: the adjoint of the forward with its indices fixed, <pool(x), g> = <x, backward(g)>
  const g = filled(Type, n, t.seed + 1);
  const gx = new Type(x.length).fill(NaN);
  maxPool2dBackward(p, g, indices, gx);
  let lhs = 0, rhs = 0;
  for (let i = 0; i < n; i++) if (out[i] !== -Infinity) lhs += out[i] * g[i]; // windows that missed the input send nothing
  for (let i = 0; i < x.length; i++) rhs += x[i] * gx[i];
  expect(Math.abs(lhs - rhs)).toBeLessThanOrEqual((t.float64 ? 1e-13 : 1e-5) * (n + 1));
}

/** Checks avgPool2dForward against the window definition and PyTorch's divisor, and the backward by the adjoint identity. */
function checkAvgPool(t: PoolCase, countIncludePad: boolean): void {
  const p = geometry("avgPool2d", t);
  if (p === null) return;
  const Type = t.float64 ? Float64Array : Float32Array;
  const x = filled(Type, p.batch * p.channels * p.height * p.width, t.seed);
  const n = p.batch * p.channels * p.outH * p.outW;
  const out = new Type(n).fill(NaN);
  avgPool2dForward(p, x, out, countIncludePad);
  for (let pl = 0, o = 0; pl < p.batch * p.channels; pl++) {
    for (let oh = 0; oh < p.outH; oh++) for (let ow = 0; ow < p.outW; ow++, o++) {
      const cells = windowOf(p, oh, ow);
      // the divisor counts window positions inside the padded input [-pad, size + pad) (countIncludePad)
      // or inside the input itself
      let padded = 0;
      for (let i = 0; i < p.kernelH; i++) for (let j = 0; j < p.kernelW; j++) {
        const ih = oh * p.strideH - p.padH + i, iw = ow * p.strideW - p.padW + j;
        if (ih < p.height + p.padH && iw < p.width + p.padW) padded++;
      }
      const divisor = countIncludePad ? padded : cells.length;
      const sum = cells.reduce((s, [ih, iw]) => s + x[pl * p.height * p.width + ih * p.width + iw], 0);
      expect(out[o]).toBeCloseTo(cells.length === 0 ? 0 : sum / divisor, t.float64 ? 12 : 5);
    }
  }
  const g = filled(Type, n, t.seed + 1);
  const gx = new Type(x.length).fill(NaN);
  avgPool2dBackward(p, g, gx, countIncludePad);
  let lhs = 0, rhs = 0;
  for (let i = 0; i < n; i++) lhs += out[i] * g[i];
  for (let i = 0; i < x.length; i++) rhs += x[i] * gx[i];
  expect(Math.abs(lhs - rhs)).toBeLessThanOrEqual((t.float64 ? 1e-13 : 1e-5) * (n + 1));
}

/**
 * Runs `body` in a child process whose addon runs its scalar C loops (TAPEGRAD_NATIVE_AVX512=0), once for each
 * [b, c, h, w] of `shapes` with `addon`, `data` (the given function's source), `geometry` (2 × 2 windows),
 * `x = data(b c h w)`, `n` (the windows) and `parts` (an array to push results into) in scope; returns the parts.
 */
function scalarLoopsRun(shapes: number[][], data: (n: number) => Float32Array, body: string): unknown[] {
  const addonPath = fileURLToPath(new URL("../packages/autograd/native/build/tapegrad_blas.node", import.meta.url));
  const source = `
    const addon = require(${JSON.stringify(addonPath)});
    const data = ${data.toString()};
    const parts = [];
    for (const [b, c, h, w] of ${JSON.stringify(shapes)}) {
      const oh = h >> 1, ow = w >> 1, n = b * c * oh * ow;
      const geometry = Int32Array.of(b * c, h, w, 2, 2, 2, 2, 0, 0, 1, 1, oh, ow);
      const x = data(b * c * h * w);
      ${body}
    }
    process.stdout.write(JSON.stringify({ avx512: addon.convAvailable, parts }));
  `;
  const run = spawnSync(process.execPath, ["-e", source], { encoding: "utf8", env: { ...process.env, TAPEGRAD_NATIVE_AVX512: "0" }, maxBuffer: 1 << 26 });
  expect(run.status, run.stderr).toBe(0);
  const child = JSON.parse(run.stdout) as { avx512: boolean; parts: unknown[] };
  expect(child.avx512).toBe(false);
  return child.parts;
}

describe("maxPool2d kernels", () => {
  it("maxPool2d: each output is its window's maximum, and its index points at that element inside the window", () => {
    fc.assert(fc.property(poolCase(true), checkMaxPool), { numRuns: 300 });
  });

  it("maxPool2d: ties pick the first element in window order, a NaN is the maximum (the last NaN), padding is -inf", () => {
    const p = pool2dGeometry("maxPool2d", [1, 1, 2, 4], { kernelSize: 2, stride: 2 });
    const x = new Float64Array([1, 3, 5, NaN, 3, 2, NaN, 5]);
    const out = new Float64Array(2), indices = new Int32Array(2);
    maxPool2dForward(p, x, out, indices);
    expect(out[0]).toBe(3);
    expect(indices[0]).toBe(1);
    expect(out[1]).toBeNaN();
    expect(indices[1]).toBe(6);
    // the general loop (padding, dilation) follows the same rules as the 2×2 fast path
    const q = pool2dGeometry("maxPool2d", [1, 1, 3, 3], { kernelSize: 3, stride: 1, padding: 1 });
    const y = new Float64Array([-Infinity, -Infinity, -Infinity, -Infinity, NaN, 2, 1, NaN, 2]);
    const outQ = new Float64Array(9), idxQ = new Int32Array(9);
    maxPool2dForward(q, y, outQ, idxQ);
    expect(outQ[0]).toBeNaN();
    expect(idxQ[0]).toBe(4);
    expect(outQ[2]).toBeNaN(); // window rows 0–1, columns 1–2: the NaN at 4
    expect(idxQ[8]).toBe(7);   // window rows 1–2, columns 1–2: NaN at 4 then NaN at 7, the last wins
    const allNegInf = new Float64Array(9).fill(-Infinity);
    maxPool2dForward(q, allNegInf, outQ, idxQ);
    expect(outQ[4]).toBe(-Infinity);
    expect(idxQ[4]).toBe(0); // the first element of the window, not a padding position
    expect(idxQ[8]).toBe(4);
  });

  it("maxPool2dBackward: overlapping windows add their gradients on a shared maximum", () => {
    const p = pool2dGeometry("maxPool2d", [1, 1, 1, 3], { kernelSize: [1, 2], stride: 1 });
    const x = new Float32Array([0, 9, 0]);
    const out = new Float32Array(2), indices = new Int32Array(2), gx = new Float32Array(3);
    maxPool2dForward(p, x, out, indices);
    maxPool2dBackward(p, new Float32Array([1.5, 2]), indices, gx);
    expect(Array.from(gx)).toEqual([0, 3.5, 0]);
  });
});

describe("avgPool2d kernels", () => {
  it("avgPool2d: sums over the window divided by PyTorch's divisor (countIncludePad, ceil-mode windows past the padding)", () => {
    fc.assert(fc.property(poolCase(false), fc.boolean(), checkAvgPool), { numRuns: 300 });
  });

  it("maxPool2d and avgPool2d: the 2×2 stride-2 fast paths follow the definitions, odd sizes included", () => {
    for (const [height, width] of [[4, 6], [5, 7], [2, 3]]) {
      for (const float64 of [false, true]) {
        const t: PoolCase = { batch: 2, channels: 3, height, width, kernel: [2, 2], stride: [2, 2], padding: [0, 0],
          dilation: [1, 1], ceilMode: false, float64, seed: height * width };
        checkMaxPool(t);
        checkAvgPool(t, true);
        checkAvgPool({ ...t, ceilMode: true }, false); // ceil mode on odd sizes: the general loop
      }
    }
  });
});

describe("adaptiveAvgPool2d kernels", () => {
  it("adaptiveAvgPool2d: means over [floor(i·in/out), ceil((i+1)·in/out)) windows, and the backward is their adjoint", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 12 }),
      fc.integer({ min: 1, max: 12 }), fc.nat(), (h, w, oh, ow, seed) => {
        const planes = 3;
        const x = filled(Float64Array, planes * h * w, seed);
        const out = new Float64Array(planes * oh * ow).fill(NaN);
        adaptiveAvgPool2dForward(x, planes, h, w, oh, ow, out);
        for (let pl = 0; pl < planes; pl++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
          const h0 = Math.floor((i * h) / oh), h1 = Math.ceil(((i + 1) * h) / oh);
          const w0 = Math.floor((j * w) / ow), w1 = Math.ceil(((j + 1) * w) / ow);
          let s = 0;
          for (let a = h0; a < h1; a++) for (let b = w0; b < w1; b++) s += x[pl * h * w + a * w + b];
          expect(out[(pl * oh + i) * ow + j]).toBeCloseTo(s / ((h1 - h0) * (w1 - w0)), 12);
        }
        const g = filled(Float64Array, out.length, seed + 1);
        const gx = new Float64Array(x.length).fill(NaN);
        adaptiveAvgPool2dBackward(g, planes, h, w, oh, ow, gx);
        let lhs = 0, rhs = 0;
        for (let i = 0; i < out.length; i++) lhs += out[i] * g[i];
        for (let i = 0; i < x.length; i++) rhs += x[i] * gx[i];
        expect(Math.abs(lhs - rhs)).toBeLessThanOrEqual(1e-12 * (out.length + x.length));
      }), { numRuns: 200 });
  });
});

describe("pool2dGeometry", () => {
  it("pool2dGeometry: PyTorch's output sizes, ceil mode's last window starting inside the input or left padding", () => {
    expect(pool2dOutputSize(28, 2, 2, 0, 1, false)).toBe(14);
    expect(pool2dOutputSize(5, 2, 2, 0, 1, false)).toBe(2);
    expect(pool2dOutputSize(5, 2, 2, 0, 1, true)).toBe(3);
    // ceil would give 3, but the third window would start at 4 = size + pad: dropped
    expect(pool2dOutputSize(4, 2, 2, 0, 1, true)).toBe(2);
    expect(pool2dOutputSize(6, 3, 2, 1, 1, true)).toBe(4);
    expect(pool2dOutputSize(5, 3, 3, 1, 1, true)).toBe(2);
    expect(pool2dOutputSize(10, 3, 2, 1, 2, false)).toBe(4);
    expect(pool2dGeometry("maxPool2d", [2, 3, 10, 9], { kernelSize: 3, stride: 2, ceilMode: true })).toMatchObject({ outH: 5, outW: 4 });
    expect(pool2dGeometry("avgPool2d", [3, 10, 9], { kernelSize: [2, 3] })).toMatchObject({ batch: 1, channels: 3, outH: 5, outW: 3, strideH: 2, strideW: 3 });
  });

  it("pool2dGeometry: padding over half the kernel, an empty output, a dilated avgPool2d are errors", () => {
    expect(() => pool2dGeometry("maxPool2d", [1, 1, 8, 8], { kernelSize: 2, padding: 2 })).toThrow(/maxPool2d: padding should be at most half of the kernel size/);
    expect(() => pool2dGeometry("avgPool2d", [1, 1, 1, 1], { kernelSize: 3 })).toThrow(ShapeError);
    expect(() => pool2dGeometry("avgPool2d", [1, 1, 8, 8], { kernelSize: 2, dilation: 2 })).toThrow(/avgPool2d: takes no dilation/);
    expect(() => pool2dGeometry("maxPool2d", [8, 8], { kernelSize: 2 })).toThrow(/expected a 3-D \[C, H, W\] or 4-D/);
    expect(() => pool2dGeometry("maxPool2d", [1, 1, 8, 8], { kernelSize: 0 })).toThrow(/kernelSize must be an integer ≥ 1/);
  });
});

describe.skipIf(nativeCnnKernels() === null)("maxPool2d: the native loops (native/pool.c)", () => {
  /** Values from a few levels (ties), with NaN, ±Infinity and -0 sprinkled in. */
  function awkward(Type: Float32ArrayConstructor | Float64ArrayConstructor, length: number, seed: number): FloatArray {
    const base = filled(Type, length, seed), out = new Type(length);
    const specials = [NaN, -Infinity, Infinity, -0, 0];
    for (let i = 0; i < length; i++) {
      const u = Math.abs(base[i]);
      out[i] = u < 0.03 ? specials[Math.floor(u * 1000) % specials.length] : Math.round(base[i] * 4) / 4;
    }
    return out;
  }

  const bytes = (a: FloatArray | Int32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

  /** Forward and backward with the native loops and with the TypeScript loops give the same bits. */
  function same(shape: number[], options: Pool2dOptions, float64: boolean, seed: number, foreignIndices = false): void {
    const p = pool2dGeometry("maxPool2d", shape, options);
    const Type = float64 ? Float64Array : Float32Array;
    const x = awkward(Type, p.batch * p.channels * p.height * p.width, seed);
    const n = p.batch * p.channels * p.outH * p.outW;
    const g = awkward(Type, n, seed + 1);
    const run = (native: boolean) => {
      const previous = setNativeLoops(native);
      try {
        const out = new Type(n).fill(7), indices = new Int32Array(n).fill(-7), gx = new Type(x.length).fill(7);
        maxPool2dForward(p, x, out, indices);
        const used = foreignIndices ? Int32Array.from(indices, (k, i) => (i % 5 === 0 ? -1 : i % 7 === 0 ? 0 : k)) : indices;
        maxPool2dBackward(p, g, used, gx);
        return { out, indices, gx };
      } finally {
        setNativeLoops(previous);
      }
    };
    const native = run(true), portable = run(false);
    const what = `${JSON.stringify(shape)} ${JSON.stringify(options)} float64 ${float64}`;
    expect(bytes(native.out).equals(bytes(portable.out)), `out ${what}`).toBe(true);
    expect(bytes(native.indices).equals(bytes(portable.indices)), `indices ${what}`).toBe(true);
    expect(bytes(native.gx).equals(bytes(portable.gx)), `gradInput ${what}`).toBe(true);
  }

  it("2×2 windows: the same values, indices and gradients as the TypeScript loops (NaN, ±Infinity, -0, ties, odd sizes)", () => {
    for (const float64 of [false, true]) {
      same([4, 8, 28, 28], { kernelSize: 2 }, float64, 1);
      same([3, 5, 7, 9], { kernelSize: 2 }, float64, 2);
      same([2, 3, 5, 40], { kernelSize: 2 }, float64, 3); // rows of 20 windows: a full vector and a partial one
      same([2, 4, 14, 14], { kernelSize: 2 }, float64, 4, true); // indices not from the forward
    }
  });

  it("other windows: padding, dilation, overlapping strides and ceil mode give the same bits", () => {
    for (const float64 of [false, true]) {
      same([2, 4, 15, 13], { kernelSize: 3, stride: 2, padding: 1 }, float64, 5);
      same([3, 3, 12, 11], { kernelSize: [2, 3], stride: 1, dilation: [2, 1], padding: [1, 1] }, float64, 6);
      same([3, 2, 11, 17], { kernelSize: 2, ceilMode: true }, float64, 7, true);
    }
  });
});

describe("maxPool2d: window offsets (2×2 windows)", () => {
  const bytes = (a: FloatArray | Int32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  /** Levels (ties), NaN, -Infinity and -0 among them. */
  const awkward = (Type: Float32ArrayConstructor | Float64ArrayConstructor, n: number, seed: number) =>
    filled(Type, n, seed).map((v, i) => (i % 29 === 3 ? NaN : i % 31 === 5 ? -Infinity : i % 37 === 7 ? -0 : Math.round(v * 3) / 3));

  /** Forward and backward with window offsets, native (where the input is large enough) and TypeScript, against
   *  the TypeScript loops with flat indices: the same values and gradients, offsets naming the same elements. */
  function sameAsFlat(shape: number[], float64: boolean, seed: number, ceilMode = false): void {
    const p = pool2dGeometry("maxPool2d", shape, { kernelSize: 2, ceilMode });
    const what = `${JSON.stringify(shape)} ceilMode ${ceilMode} float64 ${float64}`;
    expect(maxPoolWindowOffsets(p), what).toBe(!ceilMode || (p.height % 2 === 0 && p.width % 2 === 0));
    if (!maxPoolWindowOffsets(p)) {
      expect(() => maxPool2dForward(p, new Float32Array(p.batch * p.channels * p.height * p.width), new Float32Array(p.batch * p.channels * p.outH * p.outW),
        new Uint8Array(p.batch * p.channels * p.outH * p.outW))).toThrow(ValueError);
      return;
    }
    const Type = float64 ? Float64Array : Float32Array;
    const planes = p.batch * p.channels, outPlane = p.outH * p.outW, n = planes * outPlane;
    const x = awkward(Type, planes * p.height * p.width, seed), g = awkward(Type, n, seed + 1);
    const previous = setNativeLoops(false);
    const flat = { out: new Type(n), indices: new Int32Array(n), gx: new Type(x.length).fill(7) };
    const foreign = new Int32Array(n), foreignGx = new Type(x.length).fill(7);
    try {
      maxPool2dForward(p, x, flat.out, flat.indices);
      maxPool2dBackward(p, g, flat.indices, flat.gx);
      // every seventh window's index -1: that window sends nothing (as an offset past 3 does)
      foreign.set(flat.indices.map((k, i) => (i % 7 === 2 ? -1 : k)));
      maxPool2dBackward(p, g, foreign, foreignGx);
    } finally {
      setNativeLoops(previous);
    }
    for (const native of [false, true]) {
      const was = setNativeLoops(native);
      try {
        const out = new Type(n).fill(7), offsets = new Uint8Array(n).fill(9), gx = new Type(x.length).fill(7);
        maxPool2dForward(p, x, out, offsets);
        expect(bytes(out).equals(bytes(flat.out)), `out ${what} native ${native}`).toBe(true);
        const named = Int32Array.from(offsets, (d, o) => windowOffsetIndex(p, o % outPlane, d));
        expect(bytes(named).equals(bytes(flat.indices)), `offsets ${what} native ${native}`).toBe(true);
        maxPool2dBackward(p, g, offsets, gx);
        expect(bytes(gx).equals(bytes(flat.gx)), `gradInput ${what} native ${native}`).toBe(true);
        const skipped = offsets.map((d, i) => (i % 7 === 2 ? 4 + (i % 250) : d));
        maxPool2dBackward(p, g, skipped, gx.fill(7));
        expect(bytes(gx).equals(bytes(foreignGx)), `gradInput, offsets past 3, ${what} native ${native}`).toBe(true);
      } finally {
        setNativeLoops(was);
      }
    }
  }

  it("the cnn's layers and odd sizes: the flat indices' values, elements and gradients", () => {
    for (const float64 of [false, true]) {
      sameAsFlat([4, 8, 28, 28], float64, 1); // rows of 14 windows
      sameAsFlat([3, 16, 14, 14], float64, 2); // rows of 7: two rows a vector, planes run as one tall plane
      sameAsFlat([2, 9, 15, 15], float64, 3); // a last odd row and column: the gradient scattered
      sameAsFlat([5, 7, 14, 15], float64, 4);
      sameAsFlat([3, 7, 15, 16], float64, 5); // an odd row only
      sameAsFlat([2, 5, 6, 40], float64, 6); // rows of 20: a full vector and a partial one
      sameAsFlat([1, 3, 2, 2], float64, 7);
      sameAsFlat([2, 3, 9, 9], float64, 8, true); // ceil mode's partial windows: flat indices only
    }
  });

  it("any 2×2 geometry (fast-check): the flat indices' values, elements and gradients", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 2, max: 37 }),
      fc.integer({ min: 2, max: 37 }), fc.boolean(), fc.nat(), (batch, channels, height, width, float64, seed) => {
        sameAsFlat([batch, channels, height, width], float64, seed);
      }), { numRuns: 60 });
  });
});

describe.skipIf(nativeCnnKernels() === null)("maxPool2d: the native loops without AVX-512", () => {
  it("TAPEGRAD_NATIVE_AVX512=0 (the scalar C loops) gives the TypeScript loops' bits for 2×2 windows", () => {
    // x: a few levels (ties), NaN, ±Infinity and -0; the child pools it with the addon and sends the results' bytes
    const shapes = [[2, 3, 28, 28], [3, 2, 7, 9], [1, 2, 6, 40]];
    const data = (n: number) => Float32Array.from({ length: n }, (_, i) => (i % 37 === 0 ? NaN : i % 41 === 0 ? -Infinity : i % 43 === 0 ? -0 : ((i * 7919) % 13) - 6));
    const parts = scalarLoopsRun(shapes, data, `
      const out = new Float32Array(n), indices = new Int32Array(n), gx = new Float32Array(x.length).fill(7);
      addon.maxPool2dForward(geometry, x, out, indices);
      addon.maxPool2dBackward(geometry, data(n).map((v) => -v), indices, gx);
      const outB = new Float32Array(n), offsets = new Uint8Array(n), gxB = new Float32Array(x.length).fill(7);
      addon.maxPool2dForward(geometry, x, outB, offsets);
      addon.maxPool2dBackward(geometry, data(n).map((v) => -v), offsets, gxB);
      for (const a of [out, indices, gx, outB, offsets, gxB]) parts.push(Buffer.from(a.buffer).toString("base64"));
    `) as string[];
    const previous = setNativeLoops(false);
    try {
      shapes.forEach(([b, c, h, w], s) => {
        const p = pool2dGeometry("maxPool2d", [b, c, h, w], { kernelSize: 2 });
        const n = b * c * p.outH * p.outW;
        const x = data(b * c * h * w), out = new Float32Array(n), indices = new Int32Array(n), gx = new Float32Array(x.length);
        maxPool2dForward(p, x, out, indices);
        maxPool2dBackward(p, data(n).map((v) => -v), indices, gx);
        const offsets = new Uint8Array(n), gxB = new Float32Array(x.length);
        maxPool2dForward(p, x, new Float32Array(n), offsets);
        maxPool2dBackward(p, data(n).map((v) => -v), offsets, gxB);
        [out, indices, gx, out, offsets, gxB].forEach((a, k) => expect(Buffer.from(a.buffer).toString("base64"), `shape ${s} part ${k}`).toBe(parts[6 * s + k]));
      });
    } finally {
      setNativeLoops(previous);
    }
  });
});

describe.skipIf(nativeCnnKernels() === null)("avgPool2d: the native loops (native/pool.c)", () => {
  const bytes = (a: FloatArray) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

  /** Forward and backward with the native loops and with the TypeScript loops give the same bits. */
  function same(shape: number[], options: Pool2dOptions, countIncludePad: boolean, float64: boolean, seed: number): void {
    const p = pool2dGeometry("avgPool2d", shape, options);
    const Type = float64 ? Float64Array : Float32Array;
    const x = filled(Type, p.batch * p.channels * p.height * p.width, seed);
    x[3] = -0; x[5] = NaN; x[8] = Infinity; // NaN and Infinity spread through their windows alike
    const g = filled(Type, p.batch * p.channels * p.outH * p.outW, seed + 1);
    g[2] = -0;
    const run = (native: boolean) => {
      const previous = setNativeLoops(native);
      try {
        const out = new Type(g.length).fill(7), gx = new Type(x.length).fill(7);
        avgPool2dForward(p, x, out, countIncludePad);
        avgPool2dBackward(p, g, gx, countIncludePad);
        return { out, gx };
      } finally {
        setNativeLoops(previous);
      }
    };
    const native = run(true), portable = run(false);
    const what = `${JSON.stringify(shape)} ${JSON.stringify(options)} countIncludePad ${countIncludePad} float64 ${float64}`;
    expect(bytes(native.out).equals(bytes(portable.out)), `out ${what}`).toBe(true);
    expect(bytes(native.gx).equals(bytes(portable.gx)), `gradInput ${what}`).toBe(true);
  }

  it("the same values and gradients as the TypeScript loops: 2×2 windows, odd sizes, padding, overlap, ceil mode", () => {
    for (const float64 of [false, true]) {
      same([4, 6, 28, 28], { kernelSize: 2 }, true, float64, 1);
      same([3, 5, 7, 9], { kernelSize: 2 }, true, float64, 2);
      same([2, 4, 15, 13], { kernelSize: 3, stride: 2, padding: 1 }, true, float64, 3);
      same([2, 4, 15, 13], { kernelSize: 3, stride: 2, padding: 1 }, false, float64, 4);
      same([3, 2, 11, 17], { kernelSize: [2, 3], stride: 1, padding: [1, 1] }, false, float64, 5);
      same([3, 3, 11, 17], { kernelSize: 2, ceilMode: true }, false, float64, 6);
      same([3, 3, 11, 17], { kernelSize: 3, stride: 2, padding: 1, ceilMode: true }, true, float64, 7);
      same([4, 16, 10, 10], { kernelSize: 2 }, true, float64, 8); // LeNet's second pooling: rows of 5 windows
      same([2, 3, 6, 40], { kernelSize: 2 }, true, float64, 9); // rows of 20 windows: a full vector and a partial one
      same([3, 4, 9, 10], { kernelSize: 2 }, true, float64, 10); // 2 × 2 windows, a row no window covers
      same([3, 4, 10, 9], { kernelSize: 2 }, true, float64, 11); // a column no window covers, rows of 4 windows
    }
  });
});

describe("sigmoidAvgPool2d kernels", () => {
  /** Element by element with Object.is: +0 and -0 differ, any NaN equals any NaN (which of two NaN operands a
   *  product keeps is the compiler's choice). */
  const sameElements = (a: FloatArray, b: FloatArray): boolean => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

  /** x with NaN, ±Infinity, -0 and values where sigmoid saturates (s (1 - s) = 0) sprinkled in. */
  function awkward(Type: Float32ArrayConstructor | Float64ArrayConstructor, length: number, seed: number): FloatArray {
    const x = filled(Type, length, seed).map((v) => v * 12);
    const specials = [NaN, Infinity, -Infinity, -0, 0, 40, -40, 1e-30];
    for (let i = 0; i < length; i += 7) x[i] = specials[(i / 7) % specials.length];
    return x;
  }

  /** The fused kernels, native and TypeScript, against unary("sigmoid") then avgPool2dForward, and
   *  avgPool2dBackward then sigmoidBackward: the same values, bit for bit but for NaN payloads. */
  function same(shape: number[], options: Pool2dOptions, countIncludePad: boolean, float64: boolean, seed: number): void {
    const p = pool2dGeometry("avgPool2d", shape, options);
    const Type = float64 ? Float64Array : Float32Array;
    const x = awkward(Type, p.batch * p.channels * p.height * p.width, seed);
    const g = awkward(Type, p.batch * p.channels * p.outH * p.outW, seed + 1);
    const pair = () => {
      const s = new Type(x.length), out = new Type(g.length).fill(7), gx = new Type(x.length).fill(7);
      unary("sigmoid", x, s);
      avgPool2dForward(p, s, out, countIncludePad);
      avgPool2dBackward(p, g, gx, countIncludePad);
      sigmoidBackward(gx, s, gx);
      return { s, out, gx };
    };
    const fused = () => {
      const s = new Type(x.length).fill(7), out = new Type(g.length).fill(7), gx = new Type(x.length).fill(7);
      sigmoidAvgPool2dForward(p, x, s, out, countIncludePad);
      sigmoidAvgPool2dBackward(p, g, s, gx, countIncludePad);
      return { s, out, gx };
    };
    const what = `${JSON.stringify(shape)} ${JSON.stringify(options)} countIncludePad ${countIncludePad} float64 ${float64}`;
    for (const native of [true, false]) {
      const previous = setNativeLoops(native);
      try {
        const expected = pair(), got = fused();
        for (const k of ["s", "out", "gx"] as const) expect(sameElements(got[k], expected[k]), `${k} ${what} native ${native}`).toBe(true);
      } finally {
        setNativeLoops(previous);
      }
    }
  }

  it("the same sigmoid output, values and gradients as the two kernels in turn, native and TypeScript (NaN, ±Infinity, -0)", () => {
    for (const float64 of [false, true]) {
      same([4, 6, 28, 28], { kernelSize: 2 }, true, float64, 1); // LeNet's first pooling (several chunks of planes)
      same([4, 16, 10, 10], { kernelSize: 2 }, true, float64, 2); // LeNet's second
      same([2, 3, 6, 40], { kernelSize: 2 }, true, float64, 3); // rows of 20 windows
      same([3, 5, 7, 9], { kernelSize: 2 }, true, float64, 4); // odd sizes: the uncovered row and column get 0 · s (1 - s)
      same([2, 4, 15, 13], { kernelSize: 3, stride: 2, padding: 1 }, false, float64, 5);
      same([3, 3, 11, 17], { kernelSize: 3, stride: 2, padding: 1, ceilMode: true }, true, float64, 6);
      same([1, 2, 70, 70], { kernelSize: 2 }, true, float64, 7); // planes larger than a chunk
    }
  });

  it.skipIf(nativeCnnKernels() === null)("TAPEGRAD_NATIVE_AVX512=0 (the scalar C loops): average pooling and the fused kernels give the TypeScript loops' values", () => {
    const shapes = [[2, 6, 28, 28], [3, 16, 10, 10], [2, 3, 9, 11], [2, 3, 10, 9]];
    const data = (n: number, k = 1) => Float32Array.from({ length: n }, (_, i) => (i % 37 === 0 ? NaN : i % 41 === 0 ? -Infinity : i % 43 === 0 ? -0 : Math.sin(i * k) * 9));
    const parts = scalarLoopsRun(shapes, data, `
      const g = data(n, 2);
      const out = new Float32Array(n), gx = new Float32Array(x.length).fill(7), s = new Float32Array(x.length), outS = new Float32Array(n), gxS = new Float32Array(x.length).fill(7);
      addon.avgPool2dForward(geometry, x, out, true);
      addon.avgPool2dBackward(geometry, g, gx, true);
      addon.sigmoidAvgPool2dForward(geometry, x, s, outS, true);
      addon.sigmoidAvgPool2dBackward(geometry, g, s, gxS, true);
      for (const a of [out, gx, s, outS, gxS]) parts.push(Array.from(a, (v) => (Object.is(v, -0) ? "-0" : String(v))));
    `) as string[][];
    const previous = setNativeLoops(false);
    try {
      shapes.forEach(([b, c, h, w], k) => {
        const p = pool2dGeometry("avgPool2d", [b, c, h, w], { kernelSize: 2 });
        const n = b * c * p.outH * p.outW;
        const x = data(b * c * h * w), g = data(n, 2);
        const out = new Float32Array(n), gx = new Float32Array(x.length), s = new Float32Array(x.length), outS = new Float32Array(n), gxS = new Float32Array(x.length);
        avgPool2dForward(p, x, out, true);
        avgPool2dBackward(p, g, gx, true);
        sigmoidAvgPool2dForward(p, x, s, outS, true);
        sigmoidAvgPool2dBackward(p, g, s, gxS, true);
        [out, gx, s, outS, gxS].forEach((a, part) => {
          const got = parts[5 * k + part].map((v) => (v === "-0" ? -0 : Number(v)));
          expect(sameElements(Float32Array.from(got), a), `shape ${k} part ${part}`).toBe(true);
        });
      });
    } finally {
      setNativeLoops(previous);
    }
  });
});
