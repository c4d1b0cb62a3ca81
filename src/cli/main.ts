// The extctl command line: builds the commander program and maps errors to exit codes
// (0 done, 1 error, 2 usage). Each command lives in cli/commands/ and loads its operation only
// when it runs, so `--help` and `--version` start fast.
import { Command, CommanderError } from "commander";
import { extctlVersion } from "../util/user-agent.js";
import { ExtctlError, isExtctlError } from "../util/errors.js";
import { escapeControl } from "../util/escape.js";
import { exitCleanlyOnInterrupt } from "../util/interrupt.js";
import { withPriority } from "../util/journal.js";
import { writeStderr, writeStdout } from "../util/stdio.js";
import { addFlags, GLOBAL_FLAGS } from "./options.js";
import { takeJsonMode } from "./render.js";
import { registerBuildCommand } from "./commands/build.js";
import { registerExtensionCommands } from "./commands/extension.js";
import { registerPublishCommand } from "./commands/publish.js";
import { registerStatusCommand } from "./commands/status.js";
import { registerVerifyCommand } from "./commands/verify.js";
import { registerTrustCommand } from "./commands/trust.js";
import { registerBlessCommand, registerBootCommand } from "./commands/boot.js";
import { registerSystemdCommand } from "./commands/systemd.js";
import { registerApplyCommand } from "./commands/apply.js";
import { registerInspectCommand } from "./commands/inspect.js";
import { registerCheckCommand } from "./commands/check.js";
import { registerCompletionCommand } from "./commands/completion.js";
import { registerCatalogCommand } from "./commands/catalog.js";
import { registerMetricsCommand } from "./commands/metrics.js";

function version(): string {
  return extctlVersion();
}

/**
 * What `--version` prints: `extctl VERSION (Node.js vX.Y.Z, linux-ARCH)`, ARCH as the release
 * files name it (amd64, arm64), so a bug report says which runtime and which file it came from.
 */
export function versionLine(): string {
  const arch = ({ x64: "amd64" } as Record<string, string>)[process.arch] ?? process.arch;
  return `extctl ${version()} (Node.js ${process.version}, ${process.platform}-${arch})`;
}

/**
 * undici parses HTTP with llhttp compiled to WebAssembly, and V8 recompiles that with its
 * optimizing tier on a background thread that Node then waits for at exit: ~40 ms of every
 * registry command. What undici parses for extctl is a few small responses (blobs go through
 * http1.ts), for which V8's baseline wasm compiler (Liftoff) is plenty. A process-wide V8 flag is
 * the program's choice, not the library's, so it is set here, for the commands that can reach a
 * registry (each offers --insecure-registry), before their action. Not earlier: V8 accepts the
 * bundle's code cache only under the flags it was written with (bin/extctl.cjs writes it after a
 * `status` run), and node:v8 is not worth loading for a command that sends no request.
 */
async function keepWasmOnLiftoff(_program: Command, action: Command): Promise<void> {
  if (!action.options.some((o) => o.attributeName() === "insecureRegistry")) return;
  const { setFlagsFromString } = await import("node:v8");
  setFlagsFromString("--liftoff-only");
}

/** The whole command tree, or with `argv` only the subtree of the command it names. */
export function buildProgram(argv?: readonly string[]): Command {
  const program = new Command("extctl")
    .description(
      "Manage systemd system and configuration extensions the Kairos way: build, fetch, enable per boot profile, merge, verify and inspect.",
    )
    // -V/--version is handled in main() only as the first argument: a program-level version
    // option would swallow subcommand options of the same name (build --version V).
    .addHelpText(
      "after",
      "\nRun `extctl --version` for the version, `extctl COMMAND --help` for a command's options.",
    )
    .showHelpAfterError("(run with --help for usage)")
    // One error style: commander's "error: ..." reads as extctl's own "extctl: ...".
    .configureOutput({
      writeOut: writeStdout,
      writeErr: (text) => writeStderr(withPriority("error", text)),
      outputError: (text, write) => write(text.replace(/^error: /, "extctl: ")),
    })
    .hook("preAction", keepWasmOnLiftoff)
    .exitOverride();
  addFlags(program, GLOBAL_FLAGS);
  const [name, sub] = argv ? commandPathIn(argv) : [];
  const only = COMMANDS.find((c) => c.name === name);
  for (const command of only ? [only] : COMMANDS) command.register(program, sub);
  if (!only) registerCompletionCommand(program);
  return program;
}

