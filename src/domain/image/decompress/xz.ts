// The .xz container around LZMA2, as squashfs' xz compressor writes each block: one stream whose
// blocks use the LZMA2 filter alone, checked by their CRC32, CRC64 or SHA-256.
import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import { ExtctlError } from "../../../util/errors.js";
import { LzmaDecoder, decodeProperties, lzmaCorrupt } from "./lzma.js";

const MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const FILTER_LZMA2 = 0x21;
const FILTER_NAMES: Readonly<Record<number, string>> = {
  0x03: "delta",
  0x04: "BCJ x86",
  0x05: "BCJ PowerPC",
  0x06: "BCJ IA-64",
  0x07: "BCJ ARM",
  0x08: "BCJ ARM-Thumb",
  0x09: "BCJ SPARC",
  0x0a: "BCJ ARM64",
  0x0b: "BCJ RISC-V",
};

const corrupt = (why: string) => lzmaCorrupt("xz", why);

function readVarint(buf: Uint8Array, pos: { at: number }, end: number): number {
  let value = 0;
  for (let i = 0; i < 9; i++) {
    if (pos.at >= end) throw corrupt("a block header is cut off");
    const b = buf[pos.at++] as number;
    value += (b & 0x7f) * 2 ** (7 * i);
    if ((b & 0x80) === 0) return value;
  }
  throw corrupt("a number in a block header is too long");
}

/** Bytes of the check that follows each block, by the stream flags' check type (xz spec 2.1.1.2). */
function checkSize(type: number): number {
  return type === 0 ? 0 : 4 << Math.floor((type - 1) / 3);
}

const CRC64_TABLE = (() => {
  // CRC-64/XZ (ECMA-182, reflected), as two 32-bit halves: JavaScript has no fast 64-bit ints.
  const hi = new Uint32Array(256);
  const lo = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let h = 0;
    let l = n;
    for (let k = 0; k < 8; k++) {
      const carry = l & 1;
      l = ((l >>> 1) | ((h & 1) << 31)) >>> 0;
      h = h >>> 1;
      if (carry) {
        h = (h ^ 0xc96c5795) >>> 0;
        l = (l ^ 0xd7870f42) >>> 0;
      }
    }
    hi[n] = h;
    lo[n] = l;
  }
  return { hi, lo };
})();

function crc64(data: Uint8Array): { hi: number; lo: number } {
  let h = 0xffffffff;
  let l = 0xffffffff;
  const { hi, lo } = CRC64_TABLE;
  for (let i = 0; i < data.length; i++) {
    const idx = (l ^ (data[i] as number)) & 0xff;
    l = (((l >>> 8) | (h << 24)) ^ (lo[idx] as number)) >>> 0;
    h = ((h >>> 8) ^ (hi[idx] as number)) >>> 0;
  }
  return { hi: ~h >>> 0, lo: ~l >>> 0 };
}

function verifyCheck(type: number, data: Uint8Array, stored: Buffer): void {
  let ok: boolean;
  if (type === 0x01) ok = crc32(data) === stored.readUInt32LE(0);
  else if (type === 0x04) {
    const c = crc64(data);
    ok = c.lo === stored.readUInt32LE(0) && c.hi === stored.readUInt32LE(4);
  } else if (type === 0x0a) ok = createHash("sha256").update(data).digest().equals(stored);
  // Check types xz itself does not define are skipped, as xz does with a warning.
  else ok = true;
  if (!ok) throw corrupt("its check does not match the data");
}

/**
 * Decodes LZMA2 chunks from input[pos] into the decoder's output; returns the position after
 * the end-of-data byte.
 */
function decodeLzma2(decoder: LzmaDecoder, input: Buffer, start: number, end: number): number {
  let pos = start;
  let needDictReset = true;
  let needProperties = true;
  for (;;) {
    if (pos >= end) throw corrupt("the LZMA2 data is cut off");
    const control = input[pos++] as number;
    if (control === 0x00) return pos;
    if (control === 0x01 || control === 0x02) {
      // An uncompressed chunk; 1 also resets the dictionary.
      if (control === 0x01) decoder.dictStart = decoder.outPos;
      else if (needDictReset) throw corrupt("the first LZMA2 chunk does not reset the dictionary");
      needDictReset = false;
      if (pos + 2 > end) throw corrupt("the LZMA2 data is cut off");
      const size = input.readUInt16BE(pos) + 1;
      pos += 2;
      if (pos + size > end) throw corrupt("the LZMA2 data is cut off");
      if (decoder.outPos + size > decoder.out.length) throw corrupt("it inflates past its size");
      decoder.out.set(input.subarray(pos, pos + size), decoder.outPos);
      decoder.outPos += size;
      pos += size;
      continue;
    }
    if (control < 0x80) throw corrupt(`LZMA2 control byte 0x${control.toString(16)}`);
    if (pos + 4 > end) throw corrupt("the LZMA2 data is cut off");
    const unpacked = (control & 0x1f) * 65536 + input.readUInt16BE(pos) + 1;
    const packed = input.readUInt16BE(pos + 2) + 1;
    pos += 4;
    const reset = (control >>> 5) & 3;
    if (reset === 3) decoder.dictStart = decoder.outPos;
    else if (needDictReset) throw corrupt("the first LZMA2 chunk does not reset the dictionary");
    needDictReset = false;
    if (reset >= 2) {
      if (pos >= end) throw corrupt("the LZMA2 data is cut off");
      decoder.setProperties(decodeProperties("xz", input[pos++] as number));
      needProperties = false;
    } else if (needProperties) throw corrupt("an LZMA2 chunk comes before its properties");
    if (reset >= 1) decoder.resetState();
    if (pos + packed > end) throw corrupt("the LZMA2 data is cut off");
    decoder.startRange(input, pos, pos + packed);
    const target = decoder.outPos + unpacked;
    if (target > decoder.out.length) throw corrupt("it inflates past its size");
    decoder.decode(target);
    if (decoder.inPos !== pos + packed || decoder.overread !== 0 || !decoder.finishedCleanly)
      throw corrupt("an LZMA2 chunk's compressed size does not match its data");
    pos += packed;
  }
}

