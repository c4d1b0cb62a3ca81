// The store's cache of what `list` shows per image, so an unchanged store lists without opening
// its images: one hidden file beside them, keyed per image by its stat and as a whole by the host.
// Believed only when root owns it and its directory and no one else can write either: a cache
// someone else wrote could make `list` show an unsigned image as signed.
import { constants } from "node:fs";
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { errnoCode } from "../../util/errors.js";
import { tempPathBeside } from "../../util/atomic.js";
import { FILE_MODE, dirDistrust, distrustOf } from "../../util/owned-state.js";

/** The cache's file name in the store dir (hidden, not *.raw: no tool takes it for an image). */
export const SUMMARY_CACHE_FILE = ".extctl-cache.json";

/** Bump when the file's shape or what a summary means changes: an older file is then rebuilt. */
export const SUMMARY_CACHE_FORMAT = 2;

/** Far above 10,000 images (about 250 bytes each), far below what hurts to parse. */
const CACHE_CAP = 32 * 1024 * 1024;

/**
 * What makes a file the same file: device, inode, size, and mtime and ctime (ctime changes on
 * any write or chmod, and cannot be set back by a user). Milliseconds (with their fraction) are
 * enough: list caches only files whose times are seconds old, so a later change moves ctime
 * seconds away from the cached one. Numbers, not bigints: 1,000 BigIntStats with their Dates
 * cost a few ms of every list.
 */
export interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}

/** The facts cached per image: the columns of `list`, nothing used for a decision. */
export interface CachedSummary {
  version?: string;
  format: string;
  /** Signed by a partition of the image itself (a sidecar is looked up on every use). */
  signaturePartition: boolean;
  /** A .roothash.p7s beside the image makes it signed (not for DDIs or unreadable images). */
  sidecarCounts: boolean;
  compatible: boolean;
  reason?: string;
}

/** One image's entry: the identity key of the file it was read from, and what was read. */
interface CacheEntry {
  key: string;
  summary: CachedSummary;
}

interface CacheFile {
  format: number;
  host: string;
  entries: Record<string, CacheEntry>;
}

function identityKey(id: FileIdentity): string {
  return `${id.dev}:${id.ino}:${id.size}:${id.mtimeMs}:${id.ctimeMs}`;
}

function isCachedSummary(value: unknown): value is CachedSummary {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.format === "string" &&
    typeof v.signaturePartition === "boolean" &&
    typeof v.sidecarCounts === "boolean" &&
    typeof v.compatible === "boolean" &&
    (v.version === undefined || typeof v.version === "string") &&
    (v.reason === undefined || typeof v.reason === "string")
  );
}

/** Why a cache file was not used (for the debug log and the tests). */
export type CacheMiss =
  "absent" | "symlink" | "not-a-file" | "too-large" | "corrupt" | "stale" | "untrusted";

export class SummaryCache {
  private readonly entries: Map<string, CacheEntry>;
  private dirty: boolean;
  /** The store dir could be written by others: saving there is pointless. */
  private badDir = false;

  private constructor(
    private readonly file: string,
    private readonly host: string,
    loaded: Map<string, CacheEntry> | undefined,
    /** Why the file on disk was not used, if it was not. */
    readonly miss: CacheMiss | undefined,
    /** For an `untrusted` miss: who could have written it, in a sentence. */
    readonly distrust?: string,
  ) {
    this.entries = loaded ?? new Map<string, CacheEntry>();
    this.dirty = loaded === undefined;
  }

