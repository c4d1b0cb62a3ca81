// The one table of filesystems an image may hold: each names its superblock magic and, when extctl
// reads or builds it, its reader and its mkfs; detection, build and every list of names ask here.
import type { ByteSource } from "../../util/bytes.js";
import type { ImageFilesystem } from "./tree.js";
import { erofs } from "./erofs/descriptor.js";
import { squashfs } from "./squashfs/descriptor.js";

/** What build hands a filesystem's mkfs: the staging tree, the output and what makes it reproducible. */
export interface MkfsInput {
  /** The compressor as given to --compress, already defaulted. */
  compress: string;
  stagingDir: string;
  output: string;
  /** Build time and latest file time (SOURCE_DATE_EPOCH). */
  epoch: number;
  /** Filesystem UUID (for the formats that have one). */
  uuid: string;
  keepOwners?: boolean;
}

export interface MkfsDescriptor {
  readonly program: string;
  readonly defaultCompress: string;
  /** How --help lists the compressors, e.g. "none|lz4|lz4hc[,LEVEL]". */
  readonly compressHelp: string;
  /** What to do when the program is missing. */
  readonly missingHint: string;
  /** The format build makes when --format is not given (exactly one has it). */
  readonly isDefault?: boolean;
  /** The argv and environment; refuses a compressor the program lacks (a usage error). */
  command(input: MkfsInput): { args: string[]; env: Record<string, string> };
}

export interface FilesystemDescriptor {
  readonly name: string;
  /** Whether the source starts with this filesystem's superblock (reads a few bytes). */
  detect(source: ByteSource): Promise<boolean>;
  /** Loads the reader on first use. Absent: extctl recognises the filesystem, not its contents. */
  open?(source: ByteSource): Promise<ImageFilesystem>;
  /** Reads the superblock the kernel mounts from, refusing a damaged or truncated one. */
  checkSuperblock?(source: ByteSource): Promise<void>;
  readonly mkfs?: MkfsDescriptor;
}

/** A filesystem systemd may mount but extctl neither reads nor builds: named by its magic only. */
function recognised<const N extends string>(
  name: N,
  detect: (source: ByteSource) => Promise<boolean>,
): { readonly name: N; detect: typeof detect } {
  return { name, detect };
}

const xfs = recognised("xfs", async (source) => {
  const head = await source.readAt(0, 4);
  // "XFSB": xfs keeps its superblock big-endian.
  return head.length >= 4 && head.readUInt32BE(0) === 0x58465342;
});

const ext4 = recognised("ext4", async (source) => {
  if (source.size < 1082) return false;
  const magic = await source.readAt(1080, 2);
  return magic.length === 2 && magic.readUInt16LE(0) === 0xef53;
});

const btrfs = recognised("btrfs", async (source) => {
  if (source.size < 0x10048) return false;
  return (await source.readAt(0x10040, 8)).toString("latin1") === "_BHRfS_M";
});

const vfat = recognised("vfat", async (source) => {
  if (source.size < 512) return false;
  const boot = await source.readAt(0, 512);
  return (
    boot.length === 512 &&
    boot.readUInt16LE(510) === 0xaa55 &&
    (boot.toString("latin1", 54, 59) === "FAT12" ||
      boot.toString("latin1", 54, 59) === "FAT16" ||
      boot.toString("latin1", 82, 87) === "FAT32")
  );
});

/** In detection order: the first whose magic matches names the filesystem. */
export const FILESYSTEMS = [squashfs, xfs, erofs, ext4, btrfs, vfat] as const;

export type FilesystemType = (typeof FILESYSTEMS)[number]["name"] | "unknown";

/** "squashfs, xfs, …": every filesystem extctl recognises, for messages. */
export const FILESYSTEM_NAMES: string = FILESYSTEMS.map((f) => f.name).join(", ");

/** The filesystems extctl reads (those with a reader). */
export type ReadableFilesystem = Extract<(typeof FILESYSTEMS)[number], { open: object }>["name"];

/** The filesystems build can make (those with an mkfs), the default one first. */
export type FilesystemFormat = Extract<(typeof FILESYSTEMS)[number], { mkfs: object }>["name"];

type Buildable = FilesystemDescriptor & { name: FilesystemFormat; mkfs: MkfsDescriptor };

const BUILDABLE: readonly Buildable[] = (FILESYSTEMS as readonly FilesystemDescriptor[])
  .filter((f): f is Buildable => f.mkfs !== undefined)
  .sort((a, b) => Number(b.mkfs.isDefault === true) - Number(a.mkfs.isDefault === true));

export const FORMATS: readonly FilesystemFormat[] = BUILDABLE.map((f) => f.name);

export const DEFAULT_FORMAT: FilesystemFormat = FORMATS[0] as FilesystemFormat;

/** The filesystems extctl can read, in the table's order. */
export const READABLE = (FILESYSTEMS as readonly FilesystemDescriptor[])
  .filter((f) => f.open !== undefined)
  .map((f) => f.name) as readonly ReadableFilesystem[];

export function filesystemNamed(name: string): FilesystemDescriptor | undefined {
  return (FILESYSTEMS as readonly FilesystemDescriptor[]).find((f) => f.name === name);
}

/** The mkfs of a buildable format; undefined for any other name. */
export function mkfsOf(format: string): MkfsDescriptor | undefined {
  return BUILDABLE.find((f) => f.name === format)?.mkfs;
}

/** "a, b or c" (or "and"): names as a sentence lists them. */
export function nameList(names: readonly string[], last: "or" | "and" = "or"): string {
  return names.length < 2
    ? names.join("")
    : `${names.slice(0, -1).join(", ")} ${last} ${names.at(-1)}`;
}
