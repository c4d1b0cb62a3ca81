// Global options shared by every command (--root, -v, -q) and the bridge from parsed flags to an
// operation's Context.
import type { Command } from "commander";
import { createContext, type Context } from "../util/context.js";
import { StderrLogger, type Verbosity } from "../util/log.js";
import { UsageError } from "../util/errors.js";

export interface GlobalOptions {
  root: string;
  verbose?: boolean;
  quiet?: boolean;
}

export function globalsOf(command: Command): GlobalOptions {
  return command.optsWithGlobals<GlobalOptions>();
}

export function verbosityOf(options: GlobalOptions): Verbosity {
  if (options.quiet) return "quiet";
  if (options.verbose) return "verbose";
  return "normal";
}

export function contextFor(command: Command): Context {
  const options = globalsOf(command);
  return createContext({ root: options.root, log: new StderrLogger(verbosityOf(options)) });
}

/** Parses a repeatable option into an array (commander's collector). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(
      `--timeout wants a positive number of seconds, got ${JSON.stringify(value)}`,
    );
  return n;
}

/** `--timeout SECONDS` of the commands that download: the low-speed limit (stall-guard.ts). */
export const TIMEOUT_OPTION = [
  "--timeout <seconds>",
  "give up when a server sends less than 1 KiB in this many seconds (default 60)",
  parseSeconds,
] as const;
