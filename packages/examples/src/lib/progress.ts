/** A per-epoch progress bar (cli-progress on stderr), silent when stderr is not a terminal or when disabled. */
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
