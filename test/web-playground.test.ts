/**
 * The browser playground (packages/web) in a real browser: the site is built with Vite, served from
 * 127.0.0.1 with the cross-origin isolation headers (and once without them), and driven in Debian's Chromium
 * (headless, playwright-core) through its own controls, on the shipped Fashion-MNIST sample:
 * training lowers the loss and passes an accuracy floor on two WebAssembly threads; a checkpoint downloaded
 * from the page loads in Node into the examples' MLP with the same predictions, and loads back into the
 * page; a dropped test image is classified as Node classifies it; strokes on the pad give probabilities;
 * the CNN (chosen in the page, a few steps at a small batch) lowers the loss, its checkpoint loads into the
 * cnn example's buildCnn with the page's predictions, and a Node cnn checkpoint (batch norm, dropout) loads
 * into the page with Node's predictions; without the headers the page trains on one thread and says why;
 * the console stays clean. The screenshot goes to .ci/artifacts/web-playground.png.
 * Without Chromium, the checkpoint mapping between the page's models and the examples' is still checked.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manualSeed, noGrad, Tensor } from "@tapegrad/autograd";
import { deserialize, type ImageDataset, type nn, serialize } from "@tapegrad/nn";
import { fashionMnist, load, loadState, saveSync } from "@tapegrad/nn/node";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCnn } from "../packages/examples/src/examples/cnn.ts";
import { buildMlp } from "../packages/examples/src/examples/mlp.ts";
import { checkpointBytes, createModel, modelFromCheckpoint } from "../packages/web/app/models.ts";
import { buildSite, type Chromium, findChromium, launchChromium } from "../packages/web/scripts/browser.ts";
import { serveSite, type StaticSite } from "../packages/web/scripts/serve.ts";

const repo = join(import.meta.dirname, "..");
const sampleDir = join(repo, "packages/examples/assets/fashion-mnist-sample");
const artifacts = join(repo, ".ci/artifacts");
const chromium = findChromium();
/** Two epochs of the 6,000-image sample at batch 128: 94 steps. */
const EPOCHS = 2;
const STEPS = EPOCHS * Math.ceil(6000 / 128);
/** Test accuracy after those steps is about 0.8 (Adam, lr 0.002); a broken gradient stays near 0.1. */
const ACCURACY_FLOOR = 0.7;
const TROUSER = 1;
/** CNN steps in the page: three points of the running loss (10 steps each) at batch 16. */
const CNN_STEPS = 30;
const CNN_BATCH = 16;

/** A grid cell as the page shows it after an evaluation. */
interface Cell {
  index: number;
  predicted: number;
  probability: number;
}

/** Node's class probabilities for test images `indices` under `model` (eval mode), row-major [n, 10]. */
function nodeProbabilities(model: nn.Module, images: Float32Array, indices: number[]): Float32Array {
  model.eval();
  const x = new Float32Array(indices.length * 784);
  indices.forEach((index, i) => x.set(images.subarray(index * 784, (index + 1) * 784), i * 784));
  return noGrad(() => model.forward(new Tensor(x, [indices.length, 784])).softmax(1)).data as Float32Array;
}

/**
 * The page's predictions are Node's: the same class (either of two whose probabilities are within 1e-4, where
 * float32 sums in another order may swap them) and the same probability to 4 decimals.
 */
function expectSamePredictions(cells: Cell[], probabilities: Float32Array): void {
  cells.forEach((c, i) => {
    const row = Array.from(probabilities.subarray(i * 10, (i + 1) * 10));
    const best = row.indexOf(Math.max(...row));
    if (c.predicted !== best) expect(row[best] - row[c.predicted], `grid image ${c.index}: page ${c.predicted}, Node ${best}`).toBeLessThan(1e-4);
    expect(c.probability, `grid image ${c.index}`).toBeCloseTo(row[c.predicted], 4);
  });
}

