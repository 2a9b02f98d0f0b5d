/**
 * The tape. Every differentiable op that runs while grad mode is on records a Node; `backward` walks the
 * nodes reachable from the output newest-first (their ids are the tape order), calls each node's backward
 * and accumulates the results. The engine knows no maths beyond one step: gradients are summed back to
 * their input's shape here, and only here, when an op broadcast its inputs.
 */
import { AnomalyError, GraphError, ShapeError, fmtShape } from "./errors.ts";
import { sameShape } from "./shape.ts";
import { POOL_MIN_BYTES, releaseBuffer, trackFreshArrays, type FloatArray } from "./dtype.ts";
import { Tensor } from "./tensor.ts";

/** Turns the output's gradient into the inputs' gradients; `node` gives access to its inputs and saved values. */
export type BackwardFn = (grad: Tensor, node: Node) => (Tensor | null | undefined)[];

let nextNodeId = 0;

/** One recorded op: its inputs and how to turn the output's gradient into the inputs' gradients. */
export class Node {
  readonly id = nextNodeId++;
  /** Where in user code the op was created; captured only under detectAnomaly. */
  stack: string | undefined;
  freed = false;
  /** The backward is user code (defineOp): the engine then never recycles a buffer it has seen. */
  userBackward = false;
  /** Whatever the op keeps for its backward (released with the graph). */
  saved: unknown;

  constructor(
    readonly op: string,
    public inputs: Tensor[],
    public backward: BackwardFn | null,
    readonly outShape: readonly number[],
  ) {}
}

// ---------------------------------------------------------------- grad mode and anomaly mode

let gradEnabled = true;
let anomalyEnabled = false;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = enabled;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs `fn` without recording anything on the tape (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/** Runs `fn` with recording on, even inside noGrad (torch.enable_grad). */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

export function isAnomalyEnabled(): boolean {
  return anomalyEnabled;
}

/**
 * Runs `fn` with NaN/Inf checks on every op's forward output and every backward gradient: the first op
 * that produces one throws an AnomalyError naming the op and where in user code it was created.
 * @example detectAnomaly(() => loss.backward())
 */
export function detectAnomaly<T>(fn: () => T): T {
  const prev = anomalyEnabled;
  anomalyEnabled = true;
  try {
    return fn();
  } finally {
    anomalyEnabled = prev;
  }
}

function firstNonFinite(t: Tensor): number {
  const d = t.data;
  for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i])) return i;
  return -1;
}

function userFrame(stack: string | undefined): string {
  if (!stack) return "";
  const lines = stack.split("\n").slice(1).map((l) => l.trim());
  const user = lines.find((l) => !/[\\/](packages|@tapegrad)[\\/]autograd[\\/]src[\\/]/.test(l) && !l.includes("node:internal"));
  return user ? `\n  created ${user}` : "";
}

/** Under detectAnomaly, the node whose backward is running: a NaN/Inf made inside it is blamed on it. */
let backwardNode: Node | null = null;

function backwardBlamed(node: Node, g: Tensor): (Tensor | null | undefined)[] {
  const outer = backwardNode;
  backwardNode = node;
  try {
    return node.backward!(g, node);
  } finally {
    backwardNode = outer;
  }
}

/** Anomaly check of an op's forward output (called by ops while detectAnomaly is on). */
export function checkForward(op: string, out: Tensor): void {
  const i = firstNonFinite(out);
  if (i >= 0) {
    if (backwardNode) {
      throw new AnomalyError(
        `${backwardNode.op}: backward produced ${out.data[i]} (in its ${op}) at flat index ${i} of a gradient of shape ${fmtShape(out.shape)}` +
          userFrame(backwardNode.stack),
      );
    }
    throw new AnomalyError(
      `${op}: forward produced ${out.data[i]} at flat index ${i} of output ${fmtShape(out.shape)}${userFrame(new Error().stack)}`,
    );
  }
}

// ---------------------------------------------------------------- recording

/**
 * Records `out = op(inputs)` on the tape when grad mode is on and an input requires grad.
 * Returns `out`, now carrying its node.
 */
export function record(op: string, inputs: Tensor[], out: Tensor, backward: BackwardFn, saved?: unknown): Tensor {
  if (anomalyEnabled) checkForward(op, out);
  if (!gradEnabled) return out;
  let any = false;
  for (const x of inputs) if (x.requiresGrad) { any = true; break; }
  if (!any) return out;
  const node = new Node(op, inputs, backward, out.shape);
  node.saved = saved;
  if (anomalyEnabled) node.stack = new Error().stack;
  out.gradFn = node;
  out.requiresGrad = true;
  return out;
}

