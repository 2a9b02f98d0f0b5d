/**
 * The buffer pool (memory.ts) and the two places that feed it: backward recycles the gradients it made and
 * consumed within one pass, and zeroGrad({ recycle: true }) (the optimizers' zeroGrad) recycles a leaf's
 * gradient that backward allocated. A plain backward also donates a dead incoming gradient to the node's
 * backward (relu's writes its result over it), and frees a Sequential's hidden outputs (releaseWithGraph) and
 * max pooling's indices with the graph. A recycled buffer that something could still reach would show up as a
 * wrong number, so the main property trains random graphs twice, with the pool and without, and wants the
 * same bits.
 */
import { afterEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  Generator, Tensor, defineOp, grad, manualSeed, maxPool2d, noGrad, randn, releaseWithGraph, sigmoidAvgPool2d, tensor,
} from "../packages/autograd/src/index.ts";
import {
  allocate, allocateUnfilled, bufferPoolSize, emptyBufferPool, POOL_MIN_BYTES, POOL_MIN_BYTES_NO_BUFFER, releaseBuffer,
  setBufferPool, setPoolMinBytes,
} from "../packages/autograd/src/memory.ts";
import { nn, optim } from "../packages/nn/src/index.ts";

afterEach(() => {
  setBufferPool(true);
  setPoolMinBytes(POOL_MIN_BYTES);
  emptyBufferPool();
});

/** 72 × 72 float32 = 20 KB: above the pool's 16 KB floor, so every gradient of this size is pooled. */
const N = 72;

describe("buffer pool", () => {
  it("hands a released buffer to the next allocation of its size; allocate zero-fills it", () => {
    emptyBufferPool();
    const a = allocateUnfilled("float32", 8192);
    a.fill(3);
    releaseBuffer(a);
    expect(bufferPoolSize()).toEqual({ bytes: 32768, buffers: 1 });
    const b = allocate("float32", 8192);
    expect(b.buffer).toBe(a.buffer);
    expect(b.every((v) => v === 0)).toBe(true);
    expect(bufferPoolSize().buffers).toBe(0);
    // another size or another dtype of the same byte length does not take a buffer of the wrong length
    releaseBuffer(b);
    expect(allocateUnfilled("float32", 8191).buffer).not.toBe(b.buffer);
    const c = allocateUnfilled("float64", 4096);
    expect(c.buffer).toBe(b.buffer);
    expect(c).toBeInstanceOf(Float64Array);
  });

  it("leaves views, small buffers, a buffer released twice and shared memory to the garbage collector", () => {
    emptyBufferPool();
    const big = new Float32Array(8192);
    releaseBuffer(big.subarray(1)); // a view
    releaseBuffer(new Float32Array(100)); // below the floor
    releaseBuffer(new Float32Array(new SharedArrayBuffer(32768)));
    expect(bufferPoolSize().buffers).toBe(0);
    releaseBuffer(big);
    releaseBuffer(big);
    expect(bufferPoolSize().buffers).toBe(1);
  });

  it("keeps at most 8 buffers of one size, and none while turned off", () => {
    emptyBufferPool();
    for (let i = 0; i < 12; i++) releaseBuffer(new Float32Array(8192));
    expect(bufferPoolSize().buffers).toBe(8);
    setBufferPool(false);
    expect(bufferPoolSize().buffers).toBe(0);
    releaseBuffer(new Float32Array(8192));
    expect(bufferPoolSize().buffers).toBe(0);
  });
});

/** A random program over [N, N] tensors: each step applies one op to earlier values (any may be reused). */
type Step =
  | { op: "add" | "sub" | "mul" | "matmul"; a: number; b: number }
  | { op: "relu" | "neg" | "tanh" | "transpose" | "viewRoundTrip" | "rowBias" | "colSum"; a: number };

const stepArb = (index: number): fc.Arbitrary<Step> => {
  const earlier = fc.nat({ max: index + 2 }); // leaves 0-2, then the results so far
  return fc.oneof(
    fc.record({ op: fc.constantFrom("add" as const, "sub" as const, "mul" as const, "matmul" as const), a: earlier, b: earlier }),
    fc.record({ op: fc.constantFrom("relu" as const, "neg" as const, "tanh" as const, "transpose" as const, "viewRoundTrip" as const, "rowBias" as const, "colSum" as const), a: earlier }),
  );
};
const programArb = fc.integer({ min: 2, max: 9 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => stepArb(i))));

