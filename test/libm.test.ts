/**
 * kernels/libm.ts: the exp and log that the TypeScript and native kernels share. Checked against V8's
 * Math.exp and Math.log (each within an ulp of the exact value) to a few ulps, and at the special values
 * and range edges exactly. That the addon's C twins give the same bits is checked in kernels-native.test.ts.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { expDouble, logDouble } from "../packages/autograd/src/kernels/index.ts";

const f64 = new Float64Array(1);
const i64 = new BigInt64Array(f64.buffer);
/** Distance in units in the last place between two finite doubles of the same sign. */
function ulps(a: number, b: number): number {
  if (Object.is(a, b)) return 0;
  f64[0] = a;
  const x = i64[0];
  f64[0] = b;
  return Math.abs(Number(x - i64[0]));
}

const finite = (min: number, max: number) => fc.double({ min, max, noNaN: true, noDefaultInfinity: true });

describe("expDouble", () => {
  it("is within 1 ulp of Math.exp wherever the result is a normal double", () => {
    fc.assert(fc.property(fc.oneof(finite(-708, 709.7), finite(-1, 1), finite(-30, 30)), (x) => {
      expect(ulps(expDouble(x), Math.exp(x)), `exp(${x})`).toBeLessThanOrEqual(1);
    }), { numRuns: 20000 });
  });

  it("rounds subnormal results once: within 1 subnormal step of Math.exp", () => {
    fc.assert(fc.property(finite(-745.1, -708.4), (x) => {
      expect(Math.abs(expDouble(x) - Math.exp(x)), `exp(${x})`).toBeLessThanOrEqual(5e-324);
    }), { numRuns: 5000 });
  });

  it("special values and the edges of the range", () => {
    const cases: [number, number][] = [
      [0, 1], [-0, 1], [Infinity, Infinity], [-Infinity, 0], [NaN, NaN], [710, Infinity], [709.8, Infinity],
      [-746, 0], [-1e308, 0], [1e308, Infinity], [5e-324, 1], [-5e-324, 1], [1, Math.E],
      [-745.13, 5e-324], [709.78, Math.exp(709.78)],
    ];
    for (const [x, want] of cases) expect(Object.is(expDouble(x), want) || ulps(expDouble(x), want) <= 1, `exp(${x}) = ${expDouble(x)}`).toBe(true);
  });

  it("is monotonic across the points where the reduction switches between multiples of ln 2", () => {
    for (let k = -1070; k <= 1020; k += 7) {
      const x = (k + 0.5) * Math.LN2;
      const below = expDouble(x - 1e-12), at = expDouble(x), above = expDouble(x + 1e-12);
      expect(below <= at && at <= above, `around ${x}`).toBe(true);
    }
  });
});

describe("logDouble", () => {
  it("is within 3 ulps of Math.log over normal and subnormal inputs", () => {
    const positive = fc.oneof(finite(1e-300, 1e300), finite(0.5, 2), finite(5e-324, 2.2250738585072014e-308), finite(1, 1e6));
    fc.assert(fc.property(positive, (x) => {
      fc.pre(x > 0);
      expect(ulps(logDouble(x), Math.log(x)), `log(${x})`).toBeLessThanOrEqual(3);
    }), { numRuns: 20000 });
  });

  it("special values: exact at powers of two and 1, -Infinity at ±0, NaN below 0", () => {
    expect(logDouble(1)).toBe(0);
    expect(logDouble(0)).toBe(-Infinity);
    expect(logDouble(-0)).toBe(-Infinity);
    expect(logDouble(Infinity)).toBe(Infinity);
    expect(logDouble(-1)).toBeNaN();
    expect(logDouble(-Infinity)).toBeNaN();
    expect(logDouble(NaN)).toBeNaN();
    for (const e of [-1074, -1022, -1, 1, 2, 52, 1023]) {
      expect(ulps(logDouble(2 ** e), e * Math.LN2), `log(2^${e})`).toBeLessThanOrEqual(1);
    }
    expect(ulps(logDouble(Number.MAX_VALUE), Math.log(Number.MAX_VALUE))).toBeLessThanOrEqual(1);
  });

  it("inverts expDouble: |log(exp(x)) - x| within a few ulps of max(1, |x|), as exp's rounding allows", () => {
    fc.assert(fc.property(finite(-700, 700), (x) => {
      const error = Math.abs(logDouble(expDouble(x)) - x);
      expect(error, `log(exp(${x}))`).toBeLessThanOrEqual(4 * Number.EPSILON * Math.max(1, Math.abs(x)));
    }), { numRuns: 5000 });
  });
});
