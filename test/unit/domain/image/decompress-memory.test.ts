// Decompressing many gzip blocks back to back, with no other I/O to turn the event loop, keeps
// memory flat: Node frees a finished inflater's native state only on a later turn, so the
// decompressor must yield now and then (the fuzz suite found ~15 KiB piling up per block).
import { test } from "node:test";
import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import { decompressorFor } from "../../../../src/domain/image/decompress/index.js";

test("20,000 gzip blocks, good and corrupt, in a tight loop do not pile up native memory", async () => {
  const gzip = decompressorFor("gzip");
  const good = deflateSync(Buffer.alloc(8192, 7));
  const bad = Buffer.from(good);
  bad[bad.length - 3] = (bad[bad.length - 3] as number) ^ 0xff;
  const before = process.memoryUsage().external;
  for (let i = 0; i < 20_000; i++) {
    try {
      await gzip(i % 2 ? bad : good, 8192);
    } catch {
      // corrupt blocks are rejected; the point is what they leave behind
    }
  }
  const grownMiB = (process.memoryUsage().external - before) / 2 ** 20;
  assert.ok(grownMiB < 64, `external memory grew by ${grownMiB.toFixed(0)} MiB`);
});
