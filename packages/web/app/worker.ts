/**
 * The training worker: holds the data, the model and the optimizer, trains in slices of about 40 ms and
 * answers the page's messages between slices, so pausing, changing the learning rate or asking for a
 * drawing's probabilities takes effect within one slice while the page itself never blocks.
 */
import { noGrad, Tensor } from "@tapegrad/autograd";
import { DataLoader, deserialize, F, type ImageDataset, type nn, optim } from "@tapegrad/nn";
import { startBackend } from "./backend.ts";
import { loadFashionMnist } from "./data.ts";
import { checkpointBytes, createModel, describeModel, FEATURES, MODELS, type ModelId, modelFromCheckpoint } from "./models.ts";
import type { CurvePoint, Evaluation, FromWorker, ToWorker, TrainSettings } from "./protocol.ts";

/** Training time per slice before the worker looks at its messages and reports. */
const SLICE_MS = 40;
/** Steps averaged into one point of the training curves. */
const CURVE_EVERY = 10;
/** Test images per forward pass of an evaluation. */
const EVAL_BATCH = 1000;

interface Session {
  settings: TrainSettings;
  model: nn.Module;
  modelId: ModelId;
  optimizer: optim.Optimizer;
  loader: DataLoader;
  batches: Iterator<[Tensor, Tensor]>;
  step: number;
  /** Whole epochs done. */
  epoch: number;
  stepInEpoch: number;
  stepsPerEpoch: number;
  /** Milliseconds spent training (and evaluating) since the reset; paused time does not count. */
  elapsedMs: number;
  window: { loss: number; hits: number; count: number; steps: number };
  lossPoints: CurvePoint[];
  accuracyPoints: CurvePoint[];
  lastEvaluatedStep: number;
}

const post = (message: FromWorker, transfer: Transferable[] = []): void => self.postMessage(message, { transfer });

let train: ImageDataset | undefined;
let test: ImageDataset | undefined;
let gridIndices: number[] = [];
let session: Session | undefined;
let running = false;
/** When the slice now running started (performance.now()); evaluations inside a slice count as training time. */
let sliceStart: number | undefined;
/** Bumped by every start and reset: a training loop runs only while it is the latest one. */
let generation = 0;

function makeOptimizer(model: nn.Module, settings: TrainSettings): optim.Optimizer {
  const params = model.parameters();
  if (settings.optimizer === "adam") return new optim.Adam(params, { lr: settings.lr });
  return new optim.SGD(params, { lr: settings.lr, momentum: settings.optimizer === "momentum" ? 0.9 : 0 });
}

function newSession(settings: TrainSettings, loaded?: { id: ModelId; model: nn.Module }): Session {
  if (!train) throw new Error("the data set is not loaded yet");
  const model = loaded?.model ?? createModel(settings.model, settings.seed);
  const modelId = loaded?.id ?? settings.model;
  const loader = new DataLoader(train, { batchSize: settings.batchSize, shuffle: true, seed: settings.seed });
  return {
    settings: { ...settings, model: modelId }, model, modelId, optimizer: makeOptimizer(model, settings), loader,
    batches: loader[Symbol.iterator](), step: 0, epoch: 0, stepInEpoch: 0, stepsPerEpoch: loader.length, elapsedMs: 0,
    window: { loss: 0, hits: 0, count: 0, steps: 0 }, lossPoints: [], accuracyPoints: [], lastEvaluatedStep: -1,
  };
}

/** Applies settings that can change mid-run: learning rate and optimizer now, batch size from the next epoch. */
function applySettings(s: Session, settings: TrainSettings): void {
  const before = s.settings;
  s.settings = { ...settings, model: s.modelId, seed: before.seed };
  if (settings.optimizer !== before.optimizer) s.optimizer = makeOptimizer(s.model, settings);
  else s.optimizer.lr = settings.lr;
}

function toInput(s: Session, x: Tensor): Tensor {
  return x.reshape(MODELS[s.modelId].inputShape(x.shape[0]));
}

