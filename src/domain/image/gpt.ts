// GUID partition table reader for extension images (DDIs), judging the table as libblkid's gpt
// prober does (systemd's dissect uses libblkid, and the kernel's partition scan agrees on these
// rules): a protective MBR, the primary header at LBA 1 or, only when it is invalid, the header
// at the last LBA; each checked for CRC, MyLBA, usable range inside the disk, 128-byte entries
// and the entry array CRC. Entries outside the usable range are ignored, not errors.
import { crc32 } from "../../util/crc32.js";
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
  /** Which header the table came from: the primary at LBA 1, or the backup at the last LBA. */
  header: "primary" | "backup";
  /** Why the primary was not used (only when header is "backup"). */
  primaryInvalid?: string;
  /** True when both headers are valid but their partition entry arrays differ. */
  backupDiffers: boolean;
  diskGuid: string;
  firstUsableLba: number;
  lastUsableLba: number;
  partitions: GptPartition[];
  /** Entries libblkid ignores: outside the usable LBA range (1-based slot numbers). */
  ignoredEntries: number[];
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
  // One hex string, then its bytes regrouped: the first three fields are little-endian. A GPT
  // read turns 256 GUIDs into strings, and a boot reads every image's.
  const h = b.toString("hex", 0, 16);
  const swap = (from: number, bytes: number) => {
    let out = "";
    for (let i = bytes - 1; i >= 0; i--) out += h.slice(from + 2 * i, from + 2 * i + 2);
    return out;
  };
  return `${swap(0, 4)}-${swap(8, 2)}-${swap(12, 2)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
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

/** True when the source has a protective MBR and a GPT signature at LBA 1 (512 or 4096 bytes). */
export async function hasGpt(source: ByteSource): Promise<boolean> {
  return (await detectSectorSize(source)) !== undefined;
}

/** The sector size whose LBA 1 holds "EFI PART", trying 512 first as libblkid on a loop device. */
export async function detectSectorSize(source: ByteSource): Promise<512 | 4096 | undefined> {
  for (const size of [512, 4096] as const) {
    if (source.size < size * 2) continue;
    const sig = await source.readAt(size, 8);
    if (sig.toString("latin1") === SIGNATURE) return size;
  }
  return undefined;
}

/** Reads the protective MBR: libblkid wants 0x55AA and an 0xEE entry; the kernel also wants it at LBA 1. */
export async function protectiveMbr(
  source: ByteSource,
): Promise<{ blkid: boolean; kernel: boolean }> {
  if (source.size < 512) return { blkid: false, kernel: false };
  const mbr = await readExactly(source, 0, 512, "protective MBR");
  if (mbr.readUInt16LE(510) !== 0xaa55) return { blkid: false, kernel: false };
  const ee = [0, 1, 2, 3].filter((i) => mbr[446 + i * 16 + 4] === 0xee);
  return {
    blkid: ee.length > 0,
    kernel: ee.some((i) => mbr.readUInt32LE(446 + i * 16 + 8) === 1),
  };
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

/** Reads and checks one header and its entries as libblkid does; a reason string when invalid. */
async function readHeader(
  source: ByteSource,
  sectorSize: number,
  lba: bigint,
  lastLba: bigint,
): Promise<{ header: Header; entries: Buffer } | string> {
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
  const { firstUsableLba: fu, lastUsableLba: lu } = header;
  if (lu < fu || fu > lastLba || lu > lastLba)
    return `usable LBA range ${fu}-${lu} is empty or past the last LBA ${lastLba}`;
  if (fu < lba && lba < lu) return "header lies inside the usable LBA range";
  if (header.entrySize !== 128) return `partition entry size ${header.entrySize} is not 128`;
  if (header.entryCount === 0) return "partition entry array is empty";
  if (header.entryCount * header.entrySize > MAX_ENTRY_ARRAY_BYTES)
    return `partition entry array of ${header.entryCount} entries is too large`;
  const entriesOffset = Number(header.entriesLba) * sectorSize;
  const length = header.entryCount * header.entrySize;
  if (header.entriesLba <= 0n || entriesOffset + length > source.size)
    return "partition entry array lies past the end";
  const entries = await readExactly(source, entriesOffset, length, "GPT partition entries");
  if (crc32(entries) !== header.entriesCrc) return "partition entry array CRC32 does not match";
  return { header, entries };
}

function decodeName(raw: Buffer): string {
  let end = 0;
  while (end + 1 < raw.length && raw.readUInt16LE(end) !== 0) end += 2;
  return raw.toString("utf16le", 0, end);
}

/**
 * Reads the GPT of an image as libblkid would on a device with `sectorSize`-byte sectors
 * (default: the one whose LBA 1 holds the signature). The backup header is used only when the
 * primary is invalid, and then found at the last LBA, not where the primary points.
 */
export async function readGpt(
  source: ByteSource,
  options: { sectorSize?: 512 | 4096 } = {},
): Promise<GptTable> {
  const sectorSize = options.sectorSize ?? (await detectSectorSize(source));
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
  const pmbr = await protectiveMbr(source);
  if (!pmbr.blkid || !pmbr.kernel) {
    throw new ExtctlError(
      "format",
      pmbr.blkid
        ? "the image's protective MBR partition (0xEE) does not start at LBA 1, so the kernel does not scan its GPT"
        : "the image has a GPT header but no protective MBR (no 0x55AA signature or no 0xEE partition)",
      { hint: "repair the partition table, e.g. with `sgdisk -e` or by rebuilding the image" },
    );
  }

  const lastLba = BigInt(Math.floor(source.size / sectorSize) - 1);
  const primary = await readHeader(source, sectorSize, 1n, lastLba);
  let chosen: { header: Header; entries: Buffer };
  let which: "primary" | "backup" = "primary";
  let primaryInvalid: string | undefined;
  let backupDiffers = false;
  if (typeof primary !== "string") {
    chosen = primary;
    const backupLba = primary.header.backupLba;
    const backup = await readHeader(source, sectorSize, backupLba, lastLba);
    if (typeof backup === "string") warnings.push(`backup GPT header: ${backup}`);
    else {
      if (backupLba !== lastLba)
        warnings.push(`backup GPT header is at LBA ${backupLba}, not the last LBA ${lastLba}`);
      if (!backup.entries.equals(primary.entries)) {
        backupDiffers = true;
        warnings.push("the backup GPT's partition entries differ from the primary's");
      }
    }
  } else {
    const backup = await readHeader(source, sectorSize, lastLba, lastLba);
    if (typeof backup === "string") {
      throw new ExtctlError(
        "format",
        `the GUID partition table is damaged: ${primary} (and the backup at the last LBA: ${backup})`,
        { hint: "the image is corrupt or truncated; download or build it again" },
      );
    }
    chosen = backup;
    which = "backup";
    primaryInvalid = primary;
    warnings.push(
      `primary GPT is invalid (${primary}); systemd reads the backup at LBA ${lastLba}`,
    );
  }
  const { header, entries } = chosen;

  const partitions: GptPartition[] = [];
  const ignoredEntries: number[] = [];
  for (let i = 0; i < header.entryCount; i++) {
    const e = entries.subarray(i * header.entrySize, (i + 1) * header.entrySize);
    // An unused entry (most of the 128) has an all-zero type GUID.
    if (e.readBigUInt64LE(0) === 0n && e.readBigUInt64LE(8) === 0n) continue;
    const typeGuid = guidFromBytes(e.subarray(0, 16));
    if (typeGuid === ZERO_GUID) continue;
    const first = e.readBigUInt64LE(32);
    const last = e.readBigUInt64LE(40);
    // libblkid ignores an entry outside the usable range (so systemd never sees it).
    if (first > last || first < header.firstUsableLba || last > header.lastUsableLba) {
      ignoredEntries.push(i + 1);
      warnings.push(
        `GPT partition ${i + 1} spans LBAs ${first}-${last}, outside the usable range; ignored as libblkid does`,
      );
      continue;
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
    header: which,
    ...(primaryInvalid !== undefined ? { primaryInvalid } : {}),
    backupDiffers,
    ignoredEntries,
    diskGuid: header.diskGuid,
    firstUsableLba: Number(header.firstUsableLba),
    lastUsableLba: Number(header.lastUsableLba),
    partitions,
    warnings,
  };
}
