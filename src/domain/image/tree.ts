// The one model every filesystem reader produces (entries with type, mode, owner, size, link
// target, xattrs) and the walks built on it: bounded listing, path lookup and file reading.
import { ExtctlError } from "../../util/errors.js";
import type { ReadableFilesystem } from "./filesystem-registry.js";

export type EntryType = "file" | "dir" | "symlink" | "chardev" | "blockdev" | "fifo" | "socket";

export interface TreeEntry {
  /** Absolute path inside the image, "/" for the root. */
  path: string;
  name: string;
  type: EntryType;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  nlink: number;
  /** The filesystem's inode number (hard links share it). */
  inode: number;
  target?: string;
  /** Readers set the key on every entry, undefined but for devices: one object shape. */
  rdev?: number | undefined;
  /** Where the inode sits in the filesystem: equal keys mean the same inode (loop checks). */
  readonly key: number;
  /** Reader-private handle to find the inode again. */
  readonly ref: unknown;
}

/** A filesystem inside an image, read without mounting it. */
export interface ImageFilesystem {
  /** "directory" for a directory extension (directory-fs.ts). */
  readonly type: ReadableFilesystem | "directory";
  /** Compression name(s) in use, e.g. "gzip" or "lz4" (or "none"). */
  readonly compression: string;
  readonly blockSize: number;
  root(): Promise<TreeEntry>;
  /** The entries of a directory, without "." and "..". */
  list(dir: TreeEntry): Promise<TreeEntry[]>;
  xattrs(entry: TreeEntry): Promise<Record<string, Buffer>>;
  /** Finds one name in a directory; faster than list() where the format has an index. */
  child?(dir: TreeEntry, name: string): Promise<TreeEntry | undefined>;
  /** Streams a regular file's bytes in chunks of at most a block or so. */
  read(entry: TreeEntry): AsyncIterable<Buffer>;
}

export const MODE_TYPE_BITS: Record<EntryType, number> = {
  file: 0o100000,
  dir: 0o040000,
  symlink: 0o120000,
  chardev: 0o020000,
  blockdev: 0o060000,
  fifo: 0o010000,
  socket: 0o140000,
};

/** Limits for walking untrusted trees. */
export const MAX_DEPTH = 256;
export const MAX_ENTRIES = 5_000_000;
/** Longest path a walk accepts: PATH_MAX, which no path systemd can open exceeds. */
export const MAX_PATH = 4096;

function joinPath(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

export function childPath(dir: TreeEntry, name: string): string {
  return joinPath(dir.path, name);
}

/** Rejects names that could escape or confuse a path: empty, ".", "..", or containing "/". */
export function checkEntryName(name: string, where: string): void {
  if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
    throw new ExtctlError(
      "format",
      `the image has an invalid file name ${JSON.stringify(name)} in ${where}`,
      {
        hint: "the image is damaged or crafted; do not use it",
      },
    );
  }
}

function tooMany(): ExtctlError {
  return new ExtctlError("format", `the image holds more than ${MAX_ENTRIES} entries`);
}

/**
 * Refuses to descend into `dir` when it loops back to an ancestor, is a directory already
 * walked under another path, or nests too deep. squashfs and erofs cannot hard-link a
 * directory, so one reached twice is crafted: a few KiB of directories all pointing at the
 * next level would otherwise make a walk visit fanout^depth entries.
 */
function checkDescent(
  dir: TreeEntry,
  ancestors: Set<number>,
  visited: Set<number>,
  depth: number,
): void {
  if (ancestors.has(dir.key))
    throw new ExtctlError(
      "format",
      `the image's directory ${dir.path} loops back to one of its parents`,
      { hint: "the image is damaged or crafted; do not use it" },
    );
  if (visited.has(dir.key))
    throw new ExtctlError(
      "format",
      `the image's directory ${dir.path} is a directory already listed under another path`,
      { hint: "the image is damaged or crafted; do not use it" },
    );
  if (depth >= MAX_DEPTH)
    throw new ExtctlError(
      "format",
      `the image's directories nest deeper than ${MAX_DEPTH} levels at ${dir.path}`,
    );
}

interface WalkFrame {
  dir: TreeEntry;
  children: TreeEntry[];
  next: number;
}

/**
 * Walks the whole tree depth-first in name order, calling `visit` for each entry (a promise it
 * returns is awaited before the walk goes on). A directory that contains one of its own
 * ancestors (a loop only a crafted image has) and over-deep or over-large trees are errors.
 * A callback, not an async generator, because a generator step per entry was a good part of
 * inspecting an image with many files.
 */
