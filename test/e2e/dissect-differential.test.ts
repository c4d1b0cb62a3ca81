// Differential test of extctl's dissection against the real systemd-dissect on PATH (252 on the
// host; the lanes bring 257/262): crafted GPT images (partition types incl. the secondary
// architecture, duplicate labels, noauto, primary/backup splits, LastUsableLBA past the end,
// 4096-byte sectors) and a squashfs/GPT polyglot, made at test time from named recipes plus a
// seeded random series. Fails when the partition `extctl inspect --json` designates differs from
// the one systemd mounts. A second test grafts unsigned partitions onto a signed DDI made by
// `extctl build` and fails when `extctl verify` admits one under which systemd would mount
// unverified data. Compares designation, filesystem and verity (nothing is mounted here).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { access, copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { crc32 } from "node:zlib";
import { requirePeers, run } from "../helpers/peers.js";
import { runExtctl } from "../helpers/cli.js";
import { tempDir } from "../helpers/tmp.js";
import {
  GRAFTS,
  ISSUE24_RECIPES,
  SIGNED_VARIANTS,
  signedVariant,
  usrSquashfs,
  buildSignedDdi,
  fixHeaderCrc,
  T,
  extctlPick,
  gptImage,
  graft,
  polyglot,
  randomRecipes,
  squashfs,
  systemdMounts,
  systemdPick,
  systemdVersion,
  type Recipe,
} from "../helpers/crafted-ddi.js";

const NAMED: Recipe[] = [
  { name: "root-x86-64", parts: [{ type: T.root64, name: "root" }] },
  {
    name: "duplicate labels A/a",
    parts: [
      { type: T.root64, name: "A" },
      { type: T.root64, name: "a" },
    ],
  },
  {
    name: "duplicate labels a/A",
    parts: [
      { type: T.root64, name: "a" },
      { type: T.root64, name: "A" },
    ],
  },
  {
    name: "labels 1.10 vs 1.9",
    parts: [
      { type: T.root64, name: "1.10" },
      { type: T.root64, name: "1.9" },
    ],
  },
  {
    name: "labels v2~rc1 vs v2",
    parts: [
      { type: T.root64, name: "v2" },
      { type: T.root64, name: "v2~rc1" },
    ],
  },
  {
    name: "newest label noauto",
    parts: [
      { type: T.root64, name: "1" },
      { type: T.root64, name: "2", noauto: true },
    ],
  },
  { name: "secondary arch root only", parts: [{ type: T.root32, name: "root-x86" }] },
  {
    name: "native usr + secondary root",
    parts: [
      { type: T.usr64, name: "usr" },
      { type: T.root32, name: "root-x86" },
    ],
  },
  {
    name: "native + secondary root",
    parts: [
      { type: T.root32, name: "r32" },
      { type: T.root64, name: "r64" },
    ],
  },
  { name: "usr only", parts: [{ type: T.usr64, name: "usr" }] },
  {
    name: "root and usr",
    parts: [
      { type: T.usr64, name: "usr" },
      { type: T.root64, name: "root" },
    ],
  },
  { name: "foreign arm64 root", parts: [{ type: T.rootArm64, name: "root" }] },
  { name: "single generic", parts: [{ type: T.generic, name: "data" }] },
  { name: "4096-byte sectors", parts: [{ type: T.root64, name: "root" }], sectorSize: 4096 },
  {
    // Primary LastUsableLBA past the end (valid CRC): libblkid reads the backup, whose one
    // entry is retyped to root-x86 (entry CRC fixed) so primary and backup name different roots.
    name: "LastUsableLBA past the end, backup differs",
    parts: [{ type: T.usr64, name: "usr" }],
    mutate(img, sector) {
      img.writeBigUInt64LE(BigInt(img.length / sector) + 100n, sector + 48);
      fixHeaderCrc(img, sector);
      const last = img.length - sector;
      const entriesLba = Number(img.readBigUInt64LE(last + 72));
      const entries = entriesLba * sector;
      const raw = Buffer.from(T.root32.replace(/-/g, ""), "hex");
      raw.subarray(0, 4).reverse();
      raw.subarray(4, 6).reverse();
      raw.subarray(6, 8).reverse();
      raw.copy(img, entries);
      img.writeUInt32LE(crc32(img.subarray(entries, entries + 128 * 128)), last + 88);
      fixHeaderCrc(img, last);
    },
  },
  {
    name: "primary MyLBA wrong",
    parts: [{ type: T.root64, name: "root" }],
    mutate(img, sector) {
      img.writeBigUInt64LE(7n, sector + 24);
      fixHeaderCrc(img, sector);
    },
  },
  {
    name: "polyglot squashfs + 512 GPT",
    parts: [{ type: T.root64, name: "root" }],
    polyglot: true,
  },
  {
    name: "polyglot squashfs + 4096 GPT",
    parts: [{ type: T.root64, name: "root" }],
    polyglot: true,
    sectorSize: 4096,
  },
];

