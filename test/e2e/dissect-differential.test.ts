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
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { crc32 } from "node:zlib";
import { partitionTypeGuid, LINUX_GENERIC_GUID } from "../../src/domain/image/partition-types.js";
import { requirePeers, run } from "../helpers/peers.js";
import { runExtctl } from "../helpers/cli.js";
import { makeSigningCert } from "../helpers/keys.js";
import { tempDir } from "../helpers/tmp.js";

const MiB = 1024 * 1024;
const T = {
  root64: partitionTypeGuid("root", "x86-64"),
  usr64: partitionTypeGuid("usr", "x86-64"),
  root32: partitionTypeGuid("root", "x86"),
  usr32: partitionTypeGuid("usr", "x86"),
  rootArm64: partitionTypeGuid("root", "arm64"),
  generic: LINUX_GENERIC_GUID,
};

interface Part {
  type: string;
  name: string;
  noauto?: boolean;
}
interface Recipe {
  name: string;
  parts: Part[];
  sectorSize?: 512 | 4096;
  /** Edits the finished image bytes (header fields, backup table...). */
  mutate?: (img: Buffer, sector: number) => void;
  polyglot?: boolean;
}

function systemdVersion(): number {
  const out = run("systemd-dissect", ["--version"]);
  return Number(/systemd (\d+)/.exec(out)?.[1] ?? 0);
}

function fixHeaderCrc(img: Buffer, at: number): void {
  img.writeUInt32LE(0, at + 16);
  img.writeUInt32LE(crc32(img.subarray(at, at + 92)), at + 16);
}

async function squashfs(dir: string): Promise<Buffer> {
  const src = path.join(dir, "src");
  await mkdir(path.join(src, "usr/lib/extension-release.d"), { recursive: true });
  await writeFile(path.join(src, "usr/lib/extension-release.d/extension-release.img"), "ID=_any\n");
  const out = path.join(dir, "fs.sqfs");
  run("mksquashfs", [src, out, "-quiet", "-noappend", "-all-root"]);
  return readFile(out);
}

/** A GPT image of `parts`, each 1 MiB holding the squashfs, written by sfdisk. */
async function gptImage(dir: string, r: Recipe, fs: Buffer): Promise<Buffer> {
  const sector = r.sectorSize ?? 512;
  const file = path.join(dir, "img.raw");
  const size = (2 + r.parts.length) * MiB;
  await writeFile(file, Buffer.alloc(size));
  const perMiB = MiB / sector;
  const lines = r.parts.map(
    (p, i) =>
      `start=${(i + 1) * perMiB}, size=${perMiB}, type=${p.type}, name="${p.name}"${p.noauto ? ', attrs="GUID:63"' : ""}`,
  );
  // sfdisk 2.38 has no --sector-size: a 4096-byte table is written through a loop device.
  const loop =
    sector === 4096 ? run("losetup", ["-f", "--show", "--sector-size", "4096", file]).trim() : "";
  try {
    run("sfdisk", ["-q", loop || file], { input: `label: gpt\n${lines.join("\n")}\n` });
  } finally {
    if (loop) run("losetup", ["-d", loop]);
  }
  const img = await readFile(file);
  r.parts.forEach((_, i) => fs.copy(img, (i + 1) * MiB));
  r.mutate?.(img, sector);
  return img;
}

/** A squashfs whose one uncompressed file holds a protective MBR and a GPT at 512 or 4096. */
async function polyglot(dir: string, r: Recipe, fs: Buffer): Promise<Buffer> {
  const template = await gptImage(path.join(dir), { ...r, polyglot: false }, fs);
  const src = path.join(dir, "poly");
  await mkdir(src, { recursive: true });
  // squashfs stores an uncompressed, unfragmented first file right after its 96-byte superblock.
  await writeFile(path.join(src, "payload"), template.subarray(96, 96 + 64 * 1024));
  const out = path.join(dir, "poly.sqfs");
  run("mksquashfs", [src, out, "-quiet", "-noappend", "-noI", "-noD", "-noF", "-no-fragments"]);
  const sq = await readFile(out);
  const img = Buffer.alloc(template.length);
  template.copy(img);
  sq.copy(img, 0);
  return img;
}

