// The root every path lives under (default "/"). Paths are always given as absolute paths on
// the node ("/var/lib/kairos/extensions") and mapped here, so nothing escapes a --root:
// readPath() to read (links resolved inside the root, as in a chroot), writePath() for every
// create, replace or delete (a link that leads out of the root is an error), path() only for
// messages and for paths already resolved.
import { lstatSync, readlinkSync } from "node:fs";
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
   * Resolves a node path as the kernel would inside a chroot at this root (openat2
   * RESOLVE_IN_ROOT): absolute symlink targets are taken relative to the root and ".." stops at
   * it. Returns the node path of the final target (which may not exist) or throws on a loop.
   * For reading: whatever the links say, what is read lies inside the root.
   */
  async resolve(nodePath: string): Promise<string> {
    return this.walk(nodePath, undefined);
  }

  /**
   * The host path to read `nodePath` at, resolved inside the root (see resolve). On the host root
   * it is the plain path (the kernel follows the links); under a --root it holds no symlink, so
   * it can be opened with O_NOFOLLOW.
   */
  async readPath(nodePath: string): Promise<string> {
    if (this.isHostRoot) return this.path(nodePath);
    return this.path(await this.resolve(nodePath));
  }

  /**
   * The host path at which extctl may create, replace or delete `nodePath`, for every write under
   * the root. Every directory on the way is resolved; a symlink that reads differently from the
   * host than from inside the root (an absolute target, or ".." climbing above the root) is
   * refused with an error naming it, because following it from the host writes outside the root.
   * `leaf: "entry"` leaves the last component unresolved (a link or file to make or remove);
   * `leaf: "follow"` resolves it too (a directory to write into). On the host root (`/`)
   * nothing can lie outside, and this is the plain path with no file system calls.
   */
  async writePath(
    nodePath: string,
    options: { leaf?: "entry" | "follow"; what?: string } = {},
  ): Promise<string> {
    const host = this.path(nodePath);
    if (this.isHostRoot) return host;
    const normal = path.posix.normalize(nodePath);
    const what = options.what ?? normal;
    if ((options.leaf ?? "follow") === "follow") return this.path(await this.walk(normal, what));
    if (normal === "/") return this.dir;
    const parent = await this.walk(path.posix.dirname(normal), what);
    return this.path(path.posix.join(parent, path.posix.basename(normal)));
  }

  /**
   * Walks `nodePath` one component at a time. With `strictFor` set (the thing being written,
   * for the message) an escaping symlink is an error; without it, it is clamped to the root.
   */
  private async walk(nodePath: string, strictFor: string | undefined): Promise<string> {
    let pending = path.posix.normalize(nodePath).split("/").filter(Boolean);
    const done: string[] = [];
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift() as string;
      if (part === ".") continue;
      if (part === "..") {
        // The caller's own ".." were normalised away, so this one came from a symlink target.
        if (done.length === 0 && strictFor !== undefined) {
          throw this.escape(strictFor, nodePath, "a symlink on the way climbs above the root");
        }
        done.pop();
        continue;
      }
      const candidate = "/" + [...done, part].join("/");
      let target: string | undefined;
      try {
        // Synchronous: one lstat of a local directory entry is a few µs, an awaited one a thread
        // pool round trip; a store path has seven components and a command resolves hundreds.
        const st = lstatSync(this.path(candidate), { throwIfNoEntry: false });
        if (st?.isSymbolicLink()) target = readlinkSync(this.path(candidate));
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
      if (target.startsWith("/")) {
        if (strictFor !== undefined) {
          throw this.escape(
            strictFor,
            nodePath,
            `${this.path(candidate)} is a symlink to ${target}, which the host reads outside the root`,
          );
        }
        done.length = 0;
      }
      pending = [...target.split("/").filter(Boolean), ...pending];
    }
    return "/" + done.join("/");
  }

  private escape(what: string, nodePath: string, why: string): ExtctlError {
    return new ExtctlError(
      "outside-root",
      `${what} (${this.path(nodePath)}) resolves outside the root ${this.dir}: ${why}; extctl does not write through it`,
      {
        hint: "replace the symlink with a directory inside the root, or use a relative link that stays inside it",
      },
    );
  }
}
