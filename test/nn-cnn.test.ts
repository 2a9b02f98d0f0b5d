// The convolutional layers of @tapegrad/nn: shapes, PyTorch's initialisation and names, BatchNorm's modes and
// running statistics (num_batches_tracked as an int64 buffer in checkpoints), LayerNorm, train()/eval()
// reaching nested Dropout and BatchNorm, F's re-exports, and Sequential running ReLU → MaxPool2d as
// MaxPool2d → ReLU with the same bits.
import { describe, expect, it } from "vitest";
import { Generator, grad, gradgradcheck, manualSeed, randn, tensor, zeros, type Tensor } from "@tapegrad/autograd";
import { F, StateDictError, deserialize, nn, serialize } from "@tapegrad/nn";

const stats = (t: Tensor) => {
  const d = Array.from(t.data);
  const mean = d.reduce((a, b) => a + b, 0) / d.length;
  return { min: Math.min(...d), max: Math.max(...d), mean, std: Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / d.length) };
};

describe("Conv2d and pooling layers", () => {
  it("Conv2d: PyTorch's parameter shapes and default init U(±1/√fanIn), fanIn = inChannels/groups·kH·kW", () => {
    manualSeed(0);
    const conv = new nn.Conv2d(16, 32, [3, 5], { groups: 2, padding: [1, 2] });
    expect(conv.weight.shape).toEqual([32, 8, 3, 5]);
    expect(conv.bias!.shape).toEqual([32]);
    expect([...conv.namedParameters()].map(([n]) => n)).toEqual(["weight", "bias"]);
    const bound = 1 / Math.sqrt(8 * 15);
    const w = stats(conv.weight);
    expect(w.max).toBeLessThanOrEqual(bound);
    expect(w.min).toBeGreaterThanOrEqual(-bound);
    expect(w.std).toBeCloseTo(bound / Math.sqrt(3), 2); // a uniform's std
    expect(Math.max(...Array.from(conv.bias!.data).map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(conv.forward(zeros([2, 16, 7, 9])).shape).toEqual([2, 32, 7, 9]);
    expect(conv.toString()).toBe("Conv2d(16, 32, kernelSize=[3, 5], stride=[1, 1], padding=[1, 2], groups=2)");
    expect(new nn.Conv2d(1, 2, 3, { bias: false }).bias).toBeNull();
  });

  it("Conv2d: bad arguments are refused when the layer is made", () => {
    expect(() => new nn.Conv2d(3, 4, 3, { groups: 2 })).toThrow("Conv2d: inChannels 3 must be divisible by groups 2");
    expect(() => new nn.Conv2d(2, 3, 3, { groups: 2 })).toThrow("Conv2d: outChannels 3 must be divisible by groups 2");
    expect(() => new nn.Conv2d(1, 4, 3, { padding: "same", stride: 2 })).toThrow(/Conv2d: padding "same" is not supported for strided convolutions/);
    expect(() => new nn.Conv2d(1, 4, 0)).toThrow(/Conv2d: kernelSize must be an integer ≥ 1/);
    expect(() => new nn.Conv2d(0, 4, 3)).toThrow("Conv2d: inChannels must be a positive integer, got 0");
  });

  it("MaxPool2d, AvgPool2d and AdaptiveAvgPool2d: the ops as layers", () => {
    const x = randn([2, 3, 8, 8]);
    expect(new nn.MaxPool2d(2).forward(x).toArray()).toEqual(F.maxPool2d(x, 2).toArray());
    expect(new nn.AvgPool2d(3, { stride: 2, padding: 1 }).forward(x).shape).toEqual([2, 3, 4, 4]);
    expect(new nn.AdaptiveAvgPool2d([2, 1]).forward(x).shape).toEqual([2, 3, 2, 1]);
    expect(new nn.MaxPool2d(2).toString()).toBe("MaxPool2d(kernelSize=2, stride=2, padding=0, dilation=1, ceilMode=false)");
  });
});

describe("BatchNorm and LayerNorm layers", () => {
  it("BatchNorm2d: weight 1, bias 0 and the buffers running_mean, running_var, num_batches_tracked", () => {
    const bn = new nn.BatchNorm2d(3);
    expect(Object.keys(bn.stateDict())).toEqual(["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]);
    expect(bn.weight!.toArray()).toEqual([1, 1, 1]);
    expect(bn.bias!.toArray()).toEqual([0, 0, 0]);
    expect(bn.runningVar!.toArray()).toEqual([1, 1, 1]);
    expect(bn.numBatchesTracked).toBe(0);
    expect(bn.parameters().length).toBe(2);
  });

  it("BatchNorm2d: training counts batches and moves the running statistics; eval normalises by them and changes nothing", () => {
    const bn = new nn.BatchNorm2d(2);
    const x = randn([4, 2, 3, 3], { dtype: "float32" }).mul(3).add(1);
    const y = bn.forward(x);
    expect(bn.numBatchesTracked).toBe(1);
    const xm = x.mean([0, 2, 3]);
    const unbiased = x.sub(xm.reshape([1, 2, 1, 1])).square().sum([0, 2, 3]).div(4 * 9 - 1);
    bn.runningMean!.data.forEach((v, c) => expect(v).toBeCloseTo(0.1 * xm.data[c], 5));
    bn.runningVar!.data.forEach((v, c) => expect(v).toBeCloseTo(0.9 + 0.1 * unbiased.data[c], 4));
    for (const m of y.mean([0, 2, 3]).data) expect(Math.abs(m)).toBeLessThan(1e-5);
    bn.eval();
    const before = bn.runningMean!.toArray();
    const z = bn.forward(x);
    expect(bn.numBatchesTracked).toBe(1);
    expect(bn.runningMean!.toArray()).toEqual(before);
    const expected = x.sub(bn.runningMean!.reshape([1, 2, 1, 1])).div(bn.runningVar!.add(1e-5).sqrt().reshape([1, 2, 1, 1]));
    z.data.forEach((v, i) => expect(v).toBeCloseTo(expected.data[i], 5));
  });

  it("BatchNorm1d: momentum null is a cumulative average; without trackRunningStats the batch always normalises", () => {
    const bn = new nn.BatchNorm1d(2, { momentum: null, affine: false });
    const a = tensor([[1, 10], [3, 30]]), b = tensor([[5, 50], [7, 70]]);
    bn.forward(a);
    bn.forward(b);
    expect(bn.numBatchesTracked).toBe(2);
    expect(bn.runningMean!.toArray()).toEqual([4, 40]); // the mean of the two batch means
    const free = new nn.BatchNorm1d(2, { trackRunningStats: false }).eval();
    expect(Object.keys(free.stateDict())).toEqual(["weight", "bias"]);
    const y = free.forward(a);
    expect(y.toArray()).toEqual(new nn.BatchNorm1d(2, { trackRunningStats: false }).forward(a).toArray());
    expect(() => new nn.BatchNorm2d(2).forward(zeros([2, 2, 3]))).toThrow("BatchNorm2d: expected a 4-D [N, C, H, W] input, got [2, 2, 3]");
    expect(() => new nn.BatchNorm1d(2).forward(zeros([2, 2, 3, 3]))).toThrow("BatchNorm1d: expected a 2-D [N, C] or 3-D [N, C, L] input, got [2, 2, 3, 3]");
  });

  it("LayerNorm: weight 1 and bias 0 of normalizedShape; normalises the trailing axes", () => {
    const ln = new nn.LayerNorm([2, 3]);
    expect(Object.keys(ln.stateDict())).toEqual(["weight", "bias"]);
    const y = ln.forward(randn([4, 2, 3]));
    for (const m of y.mean([1, 2]).data) expect(Math.abs(m)).toBeLessThan(1e-6);
    expect(new nn.LayerNorm(5, { elementwiseAffine: false }).parameters()).toEqual([]);
  });

  it("to('float64') converts the statistics but keeps num_batches_tracked a float64 counter saved as int64", () => {
    const bn = new nn.BatchNorm2d(2).to("float64");
    expect(bn.runningMean!.dtype).toBe("float64");
    const f32 = new nn.BatchNorm2d(2);
    expect(f32.runningMean!.dtype).toBe("float32");
    expect(f32.getBuffer("num_batches_tracked")!.dtype).toBe("float64");
  });
});

describe("checkpoints of layers with integer buffers", () => {
  it("num_batches_tracked is stored as I64 and read back as int64; a state dict round-trips", () => {
    const net = new nn.Sequential(new nn.Conv2d(1, 2, 3), new nn.BatchNorm2d(2));
    net.forward(randn([2, 1, 5, 5]));
    net.forward(randn([2, 1, 5, 5]));
    const bytes = serialize(net.stateDict());
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
    expect(header["1.num_batches_tracked"]).toEqual({ dtype: "I64", shape: [], data_offsets: expect.any(Array) });
    expect(header["1.running_mean"].dtype).toBe("F32");
    const { tensors } = deserialize(bytes);
    expect(tensors["1.num_batches_tracked"]).toEqual({ shape: [], dtype: "int64", data: Float64Array.from([2]) });
    const copy = new nn.Sequential(new nn.Conv2d(1, 2, 3), new nn.BatchNorm2d(2));
    expect(copy.loadStateDict(tensors)).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect((copy.at(1) as nn.BatchNorm2d).numBatchesTracked).toBe(2);
    expect((copy.at(1) as nn.BatchNorm2d).runningVar!.toArray()).toEqual((net.at(1) as nn.BatchNorm2d).runningVar!.toArray());
    // a state dict loads directly too (its counter says int64)
    expect(copy.loadStateDict(net.stateDict())).toEqual({ missingKeys: [], unexpectedKeys: [] });
  });

  it("strict loading refuses a float counter, a non-integer one and an int64 float buffer, naming each key", () => {
    const bn = new nn.BatchNorm1d(2);
    const sd = { ...bn.stateDict() };
    expect(() => bn.loadStateDict({ ...sd, num_batches_tracked: zeros([], { dtype: "float64" }) }))
      .toThrow('dtype mismatch for "num_batches_tracked": checkpoint has float64, the module has int64');
    expect(() => bn.loadStateDict({ ...sd, num_batches_tracked: { shape: [], dtype: "int64", data: Float64Array.from([1.5]) } }))
      .toThrow('"num_batches_tracked" holds non-integer values');
    expect(() => bn.loadStateDict({ ...sd, running_mean: { shape: [2], dtype: "int64", data: new Float64Array(2) } })).toThrow(StateDictError);
  });

  it("an int64 value that is not a safe integer is refused when written and when read", () => {
    expect(() => serialize({ n: { shape: [1], dtype: "int64", data: Float64Array.from([0.5]) } })).toThrow('serialize: tensor "n": int64 value 0.5 at index 0 is not an integer within ±2^53');
    const big = serialize({ n: { shape: [1], dtype: "int64", data: Float64Array.from([1]) } });
    new DataView(big.buffer).setBigInt64(big.length - 8, 2n ** 60n, true);
    expect(() => deserialize(big, "big.safetensors")).toThrow(`big.safetensors: tensor "n": int64 value ${2n ** 60n} at index 0 is beyond ±2^53`);
  });
});

describe("modes", () => {
  it("train() and eval() reach Dropout and BatchNorm inside nested containers", () => {
    const inner = new nn.Sequential(new nn.Dropout(0.5), new nn.BatchNorm1d(4));
    const net = new nn.Sequential(new nn.Linear(4, 4), inner, new nn.ModuleList([new nn.Dropout(0.2)]));
    net.eval();
    expect([...net.modules()].every((m) => !m.training)).toBe(true);
    const x = randn([3, 4]);
    expect(inner.at(0).forward(x)).toBe(x);
    net.train();
    expect([...net.modules()].every((m) => m.training)).toBe(true);
    expect(inner.at(0).forward(x)).not.toBe(x);
  });

  it("Dropout takes its masks from the given generator", () => {
    const x = randn([50]);
    const a = new nn.Dropout(0.5, { generator: new Generator(3) }).forward(x);
    const b = new nn.Dropout(0.5, { generator: new Generator(3) }).forward(x);
    expect(a.toArray()).toEqual(b.toArray());
  });
});

describe("Sequential: ReLU then MaxPool2d", () => {
  /** The layers one after another, as written (Sequential's forward may reorder them). */
  const inOrder = (layers: nn.Module[], x: Tensor): Tensor => layers.reduce((h, m) => m.forward(h), x);
  const bits = (t: Tensor): number[] => Array.from(new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4));
  // many ties, zeros of both signs, windows without a positive element, a few NaN
  const VALUES = [-2, -1, -0, 0, 0.5, 1, 2, 2, -0.5, Number.NaN];

  const cases: [string, nn.MaxPool2dLayerOptions & { kernelSize: number }, number, number][] = [
    ["2 × 2", { kernelSize: 2 }, 8, 8],
    ["3 × 3, stride 2, padding 1", { kernelSize: 3, stride: 2, padding: 1 }, 9, 7],
    ["2 × 2, ceilMode, odd sizes", { kernelSize: 2, ceilMode: true }, 7, 5],
    ["3 × 3, stride 1 (overlapping windows)", { kernelSize: 3, stride: 1 }, 6, 6],
    ["2 × 2, dilation 2 (not reordered)", { kernelSize: 2, dilation: 2 }, 8, 8],
  ];
  for (const dtype of ["float32", "float64"] as const) {
    for (const [name, { kernelSize, ...options }, h, w] of cases) {
      it(`${dtype}, ${name}: the same output and input gradient, bit for bit, as the layers in order`, () => {
        const layers = [new nn.ReLU(), new nn.MaxPool2d(kernelSize, options), new nn.Flatten()];
        const model = new nn.Sequential(...layers);
        const gen = new Generator(7);
        const pick = (): number => VALUES[gen.nextUint32() % VALUES.length];
        const shape = [3, 4, h, w];
        const n = shape.reduce((a, b) => a * b, 1);
        const x1 = tensor(Array.from({ length: n }, pick), { shape, dtype, requiresGrad: true });
        const x2 = tensor(x1.data.slice(), { shape, dtype, requiresGrad: true });
        const y1 = model.forward(x1), y2 = inOrder(layers, x2);
        expect(y1.gradFn!.inputs[0].gradFn!.op).toBe(options.dilation ? "maxPool2d" : "relu");
        expect(bits(y1)).toEqual(bits(y2));
        const g = tensor(Array.from({ length: y1.size }, pick), { shape: y1.shape, dtype });
        y1.backward(g);
        y2.backward(g);
        expect(bits(x1.grad!)).toEqual(bits(x2.grad!));
      });
    }
  }

  it("a subclass of ReLU or MaxPool2d keeps the written order", () => {
    class Shifted extends nn.ReLU {
      override forward(x: Tensor): Tensor {
        return super.forward(x.sub(1));
      }
    }
    const x = tensor([[[[0.5, 3], [2, 1]]]]);
    expect(Array.from(new nn.Sequential(new Shifted(), new nn.MaxPool2d(2)).forward(x).data)).toEqual([2]);
  });
});

describe("Sequential: Sigmoid then AvgPool2d", () => {
  const inOrder = (layers: nn.Module[], x: Tensor): Tensor => layers.reduce((h, m) => m.forward(h), x);
  /** Element by element with Object.is: +0 and -0 differ, any NaN equals any NaN (payloads may differ). */
  const same = (a: Tensor, b: Tensor): boolean => a.size === b.size && Array.from(a.data).every((v, i) => Object.is(v, b.data[i]));
  // saturating values (s (1 - s) = 0), zeros of both signs, NaN and ±Infinity
  const VALUES = [-2, -1, -0, 0, 0.5, 1, 3, 40, -40, 1e-3, Number.NaN, Infinity, -Infinity];

  const cases: [string, nn.AvgPool2dLayerOptions & { kernelSize: number }, number, number][] = [
    ["2 × 2 (LeNet)", { kernelSize: 2 }, 28, 28],
    ["2 × 2, rows of 5 windows", { kernelSize: 2 }, 10, 10],
    ["2 × 2, odd sizes", { kernelSize: 2 }, 7, 9],
    ["3 × 3, stride 2, padding 1, countIncludePad false", { kernelSize: 3, stride: 2, padding: 1, countIncludePad: false }, 9, 7],
    ["2 × 2, ceilMode", { kernelSize: 2, ceilMode: true }, 7, 5],
  ];
  for (const dtype of ["float32", "float64"] as const) {
    for (const [name, { kernelSize, ...options }, h, w] of cases) {
      it(`${dtype}, ${name}: one sigmoidAvgPool2d op with the layers' output and input gradient, bit for bit`, () => {
        const layers = [new nn.Sigmoid(), new nn.AvgPool2d(kernelSize, options), new nn.Flatten()];
        const model = new nn.Sequential(...layers);
        const gen = new Generator(11);
        const pick = (): number => VALUES[gen.nextUint32() % VALUES.length] * (1 + (gen.nextUint32() % 7) / 8);
        const shape = [3, 4, h, w];
        const n = shape.reduce((a, b) => a * b, 1);
        const x1 = tensor(Array.from({ length: n }, pick), { shape, dtype, requiresGrad: true });
        const x2 = tensor(x1.data.slice(), { shape, dtype, requiresGrad: true });
        const y1 = model.forward(x1), y2 = inOrder(layers, x2);
        expect(y1.gradFn!.inputs[0].gradFn!.op).toBe("sigmoidAvgPool2d");
        expect(same(y1, y2)).toBe(true);
        const g = tensor(Array.from({ length: y1.size }, pick), { shape: y1.shape, dtype });
        y1.backward(g);
        y2.backward(g);
        expect(same(x1.grad!, x2.grad!)).toBe(true);
      });
    }
  }

  it("second order (createGraph): the layers' gradient bit for bit, their gradient of the gradient to rounding, and gradgradcheck holds", () => {
    const layers = [new nn.Sigmoid(), new nn.AvgPool2d(2)];
    const model = new nn.Sequential(...layers);
    const x0 = randn([2, 3, 6, 6], { dtype: "float64" });
    const run = (f: (x: Tensor) => Tensor) => {
      const x = tensor(x0.data.slice(), { shape: x0.shape, dtype: "float64", requiresGrad: true });
      const y = f(x);
      const [gx] = grad(y.mul(y).sum(), [x], { createGraph: true });
      const [ggx] = grad(gx.mul(gx).sum(), [x]);
      return { op: y.gradFn!.op, gx, ggx };
    };
    const fused = run((x) => model.forward(x)), pair = run((x) => inOrder(layers, x));
    expect(fused.op).toBe("sigmoidAvgPool2d");
    expect(same(fused.gx, pair.gx)).toBe(true);
    // NOTE: the fused op's second-order terms reach x along two paths (its own node and the recorded sigmoid)
    // summed at x, where the pair sums them at sigmoid's output first: the same value up to rounding
    Array.from(fused.ggx.data).forEach((v, i) => expect(v).toBeCloseTo(pair.ggx.data[i], 12));
    expect(gradgradcheck((x) => model.forward(x), [tensor(x0.data.slice(0, 36), { shape: [1, 1, 6, 6], dtype: "float64", requiresGrad: true })])).toBe(true);
  });

  it("a subclass of Sigmoid or AvgPool2d keeps the written order", () => {
    class Shifted extends nn.Sigmoid {
      override forward(x: Tensor): Tensor {
        return super.forward(x.sub(1));
      }
    }
    const x = tensor([[[[0.5, 3], [2, 1]]]], { requiresGrad: true });
    const y = new nn.Sequential(new Shifted(), new nn.AvgPool2d(2)).forward(x);
    expect(y.gradFn!.op).toBe("avgPool2d");
  });
});
