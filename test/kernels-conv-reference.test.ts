// The convolution, pooling and normalisation kernels against PyTorch 1.13 (float64), from
// test/fixtures/conv-reference.json (made by scripts/conv-reference.py): outputs, max-pool indices, running
// statistics, and the gradients the backward kernels give for the fixture's upstream gradient.
import { describe, expect, it } from "vitest";
import { convReference, type ConvReferenceCase, type Stored } from "./fixtures/conv-reference.ts";
import {
  conv2dBackwardBias, conv2dBackwardInput, conv2dBackwardWeight, conv2dForward, conv2dGeometry, conv2dWorkspaceSize,
  type Conv2dPadding, type Pair,
} from "../packages/autograd/src/kernels/conv.ts";
import {
  adaptiveAvgPool2dBackward, adaptiveAvgPool2dForward, avgPool2dBackward, avgPool2dForward, maxPool2dBackward,
  maxPool2dForward, pool2dGeometry,
} from "../packages/autograd/src/kernels/pool.ts";
import {
  batchNormBackward, batchNormForwardEval, batchNormForwardTraining, batchNormUpdateRunning, layerNormBackward, layerNormForward,
} from "../packages/autograd/src/kernels/norm.ts";

const fixture = convReference;
type Case = ConvReferenceCase;
const cases = Object.entries(fixture.cases);
const f64 = (s: Stored): Float64Array => Float64Array.from(s.data);

function expectMatches(actual: ArrayLike<number>, expected: Stored, what: string): void {
  expect(actual.length).toBe(expected.data.length);
  expected.data.forEach((v, i) => {
    if (!(Math.abs(actual[i] - v) <= 1e-10 * (1 + Math.abs(v)))) expect.fail(`${what}[${i}] = ${actual[i]}, PyTorch ${v}`);
  });
}

const pair = (v: unknown): Pair => (Array.isArray(v) ? [v[0] as number, v[1] as number] : v as number);

