// GUID partition table reader for extension images (DDIs): protective MBR, primary and backup
// headers with their CRC32s, and the partition entry array, on 512- or 4096-byte sectors.
import { crc32 } from "node:zlib";
import { ExtctlError } from "../../util/errors.js";
import { readExactly, type ByteSource } from "../../util/bytes.js";

export interface GptPartition {
  /** 1-based slot number in the entry array, as the kernel and sfdisk number partitions. */
  index: number;
  typeGuid: string;
  uniqueGuid: string;
  /** The partition name (label). */
  name: string;
  firstLba: number;
  lastLba: number;
  /** Byte offset of the partition in the image. */
  offset: number;
  size: number;
  attributes: bigint;
  readOnly: boolean;
  growFs: boolean;
  noAuto: boolean;
}

export interface GptTable {
  sectorSize: 512 | 4096;
  diskGuid: string;
  firstUsableLba: number;
  lastUsableLba: number;
  partitions: GptPartition[];
  /** Problems that did not stop reading, e.g. a damaged backup header. */
  warnings: string[];
}

const SIGNATURE = "EFI PART";
/** Large enough for any table a tool makes (128 entries of 128 bytes is the norm). */
const MAX_ENTRY_ARRAY_BYTES = 1024 * 1024;

const ATTR_READ_ONLY = 1n << 60n;
const ATTR_GROW_FS = 1n << 59n;
const ATTR_NO_AUTO = 1n << 63n;

/** Formats 16 GUID bytes stored mixed-endian (first three fields little-endian). */
export function guidFromBytes(b: Buffer): string {
  const hex = (from: number, to: number, reverse: boolean) => {
    const part = Buffer.from(b.subarray(from, to));
    return (reverse ? part.reverse() : part).toString("hex");
  };
  return [
    hex(0, 4, true),
    hex(4, 6, true),
    hex(6, 8, true),
    hex(8, 10, false),
    hex(10, 16, false),
  ].join("-");
}

export function guidToBytes(guid: string): Buffer {
  const hex = guid.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new ExtctlError("format", `not a GUID: ${guid}`);
  const raw = Buffer.from(hex, "hex");
  raw.subarray(0, 4).reverse();
  raw.subarray(4, 6).reverse();
  raw.subarray(6, 8).reverse();
  return raw;
}

const ZERO_GUID = "00000000-0000-0000-0000-000000000000";

/** True when the source starts with a GPT signature at LBA 1 for either sector size. */
export async function hasGpt(source: ByteSource): Promise<boolean> {
  return (await detectSectorSize(source)) !== undefined;
}

async function detectSectorSize(source: ByteSource): Promise<512 | 4096 | undefined> {
  for (const size of [512, 4096] as const) {
    if (source.size < size * 2) continue;
    const sig = await source.readAt(size, 8);
    if (sig.toString("latin1") === SIGNATURE) return size;
  }
  return undefined;
}

interface Header {
  currentLba: bigint;
  backupLba: bigint;
  firstUsableLba: bigint;
  lastUsableLba: bigint;
  diskGuid: string;
  entriesLba: bigint;
  entryCount: number;
  entrySize: number;
  entriesCrc: number;
}

/** Reads and checks one header; returns a reason string when it is not valid. */
async function readHeader(
  source: ByteSource,
  sectorSize: number,
  lba: bigint,
): Promise<Header | string> {
  const offset = Number(lba) * sectorSize;
  if (lba <= 0n || offset + sectorSize > source.size) return `LBA ${lba} lies past the end`;
  const sector = await readExactly(source, offset, sectorSize, "GPT header");
  if (sector.toString("latin1", 0, 8) !== SIGNATURE) return "signature 'EFI PART' missing";
  const headerSize = sector.readUInt32LE(12);
  if (headerSize < 92 || headerSize > sectorSize) return `header size ${headerSize} is invalid`;
  const copy = Buffer.from(sector.subarray(0, headerSize));
  const storedCrc = copy.readUInt32LE(16);
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== storedCrc) return "header CRC32 does not match";
  const header: Header = {
    currentLba: sector.readBigUInt64LE(24),
    backupLba: sector.readBigUInt64LE(32),
    firstUsableLba: sector.readBigUInt64LE(40),
    lastUsableLba: sector.readBigUInt64LE(48),
    diskGuid: guidFromBytes(sector.subarray(56, 72)),
    entriesLba: sector.readBigUInt64LE(72),
    entryCount: sector.readUInt32LE(80),
    entrySize: sector.readUInt32LE(84),
    entriesCrc: sector.readUInt32LE(88),
  };
  if (header.currentLba !== lba) return `header says it sits at LBA ${header.currentLba}`;
  if (header.entrySize < 128 || header.entrySize % 8 !== 0)
    return `partition entry size ${header.entrySize} is invalid`;
  if (header.entryCount * header.entrySize > MAX_ENTRY_ARRAY_BYTES)
    return `partition entry array of ${header.entryCount} entries is too large`;
  if (header.firstUsableLba > header.lastUsableLba) return "usable LBA range is empty";
  return header;
}

