import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  tensor, zeros, arange, randn, grad, noGrad, linear, Generator, AxisError, IndexError, ShapeError, type NestedArray,
} from "@tapegrad/autograd";

const close = (a: NestedArray, b: NestedArray, digits = 5): void => {
  if (typeof a === "number" || typeof b === "number") {
    expect(typeof a).toBe("number");
    expect(a as number).toBeCloseTo(b as number, digits);
    return;
  }
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => close(x, b[i], digits));
};

describe("binary ops and broadcasting", () => {
  const a = tensor([[1, 2, 3], [4, 5, 6]]);
  it("add/sub/mul/div on equal shapes", () => {
    const b = tensor([[6, 5, 4], [3, 2, 1]]);
    expect(a.add(b).toArray()).toEqual([[7, 7, 7], [7, 7, 7]]);
    expect(a.sub(b).toArray()).toEqual([[-5, -3, -1], [1, 3, 5]]);
    expect(a.mul(b).toArray()).toEqual([[6, 10, 12], [12, 10, 6]]);
    close(a.div(b).toArray(), [[1 / 6, 0.4, 0.75], [4 / 3, 2.5, 6]]);
  });
  it("a number operand on either side", () => {
    expect(a.add(1).toArray()).toEqual([[2, 3, 4], [5, 6, 7]]);
    expect(a.mul(2).sub(1).toArray()).toEqual([[1, 3, 5], [7, 9, 11]]);
    expect(a.div(2).toArray()).toEqual([[0.5, 1, 1.5], [2, 2.5, 3]]);
  });
  it("a row vector broadcasts over rows, a column over columns", () => {
    expect(a.add(tensor([10, 20, 30])).toArray()).toEqual([[11, 22, 33], [14, 25, 36]]);
    expect(a.mul(tensor([[2], [3]])).toArray()).toEqual([[2, 4, 6], [12, 15, 18]]);
  });
  it("both operands broadcast: [3,1] + [1,4] → [3,4], and rank 3 against rank 1", () => {
    const c = tensor([[0], [10], [20]]).add(tensor([[1, 2, 3, 4]]));
    expect(c.shape).toEqual([3, 4]);
    expect(c.toArray()).toEqual([[1, 2, 3, 4], [11, 12, 13, 14], [21, 22, 23, 24]]);
    const d = arange(12).reshape([2, 3, 2]).sub(tensor([[1, 0]]).reshape([1, 1, 2]));
    expect(d.shape).toEqual([2, 3, 2]);
    expect(d.toArray()).toEqual([[[-1, 1], [1, 3], [3, 5]], [[5, 7], [7, 9], [9, 11]]]);
    const e = tensor([[[1], [2]]]).mul(tensor([[1, 10, 100]]));
    expect(e.shape).toEqual([1, 2, 3]);
    expect(e.toArray()).toEqual([[[1, 10, 100], [2, 20, 200]]]);
  });
  it("a 0-d tensor broadcasts against anything", () => {
    const s = tensor(2);
    expect(a.mul(s).toArray()).toEqual([[2, 4, 6], [8, 10, 12]]);
    expect(s.sub(a).shape).toEqual([2, 3]);
    expect(s.add(s).shape).toEqual([]);
  });
  it("a 0-d tensor reduces over axis 0 or -1 to a 0-d tensor, as in PyTorch; other axes are errors", () => {
    const s = tensor(3, { requiresGrad: true });
    for (const y of [s.sum(0), s.mean(-1), s.max(0, true), s.min([-1]), s.logsumexp(0), s.softmax(-1), s.argmax(0)]) {
      expect(y.shape).toEqual([]);
    }
    expect(s.sum(0, true).item()).toBe(3);
    expect(s.softmax(0).item()).toBe(1);
    expect(s.argmax(-1).item()).toBe(0);
    s.max(0).add(s.sum(-1)).backward();
    expect(s.grad!.item()).toBe(2);
    expect(() => s.sum(1)).toThrow(AxisError);
    expect(() => s.sum(1)).toThrow("sum: axis 1 is out of range for a tensor of rank 0 (it accepts 0 and -1)");
    expect(() => s.mean([0, -1])).toThrow("mean: axis 0 repeated in [0,-1]");
    expect(() => s.logSoftmax(2)).toThrow("logSoftmax: axis 2 is out of range for a tensor of rank 0");
    expect(() => s.argmax(-2)).toThrow(AxisError);
  });
  it("mismatched broadcast is a ShapeError naming the op and both shapes", () => {
    expect(() => a.add(tensor([1, 2]))).toThrow(ShapeError);
    expect(() => a.add(tensor([1, 2]))).toThrow("add: shapes [2, 3] and [2] cannot be broadcast together");
    expect(() => a.mul(zeros([3, 3]))).toThrow("mul: shapes [2, 3] and [3, 3] cannot be broadcast together");
  });
  it("float32 with float64 promotes to float64; a number keeps the tensor's dtype", () => {
    const x = tensor([1, 2]);
    const y = tensor([0.5, 0.25], { dtype: "float64" });
    expect(x.add(y).dtype).toBe("float64");
    expect(x.add(0.1).dtype).toBe("float32");
    // as in PyTorch, a 0-d tensor does not promote a dimensioned one; two 0-d tensors do promote
    expect(x.mul(tensor(2, { dtype: "float64" })).dtype).toBe("float32");
    expect(tensor(2, { dtype: "float64" }).sub(x).dtype).toBe("float32");
    expect(tensor(1).add(tensor(2, { dtype: "float64" })).dtype).toBe("float64");
  });
  it("maximum and minimum pass all of the gradient to both inputs where one is NaN, half at ties (PyTorch's rule)", () => {
    const x = tensor([NaN, 1, 2, 5], { requiresGrad: true });
    const y = tensor([0, NaN, 2, 1], { requiresGrad: true });
    x.maximum(y).sum().backward();
    expect(Array.from(x.grad!.data)).toEqual([1, 1, 0.5, 1]);
    expect(Array.from(y.grad!.data)).toEqual([1, 1, 0.5, 0]);
    x.zeroGrad(); y.zeroGrad();
    x.minimum(y).sum().backward();
    expect(Array.from(x.grad!.data)).toEqual([1, 1, 0.5, 0]);
    expect(Array.from(y.grad!.data)).toEqual([1, 1, 0.5, 1]);
  });
  it("pow, maximum, minimum and comparisons", () => {
    expect(tensor([1, 2, 3]).pow(2).toArray()).toEqual([1, 4, 9]);
    expect(tensor([4, 9]).pow(tensor([0.5, 0.5])).toArray()).toEqual([2, 3]);
    expect(tensor([1, 5, 3]).maximum(tensor([2, 2, 3])).toArray()).toEqual([2, 5, 3]);
    expect(tensor([1, 5, 3]).minimum(2).toArray()).toEqual([1, 2, 2]);
    expect(tensor([1, 2, 3]).gt(2).toArray()).toEqual([0, 0, 1]);
    expect(tensor([1, 2, 3]).eq(tensor([1, 0, 3])).toArray()).toEqual([1, 0, 1]);
    expect(tensor([1, 2, 3]).le(2).toArray()).toEqual([1, 1, 0]);
  });
});

