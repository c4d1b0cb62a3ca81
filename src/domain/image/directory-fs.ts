// A directory extension (a plain directory in a search dir, systemd merges it with a bind mount)
// read through the same model as an image's filesystem, so its release file is found by the
// same rules. Nothing is followed on the host: entries are lstat'ed and symlinks are resolved
// by the tree walk inside the directory, as systemd resolves them inside the extension.
import { execFile } from "node:child_process";
import { lstat, open, readdir, readlink } from "node:fs/promises";
import { constants } from "node:fs";
import type { Stats } from "node:fs";
import { childPath, type EntryType, type ImageFilesystem, type TreeEntry } from "./tree.js";

function typeOf(st: Stats): EntryType {
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isCharacterDevice()) return "chardev";
  if (st.isBlockDevice()) return "blockdev";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  return "file";
}

/** user.* xattrs of a file through `getfattr` (Node has none); none when it is not installed. */
function userXattrs(hostPath: string): Promise<Record<string, Buffer>> {
  return new Promise((resolve) => {
    execFile(
      "getfattr",
      ["--absolute-names", "-d", "-e", "hex", "--", hostPath],
      { timeout: 10_000, maxBuffer: 1 << 20 },
      (error, stdout) => {
        const out: Record<string, Buffer> = {};
        if (!error)
          for (const line of stdout.split("\n")) {
            const m = /^([^=#\s]+)=0x([0-9a-fA-F]*)$/.exec(line.trim());
            if (m) out[m[1] as string] = Buffer.from(m[2] as string, "hex");
          }
        resolve(out);
      },
    );
  });
}

export class DirectoryFilesystem implements ImageFilesystem {
  readonly type = "directory" as const;
  readonly compression = "none";
  readonly blockSize = 4096;

  constructor(private readonly hostDir: string) {}

  private host(entry: { path: string }): string {
    return entry.path === "/" ? this.hostDir : `${this.hostDir}${entry.path}`;
  }

  private async entry(p: string, name: string): Promise<TreeEntry> {
    const hostPath = p === "/" ? this.hostDir : `${this.hostDir}${p}`;
    const st = await lstat(hostPath);
    const type = typeOf(st);
    return {
      path: p,
      name,
      type,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: st.size,
      mtime: Math.floor(st.mtimeMs / 1000),
      nlink: st.nlink,
      inode: st.ino,
      ...(type === "symlink" ? { target: await readlink(hostPath) } : {}),
      rdev: type === "chardev" || type === "blockdev" ? st.rdev : undefined,
      key: st.ino,
      ref: undefined,
    };
  }

  root(): Promise<TreeEntry> {
    return this.entry("/", "");
  }

  async list(dir: TreeEntry): Promise<TreeEntry[]> {
    const names = (await readdir(this.host(dir))).sort();
    return Promise.all(names.map((n) => this.entry(childPath(dir, n), n)));
  }

  async child(dir: TreeEntry, name: string): Promise<TreeEntry | undefined> {
    return this.entry(childPath(dir, name), name).catch(() => undefined);
  }

  xattrs(entry: TreeEntry): Promise<Record<string, Buffer>> {
    return userXattrs(this.host(entry));
  }

  async *read(entry: TreeEntry): AsyncIterable<Buffer> {
    // O_NOFOLLOW: the entry was a regular file when listed; a symlink put there since is refused.
    const handle = await open(this.host(entry), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      for await (const chunk of handle.createReadStream({
        highWaterMark: 64 * 1024,
        autoClose: false,
      }))
        yield chunk as Buffer;
    } finally {
      await handle.close();
    }
  }
}
