/** Every op, and `opTable`: the test entries (OpInfo) declared beside them. */
import type { OpInfo } from "../opinfo.ts";
import { binaryOpInfo } from "./binary.ts";
import { castOpInfo } from "./cast.ts";
import { matmulOpInfo } from "./matmul.ts";
import { pickOpInfo } from "./pick.ts";
import { reduceOpInfo } from "./reduce.ts";
import { shapeOpInfo } from "./shape.ts";
import { softmaxOpInfo } from "./softmax.ts";
import { unaryOpInfo } from "./unary.ts";
import { convOpInfo } from "./conv.ts";
import { poolOpInfo } from "./pool.ts";
import { normOpInfo } from "./norm.ts";
import { joinOpInfo } from "./join.ts";
import { dropoutOpInfo } from "./dropout.ts";

export { add, sub, mul, div, pow, maximum, minimum, compare } from "./binary.ts";
export { neg, exp, log, relu, tanh, sigmoid, softplus, sqrt, abs } from "./unary.ts";
export { sum, mean, max, min, argmax, logsumexp, sumTo } from "./reduce.ts";
export { matmul, mm, linear } from "./matmul.ts";
export { pick, unpick } from "./pick.ts";
export { reshape, flatten, unsqueeze, squeeze, permute, transpose, reverseAxes, narrow, broadcastTo, clone, pinMemory, isPinned } from "./shape.ts";
export { cast } from "./cast.ts";
export { logSoftmax, softmax } from "./softmax.ts";
export { conv2d, type Conv2dOptions, type Conv2dPadding, type Pair } from "./conv.ts";
export { maxPool2d, avgPool2d, sigmoidAvgPool2d, adaptiveAvgPool2d, type MaxPool2dOptions, type AvgPool2dOptions, type AdaptiveSize } from "./pool.ts";
export { batchNorm, layerNorm, type BatchNormOptions, type LayerNormOptions } from "./norm.ts";
export { pad, cat, stack } from "./join.ts";
export { dropout, type DropoutOptions } from "./dropout.ts";
export * from "./factories.ts";

/** The test entries of every op, collected from the ops' files (see opinfo.ts). */
export const opTable: readonly OpInfo[] = [
  ...binaryOpInfo, ...unaryOpInfo, ...castOpInfo, ...shapeOpInfo, ...matmulOpInfo, ...reduceOpInfo,
  ...softmaxOpInfo, ...pickOpInfo, ...convOpInfo, ...poolOpInfo, ...normOpInfo, ...joinOpInfo, ...dropoutOpInfo,
];
