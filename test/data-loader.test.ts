import { describe, expect, it } from "vitest";
import { tensor, ValueError } from "../packages/autograd/src/index.ts";
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

describe("DataLoader: position (getState / setState)", () => {
  const n = 103; // 11 batches of 10, the last one of 3
  const batchOrder = (batches: Iterable<[{ data: ArrayLike<number>; shape: number[] }, unknown]>) => [...batches].map(([x]) => indicesOf(x, n));

  it("getState: 0/0 before the first loop, the batches yielded so far (the one in hand included) inside one, the next epoch after it", () => {
    const loader = new DataLoader(fakeImages(n), { batchSize: 10, shuffle: true, seed: 3 });
    expect(loader.getState()).toEqual({ epoch: 0, batch: 0 });
    const seen: unknown[] = [];
    for (const _ of loader) seen.push(loader.getState());
    expect(seen).toEqual(Array.from({ length: 11 }, (_, i) => ({ epoch: 0, batch: i + 1 })));
    expect(loader.getState()).toEqual({ epoch: 1, batch: 0 });
    for (const _ of loader) if (loader.getState().batch === 4) break;
    expect(loader.getState()).toEqual({ epoch: 2, batch: 0 }); // a loop that was left ends its epoch, as before
    expect(loader.epoch).toBe(2);
  });

  it("a loader set to a state saved mid-epoch yields what the first loader would have yielded next, then the following epochs", () => {
    const reference = new DataLoader(fakeImages(n), { batchSize: 10, shuffle: true, seed: 11 });
    const epochs = [batchOrder(reference), batchOrder(reference), batchOrder(reference)];

    const first = new DataLoader(fakeImages(n), { batchSize: 10, shuffle: true, seed: 11 });
    batchOrder(first);
    let saved: unknown;
    for (const _ of first) {
      if (first.getState().batch === 6) {
        saved = JSON.parse(JSON.stringify(first.getState())); // plain numbers: it survives a checkpoint's JSON
        break;
      }
    }
    expect(saved).toEqual({ epoch: 1, batch: 6 });

    const resumed = new DataLoader(fakeImages(n), { batchSize: 10, shuffle: true, seed: 11 });
    resumed.setState(saved as { epoch: number; batch: number });
    expect(resumed.getState()).toEqual({ epoch: 1, batch: 6 });
    expect(batchOrder(resumed)).toEqual(epochs[1].slice(6));
    expect(resumed.getState()).toEqual({ epoch: 2, batch: 0 });
    expect(batchOrder(resumed)).toEqual(epochs[2]);
    expect(resumed.epoch).toBe(3);
  });

  it("setState to a later epoch gives that epoch's shuffle without running the epochs before it", () => {
    const reference = new DataLoader(fakeImages(n), { batchSize: 10, shuffle: true, seed: 5 });
    const orders = Array.from({ length: 4 }, () => batchOrder(reference));
    const jumped = new DataLoader(fakeImages(n), { batchSize: 10, shuffle: true, seed: 5 });
    jumped.setState({ epoch: 3, batch: 0 });
    expect(batchOrder(jumped)).toEqual(orders[3]);
    jumped.setState({ epoch: 0, batch: 10 }); // backwards too: the last, short batch of epoch 0
    expect(batchOrder(jumped)).toEqual([orders[0][10]]);
    expect(orders[0][10]).toHaveLength(3);
  });

  it("without shuffle and with dropLast the batches after the position are the file-order ones", () => {
    const loader = new DataLoader(fakeImages(n), { batchSize: 10, dropLast: true });
    loader.setState({ epoch: 7, batch: 8 });
    expect(batchOrder(loader)).toEqual([Array.from({ length: 10 }, (_, i) => 80 + i), Array.from({ length: 10 }, (_, i) => 90 + i)]);
  });

  it("the batches before the position are not gathered", () => {
    let rowReads = 0;
    class CountingImages extends Float32Array {
      override subarray(begin?: number, end?: number): Float32Array<ArrayBuffer> {
        rowReads++;
        return super.subarray(begin, end);
      }
    }
    const { images, labels } = fakeImages(n);
    const loader = new DataLoader({ n, images: new CountingImages(images), labels }, { batchSize: 10, shuffle: true, seed: 1 });
    loader.setState({ epoch: 4, batch: 9 });
    const rows = batchOrder(loader).flat();
    expect(rows).toHaveLength(13); // batches 9 (10 rows) and 10 (3 rows)
    expect(rowReads).toBe(13);
  });

  it("batch equal to the batch count: the next loop yields nothing, the one after starts the following epoch", () => {
    const reference = new DataLoader(fakeImages(n), { batchSize: 10, shuffle: true, seed: 9 });
    batchOrder(reference);
    const epoch1 = batchOrder(reference);
    const loader = new DataLoader(fakeImages(n), { batchSize: 10, shuffle: true, seed: 9 });
    loader.setState({ epoch: 0, batch: 11 });
    expect(batchOrder(loader)).toEqual([]);
    expect(batchOrder(loader)).toEqual(epoch1);
  });

  it("a loop running when setState is called keeps its own order but no longer moves the position", () => {
    const reference = new DataLoader(fakeImages(n), { batchSize: 10, shuffle: true, seed: 2 });
    const epoch0 = batchOrder(reference);
    const loader = new DataLoader(fakeImages(n), { batchSize: 10, shuffle: true, seed: 2 });
    const running = loader[Symbol.iterator]();
    running.next();
    loader.setState({ epoch: 5, batch: 2 });
    const rest = [];
    for (let r = running.next(); !r.done; r = running.next()) rest.push(indicesOf(r.value[0], n));
    expect(rest).toEqual(epoch0.slice(1));
    expect(loader.getState()).toEqual({ epoch: 5, batch: 2 });
  });

  it("setState rejects a position that is not two whole numbers within the epoch, naming the range", () => {
    const loader = new DataLoader(fakeImages(n), { batchSize: 10 });
    for (const bad of [{ epoch: -1, batch: 0 }, { epoch: 0, batch: 12 }, { epoch: 0.5, batch: 0 }, { epoch: 0, batch: Number.NaN }, { epoch: 1 }, null]) {
      expect(() => loader.setState(bad as { epoch: number; batch: number })).toThrow(ValueError);
      expect(() => loader.setState(bad as { epoch: number; batch: number })).toThrow(/DataLoader\.setState: expected .*batch: an integer from 0 to 11/);
    }
    expect(loader.getState()).toEqual({ epoch: 0, batch: 0 });
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
