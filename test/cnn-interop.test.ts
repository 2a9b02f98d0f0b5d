// Checkpoints of the cnn example's network (buildCnn, with batch norm and dropout, small widths) between
// PyTorch and tapegrad: test/fixtures/cnn-interop.{safetensors,json} come from PyTorch 1.13
// (scripts/cnn-interop.py); where /usr/bin/python3 has torch, PyTorch also loads tapegrad's checkpoint.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Generator, manualSeed, noGrad, rand, tensor, type Tensor } from "@tapegrad/autograd";
import { F, nn, optim, serialize } from "@tapegrad/nn";
import { loadSync, saveSync } from "@tapegrad/nn/node";
import { buildCnn, type CnnShape } from "../packages/examples/src/examples/cnn.ts";

interface Stored { shape: number[]; data: number[] }
const fixtureDir = new URL("./fixtures/", import.meta.url);
const fixture = JSON.parse(readFileSync(new URL("cnn-interop.json", fixtureDir), "utf8")) as {
  config: { channels: [number, number]; hidden: number; batchnorm: boolean; dropout: number };
  inputs: Stored; logits: Stored;
};
const checkpoint = new URL("cnn-interop.safetensors", fixtureDir).pathname;
const shape: CnnShape = { ...fixture.config };
const inputs = tensor(fixture.inputs.data, { shape: fixture.inputs.shape });
const root = mkdtempSync(join(tmpdir(), "tapegrad-cnn-interop-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The safetensors header of a file's bytes: name -> dtype and shape. */
function header(bytes: Uint8Array): Record<string, { dtype: string; shape: number[] }> {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const parsed = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { dtype: string; shape: number[] }>;
  delete parsed.__metadata__;
  return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, { dtype: v.dtype, shape: v.shape }]));
}

function expectClose(actual: Tensor, expected: Stored, tolerance: number): void {
  expect(actual.shape).toEqual(expected.shape);
  expected.data.forEach((v, i) => {
    if (!(Math.abs(actual.data[i] - v) <= tolerance)) expect.fail(`logit ${i}: tapegrad ${actual.data[i]}, PyTorch ${v}`);
  });
}

const torchAvailable = spawnSync("/usr/bin/python3", ["-c", "import torch"], { stdio: "ignore" }).status === 0;

describe("cnn checkpoints between PyTorch and tapegrad", () => {
  it("PyTorch's checkpoint loads strictly into buildCnn and gives PyTorch's eval-mode logits (batch norm's running statistics)", () => {
    const model = buildCnn(shape);
    expect(model.loadStateDict(loadSync(checkpoint))).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect((model.at(2) as nn.BatchNorm2d).numBatchesTracked).toBe(3);
    model.eval();
    expectClose(noGrad(() => model.forward(inputs)), fixture.logits, 2e-5);
  });

  it("tapegrad's checkpoint of the network has PyTorch's names, shapes and dtypes (F32, I64 counters)", () => {
    const ours = header(serialize(buildCnn(shape).stateDict()));
    expect(ours).toEqual(header(readFileSync(checkpoint)));
    expect(ours["2.num_batches_tracked"]).toEqual({ dtype: "I64", shape: [] });
  });

  it.skipIf(!torchAvailable)("PyTorch loads tapegrad's checkpoint after training steps and gives tapegrad's logits", () => {
    manualSeed(1);
    const model = buildCnn(shape);
    const opt = new optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
    const gen = new Generator(2);
    for (let step = 0; step < 3; step++) {
      const x = rand([16, 784], { generator: gen });
      const y = tensor(Array.from({ length: 16 }, (_, i) => (i * 7 + step) % 10));
      const loss = F.crossEntropy(model.forward(x), y);
      opt.zeroGrad();
      loss.backward();
      opt.step();
    }
    model.eval();
    const ours = noGrad(() => model.forward(inputs));
    const file = join(root, "tapegrad-cnn.safetensors"), inputsFile = join(root, "inputs.json");
    saveSync(file, model.stateDict());
    writeFileSync(inputsFile, JSON.stringify(fixture.inputs));
    const script = new URL("../scripts/cnn-interop.py", import.meta.url).pathname;
    const run = spawnSync("/usr/bin/python3", [script, "--check", file, inputsFile], { encoding: "utf8" });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    const torchSide = JSON.parse(run.stdout) as { logits: Stored; differences: string[]; num_batches_tracked: number[] };
    expect(torchSide.differences).toEqual([]);
    expect(torchSide.num_batches_tracked).toEqual([3, 3]);
    expectClose(ours, torchSide.logits, 2e-5);
  });
});
