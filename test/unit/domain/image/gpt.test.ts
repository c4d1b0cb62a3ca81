// GPT reader against tables written by sfdisk (and checked by sgdisk), plus damaged copies.
import { test } from "node:test";
import assert from "node:assert/strict";
import { open, readFile, writeFile, truncate } from "node:fs/promises";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { crc32 } from "node:zlib";
import { BufferSource, FileSource } from "../../../../src/util/bytes.js";
import { readGpt, guidFromBytes, guidToBytes } from "../../../../src/domain/image/gpt.js";
import { dissectImage } from "../../../../src/domain/image/ddi.js";
import { tempDir } from "../../../helpers/tmp.js";
import { hasCommand, isRoot, run } from "../../../helpers/peers.js";
import { ExtctlError } from "../../../../src/util/errors.js";

interface SfdiskJson {
  partitiontable: {
    id: string;
    sectorsize: number;
    partitions: {
      node: string;
      start: number;
      size: number;
      type: string;
      uuid: string;
      name?: string;
      attrs?: string;
    }[];
  };
}

async function makeImage(dir: string, script: string, size = 8 * 1024 * 1024): Promise<string> {
  const file = path.join(dir, "disk.img");
  await writeFile(file, "");
  await truncate(file, size);
  run("sfdisk", ["-q", file], { input: script });
  return file;
}

async function read(file: string) {
  const src = await FileSource.open(file);
  try {
    return await readGpt(src);
  } finally {
    await src.close();
  }
}

test("GUIDs round-trip through their mixed-endian on-disk form", () => {
  const guid = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";
  const raw = guidToBytes(guid);
  assert.equal(raw.toString("hex"), "e3bc684fcde8b14d96e7fbcaf984b709");
  assert.equal(guidFromBytes(raw), guid);
});

test("partitions equal what sfdisk --json reports for a 512-byte-sector table", async (t) => {
  if (!hasCommand("sfdisk")) return t.skip("sfdisk missing");
  const dir = await tempDir(t);
  const file = await makeImage(
    dir,
    'label: gpt\nsize=1M, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709, name="root-x86-64", attrs="GUID:59,60"\n' +
      "size=1M, type=2c7357ed-ebd2-46d9-aec1-23d437ec2bf5, name=root-x86-64-verity\n" +
      "size=64K, type=41092b05-9fc8-4523-994f-2def0408b176, name=root-x86-64-verity-sig\n",
  );
  const want = (JSON.parse(run("sfdisk", ["--json", file])) as SfdiskJson).partitiontable;
  const got = await read(file);
  assert.equal(got.sectorSize, 512);
  assert.equal(got.diskGuid, want.id.toLowerCase());
  assert.deepEqual(got.warnings, []);
  assert.equal(got.partitions.length, want.partitions.length);
  for (const [i, w] of want.partitions.entries()) {
    const p = got.partitions[i]!;
    assert.equal(p.index, Number(w.node.slice(file.length)));
    assert.equal(p.typeGuid, w.type.toLowerCase());
    assert.equal(p.uniqueGuid, w.uuid.toLowerCase());
    assert.equal(p.name, w.name ?? "");
    assert.equal(p.firstLba, w.start);
    assert.equal(p.lastLba - p.firstLba + 1, w.size);
    assert.equal(p.offset, w.start * 512);
    assert.equal(p.size, w.size * 512);
  }
  assert.equal(got.partitions[0]!.readOnly, true);
  assert.equal(got.partitions[0]!.growFs, true);
  assert.equal(got.partitions[1]!.readOnly, false);
  assert.equal(got.partitions[0]!.attributes, (1n << 60n) | (1n << 59n));
  if (hasCommand("sgdisk")) assert.match(run("sgdisk", ["-v", file]), /No problems found/);
});