describe("unary ops", () => {
  it("neg, exp, log, relu, tanh, sigmoid, sqrt, abs", () => {
    const x = tensor([-2, -0.5, 0, 0.5, 2], { dtype: "float64" });
    expect(x.neg().toArray()).toEqual([2, 0.5, -0, -0.5, -2]);
    close(x.exp().toArray(), [-2, -0.5, 0, 0.5, 2].map(Math.exp), 12);
    close(tensor([1, Math.E, 10], { dtype: "float64" }).log().toArray(), [0, 1, Math.log(10)], 12);
    expect(x.relu().toArray()).toEqual([0, 0, 0, 0.5, 2]);
    close(x.tanh().toArray(), [-2, -0.5, 0, 0.5, 2].map(Math.tanh), 12);
    close(x.sigmoid().toArray(), [-2, -0.5, 0, 0.5, 2].map((v) => 1 / (1 + Math.exp(-v))), 12);
    expect(tensor([4, 9]).sqrt().toArray()).toEqual([2, 3]);
    expect(x.abs().toArray()).toEqual([2, 0.5, 0, 0.5, 2]);
  });
  it("sigmoid stays finite for large inputs", () => {
    expect(tensor([-1000, 1000]).sigmoid().toArray()).toEqual([0, 1]);
  });
  it("sigmoid backward: the fused pass gives the same bits as the recorded ops g·(y·(1 − y)), small and large", () => {
    for (const dtype of ["float32", "float64"] as const) {
      for (const shape of [[7], [3, 1000], [256, 6, 28, 28]]) {
        const x = randn(shape, { dtype, requiresGrad: true }).mul(4).detach().requiresGrad_();
        const g = randn(shape, { dtype });
        const y = x.sigmoid();
        y.backward(g);
        const composed = noGrad(() => g.mul(y.detach().mul(tensor(1, { dtype }).sub(y.detach()))));
        expect(x.grad!.dtype).toBe(dtype);
        expect(Array.from(x.grad!.data)).toEqual(Array.from(composed.data));
        const x2 = x.detach().requiresGrad_();
        const [gx] = grad(x2.sigmoid(), x2, { gradOutput: g, createGraph: true });
        expect(Array.from(gx.data)).toEqual(Array.from(composed.data));
      }
    }
  });
});

