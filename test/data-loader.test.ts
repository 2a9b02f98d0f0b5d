import { describe, expect, it } from "vitest";
import { tensor } from "../packages/autograd/src/index.ts";
import { DataLoader, TensorDataset } from "../packages/nn/src/data/loader.ts";
import { epochPermutation } from "../packages/nn/src/data/random.ts";

/** A dataset of n 784-pixel images whose every pixel is (index / n), labelled index % 10. */
function fakeImages(n: number) {
  const images = new Float32Array(n * 784);
  for (let i = 0; i < n; i++) images.fill(i / n, i * 784, (i + 1) * 784);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
  return { n, images, labels };
}

/** Recovers the sample index of each row of a batch from its pixel value. */
function indicesOf(x: { data: ArrayLike<number>; shape: number[] }, n: number): number[] {
  return Array.from({ length: x.shape[0] }, (_, b) => Math.round(x.data[b * 784] * n));
}

describe("DataLoader: batches", () => {
  it("yields [x, y] with x [B, 784] float32 and y [B] integer labels, in order without shuffle", () => {
    const ds = fakeImages(10);
    const loader = new DataLoader(ds, { batchSize: 4 });
    const batches = [...loader];
    expect(loader.length).toBe(3);
    expect(batches.map(([x]) => x.shape)).toEqual([[4, 784], [4, 784], [2, 784]]);
    expect(batches.map(([, y]) => y.shape)).toEqual([[4], [4], [2]]);
    const [x, y] = batches[1];
    expect(x.dtype).toBe("float32");
    expect(y.dtype).toBe("float32");
    expect(x.requiresGrad).toBe(false);
    expect(indicesOf(x, 10)).toEqual([4, 5, 6, 7]);
    expect(Array.from(y.data)).toEqual([4, 5, 6, 7]);
    expect(Array.from(batches[2][1].data)).toEqual([8, 9]);
  });

  it("dropLast drops the short final batch", () => {
    const loader = new DataLoader(fakeImages(10), { batchSize: 4, dropLast: true });
    expect(loader.length).toBe(2);
    expect([...loader].map(([x]) => x.shape[0])).toEqual([4, 4]);
  });

  it("a batch size that divides n gives equal batches with or without dropLast", () => {
    for (const dropLast of [false, true]) {
      const loader = new DataLoader(fakeImages(12), { batchSize: 4, dropLast });
      expect(loader.length).toBe(3);
      expect([...loader].map(([x]) => x.shape[0])).toEqual([4, 4, 4]);
    }
  });

  it("a batch larger than the dataset is one short batch, or none with dropLast", () => {
    expect([...new DataLoader(fakeImages(3), { batchSize: 8 })].map(([x]) => x.shape)).toEqual([[3, 784]]);
    expect([...new DataLoader(fakeImages(3), { batchSize: 8, dropLast: true })]).toEqual([]);
  });

  it("batches own their data: earlier tensors are unchanged by later batches", () => {
    const loader = new DataLoader(fakeImages(8), { batchSize: 2, shuffle: true, seed: 3 });
    const batches = [...loader];
    const firstBefore = Array.from(batches[0][0].data);
    [...loader];
    expect(Array.from(batches[0][0].data)).toEqual(firstBefore);
    expect(batches[0][0].data.buffer).not.toBe(batches[1][0].data.buffer);
  });

  it("values stay in [0, 1] and pixels travel with their label", () => {
    const ds = fakeImages(50);
    for (const [x, y] of new DataLoader(ds, { batchSize: 7, shuffle: true, seed: 1 })) {
      for (const v of x.data) expect(v >= 0 && v <= 1).toBe(true);
      const idx = indicesOf(x, 50);
      expect(Array.from(y.data)).toEqual(idx.map((i) => i % 10));
    }
  });

  it("rejects a non-positive or fractional batch size and a bad dataset", () => {
    expect(() => new DataLoader(fakeImages(4), { batchSize: 0 })).toThrow(/batchSize must be a positive integer/);
    expect(() => new DataLoader(fakeImages(4), { batchSize: 1.5 })).toThrow(/batchSize/);
    expect(() => new DataLoader({ n: 3, images: new Float32Array(10), labels: new Int32Array(3) }, { batchSize: 1 })).toThrow(
      /do not split into 3 equal rows/,
    );
    expect(() => new DataLoader({ n: 3, images: new Float32Array(6), labels: new Int32Array(2) }, { batchSize: 1 })).toThrow(
      /n = 3 but 2 labels/,
    );
  });
});

