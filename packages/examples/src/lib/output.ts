/** A run's output folder: metrics.jsonl, curves.svg, result.json and whatever else the example writes. */
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { curvesSvg } from "./curves.ts";
import { makeRunDir } from "./paths.ts";

/** One epoch's numbers, as written to metrics.jsonl (one JSON object per line). */
export interface EpochMetrics {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  testLoss: number;
  testAccuracy: number;
  seconds: number;
}

export class RunOutput {
  readonly dir: string;
  /** Every file written so far, in order. */
  readonly files: string[] = [];

  constructor(example: string, out?: string) {
    this.dir = makeRunDir(example, out);
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** Records `name` as an output of this run (for files written by others, e.g. a checkpoint) and returns its path. */
  track(name: string): string {
    const p = this.path(name);
    if (!this.files.includes(p)) this.files.push(p);
    return p;
  }

  write(name: string, content: string | Uint8Array): string {
    const p = this.track(name);
    writeFileSync(p, content);
    return p;
  }

  writeJson(name: string, value: unknown): string {
    return this.write(name, `${JSON.stringify(value, null, 2)}\n`);
  }

  /** Appends one line to metrics.jsonl (created empty by the first call of a run). */
  appendMetrics(row: EpochMetrics): void {
    const fresh = !this.files.includes(this.path("metrics.jsonl"));
    const p = this.track("metrics.jsonl");
    if (fresh) writeFileSync(p, "");
    appendFileSync(p, `${JSON.stringify(row)}\n`);
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
