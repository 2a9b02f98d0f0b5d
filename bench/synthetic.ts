import { uniformStream } from "./measure.ts";

/** A synthetic MNIST-sized data set: pixels uniform in [0, 1), labels uniform over the classes. */
export interface Synthetic {
  x: Float32Array;
  y: Int32Array;
  features: number;
}

const cache = new Map<string, Synthetic>();

export function synthetic(samples: number, features: number, classes: number): Synthetic {
  const key = `${samples}:${features}:${classes}`;
  let data = cache.get(key);
  if (!data) {
    const next = uniformStream(1);
    const x = new Float32Array(samples * features);
    for (let i = 0; i < x.length; i++) x[i] = next();
    const y = new Int32Array(samples);
    for (let i = 0; i < samples; i++) y[i] = Math.floor(next() * classes);
    data = { x, y, features };
    cache.set(key, data);
  }
  return data;
}

/** He-initialised weights (fanIn×fanOut, row-major) for the layer at `index`. */
export function heWeights(fanIn: number, fanOut: number, seed: number): Float32Array {
  const next = uniformStream(seed);
  const w = new Float32Array(fanIn * fanOut);
  const scale = Math.sqrt(2 / fanIn);
  for (let i = 0; i < w.length; i += 2) {
    // Box–Muller: two normals per pair of uniforms.
    const r = Math.sqrt(-2 * Math.log(1 - next()));
    const t = 2 * Math.PI * next();
    w[i] = r * Math.cos(t) * scale;
    if (i + 1 < w.length) w[i + 1] = r * Math.sin(t) * scale;
  }
  return w;
}
