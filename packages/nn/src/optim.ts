/**
 * Optimizers with PyTorch's update equations (torch.optim docs / single-tensor implementations). Each step
 * updates `p.data` in place with plain loops; the maths runs in float64 and state buffers are Float64Array.
 */
import { TapegradError, ValueError, type Tensor } from "@tapegrad/autograd";
import { axpy } from "@tapegrad/autograd/kernels";

/** A group of parameters sharing hyperparameters; `lr` may differ per group. */
export interface ParamGroup<O> {
  params: Tensor[];
  options: O & { lr: number };
  /** The lr the group started with; schedulers compute from it. */
  initialLr?: number;
}

/** Parameters with per-group overrides: `[{ params: a }, { params: b, lr: 0.01 }]`. */
export type ParamGroupInput<O> = { params: Iterable<Tensor> } & Partial<O>;
export type ParamsInput<O> = Iterable<Tensor> | ParamGroupInput<O>[];

type StateValue = number | Float64Array;
export type ParamState = Record<string, StateValue>;

/** A serialisable snapshot: state by parameter index (in group order), groups' hyperparameters. */
export interface OptimizerStateDict {
  state: Record<number, ParamState>;
  paramGroups: (Record<string, unknown> & { params: number[] })[];
}

export abstract class Optimizer<O extends { lr: number } = { lr: number }> {
  readonly paramGroups: ParamGroup<O>[] = [];
  /** Per-parameter state (momentum buffers, Adam moments, step counts). */
  readonly state = new Map<Tensor, ParamState>();

  protected constructor(params: ParamsInput<O>, defaults: O, protected readonly name: string) {
    const list = [...(params as Iterable<Tensor | ParamGroupInput<O>>)];
    if (list.length === 0) throw new ValueError(`${name}: got an empty parameter list`);
    const isGroup = (x: unknown): x is ParamGroupInput<O> =>
      typeof x === "object" && x !== null && "params" in x && !("data" in x);
    const groups: { params: Iterable<Tensor> }[] = isGroup(list[0]) ? (list as ParamGroupInput<O>[]) : [{ params: list as Tensor[] }];
    const seen = new Set<Tensor>();
    for (const g of groups) {
      const { params, ...overrides } = g;
      const ps = [...params];
      for (const p of ps) {
        if (seen.has(p)) throw new ValueError(`${name}: a parameter appears in more than one group (or twice)`);
        if (!p.isLeaf) throw new ValueError(`${name}: can only optimize leaf tensors; got a tensor computed by ${p.gradFn?.op}`);
        seen.add(p);
      }
      const options = { ...defaults, ...(overrides as Record<string, unknown>) } as O;
      this.validate(options);
      this.paramGroups.push({ params: ps, options, initialLr: options.lr });
    }
  }

  /** Checks hyperparameters; throws a ValueError naming the optimizer and the bad value. */
  protected validate(o: O): void {
    if (!(o.lr >= 0)) throw new ValueError(`${this.name}: invalid learning rate ${o.lr}`);
  }

  /** Learning rate of the first group; setting it sets every group's (schedulers use this). */
  get lr(): number {
    return this.paramGroups[0].options.lr;
  }

  set lr(value: number) {
    if (!(value >= 0)) throw new ValueError(`${this.name}: invalid learning rate ${value}`);
    for (const g of this.paramGroups) g.options.lr = value;
  }