function run(program: Step[], leaves: Tensor[], bias: Tensor, n = N): Tensor {
  const values: Tensor[] = [...leaves];
  for (const s of program) {
    const a = values[s.a];
    switch (s.op) {
      case "add": values.push(a.add(values[s.b])); break;
      case "sub": values.push(a.sub(values[s.b])); break;
      case "mul": values.push(a.mul(values[s.b])); break;
      case "matmul": values.push(a.matmul(values[s.b]).mul(1 / n)); break;
      case "relu": values.push(a.relu()); break;
      case "neg": values.push(a.neg()); break;
      case "tanh": values.push(a.tanh()); break;
      case "transpose": values.push(a.transpose()); break;
      case "viewRoundTrip": values.push(a.reshape([n * n]).reshape([n, n])); break; // views of one buffer
      case "rowBias": values.push(a.add(bias)); break; // broadcast: the engine sums the gradient back to [N]
      case "colSum": values.push(a.sum(0, true).mul(a)); break;
    }
  }
  // every value reaches the loss, so gradients fan in from everywhere
  return values.slice(3).reduce((acc, v) => acc.add(v.mul(v).mean()), values[values.length - 1].sum());
}

/** Three backward passes with a recycling zeroGrad between them; the gradients copied out. */
function train(program: Step[], seed: number, pooled: boolean, n = N): Float32Array[] {
  setBufferPool(pooled);
  emptyBufferPool();
  const generator = new Generator(seed);
  const leaves = [0, 1, 2].map(() => randn([n, n], { generator }).mul(0.5).detach().requiresGrad_());
  const bias = randn([n], { generator }).requiresGrad_();
  const out: Float32Array[] = [];
  for (let pass = 0; pass < 3; pass++) {
    run(program, leaves, bias, n).backward();
    for (const p of [...leaves, bias]) {
      out.push(p.grad ? (p.grad.data as Float32Array).slice() : new Float32Array(0));
      p.zeroGrad({ recycle: true });
    }
  }
  return out;
}

describe("backward and zeroGrad recycle buffers", () => {
  it("random graphs (fan-out, views, broadcasting, matmul) give the same gradients, bit for bit, with the pool and without", () => {
    fc.assert(fc.property(programArb, fc.nat(), (program, seed) => {
      const without = train(program, seed, false);
      const withPool = train(program, seed, true);
      expect(withPool.length).toBe(without.length);
      for (let i = 0; i < without.length; i++) expect(withPool[i]).toEqual(without[i]);
    }), { numRuns: 20 });
  });

  it("the recycling is real: an MLP step reuses the weight gradient's buffer and the intermediate gradients'", () => {
    const model = new nn.MLP([300, 64, 10]);
    const opt = new optim.SGD(model.parameters(), { lr: 0.01 });
    const x = randn([64, 300], { generator: new Generator(1) });
    const w = model.parameters()[0];
    const buffers = new Set<ArrayBufferLike>();
    for (let step = 0; step < 4; step++) {
      model.forward(x).logSoftmax().pick(new Int32Array(64)).mean().neg().backward();
      buffers.add(w.grad!.data.buffer);
      expect(w.grad!.data.some((v) => v !== 0)).toBe(true); // reading .grad changes nothing
      opt.step();
      opt.zeroGrad();
      // the [64, 64] gradients the backward made and consumed, and W1's gradient, wait in the pool
      expect(bufferPoolSize().buffers).toBeGreaterThanOrEqual(2);
    }
    expect(buffers.size).toBe(1);
  });

  it("zeroGrad without recycle drops the gradient: a kept .grad keeps its values through later passes", () => {
    const w = tensor(new Float32Array(N * N).fill(0.5), { shape: [N, N], requiresGrad: true });
    const x = tensor(new Float32Array(N * N).fill(2), { shape: [N, N] });
    w.mul(x).relu().sum().backward();
    const kept = w.grad!; // the user holds it now
    const before = kept.data.slice();
    w.zeroGrad();
    for (let i = 0; i < 3; i++) {
      w.mul(x.mul(i + 3)).relu().sum().backward();
      w.zeroGrad();
    }
    expect(kept.data).toEqual(before);
    expect(kept.data[0]).toBe(2);
  });

  it("zeroGrad({ recycle: true }) recycles only what backward allocated: a gradient the user set, or one made under createGraph, is dropped untouched", () => {
    const w = tensor(new Float32Array(N * N).fill(0.5), { shape: [N, N], requiresGrad: true });
    const mine = tensor(new Float32Array(N * N).fill(7), { shape: [N, N] });
    w.grad = mine;
    w.zeroGrad({ recycle: true });
    expect(w.grad).toBeNull();
    w.mul(w).sum().backward(undefined, { createGraph: true });
    const higher = w.grad!;
    const higherValues = higher.data.slice();
    w.zeroGrad({ recycle: true });
    for (let i = 0; i < 3; i++) {
      w.mul(3).relu().sum().backward();
      w.zeroGrad({ recycle: true });
    }
    expect(mine.data.every((v) => v === 7)).toBe(true);
    expect(higher.data).toEqual(higherValues);
  });

  it("a gradient a user-defined backward keeps is never recycled", () => {
    const seen: Tensor[] = [];
    const spy = defineOp({
      name: "spy",
      forward: (_ctx, x) => x.mul(1),
      backward: (_ctx, g) => {
        seen.push(g);
        const out = g.mul(2);
        seen.push(out);
        return out;
      },
    });
    const w = tensor(new Float32Array(N * N).fill(1), { shape: [N, N], requiresGrad: true });
    spy(w.mul(3)).mul(w).sum().backward();
    const copies = seen.map((t) => t.data.slice());
    for (let i = 0; i < 3; i++) {
      w.zeroGrad();
      w.mul(5).relu().mul(w).sum().backward();
    }
    seen.forEach((t, i) => expect(t.data).toEqual(copies[i]));
  });
});

