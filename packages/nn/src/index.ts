/**
 * @tapegrad/nn: modules, losses, optimizers, init, checkpoints as bytes and in-memory data, PyTorch-style.
 * Runs in Node and in browsers; files, data set downloads and the cache are in `@tapegrad/nn/node`.
 * @example
 * import { nn, optim, F } from "@tapegrad/nn";
 * const model = new nn.Sequential(new nn.Linear(784, 128), new nn.ReLU(), new nn.Linear(128, 10));
 * const opt = new optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
 */
export * as nn from "./nn.ts";
export * as F from "./functional.ts";
export * as functional from "./functional.ts";
export * as optim from "./optim-index.ts";
export * as init from "./init.ts";
export { Module, Parameter, StateDictError } from "./module.ts";
export type { Reduction, Labels, LossOptions } from "./functional.ts";
export {
  serialize, deserialize, CheckpointError, MAX_HEADER_BYTES, type CheckpointDtype, type TensorLike, type LoadedTensor,
} from "./safetensors.ts";
export * as data from "./data/index.ts";
export { DataLoader, type DataLoaderState, TensorDataset, type ImageDataset } from "./data/index.ts";