  /**
   * Sets every parameter's gradient to null and hands the buffers backward allocated for them back to the
   * pool, for the next backward: a `.grad` kept past this call may be overwritten later (clone() it to keep it).
   */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.zeroGrad({ recycle: true });
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    for (const group of this.paramGroups) {
      for (const p of group.params) {
        const grad = p.grad;
        if (!grad) continue;
        if (grad.size !== p.size) {
          throw new TapegradError(`${this.name}: gradient of shape [${grad.shape.join(", ")}] does not match parameter [${p.shape.join(", ")}]`);
        }
        let st = this.state.get(p);
        if (!st) {
          st = {};
          this.state.set(p, st);
        }
        this.update(p.data, grad.data, st, group.options);
        p.markModified();
      }
    }
  }

  /** The update of one parameter: `param` in place from `grad`, with its state. */
  protected abstract update(param: Float32Array | Float64Array, grad: Float32Array | Float64Array, state: ParamState, options: O): void;

  /** State and hyperparameters, with parameters referred to by their index across groups. */
  stateDict(): OptimizerStateDict {
    const state: Record<number, ParamState> = {};
    const paramGroups: OptimizerStateDict["paramGroups"] = [];
    let i = 0;
    for (const g of this.paramGroups) {
      const ids: number[] = [];
      for (const p of g.params) {
        const st = this.state.get(p);
        if (st) {
          const copy: ParamState = {};
          for (const [k, v] of Object.entries(st)) copy[k] = typeof v === "number" ? v : v.slice();
          state[i] = copy;
        }
        ids.push(i++);
      }
      paramGroups.push({ ...g.options, initialLr: g.initialLr, params: ids });
    }
    return { state, paramGroups };
  }

  /** Restores a stateDict() taken from an optimizer of the same kind over parameters of the same shapes. */
  loadStateDict(dict: OptimizerStateDict): void {
    if (dict.paramGroups.length !== this.paramGroups.length) {
      throw new ValueError(`${this.name}.loadStateDict: state has ${dict.paramGroups.length} parameter groups, the optimizer has ${this.paramGroups.length}`);
    }
    const byIndex: Tensor[] = [];
    dict.paramGroups.forEach((sg, gi) => {
      const g = this.paramGroups[gi];
      if (sg.params.length !== g.params.length) {
        throw new ValueError(`${this.name}.loadStateDict: group ${gi} has ${sg.params.length} parameters in the state, ${g.params.length} in the optimizer`);
      }
      sg.params.forEach((id, k) => (byIndex[id] = g.params[k]));
    });
    for (const [id, st] of Object.entries(dict.state)) {
      const p = byIndex[Number(id)];
      if (!p) throw new ValueError(`${this.name}.loadStateDict: state for unknown parameter index ${id}`);
      for (const [k, v] of Object.entries(st)) {
        if (typeof v !== "number" && v.length !== p.size) {
          throw new ValueError(`${this.name}.loadStateDict: state "${k}" of parameter ${id} has ${v.length} values, the parameter has ${p.size}`);
        }
      }
    }
    this.state.clear();
    for (const [id, st] of Object.entries(dict.state)) {
      const copy: ParamState = {};
      for (const [k, v] of Object.entries(st)) copy[k] = typeof v === "number" ? v : Float64Array.from(v);
      this.state.set(byIndex[Number(id)], copy);
    }
    dict.paramGroups.forEach((sg, gi) => {
      const { params: _ids, initialLr, ...options } = sg;
      const g = this.paramGroups[gi];
      g.options = { ...g.options, ...(options as Partial<O>) };
      if (typeof initialLr === "number") g.initialLr = initialLr;
    });
  }
}

// ---------------------------------------------------------------- SGD

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
  maximize?: boolean;
}

type SGDResolved = Required<SGDOptions>;

/**
 * Stochastic gradient descent with momentum, as torch.optim.SGD:
 *   g ← ∇ (negated when maximize) + λθ;  b ← g on the first step, else μb + (1−τ)g;
 *   g ← g + μb (nesterov) or b;          θ ← θ − γg
 * @example const opt = new optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 })
 */
export class SGD extends Optimizer<SGDResolved> {
  constructor(params: ParamsInput<SGDResolved>, options: SGDOptions) {
    if (options === undefined || typeof options.lr !== "number") throw new ValueError("SGD: options.lr is required");
    super(params, { momentum: 0, dampening: 0, nesterov: false, weightDecay: 0, maximize: false, ...options }, "SGD");
  }

  protected override validate(o: SGDResolved): void {
    super.validate(o);
    if (!(o.momentum >= 0)) throw new ValueError(`SGD: invalid momentum ${o.momentum}`);
    if (!(o.weightDecay >= 0)) throw new ValueError(`SGD: invalid weightDecay ${o.weightDecay}`);
    if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) {
      throw new ValueError("SGD: nesterov momentum requires a momentum > 0 and zero dampening");
    }
  }

  protected update(p: Float32Array | Float64Array, grad: Float32Array | Float64Array, state: ParamState, o: SGDResolved): void {
    const { lr, momentum: mu, dampening, nesterov, weightDecay: wd, maximize } = o;
    const n = p.length;
    if (mu === 0 && wd === 0 && !maximize) {
      // NOTE: plain SGD is most training loops' hot path: one pass, native where the backend has it
      axpy(-lr, grad, 0, p, 0, n);
      return;
    }
    let buf = state.momentumBuffer as Float64Array | undefined;
    const first = buf === undefined;
    if (mu !== 0 && first) {
      buf = new Float64Array(n);
      state.momentumBuffer = buf;
    }
    for (let i = 0; i < n; i++) {
      let g = maximize ? -grad[i] : grad[i];
      if (wd !== 0) g += wd * p[i];
      if (mu !== 0) {
        const b = first ? g : mu * buf![i] + (1 - dampening) * g;
        buf![i] = b;
        g = nesterov ? g + mu * b : b;
      }
      p[i] = p[i] - lr * g;
    }
  }
}

