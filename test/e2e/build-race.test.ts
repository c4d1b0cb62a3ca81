// Build TOCTOU: a source file (or a parent directory) swapped for a symlink to a root-only file
// between the walk and the copy must not put that file's bytes in an image. The swap runs at
// exactly that moment through the NODE_ENV=test hook EXTCTL_TEST_AFTER_WALK, with the real CLI.
import assert from "node:assert/strict";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { runExtctl } from "../helpers/cli.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir } from "../helpers/tmp.js";

const SECRET = "root:$6$crafted-shadow-hash-that-must-never-leak:19000:0:99999:7:::\n";

interface Setup {
  src: string;
  out: string;
  secret: string;
}

async function setup(t: TestContext): Promise<Setup> {
  const outside = await tempDir(t, "extctl-race-outside-");
  const secret = path.join(outside, "shadow");
  await writeFile(secret, SECRET, { mode: 0o600 });
  const src = await tempDir(t, "extctl-race-src-");
  await mkdir(path.join(src, "usr/lib/tool"), { recursive: true });
  await writeFile(path.join(src, "usr/lib/tool/data"), "public data\n");
  await writeFile(path.join(src, "usr/lib/tool/other"), "more public data\n");
  return { src, out: await tempDir(t, "extctl-race-out-"), secret };
}

function build(s: Setup, format: string, hook?: string) {
  return runExtctl(
    ["build", "sysext", "tool", s.src, "-o", s.out, "--arch", "amd64", "--format", format],
    { env: { NODE_ENV: "test", ...(hook ? { EXTCTL_TEST_AFTER_WALK: hook } : {}) } },
  );
}

/** No file in the output directory (image or temp) holds the secret's bytes. */
async function assertNoLeak(s: Setup): Promise<void> {
  for (const name of await readdir(s.out, { recursive: true })) {
    const file = path.join(s.out, name);
    const bytes = await readFile(file).catch(() => Buffer.alloc(0));
    for (const marker of ["crafted-shadow-hash", "LEAKED-"])
      assert.ok(!bytes.includes(Buffer.from(marker)), `${name} holds the secret`);
  }
}

const sh = (p: string) => `'${p.replace(/'/g, `'\\''`)}'`;

test("control: without a swap the same build succeeds and holds the source's bytes", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs"], { root: true })) return;
  const s = await setup(t);
  const r = await build(s, "erofs", "true");
  assert.equal(r.code, 0, r.stderr);
  const listed = await runExtctl(["inspect", "--files", path.join(s.out, "tool.sysext.raw")]);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /\s12\s+\/usr\/lib\/tool\/data\n/);
});

for (const format of ["erofs", "squashfs"] as const) {
  test(`${format}: a file swapped for a symlink to a root-only file after the walk fails the build, no image`, async (t) => {
    if (!requirePeers(t, [format === "erofs" ? "mkfs.erofs" : "mksquashfs"], { root: true }))
      return;
    const s = await setup(t);
    const data = path.join(s.src, "usr/lib/tool/data");
    const r = await build(s, format, `rm ${sh(data)} && ln -s ${sh(s.secret)} ${sh(data)}`);
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /the source file .*usr\/lib\/tool\/data was replaced by a symlink/);
    assert.deepEqual(await readdir(s.out), [], "no image and no temp files are left");
    await assertNoLeak(s);
  });
}

test("a parent directory swapped for a symlink to a directory holding the secret fails the build", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs"], { root: true })) return;
  const s = await setup(t);
  // The swapped-in directory holds root-only files under the very names the walk listed, with
  // the walk's sizes, so only the inode check can tell them apart.
  const decoy = path.join(path.dirname(s.secret), "decoy");
  await mkdir(decoy, { mode: 0o700 });
  await writeFile(path.join(decoy, "data"), "LEAKED-12345", { mode: 0o600 });
  await writeFile(path.join(decoy, "other"), "LEAKED-1234567890", { mode: 0o600 });
  const dir = path.join(s.src, "usr/lib/tool");
  const hook = `mv ${sh(dir)} ${sh(dir + ".old")} && ln -s ${sh(decoy)} ${sh(dir)}`;
  const r = await build(s, "erofs", hook);
  assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /the source file .*usr\/lib\/tool\/(data|other) was replaced by /);
  assert.deepEqual(await readdir(s.out), []);
  await assertNoLeak(s);
});