describe("reductions", () => {
  const x = arange(24).reshape([2, 3, 4]);
  it("sum over all axes gives a 0-d tensor", () => {
    const s = x.sum();
    expect(s.shape).toEqual([]);
    expect(s.item()).toBe(276);
    expect(x.mean().item()).toBe(11.5);
    expect(x.max().item()).toBe(23);
    expect(x.min().item()).toBe(0);
  });
  it("sum/mean/max along an axis, negative axes, keepdims", () => {
    expect(x.sum(0).toArray()).toEqual([[12, 14, 16, 18], [20, 22, 24, 26], [28, 30, 32, 34]]);
    expect(x.sum(-1).toArray()).toEqual([[6, 22, 38], [54, 70, 86]]);
    expect(x.sum(1, true).shape).toEqual([2, 1, 4]);
    expect(x.sum(1, true).toArray()).toEqual([[[12, 15, 18, 21]], [[48, 51, 54, 57]]]);
    expect(x.mean(-1).toArray()).toEqual([[1.5, 5.5, 9.5], [13.5, 17.5, 21.5]]);
    expect(x.max(1).toArray()).toEqual([[8, 9, 10, 11], [20, 21, 22, 23]]);
    expect(x.max(-1, true).shape).toEqual([2, 3, 1]);
    expect(x.sum(undefined, true).shape).toEqual([1, 1, 1]);
  });
  it("several axes, contiguous or not", () => {
    expect(x.sum([0, 2]).toArray()).toEqual([60, 92, 124]);
    expect(x.sum([0, 1]).toArray()).toEqual([60, 66, 72, 78]);
    expect(x.sum([-1, 0], true).shape).toEqual([1, 3, 1]);
    expect(x.max([0, 2]).toArray()).toEqual([15, 19, 23]);
    expect(x.mean([1, 2]).toArray()).toEqual([5.5, 17.5]);
  });
  it("an axis list in any order, negative axes included, reduces the same axes", () => {
    expect(x.sum([2, 0]).toArray()).toEqual([60, 92, 124]);
    expect(x.sum([-1, -3], true).toArray()).toEqual([[[60], [92], [124]]]);
    expect(x.mean([2, -3, 1]).item()).toBe(11.5);
    expect(x.max([1, 0]).toArray()).toEqual([20, 21, 22, 23]);
    expect(() => x.sum([2, 1, -1])).toThrow("sum: axis 2 repeated in [2,1,-1]");
  });
  it("argmax along an axis and flattened", () => {
    const y = tensor([[1, 9, 3], [7, 2, 7]]);
    expect(y.argmax(1).toArray()).toEqual([1, 0]);
    expect(y.argmax(0).toArray()).toEqual([1, 0, 1]);
    expect(y.argmax().item()).toBe(1);
  });
  it("logsumexp is stable for large values", () => {
    const y = tensor([[1000, 1000], [-1000, -1000]], { dtype: "float64" });
    close(y.logsumexp(1).toArray(), [1000 + Math.log(2), -1000 + Math.log(2)], 9);
  });
  it("a bad axis is an AxisError naming the op, the axis and the rank", () => {
    expect(() => x.sum(3)).toThrow(AxisError);
    expect(() => x.sum(3)).toThrow("sum: axis 3 is out of range for a tensor of rank 3");
    expect(() => x.max(-4)).toThrow("max: axis -4 is out of range for a tensor of rank 3");
    expect(() => x.mean([0, -3])).toThrow(/mean: axis 0 repeated/);
    expect(() => x.sum(1.5)).toThrow(/axis must be an integer/);
    expect(() => zeros([2, 0]).max(1)).toThrow(/max: cannot reduce over axis 1 of size 0/);
  });
});

