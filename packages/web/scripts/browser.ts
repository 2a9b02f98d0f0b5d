/**
 * Headless Chromium for the playground's tests and the browser bench: the system's Chromium (Debian's
 * /usr/bin/chromium, or $CHROMIUM) driven by playwright-core, never a browser download; a fresh profile per
 * launch. Also builds the site into a folder with Vite's API.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BrowserContext } from "playwright-core";

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable"];

/** The Chromium to drive: $CHROMIUM, else the first system install found; undefined when there is none. */
export function findChromium(env: Record<string, string | undefined> = process.env): string | undefined {
  return [env.CHROMIUM, ...CANDIDATES].find((path): path is string => !!path && existsSync(path));
}

/**
 * Flags for a machine without a display, network or GPU: --no-sandbox because CI runs as root (Chromium's
 * sandbox refuses root); no GPU process, and none of the background fetches that would wait on the network.
 */
export const CHROMIUM_FLAGS = [
  "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update",
  "--no-first-run", "--disable-sync", "--disable-default-apps", "--disable-extensions", "--mute-audio",
];

export interface Chromium {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchChromium(executablePath: string, options: { viewport?: { width: number; height: number }; args?: string[] } = {}): Promise<Chromium> {
  const { chromium } = await import("playwright-core");
  const profile = mkdtempSync(join(tmpdir(), "tapegrad-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath, headless: true, args: [...CHROMIUM_FLAGS, ...(options.args ?? [])], acceptDownloads: true,
    viewport: options.viewport ?? { width: 1280, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

const WEB = fileURLToPath(new URL("..", import.meta.url));

/** Builds the playground (as `pnpm web:build`) into `outDir` and returns it. */
export async function buildSite(outDir: string): Promise<string> {
  const { build } = await import("vite");
  await build({ configFile: join(WEB, "vite.config.ts"), root: WEB, logLevel: "warn", build: { outDir, emptyOutDir: true } });
  return outDir;
}
