/**
 * What keeps a training run's work safe, around the loop an example writes itself:
 *   - a NaN or infinite loss (or weights) stops the run with a NonFiniteError naming the epoch and step,
 *     before anything of that epoch is saved (unless allowNonFinite);
 *   - after each epoch, checkpoints/last.safetensors (model, optimizer, loader position, history) and,
 *     when the test accuracy improved, checkpoints/best.safetensors;
 *   - an aborted `signal` (Ctrl-C in `pnpm example`) stops after the current step, saves last.safetensors
 *     and throws an InterruptedError saying where;
 *   - a resumed run restores all of that and skips the epochs and batches already done, so it ends with
 *     the same weights, bit for bit, as a run that was never stopped.
 * The loop it serves (mlp.ts):
 *   for (let epoch = run.firstEpoch; epoch <= epochs; epoch++) {
 *     for (const [x, y] of run.batches(epoch)) { forward, loss, zeroGrad, backward, step; await run.stepDone(loss, logits, y) }
 *     run.endEpoch(predict(model, test));
 *   }
 */
import { mkdirSync } from "node:fs";
import type { Generator as RandomGenerator, Tensor } from "@tapegrad/autograd";
import { type DataLoader, Module, type optim } from "@tapegrad/nn";
import { saveSync } from "@tapegrad/nn/node";
import {
  type DataFingerprint, type ResumePoint, type Settings, type TrainingState, checkpointPaths, findNonFinite, labelsHash,
  shownPath, trainingCheckpointContents,
} from "./checkpoints.ts";
import type { ImageDataset } from "./data.ts";
import { InterruptedError, NonFiniteError, RunFileError } from "./errors.ts";
import type { EpochMetrics, RunOutput } from "./output.ts";
import { userPath } from "./paths.ts";
import { type EpochMeter, type Predictions, TrainingLog, type TrainingLogOptions } from "./train.ts";

/** Training runs in progress in this process (main's Ctrl-C handler saves them instead of quitting). */
let active = 0;

/** Whether a training loop is running, i.e. Ctrl-C should stop it after a step and save. */
export function trainingInProgress(): boolean {
  return active > 0;
}

export interface TrainingRunOptions extends TrainingLogOptions {
  /** The example's name, as in `pnpm example <name> --resume DIR`. */
  example: string;
  output: RunOutput;
  /** The model: a Module, or its parameters by name (the tensors themselves). */
  model: Module | Record<string, Tensor>;
  optimizer?: optim.Optimizer;
  /** The shuffling loader over the training set; its epochs follow the run's. */
  loader: DataLoader;
  data: { train: ImageDataset; test: ImageDataset };
  /** The options that fix the run's numbers, by command-line name (a resume must match them). */
  settings: Settings;
  /** The --data folder, recorded so that a resume without --data reads the same files. */
  dataFolder?: string;
  /** The checkpoint to continue from (readResumePoint, checked by checkResume). */
  resume?: ResumePoint;
  /** Keep going after a non-finite loss, and save such weights (default false). */
  allowNonFinite?: boolean;
  /** What to try when the loss diverges, e.g. "a smaller --lr or --momentum". */
  divergenceHint?: string;
  /** Stops the run after the current step, with a checkpoint (pnpm example aborts it on Ctrl-C). */
  signal?: AbortSignal;
  /** Extra metadata for every checkpoint (dataset, sizes). */
  metadata?: Record<string, string>;
  /** A random generator the training draws from (dropout's masks): checkpoints keep its state and a
   *  resumed run restores it, so that it continues bit for bit. */
  generator?: RandomGenerator;
}

function fingerprint(ds: ImageDataset): DataFingerprint {
  return { n: ds.n, source: ds.source, labelsHash: labelsHash(ds.labels) };
}

/** Time between two yields to the event loop, so that a Ctrl-C is seen between steps. */
const YIELD_MS = 20;

export class TrainingRun {
  /** The first epoch to run: 1, or the epoch a resumed run stopped in (or after). */
  readonly firstEpoch: number;
  readonly log: TrainingLog;
  private readonly paths: { dir: string; last: string; best: string };
  private readonly resumeStep: number;
  private resumeMeter: TrainingState["meter"];
  private epoch = 0;
  private step = 0;
  private meter: EpochMeter | undefined;
  private best: TrainingState["best"] = null;
  private nonFinite: string | null = null;
  private lastYield = performance.now();
  private open = true;
  /** The last checkpoint written (or resumed from), if any. */
  lastCheckpoint: string | undefined;

