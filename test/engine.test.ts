import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import {
  tensor, grad, noGrad, enableGrad, isGradEnabled, randn, manualSeed, zeros, Tensor, GraphError, ShapeError, defineOp,
} from "@tapegrad/autograd";

const arr = (t: Tensor | null): number[] => Array.from(t!.data);

describe("backward", () => {
  it("backward: d(x²·y)/dx and /dy", () => {
    const x = tensor(3, { requiresGrad: true });
    const y = tensor(4, { requiresGrad: true });
    x.mul(x).mul(y).backward();
    expect(x.grad!.item()).toBe(24);
    expect(y.grad!.item()).toBe(9);
  });

  it("backward: a value used twice accumulates both paths", () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    const y = x.mul(2);
    y.add(y.mul(y)).sum().backward(); // d/dx (2x + 4x²) = 2 + 8x
    expect(arr(x.grad)).toEqual([10, 18, 26]);
  });

  it("backward: broadcast gradients are summed back to the input's shape", () => {
    const a = tensor([[1, 2, 3], [4, 5, 6]], { requiresGrad: true });
    const b = tensor([10, 20, 30], { requiresGrad: true });
    const s = tensor(2, { requiresGrad: true });
    a.add(b).mul(s).sum().backward();
    expect(a.grad!.shape).toEqual([2, 3]);
    expect(arr(a.grad)).toEqual([2, 2, 2, 2, 2, 2]);
    expect(b.grad!.shape).toEqual([3]);
    expect(arr(b.grad)).toEqual([4, 4, 4]);
    expect(s.grad!.shape).toEqual([]);
    expect(s.grad!.item()).toBe(21 + 120);
    const c = tensor([[1], [2]], { requiresGrad: true });
    c.mul(tensor([[1, 2, 3]])).sum().backward();
    expect(c.grad!.toArray()).toEqual([[6], [6]]);
  });

  it("backward: gradients accumulate across calls until zeroGrad", () => {
    const w = tensor([1, 2], { requiresGrad: true });
    w.mul(3).sum().backward();
    w.mul(3).sum().backward();
    expect(arr(w.grad)).toEqual([6, 6]);
    w.zeroGrad();
    expect(w.grad).toBeNull();
    w.mul(w).sum().backward();
    expect(arr(w.grad)).toEqual([2, 4]);
  });

  it("backward: accumulated grads of two leaves sharing one upstream gradient stay independent", () => {
    const a = tensor([1, 1], { requiresGrad: true });
    const b = tensor([1, 1], { requiresGrad: true });
    a.add(b).sum().backward();
    a.mul(5).sum().backward();
    expect(arr(a.grad)).toEqual([6, 6]);
    expect(arr(b.grad)).toEqual([1, 1]);
  });

  it("backward: no two leaves, and no tensor of the user's, share a gradient buffer", () => {
    const a = tensor([1, 2], { requiresGrad: true });
    const b = tensor([3, 4], { requiresGrad: true });
    const seed = tensor([1, 1]);
    a.add(b).backward(seed);
    expect(a.grad!.data.buffer).not.toBe(b.grad!.data.buffer);
    expect(a.grad!.data.buffer).not.toBe(seed.data.buffer);
    a.grad!.data[0] = 100; // in-place edits (gradient clipping) stay local
    expect(arr(b.grad)).toEqual([1, 1]);
    expect(arr(seed)).toEqual([1, 1]);
    const c = tensor([1, 2], { requiresGrad: true });
    const r = c.reshape([2, 1]);
    r.reshape([2]).add(c).sum().backward(); // two contributions, one a view of the other's buffer
    expect(arr(c.grad)).toEqual([2, 2]);
    c.mul(3).sum().backward(); // accumulates into the adopted buffer
    expect(arr(c.grad)).toEqual([5, 5]);
  });

  it("backward: a leaf adopts no gradient that another leaf gets a view of (user backward, small and large)", () => {
    for (const n of [2, 8192]) {
      // backward hands x a fresh array and y a view of its first half
      const split = defineOp({
        name: "splitView",
        forward: (_ctx, x, y) => x.mul(1).add(y.sum()),
        backward: (_ctx, g) => {
          const whole = g.mul(2);
          return [whole, whole.narrow(0, 0, n / 2)];
        },
      });
      const x = tensor(new Float32Array(n).fill(1), { requiresGrad: true });
      const y = tensor(new Float32Array(n / 2).fill(1), { requiresGrad: true });
      // x gets `whole`, then the ones of x.sum(), added into its .grad in place; y's copy of its view must
      // not see that addition
      x.sum().add(split(x, y).sum()).backward();
      expect(x.grad!.data.every((v) => v === 3)).toBe(true);
      expect(y.grad!.data.every((v) => v === 2)).toBe(true);
      x.mul(3).sum().backward();
      expect(x.grad!.data.every((v) => v === 6)).toBe(true);
      expect(y.grad!.data.every((v) => v === 2)).toBe(true);
    }
  });

  it("backward: pick gradient accumulates repeated indices", () => {
    const x = tensor([[1, 2, 3], [4, 5, 6]], { requiresGrad: true });
    x.pick([1, 1], -1).sum().backward();
    expect(x.grad!.toArray()).toEqual([[0, 1, 0], [0, 1, 0]]);
    const y = tensor([1, 2, 3], { requiresGrad: true });
    y.reshape([1, 3]).broadcastTo([4, 3]).pick([2, 2, 0, 2]).sum().backward();
    expect(arr(y.grad)).toEqual([1, 0, 3]);
  });

  it("backward: max shares its gradient evenly between ties", () => {
    const x = tensor([[1, 5, 5], [2, 0, 1]], { requiresGrad: true });
    x.max(1).sum().backward();
    expect(x.grad!.toArray()).toEqual([[0, 0.5, 0.5], [1, 0, 0]]);
  });

  it("backward: the gradient of a float32 input stays float32 after a float64 op", () => {
    const a = tensor([1, 2], { requiresGrad: true });
    const b = tensor([3, 4], { dtype: "float64", requiresGrad: true });
    a.mul(b).sum().backward();
    expect(a.grad!.dtype).toBe("float32");
    expect(arr(a.grad)).toEqual([3, 4]);
    expect(b.grad!.dtype).toBe("float64");
  });

  it("backward on a non-scalar needs a gradient; with one it computes the vector-Jacobian product", () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    const y = x.mul(x);
    expect(() => y.backward()).toThrow(GraphError);
    expect(() => y.backward()).toThrow("backward: grad can be implicitly created only for a scalar output, got shape [3]; pass a gradient tensor of that shape");
    expect(() => y.backward(tensor([1, 1]))).toThrow(ShapeError);
    y.backward(tensor([1, 0, 2]));
    expect(arr(x.grad)).toEqual([2, 0, 12]);
  });

  it("backward on a tensor that does not require grad is an error", () => {
    expect(() => tensor(1).backward()).toThrow(/does not require grad/);
  });

  it("backward through a freed graph is a clear error; retainGraph allows a second pass", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const loss = x.mul(x).sum();
    loss.backward();
    expect(() => loss.backward()).toThrow(GraphError);
    expect(() => loss.backward()).toThrow(/backward through the graph a second time/);
    const x2 = tensor([1, 2], { requiresGrad: true });
    const l2 = x2.mul(x2).sum();
    l2.backward(undefined, { retainGraph: true });
    l2.backward();
    expect(arr(x2.grad)).toEqual([4, 8]);
  });

  it("backward: a 100,000-op chain does not overflow the stack", () => {
    const x = tensor([2], { dtype: "float64", requiresGrad: true });
    let y = x;
    for (let i = 0; i < 100_000; i++) y = y.add(1e-6).mul(1);
    y.sum().backward();
    expect(x.grad!.item()).toBe(1);
    const z = tensor(1.5, { dtype: "float64", requiresGrad: true });
    let w = z;
    for (let i = 0; i < 100_000; i++) w = w.mul(1.000001);
    const [g] = grad(w, [z]);
    expect(g.item()).toBeCloseTo(Math.pow(1.000001, 100_000), 9);
  });
});