test("extctl designates the partition systemd-dissect mounts, for crafted and random images", async (t) => {
  if (!requirePeers(t, ["systemd-dissect", "sfdisk", "mksquashfs", "losetup"], { root: true }))
    return;
  const version = systemdVersion();
  const dir = await tempDir(t);
  const fs = await squashfs(dir);
  const usrFs = await usrSquashfs(dir);
  const recipes = [...NAMED, ...ISSUE24_RECIPES, ...randomRecipes(12, 40)];
  const disagreements: string[] = [];
  let tried = 0;
  for (const [i, r] of recipes.entries()) {
    const work = path.join(dir, `case${i}`);
    await mkdir(work);
    const data = r.usrTree ? usrFs : fs;
    const img = r.polyglot ? await polyglot(work, r, data) : await gptImage(work, r, data);
    const file = path.join(work, "case.raw");
    await writeFile(file, img);
    const want = systemdPick(file);
    const got = await extctlPick(file, version);
    tried++;
    if (want !== got)
      disagreements.push(
        `${r.name}: systemd ${version} ${want}, extctl ${got} (${JSON.stringify(r.parts)})`,
      );
  }
  console.log(
    `bad inputs tried against systemd-dissect ${version}: ${tried}, disagreements: ${disagreements.length}`,
  );
  assert.deepEqual(disagreements, []);
});

test("extctl verify never admits under the signed policy what systemd would mount unverified", async (t) => {
  if (!requirePeers(t, ["systemd-dissect", "sfdisk", "mksquashfs", "openssl"], { root: true }))
    return;
  const version = systemdVersion();
  const dir = await tempDir(t);
  const fs = await squashfs(dir);
  const { file: signed, cert } = await buildSignedDdi(dir);

  const problems: string[] = [];
  let admitted = 0;
  for (const [i, g] of GRAFTS.entries()) {
    const file = path.join(dir, `graft${i}.raw`);
    await graft(signed, g, file, fs);
    const mounts = systemdMounts(file);
    const want = systemdPick(file);
    const got = await extctlPick(file, version);
    if (want !== got) problems.push(`${g.name}: systemd ${version} mounts ${want}, extctl ${got}`);
    if (process.env.KEEP_GRAFTS) run("cp", [file, process.env.KEEP_GRAFTS]);
    const verify = await runExtctl(["verify", "--json", "--trust", cert, file]);
    if (verify.code !== 0) continue;
    admitted++;
    // Admitted as signed: every root/usr systemd mounts must be the signed, verified one.
    const data = (mounts ?? []).filter((m) => m.designator === "root" || m.designator === "usr");
    const unverified = data.filter((m) => m.verity !== "signed");
    if (!mounts || unverified.length > 0)
      problems.push(
        `${g.name}: extctl verify says OK (signed), systemd ${version} mounts ${unverified.map((m) => `${m.designator}:${m.partno} verity=${m.verity ?? "no"}`).join(", ") || "nothing"}`,
      );
  }
  console.log(
    `signed DDIs with grafted partitions tried against systemd-dissect ${version}: ${GRAFTS.length}, admitted: ${admitted}, problems: ${problems.length}`,
  );
  assert.deepEqual(problems, []);
  // The untouched build must be admitted, or the test proves nothing.
  assert.ok(admitted >= 1, "the signed DDI as built is admitted");
});

