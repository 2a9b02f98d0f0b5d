// The convolutional-network ops beyond the PyTorch fixture (torch-reference-cnn.test.ts) and the generated
// gradient properties: float32, unbatched inputs, dtype promotion, errors naming op and shapes, batch norm's
// running statistics and modes, dropout's generator, and the buffer pool across training steps.
import { describe, expect, it } from "vitest";
import {
  Generator, ShapeError, ValueError, adaptiveAvgPool2d, avgPool2d, batchNorm, bufferPoolSize, cat, conv2d, dropout, grad,
  layerNorm, maxPool2d, noGrad, ones, pad, randn, stack, tensor, zeros, type Tensor,
} from "../packages/autograd/src/index.ts";

const f64 = (shape: number[], seed: number, requiresGrad = true): Tensor => {
  const t = randn(shape, { dtype: "float64", generator: new Generator(seed) });
  t.requiresGrad = requiresGrad;
  return t;
};
const maxDiff = (a: Tensor, b: Tensor): number => {
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs(a.data[i] - b.data[i]));
  return m;
};

describe("conv2d", () => {
  it("conv2d: float32 gives float64's values and float32 gradients", () => {
    const x = f64([2, 3, 6, 5], 1), w = f64([4, 3, 3, 3], 2), b = f64([4], 3);
    const y = conv2d(x, w, b, { padding: 1 });
    const [x32, w32, b32] = [x, w, b].map((t) => t.detach().to("float32").requiresGrad_());
    const y32 = conv2d(x32, w32, b32, { padding: 1 });
    expect(y32.dtype).toBe("float32");
    expect(maxDiff(y32, y)).toBeLessThan(1e-4);
    y.sum().backward();
    y32.sum().backward();
    for (const [t, t32] of [[x, x32], [w, w32], [b, b32]]) {
      expect(t32.grad!.dtype).toBe("float32");
      expect(maxDiff(t32.grad!, t.grad!)).toBeLessThan(1e-3);
    }
  });

  it("conv2d: an unbatched [C, H, W] input is one image", () => {
    const x = f64([3, 5, 5], 4, false), w = f64([2, 3, 3, 3], 5, false);
    const y = conv2d(x, w, null, { stride: 2 });
    expect(y.shape).toEqual([2, 2, 2]);
    expect(y.toArray()).toEqual(conv2d(x.reshape([1, 3, 5, 5]), w, null, { stride: 2 }).reshape([2, 2, 2]).toArray());
  });

  it("conv2d: padding 'same' keeps the size, 'valid' is no padding; a float32 operand promotes to float64", () => {
    const x = f64([1, 2, 7, 6], 6, false), w = f64([3, 2, 4, 3], 7, false);
    expect(conv2d(x, w, null, { padding: "same", dilation: [1, 2] }).shape).toEqual([1, 3, 7, 6]);
    expect(conv2d(x, w, null, { padding: "valid" }).shape).toEqual([1, 3, 4, 4]);
    expect(conv2d(x.to("float32"), w).dtype).toBe("float64");
  });

  it("conv2d: errors name the op and the shapes", () => {
    const x = zeros([2, 3, 8, 8]);
    expect(() => conv2d(x, zeros([4, 2, 3, 3]))).toThrow(/conv2d: given groups=1, weight \[4, 2, 3, 3\] expects 2 input channels, but the input \[2, 3, 8, 8\] has 3/);
    expect(() => conv2d(x, zeros([4, 3, 3, 3]), zeros([5]))).toThrow("conv2d: bias [5] does not match weight [4, 3, 3, 3]: expected [4]");
    expect(() => conv2d(x, zeros([4, 3, 3, 3]), null, { padding: "same", stride: 2 })).toThrow(/conv2d: padding "same" is not supported for strided convolutions/);
    expect(() => conv2d(zeros([3, 8]), zeros([4, 3, 3, 3]))).toThrow(ShapeError);
    expect(() => conv2d(zeros([3, 8]), zeros([4, 3, 3, 3]))).toThrow("conv2d: expected a 3-D [C, H, W] or 4-D [N, C, H, W] input, got [3, 8] (weight [4, 3, 3, 3])");
    expect(() => conv2d(zeros([1, 3, 2, 2]), zeros([4, 3, 3, 3]))).toThrow(/conv2d: the padded input \(2 × 2\) is smaller than the dilated kernel \(3 × 3\)/);
    expect(() => conv2d(x, zeros([4, 3, 3, 3]), null, { stride: 0 })).toThrow(/conv2d: stride must be an integer ≥ 1/);
  });

  it("conv2d: a Hessian-vector product through two convolutions (createGraph) matches the float64 central difference", () => {
    const x = f64([1, 2, 5, 5], 8), w1 = f64([3, 2, 3, 3], 9), w2 = f64([2, 3, 3, 3], 10);
    const loss = (wt: Tensor) => conv2d(conv2d(x, wt, null, { padding: 1 }).tanh(), w2, null, { stride: 2 }).square().sum();
    const [g] = grad(loss(w1), [w1], { createGraph: true });
    const v = f64([3, 2, 3, 3], 11, false);
    const [hv] = grad(g!.mul(v).sum(), [w1]);
    const eps = 1e-5;
    const gradAt = (wt: Tensor) => grad(loss(wt), [wt])[0]!;
    const plus = gradAt(w1.detach().add(v.mul(eps)).requiresGrad_()), minus = gradAt(w1.detach().sub(v.mul(eps)).requiresGrad_());
    const numeric = plus.sub(minus).div(2 * eps);
    expect(maxDiff(hv!, numeric)).toBeLessThan(1e-6 * (1 + Math.max(...numeric.data.map(Math.abs))));
  });
});

