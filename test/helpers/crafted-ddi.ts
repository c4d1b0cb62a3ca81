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
  /** The partitions hold a /usr tree (lib/extension-release.d at the top), as a usr partition should. */
  usrTree?: boolean;
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

/** A squashfs laid out as a usr partition's: the release file at lib/extension-release.d. */
export async function usrSquashfs(dir: string): Promise<Buffer> {
  const src = path.join(dir, "usr-src");
  await mkdir(path.join(src, "lib/extension-release.d"), { recursive: true });
  await writeFile(path.join(src, "lib/extension-release.d/extension-release.img"), "ID=_any\n");
  const out = path.join(dir, "usr.sqfs");
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

// ---- Issue 24 items 6, 8, 9: usr-only, overlapping partitions, 0x root hashes, foreign sets ----

/**
 * Moves partition entries of a finished GPT image (both tables; entry and header CRCs fixed):
 * `edit` gets each entry's first and last LBA and returns new ones, or undefined to keep them.
 */
export function editEntries(
  img: Buffer,
  sector: number,
  edit: (index: number, first: bigint, last: bigint) => [bigint, bigint] | undefined,
): void {
  for (const at of [sector, img.length - sector]) {
    const entries = Number(img.readBigUInt64LE(at + 72)) * sector;
    const count = img.readUInt32LE(at + 80);
    const size = img.readUInt32LE(at + 84);
    for (let i = 0; i < count; i++) {
      const e = entries + i * size;
      if (allZeroAt(img, e, 16)) continue;
      const moved = edit(i, img.readBigUInt64LE(e + 32), img.readBigUInt64LE(e + 40));
      if (!moved) continue;
      img.writeBigUInt64LE(moved[0], e + 32);
      img.writeBigUInt64LE(moved[1], e + 40);
    }
    img.writeUInt32LE(crc32(img.subarray(entries, entries + count * size)), at + 88);
    fixHeaderCrc(img, at);
  }
}

function allZeroAt(b: Buffer, at: number, n: number): boolean {
  for (let i = at; i < at + n; i++) if (b[i] !== 0) return false;
  return true;
}

const riscv = {
  root: partitionTypeGuid("root", "riscv64"),
  usr: partitionTypeGuid("usr", "riscv64"),
};
const HALF = BigInt(MiB / 512 / 2);

/**
 * Layouts systemd cannot open or reads otherwise per version: a usr-only image, partitions that
 * share sectors (the kernel keeps only the first of two overlapping partitions as a device), and
 * several foreign-architecture partitions (252 keeps one slot for all of them, 253+ too, by label).
 */
export const ISSUE24_RECIPES: Recipe[] = [
  {
    name: "usr-only holding a /usr tree (lib/extension-release.d at its top)",
    parts: [{ type: T.usr64, name: "usr" }],
    usrTree: true,
  },
  {
    name: "usr-only holding a root tree (usr/lib/extension-release.d)",
    parts: [{ type: T.usr64, name: "usr" }],
  },
  {
    name: "usr-only /usr tree, usr-arm64 A and usr-riscv64 B",
    parts: [
      { type: U.usrArm64, name: "A" },
      { type: partitionTypeGuid("usr", "riscv64"), name: "B" },
    ],
    usrTree: true,
  },
  {
    name: "overlap: a later generic partition starts inside the root",
    parts: [
      { type: T.root64, name: "root" },
      { type: T.generic, name: "data" },
    ],
    mutate: (img, s) => editEntries(img, s, (i, f, l) => (i === 1 ? [f - HALF, l] : undefined)),
  },
  {
    name: "overlap: an earlier generic partition runs into the root",
    parts: [
      { type: T.generic, name: "data" },
      { type: T.root64, name: "root" },
    ],
    mutate: (img, s) => editEntries(img, s, (i, f, l) => (i === 0 ? [f, l + HALF] : undefined)),
  },
  {
    name: "overlap: two roots on the same sectors, the newer label second",
    parts: [
      { type: T.root64, name: "1" },
      { type: T.root64, name: "2" },
    ],
    mutate(img, s) {
      let first = 0n;
      let last = 0n;
      editEntries(img, s, (i, f, l) => {
        if (i === 0) [first, last] = [f, l];
        return i === 1 ? [first, last] : undefined;
      });
    },
  },
  {
    name: "overlap: two roots on the same sectors, the newer label first",
    parts: [
      { type: T.root64, name: "2" },
      { type: T.root64, name: "1" },
    ],
    mutate(img, s) {
      let first = 0n;
      let last = 0n;
      editEntries(img, s, (i, f, l) => {
        if (i === 0) [first, last] = [f, l];
        return i === 1 ? [first, last] : undefined;
      });
    },
  },
  {
    // 252 opens the arm64 root for its slot of other architectures; 253+ never takes a worse
    // architecture over the native root, so it never opens it.
    name: "overlap: a root-arm64 on the native root's sectors",
    parts: [
      { type: T.root64, name: "root" },
      { type: T.rootArm64, name: "root-arm64" },
    ],
    mutate(img, s) {
      let first = 0n;
      let last = 0n;
      editEntries(img, s, (i, f, l) => {
        if (i === 0) [first, last] = [f, l];
        return i === 1 ? [first, last] : undefined;
      });
    },
  },
  {
    name: "foreign: root-arm64 B before root-riscv64 A",
    parts: [
      { type: T.rootArm64, name: "B" },
      { type: riscv.root, name: "A" },
    ],
  },
  {
    name: "foreign: root-arm64 A before root-riscv64 B",
    parts: [
      { type: T.rootArm64, name: "A" },
      { type: riscv.root, name: "B" },
    ],
  },
  {
    name: "foreign: root-riscv64 1.9 before root-arm64 1.10",
    parts: [
      { type: riscv.root, name: "1.9" },
      { type: T.rootArm64, name: "1.10" },
    ],
  },
  {
    name: "foreign: root-arm64 and usr-riscv64",
    parts: [
      { type: T.rootArm64, name: "root" },
      { type: riscv.usr, name: "usr" },
    ],
  },
  {
    name: "foreign: root-arm64 beside a native usr",
    parts: [
      { type: T.rootArm64, name: "root" },
      { type: T.usr64, name: "usr" },
    ],
  },
  {
    name: "foreign: usr-arm64 A and usr-riscv64 B, no root",
    parts: [
      { type: U.usrArm64, name: "A" },
      { type: riscv.usr, name: "B" },
    ],
  },
  {
    name: "foreign: root-arm64 Z, root-riscv64 A and a secondary root-x86 A",
    parts: [
      { type: T.rootArm64, name: "Z" },
      { type: riscv.root, name: "A" },
      { type: T.root32, name: "A" },
    ],
  },
  {
    name: "foreign: root-riscv64 B with usr-arm64 A and usr-riscv64 0",
    parts: [
      { type: riscv.root, name: "B" },
      { type: U.usrArm64, name: "A" },
      { type: riscv.usr, name: "0" },
    ],
  },
];

/** Signed DDIs (from buildSignedDdi) made usr-only, or with their signature JSON's rootHash spelt otherwise. */
export interface SignedVariant {
  name: string;
  graft?: Graft;
  /** Rewrites the rootHash string in the signature partition (partition 3). */
  rootHash?: (hex: string) => string;
  /** Moves partition entries (0-based index) after grafting. */
  overlap?: (i: number, first: bigint, last: bigint) => [bigint, bigint] | undefined;
}

export const SIGNED_VARIANTS: SignedVariant[] = [
  { name: "signed, as built" },
  {
    name: "signed usr-only (usr, usr-verity, usr-verity-sig, no root)",
    graft: {
      name: "usr-only",
      retype: [
        [1, U.usr64],
        [2, U.usrVerity64],
        [3, U.usrSig64],
      ],
    },
  },
  {
    name: "verity usr-only without a signature partition",
    graft: {
      name: "usr-only unsigned",
      retype: [
        [1, U.usr64],
        [2, U.usrVerity64],
        [3, T.generic],
      ],
    },
  },
  { name: 'rootHash "0x…"', rootHash: (h) => `0x${h}` },
  { name: 'rootHash "0X…"', rootHash: (h) => `0X${h}` },
  { name: "rootHash in upper case", rootHash: (h) => h.toUpperCase() },
  { name: "rootHash with a trailing newline", rootHash: (h) => `${h}\n` },
  {
    name: "overlap: the verity partition starts inside the data partition",
    overlap: (i, f, l) => (i === 1 ? [f - 8n, l] : undefined),
  },
];

/** Makes `variant` of the signed DDI `signed` at `out`. */
export async function signedVariant(
  signed: string,
  variant: SignedVariant,
  out: string,
  fs: Buffer,
): Promise<void> {
  if (variant.graft) await graft(signed, variant.graft, out, fs);
  else await writeFile(out, await readFile(signed));
  if (!variant.rootHash && !variant.overlap) return;
  const img = await readFile(out);
  if (variant.overlap) editEntries(img, 512, variant.overlap);
  if (variant.rootHash) {
    const table = JSON.parse(run("sfdisk", ["--json", out])) as {
      partitiontable: { partitions: { start: number; size: number }[] };
    };
    const sig = table.partitiontable.partitions[2]!;
    const at = sig.start * 512;
    const raw = img.subarray(at, at + sig.size * 512);
    const json = JSON.parse(raw.subarray(0, raw.indexOf(0)).toString("utf8")) as {
      rootHash: string;
    };
    json.rootHash = variant.rootHash(json.rootHash);
    raw.fill(0);
    Buffer.from(JSON.stringify(json)).copy(raw);
  }
  await writeFile(out, img);
}
