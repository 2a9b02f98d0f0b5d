/**
 * Testing helpers (`@tapegrad/autograd/testing`): fast-check arbitraries for shapes, tensors, axes and
 * indices, and a sample generator per op-table entry, so a gradient property reads
 * `fc.assert(fc.property(arbitraries.tensor({ shape: [3] }), (x) => gradcheck(myFn, [x])))`.
 */
import fc from "fast-check";
import type { DType } from "./dtype.ts";
import { ValueError } from "./errors.ts";
import { sizeOf } from "./shape.ts";
import { Tensor } from "./tensor.ts";
import type { InputDomain, OpInfo, SampleArgs } from "./opinfo.ts";
import { grad } from "./autograd.ts";
import { onesLike, opTable } from "./ops/index.ts";
import { declaredOps } from "./tape.ts";
import { pool2dGeometry } from "./kernels/pool.ts";

export { gradcheck, gradgradcheck, GradcheckError, type GradcheckOptions } from "./gradcheck.ts";
export { opTable } from "./ops/index.ts";

/** The op-table entry named `name`; throws for a name that is not in the table. */
export function opInfo(name: string): OpInfo {
  const info = opTable.find((o) => o.name === name);
  if (!info) throw new ValueError(`opInfo: no op named ${JSON.stringify(name)} in the op table`);
  return info;
}
export type { OpInfo, SampleArgs, SampleKind, InputDomain } from "./opinfo.ts";

export interface ShapeOptions {
  minRank?: number;
  maxRank?: number;
  minDim?: number;
  maxDim?: number;
}

export interface TensorArbitraryOptions {
  /** A fixed shape or an arbitrary of shapes (default: `shape()`, rank 0–4, dims 1–4). */
  shape?: readonly number[] | fc.Arbitrary<number[]>;
  /** Default float64, the dtype gradcheck wants. */
  dtype?: DType;
  min?: number;
  max?: number;
  /** Keep every value at least `margin` away from these points (kinks, poles). */
  avoid?: readonly number[];
  margin?: number;
  /** Round every value to `offset + k·step`: two tensors on grids with different offsets never tie. */
  grid?: { step: number; offset?: number };
  /** All values distinct and at least `spacing` apart (no ties for max/min). */
  distinct?: boolean;
  spacing?: number;
  /** Default true: the tensor is a leaf that requires grad. */
  requiresGrad?: boolean;
}

/** Shapes of rank minRank..maxRank (default 0..4) with dims minDim..maxDim (default 1..4). */
function shape(options: ShapeOptions = {}): fc.Arbitrary<number[]> {
  const { minRank = 0, maxRank = 4, minDim = 1, maxDim = 4 } = options;
  if (minRank < 0 || maxRank < minRank) throw new ValueError(`arbitraries.shape: invalid rank range ${minRank}..${maxRank}`);
  if (minDim < 0 || maxDim < minDim) throw new ValueError(`arbitraries.shape: invalid dim range ${minDim}..${maxDim}`);
  return fc.array(fc.integer({ min: minDim, max: maxDim }), { minLength: minRank, maxLength: maxRank });
}

function pushAway(v: number, points: readonly number[], margin: number, min: number, max: number): number {
  for (const p of points) {
    if (Math.abs(v - p) < margin) {
      const up = p + margin, down = p - margin;
      v = v >= p ? (up <= max ? up : down) : down >= min ? down : up;
    }
  }
  return v;
}

function valuesFor(n: number, o: TensorArbitraryOptions): fc.Arbitrary<number[]> {
  const min = o.min ?? -2, max = o.max ?? 2;
  if (!(min <= max)) throw new ValueError(`arbitraries.tensor: min ${min} is above max ${max}`);
  if (o.distinct) {
    const spacing = o.spacing ?? 0.01;
    const lo = Math.ceil(min / spacing), hi = Math.floor(max / spacing);
    if (hi - lo + 1 < n) {
      throw new ValueError(`arbitraries.tensor: cannot draw ${n} distinct values ${spacing} apart in [${min}, ${max}]`);
    }
    return fc.uniqueArray(fc.integer({ min: lo, max: hi }), { minLength: n, maxLength: n }).map((ks) => ks.map((k) => k * spacing));
  }
  const margin = o.margin ?? 1e-3;
  // NOTE: fc.double is uniform over representable doubles, i.e. mostly tiny magnitudes; a uniform grid of
  // 2^20 + 1 points over [min, max] gives ordinary values and shrinks towards the middle of the range.
  const mid = (min + max) / 2, half = (max - min) / 2, N = 1 << 19;
  const value = fc.noBias(fc.integer({ min: -N, max: N })).map((k) => mid + (half * k) / N);
  return fc.array(value, { minLength: n, maxLength: n }).map((vs) =>
    vs.map((v) => {
      if (o.grid) {
        const off = o.grid.offset ?? 0;
        v = off + o.grid.step * Math.round((v - off) / o.grid.step);
        while (v > max) v -= o.grid.step;
        while (v < min) v += o.grid.step;
      }
      return o.avoid ? pushAway(v, o.avoid, margin, min, max) : v;
    }),
  );
}

