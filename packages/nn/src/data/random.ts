/** Seeded pseudo-random numbers for reproducible shuffling (not for cryptography). */

/** Mixes a 32-bit value into a well-spread 32-bit value (the murmur3 finaliser). */
export function mix32(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * A mulberry32 generator: a 32-bit state, period 2^32, good enough to shuffle datasets.
 * Returns a function yielding uniform floats in [0, 1).
 *
 * @example const rand = mulberry32(42); rand(); // 0.6011…
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Shuffles `array` in place (Fisher–Yates) using `rand`, and returns it. */
export function shuffleInPlace<T extends { length: number; [i: number]: number }>(array: T, rand: () => number): T {
  for (let i = array.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const tmp = array[i];
    array[i] = array[j];
    array[j] = tmp;
  }
  return array;
}

/**
 * The permutation of 0..n-1 for one epoch: a pure function of (seed, epoch), so epoch k is the same
 * whatever happened before it.
 */
export function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  return shuffleInPlace(perm, mulberry32(mix32(mix32(seed) ^ Math.imul(epoch + 1, 0x9e3779b9))));
}