describe("noGrad, detach, grad mode", () => {
  it("noGrad records nothing and restores the mode, also after a throw", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const y = noGrad(() => x.mul(2));
    expect(y.requiresGrad).toBe(false);
    expect(y.gradFn).toBeNull();
    expect(isGradEnabled()).toBe(true);
    expect(() => noGrad(() => { throw new Error("boom"); })).toThrow("boom");
    expect(isGradEnabled()).toBe(true);
    const z = noGrad(() => enableGrad(() => x.mul(2)));
    expect(z.requiresGrad).toBe(true);
  });

  it("detach cuts a tensor off the tape and shares its data", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const d = x.mul(3).detach();
    expect(d.requiresGrad).toBe(false);
    const y = x.mul(d).sum();
    y.backward();
    expect(arr(x.grad)).toEqual([3, 6]);
  });

  it("ops on tensors that do not require grad record nothing", () => {
    const y = tensor([1, 2]).mul(2).exp();
    expect(y.gradFn).toBeNull();
    expect(y.requiresGrad).toBe(false);
  });
});

describe("grad()", () => {
  it("grad: returns gradients without touching .grad", () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    const [g] = grad(x.mul(x).sum(), [x]);
    expect(arr(g)).toEqual([2, 4, 6]);
    expect(x.grad).toBeNull();
  });

  it("grad: with respect to an intermediate tensor and with gradOutput", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const h = x.mul(3);
    const y = h.mul(h);
    const [gh, gx] = grad(y, [h, x], { gradOutput: tensor([1, 1]) });
    expect(arr(gh)).toEqual([6, 12]);
    expect(arr(gx)).toEqual([18, 36]);
  });

  it("grad: an unused input is an error unless allowUnused", () => {
    const x = tensor([1], { requiresGrad: true });
    const u = tensor([1], { requiresGrad: true });
    expect(() => grad(x.sum(), [u])).toThrow(/input 0 \[1\] was not used/);
    const r = grad(x.mul(2).sum(), [x, u], { allowUnused: true });
    expect(r[1]).toBeNull();
    expect(arr(r[0])).toEqual([2]);
  });

  it("grad: second derivatives with createGraph", () => {
    const x = tensor(2, { dtype: "float64", requiresGrad: true });
    const y = x.mul(x).mul(x).exp(); // e^{x³}
    const [g1] = grad(y, [x], { createGraph: true });
    const [g2] = grad(g1, [x]);
    const e = Math.exp(8);
    expect(g1.item()).toBeCloseTo(3 * 4 * e, 6);
    expect(g2.item() / ((6 * 2 + 9 * 16) * e)).toBeCloseTo(1, 12);
  });

  it("grad: createGraph gradients of log, div, tanh, sigmoid, sqrt, logSoftmax are correct", () => {
    const x = tensor(0.7, { dtype: "float64", requiresGrad: true });
    const second = (f: (t: Tensor) => Tensor): number => {
      const [g] = grad(f(x), [x], { createGraph: true });
      return grad(g, [x])[0].item();
    };
    expect(second((t) => t.log())).toBeCloseTo(-1 / 0.49, 10);
    expect(second((t) => tensor(1, { dtype: "float64" }).div(t))).toBeCloseTo(2 / 0.7 ** 3, 10);
    const th = Math.tanh(0.7);
    expect(second((t) => t.tanh())).toBeCloseTo(-2 * th * (1 - th * th), 10);
    const s = 1 / (1 + Math.exp(-0.7));
    expect(second((t) => t.sigmoid())).toBeCloseTo(s * (1 - s) * (1 - 2 * s), 10);
    expect(second((t) => t.sqrt())).toBeCloseTo(-0.25 * 0.7 ** -1.5, 10);
  });
});

