import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { run as fromScratch } from "../packages/examples/src/examples/from-scratch.ts";
import { run as gradientCheck } from "../packages/examples/src/examples/gradient-check.ts";
import { run as hardest } from "../packages/examples/src/examples/hardest.ts";
import { run as mlp } from "../packages/examples/src/examples/mlp.ts";
import { run as softmaxRegression } from "../packages/examples/src/examples/softmax-regression.ts";
import { helpText, parseOptions } from "../packages/examples/src/lib/cli.ts";
import { curvesSvg } from "../packages/examples/src/lib/curves.ts";
import { examples } from "../packages/examples/src/examples/index.ts";
import { loadSync } from "../packages/nn/src/node/checkpoint.ts";
import { fashionMnistSample } from "../packages/examples/src/lib/data.ts";

// The examples' Fashion-MNIST sample (6000 train / 1000 test images): small, always present, no network.
const sample = fashionMnistSample;
const root = mkdtempSync(join(tmpdir(), "tapegrad-examples-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const quiet = { log: () => {}, progress: false };
const common = {
  ...quiet,
  dataset: "fashion-mnist" as const,
  data: sample,
  limitTrain: 1000,
  limitTest: 200,
  seed: 0,
};

function metricsOf(dir: string): Array<Record<string, number>> {
  return readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
}

function isPng(path: string): boolean {
  return readFileSync(path).subarray(1, 4).toString() === "PNG";
}

describe("examples: in-process runs on the embedded sample", () => {
  let mlpCheckpoint = "";

  it("mlp trains, writes metrics, curves, a loadable checkpoint and result.json", async () => {
    const out = join(root, "mlp");
    const result = await mlp({ ...common, out, epochs: 2, batchSize: 64, lr: 0.1 });
    const metrics = metricsOf(out);
    expect(metrics.map((m) => m.epoch)).toEqual([1, 2]);
    expect(metrics[1].trainLoss).toBeLessThan(metrics[0].trainLoss);
    expect(result.testAccuracy).toBeGreaterThan(0.5);
    expect(readFileSync(join(out, "curves.svg"), "utf8")).toMatch(/^<svg[\s\S]*polyline[\s\S]*<\/svg>\n$/);
    const state = loadSync(join(out, "model.safetensors"));
    expect(Object.keys(state).sort()).toEqual(["0.bias", "0.weight", "2.bias", "2.weight"]);
    expect(state["0.weight"].shape).toEqual([128, 784]);
    expect(JSON.parse(readFileSync(join(out, "result.json"), "utf8")).testAccuracy).toBe(result.testAccuracy);
    mlpCheckpoint = join(out, "model.safetensors");
  });

  it("mlp --no-bias saves weights only", async () => {
    const out = join(root, "mlp-nobias");
    await mlp({ ...common, out, epochs: 1, batchSize: 64, lr: 0.1, bias: false, hidden: 16, limitTrain: 300 });
    expect(Object.keys(loadSync(join(out, "model.safetensors"))).sort()).toEqual(["0.weight", "2.weight"]);
  });

  it("softmax-regression writes metrics, curves and the nine-prediction grid", async () => {
    const out = join(root, "softmax");
    const result = await softmaxRegression({ ...common, out, epochs: 1, batchSize: 256, lr: 0.1 });
    expect(metricsOf(out)).toHaveLength(1);
    expect(result.testAccuracy).toBeGreaterThan(0.4);
    expect(isPng(join(out, "predictions.png"))).toBe(true);
    expect(readFileSync(join(out, "predictions.txt"), "utf8").trim().split("\n")).toHaveLength(9);
  });

  it("from-scratch learns with Tensor ops and its own SGD", async () => {
    const out = join(root, "scratch");
    const result = await fromScratch({ ...common, out, epochs: 2, batchSize: 64, lr: 0.1, hidden: 32 });
    const metrics = metricsOf(out);
    expect(metrics[1].trainLoss).toBeLessThan(metrics[0].trainLoss);
    expect(result.testAccuracy).toBeGreaterThan(0.4);
    expect(existsSync(join(out, "curves.svg"))).toBe(true);
  });

  it("gradient-check: backprop matches central differences", async () => {
    const out = join(root, "gradcheck");
    const result = await gradientCheck({ ...common, out, images: 2, hidden: 3 });
    expect(result.ok).toBe(true);
    expect(result.maxMeanAbsDiff as number).toBeLessThan(1e-8);
    expect(Object.keys(result.checks as object)).toEqual(["W1", "b1", "W2", "b2"]);
  });

  it("hardest ranks test losses and writes both grids", async () => {
    const out = join(root, "hardest");
    const result = await hardest({ ...common, out, epochs: 1, batchSize: 64, lr: 0.1, checkpoint: mlpCheckpoint, grid: 3 });
    expect(result.trainedHere).toBe(false);
    expect(isPng(join(out, "hardest.png")) && isPng(join(out, "easiest.png"))).toBe(true);
    const rows = readFileSync(join(out, "losses.csv"), "utf8").trim().split("\n").slice(1);
    expect(rows).toHaveLength(200);
    const losses = rows.map((r) => Number(r.split(",")[2]));
    expect(losses).toEqual([...losses].sort((a, b) => b - a));
    const grids = JSON.parse(readFileSync(join(out, "grids.json"), "utf8"));
    expect(grids.hardest).toHaveLength(9);
    expect(grids.hardest[0].loss).toBe(losses[0]);
  });

  it("hardest trains an MLP first when no checkpoint is found", async () => {
    const out = join(root, "hardest-train");
    const result = await hardest({ ...common, out, epochs: 1, batchSize: 64, lr: 0.1, limitTrain: 300, runsDir: join(root, "no-runs") });
    expect(result.trainedHere).toBe(true);
    expect(existsSync(join(out, "mlp", "model.safetensors"))).toBe(true);
  });
});

describe("examples: command line", () => {
  it("every example has --help text listing the common options", () => {
    for (const e of examples) {
      const text = helpText(`pnpm example ${e.name}`, e.summary, e.options);
      expect(text).toContain("--out DIR");
      expect(text).toContain("--help");
    }
  });

  it("parses defaults and rejects unknown options and bad numbers", async () => {
    const mlpExample = examples.find((e) => e.name === "mlp")!;
    const values = parseOptions(["--epochs", "3", "--no-bias"], mlpExample.options);
    expect(values).toMatchObject({ epochs: "3", "no-bias": true, lr: "0.1", dataset: "fashion-mnist" });
    expect(() => parseOptions(["--bogus"], mlpExample.options)).toThrow(/bogus/);
    await expect(mlpExample.runWith({ ...values, epochs: "0" })).rejects.toThrow(/--epochs must be a whole number of at least 1, got 0/);
  });

  it("curvesSvg draws one polyline per series with more than one point", () => {
    const svg = curvesSvg("t", [{ name: "loss", values: [1, 0.5, 0.25], color: "red" }], [{ name: "acc", values: [0.5, 0.7, 0.8], color: "blue" }]);
    expect(svg.match(/<polyline/g)).toHaveLength(2);
    expect(svg).toContain("<text");
  });
});
