/** What the playground's servers send besides the built files: the isolation headers and the same-origin data. */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Cross-origin isolation: with both headers `crossOriginIsolated` is true, SharedArrayBuffer exists, and
 * WebAssembly memory can be shared with Web Workers (tapegrad's and TF.js's threads). Static hosts must
 * send them on every response of the site.
 */
export const ISOLATION_HEADERS: Readonly<Record<string, string>> = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
};

export const FASHION_MNIST_FILES = [
  "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
] as const;

const here = dirname(fileURLToPath(import.meta.url));

/** Directories copied into the build (and served by the dev server) under a URL prefix. */
export function sameOriginDirs(): { prefix: string; dir: string; files: (name: string) => boolean }[] {
  const require = createRequire(join(here, "..", "package.json"));
  // the package's exports hide package.json, so find dist/ from the main entry (dist/tf-backend-wasm.node.js)
  const tfjsDist = dirname(require.resolve("@tensorflow/tfjs-backend-wasm"));
  return [
    {
      prefix: "data/sample/",
      dir: join(here, "..", "..", "examples", "assets", "fashion-mnist-sample"),
      files: (name) => name.endsWith(".gz") || name === "LICENSE",
    },
    { prefix: "tfjs/", dir: tfjsDist, files: (name) => name.endsWith(".wasm") },
  ];
}

/**
 * The full Fashion-MNIST served under `data/fashion-mnist/` by the dev server and the preview:
 * $TAPEGRAD_WEB_DATA, else Debian's dataset-fashion-mnist; undefined when neither has the four files.
 */
export function fullDataDir(env: Record<string, string | undefined> = process.env): string | undefined {
  const dir = env.TAPEGRAD_WEB_DATA || "/usr/share/datasets/fashion-mnist";
  return FASHION_MNIST_FILES.every((name) => existsSync(join(dir, name))) ? dir : undefined;
}

/** The text of data/manifest.json. */
export function manifest(full: boolean): string {
  return `${JSON.stringify({ full })}\n`;
}