// ---------------------------------------------------------------- the walk

export interface BackwardOptions {
  retainGraph?: boolean;
  createGraph?: boolean;
}

/** Helpers the engine needs from the ops layer, injected once at start-up to keep the layers apart. */
export interface EngineOps {
  sumTo(g: Tensor, shape: readonly number[]): Tensor;
  add(a: Tensor, b: Tensor): Tensor;
  cast(g: Tensor, dtype: Tensor["dtype"]): Tensor;
  detachedCopy(g: Tensor): Tensor;
  addInPlace(target: Tensor, g: Tensor): void;
}

let ops: EngineOps | null = null;
export function installEngineOps(o: EngineOps): void {
  ops = o;
}

/** Nodes reachable from `roots`, newest first. Iterative: a 100k-op chain cannot overflow the stack. */
function collect(roots: Tensor[]): Node[] {
  const seen = new Set<Node>();
  const stack: Node[] = [];
  for (const r of roots) if (r.gradFn && !seen.has(r.gradFn)) { seen.add(r.gradFn); stack.push(r.gradFn); }
  const out: Node[] = [];
  while (stack.length) {
    const node = stack.pop()!;
    if (node.freed) {
      throw new GraphError(
        `backward: trying to backward through the graph a second time (op ${node.op} was freed by an earlier backward); ` +
          "pass { retainGraph: true } to the first backward if you need to backward twice",
      );
    }
    out.push(node);
    for (const x of node.inputs) {
      const n = x.gradFn;
      if (n && !seen.has(n)) { seen.add(n); stack.push(n); }
    }
  }
  return out.sort((a, b) => b.id - a.id);
}

/**
 * Runs reverse mode from `outputs` seeded with `gradOutputs`. With `targets`, returns their gradients
 * (torch.autograd.grad) and touches no `.grad`; without, accumulates into the `.grad` of every leaf.
 */
export function runBackward(
  outputs: Tensor[],
  gradOutputs: Tensor[],
  options: BackwardOptions & { targets?: Tensor[]; allowUnused?: boolean },
): (Tensor | null)[] {
  if (!ops) throw new Error("tapegrad engine used before the ops were installed");
  const E = ops;
  const createGraph = options.createGraph ?? false;
  const retainGraph = options.retainGraph ?? createGraph;
  const targets = options.targets;
  const nodes = collect(outputs);

  // With targets, skip every node that leads to none of them (ascending id order is topological).
  let needed: Set<Node> | null = null;
  const targetLeaves = new Map<Tensor, number>();
  const targetNodes = new Map<Node, number>();
  const results: (Tensor | null)[] = [];
  if (targets) {
    targets.forEach((t, i) => {
      if (!t.requiresGrad) throw new GraphError(`grad: input ${i} ${fmtShape(t.shape)} does not require grad`);
      if (t.gradFn) targetNodes.set(t.gradFn, i);
      else targetLeaves.set(t, i);
      results.push(null);
    });
    needed = new Set();
    for (let k = nodes.length - 1; k >= 0; k--) {
      const node = nodes[k];
      if (targetNodes.has(node) || node.inputs.some((x) => targetLeaves.has(x) || (x.gradFn !== null && needed!.has(x.gradFn)))) {
        needed.add(node);
      }
    }
  }

  const grads = new Map<Node, Tensor>();
  // NOTE: a plain backward defers leaf gradients to the end of the pass (settleLeaves), so a gradient
  // array made during the pass and delivered to one leaf only can become its .grad without a copy.
  const plain = !targets && !createGraph;
  const ctx: LeafContext = {
    E, targets: targets ? targetLeaves : null, results, createGraph,
    pending: plain ? new Map() : null,
    fresh: plain ? new WeakSet() : null,
  };
  const consumed: Tensor[] = [];
  trackFreshArrays(ctx.fresh);
  // NOTE: no closures are created per call here: tsx/esbuild's keepNames makes each one cost ~0.4 µs.
  const prevMode = gradEnabled;
  gradEnabled = createGraph;
  try {
    for (let i = 0; i < outputs.length; i++) {
      const o = outputs[i];
      const g = gradOutputs[i];
      if (o.gradFn) {
        const prev = grads.get(o.gradFn);
        grads.set(o.gradFn, prev ? E.add(prev, g) : g);
      } else if (o.requiresGrad) deliverLeaf(ctx, o, g);
    }
    for (const node of nodes) {
      const g = grads.get(node);
      if (!g) continue;
      grads.delete(node);
      if (targets) {
        const ti = targetNodes.get(node);
        if (ti !== undefined) results[ti] = g;
        if (!needed!.has(node)) continue;
      }
      const inputGrads = anomalyEnabled ? backwardBlamed(node, g) : node.backward!(g, node);
      if (node.userBackward && ctx.fresh) forgetFresh(ctx.fresh, g, inputGrads);
      const inputs = node.inputs;
      for (let i = 0; i < inputs.length; i++) {
        const x = inputs[i];
        let gi = inputGrads[i];
        if (!gi || !x.requiresGrad) continue;
        if (needed && !(targetLeaves.has(x) || (x.gradFn && needed.has(x.gradFn)))) continue;
        const raw = gi;
        gi = reduceToInput(E, node, i, gi, x);
        if (anomalyEnabled) checkBackward(node, i, gi, x);
        if (plain && gi !== raw) consumeLarge(consumed, raw);
        if (x.gradFn) {
          const prev = grads.get(x.gradFn);
          grads.set(x.gradFn, prev ? E.add(prev, gi) : gi);
          if (plain && prev) {
            consumeLarge(consumed, prev);
            consumeLarge(consumed, gi);
          }
        } else deliverLeaf(ctx, x, gi);
      }
      if (plain) {
        consumeLarge(consumed, g);
        if (consumed.length) recycle(ctx.fresh!, grads, ctx.pending!, consumed);
      }
    }
    if (ctx.pending) settleLeaves(E, ctx.pending, ctx.fresh!);
  } finally {
    gradEnabled = prevMode;
    trackFreshArrays(null);
    if (!retainGraph) {
      for (const node of nodes) {
        node.freed = true;
        node.backward = null;
        node.inputs = [];
        node.saved = undefined;
      }
    }
  }

  if (targets) {
    results.forEach((r, i) => {
      if (r === null && !options.allowUnused) {
        throw new GraphError(
          `grad: input ${i} ${fmtShape(targets[i].shape)} was not used to compute the output; pass { allowUnused: true } to get null for it`,
        );
      }
    });
  }
  return results;
}

