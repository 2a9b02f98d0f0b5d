/**
 * The playground's models and their checkpoints. The state-dict names are the Node examples' (softmax
 * regression: "linear.weight", "linear.bias"; the MLP: "0.weight", "0.bias", "2.weight", "2.bias"), so a
 * checkpoint saved by the page loads in `pnpm example mlp`'s model and the other way round.
 * No DOM here: the page's worker and the Node tests share this file.
 */
import { manualSeed, type Tensor } from "@tapegrad/autograd";
import { CheckpointError, type LoadedTensor, nn, serialize } from "@tapegrad/nn";
import { FASHION_MNIST_CLASSES, FEATURES, MODEL_TITLES, type ModelId } from "./catalog.ts";

export { FASHION_MNIST_CLASSES, FEATURES, IMAGE_SIZE, isModelId, type ModelId } from "./catalog.ts";

export interface ModelSpec {
  id: ModelId;
  title: string;
  /** The example whose checkpoints this model reads and writes (checkpoint metadata `example`). */
  example: string;
  build(options?: { hidden?: number; bias?: boolean }): nn.Module;
  /** The shape one batch of flat 784-pixel images takes on the way in. */
  inputShape(batch: number): number[];
}

export const DEFAULT_HIDDEN = 128;

/** Linear(784, hidden) → ReLU → Linear(hidden, 10), as packages/examples' buildMlp. */
function buildMlp(hidden: number, bias: boolean): nn.Module {
  return new nn.Sequential(new nn.Linear(FEATURES, hidden, { bias }), new nn.ReLU(), new nn.Linear(hidden, FASHION_MNIST_CLASSES.length, { bias }));
}

export const MODELS: Record<ModelId, ModelSpec> = {
  softmax: {
    id: "softmax",
    title: MODEL_TITLES.softmax,
    example: "softmax-regression",
    build: ({ bias = true } = {}) => new nn.SoftmaxRegression(FEATURES, FASHION_MNIST_CLASSES.length, { bias }),
    inputShape: (batch) => [batch, FEATURES],
  },
  mlp: {
    id: "mlp",
    title: MODEL_TITLES.mlp,
    example: "mlp",
    build: ({ hidden = DEFAULT_HIDDEN, bias = true } = {}) => buildMlp(hidden, bias),
    inputShape: (batch) => [batch, FEATURES],
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

/** Checkpoint bytes in the Node examples' layout: the state dict plus their metadata keys. */
export function checkpointBytes(id: ModelId, model: nn.Module, extra: Record<string, string> = {}): Uint8Array {
  const state: Record<string, Tensor> = model.stateDict();
  const hidden: Record<string, string> = id === "mlp" ? { hidden: String(state["0.weight"].shape[0]), bias: String("0.bias" in state) } : {};
  return serialize(state, { example: MODELS[id].example, dataset: "fashion-mnist", ...hidden, ...extra });
}

/**
 * The model a checkpoint's tensors fit, built and loaded: softmax regression from "linear.weight" [10, 784],
 * an MLP of any hidden width from "0.weight" [hidden, 784] and "2.weight" [10, hidden]. `source` names the
 * file in errors.
 */
export function modelFromCheckpoint(tensors: Record<string, LoadedTensor>, source: string): { id: ModelId; model: nn.Module } {
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
  } else {
    throw new CheckpointError(`${source}: not a softmax-regression or MLP checkpoint for 28×28 images (tensors: ${names.join(", ") || "none"})`);
  }
  try {
    model.loadStateDict(tensors);
  } catch (error) {
    throw new CheckpointError(`${source}: does not fit ${MODELS[id].title}: ${(error as Error).message}`, { cause: error });
  }
  return { id, model };
}
