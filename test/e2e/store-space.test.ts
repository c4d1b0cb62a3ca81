// A store on a small file system: an image whose size is known (file:, https: with
// Content-Length) is refused before a byte is written, in human sizes with the free space, and
// --max-size is named only when it is the limit.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { runExtctl } from "../helpers/cli.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { withHttpsServer } from "../helpers/https-server.js";
import { stubImage } from "../helpers/stub-image.js";

const STORE = "var/lib/kairos/extensions";

/** A root whose store is a 2 MiB tmpfs; `work` runs with it, and it is unmounted after. */
async function withSmallStore(
  t: TestContext,
  work: (root: string) => Promise<void>,
): Promise<void> {
  const root = await tempRoot(t);
  const store = path.join(root, STORE);
  await mkdir(store, { recursive: true });
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", store]);
  try {
    await work(root);
  } finally {
    // Before tempRoot's own cleanup removes the directory.
    execFileSync("umount", ["-l", store]);
  }
}

const image = randomBytes(6 << 20);
stubImage("big").copy(image, 0, 0, 64);

test("file: an image larger than the store's free space is refused before writing, with both sizes", async (t) => {
  if (!requirePeers(t, [], { root: true })) return;
  await withSmallStore(t, async (root) => {
    const file = path.join(await tempDir(t), "big.raw");
    await writeFile(file, image);
    const run = await runExtctl(["--root", root, "sysext", "install", `file:${file}`]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(
      run.stderr,
      /needs 6\.0 MiB, more than [\d.]+ [KM]iB, the free space of the store's file system/,
    );
    assert.match(run.stderr, /free space there/);
    assert.doesNotMatch(run.stderr, /--max-size/);
    assert.deepEqual(await readdir(path.join(root, STORE)), []);
  });
});

test("https: a Content-Length past the free space is refused before the body is read; --max-size only when it is the limit", async (t) => {
  if (!requirePeers(t, ["openssl"], { root: true })) return;
  const server = await withHttpsServer(t, { dir: await tempDir(t) });
  server.addFile("big.raw", image);
  await withSmallStore(t, async (root) => {
    const full = await runExtctl([
      "--root",
      root,
      "sysext",
      "install",
      server.url("big.raw"),
      "--ca-cert",
      server.caCert,
    ]);
    assert.equal(full.code, 1, full.stderr);
    assert.match(full.stderr, /the free space of the store's file system/);
    assert.deepEqual(await readdir(path.join(root, STORE)), []);
  });

  const roomy = await tempRoot(t);
  const capped = await runExtctl([
    "--root",
    roomy,
    "sysext",
    "install",
    server.url("big.raw"),
    "--ca-cert",
    server.caCert,
    "--max-size",
    "1M",
  ]);
  assert.equal(capped.code, 1, capped.stderr);
  assert.match(capped.stderr, /needs 6\.0 MiB, more than 1\.0 MiB, what --max-size allows/);
  assert.match(capped.stderr, /raise --max-size/);
});
