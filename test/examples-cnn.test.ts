// The convolutional examples (lenet, cnn) on the examples' Fashion-MNIST sample: what they write, their
// networks, their options, and --resume continuing a run with dropout bit for bit (the random generator's
// state travels in the checkpoint).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { nn } from "@tapegrad/nn";
import { type CnnOptions, buildCnn, cnn, run as cnnRun } from "../packages/examples/src/examples/cnn.ts";
import { buildLeNet, run as lenetRun } from "../packages/examples/src/examples/lenet.ts";
import { decodeJson, type TrainingState } from "../packages/examples/src/lib/checkpoints.ts";
import { parseCommandLine } from "../packages/examples/src/lib/cli.ts";
import { fashionMnistSample } from "../packages/examples/src/lib/data.ts";
import { UsageError } from "../packages/examples/src/lib/errors.ts";
import { loadStateSync } from "../packages/nn/src/node/checkpoint.ts";

const root = mkdtempSync(join(tmpdir(), "tapegrad-examples-cnn-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const quiet = { log: () => {}, progress: false };
const common = { ...quiet, dataset: "fashion-mnist" as const, data: fashionMnistSample, seed: 0 };

const isPng = (path: string): boolean => readFileSync(path).subarray(1, 4).toString() === "PNG";
const metrics = (dir: string) => readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => {
  const { seconds: _seconds, ...rest } = JSON.parse(l);
  return rest;
});
function tensorBytes(path: string): Record<string, string> {
  const { tensors } = loadStateSync(path);
  return Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString("base64")]));
}

describe("lenet", () => {
  it("buildLeNet: d2l's layers and shapes, Xavier uniform weights", () => {
    const model = buildLeNet();
    const shapes = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, t.shape]));
    expect(shapes).toEqual({
      "1.weight": [6, 1, 5, 5], "1.bias": [6], "4.weight": [16, 6, 5, 5], "4.bias": [16],
      "8.weight": [120, 400], "8.bias": [120], "10.weight": [84, 120], "10.bias": [84], "12.weight": [10, 84], "12.bias": [10],
    });
    const bound = Math.sqrt(6 / (25 + 150)); // conv1: fanIn 1·25, fanOut 6·25
    const w = Array.from((model.at(1) as nn.Conv2d).weight.data);
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(0.8 * bound);
  });

  it("lenet trains and writes metrics, a checkpoint, filters.png and feature-maps.png", async () => {
    const out = join(root, "lenet");
    const result = await lenetRun({ ...common, out, epochs: 2, batchSize: 32, lr: 0.9, limitTrain: 1200, limitTest: 200 });
    expect(metrics(out).map((m) => m.epoch)).toEqual([1, 2]);
    expect(Number.isFinite(result.trainLoss as number)).toBe(true);
    for (const f of ["filters.png", "feature-maps.png", "curves.svg"]) expect(result.files).toContain(join(out, f));
    expect(isPng(join(out, "filters.png")) && isPng(join(out, "feature-maps.png"))).toBe(true);
    expect(loadStateSync(join(out, "model.safetensors")).tensors["1.weight"].shape).toEqual([6, 1, 5, 5]);
  });
});

describe("cnn", () => {
  it("buildCnn: the issue's network, with BatchNorm2d after each convolution and Dropout before the last layer when asked", () => {
    const plain = buildCnn();
    expect(plain.numParameters()).toBe(32 * 9 + 32 + 64 * 32 * 9 + 64 + 3136 * 128 + 128 + 128 * 10 + 10);
    const full = buildCnn({ batchnorm: true, dropout: 0.5 });
    expect([...full].map((m) => m.constructor.name)).toEqual([
      "Unflatten", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "ReLU", "Dropout", "Linear",
    ]);
  });

  it("cnn --batchnorm --dropout learns, saves running statistics and an int64 batch counter", async () => {
    const out = join(root, "cnn-bn");
    const result = await cnnRun({ ...common, out, epochs: 1, batchSize: 32, lr: 0.05, momentum: 0.9, batchnorm: true, dropout: 0.3, limitTrain: 1000, limitTest: 200 });
    expect(result.testAccuracy).toBeGreaterThan(0.5);
    const { tensors } = loadStateSync(join(out, "model.safetensors"));
    expect(tensors["2.running_mean"].shape).toEqual([32]);
    expect(tensors["2.num_batches_tracked"]).toMatchObject({ dtype: "int64", shape: [] });
    expect(tensors["2.num_batches_tracked"].data[0]).toBe(32); // ceil(1000 / 32) steps
    expect(isPng(join(out, "feature-maps.png"))).toBe(true);
  });

  it("a cnn run with dropout stopped mid-epoch and resumed ends with the uninterrupted run's weights bit for bit", async () => {
    const base: CnnOptions = { ...common, epochs: 2, batchSize: 32, lr: 0.01, optimizer: "adam", batchnorm: true, dropout: 0.5, limitTrain: 320, limitTest: 100 };
    await cnnRun({ ...base, out: join(root, "whole") });
    const stop = new AbortController();
    stop.abort();
    await expect(cnnRun({ ...base, out: join(root, "resumed"), signal: stop.signal })).rejects.toThrow(/^stopped at epoch 1, step 1 of 10/);
    const state = decodeJson(loadStateSync(join(root, "resumed", "checkpoints", "last.safetensors")).metadata.training) as TrainingState;
    expect(state.generator?.s).toHaveLength(4);
    await cnnRun({ ...base, resume: join(root, "resumed") });
    expect(tensorBytes(join(root, "resumed", "model.safetensors"))).toEqual(tensorBytes(join(root, "whole", "model.safetensors")));
    expect(metrics(join(root, "resumed"))).toEqual(metrics(join(root, "whole")));
  });

  it("cnn's options are checked in the user's words", async () => {
    const parse = (...argv: string[]) => cnn.runWith(parseCommandLine(argv, cnn.options).values);
    await expect(parse("--optimizer", "rmsprop")).rejects.toThrow(new UsageError('--optimizer must be sgd or adam, got "rmsprop"'));
    await expect(parse("--dropout", "1")).rejects.toThrow(/--dropout must be below 1 \(at 1 every unit is dropped\), got 1/);
    await expect(parse("--momentum", "1")).rejects.toThrow(/--momentum must be below 1/);
  });
});
