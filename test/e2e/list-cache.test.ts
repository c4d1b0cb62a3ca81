// `list` with the store's summary cache, against real mksquashfs images: an image rewritten in
// place (same size, new mtime; or even the old mtime put back) is read again, never shown from
// the cache; an image changed in the last 2 s is not cached yet; `list --verify` reads every
// image whatever the cache says.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, open, readFile, stat, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { runExtctl } from "../helpers/cli.js";
import { requirePeers, run } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";

const CACHE = ".extctl-cache.json";

/** list caches only files whose times are 2 s old (the kernel's clock is coarse): wait that out. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 2100));

async function cachedNames(file: string): Promise<string[]> {
  return Object.keys((JSON.parse(await readFile(file, "utf8")) as { entries: object }).entries);
}

/** Rewrites `from` as `to` (same length) inside the file, in place: same size, same inode. */
async function patchInPlace(file: string, from: string, to: string): Promise<void> {
  assert.equal(from.length, to.length);
  const bytes = await readFile(file);
  const at = bytes.indexOf(from);
  assert.ok(at >= 0, `${from} is in the image (stored uncompressed)`);
  const handle = await open(file, "r+");
  try {
    await handle.write(Buffer.from(to), 0, to.length, at);
  } finally {
    await handle.close();
  }
}

async function listed(root: string): Promise<{ name: string; version?: string }[]> {
  const result = await runExtctl(["--root", root, "sysext", "list", "--json"]);
  assert.equal(result.code, 0, result.stderr);
  return (JSON.parse(result.stdout) as { images: { name: string; version?: string }[] }).images;
}

test("list re-reads an image changed in place (same size, new mtime; old mtime put back)", async (t) => {
  if (!requirePeers(t, ["mksquashfs"])) return;
  const dir = await tempDir(t);
  const root = await tempRoot(t);
  const tree = path.join(dir, "tree");
  await mkdir(path.join(tree, "usr/lib/extension-release.d"), { recursive: true });
  await writeFile(
    path.join(tree, "usr/lib/extension-release.d/extension-release.tool"),
    "ID=_any\nSYSEXT_VERSION_ID=1.0.0\n",
  );
  const store = path.join(root, "var/lib/kairos/extensions");
  await mkdir(store, { recursive: true });
  const image = path.join(store, "tool.raw");
  // Uncompressed, so that the release file's bytes can be found and changed in the image.
  run("mksquashfs", [
    tree,
    image,
    "-noappend",
    "-all-root",
    "-quiet",
    "-no-progress",
    "-noI",
    "-noD",
    "-noF",
    "-noX",
  ]);

  // Just written: listed, but not cached yet. "Just" is a 2 s window, which a loaded machine
  // can overrun between the write and list's stat: the file is touched right before the list,
  // and the assertion holds only when the list ran inside the window.
  const touched = Date.now();
  await utimes(image, new Date(touched), new Date(touched));
  assert.deepEqual(
    (await listed(root)).map((i) => i.version),
    ["1.0.0"],
  );
  const cacheFile = path.join(store, CACHE);
  if (Date.now() - touched < 1900) assert.deepEqual(await cachedNames(cacheFile), []);
  else t.diagnostic(`list took ${Date.now() - touched} ms, past the 2 s window: not checked`);
  await settle();
  assert.deepEqual(
    (await listed(root)).map((i) => i.version),
    ["1.0.0"],
  );
  assert.deepEqual(await cachedNames(cacheFile), ["tool.raw"]);
  const written = await stat(cacheFile, { bigint: true });
  assert.ok(written.isFile(), "the first list wrote the cache");
  // Unchanged: served from the cache, which is not rewritten.
  assert.deepEqual(
    (await listed(root)).map((i) => i.version),
    ["1.0.0"],
  );
  assert.equal((await stat(cacheFile, { bigint: true })).mtimeNs, written.mtimeNs);

  const before = await stat(image);
  await patchInPlace(image, "SYSEXT_VERSION_ID=1.0.0", "SYSEXT_VERSION_ID=2.0.0");
  // A new mtime (set explicitly: a coarse clock could give the old one).
  await utimes(image, before.atime, new Date(before.mtimeMs + 5000));
  assert.equal((await stat(image)).size, before.size);
  assert.deepEqual(
    (await listed(root)).map((i) => i.version),
    ["2.0.0"],
  );

  // Changed again with the old mtime put back: the ctime still tells.
  await settle();
  assert.deepEqual(
    (await listed(root)).map((i) => i.version),
    ["2.0.0"],
  );
  const second = await stat(image);
  await patchInPlace(image, "SYSEXT_VERSION_ID=2.0.0", "SYSEXT_VERSION_ID=3.0.0");
  await utimes(image, second.atime, second.mtime);
  assert.deepEqual(
    (await listed(root)).map((i) => i.version),
    ["3.0.0"],
  );

  // A corrupt cache is rebuilt, the listing unchanged.
  await settle();
  await writeFile(cacheFile, "{ torn");
  assert.deepEqual(
    (await listed(root)).map((i) => i.version),
    ["3.0.0"],
  );
  assert.deepEqual(await cachedNames(cacheFile), ["tool.raw"]);

  // A poisoned cache entry (matching key, lying summary) is not used by --verify.
  const cache = JSON.parse(await readFile(cacheFile, "utf8")) as {
    entries: Record<string, { summary: { version?: string } }>;
  };
  cache.entries["tool.raw"]!.summary.version = "9.9.9";
  await writeFile(cacheFile, JSON.stringify(cache));
  // Plain list believes it (the key still matches: it is only a display cache)...
  assert.deepEqual(
    (await listed(root)).map((i) => i.version),
    ["9.9.9"],
  );
  // ...--verify reads the image.
  const verified = await runExtctl(["--root", root, "sysext", "list", "--verify", "--json"]);
  assert.equal(verified.code, 0, verified.stderr);
  assert.deepEqual(
    (JSON.parse(verified.stdout) as { images: { version?: string }[] }).images.map(
      (i) => i.version,
    ),
    ["3.0.0"],
  );
});
