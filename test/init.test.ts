import { describe, expect, it } from "vitest";
import { Generator, Tensor, manualSeed, zeros } from "@tapegrad/autograd";
import { init, nn } from "@tapegrad/nn";

function stats(t: Tensor): { mean: number; std: number; min: number; max: number } {
  const d = Array.from(t.data);
  const mean = d.reduce((a, b) => a + b, 0) / d.length;
  const std = Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / d.length);
  return { mean, std, min: Math.min(...d), max: Math.max(...d) };
}

describe("init", () => {
  it("calculateGain matches PyTorch's table", () => {
    expect(init.calculateGain("linear")).toBe(1);
    expect(init.calculateGain("sigmoid")).toBe(1);
    expect(init.calculateGain("tanh")).toBe(5 / 3);
    expect(init.calculateGain("relu")).toBe(Math.SQRT2);
    expect(init.calculateGain("leaky_relu")).toBeCloseTo(Math.sqrt(2 / (1 + 0.01 ** 2)), 15);
    expect(init.calculateGain("leaky_relu", Math.sqrt(5))).toBeCloseTo(Math.sqrt(1 / 3), 15);
    expect(init.calculateGain("selu")).toBe(0.75);
    expect(() => init.calculateGain("gelu" as "relu")).toThrow(/calculateGain: unsupported nonlinearity "gelu"/);
  });

  it("fans: [out, in, ...kernel] gives fanIn = in·k, fanOut = out·k; 1-D is an error", () => {
    expect(init.calculateFans(zeros([128, 784]))).toEqual({ fanIn: 784, fanOut: 128 });
    expect(init.calculateFans(zeros([16, 3, 5, 5]))).toEqual({ fanIn: 75, fanOut: 400 });
    expect(() => init.calculateFans(zeros([5]))).toThrow(/fewer than 2 dimensions \(shape \[5\]\)/);
  });

  it("uniform_, normal_, zeros_, ones_, constant_", () => {
    manualSeed(0);
    const u = init.uniform_(zeros([20000]), -2, 3);
    const s = stats(u);
    expect(s.min).toBeGreaterThanOrEqual(-2);
    expect(s.max).toBeLessThan(3);
    expect(s.mean).toBeCloseTo(0.5, 1);
    expect(s.std).toBeCloseTo(5 / Math.sqrt(12), 1);
    const n = stats(init.normal_(zeros([20000], { dtype: "float64" }), 1, 0.5));
    expect(Math.abs(n.mean - 1)).toBeLessThan(0.02);
    expect(Math.abs(n.std - 0.5) / 0.5).toBeLessThan(0.03);
    expect(Array.from(init.ones_(zeros([3])).data)).toEqual([1, 1, 1]);
    expect(Array.from(init.zeros_(init.ones_(zeros([2]))).data)).toEqual([0, 0]);
    expect(Array.from(init.constant_(zeros([2]), 7).data)).toEqual([7, 7]);
  });

  it("kaiming and xavier: bounds for uniform, std for normal", () => {
    manualSeed(0);
    const w = zeros([200, 400]);
    const ku = stats(init.kaimingUniform_(w, { nonlinearity: "relu" }));
    const kb = Math.SQRT2 * Math.sqrt(3 / 400);
    expect(ku.min).toBeGreaterThanOrEqual(-kb);
    expect(ku.max).toBeLessThanOrEqual(kb);
    expect(ku.max).toBeGreaterThan(0.99 * kb);
    const kuOut = stats(init.kaimingUniform_(zeros([200, 400]), { nonlinearity: "relu", mode: "fanOut" }));
    expect(kuOut.max).toBeLessThanOrEqual(Math.SQRT2 * Math.sqrt(3 / 200));
    expect(kuOut.max).toBeGreaterThan(0.99 * Math.SQRT2 * Math.sqrt(3 / 200));
    const kn = stats(init.kaimingNormal_(zeros([200, 400]), { nonlinearity: "relu" }));
    expect(Math.abs(kn.std / (Math.SQRT2 / Math.sqrt(400)) - 1)).toBeLessThan(0.02);
    const xb = Math.sqrt(6 / 600);
    const xu = stats(init.xavierUniform_(zeros([200, 400])));
    expect(xu.min).toBeGreaterThanOrEqual(-xb);
    expect(xu.max).toBeLessThanOrEqual(xb);
    expect(xu.max).toBeGreaterThan(0.99 * xb);
    const xn = stats(init.xavierNormal_(zeros([200, 400]), { gain: 2 }));
    expect(Math.abs(xn.std / (2 * Math.sqrt(2 / 600)) - 1)).toBeLessThan(0.02);
  });

  it("Linear's default: weight and bias in U(-1/√in, 1/√in), as PyTorch", () => {
    manualSeed(0);
    const lin = new nn.Linear(400, 300);
    const bound = 1 / Math.sqrt(400);
    const w = stats(lin.weight);
    expect(w.min).toBeGreaterThanOrEqual(-bound);
    expect(w.max).toBeLessThanOrEqual(bound);
    expect(w.max).toBeGreaterThan(0.99 * bound);
    expect(Math.abs(w.std / (bound / Math.sqrt(3)) - 1)).toBeLessThan(0.02);
    const b = stats(lin.bias!);
    expect(b.min).toBeGreaterThanOrEqual(-bound);
    expect(b.max).toBeLessThanOrEqual(bound);
  });

  it("manualSeed makes initialisation reproducible; a private generator leaves the global one alone", () => {
    manualSeed(42);
    const a = new nn.MLP([10, 20, 5]).parameters().map((p) => Array.from(p.data));
    manualSeed(42);
    const b = new nn.MLP([10, 20, 5]).parameters().map((p) => Array.from(p.data));
    expect(b).toEqual(a);
    manualSeed(42);
    init.normal_(zeros([100]), 0, 1, { generator: new Generator(7) });
    const c = new nn.MLP([10, 20, 5]).parameters().map((p) => Array.from(p.data));
    expect(c).toEqual(a);
  });
});
