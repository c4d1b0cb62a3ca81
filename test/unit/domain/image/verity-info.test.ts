// inspect's view of a hash area's superblock, read from an in-memory ByteSource: the fields as
// veritysetup wrote them, nothing when there is no superblock, an error when it is corrupt.
import assert from "node:assert/strict";
import test from "node:test";
import { BufferSource } from "../../../../src/util/bytes.js";
import { readVeritySuperblock } from "../../../../src/domain/image/verity-info.js";
import { serializeVeritySuperblock } from "../../../../src/domain/trust/verity-superblock.js";

const SUPERBLOCK = serializeVeritySuperblock({
  version: 1,
  hashType: 1,
  uuid: "01234567-89ab-cdef-0123-456789abcdef",
  algorithm: "sha256",
  dataBlockSize: 4096,
  hashBlockSize: 4096,
  dataBlocks: 77,
  salt: Buffer.from("c0ffee", "hex"),
});

test("a hash area with a superblock reads back its fields", async () => {
  const area = Buffer.concat([SUPERBLOCK, Buffer.alloc(4096 - 512, 0xaa)]);
  assert.deepEqual(await readVeritySuperblock(new BufferSource(area)), {
    version: 1,
    hashType: 1,
    uuid: "01234567-89ab-cdef-0123-456789abcdef",
    hashAlgorithm: "sha256",
    dataBlockSize: 4096,
    hashBlockSize: 4096,
    dataBlocks: 77,
    salt: "c0ffee",
  });
});

test("no superblock (veritysetup --no-superblock) or a short area is undefined, not an error", async () => {
  assert.equal(await readVeritySuperblock(new BufferSource(Buffer.alloc(4096, 0x11))), undefined);
  assert.equal(
    await readVeritySuperblock(new BufferSource(SUPERBLOCK.subarray(0, 511))),
    undefined,
  );
});

test("a corrupt salt size or block size is an error, not a wrong answer", async () => {
  const badSalt = Buffer.from(SUPERBLOCK);
  badSalt.writeUInt16LE(300, 80);
  await assert.rejects(
    readVeritySuperblock(new BufferSource(badSalt)),
    /verity superblock is corrupt/,
  );
  const badBlock = Buffer.from(SUPERBLOCK);
  badBlock.writeUInt32LE(3000, 64);
  await assert.rejects(
    readVeritySuperblock(new BufferSource(badBlock)),
    /bad salt size or block size/,
  );
});
