/**
 * A small modern convolutional network on Fashion-MNIST: conv(1→32, 3×3, pad 1) → ReLU → max-pool →
 * conv(32→64, 3×3, pad 1) → ReLU → max-pool → Linear(3136→128) → ReLU → Linear(128→10), with optional batch
 * norm after each convolution (--batchnorm) and dropout before the last layer (--dropout P); SGD with
 * momentum or Adam. Writes the run folder of mlp.ts plus the first layer's filters and one test image's
 * feature maps.
 */
import { defaultGenerator } from "@tapegrad/autograd";
import { nn, optim } from "@tapegrad/nn";
import { saveSync } from "@tapegrad/nn/node";
import type { Settings } from "../lib/checkpoints.ts";
import { type OptionTable, type ParsedValues, UsageError, commonOptions, numberOption, stringOption, withDefaults } from "../lib/cli.ts";
import { describeData, loadSplits } from "../lib/data.ts";
import {
  defineExample, type RunOptions, datasetFields, finishRun, trainingFields, runOptionsFrom, startRun, trainingSettings,
} from "../lib/example.ts";
import { featureMapsPng, filtersPng } from "../lib/feature-maps.ts";
import { imageAt } from "../lib/images.ts";
import { trainClassifier } from "./mlp.ts";

export type CnnOptimizer = "sgd" | "adam";

export interface CnnOptions extends RunOptions {
  /** BatchNorm2d after each convolution (default false). */
  batchnorm?: boolean;
  /** Dropout probability before the last Linear layer (default 0: no dropout layer). */
  dropout?: number;
  /** "sgd" (with momentum, the default) or "adam". */
  optimizer?: CnnOptimizer;
  /** SGD momentum (default 0.9). */
  momentum?: number;
}

/** The network's sizes; the defaults are the example's. */
export interface CnnShape {
  /** Output channels of the two convolutions (default [32, 64]). */
  channels?: [number, number];
  /** Units of the hidden Linear layer (default 128). */
  hidden?: number;
  batchnorm?: boolean;
  dropout?: number;
  /** Image size (default 28 × 28) and classes (default 10). */
  rows?: number;
  cols?: number;
  classes?: number;
}

/**
 * The network as an nn.Sequential that takes flat images [N, rows·cols]; PyTorch's
 * nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 32, 3, padding=1), ...) has the same
 * state-dict names ("1.weight", "1.bias", ...).
 */
export function buildCnn(shape: CnnShape = {}): nn.Sequential {
  const { channels: [c1, c2] = [32, 64], hidden = 128, batchnorm = false, dropout = 0, rows = 28, cols = 28, classes = 10 } = shape;
  const layers: nn.Module[] = [new nn.Unflatten(1, [1, rows, cols])];
  layers.push(new nn.Conv2d(1, c1, 3, { padding: 1 }));
  if (batchnorm) layers.push(new nn.BatchNorm2d(c1));
  layers.push(new nn.ReLU(), new nn.MaxPool2d(2), new nn.Conv2d(c1, c2, 3, { padding: 1 }));
  if (batchnorm) layers.push(new nn.BatchNorm2d(c2));
  layers.push(new nn.ReLU(), new nn.MaxPool2d(2), new nn.Flatten(), new nn.Linear(c2 * Math.floor(rows / 4) * Math.floor(cols / 4), hidden), new nn.ReLU());
  if (dropout > 0) layers.push(new nn.Dropout(dropout));
  layers.push(new nn.Linear(hidden, classes));
  return new nn.Sequential(...layers);
}

/** The settings that fix a cnn run's numbers (a resumed run must keep them). */
function cnnSettings(options: CnnOptions): Settings {
  return {
    ...trainingSettings(options), batchnorm: options.batchnorm === true, dropout: options.dropout ?? 0,
    // Adam ignores --momentum
    optimizer: options.optimizer ?? "sgd", momentum: options.optimizer === "adam" ? null : options.momentum ?? 0.9,
  };
}

