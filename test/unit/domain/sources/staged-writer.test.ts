import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { open, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { StagedWriter } from "../../../../src/domain/sources/staged-writer.js";
import { tempDir } from "../../../helpers/tmp.js";

test("views of any size land in order at the right offset, hashed, waiting when every slab is busy", async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, "out");
  await writeFile(file, "HEAD");
  const data = randomBytes(3 << 20);
  const handle = await open(file, "r+");
  const hash = createHash("sha256");
  // Tiny slabs, so writes queue up and write() has to say "wait".
  const writer = new StagedWriter(handle, {
    maxView: 8192,
    start: 4,
    hash,
    slabs: 2,
    slabBytes: 16384,
    syncEvery: 256 * 1024,
  });
  let waits = 0;
  let x = 7;
  for (let at = 0; at < data.length;) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const n = Math.min(1 + (x % 8192), data.length - at);
    // The view is lent: scribbling over it after write() returns must not change the file.
    const lent = Buffer.from(data.subarray(at, at + n));
    const wait = writer.write(lent);
    lent.fill(0);
    at += n;
    if (wait) {
      waits++;
      await wait;
    }
  }
  await writer.flush();
  await handle.close();
  assert.ok(waits > 0, "never waited for a slab");
  assert.equal(writer.position, 4 + data.length);
  const written = await readFile(file);
  assert.equal(written.subarray(0, 4).toString(), "HEAD");
  assert.ok(written.subarray(4).equals(data));
  assert.equal(hash.digest("hex"), createHash("sha256").update(data).digest("hex"));
});

test("views read straight into space() and copied views mix, and the file is still exact", async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, "out");
  const data = randomBytes(1 << 20);
  const handle = await open(file, "w");
  const writer = new StagedWriter(handle, { maxView: 4096, slabs: 2, slabBytes: 12288 });
  let inPlace = 0;
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = Math.min(1 + ((i * 2654435761) % 4096), data.length - at);
    const space = i % 3 === 0 ? undefined : writer.space();
    let view: Buffer;
    if (space) {
      assert.equal(space.length, 4096);
      data.copy(space, 0, at, at + n); // as a socket read would
      view = space.subarray(0, n);
      inPlace++;
    } else {
      view = Buffer.from(data.subarray(at, at + n));
    }
    at += n;
    const wait = writer.write(view);
    if (wait) await wait;
  }
  await writer.flush();
  await handle.close();
  assert.ok(inPlace > 100);
  assert.ok((await readFile(file)).equals(data));
});

test("a failed write is reported by flush() and by the next write()", async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, "ro");
  await writeFile(file, "");
  const handle = await open(file, "r"); // read-only: every write fails with EBADF
  const writer = new StagedWriter(handle, { maxView: 1024, slabs: 2, slabBytes: 4096 });
  let failure: unknown;
  try {
    for (let i = 0; i < 100; i++) {
      const wait = writer.write(Buffer.alloc(1024, 1));
      if (wait) await wait;
    }
    await writer.flush();
  } catch (e) {
    failure = e;
  }
  await handle.close();
  assert.equal((failure as NodeJS.ErrnoException)?.code, "EBADF");
  assert.equal((writer.failure as NodeJS.ErrnoException).code, "EBADF");
  await assert.rejects(writer.write(Buffer.alloc(1)) as Promise<void>, { code: "EBADF" });
});
