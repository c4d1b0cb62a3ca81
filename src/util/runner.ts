// One way to run external programs (systemd-sysext, systemctl, mkfs.*): it records the command
// line for -v, captures stderr for error messages, and can be swapped for a fake in unit tests.
import type { spawn as Spawn } from "node:child_process";

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string | Buffer;
  /** Kill the process after this many milliseconds. */
  timeoutMs?: number;
}

export interface RunResult {
  command: string[];
  exitCode: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ProcessRunner {
  run(command: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
}

export type CommandListener = (argv: readonly string[]) => void;

/** Runs real programs with child_process.spawn, never through a shell. */
export class SpawnRunner implements ProcessRunner {
  constructor(private readonly onCommand?: CommandListener) {}

  run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const argv = [command, ...args];
    this.onCommand?.(argv);
    // Loaded on the first run: the many commands that spawn nothing do not pay for it (~4 ms).
    return import("node:child_process").then(({ spawn }) =>
      this.spawnWith(spawn, command, args, options),
    );
  }

  private spawnWith(
    spawn: typeof Spawn,
    command: string,
    args: readonly string[],
    options: RunOptions,
  ): Promise<RunResult> {
    const argv = [command, ...args];
    return new Promise((resolve, reject) => {
      const child = spawn(command, args, {
        env: options.env ?? process.env,
        cwd: options.cwd,
        stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      // Our own timer rather than spawn's `timeout`, which is only cleared on exit and so keeps
      // the process alive for its whole length when the program could not be started.
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
      child.stdout?.on("data", (b: Buffer) => out.push(b));
      child.stderr?.on("data", (b: Buffer) => err.push(b));
      child.on("error", (e) => {
        clearTimeout(timer);
        child.stdout?.destroy();
        child.stderr?.destroy();
        child.stdin?.destroy();
        reject(e);
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        resolve({
          command: argv,
          exitCode: code ?? 128,
          signal,
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
        });
      });
      if (options.input !== undefined) child.stdin?.end(options.input);
    });
  }
}

/** The last meaningful line a program wrote to stderr, for one-sentence error messages. */
export function lastErrorLine(result: RunResult): string {
  const lines = result.stderr
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.at(-1) ?? `exit code ${result.exitCode}`;
}

export function formatCommand(argv: readonly string[]): string {
  return argv
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(" ");
}
