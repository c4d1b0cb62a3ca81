// Damaged and crafted images: truncation, wrong magic, offsets past the end, huge counts, a
// directory loop, and a bounded mutation fuzz over real images. Each must end in a clear
// ExtctlError (or a correct read), never a crash, a hang or unbounded memory.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile, truncate } from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { BufferSource, type ByteSource } from "../../src/util/bytes.js";
import { ExtctlError } from "../../src/util/errors.js";
import { dissectImage } from "../../src/domain/image/ddi.js";
import { openFilesystem } from "../../src/domain/image/filesystem.js";
import { openSquashfs } from "../../src/domain/image/squashfs/reader.js";
import { walk } from "../../src/domain/image/tree.js";
import { requirePeers, run } from "../helpers/peers.js";
import { tempDir } from "../helpers/tmp.js";

/** Dissects, walks and reads everything; returns the error it ended with, if any. */
async function readAll(source: ByteSource): Promise<unknown> {
  try {
    const d = await dissectImage(source);
    const fs = await openFilesystem(d.data.source, d.filesystem);
    for await (const e of walk(fs)) {
      await fs.xattrs(e);
      if (e.type === "file") for await (const chunk of fs.read(e)) void chunk;
    }
    return undefined;
  } catch (e) {
    return e;
  }
}

function assertClearError(e: unknown, what: string): void {
  assert.ok(
    e instanceof ExtctlError,
    `${what}: expected an ExtctlError, got ${e instanceof Error ? e.stack : String(e)}`,
  );
  assert.ok(
    e.message.length > 10 && !e.message.includes("\n"),
    `${what}: unclear message ${e.message}`,
  );
}

async function makeTree(dir: string): Promise<string> {
  const tree = path.join(dir, "tree");
  await mkdir(path.join(tree, "usr/lib/extension-release.d"), { recursive: true });
  await mkdir(path.join(tree, "usr/share/sub/deeper"), { recursive: true });
  await writeFile(path.join(tree, "usr/lib/extension-release.d/extension-release.x"), "ID=_any\n");
  await writeFile(path.join(tree, "usr/share/sub/text"), "line of text\n".repeat(20000));
  await writeFile(path.join(tree, "usr/share/sub/deeper/small"), "small\n");
  await writeFile(path.join(tree, "usr/share/random"), randomBytes(70000));
  return tree;
}