  constructor(private readonly options: TrainingRunOptions) {
    this.paths = checkpointPaths(options.output.dir);
    const point = options.resume;
    if (point) {
      const saved = point.state;
      const now = { train: fingerprint(options.data.train), test: fingerprint(options.data.test) };
      for (const split of ["train", "test"] as const) {
        const [was, is] = [saved.data[split], now[split]];
        if (was.n !== is.n || was.labelsHash !== is.labelsHash) {
          throw new RunFileError(
            `cannot resume ${shownPath(options.output.dir)}: its ${split} data were ${was.n} images from ${was.source}, ` +
              `now ${is.n} images from ${is.source}${was.n === is.n ? " with other labels" : ""}; pass the run's --data`,
          );
        }
      }
      this.restoreModel(point);
      if (options.optimizer && point.optimizer) options.optimizer.loadStateDict(point.optimizer);
      if (options.generator) {
        if (!saved.generator) throw new RunFileError(`cannot resume ${shownPath(options.output.dir)}: its checkpoint holds no random generator state (dropout)`);
        options.generator.setState(saved.generator);
      }
      this.best = saved.best;
      this.nonFinite = saved.nonFinite;
      this.firstEpoch = saved.epoch + 1;
      this.resumeStep = saved.step;
      this.resumeMeter = saved.meter;
      this.lastCheckpoint = point.path;
      this.log = new TrainingLog(options, saved.history);
      (options.log ?? console.log)(
        `resuming ${shownPath(options.output.dir)} at epoch ${this.firstEpoch}` +
          `${saved.step > 0 ? `, step ${saved.step + 1} of ${options.loader.length}` : ""} (of ${options.epochs})`,
      );
    } else {
      this.firstEpoch = 1;
      this.resumeStep = 0;
      this.resumeMeter = null;
      this.log = new TrainingLog(options);
    }
    active++;
  }

  /** The model's tensors by name, sharing memory with it. */
  private modelState(): Record<string, Tensor> {
    const { model } = this.options;
    return model instanceof Module ? model.stateDict() : model;
  }

  private restoreModel(point: ResumePoint): void {
    const { model } = this.options;
    if (model instanceof Module) {
      model.loadStateDict(point.model);
      return;
    }
    for (const [name, t] of Object.entries(model)) {
      const src = point.model[name];
      if (!src || src.data.length !== t.size) throw new RunFileError(`${shownPath(point.path)}: no tensor "${name}" of shape [${t.shape.join(", ")}]`);
      t.data.set(src.data);
      t.markModified();
    }
  }

  /**
   * The batches of `epoch` (1-based): positions the loader (setState) on that epoch's shuffle, a pure
   * function of the seed and the epoch, and in the epoch a resumed run stopped in on the first batch not
   * yet done; the batches before it are not gathered.
   */
  *batches(epoch: number): Generator<[Tensor, Tensor], void, undefined> {
    const { loader } = this.options;
    const skip = epoch === this.firstEpoch ? this.resumeStep : 0;
    loader.setState({ epoch: epoch - 1, batch: skip });
    this.epoch = epoch;
    this.step = skip;
    this.meter = this.log.startEpoch(loader.length);
    if (skip > 0 && this.resumeMeter) this.meter.restore(this.resumeMeter);
    this.resumeMeter = null;
    yield* loader;
  }

  /**
   * After each optimizer step: counts the batch's loss and accuracy, stops the run on a non-finite loss,
   * and on an aborted signal saves a checkpoint and throws an InterruptedError.
   */
  async stepDone(loss: Tensor, logits: Tensor, labels: Tensor): Promise<void> {
    const meter = this.meter!;
    const value = meter.update(loss, logits, labels);
    this.step++;
    const where = `epoch ${this.epoch}, step ${this.step} of ${this.options.loader.length}`;
    if (!Number.isFinite(value)) this.nonFiniteFound(`the training loss is ${value} at ${where}`, meter);
    const { signal } = this.options;
    if (signal === undefined) return;
    if (performance.now() - this.lastYield >= YIELD_MS) {
      await new Promise((resolve) => setImmediate(resolve));
      this.lastYield = performance.now();
    }
    if (signal.aborted) {
      meter.stopBar();
      this.save(this.epoch - 1, this.step, meter.state());
      this.stop(`stopped at ${where}`);
    }
  }

