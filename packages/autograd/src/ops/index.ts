export * from "./binary.ts";
export * from "./unary.ts";
export * from "./reduce.ts";
export * from "./matmul.ts";
export * from "./pick.ts";
export * from "./shape.ts";
export * from "./softmax.ts";
export * from "./factories.ts";

import { installEngineOps } from "../engine.ts";
import { Tensor } from "../tensor.ts";
import * as K from "../kernels/index.ts";
import { add } from "./binary.ts";
import { cast, sumTo } from "./shape.ts";

installEngineOps({
  sumTo,
  add,
  cast,
  detachedCopy: (g) => new Tensor(g.data.slice(), g.shape),
  addInPlace: (target, g) => K.binary("add", target.data, target.shape, g.data, g.shape, target.data, target.shape),
});
