// Logs, warnings and notes for people go to stderr; data goes to stdout. -q hides notes,
// -v shows details (and the commands extctl runs). NO_COLOR is honoured. Messages are one line
// each: control characters in them (from names, labels, release fields) are escaped. Under a
// systemd unit each line carries its journal priority (util/journal.ts).
import { escapeControl } from "./escape.js";
import { withPriority } from "./journal.js";
import { writeStderr } from "./stdio.js";

export type Verbosity = "quiet" | "normal" | "verbose";

export interface Logger {
  readonly verbosity: Verbosity;
  /** Something the user should know even with -q. */
  warn(message: string): void;
  /** A step of progress or a friendly note; hidden by -q. */
  info(message: string): void;
  /** Details for -v. */
  debug(message: string): void;
}

function useColor(stream: NodeJS.WriteStream): boolean {
  return stream.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== "dumb";
}

export class StderrLogger implements Logger {
  private color: boolean | undefined;

  constructor(readonly verbosity: Verbosity = "normal") {}

  warn(message: string): void {
    writeStderr(
      withPriority("warning", `${this.paint("33", "warning:")} ${escapeControl(message)}\n`),
    );
  }

  info(message: string): void {
    if (this.verbosity !== "quiet")
      writeStderr(withPriority("info", `${escapeControl(message)}\n`));
  }

  debug(message: string): void {
    if (this.verbosity === "verbose")
      writeStderr(withPriority("debug", `${this.paint("2", escapeControl(message))}\n`));
  }

  /** process.stderr is asked whether it is a TTY only here: see util/stdio.ts. */
  private paint(code: string, text: string): string {
    this.color ??= useColor(process.stderr);
    return this.color ? `\x1b[${code}m${text}\x1b[0m` : text;
  }
}

/** Collects messages instead of printing them: for the library API and for tests. */
export class MemoryLogger implements Logger {
  readonly lines: { level: "warn" | "info" | "debug"; message: string }[] = [];
  constructor(readonly verbosity: Verbosity = "verbose") {}
  warn(message: string): void {
    this.lines.push({ level: "warn", message });
  }
  info(message: string): void {
    this.lines.push({ level: "info", message });
  }
  debug(message: string): void {
    this.lines.push({ level: "debug", message });
  }
  text(): string {
    return this.lines.map((l) => l.message).join("\n");
  }
}

export const silentLogger: Logger = {
  verbosity: "quiet",
  warn() {},
  info() {},
  debug() {},
};
