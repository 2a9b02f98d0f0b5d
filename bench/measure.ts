/** Timing helpers shared by the benchmark workloads. */

export interface Timing {
  medianMs: number;
  runs: number;
}

export interface MeasureOptions {
  warmup: number;
  minRuns: number;
  /** Keep repeating until this much time has passed (and minRuns is reached). */
  minTimeMs: number;
}

/** Median wall time of `fn` after `warmup` untimed calls. */
export async function measure(fn: () => unknown, options: MeasureOptions): Promise<Timing> {
  for (let i = 0; i < options.warmup; i++) await fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < options.minRuns || performance.now() - start < options.minTimeMs) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
    if (times.length >= 10_000) break;
  }
  times.sort((x, y) => x - y);
  return { medianMs: times[times.length >> 1], runs: times.length };
}

/** Deterministic uniform [0, 1) stream (xorshift32), so every run benchmarks the same numbers. */
export function uniformStream(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 2 ** 32;
  };
}

export function filledArray<T extends Float32Array | Float64Array>(out: T, seed: number): T {
  const next = uniformStream(seed);
  for (let i = 0; i < out.length; i++) out[i] = next() * 2 - 1;
  return out;
}
