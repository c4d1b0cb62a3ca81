// The verity hashing loop and its pool: in place or copied, salt first or last, with or without
// salt, on this thread or a worker, every path gives the digests a plain createHash gives.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import test from "node:test";
import { BufferSource, FileSource } from "../../../../src/util/bytes.js";
import {
  digestSlotSize,
  hashBlocksToHashBlocks,
  hashFileBlocks,
  hashesPerBlock,
  type BlockHashParams,
} from "../../../../src/domain/trust/verity-hash.js";
import { createBlockHasher, inlineHasher } from "../../../../src/domain/trust/verity-pool.js";
import {
  buildVerityTree,
  checkVerityTree,
  hashAreaInFile,
} from "../../../../src/domain/trust/verity-tree.js";
import { open } from "node:fs/promises";

/** The hash blocks as the format defines them, one createHash per block. */
function reference(params: BlockHashParams, data: Buffer): Buffer {
  const per = hashesPerBlock(params.hashBlockSize, params.digestSize);
  const slot = digestSlotSize(params.hashType, params.digestSize);
  const blocks = Math.ceil(data.length / params.blockSize);
  const out = Buffer.alloc(Math.ceil(blocks / per) * params.hashBlockSize);
  for (let i = 0; i < blocks; i++) {
    const block = Buffer.alloc(params.blockSize);
    data.copy(block, 0, i * params.blockSize, (i + 1) * params.blockSize);
    const h = createHash(params.algorithm);
    if (params.hashType === 1) h.update(params.salt).update(block);
    else h.update(block).update(params.salt);
    h.digest().copy(out, Math.floor(i / per) * params.hashBlockSize + (i % per) * slot);
  }
  return out;
}

const cases: { name: string; hashType: 0 | 1; salt: number; blockSize: number; bytes: number }[] = [
  { name: "salt first", hashType: 1, salt: 32, blockSize: 4096, bytes: 300 * 4096 },
  { name: "salt last (type 0)", hashType: 0, salt: 32, blockSize: 4096, bytes: 300 * 4096 },
  { name: "no salt", hashType: 1, salt: 0, blockSize: 4096, bytes: 17 * 4096 },
  { name: "long salt, small blocks", hashType: 1, salt: 256, blockSize: 512, bytes: 1000 * 512 },
  { name: "type 0, small blocks", hashType: 0, salt: 200, blockSize: 512, bytes: 999 * 512 },
  { name: "partial last block", hashType: 1, salt: 32, blockSize: 4096, bytes: 3 * 4096 + 100 },
  { name: "type 0, partial last", hashType: 0, salt: 32, blockSize: 4096, bytes: 5 * 4096 + 7 },
  { name: "one block", hashType: 1, salt: 32, blockSize: 4096, bytes: 4096 },
];

for (const c of cases) {
  test(`hash blocks, ${c.name}: in place and copied match createHash; a copy is left as it was`, () => {
    const params: BlockHashParams = {
      algorithm: "sha256",
      hashType: c.hashType,
      salt: randomBytes(c.salt),
      blockSize: c.blockSize,
      hashBlockSize: 4096,
      digestSize: 32,
    };
    const data = randomBytes(c.bytes);
    const before = Buffer.from(data);
    const want = reference(params, data);
    assert.deepEqual(hashBlocksToHashBlocks(params, data), want);
    assert.deepEqual(data, before, "without scratch the data is untouched");
    // A view into the middle of a larger buffer, as a BufferSource hands out.
    const wide = Buffer.concat([randomBytes(13), data, randomBytes(40)]);
    const view = wide.subarray(13, 13 + data.length);
    assert.deepEqual(hashBlocksToHashBlocks(params, view, true), want);
  });
}