test("a table written on a 4096-byte-sector device is read with 4096-byte LBAs", async (t) => {
  if (!isRoot() || !hasCommand("losetup")) return t.skip("needs root and losetup");
  const dir = await tempDir(t);
  const file = path.join(dir, "disk4k.img");
  await writeFile(file, "");
  await truncate(file, 16 * 1024 * 1024);
  const loop = run("losetup", ["-f", "--show", "-b", "4096", file]).trim();
  let want: SfdiskJson["partitiontable"];
  try {
    try {
      run("sfdisk", ["-q", loop], {
        input: "label: gpt\nsize=1M, type=0fc63daf-8483-4772-8e79-3d69d8477de4, name=data\n",
      });
    } catch {
      // sfdisk complains that it cannot re-read the table of a loop device without partscan.
    }
    want = (JSON.parse(run("sfdisk", ["--json", loop])) as SfdiskJson).partitiontable;
  } finally {
    execFileSync("losetup", ["-d", loop]);
  }
  const got = await read(file);
  assert.equal(want.sectorsize, 4096);
  assert.equal(got.sectorSize, 4096);
  assert.equal(got.diskGuid, want.id.toLowerCase());
  const p = got.partitions[0]!;
  assert.equal(p.uniqueGuid, want.partitions[0]!.uuid.toLowerCase());
  assert.equal(p.offset, want.partitions[0]!.start * 4096);
  assert.equal(p.size, 1024 * 1024);
  assert.equal(p.name, "data");
});

test("a damaged primary header falls back to the backup with a warning", async (t) => {
  if (!hasCommand("sfdisk")) return t.skip("sfdisk missing");
  const dir = await tempDir(t);
  const file = await makeImage(dir, "label: gpt\nsize=1M, type=linux\n");
  // Flip a byte inside the disk GUID: the CRC breaks whatever the random GUID was (writing a
  // fixed 0xff left it intact one run in 256).
  const fh = await open(file, "r+");
  const byte = Buffer.alloc(1);
  await fh.read(byte, 0, 1, 512 + 60);
  byte[0] = byte[0]! ^ 0xff;
  await fh.write(byte, 0, 1, 512 + 60);
  await fh.close();
  const got = await read(file);
  assert.equal(got.partitions.length, 1);
  assert.equal(got.header, "backup");
  assert.match(got.warnings.join(), /primary GPT is invalid \(header CRC32 does not match\)/);
});

test("a damaged entry array in both copies is a format error", async (t) => {
  if (!hasCommand("sfdisk")) return t.skip("sfdisk missing");
  const dir = await tempDir(t);
  const file = await makeImage(dir, "label: gpt\nsize=1M, type=linux\n");
  const buf = await readFile(file);
  buf.writeUInt8(buf.readUInt8(1024 + 60) ^ 0xff, 1024 + 60); // primary entry array (LBA 2)
  const backupArray = buf.length - 33 * 512;
  buf.writeUInt8(buf.readUInt8(backupArray + 60) ^ 0xff, backupArray + 60);
  await assert.rejects(readGpt(new BufferSource(buf)), (e: unknown) => {
    assert.ok(e instanceof ExtctlError);
    assert.equal(e.code, "format");
    assert.match(e.message, /entry array CRC32 does not match/);
    return true;
  });
});

