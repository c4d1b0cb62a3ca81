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
