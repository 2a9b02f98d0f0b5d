/**
 * Gradient checking: the analytic Jacobian (reverse mode, one vector-Jacobian product per output element)
 * against the numerical one (central differences in float64), like torch.autograd.gradcheck.
 */
import { grad } from "./autograd.ts";
import { enableGrad, noGrad, type Node } from "./tape.ts";
import { GraphError, TapegradError, ValueError, fmtShape } from "./errors.ts";
import { Generator } from "./random.ts";
import { stridesOf } from "./shape.ts";
import { Tensor } from "./tensor.ts";

export type GradcheckFn = (...inputs: Tensor[]) => Tensor | readonly Tensor[];

export interface GradcheckOptions {
  /** Step of the central difference. */
  eps?: number;
  /** Absolute tolerance: an entry passes when |analytic - numerical| <= atol + rtol·|numerical|. */
  atol?: number;
  /** Relative tolerance (see atol). */
  rtol?: number;
  /** Check vᵀJu for random unit vectors u, v instead of the whole Jacobian (one backward per output). */
  fast?: boolean;
  /** Return false instead of throwing on a mismatch. */
  raiseException?: boolean;
  /** Accept float32 inputs (the numerical side is then too noisy for the default tolerances). */
  allowFloat32?: boolean;
  /** Seed of the random vectors of fast mode and of gradgradcheck's output gradients. */
  seed?: number;
}

/** Where a gradient check failed; every field is also in the message. */
export class GradcheckError extends TapegradError {
  constructor(
    message: string,
    /** Index of the output of `fn` whose Jacobian is wrong. */
    readonly outputIndex: number,
    /** Index of the input (in the `inputs` array) the Jacobian is taken with respect to. */
    readonly inputIndex: number,
    /** Multi-index of the worst output element and input element (null in fast mode). */
    readonly outputElement: number[] | null,
    readonly inputElement: number[] | null,
    readonly analytic: number,
    readonly numerical: number,
    /** The op that produced the output, when it came from the tape. */
    readonly op: string | null,
  ) {
    super(message);
  }
}

interface Resolved {
  eps: number;
  atol: number;
  rtol: number;
  fast: boolean;
  raiseException: boolean;
  allowFloat32: boolean;
  seed: number;
}

function resolve(options: GradcheckOptions): Resolved {
  const r: Resolved = {
    eps: options.eps ?? 1e-6,
    atol: options.atol ?? 1e-5,
    rtol: options.rtol ?? 1e-3,
    fast: options.fast ?? false,
    raiseException: options.raiseException ?? true,
    allowFloat32: options.allowFloat32 ?? false,
    seed: options.seed ?? 0,
  };
  for (const k of ["eps", "atol", "rtol"] as const) {
    if (!(r[k] >= 0) || !Number.isFinite(r[k]) || (k === "eps" && r[k] === 0)) {
      throw new ValueError(`gradcheck: ${k} must be a finite ${k === "eps" ? "positive" : "non-negative"} number, got ${r[k]}`);
    }
  }
  return r;
}

function outputsOf(who: string, result: unknown): Tensor[] {
  const list = Array.isArray(result) ? result : [result];
  list.forEach((o, i) => {
    if (!(o instanceof Tensor)) {
      throw new ValueError(`${who}: fn must return a Tensor or an array of Tensors, but output ${i} is ${o === null ? "null" : typeof o}`);
    }
  });
  if (list.length === 0) throw new ValueError(`${who}: fn returned no outputs`);
  return list as Tensor[];
}

/** Fresh leaves with copies of the inputs' data, so the user's tensors are never perturbed or taped. */
function copyInputs(who: string, inputs: readonly Tensor[], allowFloat32: boolean): Tensor[] {
  if (!Array.isArray(inputs)) throw new ValueError(`${who}: inputs must be an array of Tensors`);
  return inputs.map((x, i) => {
    if (!(x instanceof Tensor)) throw new ValueError(`${who}: input ${i} is not a Tensor (got ${x === null ? "null" : typeof x})`);
    if (x.requiresGrad && x.dtype !== "float64" && !allowFloat32) {
      throw new ValueError(
        `${who}: input ${i} ${fmtShape(x.shape)} is float32; central differences need float64: pass x.to("float64") ` +
          `(or { allowFloat32: true } with a larger eps and atol)`,
      );
    }
    return new Tensor(x.data.slice(), x.shape, x.requiresGrad);
  });
}