test("a missing protective MBR and a truncated image are refused, a partition past the usable range is ignored (libblkid)", async (t) => {
  if (!hasCommand("sfdisk")) return t.skip("sfdisk missing");
  const dir = await tempDir(t);
  const file = await makeImage(dir, "label: gpt\nsize=1M, type=linux\n");
  const buf = await readFile(file);

  const noPmbr = Buffer.from(buf);
  noPmbr.writeUInt16LE(0, 510);
  await assert.rejects(readGpt(new BufferSource(noPmbr)), /no protective MBR/);

  // Cut off the end: the primary's LastUsableLBA now lies past the last LBA, so libblkid
  // rejects it, and the backup is gone too: no table systemd could read.
  const cut = buf.subarray(0, 2 * 1024 * 1024);
  await assert.rejects(readGpt(new BufferSource(cut)), /past the last LBA/);

  // An entry pointing past the end with valid CRCs: rewrite the entry and fix both CRCs.
  const evil = Buffer.from(buf);
  evil.writeBigUInt64LE(1n << 40n, 1024 + 40);
  const entries = evil.subarray(1024, 1024 + 128 * 128);
  evil.writeUInt32LE(crc32(entries), 512 + 88);
  evil.writeUInt32LE(0, 512 + 16);
  evil.writeUInt32LE(crc32(evil.subarray(512, 512 + 92)), 512 + 16);
  const ignored = await readGpt(new BufferSource(evil));
  assert.deepEqual(ignored.partitions, []);
  assert.deepEqual(ignored.ignoredEntries, [1]);

  // A huge entry count (with valid CRC) is refused instead of allocating gigabytes.
  const huge = Buffer.from(buf);
  huge.writeUInt32LE(0x7fffffff, 512 + 80);
  huge.writeUInt32LE(0, 512 + 16);
  huge.writeUInt32LE(crc32(huge.subarray(512, 512 + 92)), 512 + 16);
  const r = await readGpt(new BufferSource(huge));
  assert.match(r.warnings.join(), /primary GPT is invalid \(partition entry array of 2147483647/);
});

test("dissect picks the host-architecture root partition and its verity partitions", async (t) => {
  if (!hasCommand("sfdisk")) return t.skip("sfdisk missing");
  const dir = await tempDir(t);
  const file = await makeImage(
    dir,
    "label: gpt\n" +
      "size=1M, type=b921b045-1df0-41c3-af44-4c6f280d3fae, name=root-arm64\n" +
      "size=1M, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709, name=root-x86-64\n" +
      "size=1M, type=2c7357ed-ebd2-46d9-aec1-23d437ec2bf5, name=root-x86-64-verity\n" +
      "size=64K, type=41092b05-9fc8-4523-994f-2def0408b176, name=root-x86-64-verity-sig\n",
  );
  // systemd loads the signature partition while it dissects: NUL-padded JSON.
  const img = await readFile(file);
  Buffer.from(JSON.stringify({ rootHash: "00".repeat(32), signature: "AA==" })).copy(img, 4 << 20);
  await writeFile(file, img);
  const src = await FileSource.open(file);
  t.after(() => src.close());
  const x86 = await dissectImage(src, { architecture: "x86-64" });
  assert.equal(x86.kind, "ddi");
  assert.equal(x86.architecture, "x86-64");
  assert.equal(x86.designator, "root");
  assert.equal(x86.data.partition?.index, 2);
  assert.equal(x86.verity?.partition?.index, 3);
  assert.equal(x86.signature?.partition?.index, 4);
  assert.equal(x86.partitions[2]!.typeName, "root-x86-64-verity");
  assert.equal(
    x86.rootHashFromUuids,
    x86.data.partition.uniqueGuid.replace(/-/g, "") +
      x86.verity.partition.uniqueGuid.replace(/-/g, ""),
  );
  // 252 groups by architecture: the arm64 root has no verity of its own. 253 and later fill each
  // designator on its own and pair it with the x86-64 verity partitions (seen on 254/257/262).
  const arm252 = await dissectImage(src, { architecture: "arm64", systemd: 252 });
  assert.equal(arm252.data.partition?.index, 1);
  assert.equal(arm252.verity, undefined);
  const arm = await dissectImage(src, { architecture: "arm64", systemd: 257 });
  assert.equal(arm.data.partition?.index, 1);
  assert.equal(arm.verity?.partition?.index, 3);
  assert.match(arm.ambiguities.join("\n"), /systemd 252 reads this image differently/);
  const riscv = await dissectImage(src, { architecture: "riscv64" });
  // systemd 252 mounts a root of another architecture when it has none of its own (checked
  // against systemd-dissect in test/e2e/dissect-differential.test.ts); it is listed as ambiguous.
  assert.equal(riscv.foreignArchitecture, false);
  assert.match(riscv.ambiguities.join(), /not this host's riscv64; systemd still mounts it/);
});

test("dissect recognises a single generic Linux partition and refuses two", async (t) => {
  if (!hasCommand("sfdisk")) return t.skip("sfdisk missing");
  const dir = await tempDir(t);
  const one = await makeImage(dir, "label: gpt\nsize=1M, type=linux\n");
  const src = await FileSource.open(one);
  const d = await dissectImage(src);
  await src.close();
  assert.equal(d.kind, "single-partition");
  assert.equal(d.data.offset, 2048 * 512);
  assert.equal(d.filesystem, "unknown");
  const two = await makeImage(dir, "label: gpt\nsize=1M, type=linux\nsize=1M, type=linux\n");
  const src2 = await FileSource.open(two);
  await assert.rejects(dissectImage(src2), /2 generic Linux partitions/);
  await src2.close();
});

test("dissect names bare filesystems and refuses unknown bytes", async () => {
  const sq = Buffer.alloc(8192);
  sq.write("hsqs", 0, "latin1");
  assert.equal((await dissectImage(new BufferSource(sq))).filesystem, "squashfs");
  const erofs = Buffer.alloc(8192);
  erofs.writeUInt32LE(0xe0f5e1e2, 1024);
  const d = await dissectImage(new BufferSource(erofs));
  assert.equal(d.kind, "bare-fs");
  assert.equal(d.filesystem, "erofs");
  await assert.rejects(dissectImage(new BufferSource(Buffer.alloc(8192))), /neither a GPT/);
  await assert.rejects(dissectImage(new BufferSource(Buffer.alloc(100))), /too small/);
});