/** The layouts of issue 24 whose merge check models: all but a root with a usr beside it. */
const MERGE_CASES = ISSUE24_RECIPES.filter((r) => !/root-riscv64 B with usr-arm64/.test(r.name));

/** Whether systemd-sysext really merges `file` (as img.raw) on a fresh root, and what it said. */
async function sysextMerges(
  base: string,
  file: string,
  env: NodeJS.ProcessEnv,
): Promise<{ merged: boolean; says: string; root: string }> {
  const root = await mkdtemp(path.join(base, "root-"));
  await mkdir(path.join(root, "usr/lib"), { recursive: true });
  await mkdir(path.join(root, "run/extensions"), { recursive: true });
  await writeFile(path.join(root, "usr/lib/os-release"), 'ID=debian\nVERSION_ID="12"\n');
  await copyFile(file, path.join(root, "run/extensions/img.raw"));
  const r = spawnSync("systemd-sysext", [`--root=${root}`, "refresh"], { encoding: "utf8", env });
  const merged = await access(
    path.join(root, "usr/lib/extension-release.d/extension-release.img"),
  ).then(
    () => true,
    () => false,
  );
  spawnSync("systemd-sysext", [`--root=${root}`, "unmerge"], { env });
  const says = `exit ${r.status}: ${(r.stderr ?? "").trim().split("\n").slice(-1)[0]}`;
  return { merged, says, root };
}

test("check's verdict equals systemd-sysext's merge for usr-only, overlapping and foreign-architecture layouts", async (t) => {
  if (!requirePeers(t, ["systemd-sysext", "sfdisk", "mksquashfs"], { root: true })) return;
  const version = systemdVersion();
  const dir = await tempDir(t);
  const fs = await squashfs(dir);
  const usrFs = await usrSquashfs(dir);
  const disagreements: string[] = [];
  for (const [i, r] of MERGE_CASES.entries()) {
    const work = path.join(dir, `merge${i}`);
    await mkdir(work);
    const file = path.join(work, "img.raw");
    await writeFile(file, await gptImage(work, r, r.usrTree ? usrFs : fs));
    const env = { ...process.env };
    const real = await sysextMerges(dir, file, env);
    const placed = path.join(real.root, "run/extensions/img.raw");
    const checked = await runExtctl(["--root", real.root, "check", "--json", placed], { env });
    const verdict = JSON.parse(checked.stdout) as { compatible: boolean; reason?: string };
    await rm(real.root, { recursive: true, force: true });
    if (verdict.compatible !== real.merged)
      disagreements.push(
        `${r.name}: check ${verdict.compatible ? "MERGES" : `REFUSED (${verdict.reason})`}, systemd ${version} ${real.merged ? "merged" : "did not merge"} (${real.says})`,
      );
  }
  console.log(
    `crafted layouts against systemd-sysext ${version}: ${MERGE_CASES.length}, disagreements: ${disagreements.length}`,
  );
  assert.deepEqual(disagreements, []);
});

test("extctl designates what systemd-dissect mounts for signed usr-only, 0x root hashes and overlapping verity", async (t) => {
  if (!requirePeers(t, ["systemd-dissect", "sfdisk", "mksquashfs", "openssl"], { root: true }))
    return;
  const version = systemdVersion();
  const dir = await tempDir(t);
  const fs = await squashfs(dir);
  const { file: signed } = await buildSignedDdi(dir);
  const disagreements: string[] = [];
  for (const [i, v] of SIGNED_VARIANTS.entries()) {
    const file = path.join(dir, `variant${i}.raw`);
    await signedVariant(signed, v, file, fs);
    const want = systemdPick(file);
    const got = await extctlPick(file, version);
    if (want !== got) disagreements.push(`${v.name}: systemd ${version} ${want}, extctl ${got}`);
  }
  console.log(
    `signed variants against systemd-dissect ${version}: ${SIGNED_VARIANTS.length}, disagreements: ${disagreements.length}`,
  );
  assert.deepEqual(disagreements, []);
});
