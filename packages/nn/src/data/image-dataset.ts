/** Image-classification data sets held in memory: the shape every loader returns, built from decoded IDX arrays. */
import type { IdxArray } from "./idx.ts";
import { IdxFormatError } from "./idx.ts";

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
  /** True when this is a small subset (the examples' embedded sample) rather than the full dataset. */
  isSample: boolean;
}

/** The standard file stems of a split: train-… for "train", t10k-… for "test". */
export function idxFileNames(split: Split): { images: string; labels: string } {
  const prefix = split === "train" ? "train" : "t10k";
  return { images: `${prefix}-images-idx3-ubyte`, labels: `${prefix}-labels-idx1-ubyte` };
}

export interface ImageDatasetInfo {
  name: string;
  split: Split;
  classes: string[];
  /** Default "memory". */
  source?: string;
  /** Default false. */
  isSample?: boolean;
  /** Names of the two files in error messages (default "images" and "labels"). */
  imagesFile?: string;
  labelsFile?: string;
}

/**
 * An ImageDataset from a decoded uint8 image array [n, rows, cols] and label array [n]: pixels scaled to
 * [0, 1], labels checked against the classes.
 * @example imageDataset(parseIdx(imageBytes), parseIdx(labelBytes), { name: "fashion-mnist", split: "test", classes })
 */
export function imageDataset(images: IdxArray, labels: IdxArray, info: ImageDatasetInfo): ImageDataset {
  const imagesFile = info.imagesFile ?? "images";
  const labelsFile = info.labelsFile ?? "labels";
  if (images.dtype !== "uint8" || images.shape.length !== 3) {
    throw new IdxFormatError(imagesFile, `expected a uint8 image file of shape [n, rows, cols], got ${images.dtype} [${images.shape.join(", ")}]`);
  }
  if (labels.dtype !== "uint8" || labels.shape.length !== 1) {
    throw new IdxFormatError(labelsFile, `expected a uint8 label file of shape [n], got ${labels.dtype} [${labels.shape.join(", ")}]`);
  }
  const [n, rows, cols] = images.shape;
  if (labels.shape[0] !== n) {
    throw new IdxFormatError(labelsFile, `holds ${labels.shape[0]} labels but ${imagesFile} holds ${n} images`);
  }
  const pixels = new Float32Array(images.data.length);
  const raw = images.data;
  for (let i = 0; i < raw.length; i++) pixels[i] = raw[i] / 255;
  const classIds = Int32Array.from(labels.data);
  for (let i = 0; i < n; i++) {
    if (classIds[i] >= info.classes.length) {
      throw new IdxFormatError(labelsFile, `label ${classIds[i]} at index ${i} is outside 0..${info.classes.length - 1}`);
    }
  }
  return {
    name: info.name,
    split: info.split,
    images: pixels,
    labels: classIds,
    n,
    rows,
    cols,
    classes: [...info.classes],
    source: info.source ?? "memory",
    isSample: info.isSample ?? false,
  };
}
