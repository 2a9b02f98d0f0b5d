/**
 * The training worker: holds the data, the model and the optimizer, and works in slices of about 40 ms:
 * an evaluation in progress (one test batch at a time) or training steps. Between slices it answers the
 * page's messages and reports, so pausing, changing the learning rate or asking for a drawing's
 * probabilities takes effect within one slice, even while a slow model (the CNN) is evaluated on the whole
 * test set, and the page itself never blocks. No step runs while an evaluation is in progress: each one
 * describes the weights of the step it was asked at.
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
  /** The evaluation in progress, if any. */
  evaluation?: EvaluationJob;
  /** The weights are the random initialisation (not a loaded checkpoint). */
  fresh: boolean;
}

/** An evaluation of the whole test set at one step, one batch of images at a time. */
interface EvaluationJob {
  step: number;
  epoch: number;
  /** The first test image not yet evaluated. */
  next: number;
  lossSum: number;
  hits: number[];
  counts: number[];
}

const post = (message: FromWorker, transfer: Transferable[] = []): void => self.postMessage(message, { transfer });

let train: ImageDataset | undefined;
let test: ImageDataset | undefined;
let gridIndices: number[] = [];
let session: Session | undefined;
/** Training is on (Start): slices train when no evaluation is in progress. */
let running = false;
/** Whether the slice loop (work) is scheduled: it runs while there is an evaluation to finish or training is on. */
let working = false;
/** When the slice now running started (performance.now()), if it counts as training time: evaluations
 *  inside a training slice do, the one after a reset or a pause does not. */
let sliceStart: number | undefined;

function makeOptimizer(model: nn.Module, settings: TrainSettings): optim.Optimizer {
  const params = model.parameters();
  if (settings.optimizer === "adam") return new optim.Adam(params, { lr: settings.lr });
  return new optim.SGD(params, { lr: settings.lr, momentum: settings.optimizer === "momentum" ? 0.9 : 0 });
}

