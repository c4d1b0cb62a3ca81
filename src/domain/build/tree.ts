// The tree an extension image is built from, as a list of entries (never file contents): what
// each path is, its metadata, and where its bytes come from, so layers and filters stay cheap.
import path from "node:path";
import { ExtctlError } from "../../util/errors.js";

export type BuildEntryType =
  "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo" | "socket";

/** Where a regular file's bytes live until staging copies them. */
export type ContentRef =
  /** A file on the host, with the identity the walk saw: staging copies only that inode. */
  | { kind: "host"; path: string; dev: number; ino: number }
  | { kind: "layer"; layer: number; ordinal: number }
  | { kind: "inline"; data: Buffer };

export interface BuildEntry {
  /** Relative POSIX path without leading or trailing slash, e.g. "usr/bin/hello". */
  path: string;
  type: BuildEntryType;
  /** Permission bits including setuid, setgid and sticky (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time in whole seconds since the epoch. */
  mtime: number;
  /** Bytes of a regular file; 0 for everything else. */
  size: number;
  /** Target of a symlink, as stored. */
  linkTarget?: string;
  /** Tree path of the entry a hardlink shares its inode with. */
  hardlinkTarget?: string;
  content?: ContentRef;
}

/**
 * Normalises an archive or directory path to a tree path. Refuses ".." components, because a
 * layer that climbs out of the tree is hostile input, not something to repair.
 */
export function treePath(raw: string, what: string): string {
  const parts: string[] = [];
  for (const part of raw.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      throw new ExtctlError(
        "build",
        `${what} holds the path "${raw}" that climbs out of the tree`,
        {
          hint: "rebuild the source without '..' in its paths",
        },
      );
    }
    parts.push(part);
  }
  return parts.join("/");
}

/** True when a symlink at `linkPath` pointing at `target` stays inside the tree root. */
export function symlinkStaysInside(linkPath: string, target: string): boolean {
  // Absolute targets are resolved against the image root by whoever mounts it, so they cannot
  // climb out; relative ones can, by walking up past the top.
  if (target.startsWith("/")) return true;
  const joined = path.posix.normalize(path.posix.join(path.posix.dirname(linkPath), target));
  return joined !== ".." && !joined.startsWith("../") && !joined.startsWith("/");
}

/** The tree paths of all parents of `p`, top first: "a/b/c" -> ["a", "a/b"]. */
export function parentsOf(p: string): string[] {
  const parts = p.split("/");
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join("/"));
  return out;
}

/** A set of entries keyed by path, with the directory semantics layers need. */
export class FileTree {
  private readonly map = new Map<string, BuildEntry>();

  get size(): number {
    return this.map.size;
  }

  get(p: string): BuildEntry | undefined {
    return this.map.get(p);
  }

  has(p: string): boolean {
    return this.map.has(p);
  }

  /** Adds or replaces an entry; a non-directory replacing a directory drops its contents. */
  set(entry: BuildEntry): void {
    const old = this.map.get(entry.path);
    if (old?.type === "dir" && entry.type !== "dir") this.removeChildren(entry.path);
    this.map.set(entry.path, entry);
  }

  /** Removes an entry and, for a directory, everything below it. */
  remove(p: string): void {
    const old = this.map.get(p);
    this.map.delete(p);
    if (old === undefined || old.type === "dir") this.removeChildren(p);
  }

  /** Removes everything below `p` but keeps `p` itself. */
  removeChildren(p: string): void {
    const prefix = p === "" ? "" : `${p}/`;
    for (const key of [...this.map.keys()]) {
      if (key.startsWith(prefix) && key !== p) this.map.delete(key);
    }
  }

  entries(): IterableIterator<BuildEntry> {
    return this.map.values();
  }

  /** Entries sorted by path, so parents come before their children. */
  sorted(): BuildEntry[] {
    return [...this.map.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }
}
