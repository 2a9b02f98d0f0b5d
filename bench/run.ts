/**
 * `pnpm bench`: times tapegrad against the reference implementations installed here and writes one
 * table to bench/results/latest.md (and .json). Options:
 *   --quick          fewer repetitions and a 6k-sample epoch (a smoke run)
 *   --filter=TEXT    only workloads whose id or title contains TEXT
 *   --threads=N[,M]  thread settings for the Python references, one process and one set of rows each
 *                    (`numpy 1t`, `torch 2t`, ...). Default 1,2: tapegrad is single-threaded, the targets
 *                    use each library's best. Above 1 thread OMP_WAIT_POLICY=PASSIVE; 0 = their default
 *   --no-python, --no-tfjs   skip those references
 *   --no-browser     skip the browser rows (tapegrad and TF.js wasm in headless Chromium, bench/browser.ts;
 *                    they run by default where Chromium is installed)
 *   --no-tfjs-epochs skip TF.js's epochs (its wasm backend takes seconds per epoch: with them a full run
 *                    takes about a minute longer)
 *   --rounds=N       rounds of the epoch workloads (default 3, 1 with --quick), see below
 *   --warmup-epochs=N  untimed epochs before the timed ones in every epoch process, for every tool
 *                    (default 1); a larger N times a JIT's steady state rather than its first epochs
 *   --out=NAME       write bench/results/NAME.md and .json instead of latest.md and latest.json
 *   --cnn            add the convolutional networks' training epochs (issue 20's cnn at batch 128 and LeNet-5 at
 *                    batch 256, SGD, synthetic 60k × 1 × 28 × 28 data) against PyTorch from bench/cnn-reference.py,
 *                    in the same rounds: 20 warm-up steps, then one timed epoch per round (a cnn epoch takes
 *                    about a minute per tool, so a default 3-round run grows by about 10 minutes)
 * Ratios are tapegrad's median time divided by the tool's: above 1 means tapegrad is slower.
 *
 * The epochs, whose ratios are the targets, run in interleaved rounds: each round times every epoch
 * workload in tapegrad, then in each Python setting, each tool in a fresh process per round, with one
 * untimed warm-up epoch and then 3 timed ones (1 with --quick); the table gives each tool's median of its
 * per-round medians. A shared machine's slow minutes then fall on every tool alike instead of on whichever
 * ran during them, and the timed epochs are past the first ones (Node's garbage collector settles over
 * a few epochs).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { BROWSER_WORKLOAD, browserRows } from "./browser.ts";
import type { Timing } from "./measure.ts";
import { pythonTools, type ReferenceThreads } from "./tools/python.ts";
import { tapegradTools } from "./tools/tapegrad.ts";
import { tfjsTools } from "./tools/tfjs.ts";
import { torchCnnTools } from "./tools/torch-cnn.ts";
import type { MissingTool, ToolGroup } from "./tools/types.ts";
import { buildWorkloads, flopsOf, isEpoch, type Workload } from "./workloads.ts";

interface Row {
  workload: string;
  title: string;
  tool: string;
  medianMs: number;
  runs: number;
  gflops?: number;
  ratio?: number;
}

/** `--threads=1,2` → [1, 2]; 0 stands for the libraries' own default. */
function referenceThreads(arg: string): ReferenceThreads[] {
  return arg.split(",").map((part) => {
    const n = Number(part);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--threads: expected whole numbers (0 = the libraries' default), got "${arg}"`);
    return n || null;
  });
}

const args = process.argv.slice(2);
const OPTIONS = ["quick", "filter", "threads", "no-python", "no-tfjs", "no-tfjs-epochs", "no-browser", "rounds", "warmup-epochs", "out", "cnn"];
for (const arg of args) {
  const name = arg.startsWith("--") ? arg.slice(2).split("=")[0] : "";
  if (!OPTIONS.includes(name)) {
    const hint = name === "tfjs-epochs" ? " (TF.js epochs run by default now; --no-tfjs-epochs skips them)" : "";
    console.error(`bench: unknown option "${arg}"${hint}; options: ${OPTIONS.map((o) => `--${o}`).join(", ")}`);
    process.exit(2);
  }
}
const flag = (name: string): string | undefined =>
  args.find((a) => a === `--${name}` || a.startsWith(`--${name}=`))?.split("=").slice(1).join("=") ?? (args.includes(`--${name}`) ? "" : undefined);
const quick = flag("quick") !== undefined;
const filter = flag("filter");
const threads = referenceThreads(flag("threads") || "1,2");

const workloads = buildWorkloads(quick, { cnn: flag("cnn") !== undefined }).filter((w) => !filter || w.id.includes(filter) || w.title.includes(filter));
const rounds = Number(flag("rounds") || (quick ? 1 : 3));
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds: expected a whole number ≥ 1, got "${flag("rounds")}"`);
/** Timed epochs per tool in one round, after `warmupEpochs` untimed ones. */
const epochsPerRound = quick ? 1 : 3;
const warmupEpochs = Number(flag("warmup-epochs") || 1);
if (!Number.isInteger(warmupEpochs) || warmupEpochs < 0) {
  throw new Error(`--warmup-epochs: expected a whole number ≥ 0, got "${flag("warmup-epochs")}"`);
}
const outName = flag("out") || "latest";
if (!/^[\w.-]+$/.test(outName)) throw new Error(`--out: expected a file name without a directory, got "${outName}"`);
// the convolutional networks' epochs keep their own warm-up (steps) and one timed epoch per round
const roundEpochs = workloads.filter(isEpoch)
  .map((w) => (w.kind === "epoch" ? { ...w, warmup: warmupEpochs, minRuns: epochsPerRound, minTimeMs: 0 } : w));
const timedPerRound = (w: Workload): number => (w.kind === "cnnEpoch" ? w.minRuns : epochsPerRound);
const peakRssMb = (): number => process.resourceUsage().maxRSS / 1024;

function formatMs(ms: number): string {
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 1) return `${ms.toFixed(2)} ms`;
  if (ms >= 0.01) return `${ms.toFixed(3)} ms`;
  return `${(ms * 1000).toFixed(3)} µs`;
}

async function runGroup(group: ToolGroup, list: Workload[], store: (w: Workload, tool: string, t: Timing) => void): Promise<void> {
  for (const tool of group.tools) {
    for (const w of list) {
      process.stderr.write(`  ${tool.name.padEnd(14)} ${w.id} ... `);
      let timing: Timing | undefined;
      try {
        timing = await tool.run(w);
      } catch (error) {
        process.stderr.write(`failed: ${(error as Error).message.split("\n")[0]}\n`);
        continue;
      }
      process.stderr.write(timing ? `${formatMs(timing.medianMs)}\n` : "n/a\n");
      if (timing) store(w, tool.name, timing);
    }
  }
}

/** Which thread setting (`numpy 1t`, `numpy 2t`, ...) was fastest for each library on each epoch. */
function fastestSettings(results: Map<string, Map<string, Timing>>): string | undefined {
  const epochs = workloads.filter((w) => w.kind === "epoch");
  const parts = ["numpy", "torch"].flatMap((library) => {
    const wins = new Map<string, string[]>();
    for (const w of epochs) {
      const settings = [...results.get(w.id)!].filter(([tool]) => tool.startsWith(`${library} `));
      if (settings.length < 2) continue;
      const [best] = settings.reduce((a, b) => (b[1].medianMs < a[1].medianMs ? b : a));
      wins.set(best, [...(wins.get(best) ?? []), w.id]);
    }
    return [...wins].map(([tool, ids]) => `${tool} on ${ids.length === epochs.length ? `all ${ids.length} epochs` : ids.join(", ")}`);
  });
  return parts.length ? `fastest Python thread setting on the epochs: ${parts.join("; ")}` : undefined;
}

async function main(): Promise<void> {
  const results = new Map<string, Map<string, Timing>>(workloads.map((w) => [w.id, new Map()]));
  const missing: MissingTool[] = [];
  const groups: ToolGroup[] = [];
  const memory: string[] = [];

  const once = (w: Workload, tool: string, t: Timing): void => void results.get(w.id)!.set(tool, t);
  const others = workloads.filter((w) => !isEpoch(w));
  const python = flag("no-python") === undefined;

  const tapegrad = await tapegradTools();
  groups.push(tapegrad);
  await runGroup(tapegrad, others, once);

  if (flag("no-tfjs") === undefined) {
    const tfjs = await tfjsTools({ epochs: flag("no-tfjs-epochs") === undefined });
    groups.push(tfjs);
    // TF.js epochs (seconds each) run in this process, one warm-up and one timed, outside the rounds
    await runGroup(tfjs, workloads, once);
  }
  if (python && others.length) {
    process.stderr.write("  numpy/torch    (one Python process per thread setting, all workloads but the epochs) ...\n");
    const group = pythonTools(others, threads);
    groups.push(group);
    try {
      await runGroup(group, others, once);
    } catch (error) {
      missing.push({ name: "numpy/torch", reason: (error as Error).message });
    }
  }

  // the epochs: interleaved rounds (see the top of this file)
  const perRound = new Map<string, Map<string, number[]>>();
  const collect = (w: Workload, tool: string, t: Timing): void => {
    const byTool = perRound.get(w.id) ?? new Map<string, number[]>();
    perRound.set(w.id, byTool);
    byTool.set(tool, [...(byTool.get(tool) ?? []), t.medianMs]);
  };
  for (let round = 1; round <= rounds && roundEpochs.length; round++) {
    process.stderr.write(`  epochs, round ${round} of ${rounds}\n`);
    await runGroup(tapegrad, roundEpochs, collect);
    if (!python) continue;
    const mlpEpochs = roundEpochs.filter((w) => w.kind === "epoch");
    if (mlpEpochs.length) {
      const group = pythonTools(mlpEpochs, threads);
      if (!others.length && round === 1) groups.push(group);
      try {
        await runGroup(group, mlpEpochs, collect);
      } catch (error) {
        if (round === 1) missing.push({ name: "numpy/torch epochs", reason: (error as Error).message });
      }
    }
    const cnnEpochs = roundEpochs.filter((w) => w.kind === "cnnEpoch");
    if (cnnEpochs.length) {
      const group = torchCnnTools(cnnEpochs, threads);
      if (round === 1) groups.push(group);
      try {
        await runGroup(group, cnnEpochs, collect);
      } catch (error) {
        if (round === 1) missing.push({ name: "torch cnn epochs", reason: (error as Error).message });
      }
    }
  }
  for (const [id, byTool] of perRound) {
    for (const [tool, times] of byTool) {
      const sorted = [...times].sort((a, b) => a - b);
      results.get(id)!.set(tool, { medianMs: sorted[sorted.length >> 1], runs: sorted.length * timedPerRound(workloads.find((w) => w.id === id)!) });
    }
  }
  // the browser rows: the MLP epoch in headless Chromium, tapegrad against TF.js wasm on the bench page
  const browser = flag("no-browser") === undefined && (!filter || BROWSER_WORKLOAD.includes(filter))
    ? await browserRows({ quick, rounds, log: (line) => process.stderr.write(`  browser        ${line}\n`) })
    : undefined;
  if (browser && "skipped" in browser) missing.push({ name: "browser rows", reason: browser.skipped });
  if (browser && "notes" in browser) memory.push(...browser.notes);
  memory.unshift(`peak RSS of the bench process (tapegrad's kernels, tiny ops, TF.js): ${peakRssMb().toFixed(0)} MB`);
  const fastest = fastestSettings(results);
  if (fastest) memory.unshift(fastest);
  for (const g of groups) missing.push(...g.missing);

  const rows: Row[] = [];
  for (const w of workloads) {
    const byTool = results.get(w.id)!;
    const ours = byTool.get("tapegrad");
    // tapegrad's row first, the others in the order they ran (a stable sort)
    for (const [tool, t] of [...byTool].sort(([a], [b]) => Number(b === "tapegrad") - Number(a === "tapegrad"))) {
      const flops = flopsOf(w);
      rows.push({
        workload: w.id, title: w.title, tool, medianMs: t.medianMs, runs: t.runs,
        gflops: flops ? flops / t.medianMs / 1e6 : undefined,
        ratio: ours && tool !== "tapegrad" ? ours.medianMs / t.medianMs : undefined,
      });
    }
  }

  if (browser && "rows" in browser) rows.push(...browser.rows);

  const cpus = os.cpus();
  const header = {
    date: new Date().toISOString(),
    machine: `${cpus[0]?.model ?? "unknown CPU"}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}`,
    node: process.version,
    quick,
    rounds,
    referenceThreads: threads.map((t) => t ?? "default"),
    notes: [...groups.flatMap((g) => g.notes()), ...memory],
    skipped: missing.map((m) => `${m.name}: ${m.reason}`),
  };
  const md = renderMarkdown(header, rows);
  process.stdout.write(`\n${md}`);
  const dir = fileURLToPath(new URL("./results/", import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}${outName}.md`, md);
  writeFileSync(`${dir}${outName}.json`, `${JSON.stringify({ ...header, rows }, null, 2)}\n`);
  process.stderr.write(`\nwrote bench/results/${outName}.md and ${outName}.json\n`);
}

function renderMarkdown(header: { date: string; machine: string; node: string; quick: boolean; rounds: number;
  referenceThreads: (number | string)[]; notes: string[]; skipped: string[] }, rows: Row[]): string {
  const lines = [
    `# tapegrad benchmark`,
    ``,
    `- date: ${header.date}${header.quick ? " (--quick)" : ""}`,
    `- machine: ${header.machine}`,
    `- node ${header.node}; tapegrad runs JavaScript on one thread, its native gemm threads as noted below; Python reference threads: ${header.referenceThreads.join(", ")}`,
    `- epochs: median of ${header.rounds} interleaved round${header.rounds > 1 ? "s'" : "'s"} medians (each tool a fresh process per round: ${warmupEpochs === 1 ? "one warm-up epoch" : `${warmupEpochs} warm-up epochs`}, then ${epochsPerRound} timed${workloads.some((w) => w.kind === "cnnEpoch") ? "; the convolutional networks' as noted below" : ""}); other workloads: median of repeated runs in one process`,
    ...header.notes.map((n) => `- ${n}`),
    ...header.skipped.map((s) => `- skipped ${s}`),
    ``,
    `Median wall time per run (per op for tiny ops). "tapegrad ÷ tool" above 1 means tapegrad is slower.`,
    ``,
    `| workload | tool | median | GFLOP/s | tapegrad ÷ tool | runs |`,
    `| --- | --- | ---: | ---: | ---: | ---: |`,
  ];
  let last = "";
  for (const r of rows) {
    const name = r.workload === last ? "" : `${r.title} (${r.workload})`;
    last = r.workload;
    lines.push(`| ${name} | ${r.tool} | ${formatMs(r.medianMs)} | ${r.gflops ? r.gflops.toFixed(2) : ""} | ${r.ratio ? r.ratio.toFixed(2) : ""} | ${r.runs} |`);
  }
  return `${lines.join("\n")}\n`;
}

await main();
