/**
 * Command-line handling shared by every example: option tables parsed with node's util.parseArgs, a
 * generated --help, and checked conversions of option strings to numbers with messages in the user's words.
 */
import { parseArgs } from "node:util";
import { UsageError } from "./errors.ts";

export { UsageError };

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
  data: { type: "string", valueName: "DIR", description: "folder holding the IDX files of every split the example needs; only that folder is used (default: $TAPEGRAD_DATA, the cache, /usr/share/datasets, else the embedded sample)" },
  out: { type: "string", valueName: "DIR", description: "output folder, new or empty (default: runs/<example>-<timestamp> in the repository)" },
  resume: { type: "string", valueName: "DIR", description: "continue the run saved in DIR from its last checkpoint, with its settings (only --epochs may change)" },
  overwrite: { type: "boolean", description: "replace the run in a non-empty --out folder" },
  epochs: { type: "string", valueName: "N", description: "training epochs" },
  "batch-size": { type: "string", valueName: "N", description: "mini-batch size" },
  lr: { type: "string", valueName: "X", description: "SGD learning rate" },
  seed: { type: "string", valueName: "N", default: "0", description: "seed for initialisation and shuffling (0 to 4294967295)" },
  "limit-train": { type: "string", valueName: "N", description: "use only the first N training images (smoke runs)" },
  "limit-test": { type: "string", valueName: "N", description: "use only the first N test images (smoke runs)" },
  "allow-nonfinite": { type: "boolean", description: "keep training after a NaN or infinite loss, and load checkpoints holding such values" },
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

/** `table` without the named options. */
export function without(table: OptionTable, ...names: string[]): OptionTable {
  return Object.fromEntries(Object.entries(table).filter(([name]) => !names.includes(name)));
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

/** A token that is a number with a leading minus (`-1`, `-0.5`, `-1e-3`), not an option. */
const NEGATIVE_NUMBER = /^-(\d|\.\d|Infinity$)/;

/** The closest option names to a misspelt one (edit distance at most 2). */
function suggestions(name: string, table: OptionTable): string[] {
  const distance = (a: string, b: string): number => {
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      let diagonal = row[0];
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const above = row[j];
        row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
        diagonal = above;
      }
    }
    return row[b.length];
  };
  return Object.keys(table).filter((k) => distance(name, k) <= 2).map((k) => `--${k}`);
}

/**
 * Checks the shape of `argv` before util.parseArgs sees it, so that the usual mistakes get messages in the
 * user's words: a negative number after an option (`--epochs -1`, which parseArgs calls "ambiguous") is
 * passed on as `--epochs=-1` for the range checks to judge; an option missing its value, an unknown option
 * and a stray argument are UsageErrors.
 */
function normalise(argv: string[], table: OptionTable): string[] {
  const shorts = new Map(Object.entries(table).filter(([, s]) => s.short).map(([name, s]) => [s.short!, name]));
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (token === "--") throw new UsageError(`unexpected "--": the examples take options only`);
    const long = /^--([^=]+)(=.*)?$/.exec(token);
    const short = /^-([^-])$/.exec(token);
    const name = long ? long[1] : short ? shorts.get(short[1]) : undefined;
    if (long && !Object.hasOwn(table, long[1])) {
      const close = suggestions(long[1], table);
      throw new UsageError(`unknown option --${long[1]}${close.length ? ` (did you mean ${close.join(" or ")}?)` : ""}`);
    }
    if (short && name === undefined) throw new UsageError(`unknown option ${token}`);
    if (name === undefined) {
      throw new UsageError(`unexpected argument ${JSON.stringify(token)}: values follow their option, as in --epochs 5`);
    }
    const spec = table[name];
    if (long?.[2] !== undefined) {
      if (spec.type === "boolean") throw new UsageError(`--${name} takes no value (got ${JSON.stringify(long[2].slice(1))})`);
      out.push(token);
      continue;
    }
    if (spec.type === "boolean") {
      out.push(token);
      continue;
    }
    const value = argv[i + 1];
    const what = `--${name} needs a value${spec.valueName ? ` ${spec.valueName}` : ""}`;
    if (value === undefined) throw new UsageError(`${what} after it`);
    if (value.startsWith("-") && !NEGATIVE_NUMBER.test(value)) throw new UsageError(`${what}, got the option ${value}`);
    out.push(`--${name}=${value}`);
    i++;
  }
  return out;
}

/**
 * Parses `argv` against `table` (unknown options and stray arguments are errors), filling in defaults;
 * `given` names the options the user typed.
 */
export function parseCommandLine(argv: string[], table: OptionTable): { values: ParsedValues; given: Set<string> } {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const [name, spec] of Object.entries(table)) options[name] = spec.short ? { type: spec.type, short: spec.short } : { type: spec.type };
  const { values } = parseArgs({ args: normalise(argv, table), options, strict: true, allowPositionals: false });
  const out: ParsedValues = {};
  const given = new Set<string>();
  for (const [name, spec] of Object.entries(table)) {
    const v = (values as ParsedValues)[name];
    if (v !== undefined) given.add(name);
    out[name] = v ?? spec.default;
  }
  return { values: out, given };
}

/** parseCommandLine's values. */
export function parseOptions(argv: string[], table: OptionTable): ParsedValues {
  return parseCommandLine(argv, table).values;
}

/** An option's value in a message: as typed when it reads as a number, else quoted. */
function shown(v: string | boolean): string {
  return typeof v === "string" && v.trim() !== "" && !Number.isNaN(Number(v)) ? v : JSON.stringify(v);
}

export interface Range {
  /** Smallest accepted value (default 1 for intOption, 0 exclusive for numberOption). */
  min?: number;
  /** Largest accepted value. */
  max?: number;
  /** Why the maximum, e.g. "the training split has 60000 images". */
  maxReason?: string;
}

/** An integer option within `range` (default: 1 or more), or undefined when absent. */
export function intOption(values: ParsedValues, name: string, range: Range | number = {}): number | undefined {
  const { min = 1, max = Number.MAX_SAFE_INTEGER, maxReason } = typeof range === "number" ? { min: range } : range;
  const v = values[name];
  if (v === undefined || v === false) return undefined;
  const n = typeof v === "string" && v.trim() !== "" ? Number(v) : Number.NaN;
  const limits = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}${maxReason ? ` (${maxReason})` : ""}`;
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a whole number ${limits}, got ${shown(v)}`);
  return n;
}

/**
 * A finite number option, positive (or, with `min: 0`, non-negative) and below `max` when given, or
 * undefined when absent. `maxExclusive` makes the maximum itself invalid.
 */
export function numberOption(values: ParsedValues, name: string, range: (Range & { maxExclusive?: boolean }) | boolean = {}): number | undefined {
  const r = typeof range === "boolean" ? { min: range ? 0 : undefined } : range;
  const v = values[name];
  if (v === undefined || v === false) return undefined;
  const n = typeof v === "string" && v.trim() !== "" ? Number(v) : Number.NaN;
  const allowZero = r.min === 0;
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got ${shown(v)}`);
  if (n < 0 || (n === 0 && !allowZero)) throw new UsageError(`--${name} must be ${allowZero ? "0 or more" : "more than 0"}, got ${v}`);
  if (r.max !== undefined && (n > r.max || (r.maxExclusive && n === r.max))) {
    throw new UsageError(`--${name} must be ${r.maxExclusive ? "below" : "at most"} ${r.max}${r.maxReason ? ` (${r.maxReason})` : ""}, got ${v}`);
  }
  return n;
}

export function stringOption(values: ParsedValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}