describe("Hessian-vector products", () => {
  // NOTE: softmax regression with mean cross-entropy has the analytic Hessian-vector product
  //   H·V = Xᵀ [P ⊙ (XV) − P ⊙ rowsum(P ⊙ XV)] / N,  P = softmax(XW).
  it("HVP of the softmax-regression loss matches the analytic formula", () => {
    manualSeed(1);
    const N = 5, D = 4, C = 3;
    const X = randn([N, D], { dtype: "float64" });
    const W = randn([D, C], { dtype: "float64", requiresGrad: true });
    const V = randn([D, C], { dtype: "float64" });
    const labels = [0, 2, 1, 1, 0];
    const loss = X.matmul(W).logSoftmax().pick(labels).mean().neg();
    const [g] = grad(loss, [W], { createGraph: true });
    const [hv] = grad(g.mul(V).sum(), [W]);
    const P = noGrad(() => X.matmul(W).softmax());
    const XV = X.matmul(V);
    const PXV = P.mul(XV);
    const expected = X.transpose().matmul(PXV.sub(P.mul(PXV.sum(-1, true)))).div(N);
    const a = arr(hv), b = arr(expected);
    a.forEach((v, i) => expect(v).toBeCloseTo(b[i], 12));
  });

  it("HVP of a 2-layer MLP cross-entropy matches central differences of the gradient", () => {
    manualSeed(2);
    const X = randn([6, 5], { dtype: "float64" });
    const labels = [0, 1, 2, 0, 1, 2];
    const params = [
      randn([5, 7], { dtype: "float64", requiresGrad: true }),
      randn([7], { dtype: "float64", requiresGrad: true }),
      randn([7, 3], { dtype: "float64", requiresGrad: true }),
      randn([3], { dtype: "float64", requiresGrad: true }),
    ];
    const V = params.map((p) => randn(p.shape, { dtype: "float64" }));
    const lossOf = (ps: Tensor[]): Tensor =>
      X.matmul(ps[0]).add(ps[1]).tanh().matmul(ps[2]).add(ps[3]).logSoftmax().pick(labels).mean().neg();
    const gs = grad(lossOf(params), params, { createGraph: true });
    const dot = gs.map((g, i) => g.mul(V[i]).sum()).reduce((s, t) => s.add(t));
    const hv = grad(dot, params);
    const eps = 1e-5;
    const shifted = (sign: number): Tensor[] => {
      const ps = params.map((p, i) => tensor(p.data.map((v, j) => v + sign * eps * V[i].data[j]), { shape: p.shape, dtype: "float64", requiresGrad: true }));
      return grad(lossOf(ps), ps);
    };
    const plus = shifted(1), minus = shifted(-1);
    hv.forEach((h, i) => {
      const a = arr(h);
      a.forEach((v, j) => expect(v).toBeCloseTo((plus[i].data[j] - minus[i].data[j]) / (2 * eps), 6));
    });
  });
});

