/**
 * The playground's models and their checkpoints. The state-dict names are the Node examples' (softmax
 * regression: "linear.weight", "linear.bias"; the MLP: "0.weight", "0.bias", "2.weight", "2.bias"; the CNN:
 * "1.weight", "1.bias", "4.weight", "4.bias", "8.weight", "8.bias", "10.weight", "10.bias"), so a checkpoint
 * saved by the page loads in `pnpm example mlp`'s (or `cnn`'s) model and the other way round.
 * No DOM here: the page's worker and the Node tests share this file.
 */
import { manualSeed, type Tensor } from "@tapegrad/autograd";
import { CheckpointError, type LoadedTensor, nn, serialize } from "@tapegrad/nn";
import { FASHION_MNIST_CLASSES, FEATURES, IMAGE_SIZE, MODEL_TITLES, type ModelId } from "./catalog.ts";

export { FASHION_MNIST_CLASSES, FEATURES, IMAGE_SIZE, isModelId, type ModelId } from "./catalog.ts";

export interface ModelSpec {
  id: ModelId;
  title: string;
  /** The example whose checkpoints this model reads and writes (checkpoint metadata `example`). */
  example: string;
  build(options?: ModelOptions): nn.Module;
  /** The shape one batch of flat 784-pixel images takes on the way in. */
  inputShape(batch: number): number[];
  /** Test images per forward pass of an evaluation (bounds the activations' memory). */
  evalBatch: number;
}

/** The sizes a checkpoint may choose; each model reads those it has. */
export interface ModelOptions {
  /** MLP and CNN: units of the hidden Linear layer. */
  hidden?: number;
  /** MLP and softmax regression: Linear layers with a bias. */
  bias?: boolean;
  /** CNN: output channels of the two convolutions. */
  channels?: [number, number];
  /** CNN: BatchNorm2d after each convolution (`pnpm example cnn --batchnorm`). */
  batchnorm?: boolean;
  /** CNN: dropout probability before the last layer, 0 for none (`--dropout P`). */
  dropout?: number;
}

export const DEFAULT_HIDDEN = 128;

/** Linear(784, hidden) → ReLU → Linear(hidden, 10), as packages/examples' buildMlp. */
function buildMlp(hidden: number, bias: boolean): nn.Module {
  return new nn.Sequential(new nn.Linear(FEATURES, hidden, { bias }), new nn.ReLU(), new nn.Linear(hidden, FASHION_MNIST_CLASSES.length, { bias }));
}

/**
 * The Node cnn example's network (packages/examples' buildCnn, for 28×28 images and 10 classes), layer for
 * layer, so the state-dict names agree: it takes flat images [B, 784] and its first layer, Unflatten, makes
 * them [B, 1, 28, 28].
 */
function buildCnn({ channels: [c1, c2] = [32, 64], hidden = DEFAULT_HIDDEN, batchnorm = false, dropout = 0 }: ModelOptions): nn.Sequential {
  const layers: nn.Module[] = [new nn.Unflatten(1, [1, IMAGE_SIZE, IMAGE_SIZE]), new nn.Conv2d(1, c1, 3, { padding: 1 })];
  if (batchnorm) layers.push(new nn.BatchNorm2d(c1));
  layers.push(new nn.ReLU(), new nn.MaxPool2d(2), new nn.Conv2d(c1, c2, 3, { padding: 1 }));
  if (batchnorm) layers.push(new nn.BatchNorm2d(c2));
  const pooled = Math.floor(IMAGE_SIZE / 4);
  layers.push(new nn.ReLU(), new nn.MaxPool2d(2), new nn.Flatten(), new nn.Linear(c2 * pooled * pooled, hidden), new nn.ReLU());
  if (dropout > 0) layers.push(new nn.Dropout(dropout));
  layers.push(new nn.Linear(hidden, FASHION_MNIST_CLASSES.length));
  return new nn.Sequential(...layers);
}

export const MODELS: Record<ModelId, ModelSpec> = {
  softmax: {
    id: "softmax",
    title: MODEL_TITLES.softmax,
    example: "softmax-regression",
    build: ({ bias = true } = {}) => new nn.SoftmaxRegression(FEATURES, FASHION_MNIST_CLASSES.length, { bias }),
    inputShape: (batch) => [batch, FEATURES],
    evalBatch: 1000,
  },
  mlp: {
    id: "mlp",
    title: MODEL_TITLES.mlp,
    example: "mlp",
    build: ({ hidden = DEFAULT_HIDDEN, bias = true } = {}) => buildMlp(hidden, bias),
    inputShape: (batch) => [batch, FEATURES],
    evalBatch: 1000,
  },
  cnn: {
    id: "cnn",
    title: MODEL_TITLES.cnn,
    example: "cnn",
    build: (options = {}) => buildCnn(options),
    inputShape: (batch) => [batch, FEATURES],
    // the first layer's output is 100 KB an image (32 planes of 28×28 floats); the time per image is the
    // same from 32 to 200 images a batch (Chromium, the 1,000 sample test images: 1.8-2.1 s)
    evalBatch: 100,
  },
};