/** Tensors with values in [min, max] (default [-2, 2]), float64 leaves that require grad by default. */
function tensor(options: TensorArbitraryOptions = {}): fc.Arbitrary<Tensor> {
  const dtype = options.dtype ?? "float64";
  const make = (s: number[], values: fc.Arbitrary<number[]>) => values.map((vs) => {
    const data = dtype === "float64" ? Float64Array.from(vs) : Float32Array.from(vs);
    return new Tensor(data, s, options.requiresGrad ?? true);
  });
  // a fixed shape is validated now, so an impossible request fails where it is made
  if (Array.isArray(options.shape)) {
    const fixed = [...(options.shape as readonly number[])];
    return make(fixed, valuesFor(sizeOf(fixed), options));
  }
  valuesFor(0, options);
  const shapes = options.shape === undefined ? shape() : (options.shape as fc.Arbitrary<number[]>);
  return shapes.chain((s) => make(s, valuesFor(sizeOf(s), options)));
}

/**
 * `n` shapes that broadcast together: suffixes of one base shape with some dims set to 1.
 * The first element of each tuple is the base shape they all broadcast to.
 */
function broadcastableShapes(n: number, options: ShapeOptions = {}): fc.Arbitrary<number[][]> {
  const maxRank = options.maxRank ?? 4;
  const variant = fc.tuple(fc.integer({ min: 0, max: maxRank }), fc.array(fc.boolean(), { minLength: maxRank, maxLength: maxRank }));
  return fc.tuple(shape(options), fc.array(variant, { minLength: n, maxLength: n })).map(([base, vs]) =>
    vs.map(([drop, ones]) => base.slice(Math.min(drop, base.length)).map((d, j) => (ones[j] ? 1 : d))),
  );
}

/** A valid axis of a tensor of rank `rank`, negative ones included. */
function axis(rank: number): fc.Arbitrary<number> {
  if (!Number.isInteger(rank) || rank < 1) throw new ValueError(`arbitraries.axis: a tensor of rank ${rank} has no axis`);
  return fc.integer({ min: -rank, max: rank - 1 });
}

/** The axis argument of a reduction: undefined (all), one axis, or a list of distinct axes. */
function reductionAxes(rank: number): fc.Arbitrary<number | number[] | undefined> {
  const all = Array.from({ length: rank }, (_, i) => i);
  const options: fc.Arbitrary<number | number[] | undefined>[] = [fc.constant(undefined), fc.subarray(all)];
  if (rank > 0) options.push(axis(rank));
  return fc.oneof(...options);
}

/** `n` indices in [0, size), repeats allowed (and likely: a gradient must accumulate them). */
function indices(size: number, n: number): fc.Arbitrary<number[]> {
  if (!Number.isInteger(size) || size < 1) throw new ValueError(`arbitraries.indices: size must be a positive integer, got ${size}`);
  return fc.array(fc.integer({ min: 0, max: size - 1 }), { minLength: n, maxLength: n });
}

export interface OpSample {
  inputs: Tensor[];
  args: SampleArgs;
}

function domainOf(info: OpInfo, i: number): InputDomain {
  return info.domains?.[i] ?? { min: -2, max: 2 };
}

function tensorIn(info: OpInfo, i: number, s: number[], extra: TensorArbitraryOptions = {}): fc.Arbitrary<Tensor> {
  const d = domainOf(info, i);
  return tensor({ shape: s, min: d.min, max: d.max, avoid: d.avoid, margin: d.margin, ...extra });
}

