export { Tensor } from "./tensor.ts";
export type { NestedArray, Axis, TensorOptions, TensorLikeInput, IndexInput } from "./tensor.ts";
export type { DType, FloatArray } from "./dtype.ts";
export { noGrad, enableGrad, isGradEnabled, record, declareOp, type BackwardFn, type OpId, type OpSaves, type Node } from "./tape.ts";
export { detectAnomaly, isAnomalyEnabled } from "./anomaly.ts";
export type { BackwardOptions } from "./engine.ts";
export { grad, type GradOptions } from "./autograd.ts";
export { manualSeed, Generator, defaultGenerator, streamGenerator, type GeneratorState } from "./random.ts";
export {
  tensor, zeros, ones, full, zerosLike, onesLike, fullLike, randn, rand, arange, eye,
  type FactoryOptions, type RandomOptions,
} from "./ops/factories.ts";
export {
  add, sub, mul, div, pow, maximum, minimum, neg, exp, log, relu, tanh, sigmoid, softplus, sqrt, abs,
  matmul, mm, linear, sum, mean, max, min, argmax, logsumexp, pick, reshape, flatten, transpose, permute,
  broadcastTo, sumTo, unsqueeze, squeeze, narrow, cast, clone, pinMemory, isPinned, logSoftmax, softmax,
  conv2d, maxPool2d, avgPool2d, sigmoidAvgPool2d, adaptiveAvgPool2d, batchNorm, layerNorm, pad, cat, stack, dropout,
  type Conv2dOptions, type Conv2dPadding, type Pair, type MaxPool2dOptions, type AvgPool2dOptions, type AdaptiveSize,
  type BatchNormOptions, type LayerNormOptions, type DropoutOptions,
} from "./ops/index.ts";
export {
  TapegradError, ShapeError, AxisError, IndexError, GraphError, AnomalyError, ValueError, fmtShape,
} from "./errors.ts";
export { broadcastShapes } from "./shape.ts";
export { recycleGrad, releaseWithGraph, setBufferPool, emptyBufferPool, bufferPoolSize } from "./memory.ts";
export { gradcheck, gradgradcheck, GradcheckError, type GradcheckOptions, type GradcheckFn } from "./gradcheck.ts";
export { defineOp, type OpDefinition, type OpContext } from "./custom.ts";
export { toDot, type ToDotOptions } from "./dot.ts";
