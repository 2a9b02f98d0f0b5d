// Convolution kernels against direct loops written here. Run once per gemm backend:
//   TAPEGRAD_BACKEND=js npx vitest run test/kernels-conv.test.ts   (and wasm, native)
import { afterEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  conv2dBackwardBias, conv2dBackwardInput, conv2dBackwardInputPath, conv2dBackwardWeight, conv2dForward, conv2dGeometry, conv2dOutputSize,
  conv2dNative, conv2dPath, conv2dWorkspaceSize, setConv2dChunk, type Conv2dGeometry, type Conv2dOptions,
} from "../packages/autograd/src/kernels/conv.ts";
import { gemmBackend, nativeGemmThreads } from "../packages/autograd/src/kernels/gemm.ts";
import { setNativeLoops } from "../packages/autograd/src/kernels/native-loops.ts";
import { ShapeError, ValueError } from "../packages/autograd/src/errors.ts";

type FloatArray = Float32Array | Float64Array;
type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;

/** Deterministic values in [-1, 1). */
function filled(Type: Ctor, length: number, seed: number): FloatArray {
  const out = new Type(length);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** The convolution written as its definition, in double: every (n, o, oh, ow) sums over (c, i, j). */
function convReference(g: Conv2dGeometry, x: FloatArray, w: FloatArray, bias: FloatArray | null): Float64Array {
  const { batch, inChannels, height, width, outChannels, kernelH, kernelW, groups, outH, outW } = g;
  const cg = inChannels / groups, og = outChannels / groups;
  const out = new Float64Array(batch * outChannels * outH * outW);
  for (let n = 0; n < batch; n++) for (let o = 0; o < outChannels; o++) {
    const grp = Math.floor(o / og);
    for (let oh = 0; oh < outH; oh++) for (let ow = 0; ow < outW; ow++) {
      let s = bias ? bias[o] : 0;
      for (let c = 0; c < cg; c++) for (let i = 0; i < kernelH; i++) for (let j = 0; j < kernelW; j++) {
        const ih = oh * g.strideH - g.padH + i * g.dilationH, iw = ow * g.strideW - g.padW + j * g.dilationW;
        if (ih < 0 || ih >= height || iw < 0 || iw >= width) continue;
        s += x[((n * inChannels + grp * cg + c) * height + ih) * width + iw] * w[((o * cg + c) * kernelH + i) * kernelW + j];
      }
      out[((n * outChannels + o) * outH + oh) * outW + ow] = s;
    }
  }
  return out;
}

/** Both gradients by the chain rule over the same loops: each output element sends g·w to x and g·x to w. */
function convGradReference(g: Conv2dGeometry, x: FloatArray, w: FloatArray, gy: FloatArray): { gx: Float64Array; gw: Float64Array; gb: Float64Array } {
  const { batch, inChannels, height, width, outChannels, kernelH, kernelW, groups, outH, outW } = g;
  const cg = inChannels / groups, og = outChannels / groups;
  const gx = new Float64Array(x.length), gw = new Float64Array(w.length), gb = new Float64Array(outChannels);
  for (let n = 0; n < batch; n++) for (let o = 0; o < outChannels; o++) {
    const grp = Math.floor(o / og);
    for (let oh = 0; oh < outH; oh++) for (let ow = 0; ow < outW; ow++) {
      const go = gy[((n * outChannels + o) * outH + oh) * outW + ow];
      gb[o] += go;
      for (let c = 0; c < cg; c++) for (let i = 0; i < kernelH; i++) for (let j = 0; j < kernelW; j++) {
        const ih = oh * g.strideH - g.padH + i * g.dilationH, iw = ow * g.strideW - g.padW + j * g.dilationW;
        if (ih < 0 || ih >= height || iw < 0 || iw >= width) continue;
        const xi = ((n * inChannels + grp * cg + c) * height + ih) * width + iw;
        const wi = ((o * cg + c) * kernelH + i) * kernelW + j;
        gx[xi] += go * w[wi];
        gw[wi] += go * x[xi];
      }
    }
  }
  return { gx, gw, gb };
}

function expectClose(actual: FloatArray, expected: Float64Array, tolerance: number, what: string): void {
  expect(actual.length).toBeGreaterThanOrEqual(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= tolerance)) {
      expect.fail(`${what}[${i}] = ${actual[i]}, reference ${expected[i]} (tolerance ${tolerance})`);
    }
  }
}

