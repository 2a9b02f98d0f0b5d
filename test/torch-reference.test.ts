import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { tensor, maximum, type NestedArray, type Tensor } from "@tapegrad/autograd";

// Produced by scripts/torch-reference.py (PyTorch 1.13, float64); each case sums a non-scalar output.
const ref = JSON.parse(readFileSync(new URL("./fixtures/torch-reference.json", import.meta.url), "utf8")) as
  Record<string, { value: NestedArray; grads: NestedArray[] }>;

const T = (a: NestedArray, requiresGrad = true): Tensor => tensor(a, { dtype: "float64", requiresGrad });
const flat = (a: NestedArray): number[] => (Array.isArray(a) ? a.flatMap(flat) : [a]);

const cases: Record<string, [(...a: Tensor[]) => Tensor, () => Tensor[]]> = {
  mlp: [(x, w, b) => x.matmul(w).add(b).relu().logSoftmax(1).pick([1, 0]).mean(), () => [X(), W(), B()]],
  logsumexp: [(x) => x.logsumexp(0), () => [X()]],
  amax01: [(x) => x.max([0, 1], true).mul(1), () => [X()]],
  mean_neg: [(x) => x.mean(-1, true).mul(x), () => [X()]],
  softmax0: [(x) => x.softmax(0).mul(T([[1, 2, 3], [4, 5, 6]], false)), () => [X()]],
  div_pow: [(x) => x.abs().add(1).pow(1.5).div(x.mul(x).add(1)), () => [X()]],
  tanh_sig: [(x) => x.tanh().mul(x.sigmoid()).add(x.exp().log()), () => [X()]],
  softplus: [(x) => x.mul(T([[1, 10, -30], [25, 0.01, -5]], false)).softplus(), () => [X()]],
  matmul_batch: [(x, w) => x.reshape([2, 1, 3]).matmul(w).sum(1), () => [X(), W()]],
  maximum: [(x) => maximum(x, T([[1, 0, 3], [0, 0, 0]], false)), () => [X()]],
  var: [(x) => x.sub(x.mean(0)).pow(2).mean(), () => [X()]],
  pow_zero: [(a, e) => a.pow(e), () => [T([0, 2, 0, 0, 3]), T([2, 0, 0, 1.5, -1])]],
  scalar_axes: [(s) => s.sum(0).add(s.mean(-1).mul(2)).add(s.max(0, true).mul(3)).add(s.logsumexp(-1).mul(4))
    .add(s.logSoftmax(0)).add(s.min(-1)), () => [T(3)]],
};
const X = () => T([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]]);
const W = () => T([[0.2, -0.1], [0.4, 0.3], [-0.5, 0.6]]);
const B = () => T([0.1, -0.2]);

describe("values and gradients match PyTorch", () => {
  for (const [name, [fn, make]] of Object.entries(cases)) {
    it(`torch reference: ${name}`, () => {
      const inputs = make();
      const y = fn(...inputs);
      (y.ndim > 0 ? y.sum() : y).backward();
      const want = ref[name];
      flat(y.toArray()).forEach((v, i) => expect(v).toBeCloseTo(flat(want.value)[i], 12));
      inputs.forEach((t, k) => flat(t.grad!.toArray()).forEach((v, i) => expect(v).toBeCloseTo(flat(want.grads[k])[i], 12)));
    });
  }
});
