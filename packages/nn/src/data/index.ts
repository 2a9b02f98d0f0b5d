/** Data that lives in memory: IDX bytes, image datasets and mini-batch loading. Runs anywhere (files: `@tapegrad/nn/node`). */
export {
  type IdxArray,
  type IdxArrayMap,
  type IdxData,
  type IdxDtype,
  IdxFormatError,
  encodeIdx,
  isGzip,
  parseIdx,
} from "./idx.ts";
export { type ImageDataset, type ImageDatasetInfo, type Split, idxFileNames, imageDataset } from "./image-dataset.ts";
export { DataLoader, type DataLoaderOptions, type DataLoaderState, type LoaderDataset, TensorDataset } from "./loader.ts";
export { epochPermutation } from "./random.ts";
