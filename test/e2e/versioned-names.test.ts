// Names with versions through the real CLI (issue 14 item 4): `enable mytool` links the one
// mytool-VERSION image, never mytool-agent; `enable k3s` with only k3s-agent fails clearly;
// two versions of one name are an ambiguity error listing both.
import assert from "node:assert/strict";
import { readdir, readlink } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { runExtctl } from "../helpers/cli.js";
import { makeSampleImage } from "../helpers/images.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";

const STORE = "/var/lib/kairos/extensions";

/** A root whose sysext store holds `fileNames`, each installed with the real CLI. */
async function rootWith(t: Parameters<typeof tempRoot>[0], fileNames: string[]): Promise<string> {
  const root = await tempRoot(t);
  const work = await tempDir(t);
  for (const fileName of fileNames) {
    const releaseName = fileName.replace(/(\.sysext)?\.raw$/, "");
    const image = await makeSampleImage(work, {
      fileName,
      release: "ID=_any\n",
      releaseName,
      files: { [`usr/bin/${releaseName}`]: "#!/bin/sh\necho hi\n" },
    });
    const installed = await runExtctl(["--root", root, "sysext", "install", `file://${image}`]);
    assert.equal(installed.code, 0, installed.stderr);
  }
  return root;
}

test("a bare name enables the one versioned image, and never NAME-agent", async (t) => {
  if (!requirePeers(t, ["mksquashfs"], { root: true })) return;

  await t.test("mytool finds mytool-v1.0.sysext.raw beside mytool-agent.raw", async (t) => {
    const root = await rootWith(t, ["mytool-v1.0.sysext.raw", "mytool-agent.raw"]);
    const enabled = await runExtctl(["--root", root, "sysext", "enable", "mytool", "--common"]);
    assert.equal(enabled.code, 0, enabled.stderr);
    const common = path.join(root, STORE, "common");
    assert.deepEqual(await readdir(common), ["mytool-v1.0.sysext.raw"]);
    const link = await readlink(path.join(common, "mytool-v1.0.sysext.raw"));
    assert.equal(path.resolve(common, link), path.join(root, STORE, "mytool-v1.0.sysext.raw"));
  });

  await t.test("k3s does not find k3s-agent.raw (Kairos 4767)", async (t) => {
    const root = await rootWith(t, ["k3s-agent.raw"]);
    const enabled = await runExtctl(["--root", root, "sysext", "enable", "k3s", "--common"]);
    assert.equal(enabled.code, 1, enabled.stderr);
    assert.match(enabled.stderr, /no image named "k3s" in the store/);
    assert.match(enabled.stderr, /k3s-agent\.raw/);
    const common = await readdir(path.join(root, STORE, "common")).catch(() => []);
    assert.deepEqual(common, []);
  });

  await t.test("mytool-1.raw and mytool-2.raw are ambiguous, and both are listed", async (t) => {
    const root = await rootWith(t, ["mytool-1.raw", "mytool-2.raw"]);
    const enabled = await runExtctl(["--root", root, "sysext", "enable", "mytool", "--common"]);
    assert.equal(enabled.code, 1, enabled.stderr);
    assert.match(
      enabled.stderr,
      /"mytool" matches 2 versioned images .*mytool-1\.raw, mytool-2\.raw/,
    );
    assert.match(enabled.stderr, /full file name/);
    const common = await readdir(path.join(root, STORE, "common")).catch(() => []);
    assert.deepEqual(common, []);
    const exact = await runExtctl(["--root", root, "sysext", "enable", "mytool-2", "--common"]);
    assert.equal(exact.code, 0, exact.stderr);
  });
});