/** Small deterministic PRNG so a failing fuzz case can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test("truncated images, wrong magic and a directory loop give clear errors", async (t) => {
  if (!requirePeers(t, ["mksquashfs", "mkfs.erofs"], { root: true })) return;
  const dir = await tempDir(t);
  const tree = await makeTree(dir);
  const sq = path.join(dir, "sq.img");
  run("mksquashfs", [tree, sq, "-noappend", "-all-root", "-quiet", "-no-progress"]);
  const er = path.join(dir, "er.img");
  run("mkfs.erofs", ["-zlz4", er, tree]);
  for (const file of [sq, er]) {
    const buf = await readFile(file);
    assert.equal(await readAll(new BufferSource(buf)), undefined, "the intact image reads");
    // squashfs pads to 4 KiB after bytes_used; cut inside what the filesystem uses.
    const end = file === sq ? Number(buf.readBigUInt64LE(40)) : buf.length;
    for (const keep of [4100, Math.floor(end / 2), end - 4096, end - 1]) {
      assertClearError(
        await readAll(new BufferSource(buf.subarray(0, keep))),
        `${path.basename(file)} cut at ${keep}`,
      );
    }
    const wrong = Buffer.from(buf);
    wrong.writeUInt32LE(0x12345678, file === sq ? 0 : 1024);
    assertClearError(await readAll(new BufferSource(wrong)), "wrong magic");
  }

  // squashfs with uncompressed metadata: point the directory entry "sub" at the root inode.
  const plain = path.join(dir, "plain.img");
  run("mksquashfs", [
    tree,
    plain,
    "-noappend",
    "-all-root",
    "-noI",
    "-noD",
    "-noF",
    "-noX",
    "-quiet",
    "-no-progress",
  ]);
  const img = await readFile(plain);
  const rootRef = img.readBigUInt64LE(32);
  const dirTable = Number(img.readBigUInt64LE(72));
  const at = img.indexOf(Buffer.from("sub"), dirTable);
  assert.ok(at > dirTable);
  const looped = Buffer.from(img);
  looped.writeUInt16LE(Number(rootRef & 0xffffn), at - 8);
  looped.writeUInt16LE(1, at - 4); // directory entry type: basic directory
  const e = await readAll(new BufferSource(looped));
  assertClearError(e, "directory loop");
  assert.match((e as Error).message, /loops back|disagrees|invalid/);
});

test("huge counts and offsets past the end are refused without allocating them", async (t) => {
  if (!requirePeers(t, ["mksquashfs"], { root: true })) return;
  const dir = await tempDir(t);
  const tree = await makeTree(dir);
  const sq = path.join(dir, "sq.img");
  run("mksquashfs", [tree, sq, "-noappend", "-all-root", "-quiet", "-no-progress"]);
  const buf = await readFile(sq);
  const cases: [string, (b: Buffer) => void][] = [
    ["bytes_used past the end", (b) => b.writeBigUInt64LE(1n << 40n, 40)],
    ["inode table past the end", (b) => b.writeBigUInt64LE(1n << 40n, 64)],
    ["id table past the end", (b) => b.writeBigUInt64LE(BigInt(b.length) + 100n, 48)],
    ["huge fragment count", (b) => b.writeUInt32LE(0xffffffff, 16)],
    ["block size not a power of two", (b) => b.writeUInt32LE(100000, 12)],
    ["root inode in a far block", (b) => b.writeBigUInt64LE(0xffffffffn << 16n, 32)],
  ];
  for (const [what, mutate] of cases) {
    const copy = Buffer.from(buf);
    mutate(copy);
    const before = process.memoryUsage().rss;
    const e = await readAll(new BufferSource(copy));
    assertClearError(e, what);
    assert.ok(
      process.memoryUsage().rss - before < 256 * 1024 * 1024,
      `${what} used too much memory`,
    );
  }
  // A squashfs that claims an id table of 65535 ids stored past the end.
  const ids = Buffer.from(buf);
  ids.writeUInt16LE(0xffff, 26);
  assertClearError(await readAll(new BufferSource(ids)), "huge id count");
  await assert.rejects(openSquashfs(new BufferSource(buf.subarray(0, 50))), ExtctlError);
});

test("mutation fuzz over real squashfs, erofs and GPT images ends in reads or clear errors", async (t) => {
  if (!requirePeers(t, ["mksquashfs", "mkfs.erofs", "sfdisk"], { root: true })) return;
  const dir = await tempDir(t);
  const tree = await makeTree(dir);
  const images: [string, Buffer][] = [];
  for (const comp of ["gzip", "lz4", "xz", "zstd", "lzo"]) {
    const f = path.join(dir, `sq-${comp}.img`);
    run("mksquashfs", [tree, f, "-noappend", "-all-root", "-comp", comp, "-quiet", "-no-progress"]);
    images.push([`squashfs/${comp}`, await readFile(f)]);
  }
  for (const [name, args] of [
    ["erofs", []],
    ["erofs/lz4", ["-zlz4"]],
  ] as [string, string[]][]) {
    const f = path.join(dir, `${name.replace("/", "-")}.img`);
    run("mkfs.erofs", [...args, f, tree]);
    images.push([name, await readFile(f)]);
  }
  // A GPT disk with one generic Linux partition holding the gzip squashfs.
  const disk = path.join(dir, "disk.img");
  await writeFile(disk, "");
  await truncate(disk, 4 * 1024 * 1024);
  run("sfdisk", ["-q", disk], { input: "label: gpt\nsize=2M, type=linux\n" });
  const diskBuf = await readFile(disk);
  (images[0] as [string, Buffer])[1].copy(diskBuf, 1024 * 1024);
  images.push(["gpt", diskBuf]);

  const cases = Number(process.env.EXTCTL_FUZZ_CASES ?? 60);
  const random = prng(0x5eed);
  let clean = 0;
  let refused = 0;
  for (const [name, original] of images) {
    // Mutate mostly the metadata-heavy start and end, where the structures live.
    for (let i = 0; i < cases; i++) {
      const copy = Buffer.from(original);
      const flips = 1 + Math.floor(random() * 8);
      for (let k = 0; k < flips; k++) {
        const region = random();
        const pos =
          region < 0.4
            ? Math.floor(random() * Math.min(copy.length, 8192))
            : region < 0.8
              ? copy.length - 1 - Math.floor(random() * Math.min(copy.length, 16384))
              : Math.floor(random() * copy.length);
        copy[pos] = Math.floor(random() * 256);
      }
      const started = Date.now();
      const e = await readAll(new BufferSource(copy));
      assert.ok(Date.now() - started < 10_000, `${name} case ${i} took ${Date.now() - started} ms`);
      if (e === undefined) clean++;
      else {
        assertClearError(e, `${name} case ${i}`);
        refused++;
      }
    }
  }
  t.diagnostic(`fuzz: ${clean} mutated images read, ${refused} refused with a clear error`);
  assert.ok(refused > 0);
});
