// Runs the built extctl CLI (bin/extctl.cjs over dist/) as a user would.
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const EXTCTL_BIN = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../bin/extctl.cjs",
);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runExtctl(
  args: readonly string[],
  options: {
    /** Merged over process.env; a variable set to undefined is removed. */
    env?: NodeJS.ProcessEnv;
    input?: string;
    timeoutMs?: number;
    /** A command that runs extctl, e.g. ["unshare", "-m", "sh", "-c", "...; exec \"$@\"", "sh"]. */
    prefix?: readonly string[];
  } = {},
): Promise<CliResult> {
  const argv = [...(options.prefix ?? []), process.execPath, EXTCTL_BIN, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), {
      env: { ...process.env, NO_COLOR: "1", ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
      timeout: options.timeoutMs ?? 120_000,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 128, stdout, stderr }));
    child.stdin.end(options.input ?? "");
  });
}

/**
 * A command's `--json` output as the type the library declares for it (the CLI prints the
 * operation's Result): a test then reads fields the compiler knows, not `any`.
 */
export function jsonOf<T>(output: Pick<CliResult, "stdout"> | string): T {
  return JSON.parse(typeof output === "string" ? output : output.stdout) as T;
}
