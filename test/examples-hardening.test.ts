/**
 * The examples keep the user's work and fail loudly (issue 18, "Training runs"): divergence stops a run,
 * checkpoints every epoch, --resume continues bit for bit, Ctrl-C saves and exits 130, --out is not
 * overwritten by accident, killed saves leave no temp files for long, --data is strict and checked, options
 * are checked before any work, and every failure has an exit code. Runs on the examples' sample and tiny
 * fixtures written here; the child-process cases start `pnpm example`'s main.ts with node --import tsx.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { run as fromScratch } from "../packages/examples/src/examples/from-scratch.ts";
import { run as hardest } from "../packages/examples/src/examples/hardest.ts";
import { examples } from "../packages/examples/src/examples/index.ts";
import { type MlpOptions, run as mlp } from "../packages/examples/src/examples/mlp.ts";
import { decodeJson, type TrainingState } from "../packages/examples/src/lib/checkpoints.ts";
import { parseCommandLine } from "../packages/examples/src/lib/cli.ts";
import { type ImageDataset, checkDataset, fashionMnistSample, loadSplit, loadSplits } from "../packages/examples/src/lib/data.ts";
import {
  EXIT_CHECK_FAILED, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, InterruptedError, NonFiniteError, RunFileError, UsageError, exitCodeOf,
} from "../packages/examples/src/lib/errors.ts";
import { loadStateSync, saveSync } from "../packages/nn/src/node/checkpoint.ts";
import { writeIdx } from "../packages/nn/src/node/idx.ts";

const sample = fashionMnistSample;
const repo = fileURLToPath(new URL("..", import.meta.url));
const mainTs = join(repo, "packages/examples/src/main.ts");
const root = mkdtempSync(join(tmpdir(), "tapegrad-hardening-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const dir = (name: string) => join(root, name);

const quiet = { log: () => {}, progress: false };
/** A small, quick mlp run with momentum (so the optimizer has state to save): 19 steps per epoch. */
const base: MlpOptions = {
  ...quiet, dataset: "fashion-mnist", data: sample, limitTrain: 600, limitTest: 100, seed: 0,
  hidden: 32, momentum: 0.9, batchSize: 32, lr: 0.05, epochs: 3,
};

/** Each tensor's bytes, by name. */
function tensorBytes(path: string): Record<string, string> {
  const { tensors } = loadStateSync(path);
  return Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString("base64")]));
}

function trainingState(path: string): TrainingState {
  return decodeJson(loadStateSync(path).metadata.training) as TrainingState;
}

/** metrics.jsonl without the timings. */
function metrics(runDir: string): Array<Record<string, number>> {
  return readFileSync(join(runDir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => {
    const { seconds: _s, ...rest } = JSON.parse(l);
    return rest;
  });
}

/** Runs main.ts in a child process; resolves with its exit code and output. */
function example(args: string[], onStdout?: (text: string, child: ChildProcess) => void): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", mainTs, ...args], { cwd: repo, env: { ...process.env, TAPEGRAD_DEBUG: "" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d;
      onStdout?.(stdout, child);
    });
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** A fake image dataset with the given labels (for checkDataset, which reads only sizes and labels). */
function fakeDataset(labels: number[], split: "train" | "test", extra: Partial<ImageDataset> = {}): ImageDataset {
  return {
    name: "x", split, images: new Float32Array(0), labels: Int32Array.from(labels), n: labels.length, rows: 28, cols: 28,
    classes: Array.from({ length: 10 }, (_, i) => String(i)), source: "root:/fixture", isSample: false, ...extra,
  };
}

/** `counts[c]` labels of each class c. */
const labelsWithCounts = (counts: number[]) => counts.flatMap((n, c) => Array<number>(n).fill(c));

