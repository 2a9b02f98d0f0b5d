import type { Timing } from "../measure.ts";
import type { Workload } from "../workloads.ts";

/** One benchmarked implementation. `run` resolves undefined where the workload does not apply to it. */
export interface Tool {
  name: string;
  run(workload: Workload): Promise<Timing | undefined>;
}

/** A tool that could not be loaded, with the reason and how to install it. */
export interface MissingTool {
  name: string;
  reason: string;
}

/** Tools that load together; `notes` (versions, settings, peak memory) is read after all runs. */
export interface ToolGroup {
  tools: Tool[];
  missing: MissingTool[];
  notes(): string[];
}
