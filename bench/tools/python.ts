import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Timing } from "../measure.ts";
import type { Workload } from "../workloads.ts";
import type { MissingTool, Tool, ToolGroup } from "./types.ts";

const SCRIPT = fileURLToPath(new URL("../reference.py", import.meta.url));
const INSTALL_NUMPY = "apt-get install python3-numpy (or pip install numpy)";
const INSTALL_TORCH = "apt-get install python3-torch libopenblas0-pthread (or pip install torch)";
const LIBRARIES = ["numpy", "torch"] as const;
type Library = (typeof LIBRARIES)[number];

/** A thread count for the Python references, or null for the libraries' own default. */
export type ReferenceThreads = number | null;

/** `numpy 2t` for a thread count, plain `numpy` for the libraries' default. */
const toolName = (library: Library, threads: ReferenceThreads): string =>
  threads === null ? library : `${library} ${threads}t`;

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
  /** The thread variables the process started with. */
  env: Record<string, string>;
  results: { id: string; tool: string; medianMs: number; runs: number }[];
  peakRssMb: number;
}

/**
 * The child's environment for one thread setting. BLAS and OpenMP size their pools when the library
 * loads, so the counts go in the environment rather than being set from inside Python.
 */
function threadEnv(threads: ReferenceThreads): NodeJS.ProcessEnv {
  if (threads === null) return process.env;
  const n = String(threads);
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, MKL_NUM_THREADS: n };
  // NOTE: OpenMP's idle threads spin by default; with as many threads as cores they steal the core the
  // working thread needs (on 2 cores torch's MLP epoch took three times as long: bench/NOTES.md).
  if (threads > 1) env.OMP_WAIT_POLICY = process.env.OMP_WAIT_POLICY ?? "PASSIVE";
  return env;
}

/** One reference.py process at one thread setting, started on first use; its output (or failure) is kept. */
class ReferenceRun {
  private result: ReferenceOutput | Error | undefined;

  constructor(private readonly python: string, private readonly workloads: Workload[],
    readonly threads: ReferenceThreads) {}

  load(): ReferenceOutput {
    if (this.result === undefined) {
      const run = spawnSync(this.python, [SCRIPT], {
        input: JSON.stringify({ threads: this.threads, workloads: this.workloads }),
        env: threadEnv(this.threads), encoding: "utf8", maxBuffer: 64 << 20,
      });
      this.result = run.status === 0
        ? JSON.parse(run.stdout) as ReferenceOutput
        : new Error(`${this.python} ${SCRIPT}${this.threads === null ? "" : ` (${this.threads} threads)`} failed:\n${run.stderr}`);
    }
    if (this.result instanceof Error) throw this.result;
    return this.result;
  }

  /** The output if the process ran and succeeded, without starting it. */
  get output(): ReferenceOutput | undefined {
    return this.result instanceof Error ? undefined : this.result;
  }
}

/**
 * NumPy and PyTorch run in one Python process per thread setting over all workloads
 * (bench/reference.py), after the Node tools, so they never compete for cores. Each setting is its own
 * pair of tools (`numpy 1t`, `torch 1t`, `numpy 2t`, ...). The interpreter is $BENCH_PYTHON, else the
 * first of python3 and /usr/bin/python3 that has torch, else the first with numpy (Debian's
 * python3-torch lives in the system interpreter, which a pyenv shim may hide).
 */
export function pythonTools(workloads: Workload[], settings: ReferenceThreads[]): ToolGroup {
  const candidates = process.env.BENCH_PYTHON ? [process.env.BENCH_PYTHON] : ["python3", "/usr/bin/python3"];
  const probed = candidates.map((python) => ({ python, found: probe(python) }));
  const chosen = probed.find((p) => p.found?.torch) ?? probed.find((p) => p.found?.numpy);
  if (!chosen) {
    return { tools: [], notes: () => [], missing: [
      { name: "numpy", reason: `no python3 with numpy found; install with: ${INSTALL_NUMPY}` },
      { name: "torch", reason: `no python3 with torch found; install with: ${INSTALL_TORCH}` },
    ] };
  }
  const runs = settings.map((threads) => new ReferenceRun(chosen.python, workloads, threads));
  const tool = (library: Library, run: ReferenceRun): Tool => ({
    name: toolName(library, run.threads),
    async run(w: Workload): Promise<Timing | undefined> {
      const hit = run.load().results.find((r) => r.id === w.id && r.tool === library);
      return hit && { medianMs: hit.medianMs, runs: hit.runs };
    },
  });
  const tools: Tool[] = [];
  const missing: MissingTool[] = [];
  for (const library of LIBRARIES) {
    if (chosen.found![library]) tools.push(...runs.map((run) => tool(library, run)));
    else if (library === "numpy") missing.push({ name: "numpy", reason: `not installed for ${chosen.python}; install with: ${INSTALL_NUMPY}` });
    else missing.push({ name: "torch", reason: `not installed for ${candidates.join(" or ")}; install with: ${INSTALL_TORCH}` });
  }
  const notes = (): string[] => {
    const ran = runs.filter((run) => run.output);
    if (!ran.length) return [];
    const first = ran[0].output!;
    const versions = Object.entries(first.tools)
      .filter(([, info]) => info.version)
      .map(([name, info]) => `${name} ${info.version}`);
    const perRun = ran.map(({ threads, output }) => {
      const env = Object.entries(output!.env).map(([name, value]) => `${name}=${value}`).join(" ");
      const torchThreads = output!.tools.torch?.threads;
      return `${threads === null ? "default threads" : `${threads}t`}: ${env || "no thread variables set"}`
        + `${torchThreads ? `, torch ${torchThreads} thread${torchThreads > 1 ? "s" : ""}` : ""}, peak RSS ${output!.peakRssMb.toFixed(0)} MB`;
    });
    return [`Python ${first.python} (${first.executable}): ${versions.join(", ")}; one process per thread setting: ${perRun.join("; ")}`];
  };
  return { tools, missing, notes };
}