describe("a dead incoming gradient is donated to the backward that consumes it", () => {
  const ramp = (scale: number): Tensor =>
    tensor(Float32Array.from({ length: N * N }, (_, i) => ((i % 7) - 3) * scale), { shape: [N, N], requiresGrad: true });

  it("relu's backward writes over its incoming gradient, which becomes the leaf's .grad: nothing is left to pool", () => {
    const w = ramp(1);
    const d = tensor(new Float32Array(N * N).fill(3), { shape: [N, N] });
    const seed = tensor(new Float32Array(N * N).fill(1), { shape: [N, N] }); // the user's: never pooled
    for (let pass = 0; pass < 3; pass++) {
      emptyBufferPool();
      w.relu().mul(d).backward(seed);
      // mul's backward made relu's incoming gradient; relu's backward overwrote it and w adopted it (without
      // the donation relu's result would be a second array and the first would go to the pool)
      expect(bufferPoolSize().buffers).toBe(0);
      expect(Array.from(w.grad!.data.slice(0, 7))).toEqual([0, 0, 0, 0, 3, 3, 3]);
      w.zeroGrad({ recycle: true });
    }
    expect(seed.data.every((v) => v === 1)).toBe(true);
  });

  it("sigmoid's backward writes over its incoming gradient too, with the same values as the recorded ops", () => {
    const w = ramp(0.5);
    const d = tensor(new Float32Array(N * N).fill(3), { shape: [N, N] });
    const y = w.sigmoid();
    const expected = noGrad(() => d.mul(y.detach().mul(tensor(1).sub(y.detach()))));
    emptyBufferPool();
    y.mul(d).backward(tensor(new Float32Array(N * N).fill(1), { shape: [N, N] }));
    expect(bufferPoolSize().buffers).toBe(0);
    expect(Array.from(w.grad!.data)).toEqual(Array.from(expected.data));
  });

  it("one gradient handed to two relus (add's backward) is overwritten by neither while the other still needs it", () => {
    const a = ramp(1), b = ramp(-1);
    a.relu().add(b.relu()).mul(2).sum().backward();
    expect(Array.from(a.grad!.data.slice(0, 7))).toEqual([0, 0, 0, 0, 2, 2, 2]);
    expect(Array.from(b.grad!.data.slice(0, 7))).toEqual([2, 2, 2, 0, 0, 0, 0]);
    expect(a.grad!.data.buffer).not.toBe(b.grad!.data.buffer);
  });

  it("a gradient that also reaches a leaf (y = relu(w) + w) is not overwritten", () => {
    const w = ramp(1);
    w.relu().add(w).mul(2).sum().backward();
    expect(Array.from(w.grad!.data.slice(0, 7))).toEqual([2, 2, 2, 2, 4, 4, 4]);
  });

  it("gradients a user-defined backward sees or returns are never overwritten by a later relu backward", () => {
    const seen: Tensor[] = [];
    const spy = defineOp({
      name: "spy",
      forward: (_ctx, x) => x.mul(1),
      backward: (_ctx, g) => {
        const out = g.mul(2);
        seen.push(g, out);
        return out;
      },
    });
    const w = ramp(1);
    // the inner relu's incoming gradient is what the outer spy's backward returned, and that spy's incoming
    // one is what the outer relu's backward wrote over its own
    spy(w.mul(3).relu()).relu().mul(spy(w)).sum().backward();
    const copies = seen.map((t) => t.data.slice());
    expect(copies.length).toBe(4);
    for (let i = 0; i < 2; i++) {
      w.zeroGrad({ recycle: true });
      w.mul(5).relu().mul(w).relu().sum().backward();
    }
    seen.forEach((t, i) => expect(t.data).toEqual(copies[i]));
  });

  it("createGraph keeps relu's backward made of ops, and the graph's second derivative is unchanged", () => {
    const w = ramp(0.5);
    const [g] = grad(w.mul(w).relu().sum(), [w], { createGraph: true });
    const before = g.data.slice();
    g.sum().backward();
    expect(g.data).toEqual(before);
    expect(Array.from(w.grad!.data.slice(0, 7))).toEqual([2, 2, 2, 0, 2, 2, 2]); // d/dw of 2w where w ≠ 0
  });
});