/** A fresh model with its weights drawn from `seed`. */
export function createModel(id: ModelId, seed: number): nn.Module {
  manualSeed(seed);
  return MODELS[id].build();
}

/** One line on a model: its layers and parameter count. */
export function describeModel(id: ModelId, model: nn.Module): string {
  const shapes = Object.entries(model.stateDict()).map(([name, t]) => `${name} [${t.shape.join("×")}]`);
  return `${MODELS[id].title}: ${model.numParameters().toLocaleString("en-US")} parameters (${shapes.join(", ")})`;
}

/** The options a CNN was built with, read from its layers. */
function cnnOptionsOf(model: nn.Module): { batchnorm: boolean; dropout: number } {
  let batchnorm = false;
  let dropout = 0;
  model.apply((m) => {
    if (m instanceof nn.BatchNorm2d) batchnorm = true;
    if (m instanceof nn.Dropout) dropout = m.p;
  });
  return { batchnorm, dropout };
}

/** Checkpoint bytes in the Node examples' layout: the state dict plus their metadata keys. */
export function checkpointBytes(id: ModelId, model: nn.Module, extra: Record<string, string> = {}): Uint8Array {
  const state: Record<string, Tensor> = model.stateDict();
  let sizes: Record<string, string> = {};
  if (id === "mlp") sizes = { hidden: String(state["0.weight"].shape[0]), bias: String("0.bias" in state) };
  if (id === "cnn") {
    const { batchnorm, dropout } = cnnOptionsOf(model);
    sizes = { batchnorm: String(batchnorm), dropout: String(dropout) };
  }
  return serialize(state, { example: MODELS[id].example, dataset: "fashion-mnist", ...sizes, ...extra });
}

/**
 * The CNN a checkpoint's tensors describe, as `pnpm example cnn` saves it with any options: the channels
 * from "1.weight" [c1, 1, 3, 3] and the second convolution's weight, batch norm when "2.running_mean" is
 * there (the layers after it then move by one, two after the second convolution), dropout when the last
 * Linear layer sits one index further (its probability from the metadata, else PyTorch's default 0.5).
 */
function cnnOptionsFrom(tensors: Record<string, LoadedTensor>, metadata: Record<string, string>): ModelOptions {
  const batchnorm = "2.running_mean" in tensors;
  const conv2 = batchnorm ? 5 : 4;
  const fc1 = batchnorm ? 10 : 8;
  const dropout = `${fc1 + 3}.weight` in tensors;
  const p = Number(metadata.dropout);
  return {
    channels: [tensors["1.weight"].shape[0], tensors[`${conv2}.weight`]?.shape[0] ?? 0],
    hidden: tensors[`${fc1}.weight`]?.shape[0] ?? 0,
    batchnorm,
    dropout: dropout ? (p > 0 && p < 1 ? p : 0.5) : 0,
  };
}

/**
 * The model a checkpoint's tensors fit, built and loaded: softmax regression from "linear.weight" [10, 784],
 * an MLP of any hidden width from "0.weight" [hidden, 784] and "2.weight" [10, hidden], the CNN (any widths,
 * batch norm, dropout) from "1.weight" [channels, 1, 3, 3]. `source` names the file in errors; `metadata`
 * (the file's) gives a CNN's dropout probability.
 */
export function modelFromCheckpoint(
  tensors: Record<string, LoadedTensor>, source: string, metadata: Record<string, string> = {},
): { id: ModelId; model: nn.Module } {
  const names = Object.keys(tensors).sort();
  const shapeOf = (name: string): number[] | undefined => tensors[name]?.shape;
  let id: ModelId;
  let model: nn.Module;
  if (shapeOf("linear.weight")) {
    id = "softmax";
    model = MODELS.softmax.build({ bias: "linear.bias" in tensors });
  } else if (shapeOf("0.weight") && shapeOf("2.weight")) {
    id = "mlp";
    model = MODELS.mlp.build({ hidden: shapeOf("0.weight")![0], bias: "0.bias" in tensors });
  } else if (shapeOf("1.weight")?.length === 4) {
    id = "cnn";
    const options = cnnOptionsFrom(tensors, metadata);
    if (!options.channels!.every((c) => c > 0) || !(options.hidden! > 0)) {
      throw new CheckpointError(`${source}: a convolution "1.weight" but not the cnn example's layers (tensors: ${names.join(", ")})`);
    }
    model = MODELS.cnn.build(options);
  } else {
    throw new CheckpointError(`${source}: not a softmax-regression, MLP or CNN checkpoint for 28×28 images (tensors: ${names.join(", ") || "none"})`);
  }
  try {
    model.loadStateDict(tensors);
  } catch (error) {
    throw new CheckpointError(`${source}: does not fit ${MODELS[id].title}: ${(error as Error).message}`, { cause: error });
  }
  return { id, model };
}
