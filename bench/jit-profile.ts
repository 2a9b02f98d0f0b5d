/**
 * What V8's optimizing compiler does during the bench's MLP epochs: per epoch, the functions TurboFan
 * compiled (with the compile job's time, which runs on a background thread and competes with the gemm
 * helper for the second core) and the functions deoptimized, with the reason. Trains in a child Node with
 * --trace-opt --trace-deopt; the child writes V8's trace and its epoch markers to the same stdout, line
 * buffered through `stdbuf` (coreutils) so the two stay in order. Also counts each epoch's minor page
 * faults: memory the process touches for the first time, such as a young generation that a larger
 * --min-semi-space-size makes V8 fill for the first time over the first epochs.
 *   pnpm exec tsx bench/jit-profile.ts [--batch=128] [--layers=784,128,10] [--epochs=6] [--list] [--flags="--interrupt-budget=8192"]
 * --list also prints each compile and deopt; --flags replaces the Node flags of `npm start` (TRAINING_FLAGS).
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { TRAINING_FLAGS } from "./tools/tapegrad.ts";

const { values } = parseArgs({ options: {
  batch: { type: "string", default: "128" }, layers: { type: "string", default: "784,128,10" },
  epochs: { type: "string", default: "6" }, list: { type: "boolean", default: false },
  flags: { type: "string" }, child: { type: "boolean", default: false },
} });
const batch = Number(values.batch), epochs = Number(values.epochs);
const MARK = "jit-profile epoch";

if (values.child) {
  const api = await import("../packages/autograd/src/index.ts");
  const { epochTrainer } = await import("./tools/tapegrad.ts");
  const { mlpEpochWorkload } = await import("./workloads.ts");
  const run = await epochTrainer(api, { ...mlpEpochWorkload(batch), layers: values.layers.split(",").map(Number) });
  console.log(`${MARK} 0 setup`);
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const faults = process.resourceUsage().minorPageFault;
    const start = performance.now();
    run();
    const ms = (performance.now() - start).toFixed(0);
    console.log(`${MARK} ${epoch} ${ms} ${process.resourceUsage().minorPageFault - faults}`);
  }
} else {
  const script = fileURLToPath(import.meta.url);
  const flags = values.flags === undefined ? TRAINING_FLAGS : values.flags.split(" ").filter(Boolean);
  const node = [...flags, "--trace-opt", "--trace-deopt", "--import", "tsx", script, "--child",
    `--batch=${batch}`, `--layers=${values.layers}`, `--epochs=${epochs}`];
  const withStdbuf = spawnSync("stdbuf", ["--version"]).status === 0;
  const child = withStdbuf
    ? spawnSync("stdbuf", ["-oL", process.execPath, ...node], { encoding: "utf8", maxBuffer: 1 << 28 })
    : spawnSync(process.execPath, node, { encoding: "utf8", maxBuffer: 1 << 28 });
  if (child.status !== 0) {
    console.error(`jit-profile: the training child failed (${child.status}):\n${child.stderr}`);
    process.exit(1);
  }
  if (!withStdbuf) console.log("(no stdbuf here: V8's trace may land an epoch late)");
  interface Epoch { ms: string; faults: string; compiles: number; compileMs: number; top: [string, number][]; deopts: string[] }
  const epochsSeen: Epoch[] = [];
  let current: Epoch | undefined; // undefined until setup ends: module loading and data are not counted
  let pending: Epoch = { ms: "", faults: "", compiles: 0, compileMs: 0, top: [], deopts: [] };
  const fn = (line: string) => { const name = /<JSFunction ([^ >]*)/.exec(line)?.[1]; return !name || name.startsWith("(") ? "(anonymous)" : name; };
  for (const line of child.stdout.split("\n")) {
    if (line.startsWith(MARK)) {
      const [, , number, ms, faults] = line.split(" ");
      if (number !== "0") {
        pending.ms = ms;
        pending.faults = faults;
        epochsSeen.push(pending);
      }
      current = pending = { ms: "", faults: "", compiles: 0, compileMs: 0, top: [], deopts: [] };
      continue;
    }
    if (!current) continue;
    const compiled = /^\[completed compiling .*took ([\d.]+), ([\d.]+), ([\d.]+) ms\]/.exec(line);
    if (compiled) {
      const ms = Number(compiled[1]) + Number(compiled[2]) + Number(compiled[3]);
      current.compiles++;
      current.compileMs += ms;
      current.top.push([fn(line) + (line.includes(" OSR ") ? " (OSR)" : ""), ms]);
      if (values.list) console.log(`epoch ${epochsSeen.length + 1}: compiled ${fn(line)} in ${ms.toFixed(1)} ms`);
    } else if (line.includes("deoptimizing")) {
      const reason = /reason: ([^)]*)\)/.exec(line)?.[1] ?? "?";
      current.deopts.push(`${fn(line)} (${reason})`);
      if (values.list) console.log(`epoch ${epochsSeen.length + 1}: deoptimized ${fn(line)}: ${reason}`);
    }
  }
  console.log(`epoch of ${values.layers.replaceAll(",", "-")}, batch ${batch}, node ${flags.join(" ") || "(no flags)"}; compile times are the jobs' wall time on V8's threads`);
  console.log("| epoch | wall ms | page faults | TurboFan compiles | compile ms | longest | deopts |");
  console.log("| ---: | ---: | ---: | ---: | ---: | --- | --- |");
  epochsSeen.forEach((e, i) => {
    const top = e.top.sort((a, b) => b[1] - a[1]).slice(0, 3).map(([name, ms]) => `${name} ${ms.toFixed(0)}`).join(", ");
    console.log(`| ${i + 1} | ${e.ms} | ${e.faults} | ${e.compiles} | ${e.compileMs.toFixed(0)} | ${top} | ${e.deopts.join(", ")} |`);
  });
}