  /**
   * Reads the cache in `storeDir` (a host path already resolved inside the root) for `host`,
   * a string naming everything outside the image a summary depends on (systemd version,
   * os-release, scope). Never throws: a missing, corrupt, oversized, foreign or symlinked file
   * gives an empty cache that is written anew on save; one owned by another user or writable by
   * others (or in a directory that is) is `untrusted`: replaced on save by one of ours, unless
   * it is the directory others can write (then nothing extctl wrote there would be believed).
   */
  static async load(storeDir: string, host: string): Promise<SummaryCache> {
    const file = path.join(storeDir, SUMMARY_CACHE_FILE);
    const { data, miss, distrust, badDir } = await readCacheFile(file);
    if (miss === "untrusted") {
      const cache = new SummaryCache(file, host, undefined, miss, distrust);
      cache.badDir = badDir === true;
      return cache;
    }
    let parsed: Map<string, CacheEntry> | undefined;
    let why = miss;
    if (data !== undefined) {
      try {
        const value = JSON.parse(data.toString("utf8")) as Partial<CacheFile>;
        if (
          typeof value !== "object" ||
          value === null ||
          typeof value.entries !== "object" ||
          value.entries === null
        )
          why = "corrupt";
        else if (value.format !== SUMMARY_CACHE_FORMAT || value.host !== host) why = "stale";
        else {
          parsed = new Map();
          for (const name in value.entries) {
            const e = value.entries[name] as { key?: unknown; summary?: unknown } | undefined;
            if (typeof e?.key === "string" && isCachedSummary(e.summary))
              parsed.set(name, { key: e.key, summary: e.summary });
          }
        }
      } catch {
        why = "corrupt";
      }
    }
    return new SummaryCache(file, host, parsed, why);
  }

  /** The cached summary of image `name` if the file is still the one it was made from. */
  lookup(name: string, id: FileIdentity): CachedSummary | undefined {
    const entry = this.entries.get(name);
    if (entry === undefined || entry.key !== identityKey(id)) return undefined;
    return entry.summary;
  }

  put(name: string, id: FileIdentity, summary: CachedSummary): void {
    this.entries.set(name, { key: identityKey(id), summary });
    this.dirty = true;
  }

  /**
   * Writes the cache when it changed (entries of images not in `present`, the store's images
   * now, are dropped), as a
   * temp file renamed over the old one: a reader sees the old file or the new one, and the
   * rename replaces a symlink planted there instead of writing through it. No fsync: a file
   * torn by a crash is corrupt JSON, and rebuilt. Returns whether it wrote; failing to write
   * (a read-only store, no permission) is not an error, the next list reads the images again.
   */
  async save(present: ReadonlySet<string>): Promise<boolean> {
    for (const name of this.entries.keys()) {
      if (!present.has(name)) {
        this.entries.delete(name);
        this.dirty = true;
      }
    }
    if (!this.dirty || this.badDir) return false;
    const content: CacheFile = {
      format: SUMMARY_CACHE_FORMAT,
      host: this.host,
      entries: Object.fromEntries(this.entries),
    };
    const temp = tempPathBeside(this.file, "cache");
    try {
      const handle = await open(temp, "wx", FILE_MODE);
      try {
        await handle.chmod(FILE_MODE);
        await handle.writeFile(JSON.stringify(content));
      } finally {
        await handle.close();
      }
      await rename(temp, this.file);
    } catch {
      await rm(temp, { force: true }).catch(() => {});
      return false;
    }
    this.dirty = false;
    return true;
  }
}

/**
 * Opens without following a symlink, reads only a regular file, at most CACHE_CAP bytes, and only
 * one that root owns and no one else can write, in a directory no one else can write.
 */
async function readCacheFile(
  file: string,
): Promise<{ data?: Buffer; miss?: CacheMiss; distrust?: string; badDir?: boolean }> {
  let handle: FileHandle;
  try {
    handle = await open(
      file,
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY,
    );
  } catch (e) {
    const code = errnoCode(e);
    if (code === "ELOOP") return { miss: "symlink" };
    if (code === "ENOENT" || code === "ENOTDIR") return { miss: "absent" };
    return { miss: "not-a-file" };
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) return { miss: "not-a-file" };
    if (st.size > CACHE_CAP) return { miss: "too-large" };
    const dirWhy = await dirDistrust(path.dirname(file));
    if (dirWhy !== undefined)
      return {
        miss: "untrusted",
        distrust: `${file} lies in ${path.dirname(file)}: ${dirWhy}`,
        badDir: true,
      };
    const why = distrustOf(st);
    if (why !== undefined) return { miss: "untrusted", distrust: `${file}: ${why}` };
    const data = Buffer.alloc(st.size);
    let filled = 0;
    while (filled < data.length) {
      const { bytesRead } = await handle.read(data, filled, data.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return { data: data.subarray(0, filled) };
  } catch {
    return { miss: "corrupt" };
  } finally {
    await handle.close();
  }
}
