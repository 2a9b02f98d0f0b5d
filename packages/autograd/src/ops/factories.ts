/** Tensor factories. Random ones draw from the global seeded generator (see manualSeed). */
import type { DType } from "../dtype.ts";
import { allocate } from "../dtype.ts";
import { ValueError } from "../errors.ts";
import { defaultGenerator, type Generator } from "../random.ts";
import { checkShape, sizeOf } from "../shape.ts";
import { Tensor } from "../tensor.ts";

export interface FactoryOptions {
  dtype?: DType;
  requiresGrad?: boolean;
}

export interface RandomOptions extends FactoryOptions {
  generator?: Generator;
}

function make(op: string, shape: readonly number[], opts: FactoryOptions, fill: (data: Float32Array | Float64Array) => void): Tensor {
  checkShape(op, shape);
  const data = allocate(opts.dtype ?? "float32", sizeOf(shape));
  fill(data);
  return new Tensor(data, shape, opts.requiresGrad ?? false);
}

/** @example zeros([2, 3]) */
export function zeros(shape: readonly number[], opts: FactoryOptions = {}): Tensor {
  return make("zeros", shape, opts, () => {});
}

export function ones(shape: readonly number[], opts: FactoryOptions = {}): Tensor {
  return make("ones", shape, opts, (d) => d.fill(1));
}

export function full(shape: readonly number[], value: number, opts: FactoryOptions = {}): Tensor {
  return make("full", shape, opts, (d) => d.fill(value));
}

export function zerosLike(x: Tensor, opts: FactoryOptions = {}): Tensor {
  return zeros(x.shape, { dtype: x.dtype, ...opts });
}

export function onesLike(x: Tensor, opts: FactoryOptions = {}): Tensor {
  return ones(x.shape, { dtype: x.dtype, ...opts });
}

export function fullLike(x: Tensor, value: number, opts: FactoryOptions = {}): Tensor {
  return full(x.shape, value, { dtype: x.dtype, ...opts });
}

/** Standard normal samples. @example manualSeed(0); randn([784, 128]) */
export function randn(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  const gen = opts.generator ?? defaultGenerator;
  return make("randn", shape, opts, (d) => {
    for (let i = 0; i < d.length; i++) d[i] = gen.normal();
  });
}

/** Uniform samples in [0, 1). */
export function rand(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  const gen = opts.generator ?? defaultGenerator;
  return make("rand", shape, opts, (d) => {
    for (let i = 0; i < d.length; i++) d[i] = gen.uniform();
  });
}

/** [start, stop) in steps of `step`; arange(n) counts 0..n-1. */
export function arange(start: number, stop?: number, step = 1, opts: FactoryOptions = {}): Tensor {
  if (stop === undefined) {
    stop = start;
    start = 0;
  }
  if (step === 0 || !Number.isFinite(step)) throw new ValueError(`arange: step must be a finite non-zero number, got ${step}`);
  const n = Math.max(0, Math.ceil((stop - start) / step));
  return make("arange", [n], opts, (d) => {
    for (let i = 0; i < n; i++) d[i] = start + i * step;
  });
}

/** The n×n identity. */
export function eye(n: number, opts: FactoryOptions = {}): Tensor {
  return make("eye", [n, n], opts, (d) => {
    for (let i = 0; i < n; i++) d[i * n + i] = 1;
  });
}