describe("pooling", () => {
  it("maxPool2d: the gradient goes to each window's maximum; an unbatched input works", () => {
    const x = tensor([[[1, 5, 2, 0], [3, 4, 8, 7], [0, 1, 2, 3], [9, 2, 1, 6]]], { requiresGrad: true });
    const y = maxPool2d(x, 2);
    expect(y.toArray()).toEqual([[[5, 8], [9, 6]]]);
    y.backward(tensor([[[1, 2], [3, 4]]]));
    expect(x.grad!.toArray()).toEqual([[[0, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0], [3, 0, 0, 4]]]);
  });

  it("maxPool2d: overlapping windows add their gradients; ceil mode adds a partial window", () => {
    const x = tensor([[[[0, 0, 0], [0, 9, 0], [0, 0, 0]]]], { requiresGrad: true });
    maxPool2d(x, 2, { stride: 1 }).sum().backward();
    expect(x.grad!.data[4]).toBe(4);
    expect(maxPool2d(zeros([1, 1, 5, 5]), 2, { ceilMode: true }).shape).toEqual([1, 1, 3, 3]);
    expect(maxPool2d(zeros([1, 1, 5, 5]), 2).shape).toEqual([1, 1, 2, 2]);
  });

  it("avgPool2d: countIncludePad false divides by the input elements of the window", () => {
    const x = ones([1, 1, 2, 2]);
    expect(avgPool2d(x, 2, { stride: 1, padding: 1 }).toArray()).toEqual([[[[0.25, 0.5, 0.25], [0.5, 1, 0.5], [0.25, 0.5, 0.25]]]]);
    expect(avgPool2d(x, 2, { stride: 1, padding: 1, countIncludePad: false }).toArray()).toEqual([[[[1, 1, 1], [1, 1, 1], [1, 1, 1]]]]);
  });

  it("adaptiveAvgPool2d: size 1 is the spatial mean; null keeps an axis", () => {
    const x = f64([2, 3, 5, 4], 12, false);
    expect(maxDiff(adaptiveAvgPool2d(x, 1), x.mean([2, 3], true))).toBeLessThan(1e-15);
    expect(adaptiveAvgPool2d(x, [null, 2]).shape).toEqual([2, 3, 5, 2]);
    expect(adaptiveAvgPool2d(x, [5, 4]).toArray()).toEqual(x.toArray());
  });

  it("pooling errors name the op and the shapes", () => {
    expect(() => maxPool2d(zeros([1, 1, 4, 4]), 2, { padding: 2 })).toThrow(/maxPool2d: padding should be at most half of the kernel size/);
    expect(() => avgPool2d(zeros([4, 4]), 2)).toThrow("avgPool2d: expected a 3-D [C, H, W] or 4-D [N, C, H, W] input, got [4, 4]");
    expect(() => maxPool2d(zeros([1, 1, 2, 2]), 3)).toThrow(/maxPool2d: the input \[1, 1, 2, 2\] is too small for kernelSize \[3, 3\]/);
    expect(() => adaptiveAvgPool2d(zeros([1, 1, 2, 2]), 0)).toThrow(/adaptiveAvgPool2d: outputSize must be an integer ≥ 1/);
  });
});

