/** Grey images laid out in a PNG grid (pngjs), optionally framed in a colour per cell. */
import { PNG } from "pngjs";

export interface GridOptions {
  rows: number;
  cols: number;
  /** Image height and width in pixels (28 × 28 for MNIST-like data). */
  height: number;
  width: number;
  /** Each source pixel becomes scale × scale output pixels (default 3). */
  scale?: number;
  /** Frame colour of each cell as [r, g, b], e.g. green for a right prediction and red for a wrong one. */
  frames?: Array<[number, number, number] | undefined>;
}

export const GREEN: [number, number, number] = [40, 170, 60];
export const RED: [number, number, number] = [220, 40, 40];

/**
 * Encodes `images` (each height·width values in [0, 1], row-major) as a PNG of rows × cols cells, filled
 * row by row; unused cells stay dark grey.
 * @example writeFileSync("grid.png", imageGridPng(imgs, { rows: 4, cols: 4, height: 28, width: 28 }))
 */
export function imageGridPng(images: ArrayLike<number>[], options: GridOptions): Buffer {
  const { rows, cols, height, width, scale = 3, frames } = options;
  const frame = 2;
  const cellH = height * scale + 2 * frame;
  const cellW = width * scale + 2 * frame;
  const gap = 2;
  const outW = cols * cellW + (cols + 1) * gap;
  const outH = rows * cellH + (rows + 1) * gap;
  const png = new PNG({ width: outW, height: outH });
  const put = (x: number, y: number, r: number, g: number, b: number): void => {
    const k = (y * outW + x) * 4;
    png.data[k] = r;
    png.data[k + 1] = g;
    png.data[k + 2] = b;
    png.data[k + 3] = 255;
  };
  for (let y = 0; y < outH; y++) for (let x = 0; x < outW; x++) put(x, y, 64, 64, 64);
  for (let i = 0; i < Math.min(images.length, rows * cols); i++) {
    const img = images[i];
    const x0 = gap + (i % cols) * (cellW + gap);
    const y0 = gap + Math.floor(i / cols) * (cellH + gap);
    const [fr, fg, fb] = frames?.[i] ?? [0, 0, 0];
    for (let y = 0; y < cellH; y++) for (let x = 0; x < cellW; x++) put(x0 + x, y0 + y, fr, fg, fb);
    for (let y = 0; y < height * scale; y++) {
      for (let x = 0; x < width * scale; x++) {
        const v = img[Math.floor(y / scale) * width + Math.floor(x / scale)];
        const grey = Math.round(Math.min(1, Math.max(0, v)) * 255);
        put(x0 + frame + x, y0 + frame + y, grey, grey, grey);
      }
    }
  }
  return PNG.sync.write(png);
}

/** Example `i` of a flat N × size image array, as a view. */
export function imageAt(images: Float32Array, i: number, size: number): Float32Array {
  return images.subarray(i * size, (i + 1) * size);
}
