/**
 * Module and Parameter, PyTorch's nn.Module in TypeScript. Parameters and submodules are found by scanning a
 * module's own fields (assignment order, like PyTorch's __setattr__ registration) plus anything registered
 * explicitly with registerParameter / registerModule / registerBuffer (Sequential uses this for "0", "1", ...).
 */
import { Tensor, TapegradError, fmtShape, type DType } from "@tapegrad/autograd";

/** A leaf tensor that a Module owns and an optimizer updates: requiresGrad is on. */
export class Parameter extends Tensor {
  /** Wraps `source`'s data (shared, not copied) as a trainable leaf. */
  constructor(source: Tensor, requiresGrad = true) {
    super(source.data, source.shape, requiresGrad);
  }
}

/** Bad state dicts: missing, unexpected, mis-shaped or mis-typed entries. */
export class StateDictError extends TapegradError {}

/** Anything with a shape, a dtype and flat data: a Tensor, or a tensor read back from a checkpoint (an
 *  "int64" one holds its integers in a Float64Array). */
export interface StateTensor {
  readonly shape: readonly number[];
  readonly dtype: DType | "int64";
  readonly data: Float32Array | Float64Array;
  /** Saved as int64 (a float tensor of integers: see registerBuffer). */
  readonly storageDtype?: "int64";
}

export interface BufferOptions {
  /** "int64": an integer counter kept in a float64 tensor (exact up to 2^53) and saved as int64, as
   *  PyTorch's BatchNorm keeps num_batches_tracked. `to(dtype)` leaves it as it is. */
  storageDtype?: "int64";
}

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

interface Registry {
  slots: Map<string, Parameter | Module | null>;
  buffers: Map<string, Tensor>;
  /** Buffers saved as int64. */
  intBuffers: Set<string>;
}

const registries = new WeakMap<Module, Registry>();

function registryOf(m: Module): Registry {
  let r = registries.get(m);
  if (!r) {
    r = { slots: new Map(), buffers: new Map(), intBuffers: new Set() };
    registries.set(m, r);
  }
  return r;
}

const fmt = fmtShape;

/** A slot holding a parameter or module: where it lives, so `to()` can replace it. */
interface Slot {
  name: string;
  value: Parameter | Module;
  set(v: Parameter): void;
}

/**
 * Base class of every layer and model. Subclasses assign Parameters and Modules to fields and implement forward.
 * @example
 * class Net extends Module {
 *   fc = new Linear(4, 2);
 *   override forward(x: Tensor) { return this.fc.forward(x).relu(); }
 * }
 */
export class Module {
  /** True in training mode (the default); Dropout and similar layers read it. */
  training = true;

  /** Computes the output; every subclass overrides it. */
  forward(x: Tensor): Tensor {
    throw new TapegradError(`${this.constructor.name}: forward is not implemented (input ${fmt(x.shape)})`);
  }

  // ------------------------------------------------------------ registration

  /** Registers `param` (or null, a declared but absent parameter) under `name`. */
  registerParameter(name: string, param: Parameter | null): this {
    checkName(this, name);
    registryOf(this).slots.set(name, param);
    return this;
  }

  /** Registers a submodule under `name` (e.g. "0" in a Sequential). */
  registerModule(name: string, module: Module): this {
    checkName(this, name);
    registryOf(this).slots.set(name, module);
    return this;
  }

  /**
   * A tensor that is saved in the state dict but not trained (e.g. running statistics). Registering a name
   * again replaces the buffer. `storageDtype: "int64"` marks an integer counter (see BufferOptions).
   * @example this.registerBuffer("num_batches_tracked", zeros([], { dtype: "float64" }), { storageDtype: "int64" })
   */
  registerBuffer(name: string, buffer: Tensor, options: BufferOptions = {}): this {
    checkName(this, name);
    const reg = registryOf(this);
    reg.buffers.set(name, buffer);
    if (options.storageDtype === "int64") {
      if (buffer.dtype !== "float64") throw new TapegradError(`${this.constructor.name}: the int64 buffer "${name}" must be a float64 tensor (its integers exact up to 2^53), got ${buffer.dtype}`);
      reg.intBuffers.add(name);
    } else reg.intBuffers.delete(name);
    return this;
  }

  /** This module's own buffer `name` (as registered, or as `to()` replaced it); undefined if there is none. */
  getBuffer(name: string): Tensor | undefined {
    return registryOf(this).buffers.get(name);
  }