/** Random valid inputs and arguments for an op-table entry, respecting its domain and kinks. */
function opSample(info: OpInfo, options: ShapeOptions = {}): fc.Arbitrary<OpSample> {
  const sh = (extra: ShapeOptions = {}) => shape({ ...options, ...extra });
  const one = (s: number[], extra: TensorArbitraryOptions = {}) => tensorIn(info, 0, s, extra);
  const withArgs = (s: number[], args: fc.Arbitrary<SampleArgs>, extra: TensorArbitraryOptions = {}) =>
    fc.tuple(one(s, extra), args).map(([x, a]): OpSample => ({ inputs: [x], args: a }));
  switch (info.kind) {
    case "unary":
      return sh().chain((s) => one(s)).map((x) => ({ inputs: [x], args: {} }));
    case "binary":
      return broadcastableShapes(2, options).chain(([sa, sb]) => {
        const ties = info.avoidTies;
        return fc.tuple(
          tensorIn(info, 0, sa, ties ? { grid: { step: 0.02 } } : {}),
          tensorIn(info, 1, sb, ties ? { grid: { step: 0.02, offset: 0.01 } } : {}),
        );
      }).map(([a, b]) => ({ inputs: [a, b], args: {} }));
    case "reduction":
      return sh().chain((s) =>
        withArgs(s, fc.record({ axis: reductionAxes(s.length), keepdims: fc.boolean() }), info.avoidTies ? { distinct: true } : {}),
      );
    case "axis":
      return sh({ minRank: 1 }).chain((s) => withArgs(s, fc.record({ axis: axis(s.length) })));
    case "matmul":
      return fc.record({
        m: fc.integer({ min: 1, max: 4 }), k: fc.integer({ min: 1, max: 4 }), n: fc.integer({ min: 1, max: 4 }),
        aVector: fc.boolean(), bVector: fc.boolean(),
        batch: broadcastableShapes(2, { maxRank: 2, maxDim: 3 }),
      }).chain(({ m, k, n, aVector, bVector, batch }) => {
        const sa = aVector ? [k] : [...batch[0], m, k];
        const sb = bVector ? [k] : [...batch[1], k, n];
        return fc.tuple(tensorIn(info, 0, sa), tensorIn(info, 1, sb));
      }).map(([a, b]) => ({ inputs: [a, b], args: {} }));
    case "linear":
      return fc.record({
        inF: fc.integer({ min: 1, max: 4 }), outF: fc.integer({ min: 1, max: 4 }),
        lead: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
      }).chain(({ inF, outF, lead }) =>
        fc.tuple(tensorIn(info, 0, [...lead, inF]), tensorIn(info, 1, [outF, inF]), tensorIn(info, 2, [outF])),
      ).map(([x, w, b]) => ({ inputs: [x, w, b], args: {} }));
    case "pick":
      return sh({ minRank: 1 }).chain((s) =>
        axis(s.length).chain((ax) => {
          const a = ax < 0 ? ax + s.length : ax;
          const rows = sizeOf(s) / s[a];
          return withArgs(s, fc.record({ axis: fc.constant(ax), index: indices(s[a], rows), keepdims: fc.boolean() }));
        }),
      );
    case "reshape":
      return sh().chain((s) =>
        withArgs(s, fc.tuple(fc.shuffledSubarray(s, { minLength: s.length, maxLength: s.length }), fc.nat({ max: 2 }), fc.nat({ max: 5 }))
          .map(([dims, ones, infer]) => {
            const target = [...dims, ...new Array<number>(ones).fill(1)];
            if (target.length > 0 && infer < target.length) target[infer] = -1;
            return { shape: target };
          })),
      );
    case "flatten":
      return sh().chain((s) =>
        withArgs(s, s.length === 0 ? fc.constant({}) : fc.tuple(axis(s.length), axis(s.length)).map(([p, q]) => {
          const [a, b] = [p < 0 ? p + s.length : p, q < 0 ? q + s.length : q].sort((x, y) => x - y);
          return { startDim: a, endDim: b };
        })),
      );
    case "permute":
      return sh().chain((s) => {
        const all = s.map((_, i) => i);
        return withArgs(s, fc.shuffledSubarray(all, { minLength: s.length, maxLength: s.length }).map((axes) => ({ axes })));
      });
    case "unsqueeze":
      return sh({ maxRank: 3 }).chain((s) => withArgs(s, fc.integer({ min: -(s.length + 1), max: s.length }).map((a) => ({ axis: a }))));
    case "squeeze":
      return fc.tuple(sh(), fc.array(fc.boolean(), { minLength: 4, maxLength: 4 })).map(([s, ones]) => s.map((d, i) => (ones[i] ? 1 : d)))
        .chain((s) => {
          const unit = s.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0);
          return withArgs(s, fc.oneof(fc.constant<SampleArgs>({}), fc.subarray(unit).map((axes): SampleArgs => ({ axis: axes }))));
        });
    case "broadcastTo":
      return broadcastableShapes(1, options).chain(([small]) =>
        // the target: `small` with its 1s widened and some leading axes added
        fc.tuple(fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 4 - small.length }), fc.array(fc.integer({ min: 1, max: 3 }), { minLength: small.length, maxLength: small.length }))
          .map(([lead, widen]) => [...lead, ...small.map((d, i) => (d === 1 ? widen[i] : d))])
          .chain((target) => withArgs(small, fc.constant({ shape: target }))),
      );
    case "sumTo":
      return broadcastableShapes(1, options).chain(([small]) =>
        fc.tuple(fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 4 - small.length }), fc.array(fc.integer({ min: 1, max: 3 }), { minLength: small.length, maxLength: small.length }))
          .map(([lead, widen]) => [...lead, ...small.map((d, i) => (d === 1 ? widen[i] : d))])
          .chain((big) => withArgs(big, fc.constant({ shape: small }))),
      );
    case "narrow":
      return sh({ minRank: 1 }).chain((s) =>
        axis(s.length).chain((ax) => {
          const n = s[ax < 0 ? ax + s.length : ax];
          // a length, then a start that fits it, written from the end (negative) half of the time
          const args = fc.integer({ min: 0, max: n }).chain((length) =>
            fc.tuple(fc.integer({ min: 0, max: n - length }), fc.boolean())
              .map(([start, fromEnd]): SampleArgs => ({ axis: ax, start: fromEnd ? start - n : start, length })));
          return withArgs(s, args);
        }),
      );
    case "conv2d":
      return conv2dSample(info);
    case "pool2d":
      return pool2dSample(info);
    case "adaptivePool2d":
      return fc.tuple(fc.boolean(), fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 4, maxLength: 4 }), fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 2, maxLength: 2 }))
        .chain(([batched, [n, c, h, w], [oh, ow]]) => {
          const size = fc.oneof(fc.constant<number>(oh), fc.constant<[number | null, number | null]>([oh, ow]),
            fc.constant<[number | null, number | null]>([null, ow]), fc.constant<[number | null, number | null]>([oh, null]));
          return withArgs(batched ? [n, c, h + 1, w + 1] : [c, h + 1, w + 1], size.map((outputSize) => ({ outputSize })));
        });
    case "batchNorm":
      return fc.record({
        rank: fc.integer({ min: 2, max: 4 }), n: fc.integer({ min: 1, max: 3 }), c: fc.integer({ min: 1, max: 3 }),
        spatial: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 2, maxLength: 2 }),
        training: fc.boolean(), affine: fc.boolean(), momentum: fc.constantFrom(0, 0.1, 0.5, 1), eps: fc.constantFrom(1e-5, 1e-3, 0.1),
      }).filter(({ rank, n, spatial, training }) => !training || n * spatial.slice(0, rank - 2).reduce((a, b) => a * b, 1) > 1)
        .chain(({ rank, n, c, spatial, training, affine, momentum, eps }) => {
          const s = [n, c, ...spatial.slice(0, rank - 2)];
          const stats = fc.tuple(
            fc.array(fc.integer({ min: -100, max: 100 }), { minLength: c, maxLength: c }),
            fc.array(fc.integer({ min: 50, max: 200 }), { minLength: c, maxLength: c }),
          );
          return fc.tuple(tensorIn(info, 0, s, { distinct: true }), tensorIn(info, 1, [c]), tensorIn(info, 2, [c]), stats).map(([x, w, b, [rm, rv]]): OpSample => ({
            inputs: [x, w, b],
            args: { training, affine, momentum, eps, runningMean: rm.map((v) => v / 100), runningVar: rv.map((v) => v / 100) },
          }));
        });
    case "layerNorm":
      return sh({ minRank: 1, maxRank: 3, maxDim: 3 }).chain((s) =>
        fc.tuple(fc.integer({ min: 1, max: s.length }), fc.boolean(), fc.constantFrom(1e-5, 1e-3, 0.1)).chain(([k, affine, eps]) => {
          const normalized = s.slice(s.length - k);
          return fc.tuple(tensorIn(info, 0, s, { distinct: true }), tensorIn(info, 1, normalized), tensorIn(info, 2, normalized))
            .map(([x, w, b]): OpSample => ({ inputs: [x, w, b], args: { shape: normalized, affine, eps } }));
        }),
      );
    case "pad":
      return sh({ minRank: 1, maxRank: 4, maxDim: 3 }).chain((s) =>
        fc.integer({ min: 1, max: s.length }).chain((pairs) => {
          // (before, after) per padded axis, from the last; a crop leaves at least one element
          const perAxis = Array.from({ length: pairs }, (_, i) => {
            const d = s[s.length - 1 - i];
            return fc.tuple(fc.integer({ min: -d, max: 2 }), fc.integer({ min: -d, max: 2 })).filter(([b, a]) => d + b + a >= 1);
          });
          return withArgs(s, fc.tuple(fc.tuple(...perAxis), fc.constantFrom(0, 0.5, -1)).map(([ps, value]) => ({ pads: ps.flat(), value })));
        }),
      );
    case "cat":
      return fc.tuple(sh({ minRank: 1, maxRank: 3, maxDim: 3 }), fc.integer({ min: 1, max: 3 })).chain(([s, count]) =>
        axis(s.length).chain((ax) => {
          const a = ax < 0 ? ax + s.length : ax;
          return fc.array(fc.integer({ min: 1, max: 3 }), { minLength: count, maxLength: count }).chain((sizes) =>
            fc.tuple(...sizes.map((d, i) => tensorIn(info, i, s.map((v, j) => (j === a ? d : v)))))
              .map((inputs): OpSample => ({ inputs, args: { axis: ax } })));
        }),
      );
    case "stack":
      return fc.tuple(sh({ maxRank: 3, maxDim: 3 }), fc.integer({ min: 1, max: 3 })).chain(([s, count]) =>
        fc.tuple(fc.tuple(...Array.from({ length: count }, (_, i) => tensorIn(info, i, s))), fc.integer({ min: -(s.length + 1), max: s.length }))
          .map(([inputs, ax]): OpSample => ({ inputs, args: { axis: ax } })),
      );
    case "dropout":
      return sh().chain((s) => withArgs(s, fc.record({ p: fc.constantFrom(0, 0.2, 0.5, 0.9, 1), seed: fc.nat() })));
  }
}

