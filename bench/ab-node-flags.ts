/**
 * A/B of Node flag sets on the bench's MLP epoch, timed exactly as `pnpm bench` times it (a fresh child
 * process per run: one warm-up epoch, then 3 timed, median of the 3), in interleaved rounds whose order
 * rotates, so the VM's slow minutes fall on every flag set alike. Prints every round and, per flag set,
 * the median over rounds and how many rounds it was the fastest of all.
 *   pnpm exec tsx bench/ab-node-flags.ts [--rounds=12] [--batch=128] [--layers=784,128,10] -- "" "--min-semi-space-size=16" ...
 * --layers=784,10 --batch=256 is the bench's softmax regression epoch.
 * Each positional argument is one flag set (space-separated flags; "" for Node's defaults); a token
 * NAME=value sets an environment variable for that set's runs instead (TAPEGRAD_HELPER_SPIN_US=200).
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Timing } from "./measure.ts";
import { mlpEpochWorkload } from "./workloads.ts";

const { values, positionals } = parseArgs({
  options: {
    rounds: { type: "string", default: "12" }, batch: { type: "string", default: "128" },
    layers: { type: "string", default: "784,128,10" },
  },
  allowPositionals: true,
});
const rounds = Number(values.rounds), batch = Number(values.batch);
if (positionals.length < 2) {
  console.error('ab-node-flags: give two or more flag sets, after --, e.g. -- "" "--min-semi-space-size=16"');
  process.exit(1);
}
const sets = positionals.map((s) => {
  const tokens = s.split(" ").filter(Boolean);
  const isEnv = (t: string) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(t);
  const env = Object.fromEntries(tokens.filter(isEnv).map((t) => [t.slice(0, t.indexOf("=")), t.slice(t.indexOf("=") + 1)]));
  return { flags: tokens.filter((t) => !isEnv(t)), env };
});
const label = (i: number) => positionals[i] || "(node defaults)";
const layers = values.layers.split(",").map(Number);
const workload = { ...mlpEpochWorkload(batch), layers, warmup: 1, minRuns: 3, minTimeMs: 0 };
const child = fileURLToPath(new URL("./epoch-child.ts", import.meta.url));
const root = fileURLToPath(new URL("..", import.meta.url));

function epochMs({ flags, env }: { flags: string[]; env: Record<string, string> }): number {
  const run = spawnSync(process.execPath, [...flags, "--import", "tsx", child], {
    input: JSON.stringify(workload), encoding: "utf8", maxBuffer: 1 << 20, cwd: root, env: { ...process.env, ...env },
  });
  if (run.status !== 0) throw new Error(`epoch child with [${flags.join(" ")}] failed: ${run.stderr.trim().split("\n").slice(-3).join(" ")}`);
  return (JSON.parse(run.stdout.trim().split("\n").pop()!) as Timing).medianMs;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const times: number[][] = sets.map(() => []);
const wins = sets.map(() => 0);
console.log(`epoch of ${layers.join("-")}, batch ${batch}: median of 3 timed epochs after 1 warm-up, a fresh process per run, ${rounds} rounds`);
for (let r = 0; r < rounds; r++) {
  const row = sets.map(() => 0);
  for (let j = 0; j < sets.length; j++) {
    const i = (j + r) % sets.length;
    row[i] = epochMs(sets[i]);
    times[i].push(row[i]);
  }
  wins[row.indexOf(Math.min(...row))]++;
  console.log(`round ${r + 1}: ${row.map((ms, i) => `${label(i)} ${ms.toFixed(0)}`).join(" | ")} ms`);
}
console.log("| flags | median ms | fastest in rounds |");
console.log("| --- | ---: | ---: |");
sets.forEach((_, i) => console.log(`| ${label(i)} | ${median(times[i]).toFixed(0)} | ${wins[i]} of ${rounds} |`));
