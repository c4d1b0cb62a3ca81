// How much an image may grow to on its way into the store (issue 12): a 3 MB gzip layer must not
// fill the disk with 3 GiB. The limit is the largest image the store could take: the free space
// of the store's filesystem, and never more than a hard cap (--max-size, default 64 GiB).
import { statfs } from "node:fs/promises";
import { ExtctlError } from "../../util/errors.js";

export const DEFAULT_MAX_IMAGE_BYTES = 64 * 2 ** 30;

/** The most bytes an install may write into `storeDir`. */
export async function expansionLimit(storeDir: string, hardCap?: number): Promise<number> {
  const cap = hardCap ?? DEFAULT_MAX_IMAGE_BYTES;
  try {
    const fs = await statfs(storeDir);
    return Math.min(cap, Number(fs.bavail) * Number(fs.bsize));
  } catch {
    return cap;
  }
}

export function expansionError(what: string, limit: number): ExtctlError {
  return new ExtctlError(
    "format",
    `${what} expands to more than ${limit} bytes, the most the store can take; refusing it`,
    {
      hint: "a layer this large is a decompression bomb or needs more room (see --max-size)",
    },
  );
}

/** A download or copy that passed its limit (what expansionLimit or --max-size allows). */
export function sizeLimitError(what: string, limit: number): ExtctlError {
  return new ExtctlError(
    "format",
    `${what} is more than ${limit} bytes, the most the store can take; refusing it, nothing was stored`,
    { hint: "free space in the store or raise --max-size" },
  );
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
