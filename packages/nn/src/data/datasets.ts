/**
 * MNIST and Fashion-MNIST: find the IDX files on disk, or download them, or fall back to the embedded
 * Fashion-MNIST sample, and decode them into flat typed arrays.
 */
import { existsSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Checksum, DownloadError, downloadFile } from "./download.ts";
import { readIdx } from "./idx.ts";

export type Split = "train" | "test";

/** A decoded image-classification dataset, every array flat and row-major. */
export interface ImageDataset {
  /** Dataset name: "fashion-mnist" or "mnist". */
  name: string;
  split: Split;
  /** n × rows·cols pixels scaled from 0..255 to [0, 1]. */
  images: Float32Array;
  /** n class indices in 0..classes.length-1. */
  labels: Int32Array;
  n: number;
  rows: number;
  cols: number;
  /** Human-readable label of each class index. */
  classes: string[];
  /** Where the data came from, e.g. "debian:/usr/share/datasets/fashion-mnist", "cache:…", "download:…", "sample". */
  source: string;
  /** True when this is the small embedded subset rather than the full dataset. */
  isSample: boolean;
}

export interface DatasetOptions {
  split: Split;
  /** A directory holding the IDX files (or a `<dataset>/` folder of them); searched first. */
  root?: string;
  /** Download into the cache when no local copy is found (default true). */
  download?: boolean;
  /** Fall back to the embedded sample when nothing else works (default true; Fashion-MNIST only). */
  allowSample?: boolean;
  /** Base URL to download from instead of the official mirrors (also env TAPEGRAD_DATA_URL). */
  baseUrl?: string;
  /** Cache root holding `<dataset>/` (default $XDG_CACHE_HOME/tapegrad or ~/.cache/tapegrad). */
  cacheDir?: string;
  /** System install directories searched after the cache (default: Debian's /usr/share/datasets/…). */
  systemDirs?: string[];
  /** Directory of the embedded sample (default: the one shipped in this package). */
  sampleDir?: string;
  /** Environment to read TAPEGRAD_DATA, TAPEGRAD_DATA_URL, XDG_CACHE_HOME from (default process.env). */
  env?: Record<string, string | undefined>;
  /** Expected digests by file name, replacing the built-in ones for the files named. */
  checksums?: Record<string, Checksum>;
  /** Show a download progress bar (default: when stderr is a terminal). */
  progress?: boolean;
}

interface DatasetSpec {
  name: string;
  title: string;
  classes: string[];
  mirrors: string[];
  checksums: Record<string, Checksum>;
  systemDirs: string[];
  aptPackage?: string;
  sampleDir?: string;
}

const FASHION_SAMPLE_DIR = fileURLToPath(new URL("../../assets/fashion-mnist-sample", import.meta.url));

const FASHION_MNIST: DatasetSpec = {
  name: "fashion-mnist",
  title: "Fashion-MNIST",
  classes: ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
  mirrors: [
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
  ],
  // MD5 of the compressed files, as published in the Fashion-MNIST README.
  checksums: {
    "train-images-idx3-ubyte.gz": { md5: "8d4fb7e6c68d591d4c3dfef9ec88bf0d" },
    "train-labels-idx1-ubyte.gz": { md5: "25c81989df183df01b3e8a0aad5dffbe" },
    "t10k-images-idx3-ubyte.gz": { md5: "bef4ecab320f06d8554ea6380940ec79" },
    "t10k-labels-idx1-ubyte.gz": { md5: "bb300cfdad3c16e7a12a480ee83cd310" },
  },
  systemDirs: ["/usr/share/datasets/fashion-mnist"],
  aptPackage: "dataset-fashion-mnist",
  sampleDir: FASHION_SAMPLE_DIR,
};

const MNIST: DatasetSpec = {
  name: "mnist",
  title: "MNIST",
  classes: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
  mirrors: ["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"],
  checksums: {
    "train-images-idx3-ubyte.gz": { md5: "f68b3c2dcbeaaa9fbdd348bbdeb94873" },
    "train-labels-idx1-ubyte.gz": { md5: "d53e105ee54ea40749a09fcbcd1e9432" },
    "t10k-images-idx3-ubyte.gz": { md5: "9fb629c4189551a2d022fa330f9573f3" },
    "t10k-labels-idx1-ubyte.gz": { md5: "ec29112dd5afa0611ce80d1b7f02629c" },
  },
  systemDirs: [],
};

