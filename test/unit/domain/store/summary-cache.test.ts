// The store's summary cache: a hit only for the very file it was made from (device, inode,
// size, mtime, ctime) under the same host, and any bad cache file is ignored and rebuilt.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  chmod,
  chown,
  lstat,
  mkdir,
  readFile,
  readdir,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import path from "node:path";
import {
  SUMMARY_CACHE_FILE,
  SUMMARY_CACHE_FORMAT,
  SummaryCache,
  type CachedSummary,
  type FileIdentity,
} from "../../../../src/domain/store/summary-cache.js";
import { tempDir } from "../../../helpers/tmp.js";

const HOST = JSON.stringify({ systemd: 257, host: { osRelease: { ID: "debian" } } });
const ID: FileIdentity = {
  dev: 1,
  ino: 2,
  size: 3,
  mtimeMs: 1_764_000_000_000.125,
  ctimeMs: 1_764_000_000_500.25,
};
const SUMMARY: CachedSummary = {
  version: "1.0",
  format: "squashfs",
  signaturePartition: false,
  sidecarCounts: true,
  compatible: true,
};
const ALL = new Set(["a.raw"]);

async function saved(dir: string): Promise<void> {
  const cache = await SummaryCache.load(dir, HOST);
  cache.put("a.raw", ID, SUMMARY);
  assert.equal(await cache.save(ALL), true);
}

test("a summary saved for a file is found again for the same file and host", async (t) => {
  const dir = await tempDir(t);
  const first = await SummaryCache.load(dir, HOST);
  assert.equal(first.miss, "absent");
  await saved(dir);
  const again = await SummaryCache.load(dir, HOST);
  assert.equal(again.miss, undefined);
  assert.deepEqual(again.lookup("a.raw", { ...ID }), SUMMARY);
  // Nothing changed: nothing is written.
  assert.equal(await again.save(ALL), false);
  // No temp file left behind.
  assert.deepEqual(await readdir(dir), [SUMMARY_CACHE_FILE]);
});

test("any change of device, inode, size, mtime or ctime (in ns) is a miss", async (t) => {
  const dir = await tempDir(t);
  await saved(dir);
  const cache = await SummaryCache.load(dir, HOST);
  for (const field of ["dev", "ino", "size"] as const)
    assert.equal(cache.lookup("a.raw", { ...ID, [field]: ID[field] + 1 }), undefined, field);
  // A time a microsecond off is another file (the key keeps the fraction of a millisecond).
  for (const field of ["mtimeMs", "ctimeMs"] as const)
    assert.equal(cache.lookup("a.raw", { ...ID, [field]: ID[field] + 0.001 }), undefined, field);
  assert.equal(cache.lookup("b.raw", ID), undefined);
});

test("another host (systemd version, os-release) or cache format makes the whole file stale", async (t) => {
  const dir = await tempDir(t);
  await saved(dir);
  const other = await SummaryCache.load(dir, JSON.stringify({ systemd: 252 }));
  assert.equal(other.miss, "stale");
  assert.equal(other.lookup("a.raw", ID), undefined);
  const file = path.join(dir, SUMMARY_CACHE_FILE);
  const content = JSON.parse(await readFile(file, "utf8")) as { format: number };
  await writeFile(file, JSON.stringify({ ...content, format: SUMMARY_CACHE_FORMAT + 1 }));
  const newer = await SummaryCache.load(dir, HOST);
  assert.equal(newer.miss, "stale");
  assert.equal(newer.lookup("a.raw", ID), undefined);
});

