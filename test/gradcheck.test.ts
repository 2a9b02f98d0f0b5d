import { describe, expect, it } from "vitest";
import {
  GradcheckError, GraphError, ValueError, defineOp, gradcheck, manualSeed, randn, tensor, type Tensor,
} from "../packages/autograd/src/index.ts";

const f64 = (data: number[] | number[][], requiresGrad = true): Tensor => tensor(data, { dtype: "float64", requiresGrad });

/** exp with a backward that is off by 1%: the canonical wrong gradient. */
const badExp = defineOp({
  name: "badExp",
  forward: (_ctx, x) => x.exp(),
  backward: (ctx, g) => [g.mul(ctx.output).mul(1.01)],
});

describe("gradcheck: passing functions", () => {
  it("gradcheck: returns true for a correct function of two inputs", () => {
    const a = f64([[1, 2], [3, 4]]);
    const b = f64([0.5, -1]);
    expect(gradcheck((x, y) => x.mul(y).tanh().sum(-1), [a, b])).toBe(true);
  });

  it("gradcheck: checks every output of a function returning several tensors", () => {
    const x = f64([0.3, -0.7, 1.1]);
    expect(gradcheck((t) => [t.exp(), t.sum(), t.softmax()], [x])).toBe(true);
  });

  it("gradcheck: skips inputs that do not require grad", () => {
    const x = f64([1, 2]);
    const c = tensor([3, 4], { dtype: "float64" });
    expect(gradcheck((a, b) => a.mul(b), [x, c])).toBe(true);
  });

  it("gradcheck: an output that does not depend on the inputs has a zero Jacobian", () => {
    const x = f64([1, 2]);
    const c = tensor([3, 4], { dtype: "float64" });
    expect(gradcheck((a) => [a.mul(2), c], [x])).toBe(true);
  });

  it("gradcheck: never perturbs nor tapes the user's tensors", () => {
    const x = f64([0.5, 1.5]);
    gradcheck((a) => a.log(), [x]);
    expect(Array.from(x.data)).toEqual([0.5, 1.5]);
    expect(x.grad).toBeNull();
  });

  it("gradcheck: fast mode checks vᵀJu of a large input in one backward", () => {
    manualSeed(1);
    const w = randn([40, 30], { dtype: "float64", requiresGrad: true });
    const x = randn([8, 40], { dtype: "float64", requiresGrad: true });
    expect(gradcheck((a, b) => a.matmul(b).tanh(), [x, w], { fast: true })).toBe(true);
  });

  it("gradcheck: float32 inputs are accepted with allowFloat32 and loose tolerances", () => {
    const x = tensor([0.5, 1.5], { requiresGrad: true });
    expect(gradcheck((a) => a.mul(a), [x], { allowFloat32: true, eps: 1e-2, atol: 1e-2, rtol: 1e-2 })).toBe(true);
  });
});