describe("matmul", () => {
  const a = tensor([[1, 2], [3, 4], [5, 6]]);
  const b = tensor([[1, 0, 2], [0, 1, 3]]);
  it("2-D @ 2-D", () => {
    expect(a.matmul(b).toArray()).toEqual([[1, 2, 8], [3, 4, 18], [5, 6, 28]]);
  });
  it("1-D operands follow NumPy: vector·vector is 0-d, matrix·vector drops the axis", () => {
    const v = tensor([1, 2]);
    const dot = v.matmul(tensor([3, 4]));
    expect(dot.shape).toEqual([]);
    expect(dot.item()).toBe(11);
    expect(a.matmul(v).toArray()).toEqual([5, 11, 17]);
    expect(tensor([1, 1, 1]).matmul(a).toArray()).toEqual([9, 12]);
  });
  it("batched with broadcast batch axes", () => {
    const s = arange(12).reshape([3, 2, 2]);
    const out = s.matmul(tensor([[1, 0], [0, 2]]));
    expect(out.shape).toEqual([3, 2, 2]);
    expect(out.toArray()).toEqual([[[0, 2], [2, 6]], [[4, 10], [6, 14]], [[8, 18], [10, 22]]]);
    const p = tensor([[[1, 0], [0, 1]]]).matmul(arange(8).reshape([2, 1, 2, 2]));
    expect(p.shape).toEqual([2, 1, 2, 2]);
    expect(p.toArray()).toEqual(arange(8).reshape([2, 1, 2, 2]).toArray());
  });
  it("inner dimensions that differ are a ShapeError naming both shapes", () => {
    expect(() => zeros([128, 784]).matmul(zeros([128, 10]))).toThrow(ShapeError);
    expect(() => zeros([128, 784]).matmul(zeros([128, 10]))).toThrow("matmul: inner dimensions differ: [128, 784] @ [128, 10]");
    expect(() => tensor(1).matmul(a)).toThrow(/matmul: both arguments need at least 1 dimension/);
    expect(() => zeros([2, 2, 3]).matmul(zeros([3, 3, 2]))).toThrow(/matmul: shapes \[2\] and \[3\] cannot be broadcast/);
  });
});

describe("linear", () => {
  it("equals x @ Wᵀ + b for any number of rows, leading axes and features (every row gets the bias)", () => {
    const shapes = fc.record({ lead: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 2 }), rows: fc.integer({ min: 0, max: 70 }),
      inF: fc.integer({ min: 1, max: 9 }), outF: fc.integer({ min: 1, max: 9 }), seed: fc.nat() });
    fc.assert(fc.property(shapes, ({ lead, rows, inF, outF, seed }) => {
      const generator = new Generator(seed);
      const x = randn([...lead, rows, inF], { generator });
      const W = randn([outF, inF], { generator });
      const b = randn([outF], { generator });
      const out = linear(x, W, b);
      expect(out.shape).toEqual([...lead, rows, outF]);
      const want = x.matmul(W.transpose()).add(b);
      out.data.forEach((v, i) => expect(Math.abs(v - want.data[i]), `element ${i}`).toBeLessThan(1e-5));
    }), { numRuns: 60 });
  });
});

