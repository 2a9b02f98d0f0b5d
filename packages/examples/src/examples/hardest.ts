/**
 * The hardest test images for a trained MLP: every test image's cross-entropy loss (reduction "none"),
 * sorted; prints the 16 hardest and writes PNG grids of the hardest and the easiest G×G images.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { F, type LoadedTensor } from "@tapegrad/nn";
import { modelTensors, readCheckpoint, shownPath } from "../lib/checkpoints.ts";
import { type ParsedValues, commonOptions, intOption, stringOption, without, withDefaults } from "../lib/cli.ts";
import { loadSplit } from "../lib/data.ts";
import { NonFiniteError, RunFileError } from "../lib/errors.ts";
import { defineExample, type RunOptions, datasetFields, finishRun, runOptionsFrom, startRun } from "../lib/example.ts";
import { GREEN, RED, imageAt, imageGridPng } from "../lib/images.ts";
import { repoRoot, userPath } from "../lib/paths.ts";
import { predict } from "../lib/train.ts";
import { buildMlp, run as trainMlp } from "./mlp.ts";

export interface HardestOptions extends RunOptions {
  /** A model.safetensors written by the mlp example; default: the newest runs/mlp-*\/model.safetensors. */
  checkpoint?: string;
  /** Side of the image grids (default 4: 16 images each). */
  grid?: number;
  /** How many of the hardest to print (default 16). */
  show?: number;
  /** Where to look for mlp runs when no checkpoint is given (default runs/ in the repository). */
  runsDir?: string;
}

type Checkpoint = { path: string; tensors: Record<string, LoadedTensor>; metadata: Record<string, string> };

/**
 * The newest runs/mlp-*\/model.safetensors trained on `dataset`, read; one holding NaN or infinite values is
 * skipped (with a line to `log`) unless `allowNonFinite`.
 */
