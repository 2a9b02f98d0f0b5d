/**
 * The browser rows of `pnpm bench`: the MLP epoch (784-128-10, batch 128, the bench's synthetic data) with
 * tapegrad and with TF.js's WebAssembly backend in the same headless Chromium, on the playground's bench page
 * (packages/web/bench.html), served on 127.0.0.1 with the cross-origin isolation headers so both may use
 * threads. Skipped, with the reason, where there is no Chromium.
 *
 * Rounds interleave the tools (tapegrad, TF.js, then TF.js, tapegrad, ...), each in a fresh page, as the Node
 * bench's epoch rounds do, so that a busy minute on a shared machine falls on both; a tool's time is the
 * median of its per-round medians.
 *
 * Alone: `tsx bench/browser.ts [--quick] [--rounds=N] [--epochs=N] [--warmup=N] [--no-isolation] [--no-pin] [--tools=tapegrad] [--profile]`
 * prints the results as JSON; `--profile` adds tapegrad's per-epoch gemm profile and phase times (forward,
 * backward, step) to its result, `--tools` times only the tools named (also `products`, the two large
 * products alone, `pin-weights`, tapegrad with its weights pinned against not pinned, epochs
 * alternating in one page, `--tools=pin-weights --epochs=12` prints the pairs; and `tapegrad-unfused` and
 * `products-unfused`, those pages with tapegrad's fused multiply-add off: `--tools=tapegrad,tapegrad-unfused
 * --rounds=6` alternates the two pages and prints the rounds' pairs).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildSite, findChromium, launchChromium } from "../packages/web/scripts/browser.ts";
import { serveSite } from "../packages/web/scripts/serve.ts";

export interface BrowserToolResult {
  tool: string;
  /** Median of the rounds' medians. */
  medianMs: number;
  /** Every timed epoch, round after round. */
  epochsMs: number[];
  /** Each round's median. */
  roundsMs: number[];
  /** Each round's CPU time of the browser's processes (every thread: the page, its workers, Chromium's own),
   *  page load, data generation and warm-up included, in milliseconds; absent where /proc is not readable.
   *  Other programs on the same cores move it less than the wall time (bench/NOTES.md, "Browser
   *  allocations, SGD and the bench page's profile"). */
  roundsCpuMs?: number[];
  backend: string;
  finalLoss: number;
}

export interface BrowserBenchResult {
  environment: { userAgent: string; cores: number; crossOriginIsolated: boolean };
  results: BrowserToolResult[];
}

export interface BrowserBenchOptions {
  samples: number;
  warmup: number;
  /** Timed epochs of tapegrad per round (TF.js, at seconds an epoch, gets one). */
  epochs: number;
  /** Rounds of both tools (default 1). */
  rounds?: number;
  isolation?: boolean;
  /** The tools to time (default both). */
  tools?: string[];
  /** Collect tapegrad's per-epoch gemm profile and phase times (slightly slower epochs). */
  profile?: boolean;
  /** tapegrad's data set in pinned memory (default true). */
  pin?: boolean;
  /** More Chromium command-line flags. */
  chromiumArgs?: string[];
  timeoutMs?: number;
  log?: (line: string) => void;
}

/** CPU milliseconds (user + system) of every descendant of this process by pid, from /proc; empty where
 *  there is no /proc. */
function descendantsCpu(): Map<number, number> {
  const stats = new Map<number, { ppid: number; ms: number }>();
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return new Map();
  }
  for (const pid of pids) {
    try {
      const text = readFileSync(`/proc/${pid}/stat`, "utf8");
      // fields after the parenthesised command name: state ppid ... utime (14th) stime (15th)
      const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
      stats.set(Number(pid), { ppid: Number(fields[1]), ms: (Number(fields[11]) + Number(fields[12])) * 10 });
    } catch {
      // the process ended meanwhile
    }
  }
  const result = new Map<number, number>();
  for (const [pid, { ms }] of stats) {
    for (let up = stats.get(pid)?.ppid; up !== undefined && up > 1; up = stats.get(up)?.ppid) {
      if (up === process.pid) {
        result.set(pid, ms);
        break;
      }
    }
  }
  return result;
}

/** CPU milliseconds the descendants used since `before` (processes that ended meanwhile not counted). */
function cpuSince(before: Map<number, number>): number {
  let ms = 0;
  for (const [pid, now] of descendantsCpu()) ms += now - (before.get(pid) ?? 0);
  return ms;
}