/**
 * Decodes a whole .xz stream whose blocks decode to `size` bytes in all (the caller read that
 * from the stream's index and bounded it).
 */
export function xzDecompress(input: Buffer, size: number): Buffer {
  if (input.length < 12 || !input.subarray(0, 6).equals(MAGIC))
    throw corrupt("the stream header is missing");
  if (crc32(input.subarray(6, 8)) !== input.readUInt32LE(8))
    throw corrupt("the stream header's CRC32 does not match");
  if (input[6] !== 0 || ((input[7] as number) & 0xf0) !== 0)
    throw corrupt("the stream flags are not ones xz defines");
  const checkType = (input[7] as number) & 0x0f;
  const out = Buffer.allocUnsafe(size);
  const decoder = new LzmaDecoder("xz", out);
  let pos = 12;
  for (;;) {
    if (pos >= input.length) throw corrupt("the stream is cut off");
    const first = input[pos] as number;
    if (first === 0) break; // the index: blocks are done
    const headerSize = (first + 1) * 4;
    const headerEnd = pos + headerSize;
    if (headerEnd > input.length) throw corrupt("a block header is cut off");
    if (crc32(input.subarray(pos, headerEnd - 4)) !== input.readUInt32LE(headerEnd - 4))
      throw corrupt("a block header's CRC32 does not match");
    const flags = input[pos + 1] as number;
    if (flags & 0x3c) throw corrupt("a block header has reserved flags set");
    const at = { at: pos + 2 };
    const compressedSize = flags & 0x40 ? readVarint(input, at, headerEnd - 4) : undefined;
    const uncompressedSize = flags & 0x80 ? readVarint(input, at, headerEnd - 4) : undefined;
    const filters = (flags & 3) + 1;
    let dictByte: number | undefined;
    for (let i = 0; i < filters; i++) {
      const id = readVarint(input, at, headerEnd - 4);
      const propsSize = readVarint(input, at, headerEnd - 4);
      if (id !== FILTER_LZMA2 || i !== filters - 1) {
        const name = FILTER_NAMES[id] ?? `0x${id.toString(16)}`;
        throw new ExtctlError(
          "unsupported",
          `the image's xz blocks use the ${name} filter, which extctl cannot read (it reads LZMA2 alone, what mksquashfs writes without -Xbcj)`,
        );
      }
      if (propsSize !== 1) throw corrupt("the LZMA2 filter properties are not one byte");
      dictByte = input[at.at++];
    }
    if (dictByte === undefined || dictByte > 40) throw corrupt("the LZMA2 dictionary size");
    const blockOut = decoder.outPos;
    const dataEnd = decodeLzma2(decoder, input, headerEnd, input.length);
    if (compressedSize !== undefined && dataEnd - headerEnd !== compressedSize)
      throw corrupt("a block's compressed size does not match its header");
    if (uncompressedSize !== undefined && decoder.outPos - blockOut !== uncompressedSize)
      throw corrupt("a block's size does not match its header");
    // Block padding to a multiple of four, then the check.
    pos = dataEnd;
    while ((pos - headerEnd) % 4 !== 0) {
      if (input[pos] !== 0) throw corrupt("a block's padding is not zero");
      pos++;
    }
    const checkBytes = checkSize(checkType);
    if (pos + checkBytes > input.length) throw corrupt("a block's check is cut off");
    verifyCheck(
      checkType,
      out.subarray(blockOut, decoder.outPos),
      input.subarray(pos, pos + checkBytes),
    );
    pos += checkBytes;
  }
  if (decoder.outPos !== size) throw corrupt(`it holds ${decoder.outPos} bytes, not ${size}`);
  return out;
}
