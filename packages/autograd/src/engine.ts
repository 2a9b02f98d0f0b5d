/**
 * The backward walk. `runBackward` collects the nodes reachable from the outputs, walks them newest first
 * (node ids are the tape order), calls each node's backward and accumulates the results: into the next
 * nodes' gradients, into the leaves' `.grad`, or into grad()'s results. The engine knows no maths beyond
 * one step: gradients are summed back to their input's shape here, and only here, when an op broadcast
 * its inputs. Memory reuse is memory.ts's business; the engine tells it what it consumed.
 */
import { checkBackward, isAnomalyEnabled, runBlamed } from "./anomaly.ts";
import { GraphError, ShapeError, fmtShape } from "./errors.ts";
import { BackwardMemory, keepBeyondGraph, releaseBuffer, releaseIfGraphPrivate } from "./memory.ts";
import { add } from "./ops/binary.ts";
import { cast } from "./ops/cast.ts";
import { sumTo } from "./ops/reduce.ts";
import { sameShape } from "./shape.ts";
import { checkVersions, setGradEnabled, type Node } from "./tape.ts";
import type { Tensor } from "./tensor-class.ts";

export interface BackwardOptions {
  /** Keep the graph for another backward (defaults to createGraph). */
  retainGraph?: boolean;
  /** Record the backward pass so the gradients it produces can be differentiated again. */
  createGraph?: boolean;
}

export interface RunOptions extends BackwardOptions {
  /** grad(): return these tensors' gradients instead of accumulating into `.grad`. */
  targets?: Tensor[];
  /** With targets: null for a target the outputs do not depend on, instead of an error. */
  allowUnused?: boolean;
}

/**
 * Runs reverse mode from `outputs` seeded with `gradOutputs`. With `targets`, returns their gradients
 * (torch.autograd.grad) and touches no `.grad`; without, accumulates into the `.grad` of every leaf.
 */
export function runBackward(outputs: Tensor[], gradOutputs: Tensor[], options: RunOptions): (Tensor | null)[] {
  const createGraph = options.createGraph ?? false;
  const retainGraph = options.retainGraph ?? createGraph;
  const targets = options.targets;
  const nodes = collect(outputs);
  const results: (Tensor | null)[] = targets ? targets.map(() => null) : [];
  const targetLeaves = new Map<Tensor, number>();
  const targetNodes = new Map<Node, number>();
  const needed = targets ? neededNodes(nodes, targets, targetLeaves, targetNodes) : null;

  // A plain backward lets memory.ts recycle what it consumes, and defers the leaves to the end of the pass
  // so a gradient delivered to one leaf only can become its .grad without a copy.
  const memory = !targets && !createGraph ? new BackwardMemory() : null;
  const sink: LeafSink = { targets: targets ? targetLeaves : null, results, memory, contributions: new Map() };
  const grads = new Map<Node, Tensor>();

  const prevMode = setGradEnabled(createGraph);
  try {
    for (let i = 0; i < outputs.length; i++) {
      const o = outputs[i];
      const g = gradOutputs[i];
      if (o.gradFn) {
        const prev = grads.get(o.gradFn);
        grads.set(o.gradFn, prev ? add(prev, g) : g);
      } else if (o.requiresGrad) deliverLeaf(sink, o, g);
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
      checkVersions(node);
      // a built-in backward may write over g when nothing else holds it (user code may keep what it sees)
      if (memory && !node.userBackward) memory.donate(g, grads, sink.contributions);
      const inputGrads = isAnomalyEnabled() ? runBlamed(node, g) : node.backward!(g, node);
      if (memory) memory.withdraw();
      if (node.userBackward && memory) memory.forget(g, inputGrads);
      const inputs = node.inputs;
      for (let i = 0; i < inputs.length; i++) {
        const x = inputs[i];
        const raw = inputGrads[i];
        if (!raw || !x.requiresGrad) continue;
        if (needed && !(targetLeaves.has(x) || (x.gradFn && needed.has(x.gradFn)))) continue;
        const gi = reduceToInput(node, i, raw, x);
        if (isAnomalyEnabled()) checkBackward(node, i, gi, x);
        if (memory && gi !== raw) memory.consume(raw);
        if (x.gradFn) {
          const prev = grads.get(x.gradFn);
          grads.set(x.gradFn, prev ? add(prev, gi) : gi);
          if (memory && prev) {
            memory.consume(prev);
            memory.consume(gi);
          }
        } else deliverLeaf(sink, x, gi);
      }
      if (memory) {
        memory.consume(g);
        memory.releaseConsumed(grads, sink.contributions);
      }
    }
    if (memory) memory.settleLeaves(sink.contributions);
  } finally {
    setGradEnabled(prevMode);
    memory?.end();
    // a recorded pass may have captured the nodes' inputs in the graph it made
    if (createGraph) for (const node of nodes) for (const x of node.inputs) keepBeyondGraph(x);
    if (!retainGraph) for (const node of nodes) freeNode(node, memory !== null);
  }

  if (targets && !options.allowUnused) {
    results.forEach((r, i) => {
      if (r === null) {
        throw new GraphError(
          `grad: input ${i} ${fmtShape(targets[i].shape)} was not used to compute the output; pass { allowUnused: true } to get null for it`,
        );
      }
    });
  }
  return results;
}