describe("memory", () => {
  it("a training loop of 20,000 steps does not grow memory, and each step's graph is collected", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    manualSeed(3);
    const x = randn([8, 4]);
    const labels = [0, 1, 0, 1, 1, 0, 0, 1];
    const w1 = randn([4, 16], { requiresGrad: true });
    const b1 = zeros([16], { requiresGrad: true });
    const w2 = randn([16, 2], { requiresGrad: true });
    const params = [w1, b1, w2];
    let firstGraph: WeakRef<object> | null = null;
    const step = (): number => {
      const loss = x.matmul(w1).add(b1).relu().matmul(w2).logSoftmax().pick(labels).mean().neg();
      if (!firstGraph) firstGraph = new WeakRef(loss.gradFn!);
      for (const p of params) p.zeroGrad();
      loss.backward();
      noGrad(() => {
        for (const p of params) for (let i = 0; i < p.size; i++) p.data[i] -= 0.01 * p.grad!.data[i];
      });
      return loss.item();
    };
    for (let i = 0; i < 2000; i++) step();
    gc();
    const before = process.memoryUsage().heapUsed;
    let last = 0;
    for (let i = 0; i < 18_000; i++) last = step();
    // NOTE: a WeakRef keeps its target alive until the current job ends, so yield once before collecting
    await new Promise((resolve) => setTimeout(resolve, 0));
    gc();
    const after = process.memoryUsage().heapUsed;
    expect(Number.isFinite(last)).toBe(true);
    expect(firstGraph!.deref()).toBeUndefined();
    expect(after - before).toBeLessThan(4 * 1024 * 1024);
  });
});

describe("backward's arguments (PyTorch's keyword forms)", () => {
  it("backward: options alone, or after a gradient; the gradient may be nested arrays", () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    const y = x.mul(x).sum();
    y.backward({ retainGraph: true });
    y.backward({ retainGraph: true });
    expect(x.grad!.toArray()).toEqual([4, 8, 12]);
    x.zeroGrad();
    const z = x.mul(2);
    z.backward([1, 0, 2], { retainGraph: true });
    expect(x.grad!.toArray()).toEqual([2, 0, 4]);
  });

  it("backward: a plain-array gradient of the wrong shape, and a missing one for a non-scalar, are named errors", () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    expect(() => x.mul(2).backward([1, 2])).toThrow("backward: gradient of shape [2] does not match output shape [3]");
    expect(() => x.mul(2).backward({ retainGraph: true })).toThrow(/grad can be implicitly created only for a scalar output/);
  });

  it("tensor: a non-number entry is named as what it is", () => {
    expect(() => tensor(["a", "b"] as never)).toThrow('tensor: expected a number at [0], got a string ("a")');
    expect(() => tensor([[1, null]] as never)).toThrow("tensor: expected a number at [0][1], got null");
  });
});
