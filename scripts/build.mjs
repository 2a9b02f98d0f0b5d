#!/usr/bin/env node
// Builds the publishable packages to dist/ (ESM .js, .d.ts, declaration and source maps) with each one's
// tsconfig.build.json, after removing its old dist/. Dependencies first: nn's types are checked against
// autograd's built .d.ts, as a user's would be.
//   node scripts/build.mjs              every publishable package, in dependency order
//   node scripts/build.mjs packages/nn  the named package folders only (their dependencies must be built)
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PUBLISHED } from "./packages.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

// As a package's prepack: only pnpm rewrites the workspace: versions of the manifests; an npm-made tarball
// would keep them and fail to install.
const agent = process.env.npm_config_user_agent ?? "";
if (process.env.npm_lifecycle_event === "prepack" && !agent.startsWith("pnpm/")) {
  console.error(`build: pack and publish with pnpm (pnpm pack, pnpm publish), not ${agent.split(" ")[0] || "this tool"}: it leaves workspace: versions in package.json`);
  process.exit(1);
}

const tsc = createRequire(join(root, "package.json")).resolve("typescript/bin/tsc");
const dirs = process.argv.length > 2 ? process.argv.slice(2).map((d) => resolve(d)) : PUBLISHED.map((d) => join(root, d));
for (const dir of dirs) {
  const name = relative(root, dir) || ".";
  rmSync(join(dir, "dist"), { recursive: true, force: true });
  const started = performance.now();
  try {
    execFileSync(process.execPath, [tsc, "-p", join(dir, "tsconfig.build.json")], { cwd: dir, stdio: "inherit" });
  } catch {
    console.error(`build: ${name} failed`);
    process.exit(1);
  }
  // tsc rewrites the .ts of relative imports, not of module workers' `new URL("./x.ts", import.meta.url)`
  for (const file of readdirSync(join(dir, "dist"), { recursive: true })) {
    if (!String(file).endsWith(".js")) continue;
    const path = join(dir, "dist", String(file));
    const text = readFileSync(path, "utf8");
    const fixed = text.replace(/new URL\((["'])(\.{1,2}\/[^"']+)\.ts\1, import\.meta\.url\)/g, "new URL($1$2.js$1, import.meta.url)");
    if (fixed !== text) writeFileSync(path, fixed);
  }
  console.log(`build: ${name} -> ${name}/dist (${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
