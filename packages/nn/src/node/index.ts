/**
 * @tapegrad/nn/node: what needs a file system or the network — checkpoints saved to and loaded from paths,
 * IDX files, MNIST and Fashion-MNIST found on disk or downloaded into the cache. Everything else is in
 * `@tapegrad/nn`, which runs anywhere.
 * @example
 * import { fashionMnist, saveSync } from "@tapegrad/nn/node";
 * const train = await fashionMnist({ split: "train" });
 */
export { save, load, saveSync, loadSync, loadState, loadStateSync } from "./checkpoint.ts";
export { readIdx, writeIdx } from "./idx.ts";
export { writeFileAtomic } from "./atomic.ts";
export { type Checksum, type DownloadOptions, type DownloadProgress, DownloadError, downloadFile } from "./download.ts";
export { type DatasetOptions, DatasetNotFoundError, defaultCacheDir, fashionMnist, mnist } from "./datasets.ts";
export type { ImageDataset, Split } from "../data/image-dataset.ts";
