/**
 * The WebAssembly kernels' helper as a browser module worker (wasm-threads.ts starts it). Its first message
 * brings the compiled module, the shared memory, the control array and the job configuration; it
 * instantiates the module over that memory, answers { ready: true } and then serves jobs until the page
 * closes (Atomics.wait blocks this worker's event loop, which it no longer needs).
 */
import { helperLoop, JOB_PARAMS, runJob, SLOTS, threadKernels, type JobConfig } from "./wasm-parts.ts";

interface WorkerScope {
  addEventListener(type: "message", listener: (event: { data: unknown }) => void, options?: { once?: boolean }): void;
  postMessage(message: unknown): void;
}
interface WebAssemblyInstance { exports: Record<string, unknown> }
interface StartMessage { module: object; memory: object; control: SharedArrayBuffer; config: JobConfig }

const scope = globalThis as unknown as WorkerScope;
const wasm = (globalThis as unknown as { WebAssembly: { Instance: new (module: object, imports: object) => WebAssemblyInstance } }).WebAssembly;

scope.addEventListener("message", (event) => {
  const { module, memory, control, config } = event.data as StartMessage;
  const ctl = new Int32Array(control);
  let instance: WebAssemblyInstance;
  try {
    instance = new wasm.Instance(module, { env: { memory } });
  } catch (error) {
    Atomics.store(ctl, SLOTS.FAILED, 1);
    scope.postMessage({ error: (error as Error).message });
    return;
  }
  Atomics.store(ctl, SLOTS.READY, 1);
  scope.postMessage({ ready: true });
  helperLoop(ctl, threadKernels(instance.exports, config), config, SLOTS, JOB_PARAMS, runJob);
}, { once: true });
