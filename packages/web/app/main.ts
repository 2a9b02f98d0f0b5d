/**
 * The playground page: controls, curves, test-image grid, per-class accuracy and the drawing pad. All the
 * numbers come from the training worker (worker.ts); this thread only draws, so it stays responsive.
 *
 * The URL's query presets the controls, e.g. `?model=softmax&optimizer=sgd&lr=0.1&batch=128&epochs=2`
 * (what it leaves out comes from the model's defaults, MODEL_DEFAULTS);
 * `data=sample` (or `full`) picks the data set instead of the automatic choice, `eval=N` evaluates every N
 * steps (default 200), `autostart=1` starts training once the data is in.
 */
import { LineChart } from "./chart.ts";
import { FEATURES, IMAGE_SIZE, isModelId, MODEL_DEFAULTS, MODEL_TITLES, type ModelId } from "./catalog.ts";
import { DrawingPad } from "./pad.ts";
import type { FromWorker, OptimizerId, ToWorker, TrainSettings } from "./protocol.ts";

const GRID_SIZE = 40;
const DEFAULT_EVAL_EVERY = 200;

const $ = <T extends HTMLElement>(id: string): T => {
  const node = document.getElementById(id);
  if (!node) throw new Error(`playground: the page has no #${id}`);
  return node as T;
};

const query = new URLSearchParams(location.search);
const controls = {
  model: $<HTMLSelectElement>("model"),
  optimizer: $<HTMLSelectElement>("optimizer"),
  lr: $<HTMLInputElement>("lr"),
  batch: $<HTMLSelectElement>("batch"),
  epochs: $<HTMLInputElement>("epochs"),
};
const startButton = $<HTMLButtonElement>("start");
const resetButton = $<HTMLButtonElement>("reset");
const saveButton = $<HTMLButtonElement>("save");
const loadInput = $<HTMLInputElement>("load");
const status = $("status");
const errors = $("errors");
const testAccuracy = $<HTMLOutputElement>("test-accuracy");

/** The learning rate `optimizer` starts from with the chosen model. */
function defaultLr(optimizer: OptimizerId): string {
  return String(MODEL_DEFAULTS[controls.model.value as ModelId].lr[optimizer]);
}

/** Sets the optimizer, learning rate and batch size to the chosen model's defaults and shows its note. */
function applyModelDefaults(): void {
  const defaults = MODEL_DEFAULTS[controls.model.value as ModelId];
  controls.optimizer.value = defaults.optimizer;
  controls.lr.value = defaultLr(defaults.optimizer);
  controls.batch.value = String(defaults.batchSize);
  showModelNote();
}

function showModelNote(): void {
  const note = $("model-note");
  const text = MODEL_DEFAULTS[controls.model.value as ModelId].note;
  note.hidden = !text;
  note.textContent = text ?? "";
}

function presetControls(): void {
  controls.model.replaceChildren(...Object.entries(MODEL_TITLES).map(([id, title]) => new Option(title, id)));
  const set = (control: HTMLInputElement | HTMLSelectElement, value: string | null): void => {
    if (value !== null) control.value = value;
  };
  const model = query.get("model");
  if (model !== null && isModelId(model)) controls.model.value = model;
  applyModelDefaults();
  set(controls.optimizer, query.get("optimizer"));
  controls.lr.value = query.get("lr") ?? defaultLr(controls.optimizer.value as OptimizerId);
  set(controls.batch, query.get("batch"));
  set(controls.epochs, query.get("epochs"));
}

function readSettings(): TrainSettings {
  const positive = (value: string, name: string, integer: boolean): number => {
    const n = Number(value);
    if (!(n > 0) || (integer && !Number.isInteger(n))) throw new Error(`${name}: expected a positive ${integer ? "whole " : ""}number, got "${value}"`);
    return n;
  };
  const model = controls.model.value;
  if (!isModelId(model)) throw new Error(`model: unknown choice "${model}"`);
  return {
    model,
    optimizer: controls.optimizer.value as OptimizerId,
    lr: positive(controls.lr.value, "learning rate", false),
    batchSize: positive(controls.batch.value, "batch size", true),
    epochs: positive(controls.epochs.value, "epochs", true),
    evalEvery: positive(query.get("eval") ?? String(DEFAULT_EVAL_EVERY), "eval", true),
    seed: Number(query.get("seed") ?? 0) | 0,
  };
}

function showError(message: string): void {
  errors.hidden = false;
  errors.textContent = message;
}

function clearError(): void {
  errors.hidden = true;
  errors.textContent = "";
}

// ------------------------------------------------------------------ charts and panels

const lossChart = new LineChart($<HTMLElement>("loss-chart") as unknown as SVGSVGElement, { yMin: 0, xLabel: "epoch", format: (y) => y.toFixed(1) });
const accuracyChart = new LineChart($<HTMLElement>("accuracy-chart") as unknown as SVGSVGElement, { xLabel: "epoch", format: (y) => y.toFixed(2) });
let classes: string[] = [];

