#!/usr/bin/env node
// Builds the optional native backend (packages/autograd/native/*.c: the BLAS gemm and the elementwise loops) into
// packages/autograd/native/build/tapegrad_blas.node with the system C compiler and Node's own headers.
// Best effort and never part of `pnpm install`: when it cannot build, it says why and tapegrad keeps its
// portable WebAssembly / TypeScript kernels. The addon dlopens OpenBLAS (or Accelerate) at load time, so
// no BLAS headers or -dev packages are needed to build it, only a BLAS library to use it.
//   node scripts/build-native.mjs             exit 1 if it cannot build or load
//   node scripts/build-native.mjs --optional  always exit 0 (for CI and scripted setups)
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const nativeDir = join(root, "packages", "autograd", "native");
const sources = ["blas_gemm.c", "elementwise.c", "helper.c", "tile_gemm.c"].map((file) => join(nativeDir, file));
const outDir = join(nativeDir, "build");
const target = join(outDir, "tapegrad_blas.node");
const optional = process.argv.includes("--optional");

function fail(message) {
  console.error(`build:native: ${message}`);
  console.error("build:native: tapegrad will use its portable WebAssembly/TypeScript gemm instead.");
  process.exit(optional ? 0 : 1);
}

if (process.platform === "win32") fail("the native backend is built only on Linux and macOS");

/** Node's own headers: next to the binary (distribution and Debian layouts), npm's nodedir, node-gyp's cache. */
function findNodeHeaders() {
  const version = process.versions.node;
  const home = process.env.HOME ?? "";
  const dirs = [
    join(dirname(process.execPath), "..", "include", "node"),
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, "include", "node"),
    home && join(home, ".cache", "node-gyp", version, "include", "node"),
    home && join(home, "Library", "Caches", "node-gyp", version, "include", "node"),
    "/usr/include/node",
    "/usr/local/include/node",
  ].filter(Boolean);
  return dirs.find((d) => existsSync(join(d, "node_api.h")));
}

const headers = findNodeHeaders();
if (!headers) fail("Node's headers (node_api.h) were not found; install them (Debian: nodejs-dev / libnode-dev) or run `npx node-gyp install`");

const cc = process.env.CC || "cc";
const platformFlags = process.platform === "darwin" ? ["-bundle", "-undefined", "dynamic_lookup"] : ["-shared", "-ldl"];
const temp = `${target}.tmp-${process.pid}`;
mkdirSync(outDir, { recursive: true });
try {
  // NOTE: -ffp-contract=off keeps a*x + y unfused, so the loops round exactly as the TypeScript kernels do;
  // -fno-math-errno lets sqrt vectorize (it changes no result, only errno).
  execFileSync(cc, ["-O3", "-fPIC", "-std=c11", "-ffp-contract=off", "-fno-math-errno", "-pthread", "-Wall", "-I", headers, "-I", nativeDir, ...sources,
    "-o", temp, ...platformFlags, "-lm"],
    { stdio: ["ignore", "inherit", "inherit"] });
} catch (error) {
  rmSync(temp, { force: true });
  fail(`compiling with ${cc} failed (${error.code === "ENOENT" ? `${cc} not found` : error.message.split("\n")[0]})`);
}
renameSync(temp, target);

// Load it once here, so a missing BLAS is reported at build time rather than silently skipped later.
try {
  const addon = createRequire(import.meta.url)(target);
  const a = Float64Array.from([1, 2, 3, 4, 5, 6]);
  const b = Float64Array.from([7, 8, 9, 10, 11, 12]);
  const c = new Float64Array(4);
  addon.gemm(false, false, 2, 2, 3, a, 0, 3, b, 0, 2, c, 0, 2, 0);
  if (c.join() !== "58,64,139,154") throw new Error(`wrong product ${c.join()}`);
  console.log(`build:native: built ${target}`);
  console.log(`build:native: BLAS ${addon.library}${addon.config ? ` (${addon.config})` : ""}`);
  if (typeof addon.axpy !== "function") throw new Error("the elementwise kernels are missing");
  console.log("build:native: gemm and the large elementwise loops now use it by default; TAPEGRAD_BACKEND=wasm or js opts out.");
} catch (error) {
  rmSync(target, { force: true });
  fail(`built, but it does not load: ${error.message} — install OpenBLAS (Debian: apt-get install libopenblas0-pthread)`);
}