/** Either a number or a pair of numbers from `values`. */
function pairOf(values: fc.Arbitrary<number>): fc.Arbitrary<number | [number, number]> {
  return fc.oneof(values, fc.tuple(values, values));
}

const asPair = (v: number | readonly [number, number]): [number, number] => (typeof v === "number" ? [v, v] : [v[0], v[1]]);

/** conv2d samples: small images, kernels up to 3×3, strides and dilations up to 2, every kind of padding, groups. */
function conv2dSample(info: OpInfo): fc.Arbitrary<OpSample> {
  return fc.record({
    n: fc.integer({ min: 1, max: 2 }), groups: fc.constantFrom(1, 1, 2), cg: fc.integer({ min: 1, max: 2 }), og: fc.integer({ min: 1, max: 2 }),
    kernel: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
    stride: pairOf(fc.integer({ min: 1, max: 2 })), dilation: pairOf(fc.integer({ min: 1, max: 2 })),
    padding: fc.oneof(pairOf(fc.integer({ min: 0, max: 2 })), fc.constant<"same">("same"), fc.constant<"valid">("valid")),
    extra: fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 })),
    batched: fc.boolean(), bias: fc.boolean(),
  }).chain(({ n, groups, cg, og, kernel: [kh, kw], stride, dilation, padding, extra, batched, bias }) => {
    const [dh, dw] = asPair(dilation);
    // "same" needs stride 1; an input at least as large as the dilated kernel always has an output
    const conv = { stride: padding === "same" ? 1 : stride, padding, dilation, groups };
    const h = dh * (kh - 1) + 1 + extra[0], w = dw * (kw - 1) + 1 + extra[1];
    const xShape = batched ? [n, groups * cg, h, w] : [groups * cg, h, w];
    return fc.tuple(tensorIn(info, 0, xShape), tensorIn(info, 1, [groups * og, cg, kh, kw]), tensorIn(info, 2, [groups * og]))
      .map(([x, wt, b]): OpSample => ({ inputs: [x, wt, b], args: { conv, bias } }));
  });
}