test("hashing blocks read from a file into salted slots matches createHash, slots reused only when they fit", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "extctl-verity-slots-"));
  try {
    let slots: ReturnType<typeof hashFileBlocks>["slots"] | undefined;
    for (const c of cases.filter((k) => k.bytes % k.blockSize === 0)) {
      const params: BlockHashParams = {
        algorithm: "sha256",
        hashType: c.hashType,
        salt: randomBytes(c.salt),
        blockSize: c.blockSize,
        hashBlockSize: 4096,
        digestSize: 32,
      };
      // The blocks start 777 bytes into the file, as a partition does inside an image.
      const data = randomBytes(c.bytes);
      const file = path.join(dir, "data");
      await writeFile(file, Buffer.concat([randomBytes(777), data, randomBytes(5)]));
      const handle = await open(file, "r");
      try {
        const blocks = c.bytes / c.blockSize;
        const done = hashFileBlocks(params, handle.fd, 777, blocks, slots);
        assert.deepEqual(done.hashes, reference(params, data), c.name);
        assert.ok(done.slots !== slots, `${c.name}: other params get slots of their own`);
        // Again with the same slots: a second chunk of fewer blocks.
        const again = hashFileBlocks(params, handle.fd, 777, 1, done.slots);
        assert.equal(again.slots, done.slots);
        assert.deepEqual(again.hashes, reference(params, data.subarray(0, c.blockSize)));
        slots = done.slots;
        assert.throws(
          () => hashFileBlocks(params, handle.fd, 777 + c.bytes, 2, slots),
          /the file ended/,
          "blocks past the end of the file are an error, not zeros",
        );
      } finally {
        await handle.close();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("the pool hashes file regions on its threads and on the calling thread alike", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "extctl-verity-region-"));
  const params: BlockHashParams = {
    algorithm: "sha256",
    hashType: 0,
    salt: randomBytes(32),
    blockSize: 4096,
    hashBlockSize: 4096,
    digestSize: 32,
  };
  const hasher = createBlockHasher(2);
  try {
    const chunks = Array.from({ length: 7 }, () => randomBytes(256 * 4096));
    const file = path.join(dir, "data");
    await writeFile(file, Buffer.concat(chunks));
    const handle = await open(file, "r");
    try {
      // Seven at once, over and over: more than the worker's queue, so some run on this thread,
      // and until the worker runs (tens of ms) all of them do; then it takes its share.
      const hashAll = () =>
        Promise.all(
          chunks.map((_, i) =>
            hasher.hashRegion(params, { fd: handle.fd, position: i * 256 * 4096 }, 256),
          ),
        );
      for (let round = 0; round < 50 && (hasher.hashed?.threads ?? 0) === 0; round++) {
        const got = await hashAll();
        got.forEach((g, i) => assert.deepEqual(g, reference(params, chunks[i]!), `chunk ${i}`));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok((hasher.hashed?.threads ?? 0) > 0, "the worker thread hashed some chunks");
      assert.ok((hasher.hashed?.here ?? 0) > 0, "the calling thread hashed some chunks");
      assert.deepEqual(
        await inlineHasher.hashRegion(params, { fd: handle.fd, position: 0 }, 256),
        reference(params, chunks[0]!),
      );
    } finally {
      await handle.close();
    }
  } finally {
    await hasher.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test("sha512 digests (64 bytes) fill 64-byte slots", () => {
  const params: BlockHashParams = {
    algorithm: "sha512",
    hashType: 1,
    salt: randomBytes(32),
    blockSize: 4096,
    hashBlockSize: 4096,
    digestSize: 64,
  };
  const data = randomBytes(130 * 4096);
  assert.deepEqual(
    hashBlocksToHashBlocks(params, Buffer.from(data), true),
    reference(params, data),
  );
});

test("the pool: worker and calling-thread chunks agree, borrowed buffers are left intact", async () => {
  const params: BlockHashParams = {
    algorithm: "sha256",
    hashType: 1,
    salt: randomBytes(32),
    blockSize: 4096,
    hashBlockSize: 4096,
    digestSize: 32,
  };
  const hasher = createBlockHasher(2);
  try {
    const chunks = Array.from({ length: 9 }, () => randomBytes(256 * 4096));
    const copies = chunks.map((c) => Buffer.from(c));
    const wants = chunks.map((c) => reference(params, c));
    // Borrowed: every chunk must survive, whichever thread hashes it.
    const got = await Promise.all(chunks.map((c) => hasher.hash(params, c)));
    got.forEach((g, i) => assert.deepEqual(g, wants[i]));
    chunks.forEach((c, i) => assert.deepEqual(c, copies[i]));
    // Owned: may be transferred or scribbled on, the digests are the same.
    const owned = await Promise.all(copies.map((c) => hasher.hash(params, Buffer.from(c), true)));
    owned.forEach((g, i) => assert.deepEqual(g, wants[i]));
    assert.deepEqual(await inlineHasher.hash(params, Buffer.from(copies[0]!), true), wants[0]);
  } finally {
    await hasher.close();
  }
});

test("a full check through the thread pool from a file names the first corrupted block", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "extctl-verity-pool-"));
  try {
    const blocks = 5000; // ~20 MiB: above the inline limit, so worker threads hash
    const data = randomBytes(blocks * 4096);
    const image = path.join(dir, "data.raw");
    const hashPath = path.join(dir, "data.verity");
    await writeFile(image, data);
    const out = await open(hashPath, "w+");
    const tree = await buildVerityTree(await FileSource.open(image), hashAreaInFile(out));
    await out.close();
    const params = { ...tree.superblock };
    const check = async (bytes: Buffer) => {
      await writeFile(image, bytes);
      const src = await FileSource.open(image);
      const hashes = await FileSource.open(hashPath);
      try {
        return await checkVerityTree(src, hashes, params, tree.rootHash, { full: true });
      } finally {
        await src.close();
        await hashes.close();
      }
    };
    assert.deepEqual(await check(data), { ok: true, rootHash: tree.rootHash });
    // The same tree from a BufferSource (borrowed reads) is byte for byte the one from the file.
    const again = await buildVerityTree(new BufferSource(data), memory(), {
      salt: tree.salt,
      uuid: tree.uuid,
    });
    assert.equal(again.rootHash, tree.rootHash);
    for (const block of [0, 1, 1023, 1024, 3333, blocks - 1]) {
      const bad = Buffer.from(data);
      bad[block * 4096 + 4095]! ^= 0x80;
      bad[Math.min(blocks - 1, block + 2) * 4096]! ^= 1;
      const r = await check(bad);
      assert.equal(!r.ok && r.reason, "corrupted-block", `block ${block}`);
      assert.equal(!r.ok && r.reason === "corrupted-block" && r.block, block);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

function memory() {
  let buf = Buffer.alloc(0);
  return {
    async writeAt(position: number, data: Buffer) {
      if (position + data.length > buf.length)
        buf = Buffer.concat([buf, Buffer.alloc(position + data.length - buf.length)]);
      data.copy(buf, position);
    },
    async readAt(position: number, length: number) {
      return buf.subarray(position, position + length);
    },
  };
}
