/**
 * Bytes the JavaScript heap allocates per training step of the bench's MLP epoch (batch 128), and where:
 * V8's sampling heap profiler with the objects the collector already took included. What a step allocates
 * decides how often the young generation is collected (in browsers it starts small).
 *
 *   TAPEGRAD_BACKEND=wasm pnpm exec tsx bench/alloc-profile.ts [--steps=200] [--top=20]
 */
import { Session } from "node:inspector/promises";
import { parseArgs } from "node:util";
import * as ag from "../packages/autograd/src/index.ts";
import { gemmBackend, initWasmThreads } from "../packages/autograd/src/kernels/index.ts";
import { epochTrainer } from "./tools/tapegrad.ts";
import { mlpEpochWorkload } from "./workloads.ts";

const { values } = parseArgs({ options: { steps: { type: "string", default: "200" }, top: { type: "string", default: "20" } } });
const steps = Number(values.steps);
await initWasmThreads();
const run = await epochTrainer(ag, { ...mlpEpochWorkload(128), samples: 128 * steps });
// two epochs first, so that the pools are full and the functions optimised
run();
run();
const session = new Session();
session.connect();
await session.post("HeapProfiler.startSampling", { samplingInterval: 512, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as object);
run();
const { profile } = await session.post("HeapProfiler.stopSampling");
session.disconnect();

interface Node { callFrame: { functionName: string; url: string }; selfSize: number; children: Node[] }
const bySite = new Map<string, number>();
let total = 0;
const walk = (node: Node, caller: string): void => {
  const { functionName, url } = node.callFrame;
  const here = `${functionName || "(anonymous)"} (${url.split("/").pop()})`;
  // built-ins (subarray, slice, Map) are named with their caller
  const site = url === "" ? `${functionName} < ${caller}` : here;
  bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
  total += node.selfSize;
  for (const child of node.children) walk(child, here);
};
walk(profile.head as unknown as Node, "");
console.log(`${(total / steps / 1024).toFixed(1)} KB allocated per step (${gemmBackend()} backend), by site (bytes per step):`);
for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) console.log(`${(bytes / steps).toFixed(0).padStart(8)}  ${site}`);
