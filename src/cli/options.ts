// Typed command-line options: each command declares its flags once, as a spec that both adds
// them to commander and reads commander's parsed values back as checked, typed values.
import { Option, type Command } from "commander";
import { createContext, type Context } from "../util/context.js";
import { StderrLogger, type Verbosity } from "../util/log.js";
import { UsageError } from "../util/errors.js";
import type { RefreshMode } from "../domain/activate/refresh.js";

/**
 * One option (or a --x/--no-x pair): the commander options that parse it, and the check that the
 * value commander hands back has the type the handler is told it has. commander's own values are
 * `any`; this check is what lets the handlers' types be believed.
 */
export interface Flag<T> {
  /** Fresh commander options each call: sysext and confext commands must not share them. */
  readonly options: () => Option[];
  readonly read: (value: unknown) => T;
}

/** A command's flags by commander's attribute name (--ca-cert is caCert, --no-verity verity). */
export type FlagSpec = Readonly<Record<string, Flag<unknown>>>;

export type FlagValues<S extends FlagSpec> = {
  readonly [K in keyof S]: S[K] extends Flag<infer T> ? T : never;
};

type Tune = (option: Option) => Option;

/** A parsed value of the wrong type is a bug in a spec, not the user's error. */
function misparsed(flags: string, value: unknown): never {
  throw new Error(`extctl bug: ${flags} was parsed to ${typeof value} ${JSON.stringify(value)}`);
}

function flagOf<T>(
  flags: string,
  option: () => Option,
  check: (value: unknown) => value is T,
): Flag<T> {
  return {
    options: () => [option()],
    read: (value) => (check(value) ? value : misparsed(flags, value)),
  };
}

const isString = (v: unknown): v is string => typeof v === "string";
const isOptionalString = (v: unknown): v is string | undefined => v === undefined || isString(v);
const isOptionalBoolean = (v: unknown): v is boolean | undefined =>
  v === undefined || typeof v === "boolean";
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);

/** `--json`: true when given. */
export function boolFlag(flags: string, description?: string): Flag<boolean | undefined> {
  return flagOf(flags, () => new Option(flags, description), isOptionalBoolean);
}

/** `--no-verity`: true unless given (commander defaults a lone --no-x to true). */
export function negatedFlag(flags: string, description: string): Flag<boolean> {
  return flagOf(
    flags,
    () => new Option(flags, description),
    (v): v is boolean => typeof v === "boolean",
  );
}

/** `--trusted` and `--no-trusted`: true, false, or undefined when neither was given. */
export function flagPair(
  positive: [flags: string, description: string],
  negative: [flags: string, description: string],
): Flag<boolean | undefined> {
  return {
    options: () => [new Option(...positive), new Option(...negative)],
    read: (value) => (isOptionalBoolean(value) ? value : misparsed(positive[0], value)),
  };
}

/** `--name <file>`; with a default, never undefined; `tune` for commander's extras (conflicts). */
export function textFlag(flags: string, description: string, tune?: Tune): Flag<string | undefined>;
export function textFlag(flags: string, description: string, defaultValue: string): Flag<string>;
export function textFlag(
  flags: string,
  description: string,
  extra?: Tune | string,
): Flag<string | undefined> {
  if (typeof extra === "string")
    return flagOf(flags, () => new Option(flags, description).default(extra), isString);
  return flagOf(flags, () => (extra ?? same)(new Option(flags, description)), isOptionalString);
}

/** `--key <file>` that must be given (commander's requiredOption). */
export function mandatoryTextFlag(flags: string, description: string): Flag<string> {
  return flagOf(flags, () => new Option(flags, description).makeOptionMandatory(), isString);
}

/** A repeatable `--trust <file>`; with `[]` as default, never undefined. */
export function listFlag(flags: string, description: string): Flag<string[] | undefined>;
export function listFlag(flags: string, description: string, defaultValue: []): Flag<string[]>;
export function listFlag(
  flags: string,
  description: string,
  defaultValue?: [],
): Flag<string[] | undefined> {
  const option = () => {
    const made = new Option(flags, description).argParser(collect);
    return defaultValue ? made.default(defaultValue) : made;
  };
  return defaultValue
    ? flagOf(flags, option, isStrings)
    : flagOf(flags, option, (v): v is string[] | undefined => v === undefined || isStrings(v));
}

/** `--keep <n>`: `parse` turns the word into a number or throws the usage error. */
export function numberFlag(
  flags: string,
  description: string,
  parse: (value: string) => number,
  tune: Tune = same,
): Flag<number | undefined> {
  // argParser after tune: a tune's choices() would otherwise replace the parser.
  return flagOf(
    flags,
    () => tune(new Option(flags, description)).argParser(parse),
    (v): v is number | undefined => v === undefined || typeof v === "number",
  );
}

