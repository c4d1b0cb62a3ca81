// Decoders for one erofs compressed pcluster (erofs algorithm numbers 0 lz4, 1 microlzma,
// 2 raw deflate, 3 zstd) into exactly the first `want` bytes of what it holds. `want` can be
// less than the whole output: `-E dedupe` makes extents that reference part of a pcluster.
import { createInflateRaw, constants as zlibConstants } from "node:zlib";
import type { Transform } from "node:stream";
import { ExtctlError } from "../../../util/errors.js";
import { lz4DecompressChunks } from "../decompress/lz4.js";
import { microLzmaDecompress } from "../decompress/lzma.js";

export const EROFS_ALGORITHMS = ["lz4", "lzma", "deflate", "zstd"] as const;

/** Names of the algorithms set in a superblock's available_compr_algs bit mask. */
export function algorithmNames(mask: number): string[] {
  return EROFS_ALGORITHMS.filter((_, i) => mask & (1 << i));
}

/**
 * The most one non-lz4 extent may inflate to. erofs-utils caps a decoded pcluster at 12 MiB
 * (Z_EROFS_PCLUSTER_MAX_DSIZE); this leaves room and keeps a crafted extent from growing memory.
 */
const MAX_DECODED_EXTENT = 16 * 1024 * 1024;

function corrupt(alg: string, why: string): ExtctlError {
  return new ExtctlError("format", `an erofs ${alg} pcluster in the image is corrupt: ${why}`, {
    hint: "the image is damaged; download or build it again",
  });
}

/**
 * Feeds `input` to a decompressing stream and yields its output until `want` bytes came out,
 * then stops it: the decoder never produces more than a chunk past what is wanted.
 */
async function* firstBytesOf(
  alg: string,
  stream: Transform,
  input: Buffer,
  want: number,
): AsyncGenerator<Buffer> {
  let got = 0;
  stream.end(input);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const take = Math.min(chunk.length, want - got);
      if (take > 0) yield take === chunk.length ? chunk : chunk.subarray(0, take);
      got += take;
      if (got >= want) break;
    }
  } catch (e) {
    throw corrupt(alg, (e as Error).message);
  } finally {
    stream.destroy();
  }
  if (got < want) throw corrupt(alg, `it holds ${got} bytes, not ${want}`);
}

/** MicroLZMA (what erofs stores): raw LZMA with the properties byte in front, no size. */
function* microLzma(raw: Buffer, want: number): Generator<Buffer> {
  yield microLzmaDecompress(raw, want);
}

async function* zstdFrame(raw: Buffer, want: number): AsyncGenerator<Buffer> {
  // Loaded when first needed, as for squashfs (decompress/index.ts).
  const { zstdDecompressPrefix, zstdReady } = await import("../decompress/zstd.js");
  await zstdReady();
  yield zstdDecompressPrefix(raw, want, MAX_DECODED_EXTENT);
}

/** Yields the first `want` decoded bytes of pcluster `raw` (zero padding already removed). */
export function decodePcluster(
  algorithm: number,
  raw: Buffer,
  want: number,
): AsyncIterable<Buffer> | Iterable<Buffer> {
  if (algorithm === 0) return lz4DecompressChunks(raw, want);
  const name = EROFS_ALGORITHMS[algorithm];
  if (name === undefined)
    throw new ExtctlError(
      "unsupported",
      `the erofs image uses compression algorithm ${algorithm}, which extctl cannot read (it reads ${EROFS_ALGORITHMS.join(", ")})`,
    );
  if (want > MAX_DECODED_EXTENT)
    throw new ExtctlError(
      "unsupported",
      `an erofs ${name} extent inflates to ${want} bytes, more than the ${MAX_DECODED_EXTENT} extctl reads in one piece`,
    );
  switch (name) {
    case "lzma":
      return microLzma(raw, want);
    case "deflate":
      // erofs' fixed-output deflate streams may stop without a final block: sync-flush them.
      return firstBytesOf(
        "deflate",
        createInflateRaw({ finishFlush: zlibConstants.Z_SYNC_FLUSH }),
        raw,
        want,
      );
    default:
      return zstdFrame(raw, want);
  }
}
