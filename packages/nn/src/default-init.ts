/** The default initialisation Linear and Conv2d share (internal: not exported from the package). */
import type { Tensor } from "@tapegrad/autograd";
import { calculateFans, kaimingUniform_, uniform_ } from "./init.ts";

/** PyTorch's default for Linear and Conv layers: weight kaiming_uniform(a = √5), bias U(±1/√fanIn). */
export function resetWeightAndBias(weight: Tensor, bias: Tensor | null): void {
  kaimingUniform_(weight, { a: Math.sqrt(5) });
  if (bias) {
    const { fanIn } = calculateFans(weight);
    const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
    uniform_(bias, -bound, bound);
  }
}
