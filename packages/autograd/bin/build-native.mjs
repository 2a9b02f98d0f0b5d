#!/usr/bin/env node
// tapegrad-build-native: builds @tapegrad/autograd's optional native backend (native/*.c: the BLAS gemm and
// the elementwise loops) into native/build/tapegrad_blas.node inside the installed package, where autograd
// looks for it at run time, with the system C compiler and Node's own headers. Installing tapegrad never
// runs it: it is an explicit opt-in (`npx tapegrad-build-native` in a project, `pnpm build:native` in the
// repository). When it cannot build, it says why and tapegrad keeps its portable WebAssembly / TypeScript
// kernels. The addon dlopens OpenBLAS (or Accelerate) at load time, so no BLAS headers or -dev packages are
// needed to build it, only a BLAS library to use it.
//   tapegrad-build-native              exit 1 if it cannot build or load
//   tapegrad-build-native --optional   always exit 0 (for CI and scripted setups)
//   tapegrad-build-native --out FILE   build FILE instead (a read-only install); point TAPEGRAD_NATIVE_ADDON at it
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const nativeDir = join(dirname(fileURLToPath(import.meta.url)), "..", "native");
const usage = "usage: tapegrad-build-native [--optional] [--out FILE]";
let optional = false;
let out;
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  if (arg === "--optional") optional = true;
  else if (arg === "--out" && i + 1 < process.argv.length) out = resolve(process.argv[++i]);
  else if (arg === "--help" || arg === "-h") {
    console.log(usage);
    process.exit(0);
  } else {
    console.error(`tapegrad-build-native: unexpected argument ${JSON.stringify(arg)}\n${usage}`);
    process.exit(2);
  }
}
const target = out ?? join(nativeDir, "build", "tapegrad_blas.node");
const outDir = dirname(target);

function fail(message) {
  console.error(`tapegrad-build-native: ${message}`);
  console.error("tapegrad-build-native: tapegrad will use its portable WebAssembly/TypeScript gemm instead.");
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

const sources = existsSync(nativeDir) ? readdirSync(nativeDir).filter((f) => f.endsWith(".c")).sort().map((f) => join(nativeDir, f)) : [];
if (sources.length === 0) fail(`no C sources in ${nativeDir}`);

const cc = process.env.CC || "cc";
const platformFlags = process.platform === "darwin" ? ["-bundle", "-undefined", "dynamic_lookup"] : ["-shared", "-ldl"];
const temp = `${target}.tmp-${process.pid}`;
try {
  mkdirSync(outDir, { recursive: true });
} catch (error) {
  fail(`cannot create ${outDir} (${error.code ?? error.message}); build elsewhere with --out FILE and set TAPEGRAD_NATIVE_ADDON=FILE`);
}
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
  console.log(`tapegrad-build-native: built ${target}`);
  console.log(`tapegrad-build-native: BLAS ${addon.library}${addon.config ? ` (${addon.config})` : ""}`);
  if (typeof addon.axpy !== "function") throw new Error("the elementwise kernels are missing");
  if (out !== undefined) console.log(`tapegrad-build-native: set TAPEGRAD_NATIVE_ADDON=${target} for tapegrad to use it`);
  console.log("tapegrad-build-native: gemm and the large elementwise loops now use it by default; TAPEGRAD_BACKEND=wasm or js opts out.");
} catch (error) {
  rmSync(target, { force: true });
  fail(`built, but it does not load: ${error.message} — install OpenBLAS (Debian: apt-get install libopenblas0-pthread)`);
}
