#!/usr/bin/env node
// The consumer test: does what a user does, outside the workspace. Packs every publishable package with pnpm
// (which builds dist/ and rewrites workspace: versions), checks what the tarballs hold, installs them with npm
// into a temporary project, then:
//   1. compiles test/consumer/train.ts there (strict, nodenext, skipLibCheck false) and runs it with plain
//      node: training, gradcheck, a fast-check property, checkpoint files, Fashion-MNIST from a directory;
//   2. type-checks it under moduleResolution bundler too, and test/consumer/browser.ts with lib DOM and no
//      @types/node;
//   3. bundles browser.ts (autograd + the nn core) with esbuild --platform=browser, which fails on any node:
//      import, and runs the bundle in headless Chromium where there is one;
//   4. runs publint (--strict) and @arethetypeswrong/cli (--profile esm-only) on each tarball;
//   5. on Linux x64 with OpenBLAS and a C compiler: builds the native backend the documented way
//      (`npx tapegrad-build-native` in the project) and checks that gemmBackend() is then "native".
//   node scripts/consumer-test.mjs [--keep]   (--keep leaves the temporary project for a look)
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { PUBLISHED } from "./packages.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const rootPkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const keep = process.argv.includes("--keep");
const work = mkdtempSync(join(tmpdir(), "tapegrad-consumer-"));
const tarballs = join(work, "tarballs");
const project = join(work, "project");
const started = performance.now();

function log(line) {
  console.log(`consumer: ${line}`);
}

function fail(message) {
  console.error(`consumer: FAILED: ${message}`);
  if (!keep) rmSync(work, { recursive: true, force: true });
  else console.error(`consumer: the project is in ${project}`);
  process.exit(1);
}

/** Runs a command; on failure prints its output and stops. Returns stdout. */
function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: "utf8", maxBuffer: 1 << 26, ...options });
  if (result.status !== 0) {
    process.stderr.write(result.stdout ?? "");
    process.stderr.write(result.stderr ?? "");
    fail(`${command} ${args.join(" ")} exited with ${result.status ?? result.signal ?? result.error?.message}`);
  }
  return result.stdout;
}

/** run, concurrently: resolves with stdout, or prints the output and stops. */
function runAsync(command, args, options = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => {
      if (code === 0) return resolve(stdout);
      process.stderr.write(stdout + stderr);
      fail(`${command} ${args.join(" ")} exited with ${code}`);
    });
  });
}

async function step(name, fn) {
  const t = performance.now();
  await fn();
  log(`${name} ok (${((performance.now() - t) / 1000).toFixed(1)} s)`);
}

/** A command of one of the workspace's dev dependencies, as its package.json "bin" names it; run with this node. */
function binOf(pkg, command) {
  const dir = join(root, "node_modules", pkg);
  if (!existsSync(join(dir, "package.json"))) fail(`${pkg} is not installed; run pnpm install`);
  const bins = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).bin;
  return join(dir, typeof bins === "string" ? bins : bins[command]);
}
const bin = { tsc: binOf("typescript", "tsc"), publint: binOf("publint", "publint"), attw: binOf("@arethetypeswrong/cli", "attw") };

/** The pinned pnpm: on PATH when it is that version (CI installs it), else through npx. */
function pnpmCommand() {
  const version = rootPkg.packageManager.split("@")[1];
  const onPath = spawnSync("pnpm", ["--version"], { encoding: "utf8" });
  return onPath.status === 0 && onPath.stdout.trim() === version ? ["pnpm"] : ["npx", "--yes", `pnpm@${version}`];
}

mkdirSync(tarballs, { recursive: true });
mkdirSync(join(project, "src"), { recursive: true });
const packed = [];

