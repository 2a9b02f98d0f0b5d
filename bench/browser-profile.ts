/**
 * A CPU profile of the bench page's training worker in headless Chromium (V8's sampling profiler over the
 * DevTools protocol): builds the site, opens bench.html for tapegrad alone, attaches to its worker before
 * it runs, and prints the functions by self time over the warm-up and timed epochs (the data set's
 * generation included, under `synthetic`). The helper worker is not profiled; its chunks show as the
 * caller's wait (finishJob) where the caller had to wait for them.
 *   pnpm exec tsx bench/browser-profile.ts [--epochs=3] [--top=30] [--out=profile.cpuprofile]
 * The .cpuprofile file opens in Chrome DevTools' Performance panel.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildSite, findChromium, launchChromium } from "../packages/web/scripts/browser.ts";
import { serveSite } from "../packages/web/scripts/serve.ts";

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

const { values } = parseArgs({ options: {
  epochs: { type: "string", default: "3" }, top: { type: "string", default: "30" }, out: { type: "string" },
} });
const executable = findChromium();
if (!executable) {
  console.error("browser-profile: no Chromium (install Debian's chromium, or set CHROMIUM)");
  process.exit(1);
}
const dir = mkdtempSync(join(tmpdir(), "tapegrad-web-profile-"));
try {
  await buildSite(join(dir, "dist"));
  const site = await serveSite({ root: join(dir, "dist") });
  const browser = await launchChromium(executable);
  try {
    const page = await browser.context.newPage();
    const cdp = await browser.context.newCDPSession(page);
    // NOTE: playwright's CDP session speaks to the page only; the worker is reached through the page's
    // target domain in its non-flat mode (messages wrapped in Target.sendMessageToTarget)
    type Send = (method: string, params?: object) => Promise<unknown>;
    const raw = cdp as unknown as { send(method: string, params?: object): Promise<unknown>; on(event: string, fn: (e: never) => void): void };
    const pending = new Map<number, (result: unknown) => void>();
    let nextId = 1;
    let session = "";
    const send: Send = (method, params = {}) => new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      void raw.send("Target.sendMessageToTarget", { sessionId: session, message: JSON.stringify({ id, method, params }) });
    });
    raw.on("Target.receivedMessageFromTarget", (e: { message: string }) => {
      const m = JSON.parse(e.message) as { id?: number; result?: unknown; error?: unknown };
      if (m.id !== undefined && pending.has(m.id)) {
        pending.get(m.id)!(m.result ?? m.error);
        pending.delete(m.id);
      }
    });
    const attached = new Promise<void>((resolve) => raw.on("Target.attachedToTarget", (e: { sessionId: string; targetInfo: { type: string } }) => {
      if (e.targetInfo.type !== "worker" || session) return;
      session = e.sessionId;
      resolve();
    }));
    // the worker waits for the debugger until the profiler runs
    await raw.send("Target.setAutoAttach", { autoAttach: true, waitForDebuggerOnStart: true, flatten: false });
    await page.goto(`${site.url}bench.html?tools=tapegrad&warmup=1&epochs=${Number(values.epochs)}`);
    await attached;
    await send("Profiler.enable");
    await send("Profiler.setSamplingInterval", { interval: 200 });
    await send("Profiler.start");
    await send("Runtime.runIfWaitingForDebugger");
    await page.waitForFunction("document.querySelector('#result').dataset.done === 'true' || !!document.querySelector('#result').dataset.error",
      null, { timeout: 600_000, polling: 500 });
    const { profile } = await send("Profiler.stop") as { profile: CpuProfile };
    const result = JSON.parse((await page.textContent("#result")) || "{}") as { results?: { epochsMs: number[] }[] };
    if (values.out) writeFileSync(values.out, JSON.stringify(profile));
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const self = new Map<string, number>();
    let total = 0;
    profile.samples.forEach((id, i) => {
      const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
      const key = `${functionName || "(anonymous)"} ${url ? `${url.split("/").pop()}:${lineNumber + 1}` : ""}`.trim();
      const us = profile.timeDeltas[i] ?? 0;
      self.set(key, (self.get(key) ?? 0) + us);
      total += us;
    });
    const epochs = result.results?.[0]?.epochsMs.map((ms) => ms.toFixed(0)).join(", ") ?? "?";
    console.log(`profiled ${(total / 1000).toFixed(0)} ms of the worker: 1 warm-up and ${values.epochs} timed epochs (${epochs} ms) and the data set's generation`);
    console.log("| self ms | share | function |\n| ---: | ---: | --- |");
    for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
      console.log(`| ${(us / 1000).toFixed(1)} | ${((100 * us) / total).toFixed(1)}% | ${key} |`);
    }
  } finally {
    await browser.close();
    await site.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