// ---------------------------------------------------------------- Adam / AdamW

export interface AdamOptions {
  lr?: number;
  betas?: readonly [number, number];
  eps?: number;
  weightDecay?: number;
  amsgrad?: boolean;
  maximize?: boolean;
}

type AdamResolved = Required<AdamOptions> & { lr: number };

/**
 * One Adam step on a flat parameter. `decoupled` gives AdamW (θ ← θ − γλθ before the step, no λθ in g).
 * NOTE: amsgrad keeps the running maximum of the raw second moment v and bias-corrects it afterwards,
 * as PyTorch's implementation does: θ ← θ − γ·m̂ / (√(max v / (1−β₂ᵗ)) + ε).
 */
function adamUpdate(p: Float32Array | Float64Array, grad: Float32Array | Float64Array, state: ParamState, o: AdamResolved, decoupled: boolean): void {
  const { lr, eps, weightDecay: wd, amsgrad, maximize } = o;
  const [b1, b2] = o.betas;
  const n = p.length;
  if (state.step === undefined) {
    state.step = 0;
    state.expAvg = new Float64Array(n);
    state.expAvgSq = new Float64Array(n);
    if (amsgrad) state.maxExpAvgSq = new Float64Array(n);
  }
  const t = (state.step as number) + 1;
  state.step = t;
  const m = state.expAvg as Float64Array;
  const v = state.expAvgSq as Float64Array;
  const vmax = amsgrad ? ((state.maxExpAvgSq as Float64Array | undefined) ?? (state.maxExpAvgSq = new Float64Array(n))) : null;
  const bc1 = 1 - Math.pow(b1, t);
  const bc2Sqrt = Math.sqrt(1 - Math.pow(b2, t));
  const stepSize = lr / bc1;
  for (let i = 0; i < n; i++) {
    let g = maximize ? -grad[i] : grad[i];
    let theta = p[i];
    if (wd !== 0) {
      if (decoupled) theta = theta * (1 - lr * wd);
      else g += wd * theta;
    }
    m[i] = b1 * m[i] + (1 - b1) * g;
    v[i] = b2 * v[i] + (1 - b2) * g * g;
    let vi = v[i];
    if (vmax) {
      if (vi > vmax[i]) vmax[i] = vi;
      vi = vmax[i];
    }
    const denom = Math.sqrt(vi) / bc2Sqrt + eps;
    p[i] = theta - stepSize * (m[i] / denom);
  }
}

function validateAdam(name: string, o: AdamResolved): void {
  if (!(o.eps >= 0)) throw new ValueError(`${name}: invalid eps ${o.eps}`);
  const [b1, b2] = o.betas;
  if (!(b1 >= 0 && b1 < 1)) throw new ValueError(`${name}: invalid beta1 ${b1} (betas[0] must be in [0, 1))`);
  if (!(b2 >= 0 && b2 < 1)) throw new ValueError(`${name}: invalid beta2 ${b2} (betas[1] must be in [0, 1))`);
  if (!(o.weightDecay >= 0)) throw new ValueError(`${name}: invalid weightDecay ${o.weightDecay}`);
}

/**
 * Adam, as torch.optim.Adam: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − γ·m̂/(√v̂ + ε) with
 * m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ); weightDecay adds λθ to g (L2 penalty).
 * @example new optim.Adam(model.parameters(), { lr: 1e-3 })
 */
export class Adam extends Optimizer<AdamResolved> {
  constructor(params: ParamsInput<AdamResolved>, options: AdamOptions = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false, maximize: false, ...options }, "Adam");
  }
  protected override validate(o: AdamResolved): void {
    super.validate(o);
    validateAdam(this.name, o);
  }
  protected update(p: Float32Array | Float64Array, grad: Float32Array | Float64Array, state: ParamState, o: AdamResolved): void {
    adamUpdate(p, grad, state, o, false);
  }
}

/**
 * AdamW, as torch.optim.AdamW: decoupled weight decay θ ← θ(1 − γλ) before the Adam step (default λ = 0.01).
 * @example new optim.AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0.05 })
 */
export class AdamW extends Optimizer<AdamResolved> {
  constructor(params: ParamsInput<AdamResolved>, options: AdamOptions = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false, maximize: false, ...options }, "AdamW");
  }
  protected override validate(o: AdamResolved): void {
    super.validate(o);
    validateAdam(this.name, o);
  }
  protected update(p: Float32Array | Float64Array, grad: Float32Array | Float64Array, state: ParamState, o: AdamResolved): void {
    adamUpdate(p, grad, state, o, true);
  }
}
