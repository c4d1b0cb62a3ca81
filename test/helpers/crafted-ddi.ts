// Crafted disk images for the dissection tests (test/e2e/dissect-differential, the fault suite's
// differential target, signed admission): GPT layouts written by sfdisk around a small squashfs,
// squashfs/GPT polyglots, unsigned partitions grafted onto a signed DDI, and the two readers'
// answers: what systemd-dissect would mount and what `extctl inspect --json` designates.
import { spawnSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { crc32 } from "node:zlib";
import { partitionTypeGuid, LINUX_GENERIC_GUID } from "../../src/domain/image/partition-types.js";
import { run } from "./peers.js";
import { runExtctl } from "./cli.js";
import { makeSigningCert } from "./keys.js";

export const MiB = 1024 * 1024;
export const T = {
  root64: partitionTypeGuid("root", "x86-64"),
  usr64: partitionTypeGuid("usr", "x86-64"),
  root32: partitionTypeGuid("root", "x86"),
  usr32: partitionTypeGuid("usr", "x86"),
  rootArm64: partitionTypeGuid("root", "arm64"),
  generic: LINUX_GENERIC_GUID,
};

export interface Part {
  type: string;
  name: string;
  noauto?: boolean;
}
export interface Recipe {
  name: string;
  parts: Part[];
  sectorSize?: 512 | 4096;
  /** Edits the finished image bytes (header fields, backup table...). */
  mutate?: (img: Buffer, sector: number) => void;
  polyglot?: boolean;
}

export function systemdVersion(): number {
  const out = run("systemd-dissect", ["--version"]);
  return Number(/systemd (\d+)/.exec(out)?.[1] ?? 0);
}

export function fixHeaderCrc(img: Buffer, at: number): void {
  img.writeUInt32LE(0, at + 16);
  img.writeUInt32LE(crc32(img.subarray(at, at + 92)), at + 16);
}

export async function squashfs(dir: string): Promise<Buffer> {
  const src = path.join(dir, "src");
  await mkdir(path.join(src, "usr/lib/extension-release.d"), { recursive: true });
  await writeFile(path.join(src, "usr/lib/extension-release.d/extension-release.img"), "ID=_any\n");
  const out = path.join(dir, "fs.sqfs");
  run("mksquashfs", [src, out, "-quiet", "-noappend", "-all-root"]);
  return readFile(out);
}

/** A GPT image of `parts`, each 1 MiB holding the squashfs, written by sfdisk. */
export async function gptImage(dir: string, r: Recipe, fs: Buffer): Promise<Buffer> {
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
export async function polyglot(dir: string, r: Recipe, fs: Buffer): Promise<Buffer> {
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

export interface DissectMount {
  designator: string;
  partno?: number;
  fstype: string;
  verity?: string | null;
}

/** The partitions systemd-dissect would mount, or undefined when it refuses the image. */
export function systemdMounts(file: string): DissectMount[] | undefined {
  const r = spawnSync("systemd-dissect", ["--json=short", file], { encoding: "utf8" });
  if (r.status !== 0) return undefined;
  return (JSON.parse(r.stdout) as { mounts?: DissectMount[] }).mounts ?? [];
}

/** What systemd-dissect mounts: "designator:partno:fstype", or "none" when it refuses. */
export function systemdPick(file: string): string {
  const mounts = systemdMounts(file);
  if (!mounts) return "none";
  const m =
    mounts.find((x) => x.designator === "root") ?? mounts.find((x) => x.designator === "usr");
  if (!m) return "none";
  return `${m.designator}:${m.partno && m.partno > 0 ? m.partno : "-"}:${m.fstype}`;
}

export interface InspectJson {
  designator?: string;
  filesystem: { type: string };
  partitions: { index: number; role?: string }[];
  requiresSystemd?: { version: number; reason: string };
  refusedSinceSystemd?: { version: number; reason: string };
}

/** What `extctl inspect --json` designates, for a systemd of `version`. */
export async function extctlPick(file: string, version: number): Promise<string> {
  const r = await runExtctl(["inspect", "--json", file]);
  if (r.code !== 0) return "none";
  const d = JSON.parse(r.stdout) as InspectJson;
  if (d.requiresSystemd && version < d.requiresSystemd.version) return "none";
  if (d.refusedSinceSystemd && version >= d.refusedSinceSystemd.version) return "none";
  const data = d.partitions.find((p) => p.role === "data");
  return `${d.designator ?? "root"}:${data?.index ?? "-"}:${d.filesystem.type}`;
}

/** Deterministic PRNG (mulberry32) so every run tries the same random layouts. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomRecipes(seed: number, count: number): Recipe[] {
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

/** A signed DDI's partitions retyped (partno -> type) and unsigned squashfs partitions added. */
export interface Graft {
  name: string;
  retype?: [number, string][];
  add?: Part[];
}

export const U = {
  usr64: partitionTypeGuid("usr", "x86-64"),
  usrVerity64: partitionTypeGuid("usr-verity", "x86-64"),
  usrSig64: partitionTypeGuid("usr-verity-sig", "x86-64"),
  usrArm64: partitionTypeGuid("usr", "arm64"),
};

export const GRAFTS: Graft[] = [
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
export async function graft(signed: string, g: Graft, out: string, fs: Buffer): Promise<void> {
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

/** A signed squashfs DDI made by `extctl build` (release file for "img"), and its certificate. */
export async function buildSignedDdi(
  dir: string,
): Promise<{ file: string; cert: string; key: string }> {
  const pki = makeSigningCert(dir, "crafted-signer");
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
  if (built.code !== 0) throw new Error(`extctl build failed: ${built.stderr}`);
  return { file: path.join(dir, "img.sysext.raw"), cert: pki.cert, key: pki.key };
}

/** Seeded random grafts onto a signed DDI: retyped partitions and added unsigned ones. */
export function randomGrafts(seed: number, count: number): Graft[] {
  const rnd = prng(seed);
  const pick = <X>(xs: readonly X[]): X => xs[Math.floor(rnd() * xs.length)] as X;
  const types = [
    T.root64,
    T.root32,
    T.usr64,
    T.usr32,
    T.rootArm64,
    T.generic,
    U.usr64,
    U.usrVerity64,
    U.usrSig64,
    U.usrArm64,
    partitionTypeGuid("root-verity", "x86-64"),
    partitionTypeGuid("root-verity-sig", "x86-64"),
    partitionTypeGuid("root-verity", "x86"),
  ];
  const labels = ["root-x86-64", "root-x86-65", "a", "B", "1.10", "v2~rc1", "usr"];
  return Array.from({ length: count }, (_, n) => ({
    name: `random graft #${n} (seed ${seed})`,
    ...(rnd() < 0.4
      ? {
          retype: Array.from(
            { length: 1 + Math.floor(rnd() * 2) },
            () => [1 + Math.floor(rnd() * 3), pick(types)] as [number, string],
          ),
        }
      : {}),
    add: Array.from({ length: Math.floor(rnd() * 3) }, () => ({
      type: pick(types),
      name: pick(labels),
    })),
  }));
}
