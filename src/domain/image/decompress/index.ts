// One entry point for the block compressors filesystems use: gzip/zlib and zstd from Node (zstd
// from fzstd on an older Node), LZ4, LZO, LZMA and xz by hand. Every call is bounded by the block's size.
import { constants as zlibConstants, inflateSync, type ZlibOptions } from "node:zlib";
import { ExtctlError } from "../../../util/errors.js";
import { lz4DecompressBlock } from "./lz4.js";
import { lzoDecompressBlock } from "./lzo.js";
import { lzmaAloneDecompress } from "./lzma.js";
import type * as XzModule from "./xz.js";
import type * as ZstdModule from "./zstd.js";

// The zstd module is loaded on the first zstd block only: commands that read no image must not pay for it.
let zstdModule: Promise<typeof ZstdModule> | undefined;
// xz likewise, on the first xz block: it brings node:crypto (for SHA-256 checks).
let xzModule: Promise<typeof XzModule> | undefined;

export type BlockCompression = "gzip" | "lzma" | "lzo" | "xz" | "lz4" | "zstd";

/** Decompresses one block into at most `maxOutput` bytes, or fails with a format error. */
export type BlockDecompressor = (input: Buffer, maxOutput: number) => Promise<Buffer>;

function corrupt(kind: string, why: string): ExtctlError {
  return new ExtctlError("format", `a ${kind} block in the image is corrupt: ${why}`, {
    hint: "the image is damaged; download or build it again",
  });
}

function tooBig(kind: string, maxOutput: number): ExtctlError {
  return corrupt(kind, `it inflates past its size of ${maxOutput} bytes`);
}

function readVarint(buf: Buffer, pos: { at: number }): number {
  let value = 0;
  for (let i = 0; i < 9; i++) {
    if (pos.at >= buf.length) throw corrupt("xz", "the index is cut off");
    const b = buf[pos.at++] as number;
    value += (b & 0x7f) * 2 ** (7 * i);
    if ((b & 0x80) === 0) return value;
  }
  throw corrupt("xz", "a number in the index is too long");
}

/** Total uncompressed size recorded in an xz stream's index, so a bomb is refused up front. */
function xzDeclaredSize(input: Buffer): number {
  if (input.length < 24 || input.toString("latin1", input.length - 2) !== "YZ")
    throw corrupt("xz", "the stream footer is missing");
  const backward = (input.readUInt32LE(input.length - 8) + 1) * 4;
  const indexStart = input.length - 12 - backward;
  if (indexStart < 12 || input[indexStart] !== 0) throw corrupt("xz", "the index is missing");
  const pos = { at: indexStart + 1 };
  const records = readVarint(input, pos);
  if (records > 4096) throw corrupt("xz", "the index lists too many blocks");
  let total = 0;
  for (let i = 0; i < records; i++) {
    readVarint(input, pos);
    total += readVarint(input, pos);
  }
  return total;
}

function checkSize(kind: string, out: Buffer, maxOutput: number): Buffer {
  if (out.length > maxOutput) throw tooBig(kind, maxOutput);
  return out;
}

/** The largest output buffer handed to zlib at once (squashfs blocks are at most 1 MiB). */
const MAX_CHUNK = 1024 * 1024;

// Node frees the native state of a finished inflateSync only on a later turn of the event loop;
// a long walk whose reads are all synchronous (cached metadata, read-ahead) would otherwise pile
// up thousands of them (found by the fuzz suite: ~15 KiB each). Yielding now and then lets them go.
const INFLATES_PER_YIELD = 128;
let inflatesSinceYield = 0;

const DECOMPRESSORS: Record<BlockCompression, BlockDecompressor> = {
  async gzip(input, maxOutput) {
    if (++inflatesSinceYield >= INFLATES_PER_YIELD) {
      inflatesSinceYield = 0;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    try {
      return inflateSync(input, gzipOptions(maxOutput));
    } catch (e) {
      throw gzipError(e, maxOutput);
    }
  },
  async lz4(input, maxOutput) {
    return lz4DecompressBlock(input, maxOutput);
  },
  async lzo(input, maxOutput) {
    return lzoDecompressBlock(input, maxOutput);
  },
  async zstd(input, maxOutput) {
    zstdModule ??= import("./zstd.js").then(async (m) => (await m.zstdReady(), m));
    return (await zstdModule).zstdDecompressBlock(input, maxOutput);
  },
  async xz(input, maxOutput) {
    const declared = xzDeclaredSize(input);
    if (declared > maxOutput) throw tooBig("xz", maxOutput);
    xzModule ??= import("./xz.js");
    return checkSize("xz", (await xzModule).xzDecompress(input, declared), maxOutput);
  },
  async lzma(input, maxOutput) {
    return checkSize("lzma", lzmaAloneDecompress(input, maxOutput), maxOutput);
  },
};

/**
 * maxOutputLength makes zlib stop instead of growing without bound; an output buffer the size of
 * the block saves zlib's 16 KiB pieces and the copy that joins them.
 */
function gzipOptions(maxOutput: number): ZlibOptions {
  return {
    maxOutputLength: Math.max(1, maxOutput),
    chunkSize: Math.max(zlibConstants.Z_MIN_CHUNK, Math.min(maxOutput, MAX_CHUNK)),
  };
}

function gzipError(e: unknown, maxOutput: number): ExtctlError {
  if (e instanceof RangeError || (e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE")
    return tooBig("gzip", maxOutput);
  return corrupt("gzip", (e as Error).message);
}

export function decompressorFor(compression: BlockCompression): BlockDecompressor {
  return DECOMPRESSORS[compression];
}
