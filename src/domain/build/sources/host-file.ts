// Copies a source file into staging only if it is still the file the walk saw. Between the walk
// and the copy, whoever can write to the source could swap a file for a symlink (or a parent
// directory for one) to a file they cannot read, such as /etc/shadow, and a build run as root
// would put its bytes in the image. So the file is opened without following a symlink, and the
// open handle (not the path) must be the inode the walk recorded, a regular file of the same
// size; the bytes are then copied from that handle.
import { constants, createReadStream, createWriteStream } from "node:fs";
import { chmod, copyFile, open, stat, type FileHandle } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { ExtctlError, errnoCode, fsError } from "../../../util/errors.js";

/** What the walk saw of a regular file: its inode and size. */
export interface HostIdentity {
  dev: number;
  ino: number;
  size: number;
}

function changed(file: string, how: string): ExtctlError {
  return new ExtctlError("build", `the source file ${file} ${how} after it was listed`, {
    hint: "build again from a source that nobody modifies during the build",
  });
}

/**
 * Opens `file` for reading without following a symlink in its last component (O_NOFOLLOW) and
 * without blocking on a FIFO (O_NONBLOCK), and checks that the handle is the inode `expect`
 * names. Matching dev and ino also covers a parent directory swapped for a symlink: whatever path
 * was walked, the handle is the very inode listed inside the source. Inode numbers are compared
 * as Node numbers on both sides, so the same rounding applies to each.
 */
export async function openVerified(file: string, expect: HostIdentity): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = errnoCode(e);
    if (code === "ELOOP") throw changed(file, "was replaced by a symlink");
    if (code === "ENOENT") throw changed(file, "disappeared");
    throw fsError(e, `open the source file ${file}`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw changed(file, "is no longer a regular file");
    if (st.dev !== expect.dev || st.ino !== expect.ino)
      throw changed(file, "was replaced by another file");
    if (st.size !== expect.size)
      throw changed(file, `changed size (${expect.size} -> ${st.size} bytes)`);
    return handle;
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/**
 * Copies the verified file to `dest` (created, never overwritten), keeping its mode like
 * copyFile does. The copy reads /proc/self/fd/N, which reopens the handle's own inode rather
 * than resolving the path again, so copy_file_range and reflinks still apply; without /proc it
 * streams from the handle. A size that differs afterwards means the file was written meanwhile.
 */
export async function copyVerifiedHostFile(
  file: string,
  expect: HostIdentity,
  dest: string,
): Promise<void> {
  const handle = await openVerified(file, expect);
  try {
    try {
      await copyFile(`/proc/self/fd/${handle.fd}`, dest, constants.COPYFILE_EXCL);
    } catch (e) {
      if (errnoCode(e) !== "ENOENT") throw fsError(e, `copy ${file} into staging`);
      const st = await handle.stat();
      await pipeline(
        createReadStream("", { fd: handle.fd, autoClose: false, start: 0 }),
        createWriteStream(dest, { flags: "wx", mode: 0o600 }),
      );
      await chmod(dest, st.mode & 0o7777);
    }
    const [now, copied] = await Promise.all([handle.stat(), stat(dest)]);
    if (now.size !== expect.size || copied.size !== expect.size)
      throw changed(file, "was written to while it was copied");
  } finally {
    await handle.close();
  }
}
