// inspect against hostile and very large squashfs images, through the real CLI: a few KiB of
// shared directories stay bounded in memory, 200,000 entries list without a stack overflow,
// and crafted names and release fields cannot inject rows or terminal sequences.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFile, mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { EXTCTL_BIN, runExtctl } from "../helpers/cli.js";
import { requirePeers, run } from "../helpers/peers.js";
import { manyEntriesSquashfs, sharedDirectoryBomb } from "../helpers/squashfs-craft.js";
import { tempDir } from "../helpers/tmp.js";

/** Runs the CLI with a 256 MiB heap under /usr/bin/time -v: exit code, stderr, peak RSS. */
function inspectBounded(args: string[]): { code: number; stderr: string; rssKiB: number } {
  const r = spawnSync(
    "/usr/bin/time",
    ["-v", process.execPath, "--max-old-space-size=256", EXTCTL_BIN, "inspect", ...args],
    { encoding: "utf8", timeout: 120_000, maxBuffer: 64 * 1024 * 1024 },
  );
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  assert.ok(rss, r.stderr);
  return { code: r.status ?? 128, stderr: r.stderr, rssKiB: Number(rss[1]) };
}

test("a few KiB of squashfs directories all pointing at the next level: a clear error, bounded memory", async (t) => {
  if (!requirePeers(t, ["mksquashfs", "/usr/bin/time"], {})) return;
  const work = await tempDir(t, "extctl-bomb-");
  // 8 levels of 8 entries sharing one directory each: 8^8 = 16.7M entries to a naive walk.
  const image = await sharedDirectoryBomb(work, 8, 8);
  assert.ok(image.length <= 16 * 1024, `the bomb is ${image.length} bytes`);
  const file = path.join(work, "bomb.sysext.raw");
  await writeFile(file, image);
  for (const args of [
    ["--files", file],
    ["--tree", file],
    ["--json", "--files", file],
  ]) {
    const r = inspectBounded(args);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /directory \/usr\/d00.* is a directory already listed under another path/,
    );
    assert.ok(r.rssKiB < 200 * 1024, `peak RSS ${r.rssKiB} KiB`);
  }
  // Plain inspect reads only what it prints: no walk, so the bomb is never expanded.
  const plain = inspectBounded([file]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.ok(plain.rssKiB < 200 * 1024, `peak RSS ${plain.rssKiB} KiB`);
});

test("inspect --files lists a squashfs of 200,000 entries", async (t) => {
  if (!requirePeers(t, ["mksquashfs", "/usr/bin/time"], {})) return;
  const work = await tempDir(t, "extctl-many-");
  const file = path.join(work, "many.sysext.raw");
  manyEntriesSquashfs(file, 200_000);
  const r = spawnSync(process.execPath, [EXTCTL_BIN, "inspect", "--files", file], {
    encoding: "utf8",
    timeout: 180_000,
    maxBuffer: 256 * 1024 * 1024,
  });
  assert.equal(r.status, 0, r.stderr.slice(0, 2000));
  const lines = r.stdout.split("\n");
  assert.ok(lines.some((l) => /\s0\s+\/usr\/share\/d0399\/f0199999$/.test(l)));
  // Every file, its 400 directories, usr/share, usr and the root.
  assert.equal(lines.filter((l) => /^[-d]r/.test(l)).length, 200_000 + 400 + 3);
});

