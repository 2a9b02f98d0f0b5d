import { describe, expect, it } from "vitest";
import {
  tensor, zeros, ones, full, randn, rand, arange, eye, manualSeed, Tensor, ShapeError, ValueError,
} from "@tapegrad/autograd";

describe("tensor creation", () => {
  it("tensor: infers the shape of nested arrays and defaults to float32", () => {
    const x = tensor([[1, 2, 3], [4, 5, 6]]);
    expect(x.shape).toEqual([2, 3]);
    expect(x.dtype).toBe("float32");
    expect(x.data).toBeInstanceOf(Float32Array);
    expect(x.toArray()).toEqual([[1, 2, 3], [4, 5, 6]]);
    expect(x.requiresGrad).toBe(false);
  });

  it("tensor: a number is a 0-d tensor that item() reads", () => {
    const s = tensor(3.5);
    expect(s.shape).toEqual([]);
    expect(s.size).toBe(1);
    expect(s.item()).toBe(3.5);
    expect(s.toArray()).toBe(3.5);
  });

  it("tensor: a typed array with a shape, dtype float64", () => {
    const w = tensor(new Float64Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3], dtype: "float64", requiresGrad: true });
    expect(w.shape).toEqual([2, 3]);
    expect(w.dtype).toBe("float64");
    expect(w.requiresGrad).toBe(true);
    expect(w.toArray()).toEqual([[1, 2, 3], [4, 5, 6]]);
  });

  it("tensor: a Float64Array keeps float64 by default and the data is copied", () => {
    const src = new Float64Array([1, 2]);
    const t = tensor(src);
    expect(t.dtype).toBe("float64");
    src[0] = 9;
    expect(t.data[0]).toBe(1);
  });

  it("tensor: a flat number array with a shape", () => {
    expect(tensor([1, 2, 3, 4], { shape: [2, 2] }).toArray()).toEqual([[1, 2], [3, 4]]);
  });

  it("tensor: empty dimensions are allowed", () => {
    const e = tensor([]);
    expect(e.shape).toEqual([0]);
    expect(zeros([3, 0]).size).toBe(0);
  });

  it("tensor: a ragged nested array is an error that names the position", () => {
    expect(() => tensor([[1, 2], [3]])).toThrow(ValueError);
    expect(() => tensor([[1, 2], [3]])).toThrow(/ragged nested array: expected length 2 at \[1\], got length 1/);
    expect(() => tensor([[1, 2], 3] as never)).toThrow(/ragged/);
    expect(() => tensor([1, [2, 3]] as never)).toThrow(/ragged nested array: expected a number at \[1\]/);
  });

  it("tensor: data that does not fit the shape is an error naming both", () => {
    expect(() => tensor(new Float32Array(5), { shape: [2, 3] })).toThrow(ShapeError);
    expect(() => tensor(new Float32Array(5), { shape: [2, 3] })).toThrow(/5 values do not fit shape \[2, 3\]/);
    expect(() => tensor([1, 2], { shape: [-1] })).toThrow(/invalid shape/);
  });

  it("tensor: an unknown dtype is an error", () => {
    expect(() => tensor([1], { dtype: "int8" as never })).toThrow(/unknown dtype "int8"/);
  });

  it("item: refuses tensors of more than one element", () => {
    expect(() => tensor([1, 2]).item()).toThrow(/only a tensor with one element.*\[2\]/);
    expect(tensor([[7]]).item()).toBe(7);
  });
});

describe("factories", () => {
  it("zeros, ones, full, eye, arange", () => {
    expect(zeros([2]).toArray()).toEqual([0, 0]);
    expect(ones([2, 1], { dtype: "float64" }).dtype).toBe("float64");
    expect(full([2], 7).toArray()).toEqual([7, 7]);
    expect(eye(2).toArray()).toEqual([[1, 0], [0, 1]]);
    expect(arange(4).toArray()).toEqual([0, 1, 2, 3]);
    expect(arange(1, 2, 0.25).toArray()).toEqual([1, 1.25, 1.5, 1.75]);
    expect(arange(3, 0, -1).toArray()).toEqual([3, 2, 1]);
    expect(() => arange(0, 1, 0)).toThrow(/step/);
  });

  it("manualSeed makes randn and rand reproducible bit for bit", () => {
    manualSeed(42);
    const a = randn([100], { dtype: "float64" });
    const u = rand([10]);
    manualSeed(42);
    const b = randn([100], { dtype: "float64" });
    const v = rand([10]);
    expect(Array.from(b.data)).toEqual(Array.from(a.data));
    expect(Array.from(v.data)).toEqual(Array.from(u.data));
    manualSeed(43);
    expect(Array.from(randn([100], { dtype: "float64" }).data)).not.toEqual(Array.from(a.data));
  });

  it("randn has mean ≈ 0 and std ≈ 1; rand lies in [0, 1)", () => {
    manualSeed(0);
    const x = randn([20000], { dtype: "float64" });
    const mean = x.mean().item();
    const std = Math.sqrt(x.sub(mean).square().mean().item());
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(std - 1)).toBeLessThan(0.03);
    const u = rand([20000]);
    expect(u.min().item()).toBeGreaterThanOrEqual(0);
    expect(u.max().item()).toBeLessThan(1);
    expect(Math.abs(u.mean().item() - 0.5)).toBeLessThan(0.01);
  });

  it("Tensor constructor checks the data length", () => {
    expect(() => new Tensor(new Float32Array(3), [2, 2])).toThrow(/data of length 3 does not fit shape \[2, 2\]/);
  });
});
