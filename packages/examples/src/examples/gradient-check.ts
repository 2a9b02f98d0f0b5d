/**
 * Gradient check: a TwoLayerNet 784 → 50 → ReLU → 10 in float64 on a few real training images. For each
 * parameter (W1, b1, W2, b2), compares backprop's gradient with central differences
 * (f(w + h) − f(w − h)) / 2h taken element by element, and prints the mean absolute difference.
 */
import { type Tensor, noGrad, tensor } from "@tapegrad/autograd";
import { F, nn } from "@tapegrad/nn";
import { type ParsedValues, commonOptions, intOption, numberOption, stringOption } from "../lib/cli.ts";
import { MAX_TRAIN_IMAGES, checkDataFolder, datasetName, loadSplit, type DataOptions } from "../lib/data.ts";
import { UsageError } from "../lib/errors.ts";
import { checkMemory, defineExample, datasetFields, finishRun, startRun } from "../lib/example.ts";
import { countBar } from "../lib/progress.ts";

export interface GradientCheckOptions extends DataOptions {
  out?: string;
  /** Replace the run in a non-empty `out`. */
  overwrite?: boolean;
  seed: number;
  /** Training images in the batch (default 3). */
  images?: number;
  /** Hidden units (default 50). */
  hidden?: number;
  /** Step of the central differences (default 1e-5). */
  eps?: number;
  progress?: boolean;
  log?: (line: string) => void;
}

/** The two-layer network of "Deep Learning from Scratch" chapter 5, with PyTorch-style Linear layers. */
export class TwoLayerNet extends nn.Module {
  fc1: nn.Linear;
  fc2: nn.Linear;

  constructor(inputs: number, hidden: number, outputs: number) {
    super();
    this.fc1 = new nn.Linear(inputs, hidden, { dtype: "float64" });
    this.fc2 = new nn.Linear(hidden, outputs, { dtype: "float64" });
  }

  override forward(x: Tensor): Tensor {
    return this.fc2.forward(this.fc1.forward(x).relu());
  }
}

/** Central-difference gradient of `f` with respect to every element of `p`, perturbing p in place. */
export function numericalGradient(f: () => number, p: Tensor, eps: number, onProgress?: (done: number) => void): Float64Array {
  const grad = new Float64Array(p.size);
  const w = p.data;
  for (let i = 0; i < w.length; i++) {
    if (onProgress && i % 256 === 0) onProgress(i);
    const saved = w[i];
    w[i] = saved + eps;
    const plus = f();
    w[i] = saved - eps;
    const minus = f();
    w[i] = saved;
    grad[i] = (plus - minus) / (2 * eps);
  }
  return grad;
}

export interface ParameterCheck {
  name: string;
  shape: number[];
  meanAbsDiff: number;
  maxAbsDiff: number;
  meanAbsGrad: number;
}

export async function run(options: GradientCheckOptions) {
  const log = options.log ?? console.log;
  const count = options.images ?? 3;
  const hidden = options.hidden ?? 50;
  const eps = options.eps ?? 1e-5;
  const { output, started } = startRun("gradient-check", options);
  const train = await loadSplit({ ...options, limitTrain: count }, "train");
  if (train.n < count) {
    throw new UsageError(`--images ${count}: the training split from ${train.source} has only ${train.n} images`);
  }
  const size = train.rows * train.cols;
  log(`${train.name}: ${train.n} training images from ${train.source}`);

  const x = tensor(Float64Array.from(train.images.subarray(0, count * size)), { shape: [count, size] });
  const y = Array.from(train.labels.subarray(0, count));
  const net = new TwoLayerNet(size, hidden, train.classes.length);
  const lossValue = (): number => noGrad(() => F.crossEntropy(net.forward(x), y).item());

  net.zeroGrad();
  F.crossEntropy(net.forward(x), y).backward();

  const names: Record<string, string> = { "fc1.weight": "W1", "fc1.bias": "b1", "fc2.weight": "W2", "fc2.bias": "b2" };
  const checks: ParameterCheck[] = [];
  for (const [key, p] of net.namedParameters()) {
    const t0 = performance.now();
    const bar = countBar(names[key] ?? key, p.size, "elements", options.progress ?? true);
    const numeric = numericalGradient(lossValue, p, eps, bar.update);
    bar.stop();
    const backprop = p.grad!.data;
    let sumDiff = 0;
    let maxDiff = 0;
    let sumGrad = 0;
    for (let i = 0; i < numeric.length; i++) {
      const d = Math.abs(backprop[i] - numeric[i]);
      sumDiff += d;
      maxDiff = Math.max(maxDiff, d);
      sumGrad += Math.abs(backprop[i]);
    }
    const check = { name: names[key] ?? key, shape: p.shape, meanAbsDiff: sumDiff / p.size, maxAbsDiff: maxDiff, meanAbsGrad: sumGrad / p.size };
    checks.push(check);
    log(
      `${check.name.padEnd(3)} [${p.shape.join(", ")}]`.padEnd(16) +
        `mean |backprop − numerical| ${check.meanAbsDiff.toExponential(2)}   max ${check.maxAbsDiff.toExponential(2)}   ` +
        `(mean |grad| ${check.meanAbsGrad.toExponential(2)}, ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
  }
  const worst = Math.max(...checks.map((c) => c.meanAbsDiff));
  const ok = worst < 1e-7;
  const verdict = ok ? "gradients agree" : `gradients DISAGREE: worst mean difference ${worst.toExponential(2)} (the threshold is 1e-7)`;
  log(verdict);
  output.writeJson("gradient-check.json", { images: count, hidden, eps, checks });
  return finishRun(output, started, {
    example: "gradient-check",
    ...datasetFields(train),
    ok,
    ...(ok ? {} : { failed: verdict }),
    maxMeanAbsDiff: worst,
    checks: Object.fromEntries(checks.map((c) => [c.name, c.meanAbsDiff])),
  });
}

export const gradientCheck = defineExample({
  name: "gradient-check",
  summary: "Backprop vs central differences for a float64 TwoLayerNet 784→50→10 on 3 training images.",
  options: {
    dataset: commonOptions.dataset,
    data: commonOptions.data,
    out: commonOptions.out,
    overwrite: commonOptions.overwrite,
    seed: commonOptions.seed,
    images: { type: "string", valueName: "N", default: "3", description: `training images in the batch (1 to ${MAX_TRAIN_IMAGES})` },
    hidden: { type: "string", valueName: "N", default: "50", description: "hidden units" },
    eps: { type: "string", valueName: "H", default: "1e-5", description: "central-difference step" },
    "no-progress": commonOptions["no-progress"],
    help: commonOptions.help,
  },
  parse: (values: ParsedValues): GradientCheckOptions => {
    const data = stringOption(values, "data");
    checkDataFolder(data);
    const images = intOption(values, "images", { max: MAX_TRAIN_IMAGES, maxReason: `the training split has ${MAX_TRAIN_IMAGES} images` });
    const hidden = intOption(values, "hidden");
    // float64 weights, their gradients and the numerical gradient; activations for a batch of `images` rows
    checkMemory({ hidden: hidden ?? 50, batchSize: images ?? 3, bytesPerValue: 8 });
    return {
      dataset: datasetName(values.dataset),
      data,
      out: stringOption(values, "out"),
      overwrite: values.overwrite === true,
      seed: intOption(values, "seed", { min: 0, max: 2 ** 32 - 1 }) ?? 0,
      images,
      hidden,
      eps: numberOption(values, "eps"),
      progress: values["no-progress"] !== true,
    };
  },
  run,
});