await step("pnpm pack (builds dist/)", () => {
  const [command, ...prefix] = pnpmCommand();
  for (const dir of PUBLISHED) {
    const before = new Set(readdirSync(tarballs));
    run(command, [...prefix, "pack", "--pack-destination", tarballs], { cwd: join(root, dir) });
    const made = readdirSync(tarballs).filter((f) => !before.has(f));
    if (made.length !== 1) fail(`pnpm pack in ${dir} made ${made.length} tarballs`);
    packed.push({ dir, file: join(tarballs, made[0]), pkg: JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8")) });
  }
});

await step("tarball contents", () => {
  for (const { dir, file, pkg } of packed) {
    const entries = run("tar", ["-tzf", file]).trim().split("\n");
    const problems = [];
    for (const e of entries) {
      if (e.endsWith(".node") || e.includes("/native/build/")) problems.push(`a locally built addon: ${e}`);
      if (e.includes("/assets/") || e.endsWith(".gz")) problems.push(`a data file: ${e}`);
    }
    for (const need of ["package/package.json", "package/README.md", "package/LICENSE", "package/dist/index.js", "package/dist/index.d.ts"]) {
      if (!entries.includes(need)) problems.push(`missing ${need}`);
    }
    const manifest = run("tar", ["-xzOf", file, "package/package.json"]);
    if (manifest.includes("workspace:")) problems.push("package.json still says workspace:");
    const scripts = JSON.parse(manifest).scripts ?? {};
    for (const hook of ["preinstall", "install", "postinstall"]) if (hook in scripts) problems.push(`an install script (${hook})`);
    if (problems.length) fail(`${dir}: ${problems.join("; ")}`);
    log(`  ${pkg.name}: ${entries.length} files, ${(statSync(file).size / 1024).toFixed(0)} KiB packed`);
  }
});

await step("npm install of the tarballs", () => {
  const dependencies = Object.fromEntries(packed.map(({ file, pkg }) => [pkg.name, `file:${file}`]));
  writeFileSync(join(project, "package.json"), JSON.stringify({
    name: "tapegrad-consumer",
    private: true,
    type: "module",
    dependencies: { ...dependencies, "fast-check": rootPkg.devDependencies["fast-check"] },
    devDependencies: { "@types/node": rootPkg.devDependencies["@types/node"] },
  }, null, 2));
  run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: project });
  for (const f of ["train.ts", "browser.ts", "blobs.ts"]) copyFileSync(join(root, "test", "consumer", f), join(project, "src", f));
});

const strict = { strict: true, target: "ES2022", skipLibCheck: false, forceConsistentCasingInFileNames: true };
const configs = {
  "tsconfig.nodenext.json": { compilerOptions: { ...strict, module: "NodeNext", moduleResolution: "NodeNext", types: ["node"], rootDir: "src", outDir: "out" }, files: ["src/train.ts"] },
  "tsconfig.bundler.json": { compilerOptions: { ...strict, module: "ESNext", moduleResolution: "Bundler", types: ["node"], noEmit: true }, files: ["src/train.ts"] },
  "tsconfig.browser.json": { compilerOptions: { ...strict, module: "ESNext", moduleResolution: "Bundler", lib: ["ES2022", "DOM"], types: [], noEmit: true }, files: ["src/browser.ts"] },
};
for (const [name, config] of Object.entries(configs)) writeFileSync(join(project, name), JSON.stringify(config, null, 2));

await step("tsc: nodenext (emits the script), bundler, browser without @types/node; all with skipLibCheck false", () =>
  Promise.all(Object.keys(configs).map((name) => runAsync(process.execPath, [bin.tsc, "-p", name], { cwd: project }))));

const sample = join(root, "packages", "examples", "assets", "fashion-mnist-sample");
function trainScript() {
  const out = run(process.execPath, [join(project, "out", "train.js"), sample], { cwd: project, env: { ...process.env, TAPEGRAD_BACKEND: "" } });
  const line = out.split("\n").find((l) => l.startsWith("CONSUMER "));
  if (!line) fail(`train.js printed no CONSUMER line:\n${out}`);
  return JSON.parse(line.slice("CONSUMER ".length));
}

await step("plain node runs the training script", () => {
  const result = trainScript();
  if (result.gemmBackend === "native") fail("the native backend is active although nothing built it");
  log(`  ${JSON.stringify(result)}`);
});

let bundle = "";
await step("esbuild --platform=browser bundle of autograd and the nn core", async () => {
  const esbuild = await import(pathToFileURL(join(root, "node_modules", "esbuild", "lib", "main.js")).href);
  const outfile = join(project, "browser.js");
  let built;
  try {
    built = await esbuild.build({
      entryPoints: [join(project, "src", "browser.ts")], absWorkingDir: project, outfile,
      bundle: true, platform: "browser", format: "esm", target: "es2022", metafile: true, logLevel: "silent",
    });
  } catch (error) {
    fail(`esbuild: ${(error.errors ?? []).map((e) => `${e.text} (${e.location?.file ?? "?"})`).join("; ") || error.message}`);
  }
  const imports = Object.values(built.metafile.outputs).flatMap((o) => o.imports.map((i) => i.path));
  const inputs = Object.keys(built.metafile.inputs);
  if (imports.length) fail(`the browser bundle still imports ${imports.join(", ")}`);
  if (!inputs.some((i) => i.includes("node_modules/@tapegrad/nn/dist/"))) fail("the bundle did not take @tapegrad/nn from its dist/");
  if (inputs.some((i) => i.includes("/dist/node/"))) fail("the bundle pulled in @tapegrad/nn/node");
  if (inputs.some((i) => i.includes("node_modules/fast-check/"))) fail("the bundle pulled in fast-check (only @tapegrad/autograd/testing may)");
  bundle = readFileSync(outfile, "utf8");
  log(`  ${(bundle.length / 1024).toFixed(0)} KiB, ${inputs.length} modules, no imports left`);
});

