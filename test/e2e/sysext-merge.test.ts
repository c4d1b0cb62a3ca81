// The foundation end to end: the real extctl CLI over a temp root, merged for real by
// systemd-sysext 252 inside this test's private mount namespace (scripts/test.sh makes it).
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { access, readFile, readdir, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { jsonOf, runExtctl } from "../helpers/cli.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempNodeRoot } from "../helpers/tmp.js";
import { helloScript, makeSampleImage } from "../helpers/images.js";
import type { ListResult, StatusResult } from "../../src/index.js";

const PEERS = ["systemd-sysext", "mksquashfs", "unshare"];

async function mergedList(root: string): Promise<string[]> {
  const text = await readFile(path.join(root, "usr/.systemd-sysext/extensions"), "utf8").catch(
    () => "",
  );
  return text.split("\n").filter(Boolean);
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

async function extctl(root: string, ...args: string[]) {
  const result = await runExtctl(["--root", root, ...args]);
  return result;
}

async function setup(t: TestContext, release = "ID=_any\n") {
  const root = await tempNodeRoot(t);
  const work = await tempDir(t);
  const image = await makeSampleImage(work, {
    fileName: "hello.raw",
    release,
    files: { "usr/bin/hello": helloScript("hello from a system extension") },
  });
  const installed = await extctl(root, "sysext", "install", `file://${image}`);
  assert.equal(installed.code, 0, installed.stderr);
  return root;
}

describe("sysext merged by the real systemd-sysext 252", () => {
  test("enable --common --now makes ROOT/usr/bin/hello run; disable --now makes it vanish", async (t) => {
    if (!requirePeers(t, PEERS, { root: true })) return;
    const root = await setup(t);
    const enabled = await extctl(root, "sysext", "enable", "hello", "--common", "--now");
    assert.equal(enabled.code, 0, enabled.stderr);
    assert.deepEqual(await mergedList(root), ["hello"]);
    const out = execFileSync(path.join(root, "usr/bin/hello"), { encoding: "utf8" });
    assert.equal(out.trim(), "hello from a system extension");

    const st = await extctl(root, "sysext", "status", "--json");
    const status = jsonOf<StatusResult>(st);
    assert.deepEqual(status.kinds[0]?.merged[0]?.extensions, ["hello"]);
    assert.deepEqual(status.kinds[0]?.mismatches, []);

    const disabled = await extctl(root, "sysext", "disable", "hello", "--common", "--now");
    assert.equal(disabled.code, 0, disabled.stderr);
    assert.equal(await exists(path.join(root, "usr/bin/hello")), false);
    assert.deepEqual(await mergedList(root), []);
  });

  test("enabling a profile the node is not booted in links nothing in /run", async (t) => {
    if (!requirePeers(t, PEERS, { root: true })) return;
    const root = await setup(t);
    await mkdir(path.join(root, "run/cos"), { recursive: true });
    await writeFile(path.join(root, "run/cos/passive_mode"), "");
    const result = await extctl(root, "sysext", "enable", "hello", "--active", "--now");
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /not booted in the active profile/);
    assert.deepEqual(await readdir(path.join(root, "run/extensions")).catch(() => []), []);
    assert.equal(await exists(path.join(root, "usr/bin/hello")), false);
  });

  test("remove --now unmerges and deletes the image", async (t) => {
    if (!requirePeers(t, PEERS, { root: true })) return;
    const root = await setup(t);
    assert.equal((await extctl(root, "sysext", "enable", "hello", "--common", "--now")).code, 0);
    assert.equal(await exists(path.join(root, "usr/bin/hello")), true);
    const removed = await extctl(root, "sysext", "remove", "hello", "--now");
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(await exists(path.join(root, "usr/bin/hello")), false);
    assert.equal(await exists(path.join(root, "var/lib/kairos/extensions/hello.raw")), false);
    assert.equal(
      await exists(path.join(root, "var/lib/kairos/extensions/common/hello.raw")),
      false,
    );
    assert.equal((await extctl(root, "sysext", "list", "--json")).stdout.includes("hello"), false);
  });

  test("an image whose release file does not match the root's os-release is reported as not merged, with the reason", async (t) => {
    if (!requirePeers(t, PEERS, { root: true })) return;
    const root = await setup(t, "ID=fedora\nVERSION_ID=40\n");
    const result = await extctl(root, "sysext", "enable", "hello", "--common", "--now");
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /hello\.raw was not merged: Extension 'hello' is for OS 'fedora', but deployed on top of 'debian'/,
    );
    assert.equal(await exists(path.join(root, "usr/bin/hello")), false);
    // The links the command made were undone.
    assert.equal(await exists(path.join(root, "run/extensions/hello.raw")), false);
    assert.equal(
      await exists(path.join(root, "var/lib/kairos/extensions/common/hello.raw")),
      false,
    );
  });

  test("status reports an image linked in /run that systemd did not merge", async (t) => {
    if (!requirePeers(t, PEERS, { root: true })) return;
    const root = await setup(t);
    const work = await tempDir(t);
    const bad = await makeSampleImage(work, {
      fileName: "other.raw",
      release: "ID=fedora\n",
      files: { "usr/bin/other": "x" },
    });
    assert.equal((await extctl(root, "sysext", "install", `file://${bad}`)).code, 0);
    // Linked for the next boot without --now, then a good image merged with --now.
    assert.equal((await extctl(root, "sysext", "enable", "other", "--common")).code, 0);
    await mkdir(path.join(root, "run/extensions"), { recursive: true });
    const { symlink } = await import("node:fs/promises");
    await symlink(
      "/var/lib/kairos/extensions/common/other.raw",
      path.join(root, "run/extensions/other.raw"),
    );
    const result = await extctl(root, "sysext", "enable", "hello", "--common", "--now");
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /other\.raw is linked in \/run\/extensions but not merged: Extension 'other' is for OS 'fedora'/,
    );
    const st = jsonOf<StatusResult>(await extctl(root, "status", "--json"));
    const sysext = st.kinds.find((k) => k.kind === "sysext");
    const mismatch = sysext?.mismatches.find((m) => m.name === "other.raw");
    assert.equal(mismatch?.problem, "linked-not-merged");
    // status reads the image itself to say why (no systemd log at hand here).
    assert.match(mismatch?.detail ?? "", /ID=fedora is not the host's ID=debian/);

    const listed = jsonOf<ListResult>(await extctl(root, "sysext", "list", "--json"));
    const rows = listed.images.map((i) => [i.name, i.format, i.signed, i.compatible, i.merged]);
    assert.deepEqual(rows, [
      ["hello.raw", "squashfs", false, true, true],
      ["other.raw", "squashfs", false, false, false],
    ]);
  });
});