  /** Own parameters and submodules: registered ones first, then own fields in assignment order. */
  private slots(): Slot[] {
    const out: Slot[] = [];
    const reg = registryOf(this).slots;
    for (const [name, value] of reg) {
      if (value) out.push({ name, value, set: (v) => reg.set(name, v) });
    }
    const self = this as unknown as Record<string, unknown>;
    for (const key of Object.keys(this)) {
      const value = self[key];
      if (value instanceof Parameter || value instanceof Module) {
        out.push({ name: key, value, set: (v) => (self[key] = v) });
      } else if (Array.isArray(value)) {
        value.forEach((v: unknown, i) => {
          if (v instanceof Parameter || v instanceof Module) out.push({ name: `${key}.${i}`, value: v, set: (p) => (value[i] = p) });
        });
      }
    }
    return out;
  }

  // ------------------------------------------------------------ traversal

  /** Direct submodules with their names. */
  *namedChildren(): Generator<[string, Module]> {
    const seen = new Set<Module>();
    for (const { name, value } of this.slots()) {
      if (value instanceof Module && !seen.has(value)) {
        seen.add(value);
        yield [name, value];
      }
    }
  }

  *children(): Generator<Module> {
    for (const [, m] of this.namedChildren()) yield m;
  }

  /** This module and every descendant, depth first, with dotted names ("" for this one). Shared modules once. */
  *namedModules(prefix = ""): Generator<[string, Module]> {
    const seen = new Set<Module>();
    const stack: [string, Module][] = [[prefix, this]];
    while (stack.length) {
      const [name, m] = stack.pop()!;
      if (seen.has(m)) continue;
      seen.add(m);
      yield [name, m];
      const kids = [...m.namedChildren()];
      for (let i = kids.length - 1; i >= 0; i--) stack.push([name ? `${name}.${kids[i][0]}` : kids[i][0], kids[i][1]]);
    }
  }

  *modules(): Generator<Module> {
    for (const [, m] of this.namedModules()) yield m;
  }

  /** Every parameter with its dotted name, like PyTorch: "0.weight", "layers.1.bias". Shared ones once. */
  *namedParameters(prefix = ""): Generator<[string, Parameter]> {
    const seen = new Set<Parameter>();
    for (const [mname, m] of this.namedModules(prefix)) {
      for (const { name, value } of m.slots()) {
        if (value instanceof Parameter && !seen.has(value)) {
          seen.add(value);
          yield [mname ? `${mname}.${name}` : name, value];
        }
      }
    }
  }

  /** All trainable tensors, for an optimizer: `new optim.SGD(model.parameters(), { lr: 0.1 })`. */
  parameters(): Parameter[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  *namedBuffers(): Generator<[string, Tensor]> {
    for (const [mname, m] of this.namedModules()) {
      for (const [name, b] of registryOf(m).buffers) yield [mname ? `${mname}.${name}` : name, b];
    }
  }

  /** The dotted names of the buffers saved as int64. */
  private intBufferNames(): Set<string> {
    const out = new Set<string>();
    for (const [mname, m] of this.namedModules()) for (const name of registryOf(m).intBuffers) out.add(mname ? `${mname}.${name}` : name);
    return out;
  }

  /** Total number of parameter elements. */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  // ------------------------------------------------------------ modes and grads

  /** Sets training mode on this module and all descendants. */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  /** Evaluation mode: `train(false)`. */
  eval(): this {
    return this.train(false);
  }

  /** Clears every parameter's gradient (sets it to null, like PyTorch's set_to_none=True; see Tensor.zeroGrad). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /** Runs `fn` on every module, this one last (PyTorch's apply). */
  apply(fn: (m: Module) => void): this {
    const all = [...this.modules()].reverse();
    for (const m of all) fn(m);
    return this;
  }

  /**
   * Converts every parameter and buffer to `dtype` (replacing the Parameter objects): call it before creating
   * an optimizer. @example const model = new MLP([2, 8, 2]).to("float64")
   */
  to(dtype: DType): this {
    for (const m of this.modules()) {
      for (const slot of m.slots()) {
        if (slot.value instanceof Parameter && slot.value.dtype !== dtype) {
          const p = slot.value;
          const data = dtype === "float64" ? Float64Array.from(p.data) : Float32Array.from(p.data);
          slot.set(new Parameter(new Tensor(data, p.shape), p.requiresGrad));
        }
      }
      const { buffers: bufs, intBuffers } = registryOf(m);
      for (const [name, b] of bufs) {
        if (b.dtype !== dtype && !intBuffers.has(name)) bufs.set(name, new Tensor(dtype === "float64" ? Float64Array.from(b.data) : Float32Array.from(b.data), b.shape));
      }
    }
    return this;
  }

  /**
   * Moves every parameter into pinned memory (Tensor.pinMemory: the WebAssembly kernels' heap), replacing
   * the Parameter objects: call it before creating an optimizer. The WebAssembly gemm then reads the
   * weights in place, writes their gradients in place, and SGD updates them there, each half on the thread
   * whose share of the products uses it. Where pinning is unavailable (another backend, no shared
   * WebAssembly memory) the parameters stay as they are.
   * @example const model = new Sequential(...).pinMemory(); const opt = new SGD(model.parameters(), { lr: 0.1 })
   */
  pinMemory(): this {
    for (const m of this.modules()) {
      for (const slot of m.slots()) {
        if (!(slot.value instanceof Parameter)) continue;
        const p = slot.value;
        const pinned = p.detach().pinMemory();
        if (pinned.isPinned() && !p.isPinned()) slot.set(new Parameter(new Tensor(pinned.data, p.shape), p.requiresGrad));
      }
    }
    return this;
  }

  // ------------------------------------------------------------ state

  /**
   * Parameters and buffers by dotted name, detached but sharing memory (save with `saveSync(path, dict)`).
   * An int64 buffer's entry is a float64 tensor with `storageDtype: "int64"`, which checkpoints store as I64.
   */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    const ints = this.intBufferNames();
    for (const [name, p] of this.namedParameters()) out[name] = p.detach();
    for (const [name, b] of this.namedBuffers()) out[name] = ints.has(name) ? Object.assign(b.detach(), { storageDtype: "int64" as const }) : b.detach();
    return out;
  }

