/**
 * The playground's Vite config (`pnpm web`, `pnpm web:build`, `vite preview packages/web`).
 *
 * - `@tapegrad/*` resolve to the workspace's sources, as the repository's tsconfig paths say, so the page
 *   always runs the code in this tree (no `pnpm build` first).
 * - The dev server and the preview send the two cross-origin isolation headers: with them the page gets
 *   SharedArrayBuffer, and tapegrad's WebAssembly gemm (and TF.js's, on the bench page) can use threads.
 * - Same-origin files (`sameOriginFiles`): the shipped Fashion-MNIST sample under `data/sample/` and TF.js's
 *   wasm binaries under `tfjs/` are served in dev and copied into the build; the full data set is served
 *   under `data/fashion-mnist/` by the dev server and the preview when the machine has it.
 */
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { defineConfig, type Plugin } from "vite";
import { ISOLATION_HEADERS, fullDataDir, manifest, sameOriginDirs } from "./scripts/files.ts";

const repo = fileURLToPath(new URL("../../", import.meta.url));

/** `@tapegrad/autograd` → packages/autograd/src/index.ts, ... (the repository's tsconfig.json paths). */
function sourceAliases(): { find: RegExp; replacement: string }[] {
  const file = join(repo, "tsconfig.json");
  const { config, error } = ts.readConfigFile(file, ts.sys.readFile);
  if (error) throw new Error(ts.flattenDiagnosticMessageText(error.messageText, "\n"));
  const paths: Record<string, string[]> = config.compilerOptions.paths;
  return Object.entries(paths).map(([name, [target]]) => ({
    find: new RegExp(`^${name.replace(/[/.]/g, "\\$&")}$`),
    replacement: join(repo, target),
  }));
}

type Next = (error?: unknown) => void;

/** Serves `<prefix><name>` from a directory's plain files (no listing, no subfolders), with the isolation headers. */
function serveDir(prefix: string, dir: string) {
  return (req: IncomingMessage, res: ServerResponse, next: Next): void => {
    const path = decodeURIComponent((req.url ?? "").split("?")[0]);
    const at = path.indexOf(prefix);
    if (at < 0 || (req.method !== "GET" && req.method !== "HEAD")) return next();
    const name = path.slice(at + prefix.length);
    const file = join(dir, name);
    if (!/^[\w.-]+$/.test(name) || !existsSync(file) || !statSync(file).isFile()) return next();
    res.setHeader("Content-Type", name.endsWith(".wasm") ? "application/wasm" : "application/octet-stream");
    res.setHeader("Content-Length", statSync(file).size);
    for (const [key, value] of Object.entries(ISOLATION_HEADERS)) res.setHeader(key, value);
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  };
}

/** data/manifest.json: whether data/fashion-mnist/ has the full data set (the page reads it first). */
function serveManifest(full: boolean) {
  return (req: IncomingMessage, res: ServerResponse, next: Next): void => {
    if (!(req.url ?? "").split("?")[0].endsWith("/data/manifest.json")) return next();
    for (const [key, value] of Object.entries(ISOLATION_HEADERS)) res.setHeader(key, value);
    res.setHeader("Content-Type", "application/json");
    res.end(manifest(full));
  };
}

function sameOriginFiles(): Plugin {
  const copied = sameOriginDirs();
  const full = fullDataDir();
  const install = (middlewares: { use(fn: ReturnType<typeof serveDir>): void }): void => {
    middlewares.use(serveManifest(full !== undefined));
    if (full) middlewares.use(serveDir("/data/fashion-mnist/", full));
    for (const { prefix, dir } of copied) middlewares.use(serveDir(`/${prefix}`, dir));
  };
  return {
    name: "tapegrad-same-origin-files",
    configureServer: (server) => install(server.middlewares),
    configurePreviewServer: (server) => install(server.middlewares),
    generateBundle() {
      // a static host that adds the four files to data/fashion-mnist/ sets "full": true here
      this.emitFile({ type: "asset", fileName: "data/manifest.json", source: manifest(false) });
      for (const { prefix, dir, files } of copied) {
        for (const name of readdirSync(dir).filter(files)) {
          this.emitFile({ type: "asset", fileName: `${prefix}${name}`, source: readFileSync(join(dir, name)) });
        }
      }
    },
  };
}

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  appType: "mpa",
  resolve: { alias: sourceAliases() },
  plugins: [sameOriginFiles()],
  server: { headers: ISOLATION_HEADERS },
  preview: { headers: ISOLATION_HEADERS },
  worker: {
    format: "es",
    // NOTE: worker bundles are not minified: TF.js's threaded wasm backend (the bench page) starts its threads
    // from the source text of its Emscripten factory (`factory.toString()`), run outside the bundle; renamed
    // variables fail there with "e is not defined", and compressing drops the factory's
    // `typeof _scriptDir !== "undefined"` guard ("_scriptDir is not defined").
    rolldownOptions: { output: { minify: false } },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    rolldownOptions: {
      input: {
        index: fileURLToPath(new URL("./index.html", import.meta.url)),
        bench: fileURLToPath(new URL("./bench.html", import.meta.url)),
      },
    },
  },
});
