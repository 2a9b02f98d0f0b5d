import { GraphError, ShapeError, fmtShape } from "./errors.ts";
import { runBackward } from "./engine.ts";
import { cast, onesLike } from "./ops/index.ts";
import { sameShape } from "./shape.ts";
import type { Tensor } from "./tensor.ts";

export interface GradOptions {
  /** Record the backward pass so the returned gradients can be differentiated again. */
  createGraph?: boolean;
  /** Keep the graph for another backward (defaults to createGraph). */
  retainGraph?: boolean;
  /** The vector in the vector-Jacobian product, one per output; required for non-scalar outputs. */
  gradOutput?: Tensor | Tensor[];
  /** Return null instead of throwing for inputs the output does not depend on. */
  allowUnused?: boolean;
}

/**
 * Gradients of `output` with respect to `inputs`, like torch.autograd.grad; no `.grad` is touched.
 * @example const [gx] = grad(y, [x], { createGraph: true }); // gx can be differentiated again
 */
export function grad(output: Tensor | Tensor[], inputs: Tensor | Tensor[], options: GradOptions & { allowUnused: true }): (Tensor | null)[];
export function grad(output: Tensor | Tensor[], inputs: Tensor | Tensor[], options?: GradOptions): Tensor[];
export function grad(output: Tensor | Tensor[], inputs: Tensor | Tensor[], options: GradOptions = {}): (Tensor | null)[] {
  const outputs = Array.isArray(output) ? output : [output];
  const targets = Array.isArray(inputs) ? inputs : [inputs];
  const given = options.gradOutput === undefined ? [] : Array.isArray(options.gradOutput) ? options.gradOutput : [options.gradOutput];
  const seeds = outputs.map((o, i) => {
    if (!o.requiresGrad) throw new GraphError(`grad: output ${i} ${fmtShape(o.shape)} does not require grad`);
    const g = given[i];
    if (g === undefined) {
      if (o.size !== 1) {
        throw new GraphError(`grad: output ${i} has shape ${fmtShape(o.shape)}; a non-scalar output needs gradOutput`);
      }
      return onesLike(o);
    }
    if (!sameShape(g.shape, o.shape)) {
      throw new ShapeError(`grad: gradOutput ${i} of shape ${fmtShape(g.shape)} does not match output shape ${fmtShape(o.shape)}`);
    }
    return g.dtype === o.dtype ? g : cast(g, o.dtype);
  });
  return runBackward(outputs, seeds, { ...options, targets });
}
