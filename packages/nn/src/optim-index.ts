/** The `optim` namespace: optimizers and learning-rate schedulers. */
export {
  Optimizer, SGD, Adam, AdamW,
  type SGDOptions, type AdamOptions, type ParamGroup, type ParamGroupInput, type ParamsInput, type ParamState,
  type OptimizerStateDict,
} from "./optim.ts";
export { LRScheduler, StepLR, CosineAnnealingLR } from "./schedulers.ts";
export * as lrScheduler from "./schedulers.ts";
