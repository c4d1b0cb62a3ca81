// One entry point for the block compressors filesystems use: gzip/zlib and zstd from libraries,
// LZ4 and LZO by hand, xz/lzma from @napi-rs/lzma. Every call is bounded by the block's size.
import { inflateSync } from "node:zlib";
import { ExtctlError } from "../../../util/errors.js";
import { lz4DecompressBlock } from "./lz4.js";
import { lzoDecompressBlock } from "./lzo.js";
import type * as LzmaTypes from "@napi-rs/lzma";
import type * as ZstdTypes from "zstd-napi";

export type Compression = "gzip" | "lzma" | "lzo" | "xz" | "lz4" | "zstd";

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

/** The frame content size of a zstd frame header, or undefined when the frame omits it. */
function zstdDeclaredSize(input: Buffer): number | undefined {
  if (input.length < 6 || input.readUInt32LE(0) !== 0xfd2fb528)
    throw corrupt("zstd", "the frame magic is missing");
  const fhd = input[4] as number;
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const dictBytes = [0, 1, 2, 4][fhd & 3] as number;
  const at = 5 + (singleSegment ? 0 : 1) + dictBytes;
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag] as number;
  if (fcsBytes === 0) return undefined;
  if (at + fcsBytes > input.length) throw corrupt("zstd", "the frame header is cut off");
  if (fcsBytes === 1) return input[at] as number;
  if (fcsBytes === 2) return input.readUInt16LE(at) + 256;
  if (fcsBytes === 4) return input.readUInt32LE(at);
  const big = input.readBigUInt64LE(at);
  return big > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(big);
}

type LzmaModule = typeof LzmaTypes;
let lzmaModule: Promise<LzmaModule> | undefined;
function loadLzma(): Promise<LzmaModule> {
  lzmaModule ??= import("@napi-rs/lzma");
  return lzmaModule;
}

type ZstdModule = typeof ZstdTypes;
let zstdModule: Promise<ZstdModule> | undefined;
function loadZstd(): Promise<ZstdModule> {
  zstdModule ??= import("zstd-napi");
  return zstdModule;
}

function checkSize(kind: string, out: Buffer, maxOutput: number): Buffer {
  if (out.length > maxOutput) throw tooBig(kind, maxOutput);
  return out;
}

// Node frees the native state of a finished inflateSync only on a later turn of the event loop;
// a long walk whose reads are all synchronous (cached metadata, read-ahead) would otherwise pile
// up thousands of them (found by the fuzz suite: ~15 KiB each). Yielding now and then lets them go.
const INFLATES_PER_YIELD = 128;
let inflatesSinceYield = 0;

const DECOMPRESSORS: Record<Compression, BlockDecompressor> = {
  async gzip(input, maxOutput) {
    if (++inflatesSinceYield >= INFLATES_PER_YIELD) {
      inflatesSinceYield = 0;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    try {
      // maxOutputLength makes zlib stop instead of growing without bound.
      return inflateSync(input, { maxOutputLength: Math.max(1, maxOutput) });
    } catch (e) {
      if (e instanceof RangeError || (e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE")
        throw tooBig("gzip", maxOutput);
      throw corrupt("gzip", (e as Error).message);
    }
  },
  async lz4(input, maxOutput) {
    return lz4DecompressBlock(input, maxOutput);
  },
  async lzo(input, maxOutput) {
    return lzoDecompressBlock(input, maxOutput);
  },
  async zstd(input, maxOutput) {
    const declared = zstdDeclaredSize(input);
    if (declared === undefined)
      throw corrupt("zstd", "the frame does not declare its size, so it cannot be bounded");
    if (declared > maxOutput) throw tooBig("zstd", maxOutput);
    const zstd = await loadZstd();
    let out: Buffer;
    try {
      out = zstd.decompress(input);
    } catch (e) {
      throw corrupt("zstd", (e as Error).message);
    }
    return checkSize("zstd", out, maxOutput);
  },
  async xz(input, maxOutput) {
    if (xzDeclaredSize(input) > maxOutput) throw tooBig("xz", maxOutput);
    const { xz } = await loadLzma();
    let out: Buffer;
    try {
      out = await xz.decompress(input);
    } catch (e) {
      throw corrupt("xz", (e as Error).message);
    }
    return checkSize("xz", out, maxOutput);
  },
  async lzma(input, maxOutput) {
    // The .lzma ("alone") header: 5 property bytes, then the uncompressed size (u64 LE).
    if (input.length < 13) throw corrupt("lzma", "the header is cut off");
    const declared = input.readBigUInt64LE(5);
    if (declared > BigInt(maxOutput)) throw tooBig("lzma", maxOutput);
    const { lzma } = await loadLzma();
    let out: Buffer;
    try {
      out = await lzma.decompress(input);
    } catch (e) {
      throw corrupt("lzma", (e as Error).message);
    }
    return checkSize("lzma", out, maxOutput);
  },
};

export function decompressorFor(compression: Compression): BlockDecompressor {
  return DECOMPRESSORS[compression];
}
