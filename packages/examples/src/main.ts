/**
 * `pnpm example <name> [options]`: runs one example. `pnpm example --help` lists them;
 * `pnpm example <name> --help` shows its options.
 */
import { helpText, parseOptions, UsageError } from "./lib/cli.ts";
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
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  const example = examples.find((e) => e.name === name);
  if (!example) {
    console.error(`unknown example ${JSON.stringify(name)}\n\n${usage()}`);
    return 2;
  }
  let result;
  try {
    const values = parseOptions(rest, example.options);
    if (values.help === true) {
      console.log(helpText(`pnpm example ${example.name}`, example.summary, example.options));
      return 0;
    }
    result = await example.runWith(values);
  } catch (err) {
    // util.parseArgs throws TypeErrors with a code for unknown options and missing values
    const isArgError = err instanceof UsageError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
    if (isArgError) {
      console.error(`${example.name}: ${(err as Error).message}\nRun \`pnpm example ${example.name} --help\` for the options.`);
      return 2;
    }
    // missing data, unreadable checkpoints...: the message says what to do; the stack only on request
    const debug = process.env.TAPEGRAD_DEBUG;
    console.error(`${example.name}: ${debug ? (err as Error).stack : (err as Error).message}`);
    if (!debug) console.error("(set TAPEGRAD_DEBUG=1 to see the stack)");
    return 1;
  }
  console.log(`\nfinished in ${result.seconds.toFixed(1)} s; outputs in ${result.outDir}`);
  for (const f of result.files) console.log(`  ${f}`);
  console.log(`RESULT ${JSON.stringify({ ...result, files: undefined })}`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
