// The extctl command line: builds the commander program and maps errors to exit codes
// (0 done, 1 error, 2 usage). Each command lives in cli/commands/ and loads its operation only
// when it runs, so `--help` and `--version` start fast.
import { Command, CommanderError } from "commander";
import { createRequire } from "node:module";
import { bundledVersion } from "../util/bundled.js";
import { ExtctlError, isExtctlError } from "../util/errors.js";
import { escapeControl } from "../util/escape.js";
import { addFlags, GLOBAL_FLAGS } from "./options.js";
import { registerBuildCommand } from "./commands/build.js";
import { registerExtensionCommands } from "./commands/extension.js";
import { registerPublishCommand } from "./commands/publish.js";
import { registerStatusCommand } from "./commands/status.js";
import { registerVerifyCommand } from "./commands/verify.js";
import { registerTrustCommand } from "./commands/trust.js";
import { registerBootCommand } from "./commands/boot.js";
import { registerSystemdCommand } from "./commands/systemd.js";
import { registerApplyCommand } from "./commands/apply.js";
import { registerInspectCommand } from "./commands/inspect.js";
import { registerCheckCommand } from "./commands/check.js";
import { registerCompletionCommand } from "./commands/completion.js";
import { registerCatalogCommand } from "./commands/catalog.js";

function version(): string {
  const bundled = bundledVersion();
  if (bundled !== undefined) return bundled;
  const require = createRequire(import.meta.url);
  return (require("../../package.json") as { version: string }).version;
}

/**
 * undici parses HTTP with llhttp compiled to WebAssembly, and V8 recompiles that with its
 * optimizing tier on a background thread that Node then waits for at exit: ~40 ms of every
 * registry command. What undici parses for extctl is a few small responses (blobs go through
 * http1.ts), for which V8's baseline wasm compiler (Liftoff) is plenty. A process-wide V8 flag is
 * the program's choice, not the library's, so it is set here, for the commands that can reach a
 * registry (each offers --insecure-registry), before their action. Not earlier: V8 accepts the
 * bundle's code cache only under the flags it was written with (bin/extctl.js writes it after a
 * `status` run), and node:v8 is not worth loading for a command that sends no request.
 */
async function keepWasmOnLiftoff(_program: Command, action: Command): Promise<void> {
  if (!action.options.some((o) => o.attributeName() === "insecureRegistry")) return;
  const { setFlagsFromString } = await import("node:v8");
  setFlagsFromString("--liftoff-only");
}

export function buildProgram(): Command {
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
    .hook("preAction", keepWasmOnLiftoff)
    .exitOverride();
  addFlags(program, GLOBAL_FLAGS);
  registerExtensionCommands(program);
  registerBuildCommand(program);
  registerPublishCommand(program);
  registerStatusCommand(program);
  registerVerifyCommand(program);
  registerTrustCommand(program);
  registerBootCommand(program);
  registerSystemdCommand(program);
  registerApplyCommand(program);
  registerInspectCommand(program);
  registerCheckCommand(program);
  registerCatalogCommand(program);
  registerCompletionCommand(program);
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  const first = argv[2];
  if (first === "--version" || first === "-V") {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  // `extctl ... | head` closes stdout early: stop printing, but let the command finish its work
  // (an install or enable half-done because its reader went away would be worse than a crash).
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE") throw e;
  });
  const program = buildProgram();
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
    process.stderr.write(`extctl: ${escapeControl(e.message)}\n`);
    if (e.hint) process.stderr.write(`  ${escapeControl(e.hint)}\n`);
    if (process.env.EXTCTL_DEBUG && e.cause) process.stderr.write(`${traceOf(e.cause)}\n`);
    return e.exitCode;
  }
  const err = e instanceof Error ? e : new ExtctlError("internal", String(e));
  process.stderr.write(`extctl: internal error: ${err.stack ?? err.message}\n`);
  return 1;
}

/** A cause's stack when it has one (EXTCTL_DEBUG), else its text. */
function traceOf(cause: unknown): string {
  return cause instanceof Error ? (cause.stack ?? cause.message) : String(cause);
}