function multiIndex(shape: readonly number[], flat: number): number[] {
  return stridesOf(shape).map((s, d) => Math.floor(flat / s) % shape[d]);
}

function fmtIndex(shape: readonly number[], flat: number): string {
  return shape.length === 0 ? "[]" : `[${multiIndex(shape, flat).join(", ")}]`;
}

/** The ops on the tape between the inputs and `out`, newest first (for the failure message). */
function opsOf(out: Tensor): string[] {
  const names = new Set<string>();
  const seen = new Set<Node>();
  const stack: Node[] = out.gradFn ? [out.gradFn] : [];
  while (stack.length && names.size < 12) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    names.add(n.op);
    for (const x of n.inputs) if (x.gradFn) stack.push(x.gradFn);
  }
  return [...names];
}

function evalNumerical(fn: GradcheckFn, xs: Tensor[]): Float64Array[] {
  // NOTE: outputs may share memory with the inputs (reshape does), so they are copied before the next step.
  return noGrad(() => outputsOf("gradcheck", fn(...xs)).map((o) => Float64Array.from(o.data)));
}

function passes(a: number, n: number, o: Resolved): boolean {
  return Math.abs(a - n) <= o.atol + o.rtol * Math.abs(n);
}

function fmtNum(x: number): string {
  return Number.isFinite(x) ? x.toPrecision(10) : String(x);
}

/**
 * Checks the gradients of `fn` at `inputs` against central differences: every output, every input that
 * requires grad. Returns true, or throws a GradcheckError naming the output, the input, the worst element,
 * both values and the op (or returns false with `raiseException: false`).
 * @example gradcheck((a, b) => a.mul(b).sum(), [randn([3], { dtype: "float64", requiresGrad: true }), b])
 */
export function gradcheck(fn: GradcheckFn, inputs: readonly Tensor[], options: GradcheckOptions = {}): boolean {
  const o = resolve(options);
  const xs = copyInputs("gradcheck", inputs, o.allowFloat32);
  const diff = xs.map((x, i) => (x.requiresGrad ? i : -1)).filter((i) => i >= 0);
  if (diff.length === 0) throw new GraphError("gradcheck: no input requires grad; pass inputs created with { requiresGrad: true }");
  const outs = enableGrad(() => outputsOf("gradcheck", fn(...xs)));
  outs.forEach((out, k) => {
    if (out.dtype !== "float64" && !o.allowFloat32) {
      throw new ValueError(
        `gradcheck: output ${k} ${fmtShape(out.shape)} is float32 although the inputs are float64; the function casts down ` +
          `(the numerical side loses precision); keep it in float64 or pass { allowFloat32: true }`,
      );
    }
  });
  try {
    if (o.fast) checkFast(fn, xs, diff, outs, o);
    else checkFull(fn, xs, diff, outs, o);
  } catch (e) {
    if (e instanceof GradcheckError && !o.raiseException) return false;
    throw e;
  }
  return true;
}

/** Analytic Jacobian rows of output k: row j = ∂out_k[j] / ∂x_i for every differentiable input i. */
function analyticRows(out: Tensor, xs: Tensor[], diff: number[], seedOf: (size: number) => Tensor[]): (Float64Array | null)[][] {
  return seedOf(out.size).map((gOut) => {
    const gs = grad(out, diff.map((i) => xs[i]), { gradOutput: gOut, retainGraph: true, allowUnused: true });
    // NOTE: the engine has already checked each gradient's shape against its input's.
    return gs.map((g) => (g === null ? null : Float64Array.from(g.data)));
  });
}

function checkNumericalFinite(num: number, k: number, i: number, out: Tensor, x: Tensor, j: number, e: number): void {
  if (!Number.isFinite(num)) {
    throw new GradcheckError(
      `gradcheck: the numerical derivative of output ${k} element ${fmtIndex(out.shape, j)} with respect to input ${i} element ` +
        `${fmtIndex(x.shape, e)} is ${num}: the function is not finite near the input (outside the op's domain, e.g. log of x <= 0?)`,
      k, i, multiIndex(out.shape, j), multiIndex(x.shape, e), NaN, num, out.gradFn?.op ?? null,
    );
  }
}

