// The hash tree in memory: built over a BufferSource into an in-memory hash area, it equals a tree
// computed by hand from the format (formats.md section 3), and the check finds the first bad
// block, top of the tree first.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import test from "node:test";
import { BufferSource } from "../../../../src/util/bytes.js";
import {
  buildVerityTree,
  checkVerityTree,
  verityLayout,
  type HashAreaTarget,
  type VerityParams,
} from "../../../../src/domain/trust/verity-tree.js";
import { parseVeritySuperblock } from "../../../../src/domain/trust/verity-superblock.js";

const BLOCK = 512; // 16 sha256 digests per hash block: a small tree still has two levels
const SALT = Buffer.from("0123456789abcdef", "hex");

/** A growable hash area in memory. */
function memoryArea(): HashAreaTarget & { bytes(): Buffer } {
  let buf = Buffer.alloc(0);
  return {
    async writeAt(position, data) {
      if (position + data.length > buf.length) {
        const grown = Buffer.alloc(position + data.length);
        buf.copy(grown);
        buf = grown;
      }
      data.copy(buf, position);
    },
    async readAt(position, length) {
      return buf.subarray(position, position + length);
    },
    bytes: () => buf,
  };
}

/** Flips the low bit of one byte. */
function flip(b: Buffer, at: number): void {
  b.writeUInt8(b.readUInt8(at) ^ 1, at);
}

function data(blocks: number): Buffer {
  const b = Buffer.alloc(blocks * BLOCK);
  for (let i = 0; i < b.length; i++) b[i] = (i * 7 + (i >> 9)) & 0xff;
  return b;
}

/** hash type 1: H(salt || block); digests packed into zero-padded hash blocks, level by level. */
function referenceRoot(bytes: Buffer): { root: string; levels: Buffer[] } {
  const digest = (block: Buffer) => createHash("sha256").update(SALT).update(block).digest();
  const levels: Buffer[] = [];
  let blocks: Buffer[] = [];
  for (let o = 0; o < bytes.length; o += BLOCK) blocks.push(bytes.subarray(o, o + BLOCK));
  while (blocks.length > 1) {
    const digests = blocks.map(digest);
    const level: Buffer[] = [];
    for (let i = 0; i < digests.length; i += BLOCK / 32) {
      const hashBlock = Buffer.alloc(BLOCK);
      Buffer.concat(digests.slice(i, i + BLOCK / 32)).copy(hashBlock);
      level.push(hashBlock);
    }
    levels.push(Buffer.concat(level));
    blocks = level;
  }
  return { root: digest(blocks[0] as Buffer).toString("hex"), levels };
}

const PARAMS = (dataBlocks: number): VerityParams => ({
  algorithm: "sha256",
  hashType: 1,
  dataBlockSize: BLOCK,
  hashBlockSize: BLOCK,
  dataBlocks,
  salt: SALT,
});

test("the layout puts the superblock first, then the levels top first", () => {
  const layout = verityLayout(PARAMS(40));
  assert.deepEqual(layout.levels, [
    { offset: 1024, blocks: 3 }, // level 0: 40 digests in blocks of 16
    { offset: 512, blocks: 1 }, // level 1: the top block
  ]);
  assert.equal(layout.size, 1024 + 3 * BLOCK);
  assert.equal(verityLayout(PARAMS(40), false).levels[1]?.offset, 0);
});

test("a tree built in memory is the one the format defines, superblock included", async () => {
  const bytes = data(40);
  const area = memoryArea();
  const tree = await buildVerityTree(new BufferSource(bytes), area, {
    dataBlockSize: BLOCK,
    salt: SALT,
    uuid: "11111111-2222-3333-4444-555555555555",
  });
  const expected = referenceRoot(bytes);
  assert.equal(tree.rootHash, expected.root);
  assert.equal(tree.hashAreaSize, area.bytes().length);
  const written = area.bytes();
  assert.deepEqual(written.subarray(1024, 1024 + 3 * BLOCK), expected.levels[0]);
  assert.deepEqual(written.subarray(512, 1024), expected.levels[1]);
  const sb = parseVeritySuperblock(written.subarray(0, 512), "mem");
  assert.equal(sb.dataBlocks, 40);
  assert.equal(sb.uuid, "11111111-2222-3333-4444-555555555555");
  assert.deepEqual(sb.salt, SALT);
});