/** Whether every pooling window along one axis holds at least one input element. */
function windowsTouchInput(size: number, kernel: number, stride: number, pad: number, dilation: number, out: number): boolean {
  for (let o = 0; o < out; o++) {
    let hit = false;
    for (let j = 0; j < kernel && !hit; j++) {
      const i = o * stride - pad + j * dilation;
      hit = i >= 0 && i < size;
    }
    if (!hit) return false;
  }
  return true;
}

/** Pooling samples: kernels up to 3×3, strides up to 3 (or the kernel's), paddings up to half the kernel, dilations, ceil mode. */
function pool2dSample(info: OpInfo): fc.Arbitrary<OpSample> {
  return fc.record({
    n: fc.integer({ min: 1, max: 2 }), c: fc.integer({ min: 1, max: 2 }),
    kernel: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
    stride: fc.option(pairOf(fc.integer({ min: 1, max: 3 })), { nil: undefined }),
    padding: fc.tuple(fc.nat({ max: 1 }), fc.nat({ max: 1 })), dilation: pairOf(fc.integer({ min: 1, max: 2 })),
    extra: fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 })),
    ceilMode: fc.boolean(), countIncludePad: fc.boolean(), batched: fc.boolean(),
  }).map(({ n, c, kernel: [kh, kw], stride, padding, dilation, extra, ceilMode, countIncludePad, batched }) => {
    const pad: [number, number] = [Math.min(padding[0], kh >> 1), Math.min(padding[1], kw >> 1)];
    // the average poolings take no dilation
    const [dh, dw] = info.name === "maxPool2d" ? asPair(dilation) : [1, 1];
    const shape = batched ? [n, c, dh * (kh - 1) + 1 + extra[0], dw * (kw - 1) + 1 + extra[1]] : [c, dh * (kh - 1) + 1 + extra[0], dw * (kw - 1) + 1 + extra[1]];
    return { shape, pool: { kernelSize: [kh, kw] as [number, number], stride, padding: pad, dilation: [dh, dw] as [number, number], ceilMode, countIncludePad } };
  }).filter(({ shape, pool }) => {
    const p = pool2dGeometry("maxPool2d", shape, pool);
    return windowsTouchInput(p.height, p.kernelH, p.strideH, p.padH, p.dilationH, p.outH)
      && windowsTouchInput(p.width, p.kernelW, p.strideW, p.padW, p.dilationW, p.outW);
  }).chain(({ shape, pool }) =>
    tensorIn(info, 0, shape, info.avoidTies ? { distinct: true } : {}).map((x): OpSample => ({ inputs: [x], args: { pool } })));
}