  /**
   * Ends the epoch: checks the weights and test loss are finite, prints and records the epoch (metrics.jsonl,
   * curves.svg), writes checkpoints/last (and best, when the test accuracy improved).
   */
  endEpoch(test: Predictions): EpochMetrics {
    const meter = this.meter!;
    const after = `after epoch ${this.epoch}`;
    const bad = findNonFinite(this.modelState());
    if (bad) this.nonFiniteFound(`the weights hold ${bad.count} non-finite value${bad.count === 1 ? "" : "s"} ("${bad.name}") ${after}`, meter);
    else if (!Number.isFinite(test.loss)) this.nonFiniteFound(`the test loss is ${test.loss} ${after}`, meter);
    const row = this.log.endEpoch(meter, test);
    this.meter = undefined;
    const improved = this.best === null || row.testAccuracy > this.best.testAccuracy;
    if (improved) this.best = { epoch: row.epoch, testAccuracy: row.testAccuracy };
    this.save(this.epoch, 0, null);
    if (improved) this.saveBest(row);
    if (this.options.signal?.aborted && this.epoch < this.options.epochs) this.stop(`stopped after epoch ${this.epoch}`);
    return row;
  }

  /** Closes the run after its last epoch: the history, the best epoch and where training went non-finite. */
  finish(): { history: EpochMetrics[]; best: TrainingState["best"]; nonFinite: string | null; checkpoints: { last: string; best: string } } {
    this.close();
    return { history: this.log.history, best: this.best, nonFinite: this.nonFinite, checkpoints: { last: this.paths.last, best: this.paths.best } };
  }

  private close(): void {
    if (this.open) active--;
    this.open = false;
  }

  private nonFiniteFound(what: string, meter: EpochMeter): void {
    if (this.options.allowNonFinite) {
      if (this.nonFinite === null) {
        this.nonFinite = what;
        (this.options.log ?? console.log)(`warning: ${what}; training goes on (--allow-nonfinite)`);
      }
      return;
    }
    meter.stopBar();
    this.close();
    const saved = this.lastCheckpoint
      ? `The last good checkpoint, ${shownPath(this.lastCheckpoint)}, is from before; nothing later was saved.`
      : "No checkpoint was written.";
    throw new NonFiniteError(
      `training diverged: ${what}. ${saved}\nTry ${this.options.divergenceHint ?? "a smaller --lr"}; --allow-nonfinite trains on regardless.`,
    );
  }

  private stop(what: string): never {
    this.close();
    const dir = shownPath(this.options.output.dir);
    throw new InterruptedError(
      `${what}; saved ${shownPath(this.paths.last)}.\nContinue with: pnpm example ${this.options.example} --resume ${dir}`,
      this.paths.last,
    );
  }

  private state(epoch: number, step: number, meter: TrainingState["meter"]): Omit<TrainingState, "optimizer"> {
    const { options } = this;
    return {
      example: options.example,
      settings: options.settings,
      epochs: options.epochs,
      epoch,
      step,
      meter,
      history: this.log.history,
      best: this.best,
      nonFinite: this.nonFinite,
      data: { train: fingerprint(options.data.train), test: fingerprint(options.data.test) },
      dataFolder: options.dataFolder !== undefined ? userPath(options.dataFolder) : null,
      generator: options.generator?.getState() ?? null,
    };
  }

  private metadata(): Record<string, string> {
    return { example: this.options.example, ...this.options.metadata, ...(this.nonFinite ? { nonFinite: this.nonFinite } : {}) };
  }

  private write(path: string, tensors: Parameters<typeof saveSync>[1], metadata: Record<string, string>): void {
    const { output } = this.options;
    output.track(`checkpoints/${path === this.paths.last ? "last" : "best"}.safetensors`);
    output.guard(this.paths.dir, () => mkdirSync(this.paths.dir, { recursive: true }));
    output.guard(path, () => saveSync(path, tensors, metadata));
  }

  private save(epoch: number, step: number, meter: TrainingState["meter"]): void {
    const optimizer = this.options.optimizer?.stateDict();
    const { tensors, metadata } = trainingCheckpointContents(this.modelState(), optimizer, this.state(epoch, step, meter), this.metadata());
    this.write(this.paths.last, tensors, metadata);
    this.lastCheckpoint = this.paths.last;
  }

  private saveBest(row: EpochMetrics): void {
    this.write(this.paths.best, this.modelState(), { ...this.metadata(), epoch: String(row.epoch), testAccuracy: String(row.testAccuracy) });
  }
}