test("a check of a sound tree passes; without `full` no data block is read", async () => {
  const bytes = data(40);
  const area = memoryArea();
  const tree = await buildVerityTree(new BufferSource(bytes), area, {
    dataBlockSize: BLOCK,
    salt: SALT,
  });
  const hashes = new BufferSource(area.bytes());
  const full = await checkVerityTree(new BufferSource(bytes), hashes, PARAMS(40), tree.rootHash, {
    full: true,
  });
  assert.deepEqual(full, { ok: true, rootHash: tree.rootHash });
  let reads = 0;
  const counting = {
    size: bytes.length,
    readAt: async (o: number, n: number) => {
      reads++;
      return bytes.subarray(o, o + n);
    },
  };
  const quick = await checkVerityTree(counting, hashes, PARAMS(40), tree.rootHash.toUpperCase());
  assert.equal(quick.ok, true);
  assert.equal(reads, 0);
});

test("a flipped data byte is named by its block, a flipped hash byte by its level and block", async () => {
  const bytes = data(40);
  const area = memoryArea();
  const tree = await buildVerityTree(new BufferSource(bytes), area, {
    dataBlockSize: BLOCK,
    salt: SALT,
  });
  const badData = Buffer.from(bytes);
  flip(badData, 33 * BLOCK + 5);
  const r1 = await checkVerityTree(
    new BufferSource(badData),
    new BufferSource(area.bytes()),
    PARAMS(40),
    tree.rootHash,
    { full: true },
  );
  assert.equal(r1.ok, false);
  assert.ok(!r1.ok && r1.reason === "corrupted-block" && r1.block === 33);
  const badHashes = Buffer.from(area.bytes());
  flip(badHashes, 1024 + BLOCK + 3); // level 0, block 1
  const r2 = await checkVerityTree(
    new BufferSource(bytes),
    new BufferSource(badHashes),
    PARAMS(40),
    tree.rootHash,
    { full: true },
  );
  assert.ok(!r2.ok && r2.reason === "corrupted-hash-block" && r2.level === 0 && r2.block === 1);
  const r3 = await checkVerityTree(
    new BufferSource(bytes),
    new BufferSource(area.bytes()),
    PARAMS(40),
    "00".repeat(32),
  );
  assert.ok(!r3.ok && r3.reason === "roothash-mismatch" && r3.rootHash === tree.rootHash);
});

test("truncated data or a short hash area is an error before any hashing", async () => {
  const bytes = data(40);
  const area = memoryArea();
  const tree = await buildVerityTree(new BufferSource(bytes), area, {
    dataBlockSize: BLOCK,
    salt: SALT,
  });
  await assert.rejects(
    checkVerityTree(
      new BufferSource(bytes.subarray(0, 39 * BLOCK)),
      new BufferSource(area.bytes()),
      PARAMS(40),
      tree.rootHash,
    ),
    /the data is 19968 bytes but the verity superblock says 40 blocks of 512/,
  );
  await assert.rejects(
    checkVerityTree(
      new BufferSource(bytes),
      new BufferSource(area.bytes().subarray(0, 1024)),
      PARAMS(40),
      tree.rootHash,
    ),
    /shorter than the 2560 its tree needs/,
  );
  await assert.rejects(
    buildVerityTree(new BufferSource(bytes), memoryArea(), {
      dataBlockSize: BLOCK,
      dataBlocks: 41,
    }),
    /fewer than 41 blocks of 512/,
  );
});
