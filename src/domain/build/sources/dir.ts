// Reads a directory on the host into a FileTree: metadata from lstat, bytes left in place until
// staging copies them. Hardlinks are found by inode, so they stay hardlinks in the image.
import { lstat, readdir, readlink } from "node:fs/promises";
import path from "node:path";
import { fsError } from "../../../util/errors.js";
import { mapInParallel } from "../parallel.js";
import { FileTree, type EntryType, type TreeEntry } from "../tree.js";
import type { Stats } from "node:fs";

function entryTypeOf(st: Stats): EntryType {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  if (st.isFIFO()) return "fifo";
  return "socket";
}

export async function readDirectoryTree(dir: string): Promise<FileTree> {
  const tree = new FileTree();
  const inodes = new Map<string, TreeEntry>();
  const walk = async (hostDir: string, rel: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(hostDir);
    } catch (e) {
      throw fsError(e, `read the source directory ${hostDir}`);
    }
    names.sort();
    const stats = await mapInParallel(names, 32, async (name) => {
      const hostPath = path.join(hostDir, name);
      try {
        return await lstat(hostPath);
      } catch (e) {
        throw fsError(e, `read ${hostPath}`);
      }
    });
    // Results are used in name order, so hardlink detection stays deterministic.
    for (const [i, name] of names.entries()) {
      const hostPath = path.join(hostDir, name);
      const treePath = rel === "" ? name : `${rel}/${name}`;
      const st = stats[i] as Stats;
      const entry: TreeEntry = {
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
        entry.linkTarget = await readlink(hostPath);
      }
      tree.set(entry);
      if (entry.type === "dir") await walk(hostPath, treePath);
    }
  };
  await walk(dir, "");
  return tree;
}
