/**
 * Pictures of what a convolutional network learnt: its first layer's filters and one image's feature maps,
 * as PNG grids (each filter or map scaled to its own range, black to white).
 */
import { noGrad, tensor, type Tensor } from "@tapegrad/autograd";
import type { nn } from "@tapegrad/nn";
import { imageGridPng } from "./images.ts";

/** Each of `count` planes of `size` values from `data`, scaled to [0, 1] by its own minimum and maximum. */
function scaledPlanes(data: ArrayLike<number>, count: number, size: number, stride = size): Float32Array[] {
  const out: Float32Array[] = [];
  for (let p = 0; p < count; p++) {
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < size; i++) {
      const v = data[p * stride + i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const plane = new Float32Array(size);
    const range = hi - lo;
    for (let i = 0; i < size; i++) plane[i] = range > 0 ? (data[p * stride + i] - lo) / range : 0;
    out.push(plane);
  }
  return out;
}

/** A grid of a convolution weight's filters [O, C, kH, kW] (input channel 0 of each), enlarged. */
export function filtersPng(weight: Tensor): Buffer {
  const [outChannels, inChannels, kh, kw] = weight.shape;
  const planes = scaledPlanes(weight.data, outChannels, kh * kw, inChannels * kh * kw);
  const cols = Math.min(8, outChannels);
  return imageGridPng(planes, { rows: Math.ceil(outChannels / cols), cols, height: kh, width: kw, scale: Math.max(4, Math.round(60 / Math.max(kh, kw))) });
}

/** Nearest-neighbour resampling of a rows × cols image to h × w. */
function resample(image: ArrayLike<number>, rows: number, cols: number, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) out[y * w + x] = image[Math.floor((y * rows) / h) * cols + Math.floor((x * cols) / w)];
  }
  return out;
}

/**
 * The input image (first cell) and the feature maps [C, H, W] that the first `layers` layers of `model` make
 * of it (the model in evaluation mode; its first layer takes flat images [1, rows·cols]).
 */
export function featureMapsPng(model: nn.Sequential, layers: number, image: ArrayLike<number>, rows: number, cols: number): Buffer {
  const maps = noGrad(() => {
    let x: Tensor = tensor(Array.from(image), { shape: [1, rows * cols] });
    for (let i = 0; i < layers; i++) x = model.at(i).forward(x);
    return x;
  });
  const [, channels, h, w] = maps.shape;
  const cells = [resample(image, rows, cols, h, w), ...scaledPlanes(maps.data, channels, h * w)];
  const gridCols = Math.min(8, cells.length);
  return imageGridPng(cells, { rows: Math.ceil(cells.length / gridCols), cols: gridCols, height: h, width: w, scale: Math.max(1, Math.round(84 / Math.max(h, w))) });
}
