// The two rules for what extctl keeps on disk, in one place: whatever it creates gets its mode
// explicitly (the umask never widens or narrows it), and state it reads back (caches, version
// records, catalog and apply state, locks) counts only when nobody but its owner could have written it.
import { chmod, mkdir, stat } from "node:fs/promises";
import type { Stats } from "node:fs";
import path from "node:path";
import { ExtctlError, fsError } from "./errors.js";
import { READ_CAPS, readBoundedOptional } from "./bounded-read.js";
import type { Root } from "./root.js";

/** Directories extctl makes: everyone may read and enter, only the owner (root) may change. */
export const DIR_MODE = 0o755;
/** Files extctl makes: readable by all (list and status run without root), written by root. */
export const FILE_MODE = 0o644;

const STICKY = 0o1000;

/** The owners whose files extctl believes: root, and the user running it (a non-root --root). */
function trustedOwner(uid: number): boolean {
  return uid === 0 || uid === (process.getuid?.() ?? 0);
}

function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, "0")}`;
}

/**
 * Why a file or directory with these stats must not be believed, or undefined when it may: it is
 * owned by another user than root (or the one running extctl), or group or others may write it.
 * `sticky` accepts a root-owned world-writable directory with the sticky bit (/run/lock, /tmp):
 * others can add names there but not replace or remove ours.
 */
export function distrustOf(
  st: Pick<Stats, "uid" | "mode">,
  options: { sticky?: boolean } = {},
): string | undefined {
  if (!trustedOwner(st.uid)) return `it is owned by uid ${st.uid}, not root`;
  if ((st.mode & 0o022) === 0) return undefined;
  if (options.sticky && st.uid === 0 && (st.mode & STICKY) !== 0) return undefined;
  const who = (st.mode & 0o020 ? ["group"] : []).concat(st.mode & 0o002 ? ["others"] : []);
  return `it is writable by ${who.join(" and ")} (mode ${octal(st.mode)})`;
}

export interface MakeDirOptions {
  /** Mode of the directories created (default 0755), set with chmod whatever the umask. */
  mode?: number;
  /**
   * Host path of the root the directory lies in: the existing directories on the way below it
   * are checked (distrustOf). Default "/" (every existing directory but "/" itself).
   */
  within?: string;
  /** Accept a root-owned sticky world-writable directory as the last one (the lock's /run/lock). */
  stickyLeaf?: boolean;
  /** What the directory is, for messages. */
  what?: string;
  /**
   * Check the directories that were there already (default true). False only where extctl keeps
   * nothing it reads back: a build's output dir (the user's), immucore's /run/cos at boot.
   */
  checkExisting?: boolean;
}

/**
 * Creates `hostDir` and its missing parents with an explicit mode, and refuses to use one that
 * is there already but could have been changed by someone else than root: a store directory
 * left world-writable (an old extctl under umask 000, a hand-made one) may hold planted state,
 * so extctl stops and says how to check and fix it instead of writing into it.
 */
export async function makeDir(hostDir: string, options: MakeDirOptions = {}): Promise<void> {
  const mode = options.mode ?? DIR_MODE;
  const what = options.what ?? hostDir;
  let first: string | undefined;
  try {
    first = await mkdir(hostDir, { recursive: true, mode });
  } catch (e) {
    throw fsError(e, `create ${what}`);
  }
  const within = path.resolve(options.within ?? "/");
  // mkdir's mode passes through the umask: set it on each directory made, from the deepest up.
  let dir = hostDir;
  const made = new Set<string>();
  if (first !== undefined) {
    for (;;) {
      made.add(dir);
      if (dir === first || dir === path.dirname(dir)) break;
      dir = path.dirname(dir);
    }
    for (const d of made)
      await chmod(d, mode).catch((e: unknown) => {
        throw fsError(e, `set the mode of ${d}`);
      });
  }
  if (options.checkExisting === false) return;
  // Those that were there already, from the one asked for up to (not including) the root.
  for (dir = hostDir; dir !== within && dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (made.has(dir)) continue;
    if (!(dir + path.sep).startsWith(within === "/" ? "/" : within + path.sep)) break;
    let st;
    try {
      st = await stat(dir);
    } catch (e) {
      throw fsError(e, `look at ${dir}`);
    }
    const why = distrustOf(st, { sticky: dir !== hostDir || options.stickyLeaf === true });
    if (why !== undefined) throw unsafeDir(dir, why, what);
  }
}

function unsafeDir(dir: string, why: string, what: string): ExtctlError {
  return new ExtctlError(
    "untrusted",
    `${dir}${what === dir ? "" : ` (for ${what})`} could have been changed by someone other than root: ${why}; extctl does not write there, nor trust what is in it`,
    {
      hint: `check what is in ${dir} (and who made it), then \`chown root:root ${dir} && chmod 0755 ${dir}\``,
    },
  );
}

