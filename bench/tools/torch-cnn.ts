import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Timing } from "../measure.ts";
import type { CnnEpochWorkload, Workload } from "../workloads.ts";
import type { ReferenceThreads } from "./python.ts";
import type { Tool, ToolGroup } from "./types.ts";

const SCRIPT = fileURLToPath(new URL("../cnn-reference.py", import.meta.url));
/** cnn-reference.py's names for the epochs it times. */
const EPOCH_KEYS: Record<CnnEpochWorkload["network"], string> = { cnn: "cnn b128 SGD", lenet: "lenet b256 SGD lr 0.9" };

interface CnnReferenceOutput {
  torch: string;
  settings: Record<string, { epochs: Record<string, number> }>;
}

/** $BENCH_PYTHON, else the first of python3 and /usr/bin/python3 that imports torch. */
function torchPython(): string | undefined {
  const candidates = process.env.BENCH_PYTHON ? [process.env.BENCH_PYTHON] : ["python3", "/usr/bin/python3"];
  return candidates.find((python) => spawnSync(python, ["-c", "import torch"], { stdio: "ignore" }).status === 0);
}

/**
 * PyTorch's epochs of the convolutional networks (CnnEpochWorkload), from bench/cnn-reference.py: one run
 * of the script per group (the bench makes a group per round) times both networks at every thread setting,
 * each setting in its own process with the same thread variables as the MLP references, 20 warm-up steps
 * and then `minRuns` timed epochs. Tools `torch 1t`, `torch 2t`, ... as for the MLP epochs. The libraries'
 * default thread count (0 in --threads) has no row here: the script sets the count explicitly.
 */
export function torchCnnTools(workloads: Workload[], settings: ReferenceThreads[]): ToolGroup {
  const cnn = workloads.filter((w): w is CnnEpochWorkload => w.kind === "cnnEpoch");
  const python = cnn.length ? torchPython() : undefined;
  const threads = settings.filter((t): t is number => t !== null);
  if (!cnn.length || !python || !threads.length) {
    const reason = !python ? "no python3 with torch found (apt-get install python3-torch)" : "no explicit thread setting in --threads";
    return { tools: [], notes: () => [], missing: cnn.length ? [{ name: "torch cnn epochs", reason }] : [] };
  }
  let output: CnnReferenceOutput | Error | undefined;
  const load = (): CnnReferenceOutput => {
    if (output === undefined) {
      const epochs = Math.max(...cnn.map((w) => w.minRuns)), samples = cnn[0].samples;
      const run = spawnSync(python, [SCRIPT, "--no-layers", "--threads", threads.join(","), "--epochs", String(epochs), "--samples", String(samples)],
        { encoding: "utf8", maxBuffer: 16 << 20 });
      output = run.status === 0 ? JSON.parse(run.stdout) as CnnReferenceOutput : new Error(`${python} ${SCRIPT} failed:\n${run.stderr}`);
    }
    if (output instanceof Error) throw output;
    return output;
  };
  const tools: Tool[] = threads.map((n) => ({
    name: `torch ${n}t`,
    async run(w: Workload): Promise<Timing | undefined> {
      if (w.kind !== "cnnEpoch") return undefined;
      const seconds = load().settings[String(n)]?.epochs[EPOCH_KEYS[w.network]];
      return seconds === undefined ? undefined : { medianMs: seconds * 1000, runs: w.minRuns };
    },
  }));
  const notes = (): string[] => (output && !(output instanceof Error)
    ? [`convolutional networks' epochs (cnn, LeNet): ${cnn[0].warmupSteps} warm-up steps, then ${cnn[0].minRuns} timed epoch per round, for tapegrad and for PyTorch (bench/cnn-reference.py, torch ${output.torch}, glibc keeping freed memory in its heap)`]
    : []);
  return { tools, missing: [], notes };
}
