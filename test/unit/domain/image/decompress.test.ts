// Block decompressors: correct output, and a clear error (not a crash or a huge allocation) for
// blocks that inflate past their size or are corrupt.
import { test } from "node:test";
import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import { decompressorFor } from "../../../../src/domain/image/decompress/index.js";
import {
  lz4DecompressBlock,
  lz4DecompressChunks,
} from "../../../../src/domain/image/decompress/lz4.js";
import { lzoDecompressBlock } from "../../../../src/domain/image/decompress/lzo.js";
import { ExtctlError } from "../../../../src/util/errors.js";

/** An LZ4 block: 4 literals "abcd", then a match of `matchLength` at offset 4, then 5 literals. */
function lz4Block(matchLength: number): Buffer {
  const parts: number[] = [];
  let ml = matchLength - 4;
  parts.push((4 << 4) | Math.min(ml, 15), ...Buffer.from("abcd"), 4, 0);
  if (ml >= 15) {
    ml -= 15;
    while (ml >= 255) {
      parts.push(255);
      ml -= 255;
    }
    parts.push(ml);
  }
  parts.push(5 << 4, ...Buffer.from("tail!"));
  return Buffer.from(parts);
}

test("LZ4 decodes overlapping matches and literal-only tails", () => {
  const out = lz4DecompressBlock(lz4Block(300), 4 + 300 + 5);
  assert.equal(out.toString(), "abcd".repeat(76).slice(0, 304) + "tail!");
});

test("LZ4 refuses to inflate past the block size and bad offsets", () => {
  assert.throws(
    () => lz4DecompressBlock(lz4Block(10_000), 4096),
    (e) => e instanceof ExtctlError && /inflates past/.test(e.message),
  );
  assert.throws(() => lz4DecompressBlock(Buffer.from([0x10, 0x61, 9, 0]), 100), /before the start/);
  assert.throws(() => lz4DecompressBlock(Buffer.from([0xf0, 0xff, 0xff]), 100), /past the end/);
});

test("LZ4 chunked decoding streams a large output in bounded chunks", () => {
  const size = 4 + 3_000_000 + 5;
  const chunks = [...lz4DecompressChunks(lz4Block(3_000_000), size, 65536)];
  assert.ok(chunks.every((c) => c.length <= 65536));
  const all = Buffer.concat(chunks);
  assert.equal(all.length, size);
  assert.equal(all.subarray(0, 8).toString(), "abcdabcd");
  assert.equal(all.subarray(-5).toString(), "tail!");
});

test("LZO decodes a literal run with the end marker and refuses truncation", () => {
  // First byte 17+5 copies 5 literals; 0x11 0x00 0x00 ends the stream.
  const block = Buffer.from([22, ...Buffer.from("hello"), 0x11, 0, 0]);
  assert.equal(lzoDecompressBlock(block, 100).toString(), "hello");
  assert.throws(() => lzoDecompressBlock(block.subarray(0, 6), 100), /past the end/);
  assert.throws(() => lzoDecompressBlock(block, 3), /inflates past/);
});

test("gzip, zstd and xz blocks are bounded by their size", async () => {
  const zeros = Buffer.alloc(2 * 1024 * 1024);
  const gz = decompressorFor("gzip");
  assert.equal((await gz(deflateSync(Buffer.from("data")), 100)).toString(), "data");
  await assert.rejects(gz(deflateSync(zeros), 131072), /inflates past/);
  await assert.rejects(gz(Buffer.from("not zlib"), 100), /corrupt/);
  const zstd = await import("zstd-napi");
  await assert.rejects(decompressorFor("zstd")(zstd.compress(zeros), 131072), /inflates past/);
  const { xz } = await import("@napi-rs/lzma");
  const x = decompressorFor("xz");
  assert.equal((await x(await xz.compress(Buffer.from("xz data")), 100)).toString(), "xz data");
  await assert.rejects(x(await xz.compress(zeros), 131072), /inflates past/);
  await assert.rejects(x(Buffer.from("garbage that is not xz at all"), 100), /corrupt/);
});
