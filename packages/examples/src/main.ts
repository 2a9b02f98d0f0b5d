/**
 * `pnpm example <name> [options]`: runs one example. `pnpm example --help` lists them;
 * `pnpm example <name> --help` shows its options. Exit codes: 0 done, 1 a file or folder problem, 2 a bad
 * command line, 3 a failed check (non-finite loss or checkpoint, gradients that disagree), 130 stopped by
 * Ctrl-C (a training run saves a checkpoint first; see lib/errors.ts).
 */
import { TapegradError } from "@tapegrad/autograd";
import { helpText, parseCommandLine } from "./lib/cli.ts";
import { EXIT_CHECK_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, InterruptedError, exitCodeOf } from "./lib/errors.ts";
import { discardUnusedOutputs } from "./lib/output.ts";
import { trainingInProgress } from "./lib/training-run.ts";
import { examples } from "./examples/index.ts";

function usage(): string {
  const width = Math.max(...examples.map((e) => e.name.length)) + 2;
  return [
    "Usage: pnpm example <name> [options]     (pnpm start = pnpm example mlp)",
    "",
    "Examples:",
    ...examples.map((e) => `  ${e.name.padEnd(width)}${e.summary}`),
    "",
    "Run `pnpm example <name> --help` for an example's options.",
    "Exit codes: 0 done, 1 data/checkpoint/folder problem, 2 bad options, 3 check failed (NaN loss, gradients disagree), 130 Ctrl-C.",
  ].join("\n");
}

/**
 * Ctrl-C: a training run finishes its current step, saves a checkpoint and stops (the example throws an
 * InterruptedError that says where); a second Ctrl-C, or one outside training, quits at once.
 */
function handleInterrupts(controller: AbortController): () => void {
  let done = false;
  const onSigint = () => {
    if (done) return;
    if (!controller.signal.aborted && trainingInProgress()) {
      controller.abort();
      console.error("\nCtrl-C: stopping after this step and saving a checkpoint (Ctrl-C again quits without saving)");
      return;
    }
    console.error("\ninterrupted");
    discardUnusedOutputs();
    process.exit(EXIT_INTERRUPTED);
  };
  process.on("SIGINT", onSigint);
  return () => {
    done = true;
  };
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const example = examples.find((e) => e.name === name);
  if (!example) {
    console.error(`unknown example ${JSON.stringify(name)}\n\n${usage()}`);
    return EXIT_USAGE;
  }
  const controller = new AbortController();
  const stopHandling = handleInterrupts(controller);
  let result;
  try {
    const { values, given } = parseCommandLine(rest, example.options);
    if (values.help === true) {
      console.log(helpText(`pnpm example ${example.name}`, example.summary, example.options));
      return EXIT_OK;
    }
    result = await example.runWith(values, { given, signal: controller.signal });
  } catch (err) {
    const code = exitCodeOf(err);
    if (code === EXIT_USAGE) {
      console.error(`${example.name}: ${(err as Error).message}\nRun \`pnpm example ${example.name} --help\` for the options.`);
    } else if (err instanceof InterruptedError) {
      console.error(`${example.name}: ${err.message}`);
    } else {
      // missing data, unreadable checkpoints, divergence...: the message says what to do; the stack only on request
      const debug = process.env.TAPEGRAD_DEBUG;
      console.error(`${example.name}: ${debug ? (err as Error).stack : (err as Error).message}`);
      if (!debug && !(err instanceof TapegradError)) console.error("(set TAPEGRAD_DEBUG=1 to see the stack)");
    }
    return code;
  } finally {
    stopHandling();
  }
  console.log(`\nfinished in ${result.seconds.toFixed(1)} s; outputs in ${result.outDir}`);
  for (const f of result.files) console.log(`  ${f}`);
  console.log(`RESULT ${JSON.stringify({ ...result, files: undefined })}`);
  if (result.failed !== undefined) {
    console.error(`${example.name}: check failed: ${result.failed}`);
    return EXIT_CHECK_FAILED;
  }
  return EXIT_OK;
}

process.exitCode = await main(process.argv.slice(2));
