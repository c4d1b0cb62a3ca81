// Global options shared by every command (--root, -v, -q) and the bridge from parsed flags to an
// operation's Context.
import type { Command } from "commander";
import { createContext, type Context } from "../util/context.js";
import { StderrLogger, type Verbosity } from "../util/log.js";

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