describe("pick", () => {
  const x = tensor([[1, 2, 3], [4, 5, 6]]);
  it("one entry per row along the last axis, or along axis 0", () => {
    expect(x.pick([2, 0]).toArray()).toEqual([3, 4]);
    expect(x.pick(new Int32Array([1, 1])).toArray()).toEqual([2, 5]);
    expect(x.pick(tensor([0, 2])).toArray()).toEqual([1, 6]);
    expect(x.pick([1, 0, 1], 0).toArray()).toEqual([4, 2, 6]);
    expect(x.pick([2, 0], -1, true).shape).toEqual([2, 1]);
  });
  it("a rank-3 tensor picks along its middle axis", () => {
    const y = arange(12).reshape([2, 3, 2]);
    expect(y.pick([[0, 2], [1, 1]], 1).toArray()).toEqual([[0, 5], [8, 9]]);
  });
  it("an index out of range or not an integer is an IndexError", () => {
    expect(() => x.pick([3, 0])).toThrow(IndexError);
    expect(() => x.pick([3, 0])).toThrow("pick: index 3 at position 0 is out of range [0, 3) for axis 1 of [2, 3]");
    expect(() => x.pick([0, -1])).toThrow(/index -1 at position 1 is out of range/);
    expect(() => x.pick([0.5, 1])).toThrow("pick: index 0.5 at position 0 is not an integer");
    expect(() => x.pick([0, 1, 2])).toThrow(/pick: index has 3 entries, expected 2/);
  });
});

