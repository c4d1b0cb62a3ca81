// Parsers of untrusted trust data: verity superblocks, verity-sig JSON and EFI signature lists
// refuse malformed input with a clear error and never read past what is there.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  parseVeritySuperblock,
  serializeVeritySuperblock,
} from "../../../../src/domain/trust/verity-superblock.js";
import {
  parseSignaturePartition,
  serializeSignaturePartition,
} from "../../../../src/domain/trust/signature.js";
import { EFI_CERT_X509, parseSignatureLists } from "../../../../src/domain/trust/efi.js";
import { BufferSource } from "../../../../src/util/bytes.js";
import {
  buildVerityTree,
  checkVerityTree,
  type HashAreaTarget,
} from "../../../../src/domain/trust/verity-tree.js";

const sb = {
  version: 1,
  hashType: 1 as const,
  uuid: "01234567-89ab-cdef-0123-456789abcdef",
  algorithm: "sha256",
  dataBlockSize: 4096,
  hashBlockSize: 4096,
  dataBlocks: 1000,
  salt: Buffer.from("00ff", "hex"),
};

test("a superblock round-trips and every bad field is named", () => {
  const bytes = serializeVeritySuperblock(sb);
  assert.equal(bytes.length, 512);
  assert.deepEqual(parseVeritySuperblock(bytes, "x.raw"), sb);
  const broken = (mutate: (b: Buffer) => void) => {
    const b = Buffer.from(bytes);
    mutate(b);
    return () => parseVeritySuperblock(b, "x.raw");
  };
  assert.throws(
    broken((b) => b.write("nope", 0)),
    /x\.raw: .*magic/,
  );
  assert.throws(
    broken((b) => b.writeUInt32LE(2, 8)),
    /version 2/,
  );
  assert.throws(
    broken((b) => b.writeUInt32LE(3000, 64)),
    /data block size 3000/,
  );
  assert.throws(
    broken((b) => b.writeUInt16LE(300, 80)),
    /salt size 300/,
  );
  assert.throws(
    broken((b) => b.write("md5\0", 32)),
    /"md5" is not supported/,
  );
  assert.throws(
    broken((b) => b.writeBigUInt64LE(2n ** 62n, 72)),
    /more than any disk/,
  );
});

test("verity-sig JSON: NUL padding, size and field checks", () => {
  const good = serializeSignaturePartition({
    rootHash: "ab".repeat(32),
    certificateFingerprint: "cd".repeat(32),
    signature: Buffer.from([1, 2, 3]),
  });
  assert.equal(good.length, 16384);
  assert.deepEqual(parseSignaturePartition(good, "x.raw").signature, Buffer.from([1, 2, 3]));
  const trailing = Buffer.from(good);
  trailing[good.length - 1] = 7;
  assert.throws(
    () => parseSignaturePartition(trailing, "x.raw"),
    /byte 16383 after the JSON is not NUL/,
  );
  assert.throws(
    () => parseSignaturePartition(Buffer.from('{"rootHash":"zz","signature":"AA=="}'), "x.raw"),
    /rootHash/,
  );
  assert.throws(() => parseSignaturePartition(Buffer.from("[1]"), "x.raw"), /not an object/);
  assert.throws(() => parseSignaturePartition(Buffer.from("{oops"), "x.raw"), /not JSON/);
  const big = Buffer.alloc(4 * 1024 * 1024 + 10, 0x20);
  assert.throws(() => parseSignaturePartition(big, "x.raw"), /larger than 4 MiB/);
});

function esl(type: Buffer, entries: Buffer[], sigSize: number, headerSize = 0): Buffer {
  const head = Buffer.alloc(28);
  type.copy(head, 0);
  head.writeUInt32LE(28 + headerSize + entries.length * sigSize, 16);
  head.writeUInt32LE(headerSize, 20);
  head.writeUInt32LE(sigSize, 24);
  return Buffer.concat([head, Buffer.alloc(headerSize), ...entries]);
}

const X509_GUID = Buffer.from("a159c0a5e494a74a87b5ab155c2bf072", "hex");

test("EFI signature lists: entries, owners and types; lying sizes are refused", () => {
  const owner = Buffer.from("00112233445566778899aabbccddeeff", "hex");
  const entry = Buffer.concat([owner, Buffer.from("CERTDATA")]);
  const list = esl(X509_GUID, [entry, entry], entry.length);
  const parsed = parseSignatureLists(Buffer.concat([list, list]), "db");
  assert.equal(parsed.length, 4);
  assert.equal(parsed[0]!.type, EFI_CERT_X509);
  assert.equal(parsed[0]!.owner, "33221100-5544-7766-8899-aabbccddeeff");
  assert.equal(parsed[0]!.data.toString(), "CERTDATA");
  const lying = Buffer.from(list);
  lying.writeUInt32LE(99999, 16);
  assert.throws(() => parseSignatureLists(lying, "db"), /db: .*list size 99999/);
  const ragged = Buffer.from(list);
  ragged.writeUInt32LE(entry.length + 1, 24);
  assert.throws(() => parseSignatureLists(ragged, "db"), /whole signatures/);
  assert.throws(() => parseSignatureLists(Buffer.alloc(10), "db"), /stray bytes/);
});

function memoryTarget(): HashAreaTarget & { bytes: () => Buffer } {
  let buf = Buffer.alloc(0);
  return {
    async writeAt(position, data) {
      if (position + data.length > buf.length)
        buf = Buffer.concat([buf, Buffer.alloc(position + data.length - buf.length)]);
      data.copy(buf, position);
    },
    async readAt(position, length) {
      return buf.subarray(position, position + length);
    },
    bytes: () => buf,
  };
}

test("a full check names the first corrupted data block, and a corrupted hash block as such", async () => {
  const data = Buffer.alloc(300 * 512);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  const target = memoryTarget();
  const tree = await buildVerityTree(new BufferSource(data), target, { dataBlockSize: 512 });
  const hashes = new BufferSource(target.bytes());
  const params = { ...tree.superblock };
  assert.deepEqual(
    await checkVerityTree(new BufferSource(data), hashes, params, tree.rootHash, { full: true }),
    { ok: true, rootHash: tree.rootHash },
  );

  const bad = Buffer.from(data);
  bad[200 * 512 + 3]! ^= 1;
  bad[250 * 512]! ^= 1;
  const r = await checkVerityTree(new BufferSource(bad), hashes, params, tree.rootHash, {
    full: true,
  });
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.reason, "corrupted-block");
  assert.equal(!r.ok && r.reason === "corrupted-block" && r.block, 200);

  const badHashes = Buffer.from(target.bytes());
  const level0 = tree.layout.levels[0]!;
  badHashes[level0.offset + 5 * 512 + 1]! ^= 1;
  const h = await checkVerityTree(
    new BufferSource(data),
    new BufferSource(badHashes),
    params,
    tree.rootHash,
    { full: true },
  );
  assert.equal(!h.ok && h.reason, "corrupted-hash-block");

  const wrongRoot = await checkVerityTree(new BufferSource(data), hashes, params, "00".repeat(32));
  assert.equal(!wrongRoot.ok && wrongRoot.reason, "roothash-mismatch");
  await assert.rejects(
    checkVerityTree(new BufferSource(data.subarray(0, 1000)), hashes, params, tree.rootHash),
    /the data is 1000 bytes/,
  );
});
