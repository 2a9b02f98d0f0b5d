/**
 * A static server for the built playground on 127.0.0.1, for the tests and the bench: the files of dist/,
 * the full data set under data/fashion-mnist/ where given, and the cross-origin isolation headers unless
 * `isolation: false` (the one-thread case).
 */
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, sep } from "node:path";
import { ISOLATION_HEADERS, manifest } from "./files.ts";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

export interface StaticSite {
  url: string;
  close(): Promise<void>;
}

export interface ServeOptions {
  /** The built site (dist/). */
  root: string;
  /** Send COOP same-origin and COEP require-corp (default true). */
  isolation?: boolean;
  /** A directory with the full Fashion-MNIST files, served under data/fashion-mnist/. */
  fullData?: string;
}

/** The file under `dir` that `urlPath` names, or undefined when it escapes `dir` or does not exist. */
function fileIn(dir: string, urlPath: string): string | undefined {
  const file = normalize(join(dir, urlPath.endsWith("/") ? `${urlPath}index.html` : urlPath));
  if (file !== dir && !file.startsWith(dir + sep)) return undefined;
  return existsSync(file) && statSync(file).isFile() ? file : undefined;
}

export async function serveSite(options: ServeOptions): Promise<StaticSite> {
  const root = normalize(options.root);
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://localhost").pathname);
    const file = options.fullData && path.startsWith("/data/fashion-mnist/")
      ? fileIn(normalize(options.fullData), path.slice("/data/fashion-mnist/".length))
      : fileIn(root, path);
    if (options.isolation !== false) for (const [key, value] of Object.entries(ISOLATION_HEADERS)) res.setHeader(key, value);
    if (options.fullData && path === "/data/manifest.json") {
      res.writeHead(200, { "Content-Type": "application/json" }).end(manifest(true));
      return;
    }
    if (!file || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "Content-Type": "text/plain" }).end(`not found: ${path}\n`);
      return;
    }
    res.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream", "Content-Length": statSync(file).size, "Cache-Control": "no-store" });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
