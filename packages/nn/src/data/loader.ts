/** Mini-batches over in-memory datasets, optionally shuffled with a seeded generator. */
import { Tensor, ValueError } from "@tapegrad/autograd";
import { epochPermutation } from "./random.ts";

type NumericArray =
  | Float32Array
  | Float64Array
  | Int32Array
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | Uint32Array;

/** Pairs of equally long tensors (inputs and targets) indexed along their first axis. */
export class TensorDataset {
  readonly n: number;

  /** @example new TensorDataset(tensor(xs, { shape: [100, 3] }), tensor(ys, { shape: [100] })) */
  constructor(
    readonly inputs: Tensor,
    readonly targets: Tensor,
  ) {
    if (inputs.shape.length === 0 || targets.shape.length === 0) {
      throw new Error("TensorDataset: inputs and targets need a first (sample) axis, got a scalar");
    }
    if (inputs.shape[0] !== targets.shape[0]) {
      throw new Error(
        `TensorDataset: inputs [${inputs.shape.join(", ")}] and targets [${targets.shape.join(", ")}] differ in their first axis`,
      );
    }
    this.n = inputs.shape[0];
  }
}

/** What a DataLoader can batch: a TensorDataset, or flat images and integer labels (an ImageDataset). */
export type LoaderDataset =
  | TensorDataset
  | { readonly n: number; readonly images: Float32Array; readonly labels: ArrayLike<number> };

export interface DataLoaderOptions {
  batchSize: number;
  /** Visit the samples in a new random order each epoch (default false). */
  shuffle?: boolean;
  /** Drop the last batch when it is smaller than batchSize (default false). */
  dropLast?: boolean;
  /** Seed of the shuffle; epoch k's order depends only on (seed, k). Default: a random seed. */
  seed?: number;
}

/**
 * Where a DataLoader stands: the next batch it yields is batch `batch` (0-based) of epoch `epoch` (0-based;
 * with shuffle, epoch k's order depends only on (seed, k)). Plain numbers, so it fits in a checkpoint's JSON.
 */
export interface DataLoaderState {
  epoch: number;
  batch: number;
}

/** One side of a dataset: a flat array of n rows of `rowSize` elements each. */
interface Column {
  data: NumericArray | Float32Array | Float64Array;
  rowShape: number[];
  rowSize: number;
  out: Float32ArrayConstructor | Float64ArrayConstructor;
}

function tensorColumn(t: Tensor): Column {
  const rowShape = t.shape.slice(1);
  return {
    data: t.data,
    rowShape,
    rowSize: rowShape.reduce((a, b) => a * b, 1),
    out: t.dtype === "float64" ? Float64Array : Float32Array,
  };
}

function columnsOf(dataset: LoaderDataset): [Column, Column] {
  if (dataset instanceof TensorDataset) return [tensorColumn(dataset.inputs), tensorColumn(dataset.targets)];
  const { n, images, labels } = dataset;
  if (!Number.isInteger(n) || n < 0) throw new Error(`DataLoader: dataset size n must be a count, got ${n}`);
  if (labels.length !== n) throw new Error(`DataLoader: dataset has n = ${n} but ${labels.length} labels`);
  const rowSize = n === 0 ? 0 : images.length / n;
  if (!Number.isInteger(rowSize)) {
    throw new Error(`DataLoader: ${images.length} image values do not split into ${n} equal rows`);
  }
  return [
    { data: images, rowShape: [rowSize], rowSize, out: Float32Array },
    { data: labels as NumericArray, rowShape: [], rowSize: 1, out: Float32Array },
  ];
}

/** Copies rows `order[start..end)` of `column` into a fresh array. */
function gather(column: Column, order: Int32Array | null, start: number, end: number): Float32Array | Float64Array {
  const { data, rowSize } = column;
  const out = new column.out((end - start) * rowSize);
  // Same element type: rows are copied with set() (a memcpy); otherwise converted element by element.
  const sameType = data instanceof column.out;
  if (order === null) {
    // In file order a batch is one contiguous block.
    if (sameType) out.set(data.subarray(start * rowSize, end * rowSize));
    else for (let i = 0; i < out.length; i++) out[i] = data[start * rowSize + i];
    return out;
  }
  for (let b = 0; b < end - start; b++) {
    const src = order[start + b] * rowSize;
    const dst = b * rowSize;
    if (sameType && rowSize > 16) out.set(data.subarray(src, src + rowSize), dst);
    else for (let k = 0; k < rowSize; k++) out[dst + k] = data[src + k];
  }
  return out;
}

