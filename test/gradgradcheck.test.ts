/** Second-order gradients: gradgradcheck on every twice-differentiable op of the table, plus its own cases. */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { GradcheckError, defineOp, gradgradcheck, noGrad, tensor, type Tensor } from "../packages/autograd/src/index.ts";
import { arbitraries, opTable, propertyRuns } from "../packages/autograd/src/testing.ts";

const numRuns = propertyRuns();
const f64 = (data: number[], requiresGrad = true) => tensor(data, { dtype: "float64", requiresGrad });

describe("op table: second-order gradients match central differences of the first-order ones", () => {
  for (const info of opTable.filter((o) => o.twiceDifferentiable)) {
    it(`${info.name}: gradgradcheck holds on random ${info.kind} samples`, () => {
      fc.assert(
        fc.property(arbitraries.opSample(info, { maxDim: 3 }), ({ inputs, args }) => gradgradcheck((...xs) => info.call(xs, args), inputs, info.gradcheck)),
        { numRuns },
      );
    });
  }
});

describe("gradgradcheck", () => {
  it("gradgradcheck: composites (softmax cross-entropy, tanh MLP layer) are twice differentiable", () => {
    const logits = tensor([[0.2, -1, 0.5], [1.5, 0.3, -0.2]], { dtype: "float64", requiresGrad: true });
    expect(gradgradcheck((z) => z.logSoftmax().pick([2, 0]).mean().neg(), [logits])).toBe(true);
    const w = tensor([[0.1, -0.3], [0.7, 0.2], [-0.5, 0.4]], { dtype: "float64", requiresGrad: true });
    expect(gradgradcheck((x, W) => x.matmul(W).tanh().sum(), [logits, w])).toBe(true);
  });

  it("gradgradcheck: a backward that is right but not itself differentiable is caught", () => {
    // the derivative 3x² is computed outside the tape: first order is right, second order is 0
    const cube = defineOp({
      name: "cubeDetachedBackward",
      forward: (_c, x) => x.mul(x).mul(x),
      backward: (ctx, g) => [g.mul(noGrad(() => ctx.inputs[0].square().mul(3)))],
    });
    expect(() => gradgradcheck(cube, [f64([0.5, 2])])).toThrow(GradcheckError);
    expect(() => gradgradcheck(cube, [f64([0.5, 2])])).toThrow(/with respect to input 0 \[2\] \(output produced by op mul/);
  });

  it("gradgradcheck: fixed output gradients and multiple outputs", () => {
    const x = f64([0.3, -0.4]);
    expect(gradgradcheck((a) => [a.tanh(), a.exp().sum()], [x], { gradOutputs: [f64([1, 2], false), f64([0.5], false).reshape([])] })).toBe(true);
  });

  it("gradgradcheck: a function linear in its input has a gradient independent of it", () => {
    const x = f64([1, 2]);
    expect(gradgradcheck((a) => a.mul(3).sum(), [x])).toBe(true);
    const c = f64([5], false);
    expect(gradgradcheck((a) => [a.mul(2), c], [x])).toBe(true);
  });

  it("gradgradcheck: errors name the bad argument", () => {
    const x = f64([1, 2]);
    const id = (a: Tensor) => a.mul(1);
    expect(() => gradgradcheck(id, [x], { gradOutputs: [] })).toThrow("gradgradcheck: 0 gradOutputs given for 1 outputs");
    expect(() => gradgradcheck(id, [x], { gradOutputs: [f64([1, 2, 3])] })).toThrow("gradgradcheck: gradOutputs[0] has shape [3], output 0 has shape [2]");
    expect(() => gradgradcheck(id, [f64([1], false)])).toThrow("gradgradcheck: no input requires grad");
    expect(() => gradgradcheck(id, [tensor([1], { requiresGrad: true })])).toThrow("gradgradcheck: input 0 [1] is float32");
    expect(() => gradgradcheck(() => [], [x])).toThrow("gradgradcheck: fn returned no outputs");
  });
});