function barList(list: HTMLElement, labels: string[], values: ArrayLike<number>, highlight?: number): void {
  if (list.children.length !== labels.length) {
    list.replaceChildren(...labels.map((label) => {
      const item = document.createElement("li");
      item.innerHTML = `<span class="name"></span><span class="bar"><span class="fill"></span></span><span class="value"></span>`;
      item.querySelector(".name")!.textContent = label;
      return item;
    }));
  }
  [...list.children].forEach((item, i) => {
    const v = values[i];
    const li = item as HTMLElement;
    li.dataset.value = String(v);
    li.classList.toggle("top", i === highlight);
    (li.querySelector(".fill") as HTMLElement).style.width = `${Number.isFinite(v) ? Math.round(v * 100) : 0}%`;
    li.querySelector(".value")!.textContent = Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : "–";
  });
}

const grid = $("grid");

function buildGrid(pixels: Uint8Array, labels: number[], indices: number[]): void {
  grid.replaceChildren(...labels.map((label, i) => {
    const cell = document.createElement("figure");
    cell.className = "cell";
    cell.dataset.label = String(label);
    cell.dataset.index = String(indices[i]);
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = IMAGE_SIZE;
    const ctx = canvas.getContext("2d")!;
    const image = ctx.createImageData(IMAGE_SIZE, IMAGE_SIZE);
    for (let p = 0; p < FEATURES; p++) {
      const v = pixels[i * FEATURES + p];
      image.data.set([v, v, v, 255], 4 * p);
    }
    ctx.putImageData(image, 0, 0);
    canvas.title = `test image: ${classes[label]} (drag onto the pad to try it)`;
    canvas.draggable = true;
    canvas.addEventListener("click", () => pad.setPixels(pixels.subarray(i * FEATURES, (i + 1) * FEATURES), 1 / 255));
    const caption = document.createElement("figcaption");
    caption.textContent = classes[label];
    cell.append(canvas, caption);
    return cell;
  }));
}

function updateGrid(predictions: number[], probabilities: Float32Array): void {
  [...grid.children].forEach((node, i) => {
    const cell = node as HTMLElement;
    const predicted = predictions[i];
    const right = predicted === Number(cell.dataset.label);
    cell.dataset.predicted = String(predicted);
    cell.dataset.probability = String(probabilities[i * classes.length + predicted]);
    cell.classList.toggle("right", right);
    cell.classList.toggle("wrong", !right);
    cell.querySelector("figcaption")!.textContent = `${right ? "✓" : "✗"} ${classes[predicted]}`;
    cell.title = `true: ${classes[Number(cell.dataset.label)]}; predicted: ${classes[predicted]} (${(probabilities[i * classes.length + predicted] * 100).toFixed(0)}%)`;
  });
}

// ------------------------------------------------------------------ drawing pad

let predictId = 0;
let predictBusy = false;
let predictQueued = false;
let modelReady = false;

function requestPrediction(): void {
  if (!modelReady || !pad.pixels.some((v) => v > 0)) return;
  if (predictBusy) {
    predictQueued = true;
    return;
  }
  predictBusy = true;
  send({ type: "predict", id: ++predictId, pixels: new Float32Array(pad.pixels) });
}

const pad = new DrawingPad($<HTMLCanvasElement>("pad"), requestPrediction);
$("clear").addEventListener("click", () => {
  pad.clear();
  $("prediction").textContent = "Draw a piece of clothing (light on dark), or drop a picture on the pad.";
  $("prediction").dataset.class = "";
});
$<HTMLInputElement>("image-file").addEventListener("change", (e) => {
  const file = (e.target as HTMLInputElement).files?.[0];
  if (file) void pad.loadImage(file).catch((error: Error) => showError(`image: ${error.message}`));
});

function showProbabilities(probabilities: Float32Array, id: number): void {
  let best = 0;
  for (let c = 1; c < probabilities.length; c++) if (probabilities[c] > probabilities[best]) best = c;
  const prediction = $("prediction");
  prediction.dataset.class = String(best);
  prediction.dataset.request = String(id);
  prediction.textContent = `${classes[best]} (${(probabilities[best] * 100).toFixed(1)}%)`;
  barList($("probabilities"), classes, probabilities, best);
}

// ------------------------------------------------------------------ worker

const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module", name: "tapegrad-training" });
const send = (message: ToWorker): void => worker.postMessage(message);