export async function run(options: CnnOptions) {
  const log = options.log ?? console.log;
  const { batchnorm = false, dropout = 0, optimizer: which = "sgd", momentum = 0.9 } = options;
  const settings = cnnSettings(options);
  const { output, started, resume } = startRun("cnn", options, settings);
  const { train, test } = await loadSplits(options);
  log(describeData(train, test));

  const model = buildCnn({ batchnorm, dropout, rows: train.rows, cols: train.cols, classes: train.classes.length });
  const optimizer = which === "adam"
    ? new optim.Adam(model.parameters(), { lr: options.lr })
    : new optim.SGD(model.parameters(), { lr: options.lr, momentum });
  const described = which === "adam" ? `Adam lr ${options.lr}` : `SGD lr ${options.lr}${momentum ? ` momentum ${momentum}` : ""}`;
  log(`${model.toString()}\n${model.numParameters()} parameters; ${described}, batch ${options.batchSize}, ${options.epochs} epochs`);
  const variant = [batchnorm ? "batch norm" : "", dropout > 0 ? `dropout ${dropout}` : ""].filter(Boolean).join(", ");
  const metadata = { dataset: train.name, batchnorm: String(batchnorm), dropout: String(dropout), optimizer: which };
  const { history, nonFinite } = await trainClassifier(model, optimizer, { train, test }, {
    ...options, example: "cnn", output, log, resume, settings, metadata, dataFolder: options.data,
    // dropout draws its masks from the global generator: checkpoints keep its state for --resume
    generator: dropout > 0 ? defaultGenerator : undefined,
    divergenceHint: which === "adam" ? "a smaller --lr" : "a smaller --lr or --momentum",
    title: `CNN${variant ? ` (${variant})` : ""} on ${train.name}`,
  });

  const last = history[history.length - 1];
  const checkpoint = output.track("model.safetensors");
  output.guard(checkpoint, () => saveSync(checkpoint, model.stateDict(), {
    example: "cnn", ...metadata, epochs: String(options.epochs), testAccuracy: String(last?.testAccuracy ?? ""),
  }));
  const firstConv = model.at(1) as nn.Conv2d;
  output.write("filters.png", filtersPng(firstConv.weight));
  model.eval();
  // the input image and the first block's maps (convolution, batch norm, ReLU)
  output.write("feature-maps.png", featureMapsPng(model, batchnorm ? 4 : 3, imageAt(test.images, 0, test.rows * test.cols), test.rows, test.cols));
  return finishRun(output, started, {
    example: "cnn",
    ...datasetFields(train),
    epochs: options.epochs,
    batchnorm,
    dropout,
    optimizer: which,
    ...trainingFields(last, resume, nonFinite),
    checkpoint,
  });
}

export const cnnOptions = {
  ...withDefaults(commonOptions, { epochs: "10", "batch-size": "128" }),
  lr: { type: "string", valueName: "X", description: "learning rate (default 0.05 with SGD, 0.001 with Adam)" },
  optimizer: { type: "string", valueName: "NAME", default: "sgd", description: "sgd (with --momentum) or adam" },
  momentum: { type: "string", valueName: "X", default: "0.9", description: "SGD momentum, from 0 to below 1 (Adam ignores it)" },
  batchnorm: { type: "boolean", description: "batch normalisation after each convolution" },
  dropout: { type: "string", valueName: "P", default: "0", description: "dropout probability before the last layer, from 0 to below 1 (0: none)" },
} as const satisfies OptionTable;

export function parseCnn(values: ParsedValues): CnnOptions {
  const options = runOptionsFrom(values);
  const optimizer = stringOption(values, "optimizer") ?? "sgd";
  if (optimizer !== "sgd" && optimizer !== "adam") throw new UsageError(`--optimizer must be sgd or adam, got ${JSON.stringify(optimizer)}`);
  const momentum = numberOption(values, "momentum", { min: 0, max: 1, maxExclusive: true, maxReason: "at 1 or more the updates grow without bound" });
  const dropout = numberOption(values, "dropout", { min: 0, max: 1, maxExclusive: true, maxReason: "at 1 every unit is dropped" });
  const lr = numberOption(values, "lr") ?? (optimizer === "adam" ? 0.001 : 0.05);
  return { ...options, lr, optimizer, momentum: optimizer === "adam" ? undefined : momentum, batchnorm: values.batchnorm === true, dropout };
}

export const cnn = defineExample({
  name: "cnn",
  summary: "A convolutional network (2 conv + 2 max-pool + 2 Linear; --batchnorm, --dropout) trained with SGD momentum or Adam; saves filters and feature maps.",
  options: cnnOptions,
  parse: parseCnn,
  run,
});