function trainStep(s: Session): void {
  let next = s.batches.next();
  if (next.done) {
    s.epoch++;
    s.stepInEpoch = 0;
    evaluate(s);
    if (s.loader.batchSize !== s.settings.batchSize) {
      s.loader = new DataLoader(train!, { batchSize: s.settings.batchSize, shuffle: true, seed: s.settings.seed + s.epoch });
      s.stepsPerEpoch = s.loader.length;
    }
    s.batches = s.loader[Symbol.iterator]();
    if (s.epoch >= s.settings.epochs) {
      running = false;
      return;
    }
    next = s.batches.next();
  }
  const [x, y] = next.value as [Tensor, Tensor];
  s.model.train();
  const logits = s.model.forward(toInput(s, x));
  const loss = F.crossEntropy(logits, y);
  s.optimizer.zeroGrad();
  loss.backward();
  s.optimizer.step();
  s.step++;
  s.stepInEpoch++;
  const w = s.window;
  w.loss += loss.item() * y.shape[0];
  w.hits += F.accuracy(logits, y) * y.shape[0];
  w.count += y.shape[0];
  w.steps++;
  if (w.steps === CURVE_EVERY) {
    const at = { step: s.step, epoch: s.epoch + s.stepInEpoch / s.stepsPerEpoch };
    s.lossPoints.push({ ...at, value: w.loss / w.count });
    s.accuracyPoints.push({ ...at, value: w.hits / w.count });
    s.window = { loss: 0, hits: 0, count: 0, steps: 0 };
  }
  if (s.step % s.settings.evalEvery === 0) evaluate(s);
}

/** Loss, accuracy and per-class accuracy on the whole test set, and the grid images' probabilities. */
function evaluate(s: Session): void {
  if (!test || s.lastEvaluatedStep === s.step) return;
  const classes = test.classes.length;
  const hits = new Array<number>(classes).fill(0);
  const counts = new Array<number>(classes).fill(0);
  let lossSum = 0;
  s.model.eval();
  const gridProbabilities = new Float32Array(gridIndices.length * classes);
  noGrad(() => {
    for (let start = 0; start < test!.n; start += EVAL_BATCH) {
      const size = Math.min(EVAL_BATCH, test!.n - start);
      const x = new Tensor(test!.images.subarray(start * FEATURES, (start + size) * FEATURES), MODELS[s.modelId].inputShape(size));
      const labels = test!.labels.subarray(start, start + size);
      const logits = s.model.forward(x);
      lossSum += F.crossEntropy(logits, labels, { reduction: "sum" }).item();
      const predicted = logits.argmax(1).data;
      for (let i = 0; i < size; i++) {
        counts[labels[i]]++;
        if (predicted[i] === labels[i]) hits[labels[i]]++;
      }
    }
    const gridPixels = new Float32Array(gridIndices.length * FEATURES);
    gridIndices.forEach((index, i) => gridPixels.set(test!.images.subarray(index * FEATURES, (index + 1) * FEATURES), i * FEATURES));
    gridProbabilities.set(s.model.forward(new Tensor(gridPixels, MODELS[s.modelId].inputShape(gridIndices.length))).softmax(1).data);
  });
  s.model.train();
  const gridPredictions = gridIndices.map((_, i) => argmax(gridProbabilities.subarray(i * classes, (i + 1) * classes)));
  const evaluation: Evaluation = {
    step: s.step, epoch: s.epoch + s.stepInEpoch / s.stepsPerEpoch, testLoss: lossSum / test.n,
    testAccuracy: hits.reduce((a, b) => a + b, 0) / test.n, perClass: hits.map((h, c) => (counts[c] ? h / counts[c] : NaN)),
    gridPredictions, gridProbabilities,
  };
  s.lastEvaluatedStep = s.step;
  post({ type: "evaluation", evaluation, elapsedMs: s.elapsedMs + (sliceStart === undefined ? 0 : performance.now() - sliceStart) });
}

function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

function postStatus(s: Session): void {
  post({
    type: "status", running, stopsAfter: s.settings.epochs, step: s.step, epoch: s.epoch + s.stepInEpoch / s.stepsPerEpoch, stepsPerEpoch: s.stepsPerEpoch,
    elapsedMs: s.elapsedMs, trainLoss: s.lossPoints.splice(0), trainAccuracy: s.accuracyPoints.splice(0),
  });
}

/** A macrotask boundary: lets queued messages run (a MessageChannel round trip, not setTimeout's 4 ms clamp). */
function yieldToMessages(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });
}

