// Downloads interrupted by Ctrl-C or `systemctl stop` are kept, when they can be continued, in one
// place: /var/cache/extctl/partial (root-only). The next install of the same URL asks for the rest
// with Range and If-Range, and the whole image is hashed and checked as a fresh one would be.
import { createHash } from "node:crypto";
import { closeSync, fstatSync, openSync, renameSync, rmSync, constants, writeSync } from "node:fs";
import { mkdir, open, rm, stat } from "node:fs/promises";
import path from "node:path";
import type { Context } from "../../util/context.js";
import { readBounded } from "../../util/bounded-read.js";

/** Where partial downloads wait, under the root. */
export const PARTIAL_DIR = "/var/cache/extctl/partial";

/** What is known of a kept partial download. */
export interface PartialDownload {
  /** Host path of the bytes kept (a prefix of the file). */
  file: string;
  /** Host path of its description. */
  meta: string;
  url: string;
  /** The strong ETag or Last-Modified date the first answer carried, for If-Range. */
  validator: string;
  /** The whole file's size, as announced. */
  size: number;
  /** How many bytes are kept. */
  have: number;
}

interface PartialMeta {
  url: string;
  validator: string;
  size: number;
  have: number;
}

function keyOf(url: string): string {
  return createHash("sha256").update(url).digest("hex").slice(0, 32);
}

/** The host paths a download of `url` is kept at; the directory is made root-only. */
export async function partialPaths(
  ctx: Context,
  url: string,
): Promise<{ file: string; meta: string }> {
  const dir = await ctx.root.writePath(PARTIAL_DIR, { what: PARTIAL_DIR });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const key = keyOf(url);
  return { file: path.join(dir, `${key}.part`), meta: path.join(dir, `${key}.json`) };
}

/**
 * Keeps what a download wrote (`temp`, `have` bytes in order) for the next run: called from a
 * signal handler, so synchronous. The description is written first and names the byte count, so
 * a half-kept pair is never taken for more than it holds.
 */
export function keepPartialSync(
  paths: { file: string; meta: string },
  temp: string,
  description: Omit<PartialMeta, "have">,
  have: number,
): void {
  const fd = openSync(
    paths.meta,
    constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    writeSync(fd, JSON.stringify({ ...description, have } satisfies PartialMeta));
  } finally {
    closeSync(fd);
  }
  renameSync(temp, paths.file);
}

/** Forgets a kept download (taken, finished, or no longer of use). */
export async function dropPartial(paths: { file: string; meta: string }): Promise<void> {
  await rm(paths.file, { force: true });
  await rm(paths.meta, { force: true });
}

/** Removes a kept download synchronously (from a signal handler). */
export function dropPartialSync(paths: { file: string; meta: string }): void {
  rmSync(paths.file, { force: true });
  rmSync(paths.meta, { force: true });
}

/**
 * The kept download of `url`, if there is one this process may trust: both files owned by the
 * running user, writable by no one else, the description for this URL, and the bytes at least
 * as many as it says (only that many are used).
 */
export async function findPartial(
  paths: { file: string; meta: string },
  url: string,
): Promise<PartialDownload | undefined> {
  try {
    const uid = process.getuid?.() ?? 0;
    for (const file of [paths.meta, paths.file]) {
      const st = await stat(file);
      if (!st.isFile() || st.uid !== uid || (st.mode & 0o022) !== 0) {
        await dropPartial(paths);
        return undefined;
      }
    }
    const meta = JSON.parse(
      (await readBounded(paths.meta, { cap: 16 << 10, noFollow: true })).toString("utf8"),
    ) as Partial<PartialMeta>;
    const size = (await stat(paths.file)).size;
    if (
      meta.url !== url ||
      typeof meta.validator !== "string" ||
      meta.validator === "" ||
      typeof meta.size !== "number" ||
      typeof meta.have !== "number" ||
      !Number.isSafeInteger(meta.have) ||
      meta.have <= 0 ||
      meta.have >= meta.size ||
      size < meta.have
    ) {
      await dropPartial(paths);
      return undefined;
    }
    return { ...paths, url, validator: meta.validator, size: meta.size, have: meta.have };
  } catch {
    return undefined;
  }
}

/**
 * Moves the kept bytes to `temp` (the download's own temp file in the store) cut to what the
 * description vouches for, and feeds them to `hash`, streaming.
 */
export async function adoptPartial(
  partial: PartialDownload,
  temp: string,
  hash: { update(data: Buffer): unknown },
): Promise<void> {
  try {
    renameSync(partial.file, temp);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EXDEV") throw e;
    // The cache and the store on different file systems: copy, hashing as it passes below.
    const from = await open(partial.file, constants.O_RDONLY | constants.O_NOFOLLOW);
    const to = await open(temp, "wx", 0o600);
    try {
      const chunk = Buffer.allocUnsafe(1 << 20);
      for (let at = 0; at < partial.have;) {
        const { bytesRead } = await from.read(
          chunk,
          0,
          Math.min(chunk.length, partial.have - at),
          at,
        );
        if (bytesRead === 0) break;
        await to.write(chunk, 0, bytesRead, at);
        at += bytesRead;
      }
    } finally {
      await from.close();
      await to.close();
    }
    await rm(partial.file, { force: true });
  }
  await rm(partial.meta, { force: true });
  const file = await open(temp, "r+");
  try {
    await file.truncate(partial.have);
    const chunk = Buffer.allocUnsafe(1 << 20);
    for (let at = 0; at < partial.have;) {
      const { bytesRead } = await file.read(
        chunk,
        0,
        Math.min(chunk.length, partial.have - at),
        at,
      );
      if (bytesRead === 0) throw new Error(`the kept download ended at ${at} bytes`);
      hash.update(chunk.subarray(0, bytesRead));
      at += bytesRead;
    }
    if (fstatSync(file.fd).size !== partial.have) throw new Error("the kept download changed");
  } finally {
    await file.close();
  }
}
