import assert from "node:assert/strict";
import { test } from "node:test";
import { planDdi } from "../../../../src/domain/build/ddi-writer.js";

test("partitions start at 1 MiB, follow each other 4096-aligned, and the backup GPT fits after", () => {
  const plan = planDdi(200 * 4096, 4096, true);
  assert.deepEqual(plan.data, { designator: "root", offset: 1048576, size: 819200 });
  // 200 blocks at 128 digests a block: superblock block, one top block, two level-0 blocks.
  assert.deepEqual(plan.verity, {
    designator: "root-verity",
    offset: 1048576 + 819200,
    size: 16384,
  });
  assert.deepEqual(plan.signature, {
    designator: "root-verity-sig",
    offset: 1048576 + 819200 + 16384,
    size: 16384,
  });
  assert.equal(plan.totalSize % 4096, 0);
  assert.ok(plan.totalSize >= plan.signature.offset + 16384 + 33 * 512);
});

test("unsigned: no signature partition; 512-byte verity blocks make a bigger hash area", () => {
  const plan = planDdi(4096 * 1024, 512, false);
  assert.equal(plan.signature, undefined);
  assert.ok(plan.verity.size > planDdi(4096 * 1024, 4096, false).verity.size);
});
