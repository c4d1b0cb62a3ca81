// extctl's own LZMA, LZMA2/xz and (node:zlib's or fzstd's) zstd decoders against what the real xz and zstd
// programs write: every preset and check type decodes to the original bytes, MicroLZMA as erofs
// stores it, and damaged or oversized input fails with a format error, never more memory.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as zlib from "node:zlib";
import { decompressorFor } from "../../../../src/domain/image/decompress/index.js";
import {
  lzmaAloneDecompress,
  microLzmaDecompress,
} from "../../../../src/domain/image/decompress/lzma.js";
import { xzDecompress } from "../../../../src/domain/image/decompress/xz.js";
import {
  createZstdDecompressStream,
  zstdDecompressBlock,
  zstdDecompressPrefix,
  zstdReady,
} from "../../../../src/domain/image/decompress/zstd.js";
import { ExtctlError } from "../../../../src/util/errors.js";
import { hasCommand } from "../../../helpers/peers.js";

/** Why a zstd case is skipped for decoder `kind`, or false. */
function skipFor(kind: "native" | "fzstd"): string | false {
  if (!haveZstd) return "no zstd";
  if (kind === "native" && !nativeZstd)
    return `Node.js ${process.version} has no zstd in node:zlib`;
  return false;
}

/** Compressible data with some structure: text-like runs, repeats at many distances, noise. */
function sample(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let x = seed;
  const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 16) & 0x7fff;
  for (let i = 0; i < size;) {
    const kind = rnd() % 4;
    if (kind === 0 && i > 64) {
      const back = 1 + (rnd() % Math.min(i, 60000));
      const len = Math.min(size - i, 3 + (rnd() % 300));
      for (let k = 0; k < len; k++, i++) out[i] = out[i - back] as number;
    } else if (kind === 1) {
      const len = Math.min(size - i, rnd() % 40);
      for (let k = 0; k < len; k++, i++) out[i] = rnd() & 0xff;
    } else {
      const word = "extension image squashfs erofs verity ";
      const len = Math.min(size - i, 1 + (rnd() % 30));
      for (let k = 0; k < len; k++, i++) out[i] = word.charCodeAt((i + k) % word.length);
    }
  }
  return out;
}

function tool(cmd: string, args: string[], input: Buffer): Buffer {
  return execFileSync(cmd, args, { input, maxBuffer: 64 << 20 });
}

/** zstd from a pipe, with the content size in the frame header as zstd writes it for a file. */
function zstd(input: Buffer, ...args: string[]): Buffer {
  return tool("zstd", ["-q", "-c", `--stream-size=${input.length}`, ...args], input);
}

const haveXz = hasCommand("xz");
const haveZstd = hasCommand("zstd");
const nativeZstd =
  typeof (zlib as { zstdDecompressSync?: unknown }).zstdDecompressSync === "function";

test(
  "xz streams from the real xz decode exactly: presets, check types, lc/lp/pb, empty and incompressible",
  { skip: !haveXz && "no xz" },
  () => {
    const data = sample(700_000);
    const cases: [string[], Buffer][] = [
      [["-0"], data],
      [["-6", "--check=crc32"], data],
      [["-9e", "--check=crc64"], data],
      [["-1", "--check=sha256"], data],
      [["--check=none"], data],
      [["--lzma2=preset=6,lc=0,lp=2,pb=0"], data],
      [["--lzma2=preset=6,lc=4,lp=0,pb=4"], data],
      [["--block-size=100000"], data],
      [[], Buffer.alloc(0)],
      [[], randomBytes(300_000)],
    ];
    for (const [flags, input] of cases) {
      const packed = tool("xz", ["-c", ...flags], input);
      assert.ok(xzDecompress(packed, input.length).equals(input), flags.join(" "));
    }
  },
);

