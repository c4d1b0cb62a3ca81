// The one way bytes enter the store: streamed into a hidden temp file beside the target, hashed
// while they pass, checked, fsynced and renamed into place. Any failure removes the temp file.
import { createHash } from "node:crypto";
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { ExtctlError, fsError } from "../../util/errors.js";
import { fsyncDir, tempPathBeside } from "../../util/atomic.js";
import type { Progress } from "../../util/progress.js";
import type { FetchedImage } from "./types.js";

export interface StreamToStoreOptions {
  storeDir: string;
  name: string;
  mode?: number;
  sha256?: string;
  /** Exact size the stream must have, when the source announced one. */
  expectedSize?: number;
  progress?: Progress;
  /** Where the bytes came from, for messages. */
  from: string;
  /** Says what went wrong when reading the source failed (default: a read error on `from`). */
  describeReadError?: (e: unknown) => Error;
}

const WRITE_BATCH = 1 << 20;
/** A drip of tiny chunks still goes out in bounded writev calls (IOV_MAX is 1024 on Linux). */
const MAX_PIECES = 1024;

export async function streamToStore(
  body: AsyncIterable<Buffer> | Readable,
  options: StreamToStoreOptions,
): Promise<FetchedImage> {
  const target = path.join(options.storeDir, options.name);
  const temp = tempPathBeside(target, "dl");
  const hash = createHash("sha256");
  let size = 0;
  let handle: FileHandle;
  try {
    handle = await open(temp, "wx", 0o600);
  } catch (e) {
    throw fsError(e, `create a file in the store ${options.storeDir}`);
  }
  let open_ = true;
  // A failure while waiting for the source is the source's (a cut connection), not the store's.
  let reading = false;
  try {
    // Batch small network chunks into ~1 MiB writes (far fewer syscalls than one per chunk), and
    // keep one write in flight while the next batch arrives, so disk and network overlap.
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let inFlight: Promise<void> = Promise.resolve();
    // writev hands the kernel the network chunks as they are: no Buffer.concat copy of every
    // byte (and no fresh 1 MiB buffer per batch for the GC to collect).
    const writeAll = async (data: Buffer[]) => {
      let { bytesWritten: done } = await handle.writev(data);
      for (const piece of data) {
        // Only a short writev (rare: signals, nearly full disks) gets here with work left.
        if (done >= piece.length) {
          done -= piece.length;
          continue;
        }
        let off = done;
        done = 0;
        while (off < piece.length) {
          const { bytesWritten } = await handle.write(piece, off, piece.length - off);
          off += bytesWritten;
        }
      }
    };
    const flush = async () => {
      if (pendingBytes === 0) return;
      const data = pending;
      pending = [];
      pendingBytes = 0;
      await inFlight;
      inFlight = writeAll(data);
      // Awaited at the next flush or at the end; this only keeps it from being "unhandled".
      inFlight.catch(() => {});
    };
    reading = true;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      reading = false;
      hash.update(chunk);
      size += chunk.length;
      if (options.expectedSize !== undefined && size > options.expectedSize) {
        throw new ExtctlError(
          "download",
          `${options.from} sent more than the ${options.expectedSize} bytes it announced`,
        );
      }
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= WRITE_BATCH || pending.length >= MAX_PIECES) await flush();
      options.progress?.tick(chunk.length);
      reading = true;
    }
    reading = false;
    await flush();
    await inFlight;
    if (options.expectedSize !== undefined && size !== options.expectedSize) {
      throw new ExtctlError(
        "download",
        `${options.from} ended after ${size} of the ${options.expectedSize} bytes it announced`,
        { hint: "the connection was cut; try again" },
      );
    }
    const digest = hash.digest("hex");
    if (options.sha256 !== undefined && digest !== options.sha256.toLowerCase()) {
      throw new ExtctlError(
        "checksum",
        `SHA-256 mismatch for ${options.from}: expected ${options.sha256.toLowerCase()}, got ${digest}`,
        {
          hint: "the file changed or was corrupted in transit; nothing was stored",
        },
      );
    }
    await handle.chmod(options.mode ?? 0o644);
    await handle.sync();
    await handle.close();
    open_ = false;
    await rename(temp, target);
    await fsyncDir(options.storeDir);
    return { name: options.name, path: target, size, sha256: digest };
  } catch (e) {
    if (open_) await handle.close().catch(() => {});
    await rm(temp, { force: true });
    if (e instanceof ExtctlError) throw e;
    if (reading) throw options.describeReadError?.(e) ?? fsError(e, `read ${options.from}`);
    throw fsError(e, `write ${options.name} into the store`);
  } finally {
    options.progress?.stop();
  }
}

export function checkSha256Option(sha256: string | undefined): string | undefined {
  if (sha256 === undefined) return undefined;
  if (!/^[0-9a-fA-F]{64}$/.test(sha256)) {
    throw new ExtctlError("usage", `--sha256 wants 64 hex digits, got ${JSON.stringify(sha256)}`, {
      exitCode: 2,
    });
  }
  return sha256.toLowerCase();
}
