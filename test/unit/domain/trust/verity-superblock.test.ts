// The dm-verity superblock from bytes: what veritysetup writes round-trips, and each field the
// kernel would refuse is refused with the reason, before anything sizes a loop by it.
import assert from "node:assert/strict";
import test from "node:test";
import { ExtctlError } from "../../../../src/util/errors.js";
import {
  VERITY_SUPERBLOCK_SIZE,
  formatUuid,
  hasVerityMagic,
  parseUuid,
  parseVeritySuperblock,
  serializeVeritySuperblock,
  type VeritySuperblock,
} from "../../../../src/domain/trust/verity-superblock.js";

const SB: VeritySuperblock = {
  version: 1,
  hashType: 1,
  uuid: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
  algorithm: "sha256",
  dataBlockSize: 4096,
  hashBlockSize: 4096,
  dataBlocks: 1234,
  salt: Buffer.from("5a".repeat(32), "hex"),
};

/** The serialized superblock with one edit, parsed; the message of the refusal. */
function refusal(edit: (b: Buffer) => void): string {
  const b = serializeVeritySuperblock(SB);
  edit(b);
  try {
    parseVeritySuperblock(b, "img.raw");
  } catch (e) {
    assert.ok(e instanceof ExtctlError && e.code === "verity");
    return e.message;
  }
  assert.fail("the superblock was accepted");
}

test("a superblock round-trips through its 512 bytes, at the offsets veritysetup uses", () => {
  const bytes = serializeVeritySuperblock(SB);
  assert.equal(bytes.length, VERITY_SUPERBLOCK_SIZE);
  assert.equal(bytes.toString("latin1", 0, 8), "verity\0\0");
  assert.equal(bytes.readUInt32LE(64), 4096);
  assert.equal(bytes.readBigUInt64LE(72), 1234n);
  assert.equal(bytes.readUInt16LE(80), 32);
  assert.ok(hasVerityMagic(bytes));
  assert.deepEqual(parseVeritySuperblock(bytes, "img.raw"), SB);
});

test("an algorithm written in capitals reads as the lowercase name; no salt is an empty one", () => {
  const bytes = serializeVeritySuperblock({ ...SB, algorithm: "SHA512", salt: Buffer.alloc(0) });
  const sb = parseVeritySuperblock(bytes, "img.raw");
  assert.equal(sb.algorithm, "sha512");
  assert.equal(sb.salt.length, 0);
});

test("each field the kernel would refuse is refused, naming the image and the field", () => {
  assert.match(
    refusal((b) => b.write("notverit", 0, "latin1")),
    /^img\.raw: .*magic/,
  );
  assert.match(
    refusal((b) => b.writeUInt32LE(2, 8)),
    /version 2 is not 1/,
  );
  assert.match(
    refusal((b) => b.writeUInt32LE(7, 12)),
    /hash type 7 is not 0 or 1/,
  );
  assert.match(
    refusal((b) => b.write("md5\0", 32, "latin1")),
    /"md5" is not supported/,
  );
  assert.match(
    refusal((b) => b.writeUInt32LE(4000, 64)),
    /data block size 4000/,
  );
  assert.match(
    refusal((b) => b.writeUInt32LE(256, 68)),
    /hash block size 256/,
  );
  assert.match(
    refusal((b) => b.writeUInt32LE(1 << 17, 68)),
    /hash block size 131072/,
  );
  assert.match(
    refusal((b) => b.writeBigUInt64LE(1n << 60n, 72)),
    /more than any disk holds/,
  );
  assert.match(
    refusal((b) => b.writeUInt16LE(257, 80)),
    /salt size 257 is over 256/,
  );
  assert.throws(
    () => parseVeritySuperblock(Buffer.alloc(100), "img.raw"),
    /shorter than 512 bytes/,
  );
});

test("an algorithm name filling all 32 bytes without a NUL is read to its end, then refused", () => {
  assert.match(
    refusal((b) => b.write("x".repeat(32), 32, "latin1")),
    /"x{32}" is not supported/,
  );
});

test("UUIDs: dashes optional on the way in, veritysetup's form on the way out", () => {
  const raw = parseUuid("0F1E2D3C4B5A69788796A5B4C3D2E1F0");
  assert.equal(formatUuid(raw), SB.uuid);
  assert.throws(() => parseUuid("not-a-uuid"), /is not a UUID/);
  assert.throws(() => serializeVeritySuperblock({ ...SB, salt: Buffer.alloc(257) }), /at most 256/);
  assert.equal(hasVerityMagic(Buffer.from("verity")), false);
});
