import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  AxisError, IndexError, ShapeError, ValueError, Tensor, arange, grad, gradcheck, gradgradcheck, narrow, noGrad, tensor,
} from "@tapegrad/autograd";
import { arbitraries, propertyRuns } from "../packages/autograd/src/testing.ts";

const numRuns = propertyRuns();
/** [[[0..3], [4..7], [8..11]], [[12..15], [16..19], [20..23]]] */
const cube = (dtype: "float32" | "float64" = "float32") => arange(24, undefined, 1, { dtype }).reshape([2, 3, 4]);
const f64 = (data: number[], shape: number[]) => tensor(data, { shape, dtype: "float64", requiresGrad: true });

/** x[..., start:start+length, ...] along `dim`, element by element through multi-indices. */
function referenceSlice(x: Tensor, dim: number, start: number, length: number): { shape: number[]; data: number[] } {
  const shape = x.shape.map((d, i) => (i === dim ? length : d));
  const size = shape.reduce((a, b) => a * b, 1);
  const data: number[] = [];
  for (let flat = 0; flat < size; flat++) {
    let rest = flat;
    let src = 0;
    let stride = 1;
    for (let i = shape.length - 1; i >= 0; i--) {
      const idx = rest % shape[i];
      rest = Math.floor(rest / shape[i]);
      src += (i === dim ? idx + start : idx) * stride;
      stride *= x.shape[i];
    }
    data.push(x.data[src]);
  }
  return { shape, data };
}

describe("narrow: values", () => {
  it("narrow: first axis keeps rows start..start+length-1", () => {
    const y = narrow(cube(), 0, 1, 1);
    expect(y.shape).toEqual([1, 3, 4]);
    expect(y.toArray()).toEqual([[[12, 13, 14, 15], [16, 17, 18, 19], [20, 21, 22, 23]]]);
  });

  it("narrow: a middle axis", () => {
    expect(narrow(cube(), 1, 1, 2).toArray()).toEqual([
      [[4, 5, 6, 7], [8, 9, 10, 11]],
      [[16, 17, 18, 19], [20, 21, 22, 23]],
    ]);
  });

  it("narrow: the last axis, also given as -1", () => {
    const expected = [[[1, 2], [5, 6], [9, 10]], [[13, 14], [17, 18], [21, 22]]];
    expect(narrow(cube(), 2, 1, 2).toArray()).toEqual(expected);
    expect(narrow(cube(), -1, 1, 2).toArray()).toEqual(expected);
    expect(narrow(cube(), -3, 0, 1).toArray()).toEqual([[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]]);
  });

  it("narrow: a negative start counts from the end", () => {
    expect(narrow(cube(), 2, -2, 2).toArray()).toEqual([[[2, 3], [6, 7], [10, 11]], [[14, 15], [18, 19], [22, 23]]]);
    expect(narrow(cube(), 1, -3, 1).toArray()).toEqual([[[0, 1, 2, 3]], [[12, 13, 14, 15]]]);
    expect(narrow(tensor([1, 2, 3, 4, 5]), 0, -1, 1).toArray()).toEqual([5]);
  });

  it("narrow: length 0 gives an empty axis, start may then equal the size", () => {
    const y = narrow(cube(), 1, 3, 0);
    expect(y.shape).toEqual([2, 0, 4]);
    expect(y.size).toBe(0);
    expect(y.toArray()).toEqual([[], []]);
    expect(narrow(cube(), 0, 1, 0).shape).toEqual([0, 3, 4]);
    expect(narrow(tensor([1, 2]), 0, -2, 0).shape).toEqual([0]);
  });

  it("narrow: the Tensor method is the same op", () => {
    const x = cube();
    expect(x.narrow(1, 0, 2).toArray()).toEqual(narrow(x, 1, 0, 2).toArray());
    expect(x.narrow(0, -1, 1).toArray()).toEqual(narrow(x, 0, 1, 1).toArray());
  });

  it("narrow: the whole axis gives the tensor back", () => {
    const x = cube();
    expect(narrow(x, 1, 0, 3)).toBe(x);
    expect(narrow(x, -1, -4, 4)).toBe(x);
  });

  it("narrow: float64 stays float64 and float32 stays float32, data and gradient", () => {
    const x = cube("float64").requiresGrad_();
    for (const y of [narrow(x, 0, 0, 1), narrow(x, 2, 1, 2)]) {
      expect(y.dtype).toBe("float64");
      expect(y.data).toBeInstanceOf(Float64Array);
    }
    narrow(x, 1, 1, 1).sum().backward();
    expect(x.grad!.dtype).toBe("float64");
    expect(narrow(cube(), 1, 0, 1).data).toBeInstanceOf(Float32Array);
  });
});