async function readEntries(
  source: ByteSource,
  sectorSize: number,
  header: Header,
): Promise<Buffer | string> {
  const offset = Number(header.entriesLba) * sectorSize;
  const length = header.entryCount * header.entrySize;
  if (header.entriesLba <= 0n || offset + length > source.size)
    return "partition entry array lies past the end";
  const entries = await readExactly(source, offset, length, "GPT partition entries");
  if (crc32(entries) !== header.entriesCrc) return "partition entry array CRC32 does not match";
  return entries;
}

function decodeName(raw: Buffer): string {
  let end = 0;
  while (end + 1 < raw.length && raw.readUInt16LE(end) !== 0) end += 2;
  return raw.toString("utf16le", 0, end);
}

/**
 * Reads the GPT of an image. A damaged primary header or entry array falls back to the backup
 * (with a warning); both damaged is an error.
 */
export async function readGpt(source: ByteSource): Promise<GptTable> {
  const sectorSize = await detectSectorSize(source);
  if (sectorSize === undefined) {
    throw new ExtctlError(
      "format",
      "the image has no GUID partition table (no 'EFI PART' at LBA 1)",
      {
        hint: "pass a GPT disk image, or a bare squashfs/erofs filesystem",
      },
    );
  }
  const warnings: string[] = [];
  const mbr = await readExactly(source, 0, 512, "protective MBR");
  const hasPmbr =
    mbr.readUInt16LE(510) === 0xaa55 && [0, 1, 2, 3].some((i) => mbr[446 + i * 16 + 4] === 0xee);
  if (!hasPmbr) {
    throw new ExtctlError(
      "format",
      "the image has a GPT header but no protective MBR (no 0x55AA signature or no 0xEE partition)",
      { hint: "repair the partition table, e.g. with `sgdisk -e` or by rebuilding the image" },
    );
  }

  const lastLba = BigInt(Math.floor(source.size / sectorSize) - 1);
  const primary = await readHeader(source, sectorSize, 1n);
  let primaryEntries: Buffer | string = "primary header invalid";
  if (typeof primary !== "string") primaryEntries = await readEntries(source, sectorSize, primary);

  const backupLba = typeof primary !== "string" ? primary.backupLba : lastLba;
  const backup = await readHeader(source, sectorSize, backupLba);
  let backupEntries: Buffer | string = "backup header invalid";
  if (typeof backup !== "string") backupEntries = await readEntries(source, sectorSize, backup);

  let header: Header;
  let entries: Buffer;
  if (typeof primary !== "string" && typeof primaryEntries !== "string") {
    header = primary;
    entries = primaryEntries;
    if (typeof backup === "string") warnings.push(`backup GPT header: ${backup}`);
    else if (typeof backupEntries === "string") warnings.push(`backup GPT: ${backupEntries}`);
    else if (backupLba !== lastLba)
      warnings.push(`backup GPT header is at LBA ${backupLba}, not the last LBA ${lastLba}`);
  } else if (typeof backup !== "string" && typeof backupEntries !== "string") {
    header = backup;
    entries = backupEntries;
    const reason = typeof primary === "string" ? primary : (primaryEntries as string);
    warnings.push(`primary GPT is damaged (${reason}); using the backup`);
  } else {
    const reason = typeof primary === "string" ? primary : (primaryEntries as string);
    throw new ExtctlError(
      "format",
      `the GUID partition table is damaged: ${reason} (and the backup is unusable too)`,
      { hint: "the image is corrupt or truncated; download or build it again" },
    );
  }

  const partitions: GptPartition[] = [];
  for (let i = 0; i < header.entryCount; i++) {
    const e = entries.subarray(i * header.entrySize, (i + 1) * header.entrySize);
    const typeGuid = guidFromBytes(e.subarray(0, 16));
    if (typeGuid === ZERO_GUID) continue;
    const first = e.readBigUInt64LE(32);
    const last = e.readBigUInt64LE(40);
    if (
      first > last ||
      first < header.firstUsableLba ||
      last > header.lastUsableLba ||
      (last + 1n) * BigInt(sectorSize) > BigInt(source.size)
    ) {
      throw new ExtctlError(
        "format",
        `GPT partition ${i + 1} spans LBAs ${first}-${last}, outside the image's usable range`,
        { hint: "the image is corrupt or truncated; download or build it again" },
      );
    }
    const attributes = e.readBigUInt64LE(48);
    partitions.push({
      index: i + 1,
      typeGuid,
      uniqueGuid: guidFromBytes(e.subarray(16, 32)),
      name: decodeName(e.subarray(56, 128)),
      firstLba: Number(first),
      lastLba: Number(last),
      offset: Number(first) * sectorSize,
      size: Number(last - first + 1n) * sectorSize,
      attributes,
      readOnly: (attributes & ATTR_READ_ONLY) !== 0n,
      growFs: (attributes & ATTR_GROW_FS) !== 0n,
      noAuto: (attributes & ATTR_NO_AUTO) !== 0n,
    });
  }
  return {
    sectorSize,
    diskGuid: header.diskGuid,
    firstUsableLba: Number(header.firstUsableLba),
    lastUsableLba: Number(header.lastUsableLba),
    partitions,
    warnings,
  };
}
