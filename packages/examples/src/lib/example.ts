/** What every example module provides, and the options and result shape they share. */
import { totalmem } from "node:os";
import { manualSeed } from "@tapegrad/autograd";
import { type ResumePoint, type Settings, checkResume, readResumePoint } from "./checkpoints.ts";
import { type OptionTable, type ParsedValues, intOption, numberOption, stringOption } from "./cli.ts";
import { type DataOptions, MAX_TEST_IMAGES, MAX_TRAIN_IMAGES, checkDataFolder, datasetName } from "./data.ts";
import { UsageError } from "./errors.ts";
import { RunOutput, discardUnusedOutputs } from "./output.ts";
import { userPath } from "./paths.ts";

/** Options of a training example, after parsing (the same object the tests pass to `run`). */
export interface RunOptions extends DataOptions {
  /** Output folder, new or empty; default runs/<example>-<timestamp> in the repository. */
  out?: string;
  /** Continue the run saved in this folder (its checkpoints/last.safetensors). */
  resume?: string;
  /** Replace the run in a non-empty `out`. */
  overwrite?: boolean;
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  /** Keep training after a non-finite loss, and load checkpoints holding such values (default false). */
  allowNonFinite?: boolean;
  /** Stops training after the current step, with a checkpoint (pnpm example aborts it on Ctrl-C). */
  signal?: AbortSignal;
  /** Show progress bars (default true; they are hidden when stderr is not a terminal). */
  progress?: boolean;
  /** Where progress lines go (default console.log). */
  log?: (line: string) => void;
}

/** What `run` returns and writes to result.json; main prints it as one `RESULT {...}` line. */
export interface RunResult extends ResultFields {
  outDir: string;
  files: string[];
  seconds: number;
}

/** The example's own numbers in a RunResult. */
export interface ResultFields {
  example: string;
  dataset?: string;
  dataSource?: string;
  isSample?: boolean;
  testAccuracy?: number;
  /** Set when the run's check failed (gradients disagree): main prints it and exits with status 3. */
  failed?: string;
  [key: string]: unknown;
}

/** How main calls an example: the options the user typed, and the signal Ctrl-C aborts. */
export interface RunContext {
  given?: ReadonlySet<string>;
  signal?: AbortSignal;
}

/** An example as main sees it: its command-line options, and a way to run it from parsed values. */
export interface Example {
  name: string;
  summary: string;
  options: OptionTable;
  /** Parses `values` (throwing UsageError on bad ones, before any work) and runs the example. */
  runWith(values: ParsedValues, context?: RunContext): Promise<RunResult>;
}

/**
 * With --resume DIR, the options the user did not type come from the run saved in DIR (its settings, its
 * --epochs and --data) rather than from the defaults.
 */
function applyResumeDefaults(example: string, table: OptionTable, values: ParsedValues, given: ReadonlySet<string>): ParsedValues {
  const dir = stringOption(values, "resume");
  if (dir === undefined) return values;
  const { state } = readResumePoint(userPath(dir), example, { allowNonFinite: true });
  const saved: Settings = { ...state.settings, epochs: state.epochs, data: state.dataFolder };
  const out = { ...values };
  for (const [name, value] of Object.entries(saved)) {
    if (given.has(name) || !Object.hasOwn(table, name)) continue;
    out[name] = value === null ? undefined : typeof value === "boolean" ? value : String(value);
  }
  return out;
}

/**
 * An Example from a module's option table, its parser (values → `run`'s options, the object tests pass
 * to `run` directly) and its `run`.
 */
export function defineExample<O extends object>(spec: {
  name: string;
  summary: string;
  options: OptionTable;
  parse(values: ParsedValues): O;
  run(options: O): Promise<RunResult>;
}): Example {
  return {
    name: spec.name,
    summary: spec.summary,
    options: spec.options,
    runWith: async (values, context = {}) => {
      const options = spec.parse(applyResumeDefaults(spec.name, spec.options, values, context.given ?? new Set()));
      try {
        // training examples stop on the signal (RunOptions.signal); the others ignore it
        return await spec.run({ ...options, signal: context.signal });
      } finally {
        discardUnusedOutputs();
      }
    },
  };
}

/** The options every training example shares, from parsed values (defaults come from the option table). */
export function runOptionsFrom(values: ParsedValues): RunOptions {
  const data = stringOption(values, "data");
  checkDataFolder(data);
  return {
    dataset: datasetName(values.dataset),
    data,
    out: stringOption(values, "out"),
    resume: stringOption(values, "resume"),
    overwrite: values.overwrite === true,
    epochs: intOption(values, "epochs") ?? 1,
    batchSize: intOption(values, "batch-size", { max: MAX_TRAIN_IMAGES, maxReason: `the training split has ${MAX_TRAIN_IMAGES} images` }) ?? 64,
    lr: numberOption(values, "lr") ?? 0.1,
    seed: intOption(values, "seed", { min: 0, max: 2 ** 32 - 1 }) ?? 0,
    limitTrain: intOption(values, "limit-train", { max: MAX_TRAIN_IMAGES, maxReason: `the training split has ${MAX_TRAIN_IMAGES} images` }),
    limitTest: intOption(values, "limit-test", { max: MAX_TEST_IMAGES, maxReason: `the test split has ${MAX_TEST_IMAGES} images` }),
    allowNonFinite: values["allow-nonfinite"] === true,
    progress: values["no-progress"] !== true,
  };
}

/** The settings every training example records in its checkpoints, by command-line name. */
export function trainingSettings(options: RunOptions): Settings {
  return {
    dataset: options.dataset,
    "limit-train": options.limitTrain ?? null,
    "limit-test": options.limitTest ?? null,
    seed: options.seed,
    "batch-size": options.batchSize,
    lr: options.lr,
  };
}