function checkFull(fn: GradcheckFn, xs: Tensor[], diff: number[], outs: Tensor[], o: Resolved): void {
  // numerical Jacobian: numeric[k][m] is (out_k size) × (x size), row-major
  const numeric: Float64Array[][] = outs.map((out) => diff.map((i) => new Float64Array(out.size * xs[i].size)));
  diff.forEach((i, m) => {
    const x = xs[i];
    for (let e = 0; e < x.size; e++) {
      const orig = x.data[e];
      x.data[e] = orig + o.eps;
      const plus = evalNumerical(fn, xs);
      x.data[e] = orig - o.eps;
      const minus = evalNumerical(fn, xs);
      x.data[e] = orig;
      outs.forEach((out, k) => {
        if (plus[k].length !== out.size) throw new ValueError(`gradcheck: output ${k} changed size from ${out.size} to ${plus[k].length} when input ${i} was perturbed`);
        for (let j = 0; j < out.size; j++) numeric[k][m][j * x.size + e] = (plus[k][j] - minus[k][j]) / (2 * o.eps);
      });
    }
  });

  outs.forEach((out, k) => {
    const rows: (Float64Array | null)[][] = out.requiresGrad
      ? analyticRows(out, xs, diff, (size) => {
          const seeds: Tensor[] = [];
          for (let j = 0; j < size; j++) {
            const s = new Float64Array(size);
            s[j] = 1;
            seeds.push(new Tensor(out.dtype === "float64" ? s : Float32Array.from(s), out.shape));
          }
          return seeds;
        })
      : Array.from({ length: out.size }, () => diff.map(() => null));
    diff.forEach((i, m) => {
      const x = xs[i];
      let worst = -1, worstJ = 0, worstE = 0, bad = 0;
      for (let j = 0; j < out.size; j++) {
        const row = rows[j][m];
        for (let e = 0; e < x.size; e++) {
          const a = row ? row[e] : 0;
          const n = numeric[k][m][j * x.size + e];
          checkNumericalFinite(n, k, i, out, x, j, e);
          if (passes(a, n, o)) continue;
          bad++;
          const excess = Number.isFinite(a) ? Math.abs(a - n) / (o.atol + o.rtol * Math.abs(n)) : Infinity;
          if (excess > worst) { worst = excess; worstJ = j; worstE = e; }
        }
      }
      if (bad === 0) return;
      const a = rows[worstJ][m]?.[worstE] ?? 0;
      const n = numeric[k][m][worstJ * x.size + worstE];
      const op = out.gradFn?.op ?? null;
      const ops = opsOf(out);
      throw new GradcheckError(
        `gradcheck: Jacobian mismatch for output ${k} ${fmtShape(out.shape)} with respect to input ${i} ${fmtShape(x.shape)}` +
          (op ? ` (output produced by op ${op}${ops.length > 1 ? `; ops on the tape: ${ops.join(", ")}` : ""})` : " (the output is not on the tape: analytic gradient 0)") +
          `\n  worst element: d output${fmtIndex(out.shape, worstJ)} / d input${fmtIndex(x.shape, worstE)}` +
          `\n  analytic:  ${fmtNum(a)}` +
          `\n  numerical: ${fmtNum(n)}` +
          `\n  |difference| ${Math.abs(a - n).toExponential(3)} > atol ${o.atol} + rtol ${o.rtol} * |numerical|` +
          `\n  ${bad} of ${out.size * x.size} Jacobian entries differ`,
        k, i, multiIndex(out.shape, worstJ), multiIndex(x.shape, worstE), a, n, op,
      );
    });
  });
}

function unitVector(gen: Generator, size: number): Float64Array {
  const v = new Float64Array(size);
  let norm = 0;
  for (let i = 0; i < size; i++) { v[i] = gen.normal(); norm += v[i] * v[i]; }
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < size; i++) v[i] /= norm;
  return v;
}

