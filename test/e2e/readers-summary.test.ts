// summarizeImage, what `list` shows per image: version, format, signed, compatible (+ reason),
// from metadata only, and never an exception for a broken image.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { createContext } from "../../src/util/context.js";
import { MemoryLogger } from "../../src/util/log.js";
import { summarizeImage } from "../../src/domain/image/summary.js";
import { requirePeers, run } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";

async function squashfs(
  dir: string,
  file: string,
  release: string,
  releaseName: string,
): Promise<string> {
  const tree = path.join(dir, `tree-${file}`);
  await mkdir(path.join(tree, "usr/lib/extension-release.d"), { recursive: true });
  await writeFile(
    path.join(tree, `usr/lib/extension-release.d/extension-release.${releaseName}`),
    release,
  );
  const image = path.join(dir, file);
  run("mksquashfs", [tree, image, "-noappend", "-all-root", "-quiet", "-no-progress"]);
  return image;
}

test("summaries: version, format, signed by sidecar, compatibility with a short reason", async (t) => {
  if (!requirePeers(t, ["mksquashfs", "mkfs.erofs", "openssl"], { root: true })) return;
  const dir = await tempDir(t);
  const root = await tempRoot(t);
  const ctx = createContext({ root, log: new MemoryLogger() });

  const good = await squashfs(
    dir,
    "good.raw",
    "ID=debian\nVERSION_ID=12\nSYSEXT_VERSION_ID=2.1\n",
    "good",
  );
  const s1 = await summarizeImage(ctx, good, "sysext", { systemd: 252 });
  assert.deepEqual(
    { version: s1.version, format: s1.format, signed: s1.signed, compatible: s1.compatible },
    { version: "2.1", format: "squashfs", signed: false, compatible: true },
  );
  assert.equal(s1.release?.ID, "debian");

  // A detached signature next to a bare image counts as signed (not verified here).
  await writeFile(path.join(dir, "good.roothash.p7s"), Buffer.from([0x30, 0x00]));
  assert.equal((await summarizeImage(ctx, good, "sysext", { systemd: 252 })).signed, true);

  const fedora = await squashfs(dir, "fedora.sysext.raw", "ID=fedora\nVERSION_ID=40\n", "fedora");
  const s2 = await summarizeImage(ctx, fedora, "sysext", { systemd: 255 });
  assert.equal(s2.compatible, false);
  assert.equal(s2.version, "40");
  assert.match(s2.reason ?? "", /ID=fedora is not the host's ID=debian/);
  // On 252 the file would be named fedora.sysext; extctl links it as fedora.raw, so the release
  // file is found and the verdict is about the ID, as on 255.
  const on252 = await summarizeImage(ctx, fedora, "sysext", { systemd: 252 });
  assert.equal(on252.linkName, "fedora.raw");
  assert.match(on252.reason ?? "", /ID=fedora is not the host's ID=debian/);

  const broken = path.join(dir, "broken.raw");
  await writeFile(broken, Buffer.alloc(8192, 0x41));
  const s3 = await summarizeImage(ctx, broken, "sysext");
  assert.equal(s3.compatible, false);
  assert.equal(s3.format, "unknown");
  assert.match(s3.reason ?? "", /neither a GPT disk image nor a known filesystem/);

  const tree = path.join(dir, "erofs-tree");
  await mkdir(path.join(tree, "usr/lib/extension-release.d"), { recursive: true });
  await writeFile(path.join(tree, "usr/lib/extension-release.d/extension-release.er"), "ID=_any\n");
  const er = path.join(dir, "er.raw");
  run("mkfs.erofs", ["-zlz4", er, tree]);
  const s4 = await summarizeImage(ctx, er, "sysext");
  assert.equal(s4.format, "erofs");
  assert.equal(s4.compatible, true);
});
