// Recognises the filesystem inside an image slice and opens it with the right reader, both through
// the filesystem registry, so callers never care whether an extension is squashfs or erofs.
import { ExtctlError } from "../../util/errors.js";
import type { ByteSource } from "../../util/bytes.js";
import {
  FILESYSTEMS,
  READABLE,
  filesystemNamed,
  nameList,
  type FilesystemDescriptor,
  type FilesystemType,
} from "./filesystem-registry.js";
import type { ImageFilesystem } from "./tree.js";

/** Recognises a filesystem by its superblock magic. */
export async function detectFilesystem(source: ByteSource): Promise<FilesystemType> {
  for (const filesystem of FILESYSTEMS as readonly FilesystemDescriptor[]) {
    if (await filesystem.detect(source)) return filesystem.name as FilesystemType;
  }
  return "unknown";
}

export async function openFilesystem(
  source: ByteSource,
  type: FilesystemType,
): Promise<ImageFilesystem> {
  const filesystem = filesystemNamed(type);
  if (filesystem?.open) return filesystem.open(source);
  throw new ExtctlError(
    "unsupported",
    `extctl cannot read ${type} filesystems yet (it reads ${nameList(READABLE, "and")})`,
    { hint: `build the extension as ${nameList(READABLE)}` },
  );
}

/**
 * Reads the superblock the kernel would mount from, with its size claim, for the filesystems
 * extctl reads (a truncated download fails here); others pass unread.
 */
export async function checkSuperblock(source: ByteSource, type: FilesystemType): Promise<void> {
  await filesystemNamed(type)?.checkSuperblock?.(source);
}
