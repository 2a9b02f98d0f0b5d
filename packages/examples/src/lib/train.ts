/**
 * What the examples' training loops share: the running loss and accuracy of an epoch with its progress bar,
 * the per-epoch record (the printed line, metrics.jsonl, curves.svg) and the evaluation on the test set.
 * The loops themselves are in the examples (mlp.ts, from-scratch.ts), as in d2l's train_ch3.
 */
import { noGrad, type Tensor } from "@tapegrad/autograd";
import { DataLoader, F } from "@tapegrad/nn";
import type { MeterState } from "./checkpoints.ts";
import type { ImageDataset } from "./data.ts";
import type { EpochMetrics, RunOutput } from "./output.ts";
import { type EpochBar, epochBar } from "./progress.ts";

/** One epoch in progress: its clock, its progress bar and the running mean loss and accuracy of its batches. */
export class EpochMeter {
  readonly started = performance.now();
  private lossSum = 0;
  private hits = 0;
  private seen = 0;
  private batches = 0;

  constructor(readonly label: string, private readonly bar: EpochBar) {}

  /** Counts one training batch: its mean loss and how many of its logits' argmaxes hit the labels; returns the loss. */
  update(loss: Tensor, logits: Tensor, labels: Tensor): number {
    const b = labels.shape[0];
    const value = loss.item();
    this.lossSum += value * b;
    this.hits += Math.round(F.accuracy(logits, labels) * b);
    this.seen += b;
    this.bar.update(++this.batches, this.lossSum / this.seen, this.hits / this.seen);
    return value;
  }

  /** The running sums, for a checkpoint taken mid-epoch. */
  state(): MeterState {
    return { lossSum: this.lossSum, hits: this.hits, seen: this.seen, batches: this.batches };
  }

  /** Continues from a mid-epoch checkpoint's running sums. */
  restore(state: MeterState): void {
    ({ lossSum: this.lossSum, hits: this.hits, seen: this.seen, batches: this.batches } = state);
    if (this.seen > 0) this.bar.update(this.batches, this.lossSum / this.seen, this.hits / this.seen);
  }

  /** Stops the progress bar without finishing the epoch (the run stops mid-epoch). */
  stopBar(): void {
    this.bar.stop();
  }

  /** Stops the progress bar; the epoch's mean training loss and accuracy. */
  finish(): { loss: number; accuracy: number } {
    this.bar.stop();
    return { loss: this.lossSum / this.seen, accuracy: this.hits / this.seen };
  }
}

export interface TrainingLogOptions {
  epochs: number;
  /** Show a progress bar (default true; hidden anyway when stderr is not a terminal). */
  progress?: boolean;
  /** Where metrics.jsonl and curves.svg go; nothing is written when absent. */
  output?: RunOutput;
  /** Title of the curves plot. */
  title?: string;
  log?: (line: string) => void;
}

/** A run's epochs: starts each one's meter, and records each finished one (printed, metrics.jsonl, curves.svg). */
export class TrainingLog {
  readonly history: EpochMetrics[] = [];

  /** `history`: the epochs a resumed run already finished (metrics.jsonl and curves.svg are rewritten from them). */
  constructor(private readonly options: TrainingLogOptions, history: EpochMetrics[] = []) {
    this.history.push(...history);
    const { output } = options;
    if (output && history.length > 0) {
      output.writeMetrics(history);
      output.writeCurves(options.title ?? "training", history);
    }
  }

  /** The meter of the next epoch, over `batches` batches. */
  startEpoch(batches: number): EpochMeter {
    const { epochs, progress = true } = this.options;
    const epoch = this.history.length + 1;
    const label = `epoch ${String(epoch).padStart(String(epochs).length)}/${epochs}`;
    return new EpochMeter(label, epochBar(label, batches, progress));
  }

  /** Records the epoch `meter` measured, with the test set's loss and accuracy after it; returns its row. */
  endEpoch(meter: EpochMeter, test: Predictions): EpochMetrics {
    const fitted = meter.finish();
    const row: EpochMetrics = {
      epoch: this.history.length + 1,
      trainLoss: fitted.loss,
      trainAccuracy: fitted.accuracy,
      testLoss: test.loss,
      testAccuracy: test.accuracy,
      seconds: (performance.now() - meter.started) / 1000,
    };
    this.history.push(row);
    const { output, log = console.log } = this.options;
    log(
      `${meter.label}  loss ${row.trainLoss.toFixed(4)}  train acc ${row.trainAccuracy.toFixed(4)}  ` +
        `test loss ${row.testLoss.toFixed(4)}  test acc ${row.testAccuracy.toFixed(4)}  (${row.seconds.toFixed(1)} s)`,
    );
    if (output) {
      output.appendMetrics(row);
      output.writeCurves(this.options.title ?? "training", this.history);
    }
    return row;
  }

  /** The last finished epoch's row. */
  get last(): EpochMetrics | undefined {
    return this.history[this.history.length - 1];
  }
}

/** What `predict` evaluates: logits [B, classes] for a batch [B, 784], and an evaluation mode if it has one. */
export interface Classifier {
  forward(x: Tensor): Tensor;
  eval?(): void;
}

export interface Predictions {
  /** Predicted class of each example. */
  predictions: Int32Array;
  /** Each example's loss. */
  losses: Float64Array;
  loss: number;
  accuracy: number;
}

/**
 * Runs the model over `ds` without recording a tape: per-example predictions (argmax of the logits) and
 * losses (default: softmax cross-entropy), their mean and the accuracy.
 */
export function predict(
  model: Classifier, ds: ImageDataset,
  { batchSize = 1000, lossPerSample = (logits: Tensor, y: Tensor) => F.crossEntropy(logits, y, { reduction: "none" }) } = {},
): Predictions {
  model.eval?.();
  const predictions = new Int32Array(ds.n);
  const losses = new Float64Array(ds.n);
  let offset = 0;
  let hits = 0;
  noGrad(() => {
    for (const [x, y] of new DataLoader(ds, { batchSize })) {
      const logits = model.forward(x);
      const b = y.shape[0];
      predictions.set(logits.argmax(1).data, offset);
      losses.set(lossPerSample(logits, y).data, offset);
      hits += Math.round(F.accuracy(logits, y) * b);
      offset += b;
    }
  });
  let total = 0;
  for (let i = 0; i < ds.n; i++) total += losses[i];
  return { predictions, losses, loss: total / ds.n, accuracy: hits / ds.n };
}