/** PyTorch's fast mode: per (output, input) pair compare vᵀ·J·u, analytic (one backward) and numerical (two forwards). */
function checkFast(fn: GradcheckFn, xs: Tensor[], diff: number[], outs: Tensor[], o: Resolved): void {
  const gen = new Generator(o.seed);
  const us = diff.map((i) => unitVector(gen, xs[i].size));
  const vs = outs.map((out) => unitVector(gen, out.size));
  // numerical: directional derivative along u_i, then dotted with v_k
  const numeric: number[][] = outs.map(() => diff.map(() => 0));
  diff.forEach((i, m) => {
    const x = xs[i];
    const orig = Float64Array.from(x.data);
    const step = (sign: number): Float64Array[] => {
      for (let e = 0; e < x.size; e++) x.data[e] = orig[e] + sign * o.eps * us[m][e];
      return evalNumerical(fn, xs);
    };
    const plus = step(1);
    const minus = step(-1);
    x.data.set(orig);
    outs.forEach((out, k) => {
      let s = 0;
      for (let j = 0; j < out.size; j++) s += vs[k][j] * (plus[k][j] - minus[k][j]) / (2 * o.eps);
      checkNumericalFinite(s, k, i, out, x, 0, 0);
      numeric[k][m] = s;
    });
  });
  outs.forEach((out, k) => {
    const row = out.requiresGrad
      ? analyticRows(out, xs, diff, () => [new Tensor(out.dtype === "float64" ? vs[k] : Float32Array.from(vs[k]), out.shape)])[0]
      : diff.map(() => null);
    diff.forEach((i, m) => {
      let a = 0;
      const g = row[m];
      if (g) for (let e = 0; e < g.length; e++) a += g[e] * us[m][e];
      const n = numeric[k][m];
      if (passes(a, n, o)) return;
      const op = out.gradFn?.op ?? null;
      throw new GradcheckError(
        `gradcheck (fast mode): vᵀJu mismatch for output ${k} ${fmtShape(out.shape)} with respect to input ${i} ${fmtShape(xs[i].shape)}` +
          (op ? ` (output produced by op ${op})` : " (the output is not on the tape: analytic gradient 0)") +
          `\n  analytic:  ${fmtNum(a)}` +
          `\n  numerical: ${fmtNum(n)}` +
          `\n  run again with { fast: false } to find the worst Jacobian element`,
        k, i, null, null, a, n, op,
      );
    });
  });
}

/**
 * Second-order check: gradcheck of (inputs, gradOutputs) ↦ grad(fn(inputs), inputs, { gradOutput, createGraph }),
 * with random output gradients (which are checked as inputs too), like torch.autograd.gradgradcheck.
 * @example gradgradcheck((x) => x.tanh(), [randn([3], { dtype: "float64", requiresGrad: true })])
 */
export function gradgradcheck(
  fn: GradcheckFn,
  inputs: readonly Tensor[],
  options: GradcheckOptions & { gradOutputs?: readonly Tensor[] } = {},
): boolean {
  const o = resolve(options);
  const xs = copyInputs("gradgradcheck", inputs, o.allowFloat32);
  const diff = xs.map((x, i) => (x.requiresGrad ? i : -1)).filter((i) => i >= 0);
  if (diff.length === 0) throw new GraphError("gradgradcheck: no input requires grad; pass inputs created with { requiresGrad: true }");
  const outs = enableGrad(() => outputsOf("gradgradcheck", fn(...xs)));
  const gen = new Generator(o.seed + 1);
  let gradOutputs: Tensor[];
  if (options.gradOutputs) {
    if (options.gradOutputs.length !== outs.length) {
      throw new ValueError(`gradgradcheck: ${options.gradOutputs.length} gradOutputs given for ${outs.length} outputs`);
    }
    gradOutputs = options.gradOutputs.map((g, k) => {
      if (fmtShape(g.shape) !== fmtShape(outs[k].shape)) {
        throw new ValueError(`gradgradcheck: gradOutputs[${k}] has shape ${fmtShape(g.shape)}, output ${k} has shape ${fmtShape(outs[k].shape)}`);
      }
      return new Tensor(Float64Array.from(g.data), g.shape, true);
    });
  } else {
    gradOutputs = outs.map((out) => {
      const d = new Float64Array(out.size);
      for (let j = 0; j < d.length; j++) d[j] = gen.normal();
      return new Tensor(d, out.shape, true);
    });
  }
  const n = xs.length;
  const firstOrder = (...args: Tensor[]): Tensor[] => enableGrad(() => {
    const ins = args.slice(0, n);
    const gs = args.slice(n);
    const ys = outputsOf("gradgradcheck", fn(...ins));
    const used = ys.map((y, k) => (y.requiresGrad ? k : -1)).filter((k) => k >= 0);
    const targets = diff.map((i) => ins[i]);
    if (used.length === 0) return targets.map((x) => new Tensor(new Float64Array(x.size), x.shape));
    const gx = grad(used.map((k) => ys[k]), targets, {
      gradOutput: used.map((k) => gs[k]),
      createGraph: true,
      allowUnused: true,
    });
    return gx.map((g, m) => g ?? new Tensor(new Float64Array(targets[m].size), targets[m].shape));
  });
  return gradcheck(firstOrder, [...xs, ...gradOutputs], { ...options, seed: o.seed + 2 });
}
