import assert from "node:assert/strict";
import { test } from "node:test";
import { BufferSource } from "../../../../src/util/bytes.js";
import { readGpt } from "../../../../src/domain/image/gpt.js";
import { encodeGpt, GPT_READ_ONLY } from "../../../../src/domain/build/gpt-writer.js";

function disk(totalSectors: number) {
  const spec = {
    diskGuid: "11111111-2222-4333-8444-555555555555",
    totalSectors,
    partitions: [
      {
        typeGuid: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
        uuid: "a689cab7-1a26-f754-10e6-50b502406a24",
        label: "root-x86-64",
        firstLba: 2048,
        lastLba: 2055,
        attributes: GPT_READ_ONLY,
      },
      {
        typeGuid: "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
        uuid: "e1a7a464-1702-933c-a5fb-286b5fa3ba33",
        label: "root-x86-64-verity",
        firstLba: 2056,
        lastLba: 2063,
      },
    ],
  };
  const gpt = encodeGpt(spec);
  const buf = Buffer.alloc(totalSectors * 512);
  gpt.primary.copy(buf, 0);
  gpt.backup.copy(buf, gpt.backupOffset);
  return { buf, gpt };
}

test("an encoded GPT reads back with its UUIDs, labels, ranges and read-only flag", async () => {
  const { buf } = disk(2104);
  const table = await readGpt(new BufferSource(buf));
  assert.equal(table.diskGuid, "11111111-2222-4333-8444-555555555555");
  assert.deepEqual(table.warnings, []);
  assert.deepEqual(
    table.partitions.map((p) => [
      p.typeGuid,
      p.uniqueGuid,
      p.name,
      p.firstLba,
      p.lastLba,
      p.readOnly,
    ]),
    [
      [
        "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
        "a689cab7-1a26-f754-10e6-50b502406a24",
        "root-x86-64",
        2048,
        2055,
        true,
      ],
      [
        "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
        "e1a7a464-1702-933c-a5fb-286b5fa3ba33",
        "root-x86-64-verity",
        2056,
        2063,
        false,
      ],
    ],
  );
});

test("the protective MBR covers the disk and the backup header sits in the last sector", () => {
  const { buf, gpt } = disk(2104);
  assert.equal(buf[450], 0xee);
  assert.equal(buf.readUInt32LE(446 + 12), 2103);
  assert.equal(buf.readUInt16LE(510), 0xaa55);
  assert.equal(gpt.backupOffset + gpt.backup.length, 2104 * 512);
  const last = buf.subarray(2103 * 512);
  assert.equal(last.subarray(0, 8).toString("ascii"), "EFI PART");
  assert.equal(last.readBigUInt64LE(24), 2103n, "backup header's own LBA");
  assert.equal(last.readBigUInt64LE(72), 2103n - 32n, "backup entries right before it");
});

test("a damaged primary header is caught by its CRC and the backup is used", async () => {
  const { buf } = disk(2104);
  buf[512 + 60] = (buf[512 + 60] ?? 0) ^ 0xff;
  const table = await readGpt(new BufferSource(buf));
  assert.equal(table.partitions.length, 2);
  assert.ok(table.warnings.length > 0);
});

test("a partition outside the usable range is refused", () => {
  assert.throws(() =>
    encodeGpt({
      diskGuid: "11111111-2222-4333-8444-555555555555",
      totalSectors: 2100,
      partitions: [
        {
          typeGuid: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
          uuid: "a689cab7-1a26-f754-10e6-50b502406a24",
          label: "x",
          firstLba: 2048,
          lastLba: 2099,
        },
      ],
    }),
  );
});
