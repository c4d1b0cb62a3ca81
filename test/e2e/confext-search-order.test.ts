// Issue 25: the order in which systemd-confext reads its search dirs, against the lane's real
// systemd-confext (254+): /run/confexts, /var/lib/confexts, /usr/local/lib/confexts,
// /usr/lib/confexts, and no /etc/confexts. extctl's masking (check's masking rule, list's
// entries) follows that order: the first entry of a name is the one systemd takes.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFile, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { jsonOf, runExtctl } from "../helpers/cli.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { makeSampleImage } from "../helpers/images.js";
import { systemdVersion } from "../helpers/lane.js";
import type { CheckResult, ListResult } from "../../src/index.js";

/** systemd-confext's own `list` for the root: NAME -> PATH of what it takes. */
function systemdList(root: string): Map<string, string> {
  const out = execFileSync("systemd-confext", [`--root=${root}`, "list", "--json=short"], {
    encoding: "utf8",
  });
  const rows = JSON.parse(out) as { name: string; path: string }[];
  return new Map(rows.map((r) => [r.name, r.path]));
}

async function confextImage(t: TestContext, name: string): Promise<string> {
  return makeSampleImage(await tempDir(t), {
    fileName: `${name}.raw`,
    kind: "confext",
    release: "ID=_any\n",
    files: { [`etc/${name}.conf`]: "x=1\n" },
  });
}

async function placeImage(root: string, dir: string, image: string, name: string) {
  await mkdir(path.join(root, dir), { recursive: true });
  await copyFile(image, path.join(root, dir, name));
}

/** A directory extension NAME in `dir` (a release file, so not empty). */
async function placeDir(root: string, dir: string, name: string) {
  const rel = path.join(root, dir, name, "etc/extension-release.d");
  await mkdir(rel, { recursive: true });
  await writeFile(path.join(rel, `extension-release.${name}`), "ID=_any\n");
}

test("confext search order is systemd-confext's: /run, /var/lib, /usr/local/lib, /usr/lib, never /etc/confexts", async (t) => {
  if (systemdVersion() < 254) {
    t.skip(`systemd ${systemdVersion()} has no systemd-confext (it came with 254)`);
    return;
  }
  if (!requirePeers(t, ["systemd-confext", "mksquashfs"], { root: true })) return;
  const root = await tempRoot(t);
  const a = await confextImage(t, "a");
  // "a" in every dir: /run/confexts wins. "b" from /var/lib on: /var/lib wins over /usr/local/lib.
  // "c" in /usr/local/lib (a directory) and /usr/lib: /usr/local/lib wins. "d" only in
  // /etc/confexts: systemd never reads that dir.
  for (const dir of [
    "run/confexts",
    "var/lib/confexts",
    "usr/local/lib/confexts",
    "usr/lib/confexts",
  ])
    await placeImage(root, dir, a, "a.raw");
  for (const dir of ["var/lib/confexts", "usr/local/lib/confexts"])
    await placeImage(root, dir, await confextImage(t, "b"), "b.raw");
  await placeDir(root, "usr/local/lib/confexts", "c");
  await placeImage(root, "usr/lib/confexts", await confextImage(t, "c"), "c.raw");
  await placeDir(root, "etc/confexts", "d");

  const took = systemdList(root);
  assert.deepEqual(
    Object.fromEntries([...took].sort()),
    {
      a: path.join(root, "run/confexts/a.raw"),
      b: path.join(root, "var/lib/confexts/b.raw"),
      c: path.join(root, "usr/local/lib/confexts/c"),
    },
    "systemd-confext's own choice",
  );

  const check = async (entry: string) =>
    jsonOf<CheckResult>(
      await runExtctl([
        "--root",
        root,
        "check",
        "--kind",
        "confext",
        path.join(root, entry),
        "--json",
      ]),
    );
  const masking = (c: CheckResult) => c.rules.find((r) => r.rule === "masking");
  // What systemd takes passes; every later entry of the name is masked by what systemd takes.
  for (const [entry, winner] of [
    ["run/confexts/a.raw", undefined],
    ["var/lib/confexts/a.raw", "/run/confexts/a.raw"],
    ["usr/local/lib/confexts/a.raw", "/run/confexts/a.raw"],
    ["usr/lib/confexts/a.raw", "/run/confexts/a.raw"],
    ["var/lib/confexts/b.raw", undefined],
    ["usr/local/lib/confexts/b.raw", "/var/lib/confexts/b.raw"],
    ["usr/local/lib/confexts/c", undefined],
    ["usr/lib/confexts/c.raw", "/usr/local/lib/confexts/c"],
  ] as const) {
    const c = await check(entry);
    const rule = masking(c);
    if (winner === undefined) {
      assert.equal(rule?.status, "pass", `${entry}: ${rule?.reason}`);
      assert.equal(c.compatible, true, `${entry}: ${c.reason}`);
      assert.equal(took.get(c.name), path.join(root, entry), entry);
    } else {
      assert.equal(rule?.status, "fail", `${entry}: ${rule?.reason}`);
      assert.match(rule?.reason ?? "", new RegExp(`^masked by ${winner.replace(/\./g, "\\.")} `));
      assert.equal(took.get(c.name), path.join(root, winner.slice(1)), entry);
    }
  }
  // list shows the directory extension systemd takes and not the one in /etc/confexts.
  const listed = jsonOf<ListResult>(await runExtctl(["--root", root, "confext", "list", "--json"]));
  assert.deepEqual(
    (listed.others ?? []).map((o) => [o.path, o.compatible]),
    [["/usr/local/lib/confexts/c", true]],
  );
});