export async function walkEach(
  fs: ImageFilesystem,
  start: TreeEntry | undefined,
  visit: (entry: TreeEntry) => void | Promise<void>,
): Promise<void> {
  const root = start ?? (await fs.root());
  const first = visit(root);
  if (first) await first;
  if (root.type !== "dir") return;
  let count = 1;
  // An explicit stack (not recursion) keeps each step O(1) however deep the tree is.
  const stack: WalkFrame[] = [{ dir: root, children: await fs.list(root), next: 0 }];
  const ancestors = new Set<number>([root.key]);
  const visited = new Set<number>([root.key]);
  while (stack.length > 0) {
    const top = stack[stack.length - 1] as WalkFrame;
    if (top.next >= top.children.length) {
      ancestors.delete(top.dir.key);
      stack.pop();
      continue;
    }
    const child = top.children[top.next++] as TreeEntry;
    if (++count > MAX_ENTRIES) throw tooMany();
    if (child.path.length > MAX_PATH)
      throw new ExtctlError(
        "format",
        `the image holds a path longer than ${MAX_PATH} bytes under ${top.dir.path.slice(0, 200)}`,
        { hint: "the image is damaged or crafted; do not use it" },
      );
    const pending = visit(child);
    if (pending) await pending;
    if (child.type !== "dir") continue;
    checkDescent(child, ancestors, visited, stack.length);
    ancestors.add(child.key);
    visited.add(child.key);
    stack.push({ dir: child, children: await fs.list(child), next: 0 });
  }
}

/** walkEach as an iterable, for callers that read better with for-await (tests, tools). */
export async function* walk(fs: ImageFilesystem, start?: TreeEntry): AsyncGenerator<TreeEntry> {
  const entries: TreeEntry[] = [];
  await walkEach(fs, start, (entry) => {
    entries.push(entry);
  });
  yield* entries;
}

/**
 * Finds a path inside the image. Symlinks in the middle (and at the end with `follow`) are
 * resolved inside the image, never outside it, with a bounded number of hops.
 */
export async function lookup(
  fs: ImageFilesystem,
  path: string,
  options: { follow?: boolean } = {},
): Promise<TreeEntry | undefined> {
  let pending = path.split("/").filter((p) => p !== "" && p !== ".");
  const stack: TreeEntry[] = [await fs.root()];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    const current = stack[stack.length - 1] as TreeEntry;
    if (part === "..") {
      if (stack.length > 1) stack.pop();
      continue;
    }
    if (current.type !== "dir") return undefined;
    const child = fs.child
      ? await fs.child(current, part)
      : (await fs.list(current)).find((c) => c.name === part);
    if (!child) return undefined;
    if (child.type === "symlink" && (pending.length > 0 || options.follow)) {
      if (++hops > 40)
        throw new ExtctlError("format", `too many symbolic links resolving ${path} in the image`);
      const target = child.target ?? "";
      if (target.startsWith("/")) stack.length = 1;
      pending = [...target.split("/").filter((p) => p !== "" && p !== "."), ...pending];
      continue;
    }
    stack.push(child);
  }
  return stack[stack.length - 1];
}

/** Reads a whole (small) file, refusing anything above `maxBytes`. */
export async function readSmallFile(
  fs: ImageFilesystem,
  entry: TreeEntry,
  maxBytes: number,
): Promise<Buffer> {
  if (entry.size > maxBytes)
    throw new ExtctlError(
      "format",
      `${entry.path} in the image is ${entry.size} bytes, more than the ${maxBytes} allowed`,
    );
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of fs.read(entry)) {
    total += chunk.length;
    if (total > maxBytes)
      throw new ExtctlError("format", `${entry.path} in the image is larger than it claims`);
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

/** "drwxr-xr-x"-style text for a type and mode, as ls and unsquashfs print it. */
export function modeString(type: EntryType, mode: number): string {
  const t = {
    file: "-",
    dir: "d",
    symlink: "l",
    chardev: "c",
    blockdev: "b",
    fifo: "p",
    socket: "s",
  }[type];
  const rwx = (bits: number, special: boolean, ch: string) =>
    (bits & 4 ? "r" : "-") +
    (bits & 2 ? "w" : "-") +
    (special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? "x" : "-");
  return (
    t +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, "s") +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, "s") +
    rwx(mode & 7, (mode & 0o1000) !== 0, "t")
  );
}
