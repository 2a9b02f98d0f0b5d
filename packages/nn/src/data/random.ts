/** Reproducible shuffling for data loaders, from autograd's seeded generator family. */
import { streamGenerator } from "@tapegrad/autograd";

/**
 * The permutation of 0..n-1 for one epoch: a pure function of (seed, epoch), so epoch k is the same
 * whatever happened before it.
 */
export function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  return streamGenerator(seed, epoch).permutation(n);
}
