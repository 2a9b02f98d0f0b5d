/**
 * Version counters (PyTorch's saved-tensor check): a tensor a graph saved for backward and that was then
 * modified in place makes that backward an error naming the op, instead of a silently wrong gradient.
 */
import { describe, expect, it } from "vitest";
import { GraphError, detectAnomaly, noGrad, tensor } from "@tapegrad/autograd";
import { nn, optim } from "@tapegrad/nn";

describe("in-place modification of saved tensors", () => {
  it("markModified after writing into .data: backward is a GraphError naming the op", () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    const y = x.mul(x).sum();
    x.data[0] = 10;
    x.markModified();
    expect(() => y.backward()).toThrow(GraphError);
    expect(() => x.mul(x).sum().backward()).not.toThrow(); // a fresh forward sees the new values
    expect(Array.from(x.grad!.data)).toEqual([20, 4, 6]);
  });

  it("a saved output modified in place (exp keeps its output) is caught too", () => {
    const x = tensor([0, 1], { requiresGrad: true });
    const e = x.exp();
    const loss = e.sum();
    noGrad(() => e.fill_(0));
    expect(() => loss.backward()).toThrow(/exp: one of the tensors it saved for backward .* was modified in place/);
  });

  it("an optimizer step between forward and backward is caught (as in PyTorch)", () => {
    const model = new nn.Linear(3, 2);
    const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
    const loss = model.forward(tensor([[1, 2, 3]])).sum();
    loss.backward({ retainGraph: true });
    opt.step();
    expect(() => loss.backward()).toThrow(/linear: one of the tensors it saved for backward/);
  });

  it("under detectAnomaly, a write into .data without markModified is caught by a checksum", () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    detectAnomaly(() => {
      const y = x.mul(2).sum();
      x.data[1] = 5;
      expect(() => y.backward()).toThrow(/mul: .*modified in place \(its data changed: detectAnomaly's checksum\)/);
    });
  });

  it("in-place methods: copy_, fill_, zero_ bump the version and refuse a tensor that requires grad in grad mode", () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    expect(() => x.fill_(0)).toThrow(/fill_: a tensor that requires grad \(a leaf, shape \[3\]\) cannot be modified in place while grad mode is on/);
    noGrad(() => x.copy_(tensor([4, 5, 6])));
    expect(Array.from(x.data)).toEqual([4, 5, 6]);
    expect(x.version).toBe(1);
    const y = tensor([[1, 2], [3, 4]]);
    y.copy_(tensor([7, 8])).zero_();
    expect(Array.from(y.data)).toEqual([0, 0, 0, 0]);
    expect(y.version).toBe(2);
  });

  it("a tensor whose values no backward reads (an input of add or sum) may change, as in PyTorch", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const c = tensor([5, 6]);
    const y = x.add(c).sum();
    c.fill_(0);
    y.backward();
    expect(Array.from(x.grad!.data)).toEqual([1, 1]);
  });

  it("unchanged tensors backward as before, twice with retainGraph", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const y = x.exp().mul(x).sum();
    y.backward({ retainGraph: true });
    y.backward();
    expect(x.grad!.data[0]).toBeCloseTo(2 * (Math.E + Math.E), 5);
  });
});
