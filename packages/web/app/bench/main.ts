/**
 * The bench page: one SGD epoch of the MLP 784-128-10 (batch 128, 60,000 synthetic samples) with tapegrad and
 * with TF.js's WebAssembly backend in this browser. `pnpm bench` opens it in headless Chromium
 * (bench/browser.ts) and reads the JSON it leaves in #result.
 * Query: `tools=tapegrad,tfjs-wasm`, `samples=60000`, `batch=128`, `warmup=1`, `epochs=3` (timed, per tool),
 * `tfjsThreads=N` (default: every core, as tapegrad uses), `profile=1` (tapegrad's gemm profile per timed epoch),
 * `pin=0` (tapegrad's data set and weights not in pinned memory), `fma=0` (tapegrad's gemm without fused multiply-add); `tools=pin-weights` times tapegrad with its
 * weights pinned against not pinned, epochs alternating.
 */
import type { BenchMessage, BenchRequest, ToolResult } from "./protocol.ts";

const query = new URLSearchParams(location.search);
const count = (name: string, fallback: number, min: number): number => {
  const value = Number(query.get(name) ?? fallback);
  if (!Number.isInteger(value) || value < min) throw new Error(`bench: ${name} must be a whole number ≥ ${min}, got "${query.get(name)}"`);
  return value;
};
const status = document.getElementById("status")!;
const table = document.getElementById("results")!;
const output = document.getElementById("result")!;

const results: ToolResult[] = [];

function row(r: ToolResult): HTMLTableRowElement {
  const tr = document.createElement("tr");
  const reference = results[0];
  const ratio = reference && r !== reference ? `${(r.medianMs / reference.medianMs).toFixed(1)}×` : "";
  for (const text of [r.tool, r.backend, `${r.medianMs.toFixed(0)} ms`, r.epochsMs.map((t) => t.toFixed(0)).join(", "), ratio, r.finalLoss.toFixed(4)]) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}

try {
  const request: BenchRequest = {
    tools: (query.get("tools") ?? "tapegrad,tfjs-wasm").split(",").filter(Boolean),
    samples: count("samples", 60000, 1),
    batch: count("batch", 128, 1),
    warmup: count("warmup", 1, 0),
    epochs: count("epochs", 3, 1),
    tfjsThreads: count("tfjsThreads", navigator.hardwareConcurrency || 1, 1),
    baseUrl: new URL(".", location.href).href,
    profile: query.get("profile") === "1",
    pin: query.get("pin") !== "0",
    fma: query.get("fma") !== "0",
  };
  document.getElementById("workload")!.textContent = `MLP 784-128-10, one SGD epoch (lr 0.1) over ${request.samples.toLocaleString("en-US")}×784 synthetic samples, batch ${request.batch}; `
    + `${request.warmup} warm-up and ${request.epochs} timed epoch${request.epochs === 1 ? "" : "s"} per tool`;
  const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module", name: "tapegrad-bench" });
  worker.addEventListener("error", (e) => {
    output.dataset.error = e.message;
    status.textContent = `error: ${e.message}`;
  });
  worker.addEventListener("message", (event: MessageEvent<BenchMessage>) => {
    const m = event.data;
    if (m.type === "progress") status.textContent = m.text;
    else if (m.type === "result") {
      results.push(m.result);
      table.append(row(m.result));
    } else if (m.type === "done") {
      status.textContent = "done";
      output.textContent = JSON.stringify({ request, environment: m.environment, results }, null, 2);
      output.dataset.done = "true";
    } else {
      status.textContent = `error: ${m.message}`;
      output.dataset.error = m.message;
    }
  });
  worker.postMessage(request);
} catch (error) {
  status.textContent = `error: ${(error as Error).message}`;
  output.dataset.error = (error as Error).message;
}