/**
 * An op whose node keeps a scratch buffer of `bytes` (and whose output's other buffers the pool does not take):
 * without a node it goes back to the pool at once; with one, when a plain backward frees the graph (the user's
 * seed is never pooled and x adopts the input gradient, so only the scratch buffer comes back).
 */
function scratchGoesBack(op: (x: Tensor) => Tensor, input: (seed: number) => Tensor, bytes: number): void {
  emptyBufferPool();
  noGrad(() => op(input(1)));
  expect(bufferPoolSize()).toEqual({ bytes, buffers: 1 });
  emptyBufferPool();
  const y = op(input(2));
  expect(bufferPoolSize().buffers).toBe(0);
  y.backward(tensor(new Float32Array(y.size).fill(1), { shape: y.shape }));
  expect(bufferPoolSize()).toEqual({ bytes, buffers: 1 });
}

/**
 * The second-order gradients (v's, and x's where there is one) of sum(u · ∂ sum(op(x) · v) / ∂x) taken after a
 * plain backward freed op's node, with or without calls of op in between that would take (and overwrite) a pooled
 * buffer of its scratch's size: the recorded backward must keep the buffer it captured.
 */
function secondOrderAfterFree(op: (x: Tensor) => Tensor, input: (seed: number) => Tensor, vShape: number[], interleave: boolean): Float32Array[] {
  emptyBufferPool();
  const x = input(3), v = randn(vShape, { generator: new Generator(4) }).requiresGrad_();
  const u = randn(x.shape, { generator: new Generator(5) });
  const y = op(x);
  const [gx] = grad(y.mul(v).sum(), [x], { createGraph: true });
  y.sum().backward(); // plain: frees op's node
  x.grad = null;
  if (interleave) for (let i = 0; i < 3; i++) op(input(10 + i)).sum().backward();
  gx.mul(u).sum().backward();
  const xGrad = (x as Tensor).grad;
  return [v.grad!.data.slice() as Float32Array, ...(xGrad ? [xGrad.data.slice() as Float32Array] : [])];
}

// Each op's input is the smallest that makes its scratch buffer 16 KB, the pool's smallest size: max pooling's
// 2 × 2 window offsets (a byte a window), sigmoidAvgPool2d's float32 sigmoid output (its pooled output 4 KB)
describe.each([
  { scratch: "max pooling's argmax indices", op: (x: Tensor) => maxPool2d(x, 2), shape: [1, 4, 128, 128], secondOrderGrads: 1 },
  { scratch: "sigmoidAvgPool2d's sigmoid output", op: (x: Tensor) => sigmoidAvgPool2d(x, 2), shape: [1, 4, 32, 32], secondOrderGrads: 2 },
])("$scratch come from the pool and go back to it when the graph is freed", ({ op, shape, secondOrderGrads }) => {
  const input = (seed: number): Tensor => randn(shape, { generator: new Generator(seed) }).requiresGrad_();

  it("without a node (grad mode off) they go back at once; after a plain backward, with the graph", () => {
    scratchGoesBack(op, input, 16384);
  });

  it("what a recorded backward (createGraph) captured outlives a later plain backward that frees the graph", () => {
    // max pooling: the first-order gradient scatter(v) keeps the indices, v's gradient is u gathered at them;
    // sigmoidAvgPool2d: its recorded sigmoid keeps the output, and x's gradient reads it again
    const run = (interleave: boolean) => secondOrderAfterFree(op, input, [1, 4, shape[2] / 2, shape[3] / 2], interleave);
    const withCalls = run(true);
    expect(withCalls.length).toBe(secondOrderGrads);
    expect(withCalls).toEqual(run(false));
  });
});