test("a corrupt cache file, or entries of the wrong shape, are ignored and rebuilt", async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, SUMMARY_CACHE_FILE);
  for (const bad of ["{not json", "null", "[]", '{"format":1}', ""]) {
    await writeFile(file, bad);
    const cache = await SummaryCache.load(dir, HOST);
    assert.equal(cache.miss, "corrupt", bad);
    assert.equal(cache.lookup("a.raw", ID), undefined);
  }
  await writeFile(
    file,
    JSON.stringify({
      format: SUMMARY_CACHE_FORMAT,
      host: HOST,
      entries: { "a.raw": { key: "1:2:3:4:5", summary: { format: 7 } } },
    }),
  );
  const shaped = await SummaryCache.load(dir, HOST);
  assert.equal(shaped.lookup("a.raw", ID), undefined);
  shaped.put("a.raw", ID, SUMMARY);
  assert.equal(await shaped.save(ALL), true);
  assert.deepEqual((await SummaryCache.load(dir, HOST)).lookup("a.raw", ID), SUMMARY);
});

test("a symlinked cache file is never followed: not read, and replaced rather than written through", async (t) => {
  const dir = await tempDir(t);
  const elsewhere = await tempDir(t);
  // A valid cache elsewhere, planted by link: it must not be believed.
  await saved(elsewhere);
  const target = path.join(elsewhere, SUMMARY_CACHE_FILE);
  const before = await readFile(target, "utf8");
  await symlink(target, path.join(dir, SUMMARY_CACHE_FILE));
  const cache = await SummaryCache.load(dir, HOST);
  assert.equal(cache.miss, "symlink");
  assert.equal(cache.lookup("a.raw", ID), undefined);
  cache.put("a.raw", { ...ID, ino: 9 }, SUMMARY);
  assert.equal(await cache.save(ALL), true);
  assert.equal(await readFile(target, "utf8"), before);
  assert.ok((await lstat(path.join(dir, SUMMARY_CACHE_FILE))).isFile());
});

test("a cache file that is not a regular file is not read", async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, SUMMARY_CACHE_FILE));
  assert.equal((await SummaryCache.load(dir, HOST)).miss, "not-a-file");
});

test("entries of images gone from the store are dropped on save", async (t) => {
  const dir = await tempDir(t);
  await saved(dir);
  const cache = await SummaryCache.load(dir, HOST);
  assert.equal(await cache.save(new Set(["other.raw"])), true);
  assert.equal((await SummaryCache.load(dir, HOST)).lookup("a.raw", ID), undefined);
});

test("a store that cannot be written keeps working without a cache", async (t) => {
  const dir = await tempDir(t);
  const cache = await SummaryCache.load(path.join(dir, "missing"), HOST);
  cache.put("a.raw", ID, SUMMARY);
  assert.equal(await cache.save(ALL), false);
});

test("a cache another user owns, or others can write, is not believed; in a dir others can write it is not saved either", async (t) => {
  const dir = await tempDir(t);
  await saved(dir);
  const file = path.join(dir, SUMMARY_CACHE_FILE);
  await chown(file, 65534, 65534);
  const foreign = await SummaryCache.load(dir, HOST);
  assert.equal(foreign.miss, "untrusted");
  assert.match(foreign.distrust ?? "", /owned by uid 65534/);
  assert.equal(foreign.lookup("a.raw", ID), undefined);
  // In a directory only root writes, one of ours replaces it.
  foreign.put("a.raw", ID, SUMMARY);
  assert.equal(await foreign.save(ALL), true);
  assert.equal((await stat(file)).uid, process.getuid?.());
  await chmod(file, 0o666);
  assert.equal((await SummaryCache.load(dir, HOST)).miss, "untrusted");
  await chmod(file, 0o644);
  assert.deepEqual((await SummaryCache.load(dir, HOST)).lookup("a.raw", ID), SUMMARY);
  await chmod(dir, 0o777);
  const open = await SummaryCache.load(dir, HOST);
  assert.equal(open.miss, "untrusted");
  assert.match(open.distrust ?? "", /writable by group and others \(mode 0777\)/);
  open.put("a.raw", { ...ID, ino: 7 }, SUMMARY);
  assert.equal(await open.save(ALL), false);
});