describe("narrow: memory", () => {
  it("narrow: along axis 0 the result is a view of the input's data (zero copy)", () => {
    const x = arange(12).reshape([4, 3]);
    const y = x.narrow(0, 1, 2);
    expect(y.data.buffer).toBe(x.data.buffer);
    expect(y.data.byteOffset).toBe(3 * 4);
    expect(y.toArray()).toEqual([[3, 4, 5], [6, 7, 8]]);
    x.data[4] = 100;
    expect(y.toArray()).toEqual([[3, 100, 5], [6, 7, 8]]);
    y.data[5] = -1;
    expect(x.data[8]).toBe(-1);
  });

  it("narrow: an axis after leading axes of size 1 is still a view", () => {
    const x = arange(12).reshape([1, 4, 3]);
    const y = x.narrow(1, 2, 2);
    expect(y.data.buffer).toBe(x.data.buffer);
    x.data[6] = 42;
    expect(y.toArray()).toEqual([[[42, 7, 8], [9, 10, 11]]]);
  });

  it("narrow: other axes copy, so later writes to the input are not seen", () => {
    const x = arange(12).reshape([4, 3]);
    const y = x.narrow(1, 1, 2);
    expect(y.data.buffer).not.toBe(x.data.buffer);
    x.data[1] = 100;
    expect(y.toArray()).toEqual([[1, 2], [4, 5], [7, 8], [10, 11]]);
  });

  it("narrow: the gradient of a view is a fresh full-size buffer, shared with neither g nor x", () => {
    const x = tensor([[1, 2], [3, 4], [5, 6]], { requiresGrad: true });
    const y = x.narrow(0, 1, 2);
    const g = tensor([[10, 20], [30, 40]]);
    y.backward(g);
    expect(x.grad!.toArray()).toEqual([[0, 0], [10, 20], [30, 40]]);
    expect(x.grad!.data.buffer).not.toBe(g.data.buffer);
    expect(x.grad!.data.buffer).not.toBe(x.data.buffer);
    expect(x.grad!.data.buffer).not.toBe(y.data.buffer);
    g.data[0] = -1;
    expect(x.grad!.data[2]).toBe(10);
  });
});

describe("narrow: errors", () => {
  const x = cube();
  it("narrow: a start outside [-size, size]", () => {
    expect(() => narrow(x, 1, 4, 0)).toThrow(IndexError);
    expect(() => narrow(x, 1, 4, 0)).toThrow("narrow: start 4 is out of range [-3, 3] for axis 1 of shape [2, 3, 4]");
    expect(() => narrow(x, -1, -5, 1)).toThrow("narrow: start -5 is out of range [-4, 4] for axis 2 of shape [2, 3, 4]");
    expect(() => narrow(x, 0, 0.5, 1)).toThrow(IndexError);
  });

  it("narrow: a slice running past the end", () => {
    expect(() => narrow(x, 1, 2, 2)).toThrow(ShapeError);
    expect(() => narrow(x, 1, 2, 2)).toThrow("narrow: start 2 + length 2 exceeds size 3 of axis 1 of shape [2, 3, 4]");
    expect(() => narrow(x, 2, -1, 2)).toThrow("narrow: start -1 + length 2 exceeds size 4 of axis 2 of shape [2, 3, 4]");
  });

  it("narrow: a negative or fractional length", () => {
    expect(() => narrow(x, 0, 0, -1)).toThrow(ValueError);
    expect(() => narrow(x, 0, 0, -1)).toThrow("narrow: length must be a non-negative integer, got -1");
    expect(() => narrow(x, 0, 0, 1.5)).toThrow("narrow: length must be a non-negative integer, got 1.5");
  });

  it("narrow: an axis outside the rank", () => {
    expect(() => narrow(x, 3, 0, 1)).toThrow(AxisError);
    expect(() => narrow(x, 3, 0, 1)).toThrow("narrow: axis 3 is out of range for a tensor of rank 3");
    expect(() => narrow(x, -4, 0, 1)).toThrow("narrow: axis -4 is out of range for a tensor of rank 3");
  });

  it("narrow: a 0-d tensor is rejected", () => {
    expect(() => narrow(tensor(5), 0, 0, 1)).toThrow(ShapeError);
    expect(() => tensor(5).narrow(0, 0, 1)).toThrow("narrow: cannot be applied to a 0-d tensor");
  });
});

