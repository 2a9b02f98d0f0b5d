import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  AnomalyError, defineOp, detectAnomaly, grad, isAnomalyEnabled, tensor,
} from "../packages/autograd/src/index.ts";

/** The message of the error `fn` throws. */
function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AnomalyError);
    return (e as Error).message;
  }
  throw new Error("expected an AnomalyError");
}

describe("detectAnomaly", () => {
  it("detectAnomaly: a forward producing -Infinity names the op and the user's line", () => {
    const x = tensor([0, 1], { requiresGrad: true });
    const msg = messageOf(() => detectAnomaly(() => x.log().sum()));
    expect(msg).toMatch(/^log: forward produced -Infinity at flat index 0 of output \[2\]\n {2}created at .*anomaly\.test\.ts:\d+:\d+/);
  });

  it("detectAnomaly: a NaN made inside a backward is blamed on that op, pointing where it was created", () => {
    const x = tensor([1, 0], { requiresGrad: true });
    let y!: ReturnType<typeof x.sqrt>;
    const msg = messageOf(() =>
      detectAnomaly(() => {
        y = x.sqrt(); // the line the message must point to
        y.sum().backward();
      }),
    );
    expect(msg).toMatch(/^sqrt: backward produced Infinity \(in its div\) at flat index 1 of a gradient of shape \[2\]\n {2}created at /);
    const line = Number(/anomaly\.test\.ts:(\d+)/.exec(msg)![1]);
    const source = readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n");
    expect(source[line - 1]).toContain("the line the message must point to");
  });

  it("detectAnomaly: a NaN made inside a library function (F.crossEntropy) points at the user's call, not into the library", async () => {
    const { F } = await import("@tapegrad/nn");
    const logits = tensor([[NaN, 1, 2]], { requiresGrad: true });
    const msg = messageOf(() => detectAnomaly(() => F.crossEntropy(logits, [0]))); // the user's call
    const line = Number(/anomaly\.test\.ts:(\d+)/.exec(msg)![1]);
    const source = readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n");
    expect(source[line - 1]).toContain("the user's call");
    expect(msg).not.toMatch(/functional\.ts/);
  });

  it("detectAnomaly: a non-finite gradient returned by a backward names the op and input", () => {
    const nanGrad = defineOp({
      name: "nanGrad",
      forward: (_c, x) => x.mul(2),
      backward: (ctx) => [tensor(new Float32Array(ctx.inputs[0].size).fill(NaN), { shape: ctx.inputs[0].shape })],
    });
    const x = tensor([[1, 2]], { requiresGrad: true });
    const msg = messageOf(() => detectAnomaly(() => nanGrad(x).sum().backward()));
    expect(msg).toMatch(/^nanGrad: backward produced NaN in the gradient of input 0 \[1, 2\] at flat index 0\n {2}created at .*anomaly\.test\.ts/);
  });

  it("detectAnomaly: the same NaN passes unnoticed outside detectAnomaly", () => {
    const x = tensor([0, 1], { requiresGrad: true });
    const y = x.sqrt().sum();
    y.backward();
    expect(x.grad!.data[0]).toBe(Infinity);
    expect(isAnomalyEnabled()).toBe(false);
  });

  it("detectAnomaly: the mode is restored after a throw and nests", () => {
    const x = tensor([0], { requiresGrad: true });
    expect(() => detectAnomaly(() => x.log())).toThrow(AnomalyError);
    expect(isAnomalyEnabled()).toBe(false);
    detectAnomaly(() => {
      detectAnomaly(() => undefined);
      expect(isAnomalyEnabled()).toBe(true);
    });
    expect(isAnomalyEnabled()).toBe(false);
  });

  it("detectAnomaly: second-order gradients are checked too (createGraph)", () => {
    const x = tensor([0, 4], { requiresGrad: true });
    const msg = messageOf(() =>
      detectAnomaly(() => {
        const [g] = grad(x.mul(x).mul(x).sqrt().sum(), [x], { createGraph: true });
        return g;
      }),
    );
    expect(msg).toMatch(/^sqrt: backward produced (NaN|Infinity) \(in its \w+\)/);
  });

  it("detectAnomaly: returns the function's value and finite work passes", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const loss = detectAnomaly(() => {
      const l = x.log().mul(x).sum();
      l.backward();
      return l;
    });
    expect(loss.item()).toBeCloseTo(2 * Math.log(2));
    expect(Array.from(x.grad!.data)).toEqual([1, expect.closeTo(Math.log(2) + 1, 5)]);
  });
});
