/**
 * The main example (`pnpm start`): a multilayer perceptron 784 → 128 → ReLU → 10 trained with SGD on
 * Fashion-MNIST (about 0.87 test accuracy after 10 epochs; about 0.97 on MNIST). Saves model.safetensors.
 */
import { DataLoader, F, nn, optim } from "@tapegrad/nn";
import { saveSync } from "@tapegrad/nn/node";
import { type OptionTable, type ParsedValues, commonOptions, intOption, numberOption, withDefaults } from "../lib/cli.ts";
import { type ImageDataset, describeData, loadSplits } from "../lib/data.ts";
import { defineExample, type RunOptions, datasetFields, finishRun, runOptionsFrom, startRun } from "../lib/example.ts";
import type { EpochMetrics } from "../lib/output.ts";
import { TrainingLog, type TrainingLogOptions, predict } from "../lib/train.ts";

export interface MlpOptions extends RunOptions {
  /** Hidden units (default 128). */
  hidden?: number;
  /** Give the Linear layers biases (default true; `--no-bias` turns them off). */
  bias?: boolean;
  /** SGD momentum (default 0: plain SGD). */
  momentum?: number;
}

/** Linear(784, hidden) → ReLU → Linear(hidden, 10): parameters "0.weight", "0.bias", "2.weight", "2.bias". */
export function buildMlp(inputs: number, hidden: number, classes: number, bias = true): nn.Sequential {
  return new nn.Sequential(new nn.Linear(inputs, hidden, { bias }), new nn.ReLU(), new nn.Linear(hidden, classes, { bias }));
}

export interface TrainOptions extends TrainingLogOptions {
  batchSize: number;
  /** Seed of the loader's shuffle. */
  seed: number;
}

/**
 * The training loop (d2l's train_ch3): for each epoch, for each batch: forward, loss, zeroGrad, backward,
 * step; after each epoch, the loss and accuracy on the test set. softmax-regression.ts trains with it too.
 */
export function trainClassifier(
  model: nn.Module, optimizer: optim.Optimizer, data: { train: ImageDataset; test: ImageDataset }, options: TrainOptions,
): EpochMetrics[] {
  const loader = new DataLoader(data.train, { batchSize: options.batchSize, shuffle: true, seed: options.seed });
  const record = new TrainingLog(options);
  for (let epoch = 1; epoch <= options.epochs; epoch++) {
    model.train();
    const meter = record.startEpoch(loader.length); // progress bar, running loss and accuracy
    for (const [x, y] of loader) {
      const logits = model.forward(x);
      const loss = F.crossEntropy(logits, y);
      optimizer.zeroGrad();
      loss.backward();
      optimizer.step();
      meter.update(loss, logits, y);
    }
    record.endEpoch(meter, predict(model, data.test)); // prints the epoch, writes metrics.jsonl and curves.svg
  }
  return record.history;
}

export async function run(options: MlpOptions) {
  const log = options.log ?? console.log;
  const { hidden = 128, bias = true, momentum = 0 } = options;
  const { train, test } = await loadSplits(options);
  const { output, started } = startRun("mlp", options);
  log(describeData(train, test));

  const model = buildMlp(train.rows * train.cols, hidden, train.classes.length, bias);
  log(`${model.toString()}\n${model.numParameters()} parameters; SGD lr ${options.lr}${momentum ? ` momentum ${momentum}` : ""}, batch ${options.batchSize}, ${options.epochs} epochs`);
  const optimizer = new optim.SGD(model.parameters(), { lr: options.lr, momentum });
  const history = trainClassifier(model, optimizer, { train, test }, {
    ...options, output, log, title: `MLP 784-${hidden}-10${bias ? "" : " (no bias)"} on ${train.name}`,
  });

  const last = history[history.length - 1];
  const checkpoint = output.track("model.safetensors");
  saveSync(checkpoint, model.stateDict(), {
    example: "mlp",
    dataset: train.name,
    hidden: String(hidden),
    bias: String(bias),
    epochs: String(options.epochs),
    testAccuracy: String(last?.testAccuracy ?? ""),
  });
  return finishRun(output, started, {
    example: "mlp",
    ...datasetFields(train),
    epochs: options.epochs,
    hidden,
    bias,
    trainLoss: last?.trainLoss,
    trainAccuracy: last?.trainAccuracy,
    testAccuracy: last?.testAccuracy,
    checkpoint,
  });
}

export const mlpOptions = {
  ...withDefaults(commonOptions, { epochs: "10", "batch-size": "64", lr: "0.1" }),
  hidden: { type: "string", valueName: "N", default: "128", description: "hidden units" },
  momentum: { type: "string", valueName: "X", default: "0", description: "SGD momentum" },
  "no-bias": { type: "boolean", description: "Linear layers without bias" },
} as const satisfies OptionTable;

export function parseMlp(values: ParsedValues): MlpOptions {
  const momentum = numberOption(values, "momentum", true);
  return { ...runOptionsFrom(values), hidden: intOption(values, "hidden") ?? 128, bias: values["no-bias"] !== true, momentum };
}

export const mlp = defineExample({
  name: "mlp",
  summary: "A multilayer perceptron 784→128→ReLU→10 trained with SGD; saves model.safetensors in the output folder.",
  options: mlpOptions,
  parse: parseMlp,
  run,
});