interface LeafContext {
  E: EngineOps;
  targets: Map<Tensor, number> | null;
  results: (Tensor | null)[];
  createGraph: boolean;
  /** Plain backward: each leaf's gradient contributions, accumulated at the end of the pass. */
  pending: Map<Tensor, Tensor[]> | null;
  /** Plain backward: the arrays allocated during the pass, each the only array over its buffer (dtype.ts). */
  fresh: WeakSet<FloatArray> | null;
}

/** A leaf's gradient goes to grad()'s results, or accumulates into its `.grad`. */
function deliverLeaf(ctx: LeafContext, x: Tensor, g: Tensor): void {
  if (ctx.targets) {
    const i = ctx.targets.get(x);
    if (i === undefined) return;
    const prev = ctx.results[i];
    ctx.results[i] = prev ? ctx.E.add(prev, g) : g;
  } else if (ctx.createGraph) {
    x._grad = x._grad ? ctx.E.add(x._grad, g) : g;
    x._gradOwned = false;
  } else {
    const list = ctx.pending!.get(x);
    if (list) list.push(g);
    else ctx.pending!.set(x, [g]);
  }
}

/** User code may keep the gradient it was given or the ones it returned: none of their arrays may be
 *  recycled or adopted as a leaf's .grad. (A view the user made of one is a new array, never in `fresh`.) */
function forgetFresh(fresh: WeakSet<FloatArray>, g: Tensor, returned: (Tensor | null | undefined)[]): void {
  fresh.delete(g.data);
  for (const t of returned) if (t) fresh.delete(t.data);
}

/**
 * After a node's backward has run and its results are stored: the gradients it consumed (its own, and
 * any it summed or reduced into a new one) whose buffers this pass allocated and no stored gradient (for
 * a node or a leaf, a view included) still uses are dead, so their buffers go to the pool. Nothing else
 * can reach them: gradients made in a plain backward are never recorded or saved, and the user only ever
 * sees leaf gradients. Empties `consumed`.
 */
function recycle(fresh: WeakSet<FloatArray>, grads: Map<Node, Tensor>, pending: Map<Tensor, Tensor[]>, consumed: Tensor[]): void {
  for (const t of consumed) {
    if (fresh.has(t.data) && !stillStored(t.data, fresh, grads, pending)) releaseBuffer(t.data);
  }
  consumed.length = 0;
}

/** Notes a consumed gradient that the pool could keep (smaller buffers are left to the garbage collector).
 *  NOTE: byteLength, not buffer: reading .buffer of a small typed array makes V8 move it off its heap. */
function consumeLarge(consumed: Tensor[], t: Tensor): void {
  if (t.data.byteLength >= POOL_MIN_BYTES) consumed.push(t);
}

