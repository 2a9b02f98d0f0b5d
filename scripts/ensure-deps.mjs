#!/usr/bin/env node
// Lets `npm start` and `npm test` work on a fresh clone: installs the pinned pnpm's dependencies from the
// lockfile when node_modules is missing or older than the lockfile. Plain Node, no dependencies.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const marker = join(root, "node_modules", ".modules.yaml");
const lock = join(root, "pnpm-lock.yaml");
const fresh = existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs;

/** Best effort: the optional native backend (OpenBLAS gemm, C loops). Without a compiler or OpenBLAS, tapegrad uses WASM. */
function buildNative() {
  try {
    execFileSync(process.execPath, [join(root, "packages", "autograd", "bin", "build-native.mjs"), "--optional"], { cwd: root, stdio: "inherit" });
  } catch {
    // the WASM and TypeScript kernels need nothing built
  }
}

if (!fresh) {
  const pm = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).packageManager; // "pnpm@x.y.z"
  console.error(`tapegrad: installing dependencies with ${pm} (first run only)`);
  const npx = process.platform === "win32" ? "npx.cmd" : "npx";
  execFileSync(npx, ["--yes", pm, "install", "--frozen-lockfile"], { cwd: root, stdio: "inherit" });
  buildNative();
} else {
  // An addon built from older sources (say, before a git pull) is rebuilt, so it never lags the C code.
  const nativeDir = join(root, "packages", "autograd", "native");
  const addon = join(nativeDir, "build", "tapegrad_blas.node");
  if (existsSync(addon)) {
    const built = statSync(addon).mtimeMs;
    const stale = readdirSync(nativeDir).some((f) => /\.[ch]$/.test(f) && statSync(join(nativeDir, f)).mtimeMs > built);
    if (stale) buildNative();
  }
}
