/** Loading the train and test splits for an example, with optional subsets for smoke runs. */
import { fileURLToPath } from "node:url";
import type { data } from "@tapegrad/nn";
import { fashionMnist, mnist } from "@tapegrad/nn/node";
import { UsageError } from "./cli.ts";
import { userPath } from "./paths.ts";
import { downloadProgress } from "./progress.ts";

export type ImageDataset = data.ImageDataset;
export type DatasetName = "fashion-mnist" | "mnist";

export interface DataOptions {
  dataset: DatasetName;
  /** Directory with the IDX files; relative paths are read from the invocation folder. */
  data?: string;
  limitTrain?: number;
  limitTest?: number;
  /** Draw download progress bars (default true; they are hidden when stderr is not a terminal). */
  progress?: boolean;
}

/**
 * The Fashion-MNIST sample the examples fall back on when the full set is nowhere to be found (6000 train /
 * 1000 test images, class-balanced; made by scripts/make-sample.ts).
 */
export const fashionMnistSample = fileURLToPath(new URL("../../assets/fashion-mnist-sample", import.meta.url));

export function datasetName(value: unknown): DatasetName {
  if (value === "fashion-mnist" || value === "mnist") return value;
  throw new UsageError(`--dataset must be fashion-mnist or mnist, got ${JSON.stringify(value)}`);
}

/** The first `n` examples of `ds` (sharing memory), or `ds` itself when n is undefined or not smaller. */
export function subset(ds: ImageDataset, n: number | undefined): ImageDataset {
  if (n === undefined || n >= ds.n) return ds;
  const size = ds.rows * ds.cols;
  return { ...ds, n, images: ds.images.subarray(0, n * size), labels: ds.labels.subarray(0, n) };
}

export async function loadSplit(options: DataOptions, split: "train" | "test"): Promise<ImageDataset> {
  const root = options.data !== undefined ? userPath(options.data) : undefined;
  const onProgress = downloadProgress(options.progress ?? true);
  const ds = options.dataset === "mnist"
    ? await mnist({ split, root, onProgress })
    : await fashionMnist({ split, root, onProgress, sampleDir: fashionMnistSample });
  return subset(ds, split === "train" ? options.limitTrain : options.limitTest);
}

export async function loadSplits(options: DataOptions): Promise<{ train: ImageDataset; test: ImageDataset }> {
  const [train, test] = await Promise.all([loadSplit(options, "train"), loadSplit(options, "test")]);
  return { train, test };
}

/** One line saying what was loaded, e.g. "fashion-mnist: 60000 train / 10000 test images from debian:/usr/…". */
export function describeData(train: ImageDataset, test: ImageDataset): string {
  const sample = train.isSample ? " (the examples' sample: accuracy will be lower than on the full set)" : "";
  return `${train.name}: ${train.n} train / ${test.n} test images from ${train.source}${sample}`;
}