/** The memory this process may use: the machine's, or a container's limit when lower. */
function memoryBudget(): number {
  const limit = process.constrainedMemory?.() ?? 0;
  const total = totalmem();
  return limit > 0 && limit < total ? limit : total;
}

function gib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(bytes >= 100 * 2 ** 30 ? 0 : 1)} GiB` : `${Math.ceil(bytes / 2 ** 20)} MiB`;
}

/** The largest typed array length (elements): one weight matrix must fit in one array. */
const MAX_ARRAY_LENGTH = 2 ** 32 - 1;

/**
 * Refuses, before any work, a network too big for this machine: 784 → hidden → 10 parameters with their
 * gradients (and momentum buffers, and a checkpoint's copy), the activations of a batch and of the
 * 1000-image evaluation batches, and the data set. The limit is 80% of the machine's (or container's) memory.
 */
export function checkMemory(options: { hidden: number; batchSize: number; bytesPerValue?: 4 | 8; momentum?: boolean; extraCopies?: number }): void {
  const { hidden, batchSize, bytesPerValue = 4, momentum = false, extraCopies = 0 } = options;
  // NOTE: an estimate to refuse what cannot work, not a promise that everything below it fits
  const inputs = 784;
  const classes = 10;
  const perHidden = inputs + 1 + classes;
  // weights, gradients, the checkpoint's bytes, momentum (float64), other copies (the gradient check's)
  const copies = 3 + extraCopies + (momentum ? 8 / bytesPerValue : 0);
  const batchRows = Math.max(batchSize, 1000);
  const bytesFor = (h: number) => (h * perHidden + classes) * bytesPerValue * copies + batchRows * h * bytesPerValue * 4;
  const fixed = (MAX_TRAIN_IMAGES + MAX_TEST_IMAGES) * inputs * 4 + 256 * 2 ** 20; // the data set, and the runtime itself
  const budget = memoryBudget() * 0.8;
  const need = fixed + bytesFor(hidden);
  const largest = Math.max(0, Math.floor((budget - fixed) / (bytesFor(1) - classes * bytesPerValue * copies)));
  if (need > budget) {
    const params = hidden * perHidden + classes;
    throw new UsageError(
      `--hidden ${hidden} needs about ${gib(need)} of memory (${params.toLocaleString("en-US")} parameters with their gradients` +
        `${momentum ? " and momentum" : ""}, and the activations of a batch), more than this machine's ${gib(memoryBudget())} allow. ` +
        `Try --hidden ${Math.min(largest, Math.floor(MAX_ARRAY_LENGTH / inputs))} or less (the default is 128).`,
    );
  }
  if (hidden * inputs > MAX_ARRAY_LENGTH) {
    throw new UsageError(
      `--hidden ${hidden} is too large: its 784×${hidden} weight matrix has more than ${MAX_ARRAY_LENGTH} elements, the most one array can hold. ` +
        `Try --hidden ${Math.floor(MAX_ARRAY_LENGTH / inputs)} or less (the default is 128).`,
    );
  }
}

/**
 * Seeds the global generator, opens the output folder (new, empty, replaced with overwrite, or the resumed
 * run's), and starts the clock. With `resume`, also reads and checks the checkpoint, before any other work.
 */
export function startRun(
  example: string,
  options: { out?: string; resume?: string; overwrite?: boolean; seed: number; epochs?: number; allowNonFinite?: boolean },
  settings?: Settings,
): { output: RunOutput; started: number; resume?: ResumePoint } {
  const output = new RunOutput(example, options);
  let resume: ResumePoint | undefined;
  if (options.resume !== undefined) {
    resume = readResumePoint(output.dir, example, { allowNonFinite: options.allowNonFinite });
    checkResume(resume, settings ?? {}, options.epochs ?? 1);
  }
  manualSeed(options.seed);
  return { output, started: performance.now(), resume };
}

/** The result field of a resumed run: the epoch it continued in and how many of that epoch's steps were done. */
export function resumeFields(resume: ResumePoint | undefined): { resumedFrom?: { epoch: number; step: number } } {
  return resume ? { resumedFrom: { epoch: resume.state.epoch + 1, step: resume.state.step } } : {};
}

/** The result fields every training example reports: the last epoch's numbers, where a resumed run started,
 *  and where a non-finite value first appeared (with --allow-nonfinite). */
export function trainingFields(
  last: { trainLoss: number; trainAccuracy: number; testAccuracy: number } | undefined,
  resume: ResumePoint | undefined,
  nonFinite: unknown,
): Pick<ResultFields, "testAccuracy"> & { trainLoss?: number; trainAccuracy?: number; nonFinite?: unknown } {
  return {
    trainLoss: last?.trainLoss,
    trainAccuracy: last?.trainAccuracy,
    testAccuracy: last?.testAccuracy,
    ...resumeFields(resume),
    ...(nonFinite ? { nonFinite } : {}),
  };
}

/** The result fields that say which data set an example ran on, and where it came from. */
export function datasetFields(data: { name: string; source: string; isSample: boolean }): Pick<ResultFields, "dataset" | "dataSource" | "isSample"> {
  return { dataset: data.name, dataSource: data.source, isSample: data.isSample };
}

/** Writes result.json (and lists it among the files) and returns the result. */
export function finishRun(output: RunOutput, started: number, result: ResultFields): RunResult {
  const full: RunResult = { ...result, outDir: output.dir, files: [], seconds: (performance.now() - started) / 1000 };
  output.writeJson("result.json", { ...full, files: undefined });
  full.files = [...output.files];
  return full;
}