describe("DataLoader: shuffling", () => {
  const epochOrder = (loader: DataLoader, n: number) => [...loader].flatMap(([x]) => indicesOf(x, n));

  it("every index is seen exactly once per epoch, including with a short last batch", () => {
    const n = 103;
    const loader = new DataLoader(fakeImages(n), { batchSize: 10, shuffle: true, seed: 42 });
    for (let epoch = 0; epoch < 3; epoch++) {
      const seen = epochOrder(loader, n);
      expect(seen.length).toBe(n);
      expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    }
  });

  it("with dropLast the kept indices are distinct and a full batch count", () => {
    const loader = new DataLoader(fakeImages(103), { batchSize: 10, shuffle: true, seed: 42, dropLast: true });
    const seen = epochOrder(loader, 103);
    expect(seen.length).toBe(100);
    expect(new Set(seen).size).toBe(100);
  });

  it("the same seed gives the same order; each epoch reshuffles", () => {
    const n = 64;
    const a = new DataLoader(fakeImages(n), { batchSize: 16, shuffle: true, seed: 7 });
    const b = new DataLoader(fakeImages(n), { batchSize: 16, shuffle: true, seed: 7 });
    const a0 = epochOrder(a, n);
    const a1 = epochOrder(a, n);
    expect(epochOrder(b, n)).toEqual(a0);
    expect(epochOrder(b, n)).toEqual(a1);
    expect(a1).not.toEqual(a0);
    expect(a0).not.toEqual(Array.from({ length: n }, (_, i) => i));
    expect(a.epoch).toBe(2);
  });

  it("different seeds give different orders", () => {
    const n = 64;
    const a = epochOrder(new DataLoader(fakeImages(n), { batchSize: 64, shuffle: true, seed: 1 }), n);
    const b = epochOrder(new DataLoader(fakeImages(n), { batchSize: 64, shuffle: true, seed: 2 }), n);
    expect(a).not.toEqual(b);
  });

  it("epoch k's permutation depends only on (seed, k)", () => {
    expect(Array.from(epochPermutation(20, 5, 3))).toEqual(Array.from(epochPermutation(20, 5, 3)));
    expect(Array.from(epochPermutation(20, 5, 3))).not.toEqual(Array.from(epochPermutation(20, 5, 4)));
  });

  it("an epoch's permutation is a permutation of 0..n-1, and streams of one seed differ", () => {
    const p = Array.from(epochPermutation(1000, 7, 0));
    expect([...p].sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    const q = Array.from(epochPermutation(1000, 7, 1));
    expect(p.filter((v, i) => v === q[i]).length).toBeLessThan(20);
  });
});

describe("TensorDataset", () => {
  it("batches any inputs and targets along their first axis, keeping dtype and trailing shape", () => {
    const inputs = tensor(Float64Array.from({ length: 5 * 2 * 3 }, (_, i) => i), { shape: [5, 2, 3] });
    const targets = tensor([10, 11, 12, 13, 14]);
    const loader = new DataLoader(new TensorDataset(inputs, targets), { batchSize: 2 });
    const batches = [...loader];
    expect(batches.map(([x]) => x.shape)).toEqual([[2, 2, 3], [2, 2, 3], [1, 2, 3]]);
    expect(batches[0][0].dtype).toBe("float64");
    expect(Array.from(batches[2][0].data)).toEqual([24, 25, 26, 27, 28, 29]);
    expect(Array.from(batches[1][1].data)).toEqual([12, 13]);
  });

  it("rejects inputs and targets of different lengths", () => {
    expect(() => new TensorDataset(tensor([1, 2, 3]), tensor([1, 2]))).toThrow(/differ in their first axis/);
  });
});

describe("Generator state", () => {
  it("getState/setState: the numbers after a restore are those that followed the saved state, normals' spare included", async () => {
    const { Generator } = await import("@tapegrad/autograd");
    const g = new Generator(42);
    g.normal(); // leaves a spare normal
    const state = JSON.parse(JSON.stringify(g.getState()));
    const after = [g.normal(), g.uniform(), g.nextUint32(), g.normal()];
    const h = new Generator(0);
    h.setState(state);
    expect([h.normal(), h.uniform(), h.nextUint32(), h.normal()]).toEqual(after);
    expect(() => h.setState({ s: [1, 2, 3], spare: null })).toThrow(/Generator.setState: expected/);
  });
});
