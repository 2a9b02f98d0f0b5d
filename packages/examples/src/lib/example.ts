/** What every example module provides, and the options and result shape they share. */
import { manualSeed } from "@tapegrad/autograd";
import { type OptionTable, type ParsedValues, intOption, numberOption, stringOption } from "./cli.ts";
import { type DataOptions, datasetName } from "./data.ts";
import { RunOutput } from "./output.ts";

/** Options of a training example, after parsing (the same object the tests pass to `run`). */
export interface RunOptions extends DataOptions {
  /** Output folder; default runs/<example>-<timestamp> in the repository. */
  out?: string;
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
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
  [key: string]: unknown;
}

/** An example as main sees it: its command-line options, and a way to run it from parsed values. */
export interface Example {
  name: string;
  summary: string;
  options: OptionTable;
  /** Parses `values` (throwing UsageError on bad ones) and runs the example. */
  runWith(values: ParsedValues): Promise<RunResult>;
}

/**
 * An Example from a module's option table, its parser (values → `run`'s options, the object tests pass
 * to `run` directly) and its `run`.
 */
export function defineExample<O>(spec: {
  name: string;
  summary: string;
  options: OptionTable;
  parse(values: ParsedValues): O;
  run(options: O): Promise<RunResult>;
}): Example {
  return { name: spec.name, summary: spec.summary, options: spec.options, runWith: async (values) => spec.run(spec.parse(values)) };
}

/** The options every training example shares, from parsed values (defaults come from the option table). */
export function runOptionsFrom(values: ParsedValues): RunOptions {
  return {
    dataset: datasetName(values.dataset),
    data: stringOption(values, "data"),
    out: stringOption(values, "out"),
    epochs: intOption(values, "epochs") ?? 1,
    batchSize: intOption(values, "batch-size") ?? 64,
    lr: numberOption(values, "lr") ?? 0.1,
    seed: intOption(values, "seed", 0) ?? 0,
    limitTrain: intOption(values, "limit-train"),
    limitTest: intOption(values, "limit-test"),
    progress: values["no-progress"] !== true,
  };
}

/** Seeds the global generator, creates the output folder and starts the clock. */
export function startRun(example: string, options: { out?: string; seed: number }): { output: RunOutput; started: number } {
  manualSeed(options.seed);
  return { output: new RunOutput(example, options.out), started: performance.now() };
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