/** Whether a stored gradient uses the memory of `a`, a fresh array. NOTE: a scan of the walk's frontier
 *  and the leaves' lists, run only for consumed gradients of 16 KB and up: a few per node in practice,
 *  where counting every stored gradient per buffer cost small tensors their on-heap storage (see
 *  consumeLarge). Another fresh array never shares `a`'s buffer, so only the others' buffers are read. */
function stillStored(a: FloatArray, fresh: WeakSet<FloatArray>, grads: Map<Node, Tensor>, pending: Map<Tensor, Tensor[]>): boolean {
  for (const t of grads.values()) if (sharesMemory(a, t.data, fresh)) return true;
  for (const list of pending.values()) for (const t of list) if (sharesMemory(a, t.data, fresh)) return true;
  return false;
}

function sharesMemory(a: FloatArray, b: FloatArray, fresh: WeakSet<FloatArray>): boolean {
  return a === b || (!fresh.has(b) && a.buffer === b.buffer);
}

/**
 * Accumulates the pass's leaf gradients into `.grad`. A contribution is adopted as a leaf's new `.grad`
 * only when its array was allocated during this pass (so it is no view and owns its whole buffer), and no
 * other contribution is the same array (add's backward hands the same tensor to both inputs) or a view of
 * its buffer; anything else is copied, so no two leaves,
 * and no tensor of the user's, ever share a gradient buffer. The contributions not adopted are dead
 * afterwards, and those made in this pass go to the pool.
 */
function settleLeaves(E: EngineOps, pending: Map<Tensor, Tensor[]>, fresh: WeakSet<FloatArray>): void {
  // how often each fresh array is delivered, and the buffers of the other contributions (views, arrays
  // made before the pass), one of which might be a fresh array's
  // NOTE: only the others' buffers are read (a view of a fresh array must not outlive its adoption), so
  // the usual pass, where every contribution is fresh, reads no buffer at all
  const uses = new Map<FloatArray, number>();
  let otherBuffers: Set<ArrayBufferLike> | null = null;
  for (const list of pending.values()) {
    for (const g of list) {
      if (fresh.has(g.data)) uses.set(g.data, (uses.get(g.data) ?? 0) + 1);
      else (otherBuffers ??= new Set()).add(g.data.buffer);
    }
  }
  let adopted: Set<FloatArray> | null = null;
  for (const [x, list] of pending) {
    let start = 0;
    if (!x._grad) {
      const g = list[0];
      const own = uses.get(g.data) === 1 && !(otherBuffers && otherBuffers.has(g.data.buffer));
      if (own) (adopted ??= new Set()).add(g.data);
      x._grad = own ? new Tensor(g.data, g.shape) : E.detachedCopy(g);
      // NOTE: either way the new .grad's buffer is one only this leaf uses, so zeroGrad may recycle it
      // unless someone reads .grad first
      x._gradOwned = true;
      start = 1;
    }
    for (let i = start; i < list.length; i++) E.addInPlace(x._grad, list[i]);
  }
  // the contributions not adopted were copied or added: their buffers made in this pass are dead now
  for (const list of pending.values()) {
    for (const g of list) {
      if (g.data.byteLength >= POOL_MIN_BYTES && fresh.has(g.data) && !adopted?.has(g.data)) releaseBuffer(g.data);
    }
  }
}

function checkBackward(node: Node, i: number, g: Tensor, x: Tensor): void {
  const bad = firstNonFinite(g);
  if (bad >= 0) {
    throw new AnomalyError(
      `${node.op}: backward produced ${g.data[bad]} in the gradient of input ${i} ${fmtShape(x.shape)} at flat index ${bad}` +
        userFrame(node.stack),
    );
  }
}

/** The one place where broadcast gradients are summed back to their input's shape and checked. */
function reduceToInput(E: EngineOps, node: Node, i: number, g: Tensor, x: Tensor): Tensor {
  if (!sameShape(g.shape, x.shape)) {
    if (!broadcastsTo(x.shape, g.shape)) {
      throw new ShapeError(
        `${node.op}: backward returned a gradient of shape ${fmtShape(g.shape)} for input ${i} of shape ${fmtShape(x.shape)}`,
      );
    }
    g = E.sumTo(g, x.shape);
  }
  if (g.dtype !== x.dtype) g = E.cast(g, x.dtype);
  return g;
}

function broadcastsTo(from: readonly number[], to: readonly number[]): boolean {
  if (from.length > to.length) return false;
  const off = to.length - from.length;
  for (let i = 0; i < from.length; i++) if (from[i] !== 1 && from[i] !== to[i + off]) return false;
  return true;
}
