// Writes that are all or nothing: data goes to a temp file beside the target, is fsynced and
// renamed into place; symlinks are made under a temp name and renamed over. A crash leaves
// either the old state or the new one, plus at most a temp file that starts with ".extctl-".
import { open, rename, rm, symlink, readdir, unlink } from "node:fs/promises";
import path from "node:path";
import { errnoCode } from "./errors.js";
import type { Root } from "./root.js";
import { makeDir } from "./owned-state.js";

export const TEMP_PREFIX = ".extctl-";

/** Temp names made by this process so far: with the pid, a name no other live process makes. */
let made = 0;

export function tempPathBeside(target: string, tag = "tmp"): string {
  // Unique, not secret: only root writes where extctl makes them. Math.random rather than
  // node:crypto, which would be loaded by every command for this alone (~2.5 ms).
  const unique = `${process.pid}-${(made++).toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  return path.join(path.dirname(target), `${TEMP_PREFIX}${tag}-${unique}-${path.basename(target)}`);
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } catch (e) {
    // Some filesystems (tmpfs on old kernels, overlay) refuse fsync on directories; the rename
    // is still atomic there.
    if (errnoCode(e) !== "EINVAL" && errnoCode(e) !== "EBADF") throw e;
  } finally {
    await handle.close();
  }
}

export async function writeFileAtomic(
  target: string,
  data: string | Buffer,
  mode = 0o644,
): Promise<void> {
  const temp = tempPathBeside(target);
  const handle = await open(temp, "wx", mode);
  try {
    await handle.writeFile(data);
    await handle.chmod(mode);
    await handle.sync();
    await handle.close();
    await rename(temp, target);
  } catch (e) {
    await handle.close().catch(() => {});
    await rm(temp, { force: true });
    throw e;
  }
  await fsyncDir(path.dirname(target));
}

/**
 * writeFileAtomic for a node path under `root`: its directory (made 0755 when missing) is
 * resolved inside the root, and one that leads outside it or that others could write is an
 * error (Root.writePath, makeDir). Returns the host path written.
 */
export async function writeFileInRoot(
  root: Root,
  nodePath: string,
  data: string | Buffer,
  mode = 0o644,
): Promise<string> {
  const dir = await root.writePath(path.posix.dirname(nodePath), { what: nodePath });
  await makeDir(dir, { within: root.dir, what: path.posix.dirname(nodePath) });
  const file = path.join(dir, path.posix.basename(nodePath));
  await writeFileAtomic(file, data, mode);
  return file;
}

/** Makes `linkPath` a symlink to `target`, replacing whatever link was there, atomically. */
export async function symlinkAtomic(target: string, linkPath: string): Promise<void> {
  const temp = tempPathBeside(linkPath, "link");
  await symlink(target, temp);
  try {
    await rename(temp, linkPath);
  } catch (e) {
    await unlink(temp).catch(() => {});
    throw e;
  }
}

/** Deletes temp files a killed run left in `dir` (only ours: they carry TEMP_PREFIX). */
export async function sweepTempFiles(dir: string, isStale: (name: string) => boolean = () => true) {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (name.startsWith(TEMP_PREFIX) && isStale(name)) {
      await rm(path.join(dir, name), { force: true, recursive: true }).catch(() => {});
    }
  }
}

/** The pid encoded in a temp name made by tempPathBeside, if any. */
export function tempOwnerPid(name: string): number | undefined {
  const m = /^\.extctl-[a-z]+-(\d+)-/.exec(name);
  return m ? Number(m[1]) : undefined;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === "EPERM";
  }
}