describe("narrow: gradients", () => {
  it("narrow: backward writes g into the slice and zeros elsewhere; overlapping slices accumulate", () => {
    const x = tensor([[1, 2, 3], [4, 5, 6]], { requiresGrad: true });
    x.narrow(1, 1, 2).mul(tensor([[1, 2], [3, 4]])).sum().add(x.narrow(1, -1, 1).sum()).backward();
    expect(x.grad!.toArray()).toEqual([[0, 1, 3], [0, 3, 5]]);
  });

  it("narrow: no node is recorded under noGrad", () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    const y = noGrad(() => x.narrow(0, 1, 1));
    expect(y.requiresGrad).toBe(false);
    expect(y.gradFn).toBeNull();
    expect(x.narrow(0, 1, 1).gradFn!.op).toBe("narrow");
  });

  it("narrow: gradcheck on every axis, negative starts and empty slices", () => {
    const x = f64(Array.from({ length: 24 }, (_, i) => Math.sin(i)), [2, 3, 4]);
    const cases: [number, number, number][] = [[0, 1, 1], [1, 1, 2], [2, 0, 3], [-1, -2, 2], [1, -3, 1], [2, 4, 0], [0, 0, 0]];
    for (const [dim, start, length] of cases) {
      expect(gradcheck((a) => a.narrow(dim, start, length).mul(a.narrow(dim, start, length)), [x])).toBe(true);
    }
  });

  it("narrow: gradgradcheck (its backward is an op whose backward is narrow again)", () => {
    const x = f64(Array.from({ length: 12 }, (_, i) => Math.cos(i)), [3, 4]);
    for (const [dim, start, length] of [[0, 1, 2], [1, -3, 2], [-1, 0, 1]]) {
      expect(gradgradcheck((a) => a.narrow(dim, start, length).pow(3), [x])).toBe(true);
    }
  });

  it("narrow: createGraph gives a second derivative through the narrowed slice", () => {
    const x = f64([1, 2, 3, 4], [4]);
    const [g] = grad(x.narrow(0, 1, 2).pow(3).sum(), [x], { createGraph: true });
    expect(Array.from(g!.data)).toEqual([0, 12, 27, 0]);
    const [gg] = grad(g!.sum(), [x]);
    expect(Array.from(gg!.data)).toEqual([0, 12, 18, 0]);
  });

  it("narrow: third order, where the gradient flowing into narrow's backward depends on x", () => {
    // h = Σ x·∂/∂x Σ narrow(x)⁴ = Σ 4x⁴ over the slice, so ∂h/∂x = 16x³ there and ∂(Σ ∂h/∂x)/∂x = 48x²
    const x = f64([1, 2, 3, 4], [4]);
    const [g1] = grad(x.narrow(0, 1, 2).pow(4).sum(), [x], { createGraph: true });
    const [g2] = grad(g1!.mul(x).sum(), [x], { createGraph: true });
    expect(Array.from(g2!.data)).toEqual([0, 128, 432, 0]);
    const [g3] = grad(g2!.sum(), [x]);
    expect(Array.from(g3!.data)).toEqual([0, 192, 432, 0]);
  });
});

describe("narrow: properties", () => {
  const sample = arbitraries.shape({ minRank: 1, maxRank: 4, minDim: 0, maxDim: 4 }).chain((shape) =>
    fc.integer({ min: -shape.length, max: shape.length - 1 }).chain((dim) => {
      const n = shape[dim < 0 ? dim + shape.length : dim];
      return fc.integer({ min: 0, max: n }).chain((length) =>
        fc.record({
          shape: fc.constant(shape), dim: fc.constant(dim), length: fc.constant(length),
          start: fc.integer({ min: 0, max: n - length }), fromEnd: fc.boolean(), dtype: fc.constantFrom("float32" as const, "float64" as const),
        }),
      );
    }),
  );

  it("narrow: matches an index-by-index slice on random shapes, axes, starts and lengths", () => {
    fc.assert(
      fc.property(sample, ({ shape, dim, length, start, fromEnd, dtype }) => {
        const size = shape.reduce((a, b) => a * b, 1);
        const x = arange(size, undefined, 1, { dtype }).reshape(shape);
        const d = dim < 0 ? dim + shape.length : dim;
        const n = shape[d];
        const y = narrow(x, dim, fromEnd ? start - n : start, length);
        const ref = referenceSlice(x, d, start, length);
        expect(y.shape).toEqual(ref.shape);
        expect(Array.from(y.data)).toEqual(ref.data);
        expect(y.dtype).toBe(dtype);
        // a view exactly when the slice is one block of x's data (all leading axes of size 1, or the whole axis)
        const leadingOnes = shape.slice(0, d).every((v) => v === 1);
        if (leadingOnes || length === n) expect(y.data.buffer).toBe(x.data.buffer);
        else expect(y.data.buffer).not.toBe(x.data.buffer);
      }),
      { numRuns: numRuns * 3 },
    );
  });

  it("narrow: the gradient is g embedded at the slice, zeros elsewhere", () => {
    fc.assert(
      fc.property(sample, ({ shape, dim, length, start, fromEnd }) => {
        const size = shape.reduce((a, b) => a * b, 1);
        const x = tensor(new Float64Array(size), { shape, dtype: "float64", requiresGrad: true });
        const d = dim < 0 ? dim + shape.length : dim;
        const y = narrow(x, dim, fromEnd ? start - shape[d] : start, length);
        const g = arange(y.size, undefined, 1, { dtype: "float64" }).add(1).reshape(y.shape);
        const [back] = grad(y, [x], { gradOutput: g });
        // narrowing the gradient again gives g back, and everything outside the slice is 0
        expect(back.shape).toEqual(shape);
        expect(Array.from(narrow(back, d, start, length).data)).toEqual(Array.from(g.data));
        const total = Array.from(back.data).reduce((a, b) => a + b, 0);
        expect(total).toBe(Array.from(g.data).reduce((a, b) => a + b, 0));
      }),
      { numRuns },
    );
  });
});