worker.addEventListener("error", (e) => showError(`training worker: ${e.message || "failed to start"}`));
worker.addEventListener("message", (event: MessageEvent<FromWorker>) => {
  const m = event.data;
  switch (m.type) {
    case "ready": {
      const backend = $("backend");
      backend.textContent = m.backend.label;
      backend.dataset.gemm = m.backend.gemm;
      backend.dataset.threads = String(m.backend.threads);
      backend.dataset.isolated = String(m.backend.crossOriginIsolated);
      const note = $("backend-note");
      note.hidden = !m.backend.note;
      note.textContent = m.backend.note ?? "";
      classes = m.data.classes;
      const source = $("data-source");
      source.dataset.source = m.data.source;
      source.textContent = `Fashion-MNIST ${m.data.source === "full" ? "(full)" : "sample"}: ${m.data.trainSize.toLocaleString("en-US")} training, `
        + `${m.data.testSize.toLocaleString("en-US")} test images, loaded in ${(m.data.loadMs / 1000).toFixed(1)} s`;
      buildGrid(m.grid.pixels, m.grid.labels, m.grid.indices);
      for (const control of [startButton, resetButton, saveButton, loadInput]) control.disabled = false;
      if (query.get("autostart") === "1") send({ type: "start" });
      return;
    }
    case "reset":
      delete status.dataset.loaded;
      lossChart.clear();
      accuracyChart.clear();
      modelReady = true;
      $("model-description").textContent = m.description;
      controls.model.value = m.model;
      showModelNote();
      requestPrediction();
      return;
    case "status": {
      lossChart.add("train", m.trainLoss.map((p) => ({ x: p.epoch, y: p.value })), { className: "train" });
      accuracyChart.add("train", m.trainAccuracy.map((p) => ({ x: p.epoch, y: p.value })), { className: "train" });
      const loss = lossChart.points("train");
      status.dataset.running = String(m.running);
      status.dataset.step = String(m.step);
      status.dataset.epoch = m.epoch.toFixed(3);
      status.dataset.elapsedMs = String(Math.round(m.elapsedMs));
      if (loss.length) {
        status.dataset.firstLoss = String(loss[0].y);
        status.dataset.lastLoss = String(loss[loss.length - 1].y);
      }
      const rate = m.elapsedMs > 0 ? (m.step / m.elapsedMs) * 1000 : 0;
      const origin = status.dataset.loaded && m.step === 0 ? `loaded ${status.dataset.loaded} · ` : "";
      const evaluating = m.evaluating === null ? "" : ` · testing ${Math.floor(m.evaluating * 100)}%`;
      status.textContent = `${origin}${m.running ? "training" : "paused"} · epoch ${m.epoch.toFixed(2)} of ${m.stopsAfter} · step ${m.step}`
        + ` · ${(m.elapsedMs / 1000).toFixed(1)} s · ${rate.toFixed(m.step > 0 && rate < 10 ? 1 : 0)} steps/s${evaluating}`;
      startButton.textContent = m.running ? "Pause" : m.step ? "Resume" : "Start";
      return;
    }
    case "evaluation": {
      const e = m.evaluation;
      lossChart.add("test", [{ x: e.epoch, y: e.testLoss }], { className: "test", dots: true });
      accuracyChart.add("test", [{ x: e.epoch, y: e.testAccuracy }], { className: "test", dots: true });
      testAccuracy.dataset.value = String(e.testAccuracy);
      testAccuracy.dataset.step = String(e.step);
      testAccuracy.dataset.elapsedMs = String(Math.round(m.elapsedMs));
      testAccuracy.textContent = `test ${(e.testAccuracy * 100).toFixed(2)}% at step ${e.step}`;
      barList($("per-class"), classes, e.perClass);
      updateGrid(e.gridPredictions, e.gridProbabilities);
      requestPrediction();
      return;
    }
    case "probabilities":
      predictBusy = false;
      showProbabilities(m.probabilities, m.id);
      if (predictQueued) {
        predictQueued = false;
        requestPrediction();
      }
      return;
    case "checkpoint": {
      const url = URL.createObjectURL(new Blob([m.bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }));
      const link = document.createElement("a");
      link.href = url;
      link.download = m.name;
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      return;
    }
    case "loaded":
      clearError();
      status.dataset.loaded = m.name;
      status.textContent = `loaded ${m.name}: ${m.description}`;
      return;
    case "error":
      predictBusy = false;
      showError(m.message);
      return;
  }
});

// ------------------------------------------------------------------ controls

function onSettingsChange(reset: boolean): void {
  let settings: TrainSettings;
  try {
    settings = readSettings();
  } catch (error) {
    showError((error as Error).message);
    return;
  }
  clearError();
  send(reset ? { type: "reset", settings } : { type: "settings", settings });
}

controls.model.addEventListener("change", () => {
  applyModelDefaults();
  onSettingsChange(true);
});
controls.optimizer.addEventListener("change", () => {
  controls.lr.value = defaultLr(controls.optimizer.value as OptimizerId);
  onSettingsChange(false);
});
for (const control of [controls.lr, controls.batch, controls.epochs]) control.addEventListener("change", () => onSettingsChange(false));
startButton.addEventListener("click", () => send({ type: status.dataset.running === "true" ? "pause" : "start" }));
resetButton.addEventListener("click", () => onSettingsChange(true));
saveButton.addEventListener("click", () => send({ type: "save" }));
loadInput.addEventListener("change", async () => {
  const file = loadInput.files?.[0];
  if (!file) return;
  const bytes = new Uint8Array(await file.arrayBuffer());
  loadInput.value = "";
  send({ type: "load", name: file.name, bytes });
});

presetControls();
try {
  send({ type: "init", baseUrl: new URL(".", location.href).href, data: (query.get("data") as "full" | "sample" | null) ?? "auto", settings: readSettings(), gridSize: GRID_SIZE });
} catch (error) {
  showError((error as Error).message);
}