describe("batchNorm and layerNorm", () => {
  it("batchNorm: training normalises with the batch statistics and moves the running ones by PyTorch's rule (unbiased variance)", () => {
    const x = tensor([[1], [3], [5], [7]], { dtype: "float64" }); // one channel: mean 4, biased var 5, unbiased 20/3
    const rm = zeros([1], { dtype: "float64" }), rv = ones([1], { dtype: "float64" });
    const y = batchNorm(x, rm, rv, { training: true, momentum: 0.5, eps: 0 });
    expect(y.data[0]).toBeCloseTo(-3 / Math.sqrt(5), 12);
    expect(rm.data[0]).toBeCloseTo(2, 12);
    expect(rv.data[0]).toBeCloseTo(0.5 + 0.5 * (20 / 3), 12);
    expect([rm.version, rv.version]).toEqual([1, 1]);
    // evaluation uses the running statistics and leaves them alone
    const z = batchNorm(x, rm, rv, { eps: 0 });
    expect(z.data[1]).toBeCloseTo((3 - 2) / Math.sqrt(0.5 + 0.5 * (20 / 3)), 12);
    expect([rm.version, rv.version]).toEqual([1, 1]);
  });

  it("batchNorm: the recorded backward (createGraph) gives the fused backward's gradients, in training and evaluation", () => {
    for (const training of [true, false]) {
      const x = f64([3, 2, 2, 3], 13), w = f64([2], 14), b = f64([2], 15);
      const rm = f64([2], 16, false), rv = f64([2], 17, false).abs();
      const up = f64([3, 2, 2, 3], 18, false);
      const run = (createGraph: boolean) => grad(batchNorm(x, rm.clone(), rv.clone(), { weight: w, bias: b, training }), [x, w, b], { gradOutput: up, createGraph });
      const fused = run(false), composed = run(true);
      fused.forEach((g, i) => expect(maxDiff(g!, composed[i]!)).toBeLessThan(1e-12));
    }
  });

  it("batchNorm: errors name the op and the shapes", () => {
    expect(() => batchNorm(zeros([1, 3]), null, null, { training: true })).toThrow("batchNorm: expected more than 1 value per channel when training, got input of shape [1, 3]");
    expect(() => batchNorm(zeros([4, 3]), zeros([2]), ones([2]), { training: true })).toThrow("batchNorm: runningMean [2] does not match the 3 channels of input [4, 3]: expected [3]");
    expect(() => batchNorm(zeros([4, 3]), null, null)).toThrow(ValueError);
    expect(() => batchNorm(zeros([4]), null, null, { training: true })).toThrow(ShapeError);
  });

  it("layerNorm: each slice has mean 0 and variance 1; the recorded backward equals the fused one", () => {
    const x = f64([2, 3, 4], 19), w = f64([3, 4], 20), b = f64([3, 4], 21);
    const y = layerNorm(x.detach(), [3, 4], { eps: 0 });
    const row = y.reshape([2, 12]);
    for (const m of row.mean(1).data) expect(Math.abs(m)).toBeLessThan(1e-14);
    for (const v of row.square().mean(1).data) expect(v).toBeCloseTo(1, 12);
    const up = f64([2, 3, 4], 22, false);
    const run = (createGraph: boolean) => grad(layerNorm(x, [3, 4], { weight: w, bias: b }), [x, w, b], { gradOutput: up, createGraph });
    const fused = run(false), composed = run(true);
    fused.forEach((g, i) => expect(maxDiff(g!, composed[i]!)).toBeLessThan(1e-12));
    expect(() => layerNorm(x, [4, 3])).toThrow("layerNorm: normalizedShape [4, 3] must be the last dimensions of input [2, 3, 4] (and not empty)");
    expect(() => layerNorm(x, 4, { weight: zeros([3]) })).toThrow("layerNorm: weight [3] does not match normalizedShape [4]");
  });
});

