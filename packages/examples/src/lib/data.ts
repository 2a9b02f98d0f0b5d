/**
 * Loading the train and test splits for an example, with optional subsets for smoke runs. A `--data` folder
 * is the only place looked at; whatever the source, the files are checked against the data set asked for
 * (image size, image count, images per class), so MNIST and Fashion-MNIST cannot stand in for each other.
 */
import { statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { data } from "@tapegrad/nn";
import { DatasetNotFoundError, fashionMnist, mnist } from "@tapegrad/nn/node";
import { RunFileError, UsageError } from "./errors.ts";
import { userPath } from "./paths.ts";
import { downloadProgress } from "./progress.ts";

export type ImageDataset = data.ImageDataset;
export type DatasetName = "fashion-mnist" | "mnist";
export type Split = "train" | "test";

export interface DataOptions {
  dataset: DatasetName;
  /** Folder with the IDX files; relative paths are read from the invocation folder. Only this folder is used. */
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

/** What each data set's files must hold: 28×28 images, this many per split, this many per class. */
const EXPECTED = {
  "fashion-mnist": {
    title: "Fashion-MNIST",
    size: { train: 60000, test: 10000 },
    // Fashion-MNIST is exactly balanced: 6000 / 1000 images of each class
    perClass: { train: Array<number>(10).fill(6000), test: Array<number>(10).fill(1000) },
  },
  mnist: {
    title: "MNIST",
    size: { train: 60000, test: 10000 },
    perClass: {
      train: [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
      test: [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    },
  },
} as const;

/** The examples' sample: 600 / 100 images of each Fashion-MNIST class. */
const SAMPLE = { size: { train: 6000, test: 1000 }, perClass: { train: Array<number>(10).fill(600), test: Array<number>(10).fill(100) } };

/** The largest training split among the data sets (an upper bound for options counted in images). */
export const MAX_TRAIN_IMAGES = 60000;
export const MAX_TEST_IMAGES = 10000;

/** A data set whose files are not the ones asked for (exit 1). */
export class DatasetMismatchError extends RunFileError {}

export function datasetName(value: unknown): DatasetName {
  if (value === "fashion-mnist" || value === "mnist") return value;
  throw new UsageError(`--dataset must be fashion-mnist or mnist, got ${JSON.stringify(value)}`);
}

/** Checks that a --data folder exists (before any work; the files in it are checked when loading). */
export function checkDataFolder(data: string | undefined): void {
  if (data === undefined) return;
  const dir = userPath(data);
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    throw new RunFileError(`--data ${data}: the folder ${dir} does not exist`);
  }
  if (!isDir) throw new RunFileError(`--data ${data}: ${dir} is a file; give the folder holding the IDX files`);
}

/** The first `n` examples of `ds` (sharing memory), or `ds` itself when n is undefined or not smaller. */
export function subset(ds: ImageDataset, n: number | undefined): ImageDataset {
  if (n === undefined || n >= ds.n) return ds;
  const size = ds.rows * ds.cols;
  return { ...ds, n, images: ds.images.subarray(0, n * size), labels: ds.labels.subarray(0, n) };
}

function countClasses(ds: ImageDataset): number[] {
  const counts = new Array<number>(ds.classes.length).fill(0);
  for (let i = 0; i < ds.n; i++) counts[ds.labels[i]]++;
  return counts;
}

const sameCounts = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

/** Whether `ds` has the sample's size and images per class (a copy of the examples' sample, or one like it). */
function isSampleSized(ds: ImageDataset): boolean {
  return ds.n === SAMPLE.size[ds.split] && sameCounts(countClasses(ds), SAMPLE.perClass[ds.split]);
}

/**
 * Throws a DatasetMismatchError unless `ds` (the full split, before any --limit) has the image size, image
 * count and images per class of `name`'s split, or of the examples' Fashion-MNIST sample (6000 / 1000 images,
 * a tenth of each class).
 */
export function checkDataset(ds: ImageDataset, name: DatasetName): void {
  const expected = EXPECTED[name];
  const split = ds.split;
  const where = `${expected.title} ${split} split from ${ds.source}`;
  if (ds.rows !== 28 || ds.cols !== 28) {
    throw new DatasetMismatchError(`${where}: the images are ${ds.rows}×${ds.cols} pixels; ${expected.title}'s are 28×28`);
  }
  const target = ds.isSample ? SAMPLE : expected;
  if (!ds.isSample && name === "fashion-mnist" && isSampleSized(ds)) return;
  if (ds.n !== target.size[split]) {
    throw new DatasetMismatchError(
      `${where}: ${ds.n} images; ${ds.isSample ? "the examples' sample has" : `${expected.title} has`} ${target.size[split]} ` +
        `(a truncated or different data set? --limit-${split} N trains on fewer images)`,
    );
  }
  const counts = countClasses(ds);
  if (sameCounts(counts, target.perClass[split])) return;
  const other: DatasetName = name === "mnist" ? "fashion-mnist" : "mnist";
  if (sameCounts(counts, EXPECTED[other].perClass[split])) {
    throw new DatasetMismatchError(
      `${where}: these are ${EXPECTED[other].title} files, not ${expected.title} (their images per class are ${EXPECTED[other].title}'s: ` +
        `${counts.join(", ")}). Use --dataset ${other}, or point --data at ${expected.title}.`,
    );
  }
  throw new DatasetMismatchError(
    `${where}: images per class ${counts.join(", ")} do not match ${expected.title}'s (${target.perClass[split].join(", ")}): a different data set?`,
  );
}

/** One split, checked (checkDataset), then cut to --limit-train / --limit-test. */
export async function loadSplit(options: DataOptions, split: Split): Promise<ImageDataset> {
  const onProgress = downloadProgress(options.progress ?? true);
  let ds: ImageDataset;
  if (options.data !== undefined) {
    const root = userPath(options.data);
    try {
      ds = options.dataset === "mnist" ? await mnist({ split, root, strict: true }) : await fashionMnist({ split, root, strict: true });
    } catch (err) {
      if (err instanceof DatasetNotFoundError) throw new RunFileError(`--data ${options.data}: ${err.message}`);
      throw err;
    }
  } else {
    ds = options.dataset === "mnist"
      ? await mnist({ split, onProgress })
      : await fashionMnist({ split, onProgress, sampleDir: fashionMnistSample });
  }
  checkDataset(ds, options.dataset);
  if (!ds.isSample && options.dataset === "fashion-mnist" && isSampleSized(ds)) ds = { ...ds, isSample: true };
  return subset(ds, split === "train" ? options.limitTrain : options.limitTest);
}

/** Both splits; with --data, a folder missing either one is reported with everything that is missing. */
export async function loadSplits(options: DataOptions): Promise<{ train: ImageDataset; test: ImageDataset }> {
  const [train, test] = await Promise.allSettled([loadSplit(options, "train"), loadSplit(options, "test")]);
  if (train.status === "fulfilled" && test.status === "fulfilled") return { train: train.value, test: test.value };
  const failures = [train, test].filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason as Error);
  // missing files first: they are what the user has to fix before anything else
  const missing = failures.filter((e) => e instanceof RunFileError && !(e instanceof DatasetMismatchError));
  if (missing.length === 2) {
    const prefix = `--data ${options.data}: `;
    throw new RunFileError(`${missing[0].message}\n${missing[1].message.startsWith(prefix) ? missing[1].message.slice(prefix.length) : missing[1].message}`);
  }
  throw missing[0] ?? failures[0];
}

/** One line saying what was loaded, e.g. "fashion-mnist: 60000 train / 10000 test images from debian:/usr/…". */
export function describeData(train: ImageDataset, test: ImageDataset): string {
  const sample = train.isSample ? " (the examples' sample: accuracy will be lower than on the full set)" : "";
  const from = train.source === test.source ? `from ${train.source}` : `(train from ${train.source}, test from ${test.source})`;
  return `${train.name}: ${train.n} train / ${test.n} test images ${from}${sample}`;
}
