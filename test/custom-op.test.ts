import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  GradcheckError, GraphError, ValueError, defineOp, grad, gradcheck, gradgradcheck, noGrad, tensor, type Tensor,
} from "../packages/autograd/src/index.ts";
import { arbitraries, propertyRuns } from "../packages/autograd/src/testing.ts";

const cube = defineOp({
  name: "cube",
  forward: (_ctx, x) => x.mul(x).mul(x),
  backward: (ctx, g) => [g.mul(ctx.inputs[0].square()).mul(3)],
});

/** x·y with raw loops in forward, and values saved for backward. */
const scaledProduct = defineOp({
  name: "scaledProduct",
  forward: (ctx, x, y) => {
    ctx.save(2);
    const out = new Float64Array(x.size);
    for (let i = 0; i < out.length; i++) out[i] = 2 * x.data[i] * y.data[i];
    return tensor(out, { shape: x.shape, dtype: "float64" });
  },
  backward: (ctx, g) => {
    const [x, y] = ctx.inputs;
    const k = ctx.saved[0] as number;
    return [ctx.needsInputGrad[0] ? g.mul(y).mul(k) : null, ctx.needsInputGrad[1] ? g.mul(x).mul(k) : null];
  },
});

const f64 = (data: number[], requiresGrad = true) => tensor(data, { dtype: "float64", requiresGrad });

describe("defineOp: custom ops behave like built-ins", () => {
  it("defineOp: forward result and backward gradient", () => {
    const x = f64([1, 2, 3]);
    const y = cube(x);
    expect(Array.from(y.data)).toEqual([1, 8, 27]);
    expect(y.gradFn?.op).toBe("cube");
    y.sum().backward();
    expect(Array.from(x.grad!.data)).toEqual([3, 12, 27]);
  });

  it("defineOp: the forward is not taped, only the custom node", () => {
    const x = f64([1, 2]);
    const y = cube(x);
    expect(y.gradFn!.inputs).toEqual([x]);
    expect(noGrad(() => cube(x)).requiresGrad).toBe(false);
    expect(cube(f64([1], false)).requiresGrad).toBe(false);
  });

  it("defineOp: gradcheck passes on a correct custom op, with saved values and needsInputGrad", () => {
    expect(gradcheck(cube, [f64([0.5, -1.5, 2])])).toBe(true);
    expect(gradcheck(scaledProduct, [f64([0.5, -1.5]), f64([2, 3])])).toBe(true);
    expect(gradcheck(scaledProduct, [f64([0.5, -1.5]), f64([2, 3], false)])).toBe(true);
  });

  it("defineOp: a backward written with ops is twice differentiable", () => {
    expect(gradgradcheck(cube, [f64([0.5, -1.5, 2])])).toBe(true);
    const x = f64([2]);
    const [g] = grad(cube(x), [x], { createGraph: true });
    const [gg] = grad(g, [x]);
    expect(gg.item()).toBeCloseTo(12);
  });

  it("defineOp: a forward that returns its input unchanged still gets its own node", () => {
    const identity = defineOp({ name: "identity", forward: (_c, x) => x, backward: (_c, g) => g });
    const x = f64([1, 2]);
    const y = identity(x);
    expect(y).not.toBe(x);
    expect(x.isLeaf).toBe(true);
    expect(gradcheck(identity, [x])).toBe(true);
  });

  it("defineOp: the function carries the op's name", () => {
    expect(cube.name).toBe("cube");
  });
});

describe("defineOp: errors", () => {
  it("defineOp: rejects a definition without a name or functions", () => {
    expect(() => defineOp({ name: "", forward: (_c, x) => x, backward: (_c, g) => g })).toThrow("defineOp: name must be a non-empty string");
    expect(() => defineOp({ name: "f", forward: 1 as never, backward: (_c, g) => g })).toThrow("defineOp f: forward and backward must be functions");
  });
  it("defineOp: arguments must be tensors", () => {
    expect(() => cube(2 as unknown as Tensor)).toThrow(new ValueError("cube: argument 0 is not a Tensor (got number)"));
  });
  it("defineOp: forward must return a tensor", () => {
    const bad = defineOp({ name: "bad", forward: () => [1] as unknown as Tensor, backward: (_c, g) => g });
    expect(() => bad(f64([1]))).toThrow("bad: forward must return a Tensor, got object");
  });
  it("defineOp: backward must return one gradient per input", () => {
    const bad = defineOp({ name: "twoGrads", forward: (_c, x) => x.mul(2), backward: (_c, g) => [g, g] });
    expect(() => bad(f64([1])).sum().backward()).toThrow(
      new GraphError("twoGrads: backward returned 2 gradients for 1 input; return one gradient (or null) per input"),
    );
    const bad2 = defineOp({ name: "numberGrad", forward: (_c, x) => x.mul(2), backward: () => [2 as unknown as Tensor] });
    expect(() => bad2(f64([1])).sum().backward()).toThrow("numberGrad: backward returned a number for input 0, expected a Tensor or null");
  });
  it("defineOp: a gradient of the wrong shape is caught by the engine", () => {
    const bad = defineOp({ name: "wrongShape", forward: (_c, x) => x.mul(2), backward: (_c, g) => [g.sum().reshape([1, 1, 1])] });
    expect(() => bad(f64([1, 2])).sum().backward()).toThrow("wrongShape: backward returned a gradient of shape [1, 1, 1] for input 0 of shape [2]");
  });
});

describe("the checker can fail: wrong backwards are caught and shrunk", () => {
  const runs = propertyRuns();

  it("gradcheck property: a backward off by 1% is caught and shrinks to the 0-d tensor 0", () => {
    const scaled = defineOp({
      name: "offByOnePercent",
      forward: (_c, x) => x.mul(2),
      backward: (_c, g) => [g.mul(2 * 1.01)],
    });
    const result = fc.check(fc.property(arbitraries.tensor(), (x) => gradcheck(scaled, [x])), { numRuns: runs });
    expect(result.failed).toBe(true);
    const [x] = result.counterexample!;
    expect(x.shape).toEqual([]);
    expect(Array.from(x.data)).toEqual([0]);
    expect(result.errorInstance).toBeInstanceOf(GradcheckError);
    expect(String((result.errorInstance as Error).message)).toContain("offByOnePercent");
  });

  it("gradcheck property: a row sum whose backward averages instead is caught and shrinks to shape [2]", () => {
    // correct for rows of length 1 only: the minimal failing shape is a single row of two elements
    const rowSum = defineOp({
      name: "rowSum",
      forward: (_c, x) => x.sum(-1),
      backward: (ctx, g) => [g.unsqueeze(-1).broadcastTo(ctx.inputs[0].shape).div(ctx.inputs[0].shape.at(-1)!)],
    });
    const result = fc.check(
      fc.property(arbitraries.tensor({ shape: arbitraries.shape({ minRank: 1 }) }), (x) => gradcheck(rowSum, [x])),
      { numRuns: runs },
    );
    expect(result.failed).toBe(true);
    expect(result.counterexample![0].shape).toEqual([2]);
  });
});
