/**
 * PyTorch's semantics at the edges (checked against PyTorch 1.13): NaN inputs to relu, abs and a full max,
 * and squeeze of axes that are not of size 1.
 */
import { describe, expect, it } from "vitest";
import { tensor, zeros } from "@tapegrad/autograd";

const gradOf = (values: number[], f: (x: ReturnType<typeof tensor>) => ReturnType<typeof tensor>, dtype: "float32" | "float64" = "float32"): number[] => {
  const x = tensor(values, { requiresGrad: true, dtype });
  f(x).sum().backward();
  return Array.from(x.grad!.data);
};

describe("PyTorch edge semantics", () => {
  for (const dtype of ["float32", "float64"] as const) {
    it(`relu: a NaN input passes the gradient ([NaN, 2] → [1, 1]), 0 and negatives block it (${dtype})`, () => {
      expect(gradOf([NaN, 2, 0, -1], (x) => x.relu(), dtype)).toEqual([1, 1, 0, 0]);
    });

    it(`abs: the gradient at NaN is 0, as at 0 ([NaN, -1, 0, 3] → [0, -1, 0, 1]) (${dtype})`, () => {
      expect(gradOf([NaN, -1, 0, 3], (x) => x.abs(), dtype)).toEqual([0, -1, 0, 1]);
    });

    it(`max: a NaN is the maximum and takes the whole gradient, over all axes and over one (${dtype})`, () => {
      expect(gradOf([1, NaN, 3], (x) => x.max(), dtype)).toEqual([0, 1, 0]);
      expect(gradOf([1, NaN, 3, 4, 2, 0], (x) => x.reshape([2, 3]).max(1), dtype)).toEqual([0, 1, 0, 1, 0, 0]);
      expect(gradOf([NaN, 1, NaN], (x) => x.max(), dtype)).toEqual([0.5, 0, 0.5]);
      expect(gradOf([1, NaN, 3], (x) => x.min(), dtype)).toEqual([0, 1, 0]);
    });
  }

  it("relu and abs agree on a long input (the native loops) and a short one (TypeScript)", () => {
    const values = Array.from({ length: 5000 }, (_, i) => (i % 7 === 0 ? NaN : (i % 5) - 2));
    const want = (v: number, f: "relu" | "abs") => (Number.isNaN(v) ? (f === "relu" ? 1 : 0) : f === "relu" ? (v > 0 ? 1 : 0) : Math.sign(v));
    expect(gradOf(values, (x) => x.relu())).toEqual(values.map((v) => want(v, "relu")));
    expect(gradOf(values, (x) => x.abs())).toEqual(values.map((v) => want(v, "abs")));
  });

  it("squeeze: an axis whose size is not 1 is a no-op; a 0-d tensor accepts 0 and -1", () => {
    expect(zeros([2, 3]).squeeze(1).shape).toEqual([2, 3]);
    expect(zeros([2, 1, 3]).squeeze([0, 1]).shape).toEqual([2, 3]);
    expect(tensor(0.3).squeeze(0).shape).toEqual([]);
    expect(tensor(0.3).squeeze(-1).shape).toEqual([]);
    expect(() => tensor(0.3).squeeze(1)).toThrow(/squeeze: axis 1 is out of range for a tensor of rank 0/);
  });
});
