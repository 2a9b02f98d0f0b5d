/**
 * The 28×28 drawing pad: strokes of a soft round brush on a black image (Fashion-MNIST's garments are light
 * on dark), shown ten times enlarged; dropped or opened pictures are fitted into 28×28 and, when their
 * background is light (a photo on white), inverted.
 */
import { IMAGE_SIZE } from "./catalog.ts";

/** Brush radius in image pixels; intensity falls off linearly to zero at the edge. */
const BRUSH_RADIUS = 1.6;

export class DrawingPad {
  /** The image in [0, 1], row-major, what the model sees. */
  readonly pixels = new Float32Array(IMAGE_SIZE * IMAGE_SIZE);
  private readonly small: HTMLCanvasElement;
  private last: { x: number; y: number } | undefined;

  constructor(private readonly canvas: HTMLCanvasElement, private readonly onChange: (pixels: Float32Array) => void) {
    this.small = document.createElement("canvas");
    this.small.width = this.small.height = IMAGE_SIZE;
    canvas.addEventListener("pointerdown", (e) => {
      canvas.setPointerCapture(e.pointerId);
      this.last = undefined;
      this.stroke(e);
    });
    canvas.addEventListener("pointermove", (e) => {
      if (e.buttons & 1) this.stroke(e);
    });
    canvas.addEventListener("pointerup", () => (this.last = undefined));
    canvas.addEventListener("dragover", (e) => {
      e.preventDefault();
      canvas.classList.add("dragging");
    });
    canvas.addEventListener("dragleave", () => canvas.classList.remove("dragging"));
    canvas.addEventListener("drop", (e) => {
      e.preventDefault();
      canvas.classList.remove("dragging");
      const file = [...(e.dataTransfer?.files ?? [])].find((f) => f.type.startsWith("image/"));
      if (file) void this.loadImage(file);
    });
    this.render();
  }

  clear(): void {
    this.pixels.fill(0);
    this.changed();
  }

  /** Shows a 28×28 image given as bytes 0..255 or floats in [0, 1]. */
  setPixels(values: ArrayLike<number>, scale = 1): void {
    for (let i = 0; i < this.pixels.length; i++) this.pixels[i] = Math.min(1, Math.max(0, values[i] * scale));
    this.changed();
  }

  /** Fits a picture into the pad (aspect kept, centred), as grey levels. */
  async loadImage(file: Blob): Promise<void> {
    const bitmap = await createImageBitmap(file);
    const ctx = this.small.getContext("2d", { willReadFrequently: true })!;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, IMAGE_SIZE, IMAGE_SIZE);
    const scale = Math.min(IMAGE_SIZE / bitmap.width, IMAGE_SIZE / bitmap.height);
    const w = bitmap.width * scale;
    const h = bitmap.height * scale;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(bitmap, (IMAGE_SIZE - w) / 2, (IMAGE_SIZE - h) / 2, w, h);
    bitmap.close();
    const rgba = ctx.getImageData(0, 0, IMAGE_SIZE, IMAGE_SIZE).data;
    const grey = new Float32Array(IMAGE_SIZE * IMAGE_SIZE);
    for (let i = 0; i < grey.length; i++) grey[i] = (0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2]) / 255;
    // a light background (mean of the picture's own border rows and columns above one half) is inverted
    const x0 = Math.floor((IMAGE_SIZE - w) / 2);
    const y0 = Math.floor((IMAGE_SIZE - h) / 2);
    const x1 = Math.min(IMAGE_SIZE - 1, Math.ceil(x0 + w) - 1);
    const y1 = Math.min(IMAGE_SIZE - 1, Math.ceil(y0 + h) - 1);
    let border = 0;
    let count = 0;
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        if (y === y0 || y === y1 || x === x0 || x === x1) {
          border += grey[y * IMAGE_SIZE + x];
          count++;
        }
      }
    }
    if (count && border / count > 0.5) {
      for (let i = 0; i < grey.length; i++) {
        const x = i % IMAGE_SIZE;
        const y = Math.floor(i / IMAGE_SIZE);
        grey[i] = x >= x0 && x <= x1 && y >= y0 && y <= y1 ? 1 - grey[i] : 0;
      }
    }
    this.setPixels(grey);
  }

  private stroke(e: PointerEvent): void {
    const rect = this.canvas.getBoundingClientRect();
    const point = { x: ((e.clientX - rect.left) / rect.width) * IMAGE_SIZE, y: ((e.clientY - rect.top) / rect.height) * IMAGE_SIZE };
    const from = this.last ?? point;
    const steps = Math.max(1, Math.ceil(Math.hypot(point.x - from.x, point.y - from.y) / 0.5));
    for (let s = 1; s <= steps; s++) this.dab(from.x + ((point.x - from.x) * s) / steps, from.y + ((point.y - from.y) * s) / steps);
    this.last = point;
    this.changed();
  }

  private dab(cx: number, cy: number): void {
    const r = Math.ceil(BRUSH_RADIUS);
    for (let y = Math.floor(cy) - r; y <= Math.floor(cy) + r; y++) {
      for (let x = Math.floor(cx) - r; x <= Math.floor(cx) + r; x++) {
        if (x < 0 || y < 0 || x >= IMAGE_SIZE || y >= IMAGE_SIZE) continue;
        const d = Math.hypot(x + 0.5 - cx, y + 0.5 - cy);
        const ink = Math.max(0, 1 - d / BRUSH_RADIUS);
        const i = y * IMAGE_SIZE + x;
        this.pixels[i] = Math.max(this.pixels[i], ink);
      }
    }
  }

  private changed(): void {
    this.render();
    this.onChange(this.pixels);
  }

  private render(): void {
    const small = this.small.getContext("2d", { willReadFrequently: true })!;
    const image = small.createImageData(IMAGE_SIZE, IMAGE_SIZE);
    for (let i = 0; i < this.pixels.length; i++) {
      const v = Math.round(this.pixels[i] * 255);
      image.data.set([v, v, v, 255], 4 * i);
    }
    small.putImageData(image, 0, 0);
    const ctx = this.canvas.getContext("2d")!;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.small, 0, 0, this.canvas.width, this.canvas.height);
  }
}
