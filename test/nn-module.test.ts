import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { Tensor, gradcheck, manualSeed, randn, tensor, zeros } from "@tapegrad/autograd";
import { nn, F, deserialize, serialize } from "@tapegrad/nn";
import { loadSync, saveSync } from "@tapegrad/nn/node";

class Block extends nn.Module {
  fc = new nn.Linear(3, 4);
  act = new nn.ReLU();
  override forward(x: Tensor): Tensor {
    return this.act.forward(this.fc.forward(x));
  }
}

class Net extends nn.Module {
  scale = new nn.Parameter(tensor([1.5]));
  layers = new nn.ModuleList([new Block(), new Block()]);
  head: nn.Linear;
  constructor() {
    super();
    this.head = new nn.Linear(4, 2, { bias: false });
  }
  override forward(x: Tensor): Tensor {
    return this.head.forward(x).mul(this.scale);
  }
}

describe("Module: registration and names", () => {
  it("Sequential names its children 0, 1, 2 like PyTorch", () => {
    const model = new nn.Sequential(new nn.Linear(784, 128), new nn.ReLU(), new nn.Linear(128, 10));
    const names = [...model.namedParameters()].map(([n, p]) => `${n}:${p.shape.join("x")}`);
    expect(names).toEqual(["0.weight:128x784", "0.bias:128", "2.weight:10x128", "2.bias:10"]);
    expect(model.parameters().every((p) => p instanceof nn.Parameter && p.requiresGrad)).toBe(true);
    expect([...model.namedChildren()].map(([n]) => n)).toEqual(["0", "1", "2"]);
    expect(model.length).toBe(3);
    expect(model.at(-1)).toBeInstanceOf(nn.Linear);
  });

  it("fields are scanned in assignment order, nested names are dotted", () => {
    const net = new Net();
    expect([...net.namedParameters()].map(([n]) => n)).toEqual([
      "scale", "layers.0.fc.weight", "layers.0.fc.bias", "layers.1.fc.weight", "layers.1.fc.bias", "head.weight",
    ]);
    expect([...net.namedModules()].map(([n]) => n)).toEqual(["", "layers", "layers.0", "layers.0.fc", "layers.0.act", "layers.1", "layers.1.fc", "layers.1.act", "head"]);
    expect([...net.children()].length).toBe(2);
    expect(net.numParameters()).toBe(1 + 2 * (12 + 4) + 8);
  });

  it("a shared module or parameter is listed once", () => {
    const shared = new nn.Linear(2, 2);
    const model = new nn.Sequential(shared, new nn.ReLU(), shared);
    expect(model.parameters().length).toBe(2);
    expect([...model.namedParameters()].map(([n]) => n)).toEqual(["0.weight", "0.bias"]);
  });

  it("train/eval propagate to every descendant", () => {
    const net = new Net();
    expect(net.training).toBe(true);
    net.eval();
    expect([...net.modules()].every((m) => !m.training)).toBe(true);
    net.train();
    expect([...net.modules()].every((m) => m.training)).toBe(true);
  });

  it("zeroGrad clears every parameter's grad", () => {
    const model = new nn.MLP([3, 4, 2]);
    F.crossEntropy(model.forward(randn([5, 3])), [0, 1, 0, 1, 1]).backward();
    expect(model.parameters().every((p) => p.grad !== null)).toBe(true);
    model.zeroGrad();
    expect(model.parameters().every((p) => p.grad === null)).toBe(true);
  });

  it("toString prints the module tree", () => {
    expect(String(new nn.MLP([4, 3, 2]))).toBe(
      "MLP(\n  (0): Linear(inFeatures=4, outFeatures=3, bias=true)\n  (1): ReLU()\n  (2): Linear(inFeatures=3, outFeatures=2, bias=true)\n)",
    );
  });

  it("to(float64) converts every parameter", () => {
    const model = new nn.MLP([3, 4, 2]);
    const before = model.parameters().map((p) => Array.from(p.data));
    model.to("float64");
    expect(model.parameters().every((p) => p.dtype === "float64" && p instanceof nn.Parameter)).toBe(true);
    expect(model.parameters().map((p) => Array.from(p.data))).toEqual(before);
    expect(model.forward(randn([2, 3], { dtype: "float64" })).dtype).toBe("float64");
  });

  it("forward of the base class is an error naming the class", () => {
    class Empty extends nn.Module {}
    expect(() => new Empty().forward(zeros([1]))).toThrow(/Empty: forward is not implemented/);
  });
});

