// Serialises extctl runs on one root: an O_EXCL lock file holding the owner's pid. A lock whose
// owner died (kill -9) is broken, under a second O_EXCL "breaker" file so that two waiters
// never both break it and one of them removes the other's fresh lock.
import { readFileSync, unlinkSync } from "node:fs";
import { open, stat, unlink, mkdir } from "node:fs/promises";
import { readBounded } from "./bounded-read.js";
import path from "node:path";
import { ExtctlError, errnoCode, fsError } from "./errors.js";
import { processAlive } from "./atomic.js";
import { onInterrupt } from "./interrupt.js";

export interface LockOptions {
  /** Give up after this long (ms). */
  timeoutMs?: number;
  /** Called once when we start waiting for another run. */
  onWait?: (holderPid: number | undefined) => void;
  /** Called when the lock of a run that is no longer alive was taken over (pid 0: unknown). */
  onTakeOver?: (deadPid: number) => void;
}

export interface Lock {
  release(): Promise<void>;
}

const BREAKER_STALE_MS = 10_000;

async function tryCreate(file: string): Promise<boolean> {
  try {
    const handle = await open(file, "wx", 0o644);
    await handle.writeFile(`${process.pid}\n`);
    await handle.close();
    return true;
  } catch (e) {
    if (errnoCode(e) === "EEXIST") return false;
    throw e;
  }
}

async function holderPid(file: string): Promise<number | undefined> {
  try {
    // Never through a link, never more than a pid: a FIFO or device here must not hang us.
    const text = (await readBounded(file, { cap: 64, noFollow: true })).toString("utf8");
    const pid = Number.parseInt(text.trim(), 10);
    return Number.isFinite(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Removes the lock when its holder is gone; the dead holder's pid (0 if unknown) when it did. */
async function breakIfStale(file: string): Promise<number | undefined> {
  const breaker = `${file}.break`;
  if (!(await tryCreate(breaker))) {
    const st = await stat(breaker).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > BREAKER_STALE_MS) await unlink(breaker).catch(() => {});
    return undefined;
  }
  try {
    const pid = await holderPid(file);
    const st = await stat(file).catch(() => undefined);
    // A lock file with no pid yet may be mid-creation; only break it once it is old.
    const stale =
      st !== undefined &&
      (pid === undefined ? Date.now() - st.mtimeMs > BREAKER_STALE_MS : !processAlive(pid));
    if (!stale) return undefined;
    await unlink(file).catch(() => {});
    return pid ?? 0;
  } finally {
    await unlink(breaker).catch(() => {});
  }
}

export async function acquireLock(file: string, options: LockOptions = {}): Promise<Lock> {
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  try {
    await mkdir(path.dirname(file), { recursive: true });
  } catch (e) {
    throw fsError(e, `create the lock directory ${path.dirname(file)}`);
  }
  let waited = false;
  let delay = 20;
  for (;;) {
    try {
      if (await tryCreate(file)) break;
    } catch (e) {
      throw fsError(e, `take the lock ${file}`);
    }
    const broken = await breakIfStale(file);
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