describe("a Sequential's hidden outputs go to the pool when a plain backward frees the graph", () => {
  const bits = (t: Tensor): number[] => Array.from(new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4));

  /** SGD steps on `make()`'s model; the parameters' bits after each step, and the model's last output. */
  function trainBits(make: () => nn.Module, x: Tensor, steps: number, pooled: boolean): { params: number[][]; out: number[] } {
    setBufferPool(pooled);
    emptyBufferPool();
    manualSeed(5);
    const model = make();
    const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
    const params: number[][] = [];
    let y: Tensor | null = null;
    for (let step = 0; step < steps; step++) {
      y = model.forward(x);
      opt.zeroGrad();
      y.mul(y).mean().backward();
      opt.step();
      params.push(...model.parameters().map(bits));
    }
    return { params, out: bits(y!) };
  }

  it("an MLP's two hidden activations come back to the pool (the same layers called one by one leave them to the collector)", () => {
    const layers = [new nn.Linear(64, 64), new nn.ReLU(), new nn.Linear(64, 10)];
    const x = randn([128, 64], { generator: new Generator(2) });
    const pooledAfter = (forward: () => Tensor): { bytes: number; buffers: number } => {
      for (const m of layers) for (const p of m.parameters()) p.grad = null;
      emptyBufferPool();
      forward().sum().backward();
      return bufferPoolSize();
    };
    const byHand = pooledAfter(() => layers.reduce((h, m) => m.forward(h), x));
    const sequential = pooledAfter(() => new nn.Sequential(...layers).forward(x));
    expect(sequential.buffers - byHand.buffers).toBe(2);
    expect(sequential.bytes - byHand.bytes).toBe(2 * 128 * 64 * 4);
  });

  it("training gives the same bits with the pool and without (MLP, CNN, and a Sequential ending in Flatten)", () => {
    const x = randn([16, 1, 12, 12], { generator: new Generator(3) });
    const makers: (() => nn.Module)[] = [
      () => new nn.Sequential(new nn.Flatten(), new nn.Linear(144, 96), new nn.Tanh(), new nn.Linear(96, 96), new nn.ReLU(), new nn.Linear(96, 5)),
      () => new nn.Sequential(new nn.Conv2d(1, 8, 3, { padding: 1 }), new nn.ReLU(), new nn.MaxPool2d(2), new nn.Conv2d(8, 8, 3, { padding: 1 }),
        new nn.Sigmoid(), new nn.AvgPool2d(2), new nn.Flatten(), new nn.Linear(72, 4)),
      () => new nn.Sequential(new nn.Conv2d(1, 8, 3, { padding: 1 }), new nn.ReLU(), new nn.Flatten()),
    ];
    for (const make of makers) {
      const withPool = trainBits(make, x, 4, true);
      const without = trainBits(make, x, 4, false);
      expect(withPool.params).toEqual(without.params);
      expect(withPool.out).toEqual(without.out);
    }
  });

  it("the caller's input, and a result that is a view of a hidden output (Flatten last), keep their values", () => {
    const x = randn([32, 8, 8, 8], { generator: new Generator(4) });
    const xBits = bits(x);
    const model = new nn.Sequential(new nn.Flatten(), new nn.Linear(512, 512), new nn.ReLU(), new nn.Flatten());
    const y = model.forward(x);
    const yBits = bits(y);
    y.sum().backward();
    // later steps take whatever the pool holds and overwrite it
    for (let i = 0; i < 3; i++) model.forward(randn([32, 8, 8, 8], { generator: new Generator(10 + i) })).sum().backward();
    expect(bits(x)).toEqual(xBits);
    expect(bits(y)).toEqual(yBits);
  });

  it("a hidden output that a user's layer keeps (its input, or its output passed on) is never pooled", () => {
    class Keep extends nn.Module {
      kept: Tensor[] = [];
      override forward(x: Tensor): Tensor {
        this.kept.push(x);
        const y = x.mul(2);
        this.kept.push(y);
        return y;
      }
    }
    const keep = new Keep();
    const model = new nn.Sequential(new nn.Linear(64, 64), keep, new nn.ReLU(), new nn.Linear(64, 64), new nn.Tanh(), new nn.Linear(64, 4));
    const x = randn([128, 64], { generator: new Generator(8) });
    model.forward(x).sum().backward();
    const copies = keep.kept.map(bits);
    for (let i = 0; i < 3; i++) model.forward(randn([128, 64], { generator: new Generator(30 + i) })).sum().backward();
    keep.kept.slice(0, 2).forEach((t, i) => expect(bits(t)).toEqual(copies[i]));
  });

  it("second-order gradients through a Sequential (createGraph, then plain passes) match the pool-free run", () => {
    const secondOrder = (pooled: boolean): number[] => {
      setBufferPool(pooled);
      emptyBufferPool();
      manualSeed(6);
      const model = new nn.Sequential(new nn.Linear(64, 96), new nn.Tanh(), new nn.Linear(96, 96), new nn.Sigmoid(), new nn.Linear(96, 1));
      const x = randn([64, 64], { generator: new Generator(7) }).requiresGrad_();
      const [gx] = grad(model.forward(x).sum(), [x], { createGraph: true });
      // other steps that would take (and overwrite) pooled buffers of the hidden outputs' sizes
      for (let i = 0; i < 3; i++) model.forward(randn([64, 64], { generator: new Generator(20 + i) })).sum().backward();
      for (const p of model.parameters()) p.grad = null;
      gx.mul(gx).sum().backward(); // through the recorded graph, which reads the first forward's hidden outputs
      return model.parameters().flatMap(bits);
    };
    expect(secondOrder(true)).toEqual(secondOrder(false));
  });
});

