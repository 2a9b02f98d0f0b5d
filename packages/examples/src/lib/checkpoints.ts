/**
 * The examples' checkpoint files. A training run keeps two in `<run>/checkpoints/`: `last.safetensors`,
 * rewritten after every epoch (and when Ctrl-C stops the run mid-epoch), and `best.safetensors`, the epoch
 * with the best test accuracy so far. Both are plain safetensors files whose tensors are the model's (the
 * names the model's stateDict uses); `last` also holds the optimizer's buffers (`optimizer/<i>/<name>`) and,
 * in its metadata, everything else a resumed run needs to continue bit for bit (`training`, JSON).
 * Every write is atomic (a temporary file renamed over the old one).
 */
import { existsSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import type { GeneratorState, Tensor } from "@tapegrad/autograd";
import { CheckpointError, type LoadedTensor, type TensorLike, type optim } from "@tapegrad/nn";
import { loadStateSync } from "@tapegrad/nn/node";
import { NonFiniteError, RunFileError, UsageError } from "./errors.ts";
import type { EpochMetrics } from "./output.ts";
import { invocationDir } from "./paths.ts";

/** The options that fix a run's numbers, by command-line name (`"batch-size": 64`); absent ones are null. */
export type Settings = Record<string, string | number | boolean | null>;

/** An epoch in progress: the running sums of its finished batches. */
export interface MeterState {
  lossSum: number;
  hits: number;
  seen: number;
  batches: number;
}

/** What the training loop needs to continue where a checkpoint was taken. */
export interface TrainingState {
  /** The example that wrote it. */
  example: string;
  settings: Settings;
  /** Epochs the run was asked for. */
  epochs: number;
  /** Epochs finished. */
  epoch: number;
  /** Batches finished in the epoch after `epoch` (0 at an epoch's end). */
  step: number;
  /** The running sums of that unfinished epoch, null at an epoch's end. */
  meter: MeterState | null;
  history: EpochMetrics[];
  best: { epoch: number; testAccuracy: number } | null;
  /** Where a loss or weight first became NaN or infinite (runs with --allow-nonfinite), else null. */
  nonFinite: string | null;
  /** Train and test sizes and a hash of their labels: the resumed run must see the same data. */
  data: { train: DataFingerprint; test: DataFingerprint };
  /** The --data folder the run was started with (a resume without --data reads it again), else null. */
  dataFolder: string | null;
  /** The state of the random generator the training draws from (dropout), when the example names one. */
  generator?: GeneratorState | null;
  /** The optimizer's groups and scalar state (its buffers are tensors); null when there is none. */
  optimizer: { paramGroups: optim.OptimizerStateDict["paramGroups"]; scalars: Record<string, Record<string, number>> } | null;
}

export interface DataFingerprint {
  n: number;
  source: string;
  labelsHash: string;
}

const FORMAT = "tapegrad-examples-training-1";
const OPTIMIZER_PREFIX = "optimizer/";

/** `checkpoints/last.safetensors` and `best.safetensors` of a run folder. */
export function checkpointPaths(runDir: string): { dir: string; last: string; best: string } {
  const dir = join(runDir, "checkpoints");
  return { dir, last: join(dir, "last.safetensors"), best: join(dir, "best.safetensors") };
}

/** A path as the user would type it: relative to the invocation folder when inside it. */
export function shownPath(path: string): string {
  const rel = relative(invocationDir(), path);
  return rel !== "" && !rel.startsWith("..") && !rel.startsWith("/") ? rel : path;
}

/** FNV-1a of the labels, as 8 hex digits: cheap, and different for the sample, the full set and MNIST. */
export function labelsHash(labels: ArrayLike<number>): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < labels.length; i++) h = Math.imul(h ^ labels[i], 0x01000193);
  return (h >>> 0).toString(16).padStart(8, "0");
}

