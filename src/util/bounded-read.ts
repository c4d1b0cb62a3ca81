// Reads of files extctl does not control (a --root's policy, os-release, /proc/cmdline, efivars,
// certificates): regular files only, at most a cap of bytes, so a FIFO, a device or a huge file
// fails fast with a sentence instead of hanging or exhausting memory.
import { constants, type Stats } from "node:fs";
import { lstat, open, stat } from "node:fs/promises";
import { ExtctlError, errnoCode, fsError } from "./errors.js";
import type { Root } from "./root.js";

/** Caps per kind of file: far above any real one, far below what hurts. */
export const READ_CAPS = {
  /** /proc/cmdline, --cmdline, os-release, extension-release, markers, small config. */
  small: 64 * 1024,
  /** The trust policy and apply state. */
  config: 1024 * 1024,
  /** One certificate file or EFI signature database variable. */
  certificate: 4 * 1024 * 1024,
} as const;

export interface BoundedReadOptions {
  /** Most bytes accepted; a longer file is an error. */
  cap: number;
  /** Do not follow a symlink in the last component (the path is already resolved). */
  noFollow?: boolean;
  /** What the file is, for messages ("the trust policy"). */
  what?: string;
  /** Shown the stats of the file actually opened (its owner and mode, see owned-state.ts). */
  inspect?: (st: Stats) => void;
}

/** A FIFO, socket or device is named in the error, never opened for reading. */
function kindOf(st: Stats): string | undefined {
  if (st.isFile()) return undefined;
  if (st.isFIFO()) return "a FIFO";
  if (st.isSocket()) return "a socket";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isDirectory()) return "a directory";
  if (st.isSymbolicLink()) return "a symlink";
  return "not a file";
}

function notRegular(file: string, kind: string, what: string | undefined): ExtctlError {
  return new ExtctlError(
    "format",
    `${file}${what ? ` (${what})` : ""} is ${kind}, not a regular file; extctl reads only regular files there`,
  );
}

/**
 * Reads `file` whole, if it is a regular file of at most `cap` bytes. /proc files report size 0,
 * so the cap is enforced on what is read, not on st_size. Missing files throw ENOENT as usual
 * (callers decide whether absent is fine); any other refusal is an ExtctlError naming the file.
 */
export async function readBounded(file: string, options: BoundedReadOptions): Promise<Buffer> {
  // Look before opening: opening some devices has effects (a watchdog, a tape).
  const seen = await (options.noFollow ? lstat(file) : stat(file));
  const kind = kindOf(seen);
  if (kind !== undefined) throw notRegular(file, kind, options.what);
  if (seen.size > options.cap) throw tooLarge(file, options);
  let flags = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;
  if (options.noFollow) flags |= constants.O_NOFOLLOW;
  let handle;
  try {
    handle = await open(file, flags);
  } catch (e) {
    if (errnoCode(e) === "ELOOP") throw notRegular(file, "a symlink", options.what);
    throw e;
  }
  try {
    // The file may have been swapped between the look and the open.
    const st = await handle.stat();
    const now = kindOf(st);
    if (now !== undefined) throw notRegular(file, now, options.what);
    options.inspect?.(st);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const want = Math.min(64 * 1024, options.cap + 1 - total);
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await handle.read(buf, 0, want, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > options.cap) throw tooLarge(file, options);
      chunks.push(buf.subarray(0, bytesRead));
    }
    return Buffer.concat(chunks, total);
  } finally {
    await handle.close();
  }
}

function tooLarge(file: string, options: BoundedReadOptions): ExtctlError {
  return new ExtctlError(
    "format",
    `${file}${options.what ? ` (${options.what})` : ""} is larger than ${options.cap} bytes; that is not a real one`,
  );
}

/** readBounded, with a missing file (or a missing directory on the way) as undefined. */
export async function readBoundedOptional(
  file: string,
  options: BoundedReadOptions,
): Promise<Buffer | undefined> {
  try {
    return await readBounded(file, options);
  } catch (e) {
    if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") return undefined;
    if (e instanceof ExtctlError) throw e;
    throw fsError(e, `read ${file}${options.what ? ` (${options.what})` : ""}`);
  }
}

/**
 * Reads the node path `nodePath` under `root`, resolved inside the root (an absolute or
 * escaping symlink never leads out of it), bounded as readBounded. Undefined when absent.
 */
export async function readInRoot(
  root: Root,
  nodePath: string,
  options: BoundedReadOptions,
): Promise<Buffer | undefined> {
  const file = await root.readPath(nodePath);
  return readBoundedOptional(file, { ...options, noFollow: !root.isHostRoot });
}