describe("without Node's Buffer (browsers), the pool keeps buffers from 256 bytes", () => {
  it("reuses a released 1 KB buffer, zero-filled by allocate; leaves a 252-byte one to the garbage collector", () => {
    setPoolMinBytes(POOL_MIN_BYTES_NO_BUFFER);
    emptyBufferPool();
    const a = allocateUnfilled("float32", 256);
    a.fill(5);
    releaseBuffer(a);
    releaseBuffer(new Float32Array(63));
    expect(bufferPoolSize()).toEqual({ bytes: 1024, buffers: 1 });
    const b = allocate("float32", 256);
    expect(b.buffer).toBe(a.buffer);
    expect(b.every((v) => v === 0)).toBe(true);
  });

  it("random graphs of small tensors give the same gradients, bit for bit, with the pool and without", () => {
    setPoolMinBytes(POOL_MIN_BYTES_NO_BUFFER);
    const n = 12; // [12, 12] float32 is 576 bytes, [12] 48: both sides of the floor
    fc.assert(fc.property(programArb, fc.nat(), (program, seed) => {
      const without = train(program, seed, false, n);
      const withPool = train(program, seed, true, n);
      expect(withPool.length).toBe(without.length);
      for (let i = 0; i < without.length; i++) expect(withPool[i]).toEqual(without[i]);
    }), { numRuns: 20 });
  });

  it("a hidden output declared with releaseWithGraph goes back with its graph from the same 256-byte floor", () => {
    setPoolMinBytes(POOL_MIN_BYTES_NO_BUFFER);
    const w = randn([30, 16], { generator: new Generator(2) }).requiresGrad_();
    const x = randn([8, 30], { generator: new Generator(3) });
    emptyBufferPool();
    const hidden = x.matmul(w); // [8, 16] float32: 512 bytes
    releaseWithGraph(hidden);
    const loss = hidden.relu().sum();
    expect(bufferPoolSize().buffers).toBe(0);
    const kept = hidden.data;
    loss.backward();
    const reused = Array.from({ length: 8 }, () => allocateUnfilled("float32", 128).buffer);
    expect(reused).toContain(kept.buffer);
  });

  it("an MLP step reuses the small gradients' buffers (logits [64, 10], biases)", () => {
    setPoolMinBytes(POOL_MIN_BYTES_NO_BUFFER);
    emptyBufferPool();
    const model = new nn.MLP([30, 16, 10]);
    const opt = new optim.SGD(model.parameters(), { lr: 0.01 });
    const x = randn([64, 30], { generator: new Generator(1) });
    for (let step = 0; step < 3; step++) {
      model.forward(x).logSoftmax().pick(new Int32Array(64)).mean().neg().backward();
      opt.step();
      opt.zeroGrad();
    }
    // [64, 16] and [64, 10] gradients and the leaves' gradients wait in the pool, none of them 16 KB
    expect(bufferPoolSize().buffers).toBeGreaterThanOrEqual(3);
  });
});
