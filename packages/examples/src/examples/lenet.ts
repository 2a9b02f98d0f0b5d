/**
 * LeNet-5 as d2l trains it (chapter "Convolutional Neural Networks (LeNet)"): conv 6@5×5 pad 2 → sigmoid →
 * avg-pool 2 → conv 16@5×5 → sigmoid → avg-pool 2 → Linear 400→120 → sigmoid → 84 → sigmoid → 10, Xavier
 * uniform weights, SGD lr 0.9, batch 256, 10 epochs on Fashion-MNIST (d2l reports about 0.8 test accuracy).
 * Writes the run folder of mlp.ts plus the first layer's filters and one test image's feature maps.
 */
import { nn, optim, init } from "@tapegrad/nn";
import { saveSync } from "@tapegrad/nn/node";
import { commonOptions, withDefaults } from "../lib/cli.ts";
import { describeData, loadSplits } from "../lib/data.ts";
import { defineExample, type RunOptions, datasetFields, finishRun, trainingFields, runOptionsFrom, startRun, trainingSettings } from "../lib/example.ts";
import { featureMapsPng, filtersPng } from "../lib/feature-maps.ts";
import { imageAt } from "../lib/images.ts";
import { trainClassifier } from "./mlp.ts";

/**
 * LeNet-5 as an nn.Sequential taking flat images [N, rows·cols]; every Conv2d and Linear weight Xavier
 * uniform (d2l's init_cnn), biases as PyTorch initialises them.
 */
export function buildLeNet(rows = 28, cols = 28, classes = 10): nn.Sequential {
  const flat = 16 * Math.floor((Math.floor(rows / 2) - 4) / 2) * Math.floor((Math.floor(cols / 2) - 4) / 2);
  const model = new nn.Sequential(
    new nn.Unflatten(1, [1, rows, cols]),
    new nn.Conv2d(1, 6, 5, { padding: 2 }), new nn.Sigmoid(), new nn.AvgPool2d(2),
    new nn.Conv2d(6, 16, 5), new nn.Sigmoid(), new nn.AvgPool2d(2),
    new nn.Flatten(),
    new nn.Linear(flat, 120), new nn.Sigmoid(),
    new nn.Linear(120, 84), new nn.Sigmoid(),
    new nn.Linear(84, classes),
  );
  for (const m of model.modules()) if (m instanceof nn.Conv2d || m instanceof nn.Linear) init.xavierUniform_(m.weight);
  return model;
}

export async function run(options: RunOptions) {
  const log = options.log ?? console.log;
  const settings = trainingSettings(options);
  const { output, started, resume } = startRun("lenet", options, settings);
  const { train, test } = await loadSplits(options);
  log(describeData(train, test));

  const model = buildLeNet(train.rows, train.cols, train.classes.length);
  log(`${model.toString()}\n${model.numParameters()} parameters; SGD lr ${options.lr}, batch ${options.batchSize}, ${options.epochs} epochs`);
  const optimizer = new optim.SGD(model.parameters(), { lr: options.lr });
  const { history, nonFinite } = await trainClassifier(model, optimizer, { train, test }, {
    ...options, example: "lenet", output, log, resume, settings, metadata: { dataset: train.name }, dataFolder: options.data,
    title: `LeNet-5 on ${train.name}`,
  });

  const last = history[history.length - 1];
  const checkpoint = output.track("model.safetensors");
  output.guard(checkpoint, () => saveSync(checkpoint, model.stateDict(), {
    example: "lenet", dataset: train.name, epochs: String(options.epochs), testAccuracy: String(last?.testAccuracy ?? ""),
  }));
  output.write("filters.png", filtersPng((model.at(1) as nn.Conv2d).weight));
  model.eval();
  output.write("feature-maps.png", featureMapsPng(model, 3, imageAt(test.images, 0, test.rows * test.cols), test.rows, test.cols));
  return finishRun(output, started, {
    example: "lenet",
    ...datasetFields(train),
    epochs: options.epochs,
    ...trainingFields(last, resume, nonFinite),
    checkpoint,
  });
}

export const lenet = defineExample({
  name: "lenet",
  summary: "LeNet-5 (2 conv + sigmoid + avg-pool, 120-84-10), Xavier init, SGD lr 0.9, as in d2l; saves filters and feature maps.",
  options: withDefaults(commonOptions, { epochs: "10", "batch-size": "256", lr: "0.9" }),
  parse: runOptionsFrom,
  run,
});
