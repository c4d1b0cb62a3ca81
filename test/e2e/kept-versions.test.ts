// Issue 24 item 10, end to end: a kept version carries the SHA-256 it was fetched with; one whose
// file was altered on disk (a byte flipped in place) is refused by `install NAME@VERSION`,
// `rollback` and `upgrade` alike with a sentence naming the file, and the current version stays
// current; the same version untouched is taken by each. A record an older extctl wrote (no
// digest) is admitted under the policy and gets its digest. Runs under umask 000, so the modes of
// what the versions dir holds are checked too. Real registry, real HTTPS catalog, real CLI.
import assert from "node:assert/strict";
import { lstat, open, readFile, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { runExtctl } from "../helpers/cli.js";
import { catalogFixture, ok, sha256Of, type Published } from "../helpers/catalog-fixture.js";
import { requirePeers } from "../helpers/peers.js";
import { tempRoot } from "../helpers/tmp.js";

const STORE = "var/lib/kairos/extensions";
const PEERS = ["docker-registry", "mksquashfs", "openssl"];
const UMASK_000 = ["sh", "-c", 'umask 000; exec "$@"', "sh"];

interface Record_ {
  versions: { version: string; file: string; sha256?: string }[];
}

/** Flips one byte in the middle of `file`, in place (same inode, same size). */
async function flipByte(file: string): Promise<void> {
  const handle = await open(file, "r+");
  try {
    const { size } = await handle.stat();
    const at = Math.floor(size / 2);
    const one = Buffer.alloc(1);
    await handle.read(one, 0, 1, at);
    one[0] = (one[0] as number) ^ 0xff;
    await handle.write(one, 0, 1, at);
  } finally {
    await handle.close();
  }
}

test("a kept version altered on disk is refused by install NAME@VERSION, rollback and upgrade; untouched it is taken", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const f = await catalogFixture(t);
  const v1 = await f.publishVersion("hello", "1.0.0");
  const v2 = await f.publishVersion("hello", "2.0.0");
  const catalog = (latest: string, tags: Published[]) =>
    f.catalogJson({
      hello: { latest, tags: tags.map((p) => ({ version: p.version, published: p })) },
    });
  const url = f.serveCatalog("releases.json", catalog("2.0.0", [v1, v2]));
  const older = f.serveCatalog("older.json", catalog("1.0.0", [v1, v2]));
  const root = await tempRoot(t);
  const cli = (...args: string[]) =>
    runExtctl(["--root", root, "sysext", ...args], { prefix: UMASK_000 });
  const current = path.join(root, STORE, "hello.raw");
  const dir = path.join(root, STORE, ".versions/hello");
  const record = async () =>
    JSON.parse(await readFile(path.join(dir, "record.json"), "utf8")) as Record_;

  ok(await cli("install", "hello@1.0.0", "--catalog", url, ...f.net), "install 1.0.0");
  ok(await cli("enable", "hello", "--common"), "enable");
  // Unpinned (the catalog's latest): upgrade may then take what another catalog calls latest.
  ok(await cli("install", "hello", "--catalog", url, ...f.net), "install latest 2.0.0");
  assert.equal(await sha256Of(current), v2.sha256);
  // Each version's record carries the digest it was fetched with.
  const entries = (await record()).versions;
  assert.deepEqual(
    entries.map((e) => [e.version, e.sha256]),
    [
      ["1.0.0", v1.sha256],
      ["2.0.0", v2.sha256],
    ],
  );
  // Made under umask 000: the versions dirs 0755, the record and the images 0644.
  for (const p of [".versions", ".versions/hello", ".versions/hello/record.json"])
    assert.equal(
      ((await lstat(path.join(root, STORE, p))).mode & 0o7777).toString(8),
      p.endsWith(".json") ? "644" : "755",
      p,
    );
  for (const name of await readdir(dir))
    assert.equal(((await lstat(path.join(dir, name))).mode & 0o777).toString(8), "644", name);

  const kept = path.join(dir, entries.find((e) => e.version === "1.0.0")?.file ?? "");
  await flipByte(kept);
  const refusedBecause =
    /\.versions\/hello\/1\.0\.0-[0-9a-f]+\.raw changed since it was fetched \(SHA-256 [0-9a-f]{64} then, [0-9a-f]{64} now\)/;

  const install = await cli("install", "hello@1.0.0", "--catalog", url, ...f.net);
  assert.equal(install.code, 1, install.stderr);
  assert.match(install.stderr, /hello 1\.0\.0 cannot be current: /);
  assert.match(install.stderr, refusedBecause);
  assert.match(install.stderr, /hello 2\.0\.0 stays current/);
  assert.equal(await sha256Of(current), v2.sha256, "install: 2.0.0 stays current");

  const rollback = await cli("rollback", "hello");
  assert.equal(rollback.code, 1, rollback.stderr);
  assert.match(rollback.stderr, refusedBecause);
  assert.equal(await sha256Of(current), v2.sha256, "rollback: 2.0.0 stays current");

  const upgrade = await cli(
    "upgrade",
    "hello",
    "--catalog",
    older,
    "--allow-downgrade",
    "--json",
    ...f.net,
  );
  assert.equal(upgrade.code, 1, upgrade.stdout + upgrade.stderr);
  const item = (JSON.parse(upgrade.stdout) as { items: { action: string; reason: string }[] })
    .items[0];
  assert.equal(item?.action, "failed");
  assert.match(item?.reason ?? "", refusedBecause);
  assert.equal(await sha256Of(current), v2.sha256, "upgrade: 2.0.0 stays current");

  // The same byte flipped back: the kept version is what was fetched, and each command takes it.
  await flipByte(kept);
  ok(await cli("install", "hello@1.0.0", "--catalog", url, ...f.net), "install the kept 1.0.0");
  assert.equal(await sha256Of(current), v1.sha256);
  ok(await cli("rollback", "hello"), "rollback to 2.0.0");
  assert.equal(await sha256Of(current), v2.sha256);
  const down = await cli("upgrade", "hello", "--catalog", older, "--allow-downgrade", ...f.net);
  assert.equal(down.code, 0, down.stderr);
  assert.equal(await sha256Of(current), v1.sha256);
  ok(await cli("rollback", "hello"), "rollback to 2.0.0 again");
  assert.equal(await sha256Of(current), v2.sha256);

  // A record an older extctl wrote has no digests: the version is admitted under the policy and
  // its digest recorded, so that from then on an altered file is caught.
  const legacy = await record();
  for (const e of legacy.versions) delete e.sha256;
  await writeFile(path.join(dir, "record.json"), JSON.stringify(legacy));
  const adopted = ok(
    await cli("install", "hello@1.0.0", "--catalog", url, ...f.net),
    "install, legacy",
  );
  assert.match(
    adopted.stderr,
    /kept by an older extctl without its SHA-256; admitted under the \w+ policy and its SHA-256 recorded now/,
  );
  assert.equal((await record()).versions.find((e) => e.version === "1.0.0")?.sha256, v1.sha256);
  ok(await cli("rollback", "hello"), "rollback to 2.0.0, legacy");
  await flipByte(kept);
  const caught = await cli("rollback", "hello", "--to", "1.0.0");
  assert.equal(caught.code, 1, caught.stderr);
  assert.match(caught.stderr, refusedBecause);
  assert.equal(await sha256Of(current), v2.sha256);
});
