// Normalisation kernels: forwards against two-pass definitions, backwards against central differences (float64).
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  batchNormBackward, batchNormForwardEval, batchNormForwardTraining, batchNormUpdateRunning, layerNormBackward, layerNormForward,
} from "../packages/autograd/src/kernels/norm.ts";

type FloatArray = Float32Array | Float64Array;

function filled(Type: Float32ArrayConstructor | Float64ArrayConstructor, length: number, seed: number, scale = 1, offset = 0): FloatArray {
  const out = new Type(length);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = (s / 2 ** 31 - 1) * scale + offset;
  }
  return out;
}

/** Per channel of [N, C, inner]: the values, for two-pass statistics. */
function channelValues(x: FloatArray, n: number, c: number, inner: number, ch: number): number[] {
  const v: number[] = [];
  for (let b = 0; b < n; b++) for (let i = 0; i < inner; i++) v.push(x[(b * c + ch) * inner + i]);
  return v;
}
const meanOf = (v: number[]) => v.reduce((s, a) => s + a, 0) / v.length;
const biasedVar = (v: number[]) => { const m = meanOf(v); return v.reduce((s, a) => s + (a - m) ** 2, 0) / v.length; };

/** Σ g·f(x) by central differences along each element of `wrt` (in place, restored). */
function numericGradient(f: () => number, wrt: Float64Array): Float64Array {
  const h = 1e-6;
  const grad = new Float64Array(wrt.length);
  for (let i = 0; i < wrt.length; i++) {
    const v = wrt[i];
    wrt[i] = v + h; const up = f();
    wrt[i] = v - h; const down = f();
    wrt[i] = v;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

function expectAllClose(actual: FloatArray, expected: ArrayLike<number>, tolerance: number, what: string): void {
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= tolerance * (1 + Math.abs(expected[i])))) {
      expect.fail(`${what}[${i}] = ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

const bnShape = fc.record({ n: fc.integer({ min: 1, max: 4 }), c: fc.integer({ min: 1, max: 4 }), inner: fc.integer({ min: 1, max: 6 }), seed: fc.nat(), affine: fc.boolean() })
  .filter((s) => s.n * s.inner > 1);

describe("batch norm kernels", () => {
  it("batchNormForwardTraining: batch mean, biased variance and the normalised, affine output as two-pass formulas give", () => {
    fc.assert(fc.property(bnShape, fc.boolean(), ({ n, c, inner, seed, affine }, float64) => {
      const Type = float64 ? Float64Array : Float32Array;
      const x = filled(Type, n * c * inner, seed, 2, 0.5);
      const w = affine ? filled(Type, c, seed + 1) : null, b = affine ? filled(Type, c, seed + 2) : null;
      const out = new Type(x.length), mean = new Type(c), invstd = new Type(c), variance = new Type(c);
      batchNormForwardTraining(x, n, c, inner, w, b, 1e-5, out, mean, invstd, variance);
      const tol = float64 ? 1e-12 : 2e-6;
      for (let ch = 0; ch < c; ch++) {
        const v = channelValues(x, n, c, inner, ch);
        const m = meanOf(v), vr = biasedVar(v), is = 1 / Math.sqrt(vr + 1e-5);
        expectAllClose(mean.subarray(ch, ch + 1), [m], tol, "mean");
        expectAllClose(variance.subarray(ch, ch + 1), [vr], tol, "variance");
        expectAllClose(invstd.subarray(ch, ch + 1), [is], tol, "invstd");
        for (let bb = 0; bb < n; bb++) for (let i = 0; i < inner; i++) {
          const k = (bb * c + ch) * inner + i;
          const want = (x[k] - m) * is * (w ? w[ch] : 1) + (b ? b[ch] : 0);
          expectAllClose(out.subarray(k, k + 1), [want], tol * 10, "out");
        }
      }
    }), { numRuns: 100 });
  });

  it("batchNormForwardTraining: a large mean does not cancel the variance away (float64, mean 1e6, std 1e-3)", () => {
    const x = filled(Float64Array, 4 * 2 * 9, 3, 1e-3, 1e6);
    const mean = new Float64Array(2), invstd = new Float64Array(2), variance = new Float64Array(2);
    batchNormForwardTraining(x, 4, 2, 9, null, null, 0, new Float64Array(x.length), mean, invstd, variance);
    for (let ch = 0; ch < 2; ch++) expect(variance[ch] / biasedVar(channelValues(x, 4, 2, 9, ch))).toBeCloseTo(1, 6);
  });

  it("batchNormBackward (training): gradients of Σ g·batchNorm(x) with respect to x, weight, bias match central differences", () => {
    fc.assert(fc.property(bnShape, ({ n, c, inner, seed, affine }) => {
      const x = filled(Float64Array, n * c * inner, seed, 2) as Float64Array;
      const w = filled(Float64Array, c, seed + 1) as Float64Array, b = filled(Float64Array, c, seed + 2) as Float64Array;
      const g = filled(Float64Array, x.length, seed + 3);
      const out = new Float64Array(x.length), mean = new Float64Array(c), invstd = new Float64Array(c);
      const loss = () => {
        batchNormForwardTraining(x, n, c, inner, affine ? w : null, affine ? b : null, 1e-3, out, mean, invstd, null);
        return out.reduce((s, v, i) => s + v * g[i], 0);
      };
      loss();
      const gx = new Float64Array(x.length), gw = new Float64Array(c), gb = new Float64Array(c);
      batchNormBackward(g, x, n, c, inner, affine ? w : null, mean, invstd, true, gx, gw, gb);
      expectAllClose(gx, numericGradient(loss, x), 1e-5, "gradInput");
      expectAllClose(gw, numericGradient(loss, w).map((v, i) => (affine ? v : gw[i])), 1e-5, "gradWeight");
      if (affine) expectAllClose(gb, numericGradient(loss, b), 1e-5, "gradBias");
      // without affine parameters, gradWeight and gradBias are still Σ g·xhat and Σ g
      const gw2 = new Float64Array(c), gb2 = new Float64Array(c);
      batchNormBackward(g, x, n, c, inner, null, mean, invstd, true, null, gw2, gb2);
      expectAllClose(gw2, gw, 1e-12, "gradWeight (no gradInput)");
      expectAllClose(gb2, gb, 1e-12, "gradBias (no gradInput)");
    }), { numRuns: 60 });
  });

  it("batchNormForwardEval and batchNormBackward (eval): running statistics are constants", () => {
    fc.assert(fc.property(bnShape, ({ n, c, inner, seed }) => {
      const x = filled(Float64Array, n * c * inner, seed, 2) as Float64Array;
      const w = filled(Float64Array, c, seed + 1) as Float64Array, b = filled(Float64Array, c, seed + 2) as Float64Array;
      const rm = filled(Float64Array, c, seed + 4), rv = filled(Float64Array, c, seed + 5, 0.5, 1);
      const g = filled(Float64Array, x.length, seed + 3);
      const out = new Float64Array(x.length);
      const loss = () => { batchNormForwardEval(x, n, c, inner, rm, rv, w, b, 1e-5, out); return out.reduce((s, v, i) => s + v * g[i], 0); };
      loss();
      for (let k = 0; k < x.length; k++) {
        const ch = Math.floor(k / inner) % c;
        expect(out[k]).toBeCloseTo((x[k] - rm[ch]) / Math.sqrt(rv[ch] + 1e-5) * w[ch] + b[ch], 12);
      }
      const invstd = rv.map((v) => 1 / Math.sqrt(v + 1e-5));
      const gx = new Float64Array(x.length), gw = new Float64Array(c), gb = new Float64Array(c);
      batchNormBackward(g, x, n, c, inner, w, rm, invstd, false, gx, gw, gb);
      expectAllClose(gx, numericGradient(loss, x), 1e-6, "gradInput");
      expectAllClose(gw, numericGradient(loss, w), 1e-6, "gradWeight");
      expectAllClose(gb, numericGradient(loss, b), 1e-6, "gradBias");
    }), { numRuns: 60 });
  });

  it("batchNormUpdateRunning: PyTorch's momentum rule with the unbiased batch variance", () => {
    const rm = new Float64Array([0, 1]), rv = new Float64Array([1, 2]);
    batchNormUpdateRunning(rm, rv, new Float64Array([2, 3]), new Float64Array([4, 6]), 2, 5, 0.1);
    expect(rm[0]).toBeCloseTo(0.2, 14);
    expect(rm[1]).toBeCloseTo(0.9 + 0.3, 14);
    expect(rv[0]).toBeCloseTo(0.9 + 0.1 * 4 * 5 / 4, 14);
    expect(rv[1]).toBeCloseTo(1.8 + 0.1 * 6 * 5 / 4, 14);
  });
});

describe("layer norm kernels", () => {
  const lnShape = fc.record({ rows: fc.integer({ min: 1, max: 5 }), cols: fc.integer({ min: 2, max: 9 }), seed: fc.nat(), affine: fc.boolean() });

  it("layerNormForward: per-row mean and invstd, normalised and elementwise affine", () => {
    fc.assert(fc.property(lnShape, fc.boolean(), ({ rows, cols, seed, affine }, float64) => {
      const Type = float64 ? Float64Array : Float32Array;
      const x = filled(Type, rows * cols, seed, 3, -1);
      const w = affine ? filled(Type, cols, seed + 1) : null, b = affine ? filled(Type, cols, seed + 2) : null;
      const out = new Type(x.length), mean = new Type(rows), invstd = new Type(rows);
      layerNormForward(x, rows, cols, w, b, 1e-5, out, mean, invstd);
      const tol = float64 ? 1e-12 : 3e-6;
      for (let r = 0; r < rows; r++) {
        const v = Array.from(x.subarray(r * cols, (r + 1) * cols));
        const m = meanOf(v), is = 1 / Math.sqrt(biasedVar(v) + 1e-5);
        expectAllClose(mean.subarray(r, r + 1), [m], tol, "mean");
        expectAllClose(invstd.subarray(r, r + 1), [is], tol, "invstd");
        expectAllClose(out.subarray(r * cols, (r + 1) * cols), v.map((a, j) => (a - m) * is * (w ? w[j] : 1) + (b ? b[j] : 0)), tol * 10, "out");
      }
    }), { numRuns: 100 });
  });

  it("layerNormBackward: gradients with respect to x, weight, bias match central differences", () => {
    fc.assert(fc.property(lnShape, ({ rows, cols, seed, affine }) => {
      const x = filled(Float64Array, rows * cols, seed, 2) as Float64Array;
      const w = filled(Float64Array, cols, seed + 1) as Float64Array, b = filled(Float64Array, cols, seed + 2) as Float64Array;
      const g = filled(Float64Array, x.length, seed + 3);
      const out = new Float64Array(x.length), mean = new Float64Array(rows), invstd = new Float64Array(rows);
      const loss = () => {
        layerNormForward(x, rows, cols, affine ? w : null, affine ? b : null, 1e-3, out, mean, invstd);
        return out.reduce((s, v, i) => s + v * g[i], 0);
      };
      loss();
      const gx = new Float64Array(x.length), gw = new Float64Array(cols), gb = new Float64Array(cols);
      layerNormBackward(g, x, rows, cols, affine ? w : null, mean, invstd, gx, gw, gb);
      expectAllClose(gx, numericGradient(loss, x), 1e-5, "gradInput");
      if (affine) {
        expectAllClose(gw, numericGradient(loss, w), 1e-5, "gradWeight");
        expectAllClose(gb, numericGradient(loss, b), 1e-5, "gradBias");
      }
    }), { numRuns: 60 });
  });
});
