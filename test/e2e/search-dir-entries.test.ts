// Version directories (NAME.raw.v/, systemd.v, systemd 256+) and directory extensions in
// systemd-sysext's search dirs: extctl's `list` and `check` say what the lane's real
// systemd-sysext does with them: which version it picks, whether it merges, and on 252 (no
// systemd.v) that NAME.raw.v/ is only a directory named so, which merges nothing.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { jsonOf, runExtctl } from "../helpers/cli.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempNodeRoot } from "../helpers/tmp.js";
import { makeSampleImage } from "../helpers/images.js";
import { systemdVersion } from "../helpers/lane.js";
import type { CheckResult, ListResult } from "../../src/index.js";

const EXT = "var/lib/extensions";
const VPICK = 256;
/** An architecture this host is not (vpick skips it). */
const FOREIGN = process.arch === "arm64" ? "x86-64" : "arm64";

async function merged(root: string): Promise<string[]> {
  const text = await readFile(path.join(root, "usr/.systemd-sysext/extensions"), "utf8").catch(
    () => "",
  );
  return text.split("\n").filter(Boolean).sort();
}

/** systemd-sysext's own `list` for the root: NAME -> PATH of what it takes. */
function systemdList(root: string): Map<string, string> {
  const out = execFileSync("systemd-sysext", [`--root=${root}`, "list", "--json=short"], {
    encoding: "utf8",
  });
  const rows = JSON.parse(out) as { name: string; path: string }[];
  return new Map(rows.map((r) => [r.name, r.path]));
}

