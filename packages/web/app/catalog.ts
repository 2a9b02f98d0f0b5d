/** The playground's fixed facts, without the framework: the page's own bundle imports only these. */

export const IMAGE_SIZE = 28;
export const FEATURES = IMAGE_SIZE * IMAGE_SIZE;

export const FASHION_MNIST_CLASSES = [
  "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
];

/**
 * The model choices. A CNN goes here as one more entry (id "cnn", input [B, 1, 28, 28], its layers'
 * state-dict names as the Node cnn example's) once @tapegrad/nn has Conv2d and MaxPool2d.
 */
export const MODEL_TITLES = {
  mlp: "MLP 784→128→ReLU→10",
  softmax: "Softmax regression 784→10",
} as const;

export type ModelId = keyof typeof MODEL_TITLES;

export function isModelId(value: string): value is ModelId {
  return Object.hasOwn(MODEL_TITLES, value);
}