/** Where leaf gradients go. NOTE: a plain object and module functions, not closures: the tiny-op path
 *  must not create functions per call (tsx's keepNames makes each named one cost ~0.4 µs). */
interface LeafSink {
  /** grad(): the target leaves and their result slots. */
  targets: Map<Tensor, number> | null;
  results: (Tensor | null)[];
  /** A plain backward: contributions wait in `contributions` until memory.settleLeaves. */
  memory: BackwardMemory | null;
  contributions: Map<Tensor, Tensor[]>;
}

function deliverLeaf(sink: LeafSink, x: Tensor, g: Tensor): void {
  if (sink.targets) {
    const i = sink.targets.get(x);
    if (i !== undefined) sink.results[i] = sink.results[i] ? add(sink.results[i]!, g) : g;
  } else if (sink.memory) {
    const list = sink.contributions.get(x);
    if (list) list.push(g);
    else sink.contributions.set(x, [g]);
  } else x.grad = x.grad ? add(x.grad, g) : g;
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

/** With grad() targets: the nodes that lead to a target (the others are skipped). Fills the target maps. */
function neededNodes(nodes: Node[], targets: Tensor[], leaves: Map<Tensor, number>, targetNodes: Map<Node, number>): Set<Node> {
  targets.forEach((t, i) => {
    if (!t.requiresGrad) throw new GraphError(`grad: input ${i} ${fmtShape(t.shape)} does not require grad`);
    if (t.gradFn) targetNodes.set(t.gradFn, i);
    else leaves.set(t, i);
  });
  const needed = new Set<Node>();
  // ascending id order is topological: a node's inputs are decided before it
  for (let k = nodes.length - 1; k >= 0; k--) {
    const node = nodes[k];
    if (targetNodes.has(node) || node.inputs.some((x) => leaves.has(x) || (x.gradFn !== null && needed.has(x.gradFn)))) {
      needed.add(node);
    }
  }
  return needed;
}

/** Frees a node's saved state; after a plain backward its graph-private inputs and scratch go to the pool. */
function freeNode(node: Node, plain: boolean): void {
  if (plain) for (const x of node.inputs) releaseIfGraphPrivate(x);
  if (node.scratch) releaseBuffer(node.scratch);
  node.scratch = null;
  node.freed = true;
  node.backward = null;
  node.inputs = [];
  node.saved = undefined;
  node.output = null;
}

/** The one place where broadcast gradients are summed back to their input's shape and checked. */
function reduceToInput(node: Node, i: number, g: Tensor, x: Tensor): Tensor {
  if (!sameShape(g.shape, x.shape)) {
    if (!broadcastsTo(x.shape, g.shape)) {
      throw new ShapeError(`${node.op}: backward returned a gradient of shape ${fmtShape(g.shape)} for input ${i} of shape ${fmtShape(x.shape)}`);
    }
    g = sumTo(g, x.shape);
  }
  if (g.dtype !== x.dtype) g = cast(g, x.dtype);
  return g;
}

function broadcastsTo(from: readonly number[], to: readonly number[]): boolean {
  if (from.length > to.length) return false;
  const off = to.length - from.length;
  for (let i = 0; i < from.length; i++) if (from[i] !== 1 && from[i] !== to[i + off]) return false;
  return true;
}