/**
 * The top-level commands in the order --help lists them. A run that names one of them builds
 * only its subtree (~3 ms less of commander set-up for a simple command); --help, completion, an
 * unknown or misspelt command get the whole tree, so help and suggestions stay complete.
 */
const COMMANDS: readonly {
  name: string;
  /** `sub`: the argument after the command's name, for commands that can build less for it. */
  register: (program: Command, sub?: string) => void;
}[] = [
  { name: "sysext", register: (p, sub) => registerExtensionCommands(p, ["sysext"], sub) },
  { name: "confext", register: (p, sub) => registerExtensionCommands(p, ["confext"], sub) },
  { name: "build", register: registerBuildCommand },
  { name: "publish", register: registerPublishCommand },
  { name: "status", register: registerStatusCommand },
  { name: "verify", register: registerVerifyCommand },
  { name: "trust", register: registerTrustCommand },
  { name: "boot", register: registerBootCommand },
  { name: "bless", register: registerBlessCommand },
  { name: "systemd", register: registerSystemdCommand },
  { name: "apply", register: registerApplyCommand },
  { name: "inspect", register: registerInspectCommand },
  { name: "check", register: registerCheckCommand },
  { name: "catalog", register: registerCatalogCommand },
  { name: "metrics", register: registerMetricsCommand },
];

/**
 * The command's name (the first argument that is not a global option or its value) and the
 * argument after it when that is no option: `sysext list` gives ["sysext", "list"].
 */
export function commandPathIn(argv: readonly string[]): [name?: string, sub?: string] {
  const at = commandIndexIn(argv);
  if (at < 0) return [];
  const next = argv[at + 1];
  return next === undefined || next.startsWith("-")
    ? [argv[at] as string]
    : [argv[at] as string, next];
}

/** Where the command's name is: the first argument that is not a global option or its value. */
function commandIndexIn(argv: readonly string[]): number {
  const takesValue = new Set(
    Object.values(GLOBAL_FLAGS)
      .flatMap((flag) => flag.options())
      .filter((o) => o.required || o.optional)
      .flatMap((o) => [o.long, o.short].filter((f) => f !== undefined)),
  );
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--") return i + 1 < argv.length ? i + 1 : -1;
    if (takesValue.has(arg)) i++;
    else if (!arg.startsWith("-")) return i;
  }
  return -1;
}

export async function main(args: readonly string[]): Promise<number> {
  let argv: readonly string[];
  try {
    argv = takeJsonMode(args);
  } catch (e) {
    return reportError(e);
  }
  const first = argv[2];
  if (first === "--version" || first === "-V") {
    writeStdout(`${versionLine()}\n`);
    return 0;
  }
  exitCleanlyOnInterrupt();
  const program = buildProgram(argv);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    return reportError(e);
  }
}

function reportError(e: unknown): number {
  if (e instanceof CommanderError) {
    // commander already printed its message; help and version exit 0.
    if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.exitCode === 0)
      return 0;
    return 2;
  }
  if (isExtctlError(e)) {
    // Messages carry names and paths from untrusted input: escaped, one line each.
    writeStderr(withPriority("error", `extctl: ${escapeControl(e.message)}\n`));
    if (e.hint) writeStderr(withPriority("error", `  ${escapeControl(e.hint)}\n`));
    if (process.env.EXTCTL_DEBUG && e.cause)
      writeStderr(withPriority("debug", `${traceOf(e.cause)}\n`));
    return e.exitCode;
  }
  const err = e instanceof Error ? e : new ExtctlError("internal", String(e));
  writeStderr(withPriority("error", `extctl: internal error: ${err.stack ?? err.message}\n`));
  return 1;
}

/** A cause's stack when it has one (EXTCTL_DEBUG), else its text. */
function traceOf(cause: unknown): string {
  return cause instanceof Error ? (cause.stack ?? cause.message) : String(cause);
}
