/**
 * One tapegrad epoch workload in a child Node process with its own flags (bench/tools/tapegrad.ts's
 * tools): reads the workload as JSON on stdin, runs it as the bench does and prints the timing and the
 * process's peak RSS as JSON on stdout.
 */
import { readFileSync } from "node:fs";
import { runCnnEpoch, runEpoch } from "./tools/tapegrad.ts";
import type { CnnEpochWorkload, EpochWorkload } from "./workloads.ts";

const workload = JSON.parse(readFileSync(0, "utf8")) as EpochWorkload | CnnEpochWorkload;
const api = await import("../packages/autograd/src/index.ts");
const timing = workload.kind === "cnnEpoch" ? await runCnnEpoch(api, workload) : await runEpoch(api, workload);
process.stdout.write(`${JSON.stringify({ ...timing, peakRssMb: process.resourceUsage().maxRSS / 1024 })}\n`);