interface Case {
  batch: number; groups: number; cinPerGroup: number; coutPerGroup: number; height: number; width: number;
  kernelH: number; kernelW: number; stride: [number, number]; padding: [number, number] | "same" | "valid";
  dilation: [number, number]; bias: boolean; float64: boolean; seed: number;
}

function geometryOf(t: Case): Conv2dGeometry | null {
  const options: Conv2dOptions = { stride: t.stride, padding: t.padding, dilation: t.dilation, groups: t.groups };
  if (t.padding === "same") options.stride = 1;
  try {
    return conv2dGeometry([t.batch, t.groups * t.cinPerGroup, t.height, t.width], [t.groups * t.coutPerGroup, t.cinPerGroup, t.kernelH, t.kernelW], options);
  } catch (e) {
    if (e instanceof ShapeError) return null; // kernel larger than the padded input
    throw e;
  }
}

/** Runs all four kernels with NaN-poisoned outputs and workspaces, and checks them against the references. */
function checkCase(t: Case): void {
  const g = geometryOf(t);
  if (g === null) return;
  const Type = t.float64 ? Float64Array : Float32Array;
  const x = filled(Type, g.batch * g.inChannels * g.height * g.width, t.seed);
  const w = filled(Type, g.outChannels * (g.inChannels / g.groups) * g.kernelH * g.kernelW, t.seed + 1);
  const b = t.bias ? filled(Type, g.outChannels, t.seed + 2) : null;
  const gy = filled(Type, g.batch * g.outChannels * g.outH * g.outW, t.seed + 3);
  const depth = (g.inChannels / g.groups) * g.kernelH * g.kernelW;
  const unit = t.float64 ? 1e-14 : 3e-7;
  const workspace = (pass: "forward" | "backwardInput" | "backwardWeight") => new Type(conv2dWorkspaceSize(g, pass)).fill(NaN);

  const out = new Type(gy.length).fill(NaN);
  conv2dForward(g, x, w, b, out, workspace("forward"));
  expectClose(out, convReference(g, x, w, b), unit * (depth + 2), `forward ${JSON.stringify(t)} out`);

  const ref = convGradReference(g, x, w, gy);
  const gx = new Type(x.length).fill(NaN);
  conv2dBackwardInput(g, gy, w, gx, workspace("backwardInput"));
  const fanOut = (g.outChannels / g.groups) * g.kernelH * g.kernelW;
  expectClose(gx, ref.gx, unit * (fanOut + 2), `backwardInput ${JSON.stringify(t)} gradInput`);

  const gw = new Type(w.length).fill(NaN), gbFused = new Type(g.outChannels).fill(NaN);
  conv2dBackwardWeight(g, x, gy, gw, t.bias ? gbFused : null, workspace("backwardWeight"));
  const terms = g.batch * g.outH * g.outW;
  expectClose(gw, ref.gw, unit * (terms + 2), `backwardWeight ${JSON.stringify(t)} gradWeight`);
  if (t.bias) expectClose(gbFused, ref.gb, unit * (terms + 2), `backwardWeight ${JSON.stringify(t)} gradBias`);

  const gb = new Type(g.outChannels).fill(NaN);
  conv2dBackwardBias(gy, g.batch, g.outChannels, g.outH * g.outW, gb);
  expectClose(gb, ref.gb, unit * (terms + 2), `backwardBias ${JSON.stringify(t)} gradBias`);
}

