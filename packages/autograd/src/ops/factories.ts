/** Tensor factories. Random ones draw from the global seeded generator (see manualSeed). */
import type { DType, FloatArray } from "../dtype.ts";
import { arrayTypes, isDType } from "../dtype.ts";
import { ShapeError, ValueError, fmtShape } from "../errors.ts";
import { allocate, allocateUnfilled } from "../memory.ts";
import { defaultGenerator, type Generator } from "../random.ts";
import { checkShape, sizeOf } from "../shape.ts";
import { makeTensor, type Tensor } from "../tensor-class.ts";
import type { NestedArray, TensorOptions } from "../tensor.ts";

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
  return makeTensor(data, shape, opts.requiresGrad ?? false);
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

function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let cur: NestedArray = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0];
  }
  return shape;
}

function flattenNested(data: NestedArray, shape: number[], out: FloatArray): void {
  let k = 0;
  const walk = (x: NestedArray, dim: number, path: number[]): void => {
    if (dim === shape.length) {
      if (typeof x !== "number") {
        const at = `[${path.join("][")}]`;
        if (Array.isArray(x)) throw new ValueError(`tensor: ragged nested array: expected a number at ${at}, got an array`);
        throw new ValueError(`tensor: expected a number at ${at}, got ${x === null ? "null" : `a ${typeof x} (${JSON.stringify(x)})`}`);
      }
      out[k++] = x;
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[dim]) {
      const got = Array.isArray(x) ? `length ${x.length}` : typeof x;
      throw new ValueError(
        `tensor: ragged nested array: expected length ${shape[dim]} at ${path.length ? `[${path.join("][")}]` : "the top level"}, got ${got} (inferred shape ${fmtShape(shape)})`,
      );
    }
    for (let i = 0; i < x.length; i++) walk(x[i], dim + 1, [...path, i]);
  };
  walk(data, 0, []);
}

/**
 * Creates a leaf tensor from a number, nested arrays, or a flat array / typed array with `shape`.
 * @example tensor([[1, 2], [3, 4]], { requiresGrad: true })
 * @example tensor(new Float64Array(6), { shape: [2, 3], dtype: "float64" })
 */
export function tensor(data: NestedArray | ArrayLike<number>, options: TensorOptions = {}): Tensor {
  if (options.dtype !== undefined && !isDType(options.dtype)) {
    throw new ValueError(`tensor: unknown dtype ${JSON.stringify(options.dtype)}; use "float32" or "float64"`);
  }
  const isTyped = ArrayBuffer.isView(data);
  const dtype: DType = options.dtype ?? (data instanceof Float64Array ? "float64" : "float32");
  let arr: FloatArray;
  let shape: number[];
  if (isTyped || (options.shape && Array.isArray(data) && data.every((v) => typeof v === "number"))) {
    const flat = data as ArrayLike<number>;
    shape = options.shape ? [...options.shape] : [flat.length];
    checkShape("tensor", shape);
    if (flat.length !== sizeOf(shape)) {
      throw new ShapeError(`tensor: ${flat.length} values do not fit shape ${fmtShape(shape)} (${sizeOf(shape)} elements)`);
    }
    if (ArrayBuffer.isView(flat)) {
      // NOTE: set copies (and converts) in one native pass into a buffer that skips the zero fill; .from iterates
      arr = allocateUnfilled(dtype, flat.length);
      arr.set(flat as unknown as ArrayLike<number>);
    } else {
      arr = arrayTypes[dtype].from(flat);
    }
  } else {
    const nested = data as NestedArray;
    shape = inferShape(nested);
    arr = allocate(dtype, sizeOf(shape));
    flattenNested(nested, shape, arr);
    if (options.shape) {
      checkShape("tensor", options.shape);
      if (sizeOf(options.shape) !== arr.length) {
        throw new ShapeError(`tensor: nested array of shape ${fmtShape(shape)} does not fit shape ${fmtShape(options.shape)}`);
      }
      shape = [...options.shape];
    }
  }
  return makeTensor(arr, shape, options.requiresGrad ?? false);
}
