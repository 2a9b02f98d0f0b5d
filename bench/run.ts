/**
 * `pnpm bench`: times tapegrad against the reference implementations installed here and writes one
 * table to bench/results/latest.md (and .json). Options:
 *   --quick          fewer repetitions and a 6k-sample epoch (a smoke run)
 *   --filter=TEXT    only workloads whose id or title contains TEXT
 *   --threads=N[,M]  thread settings for the Python references, one process and one set of rows each
 *                    (`numpy 1t`, `torch 2t`, ...). Default 1,2: tapegrad is single-threaded, the targets
 *                    use each library's best. Above 1 thread OMP_WAIT_POLICY=PASSIVE; 0 = their default
 *   --no-python, --no-tfjs   skip those references
 *   --tfjs-epochs    also time TF.js epochs (minutes each: its wasm backend's transposed matmuls are slow)
 * Ratios are tapegrad's median time divided by the tool's: above 1 means tapegrad is slower.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import type { Timing } from "./measure.ts";
import { pythonTools, type ReferenceThreads } from "./tools/python.ts";
import { tapegradTools } from "./tools/tapegrad.ts";
import { tfjsTools } from "./tools/tfjs.ts";
import type { MissingTool, ToolGroup } from "./tools/types.ts";
import { buildWorkloads, flopsOf, type Workload } from "./workloads.ts";

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
const flag = (name: string): string | undefined =>
  args.find((a) => a === `--${name}` || a.startsWith(`--${name}=`))?.split("=").slice(1).join("=") ?? (args.includes(`--${name}`) ? "" : undefined);
const quick = flag("quick") !== undefined;
const filter = flag("filter");
const threads = referenceThreads(flag("threads") || "1,2");

const workloads = buildWorkloads(quick).filter((w) => !filter || w.id.includes(filter) || w.title.includes(filter));
const peakRssMb = (): number => process.resourceUsage().maxRSS / 1024;

function formatMs(ms: number): string {
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 1) return `${ms.toFixed(2)} ms`;
  if (ms >= 0.01) return `${ms.toFixed(3)} ms`;
  return `${(ms * 1000).toFixed(3)} µs`;
}

async function runGroup(group: ToolGroup, results: Map<string, Map<string, Timing>>): Promise<void> {
  for (const tool of group.tools) {
    for (const w of workloads) {
      process.stderr.write(`  ${tool.name.padEnd(14)} ${w.id} ... `);
      let timing: Timing | undefined;
      try {
        timing = await tool.run(w);
      } catch (error) {
        process.stderr.write(`failed: ${(error as Error).message.split("\n")[0]}\n`);
        continue;
      }
      process.stderr.write(timing ? `${formatMs(timing.medianMs)}\n` : "n/a\n");
      if (timing) results.get(w.id)!.set(tool.name, timing);
    }
  }
}

async function main(): Promise<void> {
  const results = new Map<string, Map<string, Timing>>(workloads.map((w) => [w.id, new Map()]));
  const missing: MissingTool[] = [];
  const groups: ToolGroup[] = [];
  const memory: string[] = [];

  const tapegrad = await tapegradTools();
  groups.push(tapegrad);
  await runGroup(tapegrad, results);
  memory.push(`node peak RSS after the tapegrad workloads: ${peakRssMb().toFixed(0)} MB`);

  if (flag("no-tfjs") === undefined) {
    const tfjs = await tfjsTools({ epochs: flag("tfjs-epochs") !== undefined });
    groups.push(tfjs);
    await runGroup(tfjs, results);
    if (tfjs.tools.length) memory.push(`node peak RSS after TF.js too: ${peakRssMb().toFixed(0)} MB`);
  }
  if (flag("no-python") === undefined) {
    process.stderr.write("  numpy/torch    (one Python process per thread setting, all workloads) ...\n");
    const python = pythonTools(workloads, threads);
    groups.push(python);
    try {
      await runGroup(python, results);
    } catch (error) {
      missing.push({ name: "numpy/torch", reason: (error as Error).message });
    }
  }
  for (const g of groups) missing.push(...g.missing);

  const rows: Row[] = [];
  for (const w of workloads) {
    const byTool = results.get(w.id)!;
    const ours = byTool.get("tapegrad");
    for (const [tool, t] of byTool) {
      const flops = flopsOf(w);
      rows.push({
        workload: w.id, title: w.title, tool, medianMs: t.medianMs, runs: t.runs,
        gflops: flops ? flops / t.medianMs / 1e6 : undefined,
        ratio: ours && tool !== "tapegrad" ? ours.medianMs / t.medianMs : undefined,
      });
    }
  }

  const cpus = os.cpus();
  const header = {
    date: new Date().toISOString(),
    machine: `${cpus[0]?.model ?? "unknown CPU"}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}`,
    node: process.version,
    quick,
    referenceThreads: threads.map((t) => t ?? "default"),
    notes: [...groups.flatMap((g) => g.notes()), ...memory],
    skipped: missing.map((m) => `${m.name}: ${m.reason}`),
  };
  const md = renderMarkdown(header, rows);
  process.stdout.write(`\n${md}`);
  const dir = fileURLToPath(new URL("./results/", import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}latest.md`, md);
  writeFileSync(`${dir}latest.json`, `${JSON.stringify({ ...header, rows }, null, 2)}\n`);
  process.stderr.write(`\nwrote bench/results/latest.md and latest.json\n`);
}

function renderMarkdown(header: { date: string; machine: string; node: string; quick: boolean;
  referenceThreads: (number | string)[]; notes: string[]; skipped: string[] }, rows: Row[]): string {
  const lines = [
    `# tapegrad benchmark`,
    ``,
    `- date: ${header.date}${header.quick ? " (--quick)" : ""}`,
    `- machine: ${header.machine}`,
    `- node ${header.node}; tapegrad is single-threaded; Python reference threads: ${header.referenceThreads.join(", ")}`,
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
