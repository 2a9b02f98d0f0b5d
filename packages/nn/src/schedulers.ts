/**
 * Learning-rate schedulers with PyTorch's (chainable) semantics: constructing one counts as epoch 0, each
 * `step()` (call it after `opt.step()`, once per epoch) advances one epoch and writes the new lr into every
 * parameter group.
 */
import { ValueError } from "@tapegrad/autograd";
import type { Optimizer } from "./optim.ts";

export abstract class LRScheduler {
  /** Epochs stepped so far (0 right after construction). */
  lastEpoch = 0;
  /** Every group's lr at construction (its initialLr). */
  readonly baseLrs: number[];
  protected lastLr: number[];

  constructor(readonly optimizer: Optimizer) {
    this.baseLrs = optimizer.paramGroups.map((g) => {
      g.initialLr ??= g.options.lr;
      return g.initialLr;
    });
    this.lastLr = optimizer.paramGroups.map((g) => g.options.lr);
  }

  /** The lr of every group for `lastEpoch`, from the groups' current lr (chainable form). */
  protected abstract computeLr(): number[];

  /** Advances one epoch and updates the optimizer's learning rates. */
  step(): void {
    this.lastEpoch++;
    const lrs = this.computeLr();
    this.optimizer.paramGroups.forEach((g, i) => (g.options.lr = lrs[i]));
    this.lastLr = lrs;
  }

  /** The learning rates the last step (or construction) set, one per parameter group. */
  getLastLr(): number[] {
    return [...this.lastLr];
  }

  stateDict(): { lastEpoch: number; baseLrs: number[]; lastLr: number[] } {
    return { lastEpoch: this.lastEpoch, baseLrs: [...this.baseLrs], lastLr: [...this.lastLr] };
  }

  loadStateDict(state: { lastEpoch: number; lastLr: number[] }): void {
    this.lastEpoch = state.lastEpoch;
    this.lastLr = [...state.lastLr];
  }
}

/**
 * Multiplies the lr by gamma every `stepSize` epochs.
 * @example const sched = new StepLR(opt, { stepSize: 30, gamma: 0.1 }); // per epoch: train, then sched.step()
 */
export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;

  constructor(optimizer: Optimizer, options: { stepSize: number; gamma?: number }) {
    super(optimizer);
    if (!Number.isInteger(options?.stepSize) || options.stepSize <= 0) {
      throw new ValueError(`StepLR: stepSize must be a positive integer, got ${options?.stepSize}`);
    }
    this.stepSize = options.stepSize;
    this.gamma = options.gamma ?? 0.1;
  }

  protected computeLr(): number[] {
    const groups = this.optimizer.paramGroups;
    if (this.lastEpoch === 0 || this.lastEpoch % this.stepSize !== 0) return groups.map((g) => g.options.lr);
    return groups.map((g) => g.options.lr * this.gamma);
  }
}

/**
 * Cosine annealing from each group's initial lr down to etaMin over tMax epochs (then back up, periodically),
 * PyTorch's recursive form: η ← etaMin + (η − etaMin)·(1 + cos(πt/T)) / (1 + cos(π(t−1)/T)).
 * @example new CosineAnnealingLR(opt, { tMax: epochs })
 */
export class CosineAnnealingLR extends LRScheduler {
  readonly tMax: number;
  readonly etaMin: number;

  constructor(optimizer: Optimizer, options: { tMax: number; etaMin?: number }) {
    super(optimizer);
    if (!(options?.tMax > 0)) throw new ValueError(`CosineAnnealingLR: tMax must be positive, got ${options?.tMax}`);
    this.tMax = options.tMax;
    this.etaMin = options.etaMin ?? 0;
  }

  protected computeLr(): number[] {
    const t = this.lastEpoch, T = this.tMax, etaMin = this.etaMin;
    const groups = this.optimizer.paramGroups;
    if (t === 0) return groups.map((g) => g.options.lr);
    if ((t - 1 - T) % (2 * T) === 0) {
      return groups.map((g, i) => g.options.lr + ((this.baseLrs[i] - etaMin) * (1 - Math.cos(Math.PI / T))) / 2);
    }
    return groups.map(
      (g) => ((1 + Math.cos((Math.PI * t) / T)) / (1 + Math.cos((Math.PI * (t - 1)) / T))) * (g.options.lr - etaMin) + etaMin,
    );
  }
}