  /**
   * Copies values from `dict` into this module's parameters and buffers, in place.
   * Strict (the default): a missing key, an unexpected key or a dtype mismatch is an error. A shape mismatch
   * is always an error. All problems are reported together, each naming its key.
   * @example model.loadStateDict(loadSync("model.safetensors"))
   */
  loadStateDict(dict: Record<string, StateTensor>, options: { strict?: boolean } = {}): LoadStateDictResult {
    const strict = options.strict ?? true;
    const own = new Map<string, Tensor>([...this.namedParameters(), ...this.namedBuffers()]);
    const ints = this.intBufferNames();
    const missingKeys = [...own.keys()].filter((k) => !Object.hasOwn(dict, k));
    const unexpectedKeys = Object.keys(dict).filter((k) => !own.has(k));
    const problems: string[] = [];
    if (strict) {
      for (const k of missingKeys) problems.push(`missing key "${k}" (expected shape ${fmt(own.get(k)!.shape)})`);
      for (const k of unexpectedKeys) problems.push(`unexpected key "${k}" (shape ${fmt(dict[k].shape)})`);
    }
    for (const [k, target] of own) {
      if (!Object.hasOwn(dict, k)) continue;
      const src = dict[k];
      if (!src || !src.data || !Array.isArray(src.shape)) {
        problems.push(`"${k}" is not a tensor`);
      } else if (src.shape.length !== target.shape.length || src.shape.some((d, i) => d !== target.shape[i]) || src.data.length !== target.size) {
        problems.push(`size mismatch for "${k}": checkpoint has shape ${fmt(src.shape)}, the module has ${fmt(target.shape)}`);
      } else if (strict && (src.storageDtype ?? src.dtype) !== (ints.has(k) ? "int64" : target.dtype)) {
        problems.push(`dtype mismatch for "${k}": checkpoint has ${src.storageDtype ?? src.dtype}, the module has ${ints.has(k) ? "int64" : target.dtype}`);
      } else if (ints.has(k) && !Array.prototype.every.call(src.data, (v: number) => Number.isSafeInteger(v))) {
        problems.push(`"${k}" holds non-integer values, the module keeps integers there`);
      }
    }
    if (problems.length) {
      throw new StateDictError(`loadStateDict: error(s) loading state dict for ${this.constructor.name}:\n  ${problems.join("\n  ")}`);
    }
    for (const [k, target] of own) {
      if (Object.hasOwn(dict, k)) {
        target.data.set(dict[k].data);
        target.markModified();
      }
    }
    return { missingKeys, unexpectedKeys };
  }

  // ------------------------------------------------------------ printing

  /** Extra text inside this module's parentheses when printed, e.g. "in=784, out=128, bias=true". */
  extraRepr(): string {
    return "";
  }

  toString(): string {
    const kids = [...this.namedChildren()];
    const head = `${this.constructor.name}(${this.extraRepr()}`;
    if (!kids.length) return `${head})`;
    const body = kids.map(([n, m]) => `  (${n}): ${m.toString().replace(/\n/g, "\n  ")}`).join("\n");
    return `${head}\n${body}\n)`;
  }
}

function checkName(m: Module, name: string): void {
  if (!name || name.includes(".")) {
    throw new TapegradError(`${m.constructor.name}: invalid name ${JSON.stringify(name)}; names must be non-empty and contain no "."`);
  }
}