/** JSON that keeps NaN and ±Infinity (a run with --allow-nonfinite can record them). */
export function encodeJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (typeof v === "number" && !Number.isFinite(v) ? { nonFinite: String(v) } : v));
}

export function decodeJson(text: string): unknown {
  return JSON.parse(text, (_key, v) =>
    v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 && typeof v.nonFinite === "string" ? Number(v.nonFinite) : v,
  );
}

/** The first tensor holding NaN or ±Infinity: its name, how many such values, and the first one. */
export function findNonFinite(tensors: Record<string, { data: ArrayLike<number> }>): { name: string; count: number; value: number; index: number } | undefined {
  for (const [name, t] of Object.entries(tensors)) {
    const d = t.data;
    let count = 0;
    let index = -1;
    for (let i = 0; i < d.length; i++) {
      if (!Number.isFinite(d[i])) {
        if (index < 0) index = i;
        count++;
      }
    }
    if (count > 0) return { name, count, value: d[index], index };
  }
  return undefined;
}

/**
 * Reads a checkpoint for an example: a missing or unreadable file is a RunFileError in words, and NaN or
 * infinite values are a NonFiniteError unless `allowNonFinite` (tapegrad's own loaders accept them).
 */
export function readCheckpoint(
  path: string,
  options: { allowNonFinite?: boolean; what?: string } = {},
): { tensors: Record<string, LoadedTensor>; metadata: Record<string, string> } {
  const what = options.what ?? "checkpoint";
  let isFile = false;
  try {
    isFile = statSync(path).isFile();
  } catch {
    throw new RunFileError(`${what} ${shownPath(path)} does not exist`);
  }
  if (!isFile) throw new RunFileError(`${what} ${shownPath(path)} is a folder, not a checkpoint file`);
  let loaded: ReturnType<typeof loadStateSync>;
  try {
    loaded = loadStateSync(path);
  } catch (err) {
    if (err instanceof CheckpointError) throw new RunFileError(`${what} ${shownPath(path)} cannot be read: ${err.message.replace(/^load \S+: /, "")}`);
    throw err;
  }
  if (!options.allowNonFinite) {
    const bad = findNonFinite(loaded.tensors);
    if (bad) {
      throw new NonFiniteError(
        `${what} ${shownPath(path)} holds non-finite values: tensor "${bad.name}" has ${bad.count} NaN or infinite value${bad.count === 1 ? "" : "s"} (the first, at index ${bad.index}, is ${bad.value}). ` +
          "It comes from a run that diverged; train again with a smaller --lr, or pass --allow-nonfinite to use it anyway.",
      );
    }
  }
  return loaded;
}

/** The model's tensors of a checkpoint, without the optimizer's. */
export function modelTensors<T>(tensors: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(tensors).filter(([name]) => !name.startsWith(OPTIMIZER_PREFIX)));
}

/** The tensors and metadata of a training checkpoint (last.safetensors). */
export function trainingCheckpointContents(
  model: Record<string, Tensor>,
  optimizer: optim.OptimizerStateDict | undefined,
  state: Omit<TrainingState, "optimizer">,
  metadata: Record<string, string>,
): { tensors: Record<string, TensorLike>; metadata: Record<string, string> } {
  const tensors: Record<string, TensorLike> = { ...model };
  let optimizerState: TrainingState["optimizer"] = null;
  if (optimizer) {
    const scalars: Record<string, Record<string, number>> = {};
    for (const [i, st] of Object.entries(optimizer.state)) {
      for (const [key, v] of Object.entries(st)) {
        if (typeof v === "number") (scalars[i] ??= {})[key] = v;
        else tensors[`${OPTIMIZER_PREFIX}${i}/${key}`] = { shape: [v.length], dtype: "float64", data: v };
      }
    }
    optimizerState = { paramGroups: optimizer.paramGroups, scalars };
  }
  const full: TrainingState = { ...state, optimizer: optimizerState };
  return { tensors, metadata: { ...metadata, format: FORMAT, training: encodeJson(full) } };
}

