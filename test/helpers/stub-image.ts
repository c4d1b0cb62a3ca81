// The smallest file the store admits as an image (install checks what it stores is one): a
// 4 KiB bare "squashfs" that carries a label. Only for tests of install, enable and apply flows
// that never read the filesystem; the readers' tests use real mksquashfs/mkfs.erofs images.
const SIZE = 4096;
import { randomBytes } from "node:crypto";

/**
 * 4 KiB (or `size` bytes) starting with the squashfs magic, then `label`; different labels,
 * different bytes. Bytes after the label may be overwritten by the caller (a large blob).
 */
export function stubImage(label: string, size = SIZE): Buffer {
  const out = Buffer.alloc(Math.max(size, SIZE));
  out.write("hsqs", 0, "latin1");
  out.writeUInt16LE(Buffer.byteLength(label), 4);
  out.write(label, 6, "utf8");
  return out;
}

/** The label a stubImage carries (undefined when `bytes` is not one). */
export function stubLabel(bytes: Buffer): string | undefined {
  if (bytes.length < SIZE || bytes.toString("latin1", 0, 4) !== "hsqs") return undefined;
  return bytes.toString("utf8", 6, 6 + bytes.readUInt16LE(4));
}

/** `size` random bytes behind a squashfs magic: an "image" the store admits, for bulk tests. */
export function randomImageBytes(size: number): Buffer {
  const out = randomBytes(Math.max(size, SIZE));
  out.write("hsqs", 0, "latin1");
  return out;
}

/**
 * A 4 KiB squashfs whose superblock is whole (version 4.0, a valid block size, tables inside
 * its 4096 bytes used), with `label` after it: what `boot` checks before linking (a cut-short
 * image is skipped). Its tables hold nothing, so it suits only flows that read no files.
 */
export function superblockStubImage(label: string): Buffer {
  const out = Buffer.alloc(SIZE);
  out.write("hsqs", 0, "latin1");
  out.writeUInt32LE(1, 4); // inodes
  out.writeUInt32LE(131072, 12); // block size
  out.writeUInt16LE(1, 20); // gzip
  out.writeUInt16LE(17, 22); // log2 of the block size
  out.writeUInt16LE(1, 26); // ids
  out.writeUInt16LE(4, 28); // version 4.0
  out.writeBigUInt64LE(BigInt(SIZE), 40); // bytes used
  out.writeBigUInt64LE(3072n, 48); // id table
  out.writeBigUInt64LE(0xffffffffffffffffn, 56); // no xattrs
  out.writeBigUInt64LE(1024n, 64); // inode table
  out.writeBigUInt64LE(2048n, 72); // directory table
  out.writeBigUInt64LE(0xffffffffffffffffn, 80); // no fragments
  out.writeBigUInt64LE(0xffffffffffffffffn, 88); // no export table
  out.write(label, 3584, "utf8");
  return out;
}
