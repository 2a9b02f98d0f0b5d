/**
 * How long the playground takes to reach a test accuracy, as a person sees it: the built site served with the
 * isolation headers and the full Fashion-MNIST, opened in headless Chromium with its default settings (the
 * MLP, Adam), Start clicked, the wall clock read at every evaluation (every 200 steps and at each epoch's end,
 * on the whole test set) until one reaches the target. Then it pauses, puts a test image on the pad and,
 * with --screenshot, saves the page.
 *
 *   tsx packages/web/scripts/time-to-accuracy.ts [--target=0.85] [--limit=120] [--screenshot=docs/web-playground.png]
 *       [--no-isolation] [--sample] [--query="optimizer=momentum&batch=64"]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildSite, findChromium, launchChromium } from "./browser.ts";
import { fullDataDir } from "./files.ts";
import { serveSite } from "./serve.ts";

const args = process.argv.slice(2);
const option = (name: string): string | undefined => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const target = Number(option("target") ?? 0.85);
const limitS = Number(option("limit") ?? 120);
const screenshot = option("screenshot");
const sample = args.includes("--sample");
const isolation = !args.includes("--no-isolation");

const chromium = findChromium();
if (!chromium) throw new Error("time-to-accuracy: no Chromium (apt-get install chromium, or set CHROMIUM)");
const fullData = sample ? undefined : fullDataDir();
if (!sample && !fullData) throw new Error("time-to-accuracy: the full Fashion-MNIST is not here (apt-get install dataset-fashion-mnist, or set TAPEGRAD_WEB_DATA; --sample uses the sample)");

const work = mkdtempSync(join(tmpdir(), "tapegrad-web-time-"));
const site = await serveSite({ root: await buildSite(join(work, "dist")), isolation, fullData });
const browser = await launchChromium(chromium, { viewport: { width: 1280, height: 1000 } });
try {
  const page = await browser.context.newPage();
  const problems: string[] = [];
  page.on("console", (m) => void (m.type() === "error" && problems.push(m.text())));
  page.on("pageerror", (e) => problems.push(e.message));
  const opened = performance.now();
  await page.goto(`${site.url}?data=${sample ? "sample" : "full"}&epochs=20${option("query") ? `&${option("query")}` : ""}`);
  await page.waitForFunction("!document.querySelector('#start').disabled", null, { timeout: 120_000 });
  const loadS = (performance.now() - opened) / 1000;
  const backend = await page.textContent("#backend");
  const data = await page.textContent("#data-source");
  const settings = await page.evaluate(`[...document.querySelectorAll('#settings select, #settings input')].map((e) => e.name + "=" + e.value).join(", ")`);

  const started = performance.now();
  await page.click("#start");
  const evaluations: { wallS: number; trainingS: number; step: number; accuracy: number }[] = [];
  let reached: (typeof evaluations)[number] | undefined;
  while (!reached && (performance.now() - started) / 1000 < limitS) {
    await page.waitForTimeout(50);
    const [step, value, elapsed] = await Promise.all(["data-step", "data-value", "data-elapsed-ms"].map((a) => page.getAttribute("#test-accuracy", a)));
    if (!step || Number(step) === (evaluations.at(-1)?.step ?? 0)) continue;
    const entry = { wallS: (performance.now() - started) / 1000, trainingS: Number(elapsed) / 1000, step: Number(step), accuracy: Number(value) };
    evaluations.push(entry);
    process.stderr.write(`  step ${entry.step}: test accuracy ${entry.accuracy.toFixed(4)} at ${entry.wallS.toFixed(1)} s\n`);
    if (entry.accuracy >= target) reached = entry;
  }
  await page.click("#start"); // pause
  await page.waitForFunction("document.querySelector('#status').dataset.running === 'false'");
  const status = await page.textContent("#status");
  // a correctly classified test image on the pad, so the picture shows the probabilities too
  await page.locator("#grid .cell.right canvas").nth(3).click();
  await page.waitForFunction("document.querySelector('#prediction').dataset.class !== ''");
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  const result = {
    target, reached: reached !== undefined, ...(reached ? { seconds: reached.wallS, step: reached.step, accuracy: reached.accuracy } : {}),
    loadSeconds: loadS, backend, data, settings, status, chromium: await browser.context.browser()?.version(), problems, evaluations,
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  if (!reached) process.exitCode = 1;
} finally {
  await browser.close();
  await site.close();
  rmSync(work, { recursive: true, force: true });
}