/** The standard file stems of a split: train-… for "train", t10k-… for "test". */
export function idxFileNames(split: Split): { images: string; labels: string } {
  const prefix = split === "train" ? "train" : "t10k";
  return { images: `${prefix}-images-idx3-ubyte`, labels: `${prefix}-labels-idx1-ubyte` };
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The first existing spelling of an IDX stem in `dir`: gzip first, then raw, then the `name.idx3-ubyte` variant. */
function findFile(dir: string, stem: string): string | undefined {
  const dotted = stem.replace(/-(idx\d-ubyte)$/, ".$1");
  for (const name of [`${stem}.gz`, stem, `${dotted}.gz`, dotted]) {
    const path = join(dir, name);
    if (isFile(path)) return path;
  }
  return undefined;
}

interface Found {
  images: string;
  labels: string;
}

/** Looks for a split's pair of files in `dir` itself, then in `dir/<dataset>`. */
function findSplit(dir: string, spec: DatasetSpec, split: Split): Found | undefined {
  const stems = idxFileNames(split);
  for (const candidate of [dir, join(dir, spec.name)]) {
    const images = findFile(candidate, stems.images);
    const labels = findFile(candidate, stems.labels);
    if (images !== undefined && labels !== undefined) return { images, labels };
  }
  return undefined;
}

/** The tapegrad cache root: $XDG_CACHE_HOME/tapegrad, else ~/.cache/tapegrad. */
export function defaultCacheDir(env: Record<string, string | undefined> = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg !== undefined && xdg !== "" ? xdg : join(homedir(), ".cache"), "tapegrad");
}

const warned = new Set<string>();

/** Forgets which fallback warnings were already printed (for tests). */
export function resetDataWarnings(): void {
  warned.clear();
}

function decode(spec: DatasetSpec, split: Split, found: Found, source: string, isSample: boolean): ImageDataset {
  const images = readIdx(found.images);
  const labels = readIdx(found.labels);
  if (images.dtype !== "uint8" || images.shape.length !== 3) {
    throw new Error(
      `${found.images}: expected a uint8 image file of shape [n, rows, cols], got ${images.dtype} [${images.shape.join(", ")}]`,
    );
  }
  if (labels.dtype !== "uint8" || labels.shape.length !== 1) {
    throw new Error(
      `${found.labels}: expected a uint8 label file of shape [n], got ${labels.dtype} [${labels.shape.join(", ")}]`,
    );
  }
  const [n, rows, cols] = images.shape;
  if (labels.shape[0] !== n) {
    throw new Error(`${found.labels}: holds ${labels.shape[0]} labels but ${found.images} holds ${n} images`);
  }
  const pixels = new Float32Array(images.data.length);
  const raw = images.data;
  for (let i = 0; i < raw.length; i++) pixels[i] = raw[i] / 255;
  const classIds = Int32Array.from(labels.data);
  for (let i = 0; i < n; i++) {
    if (classIds[i] >= spec.classes.length) {
      throw new Error(`${found.labels}: label ${classIds[i]} at index ${i} is outside 0..${spec.classes.length - 1}`);
    }
  }
  return {
    name: spec.name,
    split,
    images: pixels,
    labels: classIds,
    n,
    rows,
    cols,
    classes: [...spec.classes],
    source,
    isSample,
  };
}

async function downloadSplit(
  spec: DatasetSpec,
  split: Split,
  dir: string,
  baseUrls: string[],
  options: DatasetOptions,
): Promise<string> {
  const stems = idxFileNames(split);
  const failures: string[] = [];
  for (const base of baseUrls) {
    const url = base.endsWith("/") ? base : `${base}/`;
    try {
      for (const stem of [stems.images, stems.labels]) {
        const name = `${stem}.gz`;
        if (isFile(join(dir, name))) continue;
        const checksum = options.checksums?.[name] ?? spec.checksums[name];
        await downloadFile(`${url}${name}`, join(dir, name), { checksum, progress: options.progress });
      }
      return url;
    } catch (err) {
      if (!(err instanceof DownloadError)) throw err;
      failures.push(err.message);
    }
  }
  throw new Error(failures.join("; "));
}

