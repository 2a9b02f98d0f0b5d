/**
 * User-defined ops with a hand-written backward, like torch.autograd.Function: the forward runs untaped,
 * the result is recorded as one node named after the op, and the backward is called by the engine.
 */
import { GraphError, ValueError } from "./errors.ts";
import { noGrad, record, userOp } from "./tape.ts";
import { Tensor } from "./tensor.ts";

/** What forward and backward share: the inputs, the output, anything saved, which inputs need a gradient. */
export interface OpContext {
  readonly inputs: readonly Tensor[];
  /** The output of forward (set before backward runs). */
  output: Tensor;
  /** Whether each input requires grad: backward may return null for the others. */
  readonly needsInputGrad: readonly boolean[];
  /** Values saved by forward with `save` for use in backward. */
  readonly saved: unknown[];
  save(...values: unknown[]): void;
}

export interface OpDefinition {
  /** Shown in tape dumps (toDot), anomaly messages and gradcheck failures. */
  name: string;
  /** Computes the output from the inputs; runs without taping, so it may use any op or raw loops. */
  forward(ctx: OpContext, ...inputs: Tensor[]): Tensor;
  /**
   * The gradient of each input given the output's gradient: one entry per input (null for none), or a
   * single Tensor for a one-input op. Written with tensor ops, it is taped under createGraph, so the
   * custom op is twice differentiable.
   */
  backward(ctx: OpContext, grad: Tensor): Tensor | readonly (Tensor | null | undefined)[];
}

/**
 * Defines a differentiable op from a forward and a backward; the result is called like a built-in op.
 * @example
 * const cube = defineOp({
 *   name: "cube",
 *   forward: (ctx, x) => x.mul(x).mul(x),
 *   backward: (ctx, g) => [g.mul(ctx.inputs[0].square()).mul(3)],
 * });
 * cube(x).sum().backward();
 */
export function defineOp(definition: OpDefinition): (...inputs: Tensor[]) => Tensor {
  const { name, forward, backward } = definition;
  if (typeof name !== "string" || name.length === 0) throw new ValueError("defineOp: name must be a non-empty string");
  if (typeof forward !== "function" || typeof backward !== "function") {
    throw new ValueError(`defineOp ${name}: forward and backward must be functions`);
  }
  const id = userOp(name);
  const op = (...inputs: Tensor[]): Tensor => {
    inputs.forEach((x, i) => {
      if (!(x instanceof Tensor)) throw new ValueError(`${name}: argument ${i} is not a Tensor (got ${x === null ? "null" : typeof x})`);
    });
    const saved: unknown[] = [];
    const ctx: OpContext = {
      inputs,
      output: undefined as unknown as Tensor,
      needsInputGrad: inputs.map((x) => x.requiresGrad),
      saved,
      save: (...values) => void saved.push(...values),
    };
    const result = noGrad(() => forward(ctx, ...inputs));
    if (!(result instanceof Tensor)) throw new ValueError(`${name}: forward must return a Tensor, got ${result === null ? "null" : typeof result}`);
    // NOTE: a fresh tensor even when forward returns an input unchanged, so the node never lands on a leaf.
    const out = new Tensor(result.data, result.shape);
    ctx.output = out;
    const recorded = record(id, inputs, out, (g) => {
      const r = backward(ctx, g);
      const grads = r instanceof Tensor ? [r] : r;
      if (!Array.isArray(grads) || grads.length !== inputs.length) {
        throw new GraphError(
          `${name}: backward returned ${Array.isArray(grads) ? `${grads.length} gradients` : typeof grads} for ${inputs.length} input${inputs.length === 1 ? "" : "s"}; return one gradient (or null) per input`,
        );
      }
      grads.forEach((gi, i) => {
        if (gi != null && !(gi instanceof Tensor)) throw new GraphError(`${name}: backward returned a ${typeof gi} for input ${i}, expected a Tensor or null`);
      });
      return grads as (Tensor | null | undefined)[];
    });
    return recorded;
  };
  Object.defineProperty(op, "name", { value: name });
  return op;
}