export function latestMlpCheckpoint(
  dataset: string, runsDir = join(repoRoot, "runs"), options: { allowNonFinite?: boolean; log?: (line: string) => void } = {},
): Checkpoint | undefined {
  if (!existsSync(runsDir)) return undefined;
  const candidates = readdirSync(runsDir)
    .filter((d) => d.startsWith("mlp-"))
    .map((d) => join(runsDir, d, "model.safetensors"))
    .filter((p) => existsSync(p))
    .map((p) => ({ p, mtime: statSync(p).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const { p } of candidates) {
    try {
      const loaded = readCheckpoint(p, { allowNonFinite: options.allowNonFinite });
      if ((loaded.metadata.dataset ?? "fashion-mnist") === dataset) return { path: p, ...loaded };
    } catch (err) {
      if (err instanceof NonFiniteError) options.log?.(`skipping ${shownPath(p)}: it holds NaN or infinite values`);
      else if (!(err instanceof RunFileError)) throw err;
    }
  }
  return undefined;
}

/** Sorts indices by descending loss; a NaN loss counts as the largest (as torch.sort does). */
function byLossDescending(losses: Float64Array): number[] {
  const key = (i: number) => (Number.isNaN(losses[i]) ? Number.POSITIVE_INFINITY : losses[i]);
  // NOTE: ∞ − ∞ is NaN, which || passes over to the index order, as for equal losses
  return Array.from(losses.keys()).sort((a, b) => key(b) - key(a) || a - b);
}

export async function run(options: HardestOptions) {
  const log = options.log ?? console.log;
  const grid = options.grid ?? 4;
  const show = options.show ?? 16;
  const { output, started } = startRun("hardest", { ...options, resume: undefined });

  let found: Checkpoint | undefined;
  let trainedHere = false;
  if (options.checkpoint !== undefined) {
    const path = userPath(options.checkpoint);
    found = { path, ...readCheckpoint(path, { allowNonFinite: options.allowNonFinite, what: "--checkpoint" }) };
  } else {
    found = latestMlpCheckpoint(options.dataset, options.runsDir, { allowNonFinite: options.allowNonFinite, log });
  }
  if (found === undefined) {
    log(`no --checkpoint given and no runs/mlp-*/model.safetensors for ${options.dataset}: training an MLP first (${options.epochs} epochs)`);
    const trained = await trainMlp({ ...options, resume: undefined, out: join(output.dir, "mlp") });
    const path = trained.checkpoint as string;
    found = { path, ...readCheckpoint(path, { allowNonFinite: options.allowNonFinite }) };
    trainedHere = true;
  }
  const checkpoint = found.path;
  log(`checkpoint ${checkpoint}`);
  const tensors = modelTensors(found.tensors);
  const { metadata } = found;
  const weight0 = tensors["0.weight"] as (typeof tensors)[string] | undefined;
  if (!weight0 || !tensors["2.weight"]) {
    throw new RunFileError(`${shownPath(checkpoint)}: not an mlp example checkpoint (expected "0.weight" and "2.weight", found ${Object.keys(tensors).join(", ")})`);
  }
  if (metadata.dataset !== undefined && metadata.dataset !== options.dataset) {
    log(`warning: the checkpoint was trained on ${metadata.dataset}, evaluating on ${options.dataset}`);
  }
  const [hidden, inputs] = weight0.shape;
  const classes = tensors["2.weight"].shape[0];
  if (inputs !== 784 || classes !== 10) {
    throw new RunFileError(`${shownPath(checkpoint)}: the model maps ${inputs} inputs to ${classes} classes; the data have 784 pixels and 10 classes`);
  }
  const model = buildMlp(inputs, hidden, classes, tensors["0.bias"] !== undefined);
  model.loadStateDict(tensors);

  const test = await loadSplit(options, "test");
  log(`${test.name}: ${test.n} test images from ${test.source}`);
  const { predictions, losses, accuracy } = predict(model, test, {
    lossPerSample: (logits, y) => F.crossEntropy(logits, y, { reduction: "none" }),
  });
  const order = byLossDescending(losses);
  log(`test accuracy ${accuracy.toFixed(4)}; the ${Math.min(show, test.n)} hardest test images:`);
  const rows = ["rank,index,loss,true,predicted"];
  const line = (rank: number, i: number) =>
    `${String(rank).padStart(4)}  #${String(i).padEnd(6)} loss ${losses[i].toFixed(3).padStart(7)}  true ${test.classes[test.labels[i]].padEnd(12)} predicted ${test.classes[predictions[i]]}`;
  for (let r = 0; r < Math.min(show, test.n); r++) log(line(r + 1, order[r]));
  order.forEach((i, r) => rows.push(`${r + 1},${i},${losses[i]},${JSON.stringify(test.classes[test.labels[i]])},${JSON.stringify(test.classes[predictions[i]])}`));
  output.write("losses.csv", `${rows.join("\n")}\n`);

  const size = test.rows * test.cols;
  const cells = Math.min(grid * grid, test.n);
  const gridPng = (indices: number[]) =>
    imageGridPng(
      indices.map((i) => imageAt(test.images, i, size)),
      { rows: grid, cols: grid, height: test.rows, width: test.cols, frames: indices.map((i) => (predictions[i] === test.labels[i] ? GREEN : RED)) },
    );
  const hardest = order.slice(0, cells);
  const easiest = order.slice(-cells).reverse();
  output.write("hardest.png", gridPng(hardest));
  output.write("easiest.png", gridPng(easiest));
  const describe = (indices: number[]) =>
    indices.map((i) => ({ index: i, loss: losses[i], true: test.classes[test.labels[i]], predicted: test.classes[predictions[i]] }));
  output.writeJson("grids.json", { layout: `${grid}×${grid}, row by row; frame green = right, red = wrong`, hardest: describe(hardest), easiest: describe(easiest) });

  return finishRun(output, started, {
    example: "hardest",
    ...datasetFields(test),
    checkpoint,
    trainedHere,
    testAccuracy: accuracy,
    hardestLoss: losses[order[0]],
    easiestLoss: losses[order[order.length - 1]],
  });
}

export const hardest = defineExample({
  name: "hardest",
  summary: "Ranks test images by the trained MLP's loss; prints the 16 hardest, writes hardest.png and easiest.png.",
  options: {
    checkpoint: { type: "string", valueName: "FILE", description: "model.safetensors from the mlp example (default: the newest runs/mlp-*/model.safetensors; else one is trained)" },
    grid: { type: "string", valueName: "G", default: "4", description: "grids of G×G images" },
    ...withDefaults(without(commonOptions, "resume"), { epochs: "3", "batch-size": "64", lr: "0.1" }),
  },
  parse: (values: ParsedValues) => {
    const checkpoint = stringOption(values, "checkpoint");
    if (checkpoint !== undefined && !existsSync(userPath(checkpoint))) throw new RunFileError(`--checkpoint ${checkpoint} does not exist`);
    return {
      ...runOptionsFrom(values),
      checkpoint,
      grid: intOption(values, "grid", { max: 100, maxReason: "a grid of 100×100 already shows every test image" }),
    };
  },
  run,
});
