// Crafts hostile squashfs images at test time from real mksquashfs output: the tree is built
// uncompressed (-noI -noD -noF -noX) so that its metadata can be found and patched in place.
import { execFileSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { run } from "./peers.js";

const METADATA_SIZE = 8192;

/** The uncompressed metadata of a table: its bytes and, for each byte, its offset in the file. */
interface Table {
  data: Buffer;
  fileOffset: (pos: number) => number;
}

function readTable(image: Buffer, start: number, end: number): Table {
  const parts: Buffer[] = [];
  const bases: { pos: number; file: number }[] = [];
  let at = start;
  let pos = 0;
  while (at + 2 <= end) {
    const header = image.readUInt16LE(at);
    const size = header & 0x7fff;
    if ((header & 0x8000) === 0) throw new Error("craft: metadata is compressed");
    bases.push({ pos, file: at + 2 });
    parts.push(image.subarray(at + 2, at + 2 + size));
    pos += size;
    at += 2 + size;
    if (size !== METADATA_SIZE) break;
  }
  return {
    data: Buffer.concat(parts),
    fileOffset: (p) => {
      let base = bases[0]!;
      for (const b of bases) if (b.pos <= p) base = b;
      return base.file + (p - base.pos);
    },
  };
}

export interface DirEntryAt {
  name: string;
  type: number;
  /** Inode block (relative to the inode table) and offset of the entry's inode. */
  start: number;
  offset: number;
  /** File offset of the entry's u16 inode offset field (may straddle nothing: 2-byte aligned). */
  offsetField: number;
  /** Index of the directory header the entry belongs to. */
  header: number;
}

/** Every entry of the directory table, in table order. */
export function directoryEntries(image: Buffer): DirEntryAt[] {
  const dirStart = Number(image.readBigUInt64LE(72));
  const fragStart = image.readBigUInt64LE(80);
  const lookupStart = Number(image.readBigUInt64LE(88));
  const end = fragStart === 0xffffffffffffffffn ? lookupStart : Number(fragStart);
  const table = readTable(image, dirStart, end);
  const out: DirEntryAt[] = [];
  let p = 0;
  let header = 0;
  while (p + 12 <= table.data.length) {
    const count = table.data.readUInt32LE(p) + 1;
    const start = table.data.readUInt32LE(p + 4);
    p += 12;
    for (let i = 0; i < count; i++) {
      const offset = table.data.readUInt16LE(p);
      const type = table.data.readUInt16LE(p + 4);
      const nameSize = table.data.readUInt16LE(p + 6) + 1;
      const name = table.data.subarray(p + 8, p + 8 + nameSize).toString("utf8");
      out.push({ name, type, start, offset, offsetField: table.fileOffset(p), header });
      p += 8 + nameSize;
    }
    header++;
  }
  return out;
}

/** Builds `tree` (relative path -> file content, or null for a directory) uncompressed. */
export async function mksquashfsUncompressed(
  work: string,
  tree: Record<string, string | null>,
): Promise<Buffer> {
  const src = path.join(work, "tree");
  await mkdir(src, { recursive: true });
  for (const [p, content] of Object.entries(tree)) {
    if (content === null) await mkdir(path.join(src, p), { recursive: true });
    else {
      await mkdir(path.dirname(path.join(src, p)), { recursive: true });
      await writeFile(path.join(src, p), content);
    }
  }
  const out = path.join(work, "plain.squashfs");
  run(
    "mksquashfs",
    [src, out, "-noappend", "-quiet", "-no-progress", "-all-root"].concat([
      "-noI",
      "-noD",
      "-noF",
      "-noX",
      "-mkfs-time",
      "0",
      "-all-time",
      "0",
    ]),
  );
  return readFile(out);
}

/**
 * A "directory bomb": `depth` levels, each a directory with `fanout` subdirectory entries that
 * all point at the same inode, the next level. A tree walk that does not notice shared
 * directories visits fanout^depth entries; the image stays a few KiB.
 */
export async function sharedDirectoryBomb(
  work: string,
  depth: number,
  fanout: number,
): Promise<Buffer> {
  const tree: Record<string, string | null> = {};
  const names = Array.from({ length: fanout }, (_, i) => `d${String(i).padStart(2, "0")}`);
  let prefix = "usr";
  tree[prefix] = null;
  for (let level = 0; level < depth; level++) {
    for (const n of names) tree[`${prefix}/${n}`] = null;
    prefix = `${prefix}/${names[0]}`;
  }
  tree["usr/lib/extension-release.d/extension-release.bomb"] = "ID=_any\n";
  const image = await mksquashfsUncompressed(work, tree);
  const entries = directoryEntries(image);
  // In each directory (one header run) every dNN entry is pointed at d00's inode.
  for (let i = 0; i < entries.length; i++) {
    const first = entries[i]!;
    if (first.name !== names[0] || first.type !== 1) continue;
    for (let j = i + 1; j < entries.length; j++) {
      const e = entries[j]!;
      if (e.header !== first.header || !names.includes(e.name)) break;
      if (e.start !== first.start) throw new Error("craft: entries span inode blocks");
      image.writeUInt16LE(first.offset, e.offsetField);
    }
  }
  return image;
}

function ustarHeader(name: string, type: "0" | "5", mode: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write(`${mode.toString(8).padStart(7, "0")}\0`, 100);
  h.write("0000000\0", 108);
  h.write("0000000\0", 116);
  h.write("00000000000\0", 124);
  h.write("00000000000\0", 136);
  h.write(type, 156);
  h.write("ustar\0", 257);
  h.write("00", 263);
  h.fill(" ", 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return h;
}

/**
 * A squashfs with `count` empty files under usr/share (500 per directory: mksquashfs 4.5 sorts
 * one in-memory directory in quadratic time), made from a tar built in memory (mksquashfs -tar).
 */
export function manyEntriesSquashfs(output: string, count: number): void {
  const parts: Buffer[] = [ustarHeader("usr/", "5", 0o755), ustarHeader("usr/share/", "5", 0o755)];
  const dir = (k: number) => `usr/share/d${String(Math.floor(k / 500)).padStart(4, "0")}`;
  for (let k = 0; k < count; k++) {
    if (k % 500 === 0) parts.push(ustarHeader(`${dir(k)}/`, "5", 0o755));
    parts.push(ustarHeader(`${dir(k)}/f${String(k).padStart(7, "0")}`, "0", 0o644));
  }
  parts.push(Buffer.alloc(1024));
  execFileSync(
    "mksquashfs",
    ["-", output, "-tar", "-noappend", "-quiet", "-no-progress", "-all-root"],
    { input: Buffer.concat(parts), stdio: ["pipe", "pipe", "pipe"] },
  );
}
