// The one way bytes enter the store: streamed into a hidden temp file beside the target, hashed
// while they pass (StagedWriter), checked, fsynced and renamed into place. Any failure removes
// the temp file.
import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { ExtctlError, fsError } from "../../util/errors.js";
import { fsyncDir, tempPathBeside } from "../../util/atomic.js";
import { onInterrupt } from "../../util/interrupt.js";
import { adoptPartial, type PartialDownload } from "./partial-download.js";
import type { Progress } from "../../util/progress.js";
import type { FetchedImage } from "./types.js";
import { isBulkBody, MAX_VIEW, type BulkBody } from "./http1.js";
import { StagedWriter } from "./staged-writer.js";
import { sizeLimitError, type StoreRoom } from "./expansion.js";
import { checkIsImage, type MergeTarget } from "./image-check.js";

/** The most a store file may allow: rw-r--r--, never setuid/setgid/sticky, exec or o+w. */
export const STORE_MODE_MASK = 0o644;

export interface StreamToStoreOptions {
  storeDir: string;
  name: string;
  mode?: number;
  sha256?: string;
  /** Exact size the stream must have, when the source announced one. */
  expectedSize?: number;
  /**
   * The most bytes accepted (the store's room or --max-size, see expansion.ts): a source that
   * announced no size cannot fill the disk.
   */
  maxSize?: number;
  progress?: Progress;
  /** Where the bytes came from, for messages. */
  from: string;
  /** Checks that the image can merge on this root under some link name (image-check.ts). */
  mergeTarget?: MergeTarget;
  /** Says what went wrong when reading the source failed (default: a read error on `from`). */
  describeReadError?: (e: unknown) => Error;
  /**
   * Continues a transfer cut after `offset` bytes (a dropped connection, a body that ended
   * early): the rest of the bytes, or undefined when the source cannot resume.
   */
  resume?: (offset: number, cause: unknown) => Promise<StoreInput | undefined>;
  /** What maxSize stands for (free space or --max-size), for the message when it is passed. */
  room?: StoreRoom;
  /** `body` is the rest of a download an interrupted run kept. */
  continues?: ContinuedDownload;
  /**
   * On SIGINT/SIGTERM: keep the temp file holding `have` bytes in order (synchronous; it
   * throws to have the file removed instead).
   */
  keepOnInterrupt?: (temp: string, have: number) => void;
}

/** A download kept by an interrupted run (partial-download.ts) that `body` continues. */
export interface ContinuedDownload {
  partial: PartialDownload;
}

/** How often one transfer may be resumed. */
const MAX_RESUMES = 5;

/** Bytes from a stream, or a response body from http1.ts (read without per-chunk buffers). */
export type StoreInput = AsyncIterable<Buffer> | Readable | BulkBody;

export async function streamToStore(
  body: StoreInput,
  options: StreamToStoreOptions,
): Promise<FetchedImage> {
  const target = path.join(options.storeDir, options.name);
  const temp = tempPathBeside(target, "dl");
  const hash = createHash("sha256");
  const kept = options.continues?.partial;
  // A known size is checked against the room before anything is written.
  if (options.expectedSize !== undefined && options.maxSize !== undefined) {
    const needed = options.expectedSize - (kept?.have ?? 0);
    const limit = typeof options.room === "object" ? options.room.limit : options.maxSize;
    if (needed > limit || options.expectedSize > options.maxSize)
      throw sizeLimitError(options.from, options.room ?? options.maxSize, options.expectedSize);
  }
  let handle: FileHandle;
  try {
    if (kept) await adoptPartial(kept, temp, hash);
    handle = await open(temp, kept ? "r+" : "wx", 0o600);
  } catch (e) {
    await rm(temp, { force: true });
    throw fsError(e, `create a file in the store ${options.storeDir}`);
  }
  let open_ = true;
  // Hashed and staged in a few large slabs, one pwrite each, while the next bytes arrive.
  const writer = new StagedWriter(handle, { maxView: MAX_VIEW, hash, start: kept?.have ?? 0 });
  if (kept) options.progress?.tick(kept.have);
  // Ctrl-C mid-download leaves nothing in the store: what was written is kept for the next run
  // when it can be continued (keepOnInterrupt), else removed (util/interrupt.ts).
  const forget = onInterrupt(() => {
    try {
      if (options.keepOnInterrupt) {
        options.keepOnInterrupt(temp, writer.writeStagedSync());
        return;
      }
    } catch {
      // fall through: remove it
    }
    rmSync(temp, { force: true });
  });
  const take = (view: Buffer): Promise<void> | undefined => {
    if (
      options.expectedSize !== undefined &&
      writer.position + view.length > options.expectedSize
    ) {
      throw new ExtctlError(
        "download",
        `${options.from} sent more than the ${options.expectedSize} bytes it announced`,
      );
    }
    if (options.maxSize !== undefined && writer.position + view.length > options.maxSize)
      throw sizeLimitError(options.from, options.room ?? options.maxSize);
    options.progress?.tick(view.length);
    return writer.write(view);
  };
  const feed = async (input: StoreInput): Promise<void> => {
    if (isBulkBody(input)) {
      await input.pipe(take, () => writer.space());
      return;
    }
    for await (const chunk of input as AsyncIterable<Buffer>) {
      for (let at = 0; at < chunk.length; at += MAX_VIEW) {
        const wait = take(chunk.subarray(at, at + MAX_VIEW));
        if (wait) await wait;
      }
    }
  };
  try {
    let input: StoreInput = body;
    for (let resumes = 0; ; resumes++) {
      let cut: unknown;
      try {
        await feed(input);
      } catch (e) {
        await writer.settled();
        if (e instanceof ExtctlError) throw e;
        if (writer.failure !== undefined) throw fsError(e, `write ${options.name} into the store`);
        cut = e; // something on the source's side: a cut connection, a read error
      }
      const short =
        cut === undefined &&
        options.expectedSize !== undefined &&
        writer.position < options.expectedSize;
      if (cut === undefined && !short) break;
      await writer.settled();
      const next =
        options.resume && resumes < MAX_RESUMES
          ? await options.resume(writer.position, cut)
          : undefined;
      if (next === undefined) {
        if (cut === undefined) break; // the size check below says how short it was
        throw options.describeReadError?.(cut) ?? fsError(cut, `read ${options.from}`);
      }
      input = next;
    }
    try {
      await writer.flush();
    } catch (e) {
      throw fsError(e, `write ${options.name} into the store`);
    }
    const size = writer.position;
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
    // Only extension images enter the store: judged before the rename, so nothing else lands.
    await checkIsImage(temp, options.name, options.from, options.mergeTarget);
    try {
      await handle.chmod((options.mode ?? 0o644) & STORE_MODE_MASK);
      await handle.sync();
      await handle.close();
      open_ = false;
      await rename(temp, target);
      await fsyncDir(options.storeDir);
    } catch (e) {
      throw fsError(e, `write ${options.name} into the store`);
    }
    return { name: options.name, path: target, size, sha256: digest };
  } catch (e) {
    if (open_) await handle.close().catch(() => {});
    await rm(temp, { force: true });
    throw e;
  } finally {
    forget();
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