const caseArbitrary: fc.Arbitrary<Case> = fc.record({
  batch: fc.integer({ min: 1, max: 3 }),
  groups: fc.integer({ min: 1, max: 3 }),
  cinPerGroup: fc.integer({ min: 1, max: 3 }),
  coutPerGroup: fc.integer({ min: 1, max: 3 }),
  height: fc.integer({ min: 1, max: 9 }),
  width: fc.integer({ min: 1, max: 9 }),
  kernelH: fc.integer({ min: 1, max: 4 }),
  kernelW: fc.integer({ min: 1, max: 4 }),
  stride: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
  padding: fc.oneof(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 })), fc.constantFrom<"same" | "valid">("same", "valid")),
  dilation: fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 })),
  bias: fc.boolean(),
  float64: fc.boolean(),
  seed: fc.nat(),
});

afterEach(() => { setConv2dChunk(undefined); });

describe(`conv2d kernels (gemm backend: ${gemmBackend()})`, () => {
  it("conv2d: forward and all three gradients match direct loops on random geometries", () => {
    fc.assert(fc.property(caseArbitrary, (t) => { checkCase(t); }), { numRuns: 300 });
  });

  it("conv2d: the rows and wide paths give the same results for every chunk size, partial last chunks included", () => {
    const base: Case = { batch: 7, groups: 2, cinPerGroup: 3, coutPerGroup: 2, height: 6, width: 5, kernelH: 3, kernelW: 2,
      stride: [1, 1], padding: [1, 2], dilation: [2, 1], bias: true, float64: true, seed: 11 };
    expect(conv2dPath(geometryOf(base)!)).toBe("wide");
    for (const chunk of [1, 2, 3, 7, 50]) {
      setConv2dChunk(chunk);
      checkCase(base);
      checkCase({ ...base, float64: false, padding: "valid", kernelH: 4, seed: 12 });
      // the rows path chunks the same way (same-width padding)
      checkCase({ ...base, padding: [1, 1], kernelW: 3, dilation: [2, 1], seed: 13 });
      checkCase({ ...base, padding: "same", kernelH: 4, kernelW: 4, float64: false, seed: 14 });
    }
  });

  it("conv2d: each path is exercised (pointwise, rows, wide, im2col) on both dtypes", () => {
    const shapes: [Partial<Case>, string][] = [
      [{ kernelH: 1, kernelW: 1, padding: [0, 0] }, "pointwise"],
      [{ kernelH: 3, kernelW: 3, padding: [1, 1] }, "rows"],
      [{ kernelH: 3, kernelW: 3, padding: [1, 0] }, "wide"],
      [{ kernelH: 4, kernelW: 4, padding: "same" }, "rows"],
      [{ kernelH: 3, kernelW: 5, padding: [0, 2], dilation: [2, 1] }, "rows"],
      [{ kernelH: 2, kernelW: 3, padding: [3, 2], dilation: [1, 2] }, "rows"],
      [{ kernelH: 3, kernelW: 3, padding: [1, 0], stride: [2, 1] }, "im2col"],
      [{ kernelH: 1, kernelW: 1, padding: [0, 0], stride: [2, 2] }, "im2col"],
      [{ kernelH: 1, kernelW: 1, padding: [1, 0] }, "rows"],
      [{ kernelH: 1, kernelW: 1, padding: [0, 1] }, "wide"],
    ];
    for (const [shape, path] of shapes) {
      for (const float64 of [false, true]) {
        const t: Case = { batch: 3, groups: 2, cinPerGroup: 2, coutPerGroup: 3, height: 7, width: 6, kernelH: 3, kernelW: 3,
          stride: [1, 1], padding: [0, 0], dilation: [1, 1], bias: true, float64, seed: 5, ...shape };
        expect(conv2dPath(geometryOf(t)!)).toBe(path);
        checkCase(t);
      }
    }
  });

  it("conv2dBackwardInputPath: a stride-1 convolution with narrower output rows takes the rows path for its input gradient", () => {
    expect(conv2dBackwardInputPath(conv2dGeometry([1, 6, 14, 14], [16, 6, 5, 5]))).toBe("rows");
    expect(conv2dBackwardInputPath(conv2dGeometry([1, 6, 14, 14], [16, 6, 3, 3], { padding: [0, 2] }))).toBe("wide");
    expect(conv2dBackwardInputPath(conv2dGeometry([1, 32, 14, 14], [64, 32, 3, 3], { padding: 1 }))).toBe("rows");
    expect(conv2dBackwardInputPath(conv2dGeometry([1, 32, 14, 14], [64, 32, 3, 3], { padding: 1, stride: 2 }))).toBe("im2col");
    for (const chunk of [1, 2, undefined]) {
      setConv2dChunk(chunk);
      checkCase({ batch: 3, groups: 2, cinPerGroup: 5, coutPerGroup: 4, height: 9, width: 8, kernelH: 3, kernelW: 4,
        stride: [1, 1], padding: [2, 1], dilation: [1, 2], bias: true, float64: false, seed: 8 });
    }
  });

  it("conv2d: a larger case (the cnn's second layer at batch 4) matches the direct loops", () => {
    checkCase({ batch: 4, groups: 1, cinPerGroup: 32, coutPerGroup: 16, height: 14, width: 14, kernelH: 3, kernelW: 3,
      stride: [1, 1], padding: [1, 1], dilation: [1, 1], bias: true, float64: false, seed: 3 });
    checkCase({ batch: 3, groups: 1, cinPerGroup: 6, coutPerGroup: 16, height: 14, width: 14, kernelH: 5, kernelW: 5,
      stride: [1, 1], padding: "valid", dilation: [1, 1], bias: true, float64: true, seed: 4 });
  });

  it("conv2d: the rows path builds its im2col matrix in channel blocks when it is large (uneven blocks, groups)", () => {
    // 16×16 outputs: a block holds at most 2^16 / 256 = 256 rows, 28 channels of a 3×3 kernel
    checkCase({ batch: 2, groups: 1, cinPerGroup: 64, coutPerGroup: 40, height: 16, width: 16, kernelH: 3, kernelW: 3,
      stride: [1, 1], padding: [1, 1], dilation: [1, 1], bias: true, float64: false, seed: 21 });
    checkCase({ batch: 2, groups: 2, cinPerGroup: 33, coutPerGroup: 30, height: 16, width: 16, kernelH: 3, kernelW: 3,
      stride: [1, 1], padding: [2, 2], dilation: [2, 2], bias: false, float64: true, seed: 22 });
  });

  it("conv2d: backward is the transpose of forward: <conv(x, w), g> = <x, backwardInput(g)> = <w, backwardWeight(x, g)>", () => {
    fc.assert(fc.property(caseArbitrary, (t) => {
      const g = geometryOf({ ...t, float64: true });
      if (g === null) return;
      const x = filled(Float64Array, g.batch * g.inChannels * g.height * g.width, t.seed);
      const w = filled(Float64Array, g.outChannels * (g.inChannels / g.groups) * g.kernelH * g.kernelW, t.seed + 1);
      const gy = filled(Float64Array, g.batch * g.outChannels * g.outH * g.outW, t.seed + 2);
      const y = new Float64Array(gy.length);
      conv2dForward(g, x, w, null, y, new Float64Array(conv2dWorkspaceSize(g, "forward")));
      const gx = new Float64Array(x.length);
      conv2dBackwardInput(g, gy, w, gx, new Float64Array(conv2dWorkspaceSize(g, "backwardInput")));
      const gw = new Float64Array(w.length);
      conv2dBackwardWeight(g, x, gy, gw, null, new Float64Array(conv2dWorkspaceSize(g, "backwardWeight")));
      const dot = (a: FloatArray, b: FloatArray) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * b[i]; return s; };
      const yg = dot(y, gy);
      const scale = 1e-12 * (1 + gy.length + x.length + w.length);
      expect(Math.abs(yg - dot(x, gx))).toBeLessThanOrEqual(scale);
      expect(Math.abs(yg - dot(w, gw))).toBeLessThanOrEqual(scale);
    }), { numRuns: 150 });
  });

  it("conv2dBackwardWeight and conv2dBackwardBias: accumulate adds to the gradient, otherwise it is overwritten", () => {
    const g = conv2dGeometry([2, 2, 5, 5], [3, 2, 3, 3], { padding: 1 });
    const x = filled(Float64Array, 100, 1), gy = filled(Float64Array, 150, 2);
    const ws = new Float64Array(conv2dWorkspaceSize(g, "backwardWeight"));
    const once = new Float64Array(54), onceBias = new Float64Array(3).fill(NaN);
    conv2dBackwardWeight(g, x, gy, once, onceBias, ws);
    const twice = once.slice(), twiceBias = onceBias.slice();
    conv2dBackwardWeight(g, x, gy, twice, twiceBias, ws, true);
    twice.forEach((v, i) => expect(v).toBeCloseTo(2 * once[i], 12));
    twiceBias.forEach((v, i) => expect(v).toBeCloseTo(2 * onceBias[i], 12));
    const gb = new Float64Array(3).fill(1);
    conv2dBackwardBias(gy, 2, 3, 25, gb, true);
    const ref = convGradReference(g, x, filled(Float64Array, 54, 3), gy).gb;
    gb.forEach((v, i) => expect(v).toBeCloseTo(ref[i] + 1, 12));
    onceBias.forEach((v, i) => expect(v).toBeCloseTo(ref[i], 12));
  });

  it("conv2dGeometry: output sizes, 'same' and 'valid' padding as in PyTorch", () => {
    expect(conv2dGeometry([128, 1, 28, 28], [32, 1, 3, 3], { padding: 1 })).toMatchObject({ outH: 28, outW: 28, padH: 1, padW: 1 });
    expect(conv2dGeometry([256, 6, 14, 14], [16, 6, 5, 5])).toMatchObject({ outH: 10, outW: 10 });
    // an even kernel under "same": PyTorch pads 1 above / left and 2 below / right for k = 4
    expect(conv2dGeometry([1, 1, 7, 6], [1, 1, 4, 4], { padding: "same" })).toMatchObject({ outH: 7, outW: 6, padH: 1, padW: 1 });
    expect(conv2dGeometry([1, 1, 7, 6], [1, 1, 3, 3], { padding: "same", dilation: [2, 3] })).toMatchObject({ outH: 7, outW: 6, padH: 2, padW: 3 });
    expect(conv2dGeometry([1, 1, 9, 9], [1, 1, 3, 3], { stride: 2, padding: [1, 0] })).toMatchObject({ outH: 5, outW: 4 });
    expect(conv2dOutputSize(10, 3, 3, 1, 1, 2)).toBe(3);
  });

  it("conv2dGeometry: bad shapes and options are errors naming conv2d and the shapes", () => {
    expect(() => conv2dGeometry([1, 3, 8, 8], [4, 2, 3, 3])).toThrow(ShapeError);
    expect(() => conv2dGeometry([1, 3, 8, 8], [4, 2, 3, 3])).toThrow(/conv2d: given groups=1, weight \[4, 2, 3, 3\] expects 2 input channels, but the input \[1, 3, 8, 8\] has 3/);
    expect(() => conv2dGeometry([1, 4, 8, 8], [3, 2, 3, 3], { groups: 2 })).toThrow(/outChannels 3 is not divisible by groups 2/);
    expect(() => conv2dGeometry([1, 1, 2, 2], [1, 1, 3, 3])).toThrow(/smaller than the dilated kernel/);
    expect(() => conv2dGeometry([1, 1, 8, 8], [1, 1, 3, 3], { stride: 2, padding: "same" })).toThrow(ValueError);
    expect(() => conv2dGeometry([1, 1, 8, 8], [1, 1, 3, 3], { stride: 0 })).toThrow(/stride must be an integer ≥ 1/);
    expect(() => conv2dGeometry([1, 1, 8], [1, 1, 3, 3])).toThrow(/4-D input/);
  });

  it("conv2d kernels: mixed array types and short buffers are errors", () => {
    const g = conv2dGeometry([1, 1, 4, 4], [1, 1, 3, 3], { padding: 1 });
    const ws = new Float32Array(conv2dWorkspaceSize(g, "forward"));
    expect(() => conv2dForward(g, new Float32Array(16), new Float64Array(9), null, new Float32Array(16), ws)).toThrow(/weight is a Float64Array/);
    expect(() => conv2dForward(g, new Float32Array(16), new Float32Array(9), null, new Float32Array(15), ws)).toThrow(/out has 15 elements, needs 16/);
    expect(() => conv2dForward(g, new Float32Array(16), new Float32Array(9), null, new Float32Array(16), ws.subarray(1))).toThrow(/workspace/);
  });
});

