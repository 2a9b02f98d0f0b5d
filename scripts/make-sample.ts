/**
 * Builds the examples' Fashion-MNIST sample in packages/examples/assets/fashion-mnist-sample from the full
 * dataset: the first N images of each class in file order (600 per class for train, 100 for test),
 * kept in their original order, written as gzip IDX. Deterministic: same input, same bytes.
 *
 * Usage: pnpm tsx scripts/make-sample.ts [sourceDir]   (default: Debian's /usr/share/datasets/fashion-mnist)
 */
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { idxFileNames, type Split } from "../packages/nn/src/data/image-dataset.ts";
import { readIdx, writeIdx } from "../packages/nn/src/node/idx.ts";

const sourceDir = process.argv[2] ?? "/usr/share/datasets/fashion-mnist";
const outDir = join(dirname(fileURLToPath(import.meta.url)), "..", "packages", "examples", "assets", "fashion-mnist-sample");
const perClass: Record<Split, number> = { train: 600, test: 100 };
const classes = 10;

mkdirSync(outDir, { recursive: true });
for (const split of ["train", "test"] as const) {
  const stems = idxFileNames(split);
  const find = (stem: string) => join(sourceDir, `${stem}.gz`);
  const images = readIdx(find(stems.images));
  const labels = readIdx(find(stems.labels));
  const [n, rows, cols] = images.shape;
  const pixels = rows * cols;
  const taken = new Array<number>(classes).fill(0);
  const keep: number[] = [];
  for (let i = 0; i < n; i++) {
    const label = labels.data[i];
    if (taken[label] < perClass[split]) {
      taken[label]++;
      keep.push(i);
    }
  }
  if (taken.some((t) => t !== perClass[split])) {
    throw new Error(`${split}: not enough images per class: ${taken.join(", ")}`);
  }
  const outImages = new Uint8Array(keep.length * pixels);
  const outLabels = new Uint8Array(keep.length);
  keep.forEach((src, dst) => {
    outImages.set(images.data.subarray(src * pixels, (src + 1) * pixels) as Uint8Array, dst * pixels);
    outLabels[dst] = labels.data[src];
  });
  writeIdx(join(outDir, `${stems.images}.gz`), { shape: [keep.length, rows, cols], data: outImages });
  writeIdx(join(outDir, `${stems.labels}.gz`), { shape: [keep.length], data: outLabels });
  console.log(`${split}: ${keep.length} images (${perClass[split]} per class) -> ${outDir}`);
}