describe("shape ops", () => {
  const x = arange(6).reshape([2, 3]);
  it("reshape with -1, sharing the data", () => {
    expect(x.reshape([3, -1]).shape).toEqual([3, 2]);
    expect(x.reshape([-1]).toArray()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(x.reshape([6, 1, -1]).shape).toEqual([6, 1, 1]);
    expect(tensor(5).reshape([1, 1]).toArray()).toEqual([[5]]);
    expect(tensor([5]).reshape([]).shape).toEqual([]);
  });
  it("a reshape of the wrong size is a ShapeError naming both shapes", () => {
    expect(() => x.reshape([4, 2])).toThrow("reshape: cannot reshape [2, 3] (6 elements) into [4, 2] (8 elements)");
    expect(() => x.reshape([4, -1])).toThrow("reshape: cannot reshape [2, 3] (6 elements) into [4, -1]");
    expect(() => x.reshape([-1, -1])).toThrow(/only one dimension can be -1/);
  });
  it("transpose swaps the last two axes", () => {
    expect(x.transpose().toArray()).toEqual([[0, 3], [1, 4], [2, 5]]);
    const y = arange(12).reshape([2, 2, 3]).transpose();
    expect(y.shape).toEqual([2, 3, 2]);
    expect(y.toArray()).toEqual([[[0, 3], [1, 4], [2, 5]], [[6, 9], [7, 10], [8, 11]]]);
    expect(tensor([1, 2]).transpose().toArray()).toEqual([1, 2]);
  });
  it("transpose(dim0, dim1) swaps those axes (torch.transpose); .T reverses all axes, .mT swaps the last two", () => {
    const y = arange(24).reshape([2, 3, 4]);
    const t01 = y.transpose(0, 1);
    expect(t01.shape).toEqual([3, 2, 4]);
    // element [i, j, k] of t01 is y[j, i, k] = 12j + 4i + k
    expect(t01.toArray()).toEqual([0, 1, 2].map((i) => [0, 1].map((j) => [0, 1, 2, 3].map((k) => 12 * j + 4 * i + k))));
    expect(y.transpose(-1, 0).shape).toEqual([4, 3, 2]);
    expect(y.transpose(1, 1)).toBe(y);
    expect(y.T.shape).toEqual([4, 3, 2]);
    expect(y.T.toArray()).toEqual([0, 1, 2, 3].map((k) => [0, 1, 2].map((j) => [0, 1].map((i) => 12 * i + 4 * j + k))));
    expect(y.mT.shape).toEqual([2, 4, 3]);
    expect(x.T.toArray()).toEqual(x.transpose().toArray());
    expect(tensor(5).transpose(0, -1).item()).toBe(5);
    expect(() => y.transpose(0, 3)).toThrow("transpose: axis 3 is out of range for a tensor of rank 3");
    expect(() => (y.transpose as (a?: number) => unknown)(1)).toThrow("transpose: give both axes to swap or neither");
    const w = tensor([[1, 2, 3], [4, 5, 6]], { requiresGrad: true });
    w.reshape([1, 2, 3]).transpose(0, 2).mul(arange(6).reshape([3, 2, 1])).sum().backward();
    expect(w.grad!.toArray()).toEqual([[0, 2, 4], [1, 3, 5]]);
  });
  it("permute, flatten, unsqueeze, squeeze, broadcastTo", () => {
    const y = arange(24).reshape([2, 3, 4]);
    const p = y.permute([2, 0, 1]);
    expect(p.shape).toEqual([4, 2, 3]);
    expect((p.toArray() as number[][][])[1][1][2]).toBe(21);
    expect(y.flatten(1).shape).toEqual([2, 12]);
    expect(x.unsqueeze(0).shape).toEqual([1, 2, 3]);
    expect(x.unsqueeze(-1).shape).toEqual([2, 3, 1]);
    expect(zeros([1, 3, 1]).squeeze().shape).toEqual([3]);
    expect(x.squeeze(0)).toBe(x); // an axis whose size is not 1 is left alone, as in PyTorch
    expect(zeros([1, 3, 1]).squeeze([0, 1]).shape).toEqual([3, 1]);
    expect(() => x.squeeze(2)).toThrow(/squeeze: axis 2 is out of range for a tensor of rank 2/);
    expect(tensor([1, 2, 3]).broadcastTo([2, 3]).toArray()).toEqual([[1, 2, 3], [1, 2, 3]]);
    expect(() => tensor([1, 2, 3]).broadcastTo([3, 2])).toThrow(/cannot be broadcast|cannot broadcast/);
    expect(() => y.permute([0, 0, 1])).toThrow(/repeat an axis/);
  });
});

describe("softmax family", () => {
  it("softmax rows sum to 1 and match the definition", () => {
    const x = tensor([[1, 2, 3], [1, 1, 1]], { dtype: "float64" });
    const s = x.softmax();
    const e = [1, 2, 3].map(Math.exp);
    const z = e[0] + e[1] + e[2];
    close(s.toArray(), [e.map((v) => v / z), [1 / 3, 1 / 3, 1 / 3]], 12);
    close(s.sum(-1).toArray(), [1, 1], 12);
    close(x.logSoftmax(0).toArray(), [
      [-Math.log(2), -Math.log(1 + Math.exp(-1)), -Math.log(1 + Math.exp(-2))],
      [-Math.log(2), -Math.log(1 + Math.E), -Math.log(1 + Math.exp(2))],
    ], 12);
  });
  it("logSoftmax is finite for huge logits", () => {
    const x = tensor([[1e4, 0, -1e4], [-1e30, 1e30, 0]], { dtype: "float64" });
    const l = x.logSoftmax();
    expect(Array.from(l.data).every(Number.isFinite)).toBe(true);
    expect(l.toArray()).toEqual([[0, -1e4, -2e4], [-2e30, 0, -1e30]]);
    const s = x.softmax();
    expect(Array.from(s.data).every(Number.isFinite)).toBe(true);
    const f = tensor([[1e4, 0, -1e4]]).logSoftmax();
    expect(f.toArray()).toEqual([[0, -1e4, -2e4]]);
  });
  it("logSoftmax backward: the fused pass gives the same bits as the recorded ops g - exp(out)·Σg, any axis", () => {
    for (const dtype of ["float32", "float64"] as const) {
      for (const [shape, axis] of [[[128, 10], 1], [[64, 100], 0], [[2, 5, 7], 1], [[4, 3, 300], -1], [[3, 4096], 1]] as const) {
        const x = randn([...shape], { dtype, requiresGrad: true });
        const g = randn([...shape], { dtype });
        const out = x.logSoftmax(axis);
        out.backward(g);
        const composed = noGrad(() => g.sub(out.detach().exp().mul(g.sum(axis, true))));
        expect(x.grad!.dtype).toBe(dtype);
        expect(Array.from(x.grad!.data)).toEqual(Array.from(composed.data));
        // and the recorded backward (createGraph) is the same function
        const y = x.detach().requiresGrad_();
        const [gy] = grad(y.logSoftmax(axis), y, { gradOutput: g, createGraph: true });
        expect(Array.from(gy.data)).toEqual(Array.from(composed.data));
      }
    }
  });
});