const chromium = [process.env.CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].find((p) => p && existsSync(p));
if (chromium) {
  await step("the bundle runs in headless Chromium", () => {
    const page = join(project, "index.html");
    writeFileSync(page, `<!doctype html><html><body><script type="module">\n${bundle.replaceAll("</script", "<\\/script")}\n</script></body></html>\n`);
    const out = run(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--user-data-dir=" + join(work, "chromium"),
      "--dump-dom", pathToFileURL(page).href], { timeout: 90_000 });
    const match = /BROWSER (\{.*\})/.exec(out);
    if (!match) fail(`the page shows no result:\n${out.slice(0, 2000)}`);
    const result = JSON.parse(match[1].replace(/&quot;/g, '"').replace(/&amp;/g, "&").replace(/&lt;/g, "<").replace(/&gt;/g, ">"));
    const ok = result.backend === "wasm" && JSON.stringify(result.grad) === "[[8,12],[8,12]]" && result.accuracy > 0.9 && result.gradOk === true
      && JSON.stringify(result.restoredShape) === "[8,2]" && JSON.stringify(result.idx) === '{"shape":[2,2],"data":[1,2,3,4]}';
    if (!ok) fail(`wrong results in the browser: ${JSON.stringify(result)}`);
    log(`  ${JSON.stringify(result)}`);
  });
} else {
  log("the browser run is skipped: no Chromium (set CHROMIUM to one)");
}

await step("publint --strict and attw --profile esm-only on each tarball", () => {
  for (const { file, pkg } of packed) {
    const lint = run(process.execPath, [bin.publint, "run", file, "--strict"], { cwd: work });
    if (!lint.includes("All good!")) fail(`publint on ${pkg.name}:\n${lint}`);
    run(process.execPath, [bin.attw, file, "--profile", "esm-only", "--no-color", "--format", "table-flipped"], { cwd: work });
  }
});

/** Why the native backend cannot be built here, or "" when it must build. */
function nativeUnavailable() {
  if (process.platform !== "linux" || process.arch !== "x64") return `${process.platform}-${process.arch} is not Linux x64`;
  const blas = spawnSync("sh", ["-c", "ldconfig -p 2>/dev/null | grep -q libopenblas || ls /usr/lib/*/libopenblas.so.0 /usr/lib/libopenblas.so.0 >/dev/null 2>&1"]);
  if (blas.status !== 0) return "no OpenBLAS";
  if (spawnSync(process.env.CC || "cc", ["--version"]).status !== 0) return "no C compiler";
  return "";
}

const why = nativeUnavailable();
if (why === "") {
  await step("npx tapegrad-build-native, then gemmBackend() is \"native\"", () => {
    run("npx", ["--no-install", "tapegrad-build-native"], { cwd: project });
    const addon = join(project, "node_modules", "@tapegrad", "autograd", "native", "build", "tapegrad_blas.node");
    if (!existsSync(addon)) fail(`the addon is not where autograd looks for it (${addon})`);
    const backend = run(process.execPath, ["--input-type=module", "-e", 'import { gemmBackend } from "@tapegrad/autograd/kernels"; console.log(gemmBackend());'],
      { cwd: project, env: { ...process.env, TAPEGRAD_BACKEND: "" } }).trim();
    if (backend !== "native") fail(`gemmBackend() is ${backend} after tapegrad-build-native`);
    const result = trainScript();
    if (result.gemmBackend !== "native") fail(`the training script ran on ${result.gemmBackend}`);
    log(`  ${JSON.stringify(result)}`);
  });
} else {
  log(`the native backend check is skipped: ${why}`);
}

if (keep) log(`the project is in ${project}`);
else rmSync(work, { recursive: true, force: true });
log(`all checks passed in ${((performance.now() - started) / 1000).toFixed(1)} s`);
