// Kairos-named images (NAME.sysext.raw carrying extension-release.NAME) against the real
// systemd-sysext of each lane: extctl links them under a name the root's systemd finds the
// release file under (252-254: NAME.raw), at boot and with enable --now, and refuses at install
// an image whose release file fits no name at all (nothing stored, the fix named).
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  access,
  copyFile,
  mkdir,
  readFile,
  readdir,
  readlink,
  rmdir,
  symlink,
  writeFile,
} from "node:fs/promises";
import path from "node:path";
import { jsonOf, runExtctl } from "../helpers/cli.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempNodeRoot } from "../helpers/tmp.js";
import { makeSampleImage } from "../helpers/images.js";
import { systemdVersion } from "../helpers/lane.js";
import type { CheckResult, ListResult, StatusResult } from "../../src/index.js";

const STORE = "var/lib/kairos/extensions";

async function merged(root: string): Promise<string[]> {
  const text = await readFile(path.join(root, "usr/.systemd-sysext/extensions"), "utf8").catch(
    () => "",
  );
  return text.split("\n").filter(Boolean).sort();
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

/** tool.sysext.raw carrying usr/lib/extension-release.d/extension-release.tool, as Kairos names it. */
async function kairosImage(t: TestContext, fileName = "tool.sysext.raw"): Promise<string> {
  const work = await tempDir(t);
  return makeSampleImage(work, {
    fileName,
    releaseName: "tool",
    release: "ID=_any\n",
    files: { "usr/share/tool/hello": "hello from tool\n" },
  });
}

/** The link name extctl must use on this systemd. */
function expectedLink(): string {
  return systemdVersion() < 255 ? "tool.raw" : "tool.sysext.raw";
}

test("a Kairos-named image merges with enable --now under the name the root's systemd wants", async (t) => {
  if (!requirePeers(t, ["systemd-sysext", "mksquashfs"], { root: true })) return;
  const root = await tempNodeRoot(t);
  t.after(() => runExtctl(["--root", root, "sysext", "disable", "tool", "--common", "--now"]));
  const image = await kairosImage(t);
  const installed = await runExtctl(["--root", root, "sysext", "install", `file://${image}`]);
  assert.equal(installed.code, 0, installed.stderr);

  const enabled = await runExtctl([
    "--root",
    root,
    "sysext",
    "enable",
    "tool",
    "--common",
    "--now",
  ]);
  assert.equal(enabled.code, 0, enabled.stderr);
  assert.deepEqual(await readdir(path.join(root, "run/extensions")), [expectedLink()]);
  assert.deepEqual(await merged(root), ["tool"], "systemd merged it (its own marker says so)");
  assert.equal(
    await readFile(path.join(root, "usr/share/tool/hello"), "utf8"),
    "hello from tool\n",
  );

  const listed = jsonOf<ListResult>(await runExtctl(["--root", root, "sysext", "list", "--json"]));
  assert.deepEqual(
    listed.images.map((i) => [i.name, i.linked, i.merged, i.compatible]),
    [["tool.sysext.raw", true, true, true]],
  );
  const status = jsonOf<StatusResult>(await runExtctl(["--root", root, "status", "--json"]));
  assert.deepEqual(status.kinds.find((k) => k.kind === "sysext")?.mismatches, []);

  const disabled = await runExtctl([
    "--root",
    root,
    "sysext",
    "disable",
    "tool",
    "--common",
    "--now",
  ]);
  assert.equal(disabled.code, 0, disabled.stderr);
  assert.deepEqual(await readdir(path.join(root, "run/extensions")), []);
  assert.deepEqual(await merged(root), []);
  assert.equal(await exists(path.join(root, "usr/share/tool/hello")), false);
});

test("boot links a Kairos-named image under the name the root's systemd wants, and it merges", async (t) => {
  if (!requirePeers(t, ["systemd-sysext", "mksquashfs"], { root: true })) return;
  const root = await tempNodeRoot(t);
  t.after(() => runExtctl(["--root", root, "sysext", "disable", "tool", "--active", "--now"]));
  const image = await kairosImage(t);
  assert.equal((await runExtctl(["--root", root, "sysext", "install", `file://${image}`])).code, 0);
  assert.equal((await runExtctl(["--root", root, "sysext", "enable", "tool", "--active"])).code, 0);
  // A link left under the file's own name by an older extctl goes: /run says what this boot loads.
  const cmdline = path.join(await tempDir(t), "cmdline");
  await writeFile(cmdline, "BOOT_IMAGE=/vmlinuz root=LABEL=COS_ACTIVE ro\n");
  const r = await runExtctl(["--root", root, "boot", "--cmdline", cmdline, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { linked: { name: string; link?: string }[] };
  assert.deepEqual(result.linked, [
    {
      kind: "sysext",
      name: "tool.sysext.raw",
      profile: "active",
      ...(expectedLink() === "tool.sysext.raw" ? {} : { link: expectedLink() }),
      action: "linked",
      outcome: "unchecked",
    },
  ]);
  assert.equal(
    await readlink(path.join(root, "run/extensions", expectedLink())),
    `../../${STORE}/active/tool.sysext.raw`,
  );
  assert.deepEqual(await merged(root), ["tool"]);
  const status = jsonOf<StatusResult>(await runExtctl(["--root", root, "status", "--json"]));
  assert.deepEqual(status.kinds.find((k) => k.kind === "sysext")?.mismatches, []);
});

test("an image whose release file fits no name systemd gives it: install warns, enable refuses; --name fixes it", async (t) => {
  if (!requirePeers(t, ["mksquashfs"], { root: true })) return;
  const root = await tempNodeRoot(t);
  const image = await kairosImage(t, "tool-2.0.sysext.raw");
  const stored = await runExtctl(["--root", root, "sysext", "install", `file://${image}`]);
  assert.equal(stored.code, 0, stored.stderr);
  assert.match(stored.stderr, /warning: "tool-2\.0\.sysext\.raw" can never merge on this node/);
  assert.match(stored.stderr, /extension-release\.d\/extension-release\.tool\b/);
  assert.match(stored.stderr, /--name tool\.sysext\.raw/);
  const enabled = await runExtctl(["--root", root, "sysext", "enable", "tool-2.0", "--active"]);
  assert.equal(enabled.code, 1, enabled.stderr);
  assert.match(enabled.stderr, /can never merge on this node/);
  assert.deepEqual(await readdir(path.join(root, STORE, "active")).catch(() => []), []);
  await runExtctl(["--root", root, "sysext", "remove", "tool-2.0"]);

  const named = await runExtctl([
    "--root",
    root,
    "sysext",
    "install",
    `file://${image}`,
    "--name",
    "tool.sysext.raw",
  ]);
  assert.equal(named.code, 0, named.stderr);
  assert.doesNotMatch(named.stderr, /can never merge/);
  assert.ok((await readdir(path.join(root, STORE))).includes("tool.sysext.raw"));
});

/** systemd-sysext's own `list` for the root: NAME -> PATH of the entry it takes. */
function systemdList(root: string): Map<string, string> {
  const out = execFileSync("systemd-sysext", [`--root=${root}`, "list", "--json=short"], {
    encoding: "utf8",
  });
  const rows = JSON.parse(out) as { name: string; path: string }[];
  return new Map(rows.map((r) => [r.name, r.path]));
}

test("masking: an empty /etc/extensions/NAME or a same-name image there; extctl's verdict is systemd's", async (t) => {
  if (!requirePeers(t, ["systemd-sysext", "mksquashfs"], { root: true })) return;
  const root = await tempNodeRoot(t);
  t.after(() => spawnSync("systemd-sysext", [`--root=${root}`, "unmerge"], { stdio: "ignore" }));
  const work = await tempDir(t);
  const image = await makeSampleImage(work, {
    fileName: "tool.raw",
    release: "ID=_any\n",
    files: { "usr/share/tool/hello": "from the store\n" },
  });
  assert.equal((await runExtctl(["--root", root, "sysext", "install", `file://${image}`])).code, 0);
  assert.equal((await runExtctl(["--root", root, "sysext", "enable", "tool", "--common"])).code, 0);
  await mkdir(path.join(root, "etc/extensions/tool"), { recursive: true });

  const listed = jsonOf<ListResult>(await runExtctl(["--root", root, "sysext", "list", "--json"]));
  assert.equal(listed.images[0]?.compatible, false);
  assert.match(
    listed.images[0]?.reason ?? "",
    /^masked by \/etc\/extensions\/tool \(an empty directory/,
  );
  const checked = jsonOf<CheckResult>(
    await runExtctl(["--root", root, "check", path.join(root, STORE, "tool.raw"), "--json"]),
  );
  assert.equal(checked.compatible, false);
  assert.equal(checked.rules.find((r) => r.rule === "masking")?.status, "fail");

  // enable --now says so itself and leaves /run as it was.
  const now = await runExtctl(["--root", root, "sysext", "enable", "tool", "--common", "--now"]);
  assert.equal(now.code, 1);
  assert.match(
    now.stderr,
    /tool\.raw cannot be merged now: it is masked by \/etc\/extensions\/tool/,
  );
  assert.deepEqual(await readdir(path.join(root, "run/extensions")).catch(() => []), []);

  // systemd agrees: with our link in /run it takes the directory and merges nothing of ours.
  await mkdir(path.join(root, "run/extensions"), { recursive: true });
  await symlink(`../../${STORE}/common/tool.raw`, path.join(root, "run/extensions/tool.raw"));
  spawnSync("systemd-sysext", [`--root=${root}`, "refresh"], { encoding: "utf8" });
  assert.equal(systemdList(root).get("tool"), path.join(root, "etc/extensions/tool"));
  assert.deepEqual(await merged(root), []);
  const status = jsonOf<StatusResult>(await runExtctl(["--root", root, "status", "--json"]));
  assert.deepEqual(
    status.kinds
      .find((k) => k.kind === "sysext")
      ?.mismatches.map((m) => [m.name, m.problem, m.detail.slice(0, 36)]),
    [["tool.raw", "linked-not-merged", "masked by /etc/extensions/tool (an e"]],
  );

  // A same-name image earlier in the search order: systemd merges that one instead of ours.
  await rmdir(path.join(root, "etc/extensions/tool"));
  const other = await makeSampleImage(await tempDir(t), {
    fileName: "tool.raw",
    release: "ID=_any\n",
    files: { "usr/share/tool/hello": "from /etc\n" },
  });
  await copyFile(other, path.join(root, "etc/extensions/tool.raw"));
  spawnSync("systemd-sysext", [`--root=${root}`, "refresh"], { encoding: "utf8" });
  assert.equal(systemdList(root).get("tool"), path.join(root, "etc/extensions/tool.raw"));
  assert.equal(await readFile(path.join(root, "usr/share/tool/hello"), "utf8"), "from /etc\n");
  const again = jsonOf<ListResult>(await runExtctl(["--root", root, "sysext", "list", "--json"]));
  assert.match(
    again.images[0]?.reason ?? "",
    /^masked by \/etc\/extensions\/tool\.raw \(an image of the same name/,
  );
  assert.equal(again.images[0]?.merged, false, "merged is what systemd took, not a name match");
});

test("apply with now: true links a Kairos-named image under the name the root's systemd wants, and it merges", async (t) => {
  if (!requirePeers(t, ["systemd-sysext", "mksquashfs"], { root: true })) return;
  const root = await tempNodeRoot(t);
  t.after(() => runExtctl(["--root", root, "sysext", "disable", "tool", "--common", "--now"]));
  const image = await kairosImage(t);
  const config = `extensions:\n  sysext:\n    - source: file://${image}\n      profiles: [common]\n      now: true\n`;
  const applied = await runExtctl(["--root", root, "apply", "-"], { input: config });
  assert.equal(applied.code, 0, applied.stderr);
  assert.deepEqual(await readdir(path.join(root, "run/extensions")), [expectedLink()]);
  assert.deepEqual(await merged(root), ["tool"], "systemd merged it");
  assert.equal(
    await readFile(path.join(root, "usr/share/tool/hello"), "utf8"),
    "hello from tool\n",
  );
  // Applied again: nothing to do, the link under the other name is not "missing".
  const again = await runExtctl(["--root", root, "apply", "-", "--json"], { input: config });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(
    (JSON.parse(again.stdout) as { steps: unknown[] }).steps,
    [],
    "the node matches the file",
  );
  if (expectedLink() === "tool.sysext.raw") return;
  // A link under the file's own name (an older extctl's) is replaced by the one that merges.
  const runDir = path.join(root, "run/extensions");
  execFileSync("rm", [path.join(runDir, "tool.raw")]);
  await symlink(`../../${STORE}/common/tool.sysext.raw`, path.join(runDir, "tool.sysext.raw"));
  const fixed = await runExtctl(["--root", root, "apply", "-"], { input: config });
  assert.equal(fixed.code, 0, fixed.stderr);
  assert.deepEqual(await readdir(runDir), ["tool.raw"]);
  assert.deepEqual(await merged(root), ["tool"]);
});