test("crafted names and release fields are printed escaped: no fake rows, no terminal sequences", async (t) => {
  if (!requirePeers(t, ["mksquashfs"], {})) return;
  const work = await tempDir(t, "extctl-escape-");
  const src = path.join(work, "tree");
  await mkdir(path.join(src, "usr/lib/extension-release.d"), { recursive: true });
  await mkdir(path.join(src, "usr/bin"), { recursive: true });
  // A name cannot hold "/", so the fake row names its path with dashes.
  const fakeRow = "-rwsr-xr-x  0:0  1  usr-bin-injected";
  await writeFile(path.join(src, "usr/bin", `tool\n${fakeRow}\x1b[2J`), "x");
  await writeFile(
    path.join(src, "usr/lib/extension-release.d/extension-release.evil"),
    "ID=_any\nSYSEXT_LEVEL=1\x1b]0;pwned\x07\rVERSION_ID=fake\n",
  );
  const file = path.join(work, "evil.sysext.raw");
  run("mksquashfs", [src, file, "-noappend", "-quiet", "-no-progress", "-all-root"]);
  for (const args of [
    ["inspect", "--files", file],
    ["inspect", file],
  ]) {
    const r = await runExtctl(args);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(
      // eslint-disable-next-line no-control-regex
      !/[\x00-\x08\x0b-\x1f\x7f]/.test(r.stdout),
      `raw control characters in ${args.join(" ")}`,
    );
    assert.ok(!r.stdout.split("\n").some((l) => l.startsWith("-rwsr")), "a fake row was printed");
    assert.match(r.stdout, /SYSEXT_LEVEL=1\\x1b\]0;pwned\\x07/);
    if (args.includes("--files"))
      assert.match(
        r.stdout,
        /\/usr\/bin\/tool\\n-rwsr-xr-x {2}0:0 {2}1 {2}usr-bin-injected\\x1b\[2J/,
      );
  }
  // JSON stays JSON: the exact name comes back.
  const json = await runExtctl(["inspect", "--json", "--files", file]);
  const parsed = JSON.parse(json.stdout) as { files: { path: string }[] };
  assert.ok(parsed.files.some((f) => f.path === `/usr/bin/tool\n${fakeRow}\x1b[2J`));
});

test("a FIFO where an image or a sidecar belongs is refused at once, never read", async (t) => {
  if (!requirePeers(t, ["mksquashfs", "mkfifo", "veritysetup"], {})) return;
  const work = await tempDir(t, "extctl-fifo-");
  const tree = path.join(work, "tree");
  await mkdir(path.join(tree, "usr/lib/extension-release.d"), { recursive: true });
  await writeFile(
    path.join(tree, "usr/lib/extension-release.d/extension-release.bare"),
    "ID=_any\n",
  );
  const image = path.join(work, "bare.raw");
  run("mksquashfs", [tree, image, "-quiet", "-noappend", "-all-root"]);
  const fifo = path.join(work, "fifo.raw");
  run("mkfifo", [fifo]);
  // No writer ever opens these FIFOs: an open or read that blocks would hang to the timeout.
  for (const args of [
    ["inspect", fifo],
    ["verify", fifo],
  ]) {
    const r = spawnSync(process.execPath, [EXTCTL_BIN, ...args], {
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(r.signal, null, `${args[0]} hung on a FIFO`);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /fifo\.raw is a FIFO/);
  }
  // Sidecars as FIFOs beside a real bare image. verify reads .roothash and .p7s only once a
  // .verity exists, so a real hash tree (veritysetup) sits beside those.
  const hashTree = path.join(work, "hash.tree");
  run("veritysetup", ["format", image, hashTree]);
  for (const sidecar of ["bare.verity", "bare.roothash", "bare.roothash.p7s"]) {
    const fifoPath = path.join(work, sidecar);
    run("mkfifo", [fifoPath]);
    if (sidecar !== "bare.verity") await copyFile(hashTree, path.join(work, "bare.verity"));
    // inspect shows the .roothash and .p7s sidecars; it does not open .verity.
    for (const verb of sidecar === "bare.verity" ? ["verify"] : ["inspect", "verify"]) {
      const r = spawnSync(process.execPath, [EXTCTL_BIN, verb, image], {
        encoding: "utf8",
        timeout: 20_000,
      });
      assert.equal(r.signal, null, `${verb} hung on the FIFO ${sidecar}`);
      assert.notEqual(r.status, 0, `${verb} with a FIFO ${sidecar}: ${r.stdout}`);
      assert.match(r.stderr, new RegExp(`${sidecar.replace(/\./g, "\\.")}.* is a FIFO`));
    }
    await rm(fifoPath);
    await rm(path.join(work, "bare.verity"), { force: true });
  }
});
