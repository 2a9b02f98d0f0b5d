/**
 * Command-line handling shared by every example: option tables parsed with node's util.parseArgs, a
 * generated --help, and checked conversions of option strings to numbers.
 */
import { parseArgs } from "node:util";

export interface OptionSpec {
  type: "string" | "boolean";
  description: string;
  /** Shown in --help and used when the option is absent. */
  default?: string | boolean;
  /** The placeholder in --help, e.g. "N" for `--epochs N`. */
  valueName?: string;
  short?: string;
}

export type OptionTable = Record<string, OptionSpec>;
export type ParsedValues = Record<string, string | boolean | undefined>;

/** Options every training example accepts. Examples override defaults with `withDefaults`. */
export const commonOptions: OptionTable = {
  dataset: { type: "string", valueName: "NAME", default: "fashion-mnist", description: "fashion-mnist or mnist" },
  data: { type: "string", valueName: "DIR", description: "directory holding the IDX files (default: $TAPEGRAD_DATA, the cache, /usr/share/datasets, else the embedded sample)" },
  out: { type: "string", valueName: "DIR", description: "output folder (default: runs/<example>-<timestamp> in the repository)" },
  epochs: { type: "string", valueName: "N", description: "training epochs" },
  "batch-size": { type: "string", valueName: "N", description: "mini-batch size" },
  lr: { type: "string", valueName: "X", description: "SGD learning rate" },
  seed: { type: "string", valueName: "N", default: "0", description: "seed for initialisation and shuffling" },
  "limit-train": { type: "string", valueName: "N", description: "use only the first N training images (smoke runs)" },
  "limit-test": { type: "string", valueName: "N", description: "use only the first N test images (smoke runs)" },
  "no-progress": { type: "boolean", description: "no progress bar (it is hidden anyway when stderr is not a terminal)" },
  help: { type: "boolean", short: "h", description: "show this help" },
};

/** A copy of `table` with the given defaults filled in. */
export function withDefaults(table: OptionTable, defaults: Record<string, string | boolean>): OptionTable {
  const out: OptionTable = {};
  for (const [name, spec] of Object.entries(table)) {
    out[name] = Object.hasOwn(defaults, name) ? { ...spec, default: defaults[name] } : spec;
  }
  return out;
}

/** The --help text: usage line, summary, and one line per option with its default. */
export function helpText(command: string, summary: string, table: OptionTable): string {
  // --help goes last, after the example's own options
  const entries = Object.entries(table).sort(([a], [b]) => Number(a === "help") - Number(b === "help"));
  const rows = entries.map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : "    "}--${name}${spec.type === "string" ? ` ${spec.valueName ?? "VALUE"}` : ""}`;
    const dflt = spec.default !== undefined && spec.type === "string" ? ` (default ${spec.default})` : "";
    return [flag, spec.description + dflt] as const;
  });
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  return [`Usage: ${command} [options]`, "", summary, "", "Options:", ...rows.map(([f, d]) => `  ${f.padEnd(width)}${d}`)].join("\n");
}

/** Parses `argv` against `table` (unknown options and stray arguments are errors), filling in defaults. */
export function parseOptions(argv: string[], table: OptionTable): ParsedValues {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const [name, spec] of Object.entries(table)) options[name] = spec.short ? { type: spec.type, short: spec.short } : { type: spec.type };
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  const out: ParsedValues = {};
  for (const [name, spec] of Object.entries(table)) out[name] = (values as ParsedValues)[name] ?? spec.default;
  return out;
}

/** A positive integer option, or undefined when absent. */
export function intOption(values: ParsedValues, name: string, min = 1): number | undefined {
  const v = values[name];
  if (v === undefined || v === false) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  return n;
}

/** A positive (or, with allowZero, non-negative) finite number option, or undefined when absent. */
export function numberOption(values: ParsedValues, name: string, allowZero = false): number | undefined {
  const v = values[name];
  if (v === undefined || v === false) return undefined;
  const n = Number(v);
  if (v === "" || !Number.isFinite(n) || n < 0 || (n === 0 && !allowZero)) {
    throw new UsageError(`--${name} must be a ${allowZero ? "non-negative" : "positive"} number, got ${JSON.stringify(v)}`);
  }
  return n;
}

export function stringOption(values: ParsedValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

/** A bad command line: main prints the message and a pointer to --help, and exits with status 2. */
export class UsageError extends Error {
  override name = "UsageError";
}