describe("web playground: the page's checkpoints and the examples'", () => {
  const images = (n: number, seed: number) => {
    manualSeed(seed);
    return new Tensor(Float32Array.from({ length: n * 784 }, (_, i) => (Math.sin(i * 0.37 + seed) + 1) / 2), [n, 784]);
  };

  it("the page's CNN has the cnn example's state-dict names, shapes and metadata, and loads into buildCnn", () => {
    const page = createModel("cnn", 3);
    const node = buildCnn();
    const shapes = (m: nn.Module) => Object.fromEntries(Object.entries(m.stateDict()).map(([k, t]) => [k, t.shape]));
    expect(shapes(page)).toEqual(shapes(node));
    expect(Object.keys(shapes(page))).toEqual(["1.weight", "1.bias", "4.weight", "4.bias", "8.weight", "8.bias", "10.weight", "10.bias"]);
    const { tensors, metadata } = deserialize(checkpointBytes("cnn", page, { steps: "0" }));
    expect(metadata).toMatchObject({ example: "cnn", dataset: "fashion-mnist", batchnorm: "false", dropout: "0", steps: "0" });
    node.loadStateDict(tensors);
    page.eval();
    node.eval();
    const x = images(4, 1);
    expect(Array.from(noGrad(() => node.forward(x)).data)).toEqual(Array.from(noGrad(() => page.forward(x)).data));
  });

  it("a cnn example checkpoint with batch norm, dropout and other widths loads into the page's CNN with Node's eval outputs", () => {
    manualSeed(5);
    const node = buildCnn({ channels: [4, 6], hidden: 12, batchnorm: true, dropout: 0.3 });
    node.train();
    noGrad(() => node.forward(images(8, 2))); // running statistics away from 0 and 1
    const bytes = serialize(node.stateDict(), { example: "cnn", batchnorm: "true", dropout: "0.3" });
    const { tensors, metadata } = deserialize(bytes);
    const { id, model } = modelFromCheckpoint(tensors, "cnn.safetensors", metadata);
    expect(id).toBe("cnn");
    expect(model.toString()).toBe(node.toString());
    node.eval();
    model.eval();
    const x = images(3, 4);
    expect(Array.from(noGrad(() => model.forward(x)).data)).toEqual(Array.from(noGrad(() => node.forward(x)).data));
  });

  it("a convolution checkpoint that is not the cnn example's is refused, naming the file", () => {
    const tensors = (shapes: Record<string, number[]>) => deserialize(serialize(Object.fromEntries(
      Object.entries(shapes).map(([name, shape]) => [name, new Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape)])))).tensors;
    expect(() => modelFromCheckpoint(tensors({ "1.weight": [4, 1, 5, 5] }), "other.safetensors"))
      .toThrow(/^other\.safetensors: a convolution "1\.weight" but not the cnn example's layers/);
    const wrongKernel = tensors({ "1.weight": [4, 1, 5, 5], "4.weight": [6, 4, 3, 3], "8.weight": [12, 294] });
    expect(() => modelFromCheckpoint(wrongKernel, "other.safetensors")).toThrow(/^other\.safetensors: does not fit CNN/);
  });
});

