/** Progress bars (cli-progress on stderr), silent when stderr is not a terminal or when disabled. */
import type { DownloadProgress } from "@tapegrad/nn/node";
import cliProgress from "cli-progress";

export interface EpochBar {
  /** Advance to `done` batches, showing the running loss and accuracy. */
  update(done: number, loss: number, accuracy: number): void;
  stop(): void;
}

const silent: EpochBar = { update() {}, stop() {} };

export function epochBar(label: string, batches: number, enabled = true): EpochBar {
  if (!enabled || !process.stderr.isTTY) return silent;
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} batches | loss {loss} | acc {acc} | {duration_formatted} < {eta_formatted}`,
      barsize: 30,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(batches, 0, { loss: "-", acc: "-" });
  return {
    update(done, loss, accuracy) {
      bar.update(done, { loss: loss.toFixed(4), acc: accuracy.toFixed(4) });
    },
    stop() {
      bar.stop();
    },
  };
}

/** A plain counting bar, e.g. over the parameter elements of a numerical gradient. */
export function countBar(label: string, total: number, unit: string, enabled = true): { update(done: number): void; stop(): void } {
  if (!enabled || !process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {value}/{total} ${unit} | {duration_formatted} < {eta_formatted}`, barsize: 30, hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return { update: (done) => bar.update(done), stop: () => bar.stop() };
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

/**
 * An onProgress for the data set loaders: one bar per downloaded file on a terminal, otherwise one line per
 * file when its download starts.
 * @example await fashionMnist({ split: "train", onProgress: downloadProgress() })
 */
export function downloadProgress(enabled = true): (progress: DownloadProgress) => void {
  const bars = new Map<string, cliProgress.SingleBar>();
  return ({ url, file, received, total }) => {
    let bar = bars.get(url);
    if (bar === undefined) {
      if (!enabled || !process.stderr.isTTY) {
        if (received === 0) console.warn(`downloading ${url} (${total === undefined ? "size unknown" : formatBytes(total)})`);
        return;
      }
      bar = new cliProgress.SingleBar(
        { format: `${file} [{bar}] {percentage}% | {got} / {size}`, stream: process.stderr, hideCursor: true, clearOnComplete: false },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total ?? 0, 0, { got: formatBytes(0), size: total === undefined ? "?" : formatBytes(total) });
      bars.set(url, bar);
    }
    bar.update(received, { got: formatBytes(received) });
    if (total !== undefined && received >= total) {
      bar.stop();
      bars.delete(url);
    }
  };
}
