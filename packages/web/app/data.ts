/**
 * Fashion-MNIST from the page's own origin: the full IDX files under `data/fashion-mnist/` when the server
 * has them, else the sample shipped in the build under `data/sample/` (6,000 training and 1,000 test images).
 * gzip is decoded by the browser's DecompressionStream; the IDX bytes by @tapegrad/nn's parseIdx.
 */
import { TapegradError } from "@tapegrad/autograd";
import { data as nnData, type ImageDataset } from "@tapegrad/nn";
import { FASHION_MNIST_CLASSES } from "./catalog.ts";

export class DataLoadError extends TapegradError {}

export type DataChoice = "auto" | "full" | "sample";

const FOLDERS = { full: "data/fashion-mnist/", sample: "data/sample/" } as const;
const MANIFEST = "data/manifest.json";

/** The bytes at `url`, gunzipped when they are gzip (a server may also have decoded them already). */
async function fetchIdxBytes(url: URL): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new DataLoadError(`${url.pathname}: HTTP ${response.status} ${response.statusText}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  // without DecompressionStream (older browsers) parseIdx gunzips with fflate
  if (!nnData.isGzip(bytes) || typeof DecompressionStream !== "function") return bytes;
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  try {
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (error) {
    throw new DataLoadError(`${url.pathname}: gzip stream is corrupt or truncated (${(error as Error).message})`);
  }
}

async function loadSplit(folder: URL, split: nnData.Split, source: "full" | "sample"): Promise<ImageDataset> {
  const names = nnData.idxFileNames(split);
  const imagesUrl = new URL(`${names.images}.gz`, folder);
  const labelsUrl = new URL(`${names.labels}.gz`, folder);
  const [images, labels] = await Promise.all([fetchIdxBytes(imagesUrl), fetchIdxBytes(labelsUrl)]);
  return nnData.imageDataset(nnData.parseIdx(images, imagesUrl.pathname), nnData.parseIdx(labels, labelsUrl.pathname), {
    name: "fashion-mnist", split, classes: FASHION_MNIST_CLASSES, source: folder.pathname, isSample: source === "sample",
    imagesFile: imagesUrl.pathname, labelsFile: labelsUrl.pathname,
  });
}

/**
 * True when data/manifest.json says the server has the full data set: the build ships `{ "full": false }`,
 * the dev server and the preview answer for the machine they run on, and a static host that also serves the
 * four files says `true`. (No probe of a file that may be missing: that would put a 404 in the console.)
 */
async function hasFullData(baseUrl: string): Promise<boolean> {
  try {
    const response = await fetch(new URL(MANIFEST, baseUrl));
    return response.ok && ((await response.json()) as { full?: unknown }).full === true;
  } catch {
    return false;
  }
}

export async function loadFashionMnist(baseUrl: string, choice: DataChoice): Promise<{ train: ImageDataset; test: ImageDataset; source: "full" | "sample" }> {
  const source = choice === "auto" ? ((await hasFullData(baseUrl)) ? "full" : "sample") : choice;
  const folder = new URL(FOLDERS[source], baseUrl);
  const [train, test] = await Promise.all([loadSplit(folder, "train", source), loadSplit(folder, "test", source)]);
  return { train, test, source };
}
