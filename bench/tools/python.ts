import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Timing } from "../measure.ts";
import type { Workload } from "../workloads.ts";
import type { MissingTool, Tool, ToolGroup } from "./types.ts";

const SCRIPT = fileURLToPath(new URL("../reference.py", import.meta.url));
const INSTALL_NUMPY = "apt-get install python3-numpy (or pip install numpy)";
const INSTALL_TORCH = "apt-get install python3-torch libopenblas0-pthread (or pip install torch)";

interface ProbeResult { numpy: boolean; torch: boolean }

function probe(python: string): ProbeResult | undefined {
  const code = "import importlib.util as u; print(int(u.find_spec('numpy') is not None), int(u.find_spec('torch') is not None))";
  const out = spawnSync(python, ["-c", code], { encoding: "utf8" });
  if (out.status !== 0) return undefined;
  const [numpy, torch] = out.stdout.trim().split(" ").map((v) => v === "1");
  return { numpy, torch };
}

interface ReferenceOutput {
  python: string;
  executable: string;
  tools: Record<string, { version?: string; threads?: number; missing?: string }>;
  results: { id: string; tool: string; medianMs: number; runs: number }[];
  peakRssMb: number;
}

/**
 * NumPy and PyTorch run in one Python process over all workloads (bench/reference.py), after the
 * Node tools, so they never compete for cores. The interpreter is $BENCH_PYTHON, else the first of
 * python3 and /usr/bin/python3 that has torch, else the first with numpy (Debian's python3-torch
 * lives in the system interpreter, which a pyenv shim may hide).
 */
export function pythonTools(workloads: Workload[], threads: number | null): ToolGroup {
  const candidates = process.env.BENCH_PYTHON ? [process.env.BENCH_PYTHON] : ["python3", "/usr/bin/python3"];
  const probed = candidates.map((python) => ({ python, found: probe(python) }));
  const chosen = probed.find((p) => p.found?.torch) ?? probed.find((p) => p.found?.numpy);
  if (!chosen) {
    return { tools: [], notes: () => [], missing: [
      { name: "numpy", reason: `no python3 with numpy found; install with: ${INSTALL_NUMPY}` },
      { name: "torch", reason: `no python3 with torch found; install with: ${INSTALL_TORCH}` },
    ] };
  }
  let output: ReferenceOutput | undefined;
  const load = (): ReferenceOutput => {
    if (output) return output;
    const run = spawnSync(chosen.python, [SCRIPT], {
      input: JSON.stringify({ threads, workloads }), encoding: "utf8", maxBuffer: 64 << 20,
    });
    if (run.status !== 0) throw new Error(`${chosen.python} ${SCRIPT} failed:\n${run.stderr}`);
    output = JSON.parse(run.stdout) as ReferenceOutput;
    return output;
  };
  const tool = (name: string): Tool => ({
    name,
    async run(w: Workload): Promise<Timing | undefined> {
      const hit = load().results.find((r) => r.id === w.id && r.tool === name);
      return hit && { medianMs: hit.medianMs, runs: hit.runs };
    },
  });
  const tools: Tool[] = [];
  const missing: MissingTool[] = [];
  if (chosen.found!.numpy) tools.push(tool("numpy"));
  else missing.push({ name: "numpy", reason: `not installed for ${chosen.python}; install with: ${INSTALL_NUMPY}` });
  if (chosen.found!.torch) tools.push(tool("torch"));
  else missing.push({ name: "torch", reason: `not installed for ${candidates.join(" or ")}; install with: ${INSTALL_TORCH}` });
  const notes = (): string[] => {
    const out = load();
    const versions = Object.entries(out.tools)
      .filter(([, info]) => info.version)
      .map(([name, info]) => `${name} ${info.version}${info.threads ? ` (${info.threads} thread${info.threads > 1 ? "s" : ""})` : ""}`);
    return [`Python ${out.python} (${out.executable}): ${versions.join(", ")}; peak RSS ${out.peakRssMb.toFixed(0)} MB`];
  };
  return { tools, missing, notes: () => (output ? notes() : []) };
}