describe("layers", () => {
  it("Linear: y = x Wᵀ + b with weight [out, in]", () => {
    const lin = new nn.Linear(3, 2);
    lin.weight.data.set([1, 2, 3, 4, 5, 6]);
    lin.bias!.data.set([0.5, -1]);
    const y = lin.forward(tensor([[1, 0, -1], [2, 1, 0]]));
    expect(y.shape).toEqual([2, 2]);
    expect(Array.from(y.data)).toEqual([1 - 3 + 0.5, 4 - 6 - 1, 2 + 2 + 0.5, 8 + 5 - 1]);
    expect(Array.from(lin.forward(tensor([1, 0, -1])).data)).toEqual([-1.5, -3]);
    expect(lin.forward(zeros([4, 5, 3])).shape).toEqual([4, 5, 2]);
  });

  it("Linear: a wrong input width names both shapes", () => {
    expect(() => new nn.Linear(784, 10).forward(zeros([2, 100]))).toThrow(
      "linear: input [2, 100] does not match weight [10, 784]: the last dimension must be 784",
    );
  });

  it("Linear without bias and with float64 dtype", () => {
    const lin = new nn.Linear(3, 2, { bias: false, dtype: "float64" });
    expect(lin.bias).toBeNull();
    expect(lin.weight.dtype).toBe("float64");
    expect([...lin.namedParameters()].map(([n]) => n)).toEqual(["weight"]);
  });

  it("Flatten keeps the batch axis; MLP and SoftmaxRegression flatten images", () => {
    expect(new nn.Flatten().forward(zeros([2, 1, 28, 28])).shape).toEqual([2, 784]);
    expect(new nn.MLP([784, 16, 10]).forward(zeros([3, 28, 28])).shape).toEqual([3, 10]);
    const sr = new nn.SoftmaxRegression(784, 10);
    expect(sr.forward(zeros([3, 1, 28, 28])).shape).toEqual([3, 10]);
    expect([...sr.namedParameters()].map(([n]) => n)).toEqual(["linear.weight", "linear.bias"]);
    expect([...new nn.MLP([4, 8, 8, 2], { bias: false }).namedParameters()].map(([n]) => n)).toEqual(["0.weight", "2.weight", "4.weight"]);
  });

  it("Dropout is the identity in eval mode and scales kept units in training", () => {
    const d = new nn.Dropout(0.5);
    const x = randn([1000]).add(10);
    const y = d.forward(x);
    const kept = Array.from(y.data).filter((v) => v !== 0);
    expect(kept.length).toBeGreaterThan(400);
    expect(kept.length).toBeLessThan(600);
    for (const v of kept) expect(v).toBeGreaterThan(10);
    d.eval();
    expect(d.forward(x)).toBe(x);
  });

  it("every layer passes gradcheck in float64", () => {
    manualSeed(1);
    const x = randn([4, 3], { dtype: "float64", requiresGrad: true });
    const lin = new nn.Linear(3, 2, { dtype: "float64" });
    expect(gradcheck((xx, w, b) => F.linear(xx, w, b), [x, lin.weight, lin.bias!])).toBe(true);
    expect(gradcheck((xx) => lin.forward(xx), [x])).toBe(true);
    // away from the kink at 0 for ReLU
    const xr = tensor([[0.5, -0.7, 1.2], [-0.3, 0.9, -1.1]], { dtype: "float64", requiresGrad: true });
    for (const layer of [new nn.ReLU(), new nn.Tanh(), new nn.Sigmoid(), new nn.Flatten(0), new nn.Softmax(), new nn.LogSoftmax(), new nn.Identity()]) {
      expect(gradcheck((xx) => layer.forward(xx), [xr])).toBe(true);
    }
    const mlp = new nn.MLP([3, 5, 2]).to("float64");
    expect(gradcheck((xx, ...ps) => {
      void ps;
      return mlp.forward(xx);
    }, [x, ...mlp.parameters()])).toBe(true);
  });
});

