// A usr partition as systemd mounts it: for a DDI with a usr but no root partition, systemd puts a
// tmpfs at / and the partition's filesystem at /usr, so the filesystem's top is the image's /usr.
import type { ImageFilesystem, TreeEntry } from "./tree.js";

const SYNTHETIC_ROOT = Symbol("usr-only image root");

/** The tree systemd sees for a usr-only image: an empty root holding the filesystem as /usr. */
export function mountedAtUsr(inner: ImageFilesystem): ImageFilesystem {
  let usr: Promise<TreeEntry> | undefined;
  const usrEntry = () =>
    (usr ??= inner.root().then((root) => ({ ...root, path: "/usr", name: "usr" })));
  const root: TreeEntry = {
    path: "/",
    name: "",
    type: "dir",
    mode: 0o755,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: 0,
    nlink: 3,
    inode: 0,
    rdev: undefined,
    // Readers' keys are their inode references (never negative): this one cannot clash.
    key: -1,
    ref: SYNTHETIC_ROOT,
  };
  const isRoot = (e: TreeEntry) => e.ref === SYNTHETIC_ROOT;
  const view: ImageFilesystem = {
    type: inner.type,
    compression: inner.compression,
    blockSize: inner.blockSize,
    root: () => Promise.resolve(root),
    list: async (dir) => (isRoot(dir) ? [await usrEntry()] : inner.list(dir)),
    xattrs: (entry) => (isRoot(entry) ? Promise.resolve({}) : inner.xattrs(entry)),
    read: (entry) => inner.read(entry),
  };
  const child = inner.child?.bind(inner);
  if (child)
    view.child = async (dir, name) =>
      isRoot(dir) ? (name === "usr" ? usrEntry() : undefined) : child(dir, name);
  return view;
}
