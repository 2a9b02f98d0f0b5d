import { describe, expect, it } from "vitest";
import { ValueError, defineOp, tensor, toDot, type Tensor } from "../packages/autograd/src/index.ts";

describe("toDot", () => {
  const setup = () => {
    const W = tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], { requiresGrad: true });
    const b = tensor([0, 0, 0], { requiresGrad: true });
    const x = tensor([[1, 2]]);
    const loss = x.matmul(W).add(b).logSoftmax().pick([2]).mean().neg();
    return { W, b, x, loss };
  };

  it("toDot: one box per op with its output shape, leaves as ellipses, edges from inputs to ops", () => {
    const { W, b, x, loss } = setup();
    const dot = toDot(loss, { names: { W, b, x } });
    expect(dot.startsWith('digraph "tape" {\n')).toBe(true);
    expect(dot.trimEnd().endsWith("}")).toBe(true);
    for (const op of ["matmul", "add", "logSoftmax", "pick", "div", "neg"]) {
      expect(dot).toMatch(new RegExp(`op\\d+ \\[shape=box, label="${op}\\\\n`));
    }
    expect(dot).toContain('label="matmul\\n[1, 3]"');
    expect(dot).toContain('[shape=ellipse, label="W\\n[2, 3] float32"]');
    expect(dot).toContain('[shape=ellipse, label="x\\n[1, 2] float32", style=dashed]');
    // the root is drawn bold
    expect(dot).toMatch(new RegExp(`op${loss.gradFn!.id} \\[shape=box, label="neg\\\\n\\[\\]", penwidth=2\\]`));
    // matmul has two numbered input edges
    const mm = /op(\d+) \[shape=box, label="matmul/.exec(dot)![1];
    expect(dot).toMatch(new RegExp(`t\\d+ -> op${mm} \\[label="0"\\]`));
    expect(dot).toMatch(new RegExp(`t\\d+ -> op${mm} \\[label="1"\\]`));
  });

  it("toDot: unnamed leaves are 'leaf' or 'constant', named intermediates show their name", () => {
    const a = tensor([1, 2], { requiresGrad: true });
    const h = a.exp();
    const dot = toDot(h.mul(h).sum(), { names: new Map<Tensor, string>([[h, "hidden"]]), title: "my \"net\"" });
    expect(dot).toContain('digraph "my \\"net\\"" {');
    expect(dot).toContain('label="leaf\\n[2] float32"');
    expect(dot).toContain('label="exp (hidden)\\n[2]"');
    // h is used twice by mul: two edges, one node
    expect(dot.match(/label="exp/g)).toHaveLength(1);
    const constant = toDot(a.mul(tensor([3, 4])));
    expect(constant).toContain('label="constant\\n[2] float32", style=dashed');
  });

  it("toDot: custom ops appear under their name and freed nodes are marked", () => {
    const twice = defineOp({ name: "twice", forward: (_c, x) => x.mul(2), backward: (_c, g) => [g.mul(2)] });
    const a = tensor([1, 2], { requiresGrad: true });
    const loss = twice(a).sum();
    expect(toDot(loss)).toContain('label="twice\\n[2]"');
    loss.backward();
    expect(toDot(loss)).toContain("(freed by backward)");
  });

  it("toDot: several roots, and a leaf root", () => {
    const a = tensor([1, 2], { requiresGrad: true });
    const dot = toDot([a.exp(), a.log(), a]);
    expect(dot.match(/penwidth=2/g)).toHaveLength(2);
    expect(dot.match(/shape=ellipse/g)).toHaveLength(1);
  });

  it("toDot: a root that is not a tensor is refused", () => {
    expect(() => toDot([1 as unknown as Tensor])).toThrow(new ValueError("toDot: root 0 is not a Tensor"));
  });
});
