// The filesystem registry is the only list of filesystems: each one's magic is recognised, the
// readers open what they register, and build's formats and their messages come from the table.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BufferSource } from "../../../../src/util/bytes.js";
import { ExtctlError } from "../../../../src/util/errors.js";
import {
  DEFAULT_FORMAT,
  FILESYSTEMS,
  FORMATS,
  READABLE,
} from "../../../../src/domain/image/filesystem-registry.js";
import { detectFilesystem, openFilesystem } from "../../../../src/domain/image/filesystem.js";
import { buildFormat, DEFAULT_COMPRESS, mkfsCommand } from "../../../../src/domain/build/mkfs.js";

/** A zeroed image, large enough for every magic's offset, carrying one filesystem's magic. */
function withMagic(name: string): BufferSource {
  const b = Buffer.alloc(0x11000);
  switch (name) {
    case "squashfs":
      b.write("hsqs", 0, "latin1");
      break;
    case "xfs":
      b.write("XFSB", 0, "latin1");
      break;
    case "erofs":
      b.writeUInt32LE(0xe0f5e1e2, 1024);
      break;
    case "ext4":
      b.writeUInt16LE(0xef53, 1080);
      break;
    case "btrfs":
      b.write("_BHRfS_M", 0x10040, "latin1");
      break;
    case "vfat":
      b.write("FAT32", 82, "latin1");
      b.writeUInt16LE(0xaa55, 510);
      break;
    default:
      assert.fail(`the test has no magic for ${name}: add one`);
  }
  return new BufferSource(b);
}

test("every registered filesystem's magic is detected, and nothing else is", async () => {
  assert.deepEqual(
    FILESYSTEMS.map((f) => f.name),
    ["squashfs", "xfs", "erofs", "ext4", "btrfs", "vfat"],
  );
  for (const f of FILESYSTEMS) assert.equal(await detectFilesystem(withMagic(f.name)), f.name);
  assert.equal(await detectFilesystem(new BufferSource(Buffer.alloc(0x11000))), "unknown");
  assert.equal(await detectFilesystem(new BufferSource(Buffer.from("hsq"))), "unknown");
});

test("a filesystem extctl only recognises is refused with the readers named", async () => {
  assert.deepEqual(READABLE, ["squashfs", "erofs"]);
  await assert.rejects(openFilesystem(withMagic("ext4"), "ext4"), (e: unknown) => {
    assert.ok(e instanceof ExtctlError);
    assert.equal(e.code, "unsupported");
    assert.equal(
      e.message,
      "extctl cannot read ext4 filesystems yet (it reads squashfs and erofs)",
    );
    assert.equal(e.hint, "build the extension as squashfs or erofs");
    return true;
  });
});

test("a readable filesystem is opened by its own reader (a zeroed superblock is refused by it)", async () => {
  for (const name of READABLE) {
    await assert.rejects(
      openFilesystem(withMagic(name), name),
      (e: unknown) => e instanceof ExtctlError && e.message.includes(name),
    );
  }
});

test("build's formats are the filesystems with an mkfs, the default first", () => {
  assert.deepEqual(FORMATS, ["erofs", "squashfs"]);
  assert.equal(DEFAULT_FORMAT, "erofs");
  assert.deepEqual(DEFAULT_COMPRESS, { erofs: "lz4hc", squashfs: "gzip" });
  assert.equal(buildFormat(undefined), "erofs");
  assert.equal(buildFormat("squashfs"), "squashfs");
  assert.throws(
    () => buildFormat("ext4"),
    (e: unknown) =>
      e instanceof ExtctlError &&
      e.code === "usage" &&
      e.message === 'unknown filesystem format "ext4"' &&
      e.hint === "use --format erofs or squashfs",
  );
  for (const format of FORMATS) {
    const c = mkfsCommand({ format, stagingDir: "/s", output: "/o", epoch: 1, uuid: "u" });
    assert.ok(c.args.includes("/s") && c.args.includes("/o"), format);
  }
});
