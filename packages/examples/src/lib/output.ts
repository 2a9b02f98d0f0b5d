/**
 * A run's output folder: metrics.jsonl, curves.svg, checkpoints/, result.json and whatever else the example
 * writes. A new run gets a new or empty folder; a non-empty one is reused only to resume the run in it
 * (--resume) or to replace it (--overwrite).
 */
import { appendFileSync, mkdirSync, readdirSync, rmSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "@tapegrad/nn/node";
import { curvesSvg } from "./curves.ts";
import { RunFileError, UsageError, systemReason } from "./errors.ts";
import { defaultRunDir, userPath } from "./paths.ts";

/** One epoch's numbers, as written to metrics.jsonl (one JSON object per line). */
export interface EpochMetrics {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  testLoss: number;
  testAccuracy: number;
  seconds: number;
}

/** Where a run writes: a fresh folder, a given one (`out`), or the folder of the run it resumes. */
export interface OutputOptions {
  /** Output folder, relative to the invocation folder; must be new or empty unless `overwrite`. */
  out?: string;
  /** Folder of a run to continue: outputs go there. */
  resume?: string;
  /** Replace the run in a non-empty `out` (its files are removed first). */
  overwrite?: boolean;
}

/** The files and folders the examples write into a run folder; --overwrite removes these and nothing else. */
export const RUN_FILES = [
  "checkpoints", "model.safetensors", "metrics.jsonl", "curves.svg", "result.json", "predictions.png", "predictions.txt",
  "gradient-check.json", "losses.csv", "hardest.png", "easiest.png", "grids.json", "filters.png", "feature-maps.png",
];

/** The output folders created by this process and not yet written to; removed again when a run fails early. */
const unused = new Set<RunOutput>();

/** Removes the folders created for runs that failed before writing anything (called when a run throws). */
export function discardUnusedOutputs(): void {
  for (const output of unused) {
    try {
      if (readdirSync(output.dir).length === 0) rmdirSync(output.dir);
    } catch {
      // best effort: an empty folder left behind is harmless
    }
  }
  unused.clear();
}

function entriesOf(dir: string): string[] | undefined {
  try {
    if (!statSync(dir).isDirectory()) throw new RunFileError(`the output folder ${dir} is a file, not a folder`);
  } catch (err) {
    if (err instanceof RunFileError) throw err;
    if ((err as { code?: string }).code === "ENOENT") return undefined;
    throw new RunFileError(`cannot use the output folder ${dir}: ${systemReason(err)}`);
  }
  try {
    return readdirSync(dir);
  } catch (err) {
    throw new RunFileError(`cannot read the output folder ${dir}: ${systemReason(err)}`);
  }
}

export class RunOutput {
  readonly dir: string;
  /** Every file written so far, in order. */
  readonly files: string[] = [];

  constructor(example: string, options: OutputOptions = {}) {
    const { out, resume, overwrite = false } = options;
    if (resume !== undefined) {
      if (overwrite) throw new UsageError("--resume continues the run in its folder and --overwrite replaces it: pick one");
      this.dir = userPath(resume);
      if (out !== undefined && userPath(out) !== this.dir) {
        throw new UsageError(`--out ${out} and --resume ${resume} name different folders: a resumed run writes into its own folder`);
      }
      if (entriesOf(this.dir) === undefined) throw new RunFileError(`cannot resume: the folder ${this.dir} does not exist`);
      return;
    }
    this.dir = out !== undefined ? userPath(out) : defaultRunDir(example);
    const entries = entriesOf(this.dir);
    if (entries !== undefined && entries.length > 0) {
      if (!overwrite) {
        const shown = entries.slice(0, 4).join(", ") + (entries.length > 4 ? `, … (${entries.length} entries)` : "");
        throw new UsageError(
          `the output folder ${this.dir} is not empty (${shown}).\n` +
            `Add --resume ${out} to continue the run saved there, --overwrite to replace it, or pick a new --out folder.`,
        );
      }
      for (const name of entries.filter((e) => RUN_FILES.includes(e))) {
        try {
          rmSync(join(this.dir, name), { recursive: true, force: true });
        } catch (err) {
          throw new RunFileError(`--overwrite: cannot remove ${join(this.dir, name)}: ${systemReason(err)}`);
        }
      }
    }
    if (entries === undefined) {
      try {
        mkdirSync(this.dir, { recursive: true });
      } catch (err) {
        throw new RunFileError(`cannot create the output folder ${this.dir}: ${systemReason(err)}`);
      }
      unused.add(this);
    }
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** Records `name` as an output of this run (for files written by others, e.g. a checkpoint) and returns its path. */
  track(name: string): string {
    unused.delete(this);
    const p = this.path(name);
    if (!this.files.includes(p)) this.files.push(p);
    return p;
  }

  /** Runs a write, turning a system error into one that names the file and the reason in words. */
  guard<T>(path: string, write: () => T): T {
    unused.delete(this);
    try {
      return write();
    } catch (err) {
      // a system error, or a CheckpointError caused by one
      const system = [err, (err as { cause?: unknown }).cause].find((e) => /^E[A-Z]+$/.test(String((e as { code?: unknown } | null)?.code)));
      if (system !== undefined) throw new RunFileError(`cannot write ${path}: ${systemReason(system)}`);
      throw err;
    }
  }

  write(name: string, content: string | Uint8Array): string {
    const p = this.track(name);
    this.guard(p, () => writeFileSync(p, content));
    return p;
  }

  writeJson(name: string, value: unknown): string {
    return this.write(name, `${JSON.stringify(value, null, 2)}\n`);
  }

  /** Writes metrics.jsonl afresh with `rows` (atomically: a resumed run rewrites the rows its checkpoint has). */
  writeMetrics(rows: EpochMetrics[]): void {
    const p = this.track("metrics.jsonl");
    this.guard(p, () => writeFileAtomic(p, new TextEncoder().encode(rows.map((r) => `${JSON.stringify(r)}\n`).join(""))));
  }

  /** Appends one line to metrics.jsonl (created empty by the first call of a run). */
  appendMetrics(row: EpochMetrics): void {
    const fresh = !this.files.includes(this.path("metrics.jsonl"));
    const p = this.track("metrics.jsonl");
    this.guard(p, () => {
      if (fresh) writeFileSync(p, "");
      appendFileSync(p, `${JSON.stringify(row)}\n`);
    });
  }

  /** Redraws curves.svg from the whole history (cheap: called after every epoch). */
  writeCurves(title: string, history: EpochMetrics[]): string {
    const pick = (key: keyof EpochMetrics) => history.map((h) => h[key]);
    return this.write(
      "curves.svg",
      curvesSvg(
        title,
        [
          { name: "train loss", values: pick("trainLoss"), color: "#1f77b4" },
          { name: "test loss", values: pick("testLoss"), color: "#1f77b4", dashed: true },
        ],
        [
          { name: "train acc", values: pick("trainAccuracy"), color: "#d62728" },
          { name: "test acc", values: pick("testAccuracy"), color: "#2ca02c", dashed: true },
        ],
      ),
    );
  }
}
