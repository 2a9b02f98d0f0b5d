/**
 * Gradient properties of composites: the losses the examples train with, softmax written from scratch,
 * and long random compositions of ops. Runs: TAPEGRAD_PROPERTY_RUNS (default 100).
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { gradcheck, noGrad, type Tensor } from "../packages/autograd/src/index.ts";
import { arbitraries, propertyRuns } from "../packages/autograd/src/testing.ts";

const numRuns = propertyRuns();
const dim = (min = 1, max = 4) => fc.integer({ min, max });
const leaf = (shape: number[]) => arbitraries.tensor({ shape });

function crossEntropy(logits: Tensor, labels: number[]): Tensor {
  return logits.logSoftmax(-1).pick(labels).mean().neg();
}

/** softmax the from-scratch way: exp(x - max) / Σ exp(x - max), all with keepdims. */
function softmaxFromScratch(x: Tensor, axis: number): Tensor {
  const e = x.sub(x.max(axis, true)).exp();
  return e.div(e.sum(axis, true));
}

describe("composite gradients match central differences", () => {
  it("softmax regression loss: gradients of X, W and b", () => {
    const sample = fc.record({ n: dim(), f: dim(), c: dim(2, 4) }).chain(({ n, f, c }) =>
      fc.tuple(leaf([n, f]), leaf([f, c]), leaf([c]), arbitraries.indices(c, n)));
    fc.assert(
      fc.property(sample, ([X, W, b, labels]) => gradcheck((x, w, bias) => crossEntropy(x.matmul(w).add(bias), labels), [X, W, b])),
      { numRuns },
    );
  });

  it("2-layer MLP cross-entropy: gradients of every parameter, away from relu's kink", () => {
    const sample = fc.record({ n: dim(), f: dim(), h: dim(), c: dim(2, 4) }).chain(({ n, f, h, c }) =>
      fc.tuple(leaf([n, f]), leaf([f, h]), leaf([h]), leaf([h, c]), leaf([c]), arbitraries.indices(c, n)));
    fc.assert(
      fc.property(sample, ([X, W1, b1, W2, b2, labels]) => {
        const pre = noGrad(() => X.matmul(W1).add(b1));
        fc.pre(pre.data.every((v) => Math.abs(v) > 1e-3));
        return gradcheck(
          (x, w1, c1, w2, c2) => crossEntropy(x.matmul(w1).add(c1).relu().matmul(w2).add(c2), labels),
          [X, W1, b1, W2, b2],
        );
      }),
      { numRuns },
    );
  });

  it("softmax via exp/sum(keepdims)/div and via logSoftmax: same values, both gradients right", () => {
    const sample = arbitraries.shape({ minRank: 1 }).chain((s) => fc.tuple(leaf(s), arbitraries.axis(s.length)));
    fc.assert(
      fc.property(sample, ([x, axis]) => {
        const a = noGrad(() => softmaxFromScratch(x, axis));
        const b = noGrad(() => x.logSoftmax(axis).exp());
        a.data.forEach((v, i) => expect(v).toBeCloseTo(b.data[i], 12));
        return gradcheck((t) => softmaxFromScratch(t, axis), [x]) && gradcheck((t) => t.logSoftmax(axis).exp(), [x]);
      }),
      { numRuns },
    );
  });

  it("long random compositions of ops", () => {
    type Step = { name: string; extra?: "same" | "matrix" | "row"; apply: (t: Tensor, e: Tensor | undefined, axis: number) => Tensor };
    const steps: Step[] = [
      { name: "tanh", apply: (t) => t.tanh() },
      { name: "sigmoid", apply: (t) => t.sigmoid() },
      { name: "neg", apply: (t) => t.neg() },
      { name: "exp", apply: (t) => t.exp() },
      { name: "log1p(x²)", apply: (t) => t.mul(t).add(1).log() },
      { name: "sqrt(x²+1)", apply: (t) => t.square().add(1).sqrt() },
      { name: "add", extra: "same", apply: (t, e) => t.add(e!) },
      { name: "sub row", extra: "row", apply: (t, e) => t.sub(e!) },
      { name: "mul", extra: "same", apply: (t, e) => t.mul(e!) },
      { name: "div by 1+e²", extra: "row", apply: (t, e) => t.div(e!.square().add(1)) },
      { name: "pow", extra: "same", apply: (t, e) => t.square().add(0.5).pow(e!) },
      { name: "matmul", extra: "matrix", apply: (t, e) => t.matmul(e!) },
      { name: "softmax", apply: (t, _e, a) => t.softmax(a) },
      { name: "logSoftmax", apply: (t, _e, a) => t.logSoftmax(a) },
      { name: "minus logsumexp", apply: (t, _e, a) => t.sub(t.logsumexp(a, true)) },
      { name: "times mean", apply: (t, _e, a) => t.mul(t.mean(a, true)) },
      { name: "plus sum", apply: (t, _e, a) => t.add(t.sum(a, true)) },
      { name: "transpose twice", apply: (t) => t.transpose().tanh().transpose() },
      { name: "reshape round trip", apply: (t) => t.reshape([-1]).mul(0.5).reshape(t.shape) },
    ];
    const sample = fc.tuple(
      arbitraries.shape({ minRank: 1, maxRank: 3 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: steps.length - 1 }), fc.nat()), { minLength: 3, maxLength: 12 }),
    ).chain(([shape, plan]) => {
      const last = shape[shape.length - 1];
      const extras = plan.map(([k]) => {
        const kind = steps[k].extra;
        return kind === "same" ? leaf(shape) : kind === "row" ? leaf([last]) : kind === "matrix" ? leaf([last, last]) : fc.constant(undefined);
      });
      return fc.tuple(fc.constant(plan), leaf(shape), fc.tuple(...extras));
    });
    fc.assert(
      fc.property(sample, ([plan, x, extras]) => {
        const used = extras.filter((e): e is Tensor => e !== undefined);
        let bounded = true;
        const fn = (t: Tensor, ...es: Tensor[]): Tensor => {
          let k = 0;
          for (const [i, [s, a]] of plan.entries()) {
            const e = extras[i] === undefined ? undefined : es[k++];
            t = steps[s].apply(t, e, a % t.ndim);
            bounded &&= t.data.every((v) => Math.abs(v) < 1e3);
          }
          return t;
        };
        // skip compositions whose intermediates blow up (exp of exp ...): overflow, not a gradient bug
        noGrad(() => fn(x, ...used));
        fc.pre(bounded);
        return gradcheck(fn, [x, ...used]);
      }),
      { numRuns },
    );
  });
});
