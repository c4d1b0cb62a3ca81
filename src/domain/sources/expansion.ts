// How much an image may grow to on its way into the store (issue 12): a 3 MB gzip layer must not
// fill the disk with 3 GiB. The limit is the largest image the store could take: the free space
// of the store's filesystem, and never more than a hard cap (--max-size, default 64 GiB).
import { statfs } from "node:fs/promises";
import { ExtctlError } from "../../util/errors.js";
import { humanBytes } from "../../util/progress.js";

export const DEFAULT_MAX_IMAGE_BYTES = 64 * 2 ** 30;

/** What an install may write into the store, and which limit that is. */
export interface StoreRoom {
  /** The most bytes: the smaller of the free space and maxSize. */
  limit: number;
  /** Free bytes on the store's file system (undefined when statfs failed). */
  free?: number;
  /** --max-size, or the default cap. */
  maxSize: number;
  /** Whether maxSize came from --max-size. */
  maxSizeGiven: boolean;
}

export async function storeRoom(storeDir: string, maxBytes?: number): Promise<StoreRoom> {
  const maxSize = maxBytes ?? DEFAULT_MAX_IMAGE_BYTES;
  const room = { maxSize, maxSizeGiven: maxBytes !== undefined };
  try {
    const fs = await statfs(storeDir);
    const free = Number(fs.bavail) * Number(fs.bsize);
    return { ...room, free, limit: Math.min(maxSize, free) };
  } catch {
    return { ...room, limit: maxSize };
  }
}

/** The most bytes an install may write into `storeDir`. */
export async function expansionLimit(storeDir: string, hardCap?: number): Promise<number> {
  return (await storeRoom(storeDir, hardCap)).limit;
}

/** The sentence and hint for something past `room`'s limit: the disk, or --max-size. */
function pastLimit(room: StoreRoom | number): { limit: string; hint: string } {
  if (typeof room === "number")
    return {
      limit: `${humanBytes(room)}, the most the store can take`,
      hint: "free space in the store or raise --max-size",
    };
  if (room.free !== undefined && room.free <= room.maxSize)
    return {
      limit: `${humanBytes(room.free)}, the free space of the store's file system`,
      hint: "free space there (`extctl sysext list`, then `remove` what is not needed; old versions are kept per --keep)",
    };
  return room.maxSizeGiven
    ? {
        limit: `${humanBytes(room.maxSize)}, what --max-size allows`,
        hint: "raise --max-size if the image is meant to be this large",
      }
    : {
        limit: `${humanBytes(room.maxSize)}, the default --max-size`,
        hint: "raise --max-size if the image is meant to be this large",
      };
}

export function expansionError(what: string, room: StoreRoom | number): ExtctlError {
  const { limit } = pastLimit(room);
  return new ExtctlError("format", `${what} expands to more than ${limit}; refusing it`, {
    hint: "a layer this large is a decompression bomb, or needs more room (free space, or --max-size)",
  });
}

/** A download or copy that passed (or announced a size past) its limit. */
export function sizeLimitError(what: string, room: StoreRoom | number, size?: number): ExtctlError {
  const { limit, hint } = pastLimit(room);
  const needs = size === undefined ? "is more than" : `needs ${humanBytes(size)}, more than`;
  return new ExtctlError("space", `${what} ${needs} ${limit}; refusing it, nothing was stored`, {
    hint,
  });
}

/** Parses --max-size: bytes, or a number with K, M, G or T (powers of 1024). */
export function parseSize(text: string): number {
  const m = /^(\d+)([KMGT]?)(i?B)?$/i.exec(text.trim());
  if (!m) {
    throw new ExtctlError(
      "usage",
      `--max-size wants a size like 512M or 8G, got ${JSON.stringify(text)}`,
      {
        exitCode: 2,
      },
    );
  }
  const power = " KMGT".indexOf((m[2] ?? "").toUpperCase() || " ");
  return Number(m[1]) * 1024 ** power;
}
