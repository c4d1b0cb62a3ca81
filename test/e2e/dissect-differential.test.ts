// Differential test of extctl's dissection against the real systemd-dissect on PATH (252 on the
// host; the lanes bring 257/262): crafted GPT images (partition types incl. the secondary
// architecture, duplicate labels, noauto, primary/backup splits, LastUsableLBA past the end,
// 4096-byte sectors) and a squashfs/GPT polyglot, made at test time from named recipes plus a
// seeded random series. Fails when the partition extctl designates differs from the one systemd
// mounts. Compares designation and filesystem only (dm-verity is absent here).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { crc32 } from "node:zlib";
import { BufferSource } from "../../src/util/bytes.js";
import { dissectImage, unreadableBySystemd } from "../../src/domain/image/ddi.js";
import { partitionTypeGuid, LINUX_GENERIC_GUID } from "../../src/domain/image/partition-types.js";
import { requirePeers, run } from "../helpers/peers.js";
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

/** What systemd-dissect mounts: "designator:partno:fstype", or "none" when it refuses. */
function systemdPick(file: string): string {
  const r = spawnSync("systemd-dissect", ["--json=short", file], { encoding: "utf8" });
  if (r.status !== 0) return "none";
  const mounts =
    (JSON.parse(r.stdout) as { mounts?: { designator: string; partno?: number; fstype: string }[] })
      .mounts ?? [];
  const m =
    mounts.find((x) => x.designator === "root") ?? mounts.find((x) => x.designator === "usr");
  if (!m) return "none";
  return `${m.designator}:${m.partno && m.partno > 0 ? m.partno : "-"}:${m.fstype}`;
}

/** What extctl designates for a systemd of `version`. */
async function extctlPick(img: Buffer, version: number): Promise<string> {
  try {
    const d = await dissectImage(new BufferSource(img));
    if (unreadableBySystemd(d, version)) return "none";
    return `${d.designator ?? "root"}:${d.data.partition?.index ?? "-"}:${d.filesystem}`;
  } catch {
    return "none";
  }
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
    const got = await extctlPick(img, version);
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
