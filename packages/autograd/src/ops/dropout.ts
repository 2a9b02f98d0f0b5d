/** Dropout: x times a constant random mask, so its gradient (any order) is the mask's product again. */
import { ValueError } from "../errors.ts";
import { kindInfo, type OpInfo } from "../opinfo.ts";
import { defaultGenerator, Generator } from "../random.ts";
import type { Tensor } from "../tensor-class.ts";
import { mul } from "./binary.ts";
import { empty } from "./util.ts";

export interface DropoutOptions {
  /** Where the mask's random numbers come from (default: the global generator that manualSeed seeds). */
  generator?: Generator;
}

/**
 * Zeroes each element with probability p and scales the others by 1/(1 − p) in training
 * (torch.nn.functional.dropout); the identity when not training or p = 0.
 * @example dropout(h, 0.5, model.training)
 */
export function dropout(x: Tensor, p = 0.5, training = true, options: DropoutOptions | Generator = {}): Tensor {
  if (typeof p !== "number" || !(p >= 0 && p <= 1)) throw new ValueError(`dropout: probability must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x;
  const generator = options instanceof Generator ? options : options.generator ?? defaultGenerator;
  const mask = empty(x.dtype, x.shape);
  const scale = p === 1 ? 0 : 1 / (1 - p);
  const m = mask.data;
  for (let i = 0; i < m.length; i++) m[i] = generator.uniform() < p ? 0 : scale;
  return mul(x, mask);
}

export const dropoutOpInfo: readonly OpInfo[] = [
  // each call draws the same mask from a generator seeded by the sample, as gradcheck's repeated calls need
  kindInfo("dropout", "dropout", 1, ([x], a) => dropout(x, a.p, true, { generator: new Generator(a.seed) })),
];
