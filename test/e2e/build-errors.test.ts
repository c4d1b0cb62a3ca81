// Bad input to extctl build: each case gets one clear ExtctlError and leaves no output file and
// no temp files behind in the output directory.
import assert from "node:assert/strict";
import { mkdir, readdir, symlink, writeFile, chmod } from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { createContext } from "../../src/util/context.js";
import { MemoryLogger } from "../../src/util/log.js";
import { ExtctlError } from "../../src/util/errors.js";
import { buildImage, type BuildOptions } from "../../src/operations/build.js";
import { makeSigningCert } from "../helpers/keys.js";
import { requirePeers, run } from "../helpers/peers.js";
import { tempDir } from "../helpers/tmp.js";

async function tree(
  t: TestContext,
  files: Record<string, string> = { "usr/bin/tool": "x\n" },
): Promise<string> {
  const dir = await tempDir(t, "extctl-build-bad-");
  for (const [p, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, p)), { recursive: true });
    await writeFile(path.join(dir, p), content);
  }
  return dir;
}

async function expectFailure(
  t: TestContext,
  options: Partial<BuildOptions> & Pick<BuildOptions, "source">,
  code: string,
  message: RegExp,
): Promise<void> {
  const out = await tempDir(t);
  await assert.rejects(
    buildImage(createContext({ log: new MemoryLogger() }), {
      kind: "sysext",
      name: "bad",
      arch: "amd64",
      outputDir: out,
      ...options,
    }),
    (e: unknown) => {
      assert.ok(e instanceof ExtctlError, `not an ExtctlError: ${String(e)}`);
      assert.equal(e.code, code);
      assert.match(e.message, message);
      return true;
    },
  );
  assert.deepEqual(await readdir(out), [], "the output directory stays empty");
}

async function keys(t: TestContext, cn: string): Promise<{ key: string; cert: string }> {
  return makeSigningCert(await tempDir(t, "extctl-keys-"), "signing", {
    type: "ec",
    subject: `/CN=${cn}`,
  });
}

test("a missing source is refused", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs"], { root: true })) return;
  await expectFailure(
    t,
    { source: "/nonexistent/tree" },
    "not-found",
    /the source \/nonexistent\/tree does not exist/,
  );
});

test("a tree with nothing under usr/ is refused", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs"], { root: true })) return;
  const src = await tree(t, { "etc/only": "x\n" });
  await mkdir(path.join(src, "usr/empty"), { recursive: true });
  await expectFailure(
    t,
    { source: src },
    "build",
    /nothing to build: the source has no files under usr\//,
  );
});

test("a symlink that climbs out of the tree is refused", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs"], { root: true })) return;
  const src = await tree(t);
  await symlink("../../../etc/shadow", path.join(src, "usr/bin/escape"));
  await expectFailure(
    t,
    { source: src },
    "build",
    /symlink usr\/bin\/escape -> \.\.\/\.\.\/\.\.\/etc\/shadow points outside/,
  );
});

test("a device node is refused", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs", "mknod"], { root: true })) return;
  const src = await tree(t);
  run("mknod", [path.join(src, "usr/bin/null"), "c", "1", "3"]);
  await expectFailure(t, { source: src }, "build", /device node usr\/bin\/null/);
});

test("usr/lib/os-release in the source is refused", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs"], { root: true })) return;
  const src = await tree(t, { "usr/bin/tool": "x", "usr/lib/os-release": "ID=debian\n" });
  await expectFailure(t, { source: src }, "build", /usr\/lib\/os-release/);
});

test("an unreadable key is refused before any work", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs", "openssl"], { root: true })) return;
  const src = await tree(t);
  const { cert } = await keys(t, "a");
  await expectFailure(
    t,
    { source: src, privateKey: "/nonexistent/key.pem", certificate: cert },
    "usage",
    /cannot read the private key \/nonexistent\/key\.pem/,
  );
  const garbage = path.join(await tempDir(t), "key.pem");
  await writeFile(garbage, "not a key\n");
  await chmod(garbage, 0o600);
  await expectFailure(
    t,
    { source: src, privateKey: garbage, certificate: cert },
    "usage",
    /private key cannot be read/,
  );
});

test("a certificate that does not match the key is refused", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs", "openssl"], { root: true })) return;
  const src = await tree(t);
  const a = await keys(t, "a");
  const b = await keys(t, "b");
  await expectFailure(
    t,
    { source: src, privateKey: a.key, certificate: b.cert },
    "usage",
    /does not belong to the certificate/,
  );
});

test("an unknown architecture is refused", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs"], { root: true })) return;
  const src = await tree(t);
  await expectFailure(t, { source: src, arch: "sparc" }, "usage", /unknown architecture "sparc"/);
});

test("a failing mkfs leaves no output and no temp files", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs"], { root: true })) return;
  const src = await tree(t);
  await expectFailure(t, { source: src, compress: "lz4hc,99" }, "build", /mkfs\.erofs failed/);
});

test("a rootfs tarball with a '..' path is refused", async (t) => {
  if (!requirePeers(t, ["tar", "mkfs.erofs"], { root: true })) return;
  const dir = await tempDir(t);
  await mkdir(path.join(dir, "a/usr"), { recursive: true });
  await writeFile(path.join(dir, "evil"), "x");
  const tarball = path.join(dir, "evil.tar");
  run("tar", [
    "-cf",
    tarball,
    "-C",
    path.join(dir, "a"),
    "usr",
    "--transform",
    "s,^usr$,usr/../../evil,",
    "-P",
  ]);
  await expectFailure(t, { source: tarball }, "build", /climbs out of the tree/);
});

test("--output names a directory that does not exist yet: it is made, as mkosi and docker build -o do", async (t) => {
  if (!requirePeers(t, ["mksquashfs"], {})) return;
  const src = await tree(t);
  const out = path.join(await tempDir(t, "extctl-build-out-"), "new", "deeper");
  const ctx = createContext({ log: new MemoryLogger() });
  const result = await buildImage(ctx, {
    kind: "sysext",
    name: "made",
    source: src,
    outputDir: out,
    format: "squashfs",
  });
  assert.equal(result.path, path.join(out, "made.sysext.raw"));
  assert.deepEqual(await readdir(out), ["made.sysext.raw"]);
});