function newSession(settings: TrainSettings, loaded?: { id: ModelId; model: nn.Module }): Session {
  if (!train) throw new Error("the data set is not loaded yet");
  // parameters in the WebAssembly kernels' memory (where it is shared): the gemm reads the weights and
  // writes their gradients in place, each half on the thread whose share of the products uses it
  const model = (loaded?.model ?? createModel(settings.model, settings.seed)).pinMemory();
  const modelId = loaded?.id ?? settings.model;
  const loader = new DataLoader(train, { batchSize: settings.batchSize, shuffle: true, seed: settings.seed });
  return {
    settings: { ...settings, model: modelId }, model, modelId, optimizer: makeOptimizer(model, settings), loader,
    batches: loader[Symbol.iterator](), step: 0, epoch: 0, stepInEpoch: 0, stepsPerEpoch: loader.length, elapsedMs: 0,
    window: { loss: 0, hits: 0, count: 0, steps: 0 }, lossPoints: [], accuracyPoints: [], lastEvaluatedStep: -1,
    fresh: loaded === undefined,
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

/** One training step, or at an epoch's end the request of an evaluation (the next epoch's steps come after it). */
function trainStep(s: Session): void {
  const next = s.batches.next();
  if (next.done) {
    s.epoch++;
    s.stepInEpoch = 0;
    requestEvaluation(s);
    if (s.loader.batchSize !== s.settings.batchSize) {
      s.loader = new DataLoader(train!, { batchSize: s.settings.batchSize, shuffle: true, seed: s.settings.seed + s.epoch });
      s.stepsPerEpoch = s.loader.length;
    }
    s.batches = s.loader[Symbol.iterator]();
    if (s.epoch >= s.settings.epochs) running = false;
    return;
  }
  const [x, y] = next.value;
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
  if (s.step % s.settings.evalEvery === 0) requestEvaluation(s);
}

/** Asks for loss, accuracy and per-class accuracy on the whole test set at this step (once a step). */
function requestEvaluation(s: Session): void {
  if (!test || s.lastEvaluatedStep === s.step || s.evaluation?.step === s.step) return;
  const classes = test.classes.length;
  s.evaluation = {
    step: s.step, epoch: s.epoch + s.stepInEpoch / s.stepsPerEpoch, next: 0, lossSum: 0,
    hits: new Array<number>(classes).fill(0), counts: new Array<number>(classes).fill(0),
  };
}

/** Evaluates the next batch of test images; after the last one, the grid images, and posts the evaluation. */
function evaluationStep(s: Session, job: EvaluationJob): void {
  const data = test!;
  const size = Math.min(MODELS[s.modelId].evalBatch, data.n - job.next);
  s.model.eval();
  noGrad(() => {
    if (size > 0) {
      const x = new Tensor(data.images.subarray(job.next * FEATURES, (job.next + size) * FEATURES), MODELS[s.modelId].inputShape(size));
      const labels = data.labels.subarray(job.next, job.next + size);
      const logits = s.model.forward(x);
      job.lossSum += F.crossEntropy(logits, labels, { reduction: "sum" }).item();
      const predicted = logits.argmax(1).data;
      for (let i = 0; i < size; i++) {
        job.counts[labels[i]]++;
        if (predicted[i] === labels[i]) job.hits[labels[i]]++;
      }
    }
  });
  job.next += size;
  if (job.next < data.n) {
    s.model.train();
    return;
  }
  const classes = data.classes.length;
  const gridProbabilities = new Float32Array(gridIndices.length * classes);
  noGrad(() => {
    const gridPixels = new Float32Array(gridIndices.length * FEATURES);
    gridIndices.forEach((index, i) => gridPixels.set(data.images.subarray(index * FEATURES, (index + 1) * FEATURES), i * FEATURES));
    gridProbabilities.set(s.model.forward(new Tensor(gridPixels, MODELS[s.modelId].inputShape(gridIndices.length))).softmax(1).data);
  });
  s.model.train();
  const gridPredictions = gridIndices.map((_, i) => argmax(gridProbabilities.subarray(i * classes, (i + 1) * classes)));
  const evaluation: Evaluation = {
    step: job.step, epoch: job.epoch, testLoss: job.lossSum / data.n,
    testAccuracy: job.hits.reduce((a, b) => a + b, 0) / data.n, perClass: job.hits.map((h, c) => (job.counts[c] ? h / job.counts[c] : NaN)),
    gridPredictions, gridProbabilities,
  };
  s.lastEvaluatedStep = job.step;
  s.evaluation = undefined;
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
    evaluating: s.evaluation && test ? s.evaluation.next / test.n : null,
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

/** Runs the slice loop unless it is already scheduled. */
function work(): void {
  if (working) return;
  working = true;
  slices().catch((error: unknown) => {
    running = false;
    if (session) session.evaluation = undefined;
    reportError(error);
  }).finally(() => {
    working = false;
  });
}

/** Slices of evaluation or training on the current session until neither is left to do; a status after each. */
async function slices(): Promise<void> {
  while (session && (session.evaluation || running)) {
    const s = session;
    const started = performance.now();
    const training = running;
    if (training) sliceStart = started;
    try {
      while (performance.now() - started < SLICE_MS) {
        if (s.evaluation) evaluationStep(s, s.evaluation);
        else if (running) trainStep(s);
        else break;
      }
    } finally {
      sliceStart = undefined;
      if (training) s.elapsedMs += performance.now() - started;
    }
    postStatus(s);
    await yieldToMessages();
  }
}

function reset(settings: TrainSettings, loaded?: { id: ModelId; model: nn.Module }): void {
  running = false;
  session = newSession(settings, loaded);
  post({ type: "reset", model: session.modelId, parameters: session.model.numParameters(), description: describeModel(session.modelId, session.model) });
  requestEvaluation(session);
  postStatus(session);
  work();
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
      // a test of the random initial weights still in progress is not worth the wait (the CNN's takes seconds)
      if (session.fresh && session.evaluation?.step === 0) session.evaluation = undefined;
      running = true;
      work();
      return;
    case "pause":
      running = false;
      // the weights it stopped at
      if (session) {
        requestEvaluation(session);
        work();
      }
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
      const { tensors, metadata } = deserialize(message.bytes, message.name);
      const loaded = modelFromCheckpoint(tensors, message.name, metadata);
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
