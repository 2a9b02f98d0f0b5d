/** Datasets, IDX files and mini-batch loading for tapegrad. */
export {
  type IdxArray,
  type IdxArrayMap,
  type IdxData,
  type IdxDtype,
  IdxFormatError,
  encodeIdx,
  isGzip,
  parseIdx,
  readIdx,
  writeFileAtomic,
  writeIdx,
} from "./idx.ts";
export { type Checksum, type DownloadOptions, DownloadError, downloadFile } from "./download.ts";
export {
  type DatasetOptions,
  type ImageDataset,
  type Split,
  defaultCacheDir,
  fashionMnist,
  idxFileNames,
  mnist,
} from "./datasets.ts";
export { DataLoader, type DataLoaderOptions, type LoaderDataset, TensorDataset } from "./loader.ts";
export { epochPermutation, mulberry32, shuffleInPlace } from "./random.ts";