function refresh(root: string): void {
  const r = spawnSync("systemd-sysext", [`--root=${root}`, "refresh"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
}

/** A squashfs for `name` carrying extension-release.`name` and usr/share/NAME/version. */
async function versionImage(
  t: TestContext,
  name: string,
  version: string,
  fileName: string,
): Promise<string> {
  return makeSampleImage(await tempDir(t), {
    fileName,
    releaseName: name,
    release: "ID=_any\n",
    files: { [`usr/share/${name}/version`]: `${version}\n` },
  });
}

async function placeIn(dir: string, image: string, fileName: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await rename(image, path.join(dir, fileName));
}

test("a NAME.raw.v/ version directory and a directory extension: list and check say what systemd-sysext does", async (t) => {
  if (!requirePeers(t, ["systemd-sysext", "mksquashfs"], { root: true })) return;
  const systemd = systemdVersion();
  const root = await tempNodeRoot(t);
  t.after(() => spawnSync("systemd-sysext", [`--root=${root}`, "unmerge"], { stdio: "ignore" }));
  const vdir = path.join(root, EXT, "vt.raw.v");
  // 1.10 is newer than 1.9 (strverscmp, not byte order); the newest is for another architecture.
  for (const [version, file] of [
    ["1.9", "vt_1.9.raw"],
    ["1.10", "vt_1.10.raw"],
    ["9", `vt_9_${FOREIGN}.raw`],
  ] as const)
    await placeIn(vdir, await versionImage(t, "vt", version, file), file);
  // A Kairos-named version directory: its entries carry the kind suffix too.
  const kdir = path.join(root, EXT, "kt.sysext.raw.v");
  for (const v of ["1", "2"])
    await placeIn(kdir, await versionImage(t, "kt", v, `kt_${v}.sysext.raw`), `kt_${v}.sysext.raw`);
  // A directory extension.
  const dx = path.join(root, EXT, "dx");
  await mkdir(path.join(dx, "usr/lib/extension-release.d"), { recursive: true });
  await mkdir(path.join(dx, "usr/share/dx"), { recursive: true });
  await writeFile(path.join(dx, "usr/lib/extension-release.d/extension-release.dx"), "ID=_any\n");
  await writeFile(path.join(dx, "usr/share/dx/version"), "dir\n");

  const listed = jsonOf<ListResult>(await runExtctl(["--root", root, "sysext", "list", "--json"]));
  const others = new Map((listed.others ?? []).map((o) => [o.path, o]));
  const checks = new Map<string, CheckResult>();
  for (const entry of ["vt.raw.v", "kt.sysext.raw.v", "dx"]) {
    const r = await runExtctl(["--root", root, "check", path.join(root, EXT, entry), "--json"]);
    checks.set(entry, jsonOf<CheckResult>(r));
  }

  refresh(root);
  const took = systemdList(root);
  const mergedNow = await merged(root);

  // The directory extension merges on every version.
  assert.ok(mergedNow.includes("dx"), `systemd merged ${mergedNow.join(",")}`);
  assert.equal(await readFile(path.join(root, "usr/share/dx/version"), "utf8"), "dir\n");
  assert.equal(checks.get("dx")?.compatible, true, checks.get("dx")?.reason);
  assert.equal(checks.get("dx")?.entry?.type, "directory");
  assert.deepEqual(
    [others.get(`/${EXT}/dx`)?.type, others.get(`/${EXT}/dx`)?.compatible],
    ["directory", true],
  );
  assert.equal(others.get(`/${EXT}/dx`)?.merged, false, "listed before the merge");

  if (systemd >= VPICK) {
    // systemd picks vt_1.10.raw (not the foreign 9, not 1.9) and merges it as "vt".
    assert.equal(took.get("vt"), path.join(vdir, "vt_1.10.raw"));
    assert.equal(took.get("kt"), path.join(kdir, "kt_2.sysext.raw"));
    assert.ok(mergedNow.includes("vt") && mergedNow.includes("kt"), mergedNow.join(","));
    assert.equal(await readFile(path.join(root, "usr/share/vt/version"), "utf8"), "1.10\n");
    assert.equal(await readFile(path.join(root, "usr/share/kt/version"), "utf8"), "2\n");
    for (const [entry, name, file, version] of [
      ["vt.raw.v", "vt", "vt_1.10.raw", "1.10"],
      ["kt.sysext.raw.v", "kt", "kt_2.sysext.raw", "2"],
    ] as const) {
      const c = checks.get(entry);
      assert.equal(c?.compatible, true, c?.reason);
      assert.equal(c?.name, name);
      assert.deepEqual([c?.entry?.type, c?.entry?.picked?.file], ["versioned", file]);
      const o = others.get(`/${EXT}/${entry}`);
      assert.deepEqual(
        [o?.name, o?.picked?.file, o?.version, o?.compatible],
        [name, file, version, true],
      );
    }
    const after = jsonOf<ListResult>(await runExtctl(["--root", root, "sysext", "list", "--json"]));
    assert.deepEqual((after.others ?? []).map((o) => [o.name, o.merged]).sort(), [
      ["dx", true],
      ["kt", true],
      ["vt", true],
    ]);
  } else {
    // 252: no systemd.v. The .v directories are directories of those names, with no release
    // file: systemd merges nothing from them, and the rest still merges.
    assert.equal(took.get("vt.raw.v"), vdir);
    assert.deepEqual(mergedNow, ["dx"]);
    for (const entry of ["vt.raw.v", "kt.sysext.raw.v"]) {
      const c = checks.get(entry);
      assert.equal(c?.compatible, false);
      assert.match(c?.reason ?? "", /reads no version directories \(systemd\.v came with 256\)/);
      assert.equal(c?.entry?.type, "directory");
      assert.equal(others.get(`/${EXT}/${entry}`)?.compatible, false);
    }
  }
});

test("a version directory with nothing for this architecture is skipped by systemd 256+ and masks nothing", async (t) => {
  if (!requirePeers(t, ["systemd-sysext", "mksquashfs"], { root: true })) return;
  if (systemdVersion() < VPICK) {
    t.skip(`systemd ${systemdVersion()} reads no version directories (the first test covers it)`);
    return;
  }
  const root = await tempNodeRoot(t);
  t.after(() => spawnSync("systemd-sysext", [`--root=${root}`, "unmerge"], { stdio: "ignore" }));
  const etcDir = path.join(root, "etc/extensions/vt.raw.v");
  await placeIn(
    etcDir,
    await versionImage(t, "vt", "5", `vt_5_${FOREIGN}.raw`),
    `vt_5_${FOREIGN}.raw`,
  );
  // The same name later in the search order: it is the one systemd takes.
  await placeIn(path.join(root, EXT), await versionImage(t, "vt", "plain", "vt.raw"), "vt.raw");
  const c = jsonOf<CheckResult>(await runExtctl(["--root", root, "check", etcDir, "--json"]));
  assert.equal(c.compatible, false);
  assert.match(c.reason ?? "", /holds no files vt_VERSION\.raw for this architecture/);
  const plain = jsonOf<CheckResult>(
    await runExtctl(["--root", root, "check", path.join(root, EXT, "vt.raw"), "--json"]),
  );
  assert.equal(plain.compatible, true, plain.reason);
  refresh(root);
  assert.equal(systemdList(root).get("vt"), path.join(root, EXT, "vt.raw"));
  assert.equal(await readFile(path.join(root, "usr/share/vt/version"), "utf8"), "plain\n");
});