async function trainLoop(s: Session, mine: number): Promise<void> {
  while (running && generation === mine) {
    const started = (sliceStart = performance.now());
    try {
      while (running && performance.now() - started < SLICE_MS) trainStep(s);
    } finally {
      sliceStart = undefined;
      s.elapsedMs += performance.now() - started;
    }
    postStatus(s);
    await yieldToMessages();
  }
  if (generation === mine) {
    evaluate(s);
    postStatus(s);
  }
}

function reset(settings: TrainSettings, loaded?: { id: ModelId; model: nn.Module }): void {
  running = false;
  generation++;
  session = newSession(settings, loaded);
  post({ type: "reset", model: session.modelId, parameters: session.model.numParameters(), description: describeModel(session.modelId, session.model) });
  evaluate(session);
  postStatus(session);
}

function pickGrid(n: number, size: number): number[] {
  // spread over the whole test set, so every class shows up (the files are not sorted by class)
  return Array.from({ length: Math.min(size, n) }, (_, i) => Math.floor((i * n) / Math.min(size, n)));
}

async function init(message: Extract<ToWorker, { type: "init" }>): Promise<void> {
  const [backend, loaded] = await Promise.all([
    startBackend(),
    (async () => {
      const started = performance.now();
      const data = await loadFashionMnist(message.baseUrl, message.data);
      return { ...data, loadMs: performance.now() - started };
    })(),
  ]);
  train = loaded.train;
  test = loaded.test;
  gridIndices = pickGrid(test.n, message.gridSize);
  const pixels = new Uint8Array(gridIndices.length * FEATURES);
  gridIndices.forEach((index, i) => {
    for (let p = 0; p < FEATURES; p++) pixels[i * FEATURES + p] = Math.round(test!.images[index * FEATURES + p] * 255);
  });
  post({
    type: "ready", backend,
    data: { source: loaded.source, trainSize: train.n, testSize: test.n, classes: test.classes, loadMs: loaded.loadMs },
    grid: { pixels, labels: gridIndices.map((i) => test!.labels[i]), indices: gridIndices },
  }, [pixels.buffer]);
  reset(message.settings);
}

function predict(id: number, pixels: Float32Array): void {
  if (!session) return;
  const s = session;
  s.model.eval();
  const probabilities = noGrad(() => s.model.forward(new Tensor(pixels, MODELS[s.modelId].inputShape(1))).softmax(1).data as Float32Array);
  s.model.train();
  post({ type: "probabilities", id, probabilities });
}

function handle(message: ToWorker): void {
  switch (message.type) {
    case "init":
      void init(message).catch(reportError);
      return;
    case "settings":
      if (session) applySettings(session, message.settings);
      return;
    case "start":
      if (!session || running) return;
      // at the epoch limit already: one more epoch
      if (session.epoch >= session.settings.epochs) session.settings.epochs = session.epoch + 1;
      running = true;
      trainLoop(session, ++generation).catch((error) => {
        running = false;
        reportError(error);
      });
      return;
    case "pause":
      running = false;
      return;
    case "reset":
      reset(message.settings);
      return;
    case "predict":
      predict(message.id, message.pixels);
      return;
    case "save":
      if (!session) return;
      post({
        type: "checkpoint", name: `tapegrad-${MODELS[session.modelId].example}.safetensors`,
        bytes: checkpointBytes(session.modelId, session.model, { steps: String(session.step), source: "tapegrad web playground" }),
      });
      return;
    case "load": {
      const { tensors } = deserialize(message.bytes, message.name);
      const loaded = modelFromCheckpoint(tensors, message.name);
      if (!session) throw new Error("load: the data set is not loaded yet");
      reset({ ...session.settings, model: loaded.id }, loaded);
      post({ type: "loaded", name: message.name, model: loaded.id, description: describeModel(loaded.id, loaded.model) });
      return;
    }
  }
}

function reportError(error: unknown): void {
  const e = error as Error;
  post({ type: "error", message: e?.message ?? String(error) });
}

self.addEventListener("message", (event: MessageEvent<ToWorker>) => {
  try {
    handle(event.data);
  } catch (error) {
    reportError(error);
  }
});
