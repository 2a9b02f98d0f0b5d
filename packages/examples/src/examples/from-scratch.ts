/**
 * The MLP of `mlp.ts` written from scratch with Tensor ops only, as in a from-scratch tutorial: parameters
 * are plain tensors, softmax is exp / sum, cross-entropy is −log of the picked probability, and SGD is a loop
 * over the parameters. No nn modules, no F, no optimizer.
 */
import { type Tensor, noGrad, randn, zeros } from "@tapegrad/autograd";
import { DataLoader } from "@tapegrad/nn";
import { type ParsedValues, commonOptions, intOption, withDefaults } from "../lib/cli.ts";
import { describeData, loadSplits } from "../lib/data.ts";
import {
  defineExample, type RunOptions, checkMemory, datasetFields, finishRun, trainingFields, runOptionsFrom, startRun, trainingSettings,
} from "../lib/example.ts";
import { predict } from "../lib/train.ts";
import { TrainingRun } from "../lib/training-run.ts";

export interface FromScratchOptions extends RunOptions {
  hidden?: number;
}

/** Marks a freshly made tensor as a parameter: backward() will fill its .grad. */
function param(t: Tensor): Tensor {
  return t.requiresGrad_();
}

/** softmax(X)ᵢⱼ = exp(Xᵢⱼ) / Σₖ exp(Xᵢₖ), row by row. */
function softmax(X: Tensor): Tensor {
  // NOTE: no max subtraction, as in the tutorial; fine while logits stay well below 88 (float32 exp overflow)
  const e = X.exp();
  return e.div(e.sum(1, true));
}

/** −log of each row's probability of its true class: [B, C] probabilities, [B] labels → [B] losses. */
function crossEntropy(yHat: Tensor, y: Tensor): Tensor {
  return yHat.pick(y, 1).log().neg();
}

/** One step of plain SGD on every parameter, then clears the gradients. */
function sgd(params: Tensor[], lr: number): void {
  for (const p of params) {
    if (!p.grad) continue;
    const w = p.data;
    const g = p.grad.data;
    for (let i = 0; i < w.length; i++) w[i] -= lr * g[i];
    p.grad = null;
  }
}

export async function run(options: FromScratchOptions) {
  const log = options.log ?? console.log;
  const hidden = options.hidden ?? 128;
  const settings = { ...trainingSettings(options), hidden };
  const { output, started, resume } = startRun("from-scratch", options, settings);
  const { train, test } = await loadSplits(options);
  log(describeData(train, test));

  const inputs = train.rows * train.cols;
  const outputs = train.classes.length;
  // weights ~ N(0, 0.01²) and zero biases, as the tutorial initialises them
  const W1 = param(noGrad(() => randn([inputs, hidden]).mul(0.01)));
  const b1 = param(zeros([hidden]));
  const W2 = param(noGrad(() => randn([hidden, outputs]).mul(0.01)));
  const b2 = param(zeros([outputs]));
  const params = [W1, b1, W2, b2];

  const net = (X: Tensor): Tensor => X.matmul(W1).add(b1).relu().matmul(W2).add(b2);

  const lossPerSample = (logits: Tensor, y: Tensor): Tensor => crossEntropy(softmax(logits), y);

  const loader = new DataLoader(train, { batchSize: options.batchSize, shuffle: true, seed: options.seed });
  // checkpoints every epoch, stops on NaN, saves on Ctrl-C, resumes (see lib/training-run.ts)
  const run = new TrainingRun({
    ...options, example: "from-scratch", output, log, resume, settings, dataFolder: options.data, loader, data: { train, test },
    model: { W1, b1, W2, b2 }, metadata: { dataset: train.name, hidden: String(hidden) },
    title: `MLP from scratch 784-${hidden}-10 on ${train.name}`,
  });
  for (let epoch = run.firstEpoch; epoch <= options.epochs; epoch++) {
    for (const [X, y] of run.batches(epoch)) {
      const logits = net(X);
      const loss = lossPerSample(logits, y).mean();
      for (const p of params) p.grad = null;
      loss.backward();
      sgd(params, options.lr);
      await run.stepDone(loss, logits, y);
    }
    run.endEpoch(predict({ forward: net }, test, { lossPerSample }));
  }

  const { history, nonFinite } = run.finish();
  const last = history[history.length - 1];
  return finishRun(output, started, {
    example: "from-scratch",
    ...datasetFields(train),
    epochs: options.epochs,
    hidden,
    ...trainingFields(last, resume, nonFinite),
  });
}

export const fromScratch = defineExample({
  name: "from-scratch",
  summary: "The same MLP with Tensor ops only (matmul, relu, exp, sum, div, log, pick) and a hand-written SGD loop.",
  options: {
    ...withDefaults(commonOptions, { epochs: "10", "batch-size": "64", lr: "0.1" }),
    hidden: { type: "string", valueName: "N", default: "128", description: "hidden units" },
  },
  parse: (values: ParsedValues) => {
    const options = runOptionsFrom(values);
    const hidden = intOption(values, "hidden") ?? 128;
    checkMemory({ hidden, batchSize: options.batchSize });
    return { ...options, hidden };
  },
  run,
});