interface DissectMount {
  designator: string;
  partno?: number;
  fstype: string;
  verity?: string | null;
}

/** The partitions systemd-dissect would mount, or undefined when it refuses the image. */
function systemdMounts(file: string): DissectMount[] | undefined {
  const r = spawnSync("systemd-dissect", ["--json=short", file], { encoding: "utf8" });
  if (r.status !== 0) return undefined;
  return (JSON.parse(r.stdout) as { mounts?: DissectMount[] }).mounts ?? [];
}

/** What systemd-dissect mounts: "designator:partno:fstype", or "none" when it refuses. */
function systemdPick(file: string): string {
  const mounts = systemdMounts(file);
  if (!mounts) return "none";
  const m =
    mounts.find((x) => x.designator === "root") ?? mounts.find((x) => x.designator === "usr");
  if (!m) return "none";
  return `${m.designator}:${m.partno && m.partno > 0 ? m.partno : "-"}:${m.fstype}`;
}

interface InspectJson {
  designator?: string;
  filesystem: { type: string };
  partitions: { index: number; role?: string }[];
  requiresSystemd?: { version: number; reason: string };
  refusedSinceSystemd?: { version: number; reason: string };
}

/** What `extctl inspect --json` designates, for a systemd of `version`. */
async function extctlPick(file: string, version: number): Promise<string> {
  const r = await runExtctl(["inspect", "--json", file]);
  if (r.code !== 0) return "none";
  const d = JSON.parse(r.stdout) as InspectJson;
  if (d.requiresSystemd && version < d.requiresSystemd.version) return "none";
  if (d.refusedSinceSystemd && version >= d.refusedSinceSystemd.version) return "none";
  const data = d.partitions.find((p) => p.role === "data");
  return `${d.designator ?? "root"}:${data?.index ?? "-"}:${d.filesystem.type}`;
}

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

/** Deterministic PRNG (mulberry32) so every run tries the same random layouts. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomRecipes(seed: number, count: number): Recipe[] {
  const rnd = prng(seed);
  const pick = <X>(xs: readonly X[]): X => xs[Math.floor(rnd() * xs.length)] as X;
  const types = [T.root64, T.root64, T.usr64, T.root32, T.usr32, T.rootArm64, T.generic];
  const labels = ["A", "a", "1.2", "1.10", "v2~rc1", "v2", "x-1", "x.1", "B", "01", "1", "1^p"];
  return Array.from({ length: count }, (_, n) => ({
    name: `random #${n} (seed ${seed})`,
    parts: Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => ({
      type: pick(types),
      name: pick(labels),
      noauto: rnd() < 0.1,
    })),
  }));
}

test("extctl designates the partition systemd-dissect mounts, for crafted and random images", async (t) => {
  if (!requirePeers(t, ["systemd-dissect", "sfdisk", "mksquashfs", "losetup"], { root: true }))
    return;
  const version = systemdVersion();
  const dir = await tempDir(t);
  const fs = await squashfs(dir);
  const recipes = [...NAMED, ...randomRecipes(12, 40)];
  const disagreements: string[] = [];
  let tried = 0;
  for (const [i, r] of recipes.entries()) {
    const work = path.join(dir, `case${i}`);
    await mkdir(work);
    const img = r.polyglot ? await polyglot(work, r, fs) : await gptImage(work, r, fs);
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

/** A signed DDI's partitions retyped (partno -> type) and unsigned squashfs partitions added. */
interface Graft {
  name: string;
  retype?: [number, string][];
  add?: Part[];
}

