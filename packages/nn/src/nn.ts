/** The `nn` namespace: Module, Parameter, layers and models. */
export { Module, Parameter, StateDictError, type StateTensor, type LoadStateDictResult } from "./module.ts";
export {
  Linear, ReLU, Tanh, Sigmoid, Identity, Softmax, LogSoftmax, Flatten, Dropout, Sequential, ModuleList,
  type LinearOptions,
} from "./layers.ts";
export { SoftmaxRegression, MLP } from "./models.ts";
export * as functional from "./functional.ts";
export * as init from "./init.ts";
