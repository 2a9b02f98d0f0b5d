/** Downloads one file with a checksum check and an atomic rename, reporting progress to a callback. */
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { basename, dirname } from "node:path";
import { TapegradError } from "@tapegrad/autograd";
import { writeFileAtomicAsync } from "./atomic.ts";

/** Expected digests of a file, hex-encoded; every one given is checked. */
export interface Checksum {
  md5?: string;
  sha256?: string;
}

/** Where a download stands: reported once when the server answers, then after every chunk received. */
export interface DownloadProgress {
  url: string;
  /** The destination's file name, e.g. "train-images-idx3-ubyte.gz". */
  file: string;
  /** Bytes received so far. */
  received: number;
  /** The body's size from content-length, or undefined when the server does not say. */
  total: number | undefined;
}

export interface DownloadOptions {
  /** Digests the downloaded bytes must match; a mismatch deletes the download. */
  checksum?: Checksum;
  /** Called as the bytes arrive (draw a progress bar from it); nothing is printed by the library. */
  onProgress?: (progress: DownloadProgress) => void;
  /** Give up when no bytes arrive for this long (default 30 s). */
  idleTimeoutMs?: number;
}

/** A download that failed; no file was left at the destination. */
export class DownloadError extends TapegradError {
  constructor(
    readonly url: string,
    detail: string,
  ) {
    super(`download of ${url} failed: ${detail}`);
  }
}

/**
 * Downloads `url` to `dest`: streamed to a temporary file beside `dest`, hashed on the way, checked
 * against `checksum`, then renamed into place. Any failure (network, HTTP status, short body, checksum)
 * removes the temporary file and throws a DownloadError, so `dest` is either complete or absent.
 *
 * @example await downloadFile(url, "/home/me/.cache/tapegrad/fashion-mnist/t10k-labels-idx1-ubyte.gz", { checksum: { md5 } });
 */
export async function downloadFile(url: string, dest: string, options: DownloadOptions = {}): Promise<void> {
  const { checksum = {}, idleTimeoutMs = 30_000, onProgress } = options;
  const controller = new AbortController();
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  const resetIdle = () => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => controller.abort(new Error(`no data for ${idleTimeoutMs} ms`)), idleTimeoutMs);
  };
  try {
    resetIdle();
    let response: Response;
    try {
      response = await fetch(url, { signal: controller.signal });
    } catch (err) {
      throw new DownloadError(url, describe(err));
    }
    const body = response.body;
    if (!response.ok || body === null) {
      await body?.cancel().catch(() => undefined);
      throw new DownloadError(url, `HTTP ${response.status} ${response.statusText}`.trim());
    }
    // With a content-encoding, fetch decodes the body and content-length no longer counts what we read.
    const lengthHeader = response.headers.get("content-encoding") === null ? response.headers.get("content-length") : null;
    const total = lengthHeader === null || !Number.isFinite(Number(lengthHeader)) ? undefined : Number(lengthHeader);
    const file = basename(dest);
    onProgress?.({ url, file, received: 0, total });

    /** The body's chunks, hashed and counted; after the last one, the length and checksums are checked. */
    async function* chunks(): AsyncGenerator<Uint8Array> {
      const md5 = createHash("md5");
      const sha256 = createHash("sha256");
      let received = 0;
      const reader = body!.getReader();
      try {
        for (;;) {
          const next = await reader.read().catch((err: unknown) => {
            throw new DownloadError(url, `connection lost after ${received} bytes (${describe(err)})`);
          });
          if (next.done) break;
          resetIdle();
          md5.update(next.value);
          sha256.update(next.value);
          received += next.value.length;
          yield next.value;
          onProgress?.({ url, file, received, total });
        }
      } finally {
        reader.releaseLock();
      }
      if (total !== undefined && received !== total) {
        throw new DownloadError(url, `incomplete body: expected ${total} bytes, got ${received}`);
      }
      const actual: Required<Checksum> = { md5: md5.digest("hex"), sha256: sha256.digest("hex") };
      for (const kind of ["md5", "sha256"] as const) {
        const want = checksum[kind];
        if (want !== undefined && want.toLowerCase() !== actual[kind]) {
          throw new DownloadError(url, `${kind} checksum mismatch: expected ${want.toLowerCase()}, got ${actual[kind]}`);
        }
      }
    }

    // The directory and the temporary file are only created once the server has answered.
    try {
      mkdirSync(dirname(dest), { recursive: true });
      await writeFileAtomicAsync(dest, chunks());
    } catch (err) {
      if (err instanceof DownloadError) throw err;
      throw new DownloadError(url, `cannot write ${dest} (${describe(err)})`);
    } finally {
      if (!body.locked) await body.cancel().catch(() => undefined);
    }
  } finally {
    clearTimeout(idleTimer);
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