/** fast-check arbitraries for tensor code; every one shrinks towards small shapes and simple values. */
export const arbitraries = { shape, tensor, broadcastableShapes, axis, reductionAxes, indices, opSample };

/** Runs per property: TAPEGRAD_PROPERTY_RUNS, default 100. */
export function propertyRuns(fallback = 100): number {
  const v = Number(globalThis.process?.env?.TAPEGRAD_PROPERTY_RUNS);
  return Number.isInteger(v) && v > 0 ? v : fallback;
}

/** The op names on the tapes that lead to `roots` (an iterative walk of their nodes). */
export function opsOnTape(roots: readonly Tensor[]): Set<string> {
  const names = new Set<string>();
  const seen = new Set<unknown>();
  const stack = roots.flatMap((r) => (r.gradFn ? [r.gradFn] : []));
  while (stack.length) {
    const node = stack.pop()!;
    if (seen.has(node)) continue;
    seen.add(node);
    names.add(node.op);
    for (const x of node.inputs) if (x.gradFn) stack.push(x.gradFn);
  }
  return names;
}

/**
 * The declared ops (every op the tape can record) that appear on no tape of the table's samples: neither
 * in a forward pass nor in its backward recorded with createGraph. An empty list means every op the code
 * records is exercised by the gradient properties generated from `table`.
 */
export function uncoveredOps(table: readonly OpInfo[] = opTable, declared: readonly string[] = declaredOps(), samplesPerOp = 5): string[] {
  const covered = new Set<string>();
  table.forEach((info, k) => {
    for (const { inputs, args } of fc.sample(opSample(info), { numRuns: samplesPerOp, seed: k })) {
      const out = info.call(inputs, args);
      for (const name of opsOnTape([out])) covered.add(name);
      if (!out.requiresGrad) continue;
      const grads = grad(out, inputs, { gradOutput: onesLike(out, { requiresGrad: true }), createGraph: true, allowUnused: true });
      for (const name of opsOnTape(grads.flatMap((g) => (g ? [g] : [])))) covered.add(name);
    }
  });
  return declared.filter((name) => !covered.has(name));
}