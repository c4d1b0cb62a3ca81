// Built images read back by extctl's own readers: `inspect --files` lists exactly the filtered
// source tree (plus the release file), and `verify --full` passes with the signing certificate
// and fails with another.
import assert from "node:assert/strict";
import { chmod, chown, mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { createContext } from "../../src/util/context.js";
import { MemoryLogger } from "../../src/util/log.js";
import { buildImage } from "../../src/operations/build.js";
import { inspectImage } from "../../src/operations/inspect.js";
import { verifyImage } from "../../src/operations/verify.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { makeSigningCert } from "../helpers/keys.js";

async function keys(t: TestContext, cn: string): Promise<{ key: string; cert: string }> {
  return makeSigningCert(await tempDir(t, "extctl-keys-"), "signing", { subject: `/CN=${cn}` });
}

for (const format of ["erofs", "squashfs"] as const) {
  test(`inspect --files shows exactly the filtered tree of a ${format} build; verify --full checks the signer`, async (t) => {
    if (
      !requirePeers(t, ["openssl", format === "erofs" ? "mkfs.erofs" : "mksquashfs"], {
        root: true,
      })
    )
      return;
    const src = await tempDir(t, "extctl-build-src-");
    await mkdir(path.join(src, "usr/bin"), { recursive: true });
    await mkdir(path.join(src, "usr/share/doc/tool"), { recursive: true });
    await mkdir(path.join(src, "etc"), { recursive: true });
    await writeFile(path.join(src, "usr/bin/tool"), "#!/bin/sh\n");
    await chmod(path.join(src, "usr/bin/tool"), 0o4755);
    await writeFile(path.join(src, "usr/share/doc/tool/README"), "read me\n".repeat(1000));
    await symlink("/usr/bin/tool", path.join(src, "usr/bin/tool-alias"));
    await writeFile(path.join(src, "etc/ignored"), "x");
    const out = await tempDir(t);
    const signer = await keys(t, "builder");
    const other = await keys(t, "someone else");
    const node = await tempRoot(t);
    const ctx = createContext({ root: node, log: new MemoryLogger() });
    const built = await buildImage(ctx, {
      kind: "sysext",
      name: "tool",
      source: src,
      outputDir: out,
      arch: "amd64",
      format,
      privateKey: signer.key,
      certificate: signer.cert,
    });

    const inspected = await inspectImage(ctx, { image: built.path, files: true });
    const listing = (inspected.files ?? [])
      .filter((f) => f.path !== "/") // the image root itself
      .map(
        (f) =>
          `${f.path.replace(/^\//, "")} ${f.type} ${f.mode} ${f.uid}:${f.gid}${f.target ? ` -> ${f.target}` : ""}`,
      )
      .sort();
    const perm = (m: string) => m.slice(-9);
    assert.deepEqual(
      listing.map((l) => l.replace(/ \S*([rwxsStT-]{9}) /, (_all, m: string) => ` ${perm(m)} `)),
      [
        "usr dir rwxr-xr-x 0:0",
        "usr/bin dir rwxr-xr-x 0:0",
        "usr/bin/tool file rwsr-xr-x 0:0",
        "usr/bin/tool-alias symlink rwxrwxrwx 0:0 -> /usr/bin/tool",
        "usr/lib dir rwxr-xr-x 0:0",
        "usr/lib/extension-release.d dir rwxr-xr-x 0:0",
        "usr/lib/extension-release.d/extension-release.tool file rw-r--r-- 0:0",
        "usr/share dir rwxr-xr-x 0:0",
        "usr/share/doc dir rwxr-xr-x 0:0",
        "usr/share/doc/tool dir rwxr-xr-x 0:0",
        "usr/share/doc/tool/README file rw-r--r-- 0:0",
      ],
    );
    assert.equal(inspected.release?.fields.ID, "_any");
    assert.equal(inspected.release?.fields.ARCHITECTURE, "x86-64");

    const good = await verifyImage(ctx, { image: built.path, full: true, trust: [signer.cert] });
    assert.equal(good.outcome, "ok", good.message);
    assert.equal(good.exitCode, 0);
    const bad = await verifyImage(ctx, { image: built.path, full: true, trust: [other.cert] });
    assert.equal(bad.outcome, "untrusted-signer", bad.message);
    assert.notEqual(bad.exitCode, 0);
  });
}

test("--keep-owners keeps uids, gids and setuid bits; the default makes everything root's", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs"], { root: true })) return;
  const src = await tempDir(t, "extctl-build-src-");
  await mkdir(path.join(src, "usr/bin"), { recursive: true });
  await writeFile(path.join(src, "usr/bin/su-ish"), "#!/bin/sh\n");
  await chown(path.join(src, "usr/bin/su-ish"), 1000, 1001);
  await chmod(path.join(src, "usr/bin/su-ish"), 0o4750);
  const ctx = createContext({ root: await tempRoot(t), log: new MemoryLogger() });
  for (const keepOwners of [true, false]) {
    const out = await tempDir(t);
    const built = await buildImage(ctx, {
      kind: "sysext",
      name: "o",
      source: src,
      outputDir: out,
      arch: "amd64",
      keepOwners,
    });
    const file = (await inspectImage(ctx, { image: built.path, files: true })).files?.find((f) =>
      f.path.endsWith("usr/bin/su-ish"),
    );
    assert.equal(file?.mode.slice(-9), "rwsr-x---");
    assert.deepEqual([file?.uid, file?.gid], keepOwners ? [1000, 1001] : [0, 0]);
  }
});