/**
 * Iterates a dataset in mini-batches of tensors `[x, y]`: x of shape [B, ...] (for an ImageDataset
 * [B, rows·cols], float32) and y of shape [B] (class indices as exact float32 integers). Each
 * iteration is one epoch; with shuffle, epoch k visits the samples in an order fixed by (seed, k).
 * Only each batch is copied; every batch gets its own arrays, so tensors stay valid after the loop moves on.
 * getState / setState save and restore the position (epoch and batch), e.g. to resume a run mid-epoch.
 *
 * @example
 * const loader = new DataLoader(train, { batchSize: 128, shuffle: true, seed: 0 });
 * for (const [x, y] of loader) { ... } // x: [128, 784], y: [128]
 */
export class DataLoader implements Iterable<[Tensor, Tensor]> {
  readonly n: number;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly seed: number;
  private readonly columns: [Column, Column];
  private epochsStarted = 0;
  /** The batch the next iteration starts from (set by setState, used once). */
  private startBatch = 0;
  /** The latest iteration's position while it runs; a newer iteration or setState replaces it. */
  private current: { epoch: number; batch: number } | null = null;

  constructor(dataset: LoaderDataset, options: DataLoaderOptions) {
    const { batchSize, shuffle = false, dropLast = false } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new Error(`DataLoader: batchSize must be a positive integer, got ${batchSize}`);
    }
    if (options.seed !== undefined && !Number.isInteger(options.seed)) {
      throw new Error(`DataLoader: seed must be an integer, got ${options.seed}`);
    }
    this.columns = columnsOf(dataset);
    this.n = dataset.n;
    this.batchSize = batchSize;
    this.shuffle = shuffle;
    this.dropLast = dropLast;
    this.seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
  }

  /** Number of batches per epoch. */
  get length(): number {
    return this.dropLast ? Math.floor(this.n / this.batchSize) : Math.ceil(this.n / this.batchSize);
  }

  /** Number of epochs started so far (each `for … of` starts one), i.e. the index of the next epoch to start. */
  get epoch(): number {
    return this.epochsStarted;
  }

  /**
   * The position: while an epoch is being iterated, that epoch and the number of batches it has yielded
   * (the batch in the caller's hands included); otherwise (before the first epoch, after an epoch's loop
   * ended or was left) the next epoch to start and batch 0, or what setState set.
   * A loader given this state with setState yields the batches that would have come next.
   * @example
   * for (const [x, y] of loader) { train(x, y); if (stop) { saved = loader.getState(); break; } }
   * other.setState(saved); for (const [x, y] of other) ... // the rest of that epoch; later loops the next epochs
   */
  getState(): DataLoaderState {
    const c = this.current;
    return c !== null ? { epoch: c.epoch, batch: c.batch } : { epoch: this.epochsStarted, batch: this.startBatch };
  }

  /**
   * Positions the loader: the next `for … of` yields epoch `state.epoch`'s batches from `state.batch` on
   * (the earlier ones are not gathered; `batch` equal to `length` yields none), and the loops after it go
   * on from epoch `state.epoch + 1`. A loop already running keeps its own order but no longer moves the
   * position.
   */
  setState(state: DataLoaderState): void {
    const { epoch, batch } = state ?? ({} as Partial<DataLoaderState>);
    if (!Number.isSafeInteger(epoch) || epoch! < 0 || !Number.isSafeInteger(batch) || batch! < 0 || batch! > this.length) {
      throw new ValueError(
        `DataLoader.setState: expected { epoch: an integer ≥ 0, batch: an integer from 0 to ${this.length} (batches per epoch) }, ` +
          `got ${JSON.stringify(state)}`,
      );
    }
    this.epochsStarted = epoch!;
    this.startBatch = batch!;
    this.current = null;
  }

  *[Symbol.iterator](): Generator<[Tensor, Tensor], void, undefined> {
    const epoch = this.epochsStarted++;
    const first = this.startBatch;
    this.startBatch = 0;
    const position = { epoch, batch: first };
    this.current = position;
    const order = this.shuffle ? epochPermutation(this.n, this.seed, epoch) : null;
    const [xs, ys] = this.columns;
    const batches = this.length;
    try {
      for (let i = first; i < batches; i++) {
        const start = i * this.batchSize;
        const end = Math.min(start + this.batchSize, this.n);
        const size = end - start;
        const batch: [Tensor, Tensor] = [
          new Tensor(gather(xs, order, start, end), [size, ...xs.rowShape]),
          new Tensor(gather(ys, order, start, end), [size, ...ys.rowShape]),
        ];
        // counted before the yield: a state read while the caller holds this batch includes it
        if (this.current === position) position.batch = i + 1;
        yield batch;
      }
    } finally {
      if (this.current === position) this.current = null;
    }
  }
}