describe("kernels agree with PyTorch 1.13 (test/fixtures/conv-reference.json)", () => {
  it("the fixture has the cases the kernels are checked on", () => {
    const ops = new Set(cases.map(([, c]) => c.op));
    for (const op of ["conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "batch_norm", "layer_norm"]) expect(ops).toContain(op);
  });

  for (const [name, c] of cases.filter(([, c]) => c.op === "conv2d")) {
    it(`conv2d kernels: ${name}`, () => {
      const x = c.inputs.input, w = c.inputs.weight;
      const g = conv2dGeometry(x.shape, w.shape, {
        stride: pair(c.args.stride ?? 1), padding: (typeof c.args.padding === "string" ? c.args.padding : pair(c.args.padding ?? 0)) as Conv2dPadding,
        dilation: pair(c.args.dilation ?? 1), groups: (c.args.groups as number | undefined) ?? 1,
      });
      const out = new Float64Array(c.output.data.length);
      conv2dForward(g, f64(x), f64(w), c.inputs.bias ? f64(c.inputs.bias) : null, out, new Float64Array(conv2dWorkspaceSize(g, "forward")));
      expectMatches(out, c.output, "output");
      const gy = f64(c.upstream);
      const gx = new Float64Array(x.data.length);
      conv2dBackwardInput(g, gy, f64(w), gx, new Float64Array(conv2dWorkspaceSize(g, "backwardInput")));
      expectMatches(gx, c.grads.input, "grad input");
      const gw = new Float64Array(w.data.length), gb = new Float64Array(g.outChannels);
      conv2dBackwardWeight(g, f64(x), gy, gw, c.inputs.bias ? gb : null, new Float64Array(conv2dWorkspaceSize(g, "backwardWeight")));
      expectMatches(gw, c.grads.weight, "grad weight");
      if (c.inputs.bias) {
        expectMatches(gb, c.grads.bias, "grad bias");
        const gbLoop = new Float64Array(g.outChannels);
        conv2dBackwardBias(gy, g.batch, g.outChannels, g.outH * g.outW, gbLoop);
        expectMatches(gbLoop, c.grads.bias, "grad bias (conv2dBackwardBias)");
      }
    });
  }

  for (const [name, c] of cases.filter(([, c]) => c.op === "max_pool2d" || c.op === "avg_pool2d")) {
    it(`${c.op} kernels: ${name}`, () => {
      const x = c.inputs.input;
      const p = pool2dGeometry(c.op === "max_pool2d" ? "maxPool2d" : "avgPool2d", x.shape, {
        kernelSize: pair(c.args.kernel_size), stride: c.args.stride === undefined ? undefined : pair(c.args.stride),
        padding: pair(c.args.padding ?? 0), dilation: c.args.dilation === undefined ? undefined : pair(c.args.dilation),
        ceilMode: (c.args.ceil_mode as boolean | undefined) ?? false,
      });
      expect([p.batch, p.channels, p.outH, p.outW]).toEqual(c.output.shape);
      const out = new Float64Array(c.output.data.length), gx = new Float64Array(x.data.length);
      if (c.op === "max_pool2d") {
        const indices = new Int32Array(out.length);
        maxPool2dForward(p, f64(x), out, indices);
        expect(Array.from(indices)).toEqual(c.indices!.data);
        maxPool2dBackward(p, f64(c.upstream), indices, gx);
      } else {
        const countIncludePad = (c.args.count_include_pad as boolean | undefined) ?? true;
        avgPool2dForward(p, f64(x), out, countIncludePad);
        avgPool2dBackward(p, f64(c.upstream), gx, countIncludePad);
      }
      expectMatches(out, c.output, "output");
      expectMatches(gx, c.grads.input, "grad input");
    });
  }

  for (const [name, c] of cases.filter(([, c]) => c.op === "adaptive_avg_pool2d")) {
    it(`adaptive_avg_pool2d kernels: ${name}`, () => {
      const [n, ch, h, w] = c.inputs.input.shape;
      const [outH, outW] = c.output.shape.slice(2);
      const out = new Float64Array(c.output.data.length), gx = new Float64Array(c.inputs.input.data.length);
      adaptiveAvgPool2dForward(f64(c.inputs.input), n * ch, h, w, outH, outW, out);
      expectMatches(out, c.output, "output");
      adaptiveAvgPool2dBackward(f64(c.upstream), n * ch, h, w, outH, outW, gx);
      expectMatches(gx, c.grads.input, "grad input");
    });
  }

  for (const [name, c] of cases.filter(([, c]) => c.op === "batch_norm")) {
    it(`batch norm kernels: ${name}`, () => {
      const shape = c.inputs.input.shape;
      const [n, ch] = shape;
      const inner = shape.slice(2).reduce((a, b) => a * b, 1);
      const { training, momentum, eps } = c.args as { training: boolean; momentum: number; eps: number };
      const x = f64(c.inputs.input), weight = c.inputs.weight ? f64(c.inputs.weight) : null, bias = c.inputs.bias ? f64(c.inputs.bias) : null;
      const runningMean = f64(c.inputs.running_mean), runningVar = f64(c.inputs.running_var);
      const out = new Float64Array(x.length), mean = new Float64Array(ch), invstd = new Float64Array(ch);
      if (training) {
        const variance = new Float64Array(ch);
        batchNormForwardTraining(x, n, ch, inner, weight, bias, eps, out, mean, invstd, variance);
        batchNormUpdateRunning(runningMean, runningVar, mean, variance, ch, n * inner, momentum);
      } else {
        batchNormForwardEval(x, n, ch, inner, runningMean, runningVar, weight, bias, eps, out);
        runningMean.forEach((m, i) => { mean[i] = m; invstd[i] = 1 / Math.sqrt(runningVar[i] + eps); });
      }
      expectMatches(out, c.output, "output");
      expectMatches(runningMean, c.running_mean_after!, "running mean");
      expectMatches(runningVar, c.running_var_after!, "running var");
      const gx = new Float64Array(x.length), gw = new Float64Array(ch), gb = new Float64Array(ch);
      batchNormBackward(f64(c.upstream), x, n, ch, inner, weight, mean, invstd, training, gx, gw, gb);
      expectMatches(gx, c.grads.input, "grad input");
      if (weight) expectMatches(gw, c.grads.weight, "grad weight");
      if (bias) expectMatches(gb, c.grads.bias, "grad bias");
    });
  }

  for (const [name, c] of cases.filter(([, c]) => c.op === "layer_norm")) {
    it(`layer norm kernels: ${name}`, () => {
      const cols = (c.args.normalized_shape as number[]).reduce((a, b) => a * b, 1);
      const x = f64(c.inputs.input), rows = x.length / cols;
      const weight = c.inputs.weight ? f64(c.inputs.weight) : null, bias = c.inputs.bias ? f64(c.inputs.bias) : null;
      const out = new Float64Array(x.length), mean = new Float64Array(rows), invstd = new Float64Array(rows);
      layerNormForward(x, rows, cols, weight, bias, c.args.eps as number, out, mean, invstd);
      expectMatches(out, c.output, "output");
      const gx = new Float64Array(x.length), gw = new Float64Array(cols), gb = new Float64Array(cols);
      layerNormBackward(f64(c.upstream), x, rows, cols, weight, mean, invstd, gx, gw, gb);
      expectMatches(gx, c.grads.input, "grad input");
      if (weight) expectMatches(gw, c.grads.weight, "grad weight");
      if (bias) expectMatches(gb, c.grads.bias, "grad bias");
    });
  }
});