/** makeDir for a node path under `root`: resolved inside it (Root.writePath), checked below it. */
export async function makeDirInRoot(
  root: Root,
  nodePath: string,
  options: Omit<MakeDirOptions, "within"> = {},
): Promise<string> {
  const dir = await root.writePath(nodePath, { what: options.what ?? nodePath });
  await makeDir(dir, { what: nodePath, ...options, within: root.dir });
  return dir;
}

/** How a state file was found: its bytes, absent, or present but not believed (and why). */
export type OwnedRead = { data: Buffer } | { absent: true } | { distrusted: string };

/**
 * Reads extctl's own state `file` (a host path already resolved inside the root) only when it is
 * believable: the file and the directory holding it owned by root (or the user running extctl)
 * and not writable by group or others. Anything else is `distrusted` with the reason, for the
 * caller to warn about and ignore; a symlink, FIFO or oversized file is an ExtctlError as in
 * readBounded.
 */
export async function readOwnedState(
  file: string,
  options: { cap?: number; what: string; noFollow?: boolean },
): Promise<OwnedRead> {
  let fileWhy: string | undefined;
  const data = await readBoundedOptional(file, {
    cap: options.cap ?? READ_CAPS.config,
    what: options.what,
    ...(options.noFollow ? { noFollow: true } : {}),
    inspect: (st) => {
      fileWhy = distrustOf(st);
    },
  });
  if (data === undefined) return { absent: true };
  if (fileWhy !== undefined) return { distrusted: `${file} (${options.what}): ${fileWhy}` };
  const dirWhy = await dirDistrust(path.dirname(file));
  if (dirWhy !== undefined)
    return { distrusted: `${file} (${options.what}) lies in ${path.dirname(file)}: ${dirWhy}` };
  return { data };
}

/** Why the directory `dir` (a host path) must not hold believable state, or undefined. */
export async function dirDistrust(dir: string): Promise<string | undefined> {
  try {
    return distrustOf(await stat(dir));
  } catch (e) {
    return `it cannot be looked at (${(e as Error).message})`;
  }
}

/** The sentence a command warns with when it ignores distrusted state. */
export function ignoredState(why: string): string {
  return `ignoring ${why}; only state that root owns and no one else can write is used (\`chown root:root\` and \`chmod go-w\` it, or remove it)`;
}

/**
 * readOwnedState for a node path under `root`: undefined when absent or distrusted (the reason
 * given to `warn`), the bytes otherwise.
 */
export async function readOwnedInRoot(
  root: Root,
  nodePath: string,
  options: { cap?: number; what: string; warn: (message: string) => void },
): Promise<Buffer | undefined> {
  const file = await root.readPath(nodePath);
  const read = await readOwnedState(file, {
    what: options.what,
    ...(options.cap === undefined ? {} : { cap: options.cap }),
    ...(root.isHostRoot ? {} : { noFollow: true }),
  });
  if ("data" in read) return read.data;
  if ("distrusted" in read) options.warn(ignoredState(read.distrusted));
  return undefined;
}