describe.skipIf(!conv2dNative(conv2dGeometry([1, 1, 4, 4], [1, 1, 3, 3], { padding: 1 })))("conv2d: the native direct kernels (native/conv.c)", () => {
  /** Runs the three passes on float32 data with the native kernels or the portable paths (native loops off). */
  function passes(g: Conv2dGeometry, native: boolean, seed: number, accumulate = false) {
    const x = filled(Float32Array, g.batch * g.inChannels * g.height * g.width, seed) as Float32Array;
    const w = filled(Float32Array, g.outChannels * (g.inChannels / g.groups) * g.kernelH * g.kernelW, seed + 1) as Float32Array;
    const b = filled(Float32Array, g.outChannels, seed + 2) as Float32Array;
    const gy = filled(Float32Array, g.batch * g.outChannels * g.outH * g.outW, seed + 3) as Float32Array;
    const previous = setNativeLoops(native);
    try {
      const ws = (pass: "forward" | "backwardInput" | "backwardWeight") => new Float32Array(conv2dWorkspaceSize(g, pass)).fill(NaN);
      const out = new Float32Array(gy.length).fill(NaN), gx = new Float32Array(x.length).fill(NaN);
      const gw = filled(Float32Array, w.length, seed + 4) as Float32Array, gb = filled(Float32Array, g.outChannels, seed + 5) as Float32Array;
      conv2dForward(g, x, w, b, out, ws("forward"));
      conv2dBackwardInput(g, gy, w, gx, ws("backwardInput"));
      conv2dBackwardWeight(g, x, gy, gw, gb, ws("backwardWeight"), accumulate);
      return { out, gx, gw, gb };
    } finally {
      setNativeLoops(previous);
    }
  }

  /** Native against portable, to float32 rounding of sums of `depth` terms of size ≤ 1. */
  function agree(shape: number[], weight: number[], options: Conv2dOptions, seed: number, accumulate = false): void {
    const g = conv2dGeometry(shape, weight, options);
    expect(conv2dNative(g)).toBe(true);
    const native = passes(g, true, seed, accumulate), portable = passes(g, false, seed, accumulate);
    const what = `${JSON.stringify(shape)} ${JSON.stringify(weight)} ${JSON.stringify(options)}`;
    const depth = (g.inChannels / g.groups) * g.kernelH * g.kernelW;
    const fanOut = (g.outChannels / g.groups) * g.kernelH * g.kernelW;
    const terms = g.batch * g.outH * g.outW;
    const close = (a: Float32Array, b: Float32Array, n: number, name: string) => expectClose(a, Float64Array.from(b), 6e-7 * (n + 2), `${name} ${what}`);
    close(native.out, portable.out, depth, "out");
    close(native.gx, portable.gx, fanOut, "gradInput");
    close(native.gw, portable.gw, terms, "gradWeight");
    close(native.gb, portable.gb, terms, "gradBias");
  }

  it("agree with the portable paths: the cnn's and LeNet's layers, batches that are not whole blocks of 8", () => {
    agree([9, 1, 28, 28], [32, 1, 3, 3], { padding: 1 }, 1);
    agree([11, 32, 14, 14], [64, 32, 3, 3], { padding: 1 }, 2);
    agree([5, 1, 28, 28], [6, 1, 5, 5], { padding: 2 }, 3);
    agree([17, 6, 14, 14], [16, 6, 5, 5], {}, 4);
  });

  it("agree with the portable paths: groups, dilation, uneven kernels, padding wider than the kernel, narrow planes", () => {
    agree([3, 6, 9, 7], [20, 3, 3, 2], { padding: [1, 2], dilation: [2, 1], groups: 2 }, 5); // 10 channels a group: vectors along positions
    agree([2, 4, 6, 5], [36, 2, 2, 3], { padding: [3, 2], groups: 2 }, 6); // 18 a group: along channels, a partial vector of them
    agree([2, 8, 6, 5], [36, 4, 3, 3], { padding: [3, 2], groups: 2 }, 14);
    agree([3, 5, 1, 17], [17, 5, 1, 3], { padding: [0, 1] }, 7);
    agree([2, 3, 20, 3], [4, 3, 4, 1], { padding: "same", dilation: [3, 1] }, 8);
    agree([2, 2, 5, 40], [33, 2, 3, 3], { padding: "valid" }, 9); // output rows narrower than the input's, over two vectors
    agree([1, 1, 2, 2], [1, 1, 1, 1], { padding: 4 }, 10); // an output mostly of padding
    agree([4, 3, 6, 6], [16, 3, 3, 3], { padding: 1 }, 11, true); // accumulate into the gradients
    // weight gradient along positions: output channels in tiles of 4, the last 5 or 6 in one tile, 1 to 3 left
    agree([3, 2, 9, 8], [5, 2, 3, 3], { padding: 1 }, 23);
    agree([3, 2, 9, 8], [7, 2, 5, 3], { padding: 1 }, 24);
    agree([2, 3, 7, 7], [11, 3, 5, 5], { padding: 2 }, 25, true);
  });

  it("agree with the portable paths where the forward runs along the output channels (rows of 12 or fewer, 16-multiple channels)", () => {
    agree([5, 6, 14, 14], [16, 6, 5, 5], {}, 26); // LeNet's second layer: the input read as it is
    agree([3, 3, 9, 7], [32, 3, 3, 3], { padding: [2, 0] }, 27); // staged with its padding: rows of 5, an odd row count
    agree([2, 4, 13, 16], [32, 2, 3, 5], { padding: [0, 1], dilation: [1, 2], groups: 2 }, 28); // rows of 10
    agree([3, 2, 5, 3], [16, 2, 1, 3], {}, 29); // rows of one position
    agree([2, 3, 4, 14], [48, 3, 2, 3], { padding: [1, 0] }, 30); // rows of 12, three vectors of channels
    agree([9, 1, 10, 10], [16, 1, 3, 3], { padding: 4, dilation: 3 }, 31); // padding wider than the kernel's reach: rows of 12
  });

  it("agree with the portable paths on Winograd's geometries (3×3, 16-multiple channels): odd planes, paddings 0 to 3, groups", () => {
    agree([3, 16, 13, 15], [16, 16, 3, 3], { padding: 1 }, 17); // 2×2 output blocks past the plane's last row and column
    agree([2, 32, 9, 8], [48, 32, 3, 3], { padding: 0 }, 18);
    agree([2, 16, 7, 7], [32, 16, 3, 3], { padding: 2 }, 19); // the input gradient unpadded
    agree([2, 16, 6, 5], [16, 16, 3, 3], { padding: 3 }, 20); // the input gradient cropped
    agree([3, 64, 10, 10], [32, 32, 3, 3], { padding: 1, groups: 2 }, 21);
    agree([1, 16, 40, 3], [16, 16, 3, 3], { padding: "same" }, 22);
  });

  it("agree with the portable paths where the weight gradient's staging is bounded (fewer images a block, or along positions)", () => {
    // 8 × 66² + ... floats staged an image: 6 images a block instead of 8, over 13 images
    agree([13, 8, 64, 64], [32, 8, 3, 3], { padding: 1 }, 15);
    // more than 2^20 floats staged for one image: along positions
    agree([2, 16, 128, 128], [64, 16, 3, 3], { padding: 1 }, 16);
  });

  it("the input gradient with 16 images to a vector (batches of 16 or more, rows wider than the output's) has the position form's bits", () => {
    // the position form runs below 16 images: the same images in batches of 5 give the reference bits
    const cases: [number[], number[], Conv2dOptions][] = [
      [[37, 6, 14, 14], [16, 6, 5, 5], {}], // LeNet's second layer: blocks of 16, 16 and 5 images
      [[16, 10, 12, 11], [12, 5, 3, 4], { groups: 2 }],
      [[20, 9, 13, 12], [7, 9, 3, 3], { padding: [1, 0], dilation: [1, 2] }], // 7 and 8 input channels a tile: 3 positions
      [[18, 3, 9, 9], [4, 3, 5, 5], { padding: 1 }],
      [[16, 2, 5, 40], [3, 2, 3, 3], {}], // rows of 40: the output gradient's rows staged in two blocks of columns
    ];
    const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    cases.forEach(([shape, weight, options], k) => {
      const g = conv2dGeometry(shape, weight, options);
      const gy = filled(Float32Array, g.batch * g.outChannels * g.outH * g.outW, 40 + k) as Float32Array;
      gy[3] = Infinity; gy[11] = NaN; gy[20] = -0;
      const w = filled(Float32Array, weight.reduce((a, b) => a * b, 1), 50 + k) as Float32Array;
      const gx = new Float32Array(g.batch * g.inChannels * g.height * g.width).fill(7);
      conv2dBackwardInput(g, gy, w, gx, new Float32Array(conv2dWorkspaceSize(g, "backwardInput")).fill(NaN));
      const image = g.inChannels * g.height * g.width, gImage = g.outChannels * g.outH * g.outW;
      const reference = new Float32Array(gx.length).fill(7);
      for (let n0 = 0; n0 < g.batch; n0 += 5) {
        const nb = Math.min(5, g.batch - n0), part = conv2dGeometry([nb, ...shape.slice(1)], weight, options);
        conv2dBackwardInput(part, gy.subarray(n0 * gImage, (n0 + nb) * gImage), w, reference.subarray(n0 * image, (n0 + nb) * image),
          new Float32Array(conv2dWorkspaceSize(part, "backwardInput")).fill(NaN));
      }
      expect(bytes(gx).equals(bytes(reference)), `${JSON.stringify(shape)} ${JSON.stringify(weight)} ${JSON.stringify(options)}`).toBe(true);
    });
  });

  it("give the same bits on one thread and split with the helper thread", () => {
    const g = conv2dGeometry([24, 32, 14, 14], [64, 32, 3, 3], { padding: 1 });
    const previous = nativeGemmThreads(2);
    try {
      const split = passes(g, true, 12);
      nativeGemmThreads(1);
      const single = passes(g, true, 12);
      // bytewise (toEqual on arrays this long takes seconds)
      const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      for (const k of ["out", "gx", "gw", "gb"] as const) expect(bytes(split[k]).equals(bytes(single[k])), k).toBe(true);
    } finally {
      nativeGemmThreads(previous);
    }
  });

  it("float64 and strided convolutions keep the portable paths", () => {
    expect(conv2dNative(conv2dGeometry([1, 2, 8, 8], [3, 2, 3, 3], { stride: 2 }))).toBe(false);
    checkCase({ batch: 2, groups: 1, cinPerGroup: 3, coutPerGroup: 4, height: 6, width: 6, kernelH: 3, kernelW: 3,
      stride: [1, 1], padding: [1, 1], dilation: [1, 1], bias: true, float64: true, seed: 13 });
  });
});