describe("pad, cat, stack, dropout", () => {
  it("pad: pairs from the last axis, a fill value, negative pads crop", () => {
    const x = tensor([[1, 2], [3, 4]], { requiresGrad: true });
    expect(pad(x, [1, 0], 9).toArray()).toEqual([[9, 1, 2], [9, 3, 4]]);
    expect(pad(x, [0, 0, 1, 1]).toArray()).toEqual([[0, 0], [1, 2], [3, 4], [0, 0]]);
    const cropped = pad(x, [-1, 1]);
    expect(cropped.toArray()).toEqual([[2, 0], [4, 0]]);
    cropped.backward(tensor([[1, 2], [3, 4]]));
    expect(x.grad!.toArray()).toEqual([[0, 1], [0, 3]]);
    expect(() => pad(x, [1])).toThrow(/pad: pads must have an even length/);
    expect(() => pad(x, [0, 0, 0, 0, 1, 1])).toThrow("pad: 3 (before, after) pairs given for a tensor of rank 2 [2, 2]");
    expect(() => pad(x, [-2, -1])).toThrow("pad: padding [-2,-1] makes axis 1 of [2, 2] negative (-1)");
  });

  it("cat and stack: values, gradients split back, dtype promotion, shape errors", () => {
    const a = tensor([[1, 2]], { requiresGrad: true }), b = tensor([[3, 4], [5, 6]], { dtype: "float64", requiresGrad: true });
    const c = cat([a, b]);
    expect(c.dtype).toBe("float64");
    expect(c.toArray()).toEqual([[1, 2], [3, 4], [5, 6]]);
    c.backward(tensor([[1, 2], [3, 4], [5, 6]], { dtype: "float64" }));
    expect(a.grad!.toArray()).toEqual([[1, 2]]);
    expect(a.grad!.dtype).toBe("float32");
    expect(b.grad!.toArray()).toEqual([[3, 4], [5, 6]]);
    expect(stack([tensor([1, 2]), tensor([3, 4])], -1).toArray()).toEqual([[1, 3], [2, 4]]);
    expect(() => cat([a, zeros([2, 3])])).toThrow("cat: tensor 1 [2, 3] does not match tensor 0 [1, 2] in every axis but 0");
    expect(() => stack([a, b])).toThrow("stack: expects each tensor to be equal size, but got [1, 2] at entry 0 and [2, 2] at entry 1");
    expect(() => cat([])).toThrow("cat: expected a non-empty list of tensors");
  });

  it("dropout: a seeded generator repeats the mask; kept units are scaled by 1/(1 − p); eval and p = 0 are the identity", () => {
    const x = ones([1000]);
    const a = dropout(x, 0.3, true, { generator: new Generator(5) }), b = dropout(x, 0.3, true, { generator: new Generator(5) });
    expect(a.toArray()).toEqual(b.toArray());
    const kept = a.data.filter((v) => v !== 0);
    expect(kept.every((v) => Math.abs(v - 1 / 0.7) < 1e-6)).toBe(true);
    expect(kept.length).toBeGreaterThan(620);
    expect(kept.length).toBeLessThan(780);
    expect(dropout(x, 0.3, false)).toBe(x);
    expect(dropout(x, 0)).toBe(x);
    expect(dropout(x, 1).data.every((v) => v === 0)).toBe(true);
    expect(() => dropout(x, 1.5)).toThrow("dropout: probability must be in [0, 1], got 1.5");
  });
});

describe("memory", () => {
  it("a conv net's training steps reuse the buffer pool: it does not grow after the first steps", () => {
    const x = randn([16, 1, 12, 12]);
    const w1 = randn([8, 1, 3, 3]).mul(0.3).requiresGrad_(), w2 = randn([8, 8, 3, 3]).mul(0.1).requiresGrad_();
    const rm = zeros([8]), rv = ones([8]);
    const step = () => {
      const h = maxPool2d(batchNorm(conv2d(x, w1, null, { padding: 1 }), rm, rv, { training: true }).relu(), 2);
      const loss = avgPool2d(conv2d(h, w2, null, { padding: 1 }), 2).square().mean();
      loss.backward();
      noGrad(() => {
        for (const w of [w1, w2]) {
          w.data.set(w.sub(w.grad!.mul(0.01)).data);
          w.zeroGrad({ recycle: true });
        }
      });
    };
    for (let i = 0; i < 5; i++) step();
    const after5 = bufferPoolSize();
    expect(after5.buffers).toBeGreaterThan(0);
    for (let i = 0; i < 40; i++) step();
    expect(bufferPoolSize().bytes).toBeLessThanOrEqual(after5.bytes);
  });
});
