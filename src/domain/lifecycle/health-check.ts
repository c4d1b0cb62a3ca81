// The health check an upgrade runs after the new version merged (issue 28 item 4): a command
// given as text on the command line or in an apply file, read into an argv and run WITHOUT a
// shell, so no text from a file or a flag is ever shell code. Shell syntax needs `sh -c '...'`.
import { ExtctlError } from "../../util/errors.js";
import type { Context } from "../../util/context.js";
import { formatCommand, lastErrorLine } from "../../util/runner.js";

/** The PATH a check's program is looked up in (never the caller's: a unit or a timer has none). */
export const HEALTH_CHECK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Seconds a check may run before it is killed and counted as failed. */
export const DEFAULT_HEALTH_CHECK_TIMEOUT_MS = 60_000;

/** Characters a shell would give meaning to: outside quotes they are refused, not passed on, so
 * `a; b` or `x > f` never silently becomes one program with odd arguments. */
const SHELL_SPECIAL = new Set([..."|&;<>()$`*?[]{}~#!"]);

/**
 * Splits a check's text into words: whitespace separates, '...' is literal, "..." is literal but
 * for \" and \\, a backslash outside quotes takes the next character as it is. Nothing expands.
 */
export function parseHealthCheck(text: string, field = "--health-check"): string[] {
  const bad = (why: string): never => {
    throw new ExtctlError("usage", `${field} ${JSON.stringify(text)}: ${why}`, {
      exitCode: 2,
      hint: "the check runs without a shell: give a program and its arguments, or sh -c '...' for shell syntax",
    });
  };
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) bad("a ' is not closed");
      word = (word ?? "") + text.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let out = "";
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === "\\" && (text[j + 1] === '"' || text[j + 1] === "\\")) j++;
        out += text[j];
      }
      if (j >= text.length) bad('a " is not closed');
      word = (word ?? "") + out;
      i = j;
    } else if (c === "\\") {
      if (i + 1 >= text.length) bad("it ends in a backslash");
      word = (word ?? "") + text[++i];
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (SHELL_SPECIAL.has(c)) {
      bad(`${JSON.stringify(c)} would mean something to a shell, and no shell runs the check`);
    } else word = (word ?? "") + c;
  }
  if (word !== undefined) words.push(word);
  return checkArgv(words, field, text);
}

/** An argv as the check's record keeps it: a program (absolute, or a name looked up in
 * HEALTH_CHECK_PATH) and its arguments, none holding a NUL. */
export function checkArgv(
  argv: readonly string[],
  field = "--health-check",
  text?: string,
): string[] {
  const shown = text === undefined ? formatCommand(argv) : JSON.stringify(text);
  const bad = (why: string): never => {
    throw new ExtctlError("usage", `${field} ${shown}: ${why}`, { exitCode: 2 });
  };
  const program = argv[0];
  if (program === undefined || program.length === 0) return bad("names no program");
  if (argv.some((a) => a.includes("\0"))) bad("holds a NUL character");
  if (!program.startsWith("/") && program.includes("/"))
    bad(
      `the program ${JSON.stringify(program)} is a relative path; give an absolute path or a name found in ${HEALTH_CHECK_PATH}`,
    );
  return [...argv];
}

export interface HealthCheckResult {
  /** The argv as run, for messages and --json. */
  command: string[];
  passed: boolean;
  exitCode?: number;
  signal?: string;
  timedOut?: boolean;
  /** Why it failed, in a few words: "exit status 3", "killed after 60 s", "could not start: ..." */
  summary: string;
}

/** Runs the check with a fixed PATH and the extension named in its environment. */
export async function runHealthCheck(
  ctx: Context,
  argv: readonly string[],
  about: { kind: string; name: string; version: string; previous?: string },
  timeoutMs = DEFAULT_HEALTH_CHECK_TIMEOUT_MS,
): Promise<HealthCheckResult> {
  const command = [...argv];
  const env: NodeJS.ProcessEnv = {
    PATH: HEALTH_CHECK_PATH,
    LANG: "C.UTF-8",
    EXTCTL_KIND: about.kind,
    EXTCTL_EXTENSION: about.name,
    EXTCTL_VERSION: about.version,
    ...(about.previous === undefined ? {} : { EXTCTL_PREVIOUS_VERSION: about.previous }),
  };
  const started = Date.now();
  let result;
  try {
    result = await ctx.runner.run(command[0] as string, command.slice(1), { env, timeoutMs });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return {
      command,
      passed: false,
      summary: `could not start: ${code === "ENOENT" ? "no such program" : code === "EACCES" ? "not executable" : (e as Error).message}`,
    };
  }
  if (result.exitCode === 0 && result.signal === null)
    return { command, passed: true, exitCode: 0, summary: "exit status 0" };
  const timedOut = result.signal === "SIGKILL" && Date.now() - started >= timeoutMs;
  const detail = result.stderr.trim() ? `: ${lastErrorLine(result)}` : "";
  if (timedOut)
    return {
      command,
      passed: false,
      timedOut: true,
      signal: "SIGKILL",
      summary: `killed after ${Math.round(timeoutMs / 1000)} s (timeout)`,
    };
  if (result.signal !== null)
    return {
      command,
      passed: false,
      signal: result.signal,
      summary: `killed by ${result.signal}${detail}`,
    };
  return {
    command,
    passed: false,
    exitCode: result.exitCode,
    summary: `exit status ${result.exitCode}${detail}`,
  };
}

/** A check as messages show it: quoted as a shell would need, in backquotes. */
export function formatHealthCheck(argv: readonly string[]): string {
  return `\`${formatCommand(argv)}\``;
}
