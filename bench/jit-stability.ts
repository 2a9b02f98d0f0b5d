/**
 * Which of tapegrad's own functions V8 deoptimizes during a training loop, and why. Runs the bench's MLP
 * step (narrow of a data set, linear, relu, linear, logSoftmax, pick, mean, neg, backward, SGD) on a small
 * synthetic problem in a child Node with --trace-deopt, for enough steps that V8 optimizes every function
 * of the step, and prints the deopts of functions declared in packages/autograd/src and packages/nn/src,
 * by function and reason. Exits 1 when one of them deoptimizes for a "wrong map": shape helpers that build
 * shapes or axis lists with Array.prototype.map hand optimized readers arrays of a second elements kind,
 * which sends them back to the compiler epoch after epoch (bench/NOTES.md, "Node flags").
 * A diagnostic of V8's behaviour, not a test: other engines have no --trace-deopt.
 *   pnpm exec tsx bench/jit-stability.ts [--steps=3000] [--flags="--interrupt-budget=4096"]
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Tensor, linear, tensor } from "../packages/autograd/src/index.ts";
import { optim } from "../packages/nn/src/index.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const arg = (name: string): string | undefined =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

/** The child's job: `steps` SGD steps of a 48 → 32 → 10 MLP on 1024 synthetic samples. */
function trainSteps(steps: number): void {
  const batch = 16, features = 48, hidden = 32, classes = 10;
  const samples = 64 * batch;
  let seed = 7;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
  const x = new Float32Array(samples * features).map(random);
  const y = Int32Array.from({ length: samples }, (_, i) => (i * 7) % classes);
  const data = new Tensor(x, [samples, features]);
  const params = [
    tensor(new Float32Array(hidden * features).map(random), { shape: [hidden, features], requiresGrad: true }),
    tensor(new Float32Array(hidden), { requiresGrad: true }),
    tensor(new Float32Array(classes * hidden).map(random), { shape: [classes, hidden], requiresGrad: true }),
    tensor(new Float32Array(classes), { requiresGrad: true }),
  ];
  const optimizer = new optim.SGD(params, { lr: 0.05 });
  let last = 0;
  for (let step = 0; step < steps; step++) {
    const start = (step * batch) % samples;
    const h = linear(data.narrow(0, start, batch), params[0], params[1]).relu();
    const loss = linear(h, params[2], params[3]).logSoftmax().pick(y.subarray(start, start + batch)).mean().neg();
    optimizer.zeroGrad();
    loss.backward();
    optimizer.step();
    last = loss.item();
  }
  process.stderr.write(`trained ${steps} steps, last loss ${last}\n`);
}

/** Names of the functions tapegrad's own source declares (function f, const f = (...) =>, methods). */
function ownFunctionNames(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".ts")) {
        const text = readFileSync(path, "utf8");
        for (const m of text.matchAll(/function\s+([A-Za-z_$][\w$]*)|(?:const|let)\s+([A-Za-z_$][\w$]*)\s*=\s*(?:\([^)]*\)|[A-Za-z_$][\w$]*)\s*=>|^\s+(?:static\s+)?([A-Za-z_$][\w$]*)\s*\([^)]*\)\s*(?::[^{]*)?\{/gm)) {
          names.add(m[1] ?? m[2] ?? m[3]);
        }
      }
    }
  };
  for (const pkg of ["autograd", "nn"]) walk(join(root, "packages", pkg, "src"));
  return names;
}

function main(): void {
  const steps = Number(arg("steps") ?? 3000);
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps: expected a positive whole number, got "${arg("steps")}"`);
  if (!process.versions.v8) {
    console.log("jit-stability: this runtime is not V8; nothing to look at");
    return;
  }
  const flags = (arg("flags") ?? "--interrupt-budget=4096").split(" ").filter(Boolean);
  const self = fileURLToPath(import.meta.url);
  const run = spawnSync(process.execPath, ["--trace-deopt", ...flags, "--import", "tsx", self, `--train=${steps}`],
    { encoding: "utf8", cwd: root, maxBuffer: 1 << 26 });
  if (run.status !== 0) throw new Error(`jit-stability: the training child failed:\n${run.stderr}`);
  process.stderr.write(run.stderr);
  const own = ownFunctionNames();
  const counts = new Map<string, number>(); // "function: reason" -> deopts
  for (const line of run.stdout.split("\n")) {
    if (!line.includes("deoptimizing")) continue;
    const name = /<JSFunction ([^ >]*)/.exec(line)?.[1] ?? "";
    if (!own.has(name)) continue;
    const reason = /reason: ([^)]*)\)/.exec(line)?.[1] ?? "?";
    const key = `${name}: ${reason}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  console.log(`Node ${flags.join(" ") || "(default flags)"}, ${steps} steps: deopts of tapegrad's own functions`);
  if (counts.size === 0) console.log("  none");
  for (const [key, n] of [...counts].sort((a, b) => b[1] - a[1])) console.log(`  ${String(n).padStart(4)}  ${key}`);
  const wrongMap = [...counts.keys()].filter((key) => key.endsWith(": wrong map"));
  if (wrongMap.length > 0) {
    console.log(`\n${wrongMap.length} function(s) deoptimized for a wrong map: a shape or axis list changed elements kind`);
    process.exitCode = 1;
  }
}

const trainArg = arg("train");
if (trainArg !== undefined) trainSteps(Number(trainArg));
else main();
