// When a systemd unit runs extctl, stderr is a stream to the journal ($JOURNAL_STREAM names its
// device and inode). Each line then starts with its syslog priority, as sd-daemon(3) describes,
// so that `journalctl -p warning` finds extctl's warnings and errors.
import { fstatSync } from "node:fs";

export type Priority = "error" | "warning" | "info" | "debug";

const LEVEL: Readonly<Record<Priority, string>> = {
  error: "<3>",
  warning: "<4>",
  info: "<6>",
  debug: "<7>",
};

let toJournal: boolean | undefined;

/** Whether `fd` is the journal stream systemd connected (not a pipe or file it was redirected to). */
export function fdIsJournal(fd: number, env: NodeJS.ProcessEnv = process.env): boolean {
  const stream = env.JOURNAL_STREAM;
  if (!stream) return false;
  const [dev, ino] = stream.split(":");
  try {
    const st = fstatSync(fd, { bigint: true });
    return dev !== undefined && ino !== undefined && `${st.dev}` === dev && `${st.ino}` === ino;
  } catch {
    return false;
  }
}

/** Whether fd 2 is the journal stream systemd connected. */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  return fdIsJournal(2, env);
}

/**
 * Whether fd 1 is the journal stream: extctl runs under a unit (StandardOutput=journal), where
 * commands print one line per event and a summary rather than tables.
 */
export function stdoutIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  return fdIsJournal(1, env);
}

/** `text`'s lines, each with the sd-daemon prefix for `priority` (for a stream known to be the journal). */
export function journalLines(priority: Priority, text: string): string {
  return text.replace(/^(?=.)/gm, LEVEL[priority]);
}

/** The sd-daemon prefix for a line at `priority` on stderr: "" unless stderr is the journal. */
export function priorityPrefix(priority: Priority): string {
  toJournal ??= stderrIsJournal();
  return toJournal ? LEVEL[priority] : "";
}

/** Each line of `text` with the prefix (journald reads the priority per line). */
export function withPriority(priority: Priority, text: string): string {
  const prefix = priorityPrefix(priority);
  if (prefix === "") return text;
  return text.replace(/^(?=.)/gm, prefix);
}

/** For tests: forget what was found out about stderr. */
export function resetJournalDetection(): void {
  toJournal = undefined;
}
