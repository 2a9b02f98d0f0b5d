/** The playground's fixed facts, without the framework: the page's own bundle imports only these. */

export const IMAGE_SIZE = 28;
export const FEATURES = IMAGE_SIZE * IMAGE_SIZE;

export const FASHION_MNIST_CLASSES = [
  "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
];

/** The model choices; the CNN is the Node cnn example's network with its default options. */
export const MODEL_TITLES = {
  mlp: "MLP 784→128→ReLU→10",
  softmax: "Softmax regression 784→10",
  cnn: "CNN 2×(conv 3×3, ReLU, max-pool)→128→10 (slower)",
} as const;

export type ModelId = keyof typeof MODEL_TITLES;

export function isModelId(value: string): value is ModelId {
  return Object.hasOwn(MODEL_TITLES, value);
}

export type OptimizerId = "sgd" | "momentum" | "adam";

/** What the controls switch to when a model is chosen. */
export interface ModelDefaults {
  optimizer: OptimizerId;
  batchSize: number;
  /** The learning rate each optimizer starts from with this model. */
  lr: Record<OptimizerId, number>;
  /** Shown under the model choice. */
  note?: string;
}

/**
 * Adam at lr 0.002 and batch 128 takes the MLP past 0.85 test accuracy in about two epochs. The CNN does
 * about 40 times the MLP's arithmetic per image (conv 32→64 over 14×14 planes dominates), so it starts at
 * batch 64 (twice the steps of batch 128 for the same images: the curves move sooner) with Adam at 0.001,
 * the Node cnn example's Adam rate.
 */
export const MODEL_DEFAULTS: Record<ModelId, ModelDefaults> = {
  mlp: { optimizer: "adam", batchSize: 128, lr: { adam: 0.002, momentum: 0.05, sgd: 0.1 } },
  softmax: { optimizer: "adam", batchSize: 128, lr: { adam: 0.002, momentum: 0.05, sgd: 0.1 } },
  cnn: {
    optimizer: "adam", batchSize: 64, lr: { adam: 0.001, momentum: 0.05, sgd: 0.1 },
    note: "The CNN is slower than the MLP: each image costs about 40 times the arithmetic, so it trains a few "
      + "steps a second at batch 64 instead of hundreds, and an epoch of the full data set takes minutes.",
  },
};
