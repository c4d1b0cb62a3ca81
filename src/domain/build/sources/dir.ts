// Reads a directory on the host into a FileTree: metadata from lstat, bytes left in place until
// staging copies them. Hardlinks are found by inode, so they stay hardlinks in the image.
// Each directory is opened without following a symlink and checked against what its parent's
// listing saw, then listed through /proc/self/fd/N: a directory swapped for a symlink during the
// walk cannot make the walk list (and staging copy) files from outside the source.
import { constants } from "node:fs";
import { lstat, open, readdir, readlink, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { ExtctlError, errnoCode, fsError } from "../../../util/errors.js";
import { mapInParallel } from "../parallel.js";
import { FileTree, type BuildEntryType, type BuildEntry } from "../tree.js";
import type { Stats } from "node:fs";

function entryTypeOf(st: Stats): BuildEntryType {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  if (st.isFIFO()) return "fifo";
  return "socket";
}

let procFd: boolean | undefined;

/**
 * Opens a directory of the walk (O_NOFOLLOW, O_DIRECTORY) and checks it is the inode its
 * parent's listing saw (`seen`; the source root itself may be a symlink the user named).
 * Undefined without /proc, where the walk falls back to paths and staging's check alone.
 */
export async function openDirectory(
  hostDir: string,
  seen?: Stats,
): Promise<FileHandle | undefined> {
  if (procFd === undefined) {
    procFd = await lstat("/proc/self/fd").then(
      () => true,
      () => false,
    );
  }
  if (!procFd) return undefined;
  const flags = constants.O_RDONLY | constants.O_DIRECTORY | (seen ? constants.O_NOFOLLOW : 0);
  let handle: FileHandle;
  try {
    handle = await open(hostDir, flags);
  } catch (e) {
    if (seen && (errnoCode(e) === "ELOOP" || errnoCode(e) === "ENOTDIR"))
      throw swapped(hostDir, "was replaced by a symlink or a file");
    throw fsError(e, `read the source directory ${hostDir}`);
  }
  const st = await handle.stat();
  if (seen && (st.dev !== seen.dev || st.ino !== seen.ino)) {
    await handle.close();
    throw swapped(hostDir, "was replaced by another directory");
  }
  return handle;
}

function swapped(dir: string, how: string): ExtctlError {
  return new ExtctlError("build", `the source directory ${dir} ${how} while it was read`, {
    hint: "build again from a source that nobody modifies during the build",
  });
}

export async function readDirectoryTree(dir: string): Promise<FileTree> {
  const tree = new FileTree();
  const inodes = new Map<string, BuildEntry>();
  const walk = async (hostDir: string, rel: string, seen?: Stats): Promise<void> => {
    const handle = await openDirectory(hostDir, seen);
    try {
      await listDirectory(hostDir, rel, handle);
    } finally {
      await handle?.close();
    }
  };
  const listDirectory = async (
    hostDir: string,
    rel: string,
    handle: FileHandle | undefined,
  ): Promise<void> => {
    // Names are looked up in the opened directory itself, never by the path again.
    const via = handle ? `/proc/self/fd/${handle.fd}` : hostDir;
    let names: string[];
    try {
      names = await readdir(via);
    } catch (e) {
      throw fsError(e, `read the source directory ${hostDir}`);
    }
    names.sort();
    const stats = await mapInParallel(names, 32, async (name) => {
      try {
        return await lstat(path.join(via, name));
      } catch (e) {
        throw fsError(e, `read ${path.join(hostDir, name)}`);
      }
    });
    // Results are used in name order, so hardlink detection stays deterministic.
    for (const [i, name] of names.entries()) {
      const hostPath = path.join(hostDir, name);
      const treePath = rel === "" ? name : `${rel}/${name}`;
      const st = stats[i] as Stats;
      const entry: BuildEntry = {
        path: treePath,
        type: entryTypeOf(st),
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtime: Math.floor(st.mtimeMs / 1000),
        size: 0,
      };
      if (entry.type === "file") {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? inodes.get(key) : undefined;
        entry.size = st.size;
        if (first?.content !== undefined) {
          // The link carries the first path's bytes too, in case a filter drops that path.
          entry.type = "hardlink";
          entry.hardlinkTarget = first.path;
          entry.content = first.content;
        } else {
          entry.content = { kind: "host", path: hostPath, dev: st.dev, ino: st.ino };
          if (st.nlink > 1) inodes.set(key, entry);
        }
      } else if (entry.type === "symlink") {
        entry.linkTarget = await readlink(path.join(via, name));
      }
      tree.set(entry);
      if (entry.type === "dir") await walk(hostPath, treePath, st);
    }
  };
  await walk(dir, "");
  return tree;
}
