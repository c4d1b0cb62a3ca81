// Progress for long work (downloads, hashing, builds): a bar with size, speed and ETA on a TTY,
// nothing otherwise unless -v asks for periodic lines. cli-progress is loaded only when a bar
// is really drawn, so short commands never pay for it.
import type { SingleBar } from "cli-progress";
import type { Logger } from "./log.js";

export interface Progress {
  /** Adds `delta` units of work done. */
  tick(delta: number): void;
  /** Sets the total once it is known (e.g. after response headers). */
  setTotal(total: number): void;
  stop(): void;
}

export type ProgressFactory = (label: string, total?: number, unit?: "bytes" | "items") => Progress;

export const noProgress: Progress = { tick() {}, setTotal() {}, stop() {} };

export function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[i]}`;
}

function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--";
  if (seconds < 60) return `${Math.round(seconds)}s`;
  return `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, "0")}s`;
}

/** `label` + `rest` in `columns - 1` columns: the label is shortened (with …) before `rest` is. */
export function fitLabel(label: string, rest: string, columns: number): string {
  const room = columns - 1 - rest.length;
  if (label.length <= room) return label + rest;
  if (room >= 2) return label.slice(0, room - 1) + "…" + rest;
  return (label + rest).slice(0, Math.max(0, columns - 1));
}

/** A factory that draws bars on a TTY stderr and writes periodic lines under -v elsewhere. */
export function makeProgressFactory(
  log: Logger,
  streamOf: () => NodeJS.WriteStream = () => process.stderr,
): ProgressFactory {
  if (log.verbosity === "quiet") return () => noProgress;
  // Whether stderr is a TTY is asked at the first progress, not here: see StderrLogger.
  return (label, total, unit) => {
    const stream = streamOf();
    if (stream.isTTY) return new BarProgress(label, total ?? 0, unit ?? "bytes", stream);
    if (log.verbosity === "verbose") return new LineProgress(label, total, unit ?? "bytes", log);
    return noProgress;
  };
}

class LineProgress implements Progress {
  private done = 0;
  private last = Date.now();
  constructor(
    private readonly label: string,
    private total: number | undefined,
    private readonly unit: "bytes" | "items",
    private readonly log: Logger,
  ) {}
  tick(delta: number): void {
    this.done += delta;
    if (Date.now() - this.last > 5000) {
      this.last = Date.now();
      this.log.debug(`${this.label}: ${this.describe()}`);
    }
  }
  setTotal(total: number): void {
    this.total = total;
  }
  stop(): void {}
  private describe(): string {
    const f = this.unit === "bytes" ? humanBytes : String;
    return this.total ? `${f(this.done)} of ${f(this.total)}` : f(this.done);
  }
}

class BarProgress implements Progress {
  private done = 0;
  private readonly started = Date.now();
  private bar: SingleBar | undefined;
  private loading = false;
  private stopped = false;

  constructor(
    private readonly label: string,
    private total: number,
    private readonly unit: "bytes" | "items",
    private readonly stream: NodeJS.WriteStream,
  ) {
    this.load();
  }

  private load(): void {
    this.loading = true;
    void import("cli-progress").then((mod) => {
      const cliProgress = mod.default;
      if (this.stopped) return;
      this.bar = new cliProgress.SingleBar(
        {
          stream: this.stream,
          hideCursor: true,
          clearOnComplete: true,
          format: (options, params) =>
            this.render(options.barsize ?? 30, params.value, params.total),
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(this.total, this.done);
    });
  }

  /**
   * One line that fits the terminal: size, rate and ETA always show; the bar takes what is left
   * (`barsize` at most, 5 at least) and then the label is shortened.
   */
  private render(barsize: number, value: number, total: number): string {
    const f = this.unit === "bytes" ? humanBytes : String;
    const elapsed = (Date.now() - this.started) / 1000;
    const rate = elapsed > 0 ? value / elapsed : 0;
    const speed = this.unit === "bytes" ? ` ${humanBytes(rate)}/s` : "";
    const columns = this.stream.columns > 0 ? this.stream.columns : 80;
    if (total <= 0) return fitLabel(this.label, ` ${f(value)}${speed}`, columns);
    const ratio = Math.min(1, value / total);
    const eta = rate > 0 ? (total - value) / rate : Infinity;
    const tail = ` ${f(value)}/${f(total)}${speed} ETA ${formatEta(eta)}`;
    // "label [bar]tail", with one column spare: a line that fills the width wraps on some terminals.
    const room = columns - 1 - tail.length - 3 - Math.min(this.label.length, 12);
    const width = Math.max(5, Math.min(barsize, room));
    const filled = Math.round(ratio * width);
    return fitLabel(
      this.label,
      ` [${"#".repeat(filled)}${"-".repeat(width - filled)}]${tail}`,
      columns,
    );
  }

  tick(delta: number): void {
    this.done += delta;
    this.bar?.update(this.done);
  }

  setTotal(total: number): void {
    this.total = total;
    this.bar?.setTotal(total);
  }

  stop(): void {
    this.stopped = true;
    if (this.loading) this.bar?.stop();
  }
}