describe("examples: a diverging run fails", () => {
  it("mlp stops at the first NaN loss, names epoch and step, and writes no checkpoint", async () => {
    const out = dir("diverge");
    const err = await mlp({ ...base, out, lr: 1e10, momentum: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteError);
    expect(exitCodeOf(err)).toBe(EXIT_CHECK_FAILED);
    expect((err as Error).message).toMatch(/^training diverged: the training loss is NaN at epoch 1, step \d+ of 19\. No checkpoint was written\./);
    expect((err as Error).message).toContain("--allow-nonfinite");
    expect(existsSync(join(out, "model.safetensors")) || existsSync(join(out, "checkpoints"))).toBe(false);
  });

  it("from-scratch stops the same way", async () => {
    await expect(fromScratch({ ...base, out: dir("diverge-scratch"), lr: 1e10 })).rejects.toThrow(/training loss is NaN at epoch 1, step \d+ of 19/);
  });

  it("--allow-nonfinite trains on and says where it went wrong; hardest refuses that checkpoint unless allowed, and ranks NaN first", async () => {
    const out = dir("nonfinite-allowed");
    const result = await mlp({ ...base, out, lr: 1e10, momentum: 0, epochs: 1, allowNonFinite: true });
    expect(result.nonFinite).toMatch(/NaN at epoch 1, step \d+ of 19/);
    const checkpoint = join(out, "model.safetensors");
    const err = await hardest({ ...base, out: dir("hardest-nan"), checkpoint }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteError);
    expect((err as Error).message).toMatch(/holds non-finite values: tensor "[^"]+" has \d+ NaN or infinite values? \(the first, at index \d+, is (NaN|-?Infinity)\)/);
    await hardest({ ...base, out: dir("hardest-nan-allowed"), checkpoint, allowNonFinite: true });
    const firstRow = readFileSync(join(dir("hardest-nan-allowed"), "losses.csv"), "utf8").split("\n")[1];
    expect(firstRow.split(",")[2]).toBe("NaN");
  });

  it("hardest's default pick skips a newer run whose weights are NaN", async () => {
    const runsDir = dir("runs-pick");
    const good = join(runsDir, "mlp-1");
    const bad = join(runsDir, "mlp-2");
    mkdirSync(good, { recursive: true });
    mkdirSync(bad, { recursive: true });
    await mlp({ ...base, out: dir("pick-source"), epochs: 1 });
    copyFileSync(join(dir("pick-source"), "model.safetensors"), join(good, "model.safetensors"));
    copyFileSync(join(dir("nonfinite-allowed"), "model.safetensors"), join(bad, "model.safetensors"));
    utimesSync(join(good, "model.safetensors"), new Date(1e12), new Date(1e12));
    const lines: string[] = [];
    const result = await hardest({ ...base, out: dir("hardest-pick"), runsDir, log: (l) => lines.push(l) });
    expect(result.checkpoint).toBe(join(good, "model.safetensors"));
    expect(lines.some((l) => l.startsWith("skipping") && l.includes("mlp-2"))).toBe(true);
  });
});

describe("examples: checkpoints and --resume", () => {
  const whole = dir("whole");
  const resumed = dir("resumed");

  it("writes checkpoints/last and best after every epoch", async () => {
    await mlp({ ...base, out: whole });
    const last = join(whole, "checkpoints", "last.safetensors");
    const state = trainingState(last);
    expect([state.epoch, state.step, state.history.length]).toEqual([3, 0, 3]);
    const model = tensorBytes(join(whole, "model.safetensors"));
    const lastModel = Object.fromEntries(Object.entries(tensorBytes(last)).filter(([k]) => !k.startsWith("optimizer/")));
    expect(lastModel).toEqual(model);
    expect(Object.keys(tensorBytes(last)).filter((k) => k.startsWith("optimizer/")).sort()).toEqual(
      ["optimizer/0/momentumBuffer", "optimizer/1/momentumBuffer", "optimizer/2/momentumBuffer", "optimizer/3/momentumBuffer"],
    );
    const accuracies = metrics(whole).map((m) => m.testAccuracy);
    const bestEpoch = accuracies.indexOf(Math.max(...accuracies)) + 1;
    expect(loadStateSync(join(whole, "checkpoints", "best.safetensors")).metadata.epoch).toBe(String(bestEpoch));
  });

  it("a run stopped mid-epoch and at an epoch's end, then resumed, ends with the same weights bit for bit", async () => {
    const stopAtOnce = new AbortController();
    stopAtOnce.abort();
    const first = await mlp({ ...base, out: resumed, signal: stopAtOnce.signal }).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(InterruptedError);
    expect(exitCodeOf(first)).toBe(EXIT_INTERRUPTED);
    expect((first as Error).message).toMatch(/^stopped at epoch 1, step 1 of 19; saved .*last\.safetensors\.\nContinue with: pnpm example mlp --resume /);
    expect(trainingState(join(resumed, "checkpoints", "last.safetensors"))).toMatchObject({ epoch: 0, step: 1 });

    const stopAfterEpoch2 = new AbortController();
    const log = (line: string) => line.startsWith("epoch 2/3") && stopAfterEpoch2.abort();
    await expect(mlp({ ...base, resume: resumed, signal: stopAfterEpoch2.signal, log })).rejects.toThrow(/^stopped after epoch 2; saved/);

    const result = await mlp({ ...base, resume: resumed });
    expect(result.resumedFrom).toEqual({ epoch: 3, step: 0 });
    expect(tensorBytes(join(resumed, "model.safetensors"))).toEqual(tensorBytes(join(whole, "model.safetensors")));
    expect(metrics(resumed)).toEqual(metrics(whole));
  });

  it("from-scratch (parameters as plain tensors, no optimizer object) resumes mid-epoch bit for bit", async () => {
    const options = { ...base, epochs: 2 };
    await fromScratch({ ...options, out: dir("scratch-whole") });
    const stop = new AbortController();
    stop.abort();
    await expect(fromScratch({ ...options, out: dir("scratch-resumed"), signal: stop.signal })).rejects.toThrow(/step 1 of 19/);
    await fromScratch({ ...options, resume: dir("scratch-resumed") });
    const last = (d: string) => tensorBytes(join(d, "checkpoints", "last.safetensors"));
    expect(last(dir("scratch-resumed"))).toEqual(last(dir("scratch-whole")));
    expect(metrics(dir("scratch-resumed"))).toEqual(metrics(dir("scratch-whole")));
  });

  it("a resumed run keeps its settings; a finished run needs more --epochs; a folder without a checkpoint cannot resume", async () => {
    const err = await mlp({ ...base, resume: resumed, epochs: 4, lr: 0.1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(/--lr 0\.1 differs from the run's --lr 0\.05/);
    await expect(mlp({ ...base, resume: resumed })).rejects.toThrow(/finished 3 epochs already; pass --epochs N with N > 3/);
    await expect(mlp({ ...base, resume: dir("nowhere") })).rejects.toThrow(RunFileError);
    mkdirSync(dir("empty-run"));
    await expect(mlp({ ...base, resume: dir("empty-run") })).rejects.toThrow(/has no checkpoints\/last\.safetensors/);
  });

  it("--resume DIR on the command line takes the run's settings, --epochs extends it, and the next save removes a killed save's temp file", async () => {
    // a save killed mid-write (SIGKILL) leaves its temp file beside the target
    const checkpoints = join(resumed, "checkpoints");
    const script = join(root, "slow-save.mjs");
    const atomic = join(repo, "packages/nn/src/node/atomic.ts");
    writeFileSync(script, `import { writeFileAtomic } from ${JSON.stringify(atomic)};\nwriteFileAtomic(process.argv[2], (function* () { yield new Uint8Array(8); for (;;) {} })());\n`);
    const child = spawn(process.execPath, ["--import", "tsx", script, join(checkpoints, "last.safetensors")], { cwd: repo });
    const leftover = await new Promise<string>((resolve) => {
      const poll = setInterval(() => {
        const found = readdirSync(checkpoints).find((n) => n.includes(".tmp-"));
        if (found) {
          clearInterval(poll);
          resolve(found);
        }
      }, 20);
    });
    child.kill("SIGKILL");
    await new Promise((resolve) => child.on("close", resolve));
    expect(existsSync(join(checkpoints, leftover))).toBe(true);
    // a temp file of a live process (this one's parent) is left alone
    const live = `best.safetensors.tmp-${process.ppid}-0123456789ab`;
    writeFileSync(join(checkpoints, live), "");

    const mlpExample = examples.find((e) => e.name === "mlp")!;
    const { values, given } = parseCommandLine(["--resume", resumed, "--epochs", "4", "--no-progress"], mlpExample.options);
    const result = await mlpExample.runWith({ ...values }, { given });
    expect(result).toMatchObject({ hidden: 32, epochs: 4, resumedFrom: { epoch: 4, step: 0 } });
    expect(metrics(resumed)).toHaveLength(4);
    expect(existsSync(join(checkpoints, leftover))).toBe(false);
    expect(existsSync(join(checkpoints, live))).toBe(true);
  });
});

describe("examples: the output folder", () => {
  it("--out refuses a non-empty folder; --overwrite removes the old run's files and keeps others", async () => {
    const out = dir("reused");
    await mlp({ ...base, out, epochs: 1 });
    const before = readFileSync(join(out, "model.safetensors"));
    const err = await mlp({ ...base, out, epochs: 1, seed: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(/is not empty .*\nAdd --resume .* to continue the run saved there, --overwrite to replace it/);
    expect(readFileSync(join(out, "model.safetensors")).equals(before)).toBe(true);

    writeFileSync(join(out, "predictions.png"), "stale");
    writeFileSync(join(out, "notes.txt"), "the user's");
    await mlp({ ...base, out, epochs: 1, seed: 1, overwrite: true });
    expect(readFileSync(join(out, "model.safetensors")).equals(before)).toBe(false);
    expect(existsSync(join(out, "predictions.png"))).toBe(false);
    expect(readFileSync(join(out, "notes.txt"), "utf8")).toBe("the user's");
  });

  it("an --out that cannot be created is an error in words (exit 1), not a raw ENOENT/ENOTDIR", async () => {
    writeFileSync(dir("a-file"), "");
    const err = await mlp({ ...base, out: join(dir("a-file"), "run") }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunFileError);
    expect(exitCodeOf(err)).toBe(EXIT_ERROR);
    expect((err as Error).message).toMatch(/cannot use the output folder .*a-file\/run: a file is in the way/);
  });

  it("a missing --checkpoint is an error in words (exit 1), before any work", async () => {
    const hardestExample = examples.find((e) => e.name === "hardest")!;
    const out = dir("hardest-missing");
    const { values } = parseCommandLine(["--checkpoint", dir("nope.safetensors"), "--out", out], hardestExample.options);
    const err = await hardestExample.runWith(values).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunFileError);
    expect((err as Error).message).toBe(`--checkpoint ${dir("nope.safetensors")} does not exist`);
    expect(existsSync(out)).toBe(false);
  });
});

describe("examples: --data is strict and data sets are checked", () => {
  /** A folder with fixture IDX files: n images of rows×cols per split, labels cycling 0..9. */
  function fixture(name: string, splits: Partial<Record<"train" | "test", { n: number; side?: number }>>): string {
    const folder = dir(name);
    mkdirSync(folder, { recursive: true });
    for (const [split, { n, side = 28 }] of Object.entries(splits)) {
      const prefix = split === "train" ? "train" : "t10k";
      writeIdx(join(folder, `${prefix}-images-idx3-ubyte.gz`), { shape: [n, side, side], data: new Uint8Array(n * side * side) });
      writeIdx(join(folder, `${prefix}-labels-idx1-ubyte.gz`), { shape: [n], data: Uint8Array.from({ length: n }, (_, i) => i % 10) });
    }
    return folder;
  }

  it("a --data folder without the test split stops naming the missing files, though another copy exists", async () => {
    const folder = dir("train-only");
    mkdirSync(folder);
    for (const f of ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]) copyFileSync(join(sample, f), join(folder, f));
    const err = await loadSplits({ dataset: "fashion-mnist", data: folder }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunFileError);
    expect((err as Error).message).toMatch(/Fashion-MNIST test split not found in .*train-only: missing t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte/);
  });

  it("a --data folder that does not exist is refused before any work", async () => {
    const mlpExample = examples.find((e) => e.name === "mlp")!;
    const out = dir("no-data-run");
    const { values } = parseCommandLine(["--data", dir("no-such-folder"), "--out", out], mlpExample.options);
    await expect(mlpExample.runWith(values)).rejects.toThrow(`--data ${dir("no-such-folder")}: the folder ${dir("no-such-folder")} does not exist`);
    expect(existsSync(out)).toBe(false);
  });

  it("files of the wrong size or count are refused, naming what was expected", async () => {
    const few = fixture("few-images", { train: { n: 100 }, test: { n: 20 } });
    await expect(loadSplit({ dataset: "fashion-mnist", data: few }, "train")).rejects.toThrow(
      /Fashion-MNIST train split from root:.*few-images: 100 images; Fashion-MNIST has 60000/,
    );
    const big = fixture("big-images", { test: { n: 10, side: 32 } });
    await expect(loadSplit({ dataset: "mnist", data: big }, "test")).rejects.toThrow(/the images are 32×32 pixels; MNIST's are 28×28/);
  });

  it("MNIST and Fashion-MNIST are told apart by their images per class", () => {
    const mnistTrain = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
    expect(() => checkDataset(fakeDataset(labelsWithCounts(mnistTrain), "train"), "fashion-mnist")).toThrow(
      /these are MNIST files, not Fashion-MNIST .*Use --dataset mnist/,
    );
    expect(() => checkDataset(fakeDataset(labelsWithCounts(Array(10).fill(1000)), "test"), "mnist")).toThrow(
      /these are Fashion-MNIST files, not MNIST .*Use --dataset fashion-mnist/,
    );
    expect(() => checkDataset(fakeDataset(labelsWithCounts(mnistTrain), "train"), "mnist")).not.toThrow();
    expect(() => checkDataset(fakeDataset(labelsWithCounts(Array(10).fill(100)), "test", { isSample: true }), "fashion-mnist")).not.toThrow();
  });

  it.skipIf(!existsSync("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"))(
    "Debian's Fashion-MNIST given as --dataset mnist is refused",
    async () => {
      await expect(loadSplit({ dataset: "mnist", data: "/usr/share/datasets/fashion-mnist" }, "test")).rejects.toThrow(
        /these are Fashion-MNIST files, not MNIST/,
      );
    },
  );
});

describe("examples: options are checked before any work, in the user's words", () => {
  const reject = async (name: string, argv: string[]) => {
    const e = examples.find((x) => x.name === name)!;
    const out = dir(`options-${name}-${argv.join("_").replace(/[^\w-]/g, "")}`);
    const err = await (async () => {
      const { values, given } = parseCommandLine(["--out", out, ...argv], e.options);
      return e.runWith(values, { given });
    })().catch((x: unknown) => x);
    expect(existsSync(out)).toBe(false); // nothing was created
    expect(err).toBeInstanceOf(UsageError);
    expect(exitCodeOf(err)).toBe(EXIT_USAGE);
    return (err as Error).message;
  };

  it("--epochs -1 gets a range message, not parseArgs' 'ambiguous'", async () => {
    expect(await reject("mlp", ["--epochs", "-1"])).toBe('--epochs must be a whole number of at least 1, got -1');
    expect(await reject("softmax-regression", ["--lr", "-0.5"])).toBe("--lr must be more than 0, got -0.5");
    expect(await reject("mlp", ["--epochs"])).toBe("--epochs needs a value N after it");
    expect(await reject("mlp", ["--epochs", "--lr", "1"])).toBe("--epochs needs a value N, got the option --lr");
    expect(await reject("mlp", ["--hiden", "3"])).toBe("unknown option --hiden (did you mean --hidden?)");
    expect(await reject("mlp", ["--momentum", "1"])).toMatch(/^--momentum must be below 1/);
    expect(await reject("mlp", ["--seed", "-3"])).toBe("--seed must be a whole number from 0 to 4294967295, got -3");
  });

  it("--hidden 100000000 gets a memory message", async () => {
    expect(await reject("mlp", ["--hidden", "100000000"])).toMatch(
      /^--hidden 100000000 needs about \d+ GiB of memory \(79,500,000,010 parameters .*\)\, more than this machine's .* allow\. Try --hidden \d+ or less/,
    );
    expect(await reject("from-scratch", ["--hidden", "100000000"])).toMatch(/needs about \d+ GiB of memory/);
  });

  it("gradient-check --images 100000 gets a range message; more images than the data hold too", async () => {
    expect(await reject("gradient-check", ["--images", "100000"])).toBe(
      "--images must be a whole number from 1 to 60000 (the training split has 60000 images), got 100000",
    );
    const e = examples.find((x) => x.name === "gradient-check")!;
    const { values } = parseCommandLine(["--images", "7000", "--data", sample, "--out", dir("gc-many")], e.options);
    await expect(e.runWith(values)).rejects.toThrow(/--images 7000: the training split from root:.* has only 6000 images/);
  });
});

describe("examples: exit codes of pnpm example (child processes)", () => {
  it("bad options exit 2, a diverging run and gradients that disagree exit 3", async () => {
    const [usage, diverged, disagree] = await Promise.all([
      example(["mlp", "--epochs", "-1"]),
      example([
        "mlp", "--data", sample, "--limit-train", "600", "--limit-test", "100", "--hidden", "32", "--batch-size", "32", "--lr", "1e10",
        "--no-progress", "--out", dir("cli-diverge"),
      ]),
      example(["gradient-check", "--data", sample, "--images", "2", "--hidden", "3", "--eps", "1", "--no-progress", "--out", dir("cli-gc")]),
    ]);
    expect(usage.code).toBe(EXIT_USAGE);
    expect(usage.stderr).toContain("mlp: --epochs must be a whole number of at least 1, got -1");
    expect(diverged.code).toBe(EXIT_CHECK_FAILED);
    expect(diverged.stderr).toMatch(/mlp: training diverged: the training loss is NaN at epoch 1, step \d+ of 19/);
    expect(existsSync(join(dir("cli-diverge"), "model.safetensors"))).toBe(false);
    expect(disagree.code).toBe(EXIT_CHECK_FAILED);
    expect(disagree.stdout).toContain("gradients DISAGREE");
    expect(JSON.parse(readFileSync(join(dir("cli-gc"), "result.json"), "utf8")).ok).toBe(false);
  });

  it("Ctrl-C (SIGINT) finishes the step, saves, says where and exits 130; --resume then matches an uninterrupted run", async () => {
    const out = dir("sigint");
    const args = [
      "mlp", "--data", sample, "--limit-train", "600", "--limit-test", "100", "--hidden", "32", "--momentum", "0.9",
      "--batch-size", "32", "--lr", "0.05", "--epochs", "500", "--no-progress", "--out", out,
    ];
    let sent = false;
    const stopped = await example(args, (text, child) => {
      if (!sent && text.includes("epoch   1/500")) {
        sent = true;
        child.kill("SIGINT");
      }
    });
    expect(stopped.code).toBe(EXIT_INTERRUPTED);
    expect(stopped.stderr).toMatch(/mlp: stopped (at|after) epoch \d+.*; saved .*last\.safetensors\.\nContinue with: pnpm example mlp --resume /);
    const { epoch } = trainingState(join(out, "checkpoints", "last.safetensors"));
    expect(epoch).toBeLessThan(500);
    const epochs = epoch + 1;
    await mlp({ ...base, resume: out, epochs });
    await mlp({ ...base, out: dir("sigint-whole"), epochs });
    expect(tensorBytes(join(out, "model.safetensors"))).toEqual(tensorBytes(join(dir("sigint-whole"), "model.safetensors")));
    expect(metrics(out)).toEqual(metrics(dir("sigint-whole")));
  });
});
