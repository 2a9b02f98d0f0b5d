/**
 * The training loop every example shares: mini-batch SGD over a DataLoader with a progress bar, then an
 * evaluation on the test set, logging and recording each epoch (d2l's train_ch3 in TypeScript).
 */
import { noGrad, type Tensor } from "@tapegrad/autograd";
import { DataLoader, F } from "@tapegrad/nn";
import type { ImageDataset } from "./data.ts";
import type { EpochMetrics, RunOutput } from "./output.ts";
import { epochBar } from "./progress.ts";

/** What the loop needs from a model: logits, a loss, and an optimizer step. */
export interface Classifier {
  /** Logits [B, classes] for a batch [B, 784]. */
  forward(x: Tensor): Tensor;
  /** The scalar training loss of a batch (default: mean softmax cross-entropy). */
  loss?(logits: Tensor, y: Tensor): Tensor;
  /** Each example's loss, [B], for evaluation (default: softmax cross-entropy with reduction "none"). */
  lossPerSample?(logits: Tensor, y: Tensor): Tensor;
  zeroGrad(): void;
  step(): void;
  /** Switch to training / evaluation mode (Dropout and friends), when the model has modes. */
  train?(): void;
  eval?(): void;
}

const defaultLoss = (logits: Tensor, y: Tensor): Tensor => F.crossEntropy(logits, y);
const defaultLossPerSample = (logits: Tensor, y: Tensor): Tensor => F.crossEntropy(logits, y, { reduction: "none" });

/** Index of the largest entry of each row of a [B, C] tensor. */
export function argmaxRows(logits: Tensor): Int32Array {
  const [b, c] = logits.shape;
  const out = new Int32Array(b);
  const d = logits.data;
  for (let i = 0; i < b; i++) {
    let best = 0;
    for (let j = 1; j < c; j++) if (d[i * c + j] > d[i * c + best]) best = j;
    out[i] = best;
  }
  return out;
}

function countHits(logits: Tensor, y: Tensor): number {
  const pred = argmaxRows(logits);
  let hits = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === y.data[i]) hits++;
  return hits;
}

/** One pass over `loader`: returns the mean training loss and the accuracy of the training predictions. */
export function trainEpoch(model: Classifier, loader: DataLoader, label = "train", progress = true): { loss: number; accuracy: number } {
  model.train?.();
  const lossOf = model.loss?.bind(model) ?? defaultLoss;
  const bar = epochBar(label, loader.length, progress);
  let lossSum = 0;
  let hits = 0;
  let seen = 0;
  let batch = 0;
  try {
    for (const [x, y] of loader) {
      const logits = model.forward(x);
      const loss = lossOf(logits, y);
      model.zeroGrad();
      loss.backward();
      model.step();
      const b = y.shape[0];
      lossSum += loss.item() * b;
      hits += countHits(logits, y);
      seen += b;
      bar.update(++batch, lossSum / seen, hits / seen);
    }
  } finally {
    bar.stop();
  }
  return { loss: lossSum / seen, accuracy: hits / seen };
}

export interface Predictions {
  /** Predicted class of each example. */
  predictions: Int32Array;
  /** Each example's loss. */
  losses: Float64Array;
  loss: number;
  accuracy: number;
}

/** Runs the model over `ds` without recording a tape: per-example predictions and losses, and their means. */
export function predict(model: Classifier, ds: ImageDataset, batchSize = 1000): Predictions {
  model.eval?.();
  const lossPerSample = model.lossPerSample?.bind(model) ?? defaultLossPerSample;
  const predictions = new Int32Array(ds.n);
  const losses = new Float64Array(ds.n);
  let offset = 0;
  noGrad(() => {
    for (const [x, y] of new DataLoader(ds, { batchSize })) {
      const logits = model.forward(x);
      predictions.set(argmaxRows(logits), offset);
      losses.set(lossPerSample(logits, y).data, offset);
      offset += y.shape[0];
    }
  });
  let hits = 0;
  let total = 0;
  for (let i = 0; i < ds.n; i++) {
    if (predictions[i] === ds.labels[i]) hits++;
    total += losses[i];
  }
  return { predictions, losses, loss: total / ds.n, accuracy: hits / ds.n };
}

export interface FitOptions {
  epochs: number;
  batchSize: number;
  seed: number;
  /** Show a progress bar (default true; hidden anyway when stderr is not a terminal). */
  progress?: boolean;
  /** Where metrics.jsonl and curves.svg go; nothing is written when absent. */
  output?: RunOutput;
  /** Title of the curves plot. */
  title?: string;
  log?: (line: string) => void;
}

/** Trains for `epochs` epochs, evaluating on `test` after each; returns the per-epoch history. */
export function fit(model: Classifier, train: ImageDataset, test: ImageDataset, options: FitOptions): EpochMetrics[] {
  const { epochs, batchSize, seed, output, log = console.log } = options;
  const loader = new DataLoader(train, { batchSize, shuffle: true, seed });
  const history: EpochMetrics[] = [];
  const width = String(epochs).length;
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const start = performance.now();
    const label = `epoch ${String(epoch).padStart(width)}/${epochs}`;
    const fitted = trainEpoch(model, loader, label, options.progress ?? true);
    const evaluated = predict(model, test);
    const row: EpochMetrics = {
      epoch,
      trainLoss: fitted.loss,
      trainAccuracy: fitted.accuracy,
      testLoss: evaluated.loss,
      testAccuracy: evaluated.accuracy,
      seconds: (performance.now() - start) / 1000,
    };
    history.push(row);
    log(
      `${label}  loss ${row.trainLoss.toFixed(4)}  train acc ${row.trainAccuracy.toFixed(4)}  ` +
        `test loss ${row.testLoss.toFixed(4)}  test acc ${row.testAccuracy.toFixed(4)}  (${row.seconds.toFixed(1)} s)`,
    );
    if (output) {
      output.appendMetrics(row);
      output.writeCurves(options.title ?? "training", history);
    }
  }
  return history;
}
