/**
 * MNIST and Fashion-MNIST: find the IDX files on disk, or download them, or fall back to a small sample
 * the caller ships (the examples' Fashion-MNIST sample), and decode them into flat typed arrays.
 */
import { existsSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { TapegradError, ValueError } from "@tapegrad/autograd";
import { type ImageDataset, type Split, idxFileNames, imageDataset } from "../data/image-dataset.ts";
import { type Checksum, DownloadError, type DownloadProgress, downloadFile } from "./download.ts";
import { readIdx } from "./idx.ts";

/** No copy of the data set was found and none could be downloaded; the message says how to get it. */
export class DatasetNotFoundError extends TapegradError {}

export interface DatasetOptions {
  split: Split;
  /** A directory holding the IDX files (or a `<dataset>/` folder of them); searched first. */
  root?: string;
  /**
   * Look in `root` only (no $TAPEGRAD_DATA, cache, system copy, download or sample): a missing folder or
   * file is a DatasetNotFoundError naming it. Default false.
   */
  strict?: boolean;
  /** Download into the cache when no local copy is found (default true). */
  download?: boolean;
  /** Fall back to `sampleDir` when nothing else works (default true). */
  allowSample?: boolean;
  /** Base URL to download from instead of the official mirrors (also env TAPEGRAD_DATA_URL). */
  baseUrl?: string;
  /** Cache root holding `<dataset>/` (default $XDG_CACHE_HOME/tapegrad or ~/.cache/tapegrad). */
  cacheDir?: string;
  /** System install directories searched after the cache (default: Debian's /usr/share/datasets/…). */
  systemDirs?: string[];
  /**
   * A directory holding a small subset of the data set in the same file layout, used (with a warning) when
   * nothing else is found; no default. The repository's examples pass their Fashion-MNIST sample.
   */
  sampleDir?: string;
  /** Environment to read TAPEGRAD_DATA, TAPEGRAD_DATA_URL, XDG_CACHE_HOME from (default process.env). */
  env?: Record<string, string | undefined>;
  /** Expected digests by file name, replacing the built-in ones for the files named. */
  checksums?: Record<string, Checksum>;
  /**
   * Called as downloaded bytes arrive (draw a progress bar from it). Without it, each download is announced
   * by one line on stderr.
   */
  onProgress?: (progress: DownloadProgress) => void;
}

interface DatasetSpec {
  name: string;
  title: string;
  classes: string[];
  mirrors: string[];
  checksums: Record<string, Checksum>;
  systemDirs: string[];
  aptPackage?: string;
}

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
  return imageDataset(readIdx(found.images), readIdx(found.labels), {
    name: spec.name,
    split,
    classes: spec.classes,
    source,
    isSample,
    imagesFile: found.images,
    labelsFile: found.labels,
  });
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
        if (options.onProgress === undefined) console.warn(`tapegrad: downloading ${url}${name}`);
        await downloadFile(`${url}${name}`, join(dir, name), { checksum, onProgress: options.onProgress });
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

/** The split from `root` alone, or a DatasetNotFoundError naming the missing folder or files. */
function loadFromRootOnly(spec: DatasetSpec, split: Split, root: string | undefined): ImageDataset {
  if (root === undefined) throw new ValueError(`${spec.name}: strict: true needs a root directory`);
  let isDir = false;
  try {
    isDir = statSync(root).isDirectory();
  } catch {
    throw new DatasetNotFoundError(`${spec.title} ${split} split: the folder ${root} does not exist`);
  }
  if (!isDir) throw new DatasetNotFoundError(`${spec.title} ${split} split: ${root} is a file, not a folder`);
  const found = findSplit(root, spec, split);
  if (found !== undefined) return decode(spec, split, found, `root:${root}`, false);
  const stems = idxFileNames(split);
  const missing = [stems.images, stems.labels].filter((stem) => findFile(root, stem) === undefined && findFile(join(root, spec.name), stem) === undefined);
  throw new DatasetNotFoundError(
    `${spec.title} ${split} split not found in ${root}: ${missing.length ? `missing ${missing.join(" and ")}` : "its image and label files are in different folders"} ` +
      `(looked in ${root} and ${join(root, spec.name)}; raw or .gz)`,
  );
}

async function loadDataset(spec: DatasetSpec, options: DatasetOptions): Promise<ImageDataset> {
  const { split } = options;
  if (split !== "train" && split !== "test") {
    throw new ValueError(`${spec.name}: split must be "train" or "test", got ${JSON.stringify(split)}`);
  }
  if (options.strict) return loadFromRootOnly(spec, split, options.root);
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

  const { sampleDir } = options;
  if (options.allowSample !== false && sampleDir !== undefined && existsSync(sampleDir)) {
    const found = findSplit(sampleDir, spec, split);
    if (found !== undefined) {
      const data = decode(spec, split, found, "sample", true);
      if (!warned.has(spec.name)) {
        warned.add(spec.name);
        console.warn(
          `tapegrad: ${spec.title} not found (searched ${searched.join(", ")}; ${downloadProblem}); ` +
            `using the sample in ${sampleDir} (${data.n} ${split} images), accuracy will be lower than on the full set.\n` +
            howToGet(spec, split, cacheDir),
        );
      }
      return data;
    }
  }
  throw new DatasetNotFoundError(
    `${spec.title} ${split} split not found.\n` +
      `Searched: ${searched.join(", ")}\n` +
      `${downloadProblem[0].toUpperCase()}${downloadProblem.slice(1)}\n` +
      howToGet(spec, split, cacheDir),
  );
}

/**
 * Loads Fashion-MNIST (28×28 grey clothing images, 10 classes). Looks in `root`, $TAPEGRAD_DATA, the
 * cache and Debian's dataset-fashion-mnist, then downloads, then falls back to `sampleDir` if given.
 *
 * @example const train = await fashionMnist({ split: "train" }); train.images.length === train.n * 784
 */
export function fashionMnist(options: DatasetOptions): Promise<ImageDataset> {
  return loadDataset(FASHION_MNIST, options);
}

/**
 * Loads MNIST (28×28 handwritten digits). Same search order as fashionMnist.
 *
 * @example const test = await mnist({ split: "test", root: "./data" });
 */
export function mnist(options: DatasetOptions): Promise<ImageDataset> {
  return loadDataset(MNIST, options);
}