describe.skipIf(!chromium)(`web playground in headless Chromium${chromium ? "" : " (skipped: no Chromium; apt-get install chromium or set CHROMIUM)"}`, () => {
  let work: string;
  let isolated: StaticSite;
  let plain: StaticSite;
  let browser: Chromium;
  let page: Page;
  let test: ImageDataset;
  const consoleErrors: string[] = [];
  const watch = (p: Page): void => {
    p.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") consoleErrors.push(`${m.type()}: ${m.text()}`);
    });
    p.on("pageerror", (e) => consoleErrors.push(`page error: ${e.message}`));
  };
  const attr = async (selector: string, name: string): Promise<string> => (await page.getAttribute(selector, name)) ?? "";
  const waitFor = (p: Page, condition: string, timeout = 60_000) => p.waitForFunction(condition, null, { timeout, polling: 50 });
  const gridCells = (): Promise<Cell[]> => page.locator("#grid .cell").evaluateAll((nodes) =>
    nodes.map((n) => {
      const { index, predicted, probability } = (n as unknown as { dataset: Record<string, string> }).dataset;
      return { index: Number(index), predicted: Number(predicted), probability: Number(probability) };
    }));

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "tapegrad-web-test-"));
    const [dist] = await Promise.all([buildSite(join(work, "dist")), fashionMnist({ split: "test", root: sampleDir, strict: true }).then((d) => (test = d))]);
    [isolated, plain] = await Promise.all([serveSite({ root: dist }), serveSite({ root: dist, isolation: false })]);
    browser = await launchChromium(chromium!);
    page = await browser.context.newPage();
    watch(page);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all([isolated?.close(), plain?.close()]);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("trains the MLP on two threads: the loss falls and test accuracy passes the floor", async () => {
    await page.goto(`${isolated.url}?data=sample&epochs=${EPOCHS}&eval=1000`);
    await waitFor(page, "!document.querySelector('#start').disabled");
    expect(await attr("#backend", "data-gemm")).toBe("wasm");
    expect(await attr("#backend", "data-threads")).toBe("2");
    expect(await attr("#backend", "data-isolated")).toBe("true");
    expect(await page.textContent("#backend")).toBe("wasm SIMD + FMA · 2 threads");
    expect(await page.isHidden("#backend-note")).toBe(true);
    expect(await attr("#data-source", "data-source")).toBe("sample");
    expect(await page.inputValue("#model")).toBe("mlp");
    await waitFor(page, "document.querySelector('#test-accuracy').dataset.step === '0'");
    const untrained = Number(await attr("#test-accuracy", "data-value"));

    await page.click("#start");
    await waitFor(page, `document.querySelector('#status').dataset.running === 'false' && document.querySelector('#status').dataset.step === '${STEPS}'`);
    await waitFor(page, `document.querySelector('#test-accuracy').dataset.step === '${STEPS}'`);
    const firstLoss = Number(await attr("#status", "data-first-loss"));
    const lastLoss = Number(await attr("#status", "data-last-loss"));
    const accuracy = Number(await attr("#test-accuracy", "data-value"));
    expect(firstLoss).toBeGreaterThan(1.2); // steps 1-10 from random weights: near ln 10 = 2.3
    expect(lastLoss).toBeLessThan(0.5 * firstLoss);
    expect(accuracy).toBeGreaterThan(ACCURACY_FLOOR);
    expect(accuracy).toBeGreaterThan(untrained + 0.4);
    expect(await page.locator("#per-class li").count()).toBe(10);
    expect(await page.locator("#grid .cell[data-predicted]").count()).toBe(40);
    expect(await page.locator("#grid .cell.wrong").count()).toBeLessThan(40 * (1 - ACCURACY_FLOOR + 0.15));
  });

  it("downloads a checkpoint that the examples' MLP loads in Node with the page's predictions", async () => {
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#save")]);
    const file = join(work, download.suggestedFilename());
    await download.saveAs(file);
    expect(download.suggestedFilename()).toBe("tapegrad-mlp.safetensors");
    const { metadata } = await loadState(file);
    expect(metadata).toMatchObject({ example: "mlp", dataset: "fashion-mnist", hidden: "128", bias: "true", steps: String(STEPS) });

    const model = buildMlp(784, 128, 10);
    model.loadStateDict(await load(file));
    model.eval();
    const cells = await gridCells();
    const x = new Float32Array(cells.length * 784);
    cells.forEach((c, i) => x.set(test.images.subarray(c.index * 784, (c.index + 1) * 784), i * 784));
    const probabilities = noGrad(() => model.forward(new Tensor(x, [cells.length, 784])).softmax(1));
    const predicted = probabilities.argmax(1).data;
    cells.forEach((c, i) => {
      expect(c.predicted, `grid image ${c.index}`).toBe(predicted[i]);
      expect(c.probability).toBeCloseTo(probabilities.data[i * 10 + predicted[i]], 4);
    });

    // the same file back into the page, after a reset has replaced the weights
    const trained = await attr("#test-accuracy", "data-value");
    await page.click("#reset");
    await waitFor(page, "document.querySelector('#status').dataset.step === '0'");
    await waitFor(page, `document.querySelector('#test-accuracy').dataset.value !== '${trained}'`);
    await page.setInputFiles("#load", file);
    await waitFor(page, `document.querySelector('#status').dataset.loaded === '${download.suggestedFilename()}'`);
    await waitFor(page, `document.querySelector('#test-accuracy').dataset.value === '${trained}'`);

    // a file that is not a checkpoint: an error naming it, and the model stays
    await page.setInputFiles("#load", { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("not a checkpoint") });
    await waitFor(page, "!document.querySelector('#errors').hidden");
    expect(await page.textContent("#errors")).toMatch(/^notes\.txt: /);
    expect(await attr("#test-accuracy", "data-value")).toBe(trained);
  });

  it("classifies a test image dropped on the pad as Node does, and strokes give probabilities", async () => {
    const model = buildMlp(784, 128, 10);
    const [checkpoint] = await Promise.all([page.waitForEvent("download"), page.click("#save")]);
    const file = join(work, "reloaded.safetensors");
    await checkpoint.saveAs(file);
    model.loadStateDict(await load(file));
    model.eval();
    // the first test trouser the model gets right (trousers are the easiest class)
    let index = -1;
    let nodeClass = -1;
    noGrad(() => {
      for (let i = 0; i < test.n && index < 0; i++) {
        if (test.labels[i] !== TROUSER) continue;
        const guess = model.forward(new Tensor(test.images.slice(i * 784, (i + 1) * 784), [1, 784])).argmax(1).data[0];
        if (guess === TROUSER) [index, nodeClass] = [i, guess];
      }
    });
    expect(index).toBeGreaterThanOrEqual(0);
    const bytes = Array.from(test.images.subarray(index * 784, (index + 1) * 784), (v) => Math.round(v * 255));
    const transfer = await page.evaluateHandle(`(async (bytes) => {
      const canvas = new OffscreenCanvas(28, 28);
      const ctx = canvas.getContext("2d");
      const image = ctx.createImageData(28, 28);
      bytes.forEach((v, i) => image.data.set([v, v, v, 255], 4 * i));
      ctx.putImageData(image, 0, 0);
      const blob = await canvas.convertToBlob({ type: "image/png" });
      const transfer = new DataTransfer();
      transfer.items.add(new File([blob], "trouser.png", { type: "image/png" }));
      return transfer;
    })(${JSON.stringify(bytes)})`);
    const before = await attr("#prediction", "data-request");
    await page.dispatchEvent("#pad", "drop", { dataTransfer: transfer });
    await waitFor(page, `(document.querySelector('#prediction').dataset.request ?? '') !== '${before}'`);
    expect(Number(await attr("#prediction", "data-class"))).toBe(nodeClass);
    expect(await page.textContent("#prediction")).toMatch(/^Trouser \(/);

    // strokes: clear, then a vertical bar drawn with the mouse
    await page.click("#clear");
    const pad = (await page.locator("#pad").boundingBox())!;
    const requested = await attr("#prediction", "data-request");
    await page.mouse.move(pad.x + pad.width * 0.5, pad.y + pad.height * 0.15);
    await page.mouse.down();
    for (let t = 0.15; t <= 0.85; t += 0.05) await page.mouse.move(pad.x + pad.width * 0.5, pad.y + pad.height * t);
    await page.mouse.up();
    await waitFor(page, `(document.querySelector('#prediction').dataset.request ?? '') !== '${requested}'`);
    const probabilities = await page.locator("#probabilities li").evaluateAll((nodes) =>
      nodes.map((n) => Number((n as unknown as { dataset: Record<string, string> }).dataset.value)));
    expect(probabilities).toHaveLength(10);
    expect(probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);

    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, "web-playground.png"), fullPage: true });
  });

  it("trains the CNN a few steps (the loss falls); its checkpoint loads into the cnn example's buildCnn with the page's predictions", async () => {
    await page.selectOption("#model", "cnn");
    // the model's defaults: Adam at the cnn example's rate, batch 64, and a note that it is slower
    expect(await page.inputValue("#optimizer")).toBe("adam");
    expect(await page.inputValue("#lr")).toBe("0.001");
    expect(await page.inputValue("#batch")).toBe("64");
    expect(await page.isVisible("#model-note")).toBe(true);
    expect(await page.textContent("#model-note")).toMatch(/slower/);
    // a smaller batch keeps the test short: reset with it
    await page.selectOption("#batch", String(CNN_BATCH));
    await page.click("#reset");
    await waitFor(page, "document.querySelector('#model-description').textContent.startsWith('CNN') && document.querySelector('#status').dataset.step === '0'");
    expect(await page.textContent("#model-description")).toMatch(/^CNN .*: 421,642 parameters \(1\.weight \[32×1×3×3\]/);

    // Start does not wait for the test of the random weights
    await page.click("#start");
    await waitFor(page, `Number(document.querySelector('#status').dataset.step) >= ${CNN_STEPS}`);
    await page.click("#start"); // pause
    await waitFor(page, "document.querySelector('#status').dataset.running === 'false'");
    const steps = await attr("#status", "data-step");
    await waitFor(page, `document.querySelector('#test-accuracy').dataset.step === '${steps}'`);
    const firstLoss = Number(await attr("#status", "data-first-loss"));
    const lastLoss = Number(await attr("#status", "data-last-loss"));
    expect(firstLoss).toBeGreaterThan(1.5); // steps 1-10 from random weights: near ln 10 = 2.3
    expect(lastLoss).toBeLessThan(0.85 * firstLoss);

    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#save")]);
    expect(download.suggestedFilename()).toBe("tapegrad-cnn.safetensors");
    const file = join(work, "page-cnn.safetensors");
    await download.saveAs(file);
    const { metadata } = await loadState(file);
    expect(metadata).toMatchObject({ example: "cnn", dataset: "fashion-mnist", batchnorm: "false", dropout: "0", steps });
    const model = buildCnn();
    model.loadStateDict(await load(file));
    const cells = await gridCells();
    expect(cells).toHaveLength(40);
    expectSamePredictions(cells, nodeProbabilities(model, test.images, cells.map((c) => c.index)));
  });

  it("loads a Node cnn checkpoint (batch norm, dropout) and shows Node's predictions", async () => {
    manualSeed(11);
    const node = buildCnn({ channels: [8, 16], hidden: 32, batchnorm: true, dropout: 0.25 });
    node.train();
    noGrad(() => node.forward(new Tensor(test.images.slice(0, 64 * 784), [64, 784]))); // running statistics from real images
    const file = join(work, "node-cnn.safetensors");
    saveSync(file, node.stateDict(), { example: "cnn", dataset: "fashion-mnist", batchnorm: "true", dropout: "0.25" });
    expect(await attr("#test-accuracy", "data-step")).not.toBe("0"); // the trained CNN's evaluation
    await page.setInputFiles("#load", file);
    await waitFor(page, "document.querySelector('#status').dataset.loaded === 'node-cnn.safetensors'");
    await waitFor(page, "document.querySelector('#test-accuracy').dataset.step === '0'");
    expect(await page.textContent("#model-description")).toMatch(/^CNN .*\b2\.running_mean \[8\]/);
    expectSamePredictions(await gridCells(), nodeProbabilities(node, test.images, (await gridCells()).map((c) => c.index)));
  });

  it("without the isolation headers trains on one thread and says why", async () => {
    const single = await browser.context.newPage();
    watch(single);
    await single.goto(`${plain.url}?data=sample&epochs=1`);
    await waitFor(single, "!document.querySelector('#start').disabled");
    expect(await single.getAttribute("#backend", "data-threads")).toBe("1");
    expect(await single.getAttribute("#backend", "data-isolated")).toBe("false");
    expect(await single.textContent("#backend")).toBe("wasm SIMD + FMA · 1 thread");
    expect(await single.isVisible("#backend-note")).toBe(true);
    expect(await single.textContent("#backend-note")).toMatch(/not cross-origin isolated.*Cross-Origin-Opener-Policy: same-origin.*Cross-Origin-Embedder-Policy: require-corp/);
    await single.click("#start");
    await waitFor(single, "Number(document.querySelector('#status').dataset.step) >= 20");
    await single.click("#start"); // pause
    await waitFor(single, "document.querySelector('#status').dataset.running === 'false'");
    await single.close();
  });

  it("leaves no errors or warnings in the console", () => {
    expect(consoleErrors).toEqual([]);
  });
});
