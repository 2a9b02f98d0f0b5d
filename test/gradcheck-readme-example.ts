import fc from "fast-check";
import { defineOp, detectAnomaly, gradcheck, gradgradcheck, randn, tensor, toDot } from "@tapegrad/autograd";
import { arbitraries } from "@tapegrad/autograd/testing";

// 1. One point: every input that requires grad, every output, in float64.
const x = randn([4, 3], { dtype: "float64", requiresGrad: true });
const w = randn([3, 2], { dtype: "float64", requiresGrad: true });
gradcheck((x, w) => x.matmul(w).tanh().sum(), [x, w]); // true, or throws a GradcheckError

// 2. Random shapes and values: fast-check shrinks a failure to the smallest case.
fc.assert(
  fc.property(arbitraries.tensor({ shape: arbitraries.shape({ minRank: 1 }) }), (t) =>
    gradcheck((t) => t.softmax(-1), [t])),
);

// 3. A custom op with a hand-written backward, checked to first and second order.
const softplus = defineOp({
  name: "softplus",
  forward: (_ctx, x) => x.exp().add(1).log(),
  backward: (ctx, g) => [g.mul(ctx.inputs[0].sigmoid())],
});
gradcheck(softplus, [x]);
gradgradcheck(softplus, [x]);

// 4. A wrong backward does not get through.
const badSquare = defineOp({
  name: "badSquare",
  forward: (_ctx, x) => x.mul(x),
  backward: (ctx, g) => [g.mul(ctx.inputs[0]).mul(2.02)], // should be 2
});
try {
  gradcheck(badSquare, [tensor([1, 3], { dtype: "float64", requiresGrad: true })]);
} catch (e) {
  console.log((e as Error).message);
}

// 5. Where did the NaN come from? And what is on the tape?
const z = tensor([4, 0], { requiresGrad: true });
try {
  detectAnomaly(() => z.sqrt().sum().backward());
} catch (e) {
  console.log((e as Error).message); // sqrt: backward produced Infinity (in its div) ... created at <your file:line>
}
console.log(toDot(x.matmul(w).relu().sum(), { names: { x, w } })); // paste into `dot -Tsvg`