test(
  ".lzma (squashfs' lzma) and MicroLZMA (erofs' lzma) decode exactly; MicroLZMA stops at any length",
  { skip: !haveXz && "no xz" },
  () => {
    const data = sample(400_000, 7);
    const alone = tool("xz", ["-c", "--format=lzma"], data);
    assert.ok(lzmaAloneDecompress(alone, 1 << 20).equals(data), "size unknown: end marker");
    // The header as squashfs writes it: the real size instead of "unknown".
    const sized = Buffer.from(alone);
    sized.writeBigUInt64LE(BigInt(data.length), 5);
    assert.ok(lzmaAloneDecompress(sized, data.length).equals(data));
    assert.throws(() => lzmaAloneDecompress(sized, data.length - 1), /inflates past/);

    // A raw LZMA1 stream starts with the range coder's 0 byte; MicroLZMA keeps ~props there.
    const raw = tool("xz", ["-c", "--format=raw", "--lzma1=preset=6,lc=3,lp=0,pb=2"], data);
    assert.equal(raw[0], 0);
    const micro = Buffer.from(raw);
    micro[0] = ~((2 * 5 + 0) * 9 + 3) & 0xff;
    assert.ok(microLzmaDecompress(micro, data.length).equals(data));
    for (const want of [1, 4095, 123_457])
      assert.ok(microLzmaDecompress(micro, want).equals(data.subarray(0, want)), `want ${want}`);
  },
);

