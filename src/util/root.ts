// The root every path lives under (default "/"). Paths are always given as absolute paths on
// the node ("/var/lib/kairos/extensions") and mapped here, so nothing escapes a --root.
import { lstat, readlink } from "node:fs/promises";
import path from "node:path";
import { ExtctlError, errnoCode } from "./errors.js";

const MAX_SYMLINK_HOPS = 40;

export class Root {
  /** Absolute, normalised host path of the root directory. */
  readonly dir: string;

  constructor(dir = "/") {
    this.dir = path.resolve(dir);
  }

  get isHostRoot(): boolean {
    return this.dir === "/";
  }

  /**
   * Host path for a node path. `nodePath` must be absolute; ".." can never climb above the
   * root because the node path is normalised before it is joined.
   */
  path(nodePath: string): string {
    if (!nodePath.startsWith("/")) {
      throw new ExtctlError("internal", `node path must be absolute: ${nodePath}`);
    }
    const normal = path.posix.normalize(nodePath);
    return this.isHostRoot ? normal : path.join(this.dir, normal);
  }

  /** The node path of a host path inside the root, or undefined when it lies outside. */
  toNodePath(hostPath: string): string | undefined {
    const abs = path.resolve(hostPath);
    if (this.isHostRoot) return abs;
    if (abs === this.dir) return "/";
    if (!abs.startsWith(this.dir + path.sep)) return undefined;
    return abs.slice(this.dir.length);
  }

  /**
   * Resolves a node path as the kernel would inside a chroot at this root: absolute symlink
   * targets are taken relative to the root and ".." stops at it. Returns the node path of the
   * final target (which may not exist) or throws on a loop.
   */
  async resolve(nodePath: string): Promise<string> {
    let pending = path.posix.normalize(nodePath).split("/").filter(Boolean);
    const done: string[] = [];
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift() as string;
      if (part === ".") continue;
      if (part === "..") {
        done.pop();
        continue;
      }
      const candidate = "/" + [...done, part].join("/");
      let target: string | undefined;
      try {
        const st = await lstat(this.path(candidate));
        if (st.isSymbolicLink()) target = await readlink(this.path(candidate));
      } catch (e) {
        if (errnoCode(e) !== "ENOENT" && errnoCode(e) !== "ENOTDIR") throw e;
      }
      if (target === undefined) {
        done.push(part);
        continue;
      }
      if (++hops > MAX_SYMLINK_HOPS) {
        throw new ExtctlError("io", `too many levels of symbolic links resolving ${nodePath}`);
      }
      const rest = target.split("/").filter(Boolean);
      if (target.startsWith("/")) done.length = 0;
      pending = [...rest, ...pending];
    }
    return "/" + done.join("/");
  }
}
