// Ctrl-C and `systemctl stop`: SIGINT and SIGTERM end a run with 130 and 143 (128 + the signal,
// as shells report it) after undoing what must not outlive it: the run's lock, a half-written
// file in the store. Cleanups are synchronous because nothing else runs after the handler.
import { withPriority } from "./journal.js";
import { writeStderr } from "./stdio.js";

type Cleanup = () => void;

const cleanups = new Set<Cleanup>();

/** Runs `cleanup` if the process is interrupted before the returned function is called. */
export function onInterrupt(cleanup: Cleanup): () => void {
  cleanups.add(cleanup);
  return () => {
    cleanups.delete(cleanup);
  };
}

const SIGNALS = { SIGINT: 130, SIGTERM: 143 } as const;

let installed = false;

/** Installs the handlers: the CLI does, a library user's program keeps its own. */
export function exitCleanlyOnInterrupt(): void {
  if (installed) return;
  installed = true;
  for (const [signal, code] of Object.entries(SIGNALS)) {
    process.once(signal, () => {
      runCleanups();
      writeStderr(withPriority("error", `extctl: interrupted by ${signal}\n`));
      process.exit(code);
    });
  }
}

/** Newest first, as they were taken; a failing cleanup does not stop the others. */
export function runCleanups(): void {
  for (const cleanup of [...cleanups].reverse()) {
    try {
      cleanup();
    } catch {
      // best effort: the process is ending
    }
  }
  cleanups.clear();
}
