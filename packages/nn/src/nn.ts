/** The `nn` namespace: Module, Parameter, layers and models. */
export { Module, Parameter, StateDictError, type StateTensor, type LoadStateDictResult, type BufferOptions } from "./module.ts";
export {
  Linear, ReLU, Tanh, Sigmoid, Identity, Softmax, LogSoftmax, Flatten, Unflatten, Dropout, Sequential, ModuleList,
  type LinearOptions,
} from "./layers.ts";
export {
  Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm1d, BatchNorm2d, LayerNorm,
  type Conv2dLayerOptions, type MaxPool2dLayerOptions, type AvgPool2dLayerOptions, type BatchNormLayerOptions, type LayerNormLayerOptions,
} from "./cnn-layers.ts";
export { SoftmaxRegression, MLP } from "./models.ts";
export * as functional from "./functional.ts";
export * as init from "./init.ts";