// Every zstd case with both decoders: node:zlib's (where the runtime has it) and fzstd, the
// fallback on an older Node.
for (const kind of ["native", "fzstd"] as const) {
  test(
    `zstd frames from the real zstd decode exactly, as blocks, prefixes and streams (${kind})`,
    { skip: skipFor(kind) },
    async () => {
      await zstdReady(kind);
      const data = sample(900_000, 3);
      for (const level of ["-1", "-19", "--ultra", "-3"]) {
        const packed = zstd(data, ...(level === "--ultra" ? ["-20", "--ultra"] : [level]));
        assert.ok(zstdDecompressBlock(packed, data.length).equals(data), level);
        assert.ok(zstdDecompressPrefix(packed, 1000, 1 << 24).equals(data.subarray(0, 1000)));
      }
      // A frame that declares one byte more or less than it holds: refused by libzstd, whatever
      // the output buffer it was given for the declared size. (fzstd does not compare a frame's
      // size with what it holds: a known gap of the fallback.)
      if (kind === "native") {
        const packed = zstd(data, "-3");
        const fhd = packed[4] as number;
        assert.equal(fhd >> 6, 2, "a 4-byte content size");
        const fcsAt = 5 + ((fhd >> 5) & 1 ? 0 : 1) + ([0, 1, 2, 4][fhd & 3] as number);
        assert.equal(packed.readUInt32LE(fcsAt), data.length);
        for (const delta of [-1, 1]) {
          const lying = Buffer.from(packed);
          lying.writeUInt32LE(data.length + delta, fcsAt);
          assert.throws(
            () => zstdDecompressBlock(lying, data.length + 1),
            (e) => e instanceof ExtctlError && /corrupt/.test(e.message),
            `declares ${delta} byte`,
          );
        }
      }
      // A frame without its size (erofs does not always write it): decoded until enough came out.
      const unsized = tool("zstd", ["-q", "-c", "--no-content-size"], data);
      for (const want of [1, 131_073, data.length])
        assert.ok(zstdDecompressPrefix(unsized, want, 1 << 24).equals(data.subarray(0, want)));
      assert.throws(() => zstdDecompressPrefix(unsized, data.length + 1, 1 << 24), /holds/);
      // A stream of two frames with a skippable frame between, fed in awkward chunk sizes.
      const skippable = Buffer.alloc(8 + 5);
      skippable.writeUInt32LE(0x184d2a53, 0);
      skippable.writeUInt32LE(5, 4);
      const two = Buffer.concat([
        tool("zstd", ["-q", "-c", "--no-content-size"], data),
        skippable,
        zstd(data, "--check"),
      ]);
      const source = new PassThrough();
      const decoder = createZstdDecompressStream();
      const chunks: Buffer[] = [];
      decoder.on("data", (c: Buffer) => chunks.push(c));
      const done = pipeline(source, decoder);
      for (let at = 0; at < two.length; at += 7777) source.write(two.subarray(at, at + 7777));
      source.end();
      await done;
      assert.ok(Buffer.concat(chunks).equals(Buffer.concat([data, data])));
      assert.equal(decoder.frames, 2);
    },
  );

  /** A pipeline's last stage that reads everything and keeps nothing. */
  async function drain(source: AsyncIterable<Buffer>): Promise<void> {
    for await (const chunk of source) void chunk;
  }

  test(
    `zstd: a block's size is bounded before decoding, and a huge window is refused up front (${kind})`,
    { skip: skipFor(kind) },
    async () => {
      await zstdReady(kind);
      const zeros = Buffer.alloc(2 << 20);
      const packed = zstd(zeros);
      assert.throws(() => zstdDecompressBlock(packed, 131072), /inflates past/);
      assert.throws(
        () => zstdDecompressBlock(Buffer.concat([packed, packed]), 4 << 20),
        /more than one frame/,
      );
      await assert.rejects(
        decompressorFor("zstd")(tool("zstd", ["-q", "-c", "--no-content-size"], zeros), 4 << 20),
        /does not declare its size/,
      );
      // A frame header asking for a 2 GiB window (window descriptor exponent 21).
      const header = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 21 << 3, 0x01, 0x00, 0x00]);
      const stream = createZstdDecompressStream("a zstd layer");
      await assert.rejects(
        pipeline(
          async function* () {
            yield header;
          },
          stream,
          drain,
        ),
        (e: Error) => /a zstd layer asks for a \d+-byte window/.test(e.message),
      );
      // A stream cut inside a frame is an error, not a silent short layer.
      await assert.rejects(
        pipeline(
          async function* () {
            yield packed.subarray(0, packed.length - 3);
          },
          createZstdDecompressStream(),
          drain,
        ),
        /corrupt/,
      );
    },
  );

  test(
    `damaged xz, lzma and zstd input fails with a format error, never anything else (zstd: ${kind})`,
    { skip: ((!haveXz || !haveZstd) && "no xz or zstd") || skipFor(kind) },
    async () => {
      await zstdReady(kind);
      const data = sample(60_000, 9);
      const inputs: [string, Buffer, (b: Buffer) => unknown][] = [
        [
          "xz",
          tool("xz", ["-c", "--check=crc32"], data),
          (b) => decompressorFor("xz")(b, data.length),
        ],
        [
          "lzma",
          tool("xz", ["-c", "--format=lzma"], data),
          (b) => decompressorFor("lzma")(b, 1 << 17),
        ],
        ["zstd", zstd(data), (b) => decompressorFor("zstd")(b, data.length)],
        [
          "microlzma",
          (() => {
            const r = tool("xz", ["-c", "--format=raw", "--lzma1=preset=6"], data);
            r[0] = ~93 & 0xff;
            return r;
          })(),
          (b) => microLzmaDecompress(b, data.length),
        ],
      ];
      let x = 12345;
      const rnd = (n: number) => ((x = (x * 1103515245 + 12345) >>> 0) >>> 8) % n;
      for (const [kind, good, decode] of inputs) {
        for (let i = 0; i < 150; i++) {
          const bad = Buffer.from(good);
          if (i % 3 === 0) {
            const at = rnd(bad.length);
            bad[at] = (bad[at] as number) ^ (1 << rnd(8));
          } else if (i % 3 === 1) for (let k = 0; k < 8; k++) bad[rnd(bad.length)] = rnd(256);
          const input = i % 3 === 2 ? bad.subarray(0, rnd(bad.length)) : bad;
          try {
            const out = (await decode(input)) as Buffer;
            // Where no check covers the data (lzma, microlzma, zstd without --check) a flipped bit
            // can decode to other bytes, but never to more of them.
            assert.ok(out.length <= data.length, `${kind}: output within its bound`);
            if (kind === "xz") assert.ok(out.equals(data), "xz's CRC32 catches any change");
          } catch (e) {
            assert.ok(
              e instanceof ExtctlError && (e.code === "format" || e.code === "unsupported"),
              `${kind}: ${(e as Error).stack}`,
            );
          }
        }
      }
    },
  );
}

test("an xz block with a BCJ filter is named as unsupported", { skip: !haveXz && "no xz" }, () => {
  const packed = tool("xz", ["-c", "--x86", "--lzma2=preset=1"], sample(10_000));
  assert.throws(
    () => xzDecompress(packed, 10_000),
    (e: ExtctlError) => e.code === "unsupported" && /BCJ x86/.test(e.message),
  );
});
