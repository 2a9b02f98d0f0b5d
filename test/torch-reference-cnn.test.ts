// The convolutional-network ops (conv2d, pooling, batch and layer norm, pad, cat, stack) against PyTorch 1.13
// in float64, from test/fixtures/conv-reference.json (made by scripts/conv-reference.py): each op's output,
// the gradients backward gives for the fixture's upstream gradient, and batch norm's running statistics.
import { describe, expect, it } from "vitest";
import { convReference, type ConvReferenceCase, type Stored } from "./fixtures/conv-reference.ts";
import {
  adaptiveAvgPool2d, avgPool2d, batchNorm, cat, conv2d, layerNorm, maxPool2d, pad, stack, tensor,
  type AdaptiveSize, type Conv2dPadding, type Pair, type Tensor,
} from "../packages/autograd/src/index.ts";

const fixture = convReference;
type Case = ConvReferenceCase;
const cases = Object.entries(fixture.cases);

const leaf = (s: Stored, requiresGrad: boolean): Tensor => tensor(s.data, { shape: s.shape, dtype: "float64", requiresGrad });
const pair = (v: unknown): Pair => (Array.isArray(v) ? [v[0] as number, v[1] as number] : (v as number));
const optionalPair = (v: unknown): Pair | undefined => (v === undefined || v === null ? undefined : pair(v));

function expectMatches(actual: Tensor | null, expected: Stored, what: string): void {
  expect(actual, `${what} is missing`).not.toBeNull();
  expect(actual!.shape, `${what} shape`).toEqual(expected.shape);
  expected.data.forEach((v, i) => {
    const a = actual!.data[i];
    if (!(Math.abs(a - v) <= 1e-10 * (1 + Math.abs(v)))) expect.fail(`${what}[${i}] = ${a}, PyTorch ${v}`);
  });
}

/** Calls tapegrad's op for a fixture case on its (differentiable) inputs; returns the output. */
function callOp(c: Case, t: Record<string, Tensor>, running: Record<string, Tensor>): Tensor {
  const a = c.args;
  switch (c.op) {
    case "conv2d":
      return conv2d(t.input, t.weight, t.bias ?? null, {
        stride: optionalPair(a.stride), dilation: optionalPair(a.dilation), groups: a.groups as number | undefined,
        padding: (typeof a.padding === "string" ? a.padding : optionalPair(a.padding)) as Conv2dPadding | undefined,
      });
    case "max_pool2d":
      return maxPool2d(t.input, pair(a.kernel_size), {
        stride: optionalPair(a.stride), padding: optionalPair(a.padding), dilation: optionalPair(a.dilation), ceilMode: a.ceil_mode as boolean | undefined,
      });
    case "avg_pool2d":
      return avgPool2d(t.input, pair(a.kernel_size), {
        stride: optionalPair(a.stride), padding: optionalPair(a.padding), ceilMode: a.ceil_mode as boolean | undefined,
        countIncludePad: a.count_include_pad as boolean | undefined,
      });
    case "adaptive_avg_pool2d":
      return adaptiveAvgPool2d(t.input, a.output_size as AdaptiveSize);
    case "batch_norm":
      return batchNorm(t.input, running.running_mean, running.running_var, {
        weight: t.weight, bias: t.bias, training: a.training as boolean, momentum: a.momentum as number, eps: a.eps as number,
      });
    case "layer_norm":
      return layerNorm(t.input, a.normalized_shape as number[], { weight: t.weight, bias: t.bias, eps: a.eps as number });
    case "pad":
      return pad(t.input, a.pad as number[], a.value as number);
    case "cat":
      return cat(Object.keys(c.inputs).map((k) => t[k]), a.dim as number);
    case "stack":
      return stack(Object.keys(c.inputs).map((k) => t[k]), a.dim as number);
    default:
      throw new Error(`no tapegrad op for fixture op ${c.op}`);
  }
}

describe("CNN ops agree with PyTorch 1.13 (test/fixtures/conv-reference.json)", () => {
  it("the fixture covers every op", () => {
    const ops = new Set(cases.map(([, c]) => c.op));
    for (const op of ["conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "batch_norm", "layer_norm", "pad", "cat", "stack"]) {
      expect(ops).toContain(op);
    }
  });

  for (const [name, c] of cases) {
    it(`${name}: output, gradients${c.running_mean_after ? " and running statistics" : ""}`, () => {
      const t: Record<string, Tensor> = {};
      const running: Record<string, Tensor> = {};
      for (const [k, s] of Object.entries(c.inputs)) {
        if (k === "running_mean" || k === "running_var") running[k] = leaf(s, false);
        else t[k] = leaf(s, k in c.grads);
      }
      const out = callOp(c, t, running);
      expectMatches(out, c.output, "output");
      out.backward(leaf(c.upstream, false));
      for (const [k, g] of Object.entries(c.grads)) expectMatches(t[k].grad, g, `gradient of ${k}`);
      if (c.running_mean_after) {
        expectMatches(running.running_mean, c.running_mean_after, "running_mean");
        expectMatches(running.running_var, c.running_var_after!, "running_var");
        expect(running.running_mean.version, "running_mean is marked modified").toBe(c.args.training ? 1 : 0);
      }
    });
  }
});
