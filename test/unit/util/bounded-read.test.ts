import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, symlink, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { readBounded, readBoundedOptional } from "../../../src/util/bounded-read.js";

async function withDir(work: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), "extctl-bounded-"));
  try {
    await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("readBounded reads a regular file whole, up to the cap", async () => {
  await withDir(async (dir) => {
    await writeFile(path.join(dir, "f"), "hello");
    assert.equal((await readBounded(path.join(dir, "f"), { cap: 5 })).toString(), "hello");
    await assert.rejects(readBounded(path.join(dir, "f"), { cap: 4 }), /is larger than 4 bytes/);
  });
});

test("readBounded refuses a FIFO without blocking, and a device without reading it", async () => {
  await withDir(async (dir) => {
    execFileSync("mkfifo", [path.join(dir, "p")]);
    await assert.rejects(
      readBounded(path.join(dir, "p"), { cap: 10, what: "the policy" }),
      /p \(the policy\) is a FIFO, not a regular file/,
    );
    await assert.rejects(readBounded("/dev/zero", { cap: 10 }), /is a character device/);
  });
});

test("readBounded caps what it reads from /proc, whose files say size 0", async () => {
  const text = (await readBounded("/proc/self/status", { cap: 1 << 16 })).toString();
  assert.match(text, /^Name:/);
  await assert.rejects(readBounded("/proc/self/status", { cap: 8 }), /larger than 8 bytes/);
});

test("readBounded with noFollow refuses a symlink; a sparse huge file fails by its size", async () => {
  await withDir(async (dir) => {
    await writeFile(path.join(dir, "f"), "x");
    await symlink("f", path.join(dir, "l"));
    await assert.rejects(
      readBounded(path.join(dir, "l"), { cap: 8, noFollow: true }),
      /is a symlink/,
    );
    assert.equal((await readBounded(path.join(dir, "l"), { cap: 8 })).toString(), "x");
    await truncate(path.join(dir, "f"), 2 ** 33);
    await assert.rejects(readBounded(path.join(dir, "f"), { cap: 1024 }), /larger than 1024/);
    assert.equal(await readBoundedOptional(path.join(dir, "missing"), { cap: 8 }), undefined);
  });
});