describe("stateDict / loadStateDict", () => {
  it("keys are the dotted parameter names; tensors share memory but are detached", () => {
    const model = new nn.MLP([3, 4, 2]);
    const sd = model.stateDict();
    expect(Object.keys(sd)).toEqual(["0.weight", "0.bias", "2.weight", "2.bias"]);
    expect(sd["0.weight"].requiresGrad).toBe(false);
    expect(sd["0.weight"].data).toBe(model.parameters()[0].data);
  });

  it("round trip copies values in place", () => {
    manualSeed(0);
    const a = new nn.MLP([3, 4, 2]);
    const b = new nn.MLP([3, 4, 2]);
    const params = b.parameters();
    expect(b.loadStateDict(a.stateDict())).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(b.parameters()).toEqual(params);
    b.parameters().forEach((p, i) => expect(Array.from(p.data)).toEqual(Array.from(a.parameters()[i].data)));
    expect(b.parameters()[0].data).not.toBe(a.parameters()[0].data);
  });

  it("strict: a missing key is an error naming it and its shape", () => {
    const model = new nn.MLP([3, 4, 2]);
    const sd = model.stateDict();
    delete sd["2.bias"];
    expect(() => model.loadStateDict(sd)).toThrow(nn.StateDictError);
    expect(() => model.loadStateDict(sd)).toThrow('missing key "2.bias" (expected shape [2])');
  });

  it("strict: an unexpected key is an error naming it", () => {
    const model = new nn.MLP([3, 4, 2]);
    const sd = { ...model.stateDict(), "9.weight": zeros([1, 2]) };
    expect(() => model.loadStateDict(sd)).toThrow('unexpected key "9.weight" (shape [1, 2])');
  });

  it("a shape mismatch is an error even when not strict", () => {
    const model = new nn.MLP([3, 4, 2]);
    const sd = { ...model.stateDict(), "0.weight": zeros([4, 5]) };
    const msg = 'size mismatch for "0.weight": checkpoint has shape [4, 5], the module has [4, 3]';
    expect(() => model.loadStateDict(sd)).toThrow(msg);
    expect(() => model.loadStateDict(sd, { strict: false })).toThrow(msg);
  });

  it("strict: a dtype mismatch is an error; non-strict converts", () => {
    const model = new nn.Linear(2, 1);
    const sd = { weight: tensor([[3, 4]], { dtype: "float64" }), bias: tensor([5]) };
    expect(() => model.loadStateDict(sd)).toThrow('dtype mismatch for "weight": checkpoint has float64, the module has float32');
    model.loadStateDict(sd, { strict: false });
    expect(Array.from(model.weight.data)).toEqual([3, 4]);
    expect(model.weight.dtype).toBe("float32");
  });

  it("all problems are reported together", () => {
    const model = new nn.MLP([3, 4, 2]);
    const sd: Record<string, Tensor> = { ...model.stateDict(), extra: zeros([1]) };
    delete sd["0.bias"];
    expect(() => model.loadStateDict(sd)).toThrow(/error\(s\) loading state dict for MLP:\n  missing key "0.bias".*\n  unexpected key "extra"/);
  });

  it("non-strict returns missing and unexpected keys", () => {
    const model = new nn.MLP([3, 4, 2]);
    const sd: Record<string, Tensor> = { ...model.stateDict(), extra: zeros([1]) };
    delete sd["0.bias"];
    expect(model.loadStateDict(sd, { strict: false })).toEqual({ missingKeys: ["0.bias"], unexpectedKeys: ["extra"] });
  });

  it("round trip through a safetensors checkpoint (saveSync/loadSync and serialize/deserialize)", () => {
    manualSeed(3);
    const a = new nn.MLP([5, 7, 3]);
    const x = randn([4, 5]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tapegrad-nn-"));
    try {
      const file = path.join(dir, "mlp.safetensors");
      saveSync(file, a.stateDict());
      const b = new nn.MLP([5, 7, 3]);
      b.loadStateDict(loadSync(file));
      expect(Array.from(b.forward(x).data)).toEqual(Array.from(a.forward(x).data));
      const c = new nn.MLP([5, 7, 3]);
      c.loadStateDict(deserialize(serialize(a.stateDict())).tensors);
      expect(Array.from(c.forward(x).data)).toEqual(Array.from(a.forward(x).data));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
