/**
 * The examples' failures, each with the exit code `pnpm example` ends with:
 *   0 done, 1 a file or folder problem, 2 a bad command line, 3 a failed numerical check,
 *   130 stopped by Ctrl-C (SIGINT) after saving a checkpoint.
 */
import { TapegradError } from "@tapegrad/autograd";

export const EXIT_OK = 0;
/** Data, checkpoint or output folder missing, unreadable, unwritable or not what was expected. */
export const EXIT_ERROR = 1;
/** Unknown option, a value out of range or too big for memory, conflicting options, a non-empty --out. */
export const EXIT_USAGE = 2;
/** A non-finite loss or weights in training, non-finite values in a checkpoint, gradients that disagree. */
export const EXIT_CHECK_FAILED = 3;
/** Interrupted with Ctrl-C (128 + SIGINT's number 2, as a shell reports it). */
export const EXIT_INTERRUPTED = 130;

/** A bad command line: main prints the message and a pointer to --help, and exits with status 2. */
export class UsageError extends TapegradError {}

/** A file or folder the run needs is missing or unusable (exit 1). */
export class RunFileError extends TapegradError {}

/** A numerical check failed (exit 3): NaN or ±Infinity in training or in a checkpoint. */
export class NonFiniteError extends TapegradError {}

/** Ctrl-C (or an aborted `signal`) stopped training after a step; `checkpoint` holds the state to resume from. */
export class InterruptedError extends TapegradError {
  constructor(
    message: string,
    readonly checkpoint?: string,
  ) {
    super(message);
  }
}

/** The exit code for an error thrown by an example. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return EXIT_USAGE;
  if (err instanceof NonFiniteError) return EXIT_CHECK_FAILED;
  if (err instanceof InterruptedError) return EXIT_INTERRUPTED;
  // util.parseArgs throws TypeErrors with an ERR_PARSE_ARGS_* code; parseOptions rewords the usual ones
  if ((err as { code?: string } | null)?.code?.startsWith("ERR_PARSE_ARGS")) return EXIT_USAGE;
  return EXIT_ERROR;
}

/** A system error's code (ENOENT, EACCES, ...) in words. */
export function systemReason(err: unknown): string {
  const code = (err as { code?: string } | null)?.code;
  switch (code) {
    case "ENOENT": return "no such file or folder";
    case "EACCES":
    case "EPERM": return "permission denied";
    case "EROFS": return "the file system is read-only";
    case "ENOTDIR": return "a file is in the way where a folder is needed";
    case "EISDIR": return "it is a folder, not a file";
    case "ENOSPC": return "the disk is full";
    case "EDQUOT": return "the disk quota is used up";
    case "EEXIST": return "it already exists";
    default: return err instanceof Error ? err.message : String(err);
  }
}
