/** Where runs go and how user-given paths are read. */
import { existsSync, mkdirSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (this file is packages/examples/src/lib/paths.ts). */
export const repoRoot = fileURLToPath(new URL("../../../../", import.meta.url));

/** The folder the user ran the command in: pnpm sets INIT_CWD when it runs a script from another folder. */
export function invocationDir(): string {
  return process.env.INIT_CWD || process.cwd();
}

/** A user-given path, relative to where the command was typed rather than to the script's folder. */
export function userPath(path: string): string {
  return isAbsolute(path) ? path : resolve(invocationDir(), path);
}

/** The local time as 20240131-154502, for run folder names that sort by date. */
export function timestamp(date = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}${p(date.getMonth() + 1)}${p(date.getDate())}-${p(date.getHours())}${p(date.getMinutes())}${p(date.getSeconds())}`;
}

/** Creates the run folder: `out` (relative to the invocation folder) or runs/<example>-<timestamp> in the repository. */
export function makeRunDir(example: string, out?: string): string {
  let dir = out !== undefined ? userPath(out) : join(repoRoot, "runs", `${example}-${timestamp()}`);
  // two default runs in the same second get distinct folders
  for (let i = 2; out === undefined && existsSync(dir); i++) dir = join(repoRoot, "runs", `${example}-${timestamp()}-${i}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}
