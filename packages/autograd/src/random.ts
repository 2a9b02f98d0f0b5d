/**
 * The global seeded generator. `manualSeed(n)` makes every random factory and initializer reproducible
 * bit for bit. NOTE: xoshiro128** (32-bit state words, fast in JS), seeded through splitmix32.
 */
import { ValueError } from "./errors.ts";

/** A Generator's state (plain JSON). */
export interface GeneratorState {
  s: number[];
  spare: number | null;
}

export class Generator {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spare: number | null = null;

  constructor(seed = 0) {
    this.seed(seed);
  }

  seed(seed: number): void {
    let x = (Math.floor(seed) >>> 0) ^ Math.floor(seed / 0x100000000);
    const next = (): number => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    this.spare = null;
  }

  /** The generator's whole state (torch.Generator.get_state), to save with a checkpoint. */
  getState(): GeneratorState {
    return { s: [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0], spare: this.spare };
  }

  /** Restores a state from getState: the numbers that follow are those that followed then. */
  setState(state: GeneratorState): void {
    const { s, spare } = state;
    if (!Array.isArray(s) || s.length !== 4 || !s.every((v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff) || (spare !== null && typeof spare !== "number")) {
      throw new ValueError("Generator.setState: expected { s: four 32-bit unsigned integers, spare: number | null } from getState()");
    }
    [this.s0, this.s1, this.s2, this.s3] = s;
    this.spare = spare;
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5;
    const lo = this.nextUint32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Standard normal (Box–Muller, both values used). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Shuffles `array` in place (Fisher–Yates) and returns it. */
  shuffle<T extends { length: number; [i: number]: number }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  /** A random permutation of 0..n-1 (torch.randperm). */
  permutation(n: number): Int32Array {
    const perm = new Int32Array(n);
    for (let i = 0; i < n; i++) perm[i] = i;
    return this.shuffle(perm);
  }
}

/**
 * A generator for one stream of a seeded family: the same (seed, stream) always gives the same numbers,
 * and different streams (say, one per epoch) are unrelated. @example streamGenerator(seed, epoch).permutation(n)
 */
export function streamGenerator(seed: number, stream: number): Generator {
  return new Generator(mix32(mix32(seed) ^ Math.imul(stream + 1, 0x9e3779b9)));
}

/** Mixes a 32-bit value into a well-spread 32-bit value (the murmur3 finaliser). */
function mix32(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export const defaultGenerator = new Generator(0);

/** Seeds the global generator: `manualSeed(0)` makes a run reproducible. */
export function manualSeed(seed: number): void {
  defaultGenerator.seed(seed);
}
