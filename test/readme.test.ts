import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { tensor, manualSeed } from "@tapegrad/autograd";
import { nn, optim, F, DataLoader } from "@tapegrad/nn";
import { fashionMnist } from "@tapegrad/nn/node";
import { fashionMnistSample } from "../packages/examples/src/lib/data.ts";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

describe("README", () => {
  it("README: the quick start is exactly two commands, and they are package scripts", () => {
    const quick = /## Quick start[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)![1].trim().split("\n");
    expect(quick).toEqual(["npm start", "npm test"]);
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
    expect(pkg.scripts.start).toContain("packages/examples/src/main.ts mlp");
    expect(pkg.scripts.test).toContain("vitest run");
    const ci = readFileSync(new URL("../.ci/run", import.meta.url), "utf8");
    expect(ci).toMatch(/^npm test( --.*)?$/m);
  });

  it("README: the PyTorch-style example prints the gradient it claims", () => {
    const claimed = /console\.log\(x\.grad\?\.toArray\(\)\); \/\/ (.*)/.exec(readme)![1];
    const x = tensor([[1, 2], [3, 4]], { requiresGrad: true });
    x.matmul(x.transpose()).relu().sum().backward();
    expect(JSON.stringify(x.grad!.toArray()).replace(/,/g, ", ")).toBe(claimed);
  });

  it("README: the training loop of the example runs as written (on the examples' sample)", async () => {
    manualSeed(0);
    const train = await fashionMnist({
      split: "train", root: "/nonexistent", download: false, systemDirs: [], cacheDir: "/nonexistent", env: {}, sampleDir: fashionMnistSample,
    });
    expect(train.isSample).toBe(true);
    const loader = new DataLoader(train, { batchSize: 128, shuffle: true, seed: 0 });
    const model = new nn.Sequential(new nn.Linear(784, 128), new nn.ReLU(), new nn.Linear(128, 10));
    const opt = new optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
    let first = NaN, last = NaN;
    for (const [xb, yb] of loader) {
      const loss = F.crossEntropy(model.forward(xb), yb);
      opt.zeroGrad();
      loss.backward();
      opt.step();
      if (Number.isNaN(first)) first = loss.item();
      last = loss.item();
    }
    expect(last).toBeLessThan(first * 0.5);
  });
});