/** `--format <fs>` limited to `choices`; with a default, never undefined. */
export function choiceFlag<const C extends string>(
  flags: string,
  description: string,
  choices: readonly C[],
): Flag<C | undefined>;
export function choiceFlag<const C extends string>(
  flags: string,
  description: string,
  choices: readonly C[],
  defaultValue: NoInfer<C>,
): Flag<C>;
export function choiceFlag<const C extends string>(
  flags: string,
  description: string,
  choices: readonly C[],
  defaultValue?: C,
): Flag<C | undefined> {
  const isChoice = (v: unknown): v is C => (choices as readonly unknown[]).includes(v);
  const option = () => {
    const made = new Option(flags, description).choices(choices);
    return defaultValue === undefined ? made : made.default(defaultValue);
  };
  return defaultValue === undefined
    ? flagOf(flags, option, (v): v is C | undefined => v === undefined || isChoice(v))
    : flagOf(flags, option, isChoice);
}

function same(option: Option): Option {
  return option;
}

/** Adds the spec's options to `command` in the spec's order (the order --help lists them). */
export function addFlags(command: Command, spec: FlagSpec): Command {
  for (const key in spec)
    for (const option of (spec[key] as Flag<unknown>).options()) command.addOption(option);
  return command;
}

/** The checked, typed values of `spec` from commander's parsed ones (`cmd.opts()`). */
export function readFlags<S extends FlagSpec>(
  values: Readonly<Record<string, unknown>>,
  spec: S,
): FlagValues<S> {
  const read: Record<string, unknown> = {};
  for (const key in spec) read[key] = (spec[key] as Flag<unknown>).read(values[key]);
  return read as FlagValues<S>;
}

/**
 * The options of the command an action runs for, read through its spec. A spec key that is not
 * commander's attribute name for an option of the command would read nothing: refused here (the
 * check costs the one command that runs, not the start-up of every command).
 */
export function flagsOf<S extends FlagSpec>(command: Command, spec: S): FlagValues<S> {
  const names = new Set(command.options.map((o) => o.attributeName()));
  for (const key in spec)
    if (!names.has(key))
      throw new Error(`extctl bug: ${command.name()} has no option read as ${key}`);
  return readFlags(command.opts(), spec);
}

type MaybeUndefinedKeys<T> = {
  [K in keyof T]-?: undefined extends T[K] ? K : never;
}[keyof T];

/** `T` with each member that may be undefined made optional instead (what `defined` returns). */
export type Defined<T> = {
  [K in Exclude<keyof T, MaybeUndefinedKeys<T>>]: T[K];
} & {
  [K in MaybeUndefinedKeys<T>]?: Exclude<T[K], undefined>;
};

/**
 * `values` without its undefined members: an operation's defaults apply to what was not given.
 * Operations' options are exact (an absent key, never `key: undefined`); a flag that was not
 * given is undefined, and this is where the one becomes the other.
 */
export function defined<T extends object>(values: T): Defined<T> {
  return Object.fromEntries(
    Object.entries(values).filter(([, v]) => v !== undefined),
  ) as Defined<T>;
}

/** Parses a repeatable option into an array (commander's collector). */
function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export const GLOBAL_FLAGS = {
  root: textFlag("--root <dir>", "operate on this root directory instead of /", "/"),
  verbose: boolFlag("-v, --verbose", "show details and the commands extctl runs"),
  quiet: boolFlag("-q, --quiet", "print only warnings, errors and data"),
} as const satisfies FlagSpec;

export type GlobalOptions = FlagValues<typeof GLOBAL_FLAGS>;

export function globalsOf(command: Command): GlobalOptions {
  return readFlags(command.optsWithGlobals(), GLOBAL_FLAGS);
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

export function parseSeconds(value: string): number {
  return secondsOf("--timeout", value);
}

/** A parser for a flag of positive seconds whose errors name that flag. */
export function secondsFor(flag: string): (value: string) => number {
  return (value) => secondsOf(flag, value);
}

function secondsOf(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(
      `${flag} wants a positive number of seconds, got ${JSON.stringify(value)}`,
    );
  return n;
}

/** `--timeout SECONDS` of the commands that download: the low-speed limit (stall-guard.ts). */
export const TIMEOUT_FLAG = numberFlag(
  "--timeout <seconds>",
  "give up when a server sends less than 1 KiB in this many seconds (default 60)",
  parseSeconds,
);

/** `--timeout`'s seconds as the milliseconds operations take; undefined when not given. */
export function millisecondsOf(seconds: number | undefined): number | undefined {
  return seconds === undefined ? undefined : seconds * 1000;
}

/** The commands that print tables: systemd's --full and --no-legend (cli/render.ts). */
export const TABLE_FLAGS = {
  full: boolFlag(
    "--full",
    "show every table cell whole instead of fitting the table to the terminal",
  ),
  legend: negatedFlag("--no-legend", "print tables without their header line"),
} as const satisfies FlagSpec;

/** `--json`, which every command offers, each with its own wording; `--json=MODE`: render.ts. */
export function jsonFlag(description = "print the result as JSON"): Flag<boolean | undefined> {
  return boolFlag("--json", `${description} (--json=pretty|short|off; --json is short)`);
}

const REFRESH_MODES = [
  "auto",
  "systemctl",
  "sysext",
  "none",
] as const satisfies readonly RefreshMode[];

/** `--refresh <mode>` of the commands that change what is merged. */
export function refreshFlag(
  description = "how to make systemd pick up changes",
): Flag<RefreshMode> {
  return choiceFlag("--refresh <mode>", description, REFRESH_MODES, "auto");
}
