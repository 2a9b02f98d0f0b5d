/** Ready-made models. */
import type { DType, Tensor } from "@tapegrad/autograd";
import { ValueError } from "@tapegrad/autograd";
import { Linear, ReLU, Sequential } from "./layers.ts";
import { Module } from "./module.ts";

/**
 * Multinomial logistic regression: one Linear layer producing logits (train with F.crossEntropy).
 * Parameters: "linear.weight" [classes, in], "linear.bias" [classes].
 * @example new SoftmaxRegression(784, 10)
 */
export class SoftmaxRegression extends Module {
  linear: Linear;

  constructor(inFeatures: number, classes: number, options: { bias?: boolean; dtype?: DType } = {}) {
    super();
    this.linear = new Linear(inFeatures, classes, options);
  }

  override forward(x: Tensor): Tensor {
    return this.linear.forward(x.ndim > 2 ? x.flatten(1) : x);
  }
}

/**
 * A multilayer perceptron: Linear layers of the given sizes with ReLU between them (none after the last),
 * as a Sequential, so parameters are named "0.weight", "0.bias", "2.weight", ...
 * @example new MLP([784, 128, 10]) // Linear(784,128), ReLU, Linear(128,10)
 */
export class MLP extends Sequential {
  constructor(sizes: readonly number[], options: { bias?: boolean; dtype?: DType } = {}) {
    super();
    if (sizes.length < 2) throw new ValueError(`MLP: needs at least an input and an output size, got [${sizes.join(", ")}]`);
    for (let i = 0; i + 1 < sizes.length; i++) {
      if (i > 0) this.append(new ReLU());
      this.append(new Linear(sizes[i], sizes[i + 1], options));
    }
  }

  override forward(x: Tensor): Tensor {
    return super.forward(x.ndim > 2 ? x.flatten(1) : x);
  }
}
