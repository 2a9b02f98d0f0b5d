/** Downloads one file with a progress bar, a checksum check and an atomic rename. */
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, mkdirSync, renameSync, rmSync, type WriteStream } from "node:fs";
import { basename, dirname, join } from "node:path";
import cliProgress from "cli-progress";

/** Expected digests of a file, hex-encoded; every one given is checked. */
export interface Checksum {
  md5?: string;
  sha256?: string;
}

export interface DownloadOptions {
  /** Digests the downloaded bytes must match; a mismatch deletes the download. */
  checksum?: Checksum;
  /** Show a progress bar on stderr (default: when stderr is a terminal). */
  progress?: boolean;
  /** Give up when no bytes arrive for this long (default 30 s). */
  idleTimeoutMs?: number;
}

/** A download that failed; no file was left at the destination. */
export class DownloadError extends Error {
  constructor(
    readonly url: string,
    detail: string,
  ) {
    super(`download of ${url} failed: ${detail}`);
    this.name = "DownloadError";
  }
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

/**
 * Downloads `url` to `dest`: streamed to a temporary file beside `dest`, hashed on the way, checked
 * against `checksum`, then renamed into place. Any failure (network, HTTP status, short body, checksum)
 * removes the temporary file and throws a DownloadError, so `dest` is either complete or absent.
 *
 * @example await downloadFile(url, "/home/me/.cache/tapegrad/fashion-mnist/t10k-labels-idx1-ubyte.gz", { checksum: { md5 } });
 */
export async function downloadFile(url: string, dest: string, options: DownloadOptions = {}): Promise<void> {
  const { checksum = {}, idleTimeoutMs = 30_000 } = options;
  const showBar = options.progress ?? Boolean(process.stderr.isTTY);
  const tmp = join(dirname(dest), `.${basename(dest)}.${process.pid}.${randomBytes(4).toString("hex")}.part`);
  const controller = new AbortController();
  let idleTimer: NodeJS.Timeout | undefined;
  const resetIdle = () => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => controller.abort(new Error(`no data for ${idleTimeoutMs} ms`)), idleTimeoutMs);
  };
  let bar: cliProgress.SingleBar | undefined;
  let file: WriteStream | undefined;
  let fileError: Error | undefined;
  let fileClosed: Promise<void> = Promise.resolve();
  try {
    resetIdle();
    let response: Response;
    try {
      response = await fetch(url, { signal: controller.signal });
    } catch (err) {
      throw new DownloadError(url, describe(err));
    }
    if (!response.ok || response.body === null) {
      await response.body?.cancel().catch(() => undefined);
      throw new DownloadError(url, `HTTP ${response.status} ${response.statusText}`.trim());
    }
    // The directory and the temporary file are only created once the server has answered.
    mkdirSync(dirname(dest), { recursive: true });
    const out = createWriteStream(tmp);
    file = out;
    out.on("error", (err) => (fileError = err));
    // 'close' follows a clean end as well as a destroy or an error, so waiting on it never hangs.
    fileClosed = new Promise<void>((resolve) => out.on("close", () => resolve()));
    // With a content-encoding, fetch decodes the body and content-length no longer counts what we read.
    const lengthHeader = response.headers.get("content-encoding") === null ? response.headers.get("content-length") : null;
    const total = lengthHeader === null ? undefined : Number(lengthHeader);
    if (!showBar && options.progress === undefined) {
      process.stderr.write(`tapegrad: downloading ${url} (${total === undefined ? "size unknown" : formatBytes(total)})\n`);
    }
    if (showBar) {
      bar = new cliProgress.SingleBar(
        {
          format: `${basename(dest)} [{bar}] {percentage}% | {got} / {size}`,
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total ?? 0, 0, { got: formatBytes(0), size: total === undefined ? "?" : formatBytes(total) });
    }
    const md5 = createHash("md5");
    const sha256 = createHash("sha256");
    let received = 0;
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        resetIdle();
        md5.update(value);
        sha256.update(value);
        received += value.length;
        if (!out.write(value)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              out.off("drain", done);
              out.off("close", done);
              resolve();
            };
            out.on("drain", done);
            out.on("close", done);
          });
        }
        if (fileError !== undefined) throw fileError;
        bar?.update(received, { got: formatBytes(received) });
      }
    } catch (err) {
      if (err === fileError) throw new DownloadError(url, `cannot write ${tmp} (${describe(err)})`);
      throw new DownloadError(url, `connection lost after ${received} bytes (${describe(err)})`);
    }
    out.end();
    await fileClosed;
    if (fileError !== undefined) throw new DownloadError(url, `cannot write ${tmp} (${describe(fileError)})`);
    if (total !== undefined && Number.isFinite(total) && received !== total) {
      throw new DownloadError(url, `incomplete body: expected ${total} bytes, got ${received}`);
    }
    const actual: Required<Checksum> = { md5: md5.digest("hex"), sha256: sha256.digest("hex") };
    for (const kind of ["md5", "sha256"] as const) {
      const want = checksum[kind];
      if (want !== undefined && want.toLowerCase() !== actual[kind]) {
        throw new DownloadError(url, `${kind} checksum mismatch: expected ${want.toLowerCase()}, got ${actual[kind]}`);
      }
    }
    renameSync(tmp, dest);
  } catch (err) {
    if (file !== undefined) {
      file.destroy();
      await fileClosed;
      rmSync(tmp, { force: true });
    }
    throw err instanceof DownloadError ? err : new DownloadError(url, describe(err));
  } finally {
    clearTimeout(idleTimer);
    bar?.stop();
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as Error & { code?: string }).code;
    return `${err.message}: ${code ?? cause.message}`;
  }
  return err.message;
}