describe("gradcheck: failures name the output, input, element, values and op", () => {
  it("gradcheck: a backward off by 1% is caught with the worst element", () => {
    const x = f64([[0.1, 0.2], [0.3, 2.0]]);
    let err: unknown;
    try {
      gradcheck((a) => badExp(a), [x]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GradcheckError);
    const e = err as GradcheckError;
    expect(e.outputIndex).toBe(0);
    expect(e.inputIndex).toBe(0);
    expect(e.op).toBe("badExp");
    // the largest entry, exp(2), has the largest error
    expect(e.outputElement).toEqual([1, 1]);
    expect(e.inputElement).toEqual([1, 1]);
    expect(e.analytic).toBeCloseTo(Math.exp(2) * 1.01, 8);
    expect(e.numerical).toBeCloseTo(Math.exp(2), 6);
    expect(e.message).toContain("Jacobian mismatch for output 0 [2, 2] with respect to input 0 [2, 2] (output produced by op badExp)");
    expect(e.message).toContain("worst element: d output[1, 1] / d input[1, 1]");
    expect(e.message).toMatch(/analytic: {2}7\.46/);
    expect(e.message).toMatch(/numerical: 7\.38/);
    expect(e.message).toContain("4 of 16 Jacobian entries differ");
  });

  it("gradcheck: the message lists the ops on the tape and the failing input and output", () => {
    const x = f64([0.5, 1]);
    const y = f64([1, 2]);
    expect(() => gradcheck((a, b) => [a.sum(), badExp(b).mul(a).sum()], [x, y])).toThrow(
      /output 1 \[\] with respect to input 1 \[2\] \(output produced by op sum; ops on the tape: sum, mul, badExp\)/,
    );
  });

  it("gradcheck: an output cut off from the tape is reported (analytic gradient 0)", () => {
    const x = f64([1, 2]);
    expect(() => gradcheck((a) => a.detach().mul(2).add(a.mul(0)).detach(), [x])).toThrow(/the output is not on the tape: analytic gradient 0/);
  });

  it("gradcheck: fast mode catches the wrong backward and points to the full check", () => {
    const x = f64([0.1, 0.2, 0.3]);
    expect(() => gradcheck(badExp, [x], { fast: true })).toThrow(
      /gradcheck \(fast mode\): vᵀJu mismatch for output 0 \[3\] with respect to input 0 \[3\] \(output produced by op badExp\)[\s\S]*run again with \{ fast: false \}/,
    );
    expect(() => gradcheck((a) => a.detach().mul(2), [x], { fast: true })).toThrow(/fast mode[\s\S]*not on the tape/);
  });

  it("gradcheck: raiseException false returns false instead of throwing", () => {
    expect(gradcheck(badExp, [f64([1])], { raiseException: false })).toBe(false);
    expect(gradcheck(badExp, [f64([1])], { raiseException: false, fast: true })).toBe(false);
  });

  it("gradcheck: a function that is not finite near the input is reported as outside its domain", () => {
    const x = f64([1e-7, 1]);
    expect(() => gradcheck((a) => a.log(), [x])).toThrow(
      /numerical derivative of output 0 element \[0\] with respect to input 0 element \[0\] is NaN: the function is not finite near the input/,
    );
    expect(() => gradcheck((a) => a.log(), [x], { fast: true })).toThrow(/is NaN: the function is not finite/);
  });
});

describe("gradcheck: bad arguments", () => {
  const x = f64([1, 2]);
  it("gradcheck: refuses float32 inputs", () => {
    expect(() => gradcheck((a) => a.exp(), [tensor([1, 2], { requiresGrad: true })])).toThrow(
      new ValueError('gradcheck: input 0 [2] is float32; central differences need float64: pass x.to("float64") (or { allowFloat32: true } with a larger eps and atol)'),
    );
  });
  it("gradcheck: refuses a function that casts its output down to float32", () => {
    expect(() => gradcheck((a) => a.to("float32"), [x])).toThrow(/output 0 \[2\] is float32 although the inputs are float64/);
  });
  it("gradcheck: needs an input that requires grad", () => {
    expect(() => gradcheck((a) => a.exp(), [f64([1], false)])).toThrow(GraphError);
    expect(() => gradcheck((a) => a.exp(), [f64([1], false)])).toThrow("gradcheck: no input requires grad");
  });
  it("gradcheck: fn must return tensors", () => {
    expect(() => gradcheck(() => 3 as unknown as Tensor, [x])).toThrow("gradcheck: fn must return a Tensor or an array of Tensors, but output 0 is number");
    expect(() => gradcheck(() => [x, null as unknown as Tensor], [x])).toThrow("but output 1 is null");
    expect(() => gradcheck(() => [], [x])).toThrow("gradcheck: fn returned no outputs");
  });
  it("gradcheck: inputs must be an array of tensors", () => {
    expect(() => gradcheck((a) => a, [[1, 2] as unknown as Tensor])).toThrow("gradcheck: input 0 is not a Tensor (got object)");
    expect(() => gradcheck((a) => a, x as unknown as Tensor[])).toThrow("gradcheck: inputs must be an array of Tensors");
  });
  it("gradcheck: tolerances must be sensible numbers", () => {
    expect(() => gradcheck((a) => a, [x], { eps: 0 })).toThrow("gradcheck: eps must be a finite positive number, got 0");
    expect(() => gradcheck((a) => a, [x], { atol: -1 })).toThrow("gradcheck: atol must be a finite non-negative number, got -1");
    expect(() => gradcheck((a) => a, [x], { rtol: NaN })).toThrow("gradcheck: rtol must be a finite non-negative number, got NaN");
  });
  it("gradcheck: an output whose size depends on the input values is refused", () => {
    const fn = (a: Tensor) => (a.data[0] > 1 ? a.sum() : a.mul(1));
    expect(() => gradcheck(fn, [f64([1, 3])])).toThrow("gradcheck: output 0 changed size from 2 to 1 when input 0 was perturbed");
  });
});

describe("README: Check your gradients", () => {
  it("docs: the README example is the tested script, and it runs", async () => {
    const { readFileSync } = await import("node:fs");
    const doc = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const script = readFileSync(new URL("./gradcheck-readme-example.ts", import.meta.url), "utf8");
    expect(doc).toContain("```ts\n" + script + "```");
    const logs: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => void logs.push(a.join(" "));
    try {
      await import("./gradcheck-readme-example.ts");
    } finally {
      console.log = log;
    }
    const printed = /```text\n([\s\S]*?)```/.exec(doc)![1].trimEnd();
    expect(logs[0]).toBe(printed);
    expect(logs[1]).toMatch(/^sqrt: backward produced Infinity \(in its div\)[\s\S]*gradcheck-readme-example\.ts:\d+/);
    expect(logs[2]).toContain('label="x\\n[4, 3] float64"');
  });
});

describe("testing arbitraries", () => {
  it("arbitraries: shapes, tensors, broadcastable shapes, axes and indices are what they say", async () => {
    const fc = (await import("fast-check")).default;
    const { arbitraries } = await import("../packages/autograd/src/testing.ts");
    const { broadcastShapes } = await import("../packages/autograd/src/index.ts");
    fc.assert(fc.property(arbitraries.shape({ minRank: 1, maxRank: 2, maxDim: 3 }), (s) => s.length >= 1 && s.length <= 2 && s.every((d) => d >= 1 && d <= 3)));
    fc.assert(fc.property(arbitraries.tensor({ shape: [2, 3], min: 0.1, max: 3 }), (t) =>
      t.dtype === "float64" && t.requiresGrad && t.data.every((v) => v >= 0.1 && v <= 3)));
    fc.assert(fc.property(arbitraries.tensor({ avoid: [0], margin: 0.5 }), (t) => t.data.every((v) => Math.abs(v) >= 0.5)));
    fc.assert(fc.property(arbitraries.tensor({ shape: [8], distinct: true }), (t) => new Set(t.data).size === 8));
    fc.assert(fc.property(arbitraries.tensor({ dtype: "float32", requiresGrad: false }), (t) => t.dtype === "float32" && !t.requiresGrad));
    fc.assert(fc.property(arbitraries.broadcastableShapes(3), ([a, b, c]) => {
      broadcastShapes("test", broadcastShapes("test", a, b), c);
      return true;
    }));
    fc.assert(fc.property(arbitraries.axis(3), (a) => a >= -3 && a <= 2));
    fc.assert(fc.property(arbitraries.indices(3, 5), (ix) => ix.length === 5 && ix.every((i) => i >= 0 && i < 3)));
  });

  it("arbitraries: impossible requests are refused with the reason", async () => {
    const { arbitraries, opInfo } = await import("../packages/autograd/src/testing.ts");
    expect(() => arbitraries.shape({ minRank: 3, maxRank: 2 })).toThrow("arbitraries.shape: invalid rank range 3..2");
    expect(() => arbitraries.shape({ minDim: 2, maxDim: 1 })).toThrow("arbitraries.shape: invalid dim range 2..1");
    expect(() => arbitraries.tensor({ shape: [1], min: 1, max: 0 })).toThrow("arbitraries.tensor: min 1 is above max 0");
    expect(() => arbitraries.tensor({ shape: [5], min: 0, max: 0.02, distinct: true })).toThrow(
      "arbitraries.tensor: cannot draw 5 distinct values 0.01 apart in [0, 0.02]",
    );
    expect(() => arbitraries.axis(0)).toThrow("arbitraries.axis: a tensor of rank 0 has no axis");
    expect(() => arbitraries.indices(0, 2)).toThrow("arbitraries.indices: size must be a positive integer, got 0");
    expect(() => opInfo("nope")).toThrow('opInfo: no op named "nope" in the op table');
  });
});
