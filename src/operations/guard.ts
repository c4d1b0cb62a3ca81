// What every command that changes a node does first: make sure it may (root on the host), and
// take the root's lock so that two runs never interleave their link changes.
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

/**
 * The contexts withLock hands to its work, with the lock files each holds: an operation that
 * calls another (apply calls installByName and upgrade) passes that context on, and the inner
 * withLock then runs at once (the lock is not reentrant). A context, not AsyncLocalStorage: on
 * Node 20 that turns on promise hooks, which cost every promise of the command (~6 ms here).
 */
const holding = new WeakMap<Context, ReadonlySet<string>>();

/**
 * Runs `work` holding the root's lock, after clearing what killed runs left behind. `work` gets
 * the context to run under: nested operations must be given it, not the outer one.
 */
export async function withLock<T>(ctx: Context, work: (locked: Context) => Promise<T>): Promise<T> {
  // The lock is the first thing written: a lock dir that leads outside the root stops here.
  const lockFile = await ctx.root.writePath(LOCK_FILE, { leaf: "entry", what: LOCK_FILE });
  const mine = holding.get(ctx);
  if (mine?.has(lockFile)) return work(ctx);
  const lock = await acquireLock(lockFile, {
    within: ctx.root.dir,
    onDistrusted: (why) => ctx.log.warn(why),
    onWait: (pid) =>
      ctx.log.info(`waiting for another extctl run${pid ? ` (pid ${pid})` : ""} to finish...`),
    onTakeOver: (pid) =>
      ctx.log.info(
        `took over the lock of an extctl run${pid ? ` (pid ${pid})` : ""} that is no longer running`,
      ),
  });
  try {
    await sweepAbandonedTemps(ctx.root);
    const locked: Context = { ...ctx };
    holding.set(locked, new Set([...(mine ?? []), lockFile]));
    return await work(locked);
  } finally {
    await lock.release();
  }
}
