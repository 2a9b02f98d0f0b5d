import { describe, expect, it } from "vitest";
import { Generator, Tensor, manualSeed, tensor } from "@tapegrad/autograd";
import { F, nn, optim } from "@tapegrad/nn";

/** Two interleaved spirals, 2 classes, seeded. */
function spirals(n: number, seed: number): { x: Tensor; y: number[] } {
  const gen = new Generator(seed);
  const xs: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const cls = i % 2;
    const r = (i / n) * 0.9 + 0.1;
    const theta = 3 * Math.PI * r + cls * Math.PI;
    xs.push(r * Math.cos(theta) + 0.02 * gen.normal(), r * Math.sin(theta) + 0.02 * gen.normal());
    y.push(cls);
  }
  return { x: tensor(xs, { shape: [n, 2] }), y };
}

/** Full-batch training of a small MLP; returns the model and the training accuracy. */
function train(steps: number): { model: nn.MLP; acc: number } {
  const { x, y } = spirals(200, 1);
  const model = new nn.MLP([2, 64, 2]);
  const opt = new optim.Adam(model.parameters(), { lr: 0.02 });
  const sched = new optim.CosineAnnealingLR(opt, { tMax: steps, etaMin: 0.002 });
  for (let i = 0; i < steps; i++) {
    const loss = F.crossEntropy(model.forward(x), y);
    opt.zeroGrad();
    loss.backward();
    opt.step();
    sched.step();
  }
  model.eval();
  return { model, acc: F.accuracy(model.forward(x), y) };
}

describe("training", () => {
  it("a 2-layer MLP learns two spirals to ≥ 95% accuracy", () => {
    manualSeed(0);
    const { acc } = train(800);
    expect(acc).toBeGreaterThanOrEqual(0.95);
  });

  it("SGD with momentum learns XOR", () => {
    manualSeed(0);
    const x = tensor([[0, 0], [0, 1], [1, 0], [1, 1]]);
    const y = [0, 1, 1, 0];
    const model = new nn.Sequential(new nn.Linear(2, 8), new nn.Tanh(), new nn.Linear(8, 2));
    const opt = new optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
    for (let i = 0; i < 300; i++) {
      const loss = F.crossEntropy(model.forward(x), y);
      opt.zeroGrad();
      loss.backward();
      opt.step();
    }
    expect(F.accuracy(model.forward(x), y)).toBe(1);
  });

  it("manualSeed: two runs (init + training steps) give identical weights bit for bit", () => {
    manualSeed(123);
    const a = train(20).model.parameters().map((p) => Array.from(p.data));
    manualSeed(123);
    const b = train(20).model.parameters().map((p) => Array.from(p.data));
    expect(b).toEqual(a);
    manualSeed(124);
    const c = train(20).model.parameters().map((p) => Array.from(p.data));
    expect(c).not.toEqual(a);
  });
});
