// What every command that changes a node does first: make sure it may (root on the host), and
// take the root's lock so that two runs never interleave their link changes.
import { AsyncLocalStorage } from "node:async_hooks";
import type { Context } from "../util/context.js";
import { ExtctlError } from "../util/errors.js";
import { acquireLock } from "../util/lock.js";
import { LOCK_FILE } from "../domain/store/layout.js";
import { sweepAbandonedTemps } from "../domain/store/store.js";

export function requireRoot(ctx: Context): void {
  // With --root the permissions of that tree decide; on the host, extctl must be root.
  if (ctx.root.isHostRoot && process.getuid?.() !== 0) {
    throw new ExtctlError("not-root", "this command requires root privileges", {
      hint: "run it with sudo",
    });
  }
}

/** The lock files this async call chain holds: an operation that calls another (apply calls
 * installByName and upgrade) takes the lock once, not twice (it is not reentrant). */
const held = new AsyncLocalStorage<ReadonlySet<string>>();

/** Runs `work` holding the root's lock, after clearing what killed runs left behind. */
export async function withLock<T>(ctx: Context, work: () => Promise<T>): Promise<T> {
  // The lock is the first thing written: a lock dir that leads outside the root stops here.
  const lockFile = await ctx.root.writePath(LOCK_FILE, { leaf: "entry", what: LOCK_FILE });
  const mine = held.getStore();
  if (mine?.has(lockFile)) return work();
  const lock = await acquireLock(lockFile, {
    onWait: (pid) =>
      ctx.log.info(`waiting for another extctl run${pid ? ` (pid ${pid})` : ""} to finish...`),
  });
  try {
    await sweepAbandonedTemps(ctx.root);
    return await held.run(new Set([...(mine ?? []), lockFile]), work);
  } finally {
    await lock.release();
  }
}