/** A training checkpoint read back: the model's tensors, the optimizer's state dict and the run's state. */
export interface ResumePoint {
  path: string;
  model: Record<string, LoadedTensor>;
  optimizer: optim.OptimizerStateDict | undefined;
  state: TrainingState;
}

/**
 * Reads `<runDir>/checkpoints/last.safetensors` for resuming `example`. A missing folder or checkpoint, or
 * one from another example, is a RunFileError naming it.
 */
export function readResumePoint(runDir: string, example: string, options: { allowNonFinite?: boolean } = {}): ResumePoint {
  const { last } = checkpointPaths(runDir);
  if (!existsSync(runDir)) throw new RunFileError(`cannot resume: the folder ${shownPath(runDir)} does not exist`);
  if (!existsSync(last)) {
    throw new RunFileError(
      `cannot resume: ${shownPath(runDir)} has no checkpoints/last.safetensors (a run writes it after each epoch, and when Ctrl-C stops it)`,
    );
  }
  const { tensors, metadata } = readCheckpoint(last, { ...options, what: "the checkpoint" });
  if (metadata.format !== FORMAT || metadata.training === undefined) {
    throw new RunFileError(`cannot resume from ${shownPath(last)}: it holds no training state (format ${JSON.stringify(metadata.format ?? null)})`);
  }
  const state = decodeJson(metadata.training) as TrainingState;
  if (state.example !== example) {
    throw new RunFileError(`cannot resume ${shownPath(runDir)} with ${example}: it is a run of the ${state.example} example`);
  }
  let optimizer: ResumePoint["optimizer"];
  if (state.optimizer) {
    const st: optim.OptimizerStateDict["state"] = {};
    for (const [i, scalars] of Object.entries(state.optimizer.scalars)) st[Number(i)] = { ...scalars };
    for (const [name, t] of Object.entries(tensors)) {
      if (!name.startsWith(OPTIMIZER_PREFIX)) continue;
      const [i, key] = name.slice(OPTIMIZER_PREFIX.length).split("/");
      (st[Number(i)] ??= {})[key] = t.data as Float64Array;
    }
    optimizer = { state: st, paramGroups: state.optimizer.paramGroups };
  }
  return { path: last, model: modelTensors(tensors), optimizer, state };
}

function sameSetting(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  const x = Number(a);
  return typeof a !== "boolean" && typeof b !== "boolean" && a !== null && b !== null && Number.isFinite(x) && x === Number(b);
}

function showSetting(name: string, value: unknown): string {
  if (value === null || value === undefined || value === false) return `no --${name}`;
  return value === true ? `--${name}` : `--${name} ${value}`;
}

/**
 * Checks a resumed run's settings and epochs against its checkpoint's, before any work: a resumed run keeps
 * the settings it was started with, and only --epochs may change (to at least the epoch it stopped in).
 */
export function checkResume(point: ResumePoint, settings: Settings, epochs: number): void {
  const saved = point.state.settings;
  const differing = Object.keys({ ...saved, ...settings }).filter((k) => !sameSetting(saved[k] ?? null, settings[k] ?? null));
  if (differing.length) {
    throw new UsageError(
      `a resumed run keeps the settings it was started with (only --epochs may change): ` +
        differing.map((k) => `${showSetting(k, settings[k])} differs from the run's ${showSetting(k, saved[k])}`).join("; "),
    );
  }
  const { epoch, step } = point.state;
  const needed = step > 0 ? epoch + 1 : epoch;
  if (step === 0 && epoch >= epochs) {
    throw new UsageError(`the run finished ${epoch} epoch${epoch === 1 ? "" : "s"} already; pass --epochs N with N > ${epoch} to train it further`);
  }
  if (epochs < needed) throw new UsageError(`the run stopped in epoch ${needed}; --epochs must be at least ${needed}, got ${epochs}`);
}