function howToGet(spec: DatasetSpec, split: Split, cacheDir: string): string {
  const stems = idxFileNames(split);
  const files = `${stems.images}.gz and ${stems.labels}.gz`;
  const lines = [`To get ${spec.title}:`];
  const apt = spec.aptPackage !== undefined;
  if (apt) lines.push(`  - on Debian/Ubuntu: sudo apt-get install ${spec.aptPackage}`);
  lines.push(
    `  - ${apt ? "or " : ""}download ${files} from ${spec.mirrors.join(" or ")}`,
    `    into a directory and set TAPEGRAD_DATA=<that directory> (or pass { root: "<that directory>" })`,
    `  - or put them in ${cacheDir}, or set TAPEGRAD_DATA_URL to a reachable mirror`,
  );
  return lines.join("\n");
}

async function loadDataset(spec: DatasetSpec, options: DatasetOptions): Promise<ImageDataset> {
  const { split } = options;
  if (split !== "train" && split !== "test") {
    throw new Error(`${spec.name}: split must be "train" or "test", got ${JSON.stringify(split)}`);
  }
  const env = options.env ?? process.env;
  const cacheRoot = options.cacheDir ?? defaultCacheDir(env);
  const cacheDir = join(cacheRoot, spec.name);
  const searched: string[] = [];

  const candidates: Array<[string, string | undefined]> = [
    ["root", options.root],
    ["env", env.TAPEGRAD_DATA === "" ? undefined : env.TAPEGRAD_DATA],
    ["cache", cacheDir],
    ...(options.systemDirs ?? spec.systemDirs).map((dir): [string, string] => ["debian", dir]),
  ];
  for (const [kind, dir] of candidates) {
    if (dir === undefined) continue;
    const found = findSplit(dir, spec, split);
    if (found !== undefined) return decode(spec, split, found, `${kind}:${dir}`, false);
    searched.push(`${kind}:${dir}`);
  }

  let downloadProblem = "downloads disabled (download: false)";
  if (options.download !== false) {
    const override = options.baseUrl ?? (env.TAPEGRAD_DATA_URL === "" ? undefined : env.TAPEGRAD_DATA_URL);
    try {
      const url = await downloadSplit(spec, split, cacheDir, override !== undefined ? [override] : spec.mirrors, options);
      const found = findSplit(cacheDir, spec, split);
      if (found === undefined) throw new Error(`downloaded files are missing from ${cacheDir}`);
      return decode(spec, split, found, `download:${url}`, false);
    } catch (err) {
      downloadProblem = `download failed: ${(err as Error).message}`;
    }
  }

  const sampleDir = options.sampleDir ?? spec.sampleDir;
  if (options.allowSample !== false && sampleDir !== undefined && existsSync(sampleDir)) {
    const found = findSplit(sampleDir, spec, split);
    if (found !== undefined) {
      const data = decode(spec, split, found, "sample", true);
      if (!warned.has(spec.name)) {
        warned.add(spec.name);
        console.warn(
          `tapegrad: ${spec.title} not found (searched ${searched.join(", ")}; ${downloadProblem}); ` +
            `using the embedded sample (${data.n} ${split} images), accuracy will be lower than on the full set.\n` +
            howToGet(spec, split, cacheDir),
        );
      }
      return data;
    }
  }
  const noSample = spec.sampleDir === undefined ? ` (${spec.title} has no embedded sample)` : "";
  throw new Error(
    `${spec.title} ${split} split not found${noSample}.\n` +
      `Searched: ${searched.join(", ")}\n` +
      `${downloadProblem[0].toUpperCase()}${downloadProblem.slice(1)}\n` +
      howToGet(spec, split, cacheDir),
  );
}

/**
 * Loads Fashion-MNIST (28×28 grey clothing images, 10 classes). Looks in `root`, $TAPEGRAD_DATA, the
 * cache and Debian's dataset-fashion-mnist, then downloads, then falls back to the embedded sample.
 *
 * @example const train = await fashionMnist({ split: "train" }); train.images.length === train.n * 784
 */
export function fashionMnist(options: DatasetOptions): Promise<ImageDataset> {
  return loadDataset(FASHION_MNIST, options);
}

/**
 * Loads MNIST (28×28 handwritten digits). Same search order as fashionMnist; there is no embedded sample.
 *
 * @example const test = await mnist({ split: "test", root: "./data" });
 */
export function mnist(options: DatasetOptions): Promise<ImageDataset> {
  return loadDataset(MNIST, options);
}
