import { describe, expect, it } from "vitest";
import { Tensor, grad, gradcheck, gradgradcheck, manualSeed, randn, tensor } from "@tapegrad/autograd";
import { F } from "@tapegrad/nn";

const logits = (): Tensor => tensor([[1, 2, 3], [0.5, -1, 2], [-2, 0, 0.25], [3, 3, -1]], { dtype: "float64", requiresGrad: true });
const labels = [2, 0, 1, 1];

/** −log softmax(x)[label] per row, computed directly. */
function referenceLosses(x: number[][], y: number[]): number[] {
  return x.map((row, i) => {
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    return lse - row[y[i]];
  });
}

describe("crossEntropy", () => {
  it("matches logSoftmax + pick for ordinary logits", () => {
    const x = logits();
    const ref = referenceLosses(x.toArray() as number[][], labels);
    const viaPick = F.logSoftmax(x).pick(labels).neg();
    const none = F.crossEntropy(x, labels, { reduction: "none" });
    expect(none.shape).toEqual([4]);
    Array.from(none.data).forEach((v, i) => {
      expect(v).toBeCloseTo(ref[i], 12);
      expect(v).toBeCloseTo(viaPick.data[i], 12);
    });
    expect(F.crossEntropy(x, labels, { reduction: "sum" }).item()).toBeCloseTo(ref.reduce((a, b) => a + b), 12);
    const mean = F.crossEntropy(x, labels);
    expect(mean.shape).toEqual([]);
    expect(mean.item()).toBeCloseTo(ref.reduce((a, b) => a + b) / 4, 12);
  });

  it("accepts labels as a float Tensor, an Int32Array or a number[]", () => {
    const x = logits();
    const a = F.crossEntropy(x, labels).item();
    expect(F.crossEntropy(x, tensor(labels)).item()).toBe(a);
    expect(F.crossEntropy(x, Int32Array.from(labels)).item()).toBe(a);
  });

  it("stays finite for logits of ±1e4 (float32 and float64)", () => {
    for (const dtype of ["float32", "float64"] as const) {
      const x = tensor([[1e4, -1e4, 0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], { dtype, requiresGrad: true });
      const none = F.crossEntropy(x, [1, 2, 0], { reduction: "none" });
      expect(none.data[0]).toBe(2e4);
      expect(none.data[1]).toBeCloseTo(Math.log(3), 6);
      expect(none.data[2]).toBeCloseTo(Math.log(2), 6);
      const loss = F.crossEntropy(x, [1, 2, 0], { reduction: "sum" });
      loss.backward();
      expect(Array.from(x.grad!.data).every(Number.isFinite)).toBe(true);
      const expected = [1, -1, 0, 1 / 3, 1 / 3, -2 / 3, -0.5, 0.5, 0];
      Array.from(x.grad!.data).forEach((v, k) => expect(v).toBeCloseTo(expected[k], dtype === "float32" ? 6 : 10));
    }
  });

  it("gradient is exactly softmax − onehot (scaled by 1/N for mean)", () => {
    const x = logits();
    F.crossEntropy(x, labels, { reduction: "sum" }).backward();
    const p = F.softmax(x.detach()).data;
    const expected = Array.from(p, (v, k) => v - (k % 3 === labels[Math.floor(k / 3)] ? 1 : 0));
    expect(Array.from(x.grad!.data)).toEqual(expected);
    const y = logits();
    F.crossEntropy(y, labels).backward();
    Array.from(y.grad!.data).forEach((v, k) => expect(v).toBeCloseTo(expected[k] / 4, 15));
  });

  it("reduction none: the gradient takes the per-sample weights", () => {
    const x = logits();
    const w = tensor([1, 2, 0, -1], { dtype: "float64" });
    F.crossEntropy(x, labels, { reduction: "none" }).backward(w);
    const p = F.softmax(x.detach()).data;
    Array.from(x.grad!.data).forEach((v, k) => {
      const r = Math.floor(k / 3);
      expect(v).toBeCloseTo((p[k] - (k % 3 === labels[r] ? 1 : 0)) * w.data[r], 15);
    });
  });

  it("passes gradcheck and gradgradcheck (createGraph backward) for every reduction", () => {
    for (const reduction of ["mean", "sum", "none"] as const) {
      expect(gradcheck((x) => F.crossEntropy(x, labels, { reduction }), [logits()])).toBe(true);
      expect(gradgradcheck((x) => F.crossEntropy(x, labels, { reduction }), [logits()])).toBe(true);
    }
  });

  it("double backward: the Hessian-vector product matches finite differences", () => {
    const x = logits();
    const [g] = grad(F.crossEntropy(x, labels), [x], { createGraph: true });
    const v = tensor([[1, 0, -1], [0.5, 0.5, 0], [0, 2, 1], [-1, 1, 0]], { dtype: "float64" });
    const [hv] = grad(g.mul(v).sum(), [x]);
    const eps = 1e-6;
    const base = x.detach().data;
    const gradAt = (shift: number): Float64Array => {
      const xs = tensor(Float64Array.from(base, (b, k) => b + shift * v.data[k]), { shape: [4, 3], requiresGrad: true });
      F.crossEntropy(xs, labels).backward();
      return xs.grad!.data as Float64Array;
    };
    const gp = gradAt(eps), gm = gradAt(-eps);
    Array.from(hv.data).forEach((h, k) => expect(h).toBeCloseTo((gp[k] - gm[k]) / (2 * eps), 7));
  });

  it("works on a single 1-D sample and on [N, C, d] logits (class axis 1)", () => {
    const x1 = tensor([1, 2, 3], { dtype: "float64" });
    expect(F.crossEntropy(x1, [2]).item()).toBeCloseTo(referenceLosses([[1, 2, 3]], [2])[0], 12);
    manualSeed(0);
    const x3 = randn([2, 3, 4], { dtype: "float64", requiresGrad: true });
    const y3 = [0, 1, 2, 0, 2, 2, 1, 0];
    const ref = F.logSoftmax(x3, 1).pick(y3, 1).neg().mean();
    expect(F.crossEntropy(x3, y3).item()).toBeCloseTo(ref.item(), 12);
    expect(gradcheck((x) => F.crossEntropy(x, y3, { reduction: "none" }), [x3])).toBe(true);
  });

  it("rejects bad labels with errors naming the op", () => {
    const x = logits();
    expect(() => F.crossEntropy(x, [0, 1, 3, 0])).toThrow("crossEntropy: label 3 at position 2 is out of range [0, 3) for input of shape [4, 3]");
    expect(() => F.crossEntropy(x, [0, 1, -1, 0])).toThrow(/crossEntropy: label -1 at position 2 is out of range/);
    expect(() => F.crossEntropy(x, [0, 1.5, 1, 0])).toThrow("crossEntropy: label 1.5 at position 1 is not an integer");
    expect(() => F.crossEntropy(x, [0, 1])).toThrow("crossEntropy: 2 labels for input of shape [4, 3]; expected 4 labels (shape [4])");
    expect(() => F.crossEntropy(x, labels, { reduction: "avg" as "mean" })).toThrow(/crossEntropy: reduction must be "mean", "sum" or "none"/);
    expect(() => F.nllLoss(x, [5, 0, 0, 0])).toThrow(/nllLoss: label 5 at position 0 is out of range/);
    expect(() => F.accuracy(x, [0, 0, 0])).toThrow(/accuracy: 3 labels/);
  });
});

describe("other losses and metrics", () => {
  it("nllLoss of logSoftmax equals crossEntropy, for every reduction, and passes gradcheck", () => {
    for (const reduction of ["mean", "sum", "none"] as const) {
      const a = F.nllLoss(F.logSoftmax(logits()), labels, { reduction });
      const b = F.crossEntropy(logits(), labels, { reduction });
      Array.from(a.data).forEach((v, i) => expect(v).toBeCloseTo(b.data[i], 14));
      expect(gradcheck((x) => F.nllLoss(x, labels, { reduction }), [logits()])).toBe(true);
    }
  });

  it("mseLoss: mean, sum, none; gradient 2(x − t)/n; shapes must match", () => {
    const x = tensor([1, 2, 3], { dtype: "float64", requiresGrad: true });
    const t = tensor([1, 0, 5], { dtype: "float64" });
    expect(F.mseLoss(x, t).item()).toBeCloseTo(8 / 3, 14);
    expect(F.mseLoss(x, t, { reduction: "sum" }).item()).toBe(8);
    expect(Array.from(F.mseLoss(x, t, { reduction: "none" }).data)).toEqual([0, 4, 4]);
    F.mseLoss(x, t).backward();
    expect(Array.from(x.grad!.data)).toEqual([0, 4 / 3, -4 / 3]);
    expect(gradcheck((a, b) => F.mseLoss(a, b), [x, t.detach().requiresGrad_()])).toBe(true);
    expect(() => F.mseLoss(x, tensor([1, 2]))).toThrow("mseLoss: input [3] and target [2] must have the same shape");
  });

  it("softmax/logSoftmax are stable and sum to 1", () => {
    const x = tensor([[1e4, 0, -1e4], [1, 2, 3]], { dtype: "float64" });
    const p = F.softmax(x);
    expect(Array.from(p.data).every(Number.isFinite)).toBe(true);
    for (const v of p.sum(-1).data) expect(v).toBeCloseTo(1, 14);
    expect(F.logSoftmax(x).data[0]).toBe(0);
  });

  it("accuracy is the fraction of argmax == label", () => {
    const x = logits(); // argmax per row: 2, 2, 2, 0 (first of tied maxima)
    expect(F.accuracy(x, labels)).toBe(0.25);
    expect(F.accuracy(x, [2, 2, 2, 0])).toBe(1);
    expect(F.accuracy(x, tensor([0, 0, 0, 1]))).toBe(0);
  });
});
