// The per-URL cache of https catalogs under /var/cache/extctl: the last body a server sent and its
// validators (ETag, Last-Modified), so the next check is one conditional request and a 304.
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { chmod, mkdir, open, stat } from "node:fs/promises";
import path from "node:path";
import type { Context } from "../../util/context.js";
import { errnoCode, messageOf } from "../../util/errors.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { MAX_CATALOG_BYTES } from "./catalog.js";

/** Under the root: extctl's cache (0755), and the catalogs' part of it (0700, root only). */
export const CACHE_DIR = "/var/cache/extctl";
export const CATALOG_CACHE_DIR = `${CACHE_DIR}/catalogs`;

/** What is kept for one catalog URL: the validators, and the sha256 of the body kept beside. */
export interface CachedCatalog {
  url: string;
  etag?: string;
  lastModified?: string;
  bytes: Buffer;
}

interface CacheMeta {
  url: string;
  etag?: string;
  lastModified?: string;
  sha256: string;
  size: number;
}

const MAX_META_BYTES = 64 * 1024;

/** The file names of `url`'s entry: a hash of the URL, so any URL makes a plain name. */
function entryNames(url: string): { meta: string; body: string } {
  const key = createHash("sha256").update(url).digest("hex").slice(0, 40);
  return { meta: `${key}.json`, body: `${key}.body` };
}

/**
 * Whether on-disk state at this fstat may be trusted: owned by root and writable by nobody else.
 * A copy in another owner's hands could feed a node a catalog of its choosing. (A local rule the
 * project's shared "root-owned state" check can later replace.)
 */
export function trustedState(st: { uid: number; mode: number }): boolean {
  return st.uid === 0 && (st.mode & 0o022) === 0;
}

/** Reads a regular file under the cache, bounded, only when it is trusted; undefined otherwise. */
async function readTrusted(ctx: Context, file: string, cap: number): Promise<Buffer | undefined> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = errnoCode(e);
    if (code !== "ENOENT" && code !== "ENOTDIR") {
      ctx.log.debug(`catalog cache: cannot open ${file}: ${messageOf(e)}`);
    }
    return undefined;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile() || st.size > cap) return undefined;
    if (!trustedState(st)) {
      ctx.log.warn(
        `ignoring the cached catalog file ${file}: not owned by root or writable by others`,
      );
      return undefined;
    }
    const buffer = Buffer.alloc(st.size);
    let read = 0;
    while (read < st.size) {
      const { bytesRead } = await handle.read(buffer, read, st.size - read, read);
      if (bytesRead === 0) break;
      read += bytesRead;
    }
    return buffer.subarray(0, read);
  } finally {
    await handle.close();
  }
}

/** The cache directory's host path, when it exists and is trusted (root's, not others'). */
async function trustedDir(ctx: Context): Promise<string | undefined> {
  const dir = await ctx.root.readPath(CATALOG_CACHE_DIR);
  try {
    const st = await stat(dir);
    if (!st.isDirectory()) return undefined;
    if (!trustedState(st)) {
      ctx.log.warn(`ignoring the catalog cache ${dir}: not owned by root or writable by others`);
      return undefined;
    }
    return dir;
  } catch {
    return undefined;
  }
}

/**
 * The cached copy of `url`, or undefined when there is none, it is not trusted, or the body does
 * not match the sha256 recorded with its validators (a torn or tampered entry is just a miss).
 */
export async function readCachedCatalog(
  ctx: Context,
  url: string,
): Promise<CachedCatalog | undefined> {
  const dir = await trustedDir(ctx);
  if (dir === undefined) return undefined;
  const names = entryNames(url);
  const metaBytes = await readTrusted(ctx, path.join(dir, names.meta), MAX_META_BYTES);
  if (metaBytes === undefined) return undefined;
  let meta: CacheMeta;
  try {
    meta = JSON.parse(metaBytes.toString("utf8")) as CacheMeta;
  } catch {
    return undefined;
  }
  if (meta.url !== url || typeof meta.sha256 !== "string") return undefined;
  const bytes = await readTrusted(ctx, path.join(dir, names.body), MAX_CATALOG_BYTES);
  if (bytes === undefined) return undefined;
  if (
    bytes.length !== meta.size ||
    createHash("sha256").update(bytes).digest("hex") !== meta.sha256
  ) {
    ctx.log.warn(`the cached copy of ${url} does not match its recorded sha256; fetching it whole`);
    return undefined;
  }
  return {
    url,
    bytes,
    ...(typeof meta.etag === "string" ? { etag: meta.etag } : {}),
    ...(typeof meta.lastModified === "string" ? { lastModified: meta.lastModified } : {}),
  };
}

/** Makes a directory (inside the root) with `mode` whatever the umask, and makes it that mode. */
async function directory(ctx: Context, nodePath: string, mode: number): Promise<string> {
  const dir = await ctx.root.writePath(nodePath, { leaf: "follow", what: nodePath });
  await mkdir(dir, { recursive: true, mode });
  await chmod(dir, mode);
  return dir;
}

/**
 * Keeps `entry` for the next check: the body first, then the validators with its sha256, each
 * written atomically with mode 0600 (a crash between the two leaves a mismatch, read as a miss).
 * Only root writes it; a failure to write is a warning, never a failed check.
 */
export async function writeCachedCatalog(ctx: Context, entry: CachedCatalog): Promise<void> {
  if (process.getuid?.() !== 0) return;
  try {
    await directory(ctx, CACHE_DIR, 0o755);
    const dir = await directory(ctx, CATALOG_CACHE_DIR, 0o700);
    const names = entryNames(entry.url);
    const meta: CacheMeta = {
      url: entry.url,
      ...(entry.etag === undefined ? {} : { etag: entry.etag }),
      ...(entry.lastModified === undefined ? {} : { lastModified: entry.lastModified }),
      sha256: createHash("sha256").update(entry.bytes).digest("hex"),
      size: entry.bytes.length,
    };
    await writeFileAtomic(path.join(dir, names.body), entry.bytes, 0o600);
    await writeFileAtomic(path.join(dir, names.meta), JSON.stringify(meta) + "\n", 0o600);
  } catch (e) {
    ctx.log.warn(`cannot keep a copy of the catalog ${entry.url}: ${messageOf(e)}`);
  }
}
