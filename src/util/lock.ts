// Serialises extctl runs on one root: an O_EXCL lock file holding the owner's pid. A lock whose
// owner died (kill -9) is broken, under a second O_EXCL "breaker" file so that two waiters
// never both break it and one of them removes the other's fresh lock. A lock file another user
// made (a world-writable lock dir) holds nothing: it is broken at once, never waited for.
import { readFileSync, unlinkSync } from "node:fs";
import { lstat, open, stat, unlink } from "node:fs/promises";
import { readBounded } from "./bounded-read.js";
import path from "node:path";
import { ExtctlError, errnoCode, fsError } from "./errors.js";
import { processAlive } from "./atomic.js";
import { FILE_MODE, distrustOf, makeDir } from "./owned-state.js";
import { onInterrupt } from "./interrupt.js";

export interface LockOptions {
  /** Give up after this long (ms). */
  timeoutMs?: number;
  /** Called once when we start waiting for another run. */
  onWait?: (holderPid: number | undefined) => void;
  /** Called when the lock of a run that is no longer alive was taken over (pid 0: unknown). */
  onTakeOver?: (deadPid: number) => void;
  /** Host path of the root the lock lies in: its directories below it are checked (makeDir). */
  within?: string;
  /** Told why a lock file that is not believable was broken. */
  onDistrusted?: (why: string) => void;
}

export interface Lock {
  release(): Promise<void>;
}

const BREAKER_STALE_MS = 10_000;

async function tryCreate(file: string): Promise<boolean> {
  try {
    const handle = await open(file, "wx", FILE_MODE);
    try {
      await handle.chmod(FILE_MODE);
      await handle.writeFile(`${process.pid}\n`);
    } finally {
      await handle.close();
    }
    return true;
  } catch (e) {
    if (errnoCode(e) === "EEXIST") return false;
    throw e;
  }
}

async function holderPid(file: string): Promise<number | undefined> {
  try {
    // Never through a link, never more than a pid: a FIFO or device here must not hang us.
    // A pid written by another user than root names nobody (see breakIfStale).
    let believed = true;
    const text = (
      await readBounded(file, {
        cap: 64,
        noFollow: true,
        inspect: (st) => (believed = distrustOf(st) === undefined),
      })
    ).toString("utf8");
    if (!believed) return undefined;
    const pid = Number.parseInt(text.trim(), 10);
    return Number.isFinite(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Why a lock file someone else made must not be waited for, or undefined. */
async function lockDistrust(file: string): Promise<string | undefined> {
  const st = await lstat(file).catch(() => undefined);
  if (st === undefined) return undefined;
  const why = st.isFile() ? distrustOf(st) : "it is not a regular file";
  return why === undefined ? undefined : `the lock ${file} was not made by extctl: ${why}`;
}

/**
 * Removes the lock when its holder is gone or it is not believable; the dead holder's pid (0 if
 * unknown) when a dead run's lock was removed.
 */
async function breakIfStale(file: string, options: LockOptions): Promise<number | undefined> {
  const breaker = `${file}.break`;
  if (!(await tryCreate(breaker))) {
    const st = await lstat(breaker).catch(() => undefined);
    // Another user's breaker (planted to keep us waiting) goes at once, ours once it is old.
    const planted = st !== undefined && (!st.isFile() || distrustOf(st) !== undefined);
    if (st && (planted || Date.now() - st.mtimeMs > BREAKER_STALE_MS))
      await unlink(breaker).catch(() => {});
    return undefined;
  }
  try {
    const distrusted = await lockDistrust(file);
    const pid = await holderPid(file);
    const st = await stat(file).catch(() => undefined);
    // A lock file with no pid yet may be mid-creation; only break it once it is old.
    const stale =
      distrusted !== undefined ||
      (st !== undefined &&
        (pid === undefined ? Date.now() - st.mtimeMs > BREAKER_STALE_MS : !processAlive(pid)));
    if (!stale) return undefined;
    if (distrusted !== undefined) options.onDistrusted?.(`${distrusted}; removing it`);
    await unlink(file).catch(() => {});
    return distrusted === undefined ? (pid ?? 0) : undefined;
  } finally {
    await unlink(breaker).catch(() => {});
  }
}

export async function acquireLock(file: string, options: LockOptions = {}): Promise<Lock> {
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  // /run/lock is root's and sticky on a real node (others may add names, not replace ours).
  await makeDir(path.dirname(file), {
    stickyLeaf: true,
    what: "the lock",
    ...(options.within === undefined ? {} : { within: options.within }),
  });
  let waited = false;
  let delay = 20;
  for (;;) {
    try {
      if (await tryCreate(file)) break;
    } catch (e) {
      throw fsError(e, `take the lock ${file}`);
    }
    const broken = await breakIfStale(file, options);
    // The holder died (Ctrl-C before this version, kill -9): take over now, without "waiting".
    if (broken !== undefined) {
      options.onTakeOver?.(broken);
      continue;
    }
    if (Date.now() > deadline) {
      const pid = await holderPid(file);
      throw new ExtctlError(
        "locked",
        `another extctl run (pid ${pid ?? "unknown"}) holds ${file}`,
        {
          hint: "wait for it to finish, or remove the lock file if no extctl is running",
        },
      );
    }
    if (!waited) {
      waited = true;
      options.onWait?.(await holderPid(file));
    }
    await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
    delay = Math.min(delay * 2, 250);
  }
  let released = false;
  const forget = onInterrupt(() => {
    if (readFileSync(file, "utf8").trim() === `${process.pid}`) unlinkSync(file);
  });
  return {
    async release() {
      if (released) return;
      released = true;
      forget();
      if ((await holderPid(file)) === process.pid) await unlink(file).catch(() => {});
    },
  };
}