const U = {
  usr64: partitionTypeGuid("usr", "x86-64"),
  usrVerity64: partitionTypeGuid("usr-verity", "x86-64"),
  usrSig64: partitionTypeGuid("usr-verity-sig", "x86-64"),
  usrArm64: partitionTypeGuid("usr", "arm64"),
};

const GRAFTS: Graft[] = [
  { name: "the signed DDI as built" },
  { name: "+ unsigned root-x86", add: [{ type: T.root32, name: "root-x86" }] },
  {
    // Issue 12, bug 1: signed usr partitions and an unsigned 32-bit root, which systemd prefers.
    name: "retyped to usr + unsigned root-x86",
    retype: [
      [1, U.usr64],
      [2, U.usrVerity64],
      [3, U.usrSig64],
    ],
    add: [{ type: T.root32, name: "root-x86" }],
  },
  {
    name: "+ unsigned root-x86-64 with a newer label",
    add: [{ type: T.root64, name: "root-x86-65" }],
  },
  { name: "+ unsigned root-x86-64 with an older label", add: [{ type: T.root64, name: "a" }] },
  { name: "+ unsigned usr-x86-64", add: [{ type: U.usr64, name: "usr" }] },
  { name: "+ unsigned usr-arm64", add: [{ type: U.usrArm64, name: "usr-arm64" }] },
  { name: "+ unsigned root-arm64", add: [{ type: T.rootArm64, name: "root-arm64" }] },
  { name: "+ unsigned generic", add: [{ type: T.generic, name: "data" }] },
  { name: "root retyped generic: verity and signature without data", retype: [[1, T.generic]] },
  { name: "verity retyped generic: signature without verity", retype: [[2, T.generic]] },
  {
    name: "data and verity retyped to usr, signature left for root",
    retype: [
      [1, U.usr64],
      [2, U.usrVerity64],
    ],
  },
];

/** Applies a graft to a copy of `signed`: grows the file, retypes, appends and fills partitions. */
async function graft(signed: string, g: Graft, out: string, fs: Buffer): Promise<void> {
  const img = await readFile(signed);
  const extra = (g.add?.length ?? 0) * MiB + MiB;
  await writeFile(out, Buffer.concat([img, Buffer.alloc(extra)]));
  run("sfdisk", ["-q", "--relocate", "gpt-bak-std", out]);
  for (const [n, type] of g.retype ?? [])
    run("sfdisk", ["-q", "--part-type", out, String(n), type]);
  for (const p of g.add ?? []) {
    run("sfdisk", ["-q", "--append", out], {
      input: `size=${MiB / 512}, type=${p.type}, name="${p.name}"\n`,
    });
    const table = JSON.parse(run("sfdisk", ["--json", out])) as {
      partitiontable: { partitions: { start: number }[] };
    };
    const start = table.partitiontable.partitions.at(-1)!.start;
    const bytes = await readFile(out);
    fs.copy(bytes, start * 512);
    await writeFile(out, bytes);
  }
}

test("extctl verify never admits under the signed policy what systemd would mount unverified", async (t) => {
  if (!requirePeers(t, ["systemd-dissect", "sfdisk", "mksquashfs", "openssl"], { root: true }))
    return;
  const version = systemdVersion();
  const dir = await tempDir(t);
  const fs = await squashfs(dir);
  const pki = makeSigningCert(dir, "differential");
  const src = path.join(dir, "signed-src");
  await mkdir(path.join(src, "usr/lib/extension-release.d"), { recursive: true });
  await writeFile(path.join(src, "usr/lib/extension-release.d/extension-release.img"), "ID=_any\n");
  const built = await runExtctl([
    "build",
    "sysext",
    "img",
    src,
    "-o",
    dir,
    "--format",
    "squashfs",
    "--private-key",
    pki.key,
    "--certificate",
    pki.cert,
  ]);
  assert.equal(built.code, 0, built.stderr);
  const signed = path.join(dir, "img.sysext.raw");

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
    const verify = await runExtctl(["verify", "--json", "--trust", pki.cert, file]);
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
