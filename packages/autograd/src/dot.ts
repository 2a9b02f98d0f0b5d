/** The tape as a Graphviz DOT graph, to look at what backward will walk. */
import type { Node } from "./tape.ts";
import { ValueError, fmtShape } from "./errors.ts";
import { Tensor } from "./tensor.ts";

export interface ToDotOptions {
  /** Labels for tensors (parameters, inputs): shown instead of "leaf". */
  names?: Map<Tensor, string> | Record<string, Tensor>;
  /** The graph's name in the DOT source. */
  title?: string;
}

function quote(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/**
 * Graphviz DOT of the ops that produced `roots`: one box per op (name, output shape, dtype), one ellipse per
 * leaf (shape, whether it requires grad), edges from inputs to ops. Call it before backward (or with
 * retainGraph): backward frees the nodes it walks.
 * @example writeFileSync("tape.dot", toDot(loss, { names: { W, b } })); // dot -Tsvg tape.dot > tape.svg
 */
export function toDot(roots: Tensor | readonly Tensor[], options: ToDotOptions = {}): string {
  const list = roots instanceof Tensor ? [roots] : [...roots];
  list.forEach((r, i) => {
    if (!(r instanceof Tensor)) throw new ValueError(`toDot: root ${i} is not a Tensor`);
  });
  const names = new Map<Tensor, string>();
  if (options.names instanceof Map) for (const [t, n] of options.names) names.set(t, n);
  else if (options.names) for (const [n, t] of Object.entries(options.names)) names.set(t, n);

  const lines: string[] = [`digraph ${quote(options.title ?? "tape")} {`, "  rankdir=BT;", '  node [fontname="monospace"];'];
  const leafIds = new Map<Tensor, string>();
  const seen = new Set<Node>();
  const stack: Node[] = [];
  const rootIds = new Set<string>();
  const idOf = (t: Tensor): string => {
    if (t.gradFn) {
      if (!seen.has(t.gradFn)) { seen.add(t.gradFn); stack.push(t.gradFn); }
      return `op${t.gradFn.id}`;
    }
    let id = leafIds.get(t);
    if (!id) {
      id = `t${leafIds.size}`;
      leafIds.set(t, id);
      const label = `${names.get(t) ?? (t.requiresGrad ? "leaf" : "constant")}\n${fmtShape(t.shape)} ${t.dtype}`;
      const style = t.requiresGrad ? "" : ", style=dashed";
      lines.push(`  ${id} [shape=ellipse, label=${quote(label)}${style}];`);
    }
    return id;
  };
  for (const r of list) rootIds.add(idOf(r));
  const nodeLines: string[] = [];
  const edges: string[] = [];
  while (stack.length) {
    const n = stack.pop()!;
    const id = `op${n.id}`;
    const named = [...names].find(([t]) => t.gradFn === n)?.[1];
    const label = `${n.op}${named ? ` (${named})` : ""}\n${fmtShape(n.outShape)}${n.freed ? "\n(freed by backward)" : ""}`;
    const root = rootIds.has(id) ? ", penwidth=2" : "";
    nodeLines.push(`  ${id} [shape=box, label=${quote(label)}${root}];`);
    n.inputs.forEach((x, i) => edges.push(`  ${idOf(x)} -> ${id}${n.inputs.length > 1 ? ` [label="${i}"]` : ""};`));
  }
  lines.push(...nodeLines.sort(), ...edges, "}");
  return lines.join("\n") + "\n";
}
