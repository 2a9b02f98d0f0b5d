/** Where runs go and how user-given paths are read. */
import { existsSync } from "node:fs";
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

/** A new folder name runs/<example>-<timestamp> in the repository (two runs in the same second get distinct names). */
export function defaultRunDir(example: string): string {
  let dir = join(repoRoot, "runs", `${example}-${timestamp()}`);
  for (let i = 2; existsSync(dir); i++) dir = join(repoRoot, "runs", `${example}-${timestamp()}-${i}`);
  return dir;
}