/** Runs the bench page once in headless Chromium and returns what it measured. */
export async function runBrowserBench(options: BrowserBenchOptions): Promise<BrowserBenchResult> {
  const executable = findChromium();
  if (!executable) throw new Error("no Chromium (install Debian's chromium, or set CHROMIUM to a Chromium or Chrome binary)");
  const dir = mkdtempSync(join(tmpdir(), "tapegrad-web-bench-"));
  const log = options.log ?? (() => {});
  try {
    log("building the site");
    await buildSite(join(dir, "dist"));
    const site = await serveSite({ root: join(dir, "dist"), isolation: options.isolation !== false });
    const browser = await launchChromium(executable, { args: options.chromiumArgs });
    try {
      const page = await browser.context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(error.message));
      // "tapegrad-unfused", "products-unfused": the tool's page with tapegrad's fused multiply-add off
      const unfused = (tool: string): boolean => tool.endsWith("-unfused");
      const timing = (tool: string, epochs: number): string =>
        `bench.html?tools=${unfused(tool) ? `${tool.slice(0, -"-unfused".length)}&fma=0` : tool}&samples=${options.samples}&warmup=${options.warmup}&epochs=${epochs}`
        + `${options.profile ? "&profile=1" : ""}${options.pin === false ? "&pin=0" : ""}`;
      const byTool = new Map<string, BrowserToolResult[]>();
      let environment: BrowserBenchResult["environment"] | undefined;
      const rounds = options.rounds ?? 1;
      for (let round = 1; round <= rounds; round++) {
        // one page per tool and round: each starts from a fresh worker and heap, as the Node bench's child processes do
        const tools = ([["tapegrad", options.epochs], ["tapegrad-unfused", options.epochs], ["tfjs-wasm", 1], ["products", 1], ["products-unfused", 1], ["pin-weights", options.epochs]] as const).filter(([tool]) => (options.tools ?? ["tapegrad", "tfjs-wasm"]).includes(tool));
        // every other round in the reverse order (A B, B A, ...), so that neither tool always goes first
        if (round % 2 === 0) tools.reverse();
        for (const [tool, epochs] of tools) {
          log(`round ${round} of ${rounds}: ${tool} in ${executable}`);
          const cpuBefore = descendantsCpu();
          await page.goto(site.url + timing(tool, epochs));
          await page.waitForFunction("document.querySelector('#result').dataset.done === 'true' || !!document.querySelector('#result').dataset.error",
            null, { timeout: options.timeoutMs ?? 300_000, polling: 250 });
          const error = await page.getAttribute("#result", "data-error");
          if (error || errors.length) throw new Error(`the bench page failed: ${error ?? errors.join("; ")}`);
          const parsed = JSON.parse((await page.textContent("#result")) ?? "") as { environment: BrowserBenchResult["environment"]; results: BrowserToolResult[] };
          const cpuMs = cpuBefore.size > 0 ? cpuSince(cpuBefore) : undefined;
          for (const r of parsed.results) {
            const name = unfused(tool) ? tool : r.tool;
            byTool.set(name, [...(byTool.get(name) ?? []), { ...r, tool: name, roundsCpuMs: cpuMs === undefined ? undefined : [cpuMs] }]);
          }
          environment = parsed.environment;
        }
      }
      const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1];
      const results = [...byTool.values()].map((runs): BrowserToolResult => ({
        ...runs[runs.length - 1], medianMs: median(runs.map((r) => r.medianMs)), epochsMs: runs.flatMap((r) => r.epochsMs),
        roundsMs: runs.map((r) => r.medianMs),
        roundsCpuMs: runs.every((r) => r.roundsCpuMs) ? runs.flatMap((r) => r.roundsCpuMs!) : undefined,
      }));
      return { environment: environment!, results };
    } finally {
      await browser.close();
      await site.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A row of bench/run.ts's table. */
export interface BrowserRow {
  workload: string;
  title: string;
  tool: string;
  medianMs: number;
  runs: number;
  ratio?: number;
}

export const BROWSER_WORKLOAD = "MLP epoch b128 in Chromium";

/** The browser rows for `pnpm bench`, with their notes, or the reason they are skipped. */
export async function browserRows(options: { quick: boolean; rounds: number; log?: (line: string) => void }):
Promise<{ rows: BrowserRow[]; notes: string[] } | { skipped: string }> {
  if (!findChromium()) return { skipped: "no Chromium (apt-get install chromium, or set CHROMIUM)" };
  const samples = options.quick ? 6000 : 60000;
  const epochs = options.quick ? 1 : 3;
  let measured: BrowserBenchResult;
  try {
    measured = await runBrowserBench({ samples, warmup: 1, epochs, rounds: options.rounds, log: options.log });
  } catch (error) {
    return { skipped: (error as Error).message.split("\n")[0] };
  }
  const ours = measured.results.find((r) => r.tool === "tapegrad");
  const title = `MLP 784-128-10 epoch in headless Chromium, ${samples}×784, batch 128 (bench page, one Web Worker per tool)`;
  const rows = measured.results.map((r): BrowserRow => ({
    workload: BROWSER_WORKLOAD, title, tool: r.tool, medianMs: r.medianMs, runs: r.epochsMs.length,
    ratio: ours && r !== ours ? ours.medianMs / r.medianMs : undefined,
  }));
  const version = /(?:Headless)?Chrome\/([\d.]+)/.exec(measured.environment.userAgent)?.[1] ?? measured.environment.userAgent;
  const notes = [
    `browser rows: Chromium ${version}, ${measured.environment.cores} cores, cross-origin isolated: ${measured.environment.crossOriginIsolated}; `
      + measured.results.map((r) => `${r.tool}: ${r.backend}, ${r.epochsMs.length / r.roundsMs.length} timed after 1 warm-up per round, round medians ${r.roundsMs.map((t) => t.toFixed(0)).join(" / ")} ms`).join("; "),
  ];
  return { rows, notes };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const quick = args.includes("--quick");
  const epochs = Number(args.find((a) => a.startsWith("--epochs="))?.split("=")[1] ?? (quick ? 1 : 3));
  const rounds = Number(args.find((a) => a.startsWith("--rounds="))?.split("=")[1] ?? 1);
  const result = await runBrowserBench({
    samples: quick ? 6000 : 60000, warmup: Number(args.find((a) => a.startsWith("--warmup="))?.split("=")[1] ?? 1), epochs, rounds, isolation: !args.includes("--no-isolation"), pin: !args.includes("--no-pin"),
    tools: args.find((a) => a.startsWith("--tools="))?.split("=")[1].split(","), profile: args.includes("--profile"),
    chromiumArgs: args.filter((a) => a.startsWith("--chromium-arg=")).map((a) => a.slice("--chromium-arg=".length)),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  const [ours, tfjs] = ["tapegrad", "tfjs-wasm"].map((tool) => result.results.find((r) => r.tool === tool));
  if (ours && tfjs) process.stderr.write(`tapegrad ${ours.medianMs.toFixed(0)} ms, TF.js wasm ${tfjs.medianMs.toFixed(0)} ms: tapegrad is ${(tfjs.medianMs / ours.medianMs).toFixed(1)}× faster\n`);
  const [fused, unfused] = ["tapegrad", "tapegrad-unfused"].map((tool) => result.results.find((r) => r.tool === tool));
  if (fused && unfused) {
    const gaps = fused.roundsMs.map((t, i) => t - unfused.roundsMs[i]);
    process.stderr.write(`tapegrad fused ${fused.medianMs.toFixed(0)} ms, unfused ${unfused.medianMs.toFixed(0)} ms (medians of the rounds); fused faster in `
      + `${gaps.filter((g) => g < 0).length} of ${gaps.length} rounds, by ${gaps.map((g) => (-g).toFixed(0)).join(" / ")} ms\n`);
  }
  const [pinned, unpinned] = ["tapegrad, weights pinned", "tapegrad, weights not pinned"].map((tool) => result.results.find((r) => r.tool === tool));
  if (pinned && unpinned) {
    const gaps = pinned.epochsMs.map((t, i) => t - unpinned.epochsMs[i]).sort((a, b) => a - b);
    process.stderr.write(`weights pinned ${pinned.medianMs.toFixed(0)} ms, not pinned ${unpinned.medianMs.toFixed(0)} ms (medians); pinned faster in `
      + `${gaps.filter((g) => g < 0).length} of ${gaps.length} pairs, by ${(-gaps[gaps.length >> 1]).toFixed(0)} ms (median of the pairs)\n`);
  }
}
